"""Inspection runs one BLAS/OpenMP/torch thread per inspection thread, and gives the defaults back."""

from __future__ import annotations

import numpy as np
import torch
from threadpoolctl import threadpool_info

from pipeline.kernels import one_kernel_thread
from tests.test_service import running


def _pool_threads(api: str | None = None) -> list[int]:
    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS loaded
    return [pool["num_threads"] for pool in threadpool_info() if api in (None, pool["user_api"])]


def test_one_kernel_thread_limits_the_pools_and_restores_them() -> None:
    before, torch_before = _pool_threads(), torch.get_num_threads()
    assert before  # numpy's BLAS at least
    with one_kernel_thread():
        assert set(_pool_threads()) == {1}
        assert torch.get_num_threads() == 1
    assert _pool_threads() == before and torch.get_num_threads() == torch_before


def test_the_edge_service_runs_one_blas_thread_while_it_serves(tmp_path) -> None:
    # BLAS pools are process-wide (OpenMP's setting is per calling thread, so it is not checked here)
    before = _pool_threads("blas")
    with running(tmp_path):
        assert set(_pool_threads("blas")) == {1}
    assert set(_pool_threads("blas")) == set(before)  # OpenCV may have loaded its own BLAS meanwhile
