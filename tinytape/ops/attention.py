"""Fused multi-head self-attention on one packed q/k/v projection.

One node instead of a dozen: the C kernel reads the heads in place from the packed
(B, T, 3 d) array, runs every (batch, head) pair's products and softmax on one thread,
and its backward writes dq, dk and dv straight into one (B, T, 3 d) gradient (see
backend/attention.py). Under create_graph the backward is the same formulas written with
tensor ops (recomputing the weights from qkv), so it is recorded and can be differentiated
again.
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.grad_mode import _grad_enabled
from ..tensor import Tensor
from ._util import require_float
from .fused import softmax
from .registry import OpInfo, Sample, rand, register
from .shape import cat


class SelfAttention(Function):
    """Saves the packed input, the attention weights (B, H, T, T) and the dropout
    multipliers; the backward is one kernel call."""

    @staticmethod
    def forward(ctx, qkv, n_heads, causal, keep):
        out, weights = backend.attention(qkv.data, n_heads, causal, keep)
        ctx.save_for_backward(qkv)
        ctx.weights, ctx.keep, ctx.n_heads, ctx.causal = weights, keep, n_heads, causal
        return out

    @staticmethod
    def backward(ctx, g):
        (qkv,) = ctx.saved_tensors
        if _grad_enabled():  # create_graph: a recorded composite
            return (_backward_composite(qkv, g, ctx.n_heads, ctx.causal, ctx.keep),)
        return (Tensor._wrap(backend.attention_backward(
            qkv.data, ctx.n_heads, ctx.keep, ctx.weights, g.data, ctx.causal)),)


def _backward_composite(qkv: Tensor, g: Tensor, n_heads: int, causal: bool,
                        keep: np.ndarray | None) -> Tensor:
    """The kernel's backward as tensor ops: dV = P^T dO, dS = P (dP - rowsum(P dP)) with
    dP = dO V^T (times keep), dQ = dS K / sqrt(d_k), dK = dS^T Q / sqrt(d_k)."""
    b, t, width = qkv.shape
    d = width // 3

    def heads(x: Tensor) -> Tensor:  # (B, T, d) -> (B, H, T, d / H)
        return x.reshape(b, t, n_heads, d // n_heads).permute(0, 2, 1, 3)

    q, k, v = (heads(part) for part in qkv.split(d, axis=-1))
    scale = 1.0 / math.sqrt(d // n_heads)
    scores = (q @ k.transpose(-1, -2)) * scale
    if causal:
        upper = np.triu(np.ones((t, t), dtype=bool), k=1)
        scores = scores.masked_fill(Tensor._wrap(upper), float(np.finfo(scores.dtype).min))
    weights = softmax(scores)
    keep_t = None if keep is None else Tensor._wrap(keep)
    used = weights if keep_t is None else weights * keep_t
    g_out = heads(g)
    g_used = g_out @ v.transpose(-1, -2)
    if keep_t is not None:
        g_used = g_used * keep_t
    g_scores = weights * (g_used - (g_used * weights).sum(axis=-1, keepdims=True))
    parts = ((g_scores @ k) * scale, (g_scores.transpose(-1, -2) @ q) * scale,
             used.transpose(-1, -2) @ g_out)
    return cat([p.permute(0, 2, 1, 3).reshape(b, t, d) for p in parts], axis=-1)


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
    if dropout_keep is not None:
        dropout_keep = np.asarray(dropout_keep).astype(qkv.dtype, copy=False)
    # the kernel's own argument checks run in forward, before anything is recorded
    return SelfAttention.apply(qkv, n_heads=n_heads, causal=bool(is_causal), keep=dropout_keep)


def _self_attention_ref(qkv, n_heads, is_causal=False, dropout_keep=None):
    return backend.attention_reference(qkv, n_heads, is_causal, dropout_keep)[0]


def _self_attention_samples(rng, dtype):
    for (b, t, d, h), causal in [((2, 5, 6, 2), True), ((2, 5, 6, 2), False),
                                 ((1, 1, 4, 1), True), ((3, 7, 9, 3), True), ((0, 3, 4, 2), True)]:
        yield Sample((rand(rng, (b, t, 3 * d), dtype, -2, 2),),
                     {"n_heads": h, "is_causal": causal}, name=f"{(b, t, d)} h{h} causal={causal}")
    keep = (rng.random((2, 2, 4, 4)) >= 0.3) / 0.7
    yield Sample((rand(rng, (2, 4, 3 * 6), dtype, -2, 2),),
                 {"n_heads": 2, "is_causal": True, "dropout_keep": keep}, name="dropout")


register(OpInfo("self_attention", self_attention, _self_attention_ref, _self_attention_samples,
                uses_kernel=True, rtol32=1e-4, atol32=1e-5))
