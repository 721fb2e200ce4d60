"""Fused softmax cross-entropy with integer targets, mean over counted rows.

Forward saves lse = logsumexp(logits) per row; backward needs logits, targets,
lse. Rows whose target is ``ignore_index`` do not count. When no row counts the
loss is 0 and the gradient is 0 (PyTorch gives NaN there; a padded batch with
nothing to predict is not an error and must not poison a running sum).
"""

from __future__ import annotations

import numpy as np

from . import _state
from ._checks import as_float_array, rows_2d, same_dtype


def _check(op: str, logits, targets) -> tuple[np.ndarray, np.ndarray]:
    logits = as_float_array(op, "logits", logits)
    targets = np.asarray(targets)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"{op}: targets must be integers, got dtype {targets.dtype}")
    if logits.ndim == 0 or targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"{op}: targets of shape {targets.shape} do not match logits of shape "
            f"{logits.shape}: expected targets of shape {logits.shape[:-1]}"
        )
    return logits, targets.astype(np.int64, copy=False)


def _bad_target(op: str, targets: np.ndarray, classes: int, ignore_index: int) -> int:
    """Index of the first target outside [0, classes) that is not ignore_index, or -1."""
    flat = targets.reshape(-1)
    bad = np.flatnonzero(((flat < 0) | (flat >= classes)) & (flat != ignore_index))
    return int(bad[0]) if bad.size else -1


def _raise_bad(op: str, targets: np.ndarray, row: int, classes: int, ignore_index: int):
    index = np.unravel_index(row, targets.shape) if targets.ndim else ()
    value = targets.reshape(-1)[row]
    raise ValueError(
        f"{op}: target {value} at index {tuple(int(i) for i in index)} is out of range for "
        f"{classes} classes (valid: 0..{classes - 1}, or ignore_index={ignore_index})"
    )


def cross_entropy_reference(logits, targets, ignore_index: int = -100):
    """(mean loss as a 0-d array, lse of shape logits.shape[:-1])."""
    x = rows_2d(logits)
    t = targets.reshape(-1)
    m = x.max(axis=-1, keepdims=True) if x.shape[-1] else np.zeros((x.shape[0], 1), x.dtype)
    lse = (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[:, 0]
    keep = t != ignore_index
    picked = x[np.flatnonzero(keep), t[keep]]
    count = int(keep.sum())
    total = float((lse[keep].astype(np.float64) - picked).sum())
    loss = np.asarray(total / count if count else 0.0, dtype=logits.dtype)
    return loss, lse.reshape(targets.shape)


def cross_entropy_backward_reference(logits, targets, lse, grad=1.0, ignore_index=-100):
    x = rows_2d(logits)
    t = targets.reshape(-1)
    keep = t != ignore_index
    count = int(keep.sum())
    scale = float(grad) / count if count else 0.0
    d = np.exp(x - lse.reshape(-1, 1))
    rows = np.flatnonzero(keep)
    d[rows, t[keep]] -= 1.0
    d[~keep] = 0.0
    return (d * x.dtype.type(scale)).reshape(logits.shape)


def cross_entropy(logits, targets, ignore_index: int = -100) -> tuple[np.ndarray, np.ndarray]:
    """Mean over counted rows of -log softmax(logits)[target].

    logits: (..., C) float; targets: (...) integers in [0, C) or ignore_index.
    Returns (loss as a 0-d array of logits' dtype, lse of shape (...)) — lse is
    saved for the backward.
    """
    op = "cross_entropy"
    logits, targets = _check(op, logits, targets)
    classes = logits.shape[-1]
    native = _state.native
    if native is None or targets.size == 0:
        bad = _bad_target(op, targets, classes, ignore_index)
        if bad >= 0:
            _raise_bad(op, targets, bad, classes, ignore_index)
        return cross_entropy_reference(logits, targets, ignore_index)
    x = rows_2d(logits)
    t = np.ascontiguousarray(targets.reshape(-1))
    lse = np.empty(x.shape[0], dtype=x.dtype)
    total, count, bad = native.cross_entropy_fwd(x, t, int(ignore_index), lse)
    if bad >= 0:
        _raise_bad(op, targets, bad, classes, ignore_index)
    loss = np.asarray(total / count if count else 0.0, dtype=x.dtype)
    return loss, lse.reshape(targets.shape)


def cross_entropy_backward(logits, targets, lse, grad: float = 1.0,
                           ignore_index: int = -100) -> np.ndarray:
    """Gradient wrt logits of grad * cross_entropy(logits, targets), from the saved lse."""
    op = "cross_entropy_backward"
    logits, targets = _check(op, logits, targets)
    lse = as_float_array(op, "lse", lse)
    same_dtype(op, logits=logits, lse=lse)
    if lse.shape != targets.shape:
        raise ValueError(f"{op}: lse has shape {lse.shape}, expected {targets.shape}")
    classes = logits.shape[-1]
    native = _state.native
    if native is None or targets.size == 0:
        bad = _bad_target(op, targets, classes, ignore_index)
        if bad >= 0:
            _raise_bad(op, targets, bad, classes, ignore_index)
        return cross_entropy_backward_reference(logits, targets, lse, grad, ignore_index)
    x = rows_2d(logits)
    t = np.ascontiguousarray(targets.reshape(-1))
    count = int(np.count_nonzero(t != ignore_index))
    scale = float(grad) / count if count else 0.0
    d = np.empty_like(x)
    bad = native.cross_entropy_bwd(x, t, np.ascontiguousarray(lse.reshape(-1)),
                                   int(ignore_index), scale, d)
    if bad >= 0:
        _raise_bad(op, targets, bad, classes, ignore_index)
    return d.reshape(logits.shape)
