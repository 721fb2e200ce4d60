"""Who wrote this passage, from k labelled passages per author (`python -m tinytape authors`).

Pretrains a GPT language model on a large unlabelled corpus (cached in OUT/pretrain and
resumed if interrupted), then compares, for each k and seed, on the same k labelled passages
per label and the same test passages:

(a) "scratch":  the same Transformer classifier trained from random weights;
(b) "finetune": the pretrained GPT with a classification head started from the linear probe
    (LP-FT), every weight fine-tuned;
(c) "probe":    the pretrained GPT frozen, logistic regression on its pooled features;
(d) "bow":      tf-idf of lower-cased words, logistic regression;
(e) "chars":    tf-idf of character n-grams, logistic regression (Stamatatos 2009).

Protocol: every choice is made per (k, seed) on validation passages from books of their own,
as many per label as the labelled ones (k; Oliver et al. 2018): (a)'s and (b)'s learning
rate (three values each), the probe's penalty for (b)'s head and for (c), the penalty of
(d), the n-gram range and penalty of (e). Only then is each arm's chosen model run on the
test passages, once. Differences between arms are paired over seeds, with 95% t intervals.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from .. import distributed as dist
from ..models import GPT, GPTConfig, SequenceClassifier
from ..models.classifier import feature_dim
from ..nn import functional as NF
from ..optim import param_groups_for_weight_decay
from ..text import corpora
from ..text.authors import LibraryConfig, make_library
from ..text.corpora import CorpusError, Document
from ..text.features import BagOfWords, CharNgrams
from ..text.tokenizers import Tokenizer
from ..train.fewshot import (
    LAMBDAS,
    LabelledTask,
    Pretrained,
    choose,
    classifier_logits,
    clone_gpt,
    encode_passages,
    feature_stats,
    fit_linear,
    probe_to_head,
    split_labelled,
    validation_scores,
)
from ..train.trainer import MetricsLogger, Progress, Trainer
from .protocol import (
    RATE,
    Interval,
    Protocol,
    Target,
    make_optimizer,
    make_schedule,
    mean_interval,
    paired_interval,
    prepare_run_dir,
    target,
    to_jsonable,
    write_results,
)

METHODS = ("scratch", "finetune", "probe", "bow", "chars")
#: the methods that do not read the pretrained model (only its tokenizer and shape)
NO_PRETRAINING = ("scratch", "bow", "chars")
METHOD_LABELS = {
    "scratch": "(a) Transformer from scratch",
    "finetune": "(b) pretrained + fine-tuned",
    "probe": "(c) frozen features, linear probe",
    "bow": "(d) word tf-idf, logistic regression",
    "chars": "(e) character n-gram tf-idf, logistic regression",
}
SHORT = {"scratch": "(a)", "finetune": "(b)", "probe": "(c)", "bow": "(d)", "chars": "(e)"}

#: Library seeds whose test sets were read while the experiment's settings (model size,
#: vocabulary, pooling, pretraining steps, learning-rate grids) were designed. A reported
#: run uses another: REPORT_LIBRARY_SEED, first used for the reported run.
DEVELOPMENT_LIBRARY_SEEDS = (0,)
REPORT_LIBRARY_SEED = 2026

# Model size and pretraining budget when not given: the synthetic library needs a larger
# model pretrained longer than the fortune collections (docs/authors.md).
SIZES = {
    "authors": {"pretrain_steps": 3000, "d_model": 96, "layers": 3, "vocab_size": 4096},
    "other": {"pretrain_steps": 800, "d_model": 64, "layers": 2, "vocab_size": 1536},
}
#: --quick: a smoke run of the whole protocol in about a minute (on a development library)
QUICK = {
    "ks": (1, 2),
    "seeds": 2,
    "library_seed": DEVELOPMENT_LIBRARY_SEEDS[0],
    "pretrain_steps": 40,
    "d_model": 32,
    "layers": 2,
    "context": 64,
    "vocab_size": 384,
    "max_test": 12,
    "ft_min_steps": 8,
    "ft_max_steps": 8,
    "workers": 1,
}


@dataclass
class AuthorsConfig:
    """Everything the authors experiment depends on; checks itself (ValueError)."""

    corpus: str = "authors"  # "authors", "fortunes[:NAME,...]" or a folder of labels
    ks: tuple[int, ...] = (1, 2, 4)
    seeds: int = 10
    seed: int = 0  # first seed; also seeds pretraining and the test subset
    library_seed: int = REPORT_LIBRARY_SEED
    library: dict[str, Any] = field(default_factory=dict)  # LibraryConfig overrides
    passage_chars: int = 400  # passage length of a folder of texts
    max_test: int = 40  # test passages per label at most
    validation_per_label: int = 0  # validation passages per label and seed; 0: k
    pretrained: str | None = None  # an `lm train` run folder or model.safetensors
    pretrain_corpus: str | None = None
    pretrain_steps: int | None = None  # None: SIZES
    vocab_size: int | None = None
    d_model: int | None = None
    layers: int | None = None
    context: int = 96
    heads: int = 4
    batch_size: int = 16  # pretraining batch
    lr: float = 3e-3  # pretraining peak learning rate
    finetune_lrs: tuple[float, ...] = (3e-5, 1e-4, 3e-4)  # (b)'s trunk, chosen on validation
    scratch_lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3)  # (a), chosen on validation
    head_lr: float = 1e-3  # the heads of (a) and (b) (at least (a)'s lr)
    lambdas: tuple[float, ...] = LAMBDAS  # L2 penalties of (b)'s probe start, (c), (d), (e)
    char_ranges: tuple[tuple[int, int], ...] = ((1, 4), (2, 5))  # (e)'s n-gram ranges
    ft_min_steps: int = 40
    ft_max_steps: int = 100
    head_init: str = "probe"  # "probe" (LP-FT) or "random"
    pooling: str = "ffn"
    methods: tuple[str, ...] = METHODS
    threads: int = 1
    workers: int = 2  # processes for the comparisons (the results do not depend on it)

    def __post_init__(self) -> None:
        size = SIZES["authors" if self.corpus == "authors" else "other"]
        for key, value in size.items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        self.ks = tuple(sorted({int(k) for k in self.ks}))
        self.methods = (
            tuple(m for m in METHODS if m in self.methods)
            if set(self.methods) <= set(METHODS)
            else tuple(self.methods)
        )
        self.char_ranges = tuple((int(lo), int(hi)) for lo, hi in self.char_ranges)
        for key in ("finetune_lrs", "scratch_lrs", "lambdas"):
            setattr(self, key, tuple(float(v) for v in getattr(self, key)))
        self.check()

    def check(self) -> None:
        def bad(msg: str) -> ValueError:
            return ValueError(f"AuthorsConfig: {msg}")

        if not self.ks or self.ks[0] < 1:
            raise bad(f"ks must be positive integers, got {list(self.ks)}")
        for key in (
            "seeds",
            "passage_chars",
            "max_test",
            "pretrain_steps",
            "context",
            "d_model",
            "layers",
            "heads",
            "batch_size",
            "ft_min_steps",
            "ft_max_steps",
            "threads",
            "workers",
        ):
            if int(getattr(self, key)) < 1:
                raise bad(f"{key} must be positive, got {getattr(self, key)}")
        if self.seed < 0 or self.library_seed < 0 or self.validation_per_label < 0:
            raise bad("seed, library_seed and validation_per_label must be >= 0")
        if self.vocab_size < 257:
            raise bad(f"vocab_size must be at least 257, got {self.vocab_size}")
        if self.d_model % self.heads:
            raise bad(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        rates = (self.lr, self.head_lr, *self.finetune_lrs, *self.scratch_lrs, *self.lambdas)
        if not all(r > 0 and math.isfinite(r) for r in rates):
            raise bad("learning rates and penalties must be positive")
        if not (self.finetune_lrs and self.scratch_lrs and self.lambdas and self.char_ranges):
            raise bad("every grid needs at least one value")
        if len(self.finetune_lrs) != len(self.scratch_lrs):
            raise bad(
                f"(a) and (b) get the same number of choices: {len(self.scratch_lrs)} "
                f"scratch_lrs against {len(self.finetune_lrs)} finetune_lrs"
            )
        if any(not 1 <= lo <= hi for lo, hi in self.char_ranges):
            raise bad(
                f"char_ranges must be (lo, hi) with 1 <= lo <= hi, got {list(self.char_ranges)}"
            )
        if self.ft_min_steps > self.ft_max_steps:
            raise bad("ft_min_steps must not exceed ft_max_steps")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise bad(
                f"methods: unknown {', '.join(unknown) or '(none)'}; choose from "
                f"{', '.join(METHODS)}"
            )
        if self.head_init not in ("probe", "random"):
            raise bad(f"head_init must be 'probe' or 'random', got {self.head_init!r}")
        if self.pooling not in ("ffn", "mean", "last"):
            raise bad(f"pooling must be ffn, mean or last, got {self.pooling!r}")
        try:
            LibraryConfig(**self.library)
        except (TypeError, ValueError) as e:
            raise bad(f"library: {e}") from None

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    def classifier(self) -> ClassifierConfig:
        return ClassifierConfig(
            head_lr=self.head_lr, min_steps=self.ft_min_steps, max_steps=self.ft_max_steps
        )


def parse_library(items: Sequence[str]) -> dict[str, Any]:
    """KEY=VALUE strings as LibraryConfig fields of the right type (ValueError if not)."""
    known = {f.name for f in fields(LibraryConfig)} - {"seed"}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in known:
            raise ValueError(
                f"--library {item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(known))}"
            )
        default = getattr(LibraryConfig(), key)
        try:
            out[key] = (
                tuple(int(v) for v in value.split(","))
                if isinstance(default, tuple)
                else type(default)(value)
            )
        except ValueError:
            raise ValueError(
                f"--library {item!r}: {value!r} is not a valid {type(default).__name__}"
            ) from None
    return out


# ====================================================================== training (a), (b)
@dataclass
class ClassifierConfig:
    """How a SequenceClassifier is trained on k labelled passages per label (the trunk's
    learning rate is given per run: it is chosen on validation)."""

    head_lr: float = 1e-3  # the new linear head
    weight_decay: float = 0.01
    batch_size: int = 16
    epochs: float = 4.0  # passes over the labelled passages ...
    min_steps: int = 40  # ... but at least this many steps
    max_steps: int = 100  # ... and at most this many
    warmup: int = 5
    clip: float = 1.0
    head_dropout: float = 0.1  # on the pooled features, before the head ((a) and (b))
    trunk_dropout: float = 0.1  # inside (a)'s trunk; (b)'s pretrained trunk keeps its own
    #                             config's dropout (0 for the models `lm train` makes)

    def steps(self, n: int) -> int:
        s = int(math.ceil(self.epochs * n / self.batch_size))
        return int(min(max(s, self.min_steps), self.max_steps))


def train_classifier(
    model: SequenceClassifier,
    ids: np.ndarray,
    mask: np.ndarray,
    y: np.ndarray,
    lr: float,
    cfg: ClassifierConfig,
    seed: int,
    metrics: MetricsLogger | None = None,
    name: str = "classifier",
    head_lr: float | None = None,
) -> int:
    """Train every parameter of model on (ids, mask, y) with AdamW (the trunk at lr, the head
    at head_lr, default cfg.head_lr), warm-up then cosine to a tenth, clipping, via the
    shared Trainer; returns the number of steps."""
    steps = cfg.steps(len(y))
    groups = []
    for part, rate in (
        (model.trunk, lr),
        (model.head, cfg.head_lr if head_lr is None else head_lr),
    ):
        for g in param_groups_for_weight_decay(part.named_parameters(), cfg.weight_decay):
            if g["params"]:
                groups.append({**g, "lr": rate})
    opt = make_optimizer(groups, "adamw", lr=lr, weight_decay=cfg.weight_decay)
    sched = make_schedule(opt, steps, cfg.warmup, min_lr_ratio=0.1)

    def loss_fn(batch: tuple[np.ndarray, ...], rng: np.random.Generator) -> Any:
        x, m, t = batch
        width = max(int(m.sum(axis=1).max()), 1)
        return NF.cross_entropy(model(x[:, :width], m[:, :width]), t)

    Trainer(
        model,
        opt,
        (ids, mask, y),
        steps=steps,
        batch_size=min(cfg.batch_size, len(y)),
        seed=seed,
        scheduler=sched,
        clip_grad_norm=cfg.clip,
        loss_fn=loss_fn,
        log_every=10,
        metrics=metrics,
        progress=False,
        name=name,
    ).fit()
    return steps


# ====================================================================== the task
def load_task(cfg: AuthorsConfig) -> tuple[LabelledTask, list[Document], str]:
    """(LabelledTask, unlabelled pretraining documents, description) of cfg.corpus."""
    if cfg.corpus == "authors":
        lib = make_library(**cfg.library, seed=cfg.library_seed)
        pool, val, test = lib.target_split()
        task = LabelledTask(
            pool, val, _cap(test, lib.target_authors, cfg.max_test, cfg.seed), lib.target_authors
        )
        d = lib.describe()
        return (
            task,
            lib.pretraining_documents(),
            (
                f"synthetic library (seed {cfg.library_seed}): {d['authors']} authors, "
                f"{d['documents']} passages, {d['characters']:,} characters; "
                f"{len(lib.target_authors)} held-out target authors"
            ),
        )
    if cfg.corpus == "fortunes" or cfg.corpus.startswith("fortunes:"):
        names = (
            cfg.corpus.split(":", 1)[1].split(",")
            if ":" in cfg.corpus
            else list(corpora.FORTUNE_LABELS)
        )
        docs = corpora.fortunes([n for n in names if n])
        task = split_labelled(docs, 0.5, 0.2, cfg.seed, cfg.max_test)
        seen = {" ".join(d.text.split()) for d in docs}
        general = [
            d for d in corpora.fortunes(["fortunes"]) if " ".join(d.text.split()) not in seen
        ]
        return (
            task,
            general,
            (
                f"fortune collections {', '.join(task.labels)} "
                f"({len(docs)} fortunes); pretraining on the general "
                f"'fortunes' collection ({len(general)} fortunes, those also "
                f"in a labelled collection removed)"
            ),
        )
    docs = corpora.to_passages(corpora.labelled_folder(cfg.corpus), cfg.passage_chars)
    task = split_labelled(docs, 0.5, 0.2, cfg.seed, cfg.max_test)
    return (
        task,
        [Document(d.text, None, d.source, d.group) for d in task.pool],
        (f"folder {cfg.corpus}: labels {', '.join(task.labels)}, {len(docs)} passages"),
    )


def _cap(test: list[Document], labels: list[str], n: int, seed: int) -> list[Document]:
    rng = np.random.default_rng([seed, 77])
    out = []
    for lab in labels:
        mine = [d for d in test if d.label == lab]
        out.extend(mine[i] for i in sorted(rng.permutation(len(mine))[:n]))
    return out


# ====================================================================== one comparison
def _scores_table(
    settings: Sequence[Any], scores: Sequence[tuple[float, float]]
) -> list[dict[str, Any]]:
    return [{"setting": s, "accuracy": a, "loss": loss} for s, (a, loss) in zip(settings, scores)]


@dataclass
class Comparison:
    """Everything one (k, seed) comparison needs that does not change with k or seed.
    Without a pretrained model (pretrained None; tokenizer and gpt_config given), only the
    methods of NO_PRETRAINING can run: that lets them run while the model pretrains."""

    task: LabelledTask
    pretrained: Pretrained | None
    cfg: AuthorsConfig
    metrics: MetricsLogger | None = None
    tokenizer: Tokenizer | None = None  # default: the pretrained model's
    gpt_config: GPTConfig | None = None  # the pretrained model's shape; default: its config
    _test: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = self.pretrained
        if p is None:
            if self.tokenizer is None or self.gpt_config is None:
                raise ValueError(
                    "Comparison: without a pretrained model, give the tokenizer and gpt_config"
                )
            return
        self.tokenizer, self.gpt_config = p.tokenizer, p.model.config
        want = feature_dim(p.model.config, self.cfg.pooling)
        if p.feat_mean.shape != (want,):
            raise ValueError(
                f"Comparison: feature statistics of shape "
                f"{p.feat_mean.shape} do not fit pooling "
                f"{self.cfg.pooling!r} ({want} features)"
            )

    def _encode(self, docs: Sequence[Document]) -> tuple[np.ndarray, np.ndarray]:
        assert self.tokenizer is not None and self.gpt_config is not None
        return encode_passages(docs, self.tokenizer, self.gpt_config.context_length)

    def _test_inputs(self) -> dict[str, Any]:
        if not self._test:
            ids, mask = self._encode(self.task.test)
            self._test.update(ids=ids, mask=mask, y=self.task.label_ids(self.task.test))
        return self._test

    def _test_features(self) -> np.ndarray:
        assert self.pretrained is not None
        t = self._test_inputs()
        if "feats" not in t:
            t["feats"] = self.pretrained.features(t["ids"], t["mask"], self.cfg.pooling)
        return t["feats"]

    def run(self, k: int, seed: int, methods: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One row per method (cfg.methods, or those of them in methods), in cfg.methods'
        order: the test accuracy of the choice made on validation."""
        task, p, cfg = self.task, self.pretrained, self.cfg
        methods = [m for m in cfg.methods if methods is None or m in methods]
        if p is None and set(methods) - set(NO_PRETRAINING):
            raise ValueError(
                f"Comparison.run: {', '.join(sorted(set(methods) - set(NO_PRETRAINING)))} "
                f"need the pretrained model"
            )
        train = task.sample(k, seed)
        val = task.sample_validation(cfg.validation_per_label or k, seed)
        y, y_val = task.label_ids(train), task.label_ids(val)
        C = len(task.labels)
        test = self._test_inputs()
        rows: list[dict[str, Any]] = []

        def record(
            method: str,
            acc: float,
            t0: float,
            chosen: Any,
            validation: list[dict[str, Any]],
            **extra: Any,
        ) -> None:
            row = {
                "method": method,
                "k": k,
                "seed": seed,
                "accuracy": acc,
                "n_train": len(train),
                "n_validation": len(val),
                "chosen": chosen,
                "validation": validation,
                "seconds": time.perf_counter() - t0,
                **extra,
            }
            rows.append(row)
            if self.metrics is not None:
                self.metrics.log(
                    event="result", **{k_: v for k_, v in row.items() if k_ != "validation"}
                )

        def linear(
            method: str, tr: np.ndarray, va: np.ndarray, te: Callable[[], np.ndarray], t0: float
        ) -> Any:
            model, scores = fit_linear(tr, y, va, y_val, C, cfg.lambdas)
            record(
                method,
                float((model.predict(te()) == test["y"]).mean()),
                t0,
                {"lambda": model.lam},
                _scores_table(cfg.lambdas, scores),
            )
            return model

        ids = mask = None
        if {"finetune", "scratch", "probe"} & set(methods):
            ids, mask = self._encode(train)
            val_ids, val_mask = self._encode(val)
        probe = None
        if "probe" in methods or ("finetune" in methods and cfg.head_init == "probe"):
            t0 = time.perf_counter()
            F, F_val = (
                p.features(a, m, cfg.pooling) for a, m in ((ids, mask), (val_ids, val_mask))
            )
            if "probe" in methods:
                probe = linear("probe", F, F_val, self._test_features, t0)
            else:
                probe = fit_linear(F, y, F_val, y_val, C, cfg.lambdas)[0]
        if "bow" in methods:
            t0 = time.perf_counter()
            bow = BagOfWords.fit([d.text for d in train])
            linear(
                "bow",
                *(bow.transform([d.text for d in docs]) for docs in (train, val)),
                lambda: bow.transform([d.text for d in task.test]),
                t0,
            )
        if "chars" in methods:
            t0 = time.perf_counter()
            best: tuple[Any, ...] | None = None
            table: list[dict[str, Any]] = []
            for lo, hi in cfg.char_ranges:
                feats = CharNgrams.fit([d.text for d in train], lo, hi)
                model, scores = fit_linear(
                    feats.transform([d.text for d in train]),
                    y,
                    feats.transform([d.text for d in val]),
                    y_val,
                    C,
                    cfg.lambdas,
                )
                table += _scores_table([f"{lo}-{hi}, {lam:g}" for lam in cfg.lambdas], scores)
                i = choose(scores)
                if best is None or choose([best[0], scores[i]]) == 1:
                    best = (scores[i], feats, model, f"{lo}-{hi}")
            assert best is not None
            _, feats, model, span = best
            pred = np.concatenate(
                [
                    model.predict(feats.transform([d.text for d in task.test[i : i + 64]]))
                    for i in range(0, len(task.test), 64)
                ]
            )
            record(
                "chars",
                float((pred == test["y"]).mean()),
                t0,
                {"ngrams": span, "lambda": model.lam, "features": feats.size},
                table,
            )
        clf = cfg.classifier()
        log = self.metrics.child(k=k, seed=seed) if self.metrics is not None else None
        for method, lrs in (("finetune", cfg.finetune_lrs), ("scratch", cfg.scratch_lrs)):
            if method not in methods:
                continue
            t0 = time.perf_counter()
            scores, chosen, steps = [], None, 0
            for lr in lrs:
                if method == "finetune":
                    model = SequenceClassifier(
                        clone_gpt(p.model),
                        C,
                        cfg.pooling,
                        clf.head_dropout,
                        generator=np.random.default_rng([seed, k, 2]),
                    )
                    if probe is not None:
                        probe_to_head(model, probe, p.feat_mean, p.feat_std)
                    head_lr = clf.head_lr
                else:  # the same initial weights for every learning rate
                    gen = np.random.default_rng([seed, k, 1])
                    config = replace(self.gpt_config, dropout=clf.trunk_dropout)
                    model = SequenceClassifier(
                        GPT(config, generator=gen), C, cfg.pooling, clf.head_dropout, generator=gen
                    )
                    head_lr = max(clf.head_lr, lr)
                steps = train_classifier(
                    model,
                    ids,
                    mask,
                    y,
                    lr,
                    clf,
                    seed,
                    log.child(method=method, lr=lr) if log else None,
                    method,
                    head_lr=head_lr,
                )
                scores.append(validation_scores(classifier_logits(model, val_ids, val_mask), y_val))
                if choose(scores) == len(scores) - 1:
                    chosen = (lr, model)  # keep only the best model so far
            assert chosen is not None
            logits = classifier_logits(chosen[1], test["ids"], test["mask"])
            record(
                method,
                float((logits.argmax(axis=1) == test["y"]).mean()),
                t0,
                {"lr": chosen[0]},
                _scores_table(lrs, scores),
                steps=steps,
            )
        return sorted(rows, key=lambda r: methods.index(r["method"]))


# ====================================================================== summaries
def _by_seed(rows: Sequence[dict[str, Any]], method: str, k: int) -> dict[int, float]:
    return {r["seed"]: r["accuracy"] for r in rows if r["method"] == method and r["k"] == k}


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, dict[int, Interval]]:
    """{method: {k: Interval of the mean test accuracy over seeds}}."""
    out: dict[str, dict[int, Interval]] = {}
    for method in METHODS:
        for k in sorted({r["k"] for r in rows if r["method"] == method}):
            accs = _by_seed(rows, method, k)
            out.setdefault(method, {})[k] = mean_interval(
                [accs[s] for s in sorted(accs)], within=RATE
            )
    return out


def differences(
    rows: Sequence[dict[str, Any]], reference: str = "finetune"
) -> dict[str, dict[int, Interval]]:
    """{other: {k: paired Interval of reference - other over seeds}}."""
    out: dict[str, dict[int, Interval]] = {}
    ks = sorted({r["k"] for r in rows})
    for other in METHODS:
        if other == reference:
            continue
        for k in ks:
            a, b = _by_seed(rows, reference, k), _by_seed(rows, other, k)
            seeds = sorted(set(a) & set(b))
            if seeds:
                out.setdefault(other, {})[k] = paired_interval(
                    [a[s] for s in seeds], [b[s] for s in seeds]
                )
    return out


def check_targets(diffs: dict[str, dict[int, Interval]]) -> list[Target]:
    """The issue's targets: (b) - (a) at k = 2 above 0; (b) against the character n-grams
    at k = 1, 2, 4 (each interval above 0: met; below: not met; straddling: inconclusive)."""
    out = []
    if 2 in diffs.get("scratch", {}):
        out.append(target("(b) - (a) at k=2", diffs["scratch"][2], 0.0))
    for k in (1, 2, 4):
        if k in diffs.get("chars", {}):
            out.append(target(f"(b) - (e) char n-grams at k={k}", diffs["chars"][k], 0.0))
    return out


def choice_counts(rows: Sequence[dict[str, Any]], method: str, k: int) -> str:
    """What validation chose over the seeds, e.g. 'lr 0.0001 x7, 0.0003 x3'."""
    picks = Counter(
        ", ".join(
            f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"
            for key, value in r["chosen"].items()
            if key != "features"
        )
        for r in rows
        if r["method"] == method and r["k"] == k
    )
    return "; ".join(f"{what} x{n}" for what, n in sorted(picks.items(), key=lambda x: -x[1]))


def tables(
    rows: Sequence[dict[str, Any]], ks: Sequence[int], methods: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The results.json tables: accuracy, paired differences, validation's choices."""
    summary, diffs = summarize(rows), differences(rows)
    n = len({r["seed"] for r in rows})
    cols = ["method"] + [f"k={k}" for k in ks]
    acc = [
        [METHOD_LABELS[m]]
        + [
            f"{summary[m][k].mean:.3f} ± {summary[m][k].sd:.3f}"
            if k in summary.get(m, {}) and summary[m][k].n > 1
            else f"{summary[m][k].mean:.3f}"
            if k in summary.get(m, {})
            else ""
            for k in ks
        ]
        for m in methods
    ]
    out = {
        "accuracy": {
            "caption": f"test accuracy, mean ± sample sd over {n} seeds",
            "columns": cols,
            "rows": acc,
        }
    }
    if "finetune" in methods and len(methods) > 1:
        out["differences"] = {
            "caption": f"(b) minus each other method, paired over the {n} seeds (same "
            f"labelled and test passages): mean [95% t interval]",
            "columns": cols,
            "rows": [
                [f"(b) - {SHORT[m]}"]
                + [diffs[m][k].format() if k in diffs.get(m, {}) else "" for k in ks]
                for m in methods
                if m != "finetune"
            ],
        }
    out["choices"] = {
        "caption": "what validation chose, over the seeds",
        "columns": cols,
        "rows": [[SHORT[m]] + [choice_counts(rows, m, k) for k in ks] for m in methods],
    }
    return out


# ====================================================================== the run
def pretraining_setup(cfg: AuthorsConfig, docs: list[Document]) -> tuple[Any, Any]:
    """(LMConfig, LMData) of the pretraining: its settings, and its data with the BPE
    tokenizer trained on the training passages (all the methods of NO_PRETRAINING need)."""
    from ..train.lm import LMConfig, prepare_lm_data

    lm_cfg = LMConfig(
        context=cfg.context,
        d_model=cfg.d_model,
        n_layers=cfg.layers,
        n_heads=cfg.heads,
        steps=cfg.pretrain_steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        warmup=min(50, cfg.pretrain_steps // 10),
        eval_every=max(cfg.pretrain_steps // 4, 1),
        eval_tokens=8000,
        seed=cfg.seed,
    )
    return lm_cfg, prepare_lm_data(docs, "bpe", cfg.vocab_size, 0.1, cfg.seed)


def pretrain(
    cfg: AuthorsConfig,
    docs: list[Document],
    out: str,
    metrics: MetricsLogger,
    say: Callable[[str], None],
    setup: tuple[Any, Any] | None = None,
) -> tuple[GPT, Any, dict[str, Any]]:
    """The pretrained GPT (loaded from cfg.pretrained, or trained and cached in
    out/pretrain), its tokenizer, and what to record about it; setup is
    pretraining_setup's, when already made. Under mpiexec the ranks
    pretrain data-parallel with the same global batch (the Trainer's DDP), so every rank
    ends with the same model; rank 0 alone writes out/pretrain."""
    from ..train.lm import LM_OUTPUTS, load_lm, run_config, train_lm

    if cfg.pretrained:
        model, tok, extra = load_lm(cfg.pretrained)
        say(f"pretrained model: {cfg.pretrained}")
        return model, tok, {"source": cfg.pretrained, **extra.get("info", {})}
    lm_cfg, data = setup or pretraining_setup(cfg, docs)
    pre_dir = os.path.join(out, "pretrain")
    resume = dist.on_rank_zero(
        lambda: prepare_run_dir(
            pre_dir, run_config(lm_cfg, data), outputs=LM_OUTPUTS, on_mismatch="restart"
        )
    )
    d = data.describe()
    say(
        f"pretraining a GPT (d_model {lm_cfg.d_model}, {lm_cfg.n_layers} layers, context "
        f"{lm_cfg.context}, BPE vocabulary {d['vocab_size']}) on {d['train_docs']} unlabelled "
        f"passages ({d['train_tokens']:,} tokens) for {lm_cfg.steps} steps"
        + (" (resuming)" if resume else "")
    )
    res = train_lm(
        data, lm_cfg, pre_dir, resume=resume, metrics=metrics.child(phase="lm"), name="pretrain"
    )
    say(
        f"pretrained: validation {res['val_bpc']:.3f} bits/char (unigram "
        f"{res['baselines']['unigram']:.3f}, bigram {res['baselines']['bigram']:.3f}) in "
        f"{res['seconds']:.0f} s"
    )
    return (
        res["model"],
        data.tokenizer,
        {
            "val_bpc": res["val_bpc"],
            "baselines": res["baselines"],
            "seconds": res["seconds"],
            "steps": res["steps"],
        },
    )


def protocol(cfg: AuthorsConfig, task: LabelledTask) -> Protocol:
    grid = ", ".join
    tuned = {
        "(a) learning rate in {" + grid(f"{v:g}" for v in cfg.scratch_lrs) + "}": "validation",
        "(b) trunk learning rate in {"
        + grid(f"{v:g}" for v in cfg.finetune_lrs)
        + "}": "validation",
        "L2 penalty of (b)'s probe start, (c), (d), (e) in {"
        + grid(f"{v:g}" for v in cfg.lambdas)
        + "}": "validation",
        "(e) character n-gram range in {"
        + grid(f"{lo}-{hi}" for lo, hi in cfg.char_ranges)
        + "}": "validation",
    }
    n_val = "k" if not cfg.validation_per_label else str(cfg.validation_per_label)
    notes = [
        f"per seed and k: k labelled passages per label from the pool and {n_val} validation "
        f"passages per label from books of their own (no more than the labelled ones; Oliver "
        f"et al. 2018); each arm's choice is made on validation (accuracy, ties by "
        f"cross-entropy), then its chosen model reads the test passages (other books) once",
        "the test passages are the same for every seed and arm (paired)",
    ]
    if cfg.corpus == "authors":
        dev = ", ".join(map(str, DEVELOPMENT_LIBRARY_SEEDS))
        notes.append(
            f"model size, vocabulary, pooling, pretraining steps and the grids were fixed in "
            f"development on library seed(s) {dev}, whose test sets were read then; this "
            f"run's library seed {cfg.library_seed} "
            + (
                "IS a development seed: not a held-out run"
                if cfg.library_seed in DEVELOPMENT_LIBRARY_SEEDS
                else "was never used in development"
            )
        )
    else:
        notes.append(
            "model size, vocabulary and pretraining steps are the defaults fixed in "
            "development (partly on this corpus's test set): not a held-out run"
        )
    return Protocol(
        splits={
            "labels": len(task.labels),
            "labelled pool": len(task.pool),
            "validation": len(task.validation),
            "test": len(task.test),
        },
        seeds=cfg.seed_list,
        tuned=tuned,
        selection="validation",
        notes="; ".join(notes),
    )


ROWS_FILE = "rows.jsonl"


def _read_rows(path: str) -> list[dict[str, Any]]:
    """The rows of an interrupted run (a torn last line is dropped)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


def run(cfg: AuthorsConfig, out: str, say: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole experiment. Writes out/results.json (the shared schema) after every seed,
    so an interrupted run leaves the seeds it finished; rows.jsonl (every (k, seed) as it
    ends), metrics.jsonl and authors.png. Rerun with the same config (config.json) and it
    resumes: pretraining from its checkpoint, the comparisons after the last finished
    (k, seed). Returns the paths, the targets, the tables and the Intervals.

    Under mpiexec (after init_process_group) the ranks pretrain data-parallel, then share
    out the (k, seed) comparisons (`shard_runs`, in rounds of one per rank; cfg.workers is
    ignored) and gather their rows: the rows are those of one process (but for the
    seconds) given the same pretrained model. Rank 0 alone prints (say), shows progress
    and writes files."""
    from .. import set_num_threads
    from ..text.corpora import load_corpus

    set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    task, pretrain_docs, what = load_task(cfg)
    if cfg.pretrain_corpus:
        pretrain_docs = load_corpus(cfg.pretrain_corpus)
    ks = [k for k in cfg.ks if k <= task.max_k()]
    dropped = [k for k in cfg.ks if k > task.max_k()]
    if not ks:
        raise CorpusError(
            f"every label has at most {task.max_k()} labelled passages; choose ks at most that"
        )
    config = {**asdict(cfg), "ks": ks}
    rows_path = os.path.join(out, ROWS_FILE)

    def prepare() -> list[dict[str, Any]]:  # the rows of an interrupted run to resume
        resume = prepare_run_dir(
            out,
            {k: v for k, v in config.items() if k not in ("threads", "workers")},
            outputs=(ROWS_FILE, "metrics.jsonl", "results.json", "authors.png"),
            on_mismatch="restart",
        )
        return _read_rows(rows_path) if resume and os.path.exists(rows_path) else []

    rows = dist.on_rank_zero(prepare)
    ranks, writes = dist.get_world_size(), dist.get_rank() == 0
    if not writes:
        say = _silent
    metrics = MetricsLogger(
        os.path.join(out, "metrics.jsonl") if writes else None, {"run": "authors"}
    )
    say(what)
    say(
        f"task: {len(task.labels)} labels; labelled pool {len(task.pool)}, validation "
        f"{len(task.validation)}, test {len(task.test)} passages (other books or files "
        f"where possible)"
    )
    if dropped:
        say(
            f"k = {', '.join(map(str, dropped))} dropped: some label has only "
            f"{task.max_k()} labelled passages"
        )
    if ranks > 1:
        say(
            f"{ranks} MPI ranks: pretraining data-parallel (global batch {cfg.batch_size}), "
            f"then the comparisons shared out over the ranks (one process each)"
        )
    # a (k, seed) counts as done only with a row for every method (a kill can tear a write)
    per = Counter((r["k"], r["seed"]) for r in rows)
    done = {key for key, n in per.items() if n == len(cfg.methods)}
    rows = [r for r in rows if (r["k"], r["seed"]) in done]
    if done:
        say(f"resuming: {len(done)} of {len(ks) * cfg.seeds} (k, seed) comparisons done")
    todo = [(k, seed) for seed in cfg.seed_list for k in ks if (k, seed) not in done]
    setup = None if cfg.pretrained else pretraining_setup(cfg, pretrain_docs)
    pools: list[Any] = []
    early, late = _split_methods(cfg)
    if ranks == 1 and cfg.workers > 1 and len(todo) > 1 and setup is not None and early and late:
        # pretraining uses one core: the methods that do not need the pretrained model run
        # meanwhile in a worker of their own (their rows do not depend on where they run)
        say(f"{', '.join(early)}: running in a worker process while the model pretrains")
        lm_cfg, data = setup
        tok = data.tokenizer
        pools.append(_pool(1, _worker_start_early, (cfg, tok, lm_cfg.gpt_config(tok.vocab_size))))
        early_outcomes = pools[0].imap(_worker_run, [(k, seed, early) for k, seed in todo])
    else:
        early, late = [], list(cfg.methods)
    model, tok, lm_info = pretrain(cfg, pretrain_docs, out, metrics, say, setup)
    mean, std = feature_stats(model, tok, pretrain_docs, seed=cfg.seed, pooling=cfg.pooling)
    # with several ranks, as with worker processes, rank 0 logs only the results
    comp = Comparison(task, Pretrained(model, tok, mean, std), cfg, metrics if ranks == 1 else None)
    progress = Progress(len(ks) * cfg.seeds, "authors", unit="runs", mode=None if writes else "off")
    progress.update(len(done))
    if ranks > 1:
        # rounds of one comparison per rank; rank 0 writes each round's rows as they come
        outcomes: Any = dist.run_in_rounds(lambda job: comp.run(*job), todo)
    elif cfg.workers > 1 and len(todo) > 1:
        # spawned, not forked (fork is unsafe once OpenMP has run); each worker loads the
        # task and the pretrained model once, and runs whole (k, seed) comparisons
        pools.append(_pool(min(cfg.workers, len(todo)), _worker_start, (cfg, out)))
        outcomes = pools[-1].imap(_worker_run, [(k, seed, late) for k, seed in todo])
        if early:
            outcomes = (
                sorted(a + b, key=lambda r: cfg.methods.index(r["method"]))
                for a, b in zip(early_outcomes, outcomes)
            )
    else:
        outcomes = (comp.run(k, seed) for k, seed in todo)

    def write(seed: int) -> dict[str, Any]:
        finished = [r for r in rows if r["seed"] <= seed]
        return _write(
            cfg,
            out,
            task,
            what,
            ks,
            lm_info,
            finished,
            config,
            time.perf_counter() - t_start,
            complete=seed == cfg.seed_list[-1],
            resumed=len(done),
        )

    try:
        for (k, seed), new in zip(todo, outcomes):
            rows.extend(new)
            if writes:
                with open(rows_path, "a", encoding="utf-8") as f:
                    f.writelines(json.dumps(to_jsonable(r)) + "\n" for r in new)
            if pools or ranks > 1:  # rows from workers or other ranks
                for r in new:
                    metrics.log(event="result", **{a: b for a, b in r.items() if a != "validation"})
            progress.update(1, k=k, **{r["method"]: round(r["accuracy"], 3) for r in new})
            if k == ks[-1]:
                write(seed)
    finally:
        for pool in pools:
            pool.terminate()
            pool.join()
    progress.close()
    return write(cfg.seed_list[-1])


def _silent(_: str) -> None:
    pass


def _split_methods(cfg: AuthorsConfig) -> tuple[list[str], list[str]]:
    """cfg.methods as (those that do not need the pretrained model, those that do)."""
    return (
        [m for m in cfg.methods if m in NO_PRETRAINING],
        [m for m in cfg.methods if m not in NO_PRETRAINING],
    )


def _pool(processes: int, start: Callable[..., None], args: tuple[Any, ...]) -> Any:
    # spawned, not forked: fork is unsafe once OpenMP has run
    return mp.get_context("spawn").Pool(processes, start, args)


_WORKER: dict[str, Comparison] = {}


def _worker_start(cfg: AuthorsConfig, out: str) -> None:
    """In a spawned worker: the task and the pretrained model (from disk), once."""
    from .. import set_num_threads
    from ..text.corpora import load_corpus
    from ..train.lm import load_lm

    set_num_threads(cfg.threads)
    task, docs, _ = load_task(cfg)
    if cfg.pretrain_corpus:
        docs = load_corpus(cfg.pretrain_corpus)
    model, tok, _ = load_lm(cfg.pretrained or os.path.join(out, "pretrain"))
    mean, std = feature_stats(model, tok, docs, seed=cfg.seed, pooling=cfg.pooling)
    _WORKER["comp"] = Comparison(task, Pretrained(model, tok, mean, std), cfg)


def _worker_start_early(cfg: AuthorsConfig, tokenizer: Tokenizer, gpt_config: GPTConfig) -> None:
    """In a spawned worker, before pretraining ends: the task, the tokenizer and the
    model's shape (enough for the methods of NO_PRETRAINING)."""
    from .. import set_num_threads

    set_num_threads(cfg.threads)
    task, _, _ = load_task(cfg)
    _WORKER["comp"] = Comparison(task, None, cfg, tokenizer=tokenizer, gpt_config=gpt_config)


def _worker_run(job: tuple[int, int, Sequence[str]]) -> list[dict[str, Any]]:
    """(k, seed, methods) -> the rows of those methods."""
    return _WORKER["comp"].run(*job)


def _write(
    cfg: AuthorsConfig,
    out: str,
    task: LabelledTask,
    what: str,
    ks: list[int],
    lm_info: dict[str, Any],
    rows: list[dict[str, Any]],
    config: dict[str, Any],
    seconds: float,
    complete: bool,
    resumed: int = 0,
) -> dict[str, Any]:
    """results.json (and authors.png) of the rows so far."""
    summary, diffs = summarize(rows), differences(rows)
    targets = check_targets(diffs)
    seeds = sorted({r["seed"] for r in rows})
    result_metrics = {
        "description": what,
        "task": task.describe(),
        "ks": ks,
        "methods": list(cfg.methods),
        "labels": METHOD_LABELS,
        "lm": lm_info,
        "complete": complete,
        # seconds of this process; a resumed run took over `resumed` (k, seed) comparisons
        "resumed": resumed,
        "summary": {m: {str(k): v.to_dict() for k, v in s.items()} for m, s in summary.items()},
        "differences": {
            f"finetune-{m}": {str(k): v.to_dict() for k, v in s.items()} for m, s in diffs.items()
        },
        "rows": rows,
        "seconds": seconds,
    }
    table = tables(rows, ks, cfg.methods)
    proto = protocol(cfg, task)
    if not complete:
        proto = replace(
            proto,
            seeds=seeds,
            notes=proto.notes + f"; INTERRUPTED: {len(seeds)} of {cfg.seeds} seeds finished",
        )
    path, png = os.path.join(out, "results.json"), None
    if dist.get_rank() == 0:  # under mpiexec, rank 0 alone writes
        path = write_results(out, "authors", config, proto, result_metrics, targets, table)
        png = plot(
            summary, ks, os.path.join(out, "authors.png"), cfg.corpus, len(seeds), len(task.labels)
        )
    return {
        "path": str(path),
        "png": png,
        "seconds": seconds,
        "targets": targets,
        "tables": table,
        "summary": summary,
        "differences": diffs,
    }


def plot(
    summary: dict[str, dict[int, Interval]],
    ks: list[int],
    path: str,
    corpus: str,
    n_seeds: int,
    n_labels: int,
) -> str | None:
    """Accuracy against k (log scale) per method: mean and 95% interval over seeds."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    styles = {"finetune": "o-", "probe": "s--", "bow": "^-.", "chars": "D-", "scratch": "v:"}
    for m, style in styles.items():
        if m not in summary:
            continue
        kk = [k for k in ks if k in summary[m]]
        mean = np.array([summary[m][k].mean for k in kk])
        half = np.array(
            [
                0.0 if math.isnan(summary[m][k].lo) else summary[m][k].hi - summary[m][k].mean
                for k in kk
            ]
        )
        ax.errorbar(kk, mean, yerr=half, fmt=style, capsize=3, label=METHOD_LABELS[m])
    ax.axhline(1.0 / n_labels, color="gray", lw=0.8, ls=":", label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    noun = "author" if corpus == "authors" else "label"
    ax.set_xlabel(f"labelled passages per {noun} (k)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{corpus}: {n_labels} labels, mean and 95% interval over {n_seeds} seeds")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
