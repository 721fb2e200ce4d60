"""`python -m tinytape demo`: the whole course end to end, at small sizes, with a report.

    python -m tinytape demo                  # about 5 minutes on 2 cores -> runs/demo
    python -m tinytape demo --quick          # about a minute: every stage, tiny sizes
    python -m tinytape demo --stages lm,icl  # some of the stages

Runs, one after the other, each stage's own command (shown in the report, so any stage can
be rerun or enlarged on its own) into OUT/<stage>/:

  1. checks     kernel and gradient self-checks                          (check)
  2. layerwise  greedy layer-wise pretraining, then fine-tuning, digits  (layerwise)
  3. lm         GPT pretraining on Python's docs; a sample               (lm train, lm sample)
  4. authors    fine-tuning a pretrained GPT on a tiny labelled set      (authors)
  5. icl        in-context against in-weights learning; the copy task    (icl)
  6. rlhf       RLHF: supervised fine-tuning, reward model, PPO          (rlhf)

then writes OUT/report.md (every stage's tables with intervals, targets, plots and
checkpoints, from each stage's results.json), OUT/demo.json (the stages, commands and times)
and OUT/metrics.jsonl. A stage that fails is reported as failed (its
output is in OUT/<stage>/log.txt), the others still run, and the exit code is 1. Plots need
matplotlib: pip install 'tinytape[plot]'.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import io
import json
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from . import COMMANDS

#: the demo's own record (stages, commands, times); results.json is the stages' schema only
DEMO_RECORD = "demo.json"
#: the stages' commands -> their modules (the demo imports only what it runs)
COMMAND_MODULES = {name: COMMANDS[name]
                   for name in ("check", "layerwise", "lm", "authors", "icl", "rlhf")}


@dataclass(frozen=True)
class Stage:
    """One stage: its folder name, the command it runs, and the argument lists of its calls
    given (quick, folder); --seed and --threads are added to every call."""

    name: str
    command: str
    title: str
    calls: Callable[[bool, str], list[list[str]]]


def _checks(quick: bool, out: str) -> list[list[str]]:
    return [["check", "--out", out] + (["--quick"] if quick else [])]


def _layerwise(quick: bool, out: str) -> list[list[str]]:
    if quick:
        size = ["--quick", "--labels-per-class", "10,all", "--seeds", "2", "--width", "64",
                "--depths", "3", "--steps", "60", "--eval-every", "20", "--pretrain-steps",
                "60", "--supervised-steps", "20"]
    else:
        size = ["--quick"]  # 4 seeds, 5/10/all labels per class, depths 1 and 3
    return [["layerwise", *size, "--out", out, "--workers", "2"]]


def _lm(quick: bool, out: str) -> list[list[str]]:
    if quick:
        size = ["--steps", "30", "--d-model", "32", "--context", "32", "--warmup", "5",
                "--eval-every", "15", "--eval-tokens", "2000", "--val-fraction", "0.03"]
    else:
        size = ["--steps", "600", "--d-model", "64", "--context", "64", "--warmup", "50",
                "--eval-every", "100", "--eval-tokens", "8000", "--val-fraction", "0.05"]
    return [["lm", "train", "--corpus", "pydoc", *size, "--sample-tokens", "0", "--no-resume",
             "--out", out],
            ["lm", "sample", "--from", out, "--prompt", "The ", "--tokens",
             "120" if quick else "300", "--temperature", "0.8"]]


def _authors(quick: bool, out: str) -> list[list[str]]:
    if quick:
        size = ["--ks", "1,4", "--seeds", "1", "--pretrain-steps", "30", "--d-model", "32",
                "--context", "48", "--vocab-size", "320", "--max-test", "8",
                "--ft-min-steps", "4", "--ft-max-steps", "8"]
        return [["authors", *size, "--out", out]]
    # The fortune collections (the `data` extra) show the effect at this size; the synthetic
    # library needs the full experiment (docs/authors.md).
    from ..text.corpora import CorpusError, fortune_dir

    try:
        fortune_dir()
        corpus = ["--corpus", "fortunes"]  # full pretraining (800 steps)
    except CorpusError:  # the library's own default pretraining is 3,000 steps of a larger GPT
        corpus = ["--pretrain-steps", "800", "--d-model", "64", "--layers", "2"]
    size = ["--ks", "1,2,8", "--seeds", "1", "--max-test", "24"]
    return [["authors", *corpus, *size, "--out", out]]


def _icl(quick: bool, out: str) -> list[list[str]]:
    # the trade-off's two ends (p_bursty 0 and 0.9 at Zipf exponent 1) over 3 seeds, and the
    # copy task over 2 seeds with a budget past its escape (1,500-2,500 steps): ~2 minutes
    size = ["--quick", "--steps", "30", "--copy-steps", "30"] if quick \
        else ["--seeds", "3", "--p-bursty", "0,0.9", "--zipf", "1", "--copy-seeds", "2",
              "--copy-steps", "2500"]
    return [["icl", *size, "--workers", "2", "--no-resume", "--out", out]]


def _rlhf(quick: bool, out: str) -> list[list[str]]:
    # two seeds in two processes: --small is about 80 s on 2 free cores (docs/rlhf.md)
    return [["rlhf", "--quick" if quick else "--small", "--workers", "2", "--out", out]]


STAGES: tuple[Stage, ...] = (
    Stage("checks", "check", "kernel and gradient self-checks", _checks),
    Stage("layerwise", "layerwise", "layer-wise pretraining, then fine-tuning on digits",
          _layerwise),
    Stage("lm", "lm", "language-model pretraining and a sample", _lm),
    Stage("authors", "authors", "fine-tuning on a tiny labelled set (authors)", _authors),
    Stage("icl", "icl", "in-context against in-weights learning; the copy task", _icl),
    Stage("rlhf", "rlhf", "RLHF: SFT, reward model, PPO (and DPO)", _rlhf),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole course end to end at small sizes and write "
                       "a Markdown report (start here)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join("runs", "demo"), metavar="DIR",
                   help="run folder: report.md, demo.json, one folder per stage "
                        "(default runs/demo)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes, about a minute: checks that everything runs (the "
                        "effects need the default sizes)")
    p.add_argument("--seed", type=int, default=0, help="seed passed to every stage (default 0)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="kernel threads of every stage (default 1: the matrices are small, "
                        "and the stages that can use two cores run two processes)")
    p.add_argument("--stages", default=None, metavar="LIST",
                   help=f"comma-separated stages to run, of {', '.join(STAGE_NAMES)} "
                        "(default all)")
    p.add_argument("--quiet", action="store_true",
                   help="show only one line per stage; the stages' output still goes to "
                        "OUT/<stage>/log.txt")
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- output capture
class _Tee(io.TextIOBase):
    """Writes to a terminal stream (unless quiet) and to a log file; in the log, progress
    bars redrawn with \\r keep only their last state."""

    def __init__(self, stream: IO[str], log: IO[str], show: bool) -> None:
        super().__init__()
        self.stream, self.log, self.show = stream, log, show
        self._line = ""

    def write(self, s: str) -> int:
        if self.show:
            self.stream.write(s)
        parts = s.split("\n")
        for i, part in enumerate(parts):
            if "\r" in part:
                self._line = part.rsplit("\r", 1)[1]
            else:
                self._line += part
            if i < len(parts) - 1:
                self.log.write(self._line.replace("\x1b[K", "") + "\n")
                self._line = ""
        return len(s)

    def flush(self) -> None:
        if self.show:
            self.stream.flush()
        self.log.flush()

    def close_line(self) -> None:
        """Write a pending partial line (a progress bar's last state) to the log."""
        if self._line:
            self.log.write(self._line.replace("\x1b[K", "") + "\n")
            self._line = ""

    def isatty(self) -> bool:
        return self.show and self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


def _call(argv: list[str]) -> int:
    """Run one command in this process, importing only its module, as tinytape.cli.main
    runs it (a UsageError gives exit code 2 with its one-line message)."""
    from . import run_command

    module = importlib.import_module(COMMAND_MODULES[argv[0]])
    parser = argparse.ArgumentParser(prog="tinytape")
    module.add_parser(parser.add_subparsers(dest="command"))
    return run_command(parser.parse_args(argv))


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _available(stage: Stage) -> bool:
    """Whether this install has the stage's command module (one that exists but fails to
    import counts as available: running it then reports the failure)."""
    name = COMMAND_MODULES[stage.command]
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        return not (e.name and name.startswith(e.name))
    except Exception:  # noqa: BLE001 - reported when the stage runs
        return True
    return True


def _run_stage(stage: Stage, calls: list[list[str]], folder: str, quiet: bool
               ) -> dict[str, Any]:
    """Run a stage's calls with output teed to folder/log.txt; its record."""
    record: dict[str, Any] = {"status": "ok", "exit_code": 0, "error": ""}
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "log.txt"), "w", encoding="utf-8") as log:
        out = _Tee(sys.stdout, log, not quiet)
        err = _Tee(sys.stderr, log, not quiet)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            for argv in calls:
                print(f"$ python -m tinytape {shlex.join(argv)}", flush=True)
                try:
                    rc = _call(argv)
                except SystemExit as e:  # argparse: an argument this command does not know
                    rc = e.code if isinstance(e.code, int) else 2
                except KeyboardInterrupt:
                    rc = 130
                except Exception as e:  # noqa: BLE001 - report the stage as failed, go on
                    out.close_line()
                    err.close_line()
                    log.write(traceback.format_exc())  # the traceback: in the log only
                    record["error"] = f"{type(e).__name__}: {e}"
                    print(f"tinytape {argv[0]}: {record['error']} (traceback in {log.name})",
                          file=sys.stderr)
                    rc = 1
                out.close_line()
                err.close_line()
                if rc:
                    record.update(status="interrupted" if rc == 130 else "failed",
                                  exit_code=rc)
                    if not record["error"]:
                        log.flush()
                        record["error"] = _last_lines(log.name)
                    break
    return record


def _last_lines(path: str, n: int = 6) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "\n".join(f.read().strip().splitlines()[-n:])
    except OSError:
        return ""


def _stages(text: str | None) -> list[str]:
    from . import UsageError

    if text is None:
        return list(STAGE_NAMES)
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in STAGE_NAMES]
    if bad or not names:
        raise UsageError(f"--stages: choose from {', '.join(STAGE_NAMES)} (got "
                         f"{', '.join(bad) or 'none'})")
    return names


def _fmt(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


def run(args: argparse.Namespace) -> int:
    from .. import __version__, config
    from ..report import headline, load_results, write_report
    from . import UsageError

    selected = _stages(args.stages)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out: {args.out} exists and is not a folder")
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out: cannot create {args.out}: {e.strerror}") from None
    argv = ["demo"] + (["--quick"] if args.quick else []) + [
        "--seed", str(args.seed), "--threads", str(args.threads), "--out", args.out] + (
        ["--stages", args.stages] if args.stages else [])
    cfg = config()
    summary: dict[str, Any] = {
        "command": "python -m tinytape " + shlex.join(argv), "quick": args.quick,
        "seed": args.seed, "threads": args.threads, "version": __version__,
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "config": {k: cfg.get(k) for k in ("backend", "simd", "threads", "openmp")},
        "stages": []}
    todo = [s for s in STAGES if s.name in selected]
    print(f"tinytape demo{' --quick' if args.quick else ''}: {len(todo)} stage(s) -> "
          f"{args.out}", flush=True)
    t0, cpu0 = time.perf_counter(), _cpu()
    metrics_path = os.path.join(args.out, "metrics.jsonl")
    if os.path.exists(metrics_path):
        os.remove(metrics_path)
    interrupted = False
    for i, stage in enumerate(todo, 1):
        folder = os.path.join(args.out, stage.name)
        calls = [c + ["--seed", str(args.seed), "--threads", str(args.threads)]
                 for c in stage.calls(args.quick, folder)]
        record: dict[str, Any] = {"name": stage.name, "title": stage.title,
                                  "command": stage.command, "commands": calls}
        if interrupted:
            record["status"] = "skipped"
        elif not _available(stage):
            record["status"] = "not available"
            print(f"[{i}/{len(todo)}] {stage.name}: not available (no `{stage.command}` "
                  f"command in this install)", flush=True)
        else:
            print(f"\n[{i}/{len(todo)}] {stage.name}: {stage.title} (demo elapsed "
                  f"{_fmt(time.perf_counter() - t0)})", flush=True)
            s0, c0 = time.perf_counter(), _cpu()
            record.update(_run_stage(stage, calls, folder, args.quiet))
            record["wall_seconds"] = time.perf_counter() - s0
            record["cpu_seconds"] = _cpu() - c0
            if stage.name == "lm" and record["status"] == "ok":
                _save_sample(folder)
            record["headline"] = headline(load_results(folder)[0]) \
                if record["status"] == "ok" else ""
            mark = "done" if record["status"] == "ok" else record["status"].upper()
            print(f"[{i}/{len(todo)}] {stage.name}: {mark} in {record['wall_seconds']:.1f} s "
                  f"(CPU {record['cpu_seconds']:.1f} s)"
                  + (f": {record['headline']}" if record["headline"] else "")
                  + (f"; see {os.path.join(folder, 'log.txt')}" if mark != "done" else ""),
                  flush=True)
            interrupted = record["status"] == "interrupted"
            with open(metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({k: record.get(k) for k in (
                    "name", "status", "exit_code", "wall_seconds", "cpu_seconds")}) + "\n")
        summary["stages"].append(record)
    summary["wall_seconds"] = time.perf_counter() - t0
    summary["cpu_seconds"] = _cpu() - cpu0
    with open(os.path.join(args.out, DEMO_RECORD), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    path = write_report(args.out, summary)
    bad = [s["name"] for s in summary["stages"] if s["status"] in ("failed", "interrupted")]
    missing = [s["name"] for s in summary["stages"] if s["status"] == "not available"]
    print(f"\ndemo finished in {summary['wall_seconds']:.1f} s wall, "
          f"{summary['cpu_seconds']:.1f} s CPU: {len(todo) - len(bad) - len(missing)}/"
          f"{len(todo)} stage(s) ok" + (f"; FAILED: {', '.join(bad)}" if bad else "")
          + (f"; not available: {', '.join(missing)}" if missing else ""))
    print(f"report: {path}")
    if interrupted:
        return 130
    return 1 if bad else 0


def _save_sample(folder: str) -> None:
    """Keep the text that `lm sample` printed (the log's lines after its command)."""
    try:
        with open(os.path.join(folder, "log.txt"), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return
    marker = text.rfind("$ python -m tinytape lm sample")
    if marker < 0:
        return
    sample = text[marker:].split("\n", 1)[1] if "\n" in text[marker:] else ""
    with open(os.path.join(folder, "sample.txt"), "w", encoding="utf-8") as f:
        f.write(sample.rstrip() + "\n")
