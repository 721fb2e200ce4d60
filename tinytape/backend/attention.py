"""Fused multi-head self-attention on a packed projection, forward and backward.

qkv: (B, T, 3 H d): for each token the queries of all H heads (each of size d), then the
keys, then the values, i.e. the output of a Linear(H d, 3 H d) laid out like PyTorch's
in_proj_weight. The forward returns out (B, T, H d), the heads side by side, and the
attention weights (B, H, T, T) = softmax(q k^T / sqrt(d)), which the backward needs. A
causal query attends to its own and earlier positions only (later keys get weight exactly
0). keep: dropout multipliers of the weights (B, H, T, T), or None.

The C kernel gives whole (batch, head) pairs to threads, so one call wakes the team once:
per pair it runs the products on the heads in place (row stride 3 H d) and the softmax
rows (a causal row only over its visible keys).
"""

from __future__ import annotations

import math

import numpy as np

from . import _state
from ._checks import as_float_array, same_dtype


def heads(packed: np.ndarray, n_heads: int) -> np.ndarray:
    """(B, T, 3 H d) -> its (3, B, H, T, d) view: q, k, v of every head, no copy."""
    b, t, width = packed.shape
    return packed.reshape(b, t, 3, n_heads, width // (3 * n_heads)).transpose(2, 0, 3, 1, 4)


def concat_heads(out: np.ndarray, n_heads: int) -> np.ndarray:
    """(B, T, H d) -> its (B, H, T, d) view: head h of token t is columns h d ... (h+1) d."""
    b, t, width = out.shape
    return out.reshape(b, t, n_heads, width // n_heads).transpose(0, 2, 1, 3)


def _scale(qkv: np.ndarray, n_heads: int) -> float:
    return 1.0 / math.sqrt(qkv.shape[-1] // (3 * n_heads))


def attention_reference(qkv: np.ndarray, n_heads: int, causal: bool = False,
                        keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    b, t, width = qkv.shape
    if b == 0 or t == 0:
        return np.zeros((b, t, width // 3), qkv.dtype), np.zeros((b, n_heads, t, t), qkv.dtype)
    q, k, v = heads(qkv, n_heads)
    scores = (q @ np.swapaxes(k, -1, -2)) * qkv.dtype.type(_scale(qkv, n_heads))
    later = np.triu(np.ones((t, t), bool), 1)
    if causal:
        scores = np.where(later, -np.inf, scores)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights = e / e.sum(axis=-1, keepdims=True)
    if causal:  # exactly 0, also in a row made NaN by a non-finite score (docs/numerics.md)
        weights[..., later] = 0
    out = (weights if keep is None else weights * keep) @ v
    return out.transpose(0, 2, 1, 3).reshape(b, t, width // 3), weights


def attention_backward_reference(qkv: np.ndarray, n_heads: int, keep: np.ndarray | None,
                                 weights: np.ndarray, grad_out: np.ndarray,
                                 causal: bool = False) -> np.ndarray:
    q, k, v = heads(qkv, n_heads)
    g_out = concat_heads(grad_out, n_heads)
    used = weights if keep is None else weights * keep
    grad = np.empty_like(qkv)
    g_q, g_k, g_v = heads(grad, n_heads)
    g_v[...] = np.swapaxes(used, -1, -2) @ g_out
    g_used = g_out @ np.swapaxes(v, -1, -2)
    if keep is not None:
        g_used = g_used * keep
    later = np.triu(np.ones((qkv.shape[1],) * 2, bool), 1)
    if causal:  # masked weights are constants: no gradient reaches or leaves them, NaN or not
        g_used = np.where(later, 0, g_used)
    g_scores = weights * (g_used - (g_used * weights).sum(axis=-1, keepdims=True))
    if causal:
        g_scores[..., later] = 0
    scale = qkv.dtype.type(_scale(qkv, n_heads))
    g_q[...] = (g_scores @ k) * scale
    g_k[...] = (np.swapaxes(g_scores, -1, -2) @ q) * scale
    return grad


def _check(op: str, qkv: object, n_heads: int, keep: object
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """qkv and keep as float arrays; a ValueError naming the shapes when they do not fit."""
    qkv = as_float_array(op, "qkv", qkv)
    if qkv.ndim != 3 or not isinstance(n_heads, (int, np.integer)) or n_heads < 1 \
            or qkv.shape[2] == 0 or qkv.shape[2] % (3 * n_heads):
        raise ValueError(f"{op}: qkv must be (B, T, 3 * n_heads * d) with d >= 1, got shape "
                         f"{qkv.shape} for n_heads={n_heads!r}")
    if keep is not None:
        keep = as_float_array(op, "keep", keep)
        b, t = qkv.shape[:2]
        if keep.shape != (b, n_heads, t, t):
            raise ValueError(f"{op}: keep must have shape {(b, n_heads, t, t)}, got "
                             f"{keep.shape}")
        same_dtype(op, qkv=qkv, keep=keep)
    return qkv, keep


def attention(qkv: np.ndarray, n_heads: int, causal: bool = False,
              keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(out (B, T, H d), weights (B, H, T, T)) of self-attention from a packed qkv."""
    qkv, keep = _check("attention", qkv, n_heads, keep)
    native = _state.native
    if native is None or qkv.size == 0:
        return attention_reference(qkv, n_heads, causal, keep)
    b, t, width = qkv.shape
    qkv = np.ascontiguousarray(qkv)
    weights = np.empty((b, n_heads, t, t), qkv.dtype)
    out = np.empty((b, t, width // 3), qkv.dtype)
    native.attention_fwd(qkv, int(n_heads), None if keep is None else np.ascontiguousarray(keep),
                         bool(causal), _scale(qkv, n_heads), weights, out)
    return out, weights


def attention_backward(qkv: np.ndarray, n_heads: int, keep: np.ndarray | None,
                       weights: np.ndarray, grad_out: np.ndarray,
                       causal: bool = False) -> np.ndarray:
    """Gradient wrt qkv of sum(out * grad_out), from the forward's weights."""
    op = "attention_backward"
    qkv, keep = _check(op, qkv, n_heads, keep)
    weights = as_float_array(op, "weights", weights)
    grad_out = as_float_array(op, "grad_out", grad_out)
    b, t, width = qkv.shape
    for name, x, shape in (("weights", weights, (b, n_heads, t, t)),
                           ("grad_out", grad_out, (b, t, width // 3))):
        if x.shape != shape:
            raise ValueError(f"{op}: {name} must have shape {shape}, got {x.shape}")
    same_dtype(op, qkv=qkv, weights=weights, grad_out=grad_out)
    native = _state.native
    if native is None or qkv.size == 0:
        return attention_backward_reference(qkv, n_heads, keep, weights, grad_out, causal)
    qkv = np.ascontiguousarray(qkv)
    grad = np.empty_like(qkv)
    native.attention_bwd(qkv, int(n_heads), None if keep is None else np.ascontiguousarray(keep),
                         np.ascontiguousarray(weights), np.ascontiguousarray(grad_out),
                         bool(causal), _scale(qkv, n_heads), grad)
    return grad
