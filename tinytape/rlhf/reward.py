"""Step 2: comparison data and a reward model trained on rankings.

For each prompt, K responses (K drawn from 4..9) are sampled from the supervised policy and a
labeler ranks them. All C(K, 2) pairs of one ranking go into one batch element, with
InstructGPT's loss

    loss(theta) = -1 / C(K, 2) * E_(x, y_w, y_l) [log sigmoid(r(x, y_w) - r(x, y_l))]

averaged over the prompts of a minibatch: each prompt weighs the same whatever its K, and
the correlated pairs of one ranking are not spread over many updates (which overfits).

The reward model is the LM trunk (initialized from the supervised model) with a scalar head
reading the hidden state of the last token. After training, the head is shifted and scaled so
that rewards of samples from the supervised policy have mean 0 and std 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from math import comb

import numpy as np

from ..autograd.grad_mode import no_grad
from ..models import GPT
from ..nn.layers import Linear
from ..nn.module import Module
from ..ops import reshape, softplus
from ..optim import make_optimizer, make_schedule
from ..tensor import Tensor
from ..train.trainer import Trainer
from .policy import sample_responses
from .task import Labeler, Task


@dataclass
class Comparisons:
    """Rankings: prompts[i] with ranked[i] (K_i, L), best response first."""

    prompts: np.ndarray
    ranked: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ranked)

    def subset(self, idx: np.ndarray) -> Comparisons:
        return Comparisons(self.prompts[idx], [self.ranked[i] for i in idx])

    @property
    def n_pairs(self) -> int:
        return sum(comb(len(r), 2) for r in self.ranked)

    def flat(self, task: Task, idx: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For the rankings `idx`: sequences (sum K, T), then per pair the rows of the winner
        and of the loser, the pair's weight 1 / C(K, 2), and the prompt (ranking) it is from."""
        idx = np.arange(len(self)) if idx is None else idx
        seqs, win, lose, weight, group = [], [], [], [], []
        start = 0
        for g, i in enumerate(idx):
            ranked = self.ranked[i]
            k = len(ranked)
            seqs.append(task.join(np.repeat(self.prompts[i][None], k, axis=0), ranked))
            a, b = np.triu_indices(k, 1)  # a ranked above b
            win.append(start + a)
            lose.append(start + b)
            weight.append(np.full(len(a), 1.0 / comb(k, 2)))
            group.append(np.full(len(a), g))
            start += k
        return (np.concatenate(seqs), np.concatenate(win), np.concatenate(lose),
                np.concatenate(weight), np.concatenate(group))


def sample_candidates(lm: GPT, prompts: np.ndarray, task: Task, rng: np.random.Generator,
                      k_range: tuple[int, int] = (4, 9), temperature: float = 1.0,
                      oversample: int = 3) -> list[np.ndarray]:
    """K ~ U{k_range} distinct responses per prompt (labelers rank distinct outputs), in
    sampling order: oversample * K_max samples per prompt in one batch, duplicates dropped."""
    ks = rng.integers(k_range[0], k_range[1] + 1, len(prompts))
    n = oversample * k_range[1]
    ys = sample_responses(lm, np.repeat(prompts, n, axis=0), task, temperature, rng)
    out = []
    for i, k in enumerate(ks):
        block = ys[i * n:(i + 1) * n]
        _, first = np.unique(task.response_index(block), return_index=True)
        out.append(block[np.sort(first)[:k]])
    return out


def label(prompts: np.ndarray, candidates: list[np.ndarray], labeler: Labeler) -> Comparisons:
    """The labeler ranks each prompt's candidates, best first."""
    ranked = [ys[labeler.rank(x, ys)] for x, ys in zip(prompts, candidates)]
    return Comparisons(np.asarray(prompts), ranked)


def candidate_deltas(prompts: np.ndarray, candidates: list[np.ndarray], task: Task
                     ) -> np.ndarray:
    """True-reward differences of every pair of candidates (to calibrate the labelers)."""
    out = []
    for x, ys in zip(prompts, candidates):
        r = task.true_reward(x[None], ys)
        a, b = np.triu_indices(len(ys), 1)
        out.append(r[a] - r[b])
    return np.concatenate(out)


# ---------------------------------------------------------------- the model
class RewardModel(Module):
    """r(x, y): the LM trunk, then a scalar head on the last token's hidden state.

    The head starts from Linear's usual random init, not zeros: with a zero head the trunk
    gets no gradient at first, and training sat near chance for several epochs."""

    def __init__(self, trunk: GPT, seed: int = 0) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = Linear(trunk.config.d_model, 1, generator=seed)

    def forward(self, seqs: np.ndarray) -> Tensor:
        """Rewards (B,) of full sequences (B, T)."""
        h = self.trunk.features(seqs)
        r = self.head(h[:, -1, :])
        return reshape(r, r.shape[0])

    @no_grad()
    def score(self, seqs: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Rewards as float64, in chunks, without recording."""
        return np.concatenate([self(seqs[i:i + chunk]).numpy().astype(np.float64)
                               for i in range(0, len(seqs), chunk)]) if len(seqs) else \
            np.zeros(0)

    def normalize_(self, seqs: np.ndarray) -> tuple[float, float]:
        """Shift and scale the head so rewards of `seqs` have mean 0 and std 1; returns the
        (mean, std) before."""
        r = self.score(seqs)
        mean, std = float(r.mean()), float(r.std() + 1e-8)
        self.head.weight.data[...] /= std
        self.head.bias.data[...] = (self.head.bias.data - mean) / std
        return mean, std


def ranking_loss(rewards: Tensor, win: np.ndarray, lose: np.ndarray, weight: np.ndarray,
                 n_prompts: int) -> Tensor:
    """InstructGPT's loss: mean over prompts of -1/C(K,2) sum over its pairs of
    log sigmoid(r_w - r_l); -log sigmoid(z) = softplus(-z)."""
    z = rewards[lose] - rewards[win]
    w = Tensor(weight.astype(rewards.dtype))
    return (softplus(z) * w).sum() * (1.0 / n_prompts)


def pairwise_accuracy(scores: np.ndarray, win: np.ndarray, lose: np.ndarray) -> float:
    """Fraction of labeled pairs the scores order the same way (ties count one half)."""
    d = scores[win] - scores[lose]
    return float(np.mean((d > 0) + 0.5 * (d == 0)))


def noise_ceiling(comps: Comparisons, task: Task, tau: float) -> tuple[float, float]:
    """How well the true reward itself predicts these noisy labels: (measured accuracy on the
    labels, expected accuracy E[max(p, 1 - p)] with p = sigmoid(delta / tau))."""
    seqs, win, lose, _, _ = comps.flat(task)
    x, y = seqs[:, :task.P], seqs[:, task.P + 1:]
    r = task.true_reward(x, y)
    d = r[win] - r[lose]
    p = np.exp(-np.logaddexp(0.0, -np.abs(d) / tau))  # sigmoid(|delta| / tau), stable
    return pairwise_accuracy(r, win, lose), float(np.mean(p))


@dataclass
class RewardTraining:
    """What train_reward_model records."""

    losses: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    heldout_acc: list[float] = field(default_factory=list)


def train_reward_model(rm: RewardModel, train: Comparisons, task: Task, epochs: int,
                       prompts_per_batch: int, lr: float, rng: np.random.Generator,
                       heldout: Comparisons | None = None,
                       log: Callable[[str], None] | None = None) -> RewardTraining:
    """AdamW on the ranking loss, one prompt's whole ranking per batch element (the shared
    Trainer sweeps shuffled epochs of rankings); accuracies are measured after each epoch."""
    opt = make_optimizer(list(rm.parameters()), "adamw", lr=lr)
    steps_per_epoch = max(1, -(-len(train) // prompts_per_batch))
    total = max(2, epochs * steps_per_epoch)
    sched = make_schedule(opt, total, warmup=0.1, min_lr_ratio=0.1)
    hist = RewardTraining()
    all_train = train.flat(task)
    all_held = heldout.flat(task) if heldout is not None and len(heldout) else None

    def loss_fn(batch: tuple[np.ndarray], _rng: np.random.Generator) -> Tensor:
        seqs, win, lose, weight, _ = train.flat(task, batch[0])
        loss = ranking_loss(rm(seqs), win, lose, weight, len(batch[0]))
        hist.losses.append(float(loss.item()))
        return loss

    def eval_fn() -> dict[str, float]:
        hist.train_acc.append(pairwise_accuracy(rm.score(all_train[0]), *all_train[1:3]))
        out = {"train_acc": hist.train_acc[-1]}
        if all_held is not None:
            hist.heldout_acc.append(pairwise_accuracy(rm.score(all_held[0]), *all_held[1:3]))
            out["heldout_acc"] = hist.heldout_acc[-1]
        if log:
            held = f"  held-out acc {hist.heldout_acc[-1]:.3f}" if all_held is not None else ""
            recent = np.mean(hist.losses[-steps_per_epoch:])
            log(f"  epoch {len(hist.train_acc):2d}/{epochs}  loss {recent:.4f}  train acc "
                f"{hist.train_acc[-1]:.3f}{held}")
        return out

    Trainer(rm, opt, (np.arange(len(train)),), steps=total, loss_fn=loss_fn,
            batch_size=prompts_per_batch, seed=int(rng.integers(2 ** 31)), scheduler=sched,
            clip_grad_norm=1.0, eval_fn=eval_fn, eval_every=steps_per_epoch, progress=False,
            name="reward model").fit()
    rm.eval()
    return hist
