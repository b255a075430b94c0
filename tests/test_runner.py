"""The runner: stage order, error containment, unknown SKUs, deadlines."""

from __future__ import annotations

import threading
import time

from pipeline.catalog import Catalog
from pipeline.policy import DecisionPolicy, PolicyConfig
from pipeline.runner import Inspector
from pipeline.stages import StageContext
from pipeline.types import Action, CatalogRecord, Finding, Frame, ItemCapture

CATALOG = Catalog(skus={"F1": CatalogRecord(sku="F1", title="Cereal", category="food_box")})
POLICY = DecisionPolicy(PolicyConfig(audit_rate=0.0))


class Localize:
    name, version = "localize", "t1"

    def __call__(self, capture, ctx: StageContext):
        ctx.shared["views"] = {"top": "crop"}
        return []


class NeedsViews:
    name, version = "checker", "t2"

    def __init__(self, kind: str = "anomaly", p: float = 0.0, sleep: float = 0.0) -> None:
        self.kind, self.p, self.sleep = kind, p, sleep

    def __call__(self, capture, ctx: StageContext):
        time.sleep(self.sleep)
        assert ctx.shared["views"] == {"top": "crop"}, "localize must run first"
        return [Finding(stage=self.name, kind=self.kind, score=self.p, probability=self.p)]


class Broken:
    name, version = "broken", "t3"

    def __call__(self, capture, ctx):
        raise RuntimeError("model file missing")


def capture(sku: str = "F1") -> ItemCapture:
    return ItemCapture(item_id="I1", sku=sku, frames=[Frame(camera="top", uri="x.jpg")])


def test_localize_runs_first_and_findings_decide() -> None:
    with Inspector(catalog=CATALOG, stages=[NeedsViews(p=0.9), Localize()], policy=POLICY) as insp:
        verdict = insp.inspect(capture())
    assert verdict.action is Action.DIVERT
    assert verdict.model_versions == {"checker": "t2", "localize": "t1"}
    assert {"localize", "checker", "total"} <= set(verdict.timings_ms)


def test_broken_stage_becomes_review_not_a_crash() -> None:
    with Inspector(catalog=CATALOG, stages=[Localize(), Broken(), NeedsViews()], policy=POLICY) as insp:
        verdict = insp.inspect(capture())
    assert verdict.action is Action.REVIEW
    assert any(f.kind == "stage_error" and "model file missing" in f.message for f in verdict.findings)


def test_unknown_sku_is_reviewed() -> None:
    with Inspector(catalog=CATALOG, stages=[Localize(), NeedsViews()], policy=POLICY) as insp:
        verdict = insp.inspect(capture(sku="NOPE"))
    assert verdict.action is Action.REVIEW and "not in the catalog" in verdict.reasons[0]


def test_missed_deadline_takes_safe_action() -> None:
    stages = [Localize(), NeedsViews(p=0.0, sleep=0.05)]
    with Inspector(catalog=CATALOG, stages=stages, policy=POLICY, deadline_ms=10) as insp:
        verdict = insp.inspect(capture())
    assert verdict.deadline_missed and verdict.action is Action.REVIEW
    assert verdict.reasons[0].startswith("deadline missed")


class Recorder:
    """Records start/end order; `after` names the stages it must follow, `joins` those it
    waits for half-way through."""

    def __init__(
        self,
        name: str,
        log: list[str],
        after: tuple[str, ...] | None = None,
        sleep: float = 0.0,
        joins: tuple[str, ...] = (),
    ) -> None:
        self.name, self.version, self.log, self.sleep, self.joins = name, "1", log, sleep, joins
        if after is not None:
            self.after = after

    def __call__(self, capture, ctx):
        self.log.append(f"start:{self.name}")
        time.sleep(self.sleep)
        for other in self.joins:
            ctx.wait(other)
            self.log.append(f"joined:{self.name}")
        self.log.append(f"end:{self.name}")
        return []


def test_dependent_stage_waits_and_independent_ones_overlap() -> None:
    log: list[str] = []
    stages = [
        Recorder("text_user", log, after=("reader",)),
        Recorder("reader", log, sleep=0.1),
        Recorder("other", log, sleep=0.1),
        Recorder("localize", log),
    ]
    with Inspector(catalog=CATALOG, stages=stages, policy=POLICY) as insp:
        insp.inspect(capture())
    assert log.index("end:localize") < log.index("start:reader")
    assert log.index("end:reader") < log.index("start:text_user")
    assert log.index("start:other") < log.index("end:reader"), "independent stages run side by side"


def test_joining_stage_starts_early_and_waits_part_way() -> None:
    log: list[str] = []
    stages = [
        Recorder("localize", log),
        Recorder("labels", log, sleep=0.02, joins=("looks",)),  # listed first: ordering must not depend on it
        Recorder("looks", log, sleep=0.15),
    ]
    with Inspector(catalog=CATALOG, stages=stages, policy=POLICY) as insp:
        insp.inspect(capture())
    assert log.index("start:labels") < log.index("end:looks"), "the joining stage does not wait to start"
    assert log.index("end:looks") < log.index("joined:labels")


def test_joining_a_stage_that_raised_does_not_raise() -> None:
    log: list[str] = []
    with Inspector(
        catalog=CATALOG, stages=[Localize(), Broken(), Recorder("user", log, joins=("broken",))], policy=POLICY
    ) as insp:
        verdict = insp.inspect(capture())
    assert "joined:user" in log and any(f.kind == "stage_error" for f in verdict.findings)


class DeadlineReader:
    """Records whether optional work was still allowed when it ran."""

    name, version = "reader", "1"

    def __init__(self) -> None:
        self.allowed: list[bool] = []
        self.deadline: float | None = None

    def __call__(self, capture, ctx):
        self.deadline = ctx.deadline
        self.allowed.append(ctx.optional_work_allowed(reserve_ms=300))
        return []


def test_stages_see_the_deadline_and_leave_out_optional_work_near_it() -> None:
    reader = DeadlineReader()
    with Inspector(catalog=CATALOG, stages=[Localize(), reader], policy=POLICY, deadline_ms=1000) as insp:
        insp.inspect(capture())  # arrived now: 1 s left
        insp.inspect(capture(), started=time.perf_counter() - 0.8)  # waited 0.8 s: 0.2 s left
    assert reader.allowed == [True, False]
    with Inspector(catalog=CATALOG, stages=[Localize(), reader], policy=POLICY) as insp:
        insp.inspect(capture(), started=time.perf_counter() - 60)
    assert reader.deadline is None and reader.allowed[-1] is True  # no deadline: batch runs do everything


def test_circular_dependencies_are_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="circular"):
        Inspector(catalog=CATALOG, stages=[Recorder("a", [], after=("b",)), Recorder("b", [], after=("a",))])


class PerThreadModel(NeedsViews):
    """Loads a model once per thread, as the OCR engines do; records the threads it warmed."""

    def __init__(self) -> None:
        super().__init__()
        self.warmed: set[str] = set()
        self.failing = False

    def warm_up(self) -> None:
        if self.failing:
            raise RuntimeError("model file missing")
        self.warmed.add(threading.current_thread().name)


def test_warm_up_loads_every_stage_thread_once() -> None:
    stage = PerThreadModel()
    with Inspector(catalog=CATALOG, stages=[Localize(), stage, Broken()], policy=POLICY) as inspector:
        assert inspector.warm_up() == 3  # one pool thread per stage, two at least
        assert len(stage.warmed) == 3 and all(name.startswith("stage") for name in stage.warmed)
        stage.failing = True  # a failing warm-up is logged; the stage still loads on first use
        assert inspector.warm_up() == 3
        assert inspector.inspect(capture()).action is Action.REVIEW  # Broken: a review, not a crash
    with Inspector(catalog=CATALOG, stages=[Localize()], policy=POLICY) as plain:
        assert plain.warm_up() == 0
