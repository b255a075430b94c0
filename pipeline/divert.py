"""Divert signals to the line controller, delivered from the store's outbox.

The PLC owns timing; tunnelpi only tells it (item_id, action). Every sink sits behind the
`DivertSink` protocol and raises on failure, so the `Dispatcher` can retry with backoff and
mark an outbox event delivered only after the peer accepted it. Delivery is at-least-once
(a crash between "sent" and "marked delivered" re-sends one event), so every sink is
idempotent: the same (item_id, action) written twice has the effect of writing it once.

Sink URLs (`make_sink`):

- ``log:PATH`` or ``log:`` (Python logger) — JSON lines, skips item ids it already wrote.
- ``http://...`` / ``https://...`` — POST JSON, ``Idempotency-Key`` header; non-2xx raises.
- ``opc.tcp://host:port?item_node=ns=2;s=Divert.ItemId&action_node=ns=2;s=Divert.Action`` —
  writes item_id and action (both String variables) in one OPC UA Write request.
- ``modbus://host:port?unit=1&register=100`` — writes three holding registers in one
  Write Multiple Registers (0x10) request, see `ModbusSink`.

Notices for the warehouse system rather than the line (a lot quarantine listing its items) go
to the sinks that carry a whole payload, log and webhook (`NoticeSink`, `make_notice_sink`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable
from urllib.parse import parse_qs, urlsplit

import httpx

from pipeline.lots import QUARANTINE_EVENT
from pipeline.store import Event, Store
from pipeline.types import Action, Verdict

log = logging.getLogger("tunnelpi.divert")

DIVERT_EVENT = "divert"
REPLACEMENT_EVENT = "replacement_order"
ACTION_CODES: dict[Action, int] = {Action.PASS: 1, Action.DIVERT: 2, Action.REVIEW: 3}
"""Numeric action codes written to PLC registers (0 means "no decision yet")."""


class SinkError(RuntimeError):
    """A peer refused or did not acknowledge a signal."""


@runtime_checkable
class DivertSink(Protocol):
    def send(self, item_id: str, action: Action, reasons: Sequence[str]) -> None:
        """Deliver one signal; raise on any failure so the caller retries."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class NoticeSink(Protocol):
    def publish(self, key: str, payload: dict[str, Any]) -> None:
        """Deliver one notice, idempotent on `key`; raise on any failure so the caller retries."""
        ...

    def close(self) -> None: ...


def verdict_events(verdict: Verdict, capture_meta: dict[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Outbox events for one verdict, written in the verdict's transaction.

    Every item gets one "divert" event (the PLC needs a decision for each item, pass
    included); a diverted item also gets a "replacement_order" event.
    """
    payload = {
        "item_id": verdict.item_id,
        "sku": verdict.sku,
        "action": verdict.action.value,
        "reasons": verdict.reasons,
        "decided_at": verdict.decided_at.isoformat(),
        "deadline_missed": verdict.deadline_missed,
    }
    events: list[tuple[str, dict[str, Any]]] = [(DIVERT_EVENT, payload)]
    if verdict.action is Action.DIVERT:
        events.append((REPLACEMENT_EVENT, {**payload, **(capture_meta or {})}))
    return events


# -- sinks ---------------------------------------------------------------------------


class LogSink:
    """JSON lines to a file (or the `tunnelpi.divert` logger when no path is given).

    Idempotent: the keys (item id of a signal, `dedup_key` of a notice) of the last `window`
    lines are remembered (and re-read from the file on start), so a re-delivered event does not
    write a second line.
    """

    def __init__(self, path: Path | str | None = None, *, window: int = 100_000) -> None:
        self.path = Path(path) if path else None
        self._seen: set[str] = set()
        self._order: deque[str] = deque()
        self._window = window
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._closed = False
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                for key in _tail_keys(self.path, window):
                    self._remember(key)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if _ends_mid_line(self.path):
                os.write(self._fd, b"\n")  # close a line torn by a crash so the next one stays whole

    def _remember(self, key: str) -> None:
        if key in self._seen:
            return
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > self._window:
            self._seen.discard(self._order.popleft())

    def send(self, item_id: str, action: Action, reasons: Sequence[str]) -> None:
        self._write(item_id, {"item_id": item_id, "action": Action(action).value, "reasons": list(reasons)})

    def publish(self, key: str, payload: dict[str, Any]) -> None:
        self._write(key, {**payload, "dedup_key": key})

    def _write(self, key: str, record: dict[str, Any]) -> None:
        line = json.dumps({**record, "sent_at": time.time()}, default=str)
        with self._lock:
            if self._closed:
                raise SinkError(f"log sink {self.path} is closed")
            if key in self._seen:
                return
            if self._fd is None:
                log.info(line)
            else:
                os.write(self._fd, (line + "\n").encode())  # one write on O_APPEND: no interleaved lines
            self._remember(key)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _ends_mid_line(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() == 0:
            return False
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) != b"\n"


def _tail_keys(path: Path, limit: int) -> list[str]:
    keys: deque[str] = deque(maxlen=limit)
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = json.loads(line)
                keys.append(record["dedup_key"] if "dedup_key" in record else record["item_id"])
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash mid-write
    return list(keys)


class WebhookSink:
    """POST {"item_id", "action", "reasons"} as JSON; anything but 2xx raises."""

    def __init__(self, url: str, *, timeout_s: float = 2.0, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout_s, headers=headers or {})

    def send(self, item_id: str, action: Action, reasons: Sequence[str]) -> None:
        action = Action(action)
        body = {"item_id": item_id, "action": action.value, "reasons": list(reasons)}
        self._post(body, f"{item_id}:{action.value}")

    def publish(self, key: str, payload: dict[str, Any]) -> None:
        self._post({**payload, "dedup_key": key}, key)

    def _post(self, body: dict[str, Any], key: str) -> None:
        try:
            resp = self._client.post(self.url, json=body, headers={"Idempotency-Key": key})
        except httpx.HTTPError as exc:
            raise SinkError(f"webhook {self.url}: {type(exc).__name__}: {exc}") from exc
        if not resp.is_success:
            raise SinkError(f"webhook {self.url}: HTTP {resp.status_code}: {resp.text[:200]}")

    def close(self) -> None:
        self._client.close()


class OpcUaSink:
    """Writes item_id and action to two String variables in one OPC UA Write request.

    Connects once and keeps the session; a failed write drops the connection so the next
    send reconnects. asyncua is asyncio-based, so the client lives on a private event loop
    thread and `send` blocks on it with a timeout.
    """

    def __init__(self, url: str, item_node: str, action_node: str, *, timeout_s: float = 2.0) -> None:
        self.url, self.item_node, self.action_node, self.timeout_s = url, item_node, action_node, timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="opcua-sink", daemon=True)
        self._thread.start()
        self._client: Any = None
        self._lock = threading.Lock()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout_s * 3)

    async def _connect(self) -> Any:
        from asyncua import Client

        client = Client(self.url, timeout=self.timeout_s)
        await client.connect()
        return client

    async def _write(self, client: Any, item_id: str, action: str) -> None:
        nodes = [client.get_node(self.item_node), client.get_node(self.action_node)]
        await client.write_values(nodes, [item_id, action])

    async def _disconnect(self, client: Any) -> None:
        try:
            await client.disconnect()
        except Exception:
            client.disconnect_socket()

    def send(self, item_id: str, action: Action, reasons: Sequence[str]) -> None:
        with self._lock:
            try:
                if self._client is None:
                    self._client = self._call(self._connect())
                self._call(self._write(self._client, item_id, Action(action).value))
            except Exception as exc:
                self._drop()
                raise SinkError(f"OPC UA {self.url}: {type(exc).__name__}: {exc}") from exc

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                self._call(self._disconnect(client))
            except Exception as exc:
                log.debug("OPC UA disconnect after failure: %s", exc)

    def close(self) -> None:
        with self._lock:
            self._drop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def item_number(item_id: str) -> int:
    """The 32-bit item number a PLC register can hold.

    The digits of the item id read as one number (``S0001-000042`` -> 1000042) when they
    fit in 32 bits, so it matches the tunnel's own sequence number; otherwise CRC-32 of
    the id.
    """
    digits = re.sub(r"\D", "", item_id)
    if digits and int(digits) < 2**32:
        return int(digits)
    return zlib.crc32(item_id.encode())


class ModbusSink:
    """Writes [item number high word, low word, action code] to three holding registers.

    Register map at ``register`` (0-based): ``register`` and ``register+1`` = `item_number`
    (big-endian 32-bit), ``register+2`` = action code (1 pass, 2 divert, 3 review; see
    `ACTION_CODES`). One Write Multiple Registers request, so the PLC never sees a new item
    number with an old action. The action code is written last in the block, so a PLC that
    polls can treat a changed action register as "new decision".
    """

    def __init__(self, host: str, port: int = 502, *, unit: int = 1, register: int = 100, timeout_s: float = 2.0):
        from pymodbus.client import ModbusTcpClient

        self.host, self.port, self.unit, self.register = host, port, unit, register
        self._client = ModbusTcpClient(host, port=port, timeout=timeout_s, retries=0)
        self._lock = threading.Lock()

    def send(self, item_id: str, action: Action, reasons: Sequence[str]) -> None:
        number = item_number(item_id)
        values = [number >> 16, number & 0xFFFF, ACTION_CODES[Action(action)]]
        with self._lock:
            try:
                if not self._client.connected and not self._client.connect():
                    raise SinkError(f"Modbus {self.host}:{self.port}: cannot connect")
                result = self._client.write_registers(self.register, values, device_id=self.unit)
            except SinkError:
                raise
            except Exception as exc:
                self._client.close()
                raise SinkError(f"Modbus {self.host}:{self.port}: {type(exc).__name__}: {exc}") from exc
            if result.isError():
                raise SinkError(f"Modbus {self.host}:{self.port}: device refused the write: {result}")

    def close(self) -> None:
        self._client.close()


def make_sink(spec: str | dict[str, Any]) -> DivertSink:
    """Build a sink from a URL (see module docstring) or a dict {"url": ..., **options}."""
    options: dict[str, Any] = {}
    if isinstance(spec, dict):
        options = dict(spec)
        spec = options.pop("url")
    parts = urlsplit(spec)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "log":
        return LogSink(spec[len("log:") :] or None, **options)
    if parts.scheme in ("http", "https"):
        return WebhookSink(spec, **options)
    if parts.scheme == "opc.tcp":
        if "item_node" not in query or "action_node" not in query:
            raise ValueError(f"{spec}: OPC UA sink needs ?item_node=...&action_node=... node ids")
        url = f"opc.tcp://{parts.netloc}{parts.path}"
        return OpcUaSink(url, query["item_node"], query["action_node"], **options)
    if parts.scheme == "modbus":
        if not parts.hostname:
            raise ValueError(f"{spec}: Modbus sink needs a host, e.g. modbus://10.0.0.5:502?unit=1&register=100")
        return ModbusSink(
            parts.hostname,
            parts.port or 502,
            unit=int(query.get("unit", 1)),
            register=int(query.get("register", 100)),
            **options,
        )
    raise ValueError(f"unknown divert sink {spec!r}: use log:PATH, http(s)://, opc.tcp:// or modbus://")


def make_notice_sink(spec: str | dict[str, Any]) -> NoticeSink:
    """A sink for notices (log or webhook): a line controller's registers cannot hold a lot's item list."""
    sink = make_sink(spec)
    if not isinstance(sink, NoticeSink):
        sink.close()
        raise ValueError(f"{spec!r}: notices go to log:PATH or an http(s):// webhook")
    return sink


# -- dispatcher ----------------------------------------------------------------------


@dataclass
class DeliveryStats:
    delivered: int = 0
    failed: int = 0


@dataclass
class Dispatcher:
    """Delivers pending outbox events to their sinks, with per-event exponential backoff.

    Events are marked delivered only after the sink returned; a failure is recorded on the
    event (attempts, last_error) and retried after `base_delay_s * 2**attempts`, capped at
    `max_delay_s`, forever: a PLC that is down must still get its signals when it is back.
    """

    store: Store
    sinks: dict[str, DivertSink | NoticeSink]
    """Sink per event type: a signal sink (`DivertSink`), or a `NoticeSink` for `notice_types`."""
    notice_types: frozenset[str] = frozenset({QUARANTINE_EVENT})
    poll_s: float = 0.05
    base_delay_s: float = 0.1
    max_delay_s: float = 10.0
    batch: int = 200
    on_result: Callable[[str, bool, float], None] | None = None
    """Called with (event type, delivered?, seconds) after each attempt (for metrics)."""
    stats: DeliveryStats = field(default_factory=DeliveryStats)

    def __post_init__(self) -> None:
        self._next_try: dict[int, float] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Try every due pending event once; returns how many were delivered."""
        now = time.monotonic()
        delivered = 0
        for event in self.store.pending_events(self.batch, types=tuple(self.sinks)):
            if self._next_try.get(event.id, 0.0) > now:
                continue
            if self._deliver(event):
                delivered += 1
        return delivered

    def _deliver(self, event: Event) -> bool:
        sink = self.sinks[event.type]
        start = time.perf_counter()
        try:
            if event.type in self.notice_types:
                key = event.payload.get("dedup_key") or f"{event.type}:{event.id}"
                cast(NoticeSink, sink).publish(key, event.payload)
            else:
                cast(DivertSink, sink).send(
                    event.item_id or "", Action(event.payload["action"]), event.payload.get("reasons", [])
                )
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.store.mark_failed(event.id, error[:500])
            delay = min(self.max_delay_s, self.base_delay_s * 2 ** min(event.attempts, 30))
            self._next_try[event.id] = time.monotonic() + delay
            self.stats.failed += 1
            log.warning(
                "%s event %s for %s failed (attempt %d): %s",
                event.type,
                event.id,
                event.item_id,
                event.attempts + 1,
                error,
            )
            self._report(event.type, False, start)
            return False
        self.store.mark_delivered(event.id)
        self._next_try.pop(event.id, None)
        self.stats.delivered += 1
        self._report(event.type, True, start)
        return True

    def _report(self, event_type: str, ok: bool, start: float) -> None:
        if self.on_result is not None:
            self.on_result(event_type, ok, time.perf_counter() - start)

    def wake(self) -> None:
        """New events were written: deliver now instead of at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("outbox dispatch failed; retrying")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def start(self) -> Dispatcher:
        self._thread = threading.Thread(target=self._loop, name="outbox-dispatcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)


def close_sinks(sinks: Iterable[DivertSink | NoticeSink]) -> None:
    for sink in {id(s): s for s in sinks}.values():
        sink.close()
