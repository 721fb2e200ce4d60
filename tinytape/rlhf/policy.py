"""The language model as a policy over responses: log-probabilities, sampling, exact tables.

The policy's actions are the S symbols: at each response position the logits of the S symbol
tokens (not SEP) are divided by the sampling temperature and normalized, in sampling, in the
PPO/DPO losses and in the exact tables alike, so pi(y | x) always means the same thing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import numeric
from ..autograd.grad_mode import no_grad
from ..models import GPT, GPTConfig
from ..nn.layers import Linear
from ..nn.module import Module
from ..ops import log_softmax, reshape
from ..tensor import Tensor
from .task import Task


def make_lm(task: Task, d_model: int = 32, n_layers: int = 2, n_heads: int = 4,
            seed: int = 0) -> GPT:
    """A small GPT over the task's tokens, dropout off (RL needs pi_old == pi at step 0)."""
    config = GPTConfig(vocab_size=task.vocab_size, context_length=task.seq_len + 1,
                       d_model=d_model, n_layers=n_layers, n_heads=n_heads, dropout=0.0)
    return GPT(config, generator=seed)


def clone_lm(model: GPT) -> GPT:
    """An independent copy with the same weights."""
    copy = GPT(model.config, generator=0)
    copy.load_state_dict(model.state_dict())
    copy.train(model.training)
    return copy


def response_logprobs_from_hidden(lm: GPT, h: Tensor, task: Task, temperature: float
                                  ) -> Tensor:
    """Log-probs (B, L, S) over the symbols at the L response positions, from hidden states
    (B, T, D) of sequences `prompt SEP response` (position P + t predicts y_t+1)."""
    hr = h[:, task.P:task.P + task.L, :]
    logits = lm.logits_from_features(hr)[:, :, :task.S]
    if temperature != 1.0:
        logits = logits * (1.0 / temperature)
    return log_softmax(logits, axis=-1)


def gather_tokens(logp_all: Tensor, tokens: np.ndarray) -> Tensor:
    """logp_all (B, L, S), tokens (B, L) -> the chosen tokens' log-probs (B, L)."""
    b, length = tokens.shape
    return logp_all[np.arange(b)[:, None], np.arange(length)[None, :], tokens]


def sequence_logprobs(lm: GPT, seqs: np.ndarray, task: Task, temperature: float = 1.0
                      ) -> Tensor:
    """log pi(y | x) per token (B, L) for full sequences (B, P + 1 + L)."""
    h = lm.features(seqs)
    return gather_tokens(response_logprobs_from_hidden(lm, h, task, temperature),
                         seqs[:, task.P + 1:])


@no_grad()
def sample_responses(lm: GPT, prompts: np.ndarray, task: Task, temperature: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Sample (B, L) responses token by token from softmax(symbol logits / temperature)."""
    seqs = task.join(prompts, np.zeros((len(prompts), 0), np.int64))
    for _ in range(task.L):
        logits = lm(seqs)[0].numpy()[:, -1, :task.S].astype(np.float64) / temperature
        logits -= logits.max(axis=-1, keepdims=True)
        gumbel = -np.log(-np.log(rng.random(logits.shape)))
        nxt = np.argmax(logits + gumbel, axis=-1)
        seqs = np.concatenate([seqs, nxt[:, None]], axis=1)
    return seqs[:, task.P + 1:]


@no_grad()
def exact_logprobs(lm: GPT, prompts: np.ndarray, task: Task, temperature: float = 1.0,
                   chunk: int = 4096) -> np.ndarray:
    """log pi(y | x) for every response y (n_prompts, S ** L), float64.

    One forward pass per prompt and response prefix y_1..y_L-1 (S ** (L - 1) of them) gives
    every conditional needed: log pi(y) = sum_t log pi(y_t | x, y_<t)."""
    S, L = task.S, task.L
    prefixes = task.responses[::S, :L - 1]  # (S ** (L-1), L-1), lexicographic
    n, m = len(prompts), len(prefixes)
    seqs = task.join(np.repeat(prompts, m, axis=0), np.tile(prefixes, (n, 1)))
    out = np.empty((n * m, L, S), np.float64)
    for i in range(0, len(seqs), chunk):
        h = lm.features(seqs[i:i + chunk])
        hr = h[:, task.P:task.P + L, :]
        logits = lm.logits_from_features(hr).numpy()[:, :, :S].astype(np.float64)
        out[i:i + chunk] = numeric.log_softmax(logits / temperature)
    out = out.reshape(n, m, L, S)
    ys = task.responses  # (M, L)
    prefix_idx = np.arange(len(ys)) // S  # response index -> its prefix's index
    total = np.zeros((n, len(ys)))
    for t in range(L):
        total += out[:, prefix_idx, t, ys[:, t]]
    return total


class PolicyWithValue(Module):
    """The policy LM and a scalar value head on the same trunk (one forward pass for both).
    The head reads the state before each response token: V(s_t) at position P + t."""

    def __init__(self, lm: GPT, seed: int = 0) -> None:
        super().__init__()
        self.lm = lm
        self.v_head = Linear(lm.config.d_model, 1, generator=seed)
        self.v_head.weight.data[...] = 0.0
        self.v_head.bias.data[...] = 0.0

    def forward(self, seqs: np.ndarray, task: Task, temperature: float = 1.0
                ) -> tuple[Tensor, Tensor]:
        """(log-probs over symbols (B, L, S), values (B, L)) for sequences (B, P + 1 + L)."""
        h = self.lm.features(seqs)
        logp = response_logprobs_from_hidden(self.lm, h, task, temperature)
        v = self.v_head(h[:, task.P:task.P + task.L, :])
        return logp, reshape(v, v.shape[0], v.shape[1])


def numpy_of(x: Any) -> np.ndarray:
    """A Tensor's array (or the array itself)."""
    return x.numpy() if isinstance(x, Tensor) else np.asarray(x)
