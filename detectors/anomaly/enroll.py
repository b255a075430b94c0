"""Enrol every SKU of a tunnel dataset (simulator or catalog export) into one model folder.

references.jsonl split "enrol" fills the banks and split "calibration" calibrates them, so
the calibration views are never in the bank. A SKU with at least `min_references` enrolment
items gets its own bank; every category also gets a pooled bank (kind "category") that serves
its SKUs with too few references and SKUs first seen at scoring time.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.dataset import Dataset, LabelledCapture
from pipeline.imageio import ImageError

from .model import AnomalyModel, Features, ModelConfig

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _features(model: AnomalyModel, items: list[LabelledCapture], augment: bool, log: Log) -> Features | None:
    captures = []
    for item in items:
        try:
            images = item.capture.images()
            captures.append([images[c] for c in sorted(images)])
        except ImageError as exc:
            log(f"skipping {item.capture.item_id}: {exc}")
    return model.features_of(captures, augment=augment) if captures else None


def enroll_dataset(dataset_dir: Path | str, config: ModelConfig | None = None, log: Log = _stderr) -> AnomalyModel:
    ds = Dataset.open(dataset_dir)
    model = AnomalyModel(config or ModelConfig())
    by_sku: dict[str, dict[str, list[LabelledCapture]]] = defaultdict(lambda: defaultdict(list))
    for ref in ds.references():
        if ref.split in ("enrol", "calibration"):
            by_sku[ref.capture.sku][ref.split].append(ref)
    if not by_sku:
        raise ValueError(f"{dataset_dir}: references.jsonl has no 'enrol' or 'calibration' items")
    per_category: dict[str, list[tuple[Features, Features, int]]] = defaultdict(list)
    category_skus: dict[str, list[str]] = defaultdict(list)
    for sku in sorted(by_sku):
        record = ds.catalog.skus.get(sku)
        category = record.category if record else "uncategorised"
        enrol = _features(model, by_sku[sku]["enrol"], True, log)
        cal = _features(model, by_sku[sku]["calibration"], False, log)
        if enrol is None or cal is None:
            log(f"{sku}: no usable enrolment or calibration images")
            category_skus[category].append(sku)
            continue
        n_items = len(by_sku[sku]["enrol"])
        per_category[category].append((enrol, cal, n_items))
        if n_items >= model.config.min_references and len(np.unique(cal.items)) >= 3:
            model.add_bank(model.build_bank(sku, "sku", enrol, cal, n_items), skus=[sku])
            log(f"{sku}: bank from {n_items} items, calibrated on {len(np.unique(cal.items))}")
        else:
            category_skus[category].append(sku)
    for category, parts in sorted(per_category.items()):
        enrol = Features.concat([p[0] for p in parts])
        cal = Features.concat([p[1] for p in parts])
        name = f"category:{category}"
        bank = model.build_bank(name, "category", enrol, cal, sum(p[2] for p in parts))
        model.add_bank(bank, skus=category_skus.get(category, []), category=category)
        log(f"{name}: category bank from {bank.n_images} items of {len(parts)} SKUs")
    return model
