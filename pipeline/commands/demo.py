"""`tunnelpi demo`: the whole product on a simulated shift (what `make demo` runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli import app
from pipeline.summary import print_summary


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="folder for the dataset, model, results and report"),
    items: int = typer.Option(200, min=10, help="items in the simulated shift"),
    seed: int = typer.Option(7, help="simulation seed"),
    complaints: int = typer.Option(12, min=0, help="complaints to investigate"),
    workers: int = typer.Option(2, min=1, help="simulator processes"),
) -> None:
    """Simulate a shift, enrol, inspect, isolate lots, investigate complaints, write report.html."""
    from rich.console import Console
    from rich.table import Table

    from pipeline.demo import run_demo

    result = run_demo(out, items=items, seed=seed, complaints=complaints, workers=workers)
    console = Console()
    print_summary(result.inspect)
    if result.investigations:
        table = Table(title="sample investigations")
        for col in ("item", "complaint", "root cause", "truth", "confidence"):
            table.add_column(col)
        for line in result.investigations:
            table.add_row(
                line["item_id"],
                line["complaint_text"][:50],
                line["root_cause"],
                line.get("truth_root_cause") or "",
                str(line["confidence"]),
            )
        console.print(table)
    timings = Table(title="timings (s)")
    timings.add_column("step")
    timings.add_column("seconds")
    for step, seconds in result.timings_s.items():
        timings.add_row(step, f"{seconds:.1f}")
    console.print(timings)
    console.print(f"report: {result.report}")
