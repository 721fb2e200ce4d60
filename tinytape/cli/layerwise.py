"""`python -m tinytape layerwise`: greedy layer-wise pretraining against random init and
against shallow baselines, with few labels, over many seeds.

A deep MLP (by default 64-256-256-256-10, sigmoid units, on scikit-learn's 8x8 digits) with
1, 5, 10, 30 and all labelled images per class, the other training images being the
unlabelled pool: (a) random init, (b) greedy supervised pretraining, (c) greedy denoising-
autoencoder pretraining, each then fine-tuned; logistic regression and 1-nearest-neighbour
on the pixels; depth 1, 3 and 5 at 10 labels per class. Every arm sees the same labelled
subset per seed; differences are paired, with 95% intervals. Writes OUT/results.json (the
shared schema), OUT/metrics.jsonl and OUT/layerwise.png and prints the tables.
Under `mpiexec -n N` the (activation, seed) jobs are shared out over the N processes, with
the same results. See docs/layerwise.md.
"""

from __future__ import annotations

import argparse
import os


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}"
                                         ) from None


def _labels(text: str) -> list[int | None]:
    out: list[int | None] = []
    for t in (t.strip().lower() for t in text.split(",")):
        if t == "all":
            out.append(None)
        elif t:
            try:
                out.append(int(t))
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected integers or 'all', got {t!r}"
                                                 ) from None
    return out


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


#: option -> LayerwiseConfig field (the options that map one to one)
FIELDS = {"labels_per_class": "labels_per_class", "activations": "activations",
          "methods": "methods", "width": "width", "depth": "depth", "depths": "depths",
          "steps": "finetune_steps", "long_factor": "long_factor",
          "eval_every": "eval_every", "pretrain_steps": "ae_steps",
          "supervised_steps": "sup_steps", "lr": "lr", "batch_size": "batch_size",
          "ae_batch_size": "ae_batch_size", "corruption": "corruption", "noise": "noise",
          "split_seed": "split_seed"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "layerwise", help="greedy layer-wise pretraining vs random init and shallow "
        "baselines, with few labels", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("the run")
    g.add_argument("--labels-per-class", type=_labels, default=None, metavar="LIST",
                   help="labelled training examples per class, comma-separated, 'all' for "
                        "every label (default 1,5,10,30,all)")
    g.add_argument("--seed", type=int, default=10,
                   help="the first seed (default 10: seeds 0-2 were used in development)")
    g.add_argument("--seeds", type=int, default=None, metavar="N",
                   help="how many seeds: seed, seed+1, ... (default 10, --quick 4)")
    g.add_argument("--activations", type=_names, default=None, metavar="LIST",
                   help="sigmoid (default init) and/or relu (Glorot init, the modern "
                        "control); default sigmoid")
    g.add_argument("--methods", type=_names, default=None, metavar="LIST",
                   help="arms: random, supervised, autoencoder, random_long (deep); logreg, "
                        "nn1 (shallow); default all but random_long")
    g.add_argument("--width", type=int, default=None, metavar="N",
                   help="hidden units per layer (default 256)")
    g.add_argument("--depth", type=int, default=None, metavar="N",
                   help="hidden layers of the main network (default 3)")
    g.add_argument("--depths", type=_ints, default=None, metavar="LIST",
                   help="depths of the depth study at 10 labels per class (default 1,3,5)")
    g.add_argument("--quick", action="store_true",
                   help="a version that runs in well under a minute: 4 seeds, 5,10,all "
                        "labels per class, depths 1,3, short budgets (other flags override)")
    g = p.add_argument_group("budgets and optimization (Adam everywhere, fixed across label "
                             "counts and arms)")
    g.add_argument("--steps", type=int, default=None, metavar="N",
                   help="fine-tuning steps of every deep arm (default 600); the step kept is "
                        "chosen on validation")
    g.add_argument("--eval-every", type=int, default=None, metavar="N",
                   help="validation every N fine-tuning steps (default 50)")
    g.add_argument("--long-factor", type=int, default=None, metavar="N",
                   help="random_long trains this many times the steps (default 4)")
    g.add_argument("--pretrain-steps", type=int, default=None, metavar="N",
                   help="autoencoder steps per layer, on the unlabelled pool (default 600)")
    g.add_argument("--supervised-steps", type=int, default=None, metavar="N",
                   help="supervised pretraining steps per layer (default 200)")
    g.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 3e-3)")
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
                        ".npy (2-D, labels in --label-column) or .csv (optional header); "
                        "features are min-max scaled with the training split's statistics")
    g.add_argument("--label-column", default="-1", metavar="COL",
                   help="the label column of a .npy/.csv: an index or a CSV header name "
                        "(default -1, the last)")
    g.add_argument("--split-seed", type=int, default=None, metavar="SEED",
                   help="seed of the fixed train/validation/test split (default 1: split 0 "
                        "was used in development)")
    g = p.add_argument_group("running")
    g.add_argument("--out", default="runs/layerwise", metavar="DIR",
                   help="output folder: results.json, metrics.jsonl, layerwise.png "
                        "(default runs/layerwise)")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes (default: min(2, CPU count)); results do not "
                        "depend on it. Under mpiexec -n N the N ranks share the jobs "
                        "instead (one worker each)")
    g.add_argument("--threads", type=int, default=1, metavar="N",
                   help="kernel threads per worker (default 1: these matrices are small)")
    g.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    g.add_argument("--progress", choices=["auto", "bar", "plain", "off"], default="auto",
                   help="progress on stderr: a bar on a terminal, a line every ~10 s in "
                        "logs and CI (auto), or nothing")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):  # -> LayerwiseConfig
    """The LayerwiseConfig the options describe (it checks itself: a bad value is a
    UsageError naming the option)."""
    from ..experiments.layerwise import LayerwiseConfig
    from . import UsageError

    over: dict = {}
    for option, name in FIELDS.items():
        value = getattr(args, option)
        if value is not None:
            over[name] = tuple(value) if isinstance(value, list) else value
    if args.tied:
        over["tied"] = True
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    n_seeds = args.seeds if args.seeds is not None else (4 if args.quick else 10)
    over["seeds"] = tuple(range(args.seed, args.seed + n_seeds))
    try:
        return LayerwiseConfig.quick(**over) if args.quick else LayerwiseConfig(**over)
    except ValueError as e:
        field = str(e).split()[0]
        option = next((o for o, f in FIELDS.items() if f == field), field)
        raise UsageError(f"--{option.replace('_', '-')}: {e}") from None


def load_splits(args: argparse.Namespace, split_seed: int):  # -> Splits
    """The digits (pixels / 16), or --data split then scaled from its training split."""
    from ..data import (
        MissingDependency,
        digits_splits,
        load_arrays,
        minmax_from_train,
        stratified_split,
    )
    from . import UsageError

    if args.data is None:
        try:
            return digits_splits(seed=split_seed)
        except MissingDependency as e:
            raise UsageError(str(e)) from None
    if not os.path.isfile(args.data):
        raise UsageError(f"--data: no such file: {args.data}")
    col = args.label_column
    col = int(col) if col.lstrip("-").isdigit() else col
    try:
        x, y = load_arrays(args.data, label_column=col)
        splits = stratified_split(x, y, 0.15, 0.3, split_seed,
                                  name=os.path.basename(args.data))
    except (ValueError, OSError) as e:
        raise UsageError(f"--data: {e}") from None
    return minmax_from_train(splits)


def run(args: argparse.Namespace) -> int:
    """Under mpiexec -n N every rank runs this; the jobs are shared out over the ranks."""
    from .ranks import on_every_rank

    return on_every_rank(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from ..data import MissingDependency
    from ..distributed import get_rank, get_world_size
    from ..experiments.layerwise import format_summary, run_layerwise
    from ..plotting import plot_layerwise
    from . import UsageError

    workers = args.workers if args.workers is not None else min(2, os.cpu_count() or 1)
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    ranks = get_world_size()
    if ranks > 1:  # the ranks are the workers
        workers = 1
    config = config_from_args(args)
    splits = load_splits(args, config.split_seed)
    print(f"layer-wise pretraining: {splits.describe()}")
    print(f"  {len(config.activations)} activation(s) x {len(config.seeds)} seed(s) x "
          f"{len(config.methods)} arm(s) x {len(config.labels_per_class)} label count(s); "
          + (f"{ranks} MPI ranks" if ranks > 1 else f"{workers} worker(s)")
          + f" x {args.threads} thread(s)", flush=True)
    progress = None if args.progress == "auto" else args.progress
    try:
        results = run_layerwise(config, splits, args.out, workers=workers,
                                threads=args.threads, progress=progress)
    except (ValueError, MissingDependency) as e:
        raise UsageError(str(e)) from None
    print(format_summary(results))
    m = results["metrics"]
    print(f"wall time {m['wall_seconds']:.1f} s (CPU time {m['cpu_seconds']:.1f} s over "
          + (f"{ranks} ranks)" if ranks > 1 else f"{workers} worker(s))"))
    written = ["results.json", "metrics.jsonl"]
    png = os.path.join(args.out, "layerwise.png")
    if not args.no_plot and get_rank() == 0 and plot_layerwise(results, png):
        written.append("layerwise.png")
    print(f"wrote {', '.join(os.path.join(args.out, w) for w in written)}", flush=True)
    return 0
