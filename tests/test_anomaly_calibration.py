"""Calibration from normal scores only: threshold at the target rate, monotone probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.anomaly.calibration import CalibrationError, EnsembleCalibration, RobustScaler, TailCalibrator
from detectors.anomaly.fusion import fuse_maps, fuse_members, fuse_views

DISTRIBUTIONS = {
    "normal": lambda rng, n: rng.normal(10.0, 2.0, n),
    "lognormal": lambda rng, n: rng.lognormal(1.0, 0.4, n),
    "gumbel": lambda rng, n: rng.gumbel(5.0, 1.0, n),
    "gamma": lambda rng, n: rng.gamma(2.0, 1.5, n),
}


@pytest.mark.parametrize("dist", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize(("n", "target", "max_factor"), [(2000, 0.005, 2.5), (400, 0.01, 2.5), (60, 0.05, 2.5)])
def test_threshold_hits_target_rate(dist: str, n: int, target: float, max_factor: float) -> None:
    """Fresh normal scores exceed the threshold at about the target rate (never far above it)."""
    rates = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        cal = TailCalibrator.fit(DISTRIBUTIONS[dist](rng, n), target)
        fresh = DISTRIBUTIONS[dist](rng, 200_000)
        rates.append(float(cal.is_anomalous(fresh).mean()))
    assert np.mean(rates) <= max_factor * target
    assert np.mean(rates) >= target / 20  # not absurdly conservative either


@pytest.mark.parametrize("n", [3, 5, 10, 30])
def test_zero_defect_calibration_does_not_flag_everything(n: int) -> None:
    """With only a handful of normals (no defects at all) most fresh normals still pass."""
    rng = np.random.default_rng(1)
    cal = TailCalibrator.fit(rng.normal(0, 1, n), 0.005)
    fresh = rng.normal(0, 1, 100_000)
    assert cal.is_anomalous(fresh).mean() < 0.02
    assert cal.threshold > max(cal.sorted_scores)
    assert cal.method == "exponential-ucb"


def test_probability_is_monotone_and_half_at_threshold() -> None:
    rng = np.random.default_rng(2)
    cal = TailCalibrator.fit(rng.gamma(2.0, 1.0, 500), 0.005)
    grid = np.linspace(-5, 40, 2000)
    p = cal.probability(grid)
    assert np.all(np.diff(p) >= -1e-12)
    assert np.all((p >= 0) & (p <= 1))
    assert cal.probability(cal.threshold)[0] == pytest.approx(0.5)
    assert p[0] < 0.05 and p[-1] > 0.99
    assert cal.method == "gpd"


def test_round_trip_and_bad_input() -> None:
    cal = TailCalibrator.fit(np.arange(50.0), 0.01)
    again = TailCalibrator.from_dict(cal.to_dict())
    assert again.threshold == cal.threshold
    assert np.allclose(again.probability([1.0, 60.0]), cal.probability([1.0, 60.0]))
    with pytest.raises(CalibrationError, match="at least 3"):
        TailCalibrator.fit([1.0, 2.0])
    with pytest.raises(CalibrationError, match="NaN"):
        TailCalibrator.fit([1.0, 2.0, np.nan])
    with pytest.raises(CalibrationError, match="target rate"):
        TailCalibrator.fit(np.arange(10.0), 0.7)


def test_constant_scores_do_not_break() -> None:
    cal = TailCalibrator.fit([3.0] * 10, 0.005)
    assert not cal.is_anomalous([3.0])[0]
    assert cal.is_anomalous([100.0])[0]


def test_robust_scaler_ignores_outliers() -> None:
    values = np.r_[np.random.default_rng(3).normal(5, 1, 200), [1e6]]
    s = RobustScaler.fit(values)
    assert s.median == pytest.approx(5, abs=0.3)
    assert s.scale == pytest.approx(1, abs=0.3)
    assert RobustScaler.from_dict(s.to_dict()) == s


def test_fusion() -> None:
    assert fuse_members({"patch": 1.0, "global": 5.0, "student": 2.0}) == (5.0, "global")
    assert fuse_members({"patch": 1.0, "global": 5.0}, {"global": 0.1}) == (1.0, "patch")
    assert fuse_views([0.5, 3.0, 1.0]) == (3.0, 1)
    assert np.array_equal(fuse_maps([np.zeros((2, 2)), np.eye(2)]), np.eye(2))
    with pytest.raises(ValueError):
        fuse_members({})


def _bank_scores(rng: np.random.Generator, items: int, offset: float, spread: float) -> tuple[dict, list[int]]:
    """Raw member scores of `items` normal items with three views each, on one bank's own scale."""
    n = 3 * items
    raw = {m: list(offset + spread * rng.gumbel(0, 1, n)) for m in ("patch", "student")}
    return raw, [i // 3 for i in range(n)]


def test_pooled_ensemble_calibration_hits_the_target_where_each_small_bank_cannot() -> None:
    """Eighty banks of four normal items on one scale: pooled scalers and item threshold reach
    the target rate on fresh normals; one bank's own calibration cannot place a 0.5 % threshold."""
    rng = np.random.default_rng(2)
    parts = [_bank_scores(rng, 4, 3.0, 0.5) for _ in range(80)]
    pooled = EnsembleCalibration.pooled(parts, target_rate=0.005)
    assert pooled.n_items == 320 and pooled.n_views == 960  # item keys stay apart per bank
    fresh = np.array(
        [
            max(sum(pooled.standardise({m: v}).values()) for m, v in (("patch", p), ("student", s)))
            for p, s in zip(3.0 + 0.5 * rng.gumbel(0, 1, 30_000), 3.0 + 0.5 * rng.gumbel(0, 1, 30_000), strict=True)
        ]
    )
    per_item = fresh.reshape(-1, 3).max(axis=1)
    assert 0.005 / 20 <= pooled.item.is_anomalous(per_item).mean() <= 0.005 * 2.5
    singles = [EnsembleCalibration.fit(*part, target_rate=0.005) for part in parts[:20]]
    assert all(s.n_items == 4 for s in singles)
    assert np.std([s.scalers["patch"].median for s in singles]) > 3 * abs(
        pooled.scalers["patch"].median - np.median([s.scalers["patch"].median for s in singles])
    )


@pytest.mark.parametrize(
    ("raw", "items", "error"),
    [
        ({"patch": [1.0, 2.0, 3.0], "student": [1.0, 2.0]}, [0, 1, 2], "one calibration score per view"),
        ({"patch": [1.0, 2.0]}, [0, 1], "at least 3"),
    ],
)
def test_ensemble_calibration_rejects_unusable_scores(raw, items, error) -> None:
    with pytest.raises(CalibrationError, match=error):
        EnsembleCalibration.fit(raw, items)


def test_ensemble_calibration_round_trips_and_weights_members() -> None:
    rng = np.random.default_rng(4)
    raw, items = _bank_scores(rng, 12, 1.0, 1.0)
    cal = EnsembleCalibration.fit(raw, items, {"student": 0.5})
    again = EnsembleCalibration.from_dict(cal.to_dict())
    assert again == cal
    assert cal.n_items == 12 and cal.n_views == 36
    equal = EnsembleCalibration.fit(raw, items)
    assert cal.view.threshold != equal.view.threshold  # the weight enters the fused scores


def test_fixed_threads_overrides_the_load_reading_inside_the_block(monkeypatch) -> None:
    from detectors.anomaly.threads import THREADS_ENV, compute_threads, fixed_threads

    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setattr("detectors.anomaly.threads.other_busy_cores", lambda: 50.0)
    assert compute_threads() == 1  # a busy machine
    with fixed_threads(2):
        assert compute_threads() == 2
    assert compute_threads() == 1 and THREADS_ENV not in __import__("os").environ


def test_threshold_only_views_move_the_threshold_not_the_scalers() -> None:
    rng = np.random.default_rng(3)
    ref = {m: list(rng.normal(1.0, 0.2, 30)) for m in ("patch", "student")}
    belt = {m: list(rng.normal(1.6, 0.2, 60)) for m in ("patch", "student")}
    both = {m: ref[m] + belt[m] for m in ref}
    items = list(range(90))
    refs_only = EnsembleCalibration.fit(ref, items[:30])
    joined = EnsembleCalibration.fit(both, items, scale_on=[i < 30 for i in items])
    everything = EnsembleCalibration.fit(both, items)
    assert joined.scalers == refs_only.scalers
    assert everything.scalers != refs_only.scalers
    assert joined.item.threshold > refs_only.item.threshold
    pooled = EnsembleCalibration.pooled([(ref, items[:30], [True] * 30), (belt, items[:60], [False] * 60)])
    assert pooled.scalers == refs_only.scalers
    with pytest.raises(CalibrationError, match="one flag per calibration view"):
        EnsembleCalibration.fit(ref, items[:30], scale_on=[True])
