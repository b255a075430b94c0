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

The profile also keeps how large each camera sees the item (`whole_area`): a view in a tote of
the catalog colour is only trusted when the item was cut out at its normal size (`uncut`). A SKU
whose every reference sits in a surround of its colour (a black case on a dark belt) is learned
and read in that surround (`learned_in_own_colour`).
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

from .colour import DEFAULT_COLOUR, ColourConfig, ColourRead, camouflaged, measure

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


WHOLE_AREA_QUANTILE = 0.1
"""The low end of a camera's reference areas that `whole_area` keeps."""
WHOLE_FRACTION = 0.85
"""A view in a tote of the catalog colour whose item covers at least this fraction of that low
end was cut out whole, not cut down to the parts that differ from the tote.

Held-out renders of the simulated catalog in the yellow and blue totes (2026-12-05): good
items' views in a tote of their own colour had a median 0.53 of their references' low area
(cut down to stickers, print and windows); items sent in their place had a median 0.90 and
53 % of them reached 0.85."""
OWN_TOTE_FRACTION = 0.2
"""In views found whole in a tote of the catalog colour (read without white balance, and
tinted by the tote), a wrong colour is a share of at most this fraction of the least any
reference showed. Same renders: good items there showed at worst 0.35 of it (a blue book in
the blue tote), and 23 of 43 items sent in their place showed under 0.2."""


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
    whole_area: dict[str, dict[str, float]] = field(default_factory=dict)
    """SKU -> camera -> the low end of the item's area (frame pixels) in references' views that
    were not in a tote of the catalog colour."""
    learned_in_own_colour: set[str] = field(default_factory=set)
    """SKUs none of whose references showed a view outside a surround of their catalog colour,
    learned from those views as they were (`ProfileReadings`)."""

    @classmethod
    def from_shares(
        cls,
        shares: dict[str, list[float]],
        areas: dict[str, dict[str, list[float]]] | None = None,
        learned_in_own_colour: set[str] | None = None,
    ) -> AttributeProfile:
        """The profile of SKUs' measured reference shares (SKUs with none are left out) and,
        when given, their views' item areas per camera (`reference_reading`)."""
        measured = {sku: s for sku, s in shares.items() if s}
        return cls(
            learned_in_own_colour={sku for sku in learned_in_own_colour or () if sku in measured},
            min_share={sku: threshold_from_shares(s) for sku, s in measured.items()},
            n_items={sku: len(s) for sku, s in measured.items()},
            lowest_share={sku: float(min(s)) for sku, s in measured.items()},
            whole_area={
                sku: {cam: float(np.quantile(a, WHOLE_AREA_QUANTILE)) for cam, a in cams.items() if a}
                for sku, cams in (areas or {}).items()
                if any(cams.values())
            },
        )

    def uncut(self, sku: str, view: LocalizedView) -> bool:
        """Whether the item was cut out at its normal size in this view (see `WHOLE_FRACTION`);
        False for a camera or SKU the profile has no areas for."""
        low = self.whole_area.get(sku, {}).get(view.camera)
        return low is not None and view.frame_area >= WHOLE_FRACTION * low

    def colour_vanished(self, sku: str, share: float) -> bool:
        """Whether an item shows none of a colour that every reference of `sku` showed: a wrong
        colour however small the SKU's threshold (a swatch on a box)."""
        lowest = self.lowest_share.get(sku)
        return lowest is not None and lowest >= ALWAYS_SHOWN and share <= VANISHED_SHARE

    def gone_in_own_tote(self, sku: str, share: float) -> bool:
        """Whether an item found whole only in totes of its catalog colour shows too little of it
        to be that SKU (see `OWN_TOTE_FRACTION`); False for a SKU without references."""
        lowest = self.lowest_share.get(sku)
        return lowest is not None and share <= OWN_TOTE_FRACTION * lowest

    def read_colour(
        self,
        sku: str,
        catalog_rgb: list[int],
        views: list[tuple[LocalizedView, np.ndarray]],
        cfg: ColourConfig = DEFAULT_COLOUR,
    ) -> tuple[ColourRead, bool]:
        """The colour read on the views (with their frames) not in a tote of the catalog colour;
        when there are none, on those where the item was found whole all the same (`uncut`). The
        flag says which: a read in such a tote is tinted by it (see `wrong_colour`)."""
        read = measure(views, catalog_rgb, cfg, self.min_share.get(sku))
        if read.views:
            return read, False
        whole = [(v, f) for v, f in views if self.uncut(sku, v)]
        return measure(whole, catalog_rgb, cfg, self.min_share.get(sku), keep_camouflaged=True), True

    def wrong_colour(self, sku: str, read: ColourRead, in_own_tote: bool) -> bool:
        """Whether a read (`read_colour`) shows too little of the catalog colour for `sku`."""
        if read.matches:
            return False
        # a SKU learned in its own colour's surround was measured there just as this item is
        return not in_own_tote or sku in self.learned_in_own_colour or self.gone_in_own_tote(sku, read.share)

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
            "whole_area": self.whole_area,
            "learned_in_own_colour": sorted(self.learned_in_own_colour),
        }
        path.write_text(json.dumps(info, indent=1, sort_keys=True))
        return path

    @classmethod
    def load(cls, folder: Path | str) -> AttributeProfile:
        info = json.loads((Path(folder) / PROFILE_FILE).read_text())
        if info.get("format") != PROFILE_FORMAT:
            raise ValueError(f"{folder}: attribute profile format {info.get('format')!r}, expected {PROFILE_FORMAT}")
        # profiles written before the least share or the areas were kept: no colour counts as
        # always shown, no view in a tote of the catalog colour as whole
        return cls(
            min_share=info["min_share"],
            n_items=info["n_items"],
            lowest_share=info.get("lowest_share", {}),
            whole_area=info.get("whole_area", {}),
            learned_in_own_colour=set(info.get("learned_in_own_colour", ())),
        )


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
    return reference_reading(located_views(images), catalog_rgb, cfg)[0]


def reference_reading(
    views: list[tuple[LocalizedView, np.ndarray]],
    catalog_rgb: list[int],
    cfg: ColourConfig = DEFAULT_COLOUR,
    in_own_colour: bool = False,
) -> tuple[float | None, dict[str, float]]:
    """What a normal reference adds to the profile: its catalog-colour share (None when no view
    could be measured) and the item's area per camera, on the views not in a tote of that colour
    or, with `in_own_colour`, on every view as it is."""
    if not in_own_colour:
        views = [(v, f) for v, f in views if not camouflaged(f, v.box, catalog_rgb, cfg)]
    read = measure(views, catalog_rgb, cfg, min_share=0.0, keep_camouflaged=True) if views else None
    return (read.share if read is not None and read.views else None), {v.camera: v.frame_area for v, _ in views}


@dataclass
class ProfileReadings:
    """Normal references' readings, SKU by SKU, turned into a profile.

    A SKU is learned from its references' views that are not in a surround of its catalog colour.
    A SKU that has none (a black phone case whose home belt is dark grey, within the colour
    tolerance of black) is learned from all its views instead, as they are: its items on that belt
    are then read the same way (`AttributeProfile.read_colour`), rather than never."""

    cfg: ColourConfig = DEFAULT_COLOUR
    clear: dict[str, list[tuple[float | None, dict[str, float]]]] = field(default_factory=lambda: defaultdict(list))
    in_own_colour: dict[str, list[tuple[float | None, dict[str, float]]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def add(self, sku: str, views: list[tuple[LocalizedView, np.ndarray]], catalog_rgb: list[int]) -> None:
        """One reference item's located views (with their frames)."""
        self.clear[sku].append(reference_reading(views, catalog_rgb, self.cfg))
        self.in_own_colour[sku].append(reference_reading(views, catalog_rgb, self.cfg, in_own_colour=True))

    def measured(self, sku: str) -> int:
        """References of `sku` whose colour share could be read (clear views or not)."""
        return sum(share is not None for share, _ in self.in_own_colour.get(sku, ()))

    def profile(self) -> AttributeProfile:
        """Each SKU from its clear readings, or from all its views when it has none."""
        shares: dict[str, list[float]] = {}
        areas: dict[str, dict[str, list[float]]] = {}
        in_own_colour = set()
        for sku, clear in self.clear.items():
            readings = clear
            if not any(share is not None for share, _ in clear):
                readings = self.in_own_colour[sku]
                in_own_colour.add(sku)
            shares[sku] = [share for share, _ in readings if share is not None]
            areas[sku] = defaultdict(list)
            for _, view_areas in readings:
                for camera, area in view_areas.items():
                    areas[sku][camera].append(area)
        return AttributeProfile.from_shares(shares, areas, in_own_colour)


def fit_profile(dataset_dir: Path | str, cfg: ColourConfig = DEFAULT_COLOUR, max_per_sku: int = 12) -> AttributeProfile:
    """Measure every normal reference item (enrol and calibration splits) of a dataset."""
    dataset = Dataset.open(dataset_dir)
    catalog: Catalog = dataset.catalog
    readings = ProfileReadings(cfg)
    for item in dataset.references():
        record = catalog.skus.get(item.capture.sku)
        if record is None or record.colour_rgb is None or readings.measured(record.sku) >= max_per_sku:
            continue
        try:
            images = item.capture.images()
        except ImageError:
            continue
        readings.add(record.sku, located_views(images), record.colour_rgb)
    # A SKU none of whose references could be measured keeps the colour check's default threshold.
    return readings.profile()
