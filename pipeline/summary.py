"""Console summaries of an inspection run (shared by `inspect` and `demo`)."""

from __future__ import annotations

from typing import Any


def print_summary(result: Any) -> None:
    """Verdict counts, per-defect recall, divert precision, false diverts, lots and latency."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{result.items} items inspected -> {result.out}")
    for col in ("action", "items"):
        table.add_column(col)
    for action, n in sorted(result.actions.items()):
        table.add_row(action, str(n))
    console.print(table)
    if result.metrics:
        m = result.metrics
        t = Table(title="against ground truth")
        for col in ("defect type", "items", "recall (divert)", "recall (divert+review)"):
            t.add_column(col)
        for name, row in m["per_defect_type"].items():
            t.add_row(name, str(row["items"]), f"{row['recall_divert']:.1%}", f"{row['recall_flagged']:.1%}")
        console.print(t)
        p = Table(title="precision of divert reasons")
        for col in ("finding", "diverts", "precision"):
            p.add_column(col)
        for name, row in m["per_finding_kind"].items():
            p.add_row(name, str(row["diverts"]), f"{row['precision']:.1%}")
        console.print(p)
        console.print(
            f"good items: {m['good_items']}  false-divert rate: {m['false_divert_rate']:.2%}"
            f"  sent to review: {m['good_review_rate']:.2%}"
        )
    if result.lots_quarantined:
        console.print(f"lots quarantined: {', '.join(result.lots_quarantined)}")
    if result.latency_ms:
        console.print(f"latency per item (ms): {result.latency_ms}")
