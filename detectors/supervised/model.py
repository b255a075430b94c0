"""The fine-grained classifier: a small transformer over frozen MobileNetV2 patch tokens.

The backbone is the anomaly ensemble's pretrained patch extractor, frozen, so training only
fits a few hundred thousand parameters (minutes on a CPU, tens of labelled items suffice).
Tokens are pooled to a 7x7 grid per view; attention relates a crushed corner or a folded
cover to the item's outline, which a per-patch distance cannot. An item's logits are the
maximum over its views (a defect seen by one camera is a defect).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

TOKEN_GRID = 7
IMAGE_SIZE = 224


def pool_tokens(maps: np.ndarray, mode: str = "mean") -> np.ndarray:
    """(V, C, H, W) maps -> (V, TOKEN_GRID**2, C) tokens by mean or max pooling."""
    x = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
    pool = nn.functional.adaptive_avg_pool2d if mode == "mean" else nn.functional.adaptive_max_pool2d
    return pool(x, TOKEN_GRID).flatten(2).transpose(1, 2).numpy()


class PatchTokenizer(nn.Module):
    """RGB crops (B, S, S, 3) uint8 -> (B, 128, S/8, S/8) patch features from the frozen
    MobileNetV2 stages (pooled into tokens by `pool_tokens`)."""

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        from detectors.anomaly.backbones import IMAGENET_MEAN, IMAGENET_STD, MobileNetV2Patches

        self.backbone = MobileNetV2Patches(pretrained).eval()
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.dim = self.backbone.dim

    @torch.inference_mode()
    def forward(self, pixels: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float().div_(255.0)
        return self.backbone((x - self.mean) / self.std)

    def maps(self, pixels: np.ndarray) -> np.ndarray:
        """(B, C, S/8, S/8) patch features: the anomaly ensemble's, so they compare with its banks."""
        return self(pixels).numpy()


class TokenClassifier(nn.Module):
    """Tokens (B, V, T, C) with a view mask (B, V) -> multi-label logits (B, K)."""

    def __init__(self, in_dim: int, n_classes: int, dim: int = 64, depth: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, dim))
        self.pos = nn.Parameter(torch.zeros(1, TOKEN_GRID * TOKEN_GRID, dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, n_classes))
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.config = {"in_dim": in_dim, "n_classes": n_classes, "dim": dim, "depth": depth, "heads": heads}

    def view_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, T, C) tokens of single views -> (N, K)."""
        x = self.proj(tokens) + self.pos
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1)
        return self.head(self.encoder(x)[:, 0])

    def forward(self, tokens: torch.Tensor, view_mask: torch.Tensor) -> torch.Tensor:
        b, v, t, c = tokens.shape
        logits = self.view_logits(tokens.reshape(b * v, t, c)).reshape(b, v, -1)
        logits = logits.masked_fill(~view_mask[..., None], float("-inf"))
        return logits.max(dim=1).values
