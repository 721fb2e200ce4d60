"""Few-shot classification pieces: logistic regression, choosing on validation, the
three-way labelled task (split by book), and the tf-idf features (words, character n-grams)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from tinytape.numeric import softmax
from tinytape.text.corpora import CorpusError, Document
from tinytape.text.features import BagOfWords, CharNgrams, char_ngrams
from tinytape.train.fewshot import (
    LabelledTask,
    choose,
    fit_linear,
    fit_logreg,
    logreg_loss,
    mean_cross_entropy,
    split_labelled,
    validation_scores,
)

#: the fits are compared to fixed figures and to each other: one kernel thread
pytestmark = pytest.mark.usefixtures("one_kernel_thread")


def _gradient(X, y, m, lam):
    n = len(y)
    P = softmax(X @ m.W + m.b, axis=1)
    P[np.arange(n), y] -= 1
    return X.T @ P / n + lam * m.W, P.mean(axis=0)


@pytest.mark.parametrize("n, d", [(40, 5), (12, 60)])  # the primal and the row-space path
def test_logistic_regression_reaches_the_optimum(n, d):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    y = rng.integers(0, 3, n)
    lam = 0.05
    m = fit_logreg(X, y, 3, lam, iters=3000, tol=1e-10)
    gW, gb = _gradient(X, y, m, lam)
    assert np.abs(gW).max() < 1e-6 and np.abs(gb).max() < 1e-6
    # the optimum of a convex problem: any perturbation costs
    base = logreg_loss(X, y, m.W, m.b, lam)
    for _ in range(5):
        dW = rng.normal(size=m.W.shape) * 1e-3
        assert logreg_loss(X, y, m.W + dW, m.b, lam) > base
    assert (
        base < logreg_loss(X, y, np.zeros_like(m.W), np.zeros(3), lam) == pytest.approx(math.log(3))
    )


def test_logistic_regression_separates_separable_data():
    X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    y = np.array([0, 0, 1, 1])
    m = fit_logreg(X, y, 2, 1e-3)
    assert m.predict(X).tolist() == [0, 0, 1, 1]
    assert m.predict(np.array([[-0.3], [0.3]])).tolist() == [0, 1]


def test_choose_takes_accuracy_then_loss_then_the_first():
    assert choose([(0.5, 1.0), (0.75, 2.0), (0.75, 1.5), (0.25, 0.1)]) == 2
    assert choose([(0.5, 1.0), (0.5, 1.0)]) == 0  # a tie: the first (most conservative)
    assert choose([(0.5, math.inf), (0.5, 3.0)]) == 1
    with pytest.raises(ValueError, match="no candidates"):
        choose([])


def test_validation_scores_by_hand():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 3.0]])
    y = np.array([0, 0, 1])
    acc, loss = validation_scores(logits, y)
    assert acc == pytest.approx(1 / 3)  # argmax of a tie is the first class
    want = np.mean([math.log(1 + math.exp(-2)), math.log(1 + math.exp(1)), math.log(2)])
    assert loss == pytest.approx(want) == pytest.approx(mean_cross_entropy(logits, y))
    assert validation_scores(np.array([[np.nan, 0.0]]), np.array([1]))[1] == math.inf


def test_fit_linear_chooses_the_penalty_on_validation_only():
    rng = np.random.default_rng(1)

    # two classes told apart by feature 0 only; the other 30 features are noise, so a weak
    # penalty over-fits the 8 training points and a strong one generalises
    def draw(n):
        y = np.arange(n) % 2
        X = rng.normal(size=(n, 31))
        X[:, 0] += np.where(y == 1, 1.0, -1.0)
        return X, y

    X, y = draw(8)
    Xv, yv = draw(400)
    lambdas = (1.0, 1e-4)
    model, scores = fit_linear(X, y, Xv, yv, 2, lambdas)
    assert len(scores) == 2
    for lam, (acc, loss) in zip(lambdas, scores):
        m = fit_logreg(X, y, 2, lam)
        assert acc == pytest.approx(float((m.predict(Xv) == yv).mean()))
        assert loss == pytest.approx(mean_cross_entropy(m.logits(Xv), yv))
    assert model.lam == lambdas[choose(scores)]
    # a validation set whose labels are flipped makes the other choice
    _, flipped = fit_linear(X, y, Xv, 1 - yv, 2, lambdas)
    assert [a for a, _ in flipped] == pytest.approx([1 - a for a, _ in scores])


def test_bag_of_words_tf_idf_by_hand():
    bow = BagOfWords.fit(["the cat the cat", "the dog"])
    assert list(bow.vocab) == ["cat", "dog", "the"]
    # idf = ln((1 + n) / (1 + df)) + 1 with n = 2
    idf = {"cat": math.log(3 / 2) + 1, "dog": math.log(3 / 2) + 1, "the": 1.0}
    X = bow.transform(["The cat, the CAT and the bird"])
    raw = np.array([(1 + math.log(2)) * idf["cat"], 0.0, (1 + math.log(3)) * idf["the"]])
    np.testing.assert_allclose(X[0], raw / np.linalg.norm(raw))


def _docs(label: str, words: list[str], books: int, per_book: int, seed: int) -> list[Document]:
    rng = np.random.default_rng(seed)
    out = []
    for b in range(books):
        for p in range(per_book):
            text = " ".join(rng.choice(words, 12)) + "."
            out.append(Document(text, label, f"{label}/b{b}#{p}", f"{label}/b{b}"))
    return out


SEA = ["wave", "salt", "ship", "gull", "tide", "reef", "sail", "oar"]
WOOD = ["tree", "moss", "fern", "owl", "bark", "leaf", "root", "fox"]


def test_labelled_task_split_three_ways_by_book_and_k_shot_draws():
    docs = (
        _docs("sea", SEA, 5, 4, 0)
        + _docs("wood", WOOD, 1, 10, 1)
        + _docs("town", SEA[:4] + WOOD[:4], 2, 6, 2)
    )
    task = split_labelled(docs, 0.5, 0.2, seed=0)
    assert task.labels == ["sea", "town", "wood"]
    # five books: round(2.5) = 2 to test, round(1.0) = 1 to validation, 2 to the pool
    sea = [
        {d.group for d in part if d.label == "sea"}
        for part in (task.pool, task.validation, task.test)
    ]
    assert [len(g) for g in sea] == [2, 1, 2]
    assert not (sea[0] & sea[1] or sea[0] & sea[2] or sea[1] & sea[2])
    # one book only: by position, pool then validation (0.2 / 0.5 of the rest) then test
    wood = [d for d in docs if d.label == "wood"]
    assert [d for d in task.pool if d.label == "wood"] == wood[:3]
    assert [d for d in task.validation if d.label == "wood"] == wood[3:5]
    assert [d for d in task.test if d.label == "wood"] == wood[5:]
    # two books: one to the test side, the other split into pool and its last 20%
    town_test = {d.group for d in task.test if d.label == "town"}
    assert len(town_test) == 1
    rest = [d for d in docs if d.label == "town" and d.group not in town_test]
    assert [d for d in task.pool if d.label == "town"] == rest[:5]
    assert [d for d in task.validation if d.label == "town"] == rest[5:]
    assert task.max_k() == 3
    three = task.sample(3, seed=7)
    assert [d.label for d in three] == ["sea"] * 3 + ["town"] * 3 + ["wood"] * 3
    assert all(d in task.pool for d in three)
    assert three == task.sample(3, seed=7) and three != task.sample(3, seed=8)
    assert task.label_ids(three).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    val = task.sample_validation(2, seed=7)
    assert [d.label for d in val] == ["sea"] * 2 + ["town"] + ["wood"] * 2  # town has 1
    assert all(d in task.validation for d in val)
    assert len(task.sample_validation(50, seed=7)) == len(task.validation)  # all if fewer
    assert task.describe() == {
        "labels": task.labels,
        "pool": len(task.pool),
        "validation": len(task.validation),
        "test": len(task.test),
        "max_k": 3,
    }
    with pytest.raises(ValueError, match="fractions"):
        split_labelled(docs, 0.6, 0.4)


def test_word_and_character_features_tell_vocabularies_apart():
    docs = _docs("sea", SEA, 3, 6, 0) + _docs("wood", WOOD, 3, 6, 1)
    task = split_labelled(docs, 0.4, 0.3, seed=0)
    train = task.sample(2, 0)
    y = task.label_ids(train)
    for feats in (
        BagOfWords.fit([d.text for d in train]),
        CharNgrams.fit([d.text for d in train], 2, 4),
    ):
        m = fit_logreg(feats.transform([d.text for d in train]), y, 2, 1e-2)
        pred = m.predict(feats.transform([d.text for d in task.test]))
        assert (pred == task.label_ids(task.test)).all()


def test_labelled_task_needs_two_labels_and_every_label_in_every_split():
    docs = _docs("sea", SEA, 3, 2, 0)
    books = [[d for d in docs if d.group == f"sea/b{b}"] for b in range(3)]
    with pytest.raises(CorpusError, match="at least 2 labels"):
        LabelledTask(*books, ["sea"])
    with pytest.raises(CorpusError, match="validation set has no passage of wood"):
        wood = _docs("wood", WOOD, 1, 2, 1)
        LabelledTask(books[0] + wood, books[1], books[2] + wood, ["sea", "wood"])
    wood = [_docs("wood", WOOD, 1, 2, seed) for seed in (1, 2, 3)]
    with pytest.raises(CorpusError, match="share passages"):
        LabelledTask(books[0] + wood[0], books[0] + wood[1], books[2] + wood[2], ["sea", "wood"])


def test_character_ngrams_by_hand():
    assert char_ngrams("abc", 1, 2) == ["a", "b", "c", "ab", "bc"]
    assert char_ngrams("ab", 3, 4) == []
    feats = CharNgrams.fit(["aab", "b"], 1, 2)
    assert list(feats.vocab) == ["a", "aa", "ab", "b"]
    # idf = ln((1 + n) / (1 + df)) + 1 with n = 2; tf = 1 + ln(count)
    idf = {"a": math.log(3 / 2) + 1, "aa": math.log(3 / 2) + 1, "ab": math.log(3 / 2) + 1, "b": 1.0}
    X = feats.transform(["aaXb"])  # a x2, aa x1, b x1; "X", "aX", "Xb" are unknown
    raw = np.array([(1 + math.log(2)) * idf["a"], idf["aa"], 0.0, idf["b"]])
    np.testing.assert_allclose(X[0], raw / np.linalg.norm(raw))
    # max_features keeps the most frequent terms over all the texts
    top = CharNgrams.fit(["aab", "b"], 1, 2, max_features=2)
    assert list(top.vocab) == ["a", "b"]
    np.testing.assert_allclose(top.idf, [idf["a"], idf["b"]])
    with pytest.raises(ValueError, match="lo <= hi"):
        CharNgrams.fit(["x"], 3, 2)


def test_character_ngrams_match_scikit_learn():
    sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
    texts = [
        "The ship saw the gull!",
        "'Then,' said Nim.",
        "the  gull\n  flew; then ...",
        "A reef, a REEF.",
    ]
    # scikit-learn's "char" analyzer folds runs of whitespace into one space first; ours
    # keeps layout, so compare on texts folded the same way
    folded = [re.sub(r"\s\s+", " ", t) for t in texts]
    ref = sklearn_text.TfidfVectorizer(
        analyzer="char", ngram_range=(2, 4), lowercase=False, sublinear_tf=True
    )
    want = ref.fit_transform(folded[:3]).toarray()
    ours = CharNgrams.fit(folded[:3], 2, 4, max_features=None)
    assert sorted(ours.vocab) == sorted(ref.vocabulary_)
    order = [ours.vocab[w] for w in sorted(ref.vocabulary_, key=ref.vocabulary_.get)]
    np.testing.assert_allclose(ours.transform(folded[:3])[:, order], want, atol=1e-12)
    np.testing.assert_allclose(
        ours.transform(folded[3:])[:, order], ref.transform(folded[3:]).toarray(), atol=1e-12
    )
