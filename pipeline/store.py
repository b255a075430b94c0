"""SQLite store: captures (the durable inbox), findings, verdicts, events (the outbox), labels.

One file, WAL mode. The inbox is keyed by item_id (`INSERT OR IGNORE`), so a camera that
re-sends an item does not create a second one; a worker leases items, and the verdict, its
findings, the state change and the outbox events are written in one transaction, so a crash
at any point either loses nothing or re-delivers one leased item (at-least-once), and the
decision itself is idempotent (an upsert keyed by item_id). Outbox events are unique per
(item_id, type), so a re-processed item never emits a second divert signal.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.types import Finding, ItemCapture, Verdict

SCHEMA_VERSION = 2

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE captures (
        item_id TEXT PRIMARY KEY,
        sku TEXT NOT NULL,
        lot TEXT,
        seller TEXT,
        fc TEXT,
        tunnel TEXT,
        captured_at TEXT NOT NULL,
        capture_json TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'leased', 'done')),
        lease_until REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        received_at REAL NOT NULL
    );
    CREATE INDEX captures_state ON captures (state, received_at);
    CREATE INDEX captures_lot ON captures (lot);
    CREATE TABLE verdicts (
        item_id TEXT PRIMARY KEY REFERENCES captures (item_id),
        sku TEXT NOT NULL,
        action TEXT NOT NULL,
        decided_at TEXT NOT NULL,
        verdict_json TEXT NOT NULL
    );
    CREATE INDEX verdicts_action ON verdicts (action, decided_at);
    CREATE TABLE findings (
        item_id TEXT NOT NULL,
        stage TEXT NOT NULL,
        kind TEXT NOT NULL,
        score REAL NOT NULL,
        probability REAL NOT NULL,
        finding_json TEXT NOT NULL
    );
    CREATE INDEX findings_item ON findings (item_id);
    CREATE INDEX findings_kind ON findings (kind);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        item_id TEXT,
        type TEXT NOT NULL,
        dedup_key TEXT NOT NULL UNIQUE,
        payload_json TEXT NOT NULL,
        created_at REAL NOT NULL,
        delivered_at REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE INDEX events_pending ON events (delivered_at, id);
    CREATE TABLE labels (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        item_id TEXT NOT NULL,
        label TEXT NOT NULL,
        decision TEXT NOT NULL,
        reviewer TEXT,
        note TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX labels_item ON labels (item_id);
    """,
    2: """
    CREATE INDEX captures_open ON captures (state) WHERE state != 'done';
    """,
}


class StoreError(RuntimeError):
    """A store that cannot be used: not SQLite, another program's database, a newer schema."""


@dataclass(frozen=True)
class Event:
    id: int
    item_id: str | None
    type: str
    payload: dict[str, Any]
    attempts: int


class Store:
    """Thread-safe handle on one SQLite file (a connection per thread)."""

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL", busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"{self.path}: not a tunnelpi store (a folder)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create the store ({exc.strerror}: {exc.filename})") from None
        self._synchronous = synchronous
        self._timeout = busy_timeout_s
        self._local = threading.local()
        self._refuse_foreign()
        self._migrate()

    # -- connections -----------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                if conn is not None:
                    conn.close()
                raise StoreError(f"{self.path}: cannot open the store ({exc})") from None
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: one writer at a time, all or nothing."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _refuse_foreign(self) -> None:
        """Refuse a file that is not a tunnelpi store before WAL mode or the schema is written into it.

        SQLite opens any file: one that is not a database fails only at its first statement."""
        try:
            conn = sqlite3.connect(self.path, timeout=self._timeout)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the store ({exc})") from None
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            foreign = _tables(conn) if version == 0 else []
        except sqlite3.OperationalError as exc:
            raise StoreError(f"{self.path}: cannot open the store ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a tunnelpi store ({exc})") from None
        finally:
            conn.close()
        if foreign:  # another program's database: the schema added to it would mix two programs' data
            raise StoreError(f"{self.path}: not a tunnelpi store (holds tables {', '.join(foreign[:5])})")

    def _migrate(self) -> None:
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this tunnelpi ({SCHEMA_VERSION}); upgrade"
                )
            for v in range(version + 1, SCHEMA_VERSION + 1):
                # executescript() would COMMIT mid-transaction, so statements run one by one.
                for statement in _statements(MIGRATIONS[v]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={v}")

    @property
    def schema_version(self) -> int:
        return self._conn().execute("PRAGMA user_version").fetchone()[0]

    # -- inbox -----------------------------------------------------------------------
    def enqueue(self, capture: ItemCapture) -> bool:
        """Add a capture to the inbox; False if this item_id is already known (idempotent)."""
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO captures (item_id, sku, lot, seller, fc, tunnel, captured_at, capture_json,"
                " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    capture.item_id,
                    capture.sku,
                    capture.lot,
                    capture.seller,
                    capture.fc,
                    capture.tunnel,
                    capture.captured_at.isoformat(),
                    capture.to_json(),
                    time.time(),
                ),
            )
            return cur.rowcount == 1

    def lease(self, limit: int = 1, lease_s: float = 30.0) -> list[ItemCapture]:
        """Take up to `limit` pending items (or items whose lease expired) for processing."""
        now = time.time()
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT item_id, capture_json FROM captures WHERE state = 'pending'"
                " OR (state = 'leased' AND lease_until < ?) ORDER BY received_at LIMIT ?",
                (now, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE captures SET state = 'leased', lease_until = ?, attempts = attempts + 1 WHERE item_id = ?",
                [(now + lease_s, r["item_id"]) for r in rows],
            )
        return [ItemCapture.from_json(r["capture_json"]) for r in rows]

    def complete(self, verdict: Verdict, events: list[tuple[str, dict[str, Any]]] = ()) -> None:
        """Record the verdict, its findings, the state change and outbox events atomically."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO verdicts (item_id, sku, action, decided_at, verdict_json) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (item_id) DO UPDATE SET action = excluded.action, decided_at = excluded.decided_at,"
                " verdict_json = excluded.verdict_json",
                (verdict.item_id, verdict.sku, verdict.action.value, verdict.decided_at.isoformat(), verdict.to_json()),
            )
            conn.execute("DELETE FROM findings WHERE item_id = ?", (verdict.item_id,))
            conn.executemany(
                "INSERT INTO findings (item_id, stage, kind, score, probability, finding_json)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(verdict.item_id, f.stage, f.kind, f.score, f.probability, f.to_json()) for f in verdict.findings],
            )
            conn.execute("UPDATE captures SET state = 'done', lease_until = NULL WHERE item_id = ?", (verdict.item_id,))
            for event_type, payload in events:
                self._add_event(conn, verdict.item_id, event_type, payload)

    def release(self, item_id: str) -> None:
        """Give a leased item back to the queue (e.g. on shutdown)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE captures SET state = 'pending', lease_until = NULL WHERE item_id = ? AND state = 'leased'",
                (item_id,),
            )

    def recover_leases(self) -> int:
        """Put every leased item back in the queue; call once when the single owning service starts."""
        with self.transaction() as conn:
            cur = conn.execute("UPDATE captures SET state = 'pending', lease_until = NULL WHERE state = 'leased'")
            return cur.rowcount

    def queue_depth(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM captures WHERE state != 'done'").fetchone()[0]

    def capture(self, item_id: str) -> ItemCapture | None:
        row = self._conn().execute("SELECT capture_json FROM captures WHERE item_id = ?", (item_id,)).fetchone()
        return ItemCapture.from_json(row["capture_json"]) if row else None

    def captures(
        self, lot: str | None = None, since: datetime | str | None = None, limit: int | None = None
    ) -> list[ItemCapture]:
        """Captures of one lot and/or captured at or after `since`, oldest first (ties by item_id).

        `since` is compared with the stored ISO timestamp (UTC unless the camera sent an offset):
        an aware datetime is converted to UTC first, and a bare date ("2026-11-22") means from
        the start of that day.
        """
        sql, args = "SELECT capture_json FROM captures WHERE 1=1", []
        if lot is not None:
            sql, args = sql + " AND lot = ?", [*args, lot]
        if since is not None:
            if isinstance(since, datetime):
                since = (since.astimezone(UTC) if since.tzinfo else since).isoformat()
            sql, args = sql + " AND captured_at >= ?", [*args, since]
        sql += " ORDER BY captured_at, item_id"
        if limit is not None:
            sql, args = sql + " LIMIT ?", [*args, limit]
        return [ItemCapture.from_json(r["capture_json"]) for r in self._conn().execute(sql, args)]

    def state(self, item_id: str) -> str | None:
        row = self._conn().execute("SELECT state FROM captures WHERE item_id = ?", (item_id,)).fetchone()
        return row["state"] if row else None

    # -- verdicts --------------------------------------------------------------------
    def verdict(self, item_id: str) -> Verdict | None:
        row = self._conn().execute("SELECT verdict_json FROM verdicts WHERE item_id = ?", (item_id,)).fetchone()
        return Verdict.from_json(row["verdict_json"]) if row else None

    def findings(self, item_id: str) -> list[Finding]:
        """Findings recorded for one item, in the order its verdict listed them (empty if unknown)."""
        sql = "SELECT finding_json FROM findings WHERE item_id = ? ORDER BY rowid"
        return [Finding.from_json(r["finding_json"]) for r in self._conn().execute(sql, (item_id,))]

    def verdicts(
        self, *, action: str | None = None, since: str | None = None, limit: int | None = None
    ) -> list[Verdict]:
        sql, args = "SELECT verdict_json FROM verdicts WHERE 1=1", []
        if action:
            sql, args = sql + " AND action = ?", [*args, action]
        if since:
            sql, args = sql + " AND decided_at >= ?", [*args, since]
        sql += " ORDER BY decided_at"
        if limit:
            sql, args = sql + " LIMIT ?", [*args, limit]
        return [Verdict.from_json(r["verdict_json"]) for r in self._conn().execute(sql, args)]

    def verdict_counts(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT action, COUNT(*) AS n FROM verdicts GROUP BY action")
        return {r["action"]: r["n"] for r in rows}

    # -- outbox ----------------------------------------------------------------------
    @staticmethod
    def _add_event(conn: sqlite3.Connection, item_id: str | None, event_type: str, payload: dict[str, Any]) -> None:
        key = payload.get("dedup_key") or f"{event_type}:{item_id}"
        conn.execute(
            "INSERT OR IGNORE INTO events (item_id, type, dedup_key, payload_json, created_at) VALUES (?, ?, ?, ?, ?)",
            (item_id, event_type, key, json.dumps(payload, default=str), time.time()),
        )

    def add_event(self, item_id: str | None, event_type: str, payload: dict[str, Any]) -> None:
        with self.transaction() as conn:
            self._add_event(conn, item_id, event_type, payload)

    def pending_events(self, limit: int = 100, types: tuple[str, ...] | None = None) -> list[Event]:
        sql, args = "SELECT * FROM events WHERE delivered_at IS NULL", []
        if types:
            sql += f" AND type IN ({','.join('?' * len(types))})"
            args += list(types)
        sql += " ORDER BY id LIMIT ?"
        rows = self._conn().execute(sql, [*args, limit]).fetchall()
        return [Event(r["id"], r["item_id"], r["type"], json.loads(r["payload_json"]), r["attempts"]) for r in rows]

    def pending_event_count(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM events WHERE delivered_at IS NULL").fetchone()[0]

    def mark_delivered(self, event_id: int) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE events SET delivered_at = ? WHERE id = ?", (time.time(), event_id))

    def mark_failed(self, event_id: int, error: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE events SET attempts = attempts + 1, last_error = ? WHERE id = ?", (error, event_id))

    def events(self, event_type: str | None = None) -> list[Event]:
        sql, args = "SELECT * FROM events", []
        if event_type:
            sql, args = sql + " WHERE type = ?", [event_type]
        rows = self._conn().execute(sql + " ORDER BY id", args).fetchall()
        return [Event(r["id"], r["item_id"], r["type"], json.loads(r["payload_json"]), r["attempts"]) for r in rows]

    # -- labels (reviewer decisions) -------------------------------------------------
    def add_label(
        self, item_id: str, label: str, decision: str, reviewer: str | None = None, note: str | None = None
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO labels (item_id, label, decision, reviewer, note, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (item_id, label, decision, reviewer, note, time.time()),
            )

    def labels(self, item_id: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM labels", []
        if item_id:
            sql, args = sql + " WHERE item_id = ?", [item_id]
        return [dict(r) for r in self._conn().execute(sql + " ORDER BY id", args)]

    # -- export ----------------------------------------------------------------------
    def export_parquet(self, out_dir: Path | str) -> dict[str, Path]:
        """Write each table to `<table>.parquet` for analytics tools."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = {}
        for table in ("captures", "verdicts", "findings", "events", "labels"):
            cur = self._conn().execute(f"SELECT * FROM {table}")
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
            columns = {n: [r[i] for r in rows] for i, n in enumerate(names)}
            path = out / f"{table}.parquet"
            pq.write_table(pa.table(columns), path)
            written[table] = path
        return written


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _tables(conn: sqlite3.Connection) -> list[str]:
    sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    return [r[0] for r in conn.execute(sql)]
