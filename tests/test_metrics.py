"""Scoring verdicts against ground truth."""

from __future__ import annotations

import pytest

from pipeline.metrics import score
from pipeline.types import Action, DefectTruth, Finding, GroundTruth, Verdict


def v(action: Action, kind: str | None = None, audit: bool = False) -> Verdict:
    findings = [Finding(stage="s", kind=kind, score=1, probability=0.9)] if kind else []
    reasons = [f"s:{kind} p=0.90"] if kind and action is not Action.PASS else []
    return Verdict(item_id="i", sku="x", action=action, findings=findings, reasons=reasons, audit_sample=audit)


def t(*types: str, benign: tuple[str, ...] = (), visible: bool = True) -> GroundTruth:
    return GroundTruth(defects=[DefectTruth(type=x, visible=visible) for x in types], benign=list(benign))


def test_recall_precision_and_false_diverts() -> None:
    pairs = [
        (v(Action.DIVERT, "expired"), t("expired_date")),
        (v(Action.REVIEW, "unreadable"), t("expired_date")),
        (v(Action.DIVERT, "anomaly"), t("stain")),
        (v(Action.PASS), t("stain")),
        (v(Action.DIVERT, "anomaly"), t()),  # false divert of a good item
        (v(Action.PASS), t(benign=("other_fc_tote",))),
        (v(Action.REVIEW, "anomaly"), t(benign=("unusual_pose",))),
        (v(Action.REVIEW, audit=True), t()),  # audit samples are not flags
        (v(Action.PASS), t("transit_damage", visible=False)),  # not visible: counts as good
    ]
    s = score(pairs).to_dict()
    assert s["items"] == 9 and s["good_items"] == 5
    assert s["false_divert_rate"] == pytest.approx(1 / 5)
    assert s["good_review_rate"] == pytest.approx(1 / 5)
    assert s["per_defect_type"]["expired_date"] == {"items": 2, "recall_divert": 0.5, "recall_flagged": 1.0}
    assert s["per_defect_type"]["stain"]["recall_divert"] == 0.5
    assert "transit_damage" not in s["per_defect_type"]
    assert s["per_finding_kind"]["expired"] == {"diverts": 1, "precision": 1.0}
    assert s["per_finding_kind"]["anomaly"] == {"diverts": 2, "precision": 0.5}
    assert s["benign"]["unusual_pose"]["flag_rate"] == 1.0 and s["benign"]["other_fc_tote"]["flag_rate"] == 0.0


def test_wrong_kind_is_not_precise() -> None:
    s = score([(v(Action.DIVERT, "expired"), t("stain"))]).to_dict()
    assert s["per_finding_kind"]["expired"]["precision"] == 0.0


@pytest.mark.parametrize(
    ("kind", "probability", "counted"),
    [
        ("anomaly", 0.9, True),
        ("wrong_item", 0.4, False),  # a review-level finding that rode along with the divert
        ("unreadable", 1.0, False),  # a review-only kind never diverts
    ],
)
def test_only_findings_that_can_divert_count_as_divert_reasons(kind: str, probability: float, counted: bool) -> None:
    findings = [
        Finding(stage="a", kind="stain", score=1, probability=0.95),
        Finding(stage="s", kind=kind, score=1, probability=probability),
    ]
    verdict = Verdict(
        item_id="i",
        sku="x",
        action=Action.DIVERT,
        findings=findings,
        reasons=["a:stain p=0.95", f"s:{kind} p={probability:.2f}"],
    )
    kinds = score([(verdict, t("stain"))]).to_dict()["per_finding_kind"]
    assert (kind in kinds) is counted


@pytest.mark.parametrize(("kind", "precision"), [("wrong_colour", 1.0), ("wrong_variant_label", 1.0), ("expired", 0.0)])
def test_a_wrong_items_other_colour_and_label_are_right_reasons(kind: str, precision: float) -> None:
    s = score([(v(Action.DIVERT, kind), t("wrong_item"))]).to_dict()
    assert s["per_finding_kind"][kind]["precision"] == precision
