"""Step 3: PPO against the reward model with a per-token KL penalty (InstructGPT / Ziegler
et al. 2019).

Each iteration:
1. rollout: sample a response y for a batch of prompts from pi (temperature applied to the
   logits), and record log pi_old(y_t), the values V(s_t), log pi_ref(y_t) of the frozen
   supervised model and the reward model's score r(x, y);
2. rewards per token: r_t = -beta (log pi_old(y_t | s_t) - log pi_ref(y_t | s_t)), plus the
   score at the final token, so that sum_t r_t = r(x, y) - beta * k1 estimate of the KL;
3. GAE (gamma, lambda) gives advantages A_t and returns R_t = A_t + V(s_t); advantages are
   whitened over the batch;
4. a few epochs of minibatch updates of the clipped surrogate
       L_clip = E[max(-A ratio, -A clip(ratio, 1 - eps, 1 + eps))], ratio = pi / pi_old,
   plus vf_coef times the clipped value loss
       L_V = E[max((V - R)^2, (V_old + clip(V - V_old, -eps_v, eps_v) - R)^2)] / 2;
5. the adaptive KL controller moves beta toward a target KL:
       beta <- beta (1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon).
Dropout is off throughout (the models are built without it and kept in eval mode), so
pi_old and pi agree exactly at the first minibatch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..autograd.grad_mode import no_grad
from ..models import GPT
from ..ops import clamp, exp, maximum
from ..optim import Adam, clip_grad_norm_
from ..tensor import Tensor
from .policy import PolicyWithValue, gather_tokens, sample_responses, sequence_logprobs
from .task import Task


# ---------------------------------------------------------------- pieces (tested one by one)
def gae(rewards: np.ndarray, values: np.ndarray, gamma: float = 1.0, lam: float = 0.95
        ) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimation over (B, L) per-token rewards and values of episodes
    that end after the last token (V = 0 there):
        delta_t = r_t + gamma V_t+1 - V_t,   A_t = delta_t + gamma lam A_t+1.
    Returns (advantages, returns = advantages + values)."""
    rewards, values = np.asarray(rewards, np.float64), np.asarray(values, np.float64)
    adv = np.zeros_like(rewards)
    last = np.zeros(rewards.shape[0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        next_v = values[:, t + 1] if t + 1 < rewards.shape[1] else 0.0
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = delta + gamma * lam * last
        adv[:, t] = last
    return adv, adv + values


def whiten(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """(x - mean) / std over all elements."""
    return (x - x.mean()) / (x.std() + eps)


def clipped_policy_loss(logp: Tensor, old_logp: np.ndarray, advantages: np.ndarray,
                        clip_range: float) -> tuple[Tensor, float]:
    """PPO's clipped surrogate (to minimize) and the fraction of tokens where the clip is
    active. Outside [1 - eps, 1 + eps] on the side the advantage pushes toward, the clipped
    branch is the max and is constant: the gradient there is exactly 0."""
    dtype = logp.dtype
    ratio = exp(logp - Tensor(old_logp.astype(dtype)))
    adv = Tensor(advantages.astype(dtype))
    unclipped = -adv * ratio
    clipped = -adv * clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = maximum(unclipped, clipped).mean()
    clipfrac = float(np.mean(clipped.numpy() > unclipped.numpy()))
    return loss, clipfrac


def clipped_value_loss(values: Tensor, old_values: np.ndarray, returns: np.ndarray,
                       clip_range: float) -> Tensor:
    """0.5 E[max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)]."""
    dtype = values.dtype
    old = Tensor(old_values.astype(dtype))
    ret = Tensor(returns.astype(dtype))
    v_clipped = old + clamp(values - old, -clip_range, clip_range)
    return maximum((values - ret) ** 2, (v_clipped - ret) ** 2).mean() * 0.5


class FixedKLController:
    """A constant KL coefficient."""

    def __init__(self, kl_coef: float) -> None:
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing to adapt."""


class AdaptiveKLController:
    """Ziegler et al.'s proportional controller: beta grows when the KL is above target and
    shrinks below it, by at most 20% per `horizon` samples."""

    def __init__(self, init_kl_coef: float, target: float, horizon: float) -> None:
        if target <= 0 or horizon <= 0:
            raise ValueError(f"AdaptiveKLController: target and horizon must be positive, got "
                             f"{target}, {horizon}")
        self.value, self.target, self.horizon = float(init_kl_coef), float(target), horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = float(np.clip(current_kl / self.target - 1.0, -0.2, 0.2))
        self.value *= 1.0 + error * n_steps / self.horizon


# ---------------------------------------------------------------- the trainer
@dataclass
class PPOConfig:
    """PPO hyperparameters (target_kl None: a fixed KL coefficient init_kl_coef)."""

    iterations: int = 60
    rollout_size: int = 256
    minibatch_size: int = 64
    epochs: int = 4
    lr: float = 1e-3
    lr_final: float = 0.1  # the learning rate decays linearly to lr * lr_final
    clip_range: float = 0.2
    clip_range_value: float = 0.2
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    init_kl_coef: float = 0.1
    target_kl: float | None = 3.0
    kl_horizon: float = 3000.0
    temperature: float = 1.0
    whiten_advantages: bool = True
    max_grad_norm: float = 1.0
    eval_every: int = 5


@dataclass
class PPOLog:
    """Per-iteration statistics of the rollouts and updates, and periodic exact evaluations."""

    rm_score: list[float] = field(default_factory=list)
    true_score: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    kl_k3: list[float] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)
    clipfrac: list[float] = field(default_factory=list)
    value_loss: list[float] = field(default_factory=list)
    policy_loss: list[float] = field(default_factory=list)
    approx_kl: list[float] = field(default_factory=list)
    beta: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, list]:
        return {k: list(v) for k, v in self.__dict__.items()}


class PPOTrainer:
    """PPO on `policy` (with a value head) against `reward_fn(seqs) -> scores`, with a frozen
    reference LM for the KL penalty. `true_fn` is only logged, never optimized."""

    def __init__(self, policy: PolicyWithValue, ref: GPT, reward_fn: Callable[[np.ndarray],
                 np.ndarray], task: Task, prompts: np.ndarray, config: PPOConfig,
                 rng: np.random.Generator,
                 true_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> None:
        self.policy, self.ref, self.reward_fn = policy, ref, reward_fn
        self.task, self.prompts, self.config, self.rng = task, prompts, config, rng
        self.true_fn = true_fn or task.true_reward
        c = config
        self.kl_ctl = (AdaptiveKLController(c.init_kl_coef, c.target_kl, c.kl_horizon)
                       if c.target_kl is not None else FixedKLController(c.init_kl_coef))
        self.opt = Adam(policy.parameters(), lr=c.lr, eps=1e-5)
        self.log = PPOLog()
        policy.eval()
        ref.eval()
        ref.requires_grad_(False)

    @no_grad()
    def rollout(self) -> dict[str, np.ndarray]:
        """Sample, score and compute advantages for one batch."""
        c, task = self.config, self.task
        prompts = self.prompts[self.rng.integers(0, len(self.prompts), c.rollout_size)]
        responses = sample_responses(self.policy.lm, prompts, task, c.temperature, self.rng)
        seqs = task.join(prompts, responses)
        logp_all, values = self.policy(seqs, task, c.temperature)
        logp_all_np = logp_all.numpy().astype(np.float64)
        logp = gather_tokens(logp_all, responses).numpy().astype(np.float64)
        ref_logp = sequence_logprobs(self.ref, seqs, task, c.temperature).numpy()
        ref_logp = ref_logp.astype(np.float64)
        score = np.asarray(self.reward_fn(seqs), np.float64)
        beta = self.kl_ctl.value
        kl_tok = logp - ref_logp
        rewards = -beta * kl_tok
        rewards[:, -1] += score
        values_np = values.numpy().astype(np.float64)
        adv, returns = gae(rewards, values_np, c.gamma, c.lam)
        if c.whiten_advantages:
            adv = whiten(adv)
        entropy = -(np.exp(logp_all_np) * logp_all_np).sum(axis=-1).sum(axis=-1)
        return {"seqs": seqs, "responses": responses, "logp": logp, "values": values_np,
                "adv": adv, "returns": returns, "score": score, "kl": kl_tok.sum(axis=1),
                "kl_k3": (np.expm1(-kl_tok) + kl_tok).sum(axis=1), "entropy": entropy,
                "true": self.true_fn(prompts, responses), "beta": np.float64(beta)}

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """c.epochs passes of minibatch updates on one rollout."""
        c, task = self.config, self.task
        n = len(batch["seqs"])
        stats: dict[str, list[float]] = {"pg": [], "vf": [], "clipfrac": [], "approx_kl": []}
        for _ in range(c.epochs):
            order = self.rng.permutation(n)
            for s in range(0, n, c.minibatch_size):
                idx = order[s:s + c.minibatch_size]
                logp_all, values = self.policy(batch["seqs"][idx], task, c.temperature)
                logp = gather_tokens(logp_all, batch["responses"][idx])
                pg, clipfrac = clipped_policy_loss(logp, batch["logp"][idx], batch["adv"][idx],
                                                   c.clip_range)
                vf = clipped_value_loss(values, batch["values"][idx], batch["returns"][idx],
                                        c.clip_range_value)
                loss = pg + vf * c.vf_coef
                self.opt.zero_grad()
                loss.backward()
                clip_grad_norm_(self.policy.parameters(), c.max_grad_norm)
                self.opt.step()
                diff = logp.numpy().astype(np.float64) - batch["logp"][idx]
                stats["pg"].append(float(pg.item()))
                stats["vf"].append(float(vf.item()))
                stats["clipfrac"].append(clipfrac)
                stats["approx_kl"].append(float(0.5 * np.mean(diff ** 2)))
        return {k: float(np.mean(v)) for k, v in stats.items()}

    def step(self) -> dict[str, float]:
        """One rollout, its updates, the KL controller's move; logs and returns the stats."""
        batch = self.rollout()
        upd = self.update(batch)
        kl = float(batch["kl"].mean())
        self.kl_ctl.update(kl, len(batch["seqs"]))
        row = {"rm_score": float(batch["score"].mean()), "true_score": float(batch["true"].mean()),
               "kl": kl, "kl_k3": float(batch["kl_k3"].mean()),
               "entropy": float(batch["entropy"].mean()), "clipfrac": upd["clipfrac"],
               "value_loss": upd["vf"], "policy_loss": upd["pg"], "approx_kl": upd["approx_kl"],
               "beta": float(batch["beta"])}
        for k, v in row.items():
            getattr(self.log, k).append(v)
        return row

    def train(self, evaluate: Callable[[GPT], dict[str, float]] | None = None,
              log: Callable[[str], None] | None = None) -> PPOLog:
        """Run c.iterations steps; every eval_every (and at the end) call evaluate(lm)."""
        c = self.config
        for it in range(1, c.iterations + 1):
            frac = (it - 1) / max(1, c.iterations - 1)
            for group in self.opt.param_groups:
                group["lr"] = c.lr * (1.0 - frac * (1.0 - c.lr_final))
            row = self.step()
            if evaluate is not None and (it % c.eval_every == 0 or it == c.iterations):
                ev = dict(evaluate(self.policy.lm))
                ev["iteration"] = it
                self.log.evals.append(ev)
            if log and (it % max(1, c.iterations // 10) == 0 or it == 1):
                log(f"  it {it:3d}  rm {row['rm_score']:+.3f}  true {row['true_score']:.3f}  "
                    f"KL {row['kl']:.2f}  H {row['entropy']:.2f}  clip {row['clipfrac']:.3f}  "
                    f"vf {row['value_loss']:.3f}  beta {row['beta']:.4f}")
        return self.log
