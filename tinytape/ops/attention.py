"""Fused multi-head self-attention on one packed q/k/v projection.

One node instead of a dozen: the heads are strided views of the packed (B, T, 3 d) array
that the two-level batched GEMM reads and writes in place (no head copies, no permuted
outputs), 1 / sqrt(d_k) rides in the GEMM's alpha, the causal mask is one masked copy, and
the backward writes dq, dk and dv straight into one (B, T, 3 d) gradient.
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..tensor import Tensor
from ._util import require_float
from .registry import OpInfo, Sample, rand, register


def _heads(packed: np.ndarray, n_heads: int) -> np.ndarray:
    """(B, T, 3 d) -> a (3, B, H, T, d / H) view: q, k, v of every head, no copy."""
    b, t, width = packed.shape
    return packed.reshape(b, t, 3, n_heads, width // (3 * n_heads)).transpose(2, 0, 3, 1, 4)


def _concat_heads(out: np.ndarray, n_heads: int) -> np.ndarray:
    """(B, T, d) -> its (B, H, T, d / H) view: head h of token t in columns h*d/H ..."""
    b, t, d = out.shape
    return out.reshape(b, t, n_heads, d // n_heads).transpose(0, 2, 1, 3)


def _causal_upper(t: int) -> np.ndarray:
    """(t, t) bool, True above the diagonal: the keys a query may not see."""
    return np.triu(np.ones((t, t), dtype=bool), k=1)


class SelfAttention(Function):
    """softmax(q k^T / sqrt(d_k), masked) (times the dropout keep mask) v, per head.

    Saves the packed input and the attention weights (B, H, T, T); the backward is four
    batched GEMMs and the softmax kernel's backward.
    """

    differentiable_backward = False

    @staticmethod
    def forward(ctx, qkv, n_heads, causal, keep):
        x = qkv.data
        b, t, width = x.shape
        q, k, v = _heads(x, n_heads)
        scale = 1.0 / math.sqrt(width // (3 * n_heads))
        scores = backend.gemm_batched(q, k, trans_b=True, alpha=scale)  # (B, H, T, T)
        if causal:  # the dtype's lowest value, not -inf: exp gives exactly 0 either way
            np.copyto(scores, np.finfo(x.dtype).min, where=_causal_upper(t))
        weights = backend.softmax(scores)
        out = np.empty((b, t, width // 3), x.dtype)
        backend.gemm_batched(weights if keep is None else weights * keep, v,
                             c=_concat_heads(out, n_heads))
        ctx.save_for_backward(qkv)
        ctx.weights, ctx.keep, ctx.n_heads, ctx.scale = weights, keep, n_heads, scale
        return out

    @staticmethod
    def backward(ctx, g):
        (qkv,) = ctx.saved_tensors
        weights, keep, n_heads, scale = ctx.weights, ctx.keep, ctx.n_heads, ctx.scale
        q, k, v = _heads(qkv.data, n_heads)
        g_out = _concat_heads(g.data, n_heads)
        grad = np.empty_like(qkv.data)
        g_q, g_k, g_v = _heads(grad, n_heads)
        used = weights if keep is None else weights * keep
        backend.gemm_batched(used, g_out, trans_a=True, c=g_v)  # dV = P^T dO
        g_used = backend.gemm_batched(g_out, v, trans_b=True)  # dP = dO V^T
        if keep is not None:
            g_used *= keep
        g_scores = backend.softmax_backward(weights, g_used)  # masked keys: weight 0, grad 0
        backend.gemm_batched(g_scores, k, alpha=scale, c=g_q)  # dQ = dS K / sqrt(d_k)
        backend.gemm_batched(g_scores, q, trans_a=True, alpha=scale, c=g_k)  # dK = dS^T Q ...
        return (Tensor._wrap(grad),)


def self_attention(qkv: Tensor, n_heads: int, is_causal: bool = False,
                   dropout_keep: np.ndarray | None = None) -> Tensor:
    """Multi-head self-attention from a packed projection, as one op.

    qkv: (B, T, 3 d), for each token the d query features, then the d key features, then
    the d value features, each the concatenation of n_heads heads of size d / n_heads (the
    output of a Linear(d, 3 d) laid out like PyTorch's in_proj_weight).
    is_causal: token i attends to tokens 0..i only.
    dropout_keep: (B, n_heads, T, T) multipliers of the attention weights (0 or 1 / (1 - p);
    None: no dropout), used in qkv's dtype.
    Returns (B, T, d): the heads' outputs side by side, ready for the output projection.
    """
    require_float("self_attention", qkv)
    if qkv.ndim != 3:
        raise ValueError(f"self_attention: qkv must be (B, T, 3 d), got shape {qkv.shape}")
    if not isinstance(n_heads, int) or n_heads < 1:
        raise ValueError(f"self_attention: n_heads must be an integer >= 1, got {n_heads!r}")
    b, t, width = qkv.shape
    if width == 0 or width % (3 * n_heads):
        raise ValueError(f"self_attention: the last dim of qkv {qkv.shape} must be 3 * d with "
                         f"d > 0 a multiple of n_heads = {n_heads}")
    if dropout_keep is not None:
        dropout_keep = np.asarray(dropout_keep)
        if dropout_keep.shape != (b, n_heads, t, t):
            raise ValueError(f"self_attention: dropout_keep must have shape {(b, n_heads, t, t)},"
                             f" got {dropout_keep.shape}")
        dropout_keep = dropout_keep.astype(qkv.dtype, copy=False)
    return SelfAttention.apply(qkv, n_heads=n_heads, causal=bool(is_causal), keep=dropout_keep)


def _self_attention_ref(qkv, n_heads, is_causal=False, dropout_keep=None):
    b, t, width = qkv.shape
    q, k, v = _heads(qkv, n_heads)
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(width // (3 * n_heads))
    if is_causal:
        scores = np.where(_causal_upper(t), -np.inf, scores)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights = e / e.sum(axis=-1, keepdims=True)
    if dropout_keep is not None:
        weights = weights * dropout_keep
    return (weights @ v).transpose(0, 2, 1, 3).reshape(b, t, width // 3)


def _self_attention_samples(rng, dtype):
    for (b, t, d, h), causal in [((2, 5, 6, 2), True), ((2, 5, 6, 2), False),
                                 ((1, 1, 4, 1), True), ((3, 7, 9, 3), True), ((0, 3, 4, 2), True)]:
        yield Sample((rand(rng, (b, t, 3 * d), dtype, -2, 2),),
                     {"n_heads": h, "is_causal": causal}, name=f"{(b, t, d)} h{h} causal={causal}")
    keep = (rng.random((2, 2, 4, 4)) >= 0.3) / 0.7
    yield Sample((rand(rng, (2, 4, 3 * 6), dtype, -2, 2),),
                 {"n_heads": 2, "is_causal": True, "dropout_keep": keep}, name="dropout")


register(OpInfo("self_attention", self_attention, _self_attention_ref, _self_attention_samples,
                gradgrad=False, uses_kernel=True, rtol32=1e-4, atol32=1e-5))
