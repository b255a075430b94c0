"""Self-supervised member: a convolutional autoencoder over the pretrained teacher's patch features.

PatchCore compares each patch with its nearest normal patch, so a part that is simply absent
(an empty canister, a missing cap) can look like ordinary normal patches. This member squeezes
the whole feature map through a 4x-downsampled bottleneck and must rebuild it from the item's
layout; trained only on normal images, it rebuilds normal structure well and fails where the
layout is wrong. It trains in seconds because it sees precomputed teacher features, not pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class FeatureAE(nn.Module):
    """(B, C, h, w) teacher features -> (B, h, w) squared reconstruction error of standardised features."""

    def __init__(self, channels: int, width: int = 64, bottleneck: int = 32) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))
        self.enc1 = nn.Conv2d(channels, width, 3, padding=1)
        self.enc2 = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.enc3 = nn.Conv2d(width, bottleneck, 3, stride=2, padding=1)
        self.dec1 = nn.Conv2d(bottleneck, width, 3, padding=1)
        self.dec2 = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.Conv2d(width, channels, 1)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        e1 = F.relu(self.enc1(x))
        e2 = F.relu(self.enc2(e1))
        z = F.relu(self.enc3(e2))
        d = F.relu(self.dec1(F.interpolate(z, size=e2.shape[-2:], mode="bilinear", align_corners=False)))
        d = F.relu(self.dec2(F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False)))
        return self.out(d)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = (feats - self.mean) / self.std
        return (self.reconstruct(x) - x).pow(2).mean(dim=1)


def train_student(
    feats: np.ndarray,
    *,
    steps: int = 300,
    lr: float = 2e-3,
    batch: int = 8,
    seed: int = 0,
    width: int = 64,
    model: FeatureAE | None = None,
) -> FeatureAE:
    """Fit (or continue fitting, for incremental enrolment) the autoencoder on normal features only."""
    if feats.ndim != 4 or len(feats) == 0:
        raise ValueError(f"student needs (N, C, h, w) features, got {feats.shape}")
    gen = torch.Generator().manual_seed(seed)
    data = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
    if model is None:
        torch.manual_seed(seed)
        model = FeatureAE(data.shape[1], width=width)
        model.mean.copy_(data.mean(dim=(0, 2, 3)).view(1, -1, 1, 1))
        model.std.copy_(data.std(dim=(0, 2, 3)).clamp_min(1e-3).view(1, -1, 1, 1))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(len(data), (min(batch, len(data)),), generator=gen)
        loss = model(data[idx]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def student_state(model: FeatureAE) -> dict[str, np.ndarray]:
    """Weights as plain arrays, stored inside the bank's npz (no pickle)."""
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def student_from_state(state: dict[str, np.ndarray]) -> FeatureAE:
    """Rebuild a student; width and bottleneck are read from the weight shapes, so banks of any width load."""
    model = FeatureAE(
        int(state["mean"].shape[1]),
        width=int(state["enc1.weight"].shape[0]),
        bottleneck=int(state["enc3.weight"].shape[0]),
    )
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    return model.eval()
