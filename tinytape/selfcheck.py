"""Kernel self-check: every C kernel against its numpy reference on random inputs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import backend

# Tolerances: float64 kernels agree with the references to rounding (~1e-15 relative);
# float32 GEMM accumulates k products with eps 6e-8 each; the row kernels use a
# polynomial exp accurate to a few ulp, so 1e-5 relative is ample for both.
TOLERANCE = {np.float32: 2e-4, np.float64: 1e-10}


def _cases(rng: np.random.Generator, dtype) -> dict[str, Callable[[], list[np.ndarray]]]:
    def rand(*shape):
        return rng.standard_normal(shape).astype(dtype)

    a, b, c = rand(67, 129), rand(129, 45), rand(67, 45)
    batch_a, batch_b = rand(5, 9, 17), rand(1, 17, 33)
    x, dy = rand(37, 101), rand(37, 101)
    t = rng.integers(0, 101, 37)
    g, bt = rand(101), rand(101)
    be = backend

    def ce():
        loss, lse = be.cross_entropy(x, t)
        return [loss, lse, be.cross_entropy_backward(x, t, lse, 0.5)]

    def ln():
        y, mean, rstd = be.layer_norm(x, g, bt)
        return [y, mean, rstd, *be.layer_norm_backward(dy, x, g, mean, rstd)]

    def adam():
        p, m, v = x.copy(), 0.1 * dy, np.abs(0.01 * dy)
        for step in (1, 2):
            be.adam_step(
                p,
                dy,
                m,
                v,
                lr=1e-2,
                beta1=0.9,
                beta2=0.999,
                eps=1e-8,
                weight_decay=0.1,
                decoupled=True,
                step=step,
            )
        return [p, m, v]

    def relu():
        y, mask = be.relu_with_mask(x)
        return [y, mask.astype(dtype), be.relu_backward(mask, dy)]

    def sgd():
        p, buf = x.copy(), None
        for _ in range(2):  # the first step creates the momentum buffer
            buf = be.sgd_step(p, dy, buf, lr=1e-2, momentum=0.9, weight_decay=0.1, nesterov=True)
        return [p, buf]

    qkv, g_att = rand(3, 19, 3 * 2 * 7), rand(3, 19, 14)
    keep = ((rng.random((3, 2, 19, 19)) > 0.1) / 0.9).astype(dtype)

    def attention():
        out, w = be.attention(qkv, 2, True, keep)
        return [out, w, be.attention_backward(qkv, 2, keep, w, g_att, True)]

    return {
        "gemm": lambda: [be.gemm(a, b, alpha=0.5, beta=2.0, c=c.copy())],
        "gemm (transposed)": lambda: [be.gemm(b, a, trans_a=True, trans_b=True)],
        "gemm_batched": lambda: [be.gemm_batched(batch_a, batch_b)],
        "softmax": lambda: [y := be.softmax(x), be.softmax_backward(y, dy)],
        "log_softmax": lambda: [y := be.log_softmax(x), be.log_softmax_backward(y, dy)],
        "cross_entropy": ce,
        "layer_norm": ln,
        "gelu": lambda: [be.gelu(x), be.gelu_backward(x, dy)],
        "sigmoid, tanh backward": lambda: [
            y := be.sigmoid(x),
            be.sigmoid_backward(y, dy),
            be.tanh_backward(np.tanh(x), dy),
        ],
        "adam_step": adam,
        "relu": relu,
        "sgd_step": sgd,
        "attention": attention,
        # both operand forms of the binary kernels: one shape, and a single value
        "add, sub, mul, div": lambda: [
            be.add(x, dy),
            be.sub(x[:1, :1], dy),
            be.mul(x, dy[0, 0].reshape(())),
            be.div(x, np.abs(dy) + 1),
        ],
    }


def run(seed: int = 0, verbose: bool = True) -> bool:
    """Compare the C kernels with the numpy references; True when all agree."""
    if "c" not in backend.available():
        if verbose:
            print("self-check: the C extension is not built; nothing to compare")
        return False
    ok = True
    for dtype in (np.float32, np.float64):
        cases = _cases(np.random.default_rng(seed), dtype)
        for name, fn in cases.items():
            with backend.use("c"):
                got = fn()
            with backend.use("numpy"):
                want = fn()
            err = max(
                float(np.max(np.abs(g - w) / (1.0 + np.abs(w)), initial=0.0))
                for g, w in zip(got, want)
            )
            passed = err <= TOLERANCE[dtype]
            ok &= passed
            if verbose:
                status = "ok" if passed else "FAIL"
                label = f"{name} {np.dtype(dtype).name}"
                print(f"  {label:<28} max rel err {err:.1e}  {status}")
    return ok
