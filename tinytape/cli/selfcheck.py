"""`python -m tinytape selfcheck`: the configuration and the kernel self-check."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("selfcheck", help="print the configuration and check the C kernels "
                       "against their numpy references")
    p.add_argument("--seed", type=int, default=0, help="seed of the random test inputs")
    p.add_argument("--threads", type=int, default=None, help="OpenMP threads for the kernels")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import selfcheck, set_num_threads, show_config

    if args.threads is not None:
        set_num_threads(args.threads)
    show_config()
    print("kernel self-check (C against the numpy references):")
    return 0 if selfcheck.run(seed=args.seed) else 1
