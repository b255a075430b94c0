"""One compute thread per inspection thread for the numeric libraries (BLAS, OpenMP, torch).

Inspection already runs side by side: items on worker threads, and an item's stages on the
runner's pool, about one per core. A BLAS or OpenMP pool that asks for every core as well
spins on the cores the other threads need. Measured on 2 cores with the edge service at 0.5
items/s: 888 ms of CPU per item with OpenBLAS's default pool (one of its threads spinning
~130 ms per item) against 670 ms with one thread, the stage threads' own CPU unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits


@contextmanager
def one_kernel_thread() -> Iterator[None]:
    """Within the block, BLAS/OpenMP pools loaded so far and torch (if imported) use one thread."""
    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else 0  # before OpenMP is limited: torch reads it
    pools = threadpool_limits(limits=1)
    if torch is not None:
        torch.set_num_threads(1)
    try:
        with pools:
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(previous)
