"""Gradient clipping by total norm (as torch.nn.utils.clip_grad_norm_)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..tensor import Tensor


def _vector_norm(x: np.ndarray, p: float) -> np.generic:
    """The p-norm of x flattened, in x's dtype (as torch.linalg.vector_norm)."""
    scalar = x.dtype.type
    x = x.reshape(-1)
    if x.size == 0:
        return scalar(math.inf) if p == -math.inf else scalar(0)
    if p == math.inf:
        return scalar(np.max(np.abs(x)))
    if p == -math.inf:
        return scalar(np.min(np.abs(x)))
    if p == 0:
        return scalar(np.count_nonzero(x))
    if p == 1:
        return scalar(np.sum(np.abs(x)))
    if p == 2:
        return scalar(np.sqrt(np.dot(x, x)))
    return scalar(np.sum(np.abs(x) ** scalar(p)) ** scalar(1 / p))


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    """Scale the gradients in place so that their total norm is at most max_norm.

    The total norm is the norm_type-norm of all the gradients together, as if
    concatenated into one vector (norm_type may be float("inf")). Every gradient is
    multiplied by min(1, max_norm / (total_norm + 1e-6)), computed in the gradients'
    dtype. Parameters whose .grad is None are skipped. Returns the total norm (before
    clipping), as a float.

    error_if_nonfinite: raise RuntimeError if the total norm is nan or inf (otherwise
    the gradients are scaled by the non-finite coefficient, as in PyTorch).
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    max_norm = float(max_norm)
    norm_type = float(norm_type)
    if not grads:
        return 0.0
    norms = [_vector_norm(g.data, norm_type) for g in grads]
    dtype = np.result_type(*[g.data.dtype for g in grads])
    total_norm = _vector_norm(np.array(norms, dtype=dtype), norm_type)
    if error_if_nonfinite and not np.isfinite(total_norm):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the "
            "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")
    clip_coef = max_norm / (total_norm + 1e-6)  # numpy scalar of the gradients' dtype
    clip_coef = np.minimum(clip_coef, dtype.type(1))  # NaN stays NaN, as torch.clamp
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0: nan, silently, as torch
        for g in grads:
            g.data *= g.data.dtype.type(clip_coef)
            g._version[0] += 1
    return float(total_norm)
