"""Per-SKU attribute profile learned from normal references: how much catalog colour each shows.

A SKU whose colour shows only behind a window or on a small swatch (a shoebox) has a small
normal share; one uniform garment a large one. A threshold per SKU at a fraction of its
lowest normal shares separates a wrong colour from the normal look far better than one
global threshold. Stored as `MODEL_DIR/attributes/profile.json`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.catalog import Catalog
from pipeline.dataset import Dataset
from pipeline.imageio import ImageError

from .colour import DEFAULT_COLOUR, ColourConfig, measure

PROFILE_FILE = "profile.json"
PROFILE_FORMAT = 1
SHARE_FRACTION = 0.5
"""Threshold = this fraction of the SKU's low normal share (5th percentile)."""
SHARE_FLOOR = 0.005


@dataclass
class AttributeProfile:
    min_share: dict[str, float] = field(default_factory=dict)
    """SKU -> catalog-colour share under which the item is a wrong colour."""
    n_items: dict[str, int] = field(default_factory=dict)

    def save(self, folder: Path | str) -> Path:
        path = Path(folder) / PROFILE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        info = {"format": PROFILE_FORMAT, "min_share": self.min_share, "n_items": self.n_items}
        path.write_text(json.dumps(info, indent=1, sort_keys=True))
        return path

    @classmethod
    def load(cls, folder: Path | str) -> AttributeProfile:
        info = json.loads((Path(folder) / PROFILE_FILE).read_text())
        if info.get("format") != PROFILE_FORMAT:
            raise ValueError(f"{folder}: attribute profile format {info.get('format')!r}, expected {PROFILE_FORMAT}")
        return cls(min_share=info["min_share"], n_items=info["n_items"])


def threshold_from_shares(shares: list[float]) -> float:
    """A fraction of the low end of normal shares, never below a floor (noise pixels)."""
    if not shares:
        raise ValueError("no normal shares measured: nothing to learn a threshold from")
    return max(SHARE_FLOOR, SHARE_FRACTION * float(np.quantile(shares, 0.05)))


def fit_profile(dataset_dir: Path | str, cfg: ColourConfig = DEFAULT_COLOUR, max_per_sku: int = 12) -> AttributeProfile:
    """Measure every normal reference item (enrol and calibration splits) of a dataset."""
    from detectors.localize import localize

    dataset = Dataset.open(dataset_dir)
    catalog: Catalog = dataset.catalog
    shares: dict[str, list[float]] = defaultdict(list)
    for item in dataset.references():
        record = catalog.skus.get(item.capture.sku)
        if record is None or record.colour_rgb is None or len(shares.get(record.sku, ())) >= max_per_sku:
            continue
        try:
            images = item.capture.images()
        except ImageError:
            continue
        views = [(localize(img, cam), img) for cam, img in images.items()]
        views = [(v, img) for v, img in views if v.found]
        read = measure(views, record.colour_rgb, cfg, min_share=0.0) if views else None
        if read is not None and read.views:
            shares[record.sku].append(read.share)
    # A SKU none of whose references could be measured keeps the colour check's default threshold.
    measured = {sku: s for sku, s in shares.items() if s}
    return AttributeProfile(
        min_share={sku: threshold_from_shares(s) for sku, s in measured.items()},
        n_items={sku: len(s) for sku, s in measured.items()},
    )
