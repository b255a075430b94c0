"""Product surfaces: each item is one or more extruded outlines (box, bag, cylinder, shoe)
whose top face and side wall carry textures drawn with PIL: brand, graphics, label panels,
barcodes and the date print.

Everything item-specific (label text, printed dates, colour, fill level) is decided before
drawing, and every label or print records its `Region` in texture pixels, so defects can be
drawn and masked in texture space and then projected by the scene like the rest of the surface.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Literal

import cv2
import numpy as np
from PIL import Image, ImageDraw

from pipeline.types import CatalogRecord
from tunnel_sim.dates import DateLines
from tunnel_sim.fonts import family_for, get_font, needs_cjk
from tunnel_sim.text import PrintStyle, composite_ink, render_ink

PX_PER_MM = 2.0
"""Texture resolution; the cameras see about 1.4 px/mm, so textures are sharper than frames."""

DATE_CAP_MM = 10.0
"""Cap height of date prints. At the cameras' ~1.4 px/mm this gives ~14 px capitals, the smallest
text OCR reads reliably; a real tunnel's 5-12 MP cameras resolve 3-4 mm prints at that size."""

Surface = Literal["top", "side"]
RGB = tuple[int, int, int]


@dataclass
class Part:
    """An outline (mm, counter-clockwise seen from above) extruded from z0 to z0 + height."""

    outline: np.ndarray
    z0: float
    height: float
    top: np.ndarray
    """RGBA texture of the top face over the outline's bounding box (row 0 = +y edge)."""
    side: np.ndarray
    """RGBA strip of the side wall: x runs along the outline from vertex 0, row 0 = top edge."""
    gloss: float = 0.1

    @property
    def edge_px(self) -> np.ndarray:
        """Strip x position (px) where each outline vertex starts, plus the total length."""
        steps = np.linalg.norm(np.diff(np.vstack([self.outline, self.outline[:1]]), axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(steps)]) * PX_PER_MM


@dataclass(frozen=True)
class Region:
    """A rectangle on one part's surface (texture px: x0, y0, x1, y1)."""

    part: int
    surface: Surface
    box: tuple[int, int, int, int]


@dataclass
class Product:
    parts: list[Part]
    regions: dict[str, Region] = field(default_factory=dict)
    """Named areas: "label" (the label whose absence is `missing_label`), "variant_label",
    "date_print", "seal", "fill" (contents seen through a transparent wall), "corner"."""
    deformable: bool = True
    """Whether the item is a rigid carton (crushed corners, tears) rather than a soft bag."""

    def surface(self, region: Region) -> np.ndarray:
        part = self.parts[region.part]
        return part.top if region.surface == "top" else part.side


@dataclass(frozen=True)
class ItemLook:
    """What is physically on one item, decided before drawing (ground truth follows from it)."""

    record: CatalogRecord
    colour_rgb: RGB
    variant_text: str | None = None
    date_lines: DateLines | None = None
    print_style: PrintStyle = "inkjet"
    label_present: bool = True
    fill: float = 1.0
    packaging: str = "standard"


def default_look(record: CatalogRecord) -> ItemLook:
    """The look of a correct item without a date print (callers add the dates)."""
    colour = tuple(record.colour_rgb or (180, 180, 180))
    variant = record.attributes.get("size") or record.attributes.get("model")
    packaging = record.packaging_variants[0] if record.packaging_variants else "standard"
    return ItemLook(record=record, colour_rgb=colour, variant_text=variant, packaging=packaging)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# drawing helpers


def stable_int(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest(), "little")


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(round(x * (1 - t) + y * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _luma(c: RGB) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _contrast_ink(c: RGB) -> RGB:
    return (24, 24, 28) if _luma(c) > 120 else (245, 245, 240)


def _canvas(w_mm: float, h_mm: float, colour: RGB, alpha: int = 255) -> Image.Image:
    w, h = max(2, round(w_mm * PX_PER_MM)), max(2, round(h_mm * PX_PER_MM))
    return Image.new("RGBA", (w, h), (*colour, alpha))


def _mm(v: float) -> int:
    return round(v * PX_PER_MM)


def _text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    size_mm: float,
    fill: RGB,
    *,
    family: str = "sans-bold",
    language: str = "en",
    anchor: str = "la",
    max_w_mm: float | None = None,
) -> None:
    """Text in mm coordinates, shrunk to fit `max_w_mm` when given."""
    if needs_cjk(text):
        family = family_for("ja" if language not in ("ja", "ko", "zh") else language, bold=family.endswith("bold"))
    size = _mm(size_mm)
    font = get_font(family, size, language)
    if max_w_mm is not None:
        width = font.getlength(text)
        if width > _mm(max_w_mm):
            font = get_font(family, max(6, int(size * _mm(max_w_mm) / width)), language)
    draw.text((_mm(xy[0]), _mm(xy[1])), text, font=font, fill=(*fill, 255), anchor=anchor)


def _barcode(draw: ImageDraw.ImageDraw, box_mm: tuple[float, float, float, float], key: str) -> None:
    x0, y0, x1, y1 = (_mm(v) for v in box_mm)
    draw.rectangle((x0, y0, x1, y1), fill=(250, 250, 248, 255))
    rng = np.random.default_rng(stable_int("barcode", key))
    x = x0 + 4
    while x < x1 - 6:
        w = int(rng.integers(1, 4))
        if rng.random() < 0.55:
            draw.rectangle((x, y0 + 3, x + w - 1, y1 - 9), fill=(15, 15, 15, 255))
        x += w
    digits = "".join(str(d) for d in rng.integers(0, 10, 13))
    font = get_font("mono", max(6, (y1 - y0) // 6))
    draw.text(((x0 + x1) // 2, y1 - 1), digits, font=font, fill=(15, 15, 15, 255), anchor="ms")


def _gradient(img: Image.Image, strength: float, seed: int) -> Image.Image:
    """Subtle printed gradient and paper grain so faces are not flat colour."""
    arr = np.asarray(img).astype(np.float32)
    h, w = arr.shape[:2]
    ramp = np.linspace(1 + strength, 1 - strength, h, dtype=np.float32)[:, None, None]
    grain = np.random.default_rng(seed).standard_normal((h, w, 1), dtype=np.float32) * 2.5
    arr[..., :3] = np.clip(arr[..., :3] * ramp + grain, 0, 255)
    return Image.fromarray(arr.astype(np.uint8), "RGBA")


def _paste_ink(
    img: Image.Image, alpha: np.ndarray, box_px: tuple[int, int, int, int], ink: RGB
) -> tuple[int, int, int, int]:
    """Fit an ink layer inside a box (shrinking if needed) and lay it down; returns its box."""
    x0, y0, x1, y1 = box_px
    h, w = alpha.shape
    scale = min(1.0, (x1 - x0) / w, (y1 - y0) / h)
    if scale < 1.0:
        alpha = cv2.resize(alpha, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    arr = np.array(img)
    composite_ink(arr, alpha, x0, y0, ink)
    img.paste(Image.fromarray(arr, "RGBA"))
    return (x0, y0, x0 + alpha.shape[1], y0 + alpha.shape[0])


def _date_block(
    img: Image.Image, look: ItemLook, box_mm: tuple[float, float, float, float], background: RGB, seed: int
) -> tuple[int, int, int, int] | None:
    """Draw the date print (on a white sticker for label style) and return its pixel box."""
    if look.date_lines is None or not look.label_present:
        return None
    rng = np.random.default_rng(stable_int("date", seed, look.date_lines.lines))
    alpha = render_ink(
        look.date_lines.lines,
        cap_px=_mm(DATE_CAP_MM),
        style=look.print_style,
        language=look.date_lines.language,
        rng=rng,
    )
    x0, y0, x1, y1 = (_mm(v) for v in box_mm)
    draw = ImageDraw.Draw(img)
    if look.print_style == "printed":
        draw.rounded_rectangle((x0, y0, x1, y1), radius=6, fill=(248, 248, 244, 255))
        ink: RGB = (20, 20, 24)
        pad = 6
    else:
        ink = (20, 22, 36) if _luma(background) > 90 else (240, 236, 210)
        pad = 0
    box = _paste_ink(img, alpha, (x0 + pad, y0 + pad, x1 - pad, y1 - pad), ink)
    return (x0, y0, x1, y1) if look.print_style == "printed" else box


def _variant_badge(
    img: Image.Image,
    look: ItemLook,
    box_mm: tuple[float, float, float, float],
    caption: str,
    colour: RGB = (250, 250, 246),
) -> tuple[int, int, int, int] | None:
    """A sticker with the size/model in big letters; None when the label is missing."""
    if not look.label_present or not look.variant_text:
        return None
    x0, y0, x1, y1 = box_mm
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle(
        tuple(_mm(v) for v in box_mm), radius=_mm(2), fill=(*colour, 255), outline=(40, 40, 40, 255), width=2
    )
    h = y1 - y0
    _text(draw, ((x0 + x1) / 2, y0 + h * 0.08), caption, h * 0.16, (60, 60, 60), anchor="mt", max_w_mm=(x1 - x0) * 0.9)
    _text(
        draw,
        ((x0 + x1) / 2, y0 + h * 0.62),
        look.variant_text,
        h * 0.42,
        (15, 15, 15),
        anchor="mm",
        max_w_mm=(x1 - x0) * 0.88,
    )
    return tuple(_mm(v) for v in box_mm)  # type: ignore[return-value]


def _rgba(img: Image.Image) -> np.ndarray:
    return np.array(img, dtype=np.uint8)


def _rect_outline(w: float, d: float, chamfer: float = 0.0) -> np.ndarray:
    """Counter-clockwise rectangle starting at the front-left corner (front = -y)."""
    if chamfer <= 0:
        return np.array([[-w / 2, -d / 2], [w / 2, -d / 2], [w / 2, d / 2], [-w / 2, d / 2]], dtype=np.float64)
    c = chamfer
    return np.array(
        [
            [-w / 2 + c, -d / 2],
            [w / 2 - c, -d / 2],
            [w / 2, -d / 2 + c],
            [w / 2, d / 2 - c],
            [w / 2 - c, d / 2],
            [-w / 2 + c, d / 2],
            [-w / 2, d / 2 - c],
            [-w / 2, -d / 2 + c],
        ],
        dtype=np.float64,
    )


def _circle_outline(r: float, n: int = 28) -> np.ndarray:
    angles = -np.pi / 2 + np.arange(n) * 2 * np.pi / n
    return np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1)


def _top_alpha(outline: np.ndarray, img: Image.Image) -> Image.Image:
    """Cut the top texture to the outline (its bounding box is the texture)."""
    xmin, ymax = outline[:, 0].min(), outline[:, 1].max()
    pts = [(_mm(x - xmin), _mm(ymax - y)) for x, y in outline]
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).polygon(pts, fill=255)
    alpha = np.minimum(np.asarray(img)[..., 3], np.asarray(mask))
    out = np.array(img)
    out[..., 3] = alpha
    return Image.fromarray(out, "RGBA")


class _BoxFaces:
    """Side strip of a rectangular box: faces front (w), right (d), back (w), left (d)."""

    def __init__(self, w: float, d: float, h: float, colour: RGB, seed: int, chamfer: float = 0.0):
        self.w, self.d, self.h, self.c = w, d, h, chamfer
        self.lengths = self._lengths()
        self.img = _gradient(_canvas(sum(self.lengths), h, colour), 0.06, seed)
        self.draw = ImageDraw.Draw(self.img)

    def _lengths(self) -> list[float]:
        if self.c <= 0:
            return [self.w, self.d, self.w, self.d]
        diag = float(np.hypot(self.c, self.c))
        return [
            self.w - 2 * self.c,
            diag,
            self.d - 2 * self.c,
            diag,
            self.w - 2 * self.c,
            diag,
            self.d - 2 * self.c,
            diag,
        ]

    def face_x(self, face: int) -> float:
        """Strip x (mm) where face 0 front, 1 right, 2 back, 3 left starts."""
        index = face * 2 if self.c > 0 else face
        return float(sum(self.lengths[:index]))

    def face_w(self, face: int) -> float:
        return self.lengths[face * 2 if self.c > 0 else face]


def _fit_box(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
    return (x, y, x + w, y + h)


# ---------------------------------------------------------------------------------------------
# product designs


def _seed_of(look: ItemLook) -> int:
    return stable_int(look.record.sku) & 0xFFFFFFF


def _brand(record: CatalogRecord) -> str:
    return record.title.split(",")[0]


def _carton(
    look: ItemLook, w: float, d: float, h: float, *, date_on: Surface = "side", chamfer: float = 0.0
) -> Product:
    """A printed carton (food, pharma, phone case box, shoebox, bedding pack)."""
    rec, seed = look.record, _seed_of(look)
    base = look.colour_rgb
    accent = _mix(base, (255, 255, 255), 0.65) if _luma(base) < 140 else _mix(base, (0, 0, 0), 0.55)
    ink = _contrast_ink(base)
    lang = rec.label_languages[0]
    top = _gradient(_canvas(w, d, base), 0.08, seed)
    draw = ImageDraw.Draw(top)
    draw.rectangle((0, 0, _mm(w), _mm(d * 0.2)), fill=(*accent, 255))
    rng = np.random.default_rng(seed)
    for _ in range(3):
        cx, cy, r = rng.uniform(0.45, 0.9) * w, rng.uniform(0.45, 0.85) * d, rng.uniform(0.08, 0.2) * min(w, d)
        draw.ellipse(tuple(_mm(v) for v in (cx - r, cy - r, cx + r, cy + r)), fill=(*_mix(accent, base, 0.3), 255))
    _text(
        draw,
        (w * 0.06, d * 0.04),
        _brand(rec).upper(),
        d * 0.1,
        _contrast_ink(accent),
        language=lang,
        max_w_mm=w * 0.88,
    )
    _text(draw, (w * 0.06, d * 0.3), rec.title, d * 0.075, ink, family="sans", language=lang, max_w_mm=w * 0.6)
    regions: dict[str, Region] = {}
    faces = _BoxFaces(w, d, h, _mix(base, (0, 0, 0), 0.08), seed + 1, chamfer)
    fx, fw = faces.face_x(0), faces.face_w(0)
    faces.draw.rectangle((_mm(fx), 0, _mm(fx + fw), _mm(h * 0.3)), fill=(*accent, 255))
    _text(faces.draw, (fx + fw * 0.04, h * 0.45), _brand(rec), h * 0.28, ink, language=lang, max_w_mm=fw * 0.5)
    bx, bw = faces.face_x(2), faces.face_w(2)
    _barcode(faces.draw, _fit_box(bx + bw * 0.68, h * 0.15, min(bw * 0.28, 50), h * 0.7), rec.sku)
    if look.variant_text is not None:
        badge = (w * 0.66, d * 0.5, w * 0.94, d * 0.5 + min(d * 0.42, w * 0.3))
        box = _variant_badge(top, look, badge, "SIZE" if "size" in rec.attributes else "MODEL")
        regions["variant_label"] = Region(0, "top", box or tuple(_mm(v) for v in badge))  # type: ignore[arg-type]
        regions["label"] = regions["variant_label"]
    if rec.expiry.carries_date:
        if date_on == "side":
            box_mm = _fit_box(bx + bw * 0.04, h * 0.1, bw * 0.6, h * 0.8)
            box = _date_block(faces.img, look, box_mm, faces.img.getpixel((_mm(bx + 2), _mm(h / 2)))[:3], seed)
            regions["date_print"] = Region(0, "side", box or tuple(_mm(v) for v in box_mm))  # type: ignore[arg-type]
        else:
            box_mm = _fit_box(w * 0.05, d * 0.58, w * 0.58, d * 0.38)
            box = _date_block(top, look, box_mm, base, seed)
            regions["date_print"] = Region(0, "top", box or tuple(_mm(v) for v in box_mm))  # type: ignore[arg-type]
        regions.setdefault("label", regions["date_print"])
    seal = _fit_box(w * 0.45, d * 0.82, w * 0.1, d * 0.18)
    draw.rectangle(tuple(_mm(v) for v in seal), fill=(235, 235, 230, 200))
    regions["seal"] = Region(0, "top", tuple(_mm(v) for v in seal))  # type: ignore[arg-type]
    outline = _rect_outline(w, d, chamfer)
    part = Part(outline, 0.0, h, _rgba(_top_alpha(outline, top)), _rgba(faces.img), gloss=0.15)
    return Product([part], regions)


def _pet_bag(look: ItemLook) -> Product:
    rec, seed = look.record, _seed_of(look)
    kg = float(rec.attributes.get("size", "7 kg").split()[0])
    w, d, h = 230 + kg * 10, 170 + kg * 8, 50 + kg * 4
    base = look.colour_rgb
    lang = rec.label_languages[0]
    top = _gradient(_canvas(w, d, base), 0.12, seed)
    draw = ImageDraw.Draw(top)
    draw.rectangle((0, 0, _mm(w), _mm(16)), fill=(*_mix(base, (0, 0, 0), 0.35), 255))  # heat seal band
    for i in range(0, _mm(w), 6):
        draw.line((i, 0, i, _mm(16)), fill=(*_mix(base, (0, 0, 0), 0.5), 255))
    cx, cy = w * 0.62, d * 0.58
    draw.ellipse(tuple(_mm(v) for v in (cx - 55, cy - 35, cx + 55, cy + 40)), fill=(196, 150, 96, 255))  # dog body
    draw.ellipse(tuple(_mm(v) for v in (cx + 30, cy - 60, cx + 75, cy - 15)), fill=(176, 128, 80, 255))  # head
    draw.ellipse(tuple(_mm(v) for v in (cx + 58, cy - 66, cx + 72, cy - 38)), fill=(120, 80, 48, 255))  # ear
    _text(draw, (w * 0.05, 22), _brand(rec).split()[0].upper(), 22, (250, 246, 232), language=lang, max_w_mm=w * 0.7)
    _text(draw, (w * 0.05, 50), " ".join(_brand(rec).split()[1:]), 11, (250, 246, 232), family="sans", max_w_mm=w * 0.5)
    draw.ellipse(tuple(_mm(v) for v in (w * 0.05, d - 58, w * 0.05 + 48, d - 10)), fill=(250, 230, 40, 255))
    _text(draw, (w * 0.05 + 24, d - 34), rec.attributes.get("size", ""), 11, (20, 20, 20), anchor="mm", max_w_mm=44)
    regions: dict[str, Region] = {}
    box_mm = _fit_box(w * 0.5, 18, w * 0.48, 30)
    box = _date_block(top, look, box_mm, _mix(base, (0, 0, 0), 0.1), seed)
    regions["date_print"] = Region(0, "top", box or tuple(_mm(v) for v in box_mm))  # type: ignore[arg-type]
    regions["label"] = regions["date_print"]
    regions["seal"] = Region(0, "top", (0, 0, _mm(w), _mm(16)))
    arr = np.asarray(top).astype(np.float32)
    yy, xx = np.mgrid[0 : arr.shape[0], 0 : arr.shape[1]].astype(np.float32)
    pillow = 1.0 - 0.28 * ((2 * xx / arr.shape[1] - 1) ** 4 + (2 * yy / arr.shape[0] - 1) ** 4)
    arr[..., :3] *= pillow[..., None]
    top = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGBA")
    faces = _BoxFaces(w, d, h, _mix(base, (0, 0, 0), 0.25), seed + 1, chamfer=25)
    outline = _rect_outline(w, d, chamfer=25)
    part = Part(outline, 0.0, h, _rgba(_top_alpha(outline, top)), _rgba(faces.img), gloss=0.35)
    return Product([part], regions, deformable=False)


def _folded_polybag(look: ItemLook, w: float, d: float, h: float, caption: str) -> Product:
    """A folded garment or sheet set in a clear polybag with a size sticker."""
    rec, seed = look.record, _seed_of(look)
    base = look.colour_rgb
    top = _gradient(_canvas(w, d, base), 0.05, seed)
    draw = ImageDraw.Draw(top)
    dark = _mix(base, (0, 0, 0), 0.3)
    if rec.category == "apparel":
        draw.arc(tuple(_mm(v) for v in (w * 0.35, -d * 0.06, w * 0.65, d * 0.12)), 0, 180, fill=(*dark, 255), width=6)
        for x in (w * 0.12, w * 0.88):
            draw.line((_mm(x), _mm(d * 0.1), _mm(x), _mm(d * 0.95)), fill=(*dark, 255), width=3)
        draw.rectangle(tuple(_mm(v) for v in (w * 0.44, d * 0.03, w * 0.56, d * 0.07)), fill=(230, 230, 220, 255))
    else:
        card = (w * 0.06, d * 0.06, w * 0.94, d * 0.5)
        draw.rectangle(tuple(_mm(v) for v in card), fill=(246, 244, 238, 255))
        draw.rectangle(
            tuple(_mm(v) for v in (w * 0.1, d * 0.2, w * 0.9, d * 0.46)),
            fill=(*base, 255),
            outline=(*dark, 255),
            width=3,
        )
        draw.rectangle(tuple(_mm(v) for v in (w * 0.14, d * 0.22, w * 0.34, d * 0.3)), fill=(250, 250, 250, 255))
        _text(draw, (w * 0.1, d * 0.08), _brand(rec), d * 0.07, (40, 40, 60), family="serif-bold", max_w_mm=w * 0.8)
        for i in range(4):
            y = d * (0.55 + 0.1 * i)
            draw.line((_mm(w * 0.04), _mm(y), _mm(w * 0.96), _mm(y + 3)), fill=(*dark, 255), width=2)
    # polybag sheen
    arr = np.asarray(top).astype(np.float32)
    hh, ww = arr.shape[:2]
    yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
    sheen = np.exp(-(((xx - yy * 0.6 - ww * 0.3) / (ww * 0.08)) ** 2)) * 40
    arr[..., :3] += sheen[..., None]
    top = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGBA")
    badge = (w * 0.62, d * 0.62, w * 0.62 + min(w, d) * 0.3, d * 0.62 + min(w, d) * 0.3)
    box = _variant_badge(top, look, badge, caption)
    regions = {"variant_label": Region(0, "top", box or tuple(_mm(v) for v in badge))}  # type: ignore[arg-type]
    regions["label"] = regions["variant_label"]
    faces = _BoxFaces(w, d, h, _mix(base, (0, 0, 0), 0.15), seed + 1, chamfer=8)
    outline = _rect_outline(w, d, chamfer=8)
    part = Part(outline, 0.0, h, _rgba(_top_alpha(outline, top)), _rgba(faces.img), gloss=0.45)
    return Product([part], regions, deformable=False)


def _book(look: ItemLook) -> Product:
    rec, seed = look.record, _seed_of(look)
    w, d, h = 150.0, 230.0, 24.0 + (seed % 3) * 6
    base = look.colour_rgb
    top = _gradient(_canvas(w, d, base), 0.1, seed)
    draw = ImageDraw.Draw(top)
    ink = _contrast_ink(base)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        x, y, r = rng.uniform(0, w), rng.uniform(d * 0.35, d * 0.8), rng.uniform(10, 35)
        draw.ellipse(
            tuple(_mm(v) for v in (x - r, y - r, x + r, y + r)), fill=(*_mix(base, (255, 255, 255), 0.35), 255)
        )
    _text(draw, (w / 2, d * 0.12), rec.title, 13, ink, family="serif-bold", anchor="mt", max_w_mm=w * 0.86)
    _text(draw, (w / 2, d * 0.88), "A. N. Author", 8, ink, family="serif", anchor="mt")
    pages = _BoxFaces(w, d, h, (238, 232, 214), seed + 1)
    for face in (0, 1, 2):  # page edges, fine lines
        x0 = pages.face_x(face)
        for y in range(2, _mm(h) - 2, 3):
            pages.draw.line((_mm(x0), y, _mm(x0 + pages.face_w(face)), y), fill=(214, 206, 186, 255))
    sx = pages.face_x(3)
    pages.draw.rectangle((_mm(sx), 0, _mm(sx + d), _mm(h)), fill=(*_mix(base, (0, 0, 0), 0.15), 255))
    _text(pages.draw, (sx + d / 2, h / 2), rec.title, h * 0.4, ink, family="serif-bold", anchor="mm", max_w_mm=d * 0.8)
    outline = _rect_outline(w, d)
    part = Part(outline, 0.0, h, _rgba(top), _rgba(pages.img), gloss=0.3)
    return Product([part], {"corner": Region(0, "top", (0, 0, _mm(w), _mm(d)))})


def _canister(look: ItemLook) -> Product:
    """Clear tennis-ball canister standing up: balls visible through the wall and the lid."""
    rec = look.record
    count = int(rec.attributes.get("count", "3"))
    r, h = 37.0, float(rec.attributes.get("height_mm", "210"))
    outline = _circle_outline(r)
    perim = float(np.sum(np.linalg.norm(np.diff(np.vstack([outline, outline[:1]]), axis=0), axis=1)))
    side = _canvas(perim, h, (210, 222, 228), alpha=70)
    draw = ImageDraw.Draw(side)
    ball = look.colour_rgb
    balls = round(count * look.fill)
    pitch = (h - 22) / count
    for i in range(balls):  # balls fill the tube from the bottom
        cy = h - 4 - pitch * (i + 0.5)
        for k in range(2):  # seen through the front and the back of the tube
            cx = perim * (0.25 + 0.5 * k)
            draw.ellipse(
                tuple(_mm(v) for v in (cx - perim * 0.2, cy - pitch * 0.47, cx + perim * 0.2, cy + pitch * 0.47)),
                fill=(*ball, 255),
            )
            draw.arc(
                tuple(_mm(v) for v in (cx - perim * 0.14, cy - pitch * 0.4, cx + perim * 0.02, cy + pitch * 0.4)),
                280,
                80,
                fill=(250, 250, 240, 255),
                width=4,
            )
    draw.rectangle((0, 0, _mm(perim), _mm(18)), fill=(235, 235, 235, 120))
    band_y = h * 0.62
    draw.rectangle((0, _mm(band_y), _mm(perim), _mm(band_y + 26)), fill=(200, 30, 40, 255))
    for k in (0.25, 0.75):
        _text(draw, (perim * k, band_y + 13), "CHAMPIONSHIP", 9, (255, 255, 255), anchor="mm", max_w_mm=perim * 0.45)
    fill_box = (0, _mm(18), _mm(perim), _mm(h))
    top = _canvas(2 * r, 2 * r, (220, 228, 232), alpha=200)
    tdraw = ImageDraw.Draw(top)
    if balls == count:
        tdraw.ellipse(
            tuple(_mm(v) for v in (6, 6, 2 * r - 6, 2 * r - 6)), fill=(*_mix(ball, (255, 255, 255), 0.25), 255)
        )
        tdraw.arc(tuple(_mm(v) for v in (14, 10, 2 * r - 20, 2 * r - 10)), 300, 60, fill=(250, 250, 240, 255), width=4)
    tdraw.ellipse(tuple(_mm(v) for v in (1, 1, 2 * r - 1, 2 * r - 1)), outline=(120, 120, 125, 255), width=5)
    _text(tdraw, (r, r * 0.5), "PRO", 9, (200, 30, 40), anchor="mm")
    seal = (0, 0, _mm(perim), _mm(18))
    regions = {
        "fill": Region(0, "side", fill_box),
        "fill_top": Region(0, "top", (0, 0, _mm(2 * r), _mm(2 * r))),
        "seal": Region(0, "side", seal),
    }
    part = Part(outline, 0.0, h, _rgba(_top_alpha(outline, top)), _rgba(side), gloss=0.6)
    return Product([part], regions, deformable=False)


def _bottle(look: ItemLook) -> Product:
    rec, seed = look.record, _seed_of(look)
    r, h = 42.0, 215.0
    liquid = look.colour_rgb
    opaque = "SHAMPOO" in rec.sku
    outline = _circle_outline(r)
    perim = float(np.sum(np.linalg.norm(np.diff(np.vstack([outline, outline[:1]]), axis=0), axis=1)))
    body_colour = liquid if opaque else _mix(liquid, (235, 240, 240), 0.55)
    side = _canvas(perim, h, body_colour, alpha=255 if opaque else 110)
    draw = ImageDraw.Draw(side)
    level = h * (1 - 0.88 * look.fill)
    if not opaque:
        draw.rectangle((0, _mm(level), _mm(perim), _mm(h)), fill=(*liquid, 235))
        draw.line((0, _mm(level), _mm(perim), _mm(level)), fill=(*_mix(liquid, (255, 255, 255), 0.5), 255), width=3)
    label_y0, label_y1 = h * 0.42, h * 0.8
    draw.rectangle((0, _mm(label_y0), _mm(perim), _mm(label_y1)), fill=(246, 244, 236, 255))
    lang = rec.label_languages[0]
    _text(
        draw,
        (perim * 0.25, (label_y0 + label_y1) / 2 - 8),
        _brand(rec).split()[0],
        14,
        (30, 60, 30) if not opaque else liquid,
        family="serif-bold",
        anchor="mm",
        language=lang,
        max_w_mm=perim * 0.4,
    )
    _text(
        draw,
        (perim * 0.25, (label_y0 + label_y1) / 2 + 12),
        " ".join(_brand(rec).split()[1:]),
        7,
        (60, 60, 60),
        family="sans",
        anchor="mm",
        max_w_mm=perim * 0.45,
    )
    _barcode(draw, (perim * 0.78, label_y0 + 8, perim * 0.95, label_y1 - 8), rec.sku)
    regions: dict[str, Region] = {"label": Region(0, "side", (0, _mm(label_y0), _mm(perim), _mm(label_y1)))}
    if rec.expiry.carries_date:
        box_mm = (perim * 0.52, label_y0 + 4, perim * 0.76, label_y1 - 4)
        box = _date_block(side, look, box_mm, (246, 244, 236), seed)
        regions["date_print"] = Region(0, "side", box or tuple(_mm(v) for v in box_mm))  # type: ignore[arg-type]
        regions["label"] = regions["date_print"]
    if not opaque:
        regions["fill"] = Region(0, "side", (0, _mm(h * 0.12), _mm(perim), _mm(label_y0)))
    shoulder = _canvas(2 * r, 2 * r, body_colour, alpha=255 if opaque else 140)
    sdraw = ImageDraw.Draw(shoulder)
    sdraw.ellipse(
        tuple(_mm(v) for v in (r - 24, r - 24, r + 24, r + 24)), fill=(*_mix(body_colour, (255, 255, 255), 0.3), 255)
    )
    body = Part(outline, 0.0, h, _rgba(_top_alpha(outline, shoulder)), _rgba(side), gloss=0.7)
    cap_r, cap_h = 17.0, 24.0
    cap_outline = _circle_outline(cap_r, 16)
    cap_perim = float(np.sum(np.linalg.norm(np.diff(np.vstack([cap_outline, cap_outline[:1]]), axis=0), axis=1)))
    cap_colour = (240, 240, 236) if opaque else (30, 110, 60)
    cap_side = _canvas(cap_perim, cap_h, cap_colour)
    cdraw = ImageDraw.Draw(cap_side)
    for x in range(0, _mm(cap_perim), 5):
        cdraw.line((x, 0, x, _mm(cap_h * 0.7)), fill=(*_mix(cap_colour, (0, 0, 0), 0.25), 255))
    cdraw.rectangle((0, _mm(cap_h * 0.72), _mm(cap_perim), _mm(cap_h)), fill=(*_mix(cap_colour, (0, 0, 0), 0.15), 255))
    for x in range(0, _mm(cap_perim), 14):  # tamper ring bridges
        cdraw.rectangle((x, _mm(cap_h * 0.7), x + 3, _mm(cap_h * 0.74)), fill=(*_mix(cap_colour, (0, 0, 0), 0.4), 255))
    cap_top = _canvas(2 * cap_r, 2 * cap_r, _mix(cap_colour, (255, 255, 255), 0.2))
    regions["seal"] = Region(1, "side", (0, _mm(cap_h * 0.6), _mm(cap_perim), _mm(cap_h)))
    cap = Part(cap_outline, h, cap_h, _rgba(_top_alpha(cap_outline, cap_top)), _rgba(cap_side), gloss=0.3)
    return Product([body, cap], regions, deformable=False)


def _shoe_outline(length: float, width: float, mirror: bool) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    x = length / 2 * np.cos(t)
    y = width / 2 * np.sin(t) * (1 - 0.25 * np.cos(t)) ** 1.0
    y = y + (width * 0.12 * (np.cos(t) > 0.3) * np.sign(np.sin(t)) * 0.0)
    pts = np.stack([x, y * (0.8 + 0.2 * (x > 0))], axis=1)
    return pts * np.array([1, -1])[None, :] if mirror else pts


def _sneakers(look: ItemLook) -> Product:
    seed = _seed_of(look)
    if look.packaging != "no_shoebox":
        product = _carton(replace(look, colour_rgb=(226, 128, 40)), 330, 205, 118)
        shoe = product.parts[0]
        sw = ImageDraw.Draw(img := Image.fromarray(shoe.top, "RGBA"))
        sw.rectangle((0, 0, _mm(330), _mm(205 * 0.2)), fill=(40, 40, 44, 255))
        _text(sw, (16, 5), "STRIDE", 24, (250, 250, 250))
        sw.rectangle(
            tuple(_mm(v) for v in (18, 60, 90, 120)), fill=(*look.colour_rgb, 255), outline=(20, 20, 20, 255), width=3
        )
        shoe.top = _rgba(img)
        return product
    upper = look.colour_rgb
    parts = []
    regions: dict[str, Region] = {}
    for i, offset in enumerate((-52.0, 52.0)):
        outline = _shoe_outline(290, 104, mirror=i == 1) + np.array([0, offset])
        xmin, xmax = outline[:, 0].min(), outline[:, 0].max()
        ymin, ymax = outline[:, 1].min(), outline[:, 1].max()
        top = _gradient(_canvas(xmax - xmin, ymax - ymin, upper), 0.08, seed + i)
        draw = ImageDraw.Draw(top)
        cx = -xmin
        cy = ymax - offset
        draw.ellipse(tuple(_mm(v) for v in (cx - 110, cy - 34, cx - 20, cy + 34)), fill=(40, 40, 44, 255))  # opening
        for k in range(5):  # laces
            x = cx - 5 + k * 16
            draw.line((_mm(x), _mm(cy - 22), _mm(x + 6), _mm(cy + 22)), fill=(250, 250, 250, 255), width=5)
        draw.polygon(
            [(_mm(cx + 20), _mm(cy + 38)), (_mm(cx + 110), _mm(cy + 10)), (_mm(cx + 40), _mm(cy + 20))],
            fill=(250, 250, 250, 255),
        )
        draw.rounded_rectangle(
            tuple(_mm(v) for v in (cx - 140, cy - 14, cx - 112, cy + 14)), radius=6, fill=(250, 250, 246, 255)
        )
        if i == 0 and look.label_present and look.variant_text:
            _text(draw, (cx - 126, cy), look.variant_text.split()[-1], 11, (20, 20, 20), anchor="mm", max_w_mm=26)
        if i == 0:
            regions["variant_label"] = Region(0, "top", tuple(_mm(v) for v in (cx - 140, cy - 14, cx - 112, cy + 14)))  # type: ignore[arg-type]
            regions["label"] = regions["variant_label"]
        perim = float(np.sum(np.linalg.norm(np.diff(np.vstack([outline, outline[:1]]), axis=0), axis=1)))
        side = _canvas(perim, 70, upper)
        sdraw = ImageDraw.Draw(side)
        sdraw.rectangle((0, _mm(48), _mm(perim), _mm(70)), fill=(244, 244, 240, 255))
        sdraw.line((0, _mm(48), _mm(perim), _mm(48)), fill=(60, 60, 60, 255), width=3)
        for x in range(0, _mm(perim), _mm(60)):
            sdraw.arc((x, _mm(8), x + _mm(50), _mm(40)), 180, 360, fill=(250, 250, 250, 255), width=6)
        parts.append(Part(outline, 0.0, 70, _rgba(_top_alpha(outline, top)), _rgba(side), gloss=0.25))
    return Product(parts, regions, deformable=False)


def _phone_case_box(look: ItemLook) -> Product:
    product = _carton(replace(look, colour_rgb=(244, 244, 242)), 100, 180, 24)
    top = Image.fromarray(product.parts[0].top, "RGBA")
    draw = ImageDraw.Draw(top)
    window = (18, 42, 62, 170)
    draw.rounded_rectangle(
        tuple(_mm(v) for v in window), radius=_mm(9), fill=(*look.colour_rgb, 255), outline=(30, 30, 30, 255), width=3
    )
    draw.rounded_rectangle(tuple(_mm(v) for v in (24, 48, 44, 80)), radius=_mm(5), fill=(20, 20, 20, 255))
    product.parts[0].top = _rgba(top)
    product.regions["item_colour"] = Region(0, "top", tuple(_mm(v) for v in window))  # type: ignore[arg-type]
    return product


def build_product(look: ItemLook) -> Product:
    """The textured geometry of one item as it will be photographed."""
    category = look.record.category
    rec = look.record
    if category == "pet_food":
        return _pet_bag(look)
    if category == "phone_case":
        return _phone_case_box(look)
    if category == "apparel":
        return _folded_polybag(look, 240, 300, 32, "SIZE")
    if category == "bedding":
        return _folded_polybag(look, 360, 290, 75, "SIZE")
    if category == "book":
        return _book(look)
    if category == "sports":
        return _canister(look)
    if category == "bottle":
        return _bottle(look)
    if category == "footwear":
        return _sneakers(look)
    if category == "pharma":
        return _carton(look, 140, 80, 32, date_on="top")
    dims = 180 + stable_int(rec.sku) % 60, 120 + stable_int(rec.sku, "d") % 40, 55 + stable_int(rec.sku, "h") % 30
    return _carton(look, *dims)


_PRODUCT_CACHE: dict[tuple, Product] = {}
_PRODUCT_CACHE_SIZE = 96


def product_for(look: ItemLook) -> Product:
    """A private copy of the product (cached per look: textures are costly to draw)."""
    key = (look.record.model_dump_json(), *(getattr(look, f) for f in ItemLook.__dataclass_fields__ if f != "record"))
    cached = _PRODUCT_CACHE.get(key)
    if cached is None:
        if len(_PRODUCT_CACHE) >= _PRODUCT_CACHE_SIZE:
            _PRODUCT_CACHE.pop(next(iter(_PRODUCT_CACHE)))
        cached = _PRODUCT_CACHE[key] = build_product(look)
    parts = [replace(p, top=p.top.copy(), side=p.side.copy()) for p in cached.parts]
    return Product(parts, dict(cached.regions), cached.deformable)
