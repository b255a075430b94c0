"""Fine-detail checks against the catalog: variant labels, colour, and item identity.

See `labels` (OCR text -> size/model values), `colour` (catalog-colour share on the item
mask), `identity` (nearest SKU bank), `profile` (per-SKU thresholds from normal references)
and `stage` (the pipeline stage "attributes").
"""

from detectors.attributes.colour import ColourConfig, ColourRead, ciede2000, measure
from detectors.attributes.identity import IdentityChecker, IdentityRead
from detectors.attributes.labels import LabelCheck, ValueRead, canonical, family_of, judge, read_values
from detectors.attributes.profile import AttributeProfile, fit_profile
from detectors.attributes.stage import AttributesStage

__all__ = [
    "AttributeProfile",
    "AttributesStage",
    "ColourConfig",
    "ColourRead",
    "IdentityChecker",
    "IdentityRead",
    "LabelCheck",
    "ValueRead",
    "canonical",
    "ciede2000",
    "family_of",
    "fit_profile",
    "judge",
    "measure",
    "read_values",
]
