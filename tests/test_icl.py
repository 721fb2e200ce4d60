"""In-context learning (tinytape.experiments.icl): the data generator, prompt building, the frozen
evaluation harness, the copy task's probes and a tiny training run, the summaries and targets
over seeds (on records with known values), and the command."""

from __future__ import annotations

import numpy as np
import pytest

import tinytape as tt
from tinytape.cli import main
from tinytape.experiments import icl
from tinytape.experiments.icl import (
    IGNORE_INDEX,
    CopyConfig,
    ICLConfig,
    PairTask,
    WeightsChangedError,
    build_prompt,
    few_shot_accuracy,
    frozen,
    score_candidates,
)
from tinytape.experiments.protocol import read_results
from tinytape.models import GPT, GPTConfig
from tinytape.nn import Module

TASK = PairTask()  # 16 keys, 8 labels, 16 pairs, 2-5 distinct keys per bursty sequence


def _same_key_same_label(keys: np.ndarray, labels: np.ndarray) -> bool:
    for k, lab in zip(keys, labels):
        for key in np.unique(k):
            if np.unique(lab[k == key]).size != 1:
                return False
    return True


# ------------------------------------------------------------------ data
@pytest.mark.parametrize("bursty", [True, False])
def test_mapping_is_consistent_within_and_fresh_across_sequences(bursty):
    ep = TASK.sample(3000, np.random.default_rng(0), bursty)
    assert ep.keys.shape == ep.labels.shape == (3000, 16)
    assert ep.keys.min() >= 0 and ep.keys.max() < TASK.n_keys
    assert ep.labels.min() >= 0 and ep.labels.max() < TASK.n_labels
    assert _same_key_same_label(ep.keys, ep.labels)  # one mapping inside a sequence
    # ...but across sequences a key gets every label about equally often: nothing to memorize
    first_label = {}
    for k, lab in zip(ep.keys.ravel(), ep.labels.ravel()):
        first_label.setdefault(int(k), []).append(int(lab))
    key, labs = max(first_label.items(), key=lambda kv: len(kv[1]))
    counts = np.bincount(labs, minlength=TASK.n_labels) / len(labs)
    assert len(labs) > 300
    assert np.all(np.abs(counts - 1 / TASK.n_labels) < 0.06), counts


def test_different_sequences_draw_different_mappings():
    # a key that occurs in two sequences has the same label in both only by chance (1/8)
    ep = TASK.sample(4000, np.random.default_rng(1), bursty=True)
    agree = []
    for i in range(0, 3998, 2):
        common = np.intersect1d(ep.keys[i], ep.keys[i + 1])
        for key in common:
            agree.append(
                ep.labels[i][ep.keys[i] == key][0] == ep.labels[i + 1][ep.keys[i + 1] == key][0]
            )
    assert len(agree) > 100
    assert abs(np.mean(agree) - 1 / TASK.n_labels) < 0.06


def test_burstiness_statistics():
    rng = np.random.default_rng(2)
    bursty, flat = TASK.sample(4000, rng, True), TASK.sample(4000, rng, False)
    distinct_b = np.array([np.unique(k).size for k in bursty.keys])
    distinct_f = np.array([np.unique(k).size for k in flat.keys])
    assert distinct_b.min() >= 1 and distinct_b.max() <= TASK.max_distinct
    assert set(np.unique(distinct_b)) >= {2, 3, 4, 5}
    # in bursty data most labels can be read from an earlier pair...
    assert bursty.shown_before().mean() > 0.7
    # ...in the default control none can: 16 different keys, every key's count the same
    # in the long run as in bursty data
    assert np.all(distinct_f == TASK.n_pairs) and not flat.shown_before().any()
    counts_b = np.bincount(bursty.keys.ravel(), minlength=TASK.n_keys) / bursty.keys.size
    counts_f = np.bincount(flat.keys.ravel(), minlength=TASK.n_keys) / flat.keys.size
    np.testing.assert_allclose(counts_b, 1 / TASK.n_keys, atol=0.01)
    np.testing.assert_allclose(counts_f, 1 / TASK.n_keys, atol=0.01)
    # the "iid" control over many keys: repeats by chance only
    iid = PairTask(n_keys=256, control="iid").sample(4000, rng, False)
    assert 0.01 < iid.shown_before().mean() < 0.05  # about 7.5 / 256
    # shown_before agrees with a direct loop
    for k, s in zip(bursty.keys[:50], bursty.shown_before()[:50]):
        assert list(s) == [k[j] in k[:j] for j in range(16)]


def test_tokens_and_loss_mask():
    ep = TASK.sample(5, np.random.default_rng(3), bursty=True)
    seq = TASK.tokens(ep)
    assert seq.shape == (5, 33)
    assert np.all(seq[:, 0] == TASK.task_token)
    np.testing.assert_array_equal(seq[:, 1::2], ep.keys)
    np.testing.assert_array_equal(seq[:, 2::2], ep.labels + TASK.n_keys)
    x, y = TASK.lm_batch(ep)
    assert x.shape == y.shape == (5, TASK.context_length) == (5, 32)
    np.testing.assert_array_equal(x, seq[:, :-1])
    # the loss sees exactly the 16 labels, each predicted at its key's position
    assert np.all(y[:, 0::2] == IGNORE_INDEX)
    np.testing.assert_array_equal(y[:, 1::2], ep.labels + TASK.n_keys)
    np.testing.assert_array_equal(x[:, 1::2], ep.keys)
    assert seq.max() < TASK.vocab_size


def test_loss_ignores_non_label_positions():
    ep = TASK.sample(4, np.random.default_rng(4), bursty=True)
    x, y = TASK.lm_batch(ep)
    model = GPT(
        GPTConfig(vocab_size=TASK.vocab_size, context_length=32, d_model=16, n_layers=1, n_heads=2),
        generator=0,
    )
    with tt.no_grad():
        logits, loss = model(x, y, ignore_index=IGNORE_INDEX)
    z = logits.numpy()[:, 1::2, :].astype(np.float64)
    logp = (
        z
        - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True))
        - z.max(-1, keepdims=True)
    )
    want = -np.take_along_axis(logp, y[:, 1::2, None], 2).mean()
    assert loss.item() == pytest.approx(want, rel=1e-5)


def test_sampling_is_seeded():
    a = TASK.sample(10, np.random.default_rng(5), True)
    b = TASK.sample(10, np.random.default_rng(5), True)
    c = TASK.sample(10, np.random.default_rng(6), True)
    np.testing.assert_array_equal(a.keys, b.keys)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.keys, c.keys)


def test_task_validation():
    with pytest.raises(ValueError):
        PairTask(min_distinct=6, max_distinct=5)
    with pytest.raises(ValueError):
        PairTask(n_labels=1)
    with pytest.raises(ValueError):
        PairTask(control="zipf")
    with pytest.raises(ValueError):
        PairTask(n_keys=8, control="distinct")  # cannot draw 16 different keys from 8


# ------------------------------------------------------------------ prompts
def test_build_prompt_zero_one_few_shot():
    task = [100, 101]
    assert build_prompt(task, [], [7]).tolist() == [100, 101, 7]
    assert build_prompt(task, [([3], [50])], [7]).tolist() == [100, 101, 3, 50, 7]
    demos = [([3], [50]), ([4, 5], [51, 52]), ([6], [53])]
    assert build_prompt(task, demos, [7, 8]).tolist() == [
        100,
        101,
        3,
        50,
        4,
        5,
        51,
        52,
        6,
        53,
        7,
        8,
    ]
    assert build_prompt(task, demos, [7]).dtype == np.int64


# ------------------------------------------------------------------ a hand-built model
class LookupLM(Module):
    """A fixture with a known answer: logits for the next token are a one-hot (scaled) of
    the label that followed the most recent earlier occurrence of the last token, else
    flat. It has one parameter (a scale) so the frozen check has something to watch."""

    def __init__(self, vocab: int, labels: np.ndarray, scale: float = 5.0) -> None:
        super().__init__()
        self.vocab, self.labels = vocab, set(int(v) for v in labels)
        self.scale = tt.nn.Parameter(np.array([scale], dtype=np.float32))
        self.calls = 0

    def forward(self, idx, targets=None, ignore_index=-100):
        self.calls += 1
        ids = np.asarray(idx)
        out = np.zeros(ids.shape + (self.vocab,), dtype=np.float32)
        for b in range(ids.shape[0]):
            for t in range(ids.shape[1]):
                for s in range(t - 1, -1, -1):
                    if ids[b, s] == ids[b, t] and s + 1 <= t and int(ids[b, s + 1]) in self.labels:
                        out[b, t, ids[b, s + 1]] = 1.0
                        break
        return tt.tensor(out) * self.scale, None


def test_score_candidates_scores_a_known_model():
    model = LookupLM(TASK.vocab_size, TASK.label_tokens)
    lab = TASK.label_tokens
    prompts = [
        build_prompt([TASK.task_token], [([3], [lab[2]]), ([9], [lab[5]])], [3]),
        build_prompt([TASK.task_token], [([3], [lab[2]]), ([9], [lab[5]])], [9]),
        build_prompt([TASK.task_token], [([3], [lab[2]])], [11]),  # not shown
        build_prompt([TASK.task_token], [], [11]),
    ]  # zero-shot, another length
    scores = score_candidates(model, prompts, lab[:, None])
    assert scores.shape == (4, 8)
    assert scores[0].argmax() == 2 and scores[1].argmax() == 5
    # the scores are log-probabilities over the whole vocabulary
    e5 = np.exp(5.0)
    assert scores[0, 2] == pytest.approx(np.log(e5 / (e5 + TASK.vocab_size - 1)), rel=1e-6)
    # no information: every label equally likely
    np.testing.assert_allclose(scores[2], np.full(8, -np.log(TASK.vocab_size)), rtol=1e-6)
    np.testing.assert_allclose(scores[3], scores[2])


def test_multi_token_candidates_sum_log_probabilities():
    model = LookupLM(TASK.vocab_size, TASK.label_tokens)
    lab = TASK.label_tokens
    prompt = build_prompt([TASK.task_token], [([3], [lab[1]]), ([4], [lab[6]])], [3])
    one = score_candidates(model, [prompt], [[lab[1]], [lab[0]]])
    two = score_candidates(model, [prompt], [[lab[1], 4], [lab[1], 3]])
    # after "... 3 lab1" the next token 4 or 3 gets a flat distribution (no earlier lab1)
    flat = -np.log(TASK.vocab_size)
    assert two[0, 0] == pytest.approx(one[0, 0] + flat, rel=1e-6)
    assert two[0, 1] == pytest.approx(one[0, 0] + flat, rel=1e-6)
    with pytest.raises(ValueError):
        score_candidates(model, [prompt], [])


def test_few_shot_accuracy_of_a_perfect_copier():
    model = LookupLM(TASK.vocab_size, TASK.label_tokens, scale=20.0)
    ep = TASK.sample(200, np.random.default_rng(7), bursty=True)
    table = few_shot_accuracy(model, TASK, ep, shots=(0, 1, 4, 15))
    rows = {r["shots"]: r for r in table["rows"]}
    assert rows[0]["n_shown"] == 0 and rows[0]["accuracy_shown"] is None
    for k in (1, 4, 15):
        assert rows[k]["accuracy_shown"] == 1.0  # it always reads the earlier pair
        assert rows[k]["shown_fraction"] == pytest.approx(ep.shown_before()[:, k].mean())
    # when nothing is shown the argmax of flat scores is label 0: right 1 time in ~8
    assert rows[0]["accuracy"] == pytest.approx(np.mean(ep.labels[:, 0] == 0))
    assert rows[15]["accuracy"] > rows[1]["accuracy"] > rows[0]["accuracy"]


# ------------------------------------------------------------------ frozen weights
def _small_gpt(seed: int = 0) -> GPT:
    return GPT(
        GPTConfig(
            vocab_size=TASK.vocab_size,
            context_length=32,
            d_model=16,
            n_layers=1,
            n_heads=2,
            dropout=0.1,
        ),
        generator=seed,
    )


def test_frozen_harness_leaves_weights_bit_for_bit_unchanged():
    model = _small_gpt()
    model.train()
    before = model.state_dict()
    ep = TASK.sample(20, np.random.default_rng(8), bursty=True)
    few_shot_accuracy(model, TASK, ep, shots=(0, 2, 15))
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert before[k].tobytes() == after[k].tobytes(), k
    assert model.training  # the mode is restored
    assert all(p.grad is None for p in model.parameters())


def test_frozen_runs_in_eval_mode_without_a_tape():
    model = _small_gpt()
    model.train()
    with frozen(model):
        assert not model.training and not tt.is_grad_enabled()
        # dropout is off: two passes agree exactly
        x = TASK.lm_batch(TASK.sample(2, np.random.default_rng(9)))[0]
        a, b = model(x)[0].numpy(), model(x)[0].numpy()
        np.testing.assert_array_equal(a, b)
        assert not model(x)[0].requires_grad
    assert model.training and tt.is_grad_enabled()


def test_frozen_catches_a_weight_update():
    model = _small_gpt()
    with pytest.raises(WeightsChangedError, match="ln_f.bias"):
        with frozen(model):
            model.ln_f.bias.data[0] += 1e-7  # even a tiny change, in place
    with pytest.raises(WeightsChangedError, match="wte.weight"):
        with frozen(model):
            model.wte.weight.data = model.wte.weight.data.copy() + 0.0  # same values: fine
            model.wte.weight.data[3, 3] = np.nextafter(model.wte.weight.data[3, 3], np.float32(1))


def test_frozen_catches_a_model_that_learns_while_scoring():
    class Cheater(LookupLM):
        def forward(self, idx, targets=None, ignore_index=-100):
            self.scale.data += 1.0  # "test-time training": not allowed
            return super().forward(idx)

    model = Cheater(TASK.vocab_size, TASK.label_tokens)
    with pytest.raises(WeightsChangedError, match="scale"):
        score_candidates(model, [[TASK.task_token, 3]], TASK.label_tokens[:, None])


def test_explicit_prompts_match_one_causal_pass():
    # scoring prompt by prompt equals reading the predictions off one pass over the whole
    # sequence (the model is causal): a check of the prompt layout
    model = _small_gpt(1)
    ep = TASK.sample(6, np.random.default_rng(10), bursty=True)
    x, _ = TASK.lm_batch(ep)
    with frozen(model):
        full = model(x)[0].numpy()[:, 1::2, :][:, :, TASK.label_tokens]
    for k in (0, 3, 15):
        prompts = [
            build_prompt(
                [TASK.task_token],
                [([a], [b + TASK.n_keys]) for a, b in zip(ep.keys[i, :k], ep.labels[i, :k])],
                [ep.keys[i, k]],
            )
            for i in range(6)
        ]
        scores = score_candidates(model, prompts, TASK.label_tokens[:, None])
        np.testing.assert_array_equal(scores.argmax(1), full[:, k].argmax(1))


# ------------------------------------------------------------------ probes of the copy task
def test_unseen_keys_and_more_distinct_keys():
    task = PairTask(unseen_keys=4)
    assert task.label_offset == 20 and task.vocab_size == 16 + 4 + 8 + 1
    np.testing.assert_array_equal(task.label_tokens, np.arange(20, 28))
    rng = np.random.default_rng(11)
    train = task.sample(2000, rng)
    assert train.keys.max() < 16  # training never draws the unseen keys
    unseen = task.sample(500, rng, keys="unseen", distinct=(2, 4))
    assert unseen.keys.min() >= 16 and unseen.keys.max() < 20
    assert _same_key_same_label(unseen.keys, unseen.labels)
    seq = task.tokens(unseen)
    assert seq[:, 2::2].min() >= 20 and seq.max() < task.vocab_size
    more = task.sample(2000, rng, distinct=(6, 10))
    distinct = np.array([np.unique(k).size for k in more.keys])
    assert distinct.max() <= 10 and distinct.min() >= 3 and distinct.mean() > 6.5
    assert (distinct > 5).mean() > 0.8  # more than training's 2-5 (16 slots rarely miss one)
    # with no unseen keys the draws are the ones of before (the default run is unchanged)
    a = PairTask().sample(50, np.random.default_rng(12))
    b = PairTask(unseen_keys=0).sample(50, np.random.default_rng(12), keys="trained")
    np.testing.assert_array_equal(a.keys, b.keys)
    with pytest.raises(ValueError, match="distinct keys"):
        task.sample(2, rng, keys="unseen", distinct=(2, 5))  # only 4 unseen keys
    with pytest.raises(ValueError, match="keys must be"):
        task.sample(2, rng, keys="new")
    with pytest.raises(ValueError, match="non-bursty"):
        task.sample(2, rng, bursty=False, keys="unseen")


# ------------------------------------------------------------------ training
def test_tiny_copy_run_beats_chance_on_shown_keys(one_kernel_thread):
    cfg = CopyConfig(
        steps=100,
        batch_size=32,
        d_model=32,
        n_layers=1,
        eval_every=50,
        eval_episodes=128,
        test_episodes=300,
        warmup_steps=10,
        lr=1e-2,
        shots=(0, 8),
        escape_threshold=0.3,
    )
    r = icl.run_copy_seed(cfg, seed=0)
    rows = {row["shots"]: row for row in r["few_shot"]}
    # 100 steps reach the "most frequent label in the context" stage (0.38-0.45 over seeds
    # 0-3): well above chance (0.125) when the key was shown, at chance when nothing was
    assert rows[8]["accuracy_shown"] > 0.25
    assert rows[0]["accuracy"] < 0.25
    assert [h["step"] for h in r["history"]] == [50, 100]
    # the escape is the first validation step above the threshold (0.3 here: reached)
    above = [h["step"] for h in r["history"] if h["acc_shown"] > 0.3]
    assert r["escape_step"] == above[0] and r["escaped"]
    assert set(r["probes"]) == {"trained_keys", "unseen_keys", "more_keys"}
    assert all(0.0 <= v <= 1.0 for v in r["probes"].values())


def test_scale_init_scales_weight_matrices_only():
    cfg = CopyConfig()
    a, b = GPT(cfg.model_config(), generator=0), GPT(cfg.model_config(), generator=0)
    icl.scale_init(b, 3.0)
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    for name, p in pa.items():
        x, y = p.numpy(), pb[name].numpy()
        if x.ndim >= 2 and "rel_bias" not in name:
            np.testing.assert_allclose(y, 3.0 * x, rtol=1e-6)
        else:  # norms, biases, relative position biases: untouched
            assert np.array_equal(x, y), name
    assert cfg.init_scale == 3.0  # the default of the experiment (docs/icl.md)


# ------------------------------------------------------------------ summaries and targets
def _fake_runs(cfg: ICLConfig) -> list[dict]:
    """Trade-off records with known accuracies: seed s adds 0.01 * s to every value; on
    validation Zipf 2 coexists best, on test Zipf 0 would (the choice must follow
    validation)."""
    base = {
        (1.0, 0.0): (0.10, 0.95),
        (1.0, 0.9): (0.90, 0.60),
        (0.0, 0.9): (0.95, 0.40),
        (2.0, 0.9): (0.70, 0.90),
    }
    val_base = dict(base)
    val_base[(2.0, 0.9)] = (0.95, 0.95)
    runs = []
    for (z, p), (icl_acc, iwl_acc) in base.items():
        for s in cfg.seeds:
            vi, vw = val_base[(z, p)]
            runs.append(
                {
                    "zipf_exponent": z,
                    "p_bursty": p,
                    "seed": s,
                    "test": {
                        "in_context": icl_acc + 0.01 * s,
                        "in_weights": iwl_acc - 0.01 * s * (p == 0.0),
                        "in_weights_uniform": iwl_acc / 2,
                    },
                    "validation": {
                        "in_context": vi,
                        "in_weights": vw,
                        "in_weights_uniform": vw / 2,
                    },
                }
            )
    return runs


def test_targets_are_paired_intervals_over_seeds(tmp_path):
    cfg = ICLConfig(
        seeds=(0, 1, 2, 3, 4), copy_seeds=(), p_bursty_grid=(0.0, 0.9), zipf_grid=(0.0, 1.0, 2.0)
    )
    runs = _fake_runs(cfg)
    summary = icl.summarize(cfg, runs, [])
    assert summary["coexist_zipf_exponent"] == 2.0  # chosen on validation
    t = {x.name.split(" (")[0]: x for x in icl.check_targets(cfg, runs, summary)}
    # in context at p 0.9: 0.90 + 0.01 s over s = 0..4: mean 0.92, sd 0.0158, t(4) 2.776
    icl_b = t["in-context accuracy, p_bursty 0.9, Zipf 1.0"]
    half = 2.7764 * np.std([0.9, 0.91, 0.92, 0.93, 0.94], ddof=1) / np.sqrt(5)
    assert icl_b.value == pytest.approx(0.92)
    assert icl_b.ci95 == pytest.approx((0.92 - half, 0.92 + half), abs=1e-4)
    assert icl_b.verdict == "met"
    # paired differences: the seed offsets cancel, so the interval has zero width
    diff = t["in-context accuracy: p_bursty 0.9 minus 0.0"]
    assert diff.value == pytest.approx(0.8) and diff.ci95 == pytest.approx((0.8, 0.8))
    dom = t["p_bursty 0.0: in-weights minus in-context accuracy"]
    # in-weights 0.95 - 0.01 s minus in-context 0.10 + 0.01 s: 0.85 - 0.02 s, mean 0.81
    assert dom.value == pytest.approx(0.81) and dom.verdict == "met"
    assert t["in-weights accuracy: p_bursty 0.0 minus 0.9"].value == pytest.approx(0.33)
    # coexistence on test at the validation's choice (Zipf 2): in-context 0.70 + 0.01 s
    # (skill 0.40 + 0.02 s), in-weights 0.90 (skill (0.90 - 1/32) / (1 - 1/32) = 0.8968)
    co = [x for x in t.values() if x.name.startswith("coexistence at Zipf 2.0")][0]
    assert co.value == pytest.approx(0.44) and co.verdict == "met"
    tables = icl.make_tables(cfg, summary, [])
    assert [r[0] for r in tables["burstiness"]["rows"]] == [0.0, 0.9]
    assert tables["zipf"]["rows"][0][1].startswith("0.970 [")
    assert "copy_escape" not in tables
    pytest.importorskip("matplotlib")
    assert icl.plot_results(cfg, {"summary": summary, "copy": []}, tmp_path / "icl.png")
    assert (tmp_path / "icl.png").read_bytes()[:4] == b"\x89PNG"


def test_copy_escape_rate_and_tables():
    cfg = ICLConfig(seeds=(), copy_seeds=tuple(range(10)), copy=CopyConfig(shots=(0, 4)))
    runs = []
    for s in range(10):
        escaped = s < 7
        runs.append(
            {
                "seed": s,
                "escaped": escaped,
                "escape_step": 1000 + 250 * s if escaped else None,
                "train_seconds": 1.0,
                "history": [],
                "few_shot": [
                    {
                        "shots": 0,
                        "accuracy": 0.125,
                        "shown_fraction": 0.0,
                        "accuracy_shown": None,
                        "accuracy_not_shown": 0.125,
                    },
                    {
                        "shots": 4,
                        "accuracy": 0.5 + 0.04 * escaped,
                        "shown_fraction": 0.75,
                        "accuracy_shown": 0.6,
                        "accuracy_not_shown": 0.12,
                    },
                ],
                "probes": {
                    "trained_keys": 0.9 if escaped else 0.45,
                    "unseen_keys": 0.3,
                    "more_keys": None,
                },
            }
        )
    summary = icl.summarize(cfg, [], runs)
    copy = summary["copy"]
    assert copy["escaped"] == 7 and copy["escape_rate"]["mean"] == pytest.approx(0.7)
    # Wilson interval of 7 of 10: [0.3968, 0.8922]
    assert copy["escape_rate"]["ci95"] == pytest.approx([0.3968, 0.8922], abs=1e-3)
    assert copy["probes"]["more_keys"] is None
    (t,) = icl.check_targets(cfg, [], summary)
    assert t.verdict == "inconclusive" and "7 of 10 seeds" in t.name
    tables = icl.make_tables(cfg, summary, runs)
    assert tables["copy_escape"]["rows"] == [[10, 7, "0.700 [0.397, 0.892]", "1750 (1000-2500)"]]
    probes = {r[0]: r for r in tables["copy_probes"]["rows"]}
    assert probes["keys as in training"][2] == "0.900 [0.900, 0.900]"  # escaped seeds only
    acc = tables["accuracy"]
    assert acc["columns"][:3] == ["condition", "prior pairs", "accuracy"]
    assert acc["rows"][1][:2] == ["copy (bursty)", 4]
    assert acc["rows"][1][2].startswith("0.528 [")


def test_config_validation():
    for bad in (
        dict(seeds=(1, 1)),
        dict(seeds=(-1,)),
        dict(seeds=(), copy_seeds=()),
        dict(p_bursty_grid=(0.0, 1.5)),
        dict(zipf_grid=(-1.0,)),
    ):
        with pytest.raises(ValueError):
            ICLConfig(**bad)
    with pytest.raises(ValueError, match="more_distinct"):
        CopyConfig(more_distinct=(4, 8))  # not more than training's 2-5
    cfg = ICLConfig()
    assert cfg.conditions() == [
        (1.0, 0.0),
        (1.0, 0.5),
        (1.0, 0.9),
        (1.0, 1.0),
        (0.0, 0.9),
        (2.0, 0.9),
    ]  # (1, 0.9) once, in both sweeps


# ------------------------------------------------------------------ the command
def test_cli_quick_run(tmp_path, capsys, one_kernel_thread):
    out = tmp_path / "run"
    argv = ["icl", "--quick", "--steps", "5", "--copy-steps", "5", "--seeds", "2"]
    argv += ["--copy-seeds", "1", "--out", str(out), "--progress", "off", "--no-plot"]
    argv += ["--threads", "1"]
    code = main([*argv, "--workers", "2"])
    assert code == 0
    text = capsys.readouterr().out
    assert "| p_bursty | in-context |" in text and "| copy (bursty) | 15 |" in text
    assert "copy task: escape rate within 5 steps" in text
    res = read_results(out)
    assert res["protocol"]["selection"] == "validation"
    assert res["protocol"]["seeds"] == [10, 11]
    m = res["metrics"]
    assert len(m["tradeoff"]) == 2 * 2 and len(m["copy"]) == 1 and m["workers"] == 2
    assert {(r["p_bursty"], r["seed"]) for r in m["tradeoff"]} == {
        (0.0, 10),
        (0.0, 11),
        (0.9, 10),
        (0.9, 11),
    }
    assert res["config"]["tradeoff"]["steps"] == 5 and res["config"]["copy"]["steps"] == 5
    assert {t["verdict"] for t in res["targets"]} <= {"met", "not met", "inconclusive"}
    assert all(len(t["ci95"]) == 2 for t in res["targets"])
    # every finished run is in runs.jsonl; a rerun with the same settings trains nothing
    lines = (out / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 5
    assert main([*argv, "--workers", "1"]) == 0
    assert "(5 taken from an earlier run)" in capsys.readouterr().out
    again = read_results(out)
    assert again["metrics"]["tradeoff"] == m["tradeoff"] and again["targets"] == res["targets"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--steps", "0"],
        ["--threads", "0"],
        ["--workers", "0"],
        ["--p-bursty", "0,1.5"],
        ["--zipf", "-1"],
        ["--copy-steps", "0"],
        ["--seeds", "0", "--copy-seeds", "0"],
    ],
)
def test_cli_bad_arguments_exit_2(argv, tmp_path, capsys):
    assert main(["icl", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinytape icl: error:") and err.count("\n") == 1
