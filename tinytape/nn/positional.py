"""Positional information for attention: fixed (sinusoidal), learned absolute, and relative
(rotary embeddings, ALiBi, a learned relative-position bias).

Absolute encodings are added to the token embeddings; relative ones act inside attention
(rotary rotates queries and keys, ALiBi and the learned bias add to the scores), which is
why they take the query offset used with a key/value cache.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..creation import DEFAULT_FLOAT
from ..ops import cat
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


def _check_len(name: str, needed: int, max_len: int) -> None:
    if needed > max_len:
        raise ValueError(f"{name}: positions up to {needed} requested, but max_len is {max_len}")


class SinusoidalPositionalEncoding(Module):
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...), added to x."""

    def __init__(self, d_model: int, max_len: int, dtype: Any = DEFAULT_FLOAT) -> None:
        super().__init__()
        self.max_len = max_len
        pos = np.arange(max_len)[:, None]
        freq = np.exp(-math.log(10000.0) * np.arange(0, d_model, 2) / d_model)
        pe = np.zeros((max_len, d_model))
        pe[:, 0::2] = np.sin(pos * freq)
        pe[:, 1::2] = np.cos(pos * freq[: d_model // 2])
        self.register_table("pe", pe, dtype)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        t = x.shape[-2]
        _check_len("SinusoidalPositionalEncoding", offset + t, self.max_len)
        return x + self.pe[offset: offset + t]


class LearnedPositionalEmbedding(Module):
    """A learned vector per absolute position (GPT-2), added to x."""

    def __init__(self, max_len: int, d_model: int, generator: Any = None, std: float = 0.02,
                 dtype: Any = DEFAULT_FLOAT) -> None:
        super().__init__()
        self.max_len = max_len
        self.weight = Parameter(np.zeros((max_len, d_model), dtype))
        init.normal_(self.weight, 0.0, std, generator)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        t = x.shape[-2]
        _check_len("LearnedPositionalEmbedding", offset + t, self.max_len)
        return x + self.weight[offset: offset + t]


class RotaryEmbedding(Module):
    """Rotary position embedding (RoFormer): rotate pairs (x_i, x_{i+d/2}) of each query and
    key by angle pos * base^(-2i/d), so q.k depends only on the relative position."""

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0,
                 dtype: Any = DEFAULT_FLOAT) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding: head_dim must be even, got {head_dim}")
        self.max_len, self.half = max_len, head_dim // 2
        inv = base ** (-np.arange(self.half) * 2.0 / head_dim)
        angles = np.arange(max_len)[:, None] * inv[None, :]
        self.register_table("cos", np.cos(angles), dtype)
        self.register_table("sin", np.sin(angles), dtype)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """x: (..., T, head_dim) -> the same shape, rotated by position offset..offset+T-1."""
        t = x.shape[-2]
        _check_len("RotaryEmbedding", offset + t, self.max_len)
        cos, sin = self.cos[offset: offset + t], self.sin[offset: offset + t]
        x1, x2 = x[..., : self.half], x[..., self.half:]
        return cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def alibi_slopes(n_heads: int) -> np.ndarray:
    """Geometric slopes 2^(-8 i / n) of ALiBi (Press et al.), for any number of heads."""
    def power_of_two(n):
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_heads).is_integer():
        return np.array(power_of_two(n_heads))
    closest = 2 ** math.floor(math.log2(n_heads))
    extra = power_of_two(2 * closest)[0::2][: n_heads - closest]
    return np.array(power_of_two(closest) + extra)


class ALiBi(Module):
    """Attention with Linear Biases: score(i, j) -= slope_h * |i - j| (no parameters)."""

    def __init__(self, n_heads: int, dtype: Any = DEFAULT_FLOAT) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.register_table("slopes", alibi_slopes(n_heads), dtype)

    def forward(self, tq: int, tk: int, offset: int = 0) -> Tensor:
        """(n_heads, tq, tk) bias for queries at positions offset..offset+tq-1."""
        qpos = np.arange(offset, offset + tq)[:, None]
        kpos = np.arange(tk)[None, :]
        dist = -np.abs(qpos - kpos).astype(self.slopes.dtype)
        return Tensor._wrap(self.slopes.data[:, None, None] * dist[None])


class RelativePositionBias(Module):
    """A learned bias per head and relative distance j - i, clipped to +-max_distance."""

    def __init__(self, n_heads: int, max_distance: int, generator: Any = None,
                 dtype: Any = DEFAULT_FLOAT) -> None:
        super().__init__()
        self.n_heads, self.max_distance = n_heads, max_distance
        self.weight = Parameter(np.zeros((n_heads, 2 * max_distance + 1), dtype))
        init.normal_(self.weight, 0.0, 0.02, generator)

    def forward(self, tq: int, tk: int, offset: int = 0) -> Tensor:
        qpos = np.arange(offset, offset + tq)[:, None]
        rel = np.clip(np.arange(tk)[None, :] - qpos, -self.max_distance, self.max_distance)
        return self.weight[:, rel + self.max_distance]
