"""An anomaly seen only where the tote shows the item's own colour is a review, not a divert."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detectors.anomaly.model import AnomalyModel, ItemResult, ModelConfig, ViewResult
from detectors.anomaly.prepare import prepare
from detectors.anomaly.stage import AnomalyStage, doubtful_outline
from detectors.localize import localize
from pipeline.catalog import Catalog
from pipeline.policy import REVIEW_CEILING_P
from pipeline.stages import StageContext
from pipeline.types import Frame, ItemCapture
from tunnel_sim import render_item
from tunnel_sim.catalog import catalog_records

RECORDS = {r.sku: r for r in catalog_records()}
TEE = RECORDS["TEE-BASIC-NAVY-M"]
HOME, BLUE_TOTE = "FC-BER1", "FC-MAD2"


def _frame(fc: str, camera: str, seed: int = 7, defects: tuple[str, ...] = ()) -> np.ndarray:
    return render_item(TEE, seed=seed, fc=fc, defects=defects, cameras=(camera,)).images[camera]


def _view(camera: str, frame: np.ndarray, score: float, anomalous: bool) -> ViewResult:
    prepared = prepare(localize(frame, camera), 224)
    return ViewResult(
        camera=camera,
        raw={},
        z={},
        score=score,
        top_member="patch",
        probability=0.9 if anomalous else 0.1,
        anomalous=anomalous,
        heatmap=np.zeros((28, 28), np.float32),
        prepared=prepared,
    )


@pytest.mark.parametrize(
    ("views", "expected"),
    [
        # (camera, conveyance, score, anomalous) per view
        ([("top", BLUE_TOTE, 9.0, True)], {"top"}),
        ([("top", HOME, 9.0, True)], set()),
        ([("top", BLUE_TOTE, 9.0, True), ("left", BLUE_TOTE, 8.0, True)], {"top", "left"}),
        # damage a camera with a clear surround sees too is damage
        ([("top", BLUE_TOTE, 9.0, True), ("left", HOME, 8.0, True)], set()),
        # a clear view that is not anomalous does not lift the doubt
        ([("top", BLUE_TOTE, 9.0, True), ("left", HOME, 1.0, False)], {"top"}),
    ],
)
def test_doubtful_outline_cameras(views, expected) -> None:
    frames = {cam: _frame(fc, cam) for cam, fc, _, _ in views}
    capture = ItemCapture(item_id="t1", sku=TEE.sku, frames=[Frame.from_array(c, f) for c, f in frames.items()])
    result = ItemResult(
        bank=TEE.sku,
        bank_kind="sku",
        score=max(s for _, _, s, _ in views),
        probability=0.9,
        anomalous=True,
        threshold=5.0,
        views=[_view(cam, frames[cam], s, a) for cam, _, s, a in views],
    )
    assert doubtful_outline(capture, TEE, result) == expected
    assert doubtful_outline(capture, TEE.model_copy(update={"colour_rgb": None}), result) == set()
    assert doubtful_outline(capture, None, result) == set()


@pytest.fixture(scope="module")
def tee_model_dir(tmp_path_factory):
    torch.set_num_threads(1)
    model = AnomalyModel(ModelConfig(student_steps=20, max_patches=512))
    images = [_frame(HOME, "top", seed=100 + i) for i in range(10)]
    model.fit(images[:6], calibration=images[6:], name=TEE.sku)
    out = tmp_path_factory.mktemp("outline")
    model.save(out / "anomaly")
    return out / "anomaly"


@pytest.mark.slow
def test_stage_caps_an_anomaly_seen_only_on_a_camouflaged_view(tee_model_dir) -> None:
    stage = AnomalyStage(model_dir=tee_model_dir)
    ctx = StageContext(catalog=Catalog(skus=RECORDS))
    tote = ItemCapture(item_id="t2", sku=TEE.sku, frames=[Frame.from_array("top", _frame(BLUE_TOTE, "top", 31))])
    [finding] = stage(tote, ctx)
    top = finding.evidence[0]
    # the navy shirt is cut to its size sticker in the blue tote: anomalous against its bank
    assert finding.message.startswith("anomalous")
    assert finding.probability <= REVIEW_CEILING_P
    assert top.data["outline_doubtful"] is True
    assert "review, not a divert" in finding.message
    stained = ItemCapture(
        item_id="t3", sku=TEE.sku, frames=[Frame.from_array("top", _frame(HOME, "top", 32, ("stain",)))]
    )
    [clear] = stage(stained, StageContext(catalog=Catalog(skus=RECORDS)))
    assert clear.evidence[0].data["outline_doubtful"] is False
    assert "review, not a divert" not in clear.message
