"""`SupervisedStage`: fine-grained defect types learned from complaints and reviewer decisions.

The item is named by the likeliest type (by calibrated probability) whose logit clears its
threshold (set at the target false-positive rate on held-out normals): one finding, whose
probability is the Platt-calibrated one, raised to at least 0.5 at the operating point so that
the policy acts where the threshold was set. Another type over its threshold is recorded as an
informational "possible_defect" finding naming it (level "line"): the types are trained as
independent outputs, and in one training on development renders two or three cleared their
thresholds at once on 8 of 256 defective items (5 of 10 broken seals, 3 of 40 wrong labels),
each time with a bent cover that was not there. A type whose logit clears only the complaint
operating point (a higher false-positive rate) gives such a finding too: the line never acts on
it, and a complaint investigation counts it as a sign of that type. So does one that clears
only the lower point for a complaint that names the type (`ClassCalibration.described_level`;
the evidence's "level" says which point it cleared), which counts only for such a complaint.
No model folder gives no findings: the classifier is an addition to the ensemble, not a gate.

On an item the attributes stage diverts as another item or another colour (`OTHER_LOOK_KEY`),
the classifier names no type: its inputs are what differs from the SKU's normal look, and on
such an item everything does, so a type it named would be a guess (on development renders it
named bent covers, stains and crushed corners on 20 of 100 wrong items and colours). One
informational finding says what it would have named and why it did not.

A classifier that reads residuals to the anomaly model's banks needs that model, at the version
it was trained with, in the same model folder. Without it (or after the banks were re-enrolled)
the classifier's inputs would mean something else, so it adds nothing, its version says why,
and a warning is logged: retrain it with `tunnelpi train-supervised`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from detectors.anomaly.bank import Bank
from detectors.anomaly.model import AnomalyModel, NoReference, load_shared
from detectors.anomaly.stage import find_model_dir as find_anomaly_dir
from pipeline.imageio import ImageError
from pipeline.policy import POSSIBLE_DEFECT
from pipeline.stages import StageContext
from pipeline.types import Evidence, Finding, ItemCapture
from pipeline.views import EMBEDDINGS_KEY, OTHER_LOOK_KEY, VIEWS_KEY, LocalizedView, ViewEmbeddings

from .bundle import MAX_VIEWS, MODEL_FILE, ClassScore, SupervisedBundle

log = logging.getLogger(__name__)


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
    after = ("localize", "anomaly")
    """Runs after the anomaly stage, whose patch features and bank matches it reuses."""
    joins = ("attributes",)
    """Waits for the attributes stage only before naming types: an item it found to be another
    item or colour gets none (`OTHER_LOOK_KEY`)."""

    def __init__(
        self,
        model_dir: Path | str | None = None,
        bundle: SupervisedBundle | None = None,
        reference: AnomalyModel | None = None,
    ) -> None:
        self.bundle: SupervisedBundle | None = None
        self.reference = reference
        """The anomaly model whose banks the classifier's residual inputs are taken against."""
        self.stale: str | None = None
        """Why a loaded classifier cannot run (its reference model is missing or changed)."""
        self.version = "supervised-untrained"
        if bundle is not None:
            self._use(bundle, Path(model_dir) if model_dir is not None else None)
        elif model_dir is not None:
            # A model folder without a trained classifier is normal until `tunnelpi train-supervised`
            # has run: the stage then adds nothing, and its version says so in every verdict.
            self._load(Path(model_dir))

    def _load(self, model_dir: Path) -> None:
        found = find_model_dir(model_dir)
        if found is not None:
            self._use(SupervisedBundle.load(found), model_dir)

    def _use(self, bundle: SupervisedBundle, model_dir: Path | None) -> None:
        self.bundle, self.version = bundle, bundle.version
        if not bundle.needs_reference:
            return
        if self.reference is None and model_dir is not None:
            # a shared model folder, or the classifier's own folder inside one
            anomaly = find_anomaly_dir(model_dir) or find_anomaly_dir(model_dir.parent)
            if anomaly is not None:
                self.reference = load_shared(anomaly)
        if self.reference is None:
            self.stale = f"no anomaly model beside it (trained on residuals to {bundle.reference_version})"
        elif self.reference.version != bundle.reference_version:
            self.stale = (
                f"trained on residuals to {bundle.reference_version}, the model folder has {self.reference.version}"
            )
        if self.stale:
            self.version = f"{bundle.version}+stale"
            log.warning("supervised classifier %s adds nothing: %s; retrain it", bundle.version, self.stale)

    def _shared_features(
        self, ctx: StageContext, views: list[LocalizedView], bank: Bank | None
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """The anomaly stage's patch features of these very views and, when it scored them
        against the same bank, each patch's nearest normal row and its members' calibrated maps:
        when it ran the reference model at the classifier's input size, neither the backbone,
        the bank search nor the student runs again."""
        published: ViewEmbeddings | None = ctx.shared.get(EMBEDDINGS_KEY)
        if published is None or self.reference is None or self.bundle is None:
            return None, None, None
        if self.reference.config.image_size != self.bundle.image_size:  # other scale, other features
            return None, None, None
        version = self.reference.version
        feats = published.lookup(views, version, "patches")
        if bank is None:
            return feats, None, None
        nearest = published.lookup(views, version, "nearest", bank.name)
        return feats, nearest, published.lookup(views, version, "standard", bank.name)

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
        if self.bundle is None and ctx.model_dir is not None:
            self._load(Path(ctx.model_dir))
        if self.bundle is None or self.stale:
            return []
        bank = None
        if self.bundle.needs_reference and self.reference is not None:
            record = ctx.catalog.skus.get(capture.sku)
            try:
                bank = self.reference.resolve(capture.sku, record.category if record else None)
            except NoReference:
                return []  # the anomaly stage reports the missing reference
        views = self._views(capture, ctx)
        if not views:
            return []
        findings = []
        feats, nearest, standard = self._shared_features(ctx, views, bank)
        scores = self.bundle.predict(views, self.reference, bank, feats, nearest, standard)
        ctx.wait("attributes")
        other_look = ctx.shared.get(OTHER_LOOK_KEY)
        if other_look:
            return self._other_look(str(other_look), [k for k, s in scores.items() if s.described], views)
        above = [k for k, score in scores.items() if score.above]
        # the likeliest type names the item; any other over the line is recorded as a sign of it
        named = max(above, key=lambda k: (scores[k].probability, scores[k].logit), default=None)
        for kind, score in scores.items():
            if score.described:
                findings.append(self._finding(kind, score, views, named))
        return findings

    def _finding(self, kind: str, score: ClassScore, views: list[LocalizedView], named: str | None) -> Finding:
        """The type the item is named by (`named`) as a finding the line acts on; any other type
        as an informational sign, whose evidence's "level" says which operating point it cleared."""
        assert self.bundle is not None
        cal = self.bundle.calibration[kind]
        logit, prob = score.logit, score.probability
        if kind == named:
            message = f"classifier: {kind} (logit {logit:.2f} >= threshold {cal.threshold:.2f}, p={prob:.2f})"
            data: dict[str, object] = {"logit": logit}
        elif score.above:
            message = (
                f"classifier: signs of {kind} above the line's threshold (logit {logit:.2f} >= {cal.threshold:.2f},"
                f" p={prob:.2f}), less likely than the {named} it named"
            )
            data = {"logit": logit, "type": kind, "level": "line"}
        else:
            level = "complaint" if score.complaint else "described"
            bar = cal.complaint_level if score.complaint else cal.described_level
            message = (
                f"classifier: signs of {kind} below the line's threshold (logit {logit:.2f} < "
                f"{cal.threshold:.2f}, {level} level {bar:.2f})"
            )
            data = {"logit": logit, "type": kind, "level": level}
        return Finding(
            stage=self.name,
            kind=kind if kind == named else POSSIBLE_DEFECT,
            score=logit,
            probability=max(0.5, prob) if kind == named else 0.0,
            message=message,
            evidence=[Evidence(camera=v.camera, box=list(v.box), data=dict(data)) for v in views],
            model_version=self.version,
        )

    def _other_look(self, why: str, named: list[str], views: list[LocalizedView]) -> list[Finding]:
        """The informational finding in place of the types on an item unlike its SKU (none when
        the classifier would have named nothing)."""
        if not named:
            return []
        return [
            Finding(
                stage=self.name,
                kind="info",
                score=0.0,
                probability=0.0,
                message=(
                    f"classifier: no defect type named on an item that does not look like its SKU ({why});"
                    f" read against that SKU's normal look it showed signs of {', '.join(named)}"
                ),
                evidence=[Evidence(camera=v.camera, box=list(v.box), data={"not_named": named}) for v in views],
                model_version=self.version,
            )
        ]
