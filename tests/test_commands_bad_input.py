"""Bad input to the commands: a clear one-line error naming the file at fault, and nothing lost.

Every case here fails before any model is fitted or any image is read, except `anomaly score`,
which runs on a stub model so that only the command's own handling of bad images is tested.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from llm_agent.evidence import RunRecordError, run_record
from pipeline.cli import app
from pipeline.store import Store
from pipeline.types import Action, Frame, ItemCapture, Verdict

ITEM = "ITEM-1"


def _store(root: Path) -> Path:
    """A results folder whose store holds one inspected item."""
    db = root / "results" / "store.db"
    store = Store(db)
    store.enqueue(ItemCapture(item_id=ITEM, sku="SKU-1", lot="L1", frames=[Frame(camera="top", uri="top.jpg")]))
    store.complete(Verdict(item_id=ITEM, sku="SKU-1", action=Action.PASS))
    store.close()
    (db.parent / "verdicts.jsonl").write_text("")
    return db


def _image(path: Path, grey: bool = False) -> Path:
    rng = np.random.default_rng(0)
    pixels = np.full((64, 64, 3), 30, np.uint8) if grey else rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _run(args: list[str]) -> SimpleNamespace:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    return SimpleNamespace(code=result.exit_code, output=result.output, last=lines[-1] if lines else "")


# -- a --db that is no store ------------------------------------------------------------------

DB_COMMANDS = [
    ["label", "--item", ITEM, "--label", "normal", "--decision", "confirm"],
    ["investigate", "--item", ITEM, "--complaint", "box came crushed"],
    ["calibrate-investigator", "--confirmed", "{confirmed}", "--out", "{tmp}/cal.json"],
    ["patterns", "--by", "seller", "--out", "{tmp}/p.html"],
    ["anomaly", "calibrate", "--model", "{tmp}", "--dataset", "{tmp}"],
]


@pytest.mark.parametrize("command", DB_COMMANDS, ids=lambda c: "-".join(c[:2]) if c[0] == "anomaly" else c[0])
@pytest.mark.parametrize("kind", ["json-file", "folder"])
def test_a_db_that_is_no_store_is_a_clear_error_and_untouched(tmp_path: Path, command: list[str], kind: str) -> None:
    db = tmp_path / "catalog.json"
    if kind == "folder":
        db.mkdir()
    else:
        db.write_text('{"skus": {}}\n')
    before = sorted(p.name for p in tmp_path.iterdir())
    confirmed = tmp_path / "confirmed.jsonl"
    confirmed.write_text(json.dumps({"item_id": ITEM, "text": "crushed", "root_cause": "damaged_after_tunnel"}) + "\n")
    args = [a.format(tmp=tmp_path, confirmed=confirmed) for a in command]
    result = _run([*args, "--db", db])
    assert result.code == 2
    assert result.last.startswith(f"error: {db}: not a tunnelpi store (")
    assert db.is_dir() if kind == "folder" else db.read_text() == '{"skus": {}}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "confirmed.jsonl"])


# -- label needs the store and the item -------------------------------------------------------


@pytest.mark.parametrize("complaint", ["", "   "])
def test_an_empty_complaint_is_refused(tmp_path: Path, complaint: str) -> None:
    result = _run(["investigate", "--db", _store(tmp_path), "--item", ITEM, "--complaint", complaint])
    assert result.code == 2 and result.last == "error: --complaint is empty: give the customer's words"


def test_label_needs_an_existing_store_and_an_item_it_holds(tmp_path: Path) -> None:
    db = _store(tmp_path)
    label = ["label", "--label", "stain", "--decision", "confirm"]

    typo = tmp_path / "results" / "stroe.db"
    result = _run([*label, "--db", typo, "--item", ITEM])
    assert result.code == 2 and result.last == f"error: {typo}: no such store"
    assert not typo.exists()

    result = _run([*label, "--db", db, "--item", "NOPE"])
    assert result.code == 2 and result.last == f"error: {db}: item 'NOPE' is not in the store"

    result = _run([*label, "--db", db, "--item", ITEM, "--reviewer", "ana"])
    assert result.code == 0, result.output
    store = Store(db)
    assert [(r["item_id"], r["label"]) for r in store.labels()] == [(ITEM, "stain")]
    store.close()


# -- calibrate-investigator keeps the calibration it cannot replace ---------------------------


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", "{confirmed}: no confirmed complaints; {out} left as it was"),
        (b"\n\n", "{confirmed}: no confirmed complaints; {out} left as it was"),
        (
            b'{"item_id": "GONE-1", "text": "crushed", "root_cause": "damaged_after_tunnel"}\n',
            "{confirmed}: none of 1 complaint(s) could be investigated (1 about items not in {db}); {out} left as"
            " it was",
        ),
        (b"\xff\xfe\x00garbage", "not UTF-8 text"),
    ],
    ids=["empty", "blank-lines", "every-item-skipped", "not-utf8"],
)
def test_calibrate_investigator_without_usable_complaints_keeps_the_calibration(
    tmp_path: Path, content: bytes, error: str
) -> None:
    db = _store(tmp_path)
    model = tmp_path / "model"
    (db.parent / "run.json").write_text(json.dumps({"model_dir": str(model)}))
    out = model / "investigator" / "calibration.json"
    out.parent.mkdir(parents=True)
    fitted = json.dumps(
        {"version": 1, "prior_weight": 8.0, "rules": {"damage_visible": {"n": 9, "right": 8, "stated": 0.9}}}
    )
    out.write_text(fitted)
    confirmed = tmp_path / "confirmed.jsonl"
    confirmed.write_bytes(content)
    result = _run(["calibrate-investigator", "--db", db, "--confirmed", confirmed])
    assert result.code == 2
    assert (
        result.last.startswith(f"error: {confirmed}")
        and error.format(confirmed=confirmed, out=out, db=db) in result.last
    )
    assert out.read_text() == fitted


# -- a damaged run.json -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"model_dir": ', "malformed JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b"\xff\xfe{}", "not UTF-8 text"),
    ],
    ids=["truncated", "list", "not-utf8"],
)
def test_a_damaged_run_record_is_an_error_naming_it(tmp_path: Path, content: bytes, why: str) -> None:
    db = _store(tmp_path)
    run = db.parent / "run.json"
    run.write_bytes(content)
    with pytest.raises(RunRecordError, match=why):
        run_record(db)
    confirmed = tmp_path / "confirmed.jsonl"
    confirmed.write_text(json.dumps({"item_id": ITEM, "text": "crushed", "root_cause": "damaged_after_tunnel"}) + "\n")
    commands = [
        ["report", "--results", db.parent, "--out", tmp_path / "r.html"],
        ["investigate", "--db", db, "--item", ITEM, "--complaint", "box came crushed"],
        ["calibrate-investigator", "--db", db, "--confirmed", confirmed],
        ["calibrate-investigator", "--db", db, "--confirmed", confirmed, "--out", tmp_path / "cal.json"],
        ["patterns", "--db", db, "--out", tmp_path / "p.html"],
    ]
    for args in commands:
        result = _run(args)
        assert result.code == 2, (args, result.output)
        assert result.last.startswith(f"error: {run}: not a run record ("), (args, result.output)
        assert why in result.last
    assert run.read_bytes() == content
    assert not any((tmp_path / name).exists() for name in ("r.html", "cal.json", "p.html"))


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("verdicts.jsonl", b'{"item_id": \n', "verdicts.jsonl:1: malformed JSON"),
        ("verdicts.jsonl", b'{"item_id": "A"}\n', "verdicts.jsonl:1: not a verdict"),
        ("store.db", b'{"skus": {}}', "store.db: not a tunnelpi store"),
        ("investigations.jsonl", b"[1]\n", "investigations.jsonl:1: expected a JSON object"),
    ],
    ids=["verdicts-malformed", "verdicts-not-a-verdict", "store-not-sqlite", "investigations-not-objects"],
)
def test_report_names_the_damaged_file_of_a_results_folder(
    tmp_path: Path, name: str, content: bytes, error: str
) -> None:
    results = _store(tmp_path).parent
    (results / name).write_bytes(content)
    result = _run(["report", "--results", results, "--out", tmp_path / "r.html"])
    assert result.code == 2 and result.last.startswith(f"error: {results}/") and error in result.last
    assert not (tmp_path / "r.html").exists()


# -- anomaly score exits non-zero when an image failed ----------------------------------------


class _StubModel:
    """Scores every image as normal: the command's handling of bad images is what is tested."""

    config = SimpleNamespace(localize=False, image_size=32)

    def resolve(self, sku: str | None, category: str | None) -> str:
        return "default"

    def score_prepared(self, prepared: list, bank: str) -> SimpleNamespace:
        view = SimpleNamespace(z={"patch": 0.1}, heatmap=None)
        return SimpleNamespace(score=0.1, probability=0.02, anomalous=False, bank=bank, bank_kind="sku", views=[view])


def test_anomaly_score_scores_the_rest_and_exits_non_zero_on_a_bad_image(tmp_path: Path, monkeypatch) -> None:
    from detectors.anomaly.model import AnomalyModel

    monkeypatch.setattr(AnomalyModel, "load", classmethod(lambda cls, folder, runtime=None: _StubModel()))
    empty, grey = tmp_path / "zero.jpg", _image(tmp_path / "uniform.png", grey=True)
    empty.write_bytes(b"")
    good = _image(tmp_path / "good.png")
    result = _run(["anomaly", "score", "--model", tmp_path, "--runtime", "torch", empty, grey, good])
    assert result.code == 1
    assert f"{empty}: error: {empty}:" in result.output
    assert f"{grey}: error: {grey}: featureless" in result.output and "cam0" not in result.output
    assert f"{good}: normal" in result.output

    result = _run(["anomaly", "score", "--model", tmp_path, "--runtime", "torch", good])
    assert result.code == 0, result.output


# -- anomaly fit options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "error"),
    [
        (["--max-patches", "0"], "--max-patches must be at least 1, got 0"),
        (["--max-patches", "-5"], "--max-patches must be at least 1, got -5"),
        (["--image-size", "-32"], "--image-size must be a positive multiple of 32, got -32"),
        (["--image-size", "0"], "--image-size must be a positive multiple of 32, got 0"),
        (["--image-size", "100"], "--image-size must be a positive multiple of 32, got 100"),
        (["--calibration", "{empty}"], "--calibration {empty}: no readable images"),
        (["--normals", "{empty}"], "--normals {empty}: no readable images"),
    ],
    ids=["patches-0", "patches-negative", "size-negative", "size-0", "size-100", "empty-calibration", "empty-normals"],
)
def test_anomaly_fit_checks_its_options_before_fitting(tmp_path: Path, option: list[str], error: str) -> None:
    normals, empty = tmp_path / "normals", tmp_path / "empty"
    normals.mkdir()
    empty.mkdir()
    _image(normals / "a.png")
    out = tmp_path / "model"
    fill = {"empty": empty, "normals": normals}
    given = [] if "--normals" in option else ["--normals", normals]
    result = _run(["anomaly", "fit", *given, "--out", out, "--no-onnx", *(o.format(**fill) for o in option)])
    assert result.code == 2
    assert result.last == "error: " + error.format(**fill)
    assert not out.exists()


def test_enroll_checks_its_options_before_reading_the_dataset(tmp_path: Path) -> None:
    for option, error in [
        (["--image-size", "48"], "--image-size must be a positive multiple of 32, got 48"),
        (["--max-patches", "0"], "--max-patches must be at least 1, got 0"),
    ]:
        result = _run(["enroll", "--dataset", tmp_path / "absent", "--out", tmp_path / "m", *option])
        assert result.code == 2 and result.last == f"error: {error}"


# -- output paths of the wrong kind -----------------------------------------------------------


OUTPUTS = [
    (["anomaly", "fit", "--normals", "{normals}", "--no-onnx", "--out", "{file}"], "{file}: is a file, not a folder"),
    (["enroll", "--dataset", "{tmp}", "--out", "{file}"], "{file}: is a file, not a folder"),
    (["anomaly", "score", "--model", "{tmp}", "--heatmaps", "{file}", "{file}"], "{file}: is a file, not a folder"),
    (["investigate", "--db", "{db}", "--item", ITEM, "--complaint", "x", "--out", "{file}"], "{file}: is a file"),
    (["investigate", "--db", "{db}", "--item", ITEM, "--complaint", "x", "--out", "{file}/r"], "{file} is a file"),
    (["patterns", "--db", "{db}", "--out", "{folder}"], "{folder}: is a folder, not a file"),
    (["patterns", "--db", "{db}", "--out", "{file}/p.html"], "{file} is a file, not a folder"),
    (["patterns", "--db", "{db}", "--out", "{tmp}/p.json"], "name the HTML file"),
    (["report", "--results", "{results}", "--out", "{folder}"], "{folder}: is a folder, not a file"),
    (["report", "--results", "{results}", "--out", "{file}/r.html"], "{file} is a file, not a folder"),
    (["calibrate-investigator", "--db", "{db}", "--confirmed", "{file}", "--out", "{folder}"], "{folder}: is a folder"),
]


@pytest.mark.parametrize(("command", "error"), OUTPUTS, ids=[f"{i}-{c[0]}" for i, (c, _) in enumerate(OUTPUTS)])
def test_an_output_path_of_the_wrong_kind_is_refused_up_front(tmp_path: Path, command: list[str], error: str) -> None:
    db = _store(tmp_path)
    normals, folder, file = tmp_path / "normals", tmp_path / "existing", tmp_path / "catalog.json"
    normals.mkdir()
    _image(normals / "a.png")
    (folder / "keep").mkdir(parents=True)
    file.write_text("{}")
    fill = {"tmp": tmp_path, "db": db, "results": db.parent, "normals": normals, "folder": folder, "file": file}
    result = _run([a.format(**fill) for a in command])
    assert result.code == 2
    assert result.last.startswith("error: --") and error.format(**fill) in result.last
    assert file.read_text() == "{}" and [p.name for p in folder.iterdir()] == ["keep"]
