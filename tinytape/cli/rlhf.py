"""`python -m tinytape rlhf`: InstructGPT's three steps (SFT, reward model, PPO) and DPO on a
toy task small enough to compute the best KL-regularized policy exactly."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rlhf", help="RLHF in three steps (SFT, reward model, PPO with a KL penalty) and DPO, "
        "compared with the exact KL-regularized optimum",
        description="Pretrain a small GPT, fine-tune it on demonstrations (step 1), train a "
        "reward model on simulated labeler rankings (step 2), optimize the policy with PPO "
        "against it (step 3), run DPO on the same comparisons, and show over-optimization. "
        "Prints a table per method and writes metrics.json and PNG plots to --out.")
    p.add_argument("--quick", action="store_true",
                   help="a ~30 s run with small budgets (the targets are not expected to hold)")
    p.add_argument("--seed", type=int, default=0, help="seed of everything random (default 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="OpenMP threads for the kernels (default 1: the matrices are tiny, "
                        "so one thread is faster than two)")
    p.add_argument("--out", default="runs/rlhf",
                   help="directory for metrics.json and the plots (default runs/rlhf)")
    p.add_argument("--no-plots", action="store_true",
                   help="do not draw plots (they also are skipped without matplotlib)")
    p.add_argument("--target-kl", type=float, default=None,
                   help="KL target of PPO's adaptive controller, nats (default 3.0)")
    p.add_argument("--ppo-iterations", type=int, default=None,
                   help="PPO iterations (rollout + updates) (default 100; 12 with --quick)")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature, applied to the logits in rollouts, training and "
                        "evaluation alike (default 1.0)")
    p.add_argument("--dpo-beta", type=float, default=None, help="DPO's beta (default 0.1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .. import set_num_threads
    from ..rlhf.experiment import ExperimentConfig
    from ..rlhf.experiment import run as run_experiment
    from . import UsageError

    if args.target_kl is not None and not args.target_kl > 0:
        raise UsageError(f"--target-kl must be positive, got {args.target_kl}")
    if args.ppo_iterations is not None and args.ppo_iterations < 1:
        raise UsageError(f"--ppo-iterations must be at least 1, got {args.ppo_iterations}")
    if args.temperature is not None and not args.temperature > 0:
        raise UsageError(f"--temperature must be positive, got {args.temperature}")
    if args.dpo_beta is not None and not args.dpo_beta > 0:
        raise UsageError(f"--dpo-beta must be positive, got {args.dpo_beta}")
    set_num_threads(args.threads)
    config = ExperimentConfig.quick(args.seed) if args.quick else ExperimentConfig(seed=args.seed)
    ppo = config.ppo
    if args.target_kl is not None:
        ppo = replace(ppo, target_kl=args.target_kl)
    if args.ppo_iterations is not None:
        ppo = replace(ppo, iterations=args.ppo_iterations)
    if args.temperature is not None:
        ppo = replace(ppo, temperature=args.temperature)
    config = replace(config, ppo=ppo)
    if args.dpo_beta is not None:
        config = replace(config, dpo_beta=args.dpo_beta)
    results = run_experiment(config, out_dir=args.out, plots=not args.no_plots)
    return 0 if results else 1
