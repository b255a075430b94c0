"""Catalog loading: malformed files and missing fields give errors that say where."""

from __future__ import annotations

import json

import pytest

from pipeline.catalog import Catalog, CatalogError, UnknownSKU

GOOD = {
    "skus": [
        {"sku": "B-TWIN", "title": "Sheets twin", "category": "bedding", "attributes": {"size": "TWIN"}},
        {
            "sku": "F-1",
            "title": "Cereal",
            "category": "food_box",
            "expiry": {"carries_date": True, "min_remaining_days": 30, "date_order": "DMY"},
        },
    ],
    "lots": [{"lot": "L1", "sku": "F-1", "seller": "acme", "recorded_expiry": "2027-03-31"}],
    "sellers": ["acme"],
}


def test_round_trip(tmp_path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(GOOD))
    catalog = Catalog.load(path)
    assert catalog.get("F-1").expiry.min_remaining_days == 30
    assert str(catalog.lot("L1").recorded_expiry) == "2027-03-31"
    assert catalog.categories() == {"bedding": ["B-TWIN"], "food_box": ["F-1"]}
    assert catalog.category_by_sku() == {"B-TWIN": "bedding", "F-1": "food_box"}
    catalog.save(tmp_path / "again.json")
    assert Catalog.load(tmp_path / "again.json") == catalog


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "malformed JSON"),
        ("[]", "'skus' list"),
        (json.dumps({"skus": [{"sku": "A", "category": "x"}]}), "SKU A: title"),
        (
            json.dumps({"skus": [{"sku": "A", "title": "t", "category": "c", "expiry": {"date_order": "XYZ"}}]}),
            "date_order",
        ),
        (json.dumps({"skus": [], "lots": [{"lot": "L"}]}), "lot #0"),
    ],
    ids=["malformed", "not-object", "missing-title", "bad-order", "bad-lot"],
)
def test_bad_catalogs(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(content)
    with pytest.raises(CatalogError, match=message):
        Catalog.load(path)


def test_missing_file_and_unknown_sku(tmp_path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        Catalog.load(tmp_path / "nope.json")
    with pytest.raises(UnknownSKU, match="unknown SKU 'NOPE'"):
        Catalog.from_dict(GOOD).get("NOPE")
