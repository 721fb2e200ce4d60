"""The fused self-attention kernel against its float64 numpy reference: awkward shapes,
causal and full, dropout multipliers, threads, extreme and constant inputs, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from tolerances import EPS

import tinytape
from tinytape import backend

DTYPES = [np.float32, np.float64]
# (batch, tokens, heads, head size): 1s, primes, a head size of 1, the GPT bench's shape
SHAPES = [(1, 1, 1, 1), (2, 7, 3, 5), (3, 13, 2, 16), (1, 5, 4, 1), (4, 64, 4, 32)]


def _inputs(rng, b, t, h, d, dtype, dropout=False):
    qkv = rng.uniform(-1, 1, (b, t, 3 * h * d)).astype(dtype)
    keep = ((rng.random((b, h, t, t)) >= 0.25) / 0.75).astype(dtype) if dropout else None
    return qkv, keep, rng.uniform(-1, 1, (b, t, h * d)).astype(dtype)


def _bound(qkv, t, d, grads=False):
    """Absolute error allowed against float64 (|qkv| <= a, |grad_out| <= 1). A score is a
    dot of length d times 1/sqrt(d): error <= (d + 2) eps a^2 sqrt(d) (Higham's bound);
    softmax turns it into the same relative error of the weights, and an output sums t
    weighted values (another (t + 2) eps). A gradient goes through two more products of
    length t or d with factors of size a and |grad_out|. We allow twice these bounds; the
    errors seen are 1-12 eps, the bound for (4, 64, 4, 32) is ~1,300 eps."""
    eps = EPS[qkv.dtype]
    a = float(np.abs(qkv).max(initial=1.0))
    bound = 2 * (d + t + 2) * eps * (1 + a * a * np.sqrt(d))
    return bound * 2 * (1 + a) if grads else bound


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dropout", [False, True])
def test_attention_matches_reference(simd, rng, dtype, shape, causal, dropout):
    b, t, h, d = shape
    qkv, keep, g = _inputs(rng, b, t, h, d, dtype, dropout)
    out, weights = backend.attention(qkv, h, causal, keep)
    keep64 = None if keep is None else keep.astype(np.float64)
    want, want_w = backend.attention_reference(qkv.astype(np.float64), h, causal, keep64)
    assert out.dtype == weights.dtype == np.dtype(dtype)
    tol = _bound(qkv, t, d)
    np.testing.assert_allclose(out, want, rtol=0, atol=tol)
    np.testing.assert_allclose(weights, want_w, rtol=0, atol=tol)
    if causal:  # keys after the query weigh exactly 0
        assert not weights[..., np.triu_indices(t, 1)[0], np.triu_indices(t, 1)[1]].any()
    grad = backend.attention_backward(qkv, h, keep, weights, g, causal)
    want_g = backend.attention_backward_reference(qkv.astype(np.float64), h, keep64, want_w,
                                                  g.astype(np.float64), causal)
    np.testing.assert_allclose(grad, want_g, rtol=0, atol=_bound(qkv, t, d, grads=True))


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_threads_agree_exactly(rng, dtype):
    """Each (batch, head) pair runs whole on one thread: 1 and 2 threads give equal bits."""
    if "c" not in backend.available():
        pytest.skip("the C extension is not built")
    qkv, keep, g = _inputs(rng, 8, 64, 4, 32, dtype, dropout=True)
    saved = tinytape.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            tinytape.set_num_threads(threads)
            out, w = backend.attention(qkv, 4, True, keep)
            results.append((out, w, backend.attention_backward(qkv, 4, keep, w, g, True)))
    finally:
        tinytape.set_num_threads(saved)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


def test_attention_views_and_empty_shapes(any_backend, rng):
    qkv, _, g = _inputs(rng, 2, 6, 2, 3, np.float64)
    wide = np.zeros((2, 6, 40))
    wide[:, :, 1:19] = qkv
    view = wide[:, :, 1:19]  # non-contiguous rows
    out, w = backend.attention(view, 2, True)
    want, want_w = backend.attention_reference(qkv, 2, True)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-14)
    reversed_g = g[:, :, ::-1].copy()[:, :, ::-1]  # a negative-stride view of g's values
    grad = backend.attention_backward(view, 2, None, w, reversed_g, True)
    np.testing.assert_allclose(
        grad, backend.attention_backward_reference(qkv, 2, None, want_w, g, True),
        rtol=1e-12, atol=1e-14)
    for b, t in ((0, 4), (3, 0)):
        out, w = backend.attention(np.zeros((b, t, 12)), 2, True)
        assert out.shape == (b, t, 4) and w.shape == (b, 2, t, t)
        assert backend.attention_backward(np.zeros((b, t, 12)), 2, None, w,
                                          np.zeros((b, t, 4)), True).shape == (b, t, 12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_extreme_and_constant_inputs(simd, dtype):
    """Scores of +-1e8 (entries of 1e4) saturate to one-hot weights without inf or NaN;
    equal scores give uniform weights over the visible keys."""
    t, h, d = 5, 1, 2
    qkv = np.zeros((1, t, 3 * h * d), dtype)
    qkv[0, :, 0:2] = 1e4  # queries
    qkv[0, :, 2:4] = np.arange(t)[:, None] * 1e4 - 2e4  # keys: the largest is the last
    qkv[0, :, 4:6] = np.arange(t)[:, None]  # values: the key's position
    out, w = backend.attention(qkv, h, False)
    assert np.isfinite(out).all() and np.isfinite(w).all()
    np.testing.assert_array_equal(w[0, 0], np.eye(t, dtype=dtype)[[t - 1] * t])
    np.testing.assert_array_equal(out[0, :, 0], np.full(t, t - 1, dtype))
    grad = backend.attention_backward(qkv, h, None, w, np.ones((1, t, 2), dtype), False)
    assert np.isfinite(grad).all()
    # causal: query i still picks its own largest visible key, i
    out, w = backend.attention(qkv, h, True)
    np.testing.assert_array_equal(w[0, 0], np.eye(t, dtype=dtype))
    constant = np.ones((2, 4, 3 * 2 * 3), dtype)
    _, w = backend.attention(constant, 2, True)
    want = np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None]
    np.testing.assert_allclose(w, np.broadcast_to(want, w.shape), rtol=4 * EPS[np.dtype(dtype)])


def test_attention_bad_input(any_backend):
    qkv = np.zeros((2, 3, 12))
    with pytest.raises(ValueError, match=r"qkv must be \(B, T, 3 \* n_heads \* d\).*\(2, 3, 12\)"):
        backend.attention(qkv, 3)  # 12 is not 3 * 3 * d
    with pytest.raises(ValueError, match=r"qkv must be"):
        backend.attention(np.zeros((3, 12)), 2)
    with pytest.raises(TypeError, match="float32 or float64, got dtype int64"):
        backend.attention(np.zeros((2, 3, 12), np.int64), 2)
    with pytest.raises(ValueError, match=r"keep must have shape \(2, 2, 3, 3\), got \(2, 3, 3\)"):
        backend.attention(qkv, 2, keep=np.ones((2, 3, 3)))
    with pytest.raises(TypeError, match="mixed dtypes"):
        backend.attention(qkv, 2, keep=np.ones((2, 2, 3, 3), np.float32))
    _, w = backend.attention(qkv, 2)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 3, 4\), got \(2, 3, 6\)"):
        backend.attention_backward(qkv, 2, None, w, np.zeros((2, 3, 6)))
    with pytest.raises(ValueError, match=r"weights must have shape"):
        backend.attention_backward(qkv, 2, None, w[:, :1], np.zeros((2, 3, 4)))


def test_c_binding_rejects_inconsistent_buffers():
    """The Cython layer itself checks every extent, so C never runs past a buffer."""
    if "c" not in backend.available():
        pytest.skip("the C extension is not built")
    from tinytape import _C

    qkv = np.zeros((2, 3, 12))
    with pytest.raises(ValueError, match="internal"):
        _C.attention_fwd(qkv, 2, None, True, 1.0, np.empty((2, 2, 3, 2)), np.empty((2, 3, 4)))
    with pytest.raises(ValueError, match="internal"):
        _C.attention_fwd(qkv, 2, np.ones((2, 2, 3)), True, 1.0, np.empty((2, 2, 3, 3)),
                         np.empty((2, 3, 4)))
    with pytest.raises(ValueError, match="internal"):
        _C.attention_bwd(qkv, 2, None, np.zeros((2, 2, 3, 3)), np.zeros((2, 3, 4)), True, 1.0,
                         np.empty((2, 3, 11)))
    with pytest.raises(ValueError, match="internal"):
        _C.attention_fwd(qkv, 5, None, True, 1.0, np.empty((2, 5, 3, 3)), np.empty((2, 3, 4)))
