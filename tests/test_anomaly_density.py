"""Bank rows' spread: the same distance to a normal patch counts more in a crowd of plain patches
than among sparse print."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from detectors.anomaly import density
from detectors.anomaly.bank import Bank, nearest_rows
from detectors.anomaly.model import AnomalyModel, ModelConfig

C = 16


def _crowd_and_print(seed: int = 0) -> tuple[np.ndarray, slice, slice]:
    """Bank rows: 300 plain-panel patches packed close together, 60 print patches far apart."""
    rng = np.random.default_rng(seed)
    plain = rng.normal(scale=0.05, size=(300, C)).astype(np.float32)
    printed = (rng.normal(scale=3.0, size=(60, C)) + 6.0).astype(np.float32)
    return np.concatenate([plain, printed]), slice(0, 300), slice(300, 360)


def test_sparse_rows_spread_wider_than_crowded_ones() -> None:
    rows, plain, printed = _crowd_and_print()
    spreads = density.row_spreads(rows)
    assert spreads is not None and spreads.shape == (len(rows),)
    assert np.median(spreads) == pytest.approx(1.0, rel=0.05)
    assert spreads[printed].min() > 10 * spreads[plain].max()
    assert (spreads == spreads.min()).mean() >= density.FLOOR_QUANTILE - 0.01  # the densest tenth floored


@pytest.mark.parametrize(
    ("n_rows", "fitted"),
    [(density.NEIGHBOURS, False), (density.NEIGHBOURS + 1, True), (500, True)],
)
def test_a_bank_needs_more_rows_than_neighbours(n_rows: int, fitted: bool) -> None:
    rows = np.random.default_rng(1).normal(size=(n_rows, C)).astype(np.float32)
    assert (density.row_spreads(rows) is not None) is fitted


def test_identical_rows_have_no_spread_to_divide_by() -> None:
    assert density.row_spreads(np.ones((40, C), np.float32)) is None


def test_the_same_step_counts_more_off_a_plain_panel_than_off_print() -> None:
    rows, plain, printed = _crowd_and_print()
    spreads = density.row_spreads(rows)
    assert spreads is not None
    step = np.full(C, 0.5 / np.sqrt(C), np.float32)  # 0.5 away, in both places
    queries = np.stack([rows[plain][0] + 4 * step, rows[printed][0] + step])
    distance, nearest = nearest_rows(queries, rows)
    read = distance / density.divisors(spreads, nearest)
    assert distance[0] > distance[1]
    assert read[0] > 5 * read[1]


def test_a_bank_refreshes_its_spreads_when_enrolment_changes_its_rows() -> None:
    rows, _, _ = _crowd_and_print()
    bank = Bank(name="box", max_patches=200)
    bank.add(rows[:5], np.zeros((1, 4), np.float32), 1)
    assert density.KEY not in bank.extra  # too few rows
    bank.add(rows, np.zeros((1, 4), np.float32), 1)
    spreads = density.from_extra(bank.extra)
    assert spreads is not None and len(spreads) == len(bank.patches) == 200
    np.testing.assert_allclose(spreads, density.row_spreads(bank.patches))
    assert density.from_extra({}) is None


def test_a_bank_saved_without_spreads_scores_as_before(tmp_path) -> None:
    """A bank enrolled before the spreads existed reads its distances as they are, exactly as a
    model told not to use them does; with them the patch member reads differently."""
    rng = np.random.default_rng(3)
    base = rng.integers(60, 200, (96, 96, 3), dtype=np.uint8)
    images = [np.clip(base + rng.normal(scale=6, size=base.shape), 0, 255).astype(np.uint8) for _ in range(8)]
    config = ModelConfig(localize=False, student_steps=5, image_size=64, global_size=64)
    model = AnomalyModel(config)
    bank = model.fit(images, name="box")
    assert density.from_extra(bank.extra) is not None
    model.save(tmp_path / "model")
    loaded = AnomalyModel.load(tmp_path / "model")
    probe = np.clip(base.astype(np.int16) + 40, 0, 255).astype(np.uint8)
    with_spreads = loaded.score([probe], "box").views[0].raw["patch"]

    old = loaded.banks["box"]
    old.extra = {k: v for k, v in old.extra.items() if k != density.KEY}
    loaded.calibrate(old)
    without = loaded.score([probe], "box").views[0].raw["patch"]
    assert without != pytest.approx(with_spreads)

    told = AnomalyModel.load(tmp_path / "model")
    told.config = dataclasses.replace(told.config, patch_density=False)
    assert told.score([probe], "box").views[0].raw["patch"] == pytest.approx(without, rel=1e-6)
