"""`inspect` end to end on a small hand-built dataset with test stages, then the HTML report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pipeline.catalog import Catalog
from pipeline.cli import app
from pipeline.inspect import inspect_path
from pipeline.stages import STAGES, StageContext, register_stage
from pipeline.store import Store
from pipeline.types import CatalogRecord, Evidence, Finding, ItemCapture


class RedMeansDamage:
    """Flags items whose top view is mostly red: a stand-in detector with known behaviour."""

    name, version = "red", "1"

    def __call__(self, capture: ItemCapture, ctx: StageContext) -> list[Finding]:
        image = capture.images()["top"]
        red = float((image[..., 0] > 150).mean())
        if red < 0.5:
            return []
        box = [2.0, 2.0, 30.0, 30.0]
        return [
            Finding(
                stage=self.name, kind="anomaly", score=red, probability=0.95, evidence=[Evidence(camera="top", box=box)]
            )
        ]


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    catalog = Catalog(skus={"S1": CatalogRecord(sku="S1", title="Box", category="food_box")})
    catalog.save(root / "catalog.json")
    (root / "dataset.json").write_text(json.dumps({"today": "2026-11-22"}))
    lines = []
    for i in range(12):
        bad = i < 6
        item = f"I{i:03d}"
        (root / "images" / item).mkdir()
        colour = (220, 20, 20) if bad else (20, 20, 220)
        Image.new("RGB", (64, 48), colour).save(root / "images" / item / "top.jpg")
        truth = {"defects": [{"type": "stain", "masks": {}}] if bad else []}
        lines.append(
            {
                "item_id": item,
                "sku": "S1" if i != 11 else "UNKNOWN",
                "lot": "LBAD" if bad else "LGOOD",
                "frames": [{"camera": "top", "uri": f"images/{item}/top.jpg"}],
                "split": "test",
                "truth": truth,
            }
        )
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return root


@pytest.fixture
def red_stage(monkeypatch):
    monkeypatch.setitem(STAGES, "red", "")
    register_stage("red", f"{__name__}:RedMeansDamage")


def test_inspect_scores_stores_isolates_and_reports(dataset, tmp_path, red_stage) -> None:
    out = tmp_path / "results"
    result = inspect_path(dataset, out, stages=["red"], progress=False)
    assert result.items == 12
    assert result.actions["divert"] == 6
    assert result.metrics["per_defect_type"]["stain"]["recall_divert"] == 1.0
    assert result.metrics["false_divert_rate"] == 0.0
    assert result.lots_quarantined == ["LBAD"]
    store = Store(out / "store.db")
    assert len(store.events("divert")) == 6 and len(store.events("replacement_order")) == 6
    assert store.verdict("I011").action.value == "review"  # unknown SKU
    assert len((out / "verdicts.jsonl").read_text().splitlines()) == 12

    runner = CliRunner()
    res = runner.invoke(app, ["report", "--results", str(out), "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "r.html").read_text()
    assert "LBAD" in html and "I000" in html and html.count("data:image/png;base64") >= 7


def test_inspect_cli_errors(tmp_path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["inspect", "--input", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no such dataset" in res.output
    res = runner.invoke(app, ["inspect", "--input", str(tmp_path), "--out", str(tmp_path / "o"), "--today", "22/11"])
    assert res.exit_code == 2 and "YYYY-MM-DD" in res.output
    res = runner.invoke(app, ["report", "--results", str(tmp_path), "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 2 and "not an inspect results folder" in res.output


def test_inspect_image_folder(tmp_path, red_stage) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.full((40, 40, 3), (200, 10, 10), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.full((40, 40, 3), (10, 10, 200), np.uint8)).save(folder / "b.png")
    (folder / "notes.txt").write_text("not an image")
    result = inspect_path(folder, tmp_path / "o", stages=["red"], progress=False)
    assert result.items == 2 and result.metrics is None
    assert result.actions == {"review": 2}  # no catalog: unknown SKU is reviewed, never passed


class SlowOnEven(RedMeansDamage):
    """Even items take longer, so side-by-side inspection finishes them out of order."""

    def __call__(self, capture: ItemCapture, ctx: StageContext) -> list[Finding]:
        import time

        time.sleep(0.05 if int(capture.item_id[1:]) % 2 == 0 else 0.0)
        return super().__call__(capture, ctx)


def test_side_by_side_inspection_keeps_input_order_and_verdicts(dataset, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(STAGES, "slow_red", "")
    register_stage("slow_red", f"{__name__}:SlowOnEven")
    one = inspect_path(dataset, tmp_path / "one", stages=["slow_red"], progress=False, workers=1)
    three = inspect_path(dataset, tmp_path / "three", stages=["slow_red"], progress=False, workers=3)
    assert [v.item_id for v in three.verdicts] == [f"I{i:03d}" for i in range(12)]
    assert [(v.item_id, v.action) for v in three.verdicts] == [(v.item_id, v.action) for v in one.verdicts]
    assert three.lots_quarantined == one.lots_quarantined == ["LBAD"]
    lines = (tmp_path / "three" / "verdicts.jsonl").read_text().splitlines()
    assert [json.loads(line)["item_id"] for line in lines] == [v.item_id for v in one.verdicts]
    assert Store(tmp_path / "three" / "store.db").queue_depth() == 0  # every enqueued item completed
