"""Scoring verdicts against ground truth: per-defect recall, per-finding precision, false diverts."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from pipeline.policy import REVIEW_KINDS, Thresholds
from pipeline.types import Action, GroundTruth, Verdict

DIVERT_P = Thresholds().divert
"""A finding on a diverted item counts as a divert reason from the default divert threshold. A
finding under it (a review-level wrong item naming a size sibling) or of a review-only kind (an
unreadable date) rode along with the divert and did not cause it; counting it made the demo say
that unreadable dates were diverted with 0 % precision."""

# Which true defect types a finding kind is evidence for ("*" = any visible defect).
KIND_TO_TRUTH: dict[str, set[str]] = {
    "expired": {"expired_date"},
    "date_mismatch": {"date_mismatch"},
    "unreadable": {"unreadable_date", "missing_label"},
    # a wrong item shows another SKU's label and colour: those findings are right about it
    "wrong_variant_label": {"wrong_variant_label", "wrong_item"},
    "wrong_colour": {"wrong_colour", "wrong_item"},
    "wrong_item": {"wrong_item"},
    "anomaly": {"*"},
    "crushed_corner": {"crushed_corner"},
    "bent_cover": {"bent_cover"},
    "broken_seal": {"broken_seal"},
    "stain": {"stain"},
}


@dataclass
class Scores:
    items: int = 0
    actions: Counter = field(default_factory=Counter)
    good_items: int = 0
    good_diverted: int = 0
    good_reviewed: int = 0
    per_type: dict[str, dict[str, float]] = field(default_factory=dict)
    per_kind: dict[str, dict[str, float]] = field(default_factory=dict)
    benign: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def false_divert_rate(self) -> float:
        return self.good_diverted / self.good_items if self.good_items else 0.0

    @property
    def good_review_rate(self) -> float:
        return self.good_reviewed / self.good_items if self.good_items else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "actions": dict(self.actions),
            "good_items": self.good_items,
            "false_divert_rate": self.false_divert_rate,
            "good_review_rate": self.good_review_rate,
            "per_defect_type": self.per_type,
            "per_finding_kind": self.per_kind,
            "benign": self.benign,
        }


def _visible_types(truth: GroundTruth) -> set[str]:
    return {d.type for d in truth.defects if d.visible}


def _divert_reason(kind: str, probability: float) -> bool:
    return kind in KIND_TO_TRUTH and kind not in REVIEW_KINDS and probability >= DIVERT_P


def score(pairs: list[tuple[Verdict, GroundTruth]]) -> Scores:
    """`pairs` of (verdict, truth) for the same item."""
    s = Scores()
    type_total: Counter = Counter()
    type_divert: Counter = Counter()
    type_flag: Counter = Counter()
    kind_fired: Counter = Counter()
    kind_right: Counter = Counter()
    benign_total: Counter = Counter()
    benign_flag: Counter = Counter()
    for verdict, truth in pairs:
        s.items += 1
        s.actions[verdict.action.value] += 1
        types = _visible_types(truth)
        flagged = verdict.action is not Action.PASS and not verdict.audit_sample
        if not types:
            s.good_items += 1
            s.good_diverted += verdict.action is Action.DIVERT
            s.good_reviewed += flagged and verdict.action is Action.REVIEW
            for b in truth.benign:
                benign_total[b] += 1
                benign_flag[b] += flagged
        for t in types:
            type_total[t] += 1
            type_divert[t] += verdict.action is Action.DIVERT
            type_flag[t] += flagged
        if verdict.action is Action.DIVERT:
            fired = defaultdict(bool)
            for f in verdict.findings:
                if _divert_reason(f.kind, f.probability) and any(
                    r.startswith(f"{f.stage}:{f.kind}") for r in verdict.reasons
                ):
                    fired[f.kind] = True
            for kind in fired:
                kind_fired[kind] += 1
                wanted = KIND_TO_TRUTH[kind]
                kind_right[kind] += bool(types) if "*" in wanted else bool(types & wanted)
    s.per_type = {
        t: {
            "items": type_total[t],
            "recall_divert": type_divert[t] / type_total[t],
            "recall_flagged": type_flag[t] / type_total[t],
        }
        for t in sorted(type_total)
    }
    s.per_kind = {k: {"diverts": kind_fired[k], "precision": kind_right[k] / kind_fired[k]} for k in sorted(kind_fired)}
    s.benign = {b: {"items": benign_total[b], "flag_rate": benign_flag[b] / benign_total[b]} for b in benign_total}
    return s
