"""The catalog: what each SKU should look like, plus the inventory's lot records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from pipeline.types import CatalogRecord, LotRecord


class CatalogError(ValueError):
    """The catalog file is missing, malformed or incomplete."""


class UnknownSKU(KeyError):
    """A SKU that the catalog does not list."""

    def __str__(self) -> str:
        return f"unknown SKU {self.args[0]!r}: not in the catalog"


class Catalog(BaseModel):
    """SKU records and lot records, loaded from `catalog.json`."""

    skus: dict[str, CatalogRecord] = Field(default_factory=dict)
    lots: dict[str, LotRecord] = Field(default_factory=dict)
    sellers: list[str] = Field(default_factory=list)

    def get(self, sku: str) -> CatalogRecord:
        try:
            return self.skus[sku]
        except KeyError:
            raise UnknownSKU(sku) from None

    def __contains__(self, sku: str) -> bool:
        return sku in self.skus

    def lot(self, lot: str | None) -> LotRecord | None:
        return self.lots.get(lot) if lot else None

    def category_by_sku(self) -> dict[str, str]:
        return {sku: rec.category for sku, rec in self.skus.items()}

    def categories(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rec in self.skus.values():
            out.setdefault(rec.category, []).append(rec.sku)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "skus": [r.model_dump(mode="json") for r in self.skus.values()],
            "lots": [r.model_dump(mode="json") for r in self.lots.values()],
            "sellers": self.sellers,
        }

    def save(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<catalog>") -> Catalog:
        if not isinstance(data, dict) or "skus" not in data:
            raise CatalogError(f"{source}: expected an object with a 'skus' list")
        for key in ("skus", "lots", "sellers"):
            if data.get(key) is not None and not isinstance(data[key], list):
                raise CatalogError(f"{source}: '{key}' must be a list, got {type(data[key]).__name__}")
        skus: dict[str, CatalogRecord] = {}
        for i, raw in enumerate(data.get("skus") or []):
            try:
                rec = CatalogRecord.model_validate(raw)
            except ValidationError as exc:
                where = raw.get("sku", f"#{i}") if isinstance(raw, dict) else f"#{i}"
                raise CatalogError(f"{source}: SKU {where}: {first_error(exc)}") from exc
            skus[rec.sku] = rec
        lots: dict[str, LotRecord] = {}
        for i, raw in enumerate(data.get("lots") or []):
            try:
                lot = LotRecord.model_validate(raw)
            except ValidationError as exc:
                raise CatalogError(f"{source}: lot #{i}: {first_error(exc)}") from exc
            lots[lot.lot] = lot
        sellers = list(data.get("sellers") or [])
        if not all(isinstance(seller, str) for seller in sellers):
            raise CatalogError(f"{source}: 'sellers' must be a list of names")
        return cls(skus=skus, lots=lots, sellers=sellers)

    @classmethod
    def load(cls, path: Path | str) -> Catalog:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise CatalogError(f"{path}: catalog file not found") from exc
        except json.JSONDecodeError as exc:
            raise CatalogError(f"{path}: malformed JSON at line {exc.lineno}: {exc.msg}") from exc
        except UnicodeDecodeError as exc:
            raise CatalogError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        except OSError as exc:
            raise CatalogError(f"{path}: cannot read the catalog ({exc.strerror or exc})") from exc
        return cls.from_dict(data, source=str(path))


def first_error(exc: ValidationError, *prefix: str) -> str:
    """The first problem of a validation error as one line: "field.path: message"."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in (*prefix, *err["loc"]))
    return f"{loc}: {err['msg']}" if loc else err["msg"]
