"""ONNX export of the feature extractor and students, and the onnxruntime scorer for the edge.

`export_onnx(model, folder)` writes `onnx/embedder.onnx` (RGB in [0, 1] -> patch features,
global embedding) and one `onnx/<bank>.student.onnx` per distinct student (banks of one category
share theirs, so it is written and loaded once). `OnnxRuntime` implements the
same two methods as the torch runtime, so `AnomalyModel.load(folder, runtime=OnnxRuntime(folder))`
scores with the same numpy maths and needs no torch at all; the parity test holds the two
within 1e-4 relative.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .bank import Bank

if TYPE_CHECKING:
    from .model import AnomalyModel

ONNX_DIR = "onnx"
OPSET = 17


def _student_file(bank_name: str) -> str:
    from .model import safe_name

    return f"{safe_name(bank_name)}.student.onnx"


def _state_digest(state: dict[str, np.ndarray]) -> str:
    h = hashlib.sha1()
    for k in sorted(state):
        h.update(k.encode())
        h.update(np.ascontiguousarray(state[k]).tobytes())
    return h.hexdigest()


def _export(module, example, path: Path, inputs: list[str], outputs: list[str]) -> None:
    import torch

    axes = {n: {0: "batch"} for n in inputs + outputs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def export_onnx(model: AnomalyModel, folder: Path | str) -> Path:
    """Write the ONNX graphs for a (saved) model folder; returns the onnx folder."""
    import torch

    from .runtime import STUDENT_PREFIX, TorchRuntime
    from .student import student_from_state

    out = Path(folder) / ONNX_DIR
    out.mkdir(parents=True, exist_ok=True)
    rt = model.rt()
    embedder = (rt if isinstance(rt, TorchRuntime) else TorchRuntime.of(model.config)).embedder
    size = model.config.image_size
    _export(embedder, torch.rand(1, 3, size, size), out / "embedder.onnx", ["pixels"], ["patches", "globals"])
    grid = size // 8
    files: dict[str, str] = {}
    written: dict[str, str] = {}
    for name, bank in model.banks.items():
        state = {k[len(STUDENT_PREFIX) :]: v for k, v in bank.extra.items() if k.startswith(STUDENT_PREFIX)}
        # a category's banks share one student: export (and later load) it once
        digest = _state_digest(state)
        if digest in written:
            files[name] = written[digest]
            continue
        student = student_from_state(state)
        files[name] = written[digest] = _student_file(name)
        _export(student, torch.rand(1, student.channels, grid, grid), out / files[name], ["features"], ["errors"])
    manifest = {"opset": OPSET, "image_size": size, "model_version": model.version, "students": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return out


class OnnxRuntime:
    """onnxruntime execution of the exported graphs (CPU)."""

    name = "onnx"

    def __init__(self, folder: Path | str, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.folder = Path(folder) / ONNX_DIR
        manifest_path = self.folder / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{self.folder}: no ONNX export here; run export_onnx first")
        self.manifest = json.loads(manifest_path.read_text())
        self._opts = ort.SessionOptions()
        self._opts.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        self._opts.inter_op_num_threads = 1
        # spinning workers burn the cores that OCR and the other items' scoring need
        self._opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._ort = ort
        self._embedder = self._session("embedder.onnx")
        self._students: dict[str, object] = {}

    def _session(self, file: str):
        return self._ort.InferenceSession(str(self.folder / file), self._opts, providers=["CPUExecutionProvider"])

    def embed(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
        patches, glob = self._embedder.run(None, {"pixels": x})
        return patches, glob

    def student_errors(self, bank: Bank, feats: np.ndarray) -> np.ndarray:
        file = self.manifest["students"].get(bank.name)
        if file is None:
            raise KeyError(f"bank {bank.name!r} has no exported student; re-run export_onnx")
        sess = self._students.get(file)
        if sess is None:
            sess = self._students[file] = self._session(file)
        return sess.run(None, {"features": np.ascontiguousarray(feats, dtype=np.float32)})[0]
