"""`tunnelpi anomaly fit|score|export` and `tunnelpi enroll`: build and use catalog normal banks."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from pipeline.cli import app, check_output_folder, fail

anomaly_app = typer.Typer(
    help="Anomaly ensemble: fit normal banks, score images, export to ONNX.", no_args_is_help=True
)
app.add_typer(anomaly_app, name="anomaly")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def _image_paths(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
        elif p.is_file():
            out.append(p)
        else:
            fail(f"{p}: no such file or folder")
    return out


def _read_all(paths: list[Path]) -> list:
    from pipeline.imageio import ImageError, read_image

    images = []
    for p in paths:
        try:
            images.append(read_image(p))
        except ImageError as exc:
            typer.secho(f"skipping {exc}", err=True, fg=typer.colors.YELLOW)
    return images


def _check_options(image_size: int | None, max_patches: int, out: Path) -> None:
    """Option values the model would fail on (or quietly replace) only after reading every image."""
    if image_size is not None and (image_size < 32 or image_size % 32):
        fail(f"--image-size must be a positive multiple of 32, got {image_size}")
    if max_patches < 1:
        fail(f"--max-patches must be at least 1, got {max_patches}")
    check_output_folder(out)


def _config(
    image_size: int | None, target_rate: float, localize: bool, max_patches: int, round_rotations: bool = False
):
    from detectors.anomaly.model import ModelConfig

    augment = ("rot180", "rot_round") if round_rotations else ("rot180",)
    sized = {"image_size": image_size} if image_size else {}
    return ModelConfig(target_rate=target_rate, localize=localize, max_patches=max_patches, augment=augment, **sized)


IMAGE_SIZE_HELP = "network input side, a multiple of 32 (default 224; 320 reads small damage better at 1.8x the time)"


ROUND_ROTATIONS_HELP = "also enrol round views (lids, balls end-on) at 45-degree steps"
FIT_ROUND_ROTATIONS_HELP = f"{ROUND_ROTATIONS_HELP} (default: when most normal images are round)"
FEW_CALIBRATION_ITEMS = 20
"""Fewer calibration images than this leave the threshold to chance. Fitted on six choices of ten
MVTec bottles, the defective test bottles flagged at the threshold ranged 0.13-0.95 with all ten
cross-fitted and 0.00-1.00 with three held out; on six choices of twenty, 0.78-0.97 cross-fitted;
of thirty, 0.16-1.00 with seven held out and 0.84-0.95 cross-fitted (docs/anomaly.md)."""
CROSS_FIT_HELP = (
    "calibrate on every normal, each scored against a bank fitted without it, beside any --calibration images "
    "and instead of holding a quarter back: steadier thresholds, 2-3x the fit time (default: below 28 normals "
    "and no --calibration)"
)


@anomaly_app.command("fit")
def fit(
    normals: list[Path] = typer.Option(..., "--normals", help="folder(s) or files of normal images"),
    out: Path = typer.Option(..., "--out", help="model folder to write"),
    calibration: list[Path] = typer.Option(
        None, "--calibration", help="normal images kept out of the bank for calibration (default: a held-out quarter)"
    ),
    localize: bool = typer.Option(True, "--localize/--no-localize", help="localise items in frames (off for crops)"),
    image_size: int | None = typer.Option(None, help=IMAGE_SIZE_HELP),
    target_rate: float = typer.Option(0.005, help="target false-divert rate for the threshold"),
    max_patches: int = typer.Option(4096, help="patch bank bound (greedy coreset)"),
    onnx: bool = typer.Option(True, "--onnx/--no-onnx", help="also export ONNX graphs for the edge scorer"),
    round_rotations: bool | None = typer.Option(
        None, "--round-rotations/--no-round-rotations", help=FIT_ROUND_ROTATIONS_HELP, show_default=False
    ),
    cross_fit: bool | None = typer.Option(None, "--cross-fit/--hold-out", help=CROSS_FIT_HELP, show_default=False),
) -> None:
    """Fit one normal bank from folders of normal images (any product, not only the simulator)."""
    _check_options(image_size, max_patches, out)
    from detectors.anomaly.calibration import CalibrationError
    from detectors.anomaly.model import CROSS_FIT_KEY, AnomalyModel
    from detectors.anomaly.prepare import ROUND_MAJORITY, round_share

    images = _read_all(_image_paths(list(normals)))
    if not images:
        fail(f"--normals {', '.join(map(str, normals))}: no readable images")
    cal = _read_all(_image_paths(list(calibration))) if calibration else None
    if cal is not None and not cal:
        fail(f"--calibration {', '.join(map(str, calibration))}: no readable images")
    if round_rotations is None:
        share = round_share(images, localize)
        round_rotations = share >= ROUND_MAJORITY
        if round_rotations:
            typer.echo(f"{share:.0%} of the normals show a round outline: round views are enrolled turned as well")
    model = AnomalyModel(_config(image_size, target_rate, localize, max_patches, round_rotations))
    start = time.perf_counter()
    try:
        bank = model.fit(images, calibration=cal, cross_fit=cross_fit)
    except (ValueError, CalibrationError) as exc:
        fail(str(exc))
    model.save(out)
    if onnx:
        from detectors.anomaly.export import export_onnx

        export_onnx(model, out)
    cal_info = bank.meta["calibration"]
    folds = (bank.meta.get(CROSS_FIT_KEY) or {}).get("folds")
    how = f"{cal_info['n_views']} for calibration"
    if folds:
        how = f"all cross-fitted in {folds} folds" + (f", and {len(cal)} calibration images" if cal else "")
    typer.echo(
        f"fitted {bank.n_images} normal images ({how}) in "
        f"{time.perf_counter() - start:.1f}s; bank {bank.nbytes() / 1e6:.1f} MB; "
        f"threshold {cal_info['view']['threshold']:.3f} at {target_rate:.2%} false diverts -> {out}"
    )
    if cal_info["n_items"] < FEW_CALIBRATION_ITEMS:
        remedies = ["fit more normals", f"pass {FEW_CALIBRATION_ITEMS} or more with --calibration"]
        if not folds:
            remedies.insert(0, "calibrate on every normal as well with --cross-fit")
        typer.echo(
            f"note: the threshold rests on {cal_info['n_items']} calibration images, and with fewer than "
            f"{FEW_CALIBRATION_ITEMS} which ones they are can move it several-fold (docs/anomaly.md): "
            + ", or ".join(remedies)
        )


@anomaly_app.command("export")
def export(model_dir: Path = typer.Option(..., "--model", help="model folder")) -> None:
    """Write the ONNX graphs (feature extractor, students) for the onnxruntime scorer."""
    from detectors.anomaly.export import export_onnx
    from detectors.anomaly.model import AnomalyModel

    try:
        model = AnomalyModel.load(model_dir)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    typer.echo(f"exported to {export_onnx(model, model_dir)}")


@anomaly_app.command("score")
def score(
    images: list[Path] = typer.Argument(..., help="images: full tunnel frames or item crops"),
    model_dir: Path = typer.Option(..., "--model", help="model folder from `anomaly fit` or `enroll`"),
    sku: str | None = typer.Option(None, "--sku", help="SKU bank to use in a multi-SKU model"),
    category: str | None = typer.Option(None, "--category", help="category bank to fall back on for an unknown SKU"),
    heatmaps: Path | None = typer.Option(None, "--heatmaps", help="folder to write heatmap PNGs"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per image per line"),
    runtime: str = typer.Option("auto", help="torch, onnx, or auto (onnx when exported)"),
) -> None:
    """Score images; a bad image gives an error line, the batch goes on, and the exit status is 1."""
    if runtime not in ("auto", "torch", "onnx"):
        fail(f"--runtime must be torch, onnx or auto, got {runtime!r}")
    if heatmaps is not None:
        check_output_folder(heatmaps, "--heatmaps")
    from detectors.anomaly import heatmap
    from detectors.anomaly.model import AnomalyModel, NoReference
    from detectors.anomaly.prepare import prepare, view_of
    from pipeline.imageio import ImageError, read_image

    rt = None
    if runtime in ("auto", "onnx") and (model_dir / "onnx" / "manifest.json").is_file():
        from detectors.anomaly.export import OnnxRuntime

        rt = OnnxRuntime(model_dir)
    elif runtime == "onnx":
        fail(f"{model_dir}: no ONNX export; run `tunnelpi anomaly export --model {model_dir}`")
    try:
        model = AnomalyModel.load(model_dir, runtime=rt)
        bank = model.resolve(sku, category)
    except NoReference as exc:
        for p in images:
            _emit({"image": str(p), "error": f"review: no reference ({exc})", "finding": "no_reference"}, as_json)
        raise typer.Exit(1) from None
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    failed = 0
    for p in images:
        start = time.perf_counter()
        try:
            view = view_of(read_image(p), "cam0", model.config.localize, name=str(p))
        except ImageError as exc:
            _emit({"image": str(p), "error": str(exc)}, as_json)
            failed += 1
            continue
        if model.config.localize and not view.found:
            _emit(
                {
                    "image": str(p),
                    "score": None,
                    "probability": None,
                    "anomalous": None,
                    "heatmap": None,
                    "finding": "no_item_found",
                    "ms": round((time.perf_counter() - start) * 1000, 2),
                },
                as_json,
            )
            continue
        result = model.score_prepared([prepare(view, model.config.image_size)], bank)
        v = result.views[0]
        heat_path = str(heatmap.write(heatmaps / f"{p.stem}.anomaly.png", v.heatmap, view)) if heatmaps else None
        _emit(
            {
                "image": str(p),
                "score": round(result.score, 6),
                "probability": round(result.probability, 6),
                "anomalous": result.anomalous,
                "heatmap": heat_path,
                "ms": round((time.perf_counter() - start) * 1000, 2),
                "bank": result.bank,
                "bank_kind": result.bank_kind,
                "members": {k: round(x, 4) for k, x in v.z.items()},
                "localized": view.found,
            },
            as_json,
        )
    if failed:
        # like `ocr`: a batch with an unreadable image is not a clean run, though the others were scored
        typer.secho(f"{failed} of {len(images)} image(s) could not be scored", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)


def _emit(record: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
    elif "error" in record:
        typer.secho(f"{record['image']}: error: {record['error']}", fg=typer.colors.RED)
    elif record.get("finding") == "no_item_found":
        typer.echo(f"{record['image']}: no_item_found (review)")
    else:
        flag = "ANOMALOUS" if record["anomalous"] else "normal"
        typer.echo(f"{record['image']}: {flag} score={record['score']:.3f} p={record['probability']:.3f}")


@app.command("enroll")
def enroll(
    dataset: Path = typer.Option(..., "--dataset", help="simulator or catalog dataset folder"),
    out: Path = typer.Option(..., "--out", help="model folder to write"),
    image_size: int | None = typer.Option(None, help=IMAGE_SIZE_HELP),
    target_rate: float = typer.Option(0.005, help="target false-divert rate"),
    max_patches: int = typer.Option(4096, help="patch bank bound per SKU"),
    onnx: bool = typer.Option(True, "--onnx/--no-onnx", help="also export ONNX graphs"),
    round_rotations: bool = typer.Option(False, "--round-rotations/--no-round-rotations", help=ROUND_ROTATIONS_HELP),
) -> None:
    """Enrol every SKU of a dataset: references "enrol" build banks, "calibration" calibrates them
    (a SKU without calibration references calibrates cross-fitted on 5 or more "enrol" ones)."""
    _check_options(image_size, max_patches, out)
    from detectors.anomaly.enroll import enroll_dataset
    from pipeline.dataset import DatasetError

    start = time.perf_counter()
    try:
        model = enroll_dataset(dataset, _config(image_size, target_rate, True, max_patches, round_rotations))
    except (DatasetError, ValueError) as exc:
        fail(str(exc))
    if not model.banks:
        fail(f"{dataset}: no SKU could be enrolled (see the messages above); nothing written to {out}")
    model.save(out)
    if onnx:
        from detectors.anomaly.export import export_onnx

        export_onnx(model, out)
    kinds = [b.kind for b in model.banks.values()]
    typer.echo(
        f"enrolled {len(model.skus)} SKUs: {kinds.count('sku')} SKU banks, {kinds.count('category')} category banks "
        f"in {time.perf_counter() - start:.1f}s -> {out}"
    )


@anomaly_app.command("calibrate")
def calibrate(
    model_dir: Path = typer.Option(..., "--model", help="model folder (updated in place)"),
    dataset: Path = typer.Option(..., "--dataset", help="dataset folder holding the belt items' captures"),
    db: Path = typer.Option(None, "--db", help="store whose reviewer decisions name confirmed-normal items"),
    use_truth: bool = typer.Option(
        False, "--use-truth/--reviewed-only", help="take every item the dataset records as defect-free"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Set the operating point on the belt's own good items: confirmed-normal items (audited
    passes, cleared reviews, a recorded shift) join the calibration of the banks serving them."""
    from detectors.anomaly.belt import calibrate_folder
    from pipeline.dataset import DatasetError
    from pipeline.store import Store, StoreError

    if db is not None and not db.exists():
        fail(f"{db}: no such store")
    if db is not None:
        try:
            Store(db).close()  # before the model and the dataset are read
        except StoreError as exc:
            fail(str(exc))
    if db is None and not use_truth:
        fail("name the normal items: --use-truth for a recorded shift, or --db with reviewer labels")
    start = time.perf_counter()
    try:
        report = calibrate_folder(model_dir, dataset, db, use_truth, log=lambda m: typer.echo(m, err=True))
    except (DatasetError, FileNotFoundError, StoreError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
    else:
        typer.echo(
            f"calibrated {len(report.banks)} banks on {report.items} normal belt items ({report.views} views), "
            f"{len(report.skipped)} skipped, in {time.perf_counter() - start:.1f}s -> {model_dir}"
        )
