"""Amazon Bedrock through the Converse API: images as bytes, tools as `toolSpec`s, tool-use rounds.

The model id is configurable (any Converse model with image input and tool use). botocore does
not check image formats or sizes, so every image is validated before the call
(`validate_images`): png/jpeg/gif/webp, at most 20 per request, 3.75 MB and 8000 px each.
"""

from __future__ import annotations

import os
from typing import Any

from llm_agent.backends.base import BackendError, ChatBackend, PendingCall, validate_images
from llm_agent.tools import ImageRef, ToolRegistry, ToolResult

DEFAULT_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def _image_block(data: bytes, fmt: str) -> dict[str, Any]:
    return {"image": {"format": fmt, "source": {"bytes": data}}}


class BedrockBackend(ChatBackend):
    name = "bedrock"

    def __init__(
        self,
        model: str | None = None,
        region: str | None = None,
        timeout_s: float = 60.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        max_tokens: int = 2048,
        client: Any = None,
    ) -> None:
        super().__init__(retries=retries, backoff_s=backoff_s)
        self.model = model or os.environ.get("TUNNELPI_BEDROCK_MODEL", DEFAULT_MODEL)
        self.max_tokens = max_tokens
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(read_timeout=timeout_s, connect_timeout=min(timeout_s, 10), retries={"max_attempts": 1})
            client = boto3.client(
                "bedrock-runtime", region_name=region or os.environ.get("AWS_REGION", "us-east-1"), config=config
            )
        self.client = client

    def _open(self, system: str, user: str, images: list[tuple[ImageRef, bytes, str]], tools: ToolRegistry) -> Any:
        content: list[dict[str, Any]] = [{"text": user}]
        for ref, data, fmt in images:
            content += [{"text": f"image {ref.ref_id}:"}, _image_block(data, fmt)]
        specs = [
            {"toolSpec": {"name": s["name"], "description": s["description"], "inputSchema": {"json": s["schema"]}}}
            for s in tools.specs()
        ]
        return {"system": [{"text": system}], "messages": [{"role": "user", "content": content}], "tools": specs}

    def _images_in(self, messages: list[dict[str, Any]]) -> list[tuple[bytes, str]]:
        found = []
        for m in messages:
            for block in m["content"]:
                for inner in [block, *block.get("toolResult", {}).get("content", [])]:
                    if "image" in inner:
                        found.append((inner["image"]["source"]["bytes"], inner["image"]["format"]))
        return found

    def _send(self, state: Any) -> tuple[str, list[PendingCall]]:
        validate_images(self._images_in(state["messages"]))
        try:
            resp = self.client.converse(
                modelId=self.model,
                system=state["system"],
                messages=state["messages"],
                toolConfig={"tools": state["tools"], "toolChoice": {"auto": {}}},
                inferenceConfig={"maxTokens": self.max_tokens, "temperature": 0.0},
            )
        except Exception as exc:  # botocore ClientError, ReadTimeout, EndpointConnectionError ...
            raise BackendError(f"bedrock {self.model}: {type(exc).__name__}: {exc}") from exc
        message = resp["output"]["message"]
        state["messages"].append({"role": "assistant", "content": message["content"]})
        text = "".join(b.get("text", "") for b in message["content"])
        calls = [
            PendingCall(id=b["toolUse"]["toolUseId"], name=b["toolUse"]["name"], args=b["toolUse"].get("input") or {})
            for b in message["content"]
            if "toolUse" in b
        ]
        return text, calls

    def _add_results(
        self, state: Any, results: list[tuple[PendingCall, ToolResult, list[tuple[ImageRef, bytes, str]]]]
    ) -> None:
        blocks = []
        for call, result, images in results:
            content: list[dict[str, Any]] = [{"json": result.for_model()}]
            content += [_image_block(data, fmt) for _, data, fmt in images]
            status = "success" if result.status == "ok" else "error"
            blocks.append({"toolResult": {"toolUseId": call.id, "content": content, "status": status}})
        state["messages"].append({"role": "user", "content": blocks})

    def _ask_again(self, state: Any, text: str) -> None:
        state["messages"].append({"role": "user", "content": [{"text": text}]})
