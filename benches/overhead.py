"""Per-op cost of the tape: tinytape against PyTorch eager and a hand-written numpy loop.

    python benches/overhead.py [--rounds 7] [--repeat 20] [--libs tinytape,torch,numpy]
                               [--json PATH]

A chain of 200 elementwise ops (y = sigmoid(tanh(y * w + 0.5)), 50 times) on (8, 8)
float32 arrays, forward then backward: the arrays are tiny, so the time is the
framework's bookkeeping, not arithmetic. "numpy" is the same chain and its backward
written out by hand, with no tape: the floor for a Python framework on numpy.

The machine's speed drifts, so the libraries take turns: each round times every library
(the order reversed every other round, settled before each block: benches/_rounds.py), a
round's figure is the median of --repeat runs, and the table gives the median and the
range over the rounds, of the time per op and of tinytape's time as a multiple of each
other library's (both taken in the same round). Target (reported, not asserted):
tinytape's per-op cost at most 0.4x PyTorch eager's.
Then one 100,000-op chain per library (forward and backward: no recursion limit).
`--clock cpu` times with this thread's CPU time instead of the wall clock: on a shared
machine it leaves out the time the process waited for a core.

`--instructions N` runs one library's chain (the first of --libs) once with N ops after a
warm-up and prints nothing: for counting instructions, which do not depend on the load,

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 valgrind --tool=callgrind \
        python benches/overhead.py --libs tinytape --instructions 2000   # then 6000

instructions per op = (total(6000) - total(2000)) / 4000.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _rounds import take_turns

CHAIN = 200  # ops per chain: 50 x (mul, add, tanh, sigmoid)
LONG_CHAIN = 100_000
TARGET_VS_TORCH = 0.4
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
clock = CLOCKS["wall"]


def tinytape_chain(xv: np.ndarray, wv: np.ndarray) -> Callable[[int], tuple[float, float]]:
    import tinytape as tt

    return _chain(tt, tt.tensor(xv, requires_grad=True), tt.tensor(wv, requires_grad=True))


def _chain(lib: Any, x: Any, w: Any) -> Callable[[int], tuple[float, float]]:
    """The chain on tensors of `lib` (tinytape or torch, which share these names)."""

    def run(n: int) -> tuple[float, float]:
        t0 = clock()
        y = x
        for _ in range(n // 4):
            y = lib.sigmoid(lib.tanh(y * w + 0.5))
        t1 = clock()
        y.sum().backward()
        t2 = clock()
        x.grad = w.grad = None
        return t1 - t0, t2 - t0

    return run


def torch_chain(xv: np.ndarray, wv: np.ndarray) -> Callable[[int], tuple[float, float]]:
    import torch

    torch.set_num_threads(1)
    return _chain(torch, torch.tensor(xv, requires_grad=True), torch.tensor(wv, requires_grad=True))


def numpy_chain(xv: np.ndarray, wv: np.ndarray) -> Callable[[int], tuple[float, float]]:
    """The chain and its gradient by hand: forward keeps what backward needs."""

    def run(n: int) -> tuple[float, float]:
        t0 = clock()
        y, saved = xv, []
        for _ in range(n // 4):
            t = np.tanh(y * wv + np.float32(0.5))
            s = 1 / (1 + np.exp(-t))
            saved.append((y, t, s))
            y = s
        t1 = clock()
        g = np.ones_like(y)
        gw = np.zeros_like(wv)
        for y_in, t, s in reversed(saved):
            g = g * s * (1 - s) * (1 - t * t)  # through sigmoid and tanh
            gw += g * y_in
            g = g * wv
        t2 = clock()
        return t1 - t0, t2 - t0

    return run


CHAINS = {"tinytape": tinytape_chain, "torch": torch_chain, "numpy": numpy_chain}


def available(libs: list[str]) -> list[str]:
    out = []
    for lib in libs:
        if lib == "torch":
            try:
                import torch  # noqa: F401
            except ImportError:
                print("PyTorch is not installed: skipped", file=sys.stderr)
                continue
        out.append(lib)
    return out


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _arrays() -> tuple[np.ndarray, np.ndarray]:
    """The chain's input and weight, (8, 8) float32."""
    rng = np.random.default_rng(0)
    xv = rng.standard_normal((8, 8)).astype(np.float32)
    wv = (0.5 * rng.standard_normal((8, 8))).astype(np.float32)
    return xv, wv


def measure(libs: list[str], rounds: int, repeat: int) -> dict:
    xv, wv = _arrays()
    runs = {lib: CHAINS[lib](xv, wv) for lib in libs}
    for run in runs.values():  # warm up: imports, caches, first allocations
        run(CHAIN)

    def block(lib: str, _round: int) -> tuple[float, float]:
        times = [runs[lib](CHAIN) for _ in range(repeat)]
        return (
            statistics.median(t[0] for t in times) / CHAIN * 1e6,
            statistics.median(t[1] for t in times) / CHAIN * 1e6,
        )

    per_round = take_turns(libs, rounds, block)
    fwd = {lib: [f for f, _ in per_round[lib]] for lib in libs}
    total = {lib: [t for _, t in per_round[lib]] for lib in libs}
    result = {"rounds": rounds, "repeat": repeat, "chain": CHAIN, "libs": {}}
    for lib in libs:
        row = {"fwd_us_per_op": spread(fwd[lib]), "fwd_bwd_us_per_op": spread(total[lib])}
        if lib != "tinytape" and "tinytape" in libs:  # tinytape's time / lib's, per round
            row["tinytape_time_ratio"] = spread(
                [a / b for a, b in zip(total["tinytape"], total[lib])]
            )
        t0 = clock()
        runs[lib](LONG_CHAIN)
        row["chain_100k_s"] = clock() - t0
        result["libs"][lib] = row
    return result


def fmt(s: dict, digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="PATH", help="write the figures to PATH")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of turns (default 7)")
    parser.add_argument("--repeat", type=int, default=20, help="chains per library per round")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall time, or this thread's CPU time (steadier when other "
        "processes compete for the cores)",
    )
    parser.add_argument(
        "--libs",
        default="tinytape,torch,numpy",
        help="comma-separated, from tinytape, torch, numpy",
    )
    parser.add_argument(
        "--instructions",
        type=int,
        metavar="N",
        help="run the first library's chain once with N ops (a multiple "
        "of 4) after a warm-up, and exit: for valgrind --tool=callgrind",
    )
    args = parser.parse_args(argv)
    libs = [lib.strip() for lib in args.libs.split(",") if lib.strip()]
    unknown = [lib for lib in libs if lib not in CHAINS]
    if unknown or not libs:
        parser.error(f"--libs: unknown {unknown}; choose from {sorted(CHAINS)}")
    if args.rounds < 1 or args.repeat < 1:
        parser.error("--rounds and --repeat must be at least 1")
    if args.instructions is not None:
        if args.instructions < 4 or args.instructions % 4:
            parser.error("--instructions: a positive multiple of 4 (the chain's block)")
        run = CHAINS[libs[0]](*_arrays())
        run(CHAIN)  # warm up
        run(args.instructions)
        return 0
    global clock
    clock = CLOCKS[args.clock]
    result = measure(available(libs), args.rounds, args.repeat)
    result["clock"] = args.clock
    from tinytape.config import config

    result["tape"] = config()["tape"]
    print(
        f"per-op cost of a {CHAIN}-op elementwise chain, median [range] over "
        f"{args.rounds} rounds, {args.clock} clock (tape: {result['tape']})"
    )
    print(
        f"{'library':<10}{'fwd us/op':>22}{'fwd+bwd us/op':>22}{'tinytape / it':>22}"
        f"{'100k chain s':>14}"
    )
    for lib, row in result["libs"].items():
        ratio = fmt(row["tinytape_time_ratio"]) if "tinytape_time_ratio" in row else "-"
        print(
            f"{lib:<10}{fmt(row['fwd_us_per_op']):>22}{fmt(row['fwd_bwd_us_per_op']):>22}"
            f"{ratio:>22}{row['chain_100k_s']:>14.2f}"
        )
    torch_row = result["libs"].get("torch", {})
    if "tinytape_time_ratio" in torch_row:
        ratio = torch_row["tinytape_time_ratio"]["median"]
        verdict = "ok  " if ratio <= TARGET_VS_TORCH else "MISS"
        print(
            f"\ntarget: {verdict} tinytape's fwd+bwd time per op is {ratio:.2f}x PyTorch "
            f"eager's (target <= {TARGET_VS_TORCH})"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
