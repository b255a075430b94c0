"""The int8 text detector: built from the wheel's model, chosen by precision, reads what fp32 reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from detectors.ocr_expiry import quantize
from detectors.ocr_expiry.engines import RapidOcrEngine
from detectors.ocr_expiry.quantize import (
    QuantizedModelMissing,
    build_int8_detector,
    detector_input,
    detector_model,
    int8_det_path,
)
from tests.test_ocr_engines import render_lines


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TUNNELPI_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory) -> Path:
    """An int8 detector calibrated on a few rendered items (the real build uses 24)."""
    return build_int8_detector(tmp_path_factory.mktemp("q") / "det.int8.onnx", items=6)


def test_precision_choice_without_a_built_model(empty_cache) -> None:
    assert detector_model("fp32") is None
    assert detector_model("auto") is None  # falls back to fp32, with a warning
    with pytest.raises(QuantizedModelMissing, match="quantize-ocr"):
        detector_model("int8")
    with pytest.raises(ValueError, match="unknown detector precision"):
        detector_model("int4")


def test_precision_from_the_environment(empty_cache, monkeypatch) -> None:
    monkeypatch.setenv("TUNNELPI_OCR_PRECISION", "fp32")
    assert RapidOcrEngine().det_precision == "fp32"
    monkeypatch.setenv("TUNNELPI_OCR_PRECISION", "bf16")
    with pytest.raises(ValueError, match="TUNNELPI_OCR_PRECISION"):
        RapidOcrEngine()


def test_cached_name_follows_the_source_model(empty_cache, tmp_path) -> None:
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    a.write_bytes(b"model a")
    b.write_bytes(b"model b")
    assert int8_det_path(a).parent == empty_cache / "ocr"
    assert int8_det_path(a) != int8_det_path(b)


def test_int8_model_is_quantized_and_cached(int8_model, empty_cache, monkeypatch) -> None:
    graph = onnx.load(int8_model).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert int8_model.stat().st_size < quantize.source_det_model().stat().st_size / 2
    # built once: a second call returns the file without rebuilding it
    mtime = int8_model.stat().st_mtime_ns
    assert build_int8_detector(int8_model) == int8_model
    assert int8_model.stat().st_mtime_ns == mtime
    monkeypatch.setattr(quantize, "int8_det_path", lambda source=None: int8_model)
    assert detector_model("int8") == int8_model
    monkeypatch.setattr(quantize, "cpu_has_int8_units", lambda: False)
    assert detector_model("auto") is None  # no int8 units: fp32 is as fast
    assert detector_model("int8") == int8_model


def test_int8_probability_map_matches_fp32(int8_model) -> None:
    """On CPUs with int8 dot-product units, where "auto" detects in int8. Without them (AVX2
    only) onnxruntime's u8s8 kernels saturate and the map drifts (IoU ~0.65 measured on an
    AMD EPYC with AVX2): there "auto" keeps fp32, as `test_int8_model_is_quantized_and_cached`
    checks."""
    import onnxruntime as ort

    if not quantize.cpu_has_int8_units():
        pytest.skip("no int8 dot-product units: int8 detection is not used on this CPU")

    image, _ = render_lines(["EXP 12/2027", "LOT A1234"], size=30)
    x = detector_input(image)
    fp32 = ort.InferenceSession(str(quantize.source_det_model()), providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(str(int8_model), providers=["CPUExecutionProvider"])
    name = fp32.get_inputs()[0].name
    a, b = (s.run(None, {name: x})[0] > 0.3 for s in (fp32, int8))
    assert a.sum() > 100
    assert (a & b).sum() / (a | b).sum() > 0.85


def test_int8_engine_reads_the_same_lines_as_fp32(int8_model, monkeypatch) -> None:
    image, _ = render_lines(["BEST BEFORE 03.2028", "L2409 14:32"], size=28)
    fp32 = RapidOcrEngine(precision="fp32")
    monkeypatch.setattr(quantize, "int8_det_path", lambda source=None: int8_model)
    int8 = RapidOcrEngine(precision="int8")
    assert (fp32.det_precision, int8.det_precision) == ("fp32", "int8")
    texts = [sorted(line.text.replace(" ", "") for line in e.read(image)) for e in (fp32, int8)]
    assert texts[0] == texts[1]
    assert any("03.2028" in t for t in texts[1])


def test_detector_input_shape_and_range() -> None:
    x = detector_input(np.zeros((50, 101, 3), np.uint8))
    assert x.shape == (1, 3, 64, 96) and x.dtype == np.float32
    assert float(x.min()) == -1.0


def test_label_reader_detects_in_int8_and_the_expiry_reader_in_fp32(int8_model, monkeypatch) -> None:
    from detectors.attributes.ocr import LabelOcrEngine

    monkeypatch.delenv("TUNNELPI_OCR_PRECISION", raising=False)
    monkeypatch.setattr(quantize, "int8_det_path", lambda source=None: int8_model)
    monkeypatch.setattr(quantize, "cpu_has_int8_units", lambda: True)
    assert RapidOcrEngine().det_precision == "fp32"
    assert LabelOcrEngine().det_precision == "int8"
    monkeypatch.setenv("TUNNELPI_OCR_PRECISION", "int8")
    assert RapidOcrEngine().det_precision == "int8"
    monkeypatch.setenv("TUNNELPI_OCR_PRECISION", "fp32")
    assert LabelOcrEngine().det_precision == "fp32"


def test_engines_are_cached_per_precision_and_the_stage_names_its_detector(int8_model, monkeypatch) -> None:
    from detectors.ocr_expiry import OcrExpiryStage
    from detectors.ocr_expiry.engines import get_engine

    monkeypatch.delenv("TUNNELPI_OCR_PRECISION", raising=False)
    monkeypatch.setattr(quantize, "int8_det_path", lambda source=None: int8_model)
    monkeypatch.setattr(quantize, "cpu_has_int8_units", lambda: True)
    assert get_engine("rapidocr", precision="int8") is get_engine("rapidocr", precision="int8")
    assert get_engine("rapidocr", precision="int8").det_precision == "int8"
    assert get_engine("rapidocr", precision="fp32").det_precision == "fp32"
    assert OcrExpiryStage().version.endswith("rapidocr-fp32")
    assert OcrExpiryStage(precision="auto").version.endswith("rapidocr-int8")


def test_the_edge_service_reads_dates_with_the_fast_detector(tmp_path, monkeypatch) -> None:
    from pipeline.service import ServiceConfig, build_inspector

    monkeypatch.delenv("TUNNELPI_OCR_PRECISION", raising=False)
    inspector = build_inspector(ServiceConfig(db=tmp_path / "edge.db", stages=["ocr_expiry"]))
    assert inspector.stages[0].precision == "auto"
    monkeypatch.setenv("TUNNELPI_OCR_PRECISION", "fp32")
    assert build_inspector(ServiceConfig(db=tmp_path / "edge.db", stages=["ocr_expiry"])).stages[0].precision == "fp32"
