"""`SupervisedStage`: fine-grained defect types learned from complaints and reviewer decisions.

One finding per type whose logit clears its threshold (set at the target false-positive rate
on held-out normals). Its probability is the Platt-calibrated one, raised to at least 0.5 at
the operating point so that the policy acts where the threshold was set. No model folder
gives no findings: the classifier is an addition to the ensemble, not a gate.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.imageio import ImageError
from pipeline.stages import StageContext
from pipeline.types import Evidence, Finding, ItemCapture
from pipeline.views import VIEWS_KEY, LocalizedView

from .bundle import MAX_VIEWS, MODEL_FILE, SupervisedBundle


def find_model_dir(path: Path | None) -> Path | None:
    """The model folder itself, or its `supervised/` subfolder (a shared model directory)."""
    if path is None:
        return None
    for cand in (Path(path), Path(path) / "supervised"):
        if (cand / MODEL_FILE).is_file():
            return cand
    return None


class SupervisedStage:
    name = "supervised"

    def __init__(self, model_dir: Path | str | None = None, bundle: SupervisedBundle | None = None) -> None:
        self.bundle = bundle
        if bundle is None and model_dir is not None:
            # A model folder without a trained classifier is normal until `tunnelpi train-supervised`
            # has run: the stage then adds nothing, and its version says so in every verdict.
            found = find_model_dir(Path(model_dir))
            if found is not None:
                self.bundle = SupervisedBundle.load(found)
        self.version = self.bundle.version if self.bundle else "supervised-untrained"

    def _views(self, capture: ItemCapture, ctx: StageContext) -> list[LocalizedView]:
        from detectors.localize import localize

        shared: dict[str, LocalizedView] = ctx.shared.get(VIEWS_KEY) or {}
        views = []
        for frame in sorted(capture.frames, key=lambda f: f.camera):
            view = shared.get(frame.camera)
            if view is None:
                try:
                    view = localize(frame.load(capture.root), frame.camera)
                except ImageError:
                    continue
            if view.found:
                views.append(view)
        return views[:MAX_VIEWS]

    def __call__(self, capture: ItemCapture, ctx: StageContext) -> list[Finding]:
        if self.bundle is None:
            folder = find_model_dir(ctx.model_dir)
            if folder is None:
                return []
            self.bundle = SupervisedBundle.load(folder)
            self.version = self.bundle.version
        views = self._views(capture, ctx)
        if not views:
            return []
        findings = []
        for kind, (logit, prob, above) in self.bundle.predict(views).items():
            if not above:
                continue
            threshold = self.bundle.calibration[kind].threshold
            findings.append(
                Finding(
                    stage=self.name,
                    kind=kind,
                    score=logit,
                    probability=max(0.5, prob),
                    message=f"classifier: {kind} (logit {logit:.2f} >= threshold {threshold:.2f}, p={prob:.2f})",
                    evidence=[Evidence(camera=v.camera, box=list(v.box), data={"logit": logit}) for v in views],
                    model_version=self.version,
                )
            )
        return findings
