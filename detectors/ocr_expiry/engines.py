"""OCR engines behind one small interface: an image in, text lines with boxes and scores out.

RapidOCR (PP-OCR ONNX models shipped in the wheel) is the default: on real package photos it
reads far more printed dates than Tesseract. Tesseract stays as a second opinion. Engines are
expensive to build (model loading), so each is built on first use and cached per process.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import cache
from typing import Protocol, runtime_checkable

import numpy as np

Box4 = tuple[float, float, float, float]

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

    @property
    def height(self) -> float:
        return max(1.0, self.box[3] - self.box[1])

    @property
    def width(self) -> float:
        return max(1.0, self.box[2] - self.box[0])


@runtime_checkable
class OcrEngine(Protocol):
    name: str

    def read(self, image: np.ndarray) -> list[TextLine]:
        """Text lines in an RGB (H, W, 3) or greyscale (H, W) uint8 image."""
        ...


def _quad_box(quad: np.ndarray) -> Box4:
    pts = np.asarray(quad, dtype=np.float64).reshape(-1, 2)
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


class RapidOcrEngine:
    """PP-OCR detection + direction classifier + recognition through onnxruntime.

    The detector's default resizes every image so its short side is 736 px, which upsamples
    small tunnel crops and costs ~2x the time; limiting the long side to `det_limit` keeps a
    median item under the latency budget with the same dates read on real photos.
    """

    name = "rapidocr"

    def __init__(self, det_limit: int = 960, use_cls: bool = True, threads: int = 0) -> None:
        from rapidocr import RapidOCR

        params = {
            "Global.log_level": "error",
            "Global.use_cls": use_cls,
            "Det.limit_type": "max",
            "Det.limit_side_len": det_limit,
        }
        if threads > 0:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        self._ocr = RapidOCR(params=params)
        self._lock = threading.Lock()

    def read(self, image: np.ndarray) -> list[TextLine]:
        arr = np.ascontiguousarray(image[:, :, ::-1]) if image.ndim == 3 else image  # RapidOCR takes BGR arrays
        with self._lock:
            out = self._ocr(arr)
        if out.txts is None or out.boxes is None:
            return []
        return [
            TextLine(str(text), _quad_box(quad), float(score))
            for quad, text, score in zip(out.boxes, out.txts, out.scores, strict=True)
            if str(text).strip()
        ]


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

    def read(self, image: np.ndarray) -> list[TextLine]:
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


def get_engine(name: str = DEFAULT_ENGINE, languages: tuple[str, ...] = ("en",)) -> OcrEngine:
    """The process-wide engine of that name, built on first use (languages matter to Tesseract only)."""
    if name not in ENGINES:
        raise ValueError(f"unknown OCR engine {name!r}; choose one of {sorted(ENGINES)}")
    return _build(name, tuple(languages) if name == "tesseract" else ())


@cache
def _build(name: str, languages: tuple[str, ...]) -> OcrEngine:
    if name == "tesseract":
        return TesseractEngine(languages=languages or ("en",))
    return ENGINES[name]()
