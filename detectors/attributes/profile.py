"""Per-SKU attribute profile learned from normal references: how much catalog colour each shows.

A SKU whose colour shows only behind a window or on a small swatch (a shoebox) has a small
normal share; one uniform garment a large one. A threshold per SKU at a fraction of its
lowest normal shares separates a wrong colour from the normal look far better than one
global threshold. Stored as `MODEL_DIR/attributes/profile.json`.

A SKU whose references barely show their catalog colour (a juice bottle whose shaded orange
sides sit outside the tolerance of the catalog's bright orange, tennis balls seen mostly as
their tube) has a threshold near zero that any view of glare or shadow crosses. The profile
says how far its threshold can be trusted (`colour_trust`): not at all at the floor, for a
review only below `RELIABLE_SHARE`. A small share is still a sure one when every reference
showed it and the item shows none (`colour_vanished`): the blue swatch on a running shoe's box
covers 2-3 % of the item, and a wrong-coloured shoe's box shows not one blue pixel.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from pipeline.catalog import Catalog
from pipeline.dataset import Dataset
from pipeline.imageio import ImageError
from pipeline.views import LocalizedView

from .colour import DEFAULT_COLOUR, ColourConfig, measure

PROFILE_FILE = "profile.json"
PROFILE_FORMAT = 1
SHARE_FRACTION = 0.5
"""Threshold = this fraction of the SKU's low normal share (5th percentile)."""
SHARE_FLOOR = 0.005
RELIABLE_SHARE = 0.03
"""A learned threshold below this (references showing the catalog colour on under 6 % of the
item at their low end) supports a review, not a divert. On held-out renders of the simulated
catalog across three FCs' totes and light, thresholds learned from one shift's references
called a wrong colour on 23 of 144 normal items of the six SKUs under it (a juice bottle 17
of 24) and on 2 of 816 of the 34 SKUs above it."""


ALWAYS_SHOWN = 0.01
"""A colour every reference showed on at least this share of the item is part of its look."""
VANISHED_SHARE = 0.0005
"""An item showing a colour on no more than this share (a few stray pixels) shows none of it.

Held-out renders across three FCs' totes and light (2026-12-05): the two running shoes'
references showed their blue on 1.7-2.9 % of the item at the least, 21 good shoes on 2.0 % at
the least, and all 12 wrong-coloured shoes on 0.0 %. A good tennis-ball tube, whose yellow
shows through its wall only as the balls lie, showed 0.14 %: the bound sits well under that,
because a dozen references may not show how low such a colour can go."""


class ColourTrust(Enum):
    """How far a SKU's colour threshold can be trusted."""

    FULL = "full"
    """Normal references show the colour well: a wrong colour may divert."""
    REVIEW = "review"
    """References show the colour on a small share: a wrong colour is held for a person."""
    NONE = "none"
    """References barely show the colour at all (threshold at the floor): no colour verdict."""


@dataclass
class AttributeProfile:
    min_share: dict[str, float] = field(default_factory=dict)
    """SKU -> catalog-colour share under which the item is a wrong colour."""
    n_items: dict[str, int] = field(default_factory=dict)
    lowest_share: dict[str, float] = field(default_factory=dict)
    """SKU -> the least catalog-colour share any of its references showed."""

    @classmethod
    def from_shares(cls, shares: dict[str, list[float]]) -> AttributeProfile:
        """The profile of SKUs' measured reference shares (SKUs with none are left out)."""
        measured = {sku: s for sku, s in shares.items() if s}
        return cls(
            min_share={sku: threshold_from_shares(s) for sku, s in measured.items()},
            n_items={sku: len(s) for sku, s in measured.items()},
            lowest_share={sku: float(min(s)) for sku, s in measured.items()},
        )

    def colour_vanished(self, sku: str, share: float) -> bool:
        """Whether an item shows none of a colour that every reference of `sku` showed: a wrong
        colour however small the SKU's threshold (a swatch on a box)."""
        lowest = self.lowest_share.get(sku)
        return lowest is not None and lowest >= ALWAYS_SHOWN and share <= VANISHED_SHARE

    def colour_trust(self, sku: str) -> ColourTrust:
        """Trust in `sku`'s learned threshold; a SKU without one keeps the check's default (full)."""
        threshold = self.min_share.get(sku)
        if threshold is None:
            return ColourTrust.FULL
        if threshold <= SHARE_FLOOR:
            return ColourTrust.NONE
        return ColourTrust.REVIEW if threshold < RELIABLE_SHARE else ColourTrust.FULL

    def save(self, folder: Path | str) -> Path:
        path = Path(folder) / PROFILE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        info = {
            "format": PROFILE_FORMAT,
            "min_share": self.min_share,
            "n_items": self.n_items,
            "lowest_share": self.lowest_share,
        }
        path.write_text(json.dumps(info, indent=1, sort_keys=True))
        return path

    @classmethod
    def load(cls, folder: Path | str) -> AttributeProfile:
        info = json.loads((Path(folder) / PROFILE_FILE).read_text())
        if info.get("format") != PROFILE_FORMAT:
            raise ValueError(f"{folder}: attribute profile format {info.get('format')!r}, expected {PROFILE_FORMAT}")
        # profiles written before the least share was kept: no colour counts as always shown
        return cls(min_share=info["min_share"], n_items=info["n_items"], lowest_share=info.get("lowest_share", {}))


def threshold_from_shares(shares: list[float]) -> float:
    """A fraction of the low end of normal shares, never below a floor (noise pixels)."""
    if not shares:
        raise ValueError("no normal shares measured: nothing to learn a threshold from")
    return max(SHARE_FLOOR, SHARE_FRACTION * float(np.quantile(shares, 0.05)))


def located_views(images: dict[str, np.ndarray]) -> list[tuple[LocalizedView, np.ndarray]]:
    """(view, frame) for each camera whose frame the item was found in: what `measure` reads."""
    from detectors.localize import localize

    views = [(localize(img, cam), img) for cam, img in images.items()]
    return [(v, img) for v, img in views if v.found]


def catalog_colour_share(
    images: dict[str, np.ndarray], catalog_rgb: list[int], cfg: ColourConfig = DEFAULT_COLOUR
) -> float | None:
    """Share of an item's pixels (all views it is found on) showing the catalog colour; None
    when no view could be measured."""
    views = located_views(images)
    read = measure(views, catalog_rgb, cfg, min_share=0.0) if views else None
    return read.share if read is not None and read.views else None


def fit_profile(dataset_dir: Path | str, cfg: ColourConfig = DEFAULT_COLOUR, max_per_sku: int = 12) -> AttributeProfile:
    """Measure every normal reference item (enrol and calibration splits) of a dataset."""
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
        share = catalog_colour_share(images, record.colour_rgb, cfg)
        if share is not None:
            shares[record.sku].append(share)
    # A SKU none of whose references could be measured keeps the colour check's default threshold.
    return AttributeProfile.from_shares(shares)
