"""Enrol every SKU of a tunnel dataset (simulator or catalog export) into one model folder.

references.jsonl split "enrol" fills the banks and split "calibration" calibrates them, so
the calibration views are never in the bank. A SKU with at least `min_references` enrolment
items gets its own bank; every category also gets a pooled bank (kind "category") that serves
its SKUs with too few references and SKUs first seen at scoring time. A SKU with fewer than 3
calibration items but at least `MIN_CROSS_FIT` enrolment items (a catalog export of reference
photos alone) calibrates cross-fitted, as `AnomalyModel.fit` does with few normals; the category
bank then calibrates on those same scores, read against the SKU's fold banks (its broader
memory scores normals lower still, so its threshold errs towards fewer false diverts).

Work is done one category at a time, so memory holds one category's feature maps:
- the student is trained once per category on the pooled normal feature maps of its SKUs,
  and every bank of the category stores a copy (a SKU's own student cost ~20 s each and
  most of enrolment; calibration stays per bank, so each bank's scores keep their own scale);
- the category bank's patch memory is a coreset of its SKU banks' coresets (plus the raw
  patches of SKUs too small for a bank of their own), not a second coreset over every raw patch.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.dataset import Dataset, LabelledCapture
from pipeline.imageio import ImageError

from .model import AnomalyModel, Features, ModelConfig, unturned
from .threads import limited_threads

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


MIN_CROSS_FIT = 5
"""Fewest enrolment items a SKU without calibration items is cross-fitted from (as `fit`)."""
MIN_CALIBRATION_ITEMS = 3


def _features(
    model: AnomalyModel, items: list[LabelledCapture], augment: bool, log: Log
) -> tuple[Features, int] | None:
    """Features of the readable items, and how many views they were captured with (the turned
    copies `augment` adds come after those)."""
    captures, cameras = [], []
    for item in items:
        try:
            images = item.capture.images()
            captures.append([images[c] for c in sorted(images)])
            cameras.append(sorted(images))
        except ImageError as exc:
            log(f"skipping {item.capture.item_id}: {exc}")
    if not captures:
        return None
    return model.features_of(captures, augment=augment, cameras=cameras), sum(map(len, captures))


def enroll_dataset(dataset_dir: Path | str, config: ModelConfig | None = None, log: Log = _stderr) -> AnomalyModel:
    ds = Dataset.open(dataset_dir)
    model = AnomalyModel(config or ModelConfig())
    by_sku: dict[str, dict[str, list[LabelledCapture]]] = defaultdict(lambda: defaultdict(list))
    for ref in ds.references():
        if ref.split in ("enrol", "calibration"):
            by_sku[ref.capture.sku][ref.split].append(ref)
    if not by_sku:
        raise ValueError(f"{dataset_dir}: references.jsonl has no 'enrol' or 'calibration' items")
    by_category: dict[str, list[str]] = defaultdict(list)
    for sku in sorted(by_sku):
        record = ds.catalog.skus.get(sku)
        by_category[record.category if record else "uncategorised"].append(sku)
    with limited_threads():
        for category, skus in sorted(by_category.items()):
            _enroll_category(model, category, skus, by_sku, log)
    return model


def _enroll_category(
    model: AnomalyModel,
    category: str,
    skus: list[str],
    by_sku: dict[str, dict[str, list[LabelledCapture]]],
    log: Log,
) -> None:
    """SKU banks of one category sharing one student, then the category bank."""
    start = time.perf_counter()
    parts: dict[str, tuple[Features, Features | None, int]] = {}
    captured_views: dict[str, int] = {}
    served_by_category: list[str] = []
    for sku in skus:
        enrolled = _features(model, by_sku[sku]["enrol"], True, log)
        calibration = _features(model, by_sku[sku]["calibration"], False, log)
        if enrolled is None:
            log(f"{sku}: no usable enrolment images")
            served_by_category.append(sku)
            continue
        enrol, captured_views[sku] = enrolled
        cal = calibration[0] if calibration is not None else None
        parts[sku] = (enrol, cal, len(np.unique(enrol.items)))
    if not parts:
        return
    name = f"category:{category}"
    student = model.train_student_state(np.concatenate([p[0].patches for p in parts.values()]))
    rows, keeps, cross_fitted = [], [], []
    for sku, (enrol, cal, n_items) in parts.items():
        calibrated = cal is not None and len(np.unique(cal.items)) >= MIN_CALIBRATION_ITEMS
        cross = None
        if not calibrated and n_items >= max(MIN_CROSS_FIT, model.config.min_references):
            cross = model.cross_fit_scores(enrol, unturned(enrol, captured_views[sku]), student, prefix=f"{sku}+")
            cross_fitted.append(cross)
        if n_items >= model.config.min_references and (calibrated or cross is not None):
            held_out = cal if calibrated else None
            bank = model.build_bank(
                sku, "sku", enrol, held_out, n_items, student=student, student_source=name, cross_fit=cross
            )
            model.add_bank(bank, skus=[sku])
            rows.append(bank.patches)
            keeps.append(np.ones(len(bank.patches), bool))
            how = f"calibrated on {len(np.unique(cal.items))}" if calibrated else "all cross-fitted"
            log(f"{sku}: bank from {n_items} items, {how}")
        else:
            served_by_category.append(sku)
            r, k = model.patch_rows(enrol)
            rows.append(r)
            keeps.append(k)
    cals = [p[1] for p in parts.values() if p[1] is not None]
    if not cals and not cross_fitted:
        log(
            f"{name}: no calibration images and no SKU with {MIN_CROSS_FIT} or more enrolment items to "
            f"cross-fit; its SKUs {sorted(served_by_category)} have no bank (scored: no reference)"
        )
        return
    bank = model.build_bank(
        name,
        "category",
        Features.concat([p[0] for p in parts.values()]),
        Features.concat(cals) if cals else None,
        sum(p[2] for p in parts.values()),
        student=student,
        student_source=name,
        patches=(np.concatenate(rows), np.concatenate(keeps)),
        cross_fit=_joined(cross_fitted) if cross_fitted else None,
    )
    model.add_bank(bank, skus=served_by_category, category=category)
    log(f"{name}: category bank from {bank.n_images} items of {len(parts)} SKUs in {time.perf_counter() - start:.1f}s")


def _joined(parts: list[dict]) -> dict:
    """Several SKUs' cross-fitted scores as one (their item keys carry the SKU)."""
    return {
        "raw": {m: [v for part in parts for v in part["raw"][m]] for m in parts[0]["raw"]},
        "items": [key for part in parts for key in part["items"]],
        "folds": parts[0]["folds"],
    }
