"""The stage protocol and the one registry of stages.

A stage looks at one `ItemCapture` and returns `Finding`s. Stages never import each other;
what one stage computes for the others (the localised crops) travels in `StageContext.shared`.
The registry maps names to import paths so that importing `pipeline` never pulls in torch.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pipeline.catalog import Catalog
from pipeline.types import Finding, ItemCapture

OPTIONAL_WORK_RESERVE_MS = 300.0
"""Optional passes (OCR fallbacks, further label reads) start only while more than this is left
before the item's deadline: a pass takes ~100-450 ms of a core, and a verdict past the deadline
is the safe action, so a pass that cannot finish in time only delays the items behind it."""


@dataclass
class StageContext:
    """Per-item context handed to every stage."""

    catalog: Catalog
    today: date = field(default_factory=date.today)
    model_dir: Path | None = None
    shared: dict[str, Any] = field(default_factory=dict)
    """Results one stage publishes for later ones (e.g. "crops": camera -> localised crop)."""
    config: dict[str, Any] = field(default_factory=dict)
    backlog: int = 0
    """Items waiting for a worker when this one started (the edge service's queue; 0 in batch
    runs). A stage may leave out optional work while others wait, saying so in its finding."""
    deadline: float | None = None
    """`time.perf_counter()` time by which the verdict is due (the edge service's divert
    deadline); None: no deadline (batch runs). A verdict later than this takes the safe action
    whatever the stages found, so optional work that cannot finish before it is left out."""
    waiter: Callable[[str], None] | None = None
    """Set by the runner: blocks until the named stage of this item has finished."""

    def wait(self, stage: str) -> None:
        """Block until `stage` has finished for this item (at once outside a runner). For a
        stage that needs another's results only for part of its work (see `Stage.joins`)."""
        if self.waiter is not None:
            self.waiter(stage)

    def optional_work_allowed(self, reserve_ms: float | None = None) -> bool:
        """Whether optional work may still start: more than `reserve_ms` (default
        `OPTIONAL_WORK_RESERVE_MS`) left before the deadline."""
        reserve = OPTIONAL_WORK_RESERVE_MS if reserve_ms is None else reserve_ms
        return self.deadline is None or time.perf_counter() < self.deadline - reserve / 1000.0


@runtime_checkable
class Stage(Protocol):
    """One detector step. Optional attributes the runner reads: `after` (stages that must have
    finished before this one starts; default localize) and `joins` (stages it waits for
    part-way through `StageContext.wait`)."""

    name: str
    version: str

    def __call__(self, capture: ItemCapture, ctx: StageContext) -> list[Finding]: ...


STAGES: dict[str, str] = {
    "localize": "detectors.localize:LocalizeStage",
    "ocr_expiry": "detectors.ocr_expiry:OcrExpiryStage",
    "anomaly": "detectors.anomaly:AnomalyStage",
    "attributes": "detectors.attributes:AttributesStage",
    "supervised": "detectors.supervised:SupervisedStage",
}
"""Stage name -> "module:factory". The only place stages are registered."""


DEFAULT_STAGES: tuple[str, ...] = ("localize", "ocr_expiry", "anomaly", "attributes", "supervised")
"""What `inspect`, `serve` and `reaudit` run unless told otherwise."""


def register_stage(name: str, target: str) -> None:
    """Add a stage (built-in or plugin) by import path, e.g. "mypkg.stages:MyStage"."""
    if ":" not in target:
        raise ValueError(f"stage target must look like 'module:factory', got {target!r}")
    STAGES[name] = target


def load_stage(name: str, model_dir: Path | None = None, **kwargs: Any) -> Stage:
    """Build a registered stage; `model_dir` goes to factories that take one (the shared model folder)."""
    try:
        target = STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; registered: {sorted(STAGES)}") from None
    module_name, attr = target.split(":", 1)
    factory = getattr(importlib.import_module(module_name), attr)
    if model_dir is not None and _accepts(factory, "model_dir"):
        kwargs.setdefault("model_dir", model_dir)
    stage = factory(**kwargs)
    if not isinstance(stage, Stage):
        raise TypeError(f"{target} did not build a Stage (needs name, version and __call__)")
    return stage


def _accepts(factory: Any, parameter: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return parameter in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
