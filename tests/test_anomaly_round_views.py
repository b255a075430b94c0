"""Round views (lids, balls seen end-on): found from the outline, enrolled at 45-degree steps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detectors.anomaly import AnomalyModel, ModelConfig
from detectors.anomaly.model import rotate_cells, rotate_view
from detectors.anomaly.prepare import is_round, prepare, round_share
from detectors.localize import localize


def _disc(size: int = 120) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, (size // 2, size // 2), size // 2 - 2, 1, -1)
    return mask > 0


def _polygon(size: tuple[int, int], sides: int) -> np.ndarray:
    h, w = size
    angles = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    pts = np.stack([(w - 1) / 2 * (1 + np.cos(angles)), (h - 1) / 2 * (1 + np.sin(angles))], 1)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [pts.round().astype(np.int32)], 1)
    return mask > 0


@pytest.mark.parametrize(
    ("name", "mask", "expected"),
    [
        ("disc", _disc(), True),
        ("octagon", _polygon((100, 100), 8), True),
        ("slightly oval lid", _polygon((100, 110), 64), True),
        ("square box face", np.ones((100, 100), bool), False),
        ("hexagon", _polygon((100, 100), 6), True),
        ("triangle", _polygon((100, 100), 3), False),
        ("long ellipse", _polygon((60, 120), 64), False),
        ("bottle side", np.ones((200, 80), bool), False),
        ("empty mask", np.zeros((50, 50), bool), False),
    ],
)
def test_round_outlines(name: str, mask: np.ndarray, expected: bool) -> None:
    assert is_round(mask) is expected, name


def _belt(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((480, 640, 3), (58, 60, 64), np.float32) + rng.normal(0, 4, (480, 640, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def _lid(angle: float, seed: int, stain: bool = False) -> np.ndarray:
    """A yellow lid on the belt with a dark print bar from its centre towards its rim at `angle`."""
    img = _belt(seed)
    centre, radius = np.array([320.0, 240.0]), 110
    cv2.circle(img, (320, 240), radius, (220, 200, 40), -1)
    direction = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
    start, end = centre + 15 * direction, centre + 85 * direction
    cv2.line(img, tuple(start.round().astype(int)), tuple(end.round().astype(int)), (30, 40, 120), 14)
    if stain:
        cv2.circle(img, (320 - 60, 240 + 45), 14, (90, 60, 30), -1)
    return img


def test_localised_lid_is_round_and_box_is_not() -> None:
    lid = prepare(localize(_lid(0.0, 0), "top"), 224)
    box = _belt(1)
    cv2.rectangle(box, (200, 150), (460, 330), (176, 132, 84), -1)
    assert lid.round_outline
    assert not prepare(localize(box, "top"), 224).round_outline


def test_rotations_keep_pixels_and_cells_together() -> None:
    pixels = np.zeros((224, 224, 3), np.uint8)
    pixels[20:40, 100:124] = 255  # a mark near the top edge
    cells = np.zeros((28, 28), bool)
    cells[2:5, 12:16] = True
    assert (rotate_view(pixels, 180) == pixels[::-1, ::-1]).all()
    for angle in (45, 90, 135, 225, 270, 315):
        turned, turned_cells = rotate_view(pixels, angle), rotate_cells(cells, angle)
        ys, xs = np.nonzero(turned.max(axis=2) > 128)
        cy, cx = np.nonzero(turned_cells)
        # the mark and its cells moved to the same place
        assert abs(ys.mean() / 8 - cy.mean()) < 1.5 and abs(xs.mean() / 8 - cx.mean()) < 1.5
        assert turned_cells.sum() >= 0.5 * cells.sum()
    corners = rotate_view(np.full((224, 224, 3), 200, np.uint8), 45)
    assert (corners[0, 0] == 124).all()  # what came from outside is background grey
    tiny = np.zeros((28, 28), bool)
    tiny[0, 0] = True
    assert rotate_cells(tiny, 45).any()  # a mask is never turned into nothing


class _CountingRuntime:
    """Stands in for the backbone: records how many views were embedded."""

    def __init__(self) -> None:
        self.views = 0

    def embed(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.views += len(pixels)
        n = len(pixels)
        return np.zeros((n, 4, 28, 28), np.float32), np.zeros((n, 8), np.float32)


@pytest.mark.parametrize(
    ("augment", "lid_views", "box_views"),
    [((), 1, 1), (("rot180",), 2, 2), (("rot_round",), 8, 1), (("rot180", "rot_round"), 8, 2)],
)
def test_only_round_views_get_the_extra_rotations(augment: tuple[str, ...], lid_views: int, box_views: int) -> None:
    box = _belt(2)
    cv2.rectangle(box, (200, 150), (460, 330), (176, 132, 84), -1)
    for image, expected in ((_lid(10.0, 3), lid_views), (box, box_views)):
        model = AnomalyModel(ModelConfig(augment=augment))
        model.runtime = _CountingRuntime()
        feats = model.features_of([[image]], augment=True)
        assert len(feats) == expected and (feats.items == 0).all()
        assert feats.masks.reshape(len(feats), -1).any(axis=1).all()
        plain = model.features_of([[image]])
        assert len(plain) == 1  # scoring never augments


def test_round_view_rotations_are_opt_in() -> None:
    assert ModelConfig().augment == ("rot180",)


def _box(seed: int) -> np.ndarray:
    img = _belt(seed)
    cv2.rectangle(img, (200, 150), (460, 330), (176, 132, 84), -1)
    return img


def test_round_share_counts_round_outlines() -> None:
    lids, boxes = [_lid(float(a), s) for s, a in enumerate((0, 40, 90))], [_box(s) for s in (4, 5)]
    assert round_share(lids) == 1.0 and round_share(boxes) == 0.0
    assert round_share([*lids[:1], *boxes]) == pytest.approx(1 / 3)
    assert round_share(lids, use_localize=False) == 0.0  # whole frames have no outline
    assert round_share([np.full((64, 64, 3), 90, np.uint8), *lids[:1]]) == 0.5  # a blank frame is not round
    assert round_share([]) == 0.0


@pytest.mark.parametrize(
    ("product", "flag", "turned"),
    [
        ("lid", [], True),
        ("box", [], False),
        ("lid", ["--no-round-rotations"], False),
        ("box", ["--round-rotations"], True),
    ],
)
def test_anomaly_fit_enrolls_a_round_product_turned(tmp_path, product: str, flag: list[str], turned: bool) -> None:
    """`anomaly fit` turns round views by default only for a product most of whose normals are round."""
    import json

    from typer.testing import CliRunner

    from pipeline.cli import app

    folder = tmp_path / "normals"
    folder.mkdir()
    for i in range(6):
        image = _lid(float(15 * i), 20 + i) if product == "lid" else _box(20 + i)
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    out = tmp_path / "model"
    result = CliRunner().invoke(
        app, ["anomaly", "fit", "--normals", str(folder), "--out", str(out), "--no-onnx", "--hold-out", *flag]
    )
    assert result.exit_code == 0, result.output
    augment = json.loads((out / "model.json").read_text())["config"]["augment"]
    assert ("rot_round" in augment) is turned
    assert ("round outline" in result.output) is (turned and not flag)


@pytest.mark.parametrize(
    ("normals", "calibration", "flags", "fitted", "note"),
    [
        (6, 0, [], "(all cross-fitted in 5 folds)", "rests on 6 calibration images"),
        (8, 0, ["--hold-out"], "(3 for calibration)", "rests on 3 calibration images"),
        (4, 7, [], "(7 for calibration)", "rests on 7 calibration images"),
        (4, 20, [], "(20 for calibration)", None),
        (6, 4, ["--cross-fit"], "(all cross-fitted in 5 folds, and 4 calibration images)", "rests on 10 calibration"),
    ],
)
def test_anomaly_fit_says_how_it_calibrated_and_when_too_few_images_set_the_threshold(
    tmp_path, normals: int, calibration: int, flags: list[str], fitted: str, note: str | None
) -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app

    folders = []
    for name, count in (("normals", normals), ("calibration", calibration)):
        if count:
            (tmp_path / name).mkdir()
            for i in range(count):
                image = _box(40 + 3 * i + count)
                cv2.imwrite(str(tmp_path / name / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            folders += [f"--{name}", str(tmp_path / name)]
    result = CliRunner().invoke(
        app, ["anomaly", "fit", *folders, *flags, "--out", str(tmp_path / "model"), "--no-onnx"]
    )
    assert result.exit_code == 0, result.output
    assert fitted in result.output
    if note is None:
        assert "threshold rests on" not in result.output
    else:
        assert f"threshold {note}" in result.output
        # the remedy of cross-fitting is offered only where the normals were not cross-fitted
        assert ("--cross-fit" in result.output) is ("cross-fitted" not in fitted)


@pytest.fixture(scope="module")
def lid_models() -> dict[str, AnomalyModel]:
    """The same lids, printed at one angle, enrolled with and without the round-view rotations."""
    enrol = [_lid(float(a), seed) for seed, a in enumerate((0, 3, -3, 5, -5, 2))]
    calibration = [_lid(float(a), 10 + seed) for seed, a in enumerate((1, -2, 4))]
    models = {}
    for name, augment in (("upright only", ("rot180",)), ("round rotations", ("rot180", "rot_round"))):
        model = AnomalyModel(ModelConfig(augment=augment, student_steps=20))
        model.fit(enrol, calibration=calibration)
        models[name] = model
    return models


@pytest.mark.slow
def test_a_lid_turned_on_the_belt_is_not_taken_for_damage(lid_models: dict[str, AnomalyModel]) -> None:
    """The print of a lid that lies turned by 45 or 135 degrees is far from every reference the
    upright-only bank holds, and near one the round-view bank holds; a stain still stands out."""
    plain, rotated = lid_models["upright only"], lid_models["round rotations"]
    for angle in (45.0, 135.0):
        turned = _lid(angle, 20)
        before = plain.score([turned]).views[0].raw["patch"]
        after = rotated.score([turned]).views[0].raw["patch"]
        assert after < 0.7 * before, (angle, before, after)
        stained = rotated.score([_lid(angle, 21, stain=True)]).views[0].raw["patch"]
        assert stained > after + 1.0, (angle, stained, after)
