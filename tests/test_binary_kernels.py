"""add, sub, mul and div (tinytape/backend/elementwise.py): the C kernels on every SIMD path
against numpy's ufuncs, bit for bit, with numpy's floating-point warnings and errors, and
the ufunc taking every case the kernels do not cover.

Each result is one correctly rounded IEEE operation, so the kernels must give numpy's
bits, -0.0 and +-inf included. The one freedom IEEE leaves is which NaN comes out of an
operation on two NaNs (numpy's own answer depends on the operand order and on its loop):
there only a NaN is required.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import kernel_threads
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytape
from tinytape import backend
from tinytape.backend import _state

OPS = {
    "add": (backend.add, np.add),
    "sub": (backend.sub, np.subtract),
    "mul": (backend.mul, np.multiply),
    "div": (backend.div, np.true_divide),
}
DTYPES = [np.float32, np.float64]
UINT = {
    np.dtype(t): u
    for t, u in [(np.float16, np.uint16), (np.float32, np.uint32), (np.float64, np.uint64)]
}
# (shape of a, shape of b): one shape (0-d, empty, lengths around the vector widths and
# their tails), or one single value (size 1, no more dimensions) on either side
PAIRS = [
    ((), ()),
    ((0,), (0,)),
    ((1,), (1,)),
    ((7,), (7,)),
    ((33,), (33,)),
    ((1031,), (1031,)),
    ((3, 4099), (3, 4099)),
    ((2, 3, 5), (2, 3, 5)),
    ((17,), ()),
    ((), (17,)),
    ((3, 5), (1,)),
    ((1, 1), (3, 5)),
    ((0, 3), ()),
    ((1,), (0,)),
    ((), (1, 1)),
]


def specials(dtype: type) -> np.ndarray:
    """NaN of both signs and with a payload, +-inf, +-0, the extremes, a subnormal, and
    ordinary values."""
    info = np.finfo(dtype)
    payload = np.array([0x7FC00123 if dtype == np.float32 else 0x7FF8000000000123])
    nan = payload.astype(UINT[np.dtype(dtype)]).view(dtype)
    values = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 3.0, -0.1]
    values += [info.max, -info.max, info.tiny, info.smallest_subnormal, 2.0 ** (info.nmant + 1)]
    return np.concatenate([np.array(values, dtype), nan, -nan])


def assert_same_bits(got, want, a, b, what: str) -> None:
    """got == want bit for bit, except that where both operands are NaN any NaN will do."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, what
    u = UINT[got.dtype]
    differ = got.view(u) != want.view(u)
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    both_nan = np.isnan(a) & np.isnan(b)
    assert np.isnan(got[both_nan]).all(), what
    bad = differ & ~both_nan
    if bad.any():
        i = tuple(int(j) for j in np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: {a[i]!r} (op) {b[i]!r} gave {got[i]!r}, numpy {want[i]!r} "
            f"({int(bad.sum())} values differ)"
        )


def _values(rng, shape, dtype):
    x = np.array(4 * rng.standard_normal(shape), dtype)
    flat = x.reshape(-1)
    pick = rng.random(flat.size) < 0.1
    flat[pick] = rng.choice(specials(dtype), int(pick.sum()))
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("shapes", PAIRS, ids=str)
def test_matches_numpy_bit_for_bit(simd, rng, dtype, op, shapes):
    kernel, ufunc = OPS[op]
    a, b = _values(rng, shapes[0], dtype), _values(rng, shapes[1], dtype)
    with np.errstate(all="ignore"):
        assert getattr(_state.native, op)(a, b) is not None  # the kernel, not the fallback
        got, want = kernel(a, b), ufunc(a, b)
    assert type(got) is np.ndarray and got.flags.c_contiguous
    assert_same_bits(got, want, a, b, f"{op} {np.dtype(dtype)} {shapes}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", sorted(OPS))
def test_every_pair_of_special_values(simd, dtype, op):
    """Every ordered pair of special values, as two arrays and with either one a single
    value: division by +-0, inf - inf, 0 * inf, overflow to inf, -0.0 results."""
    kernel, ufunc = OPS[op]
    s = specials(dtype)
    a, b = np.repeat(s, s.size), np.tile(s, s.size)
    with np.errstate(all="ignore"):
        assert_same_bits(kernel(a, b), ufunc(a, b), a, b, f"{op} arrays")
        for i in range(s.size):
            one = s[i : i + 1].copy()
            assert_same_bits(kernel(a, one), ufunc(a, one), a, one, f"{op} a, {s[i]!r}")
            assert_same_bits(kernel(one, a), ufunc(one, a), one, a, f"{op} {s[i]!r}, a")
    # and values worked out by hand
    if op == "div":
        with np.errstate(all="ignore"):
            got = kernel(np.array([1, -1, 0, 1, -1], dtype), np.array([0, 0, 0, -0.0, -0.0], dtype))
        np.testing.assert_array_equal(got, [np.inf, -np.inf, np.nan, -np.inf, np.inf])
    if op == "sub":
        assert np.signbit(kernel(np.zeros(3, dtype), np.zeros((), dtype))).sum() == 0
        assert np.signbit(kernel(np.full(3, -0.0, dtype), np.zeros((), dtype))).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_other_cases_are_numpys(simd, dtype):
    """Layouts, dtypes and broadcasts the kernels do not cover go to the ufunc (the
    binding answers None), with numpy's result, type and errors."""
    base = _values(np.random.default_rng(3), (6, 8), dtype)
    raw = np.zeros(base.nbytes + 1, np.uint8)
    misaligned = np.frombuffer(raw.data, dtype, base.size, offset=1).reshape(base.shape)
    misaligned[...] = base

    class Sub(np.ndarray):
        pass

    other = np.float64 if dtype == np.float32 else np.float32
    with np.errstate(all="ignore"):  # the casts of specials
        cases = [
            (base.T, base.T.copy()),  # a transposed view
            (base[:, ::2], base[:, 1::2]),  # strided views
            (misaligned, base),
            (base.astype(base.dtype.newbyteorder()), base),  # byte-swapped
            (base.view(Sub), base),  # a subclass keeps its type through the ufunc
            (base, base.astype(other)),  # mixed dtypes: promoted
            (base, base.astype(np.int64)),
            (base.astype(np.float16), base.astype(np.float16)),
            (base[:, :1], base[:1, :]),  # (6, 1) with (1, 8): broadcast both ways
            (base, base[0]),  # (6, 8) with (8,)
            (base[0, :1].reshape(1, 1, 1), base[0]),  # a single value with more dimensions
            (base, np.float64(2.5)),  # a numpy scalar
            (base, 2.5),  # a Python number
        ]
    for a, b in cases:
        for op, (kernel, ufunc) in OPS.items():
            what = f"{op} {getattr(a, 'dtype', a)} {getattr(a, 'shape', ())}, {type(b)}"
            assert getattr(_state.native, op)(a, b) is None, what
            with np.errstate(all="ignore"):
                got, want = kernel(a, b), ufunc(a, b)
            assert type(got) is type(want), what
            assert_same_bits(got, want, a, b, what)
    for kernel, ufunc in OPS.values():  # numpy's broadcasting error, as it raises it
        with pytest.raises(ValueError) as want:
            ufunc(base, base[:, :3])
        with pytest.raises(ValueError) as got:
            kernel(base, base[:, :3])
        assert str(got.value) == str(want.value)


FPE_CASES = [  # (op, a, b, numpy's errstate category)
    ("div", 1.0, 0.0, "divide"),
    ("div", 0.0, 0.0, "invalid"),
    ("sub", np.inf, np.inf, "invalid"),
    ("add", np.inf, -np.inf, "invalid"),
    ("mul", 0.0, np.inf, "invalid"),
    ("mul", "max", 2.0, "over"),
    ("add", "max", "max", "over"),
    ("div", "tiny", "max", "under"),
]


def _fpe_operands(case, dtype, n):
    op, a, b, category = case
    info = np.finfo(dtype)
    value = {"max": info.max, "tiny": info.tiny}
    x = np.ones(n, dtype)
    y = np.ones(n, dtype)
    x[-1], y[-1] = value.get(a, a), value.get(b, b)  # in the last chunk and the scalar tail
    return op, x, y, category


def _outcome(fn, *args, **errstate):
    """What fn raised or warned under np.errstate(**errstate): (kind, message)s."""
    with warnings.catch_warnings(record=True) as caught, np.errstate(**errstate):
        warnings.simplefilter("always")
        try:
            fn(*args)
        except FloatingPointError as e:
            return [("raise", str(e))]
    return [(w.category.__name__, str(w.message)) for w in caught]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", FPE_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}")
@pytest.mark.parametrize("n", [5, 1_000_003])
def test_floating_point_errors_as_numpy(simd, dtype, case, n):
    """Divide by zero, invalid and overflow warn (or raise, or stay silent) as np.errstate
    says, with numpy's message: at one and two threads (a million values go over the split
    size; the special value sits in the last chunk, which either thread may claim, so the
    flags of both threads must be gathered)."""
    op, x, y, category = _fpe_operands(case, dtype, n)
    kernel, ufunc = OPS[op]
    assert _outcome(ufunc, x, y, all="warn")  # the case raises what it says
    modes = [{"all": "ignore"}, {"all": "warn"}, {"all": "raise"}, {category: "raise"}]
    for threads in (1, 2):
        with kernel_threads(threads):
            for errstate in modes:
                want = _outcome(ufunc, x, y, **errstate)
                assert _outcome(kernel, x, y, **errstate) == want, (errstate, threads)
    # by default (numpy's errstate: warn, except underflow, ignored) as numpy
    assert _outcome(kernel, x, y) == _outcome(ufunc, x, y)


def test_tape_ops_warn_as_before(any_backend):
    """Through the ops, recorded or not: numpy's warning (the one the ops gave when they
    called the ufuncs), or its FloatingPointError under np.errstate."""
    x = tinytape.tensor(np.ones(4, np.float32), requires_grad=True)
    for grad in (True, False):
        with tinytape.set_grad_enabled(grad):
            with pytest.warns(RuntimeWarning, match="divide by zero encountered in divide"):
                y = x / 0.0
            np.testing.assert_array_equal(y.numpy(), np.full(4, np.inf, np.float32))
            with np.errstate(invalid="raise"), pytest.raises(FloatingPointError, match="invalid"):
                _ = (x * 0.0) * np.inf
    # the engine sums a leaf's gradients through the kernel too
    ((x * 2.0) / 4.0 + x * x - x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(4, 1.5, np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_two_threads_match_numpy_bit_for_bit(simd, dtype):
    """Over the split size (TT_MT_MIN_WORK) the values split over two threads come out as
    numpy's (which computes them on one thread, the kernel answering None there), for both
    operand forms."""
    rng = np.random.default_rng(9)
    a, b = _values(rng, (1_000_003,), dtype), _values(rng, (1_000_003,), dtype)
    s = np.asarray(dtype(0.75))
    with np.errstate(all="ignore"), kernel_threads(2):
        for op, (kernel, ufunc) in OPS.items():
            for x, y in ((a, b), (a, s), (s, b)):
                assert getattr(_state.native, op)(x, y) is not None
                assert_same_bits(kernel(x, y), ufunc(x, y), x, y, f"{op} {x.shape} {y.shape}")


def test_large_arrays_on_one_thread_are_numpys(simd):
    """From 131,072 values on, on one thread, numpy's loop is as fast (the binding answers
    None); on two threads from the split size on, and below 131,072 values, the kernel."""
    big = np.ones(1_000_003, np.float32)
    for threads, n, kernel in [
        (1, 131_071, True),
        (1, 131_072, False),
        (1, 1_000_003, False),
        (2, 131_072, False),  # below the split size: one thread
        (2, 1_000_003, True),
    ]:
        with kernel_threads(threads):
            got = _state.native.add(big[:n], big[:n])
            assert (got is not None) == kernel, (threads, n)
            np.testing.assert_array_equal(backend.add(big[:n], big[:n]), np.full(n, 2.0))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 300),
    form=st.sampled_from(["same", "scalar b", "scalar a"]),
    dtype=st.sampled_from(DTYPES),
    op=st.sampled_from(sorted(OPS)),
    seed=st.integers(0, 2**32 - 1),
)
def test_hypothesis(n, form, dtype, op, seed):
    rng = np.random.default_rng(seed)
    a = _values(rng, () if form == "scalar a" else (n,), dtype)
    b = _values(rng, () if form == "scalar b" else (n,), dtype)
    kernel, ufunc = OPS[op]
    for name in backend.available():
        with backend.use(name), np.errstate(all="ignore"):
            got, want = kernel(a, b), ufunc(a, b)
        assert_same_bits(got, want, a, b, f"{name} {op} {form} {n}")
