"""Localised views: the upright item crops that `localize` publishes for the other stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

VIEWS_KEY = "views"
"""Key in `StageContext.shared` under which localize publishes `dict[camera, LocalizedView]`."""


@dataclass
class LocalizedView:
    """One camera's view of the item after localisation.

    `crop_to_frame` maps crop pixel coordinates (x, y, 1) to frame coordinates, so any box or
    heatmap found on the crop can be drawn back on the original frame as evidence.
    """

    camera: str
    crop: np.ndarray
    """Upright RGB uint8 crop of the item."""
    mask: np.ndarray
    """bool, same height/width as `crop`: True on the item."""
    box: list[float]
    """Axis-aligned item box in frame pixels [x0, y0, x1, y1]."""
    crop_to_frame: np.ndarray = field(default_factory=lambda: np.eye(2, 3))
    angle_deg: float = 0.0
    found: bool = True
    """False when no item could be separated from the background (the crop is then the whole frame)."""

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) crop coordinates to frame coordinates."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return pts @ self.crop_to_frame[:, :2].T + self.crop_to_frame[:, 2]
