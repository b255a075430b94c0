"""`tunnelpi inspect`: run the full inspection over a dataset or an image folder."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli import app, fail, parse_policy, parse_today
from pipeline.stages import DEFAULT_STAGES
from pipeline.summary import print_summary


@app.command()
def inspect(
    input_path: Path = typer.Option(..., "--input", help="dataset folder (manifest.jsonl) or folder of images"),
    out: Path = typer.Option(..., "--out", help="results folder: verdicts.jsonl, store.db, run.json"),
    model: Path | None = typer.Option(None, "--model", help="anomaly model folder from `tunnelpi enroll`"),
    stages: str = typer.Option(",".join(DEFAULT_STAGES), help="comma-separated stage names"),
    catalog: Path | None = typer.Option(None, help="catalog.json (for an image folder)"),
    sku: str | None = typer.Option(None, help="SKU of every item in an image folder"),
    today: str | None = typer.Option(None, help="date to judge expiry against (default: dataset's or today)"),
    limit: int | None = typer.Option(None, min=1, help="inspect only the first N items"),
    workers: int = typer.Option(2, min=1, help="items inspected side by side"),
    onnx: bool = typer.Option(False, "--onnx", help="score anomalies with the ONNX graphs (`tunnelpi anomaly export`)"),
    policy: Path | None = typer.Option(
        None, help="policy JSON: thresholds per kind, category and SKU, audit rate, and a 'lots' section"
    ),
) -> None:
    """Inspect every item: localize -> OCR expiry, anomaly, attributes -> decision policy."""
    from pipeline.catalog import CatalogError
    from pipeline.dataset import DatasetError
    from pipeline.inspect import InputError, inspect_path
    from pipeline.lots import LotSettings
    from pipeline.policy import DecisionPolicy, PolicyConfig
    from pipeline.store import StoreError

    if not input_path.exists():
        fail(f"{input_path}: no such dataset or folder")
    if model is not None and not model.is_dir():
        fail(f"{model}: model folder not found (build one with `tunnelpi enroll`)")
    names = [s.strip() for s in stages.split(",") if s.strip()]
    settings = parse_policy(policy)
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
            workers=workers,
            stage_kwargs={"anomaly": {"runtime": "onnx", "threads": 1}} if onnx else None,
            policy=DecisionPolicy(PolicyConfig.from_dict(settings)),
            lots=LotSettings.from_dict(settings.get("lots", {})),
        )
    except KeyError as exc:  # unknown stage name; str() of a KeyError would quote the message
        fail(str(exc.args[0]) if exc.args else str(exc))
    except (InputError, DatasetError, CatalogError, StoreError, FileNotFoundError) as exc:  # FileNotFoundError: --model
        fail(str(exc))
    print_summary(result)
