"""Sigmoid, the sigmoid and tanh backwards and ReLU (tinytape/backend/elementwise.py): the
C kernels on every SIMD path against the numpy references and against exact values.

The forward is checked against sigmoid in extended precision (np.longdouble: 80-bit on
x86-64) within 4 eps relative, with an absolute floor of the smallest normal number: the
kernel's exp (tt_math.h, ~1.5 ulp) and two roundings measured at most 1.75 eps on every
path (2.5 ulp), the numpy reference 2.1 eps; below the smallest normal the kernel gives 0
(measured error 8e-39 in float32). The backwards are a subtraction and two products, in
the same order and with no fused multiply-add on every path and in numpy, so the kernels
must equal the references bit for bit; they are also checked against the float64 formula.
ReLU's forward, mask and backward (a select) are exact, so the kernels must equal the
references bit for bit too (the sign of zero included), and PyTorch's relu and
threshold_backward where it is installed.
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


def odd_layouts(base: np.ndarray) -> list[np.ndarray]:
    """base (20, 30) as the kernels' awkward inputs: transposed, strided, reversed,
    Fortran-order, read-only and misaligned arrays, a 0-d view and a broadcast one."""
    readonly = base.copy()
    readonly.flags.writeable = False
    raw = np.zeros(base.nbytes + 1, np.uint8)
    misaligned = np.frombuffer(raw.data, base.dtype, base.size, offset=1).reshape(base.shape)
    assert not misaligned.flags.aligned
    misaligned[...] = base
    return [
        base.T,
        base[::2, 1::3],
        base[:, ::-1],
        np.asfortranarray(base),
        readonly,
        misaligned,
        base[3, 4:5].reshape(()),
        np.broadcast_to(base[0], (4, 30)),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_any_layout(simd, rng, dtype):
    """Views that are not C-contiguous, read-only and misaligned arrays, 0-d arrays and
    numbers: copied or read where they are, never misread."""
    base = (4 * rng.standard_normal((20, 30))).astype(dtype)
    views = odd_layouts(base)
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


# ------------------------------------------------------------------------ ReLU


def _relu_inputs(rng, shape, dtype):
    """x with zeros of both signs, NaN and +-inf among normal values; dy likewise, so that
    specials in dy meet both values of the mask."""
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    specials = np.array([0.0, -0.0, np.nan, np.inf, -np.inf], dtype)
    flat_x, flat_dy = x.reshape(-1), dy.reshape(-1)
    k = flat_x.size // 7
    flat_x[: 5 * k : 5] = np.resize(specials, k)
    flat_dy[3 : 3 + 7 * k : 7] = np.resize(specials[2:], k)
    return x, dy


def relu_by_hand(x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """relu, its mask and its backward value by value, from the definitions."""
    keep = ~(x <= 0)  # true for x > 0 and for NaN
    y = np.array([v if k else 0.0 for v, k in zip(x.reshape(-1), keep.reshape(-1))], x.dtype)
    dx = np.array([g if k else 0.0 for g, k in zip(dy.reshape(-1), keep.reshape(-1))], x.dtype)
    return y.reshape(x.shape), keep, dx.reshape(x.shape)


def assert_same_bits(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Equal values, NaN where NaN, and the same sign of zero."""
    assert got.dtype == want.dtype and got.shape == want.shape, what
    np.testing.assert_array_equal(got, want, err_msg=what)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want), err_msg=f"{what}: sign")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_relu(simd, rng, dtype, shape):
    x, dy = _relu_inputs(rng, shape, dtype)
    y, mask = backend.relu_with_mask(x)
    assert type(y) is np.ndarray and y.flags.c_contiguous and mask.dtype == np.bool_
    want_y, want_mask, want_dx = relu_by_hand(x, dy)
    assert_same_bits(y, want_y, "relu_with_mask")
    np.testing.assert_array_equal(mask, want_mask)
    assert_same_bits(backend.relu(x), want_y, "relu")
    dx = backend.relu_backward(mask, dy)
    assert_same_bits(dx, want_dx, "relu_backward")
    # the numpy references, to the bit
    ref_y, ref_mask = elementwise.relu_with_mask_reference(x)
    assert_same_bits(y, ref_y, "relu vs reference")
    np.testing.assert_array_equal(mask, ref_mask)
    assert_same_bits(dx, elementwise.relu_backward_reference(ref_mask, dy), "backward vs ref")


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_matches_torch(any_backend, rng, dtype):
    """torch.relu, and threshold_backward through autograd: the select leaves 0 where
    x <= 0 whatever dy holds, and passes dy at NaN."""
    torch = pytest.importorskip("torch")
    x, dy = _relu_inputs(rng, (5, 203), dtype)
    y, mask = backend.relu_with_mask(x)
    dx = backend.relu_backward(mask, dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.relu(tx)
    ty.backward(torch.tensor(dy))
    # PyTorch's relu(-0) is -0, ours +0 (numpy's maximum): equal values, checked as such
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(dx, tx.grad.numpy())
    assert_same_bits(dx, tx.grad.numpy() + 0, "relu backward")  # + 0: no -0 in either


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_any_layout(simd, rng, dtype):
    """Views that are not C-contiguous, read-only and misaligned arrays, a non-contiguous
    mask, 0-d arrays and lists."""
    base, dy_base = _relu_inputs(rng, (20, 30), dtype)
    views = odd_layouts(base)
    for x in views:
        dy = np.resize(dy_base, x.shape)  # C-contiguous, specials included
        want_y, want_mask, want_dx = relu_by_hand(np.asarray(x), dy)
        y, mask = backend.relu_with_mask(x)
        assert_same_bits(y, want_y, f"layout {x.shape} strides {x.strides}")
        np.testing.assert_array_equal(mask, want_mask)
        assert_same_bits(backend.relu_backward(mask, dy), want_dx, "backward")
        if x.ndim == 2:  # a transposed mask and dy
            got = backend.relu_backward(mask.T, dy.T)
            assert_same_bits(got, want_dx.T, "backward of transposed mask and dy")
    assert backend.relu(np.array(-2.0, dtype)).shape == ()
    assert backend.relu([-1.0, 2.0]).tolist() == [0.0, 2.0]
    assert backend.relu_backward([True, False], [3.0, np.inf]).tolist() == [3.0, 0.0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_two_threads_match_one_bit_for_bit(simd, dtype):
    x, dy = _relu_inputs(np.random.default_rng(5), (1_000_003,), dtype)
    out = []
    for threads in (1, 2):
        with kernel_threads(threads):
            y, mask = backend.relu_with_mask(x)
            out.append([y, mask, backend.relu(x), backend.relu_backward(mask, dy)])
    for one, two in zip(*out):
        np.testing.assert_array_equal(one.view(np.uint8), two.view(np.uint8))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 300), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
def test_relu_hypothesis(n, dtype, seed):
    x, dy = _relu_inputs(np.random.default_rng(seed), (n,), dtype)
    want_y, want_mask, want_dx = relu_by_hand(x, dy)
    for name in backend.available():
        with backend.use(name):
            y, mask = backend.relu_with_mask(x)
            assert_same_bits(y, want_y, name)
            np.testing.assert_array_equal(mask, want_mask)
            assert_same_bits(backend.relu_backward(mask, dy), want_dx, name)


def test_relu_errors(any_backend):
    with pytest.raises(TypeError, match="relu: x must be float32 or float64, got dtype int64"):
        backend.relu(np.ones(3, np.int64))
    with pytest.raises(TypeError, match="relu: x must be float32 or float64, got dtype float16"):
        backend.relu_with_mask(np.ones(3, np.float16))
    op = "relu_backward"
    with pytest.raises(TypeError, match=f"{op}: mask must be bool, got dtype float64"):
        backend.relu_backward(np.ones(3), np.ones(3))
    with pytest.raises(TypeError, match=f"{op}: dy must be float32 or float64, got dtype int32"):
        backend.relu_backward(np.ones(3, bool), np.ones(3, np.int32))
    with pytest.raises(
        ValueError, match=rf"{op}: shapes must match, got mask \(2, 3\), dy \(3, 2\)"
    ):
        backend.relu_backward(np.ones((2, 3), bool), np.ones((3, 2)))
    with pytest.raises(ValueError, match=rf"{op}: shapes must match, got mask \(3,\), dy \(\)"):
        backend.relu_backward(np.ones(3, bool), np.ones(()))


@pytest.mark.parametrize("create_graph", [False, True])
def test_relu_op_backward_selects(any_backend, create_graph):
    """Through the tape, first order and recorded (create_graph): an infinite or NaN
    upstream gradient where x <= 0 gives 0 (a product with the mask would give NaN), and
    the recorded gradient differentiates again (relu(x)^2 / 2 -> relu'(x) x -> relu'(x))."""
    import tinytape as tt

    x = tt.tensor(np.array([-1.0, 0.0, np.nan, 2.0, -np.inf]), requires_grad=True)
    y = tt.relu(x)
    upstream = tt.tensor(np.array([np.inf, np.nan, 3.0, -np.inf, 1.0]))
    (gx,) = tt.grad(y, [x], grad_outputs=[upstream], create_graph=create_graph)
    np.testing.assert_array_equal(gx.numpy(), [0.0, 0.0, 3.0, -np.inf, 0.0])
    if create_graph:
        x2 = tt.tensor(np.array([-1.5, 0.5, 2.0]), requires_grad=True)
        r = tt.relu(x2)
        (g1,) = tt.grad((r * r).sum() * 0.5, [x2], create_graph=True)
        np.testing.assert_array_equal(g1.numpy(), [0.0, 0.5, 2.0])
        (g2,) = tt.grad(g1.sum(), [x2])
        np.testing.assert_array_equal(g2.numpy(), [0.0, 1.0, 1.0])
