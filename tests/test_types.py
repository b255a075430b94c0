"""Core types: validation, JSON round trips, adapters."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from pipeline.types import (
    Action,
    CatalogRecord,
    DefectTruth,
    Evidence,
    Finding,
    Frame,
    GroundTruth,
    ItemCapture,
    Verdict,
)


def _capture(**overrides) -> ItemCapture:
    fields = {"item_id": "S1-000001", "sku": "SKU-1", "frames": [Frame(camera="top", uri="images/a/top.jpg")]}
    fields.update(overrides)
    return ItemCapture(**fields)


@pytest.mark.parametrize(
    "item_id, ok",
    [
        ("S1-000001", True),
        ("a", True),
        ("FC:BER1.T1_42", True),
        ("../etc/passwd", False),
        ("a/b", False),
        ("a..b", False),
        ("", False),
        (".hidden", False),
        ("x" * 129, False),
        ("space here", False),
    ],
)
def test_item_id_validation(item_id: str, ok: bool) -> None:
    if ok:
        assert _capture(item_id=item_id).item_id == item_id
    else:
        with pytest.raises(ValidationError, match="item_id"):
            _capture(item_id=item_id)


@pytest.mark.parametrize(
    "model",
    [
        _capture(lot="L1", seller="acme", fc="FC1", tunnel="T1"),
        CatalogRecord(sku="B-KING", title="Sheets", category="bedding", attributes={"size": "KING"}),
        Finding(
            stage="ocr_expiry",
            kind="expired",
            score=0.9,
            probability=0.97,
            evidence=[Evidence(camera="top", box=[1, 2, 30, 40], text="EXP 12/2025", data={"date": "2025-12"})],
        ),
        Verdict(item_id="S1-1", sku="X", action=Action.DIVERT, reasons=["expired"], timings_ms={"ocr": 12.5}),
        GroundTruth(defects=[DefectTruth(type="stain", masks={"top": "m.png"})], printed_expiry="2027-01"),
    ],
    ids=lambda m: type(m).__name__,
)
def test_json_round_trip(model) -> None:
    text = model.to_json()
    assert "\n" not in text
    assert type(model).from_json(text) == model


def test_capture_rejects_duplicate_cameras_and_empty_frames() -> None:
    with pytest.raises(ValidationError, match="duplicate camera"):
        _capture(frames=[Frame(camera="top", uri="a.jpg"), Frame(camera="top", uri="b.jpg")])
    with pytest.raises(ValidationError):
        _capture(frames=[])


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Finding(stage="x", kind="y", score=0, probability=0, colour="red")


def test_probability_bounds() -> None:
    with pytest.raises(ValidationError):
        Finding(stage="x", kind="y", score=1, probability=1.5)


def test_box_needs_four_numbers() -> None:
    with pytest.raises(ValidationError):
        Evidence(box=[1, 2, 3])


def test_frame_from_array_keeps_pixels_out_of_json() -> None:
    img = np.zeros((20, 30, 3), np.uint8)
    frame = Frame.from_array("left", img)
    assert frame.image is img and (frame.width, frame.height) == (30, 20)
    assert "image" not in frame.to_json()
    with pytest.raises(ValueError, match="HxWx3"):
        Frame.from_array("left", np.zeros((20, 30), np.uint8))


def test_capture_from_record_resolves_relative_images(tmp_path) -> None:
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "images" / "top.jpg")
    record = {
        "item_id": "I1",
        "sku": "S",
        "frames": [{"camera": "top", "uri": "images/top.jpg"}],
        "truth": {"defects": []},
        "split": "test",
    }
    capture = ItemCapture.from_record(record, root=tmp_path)
    image = capture.images()["top"]
    assert image.shape == (30, 40, 3) and image[..., 0].mean() > 150


def test_from_images_builds_one_frame_per_file(tmp_path) -> None:
    paths = [tmp_path / "a b.jpg", tmp_path / "c.jpg"]
    capture = ItemCapture.from_images(paths, sku="X")
    assert [f.camera for f in capture.frames] == ["cam0", "cam1"]
    assert capture.item_id == "a_b"


def test_ground_truth_visibility() -> None:
    transit = GroundTruth(defects=[DefectTruth(type="transit_damage", visible=False)])
    assert not transit.is_defective and transit.defect_types == ["transit_damage"]
    assert GroundTruth(defects=[DefectTruth(type="stain")]).is_defective
