"""Store read queries: an item's findings, and captures filtered by lot and capture time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline.store import Store
from pipeline.types import Action, Evidence, Finding, Frame, ItemCapture, Verdict

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)

# item_id, lot, minutes after T0 (enqueued in this order, deliberately not by time)
CAPTURES = [
    ("B2", "L1", 30),
    ("A1", "L1", 0),
    ("C3", "L2", 30),
    ("D4", None, 60),
    ("E5", "L1", 24 * 60),
    ("A0", "L2", 30),
]


def finding(kind: str, p: float, camera: str = "top") -> Finding:
    return Finding(
        stage="anomaly",
        kind=kind,
        score=p * 10,
        probability=p,
        message=f"{kind} seen",
        evidence=[Evidence(camera=camera, box=[1, 2, 30, 40], data={"k": kind})],
    )


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    store = Store(tmp_path / "tunnel.db")
    for item_id, lot, minutes in CAPTURES:
        store.enqueue(
            ItemCapture(
                item_id=item_id,
                sku="S1",
                lot=lot,
                captured_at=T0 + timedelta(minutes=minutes),
                frames=[Frame(camera="top", uri=f"images/{item_id}.jpg")],
            )
        )
    yield store
    store.close()


@pytest.mark.parametrize(
    ("lot", "since", "limit", "expected"),
    [
        (None, None, None, ["A1", "A0", "B2", "C3", "D4", "E5"]),
        ("L1", None, None, ["A1", "B2", "E5"]),
        ("L2", None, None, ["A0", "C3"]),
        ("NOPE", None, None, []),
        (None, T0 + timedelta(minutes=30), None, ["A0", "B2", "C3", "D4", "E5"]),
        (None, T0 + timedelta(minutes=31), None, ["D4", "E5"]),
        (None, "2026-11-23", None, ["E5"]),
        (None, "2026-11-22", None, ["A1", "A0", "B2", "C3", "D4", "E5"]),
        (None, (T0 + timedelta(minutes=60)).astimezone(timezone(timedelta(hours=2))), None, ["D4", "E5"]),
        ("L1", T0 + timedelta(minutes=1), None, ["B2", "E5"]),
        (None, None, 2, ["A1", "A0"]),
        ("L2", None, 1, ["A0"]),
        (None, None, 0, []),
        ("L1", "2027-01-01", None, []),
    ],
    ids=[
        "all",
        "lot-L1",
        "lot-L2-tie-by-item-id",
        "unknown-lot",
        "since-datetime-inclusive",
        "since-datetime-exclusive",
        "since-date-string",
        "since-day-start",
        "since-other-offset",
        "lot-and-since",
        "limit",
        "lot-and-limit",
        "limit-zero",
        "nothing-after",
    ],
)
def test_captures_filters_and_order(store, lot, since, limit, expected) -> None:
    got = store.captures(lot=lot, since=since, limit=limit)
    assert [c.item_id for c in got] == expected
    assert all(isinstance(c, ItemCapture) for c in got)
    if lot is not None:
        assert {c.lot for c in got} <= {lot}


def test_captures_round_trip_the_stored_capture(store) -> None:
    (a1,) = [c for c in store.captures(lot="L1") if c.item_id == "A1"]
    assert a1 == store.capture("A1")
    assert a1.captured_at == T0 and a1.frames[0].uri == "images/A1.jpg"


@pytest.mark.parametrize(
    ("item_id", "verdicts", "expected"),
    [
        ("A1", [[finding("stain", 0.9), finding("dent", 0.4, "side")]], [("stain", 0.9), ("dent", 0.4)]),
        ("B2", [[]], []),
        (
            "C3",
            [[finding("tear", 0.8)], [finding("dent", 0.7), finding("stain", 0.6)]],
            [("dent", 0.7), ("stain", 0.6)],
        ),
        ("D4", [], []),
        ("NOPE-1", [], []),
    ],
    ids=["in-verdict-order", "verdict-without-findings", "reprocessed-keeps-latest", "no-verdict", "unknown-item"],
)
def test_findings_for_one_item(store, item_id, verdicts, expected) -> None:
    for findings in verdicts:
        store.complete(Verdict(item_id=item_id, sku="S1", action=Action.DIVERT, findings=findings))
    store.complete(Verdict(item_id="E5", sku="S1", action=Action.DIVERT, findings=[finding("other_item", 0.99)]))
    got = store.findings(item_id)
    assert [(f.kind, f.probability) for f in got] == expected
    assert all(isinstance(f, Finding) for f in got)
    if verdicts:
        assert got == store.verdict(item_id).findings, "the findings table matches the verdict's list"


def test_findings_keep_their_evidence(store) -> None:
    stored = finding("stain", 0.9)
    store.complete(Verdict(item_id="A1", sku="S1", action=Action.DIVERT, findings=[stored]))
    (got,) = store.findings("A1")
    assert got == stored
    assert got.evidence[0].box == [1, 2, 30, 40] and got.evidence[0].data == {"k": "stain"}


def test_queries_see_another_handle_on_the_same_file(store, tmp_path) -> None:
    store.complete(Verdict(item_id="A1", sku="S1", action=Action.DIVERT, findings=[finding("stain", 0.9)]))
    other = Store(tmp_path / "tunnel.db")
    try:
        assert [f.kind for f in other.findings("A1")] == ["stain"]
        assert [c.item_id for c in other.captures(lot="L2")] == ["A0", "C3"]
    finally:
        other.close()
