"""Heatmap evidence: the fused anomaly map drawn over the crop, and the hot region in frame pixels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.imageio import encode_png
from pipeline.views import LocalizedView


def _crop_map(heat: np.ndarray, view: LocalizedView) -> np.ndarray:
    h, w = view.crop.shape[:2]
    return cv2.resize(heat.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def render(heat: np.ndarray, view: LocalizedView, vmax: float = 8.0) -> np.ndarray:
    """RGB overlay: standardised scores 0..vmax as a jet colour map over the crop."""
    norm = np.clip(_crop_map(heat, view) / vmax, 0.0, 1.0)
    colour = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    alpha = (0.25 + 0.5 * norm)[..., None]
    return (view.crop * (1 - alpha) + colour * alpha).astype(np.uint8)


def write(path: Path | str, heat: np.ndarray, view: LocalizedView) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(render(heat, view)))
    return path


def hot_box(heat: np.ndarray, view: LocalizedView, level: float) -> list[float]:
    """Frame-pixel box around map cells above `level` (the item box when none are)."""
    big = _crop_map(heat, view)
    ys, xs = np.nonzero(big > level)
    if not len(xs):
        return list(view.box)
    corners = np.array(
        [[xs.min(), ys.min()], [xs.max() + 1, ys.min()], [xs.min(), ys.max() + 1], [xs.max() + 1, ys.max() + 1]]
    )
    pts = view.to_frame(corners)
    return [float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())]
