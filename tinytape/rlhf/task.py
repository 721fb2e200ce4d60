"""The toy instruction-following task that stands in for real prompts, people and preferences.

Tokens are `n_symbols` symbols (ids 0..S-1, shown as letters) and one separator SEP (id S).
A sequence is `prompt SEP response`: a prompt of `prompt_len` distinct symbols and a response
of `response_len` symbols, so the response space is small enough to enumerate (S ** L).

The programmatic "true" preference (never shown to the policy, only to the simulated
labelers and to the evaluation) asks for the prompt's symbols, in ascending order, without
repeating oneself:

    r*(x, y) = (# distinct prompt symbols in y) + 0.5 * (# ascending neighbours y_i < y_i+1)
               - 1.0 * (# repeated neighbours y_i == y_i+1)

Three sources of text, as in the lecture's pipeline:
- "web text" for pretraining: the response is loosely related to the prompt;
- demonstrations written by labelers (step 1): a shuffled copy of the prompt, each symbol
  replaced by a random one with probability `demo_noise`;
- rankings (step 2): a labeler orders K responses by a Plackett-Luce draw with scores
  r*/tau. Its pairwise marginals are exactly Bradley-Terry,
  P(y_i ranked above y_j) = sigmoid((r*_i - r*_j) / tau), and tau is calibrated so that two
  independent labelers agree on about 73% of pairs (InstructGPT's inter-labeler agreement).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TaskConfig:
    """Sizes of the task. The response space has n_symbols ** response_len members."""

    n_symbols: int = 8
    prompt_len: int = 3
    response_len: int = 3
    n_validation_sets: int = 8
    n_test_sets: int = 10
    demo_noise: float = 0.3
    web_relevance: float = 0.3

    def __post_init__(self) -> None:
        if self.n_symbols < 2 or self.prompt_len < 1 or self.response_len < 1:
            raise ValueError(f"TaskConfig: sizes must be positive (symbols >= 2), got {self}")
        if self.prompt_len > self.n_symbols:
            raise ValueError("TaskConfig: prompts use distinct symbols, so prompt_len must be "
                             f"<= n_symbols, got {self.prompt_len} > {self.n_symbols}")
        n_sets = math.comb(self.n_symbols, self.prompt_len)
        if min(self.n_validation_sets, self.n_test_sets) < 1 or \
                self.n_validation_sets + self.n_test_sets >= n_sets:
            raise ValueError(f"TaskConfig: {n_sets} symbol sets of {self.prompt_len} of "
                             f"{self.n_symbols} symbols cannot give {self.n_validation_sets} "
                             f"validation and {self.n_test_sets} test sets (each >= 1) and "
                             "leave at least one for training")


class Task:
    """Prompts, the true reward, demonstrations, web text and the response space.

    The true reward depends on a prompt only through its set of symbols (the orderings of
    one set share their whole reward table), so the splits hold out whole symbol sets: the
    validation and test prompts are every ordering of sets that no training prompt uses, and
    their reward tables are never seen in SFT, comparisons or PPO."""

    def __init__(self, config: TaskConfig | None = None, seed: int = 0) -> None:
        self.config = c = config or TaskConfig()
        self.S, self.P, self.L = c.n_symbols, c.prompt_len, c.response_len
        self.sep = self.S
        self.vocab_size = self.S + 1
        self.seq_len = self.P + 1 + self.L
        rng = np.random.default_rng(seed)
        sets = list(itertools.combinations(range(self.S), self.P))
        order = rng.permutation(len(sets))
        n_val, n_test = c.n_validation_sets, c.n_test_sets
        split = {"validation": order[:n_val], "test": order[n_val:n_val + n_test],
                 "train": order[n_val + n_test:]}

        def orderings(which: np.ndarray) -> np.ndarray:
            out = [p for i in which for p in itertools.permutations(sets[i])]
            return np.array(out, dtype=np.int64)[rng.permutation(len(out))]

        #: the symbol sets (sorted tuples) of each split: disjoint
        self.symbol_sets = {k: [sets[i] for i in v] for k, v in split.items()}
        self.train_prompts = orderings(split["train"])
        self.val_prompts = orderings(split["validation"])
        self.test_prompts = orderings(split["test"])
        #: every response, in lexicographic order (index = sum y_t * S ** (L - 1 - t))
        self.responses = np.array(list(itertools.product(range(self.S), repeat=self.L)),
                                  dtype=np.int64)

    # ------------------------------------------------------------ sequences
    def join(self, prompts: np.ndarray, responses: np.ndarray, end: bool = False
             ) -> np.ndarray:
        """(B, P) prompts and (B, L) responses -> (B, P + 1 + L) token ids; with end, one more
        SEP closes the response (the LM learns where a response ends)."""
        sep = np.full((len(prompts), 1), self.sep, dtype=np.int64)
        parts = [prompts, sep, responses] + ([sep] if end else [])
        return np.concatenate(parts, axis=1).astype(np.int64)

    def response_index(self, responses: np.ndarray) -> np.ndarray:
        """Position of each response (..., L) in `self.responses`."""
        weights = self.S ** np.arange(self.L - 1, -1, -1)
        return (np.asarray(responses) * weights).sum(axis=-1)

    def show(self, tokens: np.ndarray) -> str:
        """Symbols as letters, SEP as '|'."""
        return "".join("|" if t == self.sep else chr(ord("a") + int(t)) for t in tokens)

    # ------------------------------------------------------------ the true preference
    def true_reward(self, prompts: np.ndarray, responses: np.ndarray) -> np.ndarray:
        """r*(x, y) for prompts (..., P) and responses (..., L) (broadcast over leading axes)."""
        x = np.asarray(prompts)[..., :, None]  # (..., P, 1)
        y = np.asarray(responses)
        present = (y[..., None, :] == x).any(axis=-1)  # (..., P): prompt symbol i is in y
        coverage = present.sum(axis=-1)
        ascending = (y[..., 1:] > y[..., :-1]).sum(axis=-1)
        repeats = (y[..., 1:] == y[..., :-1]).sum(axis=-1)
        return coverage + 0.5 * ascending - 1.0 * repeats

    def true_reward_table(self, prompts: np.ndarray) -> np.ndarray:
        """r* of every response for every prompt: (n_prompts, S ** L)."""
        return self.true_reward(prompts[:, None, :], self.responses[None, :, :])

    # ------------------------------------------------------------ text sources
    def web_text(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Pretraining sequences: random prompts; each response symbol is a random prompt
        symbol with probability web_relevance, otherwise a uniformly random symbol."""
        prompts = np.array([rng.permutation(self.S)[:self.P] for _ in range(n)], np.int64)
        copy = rng.random((n, self.L)) < self.config.web_relevance
        from_prompt = prompts[np.arange(n)[:, None], rng.integers(0, self.P, (n, self.L))]
        responses = np.where(copy, from_prompt, rng.integers(0, self.S, (n, self.L)))
        return self.join(prompts, responses, end=True)

    def demonstrations(self, prompts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Labeler-written responses (B, L): the prompt's symbols in a random order (cycled if
        L > P), each replaced by a uniformly random symbol with probability demo_noise."""
        n = len(prompts)
        order = np.argsort(rng.random((n, self.P)), axis=1)
        cols = order[:, np.arange(self.L) % self.P]
        responses = prompts[np.arange(n)[:, None], cols]
        noise = rng.random((n, self.L)) < self.config.demo_noise
        return np.where(noise, rng.integers(0, self.S, (n, self.L)), responses)


# ---------------------------------------------------------------- simulated labelers
def pairwise_agreement(deltas: np.ndarray, tau: float) -> float:
    """Probability that two independent Bradley-Terry labelers (temperature tau) order a pair
    the same way, averaged over pairs with true-reward differences `deltas`:
    E[p^2 + (1 - p)^2] with p = sigmoid(delta / tau)."""
    p = np.exp(-np.logaddexp(0.0, -np.asarray(deltas, np.float64) / tau))  # stable sigmoid
    return float(np.mean(p * p + (1 - p) * (1 - p)))


def calibrate_tau(deltas: np.ndarray, target: float = 0.73) -> float:
    """The labeler temperature whose pairwise agreement is `target` on these pairs (bisection
    in log tau: agreement falls from its tie-limited maximum towards 0.5 as tau grows)."""
    deltas = np.asarray(deltas, np.float64)
    if not 0.5 < target < 1.0:
        raise ValueError(f"calibrate_tau: target must be in (0.5, 1), got {target}")
    best = pairwise_agreement(deltas, 1e-6)
    if best <= target:
        raise ValueError(f"calibrate_tau: even noiseless labelers agree only {best:.3f} < "
                         f"{target} here (too many ties in the true reward)")
    lo, hi = -6.0, 6.0  # log tau
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if pairwise_agreement(deltas, float(np.exp(mid))) > target:
            lo = mid
        else:
            hi = mid
    return float(np.exp(0.5 * (lo + hi)))


class Labeler:
    """Ranks responses best to worst by a Plackett-Luce draw with scores r* / tau (the
    Gumbel-max trick: sort r*/tau + Gumbel noise). tau -> 0 is a perfect labeler."""

    def __init__(self, task: Task, tau: float, rng: np.random.Generator) -> None:
        self.task, self.tau, self.rng = task, tau, rng

    def rank(self, prompt: np.ndarray, responses: np.ndarray) -> np.ndarray:
        """Indices of `responses` (K, L) from best to worst."""
        r = self.task.true_reward(prompt[None, :], responses)
        gumbel = -np.log(-np.log(self.rng.random(len(responses))))
        return np.argsort(-(r / self.tau + gumbel), kind="stable")
