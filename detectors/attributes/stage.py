"""`AttributesStage`: fine details the anomaly ensemble cannot see: label, colour, identity.

Findings:
- "wrong_variant_label": a size/model label confidently read as another value of its family;
- "unreadable_label" (review): the SKU should carry a variant label and none could be read;
- "label_ok" (informational): which value was read and where;
- "wrong_colour": too little of the item shows the catalog colour;
- "wrong_item": the item's look is nearer another SKU's normal bank (needs an anomaly model).
Label text comes from the lines `ocr_expiry` publishes under `TEXT_LINES_KEY` when it read the
same crops (the stage runs after it); only views it did not read are OCR'd here. Crops lie
long side horizontal, so print that runs across an item (a T-shirt's or a phone-case box's
size sticker) stands on its side: a view that leaves the label unread is read again turned a
quarter (the engine retries upside-down lines itself). Views are read until the label is
settled, and every view once another value has been read, so that a misread is outvoted. At
the edge a CPU budget bounds the label OCR per item; a label left unread when it runs out is
a review, said so in the finding.
A SKU whose acceptable packaging variants hide or change the label (a shoe without its box)
is checked the same way: values, not layout, are compared, so a variant is never a finding.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detectors.ocr_expiry.engines import (
    TEXT_IMAGES_KEY,
    TEXT_LINES_KEY,
    WARM_UP_IMAGE,
    OcrEngine,
    TextLine,
    get_engine,
)
from detectors.ocr_expiry.smear import view_without_smear
from pipeline.imageio import ImageError
from pipeline.policy import REVIEW_CEILING_P
from pipeline.stages import StageContext
from pipeline.types import CatalogRecord, Evidence, Finding, ItemCapture
from pipeline.views import EMBEDDINGS_KEY, OTHER_LOOK_KEY, VIEWS_KEY, LocalizedView, ViewEmbeddings

from .colour import DEFAULT_COLOUR, ColourConfig, ColourRead, camouflaged
from .identity import IdentityChecker, IdentityRead
from .labels import LABEL_ATTRIBUTES, LabelCheck, ValueRead, canonical, expected_labels, judge, read_values, votes
from .ocr import LABEL_ENGINE, label_engine
from .profile import OWN_TOTE_FRACTION, PROFILE_FILE, AttributeProfile, ColourTrust

VERSION = "attributes-2"
OCR_SIDE = 640
"""Crops with a shorter long side are enlarged to it (at most `MAX_OCR_ZOOM`) before OCR: the
size sticker of a small box is a few pixels tall at the frame's resolution."""
MAX_OCR_ZOOM = 3.0
EDGE_BUDGET_MS = 400.0
"""Label OCR CPU per item at the conveyor (`tunnelpi serve`); `inspect` and re-audit read without one."""
TURNS = (0, 1, 3)
"""Quarter turns (counter-clockwise) a view is read in, in order, until it yields a label value.

An upright crop lies long side horizontal, either way round, so a label printed across it reads
at a quarter turn either way. The engine reads upside-down lines itself (`recognize_upright`),
but a sticker's print three quarters round was not even detected one quarter round: a phone
box's "P16" sticker read nothing at 0 and 90 degrees and "P16" at 1.00 at 270."""
MAX_LINE_SHARE = 0.5
"""A line thicker than this share of the image it was read on is no printed text: the
recogniser's guess at the item's own outline (a shirt read "M" in a box as big as the view)."""
IDENTITY_SCALE = 0.03
"""Embedding-distance margin that moves the wrong-item probability from 0.5 to ~0.73."""


@dataclass(frozen=True)
class ReadLine:
    """An OCR line with the view it was read on and how that view's crop was scaled and turned."""

    camera: str
    line: TextLine
    scale: float = 1.0
    turn: int = 0
    """Quarter turns counter-clockwise (np.rot90) of the scaled crop the engine read."""
    width: int = 0
    """Width of the scaled crop before turning (to map a turned box back)."""
    height: int = 0
    """Height of the scaled crop before turning."""
    corrected: bool = False
    """Read on a corrected copy of the crop (the belt's smear taken out), not the crop itself."""


def _published_for(ctx: StageContext, key: str, views: dict[str, LocalizedView]) -> dict[str, Any]:
    """What `ocr_expiry` published under `key` per camera, for the views it read that this stage
    reads too (the same localised view object)."""
    published: dict[str, Any] = ctx.shared.get(key) or {}
    crops: dict[str, LocalizedView] = ctx.shared.get(VIEWS_KEY) or {}
    return {cam: published[cam] for cam in views if cam in published and crops.get(cam) is views[cam]}


@dataclass(frozen=True)
class LabelReading:
    """The label checks, the lines they were judged on, and whether the OCR budget ran out first."""

    checks: dict[str, LabelCheck]
    lines: list[ReadLine]
    budget_spent: bool = False
    deadline_near: bool = False
    """Reading stopped because the item's verdict deadline was near."""


def printed_lines(lines: list[TextLine], image_shape: tuple[int, ...]) -> list[TextLine]:
    """The lines whose thickness (the shorter side of the box) could be printed text on an
    image of `image_shape`; a sticker's value is never half as tall as the whole item."""
    limit = MAX_LINE_SHARE * min(image_shape[:2])
    return [line for line in lines if min(line.box[2] - line.box[0], line.box[3] - line.box[1]) <= limit]


def unturn_box(
    box: tuple[float, float, float, float], turn: int, width: int, height: int
) -> tuple[float, float, float, float]:
    """A box read on `np.rot90(image, turn)` in the coordinates of `image` (`width` x `height`)."""
    x0, y0, x1, y1 = box
    return {
        0: (x0, y0, x1, y1),
        1: (width - y1, x0, width - y0, x1),
        2: (width - x1, height - y1, width - x0, height - y0),
        3: (y0, height - x1, y1, height - x0),
    }[turn % 4]


def frame_box(read: ReadLine, view: LocalizedView) -> list[float]:
    bx = unturn_box(read.line.box, read.turn, read.width, read.height)
    x0, y0, x1, y1 = (v / read.scale for v in bx)
    pts = view.to_frame(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    return [round(float(v), 1) for v in (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())]


def _find_dir(model_dir: Path | None, marker: str, sub: str) -> Path | None:
    if model_dir is None:
        return None
    for cand in (Path(model_dir), Path(model_dir) / sub):
        if (cand / marker).is_file():
            return cand
    return None


OTHER_LOOK_KINDS = frozenset({"wrong_item", "wrong_colour"})
"""Findings that say the item does not look like its SKU at all; one that diverts (not a review)
is published under `OTHER_LOOK_KEY`."""


class AttributesStage:
    """Label, colour and identity checks against the catalog record of the item's SKU."""

    name = "attributes"
    after = ("localize", "ocr_expiry")
    """Runs once the expiry OCR has published its text lines, so no label is read twice."""
    joins = ("anomaly",)
    """The identity check waits for the anomaly stage's view embeddings (looks are not computed
    twice); labels and colour are read meanwhile, so the label OCR and the anomaly models of
    one item run side by side."""

    def __init__(
        self,
        model_dir: Path | str | None = None,
        engine: str | OcrEngine = LABEL_ENGINE,
        colour: ColourConfig = DEFAULT_COLOUR,
        min_confidence: float = 0.8,
        budget_ms: float | None = None,
        check_labels: bool = True,
        check_colour: bool = True,
        check_identity: bool = True,
    ) -> None:
        self.engine_spec = engine
        self.colour = colour
        self.min_confidence = min_confidence
        self.budget_ms = budget_ms
        """Label OCR CPU per item (this thread's) after which no pass starts; None: no limit."""
        self.checks = {"labels": check_labels, "colour": check_colour, "identity": check_identity}
        self.profile = AttributeProfile()
        self.identity: IdentityChecker | None = None
        self._loaded_from: Path | None = None
        if model_dir is not None:
            self._load(Path(model_dir))
        self.version = self._version()

    def _version(self) -> str:
        ident = self.identity.version if self.identity else "no-identity"
        return f"{VERSION}+{ident}"

    def _load(self, model_dir: Path) -> None:
        self._loaded_from = model_dir
        prof = _find_dir(model_dir, PROFILE_FILE, "attributes")
        if prof is not None:
            self.profile = AttributeProfile.load(prof)
        anomaly = _find_dir(model_dir, "model.json", "anomaly")
        if anomaly is not None and self.checks["identity"]:
            self.identity = IdentityChecker(anomaly)
        self.version = self._version()

    @property
    def engine(self) -> OcrEngine:
        """The engine for views this stage reads itself (the label engine unless another was given)."""
        spec = self.engine_spec
        if spec == LABEL_ENGINE:
            return label_engine()
        return get_engine(spec) if isinstance(spec, str) else spec

    def warm_up(self) -> None:
        """Build this thread's label engine and read a blank view (`pipeline.runner.Inspector.warm_up`)."""
        if self.checks["labels"]:
            self.engine.read(WARM_UP_IMAGE)

    # -- stage ---------------------------------------------------------------------------
    def __call__(self, capture: ItemCapture, ctx: StageContext) -> list[Finding]:
        if self._loaded_from is None and ctx.model_dir is not None:
            self._load(Path(ctx.model_dir))
        record = ctx.catalog.skus.get(capture.sku)
        if record is None:
            return []  # the runner already reports the unknown SKU
        views, frames, findings, unusable = self._views(capture, ctx)
        if not views:
            return findings
        if self.checks["labels"]:
            findings += self.label_findings(
                record,
                views,
                frames,
                self._shared_lines(ctx, views),
                ctx.optional_work_allowed,
                self._text_images(ctx, views, frames),
            )
        if self.checks["colour"] and record.colour_rgb is not None:
            findings += self.colour_findings(record, views, frames, unusable)
        if self.checks["identity"] and self.identity is not None and self.identity.knows(record.sku):
            ctx.wait("anomaly")
            clear = [v for c, v in views.items() if not self._camouflaged(record, v, frames[c])]
            # a crop cut down by a tote of the item's own colour is no likeness of it: when every
            # view is in such a tote, only a positive likeness to another SKU calls a wrong item
            chosen = clear or list(views.values())
            findings += self.identity_findings(
                record, chosen, self._shared_embeddings(ctx, chosen), ctx.catalog.skus, camouflaged=not clear
            )
        other_look = [f for f in findings if f.kind in OTHER_LOOK_KINDS and f.probability > REVIEW_CEILING_P]
        if other_look:
            ctx.shared[OTHER_LOOK_KEY] = f"{other_look[0].kind}: {other_look[0].message}"
        return findings

    def _views(
        self, capture: ItemCapture, ctx: StageContext
    ) -> tuple[dict[str, LocalizedView], dict[str, np.ndarray], list[Finding], list[str]]:
        """Localised views that show an item (from localize, or localised here), their frames, and
        the cameras whose frame is unusable: unreadable, or featureless (a lens cap, a blank frame)."""
        from detectors.anomaly.prepare import FeaturelessImage, check_informative
        from detectors.localize import localize

        shared: dict[str, LocalizedView] = ctx.shared.get(VIEWS_KEY) or {}
        views, frames, findings, unusable = {}, {}, [], []
        for frame in capture.frames:
            try:
                image = frame.load(capture.root)
            except ImageError as exc:
                findings.append(self._finding("image_error", 1.0, 1.0, str(exc), [Evidence(camera=frame.camera)]))
                unusable.append(frame.camera)
                continue
            view = shared.get(frame.camera) or localize(image, frame.camera)
            if view.found:
                views[frame.camera], frames[frame.camera] = view, image
                continue
            try:
                check_informative(image, frame.camera)
            except FeaturelessImage:
                unusable.append(frame.camera)
        return views, frames, findings, unusable

    @staticmethod
    def _shared_lines(ctx: StageContext, views: dict[str, LocalizedView]) -> dict[str, list[TextLine]]:
        """Lines `ocr_expiry` read on the same crops this stage uses (absent when it did not run,
        e.g. a SKU that carries no date); a view localised here instead is read here."""
        return _published_for(ctx, TEXT_LINES_KEY, views)

    @staticmethod
    def _text_images(
        ctx: StageContext, views: dict[str, LocalizedView], frames: dict[str, np.ndarray]
    ) -> Callable[[str], np.ndarray]:
        """Each view's image to read labels on: what `ocr_expiry` read there (published), else
        the crop with the belt's motion smear taken out (`smear.view_without_smear`), made once."""
        published: dict[str, np.ndarray] = _published_for(ctx, TEXT_IMAGES_KEY, views)
        made: dict[str, np.ndarray] = {}

        def image(camera: str) -> np.ndarray:
            if camera in published:
                return published[camera]
            if camera not in made:
                made[camera] = view_without_smear(frames[camera], views[camera])[0]
            return made[camera]

        return image

    def _finding(self, kind: str, score: float, prob: float, message: str, evidence: list[Evidence]) -> Finding:
        return Finding(
            stage=self.name,
            kind=kind,
            score=float(score),
            probability=float(min(1.0, max(0.0, prob))),
            message=message,
            evidence=evidence,
            model_version=self.version,
        )

    # -- labels --------------------------------------------------------------------------
    def read_labels(
        self,
        record: CatalogRecord,
        views: dict[str, LocalizedView],
        shared: dict[str, list[TextLine]] | None = None,
        may_continue: Callable[[], bool] | None = None,
        text_image: Callable[[str], np.ndarray] | None = None,
        expected: dict[str, str] | None = None,
    ) -> LabelReading:
        """Read views (each upright, then turned if it yields no value) until every expected attribute is settled.

        A view whose lines `ocr_expiry` published (`shared`, upright crop coordinates) costs no
        OCR upright. Once any view reads another value than the catalog's, every view is read,
        so the vote in `judge` sees all of them. With a `budget_ms`, no OCR pass starts once
        this thread has spent that much CPU in the stage's label reading; past the first pass,
        none starts when `may_continue` (the item's verdict deadline) says no. `text_image`
        gives the image to read for a camera (default: its view's crop). `expected` names the
        attributes to read and their catalog values (default: the record's variant labels)."""
        expected = expected_labels(record.attributes) if expected is None else expected
        shared = shared or {}
        deadline = None if self.budget_ms is None else time.thread_time() + self.budget_ms / 1000.0
        lines: list[ReadLine] = []
        checks = self._judge(expected, lines)
        passes = 0
        for camera, view in views.items():
            for turn in TURNS:
                free = turn == 0 and camera in shared
                if not free and deadline is not None and time.thread_time() >= deadline:
                    return LabelReading(checks, lines, budget_spent=True)
                if not free and passes and may_continue is not None and not may_continue():
                    return LabelReading(checks, lines, deadline_near=True)
                passes += 1
                image = text_image(camera) if text_image else view.crop
                corrected = image is not view.crop
                if free:
                    shape = view.crop.shape
                    new = [ReadLine(camera, line, corrected=corrected) for line in printed_lines(shared[camera], shape)]
                else:
                    new = self._ocr_view(camera, image, turn, corrected)
                lines += new
                checks = self._judge(expected, lines)
                if all(c.settled for c in checks.values()):
                    return LabelReading(checks, lines)
                pairs = [(r.line.text, r.line.confidence) for r in new]
                if all(
                    any(v.confidence >= self.min_confidence for v in read_values(pairs, value))
                    for value in expected.values()
                ):
                    break  # this view gave its reading; turning it adds nothing
        return LabelReading(checks, lines)

    def _judge(self, expected: dict[str, str], lines: list[ReadLine]) -> dict[str, LabelCheck]:
        pairs = [(r.line.text, r.line.confidence) for r in lines]
        sources = [r.camera for r in lines]
        corrected = frozenset(r.camera for r in lines if r.corrected)
        return {
            attr: judge(attr, value, read_values(pairs, value, sources), self.min_confidence, corrected)
            for attr, value in expected.items()
        }

    def _ocr_view(self, camera: str, crop: np.ndarray, turn: int = 0, corrected: bool = False) -> list[ReadLine]:
        """Lines read on a view's crop (or a corrected copy on its pixel grid), enlarged when small
        and turned `turn` quarter turns."""
        scale = 1.0
        if max(crop.shape[:2]) < OCR_SIDE:
            scale = min(MAX_OCR_ZOOM, OCR_SIDE / max(crop.shape[:2]))
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        height, width = crop.shape[:2]
        if turn:
            crop = np.ascontiguousarray(np.rot90(crop, turn))
        lines = printed_lines(self.engine.read(crop), crop.shape)
        return [ReadLine(camera, line, scale, turn, width, height, corrected) for line in lines]

    def label_findings(
        self,
        record: CatalogRecord,
        views: dict[str, LocalizedView],
        frames: dict[str, np.ndarray],
        shared: dict[str, list[TextLine]] | None = None,
        may_continue: Callable[[], bool] | None = None,
        text_image: Callable[[str], np.ndarray] | None = None,
    ) -> list[Finding]:
        if not expected_labels(record.attributes):
            return []
        reading = self.read_labels(record, views, shared, may_continue, text_image)
        checks, lines = reading.checks, reading.lines

        def evidence(read: ValueRead, expected: str, attr: str) -> Evidence:
            rl = lines[read.index]
            return Evidence(
                camera=rl.camera,
                box=frame_box(rl, views[rl.camera]),
                text=rl.line.text,
                data={
                    "attribute": attr,
                    "expected": expected,
                    "read": read.value,
                    "confidence": round(read.confidence, 3),
                },
            )

        out = []
        for attr, check in checks.items():
            want = canonical(check.expected)
            if check.status == "wrong":
                support = votes(check.reads)
                value = max((v for v in support if v != want), key=support.__getitem__)
                wrong = [r for r in check.reads if r.value == value]
                conf = max(r.confidence for r in wrong)
                views_read = support[value][0]
                out.append(
                    self._finding(
                        "wrong_variant_label",
                        conf,
                        conf,
                        f"{attr} label reads {value!r} on {views_read} view(s), catalog says {check.expected!r}",
                        [evidence(r, check.expected, attr) for r in check.reads],
                    )
                )
            elif check.status == "ok":
                read = next(r for r in check.reads if r.value == want)
                out.append(
                    self._finding(
                        "label_ok",
                        0.0,
                        0.0,
                        f"{attr} label reads {read.value!r} as expected",
                        [evidence(read, check.expected, attr)],
                    )
                )
            elif check.status == "conflict":
                values = sorted({r.value for r in check.reads})
                out.append(
                    self._finding(
                        "unreadable_label",
                        1.0,
                        1.0,
                        f"review: {attr} label reads {' and '.join(map(repr, values))} on as many views each; "
                        f"catalog says {check.expected!r}",
                        [evidence(r, check.expected, attr) for r in check.reads],
                    )
                )
            else:
                texts = [r.line.text for r in lines][:8]
                out.append(
                    self._finding(
                        "unreadable_label",
                        1.0,
                        1.0,
                        f"review: expected a {attr} label {check.expected!r} but none could be read"
                        + (f"; label OCR budget of {self.budget_ms:.0f} ms spent" if reading.budget_spent else "")
                        + ("; reading stopped: the verdict deadline was near" if reading.deadline_near else ""),
                        [
                            Evidence(
                                camera=c,
                                box=list(views[c].box),
                                data={"attribute": attr, "expected": check.expected, "lines_read": texts},
                            )
                            for c in views
                        ],
                    )
                )
        return out

    def _camouflaged(self, record: CatalogRecord, view: LocalizedView, frame: np.ndarray) -> bool:
        """In a tote of the catalog colour and not found whole there (`AttributeProfile.uncut`)."""
        return (
            record.colour_rgb is not None
            and camouflaged(frame, view.box, record.colour_rgb, self.colour)
            and not self.profile.uncut(record.sku, view)
        )

    # -- colour --------------------------------------------------------------------------
    def colour_read(
        self, record: CatalogRecord, views: dict[str, LocalizedView], frames: dict[str, np.ndarray]
    ) -> tuple[ColourRead, bool]:
        """`AttributeProfile.read_colour` on this item's views."""
        pairs = [(views[c], frames[c]) for c in views]
        return self.profile.read_colour(record.sku, record.colour_rgb or [0, 0, 0], pairs, self.colour)

    def colour_findings(
        self,
        record: CatalogRecord,
        views: dict[str, LocalizedView],
        frames: dict[str, np.ndarray],
        unusable: Sequence[str] = (),
    ) -> list[Finding]:
        """A wrong-colour finding when too little of the item shows the catalog colour. Measured
        without a camera whose frame was unusable (`unusable`), it is a review: the share the
        references set was measured on every camera, and a lens cap over the top camera had an
        item whose other views show little of its colour diverted as the wrong colour."""
        trust = self.profile.colour_trust(record.sku)
        if trust is ColourTrust.NONE:
            return []
        read, in_own_tote = self.colour_read(record, views, frames)
        if not self.profile.wrong_colour(record.sku, read, in_own_tote):
            return []
        prob = 1.0 - read.share / (2.0 * read.min_share) if read.min_share > 0 else 1.0
        name = record.attributes.get("colour", str(record.colour_rgb))
        message = (
            f"only {read.share:.1%} of the item shows catalog colour {name} (needs {read.min_share:.1%}); "
            f"dominant RGB {list(read.dominant_rgb)}"
        )
        if in_own_tote and record.sku in self.profile.learned_in_own_colour:
            message += "; seen only on a belt or tote of that colour, as every reference was"
        elif in_own_tote:
            message += (
                f"; seen only in a tote of that colour, where the item was cut out at its full size and "
                f"shows under {OWN_TOTE_FRACTION:.0%} of the least its references showed"
            )
        vanished = self.profile.colour_vanished(record.sku, read.share)
        if vanished:
            lowest = self.profile.lowest_share[record.sku]
            message += f"; every reference showed it on at least {lowest:.1%} of the item"
        elif trust is ColourTrust.REVIEW:
            prob = min(prob, REVIEW_CEILING_P)
            message += "; its normal look shows that colour on little of the item: review, not a divert"
        if unusable:
            prob = min(prob, REVIEW_CEILING_P)
            message += f"; measured without {', '.join(unusable)}, whose frame was unusable: review, not a divert"
        data = {
            "expected": name,
            "expected_rgb": record.colour_rgb,
            "share": round(read.share, 4),
            "min_share": round(read.min_share, 4),
            "dominant_rgb": list(read.dominant_rgb),
            "dominant_delta_e": round(read.dominant_distance, 1),
            "white_balance_gains": list(read.gains),
            "threshold_trust": trust.value,
            "colour_vanished": vanished,
            "in_own_tote": in_own_tote,
            "unusable_cameras": list(unusable),
        }
        evidence = [Evidence(camera=c, box=list(views[c].box), data=data) for c in views]
        return [self._finding("wrong_colour", 1.0 - read.share / read.min_share, prob, message, evidence)]

    # -- identity ------------------------------------------------------------------------
    def _shared_embeddings(self, ctx: StageContext, views: list[LocalizedView]) -> np.ndarray | None:
        """The anomaly stage's embeddings of these very views, when it used the same model."""
        published: ViewEmbeddings | None = ctx.shared.get(EMBEDDINGS_KEY)
        if published is None or self.identity is None:
            return None
        return published.lookup(views, self.identity.version)

    def identity_read(
        self, record: CatalogRecord, views: list[LocalizedView], embeddings: np.ndarray | None = None
    ) -> IdentityRead:
        assert self.identity is not None
        return self.identity.read(record.sku, views, embeddings)

    def identity_findings(
        self,
        record: CatalogRecord,
        views: list[LocalizedView],
        embeddings: np.ndarray | None = None,
        catalog: Mapping[str, CatalogRecord] | None = None,
        camouflaged: bool = False,
    ) -> list[Finding]:
        """A wrong-item finding when the item looks like another SKU and unlike its own. When that
        SKU is a variant sibling (`variant_siblings`: the same product in another size), looks
        cannot tell them apart and the variant label check decides the swap: the finding is a
        review, never a divert (it still says the item is unlike its own SKU's normal look, which
        damage does too). `camouflaged`: every view is in a tote of the item's own colour, where
        the crop may be cut to the item's print and so be unlike its own SKU; the item must then
        also look like a normal item of the other SKU (`IdentityRead.like_nearest`), and the
        finding is a review: a good tennis-ball 3-pack in a yellow tote looked as much like the
        4-pack's normals as like its own. On the attributes benchmark's renders, reading
        camouflaged views without the likeness condition called 5 of 24 such good items wrong
        (navy shirts in a blue tote, a book); with it none, and a book sent for a cereal box in a
        yellow tote is held."""
        read = self.identity_read(record, views, embeddings)
        if not (read.closer_to_other and read.unlike_own) or (camouflaged and not read.like_nearest):
            return []
        nearest = (catalog or {}).get(read.nearest_sku)
        sibling = nearest is not None and variant_siblings(record, nearest)
        prob = 1.0 / (1.0 + math.exp(-read.margin / IDENTITY_SCALE))
        message = (
            f"looks like {read.nearest_sku} (distance {read.nearest_distance:.3f}) more than {record.sku} "
            f"({read.own_distance:.3f})"
        )
        reviews = []
        if sibling:
            reviews.append("; the same product in another variant, which looks alike: review, the label decides")
        if camouflaged:
            reviews.append(
                f"; in a tote of its own colour, where the crop may be cut short, but as close to {read.nearest_sku} "
                "as that SKU's own normal items: review"
            )
        if reviews:
            prob = min(prob, REVIEW_CEILING_P)
            message += "".join(reviews)
        data = {
            "nearest_sku": read.nearest_sku,
            "nearest_distance": round(read.nearest_distance, 4),
            "own_distance": round(read.own_distance, 4),
            "own_normal_ceiling": round(read.own_ceiling, 4),
            "nearest_normal_ceiling": round(read.nearest_ceiling, 4),
            "variant_sibling": sibling,
            "camouflaged": camouflaged,
        }
        evidence = [Evidence(camera=v.camera, box=list(v.box), data=data) for v in views]
        return [self._finding("wrong_item", read.margin, prob, message, evidence)]


def variant_siblings(a: CatalogRecord, b: CatalogRecord) -> bool:
    """Two SKUs of one product that differ only in what a variant label prints (size, model)."""
    if a.sku == b.sku or (a.title, a.category) != (b.title, b.category):
        return False
    keys = set(a.attributes) | set(b.attributes)
    differing = {k for k in keys if a.attributes.get(k) != b.attributes.get(k)}
    return bool(differing) and differing <= set(LABEL_ATTRIBUTES)
