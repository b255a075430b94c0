"""One investigation end to end: evidence, intake, plan, backend, root cause, validated report.

The backend answers questions; the tool-grounded rules always run too. A model's root cause
is taken only when its claims cite real evidence, its summary shows no sign of following
instructions from the complaint, and it is a cause of the taxonomy; otherwise the rules'
answer stands, and the disagreement is recorded in the report.
"""

from __future__ import annotations

import time
from pathlib import Path

from llm_agent.backends import Backend, Task, get_backend
from llm_agent.backends.grounded import tool_answers
from llm_agent.calibration import CalibrationError, ConfidenceCalibration, own_estimate
from llm_agent.evidence import EvidenceFile
from llm_agent.intake import INJECTION, read_complaint
from llm_agent.planner import Answer, plan
from llm_agent.redact import redact
from llm_agent.report import ComplaintView, Report, TranscriptEntry, cited_evidence, split_claims
from llm_agent.rootcause import Decision, decide
from llm_agent.taxonomy import ACTIONS, DESCRIPTIONS
from llm_agent.tools import ToolRegistry, default_tools
from llm_agent.writer import write_summary
from pipeline.catalog import Catalog


def investigate(
    db: Path | str,
    item_id: str,
    complaint_text: str,
    *,
    backend: str | Backend = "grounded",
    catalog: Catalog | None = None,
    dataset: Path | str | None = None,
    out: Path | None = None,
    complaint_id: str | None = None,
    order_id: str | None = None,
    tools: ToolRegistry | None = None,
    use_embeddings: bool = True,
    calibration: ConfidenceCalibration | None = None,
) -> tuple[Report, EvidenceFile]:
    """Investigate one complaint about one item; raises only for a missing store or item.

    `calibration`: how the rules' confidence is calibrated on confirmed investigations; None
    loads the one kept in the store's model folder, if any (`calibration.MODEL_FILE`). A
    calibration file that cannot be read leaves the rule's own confidence and is reported."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    evidence = EvidenceFile.load(
        db, item_id, catalog=catalog, dataset=dataset, crops_dir=out / "crops" if out else None
    )
    complaint = read_complaint(
        complaint_text,
        item_id,
        catalog=evidence.catalog,
        record=evidence.record,
        complaint_id=complaint_id,
        order_id=order_id,
        today=evidence.shipped_on,
        use_embeddings=use_embeddings,
    )
    questions = plan(complaint, evidence)
    timings["intake_ms"] = (time.perf_counter() - t0) * 1000
    tools = tools or default_tools()
    engine = get_backend(backend) if isinstance(backend, str) else backend
    task = Task(complaint=complaint, questions=questions)

    t1 = time.perf_counter()
    output = engine.investigate(task, tools, evidence)
    timings["backend_ms"] = (time.perf_counter() - t1) * 1000

    # Questions the backend left unanswered (or it failed) are answered by their tools.
    t2 = time.perf_counter()
    answers = _complete(output.answers, task, tools, evidence)
    grounded, calls = (answers, []) if engine.name == "grounded" else tool_answers(task, tools, evidence)
    rules = decide(complaint, grounded, evidence)
    errors = list(output.errors)
    confidence, basis = _rule_confidence(rules, calibration, evidence, errors)
    root_cause, claims = rules.root_cause, list(rules.reasons)
    summary = None
    rejected = []
    if output.root_cause is not None:
        model_claims, rejected = split_claims(output.claims, evidence)
        injected = bool(output.summary and INJECTION.search(output.summary))
        if model_claims and not injected:
            root_cause, confidence, claims = output.root_cause, output.confidence or 0.5, model_claims
            summary = redact(output.summary or "")[0] or None
            basis = "the model's own estimate"
            if root_cause != rules.root_cause:
                confidence = min(confidence, 0.6)
                basis += ", at most 60 % where the tool-grounded rules disagree"
                errors.append(f"the tool-grounded rules concluded {rules.root_cause.value}")
        else:
            errors.append(
                "the model's conclusion was not used: "
                + (
                    "its summary repeats instructions from the complaint"
                    if injected
                    else "none of its claims cite valid evidence"
                )
            )
    final = Decision(root_cause, confidence, claims)
    good, bad = split_claims(claims, evidence)
    summary = summary or write_summary(complaint, answers, final)
    timings["decide_ms"] = (time.perf_counter() - t2) * 1000
    timings["total_ms"] = (time.perf_counter() - t0) * 1000
    report = Report(
        item_id=item_id,
        sku=evidence.capture.sku,
        lot=evidence.capture.lot,
        seller=evidence.lot.seller if evidence.lot else evidence.capture.seller,
        backend=output.backend,
        model=output.model,
        complaint=ComplaintView(
            complaint_id=complaint_id,
            order_id=order_id,
            text=complaint.text,
            language=complaint.language,
            claimed_problem=complaint.problem,
            claimed_attribute=complaint.attribute.model_dump() if complaint.attribute else None,
            claimed_dates=complaint.claimed_dates,
            damage_kinds=complaint.damage_kinds,
            injection_suspected=complaint.injection_suspected,
            redacted=complaint.redacted,
        ),
        root_cause=root_cause,
        root_cause_description=DESCRIPTIONS[root_cause],
        confidence=confidence,
        summary=summary,
        claims=good,
        rejected_claims=bad + rejected,
        transcript=[TranscriptEntry(question=q, answer=a) for q, a in zip(questions, answers, strict=True)],
        actions=ACTIONS[root_cause],
        evidence=cited_evidence(evidence, good, answers),
        tool_calls=[c.model_dump() for c in output.tool_calls + calls],
        rule_root_cause=rules.root_cause,
        decided_by=rules.rule,
        rule_confidence=rules.confidence,
        confidence_basis=basis,
        errors=errors,
        timings_ms={k: round(v, 1) for k, v in timings.items()},
    )
    return report, evidence


def _rule_confidence(
    rules: Decision, calibration: ConfidenceCalibration | None, evidence: EvidenceFile, errors: list[str]
) -> tuple[float, str]:
    """The rules' confidence, calibrated on confirmed investigations (`calibration`, else the
    model folder's), and where it comes from in words. An unreadable calibration file is
    reported in `errors` and the rule's own estimate stands."""
    if calibration is None:
        try:
            calibration = ConfidenceCalibration.for_model(evidence.model_dir)
        except CalibrationError as exc:
            errors.append(f"confidence not calibrated: {exc}")
    if calibration is None:
        return rules.confidence, own_estimate(rules.confidence, "no calibration on confirmed investigations")
    return calibration.confidence(rules.rule, rules.confidence), calibration.basis(rules.rule, rules.confidence)


def _complete(answers: list[Answer], task: Task, tools: ToolRegistry, evidence: EvidenceFile) -> list[Answer]:
    """One answer per question, in question order; gaps filled by the question's tool."""
    by_id = {a.question_id: a for a in answers if a.status == "answered"}
    missing = [q for q in task.questions if q.id not in by_id]
    if missing:
        filled, _ = tool_answers(Task(complaint=task.complaint, questions=missing), tools, evidence)
        by_id.update({a.question_id: a for a in filled})
    out = []
    for q in task.questions:
        a = by_id[q.id]
        bad = [c for c in a.citations if not evidence.has(c)]
        if bad:  # an answer citing evidence that does not exist is not an answer
            a = a.model_copy(update={"citations": [c for c in a.citations if evidence.has(c)]})
        out.append(a)
    return out
