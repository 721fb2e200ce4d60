"""NaN and +-inf through every kernel follow one rule (docs/numerics.md): the formula PyTorch
evaluates, in IEEE arithmetic, with the exceptions that page lists.

Inputs get NaN, +inf and -inf planted at random places, some rows left clean, rows long
enough that values land both in a vectorized body and in its scalar tail. Every kernel is
run on every SIMD path of the C build and compared with the numpy backend; both backends
are compared with PyTorch where it is installed; and a few cases are checked against values
derived by hand. "Equal" means NaN, +inf and -inf at exactly the same places and the finite
values within a loose bound (their accuracy is the business of the per-kernel tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import tinytape
from tinytape import backend
from tinytape.backend import elementwise

DTYPES = [np.float32, np.float64]
SPECIALS = np.array([np.nan, np.inf, -np.inf])
# Finite outputs: a loose bound, since the error of a sum next to huge values is not the
# subject here (float32: 1e-3 relative; float64: 1e-9).
FINITE_TOL = {np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-9}
IGNORE = -100


def plant(
    rng: np.random.Generator, x: np.ndarray, fraction: float = 0.05, rows: int | None = None
) -> np.ndarray:
    """x with about `fraction` of its values (in the first `rows` rows of its last two axes,
    all rows when None) replaced by NaN, +inf or -inf."""
    x = x.copy()
    view = x.reshape(-1, x.shape[-1]) if x.ndim > 1 else x.reshape(1, -1)
    hit = view[: rows if rows is not None else view.shape[0]]
    mask = rng.random(hit.shape) < fraction
    hit[mask] = rng.choice(SPECIALS, int(mask.sum()))
    return x


def assert_same_nonfinite(got, want, what: str) -> None:
    """NaN, +inf and -inf at the same places; finite values close."""
    got = np.asarray(got)
    want64 = np.asarray(want, dtype=np.float64)
    got64 = got.astype(np.float64)
    assert got64.shape == want64.shape, f"{what}: shape {got64.shape}, expected {want64.shape}"
    for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        g, w = test(got64), test(want64)
        if (g != w).any():
            i = tuple(int(j) for j in np.argwhere(g != w)[0])
            raise AssertionError(
                f"{what}: {name} differs at {i}: got {got64[i]!r}, expected "
                f"{want64[i]!r} ({int((g != w).sum())} places)"
            )
    finite = np.isfinite(want64)
    tol = FINITE_TOL[got.dtype] if got.dtype.kind == "f" else 1e-9
    np.testing.assert_allclose(
        got64[finite], want64[finite], rtol=tol, atol=tol, err_msg=f"{what}: finite values"
    )


# --------------------------------------------------------------------------- cases
# A case makes inputs (numpy arrays), runs the kernels on the current backend, and computes
# the same outputs with PyTorch, each as a dict name -> array.


@dataclass
class Case:
    name: str
    make: Callable[[np.random.Generator, type], dict]
    run: Callable[[dict], dict]
    torch: Callable[[dict], dict]


def _t(x, grad=False):
    import torch

    return torch.tensor(x, requires_grad=grad)


def _gemm_make(m, n, k, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    def make(rng, dtype):
        a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
        c = rng.standard_normal((m, n)).astype(dtype)
        if alpha != 0.0:
            a, b = plant(rng, a, 0.02), plant(rng, b, 0.02)
        else:  # alpha == 0: a and b are not read, NaN or not
            a[...] = np.nan
        c = plant(rng, c, 0.1) if beta != 0.0 else np.full_like(c, np.nan)
        return dict(a=a, b=b, c=c, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta)

    return make


def _gemm_run(d):
    c = d["c"].copy()
    backend.gemm(
        d["a"],
        d["b"],
        trans_a=d["trans_a"],
        trans_b=d["trans_b"],
        alpha=d["alpha"],
        beta=d["beta"],
        c=c,
    )
    return {"c": c}


def _gemm_torch(d):
    import torch

    a, b = _t(d["a"]), _t(d["b"])
    a = a.T if d["trans_a"] else a
    b = b.T if d["trans_b"] else b
    return {"c": torch.addmm(_t(d["c"]), a, b, beta=d["beta"], alpha=d["alpha"]).numpy()}


def _batched_make(rng, dtype):
    a = plant(rng, rng.standard_normal((3, 9, 20)).astype(dtype), 0.02)
    b = plant(rng, rng.standard_normal((3, 20, 11)).astype(dtype), 0.02)
    return dict(a=a, b=b)


def _rows_make(rows=6, cols=37, clean_rows=2):
    def make(rng, dtype):
        x = plant(rng, rng.standard_normal((rows, cols)).astype(dtype), 0.08, rows - clean_rows)
        x[0, :] = -np.inf  # a row with no finite value at all
        x[1, :] = rng.standard_normal(cols)
        x[1, cols // 2] = -np.inf  # one -inf: probability 0, log-probability -inf
        dy = plant(rng, rng.standard_normal((rows, cols)).astype(dtype), 0.02, 2)
        return dict(x=x, dy=dy)

    return make


def _softmax_run(log):
    fwd = backend.log_softmax if log else backend.softmax
    bwd = backend.log_softmax_backward if log else backend.softmax_backward

    def run(d):
        y = fwd(d["x"])
        return {"y": y, "dx": bwd(y, d["dy"])}

    return run


def _softmax_torch(log):
    def run(d):
        import torch

        x = _t(d["x"], True)
        y = (torch.log_softmax if log else torch.softmax)(x, -1)
        y.backward(_t(d["dy"]))
        return {"y": y.detach().numpy(), "dx": x.grad.numpy()}

    return run


def _ce_make(rng, dtype):
    rows, cols = 12, 29
    x = plant(rng, rng.standard_normal((rows, cols)).astype(dtype), 0.06, rows - 3)
    t = rng.integers(0, cols, rows)
    t[::4] = IGNORE  # some ignored rows, NaN or not
    x[1, t[1]] = -np.inf  # the target's logit is -inf: an infinite loss
    x[2, :] = rng.standard_normal(cols)
    x[2, (t[2] + 1) % cols] = -np.inf  # another logit -inf: a finite loss
    return dict(x=x, t=t)


def _ce_neg_inf_make(rng, dtype):
    """Only -inf, never at a target: a finite loss that the -inf logits do not change."""
    rows, cols = 9, 40
    x = rng.standard_normal((rows, cols)).astype(dtype)
    t = rng.integers(0, cols, rows)
    x[rng.random((rows, cols)) < 0.2] = -np.inf
    x[np.arange(rows), t] = rng.standard_normal(rows)
    t[3] = IGNORE
    x[3] = np.nan  # and an ignored row of NaN
    return dict(x=x, t=t)


def _ce_run(d):
    loss, lse = backend.cross_entropy(d["x"], d["t"], ignore_index=IGNORE)
    return {"loss": loss, "dx": backend.cross_entropy_backward(d["x"], d["t"], lse, 1.0, IGNORE)}


def _ce_torch(d):
    import torch

    x = _t(d["x"], True)
    loss = torch.nn.functional.cross_entropy(x, _t(d["t"]), ignore_index=IGNORE)
    loss.backward()
    dx = x.grad.numpy().copy()
    dx[d["t"] == IGNORE] = 0  # the documented exception: an ignored row's gradient is 0
    return {"loss": loss.detach().numpy(), "dx": dx}


def _ln_make(rng, dtype):
    rows, cols = 7, 45
    x = plant(rng, rng.standard_normal((rows, cols)).astype(dtype), 0.05, rows - 3)
    gamma = plant(rng, rng.standard_normal(cols).astype(dtype), 0.05)
    beta = plant(rng, rng.standard_normal(cols).astype(dtype), 0.05)
    dy = plant(rng, rng.standard_normal((rows, cols)).astype(dtype), 0.02, 2)
    return dict(x=x, gamma=gamma, beta=beta, dy=dy)


def _ln_run(d):
    y, mean, rstd = backend.layer_norm(d["x"], d["gamma"], d["beta"], 1e-5)
    dx, dgamma, dbeta = backend.layer_norm_backward(d["dy"], d["x"], d["gamma"], mean, rstd)
    return {"y": y, "dx": dx, "dgamma": dgamma, "dbeta": dbeta}


def _ln_torch(d):
    import torch

    x, gamma, beta = _t(d["x"], True), _t(d["gamma"], True), _t(d["beta"], True)
    y = torch.nn.functional.layer_norm(x, (x.shape[-1],), gamma, beta, 1e-5)
    y.backward(_t(d["dy"]))
    return {
        "y": y.detach().numpy(),
        "dx": x.grad.numpy(),
        "dgamma": gamma.grad.numpy(),
        "dbeta": beta.grad.numpy(),
    }


def _gelu_make(rng, dtype):
    x = plant(rng, (3 * rng.standard_normal(101)).astype(dtype), 0.1)
    dy = plant(rng, rng.standard_normal(101).astype(dtype), 0.03)
    return dict(x=x, dy=dy)


def _gelu_run(d):
    return {"y": backend.gelu(d["x"]), "dx": backend.gelu_backward(d["x"], d["dy"])}


def _gelu_torch(d):
    import torch

    x = _t(d["x"], True)
    y = torch.nn.functional.gelu(x, approximate="tanh")
    y.backward(_t(d["dy"]))
    return {"y": y.detach().numpy(), "dx": x.grad.numpy()}


def _sigmoid_tanh_make(rng, dtype):
    """Specials in x, and in dy: an infinite dy times a y strictly inside (0, 1) must stay
    infinite (PyTorch's g (1 - y) y), times a y of exactly 0 or 1 it is NaN. The backwards
    take the saved outputs y (from the numpy reference) and t = tanh(x) as inputs, so that
    where two sigmoids or tanhs round differently next to 1 the formulas are still compared
    on the same values."""
    n = 203  # the vector bodies of every path and a tail
    x = plant(rng, (8 * rng.standard_normal(n)).astype(dtype), 0.1)
    x[:4] = [40.0, -120.0, 1e4, -1e4]  # y of exactly 1 and 0 (tanh: +-1)
    dy = plant(rng, rng.standard_normal(n).astype(dtype), 0.1)
    dy[:8] = np.array([1, -1, 1, np.nan, 1, -1, 1, -1]) * np.inf  # at those y and in (0, 1)
    y = elementwise.sigmoid_reference(x)
    return dict(x=x, dy=dy, y=y, t=np.tanh(x))


def _sigmoid_tanh_run(d):
    return {
        "y": backend.sigmoid(d["x"]),
        "dx": backend.sigmoid_backward(d["y"], d["dy"]),
        "tanh dx": backend.tanh_backward(d["t"], d["dy"]),
    }


def _sigmoid_tanh_torch(d):
    import torch

    dy = _t(d["dy"])
    return {
        "y": torch.sigmoid(_t(d["x"])).numpy(),
        "dx": torch.ops.aten.sigmoid_backward(dy, _t(d["y"])).numpy(),
        "tanh dx": torch.ops.aten.tanh_backward(dy, _t(d["t"])).numpy(),
    }


_BINARY = ("add", "sub", "mul", "div")  # tinytape.backend's names and torch's


def _binary_make(rng, dtype):
    """Specials in both operands, zeros in b (division by +-0), and a single special or
    ordinary value broadcast over the other operand on either side."""
    n = 203  # the vector bodies of every path and a tail
    a = plant(rng, rng.standard_normal(n).astype(dtype), 0.1)
    b = plant(rng, rng.standard_normal(n).astype(dtype), 0.1)
    b[rng.random(n) < 0.05] = rng.choice([0.0, -0.0])
    s = np.asarray(rng.choice(np.concatenate([SPECIALS, [0.0, -0.0, 1.5]])), dtype)
    return dict(a=a, b=b, s=s)


def _binary_run(d):
    out = {}
    with np.errstate(all="ignore"):  # the warnings are tests/test_binary_kernels.py's
        for name in _BINARY:
            fn = getattr(backend, name)
            out[name] = fn(d["a"], d["b"])
            out[name + " a, s"] = fn(d["a"], d["s"])
            out[name + " s, b"] = fn(d["s"], d["b"])
    return out


def _binary_torch(d):
    import torch

    a, b, s = _t(d["a"]), _t(d["b"]), _t(d["s"])
    out = {}
    for name in _BINARY:
        fn = getattr(torch, name)
        out[name] = fn(a, b).numpy()
        out[name + " a, s"] = fn(a, s).numpy()
        out[name + " s, b"] = fn(s, b).numpy()
    return out


def _attention_make(causal):
    def make(rng, dtype):
        b, t, h, hd = 2, 9, 2, 5
        qkv = rng.uniform(-1, 1, (b, t, 3 * h * hd)).astype(dtype)
        # one special in a query, a key and a value of batch 0 (other heads and batch 1 clean)
        qkv[0, 6, 1] = np.nan  # query of token 6, head 0
        qkv[0, 3, h * hd + 2] = np.inf  # key of token 3, head 0
        qkv[0, 5, 2 * h * hd + hd] = -np.inf  # value of token 5, head 1
        grad_out = rng.uniform(-1, 1, (b, t, h * hd)).astype(dtype)
        return dict(qkv=qkv, heads=h, causal=causal, grad_out=grad_out)

    return make


def _attention_run(d):
    out, w = backend.attention(d["qkv"], d["heads"], d["causal"])
    g = backend.attention_backward(d["qkv"], d["heads"], None, w, d["grad_out"], d["causal"])
    return {"out": out, "weights": w, "grad": g}


def _attention_torch(d):
    """PyTorch's math form of scaled dot-product attention (what the kernel fuses):
    softmax(q k^T / sqrt(d) with later keys masked to -inf) @ v, with the documented
    exception: a masked weight is exactly 0, also in a row that a non-finite score has
    made NaN (where softmax's 0 / NaN would give NaN)."""
    import torch

    qkv = _t(d["qkv"], True)
    b, t, width = qkv.shape
    h = d["heads"]
    q, k, v = qkv.reshape(b, t, 3, h, width // (3 * h)).permute(2, 0, 3, 1, 4)
    s = q @ k.transpose(-1, -2) / math.sqrt(width // (3 * h))
    if d["causal"]:
        s = s.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), -math.inf)
    w = torch.softmax(s, -1)
    if d["causal"]:
        w = w.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), 0.0)
    out = (w @ v).transpose(1, 2).reshape(b, t, width // 3)
    out.backward(_t(d["grad_out"]))
    return {"out": out.detach().numpy(), "weights": w.detach().numpy(), "grad": qkv.grad.numpy()}


def _adam_make(decoupled):
    def make(rng, dtype):
        n = 67
        p = plant(rng, rng.standard_normal(n).astype(dtype), 0.05)
        g = plant(rng, rng.standard_normal(n).astype(dtype), 0.1)
        m = (0.1 * rng.standard_normal(n)).astype(dtype)
        v = (0.01 * rng.random(n)).astype(dtype)
        return dict(p=p, g=g, m=m, v=v, decoupled=decoupled)

    return make


_ADAM = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1)


def _adam_run(d):
    p, m, v = d["p"].copy(), d["m"].copy(), d["v"].copy()
    backend.adam_step(p, d["g"], m, v, None, decoupled=d["decoupled"], step=3, **_ADAM)
    return {"p": p, "m": m, "v": v}


def _adam_torch(d):
    import torch

    p = torch.nn.Parameter(_t(d["p"]))
    opt = (torch.optim.AdamW if d["decoupled"] else torch.optim.Adam)(
        [p],
        lr=_ADAM["lr"],
        betas=(_ADAM["beta1"], _ADAM["beta2"]),
        eps=_ADAM["eps"],
        weight_decay=_ADAM["weight_decay"],
        foreach=False,
    )
    p.grad = _t(d["g"])
    opt.state[p] = {"step": torch.tensor(2.0), "exp_avg": _t(d["m"]), "exp_avg_sq": _t(d["v"])}
    opt.step()
    st = opt.state[p]
    return {"p": p.detach().numpy(), "m": st["exp_avg"].numpy(), "v": st["exp_avg_sq"].numpy()}


def _relu_make(rng, dtype):
    """Specials in x and in dy: an inf or NaN in dy where relu's mask is 0 (x <= 0, -inf)
    must give 0 (PyTorch's threshold_backward selects), not inf * 0 = NaN."""
    n = 203  # the vector bodies of every path and a tail
    x = plant(rng, rng.standard_normal(n).astype(dtype), 0.1)
    x[:6] = [-1.0, 0.0, -np.inf, np.nan, np.inf, 2.0]
    dy = plant(rng, rng.standard_normal(n).astype(dtype), 0.1)
    dy[:6] = [np.inf, np.nan, -np.inf, np.inf, np.nan, -np.inf]
    return dict(x=x, dy=dy)


def _relu_run(d):
    y, mask = backend.relu_with_mask(d["x"])
    return {"y": y, "dx": backend.relu_backward(mask, d["dy"])}


def _relu_torch(d):
    import torch

    x = _t(d["x"], True)
    y = torch.relu(x)
    y.backward(_t(d["dy"]))
    return {"y": y.detach().numpy(), "dx": x.grad.numpy()}


_SGD = dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.05, nesterov=True)


def _sgd_make(maximize):
    def make(rng, dtype):
        n = 67
        p = plant(rng, rng.standard_normal(n).astype(dtype), 0.05)
        g = plant(rng, rng.standard_normal(n).astype(dtype), 0.1)
        buf = plant(rng, rng.standard_normal(n).astype(dtype), 0.05)
        return dict(p=p, g=g, buf=buf, maximize=maximize)

    return make


def _sgd_run(d):
    p, buf = d["p"].copy(), d["buf"].copy()
    backend.sgd_step(p, d["g"], buf, maximize=d["maximize"], **_SGD)
    return {"p": p, "buf": buf}


def _sgd_torch(d):
    import torch

    p = torch.nn.Parameter(_t(d["p"]))
    opt = torch.optim.SGD([p], maximize=d["maximize"], foreach=False, **_SGD)
    p.grad = _t(d["g"])
    opt.state[p] = {"momentum_buffer": _t(d["buf"])}
    opt.step()
    return {"p": p.detach().numpy(), "buf": opt.state[p]["momentum_buffer"].numpy()}


CASES = [
    # the paths of the GEMM: packed with edge tiles, unpacked (direct), matrix-vector
    Case("gemm_packed", _gemm_make(37, 45, 300), _gemm_run, _gemm_torch),
    Case("gemm_packed_trans", _gemm_make(29, 70, 65, True, True, 0.5, 1.0), _gemm_run, _gemm_torch),
    Case("gemm_small", _gemm_make(5, 7, 9, False, False, 1.0, 2.0), _gemm_run, _gemm_torch),
    Case("gemm_narrow", _gemm_make(40, 3, 33, True, False), _gemm_run, _gemm_torch),
    Case("gemm_row", _gemm_make(1, 50, 41, False, True, 1.0, 1.0), _gemm_run, _gemm_torch),
    Case("gemm_col", _gemm_make(50, 1, 41), _gemm_run, _gemm_torch),
    Case("gemm_alpha0", _gemm_make(20, 30, 40, alpha=0.0, beta=0.0), _gemm_run, _gemm_torch),
    Case(
        "gemm_batched",
        _batched_make,
        lambda d: {"c": backend.gemm_batched(d["a"], d["b"])},
        lambda d: {"c": (_t(d["a"]) @ _t(d["b"])).numpy()},
    ),
    Case("softmax", _rows_make(), _softmax_run(False), _softmax_torch(False)),
    Case("softmax_long", _rows_make(5, 300), _softmax_run(False), _softmax_torch(False)),
    Case("softmax_one", _rows_make(4, 1, 1), _softmax_run(False), _softmax_torch(False)),
    Case("log_softmax", _rows_make(), _softmax_run(True), _softmax_torch(True)),
    Case("log_softmax_long", _rows_make(5, 300), _softmax_run(True), _softmax_torch(True)),
    Case("cross_entropy", _ce_make, _ce_run, _ce_torch),
    Case("cross_entropy_neg_inf", _ce_neg_inf_make, _ce_run, _ce_torch),
    Case("layer_norm", _ln_make, _ln_run, _ln_torch),
    Case("gelu", _gelu_make, _gelu_run, _gelu_torch),
    Case("sigmoid_tanh", _sigmoid_tanh_make, _sigmoid_tanh_run, _sigmoid_tanh_torch),
    Case("attention", _attention_make(False), _attention_run, _attention_torch),
    Case("attention_causal", _attention_make(True), _attention_run, _attention_torch),
    Case("adam", _adam_make(False), _adam_run, _adam_torch),
    Case("adamw", _adam_make(True), _adam_run, _adam_torch),
    Case("relu", _relu_make, _relu_run, _relu_torch),
    Case("sgd", _sgd_make(False), _sgd_run, _sgd_torch),
    Case("sgd_maximize", _sgd_make(True), _sgd_run, _sgd_torch),
    Case("add_sub_mul_div", _binary_make, _binary_run, _binary_torch),
]
IDS = [c.name for c in CASES]


def _compare(got: dict, want: dict, what: str) -> None:
    assert got.keys() == want.keys(), what
    for k in got:
        assert_same_nonfinite(got[k], want[k], f"{what}: {k}")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("threads", [1, 2])
def test_c_matches_numpy(simd, case, dtype, seed, threads):
    inputs = case.make(np.random.default_rng(seed), dtype)
    saved = tinytape.get_num_threads()
    tinytape.set_num_threads(threads)
    try:
        got = case.run(inputs)
    finally:
        tinytape.set_num_threads(saved)
    with backend.use("numpy"), np.errstate(all="ignore"):
        want = case.run(inputs)
    _compare(got, want, f"{case.name} {np.dtype(dtype)} seed {seed}")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_torch(any_backend, case, dtype, seed):
    pytest.importorskip("torch")
    inputs = case.make(np.random.default_rng(seed), dtype)
    with np.errstate(all="ignore"):
        got = case.run(inputs)
    _compare(
        got,
        case.torch(inputs),
        f"{case.name} {np.dtype(dtype)} seed {seed} ({any_backend} against torch)",
    )


def test_large_rows_at_two_threads(simd):
    """Rows split over two threads (a million values): each row's specials stay in it."""
    rng = np.random.default_rng(5)
    x = plant(rng, rng.standard_normal((2048, 512)).astype(np.float32), 0.0005)
    saved = tinytape.get_num_threads()
    tinytape.set_num_threads(2)
    try:
        got = [
            backend.softmax(x),
            backend.log_softmax(x),
            backend.layer_norm(x)[0],
            backend.gelu(x),
            backend.sigmoid(x),
            backend.relu(x),
        ]
    finally:
        tinytape.set_num_threads(saved)
    with backend.use("numpy"), np.errstate(all="ignore"):
        want = [
            backend.softmax(x),
            backend.log_softmax(x),
            backend.layer_norm(x)[0],
            backend.gelu(x),
            backend.sigmoid(x),
            backend.relu(x),
        ]
    names = ("softmax", "log_softmax", "layer_norm", "gelu", "sigmoid", "relu")
    for name, g, w in zip(names, got, want):
        assert_same_nonfinite(g, w, name)


# ------------------------------------------------------------- values by hand


@pytest.mark.parametrize("dtype", DTYPES)
def test_rule_by_hand(any_backend, dtype):
    inf, nan = np.inf, np.nan
    x = np.array([[1.0, -inf], [2.0, inf], [-inf, -inf], [nan, 0.0]], dtype)
    with np.errstate(all="ignore"):
        # -inf: probability exactly 0; +inf (inf - inf) and no finite value: NaN rows
        np.testing.assert_array_equal(
            backend.softmax(x), np.array([[1, 0], [nan, nan], [nan, nan], [nan, nan]])
        )
        np.testing.assert_array_equal(
            backend.log_softmax(x), np.array([[0, -inf], [nan, nan], [nan, nan], [nan, nan]])
        )
        # a NaN in an ignored row does not reach the loss or the gradient
        logits = np.array([[nan, 0.0], [0.0, 0.0]], dtype)
        t = np.array([IGNORE, 1])
        loss, lse = backend.cross_entropy(logits, t, IGNORE)
        assert loss == np.float64(np.log(2)).astype(dtype)
        d = backend.cross_entropy_backward(logits, t, lse, 1.0, IGNORE)
        np.testing.assert_array_equal(d, np.array([[0, 0], [0.5, -0.5]], dtype))
        # the target's logit at -inf: an infinite loss
        assert backend.cross_entropy(np.array([[-inf, 0.0]], dtype), np.array([0]))[0] == inf
        # beta == 0: C is not read; alpha == 0: A and B are not read
        c = np.full((2, 2), nan, dtype)
        eye = np.eye(2, dtype=dtype)
        np.testing.assert_array_equal(backend.gemm(eye, eye, beta=0.0, c=c), eye)
        np.testing.assert_array_equal(
            backend.gemm(np.full((2, 2), nan, dtype), eye, alpha=0.0, beta=1.0, c=eye.copy()), eye
        )
        # IEEE inside a product: inf * 0 = NaN, inf + finite = inf
        a = np.array([[inf, 1.0]], dtype)
        np.testing.assert_array_equal(backend.gemm(a, np.array([[0.0], [1.0]], dtype)), [[nan]])
        np.testing.assert_array_equal(backend.gemm(a, np.array([[1.0], [1.0]], dtype)), [[inf]])
        # GELU: +inf -> +inf, -inf -> -inf * 0 = NaN; the slope at +-inf is NaN
        g = np.array([inf, -inf, nan], dtype)
        np.testing.assert_array_equal(backend.gelu(g), [inf, nan, nan])
        np.testing.assert_array_equal(backend.gelu_backward(g, np.ones_like(g)), [nan] * 3)
        # sigmoid: NaN -> NaN, +-inf -> 1 and 0; its backward dy (1 - y) y and tanh's
        # dy (1 - y^2): inf times a y inside (0, 1) is inf, times 0 (y of 0 or 1) NaN
        np.testing.assert_array_equal(backend.sigmoid(g), [1, 0, nan])
        y = np.array([0.5, 0.5, 1.0, 0.0, nan, 0.25], dtype)
        dy = np.array([inf, -inf, inf, inf, 1.0, 2.0], dtype)
        np.testing.assert_array_equal(
            backend.sigmoid_backward(y, dy), [inf, -inf, nan, nan, nan, 0.375]
        )
        t = np.array([0.5, -0.5, 1.0, -1.0, nan, 0.25], dtype)
        np.testing.assert_array_equal(
            backend.tanh_backward(t, dy), [inf, -inf, nan, nan, nan, 1.875]
        )
        # relu: NaN stays NaN, its gradient passes there; the backward selects, so an
        # infinite or NaN dy where x <= 0 gives 0
        x = np.array([nan, inf, -inf, 0.0, -1.0, 2.0], dtype)
        y, mask = backend.relu_with_mask(x)
        np.testing.assert_array_equal(y, [nan, inf, 0, 0, 0, 2])
        np.testing.assert_array_equal(mask, [True, True, False, False, False, True])
        dy = np.array([inf, -inf, inf, nan, -inf, nan], dtype)
        np.testing.assert_array_equal(backend.relu_backward(mask, dy), [inf, -inf, 0, 0, 0, nan])
        # SGD: a NaN or infinite gradient reaches only its own parameter and buffer value
        p, buf = np.array([1.0, 1.0, 1.0], dtype), np.zeros(3, dtype)
        backend.sgd_step(p, np.array([nan, inf, 1.0], dtype), buf, lr=0.5, momentum=0.5)
        np.testing.assert_array_equal(buf, [nan, inf, 1.0])
        np.testing.assert_array_equal(p, [nan, -inf, 0.5])
        # layer norm: a row holding +-inf has NaN statistics, so every output of it is NaN
        y = backend.layer_norm(np.array([[1.0, inf, 2.0], [1.0, 2.0, 3.0]], dtype))[0]
        assert np.isnan(y[0]).all() and np.isfinite(y[1]).all()
