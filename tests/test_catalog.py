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
        (json.dumps({"skus": 5}), "'skus' must be a list"),
        (json.dumps({"skus": [], "lots": 7}), "'lots' must be a list"),
        (json.dumps({"skus": [], "sellers": 5}), "'sellers' must be a list"),
        (json.dumps({"skus": [], "sellers": [{"name": "acme"}]}), "list of names"),
        (
            json.dumps(
                {"skus": [{"sku": "A", "title": "t", "category": "c", "expiry": {"min_remaining_days": 10**9}}]}
            ),
            "SKU A: expiry.min_remaining_days",
        ),
        (
            json.dumps({"skus": [{"sku": "A", "title": "t", "category": "c", "colour_rgb": [1000, -5, 300]}]}),
            "colour_rgb",
        ),
    ],
    ids=[
        "malformed",
        "not-object",
        "missing-title",
        "bad-order",
        "bad-lot",
        "skus-not-list",
        "lots-not-list",
        "sellers-not-list",
        "seller-not-name",
        "days-overflow",
        "colour-out-of-range",
    ],
)
def test_bad_catalogs(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(content)
    with pytest.raises(CatalogError, match=message):
        Catalog.load(path)


def test_an_unreadable_catalog_file_is_a_catalog_error(tmp_path) -> None:
    (tmp_path / "latin1.json").write_bytes('{"skus": [], "sellers": ["Müller"]}'.encode("latin-1"))
    with pytest.raises(CatalogError, match="not UTF-8"):
        Catalog.load(tmp_path / "latin1.json")
    with pytest.raises(CatalogError, match="cannot read the catalog"):
        Catalog.load(tmp_path)  # a folder


def test_missing_file_and_unknown_sku(tmp_path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        Catalog.load(tmp_path / "nope.json")
    with pytest.raises(UnknownSKU, match="unknown SKU 'NOPE'"):
        Catalog.from_dict(GOOD).get("NOPE")
