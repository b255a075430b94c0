"""From a frame (or a crop) to the fixed-size network input and its item mask.

Background pixels (belt, tote) and a thin rim inside the item's outline are painted a neutral
grey before feature extraction, so a different tote colour at another FC (a benign variation)
cannot look like damage; patch scores are read only on feature cells that touch the item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from detectors.localize import localize, whole_frame
from pipeline.imageio import ImageError
from pipeline.views import LocalizedView

MIN_CONTRAST = 2.0
"""Grey-level standard deviation below which an image carries no usable appearance."""
BACKGROUND_GREY = 124
ROUND_FILL = 0.8
"""Share of its smallest enclosing circle an outline must fill to count as round (a disc fills
1.0, a square 0.64)."""
ROUND_ASPECT = (0.85, 1.18)
"""Height/width range of a round view's crop."""
ROUND_MAJORITY = 0.5
"""A product whose normal images show a round outline this often or more has no upright (a
bottle or a jar seen from above): `tunnelpi anomaly fit` then enrolls its round views turned
as well. MVTec bottles placed on belts and totes at any pose, 30 normals: image AUROC 0.991
upright only, 0.997 turned."""


class FeaturelessImage(ImageError):
    """A uniform image (lens cap, blank frame): there is nothing to compare."""


@dataclass
class PreparedView:
    view: LocalizedView
    pixels: np.ndarray
    """(S, S, 3) uint8 network input."""
    grid_mask: np.ndarray
    """(S/8, S/8) bool: feature cells that lie on the item."""

    @property
    def round_outline(self) -> bool:
        """The item's outline here is a disc (a lid or a ball seen end-on): its upright crop has no
        preferred angle, so print on it can lie at any rotation. Read only by enrolment, so the
        per-item path never pays for it."""
        return self.view.found and is_round(self.view.mask)


def is_round(mask: np.ndarray) -> bool:
    """Whether a crop's item mask is a disc: nearly square and filling its enclosing circle."""
    h, w = mask.shape[:2]
    if not mask.any() or not ROUND_ASPECT[0] <= h / w <= ROUND_ASPECT[1]:
        return False
    points = cv2.findNonZero(mask.astype(np.uint8))
    _, radius = cv2.minEnclosingCircle(points)
    return float(mask.sum()) / (np.pi * max(radius, 1.0) ** 2) > ROUND_FILL


def round_share(images: Sequence[np.ndarray], use_localize: bool = True) -> float:
    """Share of images whose localised item has a round outline (0 without localisation: a
    whole frame has no outline); an unreadable or featureless image counts as not round."""
    if not use_localize or not images:
        return 0.0
    round_views = 0
    for i, image in enumerate(images):
        try:
            view = view_of(image, f"image{i}", True)
        except ImageError:
            continue
        round_views += bool(view.found and is_round(view.mask))
    return round_views / len(images)


def check_informative(image: np.ndarray, name: str = "image") -> None:
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if float(gray.std()) < MIN_CONTRAST:
        raise FeaturelessImage(f"{name}: featureless (uniform grey level {gray.mean():.0f}); nothing to inspect")


def view_of(image: np.ndarray, camera: str, use_localize: bool, name: str | None = None) -> LocalizedView:
    """The image's view for `camera`; `FeaturelessImage` (naming `name`, else the camera) for a blank one."""
    check_informative(image, name or camera)
    return localize(image, camera) if use_localize else whole_frame(image, camera)


def prepare(view: LocalizedView, size: int) -> PreparedView:
    crop = view.crop
    if view.found:
        # inside the outline only: a fringe of belt or tote (another FC's colour) reads as damage
        k = max(3, round(0.015 * max(crop.shape[:2]))) | 1
        keep = cv2.erode(view.mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
        if not keep.any():
            keep = view.mask
        crop = np.where(keep[..., None], crop, np.uint8(BACKGROUND_GREY)).astype(np.uint8)
    else:
        keep = np.ones(crop.shape[:2], bool)
    pixels = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    grid = size // 8
    grid_mask = cv2.resize(keep.astype(np.float32), (grid, grid), interpolation=cv2.INTER_AREA) > 0.05
    if not grid_mask.any():
        grid_mask[:] = True
    return PreparedView(view=view, pixels=pixels, grid_mask=grid_mask)
