"""`tunnelpi sim stream`: drive a running edge service like a tunnel does (load generator)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pipeline.cli import fail, sim_app


@sim_app.command("stream")
def stream(
    to: str = typer.Option(..., "--to", help="Base URL of the edge service, e.g. http://127.0.0.1:8080"),
    rate: float = typer.Option(2.4, min=0.01, help="Items per second (a lane runs ~2.4)."),
    dataset: Path | None = typer.Option(None, help="Dataset folder to replay; default: synthetic items."),
    items: int = typer.Option(100, min=1, help="How many items to send."),
    token: str | None = typer.Option(None, envvar="TUNNELPI_TOKEN", help="Bearer token of the service."),
    wait: float = typer.Option(30.0, min=0.0, help="Seconds to wait for outstanding verdicts at the end."),
) -> None:
    """Post captures at a fixed rate; print sent/accepted/429s and send-to-verdict latency as JSON."""
    import httpx

    from pipeline.dataset import DatasetError
    from pipeline.loadgen import stream as run_stream

    try:
        report = run_stream(to, rate, items=items, dataset=dataset, token=token, wait_s=wait)
    except (DatasetError, httpx.HTTPError, RuntimeError, OSError) as exc:
        fail(f"stream to {to} failed: {exc}")
    typer.echo(json.dumps(report.to_dict(), indent=1))
