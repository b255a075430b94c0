"""Lot isolation: decide, with a stated statistical rule, when a whole lot is bad.

Rule (Beta-Binomial): the lot's defect rate theta has prior Beta(k*p0, k*(1-p0)) centred on
the category's base rate p0 with strength k pseudo-items. After n inspected items with d
confirmed defects the posterior is Beta(k*p0 + d, k*(1-p0) + n - d). The lot is quarantined
when P(theta > bad_rate | data) >= confidence, where bad_rate = max(bad_factor * p0,
p0 + min_excess). With the defaults (p0 = 2 %, k = 20, bad_rate = 7 %, confidence 0.95) a lot
is quarantined at 5 confirmed defects in its first 10 items, 6 in 20, 8 in 40 or 14 in 100;
a lot at the base rate (1 in 50) never is.

A printed expiry that disagrees with the lot's inventory record isolates the lot at once:
one confirmed mismatch (a diverted item's confident finding, or a reviewer confirming a
`date_mismatch` label on an item the reads left in doubt) means the inventory system is wrong
for every unit of that lot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scipy.stats import beta

from pipeline.store import Store
from pipeline.types import Action, Verdict

DEFECT_KINDS_EXCLUDED = frozenset(
    {"unreadable", "no_reference", "no_item_found", "unknown_sku", "stage_error", "image_error", "expiry_ok"}
)
IMMEDIATE_KINDS = frozenset({"date_mismatch"})
QUARANTINE_EVENT = "quarantine"


@dataclass(frozen=True)
class LotRule:
    base_rate: float = 0.02
    prior_strength: float = 20.0
    bad_factor: float = 3.0
    min_excess: float = 0.05
    confidence: float = 0.95
    confirm_probability: float = 0.9
    """A finding counts as a confirmed defect at this calibrated probability (or by a reviewer)."""

    def __post_init__(self) -> None:
        if not 0 < self.base_rate < 1:
            raise ValueError(f"base_rate must be in (0, 1), got {self.base_rate}")
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"confidence must be in [0.5, 1), got {self.confidence}")

    @property
    def bad_rate(self) -> float:
        return min(0.99, max(self.bad_factor * self.base_rate, self.base_rate + self.min_excess))

    def posterior(self, inspected: int, defects: int) -> tuple[float, float]:
        a = self.prior_strength * self.base_rate + defects
        b = self.prior_strength * (1 - self.base_rate) + max(inspected - defects, 0)
        return a, b

    def prob_bad(self, inspected: int, defects: int) -> float:
        """P(theta > bad_rate | data)."""
        a, b = self.posterior(inspected, defects)
        return float(beta.sf(self.bad_rate, a, b))


@dataclass(frozen=True)
class LotSettings:
    """The lot rule and the base rate of each category that differs from the rule's default:
    the "lots" section of a policy file, e.g. {"confidence": 0.95, "by_category": {"food_box": 0.03}}."""

    rule: LotRule = field(default_factory=LotRule)
    base_rates: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LotSettings:
        options = dict(data)
        by_category = options.pop("by_category", {})
        try:
            rule = LotRule(**options)
        except TypeError as exc:
            raise ValueError(f"lots: {exc}") from exc
        base_rates = {str(c): float(r) for c, r in dict(by_category).items()}
        for category, rate in base_rates.items():
            if not 0 < rate < 1:
                raise ValueError(f"lots.by_category.{category}: base rate must be in (0, 1), got {rate}")
        return cls(rule, base_rates)


@dataclass
class LotAssessment:
    lot: str
    inspected: int
    defects: int
    mismatches: int
    prob_bad: float
    posterior_mean: float
    quarantine: bool
    reason: str
    rule: dict[str, Any] = field(default_factory=dict)


def confirmed_defect_kinds(verdict: Verdict, rule: LotRule) -> set[str]:
    """Defect kinds in a verdict that count toward the lot's defect rate."""
    if verdict.action is not Action.DIVERT:
        return set()
    return {
        f.kind
        for f in verdict.findings
        if f.kind not in DEFECT_KINDS_EXCLUDED and f.probability >= rule.confirm_probability
    }


def assess(lot: str, inspected: int, defects: int, mismatches: int, rule: LotRule) -> LotAssessment:
    a, b = rule.posterior(inspected, defects)
    p_bad = rule.prob_bad(inspected, defects)
    if mismatches:
        quarantine, reason = True, f"printed expiry disagrees with the lot record on {mismatches} item(s)"
    elif p_bad >= rule.confidence:
        quarantine = True
        reason = (
            f"{defects}/{inspected} confirmed defects: P(defect rate > {rule.bad_rate:.1%}) = {p_bad:.3f}"
            f" >= {rule.confidence}"
        )
    else:
        quarantine, reason = False, f"{defects}/{inspected} confirmed defects: P(bad) = {p_bad:.3f}"
    return LotAssessment(
        lot=lot,
        inspected=inspected,
        defects=defects,
        mismatches=mismatches,
        prob_bad=p_bad,
        posterior_mean=a / (a + b),
        quarantine=quarantine,
        reason=reason,
        rule={"base_rate": rule.base_rate, "bad_rate": rule.bad_rate, "confidence": rule.confidence},
    )


class LotMonitor:
    """Assesses lots from the store's verdicts and labels and emits one quarantine event per bad lot.

    A lot is judged against its category's base rate (`base_rates`, by the category
    `categories` gives its SKU), else the rule's default."""

    def __init__(
        self,
        store: Store,
        rule: LotRule | None = None,
        base_rates: Mapping[str, float] | None = None,
        categories: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.rule = rule or LotRule()
        self.base_rates = dict(base_rates or {})
        self.categories = dict(categories or {})
        """SKU -> category."""

    @classmethod
    def from_settings(
        cls, store: Store, settings: LotSettings | None, categories: Mapping[str, str] | None = None
    ) -> LotMonitor:
        settings = settings or LotSettings()
        return cls(store, settings.rule, settings.base_rates, categories)

    def _lot_category(self, lot: str) -> str | None:
        row = self.store._conn().execute("SELECT sku FROM captures WHERE lot = ? LIMIT 1", (lot,)).fetchone()
        return self.categories.get(row[0]) if row else None

    def _lot_rows(self, lot: str) -> list[tuple[str, str | None]]:
        rows = self.store._conn().execute(
            "SELECT c.item_id, v.verdict_json FROM captures c LEFT JOIN verdicts v ON v.item_id = c.item_id"
            " WHERE c.lot = ?",
            (lot,),
        )
        return [(r[0], r[1]) for r in rows]

    def _reviewer_decisions(self, item_ids: list[str]) -> dict[str, tuple[str, str]]:
        """Latest reviewer (label, decision) per item; a reviewer overrides the model.

        "confirm" of a defect type counts as a defect; "reject", or confirming the item as
        "normal", clears it.
        """
        out: dict[str, str] = {}
        conn = self.store._conn()
        for start in range(0, len(item_ids), 500):
            chunk = item_ids[start : start + 500]
            rows = conn.execute(
                f"SELECT item_id, label, decision FROM labels WHERE item_id IN ({','.join('?' * len(chunk))})"
                " ORDER BY id",
                chunk,
            )
            out.update({r[0]: (r[1], "reject" if r[1] == "normal" else r[2]) for r in rows})
        return out

    def assess_lot(self, lot: str, category: str | None = None) -> LotAssessment:
        rule = self.rule
        category = category or self._lot_category(lot)
        if category and category in self.base_rates:
            rule = LotRule(**{**rule.__dict__, "base_rate": self.base_rates[category]})
        rows = self._lot_rows(lot)
        decisions = self._reviewer_decisions([item_id for item_id, _ in rows])
        inspected = defects = mismatches = 0
        for item_id, verdict_json in rows:
            if verdict_json is None:
                continue
            inspected += 1
            kinds = confirmed_defect_kinds(Verdict.from_json(verdict_json), rule)
            label, decision = decisions.get(item_id, (None, None))
            if decision == "reject":
                kinds = set()
            elif decision == "confirm":
                kinds.add(label)
            if kinds:
                defects += 1
            if kinds & IMMEDIATE_KINDS:
                mismatches += 1
        return assess(lot, inspected, defects, mismatches, rule)

    def lot_of(self, item_id: str) -> str | None:
        row = self.store._conn().execute("SELECT lot FROM captures WHERE item_id = ?", (item_id,)).fetchone()
        return row[0] if row else None

    def observe(self, verdict: Verdict, lot: str | None = None, category: str | None = None) -> LotAssessment | None:
        """Call after each verdict (`lot` is looked up in the store when not given); emits a
        quarantine event the first time a lot turns bad. Only a confirmed defect can turn a lot
        bad (more items without one lower P(bad)), so other verdicts are not assessed: None."""
        if not confirmed_defect_kinds(verdict, self.rule):
            return None  # no store query for the many items without a confirmed defect
        lot = lot or self.lot_of(verdict.item_id)
        return self._review(lot, category, triggered_by=verdict.item_id) if lot else None

    def reviewed(self, item_id: str, category: str | None = None) -> LotAssessment | None:
        """Call after a reviewer's label: a confirmed defect or date mismatch on a reviewed item
        can turn its lot bad, and the quarantine goes out then, not with the lot's next verdict."""
        lot = self.lot_of(item_id)
        return self._review(lot, category, triggered_by=item_id) if lot else None

    def sweep(self) -> list[LotAssessment]:
        """Assess every lot with a diverted item or a confirmed label but no quarantine event yet:
        a verdict committed just before a crash was never observed, and its lot is assessed on
        restart instead of waiting for the lot's next defect."""
        rows = self.store._conn().execute(
            "SELECT DISTINCT c.lot FROM captures c"
            " WHERE c.lot IS NOT NULL AND ("
            "  EXISTS (SELECT 1 FROM verdicts v WHERE v.item_id = c.item_id AND v.action = ?)"
            "  OR EXISTS (SELECT 1 FROM labels l WHERE l.item_id = c.item_id AND l.decision = 'confirm'"
            "   AND l.label != 'normal'))",
            (Action.DIVERT.value,),
        )
        done = {e.payload.get("lot") for e in self.store.events(QUARANTINE_EVENT)}
        return [self._review(lot, None, triggered_by=None) for (lot,) in rows if lot not in done]

    def _review(self, lot: str, category: str | None, triggered_by: str | None) -> LotAssessment:
        assessment = self.assess_lot(lot, category)
        if assessment.quarantine:
            items = [item_id for item_id, _ in self._lot_rows(lot)]
            self.store.add_event(
                None,
                QUARANTINE_EVENT,
                {
                    "dedup_key": f"quarantine:{lot}",
                    "lot": lot,
                    "reason": assessment.reason,
                    "prob_bad": assessment.prob_bad,
                    "inspected": assessment.inspected,
                    "defects": assessment.defects,
                    "items_in_building": items,
                    "triggered_by": triggered_by,
                },
            )
        return assessment
