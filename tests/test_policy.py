"""Decision policy: table-driven."""

from __future__ import annotations

import pytest

from pipeline.policy import DecisionPolicy, PolicyConfig, Thresholds
from pipeline.types import Action, CatalogRecord, Finding

FOOD = CatalogRecord(sku="F1", title="Cereal", category="food_box")
BOOK = CatalogRecord(sku="B1", title="Novel", category="book")


def f(kind: str, p: float, stage: str = "s") -> Finding:
    return Finding(stage=stage, kind=kind, score=p, probability=p)


NO_AUDIT = PolicyConfig(audit_rate=0.0)


@pytest.mark.parametrize(
    "findings, record, action",
    [
        ([], FOOD, Action.PASS),
        ([f("expiry_ok", 0.0)], FOOD, Action.PASS),
        ([f("anomaly", 0.1)], FOOD, Action.PASS),
        ([f("anomaly", 0.3)], FOOD, Action.REVIEW),
        ([f("anomaly", 0.9)], FOOD, Action.DIVERT),
        ([f("expired", 0.99)], FOOD, Action.DIVERT),
        ([f("unreadable", 0.0)], FOOD, Action.REVIEW),
        ([f("no_reference", 0.0)], FOOD, Action.REVIEW),
        ([f("stage_error", 1.0)], FOOD, Action.REVIEW),
        ([f("unreadable", 0.0), f("expired", 0.9)], FOOD, Action.DIVERT),
        ([f("anomaly", 0.3), f("anomaly", 0.2)], FOOD, Action.REVIEW),
        ([f("anomaly", 0.3)], None, Action.REVIEW),
    ],
)
def test_default_policy(findings, record, action) -> None:
    assert DecisionPolicy(NO_AUDIT).decide("i1", findings, record).action is action


def test_divert_reasons_name_every_finding() -> None:
    d = DecisionPolicy(NO_AUDIT).decide(
        "i1", [f("expired", 0.95, "ocr_expiry"), f("unreadable", 0.0, "attributes")], FOOD
    )
    assert d.action is Action.DIVERT
    assert d.reasons[0].startswith("ocr_expiry:expired p=0.95") and "attributes:unreadable" in d.reasons[1]


def test_overrides_sku_beats_category_beats_kind() -> None:
    cfg = PolicyConfig(
        audit_rate=0.0,
        by_kind={"anomaly": Thresholds(divert=0.6, review=0.4)},
        by_category={"book": {"anomaly": Thresholds(divert=0.9, review=0.8)}},
        by_sku={"F1": {"anomaly": Thresholds(divert=0.3, review=0.1)}},
    )
    policy = DecisionPolicy(cfg)
    finding = [f("anomaly", 0.5)]
    assert policy.decide("i", finding, BOOK).action is Action.PASS
    assert policy.decide("i", finding, FOOD).action is Action.DIVERT
    other = CatalogRecord(sku="X", title="x", category="toy")
    assert policy.decide("i", finding, other).action is Action.REVIEW


def test_audit_sampling_rate_and_determinism() -> None:
    policy = DecisionPolicy(PolicyConfig(audit_rate=0.05))
    picks = [policy.decide(f"item-{i}", [], FOOD) for i in range(4000)]
    rate = sum(d.audit_sample for d in picks) / len(picks)
    assert 0.04 < rate < 0.06
    assert all(d.action is Action.REVIEW for d in picks if d.audit_sample)
    again = [policy.decide(f"item-{i}", [], FOOD).audit_sample for i in range(4000)]
    assert again == [d.audit_sample for d in picks]


def test_audit_never_downgrades_a_divert() -> None:
    policy = DecisionPolicy(PolicyConfig(audit_rate=1.0))
    assert policy.decide("i", [f("expired", 0.99)], FOOD).action is Action.DIVERT


@pytest.mark.parametrize("divert, review", [(0.2, 0.5), (1.5, 0.1), (0.5, -0.1)])
def test_bad_thresholds_rejected(divert: float, review: float) -> None:
    with pytest.raises(ValueError):
        Thresholds(divert=divert, review=review)


def test_config_from_dict() -> None:
    cfg = PolicyConfig.from_dict(
        {
            "by_category": {"book": {"anomaly": {"divert": 0.8, "review": 0.5}}},
            "audit_rate": 0.0,
            "deadline_action": "divert",
        }
    )
    assert cfg.by_category["book"]["anomaly"].divert == 0.8
    assert cfg.deadline_action is Action.DIVERT


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"defualt": {"divert": 0.6}}, "unknown key(s) 'defualt'"),  # a typo must not leave the defaults in force
        ({"default": {"divret": 0.6}}, "default: unknown key(s) 'divret'"),
        ({"by_kind": {"anomaly": {"divert": "high"}}}, "by_kind.anomaly.divert: expected a number"),
        ({"by_kind": {"anomaly": {"divert": 0.2, "review": 0.5}}}, "by_kind.anomaly: need 0 <= review <= divert"),
        ({"by_category": {"book": 5}}, "by_category.book: expected an object"),
        ({"by_sku": []}, "by_sku: expected an object"),
        ({"audit_rate": 5}, "audit_rate must be within [0, 1]"),
        ({"audit_rate": "often"}, "audit_rate: expected a number"),
        ({"deadline_action": "panic"}, "not a valid Action"),
    ],
)
def test_a_bad_policy_file_says_what_is_wrong(data: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        PolicyConfig.from_dict(data)
    assert message in str(err.value)
