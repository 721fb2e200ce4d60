"""Functions used by the layers that are compositions of ops (no new Function needed)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import creation
from .. import ops as F
from ..tensor import Tensor


def dropout(x: Tensor, p: float = 0.5, training: bool = True, generator: Any = None) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p) (training);
    the identity otherwise. The mask comes from `generator` (default: tinytape's)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return x * Tensor._wrap(dropout_keep(x.shape, p, generator, x.dtype))


def dropout_keep(shape: tuple[int, ...], p: float, generator: Any, dtype: Any) -> np.ndarray:
    """Dropout's multipliers: 0 with probability p, else 1 / (1 - p) (all 0 when p = 1)."""
    if p >= 1.0:
        return np.zeros(shape, dtype)
    keep = creation._generator(generator).random(shape) >= p
    return (keep / (1.0 - p)).astype(dtype)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, with weight stored (out, in) as in PyTorch (one fused op)."""
    return F.linear(x, weight, bias)


def mse_loss(x: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    diff = x - target
    return _reduce(diff * diff, reduction, "mse_loss")


def binary_cross_entropy_with_logits(x: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """-[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))] = softplus(x) - x * y, stably."""
    return _reduce(F.softplus(x) - x * target, reduction, "binary_cross_entropy_with_logits")


def cross_entropy(logits: Tensor, targets: Any, ignore_index: int = -100,
                  label_smoothing: float = 0.0, reduction: str = "mean") -> Tensor:
    """Cross-entropy with classes on the last axis and optional label smoothing:
    (1 - e) * NLL + e * mean over classes of -log p, averaged over counted rows
    (PyTorch's definition)."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    nll = F.cross_entropy(logits, targets, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing == 0.0:
        return nll
    t = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    keep = t != ignore_index
    smooth = -F.log_softmax(logits).mean(axis=-1)
    smooth = smooth.masked_fill(Tensor._wrap(~keep), 0.0)
    if reduction == "none":
        smooth_r = smooth
    else:
        smooth_r = smooth.sum()
        if reduction == "mean":
            smooth_r = smooth_r * (1.0 / max(int(keep.sum()), 1))
    return nll * (1.0 - label_smoothing) + smooth_r * label_smoothing


def _reduce(x: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    if reduction == "none":
        return x
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Any = None,
                                 is_causal: bool = False, bias: Tensor | None = None,
                                 dropout_p: float = 0.0, training: bool = False,
                                 generator: Any = None) -> Tensor:
    """softmax(q k^T / sqrt(d_k) + bias, masked) v.

    q: (..., Tq, d), k: (..., Tk, d), v: (..., Tk, dv) -> (..., Tq, dv).
    attn_mask: bool, True where a query may attend to a key (broadcasts to (..., Tq, Tk)).
    is_causal: query i (the last Tq of Tk positions) sees keys up to its own position.
    bias: added to the scores (ALiBi, relative position bias), broadcasting.
    A query that may attend to nothing gets uniform weights, never NaN.
    """
    d = q.shape[-1]
    scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(d))
    if bias is not None:
        scores = scores + bias
    mask = None
    if is_causal:
        mask = causal_mask(q.shape[-2], k.shape[-2])
    if attn_mask is not None:
        m = attn_mask.data if isinstance(attn_mask, Tensor) else np.asarray(attn_mask)
        if m.dtype != np.bool_:
            raise TypeError(f"attention: attn_mask must be bool (True = attend), got {m.dtype}")
        mask = m if mask is None else (mask & m)
    if mask is not None:
        scores = scores.masked_fill(Tensor._wrap(~mask), float(np.finfo(scores.dtype).min))
    weights = F.softmax(scores, axis=-1)
    weights = dropout(weights, dropout_p, training, generator)
    return weights @ v


def causal_mask(tq: int, tk: int) -> np.ndarray:
    """(tq, tk) bool: query i (position tk - tq + i) may see keys 0..tk - tq + i."""
    return np.tril(np.ones((tq, tk), dtype=bool), k=tk - tq)
