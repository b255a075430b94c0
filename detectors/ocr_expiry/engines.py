"""OCR engines behind one small interface: an image in, text lines with boxes and scores out.

RapidOCR (PP-OCR ONNX models shipped in the wheel) is the default: on real package photos it
reads far more printed dates than Tesseract. Tesseract stays as a second opinion. Engines are
expensive to build (model loading), so each is built on first use and cached per process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

Box4 = tuple[float, float, float, float]

TEXT_LINES_KEY = "text_lines"
"""Key in `StageContext.shared` under which `ocr_expiry` publishes `dict[camera, list[TextLine]]`:
every line it recognised on each view, boxes in the pixels of that view's localised crop
(`LocalizedView.crop`, or the frame when no item was found), `TextLine.source` naming the pass.
Other stages (attributes) reuse these instead of running OCR on the same crops again."""
TEXT_IMAGES_KEY = "text_images"
"""Key in `StageContext.shared` under which `ocr_expiry` publishes `dict[camera, np.ndarray]`: the
image each view's first pass read, on the pixel grid of its crop (the crop with the belt's motion
smear taken out, see `smear`, or the crop itself), so a later reader of the same view reads what
it read."""

MIN_LINE_SCORE = 0.5
"""Lines recognised with a lower score are dropped (RapidOCR's own `text_score` default)."""

TESSERACT_LANGS = {
    "en": "eng",
    "de": "deu",
    "fr": "fra",
    "es": "spa",
    "it": "ita",
    "pt": "por",
    "ja": "jpn",
    "ko": "kor",
}


@dataclass(frozen=True)
class TextLine:
    """One recognised line: text, axis-aligned box [x0, y0, x1, y1] in the engine's input pixels, score 0-1."""

    text: str
    box: Box4
    confidence: float
    source: str = ""
    """The image pass that read it ("plain", "upscale", "region+dotmatrix3", ...), for evidence and sharing."""
    turned: bool = False
    """Read turned 180°: the text runs right to left and bottom to top in `box`'s pixels."""
    tilt: float = 0.0
    """Angle of the line's long side, in degrees counter-clockwise from the image's x axis, in
    (-90, 90]: about 0 for level print, about 90 for print on its side. Engines that report
    axis-aligned boxes only (Tesseract) leave it 0."""
    extent: tuple[float, float] | None = None
    """(length along the line, height across it) in `box`'s pixels, from the engine's
    quadrilateral: a tilted line's axis-aligned box does not say how tall its text is. None
    where the engine gives axis-aligned boxes only (Tesseract)."""

    @property
    def height(self) -> float:
        return max(1.0, self.box[3] - self.box[1])

    @property
    def width(self) -> float:
        return max(1.0, self.box[2] - self.box[0])

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0


@runtime_checkable
class OcrEngine(Protocol):
    name: str

    def read(self, image: np.ndarray, *, detect_side: int | None = None) -> list[TextLine]:
        """Text lines in an RGB (H, W, 3) or greyscale (H, W) uint8 image. `detect_side`: the
        longest side a text detector looks at the image with (None: the engine's own)."""
        ...


def _quad_box(quad: np.ndarray) -> Box4:
    pts = np.asarray(quad, dtype=np.float64).reshape(-1, 2)
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


def fold_tilt(degrees: float) -> float:
    """An undirected line angle folded into (-90, 90]."""
    folded = (degrees + 90.0) % 180.0 - 90.0
    return 90.0 if folded == -90.0 else folded


def quad_extent(quad: np.ndarray) -> tuple[float, float]:
    """`TextLine.extent` of a text quadrilateral: its mean long and short side lengths."""
    pts = np.asarray(quad, dtype=np.float64).reshape(-1, 2)
    sides = [float(np.hypot(*(pts[(i + 1) % 4] - pts[i]))) for i in range(4)]
    first, second = (sides[0] + sides[2]) / 2.0, (sides[1] + sides[3]) / 2.0
    return (max(first, second), min(first, second))


def quad_tilt(quad: np.ndarray) -> float:
    """`TextLine.tilt` of a text quadrilateral (corners in order around it): the angle of its
    longer side, counter-clockwise with the image's y axis pointing down."""
    pts = np.asarray(quad, dtype=np.float64).reshape(-1, 2)
    first, second = pts[1] - pts[0], pts[3] - pts[0]
    along = first if np.hypot(*first) >= np.hypot(*second) else second
    return fold_tilt(float(np.degrees(np.arctan2(-along[1], along[0]))))


ORIENTATION_SURE = 0.85
"""A line recognised with a lower score is recognised again turned 180° (the better read is kept)."""


DET_MIN_HEIGHT = 32
DET_MAX_ASPECT = 8.0
REC_HEIGHT = 48
REC_MIN_WIDTH = 48
"""Narrowest recogniser input for a line of several characters (pixels at `REC_HEIGHT`)."""
REC_BATCH = 1
"""Lines recognised per call. RapidOCR's defaults (batches of 6, each padded to its widest line
and to 320 px at least) pad most tunnel lines with grey, and the recogniser's cost grows with
width: one line per call at its own width cut recognition from 36-54 to 24-25 ms of CPU per
line on simulated tunnel crops, and read more, not fewer, dates (89 dated tunnel items: 32
expiries read instead of 28; 500 + 300 simulated prints: 96.4 % and 97.3 % instead of 96.2 %
and 97.0 %; real photos 7/7 either way)."""
REC_GLYPH_RATIO = 3.0
"""Lines narrower than this many heights (one or two glyphs: a size sticker's "L") keep
RapidOCR's 320 px input: narrower, a lone "L" reads "1" or "0"."""
REC_GLYPH_WIDTH = 320


class RapidOcrEngine:
    """PP-OCR detection + recognition through onnxruntime, in the calling thread.

    Costs that matter at the conveyor (measured on the shared 2-core machine):
    - onnxruntime's own thread pool spin-waits; under load that doubled both CPU and wall
      time per read, so inspection's sessions run single-threaded (`threads=1`) and parallelism
      comes from the pipeline's stage threads instead. Running in the caller's thread also makes
      `time.thread_time()` an exact measure of an item's OCR compute (`in_thread`). A command
      that reads one image at a time runs each network on several threads that sleep rather
      than spin when idle (`engine_threads`, `session_without_spinning`).
    - The PP-OCR direction classifier misjudges small upside-down print; tunnel crops are
      upright or 180° turned, so the classifier is off and a view whose lines read poorly is
      re-recognised turned 180° (recognition only, on the boxes already found), keeping the
      better read of each line. Detection boxes do not depend on that turn.
    - The detector never enlarges: its long side is capped at `det_limit` (huge photos are
      shrunk); callers enlarge small crops themselves when they choose to.
    - Recognition is most of the cost on tunnel crops (83 % of the expiry stage's CPU): each line
      is recognised at its own width (`REC_BATCH`), lone glyphs at RapidOCR's 320 px.
    """

    name = "rapidocr"
    sizes_detector = True
    """`read(detect_side=...)` sets the text detector's input size (`preprocess.COARSE_DETECT_SIDE`)."""
    default_precision = "fp32"
    """Detector precision unless told otherwise: small faint dates read better in fp32 (see `quantize`)."""

    def __init__(
        self,
        det_limit: int = 960,
        use_cls: bool = False,
        threads: int = 1,
        precision: str | None = None,
        overrides: dict[str, object] | None = None,
    ) -> None:
        from rapidocr import RapidOCR

        from detectors.ocr_expiry.quantize import default_precision, detector_model

        self.precision = precision or default_precision(self.default_precision)
        """Detector precision asked for: "auto" (int8 where built and fast), "int8" or "fp32"."""
        det_model = detector_model(self.precision)
        self.det_precision = "int8" if det_model is not None else "fp32"
        """The precision the detector actually runs in."""
        params: dict[str, object] = {
            "Global.log_level": "error",
            "Global.use_cls": use_cls,
            "Det.limit_type": "max",
            "Det.limit_side_len": det_limit,
            **(overrides or {}),
        }
        if det_model is not None:
            params["Det.model_path"] = str(det_model)
        if threads < 1:
            raise ValueError(f"threads={threads}: an engine needs at least one thread")
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = 1
        params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        self._ocr = RapidOCR(params=params)
        self.threads = threads
        self.in_thread = self.threads == 1
        """Whether all compute runs in the calling thread (see `reader.engine_clock`)."""
        if self.threads > 1:
            for model in (self._ocr._load_det_model(), self._ocr._load_rec_model()):
                model.session.session = session_without_spinning(model.session.session._model_path, self.threads)
        self.use_cls = use_cls
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray, side: int | None = None) -> list[np.ndarray]:
        """Text-line quadrilaterals (4x2, input pixels) in an RGB or greyscale image, found with
        its long side at most `side` (None: `det_limit`)."""
        arr = _bgr(image)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        # The detector misses text on thin strips (a cut-out date line): pad them to a sane shape.
        h, w = arr.shape[:2]
        pad = max(0, (max(DET_MIN_HEIGHT, int(w / DET_MAX_ASPECT)) - h + 1) // 2)
        if pad:
            arr = cv2.copyMakeBorder(arr, pad, pad, 0, 0, cv2.BORDER_REPLICATE)
        with self._lock:
            det = self._ocr._load_det_model()
            default_side = det.limit_side_len
            det.limit_side_len = side or default_side
            try:
                out = det(arr)
            finally:
                det.limit_side_len = default_side
        if out.boxes is None:
            return []
        return [np.asarray(q, dtype=np.float32) - np.array([0.0, pad], np.float32) for q in out.boxes]

    def recognize(self, image: np.ndarray, quads: Sequence[np.ndarray], *, turn180: bool = False) -> list[TextLine]:
        """Recognise the given boxes of an image (one `TextLine` per box, empty text kept)."""
        from rapidocr.ch_ppocr_rec import TextRecInput
        from rapidocr.utils.process_img import get_rotate_crop_image

        if not quads:
            return []
        arr = _bgr(image)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        crops = [get_rotate_crop_image(arr, np.array(q, dtype=np.float32)) for q in quads]
        if turn180:
            crops = [np.ascontiguousarray(c[::-1, ::-1]) for c in crops]
        glyphs = [c.shape[1] < REC_GLYPH_RATIO * c.shape[0] for c in crops]
        read: dict[int, tuple[str, float]] = {}
        with self._lock:
            rec = self._ocr._load_rec_model()
            default_shape, default_batch = rec.rec_image_shape, rec.rec_batch_num
            try:
                for glyph, width in ((True, REC_GLYPH_WIDTH), (False, REC_MIN_WIDTH)):
                    idx = [i for i, g in enumerate(glyphs) if g is glyph]
                    if not idx:
                        continue
                    rec.rec_image_shape = [3, REC_HEIGHT, width]
                    rec.rec_batch_num = REC_BATCH
                    out = rec(TextRecInput(img=[crops[i] for i in idx]))
                    txts, scores = out.txts or ("",) * len(idx), out.scores or (0.0,) * len(idx)
                    read.update(zip(idx, zip(txts, scores, strict=True), strict=True))
            finally:
                rec.rec_image_shape, rec.rec_batch_num = default_shape, default_batch
        return [
            TextLine(
                str(read[i][0]),
                _quad_box(q),
                float(read[i][1]),
                turned=turn180,
                tilt=quad_tilt(q),
                extent=quad_extent(q),
            )
            for i, q in enumerate(quads)
        ]

    def read(self, image: np.ndarray, *, detect_side: int | None = None) -> list[TextLine]:
        if self.use_cls:
            return self._read_with_classifier(image)
        lines = recognize_upright(self, image, self.detect(image, detect_side))
        return [line for line in lines if line.text.strip() and line.confidence >= MIN_LINE_SCORE]

    def _read_with_classifier(self, image: np.ndarray) -> list[TextLine]:
        with self._lock:
            out = self._ocr(_bgr(image))
        if out.txts is None or out.boxes is None:
            return []
        return [
            TextLine(str(text), _quad_box(quad), float(score), tilt=quad_tilt(quad), extent=quad_extent(quad))
            for quad, text, score in zip(out.boxes, out.txts, out.scores, strict=True)
            if str(text).strip()
        ]


def recognize_upright(engine: RapidOcrEngine, image: np.ndarray, quads: Sequence[np.ndarray]) -> list[TextLine]:
    """`engine.recognize`, with upside-down print read the right way up.

    Weak lines are recognised again turned 180° and the better read of each is kept. When the
    turned reads win on balance the whole view is upside down, and its sure lines are
    recognised turned as well: upside down, "2021.08.03" reads "2020.03" at 0.87, a confident
    misread no per-line threshold catches."""
    lines = engine.recognize(image, quads)
    weak = [i for i, line in enumerate(lines) if line.confidence < ORIENTATION_SURE]
    if not weak:
        return lines
    turned = dict(zip(weak, engine.recognize(image, [quads[i] for i in weak], turn180=True), strict=True))
    if sum(turned[i].confidence - lines[i].confidence for i in weak) > 0:
        sure = [i for i in range(len(lines)) if i not in turned]
        turned.update(zip(sure, engine.recognize(image, [quads[i] for i in sure], turn180=True), strict=True))
    for i, t in turned.items():
        if t.confidence > lines[i].confidence:
            lines[i] = t
    return lines


def session_without_spinning(model_path: str, threads: int) -> Any:
    """An onnxruntime CPU session over `threads` threads that sleep when idle. With spinning
    threads a session cost 29 ms for a 320 px line beside a busy core, against 24 ms on one
    thread; without spinning, 19 ms (14 ms on an idle machine)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model_path, sess_options=options, providers=["CPUExecutionProvider"])


def _warm_up_image() -> np.ndarray:
    image = np.full((64, 256, 3), 230, np.uint8)
    cv2.putText(image, "EXP 01/2030", (12, 44), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (20, 20, 20), 2, cv2.LINE_AA)
    return image


WARM_UP_IMAGE = _warm_up_image()
"""A line of print read once by a new thread's engine, so its first real item does not pay for
loading: RapidOCR loads its recogniser only when its detector first finds a line (a blank
image left it unloaded, and the first item paid ~130 ms)."""


def _bgr(image: np.ndarray) -> np.ndarray:
    """RapidOCR takes BGR arrays."""
    return np.ascontiguousarray(image[:, :, ::-1]) if image.ndim == 3 else image


class TesseractEngine:
    """Tesseract 5 (LSTM) on a greyscale image; words are grouped back into lines."""

    name = "tesseract"

    def __init__(self, languages: tuple[str, ...] = ("en",), psm: int = 11) -> None:
        import pytesseract

        self._tess = pytesseract
        installed = set(pytesseract.get_languages(config=""))
        codes = [TESSERACT_LANGS.get(lang, lang) for lang in languages]
        codes = [c for c in codes if c in installed] or ["eng"]
        self.lang = "+".join(dict.fromkeys(codes))
        self.psm = psm

    def read(self, image: np.ndarray, *, detect_side: int | None = None) -> list[TextLine]:
        """`detect_side` is ignored: Tesseract finds its lines at the image's own size."""
        import cv2

        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        data = self._tess.image_to_data(
            grey, lang=self.lang, config=f"--psm {self.psm}", output_type=self._tess.Output.DICT
        )
        lines: dict[tuple[int, int, int], list[int]] = {}
        for i, word in enumerate(data["text"]):
            if word.strip() and float(data["conf"][i]) >= 0:
                key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
                lines.setdefault(key, []).append(i)
        out = []
        for idx in lines.values():
            x0 = min(data["left"][i] for i in idx)
            y0 = min(data["top"][i] for i in idx)
            x1 = max(data["left"][i] + data["width"][i] for i in idx)
            y1 = max(data["top"][i] + data["height"][i] for i in idx)
            text = " ".join(data["text"][i] for i in idx)
            conf = float(np.mean([float(data["conf"][i]) for i in idx])) / 100.0
            out.append(TextLine(text, (float(x0), float(y0), float(x1), float(y1)), conf))
        return out


ENGINES: dict[str, type] = {"rapidocr": RapidOcrEngine, "tesseract": TesseractEngine}
DEFAULT_ENGINE = "rapidocr"


_THREAD = threading.local()
THREADS_ENV = "TUNNELPI_OCR_THREADS"
MAX_READER_THREADS = 4
"""Most threads one read uses (`reader_threads`): the networks are small, and past a few threads
each adds less than it costs."""


_one_at_a_time = 0
"""How many `reading_one_at_a_time` blocks are open."""


@contextmanager
def reading_one_at_a_time() -> Iterator[None]:
    """Within the block, engines are built on `reader_threads()` unless `TUNNELPI_OCR_THREADS`
    says otherwise: for a command that reads one image or one item at a time (`tunnelpi ocr`,
    `tunnelpi investigate`)."""
    global _one_at_a_time
    _one_at_a_time += 1
    try:
        yield
    finally:
        _one_at_a_time -= 1


def engine_threads() -> int:
    """Threads an in-process engine runs its networks on: `TUNNELPI_OCR_THREADS`, else
    `reader_threads()` inside `reading_one_at_a_time`, else 1. Inspection reads items and stages
    side by side, about one thread per core, so one thread per read is right there."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return reader_threads() if _one_at_a_time else 1
    try:
        threads = int(raw)
    except ValueError:
        raise ValueError(f"{THREADS_ENV}={raw!r}: expected a whole number of threads") from None
    if threads < 1:
        raise ValueError(f"{THREADS_ENV}={raw!r}: expected at least 1 thread")
    return threads


def reader_threads() -> int:
    """Threads for a command that reads one image at a time: the cores this process may run on,
    at most `MAX_READER_THREADS`. On 2 cores the 7 real photos read in a median 237 ms instead
    of 367 ms, for 15 % more CPU."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_READER_THREADS, cores or 1))


def get_engine(
    name: str = DEFAULT_ENGINE,
    languages: tuple[str, ...] = ("en",),
    precision: str | None = None,
    threads: int | None = None,
) -> OcrEngine:
    """The engine of that name, built on first use (languages matter to Tesseract only).

    In-process engines (RapidOCR) serve one call at a time, so each thread gets its own: items
    on different inspection workers then read in parallel instead of queueing on one engine.
    Tesseract runs in a subprocess per call and is shared. `precision` picks RapidOCR's text
    detector (see `quantize`; None: the engine's default or TUNNELPI_OCR_PRECISION), `threads`
    the threads its networks run on (None: `engine_threads()`).
    """
    if name not in ENGINES:
        raise ValueError(f"unknown OCR engine {name!r}; choose one of {sorted(ENGINES)}")
    if name == "tesseract":
        return _tesseract(tuple(languages) or ("en",))
    threads = threads or engine_threads()
    engines: dict[tuple[str, str | None, int], OcrEngine] = _THREAD.__dict__.setdefault("engines", {})
    if (name, precision, threads) not in engines:
        engines[name, precision, threads] = ENGINES[name](precision=precision, threads=threads)
    return engines[name, precision, threads]


@cache
def _tesseract(languages: tuple[str, ...]) -> OcrEngine:
    return TesseractEngine(languages=languages)
