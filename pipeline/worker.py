"""Inspection workers: lease captures from the store, inspect, complete with outbox events.

Everything a worker needs survives a restart: the capture and its image paths are in the
store, leases expire, and the verdict plus its events are written in one transaction, so a
crash re-delivers at most the leased items and never emits a second divert event. What
does not survive is only an optimisation: pixels decoded by the HTTP handler are handed
over in memory (`ArrivalCache`) so an item is not decoded twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pipeline.divert import verdict_events
from pipeline.runner import Inspector
from pipeline.store import Store
from pipeline.types import Action, Finding, ItemCapture, Verdict

log = logging.getLogger("tunnelpi.worker")


@dataclass
class Arrival:
    received_at: float
    """Wall-clock time the capture was accepted."""
    images: dict[str, np.ndarray] = field(default_factory=dict)


class ArrivalCache:
    """item_id -> arrival time and decoded pixels, from the HTTP handler to a worker."""

    def __init__(self) -> None:
        self._items: dict[str, Arrival] = {}
        self._lock = threading.Lock()

    def put(self, item_id: str, arrival: Arrival) -> None:
        with self._lock:
            self._items[item_id] = arrival

    def pop(self, item_id: str) -> Arrival | None:
        with self._lock:
            return self._items.pop(item_id, None)

    def discard(self, item_id: str) -> None:
        self.pop(item_id)


VerdictCallback = Callable[[Verdict, float], None]
"""Called with (verdict, seconds from capture accepted to verdict committed)."""


class WorkerPool:
    """`threads` workers sharing one `Inspector` (its stage pool runs stages in parallel)."""

    def __init__(
        self,
        store: Store,
        inspector: Inspector,
        *,
        threads: int = 1,
        lease_s: float = 30.0,
        idle_poll_s: float = 0.25,
        arrivals: ArrivalCache | None = None,
        on_verdict: VerdictCallback | None = None,
        backlog: Callable[[], int] | None = None,
    ) -> None:
        if threads < 1:
            raise ValueError(f"need at least one worker thread, got {threads}")
        self.store, self.inspector = store, inspector
        self.threads, self.lease_s, self.idle_poll_s = threads, lease_s, idle_poll_s
        self.arrivals = arrivals or ArrivalCache()
        self.on_verdict = on_verdict
        self.backlog = backlog
        """Items waiting for a worker right now (accepted, not yet being inspected); None: unknown."""
        self._stop = threading.Event()
        self._work = threading.Event()
        self._threads: list[threading.Thread] = []

    def notify(self) -> None:
        """A capture was enqueued: wake an idle worker now rather than at its next poll."""
        self._work.set()

    def start(self) -> WorkerPool:
        for i in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"inspect-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the items in hand, then stop (leases of unfinished items simply expire)."""
        self._stop.set()
        self._work.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                leased = self.store.lease(limit=1, lease_s=self.lease_s)
            except Exception:
                log.exception("lease failed; retrying")
                leased = []
            if not leased:
                self._work.wait(self.idle_poll_s)
                self._work.clear()
                continue
            for capture in leased:
                try:
                    self.process(capture)
                except Exception:  # e.g. the database is locked: the lease expires and it is retried
                    log.exception("could not complete %s; it will be retried", capture.item_id)

    def process(self, capture: ItemCapture) -> Verdict:
        """Inspect one leased capture and commit its verdict with its outbox events."""
        arrival = self.arrivals.pop(capture.item_id)
        received_at = arrival.received_at if arrival else capture.captured_at.timestamp()
        if arrival:
            for frame in capture.frames:
                if frame.camera in arrival.images:
                    frame.with_image(arrival.images[frame.camera])  # already decoded by the HTTP handler
        started = time.perf_counter() - max(0.0, time.time() - received_at)
        try:
            waiting = max(0, self.backlog()) if self.backlog is not None else 0
            verdict = self.inspector.inspect(capture, started, backlog=waiting)
        except Exception as exc:  # the runner contains stage errors; this is a last resort
            log.exception("inspection of %s failed", capture.item_id)
            verdict = _failed_verdict(capture, exc)
        meta = {"lot": capture.lot, "seller": capture.seller, "fc": capture.fc, "tunnel": capture.tunnel}
        self.store.complete(verdict, verdict_events(verdict, meta))
        if self.on_verdict is not None:
            self.on_verdict(verdict, time.time() - received_at)
        return verdict


def _failed_verdict(capture: ItemCapture, exc: Exception) -> Verdict:
    message = f"{type(exc).__name__}: {exc}"
    return Verdict(
        item_id=capture.item_id,
        sku=capture.sku,
        action=Action.REVIEW,
        reasons=[f"runner:stage_error ({message})"],
        findings=[Finding(stage="runner", kind="stage_error", score=1.0, probability=1.0, message=message)],
    )
