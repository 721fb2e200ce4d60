"""A sequence classifier: a Transformer trunk, pooled, then a linear head."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..nn.layers import Dropout, Linear
from ..nn.module import Module
from ..ops import cat
from ..tensor import Tensor
from .gpt import GPT, GPTConfig

POOLINGS = ("mean", "last", "ffn")


def feature_dim(config: GPTConfig, pooling: str) -> int:
    """Width of the pooled features of a trunk with this config."""
    if pooling == "ffn":
        return config.n_layers * (config.d_ff or 4 * config.d_model)
    return config.d_model


def _ids_and_mask(idx: Any, padding_mask: Any) -> tuple[np.ndarray, np.ndarray]:
    ids = idx.data if isinstance(idx, Tensor) else np.asarray(idx)
    mask = np.ones(ids.shape, bool) if padding_mask is None else np.asarray(
        padding_mask.data if isinstance(padding_mask, Tensor) else padding_mask, bool)
    if mask.shape != ids.shape:
        raise ValueError(f"SequenceClassifier: padding_mask {mask.shape} does not match "
                         f"idx {ids.shape}")
    return ids, mask


def pool(trunk: GPT, idx: Any, padding_mask: Any = None, pooling: str = "mean") -> Tensor:
    """(B, feature_dim) features of a batch of token ids (B, T) from a trunk.

    "mean": the mean over real tokens (padding_mask True) of the final hidden states;
    "last": the last real token's final state; "ffn": the mean over real tokens of every
    block's feed-forward hidden units (after the GELU), concatenated: n_layers * d_ff
    features that keep more of what each token was than the d_model-wide residual stream.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pool: pooling must be one of {POOLINGS}, got {pooling!r}")
    ids, mask = _ids_and_mask(idx, padding_mask)
    hidden: list[Tensor] = []
    hooks = [block.ffn.activation.register_forward_hook(lambda m, args, out: hidden.append(out))
             for block in trunk.blocks] if pooling == "ffn" else []
    try:
        h = trunk.features(ids, padding_mask=None if padding_mask is None else mask)
    finally:
        for hook in hooks:
            hook.remove()
    if pooling == "last":
        return h[np.arange(ids.shape[0]), np.maximum(mask.sum(axis=1) - 1, 0)]
    w = Tensor._wrap((mask / np.maximum(mask.sum(axis=1, keepdims=True), 1))[..., None]
                     .astype(h.dtype))
    if pooling == "mean":
        return (h * w).sum(axis=1)
    return cat([(a * w).sum(axis=1) for a in hidden], axis=-1)


class SequenceClassifier(Module):
    """trunk -> pool over tokens (see `pool`) -> Dropout -> Linear(features, num_classes).

    pooling: "mean" over real tokens, "last" (the last real token, natural for a causal
    trunk, where only it has seen the whole text) or "ffn" (every block's mean hidden units).
    Make an encoder with `SequenceClassifier.encoder(config, num_classes)` (a bidirectional
    trunk), or wrap a pretrained GPT to fine-tune it.
    """

    def __init__(self, trunk: GPT, num_classes: int, pooling: str = "mean",
                 dropout: float = 0.0, generator: Any = None) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"SequenceClassifier: pooling must be one of {POOLINGS}, "
                             f"got {pooling!r}")
        self.trunk, self.pooling = trunk, pooling
        self.drop = Dropout(dropout, generator)
        dtype = trunk.wte.weight.dtype
        self.head = Linear(feature_dim(trunk.config, pooling), num_classes, generator=generator,
                           dtype=dtype)

    @classmethod
    def encoder(cls, config: GPTConfig, num_classes: int, pooling: str = "mean",
                generator: Any = None) -> SequenceClassifier:
        """A bidirectional Transformer encoder with a classification head."""
        config = GPTConfig(**{**config.to_dict(), "causal": False})
        return cls(GPT(config, generator), num_classes, pooling, config.dropout, generator)

    def forward(self, idx: Any, padding_mask: Any = None) -> Tensor:
        """idx (B, T) ids; padding_mask (B, T) bool, True for real tokens. -> logits (B, C)."""
        return self.head(self.drop(pool(self.trunk, idx, padding_mask, self.pooling)))
