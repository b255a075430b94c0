"""`tunnelpi investigate` (one complaint -> root-cause report) and `tunnelpi patterns` (damage patterns)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import typer

from pipeline.cli import app, check_output_file, check_output_folder, fail


@app.command()
def investigate(
    db: Path = typer.Option(..., "--db", help="store.db written by `tunnelpi inspect`"),
    item: str = typer.Option(..., "--item", help="item id the complaint is about"),
    complaint: str = typer.Option(..., "--complaint", help="the complaint text (untrusted; any language)"),
    backend: str = typer.Option("grounded", help="grounded | bedrock | openai | hf"),
    dataset: Path | None = typer.Option(None, help="dataset folder (catalog.json, images)"),
    catalog: Path | None = typer.Option(None, help="catalog.json, when there is no dataset folder"),
    out: Path | None = typer.Option(None, help="folder for the JSON, Markdown and HTML report and crops"),
    model: str | None = typer.Option(None, help="model id (bedrock/openai) or model folder (hf)"),
    base_url: str | None = typer.Option(None, help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1"),
    region: str | None = typer.Option(None, help="AWS region for bedrock"),
    timeout: float = typer.Option(60.0, help="seconds per backend call"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Check a customer complaint against the item's tunnel photos and write a root-cause report."""
    from detectors.ocr_expiry.engines import reading_one_at_a_time
    from llm_agent.backends import BACKENDS, get_backend
    from llm_agent.evidence import EvidenceError
    from llm_agent.investigator import investigate as run
    from llm_agent.report import summary_line, to_json, write_report
    from pipeline.catalog import Catalog, CatalogError
    from pipeline.dataset import DatasetError
    from pipeline.store import StoreError
    from pipeline.types import validate_item_id

    if backend not in BACKENDS:
        fail(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    try:
        validate_item_id(item)
    except ValueError as exc:
        fail(str(exc))
    if not complaint.strip():
        fail("--complaint is empty: give the customer's words")
    if dataset is not None and not dataset.is_dir():
        fail(f"{dataset}: dataset folder not found")
    if out is not None:
        check_output_folder(out)
    options: dict = {}
    if backend in ("bedrock", "openai", "hf") and model:
        options["model"] = model
    if backend == "openai" and base_url:
        options["base_url"] = base_url
    if backend == "bedrock" and region:
        options["region"] = region
    if backend in ("bedrock", "openai"):
        options["timeout_s"] = timeout
    try:
        cat = Catalog.load(catalog) if catalog else None
        engine = get_backend(backend, **options)
        with reading_one_at_a_time():  # one item's photos: each read may use every core
            report, evidence = run(db, item, complaint, backend=engine, catalog=cat, dataset=dataset, out=out)
    except (EvidenceError, CatalogError, DatasetError, StoreError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    if out is not None:
        paths = write_report(report, out, evidence)
        if not as_json:
            typer.echo(f"report: {paths['html']}")
    log = db.parent / "investigations.jsonl"
    with log.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(summary_line(report), ensure_ascii=False) + "\n")
    if as_json:
        typer.echo(to_json(report))
    else:
        typer.echo(f"{report.root_cause.value} ({report.confidence:.0%}): {report.summary}")


@app.command("calibrate-investigator")
def calibrate_investigator(
    db: Path = typer.Option(..., "--db", help="store.db the confirmed complaints' items were inspected into"),
    confirmed: Path = typer.Option(
        ..., help="JSON lines of confirmed complaints: item_id, text, root_cause (or a shift's feedback.jsonl)"
    ),
    dataset: Path | None = typer.Option(None, help="dataset folder (catalog.json, images)"),
    catalog: Path | None = typer.Option(None, help="catalog.json, when there is no dataset folder"),
    out: Path | None = typer.Option(
        None, help="calibration file to write (default: the store's model folder, where `investigate` finds it)"
    ),
) -> None:
    """Calibrate the investigator's confidence on complaints whose root cause was confirmed."""
    from llm_agent.calibration import MODEL_FILE, CalibrationError, read_confirmed
    from llm_agent.calibration import calibrate_investigator as fit
    from llm_agent.evidence import RunRecordError, run_record
    from pipeline.catalog import Catalog, CatalogError
    from pipeline.dataset import DatasetError
    from pipeline.store import StoreError

    if not db.exists():
        fail(f"{db}: store not found")
    if dataset is not None and not dataset.is_dir():
        fail(f"{dataset}: dataset folder not found")
    if out is None:
        try:
            model_dir = run_record(db).get("model_dir")
        except RunRecordError as exc:
            fail(str(exc))
        if not model_dir:
            fail(f"{db} records no model folder; give --out")
        out = Path(model_dir) / MODEL_FILE
    check_output_file(out)
    try:
        complaints = read_confirmed(confirmed)
    except CalibrationError as exc:  # a line that is not UTF-8 as well
        fail(str(exc))
    if not complaints:
        fail(f"{confirmed}: no confirmed complaints; {out} left as it was")
    try:
        cat = Catalog.load(catalog) if catalog else None
        calibration = fit(db, complaints, catalog=cat, dataset=dataset, log=lambda m: typer.echo(m, err=True))
    except (CalibrationError, CatalogError, DatasetError, RunRecordError, StoreError) as exc:
        fail(str(exc))
    n = sum(t.n for t in calibration.rules.values())
    if n == 0:
        # an empty calibration would silently replace one fitted on earlier confirmations
        why = f" ({calibration.skipped} about items not in {db})" if calibration.skipped else ""
        fail(f"{confirmed}: none of {len(complaints)} complaint(s) could be investigated{why}; {out} left as it was")
    calibration.save(out)
    typer.echo(
        f"{n} confirmed investigation(s), {len(calibration.rules)} rule(s), {calibration.skipped} skipped -> {out}"
    )
    for rule, t in calibration.rules.items():
        typer.echo(
            f"  {rule}: right {t.right}/{t.n}, states {t.stated:.0%}, now {calibration.confidence(rule, t.stated):.0%}"
        )


@app.command()
def patterns(
    db: Path = typer.Option(..., "--db", help="store.db written by `tunnelpi inspect`"),
    by: str = typer.Option("seller", help="group by seller | sku | lot"),
    since: str | None = typer.Option(None, help="only items captured on or after YYYY-MM-DD"),
    dataset: Path | None = typer.Option(None, help="dataset folder (adds its feedback.jsonl complaints)"),
    out: Path = typer.Option(Path("patterns.html"), help="HTML report (a .json twin is written beside it)"),
) -> None:
    """Damage patterns per seller, SKU or lot: counts, trends, complaint clusters, example photos."""
    from llm_agent.evidence import RunRecordError
    from llm_agent.patterns import damage_patterns, write_patterns
    from pipeline.jsonl import JsonlError
    from pipeline.store import StoreError

    if by not in ("seller", "sku", "lot"):
        fail(f"--by must be seller, sku or lot, got {by!r}")
    if since is not None:
        try:
            date.fromisoformat(since)
        except ValueError:
            fail(f"--since must be YYYY-MM-DD, got {since!r}")
    if not db.exists():
        fail(f"{db}: store not found")
    if out.suffix.lower() == ".json":
        fail(f"--out {out}: name the HTML file; its .json twin is written beside it")
    check_output_file(out)
    if (twin := out.with_suffix(".json")).is_dir():
        fail(f"--out {out}: its JSON twin {twin} is a folder")
    try:
        report = damage_patterns(db, by=by, since=since, dataset=dataset)  # type: ignore[arg-type]
    except (StoreError, RunRecordError, JsonlError) as exc:
        fail(str(exc))
    path = write_patterns(report, out)
    typer.echo(f"{len(report.groups)} {by} group(s), {report.complaints} complaint(s) -> {path}")
    for line in report.upstream_summary:
        typer.echo(f"  {line}")
