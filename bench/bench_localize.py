"""Localisation against the simulator's true item silhouettes, on every belt and tote.

Every catalog SKU is photographed on each fulfillment center's conveyance (two belts, three
totes) from held-out render seeds; `detectors.localize.segment` runs on each camera frame and
its mask is compared with the renderer's silhouette of the item (intersection over union).
Everything downstream reads the crop this mask gives, so a view cut to a part of its item is
scored, read and coloured as that part.

Reported: median IoU, the share of views under 0.8 (the crop misses a fifth of the item or
more) and under 0.5, per conveyance, the SKUs that fail most, and segmentation time per view.

`main() -> dict` writes bench/results/localize.json.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import defaultdict
from typing import Any

import cv2
import numpy as np

from detectors.localize import segment
from tunnel_sim import render_item
from tunnel_sim.catalog import catalog_records
from tunnel_sim.scene import FC_CONVEYANCE

SEED = 90_000
"""Render seeds no other benchmark or test draws."""
SEEDS_PER_CONVEYANCE = int(os.environ.get("BENCH_LOC_SEEDS", 2))
POOR, LOST = 0.8, 0.5


def frame_iou(image: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(IoU of the segmented mask with the true silhouette, segmentation seconds)."""
    start = time.perf_counter()
    mask, _ = segment(image)
    seconds = time.perf_counter() - start
    found = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    union = int((found | truth).sum())
    return (float((found & truth).sum()) / union if union else 1.0), seconds


def _conveyance_name(fc: str) -> str:
    c = FC_CONVEYANCE[fc]
    return f"{c.kind} {fc} RGB{list(c.colour)}"


def main() -> dict[str, Any]:
    records = catalog_records()
    views: list[dict[str, Any]] = []
    seed = SEED
    for record in records:
        for fc in FC_CONVEYANCE:
            for _ in range(SEEDS_PER_CONVEYANCE):
                item = render_item(record, seed=seed, fc=fc, item_id=f"loc{seed}")
                seed += 1
                for cam, image in item.images.items():
                    iou, seconds = frame_iou(image, item.item_masks[cam])
                    views.append({"sku": record.sku, "fc": fc, "camera": cam, "iou": iou, "s": seconds})
    return _report(views, len(records))


def iou_summary(ious: list[float]) -> dict[str, float]:
    """Median IoU and the shares of views under 0.8 and 0.5."""
    a = np.asarray(ious)
    return {
        "n": len(a),
        "median": round(float(np.median(a)), 3),
        "under_0.8": round(float((a < POOR).mean()), 3),
        "under_0.5": round(float((a < LOST).mean()), 3),
    }


def _row(metric: str, value: Any) -> dict[str, Any]:
    return {"metric": metric, "value": value, "target": ""}


def _report(views: list[dict[str, Any]], n_skus: int) -> dict[str, Any]:
    overall = iou_summary([v["iou"] for v in views])
    by_fc: dict[str, list[float]] = defaultdict(list)
    by_sku: dict[str, list[float]] = defaultdict(list)
    for v in views:
        by_fc[v["fc"]].append(v["iou"])
        by_sku[v["sku"]].append(v["iou"])
    per_fc = {fc: iou_summary(ious) for fc, ious in by_fc.items()}
    worst = sorted(by_sku.items(), key=lambda kv: float(np.mean(np.asarray(kv[1]) < POOR)), reverse=True)[:8]
    worst_skus = {sku: iou_summary(ious) for sku, ious in worst}
    ms = [1000 * v["s"] for v in views]
    rows = [
        _row(
            f"localize silhouette IoU, median ({overall['n']} views, {n_skus} SKUs, {len(per_fc)} conveyances)",
            overall["median"],
        ),
        _row("localize views under IoU 0.8 / under 0.5", f"{overall['under_0.8']} / {overall['under_0.5']}"),
    ]
    for fc, s in per_fc.items():
        rows.append(
            _row(
                f"localize on {_conveyance_name(fc)}: median IoU, under 0.8, under 0.5",
                f"{s['median']}, {s['under_0.8']}, {s['under_0.5']}",
            )
        )
    rows.append(
        _row(
            "localize segmentation ms per 640x480 frame, p50 / p99",
            f"{statistics.median(ms):.1f} / {float(np.percentile(ms, 99)):.1f}",
        )
    )
    return {
        "overall": overall,
        "per_conveyance": {_conveyance_name(fc): s for fc, s in per_fc.items()},
        "worst_skus": worst_skus,
        "worst_views": sorted(
            ({k: (round(v[k], 3) if k == "iou" else v[k]) for k in ("sku", "fc", "camera", "iou")} for v in views),
            key=lambda v: v["iou"],
        )[:20],
        "seeds_per_conveyance": SEEDS_PER_CONVEYANCE,
        "rows": rows,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=1))
