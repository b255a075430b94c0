"""The investigator's confidence calibrated on confirmed investigations: the unit, its file, the
investigation that uses it and the CLI that fits it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_agent.calibration import (
    MODEL_FILE,
    CalibrationError,
    ConfidenceCalibration,
    ConfirmedComplaint,
    Outcome,
    RuleTally,
    calibrate_investigator,
    read_confirmed,
)
from llm_agent.investigator import investigate
from llm_agent.report import to_html, to_markdown
from llm_agent.taxonomy import RootCause
from pipeline.cli import app
from tests.test_llm_fixture_store import build_store, catalog

R = RootCause


@pytest.mark.parametrize(
    ("tally", "stated", "expected"),
    [
        (None, 0.5, 0.5),  # no confirmed investigation reached the rule: its own estimate
        (RuleTally(n=10, right=10, stated=0.5), 0.5, 0.78),  # (10 + 8 * 0.5) / 18
        (RuleTally(n=4, right=0, stated=0.9), 0.9, 0.6),  # (0 + 8 * 0.9) / 12
        (RuleTally(n=1000, right=700, stated=0.5), 0.5, 0.7),  # many confirmations: their share
        (RuleTally(n=2, right=2, stated=0.6), 0.6, 0.68),  # two do not make a certainty
    ],
)
def test_confidence_moves_toward_the_share_right(tally, stated, expected) -> None:
    cal = ConfidenceCalibration(rules={"rule": tally} if tally else {})
    assert cal.confidence("rule", stated) == expected
    assert cal.confidence(None, stated) == stated
    assert ("calibrated on" in cal.basis("rule", stated)) is (tally is not None)


def test_fit_tallies_each_rule_apart() -> None:
    outcomes = [
        Outcome("damage_not_visible", 0.5, True),
        Outcome("damage_not_visible", 0.5, False),
        Outcome("damage_not_visible", 0.5, True),
        Outcome("damage_visible", 0.9, True),
    ]
    cal = ConfidenceCalibration.fit(outcomes, source="shift 13", skipped=2)
    assert cal.rules == {
        "damage_not_visible": RuleTally(n=3, right=2, stated=0.5),
        "damage_visible": RuleTally(n=1, right=1, stated=0.9),
    }
    assert cal.skipped == 2
    assert cal.confidence("damage_visible", 0.9) > 0.9 > cal.confidence("damage_not_visible", 0.9)


def test_file_round_trips(tmp_path) -> None:
    cal = ConfidenceCalibration.fit([Outcome("label_mismatch", 0.85, True)] * 5, source="s")
    back = ConfidenceCalibration.load(cal.save(tmp_path / "cal.json"))
    assert back.rules == cal.rules and back.prior_weight == cal.prior_weight and back.source == "s"


GOOD_FILE = {"version": 1, "prior_weight": 8.0, "rules": {"x": {"n": 2, "right": 1, "stated": 0.5}}}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(GOOD_FILE)[:40],  # truncated
        json.dumps({**GOOD_FILE, "version": 99}),
        json.dumps({**GOOD_FILE, "rules": {"x": {"n": 2, "right": 3, "stated": 0.5}}}),  # more right than seen
        json.dumps({**GOOD_FILE, "rules": {"x": {"n": "two", "right": 1, "stated": 0.5}}}),
        json.dumps({**GOOD_FILE, "prior_weight": 0}),
        json.dumps({k: v for k, v in GOOD_FILE.items() if k != "rules"}),
        "[1, 2]",
    ],
)
def test_a_bad_calibration_file_is_a_clear_error(tmp_path, text) -> None:
    (tmp_path / "good.json").write_text(json.dumps(GOOD_FILE))
    assert ConfidenceCalibration.load(tmp_path / "good.json").rules["x"].n == 2
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(CalibrationError, match=r"bad\.json"):
        ConfidenceCalibration.load(tmp_path / "bad.json")


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"item_id": "A", "text": "crushed", "root_cause": "damaged_after_tunnel"}, R.DAMAGED_AFTER_TUNNEL),
        ({"item_id": "A", "complaint": "crushed", "root_cause": "wrong_item"}, R.WRONG_ITEM),
        ({"item_id": "A", "text": "x", "truth": {"root_cause": "inconclusive"}, "complaint_id": "C1"}, R.INCONCLUSIVE),
        ({"item_id": "A", "text": "x"}, "missing root_cause"),
        ({"text": "x", "root_cause": "wrong_item"}, "missing item_id"),
        ({"item_id": "A", "text": "x", "root_cause": "bad_luck"}, "unknown root cause"),
        ({"item_id": 7, "text": "x", "root_cause": "wrong_item"}, "must be strings"),
    ],
)
def test_confirmed_complaint_shapes(row, expected) -> None:
    if isinstance(expected, RootCause):
        assert ConfirmedComplaint.from_dict(row).root_cause is expected
    else:
        with pytest.raises(ValueError, match=expected):
            ConfirmedComplaint.from_dict(row)


def test_confirmed_file_errors_name_the_record(tmp_path) -> None:
    path = tmp_path / "confirmed.jsonl"
    path.write_text('{"item_id": "A", "text": "x", "root_cause": "wrong_item"}\n{"item_id": "B", "text": "y"}\n')
    with pytest.raises(CalibrationError, match=r"confirmed.jsonl:2: missing root_cause"):
        read_confirmed(path)
    path.write_text('{"item_id": "A", "text": "x", "root_cause": "wrong_item"}\n{"item_id": \n')
    with pytest.raises(CalibrationError, match=":2: malformed JSON"):
        read_confirmed(path)
    with pytest.raises(CalibrationError):
        read_confirmed(tmp_path / "absent.jsonl")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("calibrated")
    return build_store(root), root


CONFIRMED = [
    # the tunnel saw the damage: the rule is right both times
    ConfirmedComplaint("DMG-1", "box came crushed", R.DAMAGED_BEFORE_SHIPMENT, "C1"),
    ConfirmedComplaint("DMG-1", "the box is dented", R.DAMAGED_BEFORE_SHIPMENT, "C2"),
    # the tunnel saw nothing; the team found the damage was there before shipment both times
    ConfirmedComplaint("CLEAN-1", "arrived damaged, corner smashed", R.DAMAGED_BEFORE_SHIPMENT, "C3"),
    ConfirmedComplaint("CLEAN-1", "the box is crushed", R.DAMAGED_BEFORE_SHIPMENT, "C4"),
    ConfirmedComplaint("GONE-1", "crushed", R.DAMAGED_BEFORE_SHIPMENT, "C5"),  # not in the store
]


def test_calibration_from_confirmed_investigations_reaches_the_report(store) -> None:
    db, root = store
    options = {"catalog": catalog(), "dataset": root, "use_embeddings": False}
    cal = calibrate_investigator(db, CONFIRMED, **options)
    assert cal.skipped == 1
    assert cal.rules["damage_visible"].n == 2 and cal.rules["damage_visible"].right == 2
    assert cal.rules["damage_not_visible"].n == 2 and cal.rules["damage_not_visible"].right == 0

    plain, _ = investigate(db, "CLEAN-1", "arrived damaged, corner smashed", **options)
    calibrated, _ = investigate(db, "CLEAN-1", "arrived damaged, corner smashed", calibration=cal, **options)
    # the same conclusion, stated with the confidence the confirmations support
    assert plain.root_cause is calibrated.root_cause is R.DAMAGED_AFTER_TUNNEL
    assert plain.decided_by == calibrated.decided_by == "damage_not_visible"
    assert plain.confidence == plain.rule_confidence == calibrated.rule_confidence
    assert calibrated.confidence == cal.confidence("damage_not_visible", plain.rule_confidence)
    assert calibrated.confidence < plain.confidence
    assert "2 confirmed investigation(s)" in calibrated.confidence_basis
    assert "no calibration" in plain.confidence_basis
    assert calibrated.confidence_basis in to_markdown(calibrated)
    assert "confirmed investigation" in to_html(calibrated)

    seen, _ = investigate(db, "DMG-1", "box came crushed", calibration=cal, **options)
    assert seen.confidence > seen.rule_confidence


def test_the_model_folders_calibration_is_used_and_a_broken_one_reported(tmp_path) -> None:
    db = build_store(tmp_path)
    model = tmp_path / "model"
    (db.parent / "run.json").write_text(json.dumps({"model_dir": str(model)}))
    options = {"catalog": catalog(), "dataset": tmp_path, "use_embeddings": False}
    ConfidenceCalibration.fit([Outcome("damage_visible", 0.9, False)] * 8).save(model / MODEL_FILE)
    report, _ = investigate(db, "DMG-1", "box came crushed", **options)
    assert report.decided_by == "damage_visible"
    assert report.confidence == 0.45  # (0 + 8 * 0.9) / 16
    assert not report.errors

    (model / MODEL_FILE).write_text("{not json")
    report, _ = investigate(db, "DMG-1", "box came crushed", **options)
    assert report.confidence == report.rule_confidence == 0.9
    assert any("confidence not calibrated" in e for e in report.errors)


def test_cli_fits_the_calibration_into_the_model_folder(tmp_path) -> None:
    db = build_store(tmp_path)
    confirmed = tmp_path / "confirmed.jsonl"
    rows = [{"item_id": c.item_id, "text": c.text, "root_cause": c.root_cause.value} for c in CONFIRMED[:2]]
    confirmed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["calibrate-investigator", "--db", str(db), "--confirmed", str(confirmed), "--dataset", str(tmp_path)]

    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "give --out" in result.output  # the store names no model folder

    model = tmp_path / "model"
    (db.parent / "run.json").write_text(json.dumps({"model_dir": str(model)}))
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "damage_visible: right 2/2" in result.output
    assert ConfidenceCalibration.load(model / MODEL_FILE).rules["damage_visible"].right == 2

    confirmed.write_text('{"item_id": "DMG-1", "text": "crushed", "root_cause": "gremlins"}\n')
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "unknown root cause" in result.output
