"""deploy/ stays runnable: manifests parse, and every `tunnelpi ...` line in them is a valid CLI call."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.lots import LotSettings
from pipeline.policy import PolicyConfig, read_policy_file

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
REPO = DEPLOY.parent
TRAINING_ONLY = {"torch", "torchvision", "timm", "transformers", "sentence-transformers", "ray"}
"""onnx is not among them: the edge image builds its int8 OCR detector with it."""


def _yaml(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(DEPLOY / "tunnelpi-edge.service")
    return parser


def _cli_ok(args: list[str]) -> None:
    """The command line parses with the real CLI (--help stops before anything runs)."""
    res = CliRunner().invoke(app, [*args, "--help"])
    assert res.exit_code == 0, f"tunnelpi {shlex.join(args)}: {res.output}"
    # --help alone would accept unknown options, so check each option is one the command knows.
    known = set(re.findall(r"--[a-z][a-z0-9-]*", res.output))
    unknown = [a for a in args if a.startswith("--") and a not in known]
    assert not unknown, f"tunnelpi {shlex.join(args)}: unknown options {unknown}"


def _command_lines() -> list[list[str]]:
    """Every tunnelpi invocation in deploy/: compose commands, the unit's ExecStart, the RayJob entrypoint."""
    compose = _yaml("compose.yaml")
    lines = [svc["command"] for svc in compose["services"].values() if svc.get("image", "").startswith("tunnelpi")]
    exec_start = shlex.split(_unit()["Service"]["ExecStart"])
    lines.append(exec_start[1:])
    entry = shlex.split(_yaml("rayjob.yaml")["spec"]["entrypoint"])
    lines.append(entry[1:])
    docker_cmd = re.search(r"^CMD (\[.*\])$", (DEPLOY / "Dockerfile.edge").read_text(), re.M)
    assert docker_cmd, "Dockerfile.edge has no exec-form CMD"
    lines.append(yaml.safe_load(docker_cmd.group(1)))
    return lines


def test_compose_has_edge_store_and_camera() -> None:
    services = _yaml("compose.yaml")["services"]
    assert set(services) == {"edge", "minio", "camera"}
    assert services["edge"]["command"][0] == "serve"
    assert services["camera"]["command"][:2] == ["sim", "stream"]
    assert "http://edge:8000" in services["camera"]["command"]
    assert services["minio"]["image"].startswith("minio/minio")
    for svc in services.values():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{port}: publish on loopback only"


def test_systemd_unit() -> None:
    unit = _unit()
    service = unit["Service"]
    assert shlex.split(service["ExecStart"])[1] == "serve"
    assert service["ExecStart"].split()[0].endswith("/tunnelpi")
    assert service["Restart"] == "always" and service["EnvironmentFile"]
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_rayjob_manifest() -> None:
    job = _yaml("rayjob.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    entry = job["spec"]["entrypoint"]
    assert entry.startswith("tunnelpi reaudit") and "--manifest s3://" in entry and "--ray-address auto" in entry
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["image"].startswith("tunnelpi-batch")
    assert cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["image"].startswith("tunnelpi-batch")


def test_every_tunnelpi_command_line_parses() -> None:
    lines = _command_lines()
    assert len(lines) >= 5
    for args in lines:
        _cli_ok(args)


def test_policy_example_loads() -> None:
    data = read_policy_file(DEPLOY / "config" / "policy.example.json")
    config = PolicyConfig.from_dict(data)
    assert config.by_kind["anomaly"].divert == 0.8 and config.audit_rate == 0.01
    lots = LotSettings.from_dict(data["lots"])
    assert lots.rule.confidence == 0.95 and lots.base_rates == {"food_box": 0.03, "apparel": 0.01}


def test_edge_env_example_is_key_value() -> None:
    for line in (DEPLOY / "config" / "edge.example.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.match(r"^[A-Z_][A-Z0-9_]*=\S*$", line), line


def test_edge_requirements_match_pyproject_without_training_stack() -> None:
    pins = dict(
        re.match(r"^([A-Za-z0-9_.\[\]-]+)==(\S+)$", d).groups()
        for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    )
    pins = {name.split("[")[0].lower(): version for name, version in pins.items()}
    edge = [
        line.split("==")
        for line in (DEPLOY / "requirements-edge.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert edge
    for name, version in edge:
        assert pins.get(name.lower()) == version, f"{name}=={version} differs from pyproject.toml"
        assert name.lower() not in TRAINING_ONLY
    assert "onnxruntime" in {name for name, _ in edge}


def _has_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.skipif(not _has_compose(), reason="docker compose plugin not installed")
def test_docker_compose_config() -> None:
    env = DEPLOY / "config" / "edge.example.env"
    res = subprocess.run(
        ["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "--env-file", str(env), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
