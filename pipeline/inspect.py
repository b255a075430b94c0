"""Batch inspection of a dataset (or an image folder): the `tunnelpi inspect` engine.

Every item goes through the same path as on the edge (store inbox -> stages -> policy ->
store + outbox -> lot monitor), so results are comparable with the edge service and re-audit.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError
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
    """Bad inspect arguments: an input that is neither a dataset nor a folder of images, items
    that clash, no stages, or an output path that cannot be a results folder."""


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


def image_folder_items(root: Path, sku: str) -> list[LabelledCapture]:
    """A folder of images: each image, or each sub-folder of camera images, is one item.

    Item ids come from file stems, so `a.jpg` and `a.png` would collapse into one stored item:
    such clashes, and names that make no valid item id, are InputErrors naming the files."""
    items: list[LabelledCapture] = []
    source: dict[str, Path] = {}
    for entry in sorted(root.iterdir()):
        try:
            if entry.is_dir():
                views = sorted(p for p in entry.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                if not views:
                    continue
                capture = ItemCapture.from_images(views, sku=sku, item_id=entry.name)
            elif entry.suffix.lower() in IMAGE_SUFFIXES:
                capture = ItemCapture.from_images([entry], sku=sku)
            else:
                continue
        except ValidationError as exc:
            raise InputError(f"{entry}: {exc.errors()[0]['msg']}") from exc
        clash = source.setdefault(capture.item_id, entry)
        if clash != entry:
            raise InputError(f"{root}: {clash.name} and {entry.name} both give item id {capture.item_id!r}; rename one")
        items.append(LabelledCapture(capture, None, None))
    return items


def open_input(
    path: Path, catalog_path: Path | None, sku: str | None
) -> tuple[Catalog, list[LabelledCapture], dict[str, Any]]:
    """Catalog, every item and the dataset info, read and checked in full before anything is
    inspected, so a bad record fails the run before any output is written."""
    if (path / "manifest.jsonl").exists():
        dataset = Dataset.open(path)
        return dataset.catalog, list(dataset.items()), dataset.info
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
    item's OCR beside another's anomaly scoring); verdicts stay in input order.

    The input, the stages and `out` are all checked before `out` is touched, so bad input
    leaves no half-written results behind."""
    stage_names = list(stages)
    if not stage_names:
        raise InputError(f"no stages to run: name at least one (the default is {','.join(DEFAULT_STAGES)})")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder (results are written to a folder)")
    catalog, items, info = open_input(input_path, catalog_path, sku)
    if not items:
        raise InputError(f"{input_path}: no items to inspect (an empty manifest, or no images)")
    if today is None and info.get("today"):
        today = date.fromisoformat(info["today"])
    if limit is not None:
        items = items[:limit]
    with (
        Inspector.from_names(
            stage_names, catalog, stage_kwargs, model_dir=model_dir, policy=policy or DecisionPolicy(), today=today
        ) as inspector,
        one_kernel_thread(),  # items and stages already run side by side
    ):
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{out}: cannot create the results folder ({exc.strerror})") from exc
        store = Store(out / "store.db")
        monitor = LotMonitor.from_settings(store, lots, catalog.category_by_sku())
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
    """p50/p90/p99 by one interpolating method, so they never decrease (p90 >= p50 on two items)."""
    if not latencies:
        return {}
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    return {"p50": round(float(p50), 1), "p90": round(float(p90), 1), "p99": round(float(p99), 1)}
