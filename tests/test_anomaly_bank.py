"""Memory banks: coreset bound, nearest-neighbour distances, persistence with a version, enrolment."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detectors.anomaly.bank import Bank, BankVersionError, greedy_coreset, nearest_distance


def test_coreset_is_bounded_and_covers_better_than_random() -> None:
    rng = np.random.default_rng(0)
    # clustered data: a random subset misses small clusters, k-center does not
    x = np.concatenate([rng.normal(0, 1, (5000, 16)), rng.normal(30, 1, (20, 16))]).astype(np.float32)
    idx = greedy_coreset(x, 200)
    assert len(idx) == 200 and len(set(idx.tolist())) == 200
    rand = rng.choice(len(x), 200, replace=False)
    assert nearest_distance(x, x[idx]).max() < nearest_distance(x, x[rand]).max()
    assert len(greedy_coreset(x[:50], 200)) == 50


def test_nearest_distance_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    q, b = rng.normal(size=(30, 8)), rng.normal(size=(5000, 8))
    brute = np.sqrt(((q[:, None] - b[None]) ** 2).sum(-1)).min(1)
    assert np.allclose(nearest_distance(q, b, chunk=777), brute, atol=1e-4)


def test_incremental_add_keeps_bound() -> None:
    rng = np.random.default_rng(2)
    bank = Bank("SKU-1", max_patches=300, max_globals=10)
    bank.add(rng.normal(size=(1000, 8)), rng.normal(size=(6, 4)), n_images=6)
    assert bank.patches.shape == (300, 8) and bank.globals_.shape == (6, 4)
    bank.add(rng.normal(5, 1, size=(1000, 8)), rng.normal(size=(6, 4)), n_images=6)
    assert bank.patches.shape == (300, 8) and bank.globals_.shape == (10, 4)
    assert bank.n_images == 12
    # the new mode is represented after enrolment
    assert nearest_distance(np.full((1, 8), 5.0), bank.patches)[0] < 3.0
    with pytest.raises(ValueError, match="patch dim"):
        bank.add(rng.normal(size=(10, 3)), rng.normal(size=(1, 4)), 1)


def test_save_load_round_trip_and_version_check(tmp_path) -> None:
    rng = np.random.default_rng(3)
    bank = Bank("cat:food", kind="category", meta={"calibration": {"x": 1}})
    bank.add(rng.normal(size=(100, 8)), rng.normal(size=(3, 4)), 3)
    bank.extra["student.w"] = rng.normal(size=(2, 2)).astype(np.float32)
    bank.save(tmp_path / "b")
    again = Bank.load(tmp_path / "b")
    assert again.name == "cat:food" and again.kind == "category" and again.n_images == 3
    assert np.array_equal(again.patches, bank.patches) and np.array_equal(
        again.extra["student.w"], bank.extra["student.w"]
    )
    assert again.meta["calibration"] == {"x": 1}
    info = json.loads((tmp_path / "b" / "bank.json").read_text())
    info["format"] = 0
    (tmp_path / "b" / "bank.json").write_text(json.dumps(info))
    with pytest.raises(BankVersionError, match="re-enrol"):
        Bank.load(tmp_path / "b")
    with pytest.raises(FileNotFoundError):
        Bank.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="kind"):
        Bank("x", kind="other")


@pytest.mark.parametrize("content", [b'{"format": 3, "name": "cat', b"[1, 2]", b"\xff\xfe not text"])
def test_a_damaged_bank_record_names_its_file(tmp_path, content: bytes) -> None:
    Bank("cat:food", kind="category").save(tmp_path / "b")
    (tmp_path / "b" / "bank.json").write_bytes(content)
    with pytest.raises(ValueError, match=r"b/bank.json: damaged .*re-enrol or restore"):
        Bank.load(tmp_path / "b")


def test_coreset_candidates_favour_the_item_mask() -> None:
    rng = np.random.default_rng(4)
    item = rng.normal(0, 1, (2000, 16)).astype(np.float32)
    background = rng.normal(50, 0.01, (3000, 16)).astype(np.float32)  # grey belt: near-duplicates
    x = np.concatenate([item, background])
    keep = np.arange(len(x)) < len(item)
    idx = greedy_coreset(x, 300, keep=keep)
    assert len(idx) == 300 and len(set(idx.tolist())) == 300
    # background still represented (a sample of it is a candidate), but barely
    assert 1 <= (~keep[idx]).sum() <= 5
    assert nearest_distance(background[:50], x[idx]).max() < 1.0


def test_student_width_is_read_back_from_its_weights() -> None:
    from detectors.anomaly.student import student_from_state, student_state, train_student

    feats = np.random.default_rng(5).normal(size=(4, 8, 8, 8)).astype(np.float32)
    student = train_student(feats, steps=2, width=16)
    again = student_from_state(student_state(student))
    assert again.enc1.out_channels == 16 and again.enc3.out_channels == 32


def test_thread_override(monkeypatch) -> None:
    from detectors.anomaly.threads import THREADS_ENV, compute_threads, limited_threads

    monkeypatch.setenv(THREADS_ENV, "1")
    assert compute_threads() == 1
    import torch

    before = torch.get_num_threads()
    with limited_threads() as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(ValueError, match=THREADS_ENV):
        compute_threads()


def test_free_cores_are_measured_without_this_process(monkeypatch) -> None:
    """Busy cores come from /proc/stat less this process's own CPU: a spinning child counts,
    a spinning thread of ours does not."""
    import os
    import subprocess
    import sys
    import threading
    import time

    from detectors.anomaly import threads

    if not os.path.exists("/proc/stat"):
        pytest.skip("needs /proc")
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)

    def sample() -> float:
        monkeypatch.setattr(threads, "_last", None)
        return threads.other_busy_cores(sample_s=0.5)

    stop = threading.Event()
    own = threading.Thread(target=lambda: [None for _ in iter(stop.is_set, True)])
    own.start()
    try:
        self_busy = sample()
    finally:
        stop.set()
        own.join()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        child_busy = sample()
    finally:
        spinner.kill()
    assert child_busy >= 0.6 and child_busy - self_busy >= 0.5
    monkeypatch.setattr(threads, "_last", (time.monotonic(), 0.0))
    assert threads.compute_threads() == (os.cpu_count() or 1)  # the reading is reused, not resampled
