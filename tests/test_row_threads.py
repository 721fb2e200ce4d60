"""Row kernels split over two threads (csrc/rowops.c): rows cut into chunks that the
threads claim in turn. Rows are independent, so every output must be bit for bit the one
of a single thread, whatever the chunk boundaries; the cross-entropy loss, summed chunk by
chunk, must match the float64 reference.

Each shape holds over a million values, above the size from which the kernels split
(TT_MT_MIN_WORK in csrc/dispatch.c), with few rows (fewer than the chunks, or as many as
the threads), primes, and many rows of an odd width; some rows hold infinities and NaNs.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import kernel_threads
from tolerances import assert_rows_close

from tinytape import backend

SHAPES = [(2, 600_001), (3, 400_003), (13, 80_021), (4099, 257)]


def _inputs(shape, dtype, seed=7):
    rng = np.random.default_rng(seed)
    x = (4 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    # extremes in a few rows: a row of +inf and -inf, a NaN, a huge and a tiny value
    x[0, 5] = np.inf
    x[0, 9] = -np.inf
    x[-1, 1] = np.nan
    x[shape[0] // 2, 2] = dtype(3e38) if dtype == np.float32 else 1e300
    x[shape[0] // 2, 3] = dtype(-1e-30)
    return x, dy


def _run(x, dy):
    """Every row kernel's outputs (forward and backward) on x, dy."""
    targets = (np.arange(x.shape[0]) * 7919) % x.shape[1]
    y = backend.softmax(x)
    ly = backend.log_softmax(x)
    loss, lse = backend.cross_entropy(x, targets)
    ln, mean, rstd = backend.layer_norm(x)
    relu, relu_mask = backend.relu_with_mask(x)
    return {
        "softmax": y,
        "softmax_backward": backend.softmax_backward(y, dy),
        "log_softmax": ly,
        "log_softmax_backward": backend.log_softmax_backward(ly, dy),
        "cross_entropy lse": lse,
        "cross_entropy_backward": backend.cross_entropy_backward(x, targets, lse),
        "layer_norm": ln,
        "layer_norm mean": mean,
        "layer_norm rstd": rstd,
        "gelu": backend.gelu(x),
        "gelu_backward": backend.gelu_backward(x, dy),
        "sigmoid": backend.sigmoid(x),
        "sigmoid_backward": backend.sigmoid_backward(y, dy),
        "tanh_backward": backend.tanh_backward(y, dy),
        "relu": relu,
        "relu mask": relu_mask.astype(x.dtype),
        "relu_backward": backend.relu_backward(relu_mask, dy),
        "loss": np.asarray(loss),
    }


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_threads_match_one_bit_for_bit(simd, shape, dtype):
    x, dy = _inputs(shape, dtype)
    with np.errstate(all="ignore"):
        with kernel_threads(1):
            one = _run(x, dy)
        with kernel_threads(2):
            two = _run(x, dy)
    for name, want in one.items():
        got = two[name]
        if name == "loss":  # summed chunk by chunk: the order of the sum differs
            continue
        bits = np.uint32 if dtype == np.float32 else np.uint64
        same = got.view(bits) == want.view(bits)
        assert same.all(), f"{name} {shape}: {np.count_nonzero(~same)} values differ"


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_two_thread_loss_matches_reference(simd, shape):
    x, _ = _inputs(shape, np.float64, seed=11)
    x[np.isnan(x) | np.isinf(x)] = 0.0  # a finite loss
    x[np.abs(x) > 1e10] = 50.0
    targets = (np.arange(x.shape[0]) * 104_729) % x.shape[1]
    with kernel_threads(2):
        loss, lse = backend.cross_entropy(x, targets)
    m = x.max(axis=1, keepdims=True)
    want_lse = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))
    want = (want_lse - x[np.arange(x.shape[0]), targets]).mean()
    assert_rows_close(lse[None], want_lse[None], np.float64)
    assert abs(float(loss) - want) <= 1e-12 * max(1.0, abs(want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_two_threads_match_one(simd, dtype):
    rng = np.random.default_rng(3)
    n = 1_000_003  # prime, over the split size
    p0, g = (rng.standard_normal(n).astype(dtype) for _ in range(2))
    g[17] = np.inf
    out = []
    for threads in (1, 2):
        p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        with kernel_threads(threads), np.errstate(all="ignore"):
            backend.adam_step(
                p,
                g,
                m,
                v,
                lr=1e-2,
                beta1=0.9,
                beta2=0.999,
                eps=1e-8,
                weight_decay=0.1,
                decoupled=True,
                maximize=False,
                step=3,
            )
        out.append((p, m, v))
    for a, b in zip(*out):
        assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_two_threads_match_one(simd, dtype):
    rng = np.random.default_rng(4)
    n = 1_000_003  # prime, over the split size
    p0, g, buf0 = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    g[17] = np.inf
    g[500_001] = np.nan
    out = []
    for threads in (1, 2):
        p, buf = p0.copy(), buf0.copy()
        with kernel_threads(threads), np.errstate(all="ignore"):
            backend.sgd_step(
                p, g, buf, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True, maximize=True
            )
            first = backend.sgd_step(p.copy(), g, None, lr=0.1, momentum=0.9, dampening=0.5)
        out.append((p, buf, first))
    for a, b in zip(*out):
        assert np.array_equal(a, b, equal_nan=True)
