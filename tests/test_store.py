"""SQLite store: idempotent inbox, atomic completion, outbox de-duplication, crash safety."""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError
from pipeline.types import Action, Finding, Frame, ItemCapture, Verdict


def cap(i: int) -> ItemCapture:
    return ItemCapture(item_id=f"I{i:05d}", sku="S1", lot="L1", frames=[Frame(camera="top", uri=f"{i}.jpg")])


def verdict(item_id: str, action: Action = Action.PASS, kinds: tuple[str, ...] = ()) -> Verdict:
    findings = [Finding(stage="t", kind=k, score=1.0, probability=0.9) for k in kinds]
    return Verdict(item_id=item_id, sku="S1", action=action, findings=findings)


def test_enqueue_is_idempotent_and_lease_completes(tmp_path) -> None:
    store = Store(tmp_path / "s.db")
    assert store.enqueue(cap(1)) is True
    assert store.enqueue(cap(1)) is False
    assert store.queue_depth() == 1
    (leased,) = store.lease(5)
    assert leased.item_id == "I00001" and store.state("I00001") == "leased"
    assert store.lease(5) == []
    store.complete(verdict("I00001", Action.DIVERT, ("anomaly",)), [("divert", {"item_id": "I00001"})])
    assert store.queue_depth() == 0 and store.state("I00001") == "done"
    assert store.verdict("I00001").action is Action.DIVERT
    assert store.verdict_counts() == {"divert": 1}


def test_reprocessing_upserts_and_never_duplicates_events(tmp_path) -> None:
    store = Store(tmp_path / "s.db")
    store.enqueue(cap(1))
    for action in (Action.DIVERT, Action.DIVERT):
        store.complete(verdict("I00001", action, ("anomaly", "stain")), [("divert", {"action": "divert"})])
    assert len(store.events("divert")) == 1
    assert len(store._conn().execute("SELECT * FROM findings").fetchall()) == 2
    assert len(store.verdicts()) == 1


def test_expired_lease_is_redelivered(tmp_path) -> None:
    store = Store(tmp_path / "s.db")
    store.enqueue(cap(1))
    assert len(store.lease(1, lease_s=-1)) == 1
    assert len(store.lease(1)) == 1, "a lease that ran out goes back to the queue"


def test_outbox_delivery_bookkeeping(tmp_path) -> None:
    store = Store(tmp_path / "s.db")
    store.add_event("I1", "quarantine", {"lot": "L1", "dedup_key": "quarantine:L1"})
    store.add_event("I2", "quarantine", {"lot": "L1", "dedup_key": "quarantine:L1"})
    (event,) = store.pending_events()
    store.mark_failed(event.id, "timeout")
    assert store.pending_events()[0].attempts == 1
    store.mark_delivered(event.id)
    assert store.pending_events() == []


def test_schema_version_and_newer_schema_refused(tmp_path) -> None:
    path = tmp_path / "s.db"
    assert Store(path).schema_version == SCHEMA_VERSION
    Store(path)  # reopening migrates nothing
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_export_parquet(tmp_path) -> None:
    store = Store(tmp_path / "s.db")
    store.enqueue(cap(1))
    store.complete(verdict("I00001", Action.REVIEW, ("unreadable",)))
    store.add_label("I00001", "unreadable_date", "accept", reviewer="ana")
    paths = store.export_parquet(tmp_path / "pq")
    assert pq.read_table(paths["verdicts"]).column("action").to_pylist() == ["review"]
    assert pq.read_table(paths["labels"]).num_rows == 1


def _worker(path: str, n: int) -> None:
    store = Store(path)
    for i in range(n):
        store.enqueue(cap(i))
        for c in store.lease(1):
            store.complete(verdict(c.item_id, Action.DIVERT), [("divert", {"item_id": c.item_id})])


def test_sigkill_loses_nothing(tmp_path) -> None:
    """Kill a writer mid-stream; after recovery every enqueued item ends with exactly one verdict."""
    path = str(tmp_path / "s.db")
    Store(path)
    proc = mp.get_context("spawn").Process(target=_worker, args=(path, 100_000))
    proc.start()
    store = Store(path)
    while store._conn().execute("SELECT COUNT(*) FROM verdicts").fetchone()[0] < 200 and proc.is_alive():
        pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    enqueued = store._conn().execute("SELECT COUNT(*) FROM captures").fetchone()[0]
    for c in store.lease(enqueued, lease_s=30) + store.lease(enqueued, lease_s=30):
        store.complete(verdict(c.item_id, Action.DIVERT), [("divert", {"item_id": c.item_id})])
    # items leased by the killed worker come back once their lease runs out
    stuck = store._conn().execute("SELECT COUNT(*) FROM captures WHERE state = 'leased'").fetchone()[0]
    assert stuck <= 1
    store._conn().execute("UPDATE captures SET lease_until = 0 WHERE state = 'leased'")
    for c in store.lease(10):
        store.complete(verdict(c.item_id, Action.DIVERT), [("divert", {"item_id": c.item_id})])
    assert store.queue_depth() == 0
    assert len(store.verdicts()) == enqueued
    assert len(store.events("divert")) == enqueued


def test_recover_leases_and_event_backlog(tmp_path) -> None:
    store = Store(tmp_path / "s.db")
    for i in range(3):
        store.enqueue(cap(i))
    assert len(store.lease(2, lease_s=3600)) == 2
    assert store.recover_leases() == 2
    assert len(store.lease(5)) == 3
    store.add_event("I1", "divert", {})
    assert store.pending_event_count() == 1


def test_migrates_a_version_one_store(tmp_path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for statement in MIGRATIONS[1].split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("PRAGMA user_version=1")
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    indexes = {r[0] for r in store._conn().execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "captures_open" in indexes


def _other_programs_database(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.close()


def _snapshot(path: Path) -> object:
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else path.read_bytes()


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda p: p.write_text('{"skus": {}}\n'), "not a tunnelpi store (file is not a database)"),
        (lambda p: p.mkdir(), "not a tunnelpi store (a folder)"),
        (_other_programs_database, "not a tunnelpi store (holds tables notes)"),
    ],
    ids=["json-file", "folder", "other-sqlite"],
)
def test_a_path_that_is_no_store_is_refused_and_left_as_it_was(
    tmp_path: Path, make: Callable[[Path], object], error: str
) -> None:
    path = tmp_path / "store.db"
    make(path)
    before = _snapshot(path)
    with pytest.raises(StoreError, match=re.escape(f"{path}: {error}")):
        Store(path)
    assert _snapshot(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.db"]


def test_a_store_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "catalog.json").write_text("{}")
    with pytest.raises(StoreError, match="cannot create the store"):
        Store(tmp_path / "catalog.json" / "store.db")
