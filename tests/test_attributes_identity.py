"""Wrong item: nearest SKU bank by global embedding, reported with the SKU it resembles."""

from __future__ import annotations

import pytest
import torch

from detectors.anomaly.model import AnomalyModel, ModelConfig
from detectors.attributes.stage import AttributesStage
from detectors.localize import localize
from pipeline.catalog import Catalog
from pipeline.stages import StageContext
from pipeline.types import Frame, ItemCapture
from tunnel_sim import render_item
from tunnel_sim.catalog import catalog_records

RECORDS = {r.sku: r for r in catalog_records()}
SKUS = ("BOOK-NOVEL-0001", "TEE-BASIC-NAVY-M", "PHONE-CASE-P15-RED")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.set_num_threads(1)
    model = AnomalyModel(ModelConfig(student_steps=20, max_patches=512))
    for k, sku in enumerate(SKUS):
        images = [render_item(RECORDS[sku], seed=100 * k + i, cameras=("top",)).images["top"] for i in range(6)]
        model.fit(images, name=sku)
    out = tmp_path_factory.mktemp("ident")
    model.save(out / "anomaly")
    return out


def _capture(sku: str, seed: int, actual: str | None = None) -> ItemCapture:
    defects = ("wrong_item",) if actual else ()
    item = render_item(RECORDS[sku], defects=defects, seed=seed, cameras=("top",), actual_sku=RECORDS.get(actual or ""))
    return ItemCapture(item_id=f"w{seed}", sku=sku, frames=[Frame.from_array("top", item.images["top"])])


@pytest.mark.slow
def test_wrong_item_names_the_nearest_sku(model_dir) -> None:
    stage = AttributesStage(model_dir=model_dir, check_labels=False, check_colour=False)
    ctx = StageContext(catalog=Catalog(skus=RECORDS))
    findings = stage(_capture("BOOK-NOVEL-0001", 900, actual="PHONE-CASE-P15-RED"), ctx)
    assert [f.kind for f in findings] == ["wrong_item"]
    assert findings[0].evidence[0].data["nearest_sku"] == "PHONE-CASE-P15-RED"
    assert findings[0].probability > 0.5
    assert stage(_capture("BOOK-NOVEL-0001", 901), ctx) == []
    read = stage.identity_read(
        RECORDS["TEE-BASIC-NAVY-M"], [localize(_capture("TEE-BASIC-NAVY-M", 902).frames[0].image, "top")]
    )
    assert not read.closer_to_other and read.own_sku == "TEE-BASIC-NAVY-M"
