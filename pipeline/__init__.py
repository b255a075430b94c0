"""tunnelpi pipeline: core types, stage protocol, runner, policy, store and CLI."""

from pipeline.catalog import Catalog, CatalogError, UnknownSKU
from pipeline.types import (
    Action,
    CatalogRecord,
    DefectTruth,
    Evidence,
    ExpiryPolicy,
    Finding,
    Frame,
    GroundTruth,
    ItemCapture,
    LotRecord,
    Verdict,
)

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Catalog",
    "CatalogError",
    "CatalogRecord",
    "DefectTruth",
    "Evidence",
    "ExpiryPolicy",
    "Finding",
    "Frame",
    "GroundTruth",
    "ItemCapture",
    "LotRecord",
    "UnknownSKU",
    "Verdict",
]
