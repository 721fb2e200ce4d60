"""`python -m tinytape rlhf`: InstructGPT's three steps (SFT, reward model, PPO), DPO and the
baselines best-of-n and SFT on the top-ranked responses, over several seeds, on a toy task
small enough to compute the best KL-regularized policy exactly."""

from __future__ import annotations

import argparse


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rlhf",
        help="RLHF in three steps (SFT, reward model, PPO with a KL penalty), DPO and "
        "best-of-n over several seeds, against the exact KL-regularized optimum",
        description="Per seed (a new split of held-out symbol sets): pretrain a small GPT, "
        "fine-tune it on demonstrations (step 1), train a reward model on simulated labeler "
        "rankings (step 2), optimize the policy with PPO against it over several KL targets "
        "(step 3), run DPO over several beta, best-of-n and SFT on the top-ranked responses; "
        "over-optimization against reward models from fewer rankings. Choices are made on "
        "validation symbol sets, test ones are read at the end. Prints the tables with 95% "
        "intervals over seeds and writes results.json (the shared schema) and PNG plots to "
        "--out.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="under a minute: two seeds, small budgets (the targets are not "
        "expected to hold), the same schema",
    )
    p.add_argument(
        "--small",
        action="store_true",
        help="about 80 s on 2 free cores, estimated (the demo's stage): two seeds, one PPO KL "
        "target, one DPO beta, fewer rankings",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="first seed (default 10; 0 with --quick or --small); the seeds are consecutive",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="how many seeds (default 6; 2 with --quick or --small); at least 2",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="worker processes running the seeds (default 2; the results do not depend on it)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OpenMP threads per worker (default 1: the matrices are tiny)",
    )
    p.add_argument(
        "--out",
        default="runs/rlhf",
        help="directory for results.json and the plots (default runs/rlhf)",
    )
    p.add_argument(
        "--no-plots",
        action="store_true",
        help="do not draw plots (they also are skipped without matplotlib)",
    )
    p.add_argument(
        "--target-kls",
        type=_floats,
        default=None,
        metavar="LIST",
        help="PPO's KL targets, nats, comma-separated (default 1,2.5,5)",
    )
    p.add_argument(
        "--dpo-betas",
        type=_floats,
        default=None,
        metavar="LIST",
        help="DPO's betas, comma-separated (default 0.05,0.1,0.3)",
    )
    p.add_argument(
        "--best-of-n",
        type=_ints,
        default=None,
        metavar="LIST",
        help="best-of-n's n, comma-separated (default 2,4,...,256)",
    )
    p.add_argument(
        "--ppo-iterations",
        type=int,
        default=None,
        help="PPO iterations (rollout + updates) per KL target (default 60)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="sampling temperature, applied to the logits in rollouts, training and "
        "evaluation alike (default 1.0)",
    )
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):  # -> RLHFConfig
    """The RLHFConfig the options describe (it checks itself: a bad value is a UsageError)."""
    from dataclasses import replace

    from ..experiments.rlhf import RLHFConfig
    from . import UsageError

    try:
        if args.quick and args.small:
            raise ValueError("quick and --small: choose one size")
        reduced = args.quick or args.small
        first = args.seed if args.seed is not None else (0 if reduced else 10)
        count = args.seeds if args.seeds is not None else (2 if reduced else 6)
        if first < 0:
            raise ValueError(f"seed must be >= 0, got {first}")
        if count < 2:
            raise ValueError(f"seeds must be at least 2 (intervals need them), got {count}")
        seeds = tuple(range(first, first + count))
        config = (
            RLHFConfig.quick(seeds)
            if args.quick
            else RLHFConfig.small(seeds)
            if args.small
            else RLHFConfig(seeds=seeds)
        )
        ppo = config.ppo
        if args.ppo_iterations is not None:
            ppo = replace(ppo, iterations=args.ppo_iterations)
        if args.temperature is not None:
            ppo = replace(ppo, temperature=args.temperature)
        over = {"ppo": ppo, "workers": args.workers, "threads": args.threads}
        for option, name in (
            ("target_kls", "ppo_target_kls"),
            ("dpo_betas", "dpo_betas"),
            ("best_of_n", "best_of_n"),
        ):
            if getattr(args, option) is not None:
                over[name] = getattr(args, option)
        return replace(config, **over)
    except ValueError as e:
        field = str(e).split()[0]
        raise UsageError(f"--{field.replace('_', '-')}: {e}") from None


def run(args: argparse.Namespace) -> int:
    from ..experiments.rlhf import run_rlhf

    config = config_from_args(args)
    results = run_rlhf(config, out_dir=args.out, plots=not args.no_plots)
    return 0 if results else 1
