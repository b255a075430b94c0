"""Runs the stages over one capture and turns their findings into a `Verdict`.

`localize` runs first and publishes the crops; the other stages then run side by side on a
thread pool (the ONNX/torch/OCR kernels release the GIL). A stage that raises becomes a
`stage_error` finding (review), never a lost item; a verdict that misses its deadline takes
the policy's safe action and says so.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pipeline.catalog import Catalog
from pipeline.imageio import ImageError
from pipeline.policy import DecisionPolicy
from pipeline.stages import Stage, StageContext, load_stage
from pipeline.types import Finding, ItemCapture, Verdict

FIRST_STAGES = ("localize",)
"""Stages every other stage waits for unless it names its own `after`."""


def stage_dependencies(stage: Stage) -> tuple[str, ...]:
    """A stage's `after` attribute, else localize for every stage but localize itself."""
    after = getattr(stage, "after", None)
    if after is not None:
        return tuple(after)
    return () if stage.name in FIRST_STAGES else FIRST_STAGES


def stage_joins(stage: Stage) -> tuple[str, ...]:
    """A stage's `joins`: stages it waits for part-way (`StageContext.wait`), not before it starts."""
    return tuple(getattr(stage, "joins", ()) or ())


log = logging.getLogger("tunnelpi.runner")


@dataclass
class Inspector:
    """Stages + catalog + policy: `inspect(capture) -> Verdict`."""

    catalog: Catalog
    stages: list[Stage]
    policy: DecisionPolicy = field(default_factory=DecisionPolicy)
    model_dir: Path | None = None
    today: date | None = None
    deadline_ms: float | None = None
    config: dict[str, Any] = field(default_factory=dict)
    max_workers: int = 2

    def __post_init__(self) -> None:
        names = [s.name for s in self.stages]
        self._deps = {s.name: tuple(d for d in stage_dependencies(s) if d in names) for s in self.stages}
        joins = {s.name: tuple(d for d in stage_joins(s) if d in names) for s in self.stages}
        self._order: list[Stage] = []
        pending = list(self.stages)
        # Dependency order (joined stages count): a stage only ever waits on one submitted
        # before it, so the pool's first-in-first-out queue cannot deadlock.
        while pending:
            ready = [
                s
                for s in pending
                if all(d in {o.name for o in self._order} for d in self._deps[s.name] + joins[s.name])
            ]
            if not ready:
                raise ValueError(f"circular stage dependencies among {[s.name for s in pending]}")
            self._order += ready
            pending = [s for s in pending if s not in ready]
        # A stage waiting on another holds a thread, so there is one per stage at least.
        self._workers = max(self.max_workers, len(self.stages))
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="stage")

    def warm_up(self, timeout_s: float = 120.0) -> int:
        """Let every stage thread load what it builds on first use (a stage's optional
        `warm_up()`: the OCR engines are one per thread), so the first items after a start do
        not miss their deadline loading models. Returns the number of threads warmed.

        One task per pool thread, held at a barrier until all are running, so each lands on a
        thread of its own; a stage whose warm-up fails is logged and left to load on first use."""
        stages = [s for s in self.stages if callable(getattr(s, "warm_up", None))]
        if not stages:
            return 0
        barrier = threading.Barrier(self._workers)

        def warm() -> None:
            with suppress(threading.BrokenBarrierError):  # a busy pool: warm whichever thread this is
                barrier.wait(timeout_s)
            for stage in stages:
                try:
                    stage.warm_up()  # type: ignore[attr-defined]
                except Exception:
                    log.exception("warm-up of stage %s failed; it loads on first use", stage.name)

        futures = [self._pool.submit(warm) for _ in range(self._workers)]
        for future in futures:
            future.result(timeout_s)
        return len(futures)

    @classmethod
    def from_names(
        cls,
        names: list[str],
        catalog: Catalog,
        stage_kwargs: dict[str, dict[str, Any]] | None = None,
        model_dir: Path | None = None,
        **kwargs: Any,
    ) -> Inspector:
        """Stages by registry name; each factory that takes `model_dir` gets the shared model folder."""
        stage_kwargs = stage_kwargs or {}
        stages = [load_stage(n, model_dir=model_dir, **stage_kwargs.get(n, {})) for n in names]
        return cls(catalog=catalog, stages=stages, model_dir=model_dir, **kwargs)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Inspector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run_stage(self, stage: Stage, capture: ItemCapture, ctx: StageContext) -> tuple[list[Finding], float]:
        start = time.perf_counter()
        try:
            findings = list(stage(capture, ctx))
        except ImageError as exc:
            findings = [Finding(stage=stage.name, kind="image_error", score=1.0, probability=1.0, message=str(exc))]
        except Exception as exc:  # a broken stage must not lose the item
            findings = [
                Finding(
                    stage=stage.name,
                    kind="stage_error",
                    score=1.0,
                    probability=1.0,
                    message=f"{type(exc).__name__}: {exc}",
                )
            ]
        return findings, (time.perf_counter() - start) * 1000.0

    def _run_all(self, capture: ItemCapture, ctx: StageContext) -> list[tuple[list[Finding], float]]:
        """Every stage starts as soon as the stages it depends on have finished."""
        futures: dict[str, Future] = {}

        def wait(name: str) -> None:
            if name in futures:
                futures[name].exception()  # finished, whether or not it raised

        ctx.waiter = wait

        def run(stage: Stage) -> tuple[list[Finding], float]:
            for dep in self._deps[stage.name]:
                futures[dep].result()
            return self._run_stage(stage, capture, ctx)

        for stage in self._order:
            futures[stage.name] = self._pool.submit(run, stage)
        return [futures[s.name].result() for s in self.stages]

    def inspect(self, capture: ItemCapture, started: float | None = None, backlog: int = 0) -> Verdict:
        """Inspect one item; `started` is the perf_counter time the capture arrived (for the
        deadline), `backlog` the items waiting behind it (`StageContext.backlog`)."""
        started = time.perf_counter() if started is None else started
        record = self.catalog.skus.get(capture.sku)
        ctx = StageContext(
            catalog=self.catalog,
            today=self.today or date.today(),
            model_dir=self.model_dir,
            config=self.config,
            backlog=backlog,
            deadline=None if self.deadline_ms is None else started + self.deadline_ms / 1000.0,
        )
        findings: list[Finding] = []
        timings: dict[str, float] = {}
        if record is None:
            findings.append(
                Finding(
                    stage="runner",
                    kind="unknown_sku",
                    score=1.0,
                    probability=1.0,
                    message=f"SKU {capture.sku!r} is not in the catalog",
                )
            )
        for stage, (out, ms) in zip(self.stages, self._run_all(capture, ctx), strict=True):
            findings += out
            timings[stage.name] = round(ms, 2)
        decision = self.policy.decide(capture.item_id, findings, record)
        total_ms = (time.perf_counter() - started) * 1000.0
        timings["total"] = round(total_ms, 2)
        action, reasons = decision.action, list(decision.reasons)
        missed = self.deadline_ms is not None and total_ms > self.deadline_ms
        if missed:
            reasons.insert(0, f"deadline missed ({total_ms:.0f} ms > {self.deadline_ms:.0f} ms): safe action taken")
            action = self.policy.config.deadline_action
        return Verdict(
            item_id=capture.item_id,
            sku=capture.sku,
            action=action,
            reasons=reasons,
            findings=findings,
            model_versions={s.name: s.version for s in self.stages},
            timings_ms=timings,
            deadline_missed=missed,
            audit_sample=decision.audit_sample,
            audit_rate=self.policy.config.audit_rate,
        )
