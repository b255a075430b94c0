"""A simulated tunnel shift written in the dataset layout of README "Dataset schema".

Each item's plan (SKU, lot, defects, benign variations) and pixels come from a random
stream derived from (seed, split, item index) only, so the output is byte-identical for any
number of worker processes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import pipeline
from pipeline.jsonl import write_jsonl
from pipeline.types import CatalogRecord, Frame, ItemCapture
from tunnel_sim.catalog import DEFAULT_TODAY, SimCatalog, build_catalog
from tunnel_sim.defects import DATE_DEFECTS, PHYSICAL_DEFECTS, applicable_defects
from tunnel_sim.feedback import generate_feedback
from tunnel_sim.item import RenderedItem, render_item
from tunnel_sim.scene import CAMERAS

GENERATOR = "tunnel_sim"
HOME_FC = "FC-BER1"
SPLIT_CODES = {"test": 0, "enrol": 1, "calibration": 2}


@dataclass(frozen=True)
class ItemPlan:
    """Everything decided about one item before it is drawn."""

    item_id: str
    split: str
    sku: str
    lot: str
    seller: str
    fc: str
    tunnel: str
    captured_at: datetime
    seed: int
    defects: tuple[str, ...] = ()
    benign: tuple[str, ...] = ()
    printed_expiry: date | None = None
    manufactured: date | None = None
    actual_sku: str | None = None


@dataclass
class DatasetSummary:
    out: Path
    items: int
    references: int
    defect_counts: dict[str, int] = field(default_factory=dict)
    defective_items: int = 0
    lots: int = 0
    bad_lots: int = 0
    complaints: int = 0
    seconds: float = 0.0

    @property
    def items_per_second(self) -> float:
        return (self.items + self.references) / self.seconds if self.seconds else 0.0


def _item_seed(seed: int, split: str, index: int) -> int:
    return int(np.random.SeedSequence([seed, SPLIT_CODES[split], index]).generate_state(1)[0])


def _pick_defect(record: CatalogRecord, rng: np.random.Generator, packaging: str) -> str | None:
    options = [d for d in applicable_defects(record) if d not in DATE_DEFECTS or d == "expired_date"]
    if packaging == "no_shoebox":
        options = [d for d in options if d not in ("torn_box", "crushed_corner")]
    weights = np.array([3.0 if d in PHYSICAL_DEFECTS else 1.0 for d in options])
    return str(options[int(rng.choice(len(options), p=weights / weights.sum()))]) if options else None


def plan_item(
    sim: SimCatalog, seed: int, index: int, split: str, *, today: date, defect_rate: float, sku: str | None = None
) -> ItemPlan:
    """Decide one item: which SKU and lot, its defects and benign variations."""
    rng = np.random.default_rng([seed, SPLIT_CODES[split], index, 7])
    cat = sim.catalog
    skus = sorted(cat.skus)
    record = cat.skus[sku] if sku else cat.skus[skus[int(rng.integers(len(skus)))]]
    normal_only = split != "test"
    lots = [lot for lot in sim.lots_for(record.sku) if not normal_only or sim.profiles[lot.lot].kind == "normal"]
    lots = lots or sim.lots_for(record.sku)
    weights = np.array([lot.quantity for lot in lots], dtype=np.float64)
    lot = lots[int(rng.choice(len(lots), p=weights / weights.sum()))]
    profile = sim.profiles[lot.lot]
    benign: list[str] = []
    packaging = record.packaging_variants[0]
    if len(record.packaging_variants) > 1 and rng.random() < 0.4:
        benign.append("packaging_variant")
        packaging = record.packaging_variants[1]
    fc = HOME_FC
    if rng.random() < 0.06:
        benign.append("other_fc_tote")
    if rng.random() < 0.06:
        benign.append("unusual_pose")
    defects: list[str] = []
    roll = rng.random()
    if not normal_only:
        if profile.kind in ("date_mismatch", "short_dated") and profile.defect:
            defects.append(profile.defect)
        if profile.kind == "damage" and profile.defect and roll < profile.rate:
            defects.append(profile.defect)
        elif roll < defect_rate:
            extra = _pick_defect(record, rng, packaging)
            if extra and extra not in defects:
                defects.append(extra)
        if rng.random() < 0.1:
            defects.append("transit_damage")
    actual = None
    if "wrong_item" in defects:
        others = [s for s in skus if s != record.sku]
        same = [s for s in others if cat.skus[s].category == record.category]
        pool = same if same and rng.random() < 0.5 else others
        actual = pool[int(rng.integers(len(pool)))]
    start = datetime.combine(today, datetime.min.time(), tzinfo=UTC) + timedelta(hours=6)
    offset = index * 0.42 + (0 if split == "test" else -86400 * (3 + index % 20))
    prefix = {"test": f"S{seed % 10000:04d}", "enrol": "REF", "calibration": "CAL"}[split]
    return ItemPlan(
        item_id=f"{prefix}-{index:06d}" if split == "test" else f"{prefix}-{record.sku}-{index:04d}",
        split=split,
        sku=record.sku,
        lot=lot.lot,
        seller=lot.seller,
        fc=fc,
        tunnel="T1" if index % 2 == 0 else "T2",
        captured_at=start + timedelta(seconds=offset),
        seed=_item_seed(seed, split, index),
        defects=tuple(defects),
        benign=tuple(benign),
        printed_expiry=profile.printed_expiry,
        manufactured=profile.manufactured,
        actual_sku=actual,
    )


def render_plan(plan: ItemPlan, sim: SimCatalog, today: date) -> RenderedItem:
    record = sim.catalog.get(plan.sku)
    return render_item(
        record,
        defects=plan.defects,
        seed=plan.seed,
        today=today,
        printed_expiry=plan.printed_expiry,
        manufactured=plan.manufactured,
        lot_code=plan.lot,
        benign=plan.benign,
        fc=plan.fc,
        item_id=plan.item_id,
        actual_sku=sim.catalog.get(plan.actual_sku) if plan.actual_sku else None,
    )


_WORKER: dict[str, Any] = {}


def _init_worker(seed: int, today: date, out: str) -> None:
    cv2.setNumThreads(1)
    _WORKER.update(sim=build_catalog(seed, today=today), today=today, out=Path(out))


def _jpeg_quality(plan: ItemPlan) -> int:
    return int(np.random.default_rng([plan.seed, 9]).integers(72, 95))


def _write_item(plan: ItemPlan) -> dict[str, Any]:
    """Render one item, write its images and masks, return its manifest line."""
    out: Path = _WORKER["out"]
    rendered = render_plan(plan, _WORKER["sim"], _WORKER["today"])
    folder = out / "images" / plan.item_id
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    quality = _jpeg_quality(plan)
    for cam, image in rendered.images.items():
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        (folder / f"{cam}.jpg").write_bytes(data.tobytes())
        frames.append(
            Frame(
                camera=cam,
                uri=f"images/{plan.item_id}/{cam}.jpg",
                timestamp=plan.captured_at,
                width=image.shape[1],
                height=image.shape[0],
            )
        )
    if rendered.masks:
        (out / "masks" / plan.item_id).mkdir(parents=True, exist_ok=True)
    for name, per_cam in rendered.masks.items():
        for cam, mask in per_cam.items():
            ok, data = cv2.imencode(".png", mask.astype(np.uint8) * 255)
            (out / "masks" / plan.item_id / f"{cam}__{name}.png").write_bytes(data.tobytes())
    capture = ItemCapture(
        item_id=plan.item_id,
        sku=plan.sku,
        lot=plan.lot,
        seller=plan.seller,
        fc=plan.fc,
        tunnel=plan.tunnel,
        captured_at=plan.captured_at,
        frames=frames,
    )
    record = json.loads(capture.to_json())
    record["split"] = plan.split
    record["truth"] = rendered.truth.model_dump(mode="json")
    return record


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; choose another folder or pass overwrite=True")
        for name in ("images", "masks"):
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def generate_dataset(
    out: Path | str,
    items: int,
    seed: int,
    *,
    today: date | None = None,
    references_per_sku: int = 12,
    defect_rate: float = 0.25,
    workers: int = 2,
    overwrite: bool = False,
) -> DatasetSummary:
    """Simulate a shift of `items` items plus normal reference orders per SKU into `out`.

    Two thirds of each SKU's references are for enrolment, the rest for calibration. The
    result is the same, byte for byte, for any `workers`.
    """
    if items <= 0:
        raise ValueError(f"items must be positive, got {items}")
    if references_per_sku < 0:
        raise ValueError(f"references_per_sku must be >= 0, got {references_per_sku}")
    if not 0.0 <= defect_rate <= 1.0:
        raise ValueError(f"defect_rate must be within [0, 1], got {defect_rate}")
    out = Path(out)
    today = today or DEFAULT_TODAY
    _prepare_out(out, overwrite)
    started = time.perf_counter()
    sim = build_catalog(seed, today=today)
    plans = [plan_item(sim, seed, i, "test", today=today, defect_rate=defect_rate) for i in range(items)]
    refs: list[ItemPlan] = []
    enrol_count = round(references_per_sku * 2 / 3)
    for sku_index, sku in enumerate(sorted(sim.catalog.skus)):
        for k in range(references_per_sku):
            split = "enrol" if k < enrol_count else "calibration"
            refs.append(plan_item(sim, seed, sku_index * 1000 + k, split, today=today, defect_rate=0.0, sku=sku))
    records = _render_all(plans + refs, seed, today, out, workers)
    manifest, references = records[: len(plans)], records[len(plans) :]
    write_jsonl(out / "manifest.jsonl", manifest)
    write_jsonl(out / "references.jsonl", references)
    complaints = generate_feedback(manifest, sim, seed=seed, today=today)
    write_jsonl(out / "feedback.jsonl", complaints)
    sim.catalog.save(out / "catalog.json")
    counts = Counter(d["type"] for rec in manifest for d in rec["truth"]["defects"])
    summary = DatasetSummary(
        out=out,
        items=len(manifest),
        references=len(references),
        defect_counts=dict(sorted(counts.items())),
        defective_items=sum(any(d["visible"] for d in rec["truth"]["defects"]) for rec in manifest),
        lots=len(sim.catalog.lots),
        bad_lots=sum(p.kind != "normal" for p in sim.profiles.values()),
        complaints=len(complaints),
        seconds=time.perf_counter() - started,
    )
    info = {
        "generator": GENERATOR,
        "version": pipeline.__version__,
        "seed": seed,
        "today": today.isoformat(),
        "cameras": list(CAMERAS),
        "counts": {
            "items": summary.items,
            "references": summary.references,
            "enrol": sum(r["split"] == "enrol" for r in references),
            "calibration": sum(r["split"] == "calibration" for r in references),
            "defective_items": summary.defective_items,
            "defects": summary.defect_counts,
            "benign": dict(sorted(Counter(b for rec in manifest for b in rec["truth"]["benign"]).items())),
            "skus": len(sim.catalog.skus),
            "lots": summary.lots,
            "complaints": summary.complaints,
        },
        "bad_lots": {
            lot: {"kind": p.kind, "defect": p.defect, "rate": round(p.rate, 3)}
            for lot, p in sorted(sim.profiles.items())
            if p.kind != "normal"
        },
    }
    (out / "dataset.json").write_text(json.dumps(info, indent=1, ensure_ascii=False), encoding="utf-8")
    return summary


def _render_all(plans: list[ItemPlan], seed: int, today: date, out: Path, workers: int) -> list[dict[str, Any]]:
    workers = max(1, min(workers, os.cpu_count() or 1, len(plans)))
    if workers == 1:
        _init_worker(seed, today, str(out))
        return [_write_item(plan) for plan in plans]
    # "forkserver": forking a process whose torch/BLAS thread pools are running can deadlock the
    # children (the demo and the tests import torch before simulating).
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(seed, today, str(out))
    ) as pool:
        return list(pool.map(_write_item, plans, chunksize=8))
