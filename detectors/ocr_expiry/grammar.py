"""A date grammar for printed package dates.

General date libraries read `03/04/25` one fixed way, invent a missing day and accept dates
decades away; on a package each of those turns into a wrong divert or a missed expiry. This
grammar knows the shapes that are printed on packages (numeric with 2- or 4-digit years,
compact YYYYMMDD, month names in many languages, month-only prints such as `11/2026` or
`NOV2026`, CJK year/month/day markers, from-until ranges), resolves ambiguous orders with the
market's order hint inside a plausibility window around today, and never makes up a day:
a print without a day has month precision.

Pure Python; spans index into the caller's original text.
"""

from __future__ import annotations

import calendar
import itertools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cache
from typing import Literal

Order = Literal["DMY", "MDY", "YMD"]
Precision = Literal["day", "month"]
YMDTuple = tuple[int, int, int | None]

WINDOW_YEARS_BACK = 10
WINDOW_YEARS_AHEAD = 15
"""Plausibility window around today: package dates outside it are misreads (lot codes, phone numbers)."""

MONTHS: dict[str, dict[str, int]] = {
    "en": {
        "JANUARY": 1, "JAN": 1, "FEBRUARY": 2, "FEB": 2, "MARCH": 3, "MAR": 3, "APRIL": 4, "APR": 4,
        "MAY": 5, "JUNE": 6, "JUN": 6, "JULY": 7, "JUL": 7, "AUGUST": 8, "AUG": 8, "SEPTEMBER": 9,
        "SEPT": 9, "SEP": 9, "OCTOBER": 10, "OCT": 10, "NOVEMBER": 11, "NOV": 11, "DECEMBER": 12, "DEC": 12,
    },
    "de": {
        "JANUAR": 1, "JANNER": 1, "JAN": 1, "FEBRUAR": 2, "FEB": 2, "MARZ": 3, "MRZ": 3, "APRIL": 4,
        "APR": 4, "MAI": 5, "JUNI": 6, "JUN": 6, "JULI": 7, "JUL": 7, "AUGUST": 8, "AUG": 8,
        "SEPTEMBER": 9, "SEP": 9, "OKTOBER": 10, "OKT": 10, "NOVEMBER": 11, "NOV": 11, "DEZEMBER": 12, "DEZ": 12,
    },
    "fr": {
        "JANVIER": 1, "JANV": 1, "FEVRIER": 2, "FEVR": 2, "FEV": 2, "MARS": 3, "AVRIL": 4, "AVR": 4,
        "MAI": 5, "JUIN": 6, "JUILLET": 7, "JUIL": 7, "AOUT": 8, "SEPTEMBRE": 9, "OCTOBRE": 10,
        "NOVEMBRE": 11, "DECEMBRE": 12,
    },
    "es": {
        "ENERO": 1, "ENE": 1, "FEBRERO": 2, "MARZO": 3, "ABRIL": 4, "ABR": 4, "MAYO": 5, "JUNIO": 6,
        "JULIO": 7, "AGOSTO": 8, "AGO": 8, "SEPTIEMBRE": 9, "SETIEMBRE": 9, "SET": 9, "OCTUBRE": 10,
        "NOVIEMBRE": 11, "DICIEMBRE": 12, "DIC": 12,
    },
    "it": {
        "GENNAIO": 1, "GEN": 1, "FEBBRAIO": 2, "MARZO": 3, "APRILE": 4, "MAGGIO": 5, "MAG": 5,
        "GIUGNO": 6, "GIU": 6, "LUGLIO": 7, "LUG": 7, "AGOSTO": 8, "SETTEMBRE": 9, "SETT": 9,
        "OTTOBRE": 10, "OTT": 10, "NOVEMBRE": 11, "DICEMBRE": 12,
    },
    "pt": {
        "JANEIRO": 1, "FEVEREIRO": 2, "MARCO": 3, "ABRIL": 4, "MAIO": 5, "JUNHO": 6, "JULHO": 7,
        "AGOSTO": 8, "SETEMBRO": 9, "OUTUBRO": 10, "OUT": 10, "NOVEMBRO": 11, "DEZEMBRO": 12,
    },
    "nl": {
        "JANUARI": 1, "FEBRUARI": 2, "MAART": 3, "MRT": 3, "MAA": 3, "APRIL": 4, "MEI": 5, "JUNI": 6, "JULI": 7,
        "AUGUSTUS": 8, "SEPTEMBER": 9, "OKTOBER": 10, "NOVEMBER": 11, "DECEMBER": 12,
    },
    "pl": {
        "STYCZEN": 1, "STYCZNIA": 1, "STY": 1, "LUTY": 2, "LUTEGO": 2, "LUT": 2, "MARZEC": 3, "MARCA": 3,
        "KWIECIEN": 4, "KWIETNIA": 4, "KWI": 4, "MAJ": 5, "MAJA": 5, "CZERWIEC": 6, "CZERWCA": 6, "CZE": 6,
        "LIPIEC": 7, "LIPCA": 7, "LIP": 7, "SIERPIEN": 8, "SIERPNIA": 8, "SIE": 8, "WRZESIEN": 9,
        "WRZESNIA": 9, "WRZ": 9, "PAZDZIERNIK": 10, "PAZDZIERNIKA": 10, "PAZ": 10, "LISTOPAD": 11,
        "LISTOPADA": 11, "LIS": 11, "GRUDZIEN": 12, "GRUDNIA": 12, "GRU": 12,
    },
    "sv": {
        "JANUARI": 1, "FEBRUARI": 2, "MARS": 3, "APRIL": 4, "MAJ": 5, "JUNI": 6, "JULI": 7,
        "AUGUSTI": 8, "SEPTEMBER": 9, "OKTOBER": 10, "NOVEMBER": 11, "DECEMBER": 12,
    },
    "tr": {
        "OCAK": 1, "SUBAT": 2, "MART": 3, "NISAN": 4, "MAYIS": 5, "HAZIRAN": 6, "TEMMUZ": 7,
        "AGUSTOS": 8, "EYLUL": 9, "EKIM": 10, "KASIM": 11, "ARALIK": 12,
    },
}  # fmt: skip
"""Month names and abbreviations per language, upper case without accents (as `normalize` writes them)."""

MONTH_LOOKUP: dict[str, int] = {name: num for table in MONTHS.values() for name, num in table.items()}
_conflicts = {n for t in MONTHS.values() for n, m in t.items() if any(o.get(n, m) != m for o in MONTHS.values())}
assert not _conflicts, f"a month token means two months: {_conflicts}"

# --- normalisation -----------------------------------------------------------------------

_DIGIT_LOOKALIKES = str.maketrans(
    {"O": "0", "Q": "0", "I": "1", "L": "1", "|": "1", "!": "1", "S": "5", "B": "8", "Z": "2"}
)
_YEAR_SHAPE = re.compile(r"(?:19|20)[0-9]{2}")
_TOKEN = re.compile(r"[A-Z0-9|!]+(?:[./\-][A-Z0-9|!]+)*")
_GLUED_YEAR = re.compile(r"(?P<mon>[A-Z]{3,9}?)(?P<y>[0-9OQILSBZ|!]{4})")


def _norm_char(ch: str) -> str:
    """Upper case without accents, full-width folded; always one character so spans stay valid."""
    folded = unicodedata.normalize("NFKC", ch)
    if len(folded) != 1:
        folded = ch
    base = "".join(c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c))
    base = unicodedata.normalize("NFC", base)
    if len(base) != 1:
        base = folded
    up = base.upper()
    if len(up) != 1:
        return base
    return {"Ł": "L", "Ø": "O", "Æ": "A", "ı": "I", "–": "-", "—": "-", "~": "~"}.get(up, up)


def _month_in_year(tok: str, glued: re.Match[str]) -> bool:
    """Whether the letters `glued` took for a misread year's are a longer month name's own:
    "MARZO26" is MARZO and a day, not MAR and 2026."""
    letters = re.match(r"[A-Z]*", tok).group()
    return len(letters) > len(glued.group("mon")) and letters in MONTH_LOOKUP


def _fix_digit_tokens(text: str) -> str:
    """Read O/I/l as 0/1 where they stand alone among digits (an OCR confusion on printed dates).

    Only single look-alike letters in a token with at least four digits are changed, or one
    look-alike in a four-character token that then reads as a year ("2O27", "2O2S"), so month
    names ("NOV2021") and lot codes keep their letters.
    """
    out = list(text)
    for m in _TOKEN.finditer(text):
        tok = m.group()
        glued = _GLUED_YEAR.fullmatch(tok)
        if glued and glued.group("mon") in MONTH_LOOKUP and not _month_in_year(tok, glued):  # "GENZ027"
            year = glued.group("y").translate(_DIGIT_LOOKALIKES)
            if _YEAR_SHAPE.fullmatch(year):
                out[m.start() + glued.start("y") : m.end()] = year
            continue
        runs = re.findall(r"[A-Z|!]+", tok)
        if not runs or any(len(r) > 1 or r not in "OQIL|!SBZ" for r in runs):
            continue
        fixed = tok.translate(_DIGIT_LOOKALIKES)
        year = len(tok) == 4 and len(runs) == 1 and _YEAR_SHAPE.fullmatch(fixed)
        if sum(c.isdigit() for c in tok) < 4 and not year:
            continue
        out[m.start() : m.end()] = fixed
    return "".join(out)


def _fold(text: str) -> str:
    return "".join(_norm_char(c) for c in text)


def normalize(text: str) -> str:
    """Same-length normal form: upper case, no accents, ASCII digits, digit look-alikes fixed."""
    return _fix_digit_tokens(_fold(text))


@cache
def _label_words() -> tuple[str, ...]:
    """One-word expiry and manufacture labels ("EXP", "MHD"), longest first."""
    from detectors.ocr_expiry.keywords import TABLES  # keywords imports this module

    words = {w for kind in ("expiry", "manufactured") for ws in TABLES[kind].values() for w in ws if w.isascii()}
    return tuple(sorted((w for w in words if w.isalpha() and len(w) >= 2), key=len, reverse=True))


_LETTER_RUN = re.compile(r"(?<![A-Z])[A-Z]+")
_UNGLUED_REST = 2
"""How many look-alike glyphs glued between a label and digits may be a misread digit."""


def _unglue_labels(folded: str) -> str:
    """`folded` with a space for the last letter of a date label that the recogniser ran into
    what follows it, so the date's first field starts a token as printed: "MHDJUL 03 2027" (the
    month name read on its own), "MHDZ1/02/2027" (the Z then may be the day's 2, and the 1st is
    not read) and "MHD2O27.02.21" (a year whose look-alike O is then fixed). Only for parsing: the label's
    own letters are read by `keywords` from the text as given. A word that is itself a label
    ("BBE") is left whole."""
    out = list(folded)
    for run in _LETTER_RUN.finditer(folded):
        word, after = run.group(), folded[run.end() : run.end() + 1]
        if word in _label_words():
            if after and (after.isdigit() or after in _SHAPE_LOOKALIKES):
                out[run.end() - 1] = " "
            continue
        for label in _label_words():
            rest = word[len(label) :]
            if not word.startswith(label) or not rest:
                continue
            glyphs = len(rest) <= _UNGLUED_REST and all(c in _SHAPE_LOOKALIKES for c in rest)
            month = month_of(rest) or (rest[-1] in "IL" and month_of(rest[:-1]))  # "SEPI05": a slash misread
            if month or (glyphs and after and (after.isdigit() or after == "?")):
                out[run.start() + len(label) - 1] = " "
                break
        else:
            head = _misread_label_head(word)
            if head:
                out[run.start() + head - 1] = " "
    return "".join(out)


def _misread_label_head(word: str) -> int:
    """Length of a short label misread by one letter that a month name is glued to ("MFOJUL":
    MFO for MFD, then JUL), or 0. Left glued, the month is no month and the day and year after
    it ("MFOJUL 03 2027") read as a month and year."""
    for size in (3, 4):
        head, rest = word[:size], word[size:]
        if len(rest) < 3 or rest not in MONTH_LOOKUP:
            continue
        if any(len(w) == size and sum(a != b for a, b in zip(head, w, strict=True)) == 1 for w in _label_words()):
            return size
    return 0


_LETTER_LOOKALIKES = frozenset(
    {("O", "D"), ("D", "O"), ("C", "E"), ("E", "C"), ("F", "E"), ("E", "F"), ("V", "U"), ("U", "V")}
    | {("H", "N"), ("N", "H"), ("C", "G"), ("G", "C"), ("Q", "O"), ("O", "Q")}
    | {("D", "B"), ("B", "D"), ("M", "N"), ("N", "M"), ("C", "O"), ("O", "C"), ("F", "P"), ("P", "F")}
    | {("B", "R"), ("R", "B")}
)
"""(read, printed) letter pairs OCR confuses; the only misreads allowed in short month names."""
_MONTH_CONTEXT = re.compile(r"(?<![A-Z0-9])(?P<w>[A-Z]{3,12})(?![A-Z])")
"""A word that may be a misread month name; digits may follow it directly ("ADR2027")."""
_DATE_NEIGHBOUR_BEFORE = re.compile(r"[0-9]{1,4}[\s./\-]?$")
_DATE_NEIGHBOUR_AFTER = re.compile(r"^[\s./\-]?[0-9]{1,4}")


@cache
def _protected_words() -> frozenset[str]:
    """Label words ("ENTRO" is one letter from "ENERO"): never corrected into a month."""
    from detectors.ocr_expiry.keywords import TABLES  # keywords imports this module

    return frozenset(w for table in TABLES.values() for ws in table.values() for k in ws for w in normalize(k).split())


def _month_fix(word: str) -> str | None:
    """The month name `word` is a misread of, when exactly one month fits: any one letter in
    full names of five letters and more ("OPRILE", "SEPTAMBER"), two in names of eight and more
    ("OMCEMBER"), a look-alike in shorter ones ("OIC" for "DIC")."""
    if word in MONTH_LOOKUP or word in _protected_words():
        return None
    fits: dict[int, str] = {}
    for name, month in MONTH_LOOKUP.items():
        if len(name) != len(word) or not name.isalpha():
            continue
        diff = [(a, b) for a, b in zip(word, name, strict=True) if a != b]
        if (len(diff) == 1 and (len(word) >= 5 or diff[0] in _LETTER_LOOKALIKES)) or (
            len(diff) == 2 and len(word) >= 8
        ):
            fits.setdefault(month, name)
    return next(iter(fits.values())) if len(fits) == 1 else None


def _fix_month_tokens(norm: str) -> str:
    """Correct a misread month name beside a date's digits ("14 OPRILE 2027"), same length."""
    out = norm
    for m in _MONTH_CONTEXT.finditer(norm):
        before, after = norm[: m.start()], norm[m.end() :]
        if not (_DATE_NEIGHBOUR_BEFORE.search(before) or _DATE_NEIGHBOUR_AFTER.match(after)):
            continue
        fixed = _month_fix(m.group("w"))
        if fixed is not None:
            out = out[: m.start()] + fixed + out[m.end() :]
    return out


# --- the parsed value ----------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedDate:
    """A date read from text; `day` is None when the print has no day (month precision)."""

    year: int
    month: int
    day: int | None
    span: tuple[int, int]
    text: str
    order: str
    """Which reading was used: DMY, MDY, YMD, MY, YM (numeric) or NAMED (month name)."""
    candidates: tuple[YMDTuple, ...] = ()
    """Every plausible reading of the same characters, the chosen one first."""
    certainty: float = 1.0
    """How sure the grammar is of the reading: lower for ambiguous orders and weak shapes."""
    range_role: Literal["start", "end"] | None = None
    """Set when the date is one end of a printed range ("from ... until ...")."""
    has_time: bool = False
    """A clock time is printed right after the date (typical of production stamps)."""
    repair: str | None = None
    """Set when the date was read only after one misread digit was taken for a 0: what was
    printed as read and what was taken ("2928 -> 2028")."""

    @property
    def precision(self) -> Precision:
        return "day" if self.day is not None else "month"

    @property
    def ambiguous(self) -> bool:
        return len(self.candidates) > 1

    @property
    def iso(self) -> str:
        """YYYY-MM-DD, or YYYY-MM for month precision."""
        if self.day is None:
            return f"{self.year:04d}-{self.month:02d}"
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"

    @property
    def ymd(self) -> YMDTuple:
        return (self.year, self.month, self.day)

    def last_day(self) -> date:
        """The last day the date covers: the day itself, or the month's end for month precision."""
        day = self.day or calendar.monthrange(self.year, self.month)[1]
        return date(self.year, self.month, day)

    def first_day(self) -> date:
        return date(self.year, self.month, self.day or 1)


def iso_of(ymd: YMDTuple) -> str:
    y, m, d = ymd
    return f"{y:04d}-{m:02d}" if d is None else f"{y:04d}-{m:02d}-{d:02d}"


def parse_iso(value: str) -> YMDTuple:
    """Inverse of `iso_of`: 'YYYY-MM-DD' or 'YYYY-MM'."""
    parts = value.split("-")
    if len(parts) == 3:
        return (int(parts[0]), int(parts[1]), int(parts[2]))
    if len(parts) == 2:
        return (int(parts[0]), int(parts[1]), None)
    raise ValueError(f"not an ISO date or year-month: {value!r}")


# --- patterns --------------------------------------------------------------------------------

_SEP = r"(?:\s?[./\-,_]\s?|\s)"
"""Between a date's fields: OCR reads the space of a small print as "_" too ("11 APR_2021")."""
_Y4 = r"(?:19|20)\d\d"
_SP = r"[\s_]?"
"""Around a CJK year, month or day marker: a space, which OCR may read as "_", or none."""
_CJK_DAY = rf"(?:{_SP}(?P<d>\d{{1,2}}){_SP}[日일])?"
_CONFUSABLE = {"I": "I1|", "O": "O0", "B": "B80", "D": "D0C"}
"""Letters OCR often reads as look-alikes inside month names ("MAl", "N0V", "FE8"), with the
look-alikes: left to the digits, "FE8/21/27" would read as the 21st of August. An inkjet D that
loses the dots of its upright reads C ("CEZ 2026" for DEZ on a development seed's print)."""
_LAST_I = r"(?:[I|]|1(?![0-9])|1(?=(?:19|20)\d\d(?![0-9])))"
"""A month name's last I read as 1 only where no digit follows, or a glued year ("MA12027"):
in "2022JUL13" the 1 is the day's (JUL 13), not the German JULI's (which gave the 3rd)."""


def _month_pattern(name: str) -> str:
    """Regex for one month name with its letters' look-alikes (`_CONFUSABLE`, `_LAST_I`)."""
    body = "".join(_letter_class(c) for c in name[:-1])
    return body + (_LAST_I if name[-1] == "I" else _letter_class(name[-1]))


def _letter_class(letter: str) -> str:
    """A month name's letter as a regex that also takes its look-alikes."""
    return f"[{re.escape(_CONFUSABLE[letter])}]" if letter in _CONFUSABLE else letter


_MON = "(?:" + "|".join(_month_pattern(n) for n in sorted(MONTH_LOOKUP, key=len, reverse=True)) + r")\.?"
_NB = r"(?<![0-9])"  # not preceded by a digit
_NOT_HOUR = r"(?!:[0-9OD?]|H[0-5][0-9])"
"""A field followed by a time's minutes is the hour: in "2027-06 14:30" the 14 is no day, and in
"FEB 14:30" no year."""
_NA = rf"(?![0-9?·•]){_NOT_HOUR}"
"""Not followed by a digit, nor by a glyph OCR could not read ("2027-01-1?"), nor by minutes."""
_LB = r"(?<![A-Z])"
_SHORT_NB = r"(?<![0-9$€£%&*#+=~^@_\\])(?<![0-9][./\-])"
"""Before a month-year shape: not a digit, junk symbol or digit and separator, so the tail of a
garbled day-month-year ("24/$7/28") is not read as a month and year."""
_SHORT_NA = rf"(?![0-9])(?!\s?[./\-]\s?[0-9]){_NOT_HOUR}"
"""After a month-year shape: no separator and digit, so the head of a day-month-year with a
garbled year ("08/28/202€") is not read as a month and year."""
_LA = r"(?![A-Z])"
_DAY_ORD = r"(?P<d>\d{1,2})(?:ST|ND|RD|TH|ER)?"
"""A day beside a month name, with its ordinal suffix if printed ("5TH MARCH", French "1ER MARS")."""
_OF = r"(?:(?:OF|DE|DEL)\s)?"
"""The word that may join a day, a month name and a year ("2ND OF MAY", "5 DE MARZO DE 2027")."""
ROMAN_MONTHS = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")
"""Months in Roman numerals, as Polish, Czech, Hungarian and Romanian prints write them between
a day and a year ("15.III.2025"); only there, where nothing else reads as a numeral."""
_ROMAN = "|".join(sorted(ROMAN_MONTHS, key=len, reverse=True))
BILINGUAL_MONTHS = ("JA", "FE", "MR", "AL", "MA", "JN", "JL", "AU", "SE", "OC", "NO", "DE")
"""Canada's bilingual two-letter month symbols, printed between a year and a day on a best-before
date ("BB/MA 2027 JA 15"); only there: as words they are English and French ("NO", "DE")."""
_BILINGUAL = "|".join(BILINGUAL_MONTHS)


def _p(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


MONTH_YEAR2_CERTAINTY = 0.6
"""Trust in a month and two-digit year ("11/27"): the shape of many codes, a size or a score."""

# (name, pattern, base certainty). Group names: y4/y2 year, m month number, mon month name,
# d day, a/b/c ambiguous 1-2 digit fields.
_PATTERNS: list[tuple[str, re.Pattern[str], float]] = [
    ("cjk", _p(rf"{_NB}(?P<y4>{_Y4}){_SP}[年년]{_SP}(?P<m>\d{{1,2}}){_SP}[月월]{_CJK_DAY}"), 1.0),
    ("y4md", _p(rf"{_NB}(?P<y4>{_Y4})(?P<s>{_SEP})(?P<m>\d{{1,2}})(?P=s)(?P<d>\d{{1,2}}){_NA}"), 1.0),
    ("y4md_mixed", _p(rf"{_NB}(?P<y4>{_Y4})(?P<s1>{_SEP})(?P<m>\d{{1,2}})(?P<s2>{_SEP})(?P<d>\d{{1,2}}){_NA}"), 0.9),
    ("aby4", _p(rf"{_NB}(?P<a>\d{{1,2}})(?P<s>{_SEP})(?P<b>\d{{1,2}})(?P=s)(?P<y4>{_Y4}){_NA}"), 1.0),
    ("aby4_mixed", _p(rf"{_NB}(?P<a>\d{{1,2}})(?P<s1>{_SEP})(?P<b>\d{{1,2}})(?P<s2>{_SEP})(?P<y4>{_Y4}){_NA}"), 0.9),
    ("abc", _p(rf"{_NB}(?P<a>\d{{1,2}})(?P<s>{_SEP})(?P<b>\d{{1,2}})(?P=s)(?P<c>\d{{2}}){_NA}"), 0.95),
    ("compact8", _p(rf"(?<![0-9A-Z])(?P<digits>\d{{8}}){_NA}"), 0.85),
    ("y_bil_d", _p(rf"{_NB}(?P<y>{_Y4}|\d{{2}})\s?(?P<bil>{_BILINGUAL}){_LA}\s?(?P<d>\d{{1,2}}){_NA}"), 0.9),
    ("d_rom_y", _p(rf"{_NB}(?P<d>\d{{1,2}})(?P<s>{_SEP})(?P<rom>{_ROMAN})(?P=s)(?P<y>{_Y4}|\d{{2}}){_NA}"), 0.95),
    ("d_mon_y", _p(rf"{_NB}{_DAY_ORD}{_SEP}?{_OF}{_LB}(?P<mon>{_MON}){_LA}{_SEP}?{_OF}(?P<y>{_Y4}|\d{{2}}){_NA}"), 1.0),
    ("mon_d_y", _p(rf"{_LB}(?P<mon>{_MON}){_LA}{_SEP}?{_DAY_ORD}(?:{_SEP}|,\s?)(?P<y>{_Y4}|\d{{2}}){_NA}"), 1.0),
    ("y_mon_d", _p(rf"{_NB}(?P<y>{_Y4}){_SEP}?{_LB}(?P<mon>{_MON}){_LA}{_SEP}?(?P<d>\d{{1,2}}){_NA}"), 1.0),
    ("mon_y4", _p(rf"{_LB}(?P<mon>{_MON}){_LA}{_SEP}?{_OF}(?P<y>{_Y4}){_NA}"), 1.0),
    ("y4_mon", _p(rf"{_NB}(?P<y>{_Y4}){_SEP}?{_LB}(?P<mon>{_MON}){_LA}"), 0.9),
    # "FEB 26" is a month and year only when no year follows ("FEB. 26 AOUT 2026" is a misread label)
    ("mon_y2", _p(rf"{_LB}(?P<mon>{_MON}){_LA}{_SEP}?(?P<y>\d{{2}}){_SHORT_NA}(?!.{{0,14}}(?:19|20)\d\d)"), 0.8),
    ("m_y4", _p(rf"{_SHORT_NB}(?P<m>\d{{1,2}}){_SEP}(?P<y4>{_Y4}){_SHORT_NA}"), 0.95),
    ("y4_m", _p(rf"{_SHORT_NB}(?P<y4>{_Y4})(?:\s?[./\-]\s?|\s(?=\d\d))(?P<m>\d{{1,2}}){_SHORT_NA}"), 0.85),
    ("m_y2", _p(rf"{_SHORT_NB}(?P<m>\d{{1,2}})\s?/\s?(?P<y2>\d{{2}}){_SHORT_NA}"), MONTH_YEAR2_CERTAINTY),
]  # fmt: skip

_RANGE_LINK = re.compile(
    r"^\s*(?:~|-|TO|TILL|UNTIL|BIS|AU|JUSQU'?AU|AL|HASTA|A|ATE|FINO\s+AL|TOT|DO|TIL|至|到|까지|부터\s*~?|から|まで)\s*$"
)
_TIME_AFTER = re.compile(r"^\s?[/\- ]?\s?(?:[01]?\d|2[0-3])[:.h][0-5]\d(?![0-9])")


def month_of(token: str) -> int | None:
    """Month number of a month-name token, allowing the look-alikes in `_CONFUSABLE`."""
    token = token.rstrip(".")
    if token in MONTH_LOOKUP:
        return MONTH_LOOKUP[token]
    months = {
        m
        for name, m in MONTH_LOOKUP.items()
        if len(name) == len(token)
        and all(
            a == b or a in _CONFUSABLE.get(b, "") or (b == "I" and a == "L") for a, b in zip(token, name, strict=True)
        )
    }
    return months.pop() if len(months) == 1 else None


def _year(token: str) -> int:
    return int(token) if len(token) == 4 else 2000 + int(token)


def _valid(y: int, m: int, d: int | None) -> bool:
    if not (1 <= m <= 12 and 1900 <= y <= 2099):
        return False
    return d is None or 1 <= d <= calendar.monthrange(y, m)[1]


@dataclass
class _Match:
    start: int
    end: int
    kind: str
    readings: list[tuple[str, YMDTuple]] = field(default_factory=list)
    certainty: float = 1.0


def _readings(kind: str, g: dict[str, str | None]) -> list[tuple[str, YMDTuple]]:
    """Every calendar-valid reading of one match, as (order, (y, m, d))."""
    out: list[tuple[str, YMDTuple]] = []
    if kind == "cjk" or kind.startswith("y4md"):
        out.append(("YMD", (int(g["y4"]), int(g["m"]), int(g["d"]) if g.get("d") else None)))
    elif kind.startswith("aby4"):
        a, b, y = int(g["a"]), int(g["b"]), int(g["y4"])
        out += [("DMY", (y, b, a)), ("MDY", (y, a, b))]
    elif kind == "abc":
        a, b, c = g["a"], g["b"], g["c"]
        out += [("DMY", (_year(c), int(b), int(a))), ("MDY", (_year(c), int(a), int(b)))]
        if len(a) == 2:
            out.append(("YMD", (_year(a), int(b), int(c))))
    elif kind == "compact8":
        s = g["digits"]
        out += [("YMD", (int(s[:4]), int(s[4:6]), int(s[6:])))]
        out += [("DMY", (int(s[4:]), int(s[2:4]), int(s[:2]))), ("MDY", (int(s[4:]), int(s[:2]), int(s[2:4])))]
    elif kind == "y_bil_d":
        out.append(("NAMED", (_year(g["y"]), BILINGUAL_MONTHS.index(g["bil"]) + 1, int(g["d"]))))
    elif kind == "d_rom_y":
        out.append(("NAMED", (_year(g["y"]), ROMAN_MONTHS.index(g["rom"]) + 1, int(g["d"]))))
    elif g.get("mon"):
        month = month_of(g["mon"])
        if month is None:
            return []
        year = _year(g["y"])
        day = int(g["d"]) if g.get("d") else None
        out.append(("NAMED", (year, month, day)))
    elif kind in ("m_y4", "y4_m"):
        out.append(("MY" if kind == "m_y4" else "YM", (int(g["y4"]), int(g["m"]), None)))
    elif kind == "m_y2":
        out.append(("MY", (_year(g["y2"]), int(g["m"]), None)))
    seen: set[YMDTuple] = set()
    valid = []
    for order, ymd in out:
        if _valid(*ymd) and ymd not in seen:
            seen.add(ymd)
            valid.append((order, ymd))
    return valid


_SPACED_FIELDS = ("a", "b", "c", "m", "d")


def _split_number(groups: dict[str, str | None]) -> bool:
    """Numeric fields spaced apart with a one-digit day or month ("1 1 2021"): a number the OCR
    broke in two ("11 APR 2021" read without its month), not a date. Printed dates with spaces
    alone between fields pad them ("01 11 2021")."""
    separators = [groups.get(k) for k in ("s", "s1", "s2")]
    if not any(sep and sep.isspace() for sep in separators):
        return False
    return any(len(field) == 1 for k in _SPACED_FIELDS if (field := groups.get(k)))


def _in_window(ymd: YMDTuple, today: date) -> bool:
    y, m, _ = ymd
    months = (y - today.year) * 12 + (m - today.month)
    return -12 * WINDOW_YEARS_BACK <= months <= 12 * WINDOW_YEARS_AHEAD


def _rank(readings: list[tuple[str, YMDTuple]], order: Order, today: date) -> list[tuple[str, YMDTuple]]:
    """Hint order first, then the other numeric orders, then closeness to today."""
    preference = {"DMY": 1, "MDY": 2, "YMD": 3, order: 0}

    def key(item: tuple[str, YMDTuple]) -> tuple[int, int]:
        o, (y, m, _) = item
        return (preference.get(o, 0), abs((y - today.year) * 12 + m - today.month))

    return sorted(readings, key=key)


def _scan(norm: str) -> tuple[list[_Match], list[tuple[int, int]]]:
    """Non-overlapping date matches, and the spans of date shapes that are no calendar date."""
    found: list[_Match] = []
    invalid: list[tuple[int, int]] = []
    for kind, pattern, certainty in _PATTERNS:
        for m in pattern.finditer(norm):
            split = _split_number(m.groupdict())
            if split and m.start() > 0 and norm[m.start() - 1].isalpha():
                # its one-digit first field ends a word ("B3 08/2027": "BB" misread), so the shape is
                # neither a date nor a number broken in two, and the date after it stands
                continue
            readings = [] if split else _readings(kind, m.groupdict())
            if readings:
                found.append(_Match(m.start(), m.end(), kind, readings, certainty))
            else:
                invalid.append((m.start(), m.end()))
    # A shorter date inside a longer shape that is no valid date ("70.10.2026" -> "10.2026")
    # would be a guess about a misread: the longer shape was misread, so nothing is taken.
    found = [c for c in found if not any(s <= c.start and c.end <= e and e - s > c.end - c.start for s, e in invalid)]
    # Longest first, then pattern priority: keep non-overlapping matches.
    priority = {kind: i for i, (kind, _, _) in enumerate(_PATTERNS)}
    found.sort(key=lambda x: (-(x.end - x.start), priority[x.kind], x.start))
    kept: list[_Match] = []
    for cand in found:
        if all(cand.end <= k.start or cand.start >= k.end for k in kept):
            kept.append(cand)
    return sorted(kept, key=lambda x: x.start), invalid


def _misread_as_ymd(match: _Match, plausible: list[tuple[str, YMDTuple]], order: Order) -> bool:
    """A two-digit a.b.c date whose only reading is YY.MM.DD, on a product printed DD.MM.YY or
    MM.DD.YY: the hinted reading is no calendar date ("36.04.26": day 36), so a digit was
    misread ("30" -> "36"), and taking it as 2036-04-26 would pass an expired item. A hinted
    reading that is a real date outside the window ("25.04.03": 2003) still yields to YY.MM.DD."""
    if match.kind != "abc" or order not in ("DMY", "MDY"):
        return False
    hinted_is_a_date = any(o == order for o, _ in match.readings)
    return not hinted_is_a_date and all(o == "YMD" for o, _ in plausible)


def parse_dates(text: str, *, order: Order = "DMY", today: date | None = None) -> list[ParsedDate]:
    """All dates in `text`, left to right.

    `order` is the market's reading of ambiguous all-numeric dates; `today` centres the
    plausibility window (readings outside it are dropped). A date-shaped token that reads as
    no date may still be read with one digit repaired (see `_repaired_dates`). Never raises on
    any string.
    """
    if not isinstance(text, str) or not text:
        return []
    today = today or date.today()
    norm = _fix_month_tokens(_fix_digit_tokens(_unglue_labels(_fold(text))))
    dates, invalid, cut = _dates_in(norm, text, order, today)
    dates += _repaired_dates(norm, text, order, today, dates, invalid, cut)
    return _mark_ranges(norm, sorted(dates, key=lambda d: d.span))


Spans = list[tuple[int, int]]


def _dates_in(norm: str, text: str, order: Order, today: date) -> tuple[list[ParsedDate], Spans, Spans]:
    """The dates of a normalised text (spans and `text` from the original, same length), the
    spans of date shapes that are no calendar date, and of those the spans of dates cut short by
    a misread glyph (`_cut_short`)."""
    matches, invalid = _scan(norm)
    dates: list[ParsedDate] = []
    cut: Spans = []
    for match in matches:
        longer = _cut_short(norm, match)
        if longer is not None:
            invalid.append(longer)
            cut.append(longer)
        elif (d := _parsed(match, norm, text, order, today)) is not None:
            dates.append(d)
    return dates, invalid, cut


_SHAPE_LOOKALIKES = {"O": "0", "Q": "0", "D": "0", "U": "0", "I": "1/", "L": "1/", "|": "1/", "!": "1/"} | {
    "T": "7", "Z": "2", "S": "5", "B": "8", "G": "60", "?": "012"
}  # fmt: skip
"""Digits a misread glyph beside a date's digits may stand for (G for 6 or 0; "?", unreadable, for
the first digit of a year, a month or a day; a stroke for a slash as well: "SEPI05/28" is the 5th of
September). Only used to ask whether the digits read are part of a longer date shape, never to
read a value."""
_GAP_BEFORE = re.compile(r"\s?[./\-,_]?\s?$")
_GAP_AFTER = re.compile(r"\s?[./\-,_]?\s?")
"""What may stand between a date and characters that may be the garbled rest of it: a separator."""
_FIELD_REST = 4
"""How many characters beside a date may be the garbled rest of it (a year's width)."""
_GLUED_REST = 5
"""How many glued characters after a date may be the garbled rest of it: a separator misread as
a letter and the last field ("21I27", "20I2026")."""
_GLUED_DIGITS = re.compile(r"[A-Z?|!]+[0-9?][0-9A-Z?|!]*(?![0-9A-Z?|!])")
"""A token glued to a date's end that turns from a glyph to digits (`_GLUED_REST` long at most)."""
_OPENS_ON_SEPARATOR = re.compile(r"(?:^|[\s0-9])[./\-]\d$")
"""A numeric date's first digit right after a separator that follows no label (`_cut_short`)."""
_GLYPH = re.compile(r"[0-9A-Z?|!]")
"""A character a token of a print is made of; anything else ends the token."""


def _cut_short(norm: str, match: _Match) -> tuple[int, int] | None:
    """The span of the longer date shape that `match` is the readable part of, or None.

    A misread glyph in one field leaves the others readable as a shorter date: "FEB 21 2D27"
    read as February 2021, "Z1 FEB 2027" as the 1st, "20?7.02.21" as 7 February 2021, each a
    wrong date where none should be read. The few characters beside the date (`_garbled_rests`)
    are taken as digits every way `_SHAPE_LOOKALIKES` allows; the date was cut short when one way
    makes a longer calendar date around it that reads otherwise ("?1 FEB" may be the 21st). A way
    that makes no calendar date was not printed: "G9.05.2027" is the 9th, as "69" is no day, and
    a leading 0 read as D changes nothing. Digits glued to the date's end behind a letter are
    such a rest as well ("FEB/21I27": a separator misread), and so is a separator the date
    opens with where no label precedes it ("/04/25": a crop cut "14/04/25" at its first field)."""
    start, end = match.start, match.end
    if _OPENS_ON_SEPARATOR.search(norm, 0, start + 1) and norm[start].isdigit():
        return (start - 1, end)
    glued = _GLUED_DIGITS.match(norm, end)
    if glued is not None and len(glued.group()) <= _GLUED_REST and norm[end - 1].isdigit():
        return (start, glued.end())
    own = {ymd for _, ymd in match.readings}
    for a, b in _garbled_rests(norm, start, end):
        glyphs = sorted({c for c in norm[a:b] if c in _SHAPE_LOOKALIKES})
        for digits in itertools.product(*(_SHAPE_LOOKALIKES[g] for g in glyphs)):
            wide = norm[:a] + norm[a:b].translate(str.maketrans(dict(zip(glyphs, digits, strict=True)))) + norm[b:]
            for longer in _scan(wide)[0]:
                around = longer.start <= start and end <= longer.end and longer.end - longer.start > end - start
                if around and not {ymd for _, ymd in longer.readings} & own:
                    return (longer.start, longer.end)
    return None


def _garbled_rests(norm: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans beside the date at `start:end` that may be its garbled rest, nearest first: up to
    `_FIELD_REST` digits and look-alike glyphs touching it or a separator from it (`_may_be_rest`)."""
    out: list[tuple[int, int]] = []
    near = start - len(_GAP_BEFORE.search(norm[:start]).group())
    for width in range(1, _FIELD_REST + 1):
        if near - width < 0 or not _may_be_digit(norm[near - width]):
            break
        out.append((near - width, near))
    near = end + len(_GAP_AFTER.match(norm, end).group())
    for width in range(1, _FIELD_REST + 1):
        if near + width > len(norm) or not _may_be_digit(norm[near + width - 1]):
            break
        out.append((near, near + width))
    return [(a, b) for a, b in out if _may_be_rest(norm, a, b, start, end)]


def _may_be_rest(norm: str, a: int, b: int, start: int, end: int) -> bool:
    """Whether `norm[a:b]` may be the garbled rest of the date at `start:end`: not all digits and
    a whole token, not the head of a code ("FEB 27 L2G11A": a lot code after a month and year);
    a separator away, holding a digit or "?" (a word is no field). Letters glued before the date
    that end a longer word are the word's (`checker.run_on_word` doubts such a date:
    "BARKWEL1/10/27"), unless the word is a month name ("FEBZ1 2027": February, and a day one
    glyph of is misread)."""
    rest = norm[a:b]
    holds_digit = any(c.isdigit() or c == "?" for c in rest)
    if rest.isdigit():
        return False
    token_starts = a == 0 or not _GLYPH.match(norm[a - 1])
    token_ends = b == len(norm) or not _GLYPH.match(norm[b])
    if b == start:
        return holds_digit or token_starts or re.search(r"[A-Z]*$", norm[:a]).group() in MONTH_LOOKUP
    if a == end:
        return token_ends
    return holds_digit and (token_starts if b < start else token_ends)


def _may_be_digit(ch: str) -> bool:
    return ch.isdigit() or ch in _SHAPE_LOOKALIKES


def _parsed(match: _Match, norm: str, text: str, order: Order, today: date) -> ParsedDate | None:
    """The date a match reads as: its likeliest reading in the plausibility window, or None."""
    plausible = [r for r in match.readings if _in_window(r[1], today)]
    if not plausible or _misread_as_ymd(match, plausible, order):
        return None
    ranked = _rank(plausible, order, today)
    chosen_order, (y, m, d) = ranked[0]
    certainty = match.certainty
    if len(ranked) > 1:
        certainty *= 0.85 if chosen_order == order else 0.6
    return ParsedDate(
        year=y,
        month=m,
        day=d,
        span=(match.start, match.end),
        text=text[match.start : match.end],
        order=chosen_order,
        candidates=tuple(r[1] for r in ranked),
        certainty=round(certainty, 4),
        has_time=bool(_TIME_AFTER.match(norm[match.end :])),
    )


_LABELLED_COMPACT = re.compile(r"[\s.:]{0,2}(?P<digits>\d{6}|\d{8})(?![0-9])")
COMPACT6_CERTAINTY = 0.7
"""Trust in six digits read as a date because a date label runs into them ("EXP 150325"): the
market's order is the only reading taken, and nothing but the label says it is a date."""
_LABELLED_MONTH_YEAR = re.compile(
    rf"[\s.:]{{0,2}}(?P<a>\d{{1,2}})(?:\s?[.\-]\s?|\s)(?P<b>\d{{1,2}})"
    rf"(?![0-9A-Z?·•|!])(?!\s?[./\-,]\s?[0-9A-Z?])(?!\s[0-9]){_NOT_HOUR}"
)
"""A month and two-digit year straight after a date label, joined by a dot, dash or space: "EXP
11-21", "BB 08.23", "EXP 11 23", and year first where the market prints dates year first
("賞味期限 27.03", Japan's year and month for long-lived food). Unlabelled they are as likely
a price, a size or a range, and stay unread. Nothing may run on from it: "26.1?.12" is a
year-month-day whose month the recogniser could not read, not January 2026."""
LABELLED_MONTH_YEAR_BACK = 24
"""How many months before today a labelled month-year may lie. Its shape is also what is left of
a day-month-year whose year the recogniser lost ("EXP 05.11" of "05.11.27"): read as a month
and year, a day and month within the grammar's ten-year window would be an old expiry; the
window is cut so that no current day and month reads as one (a real expiry this old is rare)."""


def labelled_dates(
    text: str, label_ends: Sequence[int], *, order: Order = "DMY", today: date | None = None
) -> list[ParsedDate]:
    """Dates read only because a date label (`label_ends`: where each ends in `text`) runs
    straight into them: six digits in the market's order ("EXP 150325", "賞味期限 250315"), eight
    glued to the label ("EXP20250315", where `parse_dates` sees one word), and a month and
    two-digit year joined by a dot, dash or space ("EXP 11-21", `_LABELLED_MONTH_YEAR`). Unlabelled,
    six digits are as likely a lot, batch or price code and stay unread. Never raises."""
    if not isinstance(text, str) or not text:
        return []
    today = today or date.today()
    norm = normalize(text)
    dates: list[ParsedDate] = []
    for end in sorted(set(label_ends)):
        if not 0 <= end <= len(norm):
            continue
        month_year = _LABELLED_MONTH_YEAR.match(norm, end)
        if month_year is not None:
            parsed = _labelled_month_year(month_year, norm, text, order, today)
            if parsed is not None and all(d.span != parsed.span for d in dates):
                dates.append(parsed)
            continue
        found = _LABELLED_COMPACT.match(norm, end)
        if found is None:
            continue
        digits, (start, stop) = found.group("digits"), found.span("digits")
        if len(digits) == 8:
            if start == 0 or not norm[start - 1].isalpha():
                continue  # spaced from its label: `parse_dates` reads it
            match = _Match(start, stop, "compact8", _readings("compact8", {"digits": digits}), 0.85)
        else:
            a, b, c = int(digits[:2]), int(digits[2:4]), int(digits[4:])
            ymd: YMDTuple = {"DMY": (2000 + c, b, a), "MDY": (2000 + c, a, b), "YMD": (2000 + a, b, c)}[order]
            readings = [(order, ymd)] if _valid(*ymd) else []
            match = _Match(start, stop, "compact6", readings, COMPACT6_CERTAINTY)
        parsed = _parsed(match, norm, text, order, today)
        if parsed is not None and all(d.span != parsed.span for d in dates):
            dates.append(parsed)
    return dates


def _labelled_month_year(found: re.Match[str], norm: str, text: str, order: Order, today: date) -> ParsedDate | None:
    """The month and year of a `_LABELLED_MONTH_YEAR` match in the market's order (year first for
    YMD), within `LABELLED_MONTH_YEAR_BACK`."""
    year_first = order == "YMD"
    y2, m = (found.group("a"), found.group("b")) if year_first else (found.group("b"), found.group("a"))
    if len(y2) != 2:
        return None
    ymd: YMDTuple = (_year(y2), int(m), None)
    if not _valid(*ymd) or (ymd[0] - today.year) * 12 + ymd[1] - today.month < -LABELLED_MONTH_YEAR_BACK:
        return None
    readings = [("YM" if year_first else "MY", ymd)]
    match = _Match(found.start("a"), found.end("b"), "m_y2", readings, MONTH_YEAR2_CERTAINTY)
    return _parsed(match, norm, text, order, today)


ZERO_MISREADS = "986"
"""Digits PP-OCR returns for a printed 0 on dot-matrix and inkjet prints (the dots inside and
around the 0 close into a 9, 8 or 6): "2928" for 2028, "99/06/26" for 09/06/26, "2628"."""
REPAIR_CERTAINTY = 0.5
"""Trust in a date read only after a digit repair, on top of the shape's own certainty."""
_DIGIT_TOKEN = re.compile(r"(?<![0-9])[0-9]+(?:[./\-][0-9]+)*(?![0-9A-Z])")
"""Digits and separators; a letter may precede them (a month name: "JUL2926")."""
_REPAIR_DIGITS = (4, 8)
"""Only tokens with this many digits are repaired: a year, a date; not phone or barcode numbers."""


def _repaired_dates(
    norm: str, text: str, order: Order, today: date, found: list[ParsedDate], invalid: Spans, cut: Spans
) -> list[ParsedDate]:
    """Dates in digit tokens that read as no date, read with one of their digits taken for the
    0 it is often misread from (`ZERO_MISREADS`). The tokens: 4 to 8 digits (a year, a numeric
    date), or any digits inside a date shape that is no calendar date ("88 NOVEMBRE 2026").

    A token is repaired only when exactly one date results from all its single repairs: two
    different dates mean the misread cannot be undone and the token stays unread (review).
    A repair only lowers a digit, so a repaired date is never later than what was read, and an
    expired item is not passed by a repair. The date's certainty is cut by `REPAIR_CERTAINTY`
    and `ParsedDate.repair` says what was changed. A date cut short by a misread glyph (`cut`)
    is not repaired: its misread is another glyph ("2D26 FEB 20" is no 20 February 2020)."""
    taken = [d.span for d in found] + cut
    out: list[ParsedDate] = []
    for tok in _DIGIT_TOKEN.finditer(norm):
        digits = sum(c.isdigit() for c in tok.group())
        in_shape = any(s <= tok.start() and tok.end() <= e for s, e in invalid)
        if not (_REPAIR_DIGITS[0] <= digits <= _REPAIR_DIGITS[1] or in_shape):
            continue
        if any(s < tok.end() and tok.start() < e for s, e in taken):
            continue
        results: dict[str, tuple[ParsedDate, str]] = {}
        for i, ch in enumerate(tok.group()):
            if ch not in ZERO_MISREADS:
                continue
            pos = tok.start() + i
            alt = norm[:pos] + "0" + norm[pos + 1 :]
            fixed = tok.group()[:i] + "0" + tok.group()[i + 1 :]
            for d in _dates_in(alt, text, order, today)[0]:
                clear = not any(s < d.span[1] and d.span[0] < e for s, e in taken)
                if d.span[0] <= pos < d.span[1] and clear:
                    results.setdefault(d.iso, (d, f"{tok.group()} -> {fixed}"))
        if len(results) == 1:
            d, repair = next(iter(results.values()))
            out.append(replace(d, certainty=round(d.certainty * REPAIR_CERTAINTY, 4), repair=repair))
            taken.append(d.span)
    return out


def _mark_ranges(norm: str, dates: list[ParsedDate]) -> list[ParsedDate]:
    """Two dates joined by a range word or sign ("~", "until", "bis" ...) are a from-until pair."""
    out = list(dates)
    for i in range(len(out) - 1):
        first, second = out[i], out[i + 1]
        between = norm[first.span[1] : second.span[0]]
        if _RANGE_LINK.match(between) and first.last_day() <= second.last_day():
            out[i] = replace(first, range_role="start")
            out[i + 1] = replace(second, range_role="end")
    return out


def parse_date(text: str, *, order: Order = "DMY", today: date | None = None) -> ParsedDate | None:
    """The first date in `text`, or None."""
    found = parse_dates(text, order=order, today=today)
    return found[0] if found else None


# --- rendering (the inverse, for tests and the simulator) ------------------------------------

STYLES: dict[str, Order | None] = {
    "DD/MM/YYYY": "DMY",
    "DD.MM.YYYY": "DMY",
    "DD-MM-YYYY": "DMY",
    "MM/DD/YYYY": "MDY",
    "YYYY-MM-DD": "YMD",
    "YYYY.MM.DD": "YMD",
    "YYYY/MM/DD": "YMD",
    "DD.MM.YY": "DMY",
    "DD/MM/YY": "DMY",
    "MM/DD/YY": "MDY",
    "YY.MM.DD": "YMD",
    "DD MM YY": "DMY",
    "DD MM YYYY": "DMY",
    "YYYYMMDD": "YMD",
    "DDMMYYYY": "DMY",
    "DD MON YYYY": None,
    "DD-MON-YY": None,
    "DDMONYY": None,
    "MON DD YYYY": None,
    "MON DD, YYYY": None,
    "MON/DD/YY": None,
    "YYYY MON DD": None,
    "DD MONTH YYYY": None,
    "MON YYYY": None,
    "MONYYYY": None,
    "MONTH YYYY": None,
    "MON YY": None,
    "MM/YYYY": None,
    "MM.YYYY": None,
    "MM/YY": None,
    "YYYY-MM": None,
    "YYYY年MM月DD日": "YMD",
    "YYYY年MM月": None,
    "YYYY년 MM월 DD일": "YMD",
}
"""Printable styles -> the order hint that reads them back (None: unambiguous)."""

MONTH_PRECISION_STYLES = frozenset(s for s in STYLES if "DD" not in s)


def _month_name(month: int, lang: str, full: bool) -> str:
    names = [n for n, m in MONTHS[lang].items() if m == month]
    names.sort(key=len, reverse=full)
    return names[0]


def render_date(year: int, month: int, day: int | None, style: str, lang: str = "en") -> str:
    """Print a date the way a package would, e.g. ("DD MON YYYY", "fr") -> "11 AVR 2021"."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; known: {sorted(STYLES)}")
    if day is None and style not in MONTH_PRECISION_STYLES:
        raise ValueError(f"style {style!r} needs a day")
    if lang not in MONTHS:
        raise ValueError(f"no month names for language {lang!r}; known: {sorted(MONTHS)}")
    subs = {
        "YYYY": f"{year:04d}",
        "YY": f"{year % 100:02d}",
        "MM": f"{month:02d}",
        "DD": f"{day:02d}" if day is not None else "",
        "MONTH": _month_name(month, lang, full=True),
        "MON": _month_name(month, lang, full=False),
    }
    return re.sub(r"YYYY|YY|MONTH|MON|MM|DD", lambda m: subs[m.group()], style)


def month_names(languages: Iterable[str] | None = None) -> dict[str, int]:
    """Month tokens of the given languages (all when None)."""
    langs = list(languages) if languages is not None else list(MONTHS)
    return {n: m for lang in langs for n, m in MONTHS[lang].items()}
