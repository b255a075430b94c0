"""`tunnelpi sim`: simulate a tunnel shift and look at it."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli import fail, parse_today, sim_app


@sim_app.command("generate")
def generate(
    out: Path = typer.Option(..., "--out", help="dataset folder to write"),
    items: int = typer.Option(1000, "--items", help="items in the shift"),
    seed: int = typer.Option(0, "--seed", help="random seed (same seed, same bytes)"),
    today: str | None = typer.Option(None, "--today", help="shift date, YYYY-MM-DD (default 2026-11-22)"),
    workers: int = typer.Option(2, "--workers", help="worker processes"),
    references_per_sku: int = typer.Option(12, "--references-per-sku", help="normal reference orders per SKU"),
    defect_rate: float = typer.Option(0.25, "--defect-rate", help="share of items with a random defect"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a non-empty output folder"),
) -> None:
    """Simulate a tunnel shift into OUT (layout: README "Dataset schema")."""
    if items <= 0:
        fail(f"--items must be a positive number, got {items}")
    if workers <= 0:
        fail(f"--workers must be a positive number, got {workers}")
    if references_per_sku < 0:
        fail(f"--references-per-sku must be 0 or more, got {references_per_sku}")
    if not 0.0 <= defect_rate <= 1.0:
        fail(f"--defect-rate must be between 0 and 1, got {defect_rate}")
    shift_day = parse_today(today)
    if out.exists() and not out.is_dir():
        fail(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        fail(f"{out} is not empty; choose another folder or pass --overwrite")
    from tunnel_sim import generate_dataset

    summary = generate_dataset(
        out,
        items,
        seed,
        today=shift_day,
        references_per_sku=references_per_sku,
        defect_rate=defect_rate,
        workers=workers,
        overwrite=overwrite,
    )
    defects = ", ".join(f"{k} {v}" for k, v in summary.defect_counts.items()) or "none"
    typer.echo(f"wrote {out}")
    typer.echo(
        f"items: {summary.items} ({summary.defective_items} with visible defects), references: {summary.references}"
    )
    typer.echo(f"defects: {defects}")
    typer.echo(f"lots: {summary.lots} ({summary.bad_lots} systematically bad), complaints: {summary.complaints}")
    typer.echo(f"speed: {summary.items_per_second:.1f} items/s ({summary.seconds:.1f} s)")


@sim_app.command("preview")
def preview(
    dataset: Path = typer.Argument(..., help="dataset folder written by `sim generate`"),
    out: Path = typer.Option(Path("sheet.png"), "--out", help="PNG to write"),
    max_items: int = typer.Option(24, "--max-items", help="rows in the sheet (defective items first)"),
) -> None:
    """Write a contact sheet: each item's views, labelled with SKU and defects, masks outlined."""
    if not (dataset / "manifest.jsonl").is_file():
        fail(f"{dataset} is not a dataset folder (no manifest.jsonl); run `tunnelpi sim generate` first")
    if max_items <= 0:
        fail(f"--max-items must be a positive number, got {max_items}")
    from pipeline.dataset import DatasetError
    from tunnel_sim import contact_sheet

    try:
        path = contact_sheet(dataset, out, max_items=max_items)
    except (DatasetError, ValueError) as exc:
        fail(str(exc))
    typer.echo(f"wrote {path}")
