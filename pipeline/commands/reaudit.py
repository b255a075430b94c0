"""`tunnelpi reaudit`: re-inspect stored tunnel images from a manifest on Ray Data."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli import app, fail, parse_policy, parse_today


@app.command()
def reaudit(
    manifest: str = typer.Option(..., "--manifest", help="manifest.jsonl: local path or s3://bucket/key.jsonl"),
    out: str = typer.Option(..., "--out", help="results: local folder or s3://bucket/prefix (Parquet parts)"),
    model: str | None = typer.Option(None, "--model", help="model folder from `tunnelpi enroll`"),
    catalog: str | None = typer.Option(None, "--catalog", help="catalog.json (default: beside the manifest)"),
    stages: str | None = typer.Option(None, "--stages", help="comma-separated stage names (default: all)"),
    workers: int = typer.Option(1, "--workers", min=1, help="Ray actors, each with one set of stages"),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="items per batch and per Parquet part"),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster to join, e.g. auto"),
    resume: bool = typer.Option(False, "--resume", help="skip items OUT already holds results for"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="only the first N manifest items"),
    today: str | None = typer.Option(None, "--today", help="date to judge expiry against (YYYY-MM-DD)"),
    s3_endpoint_url: str | None = typer.Option(
        None, "--s3-endpoint-url", envvar="AWS_ENDPOINT_URL", help="S3-compatible endpoint (MinIO, moto)"
    ),
    policy: Path | None = typer.Option(None, "--policy", help="policy JSON, as `tunnelpi inspect --policy`"),
) -> None:
    """Re-run the inspection stages over stored images; write one Parquet row per item."""
    from pipeline.catalog import CatalogError
    from pipeline.reaudit import ReauditConfig, ReauditError, run_reaudit
    from pipeline.stages import DEFAULT_STAGES

    names = [s.strip() for s in stages.split(",") if s.strip()] if stages else list(DEFAULT_STAGES)
    config = ReauditConfig(
        manifest=manifest,
        out=out,
        model_dir=model,
        catalog=catalog,
        stages=names,
        workers=workers,
        batch_size=batch_size,
        resume=resume,
        limit=limit,
        today=parse_today(today),
        ray_address=ray_address,
        s3_endpoint_url=s3_endpoint_url,
        policy=parse_policy(policy),
    )
    try:
        summary = run_reaudit(config)
    except (ReauditError, CatalogError, KeyError) as exc:
        fail(str(exc))
    actions = ", ".join(f"{k} {v}" for k, v in summary.actions.items()) or "none"
    failures = ", ".join(f"{k} {v}" for k, v in summary.failure_reasons.items())
    typer.echo(f"reaudit {summary.run_id} -> {summary.out}")
    typer.echo(f"items: {summary.items} (skipped as already done: {summary.skipped})")
    typer.echo(f"verdicts: {actions}")
    typer.echo(f"failures: {summary.failures}" + (f" ({failures})" if failures else ""))
    typer.echo(f"throughput: {summary.items_per_s:.2f} items/s over {summary.seconds:.1f} s")
