"""The edge service: HTTP ingest of captures, verdicts out, divert signals to the line.

A capture is accepted only once its images are validated, written to
``DATA_DIR/images/<item_id>/<camera>.<ext>`` and the capture is in the SQLite inbox, so a
202 means "will be decided even if the box reboots now". Workers lease from the inbox, the
verdict and its outbox events commit together, and a dispatcher delivers the events to the
divert sink. The queue is bounded (429 with Retry-After) because a verdict that arrives
after the item passed the divert gate is worth nothing. Lots are assessed as defects are
confirmed (`pipeline.lots`), and a lot that turns bad sends one quarantine notice listing its
items.

Ingest format (primary and only): ``multipart/form-data`` with a ``capture`` field holding
the item's JSON (`CaptureIn`) and one ``images`` file part per camera, whose file name is
the camera name (``top.jpg`` -> camera ``top``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field, ValidationError
from sse_starlette import EventSourceResponse

from pipeline.catalog import Catalog
from pipeline.divert import DIVERT_EVENT, REPLACEMENT_EVENT, Dispatcher, close_sinks, make_notice_sink, make_sink
from pipeline.imageio import MAX_PIXELS, ImageError, decode_image
from pipeline.kernels import one_kernel_thread
from pipeline.lots import QUARANTINE_EVENT, LotMonitor, LotSettings
from pipeline.policy import DecisionPolicy, PolicyConfig
from pipeline.runner import Inspector
from pipeline.stages import DEFAULT_STAGES, register_stage
from pipeline.store import Store
from pipeline.types import Frame, ItemCapture, Verdict, validate_item_id
from pipeline.worker import Arrival, ArrivalCache, WorkerPool

log = logging.getLogger("tunnelpi.service")

CAPTURES_PATH = "/v1/captures"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class ServiceConfig:
    db: Path
    data_dir: Path | None = None
    """Where images and the default divert logs go; defaults to the database's folder."""
    catalog: Path | None = None
    model_dir: Path | None = None
    token: str | None = None
    """Bearer token for /v1/*; None disables auth (a warning is logged)."""
    divert: str | None = None
    """Divert sink URL (see pipeline.divert); default ``log:DATA_DIR/divert.jsonl``."""
    replacement: str | None = None
    """Replacement-order sink URL; default ``log:DATA_DIR/replacement_orders.jsonl``."""
    quarantine: str | None = None
    """Lot quarantine notices (log or webhook, see pipeline.divert); default ``log:DATA_DIR/quarantine.jsonl``."""
    queue_max: int = 256
    deadline_ms: float | None = 1000.0
    stages: list[str] = field(default_factory=lambda: list(DEFAULT_STAGES))
    """Stage names, or ``name=module:factory`` to register a plugin stage first."""
    stage_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    workers: int = 2
    """Inspection worker threads: two keep both cores of a small edge box busy (OCR on one item, anomaly on another)."""
    max_upload_bytes: int = 32 * 1024 * 1024
    max_image_pixels: int = MAX_PIXELS
    lease_s: float = 30.0
    policy: dict[str, Any] = field(default_factory=dict)
    """A policy file's content: decision thresholds and an optional "lots" section (`--policy`)."""
    today: date | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceConfig:
        data = dict(data)
        for key in ("db", "data_dir", "catalog", "model_dir"):
            if data.get(key) is not None:
                data[key] = Path(data[key])
        if isinstance(data.get("stages"), str):
            data["stages"] = [s.strip() for s in data["stages"].split(",") if s.strip()]
        return cls(**data)

    @property
    def data_root(self) -> Path:
        return self.data_dir or self.db.parent


# -- request / response models -------------------------------------------------------


class FrameIn(BaseModel):
    camera: str = Field(min_length=1, max_length=64)
    timestamp: datetime | None = None


class CaptureIn(BaseModel):
    """The `capture` form field: ItemCapture metadata; `frames` names the cameras."""

    model_config = {"extra": "forbid"}

    item_id: str
    sku: str = Field(min_length=1, max_length=64)
    lot: str | None = None
    seller: str | None = None
    fc: str | None = None
    tunnel: str | None = None
    captured_at: datetime | None = None
    frames: list[FrameIn | str] = Field(min_length=1, max_length=32)

    def cameras(self) -> list[FrameIn]:
        return [FrameIn(camera=f) if isinstance(f, str) else f for f in self.frames]


class Accepted(BaseModel):
    item_id: str
    status: str = Field(description='"queued" (new) or "duplicate" (already known; not processed again)')
    state: str | None = Field(default=None, description="inbox state: pending, leased or done")


class Pending(BaseModel):
    item_id: str
    state: str


class Problem(BaseModel):
    detail: str | list[dict[str, Any]] = Field(description="what was wrong (FastAPI's field errors are a list)")


# -- metrics -------------------------------------------------------------------------


class ServiceMetrics:
    """Prometheus metrics on a private registry (several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        buckets = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.25, 1.6, 2.0, 3.0, 5.0, 10.0, 30.0)
        self.latency = Histogram(
            "tunnelpi_capture_to_verdict_seconds", "Capture accepted to verdict committed", buckets=buckets, registry=r
        )
        self.stage = Histogram(
            "tunnelpi_stage_seconds", "Time spent in each stage", ["stage"], buckets=buckets, registry=r
        )
        self.verdicts = Counter("tunnelpi_verdicts", "Verdicts by action", ["action"], registry=r)
        self.deadline_misses = Counter("tunnelpi_deadline_misses", "Verdicts that missed the deadline", registry=r)
        self.accepted = Counter("tunnelpi_captures_accepted", "Captures accepted (new)", registry=r)
        self.duplicates = Counter("tunnelpi_captures_duplicate", "Captures re-sent for a known item", registry=r)
        self.rejected = Counter("tunnelpi_requests_rejected", "Rejected requests by reason", ["reason"], registry=r)
        self.queue_depth = Gauge("tunnelpi_queue_depth", "Captures accepted and not yet decided", registry=r)
        self.deliveries = Counter(
            "tunnelpi_outbox_deliveries", "Outbox delivery attempts", ["type", "result"], registry=r
        )
        self.delivery_latency = Histogram(
            "tunnelpi_outbox_delivery_seconds", "Time for a sink to accept a signal", ["type"], registry=r
        )

    def observe_verdict(self, verdict: Verdict, latency_s: float) -> None:
        self.latency.observe(latency_s)
        self.verdicts.labels(verdict.action.value).inc()
        if verdict.deadline_missed:
            self.deadline_misses.inc()
        for stage, ms in verdict.timings_ms.items():
            if stage != "total":
                self.stage.labels(stage).observe(ms / 1000.0)

    def observe_delivery(self, event_type: str, ok: bool, seconds: float) -> None:
        self.deliveries.labels(event_type, "delivered" if ok else "failed").inc()
        if ok:
            self.delivery_latency.labels(event_type).observe(seconds)


# -- runtime -------------------------------------------------------------------------


class VerdictHub:
    """Fans verdicts out from worker threads to SSE subscribers (each on the event loop)."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._subs: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[str]]] = set()
        self._lock = threading.Lock()
        self._queue_size = queue_size

    def subscribe(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue[str]]:
        sub = (asyncio.get_running_loop(), asyncio.Queue(self._queue_size))
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: tuple[asyncio.AbstractEventLoop, asyncio.Queue[str]]) -> None:
        with self._lock:
            self._subs.discard(sub)

    def publish(self, verdict: Verdict) -> None:
        data = verdict.to_json()
        with self._lock:
            subs = list(self._subs)
        for loop, queue in subs:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_put_latest, queue, data)


def _put_latest(queue: asyncio.Queue[str], data: str) -> None:
    """A slow subscriber loses its oldest verdicts, never blocks the workers."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(data)


class QueueGauge:
    """Accepted-but-undecided count, kept in memory (COUNT(*) per request would scan)."""

    def __init__(self, initial: int) -> None:
        self._value = initial
        self._lock = threading.Lock()

    def add(self, delta: int) -> None:
        with self._lock:
            self._value = max(0, self._value + delta)

    @property
    def value(self) -> int:
        return self._value


def build_inspector(config: ServiceConfig) -> Inspector:
    names = []
    for spec in config.stages:
        name, _, target = spec.partition("=")
        if target:
            register_stage(name.strip(), target.strip())
        names.append(name.strip())
    catalog = Catalog.load(config.catalog) if config.catalog else Catalog()
    # At the edge the anomaly models run through onnxruntime, one thread per item: the workers
    # already score items side by side, and more threads than cores only wait on each other.
    # Expiry dates are read with the int8 text detector where it is built and fast: the edge is
    # CPU-bound at the lane rate, and int8 cut the OCR stage's median CPU per dated item from
    # ~600 to ~490 ms for a few small dates fp32 reads better (TUNNELPI_OCR_PRECISION wins).
    # Label OCR gets a CPU budget per item for the same reason; a label it leaves unread is a review.
    from detectors.attributes.stage import EDGE_BUDGET_MS as LABEL_BUDGET_MS
    from detectors.ocr_expiry.quantize import default_precision

    stage_kwargs = {
        "anomaly": {"runtime": "onnx", "threads": 1},
        "ocr_expiry": {"precision": default_precision("auto")},
        "attributes": {"budget_ms": LABEL_BUDGET_MS},
    } | config.stage_kwargs
    return Inspector.from_names(
        names,
        catalog,
        stage_kwargs,
        model_dir=config.model_dir,
        policy=DecisionPolicy(PolicyConfig.from_dict(config.policy)),
        today=config.today,
        deadline_ms=config.deadline_ms,
    )


class Runtime:
    """Store, workers, dispatcher and the in-memory state the HTTP handlers share."""

    def __init__(self, config: ServiceConfig, inspector: Inspector | None = None) -> None:
        self.config = config
        self.images_dir = config.data_root / "images"
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(config.db)
        # The service owns its store: whatever a previous process had leased is ours to redo now.
        self.store.recover_leases()
        self.metrics = ServiceMetrics()
        self.hub = VerdictHub()
        self.depth = QueueGauge(self.store.queue_depth())
        self.metrics.queue_depth.set_function(lambda: self.depth.value)
        self.service_s = 0.5
        """Moving average of capture->verdict seconds, for Retry-After."""
        self.inspector = inspector or build_inspector(config)
        self.arrivals = ArrivalCache()
        self.workers = WorkerPool(
            self.store,
            self.inspector,
            threads=config.workers,
            lease_s=config.lease_s,
            arrivals=self.arrivals,
            on_verdict=self._on_verdict,
            backlog=lambda: self.depth.value - config.workers,
        )
        root = config.data_root
        self.sinks = {
            DIVERT_EVENT: make_sink(config.divert or f"log:{root / 'divert.jsonl'}"),
            REPLACEMENT_EVENT: make_sink(config.replacement or f"log:{root / 'replacement_orders.jsonl'}"),
            QUARANTINE_EVENT: make_notice_sink(config.quarantine or f"log:{root / 'quarantine.jsonl'}"),
        }
        settings = LotSettings.from_dict(config.policy.get("lots", {}))
        self.lots = LotMonitor.from_settings(self.store, settings, self.inspector.catalog.category_by_sku())
        self.dispatcher = Dispatcher(self.store, self.sinks, on_result=self.metrics.observe_delivery)

    def _on_verdict(self, verdict: Verdict, latency_s: float) -> None:
        self.depth.add(-1)
        self.service_s = 0.9 * self.service_s + 0.1 * latency_s
        self.metrics.observe_verdict(verdict, latency_s)
        try:
            self.lots.observe(verdict)
        except Exception:  # the verdict is committed; `LotMonitor.sweep` assesses the lot on restart
            log.exception("lot assessment after %s failed", verdict.item_id)
        self.dispatcher.wake()
        self.hub.publish(verdict)

    def retry_after_s(self) -> int:
        return max(1, math.ceil(self.depth.value * self.service_s / self.config.workers))

    def start(self) -> None:
        if self.config.token is None:
            log.warning("no API token configured: /v1/* is open to anyone who can reach this port")
        self.lots.sweep()
        warmed = self.inspector.warm_up()
        log.info("stage threads warmed: %d", warmed)
        self.workers.start()
        self.dispatcher.start()

    def stop(self) -> None:
        self.workers.stop()
        self.dispatcher.stop()
        self.dispatcher.run_once()  # hand over what the last verdicts produced
        close_sinks(self.sinks.values())
        self.inspector.close()


# -- request handling ----------------------------------------------------------------


class _BodyTooLarge(Exception):
    pass


class GuardMiddleware:
    """Auth and upload size checks before any body is read (pure ASGI, so SSE streams).

    Doing this ahead of FastAPI means an unauthenticated or oversized upload is refused
    without parsing megabytes of multipart first.
    """

    def __init__(self, app: Any, runtime: Runtime) -> None:
        self.app, self.runtime = app, runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        token = self.runtime.config.token
        if token is not None and not _token_ok(headers.get("authorization"), token):
            self.runtime.metrics.rejected.labels("unauthorized").inc()
            await _send_json(send, 401, {"detail": "missing or wrong bearer token"}, {"www-authenticate": "Bearer"})
            return
        limit = self.runtime.config.max_upload_bytes
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            self.runtime.metrics.rejected.labels("too_large").inc()
            await _send_json(send, 413, {"detail": f"upload of {length} bytes exceeds the {limit} byte limit"})
            return
        received, rejected = 0, False

        async def limited_receive() -> Message:
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request" and not rejected:
                received += len(message.get("body", b""))
                if received > limit:
                    rejected = True
                    self.runtime.metrics.rejected.labels("too_large").inc()
                    await _send_json(send, 413, {"detail": f"upload exceeds the {limit} byte limit"})
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if not rejected:  # the 413 is already out; drop whatever the app answers
                await send(message)

        with suppress(_BodyTooLarge):
            await self.app(scope, limited_receive, guarded_send)


def _token_ok(header: str | None, token: str) -> bool:
    scheme, _, value = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


_MAGIC = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"RIFF", "webp"), (b"BM", "bmp"))


def _extension(data: bytes) -> str:
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    return "tif" if data[:4] in (b"II*\x00", b"MM\x00*") else "img"


def _camera_of(upload: UploadFile) -> str:
    name = Path(upload.filename or "").name
    return name.rsplit(".", 1)[0] if "." in name else name


def _problem(status: int, detail: str, reason: str, runtime: Runtime, headers: dict[str, str] | None = None):
    runtime.metrics.rejected.labels(reason).inc()
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


BEARER = HTTPBearer(auto_error=False, description="Bearer token (serve --token or TUNNELPI_TOKEN)")


def auth(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
    """Documents the scheme in OpenAPI; `GuardMiddleware` already enforced it before the body was read."""
    token = request.app.state.runtime.config.token
    if token is not None and (creds is None or not hmac.compare_digest(creds.credentials.encode(), token.encode())):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


def create_app(config: ServiceConfig | dict[str, Any], *, inspector: Inspector | None = None) -> FastAPI:
    """The FastAPI app; workers and the dispatcher run for the app's lifespan."""
    cfg = config if isinstance(config, ServiceConfig) else ServiceConfig.from_dict(config)
    runtime = Runtime(cfg, inspector)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The workers are the parallelism. Limited and restored on this thread: threadpoolctl
        # did not restore OpenBLAS's thread count when called from another thread.
        with one_kernel_thread():
            runtime.start()
            try:
                yield
            finally:
                await asyncio.to_thread(runtime.stop)

    app = FastAPI(
        title="tunnelpi edge service",
        version="1",
        description=__doc__,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.add_middleware(GuardMiddleware, runtime=runtime)
    errors = {
        400: {"model": Problem},
        401: {"model": Problem},
        413: {"model": Problem},
        422: {"model": Problem},
        429: {"model": Problem},
    }

    @app.post(
        CAPTURES_PATH,
        status_code=202,
        response_model=Accepted,
        responses={200: {"model": Accepted, "description": "Duplicate item_id: not processed again"}, **errors},
        dependencies=[Depends(auth)],
    )
    def post_capture(
        capture: Annotated[str, Form(description="JSON of CaptureIn: item_id, sku, lot, ..., frames (cameras)")],
        images: Annotated[list[UploadFile], File(description="One image per camera; file name = camera name")],
    ) -> Any:
        """Accept one item's capture; 202 once it is durably queued."""
        try:
            meta = CaptureIn.model_validate_json(capture)
            validate_item_id(meta.item_id)
            cameras = meta.cameras()
            for cam in cameras:
                validate_item_id(cam.camera)  # camera names become file names too
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ())) or "capture"
            return _problem(422, f"invalid capture JSON: {where}: {err['msg']}", "invalid_request", runtime)
        except ValueError as exc:
            return _problem(422, f"invalid capture: {exc}", "invalid_request", runtime)
        state = runtime.store.state(meta.item_id)
        if state is not None:
            runtime.metrics.duplicates.inc()
            return JSONResponse(Accepted(item_id=meta.item_id, status="duplicate", state=state).model_dump(), 200)
        if runtime.depth.value >= cfg.queue_max:
            retry = str(runtime.retry_after_s())
            detail = f"queue full ({runtime.depth.value} items waiting); retry later"
            return _problem(429, detail, "queue_full", runtime, {"Retry-After": retry})
        files: dict[str, UploadFile] = {}
        for upload in images:
            files.setdefault(_camera_of(upload), upload)
        wanted = [c.camera for c in cameras]
        if sorted(files) != sorted(wanted) or len(images) != len(wanted):
            got = [_camera_of(u) for u in images]
            detail = f"need exactly one image per camera {wanted} (file name = camera), got {got}"
            return _problem(422, detail, "invalid_request", runtime)
        decoded: dict[str, tuple[bytes, Any]] = {}
        for cam in wanted:
            data = files[cam].file.read()
            try:
                decoded[cam] = (data, decode_image(data, name=cam, max_pixels=cfg.max_image_pixels))
            except ImageError as exc:
                return _problem(422, f"invalid image: {exc}", "invalid_image", runtime)
        folder = runtime.images_dir / meta.item_id
        folder.mkdir(parents=True, exist_ok=True)
        frames = []
        for cam in cameras:
            data, pixels = decoded[cam.camera]
            path = folder / f"{cam.camera}.{_extension(data)}"
            _write_atomic(path, data)
            frame = Frame(camera=cam.camera, uri=str(path.resolve()), width=pixels.shape[1], height=pixels.shape[0])
            if cam.timestamp is not None:
                frame.timestamp = cam.timestamp
            frames.append(frame)
        fields = meta.model_dump(exclude={"frames"}, exclude_none=True)
        item = ItemCapture(**fields, frames=frames)
        runtime.arrivals.put(
            item.item_id, Arrival(received_at=time.time(), images={c: p for c, (_, p) in decoded.items()})
        )
        if not runtime.store.enqueue(item):  # a concurrent re-send won the race
            runtime.metrics.duplicates.inc()
            return JSONResponse(Accepted(item_id=item.item_id, status="duplicate", state="pending").model_dump(), 200)
        runtime.depth.add(1)
        runtime.metrics.accepted.inc()
        runtime.workers.notify()
        return Accepted(item_id=item.item_id, status="queued", state="pending")

    @app.get("/v1/verdicts/stream", dependencies=[Depends(auth)], responses={401: {"model": Problem}})
    async def verdict_stream(request: Request) -> EventSourceResponse:
        """Server-sent events: one `verdict` event (Verdict JSON) per decision from now on."""
        sub = runtime.hub.subscribe()

        async def events() -> AsyncIterator[dict[str, str]]:
            try:
                while True:
                    data = await sub[1].get()
                    yield {"event": "verdict", "data": data}
            finally:
                runtime.hub.unsubscribe(sub)

        return EventSourceResponse(events(), ping=15)

    @app.get(
        "/v1/verdicts/{item_id}",
        response_model=Verdict,
        responses={202: {"model": Pending}, 404: {"model": Problem}, **errors},
        dependencies=[Depends(auth)],
    )
    def get_verdict(item_id: str) -> Any:
        """The verdict (200), "not decided yet" (202) or unknown item (404)."""
        try:
            validate_item_id(item_id)
        except ValueError as exc:
            return _problem(422, str(exc), "invalid_request", runtime)
        verdict = runtime.store.verdict(item_id)
        if verdict is not None:
            return JSONResponse(json.loads(verdict.to_json()))
        state = runtime.store.state(item_id)
        if state is None:
            return JSONResponse({"detail": f"unknown item {item_id!r}"}, status_code=404)
        return JSONResponse(Pending(item_id=item_id, state=state).model_dump(), status_code=202)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Liveness for the supervisor: workers running, queue depth."""
        alive = runtime.workers.alive()
        return {
            "status": "ok" if alive == cfg.workers else "degraded",
            "workers_alive": alive,
            "queue_depth": runtime.depth.value,
            "queue_max": cfg.queue_max,
        }

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus exposition format."""
        return PlainTextResponse(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
