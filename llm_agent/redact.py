"""Remove customer personal data from complaint text before it reaches a report or a model.

Reports are shared with sellers and manufacturers; a backend may be a hosted service. Neither
needs the customer's e-mail, phone, address, card or name to judge a damaged box, so they are
replaced by typed placeholders ("[email]") that keep the sentence readable.
"""

from __future__ import annotations

import re

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("url", re.compile(r"\bhttps?://\S+", re.I)),
    ("iban", re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,7}(?:\s?[A-Z0-9]{1,3})?\b")),
    ("card", re.compile(r"\b(?:\d[ -]?){12,18}\d\b")),
    ("phone", re.compile(r"(?<![\w/.-])(?:\+|00)?\d[\d ()-]{7,}\d(?![\w/.-])")),
    (
        "address",
        re.compile(
            r"\b\d{1,5}\s+(?:[A-Z][\w'-]*\s+){0,3}(?:street|st|avenue|ave|road|rd|lane|ln|drive|dr|boulevard|blvd|"
            r"way|court|ct|place|pl)\b\.?|\b[A-ZÄÖÜ][\wäöüß-]*(?:strasse|straße|weg|gasse|platz)\s+\d{1,4}\w?\b|"
            r"\b(?:rue|avenue|calle|via|rua)\s+(?:[\w'-]+\s+){0,3}\d{0,4}",
            re.I,
        ),
    ),
    (
        "name",
        re.compile(
            r"(?P<lead>(?i:\bmy name is|\bje m'appelle|\bich hei(?:ß|ss)e|\bme llamo|\bmi chiamo|\bregards,|\bthanks,|"
            r"\bcheers,|\bsincerely,|\bmit freundlichen gr(?:ü|ue)(?:ß|ss)en,?|\bcordialement,?)\s+)"
            r"[A-ZÀ-Ý][a-zà-ÿ'-]+(?:\s+[A-ZÀ-Ý][a-zà-ÿ'-]+)?"
        ),
    ),
]


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _keep(kind: str, value: str) -> bool:
    """Numbers that are evidence, not personal data: dates, order ids (non-Luhn digit runs)."""
    digits = re.sub(r"\D", "", value)
    if kind == "card":
        return not _luhn(digits)
    if kind == "phone":
        return len(digits) < 9 or bool(re.fullmatch(r"\d{3}-\d{7}-\d{7}", value.strip()))
    return False


def redact(text: str) -> tuple[str, list[str]]:
    """Text with personal data replaced, and the kinds that were found (never the values)."""
    found: list[str] = []
    for kind, pattern in _PATTERNS:

        def sub(m: re.Match[str], kind: str = kind) -> str:
            if _keep(kind, m.group()):
                return m.group()
            found.append(kind)
            lead = m.groupdict().get("lead") or ""
            return f"{lead}[{kind}]"

        text = pattern.sub(sub, text)
    return text, sorted(set(found))


def contains_personal_data(text: str) -> bool:
    return bool(redact(text)[1])
