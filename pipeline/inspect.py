"""Batch inspection of a dataset (or an image folder): the `tunnelpi inspect` engine.

Every item goes through the same path as on the edge (store inbox -> stages -> policy ->
store + outbox -> lot monitor), so results are comparable with the edge service and re-audit.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.catalog import Catalog
from pipeline.dataset import Dataset, LabelledCapture
from pipeline.kernels import one_kernel_thread
from pipeline.lots import QUARANTINE_EVENT, LotMonitor, LotSettings
from pipeline.metrics import score
from pipeline.policy import DecisionPolicy
from pipeline.runner import Inspector
from pipeline.stages import DEFAULT_STAGES
from pipeline.store import Store
from pipeline.types import Action, ItemCapture, Verdict

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class InputError(ValueError):
    """The inspect input is neither a dataset folder nor a folder of images."""


@dataclass
class InspectResult:
    out: Path
    items: int
    actions: dict[str, int]
    metrics: dict[str, Any] | None
    lots_quarantined: list[str]
    latency_ms: dict[str, float]
    verdicts: list[Verdict] = field(repr=False, default_factory=list)


def verdict_events(verdict: Verdict, capture: ItemCapture) -> list[tuple[str, dict[str, Any]]]:
    """Outbox events for a verdict: the divert signal and, for a diverted item, a replacement order."""
    if verdict.action is not Action.DIVERT:
        return []
    signal = {"item_id": verdict.item_id, "action": verdict.action.value, "reasons": verdict.reasons[:3]}
    order = {"item_id": verdict.item_id, "sku": capture.sku, "lot": capture.lot, "reason": verdict.reasons[:1]}
    return [("divert", signal), ("replacement_order", order)]


def image_folder_items(root: Path, sku: str) -> Iterator[LabelledCapture]:
    """A folder of images: each image, or each sub-folder of camera images, is one item."""
    entries = sorted(root.iterdir())
    for entry in entries:
        if entry.is_dir():
            views = sorted(p for p in entry.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if views:
                yield LabelledCapture(ItemCapture.from_images(views, sku=sku, item_id=entry.name), None, None)
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            yield LabelledCapture(ItemCapture.from_images([entry], sku=sku), None, None)


def open_input(
    path: Path, catalog_path: Path | None, sku: str | None
) -> tuple[Catalog, Iterable[LabelledCapture], dict]:
    if (path / "manifest.jsonl").exists():
        dataset = Dataset.open(path)
        return dataset.catalog, dataset.items(), dataset.info
    if not path.is_dir():
        raise InputError(f"{path}: not a dataset folder (no manifest.jsonl) nor a folder of images")
    catalog = Catalog.load(catalog_path) if catalog_path else Catalog()
    return catalog, image_folder_items(path, sku or "unknown"), {}


def _inspected(
    items: Iterable[LabelledCapture], inspector: Inspector, store: Store, workers: int
) -> Iterator[tuple[LabelledCapture, Verdict, float]]:
    """(item, verdict, ms) in input order, `workers` items inspected side by side.

    The store is written from the calling thread only; at most `2 * workers` items are in
    flight, so an endless input is read as it is inspected, not all at once."""

    def timed(capture: ItemCapture) -> tuple[Verdict, float]:
        start = time.perf_counter()
        verdict = inspector.inspect(capture, started=start)
        return verdict, (time.perf_counter() - start) * 1000.0

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="inspect") as pool:
        window: deque[tuple[LabelledCapture, Future[tuple[Verdict, float]]]] = deque()
        for item in items:
            store.enqueue(item.capture)
            window.append((item, pool.submit(timed, item.capture)))
            if len(window) >= 2 * max(1, workers):
                done, future = window.popleft()
                yield done, *future.result()
        while window:
            done, future = window.popleft()
            yield done, *future.result()


def inspect_items(
    items: Iterable[LabelledCapture],
    inspector: Inspector,
    store: Store,
    monitor: LotMonitor,
    verdicts_path: Path,
    progress: bool = True,
    workers: int = 1,
) -> tuple[list[Verdict], list[tuple[Verdict, Any]], list[float]]:
    verdicts: list[Verdict] = []
    pairs = []
    latencies = []
    with verdicts_path.open("w", encoding="utf-8") as out:
        inspected = _inspected(items, inspector, store, workers)
        for item, verdict, ms in tqdm(inspected, desc="inspect", unit="item", disable=not progress):
            capture = item.capture
            latencies.append(ms)
            store.complete(verdict, verdict_events(verdict, capture))
            record = inspector.catalog.skus.get(capture.sku)
            monitor.observe(verdict, capture.lot, record.category if record else None)
            out.write(verdict.to_json() + "\n")
            verdicts.append(verdict)
            if item.truth is not None:
                pairs.append((verdict, item.truth))
    return verdicts, pairs, latencies


def inspect_path(
    input_path: Path,
    out: Path,
    *,
    model_dir: Path | None = None,
    stages: Iterable[str] = DEFAULT_STAGES,
    catalog_path: Path | None = None,
    sku: str | None = None,
    today: date | None = None,
    limit: int | None = None,
    policy: DecisionPolicy | None = None,
    lots: LotSettings | None = None,
    progress: bool = True,
    stage_kwargs: dict[str, dict[str, Any]] | None = None,
    workers: int = 2,
) -> InspectResult:
    """Every item through the stages and the policy; verdicts to `out` (JSON lines + store).

    `workers` items are inspected side by side (two keep both cores of a small box busy: one
    item's OCR beside another's anomaly scoring); verdicts stay in input order."""
    catalog, items, info = open_input(input_path, catalog_path, sku)
    if today is None and info.get("today"):
        today = date.fromisoformat(info["today"])
    if limit is not None:
        items = (item for i, item in enumerate(items) if i < limit)
    out.mkdir(parents=True, exist_ok=True)
    store = Store(out / "store.db")
    monitor = LotMonitor.from_settings(store, lots, catalog.category_by_sku())
    stage_names = list(stages)
    with (
        Inspector.from_names(
            stage_names, catalog, stage_kwargs, model_dir=model_dir, policy=policy or DecisionPolicy(), today=today
        ) as inspector,
        one_kernel_thread(),  # items and stages already run side by side
    ):
        verdicts, pairs, latencies = inspect_items(
            items, inspector, store, monitor, out / "verdicts.jsonl", progress, workers
        )
    metrics = score(pairs).to_dict() if pairs else None
    quarantined = sorted(e.payload["lot"] for e in store.events(QUARANTINE_EVENT))
    actions: dict[str, int] = {}
    for v in verdicts:
        actions[v.action.value] = actions.get(v.action.value, 0) + 1
    latency = _latency_summary(latencies)
    run = {
        "input": str(input_path.resolve()),
        "model_dir": str(model_dir.resolve()) if model_dir else None,
        "stages": stage_names,
        "today": today.isoformat() if today else None,
        "items": len(verdicts),
        "actions": actions,
        "latency_ms": latency,
        "lots_quarantined": quarantined,
        "metrics": metrics,
    }
    (out / "run.json").write_text(json.dumps(run, indent=1))
    return InspectResult(out, len(verdicts), actions, metrics, quarantined, latency, verdicts)


def _latency_summary(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {}
    ordered = sorted(latencies)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
        "p99": round(ordered[int(0.99 * (len(ordered) - 1))], 1),
    }
