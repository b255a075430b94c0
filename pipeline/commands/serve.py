"""`tunnelpi serve`: the edge service (HTTP ingest, workers, divert signals)."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli import app, fail, parse_policy
from pipeline.stages import DEFAULT_STAGES


@app.command()
def serve(
    db: Path = typer.Option(Path("runs/edge/tunnelpi.db"), help="SQLite store (inbox, verdicts, outbox)."),
    data_dir: Path | None = typer.Option(None, help="Images and divert logs; default: the database's folder."),
    model: Path | None = typer.Option(None, "--model", help="Model folder the detector stages load from."),
    catalog: Path | None = typer.Option(None, help="catalog.json; items of SKUs not in it are sent to review."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    token: str | None = typer.Option(None, envvar="TUNNELPI_TOKEN", help="Bearer token required on /v1/*."),
    divert: str | None = typer.Option(
        None, help="Divert sink: log:PATH, http(s)://..., opc.tcp://...?item_node=..&action_node=.., modbus://..."
    ),
    replacement: str | None = typer.Option(None, help="Replacement-order sink (same forms); default a log file."),
    quarantine: str | None = typer.Option(
        None, help="Lot quarantine notices: log:PATH or http(s)://... (webhook); default a log file."
    ),
    queue_max: int = typer.Option(256, min=1, help="Captures waiting before new ones get 429."),
    deadline_ms: float = typer.Option(1000.0, min=1.0, help="Capture-to-verdict deadline (late: safe action)."),
    stages: str = typer.Option(
        ",".join(DEFAULT_STAGES), help="Comma list of stage names (or name=module:factory plugins)."
    ),
    workers: int = typer.Option(2, min=1, help="Inspection worker threads."),
    max_upload_mb: float = typer.Option(32.0, min=0.01, help="Largest accepted upload (413 above)."),
    lease_s: float = typer.Option(30.0, min=0.5, help="Seconds before an unfinished item is handed out again."),
    policy: Path | None = typer.Option(
        None, help="Policy JSON: thresholds per kind, category and SKU, audit rate, and a 'lots' section."
    ),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Run the edge service until stopped (SIGTERM/Ctrl-C finish the items in hand)."""
    import uvicorn

    from pipeline.catalog import CatalogError
    from pipeline.service import ServiceConfig, create_app

    config = ServiceConfig(
        db=db,
        data_dir=data_dir,
        catalog=catalog,
        model_dir=model,
        token=token or None,
        divert=divert,
        replacement=replacement,
        quarantine=quarantine,
        queue_max=queue_max,
        deadline_ms=deadline_ms,
        stages=[s.strip() for s in stages.split(",") if s.strip()],
        workers=workers,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        lease_s=lease_s,
        policy=parse_policy(policy),
    )
    try:
        application = create_app(config)
    except (CatalogError, KeyError, ValueError, ImportError) as exc:
        fail(f"cannot start the service: {exc}")
    uvicorn.run(application, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10)
