"""Composition profile: shares of a SKU's patch kinds per view, against good views of its camera."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.anomaly.composition import MIN_ITEMS, CompositionProfile

SIDE = 8
GLASS, JUICE = np.eye(4, dtype=np.float32)[:2] * 3.0


def _view(filled_rows: int, seed: int) -> np.ndarray:
    """(C, h, w) features of a bottle seen side on: juice up to `filled_rows`, glass above it."""
    rng = np.random.default_rng(seed)
    view = np.empty((4, SIDE, SIDE), np.float32)
    view[:, :, :] = GLASS[:, None, None]
    view[:, SIDE - filled_rows :, :] = JUICE[:, None, None]
    return view + rng.normal(0, 0.05, view.shape).astype(np.float32)


def _enrolment(levels=(5, 6, 5, 6, 5, 6), cameras=("left", "right")):
    views, items, cams = [], [], []
    for i, level in enumerate(levels):
        for cam in cameras:
            views.append(_view(level, seed=10 * i + len(cams)))
            items.append(i)
            cams.append(cam)
    return np.stack(views), np.ones((len(views), SIDE, SIDE), bool), np.asarray(items), cams


@pytest.fixture(scope="module")
def profile() -> CompositionProfile:
    patches, cores, items, cams = _enrolment()
    fitted = CompositionProfile.fit(patches, cores, items, cams, k=4)
    assert fitted is not None
    return fitted


def _score(profile: CompositionProfile, filled_rows: int, camera: str = "left", seed: int = 99) -> float:
    view = _view(filled_rows, seed)[None]
    return float(profile.scores(view, np.ones((1, SIDE, SIDE), bool), [camera])[0])


@pytest.mark.parametrize(
    ("filled_rows", "expect_flag"),
    [(5, False), (6, False), (2, True), (1, True), (8, True)],
)
def test_shares_unlike_any_good_view_score_high(profile, filled_rows, expect_flag) -> None:
    good = max(_score(profile, level, seed=s) for level in (5, 6) for s in (1, 2))
    score = _score(profile, filled_rows)
    if expect_flag:
        assert score > 3 * good and score > 3.0
    else:
        assert score < 2.0


def test_histograms_are_shares(profile) -> None:
    patches, cores, _, _ = _enrolment()
    hist = profile.histograms(patches, cores)
    assert hist.shape == (len(patches), len(profile.prototypes))
    np.testing.assert_allclose(hist.sum(axis=1), 1.0)
    empty = profile.histograms(patches[:1], np.zeros((1, SIDE, SIDE), bool))
    np.testing.assert_allclose(empty, 1.0 / len(profile.prototypes))


def test_an_unknown_camera_reads_against_every_reference(profile) -> None:
    assert _score(profile, 5, camera="top") < 2.0
    assert _score(profile, 1, camera="top") > 3.0


def test_too_few_items_fit_no_profile() -> None:
    patches, cores, items, cams = _enrolment(levels=(5,) * (MIN_ITEMS - 1))
    assert CompositionProfile.fit(patches, cores, items, cams) is None
    # views without an interior do not count as items either
    patches, cores, items, cams = _enrolment(levels=(5,) * MIN_ITEMS)
    cores[items == 0] = False
    assert CompositionProfile.fit(patches, cores, items, cams) is None


def test_round_trip_through_bank_arrays(profile) -> None:
    again = CompositionProfile.from_extra(profile.to_extra())
    assert again is not None
    for level in (1, 5, 8):
        assert _score(again, level) == pytest.approx(_score(profile, level), rel=1e-5)
    assert CompositionProfile.from_extra({}) is None


def test_enrolling_a_new_look_accepts_it(profile) -> None:
    """Incremental enrolment: a half-filled look, once among the references, is no longer far."""
    assert _score(profile, 3) > 3.0
    more = [_view(3, seed=500 + i) for i in range(4)]
    grown = profile.with_references(
        np.stack(more), np.ones((4, SIDE, SIDE), bool), ["new1", "new1", "new2", "new2"], ["left", "right"] * 2
    )
    assert len(grown.references) == len(profile.references) + 4
    assert _score(grown, 3) < 2.0
    np.testing.assert_array_equal(grown.prototypes, profile.prototypes)
