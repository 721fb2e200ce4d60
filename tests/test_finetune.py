"""Fine-tuning on a tiny labelled set: logistic regression, bag of words, the k-shot task
(split by book), the probe-initialised head, one comparison, and the `authors` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tinytape.cli import main
from tinytape.models import GPT, GPTConfig, SequenceClassifier
from tinytape.text.corpora import Document
from tinytape.text.tokenizers import ByteBPETokenizer
from tinytape.train.finetune import (
    BagOfWords,
    Comparison,
    FinetuneConfig,
    LabelledTask,
    Pretrained,
    _probe_to_head,
    _softmax,
    bow_accuracy,
    choose_lambda,
    encode_passages,
    feature_stats,
    fit_logreg,
    logreg_loss,
    pooled_features,
    split_labelled,
    summarize,
)


@pytest.fixture(autouse=True)
def one_thread():
    import tinytape

    before = tinytape.get_num_threads()
    tinytape.set_num_threads(1)
    yield
    tinytape.set_num_threads(before)


def _gradient(X, y, m, lam):
    n = len(y)
    P = _softmax(X @ m.W + m.b)
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
    assert base < logreg_loss(X, y, np.zeros_like(m.W), np.zeros(3), lam) == pytest.approx(
        math.log(3))


def test_logistic_regression_separates_separable_data():
    X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    y = np.array([0, 0, 1, 1])
    m = fit_logreg(X, y, 2, 1e-3)
    assert m.predict(X).tolist() == [0, 0, 1, 1]
    assert m.predict(np.array([[-0.3], [0.3]])).tolist() == [0, 1]


def test_choose_lambda():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(8, 4))
    assert choose_lambda(X, np.arange(8) % 8, 8, default=0.123) == 0.123  # one per class
    y = np.arange(8) % 2
    X[:, 0] += np.where(y == 1, 3.0, -3.0)
    assert choose_lambda(X, y, 2, lambdas=(1e-3, 1e-1)) == 1e-1  # ties: the larger


def test_bag_of_words_tf_idf_by_hand():
    bow = BagOfWords.fit(["the cat the cat", "the dog"])
    assert list(bow.vocab) == ["cat", "dog", "the"]
    # idf = ln((1 + n) / (1 + df)) + 1 with n = 2
    idf = {"cat": math.log(3 / 2) + 1, "dog": math.log(3 / 2) + 1, "the": 1.0}
    X = bow.transform(["The cat, the CAT and the bird"])
    raw = np.array([(1 + math.log(2)) * idf["cat"], 0.0, (1 + math.log(3)) * idf["the"]])
    np.testing.assert_allclose(X[0], raw / np.linalg.norm(raw))


def _docs(label: str, words: list[str], books: int, per_book: int, seed: int
          ) -> list[Document]:
    rng = np.random.default_rng(seed)
    out = []
    for b in range(books):
        for p in range(per_book):
            text = " ".join(rng.choice(words, 12)) + "."
            out.append(Document(text, label, f"{label}/b{b}#{p}", f"{label}/b{b}"))
    return out


SEA = ["wave", "salt", "ship", "gull", "tide", "reef", "sail", "oar"]
WOOD = ["tree", "moss", "fern", "owl", "bark", "leaf", "root", "fox"]


def test_labelled_task_split_by_book_and_k_shot_draws():
    docs = _docs("sea", SEA, 4, 5, 0) + _docs("wood", WOOD, 1, 10, 1)
    task = split_labelled(docs, 0.5, seed=0)
    sea_pool = {d.group for d in task.pool if d.label == "sea"}
    sea_test = {d.group for d in task.test if d.label == "sea"}
    assert len(sea_pool) == len(sea_test) == 2 and sea_pool.isdisjoint(sea_test)
    # one book only: its first half is the pool, its last half the test
    wood = [d for d in docs if d.label == "wood"]
    assert [d for d in task.pool if d.label == "wood"] == wood[:5]
    assert [d for d in task.test if d.label == "wood"] == wood[5:]
    assert task.max_k() == 5
    three = task.sample(3, seed=7)
    assert [d.label for d in three] == ["sea"] * 3 + ["wood"] * 3
    assert all(d in task.pool for d in three)
    assert three == task.sample(3, seed=7) and three != task.sample(3, seed=8)
    assert task.label_ids(three).tolist() == [0, 0, 0, 1, 1, 1]


def test_bag_of_words_tells_vocabularies_apart():
    docs = _docs("sea", SEA, 2, 6, 0) + _docs("wood", WOOD, 2, 6, 1)
    task = split_labelled(docs, 0.5, seed=0)
    assert bow_accuracy(task.sample(2, 0), task.test, task)["accuracy"] == 1.0


@pytest.fixture(scope="module")
def tiny_setup():
    docs = _docs("sea", SEA, 2, 8, 0) + _docs("wood", WOOD, 2, 8, 1)
    task = split_labelled(docs, 0.5, seed=0)
    tok = ByteBPETokenizer.train([d.text for d in docs], 300)
    gpt = GPT(GPTConfig(vocab_size=tok.vocab_size, context_length=32, d_model=16,
                        n_layers=1, n_heads=2), generator=0)
    mean, std = feature_stats(gpt, tok, task.pool)
    return task, Pretrained(gpt, tok, mean, std)


@pytest.mark.parametrize("pooling", ["ffn", "mean", "last"])
def test_probe_head_reproduces_the_probe(tiny_setup, pooling):
    task, p = tiny_setup
    ids, mask = encode_passages(task.test, p.tokenizer, 32)
    assert ids[:, 0].tolist() == [p.tokenizer.eot_id] * len(ids)
    mean, std = feature_stats(p.model, p.tokenizer, task.pool, pooling=pooling)
    Z = (pooled_features(p.model, ids, mask, pooling) - mean) / std
    rng = np.random.default_rng(0)
    probe = fit_logreg(Z, rng.integers(0, 2, len(Z)), 2, 0.1)
    clf = SequenceClassifier(p.model, 2, pooling)
    _probe_to_head(clf, probe, mean, std)
    clf.eval()
    got = clf(ids, mask).numpy()
    np.testing.assert_allclose(got, probe.logits(Z), rtol=1e-3, atol=1e-4)


def test_comparison_rejects_statistics_of_another_pooling(tiny_setup):
    task, p = tiny_setup
    with pytest.raises(ValueError, match=r"statistics of shape \(64,\) do not fit pooling "
                                         r"'mean' \(16 features\)"):
        Comparison(task, p, FinetuneConfig(pooling="mean"))


def test_one_comparison_runs_every_method(tiny_setup):
    task, p = tiny_setup
    cfg = FinetuneConfig(min_steps=3, max_steps=3)
    comp = Comparison(task, p, cfg)
    before = {k: v.copy() for k, v in p.model.state_dict().items()}
    rows = comp.run(2, seed=0)
    assert sorted(r["method"] for r in rows) == ["bow", "finetune", "probe", "scratch"]
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["n_train"] == 4 for r in rows)
    by = {r["method"]: r["accuracy"] for r in rows}
    assert by["bow"] == 1.0
    assert by["probe"] > 0.5  # a random GPT's pooled features already separate two vocabularies
    # fine-tuning works on a copy: the pretrained model is untouched
    for k, v in p.model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    s = summarize(rows + comp.run(2, seed=1))
    assert s["bow"][2]["n"] == 2 and s["bow"][2]["mean"] == 1.0


def test_labelled_task_needs_two_labels_and_every_label_on_both_sides():
    from tinytape.text.corpora import CorpusError

    docs = _docs("sea", SEA, 2, 2, 0)
    with pytest.raises(CorpusError, match="at least 2 labels"):
        LabelledTask(docs, docs, ["sea"])
    with pytest.raises(CorpusError, match="no passage of wood"):
        LabelledTask(docs, docs, ["sea", "wood"])


def test_authors_command_on_a_folder(tmp_path, capsys):
    root = tmp_path / "books"
    for label, words, seed in (("sea", SEA, 0), ("wood", WOOD, 1), ("town", SEA[:4] + WOOD[:4],
                                                                    2)):
        for b in range(2):
            (root / label).mkdir(parents=True, exist_ok=True)
            text = "\n\n".join(d.text for d in _docs(label, words, 1, 6, seed + 10 * b))
            (root / label / f"book{b}.txt").write_text(text)
    out = tmp_path / "out"
    rc = main(["authors", "--corpus", str(root), "--ks", "1,2,99", "--seeds", "1",
               "--pretrain-steps", "4", "--d-model", "16", "--heads", "2", "--context", "32",
               "--vocab-size", "300", "--ft-min-steps", "2", "--ft-max-steps", "2",
               "--passage-chars", "60", "--out", str(out), "--threads", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "k = 99 dropped" in printed and "(d) bag-of-words" in printed
    res = json.loads((out / "results.json").read_text())
    assert res["ks"] == [1, 2] and res["task"]["labels"] == ["sea", "town", "wood"]
    assert set(res["summary"]) == {"scratch", "finetune", "probe", "bow"}
    assert len(res["rows"]) == 2 * 4
    assert (out / "pretrain" / "model.safetensors").exists()
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("event") == "result" and "method" in r for r in lines) == 8


@pytest.mark.parametrize("argv, message", [
    (["authors", "--corpus", "/no/such/folder"], "no such folder"),
    (["authors", "--ks", "0,2"], "--ks must be positive"),
    (["authors", "--seeds", "-1"], "--seeds must be positive"),
    (["authors", "--methods", "svm"], "unknown svm"),
    (["authors", "--library", "foo=1"], "expected KEY=VALUE"),
    (["authors", "--library", "layout=much"], "not a valid float"),
])
def test_authors_command_usage_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
