"""GELU kernel (tanh approximation) against a float64 reference written in the tanh form.

The kernel computes x * sigmoid(2u); the reference here is the textbook
0.5 x (1 + tanh u) in float64, so the two agree only if the rewrite is right.
Tolerances (tests/tolerances.py, ROW_TOL): an exp accurate to ~2 ulp and a few roundings;
in float32, rounding z = 2u (|z| <= ~20 for |x| <= 6) moves exp(z) by ~|z| ulp relative,
which the 2e-5 relative / 2e-6 absolute bound covers with room to spare.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerances import assert_rows_close

import tinytape
from tinytape import backend

DTYPES = [np.float32, np.float64]
SHAPES = [(0,), (1,), (7,), (13, 97), (4, 512), (3, 4099), (2, 3, 5), (1, 0, 3)]


def ref_gelu(x64: np.ndarray) -> np.ndarray:
    u = np.sqrt(2 / np.pi) * (x64 + 0.044715 * x64**3)
    return 0.5 * x64 * (1 + np.tanh(u))


def ref_gelu_grad(x64: np.ndarray) -> np.ndarray:
    u = np.sqrt(2 / np.pi) * (x64 + 0.044715 * x64**3)
    du = np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x64**2)
    t = np.tanh(u)
    return 0.5 * (1 + t) + 0.5 * x64 * (1 - t * t) * du


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_gelu(simd, rng, dtype, shape):
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    assert_rows_close(backend.gelu(x), ref_gelu(x64), dtype)
    assert_rows_close(backend.gelu_backward(x, dy), dy64 * ref_gelu_grad(x64), dtype, scale=4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_extreme_values(simd, dtype):
    x = np.array([0.0, 1e-30, -1e-30, 30.0, -30.0, 1e4, -1e4, 1e30, -1e30, np.inf], dtype)
    y = backend.gelu(x)
    g = backend.gelu_backward(x, np.ones_like(x))
    # Far out GELU is the identity (x > 0) or zero (x < 0), with slope 1 or 0; near 0 it is
    # x / 2 with slope 1/2. No overflow, no NaN for finite x; at +inf the slope is NaN
    # (a limit, not a value: docs/numerics.md).
    np.testing.assert_array_equal(y, np.array(
        [0.0, 5e-31, -5e-31, 30.0, 0.0, 1e4, 0.0, 1e30, 0.0, np.inf], dtype))
    np.testing.assert_array_equal(g, np.array([0.5, 0.5, 0.5, 1, 0, 1, 0, 1, 0, np.nan], dtype))
    assert np.isnan(backend.gelu(np.array([np.nan], dtype))).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_non_contiguous_input(simd, rng, dtype):
    base = (3 * rng.standard_normal((20, 30))).astype(dtype)
    for x in (base.T, base[::2, 1::3], base[:, ::-1]):
        x64 = x.astype(np.float64)
        assert_rows_close(backend.gelu(x), ref_gelu(x64), dtype)
        assert_rows_close(backend.gelu_backward(x, x), x64 * ref_gelu_grad(x64), dtype,
                          scale=4)


def test_gelu_large_multithreaded(simd, rng):
    saved = tinytape.get_num_threads()
    tinytape.set_num_threads(2)
    try:
        x = (3 * rng.standard_normal((1000, 1000))).astype(np.float32)
        x64 = x.astype(np.float64)
        assert_rows_close(backend.gelu(x), ref_gelu(x64), np.float32)
        assert_rows_close(backend.gelu_backward(x, x), x64 * ref_gelu_grad(x64), np.float32,
                          scale=4)
    finally:
        tinytape.set_num_threads(saved)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 300), dtype=st.sampled_from(DTYPES),
       scale=st.sampled_from([1e-3, 1.0, 4.0]), seed=st.integers(0, 2**32 - 1))
def test_gelu_hypothesis(n, dtype, scale, seed):
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal(n)).astype(dtype)
    x64 = x.astype(np.float64)
    for name in backend.available():
        with backend.use(name):
            assert_rows_close(backend.gelu(x), ref_gelu(x64), dtype)
            assert_rows_close(backend.gelu_backward(x, x), x64 * ref_gelu_grad(x64), dtype,
                              scale=scale**2 + 1)


def test_gelu_errors(any_backend):
    with pytest.raises(TypeError, match="gelu: x must be float32 or float64, got dtype int64"):
        backend.gelu(np.ones(3, np.int64))
    with pytest.raises(ValueError, match=r"shapes must match, got x \(2, 3\), dy \(3, 2\)"):
        backend.gelu_backward(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(TypeError, match="mixed dtypes"):
        backend.gelu_backward(np.ones(3), np.ones(3, np.float32))
