"""Cross-fitted calibration: with few normals `fit` enrols them all and calibrates on every one,
each scored against a bank built without it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from detectors.anomaly import AnomalyModel, ModelConfig
from detectors.anomaly.model import CAL_PREFIX, CROSS_FIT_KEY, MEMBERS
from pipeline.imageio import read_image

CONFIG = ModelConfig(image_size=128, localize=False, student_steps=20, max_patches=512)


@pytest.fixture(scope="module")
def normals(shared_data: Path) -> list[np.ndarray]:
    root = shared_data / "mvtec_bottle" / "train" / "good"
    if not root.is_dir():
        pytest.skip(f"MVTec bottle not found at {root}")
    return [read_image(p) for p in sorted(root.glob("*.jpg"))[:12]]


@pytest.fixture(scope="module")
def cross_fitted(normals: list[np.ndarray]) -> AnomalyModel:
    model = AnomalyModel(CONFIG)
    model.fit(normals[:8])
    return model


def test_few_normals_all_enrol_and_all_calibrate(cross_fitted: AnomalyModel) -> None:
    bank = cross_fitted.banks["default"]
    assert bank.n_images == 8
    scored = bank.meta[CROSS_FIT_KEY]
    assert scored["folds"] == CONFIG.cross_fit_folds
    assert sorted(scored["items"]) == sorted(f"cross+{i}" for i in range(8))
    assert all(len(scored["raw"][m]) == 8 for m in MEMBERS)
    # nothing held back: no separate calibration views are kept
    assert not any(key.startswith(CAL_PREFIX) for key in bank.extra)
    calibration = bank.meta["calibration"]
    assert (calibration["n_items"], calibration["reference_views"]) == (8, 8)


def test_cross_fitted_scores_are_read_without_the_item(cross_fitted: AnomalyModel, normals: list[np.ndarray]) -> None:
    """Each normal's patch in the final bank is its own nearest neighbour (distance about zero);
    its cross-fitted score came from a bank without it, as a new normal's would."""
    bank = cross_fitted.banks["default"]
    scored = bank.meta[CROSS_FIT_KEY]
    order = np.argsort([int(key.split("+")[1]) for key in scored["items"]])
    out_of_fold = np.asarray(scored["raw"]["global"])[order]
    in_bank = np.array([cross_fitted.score([image]).views[0].raw["global"] for image in normals[:8]])
    assert np.all(out_of_fold > in_bank + 1e-3), (out_of_fold, in_bank)
    # and an unseen normal scores like the cross-fitted ones, not like the enrolled ones
    unseen = cross_fitted.score([normals[10]]).views[0].raw["global"]
    assert unseen > float(np.median(in_bank)) and unseen > 0.5 * float(np.median(out_of_fold))


def test_new_normals_read_about_zero_on_the_cross_fitted_scale(
    cross_fitted: AnomalyModel, normals: list[np.ndarray]
) -> None:
    """The final bank scores with a student trained as the folds' were: with it trained longer,
    unseen normals read 1.5 robust spreads low on the student member here (6 on MVTec at 224 px)."""
    views = [cross_fitted.score([image]).views[0] for image in normals[8:12]]
    for member in ("patch", "student"):
        assert abs(float(np.median([v.z[member] for v in views]))) < 1.0, (member, [v.z[member] for v in views])


def test_many_normals_hold_a_quarter_back(normals: list[np.ndarray]) -> None:
    model = AnomalyModel(dataclasses.replace(CONFIG, cross_fit_below=8))
    bank = model.fit(normals[:12])
    assert CROSS_FIT_KEY not in bank.meta
    assert bank.n_images == 9
    assert bank.meta["calibration"]["n_items"] == 3
    assert len(bank.extra[CAL_PREFIX + "items"]) == 3


@pytest.mark.parametrize(
    ("cross_fit", "enrolled", "calibrated", "cross_fitted"),
    [(None, 5, 4, False), (False, 5, 4, False), (True, 5, 4 + 5, True)],
)
def test_calibration_images_given_are_used_and_cross_fitting_joins_them_when_asked(
    normals: list[np.ndarray], cross_fit: bool | None, enrolled: int, calibrated: int, cross_fitted: bool
) -> None:
    bank = AnomalyModel(CONFIG).fit(normals[:5], calibration=normals[5:9], cross_fit=cross_fit)
    assert (CROSS_FIT_KEY in bank.meta) is cross_fitted
    assert len(bank.extra[CAL_PREFIX + "items"]) == 4
    assert (bank.n_images, bank.meta["calibration"]["n_items"]) == (enrolled, calibrated)
    assert bank.meta["calibration"]["reference_views"] == calibrated


def test_few_normals_hold_a_quarter_back_when_told(normals: list[np.ndarray]) -> None:
    bank = AnomalyModel(CONFIG).fit(normals[:8], cross_fit=False)
    assert CROSS_FIT_KEY not in bank.meta
    assert (bank.n_images, bank.meta["calibration"]["n_items"]) == (5, 3)


def test_more_normals_join_a_cross_fitted_calibration_scored_before_they_enrol(normals: list[np.ndarray]) -> None:
    model = AnomalyModel(CONFIG)
    model.fit(normals[:6])
    bank = model.banks["default"]
    expected = model.score([normals[6]]).views[0].raw
    model.enroll_more("default", [[normals[6]], [normals[7]]])
    scored = bank.meta[CROSS_FIT_KEY]
    assert scored["items"][-2:] == ["cross+6", "cross+7"]
    for member in MEMBERS:
        assert scored["raw"][member][-2] == pytest.approx(expected[member], rel=1e-5, abs=1e-6)
    assert bank.meta["calibration"]["n_items"] == 8
    # once enrolled, the new normal is near its own patches, far nearer than it was scored
    assert model.score([normals[6]]).views[0].raw["global"] < expected["global"]


def test_a_cross_fitted_model_loads_with_the_same_threshold(
    cross_fitted: AnomalyModel, normals: list[np.ndarray], tmp_path: Path
) -> None:
    loaded = AnomalyModel.load(cross_fitted.save(tmp_path / "model"))
    bank = loaded.banks["default"]
    assert bank.meta[CROSS_FIT_KEY] == cross_fitted.banks["default"].meta[CROSS_FIT_KEY]
    before = cross_fitted.score([normals[11]])
    after = loaded.score([normals[11]])
    assert after.threshold == pytest.approx(before.threshold)
    assert after.score == pytest.approx(before.score, rel=1e-4, abs=1e-6)


def test_cross_fitting_needs_five_normals_even_beside_calibration_images(normals: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="cross-fitting needs at least 5 normal images"):
        AnomalyModel(CONFIG).fit(normals[:4], calibration=normals[4:8], cross_fit=True)
