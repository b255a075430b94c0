"""Any OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp, OpenAI itself).

Images go as data: URLs in user content; tools as `function` tools with the registry's JSON
schemas; the model's `tool_calls` are run and answered with `tool` messages. Images a tool
attaches follow in a user message, since most servers accept only text in tool messages.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import httpx

from llm_agent.backends.base import BackendError, ChatBackend, PendingCall
from llm_agent.tools import ImageRef, ToolRegistry, ToolResult


def _image_part(data: bytes, fmt: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": f"data:image/{fmt};base64,{base64.b64encode(data).decode()}"}}


class OpenAIBackend(ChatBackend):
    name = "openai"

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__(retries=retries, backoff_s=backoff_s)
        self.model = model or os.environ.get("TUNNELPI_OPENAI_MODEL", "default")
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")).rstrip("/")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = client or httpx.Client(timeout=timeout_s, headers=headers)

    def _open(self, system: str, user: str, images: list[tuple[ImageRef, bytes, str]], tools: ToolRegistry) -> Any:
        content: list[dict[str, Any]] = [{"type": "text", "text": user}]
        for ref, data, fmt in images:
            content += [{"type": "text", "text": f"image {ref.ref_id}:"}, _image_part(data, fmt)]
        specs = [
            {
                "type": "function",
                "function": {"name": s["name"], "description": s["description"], "parameters": s["schema"]},
            }
            for s in tools.specs()
        ]
        return {
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": content}],
            "tools": specs,
        }

    def _send(self, state: Any) -> tuple[str, list[PendingCall]]:
        body = {
            "model": self.model,
            "messages": state["messages"],
            "tools": state["tools"],
            "tool_choice": "auto",
            "temperature": 0,
        }
        try:
            resp = self.client.post(f"{self.base_url}/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise BackendError(f"{self.base_url}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code != 200:
            raise BackendError(f"{self.base_url}: HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            message = resp.json()["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BackendError(f"{self.base_url}: not a chat-completions reply: {resp.text[:200]}") from exc
        state["messages"].append({k: v for k, v in message.items() if k in ("role", "content", "tool_calls")})
        calls = []
        for tc in message.get("tool_calls") or []:
            fn = tc.get("function") or {}
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except json.JSONDecodeError:
                args = {"_unparsed": fn.get("arguments")}
            calls.append(
                PendingCall(
                    id=tc.get("id") or fn.get("name", "call"),
                    name=fn.get("name", ""),
                    args=args if isinstance(args, dict) else {},
                )
            )
        return message.get("content") or "", calls

    def _add_results(
        self, state: Any, results: list[tuple[PendingCall, ToolResult, list[tuple[ImageRef, bytes, str]]]]
    ) -> None:
        attached: list[dict[str, Any]] = []
        for call, result, images in results:
            state["messages"].append(
                {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result.for_model(), ensure_ascii=False)}
            )
            for ref, data, fmt in images:
                attached += [
                    {"type": "text", "text": f"image {ref.ref_id} (from {call.name}):"},
                    _image_part(data, fmt),
                ]
        if attached:
            state["messages"].append({"role": "user", "content": attached})

    def _ask_again(self, state: Any, text: str) -> None:
        state["messages"].append({"role": "user", "content": text})
