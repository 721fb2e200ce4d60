"""The fused Adam/AdamW kernel against its numpy reference (tinytape/backend/adam.py).

The kernel does the reference's operations in the same order in the same dtype, so the
two must agree to the bit, on every SIMD path, for every option. The reference itself
is checked against torch.optim in tests/test_optim.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import tinytape
from tinytape import backend

DTYPES = [np.float32, np.float64]
SIZES = [0, 1, 7, 16, 97, 1000, 65537]
OPTIONS = list(itertools.product([False, True], [False, True], [False, True], [0.0, 0.1]))


def _state(rng, shape, dtype, amsgrad):
    p = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    m = (0.1 * rng.standard_normal(shape)).astype(dtype)
    v = (0.01 * rng.random(shape)).astype(dtype)
    vmax = (0.01 * rng.random(shape)).astype(dtype) if amsgrad else None
    return p, g, m, v, vmax


def _run(arrays, steps=3, **hp):
    p, g, m, v, vmax = arrays
    for step in range(1, steps + 1):
        backend.adam_step(p, g, m, v, vmax, step=step, **hp)


def _copy(arrays):
    return [None if a is None else a.copy() for a in arrays]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("amsgrad,decoupled,maximize,wd", OPTIONS)
def test_adam_kernel_equals_reference(simd, rng, dtype, n, amsgrad, decoupled, maximize, wd):
    hp = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=wd,
              decoupled=decoupled, maximize=maximize)
    arrays = _state(rng, (n,), dtype, amsgrad)
    want = _copy(arrays)
    _run(arrays, **hp)
    with backend.use("numpy"):
        _run(want, **hp)
    for got, ref in zip(arrays, want):
        if ref is not None:
            np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_kernel_lerp_branch_and_shapes(simd, rng, dtype):
    # beta1 = 0.3 takes the lerp's other branch (weight 0.7 >= 0.5); a 2-D parameter.
    hp = dict(lr=3e-3, beta1=0.3, beta2=0.9, eps=1e-6, weight_decay=0.0)
    arrays = _state(rng, (13, 31), dtype, False)
    want = _copy(arrays)
    _run(arrays, **hp)
    with backend.use("numpy"):
        _run(want, **hp)
    for got, ref in zip(arrays[:4], want[:4]):
        np.testing.assert_array_equal(got, ref)


def test_adam_kernel_multithreaded_and_non_contiguous_grad(simd, rng):
    saved = tinytape.get_num_threads()
    tinytape.set_num_threads(2)
    try:
        hp = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                  decoupled=True)
        p, g, m, v, _ = _state(rng, (700, 600), np.float32, False)
        g = np.asfortranarray(g)  # a transposed-layout gradient
        want = [p.copy(), g, m.copy(), v.copy(), None]
        _run([p, g, m, v, None], **hp)
        with backend.use("numpy"):
            _run(want, **hp)
        for got, ref in zip((p, m, v), (want[0], want[2], want[3])):
            np.testing.assert_array_equal(got, ref)
    finally:
        tinytape.set_num_threads(saved)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_kernel_extreme_gradients(simd, dtype):
    # Huge (g * g still finite), tiny and zero gradients: finite steps of about lr, no NaN.
    big = 1e18 if dtype == np.float32 else 1e150
    g = np.array([big, -big, 1e-30, 0.0, 3.0], dtype)
    p, m, v = np.zeros(5, dtype), np.zeros(5, dtype), np.zeros(5, dtype)
    backend.adam_step(p, g, m, v, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, step=1)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p[[0, 1, 4]], [-0.1, 0.1, -0.1], rtol=1e-6)
    assert p[3] == 0.0


def test_adam_kernel_errors(any_backend):
    p = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"adam_step: grad has shape \(3,\) and dtype float32, "
                                         r"expected \(4,\) float32"):
        backend.adam_step(p, np.zeros(3, np.float32), np.zeros(4, np.float32),
                          np.zeros(4, np.float32), lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
                          step=1)
    with pytest.raises(ValueError, match="exp_avg has shape .* dtype float64"):
        backend.adam_step(p, p.copy(), np.zeros(4), np.zeros(4, np.float32), lr=0.1,
                          beta1=0.9, beta2=0.999, eps=1e-8, step=1)
