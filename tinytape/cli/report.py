"""`python -m tinytape report`: results.json files as markdown tables, and the docs' tables
regenerated from the committed results files (never typed by hand).

    python -m tinytape report runs/layerwise            # print a run's tables and targets
    python -m tinytape report --docs docs               # rewrite the docs' result blocks
    python -m tinytape report --docs docs --check       # exit 1 if a block is out of date
    python -m tinytape report --docs docs/layerwise.md  # one page

A docs page marks each generated block with a pair of comments naming a results file
(relative to the page) and, optionally, which parts to show (table names, "targets",
"protocol"; default all):

    <!-- results: results/layerwise-digits.json sigmoid_test targets -->
    ...generated; anything here is replaced...
    <!-- /results -->
"""

from __future__ import annotations

import argparse
import os
import re
import sys

BLOCK = re.compile(r"(<!-- results: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- /results -->)",
                   re.S)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="render results.json files as markdown; regenerate "
                       "the docs' result tables", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", metavar="RESULTS",
                   help="results.json files or run folders to print")
    p.add_argument("--docs", default=None, metavar="DIR|PAGE",
                   help="rewrite the generated blocks of every DIR/*.md (or of one page) "
                        "from the results files they name")
    p.add_argument("--check", action="store_true",
                   help="with --docs: change nothing, exit 1 if a block is out of date")
    p.set_defaults(func=run)


def render_block(spec: str, page_dir: str) -> str:
    """The markdown of one block: `spec` is 'FILE [PART ...]', FILE relative to page_dir."""
    from ..experiments.protocol import read_results, render_results

    words = spec.split()
    if not words:
        raise ValueError("a results block names no file")
    results = read_results(os.path.join(page_dir, words[0]))
    return render_results(results, words[1:] or None)


def update_page(path: str) -> tuple[str, str]:
    """(old text, new text) of a docs page with its blocks regenerated."""
    with open(path, encoding="utf-8") as f:
        old = f.read()
    page_dir = os.path.dirname(path)

    def repl(m: re.Match) -> str:
        try:
            body = render_block(m.group("spec"), page_dir)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        return m.group(1) + body + m.group(4)

    return old, BLOCK.sub(repl, old)


def run(args: argparse.Namespace) -> int:
    from ..experiments.protocol import read_results, render_results
    from . import UsageError

    if not args.paths and args.docs is None:
        raise UsageError("give results files or folders to print, or --docs DIR")
    if args.check and args.docs is None:
        raise UsageError("--check goes with --docs")
    for path in args.paths:
        try:
            results = read_results(path)
        except ValueError as e:
            raise UsageError(str(e)) from None
        print(f"## {results['experiment']} ({path})\n")
        print(render_results(results))
    if args.docs is None:
        return 0
    if os.path.isdir(args.docs):
        pages = [os.path.join(args.docs, n) for n in sorted(os.listdir(args.docs))
                 if n.endswith(".md")]
    elif os.path.isfile(args.docs) and args.docs.endswith(".md"):
        pages = [args.docs]
    else:
        raise UsageError(f"--docs: no such folder or .md page: {args.docs}")
    stale = []
    for path in pages:
        try:
            old, new = update_page(path)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if new == old:
            continue
        stale.append(path)
        if not args.check:
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(new)
            os.replace(tmp, path)
    if args.check:
        if stale:
            print("out of date (run python -m tinytape report --docs " + args.docs + "): "
                  + ", ".join(stale), file=sys.stderr)
            return 1
        print("the docs' result tables match their results files")
    else:
        print(f"rewrote {len(stale)} page(s)" + (": " + ", ".join(stale) if stale else ""))
    return 0
