"""`python -m tinytape lm train|sample`: pretrain a GPT on a corpus; sample from it.

    python -m tinytape lm train --corpus pydoc            # a few minutes, runs/lm/pydoc
    python -m tinytape lm train --corpus fortunes --tokenizer bpe --vocab-size 512
    python -m tinytape lm sample --from runs/lm/pydoc --prompt "The "
    mpiexec -n 2 python -m tinytape lm train ...           # data-parallel, same global batch
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

QUICK = {"steps": 60, "d_model": 64, "context": 64, "eval_every": 30, "eval_tokens": 4000,
         "warmup": 10}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lm", help="language-model pretraining (lm train) and sampling "
                       "(lm sample)", description="Pretrain a GPT language model on a corpus "
                       "and sample text from it.")
    lm_sub = p.add_subparsers(dest="lm_command", metavar="{train,sample}")
    p.set_defaults(func=lambda args: _no_subcommand(p))

    t = lm_sub.add_parser(
        "train", help="pretrain a GPT on a corpus",
        description="Pretrain a GPT on a corpus split by document into train and validation. "
                    "Reports validation bits per character beside a unigram and a bigram "
                    "baseline; writes metrics.jsonl, a resumable checkpoint, model.safetensors "
                    "(weights + config + tokenizer), results.json and lm_curve.png. Running "
                    "the same command again resumes an interrupted run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--corpus", default="pydoc",
                   help="pydoc (Python's bundled docs, no install), fortunes (all fortune "
                        "collections; pip install \"tinytape[data]\"), fortunes:NAME[,NAME] "
                        "(some of them), authors (the synthetic library), or a folder of "
                        ".txt files / one .txt file")
    t.add_argument("--tokenizer", choices=("char", "bpe"), default="char",
                   help="characters, or byte-level BPE trained on the training documents")
    t.add_argument("--vocab-size", type=int, default=512,
                   help="BPE vocabulary size (256 bytes + merges + 1 special); ignored for char")
    t.add_argument("--context", type=int, default=64, help="context length in tokens")
    t.add_argument("--d-model", type=int, default=128, help="width of the Transformer")
    t.add_argument("--layers", type=int, default=2, help="Transformer blocks")
    t.add_argument("--heads", type=int, default=4, help="attention heads")
    t.add_argument("--dropout", type=float, default=0.0, help="dropout rate")
    t.add_argument("--steps", type=int, default=1500, help="optimizer steps")
    t.add_argument("--batch-size", type=int, default=16, help="sequences per step")
    t.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (AdamW)")
    t.add_argument("--min-lr", type=float, default=3e-4, help="learning rate at the end of "
                   "the cosine decay")
    t.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
    t.add_argument("--weight-decay", type=float, default=0.1,
                   help="AdamW weight decay (matrices only; not biases, norms)")
    t.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping threshold")
    t.add_argument("--val-fraction", type=float, default=0.1,
                   help="fraction of the documents held out for validation")
    t.add_argument("--eval-every", type=int, default=250,
                   help="steps between validation evaluations (and checkpoints)")
    t.add_argument("--eval-tokens", type=int, default=0,
                   help="validation tokens of the periodic evaluations (0: all; the final "
                        "evaluation always uses all)")
    t.add_argument("--seed", type=int, default=0, help="seed of the split, init and batches")
    t.add_argument("--threads", type=int, default=1,
                   help="threads of the C kernels (these small models run fastest on one: "
                        "117 ms vs 685 ms per step with 2 when other work shares the cores)")
    t.add_argument("--out", default=None,
                   help="output folder (default runs/lm/<corpus>)")
    t.add_argument("--no-resume", action="store_true",
                   help="start over even if --out holds an unfinished run")
    t.add_argument("--quick", action="store_true",
                   help="a tiny run of about 30 s (60 steps, d_model 64) to check the setup")
    t.add_argument("--sample-tokens", type=int, default=200,
                   help="tokens of the sample printed at the end (0: none)")
    t.set_defaults(func=run_train)

    s = lm_sub.add_parser(
        "sample", help="generate text from a trained model",
        description="Generate text from a model saved by `lm train`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("--from", dest="source", default="runs/lm/pydoc",
                   help="a run folder of `lm train`, or its model.safetensors")
    s.add_argument("--prompt", default="", help="text to continue (the start of a document)")
    s.add_argument("--tokens", type=int, default=300, help="tokens to generate")
    s.add_argument("--temperature", type=float, default=0.8,
                   help="sampling temperature (0: always the most likely token)")
    s.add_argument("--top-k", type=int, default=None, help="sample among the k most likely")
    s.add_argument("--num", type=int, default=1, help="how many samples")
    s.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    s.add_argument("--threads", type=int, default=1, help="threads of the C kernels")
    s.set_defaults(func=run_sample)


def _no_subcommand(p: argparse.ArgumentParser) -> int:
    from . import UsageError

    raise UsageError("choose a subcommand: lm train or lm sample (see --help)")


def _threads(n: int | None) -> None:
    if n is not None:
        from .. import set_num_threads

        set_num_threads(n)


def _slug(name: str) -> str:
    base = os.path.basename(os.path.normpath(name)) if os.sep in name or os.path.exists(name) \
        else name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-") or "corpus"


def run_train(args: argparse.Namespace) -> int:
    """Train; under mpiexec every rank runs this (data-parallel) and only rank 0 prints."""
    from .ranks import on_every_rank

    return on_every_rank(lambda: _train(args))


def config_from_args(args: argparse.Namespace):  # -> LMExperimentConfig
    """The experiment's config from the options (it checks itself; a bad value is a
    UsageError)."""
    from ..experiments.lm import LMExperimentConfig
    from ..train.lm import LMConfig
    from . import UsageError

    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.sample_tokens < 0:
        raise UsageError(f"--sample-tokens must be >= 0, got {args.sample_tokens}")
    try:
        lm = LMConfig(context=args.context, d_model=args.d_model, n_layers=args.layers,
                      n_heads=args.heads, dropout=args.dropout, steps=args.steps,
                      batch_size=args.batch_size, lr=args.lr, min_lr=args.min_lr,
                      warmup=args.warmup, weight_decay=args.weight_decay, clip=args.clip,
                      eval_every=args.eval_every, eval_tokens=args.eval_tokens,
                      seed=args.seed)
        return LMExperimentConfig(corpus=args.corpus, tokenizer=args.tokenizer,
                                  vocab_size=args.vocab_size, val_fraction=args.val_fraction,
                                  lm=lm)
    except ValueError as e:
        field = str(e).split()[0]
        option = {"n_layers": "layers", "n_heads": "heads"}.get(field, field)
        raise UsageError(f"--{option.replace('_', '-')}: {e}") from None


def _train(args: argparse.Namespace) -> int:
    from ..distributed import get_rank
    from ..experiments.lm import format_summary, prepare_data, run_lm
    from ..experiments.protocol import RunMismatch
    from ..text.corpora import CorpusError
    from ..train.lm import sample_text
    from . import UsageError

    config = config_from_args(args)
    _threads(args.threads)
    out = args.out or os.path.join("runs", "lm", _slug(args.corpus) + ("-quick" if args.quick
                                                                         else ""))
    try:
        data = prepare_data(config)
    except CorpusError as e:
        raise UsageError(str(e)) from None
    cfg, d = config.lm, data.describe()
    print(f"corpus {args.corpus}: {d['train_docs']} train / {d['val_docs']} validation "
          f"documents, {d['train_chars']:,} / {d['val_chars']:,} characters; "
          f"{args.tokenizer} tokenizer, vocabulary {d['vocab_size']}, "
          f"{d['train_tokens']:,} training tokens")
    print(f"GPT d_model {cfg.d_model}, {cfg.n_layers} layers, {cfg.n_heads} heads, context "
          f"{cfg.context}; {cfg.steps} steps of {cfg.batch_size} sequences -> {out}")
    try:
        results = run_lm(config, out, data, resume=not args.no_resume)
    except RunMismatch:
        raise UsageError(f"{out} holds a run with other settings; pass --no-resume to start "
                         f"over or --out for another folder") from None
    model = results.pop("model")
    if get_rank() != 0:  # the files and the sample are rank 0's
        return 0
    print(format_summary(results))
    if args.sample_tokens:
        text = sample_text(model, data.tokenizer, "", args.sample_tokens, 0.8, seed=args.seed)
        print("\nsample (temperature 0.8):\n" + text)
    png = plot_curve(results["metrics"], os.path.join(out, "lm_curve.png"))
    print(f"\nwrote {out}/results.json, metrics.jsonl, model.safetensors"
          + (", lm_curve.png" if png else " (no plot: matplotlib is not installed)"))
    return 0


def plot_curve(results: dict[str, Any], path: str) -> str | None:
    """Validation bpc against steps with the baselines as lines; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    evals = results.get("evals") or []
    train = results.get("train_curve") or []
    if train:
        ax.plot([t[0] for t in train], [t[1] for t in train], "-", color="tab:orange",
                alpha=0.6, lw=1, label="GPT (training batches)")
    if evals:
        ax.plot([e["step"] for e in evals], [e["val_bpc"] for e in evals], "o-",
                color="tab:blue", label="GPT (validation)")
    b = results["baselines"]
    ax.axhline(b["unigram"], color="gray", ls=":", label=f"unigram {b['unigram']:.2f}")
    ax.axhline(b["bigram"], color="black", ls="--", label=f"bigram {b['bigram']:.2f}")
    ax.set_ylim(0, max(b["unigram"] * 1.1, 1.0))
    ax.set_xlabel("step")
    ax.set_ylabel("bits per character")
    ax.set_title(f"validation bits per character (final {results['val_bpc']:.3f})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_sample(args: argparse.Namespace) -> int:
    from ..train.lm import load_lm, sample_text
    from . import UsageError

    for key in ("tokens", "num"):
        if getattr(args, key) < 0:
            raise UsageError(f"--{key} must be >= 0, got {getattr(args, key)}")
    if args.temperature < 0:
        raise UsageError(f"--temperature must be >= 0, got {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {args.top_k}")
    _threads(args.threads)
    try:
        model, tok, _ = load_lm(args.source)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(f"cannot load a model from {args.source}: {e}") from None
    for i in range(args.num):
        text = sample_text(model, tok, args.prompt, args.tokens, args.temperature, args.top_k,
                           seed=args.seed + i)
        if args.num > 1:
            print(f"--- sample {i + 1}")
        print(text)
    return 0
