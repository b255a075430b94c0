"""The edge service over real HTTP (uvicorn on 127.0.0.1) with small fake stages.

The fake stages live here so the crash test's service subprocess can load them as plugins
(``--stages fake_localize=tests.test_service:FakeLocalize,...``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn

from pipeline.imageio import encode_jpeg
from pipeline.lots import QUARANTINE_EVENT
from pipeline.service import ServiceConfig, create_app
from pipeline.store import Store
from pipeline.types import Action, Finding, Frame, ItemCapture, Verdict

REPO = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
GATE = threading.Event()
"""Holds `GatedStage` until set, so a test can fill the queue."""


class FakeLocalize:
    name, version = "localize", "fake-1"

    def __call__(self, capture, ctx) -> list[Finding]:
        ctx.shared["images"] = capture.images()
        return []


class FakeAnomaly:
    """Diverts items whose first camera is mostly red; sleeps FAKE_STAGE_MS (env) per item."""

    name, version = "anomaly", "fake-1"

    def __init__(self) -> None:
        self.sleep_s = float(os.environ.get("FAKE_STAGE_MS", "0")) / 1000.0

    def __call__(self, capture, ctx) -> list[Finding]:
        time.sleep(self.sleep_s)
        image = next(iter(ctx.shared["images"].values()))
        red = float(image[..., 0].mean() - image[..., 1:].mean()) / 255.0
        p = min(1.0, max(0.0, red))
        return [Finding(stage=self.name, kind="anomaly", score=p, probability=p)]


class GatedStage:
    name, version = "gate", "fake-1"

    def __call__(self, capture, ctx) -> list[Finding]:
        GATE.wait(10)
        return []


BACKLOGS: dict[str, int] = {}


class BacklogProbe:
    name, version = "backlog_probe", "fake-1"

    def __call__(self, capture, ctx) -> list[Finding]:
        BACKLOGS[capture.item_id] = ctx.backlog
        return []


FAKE_STAGES = [
    "fake_localize=tests.test_service:FakeLocalize",
    "fake_anomaly=tests.test_service:FakeAnomaly",
]
NO_AUDIT = {"audit_rate": 0.0}


def image_bytes(colour: tuple[int, int, int] = (90, 90, 90), size: int = 64) -> bytes:
    image = np.zeros((size, size, 3), np.uint8)
    image[:] = colour
    return encode_jpeg(image)


RED = (250, 10, 10)


def capture_parts(
    item_id: str, sku: str = "F1", cameras: tuple[str, ...] = ("top", "side"), colour=(90, 90, 90), **extra: Any
) -> tuple[dict[str, str], list[tuple[str, tuple[str, bytes, str]]]]:
    meta = {"item_id": item_id, "sku": sku, "lot": "L1", "frames": list(cameras), **extra}
    files = [("images", (f"{cam}.jpg", image_bytes(colour), "image/jpeg")) for cam in cameras]
    return {"capture": json.dumps(meta)}, files


def write_catalog(path: Path) -> Path:
    path.write_text(json.dumps({"skus": [{"sku": "F1", "title": "Cereal", "category": "food_box"}]}))
    return path


def wait_for(check: Callable[[], Any], timeout_s: float = 10.0, every_s: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy, at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"condition not met within {timeout_s}s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running(tmp_path: Path, **overrides: Any) -> Iterator[tuple[httpx.Client, Any]]:
    """A real uvicorn server on 127.0.0.1 in a thread; yields (client, app)."""
    options: dict[str, Any] = {
        "db": tmp_path / "edge.db",
        "catalog": write_catalog(tmp_path / "catalog.json"),
        "token": TOKEN,
        "stages": FAKE_STAGES,
        "policy": NO_AUDIT,
        **overrides,
    }
    app = create_app(ServiceConfig(**options))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 10)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client, app
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def post(client: httpx.Client, item_id: str, headers: dict[str, str] | None = AUTH, **kw: Any) -> httpx.Response:
    data, files = capture_parts(item_id, **kw)
    return client.post("/v1/captures", data=data, files=files, headers=headers)


def verdict_of(client: httpx.Client, item_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        resp = client.get(f"/v1/verdicts/{item_id}", headers=AUTH)
        return resp.json() if resp.status_code == 200 else None

    return wait_for(done, timeout_s)


def log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_auth_required_on_v1_only(tmp_path: Path) -> None:
    with running(tmp_path) as (client, _):
        assert post(client, "A1", headers=None).status_code == 401
        assert post(client, "A1", headers={"Authorization": "Bearer wrong"}).status_code == 401
        resp = client.get("/v1/verdicts/A1", headers={"Authorization": "Basic " + TOKEN})
        assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
        assert client.get("/v1/verdicts/stream").status_code == 401
        assert client.get("/healthz").json()["status"] == "ok"
        assert client.get("/v1/verdicts/A1", headers=AUTH).status_code == 404


def test_capture_to_verdict_divert_signal_and_idempotent_repost(tmp_path: Path) -> None:
    with running(tmp_path) as (client, _):
        resp = post(client, "S0001-000001", colour=RED)
        assert resp.status_code == 202 and resp.json()["item_id"] == "S0001-000001"
        assert (tmp_path / "images" / "S0001-000001" / "top.jpg").is_file()
        verdict = verdict_of(client, "S0001-000001")
        assert verdict["action"] == "divert" and verdict["model_versions"]["anomaly"] == "fake-1"
        again = post(client, "S0001-000001", colour=RED)
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        assert post(client, "S0001-000002").status_code == 202
        assert verdict_of(client, "S0001-000002")["action"] == "pass"
        wait_for(lambda: len(log_lines(tmp_path / "divert.jsonl")) == 2)
        wait_for(lambda: log_lines(tmp_path / "replacement_orders.jsonl"))
    store = Store(tmp_path / "edge.db")
    assert [e.item_id for e in store.events("divert")] == ["S0001-000001", "S0001-000002"]
    assert [e.item_id for e in store.events("replacement_order")] == ["S0001-000001"]
    assert not store.pending_events()
    sent = {line["item_id"]: line["action"] for line in log_lines(tmp_path / "divert.jsonl")}
    assert sent == {"S0001-000001": "divert", "S0001-000002": "pass"}


def test_a_lot_turning_bad_sends_one_quarantine_notice(tmp_path: Path) -> None:
    with running(tmp_path) as (client, _):
        for i in range(1, 4):
            assert post(client, f"S0001-00000{i}", lot="L1").status_code == 202
        for i in range(4, 10):
            assert post(client, f"S0001-00000{i}", lot="BAD", colour=RED).status_code == 202
        for i in range(1, 10):
            verdict_of(client, f"S0001-00000{i}")
        (notice,) = wait_for(lambda: log_lines(tmp_path / "quarantine.jsonl"))
    assert notice["lot"] == "BAD" and notice["dedup_key"] == "quarantine:BAD"
    assert set(notice["items_in_building"]) <= {f"S0001-00000{i}" for i in range(4, 10)}
    assert notice["triggered_by"] in notice["items_in_building"]
    assert [e.payload["lot"] for e in Store(tmp_path / "edge.db").events(QUARANTINE_EVENT)] == ["BAD"]


def test_a_restart_assesses_lots_whose_defects_a_crash_left_unassessed(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.db")
    for i in range(1, 6):
        item_id = f"S0001-00000{i}"
        store.enqueue(ItemCapture(item_id=item_id, sku="F1", lot="BAD", frames=[Frame(camera="top", uri="x.jpg")]))
        finding = Finding(stage="fake_anomaly", kind="anomaly", score=0.95, probability=0.95)
        store.complete(Verdict(item_id=item_id, sku="F1", action=Action.DIVERT, findings=[finding]))
    store.close()
    with running(tmp_path):
        (notice,) = wait_for(lambda: log_lines(tmp_path / "quarantine.jsonl"))
    assert notice["lot"] == "BAD" and notice["triggered_by"] is None


def test_stages_see_how_many_items_wait_behind_theirs(tmp_path: Path) -> None:
    """One worker held on the first item while three more arrive: each item's stages are told
    how many were still waiting when it started (the OCR stage skips fallbacks then)."""
    GATE.clear()
    BACKLOGS.clear()
    stages = [
        *FAKE_STAGES,
        "fake_gate=tests.test_service:GatedStage",
        "backlog_probe=tests.test_service:BacklogProbe",
    ]
    try:
        with running(tmp_path, workers=1, stages=stages) as (client, _):
            assert post(client, "B0").status_code == 202
            wait_for(lambda: "B0" in BACKLOGS)
            assert [post(client, f"B{i}").status_code for i in (1, 2, 3)] == [202, 202, 202]
            GATE.set()
            verdict_of(client, "B3")
    finally:
        GATE.set()
    assert BACKLOGS == {"B0": 0, "B1": 2, "B2": 1, "B3": 0}


def test_unknown_sku_is_accepted_and_reviewed(tmp_path: Path) -> None:
    with running(tmp_path) as (client, _):
        assert post(client, "U1", sku="NOT-IN-CATALOG").status_code == 202
        verdict = verdict_of(client, "U1")
        assert verdict["action"] == "review" and "not in the catalog" in verdict["reasons"][0]


def test_queue_full_gives_429_with_retry_after(tmp_path: Path) -> None:
    GATE.clear()
    stages = [*FAKE_STAGES, "fake_gate=tests.test_service:GatedStage"]
    try:
        with running(tmp_path, queue_max=2, stages=stages) as (client, _):
            assert [post(client, f"Q{i}").status_code for i in range(2)] == [202, 202]
            full = post(client, "Q2")
            assert full.status_code == 429 and int(full.headers["Retry-After"]) >= 1
            assert "queue full" in full.json()["detail"]
            GATE.set()
            verdict_of(client, "Q1")
            assert post(client, "Q2").status_code == 202
            metrics = client.get("/metrics").text
            assert 'tunnelpi_requests_rejected_total{reason="queue_full"} 1.0' in metrics
    finally:
        GATE.set()


def test_oversized_upload_is_413(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    big = encode_jpeg(noise, quality=100)
    with running(tmp_path, max_upload_bytes=len(big) // 2) as (client, _):
        files = [("images", ("top.jpg", big, "image/jpeg"))]
        data = {"capture": json.dumps({"item_id": "B1", "sku": "F1", "frames": ["top"]})}
        resp = client.post("/v1/captures", data=data, files=files, headers=AUTH)
        assert resp.status_code == 413 and "limit" in resp.json()["detail"]

        built = client.build_request("POST", "/v1/captures", data=data, files=files)
        body = built.read()

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            yield from (body[i : i + 8192] for i in range(0, len(body), 8192))

        headers = {**AUTH, "Content-Type": built.headers["Content-Type"]}
        resp = client.post("/v1/captures", content=chunks(), headers=headers)
        assert resp.status_code == 413
        assert client.get("/v1/verdicts/B1", headers=AUTH).status_code == 404


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A valid-looking PNG header claiming 900 MP with a tiny body."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_bad_images_and_malformed_captures_are_422(tmp_path: Path) -> None:
    def send(meta: Any, files: list[tuple[str, bytes]]) -> httpx.Response:
        capture = meta if isinstance(meta, str) else json.dumps(meta)
        parts = [("images", (name, data, "application/octet-stream")) for name, data in files]
        return client.post("/v1/captures", data={"capture": capture}, files=parts, headers=AUTH)

    good = image_bytes()
    meta = {"item_id": "V1", "sku": "F1", "frames": ["top"]}
    with running(tmp_path) as (client, _):
        resp = send(meta, [("top.png", bomb_png())])
        assert resp.status_code == 422 and "decompression bomb" in resp.json()["detail"]
        resp = send(meta, [("top.jpg", b"not an image at all")])
        assert resp.status_code == 422 and "not a decodable image" in resp.json()["detail"]
        resp = send(meta, [("top.jpg", good[: len(good) // 2])])
        assert resp.status_code == 422 and "invalid image" in resp.json()["detail"]
        resp = send("{not json", [("top.jpg", good)])
        assert resp.status_code == 422 and "invalid capture JSON" in resp.json()["detail"]
        resp = send({**meta, "frames": ["top", "side"]}, [("top.jpg", good)])
        assert resp.status_code == 422 and "one image per camera" in resp.json()["detail"]
        resp = client.post("/v1/captures", data={"capture": json.dumps(meta)}, headers=AUTH)
        assert resp.status_code == 422
        assert send(meta, [("top.jpg", good)]).status_code == 202  # nothing above was half-stored


def test_path_traversal_ids_are_rejected(tmp_path: Path) -> None:
    good = image_bytes()
    with running(tmp_path, data_dir=tmp_path / "data") as (client, _):
        for item_id in ("../escape", "a/../../b", "..", "/etc/passwd", ".hidden", "a\\b"):
            meta = {"item_id": item_id, "sku": "F1", "frames": ["top"]}
            files = [("images", ("top.jpg", good, "image/jpeg"))]
            resp = client.post("/v1/captures", data={"capture": json.dumps(meta)}, files=files, headers=AUTH)
            assert resp.status_code == 422, item_id
        meta = {"item_id": "P1", "sku": "F1", "frames": ["../../top"]}
        files = [("images", ("../../top.jpg", good, "image/jpeg"))]
        resp = client.post("/v1/captures", data={"capture": json.dumps(meta)}, files=files, headers=AUTH)
        assert resp.status_code == 422
        assert client.get("/v1/verdicts/..%2F..%2Fetc", headers=AUTH).status_code in (404, 422)
    written = {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()}
    assert written <= {"data", "edge.db", "edge.db-wal", "edge.db-shm", "catalog.json"}
    assert not list((tmp_path / "data" / "images").iterdir())


def test_sse_stream_delivers_verdicts(tmp_path: Path) -> None:
    got: list[dict[str, Any]] = []
    with running(tmp_path) as (client, _):
        base = str(client.base_url)

        def listen() -> None:
            with (
                httpx.Client(base_url=base, timeout=10) as sse,
                sse.stream("GET", "/v1/verdicts/stream", headers=AUTH) as resp,
            ):
                for line in resp.iter_lines():
                    if line.startswith("data:"):
                        got.append(json.loads(line[5:]))
                        return

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        time.sleep(0.3)  # let the subscription register before the verdict is published
        assert post(client, "E1").status_code == 202
        thread.join(10)
    assert got and got[0]["item_id"] == "E1" and got[0]["action"] == "pass"


def test_metrics_expose_latency_stages_queue_and_counters(tmp_path: Path) -> None:
    with running(tmp_path, deadline_ms=1e-3) as (client, _):
        assert post(client, "M1").status_code == 202
        assert verdict_of(client, "M1")["deadline_missed"] is True
        post(client, "M2", headers=None)
        text = client.get("/metrics").text
    for needle in (
        "tunnelpi_capture_to_verdict_seconds_bucket",
        'tunnelpi_stage_seconds_count{stage="anomaly"} 1.0',
        "tunnelpi_queue_depth 0.0",
        'tunnelpi_verdicts_total{action="review"} 1.0',
        "tunnelpi_deadline_misses_total 1.0",
        'tunnelpi_requests_rejected_total{reason="unauthorized"} 1.0',
        "tunnelpi_captures_accepted_total 1.0",
    ):
        assert needle in text, needle


def test_openapi_documents_the_api(tmp_path: Path) -> None:
    with running(tmp_path) as (client, _):
        spec = client.get("/openapi.json").json()
    assert {"/v1/captures", "/v1/verdicts/{item_id}", "/v1/verdicts/stream", "/healthz"} <= set(spec["paths"])
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def start_service(tmp_path: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-c", "from pipeline.cli import main; main()", "serve",
        "--db", str(tmp_path / "edge.db"),
        "--catalog", str(write_catalog(tmp_path / "catalog.json")),
        "--port", str(port), "--lease-s", "1", "--log-level", "warning",
        "--stages", ",".join(FAKE_STAGES),
    ]  # fmt: skip
    log = (tmp_path / "service.log").open("ab")
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def run_crash_test(tmp_path: Path, items: int = 40, kill_after: int = 15) -> dict[str, Any]:
    """Post `items` captures, SIGKILL the service after `kill_after`, restart, re-post the rest.

    Returns counts from the store and the divert sink; used by the test and the benchmark.
    """
    env = {**os.environ, "TUNNELPI_TOKEN": TOKEN, "FAKE_STAGE_MS": "40", "PYTHONPATH": str(REPO)}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ids = [f"C{i:04d}" for i in range(items)]
    proc = start_service(tmp_path, port, env)
    accepted: set[str] = set()
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            wait_for(lambda: _up(client), 30)
            for item_id in ids[:kill_after]:
                colour = RED if int(item_id[1:]) % 3 == 0 else (90, 90, 90)
                if post(client, item_id, colour=colour).status_code == 202:
                    accepted.add(item_id)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        store = Store(tmp_path / "edge.db")
        decided_before = len(store.verdicts())
        proc = start_service(tmp_path, port, env)
        with httpx.Client(base_url=base, timeout=10) as client:
            wait_for(lambda: _up(client), 30)
            for item_id in ids:  # the camera re-sends everything it did not see acknowledged
                colour = RED if int(item_id[1:]) % 3 == 0 else (90, 90, 90)
                post(client, item_id, colour=colour)
            for item_id in ids:
                verdict_of(client, item_id, 30)
            wait_for(lambda: not store.pending_events(), 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    sent = log_lines(tmp_path / "divert.jsonl")
    return {
        "items": items,
        "accepted_before_kill": len(accepted),
        "decided_before_kill": decided_before,
        "verdicts": len(store.verdicts()),
        "divert_events": len(store.events("divert")),
        "divert_event_items": len({e.item_id for e in store.events("divert")}),
        "sink_lines": len(sent),
        "sink_items": len({line["item_id"] for line in sent}),
        "undelivered": len(store.pending_events()),
    }


def _up(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def test_kill_9_mid_stream_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    result = run_crash_test(tmp_path)
    n = result["items"]
    assert result["decided_before_kill"] < result["accepted_before_kill"], "kill must land mid-stream"
    assert result["verdicts"] == n
    assert result["divert_events"] == result["divert_event_items"] == n
    assert result["sink_lines"] == result["sink_items"] == n
    assert result["undelivered"] == 0


def write_dataset(root: Path, n: int) -> Path:
    """A minimal dataset folder in the README layout."""
    root.mkdir(parents=True)
    write_catalog(root / "catalog.json")
    lines = []
    for i in range(n):
        item_id = f"D{i:03d}"
        (root / "images" / item_id).mkdir(parents=True)
        (root / "images" / item_id / "top.jpg").write_bytes(image_bytes(RED if i == 0 else (90, 90, 90)))
        frames = [{"camera": "top", "uri": f"images/{item_id}/top.jpg"}]
        lines.append(json.dumps({"item_id": item_id, "sku": "F1", "lot": "L1", "split": "test", "frames": frames}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_loadgen_streams_a_dataset_and_times_verdicts(tmp_path: Path) -> None:
    from pipeline.loadgen import stream

    dataset = write_dataset(tmp_path / "ds", 6)
    (tmp_path / "svc").mkdir()
    with running(tmp_path / "svc") as (client, _):
        report = stream(str(client.base_url), rate=20, items=10, dataset=dataset, token=TOKEN, wait_s=10)
        again = stream(str(client.base_url), rate=50, items=3, dataset=dataset, token=TOKEN, wait_s=1)
    assert report.sent == report.accepted == report.verdicts == 6
    assert report.actions == {"divert": 1, "pass": 5}
    assert 0 < report.latency_p50_s <= report.latency_p99_s < 5
    assert again.duplicates == 3 and again.accepted == 0


def test_loadgen_replays_a_dataset_under_fresh_ids_and_reports_stage_times(tmp_path: Path) -> None:
    from pipeline.loadgen import stream

    dataset = write_dataset(tmp_path / "ds", 3)
    (tmp_path / "svc").mkdir()
    with running(tmp_path / "svc") as (client, _):
        first = stream(str(client.base_url), rate=50, items=7, dataset=dataset, token=TOKEN, wait_s=10, prefix="A")
        second = stream(str(client.base_url), rate=50, items=3, dataset=dataset, token=TOKEN, wait_s=10, prefix="B")
        replayed = verdict_of(client, "A-000003")
    assert first.sent == first.accepted == first.verdicts == 7 and first.duplicates == 0
    assert first.actions == {"divert": 3, "pass": 4}  # D000 (red) leads each pass: A-000000, -3, -6
    assert replayed["action"] == "divert"
    assert second.accepted == second.verdicts == 3 and second.duplicates == 0
    assert set(first.stage_ms_p50) == {"localize", "anomaly", "total"}
    assert 0 <= first.stage_ms_p50["localize"] <= first.stage_ms_p50["total"]


def test_the_edge_service_bounds_label_ocr(tmp_path) -> None:
    from detectors.attributes.stage import EDGE_BUDGET_MS
    from pipeline.service import ServiceConfig, build_inspector

    inspector = build_inspector(ServiceConfig(db=tmp_path / "edge.db", stages=["attributes"]))
    assert inspector.stages[0].budget_ms == EDGE_BUDGET_MS
    config = ServiceConfig(db=tmp_path / "edge.db", stages=["attributes"], stage_kwargs={"attributes": {}})
    assert build_inspector(config).stages[0].budget_ms is None  # the operator's stage settings win
