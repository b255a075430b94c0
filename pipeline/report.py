"""`tunnelpi report`: one self-contained HTML file from an inspection results folder.

Everything (plots, camera views with the evidence drawn on them) is embedded as data URIs,
so the file can be mailed or attached to a ticket and opened anywhere.
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from PIL import Image, ImageDraw
from pydantic import ValidationError

from pipeline.dataset import Dataset, DatasetError
from pipeline.imageio import ImageError, read_image
from pipeline.jsonl import JsonFileError, JsonlError, iter_jsonl, parse_jsonl, read_json_object
from pipeline.lots import QUARANTINE_EVENT
from pipeline.policy import INFO_KINDS
from pipeline.store import Store, StoreError
from pipeline.types import Action, GroundTruth, ItemCapture, Verdict

ACTION_ORDER = {Action.DIVERT: 0, Action.REVIEW: 1, Action.PASS: 2}
KIND_COLOURS = {"anomaly": (230, 40, 40), "expired": (255, 140, 0), "date_mismatch": (255, 140, 0)}
DEFAULT_COLOUR = (40, 120, 255)


class ReportError(ValueError):
    pass


@dataclass
class ResultsFolder:
    """An `inspect` results folder: run.json, verdicts.jsonl, store.db, plus the dataset it came from."""

    root: Path
    run: dict[str, Any]
    verdicts: list[Verdict]
    captures: dict[str, ItemCapture]
    truths: dict[str, GroundTruth]
    store: Store | None

    @classmethod
    def open(cls, root: Path) -> ResultsFolder:
        """Read the folder; a damaged file is a `ReportError` naming it."""
        if not (root / "verdicts.jsonl").exists():
            raise ReportError(f"{root}: not an inspect results folder (no verdicts.jsonl)")
        run = _read_run(root / "run.json") if (root / "run.json").exists() else {}
        verdicts = _read_verdicts(root / "verdicts.jsonl")
        captures: dict[str, ItemCapture] = {}
        truths: dict[str, GroundTruth] = {}
        source = Path(run["input"]) if run.get("input") else None
        if source is not None and (source / "manifest.jsonl").exists():
            try:
                for item in Dataset.open(source).items():
                    captures[item.capture.item_id] = item.capture
                    if item.truth is not None:
                        truths[item.capture.item_id] = item.truth
            except DatasetError:
                pass
        try:
            store = Store(root / "store.db") if (root / "store.db").exists() else None
        except StoreError as exc:
            raise ReportError(str(exc)) from None
        if store is not None:
            for v in verdicts:
                if v.item_id not in captures and (c := store.capture(v.item_id)) is not None:
                    captures[v.item_id] = c
        return cls(root, run, verdicts, captures, truths, store)


def _read_run(path: Path) -> dict[str, Any]:
    """run.json as a dict; a damaged one is an error naming it, not a report without its run."""
    try:
        return read_json_object(path)
    except JsonFileError as exc:
        raise ReportError(f"{path}: not a run record ({exc.reason})") from None


def _read_verdicts(path: Path) -> list[Verdict]:
    """verdicts.jsonl; a malformed record is an error naming the file and the record."""
    try:
        return parse_jsonl(path, _verdict)
    except (JsonlError, OSError) as exc:
        raise ReportError(str(exc)) from None


def _verdict(row: dict[str, Any]) -> Verdict:
    try:
        return Verdict.model_validate(row)
    except ValidationError as exc:
        raise ValueError(f"not a verdict ({exc.errors()[0]['msg']})") from None


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _figure_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return _data_uri(buf.getvalue())


def _item_score(verdict: Verdict) -> float:
    return max((f.probability for f in verdict.findings), default=0.0)


def score_plots(verdicts: list[Verdict], truths: dict[str, GroundTruth]) -> dict[str, str]:
    """Histogram of item scores by truth, and a ROC curve, when ground truth exists."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    labelled = [(v, truths[v.item_id]) for v in verdicts if v.item_id in truths]
    if not labelled:
        return {}
    scores = np.array([_item_score(v) for v, _ in labelled])
    y = np.array([t.is_defective for _, t in labelled], dtype=int)
    plots = {}
    fig, ax = plt.subplots(figsize=(6, 3))
    bins = np.linspace(0, 1, 31)
    ax.hist(scores[y == 0], bins=bins, alpha=0.6, label=f"good ({(y == 0).sum()})", color="tab:green")
    ax.hist(scores[y == 1], bins=bins, alpha=0.6, label=f"defective ({(y == 1).sum()})", color="tab:red")
    ax.set_xlabel("highest finding probability per item")
    ax.set_ylabel("items")
    ax.set_yscale("log")
    ax.legend()
    plots["histogram"] = _figure_uri(fig)
    if 0 < y.sum() < len(y):
        fpr, tpr, _ = roc_curve(y, scores)
        auc = roc_auc_score(y, scores)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(fpr, tpr, label=f"AUROC {auc:.3f}")
        ax.plot([0, 1], [0, 1], "--", color="grey")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.legend(loc="lower right")
        plots["roc"] = _figure_uri(fig)
    return plots


def annotated_view(capture: ItemCapture, camera: str, verdict: Verdict, root: Path, max_side: int = 360) -> str | None:
    """The camera view with every finding's box and heatmap drawn on it."""
    frame = next((f for f in capture.frames if f.camera == camera), None)
    if frame is None:
        return None
    try:
        image = frame.load(capture.root)
    except ImageError:
        return None
    canvas = Image.fromarray(image).convert("RGB")
    for finding in verdict.findings:
        for ev in finding.evidence:
            if ev.camera != camera:
                continue
            if ev.heatmap_ref:
                path = Path(ev.heatmap_ref)
                path = path if path.is_absolute() else root / path
                try:
                    heat = Image.fromarray(read_image(path)).convert("RGB").resize(canvas.size)
                    canvas = Image.blend(canvas, heat, 0.4)
                except ImageError:
                    pass
            if ev.box:
                draw = ImageDraw.Draw(canvas)
                colour = KIND_COLOURS.get(finding.kind, DEFAULT_COLOUR)
                draw.rectangle(ev.box, outline=colour, width=3)
                label = finding.kind if not ev.text else f"{finding.kind}: {ev.text[:30]}"
                draw.text((ev.box[0] + 3, max(ev.box[1] - 12, 0)), label, fill=colour)
    canvas.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return _data_uri(buf.getvalue())


def build_context(results: ResultsFolder, top: int = 24) -> dict[str, Any]:
    verdicts = results.verdicts
    actions = Counter(v.action.value for v in verdicts)
    kinds = Counter(
        f.kind for v in verdicts if v.action is not Action.PASS for f in v.findings if f.kind not in INFO_KINDS
    )
    flagged = sorted(
        (v for v in verdicts if v.action is not Action.PASS and not v.audit_sample),
        key=lambda v: (ACTION_ORDER[v.action], -_item_score(v)),
    )[:top]
    items = []
    for v in flagged:
        capture = results.captures.get(v.item_id)
        views = []
        if capture is not None:
            for frame in capture.frames:
                uri = annotated_view(capture, frame.camera, v, results.root)
                if uri:
                    views.append({"camera": frame.camera, "uri": uri})
        truth = results.truths.get(v.item_id)
        items.append(
            {
                "verdict": v,
                "views": views,
                "truth": ", ".join(truth.defect_types) if truth and truth.defect_types else ("good" if truth else None),
                "lot": capture.lot if capture else None,
            }
        )
    events = results.store.events(QUARANTINE_EVENT) if results.store else []
    investigations = []
    inv_path = results.root / "investigations.jsonl"
    if inv_path.exists():
        try:
            investigations = list(iter_jsonl(inv_path))
        except JsonlError as exc:  # a bad byte is one too: lines are decoded one by one
            raise ReportError(str(exc)) from None
    return {
        "run": results.run,
        "items_total": len(verdicts),
        "actions": dict(actions),
        "kinds": kinds.most_common(),
        "metrics": results.run.get("metrics"),
        "plots": score_plots(verdicts, results.truths),
        "flagged": items,
        "quarantines": [e.payload for e in events],
        "investigations": investigations,
    }


def render_report(results_dir: Path, out: Path, top: int = 24) -> Path:
    results = ResultsFolder.open(results_dir)
    env = Environment(loader=PackageLoader("pipeline", "templates"), autoescape=select_autoescape(["html", "j2"]))
    html = env.get_template("report.html.j2").render(**build_context(results, top))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
