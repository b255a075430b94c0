"""Supervised fine-grained classifier trained on complaints and reviewer decisions.

See `dataset` (labels from feedback, reviewers, references), `model` (token transformer over
frozen patch tokens), `train` (fit, thresholds, model card), `bundle` (the saved model) and
`stage` (the pipeline stage "supervised"). torch loads on first use of `SupervisedStage`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FINE_TYPES": "dataset",
    "Example": "dataset",
    "build_examples": "dataset",
    "SupervisedBundle": "bundle",
    "TrainConfig": "train",
    "train_supervised": "train",
    "SupervisedStage": "stage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
