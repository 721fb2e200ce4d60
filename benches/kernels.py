"""Kernel benchmarks: tinytape against PyTorch (when installed) and numpy, at 1 and 2 threads.

    python benches/kernels.py [--threads 1,2] [--rounds 7] [--only gemm,rows] [--json PATH]
                              [--quick]

Each thread count runs in a fresh process with OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and
MKL_NUM_THREADS set (and torch.set_num_threads), so every library gets the same threads.
The machine's speed drifts from minute to minute, so the libraries take turns: every
case runs in rounds, each round timing one block of calls per library (a block lasts
about --block-ms), with the order of the libraries reversed every other round. Before
each block the process waits until the previous library's threads have gone idle
(benches/_rounds.py: numpy's OpenBLAS threads spin for about 0.1 s after a call and took
the second core from whichever library came next); within its block each library keeps
its own wait policy. PyTorch and tinytape share one OpenMP runtime in a process (the
first libgomp loaded), so both run with tinytape's OMP_WAIT_POLICY=PASSIVE here. While
other processes keep a core busy, 2-thread figures of sleeping workers vary from run to
run (a woken worker may land on its waker's core), and on a virtual machine that packs its
vCPUs they may show no speed-up even when idle (README, "Backends, SIMD paths and
threads"). A library's figure is the median over the rounds of its time per call, with
the range (fastest, slowest round). "x best" is the faster reference's median time over
tinytape's (> 1: tinytape is faster); its range is that ratio taken round by round.

Cases: GEMM (float32 and float64) on square n = 64 to 1024 and on the shapes of the tiny
GPT of benches/train_step.py (1,024 tokens, d_model 128: the forward products, dW = x^T dy
and dx = dy W^T); every row kernel forward+backward (softmax, log-softmax, cross-entropy,
layer norm, GELU) on (4096, 512) and on the GPT's shapes; the sigmoid forward and the
sigmoid and tanh backwards, each alone, on 64 values (an op of benches/overhead.py's chain,
where the cost of a call is all there is) and on 4096 x 512; the fused Adam step, the
fused attention kernel, and add and mul (by a single value) on 64 values, on the GPT's
residual stream and on 4096 x 512. Row kernels are compared with PyTorch (autograd of its fused ops,
or the one aten kernel) and with the numpy composite of the same maths.

Targets (reported, never asserted in tests), each at 1 and at 2 threads:
  - GEMM float32 at n = 128 and 256: at least 0.9x the speed of the faster of numpy and
    PyTorch (float64 is reported beside it);
  - softmax and layer norm forward+backward on (4096, 512) float32: no slower than PyTorch;
  - GEMM float32 at n = 512 and 1024: at least 0.8x numpy's speed;
  - softmax, layer norm and cross-entropy forward+backward on (4096, 512) float32: at
    least 3x the numpy composite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator

from _rounds import take_turns
from _workers import run_worker

SQUARE_SIZES = {"float32": [64, 128, 256, 512, 1024], "float64": [128, 256, 512]}
#: (m, n, k, trans_a, trans_b) of the tiny GPT's linear layers, forward and backward
GPT_TOKENS, GPT_WIDTH = 1024, 128
GPT_GEMMS = [
    (GPT_TOKENS, 3 * GPT_WIDTH, GPT_WIDTH, False, False),  # qkv projection
    (GPT_TOKENS, 4 * GPT_WIDTH, GPT_WIDTH, False, False),  # MLP up
    (GPT_TOKENS, GPT_WIDTH, 4 * GPT_WIDTH, False, False),  # MLP down
    (GPT_TOKENS, GPT_WIDTH, 4 * GPT_WIDTH, False, True),  # dx of MLP up: dy W^T
    (4 * GPT_WIDTH, GPT_WIDTH, GPT_TOKENS, True, False),  # dW of MLP up: x^T dy
]
ROWS_SHAPES = [(4096, 512), (1024, 512), (GPT_TOKENS, GPT_WIDTH)]
CE_GPT_SHAPE = (GPT_TOKENS, 96)  # the GPT's logits: vocab 96

Case = tuple[str, str, str, float, dict[str, Callable[[], object]]]


# ------------------------------------------------------------------ timing
def calls_per_block(fns: list[Callable[[], object]], block_s: float) -> int:
    """Calls of the slowest of `fns` that last about `block_s` (at least one)."""
    slowest = 0.0
    for fn in fns:
        fn()  # warm-up: page faults, thread pools, caches
        t0 = time.perf_counter()
        fn()
        slowest = max(slowest, time.perf_counter() - t0)
    return max(1, min(1 << 14, int(block_s / max(slowest, 1e-7))))


def rounds_of(
    impls: dict[str, Callable[[], object]], rounds: int, block_s: float
) -> dict[str, list[float]]:
    """Seconds per call of each library in each round (see _rounds.take_turns)."""
    calls = calls_per_block(list(impls.values()), block_s)

    def block(lib: str, _round: int) -> float:
        fn = impls[lib]
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - t0) / calls

    return take_turns(list(impls), rounds, block)


# ------------------------------------------------------------------ cases
def gemm_cases(np, backend, torch) -> Iterator[Case]:
    def case(kernel, shape, dtype, m, n, k, ta, tb):
        rng = np.random.default_rng(0)
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
        opa, opb = (a.T if ta else a), (b.T if tb else b)
        impls = {
            "tinytape": lambda: backend.gemm(a, b, trans_a=ta, trans_b=tb),
            "numpy": lambda: np.matmul(opa, opb),
        }
        if torch is not None:
            ta_, tb_ = torch.from_numpy(a), torch.from_numpy(b)
            topa, topb = (ta_.t() if ta else ta_), (tb_.t() if tb else tb_)
            impls["torch"] = lambda: torch.mm(topa, topb)
        return kernel, shape, dtype, 2.0 * m * n * k, impls

    for dtype, sizes in SQUARE_SIZES.items():
        for n in sizes:
            yield case("gemm", f"{n}x{n}x{n}", dtype, n, n, n, False, False)
    for m, n, k, ta, tb in GPT_GEMMS:
        op = "T" if ta else "", "T" if tb else ""
        yield case(
            "gemm gpt", f"{m}x{n}x{k} {op[0] or 'N'}{op[1] or 'N'}", "float32", m, n, k, ta, tb
        )
    # Batched, shaped like the GPT's attention scores: (batch*heads, T, d) @ (.., d, T).
    for batch, m, k in [(64, 64, 32), (64, 64, 64)]:
        rng = np.random.default_rng(0)
        a = rng.standard_normal((batch, m, k)).astype("float32")
        b = rng.standard_normal((batch, k, m)).astype("float32")
        impls = {
            "tinytape": lambda a=a, b=b: backend.gemm_batched(a, b),
            "numpy": lambda a=a, b=b: np.matmul(a, b),
        }
        if torch is not None:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            impls["torch"] = lambda ta=ta, tb=tb: torch.bmm(ta, tb)
        yield ("gemm batched", f"{batch}x({m}x{k}x{m})", "float32", 2.0 * batch * m * m * k, impls)


def row_cases(np, backend, torch) -> Iterator[Case]:
    F = None
    if torch is not None:
        import torch.nn.functional as F
    shapes = {
        "softmax": ROWS_SHAPES,
        "log_softmax": ROWS_SHAPES[:1],
        "cross_entropy": [ROWS_SHAPES[0], CE_GPT_SHAPE],
        "layer_norm": ROWS_SHAPES,
    }
    for name, name_shapes in shapes.items():
        for rows, cols in name_shapes:
            yield _row_case(np, backend, torch, F, name, rows, cols)
    for size in (4096 * 512, GPT_TOKENS * 4 * GPT_WIDTH):  # GELU on the GPT's MLP
        yield _gelu_case(np, backend, torch, size)
    for size in (64, 4096 * 512):  # the (8, 8) of benches/overhead.py's chain, and large
        yield from _sigmoid_tanh_cases(np, backend, torch, size)
    yield _adam_case(np, backend, torch, 4096 * 512)
    # the (8, 8) of benches/overhead.py's chain, the GPT's residual adds, and large
    for size in (64, GPT_TOKENS * GPT_WIDTH, 4096 * 512):
        yield from _binary_cases(np, backend, torch, size)


def _row_case(np, backend, torch, F, name, rows, cols) -> Case:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, cols)).astype("float32")
    dy = rng.standard_normal((rows, cols)).astype("float32")
    t = rng.integers(0, cols, rows)
    g = rng.standard_normal(cols).astype("float32")
    b = rng.standard_normal(cols).astype("float32")

    def np_softmax():
        e = np.exp(x - x.max(1, keepdims=True))
        y = e / e.sum(1, keepdims=True)
        return y * (dy - (dy * y).sum(1, keepdims=True))

    def np_log_softmax():
        s = x - x.max(1, keepdims=True)
        y = s - np.log(np.exp(s).sum(1, keepdims=True))
        return dy - np.exp(y) * dy.sum(1, keepdims=True)

    def np_xent():
        m = x.max(1, keepdims=True)
        lse = m + np.log(np.exp(x - m).sum(1, keepdims=True))
        loss = (lse[:, 0] - x[np.arange(rows), t]).mean()
        d = np.exp(x - lse)
        d[np.arange(rows), t] -= 1
        return loss, d / rows

    def np_ln():
        mean = x.mean(1, keepdims=True)
        xc = x - mean
        rstd = 1 / np.sqrt((xc * xc).mean(1, keepdims=True) + 1e-5)
        xhat = xc * rstd
        y = xhat * g + b
        gg = dy * g
        dx = rstd * (gg - gg.mean(1, keepdims=True) - xhat * (gg * xhat).mean(1, keepdims=True))
        return y, dx, (dy * xhat).sum(0), dy.sum(0)

    def tt_xent():
        _, lse = backend.cross_entropy(x, t)
        backend.cross_entropy_backward(x, t, lse)

    def tt_ln():
        _, mean, rstd = backend.layer_norm(x, g, b)
        backend.layer_norm_backward(dy, x, g, mean, rstd)

    ours = {
        "softmax": lambda: backend.softmax_backward(backend.softmax(x), dy),
        "log_softmax": lambda: backend.log_softmax_backward(backend.log_softmax(x), dy),
        "cross_entropy": tt_xent,
        "layer_norm": tt_ln,
    }[name]
    ref = {
        "softmax": np_softmax,
        "log_softmax": np_log_softmax,
        "cross_entropy": np_xent,
        "layer_norm": np_ln,
    }[name]
    impls = {"tinytape": ours, "numpy": ref}
    if torch is not None:
        tx = torch.from_numpy(x).requires_grad_()
        tdy, tt_ = torch.from_numpy(dy), torch.from_numpy(t)
        tg, tb = torch.from_numpy(g).requires_grad_(), torch.from_numpy(b).requires_grad_()
        impls["torch"] = {
            "softmax": lambda: torch.autograd.grad(torch.softmax(tx, 1), tx, tdy),
            "log_softmax": lambda: torch.autograd.grad(torch.log_softmax(tx, 1), tx, tdy),
            "cross_entropy": lambda: torch.autograd.grad(F.cross_entropy(tx, tt_), tx),
            "layer_norm": lambda: torch.autograd.grad(
                F.layer_norm(tx, (cols,), tg, tb), (tx, tg, tb), tdy
            ),
        }[name]
    return f"{name} fwd+bwd", f"{rows}x{cols}", "float32", 0.0, impls


def _gelu_case(np, backend, torch, size) -> Case:
    from tinytape.backend.gelu import gelu_backward_reference, gelu_reference

    rng = np.random.default_rng(0)
    x = rng.standard_normal(size).astype("float32")
    dy = rng.standard_normal(size).astype("float32")

    def ours():
        backend.gelu(x)
        backend.gelu_backward(x, dy)

    def composite():
        gelu_reference(x)
        gelu_backward_reference(x, dy)

    impls = {"tinytape": ours, "numpy": composite}
    if torch is not None:
        import torch.nn.functional as F

        tx, tdy = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)
        impls["torch"] = lambda: torch.autograd.grad(F.gelu(tx, approximate="tanh"), tx, tdy)
    return "gelu fwd+bwd", f"{size}", "float32", 0.0, impls


def _sigmoid_tanh_cases(np, backend, torch, size) -> Iterator[Case]:
    """The sigmoid forward and the sigmoid and tanh backwards from their saved outputs,
    each alone (one kernel each in tinytape and PyTorch; the numpy references take 3-4
    ufunc calls)."""
    from tinytape.backend import elementwise as ew

    rng = np.random.default_rng(0)
    x = (4 * rng.standard_normal(size)).astype("float32")
    dy = rng.standard_normal(size).astype("float32")
    y, t = ew.sigmoid_reference(x), np.tanh(x)
    cases = {
        "sigmoid": (lambda: backend.sigmoid(x), lambda: ew.sigmoid_reference(x)),
        "sigmoid_backward": (
            lambda: backend.sigmoid_backward(y, dy),
            lambda: ew.sigmoid_backward_reference(y, dy),
        ),
        "tanh_backward": (
            lambda: backend.tanh_backward(t, dy),
            lambda: ew.tanh_backward_reference(t, dy),
        ),
    }
    if torch is not None:
        tx, tdy, ty, tt_ = (torch.from_numpy(a) for a in (x, dy, y, t))
        aten = torch.ops.aten
        torch_impls = {
            "sigmoid": lambda: torch.sigmoid(tx),
            "sigmoid_backward": lambda: aten.sigmoid_backward(tdy, ty),
            "tanh_backward": lambda: aten.tanh_backward(tdy, tt_),
        }
    for name, (ours, reference) in cases.items():
        impls = {"tinytape": ours, "numpy": reference}
        if torch is not None:
            impls["torch"] = torch_impls[name]
        yield name, f"{size}", "float32", 0.0, impls


def _binary_cases(np, backend, torch, size) -> Iterator[Case]:
    """add of two arrays and mul by a single value (a 0-d array, as the tape passes a
    Python number): one kernel call each, against the numpy ufunc and PyTorch."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(size).astype("float32") for _ in range(2))
    s = np.asarray(np.float32(0.5))
    cases = {
        "add": (lambda: backend.add(a, b), lambda: np.add(a, b)),
        "mul_by_value": (lambda: backend.mul(a, s), lambda: np.multiply(a, s)),
    }
    if torch is not None:
        ta, tb, ts = (torch.from_numpy(v) for v in (a, b, s))
        torch_impls = {"add": lambda: torch.add(ta, tb), "mul_by_value": lambda: torch.mul(ta, ts)}
    for name, (ours, reference) in cases.items():
        impls = {"tinytape": ours, "numpy": reference}
        if torch is not None:
            impls["torch"] = torch_impls[name]
        yield name, f"{size}", "float32", 0.0, impls


def _adam_case(np, backend, torch, size) -> Case:
    """One AdamW step on one parameter of `size` values (PyTorch's fused CPU AdamW)."""
    from tinytape.backend.adam import AdamStep

    rng = np.random.default_rng(0)
    p, g = (rng.standard_normal(size).astype("float32") for _ in range(2))
    m, v = np.zeros_like(p), np.zeros_like(p)
    hp = dict(
        lr=1e-3,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        weight_decay=0.1,
        decoupled=True,
        maximize=False,
        step=1,
    )
    pr, mr, vr = p.copy(), m.copy(), v.copy()
    step = AdamStep.of(**hp)
    impls = {
        "tinytape": lambda: backend.adam_step(p, g, m, v, **hp),
        "numpy": lambda: backend.adam_step_reference(pr, g, mr, vr, None, step),
    }
    if torch is not None:
        tp = torch.nn.Parameter(torch.from_numpy(p.copy()))
        tp.grad = torch.from_numpy(g)
        try:
            opt = torch.optim.AdamW([tp], lr=1e-3, weight_decay=0.1, fused=True)
        except (RuntimeError, TypeError):  # a build without the fused CPU kernel
            opt = torch.optim.AdamW([tp], lr=1e-3, weight_decay=0.1, foreach=True)
        impls["torch"] = opt.step
    return "adamw step", f"{size}", "float32", 0.0, impls


def attention_cases(np, backend, torch) -> Iterator[Case]:
    """Causal self-attention fwd+bwd from a packed (B, T, 3 H d) projection, shaped like the
    GPT of benches/train_step.py (B 16, T 64, H 4, d 32)."""
    b, t, h, d = 16, 64, 4, 32
    rng = np.random.default_rng(0)
    qkv = rng.standard_normal((b, t, 3 * h * d)).astype("float32")
    g = rng.standard_normal((b, t, h * d)).astype("float32")

    def ours():
        _, w = backend.attention(qkv, h, True)
        backend.attention_backward(qkv, h, None, w, g, True)

    def composite():  # the same maths in numpy (its matmul runs on OpenBLAS)
        _, w = backend.attention_reference(qkv, h, True)
        backend.attention_backward_reference(qkv, h, None, w, g, True)

    impls = {"tinytape": ours, "numpy": composite}
    if torch is not None:
        import torch.nn.functional as F

        tq = torch.from_numpy(qkv).requires_grad_()
        tg = torch.from_numpy(g)

        def torch_sdpa():
            q, k, v = tq.view(b, t, 3, h, d).unbind(2)
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
            )
            torch.autograd.grad(out.transpose(1, 2).reshape(b, t, h * d), tq, tg)

        impls["torch"] = torch_sdpa
    yield "attention fwd+bwd", f"{b}x{t}x{h}x{d}", "float32", 12.0 * b * h * t * t * d, impls


GROUPS = {"gemm": gemm_cases, "rows": row_cases, "attention": attention_cases}


def worker(threads: int, groups: list[str], rounds: int, block_s: float) -> list[dict]:
    import numpy as np

    import tinytape
    from tinytape import backend

    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    tinytape.set_num_threads(threads)
    results = []
    for group in groups:
        for kernel, shape, dtype, flops, impls in GROUPS[group](np, backend, torch):
            times = rounds_of(impls, rounds, block_s)
            row = {"kernel": kernel, "shape": shape, "dtype": dtype, "threads": threads}
            for lib, ts in times.items():
                med = statistics.median(ts)
                row[lib] = {
                    "median_us": med * 1e6,
                    "min_us": min(ts) * 1e6,
                    "max_us": max(ts) * 1e6,
                }
                if flops:
                    row[lib]["gflops"] = flops / med / 1e9
            refs = [lib for lib in ("numpy", "torch") if lib in times]
            best = min(refs, key=lambda lib: statistics.median(times[lib]))
            per_round = [
                min(times[lib][r] for lib in refs) / times["tinytape"][r] for r in range(rounds)
            ]
            row["best_ref"] = best
            row["x_best"] = row[best]["median_us"] / row["tinytape"]["median_us"]
            row["x_best_range"] = [min(per_round), max(per_round)]
            results.append(row)
    return results


# ------------------------------------------------------------------ report
def _speed(r: dict, lib: str) -> float | None:
    """Speed of tinytape as a multiple of `lib`'s (median times), None if not run."""
    return r[lib]["median_us"] / r["tinytape"]["median_us"] if lib in r else None


def _cell(r: dict, lib: str) -> str:
    if lib not in r:
        return "-"
    t = r[lib]
    f = ".2f" if t["median_us"] < 10 else ".0f"  # a call on a few dozen values: < 1 us
    return f"{t['median_us']:{f}} [{t['min_us']:{f}}-{t['max_us']:{f}}]"


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'kernel':<22}{'shape':<20}{'dtype':<8}{'thr':>3}  {'tinytape us':<24}"
        f"{'numpy us':<24}{'torch us':<24}{'GFLOP/s':>8}  x best (rounds) vs"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        gf = r["tinytape"].get("gflops")
        lo, hi = r["x_best_range"]
        best = f"{r['x_best']:.2f} ({lo:.2f}-{hi:.2f}) {r['best_ref']}"
        print(
            f"{r['kernel']:<22}{r['shape']:<20}{r['dtype']:<8}{r['threads']:>3}  "
            f"{_cell(r, 'tinytape'):<24}{_cell(r, 'numpy'):<24}{_cell(r, 'torch'):<24}"
            f"{(f'{gf:.1f}' if gf else '-'):>8}  {best}"
        )


def check_targets(rows: list[dict]) -> list[dict]:
    """The targets, each with its measured value (median ratio and round-by-round range)
    and whether it is met."""
    out = []

    def target(r, what, value, goal, rng=None):
        out.append(
            {
                "target": f"{r['kernel']} {r['shape']} {r['dtype']} @{r['threads']}t: "
                f"{what} >= {goal}",
                "value": value,
                "goal": goal,
                "range": rng,
                "met": value >= goal,
            }
        )

    for r in rows:
        if r["kernel"] == "gemm" and r["dtype"] == "float32":
            n = int(r["shape"].split("x")[0])
            if n in (128, 256):
                target(
                    r,
                    f"x faster of numpy and torch ({r['best_ref']})",
                    r["x_best"],
                    0.9,
                    r["x_best_range"],
                )
            if n in (512, 1024):
                target(r, "x numpy", _speed(r, "numpy"), 0.8)
        if r["shape"] == "4096x512":
            if r["kernel"] in ("softmax fwd+bwd", "layer_norm fwd+bwd") and "torch" in r:
                target(r, "x torch", _speed(r, "torch"), 1.0)
            if r["kernel"] in ("softmax fwd+bwd", "layer_norm fwd+bwd", "cross_entropy fwd+bwd"):
                target(r, "x numpy composite", _speed(r, "numpy"), 3.0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per case (default 7)")
    parser.add_argument(
        "--block-ms",
        type=float,
        default=20.0,
        help="length of one library's block of calls in a round (default 20)",
    )
    parser.add_argument(
        "--only",
        default=",".join(GROUPS),
        help=f"comma-separated groups of cases, of {', '.join(GROUPS)}",
    )
    parser.add_argument("--json", metavar="PATH", help="write the figures to PATH as JSON")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 5 ms blocks")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    groups = [g for g in args.only.split(",") if g]
    if not groups or any(g not in GROUPS for g in groups):
        parser.error(f"--only takes groups of {', '.join(GROUPS)}, got {args.only!r}")
    if args.quick:
        args.rounds, args.block_ms = 3, 5.0
    if args.rounds < 1 or args.block_ms <= 0:
        parser.error("--rounds must be at least 1 and --block-ms positive")

    if args.worker:
        with open(args.out, "w") as f:
            json.dump(worker(args.worker, groups, args.rounds, args.block_ms / 1e3), f)
        return 0

    try:
        counts = [int(t) for t in args.threads.split(",")]
        if min(counts) < 1:
            raise ValueError
    except ValueError:
        parser.error(
            f"--threads must be positive integers separated by commas, got {args.threads!r}"
        )
    rows = []
    for threads in counts:
        print(f"running at {threads} thread(s)...", file=sys.stderr, flush=True)
        worker_args = ["--only", ",".join(groups), "--rounds", str(args.rounds)]
        worker_args += ["--block-ms", str(args.block_ms)]
        rows.extend(run_worker(__file__, str(threads), threads, worker_args))

    import tinytape

    print(
        f"tinytape {tinytape.__version__}, backend {tinytape.backend.name()}, "
        f"simd {tinytape.config().get('simd')}; {args.rounds} rounds of "
        f"{args.block_ms:g} ms blocks per library, medians [fastest-slowest round]"
    )
    print_table(rows)
    targets = check_targets(rows)
    print("\ntargets:")
    for t in targets:
        rng = f", rounds {t['range'][0]:.2f}-{t['range'][1]:.2f}" if t["range"] else ""
        print(f"  {'met    ' if t['met'] else 'NOT MET'} {t['target']}: {t['value']:.2f}{rng}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "config": {k: str(v) for k, v in tinytape.config().items()},
                    "rounds": args.rounds,
                    "block_ms": args.block_ms,
                    "results": rows,
                    "targets": targets,
                },
                f,
                indent=2,
            )
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
