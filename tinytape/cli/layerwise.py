"""`python -m tinytape layerwise`: greedy layer-wise pretraining vs random init, measured.

A deep MLP (by default 64-256-256-256-10 on scikit-learn's 8x8 digits) is trained with
1, 5, 10, 30 and all labelled images per class, the rest of the training images serving as
the unlabelled pool: (a) from random init, (b) after greedy supervised pretraining, (c)
after greedy denoising-autoencoder pretraining, each then fine-tuned; (a) once more with a
longer budget; with sigmoid units (the classic setting) and with ReLU + Glorot init (the
modern control). Writes OUT/results.json, OUT/metrics.jsonl and OUT/layerwise.png and
prints the table. See docs/layerwise.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}"
                                         ) from None


def _labels(text: str) -> list[int | None]:
    out: list[int | None] = []
    for t in text.split(","):
        t = t.strip().lower()
        if not t:
            continue
        if t == "all":
            out.append(None)
            continue
        try:
            out.append(int(t))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected integers or 'all', got {t!r}") from None
    return out


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "layerwise", help="greedy layer-wise pretraining (supervised, denoising autoencoder) "
        "vs random init, with few labels", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("the sweep")
    g.add_argument("--labels-per-class", type=_labels, default=None, metavar="LIST",
                   help="labelled training examples per class, comma-separated, 'all' for "
                        "every label (default 1,5,10,30,all)")
    g.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    g.add_argument("--seeds", type=int, default=None, metavar="N",
                   help="how many seeds: seed, seed+1, ... (default 3); each seed draws the "
                        "labelled subset, the initial weights and the batch order")
    g.add_argument("--activations", type=_names, default=None, metavar="LIST",
                   help="sigmoid (default init) and/or relu (Glorot init, the modern "
                        "control); default sigmoid,relu")
    g.add_argument("--methods", type=_names, default=None, metavar="LIST",
                   help="arms to run: none, none_long, supervised, autoencoder (default all)")
    g.add_argument("--hidden", type=_ints, default=None, metavar="SIZES",
                   help="hidden layer sizes (default 256,256,256)")
    g.add_argument("--quick", action="store_true",
                   help="a ~20 s version: 1 seed, 5,10,all labels per class, short budgets "
                        "(other flags still override)")
    g = p.add_argument_group("budgets and optimization (Adam everywhere)")
    g.add_argument("--steps", type=int, default=None, metavar="N",
                   help="fine-tuning steps of every arm (default 300)")
    g.add_argument("--long-factor", type=int, default=None, metavar="N",
                   help="the random-init arm is run again with this many times the steps "
                        "(default 4)")
    g.add_argument("--pretrain-steps", type=int, default=None, metavar="N",
                   help="autoencoder steps per layer, on the unlabelled pool (default 1000)")
    g.add_argument("--supervised-steps", type=int, default=None, metavar="N",
                   help="supervised pretraining steps per layer (default 200)")
    g.add_argument("--lr", type=float, default=None, metavar="LR",
                   help="Adam learning rate (default 3e-3)")
    g.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="batch size of the labelled steps (default 32)")
    g.add_argument("--ae-batch-size", type=int, default=None, metavar="N",
                   help="batch size of the autoencoder steps (default 64)")
    g.add_argument("--corruption", type=float, default=None, metavar="P",
                   help="denoising: fraction of inputs zeroed (mask) or noise std "
                        "(gaussian); 0 for a plain autoencoder (default 0.25)")
    g.add_argument("--noise", choices=["mask", "gaussian"], default=None,
                   help="kind of input corruption (default mask)")
    g.add_argument("--tied", action="store_true",
                   help="tie the decoder weights to the encoder's (W^T); default untied")
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None, metavar="FILE",
                   help="your own labelled data instead of the digits: .npz (arrays x, y), "
                        ".npy (2-D, labels in --label-column) or .csv (optional header)")
    g.add_argument("--label-column", default="-1", metavar="COL",
                   help="the label column of a .npy/.csv: an index or a CSV header name "
                        "(default -1, the last)")
    g.add_argument("--split-seed", type=int, default=0, metavar="SEED",
                   help="seed of the fixed train/validation/test split (default 0)")
    g = p.add_argument_group("running")
    g.add_argument("--out", default="runs/layerwise", metavar="DIR",
                   help="output folder: results.json, metrics.jsonl, layerwise.png "
                        "(default runs/layerwise)")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes (default: min(2, CPU count)); results do not "
                        "depend on it")
    g.add_argument("--threads", type=int, default=1, metavar="N",
                   help="kernel threads per worker (default 1: these matrices are small)")
    g.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    g.add_argument("--progress", choices=["auto", "bar", "plain", "off"], default="auto",
                   help="progress on stderr: a bar on a terminal, a line every ~10 s in "
                        "logs and CI (auto), or nothing")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace):  # -> ExperimentConfig
    from ..train.layerwise import METHODS, ExperimentConfig
    from . import UsageError

    over: dict = {}
    if args.labels_per_class is not None:
        if not args.labels_per_class:
            raise UsageError("--labels-per-class is empty")
        for k in args.labels_per_class:
            if k is not None and k < 1:
                raise UsageError(f"--labels-per-class: every count must be >= 1, got {k}")
        if len(set(args.labels_per_class)) != len(args.labels_per_class):
            raise UsageError("--labels-per-class lists a count twice")
        over["labels_per_class"] = tuple(args.labels_per_class)
    if args.seeds is not None:
        if args.seeds < 1:
            raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    n_seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    over["seeds"] = tuple(range(args.seed, args.seed + n_seeds))
    if args.activations is not None:
        bad = [a for a in args.activations if a not in ("sigmoid", "relu")]
        if bad or not args.activations:
            raise UsageError(f"--activations: choose from sigmoid, relu (got {bad or 'none'})")
        over["activations"] = tuple(dict.fromkeys(args.activations))
    if args.methods is not None:
        bad = [m for m in args.methods if m not in METHODS]
        if bad or not args.methods:
            raise UsageError(f"--methods: choose from {', '.join(METHODS)} (got {bad or 'none'})")
        over["methods"] = tuple(m for m in METHODS if m in args.methods)
    if args.hidden is not None:
        if not args.hidden or any(h < 1 for h in args.hidden):
            raise UsageError(f"--hidden: sizes must be >= 1, got {args.hidden}")
        over["hidden"] = tuple(args.hidden)
    for flag, key, low in (("steps", "finetune_steps", 1), ("long_factor", "long_factor", 1),
                           ("pretrain_steps", "ae_steps", 0),
                           ("supervised_steps", "sup_steps", 0),
                           ("batch_size", "batch_size", 1),
                           ("ae_batch_size", "ae_batch_size", 1)):
        value = getattr(args, flag)
        if value is not None:
            if value < low:
                raise UsageError(f"--{flag.replace('_', '-')} must be >= {low}, got {value}")
            over[key] = value
    if args.lr is not None:
        if not args.lr > 0:
            raise UsageError(f"--lr must be > 0, got {args.lr}")
        over["lr"] = args.lr
    if args.corruption is not None:
        if args.corruption < 0 or (args.noise != "gaussian" and args.corruption >= 1):
            raise UsageError(f"--corruption must be in [0, 1) for masking noise (>= 0 for "
                             f"gaussian), got {args.corruption}")
        over["corruption"] = args.corruption
    if args.noise is not None:
        over["noise"] = args.noise
    if args.tied:
        over["tied"] = True
    return ExperimentConfig.quick(**over) if args.quick else ExperimentConfig(**over)


def _splits(args: argparse.Namespace):  # -> Splits
    from ..data import MissingDependency, digits_splits, load_arrays, stratified_split
    from . import UsageError

    if args.data is None:
        try:
            return digits_splits(seed=args.split_seed)
        except MissingDependency as e:
            raise UsageError(str(e)) from None
    if not os.path.isfile(args.data):
        raise UsageError(f"--data: no such file: {args.data}")
    col = args.label_column
    col = int(col) if col.lstrip("-").isdigit() else col
    try:
        x, y = load_arrays(args.data, label_column=col)
        return stratified_split(x, y, 0.15, 0.3, args.split_seed,
                                name=os.path.basename(args.data))
    except (ValueError, OSError) as e:
        raise UsageError(f"--data: {e}") from None


def run(args: argparse.Namespace) -> int:
    from ..plotting import plot_layerwise
    from ..train.layerwise import format_table, run_experiment
    from . import UsageError

    workers = args.workers if args.workers is not None else min(2, os.cpu_count() or 1)
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    config = _config(args)
    splits = _splits(args)
    counts = [int((splits.train.y == c).sum()) for c in range(splits.num_classes)]
    too_many = [k for k in config.labels_per_class if k is not None and k > min(counts)]
    if too_many:
        raise UsageError(f"--labels-per-class {too_many[0]}: the smallest class has only "
                         f"{min(counts)} training examples")
    os.makedirs(args.out, exist_ok=True)
    metrics_path = os.path.join(args.out, "metrics.jsonl")
    if os.path.exists(metrics_path):
        os.remove(metrics_path)  # one sweep per folder: its records only
    print(f"layer-wise pretraining sweep: {splits.describe()}")
    print(f"  {len(config.activations)} activation(s) x {len(config.seeds)} seed(s) x "
          f"{len(config.methods)} arm(s) x {len(config.labels_per_class)} label count(s); "
          f"{workers} worker(s) x {args.threads} thread(s)", flush=True)
    progress = None if args.progress == "auto" else args.progress
    results = run_experiment(config, splits, workers=workers, threads=args.threads,
                             metrics_path=metrics_path, progress=progress)
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    print(format_table(results))
    print(f"wall time {results['wall_seconds']:.1f} s (CPU time {results['cpu_seconds']:.1f} s "
          f"over {workers} worker(s))")
    written = ["results.json", "metrics.jsonl"]
    if not args.no_plot and plot_layerwise(results, os.path.join(args.out, "layerwise.png")):
        written.append("layerwise.png")
    print(f"wrote {', '.join(os.path.join(args.out, w) for w in written)}")
    sys.stdout.flush()
    return 0
