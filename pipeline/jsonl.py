"""JSON and JSON-lines reading and writing with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class JsonlError(ValueError):
    """A JSON-lines file has a malformed line."""


class JsonFileError(ValueError):
    """A JSON file that cannot be used: `reason` says why, the message names the file."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def read_json_object(path: Path | str) -> dict[str, Any]:
    """A JSON file holding one object (a run record, a policy, a dataset's or a bank's record);
    `JsonFileError` when it cannot be read, is not UTF-8, is malformed or holds something else."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise JsonFileError(path, f"malformed JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise JsonFileError(path, "not UTF-8 text") from None
    except OSError as exc:
        raise JsonFileError(path, f"cannot read ({exc.strerror or exc})") from None
    if not isinstance(value, dict):
        raise JsonFileError(path, f"expected a JSON object, got {type(value).__name__}")
    return value


def iter_jsonl_lines(path: Path | str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number in the file, object) per non-blank line, so errors downstream can point at the line.

    Lines are decoded one by one so that a bad byte is reported on its own line."""
    path = Path(path)
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                raise JsonlError(f"{path}:{lineno}: not UTF-8 text ({exc.reason})") from exc
            if not line:
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise JsonlError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from exc
            if not isinstance(value, dict):
                raise JsonlError(f"{path}:{lineno}: expected a JSON object, got {type(value).__name__}")
            yield lineno, value


def parse_jsonl(path: Path | str, parse: Callable[[dict[str, Any]], T]) -> list[T]:
    """Every record of a JSON-lines file through `parse`; a record it rejects with a ValueError is
    a JsonlError naming the file and line, with the rejection's words."""
    out: list[T] = []
    for lineno, row in iter_jsonl_lines(path):
        try:
            out.append(parse(row))
        except ValueError as exc:
            raise JsonlError(f"{path}:{lineno}: {exc}") from None
    return out


def iter_jsonl(path: Path | str) -> Iterator[dict[str, Any]]:
    for _, value in iter_jsonl_lines(path):
        yield value


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    return list(iter_jsonl(path))


def dumps(value: BaseModel | dict[str, Any]) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, ensure_ascii=False, default=str)


def write_jsonl(path: Path | str, rows: Iterable[BaseModel | dict[str, Any]]) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(dumps(row) + "\n")
            n += 1
    return n
