"""OCR tuned for variant stickers: one big word or a single letter ("L", "XL", "P16") on a label.

The expiry engine's detector keeps a box when the mean text score over its bounding rectangle
clears 0.5. A lone thin glyph ("L", "I") fills little of its rectangle and is dropped, so the
label engine scores boxes over their polygon and keeps weaker ones (`LABEL_DET`); what it keeps
must still be recognised as a family value with a confident score before it counts.

A box about as tall as it is wide gives no hint of its text direction: an "L" on its side reads
"厂" or "口" with a confident score. Variant labels are printed in Latin letters and digits, so
a square box whose upright read is not a sure Latin read is recognised in the other three
quarter turns too, and the most confident Latin read kept. A sure Latin read stays: a turned
glyph can read as confidently as an upright one ("L" turned reads "1"). Elongated boxes keep
the engine's own handling (upright, or turned 180° when the upright read is weak).
"""

from __future__ import annotations

import re
import threading

import numpy as np

from detectors.ocr_expiry.engines import (
    MIN_LINE_SCORE,
    ORIENTATION_SURE,
    OcrEngine,
    RapidOcrEngine,
    TextLine,
    _quad_box,
    engine_threads,
    recognize_upright,
)

LABEL_ENGINE = "rapidocr-labels"
LABEL_DET = {"Det.box_thresh": 0.3, "Det.score_mode": "slow"}
"""Detector settings of the label engine (RapidOCR's defaults: 0.5 and "fast")."""
SQUARE_ASPECT = 1.5
"""Boxes whose long side is under this many times their short side are read in four turns."""
GLYPH_MARGIN = 0.08
"""Margin around a square box (fraction of its long side) when it is cut out to be turned."""
_LATIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .,:/-]*")


def is_latin(text: str) -> bool:
    """Letters, digits and the punctuation of a size label only."""
    return bool(_LATIN.fullmatch(text.strip()))


class LabelOcrEngine(RapidOcrEngine):
    """RapidOCR with the label detector settings and four-turn reads of square boxes."""

    name = LABEL_ENGINE
    default_precision = "auto"
    """int8 where built and fast: labels read the same at a fifth of the detection cost (see `quantize`)."""

    def __init__(self, det_limit: int = 960, threads: int = 1, precision: str | None = None) -> None:
        super().__init__(det_limit=det_limit, use_cls=False, threads=threads, precision=precision, overrides=LABEL_DET)

    def read(self, image: np.ndarray) -> list[TextLine]:
        return read_turning_glyphs(self, image)


def read_turning_glyphs(engine: RapidOcrEngine, image: np.ndarray) -> list[TextLine]:
    """Detect, recognise (weak lines again turned 180°), and read square boxes in four turns."""
    quads = engine.detect(image)
    lines = recognize_upright(engine, image, quads)
    h, w = image.shape[:2]
    for i, quad in enumerate(quads):
        x0, y0, x1, y1 = _quad_box(quad)
        bw, bh = x1 - x0, y1 - y0
        if min(bw, bh) <= 0 or max(bw, bh) > SQUARE_ASPECT * min(bw, bh):
            continue
        if is_latin(lines[i].text) and lines[i].confidence >= ORIENTATION_SURE:
            continue
        m = GLYPH_MARGIN * max(bw, bh)
        box = image[int(max(0, y0 - m)) : int(min(h, y1 + m)), int(max(0, x0 - m)) : int(min(w, x1 + m))]
        if box.size == 0:
            continue
        for k in (1, 2, 3):
            turned_box = np.ascontiguousarray(np.rot90(box, k))
            th, tw = turned_box.shape[:2]
            whole = np.array([[0, 0], [tw, 0], [tw, th], [0, th]], np.float32)
            t = engine.recognize(turned_box, [whole])[0]
            better = t.confidence > lines[i].confidence or not is_latin(lines[i].text)
            if is_latin(t.text) and better:
                lines[i] = TextLine(t.text, lines[i].box, t.confidence, lines[i].source)
    return [line for line in lines if line.text.strip() and line.confidence >= MIN_LINE_SCORE]


_THREAD = threading.local()


def label_engine() -> OcrEngine:
    """This thread's label engine, built on first use (RapidOCR serves one call at a time) on
    `engine_threads()` threads."""
    threads = engine_threads()
    engines: dict[int, OcrEngine] = _THREAD.__dict__.setdefault("engines", {})
    if threads not in engines:
        engines[threads] = LabelOcrEngine(threads=threads)
    return engines[threads]
