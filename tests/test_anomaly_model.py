"""End to end on a small MVTec bottle subset: fit, separate defects, persist, enrol more, ONNX parity,
the stage's findings and the CLI's JSON lines. Small input (128 px) and few images keep it short."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from detectors.anomaly import AnomalyModel, AnomalyStage, FeaturelessImage, ModelConfig, NoReference
from detectors.anomaly.calibration import EnsembleCalibration
from detectors.anomaly.export import OnnxRuntime, export_onnx
from pipeline.catalog import Catalog
from pipeline.imageio import read_image
from pipeline.stages import StageContext
from pipeline.types import Frame, ItemCapture

CONFIG = ModelConfig(image_size=128, localize=False, student_steps=60, max_patches=1024)


@pytest.fixture(scope="module")
def bottle(shared_data: Path) -> dict[str, list[Path]]:
    root = shared_data / "mvtec_bottle"
    if not root.is_dir():
        pytest.skip(f"MVTec bottle not found at {root}")
    good = sorted((root / "train" / "good").glob("*.jpg"))
    test = root / "test"
    return {
        "enrol": good[:10],
        "calibration": good[10:22],
        "more": good[22:26],
        "good": sorted((test / "good").glob("*.jpg"))[:5],
        "bad": [sorted((test / d).glob("*.jpg"))[0] for d in ("broken_large", "broken_small", "contamination")]
        + [sorted((test / "broken_large").glob("*.jpg"))[1]],
    }


@pytest.fixture(scope="module")
def fitted(bottle, tmp_path_factory) -> tuple[AnomalyModel, Path]:
    # a fixed thread count: `compute_threads` follows the machine's load, and the ONNX parity
    # below is measured against torch at the scorer's own two threads
    torch.set_num_threads(2)
    model = AnomalyModel(CONFIG)
    model.fit([read_image(p) for p in bottle["enrol"]], calibration=[read_image(p) for p in bottle["calibration"]])
    folder = model.save(tmp_path_factory.mktemp("model"))
    export_onnx(model, folder)
    return model, folder


def test_separates_defects_from_good(fitted, bottle) -> None:
    model, _ = fitted
    good = [model.score([read_image(p)]).score for p in bottle["good"]]
    bad = [model.score([read_image(p)]).score for p in bottle["bad"]]
    assert min(bad) > max(good)
    result = model.score([read_image(bottle["bad"][0])])
    assert result.anomalous and result.probability > 0.5
    assert set(result.views[0].z) == {"patch", "global", "student", "composition"}
    assert result.views[0].heatmap.shape == (16, 16)
    assert not any(model.score([read_image(p)]).anomalous for p in bottle["good"][:3])


def test_bank_is_bounded_and_small(fitted) -> None:
    model, folder = fitted
    bank = model.banks["default"]
    assert len(bank.patches) <= CONFIG.max_patches
    size = sum(f.stat().st_size for f in (folder / "banks").rglob("*"))
    assert size < 20e6


def test_save_load_scores_identically(fitted, bottle) -> None:
    model, folder = fitted
    again = AnomalyModel.load(folder)
    img = read_image(bottle["bad"][1])
    assert again.version == model.version
    assert again.score([img]).score == pytest.approx(model.score([img]).score, rel=1e-6)


def test_onnx_parity(fitted, bottle) -> None:
    model, folder = fitted
    onnx_model = AnomalyModel.load(folder, runtime=OnnxRuntime(folder, threads=2))
    for p in bottle["good"][:2] + bottle["bad"][:2]:
        img = read_image(p)
        a, b = model.score([img]), onnx_model.score([img])
        for m in ("patch", "global", "student", "composition"):
            assert b.views[0].raw[m] == pytest.approx(a.views[0].raw[m], rel=1e-4)
        assert b.score == pytest.approx(a.score, rel=1e-4, abs=1e-6)


def test_global_embedding_reads_a_larger_input_at_its_own_size(bottle, tmp_path) -> None:
    """Patches read the full input; the global embedding reads it shrunk to `global_size`, in
    the torch graph and the exported ONNX graph alike."""
    from detectors.anomaly.backbones import Embedder

    img = read_image(bottle["good"][0])
    config = dataclasses.replace(CONFIG, image_size=256, global_size=224, student_steps=5)
    embedder = Embedder(256, global_size=224)
    assert embedder.global_size == 224 and Embedder(128, global_size=224).global_size == 128
    pixels = torch.from_numpy(cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA)).permute(2, 0, 1)[None]
    small = torch.from_numpy(cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA)).permute(2, 0, 1)[None]
    with torch.inference_mode():
        patches, glob = embedder(pixels.float() / 255)
        _, direct = Embedder(224)(small.float() / 255)
    assert patches.shape[-1] == 256 // 8
    assert float((glob * direct).sum()) > 0.97  # the same look as the 224 px input, up to resampling
    model = AnomalyModel(config)
    model.fit([read_image(p) for p in bottle["enrol"][:4]], calibration=[read_image(p) for p in bottle["calibration"]])
    folder = model.save(tmp_path / "m")
    export_onnx(model, folder)
    onnx_model = AnomalyModel.load(folder, runtime=OnnxRuntime(folder, threads=2))
    assert onnx_model.config.global_size == 224
    a, b = model.score([img]), onnx_model.score([img])
    assert b.views[0].raw["global"] == pytest.approx(a.views[0].raw["global"], rel=1e-4, abs=1e-6)
    assert b.score == pytest.approx(a.score, rel=1e-4, abs=1e-6)


def test_incremental_enrolment(bottle) -> None:
    model = AnomalyModel(dataclasses.replace(CONFIG, student_steps=20))
    model.fit([read_image(p) for p in bottle["enrol"][:5]], calibration=[read_image(p) for p in bottle["calibration"]])
    before = model.version
    references = len(model.composition(model.banks["default"]).references)
    bank = model.enroll_more("default", [[read_image(p)] for p in bottle["more"]])
    assert bank.n_images == 9
    # each new image and its turned copy join the composition references; the prototypes stay
    assert len(model.composition(bank).references) == references + 2 * len(bottle["more"])
    assert len(bank.patches) <= CONFIG.max_patches
    assert model.version != before
    assert bank.meta["calibration"]["n_views"] == len(bottle["calibration"])


def test_bad_inputs(fitted) -> None:
    model, _ = fitted
    with pytest.raises(FeaturelessImage, match="featureless"):
        model.score([np.full((200, 200, 3), 128, np.uint8)])
    with pytest.raises(NoReference, match="no reference"):
        model.resolve("UNKNOWN-SKU", "unknown-category")


def _capture(images: dict[str, np.ndarray], sku: str = "default") -> ItemCapture:
    return ItemCapture(item_id="I-1", sku=sku, frames=[Frame.from_array(c, im) for c, im in images.items()])


def test_stage_findings(fitted, bottle, tmp_path) -> None:
    _, folder = fitted
    stage = AnomalyStage(model_dir=folder)
    ctx = StageContext(catalog=Catalog(), config={"heatmap_dir": str(tmp_path)})
    bad = read_image(bottle["bad"][0])
    [finding] = stage(_capture({"top": bad, "side": read_image(bottle["good"][0])}), ctx)
    assert finding.kind == "anomaly" and finding.probability > 0.5
    assert {e.camera for e in finding.evidence} == {"top", "side"}
    top = next(e for e in finding.evidence if e.camera == "top")
    assert Path(top.heatmap_ref).is_file() and top.box is not None
    assert set(top.data["members"]) == {"patch", "global", "student", "composition"}
    [nr] = stage(_capture({"top": bad}, sku="OTHER"), ctx)
    assert nr.kind == "no_reference" and "review" in nr.message
    [grey] = stage(_capture({"top": np.full((64, 64, 3), 90, np.uint8)}), ctx)
    assert grey.kind == "image_error" and "featureless" in grey.message


def test_stage_reports_no_item_found(fitted) -> None:
    model, _ = fitted
    localizing = AnomalyModel(dataclasses.replace(model.config, localize=True), model.banks, model.skus)
    rng = np.random.default_rng(0)
    belt = np.clip(rng.normal(60, 6, (240, 320, 1)).repeat(3, 2), 0, 255).astype(np.uint8)
    findings = AnomalyStage(model=localizing)(_capture({"top": belt}), StageContext(catalog=Catalog()))
    assert [f.kind for f in findings] == ["no_item_found"]


def test_cli_score_json_lines(fitted, bottle, tmp_path) -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app

    _, folder = fitted
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 not really a jpeg")
    args = ["anomaly", "score", "--model", str(folder), "--json", "--heatmaps", str(tmp_path / "h")]
    out = CliRunner().invoke(app, [*args, str(bottle["bad"][0]), str(corrupt), str(bottle["good"][0])])
    assert out.exit_code == 1, out.output  # every image scored but one: not a clean run
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 3
    assert lines[0]["anomalous"] is True and Path(lines[0]["heatmap"]).is_file()
    assert {"image", "score", "probability", "anomalous", "heatmap", "ms"} <= set(lines[0])
    assert "error" in lines[1]
    assert lines[2]["anomalous"] is False


def test_shared_student_exported_once(fitted, bottle, tmp_path) -> None:
    model, _ = fitted
    bank = model.banks["default"]
    twin = dataclasses.replace(bank, name="category:bottles", kind="category", extra=dict(bank.extra))
    shared = AnomalyModel(model.config, {"default": bank, twin.name: twin}, {"default": "default"})
    shared.add_bank(twin, category="bottles")
    folder = shared.save(tmp_path / "m")
    export_onnx(shared, folder)
    assert len(list((folder / "onnx").glob("*.student.onnx"))) == 1
    onnx_model = AnomalyModel.load(folder, runtime=OnnxRuntime(folder, threads=1))
    img = read_image(bottle["bad"][0])
    a = onnx_model.score([img], sku="OTHER", category="bottles")
    assert a.bank == twin.name
    assert a.score == pytest.approx(model.score([img]).score, rel=1e-4)


def test_bank_search_reads_only_the_item_and_scores_as_a_full_search(fitted, bottle) -> None:
    from detectors.anomaly.bank import nearest_rows

    model, _ = fitted
    bank = model.banks["default"]
    feats = model.features_of([[read_image(bottle["bad"][0])]])
    feats.masks[:, :, : feats.masks.shape[2] // 3] = False  # an item on two thirds of the crop
    patch_map, _, _, nearest = model.member_maps(bank, feats)
    flat, on = model.patch_rows(feats)
    full, rows = nearest_rows(flat, bank.patches)
    # float32 products over differently sized blocks round apart by ~1e-5
    np.testing.assert_allclose(patch_map.reshape(-1)[on], full[on], rtol=1e-4)
    assert (nearest.reshape(-1)[on] == rows[on]).all()
    assert (patch_map.reshape(-1)[~on] == 0).all()  # off the item nothing was searched


def test_small_banks_take_the_pooled_threshold(fitted, bottle) -> None:
    """Banks with few calibration items share one threshold over all SKU banks' normals."""
    model, _ = fitted
    bank = model.banks["default"]
    twin = dataclasses.replace(bank, name="OTHER", meta=json.loads(json.dumps(bank.meta)))
    pooled = AnomalyModel(model.config, {"default": bank, "OTHER": twin}, {"default": "default", "OTHER": "OTHER"})
    img = read_image(bottle["bad"][0])
    result = pooled.score([img], sku="OTHER")
    expected = EnsembleCalibration.pooled(
        [(b.meta["calibration"]["raw"], b.meta["calibration"]["items"]) for b in (bank, twin)],
        dict(model.config.member_weights),
        model.config.target_rate,
    )
    assert result.calibration == "pooled"
    assert result.threshold == pytest.approx(expected.view.threshold)
    assert expected.n_items == 2 * bank.meta["calibration"]["n_items"]  # items stay apart per bank
    own = AnomalyModel(dataclasses.replace(model.config, own_calibration_items=3), pooled.banks, pooled.skus)
    assert own.score([img], sku="OTHER").calibration == "bank"


def test_patch_member_scores_contrast_against_the_views_own_floor() -> None:
    """A view whose every patch is farther from the references (a pose or light the references
    lack) scores like the plain view; the same bump of damage on it still stands out."""
    from detectors.anomaly.model import _less_floor, _masked_peak

    rng = np.random.default_rng(0)
    plain = rng.normal(2.0, 0.1, (28, 28)).astype(np.float32)
    plain[:, :4] = 50.0  # off the item
    raised = plain + 1.5
    damaged = raised.copy()
    damaged[10:13, 10:13] += 2.0
    maps = np.stack([plain, raised, damaged])
    masks = np.ones_like(maps, dtype=bool)
    masks[:, :, :5] = False  # the item's border column reads nothing off the item
    score = _masked_peak(_less_floor(maps, masks, 0.5), masks)
    assert score[1] == pytest.approx(score[0], abs=1e-5)
    assert score[2] > score[0] + 1.5
    raw_peak = _masked_peak(maps, masks)
    assert raw_peak[1] > raw_peak[0] + 1.4  # what the floor removes


def test_patch_member_reads_the_item_interior_not_its_rim() -> None:
    """A spike on the outline's two rings of cells (a segmentation spur, a shadow) reaches the
    patch score only through the 3x3 smoothing's edge; the same spike further in counts in
    full; a whole-frame view keeps its edge cells."""
    from detectors.anomaly.model import _less_floor, _masked_peak, interior

    rng = np.random.default_rng(1)
    base = rng.normal(2.0, 0.05, (28, 28)).astype(np.float32)
    item = np.zeros((28, 28), bool)
    item[4:24, 4:24] = True
    on_rim, inside = base.copy(), base.copy()
    on_rim[4:6, 12:15] += 3.0
    inside[8:11, 12:15] += 3.0
    maps = np.stack([base, on_rim, inside])
    core = interior(np.stack([item] * 3), 2)
    assert core[0].sum() == 16 * 16 and not core[0][4:6].any()
    score = _masked_peak(_less_floor(maps, core, 0.5), core)
    assert score[1] < score[0] + 1.1
    assert score[2] > score[0] + 2.0
    whole = np.ones((1, 28, 28), bool)
    assert interior(whole, 2).all()  # no outline to peel
    sliver = np.zeros((1, 28, 28), bool)
    sliver[:, 10:13, :] = True
    assert (interior(sliver, 2) == sliver).all()  # nothing would be left: keep the cells
    assert (interior(np.stack([item]), 0) == item).all()


def test_folders_saved_before_the_interior_rule_score_as_they_were_calibrated(tmp_path: Path) -> None:
    """A model.json without `patch_interior_cells` loads with the rim kept, the rule its stored
    calibration scores were computed under."""
    model = AnomalyModel(ModelConfig(localize=False, student_steps=5))
    folder = tmp_path / "m"
    AnomalyModel(model.config).save(folder)
    info = json.loads((folder / "model.json").read_text())
    del info["config"]["patch_interior_cells"]
    (folder / "model.json").write_text(json.dumps(info))
    assert AnomalyModel.load(folder).config.patch_interior_cells == 0
    assert ModelConfig().interior_cells == 2 and ModelConfig(image_size=320).interior_cells == 3


def test_an_earlier_model_format_is_refused_with_what_to_do(fitted, tmp_path) -> None:
    """Folders written before the composition member have no profile and three-member
    calibrations: they are refused, naming the fix, rather than scored with a member missing."""
    _, folder = fitted
    info = json.loads((folder / "model.json").read_text())
    info["format"] = 2
    (tmp_path / "model.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"model format 2.*re-enrol"):
        AnomalyModel.load(tmp_path)
