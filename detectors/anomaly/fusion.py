"""Fusion: member scores -> one view score, views -> one item score, member maps -> one heatmap.

Members are fused after robust standardisation (see `calibration.RobustScaler`), so a score
of 4 means "four robust spreads above normal" for every member. The maximum is used, not the
mean: each member covers a different failure (local texture, global look, structure), and a
mean would dilute the one member that sees the defect; the false-positive cost of the max is
paid back by calibrating the fused score itself. Views fuse by maximum for the same reason:
damage seen by one camera is damage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def fuse_members(z: Mapping[str, float], weights: Mapping[str, float] | None = None) -> tuple[float, str]:
    """(fused score, the member that set it) from standardised member scores."""
    if not z:
        raise ValueError("no member scores to fuse")
    weighted = {k: float(v) * (weights.get(k, 1.0) if weights else 1.0) for k, v in z.items()}
    top = max(weighted, key=weighted.__getitem__)
    return weighted[top], top


def fuse_views(scores: Sequence[float]) -> tuple[float, int]:
    """(item score, index of the view that set it)."""
    if not len(scores):
        raise ValueError("no view scores to fuse")
    idx = int(np.argmax(scores))
    return float(scores[idx]), idx


def fuse_maps(maps: Sequence[np.ndarray]) -> np.ndarray:
    """Pixel-wise maximum of standardised member maps of the same shape."""
    if not maps:
        raise ValueError("no maps to fuse")
    return np.maximum.reduce([np.asarray(m, dtype=np.float32) for m in maps])
