"""Simulator throughput: items per second (3 camera frames each) written to a dataset folder.

Run: `python -m bench.bench_sim`. Writes bench/results/sim.json and prints a markdown row.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

from tunnel_sim import CAMERAS, generate_dataset

ITEMS = 200
RUNS = 3
RESULTS = Path(__file__).resolve().parent / "results" / "sim.json"


def main(items: int = ITEMS, runs: int = RUNS, workers: int = 2) -> dict:
    rates = []
    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            summary = generate_dataset(Path(tmp) / "ds", items, seed=run, references_per_sku=0, workers=workers)
            rates.append(summary.items / summary.seconds)
    result = {
        "benchmark": "tunnel_sim.generate_dataset",
        "items": items,
        "cameras": len(CAMERAS),
        "workers": workers,
        "runs": runs,
        "items_per_s_median": round(statistics.median(rates), 2),
        "items_per_s_runs": [round(r, 2) for r in rates],
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"| benchmark | items | workers | items/s (median of {runs}) |")
    print("|---|---|---|---|")
    print(f"| simulator, {len(CAMERAS)} frames per item | {items} | {workers} | {result['items_per_s_median']} |")
    return result


if __name__ == "__main__":
    main()
