"""Greedy layer-wise pretraining, fine-tuning, the digits data and the experiment end to end."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import tinytape as tt
from tinytape import nn
from tinytape.cli import main
from tinytape.data import (
    MissingDependency,
    digits_splits,
    load_arrays,
    load_digits,
    minmax_from_train,
    stratified_split,
)
from tinytape.experiments import layerwise as lw
from tinytape.experiments.protocol import read_results
from tinytape.plotting import have_matplotlib
from tinytape.train import read_metrics
from tinytape.train.layerwise import (
    AutoencoderLayer,
    build_mlp,
    classifier_accuracy,
    finetune_mlp,
    pretrain_autoencoder,
    pretrain_layerwise,
    pretrain_supervised,
    replace_head,
)


@pytest.fixture(autouse=True)
def one_thread():
    """These matrices are tiny: one kernel thread is fastest, and keeps the tests quick on
    a busy machine (OpenMP threads that wait for a busy core are very slow)."""
    saved = tt.get_num_threads()
    tt.set_num_threads(1)
    yield
    tt.set_num_threads(saved)


@pytest.fixture(scope="module")
def splits():
    return digits_splits()


def snapshot(module):
    return {k: v.copy() for k, v in module.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def assert_all_changed(a, b):
    for k in a:
        assert not np.array_equal(a[k], b[k]), f"{k} did not change"


# ---------------------------------------------------------------- data

def test_digits_splits_are_fixed_stratified_and_disjoint(splits):
    x, y = load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert 0.0 == x.min() and x.max() == 1.0
    assert len(splits.train) + len(splits.val) + len(splits.test) == 1797
    assert (len(splits.train), len(splits.val), len(splits.test)) == (989, 269, 539)
    rows = {s: {r.tobytes() for r in getattr(splits, s).x} for s in ("train", "val", "test")}
    assert not rows["train"] & rows["test"] and not rows["val"] & rows["test"]
    for part in (splits.train, splits.val, splits.test):  # every class, in proportion
        share = np.bincount(part.y, minlength=10) / len(part)
        assert np.all(np.abs(share - 0.1) < 0.02)
    again = digits_splits()
    np.testing.assert_array_equal(again.test.x, splits.test.x)
    assert not np.array_equal(digits_splits(seed=1).test.y, splits.test.y)
    few = splits.labelled(5, seed=3)
    assert np.array_equal(np.bincount(few.y), [5] * 10)
    np.testing.assert_array_equal(splits.labelled(5, seed=3).x, few.x)
    assert not np.array_equal(splits.labelled(5, seed=4).x, few.x)
    assert splits.unlabelled is splits.train.x
    with pytest.raises(ValueError, match="fewer than"):
        splits.labelled(500, seed=0)


def test_digits_are_the_known_1797_images():
    # read from scikit-learn's bundled file; the facts below are those of load_digits()
    x, y = load_digits()
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert float((x * 16).sum()) == 561718.0
    assert (x[0] * 16).astype(int).reshape(8, 8)[1].tolist() == [0, 0, 13, 15, 10, 15, 5, 0]
    assert y[0] == 0 and (x * 16 == np.round(x * 16)).all()


def test_missing_scikit_learn_says_how_to_install(monkeypatch):
    from tinytape.data import digits

    monkeypatch.setattr(digits, "_find_sklearn", lambda: None)  # as if not installed
    with pytest.raises(MissingDependency, match=r"pip install 'tinytape\[data\]'"):
        load_digits()
    assert main(["layerwise", "--quick", "--out", "unused"]) == 2


def test_load_arrays_reads_csv_npy_and_npz(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,kind\n0,10,cat\n1,20,dog\n2,30,cat\n4,40,bird\n")
    x, y = load_arrays(csv, label_column="kind")
    np.testing.assert_array_equal(x[:, 0], [0, 1, 2, 4])  # as in the file: scaled later
    np.testing.assert_array_equal(y, [1, 2, 1, 0])  # classes in sorted order: bird cat dog
    nohead = tmp_path / "n.csv"
    nohead.write_text("3,0.5,1\n4,0.25,0\n")
    x, y = load_arrays(nohead)
    np.testing.assert_array_equal(x, [[3, 0.5], [4, 0.25]])
    np.testing.assert_array_equal(y, [1, 0])
    arr = np.array([[1, 0.0, 2.0], [0, 1.0, 3.0], [1, 2.0, 5.0]])
    np.save(tmp_path / "d.npy", arr)
    x, y = load_arrays(tmp_path / "d.npy", label_column=0)
    np.testing.assert_array_equal(x, arr[:, 1:])
    np.testing.assert_array_equal(y, [1, 0, 1])
    np.savez(tmp_path / "d.npz", x=np.ones((4, 2, 2)), y=np.array([0, 1, 0, 1]))
    x, y = load_arrays(tmp_path / "d.npz")
    assert x.shape == (4, 4)
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,0\n1,0\n")
    with pytest.raises(ValueError, match="line 2 has 2 fields"):
        load_arrays(bad)
    with pytest.raises(ValueError, match="no column"):
        load_arrays(csv, label_column="species")


def test_stratified_split_of_own_data_keeps_every_class():
    rng = np.random.default_rng(0)
    x, y = rng.random((60, 3)), np.repeat([0, 1, 2], 20)
    s = stratified_split(x, y, 0.2, 0.25, seed=0)
    assert [np.bincount(p.y).tolist() for p in (s.train, s.val, s.test)] == \
        [[11, 11, 11], [4, 4, 4], [5, 5, 5]]


def test_scaling_statistics_come_from_the_training_split_only():
    rng = np.random.default_rng(1)
    x, y = rng.normal(5.0, 3.0, (90, 4)), np.repeat([0, 1, 2], 30)
    x[:, 3] = 2.0  # constant: shifted only
    s = stratified_split(x, y, 0.2, 0.3, seed=0)
    scaled = minmax_from_train(s)
    lo, hi = s.train.x.min(axis=0), s.train.x.max(axis=0)
    np.testing.assert_allclose(scaled.train.x[:, :3].min(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(scaled.train.x[:, :3].max(axis=0), 1.0, atol=1e-6)
    want = (s.test.x[:, :3] - lo[:3]) / (hi[:3] - lo[:3])  # the training split's statistics
    np.testing.assert_allclose(scaled.test.x[:, :3], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(scaled.val.x[:, 3], 0.0)
    assert scaled.test.x[:, :3].min() < 0 or scaled.test.x[:, :3].max() > 1  # not clipped


# ---------------------------------------------------------------- pretraining

SIZES = [64, 32, 24, 16]


def test_pretraining_a_layer_leaves_the_frozen_layers_bit_for_bit_unchanged(splits):
    model = build_mlp(SIZES, 10, "sigmoid", generator=0)
    blocks = model.blocks()
    x = splits.unlabelled[:256]
    pretrain_autoencoder(blocks, x, steps=30, batch_size=32, lr=3e-3, corruption=0.2, start=0,
                         seed=0)
    assert all(not p.requires_grad for p in model.parameters() if p is not None
               and any(p is q for b in blocks for q in b.parameters()))
    frozen = snapshot(blocks[0])
    rest = [snapshot(b) for b in blocks[1:]]
    # greedy training goes on from layer 2: layer 1 is frozen and must not move at all
    report = pretrain_autoencoder(blocks, x, steps=30, batch_size=32, lr=3e-3, start=1, seed=1)
    assert [r["layer"] for r in report] == [2, 3]
    assert_same(frozen, snapshot(blocks[0]))
    for before, b in zip(rest, blocks[1:]):
        assert_all_changed(before, snapshot(b))
    # the same for supervised pretraining
    sup = pretrain_supervised(blocks, splits.train.x[:200], splits.train.y[:200], 10,
                              steps=20, batch_size=32, lr=3e-3, start=2, seed=0)
    assert [r["layer"] for r in sup] == [3]
    assert_same(frozen, snapshot(blocks[0]))
    assert all(not p.requires_grad for b in blocks for p in b.parameters())


@pytest.mark.parametrize("tied,corruption,noise", [(True, 0.0, "mask"), (False, 0.3, "mask"),
                                                   (True, 0.1, "gaussian")])
def test_autoencoder_pretraining_lowers_the_reconstruction_error(splits, tied, corruption,
                                                                 noise):
    model = build_mlp(SIZES, 10, "sigmoid", generator=1)
    report = pretrain_layerwise(model.blocks(), "autoencoder", splits.unlabelled[:400],
                                steps=80, batch_size=32, lr=1e-2, tied=tied,
                                corruption=corruption, noise=noise, seed=0)
    assert len(report) == 3
    first = report[0]
    assert first["recon_after"] < 0.5 * first["recon_before"]  # ||x - x_hat||^2 per image
    for r in report:
        assert r["recon_after"] < r["recon_before"]


def test_a_tied_decoder_shares_the_encoder_weight():
    layer = nn.Sequential(nn.Linear(6, 4, generator=0), nn.Sigmoid())
    tied = AutoencoderLayer(layer, tied=True)
    names = dict(tied.named_parameters())
    assert set(names) == {"layer.0.weight", "layer.0.bias", "decoder_bias"}
    untied = AutoencoderLayer(layer, tied=False, out="linear", generator=0)
    assert untied.decoder.weight.shape == (6, 4)
    x = tt.rand(3, 6, generator=0)
    assert untied(x).shape == (3, 6) and tied(x).shape == (3, 6)
    assert 0 < tied(x).numpy().min() and tied(x).numpy().max() < 1  # sigmoid output


def test_supervised_pretraining_throws_the_heads_away(splits):
    model = build_mlp(SIZES, 10, "relu", "glorot", generator=0)
    names = [n for n, _ in model.named_parameters()]
    report = pretrain_supervised(model.blocks(), splits.train.x[:300], splits.train.y[:300],
                                 10, steps=60, batch_size=50, lr=1e-2, seed=0)
    assert [n for n, _ in model.named_parameters()] == names  # no head left behind
    assert len(report) == 3
    assert all(r["train_acc"] > 0.5 for r in report)  # each layer learned with its head


# ---------------------------------------------------------------- fine-tuning

def test_finetuning_replaces_the_head_and_trains_the_rest(splits):
    model = build_mlp(SIZES, 10, "relu", "glorot", generator=0)
    pretrain_autoencoder(model.blocks(), splits.unlabelled[:300], steps=20, batch_size=32,
                         lr=3e-3, seed=0)
    old_head = model.head
    new = replace_head(model, nn.Linear(16, 10, generator=7))
    assert new.head is not old_head and new.blocks() == model.blocks()  # shared layers
    blocks_before = [snapshot(b) for b in new.blocks()]
    # only the unfrozen ones: the layers stay frozen after pretraining, the head trains
    head_before = snapshot(new.head)
    lab = splits.labelled(10, seed=0)
    finetune_mlp(new, lab.x, lab.y, steps=30, batch_size=32, lr=1e-2, train="unfrozen")
    for before, b in zip(blocks_before, new.blocks()):
        assert_same(before, snapshot(b))
    assert_all_changed(head_before, snapshot(new.head))
    # all weights
    head_before = snapshot(new.head)
    result = finetune_mlp(new, lab.x, lab.y, steps=60, batch_size=32, lr=1e-2, train="all",
                      val=(splits.val.x, splits.val.y), eval_every=30)
    for before, b in zip(blocks_before, new.blocks()):
        assert_all_changed(before, snapshot(b))
    assert_all_changed(head_before, snapshot(new.head))
    assert result.last_eval["val_acc"] > 0.5  # 100 labels, chance is 0.1
    frozen = build_mlp(SIZES, 10, generator=0).requires_grad_(False)
    with pytest.raises(ValueError, match="frozen"):
        finetune_mlp(frozen, lab.x, lab.y, steps=1, train="unfrozen")


def test_early_stopping_restores_the_best_validation_weights(splits):
    lab = splits.labelled(5, seed=0)
    val = lw.validation_subset(splits, 5, seed=0)
    model = build_mlp([64, 32, 32], 10, "sigmoid", generator=0)
    result = finetune_mlp(model, lab.x, lab.y, steps=120, batch_size=25, lr=3e-2,
                          val=(val.x, val.y), eval_every=10, keep_best=True)
    accs = [e["val_acc"] for e in result.evals]
    assert len(accs) == 12 and max(accs) > min(accs)
    assert classifier_accuracy(model, val.x, val.y) == max(accs)  # the weights of the best
    with pytest.raises(ValueError, match="keep_best needs val"):
        finetune_mlp(model, lab.x, lab.y, steps=5, keep_best=True)


def test_validation_subset_is_no_larger_than_the_labelled_set(splits):
    for k in (1, 5, 10, 30):
        val = lw.validation_subset(splits, k, seed=3)
        counts = np.bincount(val.y, minlength=10)
        assert counts.max() <= k and len(val) <= len(splits.labelled(k, seed=3))
    assert len(lw.validation_subset(splits, None, 0)) == len(splits.val) < len(splits.train)
    assert len(lw.validation_subset(splits, 30, 0)) == 10 * 26  # the smallest class has 26


def test_shallow_baselines_against_a_hand_computed_nearest_neighbour(splits):
    lab = splits.labelled(3, seed=0)
    d = ((splits.test.x[:, None, :] - lab.x[None, :, :]) ** 2).sum(-1)
    want = float((lab.y[d.argmin(axis=1)] == splits.test.y).mean())
    train_acc, test_acc = lw.shallow_baseline("nn1", lab, splits.test)
    assert train_acc == 1.0 and test_acc == pytest.approx(want)
    train_acc, test_acc = lw.shallow_baseline("logreg", lab, splits.test)
    assert train_acc == 1.0 and 0.5 < test_acc < 1.0  # 30 labels, chance 0.1


# ---------------------------------------------------------------- the experiment

TINY = dict(width=16, depth=2, depths=(1, 2), depth_labels=3, labels_per_class=(3, None),
            seeds=(0, 1), finetune_steps=12, eval_every=6, ae_steps=10, sup_steps=6,
            batch_size=16, ae_batch_size=32)


def test_the_experiment_runs_end_to_end_on_a_tiny_budget(splits, tmp_path):
    cfg = lw.LayerwiseConfig(**TINY)
    res = lw.run_layerwise(cfg, splits, str(tmp_path), workers=1, progress=False)
    runs = res["metrics"]["runs"]
    # per seed: 3 deep arms x 2 label counts + the other depth for 2 arms + 2 baselines x 2
    assert len(runs) == 2 * (3 * 2 + 2 + 2 * 2)
    for r in runs:
        assert 0.0 <= r["test_acc"] <= 1.0 and 0.0 <= r["train_acc"] <= 1.0
        assert r["labelled"] == (30 if r["labels_per_class"] == "3" else 989)
        assert r["validation"] == (30 if r["labels_per_class"] == "3" else 269)
        if r["depth"]:
            assert r["best_step"] in (6, 12)
    # a paired difference in the table is the mean of the per-seed differences
    by = {(r["method"], r["labels_per_class"], r["depth"], r["seed"]): r["test_acc"]
          for r in runs}
    diffs = [100 * (by["autoencoder", "3", 2, s] - by["random", "3", 2, s]) for s in (0, 1)]
    # the headline cell is 10 labels per class: not run here, so no targets
    assert res["targets"] == []
    saved = read_results(tmp_path)
    assert saved["experiment"] == "layerwise" and saved["protocol"]["seeds"] == [0, 1]
    row = next(r for r in saved["tables"]["sigmoid_differences"]["rows"]
               if r[0] == "autoencoder pretraining - random init")
    assert row[1].startswith(f"{np.mean(diffs):+.1f} [")
    assert [row[0] for row in saved["tables"]["sigmoid_depth"]["rows"]] == [1, 2]
    recs = read_metrics(tmp_path / "metrics.jsonl")
    assert {r["event"] for r in recs} >= {"train", "eval", "test"}
    # the same runs in two worker processes give the same numbers
    deep = ("random", "autoencoder")
    par = lw.run_layerwise(dataclasses.replace(cfg, methods=deep), splits, None, workers=2,
                           progress=False)
    assert [r["test_acc"] for r in par["metrics"]["runs"]] == \
        [r["test_acc"] for r in runs if r["method"] in deep]


def test_headline_targets_use_the_paired_interval():
    cfg = lw.LayerwiseConfig()
    ae = {s: 80.0 + d for s, d in enumerate([12, 9, 14, 11, 10, 13, 8, 12, 11, 10])}
    rnd = {s: 80.0 for s in range(10)}
    logreg = {s: 95.0 + (s % 3) for s in range(10)}
    cells = {("sigmoid", "autoencoder", "10", 3): ae, ("sigmoid", "random", "10", 3): rnd,
             ("sigmoid", "logreg", "10", 0): logreg}
    got = {t.name: t for t in lw.headline_targets(cells, "sigmoid", cfg)}
    main = got["autoencoder - random init, 10 labels/class (points)"]
    d = np.array([12, 9, 14, 11, 10, 13, 8, 12, 11, 10], float)
    half = 2.262157 * d.std(ddof=1) / np.sqrt(10)
    assert main.value == pytest.approx(11.0)
    assert main.ci95 == pytest.approx((11 - half, 11 + half), abs=1e-5)
    assert main.verdict == "met"
    assert got["autoencoder - random init (stretch), 10 labels/class (points)"].verdict == \
        "inconclusive"  # the interval straddles 10
    assert got["autoencoder - logistic regression, 10 labels/class (points)"].verdict == \
        "not met"
    assert not any("1-NN" in name for name in got)  # not run: no target


def test_config_checks_itself():
    with pytest.raises(ValueError, match="labels per class must be >= 1"):
        lw.LayerwiseConfig(labels_per_class=(0, 5))
    with pytest.raises(ValueError, match="seeds must be distinct"):
        lw.LayerwiseConfig(seeds=(1, 1))
    with pytest.raises(ValueError, match="methods"):
        lw.LayerwiseConfig(methods=("random", "svm"))
    assert lw.LayerwiseConfig.quick().study_depths() == [1]


def test_cli_writes_results_table_and_plot(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["layerwise", "--quick", "--width", "16", "--depth", "2", "--depths", "1,2",
                 "--labels-per-class", "10,all", "--seeds", "2", "--steps", "10",
                 "--eval-every", "5", "--pretrain-steps", "8", "--supervised-steps", "5",
                 "--workers", "1", "--out", str(out), "--progress", "off"])
    assert code == 0
    text = capsys.readouterr()
    assert "| autoencoder pretraining - random init |" in text.out
    assert "| target | value | 95% interval | bound | verdict |" in text.out
    res = read_results(out)
    assert res["config"]["labels_per_class"] == [10, "all"] and res["config"]["depth"] == 2
    assert [t["name"] for t in res["targets"]][:2] == [
        "autoencoder - random init, 10 labels/class (points)",
        "autoencoder - random init (stretch), 10 labels/class (points)"]
    assert (out / "metrics.jsonl").stat().st_size > 0
    if have_matplotlib():
        assert (out / "layerwise.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "pip install 'tinytape[plot]'" in text.err


def test_cli_on_own_csv_data(tmp_path, capsys):
    rng = np.random.default_rng(0)
    centers = rng.random((3, 5)) * 40
    y = np.repeat([0, 1, 2], 30)
    x = centers[y] + rng.normal(0, 3, (90, 5))
    path = tmp_path / "mine.csv"
    path.write_text("f1,f2,f3,f4,f5,label\n" + "\n".join(
        ",".join(f"{v:.4f}" for v in row) + f",{'abc'[c]}" for row, c in zip(x, y)))
    code = main(["layerwise", "--data", str(path), "--label-column", "label", "--width", "8",
                 "--depth", "1", "--depths", "1", "--labels-per-class", "5", "--steps", "40",
                 "--eval-every", "20", "--pretrain-steps", "20", "--seeds", "2",
                 "--activations", "relu", "--methods", "random,autoencoder,nn1",
                 "--workers", "1", "--no-plot", "--lr", "1e-2", "--out", str(tmp_path / "o"),
                 "--progress", "off"])
    assert code == 0
    res = read_results(tmp_path / "o")
    assert res["metrics"]["data"].startswith("mine.csv: 51 train / 12 validation / 27 test")
    assert min(r["test_acc"] for r in res["metrics"]["runs"]) > 0.8  # well separated blobs


@pytest.mark.parametrize("argv,message", [
    (["--seeds", "0"], "--seeds must be >= 1"),
    (["--seeds", "-2"], "--seeds must be >= 1"),
    (["--labels-per-class", "0,5"], "must be >= 1"),
    (["--labels-per-class", "-1"], "must be >= 1"),
    (["--labels-per-class", "500"], "smallest class has only"),
    (["--steps", "-5"], "--steps: finetune_steps must be an integer >= 1"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--workers", "0"], "--workers must be >= 1"),
    (["--corruption", "1.5"], "corruption"),
    (["--activations", "tanh"], "--activations"),
    (["--depths", "1,-3"], "--depths"),
    (["--data", "/nonexistent/file.csv"], "no such file"),
])
def test_cli_rejects_bad_arguments_with_exit_code_2(argv, message, capsys, tmp_path):
    assert main(["layerwise", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tinytape layerwise: error:") and message in err[0]
