"""The `tunnelpi` command line. Subcommands mirror the Python API.

Each module in `pipeline.commands` adds its own subcommands to `app`; heavy imports (torch,
OCR engines) happen inside the commands so that `tunnelpi --help` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil
from datetime import date
from pathlib import Path
from typing import Any

import typer

import pipeline
import pipeline.commands

app = typer.Typer(
    name="tunnelpi",
    help="Defect inspection for fulfillment-center imaging tunnels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Command groups live here so that their subcommands can sit in separate modules.
sim_app = typer.Typer(help="Simulated imaging tunnel: generate, preview and stream datasets.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")


def fail(message: str, code: int = 2) -> None:
    """Print a clear error to stderr and exit; used for bad input."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def check_output_folder(path: Path, option: str = "--out") -> None:
    """Refuse, before any work, an output folder that cannot be created: a file in its place or
    above it (the error would otherwise come when the results are ready to write)."""
    if path.exists() and not path.is_dir():
        fail(f"{option} {path}: is a file, not a folder")
    _check_parents(path, option)


def check_output_file(path: Path, option: str = "--out") -> None:
    """Refuse, before any work, an output file that cannot be written: a folder in its place, or
    a file where a folder above it should be."""
    if path.is_dir():
        fail(f"{option} {path}: is a folder, not a file")
    _check_parents(path, option)


def _check_parents(path: Path, option: str) -> None:
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        fail(f"{option} {path}: {above} is a file, not a folder")


TODAY_RANGE = (date(1990, 1, 1), date(2099, 12, 31))
"""The days a --today may name: the date grammar reads years 1900-2099, and judges a print
within years of today."""


def parse_today(value: str | None) -> date | None:
    """A --today option: ISO date or None; a clear error otherwise."""
    if value is None:
        return None
    try:
        today = date.fromisoformat(value)
    except ValueError:
        fail(f"--today must be YYYY-MM-DD, got {value!r}")
    if not TODAY_RANGE[0] <= today <= TODAY_RANGE[1]:
        fail(f"--today must lie between {TODAY_RANGE[0]} and {TODAY_RANGE[1]}, got {value}")
    return today


def parse_policy(path: Path | None) -> dict[str, Any]:
    """A --policy option: the file's content, checked as decision thresholds and lot settings."""
    if path is None:
        return {}
    from pipeline.lots import LotSettings
    from pipeline.policy import PolicyConfig, read_policy_file

    try:
        data = read_policy_file(path)
        PolicyConfig.from_dict(data)
        LotSettings.from_dict(data.get("lots", {}))
    except (TypeError, ValueError, AttributeError) as exc:
        fail(f"--policy {path}: {exc}")
    return data


@app.command()
def version() -> None:
    """Print the tunnelpi version."""
    typer.echo(pipeline.__version__)


def _load_commands() -> None:
    for mod in sorted(pkgutil.iter_modules(pipeline.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"pipeline.commands.{mod.name}")


_load_commands()


def main() -> None:
    app()


if __name__ == "__main__":  # `python -m pipeline.cli`: commands registered on the importable module's app
    from pipeline.cli import main as _main

    _main()
