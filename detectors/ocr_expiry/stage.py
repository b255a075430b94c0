"""`OcrExpiryStage`: the pipeline stage that reads every frame's printed dates and judges them.

Findings: `expired` and `date_mismatch` carry a probability from the read's confidence;
`unreadable` (a review kind) when the item should carry a date and no expiry could be read;
an `expiry_ok` informational finding with probability 0 when the date is fine, so the
verdict and any later investigation show which date was read and where. A SKU that carries
no date gets no finding and costs no OCR time.

Cost: every view gets one first pass (its lines are published under `TEXT_LINES_KEY` for the
attributes stage, so labels are not read twice). Only when no view shows an expiry do
fallback passes run, on the view likeliest to hold the date first, until `budget_ms` of OCR
compute is spent for the item; an item still without an expiry is `unreadable` (review),
never a guess. While other items wait for a worker (`StageContext.backlog`, the edge
service's queue) no fallback runs: the item goes to review at once instead of delaying the
items behind it. An expiry that would divert the item (expired, lot mismatch) is read once
more (`reader.second_looks`) unless the verdict deadline is near; a second read that would
clear the item turns the divert into a review (`checker.second_look_doubt`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from detectors.ocr_expiry.checker import ExpiryVerdict, defect_probability, judge, settle_sole_dates
from detectors.ocr_expiry.classify import DateRead
from detectors.ocr_expiry.engines import (
    DEFAULT_ENGINE,
    TEXT_IMAGES_KEY,
    TEXT_LINES_KEY,
    WARM_UP_IMAGE,
    Box4,
    OcrEngine,
    RapidOcrEngine,
)
from detectors.ocr_expiry.preprocess import AS_CAPTURED_PASS, as_captured_pass, describe_pass
from detectors.ocr_expiry.quantize import effective_precision
from detectors.ocr_expiry.reader import (
    ImageRead,
    continue_read,
    engine_clock,
    first_read,
    resolve_engine,
    second_looks,
)
from detectors.ocr_expiry.smear import view_without_smear
from pipeline.imageio import ImageError
from pipeline.stages import StageContext
from pipeline.types import CatalogRecord, Evidence, Finding, ItemCapture
from pipeline.views import VIEWS_KEY, LocalizedView

VERSION = "1.1"
MAX_EVIDENCE = 8
EDGE_BUDGET_MS = 300.0
"""Per-item OCR compute (thread CPU ms) at the conveyor; first passes on every view always run.
With the int8 detector a fallback pass costs a fifth of its fp32 detection, so 300 ms buys about
the passes 700 ms did; on 52 simulated dated tunnel items 700 ms read one more date (12 vs 11)
for +360 ms median CPU per item, which the lane cannot afford (144 items/min on 2 cores)."""
AUDIT_BUDGET_MS = 8000.0
"""Per-item budget for batch re-audit, where an item may take longer but should be read if it can."""


def _to_frame(box: Box4, view: LocalizedView | None) -> list[float]:
    if view is None:
        return [round(v, 1) for v in box]
    x0, y0, x1, y1 = box
    pts = view.to_frame(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    return [round(float(v), 1) for v in (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())]


def _evidence(camera: str, d: DateRead, engine: str, view: LocalizedView | None, belt_smear: int = 1) -> Evidence:
    """`belt_smear`: the smear in px taken out of the view before it was read (1: none)."""
    how = [describe_pass(d.source)]
    if belt_smear > 1 and d.source != AS_CAPTURED_PASS:
        how.insert(0, f"with the belt's {belt_smear} px smear taken out")
    read_as = ", ".join(h for h in how if h)
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
            "pass": d.source,
            **({"read_as": read_as} if read_as else {}),
            **({"belt_smear_px": belt_smear} if belt_smear > 1 else {}),
            **({"repair": d.parsed.repair} if d.parsed.repair else {}),
        },
    )


def date_likelihood(read: ImageRead) -> tuple[int, int, int]:
    """How likely a view without an expiry is to hold one: a date of another type was read
    there (the expiry is printed beside it), then the digits read, then the text read."""
    digits = sum(sum(c.isdigit() for c in line.text) for line in read.lines)
    return (len(read.dates), digits, len(read.lines))


@dataclass
class CaptureRead:
    """An item's per-camera reads (boxes in crop pixels), the images and views they were read on,
    the cameras whose frame could not be decoded, and the options they were read with."""

    reads: dict[str, ImageRead] = field(default_factory=dict)
    images: dict[str, np.ndarray] = field(default_factory=dict)
    views: dict[str, LocalizedView | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    smears: dict[str, int] = field(default_factory=dict)
    """Belt smear in px taken out of each camera's image before it was read (1: none)."""

    def second_looks(self, camera: str) -> Iterator[ImageRead]:
        """`reader.second_looks` on `camera`'s image, with the options of its first read."""
        return second_looks(self.images[camera], self.reads[camera], **self.options)


class OcrExpiryStage:
    """Reads printed dates on every frame of an item and reports expired / mismatched / unreadable."""

    name = "ocr_expiry"

    def __init__(
        self,
        engine: str | OcrEngine = DEFAULT_ENGINE,
        fallback: bool = True,
        budget_ms: float | None = EDGE_BUDGET_MS,
        precision: str | None = None,
        desmear: bool = True,
    ) -> None:
        self.engine = engine
        self.desmear = desmear
        """Read each view with the belt's motion smear taken out (`smear`), as captured only when
        that copy shows no expiry."""
        self.precision = precision
        """RapidOCR text-detector precision (auto, int8, fp32); None: the engine's default (fp32)."""
        self.fallback = fallback
        self.budget_ms = budget_ms
        """OCR compute per item (on `reader.engine_clock`) after which no fallback pass starts; None: no limit."""
        name = engine if isinstance(engine, str) else engine.name
        if isinstance(engine, RapidOcrEngine):
            name += "-" + engine.det_precision
        elif name == DEFAULT_ENGINE:
            name += "-" + effective_precision(self.precision, fallback=RapidOcrEngine.default_precision)
        self.version = f"{VERSION}+{name}"
        """Names the engine and its detector precision, so verdicts say which detector read the date."""

    def warm_up(self) -> None:
        """Build this thread's engine and read a blank view (`pipeline.runner.Inspector.warm_up`)."""
        resolve_engine(self.engine, ("en",), self.precision).read(WARM_UP_IMAGE)

    def read_capture(self, capture: ItemCapture, ctx: StageContext, record: CatalogRecord | None) -> CaptureRead:
        """Per-camera reads, the images and views used, and per-camera image errors.

        First passes on every view, then fallbacks view by view (likeliest first) until an
        expiry is found or the item's budget is spent. Publishes every view's lines under
        `TEXT_LINES_KEY`."""
        views: dict[str, LocalizedView] = ctx.shared.get(VIEWS_KEY) or {}
        order = record.expiry.date_order if record else "DMY"
        languages = tuple(record.label_languages) if record else ("en",)
        engine = resolve_engine(self.engine, languages, self.precision)
        clock = engine_clock(engine)
        deadline = None if self.budget_ms is None else clock() + self.budget_ms / 1000.0
        opts = {"engine": engine, "order": order, "today": ctx.today, "languages": languages}
        got = CaptureRead(options=opts)
        images, reads, used, errors = got.images, got.reads, got.views, got.errors
        frames: dict[str, np.ndarray] = {}
        captured: dict[str, np.ndarray] = {}
        """Each camera's view as the camera took it (its crop, or the frame when none was found)."""
        for frame in capture.frames:
            view = views.get(frame.camera)
            try:
                frames[frame.camera] = frame.load(capture.root)
            except ImageError as exc:
                errors[frame.camera] = str(exc)
                continue
            used[frame.camera] = view = view if view is not None and view.found else None
            captured[frame.camera] = view.crop if view is not None else frames[frame.camera]
            corrected = view_without_smear(frames[frame.camera], view) if self.desmear else (captured[frame.camera], 1)
            images[frame.camera], got.smears[frame.camera] = corrected
            reads[frame.camera] = first_read(images[frame.camera], **opts)
        if self.fallback and not ctx.backlog and not any(r.expiry for r in reads.values()):
            for cam in sorted(reads, key=lambda c: date_likelihood(reads[c]), reverse=True):
                reads[cam] = continue_read(
                    images[cam],
                    reads[cam],
                    deadline=deadline,
                    may_continue=ctx.optional_work_allowed,
                    first=[as_captured_pass(captured[cam])] if got.smears[cam] > 1 else [],
                    **opts,
                )
                if reads[cam].expiry is not None or reads[cam].budget_spent or reads[cam].cut_by_deadline:
                    break
        ctx.shared[TEXT_LINES_KEY] = {cam: list(r.lines) for cam, r in reads.items()}
        ctx.shared[TEXT_IMAGES_KEY] = {cam: images[cam] for cam in reads}
        return got

    def __call__(self, capture: ItemCapture, ctx: StageContext) -> list[Finding]:
        record = ctx.catalog.skus.get(capture.sku)
        policy = record.expiry if record else None
        if policy is not None and not policy.carries_date:
            return []
        got = self.read_capture(capture, ctx, record)
        got = replace(got, reads=settle_sole_dates(got.reads))

        def look_again(camera: str) -> Iterator[ImageRead]:
            looks = got.second_looks(camera)
            while ctx.optional_work_allowed():  # each further read starts only while the deadline is not near
                look = next(looks, None)
                if look is None:
                    return
                yield look

        verdict = judge(
            got.reads, today=ctx.today, policy=policy, lot=ctx.catalog.lot(capture.lot), look_again=look_again
        )
        waiting = ctx.backlog if self.fallback and verdict.status == "unreadable" else 0
        return [self._finding(verdict, got, waiting)]

    def _finding(self, verdict: ExpiryVerdict, got: CaptureRead, waiting: int = 0) -> Finding:
        """`waiting`: items that waited behind this one, so no fallback pass ran."""
        reads, errors = got.reads, got.errors

        def cite(camera: str, d: DateRead) -> Evidence:
            return _evidence(camera, d, reads[camera].engine, got.views[camera], got.smears.get(camera, 1))

        evidence: list[Evidence] = []
        if verdict.expiry is not None and verdict.camera is not None:
            evidence.append(cite(verdict.camera, verdict.expiry))
            if verdict.doubt:  # why the verdict is a review: an investigation weighs the read the same way
                evidence[0].data["doubt"] = verdict.doubt
        if verdict.second_look is not None and verdict.camera is not None:
            second = cite(verdict.camera, verdict.second_look)
            second.data["second_look"] = True
            evidence.append(second)
        for cam, read in reads.items():
            for d in read.dates:
                if d is not verdict.expiry and len(evidence) < MAX_EVIDENCE:
                    evidence.append(cite(cam, d))
        for cam, err in errors.items():
            evidence.append(Evidence(camera=cam, data={"error": err}))
        message = verdict.message + (f"; {len(errors)} frame(s) could not be decoded" if errors else "")
        if verdict.status == "unreadable" and any(r.budget_spent for r in reads.values()):
            message += f"; OCR budget of {self.budget_ms:.0f} ms spent before an expiry was found"
        if verdict.status == "unreadable" and any(r.cut_by_deadline for r in reads.values()):
            message += "; fallback passes stopped: the verdict deadline was near"
        if verdict.status == "unreadable" and waiting:
            message += f"; no fallback pass: {waiting} item(s) waiting at the lane"
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
