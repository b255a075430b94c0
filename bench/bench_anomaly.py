"""Anomaly benchmark: MVTec bottle AUROC, few-shot curve, torch vs ONNX latency, bank size,
enrolment time, the same photos placed on belts and totes at any pose (localisation and pose
tolerance on real images), and the simulator's per-defect AUROC and recall at the 0.5 %
false-divert threshold.

`main() -> dict` writes bench/results/anomaly.json and bench/results/anomaly_fewshot.png.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from bench.bench_localize import frame_iou, iou_summary
from detectors.anomaly.export import OnnxRuntime, export_onnx
from detectors.anomaly.model import MEMBERS, AnomalyModel, ModelConfig
from detectors.anomaly.prepare import ROUND_MAJORITY, round_share
from detectors.anomaly.threads import compute_threads
from pipeline.imageio import read_image
from tunnel_sim.composite import Placement, object_mask, place_on_conveyance

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "mvtec_bottle"
RESULTS = Path(__file__).resolve().parent / "results"
VISIBLE_DAMAGE = ("torn_box", "crushed_corner", "stain", "puncture", "bent_cover", "broken_seal", "empty_container")
FEW_SHOT = (5, 10, 30, 100)
FEW_NORMALS = 10
FEW_NORMALS_STARTS = (0, 30, 60, 90, 120)
"""Choices of `FEW_NORMALS` training bottles (disjoint) that `anomaly fit` calibrates itself on."""
CONVEYOR_SEED = 4242
CONVEYOR_NORMALS = 30
"""Normal photos in the bank when the bottles lie on a conveyor: what AWS Lookout for Vision asks."""
ROUND_VARIANT = "round rotations"
CONVEYOR_VARIANTS = {
    "default": ModelConfig(),
    ROUND_VARIANT: ModelConfig(augment=("rot180", "rot_round")),
}


def _images(paths: list[Path]) -> list[np.ndarray]:
    return [read_image(p) for p in paths]


def per_defect_auroc(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUROC of each defect folder's images against the good ones."""
    good = labels == "good"
    return {
        d: float(roc_auc_score(labels[(labels == d) | good] == d, scores[(labels == d) | good]))
        for d in sorted(set(labels.tolist()) - {"good"})
    }


def _mvtec(result: dict[str, Any]) -> None:
    good = sorted((DATA / "train" / "good").glob("*.jpg"))
    bank_imgs, cal_imgs = _images(good[:160]), _images(good[160:])
    tests = sorted((DATA / "test").glob("*/*.jpg"))
    labels = [p.parent.name for p in tests]
    test_imgs = _images(tests)
    cfg = ModelConfig(localize=False)

    model = AnomalyModel(cfg)
    start = time.perf_counter()
    model.fit(bank_imgs, calibration=cal_imgs)
    fit_s = time.perf_counter() - start
    scored = [model.score([im]) for im in test_imgs]
    y = np.array([lab != "good" for lab in labels])
    s = np.array([r.score for r in scored])
    flagged = np.array([r.anomalous for r in scored])
    result["mvtec"] = {
        "image_auroc": float(roc_auc_score(y, s)),
        "member_auroc": {m: float(roc_auc_score(y, [r.views[0].z[m] for r in scored])) for m in MEMBERS},
        "per_defect_auroc": per_defect_auroc(np.array(labels), s),
        "recall_at_threshold": float(flagged[y].mean()),
        "false_divert_rate_test_good": float(flagged[~y].mean()),
        "fit_seconds_160_images": round(fit_s, 1),
        "bank_mb": round(model.banks["default"].nbytes() / 1e6, 2),
    }

    # few-shot curve: same calibration set, bank from the first n normal images
    curve = {}
    for n in FEW_SHOT:
        m = AnomalyModel(cfg)
        m.fit(bank_imgs[:n], calibration=cal_imgs)
        sc = np.array([m.score([im]).score for im in test_imgs])
        curve[n] = float(roc_auc_score(y, sc))
    result["mvtec"]["few_shot_auroc"] = curve
    _plot_curve(curve, RESULTS / "anomaly_fewshot.png")

    _few_normals_operating_point(result, bank_imgs, test_imgs, y)

    # enrolment time for 30 images (+10 calibration), bank size
    m30 = AnomalyModel(cfg)
    start = time.perf_counter()
    m30.fit(bank_imgs[:30], calibration=cal_imgs[:10])
    result["enrol_30_images_s"] = round(time.perf_counter() - start, 1)

    # latency per view: torch vs onnxruntime, same model folder
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp)
        export_onnx(model, tmp)
        disk = sum(f.stat().st_size for f in (Path(tmp) / "banks").rglob("*"))
        result["bank_mb_on_disk"] = round(disk / 1e6, 2)
        onnx_model = AnomalyModel.load(tmp, runtime=OnnxRuntime(tmp, threads=2))
        lat = {}
        for name, mod in (("torch", model), ("onnx", onnx_model)):
            times = []
            for im in test_imgs[:40]:
                t = time.perf_counter()
                mod.score([im])
                times.append((time.perf_counter() - t) * 1000)
            lat[name] = {
                "p50_ms": round(float(np.median(times[5:])), 1),
                "p99_ms": round(float(np.percentile(times[5:], 99)), 1),
            }
        parity = max(
            abs(onnx_model.score([im]).score - model.score([im]).score) / max(abs(model.score([im]).score), 1e-9)
            for im in test_imgs[:10]
        )
        result["latency_per_view"] = lat
        result["onnx_max_relative_score_difference"] = parity


def _few_normals_operating_point(
    result: dict[str, Any], normals: list[np.ndarray], test_imgs: list[np.ndarray], defective: np.ndarray
) -> None:
    """Where the threshold lands when `anomaly fit` gets only a few normals and no calibration
    images: over several choices of the normals, the defective and the good test bottles flagged,
    calibrated cross-fitted (the default) and on a held-out quarter."""
    ways = {
        "cross-fitted": ModelConfig(localize=False),
        "held-out quarter": ModelConfig(localize=False, cross_fit_below=0),
    }
    out: dict[str, Any] = {"normals": FEW_NORMALS, "choices": len(FEW_NORMALS_STARTS)}
    for way, cfg in ways.items():
        flagged_defects, flagged_good = [], []
        for start in FEW_NORMALS_STARTS:
            model = AnomalyModel(cfg)
            model.fit(normals[start : start + FEW_NORMALS])
            flagged = np.array([model.score([im]).anomalous for im in test_imgs])
            flagged_defects.append(float(flagged[defective].mean()))
            flagged_good.append(float(flagged[~defective].mean()))
        out[way] = {"defects_flagged": flagged_defects, "good_flagged": flagged_good}
    result["mvtec"]["few_normals_operating_point"] = out


def _placed(paths: list[Path], rng: np.random.Generator) -> list[Placement]:
    placed = []
    for path in paths:
        image = read_image(path)
        placed.append(place_on_conveyance(image, object_mask(image), rng))
    return placed


def _mvtec_on_conveyor(result: dict[str, Any]) -> None:
    """The MVTec photos' bottles cut out and placed on every FC's belt or tote at any rotation,
    size and position (`tunnel_sim.composite`): full frames are fitted and scored, so the item
    must be found first and matched against normals that lay at other angles."""
    rng = np.random.default_rng(CONVEYOR_SEED)
    good = sorted((DATA / "train" / "good").glob("*.jpg"))
    tests = sorted((DATA / "test").glob("*/*.jpg"))
    labels = np.array([p.parent.name for p in tests])
    y = labels != "good"
    bank, cal, test = _placed(good[:CONVEYOR_NORMALS], rng), _placed(good[160:], rng), _placed(tests, rng)
    ious = [frame_iou(p.frame, p.mask)[0] for p in test]
    out: dict[str, Any] = {"normals": len(bank), "calibration": len(cal), "localisation": iou_summary(ious)}
    # what `tunnelpi anomaly fit` enrols for these normals when no flag says
    share = round_share([p.frame for p in bank])
    picks = ROUND_VARIANT if share >= ROUND_MAJORITY else "default"
    out["anomaly_fit"] = {"round_share": round(share, 3), "picks": picks}
    for name, config in CONVEYOR_VARIANTS.items():
        model = AnomalyModel(config)
        start = time.perf_counter()
        model.fit([p.frame for p in bank], calibration=[p.frame for p in cal])
        fit_s = time.perf_counter() - start
        scored = [model.score([p.frame]) for p in test]
        s = np.array([r.score for r in scored])
        flagged = np.array([r.anomalous for r in scored])
        out[name] = {
            "image_auroc": round(float(roc_auc_score(y, s)), 4),
            "per_defect_auroc": {d: round(v, 4) for d, v in per_defect_auroc(labels, s).items()},
            "recall_at_threshold": round(float(flagged[y].mean()), 3),
            "good_flagged": round(float(flagged[~y].mean()), 3),
            "fit_seconds": round(fit_s, 1),
        }
    result["mvtec_on_conveyor"] = out


def _plot_curve(curve: dict[int, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    xs = sorted(curve)
    ax.plot(xs, [curve[x] for x in xs], marker="o")
    ax.set_xscale("log")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("normal images in the bank")
    ax.set_ylabel("image AUROC")
    ax.set_title("MVTec bottle: few-shot AUROC")
    ax.set_ylim(min(0.8, min(curve.values()) - 0.02), 1.005)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _generate(root: Path, items: int, seed: int, defect_rate: float) -> None:
    """The simulator in its own process: its worker pool forked from this process (torch's OpenMP
    pool already started) hung with idle children, so generation must not fork from here."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "pipeline.cli", "sim", "generate", "--out", str(root)]
    cmd += ["--items", str(items), "--seed", str(seed), "--defect-rate", str(defect_rate), "--workers", "2"]
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)


def _score_shift(model: Any, ds: Any) -> tuple[list[dict[str, Any]], list[float]]:
    """Every item of a shift scored against its SKU's bank: score, flag, visible defect types."""
    rows, item_ms = [], []
    for item in ds.items():
        rec = ds.catalog.skus.get(item.capture.sku)
        imgs = item.capture.images()
        r = model.score([imgs[c] for c in sorted(imgs)], item.capture.sku, rec.category if rec else None, sorted(imgs))
        item_ms.append(r.ms / max(1, len(r.views)))
        truth = item.truth
        rows.append(
            {
                "score": r.score,
                "anomalous": r.anomalous,
                "types": [d.type for d in truth.defects if d.visible] if truth else [],
                "benign": truth.benign if truth else [],
                "damage_px": _damage_pixels(ds.root, truth),
            }
        )
    return rows, item_ms


def _damage_pixels(root: Path, truth: Any) -> int:
    """Pixels of visible damage in the camera that shows the most of it (0: none)."""
    if truth is None:
        return 0
    best = 0
    for d in truth.defects:
        if d.visible and d.type in VISIBLE_DAMAGE:
            for mask in d.masks.values():
                m = cv2.imread(str(root / mask), cv2.IMREAD_GRAYSCALE)
                best = max(best, int((m > 0).sum()) if m is not None else 0)
    return best


SIZE_BINS = ((0, 300), (300, 1000), (1000, None))
"""Visible-damage size bins in pixels of a 640x480 frame: under 300 px is a blot of about 17x17."""


def _by_size(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Visible damage by how much of it the best camera shows: AUROC against the normals, recall."""
    ns = [r["score"] for r in rows if not r["types"]]
    damaged = [r for r in rows if any(t in VISIBLE_DAMAGE for t in r["types"])]
    out = {}
    for lo, hi in SIZE_BINS:
        rs = [r for r in damaged if lo <= r["damage_px"] and (hi is None or r["damage_px"] < hi)]
        if not rs or not ns:
            continue
        ys = [0] * len(ns) + [1] * len(rs)
        out[f"{lo}-{hi}px" if hi else f">={lo}px"] = {
            "n": len(rs),
            "auroc": float(roc_auc_score(ys, ns + [r["score"] for r in rs])),
            "recall": float(np.mean([r["anomalous"] for r in rs])),
        }
    return out


def _per_type(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per defect type and over all visible damage: AUROC against the shift's normals and recall
    at the threshold."""
    normal = [r for r in rows if not r["types"]]
    by_type: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        for t in r["types"]:
            by_type[t].append(r)
    ns = [r["score"] for r in normal]
    per_type = {}
    for t, rs in sorted(by_type.items()):
        ys = [0] * len(ns) + [1] * len(rs)
        per_type[t] = {
            "n": len(rs),
            "auroc": float(roc_auc_score(ys, ns + [r["score"] for r in rs])) if ns else None,
            "recall": float(np.mean([r["anomalous"] for r in rs])),
            "visible_damage": t in VISIBLE_DAMAGE,
        }
    visible = [r for r in rows if any(t in VISIBLE_DAMAGE for t in r["types"])]
    if visible and ns:
        per_type["visible damage, all types"] = {
            "n": len(visible),
            "auroc": float(roc_auc_score([0] * len(ns) + [1] * len(visible), ns + [r["score"] for r in visible])),
            "recall": float(np.mean([r["anomalous"] for r in visible])),
            "visible_damage": True,
        }
    return per_type


EMPTY_PER_SKU = 8
"""Empty containers rendered per SKU that can be one (`_empty_containers`)."""
EMPTY_SEED = 880_000


def _empty_containers(model: Any, ds: Any) -> list[dict[str, Any]]:
    """Empty containers (a tennis-ball tube without its balls, a bottle a third full), rendered
    apart for every SKU that can be one and scored as the shift's items are: at the shift's
    defect rate a 300-item shift draws few or none. Items whose emptiness no camera shows are left out."""
    from tunnel_sim import render_item
    from tunnel_sim.defects import applicable_defects
    from tunnel_sim.scene import FC_CONVEYANCE

    fcs = sorted(FC_CONVEYANCE)
    rows = []
    for i, sku in enumerate(sorted(ds.catalog.skus)):
        record = ds.catalog.skus[sku]
        if "empty_container" not in applicable_defects(record):
            continue
        for k in range(EMPTY_PER_SKU):
            seed = EMPTY_SEED + 100 * i + k
            item = render_item(
                record, defects=("empty_container",), seed=seed, fc=fcs[k % len(fcs)], item_id=f"E{seed}"
            )
            if not any(d.visible for d in item.truth.defects):
                continue
            cams = sorted(item.images)
            r = model.score([item.images[c] for c in cams], sku, record.category, cams)
            rows.append(
                {
                    "score": r.score,
                    "anomalous": r.anomalous,
                    "types": [d.type for d in item.truth.defects if d.visible],
                    "benign": [],
                    "damage_px": 0,
                }
            )
    return rows


def _with_empties(rows: list[dict[str, Any]], empties: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`_per_type` of the shift, with a row for the empty containers rendered apart scored against
    the shift's normal items (the shift's own aggregate over visible damage is left as it was)."""
    per_type = _per_type(rows)
    if empties:
        normal = [r for r in rows if not r["types"]]
        per_type["empty_container (rendered apart)"] = _per_type(normal + empties)["empty_container"]
    return per_type


def _flagged(rows: list[dict[str, Any]]) -> float | None:
    return float(np.mean([r["anomalous"] for r in rows])) if rows else None


def _simulator(result: dict[str, Any], items: int = 300, seed: int = 7, defect_rate: float = 0.5) -> None:
    """Enrol a simulated shift's SKUs, then score the shift's items against their SKU banks;
    then again with the operating point set on an earlier shift's good items as well.

    Half the items carry a defect so that each defect type has enough examples for an AUROC;
    every SKU of the catalog is enrolled whatever the item count, so enrolment time is the
    full catalog's.
    """
    import tunnel_sim  # noqa: F401  (ImportError: simulator not installed)
    from detectors.anomaly.belt import calibrate_on_belt, normal_items
    from detectors.anomaly.enroll import enroll_dataset
    from pipeline.dataset import Dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "sim"
        start = time.perf_counter()
        _generate(root, items, seed, defect_rate)
        generate_s = time.perf_counter() - start
        start = time.perf_counter()
        model = enroll_dataset(root, ModelConfig(), log=lambda _m: None)
        enrol_s = time.perf_counter() - start
        ds = Dataset.open(root)
        rows, item_ms = _score_shift(model, ds)
        empties = _empty_containers(model, ds)
        # the earlier shift's defect-free items stand for audited passes
        earlier = Path(tmp) / "earlier"
        _generate(earlier, items, seed + 1, defect_rate)
        prior = Dataset.open(earlier)
        start = time.perf_counter()
        categories = {sku: rec.category for sku, rec in prior.catalog.skus.items()}
        belt = calibrate_on_belt(model, normal_items(prior, use_truth=True), categories)
        belt_s = time.perf_counter() - start
        belt_rows, _ = _score_shift(model, ds)
        belt_empties = _empty_containers(model, ds)
    normal = [r for r in rows if not r["types"]]
    benign = [r for r in normal if r["benign"]]
    belt_normal = [r for r in belt_rows if not r["types"]]
    sku_banks = [b for b in model.banks.values() if b.kind == "sku"]
    result["simulator"] = {
        "items": len(rows),
        "generate_seconds": round(generate_s, 1),
        "skus": len(model.skus),
        "enrol_seconds_all_skus": round(enrol_s, 1),
        "enrol_seconds_per_sku": round(enrol_s / max(1, len(model.skus)), 2),
        "bank_mb_per_sku": round(float(np.mean([b.nbytes() for b in sku_banks])) / 1e6, 2) if sku_banks else None,
        "torch_ms_per_view_p50": round(float(np.median(item_ms)), 1),
        "banks": {k: sum(b.kind == k for b in model.banks.values()) for k in ("sku", "category")},
        "false_divert_rate_normals": _flagged(normal),
        "benign_flagged_rate": _flagged(benign),
        "per_defect": _with_empties(rows, empties),
        "visible_damage_by_size": _by_size(rows),
        "belt_calibrated": {
            "earlier_shift_seed": seed + 1,
            "normal_items": belt.items,
            "views": belt.views,
            "seconds": round(belt_s, 1),
            "false_divert_rate_normals": _flagged(belt_normal),
            "benign_flagged_rate": _flagged([r for r in belt_normal if r["benign"]]),
            "per_defect": _with_empties(belt_rows, belt_empties),
        },
    }


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    mv = result.get("mvtec", {})
    rows = [
        {"metric": "MVTec bottle image AUROC", "value": mv.get("image_auroc"), "target": ">= 0.995"},
        *(
            {"metric": f"few-shot AUROC, {n} normals", "value": v, "target": "curve"}
            for n, v in mv.get("few_shot_auroc", {}).items()
        ),
        {"metric": "MVTec recall at 0.5% threshold", "value": mv.get("recall_at_threshold"), "target": ""},
        {"metric": "MVTec test/good flagged", "value": mv.get("false_divert_rate_test_good"), "target": ""},
    ]
    if few := mv.get("few_normals_operating_point"):
        for way in ("cross-fitted", "held-out quarter"):
            d, g = few[way]["defects_flagged"], few[way]["good_flagged"]
            rows.append(
                {
                    "metric": f"anomaly fit on {few['normals']} normals, calibrated {way}: defects flagged "
                    f"median (lowest) / good flagged highest, over {few['choices']} choices",
                    "value": f"{np.median(d):.2f} ({min(d):.2f}) / {max(g):.2f}",
                    "target": "",
                }
            )
    belt = result.get("mvtec_on_conveyor")
    if belt:
        where = f"MVTec bottle on belts and totes, any pose, {belt['normals']} normals"
        loc = belt["localisation"]
        rows.append({"metric": f"{where}: localisation median IoU", "value": loc["median"], "target": ""})
        if fit := belt.get("anomaly_fit"):
            rows.append(
                {
                    "metric": f"{where}: what tunnelpi anomaly fit enrols (share of round normals)",
                    "value": f"{fit['picks']} ({fit['round_share']:.0%})",
                    "target": "",
                }
            )
        for name in CONVEYOR_VARIANTS:
            v = belt[name]
            rows.append(
                {
                    "metric": f"{where}, {name}: AUROC / recall / good flagged",
                    "value": f"{v['image_auroc']:.4f} / {v['recall_at_threshold']:.2f} / {v['good_flagged']:.2f}",
                    "target": ">= 0.995 AUROC",
                }
            )
    for rt, lat in result.get("latency_per_view", {}).items():
        target = "<= 50 ms" if rt == "onnx" else ""
        rows += [
            {"metric": f"{rt} p50 ms/view", "value": lat["p50_ms"], "target": target},
            {"metric": f"{rt} p99 ms/view", "value": lat["p99_ms"], "target": ""},
        ]
    rows += [
        {"metric": "bank MB per SKU (disk)", "value": result.get("bank_mb_on_disk"), "target": "<= 20"},
        {"metric": "enrol 30 images (s)", "value": result.get("enrol_30_images_s"), "target": "<= 30"},
        {
            "metric": "ONNX vs torch max rel. score diff",
            "value": result.get("onnx_max_relative_score_difference"),
            "target": "<= 1e-4",
        },
    ]
    sim = result.get("simulator")
    if sim:
        rows.append(
            {"metric": "sim false-divert rate (normals)", "value": sim["false_divert_rate_normals"], "target": "~0.005"}
        )
        rows.append({"metric": "sim benign flagged", "value": sim["benign_flagged_rate"], "target": "~0"})
        rows.append(
            {
                "metric": f"sim enrol all {sim['skus']} SKUs (s)",
                "value": sim["enrol_seconds_all_skus"],
                "target": "demo < 600 in total",
            }
        )
        rows.append({"metric": "sim enrol s per SKU", "value": sim["enrol_seconds_per_sku"], "target": ""})
        rows.append({"metric": "sim bank MB per SKU (memory)", "value": sim["bank_mb_per_sku"], "target": "<= 20"})
        for t, d in sim["per_defect"].items():
            tgt = ">= 0.98 / >= 0.95" if d["visible_damage"] else ""
            rows.append(
                {
                    "metric": f"sim {t} AUROC / recall (n={d['n']})",
                    "value": f"{d['auroc']:.3f} / {d['recall']:.2f}",
                    "target": tgt,
                }
            )
        for size, d in sim.get("visible_damage_by_size", {}).items():
            rows.append(
                {
                    "metric": f"sim visible damage {size} of a 640x480 frame, AUROC / recall (n={d['n']})",
                    "value": f"{d['auroc']:.3f} / {d['recall']:.2f}",
                    "target": "",
                }
            )
        belt = sim.get("belt_calibrated")
        if belt:
            label = f"belt-calibrated on {belt['normal_items']} good items of an earlier shift"
            visible = belt["per_defect"].get("visible damage, all types")
            rows.append(
                {
                    "metric": f"sim false-divert rate (normals), {label}",
                    "value": belt["false_divert_rate_normals"],
                    "target": "~0.005",
                }
            )
            rows.append(
                {"metric": f"sim benign flagged, {label}", "value": belt["benign_flagged_rate"], "target": "~0"}
            )
            if visible:
                rows.append(
                    {
                        "metric": f"sim visible damage AUROC / recall (n={visible['n']}), {label}",
                        "value": f"{visible['auroc']:.3f} / {visible['recall']:.2f}",
                        "target": ">= 0.98 / >= 0.95",
                    }
                )
    return rows


def main(simulator: bool = True, mvtec: bool = True) -> dict[str, Any]:
    # every core only when the load leaves them free: oversubscribed OpenMP threads spin
    torch.set_num_threads(compute_threads())
    result: dict[str, Any] = {"load_average_at_start": os.getloadavg()[0], "torch_threads": torch.get_num_threads()}
    if not mvtec:
        result["mvtec_skipped"] = "not requested"
    elif DATA.is_dir():
        _mvtec(result)
        _mvtec_on_conveyor(result)
    else:
        result["mvtec_skipped"] = f"{DATA} not found"
    if simulator:
        try:
            _simulator(result)
        except ImportError as exc:
            result["simulator_skipped"] = f"tunnel_sim unavailable: {exc}"
    result["load_average_at_end"] = os.getloadavg()[0]
    result["rows"] = _rows(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "anomaly.json").write_text(json.dumps(result, indent=1, default=str))
    print("| metric | value | target |\n|---|---|---|")
    for row in result["rows"]:
        value = row["value"]
        print(
            f"| {row['metric']} | {value:.4g} |" if isinstance(value, float) else f"| {row['metric']} | {value} |",
            row["target"],
            "|",
        )
    return result


if __name__ == "__main__":
    import sys

    main(simulator="--no-sim" not in sys.argv, mvtec="--no-mvtec" not in sys.argv)
