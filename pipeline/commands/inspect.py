"""`tunnelpi inspect`: run the full inspection over a dataset or an image folder."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

from pipeline.cli import app, fail


def parse_today(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"--today must be YYYY-MM-DD, got {value!r}")


def print_summary(result) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{result.items} items inspected -> {result.out}")
    for col in ("action", "items"):
        table.add_column(col)
    for action, n in sorted(result.actions.items()):
        table.add_row(action, str(n))
    console.print(table)
    if result.metrics:
        m = result.metrics
        t = Table(title="against ground truth")
        for col in ("defect type", "items", "recall (divert)", "recall (divert+review)"):
            t.add_column(col)
        for name, row in m["per_defect_type"].items():
            t.add_row(name, str(row["items"]), f"{row['recall_divert']:.1%}", f"{row['recall_flagged']:.1%}")
        console.print(t)
        p = Table(title="precision of divert reasons")
        for col in ("finding", "diverts", "precision"):
            p.add_column(col)
        for name, row in m["per_finding_kind"].items():
            p.add_row(name, str(row["diverts"]), f"{row['precision']:.1%}")
        console.print(p)
        console.print(
            f"good items: {m['good_items']}  false-divert rate: {m['false_divert_rate']:.2%}"
            f"  sent to review: {m['good_review_rate']:.2%}"
        )
    if result.lots_quarantined:
        console.print(f"lots quarantined: {', '.join(result.lots_quarantined)}")
    if result.latency_ms:
        console.print(f"latency per item (ms): {result.latency_ms}")


@app.command()
def inspect(
    input_path: Path = typer.Option(..., "--input", help="dataset folder (manifest.jsonl) or folder of images"),
    out: Path = typer.Option(..., "--out", help="results folder: verdicts.jsonl, store.db, run.json"),
    model: Path | None = typer.Option(None, "--model", help="anomaly model folder from `tunnelpi enroll`"),
    stages: str = typer.Option("localize,ocr_expiry,anomaly", help="comma-separated stage names"),
    catalog: Path | None = typer.Option(None, help="catalog.json (for an image folder)"),
    sku: str | None = typer.Option(None, help="SKU of every item in an image folder"),
    today: str | None = typer.Option(None, help="date to judge expiry against (default: dataset's or today)"),
    limit: int | None = typer.Option(None, min=1, help="inspect only the first N items"),
) -> None:
    """Inspect every item: localize -> OCR expiry, anomaly, attributes -> decision policy."""
    from pipeline.catalog import CatalogError
    from pipeline.dataset import DatasetError
    from pipeline.inspect import InputError, inspect_path

    if not input_path.exists():
        fail(f"{input_path}: no such dataset or folder")
    if model is not None and not model.is_dir():
        fail(f"{model}: model folder not found (build one with `tunnelpi enroll`)")
    names = [s.strip() for s in stages.split(",") if s.strip()]
    try:
        result = inspect_path(
            input_path,
            out,
            model_dir=model,
            stages=names,
            catalog_path=catalog,
            sku=sku,
            today=parse_today(today),
            limit=limit,
        )
    except (InputError, DatasetError, CatalogError, KeyError) as exc:
        fail(str(exc))
    print_summary(result)
