"""`AnomalyModel`: catalog normal banks per SKU and per category, fit, enrol, score, save, load.

One model folder serves many SKUs:

    MODEL_DIR/model.json             format, version, config, SKU -> bank, category -> bank
    MODEL_DIR/banks/<bank>/bank.*    one `Bank` per SKU (or category), with its calibration
    MODEL_DIR/onnx/*.onnx            written by `export.export_onnx` for the edge scorer

Members, per view: "patch" (nearest normal patch, PatchCore), "global" (nearest normal global
embedding: wrong colour, wrong item), "student" (feature autoencoder: missing parts),
"composition" (how much of the item is which kind of patch: empty containers, see
`composition`). Each member is standardised on normal calibration images that are not in the bank,
fused by maximum, and the fused score is calibrated twice: per view (single images) and per
item (maximum over an item's cameras), each at the target false-divert rate. A bank with few
calibration items takes scalers and thresholds from the pool of every SKU bank's normals.

The patch member scores local contrast: the peak nearest-patch distance on the item less the
view's median distance (`ModelConfig.patch_floor_quantile`). A pose or lighting the references
did not show raises the distance of every patch of the view, while damage raises a few; the raw
peak confuses the two (simulated shift, patch member alone: visible-damage AUROC 0.77 raw peak,
0.84 less the view's median, 0.89 with pooled scalers as well). Both the peak and the floor are
read on the item's interior (`ModelConfig.patch_interior_cells`): the outline's cells mix item and
background and carry the segmentation's errors.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from . import density
from .bank import Bank, nearest_rows, patch_rows, read_model_record
from .calibration import DEFAULT_TARGET_RATE, EnsembleCalibration
from .composition import CompositionProfile
from .fusion import fuse_maps, fuse_members, fuse_views
from .prepare import BACKGROUND_GREY, PreparedView, prepare, view_of
from .threads import limited_threads
from .variability import VariabilityMaps

MODEL_FORMAT = 3
"""3: banks carry a composition profile and calibrate four members."""
MEMBERS = ("patch", "global", "student", "composition")
CAL_PREFIX = "cal."
BELT_KEY = "belt_calibration"
"""Bank metadata: raw member scores of confirmed-normal belt views that join its calibration."""
CROSS_FIT_KEY = "cross_fit_calibration"
"""Bank metadata: raw member scores of its own enrolment items, each read against a bank built
without it (`AnomalyModel.fit` with few normals); they stand in for held-out calibration views."""
MAX_BELT_VIEWS = 900
"""Belt views kept per bank (300 three-camera items); the newest win."""
INTERIOR_SIDE_PER_CELL = 112
"""Input pixels per interior cell peeled off the outline: 16 px of a 224 px input, 24 of 320."""


class NoReference(LookupError):
    """No bank serves this SKU (and none serves its category)."""


class Runtime(Protocol):
    name: str

    def embed(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def student_errors(self, bank: Bank, feats: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelConfig:
    image_size: int = 224
    """Network input side of the patch features. Tunnel crops are ~330 px on their long side
    (simulated shifts, median), and at 320 px the patch features see more of a broken seal or a
    crushed corner (benchmark shift, visible-damage AUROC 0.826 -> 0.869, false diverts 0.65 %
    -> 0), but the anomaly stage takes 1.8x the time: the edge service on 2 cores then no longer
    keeps up with a lane (2.4 items/s: p99 0.80 s at 224, 1.1-1.4 s at 320). 320 suits batch
    re-audit and an edge with more cores (`tunnelpi enroll --image-size 320`)."""
    global_size: int | None = 224
    """Largest side the global embedding reads the input at (None: `image_size`). 224, what
    EfficientNet-Lite0 was trained at: with patch features at 320 and the global at 320 too, the
    wrong-item check, which compares global embeddings across SKU banks, diverted 2 of `make
    demo`'s 143 good items, and the global member cost twice the time."""
    max_patches: int = 4096
    max_globals: int = 1024
    augment: tuple[str, ...] = ("rot180",)
    """Enrolment augmentations. "rot180" covers the upright crop's 180-degree ambiguity.
    "rot_round" (opt-in) adds 45-degree steps for views whose outline is a disc (lids, balls
    end-on), whose crop has no upright: a turned lid's print then no longer reads as damage, but
    a turned seal or cap looks like a broken one (simulated benchmark shift: broken seal AUROC
    0.66 -> 0.61, visible damage 0.826 -> 0.814; development shift 0.876 -> 0.882)."""
    student_steps: int = 300
    student_width: int = 32
    """Student channels; 32 matched 64 on MVTec bottle (fused AUROC 1.000 vs 0.997) at half the training time."""
    target_rate: float = DEFAULT_TARGET_RATE
    localize: bool = True
    """Localise items in frames first; off when the inputs are already item crops."""
    min_references: int = 3
    """SKUs with fewer enrolment items are served by their category's bank."""
    max_calibration_views: int = 32
    member_weights: tuple[tuple[str, float], ...] = (("global", 0.5), ("student", 0.5), ("composition", 0.5))
    """Weights on standardised member scores before fusion. The global embedding moves with pose
    and with how a soft item lies, so at full weight it buries local damage in normal variation
    (simulated shift: visible-damage AUROC 0.79 at 1.0, 0.81 at 0.5); wrong items and empty
    containers still stand out at half weight. The student's error has a heavy normal tail on a
    few SKUs (a glass bottle's side view), which set the fused threshold while it rarely sees
    damage the patch member misses: at half weight visible-damage AUROC rose 0.823 -> 0.838 on
    the benchmark shift and 0.875 -> 0.897 on the development shift (patch member alone 0.847
    and 0.900), with the wrong-item AUROC unchanged (0.906 / 0.905). Composition at half weight
    too: at full weight its normal tail (a navy shirt in a blue tote) raised the fused threshold
    over the damage it does not see (development shift: visible damage 0.895 without it, 0.889
    at 0.5, 0.85 at 1.0; empty containers 0.83, 0.88 and 0.92)."""
    cross_fit_below: int = 28
    """`fit` without calibration images enrols every normal and calibrates on all of them, each
    scored against a bank built from the other folds, when given fewer normals than this; from
    this many on it holds a quarter back (7 or more items), keeping a fit of 30 images within
    30 s. Six choices of ten MVTec bottles: defective test bottles flagged at the threshold, median
    0.25 (0.00-1.00) held out, 0.82 (0.13-0.95) cross-fitted; of twenty, 0.61 (0.08-0.97) and 0.90
    (0.78-0.97); no more good bottles flagged (docs/anomaly.md)."""
    cross_fit_folds: int = 5
    cross_fit_student_share: int = 3
    """A cross-fitted bank's student, and each fold's, trains for 1/this of `student_steps`:
    folds and final bank then score on one scale, so new normals standardise about zero (with
    the final student fully trained they read -6 robust spreads, and the student member counted
    for little). Six choices of ten MVTec bottles flagged 0.13-0.95 of the defects at the
    threshold (0.16-0.95 with a fully trained final student, 0.06-0.95 with every student fully
    trained); ten normals fit in 21-27 s instead of 28-33 s (45-67 s)."""
    own_calibration_items: int = 30
    """A bank with fewer calibration items takes its scalers and thresholds from the pool of all
    SKU banks' normals."""
    patch_floor_quantile: float = 0.5
    """Quantile of a view's on-item patch distances subtracted from its peak (the view's floor).
    The median, so that damage over up to half the item does not raise its own floor."""
    patch_interior_cells: int | None = None
    """Feature cells peeled off the item outline before the patch member reads its peak and floor;
    None: about 7 % of the input side (`interior_cells`), 2 cells at 224 px and 3 at 320.
    Cells on the rim mix item and grey background, and a segmentation spur or shadow there has no
    counterpart in the references: the rim dominated the normal tail (simulated shift at 224 px,
    patch member alone, visible damage: AUROC 0.87 / 0.90 / 0.91 / 0.90 and recall at 0.5 % false
    diverts 0.01 / 0.33 / 0.47 / 0.42 with 0 / 1 / 2 / 3 cells; at 320 px the whole ensemble
    0.903 with 2 cells, 0.908 with 3). A view without an outline (the whole frame) keeps every
    cell."""
    patch_variability: bool = True
    """Divide each cell's patch distance by how much good items differ there (`variability`):
    print and the date zone vary from item to item, plain surfaces do not."""
    patch_density: bool = True
    """Divide each cell's patch distance by how far its nearest normal patch lies from the other
    normal patches (`density`): a lot code's nearest normal is far off among sparse print, a
    stain's among a crowd of plain panel patches."""
    batch: int = 8
    seed: int = 0

    @property
    def interior_cells(self) -> int:
        """Cells peeled off the outline: as configured, or the same share of the input at any size."""
        if self.patch_interior_cells is not None:
            return self.patch_interior_cells
        return round(self.image_size / INTERIOR_SIDE_PER_CELL)


@dataclass
class Features:
    """Extracted features of a set of views, grouped into items (cameras of one capture)."""

    patches: np.ndarray
    globals_: np.ndarray
    masks: np.ndarray
    items: np.ndarray
    """Item index of each view."""
    cameras: np.ndarray | None = None
    """Camera name of each view ("" where unknown: calibration views stored by older versions)."""

    def __post_init__(self) -> None:
        if self.cameras is None:
            self.cameras = np.full(len(self.patches), "", dtype=str)

    def __len__(self) -> int:
        return len(self.patches)

    @classmethod
    def concat(cls, parts: Sequence[Features]) -> Features:
        offset, items = 0, []
        for p in parts:
            items.append(p.items + offset)
            offset += int(p.items.max()) + 1 if len(p) else 0
        return cls(
            np.concatenate([p.patches for p in parts]),
            np.concatenate([p.globals_ for p in parts]),
            np.concatenate([p.masks for p in parts]),
            np.concatenate(items) if items else np.zeros(0, np.int64),
            np.concatenate([p.cameras for p in parts]) if parts else None,
        )

    def take(self, idx: np.ndarray) -> Features:
        return Features(self.patches[idx], self.globals_[idx], self.masks[idx], self.items[idx], self.cameras[idx])


@dataclass
class ViewResult:
    camera: str
    raw: dict[str, float]
    z: dict[str, float]
    score: float
    top_member: str
    probability: float
    anomalous: bool
    heatmap: np.ndarray
    """(S/8, S/8) fused standardised map over the network input."""
    prepared: PreparedView
    embedding: np.ndarray | None = None
    """The view's global embedding (what the wrong-item check compares across SKU banks)."""
    patches: np.ndarray | None = None
    """(C, S/8, S/8) patch features of the view (the fine-grained classifier's input)."""
    nearest: np.ndarray | None = None
    """(S/8, S/8) row of each patch's nearest normal patch in the bank scored against."""
    standard: np.ndarray | None = None
    """(2, S/8, S/8) the patch and student members' maps in calibrated units (`standard_maps`)."""


@dataclass
class ItemResult:
    bank: str
    bank_kind: str
    score: float
    probability: float
    anomalous: bool
    threshold: float
    views: list[ViewResult]
    calibration: str = "bank"
    """Where the threshold came from: the bank's own normals, or the pool of all banks'."""
    ms: float = 0.0


def _masked_peak(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per view: maximum of the 3x3-smoothed map over the item mask."""
    out = np.empty(len(maps))
    for i, (m, k) in enumerate(zip(maps, masks, strict=True)):
        smooth = cv2.blur(m.astype(np.float32), (3, 3))
        out[i] = float(smooth[k].max())
    return out


def _standardised(
    cal: EnsembleCalibration, patch_map: np.ndarray, core: np.ndarray, student_map: np.ndarray, masks: np.ndarray
) -> np.ndarray:
    """(N, 2, h, w) the patch map on the cells its member reads and the student map on the item,
    each in its member's calibrated units, zero elsewhere."""
    patch_z = np.where(core, cal.scalers["patch"](patch_map), 0.0)
    student_z = np.where(masks, cal.scalers["student"](student_map), 0.0)
    return np.stack([patch_z, student_z], axis=1).astype(np.float32)


def interior(masks: np.ndarray, cells: int) -> np.ndarray:
    """Item masks (N,h,w) with `cells` rings of cells peeled off the outline (the frame's edge
    counts as outline). A mask with no outline (all cells) or nothing left keeps its cells."""
    if cells <= 0:
        return masks
    kernel = np.ones((2 * cells + 1, 2 * cells + 1), np.uint8)
    out = masks.copy()
    for i, m in enumerate(masks):
        if m.all():
            continue
        core = cv2.erode(m.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
        if core.any():
            out[i] = core
    return out


def _less_floor(maps: np.ndarray, masks: np.ndarray, quantile: float) -> np.ndarray:
    """Each view's map less the given quantile of its values over the item mask."""
    floors = np.array([np.quantile(m[k], quantile) for m, k in zip(maps, masks, strict=True)], dtype=np.float32)
    return maps - floors[:, None, None]


MIN_FIT_NORMALS = 5
"""Fewest normals `fit` holds back from or cross-fits (a fold bank then holds 4: enough for the
variability maps and the composition profile that the final bank has too)."""
HELD_OUT_EVERY = 4
"""`fit` without calibration images holds one normal in this many back to calibrate on (at least 3)."""

ROUND_ANGLES = (45, 90, 135, 180, 225, 270, 315)
"""Rotations (degrees) a round view is enrolled at besides upright."""


def unturned(feats: Features, n_views: int) -> Features:
    """The first `n_views` views of enrolment features: `features_of(augment=True)` lists every
    view as captured before any turned copy of it."""
    return feats.take(np.arange(n_views))


def rotate_view(pixels: np.ndarray, angle: int, fill: float = BACKGROUND_GREY) -> np.ndarray:
    """A square network input turned by `angle` degrees about its centre; corners that come
    from outside the input are `fill` (the neutral background grey)."""
    if angle % 90 == 0:
        return np.ascontiguousarray(np.rot90(pixels, k=(angle // 90) % 4, axes=(0, 1)))
    h, w = pixels.shape[:2]
    turn = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    return cv2.warpAffine(pixels, turn, (w, h), flags=cv2.INTER_LINEAR, borderValue=(fill,) * 3)


def rotate_cells(mask: np.ndarray, angle: int) -> np.ndarray:
    """The feature-cell item mask turned with its view; never empty."""
    if angle % 90 == 0:
        return np.rot90(mask, k=(angle // 90) % 4).copy()
    turned = rotate_view(mask.astype(np.float32), angle, fill=0.0) > 0.5
    return turned if turned.any() else mask.copy()


def _scale_on(references: int, items: Sequence[Any]) -> list[bool]:
    """Calibration views the member scalers are fitted on: the references, not the belt views
    after them (those set thresholds only)."""
    return [i < references for i in range(len(items))]


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "_"


@dataclass
class AnomalyModel:
    config: ModelConfig = field(default_factory=ModelConfig)
    banks: dict[str, Bank] = field(default_factory=dict)
    skus: dict[str, str] = field(default_factory=dict)
    """SKU -> bank name (its own, or its category's)."""
    categories: dict[str, str] = field(default_factory=dict)
    """Category -> bank name of the category bank."""
    version: str = ""
    runtime: Runtime | None = None
    _pool: EnsembleCalibration | None = field(default=None, init=False, repr=False)
    _resolved: dict[str, tuple[EnsembleCalibration, str]] = field(default_factory=dict, init=False, repr=False)
    """Bank name -> its calibration and source, parsed once instead of on every scored item."""
    _variability: dict[str, VariabilityMaps | None] = field(default_factory=dict, init=False, repr=False)
    """Bank name -> its variability maps, read from the bank's arrays once."""
    _composition: dict[str, CompositionProfile | None] = field(default_factory=dict, init=False, repr=False)
    """Bank name -> its composition profile, read from the bank's arrays once."""

    # --- runtime -------------------------------------------------------------------------
    def rt(self) -> Runtime:
        if self.runtime is None:
            from .runtime import TorchRuntime

            self.runtime = TorchRuntime.of(self.config)
        return self.runtime

    # --- features ------------------------------------------------------------------------
    def prepare_views(self, images: Sequence[np.ndarray], cameras: Sequence[str] | None = None) -> list[PreparedView]:
        cams = list(cameras) if cameras is not None else [f"cam{i}" for i in range(len(images))]
        return [
            prepare(view_of(img, cam, self.config.localize), self.config.image_size)
            for img, cam in zip(images, cams, strict=True)
        ]

    def embed(
        self, prepared: Sequence[PreparedView], items: Sequence[int] | None = None, augment: bool = False
    ) -> Features:
        """Features of prepared views (with enrolment augmentations when `augment`)."""
        pix = [p.pixels for p in prepared]
        masks = [p.grid_mask for p in prepared]
        item_idx = list(items) if items is not None else list(range(len(prepared)))
        cameras = [p.view.camera for p in prepared]
        if augment:
            pix, masks, sources = self._augmented(prepared, pix, masks)
            item_idx = [item_idx[v] for v in sources]
            cameras = [cameras[v] for v in sources]
        pats, globs = [], []
        b = self.config.batch
        for s in range(0, len(pix), b):
            pt, gl = self.rt().embed(np.stack(pix[s : s + b]))
            pats.append(pt)
            globs.append(gl)
        return Features(
            np.concatenate(pats), np.concatenate(globs), np.stack(masks), np.asarray(item_idx), np.asarray(cameras)
        )

    def _augmented(
        self, prepared: Sequence[PreparedView], pix: list[np.ndarray], masks: list[np.ndarray]
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
        """Enrolment views plus their configured rotations: pixels, cell masks, and the index in
        `prepared` of the view each one turns."""
        aug = self.config.augment
        angles = [180] if "rot180" in aug else []
        views = list(range(len(pix)))
        out_pix, out_masks, out_src = list(pix), list(masks), list(views)
        for angle in angles:
            out_pix += [rotate_view(p, angle) for p in pix]
            out_masks += [rotate_cells(m, angle) for m in masks]
            out_src += views
        if "rot_round" in aug:
            extra = [a for a in ROUND_ANGLES if a not in angles]
            for v, (p, px, m) in enumerate(zip(prepared, pix, masks, strict=True)):
                if p.round_outline:
                    out_pix += [rotate_view(px, a) for a in extra]
                    out_masks += [rotate_cells(m, a) for a in extra]
                    out_src += [v] * len(extra)
        return out_pix, out_masks, out_src

    def features_of(
        self,
        captures: Sequence[Sequence[np.ndarray]],
        augment: bool = False,
        cameras: Sequence[Sequence[str]] | None = None,
    ) -> Features:
        """Features of items given as lists of view images (and, when known, their cameras)."""
        prepared, items = [], []
        for i, views in enumerate(captures):
            prepared += self.prepare_views(views, cameras[i] if cameras is not None else None)
            items += [i] * len(views)
        return self.embed(prepared, items, augment)

    # --- members -------------------------------------------------------------------------
    def member_maps(
        self, bank: Bank, feats: Features, nearest: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(patch distance maps (N,h,w), student error maps (N,h,w), global distances (N,), and
        per patch the row of its nearest normal patch in the bank (N,h,w)). `nearest`: those
        rows when an earlier pass already searched the bank for these very features."""
        patch_map, nearest = self.patch_distances(bank, feats, nearest)
        student_map = self.rt().student_errors(bank, feats.patches)
        glob = bank.global_distances(feats.globals_)
        return patch_map, student_map, glob, nearest

    def patch_distances(
        self, bank: Bank, feats: Features, nearest: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N,h,w) distance of each on-item patch to its nearest normal patch, and that patch's row."""
        n, _, h, w = feats.patches.shape
        # only cells on the item are searched: every reader of these maps (peak, floor, heatmap,
        # the classifier's residuals) reads on-item cells alone, and the search is the stage's
        # largest cost
        flat, on = self.patch_rows(feats)
        patch_map = np.zeros(len(flat), np.float32)
        if nearest is not None:
            rows = np.asarray(nearest).reshape(-1)
            patch_map[on] = np.linalg.norm(flat[on] - bank.patches[rows[on]].astype(np.float32), axis=1)
            return patch_map.reshape(n, h, w), rows.reshape(n, h, w)
        found = np.zeros(len(flat), np.int64)
        if on.any():
            patch_map[on], found[on] = nearest_rows(flat[on], bank.patches)
        return patch_map.reshape(n, h, w), found.reshape(n, h, w)

    def _read_patch_map(
        self, bank: Bank, feats: Features, patch_map: np.ndarray, nearest: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(the patch map as the member reads it, the cells it reads): divided by how much good
        items vary per cell and by how crowded normal patches are around each cell's nearest one
        (`nearest`: its bank row), less the view's floor, on the item's interior."""
        variability = self.variability(bank)
        if variability is not None:
            patch_map = patch_map / variability.divisors(feats.cameras)
        spreads = density.from_extra(bank.extra) if self.config.patch_density else None
        if spreads is not None:
            patch_map = patch_map / density.divisors(spreads, nearest)
        core = interior(feats.masks, self.config.interior_cells)
        return _less_floor(patch_map, core, self.config.patch_floor_quantile), core

    def raw_scores(self, bank: Bank, feats: Features) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Per-view member scores, and the maps behind them ("patch": distance less the view's
        floor, "student", "nearest", and "interior": the cells the patch member read)."""
        patch_map, student_map, glob, nearest = self.member_maps(bank, feats)
        patch_map, core = self._read_patch_map(bank, feats, patch_map, nearest)
        profile = self.composition(bank)
        raw = {
            "patch": _masked_peak(patch_map, core),
            "global": glob.astype(np.float64),
            "student": _masked_peak(student_map, feats.masks),
            "composition": profile.scores(feats.patches, core, feats.cameras) if profile else np.zeros(len(feats)),
        }
        return raw, {"patch": patch_map, "student": student_map, "nearest": nearest, "interior": core}

    def standard_maps(self, bank: Bank, feats: Features, nearest: np.ndarray | None = None) -> np.ndarray:
        """(N, 2, h, w) the patch and student members' maps in their calibrated units (robust
        spreads above a normal view's), zero on the cells each member does not read. The same
        scale on every SKU, so a model trained on some SKUs' defects can read others'.
        `nearest`: the bank rows of the patches' nearest normals, when already searched."""
        patch_map, nearest = self.patch_distances(bank, feats, nearest)
        patch_map, core = self._read_patch_map(bank, feats, patch_map, nearest)
        student_map = self.rt().student_errors(bank, feats.patches)
        cal, _ = self.calibration(bank)
        return _standardised(cal, patch_map, core, student_map, feats.masks)

    # --- fitting -------------------------------------------------------------------------
    @staticmethod
    def patch_rows(feats: Features) -> tuple[np.ndarray, np.ndarray]:
        """Patch features as rows (N*h*w, C) and, per row, whether it lies on the item mask."""
        return patch_rows(feats.patches), feats.masks.reshape(-1)

    def train_student_state(self, patch_maps: np.ndarray, steps: int | None = None) -> dict[str, np.ndarray]:
        """Train a student on normal feature maps; its weights as arrays (shared by a category's
        banks). `steps`: training steps (default `ModelConfig.student_steps`)."""
        from .student import student_state, train_student

        steps = self.config.student_steps if steps is None else steps
        with limited_threads():
            student = train_student(patch_maps, steps=steps, seed=self.config.seed, width=self.config.student_width)
        return student_state(student)

    def build_bank(
        self,
        name: str,
        kind: str,
        enrol: Features,
        calibration: Features | None,
        n_items: int,
        *,
        student: dict[str, np.ndarray] | None = None,
        student_source: str | None = None,
        patches: tuple[np.ndarray, np.ndarray] | None = None,
        cross_fit: dict[str, Any] | None = None,
    ) -> Bank:
        """A bank from enrolment features, its student, and calibration on separate normal views.

        `student`: weights trained elsewhere (the category's, shared by its SKU banks, so one
        training serves many banks); trained here on `enrol` when absent. `patches`: candidate
        patch rows and their on-item flags when not the enrolment views' own (a category bank
        built from its SKU banks' coresets). `cross_fit`: the enrolment items' own raw member
        scores read against banks built without them (`cross_fit_scores`), calibrating the bank
        with or instead of `calibration`. Calibration is always this bank's own.
        """
        with limited_threads():
            bank = self._bank_without_calibration(name, kind, enrol, n_items, student, student_source, patches)
            if calibration is not None:
                self._store_calibration(bank, calibration)
            if cross_fit is not None:
                bank.meta[CROSS_FIT_KEY] = cross_fit
            self.calibrate(bank)
        return bank

    def _bank_without_calibration(
        self,
        name: str,
        kind: str,
        enrol: Features,
        n_items: int,
        student: dict[str, np.ndarray] | None,
        student_source: str | None,
        patches: tuple[np.ndarray, np.ndarray] | None,
        student_steps: int | None = None,
    ) -> Bank:
        from .runtime import STUDENT_PREFIX

        cfg = self.config
        with limited_threads():
            bank = Bank(name=name, kind=kind, max_patches=cfg.max_patches, max_globals=cfg.max_globals)
            rows, keep = patches if patches is not None else self.patch_rows(enrol)
            bank.add(rows, enrol.globals_, n_items, keep=keep)
            if student is None:
                student, student_source = self.train_student_state(enrol.patches, student_steps), name
            if patches is None and cfg.patch_variability:
                variability = VariabilityMaps.fit(enrol.patches, enrol.masks, enrol.items, enrol.cameras)
                bank.extra.update(variability.to_extra() if variability is not None else {})
            core = interior(enrol.masks, cfg.interior_cells)
            profile = CompositionProfile.fit(enrol.patches, core, enrol.items, enrol.cameras, seed=cfg.seed)
            bank.extra.update(profile.to_extra() if profile is not None else {})
            bank.extra.update({STUDENT_PREFIX + k: v for k, v in student.items()})
            bank.meta["student_source"] = student_source or name
            bank.meta["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return bank

    def cross_fit_scores(
        self, enrol: Features, views: Features, student: dict[str, np.ndarray] | None = None, prefix: str = "cross+"
    ) -> dict[str, Any]:
        """Raw member scores of every enrolment item's `views`, each read against a bank built
        from the other folds of `enrol`'s items (`ModelConfig.cross_fit_folds`, at most one fold
        per item), so that all of few normals both enrol and calibrate. `views`: the items' own
        views as a calibration image would show them (`enrol` may add turned copies). `student`:
        the weights the final bank will score with, when trained elsewhere (a category's, which
        has seen every item among its SKUs'); else each fold trains its own. `prefix`: of each
        view's item key.

        A fold bank holds a fifth fewer items than the final one, so its normals score a little
        higher than new normals will against the final bank: the threshold errs towards fewer
        false diverts.
        """
        items = np.unique(enrol.items)
        if len(items) < 2:
            raise ValueError(f"cross-fitted calibration needs at least 2 normal items, got {len(items)}")
        folds = min(self.config.cross_fit_folds, len(items))
        steps = self.cross_fit_student_steps
        fold_of = np.random.default_rng(self.config.seed).permutation(len(items)) % folds
        raw: dict[str, list[float]] = {m: [] for m in MEMBERS}
        view_keys: list[str] = []
        for fold in range(folds):
            kept = enrol.take(np.flatnonzero(~np.isin(enrol.items, items[fold_of == fold])))
            bank = self._bank_without_calibration(
                f"cross-fold-{fold}", "sku", kept, len(np.unique(kept.items)), student, None, None, steps
            )
            scored = views.take(np.flatnonzero(np.isin(views.items, items[fold_of == fold])))
            fold_raw, _ = self.raw_scores(bank, scored)
            self._drop_cached(bank)
            for m in MEMBERS:
                raw[m] += [float(v) for v in fold_raw[m]]
            view_keys += [f"{prefix}{int(i)}" for i in scored.items]
        return {"raw": raw, "items": view_keys, "folds": folds}

    @property
    def cross_fit_student_steps(self) -> int:
        return max(1, self.config.student_steps // self.config.cross_fit_student_share)

    def _forget_arrays(self, bank: Bank) -> None:
        """Forget the variability maps and composition profile read from a bank's arrays once."""
        self._variability.pop(bank.name, None)
        self._composition.pop(bank.name, None)

    def _drop_cached(self, bank: Bank) -> None:
        """Forget all scoring read from a bank once, its student too (it changed, or the bank is gone)."""
        self._forget_arrays(bank)
        forget = getattr(self.rt(), "forget", None)
        if forget is not None:
            forget(bank)

    def _store_calibration(self, bank: Bank, cal: Features) -> None:
        """Keep calibration features (float16, capped) so incremental enrolment can recalibrate."""
        if len(cal) > self.config.max_calibration_views:
            rng = np.random.default_rng(self.config.seed)
            cal = cal.take(np.sort(rng.choice(len(cal), self.config.max_calibration_views, replace=False)))
        bank.extra[CAL_PREFIX + "patches"] = cal.patches.astype(np.float16)
        bank.extra[CAL_PREFIX + "globals"] = cal.globals_.astype(np.float16)
        bank.extra[CAL_PREFIX + "masks"] = cal.masks
        bank.extra[CAL_PREFIX + "items"] = cal.items
        bank.extra[CAL_PREFIX + "cameras"] = cal.cameras.astype(str)

    def _calibration_features(self, bank: Bank) -> Features:
        x = bank.extra
        return Features(
            x[CAL_PREFIX + "patches"].astype(np.float32),
            x[CAL_PREFIX + "globals"].astype(np.float32),
            x[CAL_PREFIX + "masks"].astype(bool),
            x[CAL_PREFIX + "items"],
            x.get(CAL_PREFIX + "cameras"),
        )

    def calibrate(self, bank: Bank) -> None:
        """Fit the bank's own scalers and thresholds on its calibration views (held out, or
        cross-fitted) and the belt normals it serves, keeping their raw member scores for the pool
        of small banks."""
        self._forget_arrays(bank)  # they may be new (built, enrolled more)
        raw_lists: dict[str, list[float]] = {m: [] for m in MEMBERS}
        items: list[int | str] = []
        if CAL_PREFIX + "patches" in bank.extra:
            cal = self._calibration_features(bank)
            raw, _ = self.raw_scores(bank, cal)
            for m in MEMBERS:
                raw_lists[m] += [float(v) for v in raw[m]]
            items += [int(i) for i in cal.items]

        def join(scored: dict[str, Any] | None) -> None:
            if scored:
                for m in MEMBERS:
                    raw_lists[m] += [float(v) for v in scored["raw"][m]]
                items.extend(str(key) for key in scored["items"])

        join(bank.meta.get(CROSS_FIT_KEY))
        references = len(items)
        join(bank.meta.get(BELT_KEY))
        own = EnsembleCalibration.fit(
            raw_lists, items, dict(self.config.member_weights), self.config.target_rate, _scale_on(references, items)
        )
        bank.meta["calibration"] = {**own.to_dict(), "raw": raw_lists, "items": items, "reference_views": references}
        self._forget_calibrations()

    def add_belt_calibration(self, bank_name: str, raw: dict[str, list[float]], items: Sequence[str]) -> int:
        """Join raw member scores of confirmed-normal belt views (one per view, `items` naming each
        view's item) to a bank's calibration and refit it. An item seen again replaces its earlier
        views; the newest `MAX_BELT_VIEWS` are kept. Returns the bank's belt view count."""
        if any(len(raw[m]) != len(items) for m in MEMBERS):
            raise ValueError("every member needs one raw score per belt view")
        bank = self.banks[bank_name]
        old = bank.meta.get(BELT_KEY) or {"raw": {m: [] for m in MEMBERS}, "items": []}
        fresh = {str(k) for k in items}
        keep = [i for i, key in enumerate(old["items"]) if key not in fresh]
        merged_items = [old["items"][i] for i in keep] + [str(k) for k in items]
        merged = {m: [old["raw"][m][i] for i in keep] + [float(v) for v in raw[m]] for m in MEMBERS}
        bank.meta[BELT_KEY] = {
            "raw": {m: v[-MAX_BELT_VIEWS:] for m, v in merged.items()},
            "items": merged_items[-MAX_BELT_VIEWS:],
        }
        with limited_threads():
            self.calibrate(bank)
        self.version = self._digest()
        return len(bank.meta[BELT_KEY]["items"])

    def _forget_calibrations(self) -> None:
        self._pool = None
        self._resolved.clear()
        self._variability.clear()
        self._composition.clear()

    def composition(self, bank: Bank) -> CompositionProfile | None:
        """The bank's composition profile (None: fitted from too few items), read from its arrays
        once, not per item."""
        if bank.name not in self._composition:
            self._composition[bank.name] = CompositionProfile.from_extra(bank.extra)
        return self._composition[bank.name]

    def variability(self, bank: Bank) -> VariabilityMaps | None:
        """The bank's variability maps (None: not used, or none enrolled), read from its arrays
        once, not per item."""
        if not self.config.patch_variability:
            return None
        if bank.name not in self._variability:
            self._variability[bank.name] = VariabilityMaps.from_extra(bank.extra)
        return self._variability[bank.name]

    def calibration(self, bank: Bank) -> tuple[EnsembleCalibration, str]:
        """(calibration, source) for a bank: its own when it has enough calibration items, else
        the pool of every SKU bank's raw normal scores."""
        hit = self._resolved.get(bank.name)
        if hit is None:
            hit = self._resolved[bank.name] = self._resolve_calibration(bank)
        return hit

    def _resolve_calibration(self, bank: Bank) -> tuple[EnsembleCalibration, str]:
        n_items = bank.meta["calibration"]["n_items"]
        if n_items < self.config.own_calibration_items:
            if self._pool is None:
                members = [b for b in self.banks.values() if b.kind == "sku"] or list(self.banks.values())
                parts = [
                    (c["raw"], c["items"], _scale_on(c.get("reference_views", len(c["items"])), c["items"]))
                    for c in (b.meta["calibration"] for b in members)
                ]
                self._pool = EnsembleCalibration.pooled(
                    parts, dict(self.config.member_weights), self.config.target_rate
                )
            if self._pool.n_items > n_items:
                return self._pool, "pooled"
        return EnsembleCalibration.from_dict(bank.meta["calibration"]), "bank"

    def fit(
        self,
        images: Sequence[np.ndarray],
        calibration: Sequence[np.ndarray] | None = None,
        name: str = "default",
        cross_fit: bool | None = None,
    ) -> Bank:
        """One bank from normal images. `cross_fit`: every normal enrols and also calibrates,
        scored against banks of the other folds (`cross_fit_scores`), beside any `calibration`
        images; None: so when no calibration images are given and the normals are fewer than
        `ModelConfig.cross_fit_below`. Otherwise `calibration` images, or else a held-out
        quarter of the normals, calibrate."""
        images = list(images)
        if cross_fit is None:
            cross_fit = calibration is None and len(images) < self.config.cross_fit_below
        if (calibration is None or cross_fit) and len(images) < MIN_FIT_NORMALS:
            needs = "cross-fitting needs" if cross_fit else "fit needs"
            otherwise = "" if cross_fit else " (or separate calibration images)"
            raise ValueError(f"{needs} at least {MIN_FIT_NORMALS} normal images{otherwise}, got {len(images)}")
        if calibration is None and not cross_fit:
            rng = np.random.default_rng(self.config.seed)
            order = rng.permutation(len(images))
            n_cal = min(max(3, len(images) // HELD_OUT_EVERY), len(images) - 2)
            calibration = [images[i] for i in order[:n_cal]]
            images = [images[i] for i in order[n_cal:]]
        with limited_threads():
            enrol = self.features_of([[im] for im in images], augment=True)
            cal = self.features_of([[im] for im in calibration]) if calibration else None
            if cross_fit:
                scores = self.cross_fit_scores(enrol, unturned(enrol, len(images)))
                # trained as the folds' were, so that it reads new normals on their scale
                student = self.train_student_state(enrol.patches, self.cross_fit_student_steps)
                bank = self.build_bank(name, "sku", enrol, cal, len(images), student=student, cross_fit=scores)
            else:
                bank = self.build_bank(name, "sku", enrol, cal, len(images))
        self.add_bank(bank, skus=[name])
        return bank

    def add_bank(self, bank: Bank, skus: Sequence[str] = (), category: str | None = None) -> None:
        self.banks[bank.name] = bank
        for sku in skus:
            self.skus[sku] = bank.name
        if category is not None:
            self.categories[category] = bank.name
        self._forget_calibrations()
        self.version = self._digest()

    def enroll_more(self, bank_name: str, images: Sequence[Sequence[np.ndarray]]) -> Bank:
        """Incremental enrolment: add normal items to a bank, refresh its student, recalibrate.
        A cross-fitted bank (`fit` with few normals) first scores the new items against itself as
        it stands, without them, and calibrates on those scores too."""
        from .runtime import STUDENT_PREFIX
        from .student import student_from_state, student_state, train_student

        bank = self.banks[bank_name]
        # belt scores were read against the bank as it was: `anomaly calibrate` again after this
        bank.meta.pop(BELT_KEY, None)
        with limited_threads():
            feats = self.features_of(images, augment=True)
            cross = bank.meta.get(CROSS_FIT_KEY)
            if cross is not None:
                own = unturned(feats, sum(len(views) for views in images))
                raw, _ = self.raw_scores(bank, own)
                for m in MEMBERS:
                    cross["raw"][m] += [float(v) for v in raw[m]]
                cross["items"] += [f"cross+{bank.n_images + int(i)}" for i in own.items]
            rows, keep = self.patch_rows(feats)
            profile = self.composition(bank)
            if profile is not None:
                keys = [f"enrolled+{bank.n_images + int(i)}" for i in feats.items]
                core = interior(feats.masks, self.config.interior_cells)
                profile = profile.with_references(feats.patches, core, keys, feats.cameras)
                bank.extra.update(profile.to_extra())
            bank.add(rows, feats.globals_, len(images), keep=keep)
            state = {k[len(STUDENT_PREFIX) :]: v for k, v in bank.extra.items() if k.startswith(STUDENT_PREFIX)}
            student = train_student(
                feats.patches, steps=max(50, self.config.student_steps // 3), lr=5e-4, model=student_from_state(state)
            )
        # the bank now owns a refined copy; it no longer equals the shared one it started from
        bank.extra.update({STUDENT_PREFIX + k: v for k, v in student_state(student).items()})
        bank.meta["student_source"] = bank.name
        self._drop_cached(bank)
        with limited_threads():
            self.calibrate(bank)
        self.version = self._digest()
        return bank

    # --- scoring -------------------------------------------------------------------------
    def resolve(self, sku: str | None = None, category: str | None = None) -> Bank:
        """The bank for a SKU: its own, else its category's; NoReference if neither exists."""
        if sku is None:
            if len(self.banks) == 1:
                return next(iter(self.banks.values()))
            if "default" in self.banks:
                return self.banks["default"]
            raise NoReference(f"model has {len(self.banks)} banks; name a SKU (known: {sorted(self.skus)[:10]})")
        if sku in self.skus:
            return self.banks[self.skus[sku]]
        if category is not None and category in self.categories:
            return self.banks[self.categories[category]]
        raise NoReference(f"no reference bank for SKU {sku!r}" + (f" or category {category!r}" if category else ""))

    def score_prepared(self, prepared: Sequence[PreparedView], bank: Bank) -> ItemResult:
        """Score one item's prepared views against a bank."""
        start = time.perf_counter()
        cal, source = self.calibration(bank)
        feats = self.embed(prepared)
        raw, maps = self.raw_scores(bank, feats)
        standard = _standardised(cal, maps["patch"], maps["interior"], maps["student"], feats.masks)
        views = []
        for i, prep in enumerate(prepared):
            z = cal.standardise({m: raw[m][i] for m in MEMBERS})
            score, top = fuse_members(z, dict(self.config.member_weights))
            patch_heat = cal.scalers["patch"](maps["patch"][i])
            core = maps["interior"][i]
            patch_heat = np.where(core, patch_heat, patch_heat[core].min())
            heat = fuse_maps([patch_heat, cal.scalers["student"](maps["student"][i])])
            heat = np.where(prep.grid_mask, heat, heat[prep.grid_mask].min())
            views.append(
                ViewResult(
                    camera=prep.view.camera,
                    raw={m: float(raw[m][i]) for m in MEMBERS},
                    z=z,
                    score=score,
                    top_member=top,
                    probability=float(cal.view.probability(score)[0]),
                    anomalous=bool(cal.view.is_anomalous(score)[0]),
                    heatmap=heat.astype(np.float32),
                    prepared=prep,
                    embedding=feats.globals_[i],
                    patches=feats.patches[i],
                    nearest=maps["nearest"][i],
                    standard=standard[i],
                )
            )
        single = len(views) == 1
        calib = cal.view if single else cal.item
        item_score, _ = fuse_views([v.score for v in views])
        return ItemResult(
            bank=bank.name,
            bank_kind=bank.kind,
            score=item_score,
            probability=float(calib.probability(item_score)[0]),
            anomalous=bool(calib.is_anomalous(item_score)[0]),
            threshold=calib.threshold,
            calibration=source,
            views=views,
            ms=(time.perf_counter() - start) * 1000.0,
        )

    def score(
        self,
        images: Sequence[np.ndarray],
        sku: str | None = None,
        category: str | None = None,
        cameras: Sequence[str] | None = None,
    ) -> ItemResult:
        """Score one item from its view images (frames or crops)."""
        bank = self.resolve(sku, category)
        start = time.perf_counter()
        result = self.score_prepared(self.prepare_views(images, cameras), bank)
        result.ms = (time.perf_counter() - start) * 1000.0
        return result

    # --- persistence ---------------------------------------------------------------------
    def _digest(self) -> str:
        h = hashlib.sha1()
        for name in sorted(self.banks):
            b = self.banks[name]
            h.update(name.encode())
            h.update(np.ascontiguousarray(b.patches[:64]).tobytes())
            h.update(str(b.n_images).encode())
            belt = b.meta.get(BELT_KEY)
            if belt:
                h.update(json.dumps(belt, sort_keys=True).encode())
        return f"anomaly-{MODEL_FORMAT}-{h.hexdigest()[:12]}"

    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        (folder / "banks").mkdir(parents=True, exist_ok=True)
        bank_dirs = {}
        for name, bank in self.banks.items():
            bank_dirs[name] = safe_name(name)
            bank.save(folder / "banks" / bank_dirs[name])
        info = {
            "format": MODEL_FORMAT,
            "version": self.version or self._digest(),
            "config": asdict(self.config),
            "banks": {n: {"dir": d, "kind": self.banks[n].kind} for n, d in bank_dirs.items()},
            "skus": self.skus,
            "categories": self.categories,
        }
        (folder / "model.json").write_text(json.dumps(info, indent=1, sort_keys=True))
        return folder

    @classmethod
    def load(cls, folder: Path | str, runtime: Runtime | None = None) -> AnomalyModel:
        folder = Path(folder)
        path = folder / "model.json"
        if not path.is_file():
            raise FileNotFoundError(f"{folder}: no model.json (not an anomaly model folder)")
        info = read_model_record(path)
        if info.get("format") != MODEL_FORMAT:
            raise ValueError(
                f"{folder}: model format {info.get('format')!r}, this version reads {MODEL_FORMAT}; "
                "re-enrol it (tunnelpi enroll, or tunnelpi anomaly fit)"
            )
        cfg = info["config"]
        cfg["augment"] = tuple(cfg.get("augment", ()))
        cfg["member_weights"] = tuple(tuple(w) for w in cfg.get("member_weights", ()))
        cfg.setdefault("patch_interior_cells", 0)  # folders saved before the rim was peeled
        banks = {n: Bank.load(folder / "banks" / b["dir"]) for n, b in info["banks"].items()}
        return cls(
            config=ModelConfig(**cfg),
            banks=banks,
            skus=info["skus"],
            categories=info["categories"],
            version=info["version"],
            runtime=runtime,
        )


def load_shared(folder: Path | str) -> AnomalyModel:
    """One loaded copy of a model folder for the stages that only read its banks (the wrong-item
    check, the classifier's residual inputs), so a process holds the banks once; a folder whose
    model.json changed since is loaded anew."""
    folder = Path(folder).resolve()
    if not (folder / "model.json").is_file():
        return AnomalyModel.load(folder)  # raises, saying what the folder lacks
    return _load_shared(str(folder), (folder / "model.json").stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _load_shared(folder: str, _stamp: int) -> AnomalyModel:
    return AnomalyModel.load(folder)
