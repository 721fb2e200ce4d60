"""In-context against in-weights learning as Chan et al. (2022) test it (issue #15, point 1).

"Data distributional properties drive emergent in-context learning in transformers": a
model sees sequences of (item, label) pairs and a query item; items are noisy exemplars of
classes whose labels are fixed, so a label can be learned in the weights; classes are
drawn from a Zipfian distribution, and a fraction p_bursty of the training sequences are
*bursty* (the query's class, and one other, fill the context). Two abilities are scored
on held-out sequences:

* in-context: two classes never trained on, each given a random label in the context;
  only the context can tell the query's label (chance 1/2 when the model picks one of the
  two labels shown, lower otherwise);
* in-weights: a trained class's query with a context of other classes (and other labels),
  so only the weights can tell (chance 1/n_labels).

Pieces: `ClassTask` (the world: prototypes, fixed labels, class distribution; sampling of
training, in-context and in-weights sequences), `PairTransformer` (one position per
(item, label) pair, the query last, bidirectional attention, logits over the labels at the
query), `train_and_evaluate` (one (condition, seed) run, a top-level function so a worker
process can run it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..config import set_num_threads
from ..nn import functional as NF
from ..nn.layers import Embedding, LayerNorm, Linear
from ..nn.module import Module, ModuleList, evaluating
from ..nn.transformer import TransformerBlock
from ..optim import make_optimizer, make_schedule
from ..tensor import Tensor
from ..train.trainer import Trainer
from .protocol import require_counts


# ====================================================================== data
@dataclass(frozen=True)
class PairSequences:
    """A batch: items (n, context + 1, item_dim) float32, the query last; context labels
    (n, context + 1) int64 with the query's slot set to n_labels (no label); targets (n,);
    classes (n, context + 1), the class of every item (for analysis, not a model input)."""

    items: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return int(self.targets.shape[0])


@dataclass(frozen=True)
class ClassTask:
    """The world of one seed: `n_classes` trained classes and `n_holdout` held-out classes
    (the first half for validation, the second for test), each a random prototype vector in
    `item_dim` dimensions; an exemplar is the prototype plus Gaussian noise of relative size
    `noise` (fresh every draw, so no item is its class). Trained class c has the fixed label
    `label_of[c]` (each of the `n_labels` labels has n_classes / n_labels classes); class c
    is drawn with probability proportional to (c + 1) ** -zipf_exponent."""

    n_classes: int = 512
    n_holdout: int = 64
    n_labels: int = 32
    item_dim: int = 32
    noise: float = 0.4
    context: int = 8
    zipf_exponent: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_labels < 2 or self.n_classes < self.n_labels:
            raise ValueError(
                f"ClassTask: need 2 <= n_labels <= n_classes, got n_labels "
                f"{self.n_labels}, n_classes {self.n_classes}"
            )
        if self.n_holdout < 4 or self.n_holdout % 2:
            raise ValueError(
                f"ClassTask: n_holdout must be even and >= 4 (half validation, "
                f"half test), got {self.n_holdout}"
            )
        if self.context < 2 or self.context % 2:
            raise ValueError(
                f"ClassTask: context must be even and >= 2 (two classes of "
                f"context / 2 exemplars in a bursty sequence), got {self.context}"
            )
        if self.item_dim < 1 or not self.noise >= 0 or not self.zipf_exponent >= 0:
            raise ValueError(
                f"ClassTask: need item_dim >= 1, noise >= 0, zipf_exponent >= 0, "
                f"got {self.item_dim}, {self.noise}, {self.zipf_exponent}"
            )
        rng = np.random.default_rng([self.seed, 101])
        protos = rng.standard_normal((self.n_classes + self.n_holdout, self.item_dim))
        labels = rng.permutation(self.n_classes) % self.n_labels
        p = np.arange(1, self.n_classes + 1, dtype=np.float64) ** -self.zipf_exponent
        object.__setattr__(self, "prototypes", protos / np.sqrt(self.item_dim))
        object.__setattr__(self, "label_of", labels.astype(np.int64))
        object.__setattr__(self, "class_probs", p / p.sum())

    #: (n_classes + n_holdout, item_dim), (n_classes,) and (n_classes,): set from the seed
    prototypes: np.ndarray = field(init=False, repr=False, compare=False)
    label_of: np.ndarray = field(init=False, repr=False, compare=False)
    class_probs: np.ndarray = field(init=False, repr=False, compare=False)

    def holdout_classes(self, split: str) -> np.ndarray:
        """The class indices held out for "validation" or "test" (never in training)."""
        half = self.n_holdout // 2
        start = {"validation": self.n_classes, "test": self.n_classes + half}.get(split)
        if start is None:
            raise ValueError(
                f"holdout_classes: split must be 'validation' or 'test', got {split!r}"
            )
        return np.arange(start, start + half)

    # ------------------------------------------------------------ sampling
    def exemplars(self, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One fresh exemplar (..., item_dim) of each class, of about unit norm."""
        eps = rng.standard_normal((*classes.shape, self.item_dim)) / np.sqrt(self.item_dim)
        return (
            (self.prototypes[classes] + self.noise * eps) / np.sqrt(1.0 + self.noise**2)
        ).astype(np.float32)

    def _draw(
        self, shape: tuple[int, ...], rng: np.random.Generator, avoid: np.ndarray | None = None
    ) -> np.ndarray:
        """Trained classes from the Zipfian distribution; with `avoid` (one class per row),
        redrawn until none shares that class's label (so the context cannot tell it)."""
        out = rng.choice(self.n_classes, size=shape, p=self.class_probs)
        if avoid is None:
            return out
        avoided = self.label_of[avoid].reshape(-1, *([1] * (len(shape) - 1)))
        bad = self.label_of[out] == avoided
        while bad.any():
            out[bad] = rng.choice(self.n_classes, size=int(bad.sum()), p=self.class_probs)
            bad = self.label_of[out] == avoided
        return out

    def _pack(
        self,
        ctx_classes: np.ndarray,
        ctx_labels: np.ndarray,
        query: np.ndarray,
        target: np.ndarray,
        rng: np.random.Generator,
    ) -> PairSequences:
        classes = np.concatenate([ctx_classes, query[:, None]], axis=1)
        labels = np.concatenate(
            [ctx_labels, np.full((len(query), 1), self.n_labels)], axis=1
        ).astype(np.int64)
        return PairSequences(self.exemplars(classes, rng), labels, target.astype(np.int64), classes)

    def _two_class_context(
        self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """(n, context): context / 2 slots of class a and as many of b, in random order."""
        half = self.context // 2
        ctx = np.concatenate(
            [np.repeat(a[:, None], half, 1), np.repeat(b[:, None], half, 1)], axis=1
        )
        order = np.argsort(rng.random(ctx.shape), axis=1)
        return np.take_along_axis(ctx, order, axis=1)

    def training(self, n: int, rng: np.random.Generator, p_bursty: float) -> PairSequences:
        """Training sequences, each bursty with probability p_bursty: a bursty one has
        context / 2 exemplars of the query's class and as many of one other class; the others
        draw every context class independently from the Zipfian distribution. All labels
        are the fixed ones."""
        if not 0.0 <= p_bursty <= 1.0:
            raise ValueError(f"training: p_bursty must be in [0, 1], got {p_bursty}")
        query = self._draw((n,), rng)
        ctx = self._draw((n, self.context), rng)
        bursty = rng.random(n) < p_bursty
        if bursty.any():
            other = self._draw((n,), rng)
            same = other == query
            while same.any():  # the other class differs from the query's
                other[same] = self._draw((int(same.sum()),), rng)
                same = other == query
            ctx[bursty] = self._two_class_context(query, other, rng)[bursty]
        return self._pack(ctx, self.label_of[ctx], query, self.label_of[query], rng)

    def in_context(self, n: int, rng: np.random.Generator, split: str = "test") -> PairSequences:
        """In-context evaluation: two held-out classes of `split`, context / 2 exemplars each,
        given two different labels drawn at random per sequence; the query is a new exemplar
        of one of them and its target is the label its class got in this context."""
        pool = self.holdout_classes(split)
        pick = np.argsort(rng.random((n, pool.size)), axis=1)[:, :2]
        a, b = pool[pick[:, 0]], pool[pick[:, 1]]
        lab = np.argsort(rng.random((n, self.n_labels)), axis=1)[:, :2]
        ctx = self._two_class_context(a, b, rng)
        ctx_labels = np.where(ctx == a[:, None], lab[:, :1], lab[:, 1:])
        first = rng.random(n) < 0.5
        query = np.where(first, a, b)
        return self._pack(ctx, ctx_labels, query, np.where(first, lab[:, 0], lab[:, 1]), rng)

    def in_weights(self, n: int, rng: np.random.Generator, queries: str = "zipf") -> PairSequences:
        """In-weights evaluation: the query's class drawn from the training distribution
        ("zipf") or uniformly over the trained classes ("uniform"); the context holds
        exemplars of classes drawn as in training whose labels all differ from the query's,
        so only the weights can tell its (fixed) label."""
        if queries == "zipf":
            query = self._draw((n,), rng)
        elif queries == "uniform":
            query = rng.integers(0, self.n_classes, n)
        else:
            raise ValueError(f"in_weights: queries must be 'zipf' or 'uniform', got {queries!r}")
        ctx = self._draw((n, self.context), rng, avoid=query)
        return self._pack(ctx, self.label_of[ctx], query, self.label_of[query], rng)


# ====================================================================== model
class PairTransformer(Module):
    """A Transformer over (item, label) pairs: position i holds Linear(item_i) +
    Embedding(label_i), the query's label slot a learned "no label" embedding (index
    n_labels); no positions (the pairs are a set); bidirectional pre-LN blocks; logits
    (B, n_labels) read at the last position (the query)."""

    def __init__(
        self,
        item_dim: int,
        n_labels: int,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        generator: Any = None,
    ) -> None:
        super().__init__()
        self.n_labels = n_labels
        self.item_in = Linear(item_dim, d_model, True, generator)
        self.label_in = Embedding(n_labels + 1, d_model, generator)
        self.blocks = ModuleList(
            [TransformerBlock(d_model, n_heads, generator=generator) for _ in range(n_layers)]
        )
        self.ln_f = LayerNorm(d_model)
        self.head = Linear(d_model, n_labels, True, generator)

    def forward(self, items: Any, labels: Any) -> Tensor:
        items = np.asarray(items, dtype=np.float32)
        labels = np.asarray(labels)
        if items.ndim != 3 or labels.shape != items.shape[:2]:
            raise ValueError(
                f"PairTransformer: items (B, T, item_dim) and labels (B, T) "
                f"expected, got {items.shape} and {labels.shape}"
            )
        if labels.size and (labels.min() < 0 or labels.max() > self.n_labels):
            raise ValueError(
                f"PairTransformer: labels must be in [0, {self.n_labels}], got "
                f"min {labels.min()} max {labels.max()}"
            )
        x = self.item_in(Tensor(items)) + self.label_in(labels)
        for block in self.blocks:
            x = block(x, False)
        return self.head(self.ln_f(x[:, -1, :]))


def accuracy(model: PairTransformer, seqs: PairSequences, batch_size: int = 1024) -> float:
    """The fraction of queries whose highest-scoring label (over all labels) is the target,
    with no tape recorded; the model's train/eval mode is restored."""
    correct = 0
    with evaluating(model):
        for s in range(0, len(seqs), batch_size):
            logits = model(seqs.items[s : s + batch_size], seqs.labels[s : s + batch_size])
            correct += int(
                (logits.numpy().argmax(axis=1) == seqs.targets[s : s + batch_size]).sum()
            )
    return correct / max(len(seqs), 1)


# ====================================================================== one run
@dataclass(frozen=True)
class TradeoffSettings:
    """The task, model and training of one (condition, seed) run, apart from the condition
    (zipf_exponent, p_bursty) and the seed."""

    n_classes: int = 512
    n_holdout: int = 64
    n_labels: int = 32
    item_dim: int = 32
    noise: float = 0.4
    context: int = 8
    d_model: int = 32
    n_layers: int = 1
    n_heads: int = 4
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.0
    eval_sequences: int = 2000

    def __post_init__(self) -> None:
        require_counts(
            self, ("steps", "batch_size", "eval_sequences", "d_model", "n_layers", "n_heads")
        )
        if not self.lr > 0 or self.warmup_steps < 0 or not self.weight_decay >= 0:
            raise ValueError(
                f"need lr > 0, warmup_steps >= 0, weight_decay >= 0, got "
                f"{self.lr}, {self.warmup_steps}, {self.weight_decay}"
            )

    def task(self, zipf_exponent: float, seed: int) -> ClassTask:
        return ClassTask(
            self.n_classes,
            self.n_holdout,
            self.n_labels,
            self.item_dim,
            self.noise,
            self.context,
            zipf_exponent,
            seed,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def chance(self) -> dict[str, float]:
        """The chance accuracy of the in-context evaluation (1/2: one of the two labels
        shown) and of the in-weights ones (1/n_labels; uniform queries alike)."""
        return {"in_context": 0.5, "in_weights": 1.0 / self.n_labels}


#: evaluate()'s accuracies: the keys of a run's record for each split, summarized over seeds
EVALUATIONS = ("in_context", "in_weights", "in_weights_uniform")


def evaluate(
    model: PairTransformer, task: ClassTask, n: int, split: str, seed: int
) -> dict[str, float]:
    """Accuracies (the EVALUATIONS) on `n` fresh sequences of `split` ("validation" or
    "test": their own held-out classes and their own random streams)."""
    stream = {"validation": 1, "test": 2}[split]
    rng = np.random.default_rng([seed, 200 + stream])
    return {
        "in_context": accuracy(model, task.in_context(n, rng, split)),
        "in_weights": accuracy(model, task.in_weights(n, rng, "zipf")),
        "in_weights_uniform": accuracy(model, task.in_weights(n, rng, "uniform")),
    }


def train_and_evaluate(
    settings: TradeoffSettings,
    zipf_exponent: float,
    p_bursty: float,
    seed: int,
    splits: tuple[str, ...] = ("validation", "test"),
    threads: int | None = None,
) -> dict[str, Any]:
    """Train a fresh PairTransformer (the same world, initial weights and data stream for
    every condition of a seed) and score it on each split. Returns the run's record."""
    if threads is not None:
        set_num_threads(threads)
    task = settings.task(zipf_exponent, seed)
    model = PairTransformer(
        settings.item_dim,
        settings.n_labels,
        settings.d_model,
        settings.n_layers,
        settings.n_heads,
        generator=seed,
    )
    opt = make_optimizer(model, "adamw", lr=settings.lr, weight_decay=settings.weight_decay)
    sched = make_schedule(opt, settings.steps, settings.warmup_steps, min_lr_ratio=0.1)

    def sample(rng: np.random.Generator, n: int) -> PairSequences:
        return task.training(n, rng, p_bursty)

    def loss_fn(batch: PairSequences, rng: np.random.Generator) -> Any:
        return NF.cross_entropy(model(batch.items, batch.labels), batch.targets)

    fit = Trainer(
        model,
        opt,
        sample,
        steps=settings.steps,
        loss_fn=loss_fn,
        batch_size=settings.batch_size,
        seed=seed,
        scheduler=sched,
        clip_grad_norm=1.0,
        log_every=settings.steps,
        progress="off",
    ).fit()
    record: dict[str, Any] = {
        "zipf_exponent": zipf_exponent,
        "p_bursty": p_bursty,
        "seed": seed,
        "train_seconds": fit.seconds,
    }
    for split in splits:
        record[split] = evaluate(model, task, settings.eval_sequences, split, seed)
    return record
