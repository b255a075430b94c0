"""How much of an item is which material: a view's interior patches shared out over a SKU's
patch prototypes, against the nearest good view of the same camera.

An empty tennis-ball tube or a bottle a third full raises no peak: each of its cells finds a
close normal patch, because a full tube's upper part is empty too. What differs is the share of
the item each kind of patch covers. The profile clusters the bank's enrolment interior patches
into `PROTOTYPES` prototypes (k-means), keeps every enrolment view's histogram over them, and
scores a view by the L1 distance from its histogram to the nearest reference histogram of its
camera (every camera's when the references never showed it). That distance is divided by the
camera's spread, the median distance from a reference to the nearest view of another good item
(leave one item out), so one scale reads every SKU.

Each cell is shared out over the prototypes by a softmax of its squared distances, not given to
the nearest one alone: a tote's colour cast or a turned item moves cells across the border
between two close prototypes, and hard counts read that as a change of material (simulated
development shift, the member alone: good items' 99th percentile 17.9 spreads hard, 6.3 soft;
fused, hard counts raised the threshold over visible damage: docs/anomaly.md). The softmax runs
on the view's own scale, so a cast that moves every cell away from the prototypes changes no
shares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .bank import patch_rows

PREFIX = "composition."
"""Bank `extra` key prefix of the profile's arrays."""
PROTOTYPES = 16
"""Prototypes per profile (8 and 32 did no better on the development shifts)."""
SOFTNESS = 4.0
"""A view's softmax scale: this many times the median squared distance of its cells to their
nearest prototype."""
MAX_FIT_ROWS = 20_000
"""Interior patches the prototypes are clustered from (a seeded sample beyond this)."""
MIN_ITEMS = 3
"""Fewest enrolment items a profile is fitted from: with fewer, a reference has one other item
to be compared with, and the spread is that one distance."""
MIN_SPREAD = 0.02
"""Floor of a camera's spread (L1 histogram distance): a few near-identical references cannot
show that no good item differs."""


@dataclass(frozen=True)
class CompositionProfile:
    prototypes: np.ndarray
    """(K, C) patch prototypes."""
    references: np.ndarray
    """(R, K) prototype histograms of the enrolment views."""
    items: np.ndarray
    """(R,) enrolment item of each reference (views of one item are not compared with each other)."""
    cameras: np.ndarray
    """(R,) camera of each reference."""
    spread_cameras: np.ndarray
    spread_values: np.ndarray
    """Each camera's spread, and last, every camera's together (for a camera not enrolled)."""

    @classmethod
    def fit(
        cls,
        patches: np.ndarray,
        cores: np.ndarray,
        items: Sequence[object],
        cameras: Sequence[str],
        k: int = PROTOTYPES,
        seed: int = 0,
    ) -> CompositionProfile | None:
        """A profile from enrolment views (patches (N, C, h, w), interior cell masks (N, h, w),
        item key and camera of each view); None with fewer than `MIN_ITEMS` items."""
        cores = cores.astype(bool)
        keys = np.asarray([str(i) for i in items])
        if len({key for key in keys[cores.reshape(len(cores), -1).any(axis=1)]}) < MIN_ITEMS:
            return None
        rows = _rows(patches, cores)
        if len(rows) > MAX_FIT_ROWS:
            rng = np.random.default_rng(seed)
            rows = rows[np.sort(rng.choice(len(rows), MAX_FIT_ROWS, replace=False))]
        prototypes = _kmeans(rows, min(k, len(rows)), seed)
        profile = cls(prototypes, np.zeros((0, len(prototypes))), keys[:0], keys[:0], keys[:0], keys[:0])
        return profile.with_references(patches, cores, keys, cameras)

    def with_references(
        self, patches: np.ndarray, cores: np.ndarray, items: Sequence[object], cameras: Sequence[str]
    ) -> CompositionProfile:
        """This profile with more good views among its references (incremental enrolment: the
        prototypes stay, the spreads are measured again)."""
        references = np.concatenate([self.references, self.histograms(patches, cores)])
        keys = np.concatenate([self.items, np.asarray([str(i) for i in items])])
        cams = np.concatenate([self.cameras, np.asarray(cameras).astype(str)])
        spread = _leave_one_item_out(references, keys, cams)
        names = sorted(set(cams.tolist()))
        values = [_spread(spread[cams == c]) for c in names] + [_spread(spread)]
        return CompositionProfile(
            self.prototypes,
            references,
            keys,
            cams,
            np.asarray(names, dtype=str),
            np.asarray(values, np.float32),
        )

    def histograms(self, patches: np.ndarray, cores: np.ndarray) -> np.ndarray:
        """(N, K) each view's interior cells shared out over the prototypes, summing to 1
        (uniform for a view with no interior)."""
        n, k = len(patches), len(self.prototypes)
        cores = cores.astype(bool)
        cells = cores.reshape(n, -1).sum(axis=1)
        out = np.full((n, k), 1.0 / k)
        if not cells.any():
            return out
        rows = _rows(patches, cores)
        sq = np.einsum("ij,ij->i", rows, rows)[:, None] - 2.0 * rows @ self.prototypes.T
        sq += np.einsum("ij,ij->i", self.prototypes, self.prototypes)[None, :]
        nearest = np.maximum(sq.min(axis=1), 0.0)
        # rows come view by view: each view's cells are one contiguous run
        per_view = np.split(nearest, np.cumsum(cells)[:-1])
        scale = np.array([max(SOFTNESS * float(np.median(d)), 1e-12) if len(d) else 1.0 for d in per_view])
        view = np.repeat(np.arange(n), cells)
        share = np.exp(-(sq - nearest[:, None]) / scale[view][:, None])
        share /= share.sum(axis=1, keepdims=True)
        counts = np.zeros((n, k))
        np.add.at(counts, view, share)
        has = cells > 0
        out[has] = counts[has] / cells[has, None]
        return out

    def scores(self, patches: np.ndarray, cores: np.ndarray, cameras: Sequence[str]) -> np.ndarray:
        """(N,) each view's L1 distance to the nearest reference of its camera, in that camera's spreads."""
        hist = self.histograms(patches, cores)
        spreads = dict(zip(self.spread_cameras.tolist(), self.spread_values[:-1].tolist(), strict=True))
        every = float(self.spread_values[-1])
        out = np.empty(len(hist))
        for i, (h, cam) in enumerate(zip(hist, cameras, strict=True)):
            same = self.cameras == str(cam)
            refs = self.references[same] if same.any() else self.references
            out[i] = float(np.abs(refs - h).sum(axis=1).min()) / spreads.get(str(cam), every)
        return out

    def to_extra(self) -> dict[str, np.ndarray]:
        return {
            PREFIX + "prototypes": self.prototypes.astype(np.float32),
            PREFIX + "references": self.references.astype(np.float32),
            PREFIX + "items": self.items.astype(str),
            PREFIX + "cameras": self.cameras.astype(str),
            PREFIX + "spread_cameras": self.spread_cameras.astype(str),
            PREFIX + "spread_values": self.spread_values.astype(np.float32),
        }

    @classmethod
    def from_extra(cls, extra: Mapping[str, np.ndarray]) -> CompositionProfile | None:
        """The profile stored in a bank's `extra`; None for a bank without one (fitted from
        fewer than `MIN_ITEMS` items), whose member then reads 0 on every view."""
        if PREFIX + "prototypes" not in extra:
            return None
        return cls(
            np.asarray(extra[PREFIX + "prototypes"], np.float32),
            np.asarray(extra[PREFIX + "references"], np.float64),
            np.asarray(extra[PREFIX + "items"]).astype(str),
            np.asarray(extra[PREFIX + "cameras"]).astype(str),
            np.asarray(extra[PREFIX + "spread_cameras"]).astype(str),
            np.asarray(extra[PREFIX + "spread_values"], np.float32),
        )


def _kmeans(rows: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=3, random_state=seed).fit(rows).cluster_centers_.astype(np.float32)


def _rows(patches: np.ndarray, cores: np.ndarray) -> np.ndarray:
    """The interior cells' patch features as float32 rows, view by view."""
    return np.ascontiguousarray(patch_rows(patches)[cores.reshape(-1)], dtype=np.float32)


def _leave_one_item_out(references: np.ndarray, items: np.ndarray, cameras: np.ndarray) -> np.ndarray:
    """(R,) each reference's L1 distance to the nearest reference of its camera from another item
    (NaN where there is none)."""
    out = np.full(len(references), np.nan)
    for i, (h, item, cam) in enumerate(zip(references, items, cameras, strict=True)):
        others = (items != item) & (cameras == cam)
        if others.any():
            out[i] = float(np.abs(references[others] - h).sum(axis=1).min())
    return out


def _spread(distances: np.ndarray) -> float:
    finite = distances[np.isfinite(distances)]
    return max(float(np.median(finite)), MIN_SPREAD) if len(finite) else MIN_SPREAD
