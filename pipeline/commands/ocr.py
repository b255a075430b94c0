"""`tunnelpi ocr`: read printed expiry dates on images, one JSON object per image."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

import typer

from pipeline.cli import app, fail, parse_today


@app.command()
def ocr(
    images: list[Path] = typer.Argument(..., help="package photos or item crops"),
    today: str | None = typer.Option(None, "--today", help="judge as of this date (YYYY-MM-DD); default: today"),
    sku: str | None = typer.Option(None, "--sku", help="SKU whose expiry policy applies (needs --catalog)"),
    catalog: Path | None = typer.Option(None, "--catalog", help="catalog.json with the SKU and lot records"),
    lot: str | None = typer.Option(None, "--lot", help="lot whose recorded expiry the print must match"),
    engine: str = typer.Option("rapidocr", "--engine", help="rapidocr (default) or tesseract"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per image on its own line"),
    budget_ms: float = typer.Option(
        4000.0, "--budget-ms", min=0.0, help="OCR compute per image after which no fallback pass starts"
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="threads each image's networks run on (default: TUNNELPI_OCR_THREADS, else the cores, at most 4)",
    ),
) -> None:
    """Read the expiry date on each image and judge it; a bad image gives an error line and the batch goes on."""
    from detectors.ocr_expiry.checker import read_and_judge
    from detectors.ocr_expiry.engines import ENGINES, get_engine, reading_one_at_a_time
    from detectors.ocr_expiry.grammar import WINDOW_YEARS_BACK
    from detectors.ocr_expiry.reader import date_dict
    from pipeline.catalog import Catalog, CatalogError
    from pipeline.imageio import ImageError, read_image

    if engine not in ENGINES:
        fail(f"unknown engine {engine!r}; choose one of {', '.join(sorted(ENGINES))}")
    as_of = parse_today(today) or date.today()
    if (sku or lot) and catalog is None:
        fail("--sku and --lot need --catalog")
    record = lot_record = None
    if catalog is not None:
        try:
            cat = Catalog.load(catalog)
        except CatalogError as exc:
            fail(str(exc))
        if sku is not None:
            if sku not in cat:
                fail(f"unknown SKU {sku!r}: not in {catalog}")
            record = cat.get(sku)
        if lot is not None:
            lot_record = cat.lot(lot)
            if lot_record is None:
                fail(f"unknown lot {lot!r}: not in {catalog}")
    policy = record.expiry if record else None
    order = policy.date_order if policy else None  # unknown market: the print's script decides
    languages = tuple(record.label_languages) if record else ("en",)
    try:
        with reading_one_at_a_time():
            ocr_engine = get_engine(engine, languages, threads=threads)
    except ValueError as exc:
        fail(str(exc))
    # a photo of unknown age and product: believe any expiry in the plausibility window
    stale_years = None if record else WINDOW_YEARS_BACK

    failed = 0
    for path in images:
        t0 = time.perf_counter()
        try:
            image = read_image(path)
        except ImageError as exc:
            failed += 1
            ms = (time.perf_counter() - t0) * 1000
            out = {
                "image": str(path),
                "expiry": None,
                "status": "error",
                "error": str(exc),
                "dates": [],
                "engine": engine,
            }
            _emit(as_json, out, ms)
            continue
        read, verdict = read_and_judge(
            image,
            today=as_of,
            policy=policy,
            lot=lot_record,
            budget_ms=budget_ms,
            engine=ocr_engine,
            order=order,
            languages=languages,
            stale_years=stale_years,
        )
        out = {
            "image": str(path),
            "expiry": verdict.expiry_iso,
            "status": verdict.status,
            "dates": [date_dict(d) for d in read.dates],
            "engine": read.engine,
        }
        if verdict.doubt:
            out["review"] = verdict.doubt
        _emit(as_json, out, (time.perf_counter() - t0) * 1000)
    if failed:
        raise typer.Exit(1)


def _emit(as_json: bool, out: dict, ms: float) -> None:
    out["ms"] = round(ms, 1)
    if as_json:
        typer.echo(json.dumps(out, ensure_ascii=False))
    elif out["status"] == "error":
        typer.secho(f"{out['image']}: error: {out['error']}", err=True, fg=typer.colors.RED)
    else:
        review = f"; review: {out['review']}" if "review" in out else ""
        typer.echo(
            f"{out['image']}: {out['status']} expiry={out['expiry']} ({len(out['dates'])} dates, {ms:.0f} ms){review}"
        )


@app.command("quantize-ocr")
def quantize_ocr(
    force: bool = typer.Option(False, "--force", help="rebuild even when the int8 detector is already cached"),
    out: Path | None = typer.Option(None, "--out", help="write here instead of the cache (TUNNELPI_CACHE)"),
) -> None:
    """Build the int8 OCR text detector from the rapidocr wheel's model (no download; `make setup` runs it)."""
    from detectors.ocr_expiry.quantize import build_int8_detector, cpu_has_int8_units

    start = time.perf_counter()
    path = build_int8_detector(out, force=force)
    units = "has" if cpu_has_int8_units() else "has no"
    typer.echo(f"{path} ({time.perf_counter() - start:.1f} s); this CPU {units} int8 dot-product units")
