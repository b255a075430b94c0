"""Edge service benchmark: latency at the lane rate, the highest sustainable rate, crash safety.

Runs `tunnelpi serve` as a subprocess (so CPU and RSS are the service's alone) and drives it
with `pipeline.loadgen` at 2.4 items/s (one lane), then steps the rate up until items get
429s, miss the 1 s deadline at p99, or go undecided. Fake fast stages measure the service
itself; the real detector stages, when they import, measure the whole inspection path: the
service gets a model folder (anomaly banks + ONNX) and the catalog, and is sent a simulated
shift of catalog SKUs, so every stage does its real work. If the real stages do not keep up
with a lane, lower rates are measured to find the rate they do sustain.

Environment: BENCH_SERVICE_SECONDS (default 60) sets the lane-rate run's length.
BENCH_MODEL_DIR: an existing model folder (as `make demo` writes: MODEL_DIR/anomaly/...) for
the real stages; without it, references for every SKU are simulated and enrolled here.
BENCH_SERVICE_OUT: where the result JSON goes (default bench/results/service.json).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from pipeline.loadgen import stream
from pipeline.stages import DEFAULT_STAGES

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
TOKEN = "bench-token"
LANE_RATE = 2.4
DEADLINE_S = 1.0
FAKE_STAGES = "fake_localize=tests.test_service:FakeLocalize,fake_anomaly=tests.test_service:FakeAnomaly"
REAL_STAGES = ",".join(DEFAULT_STAGES)
"""The stages `tunnelpi serve` runs by default, so the numbers are the edge box's."""
REAL_SEED = 11
REAL_SHIFT_ITEMS = 40
REAL_REFERENCES_PER_SKU = 9
"""6 enrolment + 3 calibration orders: a SKU gets its own bank from 3 calibration items up."""
LOWER_RATES = (0.5, 1.0, 1.5, 2.0)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """`tunnelpi serve` in a subprocess on 127.0.0.1, with /proc readings of its cost."""

    def __init__(
        self,
        workdir: Path,
        stages: str,
        fake_ms: float = 5.0,
        queue_max: int = 64,
        model: Path | None = None,
        catalog: Path | None = None,
    ) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable, "-c", "from pipeline.cli import main; main()", "serve",
            "--db", str(workdir / "edge.db"), "--port", str(self.port), "--stages", stages,
            "--queue-max", str(queue_max), "--log-level", "warning",
        ]  # fmt: skip
        cmd += ["--model", str(model)] if model else []
        cmd += ["--catalog", str(catalog)] if catalog else []
        env = {**os.environ, "TUNNELPI_TOKEN": TOKEN, "FAKE_STAGE_MS": str(fake_ms), "PYTHONPATH": str(REPO)}
        self.log_path = workdir / "service.log"
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}; see {workdir / 'service.log'}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("service did not come up within 120 s")

    def drain(self, timeout_s: float = 300.0) -> None:
        """Wait until the items of an earlier (overloaded) run are decided, so they do not load the next."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=5).json()["queue_depth"] == 0:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)

    def findings(self, prefix: str, items: int) -> dict[str, Any]:
        """What the stages said about a run's items: finding counts by stage:kind, stage errors, late verdicts."""
        kinds: dict[str, int] = {}
        errors: set[str] = set()
        missed = 0
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
            for i in range(items):
                resp = client.get(f"/v1/verdicts/{prefix}-{i:06d}")
                if resp.status_code != 200:
                    continue
                verdict = resp.json()
                missed += bool(verdict.get("deadline_missed"))
                for finding in verdict["findings"]:
                    key = f"{finding['stage']}:{finding['kind']}"
                    kinds[key] = kinds.get(key, 0) + 1
                    if finding["kind"] in ("stage_error", "image_error", "no_reference"):
                        errors.add(f"{key}: {finding['message']}"[:200])
        return {
            "finding_kinds": dict(sorted(kinds.items())),
            "stage_errors": sorted(errors)[:10],
            "deadline_missed": missed,
        }

    def log_problems(self, limit: int = 10) -> list[str]:
        """The service log's warnings, errors and tracebacks (first `limit` lines)."""
        self.log.flush()
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [ln[:200] for ln in lines if any(w in ln for w in ("WARNING", "ERROR", "Traceback", "Error"))][:limit]

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_mb(self) -> dict[str, float]:
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines() if ":" in line
        )
        return {k: int(status[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def measure(service: Service, rate: float, seconds: float, prefix: str, dataset: Path | None = None) -> dict[str, Any]:
    service.drain()
    cpu0, t0 = service.cpu_s(), time.monotonic()
    items = max(1, round(rate * seconds))
    report = stream(service.url, rate, items=items, dataset=dataset, token=TOKEN, wait_s=10, prefix=prefix).to_dict()
    report["cpu_percent"] = round(100 * (service.cpu_s() - cpu0) / (time.monotonic() - t0), 1)
    report.update({f"{k}_mb": round(v, 1) for k, v in service.memory_mb().items()})
    report["sustained"] = (
        report["rejected_429"] == 0
        and report["errors"] == 0
        and report["verdicts"] == report["accepted"] == items
        and (report["latency_p99_s"] or 1e9) <= DEADLINE_S
    )
    return report


def run_profile(
    stages: str,
    lane_seconds: float,
    step_seconds: float,
    fake_ms: float,
    *,
    model: Path | None = None,
    catalog: Path | None = None,
    dataset: Path | None = None,
    lower_rates: tuple[float, ...] = (),
) -> dict[str, Any]:
    """Lane rate, then rates stepped up while sustained; below an unsustained lane, `lower_rates` up."""
    with tempfile.TemporaryDirectory(prefix="tunnelpi-bench-") as tmp:
        service = Service(Path(tmp), stages, fake_ms=fake_ms, model=model, catalog=catalog)
        try:
            # model loading, first calls
            stream(service.url, 1.0, items=3, dataset=dataset, token=TOKEN, wait_s=180, prefix="WARM")
            lane = measure(service, LANE_RATE, lane_seconds, "LANE", dataset)
            lane.update(service.findings("LANE", lane["sent"]) if dataset else {})
            # a sustained lane is the floor of what is sustainable; steps above it find the ceiling
            steps, best = [], LANE_RATE if lane["sustained"] else 0.0
            for rate in (3, 4, 5, 10, 20, 40, 80):
                if not (lane["sustained"] and (not steps or steps[-1]["sustained"])):
                    break
                steps.append({"rate": rate, **measure(service, rate, step_seconds, f"STEP{rate}", dataset)})
                if steps[-1]["sustained"]:
                    best = float(rate)
            result = {"lane": lane, "steps": steps, "max_sustainable_rate": best if lane["sustained"] else 0.0}
            if lower_rates:
                lower: list[dict[str, Any]] = []
                for rate in lower_rates if not lane["sustained"] else ():
                    prefix = f"LOW{rate * 10:03.0f}"  # LOW005 = 0.5 items/s
                    lower.append({"rate": rate, **measure(service, rate, step_seconds, prefix, dataset)})
                    if not lower[-1]["sustained"]:
                        break
                    result["max_sustainable_rate"] = rate
                result["lower_rates"] = lower
                result["service_log_problems"] = service.log_problems()
            return result
        finally:
            service.close()


def real_setup(workdir: Path) -> dict[str, Any]:
    """A simulated shift of catalog SKUs to send, and the model folder the real stages load.

    BENCH_MODEL_DIR names an existing model folder; otherwise references for every SKU are
    simulated with the shift and enrolled (anomaly banks, ONNX export, attributes profile).
    """
    from detectors.anomaly.stage import find_model_dir
    from tunnel_sim import generate_dataset

    given = os.environ.get("BENCH_MODEL_DIR")
    dataset, started = workdir / "dataset", time.perf_counter()
    refs = 0 if given else REAL_REFERENCES_PER_SKU
    generate_dataset(dataset, REAL_SHIFT_ITEMS, REAL_SEED, references_per_sku=refs, workers=1)
    setup: dict[str, Any] = {
        "dataset": {"items": REAL_SHIFT_ITEMS, "seed": REAL_SEED, "references_per_sku": refs},
        "simulate_s": round(time.perf_counter() - started, 1),
        "enrol_s": None,
    }
    if given:
        model_dir = Path(given)
        setup["model_source"] = "BENCH_MODEL_DIR"
    else:
        from pipeline.demo import build_model_folder

        started = time.perf_counter()
        model_dir = build_model_folder(dataset, workdir / "model")
        setup["enrol_s"] = round(time.perf_counter() - started, 1)
        setup["model_source"] = "enrolled from the simulated references (temporary folder)"
    anomaly_dir = find_model_dir(model_dir)
    if anomaly_dir is None:
        raise FileNotFoundError(f"{model_dir}: no anomaly model (model.json) here or in anomaly/")
    info = json.loads((anomaly_dir / "model.json").read_text())
    kinds = [bank["kind"] for bank in info["banks"].values()]
    setup.update(
        model_dir=str(model_dir),
        model_version=info.get("version"),
        banks={kind: kinds.count(kind) for kind in sorted(set(kinds))},
        onnx=(anomaly_dir / "onnx").is_dir(),
        paths={"model": model_dir, "catalog": dataset / "catalog.json", "dataset": dataset},
    )
    return setup


def run_real(lane_seconds: float, step_seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tunnelpi-bench-real-") as tmp:
        setup = real_setup(Path(tmp))
        paths = setup.pop("paths")
        profile = run_profile(REAL_STAGES, lane_seconds, step_seconds, 0.0, lower_rates=LOWER_RATES, **paths)
    return {"setup": setup, **profile}


def real_stages_available() -> str | None:
    """None if the real detector stages import, else why not."""
    for name in ("detectors.localize", "detectors.ocr_expiry", "detectors.anomaly", "detectors.attributes"):
        try:
            importlib.import_module(name)
        except Exception as exc:
            return f"{name}: {type(exc).__name__}: {exc}"
    return None


def crash_test(items: int = 60) -> dict[str, Any]:
    from tests.test_service import run_crash_test

    with tempfile.TemporaryDirectory(prefix="tunnelpi-crash-") as tmp:
        result = run_crash_test(Path(tmp), items=items, kill_after=items // 2)
    result["ok"] = (
        result["verdicts"] == result["divert_events"] == result["sink_lines"] == result["sink_items"] == items
        and result["undelivered"] == 0
    )
    return result


def main() -> dict[str, Any]:
    lane_s = float(os.environ.get("BENCH_SERVICE_SECONDS", "60"))
    step_s = max(5.0, lane_s / 4)
    result: dict[str, Any] = {"fake": run_profile(FAKE_STAGES, lane_s, step_s, fake_ms=5.0)}
    why_not = real_stages_available()
    if why_not is None:
        try:
            result["real"] = run_real(lane_s / 2, step_s)
        except Exception as exc:  # the detector stages are optional here; report why they did not run
            result["real"] = {"error": f"{type(exc).__name__}: {exc}"}
    else:
        result["real"] = {"error": why_not}
    result["crash"] = crash_test()
    rows = []
    for profile in ("fake", "real"):
        data = result[profile]
        if "lane" not in data:
            rows.append({"metric": f"service ({profile} stages)", "value": data["error"][:80], "target": "runs"})
            continue
        lane = data["lane"]
        rows += [
            {"metric": f"capture->verdict p50 @2.4/s, {profile} stages (s)", "value": lane["latency_p50_s"],
             "target": "< 1.0"},
            {"metric": f"capture->verdict p99 @2.4/s, {profile} stages (s)", "value": lane["latency_p99_s"],
             "target": "< 1.0"},
            {"metric": f"service CPU @2.4/s, {profile} stages (% of a core)", "value": lane["cpu_percent"],
             "target": "< 100"},
            {"metric": f"service peak RSS, {profile} stages (MB)", "value": lane["VmHWM_mb"], "target": ""},
            {"metric": f"max sustainable rate, {profile} stages (items/s)", "value": data["max_sustainable_rate"],
             "target": ">= 2.4"},
        ]  # fmt: skip
        if profile == "real":
            stage_ms = " / ".join(f"{k} {v:.0f}" for k, v in lane["stage_ms_p50"].items())
            rows += [
                {"metric": "median ms per stage @2.4/s, real stages", "value": stage_ms, "target": "total < 1000"},
                {"metric": "real stages: anomaly banks / enrol time (s)",
                 "value": f"{data['setup']['banks']} / {data['setup']['enrol_s']}", "target": ""},
            ]  # fmt: skip
    crash = result["crash"]
    rows.append(
        {
            "metric": f"kill -9 mid-stream ({crash['items']} items): lost / duplicate divert signals",
            "value": f"{crash['items'] - crash['verdicts']} / {crash['sink_lines'] - crash['sink_items']}",
            "target": "0 / 0",
        }
    )
    result["rows"] = rows
    out = Path(os.environ.get("BENCH_SERVICE_OUT") or RESULTS / "service.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # run as a script: the crash check imports tests.test_service
    print(json.dumps(main()["rows"], indent=1))
