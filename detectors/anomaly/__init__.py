"""Anomaly ensemble: catalog normal banks per SKU, calibrated member fusion, heatmap evidence.

Heavy modules (torch) load on first use so that importing the package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AnomalyModel": "model",
    "ModelConfig": "model",
    "NoReference": "model",
    "ItemResult": "model",
    "Bank": "bank",
    "BankVersionError": "bank",
    "RobustScaler": "calibration",
    "TailCalibrator": "calibration",
    "CalibrationError": "calibration",
    "FeaturelessImage": "prepare",
    "export_onnx": "export",
    "OnnxRuntime": "export",
    "AnomalyStage": "stage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
