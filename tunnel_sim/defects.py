"""Defects: which apply to which product, and how physical damage is drawn in texture space.

Damage is drawn on the item's surface textures together with its mask, so the scene warps
both the same way; label, colour, item and date defects change what is printed (decided in
`ItemLook`) and their masks are the label, the date print or the whole item.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from pipeline.types import CatalogRecord
from tunnel_sim.render import Product, Region

Masks = dict[tuple[int, str], np.ndarray]

PHYSICAL_DEFECTS = ("torn_box", "crushed_corner", "bent_cover", "broken_seal", "stain", "puncture")
LABEL_DEFECTS = ("wrong_variant_label", "missing_label", "unreadable_date")
DATE_DEFECTS = ("expired_date", "date_mismatch")
ITEM_DEFECTS = ("wrong_colour", "wrong_item", "empty_container")
ALL_DEFECTS = (*PHYSICAL_DEFECTS, *LABEL_DEFECTS, *DATE_DEFECTS, *ITEM_DEFECTS, "transit_damage")
BENIGN = ("packaging_variant", "other_fc_tote", "unusual_pose")

_CARTONS = {"food", "pharma", "phone_case", "footwear"}


def applicable_defects(record: CatalogRecord) -> tuple[str, ...]:
    """Defect types that can physically happen to this SKU."""
    cat = record.category
    out = ["stain", "wrong_item"]
    if cat in _CARTONS:
        out += ["torn_box", "crushed_corner"]
    if cat == "book":
        out += ["bent_cover", "crushed_corner"]
    if cat in {"food", "pharma", "bottle", "sports", "pet_food"}:
        out.append("broken_seal")
    if cat in {"pet_food", "apparel", "bedding", "food"}:
        out.append("puncture")
    if cat in {"sports", "bottle"} and record.sku != "BOTTLE-SHAMPOO-US-400":
        out.append("empty_container")
    if any(k in record.attributes for k in ("size", "model")) and cat != "pet_food":
        out.append("wrong_variant_label")
    if cat in {"apparel", "phone_case", "footwear", "bedding"}:
        out.append("wrong_colour")
    if record.expiry.carries_date:
        out += ["expired_date", "unreadable_date"]
    if cat not in {"book", "sports"} and record.sku != "BOTTLE-SHAMPOO-US-400":
        out.append("missing_label")
    return tuple(out)


def _jagged_polygon(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float, n: int = 18) -> np.ndarray:
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(0.55, 1.0, n)
    return np.stack([cx + rx * radii * np.cos(angles), cy + ry * radii * np.sin(angles)], axis=1).astype(np.int32)


def _surface_choice(product: Product, rng: np.random.Generator, prefer_top: float = 0.7) -> tuple[int, str]:
    part = int(rng.integers(len(product.parts))) if len(product.parts) > 1 and rng.random() < 0.3 else 0
    return part, ("top" if rng.random() < prefer_top else "side")


def _visible_x(product: Product, key: tuple[int, str], rng: np.random.Generator, width: int) -> float:
    """An x on the surface that a camera sees: side damage goes on one of the long walls."""
    if key[1] == "top":
        return float(rng.uniform(0.2, 0.8) * width)
    edges = product.parts[key[0]].edge_px
    lengths = np.diff(edges)
    candidates = np.flatnonzero(lengths >= 0.6 * lengths.max())
    i = int(candidates[int(rng.integers(len(candidates)))])
    return float(edges[i] + rng.uniform(0.25, 0.75) * lengths[i])


def _texture(product: Product, key: tuple[int, str]) -> np.ndarray:
    part = product.parts[key[0]]
    return part.top if key[1] == "top" else part.side


def _blend(texture: np.ndarray, mask: np.ndarray, colour: np.ndarray | tuple[int, ...], strength: float = 1.0) -> None:
    a = (mask.astype(np.float32) / 255.0 * strength)[..., None]
    rgb = texture[..., :3].astype(np.float32)
    texture[..., :3] = (rgb * (1 - a) + np.asarray(colour, np.float32) * a).astype(np.uint8)
    # damage on transparent walls (bags, bottles) is opaque where drawn
    texture[..., 3] = np.maximum(texture[..., 3], (mask.astype(np.float32) * strength).astype(np.uint8))


def _on_item(texture: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Keep only the part of a mask that lies on the item (alpha), dropping tiny remnants."""
    mask = np.where(texture[..., 3] > 40, mask, 0).astype(np.uint8)
    return mask


def _tear(product: Product, rng: np.random.Generator) -> Masks:
    key = _surface_choice(product, rng)
    tex = _texture(product, key)
    h, w = tex.shape[:2]
    edge_y = 0 if key[1] == "side" else rng.choice([0, h])
    cx = _visible_x(product, key, rng, w)
    poly = _jagged_polygon(rng, cx, edge_y, rng.uniform(0.08, 0.18) * w, rng.uniform(0.25, 0.5) * h)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [poly], 255)
    inner = np.full((h, w, 3), (186, 150, 104), np.uint8)
    stripes = (np.arange(w) % 9 < 3)[None, :]
    inner[np.broadcast_to(stripes, (h, w))] = (160, 124, 84)
    rim = cv2.dilate(mask, np.ones((5, 5), np.uint8)) - mask
    _blend(tex, mask, inner.astype(np.float32))
    _blend(tex, rim, (245, 240, 230), 0.9)
    full = cv2.bitwise_or(mask, rim)
    return {key: _on_item(tex, full)}


def _crush(product: Product, rng: np.random.Generator) -> Masks:
    part = product.parts[0]
    corner = int(rng.integers(4))
    th, tw = part.top.shape[:2]
    cx, cy = [(0, th), (tw, th), (tw, 0), (0, 0)][corner]  # texture corners for outline vertices 0..3
    size = rng.uniform(0.18, 0.3) * min(th, tw)
    top_mask = np.zeros((th, tw), np.uint8)
    cv2.fillPoly(top_mask, [_jagged_polygon(rng, cx, cy, size, size)], 255)
    _crumple(part.top, top_mask, rng)
    sh, sw = part.side.shape[:2]
    x = part.edge_px[min(corner, len(part.edge_px) - 1)]
    side_mask = np.zeros((sh, sw), np.uint8)
    for wrap in (x, x - sw, x + sw):
        cv2.fillPoly(side_mask, [_jagged_polygon(rng, wrap, 0, size, sh * 0.8)], 255)
    _crumple(part.side, side_mask, rng)
    return {(0, "top"): _on_item(part.top, top_mask), (0, "side"): _on_item(part.side, side_mask)}


def _crumple(tex: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
    """Creases: alternating dark and light streaks and an overall shadow inside the mask."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return
    shade = np.zeros((h, w), np.float32)
    for _ in range(14):
        i = int(rng.integers(len(xs)))
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(15, 60)
        dx, dy = np.cos(angle) * length, np.sin(angle) * length
        p0 = (int(xs[i] - dx), int(ys[i] - dy))
        p1 = (int(xs[i] + dx), int(ys[i] + dy))
        cv2.line(shade, p0, p1, float(rng.choice([-1.0, 0.8])), int(rng.integers(2, 5)), cv2.LINE_AA)
    shade = cv2.GaussianBlur(shade, (0, 0), 1.5)
    factor = (1 - 0.3 * (mask / 255.0)) * (1 + 0.35 * shade * (mask / 255.0))
    tex[..., :3] = np.clip(tex[..., :3] * factor[..., None], 0, 255).astype(np.uint8)


def _bend(product: Product, rng: np.random.Generator) -> Masks:
    part = product.parts[0]
    th, tw = part.top.shape[:2]
    corner = [(0, 0), (tw, 0), (tw, th), (0, th)][int(rng.integers(4))]
    size = rng.uniform(0.2, 0.35) * min(th, tw)
    sx = 1 if corner[0] == 0 else -1
    sy = 1 if corner[1] == 0 else -1
    tri = np.array([corner, (corner[0] + sx * size, corner[1]), (corner[0], corner[1] + sy * size)], np.int32)
    mask = np.zeros((th, tw), np.uint8)
    cv2.fillPoly(mask, [tri], 255)
    _blend(part.top, mask, (232, 226, 212))
    crease = np.zeros_like(mask)
    cv2.line(crease, tuple(int(v) for v in tri[1]), tuple(int(v) for v in tri[2]), 255, 4, cv2.LINE_AA)
    _blend(part.top, crease, (70, 60, 50), 0.8)
    return {(0, "top"): cv2.bitwise_or(mask, crease)}


def _region_mask(product: Product, region: Region) -> tuple[tuple[int, str], np.ndarray]:
    tex = product.surface(region)
    mask = np.zeros(tex.shape[:2], np.uint8)
    x0, y0, x1, y1 = region.box
    mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = 255
    return (region.part, region.surface), mask


def _broken_seal(product: Product, rng: np.random.Generator) -> Masks:
    region = product.regions.get("seal")
    if region is None:
        return _tear(product, rng)
    key, area = _region_mask(product, region)
    tex = _texture(product, key)
    x0, y0, x1, y1 = region.box
    w, h = x1 - x0, y1 - y0
    mask = np.zeros_like(area)
    gx = int(x0 + rng.uniform(0.2, 0.6) * w)
    gap_w = max(6, int(w * rng.uniform(0.12, 0.3)))
    pts = [(gx + int(rng.integers(-4, 5)), y0 + int(k * h / 6)) for k in range(7)]
    pts += [(gx + gap_w + int(rng.integers(-4, 5)), y0 + int(k * h / 6)) for k in range(6, -1, -1)]
    cv2.fillPoly(mask, [np.array(pts, np.int32)], 255)
    _blend(tex, mask, (35, 30, 28), 0.92)
    flap = np.zeros_like(mask)
    cv2.fillPoly(flap, [np.array([(gx, y0), (gx - gap_w, y0 + h // 2), (gx, y1)], np.int32)], 255)
    _blend(tex, flap, (250, 248, 240), 0.8)
    return {key: _on_item(tex, cv2.bitwise_or(mask, flap))}


def _stain(product: Product, rng: np.random.Generator) -> Masks:
    key = _surface_choice(product, rng, 0.6)
    tex = _texture(product, key)
    h, w = tex.shape[:2]
    r = rng.uniform(0.12, 0.25) * min(w, h * (3 if key[1] == "side" else 1))
    poly = _jagged_polygon(rng, _visible_x(product, key, rng, w), rng.uniform(0.3, 0.7) * h, r, min(r, h * 0.45), 24)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [poly], 255)
    mask = cv2.GaussianBlur(mask, (0, 0), 3)
    mask = np.where(mask > 60, mask, 0).astype(np.uint8)
    rgb = tex[..., :3].astype(np.float32)
    grey = rgb.mean(axis=2, keepdims=True)
    wet = (0.55 * rgb + 0.45 * grey) * np.array([0.78, 0.72, 0.6], np.float32)
    ring = cv2.dilate(mask, np.ones((5, 5), np.uint8)) - cv2.erode(mask, np.ones((5, 5), np.uint8))
    _blend(tex, mask, wet, 0.85)
    _blend(tex, ring, (96, 72, 44), 0.6)
    return {key: _on_item(tex, np.maximum(mask, ring))}


def _puncture(product: Product, rng: np.random.Generator) -> Masks:
    key = _surface_choice(product, rng)
    tex = _texture(product, key)
    h, w = tex.shape[:2]
    cx, cy = _visible_x(product, key, rng, w), rng.uniform(0.3, 0.7) * h
    r = rng.uniform(10, 22)
    hole = np.zeros((h, w), np.uint8)
    cv2.fillPoly(hole, [_jagged_polygon(rng, cx, cy, r, r * rng.uniform(0.6, 1.0), 12)], 255)
    rim = cv2.dilate(hole, np.ones((9, 9), np.uint8)) - hole
    _blend(tex, hole, (18, 16, 14))
    _blend(tex, rim, (235, 232, 224), 0.7)
    return {key: _on_item(tex, cv2.bitwise_or(hole, rim))}


def _smudge(product: Product, rng: np.random.Generator) -> Masks:
    """Smeared ink over the date print: streaked, blurred and partly rubbed off."""
    region = product.regions["date_print"]
    key, mask = _region_mask(product, region)
    tex = _texture(product, key)
    x0, y0, x1, y1 = region.box
    patch = tex[y0:y1, x0:x1, :3]
    if patch.size == 0:
        return {key: mask}
    k = int(rng.integers(9, 17))
    smear = cv2.filter2D(patch, -1, np.full((1, k), 1.0 / k, np.float32))
    smear = cv2.GaussianBlur(smear, (0, 0), 2.2)
    blot = np.zeros(patch.shape[:2], np.uint8)
    for _ in range(4):
        cv2.ellipse(
            blot,
            (int(rng.uniform(0, patch.shape[1])), int(rng.uniform(0, patch.shape[0]))),
            (int(rng.uniform(8, 30)), int(rng.uniform(5, 14))),
            float(rng.uniform(0, 180)),
            0,
            360,
            255,
            -1,
        )
    blot = cv2.GaussianBlur(blot, (0, 0), 3).astype(np.float32)[..., None] / 255.0
    ink = np.array([40, 40, 52], np.float32)
    tex[y0:y1, x0:x1, :3] = np.clip(smear * (1 - 0.6 * blot) + ink * 0.6 * blot, 0, 255).astype(np.uint8)
    return {key: mask}


PHYSICAL_DRAWERS: dict[str, Callable[[Product, np.random.Generator], Masks]] = {
    "torn_box": _tear,
    "crushed_corner": _crush,
    "bent_cover": _bend,
    "broken_seal": _broken_seal,
    "stain": _stain,
    "puncture": _puncture,
    "unreadable_date": _smudge,
}


def apply_damage(product: Product, defect: str, rng: np.random.Generator) -> Masks:
    """Draw a physical defect on the product's textures; returns its texture masks."""
    return PHYSICAL_DRAWERS[defect](product, rng)


def region_masks(product: Product, defect: str) -> Masks:
    """Masks of defects that change what is printed or what the item is."""
    names = {
        "wrong_variant_label": ("variant_label",),
        "missing_label": ("label",),
        "expired_date": ("date_print",),
        "date_mismatch": ("date_print",),
        "empty_container": ("fill", "fill_top"),
    }.get(defect)
    if names is None:  # wrong_colour, wrong_item: the whole item
        out: Masks = {}
        for index, part in enumerate(product.parts):
            out[(index, "top")] = np.where(part.top[..., 3] > 0, 255, 0).astype(np.uint8)
            out[(index, "side")] = np.where(part.side[..., 3] > 0, 255, 0).astype(np.uint8)
        if defect == "wrong_colour" and "item_colour" in product.regions:
            key, mask = _region_mask(product, product.regions["item_colour"])
            return {key: mask}
        return out
    out = {}
    for name in names:
        if name in product.regions:
            key, mask = _region_mask(product, product.regions[name])
            out[key] = np.maximum(out[key], mask) if key in out else mask
    return out
