"""`tunnelpi ui`: the reviewer web UI over a store."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli import app, fail, parse_policy


@app.command()
def ui(
    db: Path = typer.Option(..., "--db", help="SQLite store written by `tunnelpi inspect` or `tunnelpi serve`."),
    dataset: Path | None = typer.Option(None, help="Dataset folder the frame paths are relative to."),
    results: Path | None = typer.Option(None, help="Results folder (run.json, investigations/)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    token: str | None = typer.Option(
        None, envvar="TUNNELPI_UI_TOKEN", help="Require this token (bearer, or basic-auth password) on every page."
    ),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    policy: Path | None = typer.Option(None, help="Policy JSON whose 'lots' section judges reviewers' confirmations."),
) -> None:
    """Serve the review queue, item pages with accept/override, lots and damage patterns."""
    import uvicorn

    from pipeline.lots import LotSettings
    from pipeline.webui import create_ui

    for folder, name in ((dataset, "--dataset"), (results, "--results")):
        if folder is not None and not folder.is_dir():
            fail(f"{name} {folder}: folder not found")
    try:
        lots = LotSettings.from_dict(parse_policy(policy).get("lots", {}))
        application = create_ui(db, dataset=dataset, results=results, token=token, lots=lots)
    except FileNotFoundError as exc:
        fail(str(exc))
    if token is None and host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(f"warning: no --token and listening on {host}: anyone who can reach it can label items", err=True)
    typer.echo(f"reviewer UI on http://{host}:{port}/")
    uvicorn.run(application, host=host, port=port, log_level=log_level)
