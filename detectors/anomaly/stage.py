"""`AnomalyStage`: compare an item's views with its SKU's normal bank and report calibrated findings.

Uses the localised views that `localize` published in `ctx.shared["views"]` and localises by
itself when they are absent; publishes the views' global embeddings and patch features
(`EMBEDDINGS_KEY`) for the wrong-item check and the fine-grained classifier. Bad input never
passes silently: no bank for the SKU or its category gives a "no_reference" finding, a capture
where no view shows an item gives "no_item_found", an unusable image gives "image_error" (all
three send the item to review).

An item in a tote of its own colour (a navy shirt in a blue tote) is often cut down to its
print by the localiser, and that crop looks like nothing in the bank. An anomaly seen only on
such views is a review, not a divert (`doubtful_outline`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.imageio import ImageError
from pipeline.policy import REVIEW_CEILING_P
from pipeline.stages import StageContext
from pipeline.types import CatalogRecord, Evidence, Finding, ItemCapture
from pipeline.views import EMBEDDINGS_KEY, VIEWS_KEY, LocalizedView, ViewEmbeddings

from . import heatmap
from .model import AnomalyModel, ItemResult, NoReference
from .prepare import check_informative, prepare, view_of

HOT_LEVEL = 3.0
"""Standardised map level that outlines the evidence box."""


def find_model_dir(path: Path | None) -> Path | None:
    """The model folder itself, or its `anomaly/` subfolder (a shared model directory)."""
    if path is None:
        return None
    for cand in (Path(path), Path(path) / "anomaly"):
        if (cand / "model.json").is_file():
            return cand
    return None


class AnomalyStage:
    name = "anomaly"

    def __init__(
        self,
        model_dir: Path | str | None = None,
        runtime: str = "torch",
        model: AnomalyModel | None = None,
        threads: int | None = None,
    ):
        self.runtime = runtime
        self.threads = threads
        """onnxruntime threads per call; 1 where several items are scored at once (the edge service)."""
        self.model = model
        if model is None and model_dir is not None:
            found = find_model_dir(Path(model_dir))
            if found is None:
                raise FileNotFoundError(f"{model_dir}: no anomaly model (model.json) here or in anomaly/")
            self.model = self._load(found)
        self.version = self.model.version if self.model else "anomaly-unloaded"

    def _load(self, folder: Path) -> AnomalyModel:
        rt = None
        if self.runtime == "onnx":
            from .export import OnnxRuntime

            rt = OnnxRuntime(folder, threads=self.threads)
        return AnomalyModel.load(folder, runtime=rt)

    def _finding(self, kind: str, message: str, cameras: list[str] | None = None, **data: Any) -> Finding:
        return Finding(
            stage=self.name,
            kind=kind,
            score=1.0,
            probability=1.0,
            message=message,
            evidence=[Evidence(camera=c, data=data) for c in (cameras or [None])],
            model_version=self.version,
        )

    def __call__(self, capture: ItemCapture, ctx: StageContext) -> list[Finding]:
        if self.model is None:
            folder = find_model_dir(ctx.model_dir)
            if folder is None:
                return [self._finding("no_reference", "review: no reference (no anomaly model loaded)")]
            self.model = self._load(folder)
            self.version = self.model.version
        record = ctx.catalog.skus.get(capture.sku)
        try:
            bank = self.model.resolve(capture.sku, record.category if record else None)
        except NoReference as exc:
            return [self._finding("no_reference", f"review: no reference ({exc})", sku=capture.sku)]
        views, findings = self._views(capture, ctx)
        usable = [v for v in views if v.found or not self.model.config.localize]
        if not usable:
            if views:
                findings.append(self._finding("no_item_found", "no item found in any view", [v.camera for v in views]))
            return findings
        result = self.model.score_prepared([prepare(v, self.model.config.image_size) for v in usable], bank)
        ctx.shared[EMBEDDINGS_KEY] = ViewEmbeddings(
            self.model.version,
            {v.camera: (v.prepared.view, v.embedding) for v in result.views if v.embedding is not None},
            {v.camera: v.patches for v in result.views if v.patches is not None},
            bank.name,
            {v.camera: v.nearest for v in result.views if v.nearest is not None},
            {v.camera: v.standard for v in result.views if v.standard is not None},
        )
        doubtful = doubtful_outline(capture, record, result) if result.anomalous else set()
        findings.append(self._result_finding(capture, ctx, result, doubtful))
        return findings

    def _views(self, capture: ItemCapture, ctx: StageContext) -> tuple[list[LocalizedView], list[Finding]]:
        shared: dict[str, LocalizedView] = ctx.shared.get(VIEWS_KEY) or {}
        views, findings = [], []
        for frame in capture.frames:
            try:
                if frame.camera in shared and self.model.config.localize:
                    view = shared[frame.camera]
                    check_informative(view.crop, frame.camera)
                else:
                    view = view_of(frame.load(capture.root), frame.camera, self.model.config.localize)
            except ImageError as exc:
                findings.append(self._finding("image_error", str(exc), [frame.camera]))
                continue
            views.append(view)
        return views, findings

    def _result_finding(
        self, capture: ItemCapture, ctx: StageContext, result: ItemResult, doubtful: set[str] | None = None
    ) -> Finding:
        heat_dir = ctx.config.get("heatmap_dir")
        evidence = []
        for v in result.views:
            ref = None
            if heat_dir:
                ref = str(
                    heatmap.write(
                        Path(heat_dir) / capture.item_id / f"{v.camera}.anomaly.png", v.heatmap, v.prepared.view
                    )
                )
            evidence.append(
                Evidence(
                    camera=v.camera,
                    box=heatmap.hot_box(v.heatmap, v.prepared.view, HOT_LEVEL)
                    if v.anomalous
                    else list(v.prepared.view.box),
                    heatmap_ref=ref,
                    data={
                        "members": v.z,
                        "raw": v.raw,
                        "top_member": v.top_member,
                        "view_score": v.score,
                        "view_probability": v.probability,
                        "localized": v.prepared.view.found,
                        "angle_deg": v.prepared.view.angle_deg,
                        "outline_doubtful": v.camera in (doubtful or ()),
                    },
                )
            )
        kind_note = " (category bank)" if result.bank_kind == "category" else ""
        top = max(result.views, key=lambda v: v.score)
        message = (
            f"{'anomalous' if result.anomalous else 'normal'}: score {result.score:.2f} vs threshold "
            f"{result.threshold:.2f}, strongest {top.camera}/{top.top_member}; bank {result.bank}{kind_note}"
        )
        probability = result.probability
        if doubtful:
            probability = min(probability, REVIEW_CEILING_P)
            message += (
                f"; seen only where the tote shows the item's own colour ({', '.join(sorted(doubtful))}), so the "
                "outline may be cut to its print: review, not a divert"
            )
        return Finding(
            stage=self.name,
            kind="anomaly",
            score=result.score,
            probability=probability,
            message=message,
            evidence=evidence,
            model_version=self.version,
        )


def doubtful_outline(capture: ItemCapture, record: CatalogRecord | None, result: ItemResult) -> set[str]:
    """The cameras of the anomalous views (the top-scoring one if none is) when the item box of
    every one of them is ringed by the item's catalog colour (`attributes.colour.camouflaged`).
    Empty when an anomalous view has a clear surround (damage seen clearly is damage) or the
    catalog gives no colour."""
    from detectors.attributes.colour import camouflaged

    if record is None or record.colour_rgb is None:
        return set()
    frames = {f.camera: f for f in capture.frames}
    anomalous = [v for v in result.views if v.anomalous] or [max(result.views, key=lambda v: v.score)]
    doubtful = set()
    for v in anomalous:
        frame = frames.get(v.camera)
        if frame is None:
            return set()
        try:
            pixels = frame.load(capture.root)
        except ImageError:
            return set()
        if not camouflaged(pixels, list(v.prepared.view.box), record.colour_rgb):
            return set()
        doubtful.add(v.camera)
    return doubtful
