"""Softmax and log-softmax over the last axis, forward and backward.

Forward saves its output y; both backwards need only y and the incoming gradient.
"""

from __future__ import annotations

import numpy as np

from . import _state
from ._checks import as_float_array, at_least_1d, rows_2d, same_dtype, same_shape


def softmax_reference(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward_reference(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def log_softmax_reference(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def log_softmax_backward_reference(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return dy - np.exp(y) * dy.sum(axis=-1, keepdims=True)


def _forward(op: str, x, reference, kernel_name: str) -> np.ndarray:
    x = as_float_array(op, "x", x)
    at_least_1d(op, "x", x)
    if x.size == 0:
        return x.copy()
    native = _state.native
    if native is None:
        return reference(x)
    x2 = rows_2d(x)
    y = np.empty_like(x2)
    getattr(native, kernel_name)(x2, y)
    return y.reshape(x.shape)


def _backward(op: str, y, dy, reference, kernel_name: str) -> np.ndarray:
    y = as_float_array(op, "y", y)
    dy = as_float_array(op, "dy", dy)
    at_least_1d(op, "y", y)
    same_shape(op, y=y, dy=dy)
    same_dtype(op, y=y, dy=dy)
    if y.size == 0:
        return y.copy()
    native = _state.native
    if native is None:
        return reference(y, dy)
    y2, dy2 = rows_2d(y), rows_2d(dy)
    dx = np.empty_like(y2)
    getattr(native, kernel_name)(y2, dy2, dx)
    return dx.reshape(y.shape)


def softmax(x: np.ndarray) -> np.ndarray:
    """exp(x) / sum(exp(x)) over the last axis, computed stably. Any shape with ndim >= 1."""
    return _forward("softmax", x, softmax_reference, "softmax_fwd")


def softmax_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Gradient wrt x from the saved output y = softmax(x): y * (dy - sum(dy * y))."""
    return _backward("softmax_backward", y, dy, softmax_backward_reference, "softmax_bwd")


def log_softmax(x: np.ndarray) -> np.ndarray:
    """x - logsumexp(x) over the last axis, computed stably. Any shape with ndim >= 1."""
    return _forward("log_softmax", x, log_softmax_reference, "log_softmax_fwd")


def log_softmax_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Gradient wrt x from the saved output y = log_softmax(x): dy - exp(y) * sum(dy)."""
    return _backward(
        "log_softmax_backward", y, dy, log_softmax_backward_reference, "log_softmax_bwd"
    )
