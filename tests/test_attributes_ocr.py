"""Label OCR: square boxes are read in four turns, elongated ones as the engine reads them."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.attributes.ocr import LabelOcrEngine, is_latin, read_turning_glyphs
from detectors.ocr_expiry.engines import TextLine


class GlyphEngine:
    """Detects given boxes; recognises a box by how it is turned (a bright bar marks the glyph's top)."""

    def __init__(self, boxes: list[tuple[float, float, float, float]], reads: dict[int, tuple[str, float]]) -> None:
        self.boxes = boxes
        self.reads = reads
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[np.ndarray]:
        return [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32) for x0, y0, x1, y1 in self.boxes]

    def recognize(self, image: np.ndarray, quads, *, turn180: bool = False) -> list[TextLine]:
        out = []
        for q in quads:
            x0, y0 = (int(v) for v in q.min(axis=0))
            x1, y1 = (int(v) for v in q.max(axis=0))
            crop = image[y0:y1, x0:x1]
            if turn180:
                crop = crop[::-1, ::-1]
            self.calls += 1
            text, conf = self.reads.get(_turn_of(crop), ("", 0.0))
            out.append(TextLine(text, (float(x0), float(y0), float(x1), float(y1)), conf))
        return out


def _turn_of(crop: np.ndarray) -> int:
    """Quarter turns counter-clockwise (np.rot90) of a crop whose glyph's top is marked by bright pixels."""
    ys, xs = np.nonzero(crop > 128)
    dy, dx = ys.mean() - (crop.shape[0] - 1) / 2, xs.mean() - (crop.shape[1] - 1) / 2
    if abs(dy) >= abs(dx):
        return 0 if dy < 0 else 2
    return 1 if dx < 0 else 3  # np.rot90 by one quarter moves the top to the left


def _image() -> np.ndarray:
    img = np.zeros((60, 80), np.uint8)
    img[12:15, 12:38] = 255  # the top bar of a glyph in the box (10..40, 10..40)
    return img


@pytest.mark.parametrize(
    ("reads", "text"),
    [
        ({0: ("L", 0.95), 1: ("1", 0.99), 2: ("1", 0.98)}, "L"),  # a sure Latin read stays
        ({0: ("厂", 0.95), 1: ("L", 0.9), 3: ("口", 0.99)}, "L"),  # on its side: a turn reads it in Latin
        ({0: ("L", 0.7), 3: ("L", 0.99)}, "L"),  # an unsure upright read: the surer turn wins
        ({0: ("S", 0.6), 1: ("N", 0.9)}, "N"),
        ({0: ("日", 0.8), 1: ("口", 0.9)}, "日"),  # no Latin read in any turn: the engine's read stays
    ],
)
def test_square_box_keeps_the_most_confident_turn(reads: dict[int, tuple[str, float]], text: str) -> None:
    engine = GlyphEngine([(10, 10, 40, 40)], reads)
    lines = read_turning_glyphs(engine, _image())  # type: ignore[arg-type]
    assert [line.text for line in lines] == [text]
    assert lines[0].box == (10.0, 10.0, 40.0, 40.0)  # reported where the engine found it


def test_elongated_box_is_not_turned_sideways() -> None:
    engine = GlyphEngine([(10, 10, 40, 25)], {0: ("SIZE", 0.99), 1: ("EZIS", 1.0)})
    lines = read_turning_glyphs(engine, _image())  # type: ignore[arg-type]
    assert [line.text for line in lines] == ["SIZE"]
    assert engine.calls == 1


def test_weak_reads_are_dropped() -> None:
    engine = GlyphEngine([(10, 10, 40, 40)], {0: ("口", 0.3), 1: ("L", 0.4)})
    assert read_turning_glyphs(engine, _image()) == []  # type: ignore[arg-type]


def test_label_engine_reads_a_lone_letter_sticker() -> None:
    """One big "L" on a sticker: found, read, and not replaced by a turned read ("1")."""
    import cv2

    sticker = np.full((120, 120, 3), 250, np.uint8)
    cv2.putText(sticker, "L", (38, 92), cv2.FONT_HERSHEY_SIMPLEX, 2.6, (15, 15, 15), 7, cv2.LINE_AA)
    image = np.full((240, 320, 3), (40, 50, 110), np.uint8)
    image[60:180, 100:220] = sticker
    assert [line.text.strip() for line in LabelOcrEngine().read(image)] == ["L"]


@pytest.mark.parametrize(
    ("text", "latin"), [("L", True), ("P16 Pro", True), ("EU 42", True), ("厂", False), ("", False)]
)
def test_latin(text: str, latin: bool) -> None:
    assert is_latin(text) is latin
