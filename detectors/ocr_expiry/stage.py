"""`OcrExpiryStage`: the pipeline stage that reads every frame's printed dates and judges them.

Findings: `expired` and `date_mismatch` carry a probability from the read's confidence;
`unreadable` (a review kind) when the item should carry a date and no expiry could be read;
an `expiry_ok` informational finding with probability 0 when the date is fine, so the
verdict and any later investigation show which date was read and where. A SKU that carries
no date gets no finding and costs no OCR time.
"""

from __future__ import annotations

import numpy as np

from detectors.ocr_expiry.checker import ExpiryVerdict, defect_probability, judge
from detectors.ocr_expiry.classify import DateRead
from detectors.ocr_expiry.engines import DEFAULT_ENGINE, Box4, OcrEngine
from detectors.ocr_expiry.reader import ImageRead, read_dates
from pipeline.imageio import ImageError
from pipeline.stages import StageContext
from pipeline.types import CatalogRecord, Evidence, Finding, ItemCapture
from pipeline.views import VIEWS_KEY, LocalizedView

VERSION = "1.0"
MAX_EVIDENCE = 8


def _to_frame(box: Box4, view: LocalizedView | None) -> list[float]:
    if view is None:
        return [round(v, 1) for v in box]
    x0, y0, x1, y1 = box
    pts = view.to_frame(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    return [round(float(v), 1) for v in (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())]


def _evidence(camera: str, d: DateRead, engine: str, view: LocalizedView | None) -> Evidence:
    return Evidence(
        camera=camera,
        box=_to_frame(d.box, view),
        text=d.line_text,
        data={
            "date": d.iso,
            "type": d.type,
            "confidence": round(d.confidence, 3),
            "engine": engine,
            "reason": d.reason,
            "keyword": d.keyword,
        },
    )


class OcrExpiryStage:
    """Reads printed dates on every frame of an item and reports expired / mismatched / unreadable."""

    name = "ocr_expiry"

    def __init__(self, engine: str | OcrEngine = DEFAULT_ENGINE, fallback: bool = True) -> None:
        self.engine = engine
        self.fallback = fallback
        self.version = f"{VERSION}+{engine if isinstance(engine, str) else engine.name}"

    def read_capture(
        self, capture: ItemCapture, ctx: StageContext, record: CatalogRecord | None
    ) -> tuple[dict[str, ImageRead], dict[str, LocalizedView | None], dict[str, str]]:
        """Per-camera reads (boxes in crop pixels), the views used, and per-camera image errors."""
        views: dict[str, LocalizedView] = ctx.shared.get(VIEWS_KEY) or {}
        order = record.expiry.date_order if record else "DMY"
        languages = tuple(record.label_languages) if record else ("en",)
        reads: dict[str, ImageRead] = {}
        used: dict[str, LocalizedView | None] = {}
        errors: dict[str, str] = {}
        for frame in capture.frames:
            view = views.get(frame.camera)
            if view is not None and view.found:
                image = view.crop
            else:
                view = None
                try:
                    image = frame.load(capture.root)
                except ImageError as exc:
                    errors[frame.camera] = str(exc)
                    continue
            reads[frame.camera] = read_dates(
                image, engine=self.engine, order=order, today=ctx.today, languages=languages, fallback=self.fallback
            )
            used[frame.camera] = view
        return reads, used, errors

    def __call__(self, capture: ItemCapture, ctx: StageContext) -> list[Finding]:
        record = ctx.catalog.skus.get(capture.sku)
        policy = record.expiry if record else None
        if policy is not None and not policy.carries_date:
            return []
        reads, views, errors = self.read_capture(capture, ctx, record)
        verdict = judge(reads, today=ctx.today, policy=policy, lot=ctx.catalog.lot(capture.lot))
        return [self._finding(verdict, reads, views, errors)]

    def _finding(
        self,
        verdict: ExpiryVerdict,
        reads: dict[str, ImageRead],
        views: dict[str, LocalizedView | None],
        errors: dict[str, str],
    ) -> Finding:
        evidence: list[Evidence] = []
        if verdict.expiry is not None and verdict.camera is not None:
            evidence.append(
                _evidence(verdict.camera, verdict.expiry, reads[verdict.camera].engine, views[verdict.camera])
            )
        for cam, read in reads.items():
            for d in read.dates:
                if d is not verdict.expiry and len(evidence) < MAX_EVIDENCE:
                    evidence.append(_evidence(cam, d, read.engine, views[cam]))
        for cam, err in errors.items():
            evidence.append(Evidence(camera=cam, data={"error": err}))
        message = verdict.message + (f"; {len(errors)} frame(s) could not be decoded" if errors else "")
        if verdict.status in ("expired", "date_mismatch"):
            kind, probability = verdict.status, defect_probability(verdict)
        elif verdict.status == "unreadable":
            kind, probability = "unreadable", 1.0
        else:
            kind, probability = "expiry_ok", 0.0
        return Finding(
            stage=self.name,
            kind=kind,
            score=verdict.confidence,
            probability=probability,
            message=message,
            evidence=evidence,
            model_version=self.version,
        )
