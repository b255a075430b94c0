"""Attributes + supervised benchmark on simulated items, with held-out render seeds.

Fits everything (anomaly banks, colour profile, supervised classifier) on items rendered
with one seed range and evaluates on another. Reports per-check recall at the measured
false-positive rate on normal items, macro-F1 of the classifier, and an ablation: recall per
defect type for the anomaly ensemble alone, + attributes, + supervised.

`main() -> dict` writes bench/results/attributes.json.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detectors.anomaly.model import AnomalyModel, ModelConfig
from detectors.anomaly.stage import AnomalyStage
from detectors.attributes.colour import measure
from detectors.attributes.profile import AttributeProfile, threshold_from_shares
from detectors.attributes.stage import AttributesStage
from detectors.localize import LocalizeStage, localize
from detectors.supervised.dataset import Example
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
CHECKED = ("wrong_variant_label", "wrong_colour", "wrong_item", "crushed_corner", "bent_cover", "stain")
TRAIN_SEED, TEST_SEED = 10_000, 50_000
ATTRIBUTE_KINDS = {"wrong_variant_label", "wrong_colour", "wrong_item"}
N = {"refs": int(os.environ.get("BENCH_ATTR_REFS", 8)), "normals": int(os.environ.get("BENCH_ATTR_NORMALS", 8))}
N["defects"] = int(os.environ.get("BENCH_ATTR_DEFECTS", 4))
N["train_defects"] = int(os.environ.get("BENCH_ATTR_TRAIN_DEFECTS", 8))
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


def _fit_models(out: Path, log) -> None:
    """Anomaly banks and colour profile from normal references; the classifier from labelled items."""
    model = AnomalyModel(ModelConfig(student_steps=80, max_patches=2048))
    shares: dict[str, list[float]] = {}
    for k, sku in enumerate(SKUS):
        views = []
        shares[sku] = []
        for i in range(N["refs"]):
            benign = ("packaging_variant",) if i % 2 else ()
            cap, _ = _capture(sku, (), TRAIN_SEED + 1000 * k + i, benign)
            images = cap.images()
            views += [images["top"], images["left"], images["right"]]
            loc = [(localize(img, cam), img) for cam, img in images.items()]
            shares[sku].append(measure([p for p in loc if p[0].found], RECORDS[sku].colour_rgb, min_share=0.0).share)
        model.fit(views, name=sku)
        log(f"enrolled {sku}")
    model.save(out / "anomaly")
    AttributeProfile(
        min_share={s: threshold_from_shares(v) for s, v in shares.items()},
        n_items={s: len(v) for s, v in shares.items()},
    ).save(out / "attributes")
    examples = []
    for sku, defects, seed, benign in _plan(TRAIN_SEED + 20_000, N["refs"], N["train_defects"]):
        if defects and defects[0] not in ("crushed_corner", "bent_cover", "stain", "wrong_variant_label"):
            continue
        cap, truth = _capture(sku, defects, seed, benign)
        examples.append(Example(cap, {d.type for d in truth.defects if d.visible}, "truth"))
    _, card = train_supervised(examples, out / "supervised", TrainConfig(), log=log)
    (out / "card.json").write_text(json.dumps(card, default=str))


def _flagged(findings: list[Finding], stages: set[str]) -> bool:
    return any(
        f.stage in stages and f.kind not in ("label_ok",) and (f.probability >= 0.5 or f.kind == "unreadable_label")
        for f in findings
    )


def main() -> dict[str, Any]:
    torch.set_num_threads(1)
    start = time.perf_counter()
    log = print
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        _fit_models(out, log)
        fit_s = time.perf_counter() - start
        card = json.loads((out / "card.json").read_text())
        stages = [
            LocalizeStage(),
            AnomalyStage(model_dir=out / "anomaly"),
            AttributesStage(model_dir=out),
            SupervisedStage(model_dir=out / "supervised"),
        ]
        records = []
        for sku, defects, seed, benign in _plan(TEST_SEED, N["normals"], N["defects"]):
            cap, truth = _capture(sku, defects, seed, benign)
            ctx = StageContext(catalog=CATALOG)
            findings: list[Finding] = []
            for st in stages:
                findings += st(cap, ctx)
            records.append((sku, defects[0] if defects else None, truth.is_defective, findings))
    return _report(records, card, fit_s, time.perf_counter() - start)


def _report(records, card: dict[str, Any], fit_s: float, total_s: float) -> dict[str, Any]:
    normals = [r for r in records if r[1] is None]
    rows: list[dict[str, Any]] = []

    def rate(items, pred) -> float:
        return round(sum(1 for r in items if pred(r[3])) / max(1, len(items)), 4)

    def kind_hit(kind: str, stage: str):
        return lambda fs: any(f.kind == kind and f.stage == stage and f.probability >= 0.5 for f in fs)

    targets = {"wrong_variant_label": 0.95, "wrong_colour": 0.95, "wrong_item": 0.95}
    for kind, target in targets.items():
        pos = [r for r in records if r[1] == kind]
        rows.append(
            {
                "metric": f"{kind} recall (attributes)",
                "value": rate(pos, kind_hit(kind, "attributes")),
                "target": target,
            }
        )
        rows.append(
            {
                "metric": f"{kind} false positives on normals",
                "value": rate(normals, kind_hit(kind, "attributes")),
                "target": 0.005,
            }
        )
    any_attr = lambda fs: _flagged(fs, {"attributes"})  # noqa: E731
    rows.append(
        {
            "metric": "wrong_item caught by any attribute finding",
            "value": rate([r for r in records if r[1] == "wrong_item"], any_attr),
            "target": 0.95,
        }
    )
    rows.append(
        {
            "metric": "unreadable_label reviews on normals",
            "value": rate(normals, lambda fs: any(f.kind == "unreadable_label" for f in fs)),
            "target": None,
        }
    )
    for kind in ("crushed_corner", "bent_cover", "stain", "wrong_variant_label"):
        pos = [r for r in records if r[1] == kind]
        rows.append(
            {
                "metric": f"supervised {kind} recall",
                "value": rate(pos, kind_hit(kind, "supervised")),
                "target": 0.9 if kind in ("crushed_corner", "bent_cover") else None,
            }
        )
        rows.append(
            {
                "metric": f"supervised {kind} FP on normals",
                "value": rate(normals, kind_hit(kind, "supervised")),
                "target": 0.01,
            }
        )
    rows.append(
        {
            "metric": "supervised macro-F1 (held-out training split)",
            "value": card["metrics_heldout"]["macro_f1"],
            "target": None,
        }
    )
    tp = fp = fn = 0
    f1s = []
    for kind in ("crushed_corner", "bent_cover", "stain", "wrong_variant_label"):
        hit = kind_hit(kind, "supervised")
        tp = sum(1 for r in records if r[1] == kind and hit(r[3]))
        fp = sum(1 for r in records if r[1] != kind and hit(r[3]))
        fn = sum(1 for r in records if r[1] == kind and not hit(r[3]))
        if tp + fn:
            p, rc = tp / max(1, tp + fp), tp / (tp + fn)
            f1s.append(2 * p * rc / (p + rc) if p + rc else 0.0)
    rows.append({"metric": "supervised macro-F1 (test seeds)", "value": round(float(np.mean(f1s)), 4), "target": None})
    configs = {
        "anomaly": {"anomaly"},
        "anomaly+attributes": {"anomaly", "attributes"},
        "anomaly+attributes+supervised": {"anomaly", "attributes", "supervised"},
    }
    ablation: dict[str, dict[str, float]] = defaultdict(dict)
    for name, st in configs.items():
        flag = lambda fs, st=st: _flagged([f for f in fs if f.kind != "no_reference"], st)  # noqa: E731
        for kind in CHECKED:
            ablation[name][kind] = rate([r for r in records if r[1] == kind], flag)
        ablation[name]["flagged_normals"] = rate(normals, flag)
    result = {
        "rows": rows,
        "ablation": dict(ablation),
        "items": {"test": len(records), "test_normals": len(normals), **N},
        "model_card": {k: card[k] for k in ("version", "data", "metrics_heldout", "baseline_majority_heldout")},
        "seconds": {"fit": round(fit_s, 1), "total": round(total_s, 1)},
        "load_average": os.getloadavg()[0],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "attributes.json").write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    print(json.dumps(main()["rows"], indent=1))
