"""JSON-lines reading: errors name the file and its line, counting blank lines."""

from __future__ import annotations

import pytest

from pipeline.jsonl import JsonlError, iter_jsonl, iter_jsonl_lines, parse_jsonl


def test_line_numbers_count_blank_lines(tmp_path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('\n\n\n{"a": 1}\n   \n{"a": 2}\n')
    assert list(iter_jsonl_lines(path)) == [(4, {"a": 1}), (6, {"a": 2})]
    assert list(iter_jsonl(path)) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (b'{"a": 1}\n{"a": "trunc\n', 2, "malformed JSON"),
        (b'5\n{"a": 1}\n', 1, "expected a JSON object, got int"),
        (b'\n\n\n{"a": 1}\n[1, 2]\n', 5, "expected a JSON object, got list"),
        (b'{"a": 1}\n\xff\xfe{}\n', 2, "not UTF-8 text"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path, content: bytes, line: int, message: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(content)
    with pytest.raises(JsonlError) as info:
        list(iter_jsonl(path))
    assert str(info.value).startswith(f"{path}:{line}: {message}")


def test_parse_jsonl_names_the_line_of_a_record_its_parser_rejects(tmp_path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"n": 1}\n\n{"n": -2}\n')

    def positive(row: dict) -> int:
        if row["n"] < 0:
            raise ValueError("n must be positive")
        return row["n"]

    with pytest.raises(JsonlError, match=r"rows.jsonl:3: n must be positive"):
        parse_jsonl(path, positive)
    path.write_bytes(b'{"n": 1}\n{"n": 2}\n')
    assert parse_jsonl(path, positive) == [1, 2]
