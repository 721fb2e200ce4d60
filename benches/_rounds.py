"""The benches' one timing loop: libraries taking turns in rounds, on a settled machine.

The machine's speed drifts from minute to minute, so the libraries take turns: every round
times one block of each library, the order reversed every other round, so a drift favours
none. Before each block the process waits until none of its threads is busy (`settle`):
after a call, numpy's OpenBLAS workers keep spinning for about 0.1 s (2^28 cycles,
OPENBLAS_THREAD_TIMEOUT) and PyTorch's OpenMP workers for a few ms (unless
OMP_WAIT_POLICY=PASSIVE), and on a 2-core machine a block that starts while they spin
shares its second core with them: tinytape's 1024^3 GEMM at 2 threads took 20-22 ms right
after numpy's blocks and 13-15 ms after a pause. Within its own block each library keeps
its own wait policy (OpenBLAS spins between calls, tinytape's threads sleep: see
tinytape/backend/_state.py), as a user of that library alone would see it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

R = TypeVar("R")

#: a thread that used less CPU than this share of a probe's wall time counts as idle
IDLE_SHARE = 0.05
PROBE_S = 0.005


def settle(max_s: float = 0.5) -> float:
    """Wait until this process's threads are idle: its CPU time grows by less than
    IDLE_SHARE of the wall time over a 5 ms sleep (at most `max_s`, in case some
    thread is busy for good). Returns the seconds waited."""
    start = time.perf_counter()
    while True:
        c0, t0 = time.process_time(), time.perf_counter()
        time.sleep(PROBE_S)
        busy = (time.process_time() - c0) / (time.perf_counter() - t0)
        waited = time.perf_counter() - start
        if busy < IDLE_SHARE or waited >= max_s:
            return waited


def take_turns(
    libs: Sequence[str], rounds: int, block: Callable[[str, int], R]
) -> dict[str, list[R]]:
    """`block(lib, round)` of every library in each of `rounds` rounds, the order of the
    libraries reversed every other round and the process settled before every block.
    Returns each library's results, round by round."""
    out: dict[str, list[R]] = {lib: [] for lib in libs}
    for r in range(rounds):
        for lib in libs if r % 2 == 0 else list(reversed(libs)):
            settle()
            out[lib].append(block(lib, r))
    return out
