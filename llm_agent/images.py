"""Thumbnails of stored frames, crops and heatmaps for the investigator's HTML reports.

Paths come from stored evidence (frame uris, heatmap references), which is untrusted: an
image is read only when its path, after following symlinks, lies inside one of the allowed
roots, and it is decoded by `pipeline.imageio.read_image` (size, decompression-bomb and
corruption checks). Anything refused or unreadable gives no thumbnail and a warning.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterable
from pathlib import Path

from pipeline.imageio import ImageError, read_image

log = logging.getLogger("tunnelpi.images")

REMOTE_PREFIXES = ("memory:", "data:", "s3:", "http:", "https:")


def inside_roots(path: Path | str, roots: Iterable[Path | str]) -> Path | None:
    """The fully resolved `path` when it lies inside one of `roots`, else None."""
    try:
        resolved = Path(path).resolve()
        return next((resolved for r in roots if resolved.is_relative_to(Path(r).resolve())), None)
    except (OSError, RuntimeError, ValueError):
        return None


def thumbnail_uri(
    uri: Path | str,
    roots: Iterable[Path | str],
    *,
    base: Path | None = None,
    box: list[float] | None = None,
    max_side: int = 240,
    quality: int = 80,
) -> str | None:
    """A JPEG data: URI of the image at `uri` (relative to `base`), shrunk, with `box` drawn.

    None, with a warning logged, when the path escapes `roots` or the image cannot be decoded;
    remote or in-memory uris (s3://, memory:) silently give None.
    """
    text = str(uri)
    if text.startswith(REMOTE_PREFIXES) or "://" in text:
        return None
    path = Path(text)
    if not path.is_absolute() and base is not None:
        path = base / path
    roots = tuple(roots)
    resolved = inside_roots(path, roots)
    if resolved is None:
        log.warning("no thumbnail for %s: it is outside the image roots %s", text, [str(r) for r in roots])
        return None
    try:
        from PIL import Image, ImageDraw

        im = Image.fromarray(read_image(resolved))
        if box:
            ImageDraw.Draw(im).rectangle([round(v) for v in box], outline=(255, 40, 40), width=3)
        im.thumbnail((max_side, max_side))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality)
    except (ImageError, OSError, ValueError, TypeError) as exc:
        log.warning("no thumbnail for %s: %s", text, exc)
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
