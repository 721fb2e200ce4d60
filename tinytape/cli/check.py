"""`python -m tinytape check`: the kernel and gradient self-checks, written to --out.

Compares every C kernel with its numpy reference (float32 and float64), and the gradient of
every differentiable op (each of its registry samples) and of a few modules (the lecture's
Linear-Sigmoid-Linear-softmax network, LayerNorm, attention, a Transformer block, a small
GPT) with central finite differences in float64. Writes OUT/results.json and prints the
table; exit code 1 if a check fails. See tinytape/checks.py.
"""

from __future__ import annotations

import argparse
import os
from typing import Any


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
    write_check_results(args.out, results)
    print(checks.format_table(results))
    if not results["c_extension"]:
        print("note: the C extension is not built; only the gradients were checked")
    print(f"{'all passed' if results['passed'] else 'FAILED'} in {results['seconds']:.1f} s; "
          f"wrote {os.path.join(args.out, 'results.json')}")
    return 0 if results["passed"] else 1


GROUPS = (("kernels", "C kernels vs numpy references (float32, float64)"),
          ("ops", "gradients of every registry op vs finite differences"),
          ("modules", "gradients of whole modules vs finite differences"))


def write_check_results(out: str, results: dict[str, Any]) -> None:
    """OUT/results.json in the shared schema: the checks as metrics, a table per group and
    one target (no check fails; deterministic, so the interval is the count itself)."""
    from ..experiments.protocol import Protocol, Target, write_results

    rows = []
    for key, label in GROUPS:
        found = results.get(key) or []
        if not found:
            rows.append([label, "not run", None, "-"])
            continue
        worst = max(found, key=lambda c: c["error"])
        rows.append([label, f"{sum(bool(c['passed']) for c in found)}/{len(found)}",
                     f"{worst['error']:.1e}", f"`{worst['name']}`"])
    tables = {"summary": {"caption": "self-checks", "columns": ["check", "passed",
                                                                "max error", "where"],
                          "rows": rows}}
    mods = results.get("modules") or []
    if mods:
        tables["modules"] = {"caption": "modules (float64, inputs and all parameters)",
                             "columns": ["module", "elements", "error", "result"],
                             "rows": [[m["name"], m["size"], f"{m['error']:.1e}",
                                       "ok" if m["passed"] else "FAILED"] for m in mods]}
    failed = sum(not c["passed"] for key, _ in GROUPS for c in results.get(key) or [])
    targets = [Target("failed checks (none)", float(failed), (float(failed), float(failed)),
                      0.0, "met" if failed == 0 else "not met")]
    protocol = Protocol(splits={}, seeds=[results["seed"]], tuned={}, selection="none",
                        notes="Deterministic checks on seeded random inputs: nothing is "
                              "estimated, so the interval of a count is the count.")
    write_results(out, "check", {"seed": results["seed"],
                                 "second_order": results["second_order"]},
                  protocol, results, targets, tables)
