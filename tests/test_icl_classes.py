"""Chan et al.'s in-context / in-weights task (tinytape.experiments.icl_classes): the class
distribution, burstiness, exemplars, the two evaluations (checked with hand-written oracle
predictors, one that reads only the context and one that knows only the fixed labels), the
pair model, and a tiny training run."""

from __future__ import annotations

import numpy as np
import pytest

import tinytape as tt
from tinytape.experiments.icl_classes import (
    EVALUATIONS,
    ClassTask,
    PairTransformer,
    TradeoffSettings,
    accuracy,
    train_and_evaluate,
)

TASK = ClassTask(
    n_classes=128,
    n_holdout=16,
    n_labels=16,
    item_dim=32,
    noise=0.4,
    context=8,
    zipf_exponent=1.0,
    seed=3,
)


def nearest_class(task: ClassTask, items: np.ndarray) -> np.ndarray:
    """The class whose prototype is closest to each item (over all classes)."""
    d = ((items[..., None, :] - task.prototypes / np.sqrt(1 + task.noise**2)) ** 2).sum(-1)
    return d.argmin(-1)


def context_oracle(task: ClassTask, seqs) -> np.ndarray:
    """Reads only the context: the label of the context item nearest to the query."""
    ctx, q = seqs.items[:, :-1], seqs.items[:, -1:]
    nearest = ((ctx - q) ** 2).sum(-1).argmin(1)
    return seqs.labels[np.arange(len(seqs)), nearest]


def weights_oracle(task: ClassTask, seqs) -> np.ndarray:
    """Knows only the fixed labels: the trained label of the query's nearest trained class."""
    d = (
        (
            seqs.items[:, -1, None, :]
            - task.prototypes[: task.n_classes] / np.sqrt(1 + task.noise**2)
        )
        ** 2
    ).sum(-1)
    return task.label_of[d.argmin(1)]


# ------------------------------------------------------------------ the world
def test_labels_are_balanced_and_classes_zipfian():
    counts = np.bincount(TASK.label_of, minlength=TASK.n_labels)
    assert np.all(counts == TASK.n_classes // TASK.n_labels)
    p = TASK.class_probs
    assert p.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(p[0] / p[1:6], np.arange(2, 7) ** 1.0)  # p(rank r) ~ 1 / r
    assert np.allclose(ClassTask(zipf_exponent=0.0).class_probs, 1 / 512)
    two = ClassTask(zipf_exponent=2.0).class_probs
    assert two[0] / two[9] == pytest.approx(100.0)
    # the queries of training follow it (the most common class: 1 / H_128 = 0.184)
    q = TASK.training(20000, np.random.default_rng(0), 0.0).classes[:, -1]
    freq = np.bincount(q, minlength=TASK.n_classes) / q.size
    assert abs(freq[0] - p[0]) < 0.01 and abs(freq[9] - p[9]) < 0.005


def test_exemplars_are_noisy_variants_of_their_class():
    classes = np.repeat(np.arange(TASK.n_classes + TASK.n_holdout), 20)
    items = TASK.exemplars(classes, np.random.default_rng(1))
    assert items.dtype == np.float32 and items.shape == (classes.size, TASK.item_dim)
    norms = np.linalg.norm(items, axis=1)
    assert 0.6 < norms.mean() < 1.4
    # no item is its class's prototype, yet the nearest prototype is its class's (noise 0.4)
    scaled = TASK.prototypes[classes] / np.sqrt(1 + TASK.noise**2)
    assert np.linalg.norm(items - scaled, axis=1).min() > 0.1
    assert (nearest_class(TASK, items) == classes).mean() > 0.97
    # two exemplars of one class differ
    again = TASK.exemplars(classes, np.random.default_rng(2))
    assert np.abs(items - again).max() > 0.1


def test_seeds_give_different_worlds_and_the_same_world_again():
    a, b = ClassTask(seed=0), ClassTask(seed=1)
    assert not np.allclose(a.prototypes, b.prototypes)
    assert np.array_equal(ClassTask(seed=0).prototypes, a.prototypes)
    assert np.array_equal(ClassTask(seed=0).label_of, a.label_of)
    # the Zipf exponent changes only the class distribution, not the world
    assert np.array_equal(ClassTask(seed=0, zipf_exponent=2.0).prototypes, a.prototypes)


# ------------------------------------------------------------------ training sequences
def test_bursty_sequences_hold_the_query_class_and_one_other():
    s = TASK.training(2000, np.random.default_rng(4), p_bursty=1.0)
    assert s.items.shape == (2000, 9, 32) and s.labels.shape == s.classes.shape == (2000, 9)
    ctx, q = s.classes[:, :-1], s.classes[:, -1]
    assert np.all((ctx == q[:, None]).sum(1) == 4)
    others = [np.unique(c[c != qq]) for c, qq in zip(ctx, q)]
    assert all(o.size == 1 for o in others)
    # fixed labels everywhere; the query's slot holds the "no label" index
    np.testing.assert_array_equal(s.labels[:, :-1], TASK.label_of[ctx])
    assert np.all(s.labels[:, -1] == TASK.n_labels)
    np.testing.assert_array_equal(s.targets, TASK.label_of[q])
    assert ctx.max() < TASK.n_classes  # never a held-out class
    # the query's exemplars sit at random places
    assert 0.4 < (ctx[:, 0] == q).mean() < 0.6


def test_non_bursty_sequences_draw_context_classes_independently():
    s = TASK.training(5000, np.random.default_rng(5), p_bursty=0.0)
    ctx, q = s.classes[:, :-1], s.classes[:, -1]
    # the query's class appears in the context only as often as i.i.d. draws predict
    want = (TASK.class_probs**2).sum() * 8  # expected copies of the query's class
    assert (ctx == q[:, None]).sum(1).mean() == pytest.approx(want, rel=0.1)
    freq = np.bincount(ctx.ravel(), minlength=TASK.n_classes) / ctx.size
    assert abs(freq[0] - TASK.class_probs[0]) < 0.01
    mixed = TASK.training(4000, np.random.default_rng(6), p_bursty=0.5)
    four = (mixed.classes[:, :-1] == mixed.classes[:, -1:]).sum(1) >= 4
    assert 0.45 < four.mean() < 0.56  # bursty half (plus a few i.i.d. ones by chance)


# ------------------------------------------------------------------ evaluations
def test_in_context_sequences_need_the_context():
    rng = np.random.default_rng(7)
    s = TASK.in_context(3000, rng, "test")
    ctx, q = s.classes[:, :-1], s.classes[:, -1]
    test_classes = TASK.holdout_classes("test")
    assert np.isin(s.classes, test_classes).all()
    assert not np.isin(TASK.holdout_classes("validation"), test_classes).any()
    assert np.isin(
        TASK.in_context(500, rng, "validation").classes, TASK.holdout_classes("validation")
    ).all()
    for c, lab, qq, t in zip(ctx[:200], s.labels[:200, :-1], q[:200], s.targets[:200]):
        assert np.unique(c).size == 2 and (c == qq).sum() == 4
        assert np.unique(lab).size == 2  # one label per class, the two differ
        assert np.all(lab[c == qq] == t)
    # the labels are drawn per sequence: a class's label changes from one to the next
    first = {}
    for c, lab in zip(ctx, s.labels[:, :-1]):
        first.setdefault(int(c[0]), set()).add(int(lab[0]))
    assert np.mean([len(v) for v in first.values()]) > 5
    # an oracle that reads the context is right; one that knows only the weights is not
    assert (context_oracle(TASK, s) == s.targets).mean() > 0.97
    assert (weights_oracle(TASK, s) == s.targets).mean() < 0.15


def test_in_weights_sequences_need_the_weights():
    rng = np.random.default_rng(8)
    s = TASK.in_weights(3000, rng, "zipf")
    ctx, q = s.classes[:, :-1], s.classes[:, -1]
    assert q.max() < TASK.n_classes and ctx.max() < TASK.n_classes
    # no context item carries the query's label (nor its class)
    assert not (s.labels[:, :-1] == s.targets[:, None]).any()
    assert not (ctx == q[:, None]).any()
    assert (weights_oracle(TASK, s) == s.targets).mean() > 0.97
    assert (context_oracle(TASK, s) == s.targets).mean() == 0.0
    u = TASK.in_weights(6000, rng, "uniform").classes[:, -1]
    assert abs((u < 64).mean() - 0.5) < 0.03  # uniform over the 128 trained classes
    assert (q < 64).mean() > 0.8  # Zipfian: mostly the common ones


def test_task_validation():
    for bad in (
        dict(n_labels=1),
        dict(n_classes=8, n_labels=16),
        dict(n_holdout=3),
        dict(context=7),
        dict(noise=-1.0),
        dict(zipf_exponent=-0.5),
    ):
        with pytest.raises(ValueError):
            ClassTask(**bad)
    with pytest.raises(ValueError, match="p_bursty"):
        TASK.training(4, np.random.default_rng(0), 1.5)
    with pytest.raises(ValueError, match="split"):
        TASK.in_context(4, np.random.default_rng(0), "train")
    with pytest.raises(ValueError, match="queries"):
        TASK.in_weights(4, np.random.default_rng(0), "rare")


# ------------------------------------------------------------------ the model
def test_pair_transformer_reads_the_context_as_a_set():
    model = PairTransformer(32, 16, d_model=32, n_layers=2, n_heads=4, generator=0)
    s = TASK.training(6, np.random.default_rng(9), 1.0)
    with tt.no_grad():
        out = model(s.items, s.labels).numpy()
        perm = np.r_[np.random.default_rng(0).permutation(8), 8]  # the query stays last
        shuffled = model(s.items[:, perm], s.labels[:, perm]).numpy()
    assert out.shape == (6, 16)
    np.testing.assert_allclose(shuffled, out, rtol=1e-4, atol=1e-5)
    # the context matters: other context labels, other logits
    other = s.labels.copy()
    other[:, :-1] = (other[:, :-1] + 1) % 16
    with tt.no_grad():
        assert np.abs(model(s.items, other).numpy() - out).max() > 1e-4
    with pytest.raises(ValueError, match="labels must be in"):
        model(s.items, s.labels + 1)
    with pytest.raises(ValueError, match="expected"):
        model(s.items[:, :, 0], s.labels)


def test_accuracy_counts_argmax_hits():
    class Fixed(PairTransformer):
        def forward(self, items, labels):  # always predicts the first context label
            logits = np.full((len(labels), self.n_labels), -1.0, dtype=np.float32)
            logits[np.arange(len(labels)), labels[:, 0]] = 1.0
            return tt.tensor(logits)

    model = Fixed(32, 16, d_model=8, n_layers=1, n_heads=1)
    s = TASK.in_context(400, np.random.default_rng(10))
    want = (s.labels[:, 0] == s.targets).mean()  # about 1/2
    assert accuracy(model, s, batch_size=64) == pytest.approx(want)
    assert 0.35 < want < 0.65 and model.training


def test_tiny_training_run_learns_in_weights_without_burstiness(one_kernel_thread):
    settings = TradeoffSettings(
        n_classes=64,
        n_holdout=8,
        n_labels=16,
        d_model=32,
        n_layers=1,
        steps=150,
        batch_size=64,
        lr=3e-3,
        warmup_steps=10,
        eval_sequences=300,
    )
    r = train_and_evaluate(settings, 0.0, 0.0, seed=0, splits=("validation",))
    assert set(r) == {"zipf_exponent", "p_bursty", "seed", "train_seconds", "validation"}
    v = r["validation"]
    assert tuple(v) == EVALUATIONS
    # 150 steps over 64 uniform classes: the fixed labels are largely learned (chance 1/16),
    # while held-out classes, never seen, are not read from a context it never needed
    assert v["in_weights"] > 0.5 and v["in_weights_uniform"] > 0.5
    assert v["in_context"] < 0.5
