"""Label parsing (table-driven) and the label check on rendered items."""

from __future__ import annotations

import time

import numpy as np
import pytest

from detectors.attributes.labels import canonical, family_of, judge, read_values, votes
from detectors.attributes.stage import TURNS, AttributesStage, unturn_box
from detectors.ocr_expiry.engines import TextLine
from pipeline.catalog import Catalog
from pipeline.stages import StageContext
from pipeline.types import ItemCapture
from tunnel_sim import render_item
from tunnel_sim.catalog import catalog_records

RECORDS = {r.sku: r for r in catalog_records()}


@pytest.mark.parametrize(
    ("expected", "lines", "status", "values"),
    [
        ("M", [("SIZE", 1.0), ("M", 0.99)], "ok", ["M"]),
        ("M", [("SIZE", 1.0), ("XL", 0.98)], "wrong", ["XL"]),
        ("M", [("Basic crew T-shirt", 1.0)], "unread", []),
        ("KING", [("KING", 1.0), ("SZIE", 0.8)], "ok", ["KING"]),
        ("KING", [("QUEEN", 0.95)], "wrong", ["QUEEN"]),
        ("TWIN", [("TIN", 0.9)], "ok", ["TWIN"]),
        ("KING", [("TIN", 0.9)], "unread", ["TWIN"]),  # a one-letter slip alone cannot prove a wrong label
        ("CAL KING", [("CAL KING", 0.9)], "ok", ["CAL KING"]),
        ("TWIN", [("TWIN XI", 0.95)], "unread", ["TWIN XL"]),  # another size's word misread: no pass
        ("KING", [("CAI KING", 0.95)], "unread", ["CAL KING"]),
        ("TWIN XL", [("TWIN X1", 0.9)], "ok", ["TWIN XL"]),  # a weak read of the catalog's size
        ("KING", [("SIZE KING", 0.95)], "ok", ["KING"]),  # a caption is no size's word
        ("EU 42", [("SIZE", 1.0), ("EU 42", 1.0)], "ok", ["EU 42"]),
        ("EU 42", [("EU 44", 0.97)], "wrong", ["EU 44"]),
        ("EU 42", [("42", 0.9)], "ok", ["EU 42"]),  # shoe tongue label: the number only
        ("12 kg", [("12 KG", 1.0), ("Charge L8003", 1.0)], "ok", ["12000 G"]),
        ("750 ml", [("0,75 l", 0.9)], "ok", ["750 ML"]),
        ("3 kg", [("7 kg", 0.95)], "wrong", ["7000 G"]),
        ("P15", [("FOR PHONE P15", 0.9), ("P16", 1.0)], "wrong", ["P15", "P16"]),
        ("P15", [("P16", 0.5)], "unread", ["P16"]),  # an unsure read is not evidence
        ("P15", [("P15 Pio", 0.73)], "unread", ["P15 PRO"]),  # a misread suffix passes no label
        ("P15", [("P15 Pio", 0.99)], "unread", ["P15 PRO"]),  # nor, one letter off, proves a wrong one
        ("P16 Pro", [("P16 Pio", 0.73)], "ok", ["P16 PRO"]),
        ("P15", [("PI5", 0.81)], "ok", ["P15"]),  # a digit read as its look-alike letter
        ("P15", [("PI6", 0.99)], "wrong", ["PI6"]),  # a look-alike letter does not excuse another digit
        ("P15", [("PI5", 0.99), ("P15", 0.9)], "ok", ["P15", "P15"]),
        ("navy", [("NAVY", 0.9)], "ok", ["NAVY"]),
    ],
)
def test_label_table(expected: str, lines: list[tuple[str, float]], status: str, values: list[str]) -> None:
    reads = read_values(lines, expected)
    assert [r.value for r in reads] == values
    assert judge("size", expected, reads).status == status


@pytest.mark.parametrize(
    ("expected", "lines", "status"),
    [
        # (text, confidence, camera): a value counts once per camera that reads it
        ("P15", [("P15", 1.0, "top"), ("P15", 1.0, "left"), ("P16", 0.93, "right")], "ok"),  # misread outvoted
        ("P15", [("P16", 0.99, "top"), ("P16", 0.97, "left"), ("P15", 0.9, "right")], "wrong"),
        ("P15", [("P16", 0.99, "top"), ("P15", 0.9, "right")], "conflict"),  # one view each: a person decides
        ("P15", [("P16", 0.99, "top"), ("P16", 0.98, "top"), ("P15", 0.9, "right")], "conflict"),  # same view twice
        ("P15", [("ARMORLITE CASE FOR PHONE P15", 1.0, "top"), ("P16", 0.95, "left")], "wrong"),  # title ranks below
        ("P15", [("FOR PHONE P35", 0.93, "top"), ("P15", 1.0, "left")], "ok"),  # a misread title is ignored too
        ("P15", [("FOR PHONE P15", 0.93, "top")], "ok"),  # only a title: it still names the model
        ("M", [("SIZE M", 0.99, "top"), ("SZE M", 0.95, "left")], "ok"),  # caption (even misread) + value: a sticker
        ("M", [("SIZE L", 0.99, "top"), ("M", 0.6, "left")], "wrong"),  # an unsure read does not vote
    ],
)
def test_vote_over_views(expected: str, lines: list[tuple[str, float, str]], status: str) -> None:
    reads = read_values([(t, c) for t, c, _ in lines], expected, [cam for _, _, cam in lines])
    assert judge("size", expected, reads).status == status


@pytest.mark.parametrize(
    ("line", "expected", "standalone"),
    [
        ("P16", "P15", True),
        ("MODEL P16", "P15", True),
        ("ARMORLITE CASE FOR PHONE P15", "P15", False),
        ("SIZE", "M", None),  # no value at all
        ("M", "M", True),
        ("SIZE: XL", "M", True),
        ("Basic crew M", "M", False),
        ("TWIN XL", "KING", True),
        ("EU 42", "EU 42", True),
        ("STRIDE EU 42", "EU 42", False),
        ("3 PACK", "3", True),
        ("TENNIS BALLS 4 PACK", "3", False),
    ],
)
def test_standalone_lines(line: str, expected: str, standalone: bool | None) -> None:
    reads = read_values([(line, 1.0)], expected)
    assert (reads[0].standalone if reads else None) is standalone


@pytest.mark.parametrize(
    ("text", "expected", "values"),
    [
        ("P16PRO", "P15", ["P16 PRO"]),
        ("P16 Pro", "P15", ["P16 PRO"]),
        ("P15 Pio", "P15", ["P15 PRO"]),  # a suffix one letter off is still a suffix
        ("P15Pio", "P15", ["P15 PRO"]),
        ("P16 PR0", "P15", ["P16 PRO"]),
        ("P15 CASE", "P15", ["P15"]),  # a word two letters from every suffix is none
        ("P15 P16", "P15", ["P15", "P16"]),
        ("99", "EU 42", []),  # print noise on a tongue, not a size
        ("EU 99", "EU 42", []),
        ("EU 44", "EU 42", ["EU 44"]),
        ("UK 8.5", "UK 8", ["UK 8.5"]),
        ("4 PACK", "3", ["4"]),
        ("4PK", "3", ["4"]),
        ("PACK OF 12", "3", ["12"]),
        ("6 x 250 ml", "6", ["6"]),
        ("C", "3", []),  # a word is no count: only a number with a pack word is
        ("3", "3", []),  # a bare number may be a lot code or a lid's rim
        ("CHAMPIONSHIP", "3", []),
        ("0 PACK", "3", []),
    ],
)
def test_value_spellings(text: str, expected: str, values: list[str]) -> None:
    assert [r.value for r in read_values([(text, 1.0)], expected)] == values


def test_votes_count_each_source_once() -> None:
    reads = read_values([("P16", 0.9), ("P16", 0.95), ("P15", 1.0)], "P15", ["top", "top", "left"])
    assert votes(reads) == {"P16": (1, 0.95), "P15": (1, 1.0)}


def test_families_and_canonical_forms() -> None:
    assert family_of("XL") == "letter"
    assert family_of("QUEEN") == "bed"
    assert family_of("EU 40") == "shoe"
    assert family_of("1 L") == "quantity"
    assert family_of("P16 Pro") == "model"
    assert family_of("3") == "count"
    assert canonical("1 L") == canonical("1000 ml")
    assert canonical("03") == "3"


class FakeEngine:
    """Stands in for OCR so the stage logic is tested without model time."""

    name = "fake"

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def read(self, image: np.ndarray) -> list[TextLine]:
        return [TextLine(t, (10.0, 10.0, 60.0, 40.0), 0.99) for t in self.texts]


class BoxedEngine:
    """Returns prepared (text, box) lines on every image."""

    name = "boxed"

    def __init__(self, lines: list[tuple[str, tuple[float, float, float, float]]]) -> None:
        self.lines = lines

    def read(self, image: np.ndarray) -> list[TextLine]:
        return [TextLine(text, box, 0.95) for text, box in self.lines]


WHOLE_VIEW = (5.0, 5.0, 420.0, 400.0)
STICKER = (200.0, 150.0, 240.0, 190.0)


@pytest.mark.parametrize(
    ("lines", "kinds"),
    [
        # an "M" as big as the view is the recogniser's guess at the shirt, not its label
        ([("M", WHOLE_VIEW), ("SIZE", (190.0, 120.0, 250.0, 140.0)), ("S", STICKER)], ["wrong_variant_label"]),
        ([("M", WHOLE_VIEW)], ["unreadable_label"]),
        ([("M", STICKER)], ["label_ok"]),
    ],
)
def test_a_line_as_big_as_the_view_is_no_label(lines: list, kinds: list[str]) -> None:
    stage = AttributesStage(engine=BoxedEngine(lines), check_colour=False, check_identity=False)
    assert _kinds(stage(_capture("TEE-BASIC-NAVY-M"), _ctx())) == kinds


def _capture(sku: str, defects: tuple[str, ...] = (), seed: int = 1, benign: tuple[str, ...] = ()) -> ItemCapture:
    item = render_item(RECORDS[sku], defects=defects, seed=seed, benign=benign, cameras=("top", "right"))
    from pipeline.types import Frame

    frames = [Frame.from_array(cam, img) for cam, img in item.images.items()]
    return ItemCapture(item_id="t1", sku=sku, frames=frames)


def _ctx() -> StageContext:
    return StageContext(catalog=Catalog(skus=RECORDS))


def _kinds(findings) -> list[str]:
    return [f.kind for f in findings]


@pytest.mark.parametrize("turn", [0, 1, 2, 3])
def test_unturn_box_maps_a_turned_read_back(turn: int) -> None:
    image = np.zeros((40, 100), np.uint8)
    image[5:15, 60:90] = 255  # rows 5-15, columns 60-90
    turned = np.rot90(image, turn)
    ys, xs = np.nonzero(turned)
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    assert unturn_box(box, turn, image.shape[1], image.shape[0]) == pytest.approx((60.0, 5.0, 90.0, 15.0))


class TurnedEngine:
    """Reads the label only on an image turned a quarter (taller than the crop it was given first)."""

    name = "turned"

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.shapes: list[tuple[int, int]] = []

    def read(self, image: np.ndarray) -> list[TextLine]:
        self.shapes.append(image.shape[:2])
        h, w = image.shape[:2]
        if h <= w:  # crops lie long side horizontal: this one is upright
            return []
        # lines near the middle of the image, i.e. on the item
        return [
            TextLine(t, (w / 2 - 20, h / 2 - 30 + 30 * i, w / 2 + 20, h / 2 + 30 * i), 0.99)
            for i, t in enumerate(self.texts)
        ]


def test_sideways_label_is_read_turned_and_boxed_in_the_frame() -> None:
    engine = TurnedEngine(["SIZE", "QUEEN"])
    stage = AttributesStage(engine=engine, check_colour=False, check_identity=False)
    findings = stage(_capture("SHEET-SET-KING"), _ctx())
    assert _kinds(findings) == ["wrong_variant_label"]
    # each view upright, then turned a quarter (the second too, once the first read another value)
    assert len(engine.shapes) == 4 and engine.shapes[1] == engine.shapes[0][::-1]
    assert engine.shapes[3] == engine.shapes[2][::-1]
    assert findings[0].evidence[0].text == "QUEEN"
    _assert_boxed_on_the_item(stage, findings[0].evidence[0])


def _assert_boxed_on_the_item(stage: AttributesStage, ev) -> None:
    """The label's evidence box lies on the item in the frame (mapped back from the turned crop)."""
    x0, y0, x1, y1 = ev.box
    bx0, by0, bx1, by1 = stage._views(_capture("SHEET-SET-KING"), _ctx())[0][ev.camera].box
    assert bx0 <= x0 < x1 <= bx1 and by0 <= y0 < y1 <= by1


class LastTurnEngine:
    """Reads the label only in the last turn of each view (print three quarters round)."""

    name = "last-turn"

    def __init__(self, text: str) -> None:
        self.text = text
        self.calls = 0

    def read(self, image: np.ndarray) -> list[TextLine]:
        self.calls += 1
        if self.calls % len(TURNS):
            return []
        h, w = image.shape[:2]
        return [TextLine(self.text, (w / 2 - 20, h / 2 - 10, w / 2 + 20, h / 2 + 10), 0.99)]


def test_a_label_three_quarters_round_is_read_and_boxed_in_the_frame() -> None:
    engine = LastTurnEngine("QUEEN")
    stage = AttributesStage(engine=engine, check_colour=False, check_identity=False)
    findings = stage(_capture("SHEET-SET-KING"), _ctx())
    assert _kinds(findings) == ["wrong_variant_label"] and TURNS[-1] == 3
    _assert_boxed_on_the_item(stage, findings[0].evidence[0])


class PerViewEngine:
    """Reads a given text on each successive image (one view after another)."""

    name = "per-view"

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.calls = 0

    def read(self, image: np.ndarray) -> list[TextLine]:
        text = self.texts[min(self.calls, len(self.texts) - 1)]
        self.calls += 1
        return [TextLine(text, (10.0, 10.0, 60.0, 40.0), 0.97)]


@pytest.mark.parametrize(
    ("texts", "kind", "reads"),
    [
        (["KING", "QUEEN"], "label_ok", 1),  # settled on the first view
        (["QUEEN", "KING", "KING"], "label_ok", 3),  # one misread, outvoted by the other views
        (["QUEEN", "QUEEN", "KING"], "wrong_variant_label", 3),
        # one view each; the third is read turned either way too
        (["QUEEN", "KING", "SIZE"], "unreadable_label", 2 + len(TURNS)),
    ],
)
def test_other_value_makes_every_view_count(texts: list[str], kind: str, reads: int) -> None:
    engine = PerViewEngine(texts)
    stage = AttributesStage(engine=engine, check_colour=False, check_identity=False)
    item = render_item(RECORDS["SHEET-SET-KING"], seed=1)
    from pipeline.types import Frame

    capture = ItemCapture(
        item_id="v1", sku="SHEET-SET-KING", frames=[Frame.from_array(c, im) for c, im in item.images.items()]
    )
    findings = stage(capture, _ctx())
    assert _kinds(findings) == [kind] and engine.calls == reads


class SlowBlankEngine:
    """Reads nothing, at a CPU cost per call, like OCR on a view without a legible label."""

    name = "slow-blank"

    def __init__(self, cpu_ms: float) -> None:
        self.cpu_ms = cpu_ms
        self.calls = 0

    def read(self, image: np.ndarray) -> list[TextLine]:
        self.calls += 1
        end = time.thread_time() + self.cpu_ms / 1000.0
        while time.thread_time() < end:
            pass
        return []


def test_label_budget_stops_ocr_and_says_so() -> None:
    capture = _capture("SHEET-SET-KING")  # two views: each read in every turn without a budget
    unlimited = SlowBlankEngine(cpu_ms=50.0)
    findings = AttributesStage(engine=unlimited, check_colour=False, check_identity=False)(capture, _ctx())
    assert _kinds(findings) == ["unreadable_label"] and "budget" not in findings[0].message
    limited = SlowBlankEngine(cpu_ms=50.0)
    # the first read and the few ms that take the view's belt smear out leave the budget room
    # for one more read, whichever machine runs it; the second read spends it
    stage = AttributesStage(engine=limited, budget_ms=75.0, check_colour=False, check_identity=False)
    findings = stage(capture, _ctx())
    assert unlimited.calls == 2 * len(TURNS) and limited.calls == 2
    assert _kinds(findings) == ["unreadable_label"] and "budget of 75 ms spent" in findings[0].message


def test_label_reading_past_the_first_pass_stops_near_the_deadline() -> None:
    capture = _capture("SHEET-SET-KING")
    engine = SlowBlankEngine(cpu_ms=1.0)
    stage = AttributesStage(engine=engine, check_colour=False, check_identity=False)
    ctx = _ctx()
    ctx.deadline = time.perf_counter() + 0.1  # less than the reserve left
    findings = stage(capture, ctx)
    assert engine.calls == 1  # one pass always runs, so a label can still be read
    assert _kinds(findings) == ["unreadable_label"] and "deadline was near" in findings[0].message


def test_unreadable_label_goes_to_review() -> None:
    from pipeline.policy import DecisionPolicy

    stage = AttributesStage(engine=FakeEngine(["Percale sheet set"]), check_colour=False)
    findings = stage(_capture("SHEET-SET-KING"), _ctx())
    assert _kinds(findings) == ["unreadable_label"]
    decision = DecisionPolicy().decide("t1", findings, RECORDS["SHEET-SET-KING"])
    assert decision.action.value == "review"


def test_fake_wrong_label_has_frame_box_and_text() -> None:
    stage = AttributesStage(engine=FakeEngine(["SIZE", "QUEEN"]), check_colour=False)
    capture = _capture("SHEET-SET-KING")
    findings = stage(capture, _ctx())
    assert _kinds(findings) == ["wrong_variant_label"]
    ev = findings[0].evidence[0]
    assert ev.text == "QUEEN" and ev.data["expected"] == "KING" and ev.data["read"] == "QUEEN"
    x0, y0, x1, y1 = ev.box
    assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480


def test_sku_without_variant_label_is_not_read() -> None:
    stage = AttributesStage(engine=FakeEngine([]), check_colour=False)
    assert stage(_capture("BOOK-NOVEL-0001"), _ctx()) == []


@pytest.mark.parametrize(
    ("sku", "defects", "seed", "kind"),
    [
        ("SHEET-SET-KING", (), 5, "label_ok"),
        ("SHEET-SET-KING", ("wrong_variant_label",), 5, "wrong_variant_label"),
        ("TEE-BASIC-NAVY-M", ("wrong_variant_label",), 3, "wrong_variant_label"),
    ],
)
def test_rendered_labels_with_real_ocr(sku: str, defects: tuple[str, ...], seed: int, kind: str) -> None:
    stage = AttributesStage(check_colour=False)
    findings = stage(_capture(sku, defects, seed), _ctx())
    assert _kinds(findings) == [kind]
    if kind == "wrong_variant_label":
        assert findings[0].probability >= 0.5
        assert findings[0].evidence[0].data["read"] != findings[0].evidence[0].data["expected"]


def test_shoe_without_box_is_an_acceptable_variant() -> None:
    """The no-shoebox look shows only the number on the tongue: still read, and never flagged."""
    stage = AttributesStage(engine=FakeEngine(["42"]))
    findings = stage(_capture("SNEAKER-RUN-BLU-42", benign=("packaging_variant",)), _ctx())
    assert "wrong_variant_label" not in _kinds(findings) and "wrong_colour" not in _kinds(findings)


@pytest.mark.parametrize(
    "own, nearest, ceiling, flagged",
    [
        (0.30, 0.20, 0.25, True),  # unlike its own SKU and nearer another: wrong item
        (0.22, 0.20, 0.25, False),  # a lookalike sibling is nearer, but the item looks normal for its SKU
        (0.30, 0.35, 0.25, False),  # odd, but nothing else is nearer: left to the anomaly stage
    ],
)
def test_wrong_item_needs_an_item_unlike_its_own_sku(own, nearest, ceiling, flagged) -> None:
    from detectors.attributes.identity import IdentityRead

    read = IdentityRead("A", own, "B", nearest, own - nearest, ceiling)
    assert (read.closer_to_other and read.unlike_own) is flagged
