"""A hand-built tunnel store for investigator tests: rendered frames, verdicts and findings."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from pipeline.catalog import Catalog
from pipeline.store import Store
from pipeline.types import (
    Action,
    CatalogRecord,
    Evidence,
    ExpiryPolicy,
    Finding,
    Frame,
    ItemCapture,
    LotRecord,
    Verdict,
)

SHIPPED = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def catalog() -> Catalog:
    sheets = [
        CatalogRecord(
            sku=f"SHEET-SET-{s}",
            title="Percale sheet set",
            category="bedding",
            attributes={"size": s, "colour": "white"},
            colour_rgb=[236, 236, 232],
        )
        for s in ("TWIN", "KING")
    ]
    cereal = CatalogRecord(
        sku="FOOD-CEREAL-01",
        title="Crunchy Oat Cereal",
        category="food",
        attributes={"colour": "yellow"},
        colour_rgb=[232, 196, 40],
        expiry=ExpiryPolicy(carries_date=True, min_remaining_days=30, date_order="DMY"),
    )
    shoes = CatalogRecord(
        sku="SNEAKER-42",
        title="Stride Runner",
        category="footwear",
        attributes={"size": "EU 42"},
        colour_rgb=[36, 96, 190],
        packaging_variants=["shoebox", "no_shoebox"],
    )
    lots = [
        LotRecord(lot="L1", sku="SHEET-SET-TWIN", seller="dreamweave-home", quantity=100),
        LotRecord(lot="L2", sku="FOOD-CEREAL-01", seller="acme-foods", recorded_expiry=date(2027, 6, 30), quantity=50),
        LotRecord(lot="L3", sku="SNEAKER-42", seller="stride-footwear", quantity=20),
        LotRecord(lot="L4", sku="FOOD-CEREAL-01", seller="acme-foods", recorded_expiry=date(2026, 10, 1), quantity=50),
    ]
    return Catalog(
        skus={r.sku: r for r in [*sheets, cereal, shoes]}, lots={lot.lot: lot for lot in lots}, sellers=["acme-foods"]
    )


def _font(size: int) -> ImageFont.FreeTypeFont:
    import matplotlib

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans-Bold.ttf"), size)


def render(path: Path, lines: list[str], colour: tuple[int, int, int] = (236, 236, 232)) -> None:
    """A box of the given colour on a dark belt, with big printed text lines."""
    img = Image.new("RGB", (640, 480), (60, 62, 66))
    draw = ImageDraw.Draw(img)
    draw.rectangle([110, 80, 530, 400], fill=colour, outline=(20, 20, 20), width=3)
    for i, line in enumerate(lines):
        draw.text((150, 120 + i * 80), line, fill=(15, 15, 15), font=_font(48))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, quality=95)


def add_item(
    store: Store,
    root: Path,
    item_id: str,
    sku: str,
    lot: str,
    lines: list[str],
    findings: list[Finding],
    stages: tuple[str, ...] = ("localize", "ocr_expiry", "anomaly"),
    colour: tuple[int, int, int] = (236, 236, 232),
) -> None:
    rel = f"images/{item_id}/top.jpg"
    render(root / rel, lines, colour)
    capture = ItemCapture(
        item_id=item_id,
        sku=sku,
        lot=lot,
        captured_at=SHIPPED,
        frames=[Frame(camera="top", uri=rel, width=640, height=480)],
    )
    store.enqueue(capture)
    action = Action.DIVERT if any(f.probability >= 0.5 for f in findings) else Action.PASS
    store.complete(
        Verdict(item_id=item_id, sku=sku, action=action, findings=findings, model_versions={s: "1" for s in stages})
    )


def anomaly(p: float, box: list[float] | None = None) -> Finding:
    return Finding(
        stage="anomaly",
        kind="anomaly",
        score=p * 10,
        probability=p,
        evidence=[Evidence(camera="top", box=box or [200, 150, 320, 260], heatmap_ref=None)],
    )


def ocr(kind: str, expiry: str | None, manufactured: str | None = None, p: float = 0.0) -> Finding:
    ev = []
    if expiry:
        ev.append(
            Evidence(
                camera="top", box=[150, 120, 480, 170], text=f"EXP {expiry}", data={"date": expiry, "type": "expiry"}
            )
        )
    if manufactured:
        ev.append(
            Evidence(
                camera="top",
                box=[150, 200, 480, 250],
                text=f"MFG {manufactured}",
                data={"date": manufactured, "type": "manufactured"},
            )
        )
    return Finding(stage="ocr_expiry", kind=kind, score=p, probability=p, evidence=ev)


def build_store(root: Path) -> Path:
    """Items: damaged (visible), clean (anomaly ran), expired, valid-with-mfg, wrong label (read live and
    flagged by the tunnel), sneakers."""
    db = root / "results" / "store.db"
    store = Store(db)
    add_item(store, root, "DMG-1", "SHEET-SET-TWIN", "L1", ["TWIN"], [anomaly(0.93)])
    add_item(store, root, "CLEAN-1", "SHEET-SET-TWIN", "L1", ["TWIN"], [anomaly(0.05)])
    add_item(store, root, "FAINT-1", "SHEET-SET-TWIN", "L1", ["TWIN"], [anomaly(0.2)])
    add_item(
        store,
        root,
        "EXP-1",
        "FOOD-CEREAL-01",
        "L2",
        ["EXP 01.11.2026"],
        [ocr("expired", "2026-11-01", p=0.95), anomaly(0.03)],
        colour=(232, 196, 40),
    )
    add_item(
        store,
        root,
        "OK-1",
        "FOOD-CEREAL-01",
        "L2",
        ["EXP 30.06.2027", "MFG 10.01.2026"],
        [ocr("ok", "2027-06-30", "2026-01-10"), anomaly(0.03)],
        colour=(232, 196, 40),
    )
    add_item(store, root, "VAR-1", "SHEET-SET-TWIN", "L1", ["SIZE", "KING"], [anomaly(0.2)])
    wrong_label = Finding(
        stage="attributes",
        kind="wrong_variant_label",
        score=0.98,
        probability=0.98,
        message="size label reads 'KING' on 3 view(s), catalog says 'TWIN'",
        evidence=[Evidence(camera="top", text="KING")],
    )
    add_item(store, root, "LBL-1", "SHEET-SET-TWIN", "L5", ["SIZE", "KING"], [wrong_label, anomaly(0.03)])
    add_item(store, root, "SHOE-1", "SNEAKER-42", "L3", ["EU 42"], [anomaly(0.03)], colour=(36, 96, 190))
    add_item(store, root, "SHORT-1", "FOOD-CEREAL-01", "L4", ["~~~"], [ocr("unreadable", None, p=1.0), anomaly(0.03)])
    add_item(store, root, "UNREAD-1", "FOOD-CEREAL-01", "L2", ["~~~"], [ocr("unreadable", None, p=1.0), anomaly(0.03)])
    add_item(store, root, "NOANOM-1", "SHEET-SET-TWIN", "L1", ["TWIN"], [], stages=("localize",))
    store.close()
    catalog().save(root / "catalog.json")
    return db
