"""RLHF (tinytape.rlhf): hand-computed losses, GAE, PPO clipping, KL estimators, exact
tables, labelers, and the whole pipeline on a tiny budget."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

import tinytape as tt
from tinytape.rlhf import exact as ex
from tinytape.rlhf.dpo import dpo_loss
from tinytape.rlhf.policy import (
    PolicyWithValue,
    clone_lm,
    exact_logprobs,
    make_lm,
    sample_responses,
    sequence_logprobs,
)
from tinytape.rlhf.ppo import (
    AdaptiveKLController,
    PPOConfig,
    PPOTrainer,
    clipped_policy_loss,
    clipped_value_loss,
    gae,
)
from tinytape.rlhf.reward import Comparisons, RewardModel, noise_ceiling, ranking_loss
from tinytape.rlhf.sft import IGNORE, lm_targets
from tinytape.rlhf.task import Labeler, Task, TaskConfig, calibrate_tau, pairwise_agreement


def logsig(z: float) -> float:
    return -math.log1p(math.exp(-z))


@pytest.fixture(scope="module")
def tiny_task() -> Task:
    return Task(TaskConfig(n_symbols=3, prompt_len=2, response_len=2, n_validation_sets=1,
                           n_test_sets=1), seed=0)


# ---------------------------------------------------------------- the task
def test_true_reward_by_hand():
    task = Task(seed=0)
    x = np.array([0, 1, 2])
    ys = np.array([[0, 1, 2],   # all 3 covered, 2 ascending pairs: 3 + 1.0
                   [2, 2, 2],   # 1 covered, 2 repeats: 1 - 2
                   [5, 0, 1],   # 2 covered, one ascending pair (0 < 1): 2 + 0.5
                   [2, 1, 0],   # 3 covered, no ascending pair
                   [7, 6, 6]])  # nothing covered, one repeat
    np.testing.assert_allclose(task.true_reward(x[None], ys), [4.0, -1.0, 2.5, 3.0, -1.0])
    table = task.true_reward_table(task.test_prompts[:2])
    assert table.shape == (2, 8 ** 3)
    i = task.response_index(np.array([0, 1, 2]))
    assert np.array_equal(task.responses[i], [0, 1, 2])


def test_sft_loss_only_on_response_tokens():
    task = Task(seed=0)
    seqs = task.join(np.array([[3, 1, 4]]), np.array([[1, 5, 2]]))
    inputs, targets = lm_targets(seqs, task, response_only=True)
    assert inputs.tolist() == [[3, 1, 4, task.sep, 1, 5]]
    assert targets.tolist() == [[IGNORE, IGNORE, IGNORE, 1, 5, 2]]
    _, full = lm_targets(seqs, task, response_only=False)
    assert full.tolist() == [[1, 4, task.sep, 1, 5, 2]]


def test_labeler_calibration_and_bradley_terry_marginals():
    deltas = np.array([0.0, 0.5, 0.5, 1.0, 2.0, -1.5])
    tau = calibrate_tau(deltas, 0.73)
    assert pairwise_agreement(deltas, tau) == pytest.approx(0.73, abs=1e-9)
    # agreement of one pair by hand: p = sigmoid(1 / 0.5) -> p^2 + (1 - p)^2
    p = 1 / (1 + math.exp(-2.0))
    assert pairwise_agreement(np.array([1.0]), 0.5) == pytest.approx(p * p + (1 - p) ** 2)
    with pytest.raises(ValueError, match="ties"):
        calibrate_tau(np.zeros(10), 0.73)
    # Plackett-Luce rankings have Bradley-Terry pairwise marginals
    task = Task(seed=0)
    x = np.array([0, 1, 2])
    ys = np.array([[0, 1, 2], [2, 1, 0], [7, 6, 6]])  # r* = 4, 3, -1
    lab = Labeler(task, 0.7, np.random.default_rng(0))
    n = 8000
    above = np.zeros((3, 3))
    for _ in range(n):
        order = lab.rank(x, ys)
        pos = np.argsort(order)
        above += pos[:, None] < pos[None, :]
    r = np.array([4.0, 3.0, -1.0])
    expected = 1 / (1 + np.exp(-(r[:, None] - r[None, :]) / 0.7))
    mask = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(above[mask] / n, expected[mask], atol=0.016)  # ~3 std


# ---------------------------------------------------------------- step 2
def test_ranking_loss_by_hand():
    task = Task(seed=0)
    comps = Comparisons(np.array([[0, 1, 2], [3, 4, 5]]),
                        [np.array([[0, 1, 2], [1, 1, 1], [2, 2, 2]]),
                         np.array([[3, 4, 5], [3, 3, 3], [4, 4, 4], [5, 5, 5]])])
    seqs, win, lose, weight, group = comps.flat(task)
    assert seqs.shape == (7, 7) and len(win) == 3 + 6
    assert win.tolist() == [0, 0, 1, 3, 3, 3, 4, 4, 5]
    assert lose.tolist() == [1, 2, 2, 4, 5, 6, 5, 6, 6]
    np.testing.assert_allclose(weight, [1 / 3] * 3 + [1 / 6] * 6)
    assert group.tolist() == [0] * 3 + [1] * 6
    # rewards of the ranked responses, best first (the model gets some pairs wrong)
    r = tt.tensor(np.array([0.5, 1.0, -0.5, 1.0, 2.0, 3.0, 4.0]), requires_grad=True)
    loss = ranking_loss(r, win, lose, weight, n_prompts=2)
    first = -(logsig(-0.5) + logsig(1.0) + logsig(1.5)) / 3
    second = -(logsig(-1) + logsig(-2) + logsig(-3) + logsig(-1) + logsig(-2) + logsig(-1)) / 6
    assert loss.item() == pytest.approx((first + second) / 2, rel=1e-12)
    loss.backward()
    # d/dr_0 of -(1/3)(log s(r0 - r1) + log s(r0 - r2)) / 2 = -(s(-(r0-r1)) + s(-(r0-r2))) / 6
    s = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    assert r.grad.numpy()[0] == pytest.approx(-(s(0.5) + s(-1.0)) / 6, rel=1e-12)


def test_reward_model_normalization_and_noise_ceiling():
    task = Task(seed=0)
    rm = RewardModel(make_lm(task, 16, 1, 2, seed=0), seed=3)
    rm.head.weight.data[...] = np.random.default_rng(0).normal(size=rm.head.weight.shape)
    seqs = task.join(task.train_prompts[:50], task.demonstrations(task.train_prompts[:50],
                                                                  np.random.default_rng(1)))
    rm.normalize_(seqs)
    r = rm.score(seqs)
    assert abs(r.mean()) < 1e-5 and r.std() == pytest.approx(1.0, abs=1e-4)
    # a noiseless-looking labeler: the true reward orders every pair as labeled
    comps = Comparisons(np.array([[0, 1, 2]]), [np.array([[0, 1, 2], [2, 1, 0], [7, 6, 6]])])
    measured, expected = noise_ceiling(comps, task, tau=0.5)
    assert measured == 1.0
    p = [1 / (1 + math.exp(-d / 0.5)) for d in (1.0, 5.0, 4.0)]
    assert expected == pytest.approx(np.mean(p))


# ---------------------------------------------------------------- step 3
def test_gae_by_hand():
    rewards = np.array([[0.0, 0.0, 1.0]])
    values = np.array([[0.5, 0.2, 0.8]])
    adv, ret = gae(rewards, values, gamma=1.0, lam=0.5)
    # delta = [0 + 0.2 - 0.5, 0 + 0.8 - 0.2, 1 - 0.8] = [-0.3, 0.6, 0.2]
    np.testing.assert_allclose(adv, [[-0.3 + 0.5 * 0.7, 0.6 + 0.5 * 0.2, 0.2]])
    np.testing.assert_allclose(ret, [[0.55, 0.9, 1.0]])
    adv, _ = gae(rewards, values, gamma=0.9, lam=0.5)
    # delta = [0.9 * 0.2 - 0.5, 0.9 * 0.8 - 0.2, 0.2] = [-0.32, 0.52, 0.2]
    np.testing.assert_allclose(adv, [[-0.32 + 0.45 * 0.61, 0.52 + 0.45 * 0.2, 0.2]])
    adv, _ = gae(rewards, values, gamma=1.0, lam=1.0)  # Monte Carlo return minus baseline
    np.testing.assert_allclose(adv, [[0.5, 0.8, 0.2]])


def test_clipped_objective_gradient_is_zero_outside_the_clip_range():
    eps = 0.2
    ratios = np.array([1.5, 0.5, 1.1, 1.5, 0.5, 0.9])
    adv = np.array([1.0, -2.0, 1.0, -1.0, 3.0, -0.5])
    old = np.array([-1.0, -2.0, -0.5, -1.5, -0.7, -1.2])
    logp = tt.tensor(old + np.log(ratios), requires_grad=True)
    loss, clipfrac = clipped_policy_loss(logp, old, adv, eps)
    clipped_r = np.clip(ratios, 1 - eps, 1 + eps)
    expected = np.maximum(-adv * ratios, -adv * clipped_r).mean()
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert clipfrac == pytest.approx(2 / 6)
    loss.backward()
    g = logp.grad.numpy()
    # ratio 1.5 with A > 0 and ratio 0.5 with A < 0: clipped, no gradient at all
    assert g[0] == 0.0 and g[1] == 0.0
    # elsewhere d/dlogp (-A ratio) / n = -A ratio / n
    for i in (2, 3, 4, 5):
        assert g[i] == pytest.approx(-adv[i] * ratios[i] / 6, rel=1e-12)


def test_clipped_value_loss_by_hand():
    v = tt.tensor(np.array([1.0, 0.0, 0.5]), requires_grad=True)
    old, ret = np.array([0.5, 0.5, 0.5]), np.array([2.0, 0.0, 0.0])
    loss = clipped_value_loss(v, old, ret, 0.2)
    # 1: max((1-2)^2, (0.7-2)^2) = 1.69; 2: max(0, (0.3)^2) = 0.09; 3: max(0.25, 0.25)
    assert loss.item() == pytest.approx(0.5 * (1.69 + 0.09 + 0.25) / 3, rel=1e-12)


def test_adaptive_kl_controller():
    ctl = AdaptiveKLController(0.1, target=2.0, horizon=100)
    ctl.update(4.0, 10)  # error clipped to +0.2
    assert ctl.value == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))
    ctl.update(1.8, 50)  # error -0.1
    assert ctl.value == pytest.approx(0.1 * 1.02 * (1 - 0.1 * 0.5))


def test_dpo_loss_by_hand():
    pw = tt.tensor(np.array([-1.0, -2.0]), requires_grad=True)
    pl = tt.tensor(np.array([-3.0, -1.0]), requires_grad=True)
    rw, rl = np.array([-1.5, -2.0]), np.array([-2.5, -1.5])
    loss = dpo_loss(pw, pl, rw, rl, beta=0.5, weight=np.array([1.0, 1.0]), n_prompts=2)
    # margins: (-1 + 3) - (-1.5 + 2.5) = 1; (-2 + 1) - (-2 + 1.5) = -0.5
    assert loss.item() == pytest.approx(-(logsig(0.5) + logsig(-0.25)) / 2, rel=1e-12)


# ---------------------------------------------------------------- exact tables and KL
def test_kl_estimators_against_exact_values():
    p = np.array([0.5, 0.3, 0.2])
    q = np.array([0.2, 0.5, 0.3])
    kl = float((p * np.log(p / q)).sum())
    assert ex.exact_kl(np.log(p)[None], np.log(q)[None])[0] == pytest.approx(kl, rel=1e-12)
    k = ex.kl_estimators(np.log(p), np.log(q))
    # k1 and k3 are unbiased: their exact expectations under p are the KL
    assert (p * k["k1"]).sum() == pytest.approx(kl, rel=1e-12)
    assert (p * k["k3"]).sum() == pytest.approx(kl, rel=1e-12)
    assert (k["k3"] >= 0).all() and (k["k1"] < 0).any()
    # k2 is biased: E[(log r)^2] / 2 is not the KL here
    assert abs((p * k["k2"]).sum() - kl) > 1e-3
    # Monte Carlo estimates converge to the exact value
    rng = np.random.default_rng(0)
    x = rng.choice(3, size=200_000, p=p)
    ks = ex.kl_estimators(np.log(p[x]), np.log(q[x]))
    assert ks["k1"].mean() == pytest.approx(kl, abs=0.01)
    assert ks["k3"].mean() == pytest.approx(kl, abs=0.01)
    assert ks["k3"].std() < ks["k1"].std()


def test_held_out_symbol_sets_are_disjoint_and_complete():
    task = Task(seed=3)
    sets = {k: {tuple(sorted(p)) for p in prompts} for k, prompts in
            (("train", task.train_prompts), ("validation", task.val_prompts),
             ("test", task.test_prompts))}
    assert not sets["train"] & sets["validation"] and not sets["train"] & sets["test"]
    assert not sets["validation"] & sets["test"]
    assert {len(v) for v in sets.values()} == {38, 8, 10}  # C(8, 3) = 56 sets
    assert sets["test"] == set(task.symbol_sets["test"])
    # every ordering of a held-out set is a held-out prompt: 3! = 6 per set, no duplicates
    assert len(task.test_prompts) == 60 == len({tuple(p) for p in task.test_prompts})
    assert len(task.train_prompts) + len(task.val_prompts) + len(task.test_prompts) == 336
    # the true reward depends on the set only: the orderings of one set share their table
    a, b = [p for p in task.test_prompts if tuple(sorted(p)) == task.symbol_sets["test"][0]][:2]
    np.testing.assert_array_equal(task.true_reward_table(a[None]), task.true_reward_table(b[None]))
    other = Task(seed=4)
    assert set(other.symbol_sets["test"]) != sets["test"]  # a new split per seed
    with pytest.raises(ValueError, match="cannot give 50 validation and 10 test sets"):
        TaskConfig(n_validation_sets=50)


def test_best_of_n_by_hand():
    ref = np.log(np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]))
    proxy = np.array([[0.0, 1.0, 2.0],    # the best of 2 is y2 unless both miss it
                      [0.0, 1.0, 1.0]])   # y1 and y2 tie: they share F^2 in proportion
    p = np.exp(ex.best_of_n_logp(ref, proxy, 2))
    np.testing.assert_allclose(p[0], [0.25, 0.8 ** 2 - 0.25, 1 - 0.8 ** 2])
    np.testing.assert_allclose(p[1], [0.25, 0.75 * 0.6, 0.75 * 0.4])
    np.testing.assert_allclose(np.exp(ex.best_of_n_logp(ref, proxy, 1)), np.exp(ref))
    # against sampling: the best (by proxy) of n draws, ties broken by draw order
    rng = np.random.default_rng(0)
    draws = rng.choice(3, size=(100_000, 5), p=[0.5, 0.3, 0.2])
    best = draws[np.arange(len(draws)), np.argmax(proxy[1][draws], axis=1)]
    freq = np.bincount(best, minlength=3) / len(draws)
    np.testing.assert_allclose(freq, np.exp(ex.best_of_n_logp(ref, proxy, 5))[1], atol=0.005)
    with pytest.raises(ValueError, match="n >= 1"):
        ex.best_of_n_logp(ref, proxy, 0)
    with pytest.raises(ValueError, match="same shape"):
        ex.best_of_n_logp(ref, proxy[:, :2], 2)


def test_best_of_n_kl_meets_its_closed_form_without_atoms():
    """log n - (n - 1)/n is the KL when no response has noticeable mass, an upper bound
    otherwise (a discrete reference: here one response holds half the mass)."""
    m = 200_000
    ref = np.full((1, m), -math.log(m))
    proxy = np.random.default_rng(1).permutation(m)[None].astype(float)
    for n in (2, 4, 16):
        kl = ex.exact_kl(ex.best_of_n_logp(ref, proxy, n), ref)[0]
        assert kl == pytest.approx(ex.best_of_n_kl_bound(n), abs=1e-3)
    lumpy = np.log(np.array([[0.5] + [0.5 / 99] * 99]))
    for n in (2, 16, 256):
        kl = ex.exact_kl(ex.best_of_n_logp(lumpy, proxy[:, :100], n), lumpy)[0]
        assert 0 < kl < ex.best_of_n_kl_bound(n)


def test_optimum_at_kl_beats_best_of_n_at_the_same_kl():
    rng = np.random.default_rng(2)
    ref = np.log(rng.dirichlet(np.ones(40), size=5))
    r = rng.normal(size=(5, 40))
    for n in (2, 8, 64):
        bon = ex.best_of_n_logp(ref, r, n)
        kl = ex.exact_kl(bon, ref).mean()
        opt = ex.optimum_at_kl(ref, r, kl)
        assert ex.exact_kl(opt["logp"], ref).mean() == pytest.approx(kl, abs=1e-5)
        e_opt = (np.exp(opt["logp"]) * r).sum(-1).mean()
        assert e_opt >= (np.exp(bon) * r).sum(-1).mean() - 1e-9
    beyond = ex.optimum_at_kl(ref, r, 1e3)  # past the argmax's KL: the argmax
    assert beyond["beta"] == 0.0
    np.testing.assert_allclose(np.exp(beyond["logp"]).argmax(-1), r.argmax(-1))


def test_win_rate_and_optimum_by_hand():
    true = np.array([[1.0, 2.0, 2.0]])
    base = np.log(np.array([[0.5, 0.25, 0.25]]))
    always_2 = np.log(np.array([[1e-300, 1e-300, 1.0]]))
    # beats response 0 (prob 0.5), ties responses 1 and 2 (prob 0.5, counted half)
    assert ex.win_rate(always_2, base, true)[0] == pytest.approx(0.75)
    assert ex.win_rate(base, base, true)[0] == pytest.approx(0.5)
    r = np.array([[0.0, 1.0, -1.0]])
    beta = 0.5
    opt = ex.optimal_logp(base, r, beta)
    w = np.array([0.5, 0.25 * math.e ** 2, 0.25 * math.e ** -2])
    np.testing.assert_allclose(np.exp(opt[0]), w / w.sum())
    best = ex.optimal_objective(base, r, beta)
    assert best == pytest.approx(beta * math.log(w.sum()))
    s = ex.summarize(opt, base, r, true, beta)
    assert s["objective"] == pytest.approx(best, rel=1e-10)
    rng = np.random.default_rng(0)
    for _ in range(20):  # no other policy does better
        other = np.log(rng.dirichlet(np.ones(3)))[None]
        assert ex.summarize(other, base, r, true, beta)["objective"] < best
    argmax = np.exp(ex.optimal_logp(base, r, 0.0))
    np.testing.assert_allclose(argmax, [[0.0, 1.0, 0.0]])


def test_exact_logprobs_match_the_model_and_the_chain_rule(tiny_task):
    task = tiny_task
    lm = make_lm(task, 16, 1, 2, seed=1)
    ref = make_lm(task, 16, 1, 2, seed=2)
    prompts = np.concatenate([task.train_prompts, task.test_prompts])[:3]
    for temperature in (1.0, 0.7):
        table = exact_logprobs(lm, prompts, task, temperature)
        assert table.shape == (3, 9)
        np.testing.assert_allclose(np.exp(table).sum(axis=1), 1.0, atol=1e-6)
        seqs = task.join(np.repeat(prompts, 9, axis=0), np.tile(task.responses, (3, 1)))
        with tt.no_grad():
            direct = sequence_logprobs(lm, seqs, task, temperature).numpy().sum(axis=1)
        np.testing.assert_allclose(table.ravel(), direct, atol=1e-5)
    # sequence KL = sum over steps of the expected per-step KL (chain rule)
    lp, lq = exact_logprobs(lm, prompts, task), exact_logprobs(ref, prompts, task)
    kl_seq = ex.exact_kl(lp, lq)
    p1 = np.exp(lp).reshape(3, 3, 3).sum(axis=2)  # P(y1)
    q1 = np.exp(lq).reshape(3, 3, 3).sum(axis=2)
    p2 = np.exp(lp).reshape(3, 3, 3) / p1[:, :, None]  # P(y2 | y1)
    q2 = np.exp(lq).reshape(3, 3, 3) / q1[:, :, None]
    chain = (p1 * np.log(p1 / q1)).sum(1) + (p1 * (p2 * np.log(p2 / q2)).sum(2)).sum(1)
    np.testing.assert_allclose(kl_seq, chain, rtol=1e-6)


def test_sampling_follows_the_tempered_policy(tiny_task):
    task = tiny_task
    lm = make_lm(task, 16, 1, 2, seed=1)
    lm.wte.weight.data[...] *= 30  # a policy far from uniform
    prompt = task.train_prompts[:1]
    for temperature in (1.0, 0.5):
        p = np.exp(exact_logprobs(lm, prompt, task, temperature)[0])
        ys = sample_responses(lm, np.repeat(prompt, 20000, axis=0), task, temperature,
                              np.random.default_rng(0))
        freq = np.bincount(task.response_index(ys), minlength=9) / 20000
        np.testing.assert_allclose(freq, p, atol=0.012)


def test_ppo_rollout_and_training_agree_at_the_first_update(tiny_task):
    """Temperature applied alike in rollout and training, dropout off: ratio 1 at first."""
    task = tiny_task
    lm = make_lm(task, 16, 1, 2, seed=1)
    cfg = PPOConfig(rollout_size=32, minibatch_size=32, epochs=1, temperature=0.7)
    trainer = PPOTrainer(PolicyWithValue(lm), clone_lm(lm), lambda s: np.zeros(len(s)), task,
                         task.train_prompts, cfg, np.random.default_rng(0))
    batch = trainer.rollout()
    assert np.abs(batch["kl"]).max() < 1e-5  # the reference is a copy
    logp_all, values = trainer.policy(batch["seqs"], task, 0.7)
    logp = logp_all.numpy()[np.arange(32)[:, None], np.arange(2)[None], batch["responses"]]
    np.testing.assert_allclose(logp, batch["logp"], atol=1e-6)
    stats = trainer.update(batch)
    assert stats["clipfrac"] == 0.0 and stats["approx_kl"] < 1e-10


# ---------------------------------------------------------------- the experiment
def tiny_config(**over):
    from tinytape.experiments.rlhf import RLHFConfig

    c = RLHFConfig.quick(seeds=(1, 2))
    return replace(c, **{**dict(
        task=TaskConfig(n_symbols=5, prompt_len=2, response_len=2, n_validation_sets=2,
                        n_test_sets=2, web_relevance=0.9),
        d_model=16, n_layers=1, n_heads=2, pretrain_steps=20, sft_steps=20,
        rankings_per_prompt=2, rm_epochs=2, k_range=(4, 5), small_rm_rankings=(6,),
        ppo=PPOConfig(iterations=2, rollout_size=32, minibatch_size=16, epochs=1),
        ppo_target_kls=(1.0, 3.0), dpo_betas=(0.1, 0.5), top_sft_steps=5,
        best_of_n=(2, 4), overopt_n=(1, 2, 8), frontier_betas=(1.0, 0.1, 0.0), workers=1),
        **over})


def test_choices_are_made_on_validation_only():
    from tinytape.experiments.rlhf import choose_on_validation

    c = tiny_config()

    def pol(val_win, val_kl, val_frac, test_win):
        row = {"win": val_win, "kl": val_kl, "fraction_of_gain": val_frac}
        return {"validation": row, "test": {"win": test_win, "kl": 0.0,
                                            "fraction_of_gain": 1.0 - val_frac}}

    policies = {"PPO, KL target 1": pol(0.7, 1.0, 0.9, 0.99),
                "PPO, KL target 3": pol(0.8, 7.0, 0.95, 0.5),   # over the KL limit
                "DPO, beta 0.1": pol(0.6, 1.0, 0.7, 0.9),
                "DPO, beta 0.5": pol(0.65, 0.5, 0.8, 0.1),
                "best-of-2": pol(0.55, 0.3, 0.6, 0.5), "best-of-4": pol(0.6, 0.7, 0.5, 0.5)}
    chosen = choose_on_validation(policies, c)
    assert chosen == {"PPO": "PPO, KL target 1", "DPO": "DPO, beta 0.5",
                      "PPO frontier": "PPO, KL target 3", "DPO frontier": "DPO, beta 0.5",
                      "best-of-n frontier": "best-of-2"}


def test_gao_fit_recovers_its_parameters():
    from tinytape.experiments.rlhf import gao_fit

    d = np.linspace(0.0, 3.0, 12)
    alpha, beta = gao_fit(d, d * (1.2 - 0.3 * d))
    assert alpha == pytest.approx(1.2) and beta == pytest.approx(0.3)


def test_experiment_on_a_tiny_budget(tmp_path, capsys):
    from tinytape.experiments.protocol import mean_interval, paired_interval, read_results
    from tinytape.experiments.rlhf import run_rlhf

    c = tiny_config()
    results = run_rlhf(c, out_dir=str(tmp_path), plots=False)
    out = capsys.readouterr().out
    assert "fraction of optimum" in out and "target PPO win rate" in out
    saved = read_results(tmp_path)
    assert saved["experiment"] == "rlhf" and saved["protocol"]["selection"] == "validation"
    assert saved["protocol"]["seeds"] == [1, 2]
    m = saved["metrics"]
    runs = m["per_seed"]
    for run in runs:
        sft = run["policies"]["SFT"]["test"]
        assert sft["kl"] == pytest.approx(0.0, abs=1e-9) and sft["win"] == pytest.approx(0.5)
        assert sft["fraction_of_optimum"] == pytest.approx(1.0)
        assert sft["fraction_of_gain"] == 0.0
        for name, p in run["policies"].items():
            for split in ("validation", "test"):
                row = p[split]
                assert 0.0 <= row["win"] <= 1.0 and row["kl"] >= -1e-9
                # nothing beats the exact true-reward optimum at its own KL
                assert row["true"] <= row["optimum_true"] + 1e-6, name
                assert row["fraction_of_gain"] <= 1.0 + 1e-6, name
        for curve in run["overoptimization"].values():
            assert curve[0]["n"] == 1 and curve[0]["kl"] == pytest.approx(0.0, abs=1e-9)
            assert curve[0]["true"] == pytest.approx(sft["true"])
            for row in curve:
                assert row["kl"] <= row["kl_bound"] + 1e-9
        assert set(run["reward_models"]) == {"6", str(run["rankings"])}
        assert set(run["choices"]) == {"PPO", "DPO", "PPO frontier", "DPO frontier",
                                       "best-of-n frontier"}
    # the targets' intervals are those of the per-seed values, chosen per seed on validation
    ppo_win = [r["policies"][r["choices"]["PPO"]]["test"]["win"] for r in runs]
    t = saved["targets"][0]
    assert t["name"].startswith("PPO win rate")
    iv = mean_interval(ppo_win)
    assert t["value"] == pytest.approx(iv.mean) and t["ci95"] == pytest.approx([iv.lo, iv.hi])
    assert t["verdict"] == ("met" if iv.lo > 0.65 else "not met" if iv.hi < 0.65
                            else "inconclusive")
    top = [r["policies"]["SFT on top-ranked"]["test"]["true"] for r in runs]
    ppo_true = [r["policies"][r["choices"]["PPO"]]["test"]["true"] for r in runs]
    last = saved["targets"][-1]
    assert last["value"] == pytest.approx(paired_interval(ppo_true, top).mean)
    assert len(saved["targets"]) == 10
    assert {"methods", "frontier", "reward_model", "overoptimization"} == set(saved["tables"])
    assert saved["tables"]["methods"]["columns"][:2] == ["method", "win vs SFT"]
    assert [b["n"] for b in m["best_of_n"]] == [2, 4]
    assert {"true reward", "reward model"} == set(m["frontier"]["optimum"])
    assert results["targets"][0].value == pytest.approx(t["value"])


def test_seeds_in_worker_processes_give_the_same_numbers():
    from tinytape.experiments.rlhf import run_seeds

    c = tiny_config(seeds=(3, 4), pretrain_steps=5, sft_steps=5, rm_epochs=1,
                    ppo_target_kls=(1.0,), dpo_betas=(0.1,))
    alone = run_seeds(c, log=lambda s: None)
    pooled = run_seeds(replace(c, workers=2), log=lambda s: None)
    for a, b in zip(alone, pooled):
        assert a["seed"] == b["seed"]
        for name in a["policies"]:
            for key, value in a["policies"][name]["test"].items():
                assert b["policies"][name]["test"][key] == pytest.approx(value, rel=1e-9), name


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "1"], "--seeds: seeds must be at least 2"),
    (["--target-kls", "1,-1"], "--target-kls: target_kls must be positive"),
    (["--dpo-betas", "0"], "--dpo-betas: dpo_betas must be positive"),
    (["--temperature", "0"], "--temperature: temperature must be positive"),
    (["--ppo-iterations", "0"], "--ppo-iterations: ppo_iterations must be at least 1"),
    (["--workers", "0"], "--workers: workers must be at least 1"),
    (["--best-of-n", "0,2"], "--best-of-n: best_of_n must all be >= 1"),
    (["--threads", "0"], "--threads must be at least 1"),
])
def test_cli_rejects_bad_arguments(capsys, argv, message):
    from tinytape.cli import main

    assert main(["rlhf", *argv]) == 2
    assert message in capsys.readouterr().err
