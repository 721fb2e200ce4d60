"""`python -m tinytape icl`: in-context learning without gradient updates (bursty vs not).

Trains the same small GPT on bursty and on non-bursty (key, label) sequences, then scores
zero-, one- and few-shot prompts on held-out mappings with the weights frozen. Writes
results.json, metrics.jsonl and icl.png (with matplotlib) to --out and prints the table.
"""

from __future__ import annotations

import argparse
import os


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("icl", help="in-context learning: train on bursty vs non-bursty "
                       "(key, label) sequences, then score k-shot prompts with frozen weights",
                       description=__doc__.split("\n\n", 1)[1].strip())
    p.add_argument("--out", default=os.path.join("runs", "icl"), metavar="DIR",
                   help="output folder for results.json, metrics.jsonl and icl.png "
                        "(default: runs/icl)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps per model (default: 6000, or 400 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run (400 steps, small evaluation; ~2 min on a busy 2-core "
                        "machine): the targets are not expected to be met")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the data, the initial weights and the held-out episodes")
    p.add_argument("--threads", type=int, default=1,
                   help="OpenMP threads of the kernels in each process (default: 1; the "
                        "matrices are tiny, and more threads only contend)")
    p.add_argument("--jobs", type=int, default=2,
                   help="processes: with 2, the two models train side by side (default: 2)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="sequences per training step (default: 32)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate of AdamW")
    p.add_argument("--weight-decay", type=float, default=None,
                   help="AdamW weight decay on the weight matrices (default: 0)")
    p.add_argument("--init-scale", type=float, default=None,
                   help="multiplies the GPT's initial weight matrices (default: 3, i.e. std "
                        "0.06 instead of 0.02)")
    p.add_argument("--positional", default=None,
                   choices=["learned", "sinusoidal", "rotary", "alibi", "relative", "none"],
                   help="positional encoding of the GPT")
    p.add_argument("--test-episodes", type=int, default=None,
                   help="held-out episodes scored for each number of prior pairs")
    p.add_argument("--conditions", default=None,
                   help="comma-separated: bursty, non-bursty (default: both)")
    p.add_argument("--no-plot", action="store_true", help="do not write icl.png")
    p.add_argument("--progress", choices=["bar", "plain", "off"], default=None,
                   help="progress display (default: a bar on a terminal, plain lines "
                        "otherwise)")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):  # -> ICLConfig
    """The ICLConfig the options describe (it checks itself: a bad value is a UsageError)."""
    from ..experiments.icl import QUICK, ICLConfig
    from . import UsageError

    overrides = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                 "weight_decay": args.weight_decay, "init_scale": args.init_scale,
                 "positional": args.positional, "test_episodes": args.test_episodes}
    if args.conditions is not None:
        overrides["conditions"] = tuple(c.strip() for c in args.conditions.split(",")
                                        if c.strip())
    try:
        return ICLConfig(**{**(QUICK if args.quick else {}), "seed": args.seed,
                            **{k: v for k, v in overrides.items() if v is not None}})
    except ValueError as e:
        field = str(e).split()[0].rstrip(":")
        raise UsageError(f"--{field.replace('_', '-')}: {e}") from None


def run(args: argparse.Namespace) -> int:
    from .. import set_num_threads
    from ..experiments.icl import format_summary, plot_results, run_icl
    from . import UsageError

    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    set_num_threads(args.threads)
    cfg = config_from_args(args)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out: cannot create {args.out!r}: {e.strerror}") from None
    results = run_icl(cfg, args.out, progress=args.progress, jobs=args.jobs)
    print(format_summary(results))
    print()
    m = results["metrics"]
    for cond, res in m["conditions"].items():
        print(f"{cond}: {res['steps']} steps in {res['train_seconds']:.0f} s "
              f"({1000 * res['seconds_per_step']:.0f} ms/step); in training data "
              f"{res['train_data']['shown_fraction']:.1%} of labels follow an earlier pair "
              "with the same key")
    print(f"wall time {m['wall_seconds']:.0f} s with {args.jobs} job(s)")
    if not args.no_plot:
        png = os.path.join(args.out, "icl.png")
        if plot_results(m, results["history"], png):
            print(f"wrote {png}")
        else:
            from ..plotting import INSTALL_HINT

            print(f"{INSTALL_HINT}; no icl.png")
    print(f"wrote {os.path.join(args.out, 'results.json')} and metrics.jsonl")
    return 0
