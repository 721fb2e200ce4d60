"""An MLP training step (64-256-256-10, ReLU, cross-entropy, SGD; batch 64, float32):
tinytape against PyTorch eager and the same step written by hand in numpy.

    python benches/mlp_step.py [--threads 1,2] [--rounds 7] [--steps 20] [--json PATH]

A small model: the matrices are small enough that the framework's per-op cost is a large
part of a step. Each thread count runs in its own process with OMP_NUM_THREADS and
OPENBLAS_NUM_THREADS set, so the three use the same number of threads. Within a process
the libraries take turns: each round times --steps steps of every library (the order
reversed every other round, the process settled before each block: benches/_rounds.py);
a round's figure is its median step. The table gives the median and range over the
rounds of the step time and of each library's time as a multiple of tinytape's (from the
same round). Target (reported, not asserted): tinytape's step at least 1.5x as fast as
PyTorch's at 1 and at 2 threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
from _rounds import take_turns
from _workers import run_worker

SIZES = (64, 256, 256, 10)
BATCH = 64
LR = 0.01
TARGET_VS_TORCH = 1.5


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    return x, rng.integers(0, SIZES[-1], BATCH)


def init(seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight (out, in), bias (out,)) per layer, uniform in +-1/sqrt(in) as nn.Linear."""
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1 / np.sqrt(n_in)
        layers.append(
            (
                rng.uniform(-bound, bound, (n_out, n_in)).astype(np.float32),
                rng.uniform(-bound, bound, n_out).astype(np.float32),
            )
        )
    return layers


def tinytape_step() -> Callable[[], float]:
    import tinytape as tt

    layers = []
    for w, b in init():
        lin = tt.nn.Linear(w.shape[1], w.shape[0])
        lin.weight.data[...] = w
        lin.bias.data[...] = b
        layers.append(lin)
    params = [p for lin in layers for p in lin.parameters()]
    opt = tt.optim.SGD(params, lr=LR)
    xv, yv = data()
    x = tt.tensor(xv)

    def step() -> float:
        opt.zero_grad()
        h = x
        for i, lin in enumerate(layers):
            h = lin(h)
            if i < len(layers) - 1:
                h = h.relu()
        loss = tt.cross_entropy(h, yv)
        loss.backward()
        opt.step()
        return float(loss.item())

    return step


def torch_step() -> Callable[[], float]:
    import torch

    layers = []
    for w, b in init():
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
    model = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1], torch.nn.ReLU(), layers[2])
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    xv, yv = data()
    x, y = torch.from_numpy(xv), torch.from_numpy(yv)

    def step() -> float:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return float(loss.item())

    return step


def numpy_step() -> Callable[[], float]:
    """Forward, backward and SGD written out: what the step costs with no framework."""
    layers = init()
    x, y = data()
    rows = np.arange(BATCH)

    def step() -> float:
        acts = [x]
        h = x
        for i, (w, b) in enumerate(layers):
            h = h @ w.T + b
            if i < len(layers) - 1:
                h = np.maximum(h, 0)
            acts.append(h)
        z = h - h.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) - z[rows, y]))
        g = e / s
        g[rows, y] -= 1
        g /= BATCH
        for i in range(len(layers) - 1, -1, -1):
            w, b = layers[i]
            a = acts[i]
            gw, gb = g.T @ a, g.sum(axis=0)
            if i > 0:
                g = (g @ w) * (a > 0)
            w -= LR * gw
            b -= LR * gb
        return loss

    return step


STEPS = {"tinytape": tinytape_step, "torch": torch_step, "numpy": numpy_step}


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def worker(libs: list[str], threads: int, rounds: int, steps: int) -> dict:
    if "torch" in libs:
        import torch

        torch.set_num_threads(threads)
    if "tinytape" in libs:
        import tinytape

        tinytape.set_num_threads(threads)
    runs = {lib: STEPS[lib]() for lib in libs}
    losses = {lib: [runs[lib]() for _ in range(3)] for lib in libs}  # warm up

    def block(lib: str, _round: int) -> float:
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            runs[lib]()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e3

    per_round = take_turns(libs, rounds, block)
    out = {}
    for lib in libs:
        out[lib] = {"step_ms": spread(per_round[lib]), "first_losses": losses[lib]}
        if lib != "tinytape" and "tinytape" in libs:  # how many tinytape steps per lib step
            out[lib]["speedup_of_tinytape"] = spread(
                [b / a for a, b in zip(per_round["tinytape"], per_round[lib])]
            )
    return out


def run_at(libs: list[str], threads: int, rounds: int, steps: int) -> dict:
    """The worker's figures at `threads` threads, from a fresh process."""
    args = ["--libs", ",".join(libs), "--rounds", str(rounds), "--steps", str(steps)]
    return run_worker(__file__, str(threads), threads, args)


def fmt(s: dict, digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20, help="steps per library per round")
    parser.add_argument("--libs", default="tinytape,torch,numpy")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    libs = [lib.strip() for lib in args.libs.split(",") if lib.strip()]
    if not libs or any(lib not in STEPS for lib in libs):
        parser.error(f"--libs: choose from {sorted(STEPS)}, got {args.libs!r}")
    if args.rounds < 1 or args.steps < 1:
        parser.error("--rounds and --steps must be at least 1")
    if args.worker:
        with open(args.out, "w") as f:
            json.dump(worker(libs, args.worker, args.rounds, args.steps), f)
        return 0
    try:
        counts = [int(t) for t in args.threads.split(",")]
    except ValueError:
        parser.error(f"--threads must be integers separated by commas, got {args.threads!r}")
    if "torch" in libs:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch is not installed: skipped", file=sys.stderr)
            libs.remove("torch")
    result = {
        "sizes": SIZES,
        "batch": BATCH,
        "rounds": args.rounds,
        "steps": args.steps,
        "threads": {},
    }
    for threads in counts:
        print(f"{', '.join(libs)} at {threads} thread(s)...", file=sys.stderr, flush=True)
        result["threads"][str(threads)] = run_at(libs, threads, args.rounds, args.steps)
    print(
        f"MLP {'-'.join(map(str, SIZES))} SGD step, batch {BATCH}, float32: median [range] "
        f"over {args.rounds} rounds"
    )
    print(f"{'library':<10}{'threads':>8}{'step ms':>24}{'steps/s':>10}{'tinytape speedup':>22}")
    for threads, rows in result["threads"].items():
        for lib, row in rows.items():
            speed = fmt(row["speedup_of_tinytape"]) if "speedup_of_tinytape" in row else "-"
            print(
                f"{lib:<10}{threads:>8}{fmt(row['step_ms'], 3):>24}"
                f"{1e3 / row['step_ms']['median']:>10.0f}{speed:>22}"
            )
    for threads, rows in result["threads"].items():
        reference = next(iter(rows.values()))["first_losses"]
        for lib, row in rows.items():  # one model, one step: the losses must agree
            if not np.allclose(row["first_losses"], reference, rtol=1e-4):
                print(
                    f"warning @{threads}t: {lib}'s first losses {row['first_losses']} differ "
                    f"from {reference}",
                    file=sys.stderr,
                )
        if "speedup_of_tinytape" in rows.get("torch", {}):
            ratio = rows["torch"]["speedup_of_tinytape"]["median"]
            verdict = "ok  " if ratio >= TARGET_VS_TORCH else "MISS"
            print(
                f"target @{threads}t: {verdict} tinytape's step is {ratio:.2f}x as fast as "
                f"PyTorch eager's (target >= {TARGET_VS_TORCH})"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
