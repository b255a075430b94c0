"""Wrong item: is this item's look closer to another SKU's normal bank than to its own?

Uses the anomaly model's per-SKU banks of global embeddings (EfficientNet-Lite0), so a wrong
item is named by the SKU it most resembles, which is what a picker or investigator needs.
Siblings that differ only by a printed size (T-shirt S vs M) look alike by construction; the
label check covers those, and a wrong-item finding that names one is a review
(`stage.variant_siblings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.views import LocalizedView


@dataclass(frozen=True)
class IdentityRead:
    """Distances of the item's views to its own SKU bank and to the nearest other SKU's."""

    own_sku: str
    own_distance: float
    nearest_sku: str
    nearest_distance: float
    margin: float
    """own - nearest: positive when another SKU is closer than the item's own."""
    own_ceiling: float = 0.0
    """Largest own-bank distance seen on the SKU's normal calibration items."""
    nearest_ceiling: float = 0.0
    """The same for the nearest other SKU's bank."""

    @property
    def closer_to_other(self) -> bool:
        return self.nearest_sku != self.own_sku and self.margin > 0

    @property
    def unlike_own(self) -> bool:
        """The item does not look like any normal item of its own SKU.

        Sibling SKUs (sizes of one T-shirt, one sheet set) look alike, so "nearer another
        bank" alone flags good items at random; a wrong item must also be unlike its own SKU.
        """
        return self.own_distance > self.own_ceiling

    @property
    def like_nearest(self) -> bool:
        """The item looks like a normal item of the nearest other SKU: no farther from that bank
        than its own calibration items are. A positive identification, where "unlike its own SKU"
        may only mean the crop is not the whole item."""
        return self.nearest_sku != self.own_sku and self.nearest_distance <= self.nearest_ceiling


class IdentityChecker:
    """Nearest-SKU search over the SKU banks of an anomaly model folder."""

    def __init__(self, model_dir: Path | str) -> None:
        from detectors.anomaly.model import load_shared

        self.model = load_shared(model_dir)
        self.version = self.model.version
        self.sku_banks = {sku: self.model.banks[name] for sku, name in self.model.skus.items()}
        self.sku_banks = {s: b for s, b in self.sku_banks.items() if b.kind == "sku"}
        self.ceilings = {s: _own_ceiling(b) for s, b in self.sku_banks.items()}

    def knows(self, sku: str) -> bool:
        return sku in self.sku_banks

    def embed(self, views: list[LocalizedView]) -> np.ndarray:
        """Global embeddings (V, D) of an item's localised views, prepared as the banks were."""
        from detectors.anomaly.prepare import prepare

        prepared = [prepare(v, self.model.config.image_size) for v in views]
        return self.model.embed(prepared).globals_

    def distances(self, globals_: np.ndarray) -> dict[str, float]:
        """Mean over views of the nearest-neighbour distance to each SKU's bank."""
        return {sku: float(bank.global_distances(globals_).mean()) for sku, bank in self.sku_banks.items()}

    def read(self, sku: str, views: list[LocalizedView], embeddings: np.ndarray | None = None) -> IdentityRead:
        """`embeddings`: the views' global embeddings when another stage already computed them."""
        dist = self.distances(self.embed(views) if embeddings is None else embeddings)
        own = dist[sku]
        others = {s: d for s, d in dist.items() if s != sku}
        nearest = min(others, key=others.__getitem__) if others else sku
        near_d = others.get(nearest, own)
        return IdentityRead(
            sku, own, nearest, near_d, own - near_d, self.ceilings.get(sku, 0.0), self.ceilings.get(nearest, 0.0)
        )


def _own_ceiling(bank) -> float:
    """Largest per-item mean distance to the bank itself of its normal items: the calibration
    references, and the cross-fitted enrolment items and confirmed-normal belt items it was
    calibrated on (their "global" member score is this same distance, read against a bank without
    them), which show how far a good item on the belt strays."""
    from detectors.anomaly.model import BELT_KEY, CAL_PREFIX, CROSS_FIT_KEY

    per_item: dict[object, list[float]] = {}
    globals_ = bank.extra.get(CAL_PREFIX + "globals")
    items = bank.extra.get(CAL_PREFIX + "items")
    if globals_ is not None and items is not None and len(globals_):
        dist = bank.global_distances(np.asarray(globals_, dtype=np.float32))
        for item, d in zip(np.asarray(items).tolist(), dist.tolist(), strict=True):
            per_item.setdefault(("reference", item), []).append(d)
    for key in (CROSS_FIT_KEY, BELT_KEY):
        scored = bank.meta.get(key) or {}
        for item, d in zip(scored.get("items", []), scored.get("raw", {}).get("global", []), strict=True):
            per_item.setdefault((key, item), []).append(float(d))
    return max((float(np.mean(v)) for v in per_item.values()), default=0.0)
