"""Typing dates found on a package: expiry, manufactured, or other (lot, serial, range start).

Evidence, strongest first: a keyword on the same line just before the date ("EXP", "MHD") or
just after it ("까지"); a keyword in the box to the left on the same row or in the line
above (labels printed as a column header); a from-until range; then rules: an unlabelled
date later than a labelled manufacturing date is the expiry, and with no labels at all the
latest date is the expiry and earlier ones are taken as production dates. A date typed as
manufactured by a keyword is never promoted to expiry, so a production date can only be
taken for the expiry when nothing on the package says what it is. A date read only after a
digit repair (`ParsedDate.repair`) is typed by a label or not at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from detectors.ocr_expiry.engines import Box4, TextLine
from detectors.ocr_expiry.grammar import Order, ParsedDate, labelled_dates, month_of, normalize, parse_dates
from detectors.ocr_expiry.keywords import AMBIGUOUS_LABELS, KeywordHit, find_fuzzy, find_keywords, find_suffix

DateType = Literal["expiry", "manufactured", "other"]

AMBIGUOUS_LABEL = "ambiguous_label"
"""Reason of a date behind a label of either kind (`keywords.AMBIGUOUS_LABELS`) left untyped."""
BESIDE_PRODUCTION, BESIDE_EXPIRY = "beside_a_production_label", "beside_expiry"
"""Reasons of a date behind an ambiguous label typed by the print's other labelled date."""
LABELLED = ("keyword", "suffix", "left", "above", BESIDE_PRODUCTION, BESIDE_EXPIRY)
"""Reasons that come from a printed label (as opposed to a rule)."""
UNLABELLED_REPAIR = "unlabelled_repair"
"""Reason of a date left untyped because a digit of it was repaired and no label types it."""
SOLE = "sole"
"""Reason of the one date an image shows, typed as the expiry for want of a label."""
MAX_KEYWORD_GAP = 24
"""Characters allowed between a same-line keyword and its date."""
LOT_GAP = 2
"""A lot keyword types only the number printed right after it."""

TYPE_FACTOR = {
    "keyword": 1.0,
    "suffix": 1.0,
    "left": 0.95,
    "above": 0.92,
    "range": 0.95,
    "after_manufactured": 0.9,
    BESIDE_EXPIRY: 0.9,
    BESIDE_PRODUCTION: 0.85,
    SOLE: 0.85,
    "latest": 0.8,
    "earlier": 0.8,
    "other": 1.0,
}
"""How much each kind of evidence is trusted when it types a date."""


@dataclass(frozen=True)
class DateRead:
    """A typed date on one image, with where it was seen and how sure we are."""

    parsed: ParsedDate
    type: DateType
    confidence: float
    reason: str
    line_text: str
    box: Box4
    keyword: str | None = None
    ocr_confidence: float = 1.0
    source: str = ""
    """The image pass it was read on ("plain", "level-25", "unsmear7x", "dotblur0.06", ...): a
    person weighing the date sees whether the print was read as it is or on a corrected copy."""

    @property
    def iso(self) -> str:
        return self.parsed.iso


@dataclass
class _Found:
    line: int
    parsed: ParsedDate
    kind: str | None = None
    reason: str | None = None
    keyword: str | None = None
    strength: float = 1.0
    ambiguous: bool = False
    """Behind a label of either kind (`keywords.AMBIGUOUS_LABELS`): typed only from the print's other dates."""
    unknown_label: bool = False
    """Behind a short word no table knows (`_UNKNOWN_LABEL`): typed only as the expiry after a
    labelled production date (`_apply_rules`)."""


def _turn(box: Box4) -> Box4:
    """A box turned 180° about the origin: how an upside-down line's neighbours lie as it reads."""
    x0, y0, x1, y1 = box
    return (-x1, -y1, -x0, -y0)


def _reading_frame(lines: list[TextLine], turned: bool) -> list[TextLine]:
    """The lines as a reader of an upright (`turned` False) or upside-down line sees them."""
    if not turned:
        return lines  # the view's own frame: only its upright lines are laid out in it
    return [replace(line, box=_turn(line.box), turned=False) for line in lines]


def _date_box(line: TextLine, parsed: ParsedDate) -> Box4:
    """The part of the line box covering the date, by character position (an upside-down
    line's text starts at the right of its box)."""
    n = max(1, len(line.text))
    x0, y0, x1, y1 = _turn(line.box) if line.turned else line.box
    w = x1 - x0
    box = (x0 + w * parsed.span[0] / n, y0, x0 + w * parsed.span[1] / n, y1)
    return _turn(box) if line.turned else box


def _same_line_keyword(
    norm: str, hits: list[KeywordHit], parsed: ParsedDate, spans: list[tuple[int, int]]
) -> KeywordHit | None:
    """The label nearest before the date (a lot label only when the date follows it directly),
    else a label right after it, else a misread label before it."""
    start = parsed.span[0]
    # A keyword before an earlier date on the line belongs to that date, and so does a word
    # printed right after it ("2025.03.05 제조 2027.03.04 까지": 제조 is the first date's).
    floor = max((end for s, end in spans if end <= start), default=0)
    earlier = find_suffix(norm, floor) if floor else None
    if earlier is not None and earlier.end <= start:
        floor = earlier.end

    def applies(hit: KeywordHit) -> bool:
        gap = norm[hit.end : start]
        return hit.kind != "lot" or (not gap.strip(" :.#-/") and len(gap) <= LOT_GAP)

    before = [h for h in hits if floor <= h.start and h.end <= start and start - h.end <= MAX_KEYWORD_GAP]
    for hit in reversed(before):
        if applies(hit):
            return hit
    suffix = find_suffix(norm, parsed.span[1])
    if suffix is not None or before:
        return suffix
    fuzzy = find_fuzzy(norm, start)
    return fuzzy if fuzzy is not None and fuzzy.start >= floor and applies(fuzzy) else None


def _trailing_keyword(norm: str, hits: list[KeywordHit], dates: list[ParsedDate]) -> KeywordHit | None:
    """The last label on a line that has no date after it (a label whose date is elsewhere)."""
    labels = [h for h in hits if h.kind != "lot"]
    if not labels:
        return None
    last = labels[-1]
    if any(d.span[0] >= last.end for d in dates) or _DIGITS.search(norm, last.end):
        return None  # the label has its own date (perhaps an unreadable one)
    return last


def _keyword_nearest_x(line: TextLine, norm: str, hits: list[KeywordHit], x: float) -> KeywordHit | None:
    """For a header line with several labels over columns: the label whose position is closest to x."""
    labels = [h for h in hits if h.kind != "lot" and not _DIGITS.search(norm, h.end)]
    if not labels:
        return None
    n = max(1, len(norm))
    x0, _, x1, _ = line.box

    def centre(h: KeywordHit) -> float:
        return x0 + (x1 - x0) * (h.start + h.end) / (2 * n)

    return min(labels, key=lambda h: abs(centre(h) - x))


def _layout_keyword(
    i: int,
    box: Box4,
    lines: list[TextLine],
    norms: list[str],
    hits: list[list[KeywordHit]],
    dates: list[list[ParsedDate]],
) -> tuple[KeywordHit, str] | None:
    """A label in the box to the left on the same row, else in the line just above."""
    x0, y0, x1, y1 = box
    h = max(1.0, y1 - y0)
    left: list[tuple[float, int]] = []
    above: list[tuple[float, int]] = []
    for j, other in enumerate(lines):
        if j == i or not hits[j]:
            continue
        ox0, _, ox1, oy1 = other.box
        if _left_of(other.box, box):
            left.append((x0 - ox1, j))
        elif oy1 <= y0 + 0.5 * h and y0 - oy1 <= 1.5 * h and min(x1, ox1) - max(x0, ox0) > -h:
            above.append((y0 - oy1, j))
    for dist_list, reason in ((left, "left"), (above, "above")):
        for _, j in sorted(dist_list):
            if reason == "left":
                hit = _trailing_keyword(norms[j], hits[j], dates[j])
            elif dates[j] or _labels_its_row(j, lines, dates):
                hit = None  # a label with a date of its own, on its line or right of it, keeps it
            else:
                hit = _keyword_nearest_x(lines[j], norms[j], hits[j], (x0 + x1) / 2)
            if hit is not None:
                return hit, reason
    return None


def _left_of(label: Box4, box: Box4) -> bool:
    """`label` is on `box`'s row, just left of it (a label printed before its date)."""
    x0, y0, _, y1 = box
    _, oy0, ox1, oy1 = label
    h, oh = max(1.0, y1 - y0), max(1.0, oy1 - oy0)
    overlap = min(y1, oy1) - max(y0, oy0)
    return overlap > 0.5 * min(h, oh) and ox1 <= x0 + 0.5 * h and x0 - ox1 <= 4 * h


def _labels_its_row(j: int, lines: list[TextLine], dates: list[list[ParsedDate]]) -> bool:
    """Line j is the label left of a date on its own row ("EXP" beside "12/27"): the line below
    it is not what it names, even where tight line spacing makes the boxes touch."""
    return any(dates[k] and _left_of(lines[j].box, lines[k].box) for k in range(len(lines)) if k != j)


def classify_lines(
    lines: list[TextLine],
    *,
    order: Order = "DMY",
    today: date | None = None,
    stale_years: int | None = None,
    more_beyond: bool = False,
) -> list[DateRead]:
    """Every date on the lines of one image, typed (`stale_years`: see `check_consistency`).
    Labels are looked for where a reader of the date line sees them: left of and above it as it
    reads, also when it was read upside down. `more_beyond`: the lines are a crop of a print
    whose rest shows signs of another date (`hints_of_a_date`), so no rule types a date the
    crop leaves unlabelled: it may be the production date whose label the crop cut off."""
    today = today or date.today()
    frames = {turned: _reading_frame(lines, turned) for turned in {line.turned for line in lines}}
    norms = [normalize(line.text) for line in lines]
    hits = [find_keywords(n) for n in norms]
    dates = [_dates_on(line.text, hits[i], order, today) for i, line in enumerate(lines)]
    found: list[_Found] = []
    for i, line in enumerate(lines):
        spans = [d.span for d in dates[i]]
        for parsed in dates[i]:
            f = _Found(i, parsed)
            hit = _same_line_keyword(norms[i], hits[i], parsed, spans)
            if hit is not None:
                f.kind, f.keyword, f.strength = hit.kind, hit.keyword, hit.strength
                f.reason = "suffix" if hit.start >= parsed.span[1] else "keyword"
            else:
                framed = frames[line.turned]
                lay = _layout_keyword(i, _date_box(framed[i], parsed), framed, norms, hits, dates)
                if lay is not None:
                    hit, f.reason = lay
                    f.kind, f.keyword, f.strength = hit.kind, hit.keyword, hit.strength
            if f.kind is None and parsed.range_role is not None:
                f.kind = "expiry" if parsed.range_role == "end" else "other"
                f.reason = "range"
            if f.kind == "lot":
                f.kind, f.reason = "other", "other"
            found.append(f)
    residues = [i for i in range(len(lines)) if not dates[i] and _date_residue(norms[i], hits[i], today)]
    residue = bool(residues)
    unknown = False
    for f in found:
        label = _UNKNOWN_LABEL.search(norms[f.line], 0, f.parsed.span[0]) if f.kind is None else None
        if label is None:
            continue
        word = label.group().strip(" :.")
        if word in AMBIGUOUS_LABELS:
            f.keyword, f.ambiguous = word, True
        else:
            f.keyword, f.unknown_label, unknown = word, True, True
    # A repaired date is typed by its label only: no rule makes a guessed digit the expiry,
    # and like an unreadable date it may be the expiry, so no rule types the others either.
    repaired = [f for f in found if f.kind is None and f.parsed.repair is not None]
    for f in repaired:
        f.kind, f.reason = "other", UNLABELLED_REPAIR
    unread_kinds = {_residue_label(norms[i], hits[i]) for i in residues} - {None}
    _apply_rules(found, residue or unknown or bool(repaired) or more_beyond, unread_kinds)
    return check_consistency([_to_read(f, lines[f.line]) for f in found], today, stale_years)


def _dates_on(text: str, hits: list[KeywordHit], order: Order, today: date) -> list[ParsedDate]:
    """The dates of one line: the grammar's, and compact ones a date label runs into
    (`grammar.labelled_dates`) where the grammar found none."""
    dates = parse_dates(text, order=order, today=today)
    ends = [h.end for h in hits if h.kind != "lot"]
    if not ends:
        return dates
    compact = [
        d
        for d in labelled_dates(text, ends, order=order, today=today)
        if all(d.span[1] <= o.span[0] or o.span[1] <= d.span[0] for o in dates)
    ]
    return sorted(dates + compact, key=lambda d: d.span) if compact else dates


_EAST_ASIAN = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7a3]")
"""Kana, CJK ideographs and Hangul: packages printed in Japanese, Chinese or Korean."""
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
SCRIPT_SURE = 0.85
"""Only lines read at least this surely say what script the package is printed in: the
recogniser turns unreadable Latin print into a couple of CJK glyphs at low confidence."""
EAST_ASIAN_MIN_CHARS = 2
EAST_ASIAN_MIN_SHARE = 1 / 3
"""East Asian characters' share of the letters on sure lines (brand names are often Latin)."""


def script_order(lines: list[TextLine]) -> Order:
    """The reading of all-numeric dates a package's own script suggests, for a photo of unknown
    market: year first where it is printed in Japanese, Chinese or Korean ("22.03.15" is
    2022-03-15 there), day first elsewhere."""
    sure = [line.text for line in lines if line.confidence >= SCRIPT_SURE]
    east_asian = sum(len(_EAST_ASIAN.findall(text)) for text in sure)
    latin = sum(len(_LATIN.findall(text)) for text in sure)
    share = east_asian / max(1, east_asian + latin)
    return "YMD" if east_asian >= EAST_ASIAN_MIN_CHARS and share >= EAST_ASIAN_MIN_SHARE else "DMY"


_DATE_SHAPE = re.compile(
    r"[0-9]{1,4}\s?[./-]\s?[0-9]{1,2}\s?[./-]\s?[0-9]{1,4}(?![0-9])|(?<![0-9])[0-9]{2}\s?/\s?[0-9]{2}(?![0-9])"
)
_YEAR = re.compile(r"(?<![0-9])(?:19|20)[0-9]{2}(?![0-9])")
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]{5,10}(?![0-9])")
"""A run of digits as long as a compact date with a misread or extra digit ("720281026"), or a
year with a stray digit glued to it ("22026.06")."""
_DIGITS = re.compile(r"[0-9].*[0-9]")
_WORD = re.compile(r"[A-Z]{3,}")
_UNKNOWN_LABEL = re.compile(r"(?<![A-Z0-9])[A-Z]{2,4}[\s:.]{0,2}$")
"""A short upper-case word right before a date that no table knows: a label we could not read
("DBM" for a misread "DDM"). Its date could be the expiry or not, so no rule types it."""


def print_order(lines: list[TextLine], today: date) -> Order:
    """The reading of all-numeric dates for a photo of unknown market: the script's
    (`script_order`), and where that says day first, the print's own dates. A print uses one
    order, so where some date on it reads only month first ("USE BY 11/30/26": there is no 30th
    month) and none reads only day first, it is a month-first print (a US package), and its
    dates that read either way ("PACKED 11/02/26") are read month first too. Only sure lines
    holding a date's shape (`_DATE_SHAPE`: fields joined by a slash, dot or dash) are parsed,
    and only dates without a repaired digit count."""
    order = script_order(lines)
    if order != "DMY":
        return order
    only: set[str] = set()  # orders some date can be read in only
    for line in (line for line in lines if line.confidence >= SCRIPT_SURE and _DATE_SHAPE.search(line.text)):
        for hint, other in (("DMY", "MDY"), ("MDY", "DMY")):
            # read with one order as the hint, a date read in the other has no reading in the hint's
            found = parse_dates(line.text, order=hint, today=today)
            only |= {d.order for d in found if d.order == other and d.repair is None}
    return "MDY" if only == {"MDY"} else "DMY"


def hints_of_a_date(lines: list[TextLine], today: date) -> bool:
    """Whether any line holds a date label, a month name or the residue of a date
    (`_date_residue`): a print's lines outside a crop that show another date may be there."""
    return any(text_hints_a_date(line.text, today) for line in lines)


def text_hints_a_date(text: str, today: date) -> bool:
    """Whether one line's text holds a date label, a month name or the residue of a date."""
    norm = normalize(text)
    hits = find_keywords(norm)
    if any(h.kind in ("expiry", "manufactured") for h in hits) or any(map(month_of, _WORD.findall(norm))):
        return True
    return bool(parse_dates(text, today=today)) or _date_residue(norm, hits, today)


def _date_residue(norm: str, hits: list[KeywordHit], today: date) -> bool:
    """A line with no readable date that still holds one: a day-month-year shape with a
    garbled part, a plausible year (alone or inside a long digit run), or an expiry label
    followed by digits. It may be the expiry, misread."""
    if _DATE_SHAPE.search(norm):
        return True
    if any(h.kind == "expiry" and _DIGITS.search(norm, h.end) for h in hits):
        return True
    if any(abs(int(m.group()) - today.year) <= 15 for m in _YEAR.finditer(norm)):
        return True
    # A compact date with a stray digit: some plausible year inside a long digit run.
    return any(
        abs(int(run[k : k + 4]) - today.year) <= 15
        for run in (m.group() for m in _DIGIT_RUN.finditer(norm))
        for k in range(len(run) - 3)
        if run[k : k + 2] in ("19", "20")
    )


def _apply_rules(found: list[_Found], residue: bool, unread_kinds: set[str] | None = None) -> None:
    """Type the dates no label typed, from what the labelled ones say.

    With no label anywhere, the latest date is taken as the expiry, unless another line holds
    a date that could not be read (`residue`): that line may be the real expiry and the date
    we can read a production date, so nothing is taken and the item goes to review. A date
    behind an ambiguous label (`_Found.ambiguous`) is typed only beside a labelled
    date: the expiry after a production date, a production date beside an expiry. A label
    whose own date could not be read counts (`unread_kinds`: "Fabriqué le 17/63/2928" beside
    "DOM 31/08/2028" says the print's production date is elsewhere). A date behind a word no
    table knows (`_Found.unknown_label`) is typed only as the expiry after a labelled production
    date: a development seed's inkjet "BB APR 22 2028" read "BG APR 22 2028" beside "MFE DEC 20
    2026" (a production label misread but known) left the print with no expiry.
    """
    _type_by_rules(found, residue, unread_kinds)
    for f in found:  # a date behind a word no table knows that no rule made the expiry
        if f.unknown_label and f.kind in (None, "other"):
            f.kind, f.reason = "other", "unknown_label"


def _type_by_rules(found: list[_Found], residue: bool, unread_kinds: set[str] | None) -> None:
    """`_apply_rules` but for the reason recorded on dates behind unknown labels."""
    untyped = [f for f in found if f.kind is None]
    if not untyped:
        return
    expiries = [f for f in found if f.kind == "expiry"]
    made = [f for f in found if f.kind == "manufactured"]
    if expiries:
        for f in untyped:
            f.kind, f.reason = ("manufactured", BESIDE_EXPIRY) if f.ambiguous else ("other", "other")
        return
    if made:
        newest = max(f.parsed.last_day() for f in made)
        later = [f for f in untyped if f.parsed.first_day() > newest]
        latest = max(later, key=lambda f: f.parsed.last_day()) if later else None
        for f in untyped:
            rule = BESIDE_PRODUCTION if f.ambiguous or f.unknown_label else "after_manufactured"
            f.kind, f.reason = ("expiry", rule) if f is latest else ("other", "other")
        return
    untyped = [f for f in untyped if not f.unknown_label]  # without a production date, no rule types them
    if not untyped:
        return
    beside = {"manufactured": ("expiry", BESIDE_PRODUCTION), "expiry": ("manufactured", BESIDE_EXPIRY)}
    only = next(iter(unread_kinds)) if unread_kinds and len(unread_kinds) == 1 else None
    ambiguous = [f for f in untyped if f.ambiguous]
    for f in ambiguous:
        f.kind, f.reason = beside.get(only, ("other", AMBIGUOUS_LABEL))  # type: ignore[arg-type]
    untyped = [f for f in untyped if f.kind is None]
    if not untyped:
        return
    if residue or ambiguous:
        for f in untyped:
            f.kind, f.reason = "other", "unlabelled_beside_unreadable"
        return
    distinct = {f.parsed.iso for f in untyped}
    if len(distinct) == 1:
        for f in untyped:
            f.kind, f.reason = "expiry", SOLE
        return
    latest_day = max(f.parsed.last_day() for f in untyped)
    for f in untyped:
        if f.parsed.last_day() == latest_day:
            f.kind, f.reason = "expiry", "latest"
        else:
            f.kind, f.reason = "manufactured", "earlier"


RESIDUE_LABEL_GAP = 3
"""Characters at most between a label and the unreadable date it types (`_residue_label`)."""


def _residue_label(norm: str, hits: list[KeywordHit]) -> str | None:
    """The kind of the label right before the first digit of a line whose date could not be read
    ("Fabriqu4 le 17/63/2928"), exact or misread; None for none or a lot label."""
    digit = re.search(r"(?<![0-9A-Z])[0-9]", norm)  # a digit glued to a word is the word's misread letter
    if digit is None:
        return None
    start = digit.start()
    near = [h for h in hits if h.end <= start and start - h.end <= RESIDUE_LABEL_GAP]
    hit = near[-1] if near else find_fuzzy(norm, start)
    if hit is None or hit.kind == "lot" or start - hit.end > RESIDUE_LABEL_GAP:
        return None
    return hit.kind


def _to_read(f: _Found, line: TextLine) -> DateRead:
    reason = f.reason or "other"
    conf = line.confidence * f.parsed.certainty * TYPE_FACTOR.get(reason, 1.0) * f.strength
    return DateRead(
        parsed=f.parsed,
        type=f.kind or "other",  # type: ignore[arg-type]
        confidence=round(min(1.0, conf), 4),
        reason=reason,
        line_text=line.text,
        box=_date_box(line, f.parsed),
        keyword=f.keyword,
        ocr_confidence=round(line.confidence, 4),
    )


EXPIRY_PAST_YEARS = 2
"""An expiry further back than this is taken for a misread (a year digit), not for an item
that expired years ago: the item goes to review instead of being judged on it."""
EXPIRY_AHEAD_YEARS = 10
"""Longer than any shelf life we expect (canned food, medicines): a misread, not an expiry."""


def _resolve_ambiguous(reads: list[DateRead]) -> list[DateRead]:
    """Dates behind an ambiguous label typed from the whole print's other reads: a pass that read
    one line of it (a region crop) could not see the production date that makes it the expiry."""
    made = [r.parsed.last_day() for r in reads if r.type == "manufactured" and r.reason in LABELLED]
    expiries = [r for r in reads if r.type == "expiry"]
    out = []
    for r in reads:
        if r.reason == AMBIGUOUS_LABEL:
            if made and not expiries and r.parsed.first_day() > max(made):
                r = replace(r, type="expiry", reason=BESIDE_PRODUCTION)
            elif expiries and not made:
                r = replace(r, type="manufactured", reason=BESIDE_EXPIRY)
        out.append(r)
    return out


def check_consistency(reads: list[DateRead], today: date, stale_years: int | None = None) -> list[DateRead]:
    """Type the dates behind an ambiguous label from the print's other reads (`_resolve_ambiguous`),
    then drop expiry reads that contradict the print: earlier than a labelled manufacturing
    date (one of the two is misread) or than an unlabelled date already past (a production
    date with its label misread), implausibly long ago or far ahead. The item then has no expiry
    and goes to review, which is safer than judging it on a contradictory read.

    `stale_years` (default `EXPIRY_PAST_YEARS`) is how far back an expiry is still believed. On
    the line, where stock is recent, older is a misread; a photo of unknown age (the `ocr`
    command without a SKU) needs the whole plausibility window, or an old expired pack would
    read as unreadable instead of expired."""
    reads = _resolve_ambiguous(reads)
    made = [r.parsed.first_day() for r in reads if r.type == "manufactured" and r.reason in LABELLED]
    first_made = min(made) if made else None
    # An unlabelled day-precise date beside a labelled expiry, already past, is most likely the
    # production or packing date whose label the recogniser garbled: the expiry is not earlier.
    past = [r.parsed.first_day() for r in reads if r.reason == "other" and r.parsed.day is not None]
    latest_past = max((d for d in past if d <= today), default=None)
    back = EXPIRY_PAST_YEARS if stale_years is None else stale_years
    oldest = date(today.year - back, today.month, min(today.day, 28))
    out = []
    for r in reads:
        if r.type == "expiry":
            if first_made is not None and r.parsed.last_day() < first_made:
                r = replace(r, type="other", reason=r.reason + "+before_manufacture")
            elif latest_past is not None and r.parsed.last_day() < latest_past:
                r = replace(r, type="other", reason=r.reason + "+before_an_unlabelled_past_date")
            elif r.parsed.last_day() < oldest:
                r = replace(r, type="other", reason=r.reason + "+implausibly_old")
            elif r.parsed.year > today.year + EXPIRY_AHEAD_YEARS:
                r = replace(r, type="other", reason=r.reason + "+implausibly_far")
        out.append(r)
    return out
