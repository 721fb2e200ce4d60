"""Layer norm over the last axis with gamma and beta, forward and backward.

Forward saves mean and rstd = 1 / sqrt(var + eps) per row (biased variance);
backward needs dy, x, gamma, mean, rstd and gives dx, dgamma, dbeta.
"""

from __future__ import annotations

import numpy as np

from . import _state
from ._checks import as_float_array, at_least_1d, rows_2d, same_dtype, same_shape


def _params(op: str, x: np.ndarray, gamma, beta):
    cols = x.shape[-1]
    gamma = np.ones(cols, x.dtype) if gamma is None else as_float_array(op, "gamma", gamma)
    beta = np.zeros(cols, x.dtype) if beta is None else as_float_array(op, "beta", beta)
    for name, p in (("gamma", gamma), ("beta", beta)):
        if p.shape != (cols,):
            raise ValueError(
                f"{op}: {name} has shape {p.shape}, expected ({cols},) for x of shape {x.shape}"
            )
    same_dtype(op, x=x, gamma=gamma, beta=beta)
    return np.ascontiguousarray(gamma), np.ascontiguousarray(beta)


def _check_x(op: str, x) -> np.ndarray:
    x = as_float_array(op, "x", x)
    at_least_1d(op, "x", x)
    if x.shape[-1] == 0:
        raise ValueError(f"{op}: cannot normalize over an empty last axis (x of shape {x.shape})")
    return x


def layer_norm_reference(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + x.dtype.type(eps))
    y = (x - mean) * rstd * gamma + beta
    return y, mean[..., 0], rstd[..., 0]


def layer_norm_backward_reference(dy, x, gamma, mean, rstd):
    xhat = (x - mean[..., None]) * rstd[..., None]
    g = dy * gamma
    dx = rstd[..., None] * (
        g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True)
    )
    axes = tuple(range(x.ndim - 1))
    return dx, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


def layer_norm(x, gamma=None, beta=None, eps: float = 1e-5):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta over the last axis.

    x: (..., D); gamma, beta: (D,) or None (ones, zeros). Returns (y, mean, rstd)
    with mean and rstd of shape (...), saved for the backward.
    """
    op = "layer_norm"
    x = _check_x(op, x)
    gamma, beta = _params(op, x, gamma, beta)
    if not eps >= 0:
        raise ValueError(f"{op}: eps must be >= 0, got {eps}")
    native = _state.native
    if native is None or x.size == 0:
        return layer_norm_reference(x, gamma, beta, eps)
    x2 = rows_2d(x)
    y = np.empty_like(x2)
    mean = np.empty(x2.shape[0], x.dtype)
    rstd = np.empty(x2.shape[0], x.dtype)
    native.layer_norm_fwd(x2, gamma, beta, float(eps), y, mean, rstd)
    return y.reshape(x.shape), mean.reshape(x.shape[:-1]), rstd.reshape(x.shape[:-1])


def layer_norm_backward(dy, x, gamma, mean, rstd):
    """(dx, dgamma, dbeta) from the output gradient dy and the saved mean, rstd."""
    op = "layer_norm_backward"
    x = _check_x(op, x)
    dy = as_float_array(op, "dy", dy)
    mean = as_float_array(op, "mean", mean)
    rstd = as_float_array(op, "rstd", rstd)
    same_shape(op, dy=dy, x=x)
    gamma, _ = _params(op, x, gamma, None)
    same_dtype(op, dy=dy, x=x, mean=mean, rstd=rstd)
    for name, s in (("mean", mean), ("rstd", rstd)):
        if s.shape != x.shape[:-1]:
            raise ValueError(f"{op}: {name} has shape {s.shape}, expected {x.shape[:-1]}")
    native = _state.native
    if native is None or x.size == 0:
        return layer_norm_backward_reference(dy, x, gamma, mean, rstd)
    x2, dy2 = rows_2d(x), rows_2d(dy)
    dx = np.empty_like(x2)
    dgamma = np.empty(x2.shape[1], x.dtype)
    dbeta = np.empty(x2.shape[1], x.dtype)
    native.layer_norm_bwd(dy2, x2, gamma, np.ascontiguousarray(mean.reshape(-1)),
                          np.ascontiguousarray(rstd.reshape(-1)), dx, dgamma, dbeta)
    return dx.reshape(x.shape), dgamma, dbeta
