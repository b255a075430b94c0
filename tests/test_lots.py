"""Lot isolation rule and monitor."""

from __future__ import annotations

import itertools

import pytest

from pipeline.lots import QUARANTINE_EVENT, LotMonitor, LotRule, LotSettings, assess
from pipeline.store import Store
from pipeline.types import Action, Finding, Frame, ItemCapture, Verdict

RULE = LotRule()


@pytest.mark.parametrize(
    "inspected, defects, quarantine",
    [
        (50, 1, False),  # at the base rate
        (100, 2, False),
        (10, 5, True),
        (20, 6, True),
        (40, 8, True),
        (40, 3, False),
        (3, 3, False),  # too little evidence yet
        (0, 0, False),
    ],
)
def test_beta_binomial_rule(inspected: int, defects: int, quarantine: bool) -> None:
    assert assess("L", inspected, defects, 0, RULE).quarantine is quarantine


def test_more_defects_never_lower_the_probability() -> None:
    probs = [RULE.prob_bad(40, d) for d in range(41)]
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(probs))


def test_a_single_date_mismatch_isolates_at_once() -> None:
    result = assess("L", 1, 1, 1, RULE)
    assert result.quarantine and "lot record" in result.reason


@pytest.mark.parametrize("kwargs", [{"base_rate": 0}, {"base_rate": 1.2}, {"confidence": 0.2}])
def test_bad_rules_rejected(kwargs) -> None:
    with pytest.raises(ValueError):
        LotRule(**kwargs)


def _record(store: Store, i: int, lot: str, kinds: tuple[str, ...], p: float = 0.95) -> Verdict:
    capture = ItemCapture(item_id=f"I{i}", sku="S", lot=lot, frames=[Frame(camera="top", uri="x.jpg")])
    store.enqueue(capture)
    action = Action.DIVERT if kinds else Action.PASS
    verdict = Verdict(
        item_id=capture.item_id,
        sku="S",
        action=action,
        findings=[Finding(stage="t", kind=k, score=p, probability=p) for k in kinds],
    )
    store.complete(verdict)
    return verdict


def test_monitor_emits_one_quarantine_event_listing_the_items(tmp_path) -> None:
    store = Store(tmp_path / "s.db")
    monitor = LotMonitor(store)
    for i in range(10):
        verdict = _record(store, i, "BAD", ("crushed_corner",) if i % 2 == 0 else ())
        monitor.observe(verdict, "BAD")
    for i in range(10, 60):
        verdict = _record(store, i, "GOOD", ("stain",) if i == 30 else ())
        monitor.observe(verdict, "GOOD")
    (event,) = store.events("quarantine")
    assert event.payload["lot"] == "BAD"
    # 5 defects in the first 9 items trip the rule; the event lists the lot's items seen so far
    assert event.payload["triggered_by"] == "I8"
    assert sorted(event.payload["items_in_building"]) == sorted(f"I{i}" for i in range(9))


def test_reviewer_rejection_removes_a_false_defect(tmp_path) -> None:
    store = Store(tmp_path / "s.db")
    monitor = LotMonitor(store)
    for i in range(10):
        _record(store, i, "L", ("stain",) if i < 5 else ())
    assert monitor.assess_lot("L").defects == 5
    for i in range(3):
        store.add_label(f"I{i}", "stain", "reject", reviewer="qa")
    assert monitor.assess_lot("L").defects == 2


def test_low_probability_findings_do_not_count(tmp_path) -> None:
    store = Store(tmp_path / "s.db")
    for i in range(10):
        _record(store, i, "L", ("stain",), p=0.6)
    assert LotMonitor(store).assess_lot("L").defects == 0


def test_date_mismatch_quarantines_via_monitor(tmp_path) -> None:
    store = Store(tmp_path / "s.db")
    verdict = _record(store, 1, "L9", ("date_mismatch",))
    assert LotMonitor(store).observe(verdict, "L9").quarantine
    assert store.events("quarantine")[0].payload["lot"] == "L9"


def test_reviewer_confirming_a_date_mismatch_isolates_the_lot(tmp_path) -> None:
    """A mismatch the reads left in doubt is a review; the reviewer's confirmation isolates the lot."""
    store = Store(tmp_path / "s.db")
    capture = ItemCapture(item_id="I1", sku="S", lot="L", frames=[Frame(camera="top", uri="x.jpg")])
    store.enqueue(capture)
    finding = Finding(stage="ocr_expiry", kind="date_mismatch", score=0.3, probability=0.4)
    store.complete(Verdict(item_id="I1", sku="S", action=Action.REVIEW, findings=[finding]))
    monitor = LotMonitor(store)
    assert not monitor.assess_lot("L").quarantine
    store.add_label("I1", "stain", "confirm", reviewer="qa")
    assert not monitor.assess_lot("L").quarantine  # a defect, but not a mismatch
    store.add_label("I1", "date_mismatch", "confirm", reviewer="qa")
    assessment = monitor.assess_lot("L")
    assert assessment.quarantine and assessment.mismatches == 1 and "lot record" in assessment.reason


def test_reviewer_marking_an_item_normal_clears_it(tmp_path) -> None:
    store = Store(tmp_path / "s.db")
    for i in range(4):
        _record(store, i, "L", ("stain",))
    store.add_label("I0", "normal", "confirm", reviewer="qa")
    store.add_label("I1", "stain", "confirm", reviewer="qa")
    assert LotMonitor(store).assess_lot("L").defects == 3


def test_a_reviewer_label_sends_the_quarantine_at_once(tmp_path) -> None:
    """The lot's assessment changes with the label; the notice must not wait for its next verdict."""
    store = Store(tmp_path / "s.db")
    capture = ItemCapture(item_id="I1", sku="S", lot="L", frames=[Frame(camera="top", uri="x.jpg")])
    store.enqueue(capture)
    finding = Finding(stage="ocr_expiry", kind="date_mismatch", score=0.3, probability=0.4)
    verdict = Verdict(item_id="I1", sku="S", action=Action.REVIEW, findings=[finding])
    store.complete(verdict)
    monitor = LotMonitor(store)
    assert monitor.observe(verdict) is None  # a review is no confirmed defect
    store.add_label("I1", "date_mismatch", "confirm", reviewer="qa")
    assert monitor.reviewed("I1").quarantine
    (event,) = store.events(QUARANTINE_EVENT)
    assert event.payload["lot"] == "L" and event.payload["triggered_by"] == "I1"


def test_only_a_confirmed_defect_can_turn_a_lot_bad(tmp_path) -> None:
    store = Store(tmp_path / "s.db")
    monitor = LotMonitor(store)
    assert monitor.observe(_record(store, 1, "L", ())) is None
    assessment = monitor.observe(_record(store, 2, "L", ("stain",)))
    assert assessment is not None and (assessment.inspected, assessment.defects) == (2, 1)


def test_sweep_assesses_lots_whose_defects_were_never_observed(tmp_path) -> None:
    """Verdicts committed just before a crash: the restart's sweep sends what observe would have."""
    store = Store(tmp_path / "s.db")
    for i in range(6):
        _record(store, i, "BAD", ("crushed_corner",) if i < 5 else ())
    for i in range(6, 12):
        _record(store, i, "OK", ("stain",) if i == 6 else ())
    monitor = LotMonitor(store)
    assert [a.lot for a in monitor.sweep() if a.quarantine] == ["BAD"]
    assert [e.payload["lot"] for e in store.events(QUARANTINE_EVENT)] == ["BAD"]
    assert [a.lot for a in monitor.sweep()] == ["OK"]  # a quarantined lot is not assessed again


def test_a_lot_is_judged_against_its_categorys_base_rate(tmp_path) -> None:
    """5 confirmed defects in 12 items: bad against a 2 % base rate, not against the 15 % a
    category of fragile goods is known to run at."""
    store = Store(tmp_path / "s.db")
    for i in range(12):
        _record(store, i, "L", ("crushed_corner",) if i < 5 else ())
    settings = LotSettings.from_dict({"by_category": {"glassware": 0.15}})
    assert LotMonitor.from_settings(store, settings).assess_lot("L").quarantine
    fragile = LotMonitor.from_settings(store, settings, categories={"S": "glassware"}).assess_lot("L")
    assert not fragile.quarantine and fragile.rule["base_rate"] == 0.15


@pytest.mark.parametrize(
    ("data", "message"),
    [({"by_category": {"food": 0}}, "lots.by_category.food"), ({"base_rate": 2}, "base_rate"), ({"nope": 1}, "nope")],
)
def test_bad_lot_settings_are_refused(data, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LotSettings.from_dict(data)
