"""Edge service benchmark: latency at the lane rate, the highest sustainable rate, crash safety.

Runs `tunnelpi serve` as a subprocess (so CPU and RSS are the service's alone) and drives it
with `pipeline.loadgen` at 2.4 items/s (one lane), then steps the rate up until items get
429s, miss the 1 s deadline at p99, or go undecided. Fake fast stages measure the service
itself; the real detector stages, when they import, measure the whole inspection path.
Environment: BENCH_SERVICE_SECONDS (default 60) sets the lane-rate run's length.
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

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
TOKEN = "bench-token"
LANE_RATE = 2.4
DEADLINE_S = 1.0
FAKE_STAGES = "fake_localize=tests.test_service:FakeLocalize,fake_anomaly=tests.test_service:FakeAnomaly"
REAL_STAGES = "localize,ocr_expiry,anomaly"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """`tunnelpi serve` in a subprocess on 127.0.0.1, with /proc readings of its cost."""

    def __init__(self, workdir: Path, stages: str, fake_ms: float = 5.0, queue_max: int = 64) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable, "-c", "from pipeline.cli import main; main()", "serve",
            "--db", str(workdir / "edge.db"), "--port", str(self.port), "--stages", stages,
            "--queue-max", str(queue_max), "--log-level", "warning",
        ]  # fmt: skip
        env = {**os.environ, "TUNNELPI_TOKEN": TOKEN, "FAKE_STAGE_MS": str(fake_ms), "PYTHONPATH": str(REPO)}
        self.log = (workdir / "service.log").open("ab")
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


def measure(service: Service, rate: float, seconds: float, prefix: str) -> dict[str, Any]:
    cpu0, t0 = service.cpu_s(), time.monotonic()
    items = max(1, round(rate * seconds))
    report = stream(service.url, rate, items=items, token=TOKEN, wait_s=10, prefix=prefix).to_dict()
    report["cpu_percent"] = round(100 * (service.cpu_s() - cpu0) / (time.monotonic() - t0), 1)
    report.update({f"{k}_mb": round(v, 1) for k, v in service.memory_mb().items()})
    report["sustained"] = (
        report["rejected_429"] == 0
        and report["errors"] == 0
        and report["verdicts"] == report["accepted"] == items
        and (report["latency_p99_s"] or 1e9) <= DEADLINE_S
    )
    return report


def run_profile(stages: str, lane_seconds: float, step_seconds: float, fake_ms: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tunnelpi-bench-") as tmp:
        service = Service(Path(tmp), stages, fake_ms=fake_ms)
        try:
            stream(service.url, 1.0, items=3, token=TOKEN, wait_s=180, prefix="WARM")  # model loading, first calls
            lane = measure(service, LANE_RATE, lane_seconds, "LANE")
            steps, best = [], 0.0
            for rate in (5, 10, 20, 40, 80):
                if not (lane["sustained"] and (not steps or steps[-1]["sustained"])):
                    break
                steps.append({"rate": rate, **measure(service, rate, step_seconds, f"STEP{rate}")})
                if steps[-1]["sustained"]:
                    best = float(rate)
            return {"lane": lane, "steps": steps, "max_sustainable_rate": best if lane["sustained"] else 0.0}
        finally:
            service.close()


def real_stages_available() -> str | None:
    """None if the real detector stages import, else why not."""
    for name in ("detectors.localize", "detectors.ocr_expiry", "detectors.anomaly"):
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
            result["real"] = run_profile(REAL_STAGES, lane_s / 2, step_s, fake_ms=0.0)
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
    crash = result["crash"]
    rows.append(
        {
            "metric": f"kill -9 mid-stream ({crash['items']} items): lost / duplicate divert signals",
            "value": f"{crash['items'] - crash['verdicts']} / {crash['sink_lines'] - crash['sink_items']}",
            "target": "0 / 0",
        }
    )
    result["rows"] = rows
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "service.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    print(json.dumps(main()["rows"], indent=1))
