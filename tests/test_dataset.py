"""Opening a dataset folder: every malformed file is a DatasetError naming the file (and line)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from pipeline.catalog import Catalog
from pipeline.dataset import Dataset, DatasetError
from pipeline.types import CatalogRecord


def record(item_id: str, **extra: object) -> str:
    row = {"item_id": item_id, "sku": "S1", "frames": [{"camera": "top", "uri": f"images/{item_id}/top.jpg"}]}
    return json.dumps({**row, **extra})


def make_dataset(root: Path, manifest: str, info: str | None = '{"today": "2026-11-22"}') -> Path:
    """A dataset folder with the given manifest.jsonl and dataset.json text; images are not needed to read it."""
    root.mkdir(parents=True)
    Catalog(skus={"S1": CatalogRecord(sku="S1", title="Box", category="food_box")}).save(root / "catalog.json")
    if info is not None:
        (root / "dataset.json").write_text(info)
    (root / "manifest.jsonl").write_text(manifest)
    return root


def test_good_dataset_reads_items_and_today(tmp_path) -> None:
    ds = Dataset.open(make_dataset(tmp_path / "ds", "\n".join([record("I0"), "", record("I1")]) + "\n"))
    assert [i.capture.item_id for i in ds.items()] == ["I0", "I1"]
    assert ds.today == date(2026, 11, 22)
    assert Dataset.open(make_dataset(tmp_path / "bare", record("I0"), info=None)).today is None


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ('{"today": ', "malformed JSON (Expecting value at line 1)"),
        ('{"today": "2026-99-01"}', "'today' must be a YYYY-MM-DD date, got '2026-99-01'"),
        ('{"today": 20261122}', "'today' must be a YYYY-MM-DD date, got 20261122"),
        ("[1, 2]", "expected a JSON object, got list"),
    ],
)
def test_bad_dataset_json_names_the_file(tmp_path, info: str, message: str) -> None:
    root = make_dataset(tmp_path / "ds", record("I0") + "\n", info=info)
    with pytest.raises(DatasetError) as raised:
        Dataset.open(root)
    assert str(raised.value) == f"{root / 'dataset.json'}: {message}"


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        ([record("I0"), record("I1")[:40]], 2, "malformed JSON"),
        (["5", record("I0")], 1, "expected a JSON object, got int"),
        (["", "", "", record("I0"), '{"item_id": 5}'], 5, "invalid record: item_id: Input should be a valid string"),
        ([record("I0"), "", record("I1", frames=None)], 3, "invalid record: frames: Input should be a valid list"),
        ([record("I0", truth={"defects": "lots"})], 1, "invalid record: truth.defects: Input should be a valid list"),
        ([record("I0"), "", record("I1"), record("I0")], 4, "duplicate item_id 'I0' (also on line 1)"),
    ],
)
def test_bad_manifest_line_is_a_dataset_error_at_its_file_line(
    tmp_path, lines: list[str], line: int, message: str
) -> None:
    root = make_dataset(tmp_path / "ds", "\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as raised:
        list(Dataset.open(root).items())
    assert str(raised.value).startswith(f"{root / 'manifest.jsonl'}:{line}: {message}")


@pytest.mark.parametrize("split", [None, "enrol", "calibration"])
def test_a_reference_in_both_splits_is_an_error_whichever_split_is_read(tmp_path, split: str | None) -> None:
    root = make_dataset(tmp_path / "ds", record("I0") + "\n")
    lines = [record("R0", split="enrol"), record("R1", split="calibration"), record("R0", split="calibration")]
    (root / "references.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as raised:
        list(Dataset.open(root).references(split))
    assert str(raised.value) == f"{root / 'references.jsonl'}:3: duplicate item_id 'R0' (also on line 1)"


def test_references_of_one_split_are_read_alone(tmp_path) -> None:
    root = make_dataset(tmp_path / "ds", record("I0") + "\n")
    lines = [record("R0", split="enrol"), record("R1", split="calibration"), record("R2", split="enrol")]
    (root / "references.jsonl").write_text("\n".join(lines) + "\n")
    assert [r.capture.item_id for r in Dataset.open(root).references("enrol")] == ["R0", "R2"]
    assert [r.split for r in Dataset.open(root).references()] == ["enrol", "calibration", "enrol"]
