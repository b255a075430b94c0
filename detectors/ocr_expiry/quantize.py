"""An int8 copy of RapidOCR's text detector, built on this machine from the model in the wheel.

Text detection is most of the OCR cost at the conveyor (a 640 px crop: ~330 ms of one core in
fp32). Static int8 quantization (QDQ, per-channel weights) runs the same network ~5x faster on
CPUs with int8 dot-product units (x86 VNNI/AMX, Arm dotprod), and the probability map it
draws matches fp32's closely enough that the boxes, and the dates and labels read in them, are
the same (see `bench/bench_ocr.py` and the README's table).

Nothing is downloaded: the fp32 model ships in the `rapidocr` wheel and the calibration
images are rendered by the simulator (packages, labels and date prints on belt and tote, as
the engines see them), so the same int8 file is built on every machine with the same
packages. The file lives in a cache folder (`TUNNELPI_CACHE`, default ~/.cache/tunnelpi)
under a name that carries the fp32 model's digest; `make setup` builds it
(`tunnelpi quantize-ocr`). Without it, or on a CPU without int8 units, engines use fp32.

The label reader (size/variant stickers, crops enlarged to 640 px) detects in int8 by default:
it read the same labels in a fifth of the detection time. The expiry reader stays fp32 by
default: on small tunnel prints int8 read 5 of 27 simulated dated items against fp32's 7, and a
date missed sends a good item to review. `TUNNELPI_OCR_PRECISION` overrides both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger("tunnelpi.ocr")

QUANTIZER_VERSION = 1
DET_MODEL_NAME = "PP-OCRv6_det_small.onnx"
CALIBRATION_ITEMS = 24
"""Rendered items whose views calibrate the activation ranges (two views each)."""
CALIBRATION_SIDE = 640
"""Views are enlarged to this long side (at most 3x), as the label reader feeds the detector."""
PRECISIONS = ("auto", "int8", "fp32")
INT8_CPU_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")
"""/proc/cpuinfo flags of int8 dot-product units; without one, int8 convolutions are no faster."""


class QuantizedModelMissing(FileNotFoundError):
    """int8 detection was asked for but the int8 model has not been built on this machine."""


def cache_dir() -> Path:
    return Path(os.environ.get("TUNNELPI_CACHE") or Path.home() / ".cache" / "tunnelpi")


def source_det_model() -> Path:
    """The fp32 detector inside the rapidocr wheel."""
    import rapidocr

    path = Path(rapidocr.__file__).parent / "models" / DET_MODEL_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the rapidocr wheel's detector is missing")
    return path


@cache
def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def int8_det_path(source: Path | None = None) -> Path:
    """Where the int8 detector for `source` (default: the wheel's) is, or would be, cached."""
    source = source or source_det_model()
    return cache_dir() / "ocr" / f"{source.stem}.{_digest(source)}.q{QUANTIZER_VERSION}.int8.onnx"


@cache
def cpu_has_int8_units() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set(text.split())
    return any(f in flags for f in INT8_CPU_FLAGS)


def detector_model(precision: str = "auto") -> Path | None:
    """The detector file an engine should load: the int8 one, or None for the wheel's fp32.

    "auto": int8 when it is built and the CPU has int8 dot-product units; "int8": int8 or
    `QuantizedModelMissing`; "fp32": always the wheel's model."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown detector precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "fp32":
        return None
    path = int8_det_path()
    if path.is_file():
        return path if precision == "int8" or cpu_has_int8_units() else None
    if precision == "int8":
        raise QuantizedModelMissing(f"{path} not built; run `tunnelpi quantize-ocr`")
    _warn_missing(path)
    return None


@cache
def _warn_missing(path: Path) -> None:
    log.warning("int8 OCR detector %s not built (run `tunnelpi quantize-ocr`); detecting text in fp32", path)


def effective_precision(precision: str | None = None, fallback: str = "auto") -> str:
    """The precision ("int8" or "fp32") an engine built now with `precision` detects text in."""
    return "int8" if detector_model(precision or default_precision(fallback)) is not None else "fp32"


def default_precision(fallback: str = "auto") -> str:
    """`TUNNELPI_OCR_PRECISION` (auto, int8 or fp32) when set, else the engine's own default."""
    value = os.environ.get("TUNNELPI_OCR_PRECISION", fallback).strip().lower() or fallback
    if value not in PRECISIONS:
        raise ValueError(f"TUNNELPI_OCR_PRECISION={value!r}; choose one of {PRECISIONS}")
    return value


# -- building -------------------------------------------------------------------------


def calibration_views(items: int = CALIBRATION_ITEMS, seed: int = 4242) -> list[np.ndarray]:
    """Localised, enlarged views of simulated items across the catalog (RGB)."""
    from detectors.localize import localize
    from tunnel_sim import render_item
    from tunnel_sim.catalog import catalog_records

    records = catalog_records()
    rng = np.random.default_rng(seed)
    views: list[np.ndarray] = []
    for k in range(items):
        record = records[k % len(records)]
        item = render_item(record, seed=seed + k, cameras=("top", "left", "right"))
        cams = list(item.images)
        for cam in rng.choice(cams, size=min(2, len(cams)), replace=False):
            view = localize(item.images[cam], str(cam))
            crop = view.crop if view.found else item.images[cam]
            scale = min(3.0, CALIBRATION_SIDE / max(crop.shape[:2]))
            views.append(cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC))
    return views


def detector_input(image: np.ndarray) -> np.ndarray:
    """RGB uint8 -> the detector's (1, 3, H, W) input: BGR, sides rounded to 32, scaled to [-1, 1]."""
    h, w = image.shape[:2]
    size = (max(32, round(w / 32) * 32), max(32, round(h / 32) * 32))
    x = cv2.resize(np.ascontiguousarray(image[:, :, ::-1]), size).astype(np.float32) / 255.0
    return ((x - 0.5) / 0.5).transpose(2, 0, 1)[None].astype(np.float32)


def build_int8_detector(out: Path | None = None, *, force: bool = False, items: int = CALIBRATION_ITEMS) -> Path:
    """Quantize the wheel's detector (static, QDQ, per-channel int8 weights, uint8 activations)."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = source_det_model()
    out = Path(out) if out is not None else int8_det_path(source)
    if out.is_file() and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    inputs = [detector_input(v) for v in calibration_views(items)]
    model = onnx.load(source)
    input_name = model.graph.input[0].name

    class Views(CalibrationDataReader):
        def __init__(self) -> None:
            self._it: Iterator[np.ndarray] = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {input_name: x}

    with tempfile.TemporaryDirectory(prefix="tunnelpi-quant-") as tmp:
        # per-channel QDQ needs DequantizeLinear's axis (opset 13); the wheel's model is opset 11
        upgraded, prepared = Path(tmp) / "opset17.onnx", Path(tmp) / "prepared.onnx"
        onnx.save(version_converter.convert_version(model, 17), upgraded)
        quant_pre_process(str(upgraded), str(prepared), skip_symbolic_shape=True)
        partial = out.with_name(out.name + ".partial")  # same folder: the rename below is atomic
        quantize_static(
            str(prepared),
            str(partial),
            Views(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        os.replace(partial, out)
    meta = {
        "source": str(source),
        "source_sha256_16": _digest(source),
        "quantizer_version": QUANTIZER_VERSION,
        "calibration_views": len(inputs),
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return out
