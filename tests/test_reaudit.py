"""`reaudit` on Ray Data: local and S3 (moto's HTTP server) manifests, failures, resume, parity with `inspect`."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from pipeline.catalog import Catalog
from pipeline.cli import app
from pipeline.inspect import inspect_path
from pipeline.policy import DecisionPolicy, PolicyConfig
from pipeline.reaudit import ReauditConfig, ReauditError, read_results, run_reaudit
from pipeline.stages import STAGES, StageContext, register_stage
from pipeline.types import CatalogRecord, Evidence, Finding, ItemCapture

ray = pytest.importorskip("ray")
moto_server = pytest.importorskip("moto.server")

BROKEN = {"I_MISSING": "missing", "I_EMPTY": "empty", "I_CORRUPT": "corrupt"}


class RedStage:
    """Flags items whose top view is mostly red: a fast stand-in detector with known behaviour."""

    name, version = "red", "1"

    def __call__(self, capture: ItemCapture, ctx: StageContext) -> list[Finding]:
        image = capture.images()["top"]
        red = float((image[..., 0] > 150).mean())
        if red < 0.5:
            return []
        evidence = [Evidence(camera="top", box=[2.0, 2.0, 30.0, 30.0])]
        return [Finding(stage=self.name, kind="anomaly", score=red, probability=0.95, evidence=evidence)]


@pytest.fixture
def red_stage(monkeypatch):
    monkeypatch.setitem(STAGES, "red", "")
    register_stage("red", f"{__name__}:RedStage")


def build_dataset(root: Path, items: int = 8) -> list[str]:
    """A dataset folder: `items` good/red items, plus one missing, one empty and one corrupt image."""
    (root / "images").mkdir(parents=True)
    Catalog(skus={"S1": CatalogRecord(sku="S1", title="Box", category="food_box")}).save(root / "catalog.json")
    (root / "dataset.json").write_text(json.dumps({"today": "2026-11-22"}))
    lines = []
    ids = [f"I{i:03d}" for i in range(items)] + list(BROKEN)
    for i, item in enumerate(ids):
        path = root / "images" / f"{item}.jpg"
        if item == "I_EMPTY":
            path.write_bytes(b"")
        elif item == "I_CORRUPT":
            path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        elif item != "I_MISSING":
            Image.new("RGB", (48, 40), (220, 20, 20) if i % 3 == 0 else (20, 20, 220)).save(path)
        sku = "UNKNOWN" if i == 1 else "S1"
        lines.append({"item_id": item, "sku": sku, "lot": "L1", "frames": [{"camera": "top", "uri": path.name}]})
        lines[-1]["frames"][0]["uri"] = f"images/{item}.jpg"
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return ids


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the module; more logical CPUs than actors (ray#44687 hang on small machines)."""
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    # Fake credentials for moto, set before Ray starts so its workers inherit them.
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def s3_endpoint(ray_local):
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def upload(folder: Path, endpoint: str, bucket: str, prefix: str) -> None:
    from pipeline.s3 import make_client

    client = make_client(endpoint)
    client.create_bucket(Bucket=bucket)
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != "I_MISSING.jpg":
            client.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(folder)}", Body=path.read_bytes())


def decisions(rows: list[dict]) -> dict[str, tuple[str, list[str]]]:
    return {r["item_id"]: (r["action"], list(r["reasons"])) for r in rows if r["error"] is None}


def assert_failures(rows: list[dict]) -> None:
    failed = {r["item_id"]: r["error"] for r in rows if r["error"] is not None}
    assert set(failed) == set(BROKEN)
    for item, reason in BROKEN.items():
        assert failed[item].startswith(reason + ":"), failed[item]
        assert [r["action"] for r in rows if r["item_id"] == item] == [None]


def assert_parity(rows: list[dict], dataset: Path, out: Path) -> None:
    """Same verdicts as `inspect` on the same data; `inspect` reviews the broken items, never passes them."""
    result = inspect_path(dataset, out, stages=["red"], progress=False)
    by_id = {v.item_id: v for v in result.verdicts}
    expected = {k: (v.action.value, v.reasons) for k, v in by_id.items() if k not in BROKEN}
    assert decisions(rows) == expected
    assert {by_id[k].action.value for k in BROKEN} == {"review"}
    assert {a for a, _ in expected.values()} == {"pass", "divert", "review"}


def test_local_manifest_to_local_parquet(tmp_path, ray_local, red_stage) -> None:
    dataset = tmp_path / "ds"
    ids = build_dataset(dataset)
    out = tmp_path / "results"
    config = ReauditConfig(manifest=str(dataset / "manifest.jsonl"), out=str(out), stages=["red"], batch_size=4)
    summary = run_reaudit(config)
    assert summary.items == len(ids) and summary.skipped == 0
    assert summary.failures == 3 and summary.failure_reasons == {"corrupt": 1, "empty": 1, "missing": 1}
    assert sum(summary.actions.values()) == len(ids) - 3
    assert len(list((out / "parts").glob("*.parquet"))) == 3  # one part per batch of 4
    assert len(list((out / "_runs").glob("*.json"))) == 1
    rows = read_results(str(out)).to_pylist()
    assert sorted(r["item_id"] for r in rows) == sorted(ids)
    assert_failures(rows)
    good = next(r for r in rows if r["item_id"] == "I000")
    assert json.loads(good["stage_versions"]) == {"red": "1"} and good["inspect_ms"] >= 0
    assert json.loads(good["events_json"])[0]["kind"] == "divert"
    assert_parity(rows, dataset, tmp_path / "inspect")

    with pytest.raises(ReauditError, match="--resume"):
        run_reaudit(config)


def test_reaudit_and_inspect_apply_the_same_policy_file(tmp_path, ray_local, red_stage) -> None:
    """A policy raising food boxes' anomaly divert threshold turns red items into reviews in both."""
    dataset = tmp_path / "ds"
    build_dataset(dataset)
    policy = {"by_category": {"food_box": {"anomaly": {"divert": 0.99, "review": 0.5}}}}
    out = tmp_path / "results"
    config = ReauditConfig(
        manifest=str(dataset / "manifest.jsonl"), out=str(out), stages=["red"], batch_size=4, policy=policy
    )
    run_reaudit(config)
    rows = decisions(read_results(str(out)).to_pylist())
    decision_policy = DecisionPolicy(PolicyConfig.from_dict(policy))
    inspected = inspect_path(dataset, tmp_path / "inspect", stages=["red"], progress=False, policy=decision_policy)
    assert rows == {v.item_id: (v.action.value, v.reasons) for v in inspected.verdicts if v.item_id not in BROKEN}
    assert rows["I000"][0] == "review" and "divert" not in {action for action, _ in rows.values()}


def test_s3_reaudit_failures_resume_and_parity(tmp_path, s3_endpoint, red_stage) -> None:
    local = tmp_path / "ds"
    ids = build_dataset(local)
    upload(local, s3_endpoint, "tunnel", "shift/2026-11-22")
    manifest = "s3://tunnel/shift/2026-11-22/manifest.jsonl"
    out = "s3://tunnel/reaudit/run1"
    common = ["--manifest", manifest, "--out", out, "--stages", "red", "--batch-size", "3"]
    runner = CliRunner()
    env = {"AWS_ENDPOINT_URL": s3_endpoint}

    res = runner.invoke(app, ["reaudit", *common, "--limit", "5"], env=env)
    assert res.exit_code == 0, res.output
    assert "items: 5 (skipped as already done: 0)" in res.output
    first = read_results(out, s3_endpoint).to_pylist()
    assert sorted(r["item_id"] for r in first) == sorted(ids[:5])

    res = runner.invoke(app, ["reaudit", *common], env=env)
    assert res.exit_code == 2 and "--resume" in res.output

    res = runner.invoke(app, ["reaudit", *common, "--resume", "--workers", "2"], env=env)
    assert res.exit_code == 0, res.output
    assert f"items: {len(ids) - 5} (skipped as already done: 5)" in res.output
    assert "failures: 3 (corrupt 1, empty 1, missing 1)" in res.output
    rows = read_results(out, s3_endpoint).to_pylist()
    assert sorted(r["item_id"] for r in rows) == sorted(ids)  # each item once: finished ones were skipped
    runs = {r["run_id"] for r in rows}
    assert len(runs) == 2 and {r["run_id"] for r in rows if r["item_id"] in ids[:5]} == {first[0]["run_id"]}
    assert_failures(rows)

    res = runner.invoke(app, ["reaudit", *common, "--resume"], env=env)
    assert res.exit_code == 0 and "items: 0 (skipped as already done: 11)" in res.output

    # Parity against `inspect` on a copy downloaded from the bucket.
    from pipeline.s3 import make_client

    client = make_client(s3_endpoint)
    copy = tmp_path / "copy"
    for obj in client.list_objects_v2(Bucket="tunnel", Prefix="shift/2026-11-22/")["Contents"]:
        path = copy / obj["Key"].removeprefix("shift/2026-11-22/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(client.get_object(Bucket="tunnel", Key=obj["Key"])["Body"].read())
    assert_parity(rows, copy, tmp_path / "inspect")


def test_reaudit_bad_inputs(tmp_path, s3_endpoint) -> None:
    runner = CliRunner()
    env = {"AWS_ENDPOINT_URL": s3_endpoint}
    res = runner.invoke(app, ["reaudit", "--manifest", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "catalog" in res.output
    (tmp_path / "catalog.json").write_text(json.dumps({"skus": []}))
    (tmp_path / "m.jsonl").write_text("{not json\n")
    res = runner.invoke(app, ["reaudit", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "m.jsonl:1" in res.output
    res = runner.invoke(app, ["reaudit", "--manifest", "s3://nobucket/m.jsonl", "--out", "s3://nobucket/o"], env=env)
    assert res.exit_code == 2 and "catalog" in res.output


def test_s3_reads_are_checked(tmp_path, s3_endpoint) -> None:
    from pipeline.s3 import FetchError, Location, make_client

    make_client(s3_endpoint).create_bucket(Bucket="checks")
    loc = Location("s3://checks/p", s3_endpoint)
    loc.write("a/x.bin", b"abc")
    loc.write("a/empty.bin", b"")
    assert loc.read("a/x.bin") == b"abc"
    assert list(loc.list("a", suffix=".bin")) == ["a/empty.bin", "a/x.bin"]
    for name, reason in (("a/empty.bin", "empty"), ("a/none.bin", "missing")):
        with pytest.raises(FetchError) as info:
            loc.read(name)
        assert info.value.reason == reason
    assert io.BytesIO(loc.read("s3://checks/p/a/x.bin")).read() == b"abc"
