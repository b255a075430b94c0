"""Core types every stage, store and report meets at.

They are pydantic models so that whatever crosses a process or file boundary (manifest
lines, HTTP bodies, store rows) is validated on the way in and serialises to one JSON line.
Pixel data is never serialised: a `Frame` points at its image by `uri` and carries the
decoded array only at run time.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

ITEM_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")

Box = Annotated[list[float], Field(min_length=4, max_length=4)]
"""Axis-aligned box in frame pixels: [x0, y0, x1, y1]."""

DateOrder = Literal["DMY", "MDY", "YMD"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Action(StrEnum):
    """What the line does with an item."""

    PASS = "pass"
    DIVERT = "divert"
    REVIEW = "review"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def to_json(self) -> str:
        """One JSON line (no newline)."""
        return self.model_dump_json(exclude_none=False)

    @classmethod
    def from_json(cls, text: str | bytes):
        return cls.model_validate_json(text)


def validate_item_id(value: str) -> str:
    """Item ids become file and URL path parts, so only a safe alphabet is accepted."""
    if not ITEM_ID_PATTERN.match(value) or ".." in value:
        raise ValueError(
            f"invalid item_id {value!r}: use 1-128 characters from A-Z a-z 0-9 . _ : - "
            "starting with a letter or digit, without '..'"
        )
    return value


class Frame(_Model):
    """One camera's photograph of an item."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, arbitrary_types_allowed=True)

    camera: str = Field(min_length=1, max_length=64)
    uri: str = Field(min_length=1, description="image path (relative to the dataset root), absolute path or s3:// URL")
    timestamp: datetime = Field(default_factory=utcnow)
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    _image: np.ndarray | None = PrivateAttr(default=None)

    @classmethod
    def from_array(cls, camera: str, image: np.ndarray, uri: str | None = None) -> Frame:
        """A frame whose pixels are already decoded (RGB uint8, HxWx3)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"frame image must be HxWx3 uint8 RGB, got {image.shape} {image.dtype}")
        frame = cls(camera=camera, uri=uri or f"memory:{camera}", width=image.shape[1], height=image.shape[0])
        frame._image = image
        return frame

    @property
    def image(self) -> np.ndarray | None:
        return self._image

    def with_image(self, image: np.ndarray) -> Frame:
        """Attach pixels already decoded elsewhere (e.g. by the HTTP handler) so they are not decoded twice."""
        self._image = image
        return self

    def load(self, root: Path | str | None = None) -> np.ndarray:
        """Decode (once) and return the RGB pixels; raises `ImageError` on bad input."""
        if self._image is None:
            from pipeline.imageio import read_image

            path = Path(self.uri)
            if root is not None and not path.is_absolute():
                path = Path(root) / path
            self._image = read_image(path)
        return self._image


class ItemCapture(_Model):
    """Everything the tunnel recorded about one item: identity plus N camera frames."""

    item_id: str
    sku: str = Field(min_length=1, max_length=64)
    lot: str | None = None
    seller: str | None = None
    fc: str | None = None
    tunnel: str | None = None
    captured_at: datetime = Field(default_factory=utcnow)
    frames: list[Frame] = Field(min_length=1)
    _root: Path | None = PrivateAttr(default=None)

    @field_validator("item_id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        return validate_item_id(value)

    @model_validator(mode="after")
    def _unique_cameras(self) -> ItemCapture:
        cams = [f.camera for f in self.frames]
        if len(set(cams)) != len(cams):
            raise ValueError(f"duplicate camera ids in frames: {cams}")
        return self

    @property
    def root(self) -> Path | None:
        return self._root

    def with_root(self, root: Path | str | None) -> ItemCapture:
        self._root = Path(root) if root is not None else None
        return self

    def images(self) -> dict[str, np.ndarray]:
        """Decoded RGB pixels per camera."""
        return {f.camera: f.load(self._root) for f in self.frames}

    @classmethod
    def from_record(cls, record: dict[str, Any], root: Path | str | None = None) -> ItemCapture:
        """From one manifest line (extra keys such as ground truth are ignored)."""
        fields = {k: record[k] for k in cls.model_fields if k in record}
        return cls.model_validate(fields).with_root(root)

    @classmethod
    def from_images(cls, paths: list[Path | str], sku: str = "unknown", item_id: str | None = None) -> ItemCapture:
        """Ad-hoc capture from image files; each file becomes one camera view."""
        paths = [Path(p) for p in paths]
        if not paths:
            raise ValueError("from_images needs at least one image path")
        frames = [Frame(camera=f"cam{i}", uri=str(p.resolve())) for i, p in enumerate(paths)]
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", paths[0].stem)[:100] or "item"
        return cls(item_id=item_id or safe, sku=sku, frames=frames)


MAX_MIN_REMAINING_DAYS = 3650
"""No SKU needs ten years of shelf life left; a larger value is a typo (and overflows a date)."""
Channel = Annotated[int, Field(ge=0, le=255)]


class ExpiryPolicy(_Model):
    """How a SKU's printed date is judged."""

    carries_date: bool = False
    min_remaining_days: int = Field(default=0, ge=0, le=MAX_MIN_REMAINING_DAYS)
    date_order: DateOrder = "DMY"
    """Order to assume for ambiguous all-numeric dates (e.g. 03/04/25) in this SKU's market."""
    month_precision_ok: bool = True
    """Whether the print may omit the day (MM/YYYY); such dates are read as the month's end."""


class CatalogRecord(_Model):
    """What a SKU should look like and how to judge it."""

    sku: str = Field(min_length=1, max_length=64)
    title: str
    category: str
    attributes: dict[str, str] = Field(default_factory=dict)
    """Expected label attributes, e.g. {"size": "KING", "colour": "navy"}."""
    colour_rgb: list[Channel] | None = Field(default=None, min_length=3, max_length=3)
    expiry: ExpiryPolicy = Field(default_factory=ExpiryPolicy)
    market: str = "US"
    label_languages: list[str] = Field(default_factory=lambda: ["en"])
    packaging_variants: list[str] = Field(default_factory=lambda: ["standard"])
    """Packaging looks that are acceptable for this SKU (e.g. "no_shoebox")."""


class LotRecord(_Model):
    """What the inventory system believes about one inbound lot."""

    lot: str
    sku: str
    seller: str
    recorded_expiry: date | None = None
    quantity: int = Field(default=0, ge=0)


class Evidence(_Model):
    """Where a finding can be seen, so a person (or the investigator) can check it."""

    camera: str | None = None
    box: Box | None = None
    text: str | None = None
    mask_ref: str | None = None
    heatmap_ref: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class Finding(_Model):
    """One stage's statement about an item: what, how sure, and where it is visible."""

    stage: str
    kind: str
    score: float
    probability: float = Field(ge=0.0, le=1.0)
    """Calibrated probability that the finding is a real defect."""
    message: str = ""
    evidence: list[Evidence] = Field(default_factory=list)
    model_version: str | None = None


class Verdict(_Model):
    """The decision for one item and why."""

    item_id: str
    sku: str
    action: Action
    reasons: list[str] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    model_versions: dict[str, str] = Field(default_factory=dict)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    deadline_missed: bool = False
    audit_sample: bool = False
    audit_rate: float | None = None
    """The audit sampling rate in force, so audit outcomes can be re-weighted into miss rates."""
    decided_at: datetime = Field(default_factory=utcnow)

    @field_validator("item_id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        return validate_item_id(value)


class DefectTruth(_Model):
    """Ground truth for one defect on a simulated (or hand-labelled) item."""

    type: str
    masks: dict[str, str] = Field(default_factory=dict)
    """camera -> mask PNG path (relative to the dataset root) where the defect is visible."""
    visible: bool = True
    """False for damage that happens after the tunnel (e.g. in transit)."""
    details: dict[str, Any] = Field(default_factory=dict)


class GroundTruth(_Model):
    defects: list[DefectTruth] = Field(default_factory=list)
    printed_expiry: str | None = None
    """Expiry as printed, ISO (YYYY-MM-DD or YYYY-MM), if the item carries one."""
    printed_manufactured: str | None = None
    benign: list[str] = Field(default_factory=list)
    """Benign variations present (must not be flagged): e.g. "other_fc_tote", "unusual_pose"."""
    actual_sku: str | None = None
    """For a wrong item: the SKU that was really photographed."""

    @property
    def is_defective(self) -> bool:
        return any(d.visible for d in self.defects)

    @property
    def defect_types(self) -> list[str]:
        return [d.type for d in self.defects]
