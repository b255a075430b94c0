"""Per-camera variability maps: where good items differ from each other, a patch distance counts less."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.anomaly.bank import nearest_distance
from detectors.anomaly.model import AnomalyModel, Features, ModelConfig
from detectors.anomaly.variability import POOLED, VariabilityMaps, leave_one_item_out

C, H, W = 8, 6, 6
ZONE = (slice(0, 2), slice(0, 3))
"""The cells where good items differ (a date-and-lot zone)."""


def _normals(n_items: int, views_per_item: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patches (N, C, H, W) of good items: one shared look, with item-to-item noise in `ZONE`."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(C, H, W)).astype(np.float32)
    patches, items = [], []
    for item in range(n_items):
        zone = rng.normal(scale=1.5, size=(C, 2, 3)).astype(np.float32)
        for _ in range(views_per_item):
            view = base + rng.normal(scale=0.05, size=base.shape).astype(np.float32)
            view[:, ZONE[0], ZONE[1]] += zone
            patches.append(view)
            items.append(item)
    return np.stack(patches), np.ones((len(patches), H, W), bool), np.asarray(items)


def test_leave_one_item_out_measures_each_cell_against_the_other_items_only() -> None:
    patches, masks, items = _normals(4)
    distances = leave_one_item_out(patches, masks, items)
    zone = distances[:, ZONE[0], ZONE[1]]
    plain = distances[:, 3:, 3:]
    assert zone.min() > 5 * plain.max()  # its own item's other view would have matched the zone
    masks[:, 5, 5] = False
    assert (leave_one_item_out(patches, masks, items)[:, 5, 5] == 0).all()


@pytest.mark.parametrize(
    ("items", "fitted"),
    [
        (np.array([0] * 8), False),  # one item: nothing to compare with
        (np.array([0, 0, 1, 1, 2, 2, 2, 2]), False),  # three: a map of their noise
        (np.array([0, 0, 1, 1, 2, 2, 3, 3]), True),
    ],
)
def test_maps_need_enough_items(items: np.ndarray, fitted: bool) -> None:
    patches, masks, _ = _normals(4)
    maps = VariabilityMaps.fit(patches, masks, items, ["top"] * 8)
    assert (maps is not None) is fitted


def test_a_camera_map_divides_most_where_items_differ_and_unknown_cameras_get_the_pooled_map() -> None:
    patches, masks, items = _normals(5)
    cameras = ["top", "side"] * 5
    # the side camera sees a face without the zone: its views differ by noise alone
    side = np.array([c == "side" for c in cameras])
    noise = np.random.default_rng(1).normal(scale=0.05, size=patches[side].shape).astype(np.float32)
    patches[side] = patches[side][0] + noise
    maps = VariabilityMaps.fit(patches, masks, items, cameras)
    assert maps is not None and set(maps.maps) == {"top", "side", POOLED}
    top = maps.maps["top"]
    assert top[0, 0] > 2 * top[4, 4] and np.isclose(np.median(top), 1.0)
    assert maps.maps["side"].max() < 1.5 * maps.maps["side"].min()
    np.testing.assert_array_equal(maps.divisors(["left", "top"]), np.stack([maps.maps[POOLED], top]))
    again = VariabilityMaps.from_extra({"other": np.zeros(1), **maps.to_extra()})
    assert again is not None and set(again.maps) == set(maps.maps)
    assert VariabilityMaps.from_extra({"other": np.zeros(1)}) is None


def test_the_same_difference_counts_more_on_a_plain_surface_than_in_the_print_zone() -> None:
    patches, masks, items = _normals(6)
    maps = VariabilityMaps.fit(patches, masks, items, ["top"] * len(items))
    assert maps is not None
    rows = patches.transpose(0, 2, 3, 1).reshape(-1, C)
    rng = np.random.default_rng(5)
    query = patches[0].copy()
    step = rng.normal(size=C).astype(np.float32) * 2.0
    query[:, 0, 1] += step  # in the zone
    query[:, 4, 4] += step  # on the plain surface
    distance = nearest_distance(query.transpose(1, 2, 0).reshape(-1, C), rows).reshape(H, W)
    scaled = distance / maps.divisors(["top"])[0]
    assert scaled[4, 4] > 1.5 * scaled[0, 1]


def test_enrolment_keeps_each_views_camera_through_turned_copies() -> None:
    model = AnomalyModel(ModelConfig(localize=False, student_steps=5))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(4)]
    feats = model.features_of([images[:2], images[2:]], augment=True, cameras=[["top", "side"], ["top", "side"]])
    assert list(feats.cameras) == ["top", "side"] * 4
    assert list(feats.items) == [0, 0, 1, 1] * 2
    unnamed = model.features_of([images[:2]])
    assert list(unnamed.cameras) == ["cam0", "cam1"]
    joined = Features.concat([feats, unnamed])
    assert list(joined.take(np.array([0, 9])).cameras) == ["top", "cam1"]


def test_a_fitted_bank_keeps_its_maps_and_a_bank_without_them_still_scores(tmp_path) -> None:
    rng = np.random.default_rng(3)
    base = rng.integers(60, 200, (96, 96, 3), dtype=np.uint8)
    images = [np.clip(base + rng.normal(scale=6, size=base.shape), 0, 255).astype(np.uint8) for _ in range(8)]
    model = AnomalyModel(ModelConfig(localize=False, student_steps=5, image_size=64, global_size=64))
    bank = model.fit(images, name="box")
    assert VariabilityMaps.from_extra(bank.extra) is not None
    model.save(tmp_path / "model")
    loaded = AnomalyModel.load(tmp_path / "model")
    assert VariabilityMaps.from_extra(loaded.banks["box"].extra) is not None
    with_maps = loaded.score([images[0]], "box").views[0].raw["patch"]
    # a bank enrolled before the maps existed: no maps, calibration views without cameras
    old = loaded.banks["box"]
    old.extra = {k: v for k, v in old.extra.items() if not k.startswith(("variability.", "cal.cameras"))}
    loaded.calibrate(old)
    without = loaded.score([images[0]], "box")
    assert np.isfinite(without.score) and without.views[0].raw["patch"] != pytest.approx(with_maps)
