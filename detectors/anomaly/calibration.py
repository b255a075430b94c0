"""Calibration from normal images only: comparable member scales, a threshold, probabilities.

Defect examples are rare and every SKU has a different score range, so nothing here needs
one. `RobustScaler` puts each member's raw score on a common scale (median 0, robust unit
spread). `TailCalibrator` models the upper tail of normal scores (a generalised Pareto fit
over a high quantile when there are enough exceedances, else an exponential tail with an
upper-confidence scale, which errs towards fewer false diverts) and sets the threshold where
the modelled false-divert rate equals the target. Scores map to probabilities through the
tail: p = r / (r + P_normal(score or higher)), r being the modelled rate at the threshold,
so p is 0.5 exactly at the threshold, tends to 1 far out in the tail, and is small for
typical normal scores. With zero defects the
threshold still lands at the target rate instead of flagging everything.
`EnsembleCalibration` fits the member scalers and the view and item thresholds together from
raw member scores, for one bank or for the pool of many.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from .fusion import fuse_members, fuse_views

DEFAULT_TARGET_RATE = 0.005
MIN_CALIBRATION = 3


class CalibrationError(ValueError):
    """Not enough (or unusable) calibration scores."""


def _scores(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(arr)):
        raise CalibrationError("calibration scores contain NaN or infinity")
    if len(arr) < MIN_CALIBRATION:
        raise CalibrationError(f"need at least {MIN_CALIBRATION} normal calibration scores, got {len(arr)}")
    return arr


@dataclass
class RobustScaler:
    """(score - median) / robust spread: makes members with different units comparable."""

    median: float = 0.0
    scale: float = 1.0

    @classmethod
    def fit(cls, values: Any) -> RobustScaler:
        arr = _scores(values)
        med = float(np.median(arr))
        mad = 1.4826 * float(np.median(np.abs(arr - med)))
        iqr = float(np.subtract(*np.percentile(arr, [75, 25]))) / 1.349
        spread = float(np.subtract(*np.percentile(arr, [95, 5]))) / 3.29
        scale = max(mad, iqr, 0.5 * spread, 1e-6 * (1.0 + abs(med)))
        return cls(median=med, scale=scale)

    def __call__(self, values: Any) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) - self.median) / self.scale

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> RobustScaler:
        return cls(**data)


@dataclass
class TailCalibrator:
    """Threshold at a target false-positive rate and tail-based probabilities, from normals only."""

    target_rate: float
    threshold: float
    u: float
    """Tail starts here; below it the empirical distribution is used."""
    p_u: float
    """Fraction of calibration scores above `u`."""
    tail_scale: float
    tail_shape: float
    """Generalised Pareto shape (0 = exponential)."""
    sorted_scores: list[float]
    method: str

    @classmethod
    def fit(cls, values: Any, target_rate: float = DEFAULT_TARGET_RATE, confidence: float = 0.9) -> TailCalibrator:
        if not 0.0 < target_rate < 0.5:
            raise CalibrationError(f"target rate must be in (0, 0.5), got {target_rate}")
        arr = np.sort(_scores(values))
        n = len(arr)
        q0 = 0.8 if n >= 50 else 0.5
        u = float(np.quantile(arr, q0))
        exceed = arr[arr > u] - u
        spread = max(float(np.std(arr)), 1e-6 * (1.0 + abs(u)))
        if len(exceed) == 0:
            exceed = np.array([spread])
        p_u = max(len(exceed), 1) / n
        if len(exceed) >= 30:
            shape, _, scale = stats.genpareto.fit(exceed, floc=0.0)
            shape = float(np.clip(shape, -0.5, 0.5))
            method = "gpd"
        else:
            # Exponential tail; the scale's one-sided upper confidence bound (chi-square on 2k dof).
            k = len(exceed)
            scale = 2.0 * float(exceed.sum()) / float(stats.chi2.ppf(1.0 - confidence, 2 * k))
            shape = 0.0
            method = "exponential-ucb"
        scale = max(float(scale), 1e-3 * spread)
        cal = cls(target_rate, 0.0, u, p_u, scale, shape, [float(v) for v in arr], method)
        tail_t = cal._isf(target_rate)
        empirical = float(np.quantile(arr, 1.0 - target_rate, method="higher"))
        cal.threshold = max(tail_t, empirical) if n * target_rate >= 1.0 else tail_t
        return cal

    def _tail_sf(self, excess: np.ndarray) -> np.ndarray:
        return stats.genpareto.sf(excess, self.tail_shape, loc=0.0, scale=self.tail_scale)

    def _isf(self, rate: float) -> float:
        if rate >= self.p_u:
            return float(np.quantile(self.sorted_scores, 1.0 - rate))
        return self.u + float(stats.genpareto.isf(rate / self.p_u, self.tail_shape, loc=0.0, scale=self.tail_scale))

    def sf(self, values: Any) -> np.ndarray:
        """Modelled probability that a normal item scores at least this high."""
        s = np.atleast_1d(np.asarray(values, dtype=np.float64))
        arr = np.asarray(self.sorted_scores)
        n = len(arr)
        empirical = (n - np.searchsorted(arr, s, side="left") + 1.0) / (n + 1.0)
        tail = self.p_u * self._tail_sf(np.maximum(s - self.u, 0.0))
        return np.where(s > self.u, np.minimum(tail, empirical), empirical)

    def probability(self, values: Any) -> np.ndarray:
        """Calibrated defect probability: monotone in the score, exactly 0.5 at the threshold."""
        at = float(self.sf(self.threshold)[0])
        return at / (at + self.sf(values))

    def is_anomalous(self, values: Any) -> np.ndarray:
        return np.atleast_1d(np.asarray(values, dtype=np.float64)) > self.threshold

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TailCalibrator:
        return cls(**data)


@dataclass
class EnsembleCalibration:
    """Member scalers and the view and item thresholds, fitted together on the raw member scores
    of normal calibration views.

    Fitted on one bank's views, or on several banks' views pooled (`pooled`): a SKU with four
    calibration items cannot place its scalers any better than its threshold, and the
    standardised pool of every SKU's normals estimates both far more steadily (simulated shift,
    patch member alone: visible-damage AUROC 0.85 with per-SKU scalers, 0.88 pooled).
    """

    scalers: dict[str, RobustScaler]
    view: TailCalibrator
    item: TailCalibrator
    n_views: int
    n_items: int

    @classmethod
    def fit(
        cls,
        raw: Mapping[str, Sequence[float]],
        items: Sequence[Any],
        weights: Mapping[str, float] | None = None,
        target_rate: float = DEFAULT_TARGET_RATE,
        scale_on: Sequence[bool] | None = None,
    ) -> EnsembleCalibration:
        """`raw`: member -> one raw score per calibration view; `items`: each view's item key;
        `scale_on`: the views the member scalers are fitted on (default all; every view sets the
        thresholds). Belt normals set the operating point but not the members' relative scale,
        which the references place for ranking (simulated development shift: visible-damage AUROC
        0.876 with reference scalers, 0.857 with belt views in them)."""
        members = sorted(raw)
        keys = list(items)
        if any(len(raw[m]) != len(keys) for m in members):
            raise CalibrationError("every member needs one calibration score per view")
        chosen = np.ones(len(keys), bool) if scale_on is None else np.asarray(scale_on, bool)
        if len(chosen) != len(keys):
            raise CalibrationError("scale_on needs one flag per calibration view")
        if chosen.sum() < MIN_CALIBRATION:
            chosen[:] = True
        scalers = {m: RobustScaler.fit(np.asarray(raw[m], dtype=np.float64)[chosen]) for m in members}
        z = {m: scalers[m](raw[m]) for m in members}
        fused = np.array([fuse_members({m: float(z[m][i]) for m in members}, weights)[0] for i in range(len(keys))])
        by_item: dict[Any, list[float]] = {}
        for key, score in zip(keys, fused, strict=True):
            by_item.setdefault(key, []).append(float(score))
        per_item = [fuse_views(s)[0] for s in by_item.values()]
        if len(per_item) < MIN_CALIBRATION:
            per_item = list(fused)
        return cls(
            scalers=scalers,
            view=TailCalibrator.fit(fused, target_rate),
            item=TailCalibrator.fit(per_item, target_rate),
            n_views=len(keys),
            n_items=len(by_item),
        )

    @classmethod
    def pooled(
        cls,
        parts: Sequence[tuple[Any, ...]],
        weights: Mapping[str, float] | None = None,
        target_rate: float = DEFAULT_TARGET_RATE,
    ) -> EnsembleCalibration:
        """One calibration over several banks' (raw scores, item keys[, scale_on flags]); items
        stay apart per bank."""
        if not parts:
            raise CalibrationError("no calibration scores to pool")
        members = sorted(parts[0][0])
        raw = {m: [float(v) for part in parts for v in part[0][m]] for m in members}
        items = [(i, key) for i, part in enumerate(parts) for key in part[1]]
        scale_on = [bool(f) for part in parts for f in (part[2] if len(part) > 2 else [True] * len(part[1]))]
        return cls.fit(raw, items, weights, target_rate, scale_on)

    def standardise(self, raw: Mapping[str, float]) -> dict[str, float]:
        return {m: float(self.scalers[m](v)) for m, v in raw.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "scalers": {m: s.to_dict() for m, s in self.scalers.items()},
            "view": self.view.to_dict(),
            "item": self.item.to_dict(),
            "n_views": self.n_views,
            "n_items": self.n_items,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnsembleCalibration:
        return cls(
            scalers={m: RobustScaler.from_dict(d) for m, d in data["scalers"].items()},
            view=TailCalibrator.from_dict(data["view"]),
            item=TailCalibrator.from_dict(data["item"]),
            n_views=int(data["n_views"]),
            n_items=int(data["n_items"]),
        )
