"""`inspect` on bad input: one clear error before any item is inspected, and earlier results kept."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from pipeline.catalog import Catalog
from pipeline.cli import app
from pipeline.dataset import DatasetError
from pipeline.inspect import InputError, _latency_summary, image_folder_items, inspect_path
from pipeline.stages import STAGES, StageContext, register_stage
from pipeline.store import Store
from pipeline.types import CatalogRecord, Finding, ItemCapture


class CountingStage:
    """Finds nothing and counts the items it saw, to prove bad input stops a run before any item."""

    name, version = "count", "1"
    calls = 0

    def __call__(self, capture: ItemCapture, ctx: StageContext) -> list[Finding]:
        CountingStage.calls += 1
        return []


@pytest.fixture
def counting_stage(monkeypatch) -> type[CountingStage]:
    monkeypatch.setitem(STAGES, "count", "")
    register_stage("count", f"{__name__}:CountingStage")
    monkeypatch.setattr(CountingStage, "calls", 0)
    return CountingStage


def record(item_id: str) -> str:
    return json.dumps({"item_id": item_id, "sku": "S1", "frames": [{"camera": "top", "uri": f"images/{item_id}.png"}]})


def make_dataset(root: Path, lines: list[str], info: str = '{"today": "2026-11-22"}') -> Path:
    (root / "images").mkdir(parents=True)
    Catalog(skus={"S1": CatalogRecord(sku="S1", title="Box", category="food_box")}).save(root / "catalog.json")
    (root / "dataset.json").write_text(info)
    for i in range(3):
        Image.new("RGB", (32, 24), (20, 20, 220)).save(root / "images" / f"I{i}.png")
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return root


GOOD = [record("I0"), record("I1"), record("I2")]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([record("I0"), record("I1")[:50]], "manifest.jsonl:2: malformed JSON"),
        ([record("I0"), "5"], "manifest.jsonl:2: expected a JSON object, got int"),
        (["", "", "", record("I0"), '{"item_id": 5}'], "manifest.jsonl:5: invalid record"),
        ([record("I0"), record("I1"), record("I0")], "manifest.jsonl:3: duplicate item_id 'I0' (also on line 1)"),
    ],
)
def test_bad_manifest_inspects_nothing_and_keeps_earlier_results(
    tmp_path, counting_stage, lines: list[str], message: str
) -> None:
    out = tmp_path / "results"
    inspect_path(make_dataset(tmp_path / "good", GOOD), out, stages=["count"], progress=False)
    before = {name: (out / name).read_bytes() for name in ("verdicts.jsonl", "run.json")}
    counting_stage.calls = 0

    with pytest.raises(DatasetError, match=re.escape(message)):
        inspect_path(make_dataset(tmp_path / "bad", lines), out, stages=["count"], progress=False)
    assert counting_stage.calls == 0
    assert {name: (out / name).read_bytes() for name in before} == before
    assert Store(out / "store.db").queue_depth() == 0


def test_limit_still_checks_the_whole_manifest(tmp_path, counting_stage) -> None:
    root = make_dataset(tmp_path / "ds", [record("I0"), record("I1"), "{"])
    with pytest.raises(DatasetError, match=r"manifest\.jsonl:3: malformed JSON"):
        inspect_path(root, tmp_path / "o", stages=["count"], limit=1, progress=False)
    assert counting_stage.calls == 0 and not (tmp_path / "o").exists()


def touch(folder: Path, *names: str) -> Path:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    return folder


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["good.jpg", "good.png"], "good.jpg and good.png both give item id 'good'"),
        (["a b.jpg", "a_b.png"], "a b.jpg and a_b.png both give item id 'a_b'"),
        (["x/top.jpg", "x.png"], "x and x.png both give item id 'x'"),
        (["bad name/top.jpg"], "bad name: Value error, invalid item_id 'bad name'"),
        (["._hidden.jpg"], "._hidden.jpg: Value error, invalid item_id '._hidden'"),
    ],
)
def test_image_folder_names_that_clash_or_make_no_item_id(tmp_path, names: list[str], message: str) -> None:
    folder = touch(tmp_path / "imgs", *names)
    with pytest.raises(InputError) as raised:
        image_folder_items(folder, "S1")
    assert message in str(raised.value)


def test_image_folder_items_one_per_image_or_sub_folder(tmp_path) -> None:
    folder = touch(tmp_path / "imgs", "a.jpg", "b.PNG", "notes.txt", "c/top.jpg", "c/left.jpg", "empty/readme.md")
    items = image_folder_items(folder, "S1")
    assert [(i.capture.item_id, len(i.capture.frames)) for i in items] == [("a", 1), ("b", 1), ("c", 2)]


def run_cli(*args: str | Path) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["inspect", *map(str, args)])
    return res.exit_code, res.output


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            lambda t: ["--input", make_dataset(t / "ds", [record("I0"), record("I1")[:50]]), "--stages", "count"],
            "manifest.jsonl:2: malformed JSON",
        ),
        (
            lambda t: ["--input", make_dataset(t / "ds", GOOD, info='{"today": '), "--stages", "count"],
            "dataset.json: malformed JSON",
        ),
        (
            lambda t: ["--input", make_dataset(t / "ds", GOOD, info='{"today": "2026-99-01"}'), "--stages", "count"],
            "dataset.json: 'today' must be a YYYY-MM-DD date",
        ),
        (
            lambda t: ["--input", make_dataset(t / "ds", GOOD, info="[1, 2]"), "--stages", "count"],
            "dataset.json: expected a JSON object, got list",
        ),
        (
            lambda t: ["--input", touch(t / "imgs", "good.jpg", "good.png"), "--stages", "count"],
            "good.jpg and good.png both give item id 'good'",
        ),
        (lambda t: ["--input", make_dataset(t / "ds", []), "--stages", "count"], "no items to inspect"),
        (lambda t: ["--input", touch(t / "imgs", "notes.txt"), "--stages", "count"], "no items to inspect"),
        (lambda t: ["--input", make_dataset(t / "ds", GOOD), "--stages", ""], "no stages to run"),
        (lambda t: ["--input", make_dataset(t / "ds", GOOD), "--stages", " , "], "no stages to run"),
        (lambda t: ["--input", make_dataset(t / "ds", GOOD), "--stages", "nope"], "unknown stage 'nope'"),
        (
            lambda t: [
                "--input",
                make_dataset(t / "ds", GOOD),
                "--stages",
                "anomaly",
                "--model",
                touch(t / "m", "notes.txt"),
            ],
            "no anomaly model",
        ),
    ],
)
def test_cli_bad_input_is_one_error_line_and_no_results(
    tmp_path, counting_stage, setup: Callable[[Path], list[str | Path]], message: str
) -> None:
    code, output = run_cli(*setup(tmp_path), "--out", tmp_path / "results")
    assert code == 2, output
    assert output.startswith("error: ") and message in output and len(output.strip().splitlines()) == 1
    assert counting_stage.calls == 0 and not (tmp_path / "results").exists()


def test_cli_out_that_is_a_file(tmp_path, counting_stage) -> None:
    dataset = make_dataset(tmp_path / "ds", GOOD)
    code, output = run_cli("--input", dataset, "--stages", "count", "--out", dataset / "catalog.json")
    assert code == 2 and f"error: {dataset / 'catalog.json'}: exists and is not a folder" in output
    code, output = run_cli("--input", dataset, "--stages", "count", "--out", dataset / "catalog.json" / "sub")
    assert code == 2 and "cannot create the results folder" in output
    assert counting_stage.calls == 0 and Catalog.load(dataset / "catalog.json").skus


@pytest.mark.parametrize(
    ("latencies", "expected"),
    [
        ([], {}),
        ([5.0], {"p50": 5.0, "p90": 5.0, "p99": 5.0}),
        ([200.0, 100.0], {"p50": 150.0, "p90": 190.0, "p99": 199.0}),
        ([1848.0, 634.0], {"p50": 1241.0, "p90": 1726.6, "p99": 1835.9}),
        ([float(x) for x in range(10, 101, 10)], {"p50": 55.0, "p90": 91.0, "p99": 99.1}),
    ],
)
def test_latency_percentiles_are_interpolated_and_never_decrease(
    latencies: list[float], expected: dict[str, float]
) -> None:
    summary = _latency_summary(latencies)
    assert summary == expected
    assert list(summary.values()) == sorted(summary.values())
