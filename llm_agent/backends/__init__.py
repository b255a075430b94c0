"""Investigation backends behind one interface; `get_backend(name)` builds one by name."""

from __future__ import annotations

from typing import Any

from llm_agent.backends.base import Backend, BackendOutput, Task

BACKENDS = ("grounded", "bedrock", "openai", "hf")


def get_backend(name: str, **options: Any) -> Backend:
    """`grounded` (default, offline), `bedrock`, `openai` (any compatible server) or `hf` (local model dir)."""
    if name == "grounded":
        from llm_agent.backends.grounded import GroundedBackend

        return GroundedBackend(**options)
    if name == "bedrock":
        from llm_agent.backends.bedrock import BedrockBackend

        return BedrockBackend(**options)
    if name == "openai":
        from llm_agent.backends.openai import OpenAIBackend

        return OpenAIBackend(**options)
    if name == "hf":
        from llm_agent.backends.hf import HFBackend

        return HFBackend(**options)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "BackendOutput", "Task", "get_backend"]
