"""DPO (Rafailov et al. 2023): the alternative to steps 2 and 3, on the same comparisons.

The KL-regularized optimum pi*(y|x) = pi_ref(y|x) exp(r(x,y) / beta) / Z(x) means a policy
defines an implicit reward r(x, y) = beta log(pi(y|x) / pi_ref(y|x)) + beta log Z(x), and
Z cancels in a Bradley-Terry comparison. So fitting the comparisons with that reward trains
the policy directly, with no reward model and no sampling:

    loss = -log sigmoid(beta [log pi(y_w)/pi_ref(y_w) - log pi(y_l)/pi_ref(y_l)])

Every pair of a ranking is used, weighted 1/C(K, 2) and grouped by prompt as in the reward
model's loss. Log-probabilities are of whole responses (summed over tokens) under the same
temperature as everywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..autograd.grad_mode import no_grad
from ..models import GPT
from ..ops import softplus
from ..optim import make_optimizer, make_schedule
from ..tensor import Tensor
from ..train.trainer import Trainer
from .policy import sequence_logprobs
from .reward import Comparisons, pairwise_accuracy
from .task import Task


def dpo_loss(policy_w: Tensor, policy_l: Tensor, ref_w: np.ndarray, ref_l: np.ndarray,
             beta: float, weight: np.ndarray, n_prompts: int) -> Tensor:
    """Weighted -log sigmoid(beta (margin of policy log-ratios)), averaged over prompts."""
    dtype = policy_w.dtype
    ref_margin = Tensor((np.asarray(ref_w) - np.asarray(ref_l)).astype(dtype))
    z = ((policy_w - policy_l) - ref_margin) * beta
    return (softplus(-z) * Tensor(weight.astype(dtype))).sum() * (1.0 / n_prompts)


@dataclass
class DPOLog:
    """Losses per step, implicit-reward accuracy per epoch, and periodic exact evaluations."""

    losses: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    heldout_acc: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)


@no_grad()
def _seq_logp(lm: GPT, seqs: np.ndarray, task: Task, temperature: float,
              chunk: int = 4096) -> np.ndarray:
    return np.concatenate([sequence_logprobs(lm, seqs[i:i + chunk], task, temperature)
                           .numpy().astype(np.float64).sum(axis=1)
                           for i in range(0, len(seqs), chunk)])


def implicit_accuracy(lm: GPT, ref: GPT, comps: Comparisons, task: Task,
                      temperature: float = 1.0) -> float:
    """Pairwise accuracy of the implicit reward log pi/pi_ref on labeled comparisons."""
    seqs, win, lose, _, _ = comps.flat(task)
    r = _seq_logp(lm, seqs, task, temperature) - _seq_logp(ref, seqs, task, temperature)
    return pairwise_accuracy(r, win, lose)


def train_dpo(policy: GPT, ref: GPT, train: Comparisons, task: Task, beta: float, epochs: int,
              prompts_per_batch: int, lr: float, rng: np.random.Generator,
              temperature: float = 1.0, heldout: Comparisons | None = None,
              evaluate: Callable[[GPT], dict[str, float]] | None = None, eval_every: int = 20,
              log: Callable[[str], None] | None = None) -> DPOLog:
    """DPO on the rankings (the shared Trainer sweeps shuffled epochs of rankings); the
    reference is frozen and its log-probs are computed once."""
    ref.eval()
    all_seqs, all_win, all_lose, _, _ = train.flat(task)
    opt = make_optimizer(list(policy.parameters()), "adamw", lr=lr)
    steps_per_epoch = max(1, -(-len(train) // prompts_per_batch))
    total = max(2, epochs * steps_per_epoch)
    sched = make_schedule(opt, total, warmup=0.1, min_lr_ratio=0.1)
    hist = DPOLog()
    sizes = np.array([len(r) for r in train.ranked])
    ref_by_ranking = np.split(_seq_logp(ref, all_seqs, task, temperature),
                              np.cumsum(sizes)[:-1])
    ref_all = np.concatenate(ref_by_ranking)

    def loss_fn(batch: tuple[np.ndarray], _rng: np.random.Generator) -> Tensor:
        idx = batch[0]
        seqs, win, lose, weight, _ = train.flat(task, idx)
        ref_lp = np.concatenate([ref_by_ranking[i] for i in idx])
        lp = sequence_logprobs(policy, seqs, task, temperature).sum(axis=1)
        loss = dpo_loss(lp[win], lp[lose], ref_lp[win], ref_lp[lose], beta, weight, len(idx))
        hist.losses.append(float(loss.item()))
        return loss

    def eval_fn() -> dict[str, float]:
        step = len(hist.losses)
        out: dict[str, float] = {}
        if evaluate is not None and (step % eval_every == 0 or step == total):
            ev = dict(evaluate(policy))
            ev["step"] = step
            hist.evals.append(ev)
        if step % steps_per_epoch == 0 or step == total:
            r = _seq_logp(policy, all_seqs, task, temperature) - ref_all
            hist.train_acc.append(pairwise_accuracy(r, all_win, all_lose))
            out["train_acc"] = hist.train_acc[-1]
            if heldout is not None:
                hist.heldout_acc.append(implicit_accuracy(policy, ref, heldout, task,
                                                          temperature))
                out["heldout_acc"] = hist.heldout_acc[-1]
            if log:
                held = f"  held-out acc {hist.heldout_acc[-1]:.3f}" if heldout is not None \
                    else ""
                log(f"  epoch {len(hist.train_acc):2d}/{epochs}  loss "
                    f"{np.mean(hist.losses[-steps_per_epoch:]):.4f}  train acc "
                    f"{hist.train_acc[-1]:.3f}{held}")
        return out

    every = int(np.gcd(eval_every, steps_per_epoch)) if evaluate is not None else \
        steps_per_epoch
    Trainer(policy, opt, (np.arange(len(train)),), steps=total, loss_fn=loss_fn,
            batch_size=prompts_per_batch, seed=int(rng.integers(2 ** 31)), scheduler=sched,
            clip_grad_norm=1.0, eval_fn=eval_fn, eval_every=every, progress=False,
            name="dpo").fit()
    policy.eval()
    return hist
