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


@pytest.mark.parametrize(("orientation", "shape"), [(1, (24, 40)), (3, (24, 40)), (6, (40, 24)), (8, (40, 24))])
def test_a_phone_photos_exif_turn_is_applied(orientation: int, shape: tuple[int, int]) -> None:
    img = np.zeros((24, 40, 3), np.uint8)
    img[:4, :4] = 255  # a white mark in the stored image's top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", exif=exif)
    upright = decode_image(buf.getvalue())
    assert upright.shape[:2] == shape
    corner = {1: (0, 0), 3: (-1, -1), 6: (0, -1), 8: (-1, 0)}[orientation]  # where the mark lands
    assert upright[corner[0], corner[1]].min() > 200


def test_a_broken_exif_block_is_ignored() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 20, 30)).save(buf, format="JPEG", exif=b"Exif\x00\x00garbage")
    assert decode_image(buf.getvalue()).shape == (24, 32, 3)


def test_a_16_bit_grey_image_keeps_its_contrast() -> None:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (20, 1))
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    img = decode_image(buf.getvalue())
    assert img.shape == (20, 64, 3) and img[0, 0, 0] == 0 and img[0, -1, 0] == 255
    assert 100 < img[0, 32, 0] < 160  # mid grey, not clipped to white


def test_transparent_pixels_are_laid_on_white() -> None:
    rgba = np.zeros((24, 32, 4), np.uint8)
    rgba[8:16, 8:16] = (200, 0, 0, 255)  # an opaque red patch on a fully transparent black
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    img = decode_image(buf.getvalue())
    assert tuple(img[0, 0]) == (255, 255, 255) and tuple(img[10, 10]) == (200, 0, 0)


def test_a_jpeg_cut_short_with_its_end_marker_kept_is_refused() -> None:
    """libjpeg fills the missing blocks with grey and raises nothing: such a frame scored as a
    normal item and read as no date."""
    rng = np.random.default_rng(2)
    data = encode_jpeg(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    with pytest.raises(ImageError, match="truncated JPEG"):
        decode_image(data[: len(data) * 2 // 5] + b"\xff\xd9", name="cam.jpg")


def test_a_jpeg_that_is_grey_throughout_is_no_truncated_one() -> None:
    grey = np.full((48, 64, 3), 128, np.uint8)
    assert (decode_image(encode_jpeg(grey)) == 128).all()


def test_refusals_quote_the_project_limit_and_no_python_internals() -> None:
    with pytest.raises(ImageError) as garbage:
        decode_image(b"just some text, not a picture" * 4, name="cam.jpg")
    assert "BytesIO" not in str(garbage.value) and "0x" not in str(garbage.value)
    with pytest.raises(ImageError) as bomb:
        decode_image(_png_header_only(60_000, 60_000), name="cam.png")
    assert "40000000 pixel limit" in str(bomb.value) and "3,600,000,000 pixels" in str(bomb.value)
