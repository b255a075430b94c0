"""Training labels for the fine-grained classifier: complaints and reviewer decisions on items.

A complaint says that something was wrong with an item the tunnel passed; its investigated
root cause says whether it was visible at the tunnel, and the item's record says which type.
Reviewer decisions (the store's labels table) confirm or reject a type on an item. Normal
reference orders are the negatives. Every example keeps its capture, so the images the model
learns from are the tunnel's own photographs of that item.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.dataset import Dataset
from pipeline.store import Store
from pipeline.types import ItemCapture

FINE_TYPES = ("crushed_corner", "bent_cover", "broken_seal", "stain", "wrong_variant_label")
"""Types customers notice that the anomaly ensemble misses; the classifier's outputs."""
VISIBLE_CAUSES = frozenset({"damaged_before_shipment", "wrong_item", "wrong_variant", "wrong_attribute"})
"""Root causes that mean the problem was on the item when it crossed the tunnel."""
CLEARED_CAUSES = frozenset({"customer_misperception", "damaged_after_tunnel"})
"""Root causes that clear the item: its tunnel photos are of a normal item."""


@dataclass
class Example:
    capture: ItemCapture
    labels: set[str] = field(default_factory=set)
    """Fine types present; empty for a normal item."""
    source: str = "reference"
    """Where the label came from: "feedback", "reviewer", "reference" or "truth"."""


def _fine(types: list[str]) -> set[str]:
    return {t for t in types if t in FINE_TYPES}


def feedback_examples(dataset: Dataset) -> dict[str, Example]:
    """Complained items of a dataset, labelled by root cause joined with the item's record."""
    items = {it.capture.item_id: it for it in dataset.items()}
    out: dict[str, Example] = {}
    for complaint in dataset.feedback():
        item = items.get(str(complaint.get("item_id")))
        cause = (complaint.get("truth") or {}).get("root_cause")
        if item is None or cause is None:
            continue
        if cause in VISIBLE_CAUSES and item.truth is not None:
            visible = [d.type for d in item.truth.defects if d.visible]
            out[item.capture.item_id] = Example(item.capture, _fine(visible), "feedback")
        elif cause in CLEARED_CAUSES:
            out[item.capture.item_id] = Example(item.capture, set(), "feedback")
    return out


def truth_examples(dataset: Dataset) -> dict[str, Example]:
    """Every shift item with its recorded defect types (a simulator or a fully audited shift)."""
    out = {}
    for item in dataset.items():
        if item.truth is not None:
            visible = [d.type for d in item.truth.defects if d.visible]
            out[item.capture.item_id] = Example(item.capture, _fine(visible), "truth")
    return out


def apply_reviewer_labels(examples: dict[str, Example], dataset: Dataset, store: Store) -> int:
    """Reviewer confirm/reject decisions override earlier labels; returns how many applied."""
    captures = {it.capture.item_id: it.capture for it in dataset.items()}
    applied = 0
    for row in sorted(store.labels(), key=lambda r: r["created_at"]):
        item_id, label, decision = row["item_id"], row["label"], row["decision"]
        capture = examples[item_id].capture if item_id in examples else captures.get(item_id) or store.capture(item_id)
        if capture is None:
            continue
        if capture.root is None and item_id in captures:
            capture = captures[item_id]
        ex = examples.setdefault(item_id, Example(capture, set(), "reviewer"))
        ex.source = "reviewer"
        if label in ("normal", "none"):
            if decision == "confirm":
                ex.labels.clear()
        elif label in FINE_TYPES:
            (ex.labels.add if decision == "confirm" else ex.labels.discard)(label)
        applied += 1
    return applied


def reference_examples(dataset: Dataset, per_sku: int = 4) -> dict[str, Example]:
    """Normal reference orders (a few per SKU) as negatives."""
    counts: Counter[str] = Counter()
    out = {}
    for item in dataset.references():
        if counts[item.capture.sku] < per_sku:
            counts[item.capture.sku] += 1
            out[item.capture.item_id] = Example(item.capture, set(), "reference")
    return out


def build_examples(
    dataset_dir: Path | str, store: Store | None = None, use_truth: bool = False, references_per_sku: int = 4
) -> list[Example]:
    """Feedback (or, with `use_truth`, every recorded item) + reviewer labels + reference negatives."""
    dataset = Dataset.open(dataset_dir)
    examples = reference_examples(dataset, references_per_sku)
    examples.update(truth_examples(dataset) if use_truth else feedback_examples(dataset))
    if store is not None:
        apply_reviewer_labels(examples, dataset, store)
    return list(examples.values())


def label_counts(examples: list[Example]) -> dict[str, int]:
    counts = Counter(t for ex in examples for t in ex.labels)
    counts["normal"] = sum(1 for ex in examples if not ex.labels)
    return {k: counts.get(k, 0) for k in (*FINE_TYPES, "normal")}
