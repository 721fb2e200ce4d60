"""Numerically stable softmax and log-softmax of numpy arrays (no tape): the one copy the
evaluations, samplers and exact computations share.

    logp = log_softmax(logits)          # float64, rows sum to 1 after exp
"""

from __future__ import annotations

import numpy as np


def log_softmax(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(softmax(a)) along axis in float64, computed as a - max - log(sum(exp(a - max)))
    so that large or very negative values neither overflow nor lose the small terms."""
    a = np.asarray(a, dtype=np.float64)
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)  # a row of -inf stays -inf (not NaN from inf - inf)
    with np.errstate(over="ignore"):  # a - max may overflow to -inf: exp gives 0, right
        shifted = a - m
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """softmax(a) along axis in float64 (exp of `log_softmax`)."""
    return np.exp(log_softmax(a, axis))
