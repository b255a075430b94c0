"""Safe image decoding: every image from a camera, a folder, S3 or HTTP comes through here.

The header is inspected before any pixels are decoded, so decompression bombs and absurd
sizes are refused cheaply; truncated or corrupt files raise `ImageError` with the reason
instead of crashing a batch.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000
"""Largest accepted image (width x height); a 12 MP tunnel camera is well inside."""
MIN_SIDE = 16
MAX_BYTES = 64 * 1024 * 1024


class ImageError(ValueError):
    """An image could not be used; the message says why."""


def decode_image(data: bytes, *, name: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes to RGB uint8 (H, W, 3)."""
    if not data:
        raise ImageError(f"{name}: empty image data")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{name}: {len(data)} bytes is larger than the {MAX_BYTES} byte limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise ImageError(
                    f"{name}: {width}x{height} exceeds the {max_pixels} pixel limit (possible decompression bomb)"
                )
            if min(width, height) < MIN_SIDE:
                raise ImageError(f"{name}: {width}x{height} is smaller than {MIN_SIDE}px on a side")
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"{name}: exceeds the {max_pixels} pixel limit (possible decompression bomb: {_claimed_size(exc)})"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not a decodable image (no known image format in its first bytes)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: corrupt or truncated image ({exc})") from exc
    filled = _jpeg_fill_share(img)
    if filled:
        raise ImageError(f"{name}: truncated JPEG: the bottom {filled:.0%} of the image is the decoder's grey fill")
    return _as_rgb(_upright(img))


def _claimed_size(exc: Exception) -> str:
    """The pixel count Pillow's refusal quotes from the image's header, in words."""
    claimed = re.search(r"\((\d+) pixels\)", str(exc))
    return f"its header claims {int(claimed.group(1)):,} pixels" if claimed else "its header claims too many pixels"


JPEG_FILL = 128
"""The sample value libjpeg gives every block past the end of a JPEG's data (all coefficients
zero, no error raised: a file cut short with its end marker kept decodes "successfully")."""


def _jpeg_fill_share(img: Image.Image) -> float:
    """The share of a JPEG's rows, from the bottom, that are exactly the decoder's fill (0.0 for
    none, or for a JPEG that is that grey throughout). A truncated tunnel frame decodes as a
    grey lower part, which scored as a normal item and read as no date."""
    if img.format != "JPEG" or img.mode not in ("L", "RGB"):
        return 0.0
    width, height = img.size
    rows = np.asarray(img.crop((0, max(0, height - 8), width, height)))
    if (rows != JPEG_FILL).any():
        return 0.0
    pixels = np.asarray(img)
    grey_rows = (pixels == JPEG_FILL).reshape(height, -1).all(axis=1)
    if grey_rows.all():
        return 0.0
    first = height - int(np.argmin(grey_rows[::-1]))
    return (height - first) / height


def _upright(img: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says: a phone stores a photo taken upright or
    on its side as the sensor read it and records the turn, which every viewer applies. Print
    read without it lies on its side. A broken EXIF block is ignored, not an error."""
    try:
        return ImageOps.exif_transpose(img) or img
    except (OSError, SyntaxError, ValueError, TypeError, KeyError):
        return img


def _as_rgb(img: Image.Image) -> np.ndarray:
    """RGB uint8: 16-bit and float greys scaled to 8 bits (a plain conversion clips them to
    white), transparent pixels laid on white (a product cut-out), any other mode converted."""
    if img.mode.startswith(("I", "F")):
        grey = np.asarray(img, dtype=np.float64)
        top = 255.0 if grey.max(initial=0.0) <= 255.0 else 65535.0
        grey8 = np.clip(grey * (255.0 / top), 0, 255).round().astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def read_image(path: Path | str, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read and decode an image file to RGB uint8."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: no such image file") from exc
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc})") from exc
    return decode_image(data, name=str(path), max_pixels=max_pixels)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()
