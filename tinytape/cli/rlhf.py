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
        "Prints a table per method and writes results.json (the shared schema) and PNG plots "
        "to --out.")
    p.add_argument("--quick", action="store_true",
                   help="a ~30 s run with small budgets (the targets are not expected to hold)")
    p.add_argument("--seed", type=int, default=0, help="seed of everything random (default 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="OpenMP threads for the kernels (default 1: the matrices are tiny, "
                        "so one thread is faster than two)")
    p.add_argument("--out", default="runs/rlhf",
                   help="directory for results.json and the plots (default runs/rlhf)")
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


def config_from_args(args: argparse.Namespace):  # -> RLHFConfig
    """The RLHFConfig the options describe (it checks itself: a bad value is a UsageError)."""
    from dataclasses import replace

    from ..experiments.rlhf import RLHFConfig
    from . import UsageError

    try:
        config = RLHFConfig.quick(args.seed) if args.quick else RLHFConfig(seed=args.seed)
        ppo = config.ppo
        for option, name in (("target_kl", "target_kl"), ("ppo_iterations", "iterations"),
                             ("temperature", "temperature")):
            if getattr(args, option) is not None:
                ppo = replace(ppo, **{name: getattr(args, option)})
        over = {"ppo": ppo}
        if args.dpo_beta is not None:
            over["dpo_beta"] = args.dpo_beta
        return replace(config, **over)
    except ValueError as e:
        field = str(e).split()[0]
        raise UsageError(f"--{field.replace('_', '-')}: {e}") from None


def run(args: argparse.Namespace) -> int:
    from .. import set_num_threads
    from ..experiments.rlhf import run_rlhf

    config = config_from_args(args)
    set_num_threads(args.threads)
    results = run_rlhf(config, out_dir=args.out, plots=not args.no_plots)
    return 0 if results else 1
