"""Localisation on scenes drawn here: a rotated box on a textured belt and inside a tote."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detectors.localize import LocalizeStage, localize
from pipeline.catalog import Catalog
from pipeline.stages import StageContext
from pipeline.types import Frame, ItemCapture
from pipeline.views import VIEWS_KEY


def belt(h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    """Dark rubber belt with noise and transverse ribs."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), (58, 60, 64), np.float32) + rng.normal(0, 6, (h, w, 1))
    img[:, ::24] += 14
    return np.clip(img, 0, 255).astype(np.uint8)


def tote(h: int = 480, w: int = 640) -> np.ndarray:
    """Yellow tote: walls brighter than the floor."""
    img = np.full((h, w, 3), (210, 170, 40), np.uint8)
    cv2.rectangle(img, (40, 40), (w - 40, h - 40), (190, 150, 30), -1)
    return img


def draw_box(img: np.ndarray, centre: tuple[int, int], size: tuple[int, int], angle: float) -> np.ndarray:
    """A cardboard box with a white label, rotated by `angle` degrees."""
    out = img.copy()
    pts = cv2.boxPoints((centre, size, angle)).astype(np.int32)
    cv2.fillPoly(out, [pts], (176, 132, 84))
    label = cv2.boxPoints((centre, (size[0] * 0.4, size[1] * 0.4), angle)).astype(np.int32)
    cv2.fillPoly(out, [label], (240, 240, 235))
    return out


def angle_error(a: float, b: float) -> float:
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


@pytest.mark.parametrize(
    ("background", "angle"),
    [("belt", 0.0), ("belt", 30.0), ("belt", -55.0), ("belt", 80.0), ("tote", 20.0), ("tote", -35.0)],
)
def test_recovers_angle_and_box(background: str, angle: float) -> None:
    bg = belt() if background == "belt" else tote()
    frame = draw_box(bg, (330, 250), (260, 140), angle)
    view = localize(frame, "top")
    assert view.found
    assert angle_error(view.angle_deg, angle) < 3.0
    # upright: long side horizontal, crop close to the box plus margin
    ch, cw = view.crop.shape[:2]
    assert cw > ch
    assert 260 <= cw <= 260 * 1.25
    assert 140 <= ch <= 140 + 260 * 0.2
    # the frame box contains the drawn item's corners
    corners = cv2.boxPoints(((330, 250), (260, 140), angle))
    x0, y0, x1, y1 = view.box
    assert x0 <= corners[:, 0].min() + 4 and x1 >= corners[:, 0].max() - 4
    assert y0 <= corners[:, 1].min() + 4 and y1 >= corners[:, 1].max() - 4
    # mask covers the item (~box area) and the crop centre maps back to the item centre
    assert 0.6 < view.mask.mean() < 0.95
    centre = view.to_frame(np.array([[cw / 2, ch / 2]]))[0]
    assert np.allclose(centre, (330, 250), atol=4)


def test_crop_is_upright_content() -> None:
    """The label (light, centred) ends up in the crop centre after rotation."""
    frame = draw_box(belt(), (300, 240), (240, 120), 40.0)
    view = localize(frame)
    ch, cw = view.crop.shape[:2]
    centre = view.crop[ch // 2 - 5 : ch // 2 + 5, cw // 2 - 5 : cw // 2 + 5]
    assert centre.mean() > 200


def test_empty_belt_is_not_found() -> None:
    view = localize(belt(seed=3))
    assert not view.found
    assert view.crop.shape == (480, 640, 3)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        localize(np.zeros((32, 32), np.uint8))


def test_stage_publishes_views_and_flags_empty_frames() -> None:
    capture = ItemCapture(
        item_id="T-1",
        sku="SKU",
        frames=[
            Frame.from_array("top", draw_box(belt(), (320, 240), (200, 120), 15)),
            Frame.from_array("side", belt()),
        ],
    )
    ctx = StageContext(catalog=Catalog())
    findings = LocalizeStage()(capture, ctx)
    views = ctx.shared[VIEWS_KEY]
    assert set(views) == {"top", "side"}
    assert views["top"].found and not views["side"].found
    assert [(f.kind, f.evidence[0].camera) for f in findings] == [("no_item_found", "side")]
