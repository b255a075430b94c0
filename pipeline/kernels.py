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
from contextlib import AbstractContextManager, contextmanager

from threadpoolctl import threadpool_limits


@contextmanager
def kernel_threads(n: int) -> Iterator[int]:
    """Within the block, BLAS/OpenMP pools loaded so far and torch (if imported) use `n` threads."""
    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else 0  # before OpenMP is limited: torch reads it
    pools = threadpool_limits(limits=n)
    if torch is not None:
        torch.set_num_threads(n)
    try:
        with pools:
            yield n
    finally:
        if torch is not None:
            torch.set_num_threads(previous)


def one_kernel_thread() -> AbstractContextManager[int]:
    """`kernel_threads(1)`: inspection's own threads are the parallelism."""
    return kernel_threads(1)
