"""One image in, its typed dates and best expiry out.

The first pass reads the image as it is (contrast-stretched when faint). Only when it finds no
expiry are the fallback passes run (the enlarged neighbourhoods of digit-bearing lines, then
quarter turns for text lying on its side, enlargement and the dot-matrix filter), and their
dates are merged with the first pass's, so the fallbacks can add a missed print but never
replace a good read. `first_read` / `continue_read` let a caller with several images (the
stage's camera views) run every first pass before spending a budget on fallbacks. Before an
expiry diverts an item, `second_looks` reads the print again other ways (`checker.judge`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np

from detectors.ocr_expiry.classify import (
    LABELLED,
    UNLABELLED_REPAIR,
    DateRead,
    check_consistency,
    classify_lines,
    hints_of_a_date,
    print_order,
)
from detectors.ocr_expiry.engines import DEFAULT_ENGINE, Box4, OcrEngine, TextLine, get_engine
from detectors.ocr_expiry.grammar import Order
from detectors.ocr_expiry.preprocess import (
    MAX_REGIONS,
    REGION_PASS,
    UPSCALE_PASS,
    Pass,
    dot_blur_passes,
    fallback_passes,
    fine_pass,
    first_pass,
    level_pass,
    line_pass,
    region_lines,
    region_pass,
    region_passes,
    text_height,
    unsmear_pass,
    upscale_pass,
)
from pipeline.imageio import read_image

FALLBACK_BUDGET_MS = 4000.0
"""No further fallback pass starts after this much OCR time on one image (arbitrary photos, CLI)."""
BUDGET_SPENT = "budget_spent"
"""Pass name recorded when fallbacks stopped because the budget ran out."""
SECOND_LOOKS = 2
"""Further reads of a print before a divert: a second, and a third when the second contradicts."""
DEADLINE_NEAR = "deadline_near"
"""Pass name recorded when fallbacks stopped because the item's verdict deadline was near."""


@dataclass
class ImageRead:
    """What one image says about the item's dates."""

    dates: list[DateRead]
    expiry: DateRead | None
    engine: str
    ms: float
    passes: list[str] = field(default_factory=list)
    lines: list[TextLine] = field(default_factory=list)
    cpu_ms: float = 0.0
    """OCR compute on `engine_clock` (the thread's CPU time for in-thread engines)."""
    order: Order = "DMY"
    """The reading of all-numeric dates used: the market's, or the print's own (`print_order`)."""

    @property
    def budget_spent(self) -> bool:
        return BUDGET_SPENT in self.passes

    @property
    def cut_by_deadline(self) -> bool:
        return DEADLINE_NEAR in self.passes

    def to_dict(self) -> dict:
        return {
            "expiry": self.expiry.iso if self.expiry else None,
            "dates": [date_dict(d) for d in self.dates],
            "engine": self.engine,
            "ms": round(self.ms, 1),
        }


def date_dict(d: DateRead) -> dict:
    """The CLI / evidence form of one date."""
    return {
        "text": d.parsed.text,
        "date": d.iso,
        "type": d.type,
        "confidence": round(d.confidence, 3),
        "box": [round(v, 1) for v in d.box],
    }


def pick_expiry(dates: Sequence[DateRead]) -> DateRead | None:
    """The expiry most support points to: reads of the same date add up; a day-precise read
    absorbs a month-precise read of the same month."""
    expiries = [d for d in dates if d.type == "expiry"]
    if not expiries:
        return None
    support: dict[str, float] = {}
    for d in expiries:
        support[d.iso] = support.get(d.iso, 0.0) + d.confidence
    for d in expiries:
        if d.parsed.day is None:
            for iso in support:
                if iso != d.iso and iso.startswith(d.iso + "-"):
                    support[iso] += d.confidence
    best_iso = max(support, key=lambda k: (support[k], len(k)))
    best = max((d for d in expiries if d.iso == best_iso), key=lambda d: d.confidence)
    total = sum(d.confidence for d in expiries)
    share = support[best_iso] / total if total else 1.0
    if share < 1.0:
        best = replace(best, confidence=round(best.confidence * max(share, 0.5), 4))
    return best


def day_pass(fp: Pass, image: np.ndarray, expiry: DateRead) -> Pass | None:
    """The read that may add the day a month-only `expiry` found on `fp` lacks, or None:
    - on a region crop, its line read whole (`line_pass`): the crop may have cut the day off, or
      the detector split it from its line ("11" above "APR 2021" on a vertical print);
    - on a pass whose lines were found at the coarse side, the same image at full detector
      size (`FINE_PASS`): the detector split spaced dot-matrix ("13" beside "10/28"). Re-reading
      the line alone there invented a day from a word ("de maio 2027" read "d6 maio 2027")."""
    if expiry.parsed.day is not None:
        return None
    if fp.name == REGION_PASS:
        return line_pass(image, expiry.box)
    if fp.detect_side is not None:
        return replace(fine_pass(fp.image), to_input=fp.to_input)
    return None


def completions(month_read: DateRead, found: Sequence[DateRead]) -> list[DateRead]:
    """The expiry reads in `found` that complete `month_read` with a day: the same month, read
    whole. A re-read may add the day a crop cut off, never contradict the month."""
    prefix = month_read.iso + "-"
    return [d for d in found if d.type == "expiry" and d.parsed.day is not None and d.iso.startswith(prefix)]


def _merge(base: list[DateRead], extra: list[DateRead]) -> list[DateRead]:
    """`extra` (a fallback pass's dates) added to `base`. A fallback pass may crop a line away
    from its label and its neighbours, so a date it types by a rule alone ("sole", "latest")
    never contradicts the type `base` gave the same date with the whole print in view: a
    production date stays one, and so does a date left untyped beside an unreadable line.
    A date `base` left untyped only because its digits were repaired (`UNLABELLED_REPAIR`) and
    that is the only date `base` holds was typed by no view of the print: a fallback that reads
    it without repair types it (a half-size photo's "28 18 21" read "28 10 21" on its region)."""
    seen = {(d.iso, d.type) for d in base}
    guessed = {d.iso for d in base if d.reason == UNLABELLED_REPAIR}
    only_guess = len({d.iso for d in base}) == 1 and len(guessed) == 1
    typed = {d.iso: d.type for d in base if not (only_guess and d.iso in guessed)}
    return base + [
        d
        for d in extra
        if (d.iso, d.type) not in seen and not (d.reason not in LABELLED and typed.get(d.iso, d.type) != d.type)
    ]


def engine_clock(engine: OcrEngine) -> Callable[[], float]:
    """The clock a budget is measured on: the calling thread's CPU time for engines that compute
    in that thread (exact OCR compute, unaffected by other work on a shared machine), else the
    wall clock (Tesseract runs in a subprocess, a multi-threaded engine on its own threads)."""
    return time.thread_time if getattr(engine, "in_thread", False) else time.perf_counter


def sizes_detector(engine: OcrEngine) -> bool:
    """Whether the engine finds text lines with a detector whose input size a pass may set."""
    return bool(getattr(engine, "sizes_detector", False))


def resolve_engine(
    engine: str | OcrEngine, languages: tuple[str, ...] = ("en",), precision: str | None = None
) -> OcrEngine:
    return get_engine(engine, languages, precision) if isinstance(engine, str) else engine


def first_read(
    image: np.ndarray,
    *,
    engine: str | OcrEngine = DEFAULT_ENGINE,
    order: Order | None = None,
    today: date | None = None,
    languages: tuple[str, ...] = ("en",),
    stale_years: int | None = None,
) -> ImageRead:
    """The common path: one pass over the image as it is (contrast-stretched when faint; a large
    photo's lines found at the coarse side, searched again at full size for a month-only expiry).
    A photo whose text lines all lean one way is read once more turned level (`level_pass`), and
    that read is kept unless only the tilted one found an expiry.
    `order`: the market's reading of all-numeric dates; None reads it from the print's script."""
    t0 = time.perf_counter()
    eng = resolve_engine(engine, languages)
    clock = engine_clock(eng)
    c0 = clock()
    p = first_pass(image, deskew=eng.name == "tesseract", coarse=sizes_detector(eng))
    today = today or date.today()
    lines, dates, used = typed_read(p, eng, order, today, stale_years)
    passes = [p.name]
    level = level_pass(image, lines)
    if level is not None:
        level_lines, level_dates, level_order = typed_read(level, eng, order, today, stale_years)
        passes.append(level.name)
        if pick_expiry(level_dates) is not None or pick_expiry(dates) is None:
            p, lines, dates, used = level, level_lines, level_dates, level_order
    order = used
    expiry = pick_expiry(dates)
    if expiry is not None:
        dates = complete_day(day_pass(p, image, expiry), expiry, eng, dates, lines, passes, order, today, stale_years)
    return ImageRead(
        dates=dates,
        expiry=pick_expiry(dates),
        engine=eng.name,
        ms=(time.perf_counter() - t0) * 1000.0,
        passes=passes,
        lines=lines,
        cpu_ms=(clock() - c0) * 1000.0,
        order=order,
    )


def typed_read(
    p: Pass, eng: OcrEngine, order: Order | None, today: date, stale_years: int | None
) -> tuple[list[TextLine], list[DateRead], Order]:
    """`p` read and its dates typed; lines and dates in the input image's pixels. `order` None:
    the print decides (`print_order`), and the order used is returned."""
    raw = p.read(eng)
    order = order or print_order(raw, today)
    dates = p.map_dates(classify_lines(raw, order=order, today=today, stale_years=stale_years))
    return p.map_lines(raw), dates, order


def complete_day(
    whole: Pass | None,
    expiry: DateRead,
    eng: OcrEngine,
    dates: list[DateRead],
    lines: list[TextLine],
    passes: list[str],
    order: Order,
    today: date,
    stale_years: int | None,
) -> list[DateRead]:
    """`dates` with the day of a month-only `expiry` added when `whole` (`day_pass`: its line or
    the image read once more; None: no such read) shows the same month with a day
    (`completions`); `lines` and `passes` grow by that read."""
    if whole is None:
        return dates
    whole_read = whole.read(eng)
    passes.append(whole.name)
    in_whole = classify_lines(whole_read, order=order, today=today, stale_years=stale_years)
    found = completions(expiry, whole.map_dates(in_whole))
    if not found:
        return dates
    lines += whole.map_lines(whole_read)
    return check_consistency(_merge(dates, found), today, stale_years)


def hints_beyond(crop: Pass, lines: Sequence[TextLine], today: date) -> bool:
    """Whether the whole image's `lines` outside a region crop show signs of another date
    (`classify.hints_of_a_date`). A crop around a date line may cut off its label: on a
    development seed's dot-matrix print, "MFD 03/26/2027" cropped to "03/26/2027" was typed the
    expiry as the crop's sole date, while the print's unread "BEST BEFORE END FEB 2028" line
    showed a month name beyond the crop."""
    h, w = crop.image.shape[:2]
    x0, y0, x1, y1 = crop.map_box((0.0, 0.0, w - 1.0, h - 1.0))
    centres = [(line, line.centre) for line in lines]
    outside = [line for line, (x, y) in centres if not (x0 <= x <= x1 and y0 <= y <= y1)]
    return hints_of_a_date(outside, today)


class RegionsRead:
    """The digit-bearing lines whose neighbourhoods a read has queued (`region_passes`). A
    whole-image fallback may find a line the first pass missed (an enlarged small photo's date
    line, read "1 1021"), whose neighbourhood then deserves the same enlarged read: at most
    `MAX_REGIONS` such lines, none overlapping a line already queued. They are read after every
    other pass, the caller's last resorts included: at the edge budget they must not cost a print
    the passes that read it before (a belt-smeared 5 px print is read by its unsmeared pass)."""

    def __init__(self, first_lines: Sequence[TextLine]) -> None:
        self.boxes = [line.box for line in region_lines(first_lines)]
        self.added = 0

    def new_passes(self, image: np.ndarray, lines: Sequence[TextLine]) -> list[Pass]:
        fresh = [line for line in region_lines(lines) if not any(_overlap(line.box, b) for b in self.boxes)]
        fresh = fresh[: MAX_REGIONS - self.added]
        self.added += len(fresh)
        self.boxes += [line.box for line in fresh]
        return [p for line in fresh for p in region_pass(image, line)]


def _overlap(a: Box4, b: Box4) -> bool:
    """Whether two boxes' intersection covers half the smaller of them."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return False
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h >= 0.5 * max(smaller, 1e-6)


def continue_read(
    image: np.ndarray,
    read: ImageRead,
    *,
    engine: str | OcrEngine = DEFAULT_ENGINE,
    order: Order | None = None,
    today: date | None = None,
    languages: tuple[str, ...] = ("en",),
    deadline: float | None = None,
    stale_years: int | None = None,
    may_continue: Callable[[], bool] | None = None,
    first: Sequence[Pass] = (),
    last: Sequence[Pass] = (),
) -> ImageRead:
    """Fallback passes after a first read that found no expiry, cheapest first: `first` (passes
    the caller adds, such as `preprocess.as_captured_pass` after a corrected copy), the enlarged
    and dot-matrix-filtered neighbourhoods of digit-bearing lines, then whole-image passes
    (quarter turns, enlargement, dot-matrix), then `last` (the caller's last resorts, such as
    `preprocess.unsmear_pass`), then the neighbourhoods of digit-bearing lines those passes
    found (`RegionsRead`). Stops at the first pass that finds an expiry, or
    when `deadline` (on `engine_clock`) has passed; "budget_spent" is then the last pass name.
    A month-only expiry read on a region crop is read once more as a whole line
    (`line_pass`), which may add its day (`completions`).
    `may_continue` is asked before each pass (the item's verdict deadline); "deadline_near"
    is the last pass name when it said no.
    Dates found by a fallback are added to the first read's, never replace them, and the
    consistency checks run again on the merged dates."""
    if read.expiry is not None:
        return read
    order = order or read.order
    t0 = time.perf_counter()
    eng = resolve_engine(engine, languages)
    clock = engine_clock(eng)
    c0 = clock()
    today = today or date.today()
    lines, dates, passes = list(read.lines), list(read.dates), list(read.passes)
    queue = deque([*first, *region_passes(image, read.lines), *fallback_passes(image, read.lines, sizes_detector(eng))])
    queue.extend(last)
    regions = RegionsRead(read.lines)
    while queue:
        fp = queue.popleft()
        if deadline is not None and clock() >= deadline:
            passes.append(BUDGET_SPENT)
            break
        if may_continue is not None and not may_continue():
            passes.append(DEADLINE_NEAR)
            break
        fp_read = fp.read(eng)
        passes.append(fp.name)
        beyond = fp.name == REGION_PASS and hints_beyond(fp, read.lines, today)
        found = fp.map_dates(
            classify_lines(fp_read, order=order, today=today, stale_years=stale_years, more_beyond=beyond)
        )
        # Consistency is checked on the whole print: a crop without the production line must
        # not bring back an expiry the first pass rejected as earlier than manufacture.
        merged = check_consistency(_merge(dates, found), today, stale_years)
        expiry = pick_expiry(merged)
        if expiry is None:
            if fp.name != REGION_PASS:
                queue.extend(regions.new_passes(image, fp.map_lines(fp_read)))
            continue
        lines += fp.map_lines(fp_read)
        dates = merged
        dates = complete_day(day_pass(fp, image, expiry), expiry, eng, dates, lines, passes, order, today, stale_years)
        break
    return ImageRead(
        dates=dates,
        expiry=pick_expiry(dates),
        engine=eng.name,
        ms=read.ms + (time.perf_counter() - t0) * 1000.0,
        passes=passes,
        lines=lines,
        cpu_ms=read.cpu_ms + (clock() - c0) * 1000.0,
        order=order,
    )


def read_dates(
    image: np.ndarray,
    *,
    engine: str | OcrEngine = DEFAULT_ENGINE,
    order: Order | None = None,
    today: date | None = None,
    languages: tuple[str, ...] = ("en",),
    fallback: bool = True,
    budget_ms: float | None = FALLBACK_BUDGET_MS,
    stale_years: int | None = None,
) -> ImageRead:
    """Read and type every date on an RGB image; boxes are in the image's pixels.

    Fallback passes stop once `budget_ms` (first pass included, on `engine_clock`) is spent:
    an image that is still unreadable goes to review rather than holding up the line. The last
    of them reads the photo with its motion smear taken out, when it shows one (`unsmear_pass`).
    """
    eng = resolve_engine(engine, languages)
    start = engine_clock(eng)()
    read = first_read(image, engine=eng, order=order, today=today, languages=languages, stale_years=stale_years)
    if not fallback or read.expiry is not None:
        return read
    deadline = None if budget_ms is None else start + budget_ms / 1000.0
    return continue_read(
        image,
        read,
        engine=eng,
        order=order,
        today=today,
        languages=languages,
        deadline=deadline,
        stale_years=stale_years,
        last=[p for p in (unsmear_pass(image),) if p is not None],
    )


def second_look_passes(image: np.ndarray, read: ImageRead) -> list[Pass]:
    """The passes that read the image again before its expiry may divert the item, at most
    `SECOND_LOOKS`: the dot blurs of the text height `read` found (`dot_blur_passes`), or the
    enlarged image for small print, leaving out any pass `read` has made already (the first
    pass's own re-read would only repeat it). None without an expiry."""
    if read.expiry is None:
        return []
    candidates = [p for p in dot_blur_passes(image, text_height(read.lines)) if p.name not in read.passes]
    if len(candidates) < SECOND_LOOKS and UPSCALE_PASS not in read.passes:
        enlarged = upscale_pass(image)  # only built when the blurs leave room for it
        if enlarged is not None:
            candidates.append(enlarged)
    return candidates[:SECOND_LOOKS]


def second_looks(
    image: np.ndarray,
    read: ImageRead,
    *,
    engine: str | OcrEngine = DEFAULT_ENGINE,
    order: Order | None = None,
    today: date | None = None,
    languages: tuple[str, ...] = ("en",),
    stale_years: int | None = None,
    first: Sequence[Pass] = (),
) -> Iterator[ImageRead]:
    """Independent reads of the print `read` found its expiry on (`first`, then
    `second_look_passes`, `SECOND_LOOKS` in all), each
    typed afresh and made only when the caller asks for it (`checker.second_look_doubt` asks for
    a third only when the second contradicts the first). An expiry that decides a divert (expired,
    lot mismatch) rests on one recognition of a few digits: on dot-matrix and inkjet prints the
    recogniser reads an 8 as a 6 or a 2028 as 2026 with high confidence, and a crop that cut a
    production date from its label makes it look like the expiry. Another image of the same print
    rarely makes the same mistake."""
    eng = resolve_engine(engine, languages)
    clock = engine_clock(eng)
    for p in [*first, *second_look_passes(image, read)][:SECOND_LOOKS]:
        t0, c0 = time.perf_counter(), clock()
        lines, dates, used = typed_read(p, eng, order or read.order, today or date.today(), stale_years)
        yield ImageRead(
            dates=dates,
            expiry=pick_expiry(dates),
            engine=eng.name,
            ms=(time.perf_counter() - t0) * 1000.0,
            passes=[p.name],
            lines=lines,
            cpu_ms=(clock() - c0) * 1000.0,
            order=used,
        )


def read_file(path: Path | str, **kwargs) -> ImageRead:
    """`read_dates` on an image file; raises `pipeline.imageio.ImageError` for a bad image."""
    return read_dates(read_image(path), **kwargs)
