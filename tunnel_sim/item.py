"""One item through the tunnel: decide its look from its defects, draw it, photograph it.

Random streams are split by purpose (look, scene, damage, sensor), so the same item rendered
with and without a defect differs only where the defect is: that is what makes the masks
checkable and lets detector tests compare a defect with its defect-free twin.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import numpy as np

from pipeline.types import CatalogRecord, DefectTruth, GroundTruth
from tunnel_sim.catalog import COLOURS, DEFAULT_TODAY, SHELF_LIFE_DAYS, catalog_records
from tunnel_sim.dates import compose_date_lines
from tunnel_sim.defects import ALL_DEFECTS, PHYSICAL_DRAWERS, apply_damage, region_masks
from tunnel_sim.render import ItemLook, default_look, product_for, stable_int
from tunnel_sim.scene import CAMERAS, FC_CONVEYANCE, RIG, Conveyance, render_view, sample_lighting, sample_pose
from tunnel_sim.text import PRINT_STYLES

MIN_MASK_PIXELS = 12
"""A defect counts as visible in a frame when at least this many of its pixels show."""

VARIANT_SETS: tuple[tuple[str, ...], ...] = (
    ("S", "M", "L", "XL"),
    ("TWIN", "FULL", "QUEEN", "KING"),
    ("EU 40", "EU 41", "EU 42", "EU 43", "EU 44", "EU 45"),
    ("P14", "P15", "P16", "P16 Pro"),
)


@dataclass
class RenderedItem:
    """Frames, truth and masks of one item; unpacks as (images, truth, masks)."""

    images: dict[str, np.ndarray]
    truth: GroundTruth
    masks: dict[str, dict[str, np.ndarray]]
    """defect type -> camera -> bool mask (only frames where the defect shows)."""
    item_masks: dict[str, np.ndarray] = field(default_factory=dict)
    """camera -> bool silhouette of the item (for localisation tests)."""

    def __iter__(self) -> Iterator:
        return iter((self.images, self.truth, self.masks))


def wrong_variant(current: str, rng: np.random.Generator) -> str:
    """Another value from the same family of sizes/models (KING for TWIN, L for M)."""
    for options in VARIANT_SETS:
        if current in options:
            others = [o for o in options if o != current]
            return others[int(rng.integers(len(others)))]
    return current + "X"


def _wrong_colour(current: tuple[int, int, int], rng: np.random.Generator) -> tuple[str, tuple[int, int, int]]:
    far = [(n, c) for n, c in COLOURS.items() if sum(abs(a - b) for a, b in zip(c, current, strict=True)) > 150]
    name, colour = far[int(rng.integers(len(far)))]
    return name, colour


def pick_wrong_item(record: CatalogRecord, rng: np.random.Generator, records: Sequence[CatalogRecord]) -> CatalogRecord:
    """A different SKU, from the same category half of the time (the classic mix-up)."""
    same = [r for r in records if r.category == record.category and r.sku != record.sku]
    other = [r for r in records if r.sku != record.sku]
    pool = same if same and rng.random() < 0.5 else other
    return pool[int(rng.integers(len(pool)))]


def render_item(
    record: CatalogRecord,
    *,
    defects: Sequence[str] = (),
    seed: int = 0,
    cameras: Sequence[str] = CAMERAS,
    today: date = DEFAULT_TODAY,
    printed_expiry: date | None = None,
    manufactured: date | None = None,
    lot_code: str | None = None,
    benign: Sequence[str] = (),
    fc: str = "FC-BER1",
    item_id: str = "item",
    actual_sku: CatalogRecord | None = None,
) -> RenderedItem:
    """Photograph one item with the given defects and benign variations.

    `printed_expiry` is what the lot's packages carry (default: comfortably in date); for
    `date_mismatch` pass the differing date. Mask paths in the truth follow the dataset layout
    (`masks/<item_id>/<camera>__<defect>.png`).
    """
    unknown = [d for d in defects if d not in ALL_DEFECTS]
    if unknown:
        raise ValueError(f"unknown defect types {unknown}; known: {list(ALL_DEFECTS)}")
    look_rng = np.random.default_rng([seed, 1])
    defect_rng = np.random.default_rng([seed, 3])
    look, truth_extra = _look(
        record, defects, benign, look_rng, defect_rng, today, printed_expiry, manufactured, lot_code, actual_sku
    )
    product = product_for(look)
    texture_masks = {}
    for name in defects:
        if name == "transit_damage":
            continue
        stream = np.random.default_rng([seed, 3, ALL_DEFECTS.index(name)])
        if name in PHYSICAL_DRAWERS and (name != "unreadable_date" or "date_print" in product.regions):
            texture_masks[name] = apply_damage(product, name, stream)
        else:
            texture_masks[name] = region_masks(product, name)
    scene_rng = np.random.default_rng([seed, 2])
    pose = sample_pose(scene_rng, unusual="unusual_pose" in benign)
    lighting = sample_lighting(scene_rng)
    belt_offset = int(scene_rng.integers(0, 640))
    conveyance = _conveyance(fc, "other_fc_tote" in benign, scene_rng)
    images: dict[str, np.ndarray] = {}
    masks: dict[str, dict[str, np.ndarray]] = {name: {} for name in texture_masks}
    item_masks: dict[str, np.ndarray] = {}
    for index, cam in enumerate(cameras):
        noise = np.random.default_rng([seed, 4, index])
        frame, frame_masks, silhouette = render_view(
            product, texture_masks, pose, RIG[cam], lighting, conveyance, belt_offset, noise
        )
        images[cam] = frame
        item_masks[cam] = silhouette
        for name, mask in frame_masks.items():
            if int(mask.sum()) >= MIN_MASK_PIXELS:
                masks[name][cam] = mask
    truth = GroundTruth(
        printed_expiry=truth_extra["printed_expiry"],
        printed_manufactured=truth_extra["printed_manufactured"],
        benign=list(benign),
        actual_sku=actual_sku.sku if actual_sku is not None and "wrong_item" in defects else None,
    )
    for name in defects:
        if name == "transit_damage":
            truth.defects.append(DefectTruth(type=name, visible=False, details={"after": "tunnel"}))
            continue
        if not masks.get(name):
            continue  # drawn where no camera sees it: not a defect the tunnel could catch
        paths = {cam: f"masks/{item_id}/{cam}__{name}.png" for cam in masks[name]}
        truth.defects.append(DefectTruth(type=name, masks=paths, details=truth_extra["details"].get(name, {})))
    masks = {k: v for k, v in masks.items() if v}
    return RenderedItem(images=images, truth=truth, masks=masks, item_masks=item_masks)


def _conveyance(fc: str, other_tote: bool, rng: np.random.Generator) -> Conveyance:
    home = FC_CONVEYANCE.get(fc, FC_CONVEYANCE["FC-BER1"])
    choice = int(rng.integers(len(FC_CONVEYANCE)))  # drawn always, so pose/lighting streams stay aligned
    if not other_tote:
        return home
    totes = [c for c in FC_CONVEYANCE.values() if c.kind == "tote" and c != home]
    return totes[choice % len(totes)]


def _look(
    record: CatalogRecord,
    defects: Sequence[str],
    benign: Sequence[str],
    look_rng: np.random.Generator,
    defect_rng: np.random.Generator,
    today: date,
    printed_expiry: date | None,
    manufactured: date | None,
    lot_code: str | None,
    actual: CatalogRecord | None,
) -> tuple[ItemLook, dict]:
    details: dict[str, dict] = {}
    shown = record
    if "wrong_item" in defects:
        shown = actual or pick_wrong_item(record, defect_rng, catalog_records())
        details["wrong_item"] = {"actual_sku": shown.sku}
    look = default_look(shown)
    # A lot is printed by one coder in one wording; without a lot the item draws its own.
    lot_rng = np.random.default_rng([stable_int(lot_code), 11]) if lot_code else look_rng
    style = PRINT_STYLES[int(lot_rng.integers(len(PRINT_STYLES)))]
    if "packaging_variant" in benign and len(shown.packaging_variants) > 1:
        look = replace(look, packaging=shown.packaging_variants[1])
    if "wrong_variant_label" in defects and look.variant_text:
        printed = wrong_variant(look.variant_text, defect_rng)
        details["wrong_variant_label"] = {"expected": look.variant_text, "printed": printed}
        look = replace(look, variant_text=printed)
    if "wrong_colour" in defects:
        name, colour = _wrong_colour(look.colour_rgb, defect_rng)
        details["wrong_colour"] = {"expected": shown.attributes.get("colour"), "actual": name}
        look = replace(look, colour_rgb=colour)
    if "empty_container" in defects:
        look = replace(look, fill=0.0 if shown.category == "sports" else 0.3)
    if "missing_label" in defects:
        look = replace(look, label_present=False)
    truth = {"printed_expiry": None, "printed_manufactured": None, "details": details}
    if shown.expiry.carries_date:
        shelf = SHELF_LIFE_DAYS.get(shown.category, 365)
        expiry = printed_expiry or today + timedelta(days=shown.expiry.min_remaining_days + 150)
        made = manufactured or expiry - timedelta(days=shelf)
        if "expired_date" in defects and expiry >= today + timedelta(days=shown.expiry.min_remaining_days):
            expiry = today - timedelta(days=int(defect_rng.integers(3, 120)))
            made = expiry - timedelta(days=shelf)
        date_rng = np.random.default_rng(lot_rng.integers(2**32))
        language = shown.label_languages[0]
        lines = compose_date_lines(
            date_rng,
            expiry=expiry,
            manufactured=made,
            language=language,
            order=shown.expiry.date_order,
            lot_code=lot_code or f"L{look_rng.integers(1000, 9999)}",
            month_precision_ok=shown.expiry.month_precision_ok,
        )
        look = replace(look, date_lines=lines, print_style=style)
        if look.label_present:
            truth["printed_expiry"] = lines.expiry_iso
            truth["printed_manufactured"] = lines.manufactured_iso
            for name in ("expired_date", "date_mismatch", "unreadable_date"):
                if name in defects:
                    details[name] = {"printed_expiry": lines.expiry_iso, "text": " / ".join(lines.lines)}
    return look, truth
