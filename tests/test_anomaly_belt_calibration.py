"""Calibration on belt normals: confirmed-good belt items set the operating point."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from detectors.anomaly import AnomalyModel, ModelConfig
from detectors.anomaly.belt import calibrate_folder, calibrate_on_belt, normal_items
from detectors.anomaly.fusion import fuse_members
from detectors.anomaly.model import BELT_KEY, MAX_BELT_VIEWS, MEMBERS
from pipeline.cli import app
from pipeline.dataset import Dataset
from pipeline.store import Store
from pipeline.types import ItemCapture


def _texture(seed: int, light: float = 1.0) -> np.ndarray:
    """A printed carton face: a fixed pattern, a little noise, and the light it was shot in."""
    base = np.random.default_rng(0).integers(60, 200, (14, 14, 3)).astype(np.float32)
    img = cv2.resize(base, (224, 224), interpolation=cv2.INTER_NEAREST)
    img = img * light + np.random.default_rng(seed).normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model() -> AnomalyModel:
    m = AnomalyModel(ModelConfig(localize=False, student_steps=5, augment=()))
    m.fit([_texture(s) for s in range(6)], calibration=[_texture(10 + s) for s in range(4)], name="S1")
    return m


def _fresh(model: AnomalyModel) -> AnomalyModel:
    """A copy whose banks can be changed without touching the module's model."""
    import copy

    return copy.deepcopy(model)


def _flagged(m: AnomalyModel, raw: dict[str, float]) -> bool:
    """Whether one view with these raw member scores is over its bank's view threshold."""
    cal = m.calibration(m.banks["S1"])[0]
    score, _ = fuse_members(cal.standardise(raw), dict(m.config.member_weights))
    return bool(cal.view.is_anomalous(score)[0])


def test_belt_normals_above_the_references_stop_being_flagged(model: AnomalyModel) -> None:
    """Belt views of good items that sit far above the clean references were diverted; joined to
    the calibration they pass, and a view far above them is still flagged."""
    m = _fresh(model)
    bank = m.banks["S1"]
    ref = {k: np.asarray(v) for k, v in bank.meta["calibration"]["raw"].items()}
    rng = np.random.default_rng(0)
    lift = 100.0 * (ref["patch"].max() - ref["patch"].min() + 1e-3)
    belt = {k: list(rng.choice(ref[k], 40)) for k in MEMBERS}
    belt["patch"] = [float(ref["patch"].mean() + lift + rng.normal(0, 0.05 * lift)) for _ in range(40)]
    typical = {k: float(np.median(belt[k])) for k in MEMBERS}
    far = {**typical, "patch": typical["patch"] + 2 * lift}
    assert _flagged(m, typical)
    version = m.version
    scalers = m.calibration(bank)[0].scalers
    assert m.add_belt_calibration("S1", belt, [f"belt:I{i // 2}" for i in range(40)]) == 40
    assert not _flagged(m, typical)
    assert _flagged(m, far)
    # the operating point moved; the members' relative scale, which ranks items, did not
    assert m.calibration(bank)[0].scalers == scalers
    assert bank.meta["calibration"]["n_items"] == 4 + 20
    assert m.version != version
    # the same items scored again replace their earlier views instead of counting twice
    assert m.add_belt_calibration("S1", belt, [f"belt:I{i // 2}" for i in range(40)]) == 40
    with pytest.raises(ValueError, match="one raw score per belt view"):
        m.add_belt_calibration("S1", {k: [1.0] for k in MEMBERS}, ["a", "b"])


def test_belt_views_are_capped_newest_first(model: AnomalyModel) -> None:
    m = _fresh(model)
    n = MAX_BELT_VIEWS + 10
    m.add_belt_calibration("S1", {k: [float(i) for i in range(n)] for k in MEMBERS}, [f"belt:{i}" for i in range(n)])
    belt = m.banks["S1"].meta[BELT_KEY]
    assert len(belt["items"]) == MAX_BELT_VIEWS and belt["items"][-1] == f"belt:{n - 1}"
    assert belt["raw"]["patch"][0] == 10.0


def _capture(tmp: Path, name: str, sku: str, image: np.ndarray) -> ItemCapture:
    path = tmp / f"{name}.png"
    cv2.imwrite(str(path), image[..., ::-1])
    return ItemCapture.from_images([path], sku=sku, item_id=name)


def test_scoring_belt_items_into_their_banks_survives_a_save(model: AnomalyModel, tmp_path: Path) -> None:
    m = _fresh(model)
    good = [_capture(tmp_path, f"B{i}", "S1", _texture(30 + i, light=1.15)) for i in range(6)]
    stray = _capture(tmp_path, "X1", "NOT-ENROLLED", _texture(40))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    unreadable = ItemCapture.from_images([broken], sku="S1", item_id="B-broken")
    report = calibrate_on_belt(m, [*good, stray, unreadable])
    assert report.items == 6 and report.views == 6
    assert report.banks == {"S1": 6}
    assert set(report.skipped) == {"X1", "B-broken"}
    raw = m.banks["S1"].meta[BELT_KEY]["raw"]["patch"]
    again = m.score([_texture(30, light=1.15)], "S1").views[0].raw["patch"]
    assert raw[0] == pytest.approx(again, rel=1e-5)  # the same path as inspection
    m.save(tmp_path / "m")
    loaded = AnomalyModel.load(tmp_path / "m")
    assert loaded.banks["S1"].meta[BELT_KEY]["items"] == [f"belt:B{i}" for i in range(6)]
    assert loaded.calibration(loaded.banks["S1"])[0].view.threshold == pytest.approx(
        m.calibration(m.banks["S1"])[0].view.threshold
    )
    assert loaded.version == m.version


def test_new_enrolment_drops_belt_scores_read_against_the_old_bank(model: AnomalyModel) -> None:
    m = _fresh(model)
    m.add_belt_calibration("S1", {k: [1.0, 2.0, 3.0] for k in MEMBERS}, ["belt:a", "belt:b", "belt:c"])
    m.enroll_more("S1", [[_texture(50)]])
    assert BELT_KEY not in m.banks["S1"].meta
    assert m.banks["S1"].meta["calibration"]["n_items"] == 4


@pytest.fixture(scope="module")
def shift(tmp_path_factory) -> Path:
    from tunnel_sim import generate_dataset

    root = tmp_path_factory.mktemp("belt") / "ds"
    generate_dataset(root, 16, 4, references_per_sku=0, defect_rate=0.5, workers=1)
    return root


def test_normal_items_from_the_record_and_from_reviewers(shift: Path, tmp_path: Path) -> None:
    ds = Dataset.open(shift)
    items = list(ds.items())
    clean = [it.capture.item_id for it in items if it.truth is not None and not it.truth.defects]
    defective = [it.capture.item_id for it in items if it.truth is not None and it.truth.defects]
    assert clean and defective
    assert [c.item_id for c in normal_items(ds, use_truth=True)] == sorted(clean)
    assert normal_items(ds) == []
    store = Store(tmp_path / "s.db")
    store.add_label(defective[0], "normal", "confirm", reviewer="audit")  # audited: it was fine
    store.add_label(clean[0], "normal", "confirm")
    store.add_label(clean[0], "stain", "confirm")  # a later look found a stain
    store.add_label("NOT-IN-DATASET", "normal", "confirm")
    reviewed = [c.item_id for c in normal_items(ds, store)]
    assert reviewed == [defective[0]]
    both = {c.item_id for c in normal_items(ds, store, use_truth=True)}
    assert both == (set(clean) - {clean[0]}) | {defective[0]}
    store.close()


def test_calibrate_folder_needs_normal_items(shift: Path, tmp_path: Path, model: AnomalyModel) -> None:
    model.save(tmp_path / "m")
    with pytest.raises(ValueError, match="no confirmed-normal items"):
        calibrate_folder(tmp_path / "m", shift)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--use-truth for a recorded shift, or --db"),
        (["--db", "missing.db"], "no such store"),
        (["--use-truth", "--dataset-missing"], "No such option"),
    ],
)
def test_cli_calibrate_refuses_unclear_input(tmp_path: Path, args: list[str], message: str) -> None:
    base = ["anomaly", "calibrate", "--model", str(tmp_path / "m"), "--dataset", str(tmp_path / "ds")]
    res = CliRunner().invoke(app, [*base, *[str(tmp_path / a) if a.endswith(".db") else a for a in args]])
    assert res.exit_code == 2
    assert message in res.output


def test_cli_calibrate_on_a_recorded_shift(shift: Path, tmp_path: Path) -> None:
    """SKUs the model does not serve are reported as skipped; nothing is written then."""
    m = AnomalyModel(ModelConfig(localize=False, student_steps=5, augment=()))
    m.fit([_texture(s) for s in range(6)], calibration=[_texture(10 + s) for s in range(4)], name="S1")
    m.save(tmp_path / "m")
    before = (tmp_path / "m" / "model.json").read_text()
    res = CliRunner().invoke(
        app, ["anomaly", "calibrate", "--model", str(tmp_path / "m"), "--dataset", str(shift), "--use-truth", "--json"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["items"] == 0 and report["skipped"]
    assert (tmp_path / "m" / "model.json").read_text() == before


def test_wrong_item_ceiling_includes_the_belt_normals(model: AnomalyModel, tmp_path: Path) -> None:
    """A good belt item that strays farther from its own bank than any reference raises the
    distance from which the wrong-item check calls an item unlike its own SKU."""
    from detectors.attributes.identity import IdentityChecker

    m = _fresh(model)
    m.save(tmp_path / "before")
    before = IdentityChecker(tmp_path / "before").ceilings["S1"]
    raw = {
        "patch": [0.1, 0.1, 0.1],
        "student": [0.1, 0.1, 0.1],
        "composition": [0.1, 0.1, 0.1],
        "global": [before + 0.2, before + 0.4, 0.0],
    }
    m.add_belt_calibration("S1", raw, ["belt:A", "belt:A", "belt:B"])
    m.save(tmp_path / "after")
    assert IdentityChecker(tmp_path / "after").ceilings["S1"] == pytest.approx(before + 0.3)
