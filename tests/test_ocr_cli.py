"""`tunnelpi ocr`: the JSON-lines contract, catalog verdicts, and bad images that keep the batch going."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from pipeline.catalog import Catalog
from pipeline.cli import app
from pipeline.types import CatalogRecord, ExpiryPolicy, LotRecord
from tests.test_ocr_engines import render_lines

KEYS = {"image", "expiry", "status", "dates", "engine", "ms"}
DATE_KEYS = {"text", "date", "type", "confidence", "box"}


@pytest.fixture(scope="module")
def label(tmp_path_factory: pytest.TempPathFactory) -> Path:
    img, _ = render_lines(["MFG 01/02/2026", "EXP 15/12/2026"])
    path = tmp_path_factory.mktemp("ocr") / "label.png"
    Image.fromarray(img).save(path)
    return path


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cat = Catalog(
        skus={
            "DOG-FOOD": CatalogRecord(
                sku="DOG-FOOD", title="dog food", category="pet",
                expiry=ExpiryPolicy(carries_date=True, min_remaining_days=60),
            ),
            "TOWEL": CatalogRecord(
                sku="TOWEL", title="towel", category="home", expiry=ExpiryPolicy(carries_date=False)
            ),
        },
        lots={"L1": LotRecord(lot="L1", sku="DOG-FOOD", seller="acme", recorded_expiry="2027-03-01")},
    )  # fmt: skip
    path = tmp_path_factory.mktemp("cat") / "catalog.json"
    cat.save(path)
    return path


def run(*args: str):
    result = CliRunner().invoke(app, ["ocr", *args])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, lines


def test_json_contract(label: Path) -> None:
    result, [out] = run(str(label), "--today", "2026-11-22", "--json")
    assert result.exit_code == 0, result.output
    assert set(out) == KEYS and out["image"] == str(label)
    assert out["expiry"] == "2026-12-15" and out["status"] == "ok" and out["engine"] == "rapidocr"
    assert isinstance(out["ms"], float) and out["ms"] > 0
    assert all(set(d) == DATE_KEYS and len(d["box"]) == 4 for d in out["dates"])
    assert {d["date"]: d["type"] for d in out["dates"]} == {"2026-02-01": "manufactured", "2026-12-15": "expiry"}


def test_threads_change_the_time_not_the_read(label: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, [one] = run(str(label), "--today", "2026-11-22", "--threads", "1", "--json")
    _, [two] = run(str(label), "--today", "2026-11-22", "--threads", "2", "--json")
    assert {k: v for k, v in one.items() if k != "ms"} == {k: v for k, v in two.items() if k != "ms"}
    monkeypatch.setenv("TUNNELPI_OCR_THREADS", "many")
    result, lines = run(str(label), "--json")
    assert result.exit_code != 0 and not lines and "TUNNELPI_OCR_THREADS='many'" in result.output


def test_expired_against_the_skus_shelf_life(label: Path, catalog: Path) -> None:
    result, [out] = run(str(label), "--today", "2026-11-22", "--sku", "DOG-FOOD", "--catalog", str(catalog), "--json")
    assert result.exit_code == 0 and out["status"] == "expired"  # 23 days left, 60 required


def test_date_mismatch_against_the_lot(label: Path, catalog: Path) -> None:
    args = ["--today", "2026-09-01", "--sku", "DOG-FOOD", "--lot", "L1", "--catalog", str(catalog), "--json"]
    result, [out] = run(str(label), *args)
    assert result.exit_code == 0 and out["status"] == "date_mismatch"


def test_no_date_expected(label: Path, catalog: Path) -> None:
    _, [out] = run(str(label), "--sku", "TOWEL", "--catalog", str(catalog), "--json")
    assert out["status"] == "no_date_expected" and out["expiry"] is None


def test_tesseract_engine(label: Path) -> None:
    _, [out] = run(str(label), "--today", "2026-11-22", "--engine", "tesseract", "--json")
    assert out["engine"] == "tesseract" and out["expiry"] == "2026-12-15"


def test_bad_images_give_error_lines_and_the_batch_goes_on(label: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (4, 4)).save(tiny)
    huge = tmp_path / "huge.png"
    Image.new("L", (8000, 6000)).save(huge)  # 48 MP: over the decoder's pixel limit
    missing = tmp_path / "missing.jpg"
    paths = [corrupt, empty, label, tiny, huge, missing]
    result, lines = run(*map(str, paths), "--today", "2026-11-22", "--json")
    assert result.exit_code == 1
    assert [line["image"] for line in lines] == [str(p) for p in paths]
    status = {Path(line["image"]).name: line for line in lines}
    assert status["label.png"]["status"] == "ok"
    for name, why in [
        ("corrupt.jpg", "corrupt or truncated"),
        ("empty.png", "empty"),
        ("tiny.png", "smaller than"),
        ("huge.png", "pixel limit"),
        ("missing.jpg", "no such image"),
    ]:
        assert status[name]["status"] == "error" and why in status[name]["error"], status[name]
        assert set(status[name]) == KEYS | {"error"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "easyocr"], "unknown engine"),
        (["--today", "22.11.2026"], "YYYY-MM-DD"),
        (["--today", "0001-01-01"], "must lie between"),
        (["--sku", "DOG-FOOD"], "need --catalog"),
    ],
)
def test_bad_options_fail_clearly(label: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["ocr", str(label), *args, "--json"])
    assert result.exit_code == 2 and message in result.output


def test_unknown_sku(label: Path, catalog: Path) -> None:
    result = CliRunner().invoke(app, ["ocr", str(label), "--sku", "NOPE", "--catalog", str(catalog)])
    assert result.exit_code == 2 and "unknown SKU" in result.output


def test_an_old_photo_reads_as_expired_not_unreadable(label: Path, catalog: Path) -> None:
    """Years after the print, a photo of unknown age still gives its date; on the line (with a SKU)
    an expiry that old is taken for a misread and sent to review."""
    _, [out] = run(str(label), "--today", "2031-06-01", "--json")
    assert out["expiry"] == "2026-12-15" and out["status"] == "expired"
    _, [out] = run(str(label), "--today", "2031-06-01", "--sku", "DOG-FOOD", "--catalog", str(catalog), "--json")
    assert out["expiry"] is None and out["status"] == "unreadable"


def test_a_verdict_a_second_read_doubts_says_review(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An expired read that a second read of the print contradicts stays `expired` (the contract's
    statuses are fixed) and says why it is only a review; a confirmed one adds nothing."""
    import numpy as np

    import detectors.ocr_expiry.engines as engines
    from tests.test_ocr_engines import SharpOrBlurredEngine

    photo = tmp_path / "print.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 150, 3), dtype=np.uint8)).save(photo)
    for blurred, review in (("EXP 21/12/2028", True), ("EXP 21/12/2026", False)):
        engine = SharpOrBlurredEngine("EXP 21/12/2026", blurred)
        monkeypatch.setattr(engines, "get_engine", lambda *_, engine=engine, **__: engine)
        result, [out] = run(str(photo), "--today", "2027-01-05", "--json")
        assert result.exit_code == 0 and out["status"] == "expired" and out["expiry"] == "2026-12-21"
        if review:
            assert set(out) == KEYS | {"review"} and "2028-12-21" in out["review"]
        else:
            assert set(out) == KEYS
