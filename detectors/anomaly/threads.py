"""Thread count for enrolment compute (torch and BLAS), chosen from what other processes use now.

On a small shared CPU, OpenMP/OpenBLAS pools that ask for every core spin while waiting for
each other as soon as other processes hold the cores: measured on 2 cores at load average ~10,
one thread ran a 4,096-point coreset in 4.8 s against 242 s with two, the feature extractor
at 0.07 s/view against 0.25 s, and a student step at 0.065 s against 0.21 s. So enrolment
uses every core only when other processes leave them free, and one thread otherwise.

"Free" is measured, not taken from the load average: the 1-minute load decays for minutes
after a job has ended, so right after `make setup` (pip, the OCR quantizer) it still read ~1
on an idle 2-core machine and the demo enrolled on one thread (488 s against ~270 s on two).
Busy cores are sampled from /proc/stat over a fraction of a second, this process's own CPU
left out; the load average is the fallback where /proc is absent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from pipeline.kernels import kernel_threads

THREADS_ENV = "TUNNELPI_ANOMALY_THREADS"
"""Set to a positive integer to fix the enrolment thread count."""
SAMPLE_S = 0.25
"""How long busy cores are sampled for."""
REUSE_S = 20.0
"""A reading is reused this long: enrolment asks once per bank."""

_last: tuple[float, float] | None = None
"""(monotonic time, busy cores) of the last reading."""


def _jiffies() -> tuple[int, int, int]:
    """(all CPU time, idle time, this process's CPU time), in clock ticks since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
    own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return sum(ticks), ticks[3] + ticks[4], int(own[11]) + int(own[12])  # utime + stime


def other_busy_cores(sample_s: float = SAMPLE_S) -> float:
    """Cores that other processes keep busy right now (sampled), else the 1-minute load average."""
    global _last
    now = time.monotonic()
    if _last is not None and now - _last[0] < REUSE_S:
        return _last[1]
    cores = os.cpu_count() or 1
    try:
        total0, idle0, own0 = _jiffies()
        time.sleep(sample_s)
        total1, idle1, own1 = _jiffies()
        elapsed = total1 - total0
        busy = cores * max(0, elapsed - (idle1 - idle0) - (own1 - own0)) / elapsed if elapsed > 0 else 0.0
    except (OSError, ValueError, IndexError):
        try:
            busy = os.getloadavg()[0]
        except (AttributeError, OSError):
            busy = 0.0
    _last = (now, busy)
    return busy


def compute_threads() -> int:
    """Threads for enrolment: the env override, else the cores other processes leave free (at least 1)."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError as exc:
            raise ValueError(f"{THREADS_ENV}={env!r}: expected a positive integer") from exc
    cores = os.cpu_count() or 1
    return max(1, min(cores, int(cores - other_busy_cores() + 0.5)))


def limited_threads(n: int | None = None) -> AbstractContextManager[int]:
    """Run the block with `n` (default `compute_threads()`) torch and BLAS threads, then restore."""
    import torch  # noqa: F401  (imported, so that its threads are set too)

    return kernel_threads(n or compute_threads())


@contextmanager
def fixed_threads(n: int) -> Iterator[int]:
    """Every `limited_threads()` inside the block uses `n` threads instead of measuring.

    For a job whose own later steps keep the cores busy (the demo's simulator workers, which
    are other processes): measured before those steps, the cores are free, and during them
    they would look busy."""
    prev = os.environ.get(THREADS_ENV)
    os.environ[THREADS_ENV] = str(max(1, n))
    try:
        yield max(1, n)
    finally:
        if prev is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = prev
