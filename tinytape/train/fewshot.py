"""Few-shot sequence classification: a labelled task split three ways, linear models chosen
on validation, and the pieces a Transformer classifier needs.

- `LabelledTask`: a labelled pool to draw k passages per label from, a validation split (other
  books of the same labels) for every choice, and a test split (yet other books) read once.
- Multinomial logistic regression with an L2 penalty, solved in numpy (`fit_logreg`); its
  penalty, like every other choice, picked on validation (`choose`, `fit_linear`).
- The Transformer side: passages to token ids, pooled features of a trunk, a classifier's
  logits, and starting a `SequenceClassifier`'s head from a linear probe.

The experiment that compares these lives in `tinytape.experiments.authors`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models import GPT, GPTConfig, SequenceClassifier
from ..models.classifier import feature_dim, pool
from ..nn.module import evaluating
from ..numeric import log_softmax, softmax
from ..text.corpora import CorpusError, Document
from ..text.tokenizers import Tokenizer

LAMBDAS = (1.0, 1e-1, 1e-2, 1e-3, 1e-4)  # the most regularised first: it wins ties


# ====================================================================== the task
def _group(d: Document) -> str:
    return d.group if d.group is not None else d.source


@dataclass
class LabelledTask:
    """Labelled passages to draw the k-shot training sets from, validation passages to make
    every choice on, and the test passages; three disjoint sets (other books where the
    corpus has them)."""

    pool: list[Document]
    validation: list[Document]
    test: list[Document]
    labels: list[str]

    def __post_init__(self) -> None:
        if len(self.labels) < 2:
            raise CorpusError(
                f"a classification task needs at least 2 labels, got {len(self.labels)}"
            )
        for name, docs in (
            ("labelled pool", self.pool),
            ("validation set", self.validation),
            ("test set", self.test),
        ):
            have = {d.label for d in docs}
            missing = [lab for lab in self.labels if lab not in have]
            if missing:
                raise CorpusError(f"the {name} has no passage of {', '.join(missing)}")
        sources = [{d.source for d in s} for s in (self.pool, self.validation, self.test)]
        if sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2]:
            raise CorpusError("the labelled pool, validation and test sets share passages")

    def label_ids(self, docs: Sequence[Document]) -> np.ndarray:
        index = {lab: i for i, lab in enumerate(self.labels)}
        return np.array([index[d.label] for d in docs], dtype=np.int64)

    def sample(self, k: int, seed: int) -> list[Document]:
        """k passages of each label from the pool (all of them if a label has fewer), seeded;
        grouped by label."""
        return _draw_per_label(self.pool, self.labels, k, [seed, 1000 + k])

    def sample_validation(self, n: int, seed: int) -> list[Document]:
        """n validation passages of each label (all if fewer), seeded; grouped by label."""
        return _draw_per_label(self.validation, self.labels, n, [seed, 2000 + n])

    def max_k(self) -> int:
        """The largest k every label can supply."""
        return min(sum(d.label == lab for d in self.pool) for lab in self.labels)

    def describe(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "pool": len(self.pool),
            "validation": len(self.validation),
            "test": len(self.test),
            "max_k": self.max_k(),
        }


def _draw_per_label(
    docs: Sequence[Document], labels: Sequence[str], k: int, seed: list[int]
) -> list[Document]:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    rng = np.random.default_rng(seed)
    out: list[Document] = []
    for lab in labels:
        mine = [d for d in docs if d.label == lab]
        idx = rng.permutation(len(mine))[:k]
        out.extend(mine[i] for i in sorted(idx))
    return out


def split_labelled(
    docs: Sequence[Document],
    test_fraction: float = 0.5,
    validation_fraction: float = 0.2,
    seed: int = 0,
    max_test_per_label: int | None = None,
) -> LabelledTask:
    """Per label, whole groups (books, files) where the label has enough of them: a
    `test_fraction` of its groups to the test side, a `validation_fraction` to validation,
    the rest to the pool. A label with two groups gives one to the test side and splits the
    other's passages (its last ones to validation); a label with one group is split by
    position: pool, then validation, then test. Test passages capped per label."""
    if not (
        0 < test_fraction < 1
        and 0 < validation_fraction < 1
        and test_fraction + validation_fraction < 1
    ):
        raise ValueError(
            f"split_labelled: fractions must be in (0, 1) and sum below 1, got "
            f"test {test_fraction}, validation {validation_fraction}"
        )
    labels = sorted({d.label for d in docs if d.label is not None})
    rng = np.random.default_rng([seed, 77])
    pool: list[Document] = []
    val: list[Document] = []
    test: list[Document] = []
    for lab in labels:
        mine = [d for d in docs if d.label == lab]
        groups = list(dict.fromkeys(_group(d) for d in mine))
        if len(groups) >= 3:
            order = [groups[i] for i in rng.permutation(len(groups))]
            n_test = min(max(round(test_fraction * len(groups)), 1), len(groups) - 2)
            n_val = min(max(round(validation_fraction * len(groups)), 1), len(groups) - n_test - 1)
            side = {
                g: 2 if i < n_test else 1 if i < n_test + n_val else 0 for i, g in enumerate(order)
            }
            p, v, t = ([d for d in mine if side[_group(d)] == s] for s in (0, 1, 2))
        else:
            if len(groups) == 2:
                test_group = groups[int(rng.integers(2))]
                t = [d for d in mine if _group(d) == test_group]
                rest = [d for d in mine if _group(d) != test_group]
            else:
                cut = len(mine) - max(round(test_fraction * len(mine)), 1)
                rest, t = mine[:cut], mine[cut:]
            share = (
                validation_fraction / (1 - test_fraction)
                if len(groups) < 2
                else validation_fraction
            )
            n_val = min(max(round(share * len(rest)), 1), len(rest) - 1)
            p, v = rest[: len(rest) - n_val], rest[len(rest) - n_val :]
        if max_test_per_label is not None and len(t) > max_test_per_label:
            keep = sorted(rng.permutation(len(t))[:max_test_per_label])
            t = [t[i] for i in keep]
        pool.extend(p)
        val.extend(v)
        test.extend(t)
    return LabelledTask(pool, val, test, labels)


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


def mean_cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean of -log softmax(logits)[i, y_i], (N, C) and (N,)."""
    return float(-np.mean(log_softmax(logits, axis=1)[np.arange(len(y)), y]))


def logreg_loss(X: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray, lam: float) -> float:
    """mean cross-entropy + lam / 2 * ||W||^2 (the bias is not penalised)."""
    return mean_cross_entropy(X @ W + b, y) + 0.5 * lam * float(np.sum(W * W))


def fit_logreg(
    X: np.ndarray, y: np.ndarray, num_classes: int, lam: float, iters: int = 400, tol: float = 1e-6
) -> LogisticRegression:
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
        grad = X1.T @ (softmax(X1 @ v, axis=1) - Y) / n + reg * v
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


def validation_scores(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of (N, C) logits against labels (N,); a non-finite
    loss (a diverged run) counts as infinite."""
    loss = mean_cross_entropy(np.asarray(logits, np.float64), y)
    return float((logits.argmax(axis=1) == y).mean()), loss if math.isfinite(loss) else math.inf


def choose(scores: Sequence[tuple[float, float]]) -> int:
    """Index of the best (accuracy, loss) on validation: the highest accuracy, then the
    lowest mean cross-entropy, then the first (grids list their most conservative setting
    first)."""
    if not scores:
        raise ValueError("choose: no candidates")
    best = 0
    for i, (acc, loss) in enumerate(scores):
        if acc > scores[best][0] or (acc == scores[best][0] and loss < scores[best][1]):
            best = i
    return best


def fit_linear(
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int,
    lambdas: Sequence[float] = LAMBDAS,
) -> tuple[LogisticRegression, list[tuple[float, float]]]:
    """A logistic regression fitted on (X, y) for each penalty; the one `choose` picks on
    (X_val, y_val), and every penalty's validation (accuracy, loss)."""
    models = [fit_logreg(X, y, num_classes, lam) for lam in lambdas]
    scores = [validation_scores(m.logits(X_val), y_val) for m in models]
    return models[choose(scores)], scores


# ====================================================================== Transformer side
def encode_passages(
    docs: Sequence[Document], tok: Tokenizer, context: int
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, mask) of shape (N, L): <|endoftext|> then the passage's tokens (as a document
    starts in the pretraining stream), cut at `context`, right-padded with 0; mask True on
    real tokens. L is the longest passage (at most context)."""
    seqs = [[tok.eot_id, *tok.encode(d.text)][:context] for d in docs]
    L = max(len(s) for s in seqs)
    ids = np.zeros((len(seqs), L), dtype=np.int64)
    mask = np.zeros((len(seqs), L), dtype=bool)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = True
    return ids, mask


def _batches(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _trim(ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop padding columns that no row of the batch uses."""
    L = max(int(mask.sum(axis=1).max()), 1)
    return ids[:, :L], mask[:, :L]


def pooled_features(
    trunk: GPT, ids: np.ndarray, mask: np.ndarray, pooling: str = "ffn", batch_size: int = 32
) -> np.ndarray:
    """The trunk's pooled features (see models.classifier.pool), (N, features) float64."""
    out = []
    with evaluating(trunk):
        for sl in _batches(len(ids), batch_size):
            x, m = _trim(ids[sl], mask[sl])
            out.append(pool(trunk, x, m, pooling).numpy().astype(np.float64))
    return np.concatenate(out) if out else np.zeros((0, feature_dim(trunk.config, pooling)))


def classifier_logits(
    model: SequenceClassifier, ids: np.ndarray, mask: np.ndarray, batch_size: int = 32
) -> np.ndarray:
    """(N, classes) float64 logits of the model in eval mode (no dropout)."""
    out = []
    with evaluating(model):
        for sl in _batches(len(ids), batch_size):
            x, m = _trim(ids[sl], mask[sl])
            out.append(model(x, m).numpy().astype(np.float64))
    return np.concatenate(out)


def probe_to_head(
    model: SequenceClassifier, probe: LogisticRegression, mean: np.ndarray, std: np.ndarray
) -> None:
    """Set the head so that head(pooled) equals the probe's logits on standardized
    features: W_head = (W / std).T, b_head = b - (mean / std) @ W."""
    W = probe.W / std[:, None]
    dtype = model.head.weight.data.dtype
    model.head.weight.data[...] = W.T.astype(dtype)
    model.head.bias.data[...] = (probe.b - mean @ W).astype(dtype)


@dataclass
class Pretrained:
    """A pretrained GPT, its tokenizer, and feature statistics from unlabelled passages."""

    model: GPT
    tokenizer: Tokenizer
    feat_mean: np.ndarray
    feat_std: np.ndarray

    def features(self, ids: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
        """Pooled features, standardized with the unlabelled statistics."""
        return (pooled_features(self.model, ids, mask, pooling) - self.feat_mean) / self.feat_std


def feature_stats(
    model: GPT,
    tok: Tokenizer,
    docs: Sequence[Document],
    n: int = 256,
    seed: int = 0,
    pooling: str = "ffn",
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of pooled features over up to n unlabelled passages (for standardizing
    the probe's inputs without looking at the labelled, validation or test passages)."""
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
