"""The investigation report: a validated schema, citation checks, JSON, Markdown and HTML.

Nothing leaves without validation: the report is a pydantic model, every claim must cite an
evidence id that the tools actually produced (uncited claims are moved to `rejected_claims`),
and all customer text in it has been redacted. The HTML embeds the cited crops and frames so
the report is one self-contained file that can be mailed to a seller.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, Field

from llm_agent.evidence import EvidenceFile, EvidenceRef
from llm_agent.images import thumbnail_uri
from llm_agent.planner import Answer, Question
from llm_agent.redact import redact
from llm_agent.rootcause import Claim
from llm_agent.taxonomy import DESCRIPTIONS, Action, ClaimedProblem, RootCause

SCHEMA_VERSION = 1
IMAGE_SIDE = 320
"""Longest side of an image embedded in the HTML report."""


class ComplaintView(BaseModel):
    complaint_id: str | None = None
    order_id: str | None = None
    text: str
    language: str
    claimed_problem: ClaimedProblem
    claimed_attribute: dict[str, str | None] | None = None
    claimed_dates: list[str] = Field(default_factory=list)
    damage_kinds: list[str] = Field(default_factory=list)
    """Kinds of damage the complaint describes, by the tunnel's names for them."""
    injection_suspected: bool = False
    redacted: list[str] = Field(default_factory=list)


class TranscriptEntry(BaseModel):
    question: Question
    answer: Answer


class Report(BaseModel):
    schema_version: int = SCHEMA_VERSION
    item_id: str
    sku: str
    lot: str | None = None
    seller: str | None = None
    backend: str
    model: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    complaint: ComplaintView
    root_cause: RootCause
    root_cause_description: str
    confidence: float = Field(ge=0.0, le=1.0)
    summary: str
    claims: list[Claim]
    rejected_claims: list[Claim] = Field(default_factory=list)
    transcript: list[TranscriptEntry]
    actions: list[Action]
    evidence: list[EvidenceRef]
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    rule_root_cause: RootCause | None = None
    """What the tool-grounded rules concluded (differs from `root_cause` only when a model overrode them)."""
    decided_by: str | None = None
    """The rule of the tool-grounded rules that concluded `rule_root_cause`."""
    rule_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    """That rule's own confidence, before calibration on confirmed investigations."""
    confidence_basis: str = ""
    """Where `confidence` comes from: the rule's own estimate, a calibration, or the model."""
    errors: list[str] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)

    @property
    def cited_ids(self) -> set[str]:
        return {c for claim in self.claims for c in claim.citations}

    def citations_valid(self) -> bool:
        ids = {e.id for e in self.evidence}
        return all(c.citations and set(c.citations) <= ids for c in self.claims)


def split_claims(claims: list[Claim], evidence: EvidenceFile) -> tuple[list[Claim], list[Claim]]:
    """(claims whose every citation exists, rejected claims). A claim must cite something."""
    good, bad = [], []
    for c in claims:
        text = redact(c.text)[0]
        cites = list(dict.fromkeys(c.citations))
        (good if cites and all(evidence.has(i) for i in cites) else bad).append(Claim(text=text, citations=cites))
    return good, bad


def cited_evidence(evidence: EvidenceFile, claims: list[Claim], answers: list[Answer]) -> list[EvidenceRef]:
    ids = {c for claim in claims for c in claim.citations} | {c for a in answers for c in a.citations}
    return [evidence.refs[i] for i in sorted(ids) if i in evidence.refs]


# --- rendering --------------------------------------------------------------------------------


def to_json(report: Report) -> str:
    return report.model_dump_json(indent=1)


def _value(v: Any) -> str:
    return "—" if v is None else ("yes" if v is True else "no" if v is False else str(v))


def to_markdown(report: Report) -> str:
    c = report.complaint
    lines = [
        f"# Investigation: item {report.item_id}",
        "",
        f"- SKU **{report.sku}**, lot {report.lot or '—'}, seller {report.seller or '—'}",
        f"- Complaint {c.complaint_id or '—'} ({c.language}): “{c.text}”",
        f"- Claimed problem: {c.claimed_problem.value}"
        + (f", attribute {c.claimed_attribute}" if c.claimed_attribute else "")
        + (f", damage described: {', '.join(c.damage_kinds)}" if c.damage_kinds else ""),
        f"- Backend: {report.backend}" + (f" ({report.model})" if report.model else ""),
        "",
        f"## Root cause: {report.root_cause.value} ({report.confidence:.0%})",
        "",
        report.summary,
        *(["", f"Confidence: {report.confidence_basis}."] if report.confidence_basis else []),
        "",
        "## Findings",
        "",
    ]
    lines += [f"- {cl.text} [{', '.join(cl.citations)}]" for cl in report.claims] or ["- (none)"]
    if report.rejected_claims:
        lines += ["", "Rejected (uncited or citing unknown evidence):"]
        lines += [f"- ~~{cl.text}~~" for cl in report.rejected_claims]
    lines += ["", "## Verification questions", "", "| # | question | answer | evidence |", "|---|---|---|---|"]
    for t in report.transcript:
        a = t.answer
        answer = f"{_value(a.value)}: {a.text.replace('|', '/')}"
        lines.append(f"| {t.question.id} | {t.question.text} | {answer} | {', '.join(a.citations[:6])} |")
    lines += ["", "## Recommended actions", ""] + [f"- {a.value.replace('_', ' ')}" for a in report.actions]
    lines += ["", "## Evidence", ""]
    for e in report.evidence:
        extra = f" text='{e.text}'" if e.text else ""
        extra += f" score={e.score:.3f}" if e.score is not None else ""
        extra += f" box={[round(v) for v in e.box]}" if e.box else ""
        lines.append(f"- `{e.id}` {e.description}{extra}" + (f" ({e.image})" if e.image else ""))
    if report.errors:
        lines += ["", "## Errors", ""] + [f"- {e}" for e in report.errors]
    return "\n".join(lines) + "\n"


@cache
def _env() -> Environment:
    return Environment(loader=PackageLoader("llm_agent", "templates"), autoescape=select_autoescape(["html", "j2"]))


def to_html(report: Report, evidence: EvidenceFile | None = None) -> str:
    """Self-contained HTML: cited crops inline, OCR and finding boxes drawn on their frames.

    Images are embedded only from inside the evidence file's image roots, so without
    `evidence` the report carries no pictures.
    """
    cited = report.cited_ids
    roots = evidence.image_roots if evidence is not None else ()
    figures = []
    for ref in report.evidence:
        src = None
        if ref.kind == "ocr" and evidence is not None and ref.camera:
            frame = evidence.frame_path(ref.camera)
            src = thumbnail_uri(frame, roots, box=ref.box, max_side=IMAGE_SIDE, quality=85) if frame else None
        elif ref.image and ref.kind in ("crop", "frame", "finding"):
            src = thumbnail_uri(ref.image, roots, max_side=IMAGE_SIDE, quality=85)
        if src and (ref.id in cited or ref.kind in ("crop", "ocr")):
            figures.append({"src": src, "id": ref.id, "description": ref.description})
    return _env().get_template("investigation.html.j2").render(r=report, figures=figures, value=_value)


def write_report(report: Report, out: Path, evidence: EvidenceFile | None = None) -> dict[str, Path]:
    """report.json, report.md and report.html in `out` (crops were saved there by the tools)."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"investigation_{report.item_id}"
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md", "html": out / f"{stem}.html"}
    paths["json"].write_text(to_json(report), encoding="utf-8")
    paths["md"].write_text(to_markdown(report), encoding="utf-8")
    paths["html"].write_text(to_html(report, evidence), encoding="utf-8")
    return paths


def summary_line(report: Report) -> dict[str, Any]:
    """The short form `tunnelpi report` lists (investigations.jsonl)."""
    keep = {"item_id", "sku", "lot", "seller", "root_cause", "confidence", "summary", "backend", "created_at"}
    line = json.loads(report.model_dump_json(include=keep))
    line |= {"complaint_text": report.complaint.text, "claimed_problem": report.complaint.claimed_problem.value}
    return line


__all__ = ["DESCRIPTIONS", "Report", "split_claims", "to_html", "to_json", "to_markdown", "write_report"]
