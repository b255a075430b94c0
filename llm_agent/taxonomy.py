"""The fixed vocabularies of an investigation: root causes, claimed problems, actions.

A report is only comparable across backends, weeks and sellers if every investigation ends
in one of the same few root causes, each tied to the actions a team takes for it.
"""

from __future__ import annotations

from enum import StrEnum


class RootCause(StrEnum):
    WRONG_VARIANT = "wrong_variant"
    WRONG_ITEM = "wrong_item"
    DAMAGED_BEFORE_SHIPMENT = "damaged_before_shipment"
    DAMAGED_AFTER_TUNNEL = "damaged_after_tunnel"
    EXPIRED_AT_SHIPMENT = "expired_at_shipment"
    EMPTY_OR_MISSING_PARTS = "empty_or_missing_parts"
    CATALOG_LISTING_ERROR = "catalog_listing_error"
    CUSTOMER_MISPERCEPTION = "customer_misperception"
    INCONCLUSIVE = "inconclusive"


DAMAGE_TYPES = frozenset({"torn_box", "crushed_corner", "bent_cover", "broken_seal", "stain", "puncture"})
"""Kinds of physical damage by the names the tunnel's checks give them (the fine-grained
classifier's types; the anomaly ensemble sees damage without naming it). A customer's words for
damage are read into the same names."""


class ClaimedProblem(StrEnum):
    """What the customer says is wrong (before any evidence is looked at)."""

    WRONG_VARIANT = "wrong_variant"
    WRONG_ITEM = "wrong_item"
    DAMAGED = "damaged"
    EXPIRED = "expired"
    EMPTY_OR_MISSING = "empty_or_missing"
    NOT_AS_DESCRIBED = "not_as_described"
    MISSING_PACKAGING = "missing_packaging"
    UNREADABLE_DATE = "unreadable_date"
    SHORT_DATED = "short_dated"
    OTHER = "other"


class Action(StrEnum):
    REMOVE_LOT = "remove_lot"
    INSPECT_LOT = "inspect_lot"
    REFUND = "refund"
    REPLACE = "replace"
    NOTIFY_SELLER = "notify_seller"
    FIX_LISTING = "fix_listing"
    FILE_CARRIER_CLAIM = "file_carrier_claim"
    REVIEW_PACKING = "review_packing"
    EXPLAIN_TO_CUSTOMER = "explain_to_customer"
    MANUAL_REVIEW = "manual_review"


DESCRIPTIONS: dict[RootCause, str] = {
    RootCause.WRONG_VARIANT: "the right product in the wrong variant (size, model or colour) was shipped",
    RootCause.WRONG_ITEM: "a different product was shipped",
    RootCause.DAMAGED_BEFORE_SHIPMENT: "the damage was already there when the item passed the tunnel: it left the"
    " building damaged",
    RootCause.DAMAGED_AFTER_TUNNEL: "the damage reported is not in the tunnel photos: it came later (packing, transit)",
    RootCause.EXPIRED_AT_SHIPMENT: "the printed expiry date had passed, or was too close, when the item shipped",
    RootCause.EMPTY_OR_MISSING_PARTS: "the container was empty or parts were missing when the item passed the tunnel",
    RootCause.CATALOG_LISTING_ERROR: "the item matches its catalog record, but the listing describes it wrongly",
    RootCause.CUSTOMER_MISPERCEPTION: "the item was as expected; the complaint rests on a misreading "
    "(e.g. a production date taken for the expiry, or an allowed packaging variant)",
    RootCause.INCONCLUSIVE: "the tunnel evidence neither confirms nor rules out the complaint",
}

ACTIONS: dict[RootCause, list[Action]] = {
    RootCause.WRONG_VARIANT: [Action.REFUND, Action.REPLACE, Action.NOTIFY_SELLER, Action.INSPECT_LOT],
    RootCause.WRONG_ITEM: [Action.REFUND, Action.REPLACE, Action.REVIEW_PACKING, Action.NOTIFY_SELLER],
    RootCause.DAMAGED_BEFORE_SHIPMENT: [Action.REFUND, Action.NOTIFY_SELLER, Action.INSPECT_LOT],
    RootCause.DAMAGED_AFTER_TUNNEL: [Action.REFUND, Action.FILE_CARRIER_CLAIM, Action.REVIEW_PACKING],
    RootCause.EXPIRED_AT_SHIPMENT: [Action.REFUND, Action.REMOVE_LOT, Action.NOTIFY_SELLER],
    RootCause.EMPTY_OR_MISSING_PARTS: [Action.REFUND, Action.NOTIFY_SELLER, Action.INSPECT_LOT],
    RootCause.CATALOG_LISTING_ERROR: [Action.FIX_LISTING, Action.REFUND, Action.NOTIFY_SELLER],
    RootCause.CUSTOMER_MISPERCEPTION: [Action.EXPLAIN_TO_CUSTOMER],
    RootCause.INCONCLUSIVE: [Action.MANUAL_REVIEW],
}

PLAUSIBLE: dict[ClaimedProblem, tuple[RootCause, ...]] = {
    ClaimedProblem.WRONG_VARIANT: (
        RootCause.WRONG_VARIANT,
        RootCause.CATALOG_LISTING_ERROR,
        RootCause.CUSTOMER_MISPERCEPTION,
    ),
    ClaimedProblem.WRONG_ITEM: (RootCause.WRONG_ITEM, RootCause.CATALOG_LISTING_ERROR, RootCause.WRONG_VARIANT),
    ClaimedProblem.DAMAGED: (RootCause.DAMAGED_BEFORE_SHIPMENT, RootCause.DAMAGED_AFTER_TUNNEL),
    ClaimedProblem.EXPIRED: (RootCause.EXPIRED_AT_SHIPMENT, RootCause.CUSTOMER_MISPERCEPTION),
    ClaimedProblem.EMPTY_OR_MISSING: (RootCause.EMPTY_OR_MISSING_PARTS, RootCause.DAMAGED_AFTER_TUNNEL),
    ClaimedProblem.NOT_AS_DESCRIBED: (RootCause.CATALOG_LISTING_ERROR, RootCause.WRONG_VARIANT),
    ClaimedProblem.MISSING_PACKAGING: (RootCause.CUSTOMER_MISPERCEPTION, RootCause.EMPTY_OR_MISSING_PARTS),
    ClaimedProblem.UNREADABLE_DATE: (RootCause.DAMAGED_BEFORE_SHIPMENT, RootCause.DAMAGED_AFTER_TUNNEL),
    ClaimedProblem.SHORT_DATED: (RootCause.CATALOG_LISTING_ERROR, RootCause.EXPIRED_AT_SHIPMENT),
    ClaimedProblem.OTHER: (RootCause.INCONCLUSIVE,),
}
"""Root causes an investigation of each claimed problem usually ends in (the planner's hypotheses)."""
