"""The torch runtime: runs the feature extractor and the students; scoring maths stays in numpy.

`export.OnnxRuntime` has the same two methods, so `AnomalyModel` scores identically with either
and the edge needs no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .backbones import Embedder
from .bank import Bank
from .student import FeatureAE, student_from_state

if TYPE_CHECKING:
    from .model import ModelConfig

STUDENT_PREFIX = "student."


class TorchRuntime:
    name = "torch"

    def __init__(self, image_size: int = 224, global_size: int | None = None) -> None:
        self.embedder = Embedder(image_size, global_size=global_size)
        self._students: dict[int, tuple[Bank, FeatureAE]] = {}

    @classmethod
    def of(cls, config: ModelConfig) -> TorchRuntime:
        """The runtime a model configuration (`ModelConfig`) embeds with."""
        return cls(config.image_size, config.global_size)

    def embed(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, S, S, 3) uint8 -> patch features (B, C, h, w), global embeddings (B, G)."""
        x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float().div_(255.0)
        with torch.inference_mode():
            patches, glob = self.embedder(x)
        return patches.numpy(), glob.numpy()

    def student_errors(self, bank: Bank, feats: np.ndarray) -> np.ndarray:
        key = id(bank)
        cached = self._students.get(key)
        if cached is None or cached[0] is not bank:
            state = {k[len(STUDENT_PREFIX) :]: v for k, v in bank.extra.items() if k.startswith(STUDENT_PREFIX)}
            cached = (bank, student_from_state(state))
            self._students[key] = cached
        with torch.inference_mode():
            return cached[1](torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))).numpy()

    def forget(self, bank: Bank) -> None:
        """Drop a cached student after the bank's student was retrained."""
        self._students.pop(id(bank), None)
