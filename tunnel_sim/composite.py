"""Real photographs of an object placed on the simulated tunnel's belts and totes.

The renderer's items are drawn from flat textures; a real product photo carries real surface,
real print and real damage. Placing such a photo's object, cut out by its mask, on a belt or
tote floor at any rotation, size and position keeps the real defects and makes localisation
and pose tolerance part of the measurement: the object must be found on the floor and compared
with normals that lay at other angles. The photo's own lighting turns with the object, where a
tunnel's light stays put while the item turns: a highlight moves here as it would not on a
belt, which makes the measurement harder, not easier.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tunnel_sim.scene import FC_CONVEYANCE, FRAME_H, FRAME_W, Conveyance, _background

SHADOW_OFFSET_PX = 6
SHADOW_BLUR_PX = 6.0
SHADOW_DEPTH = 0.35
"""A soft contact shadow down and right of the object, as the tunnel's key light casts."""
EDGE_BLUR_PX = 1.0
NOISE_SIGMA = 2.0
MARGIN_PX = 10


@dataclass(frozen=True)
class Placement:
    """One placed object: the frame, the object's true mask in it and how it was placed."""

    frame: np.ndarray
    """(FRAME_H, FRAME_W, 3) uint8 RGB."""
    mask: np.ndarray
    """(FRAME_H, FRAME_W) bool: the object's pixels."""
    conveyance: str
    angle: float
    """Degrees the object was turned, counter-clockwise."""
    scale: float


def object_mask(image: np.ndarray, background_level: int = 200) -> np.ndarray:
    """The object of a studio photo on a light backdrop: the largest region darker than
    `background_level` (grey, after a light blur), holes filled. Bool (H, W)."""
    grey = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (0, 0), 3)
    dark = (grey < background_level).astype(np.uint8)
    contours, _ = cv2.findContours(dark, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        raise ValueError("no object darker than the backdrop")
    mask = np.zeros_like(dark)
    cv2.drawContours(mask, [max(contours, key=cv2.contourArea)], -1, 1, thickness=cv2.FILLED)
    return mask.astype(bool)


def place_on_conveyance(
    image: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    *,
    fc: str | None = None,
    size_px: tuple[float, float] = (200.0, 300.0),
    camera: str = "top",
) -> Placement:
    """`image`'s object (bool `mask`) on an FC's belt or tote (`fc`, else drawn from `rng`),
    turned by any angle, its longest side scaled to a length drawn from `size_px`, placed
    anywhere it fits whole, with a contact shadow and sensor noise."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"mask {mask.shape} does not match image {image.shape[:2]}")
    if not mask.any():
        raise ValueError("empty object mask")
    names = sorted(FC_CONVEYANCE)
    fc = fc or names[int(rng.integers(len(names)))]
    floor = _floor(FC_CONVEYANCE[fc], camera, rng)
    ys, xs = np.nonzero(mask)
    (cx, cy), (w, h), _ = cv2.minAreaRect(np.column_stack([xs, ys]).astype(np.float32))
    side = float(rng.uniform(*size_px))
    scale = side / max(w, h, 1.0)
    angle = float(rng.uniform(0.0, 360.0))
    reach = 0.5 * np.hypot(w, h) * scale  # the turned object fits in this radius
    if 2 * (reach + MARGIN_PX) > min(FRAME_W, FRAME_H):
        raise ValueError(f"an object {side:.0f} px long does not fit a {FRAME_W}x{FRAME_H} frame at every angle")
    tx = rng.uniform(reach + MARGIN_PX, FRAME_W - reach - MARGIN_PX)
    ty = rng.uniform(reach + MARGIN_PX, FRAME_H - reach - MARGIN_PX)
    warp = cv2.getRotationMatrix2D((float(cx), float(cy)), angle, scale)
    warp[:, 2] += (tx - cx, ty - cy)
    size = (FRAME_W, FRAME_H)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    obj = cv2.warpAffine(image.astype(np.float32), warp, size, flags=interp)
    alpha = cv2.warpAffine(mask.astype(np.float32), warp, size, flags=cv2.INTER_LINEAR)
    alpha = cv2.GaussianBlur(alpha, (0, 0), EDGE_BLUR_PX)
    shadow = cv2.GaussianBlur(np.roll(alpha, (SHADOW_OFFSET_PX, SHADOW_OFFSET_PX), (0, 1)), (0, 0), SHADOW_BLUR_PX)
    frame = floor * (1.0 - SHADOW_DEPTH * shadow[..., None])
    frame = frame * (1.0 - alpha[..., None]) + obj * alpha[..., None]
    frame += rng.normal(0.0, NOISE_SIGMA, frame.shape)
    return Placement(
        frame=np.clip(frame, 0, 255).astype(np.uint8), mask=alpha > 0.5, conveyance=fc, angle=angle, scale=scale
    )


def _floor(conveyance: Conveyance, camera: str, rng: np.random.Generator) -> np.ndarray:
    """One frame's worth of the (wider than a frame) belt or tote floor, at a drawn offset."""
    floor = _background(conveyance, camera)
    offset = int(rng.integers(0, floor.shape[1] - FRAME_W + 1))
    return floor[:, offset : offset + FRAME_W].astype(np.float32)
