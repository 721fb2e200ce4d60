"""Where the time goes: calls and time per op (forward and backward) and per C kernel.

    with tinytape.profiler.profile() as prof:
        loss = model(x).sum()
        loss.backward()
    print(prof.table())          # rows sorted by total time, like torch.profiler's table

Rows are keyed by name and kind:
- "forward": an op run forward (`Function.apply`, or an elementwise op's unrecorded fast
  path under no_grad and inside backward), named after its Function class (`Mul`);
- "backward": that op's backward formula, run by the engine;
- "engine": one backward pass (`run_backward`), whose self time is the engine's own work;
- "kernel": one call into the C extension (`gemm`, `softmax_fwd` ...; none on the numpy
  backend), made through `tinytape.backend`.
A row's total time includes the rows nested in it (a backward's ops, an op's kernels);
its self time does not, so the self times of all rows add up to the profiled time that
ops, backward passes and kernels account for.

When no profile is running, the tape pays one check of the flag `active` per op and per
backward node. The profiler counts the ops of every thread (one profile at a time) and
adds about a microsecond to each call it records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

#: True while a profile is recording; the tape and the ops' fast paths check it.
active = False

CLOCKS = {"wall": time.perf_counter_ns, "cpu": time.thread_time_ns}
_clock = CLOCKS["wall"]
_stack: list[list] = []  # open calls: [key, start ns, ns spent in nested calls]
_totals: dict[tuple[str, str], list[int]] = {}  # key -> [calls, total ns, self ns]


def _begin(key: tuple[str, str]) -> None:
    _stack.append([key, _clock(), 0])


def _end() -> None:
    key, start, nested = _stack.pop()
    elapsed = _clock() - start
    row = _totals.get(key)
    if row is None:
        row = _totals[key] = [0, 0, 0]
    row[0] += 1
    row[1] += elapsed
    row[2] += elapsed - nested
    if _stack:
        _stack[-1][2] += elapsed


def call_unprofiled(
    name: str, kind: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
) -> Any:
    """fn(*args, **kwargs) recorded as one call of (name, kind), with recording turned off
    inside it: fn is the entry point that checked `active` (Function.apply, an op's fast
    path) and now runs its ordinary path. Kernels called inside are still recorded."""
    global active
    _begin((name, kind))
    active = False
    try:
        return fn(*args, **kwargs)
    finally:
        active = True
        _end()


def call(name: str, kind: str, fn: Callable[..., Any], /, *args: Any) -> Any:
    """fn(*args) recorded as one call of (name, kind); the ops it runs are recorded too
    (a backward formula, a backward pass)."""
    _begin((name, kind))
    try:
        return fn(*args)
    finally:
        _end()


class _TimedKernels:
    """Stands in for the C extension module while profiling: its functions, timed."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self._cache: dict[str, Callable[..., Any]] = {}

    def __getattr__(self, name: str) -> Any:
        fn = self._cache.get(name)
        if fn is None:
            target = getattr(self._module, name)
            if not callable(target):
                return target
            key = (name, "kernel")

            def fn(*args: Any, _target: Callable[..., Any] = target) -> Any:
                _begin(key)
                try:
                    return _target(*args)
                finally:
                    _end()

            self._cache[name] = fn
        return fn


@dataclass(frozen=True)
class Row:
    """One line of the table: a name and kind, its calls, and its times in seconds."""

    name: str
    kind: str
    calls: int
    total_s: float
    self_s: float

    @property
    def mean_us(self) -> float:
        return self.total_s / self.calls * 1e6 if self.calls else 0.0


_SORT_KEYS = {
    "total": lambda r: r.total_s,
    "self": lambda r: r.self_s,
    "calls": lambda r: r.calls,
    "mean": lambda r: r.mean_us,
}


class Profile:
    """What a `profile()` block recorded: `rows()`, `table()`, and `wall_s`, the block's
    wall time."""

    def __init__(self) -> None:
        self.wall_s = 0.0
        self._rows: list[Row] = []

    def rows(self, sort_by: str = "total") -> list[Row]:
        """The rows, largest first by `sort_by`: "total", "self", "calls" or "mean"."""
        if sort_by not in _SORT_KEYS:
            raise ValueError(f"sort_by={sort_by!r}: expected one of {sorted(_SORT_KEYS)}")
        return sorted(self._rows, key=_SORT_KEYS[sort_by], reverse=True)

    def key_averages(self) -> list[Row]:
        """The rows sorted by total time (torch.profiler's name)."""
        return self.rows()

    def row(self, name: str, kind: str) -> Row | None:
        """The row of (name, kind), or None when nothing of that name and kind ran."""
        for r in self._rows:
            if r.name == name and r.kind == kind:
                return r
        return None

    def table(self, sort_by: str = "total", row_limit: int | None = None) -> str:
        """A text table of the rows, largest first by `sort_by`, with each row's share of
        the block's wall time."""
        rows = self.rows(sort_by)[:row_limit]
        wall = self.wall_s or 1.0
        width = max([len(r.name) for r in rows] + [4])
        lines = [
            f"{'name':<{width}}  {'kind':<8}{'calls':>8}{'total ms':>11}{'total %':>9}"
            f"{'self ms':>10}{'self %':>8}{'mean us':>10}"
        ]
        lines.append("-" * len(lines[0]))
        for r in rows:
            lines.append(
                f"{r.name:<{width}}  {r.kind:<8}{r.calls:>8}{r.total_s * 1e3:>11.3f}"
                f"{100 * r.total_s / wall:>9.1f}{r.self_s * 1e3:>10.3f}"
                f"{100 * r.self_s / wall:>8.1f}{r.mean_us:>10.2f}"
            )
        accounted = sum(r.self_s for r in self._rows)
        lines.append(
            f"wall time {self.wall_s * 1e3:.3f} ms, of which ops, backward passes and "
            f"kernels {accounted * 1e3:.3f} ms ({100 * accounted / wall:.1f}%)"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


@contextmanager
def profile(clock: str = "wall") -> Iterator[Profile]:
    """Record the ops and kernels run inside the block; the Profile it yields is filled in
    when the block ends. clock="cpu" measures the CPU time of the thread that runs each
    call instead of wall time: steadier on a busy machine, but blind to the other threads
    of a multi-threaded kernel."""
    global active, _clock
    from .backend import _state

    if clock not in CLOCKS:
        raise ValueError(f"profile(clock={clock!r}): expected one of {sorted(CLOCKS)}")
    if active or _stack:
        raise RuntimeError("profile(): a profile is already running (they do not nest)")
    _clock = CLOCKS[clock]
    result = Profile()
    _totals.clear()
    saved_native = _state.native
    if saved_native is not None:
        _state.native = _TimedKernels(saved_native)
    start = _clock()
    active = True
    try:
        yield result
    finally:
        active = False
        result.wall_s = (_clock() - start) / 1e9
        if isinstance(_state.native, _TimedKernels):
            _state.native = saved_native
        del _stack[:]
        result._rows = [
            Row(name, kind, calls, total / 1e9, own / 1e9)
            for (name, kind), (calls, total, own) in _totals.items()
        ]
        _totals.clear()
