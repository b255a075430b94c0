"""Printed date strings: formats, month names and expiry/production/lot keywords per language.

A detector that reads expiry dates must cope with the formats real packaging uses and must
tell an expiry date from a production date next to it, so every print carries both, in the
label's language, and the ground truth records what the expiry line says in ISO form.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

import numpy as np

from pipeline.types import DateOrder

Precision = Literal["day", "month"]

MONTHS: dict[str, tuple[str, ...]] = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "de": (
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ),
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    "es": (
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ),
    "it": (
        "gennaio",
        "febbraio",
        "marzo",
        "aprile",
        "maggio",
        "giugno",
        "luglio",
        "agosto",
        "settembre",
        "ottobre",
        "novembre",
        "dicembre",
    ),
    "pt": (
        "janeiro",
        "fevereiro",
        "março",
        "abril",
        "maio",
        "junho",
        "julho",
        "agosto",
        "setembro",
        "outubro",
        "novembro",
        "dezembro",
    ),
    "nl": (
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ),
}
"""Full month names; three-letter upper-case abbreviations are derived from them."""

FORMATS: dict[str, Precision] = {
    "DD.MM.YYYY": "day",
    "DD/MM/YYYY": "day",
    "DD/MM/YY": "day",
    "DD-MM-YYYY": "day",
    "DD.MM.YY": "day",
    "MM/DD/YYYY": "day",
    "MM/DD/YY": "day",
    "YYYY.MM.DD": "day",
    "YYYY-MM-DD": "day",
    "YYYY/MM/DD": "day",
    "YYYYMMDD": "day",
    "YYYY年MM月DD日": "day",
    "DD MON YYYY": "day",
    "MON DD YYYY": "day",
    "DD MONTH YYYY": "day",
    "MM/YY": "month",
    "MM/YYYY": "month",
    "MM.YYYY": "month",
    "YYYY.MM": "month",
    "MONYYYY": "month",
    "MON YY": "month",
    "MON YYYY": "month",
    "MONTH YYYY": "month",
}
"""Every date format the simulator prints, with the precision it carries."""

_BY_ORDER: dict[str, tuple[str, ...]] = {
    "DMY": (
        "DD.MM.YYYY",
        "DD/MM/YYYY",
        "DD/MM/YY",
        "DD-MM-YYYY",
        "DD.MM.YY",
        "DD MON YYYY",
        "DD MONTH YYYY",
        "MM/YY",
        "MM/YYYY",
        "MM.YYYY",
        "MONYYYY",
        "MON YY",
        "MON YYYY",
        "MONTH YYYY",
        "YYYYMMDD",
    ),
    "MDY": (
        "MM/DD/YYYY",
        "MM/DD/YY",
        "MON DD YYYY",
        "DD MON YYYY",
        "MM/YY",
        "MM/YYYY",
        "MONYYYY",
        "MON YY",
        "MON YYYY",
        "YYYY-MM-DD",
    ),
    "YMD": ("YYYY.MM.DD", "YYYY-MM-DD", "YYYY/MM/DD", "YYYYMMDD", "YYYY.MM"),
}


@dataclass(frozen=True)
class Keywords:
    """Line templates for one language: `{d}` is the date, `{c}` the lot code."""

    expiry: tuple[str, ...]
    manufactured: tuple[str, ...]
    lot: tuple[str, ...]
    extra_formats: tuple[str, ...] = field(default=())


KEYWORDS: dict[str, Keywords] = {
    "en": Keywords(
        expiry=("EXP {d}", "EXP: {d}", "Best before {d}", "BEST BEFORE END {d}", "Use by {d}", "BB {d}", "BBE {d}"),
        manufactured=("MFG {d}", "PKD {d}", "MFD {d}", "Packed on {d}"),
        lot=("LOT {c}", "L: {c}", "LOT: {c}", "Batch {c}"),
    ),
    "de": Keywords(
        expiry=(
            "MHD {d}",
            "mindestens haltbar bis {d}",
            "mind. haltbar bis: {d}",
            "Verw. bis {d}",
            "zu verbrauchen bis {d}",
        ),
        manufactured=("Herst. {d}", "Hergestellt: {d}", "Prod. {d}"),
        lot=("Ch.-B. {c}", "Charge {c}", "L: {c}"),
    ),
    "fr": Keywords(
        expiry=("DLC {d}", "À consommer de préférence avant le {d}", "À consommer jusqu'au {d}", "DDM {d}"),
        manufactured=("Fab. {d}", "Fabriqué le {d}"),
        lot=("LOT {c}", "N° lot {c}"),
    ),
    "es": Keywords(
        expiry=("CAD {d}", "Caducidad: {d}", "Consumir preferentemente antes de {d}", "Fecha de caducidad {d}"),
        manufactured=("Fab. {d}", "F. Fab. {d}", "Envasado {d}"),
        lot=("Lote {c}", "L: {c}"),
    ),
    "it": Keywords(
        expiry=("Scad. {d}", "Da consumarsi entro {d}", "Da consumarsi preferibilmente entro {d}"),
        manufactured=("Prod. {d}", "Data di prod. {d}"),
        lot=("Lotto {c}", "L. {c}"),
    ),
    "pt": Keywords(
        expiry=("VAL {d}", "Validade: {d}", "Consumir antes de {d}"),
        manufactured=("FAB {d}", "Fabricação: {d}"),
        lot=("Lote {c}", "L: {c}"),
    ),
    "nl": Keywords(
        expiry=("THT {d}", "Ten minste houdbaar tot {d}", "TGT {d}", "Te gebruiken tot {d}"),
        manufactured=("Prod. {d}", "Geproduceerd {d}"),
        lot=("Partij {c}", "LOT {c}"),
    ),
    "vi": Keywords(
        expiry=("HSD {d}", "HSD: {d}", "Hạn sử dụng: {d}"),
        manufactured=("NSX {d}", "Ngày SX: {d}"),
        lot=("Số lô {c}", "LOT {c}"),
    ),
    "ja": Keywords(
        expiry=("賞味期限 {d}", "消費期限 {d}", "賞味期限：{d}"),
        manufactured=("製造日 {d}", "製造年月日 {d}"),
        lot=("ロット {c}", "LOT {c}"),
        extra_formats=("YYYY年MM月DD日",),
    ),
    "ko": Keywords(
        expiry=("유통기한 {d} 까지", "유통기한: {d}", "소비기한 {d} 까지"),
        manufactured=("제조일자 {d}", "제조일 {d}"),
        lot=("LOT {c}", "로트 {c}"),
    ),
}

MARKETS: dict[str, tuple[str, DateOrder]] = {
    "US": ("en", "MDY"),
    "GB": ("en", "DMY"),
    "DE": ("de", "DMY"),
    "FR": ("fr", "DMY"),
    "ES": ("es", "DMY"),
    "IT": ("it", "DMY"),
    "BR": ("pt", "DMY"),
    "NL": ("nl", "DMY"),
    "VN": ("vi", "DMY"),
    "JP": ("ja", "YMD"),
    "KR": ("ko", "YMD"),
}
"""Market -> (label language, numeric date order)."""


SHORT_MONTHS: dict[str, dict[int, str]] = {
    "fr": {6: "JUIN", 7: "JUIL", 8: "AOUT"},
    "nl": {3: "MRT"},
    "de": {3: "MRZ"},
}
"""Abbreviations real coders print where the first three letters would be ambiguous or unusual."""


def month_name(month: int, language: str, *, short: bool) -> str:
    names = MONTHS.get(language, MONTHS["en"])
    name = names[month - 1]
    if not short:
        return name
    return SHORT_MONTHS.get(language, {}).get(month) or name[:3].upper()


def format_date(value: date, fmt: str, language: str = "en") -> str:
    """The date as printed in one of `FORMATS` (month names in the label language)."""
    if fmt not in FORMATS:
        raise KeyError(f"unknown date format {fmt!r}")
    d, m, y = value.day, value.month, value.year
    tokens = {
        "YYYY": f"{y:04d}",
        "YY": f"{y % 100:02d}",
        "MM": f"{m:02d}",
        "DD": f"{d:02d}",
        "MONTH": month_name(m, language, short=False),
        "MON": month_name(m, language, short=True),
    }
    out, i = [], 0
    while i < len(fmt):
        for token in ("MONTH", "YYYY", "MON", "YY", "MM", "DD"):
            if fmt.startswith(token, i):
                out.append(tokens[token])
                i += len(token)
                break
        else:
            out.append(fmt[i])
            i += 1
    return "".join(out)


def iso_as_printed(value: date, fmt: str) -> str:
    """Ground-truth ISO string for a print: YYYY-MM-DD, or YYYY-MM when the format has no day."""
    return value.isoformat() if FORMATS[fmt] == "day" else f"{value.year:04d}-{value.month:02d}"


def month_end(value: date) -> date:
    return value.replace(day=calendar.monthrange(value.year, value.month)[1])


def formats_for(order: DateOrder, language: str, *, month_precision_ok: bool) -> tuple[str, ...]:
    """Formats plausible for a market: its numeric order, plus its language's own forms."""
    base = _BY_ORDER[order] + KEYWORDS.get(language, KEYWORDS["en"]).extra_formats
    if language not in MONTHS:
        base = tuple(f for f in base if "MON" not in f)
    if not month_precision_ok:
        base = tuple(f for f in base if FORMATS[f] == "day")
    return base


@dataclass(frozen=True)
class DateLines:
    """The lines of one date print and what they mean."""

    lines: tuple[str, ...]
    expiry_iso: str | None
    manufactured_iso: str | None
    lot_code: str | None
    date_format: str | None
    language: str
    expiry_line: int | None
    """Index into `lines` of the expiry line (None when the print has no expiry)."""


def compose_date_lines(
    rng: np.random.Generator,
    *,
    expiry: date | None,
    manufactured: date | None,
    language: str,
    order: DateOrder,
    lot_code: str | None = None,
    month_precision_ok: bool = True,
    fmt: str | None = None,
) -> DateLines:
    """Expiry, production and lot lines in random order and keyword choice, like real prints."""
    words = KEYWORDS.get(language, KEYWORDS["en"])
    if fmt is None:
        choices = formats_for(order, language, month_precision_ok=month_precision_ok)
        fmt = str(choices[int(rng.integers(len(choices)))])
    lines: list[tuple[str, str]] = []
    expiry_iso = None
    if expiry is not None:
        template = words.expiry[int(rng.integers(len(words.expiry)))]
        lines.append(("exp", template.format(d=format_date(expiry, fmt, language))))
        expiry_iso = iso_as_printed(expiry, fmt)
    manufactured_iso = None
    if manufactured is not None:
        # Production dates keep the day: that is what makes them easy to mistake for an expiry.
        mfg_fmt = fmt if FORMATS[fmt] == "day" else _day_format(order)
        template = words.manufactured[int(rng.integers(len(words.manufactured)))]
        lines.append(("mfg", template.format(d=format_date(manufactured, mfg_fmt, language))))
        manufactured_iso = manufactured.isoformat()
    if lot_code:
        template = words.lot[int(rng.integers(len(words.lot)))]
        lines.append(("lot", template.format(c=lot_code)))
    if len(lines) > 1 and rng.random() < 0.4:
        lines = [lines[-1], *lines[:-1]] if rng.random() < 0.5 else lines[::-1]
    kinds = [k for k, _ in lines]
    return DateLines(
        lines=tuple(text for _, text in lines),
        expiry_iso=expiry_iso,
        manufactured_iso=manufactured_iso,
        lot_code=lot_code,
        date_format=fmt,
        language=language,
        expiry_line=kinds.index("exp") if "exp" in kinds else None,
    )


def _day_format(order: DateOrder) -> str:
    return {"DMY": "DD.MM.YYYY", "MDY": "MM/DD/YYYY", "YMD": "YYYY.MM.DD"}[order]
