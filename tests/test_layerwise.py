"""Greedy layer-wise pretraining, fine-tuning, the digits data and the experiment end to end."""

from __future__ import annotations

import json

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
    stratified_split,
)
from tinytape.plotting import have_matplotlib
from tinytape.train import read_metrics
from tinytape.train.layerwise import (
    AutoencoderLayer,
    ExperimentConfig,
    build_mlp,
    check_targets,
    finetune,
    format_table,
    pretrain_autoencoder,
    pretrain_layerwise,
    pretrain_supervised,
    replace_head,
    run_experiment,
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
    np.testing.assert_allclose(x[:, 0], [0, 0.25, 0.5, 1.0])  # min-max scaled to [0, 1]
    np.testing.assert_array_equal(y, [1, 2, 1, 0])  # classes in sorted order: bird cat dog
    nohead = tmp_path / "n.csv"
    nohead.write_text("3,0.5,1\n4,0.25,0\n")
    x, y = load_arrays(nohead, scale="none")
    np.testing.assert_array_equal(x, [[3, 0.5], [4, 0.25]])
    np.testing.assert_array_equal(y, [1, 0])
    arr = np.array([[1, 0.0, 2.0], [0, 1.0, 3.0], [1, 2.0, 5.0]])
    np.save(tmp_path / "d.npy", arr)
    x, y = load_arrays(tmp_path / "d.npy", label_column=0, scale="none")
    np.testing.assert_array_equal(x, arr[:, 1:])
    np.testing.assert_array_equal(y, [1, 0, 1])
    np.savez(tmp_path / "d.npz", x=np.ones((4, 2, 2)), y=np.array([0, 1, 0, 1]))
    x, y = load_arrays(tmp_path / "d.npz", scale="none")
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
    finetune(new, lab.x, lab.y, steps=30, batch_size=32, lr=1e-2, train="unfrozen")
    for before, b in zip(blocks_before, new.blocks()):
        assert_same(before, snapshot(b))
    assert_all_changed(head_before, snapshot(new.head))
    # all weights
    head_before = snapshot(new.head)
    result = finetune(new, lab.x, lab.y, steps=60, batch_size=32, lr=1e-2, train="all",
                      val=(splits.val.x, splits.val.y), eval_every=30)
    for before, b in zip(blocks_before, new.blocks()):
        assert_all_changed(before, snapshot(b))
    assert_all_changed(head_before, snapshot(new.head))
    assert result.last_eval["val_acc"] > 0.5  # 100 labels, chance is 0.1
    frozen = build_mlp(SIZES, 10, generator=0).requires_grad_(False)
    with pytest.raises(ValueError, match="frozen"):
        finetune(frozen, lab.x, lab.y, steps=1, train="unfrozen")


# ---------------------------------------------------------------- the experiment

TINY = dict(hidden=(16, 16), labels_per_class=(2, None), seeds=(0,), finetune_steps=12,
            long_factor=2, ae_steps=10, sup_steps=6, batch_size=16, ae_batch_size=32,
            eval_every=6)


def test_the_experiment_runs_end_to_end_on_a_tiny_budget(splits, tmp_path):
    cfg = ExperimentConfig(**TINY)
    res = run_experiment(cfg, splits, workers=1, metrics_path=str(tmp_path / "m.jsonl"),
                         progress=False)
    assert len(res["runs"]) == 2 * 4 * 2  # activations x methods x label counts
    for r in res["runs"]:
        assert 0.0 <= r["test_acc"] <= 1.0 and r["val_acc"] is not None
        assert r["labelled"] == (20 if r["labels_per_class"] == 2 else 989)
        assert r["finetune_steps"] == (24 if r["method"] == "none_long" else 12)
    cell = res["summary"]["sigmoid"]["autoencoder"]["all"]
    assert cell["n"] == 1 and cell["std"] == 0.0
    recs = read_metrics(tmp_path / "m.jsonl")
    assert {r["event"] for r in recs} == {"train", "eval", "test"}
    assert {r["method"] for r in recs} == {"none", "none_long", "supervised", "autoencoder"}
    assert any(r["labels_per_class"] == "unlabelled" for r in recs)  # autoencoder phase
    table = format_table(res)
    assert "autoencoder pretraining" in table and "random init, 2x steps" in table
    assert len([t for t in res["targets"] if "autoencoder >=" in t["target"]]) == 0
    # the same runs in two worker processes give the same numbers
    par = run_experiment(ExperimentConfig(**{**TINY, "activations": ("sigmoid",),
                                             "methods": ("none", "autoencoder")}),
                         splits, workers=2, progress=False)
    want = {(r["method"], r["labels_per_class"]): r["test_acc"] for r in res["runs"]
            if r["activation"] == "sigmoid" and r["method"] in ("none", "autoencoder")}
    assert {(r["method"], r["labels_per_class"]): r["test_acc"] for r in par["runs"]} == want


def test_targets_are_checked_with_numbers():
    def cell(v):
        return {"mean": v, "std": 0.0, "n": 3, "values": [v] * 3}

    summary = {"sigmoid": {
        "none": {"5": cell(70), "10": cell(75), "30": cell(85)},
        "none_long": {"all": cell(95.5)},
        "supervised": {"5": cell(72), "10": cell(80), "30": cell(86)},
        "autoencoder": {"5": cell(71), "10": cell(86), "30": cell(90), "all": cell(96)}}}
    checks = {c["target"]: c for c in check_targets(summary, wall_seconds=250.0)}
    gap = checks["autoencoder - random init at 10 labels/class >= 10 points"]
    assert gap["value"] == 11 and gap["met"]
    assert not checks["autoencoder >= supervised >= random init at 5 labels/class"]["met"]
    assert checks["autoencoder >= supervised >= random init at 30 labels/class"]["met"]
    assert checks["all labels, long budget: |autoencoder - random init| <= 2 points"]["met"]
    assert checks["the sweep takes <= 300 s"]["met"]


def test_cli_writes_results_table_and_plot(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["layerwise", "--quick", "--hidden", "16,16", "--labels-per-class", "3,all",
                 "--steps", "10", "--pretrain-steps", "8", "--supervised-steps", "5",
                 "--activations", "sigmoid", "--workers", "1", "--out", str(out),
                 "--progress", "off"])
    assert code == 0
    text = capsys.readouterr()
    assert "labels per class" in text.out and "supervised pretraining" in text.out
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["labels_per_class"] == [3, "all"]
    assert res["config"]["hidden"] == [16, 16]
    assert len(res["runs"]) == 4 * 2
    assert (out / "metrics.jsonl").stat().st_size > 0
    if have_matplotlib():
        assert (out / "layerwise.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "pip install 'tinytape[plot]'" in text.err
        assert not (out / "layerwise.png").exists()


def test_cli_on_own_csv_data(tmp_path, capsys):
    rng = np.random.default_rng(0)
    centers = rng.random((3, 5)) * 4
    y = np.repeat([0, 1, 2], 30)
    x = centers[y] + rng.normal(0, 0.3, (90, 5))
    path = tmp_path / "mine.csv"
    path.write_text("f1,f2,f3,f4,f5,label\n" + "\n".join(
        ",".join(f"{v:.4f}" for v in row) + f",{'abc'[c]}" for row, c in zip(x, y)))
    code = main(["layerwise", "--data", str(path), "--label-column", "label", "--hidden", "8",
                 "--labels-per-class", "5", "--steps", "40", "--pretrain-steps", "20",
                 "--supervised-steps", "10", "--seeds", "1", "--activations", "relu",
                 "--methods", "none,autoencoder", "--workers", "1", "--no-plot",
                 "--lr", "1e-2", "--out", str(tmp_path / "o"), "--progress", "off"])
    assert code == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["data"].startswith("mine.csv: 51 train / 12 validation / 27 test")
    accs = [r["test_acc"] for r in res["runs"]]
    assert min(accs) > 0.8  # three well separated blobs


@pytest.mark.parametrize("argv,message", [
    (["--seeds", "0"], "--seeds must be >= 1"),
    (["--seeds", "-2"], "--seeds must be >= 1"),
    (["--labels-per-class", "0,5"], "must be >= 1"),
    (["--labels-per-class", "-1"], "must be >= 1"),
    (["--labels-per-class", "500"], "smallest class has only"),
    (["--steps", "-5"], "--steps must be >= 1"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--workers", "0"], "--workers must be >= 1"),
    (["--corruption", "1.5"], "--corruption"),
    (["--activations", "tanh"], "--activations"),
    (["--hidden", "16,-3"], "--hidden"),
    (["--data", "/nonexistent/file.csv"], "no such file"),
])
def test_cli_rejects_bad_arguments_with_exit_code_2(argv, message, capsys, tmp_path):
    assert main(["layerwise", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tinytape layerwise: error:") and message in err[0]
