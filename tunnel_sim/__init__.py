"""Synthetic imaging tunnel: catalog, item renderer, defects, date prints, complaints.

Public API:
- `generate_dataset(out, items, seed, ...)` writes a shift in the README dataset layout.
- `build_catalog(seed)` returns the SKUs, sellers and lots (`SimCatalog.catalog` is a
  `pipeline.catalog.Catalog`; `SimCatalog.profiles` says which lots are bad).
- `render_item(record, defects=[...], seed=...)` photographs one item in memory; returns a
  `RenderedItem` that unpacks as (images per camera, GroundTruth, masks per defect/camera).
- `render_date_print(expiry, ...)` draws one date print (dot-matrix, inkjet or label) and
  returns it with the lines it says, for OCR tests.
- `contact_sheet(dataset_dir, out_png)` for a person to look at a dataset.
- `tunnel_sim.composite.place_on_conveyance(image, mask, rng)` puts a real photo's object on
  a belt or tote at any pose, for benchmarks on real products and real damage.
"""

from tunnel_sim.catalog import DEFAULT_TODAY, LotProfile, SimCatalog, build_catalog
from tunnel_sim.dates import FORMATS, KEYWORDS, MARKETS, DateLines, format_date
from tunnel_sim.defects import ALL_DEFECTS, BENIGN, applicable_defects
from tunnel_sim.generate import DatasetSummary, generate_dataset
from tunnel_sim.item import RenderedItem, render_item
from tunnel_sim.preview import contact_sheet
from tunnel_sim.scene import CAMERAS
from tunnel_sim.text import PRINT_STYLES, render_date_print

__all__ = [
    "ALL_DEFECTS",
    "BENIGN",
    "CAMERAS",
    "DEFAULT_TODAY",
    "FORMATS",
    "KEYWORDS",
    "MARKETS",
    "PRINT_STYLES",
    "DatasetSummary",
    "DateLines",
    "LotProfile",
    "RenderedItem",
    "SimCatalog",
    "applicable_defects",
    "build_catalog",
    "contact_sheet",
    "format_date",
    "generate_dataset",
    "render_date_print",
    "render_item",
]
