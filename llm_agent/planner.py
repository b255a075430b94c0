"""Verification questions: what to check in the tunnel photos before judging a complaint.

Each question names the tool that answers it and the fact in the tool's result that is the
answer, so the grounded backend can answer it directly and a language model backend can be
asked the very same question and its answer compared fact for fact.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from llm_agent.evidence import EvidenceFile
from llm_agent.intake import Complaint
from llm_agent.taxonomy import PLAUSIBLE, ClaimedProblem, RootCause

P = ClaimedProblem
VARIANT_ATTRIBUTES = ("size", "model", "count")
FLAGGED_P = 0.5
"""Probability from which a stored tunnel finding counts as the tunnel having flagged it."""
LABEL_FLAGS = frozenset({"wrong_variant_label", "wrong_item", "attribute_mismatch"})
DATE_FLAGS = frozenset({"expired", "date_mismatch"})
DATE_PROBLEMS = frozenset(
    {P.EXPIRED, P.SHORT_DATED, P.UNREADABLE_DATE, P.NOT_AS_DESCRIBED, P.EMPTY_OR_MISSING, P.OTHER}
)
"""Claims that the printed dates can confirm or refute."""


class Question(BaseModel):
    id: str
    text: str
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    fact: str
    """Key of the tool result's data that answers the question."""
    tests: list[RootCause] = Field(default_factory=list)
    """Root causes the answer supports or rules out."""


def _variant_attribute(complaint: Complaint, evidence: EvidenceFile) -> str | None:
    """The attribute a label shows that the complaint is about (colour is checked from pixels)."""
    attrs = evidence.record.attributes if evidence.record else {}
    if complaint.attribute and complaint.attribute.name in attrs and complaint.attribute.name != "colour":
        return complaint.attribute.name
    return next((a for a in VARIANT_ATTRIBUTES if a in attrs), None)


def plan(complaint: Complaint, evidence: EvidenceFile) -> list[Question]:
    """Questions for this complaint and item, most telling first."""
    record = evidence.record
    dated = record is None or record.expiry.carries_date
    attribute = _variant_attribute(complaint, evidence)
    claimed = complaint.attribute
    # the kinds of damage a damage complaint names: its questions compare them with what the tunnel saw
    described = list(complaint.damage_kinds) if complaint.problem is P.DAMAGED else []
    out: list[tuple[str, str, dict[str, Any], str, tuple[RootCause, ...]]] = []
    R = RootCause

    def ask(text: str, tool: str, fact: str, tests: tuple[RootCause, ...], **args: Any) -> None:
        out.append((text, tool, args, fact, tests))

    def colour_question(tests: tuple[RootCause, ...]) -> None:
        ask("Does the item's colour match the catalog?", "check_attribute", "colour_matches", tests, attribute="colour")

    def label_questions() -> None:
        ask("Is the product label visible in the tunnel photos?", "read_label", "label_visible", (R.INCONCLUSIVE,))
        if attribute:
            options = [v for v in (claimed.expected, claimed.received) if v] if claimed else []
            alt = f" (is it {' or '.join(options)}?)" if len(options) == 2 else ""
            ask(
                f"What {attribute} does the label read{alt}?",
                "check_attribute",
                "observed",
                (R.WRONG_VARIANT,),
                attribute=attribute,
            )
            ask(
                f"Does the label's {attribute} match the catalog record?",
                "check_attribute",
                "matches_catalog",
                (R.WRONG_VARIANT, R.CUSTOMER_MISPERCEPTION),
                attribute=attribute,
            )

    problem = complaint.problem
    # Evidence first: what the tunnel flagged is checked whatever the customer names, because
    # customers describe the wrong thing ("arrived damaged" for a wrong size) and a report that
    # only answered the complaint's words would blame transit for a label the tunnel saw wrong.
    flagged = set(evidence.finding_kinds(FLAGGED_P))
    label_flagged = bool(flagged & LABEL_FLAGS)
    date_flagged = dated and bool(flagged & DATE_FLAGS)
    colour_flagged = "wrong_colour" in flagged
    if label_flagged or colour_flagged or problem in (P.WRONG_VARIANT, P.WRONG_ITEM, P.NOT_AS_DESCRIBED, P.OTHER):
        label_questions()
        colour_claimed = claimed is not None and claimed.name == "colour"
        if colour_flagged or colour_claimed or (problem is P.WRONG_VARIANT and not attribute):
            colour_question((R.WRONG_VARIANT,))
    if label_flagged or problem in (P.WRONG_ITEM, P.WRONG_VARIANT, P.OTHER):
        ask(
            "Is the photographed item the product that was ordered?", "identify_product", "matches_sku", (R.WRONG_ITEM,)
        )
    if "wrong_item" in flagged:
        ask(
            "Did the tunnel's look check find the item nearer another product?",
            "identify_product",
            "looks_like_sku",
            (R.WRONG_ITEM, R.DAMAGED_BEFORE_SHIPMENT),
        )
        if record is not None and "colour" in record.attributes:
            # a look nearer another product may be nothing but its colour, which is no damage
            colour_question((R.WRONG_VARIANT, R.DAMAGED_BEFORE_SHIPMENT))
    if problem is P.WRONG_ITEM:
        ask(
            "Did the item look unlike its SKU's normal look in the tunnel?",
            "inspect_damage",
            "looks_abnormal",
            (R.WRONG_ITEM,),
        )
        colour_question((R.WRONG_ITEM,))
    if date_flagged or (dated and problem in DATE_PROBLEMS):
        ask("What expiry date is printed on the item?", "read_dates", "expiry_date", (R.EXPIRED_AT_SHIPMENT,))
        if date_flagged or problem in (P.EXPIRED, P.SHORT_DATED, P.OTHER, P.NOT_AS_DESCRIBED):
            ask(
                "Was the item expired, or too close to expiry, when it shipped?",
                "read_dates",
                "expired_at_shipment",
                (R.EXPIRED_AT_SHIPMENT, R.CUSTOMER_MISPERCEPTION),
            )
            ask(
                "Is a production date printed, and which?",
                "read_dates",
                "manufactured_date",
                (R.CUSTOMER_MISPERCEPTION,),
            )
            ask(
                "What expiry does the lot's inventory record give?",
                "read_dates",
                "lot_recorded_expiry",
                (R.EXPIRED_AT_SHIPMENT, R.CUSTOMER_MISPERCEPTION),
            )
            ask(
                "Does the printed expiry agree with the lot's inventory record?",
                "read_dates",
                "matches_lot_record",
                (R.CATALOG_LISTING_ERROR,),
            )
            # The item's own print may be unreadable; the same lot carries the same print.
            ask(
                "What expiry did the tunnel read on other items of the same lot?",
                "lot_history",
                "lot_printed_expiry",
                (R.CATALOG_LISTING_ERROR, R.EXPIRED_AT_SHIPMENT),
            )
            ask(
                "Was the lot's printed expiry too close at shipment?",
                "lot_history",
                "lot_expired_at_shipment",
                (R.EXPIRED_AT_SHIPMENT,),
            )
            ask(
                "Does the lot's printed expiry agree with its inventory record?",
                "lot_history",
                "lot_print_matches_record",
                (R.CATALOG_LISTING_ERROR,),
            )
            if problem is P.EXPIRED and complaint.claimed_dates:
                ask(
                    "Does the lot's print show the date the customer quotes beside its recorded expiry?",
                    "lot_history",
                    "lot_print_shows_quoted_date",
                    (R.CUSTOMER_MISPERCEPTION,),
                    quoted=list(complaint.claimed_dates),
                )
        if problem in (P.UNREADABLE_DATE, P.EMPTY_OR_MISSING):
            ask(
                "Was the date print unreadable in the tunnel?", "read_dates", "unreadable", (R.DAMAGED_BEFORE_SHIPMENT,)
            )
    if problem is P.EMPTY_OR_MISSING:
        ask(
            "Did the item look empty or incomplete in the tunnel?",
            "check_contents",
            "empty_visible",
            (R.EMPTY_OR_MISSING_PARTS,),
        )
        ask("Is the product label present?", "read_label", "label_visible", (R.EMPTY_OR_MISSING_PARTS,))
    if problem is P.MISSING_PACKAGING:
        ask(
            "May this SKU ship without its outer box?",
            "check_packaging",
            "unboxed_allowed",
            (R.CUSTOMER_MISPERCEPTION,),
        )
    if problem in (P.DAMAGED, P.UNREADABLE_DATE, P.MISSING_PACKAGING, P.OTHER, P.EMPTY_OR_MISSING, P.WRONG_ITEM):
        # A report of the item's physical state is itself evidence of damage, so weak image
        # evidence counts; "meh, want a refund" or "wrong item" is not, so only what the belt acts on.
        physical = problem in (P.DAMAGED, P.UNREADABLE_DATE, P.MISSING_PACKAGING, P.EMPTY_OR_MISSING)
        damage_args: dict[str, Any] = {"evidence": "complaint" if physical else "line"}
        if described:
            damage_args["described"] = described
        ask(
            "Is damage visible in the tunnel photos?",
            "inspect_damage",
            "damage_visible",
            (R.DAMAGED_BEFORE_SHIPMENT, R.DAMAGED_AFTER_TUNNEL),
            **damage_args,
        )
        if described:
            ask(
                "What kinds of damage did the tunnel's checks name?",
                "inspect_damage",
                "typed_damage",
                (R.DAMAGED_BEFORE_SHIPMENT, R.DAMAGED_AFTER_TUNNEL),
                **damage_args,
            )
            ask(
                f"Did the tunnel see the kind of damage described ({', '.join(described)})?",
                "inspect_damage",
                "described_damage_seen",
                (R.DAMAGED_BEFORE_SHIPMENT, R.DAMAGED_AFTER_TUNNEL),
                **damage_args,
            )
    if problem in (P.DAMAGED, P.EMPTY_OR_MISSING, P.EXPIRED, P.SHORT_DATED):
        ask("Were other items of the same lot flagged in the tunnel?", "lot_history", "flagged", PLAUSIBLE[problem])
    if described:
        ask(
            f"Is the damage described ({', '.join(described)}) a pattern of the item's lot in the tunnel?",
            "lot_history",
            "described_damage_in_lot",
            (R.DAMAGED_BEFORE_SHIPMENT,),
            described=described,
        )
    seen: set[tuple[str, str, str]] = set()
    questions = []
    for text, tool, args, fact, tests in out:
        key = (tool, repr(sorted(args.items())), fact)
        if key not in seen:
            seen.add(key)
            questions.append(
                Question(id=f"q{len(questions) + 1}", text=text, tool=tool, args=args, fact=fact, tests=list(tests))
            )
    return questions


class Answer(BaseModel):
    """The answer to one question, with the evidence it rests on."""

    question_id: str
    fact: str
    value: bool | int | float | str | None = None
    text: str
    status: Literal["answered", "unavailable", "error"] = "answered"
    citations: list[str] = Field(default_factory=list)
    source: str
    """Who answered: "tool:<name>" or "<backend>:<model>"."""
