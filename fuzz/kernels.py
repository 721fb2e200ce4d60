"""Differential fuzzer: the C kernels against float64 numpy references, within stated bounds.

    python fuzz/kernels.py                       # 100,000 calls, seed 0
    python fuzz/kernels.py --calls 1000000 --seed 7
    python fuzz/kernels.py --seed 7 --only 12345  # replay one call, printing it

Each call picks a kernel, a dtype (float32 or float64), a SIMD path of the C build (every
one the CPU has), 1 or 2 threads, a shape whose sizes are drawn from 0, 1, primes, the
edges of the GEMM tiles and row-kernel lanes (4, 6, 8, 14, 16, 32, 64, 128, 256 and their
neighbours) and now and then a large one, a layout (contiguous, a row slice of a wider
array, a transposed view, a step-2 view) and input scales; it runs the C kernel and
compares every output with the numpy reference evaluated in float64 on the same values.
Call i uses the generator seeded with (seed, i), so `--only i` replays it exactly.

Error bounds (u = the dtype's machine epsilon; n = the length of the row or of the dot):
- GEMM: 2 (k + 2) u (|alpha| |op(A)| |op(B)| + |beta| |C|) + u |C_ref| elementwise
  (Higham's dot-product bound with room for blocked summation and FMA).
- softmax: u (16 + 2 R + n / 8) |y| + 2 tiny, R = max |x - max(x)| of the row (exp's error
  grows with its argument; a sum of n terms in 16- or 32-lane blocks adds <= n / 8 u).
- log-softmax: u (16 + 4 |x - max| + 4 |lse - max| + 2 R + n / 8).
- the backwards of both, cross-entropy, layer norm: the same ingredients, each written
  next to its check below, all of the form u * (constant + size terms) * magnitude.
- GELU: u (32 + 4 |z|) |y| + 2 tiny (1 + |x|) forward (z = 2 sqrt(2/pi) (x + 0.044715 x^3),
  exp's argument; exp flushes below the smallest normal number, tiny, to 0), and
  64 u |dy| (1 + |x|) + 2 tiny backward.
- sigmoid: 6 u |y| + 2 tiny (the kernel and the float64 reference each within ~2 u; exp
  flushes below tiny); the sigmoid and tanh backwards: bit-equal to the numpy reference in
  the same dtype (the same operations in the same order).
- attention: the bound of tests/test_attention_kernel.py: 2 (d + t + 2) u (1 + a^2
  sqrt(d)), times 2 (1 + a) for the gradient, for inputs in [-a, a].
- Adam and SGD: bit-equal to the numpy reference in the same dtype (the kernels do the
  same operations in the same order, see tinytape/backend/adam.py and sgd.py).
- ReLU (forward, mask, backward): bit-equal to the numpy reference (no rounding at all).
A mismatch prints the call, the element, both values and the bound, and the exit status
is 1. Non-finite values are the subject of tests/test_nonfinite.py, not of this fuzzer.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable

import numpy as np

import tinytape
from tinytape import backend
from tinytape.backend import _state

PRIMES = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 61, 97, 127]
EDGES = [4, 6, 8, 14, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257]
LARGE = [300, 384, 509, 512, 513, 777, 1000, 1031]


class Mismatch(Exception):
    pass


def dim(rng: np.random.Generator, cap: int = 300, large: float = 0.01) -> int:
    """A size: 0 and 1 often, then primes and tile edges, rarely a large one."""
    r = rng.random()
    if r < 0.08:
        return 0
    if r < 0.22:
        return 1
    if r < 1.0 - large:
        pool = PRIMES if rng.random() < 0.5 else EDGES
        return int(rng.choice([p for p in pool if p <= cap] or [1]))
    return int(rng.choice(LARGE))


def layout(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """x itself or the same values in another layout (the kernels must give the same)."""
    r = rng.random()
    if x.ndim < 2 or r < 0.55:
        return x
    if r < 0.7:  # rows of a wider array: a row stride larger than the row
        wide = np.empty(x.shape[:-1] + (x.shape[-1] + int(rng.integers(1, 9)),), x.dtype)
        wide[..., : x.shape[-1]] = x
        return wide[..., : x.shape[-1]]
    if r < 0.85:  # a transposed view of a copy of x.T
        return np.ascontiguousarray(np.swapaxes(x, -1, -2)).swapaxes(-1, -2)
    big = np.empty(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)  # a step-2 view
    big[..., ::2] = x
    return big[..., ::2]


def check(name: str, got, want64, bound) -> None:
    got64 = np.asarray(got, dtype=np.float64)
    want64 = np.asarray(want64, dtype=np.float64)
    if got64.shape != want64.shape:
        raise Mismatch(f"{name}: shape {got64.shape}, expected {want64.shape}")
    same = (got64 == want64) | (np.isnan(got64) & np.isnan(want64))  # equal infs, NaNs
    err = np.where(same, 0.0, np.abs(got64 - want64))
    bad = ~(err <= np.broadcast_to(bound, err.shape))  # a NaN error or bound is a mismatch
    if bad.any():
        i = tuple(int(j) for j in np.argwhere(bad)[0])
        b = np.broadcast_to(bound, err.shape)[i]
        raise Mismatch(
            f"{name}: element {i} = {got64[i]!r}, expected {want64[i]!r} (error "
            f"{err[i]:.3e} > bound {b:.3e}; {int(bad.sum())} elements out)"
        )


def ref(fn: Callable, *arrays, **kw):
    """fn on the numpy backend, in float64."""
    with backend.use("numpy"):
        return fn(
            *[
                a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
                for a in arrays
            ],
            **kw,
        )


def rows_input(rng, dtype, cap_cols=600):
    rows = dim(rng, 64)
    cols = max(1, dim(rng, cap_cols))
    lead = (rows,) if rng.random() < 0.7 else (max(1, rows // 4), min(rows, 4))
    scale = float(rng.choice([0.1, 1.0, 3.0, 30.0]))
    x = (scale * rng.standard_normal(lead + (cols,))).astype(dtype)
    return x, cols, f"{lead + (cols,)} scale {scale}"


# ------------------------------------------------------------------------- kernels


def fuzz_gemm(rng, dtype, u):
    m, n, k = dim(rng), dim(rng), dim(rng)
    if m * n * k > 3e6:  # a large dim, but a call in a few ms
        k = max(1, int(3e6 // max(m * n, 1)))
    ta, tb = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    alpha = float(rng.choice([1.0, 1.0, -0.5, 2.0, 0.0]))
    beta = float(rng.choice([0.0, 0.0, 1.0, 0.5]))
    a = layout(rng, rng.standard_normal((k, m) if ta else (m, k)).astype(dtype))
    b = layout(rng, rng.standard_normal((n, k) if tb else (k, n)).astype(dtype))
    c0 = rng.standard_normal((m, n)).astype(dtype)
    c = layout(rng, c0.copy())
    got = backend.gemm(a, b, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, c=c)
    oa = (a.T if ta else a).astype(np.float64)
    ob = (b.T if tb else b).astype(np.float64)
    want = alpha * (oa @ ob) + beta * c0.astype(np.float64) if alpha else beta * c0
    mag = abs(alpha) * (np.abs(oa) @ np.abs(ob)) + abs(beta) * np.abs(c0.astype(np.float64))
    check("gemm", got, want, 2 * (k + 2) * u * mag + u * np.abs(want))
    return f"({m}, {n}, {k}) trans {ta},{tb} alpha {alpha} beta {beta}"


def fuzz_gemm_batched(rng, dtype, u):
    m, n, k = dim(rng, 70), dim(rng, 70), dim(rng, 70)
    batch = [int(rng.integers(1, 4)) for _ in range(int(rng.integers(1, 3)))]
    if m * n * k > 3e5:
        k = max(1, int(3e5 // max(m * n, 1)))
    ba = [1 if rng.random() < 0.2 else s for s in batch]  # broadcast batch dims
    ta, tb = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    a = rng.standard_normal(tuple(ba) + ((k, m) if ta else (m, k))).astype(dtype)
    b = rng.standard_normal(tuple(batch) + ((n, k) if tb else (k, n))).astype(dtype)
    got = backend.gemm_batched(a, b, trans_a=ta, trans_b=tb)
    oa = np.swapaxes(a, -1, -2) if ta else a
    ob = np.swapaxes(b, -1, -2) if tb else b
    want = oa.astype(np.float64) @ ob.astype(np.float64)
    mag = np.abs(oa.astype(np.float64)) @ np.abs(ob.astype(np.float64))
    check("gemm_batched", got, want, 2 * (k + 2) * u * mag + u * np.abs(want))
    return f"a {a.shape} b {b.shape} trans {ta},{tb}"


def _row_stats(x64):
    m = x64.max(axis=-1, keepdims=True)
    return m, np.abs(x64 - m).max(axis=-1, keepdims=True)


def fuzz_softmax(rng, dtype, u):
    x, n, desc = rows_input(rng, dtype)
    x = layout(rng, x)
    tiny = float(np.finfo(dtype).tiny)
    y = backend.softmax(x)
    x64 = x.astype(np.float64)
    want = ref(backend.softmax, x)
    _, r = _row_stats(x64)
    check("softmax", y, want, u * (16 + 2 * r + n / 8) * np.abs(want) + 2 * tiny)
    dy = layout(rng, rng.standard_normal(x.shape).astype(dtype))
    y64, dy64 = y.astype(np.float64), dy.astype(np.float64)
    dx = backend.softmax_backward(y, dy)
    wdx = ref(backend.softmax_backward, y, dy)
    # dx = y (dy - dot): dot of n terms, then two roundings, relative to |y| (|dy| + S)
    s = (np.abs(dy64) * y64).sum(-1, keepdims=True)
    check("softmax_backward", dx, wdx, u * (4 + n / 8) * y64 * (np.abs(dy64) + s) + 2 * tiny)
    return desc


def fuzz_log_softmax(rng, dtype, u):
    x, n, desc = rows_input(rng, dtype)
    x = layout(rng, x)
    y = backend.log_softmax(x)
    x64 = x.astype(np.float64)
    want = ref(backend.log_softmax, x)
    m, r = _row_stats(x64)
    lse_off = np.abs(want - (x64 - m))  # |log sum exp(x - max)|, per row
    check("log_softmax", y, want, u * (16 + 4 * np.abs(x64 - m) + 4 * lse_off + 2 * r + n / 8))
    dy = rng.standard_normal(x.shape).astype(dtype)
    y64, dy64 = y.astype(np.float64), dy.astype(np.float64)
    dx = backend.log_softmax_backward(y, dy)
    wdx = ref(backend.log_softmax_backward, y, dy)
    # dx = dy - exp(y) sum(dy): exp's error grows with |y|, the sum's with n
    s = np.abs(dy64).sum(-1, keepdims=True)
    check(
        "log_softmax_backward",
        dx,
        wdx,
        u * (2 * np.abs(dy64) + np.exp(y64) * (8 + 2 * np.abs(y64) + n / 8) * s),
    )
    return desc


def fuzz_cross_entropy(rng, dtype, u):
    x, n, desc = rows_input(rng, dtype)
    t = rng.integers(0, n, x.shape[:-1])
    t[rng.random(t.shape) < 0.2] = -100
    loss, lse = backend.cross_entropy(x, t)
    x64 = x.astype(np.float64)
    wloss, wlse = ref(backend.cross_entropy, x, t)
    m, r = _row_stats(x64)
    m, r = m[..., 0], r[..., 0]
    # lse = max + log(sum): the sum's error (n / 8 + 16 + 2 R) u relative, plus the rounding
    # of the result to the dtype (u |lse|); the loss sums rows in double: their mean bound
    row = u * (16 + 2 * r + n / 8) + u * np.abs(wlse)
    check("cross_entropy lse", lse, wlse, row)
    keep = t != -100
    # the mean of the kept rows' losses: each row's bound, plus the sum of K non-negative
    # row losses in double, (K - 1) u times their sum (Higham's bound for recursive
    # summation), over K: (K - 1) u |loss|
    summed = max(int(keep.sum()) - 1, 0) * u * np.abs(wloss)
    check(
        "cross_entropy loss",
        loss,
        wloss,
        u * (1 + np.abs(wloss)) + (row[keep].mean() if keep.any() else 0.0) + summed,
    )
    d = backend.cross_entropy_backward(x, t, lse, 1.0)
    wd = ref(backend.cross_entropy_backward, x, t, lse, 1.0)
    scale = 1.0 / max(int(keep.sum()), 1)
    p = np.exp(x64 - wlse[..., None])
    # p = exp(x - lse): the saved lse is rounded to the dtype, an absolute error of
    # u |lse| in the exponent; the target's p - 1 rounds once more
    check(
        "cross_entropy_backward",
        d,
        wd,
        scale * u * (p * (8 + 2 * np.abs(x64) + 2 * np.abs(wlse[..., None])) + 2),
    )
    return desc


def fuzz_layer_norm(rng, dtype, u):
    x, n, desc = rows_input(rng, dtype)
    x = x + dtype(rng.choice([0.0, 1.0, -5.0]) * float(np.abs(x).max(initial=1.0)))
    gamma = rng.standard_normal(n).astype(dtype)
    beta = rng.standard_normal(n).astype(dtype)
    y, mean, rstd = backend.layer_norm(x, gamma, beta, 1e-5)
    wy, wmean, wrstd = ref(backend.layer_norm, x, gamma, beta, 1e-5)
    x64, g64, b64 = x.astype(np.float64), gamma.astype(np.float64), beta.astype(np.float64)
    xhat = np.abs((x64 - wmean[..., None]) * wrstd[..., None])
    # the statistics carry (16 + n / 4) u relative error (two passes of n-term sums), and
    # x - mean loses u |mean| / std relative to std when the row sits at an offset; y is
    # xhat gamma + beta, three roundings
    offset = 4 * np.abs(wmean[..., None]) * wrstd[..., None]
    check(
        "layer_norm",
        y,
        wy,
        u * ((16 + n / 4 + offset) * (xhat + 1) * np.abs(g64) + 2 * np.abs(b64)),
    )
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx, dg, db = backend.layer_norm_backward(dy, x, gamma, mean, rstd)
    wdx, wdg, wdb = ref(backend.layer_norm_backward, dy, x, gamma, mean, rstd)
    dy64 = np.abs(dy.astype(np.float64))
    rs = rstd.astype(np.float64)[..., None]
    xh = np.abs((x64 - mean.astype(np.float64)[..., None]) * rs)
    g = dy64 * np.abs(g64)
    rows = int(np.prod(x.shape[:-1]))
    # dx = rstd (g - mean(g) - xhat mean(g xhat)): sums over the row, then a few roundings
    mag = rs * (g + g.mean(-1, keepdims=True) + xh * (g * xh).mean(-1, keepdims=True))
    check("layer_norm dx", dx, wdx, u * (16 + n / 4) * (1 + xh) * mag)
    axes = tuple(range(x.ndim - 1))
    # dgamma, dbeta: sums over the rows in blocks, then in double
    check("layer_norm dgamma", dg, wdg, u * (16 + rows / 4) * (dy64 * (1 + xh)).sum(axes))
    check("layer_norm dbeta", db, wdb, u * (16 + rows / 4) * dy64.sum(axes))
    return desc


def fuzz_gelu(rng, dtype, u):
    x, _, desc = rows_input(rng, dtype)
    x = layout(rng, x)
    tiny = float(np.finfo(dtype).tiny)
    y = backend.gelu(x)
    want = ref(backend.gelu, x)
    # y = x sigmoid(z), z = x (c2 + c3 x^2) rounded in the dtype: an absolute error of a few
    # u |z| in exp's argument, i.e. a relative error of a few u |z| (large for x << 0)
    x64 = x.astype(np.float64)
    z = np.abs(x64 * (1.5957691216057308 + 0.0713548162726 * x64 * x64))
    # (large for x << 0); and exp flushes results below the smallest normal number to 0
    # (tt_math.h), an absolute error of up to |x| tiny
    check(
        "gelu",
        y,
        want,
        u * (32 + 4 * np.minimum(z, 1e4)) * np.abs(want) + 2 * tiny * (1 + np.abs(x64)),
    )
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx = backend.gelu_backward(x, dy)
    wdx = ref(backend.gelu_backward, x, dy)
    check(
        "gelu_backward",
        dx,
        wdx,
        64 * u * np.abs(dy.astype(np.float64)) * (1 + np.abs(x.astype(np.float64))) + 2 * tiny,
    )
    return desc


def fuzz_sigmoid_tanh(rng, dtype, u):
    x, _, desc = rows_input(rng, dtype)
    x = layout(rng, x)
    tiny = float(np.finfo(dtype).tiny)
    y = backend.sigmoid(x)
    # the kernel and the float64 reference each within about 2 u of the exact value, and
    # exp flushes results below the smallest normal number to 0 (tt_math.h)
    want = ref(backend.sigmoid, x)
    check("sigmoid", y, want, 6 * u * np.abs(want) + 2 * tiny)
    # the backwards: bit-equal to the numpy reference in the same dtype (the same
    # operations in the same order, no fused multiply-add)
    dy = layout(rng, rng.standard_normal(x.shape).astype(dtype))
    t = np.tanh(x)
    for name, fn, saved in (
        ("sigmoid_backward", backend.sigmoid_backward, y),
        ("tanh_backward", backend.tanh_backward, t),
    ):
        got = fn(saved, dy)
        with backend.use("numpy"):
            want = fn(saved, dy)
        if got.tobytes() != want.tobytes() or got.shape != want.shape:
            i = int(np.flatnonzero(got.ravel() != want.ravel())[0])
            raise Mismatch(
                f"{name}: element {i} = {got.ravel()[i]!r}, numpy reference "
                f"{want.ravel()[i]!r} (must be bit-equal)"
            )
    return desc


def fuzz_attention(rng, dtype, u):
    b, t = int(rng.integers(0, 4)), max(1, dim(rng, 70, 0.0))
    h, d = int(rng.integers(1, 5)), max(1, dim(rng, 40, 0.0))
    causal = bool(rng.random() < 0.5)
    a = float(rng.choice([0.5, 1.0, 2.0]))
    qkv = rng.uniform(-a, a, (b, t, 3 * h * d)).astype(dtype)
    keep = ((rng.random((b, h, t, t)) >= 0.25) / 0.75).astype(dtype) if rng.random() < 0.3 else None
    g_out = rng.uniform(-1, 1, (b, t, h * d)).astype(dtype)
    out, w = backend.attention(qkv, h, causal, keep)
    wout, ww = ref(backend.attention, qkv, h, causal, keep)
    bound = 2 * (d + t + 2) * u * (1 + a * a * math.sqrt(d))
    scale = 1.0 if keep is None else 1 / 0.75
    check("attention out", out, wout, bound * scale)
    check("attention weights", w, ww, bound)
    grad = backend.attention_backward(qkv, h, keep, w, g_out, causal)
    wgrad = ref(backend.attention_backward, qkv, h, keep, w, g_out, causal)
    check("attention_backward", grad, wgrad, bound * 2 * (1 + a) * scale)
    return f"B {b} T {t} H {h} d {d} causal {causal} dropout {keep is not None} a {a}"


def fuzz_adam(rng, dtype, u):
    n = dim(rng, 5000, 0.05) * int(rng.choice([1, 1, 7]))
    amsgrad = bool(rng.random() < 0.3)
    arrays = [rng.standard_normal(n).astype(dtype) for _ in range(4)]
    arrays[3] = np.abs(arrays[3]) * dtype(0.01)
    vmax = np.abs(rng.standard_normal(n)).astype(dtype) * dtype(0.01) if amsgrad else None
    hp = dict(
        lr=float(rng.choice([1e-3, 3e-4, 0.1])),
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        weight_decay=float(rng.choice([0.0, 0.01, 0.1])),
        decoupled=bool(rng.random() < 0.5),
        maximize=bool(rng.random() < 0.2),
        step=int(rng.integers(1, 1000)),
    )
    mine = [a.copy() for a in arrays] + [None if vmax is None else vmax.copy()]
    theirs = [a.copy() for a in arrays] + [None if vmax is None else vmax.copy()]
    p, g, m, v, vm = mine
    backend.adam_step(p, g, m, v, vm, **hp)
    with backend.use("numpy"):
        p2, g2, m2, v2, vm2 = theirs
        backend.adam_step(p2, g2, m2, v2, vm2, **hp)
    for name, x, y in (
        ("param", p, p2),
        ("exp_avg", m, m2),
        ("exp_avg_sq", v, v2),
        ("max_exp_avg_sq", vm, vm2),
    ):
        if x is not None and x.tobytes() != y.tobytes():
            i = int(np.flatnonzero(x != y)[0])
            raise Mismatch(
                f"adam {name}: element {i} = {x[i]!r}, numpy reference {y[i]!r} (must be bit-equal)"
            )
    return f"n {n} amsgrad {amsgrad} {hp}"


def fuzz_relu(rng, dtype, u):
    x, _, desc = rows_input(rng, dtype)
    x = layout(rng, x)
    x[rng.random(x.shape) < 0.05] = 0.0  # zeros of both signs: the mask's edge
    x[rng.random(x.shape) < 0.02] = -0.0
    dy = layout(rng, rng.standard_normal(x.shape).astype(dtype))
    y, mask = backend.relu_with_mask(x)
    dx = backend.relu_backward(mask, dy)
    with backend.use("numpy"):
        want_y, want_mask = backend.relu_with_mask(x)
        want_dx = backend.relu_backward(want_mask, dy)
    for name, got, want in (
        ("relu", y, want_y),
        ("relu mask", mask, want_mask),
        ("relu_backward", dx, want_dx),
    ):
        if got.shape != want.shape or got.tobytes() != want.tobytes():
            i = (
                int(
                    np.flatnonzero(
                        got.reshape(-1).view(np.uint8) != want.reshape(-1).view(np.uint8)
                    )[0]
                )
                // got.itemsize
                if got.size
                else 0
            )
            raise Mismatch(
                f"{name}: element {i} = {got.reshape(-1)[i]!r}, numpy reference "
                f"{want.reshape(-1)[i]!r} (must be bit-equal)"
            )
    return desc


def fuzz_sgd(rng, dtype, u):
    n = dim(rng, 5000, 0.05) * int(rng.choice([1, 1, 7]))
    momentum = float(rng.choice([0.0, 0.5, 0.9]))
    nesterov = bool(momentum != 0 and rng.random() < 0.4)
    hp = dict(
        lr=float(rng.choice([1e-3, 0.01, 0.1, 0.3])),
        momentum=momentum,
        dampening=0.0 if nesterov else float(rng.choice([0.0, 0.1, 0.5])),
        weight_decay=float(rng.choice([0.0, 0.01, 0.1])),
        nesterov=nesterov,
        maximize=bool(rng.random() < 0.2),
    )
    p0, g = (rng.standard_normal(n).astype(dtype) for _ in range(2))
    buf0 = rng.standard_normal(n).astype(dtype) if rng.random() < 0.5 else None  # first step
    p, buf = p0.copy(), None if buf0 is None else buf0.copy()
    buf = backend.sgd_step(p, g, buf, **hp)
    with backend.use("numpy"):
        p2, buf2 = p0.copy(), None if buf0 is None else buf0.copy()
        buf2 = backend.sgd_step(p2, g, buf2, **hp)
    for name, x, y in (("param", p, p2), ("momentum_buffer", buf, buf2)):
        if (x is None) != (y is None):
            raise Mismatch(f"sgd {name}: {x is None=} but the numpy reference's {y is None=}")
        if x is not None and x.tobytes() != y.tobytes():
            i = int(np.flatnonzero(x != y)[0])
            raise Mismatch(
                f"sgd {name}: element {i} = {x[i]!r}, numpy reference {y[i]!r} (must be bit-equal)"
            )
    return f"n {n} first step {buf0 is None} {hp}"


KERNELS: dict[str, tuple[Callable, float]] = {  # name: (function, relative frequency)
    "gemm": (fuzz_gemm, 3.0),
    "gemm_batched": (fuzz_gemm_batched, 1.5),
    "softmax": (fuzz_softmax, 1.0),
    "log_softmax": (fuzz_log_softmax, 1.0),
    "cross_entropy": (fuzz_cross_entropy, 1.0),
    "layer_norm": (fuzz_layer_norm, 1.0),
    "gelu": (fuzz_gelu, 1.0),
    "sigmoid_tanh": (fuzz_sigmoid_tanh, 1.0),
    "attention": (fuzz_attention, 1.0),
    "adam": (fuzz_adam, 1.0),
    "relu": (fuzz_relu, 0.5),
    "sgd": (fuzz_sgd, 0.5),
}


def one_call(seed: int, i: int, simd_levels: list[int]) -> tuple[str, str]:
    """Run call i; returns (kernel, description). Raises Mismatch."""
    rng = np.random.default_rng([seed, i])
    names = list(KERNELS)
    weights = np.array([KERNELS[k][1] for k in names])
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    dtype = np.float32 if rng.random() < 0.5 else np.float64
    level = int(rng.choice(simd_levels))
    threads = int(rng.choice([1, 2]))
    _state._C.set_simd_level(level)
    tinytape.set_num_threads(threads)
    where = f"{name} {np.dtype(dtype)} simd {_state._C.simd_name(level)} threads {threads}"
    try:
        desc = KERNELS[name][0](rng, dtype, float(np.finfo(dtype).eps))
    except Mismatch as e:
        raise Mismatch(f"call {i} ({where}): {e}") from None
    return name, f"{where}: {desc}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100_000, help="kernel calls (default 1e5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", type=int, default=None, help="replay this one call, verbosely")
    ap.add_argument("--max-report", type=int, default=10, help="mismatches printed in full")
    args = ap.parse_args(argv)
    if backend.name() != "c":
        print("fuzz: the C extension is not built: nothing to compare", file=sys.stderr)
        return 2
    levels = list(range(_state._C.simd_detected() + 1))
    saved = (_state._C.simd_level(), tinytape.get_num_threads())
    calls = [args.only] if args.only is not None else range(args.calls)
    counts: dict[str, int] = dict.fromkeys(KERNELS, 0)
    mismatches = 0
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        with np.errstate(all="ignore"):  # the references see underflow; checked by bound
            for i in calls:
                try:
                    name, desc = one_call(args.seed, i, levels)
                    counts[name] += 1
                    if args.only is not None:
                        print(f"call {i}: {desc}: ok")
                except Mismatch as e:
                    mismatches += 1
                    if mismatches <= args.max_report:
                        print(
                            f"MISMATCH {e}\n  replay: python fuzz/kernels.py --seed "
                            f"{args.seed} --only {i}",
                            flush=True,
                        )
                done = i + 1
                if args.only is None and done % 20_000 == 0 and done < args.calls:
                    print(
                        f"fuzz: {done} calls, {mismatches} mismatches, "
                        f"{time.perf_counter() - t0:.0f} s",
                        flush=True,
                    )
    finally:
        _state._C.set_simd_level(saved[0])
        tinytape.set_num_threads(saved[1])
    total = sum(counts.values()) + mismatches
    print(
        f"fuzz: seed {args.seed}, simd paths {[_state._C.simd_name(lv) for lv in levels]}, "
        f"threads 1 and 2: {total} calls, {mismatches} mismatches, "
        f"{time.perf_counter() - t0:.1f} s wall, {time.process_time() - cpu0:.1f} s CPU"
    )
    print("  calls per kernel: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
