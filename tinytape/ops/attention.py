"""Fused multi-head self-attention on one packed q/k/v projection.

One node instead of a dozen: the C kernel reads the heads in place from the packed
(B, T, 3 d) array, runs every (batch, head) pair's products and softmax on one thread,
and its backward writes dq, dk and dv straight into one (B, T, 3 d) gradient (see
backend/attention.py).
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..tensor import Tensor
from ._util import require_float
from .registry import OpInfo, Sample, rand, register


class SelfAttention(Function):
    """Saves the packed input, the attention weights (B, H, T, T) and the dropout
    multipliers; the backward is one kernel call."""

    differentiable_backward = False

    @staticmethod
    def forward(ctx, qkv, n_heads, causal, keep):
        out, weights = backend.attention(qkv.data, n_heads, causal, keep)
        ctx.save_for_backward(qkv)
        ctx.weights, ctx.keep, ctx.n_heads, ctx.causal = weights, keep, n_heads, causal
        return out

    @staticmethod
    def backward(ctx, g):
        (qkv,) = ctx.saved_tensors
        return (Tensor._wrap(backend.attention_backward(
            qkv.data, ctx.n_heads, ctx.keep, ctx.weights, g.data, ctx.causal)),)


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
    backend.attention_check("self_attention", qkv.data, n_heads, dropout_keep)
    return SelfAttention.apply(qkv, n_heads=int(n_heads), causal=bool(is_causal),
                               keep=dropout_keep)


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
                gradgrad=False, uses_kernel=True, rtol32=1e-4, atol32=1e-5))
