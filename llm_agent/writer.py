"""The deterministic writer: a plain-spoken summary built only from verified facts."""

from __future__ import annotations

from llm_agent.intake import Complaint
from llm_agent.planner import Answer
from llm_agent.rootcause import Decision
from llm_agent.taxonomy import ACTIONS, DESCRIPTIONS, ClaimedProblem

CLAIM_WORDS: dict[ClaimedProblem, str] = {
    ClaimedProblem.WRONG_VARIANT: "received the wrong variant",
    ClaimedProblem.WRONG_ITEM: "received a different product",
    ClaimedProblem.DAMAGED: "received a damaged item",
    ClaimedProblem.EXPIRED: "received an expired item",
    ClaimedProblem.EMPTY_OR_MISSING: "received an empty or incomplete item",
    ClaimedProblem.NOT_AS_DESCRIBED: "received an item not as described",
    ClaimedProblem.MISSING_PACKAGING: "received the item without its packaging",
    ClaimedProblem.UNREADABLE_DATE: "cannot read the printed date",
    ClaimedProblem.SHORT_DATED: "received an item with a shorter shelf life than promised",
    ClaimedProblem.OTHER: "is unhappy with the item",
}


def claim_sentence(complaint: Complaint) -> str:
    text = f"The customer says they {CLAIM_WORDS[complaint.problem]}".replace("they is", "they are")
    a = complaint.attribute
    if a and a.expected and a.received:
        text += f" (ordered {a.name} {a.expected}, got {a.received})"
    elif a and (a.expected or a.received):
        text += f" ({a.name} {a.expected or a.received})"
    return text + "."


def write_summary(complaint: Complaint, answers: list[Answer], decision: Decision) -> str:
    answered = sum(a.status == "answered" for a in answers)
    missing = [a for a in answers if a.status != "answered"]
    parts = [claim_sentence(complaint)]
    parts.append(
        f"{answered} of {len(answers)} verification questions were answered from the tunnel photos and records."
    )
    parts += [r.text for r in decision.reasons[:2]]
    cause = decision.root_cause
    parts.append(
        f"Root cause: {cause.value.replace('_', ' ')}: {DESCRIPTIONS[cause]} ({decision.confidence:.0%} sure)."
    )
    if missing:
        parts.append(
            f"Could not check: {', '.join(sorted({a.text.removeprefix('cannot answer: ') for a in missing}))}."
        )
    actions = ", ".join(a.value.replace("_", " ") for a in ACTIONS[decision.root_cause])
    parts.append(f"Recommended: {actions}.")
    return " ".join(parts)
