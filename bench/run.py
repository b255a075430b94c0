"""Run the benchmarks and refresh the README's benchmark table.

Each `bench/bench_<name>.py` exposes `main() -> dict`; its result may carry `rows`, a list of
`{"metric", "value", "target"}` dicts, which become rows of the README table. Raw results stay
in `bench/results/<name>.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import pkgutil
import platform
import re
import time
import traceback
from pathlib import Path
from typing import Any

import bench

README = Path(__file__).resolve().parents[1] / "README.md"
RESULTS = Path(__file__).resolve().parent / "results"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def available() -> list[str]:
    return sorted(
        m.name.removeprefix("bench_") for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GiB RAM, no GPU, Python {platform.python_version()}"


def rows_of(name: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = result.get("rows")
    if rows:
        return rows
    return [{"metric": k, "value": v, "target": ""} for k, v in result.items() if isinstance(v, int | float | str)]


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"Measured {dt.date.today().isoformat()} on {machine()} (shared machine: medians reported).",
        "",
        "| benchmark | metric | value | target |",
        "|---|---|---|---|",
    ]
    for name, result in results.items():
        for row in rows_of(name, result):
            lines.append(f"| {name} | {row['metric']} | {fmt(row['value'])} | {row.get('target') or ''} |")
    return "\n".join(lines)


def update_readme(text: str) -> None:
    readme = README.read_text()
    block = f"{START}\n{text}\n{END}"
    if START in readme:
        readme = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, readme, flags=re.S)
    else:
        readme += f"\n## Benchmarks\n\n{block}\n"
    README.write_text(readme)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {available()})")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the README table")
    parser.add_argument("--table-only", action="store_true", help="rebuild the README table from saved results")
    args = parser.parse_args()
    names = [] if args.table_only else (args.names or available())
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in names:
        print(f"== bench {name}", flush=True)
        start = time.perf_counter()
        try:
            result = importlib.import_module(f"bench.bench_{name}").main()
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        result["_seconds"] = round(time.perf_counter() - start, 1)
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))
    all_results = {}
    for name in available():
        path = RESULTS / f"{name}.json"
        if path.exists():
            all_results[name] = json.loads(path.read_text())
    text = table(all_results)
    print(text)
    if not args.no_readme:
        update_readme(text)
    if failed:
        raise SystemExit(f"benchmarks failed: {failed}")


if __name__ == "__main__":
    main()
