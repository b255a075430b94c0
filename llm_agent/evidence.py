"""The evidence file of one investigation and the citations that point into it.

Everything a report may claim has to point at something that exists: a frame, a stored
finding, an OCR line, a crop, the catalog or lot record. `EvidenceFile` gathers the item's
tunnel record from the store and hands out citation ids as tools look at things; a claim
whose citation id was never handed out is rejected when the report is assembled.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from llm_agent.taxonomy import DAMAGE_TYPES
from pipeline.catalog import Catalog
from pipeline.dataset import Dataset
from pipeline.jsonl import JsonFileError, read_json_object
from pipeline.store import Store
from pipeline.types import CatalogRecord, Finding, ItemCapture, LotRecord, Verdict

RefKind = Literal["frame", "finding", "ocr", "crop", "catalog", "lot", "tool", "model"]


class EvidenceRef(BaseModel):
    """One citable piece of evidence."""

    id: str
    kind: RefKind
    description: str
    camera: str | None = None
    box: list[float] | None = None
    text: str | None = None
    score: float | None = None
    image: str | None = None
    """Path of an image a person can open (a frame or a saved crop)."""
    data: dict[str, Any] = Field(default_factory=dict)


class EvidenceError(LookupError):
    """The item is not in the store."""


class RunRecordError(ValueError):
    """The store's `run.json` is damaged: guessing past it would investigate with the wrong frames or model."""


@dataclass
class LotSummary:
    lot: str
    items: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    finding_kinds: dict[str, int] = field(default_factory=dict)
    printed_expiries: dict[str, list[str]] = field(default_factory=dict)
    """Expiry the tunnel read (ISO date or month) -> the other items of the lot it was read on."""
    damage_items: dict[str, list[str]] = field(default_factory=dict)
    """Damage type the tunnel's checks named at the line's operating point -> the other items of
    the lot it was named on."""
    printed_dates: dict[str, list[str]] = field(default_factory=dict)
    """Every date the tunnel read on the lot's other items (expiry, production or untyped, on an
    unreadable item too) -> the items it was read on: what the lot's print carries."""


LOT_PATTERN_MIN_ITEMS = 2
LOT_PATTERN_SHARE = 0.2
"""A damage type named on at least this many, and this share, of a lot's items is the lot's
pattern. A lot whose seller ships it damaged carries one type on a large share of its items;
on a sound lot a type is named on a few percent (its items' own defects, the classifier's
false positives), so one item, or a few of a long lot, is no pattern."""


def damage_pattern(items: int, named: dict[str, list[str]], kinds: Sequence[str] | None = None) -> dict[str, list[str]]:
    """The damage types (of `kinds`, default all) that are a pattern of a lot or group of `items`
    items: type -> the items the tunnel named it on (`named`)."""
    return {
        k: ids
        for k in (named if kinds is None else kinds)
        if len(ids := named.get(k, [])) >= LOT_PATTERN_MIN_ITEMS and len(ids) >= LOT_PATTERN_SHARE * items
    }


def dates_read(finding: Finding) -> list[tuple[str, str]]:
    """(type, date) of every date a stored OCR finding read (not a second look that doubted one)."""
    return [
        (str(e.data.get("type")), str(e.data["date"]))
        for e in finding.evidence
        if e.data.get("date") and not e.data.get("second_look")
    ]


def _expiry_of(dates: list[tuple[str, str]]) -> str | None:
    """The expiry among a finding's `dates_read`, if it read one."""
    return next((iso for kind, iso in dates if kind == "expiry"), None)


def _read_expiry(finding_json: str) -> str | None:
    """The expiry a stored OCR finding read, if it read one (not a second look that doubted it)."""
    return _expiry_of(dates_read(Finding.model_validate_json(finding_json)))


def _read_only(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


def lot_summary(db: Path, lot: str, exclude: str | None = None) -> LotSummary:
    """How the rest of the item's lot fared in the tunnel."""
    summary = LotSummary(lot=lot)
    with _read_only(db) as conn:
        ids = [r["item_id"] for r in conn.execute("SELECT item_id FROM captures WHERE lot = ?", (lot,))]
        ids = [i for i in ids if i != exclude]
        summary.items = len(ids)
        if ids:
            marks = ",".join("?" * len(ids))
            for r in conn.execute(
                f"SELECT action, COUNT(*) n FROM verdicts WHERE item_id IN ({marks}) GROUP BY action", ids
            ):
                summary.actions[r["action"]] = r["n"]
            for r in conn.execute(
                f"SELECT DISTINCT kind, item_id FROM findings WHERE item_id IN ({marks})"
                " AND probability >= 0.5 ORDER BY kind, item_id",
                ids,
            ):
                summary.finding_kinds[r["kind"]] = summary.finding_kinds.get(r["kind"], 0) + 1
                if r["kind"] in DAMAGE_TYPES:
                    summary.damage_items.setdefault(r["kind"], []).append(r["item_id"])
            for r in conn.execute(
                f"SELECT item_id, kind, finding_json FROM findings WHERE item_id IN ({marks})"
                " AND stage = 'ocr_expiry' ORDER BY item_id",
                ids,
            ):
                dates = dates_read(Finding.model_validate_json(r["finding_json"]))
                for _, iso in dates:
                    add_once(summary.printed_dates, iso, r["item_id"])
                expiry = _expiry_of(dates)
                if expiry is not None and r["kind"] != "unreadable":
                    add_once(summary.printed_expiries, expiry, r["item_id"])
    return summary


def add_once(found: dict[str, list[str]], iso: str, item_id: str) -> None:
    """`item_id` listed under `iso` in `found`, once."""
    if item_id not in found.setdefault(iso, []):
        found[iso].append(item_id)


def run_record(db: Path) -> dict[str, Any]:
    """The inspection run that filled the store (`run.json` beside it), empty when absent;
    `RunRecordError` naming the file when it cannot be read."""
    run = db.parent / "run.json"
    if not run.exists():
        return {}
    try:
        return read_json_object(run)
    except JsonFileError as exc:
        raise RunRecordError(f"{run}: not a run record ({exc.reason})") from None


def stored_images_root(db: Path, dataset: Path | None = None, run: dict[str, Any] | None = None) -> Path:
    """Frames are stored relative to the dataset the store was filled from (`run`: the store's
    `run_record`, read here when not given)."""
    if dataset is not None:
        return dataset
    source = (run if run is not None else run_record(db)).get("input")
    if source and Path(source).is_dir():
        return Path(source)
    return db.parent


@dataclass
class EvidenceFile:
    """Everything known about one item, plus the citations handed out so far."""

    item_id: str
    capture: ItemCapture
    verdict: Verdict | None
    findings: list[Finding]
    record: CatalogRecord | None
    lot: LotRecord | None
    lot_summary: LotSummary | None
    catalog: Catalog
    results_root: Path
    """Folder that heatmap and crop references are relative to (the store's folder)."""
    refs: dict[str, EvidenceRef] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    """Per-investigation memo for expensive tool work (OCR of a frame)."""
    crops_dir: Path | None = None
    dataset_root: Path | None = None
    """The dataset the item came from (its catalog's normal references), when known."""
    model_dir: Path | None = None
    """The model folder the store's inspection ran with (its enrolled profiles), when recorded."""

    @classmethod
    def load(
        cls,
        db: Path | str,
        item_id: str,
        *,
        catalog: Catalog | None = None,
        dataset: Path | str | None = None,
        crops_dir: Path | None = None,
    ) -> EvidenceFile:
        db = Path(db)
        if not db.exists():
            raise EvidenceError(f"{db}: store not found")
        store = Store(db)
        try:
            capture = store.capture(item_id)
            verdict = store.verdict(item_id)
            findings = store.findings(item_id)
        finally:
            store.close()
        if capture is None:
            raise EvidenceError(f"item {item_id!r} is not in {db}")
        dataset_root = Path(dataset) if dataset else None
        if catalog is None:
            catalog = Dataset.open(dataset_root).catalog if dataset_root else Catalog()
        run = run_record(db)
        capture.with_root(stored_images_root(db, dataset_root, run))
        # The findings table is the record; the verdict's own list is the fallback.
        findings = findings or (verdict.findings if verdict else [])
        evidence = cls(
            item_id=item_id,
            capture=capture,
            verdict=verdict,
            findings=findings,
            record=catalog.skus.get(capture.sku),
            lot=catalog.lot(capture.lot),
            lot_summary=lot_summary(db, capture.lot, exclude=item_id) if capture.lot else None,
            catalog=catalog,
            results_root=db.parent,
            crops_dir=crops_dir,
            dataset_root=dataset_root,
            model_dir=Path(run["model_dir"]) if run.get("model_dir") else None,
        )
        evidence._register_base()
        return evidence

    # -- citations ---------------------------------------------------------------------
    def _register_base(self) -> None:
        for frame in self.capture.frames:
            self.add(
                EvidenceRef(
                    id=f"frame:{frame.camera}",
                    kind="frame",
                    description=f"tunnel photo from camera {frame.camera}",
                    camera=frame.camera,
                    image=self.frame_path(frame.camera),
                )
            )
        for i, f in enumerate(self.findings):
            ev = f.evidence[0] if f.evidence else None
            self.add(
                EvidenceRef(
                    id=f"finding:{i}",
                    kind="finding",
                    description=f"{f.stage} finding '{f.kind}' (p={f.probability:.2f})"
                    + (f": {f.message}" if f.message else "")
                    + (f" (read {how})" if ev and (how := ev.data.get("read_as")) else ""),
                    camera=ev.camera if ev else None,
                    box=ev.box if ev else None,
                    text=ev.text if ev else None,
                    score=f.score,
                    image=self._resolve(ev.heatmap_ref) if ev and ev.heatmap_ref else None,
                    data={"stage": f.stage, "kind": f.kind, "probability": f.probability},
                )
            )
        if self.record is not None:
            attrs = ", ".join(f"{k}={v}" for k, v in self.record.attributes.items())
            self.add(
                EvidenceRef(
                    id=f"catalog:{self.record.sku}",
                    kind="catalog",
                    description=f"catalog record {self.record.sku}: '{self.record.title}' ({attrs})",
                    data=self.record.model_dump(mode="json"),
                )
            )
        if self.capture.lot:
            s = self.lot_summary
            desc = f"lot {self.capture.lot}" + (f" (seller {self.lot.seller})" if self.lot else "")
            if s is not None:
                desc += f": {s.items} other item(s) in the tunnel, {s.actions.get('divert', 0)} diverted"
            self.add(
                EvidenceRef(
                    id=f"lot:{self.capture.lot}",
                    kind="lot",
                    description=desc,
                    data={
                        "summary": s.__dict__ if s else None,
                        "record": self.lot.model_dump(mode="json") if self.lot else None,
                    },
                )
            )

    def add(self, ref: EvidenceRef) -> str:
        self.refs[ref.id] = ref
        return ref.id

    def has(self, ref_id: str) -> bool:
        return ref_id in self.refs

    def next_id(self, prefix: str) -> str:
        n = sum(1 for k in self.refs if k.startswith(prefix + ":"))
        return f"{prefix}:{n}"

    # -- pixels --------------------------------------------------------------------------
    @property
    def image_roots(self) -> tuple[Path, ...]:
        """Folders a report may read images from: the frames' root, the store's folder, the crops folder."""
        roots = (self.capture.root, self.results_root, self.crops_dir)
        return tuple(dict.fromkeys(r for r in roots if r is not None))

    def _resolve(self, ref: str) -> str:
        path = Path(ref)
        return str(path if path.is_absolute() else self.results_root / path)

    def frame_path(self, camera: str) -> str | None:
        frame = next((f for f in self.capture.frames if f.camera == camera), None)
        if frame is None or frame.uri.startswith(("memory:", "s3://")):
            return None
        path = Path(frame.uri)
        root = self.capture.root
        return str(path if path.is_absolute() or root is None else root / path)

    def image(self, camera: str) -> np.ndarray:
        """Decoded RGB frame (raises `pipeline.imageio.ImageError` when missing or corrupt)."""
        key = f"image:{camera}"
        if key not in self.cache:
            frame = next(f for f in self.capture.frames if f.camera == camera)
            self.cache[key] = frame.load(self.capture.root)
        return self.cache[key]

    def save_crop(self, camera: str, box: list[float], label: str, pad: int = 8) -> str | None:
        """Cut a cited region out of a frame and keep it beside the report; returns its citation id."""
        try:
            image = self.image(camera)
        except Exception:
            return None
        h, w = image.shape[:2]
        x0, y0, x1, y1 = (round(v) for v in box)
        x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
        if x1 <= x0 or y1 <= y0:
            return None
        ref_id = self.next_id("crop")
        path = None
        if self.crops_dir is not None:
            from PIL import Image

            self.crops_dir.mkdir(parents=True, exist_ok=True)
            path = self.crops_dir / f"{self.item_id}__{ref_id.replace(':', '_')}.png"
            Image.fromarray(image[y0:y1, x0:x1]).save(path)
        return self.add(
            EvidenceRef(
                id=ref_id,
                kind="crop",
                description=f"crop of camera {camera}: {label}",
                camera=camera,
                box=[x0, y0, x1, y1],
                image=str(path) if path else None,
            )
        )

    @property
    def shipped_on(self) -> date:
        """The tunnel pass is the last look before shipment."""
        return self.capture.captured_at.date()

    def finding_kinds(self, min_probability: float = 0.5) -> Counter[str]:
        return Counter(f.kind for f in self.findings if f.probability >= min_probability)

    def stages_run(self) -> set[str]:
        """Stages that looked at the item (from the verdict's model versions and the findings)."""
        stages = {f.stage for f in self.findings}
        if self.verdict is not None:
            stages |= set(self.verdict.model_versions)
        return stages
