"""Normal-appearance memory banks, bounded by a greedy coreset, persisted with a format version.

A bank holds, for one SKU (or one category serving SKUs with few references):
- patch features of normal images (PatchCore-style), reduced to at most `max_patches` by
  greedy k-center selection so that size and nearest-neighbour time stay fixed however many
  images are enrolled;
- global embeddings of normal images (one per image, also coreset-bounded);
- arbitrary named arrays of other members (the student's weights, calibration features).
Stored as `bank.npz` (arrays only, no pickle) plus `bank.json` (metadata). Numpy only, so the
edge scorer can use it without torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.jsonl import JsonFileError, read_json_object

from . import density

BANK_FORMAT = 1
"""Bumped whenever the stored layout or feature definition changes; older banks are refused."""


def read_model_record(path: Path) -> dict[str, Any]:
    """A model folder's JSON record; a damaged one raises ValueError naming the file."""
    try:
        return read_json_object(path)
    except JsonFileError as exc:
        raise ValueError(f"{path}: damaged ({exc.reason}); re-enrol or restore the model folder") from None


class BankVersionError(ValueError):
    """A stored bank was written by an incompatible version."""


def greedy_coreset(
    features: np.ndarray,
    k: int,
    *,
    proj_dim: int = 64,
    seed: int = 0,
    max_candidates: int = 60_000,
    keep: np.ndarray | None = None,
    background_share: float = 0.05,
) -> np.ndarray:
    """Indices of `k` rows chosen by greedy k-center (farthest point) selection.

    As in PatchCore, distances are taken in a random projection (Johnson-Lindenstrauss) for
    speed; candidates are first subsampled to `max_candidates` so enrolment time is bounded.
    `keep` (bool per row) marks rows that matter (patches on the item): the others (the grey
    background around the item, nearly identical to each other) only enter as a random sample
    of `background_share` of the kept count, so the k-center loop, whose cost is k x candidates,
    does not spend its time on background.
    """
    n = len(features)
    if k >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if keep is not None and keep.any() and not keep.all():
        inside, outside = np.flatnonzero(keep), np.flatnonzero(~keep)
        n_out = min(len(outside), max(k // 16, int(background_share * len(inside))))
        pool = np.sort(np.concatenate([inside, rng.choice(outside, n_out, replace=False)]))
    else:
        pool = np.arange(n)
    if k >= len(pool):
        return pool
    cand = np.sort(rng.choice(pool, max_candidates, replace=False)) if len(pool) > max_candidates else pool
    x = features[cand].astype(np.float32)
    if x.shape[1] > proj_dim:
        proj = rng.normal(size=(x.shape[1], proj_dim)).astype(np.float32) / np.float32(np.sqrt(proj_dim))
        x = x @ proj
    x = np.ascontiguousarray(x)
    sq = np.einsum("ij,ij->i", x, x)
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = int(rng.integers(len(x)))
    mind = sq - 2.0 * (x @ x[chosen[0]]) + sq[chosen[0]]
    dot = np.empty_like(mind)
    for i in range(1, k):
        j = int(np.argmax(mind))
        chosen[i] = j
        # squared distance to the new centre, in place: sq - 2 x.x_j + |x_j|^2
        np.dot(x, x[j], out=dot)
        dot *= -2.0
        dot += sq
        dot += sq[j]
        np.minimum(mind, dot, out=mind)
    return cand[chosen]


def patch_rows(patches: np.ndarray) -> np.ndarray:
    """(N, C, h, w) feature maps as (N*h*w, C) rows, view by view, cell by cell."""
    return patches.transpose(0, 2, 3, 1).reshape(-1, patches.shape[1])


def nearest_rows(queries: np.ndarray, bank: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query row to its nearest bank row, and that row's index."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    qq = np.einsum("ij,ij->i", q, q)
    best = np.full(len(q), np.inf, dtype=np.float32)
    index = np.zeros(len(q), dtype=np.int64)
    rows = np.arange(len(q))
    for s in range(0, len(bank), chunk):
        b = np.asarray(bank[s : s + chunk], dtype=np.float32)
        # |b|^2 - 2 q.b in place; |q|^2 is the same along a row, so it is added to the minimum
        # only: half the passes over the (queries x bank) matrix, which cost as much as the product
        d = q @ b.T
        d *= -2.0
        d += np.einsum("ij,ij->i", b, b)[None, :]
        j = d.argmin(axis=1)
        dj = d[rows, j] + qq
        better = dj < best
        best[better], index[better] = dj[better], j[better] + s
    return np.sqrt(np.maximum(best, 0.0)), index


def nearest_distance(queries: np.ndarray, bank: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Euclidean distance from each query row to its nearest bank row."""
    return nearest_rows(queries, bank, chunk)[0]


@dataclass
class Bank:
    """One SKU's (kind "sku") or one category's (kind "category") normal memory."""

    name: str
    kind: str = "sku"
    patches: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    globals_: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    max_patches: int = 4096
    max_globals: int = 1024

    def __post_init__(self) -> None:
        if self.kind not in ("sku", "category"):
            raise ValueError(f"bank kind must be 'sku' or 'category', got {self.kind!r}")

    @property
    def n_images(self) -> int:
        return int(self.meta.get("n_images", 0))

    def add(self, patches: np.ndarray, globals_: np.ndarray, n_images: int, keep: np.ndarray | None = None) -> None:
        """Incremental enrolment: merge new normal features, then re-apply the coreset bound.

        `keep` marks the new patch rows that lie on the item (see `greedy_coreset`); the rows
        already in the bank are always candidates.
        """
        patches = patches.astype(np.float32)
        globals_ = globals_.astype(np.float32)
        if self.patches.size:
            if self.patches.shape[1] != patches.shape[1]:
                raise ValueError(f"patch dim {patches.shape[1]} does not match the bank's {self.patches.shape[1]}")
            if keep is not None:
                keep = np.concatenate([np.ones(len(self.patches), bool), keep])
            patches = np.concatenate([self.patches.astype(np.float32), patches])
            globals_ = np.concatenate([self.globals_.astype(np.float32), globals_])
        self.patches = patches[greedy_coreset(patches, self.max_patches, keep=keep)]
        self.globals_ = globals_[greedy_coreset(globals_, self.max_globals)]
        spreads = density.row_spreads(self.patches)
        if spreads is None:
            self.extra.pop(density.KEY, None)
        else:
            self.extra[density.KEY] = spreads
        self.meta["n_images"] = self.n_images + n_images

    def patch_distances(self, queries: np.ndarray) -> np.ndarray:
        return nearest_distance(queries, self.patches)

    def nearest_patches(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distances, the nearest normal patch rows) of query patch rows."""
        dist, index = nearest_rows(queries, self.patches)
        return dist, self.patches[index].astype(np.float32)

    def global_distances(self, queries: np.ndarray) -> np.ndarray:
        return nearest_distance(queries, self.globals_)

    def nbytes(self) -> int:
        return int(self.patches.nbytes + self.globals_.nbytes + sum(a.nbytes for a in self.extra.values()))

    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"patches": self.patches, "globals": self.globals_}
        arrays.update({f"x.{k}": v for k, v in self.extra.items()})
        np.savez(folder / "bank.npz", **arrays)
        info = {
            "format": BANK_FORMAT,
            "name": self.name,
            "kind": self.kind,
            "max_patches": self.max_patches,
            "max_globals": self.max_globals,
            "meta": self.meta,
        }
        (folder / "bank.json").write_text(json.dumps(info, indent=1, sort_keys=True))
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> Bank:
        folder = Path(folder)
        info_path = folder / "bank.json"
        if not info_path.is_file():
            raise FileNotFoundError(f"{folder}: no bank.json (not a bank folder)")
        info = read_model_record(info_path)
        if info.get("format") != BANK_FORMAT:
            raise BankVersionError(
                f"{folder}: bank format {info.get('format')!r}, this version reads {BANK_FORMAT}; re-enrol the SKU"
            )
        with np.load(folder / "bank.npz", allow_pickle=False) as data:
            extra = {k[2:]: data[k] for k in data.files if k.startswith("x.")}
            patches, globals_ = data["patches"], data["globals"]
        return cls(
            name=info["name"],
            kind=info["kind"],
            patches=patches,
            globals_=globals_,
            extra=extra,
            meta=info.get("meta", {}),
            max_patches=info["max_patches"],
            max_globals=info["max_globals"],
        )
