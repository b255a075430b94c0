"""The decision policy: findings -> pass / divert / review, with the reasons.

Kept apart from the detectors so that the line's behaviour (what gets diverted, what a person
looks at) is one small, readable, tested rule set, tunable per SKU and category.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.jsonl import read_json_object
from pipeline.types import Action, CatalogRecord, Finding

# Kinds that mean "a person must look": the system could not judge the item.
REVIEW_KINDS = frozenset(
    {
        "unreadable",
        "unreadable_label",
        "no_reference",
        "no_item_found",
        "unknown_sku",
        "stage_error",
        "image_error",
    }
)
POSSIBLE_DEFECT = "possible_defect"
"""A detector's sign of a defect type below the line's threshold: the line never acts on it, a
complaint investigation weighs it (the type is in its evidence's data)."""
# Kinds that never change the action (informational findings such as "expiry_ok").
INFO_KINDS = frozenset({"expiry_ok", "label_ok", "info", POSSIBLE_DEFECT})


@dataclass(frozen=True)
class Thresholds:
    """Calibrated-probability cut-offs for one finding kind."""

    divert: float = 0.5
    review: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 <= self.review <= self.divert <= 1.0:
            raise ValueError(f"need 0 <= review <= divert <= 1, got review={self.review} divert={self.divert}")


REVIEW_CEILING_P = 0.4
"""Ceiling on a finding that may only ask for a review (a wrong item naming a variant sibling, a
wrong colour on a SKU whose colour threshold is weak, a date mismatch the reads themselves cast
doubt on): inside the default review band, under its divert cut-off."""


@dataclass
class PolicyConfig:
    default: Thresholds = field(default_factory=Thresholds)
    by_kind: dict[str, Thresholds] = field(default_factory=dict)
    by_category: dict[str, dict[str, Thresholds]] = field(default_factory=dict)
    by_sku: dict[str, dict[str, Thresholds]] = field(default_factory=dict)
    audit_rate: float = 0.01
    """Fraction of passed items sent to manual audit, so miss rates can be estimated unbiasedly."""
    audit_seed: str = "tunnelpi-audit"
    deadline_action: Action = Action.REVIEW
    """What the line does with an item whose verdict missed its divert deadline."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.audit_rate <= 1.0:
            raise ValueError(f"audit_rate must be within [0, 1], got {self.audit_rate}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyConfig:
        """From a config file section: thresholds as {"divert": p, "review": p} dicts. A key it
        does not know is an error, not ignored: a "defualt" section would leave the defaults in
        force while the line's owner believes otherwise."""
        unknown = sorted(set(data) - POLICY_KEYS)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(POLICY_KEYS))}")
        return cls(
            default=_thresholds(data.get("default", {}), "default"),
            by_kind=_per_kind(data.get("by_kind", {}), "by_kind"),
            by_category={
                c: _per_kind(v, f"by_category.{c}")
                for c, v in _section(data.get("by_category", {}), "by_category").items()
            },
            by_sku={s: _per_kind(v, f"by_sku.{s}") for s, v in _section(data.get("by_sku", {}), "by_sku").items()},
            audit_rate=_number(data.get("audit_rate", 0.01), "audit_rate"),
            audit_seed=str(data.get("audit_seed", "tunnelpi-audit")),
            deadline_action=Action(data.get("deadline_action", "review")),
        )


POLICY_KEYS = frozenset(
    {"default", "by_kind", "by_category", "by_sku", "audit_rate", "audit_seed", "deadline_action", "lots"}
)
"""What a policy file may hold ("lots": `pipeline.lots.LotSettings`)."""


def _section(section: Any, name: str) -> dict[str, Any]:
    if not isinstance(section, dict):
        raise ValueError(f"{name}: expected an object, got {type(section).__name__}")
    return section


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    return float(value)


def _thresholds(d: Any, name: str) -> Thresholds:
    d = _section(d, name)
    unknown = sorted(set(d) - {"divert", "review"})
    if unknown:
        raise ValueError(f"{name}: unknown key(s) {', '.join(map(repr, unknown))}; a threshold has divert and review")
    try:
        return Thresholds(**{k: _number(v, f"{name}.{k}") for k, v in d.items()})
    except ValueError as exc:
        raise ValueError(exc if str(exc).startswith(name) else f"{name}: {exc}") from exc


def _per_kind(d: Any, name: str) -> dict[str, Thresholds]:
    return {kind: _thresholds(v, f"{name}.{kind}") for kind, v in _section(d, name).items()}


def read_policy_file(path: Path | str) -> dict[str, Any]:
    """A policy file: decision thresholds (`PolicyConfig.from_dict`) and an optional "lots"
    section (`pipeline.lots.LotSettings.from_dict`). Raises ValueError saying what is wrong."""
    return read_json_object(path)


@dataclass(frozen=True)
class Decision:
    action: Action
    reasons: list[str]
    audit_sample: bool = False


class DecisionPolicy:
    """Most severe wins: any divert-level finding diverts; else any review-level one reviews."""

    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config or PolicyConfig()

    def thresholds(self, kind: str, record: CatalogRecord | None) -> Thresholds:
        cfg = self.config
        if record is not None:
            if kind in cfg.by_sku.get(record.sku, {}):
                return cfg.by_sku[record.sku][kind]
            if kind in cfg.by_category.get(record.category, {}):
                return cfg.by_category[record.category][kind]
        return cfg.by_kind.get(kind, cfg.default)

    def decide(self, item_id: str, findings: list[Finding], record: CatalogRecord | None) -> Decision:
        divert: list[str] = []
        review: list[str] = []
        for f in findings:
            if f.kind in INFO_KINDS:
                continue
            label = f"{f.stage}:{f.kind} p={f.probability:.2f}" + (f" ({f.message})" if f.message else "")
            if f.kind in REVIEW_KINDS:
                review.append(label)
                continue
            th = self.thresholds(f.kind, record)
            if f.probability >= th.divert:
                divert.append(label)
            elif f.probability >= th.review:
                review.append(label)
        if divert:
            return Decision(Action.DIVERT, divert + review)
        if review:
            return Decision(Action.REVIEW, review)
        if self.audit_selected(item_id):
            return Decision(Action.REVIEW, [f"audit sample (rate {self.config.audit_rate:g})"], audit_sample=True)
        return Decision(Action.PASS, [])

    def audit_selected(self, item_id: str) -> bool:
        """Deterministic per item, so a re-run or a re-delivered item gets the same answer."""
        if self.config.audit_rate <= 0:
            return False
        digest = hashlib.sha256(f"{self.config.audit_seed}:{item_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.config.audit_rate
