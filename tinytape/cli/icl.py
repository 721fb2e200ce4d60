"""`python -m tinytape icl`: in-context against in-weights learning, and the copy task.

Trains, for every seed, one small Transformer per (Zipf exponent, p_bursty) condition on
Chan et al. (2022)'s task (noisy exemplars of classes with fixed labels) and scores
in-context learning (held-out classes, labels given only in the context) and in-weights
learning (trained classes, uninformative context); and, for every copy seed, a small GPT
on the copy task (fresh key -> label mappings), reporting how many seeds leave the plateau
within the budget and probes for unseen keys and more keys. Writes results.json and icl.png
(with matplotlib) to --out and prints the tables; runs.jsonl keeps every finished run, so
an interrupted command continues where it stopped. Under mpiexec -n N the N ranks share
out the runs (--workers is then ignored); the results are those of one process.
"""

from __future__ import annotations

import argparse
import os
from typing import Any


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v.strip())


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "icl",
        help="in-context vs in-weights learning (Chan et al. 2022: "
        "burstiness, Zipfian classes) and the copy task's escape rate",
        description=__doc__.split("\n\n", 1)[1].strip(),
    )
    p.add_argument(
        "--out",
        default=os.path.join("runs", "icl"),
        metavar="DIR",
        help="output folder for results.json and icl.png (default: runs/icl)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="about a minute: 2 seeds, 2 burstiness levels, 150 steps per model; "
        "the same schema, the targets are not expected to be met",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=10,
        help="the first seed (default 10: seeds 0-2 were used in development)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        metavar="N",
        help="trade-off seeds: seed, seed+1, ... (default 5, --quick 2; 0 skips the trade-off)",
    )
    p.add_argument(
        "--copy-seeds",
        type=int,
        default=None,
        metavar="N",
        help="copy-task seeds: seed, seed+1, ... (default 10, --quick 2; 0 skips the copy task)",
    )
    p.add_argument(
        "--p-bursty",
        type=_floats,
        default=None,
        metavar="P,P,...",
        help="the burstiness sweep (default 0,0.5,0.9,1)",
    )
    p.add_argument(
        "--zipf",
        type=_floats,
        default=None,
        metavar="A,A,...",
        help="the Zipf-exponent sweep (default 0,1,2)",
    )
    p.add_argument(
        "--steps", type=int, default=None, help="training steps per trade-off model (default 2000)"
    )
    p.add_argument(
        "--copy-steps",
        type=int,
        default=None,
        help="training steps per copy-task model: the escape budget (default 3000)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OpenMP threads of the kernels in each process (default: 1; the "
        "matrices are tiny, and more threads only contend)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="processes running the (condition, seed) runs side by side (default: 2; "
        "ignored under mpiexec, where the ranks are the workers)",
    )
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="start over even if --out holds finished runs of the same settings "
        "(by default they are kept and only the missing runs are trained)",
    )
    p.add_argument("--no-plot", action="store_true", help="do not write icl.png")
    p.add_argument(
        "--progress",
        choices=["bar", "plain", "off"],
        default=None,
        help="progress display (default: a bar on a terminal, plain lines otherwise)",
    )
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):  # -> ICLConfig
    """The ICLConfig the options describe (it checks itself: a bad value is a UsageError)."""
    from dataclasses import replace

    from ..experiments.icl import ICLConfig, quick_config
    from . import UsageError

    try:
        cfg = quick_config() if args.quick else ICLConfig()
        over: dict[str, Any] = {}
        for name in ("seeds", "copy_seeds"):
            n = getattr(args, name)
            if n is not None and n < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {n}")
            n = len(getattr(cfg, name)) if n is None else n
            over[name] = tuple(range(args.seed, args.seed + n))
        if args.p_bursty is not None:
            over["p_bursty_grid"] = args.p_bursty
        if args.zipf is not None:
            over["zipf_grid"] = args.zipf
        if args.steps is not None:
            over["tradeoff"] = replace(cfg.tradeoff, steps=args.steps)
        if args.copy_steps is not None:
            over["copy"] = replace(cfg.copy, steps=args.copy_steps)
        return replace(cfg, **over)
    except ValueError as e:
        raise UsageError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    """Under mpiexec -n N every rank runs this; the runs are shared out over the ranks."""
    from .ranks import on_every_rank

    return on_every_rank(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from .. import set_num_threads
    from ..distributed import get_rank, get_world_size, on_rank_zero
    from ..experiments.icl import format_summary, plot_results, run_icl
    from . import UsageError

    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    set_num_threads(args.threads)
    cfg = config_from_args(args)

    def make_out() -> None:
        try:
            os.makedirs(args.out, exist_ok=True)
        except OSError as e:
            raise UsageError(f"--out: cannot create {args.out!r}: {e.strerror}") from None

    on_rank_zero(make_out)
    ranks = get_world_size()
    if ranks > 1:
        print(f"{ranks} MPI ranks: the runs shared out over the ranks (one process each)")
    results = run_icl(
        cfg, args.out, progress=args.progress, workers=args.workers, resume=not args.no_resume
    )
    print(format_summary(results))
    print()
    m = results["metrics"]
    print(
        f"{len(m['tradeoff'])} trade-off runs and {len(m['copy'])} copy runs "
        f"({m['resumed_runs']} taken from an earlier run): wall time {m['wall_seconds']:.0f} "
        f"s, CPU {m['cpu_seconds']:.0f} s with "
        + (f"{ranks} MPI ranks" if ranks > 1 else f"{args.workers} worker(s)")
    )
    if get_rank() != 0:  # the files are rank 0's
        return 0
    if not args.no_plot:
        png = os.path.join(args.out, "icl.png")
        if plot_results(cfg, m, png):
            print(f"wrote {png}")
        else:
            from ..plotting import INSTALL_HINT

            print(f"{INSTALL_HINT}; no icl.png")
    print(f"wrote {os.path.join(args.out, 'results.json')}")
    return 0
