"""A trained classifier as shipped: tokenizer, weights, per-class thresholds and calibration.

`MODEL_DIR/model.pt` holds everything needed to score (so the card is documentation, not
configuration: an investigation cites what it records, scoring never reads it); features are
computed the same way for training and scoring by `tokens_of`.
The classifier is an ensemble of the networks trained in cross-fitting (one per fold); an
item's logits are their mean.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from detectors.anomaly.bank import Bank
from detectors.anomaly.model import AnomalyModel, Features
from pipeline.views import LocalizedView

from .model import IMAGE_SIZE, PatchTokenizer, TokenClassifier, pool_tokens
from .residual import anomaly_tokens, residual_tokens

MODEL_FILE = "model.pt"
CARD_FILE = "model_card.json"
MAX_VIEWS = 3


PATCH_INPUTS = "patch"
"""Tokens: pooled patch features of the views."""
RESIDUAL_INPUTS = "patch+residual"
"""Tokens: pooled patch features and their residuals to the SKU's normal bank (see `residual`).
Read for classifiers trained before `ANOMALY_INPUTS`."""
ANOMALY_INPUTS = "residual+anomaly"
"""Tokens: residuals to the SKU's normal bank and the anomaly members' maps in calibrated units
(see `residual`); no raw patch features, which describe the SKU more than its defect."""
REFERENCE_INPUTS = frozenset({RESIDUAL_INPUTS, ANOMALY_INPUTS})
"""Inputs read against the anomaly model the classifier was trained with."""


@dataclass(frozen=True)
class SignRecall:
    """What a classifier's model card says of how often it shows at least a sign of each type."""

    version: str
    heldout: str
    """Which items the recall was measured on ("out-of-fold (3 folds)")."""
    recall: dict[str, float]
    """Per type: the held-out share of items carrying it whose logit clears the described
    operating point (`ClassCalibration.described_level`)."""


def read_sign_recall(folder: Path) -> SignRecall | None:
    """The sign recall recorded in `folder`'s model card (`train.evaluate`); None when the card
    is missing, unreadable, or written before the card recorded it."""
    try:
        card = json.loads((Path(folder) / CARD_FILE).read_text())
        per_class = card["metrics_heldout"]["per_class"]
        recall = {k: float(v["recall_at_described"]) for k, v in per_class.items() if "recall_at_described" in v}
        version = str(card["version"])
        heldout = str((card.get("data") or {}).get("heldout", "held-out items"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return SignRecall(version, heldout, recall) if recall else None


def tokens_of(
    tokenizer: PatchTokenizer,
    views: list[LocalizedView],
    inputs: str = PATCH_INPUTS,
    reference: AnomalyModel | None = None,
    bank: Bank | None = None,
    feats: np.ndarray | None = None,
    nearest: np.ndarray | None = None,
    standard: np.ndarray | None = None,
) -> np.ndarray:
    """(V, T, C) float16 tokens of one item's views, prepared as the anomaly ensemble prepares
    them, as `inputs` names. `reference`, `bank`: the anomaly model and the item's normal bank
    in it, which the reference inputs are read against (the views are prepared at the model's
    input size, the scale its banks hold). `feats`, `nearest`, `standard`: the views' (V, C, H, W)
    patch features, (V, H, W) nearest bank rows and (V, 2, H, W) calibrated member maps when
    the anomaly stage already computed them."""
    from detectors.anomaly.prepare import prepare

    if inputs not in REFERENCE_INPUTS | {PATCH_INPUTS}:
        raise ValueError(f"unknown classifier inputs {inputs!r}")
    if inputs in REFERENCE_INPUTS and (reference is None or bank is None):
        raise ValueError(f"{inputs!r} tokens are read against an anomaly model and a normal bank; none was given")
    size = reference.config.image_size if reference is not None else IMAGE_SIZE
    prepared = [prepare(v, size) for v in views[:MAX_VIEWS]]
    if feats is None:
        feats = tokenizer.maps(np.stack([p.pixels for p in prepared]))
    feats = np.asarray(feats[: len(prepared)], np.float32)
    if inputs == PATCH_INPUTS:
        return pool_tokens(feats).astype(np.float16)
    assert reference is not None and bank is not None
    masks = np.stack([p.grid_mask for p in prepared])
    scored = Features(
        feats,
        np.zeros((len(prepared), 1), np.float32),
        masks,
        np.zeros(len(prepared), np.int64),
        np.asarray([p.view.camera for p in prepared]),
    )
    rows = nearest[: len(prepared)] if nearest is not None else reference.patch_distances(bank, scored)[1]
    residual = residual_tokens(feats, masks, bank, rows)
    if inputs == RESIDUAL_INPUTS:
        return np.concatenate([pool_tokens(feats), residual], axis=-1).astype(np.float16)
    if standard is None:
        standard = reference.standard_maps(bank, scored, rows)
    return np.concatenate([residual, anomaly_tokens(standard[: len(prepared)])], axis=-1).astype(np.float16)


def stack_items(items: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad per-item (V, T, C) tokens to (B, MAX_VIEWS, T, C) with a view mask."""
    t, c = items[0].shape[1:]
    out = np.zeros((len(items), MAX_VIEWS, t, c), np.float32)
    mask = np.zeros((len(items), MAX_VIEWS), bool)
    for i, tok in enumerate(items):
        n = min(len(tok), MAX_VIEWS)
        out[i, :n], mask[i, :n] = tok[:n], True
    return torch.from_numpy(out), torch.from_numpy(mask)


class ClassScore(NamedTuple):
    """One type's classifier output for an item and the operating points it clears."""

    logit: float
    probability: float
    above: bool
    """At or above the line's threshold."""
    complaint: bool
    """At or above the complaint operating point."""
    described: bool
    """At or above the point for a complaint that names the type."""


@dataclass
class ClassCalibration:
    """Operating threshold (at the target false-positive rate on held-out normals) and Platt scaling."""

    threshold: float
    slope: float = 1.0
    intercept: float = 0.0
    complaint_threshold: float | None = None
    """Where a complaint investigation counts the type as seen: at a higher false-positive rate
    on held-out normals than the line's, since the complaint is itself evidence (None: classifiers
    trained before it, read at `threshold`)."""
    described_threshold: float | None = None
    """Where a complaint that names this type counts the classifier's sign of it: lower again,
    since the customer's words are evidence of that very type (None: classifiers trained before
    it, read at the complaint operating point)."""

    @property
    def complaint_level(self) -> float:
        return self.threshold if self.complaint_threshold is None else min(self.complaint_threshold, self.threshold)

    @property
    def described_level(self) -> float:
        complaint = self.complaint_level
        return complaint if self.described_threshold is None else min(self.described_threshold, complaint)

    def probability(self, logit: float) -> float:
        z = self.slope * logit + self.intercept
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@dataclass
class SupervisedBundle:
    classes: list[str]
    nets: list[TokenClassifier]
    """The ensemble (one network per cross-fitting fold); logits are averaged over it."""
    calibration: dict[str, ClassCalibration]
    version: str
    meta: dict[str, Any] = field(default_factory=dict)
    tokenizer: PatchTokenizer | None = None

    def tok(self) -> PatchTokenizer:
        if self.tokenizer is None:
            self.tokenizer = PatchTokenizer()
        return self.tokenizer

    def logits(self, items: list[np.ndarray]) -> np.ndarray:
        """(B, K) logits of items given as (V, T, C) tokens: the mean over the ensemble."""
        tokens, mask = stack_items(items)
        out = []
        with torch.inference_mode():
            for net in self.nets:
                net.eval()
                out.append(net(tokens, mask).numpy())
        return np.mean(out, axis=0)

    @property
    def inputs(self) -> str:
        return str(self.meta.get("inputs", PATCH_INPUTS))

    @property
    def needs_reference(self) -> bool:
        """True when the tokens are read against the anomaly model the classifier was trained with."""
        return self.inputs in REFERENCE_INPUTS

    @property
    def image_size(self) -> int:
        """Network input side the tokens are computed at (classifiers saved before it was
        recorded were trained at the fixed 224 px)."""
        return int(self.meta.get("image_size", IMAGE_SIZE))

    @property
    def reference_version(self) -> str | None:
        """Version of that anomaly model (its banks define what the residuals mean)."""
        return self.meta.get("anomaly_version")

    def predict(
        self,
        views: list[LocalizedView],
        reference: AnomalyModel | None = None,
        bank: Bank | None = None,
        feats: np.ndarray | None = None,
        nearest: np.ndarray | None = None,
        standard: np.ndarray | None = None,
    ) -> dict[str, ClassScore]:
        """type -> its logit, calibrated probability and the operating points it clears.
        `reference`, `bank`: the anomaly model the classifier was
        trained with and the item's normal bank in it, required when the classifier reads them;
        `feats`, `nearest`, `standard`: the views' patch features, nearest bank rows and
        calibrated member maps when already computed."""
        if self.needs_reference and (reference is None or bank is None):
            raise ValueError(f"{self.version} reads residuals to a normal bank; none was given")
        if not self.needs_reference:
            reference = bank = None
        tokens = tokens_of(self.tok(), views, self.inputs, reference, bank, feats, nearest, standard)
        logits = self.logits([tokens])[0]
        out = {}
        for k, name in enumerate(self.classes):
            cal = self.calibration[name]
            logit = float(logits[k])
            out[name] = ClassScore(
                logit,
                cal.probability(logit),
                logit >= cal.threshold,
                logit >= cal.complaint_level,
                logit >= cal.described_level,
            )
        return out

    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "classes": self.classes,
                "config": self.nets[0].config,
                "states": [net.state_dict() for net in self.nets],
                "calibration": {k: vars(v) for k, v in self.calibration.items()},
                "version": self.version,
                "meta": self.meta,
            },
            folder / MODEL_FILE,
        )
        return folder / MODEL_FILE

    @classmethod
    def load(cls, folder: Path | str) -> SupervisedBundle:
        path = Path(folder) / MODEL_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{folder}: no {MODEL_FILE} (not a supervised model folder)")
        data = torch.load(path, map_location="cpu", weights_only=True)
        nets = []
        for state in data.get("states") or [data["state"]]:  # "state": a single network (format 1)
            net = TokenClassifier(**data["config"])
            net.load_state_dict(state)
            nets.append(net.eval())
        cal = {k: ClassCalibration(**v) for k, v in data["calibration"].items()}
        return cls(data["classes"], nets, cal, data["version"], data.get("meta", {}))
