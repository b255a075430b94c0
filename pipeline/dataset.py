"""Reading a tunnel dataset folder (the layout in README "Dataset schema")."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.catalog import Catalog, first_error
from pipeline.jsonl import JsonFileError, JsonlError, iter_jsonl, iter_jsonl_lines, read_json_object
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
        info = _read_info(info_path) if info_path.exists() else {}
        return cls(root=root, catalog=Catalog.load(catalog_path), info=info)

    @property
    def today(self) -> date | None:
        value = self.info.get("today")
        return date.fromisoformat(value) if value else None

    def _iter(self, name: str, split: str | None = None) -> Iterator[LabelledCapture]:
        """Records of one JSON-lines file; every error is a DatasetError naming the file and line.

        A repeated item_id anywhere in the file is an error, whichever `split` is read: results
        are keyed by item_id, so a second record would silently overwrite the first, and a
        reference in both splits would calibrate on an item its bank holds."""
        path = self.root / name
        if not path.exists():
            raise DatasetError(f"{self.root}: no {name}")
        first_line: dict[str, int] = {}
        try:
            for lineno, record in iter_jsonl_lines(path):
                item_id = record.get("item_id")
                if isinstance(item_id, str):
                    seen = first_line.setdefault(item_id, lineno)
                    if seen != lineno:
                        raise DatasetError(f"{path}:{lineno}: duplicate item_id {item_id!r} (also on line {seen})")
                if split is not None and record.get("split") != split:
                    continue
                try:
                    capture = ItemCapture.from_record(record, root=self.root)
                except ValidationError as exc:
                    raise DatasetError(f"{path}:{lineno}: invalid record: {first_error(exc)}") from exc
                try:
                    truth = GroundTruth.model_validate(record["truth"]) if record.get("truth") else None
                except ValidationError as exc:
                    raise DatasetError(f"{path}:{lineno}: invalid record: {first_error(exc, 'truth')}") from exc
                yield LabelledCapture(capture=capture, truth=truth, split=record.get("split"))
        except JsonlError as exc:
            raise DatasetError(str(exc)) from exc
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read ({exc})") from exc

    def items(self) -> Iterator[LabelledCapture]:
        """The shift (held-out items); item ids must be unique."""
        return self._iter("manifest.jsonl")

    def references(self, split: str | None = None) -> Iterator[LabelledCapture]:
        """Normal orders for enrolment ("enrol") and calibration ("calibration"); item ids must be
        unique across both."""
        return self._iter("references.jsonl", split)

    def feedback(self) -> Iterator[dict[str, Any]]:
        path = self.root / "feedback.jsonl"
        return iter_jsonl(path) if path.exists() else iter(())


def _read_info(path: Path) -> dict[str, Any]:
    """dataset.json, checked: a JSON object whose optional "today" is a YYYY-MM-DD date."""
    try:
        info = read_json_object(path)
    except JsonFileError as exc:
        raise DatasetError(str(exc)) from None
    today = info.get("today")
    if today:
        try:
            date.fromisoformat(today)
        except (TypeError, ValueError):
            raise DatasetError(f"{path}: 'today' must be a YYYY-MM-DD date, got {today!r}") from None
    return info
