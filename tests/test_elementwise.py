"""Sigmoid and the sigmoid and tanh backwards (tinytape/backend/elementwise.py): the C
kernels on every SIMD path against the numpy references and against exact values.

The forward is checked against sigmoid in extended precision (np.longdouble: 80-bit on
x86-64) within 4 eps relative, with an absolute floor of the smallest normal number: the
kernel's exp (tt_math.h, ~1.5 ulp) and two roundings measured at most 1.75 eps on every
path (2.5 ulp), the numpy reference 2.1 eps; below the smallest normal the kernel gives 0
(measured error 8e-39 in float32). The backwards are a subtraction and two products, in
the same order and with no fused multiply-add on every path and in numpy, so the kernels
must equal the references bit for bit; they are also checked against the float64 formula.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import kernel_threads
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytape import backend
from tinytape.backend import elementwise

DTYPES = [np.float32, np.float64]
# 0-d, empty, and lengths around the vector widths (4 to 16 values) and their tails
SHAPES = [(), (0,), (1,), (7,), (17,), (33,), (1000,), (1031,), (3, 4099), (2, 3, 5), (1, 0, 3)]
BACKWARDS = {
    "sigmoid_backward": (
        backend.sigmoid_backward,
        elementwise.sigmoid_backward_reference,
        lambda y, dy: dy * (1 - y) * y,
    ),
    "tanh_backward": (
        backend.tanh_backward,
        elementwise.tanh_backward_reference,
        lambda y, dy: dy * (1 - y * y),
    ),
}


def exact_sigmoid(x: np.ndarray) -> np.ndarray:
    """sigmoid of x in extended precision, without overflow."""
    xl = x.astype(np.longdouble)
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(xl))
    return np.where(xl >= 0, 1 / (1 + e), e / (1 + e))


def assert_sigmoid_close(got: np.ndarray, x: np.ndarray, what: str) -> None:
    assert got.dtype == x.dtype and got.shape == x.shape, what
    want = exact_sigmoid(x)
    eps, tiny = np.finfo(x.dtype).eps, np.finfo(x.dtype).tiny
    err = np.abs(got.astype(np.longdouble) - want)
    bad = ~(err <= 4 * eps * want + tiny)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: sigmoid({x[i]!r}) = {got[i]!r}, expected {float(want[i])!r} "
            f"({int(bad.sum())} values out of bound)"
        )


def _inputs(rng, shape, dtype, scale=6.0):
    x = (scale * rng.standard_normal(shape)).astype(dtype)
    y = elementwise.sigmoid_reference(x)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, y, dy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_sigmoid(simd, rng, dtype, shape):
    x, _, _ = _inputs(rng, shape, dtype)
    got = backend.sigmoid(x)
    assert type(got) is np.ndarray and got.flags.c_contiguous
    assert_sigmoid_close(got, x, f"kernel {np.dtype(dtype)} {shape}")
    assert_sigmoid_close(elementwise.sigmoid_reference(x), x, "numpy reference")


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_whole_range(simd, dtype):
    """Every exponent range: deep negatives (a subnormal or zero result), the overflow
    bound of e^x, values near 0 and up to the largest finite value."""
    info = np.finfo(dtype)
    bound = 120 if dtype == np.float32 else 760
    grid = np.linspace(-bound, bound, 20011)
    tiny, huge = info.tiny, info.max
    special = [0.0, -0.0, tiny, -tiny, 1e-30, -1e-30, huge, -huge, 88.0, 89.0, 709.0, 710.0]
    x = np.concatenate([grid, special, [-87.5, -745.0]])
    x = x.astype(dtype)
    got = backend.sigmoid(x)
    assert_sigmoid_close(got, x, f"kernel {np.dtype(dtype)}")
    assert (got >= 0).all() and (got <= 1).all()
    np.testing.assert_array_equal(backend.sigmoid(np.array([info.max, -info.max], dtype)), [1, 0])
    # monotone on the sorted grid (non-decreasing: it saturates at 0 and 1)
    assert (np.diff(got[: grid.size]) >= 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(BACKWARDS))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_backward(simd, rng, dtype, shape, name):
    kernel, reference, formula = BACKWARDS[name]
    _, y, dy = _inputs(rng, shape, dtype)
    if name == "tanh_backward":
        y = np.tanh(2 * y - 1).astype(dtype)  # a tanh output, some near +-1
    got = kernel(y, dy)
    want = reference(y, dy)
    assert got.dtype == np.dtype(dtype) and got.shape == y.shape
    np.testing.assert_array_equal(got, want, err_msg=f"{name}: kernel vs numpy reference")
    exact = formula(y.astype(np.float64), dy.astype(np.float64))
    tol = 4 * np.finfo(dtype).eps
    np.testing.assert_allclose(got, exact, rtol=tol, atol=tol * np.abs(dy).max(initial=0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_any_layout(simd, rng, dtype):
    """Views that are not C-contiguous, read-only and misaligned arrays, 0-d arrays and
    numbers: copied or read where they are, never misread."""
    base = (4 * rng.standard_normal((20, 30))).astype(dtype)
    readonly = base.copy()
    readonly.flags.writeable = False
    raw = np.zeros(base.nbytes + 1, np.uint8)
    misaligned = np.frombuffer(raw.data, dtype, base.size, offset=1).reshape(base.shape)
    assert not misaligned.flags.aligned
    misaligned[...] = base
    views = [
        base.T,
        base[::2, 1::3],
        base[:, ::-1],
        np.asfortranarray(base),
        readonly,
        misaligned,
        base[3, 4:5].reshape(()),
        np.broadcast_to(base[0], (4, 30)),
    ]
    for x in views:
        y = elementwise.sigmoid_reference(x)
        got = backend.sigmoid(x)
        assert got.shape == x.shape
        assert_sigmoid_close(got, x, f"layout {x.shape} strides {x.strides}")
        for name, (kernel, reference, _) in BACKWARDS.items():
            np.testing.assert_array_equal(kernel(y, x), reference(y, x), err_msg=name)
            np.testing.assert_array_equal(kernel(x, y.copy()), reference(x, y), err_msg=name)
    assert backend.sigmoid(np.array(0.0, dtype)).shape == ()
    assert backend.sigmoid(np.array(0.0, dtype))[()] == 0.5
    assert backend.sigmoid([0.0, 0.0]).dtype == np.float64  # array-likes, as np.asarray


@pytest.mark.parametrize("dtype", DTYPES)
def test_two_threads_match_one_bit_for_bit(simd, dtype):
    """Over the split size (TT_MT_MIN_WORK): the values split over two threads must come
    out as on one (elementwise, so no order of operations changes)."""
    x, y, dy = _inputs(np.random.default_rng(5), (1_000_003,), dtype)
    x[7] = np.nan
    dy[11] = np.inf
    out = []
    for threads in (1, 2):
        with kernel_threads(threads):
            out.append(
                [backend.sigmoid(x), backend.sigmoid_backward(y, dy), backend.tanh_backward(y, dy)]
            )
    for one, two in zip(*out):
        np.testing.assert_array_equal(one, two)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 300),
    dtype=st.sampled_from(DTYPES),
    scale=st.sampled_from([1e-3, 1.0, 30.0, 300.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_hypothesis(n, dtype, scale, seed):
    rng = np.random.default_rng(seed)
    x, y, dy = _inputs(rng, (n,), dtype, scale)
    for name in backend.available():
        with backend.use(name):
            assert_sigmoid_close(backend.sigmoid(x), x, name)
            for kernel, reference, _ in BACKWARDS.values():
                np.testing.assert_array_equal(kernel(y, dy), reference(y, dy))


def test_errors(any_backend):
    """Both backends refuse bad arguments alike, naming the op, the dtypes and shapes."""
    with pytest.raises(TypeError, match="sigmoid: x must be float32 or float64, got dtype int64"):
        backend.sigmoid(np.ones(3, np.int64))
    with pytest.raises(TypeError, match="sigmoid: x must be float32 or float64, got dtype >f4"):
        backend.sigmoid(np.ones(3, ">f4"))
    with pytest.raises(TypeError, match="sigmoid: x must be float32 or float64, got dtype float16"):
        backend.sigmoid(np.ones(3, np.float16))
    for op in ("sigmoid_backward", "tanh_backward"):
        fn = getattr(backend, op)
        message = rf"{op}: shapes must match, got y \(2, 3\), dy \(3, 2\)"
        with pytest.raises(ValueError, match=message):
            fn(np.ones((2, 3)), np.ones((3, 2)))
        with pytest.raises(ValueError, match=rf"{op}: shapes must match, got y \(3,\), dy \(\)"):
            fn(np.ones(3), np.ones(()))
        with pytest.raises(TypeError, match=rf"{op}: mixed dtypes \(y float64, dy float32\)"):
            fn(np.ones(3), np.ones(3, np.float32))
        message = rf"{op}: dy must be float32 or float64, got dtype int32"
        with pytest.raises(TypeError, match=message):
            fn(np.ones(3), np.ones(3, np.int32))
