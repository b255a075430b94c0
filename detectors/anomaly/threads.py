"""Thread count for enrolment compute (torch and BLAS), chosen from the machine's load.

On a small shared CPU, OpenMP/OpenBLAS pools that ask for every core spin while waiting for
each other as soon as other processes hold the cores: measured on 2 cores at load average ~10,
one thread ran a 4,096-point coreset in 4.8 s against 242 s with two, the feature extractor
at 0.07 s/view against 0.25 s, and a student step at 0.065 s against 0.21 s. So enrolment
uses every core only when the load average leaves them free, and one thread otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from pipeline.kernels import kernel_threads

THREADS_ENV = "TUNNELPI_ANOMALY_THREADS"
"""Set to a positive integer to fix the enrolment thread count."""


def compute_threads() -> int:
    """Threads for enrolment: the env override, else the cores the 1-minute load leaves free (at least 1)."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError as exc:
            raise ValueError(f"{THREADS_ENV}={env!r}: expected a positive integer") from exc
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    return max(1, min(cores, int(cores - load + 0.5)))


def limited_threads(n: int | None = None) -> AbstractContextManager[int]:
    """Run the block with `n` (default `compute_threads()`) torch and BLAS threads, then restore."""
    import torch  # noqa: F401  (imported, so that its threads are set too)

    return kernel_threads(n or compute_threads())


@contextmanager
def fixed_threads(n: int) -> Iterator[int]:
    """Every `limited_threads()` inside the block uses `n` threads instead of reading the load.

    For a job whose own earlier steps raised the load average (the demo's simulator workers):
    measured before those steps, the cores are free, and after them they would look busy."""
    prev = os.environ.get(THREADS_ENV)
    os.environ[THREADS_ENV] = str(max(1, n))
    try:
        yield max(1, n)
    finally:
        if prev is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = prev
