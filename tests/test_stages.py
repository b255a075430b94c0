"""The stage registry."""

from __future__ import annotations

import pytest

from pipeline.catalog import Catalog
from pipeline.stages import STAGES, Stage, StageContext, load_stage, register_stage
from pipeline.types import Finding, Frame, ItemCapture


class EchoStage:
    name = "echo"
    version = "1"

    def __init__(self, kind: str = "note") -> None:
        self.kind = kind

    def __call__(self, capture: ItemCapture, ctx: StageContext) -> list[Finding]:
        return [Finding(stage=self.name, kind=self.kind, score=0.0, probability=0.0, message=capture.item_id)]


class NotAStage:
    pass


def test_register_and_load_plugin(monkeypatch) -> None:
    monkeypatch.setitem(STAGES, "echo", "")
    register_stage("echo", f"{__name__}:EchoStage")
    stage = load_stage("echo", kind="hello")
    assert isinstance(stage, Stage)
    capture = ItemCapture(item_id="i1", sku="s", frames=[Frame(camera="top", uri="x.jpg")])
    (finding,) = stage(capture, StageContext(catalog=Catalog()))
    assert (finding.kind, finding.message) == ("hello", "i1")


def test_registry_errors(monkeypatch) -> None:
    with pytest.raises(KeyError, match="unknown stage 'nope'"):
        load_stage("nope")
    with pytest.raises(ValueError, match="module:factory"):
        register_stage("bad", "no_colon")
    monkeypatch.setitem(STAGES, "bad", f"{__name__}:NotAStage")
    with pytest.raises(TypeError, match="did not build a Stage"):
        load_stage("bad")


def test_builtin_stages_are_registered() -> None:
    assert {"localize", "ocr_expiry", "anomaly"} <= set(STAGES)
