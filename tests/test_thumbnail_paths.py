"""Thumbnails from stored evidence paths: only files inside the image roots, only through the safe decoder."""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from llm_agent.evidence import EvidenceRef
from llm_agent.images import inside_roots, thumbnail_uri
from llm_agent.patterns import _examples
from llm_agent.report import ComplaintView, Report, to_html
from llm_agent.rootcause import Claim
from llm_agent.taxonomy import ClaimedProblem, RootCause
from pipeline.imageio import encode_jpeg


def _jpeg(path: Path, w: int = 64, h: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_jpeg(np.full((h, w, 3), 128, np.uint8)))
    return path


@pytest.fixture
def layout(tmp_path) -> tuple[Path, Path]:
    """An image root with one valid frame, and a secret image outside it."""
    root = tmp_path / "dataset"
    _jpeg(root / "images" / "ok.jpg", 640, 480)
    _jpeg(tmp_path / "outside" / "secret.jpg")
    (root / "images" / "corrupt.jpg").write_bytes(encode_jpeg(np.zeros((64, 64, 3), np.uint8))[:150])
    (root / "images" / "garbage.jpg").write_bytes(b"not an image" * 20)
    (root / "images" / "link.jpg").symlink_to(tmp_path / "outside" / "secret.jpg")
    (root / "images" / "dirlink").symlink_to(tmp_path / "outside", target_is_directory=True)
    return root, tmp_path / "outside" / "secret.jpg"


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("../outside/secret.jpg", "outside the image roots"),
        ("images/../../outside/secret.jpg", "outside the image roots"),
        ("ABSOLUTE", "outside the image roots"),
        ("images/link.jpg", "outside the image roots"),
        ("images/dirlink/secret.jpg", "outside the image roots"),
        ("images/corrupt.jpg", "corrupt or truncated"),
        ("images/garbage.jpg", "not a decodable image"),
        ("images/missing.jpg", "no such image"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute-outside", "symlink-file", "symlink-dir", "corrupt", "garbage", "missing"],
)
def test_refused_or_unreadable_gives_none_and_a_warning(layout, caplog, uri, reason) -> None:
    root, secret = layout
    uri = str(secret) if uri == "ABSOLUTE" else uri
    with caplog.at_level(logging.WARNING, logger="tunnelpi.images"):
        assert thumbnail_uri(uri, (root,), base=root, box=[10, 10, 40, 40]) is None
    assert any(r.levelno == logging.WARNING and reason in r.getMessage() for r in caplog.records), caplog.text


@pytest.mark.parametrize("uri", ["s3://bucket/a.jpg", "memory:top", "data:image/png;base64,AAAA"])
def test_remote_uris_are_skipped_quietly(layout, caplog, uri) -> None:
    root, _ = layout
    with caplog.at_level(logging.WARNING, logger="tunnelpi.images"):
        assert thumbnail_uri(uri, (root,), base=root) is None
    assert not caplog.records


@pytest.mark.parametrize(
    ("uri", "use_base"),
    [("images/ok.jpg", True), ("ABSOLUTE", False), ("images/./ok.jpg", True)],
    ids=["relative", "absolute-inside", "dot-segment"],
)
def test_valid_image_yields_a_small_jpeg_data_uri(layout, uri, use_base) -> None:
    root, _ = layout
    uri = str(root / "images" / "ok.jpg") if uri == "ABSOLUTE" else uri
    data = thumbnail_uri(uri, (root,), base=root if use_base else None, box=[100, 100, 300, 300], max_side=120)
    assert data is not None and data.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))) as im:
        assert im.format == "JPEG" and max(im.size) == 120


def test_symlink_inside_the_root_is_allowed(layout) -> None:
    root, _ = layout
    (root / "images" / "alias.jpg").symlink_to(root / "images" / "ok.jpg")
    assert inside_roots(root / "images" / "alias.jpg", (root,)) == (root / "images" / "ok.jpg").resolve()
    assert thumbnail_uri("images/alias.jpg", (root,), base=root) is not None


def test_decompression_bomb_is_refused(layout, caplog) -> None:
    root, _ = layout
    bomb = root / "images" / "bomb.png"
    Image.new("L", (9000, 9000)).save(bomb)  # 81 MP, all one colour: a few KB on disk
    with caplog.at_level(logging.WARNING, logger="tunnelpi.images"):
        assert thumbnail_uri("images/bomb.png", (root,), base=root) is None
    assert "pixel limit" in caplog.text


def test_pattern_examples_only_thumbnail_frames_inside_the_root(layout, caplog) -> None:
    root, secret = layout
    frames = {"OK": "images/ok.jpg", "UP": "../outside/secret.jpg", "ABS": str(secret), "LINK": "images/link.jpg"}
    meta = {
        item: {"capture_json": f'{{"frames": [{{"camera": "top", "uri": "{uri}"}}]}}'} for item, uri in frames.items()
    }
    finding = {"kind": "stain", "evidence": [{"camera": "top", "box": [10, 10, 50, 50]}]}
    found = [(0.9 - i / 10, item, finding) for i, item in enumerate(frames)]
    with caplog.at_level(logging.WARNING, logger="tunnelpi.images"):
        examples = _examples(found, meta, root, (root,), n=4)
    images = {e.item_id: e.image for e in examples}
    assert images["OK"].startswith("data:image/jpeg;base64,")
    assert images["UP"] is images["ABS"] is images["LINK"] is None
    assert caplog.text.count("outside the image roots") == 3


def _report(refs: list[EvidenceRef]) -> Report:
    return Report(
        item_id="X1",
        sku="S1",
        backend="grounded",
        complaint=ComplaintView(text="box crushed", language="en", claimed_problem=ClaimedProblem.DAMAGED),
        root_cause=RootCause.DAMAGED_BEFORE_SHIPMENT,
        root_cause_description="",
        confidence=0.9,
        summary="",
        claims=[Claim(text="seen", citations=[r.id for r in refs])],
        transcript=[],
        actions=[],
        evidence=refs,
    )


def test_report_html_embeds_only_images_inside_the_evidence_roots(layout, caplog) -> None:
    root, secret = layout
    refs = [
        EvidenceRef(id="frame:top", kind="frame", description="frame", image=str(root / "images" / "ok.jpg")),
        EvidenceRef(id="crop:0", kind="crop", description="crop", image=str(root / "../outside/secret.jpg")),
        EvidenceRef(id="crop:1", kind="crop", description="crop", image=str(secret)),
        EvidenceRef(id="finding:0", kind="finding", description="heatmap", image=str(root / "images" / "link.jpg")),
        EvidenceRef(id="frame:side", kind="frame", description="frame", image=str(root / "images" / "corrupt.jpg")),
    ]
    evidence = SimpleNamespace(image_roots=(root,))
    with caplog.at_level(logging.WARNING, logger="tunnelpi.images"):
        html = to_html(_report(refs), evidence)  # type: ignore[arg-type]
    assert html.count('src="data:image/jpeg;base64,') == 1 and 'alt="frame:top"' in html
    assert caplog.text.count("outside the image roots") == 3 and "corrupt or truncated" in caplog.text
    assert "data:image" not in to_html(_report(refs)), "without evidence roots nothing is embedded"
