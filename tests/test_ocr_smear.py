"""Belt-motion smear: measured on smeared frames, removed before small print is read, and never
charged to a sharp frame."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from detectors.localize.core import localize
from detectors.ocr_expiry import OcrExpiryStage, read_dates
from detectors.ocr_expiry.engines import TextLine
from detectors.ocr_expiry.preprocess import UNSMEAR_MIN_SCORE, UNSMEAR_PASS, Pass, unsmear_pass
from detectors.ocr_expiry.reader import ImageRead
from detectors.ocr_expiry.smear import measure_smear, remove_smear
from pipeline.catalog import Catalog
from pipeline.stages import StageContext
from pipeline.types import CatalogRecord, ExpiryPolicy, Frame, ItemCapture
from pipeline.views import VIEWS_KEY

from .test_ocr_engines import render_lines

TODAY = date(2026, 11, 22)


def _print_frame(seed: int = 0) -> np.ndarray:
    """A label of print lines on a textured belt (sensor noise is added with the smear)."""
    texture = cv2.GaussianBlur(np.random.default_rng(seed).normal(0, 1, (480, 640)).astype(np.float32), (0, 0), 0.7)
    frame = np.repeat((90 + 40 * texture / texture.std())[..., None], 3, axis=2)
    lines = ["EXP 12/2027  LOT 4471", "BEST BEFORE 03.05.2028", "MFD 01/2026 B7"]
    frame[140:340, 60:580] = render_lines(lines, size=22, canvas=(520, 200))[0]
    return np.clip(frame, 0, 255).astype(np.uint8)


def _smeared(frame: np.ndarray, length: int, noise: float = 3.0, axis: int = 1, seed: int = 0) -> np.ndarray:
    kernel = (length, 1) if axis == 1 else (1, length)
    blurred = cv2.blur(frame.astype(np.float32), kernel) if length > 1 else frame.astype(np.float32)
    blurred += np.random.default_rng(seed).normal(0, noise, frame.shape)
    return np.clip(blurred, 0, 255).astype(np.uint8)


def _tunnel_views(monkeypatch: pytest.MonkeyPatch, smear: int, items: int = 4) -> list[np.ndarray]:
    """Frame areas of simulated tunnel items (every camera) rendered with the belt smear given."""
    import dataclasses

    import tunnel_sim.item as sim_item
    from tunnel_sim.catalog import catalog_records

    sample = sim_item.sample_lighting
    monkeypatch.setattr(sim_item, "sample_lighting", lambda rng: dataclasses.replace(sample(rng), blur_px=smear))
    records = catalog_records()
    views = []
    for i in range(items):
        item = sim_item.render_item(records[(7 * i) % len(records)], seed=900 + i, item_id=f"s{i}")
        for camera, frame in item.images.items():
            x0, y0, x1, y1 = localize(frame, camera).footprint(frame.shape)
            views.append(frame[y0:y1, x0:x1])
    return views


@pytest.mark.parametrize("smear", [1, 3, 5, 7])
def test_the_smear_of_simulated_tunnel_views_is_measured(monkeypatch: pytest.MonkeyPatch, smear: int) -> None:
    lengths = [measure_smear(view).length for view in _tunnel_views(monkeypatch, smear)]
    # held-out shifts: 95 % of sharp views, 87 % / 81 % / 70 % of 3 / 5 / 7 px views exactly
    assert sum(length == smear for length in lengths) >= 2 / 3 * len(lengths), lengths


def test_the_smear_is_measured_along_the_axis_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    view = _tunnel_views(monkeypatch, 5, items=1)[0]
    turned = np.ascontiguousarray(np.swapaxes(view, 0, 1))
    assert measure_smear(view).length == measure_smear(turned, axis=0).length == 5


def test_thick_strokes_of_large_sharp_print_are_not_a_smear() -> None:
    frame = np.full((480, 640, 3), 62, np.uint8)
    frame[80:400, 110:530] = render_lines(["SIZE", "KING"], size=48, canvas=(420, 320))[0]
    assert measure_smear(frame).length == 1


def test_a_tiny_or_flat_image_is_sharp() -> None:
    assert measure_smear(np.zeros((4, 30, 3), np.uint8)).length == 1
    assert measure_smear(np.full((200, 300), 128, np.uint8)).length == 1


@pytest.mark.parametrize("length", [3, 5, 7])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("channels", [1, 3])
def test_removing_the_smear_brings_back_the_sharp_print(length: int, axis: int, channels: int) -> None:
    sharp = _print_frame()[60:300, 20:600]
    sharp = sharp if channels == 3 else np.ascontiguousarray(sharp[..., 0])
    smeared = cv2.blur(sharp, (length, 1) if axis == 1 else (1, length))
    restored = remove_smear(smeared, length, axis=axis)
    assert restored.shape == sharp.shape and restored.dtype == np.uint8

    def error(image: np.ndarray) -> float:
        return float(np.abs(image.astype(np.float32) - sharp).mean())

    assert error(restored) < 0.75 * error(smeared)


def test_no_smear_leaves_the_image_as_it_is() -> None:
    image = _print_frame()
    assert remove_smear(image, 1) is image


def test_a_view_cut_from_its_own_frame_is_its_crop() -> None:
    frame = np.full((480, 640, 3), 60, np.uint8)
    box = cv2.boxPoints(((330.0, 250.0), (260.0, 140.0), 20.0)).astype(np.int32)
    cv2.fillPoly(frame, [box], (220, 200, 170))
    view = localize(frame, "top")
    assert view.found
    x0, y0, x1, y1 = view.footprint(frame.shape)
    assert 0 <= x0 < 200 < 460 < x1 <= 640 and 0 <= y0 < 150 < 350 < y1 <= 480
    part = frame[y0:y1, x0:x1]
    assert np.array_equal(view.cut(frame), view.crop)
    assert np.abs(view.cut(part, (x0, y0)).astype(int) - view.crop).max() <= 1


class ScriptedEngine:
    """Reads the expiry on the view as captured only, or on any other image only
    (`on_captured`); records for each image it was given whether it was the captured view."""

    name = "scripted"

    def __init__(self, captured: np.ndarray, on_captured: bool = False) -> None:
        self.captured, self.on_captured = captured, on_captured
        self.given_captured: list[bool] = []

    def read(self, image: np.ndarray, detect_side: int | None = None) -> list[TextLine]:
        as_captured = image.shape == self.captured.shape and np.array_equal(image, self.captured)
        self.given_captured.append(as_captured)
        if as_captured != self.on_captured or image.shape[1] > 700:  # an enlarged pass reads nothing
            return [TextLine("LOT 4471", (10.0, 10.0, 90.0, 30.0), 0.9)]
        return [TextLine("EXP 12/2027", (10.0, 10.0, 120.0, 30.0), 0.95)]


def _context() -> StageContext:
    rec = CatalogRecord(
        sku="FOOD-1", title="food", category="food",
        expiry=ExpiryPolicy(carries_date=True, min_remaining_days=30, date_order="DMY"),
    )  # fmt: skip
    return StageContext(Catalog(skus={"FOOD-1": rec}), today=TODAY)


def _smeared_capture(located: bool = True) -> tuple[ItemCapture, StageContext, np.ndarray]:
    """A frame smeared 3 px, its context, and the view the stage reads as captured."""
    frame = _smeared(_print_frame(), 3)
    capture = ItemCapture(item_id="I1", sku="FOOD-1", frames=[Frame.from_array("top", frame)])
    ctx = _context()
    if not located:
        return capture, ctx, frame
    view = localize(frame, "top")
    ctx.shared[VIEWS_KEY] = {"top": view}
    return capture, ctx, view.crop


@pytest.mark.parametrize("located", [True, False])
def test_the_stage_reads_a_smeared_view_without_its_smear(located: bool) -> None:
    capture, ctx, captured = _smeared_capture(located)
    engine = ScriptedEngine(captured)
    [finding] = OcrExpiryStage(engine=engine, budget_ms=None)(capture, ctx)
    assert finding.kind == "expiry_ok" and engine.given_captured == [False]  # one read, without the smear
    data = finding.evidence[0].data
    assert data["date"] == "2027-12" and data["belt_smear_px"] >= 3
    assert data["read_as"] == f"with the belt's {data['belt_smear_px']} px smear taken out"  # in words, for a reviewer


def test_a_view_whose_corrected_copy_reads_nothing_is_read_as_captured() -> None:
    capture, ctx, captured = _smeared_capture()
    engine = ScriptedEngine(captured, on_captured=True)
    [finding] = OcrExpiryStage(engine=engine, budget_ms=None)(capture, ctx)
    assert finding.kind == "expiry_ok" and engine.given_captured == [False, True]
    assert "read_as" not in finding.evidence[0].data  # the date came from the view as captured


def test_the_stage_can_be_told_not_to_remove_smear() -> None:
    capture, ctx, captured = _smeared_capture()
    engine = ScriptedEngine(captured, on_captured=True)
    [finding] = OcrExpiryStage(engine=engine, budget_ms=None, desmear=False)(capture, ctx)
    assert finding.kind == "expiry_ok" and engine.given_captured == [True]
    assert "belt_smear_px" not in finding.evidence[0].data


def test_a_sharp_view_is_read_as_captured() -> None:
    frame = _smeared(_print_frame(), 1)
    capture = ItemCapture(item_id="I1", sku="FOOD-1", frames=[Frame.from_array("top", frame)])
    engine = ScriptedEngine(frame, on_captured=True)
    [finding] = OcrExpiryStage(engine=engine, budget_ms=None)(capture, _context())
    assert finding.kind == "expiry_ok" and engine.given_captured == [True]


class LabelEngine(ScriptedEngine):
    """Reads the size label on any image but the captured view (whose smear hides it)."""

    def read(self, image: np.ndarray, detect_side: int | None = None) -> list[TextLine]:
        as_captured = image.shape == self.captured.shape and np.array_equal(image, self.captured)
        self.given_captured.append(as_captured)
        return [] if as_captured else [TextLine("SIZE M", (10.0, 10.0, 90.0, 30.0), 0.97)]


def _label_context(frame: np.ndarray) -> tuple[ItemCapture, StageContext, np.ndarray]:
    rec = CatalogRecord(sku="TEE-M", title="tee", category="apparel", attributes={"size": "M"})
    capture = ItemCapture(item_id="I2", sku="TEE-M", frames=[Frame.from_array("top", frame)])
    ctx = StageContext(Catalog(skus={"TEE-M": rec}), today=TODAY)
    view = localize(frame, "top")
    ctx.shared[VIEWS_KEY] = {"top": view}
    return capture, ctx, view.crop


def test_labels_on_a_smeared_view_are_read_without_the_smear() -> None:
    from detectors.attributes.stage import AttributesStage

    capture, ctx, captured = _label_context(_smeared(_print_frame(), 3))
    engine = LabelEngine(captured)
    findings = AttributesStage(engine=engine, check_colour=False, check_identity=False)(capture, ctx)
    assert [f.kind for f in findings] == ["label_ok"] and engine.given_captured[0] is False


def test_labels_are_read_on_the_image_the_expiry_stage_read() -> None:
    from detectors.attributes.stage import AttributesStage
    from detectors.ocr_expiry.engines import TEXT_IMAGES_KEY

    capture, ctx, captured = _label_context(_smeared(_print_frame(), 3))
    read_there = np.full_like(captured, 200)
    ctx.shared[TEXT_IMAGES_KEY] = {"top": read_there}
    seen: list[np.ndarray] = []

    class Recording(LabelEngine):
        def read(self, image: np.ndarray, detect_side: int | None = None) -> list[TextLine]:
            seen.append(image)
            return super().read(image, detect_side)

    AttributesStage(engine=Recording(captured), check_colour=False, check_identity=False)(capture, ctx)
    assert seen and np.all(seen[0] == 200)  # the published image (enlarged), not the crop


@pytest.mark.parametrize(("on_captured", "given"), [(True, [True]), (False, [True, False])])
def test_the_investigator_reads_a_smeared_view_again_without_its_smear(
    monkeypatch: pytest.MonkeyPatch, tmp_path, on_captured: bool, given: list[bool]
) -> None:
    """As captured first; without the smear as well only when the capture shows no expiry."""
    import detectors.ocr_expiry as ocr
    from detectors.ocr_expiry.reader import ImageRead
    from llm_agent import tools
    from llm_agent.evidence import EvidenceFile

    frame = _smeared(_print_frame(), 3)
    captured = localize(frame, "top").crop
    seen: list[bool] = []

    def read_dates(image: np.ndarray, **_: object) -> ImageRead:
        as_captured = image.shape == captured.shape and np.array_equal(image, captured)
        seen.append(as_captured)
        found = as_captured == on_captured
        return ImageRead(dates=[], expiry=object() if found else None, engine="scripted", ms=0.0)  # type: ignore[arg-type]

    monkeypatch.setattr(ocr, "read_dates", read_dates)
    capture = ItemCapture(item_id="I3", sku="FOOD-1", frames=[Frame.from_array("top", frame)])
    catalog = _context().catalog
    ev = EvidenceFile(
        item_id="I3", capture=capture, verdict=None, findings=[], record=catalog.skus["FOOD-1"], lot=None,
        lot_summary=None, catalog=catalog, results_root=tmp_path,
    )  # fmt: skip
    read, view = tools._ocr(ev, "top")
    assert seen == given and read.expiry is not None and view is not None


@pytest.mark.parametrize(
    ("confidence", "corrected", "status"),
    [
        (0.78, frozenset(), "ok"),  # a weak read of the catalog's value on the view as captured
        (0.78, frozenset({"top"}), "unread"),  # the same read on a corrected view: review
        (0.78, frozenset({"left"}), "ok"),  # another view was corrected
        (0.95, frozenset({"top"}), "ok"),  # a confident read counts wherever it was made
    ],
)
def test_a_weak_label_read_on_a_corrected_view_passes_nothing(
    confidence: float, corrected: frozenset[str], status: str
) -> None:
    from detectors.attributes.labels import ValueRead, judge

    reads = [ValueRead("P15", "P15 ero", confidence, 0, True, "top")]
    assert judge("model", "P15", reads, 0.8, corrected).status == status


def test_labels_read_on_a_corrected_view_are_marked_so() -> None:
    from detectors.attributes.stage import AttributesStage

    _, ctx, captured = _label_context(_smeared(_print_frame(), 3))
    stage = AttributesStage(engine=LabelEngine(captured), check_colour=False, check_identity=False)
    reading = stage.read_labels(
        ctx.catalog.skus["TEE-M"], ctx.shared[VIEWS_KEY], text_image=lambda camera: np.zeros_like(captured)
    )
    assert reading.lines and all(line.corrected for line in reading.lines)


# --- photos of unknown motion ----------------------------------------------------------------


@pytest.mark.parametrize(("axis", "suffix"), [(1, "x"), (0, "y")])
def test_the_unsmear_pass_takes_a_photos_smear_out_along_its_axis(axis: int, suffix: str) -> None:
    img, _ = render_lines(["Best before", "EXP 15/03/2027", "LOT 4711A"])
    assert unsmear_pass(img) is None
    smeared = _smeared(img, 7, noise=0.0, axis=axis)
    p = unsmear_pass(smeared)
    assert p is not None and p.name == f"{UNSMEAR_PASS}7{suffix}" and p.min_score == UNSMEAR_MIN_SCORE
    assert not measure_smear(p.image, axis).worth_removing  # the smear is gone


class ScoredEngine:
    name = "scored"

    def read(self, image: np.ndarray, *, detect_side: int | None = None) -> list[TextLine]:
        return [TextLine("EXP 15/03/2027", (0.0, 0.0, 90.0, 20.0), 0.62), TextLine("LOT 4711", (0, 30, 90, 50), 0.97)]


def test_a_pass_that_can_make_text_up_drops_its_unsure_lines() -> None:
    image = np.zeros((60, 100, 3), np.uint8)
    assert [line.text for line in Pass("plain", image, np.eye(2, 3)).read(ScoredEngine())] == [
        "EXP 15/03/2027",
        "LOT 4711",
    ]
    assert [line.text for line in Pass("unsmear7x", image, np.eye(2, 3), min_score=0.9).read(ScoredEngine())] == [
        "LOT 4711"
    ]


@pytest.mark.parametrize(("file", "length", "axis"), [("img_02.jpg", 7, 1), ("img_07.jpg", 9, 1), ("img_03.jpg", 7, 0)])
def test_a_real_photo_smeared_by_motion_is_read_with_the_smear_taken_out_or_not_at_all(
    file: str, length: int, axis: int, shared_data: Path
) -> None:
    """Smeared 7-9 px, none of these three is read as it is. The first two are read once the
    smear is taken out; the third, the smallest print, reads a wrong date at a low score on its
    corrected copy, which is not taken: it goes to review."""
    item = next(g for g in json.loads((shared_data / "expiry_photos_dev" / "gt.json").read_text()) if g["file"] == file)
    y, m, d = item["expiry"]
    expected = f"{y:04d}-{m:02d}" + (f"-{d:02d}" if d else "")
    photo = np.asarray(Image.open(shared_data / "expiry_photos_dev" / file).convert("RGB"))
    read = read_dates(_smeared(photo, length, noise=0.0, axis=axis), today=date(2021, 6, 1))
    assert any(p.startswith(UNSMEAR_PASS) for p in read.passes)
    if file == "img_03.jpg":
        assert read.expiry is None
    else:
        assert read.expiry is not None and read.expiry.iso == expected
        assert read.expiry.source.startswith(UNSMEAR_PASS)  # and says it was read on the corrected copy


def test_an_investigation_cites_how_the_tunnel_read_a_date(tmp_path: Path) -> None:
    from llm_agent.evidence import EvidenceFile
    from pipeline.types import Evidence, Finding

    capture, ctx, captured = _smeared_capture()
    [finding] = OcrExpiryStage(engine=ScriptedEngine(captured), budget_ms=None)(capture, ctx)
    other = Finding(stage="anomaly", kind="anomaly", score=0.1, probability=0.1, evidence=[Evidence(camera="top")])
    ev = EvidenceFile(
        item_id="I1", capture=capture, verdict=None, findings=[finding, other], record=ctx.catalog.skus["FOOD-1"],
        lot=None, lot_summary=None, catalog=ctx.catalog, results_root=tmp_path,
    )  # fmt: skip
    ev._register_base()
    smear = finding.evidence[0].data["belt_smear_px"]
    assert ev.refs["finding:0"].description.endswith(f"(read with the belt's {smear} px smear taken out)")
    assert "(read" not in ev.refs["finding:1"].description


@pytest.mark.parametrize("smeared", [True, False])
def test_a_divert_on_a_smeared_photo_is_looked_at_again_without_the_smear_first(
    smeared: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Smeared 5 px sideways, a real photo's "EXP 26/11/2021" read 2020-11-26, expired, on the
    first pass; the copy with the smear taken out read 2021-11-26 and put the call in doubt."""
    from detectors.ocr_expiry import checker

    img, _ = render_lines(["Best before", "EXP 15/03/2027", "LOT 4711A"])
    unsmeared = Pass(f"{UNSMEAR_PASS}5x", img, np.eye(2, 3), min_score=UNSMEAR_MIN_SCORE)
    monkeypatch.setattr(checker, "unsmear_pass", lambda image: unsmeared if smeared else None)
    given: list[list[str]] = []
    looks = checker.second_looks

    def spy(image: np.ndarray, read: ImageRead, **kwargs: object):  # type: ignore[no-untyped-def]
        given.append([p.name for p in kwargs.get("first", ())])  # type: ignore[union-attr]
        return looks(image, read, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(checker, "second_looks", spy)
    _, verdict = checker.read_and_judge(img, today=date(2027, 6, 1))
    assert verdict.status == "expired"
    assert given == [[f"{UNSMEAR_PASS}5x"] if smeared else []]


def test_second_looks_start_with_the_callers_passes() -> None:
    from detectors.ocr_expiry.reader import SECOND_LOOKS, second_looks

    img, _ = render_lines(["Best before", "EXP 15/03/2027", "LOT 4711A"])
    read = read_dates(img, today=date(2026, 11, 22))
    assert read.expiry is not None

    class Blind:
        name = "blind"

        def read(self, image: np.ndarray, *, detect_side: int | None = None) -> list[TextLine]:
            return []

    plain = [look.passes[0] for look in second_looks(img, read, engine=Blind())]
    own = Pass("own", img, np.eye(2, 3))
    given = [look.passes[0] for look in second_looks(img, read, engine=Blind(), first=[own])]
    assert given == ["own", *plain][:SECOND_LOOKS] and len(plain) == SECOND_LOOKS
