"""Variant labels: which words can name a size or model, and OCR text -> attribute values.

A printed size is one word out of a small family (S/M/L/XL, TWIN/FULL/QUEEN/KING, EU 40-46,
phone models, weights and capacities). Reading it means finding a family member in the OCR
lines, tolerating one wrong letter on words long enough that a single slip cannot turn one
member into another (TIN -> TWIN, but never S -> M). A digit read as its look-alike letter
("PI5" for "P15") is the catalog's value misread, not another model.

Small print is misread now and then (P15 as P16 on one camera), so the verdict is a vote over
cameras: a value counts once per camera that reads it confidently, and a label is wrong only
when another value is read by more cameras than the catalog's. A value on a sticker of its own
("P16", "SIZE M") outranks one inside a longer line (a box title "FOR PHONE P15"), which names
the product, not the variant the sticker says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

LETTER_SIZES = ("XXS", "XS", "S", "M", "L", "XL", "XXL", "XXXL")
BED_SIZES = ("TWIN", "TWIN XL", "FULL", "DOUBLE", "QUEEN", "KING", "CAL KING", "SUPER KING", "SINGLE")
COLOUR_WORDS = (
    "BLACK",
    "WHITE",
    "NAVY",
    "RED",
    "GREY",
    "GRAY",
    "BLUE",
    "GREEN",
    "YELLOW",
    "ORANGE",
    "BROWN",
    "PINK",
    "CLEAR",
    "PURPLE",
    "BEIGE",
)
_SHOE = re.compile(r"\b(EU|UK|US)\s*(\d{2}(?:[.,]5)?)\b")
_BARE_SHOE = re.compile(r"(\d{2}(?:[.,]5)?)")
"""A shoe's tongue label shows the number only; a line that is just that number is read as a size."""
SHOE_RANGE = {"EU": (15.0, 52.0), "UK": (0.0, 16.0), "US": (0.0, 17.0)}
"""Sizes a shoe label can carry per system; a bare "99" on a tongue is print noise, not a size."""
_QUANTITY = re.compile(r"(\d+(?:[.,]\d+)?)\s*(KG|G|ML|L|OZ|LB|CL)\b")
MODEL_SUFFIXES = ("PRO", "MAX", "PLUS", "MINI")
_MODEL = re.compile(rf"\b([A-Z]{{1,3}}\d{{1,3}}(?:\s?(?:{'|'.join(MODEL_SUFFIXES)}))?)\b")
_MODEL_THEN_WORD = re.compile(r"\b([A-Z]{1,3}\d{1,3})(\s?)([A-Z0-9]{3,4})\b")
"""A model number and the word right after it, which may be a misread suffix ("P15 PIO")."""
_COUNT = re.compile(
    r"\b(?:(\d{1,3})\s*-?\s*(?:PACK|PK|PCS|PC|PIECES|STK|ST|BALLS|COUNT|CT|X)"
    r"|(?:X|PACK OF|SET OF|BOX OF)\s*(\d{1,3}))\b"
)
"""A pack count as printed: "3 PACK", "4PK", "6 X", "X 3", "PACK OF 12". A bare number is not a
count: lot codes, dates and a lid's rim read as digits on any package."""
_WORD = re.compile(r"[A-Z0-9]+")
_UNIT_SCALE = {"KG": ("G", 1000.0), "G": ("G", 1.0), "L": ("ML", 1000.0), "CL": ("ML", 10.0), "ML": ("ML", 1.0)}

FUZZY_PENALTY = 0.75
"""A read one letter away from a family member counts with less confidence: alone it cannot prove a wrong label."""

LOOKALIKE_DIGITS = {"0": "OQD", "1": "IL|", "2": "Z", "5": "S", "6": "G", "8": "B"}
"""Letters the recogniser reads for a digit in small print ("PI5" for "P15"). A read that differs
from the catalog's value only by such swaps is that value misread, never another variant."""
_DIGIT_LETTERS = str.maketrans("0158", "OISB")
"""Letters a word may hold a digit in place of ("PR0" for "PRO")."""

CAPTION_WORDS = ("SIZE", "MODEL", "GROESSE", "TAILLE", "TALLA", "TAGLIA")
"""Captions printed beside a value on its own sticker; a line holding only these and a value is standalone."""

LABEL_ATTRIBUTES = ("size", "model")
"""Attributes printed on a variant label (colour is checked from pixels, not from words)."""


def normalise(text: str) -> str:
    """Upper case, one space between words, common OCR digit/letter slips inside numbers fixed."""
    text = re.sub(r"\s+", " ", text.upper()).strip()
    return re.sub(r"(?<=\d)[O](?=\d|\b)", "0", text)


def canonical(value: str) -> str:
    """A catalog value in the same form `read_values` returns (so "12 kg" == "12000 G")."""
    family = family_of(value)
    if family == "count":
        return str(int(normalise(value)))
    found = _values_in(normalise(value), family)
    return found[0][0] if found else normalise(value)


def family_of(value: str) -> str:
    """Which family an expected value belongs to: letter, bed, shoe, quantity, model, colour, count or word."""
    v = normalise(value)
    if v.isdigit():
        return "count"
    if v in LETTER_SIZES:
        return "letter"
    if v in BED_SIZES:
        return "bed"
    if _SHOE.fullmatch(v):
        return "shoe"
    if _QUANTITY.fullmatch(v):
        return "quantity"
    if v in COLOUR_WORDS:
        return "colour"
    if _MODEL.fullmatch(v):
        return "model"
    return "word"


def _edit1(a: str, b: str) -> bool:
    """True when a and b differ by at most one insertion, deletion or substitution."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def _fuzzy_member(token: str, members: Iterable[str]) -> str | None:
    """The one member a token names: exact, or one slip away for tokens of 4+ letters."""
    members = tuple(members)
    if token in members:
        return token
    if len(token) < 3:
        return None
    close = [m for m in members if len(m) >= 4 and _edit1(token, m)]
    return close[0] if len(close) == 1 else None


def _quantity(number: str, unit: str) -> str:
    base, scale = _UNIT_SCALE.get(unit, (unit, 1.0))
    value = float(number.replace(",", ".")) * scale
    return f"{value:g} {base}"


def _values_in(text: str, family: str, system: str | None = None) -> list[tuple[str, bool]]:
    """(value, exact) pairs of one family in a normalised line; `system` (EU/UK/US) reads a bare shoe size line."""
    if family == "model":
        return _model_values(text)
    return (
        [(v, True) for v in _pattern_values(text, family, system)]
        if family in _PATTERNED
        else _word_values(text, family)
    )


def _model_values(text: str) -> list[tuple[str, bool]]:
    """Models in a normalised line; a suffix misread by one letter ("P15 PIO", "P16PR0") still
    names one, with less certainty. Without it, a "P16 Pro" sticker read "P15 Pio" gave a weak
    read of the catalog's "P15", which passes a label."""
    fixed, slips = _suffix_slips(text)
    out = []
    for m in _MODEL.finditer(fixed):
        out.append((_model(m.group(1)), not any(m.start() <= at < m.end() for at in slips)))
    return out


def _one_slip(word: str, target: str) -> bool:
    """`word` is `target` but for one letter, a digit taken for its look-alike letter first
    ("PIO" or "PR0" for "PRO", "XI" for "XL"); `target` itself is no slip."""
    if word == target or len(word) != len(target):
        return False
    return sum(a != b for a, b in zip(word.translate(_DIGIT_LETTERS), target, strict=True)) <= 1


def _suffix_slips(text: str) -> tuple[str, list[int]]:
    """`text` with each word after a model number that is a suffix but for one letter (digits
    read as their look-alike letters first) spelled as that suffix, and where each such word
    starts."""
    slips: list[int] = []

    def fix(m: re.Match[str]) -> str:
        word = m.group(3)
        if word in MODEL_SUFFIXES:
            return m.group(0)
        near = [x for x in MODEL_SUFFIXES if _one_slip(word, x)]
        if len(near) != 1:
            return m.group(0)
        slips.append(m.start(3))
        return m.group(1) + m.group(2) + near[0]

    return _MODEL_THEN_WORD.sub(fix, text), slips


_PATTERNED = {"shoe", "quantity", "model", "count"}


def _shoe_size(system: str, number: str) -> str | None:
    """ "EU 42" from ("EU", "42"), or None when the number is no size of that system."""
    value = float(number.replace(",", "."))
    low, high = SHOE_RANGE.get(system, (0.0, 60.0))
    return f"{system} {number.replace(',', '.')}" if low <= value <= high else None


def _model(text: str) -> str:
    """One spelling per model: "P16PRO" and "P16  PRO" are "P16 PRO"."""
    return re.sub(r"(\d)\s*(PRO|MAX|PLUS|MINI)$", r"\1 \2", text)


def _pattern_values(text: str, family: str, system: str | None) -> list[str]:
    if family == "shoe":
        found = [_shoe_size(m.group(1), m.group(2)) for m in _SHOE.finditer(text)]
        bare = _BARE_SHOE.fullmatch(text)
        if not found and bare and system:
            found = [_shoe_size(system, bare.group(1))]
        return [v for v in found if v]
    if family == "quantity":
        return [_quantity(m.group(1), m.group(2)) for m in _QUANTITY.finditer(text)]
    if family == "model":
        return [_model(m.group(1)) for m in _MODEL.finditer(text)]
    if family == "count":
        counts = (int(m.group(1) or m.group(2)) for m in _COUNT.finditer(text))
        return [str(n) for n in counts if n > 0]
    return []


def _leftover_words(text: str, family: str) -> list[str]:
    """Words of a normalised line that are neither a family value nor a caption (title words)."""
    if family in _PATTERNED:
        text = _suffix_slips(text)[0] if family == "model" else text
        rest = {"shoe": _SHOE, "quantity": _QUANTITY, "model": _MODEL, "count": _COUNT}[family].sub(" ", text)
        members: tuple[str, ...] = ()
    else:
        members = {"letter": LETTER_SIZES, "bed": BED_SIZES, "colour": COLOUR_WORDS}.get(family, ())
        rest = text
        for m in members:
            if " " in m:
                rest = rest.replace(m, " ")
    return [
        w
        for w in _WORD.findall(rest)
        if len(w) >= 3
        and w.isalpha()
        and not (members and _fuzzy_member(w, members))
        and not _fuzzy_member(w, CAPTION_WORDS)
    ]


def _word_values(text: str, family: str) -> list[tuple[str, bool]]:
    members = {"letter": LETTER_SIZES, "bed": BED_SIZES, "colour": COLOUR_WORDS}.get(family)
    if members is None:
        return [(text, True)] if text else []
    out = _multi_word_values(text, members)
    multi = [m for m, _ in out]
    for word in _WORD.findall(text):
        hit = _fuzzy_member(word, members)
        if hit and not any(hit in m for m in multi):
            out.append((hit, hit == word))
    return out


def _multi_word_values(text: str, members: Iterable[str]) -> list[tuple[str, bool]]:
    """Members of two words or more in a normalised line: exact, or with one word misread by a
    letter beside the others read right (a fuzzy read). A "TWIN XL" sticker read "TWIN XI", or a
    "CAL KING" one read "CAI KING", had given an exact "TWIN" or "KING": another size passed."""
    words = _WORD.findall(text)
    out: list[tuple[str, bool]] = []
    for member in (m for m in members if " " in m):
        parts = member.split()
        if member in text:
            out.append((member, True))
            continue
        windows = (words[i : i + len(parts)] for i in range(len(words) - len(parts) + 1))
        if any(
            sum(w != p for w, p in zip(window, parts, strict=True)) == 1
            and all(w == p or _one_slip(w, p) for w, p in zip(window, parts, strict=True))
            for window in windows
        ):
            out.append((member, False))
    return out


def lookalike_of(read: str, want: str) -> bool:
    """`read` is `want` with some digits read as their look-alike letters (or back)."""
    if read == want or len(read) != len(want):
        return False
    for r, w in zip(read, want, strict=True):
        if r == w:
            continue
        digit, letter = (w, r) if w.isdigit() else (r, w)
        if letter not in LOOKALIKE_DIGITS.get(digit, ""):
            return False
    return True


@dataclass(frozen=True)
class ValueRead:
    """One attribute value found in one OCR line."""

    value: str
    line: str
    confidence: float
    index: int
    """Position of the line in the list it came from (to look its box up)."""
    standalone: bool = True
    """The line holds only the value (and a caption): a sticker, not a title that names the product."""
    source: str = ""
    """The camera (view) the line was read on; a value counts once per source in the vote."""


def read_values(
    lines: Iterable[tuple[str, float]], expected: str, sources: Sequence[str] | None = None
) -> list[ValueRead]:
    """Values of the expected value's family in OCR lines given as (text, confidence).

    `sources[i]` names the view line i was read on (default: each line its own source)."""
    family = family_of(expected)
    want = canonical(expected)
    shoe = _SHOE.fullmatch(normalise(expected))
    system = shoe.group(1) if shoe else None
    out = []
    for index, (text, conf) in enumerate(lines):
        norm = normalise(text)
        found = _values_in(norm, family, system)
        if not found:
            continue
        alone = family == "word" or not _leftover_words(norm, family)
        source = sources[index] if sources is not None else str(index)
        for value, exact in found:
            if lookalike_of(value, want):
                value, exact = want, False
            out.append(ValueRead(value, text, conf if exact else conf * FUZZY_PENALTY, index, alone, source))
    return out


@dataclass(frozen=True)
class LabelCheck:
    """Outcome of comparing the values read with the catalog's: ok, wrong, conflict or unread."""

    attribute: str
    expected: str
    status: str
    """"ok", "wrong", "conflict" (as many views read another value as the catalog's: a
    person decides) or "unread"."""
    reads: tuple[ValueRead, ...] = ()

    @property
    def wrong_reads(self) -> list[ValueRead]:
        want = canonical(self.expected)
        return [r for r in self.reads if r.value != want]

    @property
    def settled(self) -> bool:
        """Read as expected with nothing else read: more views cannot change the verdict."""
        return self.status == "ok" and not self.wrong_reads


def votes(reads: Iterable[ValueRead]) -> dict[str, tuple[int, float]]:
    """value -> (number of sources that read it, sum over those sources of their best confidence)."""
    best: dict[tuple[str, str], float] = {}
    for r in reads:
        key = (r.value, r.source or str(r.index))
        best[key] = max(best.get(key, 0.0), r.confidence)
    out: dict[str, tuple[int, float]] = {}
    for (value, _), conf in best.items():
        n, total = out.get(value, (0, 0.0))
        out[value] = (n + 1, total + conf)
    return out


def judge(
    attribute: str,
    expected: str,
    reads: list[ValueRead],
    min_confidence: float = 0.8,
    corrected: frozenset[str] = frozenset(),
) -> LabelCheck:
    """Vote over the confident reads; none at all means unread.

    Standalone reads (a sticker) decide when there are any, so a wrong sticker beside a right
    box title is still a wrong label. Another value read by more views than the catalog's is a
    wrong label; by as many, a conflict for review; by fewer, a misread outvoted. Without a
    confident read, a weak read of the catalog's value passes the label, unless it was read on
    a corrected view (`corrected` sources: the belt's smear taken out), where a weak read may
    be a digit the inverse filter made: a 7 px smear of a 4 px "P16 Pro" sticker read "P15" at
    0.78 on the attributes benchmark.
    """
    want = canonical(expected)
    confident = [r for r in reads if r.confidence >= min_confidence]
    tier = [r for r in confident if r.standalone] or confident
    if tier:
        support = votes(tier)
        own = support.get(want, (0, 0.0))[0]
        other = max((n for v, (n, _) in support.items() if v != want), default=0)
        if other > own:
            return LabelCheck(attribute, expected, "wrong", tuple(tier))
        if other == own:
            return LabelCheck(attribute, expected, "conflict", tuple(tier))
        return LabelCheck(attribute, expected, "ok", tuple(tier))
    weak = [r for r in reads if r.value == want and r.source not in corrected]
    if weak:
        return LabelCheck(attribute, expected, "ok", tuple(weak))
    return LabelCheck(attribute, expected, "unread", tuple(reads))


def expected_labels(attributes: dict[str, str]) -> dict[str, str]:
    """The catalog attributes that a variant label should show."""
    return {k: v for k, v in attributes.items() if k in LABEL_ATTRIBUTES and v}
