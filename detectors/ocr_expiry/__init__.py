"""Printed expiry dates: read them on every frame, type them, and judge the item.

Keeps expired items from customers and catches lots whose printed date disagrees with the
inventory record. See `grammar` (date shapes), `classify` (expiry vs manufactured),
`reader` (image -> dates), `checker` (item verdict) and `stage` (the pipeline stage).
"""

from detectors.ocr_expiry.checker import ExpiryVerdict, judge, reconcile
from detectors.ocr_expiry.classify import DateRead, classify_lines
from detectors.ocr_expiry.engines import TEXT_LINES_KEY, OcrEngine, TextLine, get_engine
from detectors.ocr_expiry.grammar import ParsedDate, parse_date, parse_dates, render_date
from detectors.ocr_expiry.reader import ImageRead, read_dates, read_file
from detectors.ocr_expiry.stage import OcrExpiryStage

__all__ = [
    "TEXT_LINES_KEY",
    "DateRead",
    "ExpiryVerdict",
    "ImageRead",
    "OcrEngine",
    "OcrExpiryStage",
    "ParsedDate",
    "TextLine",
    "classify_lines",
    "get_engine",
    "judge",
    "parse_date",
    "parse_dates",
    "read_dates",
    "read_file",
    "reconcile",
    "render_date",
]
