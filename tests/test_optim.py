"""Optimizers, lr schedules and gradient clipping (tinytape.optim).

Oracle tests run the same steps in PyTorch (skipped if it is not installed). The
others check hand-computed steps, a textbook numpy reference, exact resume from a
state_dict, and the validation errors.

Tolerances against PyTorch, after 20 steps:
- float64: rtol 1e-12, atol 1e-13. Both libraries do the same operations in the same
  order, but torch's vectorized CPU kernels fuse some multiply-adds (FMA: one
  rounding instead of two), so each step may differ by an ulp or so (~1e-16). The
  recurrences do not amplify that (every factor is <= 1), so 20 steps stay far inside
  1e-12. The atol is for entries that pass close to zero, where relative error says
  nothing (1e-13 is ~500 ulp of 1). Observed: <= ~1e-15.
- float32: rtol 1e-5, atol 1e-5. The same reasoning with u = 2**-24 ~ 6e-8: up to ~8
  roundings per element and step, any of which may differ by an ulp, times 20 steps,
  is ~1e-5 relative to the magnitudes (params and buffers of order 1-10).
  Observed: ~5e-7.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import tinytape as tt
from tinytape.optim import (
    SGD,
    Adam,
    AdamW,
    LambdaLR,
    StepLR,
    WarmupCosineLR,
    clip_grad_norm_,
    param_groups_for_weight_decay,
)

TOL = {np.float64: dict(rtol=1e-12, atol=1e-13), np.float32: dict(rtol=1e-5, atol=1e-5)}
SHAPES = [(4, 3), (5,), (), (2, 3, 2)]
STEPS = 20


def _torch():
    return pytest.importorskip("torch")


def _params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _grads(dtype, steps=STEPS, seed=1):
    """Per step, one gradient per parameter; parameter 2 has none on every 4th step."""
    rng = np.random.default_rng(seed)
    return [[None if (k == 2 and i % 4 == 3) else rng.standard_normal(s).astype(dtype)
             for k, s in enumerate(SHAPES)] for i in range(steps)]


def _run_tt(opt_cls, arrays, grads, groups=None, **kw):
    ps = [tt.tensor(a, requires_grad=True) for a in arrays]
    spec = ps if groups is None else [dict(g, params=[ps[i] for i in g["params"]])
                                      for g in groups]
    opt = opt_cls(spec, **kw)
    for step in grads:
        for p, g in zip(ps, step):
            p.grad = None if g is None else tt.tensor(g)
        opt.step()
    return [p.data for p in ps]


def _run_torch(opt_cls, arrays, grads, groups=None, **kw):
    torch = _torch()
    ps = [torch.tensor(a, requires_grad=True) for a in arrays]
    spec = ps if groups is None else [dict(g, params=[ps[i] for i in g["params"]])
                                      for g in groups]
    opt = opt_cls(spec, foreach=False, **kw)
    for step in grads:
        for p, g in zip(ps, step):
            p.grad = None if g is None else torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in ps]


def _compare(ours, theirs, dtype):
    for a, b in zip(ours, theirs):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, b, **TOL[dtype])


DTYPES = [np.float64, np.float32]

SGD_CONFIGS = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.05, momentum=0.9),
    "nesterov": dict(lr=0.05, momentum=0.9, nesterov=True),
    "weight_decay": dict(lr=0.1, weight_decay=0.05),
    "dampening": dict(lr=0.05, momentum=0.8, dampening=0.3),
    "all": dict(lr=0.03, momentum=0.7, weight_decay=0.01, nesterov=True, maximize=True),
}

ADAM_CONFIGS = {
    "default": dict(),
    "lr_betas": dict(lr=0.05, betas=(0.8, 0.95)),
    "weight_decay": dict(lr=0.01, weight_decay=0.1),
    "amsgrad": dict(lr=0.01, amsgrad=True),
    "amsgrad_wd_eps": dict(lr=0.02, weight_decay=0.05, amsgrad=True, eps=1e-3),
    "small_beta1": dict(lr=0.01, betas=(0.3, 0.5)),  # torch's other lerp branch
    "maximize": dict(lr=0.01, maximize=True),
}

ADAMW_CONFIGS = {
    "default": dict(),
    "strong_decay": dict(lr=0.01, weight_decay=0.5),
    "amsgrad": dict(lr=0.01, weight_decay=0.1, amsgrad=True),
    "small_beta1": dict(lr=0.01, betas=(0.3, 0.5), weight_decay=0.1),
}


# ------------------------------------------------------------ against PyTorch
OPTIMIZER_CASES = [(cls, name, kw) for cls, configs in
                   ((SGD, SGD_CONFIGS), (Adam, ADAM_CONFIGS), (AdamW, ADAMW_CONFIGS))
                   for name, kw in configs.items()]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("cls,name,kw", OPTIMIZER_CASES,
                         ids=[f"{c.__name__}-{n}" for c, n, _ in OPTIMIZER_CASES])
def test_optimizer_matches_torch(cls, name, kw, dtype):
    torch = _torch()
    arrays, grads = _params(dtype), _grads(dtype)
    _compare(_run_tt(cls, arrays, grads, **kw),
             _run_torch(getattr(torch.optim, cls.__name__), arrays, grads, **kw), dtype)


@pytest.mark.parametrize("opt_name", ["SGD", "Adam", "AdamW"])
def test_param_groups_with_their_own_options_match_torch(opt_name):
    torch = _torch()
    groups = {
        "SGD": [dict(params=[0, 2], lr=0.2, momentum=0.5), dict(params=[1, 3], nesterov=True)],
        "Adam": [dict(params=[0, 2], lr=0.05, amsgrad=True), dict(params=[1, 3])],
        "AdamW": [dict(params=[0, 3], weight_decay=0.2), dict(params=[1, 2], weight_decay=0.0)],
    }[opt_name]
    kw = {"SGD": dict(lr=0.05, momentum=0.9), "Adam": dict(lr=0.01, betas=(0.85, 0.99)),
          "AdamW": dict(lr=0.02)}[opt_name]
    arrays, grads = _params(np.float64), _grads(np.float64)
    ours = _run_tt(getattr(tt.optim, opt_name), arrays, grads, groups=groups, **kw)
    theirs = _run_torch(getattr(torch.optim, opt_name), arrays, grads, groups=groups, **kw)
    _compare(ours, theirs, np.float64)


def test_step_lr_matches_torch_exactly():
    torch = _torch()
    p, tp = tt.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    opt = SGD([{"params": [p], "lr": 0.1}], lr=0.1)
    topt = torch.optim.SGD([{"params": [tp], "lr": 0.1}], lr=0.1)
    sched = StepLR(opt, step_size=3, gamma=0.7)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=3, gamma=0.7)
    for _ in range(40):
        assert sched.get_last_lr() == tsched.get_last_lr()
        assert opt.param_groups[0]["lr"] == topt.param_groups[0]["lr"]
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
    assert sched.last_epoch == tsched.last_epoch == 40


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("norm_type", [2.0, math.inf, 1.0, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])  # clipping, and a coefficient clamped to 1
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype):
    torch = _torch()
    rng = np.random.default_rng(7)
    grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ps = [tt.tensor(np.zeros(s, dtype), requires_grad=True) for s in SHAPES]
    tps = [torch.zeros(s, dtype=getattr(torch, np.dtype(dtype).name), requires_grad=True)
           for s in SHAPES]
    for p, tp, g in zip(ps, tps, grads):
        p.grad, tp.grad = tt.tensor(g), torch.tensor(g)
    ps[1].grad = tps[1].grad = None  # skipped by both
    total = clip_grad_norm_(ps, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type=norm_type, foreach=False)
    assert isinstance(total, float)
    tol = TOL[dtype]
    np.testing.assert_allclose(total, ttotal.item(), **tol)
    for p, tp in zip(ps, tps):
        assert (p.grad is None) == (tp.grad is None)
        if p.grad is not None:
            assert p.grad.dtype == np.dtype(dtype)
            np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), **tol)


# ------------------------------------------------------------ hand-computed steps
def test_sgd_momentum_two_steps_by_hand():
    p = tt.tensor([1.0, -2.0], dtype=np.float64, requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9)
    p.grad = tt.tensor([0.5, 1.0], dtype=np.float64)
    opt.step()  # buf = g1 = [0.5, 1];  p = [1 - 0.05, -2 - 0.1]
    np.testing.assert_allclose(p.data, [0.95, -2.1], rtol=1e-15)
    p.grad = tt.tensor([1.0, -1.0], dtype=np.float64)
    opt.step()  # buf = 0.9 * [0.5, 1] + [1, -1] = [1.45, -0.1];  p -= 0.1 * buf
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [1.45, -0.1], rtol=1e-15)
    np.testing.assert_allclose(p.data, [0.805, -2.09], rtol=1e-15)


def test_sgd_nesterov_two_steps_by_hand():
    p = tt.tensor([1.0, -2.0], dtype=np.float64, requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    p.grad = tt.tensor([0.5, 1.0], dtype=np.float64)
    opt.step()  # buf = g1;  d = g1 + 0.9 * buf = [0.95, 1.9]
    np.testing.assert_allclose(p.data, [0.905, -2.19], rtol=1e-15)
    p.grad = tt.tensor([1.0, -1.0], dtype=np.float64)
    opt.step()  # buf = [1.45, -0.1];  d = g2 + 0.9 * buf = [2.305, -1.09]
    np.testing.assert_allclose(p.data, [0.6745, -2.081], rtol=1e-15)


def test_adam_first_step_by_hand():
    # At t = 1 the bias corrections cancel: m_hat = g, v_hat = g**2, so the step is
    # lr * g / (|g| + eps): lr in the direction of -sign(g), and 0 where g = 0.
    p = tt.tensor([1.0, -2.0, 0.5], dtype=np.float64, requires_grad=True)
    opt = Adam([p], lr=0.1)
    p.grad = tt.tensor([0.5, -4.0, 0.0], dtype=np.float64)
    opt.step()
    want = [1.0 - 0.1 * 0.5 / (0.5 + 1e-8), -2.0 + 0.1 * 4.0 / (4.0 + 1e-8), 0.5]
    np.testing.assert_allclose(p.data, want, rtol=1e-15)
    np.testing.assert_allclose(p.data, [0.9, -1.9, 0.5], rtol=1e-7)
    st = opt.state[p]
    assert st["step"] == 1
    np.testing.assert_allclose(st["exp_avg"], [0.05, -0.4, 0.0], rtol=1e-15)
    np.testing.assert_allclose(st["exp_avg_sq"], [0.00025, 0.016, 0.0], rtol=1e-13)


def test_adamw_first_step_by_hand():
    p = tt.tensor([1.0, -2.0], dtype=np.float64, requires_grad=True)
    opt = AdamW([p], lr=0.1, weight_decay=0.5)
    p.grad = tt.tensor([0.5, -4.0], dtype=np.float64)
    opt.step()  # p * (1 - 0.05), then the t = 1 Adam step
    want = [0.95 - 0.1 * 0.5 / (0.5 + 1e-8), -1.9 + 0.1 * 4.0 / (4.0 + 1e-8)]
    np.testing.assert_allclose(p.data, want, rtol=1e-15)


def _textbook_adam(arrays, grads, lr, b1, b2, eps, wd=0.0, decoupled=False, amsgrad=False):
    """Adam as in the paper (and PyTorch's docs), in plain numpy."""
    ps = [a.copy() for a in arrays]
    m = [np.zeros_like(a) for a in ps]
    v = [np.zeros_like(a) for a in ps]
    vmax = [np.zeros_like(a) for a in ps]
    t = [0] * len(ps)
    for step in grads:
        for k, g in enumerate(step):
            if g is None:
                continue
            t[k] += 1
            if wd and decoupled:
                ps[k] = ps[k] - lr * wd * ps[k]
            elif wd:
                g = g + wd * ps[k]
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g**2
            vmax[k] = np.maximum(vmax[k], v[k])
            m_hat = m[k] / (1 - b1 ** t[k])
            v_hat = (vmax[k] if amsgrad else v[k]) / (1 - b2 ** t[k])
            ps[k] = ps[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return ps


def _textbook_sgd(arrays, grads, lr, momentum=0.0, dampening=0.0, wd=0.0, nesterov=False):
    ps = [a.copy() for a in arrays]
    bufs: list = [None] * len(ps)
    for step in grads:
        for k, g in enumerate(step):
            if g is None:
                continue
            g = g + wd * ps[k]
            if momentum:
                bufs[k] = g if bufs[k] is None else momentum * bufs[k] + (1 - dampening) * g
                g = g + momentum * bufs[k] if nesterov else bufs[k]
            ps[k] = ps[k] - lr * g
    return ps


@pytest.mark.parametrize("kw", [dict(), dict(wd=0.1), dict(wd=0.1, decoupled=True),
                                dict(amsgrad=True), dict(wd=0.05, decoupled=True, amsgrad=True)],
                         ids=["plain", "l2", "decoupled", "amsgrad", "adamw_amsgrad"])
def test_adam_matches_textbook_formula(kw):
    arrays, grads = _params(np.float64), _grads(np.float64)
    want = _textbook_adam(arrays, grads, 0.01, 0.9, 0.999, 1e-8, **kw)
    cls = AdamW if kw.get("decoupled") else Adam
    got = _run_tt(cls, arrays, grads, lr=0.01, weight_decay=kw.get("wd", 0.0),
                  amsgrad=kw.get("amsgrad", False))
    _compare(got, want, np.float64)


@pytest.mark.parametrize("kw", [dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True),
                                dict(momentum=0.8, dampening=0.3, wd=0.05)],
                         ids=["plain", "momentum", "nesterov", "dampening_wd"])
def test_sgd_matches_textbook_formula(kw):
    arrays, grads = _params(np.float64), _grads(np.float64)
    want = _textbook_sgd(arrays, grads, 0.05, **kw)
    kw = dict(kw)
    kw["weight_decay"] = kw.pop("wd", 0.0)
    _compare(_run_tt(SGD, arrays, grads, lr=0.05, **kw), want, np.float64)


def test_clip_grad_norm_by_hand():
    a = tt.zeros(2, dtype=np.float64, requires_grad=True)
    b = tt.zeros((), dtype=np.float64, requires_grad=True)
    a.grad, b.grad = tt.tensor([3.0, 0.0], dtype=np.float64), tt.tensor(4.0, dtype=np.float64)
    total = clip_grad_norm_([a, b], max_norm=1.0)
    assert total == 5.0
    scale = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(a.grad.data, [3.0 * scale, 0.0], rtol=1e-15)
    np.testing.assert_allclose(b.grad.data, 4.0 * scale, rtol=1e-15)
    assert clip_grad_norm_([a, b], max_norm=1.0, norm_type="inf") == pytest.approx(4 * scale)
    # below max_norm nothing changes; no grads at all gives 0
    before = a.grad.data.copy()
    assert clip_grad_norm_(a, max_norm=10.0) == pytest.approx(3 * scale)
    np.testing.assert_array_equal(a.grad.data, before)
    assert clip_grad_norm_([tt.zeros(2, requires_grad=True)], 1.0) == 0.0


def test_clip_grad_norm_nonfinite():
    p = tt.zeros(2, dtype=np.float64, requires_grad=True)
    p.grad = tt.tensor([np.inf, 1.0], dtype=np.float64)
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert clip_grad_norm_([p], 1.0) == math.inf  # scaled by 0 (and inf * 0 = nan), as torch
    assert p.grad.data[1] == 0.0


# ------------------------------------------------------------ schedules
def test_warmup_cosine_table():
    p = tt.zeros(1, requires_grad=True)
    opt = SGD([p], lr=1.0)
    sched = WarmupCosineLR(opt, warmup_steps=4, total_steps=12, min_lr=0.1)
    # warm-up: t/4; then 0.1 + 0.9 * (1 + cos(pi * (t - 4) / 8)) / 2; then 0.1
    c1, c2, c3 = math.cos(math.pi / 8), math.sqrt(0.5), math.cos(3 * math.pi / 8)
    table = [0.0, 0.25, 0.5, 0.75, 1.0,
             0.1 + 0.45 * (1 + c1), 0.1 + 0.45 * (1 + c2), 0.1 + 0.45 * (1 + c3), 0.55,
             0.1 + 0.45 * (1 - c3), 0.1 + 0.45 * (1 - c2), 0.1 + 0.45 * (1 - c1), 0.1,
             0.1, 0.1, 0.1]
    assert table[6] == pytest.approx(0.868198051533946)  # 0.1 + 0.45 * (1 + 1/sqrt(2))
    got = []
    for _ in table:
        got.append(opt.param_groups[0]["lr"])
        assert sched.get_last_lr() == [got[-1]]
        sched.step()
    np.testing.assert_allclose(got, table, rtol=1e-14, atol=1e-16)


def test_warmup_cosine_per_group_and_lambda():
    a, b = tt.zeros(1, requires_grad=True), tt.zeros(1, requires_grad=True)
    opt = Adam([{"params": [a], "lr": 0.2}, {"params": [b], "lr": 0.02}])
    sched = WarmupCosineLR(opt, warmup_steps=0, total_steps=10, min_lr=[0.0, 0.01])
    assert sched.get_last_lr() == [0.2, 0.02]  # no warm-up: start at base_lr
    for _ in range(5):
        sched.step()
    assert sched.get_last_lr() == pytest.approx([0.1, 0.015])
    opt2 = SGD([tt.zeros(1, requires_grad=True)], lr=0.5)
    lam = LambdaLR(opt2, lambda t: 0.5**t)
    lam.step()
    lam.step()
    assert lam.get_last_lr() == [0.125]


def test_scheduler_state_dict_round_trip():
    def make():
        p = tt.zeros(1, requires_grad=True)
        opt = SGD([p], lr=0.3)
        return opt, StepLR(opt, step_size=2, gamma=0.5)

    opt, sched = make()
    for _ in range(5):
        sched.step()
    sd_opt, sd_sched = opt.state_dict(), json.loads(json.dumps(sched.state_dict()))
    later = []
    for _ in range(5):
        sched.step()
        later.append(sched.get_last_lr()[0])
    opt2, sched2 = make()
    opt2.load_state_dict(sd_opt)
    sched2.load_state_dict(sd_sched)
    again = []
    for _ in range(5):
        sched2.step()
        again.append(sched2.get_last_lr()[0])
    assert later == again
    with pytest.raises(ValueError, match="another scheduler"):
        WarmupCosineLR(opt2, 1, 5).load_state_dict(sd_sched)


def test_scheduler_validation():
    opt = SGD([tt.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="step_size"):
        StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="greater than warmup_steps"):
        WarmupCosineLR(opt, warmup_steps=10, total_steps=10)
    with pytest.raises(ValueError, match="min_lr"):
        WarmupCosineLR(opt, warmup_steps=1, total_steps=10, min_lr=-1.0)
    with pytest.raises(TypeError, match="Optimizer"):
        StepLR(object(), step_size=1)


# ------------------------------------------------------------ exact resume
def _flatten(sd):
    """Split a state_dict as a checkpoint would: arrays by flat name, the rest as JSON."""
    arrays, state = {}, {}
    for idx, st in sd["state"].items():
        state[idx] = {}
        for name, v in st.items():
            if isinstance(v, np.ndarray):
                arrays[f"state.{idx}.{name}"] = v
            else:
                state[idx][name] = v
    return arrays, json.dumps({"state": state, "param_groups": sd["param_groups"]})


def _unflatten(arrays, text):
    sd = json.loads(text)
    for key, v in arrays.items():
        _, idx, name = key.split(".", 2)
        sd["state"].setdefault(idx, {})[name] = v.copy()
    return sd


RESUME_CASES = {
    "sgd_nesterov_wd": (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "adam_amsgrad": (Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
    "adamw_groups": (AdamW, dict(lr=0.01, weight_decay=0.1)),
}


@pytest.mark.parametrize("via_json", [False, True], ids=["dict", "json+arrays"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_state_dict_resumes_bit_for_bit(case, dtype, via_json):
    cls, kw = RESUME_CASES[case]
    grads = _grads(dtype, steps=30)

    def build(arrays):
        ps = [tt.tensor(a, requires_grad=True) for a in arrays]
        spec = ps
        if case == "adamw_groups":
            spec = param_groups_for_weight_decay([(f"p{i}", p) for i, p in enumerate(ps)], 0.1)
        opt = cls(spec, **kw)
        return ps, opt, WarmupCosineLR(opt, warmup_steps=5, total_steps=25, min_lr=1e-4)

    def train(ps, opt, sched, steps):
        for step in steps:
            for p, g in zip(ps, step):
                p.grad = None if g is None else tt.tensor(g)
            opt.step()
            sched.step()

    ps, opt, sched = build(_params(dtype))
    train(ps, opt, sched, grads[:10])
    saved_params = [p.data.copy() for p in ps]
    sd, sd_sched = opt.state_dict(), sched.state_dict()
    snapshot = _flatten(sd)[0]
    snapshot = {k: v.copy() for k, v in snapshot.items()}
    if via_json:
        sd = _unflatten(*_flatten(sd))
        sd_sched = json.loads(json.dumps(sd_sched))
    train(ps, opt, sched, grads[10:20])
    want = [p.data.copy() for p in ps]
    # state_dict() returned copies: training on did not change them
    for k, v in _flatten(sd)[0].items():
        assert np.array_equal(v, snapshot[k])

    ps2, opt2, sched2 = build(saved_params)
    opt2.load_state_dict(sd)
    sched2.load_state_dict(sd_sched)
    train(ps2, opt2, sched2, grads[10:20])
    for a, b in zip(ps2, want):
        assert a.data.dtype == np.dtype(dtype)
        assert np.array_equal(a.data, b)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    # and both go on in lockstep
    train(ps, opt, sched, grads[20:])
    train(ps2, opt2, sched2, grads[20:])
    for a, b in zip(ps2, ps):
        assert np.array_equal(a.data, b.data)


def test_state_dict_layout():
    ps = [tt.tensor(a, requires_grad=True) for a in _params(np.float64)]
    opt = Adam([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.1}], betas=(0.8, 0.9))
    for p in ps[1:]:
        p.grad = tt.ones_like(p)
    opt.step()
    sd = opt.state_dict()
    assert list(sd["state"]) == [1, 2, 3]  # parameter 0 has no grad, so no state yet
    assert sd["state"][1]["step"] == 1 and type(sd["state"][1]["step"]) is int
    assert sd["state"][1]["exp_avg"].shape == SHAPES[1]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert sd["param_groups"][1]["lr"] == 0.1 and sd["param_groups"][0]["betas"] == (0.8, 0.9)
    json.dumps(sd["param_groups"])
    assert all(type(v) in (bool, float, tuple, list) for g in sd["param_groups"]
               for v in g.values())


def test_load_state_dict_errors():
    ps = [tt.tensor(a, requires_grad=True) for a in _params(np.float64)]
    opt = SGD(ps, lr=0.1, momentum=0.9)
    for p in ps:
        p.grad = tt.ones_like(p)
    opt.step()
    sd = opt.state_dict()

    with pytest.raises(ValueError, match="2 param groups, this optimizer has 1"):
        bad = dict(sd, param_groups=sd["param_groups"] * 2)
        SGD(ps, lr=0.1, momentum=0.9).load_state_dict(bad)
    with pytest.raises(ValueError, match="param group 0 has 4 parameters in the loaded state "
                                         "and 3 in this optimizer"):
        SGD(ps[:3], lr=0.1, momentum=0.9).load_state_dict(sd)
    other = [tt.zeros(s, dtype=np.float64, requires_grad=True) for s in SHAPES]
    other[0] = tt.zeros(3, 4, dtype=np.float64, requires_grad=True)
    with pytest.raises(ValueError, match=r"parameter 0: 'momentum_buffer' has shape \(4, 3\), "
                                         r"the parameter has shape \(3, 4\)"):
        SGD(other, lr=0.1, momentum=0.9).load_state_dict(sd)
    with pytest.raises(ValueError, match="no 'betas'"):
        Adam(ps).load_state_dict(sd)
    adam = Adam(ps)
    adam_sd = adam.state_dict()
    adam_sd["param_groups"][0] = dict(adam_sd["param_groups"][0], momentum=0.0)
    adam_sd["state"] = {0: {"momentum_buffer": np.zeros(SHAPES[0])}}
    with pytest.raises(ValueError, match="not state of Adam"):
        adam.load_state_dict(adam_sd)
    with pytest.raises(ValueError, match="lacks 'exp_avg'"):
        adam.load_state_dict({"state": {0: {"step": 3}}, "param_groups": adam_sd["param_groups"]})
    with pytest.raises(ValueError, match="entry for parameter 9"):
        opt.load_state_dict(dict(sd, state={9: sd["state"][0]}))
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})
    # a failed load leaves the optimizer as it was
    assert opt.state_dict()["state"][0]["momentum_buffer"].shape == SHAPES[0]
    np.testing.assert_array_equal(opt.state[ps[0]]["momentum_buffer"], sd["state"][0][
        "momentum_buffer"])


# ------------------------------------------------------------ validation
def test_validation_errors():
    p = tt.zeros(2, requires_grad=True)
    q = tt.zeros(3, requires_grad=True)
    cases = [
        (lambda: SGD([p], lr=-0.1), ValueError, "invalid lr -0.1"),
        (lambda: Adam([p], lr=-1e-3), ValueError, "invalid lr"),
        (lambda: Adam([p], betas=(1.0, 0.999)), ValueError, r"invalid beta1 1.0 .*\[0, 1\)"),
        (lambda: AdamW([p], betas=(0.9, -0.1)), ValueError, "invalid beta2"),
        (lambda: Adam([p], betas=(0.9,)), ValueError, "pair"),
        (lambda: Adam([p], eps=-1e-8), ValueError, "invalid eps"),
        (lambda: AdamW([p], weight_decay=-0.1), ValueError, "invalid weight_decay"),
        (lambda: SGD([p], lr=0.1, momentum=-0.5), ValueError, "invalid momentum"),
        (lambda: SGD([p], lr=0.1, nesterov=True), ValueError, "nesterov=True needs momentum"),
        (lambda: SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
         "dampening = 0"),
        (lambda: SGD([tt.zeros(2)], lr=0.1), ValueError, "does not require grad"),
        (lambda: SGD([p, q, p], lr=0.1), ValueError, "params\\[2\\].*more than once"),
        (lambda: SGD([{"params": [p]}, {"params": [q, p]}], lr=0.1), ValueError,
         "param group 1: params\\[1\\].*already parameter 0"),
        (lambda: SGD([], lr=0.1), ValueError, "empty parameter list"),
        (lambda: Adam(iter([])), ValueError, "empty parameter list"),
        (lambda: Adam([{"params": []}]), ValueError, "empty parameter list"),
        (lambda: SGD([{"params": [p], "lr": -1.0}], lr=0.1), ValueError, "param group 0"),
        (lambda: SGD(p, lr=0.1), TypeError, "single Tensor"),
        (lambda: SGD({p}, lr=0.1), TypeError, "not a set"),
        (lambda: SGD([("w", p)], lr=0.1), TypeError, "named_parameters"),
        (lambda: SGD([p * 2], lr=0.1), ValueError, "not a leaf"),
        (lambda: SGD([{"lr": 0.1}]), ValueError, "no 'params'"),
        (lambda: SGD([p], lr="big"), TypeError, "lr should be a number"),
    ]
    for make, exc, match in cases:
        with pytest.raises(exc, match=match):
            make()


def test_grad_shape_mismatch_is_an_error():
    p = tt.zeros(2, 3, requires_grad=True)
    opt = SGD([tt.zeros(1, requires_grad=True), p], lr=0.1)
    p.grad = tt.zeros(3, 2)
    with pytest.raises(ValueError, match=r"parameter 1 has shape \(2, 3\) but its .grad"):
        opt.step()


# ------------------------------------------------------------ behaviour
def test_none_grads_are_skipped_and_versions_bumped():
    a = tt.ones(2, requires_grad=True)
    b = tt.ones(2, requires_grad=True)
    opt = Adam([a, b], lr=0.1)
    a.grad = tt.ones(2)
    opt.step()
    opt.step()
    assert a._version[0] == 2 and b._version[0] == 0
    np.testing.assert_array_equal(b.data, [1.0, 1.0])
    assert b not in opt.state and opt.state[a]["step"] == 2


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
                                  lambda ps: Adam(ps, weight_decay=0.1, amsgrad=True),
                                  lambda ps: AdamW(ps, maximize=True)],
                         ids=["SGD", "Adam", "AdamW"])
def test_step_leaves_the_grads_alone(make):
    ps = [tt.tensor(a, requires_grad=True) for a in _params(np.float64)]
    opt = make(ps)
    for _ in range(3):
        grads = [np.full(p.shape, 0.5) for p in ps]
        for p, g in zip(ps, grads):
            p.grad = tt.from_numpy(g)  # shares memory with g
        opt.step()
        for p, g in zip(ps, grads):
            np.testing.assert_array_equal(p.grad.data, np.full(p.shape, 0.5))
            assert p.grad.data is g


def test_step_is_seen_by_saved_tensor_checks():
    w = tt.ones(3, requires_grad=True)
    opt = SGD([w], lr=0.1)
    w.grad = tt.ones(3)
    loss = (w * w).sum()  # saves w for backward
    opt.step()
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_dtypes_are_kept():
    p = tt.ones(3, dtype=np.float32, requires_grad=True)
    opt = AdamW([p], lr=0.1, amsgrad=True)
    p.grad = tt.ones(3, dtype=np.float64)  # cast to the parameter's dtype
    opt.step()
    assert p.dtype == np.float32
    assert all(v.dtype == np.float32 for v in opt.state[p].values() if isinstance(v, np.ndarray))
    sd = opt.state_dict()
    sd["state"][0]["exp_avg"] = sd["state"][0]["exp_avg"].astype(np.float64)
    opt.load_state_dict(sd)  # loaded buffers take the parameter's dtype
    assert opt.state[p]["exp_avg"].dtype == np.float32


def test_zero_grad():
    p = tt.ones(2, requires_grad=True)
    opt = SGD([p], lr=0.1)
    p.grad = tt.ones(2)
    g = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is g and np.array_equal(g.data, [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None
    opt.zero_grad()  # no grads: nothing to do


def test_closure_and_training_converges():
    rng = np.random.default_rng(3)
    x = tt.tensor(rng.standard_normal((32, 3)))
    w_true = np.array([[1.5], [-2.0], [0.5]])
    y = tt.tensor(x.data @ w_true + 0.3)
    for opt_cls, kw in [(SGD, dict(lr=0.1, momentum=0.9)), (Adam, dict(lr=0.05)),
                        (AdamW, dict(lr=0.05, weight_decay=0.0))]:
        w = tt.zeros((3, 1), dtype=np.float64, requires_grad=True)
        b = tt.zeros(1, dtype=np.float64, requires_grad=True)
        opt = opt_cls([w, b], **kw)

        def closure(w=w, b=b, opt=opt):
            opt.zero_grad()
            loss = ((x @ w + b - y) ** 2).mean()
            loss.backward()
            return loss

        for _ in range(300):
            loss = opt.step(closure)
        assert float(loss) < 1e-6, opt_cls.__name__
        np.testing.assert_allclose(w.data, w_true, atol=1e-3)


def test_param_groups_for_weight_decay():
    w = tt.zeros(3, 2, requires_grad=True)
    emb = tt.zeros(5, 4, requires_grad=True)
    bias = tt.zeros(2, requires_grad=True)
    gain = tt.ones(4, requires_grad=True)
    frozen = tt.zeros(2, 2)
    named = [("w", w), ("emb", emb), ("bias", bias), ("frozen", frozen), ("gain", gain),
             ("tied", w)]
    groups = param_groups_for_weight_decay(named, 0.1)
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert [id(p) for p in groups[0]["params"]] == [id(w), id(emb)]
    assert [id(p) for p in groups[1]["params"]] == [id(bias), id(gain)]
    assert param_groups_for_weight_decay(dict(named[:3]), 0.1)[1]["params"][0] is bias
    # AdamW with these groups: with zero grads the Adam step is 0, only decay acts
    for p in (w, emb, bias, gain):
        p.data[...] = 1.0
        p.grad = tt.zeros_like(p)
    AdamW(groups, lr=0.5).step()
    np.testing.assert_array_equal(w.data, np.full((3, 2), 1 - 0.5 * 0.1, np.float32))
    np.testing.assert_array_equal(bias.data, [1.0, 1.0])
    np.testing.assert_array_equal(gain.data, np.ones(4))
    with pytest.raises(ValueError, match="no parameter requires grad"):
        param_groups_for_weight_decay([("frozen", frozen)], 0.1)
    with pytest.raises(TypeError, match="named_parameters"):
        param_groups_for_weight_decay([1, 2], 0.1)
