"""Image passes for OCR: orientation, deskew, contrast, and the dot-matrix fallback.

Every pass returns the image to read plus the affine map from its pixels back to the input
image, so boxes found on a rotated or rescaled pass are reported where they are on the crop
(and from there on the frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

from detectors.ocr_expiry.engines import Box4, OcrEngine, TextLine, fold_tilt
from detectors.ocr_expiry.smear import measure_smear, remove_smear

if TYPE_CHECKING:
    from detectors.ocr_expiry.classify import DateRead

LOW_CONTRAST_STD = 32.0
"""Grey-level spread below which a crop is contrast-stretched before reading."""
MAX_SKEW_DEG = 10.0
SMALL_SIDE = 640
"""Crops whose longest side is below this get an enlarged fallback pass (`MAX_UPSCALE` times)."""
MAX_UPSCALE = 2.0
DOT_MATRIX_SIZES = (3, 5)
"""Minimum-filter sizes for the fallback: 3 px joins fine inkjet dots, 5 px coarse ones."""
DOT_BLUR_SIGMAS = (0.06, 0.1)
"""Gaussian blurs for the fallback, as shares of the print's text height (`text_height`). A coder
prints a character's capitals with about seven dot rows, so these are about half and two thirds
of the dot pitch: the dots run together into strokes the recogniser knows, at any print size,
where the fixed minimum filter thickens small print into blots. On 143 simulated inkjet prints of
a development seed, reading them before the other whole-image fallbacks raised exact expiry reads
from 125 to 131 and cut unread prints from 13 to 8; wrong dates went from 5 to 4."""
DOT_BLUR_PASS = "dotblur"
"""Name prefix of the dot-blur passes (the share of text height follows)."""
MIN_DOT_BLUR_HEIGHT = 24.0
"""Text lines shorter than this show no separate dots to join: the text detector's line is about
twice the capital height on small print, so these are capitals under about 13 px and a coder's
dot pitch under 2 px, which the camera has merged. Blurring such print only smears it, and at
the edge budget it cost the enlarged pass that reads small print: on held-out prints with 5 px
capitals exact reads fell from 51 to 49 of 60, and at 8 px one more date was read wrong."""
UPSCALE_PASS = "upscale"
"""Name of the pass that reads a small image enlarged (`upscale_pass`)."""
AS_CAPTURED_PASS = "as_captured"
"""Name of the pass that reads a view as captured after its corrected copy (`as_captured_pass`)."""
MIN_LINE_CHARS = 3
"""Lines shorter than this (stray marks, a lone digit) say little about the print's text height."""
REGION_MIN_DIGITS = 4
"""A line with this many digits may be a misread date: its region is read again, enlarged."""
MAX_REGIONS = 2
"""Regions re-read per image (the lines with most digits first)."""
REGION_PAD = 0.6
"""Padding around a candidate line, as a share of its height (a neighbouring expiry line fits in)."""
REGION_TARGET_HEIGHT = 48.0
"""Enlarge a region so its text line is about this tall (the recogniser's input height)."""
REGION_PASS = "region"
"""Name of a region pass: its crop can cut a neighbouring line, its detector split it."""
LINE_PASS = "line"
"""Name of the pass that reads one line again, lengthened and turned to run left to right."""
LINE_EXTEND = 4.0
"""How far a cut line is read beyond its box at each end, in line heights (a day and a label)."""
LINE_PAD = 0.4
"""Margin across a cut line, in line heights: enough for its ascenders, little of its neighbours."""
COARSE_ABOVE = 640
"""Images with a longer side than this (photos, scans; never the tunnel's 640x480 frames or the
crops cut from them) have their text lines searched at `COARSE_DETECT_SIDE` first."""
COARSE_DETECT_SIDE = 512
"""Longest side such an image's first pass looks for text lines at; the lines found are still
recognised at full resolution. The text detector's cost grows with pixels: on the real package
photos (500-1000 px) it was 60-70 % of a read. At 512 px every date of the real photos was
found, and 85 of their 91 perturbed copies with none wrong, as at 640 px and for less time. When
the first pass finds no expiry, or only a month, the image is searched again at the engine's own
size (`FINE_PASS`)."""
FINE_PASS = "fine"
"""Name of the fallback pass that looks for text lines on a large image at full detector size."""
TILE_PASS = "tile"
"""Name prefix of a pass over one tile of a large photo at its own resolution (`tile_passes`)."""
TILE_SIDE = 960
"""Side of a tile: the text detector's own input size, so a tile is searched at full resolution."""
TILE_ABOVE = 1200
"""Photos with a longer side than this are searched tile by tile when nothing else read them. The
detector shrinks a photo to `TILE_SIDE`, and a date print small in a large frame (a phone photo of
a whole carton) then falls under the size it can find: the real package photos set in a scene
three, four and five times their size read 6, 4 and 2 of 7 without tiles."""
TILE_OVERLAP = 0.25
"""Share of a tile its neighbours overlap, so that a date line cut by one tile's edge lies whole in
the next (a line up to a quarter of a tile long)."""
MAX_TILES = 8
"""Tiles read at most, those holding text the first pass found first, then those nearest the
photo's centre (a subject is usually framed there): a 12-megapixel photo has 20."""
LEVEL_PASS = "level"
"""Name prefix of the pass that reads a photo turned so its tilted text lines run level (the
turn in degrees follows)."""
UNSMEAR_PASS = "unsmear"
"""Name prefix of the pass that reads a photo with its motion smear taken out (`unsmear_pass`)."""
UNSMEAR_MIN_SCORE = 0.9
"""Recognition score below which a line read on a smear-corrected photo is not taken. Inverting a
smear leaves ringing the recogniser can read as glyphs: on the real photos smeared 5-9 px, the
two wrong dates the corrected copies gave were read at 0.51 and 0.63, the 25 right ones at 0.94
or more."""
MIN_TILT_DEG = 12.0
"""Text tilted at least this far from both image axes is read again turned level (`level_pass`).
The text detector finds tilted lines and the recogniser reads each along its own box, but of
the real package photos turned 25-135° (56 reads), 9 went unread and one was read wrong: a
tilted line's neighbours overlap its upright box, so the label that types a date (on its line
or the line above) is lost, and the detector misses or splits some steep lines. Up to 15° (the
photo benchmark's skews) they are all read as they are."""
TILT_AGREEMENT = 0.9
"""How closely the lines' tilts must agree for the photo to count as tilted as a whole: the
length of the mean of their doubled-angle unit vectors (1 when all are parallel; 0.9 is about
±13° of spread). Print at several angles is read as it is."""


@dataclass(frozen=True)
class Pass:
    """One image to read and how its coordinates map back to the input image."""

    name: str
    image: np.ndarray
    to_input: np.ndarray
    """2x3 affine: pass pixel (x, y, 1) -> input pixel."""
    detect_side: int | None = None
    """Longest side the engine's text detector reads this pass at (None: the engine's own)."""
    min_score: float = 0.0
    """Lines this pass recognises with a lower score are not taken (a pass that can make text up)."""

    def read(self, engine: OcrEngine) -> list[TextLine]:
        """The pass's image read by `engine`, boxes in the pass's pixels."""
        if self.detect_side is None:
            lines = engine.read(self.image)
        else:
            lines = engine.read(self.image, detect_side=self.detect_side)
        return [line for line in lines if line.confidence >= self.min_score]

    def map_box(self, box: Box4) -> Box4:
        x0, y0, x1, y1 = box
        pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
        mapped = pts @ self.to_input[:, :2].T + self.to_input[:, 2]
        return (
            float(mapped[:, 0].min()),
            float(mapped[:, 1].min()),
            float(mapped[:, 0].max()),
            float(mapped[:, 1].max()),
        )

    def map_lines(self, lines: Sequence[TextLine]) -> list[TextLine]:
        return [
            replace(
                line,
                box=self.map_box(line.box),
                source=self.name,
                tilt=self.map_tilt(line.tilt),
                extent=self.map_extent(line.extent),
            )
            for line in lines
        ]

    def map_extent(self, extent: tuple[float, float] | None) -> tuple[float, float] | None:
        """A line's extent on this pass as it measures on the input image (passes turn and scale
        alike in both directions)."""
        if extent is None:
            return None
        scale = float(np.sqrt(abs(np.linalg.det(self.to_input[:, :2]))))
        return (extent[0] * scale, extent[1] * scale)

    def map_tilt(self, tilt: float) -> float:
        """A line's tilt on this pass (`TextLine.tilt`) as it lies on the input image."""
        along = self.to_input[:, :2] @ np.array([np.cos(np.radians(tilt)), -np.sin(np.radians(tilt))])
        return fold_tilt(float(np.degrees(np.arctan2(-along[1], along[0]))))

    def map_dates(self, dates: Sequence[DateRead]) -> list[DateRead]:
        """Dates typed on this pass's lines, their boxes mapped to the input image. Dates are typed
        in the pass's own pixels, where its text reads left to right (a quarter-turned pass)."""
        return [replace(d, box=self.map_box(d.box), source=self.name) for d in dates]


IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def stretch_contrast(image: np.ndarray) -> np.ndarray:
    """CLAHE on lightness: faint prints on shiny film become readable, colours are kept."""
    clahe = cv2.createCLAHE(clipLimit=2.5, tileGridSize=(8, 8))
    if image.ndim == 2:
        return clahe.apply(image)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = clahe.apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def is_low_contrast(image: np.ndarray) -> bool:
    return float(grey(image).std()) < LOW_CONTRAST_STD


def dot_matrix(image: np.ndarray, size: int = 3) -> np.ndarray:
    """Greyscale + minimum filter: joins the separate dots of inkjet / dot-matrix prints into strokes.

    It thickens dark text, which hurts normal print, so it is only a fallback pass.
    """
    kernel = np.ones((size, size), np.uint8)
    return cv2.erode(grey(image), kernel)


def rotate(image: np.ndarray, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate counter-clockwise on an enlarged canvas; returns (image, 2x3 map back to the input)."""
    h, w = image.shape[:2]
    quarter = round(angle_deg / 90.0) % 4
    if abs(angle_deg - 90.0 * round(angle_deg / 90.0)) < 1e-6:
        codes = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}
        if quarter == 0:
            return image, IDENTITY.copy()
        out = cv2.rotate(image, codes[quarter])
        back = {
            1: [[0.0, -1.0, w - 1.0], [1.0, 0.0, 0.0]],
            2: [[-1.0, 0.0, w - 1.0], [0.0, -1.0, h - 1.0]],
            3: [[0.0, 1.0, 0.0], [-1.0, 0.0, h - 1.0]],
        }[quarter]
        return out, np.array(back)
    fwd = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle_deg, 1.0)
    cos, sin = abs(fwd[0, 0]), abs(fwd[0, 1])
    nw, nh = int(h * sin + w * cos + 0.5), int(h * cos + w * sin + 0.5)
    fwd[0, 2] += nw / 2.0 - w / 2.0
    fwd[1, 2] += nh / 2.0 - h / 2.0
    border = tuple(int(v) for v in np.median(image.reshape(-1, image.shape[2] if image.ndim == 3 else 1), axis=0))
    out = cv2.warpAffine(image, fwd, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=border)
    return out, cv2.invertAffineTransform(fwd)


def skew_angle(image: np.ndarray, max_deg: float = MAX_SKEW_DEG, step: float = 1.0) -> float:
    """Small text skew by projection profiles: text rows give the sharpest profile when level."""
    g = grey(image)
    scale = 400.0 / max(g.shape)
    if scale < 1.0:
        g = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ink = cv2.adaptiveThreshold(g, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 15, 10).astype(np.float32)
    h, w = ink.shape
    best, best_score = 0.0, -1.0
    for angle in np.arange(-max_deg, max_deg + 1e-9, step):
        m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), float(angle), 1.0)
        rows = cv2.warpAffine(ink, m, (w, h)).sum(axis=1)
        score = float(np.square(np.diff(rows)).sum())
        if score > best_score:
            best, best_score = float(angle), score
    return best


def vertical_text(lines: Sequence[TextLine]) -> bool:
    """Most multi-character lines are taller than wide: the package lies on its side."""
    long = [line for line in lines if len(line.text.strip()) >= 3]
    if len(long) < 2:
        return False
    tall = sum(line.height > 1.5 * line.width for line in long)
    return tall > len(long) / 2


def coarse_side(image: np.ndarray, coarse: bool) -> int | None:
    """The first pass's detector side for this image: `COARSE_DETECT_SIDE` when `coarse` (the
    engine sizes its detector input) and the image is larger than `COARSE_ABOVE`; else None."""
    return COARSE_DETECT_SIDE if coarse and max(image.shape[:2]) > COARSE_ABOVE else None


def fine_pass(image: np.ndarray) -> Pass:
    """The image as it is, its text lines searched at the engine's own detector size."""
    return Pass(FINE_PASS, image, IDENTITY.copy())


def first_pass(image: np.ndarray, *, deskew: bool = False, coarse: bool = False) -> Pass:
    """The normal read: contrast-stretched when faint, deskewed for engines that need it, text
    lines searched at `COARSE_DETECT_SIDE` when `coarse`."""
    img = stretch_contrast(image) if is_low_contrast(image) else image
    name = "contrast" if img is not image else "plain"
    side = coarse_side(image, coarse)
    if deskew:
        angle = skew_angle(img)
        if abs(angle) >= 1.0:
            rotated, back = rotate(img, angle)
            return Pass(f"{name}+deskew{angle:+.0f}", rotated, back, side)
    return Pass(name, img, IDENTITY.copy(), side)


def text_tilt(lines: Sequence[TextLine]) -> float | None:
    """The tilt the lines of `MIN_LINE_CHARS` or more share (`TextLine.tilt`), or None when there
    are none or their tilts disagree (`TILT_AGREEMENT`). Angles are doubled before they are
    averaged, so lines at 89° and -89° count as parallel."""
    tilts = np.radians([2.0 * line.tilt for line in lines if len(line.text.strip()) >= MIN_LINE_CHARS])
    if not tilts.size:
        return None
    mean = complex(np.cos(tilts).mean(), np.sin(tilts).mean())
    if abs(mean) < TILT_AGREEMENT:
        return None
    return fold_tilt(float(np.degrees(np.angle(mean))) / 2.0)


def level_pass(image: np.ndarray, lines: Sequence[TextLine]) -> Pass | None:
    """The image turned so the text lines the first pass found run level, when they share a tilt
    at least `MIN_TILT_DEG` from both axes (`text_tilt`); None otherwise (quarter turns are
    `fallback_passes`' job). Its lines are searched at the engine's own detector size, never the
    coarse side: turned on an enlarged canvas, a real photo's small print shrank out of reach
    there ("11 APR 2021" at 25° went unread)."""
    tilt = text_tilt(lines)
    if tilt is None or not _tilted(tilt):
        return None
    level, back = rotate(image, -tilt)
    return Pass(f"{LEVEL_PASS}{-tilt:+.0f}", level, back)


def dot_blur_passes(image: np.ndarray, height: float | None) -> list[Pass]:
    """The dot-blur passes for print whose text is `height` px tall (`DOT_BLUR_SIGMAS`); none for
    small or unknown text (`MIN_DOT_BLUR_HEIGHT`)."""
    if height is None or height < MIN_DOT_BLUR_HEIGHT:
        return []
    return [
        Pass(f"{DOT_BLUR_PASS}{share:g}", dot_blur(image, share * height), IDENTITY.copy()) for share in DOT_BLUR_SIGMAS
    ]


def upscale_pass(image: np.ndarray) -> Pass | None:
    """A small image (under `SMALL_SIDE`) enlarged `MAX_UPSCALE` times; None for a large one."""
    if max(image.shape[:2]) >= SMALL_SIDE:
        return None
    big, back = upscale(image, MAX_UPSCALE)
    return Pass(UPSCALE_PASS, big, back)


def as_captured_pass(image: np.ndarray) -> Pass:
    """The view as the camera took it, read when a corrected copy of it was read first (a view
    whose belt smear was taken out, see `smear`) and found no expiry: a smear measured on a
    sharp view makes its corrected copy worse, never better."""
    return Pass(AS_CAPTURED_PASS, image, IDENTITY.copy())


def unsmear_pass(image: np.ndarray) -> Pass | None:
    """A photo of unknown motion with its smear taken out (`smear.remove_smear`) along whichever
    axis shows the longer one, or None when neither shows one. The last resort for a photo
    nothing else reads: the smear measure was made for tunnel views, and on 600 sharp simulated
    print crops it called a 3-4 px smear on 268 (strokes as thick as that dip the same way), so
    it is never applied before the print has been read as it is. The real package photos smeared
    7 px sideways read 3 of 7 without it, 7 of 7 with it; sharp, none measures a smear."""
    smear, axis = max(((measure_smear(image, axis), axis) for axis in (1, 0)), key=lambda s: s[0].length)
    if not smear.worth_removing:
        return None
    name = f"{UNSMEAR_PASS}{smear.length}{'x' if axis == 1 else 'y'}"
    return Pass(name, remove_smear(image, smear.length, axis), IDENTITY.copy(), min_score=UNSMEAR_MIN_SCORE)


_PASS_WORDS = (
    (LEVEL_PASS, "turned level ({}°)"),
    (DOT_BLUR_PASS, "with the print's dots blurred into strokes"),
    ("dotmatrix", "with the print's dots joined"),
    (UPSCALE_PASS, "enlarged"),
    (REGION_PASS, "on its neighbourhood, enlarged"),
    (LINE_PASS, "as one whole line"),
    ("rot", "turned a quarter"),
)


def describe_pass(name: str) -> str | None:
    """How a date read on pass `name` was read, in words for a reviewer; None for the image as
    it is (plain, contrast-stretched, searched at full size, as captured)."""
    if name.startswith(UNSMEAR_PASS) and name[-1:] in ("x", "y"):
        return f"with a {name[len(UNSMEAR_PASS) : -1]} px motion smear along {name[-1]} taken out"
    for prefix, words in _PASS_WORDS:
        if name.startswith(prefix):
            return words.format(name[len(prefix) :])
    return None


def text_height(lines: Sequence[TextLine]) -> float | None:
    """The median height across the read lines (their short side, so a line on its side counts
    too); None when no line has `MIN_LINE_CHARS` characters."""
    across = sorted(min(line.height, line.width) for line in lines if len(line.text.strip()) >= MIN_LINE_CHARS)
    return across[len(across) // 2] if across else None


def dot_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur: the dots of an inkjet / dot-matrix print run together into strokes."""
    return cv2.GaussianBlur(image, (0, 0), max(0.5, sigma))


def upscale(image: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Enlarge (cubic); returns the image and its map back to the input."""
    out = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    return out, np.array([[1.0 / factor, 0.0, 0.0], [0.0, 1.0 / factor, 0.0]])


def _region_zoom(height: float) -> float:
    """How far a region is enlarged so a line `height` px high is read at about the recogniser's
    input height (`REGION_TARGET_HEIGHT`), never shrunk and at most threefold."""
    return float(np.clip(REGION_TARGET_HEIGHT / height, 1.0, 3.0))


def _crop_pass(image: np.ndarray, box: Box4, pad_x: float, pad_y: float, height: float, name: str) -> Pass | None:
    """The padded neighbourhood of `box`, enlarged so a line `height` px high is read at the
    recogniser's input height; None when it is too small to read."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    rx0, ry0 = max(0, int(x0 - pad_x)), max(0, int(y0 - pad_y))
    rx1, ry1 = min(w, int(x1 + pad_x + 1)), min(h, int(y1 + pad_y + 1))
    if rx1 - rx0 < 4 or ry1 - ry0 < 4:
        return None
    factor = _region_zoom(height)
    region, back = upscale(image[ry0:ry1, rx0:rx1], factor)
    return Pass(name, region, back + np.array([[0.0, 0.0, rx0], [0.0, 0.0, ry0]]))


def _tilted(tilt: float) -> bool:
    """Tilted at least `MIN_TILT_DEG` from both image axes."""
    return MIN_TILT_DEG <= abs(tilt) <= 90.0 - MIN_TILT_DEG


def _level_crop_pass(image: np.ndarray, line: TextLine) -> Pass | None:
    """A tilted line's padded neighbourhood (as `_crop_pass` pads a level one) turned level and
    enlarged to the recogniser's input height, in one resampling."""
    if line.extent is None:
        return None
    along, across = line.extent
    factor = _region_zoom(max(1.0, across))
    out_w = round((along + 2 * REGION_PAD * across) * factor)
    out_h = round((across + 4 * REGION_PAD * across) * factor)
    if out_w < 4 or out_h < 4:
        return None
    t = np.radians(line.tilt)
    cos, sin = float(np.cos(t)) / factor, float(np.sin(t)) / factor
    cx, cy = line.centre
    # Output pixel -> input pixel: along the line's direction (cos, -sin), across it (sin, cos).
    to_input = np.array(
        [
            [cos, sin, cx - cos * out_w / 2.0 - sin * out_h / 2.0],
            [-sin, cos, cy + sin * out_w / 2.0 - cos * out_h / 2.0],
        ]
    )
    level = cv2.warpAffine(
        image, to_input, (out_w, out_h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )
    return Pass(REGION_PASS, level, to_input)


def region_pass(image: np.ndarray, line: TextLine) -> list[Pass]:
    """One line's neighbourhood, enlarged; a tilted line's also turned level, after the upright
    crop. The recogniser reads a mildly tilted line along the box its detector finds, but a
    steep one's upright crop lost the Kraft box's month at 45-60°, while turned level it read;
    at 15° the upright crop read it and the level one did not."""
    upright = _crop_pass(
        image, line.box, REGION_PAD * line.height, 2 * REGION_PAD * line.height, line.height, REGION_PASS
    )
    level = _level_crop_pass(image, line) if _tilted(line.tilt) else None
    return [p for p in (upright, level) if p is not None]


def region_passes(image: np.ndarray, lines: Sequence[TextLine]) -> list[Pass]:
    """Cheap fallbacks first: the neighbourhood of each digit-bearing line, enlarged. A date
    that was half detected or misread at a small size can be read here at a fraction of a
    whole-image pass's cost. No dot-matrix filter on regions: on normal print it garbles a
    production date into something the grammar may take for an expiry."""
    return [p for line in region_lines(lines) for p in region_pass(image, line)]


def region_lines(lines: Sequence[TextLine]) -> list[TextLine]:
    """The lines whose neighbourhoods are read again (`region_passes`): at most `MAX_REGIONS`
    with at least `REGION_MIN_DIGITS` digits, those with most digits first."""
    return sorted(
        (line for line in lines if sum(c.isdigit() for c in line.text) >= REGION_MIN_DIGITS),
        key=lambda line: -sum(c.isdigit() for c in line.text),
    )[:MAX_REGIONS]


def line_pass(image: np.ndarray, box: Box4) -> Pass | None:
    """One line's box lengthened along its reading direction (the longer side) and turned to
    run left to right: a line the detector split or a crop cut ("11" above "APR 2021" on a
    vertical print) read again as one."""
    x0, y0, x1, y1 = box
    across = max(1.0, min(x1 - x0, y1 - y0))
    along, side = LINE_EXTEND * across, LINE_PAD * across
    vertical = y1 - y0 > x1 - x0
    pad_x, pad_y = (side, along) if vertical else (along, side)
    crop = _crop_pass(image, box, pad_x, pad_y, across, LINE_PASS)
    if crop is None or not vertical:
        return crop
    turned, back = rotate(crop.image, 90.0)
    to_input = crop.to_input[:, :2] @ back
    to_input[:, 2] += crop.to_input[:, 2]
    return Pass(LINE_PASS, turned, to_input)


def _tile_starts(length: int) -> list[int]:
    """Tile origins along one side: `TILE_OVERLAP` apart, the last flush with the far edge."""
    if length <= TILE_SIDE:
        return [0]
    step = int(TILE_SIDE * (1.0 - TILE_OVERLAP))
    starts = list(range(0, length - TILE_SIDE, step))
    return [*starts, length - TILE_SIDE]


def tile_passes(image: np.ndarray, lines: Sequence[TextLine]) -> list[Pass]:
    """A large photo (`TILE_ABOVE`) cut into overlapping `TILE_SIDE` tiles, each read at its own
    resolution; at most `MAX_TILES`, those where the first pass saw most text first."""
    h, w = image.shape[:2]
    if max(h, w) <= TILE_ABOVE:
        return []
    centres = [line.centre for line in lines]
    tiles = []
    for y0 in _tile_starts(h):
        for x0 in _tile_starts(w):
            x1, y1 = x0 + TILE_SIDE, y0 + TILE_SIDE
            text = sum(x0 <= cx < x1 and y0 <= cy < y1 for cx, cy in centres)
            off_centre = abs(x0 + TILE_SIDE / 2 - w / 2) / w + abs(y0 + TILE_SIDE / 2 - h / 2) / h
            tiles.append((-text, off_centre, x0, y0))
    tiles.sort()
    return [
        Pass(
            f"{TILE_PASS}{x0},{y0}",
            image[y0 : y0 + TILE_SIDE, x0 : x0 + TILE_SIDE],
            IDENTITY + np.array([[0.0, 0.0, x0], [0.0, 0.0, y0]]),
        )
        for _, _, x0, y0 in tiles[:MAX_TILES]
    ]


def fallback_passes(image: np.ndarray, lines: Sequence[TextLine], coarse: bool = False) -> list[Pass]:
    """Passes to try when the first found no expiry, cheapest and likeliest first: a large
    image's text lines searched at full detector size when the first pass was `coarse`
    (`FINE_PASS`) and then tile by tile at its own resolution when it is larger still
    (`tile_passes`), quarter turns when text runs vertically, blurs scaled to the text height the
    first pass found (`DOT_BLUR_SIGMAS`), an enlarged copy of a small crop (small print is
    missed by the detector), then the dot-matrix filter (on the enlarged copy when there is
    one)."""
    passes: list[Pass] = []
    if coarse_side(image, coarse) is not None:
        passes.append(fine_pass(image))
        passes += tile_passes(image, lines)
    if vertical_text(lines):
        for angle in (90.0, 270.0):
            rotated, back = rotate(image, angle)
            passes.append(Pass(f"rot{int(angle)}", rotated, back))
    passes += dot_blur_passes(image, text_height(lines))
    enlarged = upscale_pass(image)
    if enlarged is not None:
        passes.append(enlarged)
    base = enlarged or Pass("plain", image, IDENTITY.copy())
    for size in DOT_MATRIX_SIZES:
        name = f"dotmatrix{size}" + ("+upscale" if base.name == UPSCALE_PASS else "")
        passes.append(Pass(name, dot_matrix(base.image, size), base.to_input))
    return passes
