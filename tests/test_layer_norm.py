"""Layer norm forward and backward against float64 references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerances import assert_summed_close

from tinytape import backend

DTYPES = [np.float32, np.float64]


def reference(x, gamma, beta, dy, eps):
    """Forward and backward in float64 from the definitions."""
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    rstd = 1 / np.sqrt(var + eps)
    xhat = (x - mean) * rstd
    y = xhat * gamma + beta
    g = dy * gamma
    dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    axes = tuple(range(x.ndim - 1))
    return y, mean[..., 0], rstd[..., 0], dx, (dy * xhat).sum(axes), dy.sum(axes)


def _run(x, gamma, beta, dy, eps=1e-5):
    y, mean, rstd = backend.layer_norm(x, gamma, beta, eps)
    dx, dgamma, dbeta = backend.layer_norm_backward(dy, x, gamma, mean, rstd)
    return y, mean, rstd, dx, dgamma, dbeta


def magnitudes(x, gamma, beta, dy, eps):
    """Each output's formula with every term by its absolute value, in float64 (the scale
    of its rounding error). The mean carries a rounding of about eps mean|x| (none in a
    constant row, where it is exact); through var it moves rstd by a relative
    rho - 1 = rstd^2 mean|x - mean| mean|x|, large when the spread is tiny next to the
    offset. So |rstd| is taken as rho rstd and |xhat| as (rho |x - mean| + mean|x|) rstd."""
    mean = x.mean(-1, keepdims=True)
    centred = np.abs(x - mean)
    var = (centred**2).mean(-1, keepdims=True)
    rstd = 1 / np.sqrt(var + eps)
    mean_abs = np.abs(x).mean(-1, keepdims=True) * (var > 0)
    rho = 1 + rstd**2 * centred.mean(-1, keepdims=True) * mean_abs
    xm = (rho * centred + mean_abs) * rstd
    g = np.abs(dy * gamma)
    axes = tuple(range(x.ndim - 1))
    return (xm * np.abs(gamma) + np.abs(beta), np.abs(x).mean(-1), (rho * rstd)[..., 0],
            rho * rstd * (g + g.mean(-1, keepdims=True) + xm * (g * xm).mean(-1, keepdims=True)),
            (np.abs(dy) * xm).sum(axes), np.abs(dy).sum(axes))


def _compare(got, x, gamma, beta, dy, eps, dtype):
    """Every output within assert_summed_close's bound of the float64 reference (see
    tests/tolerances.py), sums being over a row (y, mean, rstd, dx) or over the rows
    (dgamma, dbeta)."""
    f64 = [a.astype(np.float64) for a in (x, gamma, beta, dy)]
    want, mags = reference(*f64, eps), magnitudes(*f64, eps)
    n = max(x.shape[-1], int(np.prod(x.shape[:-1])))
    for name, g, w, m in zip(["y", "mean", "rstd", "dx", "dgamma", "dbeta"], got, want, mags):
        assert g.dtype == np.dtype(dtype), f"layer_norm {name}: dtype {g.dtype}"
        assert_summed_close(g, w, m, n, f"layer_norm {name}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (5, 1), (3, 2), (7, 15), (7, 16), (7, 17), (13, 97),
                                   (64, 512), (2, 4099), (0, 5), (2, 3, 33)], ids=str)
def test_layer_norm(simd, rng, dtype, shape):
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    gamma = rng.standard_normal(shape[-1]).astype(dtype)
    beta = rng.standard_normal(shape[-1]).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    _compare(_run(x, gamma, beta, dy), x, gamma, beta, dy, 1e-5, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["constant_rows", "large_offset", "plus_minus_1e4"])
def test_layer_norm_extreme(simd, rng, dtype, case):
    shape = (6, 40)
    if case == "constant_rows":  # mean exact, xhat 0: y = beta exactly, dx = rstd (g - mean g)
        x = np.full(shape, 7.0, dtype)
    elif case == "large_offset":  # a one-pass E[x^2] - E[x]^2 would cancel catastrophically;
        # centering loses ~eps * 1e4 in any precision, which the bound's mean|x| term carries
        x = (1e4 + rng.standard_normal(shape)).astype(dtype)
    else:
        x = rng.choice([-1e4, 1e4], size=shape).astype(dtype)
    gamma, beta = np.ones(40, dtype), np.zeros(40, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    got = _run(x, gamma, beta, dy)
    for g in got:
        assert np.isfinite(g).all()
    _compare(got, x, gamma, beta, dy, 1e-5, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_defaults_and_views(simd, rng, dtype):
    base = rng.standard_normal((30, 20)).astype(dtype)
    x = base.T[::2]  # non-contiguous
    y, mean, rstd = backend.layer_norm(x)
    ones, zeros = np.ones(30, dtype), np.zeros(30, dtype)
    dy = np.zeros(x.shape, dtype)
    dx, dgamma, dbeta = backend.layer_norm_backward(dy, x, ones, mean, rstd)
    _compare((y, mean, rstd, dx, dgamma, dbeta), x, ones, zeros, dy, 1e-5, dtype)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(0, 10), cols=st.integers(1, 200), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**32 - 1), eps=st.sampled_from([1e-5, 1e-12, 0.1]))
def test_layer_norm_hypothesis(rows, cols, dtype, seed, eps):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols)).astype(dtype)
    gamma = rng.standard_normal(cols).astype(dtype)
    beta = rng.standard_normal(cols).astype(dtype)
    dy = rng.standard_normal((rows, cols)).astype(dtype)
    if cols == 1:
        eps = max(eps, 1e-5)  # var == 0, so rstd = eps**-0.5: keep it representable
    for name in backend.available():
        with backend.use(name):
            _compare(_run(x, gamma, beta, dy, eps), x, gamma, beta, dy, eps, dtype)


def test_layer_norm_errors(any_backend):
    x = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"gamma has shape \(4,\), expected \(5,\) for x of "
                                         r"shape \(4, 5\)"):
        backend.layer_norm(x, np.ones(4, np.float32))
    with pytest.raises(TypeError, match="mixed dtypes"):
        backend.layer_norm(x, np.ones(5))
    with pytest.raises(ValueError, match="empty last axis"):
        backend.layer_norm(np.ones((3, 0)))
    with pytest.raises(ValueError, match=r"mean has shape \(3,\), expected \(4,\)"):
        backend.layer_norm_backward(x, x, np.ones(5, np.float32), np.ones(3, np.float32),
                                    np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"shapes must match"):
        backend.layer_norm_backward(x[:2], x, None, np.ones(4, np.float32),
                                    np.ones(4, np.float32))
    with pytest.raises(ValueError, match="eps must be >= 0"):
        backend.layer_norm(x, eps=-1.0)
