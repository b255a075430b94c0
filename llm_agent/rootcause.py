"""From verified facts to one root cause of the taxonomy, with the reasons that led there.

The rules are evidence first: what the tunnel photos show about the item (a different
product, a wrong label, a past expiry, visible damage) decides before what the customer
says; the complaint only chooses among explanations the photos leave open (damage not
visible in the tunnel happened after it; an expiry that was fine at shipment and a quoted
production date is a misreading). A look or colour measure, which damage and light move too,
decides only complaints about what was shipped. Every reason cites the answers' evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from pydantic import BaseModel, Field

from llm_agent.evidence import EvidenceFile
from llm_agent.intake import Complaint
from llm_agent.planner import Answer
from llm_agent.taxonomy import ClaimedProblem, RootCause
from pipeline.types import CatalogRecord

P = ClaimedProblem
R = RootCause
SHIPPED_WHAT = frozenset({P.WRONG_VARIANT, P.WRONG_ITEM, P.NOT_AS_DESCRIBED, P.OTHER})
"""Complaints about what was shipped rather than the state it arrived in."""
LOT_DATE_PROBLEMS = frozenset({P.SHORT_DATED, P.EXPIRED, P.NOT_AS_DESCRIBED, P.OTHER})
"""Complaints a lot's print can explain when the item's own print was not read."""
LOT_PRINT_CONFIDENCE = 0.65
"""Confidence of a date cause read from the lot's other items when the item's own print was not
read: one lot carries one print, but the item may have come from another lot."""
DIFFERENT_DAMAGE_CONFIDENCE = 0.55
"""Confidence that damage of another kind than the tunnel named happened after the tunnel. The
classifier can name the wrong kind, and an unnamed anomaly may be the damage described."""
UNSIGNED_DAMAGE_CONFIDENCE = 0.6
"""Confidence that damage of a kind the classifier reliably signs, on an item where it showed no
sign of it but other damage was seen, happened after the tunnel: the classifier misses some of
it (`tools.RELIABLE_SIGN_RECALL`), and an unnamed anomaly may be the damage described."""
UNMEASURED_COLOUR_CONFIDENCE = 0.6
"""Confidence in a wrong colour read from the look check alone, where the colour itself could
not be measured: the look also moves with damage, glare and pose."""
LOT_PATTERN_CONFIDENCE = 0.6
"""Confidence that damage unseen on the item but a pattern of its lot was there before shipment.
The lot's other items are evidence about this one, not a sighting of its damage."""
UNSEEN_DAMAGE_CONFIDENCE = 0.5
"""Confidence that damage the tunnel did not see happened after it. The tunnel's findings miss
part of the damage already on items when they pass (29 of 163 complaints in the investigator
benchmark on 2026-12-06, 79 when this was set), so not seeing it is weak evidence: the
conclusion is stated as even odds, not as the 0.8 it was once given (right 40 % of the time
then, 62 % on 2026-12-06)."""


class Claim(BaseModel):
    """One statement in a report; it must cite evidence that exists."""

    text: str
    citations: list[str] = Field(default_factory=list)


@dataclass
class Decision:
    root_cause: RootCause
    confidence: float
    reasons: list[Claim] = field(default_factory=list)
    rule: str | None = None
    """The rule of `decide` that concluded: what confirmed investigations calibrate the
    confidence by (`llm_agent.calibration`)."""


class Facts:
    """Answers by fact name (the first answered one wins), with their citations."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers: dict[str, Answer] = {}
        for a in answers:
            if a.status == "answered" and a.fact not in self.answers:
                self.answers[a.fact] = a

    def get(self, fact: str) -> bool | int | float | str | None:
        a = self.answers.get(fact)
        return a.value if a else None

    def known(self, fact: str) -> bool:
        return self.get(fact) is not None

    def claim(self, text: str, *facts: str) -> Claim:
        cites = [c for f in facts if f in self.answers for c in self.answers[f].citations]
        return Claim(text=text, citations=list(dict.fromkeys(cites)))


def _label_mismatch(f: Facts, complaint: Complaint) -> tuple[str, tuple[str, ...]]:
    """What a label read other than the catalog's value says, and the facts it rests on."""
    observed = f.get("observed")
    name = complaint.attribute.name if complaint.attribute else "value"
    said = (
        f"The label reads {observed}, not the catalog's {name}."
        if observed
        else "The item's look differs from the catalog."
    )
    return said, ("matches_catalog", "observed")


def _colour_mismatch(record: CatalogRecord | None) -> tuple[str, tuple[str, ...]]:
    """What a colour measured other than the catalog's says, and the fact it rests on."""
    colour = record.attributes.get("colour", "colour") if record else "colour"
    return f"The item in the tunnel photos is not the catalog's {colour}.", ("colour_matches",)


def _from_lot_print(f: Facts, problem: ClaimedProblem) -> tuple[str, RootCause, float, Claim] | None:
    """The date rules on the lot's print (read on its other items), where the item's own print
    gave no expiry. Only what the lot's print shows against the complaint: a valid lot print
    does not clear an item that may have come from elsewhere."""
    if f.known("expiry_date") or not f.known("lot_printed_expiry") or problem not in LOT_DATE_PROBLEMS:
        return None
    printed, record = f.get("lot_printed_expiry"), f.get("lot_recorded_expiry")
    unread = f"The item's own date print was not read; the tunnel read expiry {printed} on other items of its lot"
    facts = ("lot_printed_expiry", "expiry_date")
    differs = f.get("lot_print_matches_record") is False
    if differs and problem is P.SHORT_DATED:
        said = f"{unread}, which differs from the lot's inventory record ({record}) that the listing shows."
        return (
            "lot_print_short_dated",
            R.CATALOG_LISTING_ERROR,
            LOT_PRINT_CONFIDENCE,
            f.claim(said, *facts, "lot_print_matches_record"),
        )
    if f.get("lot_expired_at_shipment") is True:
        said = f"{unread}, already past the minimum shelf life at shipment."
        return (
            "lot_print_expired",
            R.EXPIRED_AT_SHIPMENT,
            LOT_PRINT_CONFIDENCE,
            f.claim(said, *facts, "lot_expired_at_shipment"),
        )
    if differs:
        said = f"{unread}, which differs from the lot's inventory record ({record}): the listing promised another date."
        return (
            "lot_print_differs_from_record",
            R.CATALOG_LISTING_ERROR,
            LOT_PRINT_CONFIDENCE,
            f.claim(said, *facts, "lot_print_matches_record"),
        )
    return None


def decide(complaint: Complaint, answers: list[Answer], evidence: EvidenceFile) -> Decision:
    f = Facts(answers)
    problem = complaint.problem
    record = evidence.record

    # A wrong label explains a complaint about what was shipped, not a crushed box or a date:
    # it is reported beside whatever explains this complaint.
    label_wrong = f.get("matches_catalog") is False
    aside: list[Claim] = []

    def reported_beside(mismatch: tuple[str, tuple[str, ...]]) -> None:
        said, facts = mismatch
        aside.append(f.claim(f"{said} That does not explain this complaint; it is reported as found.", *facts))

    if label_wrong and problem not in SHIPPED_WHAT:
        reported_beside(_label_mismatch(f, complaint))
        label_wrong = False
    if f.get("colour_matches") is False and problem not in SHIPPED_WHAT:
        reported_beside(_colour_mismatch(record))

    def done(rule: str, cause: RootCause, confidence: float, *claims: Claim) -> Decision:
        return Decision(cause, round(confidence, 2), [c for c in (*claims, *aside) if c.citations], rule)

    # 1. What the photos show about identity and label.
    if f.get("matches_sku") is False:
        return done(
            "printed_title_other_sku",
            R.WRONG_ITEM,
            0.9,
            f.claim(f"The printed title is not {evidence.capture.sku}'s.", "matches_sku"),
        )
    # A colour measure is weaker evidence than a label read: glare, shade or another FC's
    # light move it. It decides complaints about what was shipped, never a damage complaint.
    colour_wrong = f.get("colour_matches") is False and problem in SHIPPED_WHAT
    colour_claim = complaint.attribute is not None and complaint.attribute.name == "colour"
    # The look check, like colour, also moves with damage: it names a wrong item only for a
    # complaint about what was shipped, and only when no printed title says otherwise. A label
    # read as another variant's value, or the other colour a customer names and the photos
    # show, explains a look nearer that sibling SKU, so it decides.
    explained = label_wrong or (colour_wrong and colour_claim)
    looks_wrong = f.get("looks_like_sku") is False and f.get("matches_sku") is not True and not explained
    if looks_wrong and problem is P.OTHER:
        # A complaint that names no problem does not back the look: alone it is reported for a
        # person to check, and the investigation goes on to what else the photos show.
        aside.append(
            f.claim(
                "The look check alone, with no printed title to confirm it and a complaint that names no"
                " problem, does not show that another product was shipped; a person should check it.",
                "looks_like_sku",
            )
        )
    elif looks_wrong and problem in SHIPPED_WHAT:
        return done(
            "look_other_sku",
            R.WRONG_ITEM,
            0.75,
            f.claim(
                f"In the tunnel the item looked like another product more than {evidence.capture.sku}.",
                "looks_like_sku",
            ),
        )
    if (
        colour_claim
        and problem in SHIPPED_WHAT
        and not f.known("colour_matches")
        and f.get("looks_like_sku") is False
        and f.get("matches_sku") is True
        and not label_wrong
    ):
        # The colour could not be measured (an item in a tote of its own colour), but the look
        # check saw the item unlike its SKU while its printed words are the SKU's: the colour the
        # customer disputes is the difference the photos leave.
        return done(
            "colour_unmeasured_look_other",
            R.WRONG_VARIANT,
            UNMEASURED_COLOUR_CONFIDENCE,
            f.claim(
                f"The item's colour could not be measured in the tunnel photos, but it looked unlike"
                f" {evidence.capture.sku} while its printed title and label are the SKU's: a colour other"
                " than the catalog's is the likeliest difference.",
                "looks_like_sku",
                "matches_sku",
                "colour_matches",
            ),
        )
    if label_wrong or colour_wrong:
        said, facts = _label_mismatch(f, complaint) if label_wrong else _colour_mismatch(record)
        # A label naming another variant of the same product looks the same whether the picker
        # took the sibling SKU or the item was mislabelled; the customer's words tell them apart.
        cause = R.WRONG_ITEM if problem is P.WRONG_ITEM else R.WRONG_VARIANT
        return done("label_mismatch" if label_wrong else "colour_mismatch", cause, 0.85, f.claim(said, *facts))
    # The anomaly ensemble's verdict, not the classifier's sign of a dent or stain: a damaged
    # item of the right SKU is no wrong item.
    if problem is P.WRONG_ITEM and f.get("looks_abnormal") is True:
        return done(
            "looks_abnormal",
            R.WRONG_ITEM,
            0.6,
            f.claim("The item looks unlike the SKU's normal appearance in the tunnel.", "looks_abnormal"),
        )
    if problem is P.WRONG_ITEM and f.get("matches_sku") is True:
        return done(
            "printed_title_matches",
            R.CUSTOMER_MISPERCEPTION,
            0.6,
            f.claim("The printed title is the ordered product's.", "matches_sku"),
        )

    # 2. Dates. "Sooner than advertised" is a claim about the listing, whose date is the lot
    # record's: a print that disagrees with the record explains it, short-dated or not.
    listing_wrong = f.get("matches_lot_record") is False
    if problem is P.SHORT_DATED and listing_wrong:
        also = " It was also too close to expiry when it shipped." if f.get("expired_at_shipment") is True else ""
        return done(
            "short_dated_print_differs_from_record",
            R.CATALOG_LISTING_ERROR,
            0.8,
            f.claim(
                f"The printed expiry {f.get('expiry_date')} differs from the lot's inventory record"
                f" ({f.get('lot_recorded_expiry')}), which the listing shows.{also}",
                "matches_lot_record",
                "expiry_date",
                "lot_recorded_expiry",
                "expired_at_shipment",
            ),
        )
    if f.get("expired_at_shipment") is True:
        return done(
            "expired_at_shipment",
            R.EXPIRED_AT_SHIPMENT,
            0.9,
            f.claim(
                f"The printed expiry {f.get('expiry_date')} was already past the minimum shelf life at shipment.",
                "expired_at_shipment",
                "expiry_date",
            ),
        )
    if listing_wrong and problem in (P.NOT_AS_DESCRIBED, P.EXPIRED, P.OTHER):
        return done(
            "print_differs_from_record",
            R.CATALOG_LISTING_ERROR,
            0.8,
            f.claim(
                f"The printed expiry {f.get('expiry_date')} differs from the lot's inventory record,"
                " so the listing promised a different date.",
                "matches_lot_record",
                "expiry_date",
            ),
        )
    lot_decision = _from_lot_print(f, problem)
    if lot_decision is not None:
        return done(*lot_decision)
    if problem is P.UNREADABLE_DATE and f.get("unreadable") is True:
        return done(
            "print_unreadable_in_tunnel",
            R.DAMAGED_BEFORE_SHIPMENT,
            0.85,
            f.claim("The date print was already unreadable in the tunnel.", "unreadable"),
        )

    # 3. Contents and damage.
    if problem is P.EMPTY_OR_MISSING:
        if f.get("label_visible") is False or (
            f.known("expiry_date") is False
            and record
            and record.expiry.carries_date
            and f.get("unreadable") is not True
            and "expiry_date" in f.answers
        ):
            return done(
                "empty_no_label_or_print",
                R.EMPTY_OR_MISSING_PARTS,
                0.75,
                f.claim(
                    "No label or date print could be found on the item in the tunnel.", "label_visible", "expiry_date"
                ),
            )
        if f.get("empty_visible") is True:
            return done(
                "empty_visible",
                R.EMPTY_OR_MISSING_PARTS,
                0.85,
                f.claim("The item already looked empty or incomplete in the tunnel.", "empty_visible"),
            )
        return done(
            "empty_not_visible",
            R.EMPTY_OR_MISSING_PARTS,
            0.5,
            f.claim(
                "The tunnel photos cannot see inside the item and do not contradict the complaint.",
                "empty_visible",
                "damage_visible",
            ),
        )
    if f.get("damage_visible") is True and f.get("described_damage_seen") is False and problem is P.DAMAGED:
        # The damage seen is real and reported, but the one complained of came later: the
        # classifier named the damage it saw and it is not what the customer describes, or no
        # kind was named and the classifier, which shows signs of the kind described on most
        # items that carry it (`tools.RELIABLE_SIGN_RECALL`), showed none.
        described = ", ".join(k.replace("_", " ") for k in complaint.damage_kinds)
        typed_kinds = f.get("typed_damage")
        typed = str(typed_kinds).replace("_", " ") if typed_kinds else "damage"
        seen = f.claim(
            f"The {typed} the tunnel saw was already on the item; it is reported as found.",
            "typed_damage" if typed_kinds else "damage_visible",
        )
        if typed_kinds:
            why = f.claim(
                f"The tunnel's checks named {typed} on the item, not the {described} the customer describes:"
                " that damage points to after the tunnel.",
                "described_damage_seen",
                "typed_damage",
            )
            rule, confidence = "damage_of_another_kind_seen", DIFFERENT_DAMAGE_CONFIDENCE
        else:
            why = f.claim(
                f"The tunnel saw damage on the item without naming its kind, and the fine-grained classifier,"
                f" which shows signs of {described} on most items that carry it, showed none here: the"
                f" {described} described most likely came after the tunnel.",
                "described_damage_seen",
                "damage_visible",
            )
            rule, confidence = "described_kind_unsigned", UNSIGNED_DAMAGE_CONFIDENCE
        aside.append(seen)
        return done(rule, R.DAMAGED_AFTER_TUNNEL, confidence, why)
    if f.get("damage_visible") is True and problem is not P.MISSING_PACKAGING:
        return done(
            "damage_visible",
            R.DAMAGED_BEFORE_SHIPMENT,
            0.9,
            f.claim("The damage is visible in the tunnel photos taken before shipment.", "damage_visible"),
        )
    # A look the item's wrong colour already explains is no sign of damage (the colour is reported).
    if looks_wrong and problem is P.DAMAGED and f.get("colour_matches") is not False:
        return done(
            "look_unlike_sku_damaged",
            R.DAMAGED_BEFORE_SHIPMENT,
            0.6,
            f.claim(
                f"In the tunnel the item already looked unlike {evidence.capture.sku}'s normal look.", "looks_like_sku"
            ),
        )

    # 4. What the customer may have misread.
    if problem is P.MISSING_PACKAGING and f.get("unboxed_allowed") is True:
        return done(
            "unboxed_allowed",
            R.CUSTOMER_MISPERCEPTION,
            0.85,
            f.claim("The catalog allows this SKU to ship without its outer box.", "unboxed_allowed"),
            f.claim("No damage was visible in the tunnel.", "damage_visible"),
        )
    if problem is P.EXPIRED and not f.known("expiry_date") and f.get("lot_print_shows_quoted_date") is True:
        # The item's print was not read, but its lot's was: the date quoted is the print's other date.
        return done(
            "quoted_date_beside_expiry_on_lot_print",
            R.CUSTOMER_MISPERCEPTION,
            LOT_PRINT_CONFIDENCE,
            f.claim(
                "No expiry was read on the item, but the tunnel read both the date the customer quotes and the"
                f" lot's recorded expiry {f.get('lot_recorded_expiry')} on items of its lot: the print carries"
                " both, so the quoted date is its production date, not its expiry.",
                "lot_print_shows_quoted_date",
                "lot_recorded_expiry",
                "expiry_date",
            ),
        )
    if problem is P.EXPIRED and f.get("expired_at_shipment") is None and f.get("lot_recorded_expiry"):
        # The print was not read; the lot record says the stock was valid. A quoted date months
        # before shipment cannot be this lot's expiry: it is the production date.
        old = [q for q in complaint.claimed_dates if q < (evidence.shipped_on - timedelta(days=90)).isoformat()]
        if old:
            return done(
                "quoted_date_months_before_shipment",
                R.CUSTOMER_MISPERCEPTION,
                0.6,
                f.claim(
                    f"The lot's recorded expiry is {f.get('lot_recorded_expiry')}; the date the customer quotes"
                    f" ({old[0]}) is months before shipment, so it is a production date.",
                    "lot_recorded_expiry",
                    "expiry_date",
                ),
            )
    if problem is P.EXPIRED and f.get("expired_at_shipment") is False:
        quoted = set(complaint.claimed_dates)
        mfg = f.get("manufactured_date")
        why = (
            "the customer quotes the production date"
            if mfg and any(str(mfg).startswith(q) or q.startswith(str(mfg)) for q in quoted)
            else "the printed expiry was still valid at shipment"
        )
        quoted_production = "production" in why
        return done(
            "production_date_quoted" if quoted_production else "expiry_valid_at_shipment",
            R.CUSTOMER_MISPERCEPTION,
            0.85 if quoted_production else 0.7,
            f.claim(
                f"The printed expiry {f.get('expiry_date')} was valid at shipment; {why}.",
                "expired_at_shipment",
                "manufactured_date",
            ),
        )
    if problem in (P.WRONG_VARIANT, P.NOT_AS_DESCRIBED) and colour_claim and f.get("colour_matches") is True:
        return done(
            "colour_matches",
            R.CUSTOMER_MISPERCEPTION,
            0.7,
            f.claim("The item in the tunnel photos shows the catalog's colour.", "colour_matches"),
        )
    # A right size label says nothing about a colour the customer disputes.
    if problem in (P.WRONG_VARIANT, P.NOT_AS_DESCRIBED) and not colour_claim and f.get("matches_catalog") is True:
        return done(
            "label_matches",
            R.CUSTOMER_MISPERCEPTION,
            0.75,
            f.claim(
                f"The label reads {f.get('observed')}, exactly the catalog's value for the ordered SKU.",
                "matches_catalog",
                "observed",
            ),
        )
    if problem is P.DAMAGED and f.get("damage_visible") is False and f.get("described_damage_in_lot") is True:
        # The tunnel misses part of the damage items carry; a lot that shows the described damage
        # on many of its items most likely carried it on this one too.
        return done(
            "lot_damage_pattern",
            R.DAMAGED_BEFORE_SHIPMENT,
            LOT_PATTERN_CONFIDENCE,
            f.claim(
                "No damage was visible in this item's tunnel photos, but the tunnel found the damage described"
                " on many other items of its lot: the lot left its seller damaged, and this item most likely did.",
                "described_damage_in_lot",
                "damage_visible",
            ),
        )
    if problem in (P.DAMAGED, P.UNREADABLE_DATE) and f.get("damage_visible") is False:
        return done(
            "damage_not_visible",
            R.DAMAGED_AFTER_TUNNEL,
            UNSEEN_DAMAGE_CONFIDENCE,
            f.claim(
                "No damage was visible in the tunnel photos. The tunnel's checks find about half of the"
                " damage items already carry when they pass, so this points to damage after the tunnel"
                " without proving it.",
                "damage_visible",
            ),
        )
    if problem is P.SHORT_DATED and f.get("matches_lot_record") is True:
        return done(
            "print_matches_record",
            R.CUSTOMER_MISPERCEPTION,
            0.6,
            f.claim("The printed expiry agrees with the lot record.", "matches_lot_record"),
        )
    texts: dict[str, Answer] = {}
    for a in answers:
        if a.status == "answered" and a.citations:
            texts.setdefault(a.text, a)
    checked = list(texts.values())
    return done(
        "inconclusive",
        R.INCONCLUSIVE,
        0.5,
        *(Claim(text=f"{a.text[0].upper()}{a.text[1:]}.", citations=a.citations) for a in checked[:3]),
    )
