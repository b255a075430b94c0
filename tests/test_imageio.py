"""Bad images give a clear `ImageError`, never a crash."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pipeline.imageio import ImageError, decode_image, encode_jpeg, encode_png, read_image


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size: the classic decompression bomb shape."""
    sig = b"\x89PNG\r\n\x1a\n"
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat_data = zlib.compress(b"\x00" * 100)
    idat = struct.pack(">I", len(idat_data)) + b"IDAT" + idat_data + struct.pack(">I", zlib.crc32(b"IDAT" + idat_data))
    return sig + chunk + idat


def _jpeg(w: int = 64, h: int = 48) -> bytes:
    rng = np.random.default_rng(0)
    return encode_jpeg(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"not an image at all" * 10, "not a decodable image"),
        (_jpeg()[:200], "corrupt or truncated"),
        (_png_header_only(100_000, 100_000), "pixel limit"),
        (encode_png(np.zeros((8, 8, 3), np.uint8)), "smaller than"),
    ],
    ids=["empty", "garbage", "truncated", "bomb", "tiny"],
)
def test_bad_images_raise_clear_errors(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode_image(data, name="cam.jpg")


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "RGB"])
def test_any_colour_mode_becomes_rgb(mode: str) -> None:
    buf = io.BytesIO()
    Image.new(mode, (32, 24)).save(buf, format="PNG")
    img = decode_image(buf.getvalue())
    assert img.shape == (24, 32, 3) and img.dtype == np.uint8


def test_read_image_missing_file(tmp_path) -> None:
    with pytest.raises(ImageError, match="no such image"):
        read_image(tmp_path / "missing.jpg")


def test_png_round_trip_is_lossless() -> None:
    img = np.random.default_rng(1).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    assert np.array_equal(decode_image(encode_png(img)), img)
