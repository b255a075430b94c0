"""`tunnelpi report`: a self-contained HTML report from an inspect results folder."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli import app, check_output_file, fail


@app.command()
def report(
    results: Path = typer.Option(..., "--results", help="results folder written by `tunnelpi inspect`"),
    out: Path = typer.Option(Path("report.html"), "--out", help="HTML file to write"),
    top: int = typer.Option(24, min=1, help="how many flagged items to show with their views"),
) -> None:
    """Write one HTML file: summary, counts, metrics, plots, flagged items with evidence, lot events."""
    from pipeline.report import ReportError, render_report

    check_output_file(out)
    try:
        path = render_report(results, out, top=top)
    except ReportError as exc:
        fail(str(exc))
    typer.echo(f"report written to {path}")
