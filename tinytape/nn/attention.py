"""Multi-head self-attention with causal and padding masks, optional relative positions
(rotary, ALiBi, learned bias) and a key/value cache for generation."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..creation import DEFAULT_FLOAT, as_generator
from ..ops import cat, self_attention
from ..tensor import Tensor
from . import functional
from .layers import Dropout, Linear
from .module import Module
from .positional import ALiBi, RelativePositionBias, RotaryEmbedding

RELATIVE = (None, "rotary", "alibi", "relative")


class MultiHeadAttention(Module):
    """Self-attention over (B, T, d_model) with n_heads heads of size d_model / n_heads.

    One fused projection makes q, k, v (weight (3 d, d): the rows of q, then k, then v,
    like PyTorch's in_proj_weight); `proj` maps the concatenated heads back.
    relative: None, "rotary", "alibi" or "relative" (a learned bias per distance).
    Without relative positions, padding mask or cache, the heads run as one fused op
    (`ops.self_attention` on the packed projection); otherwise as separate tensor ops.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True,
                 relative: str | None = None, max_len: int = 1024, generator: Any = None,
                 dtype: Any = DEFAULT_FLOAT) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"MultiHeadAttention: d_model {d_model} is not divisible by "
                             f"n_heads {n_heads}")
        if relative not in RELATIVE:
            raise ValueError(f"MultiHeadAttention: relative must be one of {RELATIVE}, "
                             f"got {relative!r}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        generator = as_generator(generator)
        self.dropout_p, self.relative, self.generator = dropout, relative, generator
        self.qkv = Linear(d_model, 3 * d_model, bias=bias, generator=generator, dtype=dtype)
        self.proj = Linear(d_model, d_model, bias=bias, generator=generator, dtype=dtype)
        self.resid_drop = Dropout(dropout, generator)
        self.rotary = RotaryEmbedding(self.head_dim, max_len, dtype=dtype) \
            if relative == "rotary" else None
        self.alibi = ALiBi(n_heads, dtype=dtype) if relative == "alibi" else None
        self.rel_bias = RelativePositionBias(n_heads, min(max_len, 128), generator, dtype) \
            if relative == "relative" else None

    def forward(self, x: Tensor, is_causal: bool = False, padding_mask: Any = None,
                cache: dict[str, Tensor] | None = None) -> Tensor:
        """x: (B, T, d_model). padding_mask: bool (B, T_keys), True for real tokens.
        cache: a dict kept between calls during generation; the new keys and values are
        appended to it, and queries are placed after the cached positions."""
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"MultiHeadAttention: expected input (B, T, {self.d_model}), "
                             f"got {x.shape}")
        b, t, d = x.shape
        h, hd = self.n_heads, self.head_dim
        if cache is None and padding_mask is None and self.relative is None:
            keep = functional.dropout_keep((b, h, t, t), self.dropout_p, self.generator, x.dtype) \
                if self.training and self.dropout_p > 0.0 else None
            y = self_attention(self.qkv(x), h, is_causal, keep)
            return self.resid_drop(self.proj(y))
        q, k, v = (part.reshape(b, t, h, hd).permute(0, 2, 1, 3)  # (B, H, T, hd) each
                   for part in self.qkv(x).split(d, axis=-1))
        offset = 0
        if cache is not None and "k" in cache:
            offset = cache["k"].shape[2]
        if self.rotary is not None:
            q, k = self.rotary(q, offset), self.rotary(k, offset)
        if cache is not None:
            if "k" in cache:
                k, v = cat([cache["k"], k], axis=2), cat([cache["v"], v], axis=2)
            cache["k"], cache["v"] = k, v
        tk = k.shape[2]
        bias = None
        if self.alibi is not None:
            bias = self.alibi(t, tk, offset)
        elif self.rel_bias is not None:
            bias = self.rel_bias(t, tk, offset)
        mask = None
        if padding_mask is not None:
            m = padding_mask.data if isinstance(padding_mask, Tensor) else np.asarray(padding_mask)
            if m.shape != (b, tk):
                raise ValueError(f"MultiHeadAttention: padding_mask of shape {m.shape}, "
                                 f"expected {(b, tk)}")
            mask = m.astype(bool)[:, None, None, :]
        y = functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal, bias=bias, dropout_p=self.dropout_p,
            training=self.training, generator=self.generator)
        y = y.transpose(1, 2).reshape(b, t, d)
        return self.resid_drop(self.proj(y))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}, relative={self.relative}"
