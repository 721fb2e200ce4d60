"""`python -m tinytape check`: the kernel and gradient self-checks, written to --out.

Compares every C kernel with its numpy reference (float32 and float64), and the gradient of
every differentiable op (each of its registry samples) and of a few modules (the lecture's
Linear-Sigmoid-Linear-softmax network, LayerNorm, attention, a Transformer block, a small
GPT) with central finite differences in float64. Writes OUT/results.json and prints the
table; exit code 1 if a check fails. See tinytape/checks.py.
"""

from __future__ import annotations

import argparse
import json
import os


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="kernel and gradient self-checks (C vs numpy, autograd "
                       "vs finite differences), written to --out", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="OpenMP threads of the kernels (default: the library's setting)")
    p.add_argument("--out", default=os.path.join("runs", "check"), metavar="DIR",
                   help="output folder for results.json (default runs/check)")
    p.add_argument("--quick", action="store_true",
                   help="first derivatives only (no gradgradcheck): about 1 s instead of 2")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import checks, set_num_threads, show_config
    from . import UsageError

    if args.threads is not None:
        set_num_threads(args.threads)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out: {args.out} exists and is not a folder")
    os.makedirs(args.out, exist_ok=True)
    show_config()
    print("self-checks: C kernels against numpy, gradients against finite differences",
          flush=True)
    results = checks.run_all(seed=args.seed, second_order=not args.quick, verbose=True)
    results["seed"], results["second_order"] = args.seed, not args.quick
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    print(checks.format_table(results))
    if not results["c_extension"]:
        print("note: the C extension is not built; only the gradients were checked")
    print(f"{'all passed' if results['passed'] else 'FAILED'} in {results['seconds']:.1f} s; "
          f"wrote {os.path.join(args.out, 'results.json')}")
    return 0 if results["passed"] else 1
