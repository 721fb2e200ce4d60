"""`python -m tinytape [command]`: the command-line entry point.

Each command lives in its own module with `add_parser(subparsers)` (which sets
`func` on its parser) and is listed in COMMANDS. Bad arguments get a one-line error and
exit code 2 (argparse's convention), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

#: command name -> module (imported lazily, so `python -m tinytape` starts fast)
COMMANDS: dict[str, str] = {
    "selfcheck": "tinytape.cli.selfcheck",
    "check": "tinytape.cli.check",
    "layerwise": "tinytape.cli.layerwise",
    "rlhf": "tinytape.cli.rlhf",
    "icl": "tinytape.cli.icl",
    "lm": "tinytape.cli.lm",
    "authors": "tinytape.cli.authors",
    "demo": "tinytape.cli.demo",
    "report": "tinytape.cli.report",
}


class UsageError(Exception):
    """A bad argument found after parsing (a missing file, an empty folder...): exit 2."""


def check_common(args: argparse.Namespace) -> None:
    """The options most commands share, checked once for all: seeds (numpy's must be >= 0)
    and --threads (at least 1)."""
    for name in ("seed", "library_seed"):
        value = getattr(args, name, None)
        if isinstance(value, int) and value < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    threads = getattr(args, "threads", None)
    if isinstance(threads, int) and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")


#: Commands that train for minutes, with their time budgets on 2 cores with the C kernels
#: (default sizes, --quick), as their docs state them. Without the C extension they refuse
#: to start unless the user chose the numpy kernels (TINYTAPE_BACKEND=numpy).
LONG_RUNNING: dict[str, tuple[float, float]] = {
    "demo": (600, 60), "layerwise": (600, 60), "lm": (120, 20), "authors": (1200, 60),
    "icl": (900, 60), "rlhf": (900, 60),
}
#: How many times longer the numpy reference kernels take than C: CPU seconds of the stages
#: of `demo --quick`, numpy over C, were 16x (layerwise), 6x (lm), 5x (authors), 6x (icl),
#: 7x over the four (one thread, one run each on a busy 2-core machine).
NUMPY_SLOWDOWN = 8


def check_backend(args: argparse.Namespace) -> None:
    """Refuse a long-running command on the numpy kernels unless the user asked for them."""
    from ..backend import _state

    if args.command not in LONG_RUNNING or getattr(args, "lm_command", "train") != "train":
        return
    if _state._C is not None or _state.requested == "numpy":
        return
    c_seconds = LONG_RUNNING[args.command][1 if getattr(args, "quick", False) else 0]
    raise UsageError(
        f"not started: the C extension is missing ({_state.missing_reason()}), and on the "
        f"numpy reference kernels this would take about "
        f"{_minutes(c_seconds * NUMPY_SLOWDOWN)} instead of {_minutes(c_seconds)}.\n"
        f"  fix: {_state.fix_command()}\n"
        f"  or run it on the numpy kernels anyway: TINYTAPE_BACKEND=numpy python -m tinytape "
        f"{args.command} ...")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} minutes" if seconds >= 90 else f"{seconds:.0f} s"


def run_command(args: argparse.Namespace) -> int:
    """Check the shared options and the backend, then run the parsed command: a UsageError
    becomes its message on stderr and exit code 2."""
    try:
        check_common(args)
        check_backend(args)
        return int(args.func(args) or 0)
    except UsageError as e:
        print(f"tinytape {args.command}: error: {e}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinytape",
        description="tinytape: a tape-based autograd engine. Without a command: print the "
                    "configuration and self-check the kernels.")
    sub = parser.add_subparsers(dest="command", metavar="command")
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["selfcheck", *(argv or [])])
    try:
        return run_command(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader closed the pipe (`... | head`): stop quietly, as Unix tools do, and
        # keep Python from failing again while flushing stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
