"""Load generator for the edge service: posts captures at a fixed rate, times the verdicts.

It plays the tunnel: items leave on a fixed clock whatever the service answers (a conveyor
does not wait), so a slow service shows up as 429s and long latencies rather than as a
lower send rate. Latency is measured from the moment a capture is sent to the moment its
verdict arrives on the service's SSE stream.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from pipeline.dataset import Dataset
from pipeline.imageio import encode_jpeg

Upload = tuple[dict[str, Any], list[tuple[str, tuple[str, bytes, str]]]]
"""(capture JSON, multipart image parts) for one item."""


@dataclass
class StreamReport:
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected_429: int = 0
    errors: int = 0
    verdicts: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    latency_p50_s: float | None = None
    latency_p99_s: float | None = None
    latency_max_s: float | None = None
    stage_ms_p50: dict[str, float] = field(default_factory=dict)
    """Median milliseconds per stage (and "total") over the verdicts' `timings_ms`."""
    target_rate: float = 0.0
    achieved_rate: float = 0.0
    wall_s: float = 0.0
    status_codes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dataset_uploads(root: Path | str) -> Iterator[Upload]:
    """Captures of a dataset's shift (manifest.jsonl), with their image bytes."""
    ds = Dataset.open(root)
    for labelled in ds.items():
        capture = labelled.capture
        meta = capture.model_dump(mode="json", exclude={"frames"})
        meta["frames"] = [{"camera": f.camera, "timestamp": f.timestamp.isoformat()} for f in capture.frames]
        parts = []
        for frame in capture.frames:
            path = Path(frame.uri) if Path(frame.uri).is_absolute() else ds.root / frame.uri
            parts.append(("images", (f"{frame.camera}.jpg", path.read_bytes(), "image/jpeg")))
        yield meta, parts


def replayed_uploads(root: Path | str, prefix: str) -> Iterator[Upload]:
    """A dataset's shift replayed endlessly under fresh item ids (`PREFIX-000000`, ...).

    So one dataset can feed many runs against the same service without its items being
    duplicates of the last run's (the service decides each item_id only once).
    """
    i = 0
    while True:
        before = i
        for meta, parts in dataset_uploads(root):
            yield {**meta, "item_id": f"{prefix}-{i:06d}"}, parts
            i += 1
        if i == before:  # an empty shift
            return


def synthetic_uploads(prefix: str, cameras: tuple[str, ...] = ("top", "side"), size=(480, 640)) -> Iterator[Upload]:
    """Endless synthetic items (a grey box; every 10th one red) for runs without a dataset."""
    rng = np.random.default_rng(0)
    images = []
    for colour in ((120, 120, 120), (230, 30, 30)):
        img = np.clip(rng.normal(40, 12, (*size, 3)), 0, 255).astype(np.uint8)
        h, w = size
        img[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = colour
        images.append(encode_jpeg(img))
    i = 0
    while True:
        data = images[1] if i % 10 == 9 else images[0]
        meta = {"item_id": f"{prefix}-{i:06d}", "sku": "SYN-1", "frames": list(cameras)}
        yield meta, [("images", (f"{cam}.jpg", data, "image/jpeg")) for cam in cameras]
        i += 1


class VerdictListener:
    """Follows GET /v1/verdicts/stream on its own event loop thread, noting when each verdict arrives.

    Async so that `stop` can cancel the read and really close the connection (a blocking
    read in another thread cannot be interrupted, and the server would keep the stream).
    """

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.base_url, self.headers = base_url, headers
        self.seen: dict[str, tuple[float, str]] = {}
        self.timings: dict[str, dict[str, float]] = {}
        self.error: str | None = None
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)

    def start(self, timeout_s: float = 10.0) -> VerdictListener:
        self._thread.start()
        if not self._ready.wait(timeout_s) or self.error:
            self.stop()
            raise RuntimeError(f"could not subscribe to the verdict stream: {self.error or 'timed out'}")
        return self

    async def _main(self) -> None:
        self._task = asyncio.current_task()
        timeout = httpx.Timeout(10, read=None)
        try:
            async with (
                httpx.AsyncClient(base_url=self.base_url, headers=self.headers, timeout=timeout) as client,
                client.stream("GET", "/v1/verdicts/stream") as resp,
            ):
                resp.raise_for_status()
                self._ready.set()
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        verdict = json.loads(line[5:])
                        self.seen[verdict["item_id"]] = (time.perf_counter(), verdict["action"])
                        self.timings[verdict["item_id"]] = verdict.get("timings_ms") or {}
        except asyncio.CancelledError:
            pass
        except httpx.HTTPError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._ready.set()

    def stop(self) -> None:
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(5)


def stream(
    url: str,
    rate: float,
    *,
    items: int = 100,
    dataset: Path | str | None = None,
    token: str | None = None,
    wait_s: float = 30.0,
    concurrency: int = 8,
    prefix: str | None = None,
) -> StreamReport:
    """Post `items` captures at `rate` items/s to the service at `url`; wait for their verdicts.

    With a `dataset`, its shift is sent once under its own item ids, or, given a `prefix`,
    replayed under fresh ids `PREFIX-000000`... until `items` have been sent.
    """
    if rate <= 0 or items < 1:
        raise ValueError(f"need rate > 0 and items >= 1, got rate={rate} items={items}")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if dataset:
        source = replayed_uploads(dataset, prefix) if prefix else dataset_uploads(dataset)
    else:
        source = synthetic_uploads(prefix or f"LG{int(time.time())}")
    report = StreamReport(target_rate=rate)
    sent_at: dict[str, float] = {}
    lock = threading.Lock()
    listener = VerdictListener(url, headers).start()
    client = httpx.Client(base_url=url, headers=headers, timeout=10, limits=httpx.Limits(max_connections=concurrency))

    def send(upload: Upload) -> None:
        meta, parts = upload
        start = time.perf_counter()
        try:
            resp = client.post("/v1/captures", data={"capture": json.dumps(meta)}, files=parts)
            code = resp.status_code
        except httpx.HTTPError:
            code = 0
        with lock:
            report.status_codes[str(code)] = report.status_codes.get(str(code), 0) + 1
            if code == 202:
                report.accepted += 1
                sent_at[meta["item_id"]] = start
            elif code == 200:
                report.duplicates += 1
            elif code == 429:
                report.rejected_429 += 1
            else:
                report.errors += 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency, thread_name_prefix="loadgen") as pool:
        for i, upload in zip(range(items), source, strict=False):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, upload)
            report.sent += 1
    send_wall = time.perf_counter() - t0
    deadline = time.perf_counter() + wait_s
    while time.perf_counter() < deadline and any(k not in listener.seen for k in sent_at):
        time.sleep(0.05)
    listener.stop()
    late = _poll_missing(client, [k for k in sent_at if k not in listener.seen])
    client.close()
    latencies = sorted(listener.seen[k][0] - t for k, t in sent_at.items() if k in listener.seen)
    decided = {**{k: listener.seen[k][1] for k in sent_at if k in listener.seen}, **late}
    report.verdicts = len(decided)
    for action in decided.values():
        report.actions[action] = report.actions.get(action, 0) + 1
    if latencies:
        report.latency_p50_s = round(statistics.median(latencies), 4)
        report.latency_p99_s = round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 4)
        report.latency_max_s = round(latencies[-1], 4)
    per_stage: dict[str, list[float]] = {}
    for item_id in sent_at:
        for stage, ms in listener.timings.get(item_id, {}).items():
            per_stage.setdefault(stage, []).append(ms)
    report.stage_ms_p50 = {stage: round(statistics.median(v), 2) for stage, v in sorted(per_stage.items())}
    report.wall_s = round(time.perf_counter() - t0, 2)
    report.achieved_rate = round(report.sent / send_wall, 3) if send_wall > 0 else float(report.sent)
    return report


def _poll_missing(client: httpx.Client, item_ids: list[str]) -> dict[str, str]:
    """Verdicts the stream missed (e.g. a slow subscriber) still count, without a latency."""
    found = {}
    for item_id in item_ids[:1000]:
        try:
            resp = client.get(f"/v1/verdicts/{item_id}")
        except httpx.HTTPError:
            continue
        if resp.status_code == 200:
            found[item_id] = resp.json()["action"]
    return found
