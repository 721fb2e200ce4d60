"""The whole RLHF experiment: pretrain, step 1 (SFT), step 2 (reward model), step 3 (PPO),
DPO on the same comparisons, the exact KL-regularized optimum, and over-optimization.

    from tinytape.experiments.rlhf import RLHFConfig, run_rlhf
    results = run_rlhf(RLHFConfig.quick(), out_dir="runs/rlhf")   # results.json (schema)

Every policy is evaluated exactly on the held-out prompts (the response space is enumerated):
win rate against the supervised policy by true reward, KL to it, E[reward model], E[r*].
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ..rlhf import exact as ex
from ..rlhf.dpo import implicit_accuracy, train_dpo
from ..rlhf.policy import PolicyWithValue, clone_lm, exact_logprobs, make_lm, sample_responses
from ..rlhf.ppo import PPOConfig, PPOTrainer
from ..rlhf.reward import (
    RewardModel,
    candidate_deltas,
    label,
    noise_ceiling,
    sample_candidates,
    train_reward_model,
)
from ..rlhf.sft import pretrain, supervised_finetune
from ..rlhf.task import Labeler, Task, TaskConfig, calibrate_tau
from .protocol import Protocol, Target, mean_interval, target, write_results

#: the targets of the issue, checked at the end of a run
TARGETS = {
    "rm_accuracy_fraction_of_ceiling": 0.9,
    "ppo_win_rate": 0.65,
    "ppo_max_kl": 6.0,
    "ppo_objective_fraction_of_optimum": 0.9,
    "kl_within_fraction_of_target": 0.2,
    "dpo_win_rate": 0.60,
}


@dataclass
class RLHFConfig:
    """Every knob of the experiment (defaults: the documented run, a few minutes on 2 cores)."""

    seed: int = 0
    task: TaskConfig = field(default_factory=lambda: TaskConfig(web_relevance=0.9))
    # the language model
    d_model: int = 96
    n_layers: int = 2
    n_heads: int = 4
    # pretraining and step 1
    pretrain_steps: int = 400
    sft_steps: int = 300
    lm_batch_size: int = 64
    lm_lr: float = 1e-3
    demos_per_prompt: int = 4
    # step 2
    rankings_per_prompt: int = 8
    k_range: tuple[int, int] = (4, 9)
    labeler_agreement: float = 0.73
    rm_epochs: int = 8
    rm_prompts_per_batch: int = 32
    rm_lr: float = 2e-3
    norm_samples_per_prompt: int = 8
    # step 3
    ppo: PPOConfig = field(default_factory=lambda: PPOConfig(iterations=100, target_kl=3.0))
    # DPO
    dpo_beta: float = 0.1
    dpo_epochs: int = 2
    dpo_lr: float = 1e-3
    dpo_prompts_per_batch: int = 32
    # over-optimization: a reward model from few comparisons, PPO without a KL penalty
    overopt_rankings: int = 384
    overopt_rm_epochs: int = 12
    overopt_rm_prompts_per_batch: int = 16
    overopt_iterations: int = 60
    overopt_lr: float = 3e-4  # small steps, so the path passes the true reward's peak slowly
    # exact optimum: betas of the reward-vs-KL frontier
    frontier_betas: tuple[float, ...] = (20.0, 5.0, 2.0, 1.0, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1,
                                         0.07, 0.05, 0.035, 0.025, 0.015, 0.01, 0.0)

    def __post_init__(self) -> None:
        p = self.ppo
        if p.target_kl is not None and not p.target_kl > 0:
            raise ValueError(f"target_kl must be positive, got {p.target_kl}")
        if p.iterations < 1:
            raise ValueError(f"ppo_iterations must be at least 1, got {p.iterations}")
        if not p.temperature > 0:
            raise ValueError(f"temperature must be positive, got {p.temperature}")
        if not self.dpo_beta > 0:
            raise ValueError(f"dpo_beta must be positive, got {self.dpo_beta}")
        for name in ("pretrain_steps", "sft_steps", "rm_epochs", "dpo_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    @classmethod
    def quick(cls, seed: int = 0) -> RLHFConfig:
        """About 30 s: fewer steps everywhere (the targets are not expected to hold)."""
        return cls(seed=seed, d_model=64, pretrain_steps=400, sft_steps=200,
                   rankings_per_prompt=2, rm_epochs=4,
                   ppo=PPOConfig(iterations=20, target_kl=3.0, eval_every=5), dpo_epochs=1,
                   overopt_rankings=128, overopt_rm_epochs=6, overopt_iterations=10,
                   task=TaskConfig(web_relevance=0.9, n_eval_prompts=40))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Tables:
    """Exact tables on the held-out prompts: log pi_SFT, the reward model, the true reward."""

    def __init__(self, task: Task, sft_lm: Any, rm: RewardModel, temperature: float) -> None:
        self.task, self.temperature = task, temperature
        prompts = task.eval_prompts
        m = len(task.responses)
        self.logp_sft = exact_logprobs(sft_lm, prompts, task, temperature)
        seqs = task.join(np.repeat(prompts, m, axis=0), np.tile(task.responses, (len(prompts), 1)))
        self.rm = rm.score(seqs).reshape(len(prompts), m)
        self.true = task.true_reward_table(prompts)

    def evaluate(self, lm: Any, beta: float | None = None) -> dict[str, float]:
        """Exact KL to SFT, E[r_RM], E[r*], win rate, entropy of a policy LM."""
        logp = exact_logprobs(lm, self.task.eval_prompts, self.task, self.temperature)
        return ex.summarize(logp, self.logp_sft, self.rm, self.true, beta)


def run_rlhf(config: RLHFConfig, out_dir: str | None = None, plots: bool = True,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run everything; write results.json (the shared schema: these results are its
    "metrics") and PNG plots into out_dir; return the results."""
    c = config
    t_start, cpu_start = time.perf_counter(), time.process_time()
    timings: dict[str, float] = {}

    def stage(name: str, t0: float) -> float:
        now = time.perf_counter()
        timings[name] = now - t0
        log(f"[{name}: {now - t0:.1f} s, total {now - t_start:.1f} s wall, "
            f"{time.process_time() - cpu_start:.1f} s CPU]")
        return now

    rng = np.random.default_rng(c.seed)
    task = Task(c.task, seed=c.seed)
    temp = c.ppo.temperature
    log(f"task: {task.S} symbols, prompts of {task.P}, responses of {task.L} "
        f"({len(task.responses)} possible), {len(task.train_prompts)} train / "
        f"{len(task.eval_prompts)} held-out prompts")

    # ---------------------------------------------------------- pretraining and step 1
    t = time.perf_counter()
    lm = make_lm(task, c.d_model, c.n_layers, c.n_heads, seed=c.seed)
    log(f"pretraining a GPT ({lm.num_parameters()} parameters) on web text")
    pre_losses = pretrain(lm, task, c.pretrain_steps, c.lm_batch_size, c.lm_lr, rng, log)
    pretrained = clone_lm(lm)
    log("step 1: supervised fine-tuning on demonstrations (loss on response tokens only)")
    sft_losses = supervised_finetune(lm, task, task.train_prompts, c.demos_per_prompt,
                                     c.sft_steps, c.lm_batch_size, c.lm_lr, rng, log)
    sft = lm
    t = stage("pretraining + SFT", t)

    # ---------------------------------------------------------- step 2
    log("step 2: comparisons from the SFT policy, ranked by simulated labelers")
    rm_prompts = np.tile(task.train_prompts, (c.rankings_per_prompt, 1))
    cands = sample_candidates(sft, rm_prompts, task, rng, c.k_range, temp)
    held_cands = sample_candidates(sft, task.eval_prompts, task, rng, c.k_range, temp)
    tau = calibrate_tau(candidate_deltas(rm_prompts, cands, task), c.labeler_agreement)
    labeler = Labeler(task, tau, rng)
    train_cmp = label(rm_prompts, cands, labeler)
    held_cmp = label(task.eval_prompts, held_cands, labeler)
    ceiling_measured, ceiling_expected = noise_ceiling(held_cmp, task, tau)
    log(f"  labeler temperature tau = {tau:.3f} (two labelers agree on "
        f"{c.labeler_agreement:.0%} of pairs); {len(train_cmp)} rankings, "
        f"{train_cmp.n_pairs} pairs; held-out {held_cmp.n_pairs} pairs")
    rm = RewardModel(clone_lm(sft), seed=c.seed)
    rm_hist = train_reward_model(rm, train_cmp, task, c.rm_epochs, c.rm_prompts_per_batch,
                                 c.rm_lr, rng, held_cmp, log)
    rm_acc = rm_hist.heldout_acc[-1]
    log(f"  held-out pairwise accuracy {rm_acc:.3f}; noise ceiling {ceiling_measured:.3f} "
        f"(true reward on the same labels; expected {ceiling_expected:.3f})")
    norm_prompts = np.repeat(task.train_prompts, c.norm_samples_per_prompt, axis=0)
    norm_seqs = task.join(norm_prompts, sample_responses(sft, norm_prompts, task, temp, rng))
    rm_mean, rm_std = rm.normalize_(norm_seqs)
    log(f"  normalized on {len(norm_seqs)} SFT samples (raw mean {rm_mean:.3f}, "
        f"std {rm_std:.3f})")
    tables = Tables(task, sft, rm, temp)
    corr = float(np.corrcoef(tables.rm.ravel(), tables.true.ravel())[0, 1])
    t = stage("step 2: reward model", t)

    # ---------------------------------------------------------- step 3
    log(f"step 3: PPO from the SFT policy, KL penalty to a frozen copy, target KL "
        f"{c.ppo.target_kl}")
    policy = PolicyWithValue(clone_lm(sft), seed=c.seed)
    trainer = PPOTrainer(policy, clone_lm(sft), rm.score, task, task.train_prompts, c.ppo, rng)
    ppo_log = trainer.train(tables.evaluate, log)
    beta_final = trainer.kl_ctl.value
    ppo_final = tables.evaluate(policy.lm, beta_final)
    optimum = ex.summarize(ex.optimal_logp(tables.logp_sft, tables.rm, beta_final),
                           tables.logp_sft, tables.rm, tables.true, beta_final)
    opt_objective = ex.optimal_objective(tables.logp_sft, tables.rm, beta_final)
    half = len(ppo_log.kl) // 2
    kl_late = float(np.mean(ppo_log.kl[half:]))
    t = stage("step 3: PPO", t)

    # ---------------------------------------------------------- DPO
    log(f"DPO on the same comparisons (beta {c.dpo_beta})")
    dpo_policy = clone_lm(sft)
    dpo_hist = train_dpo(dpo_policy, clone_lm(sft), train_cmp, task, c.dpo_beta, c.dpo_epochs,
                         c.dpo_prompts_per_batch, c.dpo_lr, rng, temp, held_cmp,
                         tables.evaluate, eval_every=max(1, len(train_cmp) //
                                                         c.dpo_prompts_per_batch // 2), log=log)
    dpo_final = tables.evaluate(dpo_policy)
    dpo_held_acc = implicit_accuracy(dpo_policy, sft, held_cmp, task, temp)
    t = stage("DPO", t)

    # ---------------------------------------------------------- over-optimization
    log(f"over-optimization: a reward model from {c.overopt_rankings} rankings, PPO without "
        f"a KL penalty")
    few = train_cmp.subset(np.arange(min(c.overopt_rankings, len(train_cmp))))
    rm_small = RewardModel(clone_lm(sft), seed=c.seed + 1)
    small_hist = train_reward_model(rm_small, few, task, c.overopt_rm_epochs,
                                    c.overopt_rm_prompts_per_batch, c.rm_lr, rng, held_cmp)
    rm_small.normalize_(norm_seqs)
    small_tables = Tables(task, sft, rm_small, temp)
    over_cfg = replace(c.ppo, iterations=c.overopt_iterations, target_kl=None,
                       init_kl_coef=0.0, eval_every=max(1, c.overopt_iterations // 20),
                       lr=c.overopt_lr)
    over_policy = PolicyWithValue(clone_lm(sft), seed=c.seed)
    over_log = PPOTrainer(over_policy, clone_lm(sft), rm_small.score, task, task.train_prompts,
                          over_cfg, rng).train(small_tables.evaluate, log)
    over_final = small_tables.evaluate(over_policy.lm)
    over_start = small_tables.evaluate(sft)
    over_final_main_rm = tables.evaluate(over_policy.lm)
    t = stage("over-optimization", t)

    # ---------------------------------------------------------- summary
    sft_row = tables.evaluate(sft)
    frontier = ex.frontier(tables.logp_sft, tables.rm, tables.true, np.array(c.frontier_betas))
    small_frontier = ex.frontier(tables.logp_sft, small_tables.rm, tables.true,
                                 np.array(c.frontier_betas))
    pretrained_row = tables.evaluate(pretrained)
    methods = {
        "pretrained LM": pretrained_row,
        "SFT (step 1)": sft_row,
        "PPO (steps 2+3)": ppo_final,
        f"exact optimum, beta={beta_final:.3f}": optimum,
        f"DPO, beta={c.dpo_beta}": dpo_final,
        "PPO, no KL, small RM": over_final_main_rm,
    }
    examples = example_rows(tables, {"SFT": sft, "PPO": policy.lm, "DPO": dpo_policy,
                                     "PPO no KL, small RM": over_policy.lm})
    ppo_objective = ppo_final["rm"] - beta_final * ppo_final["kl"]
    results: dict[str, Any] = {
        "config": c.to_dict(),
        "tau": tau, "rm_heldout_accuracy": rm_acc, "noise_ceiling": ceiling_measured,
        "noise_ceiling_expected": ceiling_expected, "rm_true_correlation": corr,
        "rm_normalization": {"mean": rm_mean, "std": rm_std},
        "methods": methods, "ppo_beta_final": beta_final, "ppo_objective": ppo_objective,
        "optimal_objective": opt_objective, "ppo_kl_late_mean": kl_late,
        "dpo_implicit_heldout_accuracy": dpo_held_acc,
        "frontier": frontier, "small_rm_frontier": small_frontier,
        "small_rm_heldout_accuracy": small_hist.heldout_acc[-1] if small_hist.heldout_acc
        else None,
        "overopt_final_small_rm": over_final,
        "overopt_start_small_rm": over_start["rm"],
        "logs": {"pretrain_loss": pre_losses, "sft_loss": sft_losses,
                 "rm": asdict(rm_hist), "rm_small": asdict(small_hist),
                 "ppo": ppo_log.as_dict(), "dpo": asdict(dpo_hist),
                 "overopt": over_log.as_dict()},
        "examples": examples,
        "timings": timings,
    }
    results["targets"] = check_targets(results, c)
    log("")
    log(format_examples(examples))
    log("")
    log(format_table(methods))
    log("")
    for line in format_targets(results["targets"]):
        log(line)
    results["timings"]["total"] = time.perf_counter() - t_start
    results["timings"]["cpu_total"] = time.process_time() - cpu_start
    log(f"total time {results['timings']['total']:.1f} s wall, "
        f"{results['timings']['cpu_total']:.1f} s CPU")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        targets = results.pop("targets")
        write_results(out_dir, "rlhf", c.to_dict(), protocol(c, task), results, targets,
                      {"methods": methods_table(methods)})
        results["targets"] = targets
        if plots:
            from ..rlhf import plots as plot_mod

            written = plot_mod.plot_all(results, out_dir)
            if written:
                log("plots: " + ", ".join(written))
            else:
                log("plots skipped (matplotlib is not installed)")
        log(f"results: {os.path.join(out_dir, 'results.json')}")
    return results


def protocol(c: RLHFConfig, task: Task) -> Protocol:
    return Protocol(
        splits={"train prompts": len(task.train_prompts),
                "held-out prompts (evaluation)": len(task.eval_prompts)},
        seeds=[c.seed], tuned={},
        notes="Policies are evaluated exactly on held-out prompts (the response space is "
              "enumerated); the settings are fixed, nothing is chosen on the held-out "
              "prompts; one seed, so the targets have no interval and are inconclusive by "
              "the protocol's rule (issue 15 adds seeds).")


def check_targets(r: dict[str, Any], c: RLHFConfig) -> list[Target]:
    """Each target of the issue: its measured value against its bound (one seed: no
    interval, so the verdict is inconclusive until several seeds are run)."""
    ppo = r["methods"]["PPO (steps 2+3)"]
    dpo = next(v for k, v in r["methods"].items() if k.startswith("DPO"))
    sft_row = r["methods"]["SFT (step 1)"]
    over = [{"true": sft_row["true"], "rm": r["overopt_start_small_rm"]}] + \
        r["logs"]["overopt"]["evals"]
    target_kl = c.ppo.target_kl or float("nan")
    frac_ceiling = r["rm_heldout_accuracy"] / r["noise_ceiling"]
    frac_opt = r["ppo_objective"] / r["optimal_objective"] if r["optimal_objective"] else 0.0
    kl_dev = abs(r["ppo_kl_late_mean"] / target_kl - 1.0)
    true_curve = [e["true"] for e in over]
    t = TARGETS

    def one(name: str, value: float, bound: float, higher: bool = True) -> Target:
        return target(name, mean_interval([value]), bound, higher_is_better=higher)

    return [
        one("reward model held-out accuracy / noise ceiling (at least)", frac_ceiling,
            t["rm_accuracy_fraction_of_ceiling"]),
        one("PPO win rate vs SFT (at least)", ppo["win"], t["ppo_win_rate"]),
        one("PPO KL to SFT, nats (at most)", ppo["kl"], t["ppo_max_kl"], higher=False),
        one("PPO (E[r] - beta KL) / exact optimum (at least)", frac_opt,
            t["ppo_objective_fraction_of_optimum"]),
        one("|mean rollout KL (2nd half) / target - 1| (at most)", kl_dev,
            t["kl_within_fraction_of_target"], higher=False),
        one("DPO win rate vs SFT (at least)", dpo["win"], t["dpo_win_rate"]),
        one("over-optimization: final true reward minus its peak (below 0)",
            float(true_curve[-1] - max(true_curve)) if true_curve else 0.0, 0.0,
            higher=False),
    ]


def methods_table(methods: dict[str, dict[str, float]]) -> dict[str, Any]:
    return {"caption": "exact evaluation on held-out prompts (the response space is "
                       "enumerated), one seed",
            "columns": ["method", "win vs SFT", "KL to SFT (nats)", "E[reward model]",
                        "E[true reward]", "entropy"],
            "rows": [[name, m["win"], m["kl"], m["rm"], m["true"], m["entropy"]]
                     for name, m in methods.items()]}


def example_rows(tables: Tables, policies: dict[str, Any], n: int = 6
                 ) -> list[dict[str, Any]]:
    """For the first n held-out prompts: the best response by r*, and each policy's most
    likely response with its probability and r*."""
    task = tables.task
    rows: list[dict[str, Any]] = [{"prompt": task.show(x)} for x in task.eval_prompts[:n]]
    for i, row in enumerate(rows):
        best = int(np.argmax(tables.true[i]))
        row["best"] = (task.show(task.responses[best]), float(tables.true[i, best]))
    for name, lm in policies.items():
        logp = exact_logprobs(lm, task.eval_prompts[:n], task, tables.temperature)
        for i, row in enumerate(rows):
            j = int(np.argmax(logp[i]))
            row[name] = (task.show(task.responses[j]), float(np.exp(logp[i, j])),
                         float(tables.true[i, j]))
    return rows


def format_examples(rows: list[dict[str, Any]]) -> str:
    """Prompt, best response (r*), and each policy's mode as 'response p=.. r*=..'."""
    names = [k for k in rows[0] if k not in ("prompt", "best")] if rows else []
    head = f"{'prompt':6s} {'best (r*)':11s} " + " ".join(f"{n:21s}" for n in names)
    lines = ["most likely response per policy (held-out prompts):", head]
    for row in rows:
        cells = [f"{row[n][0]} p={row[n][1]:.2f} r*={row[n][2]:+.1f}" for n in names]
        lines.append(f"{row['prompt']:6s} {row['best'][0]} ({row['best'][1]:+.1f})  "
                     + " ".join(f"{c:21s}" for c in cells))
    return "\n".join(lines)


def format_table(methods: dict[str, dict[str, float]]) -> str:
    """Per method: win rate vs SFT, KL to SFT, E[r_RM], E[r*], entropy (exact, held-out)."""
    head = (f"{'method (exact, held-out prompts)':40s} {'win vs SFT':>10s} {'KL (nats)':>10s} "
            f"{'E[r_RM]':>8s} {'E[r*]':>7s} {'entropy':>8s}")
    lines = [head, "-" * len(head)]
    for name, m in methods.items():
        lines.append(f"{name:40s} {m['win']:10.3f} {m['kl']:10.3f} {m['rm']:+8.3f} "
                     f"{m['true']:7.3f} {m['entropy']:8.3f}")
    return "\n".join(lines)


def format_targets(targets: list[Target]) -> list[str]:
    return [f"target {t.name}: {t.value:.3f} (bound {t.bound}; {t.verdict})" for t in targets]


__all__ = ["RLHFConfig", "run_rlhf", "Tables", "check_targets", "format_table", "TARGETS"]
