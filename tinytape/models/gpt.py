"""A GPT-style Transformer language model (decoder-only, causal), after nanoGPT's layout.

    idx (B, T) token ids
    -> token embedding (+ absolute positions unless positions are relative)
    -> n_layers Transformer blocks (causal self-attention)
    -> final layer norm (pre-LN) -> logits (B, T, vocab) through the tied embedding

The same trunk runs bidirectionally (causal=False) as an encoder for classification.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .. import creation
from ..nn import functional as NF
from ..nn import init
from ..nn.layers import Dropout, Embedding, Identity, LayerNorm, Linear
from ..nn.module import Module, ModuleList, evaluating
from ..nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from ..nn.transformer import TransformerBlock
from ..numeric import softmax
from ..tensor import Tensor

POSITIONAL = ("learned", "sinusoidal", "rotary", "alibi", "relative", "none")


@dataclass
class GPTConfig:
    vocab_size: int = 96
    context_length: int = 64
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int | None = None  # default 4 * d_model
    dropout: float = 0.0
    positional: str = "learned"  # learned | sinusoidal | rotary | alibi | relative | none
    norm: str = "pre"  # pre | post
    tie_weights: bool = True
    bias: bool = True
    causal: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"GPTConfig: {name} must be positive, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"GPTConfig: d_model {self.d_model} is not divisible by n_heads "
                             f"{self.n_heads}")
        if self.positional not in POSITIONAL:
            raise ValueError(f"GPTConfig: positional must be one of {POSITIONAL}, "
                             f"got {self.positional!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig: dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GPT(Module):
    """Decoder-only Transformer LM. forward(idx, targets) -> (logits, loss or None)."""

    def __init__(self, config: GPTConfig, generator: Any = None, dtype: Any = np.float32
                 ) -> None:
        super().__init__()
        self.config = config
        c = config
        gen = creation._generator(generator) if generator is not None else None
        relative = c.positional if c.positional in ("rotary", "alibi", "relative") else None
        self.wte = Embedding(c.vocab_size, c.d_model, gen, dtype)
        if c.positional == "learned":
            self.wpe = LearnedPositionalEmbedding(c.context_length, c.d_model, gen, dtype=dtype)
        elif c.positional == "sinusoidal":
            self.wpe = SinusoidalPositionalEncoding(c.d_model, c.context_length, dtype)
        else:
            self.wpe = None
        self.drop = Dropout(c.dropout, gen)
        self.blocks = ModuleList([
            TransformerBlock(c.d_model, c.n_heads, c.d_ff, c.dropout, c.norm, c.bias, relative,
                             c.context_length, gen, dtype) for _ in range(c.n_layers)])
        self.ln_f = LayerNorm(c.d_model, dtype=dtype) if c.norm == "pre" else Identity()
        self.lm_head = None if c.tie_weights else Linear(c.d_model, c.vocab_size, False, gen,
                                                         dtype)
        self._init_weights(gen)

    def _init_weights(self, gen: Any) -> None:
        """GPT-2: N(0, 0.02) for weights, zero biases, residual projections scaled by
        1/sqrt(2 n_layers) so the residual stream's variance does not grow with depth."""
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                init.zeros_(p)
            elif name.endswith(("ln1.weight", "ln2.weight", "ln_f.weight")):
                init.ones_(p)
            elif name.endswith(("attn.proj.weight", "ffn.2.weight")):
                init.normal_(p, 0.0, 0.02 / math.sqrt(2 * self.config.n_layers), gen)
            elif p.ndim >= 2 and "rel_bias" not in name:
                init.normal_(p, 0.0, 0.02, gen)

    # ------------------------------------------------------------ forward
    def features(self, idx: Any, padding_mask: Any = None, caches: list[dict] | None = None
                 ) -> Tensor:
        """Hidden states (B, T, d_model) after the final norm."""
        ids = idx.data if isinstance(idx, Tensor) else np.asarray(idx)
        if ids.ndim != 2:
            raise ValueError(f"GPT: idx must be (batch, time) token ids, got shape {ids.shape}")
        if ids.dtype.kind not in "iu":
            raise TypeError(f"GPT: idx must be integer token ids, got dtype {ids.dtype}")
        offset = caches[0]["k"].shape[2] if caches and "k" in caches[0] else 0
        t = ids.shape[1]
        if offset + t > self.config.context_length:
            raise ValueError(f"GPT: sequence of {offset + t} tokens is longer than the context "
                             f"length {self.config.context_length}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.config.vocab_size):
            raise ValueError(f"GPT: token ids must be in [0, {self.config.vocab_size}), got "
                             f"min {ids.min()} max {ids.max()}")
        x = self.wte(ids)
        if self.wpe is not None:
            x = self.wpe(x, offset)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, self.config.causal, padding_mask, caches[i] if caches else None)
        return self.ln_f(x)

    def logits_from_features(self, h: Tensor) -> Tensor:
        if self.lm_head is not None:
            return self.lm_head(h)
        return h @ self.wte.weight.transpose()

    def forward(self, idx: Any, targets: Any = None, ignore_index: int = -100,
                caches: list[dict] | None = None) -> tuple[Tensor, Tensor | None]:
        """logits (B, T, vocab); loss = mean cross-entropy against targets (B, T) if given."""
        logits = self.logits_from_features(self.features(idx, caches=caches))
        loss = None
        if targets is not None:
            loss = NF.cross_entropy(logits, targets, ignore_index=ignore_index)
        return logits, loss

    # ------------------------------------------------------------ generation
    def new_caches(self) -> list[dict]:
        """Empty key/value caches, one per block."""
        return [{} for _ in self.blocks]

    def generate(self, idx: Any, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: Any = None, use_cache: bool = True
                 ) -> np.ndarray:
        """Extend idx (B, T) by max_new_tokens sampled tokens; returns (B, T + new) ids.

        temperature 0 picks the most likely token (greedy); top_k keeps only the k most
        likely. With use_cache, keys and values of earlier positions are kept instead of
        recomputed (the logits are the same); once the context is full, the window slides
        and the model recomputes over the last context_length tokens.
        """
        if max_new_tokens < 0:
            raise ValueError(f"generate: max_new_tokens must be >= 0, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"generate: temperature must be >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"generate: top_k must be >= 1, got {top_k}")
        rng = creation._generator(generator)
        ids = np.array(idx.data if isinstance(idx, Tensor) else idx, dtype=np.int64)
        if ids.ndim == 1:
            ids = ids[None]
        ctx = self.config.context_length
        caches, fed = None, 0
        with evaluating(self):
            for _ in range(max_new_tokens):
                if use_cache and caches is not None and ids.shape[1] <= ctx:
                    logits = self.forward(ids[:, fed:], caches=caches)[0]
                else:
                    window = ids[:, -ctx:]
                    caches = self.new_caches() if use_cache and ids.shape[1] < ctx else None
                    logits = self.forward(window, caches=caches)[0]
                fed = ids.shape[1]
                nxt = sample_next(logits.numpy()[:, -1, :], temperature, top_k, rng)
                ids = np.concatenate([ids, nxt[:, None]], axis=1)
        return ids


def sample_next(logits: np.ndarray, temperature: float, top_k: int | None,
                rng: np.random.Generator) -> np.ndarray:
    """One token id per row of logits (B, vocab)."""
    logits = logits.astype(np.float64)
    if temperature == 0:
        return logits.argmax(axis=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = np.partition(logits, -top_k, axis=-1)[:, -top_k][:, None]
        logits = np.where(logits < kth, -np.inf, logits)
    p = softmax(logits)
    u = rng.random((logits.shape[0], 1))
    return np.minimum((p.cumsum(axis=-1) < u).sum(axis=-1), logits.shape[-1] - 1)
