"""Multilingual words printed next to dates, and where they occur in a line of text.

A date alone says nothing about what it means; the word before it ("EXP", "MHD", "유통기한")
or after it ("까지") does. Tables are written in the same upper-case, accent-free form that
`grammar.normalize` produces, so matching is a plain regex over normalised text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

from detectors.ocr_expiry.grammar import normalize

KeywordKind = Literal["expiry", "manufactured", "lot"]

EXPIRY: dict[str, list[str]] = {
    "en": [
        "EXP", "EXPIRY", "EXPIRES", "EXPIRATION", "EXP DATE", "EXPIRY DATE", "EXPIRATION DATE", "BEST BY",
        "BEST BEFORE", "BEST BEFORE END", "BB", "BBE", "BBD", "BB DATE", "USE BY", "USE BEFORE", "SELL BY",
        "BEST IF USED BY", "BEST WHEN USED BY", "BEST IF USED BEFORE", "ENJOY BY", "USE UNTIL", "DISPLAY UNTIL",
        "BEFORE", "UNTIL", "DATE OF EXPIRY", "DOE",
    ],
    "de": [
        "MHD", "MINDESTENS HALTBAR BIS", "MINDESTENS HALTBAR BIS ENDE", "ZU VERBRAUCHEN BIS", "VERBRAUCHEN BIS",
        "HALTBAR BIS", "VERWENDBAR BIS", "VERW BIS", "VERBRAUCHSDATUM", "ABLAUFDATUM", "BIS",
    ],
    "fr": [
        "A CONSOMMER DE PREFERENCE AVANT", "A CONSOMMER DE PREFERENCE AVANT FIN", "A CONSOMMER JUSQU'AU",
        "A CONSOMMER AVANT", "DLC", "DLUO", "DDM", "DATE LIMITE", "PEREMPTION", "DATE DE PEREMPTION",
        "A UTILISER AVANT", "AVANT", "JUSQU'AU", "MEILLEUR AVANT",
    ],
    "es": [
        "CONSUMIR PREFERENTEMENTE ANTES DE", "CONSUMIR PREFERENTEMENTE ANTES DEL", "CONSUMIR ANTES DE",
        "CONSUMIR ANTES DEL", "FECHA DE CADUCIDAD", "CADUCIDAD", "CAD", "CADUCA", "VENCE", "VENCIMIENTO",
        "FECHA DE VENCIMIENTO", "VTO", "FECHA DE CONSUMO PREFERENTE", "ANTES DE", "HASTA", "FECHA DE EXPIRACION",
        "EXPIRA",
    ],
    "it": [
        "DA CONSUMARSI PREFERIBILMENTE ENTRO", "DA CONSUMARSI PREFERIBILMENTE ENTRO IL",
        "DA CONSUMARSI ENTRO", "DA CONSUMARSI ENTRO IL", "SCADENZA", "SCAD", "ENTRO", "ENTRO IL",
        "DATA DI SCADENZA", "TMC",
    ],
    "pt": [
        "CONSUMIR DE PREFERENCIA ANTES DE", "CONSUMIR ATE", "VALIDADE", "VAL", "VALIDO ATE", "VENC",
        "VENCIMENTO", "DATA DE VALIDADE", "ATE",
    ],
    "nl": ["TEN MINSTE HOUDBAAR TOT", "TE GEBRUIKEN TOT", "THT", "TGT", "HOUDBAAR TOT", "HOUDBAARHEIDSDATUM"],
    "pl": ["NAJLEPIEJ SPOZYC PRZED", "SPOZYC DO", "DATA WAZNOSCI", "WAZNE DO", "NAJLEPIEJ SPOZYC PRZED KONCEM"],
    "sv": ["BAST FORE", "BAST FORE DATUM", "SISTA FORBRUKNINGSDAG", "ANVANDS FORE"],
    "da": ["MINDST HOLDBAR TIL", "BEDST FOR", "ANVENDES SENEST"],
    "tr": ["SON KULLANMA TARIHI", "SKT", "TETT", "TAVSIYE EDILEN TUKETIM TARIHI"],
    "fi": ["PARASTA ENNEN", "VIIMEINEN KAYTTOPAIVA"],
    "cs": ["SPOTREBUJTE DO", "MINIMALNI TRVANLIVOST DO", "DATUM SPOTREBY", "MINIMALNA TRVANLIVOST DO"],
    "hu": ["MINOSEGMEGORZESI IDO", "FOGYASZTHATO", "LEJARATI IDO"],
    "ro": [
        "A SE CONSUMA DE PREFERINTA INAINTE DE", "A SE CONSUMA INAINTE DE", "DATA EXPIRARII", "EXPIRA LA",
    ],
    "id": [
        "BAIK DIGUNAKAN SEBELUM", "BAIK DIKONSUMSI SEBELUM", "KEDALUWARSA", "KADALUARSA", "TANGGAL KEDALUWARSA",
        "TGL KEDALUWARSA", "TGL KADALUARSA",
    ],
    "ms": ["TARIKH LUPUT", "GUNA SEBELUM", "BAIK DIMAKAN SEBELUM", "TAMAT TEMPOH"],
    "vi": ["HSD", "HAN SU DUNG", "NGAY HET HAN", "HAN DUNG", "HAN SD", "HD"],
    "ja": ["賞味期限", "消費期限", "使用期限", "有効期限"],
    "ko": ["유통기한", "소비기한", "유효기간", "사용기한", "품질유지기한"],
    "zh": ["保质期至", "有效期至", "到期日", "有效期", "保质期", "失效日期", "限用日期"],
}  # fmt: skip

MANUFACTURED: dict[str, list[str]] = {
    "en": [
        "MFG", "MFD", "MFG DATE", "MFD DATE", "MANUFACTURED", "MANUFACTURED ON", "DATE OF MANUFACTURE",
        "MANUFACTURE DATE", "MANUFACTURING DATE", "PROD", "PRODUCED", "PRODUCED ON", "PRODUCTION DATE",
        "PROD DATE", "PACKED", "PACKED ON", "PKD", "PACKAGED ON", "PACK DATE", "MADE ON", "MFR DATE",
        "DATE OF MFG", "DATE OF PACKING", "PKD ON", "PKG DATE", "PACKING DATE", "PACKAGING DATE",
    ],
    "de": [
        "HERST", "HERGESTELLT", "HERGESTELLT AM", "HERSTELLDATUM", "HERSTELLUNGSDATUM", "PRODUKTIONSDATUM",
        "ABGEFULLT AM", "ABGEPACKT AM", "VERPACKT AM",
    ],
    "fr": ["FABRIQUE LE", "DATE DE FABRICATION", "FAB", "EMBALLE LE", "FABRICATION", "CONDITIONNE LE"],
    "es": [
        "FECHA DE FABRICACION", "FABRICACION", "FABRICADO", "ELABORADO", "F ELAB", "ELAB", "ENVASADO", "FAB",
        "FECHA DE ELABORACION", "ELABORACION", "FECHA DE PRODUCCION", "PRODUCCION", "FECHA DE ENVASADO",
    ],
    "it": [
        "PRODOTTO IL", "DATA DI PRODUZIONE", "DATA DI PROD", "PRODUZIONE", "CONFEZIONATO IL", "CONFEZIONATO", "PROD",
    ],
    "pt": ["FABRICACAO", "DATA DE FABRICACAO", "FAB", "PRODUZIDO", "PRODUZIDO EM", "EMBALADO EM"],
    "nl": ["PRODUCTIEDATUM", "GEPRODUCEERD", "GEPRODUCEERD OP", "VERPAKT OP"],
    "pl": ["DATA PRODUKCJI", "WYPRODUKOWANO"],
    "sv": ["TILLVERKAD", "TILLVERKNINGSDATUM", "PRODUKTIONSDATUM", "PACKAD", "PACKDATUM"],
    "da": ["PRODUCERET", "PRODUKTIONSDATO", "PAKKET", "PAKKEDATO", "PRODUKSJONSDATO"],
    "tr": ["URETIM TARIHI", "URETIM", "UT", "URT"],
    "fi": ["VALMISTETTU", "VALMISTUSPAIVA", "PAKATTU", "PAKKAUSPAIVA"],
    "cs": ["DATUM VYROBY", "VYROBENO"],
    "hu": ["GYARTASI IDO", "GYARTVA", "GYARTAS"],
    "ro": ["DATA FABRICATIEI", "DATA PRODUCTIEI", "FABRICAT LA"],
    "id": ["TGL PRODUKSI", "TANGGAL PRODUKSI", "PRODUKSI", "DIPRODUKSI", "TGL PROD"],
    "ms": ["TARIKH DIBUAT", "TARIKH PEMBUATAN", "DIBUAT PADA", "TARIKH PENGELUARAN"],
    "vi": ["NSX", "NGAY SAN XUAT", "NGAY SX", "SX"],
    "ja": ["製造年月日", "製造日", "製造", "加工日", "包装日"],
    "ko": ["제조일자", "제조일", "제조", "생산일자", "생산일", "포장일"],
    "zh": ["生产日期", "生产", "製造日期", "制造日期", "包装日期"],
}  # fmt: skip

LOT: dict[str, list[str]] = {
    "en": ["LOT", "LOT NO", "BATCH", "BATCH NO", "L", "SN", "S/N", "SERIAL", "SERIAL NO", "REF", "CODE"],
    "de": ["CHARGE", "CH B", "CH.-B.", "CHARGENNUMMER"],
    "fr": ["LOT N", "NUMERO DE LOT"],
    "es": ["LOTE"],
    "vi": ["SO LO"],
    "it": ["LOTTO"],
    "pt": ["LOTE"],
    "nl": ["PARTIJ"],
    "pl": ["PARTIA", "NR PARTII"],
    "ja": ["ロット"],
    "ko": ["로트", "제조번호"],
    "zh": ["批号", "批次"],
}  # fmt: skip

AMBIGUOUS_LABELS = frozenset({"DOM"})
"""Short labels of one kind in one market that are a glyph from a label of the other kind in
another: India's DOM (date of manufacture) is also France's DDM (best before) with its middle D
read as O, which inkjet print gives often. Such a label types its date only from the print's
other dates (`classify`): beside a production date it is the expiry, beside an expiry the
production date, alone nothing."""

SUFFIXES: dict[KeywordKind, list[str]] = {
    "expiry": ["까지", "まで", "迄", "前", "到期"],
    "manufactured": ["生产", "生産", "製造", "제조"],
}
"""Words printed after the date: "2026.01.31까지" is until 2026-01-31, "2025年3月5日生产" was
produced on 5 March 2025."""

TABLES: dict[KeywordKind, dict[str, list[str]]] = {"expiry": EXPIRY, "manufactured": MANUFACTURED, "lot": LOT}

STRENGTH: dict[str, float] = {"BEFORE": 0.8, "UNTIL": 0.8, "BIS": 0.8, "AVANT": 0.8, "ANTES DE": 0.8, "HASTA": 0.8}
"""Generic words ("before", "until") type a date less surely than a dedicated label ("EXP")."""


@dataclass(frozen=True)
class KeywordHit:
    kind: KeywordKind
    keyword: str
    start: int
    end: int
    exact: bool = True

    @property
    def strength(self) -> float:
        """Generic words and misread labels type a date less surely."""
        return STRENGTH.get(self.keyword, 1.0) * (1.0 if self.exact else 0.9)


def _is_cjk(word: str) -> bool:
    return any(ord(c) > 0x2E80 for c in word)


def _spaced(word: str) -> str:
    """CJK words with optional spaces between characters (Tesseract spaces out Hangul syllables)."""
    return r"\s?".join(re.escape(c) for c in word if not c.isspace())


def _flex(word: str) -> str:
    """Regex for a keyword: spaces and dots may be printed as either or omitted."""
    if _is_cjk(word):
        return _spaced(word)
    parts = [re.escape(p) for p in re.split(r"[\s.]+", word.strip(".")) if p]
    body = r"[\s.:]*".join(parts)
    return rf"(?<![A-Z0-9]){body}\.?(?![A-Z])"


@cache
def _pattern(kind: KeywordKind) -> re.Pattern[str]:
    words = {normalize(w) for table in TABLES[kind].values() for w in table}
    ordered = sorted(words, key=len, reverse=True)
    return re.compile("|".join(f"(?:{_flex(w)})" for w in ordered))


@cache
def _suffix_pattern() -> re.Pattern[str]:
    groups = (f"(?P<{kind}>{'|'.join(_spaced(w) for w in words)})" for kind, words in SUFFIXES.items())
    return re.compile("|".join(groups))


def find_keywords(norm: str) -> list[KeywordHit]:
    """Keyword hits in normalised text, left to right; a longer word wins where two overlap."""
    hits: list[KeywordHit] = []
    for kind in TABLES:
        for m in _pattern(kind).finditer(norm):
            hits.append(KeywordHit(kind, re.sub(r"[\s.:]+", " ", m.group()).strip(), m.start(), m.end()))
    hits.sort(key=lambda h: (-(h.end - h.start), h.start))
    kept: list[KeywordHit] = []
    for h in hits:
        if all(h.end <= k.start or h.start >= k.end for k in kept):
            kept.append(h)
    return sorted(kept, key=lambda h: h.start)


FUZZY_MIN_LEN = 5
"""Keywords at least this long (letters only) are also found with one OCR error (two from 10
letters, one in five from 15: long phrases such as "DA CONSUMARSI PREFERIBILMENTE ENTRO" are
distinct enough to survive several misread letters)."""
ARTICLES = frozenset({"LE", "LA", "IL", "EL", "DEL", "AL", "AM", "THE", "DE", "DU"})
"""Words printed between a label and its date ("avant le", "entro il") that no label ends with."""


def fuzzy_limit(n_letters: int, n_words: int = 1) -> int:
    """How many OCR errors a keyword of this many letters may carry and still be found. Labels
    of several short words ("Hạn sử dụng", read "Hin sù ding") lose a letter per word to
    diacritics, so from 8 letters they may carry two."""
    if n_letters < (8 if n_words > 1 else 10):
        return 1
    return 2 if n_letters < 15 else n_letters // 5


UNKNOWN_GLYPHS = "·•"
"""What OCR writes for a letter its model does not know (Vietnamese "ạ", "ụ"): any letter."""


def _distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, giving up (returning limit + 1) once it must exceed `limit`; an
    unknown glyph in `a` stands for any one letter."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb and ca not in UNKNOWN_GLYPHS)))
        if min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]


@cache
def _fuzzy_table() -> list[tuple[KeywordKind, str, int]]:
    """(kind, keyword without spaces, word count) for keywords long enough to match fuzzily."""
    out = []
    for kind, table in TABLES.items():
        for word in sorted({normalize(w) for ws in table.values() for w in ws}):
            squeezed = re.sub(r"[^A-Z]", "", word)
            if len(squeezed) >= FUZZY_MIN_LEN and not _is_cjk(word):
                out.append((kind, squeezed, len(word.split())))
    return out


def _fit(found: tuple[int, KeywordHit]) -> tuple[int, int]:
    """How well a fuzzy hit fits: its edit distance, then the longer keyword first."""
    dist, hit = found
    return dist, -len(hit.keyword)


def find_fuzzy(norm: str, end: int) -> KeywordHit | None:
    """A misread keyword (one or more wrong letters, see `fuzzy_limit`) ending just before `end`.

    OCR often garbles a letter of a label ("Febrique le" for "Fabriqué le"); an exact-only
    match would leave the date untyped and let the layout rules guess. When an expiry and a
    production label fit equally well, nothing is returned.
    """
    words = list(re.finditer(rf"[A-Z{UNKNOWN_GLYPHS}]+", norm[:end]))
    # A stray letter glued to the date ("SX: G9.05.2027") is not part of the label.
    if words and len(words[-1].group()) == 1 and words[-1].end() == end:
        words = words[:-1]
    tails = [words]
    if len(words) > 1 and words[-1].group() in ARTICLES:
        tails.append(words[:-1])
    best: dict[KeywordKind, tuple[int, KeywordHit]] = {}
    for kind, squeezed, n_words in _fuzzy_table():
        limit = fuzzy_limit(len(squeezed), n_words)
        for tail in tails:
            for extra in (0, 1):
                k = n_words + extra
                if k > len(tail):
                    continue
                span = tail[-k:]
                if end - span[-1].end() > 12:
                    continue
                text = "".join(w.group() for w in span)
                if sum(c in UNKNOWN_GLYPHS for c in text) * 3 > len(text):
                    continue  # mostly unknown glyphs: anything would fit
                dist = _distance(text, squeezed, limit)
                # Of two labels of a kind that fit as well, the longer says more ("BEST BEFORE"
                # for "Best betore", not the generic "BEFORE"), whatever order the table is in.
                if dist <= limit and (kind not in best or (dist, -len(squeezed)) < _fit(best[kind])):
                    hit = KeywordHit(kind, squeezed, span[0].start(), span[-1].end(), exact=dist == 0)
                    best[kind] = (dist, hit)
    if best:
        ranked = sorted(best.values(), key=lambda b: b[0])
        if len(ranked) > 1 and ranked[0][0] == ranked[1][0]:
            return None
        return ranked[0][1]
    return _fuzzy_short(norm, end)


@cache
def _short_table() -> list[tuple[KeywordKind, str]]:
    """Short labels ("MFD", "EXP", "賞味期限") that are matched with one wrong character."""
    out = []
    for kind, table in TABLES.items():
        for word in sorted({normalize(w) for ws in table.values() for w in ws}):
            if (_is_cjk(word) and len(word) >= 3) or (not _is_cjk(word) and 3 <= len(word) <= 4 and word.isalpha()):
                out.append((kind, word))
    return out


_LETTER_OF_DIGIT = str.maketrans("015628", "OISGZB")
"""The letter a digit inside a label is most often a misread of."""


def _fuzzy_short(norm: str, end: int) -> KeywordHit | None:
    """A short label with one wrong character right before the date ("MFO 01/29/2027", "MF6"), or
    the label itself where `find_keywords` could not see it: glued to a month name the
    recogniser ran into it ("MHDJUL 03 2027", whose "MHD" is also one letter from MFD).

    Only same-length substitutions count, and only when every label within one character
    is of the same kind: "MHG" could be MHD (expiry) or MFG (manufactured) and types nothing.
    """
    head = norm[:end].rstrip(" :.-")
    if len(head) < 3 or end - len(head) > 3:
        return None
    word_m = re.search(r"(?<![A-Z0-9])[A-Z][A-Z0-9]*$", head)
    if word_m is not None and word_m.group() in AMBIGUOUS_LABELS:
        return None
    # A digit inside the word is a letter misread ("MF6" for MFG): it counts as the wrong character.
    folded = word_m.group().translate(_LETTER_OF_DIGIT) if word_m is not None else ""
    misread_digit = word_m is not None and folded != word_m.group()
    kinds: set[KeywordKind] = set()
    hit: KeywordHit | None = None
    for kind, word in _short_table():
        if _is_cjk(word):
            cand = re.sub(r"\s", "", head)[-len(word) :]
            start = len(head) - len(word)
        elif word_m is not None:
            cand, start = folded, word_m.start()
        else:
            continue
        wrong = sum(a != b for a, b in zip(cand, word, strict=True)) if len(cand) == len(word) else -1
        if misread_digit and not _is_cjk(word):
            wrong = 1 if wrong == 0 else -1
        if wrong == 0:
            exact = KeywordHit(kind, word, max(0, start), len(head))
            return exact if kind != "lot" else None
        if wrong == 1:
            kinds.add(kind)
            hit = KeywordHit(kind, word, max(0, start), len(head), exact=False)
    return hit if len(kinds) == 1 and hit is not None and hit.kind != "lot" else None


def find_suffix(norm: str, start: int, reach: int = 3) -> KeywordHit | None:
    """An expiry or production word printed right after a date ending at `start` (`SUFFIXES`)."""
    m = _suffix_pattern().search(norm, start, start + reach + 4)
    if m and not norm[start : m.start()].strip():
        return KeywordHit(m.lastgroup, m.group(), m.start(), m.end())  # type: ignore[arg-type]
    return None


def languages() -> list[str]:
    """Languages with expiry keywords."""
    return sorted(EXPIRY)
