"""Softmax and log-softmax kernels against float64 references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerances import assert_rows_close

from tinytape import backend

DTYPES = [np.float32, np.float64]
SHAPES = [(0, 5), (3, 0), (1, 1), (5, 1), (1, 2), (7, 15), (7, 16), (7, 17), (3, 31), (3, 33),
          (13, 97), (4, 512), (2, 1000), (2, 4099), (2, 3, 5)]


def ref_softmax(x64):
    e = np.exp(x64 - x64.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ref_log_softmax(x64):
    s = x64 - x64.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def _inputs(rng, shape, dtype, scale=3.0):
    return (scale * rng.standard_normal(shape)).astype(dtype), \
        rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_softmax(simd, rng, dtype, shape):
    x, dy = _inputs(rng, shape, dtype)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    y = backend.softmax(x)
    want = ref_softmax(x64) if x.size else x64
    assert_rows_close(y, want, dtype)
    dx = backend.softmax_backward(y, dy)
    y64 = y.astype(np.float64)
    assert_rows_close(dx, y64 * (dy64 - (dy64 * y64).sum(-1, keepdims=True)), dtype, scale=4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_log_softmax(simd, rng, dtype, shape):
    x, dy = _inputs(rng, shape, dtype)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    y = backend.log_softmax(x)
    want = ref_log_softmax(x64) if x.size else x64
    # log-softmax values reach -|x| ~ 20, so the absolute tolerance scales with them.
    assert_rows_close(y, want, dtype, scale=20)
    dx = backend.log_softmax_backward(y, dy)
    want_dx = dy64 - np.exp(y.astype(np.float64)) * dy64.sum(-1, keepdims=True)
    assert_rows_close(dx, want_dx, dtype, scale=float(np.sqrt(max(shape[-1], 1))))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["plus_minus_1e4", "constant", "one_hot_huge", "tiny"])
def test_softmax_extreme_values(simd, rng, dtype, case):
    rows, cols = 6, 37
    if case == "plus_minus_1e4":
        x = rng.choice([-1e4, 1e4], size=(rows, cols)).astype(dtype)
    elif case == "constant":
        x = np.full((rows, cols), 123.0, dtype)
    elif case == "one_hot_huge":
        x = np.zeros((rows, cols), dtype)
        x[:, 5] = 1e4
    else:
        x = (1e-30 * rng.standard_normal((rows, cols))).astype(dtype)
    x64 = x.astype(np.float64)
    y, ly = backend.softmax(x), backend.log_softmax(x)
    assert np.isfinite(y).all() and np.isfinite(ly).all()
    assert_rows_close(y, ref_softmax(x64), dtype)
    # log-softmax of +-1e4 logits is exactly -2e4 for the losers: relative tolerance covers it.
    assert_rows_close(ly, ref_log_softmax(x64), dtype)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_of_length_one(simd, dtype):
    x = np.array([[1e4], [-1e4], [0.0], [3.5]], dtype)
    np.testing.assert_array_equal(backend.softmax(x), np.ones_like(x))
    np.testing.assert_array_equal(backend.log_softmax(x), np.zeros_like(x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_input(simd, rng, dtype):
    base = rng.standard_normal((20, 30)).astype(dtype)
    for x in (base.T, base[::2, 1::3], base[:, ::-1]):
        assert_rows_close(backend.softmax(x), ref_softmax(x.astype(np.float64)), dtype)
        assert_rows_close(backend.log_softmax(x), ref_log_softmax(x.astype(np.float64)),
                          dtype, scale=10)


def test_large_multithreaded(simd, rng):
    import tinytape

    saved = tinytape.get_num_threads()
    tinytape.set_num_threads(2)
    try:
        x = rng.standard_normal((4096, 512)).astype(np.float32)
        assert_rows_close(backend.softmax(x), ref_softmax(x.astype(np.float64)), np.float32)
    finally:
        tinytape.set_num_threads(saved)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(0, 12), cols=st.integers(0, 300), dtype=st.sampled_from(DTYPES),
       scale=st.sampled_from([1e-3, 1.0, 30.0]), seed=st.integers(0, 2**32 - 1))
def test_softmax_hypothesis(rows, cols, dtype, scale, seed):
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal((rows, cols))).astype(dtype)
    x64 = x.astype(np.float64)
    for name in backend.available():
        with backend.use(name):
            got = backend.softmax(x)
            lgot = backend.log_softmax(x)
        if x.size:
            assert_rows_close(got, ref_softmax(x64), dtype)
            assert_rows_close(lgot, ref_log_softmax(x64), dtype, scale=scale * 10)


def test_softmax_errors(any_backend):
    with pytest.raises(TypeError, match="softmax: x must be float32 or float64, got dtype int64"):
        backend.softmax(np.ones((2, 3), np.int64))
    with pytest.raises(ValueError, match="at least one dimension"):
        backend.log_softmax(np.float32(1.0))
    with pytest.raises(ValueError, match=r"shapes must match, got y \(2, 3\), dy \(3, 2\)"):
        backend.softmax_backward(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(TypeError, match="mixed dtypes"):
        backend.log_softmax_backward(np.ones((2, 3)), np.ones((2, 3), np.float32))
