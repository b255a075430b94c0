"""A local transformers image-text-to-text model (a model folder; nothing is downloaded).

Small local VLMs rarely drive a tool loop reliably, so this backend runs the question tools
first and puts their results in the prompt next to the item's frames; the model reads the
images and the results and writes the final JSON. A reply that is not valid JSON of the
schema is reported, and the tool answers stand.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from llm_agent.backends.base import Backend, BackendError, BackendOutput, Task, parse_final, system_prompt, task_message
from llm_agent.backends.grounded import tool_answers
from llm_agent.evidence import EvidenceFile
from llm_agent.tools import ToolRegistry


@cache
def load(model_dir: str, device: str) -> tuple[Any, Any]:
    """(processor, model) from a local folder, loaded once per process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, local_files_only=True).to(device).eval()
    return processor, model


class HFBackend(Backend):
    name = "hf"

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "cpu",
        max_new_tokens: int = 768,
        max_images: int = 4,
        image_side: int = 896,
        retries: int = 0,
        backoff_s: float = 0.0,
    ) -> None:
        super().__init__(retries=retries, backoff_s=backoff_s)
        folder = model or os.environ.get("TUNNELPI_HF_MODEL")
        if not folder or not Path(folder).is_dir():
            raise ValueError(f"hf backend needs a local model folder (--model DIR), got {folder!r}")
        self.model_dir = str(Path(folder).resolve())
        self.model = Path(folder).name
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.max_images = max_images
        self.image_side = image_side
        self.last_inputs: dict[str, tuple[int, ...]] = {}
        """Shapes of the tensors of the last generate call (for monitoring and tests)."""

    def _prompt(self, task: Task, evidence: EvidenceFile, results: list[dict[str, Any]]) -> str:
        return "\n\n".join(
            [
                system_prompt(),
                task_message(task, evidence),
                "Tool results (already run for you; cite their evidence ids):\n"
                + json.dumps(results, ensure_ascii=False),
            ]
        )

    def _images(self, evidence: EvidenceFile) -> list[Any]:
        from PIL import Image

        images = []
        for frame in evidence.capture.frames[: self.max_images]:
            im = Image.fromarray(evidence.image(frame.camera))
            im.thumbnail((self.image_side, self.image_side))
            images.append(im)
        return images

    def _investigate(self, task: Task, tools: ToolRegistry, evidence: EvidenceFile) -> BackendOutput:
        import torch

        answers, calls = tool_answers(task, tools, evidence)
        results = [
            {"question_id": a.question_id, "answer": a.value, "text": a.text, "citations": a.citations} for a in answers
        ]
        processor, model = load(self.model_dir, self.device)
        images = self._images(evidence)
        prompt = self._prompt(task, evidence, results)
        messages = [
            {"role": "user", "content": [*({"type": "image"} for _ in images), {"type": "text", "text": prompt}]}
        ]
        if getattr(processor, "chat_template", None):
            text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        else:
            text = "<image>" * len(images) + prompt
        inputs = processor(text=text, images=images or None, return_tensors="pt").to(self.device)
        self.last_inputs = {k: tuple(v.shape) for k, v in inputs.items() if hasattr(v, "shape")}
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        reply = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0]
        try:
            output = parse_final(reply, task, self.name, self.model)
        except BackendError as exc:
            output = BackendOutput(
                backend=self.name,
                model=self.model,
                answers=answers,
                errors=[f"model reply unusable ({exc}); tool answers used"],
            )
        output.tool_calls = calls
        return output
