"""Printed text as ink layers: clean label print, dot-matrix and continuous inkjet.

Dates on real packages are mostly printed on the line by dot-matrix or inkjet coders, whose
characters are made of separate dots with jitter, bleed and drop-outs; OCR engines trained on
clean fonts miss them. Dots are sampled on a grid from glyphs rendered with real fonts, so
the characters keep the shapes of real type.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

import cv2
import numpy as np
from PIL import Image, ImageDraw

from pipeline.types import DateOrder
from tunnel_sim.dates import DateLines, compose_date_lines
from tunnel_sim.fonts import get_font, needs_cjk

PrintStyle = Literal["printed", "dot_matrix", "inkjet"]
PRINT_STYLES: tuple[PrintStyle, ...] = ("printed", "dot_matrix", "inkjet")

_CAP_RATIO = 0.72
"""Cap height as a fraction of the font size, close for DejaVu, Liberation and Noto."""


def _glyph_line(text: str, family: str, size: int, language: str) -> np.ndarray:
    """One line of text as float coverage in [0, 1] (row 0 is the top of the line box)."""
    if needs_cjk(text) and not family.startswith("cjk"):
        family = "cjk-bold" if family.endswith("bold") else "cjk"
    font = get_font(family, size, language)
    x0, _, x1, _ = font.getbbox(text)
    width = max(1, x1 - min(0, x0) + 2)
    height = int(size * 1.25) + 2
    img = Image.new("L", (width, height), 0)
    ImageDraw.Draw(img).text((1 - min(0, x0), 1), text, font=font, fill=255)
    return np.asarray(img, dtype=np.float32) / 255.0


def _dot_layer(coverage: np.ndarray, pitch: float, rows_per_em: float, rng: np.random.Generator, inkjet: bool):
    """Resample glyph coverage onto a dot grid and draw each dot (with jitter for inkjet)."""
    h, w = coverage.shape
    grid_h = max(1, round(h * rows_per_em))
    grid_w = max(1, round(w * rows_per_em))
    cells = cv2.resize(coverage, (grid_w, grid_h), interpolation=cv2.INTER_AREA) > 0.33
    out_h, out_w = int(np.ceil((grid_h + 1) * pitch)), int(np.ceil((grid_w + 1) * pitch))
    layer = np.zeros((out_h, out_w), dtype=np.uint8)
    ys, xs = np.nonzero(cells)
    if inkjet:
        keep = rng.random(len(xs)) > 0.04
        ys, xs = ys[keep], xs[keep]
        jitter = rng.normal(0.0, 0.12 * pitch, size=(len(xs), 2))
        radii = pitch * rng.uniform(0.38, 0.6, size=len(xs))
    else:
        jitter = rng.normal(0.0, 0.03 * pitch, size=(len(xs), 2))
        radii = np.full(len(xs), pitch * 0.42)
    shift = 4
    scale = 1 << shift
    for x, y, (jx, jy), r in zip(xs, ys, jitter, radii, strict=True):
        cx = int(((x + 0.5) * pitch + jx) * scale)
        cy = int(((y + 0.5) * pitch + jy) * scale)
        cv2.circle(layer, (cx, cy), max(1, int(r * scale)), 255, -1, cv2.LINE_AA, shift)
    if inkjet:
        layer = cv2.GaussianBlur(layer, (0, 0), max(0.4, pitch * 0.18))
        layer = np.clip(layer.astype(np.float32) * 1.25, 0, 255).astype(np.uint8)
    return layer


def render_ink(
    lines: list[str] | tuple[str, ...],
    *,
    cap_px: float,
    style: PrintStyle = "printed",
    family: str = "sans-bold",
    language: str = "en",
    rng: np.random.Generator | None = None,
    line_spacing: float = 1.6,
) -> np.ndarray:
    """Ink coverage (uint8 alpha, 255 = full ink) of text lines whose capitals are `cap_px` high."""
    rng = rng if rng is not None else np.random.default_rng(0)
    layers: list[np.ndarray] = []
    for text in lines:
        if style == "printed":
            size = max(6, round(cap_px / _CAP_RATIO))
            cov = _glyph_line(text, family, size, language)
            layers.append((cov * 255).astype(np.uint8))
            continue
        # Coders use a mono bold face; CJK needs more dot rows to stay legible.
        cjk = needs_cjk(text)
        rows = 12 if cjk else 7
        hi_size = 48
        cov = _glyph_line(text, "cjk-bold" if cjk else "mono-bold", hi_size, language)
        rows_per_px = rows / (hi_size * _CAP_RATIO)
        pitch = cap_px / rows
        layers.append(_dot_layer(cov, pitch, rows_per_px, rng, inkjet=style == "inkjet"))
    if not layers:
        return np.zeros((1, 1), dtype=np.uint8)
    step = round(cap_px * line_spacing)
    height = step * (len(layers) - 1) + max(layer.shape[0] for layer in layers)
    width = max(layer.shape[1] for layer in layers)
    out = np.zeros((height, width), dtype=np.uint8)
    for i, layer in enumerate(layers):
        y = i * step
        region = out[y : y + layer.shape[0], : layer.shape[1]]
        np.maximum(region, layer[: region.shape[0]], out=region)
    return _trim(out)


def _trim(alpha: np.ndarray, pad: int = 2) -> np.ndarray:
    ys, xs = np.nonzero(alpha > 8)
    if len(xs) == 0:
        return alpha
    y0, y1 = max(0, ys.min() - pad), min(alpha.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(alpha.shape[1], xs.max() + pad + 1)
    return alpha[y0:y1, x0:x1]


def composite_ink(canvas: np.ndarray, alpha: np.ndarray, x: int, y: int, ink: tuple[int, int, int]) -> None:
    """Lay ink (alpha layer) onto an RGB or RGBA canvas in place, clipped to the canvas."""
    h, w = alpha.shape
    H, W = canvas.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 <= x0 or y1 <= y0:
        return
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x].astype(np.float32)[..., None] / 255.0
    region = canvas[y0:y1, x0:x1, :3].astype(np.float32)
    canvas[y0:y1, x0:x1, :3] = (region * (1 - a) + np.asarray(ink, np.float32) * a).astype(np.uint8)


def render_date_print(
    expiry: date | None,
    *,
    manufactured: date | None = None,
    date_format: str | None = None,
    language: str = "en",
    order: DateOrder = "DMY",
    style: PrintStyle = "inkjet",
    lot_code: str | None = "L2611A",
    cap_px: float = 24,
    background: tuple[int, int, int] = (236, 232, 222),
    ink: tuple[int, int, int] = (22, 22, 30),
    seed: int = 0,
) -> tuple[np.ndarray, DateLines]:
    """A date print on a plain background (RGB uint8), with what it says; for OCR tests.

    The lines (expiry, production date, lot code) are composed and ordered exactly as on the
    simulated packages, so a reader tested here meets the same wording in the tunnel frames.
    """
    rng = np.random.default_rng([seed, 0xDA7E])
    lines = compose_date_lines(
        rng,
        expiry=expiry,
        manufactured=manufactured,
        language=language,
        order=order,
        lot_code=lot_code,
        fmt=date_format,
    )
    alpha = render_ink(lines.lines, cap_px=cap_px, style=style, language=language, rng=rng)
    margin = round(cap_px)
    canvas = np.empty((alpha.shape[0] + 2 * margin, alpha.shape[1] + 2 * margin, 3), dtype=np.uint8)
    canvas[:] = background
    composite_ink(canvas, alpha, margin, margin, ink)
    return canvas, lines
