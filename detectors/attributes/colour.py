"""Item colour against the catalog: how much of the item shows the catalog colour.

Asking "is the dominant colour right?" fails on items whose colour shows only in part of the
package (a phone case behind a window, sneakers in a shoebox), so the check measures the share
of item pixels within a CIEDE2000 tolerance of the catalog colour, after white balance from
the belt or tote border when that border is neutral. Lightness is weighted down (kL) because
shading and glare move lightness far more than hue. Achromatic catalog colours (white, grey,
black) also appear on labels, print, glare and shadows of any item, so they need a larger share.

A view whose item box is surrounded by the catalog colour says nothing: localisation
separates the item from its background by colour, so a navy T-shirt in a blue tote is cut down
to its white size sticker, a blue book in a blue tote to its pages, and the crop shows little
of the catalog colour for that reason alone, while the rest of the item lies around the box.
Such views are left out (`camouflaged`). When every view is, the item may still have been cut
out whole: a red biscuit box sent for a yellow cereal box stands out from the yellow tote
(`AttributeProfile.uncut` compares the item's area with its references'). Those views are read
without white balance and tinted by the tote, so only a colour all but gone counts there
(`AttributeProfile.gone_in_own_tote`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.views import LocalizedView

SAMPLE_SIDE = 96
"""Crops are measured at this long side: colour needs no detail, and it keeps the check ~1 ms."""


@dataclass(frozen=True)
class ColourConfig:
    tolerance: float = 14.0
    """CIEDE2000 distance (with `k_l`) under which a pixel counts as the catalog colour."""
    k_l: float = 1.0
    min_share: float = 0.1
    """Share of item pixels that must show a chromatic catalog colour."""
    min_share_achromatic: float = 0.4
    achromatic_chroma: float = 12.0
    """Lab chroma under which a catalog colour counts as achromatic."""
    neutral_border_chroma: float = 10.0
    """A border with median chroma under this is taken as a grey reference for white balance."""
    max_gain: float = 1.25
    surround_match: float = 0.3
    """A view is camouflaged when more than this share of the ring around its item box shows the catalog colour."""
    surround_width: float = 0.1
    """Width of that ring, as a fraction of the item box's long side (at least 4 pixels)."""


DEFAULT_COLOUR = ColourConfig()


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 (..., 3) -> CIE Lab (L 0-100, a/b signed), float64."""
    arr = np.asarray(rgb, np.float32).reshape(-1, 1, 3) / 255.0
    lab = cv2.cvtColor(arr, cv2.COLOR_RGB2LAB).reshape(np.shape(rgb))
    return lab.astype(np.float64)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray, k_l: float = 1.0) -> np.ndarray:
    """CIEDE2000 colour difference (Sharma et al. 2005), vectorised over leading axes."""
    L1, a1, b1 = np.moveaxis(np.asarray(lab1, np.float64), -1, 0)
    L2, a2, b2 = np.moveaxis(np.asarray(lab2, np.float64), -1, 0)
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    cm = (c1 + c2) / 2
    g = 0.5 * (1 - np.sqrt(cm**7 / (cm**7 + 25.0**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dl = L2 - L1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dH = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    lm = (L1 + L2) / 2
    cmp_ = (c1p + c2p) / 2
    hsum = h1p + h2p
    hm = np.where(
        c1p * c2p == 0,
        hsum,
        np.where(np.abs(h1p - h2p) <= 180, hsum / 2, np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2)),
    )
    t = (
        1
        - 0.17 * np.cos(np.radians(hm - 30))
        + 0.24 * np.cos(np.radians(2 * hm))
        + 0.32 * np.cos(np.radians(3 * hm + 6))
        - 0.20 * np.cos(np.radians(4 * hm - 63))
    )
    sl = 1 + 0.015 * (lm - 50) ** 2 / np.sqrt(20 + (lm - 50) ** 2)
    sc = 1 + 0.045 * cmp_
    sh = 1 + 0.015 * cmp_ * t
    rt = -2 * np.sqrt(cmp_**7 / (cmp_**7 + 25.0**7)) * np.sin(np.radians(60 * np.exp(-(((hm - 275) / 25) ** 2))))
    return np.sqrt((dl / (k_l * sl)) ** 2 + (dc / sc) ** 2 + (dH / sh) ** 2 + rt * (dc / sc) * (dH / sh))


def border_pixels(frame: np.ndarray, item_box: list[float]) -> np.ndarray:
    """RGB pixels of the frame's border strip outside the item box: the belt or tote."""
    h, w = frame.shape[:2]
    b = max(4, round(min(h, w) * 0.05))
    border = np.zeros((h, w), bool)
    border[:b], border[-b:], border[:, :b], border[:, -b:] = True, True, True, True
    x0, y0, x1, y1 = (round(v) for v in item_box)
    border[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = False
    return frame[border]


def surround_pixels(frame: np.ndarray, item_box: list[float], width_frac: float) -> np.ndarray:
    """RGB pixels of a ring just outside the item box (clipped to the frame), in row-major order.

    Cut as strips rather than through a frame-sized mask: the same pixels in the same order
    at a tenth of the cost (it runs for every view, twice)."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = (round(v) for v in item_box)
    r = max(4, round(width_frac * max(x1 - x0, y1 - y0)))
    oy0, oy1 = _span(y0 - r, y1 + r, h)
    ox0, ox1 = _span(x0 - r, x1 + r, w)
    iy0, iy1 = _span(y0, y1, h)
    ix0, ix1 = _span(x0, x1, w)
    ry0, ry1 = max(oy0, iy0), min(oy1, iy1)
    outer = frame[oy0:oy1, ox0:ox1]
    if ix0 >= ix1 or ry0 >= ry1:
        return outer.reshape(-1, frame.shape[2])
    left, right = frame[ry0:ry1, ox0 : max(ox0, min(ix0, ox1))], frame[ry0:ry1, max(ix1, ox0) : ox1]
    parts = [frame[oy0:ry0, ox0:ox1], np.concatenate([left, right], axis=1), frame[ry1:oy1, ox0:ox1]]
    return np.concatenate([p.reshape(-1, frame.shape[2]) for p in parts])


def _span(start: int, stop: int, n: int) -> tuple[int, int]:
    """`[max(0, start):max(0, stop)]` on an axis of length `n` as explicit bounds (empty: start >= stop)."""
    a, b = min(max(0, start), n), min(max(0, stop), n)
    return a, max(a, b)


def camouflaged(
    frame: np.ndarray, item_box: list[float], catalog_rgb: list[int], cfg: ColourConfig = DEFAULT_COLOUR
) -> bool:
    """True when the ring around the item box mostly shows the catalog colour (see the module docstring)."""
    pixels = surround_pixels(frame, item_box, cfg.surround_width)
    if len(pixels) < 50:
        return False
    step = max(1, len(pixels) // 2000)
    dist = ciede2000(to_lab(pixels[::step]), to_lab(np.asarray(catalog_rgb, np.uint8)), cfg.k_l)
    return float((dist <= cfg.tolerance).mean()) > cfg.surround_match


def white_balance_gains(frame: np.ndarray, item_box: list[float], cfg: ColourConfig = DEFAULT_COLOUR) -> np.ndarray:
    """Per-channel gains that make a neutral belt/tote grey; ones when the border is coloured.

    A coloured tote says nothing about the light (its own colour is unknown), so it is not used.
    """
    pixels = border_pixels(frame, item_box).astype(np.float64)
    if len(pixels) < 50:
        return np.ones(3)
    lab = to_lab(pixels.astype(np.uint8))
    if float(np.median(np.hypot(lab[:, 1], lab[:, 2]))) > cfg.neutral_border_chroma:
        return np.ones(3)
    mean = np.median(pixels, axis=0) + 1.0
    gains = mean.mean() / mean
    return np.clip(gains, 1 / cfg.max_gain, cfg.max_gain)


@dataclass(frozen=True)
class ColourRead:
    """How much of the item shows the catalog colour, and what colour dominates instead."""

    share: float
    min_share: float
    dominant_rgb: tuple[int, int, int]
    dominant_distance: float
    gains: tuple[float, float, float]
    views: int = 1
    """Views measured (camouflaged views are left out); 0 means no verdict."""

    @property
    def matches(self) -> bool:
        return self.views == 0 or self.share >= self.min_share


def item_pixels(view: LocalizedView) -> np.ndarray:
    """RGB pixels on the (slightly eroded) item mask at a small working size."""
    h, w = view.crop.shape[:2]
    scale = min(1.0, SAMPLE_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    crop = cv2.resize(view.crop, size, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(view.mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    eroded = cv2.erode(mask, np.ones((3, 3), np.uint8))
    keep = eroded if eroded.sum() >= 20 else mask
    return crop[keep > 0]


def dominant(pixels: np.ndarray, k: int = 3) -> tuple[np.ndarray, float]:
    """Centre and share of the largest k-means cluster (for the evidence)."""
    data = pixels.astype(np.float32)
    k = max(1, min(k, len(data)))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    cv2.setRNGSeed(0)
    _, labels, centres = cv2.kmeans(data, k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    counts = np.bincount(labels.ravel(), minlength=k)
    top = int(counts.argmax())
    return centres[top], float(counts[top] / counts.sum())


def is_achromatic(rgb: list[int] | tuple[int, ...], cfg: ColourConfig = DEFAULT_COLOUR) -> bool:
    lab = to_lab(np.asarray(rgb, np.uint8))
    return float(np.hypot(lab[1], lab[2])) < cfg.achromatic_chroma


def measure(
    views: list[tuple[LocalizedView, np.ndarray]],
    catalog_rgb: list[int],
    cfg: ColourConfig = DEFAULT_COLOUR,
    min_share: float | None = None,
    keep_camouflaged: bool = False,
) -> ColourRead:
    """Catalog-colour share over the views of an item, each white-balanced from its own frame.

    `views` pairs each localised view with its full frame (for the border); camouflaged views
    are left out unless `keep_camouflaged` (the caller has found the item whole in them, see
    `AttributeProfile.uncut`). `min_share` overrides the default (e.g. a per-SKU share learned
    from normal references).
    """
    if not keep_camouflaged:
        views = [(v, f) for v, f in views if not camouflaged(f, v.box, catalog_rgb, cfg)]
    parts, gains_all = [], []
    for view, frame in views:
        gains = white_balance_gains(frame, view.box, cfg)
        px = item_pixels(view).astype(np.float64) * gains
        parts.append(np.clip(px, 0, 255).astype(np.uint8))
        gains_all.append(gains)
    pixels = np.concatenate(parts) if parts else np.zeros((0, 3), np.uint8)
    if min_share is None:
        min_share = cfg.min_share_achromatic if is_achromatic(catalog_rgb, cfg) else cfg.min_share
    gains_mean = tuple(round(float(g), 3) for g in np.mean(gains_all, axis=0)) if gains_all else (1.0, 1.0, 1.0)
    if len(pixels) == 0:
        return ColourRead(0.0, min_share, (0, 0, 0), float("inf"), gains_mean, 0)  # type: ignore[arg-type]
    target = to_lab(np.asarray(catalog_rgb, np.uint8))
    dist = ciede2000(to_lab(pixels), target, cfg.k_l)
    share = float((dist <= cfg.tolerance).mean())
    centre, _ = dominant(pixels)
    dom_dist = float(ciede2000(to_lab(centre.astype(np.uint8)), target, cfg.k_l))
    return ColourRead(
        share=share,
        min_share=float(min_share),
        dominant_rgb=tuple(int(v) for v in centre),  # type: ignore[arg-type]
        dominant_distance=dom_dist,
        gains=gains_mean,  # type: ignore[arg-type]
        views=len(views),
    )
