"""The fused SGD kernel against its numpy reference (tinytape/backend/sgd.py), against the
formula written out in float64, and against torch.optim.SGD.

The kernel does the reference's operations in the same order in the parameter's dtype,
each hyperparameter rounded to that dtype first, so the two must agree to the bit, on
every SIMD path, for every option, over several steps (the first creates the momentum
buffer). PyTorch's step is not bit-equal (its vectorized add with alpha uses a fused
multiply-add), so it is compared within a few ulps.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import kernel_threads

import tinytape as tt
from tinytape import backend
from tinytape.optim import SGD

DTYPES = [np.float32, np.float64]
SIZES = [0, 1, 7, 16, 97, 1000, 65537]
# (momentum, dampening, nesterov, weight_decay, maximize); nesterov needs dampening 0
OPTIONS = [
    (momentum, dampening, nesterov, wd, maximize)
    for momentum, dampening, nesterov, wd, maximize in itertools.product(
        [0.0, 0.9], [0.0, 0.3], [False, True], [0.0, 0.05], [False, True]
    )
    if not (nesterov and (momentum == 0 or dampening != 0))
]
OPTION_IDS = [
    f"m{m}-d{d}-{'nest' if n else 'plain'}-wd{w}-{'max' if x else 'min'}"
    for m, d, n, w, x in OPTIONS
]


def _hp(option, lr=0.03):
    momentum, dampening, nesterov, wd, maximize = option
    return dict(
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        weight_decay=wd,
        nesterov=nesterov,
        maximize=maximize,
    )


def _run(p, grads, hp):
    """Steps of backend.sgd_step on p in place, one per gradient; the momentum buffer."""
    buf = None
    for g in grads:
        buf = backend.sgd_step(p, g, buf, **hp)
    return buf


def _formula(p, grads, hp):
    """torch.optim.SGD's step written out in float64."""
    p, buf = p.astype(np.float64), None
    for g in grads:
        d = -g.astype(np.float64) if hp["maximize"] else g.astype(np.float64)
        d = d + hp["weight_decay"] * p
        if hp["momentum"] != 0:
            buf = d.copy() if buf is None else hp["momentum"] * buf + (1 - hp["dampening"]) * d
            d = d + hp["momentum"] * buf if hp["nesterov"] else buf
        p = p - hp["lr"] * d
    return p, buf


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("option", OPTIONS, ids=OPTION_IDS)
def test_sgd_kernel_equals_reference(simd, rng, dtype, n, option):
    hp = _hp(option)
    p0 = rng.standard_normal(n).astype(dtype)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(3)]
    p = p0.copy()
    buf = _run(p, grads, hp)
    want = p0.copy()
    with backend.use("numpy"):
        want_buf = _run(want, grads, hp)
    np.testing.assert_array_equal(p, want)
    if hp["momentum"] == 0:
        assert buf is None and want_buf is None
    else:
        assert buf.dtype == p.dtype and buf.shape == p.shape
        np.testing.assert_array_equal(buf, want_buf)
    # and the exact formula, to a few roundings per step
    exact_p, exact_buf = _formula(p0, grads, hp)
    tol = 8 * np.finfo(dtype).eps
    np.testing.assert_allclose(p, exact_p, rtol=tol, atol=tol)
    if exact_buf is not None:
        np.testing.assert_allclose(buf, exact_buf, rtol=tol, atol=tol * 10)


def test_sgd_hyperparameters_round_to_the_dtype(simd):
    """lr, momentum, 1 - dampening and weight_decay are rounded to float32 first, as numpy
    rounds a Python float: values that are not floats32 give the reference's bits."""
    rng = np.random.default_rng(2)
    hp = dict(lr=0.1, momentum=0.7, dampening=0.1, weight_decay=1e-3)
    p0, g = (rng.standard_normal(1001).astype(np.float32) for _ in range(2))
    buf0 = rng.standard_normal(1001).astype(np.float32)
    p, buf = p0.copy(), buf0.copy()
    backend.sgd_step(p, g, buf, **hp)
    d = g + np.float32(1e-3) * p0
    want_buf = buf0 * np.float32(0.7) + np.float32(1 - 0.1) * d
    np.testing.assert_array_equal(buf, want_buf)
    np.testing.assert_array_equal(p, p0 - np.float32(0.1) * want_buf)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_kernel_layouts(simd, rng, dtype):
    """A 2-D parameter with a transposed-layout gradient; a parameter that is a strided
    view, a read-only buffer and a float16 parameter go to the numpy reference (the kernel
    updates only C-contiguous, writable float32/float64 arrays in place)."""
    hp = dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)
    p0 = rng.standard_normal((13, 31)).astype(dtype)
    g = np.asfortranarray(rng.standard_normal((13, 31)).astype(dtype))
    cases = {
        "fortran grad": (p0.copy(), None),
        "strided param": (np.zeros((13, 62), dtype)[:, ::2], None),
        "read-only buffer": (p0.copy(), np.ones((13, 31), dtype)),
    }
    cases["strided param"][0][...] = p0
    cases["read-only buffer"][1].flags.writeable = False
    for name, (p, buf) in cases.items():
        want_p, want_buf = p0.copy(), None if buf is None else buf.copy()
        with backend.use("numpy"):
            want_buf = backend.sgd_step(want_p, g, want_buf, **hp)
        if buf is not None and not buf.flags.writeable:
            with pytest.raises(ValueError, match="read-only"):
                backend.sgd_step(p, g, buf, **hp)
            continue
        got_buf = backend.sgd_step(p, g, buf, **hp)
        np.testing.assert_array_equal(p, want_p, err_msg=name)
        np.testing.assert_array_equal(got_buf, want_buf, err_msg=name)
    p16 = p0.astype(np.float16)
    backend.sgd_step(p16, g.astype(np.float16), None, lr=0.5)
    np.testing.assert_array_equal(
        p16, p0.astype(np.float16) - np.float16(0.5) * g.astype(np.float16)
    )
    # a 0-d parameter, and momentum 0 leaves a given buffer alone
    p, buf = np.array(2.0, dtype), np.array(7.0, dtype)
    assert backend.sgd_step(p, np.array(1.0, dtype), buf, lr=0.5) is buf
    assert p == 1.5 and buf == 7.0


def test_sgd_kernel_multithreaded(simd, rng):
    hp = dict(lr=1e-2, momentum=0.9, nesterov=True, weight_decay=0.01)
    p0, g = (rng.standard_normal((700, 2000)).astype(np.float32) for _ in range(2))
    with kernel_threads(2):
        p = p0.copy()
        buf = _run(p, [g, g], hp)
    want = p0.copy()
    with backend.use("numpy"):
        want_buf = _run(want, [g, g], hp)
    np.testing.assert_array_equal(p, want)
    np.testing.assert_array_equal(buf, want_buf)


def test_sgd_errors(any_backend):
    """Both backends refuse bad arguments alike, naming the arrays, shapes and dtypes."""
    p = np.zeros(4, np.float32)
    with pytest.raises(
        ValueError,
        match=r"sgd_step: shapes must match, got param \(4,\), "
        r"grad \(3,\)",
    ):
        backend.sgd_step(p, np.zeros(3, np.float32), None, lr=0.1)
    with pytest.raises(TypeError, match=r"sgd_step: mixed dtypes \(param float32, grad float64\)"):
        backend.sgd_step(p, np.zeros(4), None, lr=0.1)
    with pytest.raises(ValueError, match=r"got param \(4,\), grad \(4,\), momentum_buffer \(5,\)"):
        backend.sgd_step(p, p.copy(), np.zeros(5, np.float32), lr=0.1, momentum=0.9)
    with pytest.raises(TypeError, match=r"momentum_buffer float64"):
        backend.sgd_step(p, p.copy(), np.zeros(4), lr=0.1, momentum=0.9)
    assert (p == 0).all()  # nothing was changed


OPTIM_OPTIONS = [o for o in OPTIONS if o[0] != 0 or o[1] == 0]  # dampening needs momentum


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "option", OPTIM_OPTIONS, ids=[OPTION_IDS[OPTIONS.index(o)] for o in OPTIM_OPTIONS]
)
def test_sgd_optimizer_matches_torch(any_backend, dtype, option):
    """tinytape's SGD over five steps (two parameters, gradients that change each step)
    against torch.optim.SGD with the same options, its single-tensor path."""
    torch = pytest.importorskip("torch")
    hp = _hp(option, lr=0.1)
    rng = np.random.default_rng(9)
    shapes = [(17, 5), (33,)]
    p0 = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(5)]
    ours = [tt.tensor(a.copy(), requires_grad=True) for a in p0]
    theirs = [torch.nn.Parameter(torch.tensor(a.copy())) for a in p0]
    opt, topt = SGD(ours, **hp), torch.optim.SGD(theirs, foreach=False, **hp)
    for step in grads:
        for p, tp, g in zip(ours, theirs, step):
            p.grad = tt.tensor(g)
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
    tol = 16 * np.finfo(dtype).eps
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=tol, atol=tol)
        if hp["momentum"] != 0:
            np.testing.assert_allclose(
                opt.state[p]["momentum_buffer"],
                topt.state[tp]["momentum_buffer"].numpy(),
                rtol=tol,
                atol=tol,
            )
        else:
            assert p not in opt.state
