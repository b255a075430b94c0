"""The grounded investigator end to end on simulated complaints: simulate, inspect, investigate."""

from __future__ import annotations

import pytest

from llm_agent.investigator import investigate
from llm_agent.taxonomy import RootCause
from pipeline.dataset import Dataset


@pytest.mark.slow
def test_simulated_complaints_end_to_end(tmp_path) -> None:
    from pipeline.inspect import inspect_path
    from tunnel_sim.generate import generate_dataset

    generate_dataset(tmp_path / "ds", items=40, seed=5, references_per_sku=0, defect_rate=0.5)
    ds = Dataset.open(tmp_path / "ds")
    complaints = list(ds.feedback())
    assert complaints
    inspect_path(tmp_path / "ds", tmp_path / "res", stages=["localize", "ocr_expiry"], progress=False)
    db = tmp_path / "res" / "store.db"
    for fb in complaints:
        report, _ = investigate(db, fb["item_id"], fb["text"], catalog=ds.catalog, dataset=tmp_path / "ds")
        assert report.root_cause in RootCause
        assert report.citations_valid()
        assert len(report.transcript) >= 1
        if fb["truth"]["injection"]:
            assert report.complaint.injection_suspected
        # without the anomaly stage, damage is never claimed visible or invisible
        for t in report.transcript:
            if t.answer.fact == "damage_visible":
                assert t.answer.status == "unavailable"
