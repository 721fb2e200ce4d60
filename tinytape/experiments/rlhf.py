"""The whole RLHF experiment under the shared protocol: per seed, pretrain, SFT (step 1), a
reward model (step 2), PPO over several KL targets (step 3), DPO over several beta, the
baselines best-of-n and SFT on the top-ranked responses, the exact KL-regularized optimum,
and over-optimization against reward models trained on fewer comparisons.

    from tinytape.experiments.rlhf import RLHFConfig, run_rlhf
    results = run_rlhf(RLHFConfig.quick(), out_dir="runs/rlhf")   # results.json (schema)

Splits hold out whole symbol sets (tinytape.rlhf.task): training prompts for SFT,
comparisons and PPO; validation prompts, where every choice is made (which PPO KL target and
DPO beta is reported, which point of a frontier is compared with the optimum); test prompts,
read once at the end. Every policy is evaluated exactly on them (the response space is
enumerated): win rate against SFT by true reward, KL to SFT, E[reward model], E[r*].
Seeds run in parallel worker processes; each seed is a new split, new labels, new models.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ..rlhf import exact as ex
from ..rlhf.dpo import train_dpo
from ..rlhf.policy import PolicyWithValue, clone_lm, exact_logprobs, make_lm, sample_responses
from ..rlhf.ppo import PPOConfig, PPOTrainer
from ..rlhf.reward import (
    Comparisons,
    RewardModel,
    candidate_deltas,
    label,
    noise_ceiling,
    pairwise_accuracy,
    sample_candidates,
    train_reward_model,
)
from ..rlhf.sft import pretrain, supervised_finetune, train_sequences
from ..rlhf.task import Labeler, Task, TaskConfig, calibrate_tau
from .protocol import (
    RATE,
    Interval,
    Protocol,
    mean_interval,
    paired_interval,
    prepare_run_dir,
    require_counts,
    target,
    write_results,
)

#: the bounds of the issue's targets
WIN_RATE_BOUND = 0.65
MAX_KL = 6.0
OPTIMUM_FRACTION_BOUND = 0.9
#: what a policy's exact evaluation holds (per split)
SUMMARY_KEYS = (
    "kl",
    "rm",
    "true",
    "win",
    "entropy",
    "optimum_true",
    "fraction_of_optimum",
    "fraction_of_gain",
)
METHOD_COLUMNS = ("win", "kl", "rm", "true", "fraction_of_optimum", "fraction_of_gain")
OUTPUTS = ("results.json", "rlhf_frontier.png", "rlhf_overoptimization.png")


@dataclass
class RLHFConfig:
    """Every knob of the experiment (defaults: the documented run, six seeds in two worker
    processes, within 15 minutes on 2 cores)."""

    seeds: tuple[int, ...] = (10, 11, 12, 13, 14, 15)
    workers: int = 2
    threads: int = 1
    task: TaskConfig = field(default_factory=lambda: TaskConfig(web_relevance=0.9))
    # the language model
    d_model: int = 64
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
    heldout_rankings_per_prompt: int = 2  # on validation and test prompts: accuracy only
    k_range: tuple[int, int] = (4, 9)
    labeler_agreement: float = 0.73
    rm_epochs: int = 6
    rm_prompts_per_batch: int = 32
    rm_lr: float = 2e-3
    norm_samples_per_prompt: int = 8
    # over-optimization: reward models from the first N rankings (the full model is added)
    small_rm_rankings: tuple[int, ...] = (256, 768)
    # step 3, once per KL target
    ppo: PPOConfig = field(default_factory=lambda: PPOConfig(iterations=60))
    ppo_target_kls: tuple[float, ...] = (1.0, 2.5, 5.0)
    # DPO, once per beta
    dpo_betas: tuple[float, ...] = (0.05, 0.1, 0.3)
    dpo_epochs: int = 2
    dpo_lr: float = 1e-3
    dpo_prompts_per_batch: int = 32
    # SFT on the top-ranked response of each training ranking
    top_sft_steps: int = 150
    # best-of-n against SFT with the reward model: the frontier's n, and over-optimization's
    best_of_n: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256)
    overopt_n: tuple[int, ...] = tuple(2**k for k in range(15))
    # the exact optimum's curve
    frontier_betas: tuple[float, ...] = (
        20.0,
        5.0,
        2.0,
        1.0,
        0.6,
        0.4,
        0.3,
        0.2,
        0.15,
        0.1,
        0.07,
        0.05,
        0.035,
        0.025,
        0.015,
        0.01,
        0.0,
    )

    def __post_init__(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(
                f"seeds must be at least 2 distinct seeds (intervals need "
                f"them), got {list(self.seeds)}"
            )
        if min(self.seeds) < 0:
            raise ValueError(f"seeds must be >= 0, got {list(self.seeds)}")
        require_counts(
            self,
            (
                "workers",
                "threads",
                "pretrain_steps",
                "sft_steps",
                "rm_epochs",
                "dpo_epochs",
                "top_sft_steps",
                "rankings_per_prompt",
                "heldout_rankings_per_prompt",
            ),
        )
        p = self.ppo
        if p.iterations < 1:
            raise ValueError(f"ppo_iterations must be at least 1, got {p.iterations}")
        if not p.temperature > 0:
            raise ValueError(f"temperature must be positive, got {p.temperature}")
        if not self.ppo_target_kls or min(self.ppo_target_kls) <= 0:
            raise ValueError(f"target_kls must be positive, got {list(self.ppo_target_kls)}")
        if not self.dpo_betas or min(self.dpo_betas) <= 0:
            raise ValueError(f"dpo_betas must be positive, got {list(self.dpo_betas)}")
        if not self.best_of_n or min(self.best_of_n + self.overopt_n) < 1:
            raise ValueError(
                f"best_of_n must all be >= 1, got {list(self.best_of_n)} and {list(self.overopt_n)}"
            )
        if any(n < 1 for n in self.small_rm_rankings):
            raise ValueError(f"small_rm_rankings must be >= 1, got {list(self.small_rm_rankings)}")

    @classmethod
    def quick(cls, seeds: Sequence[int] = (0, 1)) -> RLHFConfig:
        """Under a minute on 2 cores: two seeds, small budgets everywhere (the targets are not
        expected to hold), the same schema."""
        return cls(
            seeds=tuple(seeds),
            d_model=32,
            pretrain_steps=250,
            sft_steps=120,
            rankings_per_prompt=2,
            heldout_rankings_per_prompt=1,
            rm_epochs=3,
            small_rm_rankings=(64,),
            ppo=PPOConfig(iterations=8, rollout_size=128),
            ppo_target_kls=(1.0, 3.0),
            dpo_betas=(0.1, 0.3),
            dpo_epochs=1,
            top_sft_steps=40,
            best_of_n=(2, 8, 32),
            overopt_n=(1, 4, 16, 64, 256),
            frontier_betas=(5.0, 1.0, 0.3, 0.1, 0.03, 0.0),
        )

    @classmethod
    def small(cls, seeds: Sequence[int] = (0, 1)) -> RLHFConfig:
        """About 80 s on 2 free cores, estimated (the demo's stage): two seeds, one PPO KL
        target, one DPO beta, fewer rankings and shorter budgets."""
        return cls(
            seeds=tuple(seeds),
            pretrain_steps=300,
            sft_steps=200,
            rankings_per_prompt=3,
            heldout_rankings_per_prompt=1,
            rm_epochs=5,
            small_rm_rankings=(64, 256),
            ppo=PPOConfig(iterations=30),
            ppo_target_kls=(2.5,),
            dpo_betas=(0.1,),
            top_sft_steps=100,
            best_of_n=(4, 16, 64),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------- evaluation


class Split:
    """Exact tables on the prompts of one split: log pi_SFT, the reward model, the true
    reward; evaluates a policy table against them."""

    def __init__(
        self, task: Task, prompts: np.ndarray, sft_lm: Any, rm: RewardModel, temperature: float
    ) -> None:
        self.task, self.prompts, self.temperature = task, prompts, temperature
        self.logp_sft = exact_logprobs(sft_lm, prompts, task, temperature)
        self.true = task.true_reward_table(prompts)
        self.rm = reward_table(task, prompts, rm)
        self.sft_true = float((np.exp(self.logp_sft) * self.true).sum(axis=-1).mean())

    def logp(self, lm: Any) -> np.ndarray:
        return exact_logprobs(lm, self.prompts, self.task, self.temperature)

    def evaluate(self, logp: np.ndarray, rm: np.ndarray | None = None) -> dict[str, float]:
        """Exact KL to SFT, E[r_RM], E[r*], win rate, entropy of a policy table, and the
        true reward of the exact true-reward optimum at the same KL (the best any policy
        can do there) with the fraction of it reached, E[r*] / optimum's, and the fraction
        of its gain over SFT, (E[r*] - SFT's) / (optimum's - SFT's) (0 at KL 0)."""
        out = ex.summarize(logp, self.logp_sft, self.rm if rm is None else rm, self.true)
        best = ex.optimum_at_kl(self.logp_sft, self.true, out["kl"])
        opt_true = float((np.exp(best["logp"]) * self.true).sum(axis=-1).mean())
        out["optimum_true"] = opt_true
        out["fraction_of_optimum"] = out["true"] / opt_true
        gain = opt_true - self.sft_true
        out["fraction_of_gain"] = (out["true"] - self.sft_true) / gain if gain > 1e-9 else 0.0
        return out


def reward_table(task: Task, prompts: np.ndarray, rm: RewardModel) -> np.ndarray:
    """The reward model's score of every response for every prompt: (n_prompts, S ** L)."""
    m = len(task.responses)
    seqs = task.join(np.repeat(prompts, m, axis=0), np.tile(task.responses, (len(prompts), 1)))
    return rm.score(seqs).reshape(len(prompts), m)


def train_rm(
    sft: Any,
    comps: Comparisons,
    task: Task,
    c: RLHFConfig,
    seed: int,
    rng: np.random.Generator,
    norm_seqs: np.ndarray,
    epochs: int,
) -> RewardModel:
    """Step 2: a reward model on the SFT trunk, trained on `comps`, normalized to mean 0 and
    std 1 on SFT samples."""
    rm = RewardModel(clone_lm(sft), seed=seed)
    train_reward_model(rm, comps, task, epochs, c.rm_prompts_per_batch, c.rm_lr, rng)
    rm.normalize_(norm_seqs)
    return rm


def rm_accuracy(rm: RewardModel, comps: Comparisons, task: Task, tau: float) -> dict[str, float]:
    """Pairwise accuracy on labelled held-out pairs, the noise ceiling (the true reward's own
    accuracy on the same labels) and the accuracy above chance, (acc - 0.5) / (ceiling - 0.5)."""
    seqs, win, lose, _, _ = comps.flat(task)
    acc = pairwise_accuracy(rm.score(seqs), win, lose)
    ceiling, expected = noise_ceiling(comps, task, tau)
    return {
        "accuracy": acc,
        "ceiling": ceiling,
        "ceiling_expected": expected,
        "above_chance": (acc - 0.5) / (ceiling - 0.5),
        "pairs": int(len(win)),
    }


def best_of_n_curve(split: Split, proxy: np.ndarray, ns: Sequence[int]) -> list[dict[str, float]]:
    """Best-of-n against SFT with `proxy` as the reward model, exact for each n: KL (and its
    closed-form bound), E[proxy], E[r*], win rate."""
    rows = []
    for n in ns:
        row = split.evaluate(ex.best_of_n_logp(split.logp_sft, proxy, int(n)), rm=proxy)
        row.update(n=int(n), kl_bound=ex.best_of_n_kl_bound(int(n)))
        rows.append(row)
    return rows


def optimum_curve(
    split: Split, reward: np.ndarray, betas: Sequence[float]
) -> list[dict[str, float]]:
    """The exact optimum pi_SFT exp(reward / beta) / Z for each beta: KL, E[r_RM], E[r*],
    win rate."""
    return [
        dict(
            ex.summarize(
                ex.optimal_logp(split.logp_sft, reward, float(b)),
                split.logp_sft,
                split.rm,
                split.true,
            ),
            beta=float(b),
        )
        for b in betas
    ]


# ---------------------------------------------------------------------------- one seed


def run_seed(c: RLHFConfig, seed: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Everything for one seed (a new split of symbol sets, new labels, new models); returns
    plain numbers: each policy's exact evaluation on validation and test, the choices made on
    validation, the reward models' accuracies and the over-optimization curves."""
    t_start, cpu_start = time.perf_counter(), time.process_time()
    timings: dict[str, float] = {}
    mark = [t_start, cpu_start]

    def stage(name: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        timings[name] = now - mark[0]
        timings[name + " (CPU)"] = cpu - mark[1]
        log(f"[seed {seed}] {name}: {now - mark[0]:.1f} s wall, {cpu - mark[1]:.1f} s CPU")
        mark[:] = [now, cpu]

    rng = np.random.default_rng(seed)
    task = Task(c.task, seed=seed)
    temp = c.ppo.temperature
    log(
        f"[seed {seed}] {len(task.train_prompts)} train / {len(task.val_prompts)} validation "
        f"/ {len(task.test_prompts)} test prompts (symbol sets disjoint)"
    )

    # pretraining and step 1
    lm = make_lm(task, c.d_model, c.n_layers, c.n_heads, seed=seed)
    pretrain(lm, task, c.pretrain_steps, c.lm_batch_size, c.lm_lr, rng)
    pretrained = clone_lm(lm)
    supervised_finetune(
        lm, task, task.train_prompts, c.demos_per_prompt, c.sft_steps, c.lm_batch_size, c.lm_lr, rng
    )
    sft = lm
    stage("pretraining + SFT")

    # step 2: comparisons on training prompts; held-out ones for accuracies
    rm_prompts = np.tile(task.train_prompts, (c.rankings_per_prompt, 1))
    rm_prompts = rm_prompts[rng.permutation(len(rm_prompts))]  # any prefix is a fair subset
    cands = sample_candidates(sft, rm_prompts, task, rng, c.k_range, temp)
    tau = calibrate_tau(candidate_deltas(rm_prompts, cands, task), c.labeler_agreement)
    labeler = Labeler(task, tau, rng)
    train_cmp = label(rm_prompts, cands, labeler)
    held: dict[str, Comparisons] = {}
    for name, prompts in (("validation", task.val_prompts), ("test", task.test_prompts)):
        reps = np.tile(prompts, (c.heldout_rankings_per_prompt, 1))
        held[name] = label(reps, sample_candidates(sft, reps, task, rng, c.k_range, temp), labeler)
    norm_prompts = np.repeat(task.train_prompts, c.norm_samples_per_prompt, axis=0)
    norm_seqs = task.join(norm_prompts, sample_responses(sft, norm_prompts, task, temp, rng))
    rm = train_rm(sft, train_cmp, task, c, seed, rng, norm_seqs, c.rm_epochs)
    splits = {
        "validation": Split(task, task.val_prompts, sft, rm, temp),
        "test": Split(task, task.test_prompts, sft, rm, temp),
    }
    test = splits["test"]
    stage("step 2: reward model")

    policies: dict[str, dict[str, dict[str, float]]] = {}

    def record(name: str, lm_or_tables: Any) -> None:
        policies[name] = {
            k: s.evaluate(
                lm_or_tables[k] if isinstance(lm_or_tables, dict) else s.logp(lm_or_tables)
            )
            for k, s in splits.items()
        }

    record("pretrained", pretrained)
    record("SFT", sft)

    # baselines: best-of-n with the reward model (exact), SFT on the top-ranked responses
    for n in c.best_of_n:
        record(
            f"best-of-{n}", {k: ex.best_of_n_logp(s.logp_sft, s.rm, n) for k, s in splits.items()}
        )
    top = clone_lm(sft)
    top_seqs = task.join(train_cmp.prompts, np.stack([r[0] for r in train_cmp.ranked]), end=True)
    train_sequences(top, top_seqs, task, c.top_sft_steps, c.lm_batch_size, c.lm_lr, rng, True)
    record("SFT on top-ranked", top)
    stage("baselines")

    # step 3: PPO, once per KL target
    ppo_beta = {}
    for kl_target in c.ppo_target_kls:
        policy = PolicyWithValue(clone_lm(sft), seed=seed)
        trainer = PPOTrainer(
            policy,
            clone_lm(sft),
            rm.score,
            task,
            task.train_prompts,
            replace(c.ppo, target_kl=kl_target),
            rng,
        )
        trainer.train()
        record(f"PPO, KL target {kl_target:g}", policy.lm)
        ppo_beta[f"{kl_target:g}"] = trainer.kl_ctl.value
    stage("step 3: PPO")

    # DPO, once per beta
    for beta in c.dpo_betas:
        dpo_policy = clone_lm(sft)
        train_dpo(
            dpo_policy,
            clone_lm(sft),
            train_cmp,
            task,
            beta,
            c.dpo_epochs,
            c.dpo_prompts_per_batch,
            c.dpo_lr,
            rng,
            temp,
        )
        record(f"DPO, beta {beta:g}", dpo_policy)
    stage("DPO")

    # over-optimization: best-of-n against reward models from fewer comparisons (Gao et al.);
    # more epochs on less data (sqrt of the ratio), so a small model is not merely undertrained
    reward_models = {len(train_cmp): rm}
    for n_rank in sorted(set(c.small_rm_rankings)):
        if n_rank < len(train_cmp):
            few = train_cmp.subset(np.arange(n_rank))
            epochs = round(c.rm_epochs * math.sqrt(len(train_cmp) / n_rank))
            reward_models[n_rank] = train_rm(
                sft, few, task, c, seed + 1000 * n_rank, rng, norm_seqs, epochs
            )
    overopt, rm_stats = {}, {}
    for n_rank in sorted(reward_models):
        model = reward_models[n_rank]
        proxy = test.rm if model is rm else reward_table(task, task.test_prompts, model)
        overopt[str(n_rank)] = best_of_n_curve(test, proxy, c.overopt_n)
        stats = rm_accuracy(model, held["test"], task, tau)
        stats["true_correlation"] = float(np.corrcoef(proxy.ravel(), test.true.ravel())[0, 1])
        rm_stats[str(n_rank)] = stats
    stage("over-optimization")

    curves = {
        name: {
            "true reward": optimum_curve(s, s.true, c.frontier_betas),
            "reward model": optimum_curve(s, s.rm, c.frontier_betas),
        }
        for name, s in splits.items()
    }
    return {
        "seed": seed,
        "tau": tau,
        "splits": {
            "train prompts": len(task.train_prompts),
            "validation prompts": len(task.val_prompts),
            "test prompts": len(task.test_prompts),
        },
        "symbol_sets": {
            k: ["".join(task.show(np.array(s))) for s in v] for k, v in task.symbol_sets.items()
        },
        "policies": policies,
        "choices": choose_on_validation(policies, c),
        "reward_models": rm_stats,
        "rankings": len(train_cmp),
        "validation_rm_accuracy": rm_accuracy(rm, held["validation"], task, tau),
        "overoptimization": overopt,
        "optimum": curves,
        "ppo_final_beta": ppo_beta,
        "timings": dict(
            timings, total=time.perf_counter() - t_start, cpu=time.process_time() - cpu_start
        ),
    }


def ppo_names(c: RLHFConfig) -> list[str]:
    return [f"PPO, KL target {k:g}" for k in c.ppo_target_kls]


def dpo_names(c: RLHFConfig) -> list[str]:
    return [f"DPO, beta {b:g}" for b in c.dpo_betas]


def bon_names(c: RLHFConfig) -> list[str]:
    return [f"best-of-{n}" for n in c.best_of_n]


def choose_on_validation(
    policies: dict[str, dict[str, dict[str, float]]], c: RLHFConfig
) -> dict[str, str]:
    """The choices of one seed, made on validation prompts only:
    - "PPO" / "DPO": the setting with the highest validation win rate among those whose
      validation KL is at most MAX_KL (if none, the one with the smallest KL);
    - "<method> frontier": the point whose validation E[r*] gain over SFT is the largest
      fraction of the exact optimum's gain at the same KL (the fraction of E[r*] itself
      would favour the smallest KL: SFT is at 1 there)."""
    val = {k: v["validation"] for k, v in policies.items()}

    def best_win(names: list[str]) -> str:
        ok = [n for n in names if val[n]["kl"] <= MAX_KL]
        return (
            max(ok, key=lambda n: val[n]["win"]) if ok else min(names, key=lambda n: val[n]["kl"])
        )

    out = {"PPO": best_win(ppo_names(c)), "DPO": best_win(dpo_names(c))}
    for method, names in (
        ("PPO", ppo_names(c)),
        ("DPO", dpo_names(c)),
        ("best-of-n", bon_names(c)),
    ):
        out[f"{method} frontier"] = max(names, key=lambda n: val[n]["fraction_of_gain"])
    return out


# ---------------------------------------------------------------------------- over seeds


def _job(args: tuple[RLHFConfig, int]) -> dict[str, Any]:
    c, seed = args
    from ..config import set_num_threads

    set_num_threads(c.threads)
    return run_seed(c, seed, log=lambda s: print(s, flush=True))


def run_seeds(c: RLHFConfig, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """run_seed for every seed, in c.workers spawned processes (fork is unsafe once OpenMP has
    run); the results do not depend on the number of workers."""
    if c.workers == 1 or len(c.seeds) == 1:
        from ..config import get_num_threads, set_num_threads

        saved = get_num_threads()
        set_num_threads(c.threads)
        try:
            return [run_seed(c, s, log) for s in c.seeds]
        finally:
            set_num_threads(saved)
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(min(c.workers, len(c.seeds))) as pool:
        return pool.map(_job, [(c, s) for s in c.seeds], chunksize=1)


def run_rlhf(
    config: RLHFConfig,
    out_dir: str | None = None,
    plots: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every seed; write results.json (the shared schema) and the PNG plots into out_dir;
    return the results as written."""
    c = config
    if out_dir is not None:
        prepare_run_dir(out_dir, c.to_dict(), resume=False, outputs=OUTPUTS)
    t0 = time.perf_counter()
    log(
        f"RLHF over {len(c.seeds)} seeds {list(c.seeds)} in {min(c.workers, len(c.seeds))} "
        f"process(es)"
    )
    runs = run_seeds(c, log)
    wall = time.perf_counter() - t0
    results = summarize(c, runs)
    results["metrics"]["timings"] = {
        "wall": wall,
        "cpu": sum(r["timings"]["cpu"] for r in runs),
        "per_seed": [r["timings"] for r in runs],
    }
    log("")
    for name in ("methods", "frontier", "reward_model", "overoptimization"):
        log(format_table(results["tables"][name]))
        log("")
    for t in results["targets"]:
        lo, hi = t.ci95
        log(f"target {t.name}: {t.value:.3f} [{lo:.3f}, {hi:.3f}] (bound {t.bound}; {t.verdict})")
    log(
        f"total {wall:.1f} s wall, {results['metrics']['timings']['cpu']:.1f} s CPU in the "
        f"seeds' processes"
    )
    if out_dir is not None:
        write_results(
            out_dir,
            "rlhf",
            c.to_dict(),
            results["protocol"],
            results["metrics"],
            results["targets"],
            results["tables"],
        )
        if plots:
            from ..rlhf import plots as plot_mod

            written = plot_mod.plot_all(results["metrics"], out_dir)
            log(
                "plots: "
                + (", ".join(written) if written else "skipped (matplotlib is not installed)")
            )
        log(f"results: {os.path.join(out_dir, 'results.json')}")
    return results


# ---------------------------------------------------------------------------- summary

#: the summary keys that are rates (their intervals stay within [0, 1])
RATE_KEYS = ("win", "accuracy")


def _interval(values: list[float], key: str) -> Interval:
    return mean_interval(values, within=RATE if key in RATE_KEYS else None)


def summarize(c: RLHFConfig, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Intervals over seeds (test prompts) for every policy, frontier point and reward model;
    the targets with verdicts; the tables; the protocol."""
    seeds = [r["seed"] for r in runs]

    def test(name: str, key: str) -> list[float]:
        return [r["policies"][name]["test"][key] for r in runs]

    def chosen(what: str, key: str) -> list[float]:
        return [r["policies"][r["choices"][what]]["test"][key] for r in runs]

    names = list(runs[0]["policies"])
    points = {
        name: {k: _interval(test(name, k), k).to_dict() for k in SUMMARY_KEYS} for name in names
    }
    frontier = {"points": points, "optimum": _mean_curves(runs)}
    best_of_n = [
        {
            "n": n,
            "kl_bound": ex.best_of_n_kl_bound(n),
            **{k: points[f"best-of-{n}"][k] for k in ("kl", "true", "win", "rm")},
        }
        for n in c.best_of_n
    ]
    overopt = _overopt_summary(runs)
    reward_model = {
        size: {
            k: _interval([r["reward_models"][size][k] for r in runs], k).to_dict()
            for k in ("accuracy", "ceiling", "above_chance", "true_correlation")
        }
        for size in runs[0]["reward_models"]
    }
    targets = [
        target(
            f"PPO win rate vs SFT, test symbol sets (KL target chosen on validation, "
            f"KL <= {MAX_KL:g}) (at least)",
            mean_interval(chosen("PPO", "win"), within=RATE),
            WIN_RATE_BOUND,
        ),
        target(
            "that PPO policy's KL to SFT, nats (at most)",
            mean_interval(chosen("PPO", "kl")),
            MAX_KL,
            higher_is_better=False,
        ),
        *[
            target(
                f"{m}: {what} at equal KL, {point}",
                mean_interval(chosen(f"{m} frontier", key)),
                OPTIMUM_FRACTION_BOUND,
            )
            for key, what, point in (
                (
                    "fraction_of_optimum",
                    "E[r*] / exact optimum's E[r*]",
                    "frontier point chosen on validation (at least)",
                ),
                (
                    "fraction_of_gain",
                    "gain over SFT / exact optimum's gain",
                    "same point (stricter; at least)",
                ),
            )
            for m in ("PPO", "DPO", "best-of-n")
        ],
        target(
            "PPO minus best-of-n E[r*], each frontier point chosen on validation (paired; above 0)",
            paired_interval(chosen("PPO frontier", "true"), chosen("best-of-n frontier", "true")),
            0.0,
        ),
        target(
            "PPO minus SFT on top-ranked E[r*] (paired; above 0)",
            paired_interval(chosen("PPO", "true"), test("SFT on top-ranked", "true")),
            0.0,
        ),
    ]
    metrics = {
        "seeds": seeds,
        "per_seed": runs,
        "frontier": frontier,
        "best_of_n": best_of_n,
        "overoptimization": overopt,
        "reward_model": reward_model,
        "choices": {r["seed"]: r["choices"] for r in runs},
    }
    tables = make_tables(c, runs, points, overopt, reward_model)
    split_sizes = runs[0]["splits"]
    protocol = Protocol(
        splits={
            **split_sizes,
            "train symbol sets": len(runs[0]["symbol_sets"]["train"]),
            "validation symbol sets": len(runs[0]["symbol_sets"]["validation"]),
            "test symbol sets": len(runs[0]["symbol_sets"]["test"]),
        },
        seeds=seeds,
        tuned={
            "which PPO KL target and DPO beta are reported": "validation",
            "which frontier point is compared with the optimum": "validation",
            "widths and budgets (fixed before the run, for time on 2 cores)": (
                "development seeds 0-1 (the default run reports seeds 10-15)"
            ),
        },
        notes="Whole symbol sets are held out (a prompt's set fixes its reward table), drawn "
        "anew per seed; each seed is a new split, new labels and new models; policies "
        "are evaluated exactly (the response space is enumerated); test prompts are "
        "read once, at the end; intervals are Student t over seeds.",
    )
    return {"metrics": metrics, "targets": targets, "tables": tables, "protocol": protocol}


def _mean_curves(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, float]]]:
    """The exact optimum's curves on test prompts, averaged over seeds at each beta."""
    out = {}
    for reward in runs[0]["optimum"]["test"]:
        rows = zip(*[r["optimum"]["test"][reward] for r in runs])
        out[reward] = [
            {
                "beta": row[0]["beta"],
                **{k: float(np.mean([x[k] for x in row])) for k in ("kl", "true", "win", "rm")},
            }
            for row in rows
        ]
    return out


def gao_fit(sqrt_kl: np.ndarray, gain: np.ndarray) -> tuple[float, float]:
    """Gao et al.'s best-of-n form, gain = d (alpha - beta d) with d = sqrt(KL), by least
    squares (no intercept): returns (alpha, beta)."""
    design = np.stack([sqrt_kl, -(sqrt_kl**2)], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(design, gain, rcond=None)
    return float(alpha), float(beta)


def _overopt_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per reward-model size: the best-of-n curve (means over seeds), where the true reward
    peaks, and Gao et al.'s fit of the true-reward gain over SFT."""
    out = {}
    for size in runs[0]["overoptimization"]:
        curves = [r["overoptimization"][size] for r in runs]
        sft_true = [r["policies"]["SFT"]["test"]["true"] for r in runs]
        mean = [
            {
                "n": row[0]["n"],
                **{
                    k: float(np.mean([x[k] for x in row]))
                    for k in ("kl", "kl_bound", "rm", "true", "win")
                },
            }
            for row in zip(*curves)
        ]
        for m in mean:
            m["sqrt_kl"] = math.sqrt(max(m["kl"], 0.0))
        peak_true, final_true, peak_kl, fits = [], [], [], []
        for curve, base in zip(curves, sft_true):
            trues = [x["true"] for x in curve]
            i = int(np.argmax(trues))
            peak_true.append(trues[i])
            peak_kl.append(math.sqrt(max(curve[i]["kl"], 0.0)))
            final_true.append(trues[-1])
            d = np.sqrt(np.maximum([x["kl"] for x in curve], 0.0))
            fits.append(gao_fit(d, np.array(trues) - base))
        out[size] = {
            "curve": mean,
            "peak_true": mean_interval(peak_true).to_dict(),
            "peak_sqrt_kl": mean_interval(peak_kl).to_dict(),
            "final_true": mean_interval(final_true).to_dict(),
            "final_minus_peak": paired_interval(final_true, peak_true).to_dict(),
            "gao_alpha": mean_interval([f[0] for f in fits]).to_dict(),
            "gao_beta": mean_interval([f[1] for f in fits]).to_dict(),
        }
    return out


def _iv(d: dict[str, Any]) -> str:
    lo, hi = d["ci95"]
    return f"{d['mean']:.3f} [{lo:.3f}, {hi:.3f}]"


def make_tables(
    c: RLHFConfig,
    runs: list[dict[str, Any]],
    points: dict[str, Any],
    overopt: dict[str, Any],
    reward_model: dict[str, Any],
) -> dict[str, Any]:
    """The result tables (cells: mean [95% interval] over seeds, test prompts)."""
    n = len(runs)

    def chosen_row(label: str, what: str) -> list[Any]:
        vals = {
            k: _interval([r["policies"][r["choices"][what]]["test"][k] for r in runs], k)
            for k in METHOD_COLUMNS
        }
        return [label] + [vals[k].format(3) for k in METHOD_COLUMNS]

    def fixed_row(name: str) -> list[Any]:
        p = points[name]
        return [name] + [_iv(p[k]) for k in METHOD_COLUMNS]

    middle_bon = f"best-of-{c.best_of_n[len(c.best_of_n) // 2]}"
    methods = {
        "caption": f"exact evaluation on the test symbol sets, mean [95% interval] over {n} "
        "seeds; the PPO and DPO settings chosen per seed on validation",
        "columns": [
            "method",
            "win vs SFT",
            "KL to SFT (nats)",
            "E[reward model]",
            "E[true reward]",
            "fraction of optimum's E[r*] at equal KL",
            "fraction of optimum's gain",
        ],
        "rows": [
            fixed_row("pretrained"),
            fixed_row("SFT"),
            fixed_row("SFT on top-ranked"),
            fixed_row(middle_bon),
            chosen_row("PPO (KL target chosen on validation)", "PPO"),
            chosen_row("DPO (beta chosen on validation)", "DPO"),
        ],
    }
    front_rows = []
    for name in bon_names(c) + ppo_names(c) + dpo_names(c) + ["SFT on top-ranked"]:
        p = points[name]
        front_rows.append(
            [name]
            + [
                _iv(p[k])
                for k in (
                    "kl",
                    "true",
                    "win",
                    "optimum_true",
                    "fraction_of_optimum",
                    "fraction_of_gain",
                )
            ]
        )
    for row in _mean_curves(runs)["true reward"]:
        if row["kl"] <= 2 * MAX_KL:
            front_rows.append(
                [
                    f"exact optimum of r*, beta {row['beta']:g}",
                    row["kl"],
                    row["true"],
                    row["win"],
                    row["true"],
                    1.0,
                    1.0,
                ]
            )
    frontier = {
        "caption": f"reward against KL (the DPO paper's comparison): test symbol sets, mean "
        f"[95% interval] over {n} seeds; the optimum column is the exact "
        "true-reward optimum pi_SFT exp(r*/beta)/Z at the same KL (the best any "
        "policy can do there); its own rows are seed means",
        "columns": [
            "policy",
            "KL to SFT (nats)",
            "E[true reward]",
            "win vs SFT",
            "optimum's E[r*] at that KL",
            "fraction of it",
            "fraction of its gain over SFT",
        ],
        "rows": front_rows,
    }
    rm_table = {
        "caption": "reward models on the test symbol sets' labelled pairs (chance 0.5; the "
        "ceiling is the true reward's accuracy on the same noisy labels)",
        "columns": [
            "reward model (training rankings)",
            "pairwise accuracy",
            "noise ceiling",
            "above chance (acc-0.5)/(ceiling-0.5)",
            "correlation with r*",
        ],
        "rows": [
            [size]
            + [_iv(d[k]) for k in ("accuracy", "ceiling", "above_chance", "true_correlation")]
            for size, d in sorted(reward_model.items(), key=lambda kv: int(kv[0]))
        ],
    }
    over_rows = []
    for size, d in sorted(overopt.items(), key=lambda kv: int(kv[0])):
        last = d["curve"][-1]
        over_rows.append(
            [
                size,
                _iv(d["peak_true"]),
                _iv(d["peak_sqrt_kl"]),
                _iv(d["final_true"]),
                last["rm"],
                _iv(d["final_minus_peak"]),
                _iv(d["gao_alpha"]),
                _iv(d["gao_beta"]),
            ]
        )
    over = {
        "caption": f"over-optimization (Gao et al. 2022): best-of-n against SFT with reward "
        f"models from fewer rankings, n up to {c.overopt_n[-1]}, test symbol sets; "
        "true-reward gain over SFT fitted as d (alpha - beta d), d = sqrt(KL)",
        "columns": [
            "reward model (training rankings)",
            "peak E[r*]",
            "at sqrt(KL)",
            f"E[r*] at n={c.overopt_n[-1]}",
            f"E[proxy] at n={c.overopt_n[-1]}",
            "final minus peak E[r*]",
            "alpha",
            "beta",
        ],
        "rows": over_rows,
    }
    return {
        "methods": methods,
        "frontier": frontier,
        "reward_model": rm_table,
        "overoptimization": over,
    }


def format_table(table: dict[str, Any]) -> str:
    """A result table as aligned text for the terminal."""
    rows = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in table["rows"]]
    widths = [
        max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h))
        for i, h in enumerate(table["columns"])
    ]
    lines = [
        table.get("caption", "") + ":",
        "  ".join(str(h).ljust(w) for h, w in zip(table["columns"], widths)),
    ]
    lines.append("-" * len(lines[-1]))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


__all__ = [
    "RLHFConfig",
    "run_rlhf",
    "run_seed",
    "Split",
    "summarize",
    "choose_on_validation",
    "gao_fit",
    "format_table",
]
