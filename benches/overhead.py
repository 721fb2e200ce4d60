"""Per-op overhead of the tape: tinytape against PyTorch eager (when installed).

    python benches/overhead.py [--json PATH] [--repeat N]

A chain of 200 elementwise ops (alternating mul, add, tanh, sigmoid) on (8, 8)
float32 tensors, forward then backward: tiny tensors, so the time is the framework's
bookkeeping, not arithmetic. Reported in microseconds per op (forward and forward+
backward), best of N runs. Also the time of a 100,000-op chain (forward + backward).
Target: per-op overhead no worse than PyTorch eager on the same machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

CHAIN = 200
LONG_CHAIN = 100_000


def chain_tinytape(x, w, n):
    import tinytape as tt

    y = x
    for i in range(n // 4):
        y = tt.sigmoid(tt.tanh(y * w + 0.5))
        del i
    return y


def chain_torch(x, w, n):
    import torch

    y = x
    for _ in range(n // 4):
        y = torch.sigmoid(torch.tanh(y * w + 0.5))
    return y


def measure(lib: str, repeat: int) -> dict:
    rng = np.random.default_rng(0)
    xv = rng.standard_normal((8, 8)).astype(np.float32)
    wv = rng.standard_normal((8, 8)).astype(np.float32)
    if lib == "tinytape":
        import tinytape as tt

        x = tt.tensor(xv, requires_grad=True)
        w = tt.tensor(wv, requires_grad=True)
        chain = chain_tinytape
    else:
        import torch

        torch.set_num_threads(1)
        x = torch.tensor(xv, requires_grad=True)
        w = torch.tensor(wv, requires_grad=True)
        chain = chain_torch

    fwd, total = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        y = chain(x, w, CHAIN)
        t1 = time.perf_counter()
        y.sum().backward()
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        total.append(t2 - t0)
        x.grad = None
        w.grad = None
    t0 = time.perf_counter()
    chain(x, w, LONG_CHAIN).sum().backward()
    long_s = time.perf_counter() - t0
    return {"lib": lib, "fwd_us_per_op": min(fwd) / CHAIN * 1e6,
            "fwd_bwd_us_per_op": min(total) / CHAIN * 1e6, "chain_100k_s": long_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="PATH", help="write the figures to PATH")
    parser.add_argument("--repeat", type=int, default=30, help="runs of the 200-op chain")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    libs = ["tinytape"]
    try:
        import torch  # noqa: F401

        libs.append("torch")
    except ImportError:
        print("PyTorch is not installed: tinytape only", file=sys.stderr)
    rows = [measure(lib, args.repeat) for lib in libs]
    print(f"{'library':<10}{'fwd us/op':>12}{'fwd+bwd us/op':>16}{'100k chain s':>15}")
    for r in rows:
        print(f"{r['lib']:<10}{r['fwd_us_per_op']:>12.2f}{r['fwd_bwd_us_per_op']:>16.2f}"
              f"{r['chain_100k_s']:>15.2f}")
    if len(rows) == 2:
        ratio = rows[1]["fwd_bwd_us_per_op"] / rows[0]["fwd_bwd_us_per_op"]
        verdict = "ok  " if ratio >= 1 else "MISS"
        print(f"\ntarget: {verdict} tinytape fwd+bwd overhead is {ratio:.2f}x PyTorch's speed "
              "(target >= 1)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
