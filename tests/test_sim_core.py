"""Simulator contract: catalog, date prints, masks that match pixels, schema, determinism, CLI."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.catalog import Catalog
from pipeline.cli import app
from pipeline.dataset import Dataset
from pipeline.types import GroundTruth
from tunnel_sim import (
    CAMERAS,
    FORMATS,
    KEYWORDS,
    build_catalog,
    format_date,
    generate_dataset,
    render_date_print,
    render_item,
)
from tunnel_sim.catalog import DEFAULT_TODAY
from tunnel_sim.dates import iso_as_printed
from tunnel_sim.feedback import FOREIGN, PHYSICAL_CLAIMS, ROOT_CAUSES, generate_feedback
from tunnel_sim.generate import plan_item

CATEGORIES = {"pet_food", "phone_case", "apparel", "book", "sports", "bedding", "food", "pharma", "bottle", "footwear"}


@pytest.fixture(scope="module")
def sim():
    return build_catalog(5)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "ds"
    generate_dataset(out, 10, 11, references_per_sku=1, workers=2)
    return out


def test_catalog_covers_categories_and_round_trips(sim, tmp_path):
    catalog = sim.catalog
    assert len(catalog.skus) >= 30
    assert set(catalog.categories()) >= CATEGORIES
    sizes = {r.attributes.get("size") for r in catalog.skus.values() if r.category == "bedding"}
    assert {"TWIN", "FULL", "QUEEN", "KING"} <= sizes
    assert any("no_shoebox" in r.packaging_variants for r in catalog.skus.values())
    assert {r.expiry.date_order for r in catalog.skus.values() if r.expiry.carries_date} == {"DMY", "MDY", "YMD"}
    kinds = {p.kind for p in sim.profiles.values()}
    assert {"damage", "date_mismatch"} <= kinds
    catalog.save(tmp_path / "catalog.json")
    assert Catalog.load(tmp_path / "catalog.json") == catalog


@pytest.mark.parametrize(
    ("fmt", "language", "expected_text", "expected_iso"),
    [
        ("DD.MM.YYYY", "de", "07.03.2027", "2027-03-07"),
        ("DD/MM/YY", "fr", "07/03/27", "2027-03-07"),
        ("MM/DD/YYYY", "en", "03/07/2027", "2027-03-07"),
        ("MM/YY", "en", "03/27", "2027-03"),
        ("YYYY.MM.DD", "ko", "2027.03.07", "2027-03-07"),
        ("YYYY-MM-DD", "ja", "2027-03-07", "2027-03-07"),
        ("DD MON YYYY", "en", "07 MAR 2027", "2027-03-07"),
        ("MONYYYY", "en", "MAR2027", "2027-03"),
        ("MON YY", "de", "MRZ 27", "2027-03"),
        ("YYYYMMDD", "en", "20270307", "2027-03-07"),
        ("MM.YYYY", "it", "03.2027", "2027-03"),
        ("DD MONTH YYYY", "es", "07 marzo 2027", "2027-03-07"),
        ("YYYY年MM月DD日", "ja", "2027年03月07日", "2027-03-07"),
    ],
)
def test_date_formats(fmt, language, expected_text, expected_iso):
    value = date(2027, 3, 7)
    assert format_date(value, fmt, language) == expected_text
    assert iso_as_printed(value, fmt) == expected_iso


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("style", ["printed", "dot_matrix", "inkjet"])
def test_every_format_renders_with_matching_truth(fmt, style):
    language = "ja" if "年" in fmt else "en"
    image, lines = render_date_print(date(2026, 12, 31), manufactured=date(2026, 1, 2), date_format=fmt,
                                     language=language, style=style, seed=3)  # fmt: skip
    assert image.ndim == 3 and image.dtype == np.uint8
    assert (image < 100).any(), "ink must be visible"
    assert lines.expiry_iso == ("2026-12-31" if FORMATS[fmt] == "day" else "2026-12")
    assert format_date(date(2026, 12, 31), fmt, language) in lines.lines[lines.expiry_line]
    assert lines.manufactured_iso == "2026-01-02"


def test_keywords_cover_languages():
    assert len(KEYWORDS) >= 8
    joined = " ".join(t for k in KEYWORDS.values() for t in k.expiry)
    for word in ("MHD", "DLC", "CAD", "Scad.", "賞味期限", "유통기한", "HSD", "THT", "Best before"):
        assert word in joined


# (sku, defect): every defect type on a product it applies to
DEFECT_CASES = [
    ("FOOD-CEREAL-DE-01", "torn_box"),
    ("FOOD-COOKIES-FR-01", "crushed_corner"),
    ("BOOK-NOVEL-0001", "bent_cover"),
    ("BOTTLE-JUICE-ES-1L", "broken_seal"),
    ("SHEET-SET-KING", "stain"),
    ("PET-DOGFOOD-CHK-12KG", "puncture"),
    ("TENNIS-BALLS-3PK", "empty_container"),
    ("BOTTLE-JUICE-ES-1L", "empty_container"),
    ("SHEET-SET-TWIN", "wrong_variant_label"),
    ("TEE-BASIC-NAVY-M", "wrong_colour"),
    ("PHARMA-IBU-400-DE", "wrong_item"),
    ("FOOD-TEA-JP-01", "expired_date"),
    ("FOOD-RAMEN-KR-01", "unreadable_date"),
    ("TEE-BASIC-NAVY-L", "missing_label"),
    ("FOOD-PASTA-IT-01", "date_mismatch"),
]


@pytest.mark.parametrize(("sku", "defect"), DEFECT_CASES)
def test_defect_mask_marks_changed_pixels(sim, sku, defect):
    record = sim.catalog.get(sku)
    lot_date = date(2027, 6, 30)
    printed = date(2027, 2, 1) if defect == "date_mismatch" else lot_date
    clean = render_item(record, seed=21, printed_expiry=lot_date, lot_code="L0001")
    bad = render_item(record, defects=[defect], seed=21, printed_expiry=printed, lot_code="L0001")
    assert [d.type for d in bad.truth.defects] == [defect]
    assert bad.truth.defects[0].visible
    assert bad.masks[defect], "a visible defect needs a mask in at least one frame"
    changed_inside = 0
    for cam, mask in bad.masks[defect].items():
        diff = np.abs(bad.images[cam].astype(int) - clean.images[cam].astype(int)).max(axis=2) > 25
        changed_inside += int((diff & mask).sum())
        outside = diff & ~mask & clean.item_masks[cam] & bad.item_masks[cam]
        if defect != "wrong_item":  # a different product changes the silhouette itself
            assert outside.mean() < 0.01, "pixels should only change where the mask says"
    assert changed_inside > 20


def test_render_is_deterministic_and_seed_sensitive(sim):
    record = sim.catalog.get("FOOD-COFFEE-NL-01")
    a = render_item(record, defects=["stain"], seed=4)
    b = render_item(record, defects=["stain"], seed=4)
    c = render_item(record, defects=["stain"], seed=5)
    images, truth, _masks = a
    assert set(images) == set(CAMERAS)
    assert all(images[cam].shape == (480, 640, 3) for cam in CAMERAS)
    assert all(np.array_equal(images[cam], b.images[cam]) for cam in CAMERAS)
    assert truth == b.truth
    assert not np.array_equal(images["top"], c.images["top"])


def test_truth_records_printed_dates(sim):
    record = sim.catalog.get("FOOD-CEREAL-DE-01")
    item = render_item(record, seed=2, printed_expiry=date(2027, 5, 31), manufactured=date(2026, 5, 1))
    assert item.truth.printed_expiry in {"2027-05-31", "2027-05"}
    assert item.truth.printed_manufactured == "2026-05-01"
    expired = render_item(record, defects=["expired_date"], seed=2, printed_expiry=date(2027, 5, 31))
    assert expired.truth.printed_expiry[:7] < DEFAULT_TODAY.isoformat()[:7] or expired.truth.printed_expiry < (
        DEFAULT_TODAY.isoformat()
    )


def test_dataset_schema_round_trips(small_dataset):
    ds = Dataset.open(small_dataset)
    assert ds.today == DEFAULT_TODAY
    assert {"generator", "version", "seed", "today", "counts"} <= set(ds.info)
    items = list(ds.items())
    assert len(items) == 10
    refs = list(ds.references())
    assert {r.split for r in refs} <= {"enrol", "calibration"}
    assert len(refs) == len(ds.catalog.skus)
    for entry in items + refs:
        assert isinstance(entry.truth, GroundTruth)
        assert entry.capture.sku in ds.catalog
        assert ds.catalog.lot(entry.capture.lot) is not None
        images = entry.capture.images()
        assert set(images) == set(CAMERAS)
        for defect in entry.truth.defects:
            assert bool(defect.masks) == defect.visible, "visible defects have masks, transit damage none"
            for path in defect.masks.values():
                assert (small_dataset / path).is_file()
    for entry in refs:
        assert not entry.truth.is_defective
    for line in ds.feedback():
        assert line["truth"]["root_cause"] in ROOT_CAUSES
        assert {"complaint_id", "item_id", "order_id", "created_at", "language", "text"} <= set(line)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "dataset.json"):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_dataset_bytes_do_not_depend_on_workers(tmp_path):
    generate_dataset(tmp_path / "a", 6, 3, references_per_sku=0, workers=1)
    generate_dataset(tmp_path / "b", 6, 3, references_per_sku=0, workers=2)
    generate_dataset(tmp_path / "c", 6, 4, references_per_sku=0, workers=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def _truth_only_manifest(sim, seed: int, items: int) -> list[dict]:
    """Manifest lines from item plans alone (no pixels), for feedback statistics."""
    out = []
    for i in range(items):
        plan = plan_item(sim, seed, i, "test", today=DEFAULT_TODAY, defect_rate=0.25)
        record = sim.catalog.get(plan.sku)
        defects = [{"type": d, "visible": d != "transit_damage", "masks": {}, "details": {}} for d in plan.defects]
        dated = record.expiry.carries_date
        out.append({
            "item_id": plan.item_id, "sku": plan.sku,
            "truth": {"defects": defects, "benign": list(plan.benign),
                      "printed_expiry": "2027-05-31" if dated else None,
                      "printed_manufactured": "2026-05-01" if dated else None},
        })  # fmt: skip
    return out


def test_feedback_has_the_hard_cases(sim):
    manifest = _truth_only_manifest(sim, 5, 1000)
    complaints = generate_feedback(manifest, sim, seed=5, today=DEFAULT_TODAY)
    assert len(complaints) >= 300
    causes = {c["truth"]["root_cause"] for c in complaints}
    assert {"damaged_after_tunnel", "customer_misperception", "damaged_before_shipment", "inconclusive"} <= causes
    assert causes <= set(ROOT_CAUSES)
    assert any(c["truth"]["injection"] and "ignore previous instructions" in c["text"].lower() for c in complaints) or (
        sum(c["truth"]["injection"] for c in complaints) >= 5
    )
    assert any(c["language"] != "en" for c in complaints)
    assert len({c["complaint_id"] for c in complaints}) == len(complaints)


def test_foreign_complaints_say_what_their_truth_claims(sim):
    """A complaint written in another language carries that language's phrase for its own claim
    (physical damage of any kind may read as plain "damaged"), never another problem's."""
    manifest = _truth_only_manifest(sim, 5, 1000)
    complaints = generate_feedback(manifest, sim, seed=5, today=DEFAULT_TODAY)
    foreign = [c for c in complaints if c["language"] != "en"]
    assert foreign
    for c in foreign:
        claimed, phrases = c["truth"]["claimed_problem"], FOREIGN[c["language"]]
        key = claimed if claimed in phrases else "damaged"
        assert key == claimed or claimed in PHYSICAL_CLAIMS, c
        head = phrases[key].split("{")[0]
        assert c["text"].startswith(head), c


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sim", "generate", "--out", "{tmp}/x", "--items", "0"], "--items"),
        (["sim", "generate", "--out", "{tmp}/full", "--items", "2"], "not empty"),
        (["sim", "generate", "--out", "{tmp}/x", "--items", "2", "--today", "22/11/2026"], "--today"),
        (["sim", "generate", "--out", "{tmp}/x", "--items", "2", "--workers", "0"], "--workers"),
        (["sim", "preview", "{tmp}/missing", "--out", "{tmp}/s.png"], "not a dataset"),
    ],
)
def test_cli_bad_arguments(tmp_path, args, message):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    result = CliRunner().invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_generate_and_preview(tmp_path):
    runner = CliRunner()
    out = tmp_path / "ds"
    result = runner.invoke(app, ["sim", "generate", "--out", str(out), "--items", "3", "--seed", "1",
                                 "--references-per-sku", "0", "--today", "2026-12-01", "--workers", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "items/s" in result.output
    assert Dataset.open(out).today == date(2026, 12, 1)
    sheet = tmp_path / "sheet.png"
    result = runner.invoke(app, ["sim", "preview", str(out), "--out", str(sheet)])
    assert result.exit_code == 0, result.output
    assert sheet.stat().st_size > 10_000
