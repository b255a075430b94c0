"""Real photos' objects placed on the simulated belts and totes (`tunnel_sim.composite`)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tunnel_sim.composite import object_mask, place_on_conveyance
from tunnel_sim.scene import FC_CONVEYANCE, FRAME_H, FRAME_W

RED = (200, 30, 30)


def studio_photo(shape: str, size: int = 400) -> np.ndarray:
    """A red object on a white backdrop, as a product photographed in a light box."""
    image = np.full((size, size, 3), 255, np.uint8)
    if shape == "disc":
        cv2.circle(image, (200, 210), 120, RED, -1)
        cv2.circle(image, (200, 210), 40, (40, 40, 40), -1)  # a dark centre: still one object
    elif shape == "bar":
        cv2.rectangle(image, (60, 170), (340, 250), RED, -1)
    return image


@pytest.mark.parametrize(
    ("shape", "area"),
    [("disc", np.pi * 120**2), ("bar", 281 * 81)],
)
def test_object_mask_is_the_whole_object(shape: str, area: float) -> None:
    mask = object_mask(studio_photo(shape))
    assert mask.sum() == pytest.approx(area, rel=0.05)
    assert mask[210, 200]  # the dark centre of the disc is filled, the bar's middle is in
    assert not mask[5, 5]


def test_object_mask_on_an_empty_backdrop_is_an_error() -> None:
    with pytest.raises(ValueError, match="no object"):
        object_mask(np.full((50, 50, 3), 255, np.uint8))


@pytest.mark.parametrize("fc", sorted(FC_CONVEYANCE))
@pytest.mark.parametrize("shape", ["disc", "bar"])
def test_placed_object_lies_whole_on_the_floor(fc: str, shape: str) -> None:
    photo = studio_photo(shape)
    mask = object_mask(photo)
    placed = place_on_conveyance(photo, mask, np.random.default_rng(3), fc=fc, size_px=(220, 260))
    assert placed.frame.shape == (FRAME_H, FRAME_W, 3) and placed.frame.dtype == np.uint8
    assert placed.conveyance == fc
    # the object's pixel count scales with the square of its scale, and none leaves the frame
    assert placed.mask.sum() == pytest.approx(mask.sum() * placed.scale**2, rel=0.05)
    edge = np.concatenate([placed.mask[0], placed.mask[-1], placed.mask[:, 0], placed.mask[:, -1]])
    assert not edge.any()
    # inside the mask the object's red shows; away from it, the conveyance's own floor
    inner = cv2.erode(placed.mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    red = placed.frame[inner & (placed.frame[..., 0] > 150)]
    assert len(red) > 0.5 * inner.sum()
    floor = placed.frame[~cv2.dilate(placed.mask.astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool)]
    assert np.abs(np.median(floor, axis=0) - np.asarray(FC_CONVEYANCE[fc].colour)).max() < 45


def test_placement_is_drawn_from_the_generator() -> None:
    photo = studio_photo("bar")
    mask = object_mask(photo)
    a, b = (place_on_conveyance(photo, mask, np.random.default_rng(s)) for s in (5, 5))
    c = place_on_conveyance(photo, mask, np.random.default_rng(6))
    assert np.array_equal(a.frame, b.frame) and a.angle == b.angle
    assert (a.angle, a.conveyance) != (c.angle, c.conveyance)


@pytest.mark.parametrize(
    ("mask", "size_px", "message"),
    [
        (np.zeros((400, 400), bool), (200.0, 300.0), "empty"),
        (np.ones((300, 400), bool), (200.0, 300.0), "does not match"),
        (np.ones((400, 400), bool), (470.0, 480.0), "does not fit"),
    ],
)
def test_bad_placements_are_refused(mask: np.ndarray, size_px: tuple[float, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        place_on_conveyance(studio_photo("disc"), mask, np.random.default_rng(0), size_px=size_px)


@pytest.mark.parametrize("fc", ["FC-BER1", "FC-MAD2", "FC-LYS1"])
def test_a_real_bottle_placed_on_a_floor_is_found_again(shared_data, fc: str) -> None:
    """An MVTec bottle photo cut out, placed on a belt or tote, and localised: the crop covers
    the placed bottle (what the benchmark of real photos at any pose relies on)."""
    from detectors.anomaly.prepare import is_round
    from detectors.localize import segment
    from pipeline.imageio import read_image

    photos = sorted((shared_data / "mvtec_bottle" / "train" / "good").glob("*.jpg"))
    if not photos:
        pytest.skip("MVTec bottle photos not found")
    photo = read_image(photos[0])
    mask = object_mask(photo)
    assert is_round(mask) and 0.3 < mask.mean() < 0.95  # a bottle seen from above, not the backdrop
    placed = place_on_conveyance(photo, mask, np.random.default_rng(11), fc=fc)
    found, _ = segment(placed.frame)
    found = cv2.resize(found, (FRAME_W, FRAME_H), interpolation=cv2.INTER_NEAREST) > 0
    assert (found & placed.mask).sum() / (found | placed.mask).sum() > 0.8
