"""The end-to-end demo `make demo` runs: a simulated shift through the whole product.

simulate a shift -> enrol the catalog's normal looks -> set the anomaly operating point on an
earlier shift's good items -> inspect every item -> lot isolation -> investigate sample
complaints -> one HTML report and a printed summary.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.jsonl import iter_jsonl


@dataclass
class DemoResult:
    out: Path
    report: Path
    timings_s: dict[str, float] = field(default_factory=dict)
    inspect: Any = None
    investigations: list[dict[str, Any]] = field(default_factory=list)
    dataset_summary: Any = None


def _timed(timings: dict[str, float], name: str, fn: Callable[[], Any], log: Callable[[str], None]) -> Any:
    log(f"[demo] {name} ...")
    start = time.perf_counter()
    value = fn()
    timings[name] = round(time.perf_counter() - start, 1)
    log(f"[demo] {name} done in {timings[name]} s")
    return value


def build_model_folder(dataset: Path, model_dir: Path) -> Path:
    """The shared model folder every stage reads: anomaly/ (torch + ONNX) and attributes/.

    The colour profile (OpenCV localisation of every reference) is measured in a thread beside
    the anomaly enrolment, which leaves a core free whenever the load allows it only one."""
    from concurrent.futures import ThreadPoolExecutor

    from detectors.anomaly.enroll import enroll_dataset
    from detectors.anomaly.export import export_onnx
    from detectors.attributes import fit_profile

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="profile") as pool:
        profile = pool.submit(fit_profile, dataset)
        model = enroll_dataset(dataset, log=lambda _: None)
        model.save(model_dir / "anomaly")
        export_onnx(model, model_dir / "anomaly")
        profile.result().save(model_dir / "attributes")
    return model_dir


def calibrate_on_earlier_shift(earlier: Path, model_dir: Path, items: int, seed: int, workers: int) -> Any:
    """The anomaly operating point from the good items of an earlier shift (what a line's audited
    passes give), on top of the catalog references: simulate that shift and calibrate on it."""
    from detectors.anomaly.belt import calibrate_folder
    from tunnel_sim import generate_dataset

    generate_dataset(earlier, items, seed, references_per_sku=0, workers=workers, overwrite=True)
    return calibrate_folder(model_dir / "anomaly", earlier, use_truth=True)


def investigate_samples(dataset: Path, results: Path, n: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Investigate the first `n` complaints of the shift; write `results/investigations.jsonl`."""
    from detectors.ocr_expiry.engines import reading_one_at_a_time
    from llm_agent.investigator import investigate
    from llm_agent.report import summary_line, write_report

    lines = []
    complaints = list(iter_jsonl(dataset / "feedback.jsonl"))[:n]
    with reading_one_at_a_time():  # as `tunnelpi investigate` reads an item's photos
        for c in complaints:
            out = results / "investigations" / c["complaint_id"]
            report, evidence = investigate(
                results / "store.db",
                c["item_id"],
                c["text"],
                dataset=dataset,
                out=out,
                complaint_id=c["complaint_id"],
                order_id=c.get("order_id"),
            )
            write_report(report, out, evidence)
            line = summary_line(report) | {"truth_root_cause": c.get("truth", {}).get("root_cause")}
            lines.append(line)
    with (results / "investigations.jsonl").open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
    right = sum(line["root_cause"] == line["truth_root_cause"] for line in lines)
    log(f"[demo] investigations: {right}/{len(lines)} root causes match the simulator's truth")
    return lines


def run_demo(
    out: Path,
    *,
    items: int = 200,
    seed: int = 7,
    complaints: int = 12,
    workers: int = 2,
    log: Callable[[str], None] = print,
) -> DemoResult:
    from detectors.anomaly.threads import compute_threads, fixed_threads
    from pipeline.inspect import inspect_path
    from pipeline.report import render_report
    from tunnel_sim import generate_dataset

    # cores free now stay the demo's own: its simulator workers are no other job's load
    threads = compute_threads()
    out.mkdir(parents=True, exist_ok=True)
    dataset, model_dir, results = out / "dataset", out / "model", out / "results"
    timings: dict[str, float] = {}
    summary = _timed(
        timings,
        "simulate shift",
        lambda: generate_dataset(dataset, items, seed, workers=workers, overwrite=True),
        log,
    )
    with fixed_threads(threads):
        _timed(timings, "enrol catalog", lambda: build_model_folder(dataset, model_dir), log)
        belt = _timed(
            timings,
            "calibrate on an earlier shift",
            lambda: calibrate_on_earlier_shift(out / "earlier_shift", model_dir, items, seed + 1, workers),
            log,
        )
        log(f"[demo] anomaly operating point: {belt.items} good items of the earlier shift joined the references")
    if results.exists():
        for name in ("store.db", "store.db-wal", "store.db-shm", "verdicts.jsonl", "investigations.jsonl"):
            (results / name).unlink(missing_ok=True)
    inspected = _timed(
        timings,
        "inspect",
        lambda: inspect_path(
            dataset,
            results,
            model_dir=model_dir,
            stage_kwargs={"anomaly": {"runtime": "onnx", "threads": 1}},  # one thread per item: two side by side
            progress=True,
            workers=workers,
        ),
        log,
    )
    lines = _timed(timings, "investigate", lambda: investigate_samples(dataset, results, complaints, log), log)
    report = _timed(timings, "report", lambda: render_report(results, out / "report.html"), log)
    (out / "demo.json").write_text(json.dumps({"timings_s": timings, "items": items, "seed": seed}, indent=1))
    return DemoResult(out, report, timings, inspected, lines, summary)
