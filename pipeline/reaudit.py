"""Batch re-audit of stored tunnel images on Ray Data: the `tunnelpi reaudit` engine.

The job is driven by a manifest (one dataset record per line, stable item ids), never by
listing the image prefix, which is slow and unbounded at millions of keys. Each Ray actor
builds one `Inspector` (the same stages and policy as `tunnelpi inspect`), fetches an item's
frames with boto3 (retries in botocore "standard" mode), and writes one Parquet part per
batch under OUT/parts/. An item whose images are missing, empty or corrupt gets a row with
`error` set and no action: it is counted, never dropped and never a crash.

Resuming reads only the `item_id` column of OUT's own parts (a few files per thousand items)
and skips those items, so a job killed half way loses at most the batches in flight.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from pipeline.catalog import Catalog
from pipeline.imageio import ImageError, decode_image
from pipeline.inspect import verdict_events
from pipeline.kernels import one_kernel_thread
from pipeline.policy import DecisionPolicy, PolicyConfig
from pipeline.runner import Inspector
from pipeline.s3 import DEFAULT_MAX_ATTEMPTS, FetchError, Location, is_s3, parent, split_s3
from pipeline.stages import DEFAULT_STAGES, STAGES, register_stage
from pipeline.types import ItemCapture, Verdict

PARTS = "parts"
RUNS = "_runs"
MAX_BLOCKS = 2000

RESULT_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("sku", pa.string()),
        ("lot", pa.string()),
        ("action", pa.string()),
        ("reasons", pa.list_(pa.string())),
        ("findings_json", pa.string()),
        ("verdict_json", pa.string()),
        ("events_json", pa.string()),
        ("error", pa.string()),
        ("stage_versions", pa.string()),
        ("timings_json", pa.string()),
        ("fetch_ms", pa.float64()),
        ("inspect_ms", pa.float64()),
        ("run_id", pa.string()),
        ("processed_at", pa.timestamp("ms", tz="UTC")),
    ]
)
"""One row per item; the same schema in every part so that any reader can concatenate them."""


class ReauditError(ValueError):
    """Bad input for a re-audit (manifest, catalog, output folder) or no Ray to run it on."""


@dataclass
class ReauditConfig:
    manifest: str
    out: str
    model_dir: str | None = None
    catalog: str | None = None
    stages: list[str] = field(default_factory=lambda: list(DEFAULT_STAGES))
    workers: int = 1
    batch_size: int = 16
    resume: bool = False
    limit: int | None = None
    today: date | None = None
    ray_address: str | None = None
    s3_endpoint_url: str | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    progress: bool = True
    policy: dict[str, Any] = field(default_factory=dict)
    """A policy file's content (`--policy`): the same thresholds as `inspect` and `serve` use."""


@dataclass
class ReauditSummary:
    out: str
    run_id: str
    items: int
    """Items processed by this run (rows written)."""
    skipped: int
    """Items already finished by an earlier run (with --resume)."""
    actions: dict[str, int]
    failures: int
    failure_reasons: dict[str, int]
    seconds: float
    items_per_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the per-item work (runs inside Ray actors; also callable without Ray) -------------------


def failure_reason(exc: Exception) -> str:
    """A short cause for the failure row and the summary (missing, empty, corrupt, ...)."""
    if isinstance(exc, FetchError):
        return exc.reason
    if isinstance(exc, ImageError):
        return "corrupt"
    if isinstance(exc, ValidationError | json.JSONDecodeError | KeyError):
        return "bad_record"
    return type(exc).__name__


def _row(record: dict[str, Any], run_id: str, **values: Any) -> dict[str, Any]:
    row = {
        "item_id": str(record.get("item_id", "")),
        "sku": record.get("sku"),
        "lot": record.get("lot"),
        "action": None,
        "reasons": [],
        "findings_json": None,
        "verdict_json": None,
        "events_json": None,
        "error": None,
        "stage_versions": None,
        "timings_json": None,
        "fetch_ms": None,
        "inspect_ms": None,
        "run_id": run_id,
        "processed_at": datetime.now(UTC),
    }
    row.update(values)
    return row


def verdict_row(
    verdict: Verdict, capture: ItemCapture, run_id: str, fetch_ms: float, inspect_ms: float
) -> dict[str, Any]:
    record = {"item_id": capture.item_id, "sku": capture.sku, "lot": capture.lot}
    return _row(
        record,
        run_id,
        action=verdict.action.value,
        reasons=list(verdict.reasons),
        findings_json=json.dumps([f.model_dump(mode="json") for f in verdict.findings]),
        verdict_json=verdict.to_json(),
        events_json=json.dumps([{"kind": k, "payload": p} for k, p in verdict_events(verdict, capture)]),
        stage_versions=json.dumps(verdict.model_versions, sort_keys=True),
        timings_json=json.dumps(verdict.timings_ms),
        fetch_ms=fetch_ms,
        inspect_ms=inspect_ms,
    )


class ItemAuditor:
    """Fetch, decode and inspect one manifest record at a time with one long-lived `Inspector`."""

    def __init__(
        self,
        *,
        stages: list[str],
        catalog: dict[str, Any],
        images_base: str,
        run_id: str,
        model_dir: str | None = None,
        today: str | None = None,
        stage_targets: dict[str, str] | None = None,
        endpoint_url: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        policy: dict[str, Any] | None = None,
    ) -> None:
        # The stage registry is per process: plugin/test stages registered in the driver are re-registered here.
        for name, target in (stage_targets or {}).items():
            if STAGES.get(name) != target:
                register_stage(name, target)
        self.run_id = run_id
        self.images = Location(images_base, endpoint_url, max_attempts)
        self.inspector = Inspector.from_names(
            stages,
            Catalog.from_dict(catalog),
            model_dir=Path(model_dir) if model_dir else None,
            today=date.fromisoformat(today) if today else None,
            policy=DecisionPolicy(PolicyConfig.from_dict(policy or {})),
        )
        self._kernels = ExitStack()
        self._kernels.enter_context(one_kernel_thread())  # one actor per core: the actors are the parallelism

    def audit(self, line: str) -> dict[str, Any]:
        record: dict[str, Any] = {}
        try:
            record = json.loads(line)
            capture = ItemCapture.from_record(record)
            start = time.perf_counter()
            for frame in capture.frames:
                uri = self.images.child(frame.uri)
                frame.with_image(decode_image(self.images.read(uri), name=uri))
            fetch_ms = (time.perf_counter() - start) * 1000.0
        except Exception as exc:  # an unusable item becomes a failure row, never a lost batch
            return _row(record, self.run_id, error=f"{failure_reason(exc)}: {exc}")
        start = time.perf_counter()
        verdict = self.inspector.inspect(capture, started=start)
        return verdict_row(verdict, capture, self.run_id, fetch_ms, (time.perf_counter() - start) * 1000.0)

    def close(self) -> None:
        self.inspector.close()
        self._kernels.close()


class BatchAuditor:
    """The Ray Data callable class: audits a batch, writes it as one Parquet part, returns a digest.

    Writing inside the actor (instead of a final `write_parquet`) makes each finished batch
    durable at once, which is what `--resume` relies on.
    """

    def __init__(self, out: str, endpoint_url: str | None = None, **auditor_kwargs: Any) -> None:
        self.out = Location(out, endpoint_url, auditor_kwargs.get("max_attempts", DEFAULT_MAX_ATTEMPTS))
        self.auditor = ItemAuditor(endpoint_url=endpoint_url, **auditor_kwargs)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        rows = [self.auditor.audit(str(line)) for line in batch["line"]]
        write_part(self.out, rows, self.auditor.run_id)
        return {
            "item_id": [r["item_id"] for r in rows],
            "action": [r["action"] or "" for r in rows],
            "error": [r["error"] or "" for r in rows],
        }


def write_part(out: Location, rows: list[dict[str, Any]], run_id: str) -> str:
    table = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return out.write(f"{PARTS}/part-{run_id}-{uuid.uuid4().hex[:12]}.parquet", buf.getvalue())


# --- the driver ----------------------------------------------------------------------------


def finished_items(out: Location) -> set[str]:
    """Item ids already written under OUT (reads only OUT's part files, only their item_id column)."""
    done: set[str] = set()
    for name in out.list(PARTS, suffix=".parquet"):
        table = pq.read_table(io.BytesIO(out.read(name)), columns=["item_id"])
        done.update(table.column("item_id").to_pylist())
    return done


def read_results(out: str, endpoint_url: str | None = None) -> pa.Table:
    """All result rows under OUT as one table (for reports and tests)."""
    loc = Location(out, endpoint_url)
    tables = [pq.read_table(io.BytesIO(loc.read(n))) for n in loc.list(PARTS, suffix=".parquet")]
    return pa.concat_tables(tables) if tables else RESULT_SCHEMA.empty_table()


def _raw_lines(manifest: Location, uri: str) -> Iterator[bytes]:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        try:
            body = manifest.client.get_object(Bucket=bucket, Key=key)["Body"]
        except Exception as exc:
            raise ReauditError(f"{uri}: cannot read the manifest ({exc})") from exc
        yield from body.iter_lines()
        return
    if not Path(uri).is_file():
        raise ReauditError(f"{uri}: manifest not found")
    with Path(uri).open("rb") as fh:
        yield from fh


def manifest_lines(manifest: Location, uri: str) -> Iterator[tuple[str, str]]:
    """(item_id, raw line) per manifest record, streamed (an S3 manifest is not loaded whole)."""
    lines = _raw_lines(manifest, uri)
    for lineno, raw in enumerate(lines, 1):
        line = raw.decode("utf-8").strip()
        if not line:
            continue
        try:
            item_id = json.loads(line)["item_id"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ReauditError(f"{uri}:{lineno}: not a manifest record with an item_id ({exc})") from exc
        yield str(item_id), line


def load_catalog(config: ReauditConfig, manifest_dir: Location) -> Catalog:
    """`--catalog`, else catalog.json beside the manifest."""
    uri = absolute(config.catalog) if config.catalog else manifest_dir.child("catalog.json")
    try:
        data = json.loads(manifest_dir.read(uri))
    except FetchError as exc:
        raise ReauditError(f"catalog {exc} (pass --catalog)") from exc
    except json.JSONDecodeError as exc:
        raise ReauditError(f"{uri}: malformed catalog JSON ({exc})") from exc
    return Catalog.from_dict(data, source=uri)


def dataset_today(config: ReauditConfig, manifest_dir: Location) -> date | None:
    """`--today`, else the dataset.json beside the manifest (as `inspect` does), else the workers' today."""
    if config.today is not None:
        return config.today
    try:
        info = json.loads(manifest_dir.read("dataset.json"))
    except (FetchError, json.JSONDecodeError):
        return None
    return date.fromisoformat(info["today"]) if info.get("today") else None


def absolute(uri: str) -> str:
    """Local paths made absolute: Ray workers do not share the driver's working directory."""
    return uri if is_s3(uri) else str(Path(uri).resolve())


def start_ray(address: str | None, workers: int) -> Any:
    """Connect to a cluster, or start a local Ray with room for the actors.

    On a small machine a job whose actors take every CPU hangs (ray#44687), so a local Ray
    declares at least two logical CPUs more than the actor pool needs.
    """
    try:
        import ray
    except ImportError as exc:
        raise ReauditError("reaudit needs Ray Data: pip install 'ray[data]'") from exc
    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=max(4, workers + 2), include_dashboard=False, log_to_driver=False)
    return ray


def run_reaudit(config: ReauditConfig) -> ReauditSummary:
    if config.workers < 1 or config.batch_size < 1:
        raise ReauditError("--workers and the batch size must be at least 1")
    ray = start_ray(config.ray_address, config.workers)
    started = time.perf_counter()
    endpoint = config.s3_endpoint_url
    manifest_uri, out_uri = absolute(config.manifest), absolute(config.out)
    manifest_dir = Location(parent(manifest_uri), endpoint, config.max_attempts)
    out = Location(out_uri, endpoint, config.max_attempts)
    catalog = load_catalog(config, manifest_dir)
    today = dataset_today(config, manifest_dir)

    done = finished_items(out)
    if done and not config.resume:
        raise ReauditError(f"{config.out} already holds results for {len(done)} items: pass --resume or a new --out")
    pending: list[dict[str, str]] = []
    seen: set[str] = set()
    skipped = 0
    for item_id, line in manifest_lines(manifest_dir, manifest_uri):
        if config.limit is not None and len(pending) + skipped >= config.limit:
            break
        if item_id in done:
            skipped += 1
        elif item_id not in seen:  # a repeated id would otherwise be audited twice
            seen.add(item_id)
            pending.append({"item_id": item_id, "line": line})

    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    actions: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    if pending:
        from ray.data import DataContext
        from tqdm import tqdm

        DataContext.get_current().enable_progress_bars = False  # one bar: ours, counted in items
        auditor_kwargs = {
            "out": out_uri,
            "endpoint_url": endpoint,
            "stages": list(config.stages),
            "catalog": catalog.to_dict(),
            "images_base": manifest_dir.uri,
            "run_id": run_id,
            "model_dir": str(Path(config.model_dir).resolve()) if config.model_dir else None,
            "today": today.isoformat() if today else None,
            "stage_targets": {n: STAGES[n] for n in config.stages if n in STAGES},
            "max_attempts": config.max_attempts,
            "policy": config.policy,
        }
        # A block per batch (so a part is a full batch), bounded so huge manifests keep few blocks.
        blocks = max(1, min(-(-len(pending) // config.batch_size), MAX_BLOCKS))
        ds = ray.data.from_items(pending, override_num_blocks=blocks).map_batches(
            BatchAuditor,
            batch_size=config.batch_size,
            compute=ray.data.ActorPoolStrategy(size=config.workers),
            num_cpus=1,
            fn_constructor_kwargs=auditor_kwargs,
        )
        with tqdm(total=len(pending), desc="reaudit", unit="item", disable=not config.progress) as bar:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for action, error in zip(batch["action"], batch["error"], strict=True):
                    if error:
                        reasons[str(error).split(":", 1)[0]] += 1
                    else:
                        actions[str(action)] += 1
                bar.update(len(batch["item_id"]))
    seconds = time.perf_counter() - started
    processed = sum(actions.values()) + sum(reasons.values())
    summary = ReauditSummary(
        out=out_uri,
        run_id=run_id,
        items=processed,
        skipped=skipped,
        actions=dict(sorted(actions.items())),
        failures=sum(reasons.values()),
        failure_reasons=dict(sorted(reasons.items())),
        seconds=round(seconds, 3),
        items_per_s=round(processed / seconds, 3) if seconds > 0 else 0.0,
    )
    record = summary.to_dict() | {"manifest": config.manifest, "stages": list(config.stages), "workers": config.workers}
    out.write(f"{RUNS}/{run_id}.json", json.dumps(record, indent=1).encode())
    return summary
