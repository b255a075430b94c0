"""OCR engines, image passes, the reader and the stage on rendered prints and real photos."""

from __future__ import annotations

import contextlib
import json
import os
import time
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from detectors.ocr_expiry import OcrExpiryStage, read_dates
from detectors.ocr_expiry.checker import judge, read_and_judge
from detectors.ocr_expiry.classify import classify_lines, hints_of_a_date
from detectors.ocr_expiry.engines import (
    MAX_READER_THREADS,
    THREADS_ENV,
    WARM_UP_IMAGE,
    OcrEngine,
    RapidOcrEngine,
    TextLine,
    engine_threads,
    get_engine,
    reading_one_at_a_time,
    recognize_upright,
)
from detectors.ocr_expiry.preprocess import (
    COARSE_DETECT_SIDE,
    DOT_BLUR_PASS,
    FINE_PASS,
    MIN_DOT_BLUR_HEIGHT,
    TILE_ABOVE,
    TILE_PASS,
    TILE_SIDE,
    Pass,
    fallback_passes,
    first_pass,
    line_pass,
    rotate,
    skew_angle,
    text_height,
    tile_passes,
    vertical_text,
)
from detectors.ocr_expiry.reader import ImageRead, engine_clock, second_look_passes
from pipeline.catalog import Catalog
from pipeline.stages import StageContext, load_stage
from pipeline.types import CatalogRecord, ExpiryPolicy, Frame, ItemCapture, LotRecord
from pipeline.views import VIEWS_KEY, LocalizedView

TODAY = date(2026, 11, 22)
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
NOTO_CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
BACKGROUND = (236, 228, 210)


def font(size: int, cjk: bool = False) -> ImageFont.FreeTypeFont:
    path = NOTO_CJK if cjk else DEJAVU
    if not path.exists():
        pytest.skip(f"font {path} is not installed")
    return ImageFont.truetype(str(path), size)


def render_lines(lines: list[str], *, size: int = 34, cjk: bool = False, canvas: tuple[int, int] = (640, 360)):
    """Dark print on a light package background; returns the RGB image and each line's box."""
    img = Image.new("RGB", canvas, BACKGROUND)
    draw = ImageDraw.Draw(img)
    f = font(size, cjk)
    boxes = []
    for i, text in enumerate(lines):
        xy = (40, 40 + int(i * size * 1.8))
        boxes.append(draw.textbbox(xy, text, font=f))
        draw.text(xy, text, fill=(25, 25, 30), font=f)
    return np.asarray(img), boxes


def render_dot_matrix(text: str, *, pitch: int = 7, dot: float = 1.3, size: int = 70) -> np.ndarray:
    """An inkjet print: the glyphs sampled on a grid and drawn as separate dots."""
    mask = Image.new("L", (900, 140), 0)
    ImageDraw.Draw(mask).text((30, 30), text, fill=255, font=font(size))
    on = np.asarray(mask) > 128
    img = Image.new("RGB", mask.size, (240, 240, 235))
    draw = ImageDraw.Draw(img)
    for y in range(0, on.shape[0], pitch):
        for x in range(0, on.shape[1], pitch):
            if on[y, x]:
                draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=(30, 30, 40))
    return np.asarray(img)


def overlaps(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


# --- engines --------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["rapidocr", "tesseract"])
def test_engine_reads_a_rendered_expiry_where_it_is_printed(engine: str) -> None:
    img, boxes = render_lines(["Best before", "EXP 15/03/2027", "LOT 4711A"])
    read = read_dates(img, engine=engine, today=TODAY)
    assert read.engine == engine
    assert read.expiry is not None and read.expiry.iso == "2027-03-15" and read.expiry.type == "expiry"
    assert overlaps(read.expiry.box, boxes[1]) and not overlaps(read.expiry.box, boxes[2])
    assert 0.5 < read.expiry.confidence <= 1.0


def test_lone_glyphs_and_long_lines_are_recognised_each_in_its_place() -> None:
    """Glyph-wide lines and long lines go to the recogniser separately; every box keeps its
    own text, in the order given, and the recogniser's own settings are left as they were."""
    img, _ = render_lines(["M", "EXP 15/03/2027", "L", "LOT 4711A"], size=40)
    engine = get_engine("rapidocr")
    quads = engine.detect(img)
    quads.sort(key=lambda q: float(q[:, 1].min()))
    assert [line.text.replace(" ", "") for line in engine.recognize(img, quads)] == [
        "M",
        "EXP15/03/2027",
        "L",
        "LOT4711A",
    ]
    rec = engine._ocr._load_rec_model()
    assert (rec.rec_image_shape, rec.rec_batch_num) == ([3, 48, 320], 6)


def test_the_warm_up_read_loads_the_recogniser_as_well_as_the_detector() -> None:
    engine = RapidOcrEngine()
    assert [line.text for line in engine.read(WARM_UP_IMAGE)] == ["EXP 01/2030"]
    assert engine._ocr.text_det is not None and engine._ocr.text_rec is not None


def test_engines_are_built_once_per_process() -> None:
    assert get_engine("rapidocr") is get_engine("rapidocr", ("de", "fr"))
    assert get_engine("tesseract", ("en",)) is get_engine("tesseract", ("en",))
    assert isinstance(get_engine("rapidocr"), OcrEngine)
    with pytest.raises(ValueError, match="unknown OCR engine"):
        get_engine("nope")


def test_manufactured_and_expiry_are_told_apart() -> None:
    img, _ = render_lines(["MFG 01/02/2026", "EXP 01/02/2028"])
    read = read_dates(img, today=TODAY)
    assert {d.iso: d.type for d in read.dates} == {"2026-02-01": "manufactured", "2028-02-01": "expiry"}
    assert read.expiry is not None and read.expiry.iso == "2028-02-01"


def test_only_a_manufacturing_date_is_unreadable_never_a_fallback() -> None:
    img, _ = render_lines(["MFG 01/02/2026", "LOT 4711"])
    read = read_dates(img, today=TODAY)
    assert [d.type for d in read.dates] == ["manufactured"] and read.expiry is None
    assert judge({"cam": read}, today=TODAY).status == "unreadable"


@pytest.mark.parametrize("angle", [90, 180, 270])
def test_rotated_packages(angle: int) -> None:
    img, boxes = render_lines(["Best before", "EXP 15/03/2027", "LOT 4711A"])
    turned, back = rotate(img, angle)
    read = read_dates(turned, today=TODAY)
    assert read.expiry is not None and read.expiry.iso == "2027-03-15"
    # The box, mapped back through the rotation, lands on the printed line.
    assert overlaps(Pass("t", turned, back).map_box(read.expiry.box), boxes[1])


def test_dot_matrix_print_needs_the_fallback_pass() -> None:
    # fp32 detection: the int8 detector happens to find this print on the first pass already
    fp32 = RapidOcrEngine(precision="fp32")
    img = render_dot_matrix("EXP 15.03.2027")
    assert read_dates(img, engine=fp32, today=TODAY, fallback=False).expiry is None
    read = read_dates(img, engine=fp32, today=TODAY, budget_ms=None)
    assert read.expiry is not None and read.expiry.iso == "2027-03-15"
    assert read.passes[-1].startswith((DOT_BLUR_PASS, "dotmatrix"))  # a pass that joins the dots read it


def test_small_print_on_a_small_crop_is_read() -> None:
    img, _ = render_lines(["EXP 15/03/2027"], size=9, canvas=(200, 60))
    read = read_dates(img, today=TODAY, budget_ms=None)
    assert read.expiry is not None and read.expiry.iso == "2027-03-15"


@pytest.mark.parametrize(
    ("size", "canvas", "passes"),
    [
        (40, (1600, 900), ["contrast"]),  # found on the coarse first pass
        (14, (2400, 1000), ["contrast", "fine"]),  # 3 px high at the coarse side, 5.6 px at full size
    ],
)
def test_a_large_photo_is_searched_coarse_first_and_at_full_size_only_when_needed(
    size: int, canvas: tuple[int, int], passes: list[str]
) -> None:
    img, boxes = render_lines(["Best before", "EXP 15/03/2027", "LOT 4711A"], size=size, canvas=canvas)
    engine = get_engine("rapidocr")
    read = read_dates(img, engine=engine, today=TODAY, budget_ms=None)
    assert read.passes == passes
    assert read.expiry is not None and read.expiry.iso == "2027-03-15"
    assert overlaps(read.expiry.box, boxes[1]) and not overlaps(read.expiry.box, boxes[2])
    assert engine._ocr._load_det_model().limit_side_len == 960


def test_a_small_date_in_a_large_photo_is_read_tile_by_tile() -> None:
    """A print 14 px high in a 3600 px photo is 4 px at the detector's full size: only a tile
    read at the photo's own resolution finds it."""
    label, boxes = render_lines(["EXP 15/03/2027"], size=14, canvas=(400, 120))
    photo = np.full((2400, 3600, 3), BACKGROUND, np.uint8)
    y0, x0 = 1300, 2000
    photo[y0 : y0 + 120, x0 : x0 + 400] = label
    read = read_dates(photo, today=TODAY, budget_ms=None)
    assert read.expiry is not None and read.expiry.iso == "2027-03-15"
    assert read.passes[:2] == ["contrast", FINE_PASS] and read.passes[-1].startswith(TILE_PASS)
    printed = (boxes[0][0] + x0, boxes[0][1] + y0, boxes[0][2] + x0, boxes[0][3] + y0)
    assert overlaps(read.expiry.box, printed)


def test_tiles_cover_a_large_photo_text_first_and_map_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import detectors.ocr_expiry.preprocess as preprocess

    assert tile_passes(np.zeros((TILE_ABOVE, TILE_ABOVE, 3), np.uint8), []) == []
    photo = np.zeros((2400, 3000, 3), np.uint8)
    text_far_right = TextLine("BRAND", (2900.0, 100.0, 2990.0, 140.0), 0.99)
    monkeypatch.setattr(preprocess, "MAX_TILES", 100)
    tiles = tile_passes(photo, [text_far_right])
    origins = [(int(t.to_input[0, 2]), int(t.to_input[1, 2])) for t in tiles]
    assert all(t.image.shape[:2] == (TILE_SIDE, TILE_SIDE) for t in tiles)
    covered = np.zeros(photo.shape[:2], bool)
    for x, y in origins:
        covered[y : y + TILE_SIDE, x : x + TILE_SIDE] = True
    assert covered.all()
    # the tiles holding the text the first pass saw come first; the rest from the centre out
    assert origins[0] == (3000 - TILE_SIDE, 0)  # the last flush with the photo's right edge
    centre = [abs(x + TILE_SIDE / 2 - 1500) / 3000 + abs(y + TILE_SIDE / 2 - 1200) / 2400 for x, y in origins[1:]]
    assert centre == sorted(centre)
    assert tiles[0].map_box((10.0, 20.0, 30.0, 40.0)) == (
        origins[0][0] + 10,
        origins[0][1] + 20,
        origins[0][0] + 30,
        origins[0][1] + 40,
    )
    monkeypatch.setattr(preprocess, "MAX_TILES", 3)
    assert len(tile_passes(photo, [])) == 3
    assert TILE_PASS not in "".join(p.name for p in fallback_passes(photo, []))  # Tesseract reads at full size


def test_only_an_engine_that_sizes_its_detector_is_asked_for_a_coarse_first_pass() -> None:
    big, small = np.zeros((900, 1600, 3), np.uint8), np.zeros((480, 640, 3), np.uint8)
    assert first_pass(big, coarse=True).detect_side == COARSE_DETECT_SIDE
    assert first_pass(small, coarse=True).detect_side is None
    assert first_pass(big).detect_side is None
    assert fallback_passes(big, [], coarse=True)[0].name == FINE_PASS
    assert FINE_PASS not in [p.name for p in fallback_passes(big, [])]
    assert FINE_PASS not in [p.name for p in fallback_passes(small, [], coarse=True)]
    # Tesseract has no detector to size; a scripted engine without the keyword still reads
    read = read_dates(big, engine=ScriptedEngine({16: [_line("EXP 15/03/2027")]}), today=TODAY)
    assert read.expiry is not None and read.expiry.iso == "2027-03-15" and len(read.passes) == 1


class SidedEngine:
    """Reads one text at the coarse detector side and another at the engine's own size."""

    name = "sided"
    sizes_detector = True

    def __init__(self, coarse: list[str], fine: list[str]) -> None:
        self.lines = {True: coarse, False: fine}
        self.sides: list[int | None] = []

    def read(self, image: np.ndarray, *, detect_side: int | None = None) -> list[TextLine]:
        self.sides.append(detect_side)
        return [_line(text) for text in self.lines[detect_side is not None]]


@pytest.mark.parametrize(
    ("coarse", "fine", "expiry"),
    [
        (["13", "EXP 10/2028"], ["EXP 13/10/2028"], "2028-10-13"),  # the day split off at the coarse side
        (["EXP 10/2028"], ["EXP 10/2028"], "2028-10"),  # printed without a day: none is invented
        (["13", "EXP 10/2028"], ["EXP 13/11/2028"], "2028-10"),  # a fine read never changes the month
    ],
)
def test_a_month_only_expiry_found_at_the_coarse_side_is_searched_again_at_full_size(
    coarse: list[str], fine: list[str], expiry: str
) -> None:
    engine = SidedEngine(coarse, fine)
    read = read_dates(np.zeros((900, 1600, 3), np.uint8), engine=engine, today=TODAY, order="DMY")
    assert read.expiry is not None and read.expiry.iso == expiry
    assert read.passes[1:] == ["fine"] and engine.sides == [COARSE_DETECT_SIDE, None]


def test_fallback_passes_stop_when_the_budget_is_spent() -> None:
    img = np.full((300, 300, 3), 200, np.uint8)
    read = read_dates(img, today=TODAY, budget_ms=0.0)
    assert read.expiry is None and read.passes[-1] == "budget_spent"


def test_japanese_label() -> None:
    img, _ = render_lines(["賞味期限 2027.03.15"], cjk=True)
    read = read_dates(img, today=TODAY, order="YMD")
    assert read.expiry is not None and read.expiry.iso == "2027-03-15" and read.expiry.reason == "keyword"


def test_korean_label_with_tesseract() -> None:
    img, _ = render_lines(["유통기한 2027.03.15까지", "제조일자 2026.03.15"], cjk=True)
    read = read_dates(img, engine="tesseract", languages=("ko", "en"), today=TODAY, order="YMD")
    assert {d.iso: (d.type, d.reason) for d in read.dates} == {
        "2027-03-15": ("expiry", "keyword"),
        "2026-03-15": ("manufactured", "keyword"),
    }


# --- image passes ---------------------------------------------------------------------------


@pytest.mark.parametrize("angle", [90, 180, 270, 7.0, -4.0])
def test_rotation_maps_points_back(angle: float) -> None:
    img = np.zeros((60, 100, 3), np.uint8)
    img[10:20, 30:40] = 255
    turned, back = rotate(img, angle)
    ys, xs = np.nonzero(turned[:, :, 0] > 128)
    pts = np.stack([xs, ys], 1).astype(float) @ back[:, :2].T + back[:, 2]
    assert np.allclose(pts.mean(0), [34.5, 14.5], atol=1.5)


def test_skew_is_measured() -> None:
    img, _ = render_lines(["EXP 15/03/2027", "LOT 4711A", "Best before end"])
    turned, _ = rotate(img, 6.0)
    assert abs(skew_angle(turned) + 6.0) <= 1.0
    assert abs(skew_angle(img)) <= 1.0


def test_vertical_text_is_detected() -> None:
    tall = [TextLine("EXP 2027", (0, 0, 20, 200), 0.9), TextLine("LOT 4711", (30, 0, 50, 180), 0.9)]
    wide = [TextLine("EXP 2027", (0, 0, 200, 20), 0.9), TextLine("LOT 4711", (0, 30, 180, 50), 0.9)]
    assert vertical_text(tall) and not vertical_text(wide)


# --- stage ----------------------------------------------------------------------------------


class ScriptedEngine:
    """An engine that returns prepared lines per image, keyed by the image's width (passes keep it)."""

    name = "scripted"

    def __init__(self, script: dict[int, list[TextLine]]) -> None:
        self.script = script

    def read(self, image: np.ndarray) -> list[TextLine]:
        return list(self.script.get(image.shape[1] // 100, []))


def _catalog(min_days: int = 30, recorded: date | None = None, carries: bool = True) -> Catalog:
    rec = CatalogRecord(
        sku="FOOD-1", title="dog food", category="food",
        expiry=ExpiryPolicy(carries_date=carries, min_remaining_days=min_days, date_order="DMY"),
    )  # fmt: skip
    lot = LotRecord(lot="L7", sku="FOOD-1", seller="acme", recorded_expiry=recorded)
    return Catalog(skus={"FOOD-1": rec}, lots={"L7": lot})


def _capture(values: dict[str, int]) -> ItemCapture:
    frames = [Frame.from_array(cam, np.full((64, 100 * v + 50, 3), 128, np.uint8)) for cam, v in values.items()]
    return ItemCapture(item_id="I1", sku="FOOD-1", lot="L7", frames=frames)


def _line(text: str, conf: float = 0.98) -> TextLine:
    return TextLine(text, (10.0, 10.0, 10.0 + 10 * len(text), 40.0), conf)


def test_stage_is_registered_and_reports_expired_with_evidence() -> None:
    stage = load_stage("ocr_expiry")
    assert stage.name == "ocr_expiry" and stage.version
    engine = ScriptedEngine({1: [_line("EXP 01/12/2026")], 2: [_line("MFG 01/06/2026")]})
    findings = OcrExpiryStage(engine=engine)(_capture({"top": 1, "side": 2}), StageContext(_catalog(), today=TODAY))
    [f] = findings
    assert f.kind == "expired" and f.probability >= 0.5 and f.stage == "ocr_expiry"
    ev = f.evidence[0]
    assert ev.camera == "top" and ev.data["date"] == "2026-12-01" and ev.data["type"] == "expiry"
    assert ev.data["engine"] == "scripted" and ev.box is not None and ev.text == "EXP 01/12/2026"
    assert ev.data["pass"] in ("plain", "contrast")  # read on the view as it is
    assert any(e.data.get("type") == "manufactured" for e in f.evidence[1:])


def test_stage_probability_follows_read_confidence() -> None:
    ctx = StageContext(_catalog(), today=TODAY)
    sure = OcrExpiryStage(engine=ScriptedEngine({1: [_line("EXP 21/12/2026", 0.99)]}))(_capture({"a": 1}), ctx)[0]
    weak = OcrExpiryStage(engine=ScriptedEngine({1: [_line("EXP 21/12/2026", 0.3)]}))(_capture({"a": 1}), ctx)[0]
    assert sure.kind == weak.kind == "expired" and sure.probability > 0.9 and 0.25 <= weak.probability < 0.5


@pytest.mark.parametrize(
    ("lines", "recorded", "carries", "kind"),
    [
        ([_line("EXP 01/06/2027")], date(2027, 6, 1), True, "expiry_ok"),
        ([_line("EXP 01/05/2027")], date(2027, 6, 1), True, "date_mismatch"),
        ([_line("MFG 01/05/2026")], None, True, "unreadable"),
        ([], None, True, "unreadable"),
        ([_line("EXP 01/05/2020")], None, False, None),
    ],
)
def test_stage_kinds(lines: list[TextLine], recorded: date | None, carries: bool, kind: str | None) -> None:
    stage = OcrExpiryStage(engine=ScriptedEngine({1: lines}))
    findings = stage(_capture({"top": 1}), StageContext(_catalog(recorded=recorded, carries=carries), today=TODAY))
    assert [f.kind for f in findings] == ([kind] if kind else [])
    if kind == "expiry_ok":
        assert findings[0].probability == 0.0


@pytest.mark.parametrize(
    ("text", "doubt"),
    [("EXP 01/05/2027", None), ("EXP 01/08/2027", "round digits"), ("BARKWEL1/05/2027", "'BARKWEL'")],
)
def test_a_mismatch_records_why_it_is_in_doubt(text: str, doubt: str | None) -> None:
    """The finding's date evidence says why a mismatch is only a review, for the investigator
    and the reviewer to weigh the read the same way."""
    stage = OcrExpiryStage(engine=ScriptedEngine({1: [_line(text)]}))
    [f] = stage(_capture({"top": 1}), StageContext(_catalog(recorded=date(2027, 6, 1)), today=TODAY))
    assert f.kind == "date_mismatch"
    recorded = f.evidence[0].data.get("doubt")
    assert recorded is None if doubt is None else doubt in recorded
    assert (f.probability > 0.5) is (doubt is None)


def test_stage_reconciles_cameras_and_names_the_frame() -> None:
    engine = ScriptedEngine({1: [_line("EXP 01/06/2027")], 2: [_line("EXP 01/06/2027")], 3: [_line("EXP 07/06/2027")]})
    [f] = OcrExpiryStage(engine=engine)(_capture({"a": 1, "b": 2, "c": 3}), StageContext(_catalog(), today=TODAY))
    assert f.kind == "expiry_ok" and f.evidence[0].data["date"] == "2027-06-01" and f.evidence[0].camera in {"a", "b"}
    assert "c=2027-06-07" in f.message


def test_stage_takes_no_lone_date_for_the_expiry_another_camera_labels_the_production_date() -> None:
    """The left camera saw the production line without its label; the top camera saw the label."""
    engine = ScriptedEngine({1: [_line("19/10/2026")], 2: [_line("PROD 19/10/2026")]})
    [f] = OcrExpiryStage(engine=engine)(_capture({"left": 1, "top": 2}), StageContext(_catalog(), today=TODAY))
    assert f.kind == "unreadable" and "only a manufacturing date" in f.message
    # the evidence an investigation reads types the lone date as the stage weighed it
    assert {(e.camera, e.data["type"]) for e in f.evidence} == {("left", "other"), ("top", "manufactured")}


def test_stage_maps_crop_boxes_to_frame_coordinates() -> None:
    crop, boxes = render_lines(["EXP 15/03/2027"], canvas=(640, 140))
    frame_img = np.full((600, 1000, 3), 90, np.uint8)
    frame_img[200:340, 300:940] = crop
    view = LocalizedView(
        camera="top", crop=crop, mask=np.ones(crop.shape[:2], bool), box=[300, 200, 940, 340],
        crop_to_frame=np.array([[1.0, 0.0, 300.0], [0.0, 1.0, 200.0]]),
    )  # fmt: skip
    capture = ItemCapture(item_id="I2", sku="FOOD-1", frames=[Frame.from_array("top", frame_img)])
    ctx = StageContext(_catalog(), today=TODAY, shared={VIEWS_KEY: {"top": view}})
    [f] = OcrExpiryStage()(capture, ctx)
    box = f.evidence[0].box
    x0, y0, x1, y1 = boxes[0]
    assert f.kind == "expiry_ok" and overlaps(box, (x0 + 300, y0 + 200, x1 + 300, y1 + 200))


def test_stage_keeps_going_when_a_frame_is_corrupt(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    good = Frame.from_array("top", np.full((64, 150, 3), 128, np.uint8))
    capture = ItemCapture(item_id="I3", sku="FOOD-1", frames=[good, Frame(camera="side", uri=str(bad))])
    stage = OcrExpiryStage(engine=ScriptedEngine({1: [_line("EXP 01/06/2027")]}))
    [f] = stage(capture, StageContext(_catalog(), today=TODAY))
    assert f.kind == "expiry_ok" and "could not be decoded" in f.message
    assert any(e.camera == "side" and "error" in e.data for e in f.evidence)


class SequenceEngine:
    """An engine that answers each successive pass with the next prepared list of lines."""

    name = "sequence"

    def __init__(self, passes: list[list[TextLine]]) -> None:
        self.passes = list(passes)
        self.calls = 0

    def read(self, image: np.ndarray) -> list[TextLine]:
        self.calls += 1
        return list(self.passes.pop(0)) if self.passes else []


LOT_LINE = TextLine("LOT 1756", (40.0, 40.0, 120.0, 60.0), 0.95)


@pytest.mark.parametrize(
    ("passes", "expiry", "calls"),
    [
        # first pass, region pass, then the line pass or the whole-image passes
        ([[LOT_LINE], [_line("APR 2027")], [_line("11 APR 2027")]], "2027-04-11", 3),
        ([[LOT_LINE], [_line("APR 2027")], [_line("12 MAY 2027")]], "2027-04", 3),
        ([[LOT_LINE], [_line("APR 2027")], [], [_line("11 APR 2027")]], "2027-04", 3),
        ([[LOT_LINE], [_line("11 APR 2027")], [_line("12 APR 2027")]], "2027-04-11", 2),
        ([[], [_line("APR 2027")], [_line("11 APR 2027")]], "2027-04", 2),
    ],
)
def test_a_month_read_on_a_region_crop_is_read_again_as_a_whole_line(
    passes: list[list[TextLine]], expiry: str, calls: int
) -> None:
    """A region crop may lose a date's day ("11 APR 2027" read "APR 2027"): one more read of
    the whole line may add the day of the same month, never a different date. A whole-image
    pass's month read (the fifth row: no region) is not read again."""
    engine = SequenceEngine(passes)
    read = read_dates(np.full((200, 300, 3), 200, np.uint8), engine=engine, today=TODAY)
    assert read.expiry is not None and read.expiry.iso == expiry and engine.calls == calls


FOUND_LATE = TextLine("1 1027", (200.0, 120.0, 320.0, 150.0), 0.6)
"""A date line a whole-image fallback finds (an enlarged small photo's), in that pass's pixels."""


@pytest.mark.parametrize(
    ("passes", "expiry", "names"),
    [
        # the enlarged pass finds a digit line the first pass missed: its neighbourhood is read,
        # after the passes that come anyway
        (
            [[], [FOUND_LATE], [], [], [_line("11 APR 2027")]],
            "2027-04-11",
            ["upscale", "dotmatrix3+upscale", "dotmatrix5+upscale", "region"],
        ),
        # the same line where the first pass already queued its neighbourhood: not read twice
        (
            [[TextLine("1 1027", (100.0, 60.0, 160.0, 75.0), 0.6)], [], [FOUND_LATE], [], [_line("11 APR 2027")]],
            "2027-04-11",
            ["region", "upscale", "dotmatrix3+upscale", "dotmatrix5+upscale"],
        ),
        # a line without digits enough for a date is no region
        (
            [[], [TextLine("CREAM 8", (200.0, 120.0, 320.0, 150.0), 0.9)], [], [_line("11 APR 2027")]],
            "2027-04-11",
            ["upscale", "dotmatrix3+upscale", "dotmatrix5+upscale"],
        ),
    ],
)
def test_a_digit_line_a_fallback_finds_has_its_neighbourhood_read(
    passes: list[list[TextLine]], expiry: str, names: list[str]
) -> None:
    engine = SequenceEngine(passes)
    read = read_dates(np.full((200, 300, 3), 200, np.uint8), engine=engine, today=TODAY)
    assert read.expiry is not None and read.expiry.iso == expiry
    assert read.passes[1:] == names  # after the first pass


@pytest.mark.parametrize(
    ("first", "expiry"),
    [
        # a repaired digit left the print's only date untyped: a clean re-read types it
        ([TextLine("L095 E 28 18 27", (10.0, 10.0, 160.0, 40.0), 0.87)], "2027-10-28"),
        # beside another date, the crop's "sole" date says nothing of the whole print
        (
            [
                TextLine("L095 E 28 18 27", (10.0, 10.0, 160.0, 40.0), 0.87),
                TextLine("03 04 2026", (10.0, 60.0, 160.0, 90.0), 0.95),
            ],
            None,
        ),
    ],
)
def test_a_clean_re_read_types_a_date_left_untyped_only_for_its_repair(
    first: list[TextLine], expiry: str | None
) -> None:
    engine = SequenceEngine([first, [TextLine("L 095 E 28 10 27", (20.0, 20.0, 300.0, 60.0), 0.85)]])
    read = read_dates(np.full((200, 300, 3), 200, np.uint8), engine=engine, today=TODAY)
    assert (read.expiry.iso if read.expiry else None) == expiry


DATE_FRAGMENT = TextLine("03 2G 2?27", (110.0, 100.0, 180.0, 115.0), 0.6)
"""A date line the first pass misread, whose neighbourhood is read again (a region)."""


@pytest.mark.parametrize(
    ("text", "hints"),
    [
        ("BEST BEFORE", True),  # an expiry label
        ("Hergestellt", True),  # a production label
        ("FEB", True),  # a month name
        ("03/26/2027", True),  # a date
        ("20Z8", True),  # Z read for 2: a year
        ("1234", False),  # no plausible year
        ("2O28", True),  # a year's residue
        ("L2611A", False),  # a lot code
        ("Batch", False),
        ("NET WT 400 G", False),
    ],
)
def test_signs_of_a_date_beyond_a_crop(text: str, hints: bool) -> None:
    assert hints_of_a_date([TextLine(text, (0.0, 0.0, 10.0, 10.0), 0.9)], TODAY) is hints


@pytest.mark.parametrize(
    ("beyond", "expiry"),
    [
        # the print's rest shows a month name: the crop's lone date may be its production date
        (TextLine("FEB", (300.0, 150.0, 340.0, 165.0), 0.99), None),
        (TextLine("BEST BEFORE END", (10.0, 150.0, 100.0, 165.0), 0.9), None),
        (TextLine("2O28", (300.0, 150.0, 340.0, 165.0), 0.8), None),  # a year's residue
        # nothing date-like beyond the crop: its lone date is the print's
        (TextLine("Batch L2611A", (10.0, 10.0, 100.0, 25.0), 0.95), "2027-03-26"),
    ],
)
def test_a_region_types_no_lone_date_where_the_print_beyond_it_shows_another(
    beyond: TextLine, expiry: str | None
) -> None:
    engine = SequenceEngine([[DATE_FRAGMENT, beyond], [_line("03/26/2027")]])
    read = read_dates(np.full((200, 400, 3), 200, np.uint8), engine=engine, today=TODAY, order="MDY")
    assert read.passes[1] == "region"
    assert (read.expiry.iso if read.expiry else None) == expiry


@pytest.mark.parametrize("box", [(100.0, 50.0, 220.0, 70.0), (100.0, 50.0, 120.0, 170.0)])
def test_line_pass_reads_a_line_left_to_right_and_maps_back(box: tuple[float, float, float, float]) -> None:
    image = np.zeros((400, 500, 3), np.uint8)
    p = line_pass(image, box)
    assert p is not None and p.image.shape[1] > p.image.shape[0]
    x0, y0, x1, y1 = p.map_box((0.0, 0.0, p.image.shape[1] - 1.0, p.image.shape[0] - 1.0))
    assert x0 <= box[0] and y0 <= box[1] and x1 >= box[2] and y1 >= box[3]
    assert x1 - x0 < 500 and y1 - y0 < 400


# --- real photos ----------------------------------------------------------------------------


def _photos() -> list[dict]:
    gt = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "expiry_photos_dev" / "gt.json"
    return json.loads(gt.read_text()) if gt.exists() else []


@pytest.mark.parametrize("turn", [0, 180])
@pytest.mark.parametrize("item", _photos() or [None], ids=lambda g: g["file"] if g else "absent")
def test_real_package_photos(item: dict | None, turn: int, shared_data: Path) -> None:
    """Each photo as taken and upside down (as a package lies on the belt)."""
    if item is None:
        pytest.skip("expiry_photos_dev/gt.json not found")
    y, m, d = item["expiry"]
    expected = f"{y:04d}-{m:02d}" + (f"-{d:02d}" if d else "")
    photo = np.asarray(Image.open(shared_data / "expiry_photos_dev" / item["file"]).convert("RGB"))
    read = read_dates(np.ascontiguousarray(np.rot90(photo, turn // 90)), today=date(2021, 6, 1))
    assert read.expiry is not None and read.expiry.iso == expected


class TurnTableEngine:
    """Recognises box i (its x0) as `upright[i]`, or as `turned[i]` when turned 180°."""

    def __init__(self, upright: list[tuple[str, float]], turned: list[tuple[str, float]]) -> None:
        self.upright, self.turned = upright, turned
        self.turned_boxes: list[int] = []

    def recognize(self, image: np.ndarray, quads, *, turn180: bool = False) -> list[TextLine]:
        out = []
        for q in quads:
            i = int(q[0][0])
            if turn180:
                self.turned_boxes.append(i)
            text, conf = (self.turned if turn180 else self.upright)[i]
            out.append(TextLine(text, (float(i), 0.0, i + 1.0, 1.0), conf, turned=turn180))
        return out


@pytest.mark.parametrize(
    ("upright", "turned", "texts", "turned_boxes"),
    [
        # upside down (the real photo img_05 turned): the weak lines read better turned, and so
        # does the date line, whose upright read is a confident misread
        (
            [("3500Kkcal", 0.62), ("2020.03", 0.87), ("CEL BBAR", 0.65)],
            [("35 g/130 kcal", 0.98), ("2021.08.03", 1.0), ("CEREAL BAR", 0.99)],
            ["35 g/130 kcal", "2021.08.03", "CEREAL BAR"],
            [0, 2, 1],
        ),
        # upright, one weak line: turning it loses, so the sure lines are not read again
        (
            [("CEREAL BAR", 0.99), ("2021.08.03", 1.0), ("轻能130kca", 0.74)],
            [("CEL BBAR", 0.7), ("202.10.03", 0.8), ("", 0.0)],
            ["CEREAL BAR", "2021.08.03", "轻能130kca"],
            [2],
        ),
        # nothing weak: nothing is read twice
        ([("EXP 01.02.2028", 0.97)], [("8202.20.10 PXE", 0.9)], ["EXP 01.02.2028"], []),
    ],
)
def test_an_upside_down_view_is_read_the_right_way_up(
    upright: list[tuple[str, float]], turned: list[tuple[str, float]], texts: list[str], turned_boxes: list[int]
) -> None:
    engine = TurnTableEngine(upright, turned)
    quads = [np.array([[i, 0], [i + 1, 0], [i + 1, 1], [i, 1]], np.float32) for i in range(len(upright))]
    lines = recognize_upright(engine, np.zeros((4, 4, 3), np.uint8), quads)  # type: ignore[arg-type]
    assert [line.text for line in lines] == texts
    assert engine.turned_boxes == turned_boxes


# --- budget ---------------------------------------------------------------------------------


class FallbackOnlyEngine:
    """Finds the expiry only on an enlarged pass (as small print is): the first pass reads nothing."""

    name = "fallback-only"

    def __init__(self) -> None:
        self.sizes: list[tuple[int, ...]] = []

    def read(self, image: np.ndarray) -> list[TextLine]:
        self.sizes.append(image.shape[:2])
        return [_line("EXP 01/12/2026")] if image.shape[1] > 200 else []


def test_item_whose_budget_runs_out_is_unreadable_never_a_guess() -> None:
    capture = _capture({"top": 1, "side": 1})
    spent = OcrExpiryStage(engine=FallbackOnlyEngine(), budget_ms=0.0)(capture, StageContext(_catalog(), today=TODAY))
    assert [f.kind for f in spent] == ["unreadable"] and "budget" in spent[0].message
    engine = FallbackOnlyEngine()
    found = OcrExpiryStage(engine=engine, budget_ms=None)(capture, StageContext(_catalog(), today=TODAY))
    assert [f.kind for f in found] == ["expired"]
    assert engine.sizes[:2] == [(64, 150), (64, 150)]  # every view's first pass runs before any fallback


def test_no_fallback_pass_runs_while_items_wait_at_the_lane() -> None:
    capture = _capture({"top": 1, "side": 1})
    engine = FallbackOnlyEngine()
    busy = OcrExpiryStage(engine=engine, budget_ms=None)(capture, StageContext(_catalog(), today=TODAY, backlog=3))
    assert [f.kind for f in busy] == ["unreadable"] and "3 item(s) waiting" in busy[0].message
    assert engine.sizes == [(64, 150), (64, 150)]  # first passes only
    idle = OcrExpiryStage(engine=engine, budget_ms=None)(capture, StageContext(_catalog(), today=TODAY))
    assert [f.kind for f in idle] == ["expired"] and "waiting" not in idle[0].message


def test_no_fallback_pass_starts_when_the_verdict_deadline_is_near() -> None:
    import time as _time

    capture = _capture({"top": 1, "side": 1})
    engine = FallbackOnlyEngine()
    late = StageContext(_catalog(), today=TODAY, deadline=_time.perf_counter() + 0.1)  # 100 ms left
    findings = OcrExpiryStage(engine=engine, budget_ms=None)(capture, late)
    assert [f.kind for f in findings] == ["unreadable"] and "deadline was near" in findings[0].message
    assert engine.sizes == [(64, 150), (64, 150)]  # first passes only
    early = StageContext(_catalog(), today=TODAY, deadline=_time.perf_counter() + 30.0)
    assert [f.kind for f in OcrExpiryStage(engine=engine, budget_ms=None)(capture, early)] == ["expired"]


class SharpOrBlurredEngine:
    """Reads one text on a sharp image and another on a blurred one (a second look's dot blur)."""

    name = "sharp-or-blurred"

    def __init__(self, sharp: str, blurred: str) -> None:
        self.sharp, self.blurred = sharp, blurred
        self.reads = 0

    def read(self, image: np.ndarray) -> list[TextLine]:
        import cv2

        self.reads += 1
        sharp = cv2.Laplacian(image[..., 0] if image.ndim == 3 else image, cv2.CV_64F).var() > 1000.0
        return [_line(self.sharp if sharp else self.blurred)]


def _noise() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (64, 150, 3), dtype=np.uint8)


def _noisy_capture() -> ItemCapture:
    return ItemCapture(item_id="I1", sku="FOOD-1", lot="L7", frames=[Frame.from_array("top", _noise())])


@pytest.mark.parametrize(
    ("blurred", "kind", "divert"),
    [
        ("EXP 21/12/2028", "expired", False),  # the second look would pass the item: review
        ("EXP 21/12/2026", "expired", True),  # it confirms the date: divert
        ("EXP 01/12/2026", "expired", True),  # another past date: expired either way
    ],
)
def test_the_stage_reads_a_divert_a_second_time(blurred: str, kind: str, divert: bool) -> None:
    from pipeline.policy import REVIEW_CEILING_P

    engine = SharpOrBlurredEngine("EXP 21/12/2026", blurred)
    [f] = OcrExpiryStage(engine=engine)(_noisy_capture(), StageContext(_catalog(), today=TODAY))
    assert f.kind == kind and engine.reads == (2 if divert else 3)  # a third read when the second contradicts
    second = [e for e in f.evidence if e.data.get("second_look")]
    if divert:
        assert f.probability > 0.5 and not second
    else:
        assert f.probability == REVIEW_CEILING_P and "second read" in f.message
        assert [e.data["date"] for e in second] == ["2028-12-21"] and second[0].camera == "top"


def test_a_pass_costs_no_second_look_and_a_near_deadline_skips_it() -> None:
    import time as _time

    engine = SharpOrBlurredEngine("EXP 21/12/2027", "EXP 21/12/2026")
    [ok] = OcrExpiryStage(engine=engine)(_noisy_capture(), StageContext(_catalog(), today=TODAY))
    assert ok.kind == "expiry_ok" and engine.reads == 1
    engine = SharpOrBlurredEngine("EXP 21/12/2026", "EXP 21/12/2028")
    late = StageContext(_catalog(), today=TODAY, deadline=_time.perf_counter() + 0.1)
    [f] = OcrExpiryStage(engine=engine)(_noisy_capture(), late)
    assert f.kind == "expired" and f.probability > 0.5 and engine.reads == 1


def test_read_and_judge_looks_twice_before_calling_a_photo_expired() -> None:
    policy = ExpiryPolicy(carries_date=True, min_remaining_days=30)
    read, verdict = read_and_judge(
        _noise(), today=TODAY, policy=policy, engine=SharpOrBlurredEngine("EXP 21/12/2026", "EXP 21/12/2028")
    )
    assert read.expiry is not None and read.expiry.iso == "2026-12-21"
    assert verdict.status == "expired" and verdict.doubt and "2028-12-21" in verdict.doubt


@pytest.mark.parametrize(
    ("lines", "height"),
    [
        ([_line("EXP 01/12/2026"), _line("Lot A1")], 30.0),
        ([TextLine("EXP 01/12/2026", (5.0, 0.0, 35.0, 240.0), 0.9)], 30.0),  # a line on its side
        ([TextLine("EXP 01/12/2026", (5.0, 5.0, 100.0, 15.0), 0.9)], 10.0),  # small print
        ([_line("7"), _line("ab")], None),  # too short to say how tall the print is
        ([], None),
    ],
)
def test_text_height_and_the_dot_blur_passes(lines: list[TextLine], height: float | None) -> None:
    assert text_height(lines) == height
    image = np.full((120, 300, 3), 200, np.uint8)
    names = [p.name for p in fallback_passes(image, lines)]
    blurs = [n for n in names if n.startswith(DOT_BLUR_PASS)]
    assert len(blurs) == (2 if height and height >= MIN_DOT_BLUR_HEIGHT else 0)  # small print has no dots to join
    if blurs:  # before the enlarged copy and the minimum filters, which thicken small print
        assert names.index(blurs[-1]) < names.index("upscale") < names.index("dotmatrix3+upscale")


def test_the_second_look_reads_the_print_another_way_than_the_first() -> None:
    image = np.full((120, 300, 3), 200, np.uint8)
    lines = [_line("EXP 01/12/2026")]
    dates = classify_lines(lines, today=TODAY)
    plain = ImageRead(dates=dates, expiry=dates[0], engine="t", ms=0.0, passes=["plain"], lines=lines)
    assert [p.name for p in second_look_passes(image, plain)] == ["dotblur0.06", "dotblur0.1"]
    blurred = ImageRead(dates=dates, expiry=dates[0], engine="t", ms=0.0, passes=["plain", "dotblur0.06"], lines=lines)
    assert [p.name for p in second_look_passes(image, blurred)] == ["dotblur0.1", "upscale"]
    small = [TextLine("EXP 01/12/2026", (5.0, 5.0, 100.0, 15.0), 0.9)]
    tiny = ImageRead(dates=dates, expiry=dates[0], engine="t", ms=0.0, passes=["plain"], lines=small)
    assert [p.name for p in second_look_passes(image, tiny)] == ["upscale"]  # no dots to blur: enlarged instead
    assert second_look_passes(image, ImageRead(dates=[], expiry=None, engine="t", ms=0.0, lines=lines)) == []


def test_stage_stops_fallbacks_once_an_expiry_is_found() -> None:
    engine = FallbackOnlyEngine()
    OcrExpiryStage(engine=engine, budget_ms=None)(
        _capture({"a": 1, "b": 1, "c": 1}), StageContext(_catalog(), today=TODAY)
    )
    assert sum(size[1] > 200 for size in engine.sizes) == 1


def test_each_thread_reads_with_its_own_rapidocr_engine() -> None:
    """Workers on different threads must not queue on one in-process engine."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.submit(get_engine, "rapidocr"), pool.submit(get_engine, "rapidocr")
        ids = {id(first.result()), id(second.result())}
    mine = get_engine("rapidocr")
    assert mine is get_engine("rapidocr")
    assert len(ids | {id(mine)}) >= 2


@pytest.mark.parametrize(
    ("value", "one_at_a_time", "threads"),
    [
        ("", False, 1),  # inspection: its own threads are the parallelism
        ("", True, "cores"),
        ("3", False, 3),
        (" 2 ", True, 2),  # the variable wins
        ("0", False, None),
        ("-1", True, None),
        ("two", False, None),
    ],
)
def test_engine_threads_come_from_the_environment_or_a_one_at_a_time_command(
    monkeypatch: pytest.MonkeyPatch, value: str, one_at_a_time: bool, threads: int | str | None
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(16)), raising=False)
    monkeypatch.setenv(THREADS_ENV, value)
    expected = MAX_READER_THREADS if threads == "cores" else threads
    with reading_one_at_a_time() if one_at_a_time else contextlib.nullcontext():
        if expected is None:
            with pytest.raises(ValueError, match=THREADS_ENV):
                engine_threads()
        else:
            assert engine_threads() == expected
    monkeypatch.setenv(THREADS_ENV, "")
    assert engine_threads() == 1  # the block is closed


def test_the_label_engine_follows_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    from detectors.attributes.ocr import label_engine

    monkeypatch.setenv(THREADS_ENV, "2")
    assert label_engine().threads == 2 and label_engine() is label_engine()
    monkeypatch.delenv(THREADS_ENV)
    assert label_engine().threads == 1


def test_a_multi_threaded_engine_reads_as_one_thread_does_on_sleeping_threads() -> None:
    """A command reading one image at a time spreads each network over the cores; its threads
    must sleep when idle (a spinning pool doubled the cost beside a busy core), its budget runs
    on the wall clock (its compute is not all in the calling thread), and the read is the same."""
    img, _ = render_lines(["MFG 01/02/2026", "EXP 15/12/2026"])
    one, two = get_engine("rapidocr", threads=1), get_engine("rapidocr", threads=2)
    assert one is not two and two is get_engine("rapidocr", threads=2)
    for model in (two._ocr._load_det_model(), two._ocr._load_rec_model()):
        options = model.session.session.get_session_options()
        assert options.intra_op_num_threads == 2
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert engine_clock(one) is time.thread_time and engine_clock(two) is time.perf_counter
    assert [(ln.text, ln.box) for ln in two.read(img)] == [(ln.text, ln.box) for ln in one.read(img)]
    with pytest.raises(ValueError, match="at least one thread"):
        RapidOcrEngine(threads=0)


@pytest.mark.parametrize(
    ("text", "order", "expiry"),
    [
        ("賞味期限 22.03.15", None, "2022-03-15"),  # a Japanese print: year first
        ("유통기한 22.03.15까지", None, "2022-03-15"),  # Korean
        ("賞味期限 22.03.15", "DMY", None),  # the market says day first: 2015, too old to believe
        ("BEST BEFORE 22.03.15", None, None),  # a Latin print reads day first: 2015
        ("BEST BEFORE 15.03.22", None, "2022-03-15"),
    ],
)
def test_a_photo_of_unknown_market_reads_numeric_dates_in_its_scripts_order(
    text: str, order: str | None, expiry: str | None
) -> None:
    engine = ScriptedEngine({6: [_line(text)]})
    read = read_dates(np.zeros((64, 650, 3), np.uint8), engine=engine, order=order, today=date(2021, 6, 1))  # type: ignore[arg-type]
    assert (read.expiry.iso if read.expiry else None) == expiry
