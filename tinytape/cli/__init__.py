"""`python -m tinytape [command]`: the command-line entry point.

Each command lives in its own module with `add_parser(subparsers)` (which sets
`func` on its parser) and is listed in COMMANDS. Bad arguments get a one-line error and
exit code 2 (argparse's convention), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
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


def run_command(args: argparse.Namespace) -> int:
    """Check the shared options, then run the parsed command: a UsageError becomes its
    one-line message on stderr and exit code 2."""
    try:
        check_common(args)
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
