"""Reading a tunnel dataset folder (the layout in README "Dataset schema")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.catalog import Catalog
from pipeline.jsonl import iter_jsonl
from pipeline.types import GroundTruth, ItemCapture


class DatasetError(ValueError):
    """The dataset folder is missing a file or has a malformed record."""


@dataclass
class LabelledCapture:
    capture: ItemCapture
    truth: GroundTruth | None
    split: str | None


@dataclass
class Dataset:
    root: Path
    catalog: Catalog
    info: dict[str, Any]

    @classmethod
    def open(cls, root: Path | str) -> Dataset:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: dataset folder not found")
        catalog_path = root / "catalog.json"
        if not catalog_path.exists():
            raise DatasetError(f"{root}: no catalog.json")
        info_path = root / "dataset.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        return cls(root=root, catalog=Catalog.load(catalog_path), info=info)

    @property
    def today(self) -> date | None:
        value = self.info.get("today")
        return date.fromisoformat(value) if value else None

    def _iter(self, name: str, split: str | None = None) -> Iterator[LabelledCapture]:
        path = self.root / name
        if not path.exists():
            raise DatasetError(f"{self.root}: no {name}")
        for lineno, record in enumerate(iter_jsonl(path), 1):
            if split is not None and record.get("split") != split:
                continue
            try:
                capture = ItemCapture.from_record(record, root=self.root)
                truth = GroundTruth.model_validate(record["truth"]) if record.get("truth") else None
            except ValidationError as exc:
                raise DatasetError(f"{path}:{lineno}: invalid record: {exc.errors()[0]['msg']}") from exc
            yield LabelledCapture(capture=capture, truth=truth, split=record.get("split"))

    def items(self) -> Iterator[LabelledCapture]:
        """The shift (held-out items)."""
        return self._iter("manifest.jsonl")

    def references(self, split: str | None = None) -> Iterator[LabelledCapture]:
        """Normal orders for enrolment ("enrol") and calibration ("calibration")."""
        return self._iter("references.jsonl", split)

    def feedback(self) -> Iterator[dict[str, Any]]:
        path = self.root / "feedback.jsonl"
        return iter_jsonl(path) if path.exists() else iter(())
