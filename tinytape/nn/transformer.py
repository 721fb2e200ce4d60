"""A Transformer block: attention, feed-forward network, layer norm, residual connections."""

from __future__ import annotations

from typing import Any

from ..creation import DEFAULT_FLOAT
from ..tensor import Tensor
from .attention import MultiHeadAttention
from .layers import GELU, Dropout, LayerNorm, Linear
from .module import Module, Sequential


class FeedForward(Sequential):
    """Linear(d, d_ff) -> GELU -> Linear(d_ff, d) -> Dropout."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, bias: bool = True,
                 generator: Any = None, dtype: Any = DEFAULT_FLOAT) -> None:
        super().__init__(Linear(d_model, d_ff, bias, generator, dtype), GELU(),
                         Linear(d_ff, d_model, bias, generator, dtype), Dropout(dropout, generator))

    @property
    def activation(self) -> GELU:
        """The GELU: its outputs (..., d_ff) are the hidden units."""
        return self[1]


class TransformerBlock(Module):
    """norm="pre" (GPT-2):  x + attn(ln1(x)), then x + ffn(ln2(x)).
    norm="post" (the original Transformer): ln1(x + attn(x)), then ln2(x + ffn(x))."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int | None = None,
                 dropout: float = 0.0, norm: str = "pre", bias: bool = True,
                 relative: str | None = None, max_len: int = 1024, generator: Any = None,
                 dtype: Any = DEFAULT_FLOAT) -> None:
        super().__init__()
        if norm not in ("pre", "post"):
            raise ValueError(f"TransformerBlock: norm must be 'pre' or 'post', got {norm!r}")
        self.norm = norm
        self.ln1 = LayerNorm(d_model, dtype=dtype)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout, bias, relative, max_len,
                                       generator, dtype)
        self.ln2 = LayerNorm(d_model, dtype=dtype)
        self.ffn = FeedForward(d_model, d_ff or 4 * d_model, dropout, bias, generator, dtype)

    def forward(self, x: Tensor, is_causal: bool = False, padding_mask: Any = None,
                cache: dict | None = None) -> Tensor:
        if self.norm == "pre":
            x = x + self.attn(self.ln1(x), is_causal, padding_mask, cache)
            return x + self.ffn(self.ln2(x))
        x = self.ln1(x + self.attn(x, is_causal, padding_mask, cache))
        return self.ln2(x + self.ffn(x))

    def extra_repr(self) -> str:
        return f"norm={self.norm}"
