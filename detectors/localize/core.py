"""Find the item in a tunnel frame and cut out an upright, aligned crop.

The background (belt or tote) is whatever touches the frame border, so it is modelled from a
border strip: colour statistics in Lab plus its edge density. Pixels far from that model in
colour, or enclosed by edges much stronger than the background's texture, are item. The
largest such component gives a rotated rectangle (`minAreaRect`); the frame is rotated so
the long side is horizontal and cropped with a margin. When nothing separates cleanly (a
real photo filled by the item, a plain belt), `found` is False and the whole frame is the
crop, so downstream stages still run and say so instead of silently passing.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.views import LocalizedView


@dataclass(frozen=True)
class LocalizeConfig:
    work_side: int = 320
    """Long side of the downscaled frame the segmentation runs on (speed; the crop is full-res)."""
    border_frac: float = 0.05
    margin_frac: float = 0.06
    """Margin around the item's rotated box, as a fraction of its long side."""
    min_area_frac: float = 0.004
    max_area_frac: float = 0.97
    colour_factor: float = 1.6
    """Foreground when the colour distance exceeds this times the border's 99th percentile."""
    container_span: float = 0.85
    """A component spanning this much of both frame sides is a container (tote floor): look inside it.
    Lower, a large item (a duvet, a shoebox seen close) is taken for a tote and cut to its print."""
    container_min_item: float = 0.04
    """Inside a container, the item must cover this share of it; smaller finds are the print on a big box."""
    belt_trim: float = 4.0
    """Border pixels farther than this many median distances from the belt model are item, not belt."""


DEFAULT = LocalizeConfig()


def _border_mask(h: int, w: int, frac: float) -> np.ndarray:
    b = max(3, round(min(h, w) * frac))
    mask = np.zeros((h, w), bool)
    mask[:b], mask[-b:], mask[:, :b], mask[:, -b:] = True, True, True, True
    return mask


def _colour_distance(lab: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Mahalanobis distance to the background's Lab pixels (trimmed so an item touching the border is ignored)."""
    pix = background.reshape(-1, 3).astype(np.float64)
    med = np.median(pix, axis=0)
    d0 = np.linalg.norm(pix - med, axis=1)
    keep = pix[d0 <= np.quantile(d0, 0.5)]
    cov = np.cov(keep.T) + np.eye(3) * 4.0
    inv = np.linalg.inv(cov).astype(np.float32)
    # float32 and one matrix product: half the cost of a float64 einsum, same distances to 1e-5
    diff = lab.reshape(-1, 3).astype(np.float32) - keep.mean(axis=0).astype(np.float32)
    dist = np.sqrt(np.maximum(((diff @ inv) * diff).sum(axis=1), 0.0))
    return dist.reshape(lab.shape[:2])


def _edge_regions(gray: np.ndarray, belt: np.ndarray) -> np.ndarray:
    """Regions enclosed by edges clearly stronger than the belt's own texture (`belt`: known belt pixels)."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    mag = cv2.magnitude(gx, gy)
    level = float(np.quantile(mag[belt], 0.98)) * 1.5 + 8.0
    edges = (mag > level).astype(np.uint8)
    k = max(3, round(min(gray.shape) * 0.02)) | 1
    closed = cv2.morphologyEx(edges, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return _fill_holes(closed)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill regions not connected to the frame border (label inside a box, a hole in a mask)."""
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = mask > 0
    flood = padded.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return ((mask > 0) | holes).astype(np.uint8)


def segment(image: np.ndarray, cfg: LocalizeConfig = DEFAULT) -> tuple[np.ndarray, float]:
    """Item mask (uint8 0/1) at work resolution and the scale from frame to work coordinates."""
    h, w = image.shape[:2]
    scale = min(1.0, cfg.work_side / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 1.5)
    mask = _largest_component(small, cfg)
    if not cfg.min_area_frac <= float(mask.mean()) <= cfg.max_area_frac:
        mask = _split_border(small, cfg)
    ys, xs = np.nonzero(mask)
    if (
        len(xs)
        and (np.ptp(xs) + 1) >= cfg.container_span * mask.shape[1]
        and (np.ptp(ys) + 1) >= cfg.container_span * mask.shape[0]
    ):
        inner = _inside_container(small, mask, (xs, ys), cfg)
        if inner is not None:
            mask = inner
    return mask, scale


def _inside_container(
    small: np.ndarray, outer: np.ndarray, coords: tuple[np.ndarray, np.ndarray], cfg: LocalizeConfig
) -> np.ndarray | None:
    """The item lying inside a container (tote floor) that the first pass took for the item."""
    xs, ys = coords
    inset = max(2, round(min(small.shape[:2]) * 0.02))
    x0, x1, y0, y1 = xs.min() + inset, xs.max() - inset, ys.min() + inset, ys.max() - inset
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    inner = _largest_component(small[y0:y1, x0:x1], cfg)
    frac = float(inner.mean())
    if not cfg.min_area_frac <= frac <= 0.6 or inner.sum() < cfg.container_min_item * outer.sum():
        return None
    out = np.zeros_like(outer)
    out[y0:y1, x0:x1] = inner
    return out


def _rectangularity(mask: np.ndarray) -> float:
    pts = cv2.findNonZero(mask)
    if pts is None:
        return 0.0
    (_, _), (rw, rh), _ = cv2.minAreaRect(pts)
    return float(mask.sum()) / max(rw * rh, 1.0)


def _split_border(small: np.ndarray, cfg: LocalizeConfig) -> np.ndarray:
    """When the item covers much of the border, try each border colour cluster as the background.

    The candidate whose largest component has a plausible size and fills its rotated box best
    wins: the belt as background leaves a compact item, the item as background leaves ragged
    belt fragments.
    """
    border = _border_mask(*small.shape[:2], cfg.border_frac)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    pix = lab[border].reshape(-1, 3)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, _ = cv2.kmeans(pix, 2, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    best, best_fit = np.zeros(small.shape[:2], np.uint8), 0.0
    for k in (0, 1):
        sel = labels.ravel() == k
        if sel.mean() < 0.15:
            continue
        bg_mask = np.zeros_like(border)
        bg_mask[border] = sel
        cand = _largest_component(small, cfg, bg_mask)
        fit = _rectangularity(cand)
        if cfg.min_area_frac <= float(cand.mean()) <= cfg.max_area_frac and fit > best_fit:
            best, best_fit = cand, fit
    return best


def _largest_component(small: np.ndarray, cfg: LocalizeConfig, background: np.ndarray | None = None) -> np.ndarray:
    """Largest foreground component; `background` marks the pixels known to be belt (default: the border)."""
    border = _border_mask(*small.shape[:2], cfg.border_frac) if background is None else background
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    dist = _colour_distance(lab, lab[border])
    # an item reaching into the border strip must not widen the belt's own spread
    belt = border & (dist <= cfg.belt_trim * max(float(np.median(dist[border])), 1e-3))
    colour_fg = dist > max(cfg.colour_factor * float(np.quantile(dist[belt], 0.99)), 3.0)
    colour_fg &= ~_belt_tone(lab, belt)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    fg = (colour_fg | (_edge_regions(gray, belt) > 0)).astype(np.uint8)
    k = max(3, round(min(fg.shape) * 0.015)) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, kernel)
    fg = _fill_holes(cv2.morphologyEx(fg, cv2.MORPH_CLOSE, kernel))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if count <= 1:
        return np.zeros_like(fg)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return _trim_spurs((labels == largest).astype(np.uint8))


def _trim_spurs(mask: np.ndarray) -> np.ndarray:
    """Cut thin attachments (belt streaks, glare) off a compact item: an opening scaled to the item."""
    k = max(3, round(0.06 * float(np.sqrt(mask.sum())))) | 1
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    if count <= 1:
        return mask
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    # the opening rounds the item's own corners: take back what lies in the item's convex hull
    trimmed = (labels == largest).astype(np.uint8)
    hull = np.zeros_like(mask)
    cv2.fillPoly(hull, [cv2.convexHull(cv2.findNonZero(trimmed))], 1)
    return (mask & hull).astype(np.uint8)


def _belt_tone(lab: np.ndarray, belt: np.ndarray) -> np.ndarray:
    """Pixels of the belt's hue that are darker or a little brighter: shadow and sheen, not item.

    Colour distance alone takes a soft shadow or a glossy streak of belt for part of the item,
    so the crop grows a fringe that changes with the light. An item of the belt's own hue and
    brightness still has the edges that `_edge_regions` finds.
    """
    ref = lab[belt]
    hue = np.median(ref[:, 1:], axis=0)
    chroma = np.linalg.norm(lab[..., 1:] - hue, axis=-1)
    spread = float(np.quantile(np.linalg.norm(ref[:, 1:] - hue, axis=-1), 0.99))
    lum = ref[:, 0]
    iqr = float(np.quantile(lum, 0.75) - np.quantile(lum, 0.25))
    return (lab[..., 0] < float(np.median(lum)) + max(12.0, 2.0 * iqr)) & (chroma <= max(4.0, 2.0 * spread))


def upright_rect(points: np.ndarray) -> tuple[tuple[float, float], tuple[float, float], float]:
    """minAreaRect with width >= height and the angle (degrees, (-90, 90]) of the long side."""
    (cx, cy), (rw, rh), angle = cv2.minAreaRect(points.astype(np.float32))
    if rw < rh:
        rw, rh, angle = rh, rw, angle + 90.0
    angle = (angle + 90.0) % 180.0 - 90.0
    if angle <= -90.0:
        angle += 180.0
    return (cx, cy), (rw, rh), angle


def whole_frame(image: np.ndarray, camera: str) -> LocalizedView:
    h, w = image.shape[:2]
    return LocalizedView(
        camera=camera,
        crop=image,
        mask=np.ones((h, w), bool),
        box=[0.0, 0.0, float(w), float(h)],
        crop_to_frame=np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        angle_deg=0.0,
        found=False,
    )


def localize(image: np.ndarray, camera: str = "cam0", cfg: LocalizeConfig = DEFAULT) -> LocalizedView:
    """The item's upright crop, mask and box in one RGB frame (found=False: whole frame)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"localize needs an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
    mask_small, scale = segment(image, cfg)
    area = float(mask_small.mean())
    if not cfg.min_area_frac <= area <= cfg.max_area_frac:
        return whole_frame(image, camera)
    contours, _ = cv2.findContours(mask_small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    points = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)
    points = (points + 0.5) / scale - 0.5
    (cx, cy), (rw, rh), angle = upright_rect(points)
    margin = cfg.margin_frac * rw
    cw, ch = max(8, round(rw + 2 * margin)), max(8, round(rh + 2 * margin))
    frame_to_crop = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    frame_to_crop[:, 2] += (cw / 2.0 - cx, ch / 2.0 - cy)
    crop = cv2.warpAffine(image, frame_to_crop, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    h, w = image.shape[:2]
    full_mask = cv2.resize(mask_small, (w, h), interpolation=cv2.INTER_NEAREST)
    mask = cv2.warpAffine(full_mask, frame_to_crop, (cw, ch), flags=cv2.INTER_NEAREST) > 0
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    box = [float(max(0.0, x0)), float(max(0.0, y0)), float(min(w, x1 + 1)), float(min(h, y1 + 1))]
    return LocalizedView(
        camera=camera,
        crop=crop,
        mask=mask,
        box=box,
        crop_to_frame=cv2.invertAffineTransform(frame_to_crop),
        angle_deg=float(angle),
        found=True,
    )
