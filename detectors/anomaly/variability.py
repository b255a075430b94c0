"""Where good items of one product differ from each other: a per-camera map of how far each
feature cell of a normal view lies from the other normal items (leave one item out).

Print, seams, the date-and-lot zone and label edges differ from one good item to the next;
plain surfaces do not. The same nearest-patch distance means little in the first and a lot in
the second, so the patch member divides each cell's distance by this map's square root before
it takes the view's peak (`AnomalyModel.raw_scores`). Each camera gets its own map, because a
camera looks at the same face of an upright crop item after item; a camera the references did
not show gets the pooled map of all of them. Enrolment's turned copies (180 degrees, and round
views' rotations) count as the same camera, so a map is as symmetric as the enrolment.

Two simulated development shifts, patch member alone: visible-damage AUROC 0.876 -> 0.886 and
0.851 -> 0.866, recall at 5 % of good items flagged 0.60 -> 0.69 and 0.47 -> 0.52 (stains and
crushed corners gain; a map by camera beat one by the nearest reference silhouettes, 0.861, and
the map's first power, 0.863, on the second shift).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .bank import nearest_distance

PREFIX = "variability."
"""Bank `extra` key prefix of the maps (one per camera, and `POOLED`)."""
POOLED = "*"
EXPONENT = 0.5
FLOOR_QUANTILE = 0.25
"""Cells less variable than this quantile of the map count as this variable: a few
references cannot show that a cell never varies."""
MIN_ITEMS = 4
"""Fewest enrolment items a bank fits maps from: with two or three, each cell's mean is the
noise of those few, not where the product varies."""
MAX_OTHER_ROWS = 16_384
"""Patches of the other items a view is compared with (a seeded sample beyond this), which
bounds enrolment time however many references there are."""


def leave_one_item_out(patches: np.ndarray, masks: np.ndarray, items: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, h, w): each on-item cell's distance to the nearest on-item patch of the other items'
    views (0 off the item, and for an item with no other items to compare with)."""
    n, c, h, w = patches.shape
    rows = np.ascontiguousarray(patches.transpose(0, 2, 3, 1).reshape(n, h * w, c), dtype=np.float32)
    on = masks.reshape(n, h * w)
    out = np.zeros((n, h * w), np.float32)
    rng = np.random.default_rng(seed)
    for item in np.unique(items):
        own = items == item
        others = rows[~own][on[~own]]
        if not len(others):
            continue
        if len(others) > MAX_OTHER_ROWS:
            others = others[np.sort(rng.choice(len(others), MAX_OTHER_ROWS, replace=False))]
        for i in np.flatnonzero(own):
            if on[i].any():
                out[i, on[i]] = nearest_distance(rows[i][on[i]], others)
    return out.reshape(n, h, w)


def _divisor(distances: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """One camera's (h, w) divisor: the mean leave-one-out distance per cell over the views
    that cover it (the views' mean elsewhere), smoothed, floored, to `EXPONENT`, median 1."""
    cover = masks.sum(axis=0)
    fill = float(distances[masks].mean())
    mean = np.where(cover > 0, (distances * masks).sum(axis=0) / np.maximum(cover, 1), fill)
    smooth = cv2.blur(mean.astype(np.float32), (3, 3))
    floored = np.maximum(smooth, max(float(np.quantile(smooth, FLOOR_QUANTILE)), 1e-6))
    divisor = floored**EXPONENT
    return (divisor / float(np.median(divisor))).astype(np.float32)


@dataclass(frozen=True)
class VariabilityMaps:
    """Per-camera (h, w) divisors of patch distance; `POOLED` serves any other camera."""

    maps: Mapping[str, np.ndarray]

    @classmethod
    def fit(
        cls, patches: np.ndarray, masks: np.ndarray, items: np.ndarray, cameras: Sequence[str]
    ) -> VariabilityMaps | None:
        """Maps from enrolment views (patches (N, C, h, w), cell masks, item index and camera of
        each view); None when fewer than `MIN_ITEMS` items have views on the item."""
        masks = masks.astype(bool)
        usable = {int(i) for i in np.unique(items) if masks[items == i].any()}
        if len(usable) < MIN_ITEMS:
            return None
        distances = leave_one_item_out(patches, masks, items)
        cams = np.asarray(cameras)
        maps = {str(cam): _divisor(distances[cams == cam], masks[cams == cam]) for cam in np.unique(cams)}
        maps[POOLED] = _divisor(distances, masks)
        return cls(maps)

    def divisors(self, cameras: Sequence[str]) -> np.ndarray:
        """(N, h, w): each view's camera map, the pooled one for a camera not enrolled."""
        return np.stack([self.maps.get(str(cam), self.maps[POOLED]) for cam in cameras])

    def to_extra(self) -> dict[str, np.ndarray]:
        return {PREFIX + cam: m for cam, m in self.maps.items()}

    @classmethod
    def from_extra(cls, extra: Mapping[str, np.ndarray]) -> VariabilityMaps | None:
        """The maps stored in a bank's `extra`; None for a bank without them (a category bank,
        or one enrolled before they existed), whose distances are then read as they are."""
        maps = {k[len(PREFIX) :]: np.asarray(v, np.float32) for k, v in extra.items() if k.startswith(PREFIX)}
        return cls(maps) if POOLED in maps else None
