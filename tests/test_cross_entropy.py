"""Fused softmax cross-entropy against float64 references, ignore_index and bad targets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerances import assert_rows_close

from tinytape import backend

DTYPES = [np.float32, np.float64]


def reference(x64, t, ignore_index=-100, grad=1.0):
    """Loss and gradient in float64, written directly from the definitions."""
    x2 = x64.reshape(-1, x64.shape[-1])
    t1 = t.reshape(-1)
    keep = t1 != ignore_index
    count = int(keep.sum())
    m = x2.max(-1, keepdims=True) if x2.shape[-1] else np.zeros((x2.shape[0], 1))
    lse = (m + np.log(np.exp(x2 - m).sum(-1, keepdims=True)))[:, 0]
    rows = np.flatnonzero(keep)
    losses = lse[rows] - x2[rows, t1[keep]]
    loss = losses.sum() / count if count else 0.0
    d = np.exp(x2 - lse[:, None])
    d[rows, t1[keep]] -= 1
    d[~keep] = 0
    d *= grad / count if count else 0.0
    return loss, lse.reshape(t.shape), d.reshape(x64.shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,cols", [(1, 1), (5, 1), (1, 2), (7, 17), (13, 97), (64, 512),
                                       (3, 4099), (0, 5)])
def test_cross_entropy(simd, rng, dtype, rows, cols):
    x = (2 * rng.standard_normal((rows, cols))).astype(dtype)
    t = rng.integers(0, cols, rows)
    loss, lse = backend.cross_entropy(x, t)
    want_loss, want_lse, want_d = reference(x.astype(np.float64), t, grad=0.7)
    assert loss.shape == () and loss.dtype == dtype
    assert_rows_close(np.asarray(loss), np.asarray(want_loss), dtype, scale=10)
    assert_rows_close(lse, want_lse, dtype, scale=10)
    d = backend.cross_entropy_backward(x, t, lse, grad=0.7)
    assert_rows_close(d, want_d, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ignore_index_and_batch_dims(simd, rng, dtype):
    x = rng.standard_normal((4, 6, 11)).astype(dtype)
    t = rng.integers(0, 11, (4, 6))
    t[0, :3] = -100
    t[2, 5] = -100
    loss, lse = backend.cross_entropy(x, t)
    want_loss, want_lse, want_d = reference(x.astype(np.float64), t)
    assert_rows_close(np.asarray(loss), np.asarray(want_loss), dtype, scale=10)
    d = backend.cross_entropy_backward(x, t, lse)
    assert_rows_close(d, want_d, dtype)
    assert not d[0, :3].any() and not d[2, 5].any()
    # A custom ignore_index that is a valid class number.
    t2 = rng.integers(0, 11, (4, 6))
    loss2, lse2 = backend.cross_entropy(x, t2, ignore_index=3)
    want2 = reference(x.astype(np.float64), t2, ignore_index=3)
    assert_rows_close(np.asarray(loss2), np.asarray(want2[0]), dtype, scale=10)
    assert_rows_close(backend.cross_entropy_backward(x, t2, lse2, ignore_index=3), want2[2], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_rows_ignored_gives_zero_not_nan(simd, dtype):
    x = np.ones((3, 4), dtype)
    t = np.full(3, -100)
    loss, lse = backend.cross_entropy(x, t)
    assert float(loss) == 0.0
    np.testing.assert_array_equal(backend.cross_entropy_backward(x, t, lse), 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_logits(simd, rng, dtype):
    x = rng.choice([-1e4, 1e4], size=(9, 23)).astype(dtype)
    x[3] = 5.0  # a constant row
    t = rng.integers(0, 23, 9)
    loss, lse = backend.cross_entropy(x, t)
    d = backend.cross_entropy_backward(x, t, lse)
    assert np.isfinite(loss) and np.isfinite(lse).all() and np.isfinite(d).all()
    want_loss, want_lse, want_d = reference(x.astype(np.float64), t)
    np.testing.assert_allclose(float(loss), want_loss, rtol=1e-6)
    assert_rows_close(d, want_d, dtype)


@settings(max_examples=50, deadline=None)
@given(rows=st.integers(0, 20), cols=st.integers(1, 200), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**32 - 1), ignore_frac=st.sampled_from([0.0, 0.3, 1.0]))
def test_cross_entropy_hypothesis(rows, cols, dtype, seed, ignore_frac):
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((rows, cols))).astype(dtype)
    t = rng.integers(0, cols, rows)
    t[rng.random(rows) < ignore_frac] = -100
    want_loss, _, want_d = reference(x.astype(np.float64), t)
    for name in backend.available():
        with backend.use(name):
            loss, lse = backend.cross_entropy(x, t)
            d = backend.cross_entropy_backward(x, t, lse)
        assert_rows_close(np.asarray(loss), np.asarray(want_loss), dtype, scale=10)
        assert_rows_close(d, want_d, dtype)


def test_cross_entropy_errors(any_backend):
    x = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"target 5 at index \(2,\) is out of range for 5 classes"):
        backend.cross_entropy(x, np.array([0, 1, 5, 2]))
    with pytest.raises(ValueError, match=r"target -1 at index \(0,\) is out of range"):
        backend.cross_entropy(x, np.array([-1, 1, 0, 2]))
    with pytest.raises(ValueError, match=r"target 7 at index \(1,\)"):
        loss, lse = backend.cross_entropy(x, np.array([0, 1, 1, 2]))
        backend.cross_entropy_backward(x, np.array([0, 7, 1, 2]), lse)
    with pytest.raises(ValueError, match=r"targets of shape \(3,\) do not match logits of "
                                         r"shape \(4, 5\): expected targets of shape \(4,\)"):
        backend.cross_entropy(x, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="targets must be integers, got dtype float64"):
        backend.cross_entropy(x, np.zeros(4))
    with pytest.raises(TypeError, match="float32 or float64, got dtype int64"):
        backend.cross_entropy(np.zeros((4, 5), np.int64), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="out of range for 0 classes"):
        backend.cross_entropy(np.zeros((2, 0)), np.zeros(2, np.int64))
