"""`enroll` on a catalog export of reference photos alone (no calibration split): SKUs with enough
of them calibrate cross-fitted instead of being left without a bank."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from detectors.anomaly import ModelConfig
from detectors.anomaly.enroll import MIN_CROSS_FIT, enroll_dataset
from detectors.anomaly.model import CAL_PREFIX, CROSS_FIT_KEY, NoReference
from tunnel_sim.catalog import build_catalog

CONFIG = ModelConfig(image_size=96, localize=False, student_steps=10, max_patches=256)


def _product(seed: int, tone: int) -> np.ndarray:
    """A textured product face, a little different each photo."""
    rng = np.random.default_rng(seed)
    image = np.full((120, 120, 3), tone, np.uint8)
    image += rng.integers(0, 25, image.shape, dtype=np.uint8)
    cv2.putText(image, "LOT", (10 + seed % 5, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (20, 20, 20), 2)
    return image


def _dataset(root: Path, references: dict[str, tuple[int, int]]) -> tuple[Path, dict[str, str]]:
    """A catalog export: sku alias -> (enrolment photos, calibration photos), two SKUs of one category."""
    catalog = build_catalog(3).catalog
    by_category: dict[str, list[str]] = {}
    for sku, record in sorted(catalog.skus.items()):
        by_category.setdefault(record.category, []).append(sku)
    skus = next(group for group in by_category.values() if len(group) >= 2)
    names = dict(zip(sorted(references), skus, strict=False))
    root.mkdir()
    catalog.save(root / "catalog.json")
    lines = []
    for alias, (enrol, calibration) in sorted(references.items()):
        for k in range(enrol + calibration):
            item = f"{alias}-{k:03d}"
            (root / "images" / item).mkdir(parents=True)
            tone = 90 if alias == "a" else 160
            cv2.imwrite(str(root / "images" / item / "top.png"), _product(k, tone))
            frames = [{"camera": "top", "uri": f"images/{item}/top.png"}]
            split = "enrol" if k < enrol else "calibration"
            lines.append(json.dumps({"item_id": item, "sku": names[alias], "frames": frames, "split": split}))
    (root / "references.jsonl").write_text("\n".join(lines) + "\n")
    (root / "manifest.jsonl").write_text("")
    return root, names


def test_a_sku_without_calibration_photos_is_cross_fitted_and_a_small_one_joins_its_category(tmp_path: Path) -> None:
    root, names = _dataset(tmp_path / "ds", {"a": (6, 0), "b": (3, 0)})
    messages: list[str] = []
    model = enroll_dataset(root, CONFIG, log=messages.append)
    bank = model.banks[names["a"]]
    assert bank.kind == "sku" and bank.n_images == 6
    assert sorted(bank.meta[CROSS_FIT_KEY]["items"]) == sorted(f"{names['a']}+{i}" for i in range(6))
    assert not any(key.startswith(CAL_PREFIX) for key in bank.extra)
    assert any(f"{names['a']}: bank from 6 items, all cross-fitted" in m for m in messages)
    # three photos are too few to cross-fit: the category bank serves that SKU, calibrated on the
    # cross-fitted SKU's scores
    served = model.resolve(names["b"])
    assert served.kind == "category"
    assert served.meta["calibration"]["n_items"] == 6
    assert served.n_images == 9


def test_calibration_photos_are_used_where_a_sku_has_them(tmp_path: Path) -> None:
    root, names = _dataset(tmp_path / "ds", {"a": (4, 3), "b": (6, 0)})
    model = enroll_dataset(root, CONFIG, log=lambda _: None)
    held_out, cross_fitted = model.banks[names["a"]], model.banks[names["b"]]
    assert CROSS_FIT_KEY not in held_out.meta and held_out.meta["calibration"]["n_items"] == 3
    assert held_out.n_images == 4
    assert cross_fitted.meta["calibration"]["n_items"] == 6
    category = model.banks[next(iter(model.categories.values()))]
    assert category.meta["calibration"]["n_items"] == 3 + 6


def test_a_category_with_nothing_to_calibrate_on_gets_no_bank_and_says_why(tmp_path: Path) -> None:
    root, names = _dataset(tmp_path / "ds", {"a": (MIN_CROSS_FIT - 1, 0), "b": (3, 0)})
    messages: list[str] = []
    model = enroll_dataset(root, CONFIG, log=messages.append)
    assert model.banks == {}
    assert any("no calibration images and no SKU with 5 or more enrolment items" in m for m in messages)
    with pytest.raises(NoReference):
        model.resolve(names["a"])


def test_enroll_refuses_to_write_a_model_without_banks(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app

    root, _ = _dataset(tmp_path / "ds", {"a": (2, 0)})
    out = tmp_path / "model"
    result = CliRunner().invoke(app, ["enroll", "--dataset", str(root), "--out", str(out), "--no-onnx"])
    assert result.exit_code != 0
    assert "no SKU could be enrolled" in result.output
    assert not out.exists()
