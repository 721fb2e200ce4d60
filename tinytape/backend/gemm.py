"""GEMM: C = alpha * op(A) @ op(B) + beta * C, single and batched.

The C kernel reads row-major matrices with any row stride and handles
transposes while packing, so transposed views (``a.T``) and row slices are
passed without copies; other layouts are copied to contiguous first.
"""

from __future__ import annotations

import numpy as np

from . import _state
from ._checks import as_float_array, not_self_overlapping, same_dtype

OP = "gemm"


def _shape_after_op(x: np.ndarray, trans: bool) -> tuple[int, int]:
    return (x.shape[-1], x.shape[-2]) if trans else (x.shape[-2], x.shape[-1])


def _row_major(x: np.ndarray) -> bool:
    """True when the last two axes of x are rows with unit stride and a usable row stride."""
    item = x.itemsize
    rows, cols = x.shape[-2], x.shape[-1]
    s_row, s_col = x.strides[-2], x.strides[-1]
    if cols > 1 and s_col != item:
        return False
    return rows <= 1 or (s_row % item == 0 and s_row >= max(cols, 1) * item)


def _batch_strides_ok(x: np.ndarray) -> bool:
    if x.ndim <= 2:
        return True
    return all(
        size <= 1 or (step >= 0 and step % x.itemsize == 0)
        for size, step in zip(x.shape[:-2], x.strides[:-2])
    )


def _layout(x: np.ndarray, trans: bool) -> tuple[np.ndarray, bool]:
    """(array the kernel can read, transpose flag) describing the same matrix op(x)."""
    if not _batch_strides_ok(x):
        x = np.ascontiguousarray(x)
    if _row_major(x):
        return x, trans
    flipped = np.swapaxes(x, -1, -2)
    if _row_major(flipped):
        return flipped, not trans
    return np.ascontiguousarray(x), trans


def _check(a, b, c, trans_a: bool, trans_b: bool, batched: bool):
    op = "gemm_batched" if batched else OP
    # The common case (two float ndarrays of one dtype) costs a few comparisons; the
    # shared checks run, and raise, only when one of them fails.
    a = as_float_array(op, "a", a)
    b = as_float_array(op, "b", b)
    ndims = (3, 4) if batched else (2,)
    if a.ndim not in ndims or b.ndim not in ndims:
        want = "3-D or 4-D (one or two batch dims)" if batched else "2-D"
        name, x = ("a", a) if a.ndim not in ndims else ("b", b)
        raise ValueError(f"{op}: {name} must be {want}, got shape {x.shape}")
    if a.dtype is not b.dtype and a.dtype != b.dtype:
        same_dtype(op, a=a, b=b)
    m, k = _shape_after_op(a, trans_a)
    k2, n = _shape_after_op(b, trans_b)
    if k != k2:
        raise ValueError(
            f"{op}: inner dimensions differ: op(a) is {m} x {k} (a {a.shape}, trans_a={trans_a})"
            f" and op(b) is {k2} x {n} (b {b.shape}, trans_b={trans_b})"
        )
    shape: tuple[int, ...] = (m, n)
    if batched:
        try:
            shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + shape
        except ValueError:
            raise ValueError(f"{op}: batch dims differ: a {a.shape} and b {b.shape}") from None
    if c is not None:
        if not isinstance(c, np.ndarray):
            raise TypeError(f"{op}: c must be a numpy array, got {type(c).__name__}")
        if c.shape != shape:
            raise ValueError(f"{op}: c has shape {c.shape}, expected {shape}")
        same_dtype(op, a=a, b=b, c=c)
        if not c.flags.writeable:
            raise ValueError(f"{op}: c is read-only")
        not_self_overlapping(op, "c", c)
    return a, b, shape


def reference(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None) -> np.ndarray:
    """numpy reference: alpha * op(a) @ op(b) + beta * c. As in BLAS and PyTorch's addmm,
    c is not read when beta == 0, nor a and b when alpha == 0 (their NaNs do not spread)."""
    op_a = np.swapaxes(a, -1, -2) if trans_a else a
    op_b = np.swapaxes(b, -1, -2) if trans_b else b
    if alpha == 0.0:
        shape = np.broadcast_shapes(op_a.shape[:-2], op_b.shape[:-2]) + (
            op_a.shape[-2],
            op_b.shape[-1],
        )
        out = np.zeros(shape, np.result_type(a, b))
    else:
        out = np.matmul(op_a, op_b)
    if alpha not in (0.0, 1.0):
        out *= out.dtype.type(alpha)
    if c is not None and beta != 0.0:
        out += out.dtype.type(beta) * c
    return out


def _run(batched: bool, a, b, trans_a, trans_b, alpha, beta, c) -> np.ndarray:
    a, b, shape = _check(a, b, c, trans_a, trans_b, batched)
    alpha, beta = float(alpha), float(beta)
    native = _state.native
    if native is None or 0 in a.shape or 0 in b.shape:
        out = reference(a, b, trans_a, trans_b, alpha, beta, c)
        if c is None:
            return out
        c[...] = out
        return c
    if c is None:  # a new output: contiguous, nothing to check or copy back
        beta = 0.0
        c = target = np.empty(shape, dtype=a.dtype)
    elif _row_major(c) and _batch_strides_ok(c):
        target = c
    else:
        target = np.ascontiguousarray(c)
    a_k, trans_a = _layout(a, trans_a)
    b_k, trans_b = _layout(b, trans_b)
    if batched:  # the kernel takes two batch levels: (outer, inner, rows, cols)
        batch = (1,) * (4 - len(shape)) + shape[:-2]
        a_k = np.broadcast_to(a_k, batch + a_k.shape[-2:])
        b_k = np.broadcast_to(b_k, batch + b_k.shape[-2:])
        native.gemm_batched(
            trans_a, trans_b, alpha, a_k, b_k, beta, target.reshape(batch + shape[-2:])
        )
    else:
        native.gemm(trans_a, trans_b, alpha, a_k, b_k, beta, target)
    if target is not c:
        c[...] = target
    return c


def gemm(
    a,
    b,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    beta: float = 0.0,
    c: np.ndarray | None = None,
) -> np.ndarray:
    """alpha * op(a) @ op(b) + beta * c for 2-D float arrays (op = transpose when asked).

    a: (m, k), or (k, m) with trans_a; b: (k, n), or (n, k) with trans_b; c: (m, n),
    updated in place and returned when given, else a new array (beta is then unused).
    """
    return _run(False, a, b, trans_a, trans_b, alpha, beta, c)


def gemm_batched(
    a,
    b,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    beta: float = 0.0,
    c: np.ndarray | None = None,
) -> np.ndarray:
    """gemm over a batch: a (batch, m, k), b (batch, k, n) -> (batch, m, n), or with two
    batch dims, a (p, q, m, k) and b (p, q, k, n) -> (p, q, m, n).

    Batch dims broadcast (a size of 1 in a or b); any non-negative batch strides are read
    and written in place, so the heads of a (B, T, H, d) array, permuted to (B, H, T, d),
    need no copy. c (updated in place when given) must not overlap itself.
    """
    return _run(True, a, b, trans_a, trans_b, alpha, beta, c)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.matmul semantics for arrays with ndim >= 2 (batch dims broadcast), on the GEMM
    kernels: a 2-D b folds a's batch into rows (one GEMM); otherwise batched GEMM."""
    op = "matmul"
    a = as_float_array(op, "a", a)
    b = as_float_array(op, "b", b)
    same_dtype(op, a=a, b=b)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"{op}: needs arrays with at least 2 dims, got {a.shape} and {b.shape}")
    m, k = a.shape[-2:]
    k2, n = b.shape[-2:]
    if k != k2:
        raise ValueError(
            f"{op}: shapes {a.shape} and {b.shape} do not match: "
            f"{k} (last dim of the first) != {k2} (second-to-last dim of the second)"
        )
    if _state.native is None:
        return np.matmul(a, b)
    if b.ndim == 2:
        if a.ndim == 2:
            return gemm(a, b)
        flat = a.reshape(-1, k)
        return gemm(flat, b).reshape(a.shape[:-1] + (n,))
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"{op}: batch dims of {a.shape} and {b.shape} do not broadcast") from None
    # The kernel takes two batch dims with any strides; more are folded into the first.
    fold = (-1,) + batch[-1:] if len(batch) > 2 else batch
    a_b = np.broadcast_to(a, batch + (m, k)).reshape(fold + (m, k))
    b_b = np.broadcast_to(b, batch + (k, n)).reshape(fold + (k, n))
    return gemm_batched(a_b, b_b).reshape(batch + (m, n))
