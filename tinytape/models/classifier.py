"""A sequence classifier: a Transformer trunk, pooled, then a linear head."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..nn.layers import Dropout, Linear
from ..nn.module import Module
from ..tensor import Tensor
from .gpt import GPT, GPTConfig


class SequenceClassifier(Module):
    """trunk.features(idx) -> pool over tokens -> Linear(d_model, num_classes).

    pooling: "mean" over real tokens (padding_mask True), or "last" (the last real token,
    natural for a causal trunk, where only it has seen the whole text).
    Make an encoder with `SequenceClassifier.encoder(config, num_classes)` (a bidirectional
    trunk), or wrap a pretrained GPT to fine-tune it.
    """

    def __init__(self, trunk: GPT, num_classes: int, pooling: str = "mean",
                 dropout: float = 0.0, generator: Any = None) -> None:
        super().__init__()
        if pooling not in ("mean", "last"):
            raise ValueError(f"SequenceClassifier: pooling must be 'mean' or 'last', "
                             f"got {pooling!r}")
        self.trunk, self.pooling = trunk, pooling
        self.drop = Dropout(dropout, generator)
        dtype = trunk.wte.weight.dtype
        self.head = Linear(trunk.config.d_model, num_classes, generator=generator, dtype=dtype)

    @classmethod
    def encoder(cls, config: GPTConfig, num_classes: int, pooling: str = "mean",
                generator: Any = None) -> SequenceClassifier:
        """A bidirectional Transformer encoder with a classification head."""
        config = GPTConfig(**{**config.to_dict(), "causal": False})
        return cls(GPT(config, generator), num_classes, pooling, config.dropout, generator)

    def forward(self, idx: Any, padding_mask: Any = None) -> Tensor:
        """idx (B, T) ids; padding_mask (B, T) bool, True for real tokens. -> logits (B, C)."""
        ids = idx.data if isinstance(idx, Tensor) else np.asarray(idx)
        mask = np.ones(ids.shape, bool) if padding_mask is None else np.asarray(
            padding_mask.data if isinstance(padding_mask, Tensor) else padding_mask, bool)
        if mask.shape != ids.shape:
            raise ValueError(f"SequenceClassifier: padding_mask {mask.shape} does not match "
                             f"idx {ids.shape}")
        h = self.trunk.features(ids, padding_mask=None if padding_mask is None else mask)
        if self.pooling == "mean":
            w = mask / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            pooled = (h * Tensor._wrap(w[..., None].astype(h.dtype))).sum(axis=1)
        else:
            last = np.maximum(mask.sum(axis=1) - 1, 0)
            pooled = h[np.arange(ids.shape[0]), last]
        return self.head(self.drop(pooled))
