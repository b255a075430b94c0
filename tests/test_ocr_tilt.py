"""Tilted print: line tilts from the detector's quadrilaterals, and the pass that reads a photo
turned level."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from detectors.ocr_expiry import read_dates
from detectors.ocr_expiry.engines import RapidOcrEngine, TextLine, fold_tilt, quad_extent, quad_tilt
from detectors.ocr_expiry.preprocess import (
    LEVEL_PASS,
    MIN_TILT_DEG,
    REGION_PASS,
    Pass,
    describe_pass,
    level_pass,
    region_pass,
    rotate,
    text_tilt,
    upscale,
)
from tests.test_ocr_engines import _photos, overlaps, render_lines

TODAY = date(2026, 11, 22)


def _quad(angle_deg: float, length: float = 120.0, height: float = 20.0) -> np.ndarray:
    """A text line's box turned `angle_deg` counter-clockwise (image y pointing down), corners
    in reading order: top-left, top-right, bottom-right, bottom-left."""
    t = np.radians(angle_deg)
    along, down = np.array([np.cos(t), -np.sin(t)]), np.array([np.sin(t), np.cos(t)])
    origin = np.array([300.0, 300.0])
    return np.array(
        [origin, origin + length * along, origin + length * along + height * down, origin + height * down],
        np.float32,
    )


def _line(text: str, tilt: float) -> TextLine:
    return TextLine(text, (0.0, 0.0, 100.0, 20.0), 0.95, tilt=tilt)


@pytest.mark.parametrize(
    ("angle", "tilt"),
    [(0.0, 0.0), (25.0, 25.0), (-40.0, -40.0), (90.0, 90.0), (135.0, -45.0), (-90.0, 90.0), (180.0, 0.0)],
)
def test_a_quads_tilt_is_its_long_sides_angle_folded_into_a_half_turn(angle: float, tilt: float) -> None:
    assert quad_tilt(_quad(angle)) == pytest.approx(tilt, abs=1e-3)
    # the corners may start on the short side: the long side still decides
    assert quad_tilt(np.roll(_quad(angle), 1, axis=0)) == pytest.approx(tilt, abs=1e-3)


@pytest.mark.parametrize("angle", [0.0, 25.0, -45.0, 45.0, 90.0, 135.0])
def test_a_quads_extent_is_its_length_and_height_at_any_tilt(angle: float) -> None:
    assert quad_extent(_quad(angle)) == pytest.approx((120.0, 20.0), abs=1e-3)
    assert quad_extent(np.roll(_quad(angle), 1, axis=0)) == pytest.approx((120.0, 20.0), abs=1e-3)


def test_a_lines_extent_maps_to_the_input_at_the_passes_scale() -> None:
    line = TextLine("EXP 2027", (0.0, 0.0, 120.0, 20.0), 0.9, extent=(120.0, 20.0))
    _, back = upscale(np.zeros((10, 10, 3), np.uint8), 2.0)
    assert Pass("upscale", np.zeros((20, 20, 3), np.uint8), back).map_lines([line])[0].extent == (60.0, 10.0)
    turned, back = rotate(np.zeros((100, 200, 3), np.uint8), 30.0)
    assert Pass("level", turned, back).map_lines([line])[0].extent == pytest.approx((120.0, 20.0))
    assert Pass("plain", turned, back).map_lines([replace(line, extent=None)])[0].extent is None


@pytest.mark.parametrize("angle", [45.0, -60.0])
def test_a_tilted_lines_region_is_also_read_turned_level(angle: float) -> None:
    img, boxes = render_lines(["Best before", "EXP 15/03/2027", "LOT 4711A"], size=30)
    photo, m = _turned(img, angle)
    x0, y0, x1, y1 = boxes[1]
    line = TextLine("EXP 15/0", _turned_box(boxes[1], m), 0.6, tilt=angle, extent=(x1 - x0, y1 - y0))
    upright, p = region_pass(photo, line)
    assert upright.to_input[0, 1] == 0.0 and p.name == REGION_PASS
    # the pass holds the line level, enlarged to the recogniser's height, and maps back onto it
    assert p.image.shape[1] > p.image.shape[0] and p.map_tilt(0.0) == pytest.approx(angle, abs=1e-6)
    read = [ln for ln in RapidOcrEngine().read(p.image) if "2027" in ln.text]
    assert read and "15/03/2027" in read[0].text.replace(" ", "")
    assert overlaps(p.map_box(read[0].box), line.box)


def test_a_level_lines_region_is_only_the_crop_around_its_box() -> None:
    img, boxes = render_lines(["EXP 15/03/2027"])
    line = TextLine("EXP 15/0", tuple(float(v) for v in boxes[0]), 0.6, tilt=5.0, extent=(200.0, 30.0))
    (p,) = region_pass(img, line)
    assert p.to_input[0, 1] == 0.0 and p.to_input[1, 0] == 0.0  # not turned


@pytest.mark.parametrize(
    ("degrees", "folded"), [(0.0, 0.0), (90.0, 90.0), (-90.0, 90.0), (100.0, -80.0), (-135.0, 45.0)]
)
def test_fold_tilt(degrees: float, folded: float) -> None:
    assert fold_tilt(degrees) == pytest.approx(folded)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([_line("EXP 2027", 30.0), _line("LOT 4711", 31.0), _line("Kraft", 29.0)], 30.0),
        ([_line("EXP 2027", 89.0), _line("LOT 4711", -89.0)], 90.0),  # parallel across the fold
        ([_line("EXP 2027", 0.0), _line("LOT 4711", 60.0)], None),  # print at two angles
        ([_line("EXP 2027", 30.0), _line("7", -60.0), _line("ab", 80.0)], 30.0),  # short reads ignored
        ([_line("7", 30.0)], None),
        ([], None),
    ],
)
def test_text_tilt_is_the_tilt_the_lines_share(lines: list[TextLine], expected: float | None) -> None:
    tilt = text_tilt(lines)
    if expected is None:
        assert tilt is None
    else:
        assert tilt is not None and abs(fold_tilt(tilt - expected)) < 0.6


@pytest.mark.parametrize("tilt", [0.0, 8.0, -MIN_TILT_DEG + 1, 90.0 - MIN_TILT_DEG + 1, 90.0])
def test_level_and_upright_print_gets_no_level_pass(tilt: float) -> None:
    image = np.full((200, 300, 3), 230, np.uint8)
    assert level_pass(image, [_line("EXP 2027", tilt), _line("LOT 4711", tilt)]) is None


@pytest.mark.parametrize("tilt", [30.0, -50.0])
def test_the_level_pass_turns_the_lines_level_and_maps_back(tilt: float) -> None:
    image = np.full((200, 300, 3), 230, np.uint8)
    p = level_pass(image, [_line("EXP 2027", tilt), _line("LOT 4711", tilt)])
    assert p is not None and p.name == f"{LEVEL_PASS}{-tilt:+.0f}"
    # a line read level on the pass lies at the photo's tilt on the input
    assert p.map_tilt(0.0) == pytest.approx(tilt, abs=1e-6)
    assert p.map_lines([_line("EXP 2027", 0.0)])[0].tilt == pytest.approx(tilt, abs=1e-6)


def test_a_quarter_turned_pass_maps_a_level_line_upright() -> None:
    turned, back = rotate(np.zeros((100, 200, 3), np.uint8), 90.0)
    assert abs(Pass("rot90", turned, back).map_tilt(0.0)) == pytest.approx(90.0)


def _turned(image: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """`image` turned `angle`° counter-clockwise on an enlarged canvas (a hand-held photo), and
    the map from input pixels to the turned photo's."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    nw = int(h * abs(m[0, 1]) + w * abs(m[0, 0]))
    nh = int(h * abs(m[0, 0]) + w * abs(m[0, 1]))
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(image, m, (nw, nh), borderMode=cv2.BORDER_REPLICATE), m


def _turned_box(box: tuple[float, ...], m: np.ndarray) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    pts = np.array([[x0, y0, 1.0], [x1, y0, 1.0], [x1, y1, 1.0], [x0, y1, 1.0]]) @ m.T
    return (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())


@pytest.mark.parametrize("angle", [35.0, -50.0])
def test_a_tilted_photo_is_read_level_and_its_date_found_where_it_is_printed(angle: float) -> None:
    img, boxes = render_lines(["Best before", "EXP 15/03/2027", "MFG 01/02/2026", "LOT 4711A"], size=30)
    photo, m = _turned(img, angle)
    read = read_dates(photo, today=TODAY)
    assert any(p.startswith(LEVEL_PASS) for p in read.passes), read.passes
    assert read.expiry is not None and read.expiry.iso == "2027-03-15"
    assert overlaps(read.expiry.box, _turned_box(boxes[1], m))
    assert all(abs(fold_tilt(line.tilt - angle)) < 8.0 for line in read.lines if len(line.text) >= 8)


def test_a_slightly_skewed_photo_is_read_as_it_is() -> None:
    img, _ = render_lines(["Best before", "EXP 15/03/2027", "LOT 4711A"])
    read = read_dates(_turned(img, 6.0)[0], today=TODAY)
    assert read.expiry is not None and read.expiry.iso == "2027-03-15"
    assert not any(p.startswith(LEVEL_PASS) for p in read.passes)


class LevelOnlyEngine:
    """Reads `tilted` on the photo as given and `level` on any other image (the level pass)."""

    name = "scripted"

    def __init__(self, shape: tuple[int, ...], tilted: list[TextLine], level: list[TextLine]) -> None:
        self.shape, self.tilted, self.level = shape, tilted, level

    def read(self, image: np.ndarray, *, detect_side: int | None = None) -> list[TextLine]:
        return self.tilted if image.shape == self.shape else self.level


@pytest.mark.parametrize(
    ("tilted", "level", "expected"),
    [
        # the tilted read lost the label that types the production date: the level read decides
        (["MFG 01/02/2026", "LOT 4711"], ["MFG 01/02/2026", "EXP 15/03/2027"], "2027-03-15"),
        # the level read finds nothing: the tilted read's expiry stands
        (["EXP 15/03/2027", "LOT 4711"], [], "2027-03-15"),
        # both find an expiry: the level read's, whose layout is intact
        (["15/03/2026", "LOT 4711"], ["EXP 15/03/2027", "MFG 15/03/2026"], "2027-03-15"),
    ],
)
def test_which_read_of_a_tilted_photo_is_kept(tilted: list[str], level: list[str], expected: str) -> None:
    image = np.full((300, 400, 3), 230, np.uint8)
    engine = LevelOnlyEngine(
        image.shape,
        [TextLine(t, (50.0, 50.0 + 40 * i, 250.0, 80.0 + 40 * i), 0.95, tilt=30.0) for i, t in enumerate(tilted)],
        [TextLine(t, (50.0, 50.0 + 40 * i, 250.0, 80.0 + 40 * i), 0.95) for i, t in enumerate(level)],
    )
    read = read_dates(image, engine=engine, today=TODAY, fallback=False)
    assert read.passes[1] == f"{LEVEL_PASS}-30"
    assert read.expiry is not None and read.expiry.iso == expected
    # the date names the pass it was read on
    assert read.expiry.source == (f"{LEVEL_PASS}-30" if level else read.passes[0])


@pytest.mark.parametrize("item", _photos() or [None], ids=lambda g: g["file"] if g else "absent")
def test_real_package_photos_held_at_a_slant(item: dict | None, shared_data: Path) -> None:
    """Each real photo turned 25°, as a hand-held photo or a package lying askew: read as it
    was, two of the seven dates went unread."""
    if item is None:
        pytest.skip("expiry_photos_dev/gt.json not found")
    y, m, d = item["expiry"]
    expected = f"{y:04d}-{m:02d}" + (f"-{d:02d}" if d else "")
    photo = np.asarray(Image.open(shared_data / "expiry_photos_dev" / item["file"]).convert("RGB"))
    read = read_dates(_turned(photo, 25.0)[0], today=date(2021, 6, 1))
    assert read.expiry is not None and read.expiry.iso == expected


@pytest.mark.parametrize("angle", [-15.0, -45.0, 60.0])
def test_a_tilted_real_print_is_read_on_its_neighbourhood(angle: float, shared_data: Path) -> None:
    """The Kraft box's light "11 APR 2021": the level pass read it "1 1 2021" or "1 122021". At
    15° its neighbourhood read upright gives the month; at 45-60° only turned level."""
    path = shared_data / "expiry_photos_dev" / "img_03.jpg"
    if not path.exists():
        pytest.skip("expiry_photos_dev/img_03.jpg not found")
    photo = np.asarray(Image.open(path).convert("RGB"))
    read = read_dates(_turned(photo, angle)[0], today=date(2021, 6, 1))
    assert read.expiry is not None and read.expiry.iso == "2021-04-11"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("plain", None),
        ("contrast", None),
        ("fine", None),
        ("as_captured", None),
        ("level-25", "turned level (-25°)"),
        ("unsmear7x", "with a 7 px motion smear along x taken out"),
        ("dotblur0.06", "with the print's dots blurred into strokes"),
        ("dotmatrix3+upscale", "with the print's dots joined"),
        ("upscale", "enlarged"),
        ("region", "on its neighbourhood, enlarged"),
        ("line", "as one whole line"),
        ("rot270", "turned a quarter"),
    ],
)
def test_each_pass_is_described_for_a_reviewer(name: str, words: str | None) -> None:
    assert describe_pass(name) == words
