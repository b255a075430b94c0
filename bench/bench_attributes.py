"""Attributes + supervised benchmark on simulated items, with held-out render seeds.

Fits everything (anomaly banks, colour profile, supervised classifier) on items rendered
with one seed range and evaluates on another. Reports per-check recall at the measured
false-positive rate on normal items, macro-F1 of the classifier, and an ablation: recall per
defect type for the anomaly ensemble alone, + attributes, + supervised.

Banks are enrolled as `tunnelpi enroll` does: whole items (three views each), two thirds of a
SKU's references in the bank and one third held out to calibrate it. Every threshold comes
from training/reference items (TRAIN_SEED); test items (TEST_SEED) are only scored.

Sizes (env overrides for a quick run): BENCH_ATTR_REFS normal references per SKU,
BENCH_ATTR_NORMALS / BENCH_ATTR_DEFECTS test normals per SKU and test items per applicable
defect type per SKU, BENCH_ATTR_TRAIN_NORMALS / BENCH_ATTR_TRAIN_DEFECTS the classifier's.

`main() -> dict` writes bench/results/attributes.json.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detectors.anomaly.model import AnomalyModel, ModelConfig
from detectors.anomaly.stage import AnomalyStage
from detectors.attributes.labels import expected_labels
from detectors.attributes.profile import ProfileReadings, located_views
from detectors.attributes.stage import AttributesStage
from detectors.localize import LocalizeStage
from detectors.supervised.dataset import FINE_TYPES, Example
from detectors.supervised.stage import SupervisedStage
from detectors.supervised.train import TrainConfig, train_supervised
from pipeline.catalog import Catalog
from pipeline.stages import StageContext
from pipeline.types import Finding, Frame, ItemCapture
from tunnel_sim import render_item
from tunnel_sim.catalog import catalog_records
from tunnel_sim.defects import applicable_defects

RESULTS = Path(__file__).resolve().parent / "results"
SKUS = (
    "TEE-BASIC-NAVY-M",
    "SHEET-SET-KING",
    "SNEAKER-RUN-BLU-42",
    "PHONE-CASE-P15-RED",
    "BOOK-NOVEL-0001",
    "FOOD-CEREAL-DE-01",
)
CHECKED = ("wrong_variant_label", "wrong_colour", "wrong_item", "crushed_corner", "bent_cover", "broken_seal", "stain")
TRAIN_SEED, TEST_SEED = 10_000, 50_000
ATTRIBUTE_KINDS = ("wrong_variant_label", "wrong_colour", "wrong_item")
N = {
    "refs": int(os.environ.get("BENCH_ATTR_REFS", 30)),
    "normals": int(os.environ.get("BENCH_ATTR_NORMALS", 34)),
    "defects": int(os.environ.get("BENCH_ATTR_DEFECTS", 10)),
    "train_normals": int(os.environ.get("BENCH_ATTR_TRAIN_NORMALS", 60)),
    "train_defects": int(os.environ.get("BENCH_ATTR_TRAIN_DEFECTS", 30)),
}
CAL_FRACTION = 1 / 3
"""Share of a SKU's references held out of its bank to calibrate it (as `tunnelpi enroll`)."""
RECORDS = {r.sku: r for r in catalog_records()}
CATALOG = Catalog(skus=RECORDS)


def _capture(sku: str, defects: tuple[str, ...], seed: int, benign: tuple[str, ...] = ()) -> tuple[ItemCapture, Any]:
    fc = ("FC-BER1", "FC-SEA8", "FC-LYS1", "FC-DTM2")[seed % 4]
    item = render_item(RECORDS[sku], defects=defects, seed=seed, benign=benign, fc=fc, item_id=f"b{seed}")
    frames = [Frame.from_array(cam, img) for cam, img in item.images.items()]
    return ItemCapture(item_id=f"b{seed}-{sku[:12]}", sku=sku, frames=frames), item.truth


def _plan(base: int, normals: int, defects: int) -> list[tuple[str, tuple[str, ...], int, tuple[str, ...]]]:
    plan, seed = [], base
    for sku in SKUS:
        for i in range(normals):
            benign = ("packaging_variant",) if i % 3 == 2 else (("other_fc_tote",) if i % 3 == 1 else ())
            plan.append((sku, (), seed, benign))
            seed += 1
        for d in CHECKED:
            if d in applicable_defects(RECORDS[sku]):
                for _ in range(defects):
                    plan.append((sku, (d,), seed, ()))
                    seed += 1
    return plan


def _enrol(model: AnomalyModel, sku: str, k: int, readings: ProfileReadings) -> None:
    """One SKU bank from its references (items of three views), whose colour readings go to `readings`."""
    items, cameras = [], []
    for i in range(N["refs"]):
        benign = ("packaging_variant",) if i % 2 else ()
        cap, _ = _capture(sku, (), TRAIN_SEED + 1000 * k + i, benign)
        images = cap.images()
        items.append([images[c] for c in sorted(images)])
        cameras.append(sorted(images))
        readings.add(sku, located_views(images), RECORDS[sku].colour_rgb)
    n_cal = max(3, round(len(items) * CAL_FRACTION))
    enrol = model.features_of(items[n_cal:], augment=True, cameras=cameras[n_cal:])
    cal = model.features_of(items[:n_cal], cameras=cameras[:n_cal])
    model.add_bank(model.build_bank(sku, "sku", enrol, cal, len(items) - n_cal), skus=[sku])


def _fit_models(out: Path, log) -> dict[str, float]:
    """Anomaly banks and colour profile from normal references; the classifier from labelled items."""
    seconds = {}
    start = time.perf_counter()
    model = AnomalyModel(ModelConfig(student_steps=80, max_patches=2048))
    readings = ProfileReadings()
    for k, sku in enumerate(SKUS):
        _enrol(model, sku, k, readings)
        log(f"enrolled {sku}")
    model.save(out / "anomaly")
    readings.profile().save(out / "attributes")
    seconds["enrol"] = time.perf_counter() - start
    start = time.perf_counter()
    examples = []
    for sku, defects, seed, benign in _plan(TRAIN_SEED + 20_000, N["train_normals"], N["train_defects"]):
        if defects and defects[0] not in FINE_TYPES:
            continue
        cap, truth = _capture(sku, defects, seed, benign)
        examples.append(Example(cap, {d.type for d in truth.defects if d.visible}, "truth"))
    reference = AnomalyModel.load(out / "anomaly")
    _, card = train_supervised(examples, out / "supervised", TrainConfig(), log=log, reference=reference)
    (out / "card.json").write_text(json.dumps(card, default=str))
    seconds["supervised_train"] = time.perf_counter() - start
    return seconds


def _flagged(findings: list[Finding], stages: set[str]) -> bool:
    """Flagged by these stages for the ablation: a finding at the divert probability (0.5) or an
    unreadable label (always a review). Reviews from lower probabilities are not counted here;
    the "diverted or reviewed" rows count them."""
    return any(
        f.stage in stages and f.kind not in ("label_ok",) and (f.probability >= 0.5 or f.kind == "unreadable_label")
        for f in findings
    )


def main() -> dict[str, Any]:
    torch.set_num_threads(1)
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(msg, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        seconds = _fit_models(out, log)
        card = json.loads((out / "card.json").read_text())
        stages = [
            LocalizeStage(),
            AnomalyStage(model_dir=out / "anomaly"),
            AttributesStage(model_dir=out),
            SupervisedStage(model_dir=out / "supervised"),
        ]
        stage_s: dict[str, float] = defaultdict(float)
        records = []
        plan = _plan(TEST_SEED, N["normals"], N["defects"])
        test_start = time.perf_counter()
        unseen: Counter[str] = Counter()
        for i, (sku, defects, seed, benign) in enumerate(plan):
            cap, truth = _capture(sku, defects, seed, benign)
            if defects and defects[0] not in {d.type for d in truth.defects if d.visible}:
                unseen[defects[0]] += 1  # drawn where no camera sees it: the item looks normal
                continue
            ctx = StageContext(catalog=CATALOG)
            findings: list[Finding] = []
            for st in stages:
                t = time.perf_counter()
                findings += st(cap, ctx)
                stage_s[st.name] += time.perf_counter() - t
            details = {d.type: d.details for d in truth.defects}
            records.append((sku, defects[0] if defects else None, (seed, benign, details), findings))
            if (i + 1) % 50 == 0:
                log(f"scored {i + 1}/{len(plan)}")
        seconds["test"] = time.perf_counter() - test_start
    per_item = {k: round(1000 * v / max(1, len(records)), 1) for k, v in stage_s.items()}
    return _report(records, card, seconds, per_item, time.perf_counter() - start, unseen)


def _rate(items: list, pred) -> float:
    return round(sum(1 for r in items if pred(r[3])) / max(1, len(items)), 4)


def _hit(kind: str, stage: str):
    return lambda fs: any(f.kind == kind and f.stage == stage and f.probability >= 0.5 for f in fs)


def _caught(fs: list[Finding]) -> bool:
    """Diverted by an attribute finding of a defect kind (a review for an unreadable label is not a catch)."""
    return any(f.stage == "attributes" and f.kind in ATTRIBUTE_KINDS and f.probability >= 0.5 for f in fs)


def _held(fs: list[Finding]) -> bool:
    """Diverted or sent to review by an attribute finding (the policy reviews from 0.25)."""
    kinds = (*ATTRIBUTE_KINDS, "unreadable_label")
    return any(f.stage == "attributes" and f.kind in kinds and f.probability >= 0.25 for f in fs)


def _examples(items: list, stage: str, limit: int = 12) -> list[dict[str, Any]]:
    """What went wrong on these items: SKU, seed, variation, defect details and the stage's messages."""
    return [
        {
            "sku": sku,
            "seed": info[0],
            "benign": list(info[1]),
            "defect": kind,
            "details": info[2].get(kind, {}) if kind else {},
            "findings": [f"{f.kind} p={f.probability:.2f}: {f.message}" for f in fs if f.stage == stage],
        }
        for sku, kind, info, fs in items[:limit]
    ]


def _report(
    records: list,
    card: dict[str, Any],
    seconds: dict[str, float],
    per_item_ms: dict[str, float],
    total_s: float,
    unseen: Counter[str],
) -> dict[str, Any]:
    """Rows and details; `unseen` counts planned defects no camera saw, left out of the test set."""
    normals = [r for r in records if r[1] is None]
    labelled = [r for r in normals if expected_labels(RECORDS[r[0]].attributes)]
    rows: list[dict[str, Any]] = []
    checks: dict[str, dict[str, Any]] = {}

    def row(metric: str, value: Any, target: str | None = None) -> None:
        rows.append({"metric": metric, "value": value, "target": target})

    for kind in ATTRIBUTE_KINDS:
        pos = [r for r in records if r[1] == kind]
        neg = labelled if kind == "wrong_variant_label" else normals
        hit = _hit(kind, "attributes")
        checks[kind] = {
            "recall": _rate(pos, hit),
            "n": len(pos),
            "fp_rate": _rate(neg, hit),
            "n_normals": len(neg),
            "missed": _examples([r for r in pos if not hit(r[3])], "attributes"),
            "false_positives": _examples([r for r in neg if hit(r[3])], "attributes"),
        }
        target = ">= 0.95"
        row(f"attributes {kind} recall (n={len(pos)})", checks[kind]["recall"], target)
        row(f"attributes {kind} false positives on normals (n={len(neg)})", checks[kind]["fp_rate"], "<= 0.005")
    wrong_items = [r for r in records if r[1] == "wrong_item"]
    checks["wrong_item_any"] = {
        "recall": _rate(wrong_items, _caught),
        "n": len(wrong_items),
        "fp_rate": _rate(normals, _caught),
        "n_normals": len(normals),
        "missed": _examples([r for r in wrong_items if not _caught(r[3])], "attributes"),
    }
    unreadable = [r for r in labelled if any(f.kind == "unreadable_label" for f in r[3])]
    row(
        f"attributes wrong_item caught by any attribute finding (n={len(wrong_items)})",
        checks["wrong_item_any"]["recall"],
        ">= 0.95",
    )
    row(f"attributes: any attribute finding on normals (n={len(normals)})", checks["wrong_item_any"]["fp_rate"])
    checks["wrong_item_held"] = {"recall": _rate(wrong_items, _held), "fp_rate": _rate(normals, _held)}
    row(
        f"attributes wrong_item diverted or reviewed by an attribute finding (n={len(wrong_items)})",
        checks["wrong_item_held"]["recall"],
    )
    row(
        f"attributes: normals diverted or reviewed by an attribute finding (n={len(normals)})",
        checks["wrong_item_held"]["fp_rate"],
    )
    row(
        f"attributes unreadable_label reviews on labelled normals (n={len(labelled)})",
        round(len(unreadable) / max(1, len(labelled)), 4),
    )
    checks["unreadable_label_normals"] = {"n": len(unreadable), "items": _examples(unreadable, "attributes")}
    supervised: dict[str, dict[str, Any]] = {}
    f1s = []
    for kind in FINE_TYPES:
        hit = _hit(kind, "supervised")
        pos = [r for r in records if r[1] == kind]
        tp = sum(1 for r in pos if hit(r[3]))
        fp = sum(1 for r in records if r[1] != kind and hit(r[3]))
        recall, precision = tp / max(1, len(pos)), tp / max(1, tp + fp)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if pos:
            f1s.append(f1)
        supervised[kind] = {
            "recall": round(recall, 4),
            "n": len(pos),
            "fp_rate_normals": _rate(normals, hit),
            "precision": round(precision, 4),
            "f1": round(f1, 4),
            "missed": _examples([r for r in pos if not hit(r[3])], "supervised"),
            "false_positives_on_normals": _examples([r for r in normals if hit(r[3])], "supervised"),
        }
        targeted = kind in ("crushed_corner", "bent_cover")
        row(f"supervised {kind} recall (n={len(pos)})", supervised[kind]["recall"], ">= 0.90" if targeted else None)
        row(
            f"supervised {kind} false positives on normals (n={len(normals)})",
            supervised[kind]["fp_rate_normals"],
            "<= 0.01",
        )
    macro_test = round(float(np.mean(f1s)), 4) if f1s else 0.0
    row(
        f"supervised macro-F1, {card['data'].get('heldout', 'held-out')} training items",
        card["metrics_heldout"]["macro_f1"],
    )
    row("supervised macro-F1, test items", macro_test)
    configs = {
        "anomaly": {"anomaly"},
        "anomaly+attributes": {"anomaly", "attributes"},
        "anomaly+attributes+supervised": {"anomaly", "attributes", "supervised"},
    }
    ablation: dict[str, dict[str, float]] = defaultdict(dict)
    for name, st in configs.items():
        flag = lambda fs, st=st: _flagged([f for f in fs if f.kind != "no_reference"], st)  # noqa: E731
        for kind in CHECKED:
            ablation[name][kind] = _rate([r for r in records if r[1] == kind], flag)
        defects = [r for r in records if r[1] is not None]
        ablation[name]["all_defects"] = _rate(defects, flag)
        ablation[name]["flagged_normals"] = _rate(normals, flag)
        row(
            f"ablation {name}: defects flagged (n={len(defects)}) / normals flagged (n={len(normals)})",
            f"{ablation[name]['all_defects']:.3f} / {ablation[name]['flagged_normals']:.3f}",
        )
    row("test defects drawn where no camera sees them, left out", sum(unseen.values()))
    row("attributes bench total seconds", round(total_s, 1))
    result = {
        "rows": rows,
        "checks": checks,
        "supervised": supervised,
        "ablation": dict(ablation),
        "items": {"test": len(records), "test_normals": len(normals), "unseen_defects_left_out": dict(unseen), **N},
        "model_card": {k: card[k] for k in ("version", "data", "training", "metrics_heldout", "thresholds")},
        "baseline_majority_heldout": card["baseline_majority_heldout"],
        "seconds": {**{k: round(v, 1) for k, v in seconds.items()}, "total": round(total_s, 1)},
        "ms_per_test_item": per_item_ms,
        "load_average": os.getloadavg()[0],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "attributes.json").write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    print(json.dumps(main()["rows"], indent=1))
