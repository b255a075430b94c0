"""The CLI: every command module imports on its own, and every command answers --help."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import pipeline.commands
from pipeline.cli import app

MODULES = sorted(m.name for m in pkgutil.iter_modules(pipeline.commands.__path__))


@pytest.mark.parametrize("module", MODULES)
def test_each_command_module_imports_first(module: str) -> None:
    """Importing one command module before the CLI must not hit a circular import."""
    code = f"import pipeline.commands.{module}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_top_level_help_lists_the_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("demo", "inspect", "ocr", "anomaly", "enroll", "serve", "reaudit", "ui", "investigate", "sim"):
        assert name in result.output


@pytest.mark.parametrize("args", [["sim", "generate"], ["sim", "stream"], ["report"], ["demo"], ["version"]])
def test_subcommand_help(args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output


def test_version() -> None:
    result = CliRunner().invoke(app, ["version"])
    assert result.output.strip() == importlib.import_module("pipeline").__version__


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ('{"default": {"divert": 0.5,', "malformed JSON ("),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"default": {"divrt": 0.5}}', "divrt"),
        ('{"lots": {"by_category": {"food_box": 1.5}}}', "lots.by_category.food_box"),
        ('{"lots": {"confidnce": 0.9}}', "confidnce"),
    ],
)
def test_a_bad_policy_file_is_a_clear_error_before_anything_runs(tmp_path, content: str, error: str) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(content)
    dataset = tmp_path / "ds"
    dataset.mkdir()
    args = ["inspect", "--input", str(dataset), "--out", str(tmp_path / "out"), "--policy", str(policy)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and error in result.output and not (tmp_path / "out").exists()
