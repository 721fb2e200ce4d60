"""Kernel microbenchmarks: tinytape against numpy and (when installed) PyTorch.

    python benches/kernels.py [--threads 1,2] [--json PATH] [--quick]

Each thread count runs in a fresh process with OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and
MKL_NUM_THREADS set (and torch.set_num_threads), so every library uses the same number of
threads. Times are the best of several repetitions. Ratios are speed-ups of tinytape:
"x numpy" = numpy time / tinytape time (> 1 means tinytape is faster).

Targets (reported here, never asserted in tests): GEMM float32 at n = 512 and 1024 at least
0.8x numpy's GFLOP/s; softmax, layer norm and cross-entropy forward+backward on (4096, 512)
float32 at least 3x the numpy composite and at least 1x PyTorch. The fused attention row
(no target of its own) shows the kernel behind benches/train_step.py's attention.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

SQUARE_SIZES = [128, 256, 512, 1024]
ROWS_SHAPE = (4096, 512)


def best_time(fn: Callable[[], object], min_time: float, repeat: int) -> float:
    """Best seconds per call over `repeat` rounds, each of enough calls to last `min_time`."""
    fn()  # warm-up (page faults, thread pools)
    calls, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        t = time.perf_counter() - t0
        if t >= min_time / 4 or calls >= 1 << 16:
            break
        calls *= 2
    best = t / calls
    for _ in range(repeat - 1):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


# ------------------------------------------------------------------ cases
def gemm_cases(np, backend, torch):
    for dtype in ("float32", "float64"):
        for n in SQUARE_SIZES:
            rng = np.random.default_rng(0)
            a = rng.standard_normal((n, n)).astype(dtype)
            b = rng.standard_normal((n, n)).astype(dtype)
            impls = {"tinytape": lambda a=a, b=b: backend.gemm(a, b),
                     "numpy": lambda a=a, b=b: np.matmul(a, b)}
            if torch is not None:
                ta, tb = torch.from_numpy(a), torch.from_numpy(b)
                impls["torch"] = lambda ta=ta, tb=tb: torch.mm(ta, tb)
            yield "gemm", f"{n}x{n}x{n}", dtype, 2.0 * n**3, impls
    # Batched, shaped like attention scores: (batch*heads, T, d) @ (batch*heads, d, T).
    for batch, m, k in [(64, 64, 64), (32, 128, 32)]:
        rng = np.random.default_rng(0)
        a = rng.standard_normal((batch, m, k)).astype("float32")
        b = rng.standard_normal((batch, k, m)).astype("float32")
        impls = {"tinytape": lambda a=a, b=b: backend.gemm_batched(a, b),
                 "numpy": lambda a=a, b=b: np.matmul(a, b)}
        if torch is not None:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            impls["torch"] = lambda ta=ta, tb=tb: torch.bmm(ta, tb)
        yield "gemm_batched", f"{batch}x({m}x{k}x{m})", "float32", 2.0 * batch * m * m * k, impls


def row_cases(np, backend, torch):
    rows, cols = ROWS_SHAPE
    rng = np.random.default_rng(0)
    x = rng.standard_normal(ROWS_SHAPE).astype("float32")
    dy = rng.standard_normal(ROWS_SHAPE).astype("float32")
    t = rng.integers(0, cols, rows)
    g = rng.standard_normal(cols).astype("float32")
    b = rng.standard_normal(cols).astype("float32")

    def tt_softmax():
        backend.softmax_backward(backend.softmax(x), dy)

    def np_softmax():
        e = np.exp(x - x.max(1, keepdims=True))
        y = e / e.sum(1, keepdims=True)
        return y * (dy - (dy * y).sum(1, keepdims=True))

    def tt_log_softmax():
        backend.log_softmax_backward(backend.log_softmax(x), dy)

    def np_log_softmax():
        s = x - x.max(1, keepdims=True)
        y = s - np.log(np.exp(s).sum(1, keepdims=True))
        return dy - np.exp(y) * dy.sum(1, keepdims=True)

    def tt_xent():
        loss, lse = backend.cross_entropy(x, t)
        backend.cross_entropy_backward(x, t, lse)

    def np_xent():
        m = x.max(1, keepdims=True)
        lse = m + np.log(np.exp(x - m).sum(1, keepdims=True))
        loss = (lse[:, 0] - x[np.arange(rows), t]).mean()
        d = np.exp(x - lse)
        d[np.arange(rows), t] -= 1
        return loss, d / rows

    def tt_ln():
        y, mean, rstd = backend.layer_norm(x, g, b)
        backend.layer_norm_backward(dy, x, g, mean, rstd)

    def np_ln():
        mean = x.mean(1, keepdims=True)
        xc = x - mean
        rstd = 1 / np.sqrt((xc * xc).mean(1, keepdims=True) + 1e-5)
        xhat = xc * rstd
        y = xhat * g + b
        gg = dy * g
        dx = rstd * (gg - gg.mean(1, keepdims=True) - xhat * (gg * xhat).mean(1, keepdims=True))
        return y, dx, (dy * xhat).sum(0), dy.sum(0)

    cases = {
        "softmax": (tt_softmax, np_softmax),
        "log_softmax": (tt_log_softmax, np_log_softmax),
        "cross_entropy": (tt_xent, np_xent),
        "layer_norm": (tt_ln, np_ln),
    }
    torch_fns = {}
    if torch is not None:
        import torch.nn.functional as F

        tx = torch.from_numpy(x).requires_grad_()
        tdy, tt_, tg, tb = (torch.from_numpy(a) for a in (dy, t, g, b))
        tg.requires_grad_()
        tb.requires_grad_()
        torch_fns = {
            "softmax": lambda: torch.autograd.grad(torch.softmax(tx, 1), tx, tdy),
            "log_softmax": lambda: torch.autograd.grad(torch.log_softmax(tx, 1), tx, tdy),
            "cross_entropy": lambda: torch.autograd.grad(F.cross_entropy(tx, tt_), tx),
            "layer_norm": lambda: torch.autograd.grad(
                F.layer_norm(tx, (cols,), tg, tb), (tx, tg, tb), tdy),
        }
    for name, (ours, ref) in cases.items():
        impls = {"tinytape": ours, "numpy": ref}
        if name in torch_fns:
            impls["torch"] = torch_fns[name]
        yield f"{name} fwd+bwd", f"{rows}x{cols}", "float32", 0.0, impls


def attention_cases(np, backend, torch):
    """Causal self-attention fwd+bwd from a packed (B, T, 3 H d) projection, shaped like the
    GPT of benches/train_step.py (B 16, T 64, H 4, d 32)."""
    b, t, h, d = 16, 64, 4, 32
    rng = np.random.default_rng(0)
    qkv = rng.standard_normal((b, t, 3 * h * d)).astype("float32")
    g = rng.standard_normal((b, t, h * d)).astype("float32")

    def ours():
        out, w = backend.attention(qkv, h, True)
        backend.attention_backward(qkv, h, None, w, g, True)

    def composite():  # the same maths in numpy (its matmul runs on OpenBLAS)
        out, w = backend.attention_reference(qkv, h, True)
        backend.attention_backward_reference(qkv, h, None, w, g, True)

    impls = {"tinytape": ours, "numpy": composite}
    if torch is not None:
        import torch.nn.functional as F

        tq = torch.from_numpy(qkv).requires_grad_()
        tg = torch.from_numpy(g)

        def torch_sdpa():
            q, k, v = tq.view(b, t, 3, h, d).unbind(2)
            out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                                 v.transpose(1, 2), is_causal=True)
            torch.autograd.grad(out.transpose(1, 2).reshape(b, t, h * d), tq, tg)

        impls["torch"] = torch_sdpa
    yield "attention fwd+bwd", f"{b}x{t}x{h}x{d}", "float32", 12.0 * b * h * t * t * d, impls


def worker(threads: int, quick: bool) -> list[dict]:
    import numpy as np

    import tinytape
    from tinytape import backend

    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    tinytape.set_num_threads(threads)
    min_time, repeat = (0.05, 3) if quick else (0.2, 5)
    results = []
    for kernel, shape, dtype, flops, impls in [*gemm_cases(np, backend, torch),
                                                *row_cases(np, backend, torch),
                                                *attention_cases(np, backend, torch)]:
        row = {"kernel": kernel, "shape": shape, "dtype": dtype, "threads": threads}
        for lib, fn in impls.items():
            sec = best_time(fn, min_time, repeat)
            row[f"{lib}_ms"] = sec * 1e3
            if flops:
                row[f"{lib}_gflops"] = flops / sec / 1e9
        results.append(row)
    return results


# ------------------------------------------------------------------ report
def _fmt(v, spec):
    return format(v, spec) if v is not None else "-"


def print_table(rows: list[dict]) -> None:
    header = (f"{'kernel':<22}{'shape':<18}{'dtype':<9}{'thr':>4}{'tinytape ms':>13}"
              f"{'numpy ms':>11}{'torch ms':>11}{'GFLOP/s':>10}{'x numpy':>9}{'x torch':>9}")
    print(header)
    print("-" * len(header))
    for r in rows:
        ours = r["tinytape_ms"]
        x_np = r["numpy_ms"] / ours
        x_torch = r["torch_ms"] / ours if "torch_ms" in r else None
        print(f"{r['kernel']:<22}{r['shape']:<18}{r['dtype']:<9}{r['threads']:>4}"
              f"{ours:>13.3f}{r['numpy_ms']:>11.3f}{_fmt(r.get('torch_ms'), '11.3f'):>11}"
              f"{_fmt(r.get('tinytape_gflops'), '10.1f'):>10}{x_np:>9.2f}"
              f"{_fmt(x_torch, '9.2f'):>9}")


def check_targets(rows: list[dict]) -> list[str]:
    """The issue's targets, each with its measured value and whether it is met."""
    lines = []
    for r in rows:
        ratio_np = r["numpy_ms"] / r["tinytape_ms"]
        where = f"{r['kernel']} {r['shape']} {r['dtype']} @{r['threads']}t"
        if r["kernel"] == "gemm" and r["dtype"] == "float32" and r["shape"] in (
            "512x512x512", "1024x1024x1024"):
            lines.append(f"{'ok  ' if ratio_np >= 0.8 else 'MISS'} {where}: "
                         f"{ratio_np:.2f}x numpy GFLOP/s (target >= 0.8)")
        if r["kernel"] in ("softmax fwd+bwd", "layer_norm fwd+bwd", "cross_entropy fwd+bwd"):
            lines.append(f"{'ok  ' if ratio_np >= 3 else 'MISS'} {where}: "
                         f"{ratio_np:.2f}x faster than numpy (target >= 3)")
            if "torch_ms" in r:
                ratio_t = r["torch_ms"] / r["tinytape_ms"]
                lines.append(f"{'ok  ' if ratio_t >= 1 else 'MISS'} {where}: "
                             f"{ratio_t:.2f}x PyTorch's speed (target >= 1)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--json", metavar="PATH", help="write the figures to PATH as JSON")
    parser.add_argument("--quick", action="store_true", help="shorter timing runs")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        with open(args.out, "w") as f:
            json.dump(worker(args.worker, args.quick), f)
        return 0

    try:
        counts = [int(t) for t in args.threads.split(",")]
        if min(counts) < 1:
            raise ValueError
    except ValueError:
        parser.error(f"--threads must be positive integers separated by commas, "
                     f"got {args.threads!r}")
    rows = []
    for threads in counts:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads),
               "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            cmd = [sys.executable, __file__, "--worker", str(threads), "--out", out.name]
            if args.quick:
                cmd.append("--quick")
            print(f"running at {threads} thread(s)...", file=sys.stderr, flush=True)
            subprocess.run(cmd, env=env, check=True)
            rows.extend(json.load(open(out.name)))

    import tinytape

    print(f"tinytape {tinytape.__version__}, backend {tinytape.backend.name()}, "
          f"simd {tinytape.config().get('simd')}")
    print_table(rows)
    targets = check_targets(rows)
    print("\ntargets:")
    for line in targets:
        print("  " + line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": {k: str(v) for k, v in tinytape.config().items()},
                       "results": rows, "targets": targets}, f, indent=2)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
