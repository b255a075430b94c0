"""Localised views: the upright item crops that `localize` publishes for the other stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

VIEWS_KEY = "views"
"""Key in `StageContext.shared` under which localize publishes `dict[camera, LocalizedView]`."""
EMBEDDINGS_KEY = "view_embeddings"
"""Key in `StageContext.shared` under which `anomaly` publishes `ViewEmbeddings`."""
OTHER_LOOK_KEY = "other_look"
"""Key in `StageContext.shared` under which `attributes` publishes why the item does not look
like its SKU at all (another item, another colour: the message of the finding that diverts it).
Read against that SKU's normal look, everything on such an item differs, so a check that
names what differs (the fine-grained classifier) has nothing to name."""


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

    @property
    def frame_area(self) -> float:
        """The item's area in frame pixels (its mask, scaled back from the crop)."""
        return float(self.mask.sum()) * abs(float(np.linalg.det(self.crop_to_frame[:, :2])))

    def footprint(self, frame_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """The frame rectangle (x0, y0, x1, y1) the crop was cut from, clipped to the frame."""
        h, w = self.crop.shape[:2]
        corners = self.to_frame(np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64))
        x0, y0 = np.floor(corners.min(axis=0)).astype(int)
        x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
        fh, fw = frame_shape[:2]
        return max(0, int(x0)), max(0, int(y0)), min(fw, int(x1)), min(fh, int(y1))

    def cut(self, frame_part: np.ndarray, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
        """This view's crop cut from another copy of (part of) its frame whose top-left corner
        lies at `origin` in the frame: a copy corrected after localisation, such as one with
        the belt's motion smear taken out."""
        h, w = self.crop.shape[:2]
        frame_to_crop = cv2.invertAffineTransform(self.crop_to_frame)
        frame_to_crop[:, 2] += frame_to_crop[:, :2] @ np.asarray(origin, np.float64)
        return cv2.warpAffine(
            frame_part, frame_to_crop, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) crop coordinates to frame coordinates."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return pts @ self.crop_to_frame[:, :2].T + self.crop_to_frame[:, 2]


@dataclass(frozen=True)
class ViewEmbeddings:
    """Embeddings of the views a model scored, so that another stage comparing looks with the
    same model (the wrong-item check, the fine-grained classifier) does not run the backbones
    on the same crops again."""

    model_version: str
    views: dict[str, tuple[LocalizedView, np.ndarray]]
    """camera -> (the view object that was embedded, its (D,) global embedding)."""
    patches: dict[str, np.ndarray] = field(default_factory=dict)
    """camera -> (C, H, W) patch features of that view."""
    bank: str = ""
    """The bank the views were scored against."""
    nearest: dict[str, np.ndarray] = field(default_factory=dict)
    """camera -> (H, W) row of each patch's nearest normal patch in `bank`."""
    standard: dict[str, np.ndarray] = field(default_factory=dict)
    """camera -> (2, H, W) the anomaly members' maps against `bank` in calibrated units."""

    def lookup(
        self, views: Sequence[LocalizedView], model_version: str, what: str = "global", bank: str | None = None
    ) -> np.ndarray | None:
        """(V, D) global embeddings, (V, C, H, W) patch features ("patches"), (V, H, W)
        nearest-normal rows ("nearest", of that `bank`) or (V, 2, H, W) calibrated member maps
        ("standard", against that `bank`) of exactly these view objects by that model version,
        else None."""
        if model_version != self.model_version or (what in ("nearest", "standard") and bank != self.bank):
            return None
        extra = {"patches": self.patches, "nearest": self.nearest, "standard": self.standard}.get(what)
        rows = []
        for view in views:
            hit = self.views.get(view.camera)
            if hit is None or hit[0] is not view:
                return None
            row = hit[1] if extra is None else extra.get(view.camera)
            if row is None:
                return None
            rows.append(row)
        return np.stack(rows) if rows else None
