"""The demo's model folder: anomaly banks, their ONNX graphs and the colour profile, all written."""

from __future__ import annotations

import threading
from pathlib import Path

import detectors.anomaly.enroll as enroll
import detectors.anomaly.export as export
import detectors.attributes as attributes
from pipeline.demo import build_model_folder


class _Model:
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.json").write_text("{}")


class _Profile:
    def __init__(self, thread: str) -> None:
        self.thread = thread

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "profile.json").write_text(self.thread)


def test_profile_is_measured_beside_enrolment_and_everything_is_written(tmp_path, monkeypatch) -> None:
    enrolling = threading.Event()
    seen: dict[str, bool] = {}

    def fake_enroll(dataset, log):
        enrolling.set()
        return _Model()

    def fake_profile(dataset):
        seen["beside enrolment"] = enrolling.wait(10)  # runs while the main thread enrols
        return _Profile(threading.current_thread().name)

    def fake_export(model, folder):
        (Path(folder) / "onnx").mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(enroll, "enroll_dataset", fake_enroll)
    monkeypatch.setattr(export, "export_onnx", fake_export)
    monkeypatch.setattr(attributes, "fit_profile", fake_profile)
    out = build_model_folder(tmp_path / "ds", tmp_path / "model")
    assert (out / "anomaly" / "model.json").is_file() and (out / "anomaly" / "onnx").is_dir()
    assert (out / "attributes" / "profile.json").read_text().startswith("profile")
    assert seen == {"beside enrolment": True}
