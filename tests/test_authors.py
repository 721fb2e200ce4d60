"""The authors experiment: the probe-initialised head, one comparison (every choice on
validation, test read once per arm), paired differences and targets, the config's checks,
and the `authors` command writing the shared results.json schema."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from tinytape.cli import main
from tinytape.experiments import authors as A
from tinytape.experiments.protocol import read_results
from tinytape.models import GPT, GPTConfig, SequenceClassifier
from tinytape.text.corpora import Document
from tinytape.text.tokenizers import ByteBPETokenizer
from tinytape.train.fewshot import (
    Pretrained,
    choose,
    encode_passages,
    feature_stats,
    fit_logreg,
    pooled_features,
    probe_to_head,
    split_labelled,
)

#: the fits are compared to fixed figures and to each other: one kernel thread
pytestmark = pytest.mark.usefixtures("one_kernel_thread")


def _docs(label, words, books, per_book, seed):
    rng = np.random.default_rng(seed)
    return [
        Document(" ".join(rng.choice(words, 12)) + ".", label, f"{label}/b{b}#{p}", f"{label}/b{b}")
        for b in range(books)
        for p in range(per_book)
    ]


SEA = ["wave", "salt", "ship", "gull", "tide", "reef", "sail", "oar"]
WOOD = ["tree", "moss", "fern", "owl", "bark", "leaf", "root", "fox"]


@pytest.fixture(scope="module")
def tiny_setup():
    docs = _docs("sea", SEA, 4, 6, 0) + _docs("wood", WOOD, 4, 6, 1)
    task = split_labelled(docs, 0.5, 0.25, seed=0)
    tok = ByteBPETokenizer.train([d.text for d in docs], 300)
    gpt = GPT(
        GPTConfig(vocab_size=tok.vocab_size, context_length=32, d_model=16, n_layers=1, n_heads=2),
        generator=0,
    )
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
    probe_to_head(clf, probe, mean, std)
    clf.eval()
    np.testing.assert_allclose(clf(ids, mask).numpy(), probe.logits(Z), rtol=1e-3, atol=1e-4)


def _cfg(**kw):
    base = dict(
        ks=(2,),
        seeds=1,
        d_model=16,
        layers=1,
        heads=2,
        context=32,
        vocab_size=300,
        pretrain_steps=1,
        ft_min_steps=3,
        ft_max_steps=3,
        finetune_lrs=(1e-4, 1e-3),
        scratch_lrs=(1e-3, 1e-2),
        lambdas=(1.0, 1e-2),
        char_ranges=((1, 3), (2, 4)),
        workers=1,
    )
    return A.AuthorsConfig(**{**base, **kw})


def test_comparison_rejects_statistics_of_another_pooling(tiny_setup):
    task, p = tiny_setup
    with pytest.raises(
        ValueError,
        match=r"statistics of shape \(64,\) do not fit pooling "
        r"'mean' \(16 features\)",
    ):
        A.Comparison(task, p, _cfg(pooling="mean"))


def test_one_comparison_chooses_on_validation_and_reads_test_once(tiny_setup, monkeypatch):
    task, p = tiny_setup
    cfg = _cfg()
    comp = A.Comparison(task, p, cfg)
    before = {k: v.copy() for k, v in p.model.state_dict().items()}
    test_reads = []
    real = A.classifier_logits

    def counting(model, ids, mask, *args):
        if len(ids) == len(task.test):
            test_reads.append(id(model))
        return real(model, ids, mask, *args)

    monkeypatch.setattr(A, "classifier_logits", counting)
    rows = comp.run(2, seed=0)
    by = {r["method"]: r for r in rows}
    assert sorted(by) == sorted(A.METHODS)
    assert all(
        0.0 <= r["accuracy"] <= 1.0 and r["n_train"] == 4 and r["n_validation"] == 4 for r in rows
    )
    # (a) and (b) each trained one model per learning rate and ran only the chosen one on
    # the test passages
    assert len(test_reads) == 2
    for method, grid in (("finetune", cfg.finetune_lrs), ("scratch", cfg.scratch_lrs)):
        scores = [(v["accuracy"], v["loss"]) for v in by[method]["validation"]]
        assert [v["setting"] for v in by[method]["validation"]] == list(grid)
        assert by[method]["chosen"] == {"lr": grid[choose(scores)]}
    for method in ("probe", "bow"):
        scores = [(v["accuracy"], v["loss"]) for v in by[method]["validation"]]
        assert by[method]["chosen"]["lambda"] == cfg.lambdas[choose(scores)]
    assert len(by["chars"]["validation"]) == len(cfg.char_ranges) * len(cfg.lambdas)
    assert by["chars"]["chosen"]["ngrams"] in ("1-3", "2-4")
    assert by["bow"]["accuracy"] == by["chars"]["accuracy"] == 1.0  # two vocabularies
    # the validation passages are other books than the labelled and test ones
    val = task.sample_validation(2, 0)
    assert {d.group for d in val}.isdisjoint({d.group for d in task.pool + task.test})
    # fine-tuning works on a copy: the pretrained model is untouched
    for k, v in p.model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_paired_differences_and_targets_by_hand():
    acc = {
        ("finetune", 0): 0.8,
        ("finetune", 1): 0.7,
        ("finetune", 2): 0.9,
        ("scratch", 0): 0.5,
        ("scratch", 1): 0.5,
        ("scratch", 2): 0.6,
        ("chars", 0): 0.9,
        ("chars", 1): 0.6,
        ("chars", 2): 0.8,
    }
    rows = [{"method": m, "k": 2, "seed": s, "accuracy": a} for (m, s), a in acc.items()]
    rows.reverse()  # pairing goes by seed, not by order
    diffs = A.differences(rows)
    d = diffs["scratch"][2]  # differences 0.3, 0.2, 0.3
    mean = 0.8 / 3
    sd = math.sqrt(((0.3 - mean) ** 2 * 2 + (0.2 - mean) ** 2) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert d.mean == pytest.approx(mean) and d.sd == pytest.approx(sd)
    assert (d.lo, d.hi) == pytest.approx((mean - half, mean + half))
    targets = {t.name: t for t in A.check_targets(diffs)}
    assert targets["(b) - (a) at k=2"].verdict == "met"  # 0.267 +- 0.143
    e = targets["(b) - (e) char n-grams at k=2"]  # differences -0.1, 0.1, 0.1
    assert e.value == pytest.approx(1 / 30) and e.verdict == "inconclusive"
    summary = A.summarize(rows)
    assert summary["scratch"][2].mean == pytest.approx(1.6 / 3)
    assert summary["scratch"][2].sd == pytest.approx(np.std([0.5, 0.5, 0.6], ddof=1))
    tables = A.tables(
        [dict(r, chosen={"lr": 1e-3}) for r in rows], [2], ("scratch", "finetune", "chars")
    )
    assert tables["accuracy"]["rows"][0] == [A.METHOD_LABELS["scratch"], "0.533 ± 0.058"]
    assert tables["differences"]["rows"][0][1] == d.format()
    assert tables["choices"]["rows"][0] == ["(a)", "lr 0.001 x3"]


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(scratch_lrs=(1e-3,)), "same number of choices"),
        (dict(ks=(0, 2)), "ks must be positive"),
        (dict(methods=("svm",)), "unknown svm"),
        (dict(char_ranges=((3, 2),)), "char_ranges"),
        (dict(library={"layout": -1.0, "n_target": 99}), "library"),
        (dict(d_model=15), "not divisible"),
    ],
)
def test_config_checks_itself(kw, message):
    with pytest.raises(ValueError, match=message):
        _cfg(**kw)


def test_config_fills_the_size_by_corpus_and_records_development_seeds():
    assert A.AuthorsConfig().d_model == 96 and A.AuthorsConfig(corpus="x").d_model == 64
    assert A.AuthorsConfig().library_seed not in A.DEVELOPMENT_LIBRARY_SEEDS
    assert A.QUICK["library_seed"] in A.DEVELOPMENT_LIBRARY_SEEDS


def _folder(root):
    for label, words, seed in (("sea", SEA, 0), ("wood", WOOD, 1), ("town", SEA[:4] + WOOD[:4], 2)):
        (root / label).mkdir(parents=True)
        for b in range(3):
            text = "\n\n".join(d.text for d in _docs(label, words, 1, 6, seed + 10 * b))
            (root / label / f"book{b}.txt").write_text(text)
    return root


def _folder_cfg(tmp_path):
    """Two seeds, k = 1 and 2, on the three-label folder; a few steps of everything."""
    return _cfg(
        corpus=str(_folder(tmp_path / "books")),
        ks=(1, 2),
        seeds=2,
        passage_chars=60,
        pretrain_steps=4,
        ft_min_steps=2,
        ft_max_steps=2,
    )


def test_an_interrupted_run_resumes_after_its_last_whole_comparison(tmp_path):
    cfg = _folder_cfg(tmp_path)
    out = tmp_path / "out"
    first = read_results(A.run(cfg, str(out), say=lambda _: None)["path"])
    lines = (out / A.ROWS_FILE).read_text().splitlines()
    assert len(lines) == 2 * 2 * len(A.METHODS)
    # killed while writing the third (k, seed): two whole ones and a torn line survive
    (out / A.ROWS_FILE).write_text("\n".join(lines[: 2 * len(A.METHODS) + 2]) + '\n{"to')
    said = []
    # the rest in two spawned workers: the same numbers as in one process
    again = read_results(A.run(replace(cfg, workers=2), str(out), say=said.append)["path"])
    assert "resuming: 2 of 4 (k, seed) comparisons done" in said
    key = [(r["method"], r["k"], r["seed"], r["accuracy"]) for r in first["metrics"]["rows"]]
    assert sorted(key) == sorted(
        (r["method"], r["k"], r["seed"], r["accuracy"]) for r in again["metrics"]["rows"]
    )
    assert again["targets"] == first["targets"] and again["metrics"]["complete"]
    # another config starts afresh
    other = A.run(_cfg(**{**cfg.__dict__, "seeds": 1}), str(out), say=said.append)
    assert len(read_results(other["path"])["metrics"]["rows"]) == 2 * len(A.METHODS)
    assert len((out / A.ROWS_FILE).read_text().splitlines()) == 2 * len(A.METHODS)


def test_workers_start_the_methods_without_pretraining_while_the_model_pretrains(tmp_path):
    """With workers, scratch / bow / chars run in a worker during pretraining and the rest
    after it: every row (choices, validation tables, accuracies) equals one process's."""
    cfg = _folder_cfg(tmp_path)
    said: list[str] = []
    one = read_results(A.run(cfg, str(tmp_path / "one"), say=lambda _: None)["path"])
    two = read_results(
        A.run(replace(cfg, workers=2), str(tmp_path / "two"), say=said.append)["path"]
    )
    assert any("while the model pretrains" in line for line in said)

    def rows(results):
        return [{a: b for a, b in r.items() if a != "seconds"} for r in results["metrics"]["rows"]]

    assert rows(two) == rows(one) and len(rows(one)) == 2 * 2 * len(A.METHODS)
    assert [r["method"] for r in rows(one)[: len(A.METHODS)]] == list(cfg.methods)
    assert two["targets"] == one["targets"]


def test_a_comparison_without_the_pretrained_model_runs_only_what_does_not_need_it(tiny_setup):
    task, p = tiny_setup
    comp = A.Comparison(task, None, _cfg(), tokenizer=p.tokenizer, gpt_config=p.model.config)
    with pytest.raises(ValueError, match="finetune, probe need the pretrained model"):
        comp.run(1, 0)
    with pytest.raises(ValueError, match="give the tokenizer and gpt_config"):
        A.Comparison(task, None, _cfg())


def test_authors_command_on_a_folder(tmp_path, capsys):
    root = _folder(tmp_path / "books")
    out = tmp_path / "out"
    rc = main(
        [
            "authors",
            "--corpus",
            str(root),
            "--ks",
            "1,2,99",
            "--seeds",
            "2",
            "--pretrain-steps",
            "4",
            "--d-model",
            "16",
            "--heads",
            "2",
            "--context",
            "32",
            "--vocab-size",
            "300",
            "--ft-min-steps",
            "2",
            "--ft-max-steps",
            "2",
            "--passage-chars",
            "60",
            "--out",
            str(out),
            "--threads",
            "1",
            "--workers",
            "1",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "k = 99 dropped" in printed
    assert "(e) character n-gram" in printed and "(b) - (a) at k=2" in printed
    res = read_results(out)
    assert res["experiment"] == "authors" and res["protocol"]["selection"] == "validation"
    assert res["protocol"]["seeds"] == [0, 1]
    assert res["protocol"]["splits"]["validation"] > 0
    assert res["config"]["ks"] == [1, 2]
    m = res["metrics"]
    assert m["task"]["labels"] == ["sea", "town", "wood"]
    assert len(m["rows"]) == 2 * 2 * len(A.METHODS)
    assert [t["name"] for t in res["targets"]] == [
        "(b) - (a) at k=2",
        "(b) - (e) char n-grams at k=1",
        "(b) - (e) char n-grams at k=2",
    ]
    assert set(res["tables"]) == {"accuracy", "differences", "choices"}
    assert (out / "pretrain" / "model.safetensors").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["authors", "--corpus", "/no/such/folder"], "no such folder"),
        (["authors", "--ks", "0,2"], "ks must be positive"),
        (["authors", "--ks", "one"], "--ks must be comma-separated numbers"),
        (["authors", "--seeds", "-1"], "seeds must be positive"),
        (["authors", "--methods", "svm"], "unknown svm"),
        (["authors", "--scratch-lrs", "1e-3"], "same number of choices"),
        (["authors", "--library", "foo=1"], "expected KEY=VALUE"),
        (["authors", "--library", "layout=much"], "not a valid float"),
    ],
)
def test_authors_command_usage_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
