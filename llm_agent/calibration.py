"""A report's confidence learned from investigations whose root cause was confirmed.

Each rule of `rootcause.decide` states a confidence reasoned from its evidence: a label read
as another size is strong, damage the tunnel did not see is weak. Whether "60 %" then means
right six times in ten depends on the line's detectors, so a site that confirms the root
cause of past complaints (a returned item opened, a seller's answer, an audit) can calibrate
the statements: every confirmed complaint is investigated again, and each rule's confidence
becomes how often it was right, shrunk toward its own statement by `PRIOR_WEIGHT` pseudo
investigations so that a rule seen twice does not claim 0 or 100 %. The rule that decided is
the unit: one root cause is reached by rules of very different strength.

The calibration belongs to the model folder the store was inspected with
(`MODEL_FILE`, loaded by `investigate` unless one is given), since what the detectors miss is
what makes a rule wrong. The file records how many confirmed investigations back each rule,
and a report says which it used.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llm_agent.taxonomy import RootCause
from pipeline.jsonl import JsonlError, parse_jsonl

CALIBRATION_VERSION = 1
PRIOR_WEIGHT = 8.0
"""How many confirmed investigations a rule's own confidence counts for."""
MODEL_FILE = Path("investigator") / "calibration.json"
"""Where a model folder keeps its calibration."""


class CalibrationError(ValueError):
    """A calibration or confirmed-complaints file that cannot be used."""


@dataclass(frozen=True)
class Outcome:
    """One confirmed investigation: the rule that decided, what it stated, whether it was right."""

    rule: str
    stated: float
    right: bool


@dataclass(frozen=True)
class RuleTally:
    n: int
    right: int
    stated: float
    """The rule's own confidence, averaged over its outcomes (for the record; the report's own is used)."""


@dataclass(frozen=True)
class ConfirmedComplaint:
    """A past complaint and the root cause a person confirmed for it."""

    item_id: str
    text: str
    root_cause: RootCause
    complaint_id: str | None = None

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> ConfirmedComplaint:
        """`{"item_id", "text" (or "complaint"), "root_cause"}`, or a recorded complaint whose
        confirmed cause sits under "truth" (a simulated shift's feedback.jsonl)."""
        truth = row.get("truth")
        cause = row.get("root_cause") or (truth.get("root_cause") if isinstance(truth, dict) else None)
        text = row.get("text", row.get("complaint"))
        item_id = row.get("item_id")
        missing = [k for k, v in (("item_id", item_id), ("text", text), ("root_cause", cause)) if not v]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        if not isinstance(item_id, str) or not isinstance(text, str):
            raise ValueError("item_id and text must be strings")
        try:
            root_cause = RootCause(cause)
        except ValueError:
            raise ValueError(f"unknown root cause {cause!r}; one of {', '.join(RootCause)}") from None
        return cls(item_id=item_id, text=text, root_cause=root_cause, complaint_id=row.get("complaint_id"))


def read_confirmed(path: Path | str) -> list[ConfirmedComplaint]:
    """The confirmed complaints of a JSON-lines file; a bad line is an error naming its line."""
    try:
        return parse_jsonl(path, ConfirmedComplaint.from_dict)
    except (JsonlError, OSError) as exc:
        raise CalibrationError(str(exc)) from None


def own_estimate(stated: float, why: str) -> str:
    """A report's confidence basis where the deciding rule's own estimate stands, and why."""
    return f"the deciding rule's own estimate ({stated:.0%}); {why}"


@dataclass
class ConfidenceCalibration:
    """Per-rule tallies of confirmed investigations, and the confidence they support."""

    rules: dict[str, RuleTally] = field(default_factory=dict)
    prior_weight: float = PRIOR_WEIGHT
    source: str = ""
    fitted_at: str = ""
    skipped: int = 0
    """Confirmed complaints that could not be investigated (item not in the store)."""

    @classmethod
    def fit(
        cls, outcomes: Iterable[Outcome], *, prior_weight: float = PRIOR_WEIGHT, source: str = "", skipped: int = 0
    ) -> ConfidenceCalibration:
        grouped: dict[str, list[Outcome]] = {}
        for o in outcomes:
            grouped.setdefault(o.rule, []).append(o)
        rules = {
            rule: RuleTally(
                n=len(os), right=sum(o.right for o in os), stated=round(sum(o.stated for o in os) / len(os), 4)
            )
            for rule, os in sorted(grouped.items())
        }
        return cls(
            rules=rules,
            prior_weight=prior_weight,
            source=source,
            fitted_at=datetime.now(UTC).isoformat(timespec="seconds"),
            skipped=skipped,
        )

    def confidence(self, rule: str | None, stated: float) -> float:
        """`stated` moved toward how often `rule` was right on confirmed investigations; `stated`
        itself for a rule none of them reached."""
        tally = self.rules.get(rule) if rule else None
        if tally is None:
            return stated
        return round((tally.right + self.prior_weight * stated) / (tally.n + self.prior_weight), 2)

    def basis(self, rule: str | None, stated: float) -> str:
        """Where a report's confidence comes from, in words."""
        tally = self.rules.get(rule) if rule else None
        if tally is None:
            return own_estimate(stated, "no confirmed investigation was decided by it")
        return (
            f"calibrated on {tally.n} confirmed investigation(s) the same rule decided, {tally.right} of them"
            f" right; the rule alone states {stated:.0%}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CALIBRATION_VERSION,
            "prior_weight": self.prior_weight,
            "source": self.source,
            "fitted_at": self.fitted_at,
            "skipped": self.skipped,
            "rules": {r: {"n": t.n, "right": t.right, "stated": t.stated} for r, t in self.rules.items()},
        }

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path | str) -> ConfidenceCalibration:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CalibrationError(f"{path}: not a readable calibration ({exc})") from None
        if not isinstance(data, dict) or data.get("version") != CALIBRATION_VERSION:
            found = data.get("version") if isinstance(data, dict) else None
            raise CalibrationError(f"{path}: calibration version {found!r}, expected {CALIBRATION_VERSION}")
        try:
            rules = {
                str(r): RuleTally(n=int(t["n"]), right=int(t["right"]), stated=float(t["stated"]))
                for r, t in data["rules"].items()
            }
            prior = float(data["prior_weight"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CalibrationError(f"{path}: malformed calibration ({exc})") from None
        if prior <= 0 or any(t.n < 1 or not 0 <= t.right <= t.n for t in rules.values()):
            raise CalibrationError(f"{path}: calibration counts out of range")
        return cls(
            rules=rules,
            prior_weight=prior,
            source=str(data.get("source", "")),
            fitted_at=str(data.get("fitted_at", "")),
            skipped=int(data.get("skipped", 0)),
        )

    @classmethod
    def for_model(cls, model_dir: Path | None) -> ConfidenceCalibration | None:
        """The calibration kept in `model_dir` (`MODEL_FILE`), or None when it has none."""
        if model_dir is None or not (Path(model_dir) / MODEL_FILE).is_file():
            return None
        return cls.load(Path(model_dir) / MODEL_FILE)


def calibrate_investigator(
    db: Path | str,
    confirmed: Iterable[ConfirmedComplaint],
    *,
    log: Callable[[str], None] | None = None,
    **investigate_options: Any,
) -> ConfidenceCalibration:
    """Investigate every confirmed complaint (the tool-grounded rules) and tally how often each
    rule was right. Complaints about items the store does not hold are skipped and counted."""
    from llm_agent.evidence import EvidenceError
    from llm_agent.investigator import investigate

    outcomes, skipped = [], 0
    for c in confirmed:
        try:
            report, _ = investigate(db, c.item_id, c.text, complaint_id=c.complaint_id, **investigate_options)
        except EvidenceError as exc:
            skipped += 1
            if log:
                log(f"skipped {c.complaint_id or c.item_id}: {exc}")
            continue
        if report.decided_by is not None and report.rule_confidence is not None:
            right = report.rule_root_cause == c.root_cause
            outcomes.append(Outcome(report.decided_by, report.rule_confidence, right))
    return ConfidenceCalibration.fit(outcomes, source=str(db), skipped=skipped)
