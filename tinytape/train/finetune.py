"""Telling authors apart from a few labelled passages: pretrain, then fine-tune, probe, or not.

The lecture's "another dose of reality": a niche task (who wrote this passage?), a tiny
labelled set (k passages per author), and a large related unlabelled corpus. Four ways to
use k labelled passages, all tested on passages from *other books* of the same authors:

(a) "scratch":  the Transformer classifier trained from random initialisation;
(b) "finetune": the GPT pretrained as a language model on the unlabelled corpus, with a
    classification head (mean-pooled features -> Linear), every weight fine-tuned; the head
    starts from the linear probe's solution ("LP-FT", so that fine-tuning does not begin by
    back-propagating a random head's errors into the pretrained features);
(c) "probe":    the pretrained GPT frozen; logistic regression on its mean-pooled features;
(d) "bow":      bag-of-words logistic regression (tf-idf of word counts), no pretraining.

Logistic regression (for (c), (d) and the probe start of (b)) is multinomial with an L2
penalty, solved in numpy; its penalty is chosen by leave-one-passage-per-author-out
cross-validation on the labelled passages when k >= 2 (the same rule for (c) and (d)).
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..autograd.grad_mode import no_grad
from ..models import GPT, GPTConfig, SequenceClassifier
from ..models.classifier import feature_dim, pool
from ..nn import functional as NF
from ..optim import AdamW, WarmupCosineLR, param_groups_for_weight_decay
from ..text.corpora import CorpusError, Document
from ..text.tokenizers import Tokenizer
from .trainer import MetricsLogger, Trainer

METHODS = ("scratch", "finetune", "probe", "bow")
METHOD_LABELS = {"scratch": "(a) Transformer from scratch",
                 "finetune": "(b) pretrained + fine-tuned",
                 "probe": "(c) frozen features, linear probe",
                 "bow": "(d) bag-of-words logistic regression"}
LAMBDAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


# ====================================================================== the task
@dataclass
class LabelledTask:
    """Labelled passages to draw the k-shot training sets from, and the test passages."""

    pool: list[Document]
    test: list[Document]
    labels: list[str]

    def __post_init__(self) -> None:
        if len(self.labels) < 2:
            raise CorpusError(f"a classification task needs at least 2 labels, got "
                              f"{len(self.labels)}")
        for name, docs in (("labelled pool", self.pool), ("test set", self.test)):
            have = {d.label for d in docs}
            missing = [lab for lab in self.labels if lab not in have]
            if missing:
                raise CorpusError(f"the {name} has no passage of {', '.join(missing)}")

    def label_ids(self, docs: Sequence[Document]) -> np.ndarray:
        index = {lab: i for i, lab in enumerate(self.labels)}
        return np.array([index[d.label] for d in docs], dtype=np.int64)

    def sample(self, k: int, seed: int) -> list[Document]:
        """k passages of each label from the pool (all of them if a label has fewer), seeded;
        grouped by label."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        rng = np.random.default_rng([seed, 1000 + k])
        out: list[Document] = []
        for lab in self.labels:
            docs = [d for d in self.pool if d.label == lab]
            idx = rng.permutation(len(docs))[:k]
            out.extend(docs[i] for i in sorted(idx))
        return out

    def max_k(self) -> int:
        """The largest k every label can supply."""
        return min(sum(d.label == lab for d in self.pool) for lab in self.labels)

    def describe(self) -> dict[str, Any]:
        return {"labels": self.labels, "pool": len(self.pool), "test": len(self.test),
                "max_k": self.max_k()}


def split_labelled(docs: Sequence[Document], test_fraction: float = 0.5, seed: int = 0,
                   max_test_per_label: int | None = None) -> LabelledTask:
    """Per label: whole groups (books, files) to the test side when the label has two or
    more groups, else a contiguous tail of its passages; test passages capped per label."""
    labels = sorted({d.label for d in docs if d.label is not None})
    rng = np.random.default_rng([seed, 77])
    pool: list[Document] = []
    test: list[Document] = []
    for lab in labels:
        mine = [d for d in docs if d.label == lab]
        groups = list(dict.fromkeys(d.group if d.group is not None else d.source
                                    for d in mine))
        if len(groups) >= 2:
            n_test = min(max(int(round(test_fraction * len(groups))), 1), len(groups) - 1)
            test_groups = {groups[i] for i in rng.permutation(len(groups))[:n_test]}
            t = [d for d in mine if (d.group if d.group is not None else d.source)
                 in test_groups]
            p = [d for d in mine if (d.group if d.group is not None else d.source)
                 not in test_groups]
        else:
            cut = len(mine) - max(int(round(test_fraction * len(mine))), 1)
            p, t = mine[:cut], mine[cut:]
        if max_test_per_label is not None and len(t) > max_test_per_label:
            keep = sorted(rng.permutation(len(t))[:max_test_per_label])
            t = [t[i] for i in keep]
        pool.extend(p)
        test.extend(t)
    return LabelledTask(pool, test, labels)


# ====================================================================== logistic regression
@dataclass
class LogisticRegression:
    """Multinomial logistic regression, weights W (D, C) and bias b (C,)."""

    W: np.ndarray
    b: np.ndarray
    lam: float = 0.0

    def logits(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W + self.b

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.logits(X).argmax(axis=1)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def logreg_loss(X: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray, lam: float
                ) -> float:
    """mean cross-entropy + lam / 2 * ||W||^2 (the bias is not penalised)."""
    z = X @ W + b
    z = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(y)), y]) + 0.5 * lam * np.sum(W * W))


def fit_logreg(X: np.ndarray, y: np.ndarray, num_classes: int, lam: float,
               iters: int = 400, tol: float = 1e-6) -> LogisticRegression:
    """Minimise logreg_loss by Nesterov-accelerated gradient descent: step 1/L with L the
    Lipschitz constant of the gradient (largest eigenvalue of X_1^T X_1 / (2n) + lam,
    X_1 = [X, 1]), momentum restarted when it points uphill (O'Donoghue and Candes), until
    the gradient's norm is below tol."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    if d > n and lam > 0:
        # The penalised optimum lies in the row space of X (W = -X^T (P - Y) / (n lam)):
        # solve in an orthonormal basis V of it (X = Z V^T, Z = U S from X X^T = U S^2 U^T),
        # n numbers per class instead of d, then map back: W = V W_z.
        s2, U = np.linalg.eigh(X @ X.T)
        keep = s2 > 1e-10 * max(float(s2[-1]), 1e-300)
        s = np.sqrt(s2[keep])
        Z = U[:, keep] * s
        V = X.T @ (U[:, keep] / s)
        m = fit_logreg(Z, y, num_classes, lam, iters, tol)
        return LogisticRegression(V @ m.W, m.b, lam)
    Y = np.zeros((n, num_classes))
    Y[np.arange(n), y] = 1.0
    X1 = np.hstack([X, np.ones((n, 1))])
    gram = X1 @ X1.T if n <= d + 1 else X1.T @ X1
    L = float(np.linalg.eigvalsh(gram)[-1]) / (2 * n) + lam
    step = 1.0 / L
    reg = np.full((d + 1, 1), lam)
    reg[-1] = 0.0
    theta = np.zeros((d + 1, num_classes))
    v, t = theta.copy(), 1.0
    for _ in range(iters):
        grad = X1.T @ (_softmax(X1 @ v) - Y) / n + reg * v
        if np.sqrt(np.sum(grad * grad)) < tol:
            theta = v
            break
        new = v - step * grad
        if np.sum(grad * (new - theta)) > 0:  # momentum points uphill: restart
            t = 1.0
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        v = new + (t - 1) / t_next * (new - theta)
        theta, t = new, t_next
    return LogisticRegression(theta[:-1], theta[-1], lam)


def choose_lambda(X: np.ndarray, y: np.ndarray, num_classes: int,
                  lambdas: Sequence[float] = LAMBDAS, default: float = 1e-2) -> float:
    """The penalty with the best leave-one-per-class-out accuracy (ties: the larger
    penalty); `default` when some class has a single example."""
    counts = np.bincount(y, minlength=num_classes)
    k = int(counts.min())
    if k < 2:
        return default
    folds = min(k, 4)
    # fold f holds the f-th, (f + folds)-th ... example of each class
    rank = np.zeros(len(y), dtype=np.int64)
    for c in range(num_classes):
        idx = np.flatnonzero(y == c)
        rank[idx] = np.arange(len(idx)) % folds
    scores = []
    for lam in lambdas:
        correct = 0
        for f in range(folds):
            tr, te = rank != f, rank == f
            m = fit_logreg(X[tr], y[tr], num_classes, lam, iters=150)
            correct += int((m.predict(X[te]) == y[te]).sum())
        scores.append(correct)
    best = max(scores)
    return max(lam for lam, s in zip(lambdas, scores) if s == best)


# ====================================================================== bag of words
WORD = re.compile(r"[^\W\d_]+|\d+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased runs of letters or digits."""
    return WORD.findall(text.lower())


@dataclass
class BagOfWords:
    """tf-idf features: (1 + log count) * idf, each row scaled to unit length; the
    vocabulary and idf come from the labelled training passages only."""

    vocab: dict[str, int]
    idf: np.ndarray

    @classmethod
    def fit(cls, texts: Sequence[str]) -> BagOfWords:
        df: Counter[str] = Counter()
        for t in texts:
            df.update(set(words(t)))
        vocab = {w: i for i, w in enumerate(sorted(df))}
        n = len(texts)
        idf = np.array([math.log((1 + n) / (1 + df[w])) + 1.0 for w in sorted(df)])
        return cls(vocab, idf)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        X = np.zeros((len(texts), len(self.vocab)))
        for i, t in enumerate(texts):
            for w, c in Counter(words(t)).items():
                j = self.vocab.get(w)
                if j is not None:
                    X[i, j] = 1.0 + math.log(c)
        X *= self.idf
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        return X / np.maximum(norms, 1e-12)


def bow_accuracy(train: Sequence[Document], test: Sequence[Document], task: LabelledTask
                 ) -> dict[str, float]:
    """Method (d): tf-idf bag of words + logistic regression."""
    bow = BagOfWords.fit([d.text for d in train])
    Xtr, Xte = bow.transform([d.text for d in train]), bow.transform([d.text for d in test])
    y = task.label_ids(train)
    lam = choose_lambda(Xtr, y, len(task.labels))
    m = fit_logreg(Xtr, y, len(task.labels), lam)
    return {"accuracy": float((m.predict(Xte) == task.label_ids(test)).mean()), "lambda": lam}


# ====================================================================== Transformer side
def encode_passages(docs: Sequence[Document], tok: Tokenizer, context: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(ids, mask) of shape (N, L): <|endoftext|> then the passage's tokens (as a document
    starts in the pretraining stream), cut at `context`, right-padded with 0; mask True on
    real tokens. L is the longest passage (at most context)."""
    seqs = [[tok.eot_id, *tok.encode(d.text)][:context] for d in docs]
    L = max(len(s) for s in seqs)
    ids = np.zeros((len(seqs), L), dtype=np.int64)
    mask = np.zeros((len(seqs), L), dtype=bool)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = True
    return ids, mask


def _batches(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _trim(ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop padding columns that no row of the batch uses."""
    L = max(int(mask.sum(axis=1).max()), 1)
    return ids[:, :L], mask[:, :L]


def pooled_features(trunk: GPT, ids: np.ndarray, mask: np.ndarray, pooling: str = "ffn",
                    batch_size: int = 32) -> np.ndarray:
    """The trunk's pooled features (see models.classifier.pool), (N, features) float64."""
    out = []
    was_training = trunk.training
    trunk.eval()
    try:
        with no_grad():
            for sl in _batches(len(ids), batch_size):
                x, m = _trim(ids[sl], mask[sl])
                out.append(pool(trunk, x, m, pooling).numpy().astype(np.float64))
    finally:
        trunk.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, feature_dim(trunk.config, pooling)))


def classifier_accuracy(model: SequenceClassifier, ids: np.ndarray, mask: np.ndarray,
                        y: np.ndarray, batch_size: int = 32) -> float:
    preds = []
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for sl in _batches(len(ids), batch_size):
                x, m = _trim(ids[sl], mask[sl])
                preds.append(model(x, m).numpy().argmax(axis=1))
    finally:
        model.train(was_training)
    return float((np.concatenate(preds) == y).mean())


@dataclass
class FinetuneConfig:
    """Optimisation of the classifier runs (a) and (b)."""

    lr_scratch: float = 1e-3
    lr_finetune: float = 1e-4    # the pretrained trunk
    lr_head: float = 1e-3        # the new head (of both (a) and (b))
    weight_decay: float = 0.01
    batch_size: int = 16
    epochs: float = 4.0        # passes over the labelled passages ...
    min_steps: int = 40        # ... but at least this many steps
    max_steps: int = 100       # ... and at most this many
    warmup: int = 5
    clip: float = 1.0
    dropout: float = 0.1
    head_init: str = "probe"   # "probe" (LP-FT) or "random"
    pooling: str = "ffn"       # features of the heads and the probe: models.classifier.pool

    def steps(self, n: int) -> int:
        s = int(math.ceil(self.epochs * n / self.batch_size))
        return int(min(max(s, self.min_steps), self.max_steps))


def train_classifier(model: SequenceClassifier, ids: np.ndarray, mask: np.ndarray,
                     y: np.ndarray, lr: float, cfg: FinetuneConfig, seed: int,
                     metrics: MetricsLogger | None = None, name: str = "classifier",
                     head_lr: float | None = None) -> int:
    """Train every parameter of model on (ids, mask, y) with AdamW (the head at head_lr,
    default lr), warm-up then cosine, clipping, via the shared Trainer; returns the number
    of steps."""
    steps = cfg.steps(len(y))
    head_lr = lr if head_lr is None else head_lr
    groups = []
    for part, rate in ((model.trunk, lr), (model.head, head_lr)):
        for g in param_groups_for_weight_decay(part.named_parameters(), cfg.weight_decay):
            if g["params"]:
                groups.append({**g, "lr": rate})
    opt = AdamW(groups, lr=lr)
    sched = WarmupCosineLR(opt, warmup_steps=min(cfg.warmup, steps - 1), total_steps=steps,
                           min_lr=[g["lr"] * 0.1 for g in groups])

    def loss_fn(batch: tuple[np.ndarray, ...], rng: np.random.Generator) -> Any:
        x, m, t = batch
        x, m = _trim(x, m)
        return NF.cross_entropy(model(x, m), t)

    trainer = Trainer(model, opt, (ids, mask, y), steps=steps,
                      batch_size=min(cfg.batch_size, len(y)), seed=seed, scheduler=sched,
                      clip_grad_norm=cfg.clip, loss_fn=loss_fn, log_every=10,
                      metrics=metrics, progress=False, name=name)
    trainer.fit()
    return steps


def _probe_to_head(model: SequenceClassifier, probe: LogisticRegression, mean: np.ndarray,
                   std: np.ndarray) -> None:
    """Set the head so that head(pooled) equals the probe's logits on standardized
    features: W_head = (W / std).T, b_head = b - (mean / std) @ W."""
    W = probe.W / std[:, None]
    dtype = model.head.weight.data.dtype
    model.head.weight.data[...] = W.T.astype(dtype)
    model.head.bias.data[...] = (probe.b - mean @ W).astype(dtype)


# ====================================================================== one comparison
@dataclass
class Pretrained:
    """A pretrained GPT, its tokenizer, and feature statistics from unlabelled passages."""

    model: GPT
    tokenizer: Tokenizer
    feat_mean: np.ndarray
    feat_std: np.ndarray


def feature_stats(model: GPT, tok: Tokenizer, docs: Sequence[Document], n: int = 256,
                  seed: int = 0, pooling: str = "ffn") -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of pooled features over up to n unlabelled passages (for standardizing
    the probe's inputs without looking at the labelled or test passages)."""
    rng = np.random.default_rng(seed)
    pick = [docs[i] for i in sorted(rng.permutation(len(docs))[:n])]
    ids, mask = encode_passages(pick, tok, model.config.context_length)
    F = pooled_features(model, ids, mask, pooling)
    return F.mean(axis=0), F.std(axis=0) + 1e-6


def clone_gpt(model: GPT) -> GPT:
    """A new GPT with the same config and a copy of the weights."""
    copy = GPT(GPTConfig(**model.config.to_dict()))
    copy.load_state_dict({k: v.copy() for k, v in model.state_dict().items()})
    return copy


@dataclass
class Comparison:
    """Everything one (k, seed) comparison needs that does not change with k or seed."""

    task: LabelledTask
    pretrained: Pretrained
    cfg: FinetuneConfig = field(default_factory=FinetuneConfig)
    methods: Sequence[str] = METHODS
    metrics: MetricsLogger | None = None
    _test_cache: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        want = feature_dim(self.pretrained.model.config, self.cfg.pooling)
        if self.pretrained.feat_mean.shape != (want,):
            raise ValueError(f"Comparison: feature statistics of shape "
                             f"{self.pretrained.feat_mean.shape} do not fit pooling "
                             f"{self.cfg.pooling!r} ({want} features); compute them with "
                             f"feature_stats(..., pooling={self.cfg.pooling!r})")

    def _test_inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self._test_cache:
            p = self.pretrained
            ids, mask = encode_passages(self.task.test, p.tokenizer,
                                        p.model.config.context_length)
            feats = (pooled_features(p.model, ids, mask, self.cfg.pooling) - p.feat_mean) \
                / p.feat_std
            self._test_cache.update(ids=ids, mask=mask, y=self.task.label_ids(self.task.test),
                                    feats=feats)
        c = self._test_cache
        return c["ids"], c["mask"], c["y"], c["feats"]

    def run(self, k: int, seed: int, on_result: Callable[[dict], None] | None = None
            ) -> list[dict[str, Any]]:
        """Accuracy of each method with k labelled passages per label (seeded draw)."""
        task, p, cfg = self.task, self.pretrained, self.cfg
        train = task.sample(k, seed)
        y = task.label_ids(train)
        C = len(task.labels)
        te_ids, te_mask, te_y, te_feats = self._test_inputs()
        ids, mask = encode_passages(train, p.tokenizer, p.model.config.context_length)
        rows: list[dict[str, Any]] = []

        def record(method: str, acc: float, t0: float, **extra: Any) -> None:
            row = {"method": method, "k": k, "seed": seed, "accuracy": acc,
                   "n_train": len(train), "seconds": time.perf_counter() - t0, **extra}
            rows.append(row)
            if self.metrics is not None:
                self.metrics.log(event="result", **row)
            if on_result is not None:
                on_result(row)

        probe = None
        if "probe" in self.methods or ("finetune" in self.methods
                                       and cfg.head_init == "probe"):
            t0 = time.perf_counter()
            F = (pooled_features(p.model, ids, mask, cfg.pooling) - p.feat_mean) / p.feat_std
            lam = choose_lambda(F, y, C)
            probe = fit_logreg(F, y, C, lam)
            if "probe" in self.methods:
                record("probe", float((probe.predict(te_feats) == te_y).mean()), t0,
                       **{"lambda": lam})
        if "bow" in self.methods:
            t0 = time.perf_counter()
            r = bow_accuracy(train, task.test, task)
            record("bow", r["accuracy"], t0, **{"lambda": r["lambda"]})
        log = self.metrics.child(k=k, seed=seed) if self.metrics is not None else None
        if "finetune" in self.methods:
            t0 = time.perf_counter()
            model = SequenceClassifier(clone_gpt(p.model), C, cfg.pooling, cfg.dropout,
                                       generator=np.random.default_rng([seed, k, 2]))
            if probe is not None:
                _probe_to_head(model, probe, p.feat_mean, p.feat_std)
            steps = train_classifier(model, ids, mask, y, cfg.lr_finetune, cfg, seed,
                                     log.child(method="finetune") if log else None,
                                     "finetune", head_lr=cfg.lr_head)
            record("finetune", classifier_accuracy(model, te_ids, te_mask, te_y), t0,
                   steps=steps)
        if "scratch" in self.methods:
            t0 = time.perf_counter()
            gen = np.random.default_rng([seed, k, 1])
            config = GPTConfig(**{**p.model.config.to_dict(), "dropout": cfg.dropout})
            model = SequenceClassifier(GPT(config, generator=gen), C, cfg.pooling, cfg.dropout,
                                       generator=gen)
            steps = train_classifier(model, ids, mask, y, cfg.lr_scratch, cfg, seed,
                                     log.child(method="scratch") if log else None, "scratch",
                                     head_lr=max(cfg.lr_head, cfg.lr_scratch))
            record("scratch", classifier_accuracy(model, te_ids, te_mask, te_y), t0,
                   steps=steps)
        return rows


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, dict[int, dict[str, float]]]:
    """{method: {k: {"mean", "std", "n"}}} of the accuracies."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    for method in METHODS:
        for k in sorted({r["k"] for r in rows if r["method"] == method}):
            accs = [r["accuracy"] for r in rows if r["method"] == method and r["k"] == k]
            out.setdefault(method, {})[k] = {"mean": float(np.mean(accs)),
                                             "std": float(np.std(accs)), "n": len(accs)}
    return out


def config_dict(cfg: FinetuneConfig) -> dict[str, Any]:
    return asdict(cfg)
