"""The simulated catalog: SKUs across fulfillment-center categories, sellers and inbound lots.

Some lots are systematically bad (one damage type at a high rate, a printed expiry that
differs from the inventory record, or short-dated stock), so lot isolation and pattern
reports have real structure to find.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

import numpy as np

from pipeline.catalog import Catalog
from pipeline.types import CatalogRecord, ExpiryPolicy, LotRecord
from tunnel_sim.dates import MARKETS

DEFAULT_TODAY = date(2026, 11, 22)

COLOURS: dict[str, tuple[int, int, int]] = {
    "navy": (28, 40, 84),
    "white": (236, 236, 232),
    "black": (30, 30, 32),
    "red": (190, 32, 40),
    "grey": (128, 130, 134),
    "clear": (214, 222, 226),
    "blue": (36, 96, 190),
    "green": (46, 120, 70),
    "yellow": (232, 196, 40),
    "orange": (232, 120, 30),
    "brown": (120, 80, 48),
    "pink": (226, 130, 160),
}
"""Colour names used in attributes, with the sRGB the catalog records."""

SELLERS = (
    "acme-foods",
    "northwind-pets",
    "bluebay-apparel",
    "kiko-trading",
    "sunrise-pharma",
    "paperleaf-books",
    "courtside-sports",
    "dreamweave-home",
    "stride-footwear",
    "case-republic",
    "mercato-import",
    "hanok-market",
)

CATEGORY_SELLERS: dict[str, tuple[str, ...]] = {
    "pet_food": ("northwind-pets", "kiko-trading"),
    "phone_case": ("case-republic", "kiko-trading"),
    "apparel": ("bluebay-apparel", "kiko-trading"),
    "book": ("paperleaf-books",),
    "sports": ("courtside-sports", "kiko-trading"),
    "bedding": ("dreamweave-home", "kiko-trading"),
    "food": ("acme-foods", "mercato-import", "hanok-market"),
    "pharma": ("sunrise-pharma",),
    "bottle": ("acme-foods", "mercato-import"),
    "footwear": ("stride-footwear", "kiko-trading"),
}

SHELF_LIFE_DAYS: dict[str, int] = {"pet_food": 540, "food": 360, "pharma": 900, "bottle": 420}
"""Typical shelf life at production, per dated category."""

LotKind = Literal["normal", "damage", "date_mismatch", "short_dated"]


@dataclass(frozen=True)
class LotProfile:
    """How a lot behaves in the shift (simulator truth, not part of the catalog)."""

    kind: LotKind = "normal"
    defect: str | None = None
    rate: float = 0.0
    printed_expiry: date | None = None
    """What the lot's packages really carry (differs from the record for date_mismatch)."""
    manufactured: date | None = None


@dataclass
class SimCatalog:
    """The catalog file's content plus each lot's behaviour."""

    catalog: Catalog
    profiles: dict[str, LotProfile] = field(default_factory=dict)

    def lots_for(self, sku: str) -> list[LotRecord]:
        return [lot for lot in self.catalog.lots.values() if lot.sku == sku]


def _record(
    sku: str,
    title: str,
    category: str,
    colour: str,
    *,
    market: str = "US",
    attributes: dict[str, str] | None = None,
    dated: bool = False,
    min_remaining_days: int = 0,
    month_precision_ok: bool = True,
    variants: tuple[str, ...] = ("standard",),
) -> CatalogRecord:
    language, order = MARKETS[market]
    attrs = {"colour": colour, **(attributes or {})}
    return CatalogRecord(
        sku=sku,
        title=title,
        category=category,
        attributes=attrs,
        colour_rgb=list(COLOURS[colour]),
        expiry=ExpiryPolicy(
            carries_date=dated,
            min_remaining_days=min_remaining_days,
            date_order=order,
            month_precision_ok=month_precision_ok,
        ),
        market=market,
        label_languages=[language] if language == "en" else [language, "en"],
        packaging_variants=list(variants),
    )


def catalog_records() -> list[CatalogRecord]:
    """The fixed SKU list (41 SKUs in 10 categories); lots vary with the seed, SKUs do not."""
    recs: list[CatalogRecord] = []
    for sku, title, market, colour, weight in (
        ("PET-DOGFOOD-CHK-12KG", "Barkwell Adult Chicken", "DE", "orange", "12 kg"),
        ("PET-DOGFOOD-LMB-03KG", "Barkwell Lamb & Rice", "GB", "green", "3 kg"),
        ("PET-DOGFOOD-PUP-07KG", "Happy Paws Puppy", "US", "blue", "7 kg"),
    ):
        recs.append(
            _record(
                sku,
                title,
                "pet_food",
                colour,
                market=market,
                attributes={"size": weight},
                dated=True,
                min_remaining_days=90,
            )
        )
    for sku, model, colour in (
        ("PHONE-CASE-P15-BLK", "P15", "black"),
        ("PHONE-CASE-P15-RED", "P15", "red"),
        ("PHONE-CASE-P16-PNK", "P16", "pink"),
    ):
        recs.append(
            _record(sku, f"Armorlite case for Phone {model}", "phone_case", colour, attributes={"model": model})
        )
    for size in ("S", "M", "L", "XL"):
        recs.append(
            _record(f"TEE-BASIC-NAVY-{size}", "Basic crew T-shirt", "apparel", "navy", attributes={"size": size})
        )
    recs.append(_record("TEE-BASIC-WHITE-M", "Basic crew T-shirt", "apparel", "white", attributes={"size": "M"}))
    for sku, title, colour in (
        ("BOOK-NOVEL-0001", "The Quiet Harbour", "blue"),
        ("BOOK-COOK-0002", "Everyday Pasta", "yellow"),
        ("BOOK-KIDS-0003", "Milo and the Moon", "pink"),
    ):
        recs.append(_record(sku, title, "book", colour))
    for sku, count, height in (("TENNIS-BALLS-3PK", "3", "210"), ("TENNIS-BALLS-4PK", "4", "275")):
        recs.append(
            _record(
                sku,
                f"Championship tennis balls, {count} pack",
                "sports",
                "yellow",
                attributes={"count": count, "height_mm": height},
            )
        )
    for size in ("TWIN", "FULL", "QUEEN", "KING"):
        recs.append(_record(f"SHEET-SET-{size}", "Percale sheet set", "bedding", "white", attributes={"size": size}))
    recs.append(_record("DUVET-COVER-KING-GRY", "Linen duvet cover", "bedding", "grey", attributes={"size": "KING"}))
    for sku, title, market, colour, min_days, month_ok in (
        ("FOOD-CEREAL-DE-01", "Haferflocken Kernig", "DE", "yellow", 60, True),
        ("FOOD-COOKIES-FR-01", "Petits Beurre", "FR", "red", 45, True),
        ("FOOD-TEA-JP-01", "Sencha Green Tea", "JP", "green", 60, False),
        ("FOOD-RAMEN-KR-01", "Spicy Ramyun 5 pack", "KR", "red", 30, False),
        ("FOOD-PASTA-IT-01", "Spaghetti n.5", "IT", "blue", 90, True),
        ("FOOD-COFFEE-NL-01", "Koffiebonen Donker", "NL", "brown", 60, True),
        ("FOOD-CRACKERS-US-01", "Whole Wheat Crackers", "US", "orange", 30, True),
        ("FOOD-BISCUIT-BR-01", "Biscoito de Polvilho", "BR", "yellow", 30, True),
        ("FOOD-RICE-ES-01", "Arroz Bomba", "ES", "white", 90, True),
        ("FOOD-SNACK-VN-01", "Bánh Quy Dừa", "VN", "green", 30, False),
    ):
        recs.append(
            _record(
                sku,
                title,
                "food",
                colour,
                market=market,
                dated=True,
                min_remaining_days=min_days,
                month_precision_ok=month_ok,
            )
        )
    for sku, title, market, colour in (
        ("PHARMA-IBU-400-DE", "Ibuprofen 400 mg, 20 Tabletten", "DE", "white"),
        ("PHARMA-VITC-500-US", "Vitamin C 500 mg, 60 tablets", "US", "orange"),
        ("PHARMA-COLD-GB", "Cold & Flu Relief, 16 capsules", "GB", "blue"),
    ):
        recs.append(_record(sku, title, "pharma", colour, market=market, dated=True, min_remaining_days=180))
    for sku, title, market, colour, dated in (
        ("BOTTLE-JUICE-ES-1L", "Zumo de Naranja 1 L", "ES", "orange", True),
        ("BOTTLE-OLIVEOIL-IT-750", "Olio Extra Vergine 750 ml", "IT", "green", True),
        ("BOTTLE-WATER-FR-1L", "Eau Minérale 1 L", "FR", "clear", True),
        ("BOTTLE-SHAMPOO-US-400", "Daily Shampoo 400 ml", "US", "blue", False),
    ):
        recs.append(_record(sku, title, "bottle", colour, market=market, dated=dated, min_remaining_days=60))
    for sku, title, colour, size in (
        ("SNEAKER-RUN-BLU-42", "Stride Runner", "blue", "EU 42"),
        ("SNEAKER-RUN-BLU-44", "Stride Runner", "blue", "EU 44"),
        ("SNEAKER-CANVAS-WHT-40", "Stride Canvas Low", "white", "EU 40"),
    ):
        recs.append(
            _record(sku, title, "footwear", colour, attributes={"size": size}, variants=("shoebox", "no_shoebox"))
        )
    return recs


def build_catalog(seed: int, *, today: date = DEFAULT_TODAY) -> SimCatalog:
    """SKUs, sellers and 2-4 lots per SKU, some of them systematically bad."""
    rng = np.random.default_rng([seed, 0xCA7])
    records = catalog_records()
    lots: dict[str, LotRecord] = {}
    profiles: dict[str, LotProfile] = {}
    for record in records:
        sellers = CATEGORY_SELLERS[record.category]
        for _ in range(int(rng.integers(2, 5))):
            lot_id = f"L{len(lots) + 1:04d}"
            seller = sellers[int(rng.integers(len(sellers)))]
            recorded, manufactured = None, None
            if record.expiry.carries_date:
                shelf = SHELF_LIFE_DAYS[record.category]
                remaining = int(rng.integers(record.expiry.min_remaining_days + 40, shelf))
                recorded = today + timedelta(days=remaining)
                manufactured = recorded - timedelta(days=shelf)
            lots[lot_id] = LotRecord(
                lot=lot_id,
                sku=record.sku,
                seller=seller,
                recorded_expiry=recorded,
                quantity=int(rng.integers(200, 2400)),
            )
            profiles[lot_id] = LotProfile(printed_expiry=recorded, manufactured=manufactured)
    _assign_bad_lots(rng, records, lots, profiles, today)
    catalog = Catalog(skus={r.sku: r for r in records}, lots=lots, sellers=list(SELLERS))
    return SimCatalog(catalog=catalog, profiles=profiles)


def _assign_bad_lots(
    rng: np.random.Generator,
    records: list[CatalogRecord],
    lots: dict[str, LotRecord],
    profiles: dict[str, LotProfile],
    today: date,
) -> None:
    """Turn some lots bad: about 1 in 8 lots gets a damage pattern, a few dated lots wrong dates."""
    from tunnel_sim.defects import PHYSICAL_DEFECTS, applicable_defects

    by_sku = {r.sku: r for r in records}
    lot_ids = list(lots)
    order = rng.permutation(len(lot_ids))
    mismatches = shorts = 0
    for pos in order:
        lot = lots[lot_ids[pos]]
        record = by_sku[lot.sku]
        base = profiles[lot.lot]
        if record.expiry.carries_date and lot.recorded_expiry is not None:
            if mismatches < 3 and rng.random() < 0.25:
                shift = int(rng.choice([-1, 1])) * int(rng.integers(45, 200))
                printed = lot.recorded_expiry + timedelta(days=shift)
                profiles[lot.lot] = LotProfile("date_mismatch", "date_mismatch", 1.0, printed, base.manufactured)
                mismatches += 1
                continue
            if shorts < 2 and rng.random() < 0.15:
                printed = today - timedelta(days=int(rng.integers(5, 60)))
                lots[lot.lot] = lot.model_copy(update={"recorded_expiry": printed})
                profiles[lot.lot] = LotProfile(
                    "short_dated",
                    "expired_date",
                    1.0,
                    printed,
                    printed - timedelta(days=SHELF_LIFE_DAYS[record.category]),
                )
                shorts += 1
                continue
        if rng.random() < 0.12:
            options = [d for d in applicable_defects(record) if d in PHYSICAL_DEFECTS]
            if options:
                defect = str(options[int(rng.integers(len(options)))])
                profiles[lot.lot] = LotProfile(
                    "damage", defect, float(rng.uniform(0.4, 0.75)), base.printed_expiry, base.manufactured
                )
