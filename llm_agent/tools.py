"""The vision and record tools every backend uses, as one registry of typed tools.

A tool has a name, a pydantic argument model (its JSON schema is what LLM backends see) and
a function over the investigation's `EvidenceFile`. The grounded backend calls tools
directly; Bedrock and OpenAI-compatible backends expose the same registry as tool specs;
the hf backend gets tool results in its prompt. Tools call the detectors through their
public functions and say "unavailable" when a detector is missing or cannot run: an
investigation must never rest on a made-up observation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm_agent.evidence import EvidenceFile, EvidenceRef, add_once, damage_pattern, dates_read
from llm_agent.taxonomy import DAMAGE_TYPES
from pipeline.policy import POSSIBLE_DEFECT
from pipeline.types import CatalogRecord, Finding

if TYPE_CHECKING:  # the detectors are optional at run time: a missing one is "unavailable"
    from detectors.attributes.profile import AttributeProfile

Status = Literal["ok", "unavailable", "error"]

DAMAGE_KINDS = DAMAGE_TYPES | {"anomaly", "damage"}
CONTENT_KINDS = frozenset({"empty_container", "missing_parts", "underfill"})
LABEL_KINDS = frozenset({"wrong_variant_label", "wrong_colour", "wrong_item", "missing_label", "attribute_mismatch"})
VISIBLE_P = 0.5
"""Probability from which a stored finding counts as visible in the tunnel."""
COLOUR_REFERENCES = 12
"""Normal references measured for a SKU's colour threshold (as `detectors.attributes.fit_profile`)."""
RELIABLE_SIGN_RECALL = 0.85
"""Held-out share of items carrying a damage type on which the fine-grained classifier shows at
least a sign of it (its described operating point), from which the absence of any sign counts
as evidence that the item did not carry that type when it passed the tunnel."""
COMPLAINT_ANOMALY_P = 0.1
"""Anomaly-ensemble probability from which an investigation counts damage as visible. The belt
diverts at 0.5, where 0.5 % of the SKU's normal items score higher, because it must leave good
items alone; a complaint is itself evidence that something is wrong, so weaker image evidence
(about 4.5 % of normal items score higher) already tells damage seen in the tunnel from damage
done in transit."""


class ImageRef(BaseModel):
    """An image a tool wants a vision model to see: a cited frame or crop."""

    ref_id: str
    camera: str
    box: list[float] | None = None


class ToolResult(BaseModel):
    tool: str
    status: Status
    summary: str
    """One plain sentence a person (or a model) can read."""
    data: dict[str, Any] = Field(default_factory=dict)
    citations: list[str] = Field(default_factory=list)
    images: list[ImageRef] = Field(default_factory=list)

    def for_model(self) -> dict[str, Any]:
        """The JSON a language model receives (no image bytes)."""
        return self.model_dump(exclude={"images"}) | {"images": [i.ref_id for i in self.images]}


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoArgs(_Args):
    pass


class CameraArgs(_Args):
    camera: str | None = Field(default=None, description="camera id; all cameras when omitted")


def _described(effect: str) -> Any:
    """The `described` argument: the damage types a customer's words name, and what they change."""
    return Field(
        default_factory=list,
        description=(
            "damage types the customer describes (torn_box, crushed_corner, bent_cover, broken_seal, stain,"
            f" puncture): {effect}"
        ),
    )


class DamageArgs(CameraArgs):
    evidence: Literal["complaint", "line"] = Field(
        default="complaint",
        description=(
            "'complaint': weak image evidence counts, for a customer who reports the item's physical state;"
            " 'line': only what the belt itself would act on"
        ),
    )
    described: list[str] = _described(
        "the classifier's weaker signs of these types count, and the result says whether the kinds the"
        " tunnel named include them"
    )


class LotArgs(_Args):
    described: list[str] = _described("the result says whether the tunnel named them on the lot's other items")
    quoted: list[str] = Field(
        default_factory=list,
        description=(
            "dates the customer quotes (YYYY-MM-DD or YYYY-MM): the result says whether the tunnel read them on"
            " items of the lot beside the lot's recorded expiry"
        ),
    )


class AttributeArgs(_Args):
    attribute: str = Field(description="catalog attribute to check, e.g. size, colour, model, count")


class ViewArgs(_Args):
    camera: str = Field(description="camera id")
    box: list[float] | None = Field(default=None, min_length=4, max_length=4, description="[x0,y0,x1,y1] to crop")


ToolFn = Callable[[EvidenceFile, Any], ToolResult]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[_Args]
    fn: ToolFn

    def schema(self) -> dict[str, Any]:
        schema = self.args.model_json_schema()
        schema.pop("title", None)
        schema.setdefault("properties", {})
        return schema

    def __call__(self, evidence: EvidenceFile, raw: dict[str, Any] | None = None) -> ToolResult:
        """Validate the arguments and run; any failure is an explicit error result, never a raise."""
        try:
            args = self.args.model_validate(raw or {})
        except ValidationError as exc:
            return ToolResult(tool=self.name, status="error", summary=f"invalid arguments: {exc.errors()[0]['msg']}")
        try:
            return self.fn(evidence, args)
        except Exception as exc:  # a detector failing must not end the investigation
            return ToolResult(tool=self.name, status="error", summary=f"{type(exc).__name__}: {exc}"[:300])


class ToolRegistry:
    def __init__(self, tools: list[Tool]) -> None:
        self.tools = {t.name: t for t in tools}

    def __contains__(self, name: str) -> bool:
        return name in self.tools

    def names(self) -> list[str]:
        return list(self.tools)

    def call(self, evidence: EvidenceFile, name: str, args: dict[str, Any] | None = None) -> ToolResult:
        tool = self.tools.get(name)
        if tool is None:
            return ToolResult(tool=name, status="error", summary=f"unknown tool {name!r}; tools: {self.names()}")
        return tool(evidence, args)

    def specs(self) -> list[dict[str, Any]]:
        """name / description / JSON schema, the neutral form each backend translates."""
        return [{"name": t.name, "description": t.description, "schema": t.schema()} for t in self.tools.values()]


def _unavailable(tool: str, why: str) -> ToolResult:
    return ToolResult(tool=tool, status="unavailable", summary=f"cannot answer: {why}")


def _cameras(ev: EvidenceFile, camera: str | None) -> list[str]:
    cams = [f.camera for f in ev.capture.frames]
    if camera is None:
        return cams
    if camera not in cams:
        raise ValueError(f"no camera {camera!r}; cameras: {cams}")
    return [camera]


def _findings(ev: EvidenceFile, kinds: frozenset[str] | None = None, stages: set[str] | None = None):
    for i, f in enumerate(ev.findings):
        if (kinds is None or f.kind in kinds) and (stages is None or f.stage in stages):
            yield f"finding:{i}", f


# --- OCR -----------------------------------------------------------------------------------


def _ocr(ev: EvidenceFile, camera: str) -> Any:
    """`detectors.ocr_expiry.read_dates` on the item's upright crop (lines and typed dates), once per
    camera; boxes are mapped back to frame pixels so citations point into the original photo.
    A crop whose print shows no expiry is read again with the belt's smear taken out when it
    shows one (`smear.view_without_smear`), and that read is kept only if it finds an expiry:
    an investigation has the time for both reads, and a smear measured on a sharp view (thick
    strokes of large print dip the measure as a smear does) must not cost the lines read on
    it."""
    key = f"ocr:{camera}"
    if key not in ev.cache:
        from detectors.ocr_expiry import read_dates

        record = ev.record
        image = ev.image(camera)
        found = _view(ev, camera)
        options = {
            "order": record.expiry.date_order if record else "DMY",
            "today": ev.shipped_on,
            "languages": tuple(record.label_languages) if record else ("en",),
        }
        read = read_dates(found.crop if found is not None else image, **options)
        if read.expiry is None:
            sharp, smear = _unsmeared(ev, camera)
            corrected = read_dates(sharp, **options) if smear > 1 else read
            read = corrected if corrected.expiry is not None else read
        ev.cache[key] = (read, found)
    return ev.cache[key]


def _view(ev: EvidenceFile, camera: str) -> Any:
    """The item's localised view on a camera (`detectors.localize`), None where no item was
    found; once per camera, shared by every tool that reads the item."""
    key = f"view:{camera}"
    if key not in ev.cache:
        from detectors.localize import localize

        view = localize(ev.image(camera), camera)
        ev.cache[key] = view if view.found else None
    return ev.cache[key]


def _unsmeared(ev: EvidenceFile, camera: str) -> tuple[np.ndarray, int]:
    """The camera's view with the belt's smear taken out, and the smear in px (1: none)
    (`smear.view_without_smear`); once per camera, for the date and the label reads alike."""
    key = f"unsmeared:{camera}"
    if key not in ev.cache:
        from detectors.ocr_expiry.smear import view_without_smear

        ev.cache[key] = view_without_smear(ev.image(camera), _view(ev, camera))
    return ev.cache[key]


def _found_views(ev: EvidenceFile) -> tuple[dict[str, Any], list[str]]:
    """The views (by camera) the item was found on, and why a camera's frame could not be read."""
    from pipeline.imageio import ImageError

    views, errors = {}, []
    for cam in _cameras(ev, None):
        try:
            view = _view(ev, cam)
        except ImageError as exc:
            errors.append(f"{cam}: {exc}")
            continue
        if view is not None:
            views[cam] = view
    return views, errors


def _frame_box(view: Any, box: Any) -> list[float]:
    if view is None:
        return [round(float(v), 1) for v in box]
    x0, y0, x1, y1 = box
    pts = view.to_frame(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    return [round(float(v), 1) for v in (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())]


def _ocr_available() -> str | None:
    try:
        import detectors.ocr_expiry  # noqa: F401
    except Exception as exc:
        return f"the OCR detector is not installed ({type(exc).__name__})"
    return None


def _lines(ev: EvidenceFile, camera: str | None) -> tuple[list[tuple[str, str, float]], list[str]]:
    """(citation id, text, confidence) of each OCR line, and per-camera errors."""
    out, errors = [], []
    for cam in _cameras(ev, camera):
        try:
            read, view = _ocr(ev, cam)
        except Exception as exc:
            errors.append(f"{cam}: {type(exc).__name__}: {exc}")
            continue
        for line in read.lines:
            description = f"text read on camera {cam}: '{line.text}'"
            ref = _cite_text(ev, "ocr", cam, line.text, _frame_box(view, line.box), line.confidence, description)
            out.append((ref, line.text, float(line.confidence)))
    return out, errors


def _cite_text(
    ev: EvidenceFile,
    source: str,
    camera: str,
    text: str,
    box: list[float],
    confidence: float,
    description: str,
    data: dict[str, Any] | None = None,
) -> str:
    """Citation id of a line of text read on a camera, registered (once) with its frame box."""
    ref = f"{source}:{camera}:{_norm_key(text)}"
    if not ev.has(ref):
        ev.add(
            EvidenceRef(
                id=ref,
                kind="ocr",
                description=description,
                camera=camera,
                box=box,
                text=text,
                score=round(float(confidence), 3),
                data=data or {},
            )
        )
    return ref


def _norm_key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text)[:32].strip("_") or "line"


LABEL_MIN_CHARS = 3
"""Letters or digits a line needs to count as a product's print (`_label_seen`)."""


def read_label(ev: EvidenceFile, args: CameraArgs) -> ToolResult:
    if why := _ocr_available():
        recorded = [
            (ref, f.evidence[0].text)
            for ref, f in _findings(ev, stages={"ocr_expiry"})
            if f.evidence and f.evidence[0].text
        ]
        if not recorded:
            return _unavailable("read_label", why)
        return ToolResult(
            tool="read_label",
            status="ok",
            summary="text recorded at tunnel time: " + "; ".join(t for _, t in recorded),
            data={"lines": [t for _, t in recorded], "label_visible": True},
            citations=[r for r, _ in recorded],
        )
    lines, errors = _lines(ev, args.camera)
    if not lines and errors:
        return ToolResult(tool="read_label", status="error", summary="; ".join(errors))
    texts = [t for _, t, _ in lines]
    if not lines:
        summary = "no readable text on the item"
        data = {"lines": texts, "label_visible": False, "errors": errors}
        return ToolResult(tool="read_label", status="ok", summary=summary, data=data)
    summary = f"{len(lines)} line(s) of text: " + "; ".join(f"'{t}'" for t in texts[:12])
    seen, what, cites = _label_seen(ev, lines)
    if not seen:
        summary += f"; no {what} among them: it may be missing, turned from the cameras or too small to read"
    return ToolResult(
        tool="read_label",
        status="ok",
        summary=summary,
        data={"lines": texts, "label_visible": True if seen else None, "label": what, "errors": errors},
        citations=(cites + [r for r, _, _ in lines])[:20],
    )


def _label_seen(ev: EvidenceFile, lines: list[tuple[str, str, float]]) -> tuple[bool, str, list[str]]:
    """Whether the text read on the item includes the label its catalog record says it carries,
    what that label is, and the citations that show it. Other print is not the label: a shoe
    box's brand and a juice bottle's stray glyphs ("O", "CC") were read on items whose size
    sticker or wrap was missing, and had been reported as a visible label.
    - a variant label (size, model): a value of that attribute read by the label reader, the
      catalog's or another;
    - else a date print, for a SKU that carries one: a line that shows a date or its label;
    - else the product's print: a line of at least `LABEL_MIN_CHARS` letters or digits."""
    from detectors.attributes.labels import expected_labels
    from detectors.ocr_expiry.classify import text_hints_a_date

    record = ev.record
    wanted = expected_labels(record.attributes) if record else {}
    if wanted:
        name, expected = next(iter(wanted.items()))
        reading, _ = _label_reading(ev, record, name, expected)
        check = reading.checks[name]
        refs = list(dict.fromkeys(_label_ref(ev, reading, r.index) for r in check.reads))
        return check.status != "unread", f"{name} label", refs[:3]
    if record is not None and record.expiry.carries_date:
        dated = [r for r, t, _ in lines if text_hints_a_date(t, ev.shipped_on)]
        return bool(dated), "date print", dated[:3]
    printed = [r for r, t, _ in lines if len(re.sub(r"[\W_]", "", t)) >= LABEL_MIN_CHARS]
    return bool(printed), "printed label", printed[:3]


def check_attribute(ev: EvidenceFile, args: AttributeArgs) -> ToolResult:
    name = args.attribute.lower()
    if ev.record is None:
        return _unavailable("check_attribute", f"SKU {ev.capture.sku} is not in the catalog")
    expected = ev.record.attributes.get(name)
    stored = [(ref, f) for ref, f in _findings(ev, LABEL_KINDS) if f.probability >= VISIBLE_P]
    cites = [f"catalog:{ev.record.sku}"]
    if name == "colour":
        return _check_colour(ev, expected, stored, cites)
    if why := _ocr_available():
        if stored:
            summary = f"the tunnel flagged {stored[0][1].kind}"
            return _attribute_result(name, expected, summary, cites + [r for r, _ in stored], matches=False)
        return _unavailable("check_attribute", why)
    if expected is None:
        summary = f"the catalog gives no {name} for {ev.record.sku}"
        return _attribute_result(name, None, summary, cites + [r for r, _ in stored])
    from detectors.attributes.labels import canonical, votes

    reading, errors = _label_reading(ev, ev.record, name, expected)
    check = reading.checks[name]
    if check.status == "unread":
        why = "no label text with a known value was read" if not errors else "; ".join(errors)
        summary = f"the {name} could not be read on any camera ({why})"
        return _attribute_result(
            name, expected, summary, cites + [r for r, _ in stored], label_visible=bool(reading.lines)
        )
    support = votes(check.reads)
    observed = canonical(expected) if check.status == "ok" else max(support, key=lambda v: support[v])
    summary = f"the label reads {name} '{observed}'; the catalog expects '{expected}'"
    if check.status == "conflict":
        summary += f"; as many cameras read {' and '.join(sorted(support))}: a person decides"
    refs = list(dict.fromkeys(_label_ref(ev, reading, r.index) for r in check.reads if r.value == observed))
    return _attribute_result(
        name,
        expected,
        summary,
        cites + refs[:3] + [r for r, _ in stored],
        observed=observed,
        matches={"ok": True, "wrong": False}.get(check.status),
        all_observed=sorted(support),
        label_visible=True,
    )


def _label_reading(ev: EvidenceFile, record: CatalogRecord, name: str, expected: str) -> tuple[Any, list[str]]:
    """The tunnel's own label reading (`AttributesStage.read_labels`) of one attribute, without
    the edge's OCR budget: views enlarged, turned, one vote per camera, read on the crops with
    the belt's smear taken out. Where that leaves the label unread and a smear was taken out,
    the crops as captured are read too: an investigation has the time, and a smear measured on
    a sharp view must not cost a label the line could have read on it."""
    from detectors.attributes.stage import AttributesStage

    key = f"labels:{name}"
    if key not in ev.cache:
        views, errors = _found_views(ev)
        reader = AttributesStage(check_colour=False, check_identity=False)
        wanted = {name: expected}
        reading = reader.read_labels(record, views, text_image=lambda cam: _unsmeared(ev, cam)[0], expected=wanted)
        # unread means every view was read, so every view's smear is already measured
        if reading.checks[name].status == "unread" and any(_unsmeared(ev, cam)[1] > 1 for cam in views):
            as_captured = reader.read_labels(record, views, expected=wanted)
            if as_captured.checks[name].status != "unread":
                reading = as_captured
        ev.cache[key] = (reading, errors)
    return ev.cache[key]


def _label_ref(ev: EvidenceFile, reading: Any, index: int) -> str:
    """Citation id of one line of a label reading, registered with its frame box and text."""
    from detectors.attributes.stage import frame_box

    line = reading.lines[index]
    text, cam = line.line.text, line.camera
    box = frame_box(line, _view(ev, cam))
    return _cite_text(ev, "label", cam, text, box, line.line.confidence, f"label text read on camera {cam}: '{text}'")


def _attribute_result(
    name: str,
    expected: str | None,
    summary: str,
    citations: list[str],
    *,
    observed: str | None = None,
    matches: bool | None = None,
    **extra: Any,
) -> ToolResult:
    """A `check_attribute` answer: what the label reads and whether it is the catalog's value."""
    data = {"attribute": name, "expected": expected, "observed": observed, "matches_catalog": matches, **extra}
    return ToolResult(tool="check_attribute", status="ok", summary=summary, data=data, citations=citations)


def _enrolled_profile(ev: EvidenceFile) -> AttributeProfile | None:
    """The attributes profile enrolled with the model the store's inspection ran with; None
    when no such profile is recorded."""
    from detectors.attributes.profile import PROFILE_FILE, AttributeProfile

    if "attribute_profile" not in ev.cache:
        folder = ev.model_dir / "attributes" if ev.model_dir is not None else None
        found = folder is not None and (folder / PROFILE_FILE).is_file()
        ev.cache["attribute_profile"] = AttributeProfile.load(folder) if found else None
    return ev.cache["attribute_profile"]


def _enrolled_colour_threshold(ev: EvidenceFile) -> float | None:
    """The SKU's catalog-colour threshold from the enrolled attributes profile; None without one."""
    profile = _enrolled_profile(ev)
    return profile.min_share.get(ev.record.sku) if profile is not None and ev.record is not None else None


def _sku_colour_threshold(ev: EvidenceFile) -> float | None:
    """The SKU's catalog-colour threshold: the enrolled attributes profile's when the store
    records its model, else learnt the same way from the SKU's normal references in the item's
    dataset; None without either."""
    from detectors.attributes.profile import catalog_colour_share, threshold_from_shares
    from pipeline.dataset import Dataset, DatasetError
    from pipeline.imageio import ImageError

    if "colour_threshold" in ev.cache:
        return ev.cache["colour_threshold"]
    if (enrolled := _enrolled_colour_threshold(ev)) is not None:
        ev.cache["colour_threshold"] = enrolled
        return enrolled
    shares: list[float] = []
    record = ev.record
    if ev.dataset_root is not None and record is not None and record.colour_rgb is not None:
        try:
            references = [r for r in Dataset.open(ev.dataset_root).references() if r.capture.sku == record.sku]
        except DatasetError:
            references = []
        for ref in references[:COLOUR_REFERENCES]:
            try:
                share = catalog_colour_share(ref.capture.images(), record.colour_rgb)
            except ImageError:
                continue
            if share is not None:
                shares.append(share)
    ev.cache["colour_threshold"] = threshold_from_shares(shares) if shares else None
    return ev.cache["colour_threshold"]


def _check_colour(ev: EvidenceFile, expected: str | None, stored, cites: list[str]) -> ToolResult:
    """The attributes stage's colour measure on every view: the share of white-balanced item
    pixels showing the catalog colour, against the threshold the SKU's normal references give.
    A SKU whose references barely show the colour gets no colour verdict from pixels."""
    from detectors.attributes.profile import AttributeProfile, ColourTrust

    target = ev.record.colour_rgb if ev.record else None
    if target is None or ev.record is None:
        return _unavailable("check_attribute", "the catalog has no colour for this SKU")
    try:
        found, _ = _found_views(ev)
    except ImportError as exc:
        return _unavailable("check_attribute", f"the localize detector is not installed ({exc})")
    views = [(view, ev.image(cam)) for cam, view in found.items()]
    threshold = _sku_colour_threshold(ev)
    sku = ev.record.sku
    # the tunnel's own colour read: the enrolled profile knows the item's normal size in each
    # camera, so an item found whole in a tote of its colour is read too
    profile = _enrolled_profile(ev)
    if profile is None or sku not in profile.min_share:
        profile = AttributeProfile(min_share={} if threshold is None else {sku: threshold})
    read, in_own_tote = profile.read_colour(sku, target, views) if views else (None, False)
    flagged = any(f.kind == "wrong_colour" for _, f in stored)
    if read is None or read.views == 0:
        why = (
            "every view shows the item in a tote of its catalog colour, where it cannot be cut out whole"
            if views
            else "the item could not be separated from the background"
        )
        return ToolResult(
            tool="check_attribute",
            status="ok",
            summary=why,
            data={"attribute": "colour", "expected": expected, "colour_matches": False if flagged else None},
            citations=cites + [r for r, _ in stored],
        )
    colours = {r.attributes.get("colour"): r.colour_rgb for r in ev.catalog.skus.values() if r.colour_rgb}
    dominant = read.dominant_rgb
    dist = {
        name: sum((a - b) ** 2 for a, b in zip(dominant, rgb, strict=True)) ** 0.5
        for name, rgb in colours.items()
        if name
    }
    nearest = min(dist, key=lambda k: dist[k]) if dist else expected
    trust = profile.colour_trust(sku)
    summary = (
        f"{read.share:.0%} of the item shows the catalog colour '{expected}' "
        f"(the SKU's threshold from its normal look: {read.min_share:.0%}); the dominant colour is nearest to "
        f"'{nearest}'"
    )
    if flagged:
        matches: bool | None = False
        summary += "; the tunnel flagged a wrong colour"
    elif trust is ColourTrust.NONE:
        matches = None
        summary += "; its normal look barely shows that colour, so the pixels cannot tell"
    elif read.matches or profile.wrong_colour(sku, read, in_own_tote):
        matches = read.matches
    else:
        # too little of the colour, excused only by the tote's tint: the line lets it pass, but
        # an answer that the colour matches would clear a complaint the pixels cannot judge
        matches = None
        summary += "; too little for its normal look, but a tote of that colour tints the read: the pixels cannot tell"
    if in_own_tote:
        summary += "; seen only in a tote of that colour, where the item was cut out at its full size"
    return ToolResult(
        tool="check_attribute",
        status="ok",
        summary=summary,
        data={
            "attribute": "colour",
            "expected": expected,
            "observed": nearest,
            "colour_matches": matches,
            "catalog_colour_share": round(read.share, 4),
            "normal_share_threshold": round(read.min_share, 4),
            "dominant_rgb": list(dominant),
        },
        citations=[*cites, *(f"frame:{v.camera}" for v, _ in views)] + [r for r, _ in stored],
    )


def _title_tokens(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def _tunnel_look(ev: EvidenceFile) -> tuple[dict[str, Any], str, list[str]]:
    """The tunnel's look check (the attributes stage's nearest-SKU search over normal banks):
    `looks_like_sku` False when it flagged the item as nearer another SKU, else None."""
    stored = [(ref, f) for ref, f in _findings(ev, frozenset({"wrong_item"})) if f.probability >= VISIBLE_P]
    if not stored:
        return {"looks_like_sku": None}, "", []
    data = next((e.data for _, f in stored for e in f.evidence if e.data.get("nearest_sku")), {})
    nearest = data.get("nearest_sku")
    said = "the tunnel's look check found the item " + (
        f"nearer {nearest}'s normal look than its own" if nearest else "unlike its SKU's normal look"
    )
    return {"looks_like_sku": False, "nearest_sku": nearest}, said, [r for r, _ in stored]


def identify_product(ev: EvidenceFile, args: NoArgs) -> ToolResult:
    """Which catalog product the item is: the words of its printed title (`matches_sku`), and the
    tunnel's look check (`looks_like_sku`). They are separate facts because a look also moves
    with damage, while a printed title names a product."""
    look, look_said, look_cites = _tunnel_look(ev)
    if why := _ocr_available():
        if look_cites:
            return ToolResult(
                tool="identify_product",
                status="ok",
                summary=look_said,
                data={"matches_sku": None, "best_sku": None, **look},
                citations=look_cites,
            )
        return _unavailable("identify_product", why)
    lines, _errors = _lines(ev, None)
    words = set().union(*(_title_tokens(t) for _, t, _ in lines)) if lines else set()
    scores = {}
    for rec in ev.catalog.skus.values():
        title = _title_tokens(rec.title)
        if title:
            scores[rec.sku] = len(title & words) / len(title)
    if not words or not scores or max(scores.values()) == 0:
        return ToolResult(
            tool="identify_product",
            status="ok",
            summary="; ".join(filter(None, ["no product title could be read on the item", look_said])),
            data={"matches_sku": None, "best_sku": None, "words": sorted(words)[:30], **look},
            citations=look_cites,
        )
    own = ev.capture.sku
    best = max(scores, key=lambda s: (scores[s], s == own))
    # Titles shared by several SKUs (sizes of one product) identify the product, not the variant.
    same_title = ev.record is not None and best in ev.catalog.skus and ev.catalog.skus[best].title == ev.record.title
    cites = [r for r, t, _ in lines if _title_tokens(t) & _title_tokens(ev.catalog.skus[best].title)][:3]
    cites += [f"catalog:{best}"] if f"catalog:{best}" in ev.refs else []
    if best != own and not same_title:
        rec = ev.catalog.skus[best]
        ev.add(EvidenceRef(id=f"catalog:{best}", kind="catalog", description=f"catalog record {best}: '{rec.title}'"))
        cites.append(f"catalog:{best}")
    summary = f"the printed title matches '{ev.catalog.skus[best].title}' ({best}, {scores[best]:.0%} of its words)"
    return ToolResult(
        tool="identify_product",
        status="ok",
        summary="; ".join(filter(None, [summary, look_said])),
        data={
            "matches_sku": best == own or same_title,
            "best_sku": best,
            "title_score": round(scores[best], 3),
            **look,
        },
        citations=cites + look_cites,
    )


# --- dates ---------------------------------------------------------------------------------


def read_dates(ev: EvidenceFile, args: NoArgs) -> ToolResult:
    """Expiry and production dates on the item, and whether it was expired when it shipped."""
    record = ev.record
    min_days, deadline = _shelf_deadline(ev)
    data: dict[str, Any] = {
        "shipped_on": ev.shipped_on.isoformat(),
        "min_remaining_days": min_days,
        "deadline": deadline.isoformat(),
    }
    if record is not None and not record.expiry.carries_date:
        return ToolResult(
            tool="read_dates",
            status="ok",
            summary=f"{record.sku} carries no expiry date",
            data=data | {"carries_date": False, "expired_at_shipment": False},
            citations=[f"catalog:{record.sku}"],
        )
    expiry = manufactured = second_read = None
    # why a read that disagrees with the lot record may be a misread (the tunnel's recorded doubt)
    doubt: str | None = None
    cites: list[str] = [f"catalog:{record.sku}"] if record else []
    stored = list(_findings(ev, stages={"ocr_expiry"}))
    for ref, f in stored:
        for e in f.evidence:
            kind, iso = e.data.get("type"), e.data.get("date")
            if e.data.get("second_look"):  # a second read that put the tunnel's divert in doubt
                second_read = second_read or (str(iso), kind, ref)
                continue
            if kind == "expiry" and iso and expiry is None:
                expiry, _ = (iso, cites.append(ref))
                if f.kind == "date_mismatch" and not e.data.get("repair"):
                    doubt = e.data.get("doubt")
            elif kind == "manufactured" and iso and manufactured is None:
                manufactured, _ = (iso, cites.append(ref))
    live_errors, live_reads, live_expiry = [], {}, None
    if (expiry is None or manufactured is None) and not _ocr_available():
        from detectors.ocr_expiry.checker import settle_sole_dates

        views = {}
        for cam in _cameras(ev, None):
            try:
                live_reads[cam], views[cam] = _ocr(ev, cam)
            except Exception as exc:
                live_errors.append(f"{cam}: {exc}")
        live_reads = settle_sole_dates(live_reads)  # as the tunnel's stage types them across cameras
        for cam, read in live_reads.items():
            view = views[cam]
            for d in read.dates:
                description = f"{d.type} date {d.iso} read on camera {cam}: '{d.line_text}'"
                box = _frame_box(view, d.box)
                data = {"date": d.iso, "type": d.type}
                ref = _cite_text(ev, "ocr", cam, d.line_text, box, d.confidence, description, data)
                if d.type == "expiry" and expiry is None:
                    expiry, live_expiry = d.iso, d
                    cites.append(ref)
                elif d.type == "manufactured" and manufactured is None:
                    manufactured = d.iso
                    cites.append(ref)
    unreadable = any(f.kind == "unreadable" for _, f in stored)
    data |= {"expiry_date": expiry, "manufactured_date": manufactured, "carries_date": True, "unreadable": unreadable}
    if expiry is None:
        if not stored and _ocr_available():
            return _unavailable("read_dates", _ocr_available() or "no OCR result")
        summary = "no expiry date could be read on the item" + (f" ({'; '.join(live_errors)})" if live_errors else "")
        cites += [r for r, f in stored if f.kind == "unreadable"]
        data["expired_at_shipment"] = None
        recorded = ev.lot.recorded_expiry if ev.lot else None
        if recorded is not None:
            # The inventory record is evidence about the lot, not a reading of this item's print:
            # it can prove the lot was already expired, never that this item was fine.
            data["lot_recorded_expiry"] = recorded.isoformat()
            if recorded < deadline:
                data["expired_at_shipment"] = True
                summary += f"; the lot's inventory record gives expiry {recorded}, before the {deadline} minimum"
            else:
                summary += f"; the lot's inventory record gives expiry {recorded}"
            cites.append(f"lot:{ev.lot.lot}")
        return ToolResult(tool="read_dates", status="ok", summary=summary, data=data, citations=cites)
    last = _last_day(expiry)
    data["expired_at_shipment"] = last < deadline
    data["days_left_at_shipment"] = (last - ev.shipped_on).days
    verb = "had passed or was too close" if data["expired_at_shipment"] else "was still valid"
    left = data["days_left_at_shipment"]
    summary = f"printed expiry {expiry}; shipped {ev.shipped_on}, it {verb} ({left} days left, {min_days} needed)"
    if ev.lot and ev.lot.recorded_expiry:
        recorded = ev.lot.recorded_expiry
        data["lot_recorded_expiry"] = recorded.isoformat()
        data["matches_lot_record"] = _agrees_with_record(expiry, recorded)
        if not data["matches_lot_record"]:
            doubt = _mismatch_doubt(expiry, recorded, doubt, live_expiry, live_reads)
        if not data["matches_lot_record"] and doubt:
            data["matches_lot_record"] = None
            summary += (
                f"; it differs from the lot record {recorded}, but {doubt}: whether the print disagrees"
                " with the record needs a person's look"
            )
            cites.append(f"lot:{ev.lot.lot}")
    if manufactured:
        summary += f"; the production date printed is {manufactured}"
    if second_read is not None:
        iso, kind, ref = second_read
        data["second_read_date"], data["second_read_type"] = iso, kind
        summary += (
            f"; the tunnel read the print a second time and found {iso} ({kind}), so it sent the item to review"
            " rather than trust either read"
        )
        if ref not in cites:
            cites.append(ref)
    return ToolResult(tool="read_dates", status="ok", summary=summary, data=data, citations=cites)


def _shelf_deadline(ev: EvidenceFile) -> tuple[int, date]:
    """(minimum remaining shelf life in days, the last expiry that was too close at shipment)."""
    min_days = ev.record.expiry.min_remaining_days if ev.record else 0
    return min_days, ev.shipped_on + timedelta(days=min_days)


def _mismatch_doubt(
    printed: str, recorded: date, stored: str | None, live: Any | None, live_reads: dict[str, Any]
) -> str | None:
    """Why a print's difference from the lot record may be a misread, by the tunnel's own rules
    (`checker.misread_doubt`): the doubt the tunnel recorded, the rules applied to a read made
    here, or, for a stored read without a recorded doubt, the round-digit rule. A repaired digit
    alone is no such doubt: it holds back a lot's isolation at the tunnel, but the read still
    says what the print shows ("MHO 84.2027" is 04.2027, and its lot record says otherwise)."""
    if _ocr_available():
        return stored
    from detectors.ocr_expiry.checker import misread_doubt, round_digit_doubt

    if live is not None:
        return misread_doubt(live, live_reads, recorded)
    return stored or round_digit_doubt(printed, recorded)


def _agrees_with_record(printed: str, recorded: date) -> bool:
    """A printed expiry (day or month precision) agrees with the lot's recorded date."""
    return recorded.isoformat().startswith(printed) or printed.startswith(recorded.isoformat())


def _last_day(iso: str) -> date:
    from detectors.ocr_expiry.grammar import parse_iso

    y, m, d = parse_iso(iso)
    if d is None:
        nxt = date(y + (m == 12), m % 12 + 1, 1)
        return nxt - timedelta(days=1)
    return date(y, m, d)


# --- damage, contents, packaging -------------------------------------------------------------


def _visible_from(f: Finding, evidence: str = "complaint", described: Sequence[str] = ()) -> float:
    """The probability from which a damage finding counts as seen in the tunnel. A classifier's
    sign below the line's threshold was recorded only where it cleared the complaint operating
    point, so it counts as it is; one that cleared only the lower point for a named type
    counts only when the customer describes that type (`described`). At the line's own
    operating point (`evidence="line"`: the customer did not report damage, so their complaint
    is no evidence of it) neither a weak anomaly nor a classifier sign counts, except a sign
    over the line's own threshold (`_line_sign`), which counts everywhere."""
    if f.kind == POSSIBLE_DEFECT:
        if _line_sign(f):  # over the line's threshold too, only less likely than the type named
            return 0.0
        counts = evidence != "line" and (_sign_level(f) == "complaint" or _possible_type(f) in described)
        return 0.0 if counts else math.inf
    if evidence == "line":
        return VISIBLE_P
    return COMPLAINT_ANOMALY_P if f.kind == "anomaly" else VISIBLE_P


def _sign_level(f: Finding) -> str:
    """The operating point a classifier's sign cleared: "line" (the line's own, by a type less
    likely than the one the item was named by), "complaint", or "described" (only the lower
    point for a type the customer names); signs stored before levels are "complaint"."""
    return next((str(e.data["level"]) for e in f.evidence if e.data.get("level")), "complaint")


def _line_sign(f: Finding) -> str | None:
    """The type of a classifier's sign over the line's own threshold: a type the classifier saw
    as surely as the one it named the item by, only less likely. It counts as a type the tunnel
    named; None for any other finding."""
    return _possible_type(f) if _sign_level(f) == "line" else None


def _possible_type(f: Finding) -> str | None:
    """The defect type a "possible_defect" finding names (None for any other finding)."""
    if f.kind != POSSIBLE_DEFECT:
        return None
    return next((str(e.data["type"]) for e in f.evidence if e.data.get("type")), None)


def _damage_findings(ev: EvidenceFile, camera: str | None) -> list[tuple[str, Finding]]:
    """Damage findings (and classifier signs of a damage type) on the item, or on one camera."""
    found = [
        (r, f)
        for r, f in _findings(ev, DAMAGE_KINDS | {POSSIBLE_DEFECT})
        if f.kind != POSSIBLE_DEFECT or _possible_type(f) in DAMAGE_KINDS
    ]
    return [(r, f) for r, f in found if camera is None or (f.evidence and f.evidence[0].camera == camera)]


def _classifier_recall(ev: EvidenceFile) -> tuple[str, dict[str, float]] | None:
    """(citation, held-out recall at the described operating point per type) of the fine-grained
    classifier that inspected the item, from its model card; None when no card of that very
    version is beside the store's model (a retrained classifier's card says nothing of the
    one that looked at the item)."""
    from detectors.supervised.bundle import read_sign_recall
    from detectors.supervised.stage import find_model_dir

    if "classifier_recall" in ev.cache:
        return ev.cache["classifier_recall"]
    ran = ev.verdict.model_versions.get("supervised") if ev.verdict is not None else None
    folder = find_model_dir(ev.model_dir)
    card = read_sign_recall(folder) if ran and folder is not None else None
    found = None
    if card is not None and card.version == ran:
        ref = ev.add(
            EvidenceRef(
                id=f"model:{ran}",
                kind="model",
                description=f"model card of the fine-grained classifier {ran}: share of {card.heldout} carrying"
                " each type on which it shows at least a sign of it: "
                + ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in sorted(card.recall.items())),
                data={"recall_at_described": card.recall},
            )
        )
        found = (ref, card.recall)
    ev.cache["classifier_recall"] = found
    return found


def _described_unsigned(
    ev: EvidenceFile, described: Sequence[str], physical: list[tuple[str, Finding]]
) -> tuple[str, dict[str, float]] | None:
    """(citation, recall per type) when every described type is one the classifier that
    inspected the item shows signs of on at least `RELIABLE_SIGN_RECALL` of the items carrying it,
    and none of `physical` (the item's damage findings on every view) is a sign of any of them;
    else None."""
    if not described:
        return None
    reach = _classifier_recall(ev)
    if reach is None:
        return None
    ref, recall = reach
    if any(recall.get(k, 0.0) < RELIABLE_SIGN_RECALL for k in described):
        return None
    signed = {f.kind for _, f in physical} | {t for _, f in physical if (t := _possible_type(f))}
    if signed & set(described):
        return None
    return ref, {k: recall[k] for k in described}


def inspect_damage(ev: EvidenceFile, args: DamageArgs) -> ToolResult:
    """Visible damage in the tunnel photos: the anomaly ensemble's findings and heatmaps, and the
    classifier's signs of a damage type at the complaint operating point."""
    stages = ev.stages_run()
    physical = _damage_findings(ev, args.camera)
    if "anomaly" not in stages and not physical:
        return _unavailable("inspect_damage", "the anomaly detector did not run on this item")
    visible = [(r, f) for r, f in physical if f.probability >= _visible_from(f, args.evidence, args.described)]
    signs = sorted({t for _, f in visible if (t := _possible_type(f)) and not _line_sign(f)})
    also = {t for _, f in visible if (t := _line_sign(f))}
    visible_kinds = sorted({f.kind for _, f in visible if f.kind != POSSIBLE_DEFECT} | also)
    cites = [r for r, _ in visible] or [f"frame:{f.camera}" for f in ev.capture.frames]
    crops = []
    for _ref, f in visible[:3]:
        ev_box = next((e for e in f.evidence if e.box and e.camera), None)
        if ev_box is not None:
            sign = _possible_type(f)
            label = f"view where the classifier saw signs of {sign}" if sign else f"{f.kind} region"
            crop = ev.save_crop(ev_box.camera, ev_box.box, label)
            if crop:
                crops.append(crop)
    top = max((f.probability for _, f in physical), default=0.0)
    # only kinds the classifier named at its own line: a sign below it says little of the kind
    typed = sorted({f.kind for _, f in visible if f.kind in DAMAGE_TYPES} | (also & DAMAGE_TYPES))
    described_seen = bool(set(typed) & set(args.described)) if typed and args.described else None
    # Damage seen without a kind named, on an item the classifier showed no sign of the described
    # kind on, where it signs most items that carry it: what was seen is most likely other damage.
    whole_item = args.camera is None  # `physical` then holds every view's findings
    unsigned = _described_unsigned(ev, args.described, physical) if visible and not typed and whole_item else None
    if unsigned is not None:
        described_seen = False
        cites.append(unsigned[0])
    if visible:
        kinds = visible_kinds + [f"signs of {t} (classifier, below the line's threshold)" for t in signs]
        cams = sorted({e.camera for _, f in visible for e in f.evidence if e.camera})
        summary = f"damage is visible in the tunnel photos ({', '.join(kinds)}, p={top:.2f}" + (
            f", cameras {', '.join(cams)})" if cams else ")"
        )
        if visible_kinds and top < VISIBLE_P:
            summary += (
                f"; weak evidence: the belt diverts from p={VISIBLE_P:.2f}, an investigation counts it from "
                f"p={COMPLAINT_ANOMALY_P:.2f}"
            )
        if described_seen is False and unsigned is not None:
            summary += "; the fine-grained classifier showed no sign of " + ", ".join(
                f"{k.replace('_', ' ')} (it shows signs of it on {r:.0%} of held-out items that carry it)"
                for k, r in unsigned[1].items()
            )
        elif described_seen is False:
            summary += (
                f"; the kinds the tunnel named ({', '.join(typed)}) are not the {', '.join(args.described)} described"
            )
    else:
        summary = f"no damage was visible in the tunnel photos (highest anomaly probability {top:.2f})"
        if args.evidence == "line" and top >= COMPLAINT_ANOMALY_P:
            summary += f"; the customer reports no damage, so only what the belt acts on (p={VISIBLE_P:.2f}) counts"
    images = [ImageRef(ref_id=c, camera=ev.refs[c].camera or "", box=ev.refs[c].box) for c in crops]
    return ToolResult(
        tool="inspect_damage",
        status="ok",
        summary=summary,
        data={
            "damage_visible": bool(visible),
            "max_probability": round(top, 3),
            "kinds": visible_kinds,
            "classifier_signs": signs,
            "looks_abnormal": bool(visible_kinds),
            "typed_damage": ", ".join(typed),
            "described_damage_seen": described_seen,
            "described_unsigned": unsigned[1] if unsigned else {},
        },
        citations=cites + crops,
        images=images,
    )


def check_contents(ev: EvidenceFile, args: NoArgs) -> ToolResult:
    """Whether the item looked empty or incomplete in the tunnel."""
    stored = [(r, f) for r, f in _findings(ev, CONTENT_KINDS)]
    visible = [(r, f) for r, f in stored if f.probability >= VISIBLE_P]
    if visible:
        return ToolResult(
            tool="check_contents",
            status="ok",
            summary=f"the tunnel saw {visible[0][1].kind.replace('_', ' ')} (p={visible[0][1].probability:.2f})",
            data={"empty_visible": True},
            citations=[r for r, _ in visible],
        )
    damage = inspect_damage(ev, DamageArgs())
    if damage.status != "ok":
        return _unavailable("check_contents", "no contents or anomaly check ran on this item")
    if damage.data["kinds"]:  # a crushed corner's sign says nothing about what is inside
        return ToolResult(
            tool="check_contents",
            status="ok",
            summary="the item looked abnormal in the tunnel: " + damage.summary,
            data={"empty_visible": True, "via": "anomaly"},
            citations=damage.citations,
        )
    return ToolResult(
        tool="check_contents",
        status="ok",
        summary="the item looked complete and normal in the tunnel",
        data={"empty_visible": False},
        citations=damage.citations,
    )


def check_packaging(ev: EvidenceFile, args: NoArgs) -> ToolResult:
    """Which packaging looks the catalog allows (e.g. sneakers shipped without a shoebox)."""
    if ev.record is None:
        return _unavailable("check_packaging", f"SKU {ev.capture.sku} is not in the catalog")
    variants = ev.record.packaging_variants
    without = [v for v in variants if v.startswith(("no_", "without"))]
    summary = f"the catalog allows packaging {', '.join(variants)}" + (
        " (shipping without the outer box is allowed)" if without else ""
    )
    return ToolResult(
        tool="check_packaging",
        status="ok",
        summary=summary,
        data={"variants": variants, "unboxed_allowed": bool(without)},
        citations=[f"catalog:{ev.record.sku}"],
    )


# --- records -------------------------------------------------------------------------------


def describe_item(ev: EvidenceFile, args: NoArgs) -> ToolResult:
    rec = ev.record
    v = ev.verdict
    parts = [
        f"item {ev.item_id}, SKU {ev.capture.sku}"
        + (f" ('{rec.title}', {rec.category})" if rec else " (not in the catalog)")
    ]
    parts.append(f"photographed by {len(ev.capture.frames)} camera(s) on {ev.shipped_on}")
    if v is not None:
        parts.append(f"tunnel decision: {v.action.value}" + (f" ({'; '.join(v.reasons[:3])})" if v.reasons else ""))
    cites = [f"frame:{f.camera}" for f in ev.capture.frames] + ([f"catalog:{rec.sku}"] if rec else [])
    data = {
        "sku": ev.capture.sku,
        "attributes": rec.attributes if rec else {},
        "category": rec.category if rec else None,
        "action": v.action.value if v else None,
        "findings": [
            {"id": f"finding:{i}", "stage": f.stage, "kind": f.kind, "probability": f.probability}
            for i, f in enumerate(ev.findings)
        ],
    }
    return ToolResult(tool="describe_item", status="ok", summary="; ".join(parts), data=data, citations=cites)


LOT_PRINT_MIN_ITEMS = 2
"""Other items of a lot whose read expiry must agree before it stands for the lot's print."""


def lot_history(ev: EvidenceFile, args: LotArgs) -> ToolResult:
    s = ev.lot_summary
    if s is None:
        return _unavailable("lot_history", "the item has no lot")
    flagged = sum(s.finding_kinds.values())
    diverted, reviewed = s.actions.get("divert", 0), s.actions.get("review", 0)
    summary = f"lot {s.lot}: {s.items} other item(s) seen, {diverted} diverted, {reviewed} sent to review"
    if s.finding_kinds:
        summary += "; findings: " + ", ".join(f"{k} x{n}" for k, n in sorted(s.finding_kinds.items()))
    data: dict[str, Any] = {
        "items": s.items,
        "actions": s.actions,
        "finding_kinds": s.finding_kinds,
        "flagged": flagged,
    }
    cites = [f"lot:{s.lot}"]
    if s.damage_items:
        data["damage_named"] = {k: len(v) for k, v in sorted(s.damage_items.items())}
    if args.described:
        pattern = damage_pattern(s.items, s.damage_items, args.described)
        data["described_damage_in_lot"] = bool(pattern)
        for kind, items in sorted(pattern.items()):
            summary += f"; the tunnel named {kind.replace('_', ' ')} on {len(items)} of its {s.items} other item(s)"
            cites += _cite_lot_items(ev, s.lot, items, f"{kind.replace('_', ' ')} named", {"damage": kind}, f":{kind}")
    # the item is one of its lot: a date its own views read untyped counts toward the lot's print
    printed_dates = {iso: list(items) for iso, items in s.printed_dates.items()}
    for _, finding in _findings(ev, stages={"ocr_expiry"}):
        for _, iso in dates_read(finding):
            add_once(printed_dates, iso, ev.item_id)
    beside = quoted_beside_record(printed_dates, args.quoted, ev.lot.recorded_expiry if ev.lot else None)
    if args.quoted and ev.lot and ev.lot.recorded_expiry:
        data["lot_print_shows_quoted_date"] = beside is not None
    if beside is not None:
        (quoted, quoted_items), (expiry, expiry_items) = beside
        summary += (
            f"; the tunnel read the quoted {quoted} on {len(quoted_items)} item(s) of the lot, and the lot's"
            f" recorded expiry (read as {expiry}) on {len(expiry_items)}: the lot's print carries both"
        )
        cites += _cite_lot_items(ev, s.lot, quoted_items, f"date {quoted} read", {"date": quoted}, ":quoted")
        cites += _cite_lot_items(ev, s.lot, expiry_items, f"date {expiry} read", {"date": expiry}, ":recorded")
    printed = lot_print(s.printed_expiries)
    if printed is not None:
        iso, items = printed
        _, deadline = _shelf_deadline(ev)
        data |= {"lot_printed_expiry": iso, "lot_printed_items": len(items)}
        data["lot_expired_at_shipment"] = _last_day(iso) < deadline
        summary += f"; the tunnel read expiry {iso} on {len(items)} other item(s) of the lot"
        if ev.lot and ev.lot.recorded_expiry:
            data["lot_print_matches_record"] = _agrees_with_record(iso, ev.lot.recorded_expiry)
            verb = "agrees with" if data["lot_print_matches_record"] else "differs from"
            summary += f", which {verb} the lot's record {ev.lot.recorded_expiry}"
        cites += _cite_lot_items(ev, s.lot, items, f"expiry {iso} read", {"date": iso})
    return ToolResult(tool="lot_history", status="ok", summary=summary, data=data, citations=cites)


def _cite_lot_items(
    ev: EvidenceFile, lot: str, items: list[str], found: str, data: dict[str, str], suffix: str = ""
) -> list[str]:
    """Citations of up to three of the lot's other items and what the tunnel `found` on each."""
    return [
        ev.add(
            EvidenceRef(
                id=f"lot:{lot}:{item_id}{suffix}",
                kind="lot",
                description=f"{found} in the tunnel on item {item_id} of lot {lot}",
                data={"item_id": item_id, **data},
            )
        )
        for item_id in items[:3]
    ]


def lot_print(printed: dict[str, list[str]]) -> tuple[str, list[str]] | None:
    """The expiry printed on a lot, as read on its other items: the reading of at least
    `LOT_PRINT_MIN_ITEMS` items and of at least two thirds of those read (one lot, one print;
    a lone read may be a misread, split readings are no evidence)."""
    if not printed:
        return None
    iso, items = max(printed.items(), key=lambda kv: (len(kv[1]), kv[0]))
    total = sum(len(v) for v in printed.values())
    if len(items) < LOT_PRINT_MIN_ITEMS or 3 * len(items) < 2 * total:
        return None
    return iso, items


def quoted_beside_record(
    printed: dict[str, list[str]], quoted: Sequence[str], recorded: date | None
) -> tuple[tuple[str, list[str]], tuple[str, list[str]]] | None:
    """((quoted date, items), (recorded expiry as read, items)) when the tunnel read a date the
    customer quotes, other than the lot's recorded expiry, on at least `LOT_PRINT_MIN_ITEMS` items of
    the lot, and the recorded expiry on as many: the lot's print carries both, so the quoted date is
    its other date (a production date), not its expiry. `printed`: every date read on the lot's
    items (`LotSummary.printed_dates` and the item's own reads); a quoted month matches its days."""
    if recorded is None:
        return None
    on_record = [(iso, items) for iso, items in printed.items() if _agrees_with_record(iso, recorded)]
    if not on_record:
        return None
    expiry, _ = max(on_record, key=lambda kv: len(kv[1]))
    record_items = sorted({i for _, items in on_record for i in items})
    if len(record_items) < LOT_PRINT_MIN_ITEMS:
        return None
    for q in quoted:
        if _agrees_with_record(q, recorded):
            continue
        items = sorted({i for iso, ids in printed.items() if iso == q or iso.startswith(q + "-") for i in ids})
        if len(items) >= LOT_PRINT_MIN_ITEMS:
            return (q, items), (expiry, record_items)
    return None


def classify_defect(ev: EvidenceFile, args: NoArgs) -> ToolResult:
    """The supervised defect classifier's labels, where one ran on the item."""
    own = {"localize", "ocr_expiry", "anomaly"}
    labelled = [(r, f) for r, f in _findings(ev) if f.stage not in own and f.probability >= VISIBLE_P]
    if not labelled and not (ev.stages_run() - own):
        return _unavailable("classify_defect", "no supervised classifier ran on this item")
    signs = [
        (r, f)
        for r, f in _findings(ev, frozenset({POSSIBLE_DEFECT}))
        if f.stage not in own and _sign_level(f) in ("line", "complaint")
    ]
    labels = sorted({f.kind for _, f in labelled})
    also = sorted({t for _, f in signs if (t := _line_sign(f))} - set(labels))
    weak = sorted({t for _, f in signs if (t := _possible_type(f)) and not _line_sign(f)} - set(labels) - set(also))
    summary = f"classifier labels: {', '.join(labels)}" if labels else "the classifier found no defect"
    if also:
        summary += f"; also over the line's threshold, less likely: {', '.join(also)}"
    if weak:
        summary += f"; signs below the line's threshold: {', '.join(weak)}"
    return ToolResult(
        tool="classify_defect",
        status="ok",
        summary=summary,
        data={"labels": labels, "also_over_threshold": also, "signs": weak},
        citations=[r for r, _ in labelled] + [r for r, f in signs if _possible_type(f) in set(weak) | set(also)],
    )


def view_image(ev: EvidenceFile, args: ViewArgs) -> ToolResult:
    """Hand a frame (or a crop of it) to a vision model."""
    cam = _cameras(ev, args.camera)[0]
    ref = ev.save_crop(cam, args.box, "requested region") if args.box else f"frame:{cam}"
    if ref is None:
        return ToolResult(tool="view_image", status="error", summary="the frame could not be read or the box is empty")
    ev.image(cam)  # fail here, not in the backend, when the frame is unreadable
    return ToolResult(
        tool="view_image",
        status="ok",
        summary=f"image {ref} attached",
        citations=[ref],
        images=[ImageRef(ref_id=ref, camera=cam, box=args.box)],
    )


def default_tools() -> ToolRegistry:
    return ToolRegistry(
        [
            Tool(
                "describe_item", "Catalog record, cameras and the tunnel decision for the item.", NoArgs, describe_item
            ),
            Tool(
                "read_label", "OCR every text line printed on the item (optionally one camera).", CameraArgs, read_label
            ),
            Tool(
                "check_attribute",
                "Read a label attribute (size, model, count, colour) and compare it with the catalog.",
                AttributeArgs,
                check_attribute,
            ),
            Tool(
                "identify_product",
                "Which catalog product the printed title on the item belongs to.",
                NoArgs,
                identify_product,
            ),
            Tool(
                "read_dates",
                "Printed expiry and production dates, and whether the item was expired when it shipped.",
                NoArgs,
                read_dates,
            ),
            Tool(
                "inspect_damage",
                "Damage visible in the tunnel photos (anomaly findings, heatmaps, crops).",
                DamageArgs,
                inspect_damage,
            ),
            Tool(
                "check_contents", "Whether the item looked empty or incomplete in the tunnel.", NoArgs, check_contents
            ),
            Tool("check_packaging", "Packaging variants the catalog allows for the SKU.", NoArgs, check_packaging),
            Tool("lot_history", "How the other items of the same lot fared in the tunnel.", LotArgs, lot_history),
            Tool(
                "classify_defect", "Labels from the supervised defect classifier, if it ran.", NoArgs, classify_defect
            ),
            Tool("view_image", "Attach a tunnel photo or a crop of it so you can look at it.", ViewArgs, view_image),
        ]
    )
