"""NaN and +-inf through the elementwise ops of one tensor, forward and first derivative.

tests/test_nonfinite.py holds the C kernels to the rule of docs/numerics.md (the formula
PyTorch evaluates, in IEEE arithmetic); this file holds the ops built on numpy to the same
rule: each op's value and gradient on NaN, +inf, -inf and a few finite points next to
them, against values derived by hand and against PyTorch where it is installed, on both
backends, float32 and float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinytape as tt

NAN, INF = math.nan, math.inf
POINTS = [NAN, INF, -INF, -2.0, -0.5, 0.5, 3.0]

# op -> (its value at POINTS, its derivative at POINTS), derived by hand
BY_HAND = {
    "relu": (
        [NAN, INF, 0.0, 0.0, 0.0, 0.5, 3.0],
        [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0],  # PyTorch's "not (relu(x) <= 0)": 1 at NaN
    ),
    "exp": (
        [NAN, INF, 0.0, math.exp(-2.0), math.exp(-0.5), math.exp(0.5), math.exp(3.0)],
        [NAN, INF, 0.0, math.exp(-2.0), math.exp(-0.5), math.exp(0.5), math.exp(3.0)],
    ),
    "tanh": (
        [NAN, 1.0, -1.0, math.tanh(-2.0), math.tanh(-0.5), math.tanh(0.5), math.tanh(3.0)],
        [NAN, 0.0, 0.0] + [1 - math.tanh(v) ** 2 for v in POINTS[3:]],
    ),
    "sigmoid": (
        [NAN, 1.0, 0.0] + [1 / (1 + math.exp(-v)) for v in POINTS[3:]],
        [NAN, 0.0, 0.0] + [math.exp(-v) / (1 + math.exp(-v)) ** 2 for v in POINTS[3:]],
    ),
    "abs": (
        [NAN, INF, INF, 2.0, 0.5, 0.5, 3.0],
        [0.0, 1.0, -1.0, -1.0, -1.0, 1.0, 1.0],  # (x > 0) - (x < 0): 0 at NaN, as PyTorch's
    ),
}


def _value_and_grad(op, dtype):
    x = tt.tensor(np.array(POINTS, dtype=dtype), requires_grad=True)
    y = getattr(tt, op)(x)
    y.sum().backward()
    return y.numpy(), x.grad.numpy()


def _assert_same(got, want, what, dtype):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert (np.isnan(got) == np.isnan(want)).all(), f"{what}: NaN at {got} vs {want}"
    assert (np.isposinf(got) == np.isposinf(want)).all(), f"{what}: +inf at {got} vs {want}"
    assert (np.isneginf(got) == np.isneginf(want)).all(), f"{what}: -inf at {got} vs {want}"
    finite = np.isfinite(want)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got[finite], want[finite], rtol=tol, atol=tol, err_msg=what)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", sorted(BY_HAND))
def test_by_hand(any_backend, op, dtype):
    value, grad = _value_and_grad(op, dtype)
    want_value, want_grad = BY_HAND[op]
    _assert_same(value, want_value, f"{op} value", dtype)
    _assert_same(grad, want_grad, f"{op} gradient", dtype)


TORCH_OPS = ["relu", "exp", "tanh", "sigmoid", "abs", "sqrt", "log", "softplus", "gelu"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", TORCH_OPS)
def test_matches_torch(any_backend, op, dtype):
    torch = pytest.importorskip("torch")
    fn = {
        "gelu": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
        "softplus": torch.nn.functional.softplus,
    }.get(op) or getattr(torch, op)
    with np.errstate(invalid="ignore", divide="ignore"):  # log and sqrt of negatives
        value, grad = _value_and_grad(op, dtype)
    x = torch.tensor(np.array(POINTS, dtype=dtype), requires_grad=True)
    y = fn(x)
    y.sum().backward()
    _assert_same(value, y.detach().numpy(), f"{op} value", dtype)
    _assert_same(grad, x.grad.numpy(), f"{op} gradient", dtype)
