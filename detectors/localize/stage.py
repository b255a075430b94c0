"""`LocalizeStage`: localise every frame of a capture and publish the views for later stages."""

from __future__ import annotations

from pipeline.imageio import ImageError
from pipeline.stages import StageContext
from pipeline.types import Evidence, Finding, ItemCapture
from pipeline.views import VIEWS_KEY, LocalizedView

from .core import DEFAULT, LocalizeConfig, localize

VERSION = "localize-1"


class LocalizeStage:
    """Publishes `dict[camera, LocalizedView]` in `ctx.shared["views"]`.

    A frame where no item separates from the background gets a "no_item_found" finding: an
    empty belt photographed as an item must go to review, never pass silently.
    """

    name = "localize"
    version = VERSION

    def __init__(self, config: LocalizeConfig = DEFAULT) -> None:
        self.config = config

    def __call__(self, capture: ItemCapture, ctx: StageContext) -> list[Finding]:
        views: dict[str, LocalizedView] = {}
        findings: list[Finding] = []
        for frame in capture.frames:
            try:
                image = frame.load(capture.root)
            except ImageError as exc:
                findings.append(self._finding("image_error", str(exc), frame.camera))
                continue
            view = localize(image, frame.camera, self.config)
            views[frame.camera] = view
            if not view.found:
                findings.append(self._finding("no_item_found", "no item separated from the background", frame.camera))
        ctx.shared[VIEWS_KEY] = views
        return findings

    def _finding(self, kind: str, message: str, camera: str) -> Finding:
        return Finding(
            stage=self.name,
            kind=kind,
            score=1.0,
            probability=1.0,
            message=f"{camera}: {message}",
            evidence=[Evidence(camera=camera)],
            model_version=self.version,
        )
