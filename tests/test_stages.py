"""The stage registry."""

from __future__ import annotations

import pytest

from pipeline.catalog import Catalog
from pipeline.stages import DEFAULT_STAGES, STAGES, Stage, StageContext, load_stage, register_stage
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
    assert set(DEFAULT_STAGES) <= set(STAGES)
    assert {"localize", "ocr_expiry", "anomaly", "attributes", "supervised"} <= set(DEFAULT_STAGES)


class NeedsModel:
    name, version = "needs_model", "1"

    def __init__(self, model_dir=None) -> None:
        self.model_dir = model_dir

    def __call__(self, capture, ctx):
        return []


def test_model_dir_goes_only_to_factories_that_take_it(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(STAGES, "needs_model", f"{__name__}:NeedsModel")
    monkeypatch.setitem(STAGES, "echo", f"{__name__}:EchoStage")
    assert load_stage("needs_model", model_dir=tmp_path).model_dir == tmp_path
    assert load_stage("echo", model_dir=tmp_path).kind == "note"
