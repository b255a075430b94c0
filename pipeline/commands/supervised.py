"""`tunnelpi train-supervised` and `tunnelpi label`: reviewer labels in, a retrained classifier out."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pipeline.cli import app, fail

DECISIONS = ("confirm", "reject")


@app.command("label")
def label(
    db: Path = typer.Option(..., "--db", help="store (SQLite) to append the decision to"),
    item: str = typer.Option(..., "--item", help="item id"),
    label_: str = typer.Option(..., "--label", help="defect type (e.g. crushed_corner) or 'normal'"),
    decision: str = typer.Option(..., "--decision", help="confirm or reject"),
    reviewer: str = typer.Option(None, "--reviewer", help="who decided"),
    note: str = typer.Option(None, "--note", help="free text"),
) -> None:
    """Record a reviewer's decision on an item; `train-supervised --db` learns from it."""
    from detectors.supervised.dataset import FINE_TYPES
    from pipeline.lots import LotMonitor
    from pipeline.store import Store, StoreError
    from pipeline.types import validate_item_id

    if decision not in DECISIONS:
        fail(f"--decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    if label_ not in (*FINE_TYPES, "normal"):
        fail(f"--label must be one of {', '.join((*FINE_TYPES, 'normal'))}, got {label_!r}")
    try:
        validate_item_id(item)
    except ValueError as exc:
        fail(str(exc))
    # A label goes to the store that inspected the item: a mistyped path or item id must not
    # start a new store or file a decision no training run or lot will ever meet.
    if not db.exists():
        fail(f"{db}: no such store")
    try:
        store = Store(db)
    except StoreError as exc:
        fail(str(exc))
    try:
        if store.capture(item) is None:
            fail(f"{db}: item {item!r} is not in the store")
        store.add_label(item, label_, decision, reviewer=reviewer, note=note)
        LotMonitor(store).reviewed(item)
    finally:
        store.close()
    typer.echo(f"{item}: {label_} {decision}ed" + (f" by {reviewer}" if reviewer else ""))


@app.command("train-supervised")
def train_supervised(
    dataset: Path = typer.Option(..., "--dataset", help="dataset folder (manifest, references, feedback)"),
    out: Path = typer.Option(..., "--out", help="model folder to write (model.pt, model_card.json)"),
    db: Path = typer.Option(None, "--db", help="store whose reviewer labels are added"),
    use_truth: bool = typer.Option(
        False, "--use-truth/--feedback-only", help="label every item from its record (simulated or audited shifts)"
    ),
    anomaly: Path = typer.Option(
        None,
        "--anomaly",
        help="anomaly model folder whose SKU banks the residual inputs compare with "
        "(default: the model folder --out lies in, when it holds one)",
    ),
    residual: bool = typer.Option(
        True, "--residual/--patches-only", help="add residuals to the SKU's normal bank to the inputs"
    ),
    epochs: int = typer.Option(80, help="maximum epochs (early stopping on held-out loss)"),
    target_fp: float = typer.Option(0.01, help="per-class false-positive rate on held-out normals"),
    seed: int = typer.Option(0),
) -> None:
    """Train the fine-grained classifier from complaints, reviewer labels and normal references."""
    if not (dataset / "manifest.jsonl").is_file():
        fail(f"{dataset}: not a dataset folder (no manifest.jsonl)")
    if db is not None and not db.exists():
        fail(f"{db}: no such store")
    if not 0.0 < target_fp < 0.5:
        fail(f"--target-fp must be within (0, 0.5), got {target_fp}")
    import torch

    from detectors.anomaly.model import load_shared
    from detectors.anomaly.stage import find_model_dir
    from detectors.supervised.dataset import build_examples
    from detectors.supervised.train import TrainConfig
    from detectors.supervised.train import train_supervised as train
    from pipeline.store import Store, StoreError

    reference = None
    if residual:
        folder = find_model_dir(anomaly if anomaly is not None else out.resolve().parent)
        if folder is None and anomaly is not None:
            fail(f"{anomaly}: no anomaly model (model.json) here or in anomaly/")
        if folder is not None:
            reference = load_shared(folder)
            typer.echo(f"residual inputs against {reference.version} ({folder})", err=True)
        else:
            typer.echo("no anomaly model beside --out: training on patch features only", err=True)
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    try:
        store = Store(db) if db is not None else None
    except StoreError as exc:
        fail(str(exc))
    try:
        examples = build_examples(dataset, store, use_truth=use_truth)
    finally:
        if store is not None:
            store.close()
    try:
        _, card = train(
            examples,
            out,
            TrainConfig(epochs=epochs, target_fp=target_fp, seed=seed),
            log=lambda s: typer.echo(s, err=True),
            sources={"dataset": str(dataset), "store": str(db) if db else None},
            reference=reference,
        )
    except ValueError as exc:
        fail(str(exc))
    typer.echo(json.dumps({"out": str(out), "version": card["version"], "metrics": card["metrics_heldout"]}, indent=1))
