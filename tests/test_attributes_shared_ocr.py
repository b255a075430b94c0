"""The attributes stage reuses the text lines ocr_expiry publishes: one OCR read per view, not two."""

from __future__ import annotations

from datetime import date

import numpy as np

from detectors.attributes.stage import AttributesStage
from detectors.ocr_expiry import TEXT_LINES_KEY, OcrExpiryStage
from detectors.ocr_expiry.engines import TextLine
from pipeline.catalog import Catalog
from pipeline.runner import Inspector
from pipeline.stages import StageContext
from pipeline.types import CatalogRecord, ExpiryPolicy, Finding, Frame, ItemCapture
from pipeline.views import VIEWS_KEY, LocalizedView

TODAY = date(2026, 11, 22)
CAMERAS = ("top", "left", "right")


class CountingEngine:
    """Reads the same label and date on every image and counts the reads."""

    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def read(self, image: np.ndarray) -> list[TextLine]:
        self.calls += 1
        return [TextLine("SIZE M", (10.0, 10.0, 90.0, 30.0), 0.99), TextLine("EXP 01/06/2027", (10, 40, 150, 60), 0.98)]


class WholeFrameLocalize:
    """Publishes each frame as its own localised view (stands in for the localize stage)."""

    name = "localize"
    version = "test"

    def __call__(self, capture: ItemCapture, ctx: StageContext) -> list[Finding]:
        views = {}
        for frame in capture.frames:
            img = frame.load(capture.root)
            views[frame.camera] = LocalizedView(
                camera=frame.camera, crop=img, mask=np.ones(img.shape[:2], bool), box=[0, 0, img.shape[1], img.shape[0]]
            )
        ctx.shared[VIEWS_KEY] = views
        return []


def _catalog(carries_date: bool) -> Catalog:
    rec = CatalogRecord(
        sku="SNACK-M", title="snack box", category="food", attributes={"size": "M"},
        expiry=ExpiryPolicy(carries_date=carries_date, min_remaining_days=0, date_order="DMY"),
    )  # fmt: skip
    return Catalog(skus={"SNACK-M": rec})


def _capture() -> ItemCapture:
    frames = [Frame.from_array(cam, np.full((120, 200, 3), 200, np.uint8)) for cam in CAMERAS]
    return ItemCapture(item_id="I1", sku="SNACK-M", frames=frames)


def _inspect(carries_date: bool) -> tuple[CountingEngine, dict[str, list[str]]]:
    engine = CountingEngine()
    stages = [
        WholeFrameLocalize(),
        OcrExpiryStage(engine=engine),
        AttributesStage(engine=engine, check_colour=False, check_identity=False),
    ]
    with Inspector(catalog=_catalog(carries_date), stages=stages, today=TODAY) as inspector:
        verdict = inspector.inspect(_capture())
    kinds: dict[str, list[str]] = {}
    for f in verdict.findings:
        kinds.setdefault(f.stage, []).append(f.kind)
    return engine, kinds


def test_attributes_runs_after_ocr_expiry_and_joins_anomaly_part_way() -> None:
    assert AttributesStage.after == ("localize", "ocr_expiry")
    assert AttributesStage.joins == ("anomaly",)


def test_dated_sku_is_read_once_per_view_for_both_stages() -> None:
    engine, kinds = _inspect(carries_date=True)
    assert kinds == {"ocr_expiry": ["expiry_ok"], "attributes": ["label_ok"]}
    assert engine.calls == len(CAMERAS)


def test_undated_sku_labels_are_still_read_by_attributes() -> None:
    engine, kinds = _inspect(carries_date=False)
    assert kinds == {"attributes": ["label_ok"]}
    assert 1 <= engine.calls <= len(CAMERAS)  # attributes stops once the label is settled


def test_published_lines_are_per_camera_with_their_pass() -> None:
    ctx = StageContext(_catalog(True), today=TODAY)
    WholeFrameLocalize()(_capture(), ctx)
    OcrExpiryStage(engine=CountingEngine())(_capture(), ctx)
    published = ctx.shared[TEXT_LINES_KEY]
    assert set(published) == set(CAMERAS)
    assert all(line.source in ("plain", "contrast") and line.text for lines in published.values() for line in lines)
