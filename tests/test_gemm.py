"""GEMM against float64 numpy on awkward shapes, layouts, batches and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import kernel_threads
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerances import assert_gemm_close

from tinytape import backend

DTYPES = [np.float32, np.float64]
# 0, 1, primes, sizes around the register tiles (6/8/14/16/32) and cache blocks.
SIZES = [0, 1, 2, 7, 13, 15, 16, 17, 31, 33, 97, 130]


def _operand(rng, rows, cols, dtype, layout):
    """A (rows, cols) matrix in the given memory layout: contiguous, transposed view,
    row slice of a wider array, or a strided (non-contiguous) view."""
    if layout == "contiguous":
        return rng.standard_normal((rows, cols)).astype(dtype)
    if layout == "transposed":
        return rng.standard_normal((cols, rows)).astype(dtype).T
    if layout == "padded":
        return rng.standard_normal((rows, cols + 5)).astype(dtype)[:, 2 : cols + 2]
    return rng.standard_normal((2 * rows, 3 * cols)).astype(dtype)[::2, ::3]


def _check(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None, in_place=False):
    """gemm(a, b) against float64 numpy; c is copied first unless in_place (a view's own
    layout then reaches the kernel)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    op_a = np.swapaxes(a64, -1, -2) if trans_a else a64
    op_b = np.swapaxes(b64, -1, -2) if trans_b else b64
    want = alpha * (op_a @ op_b)
    magnitude = abs(alpha) * (np.abs(op_a) @ np.abs(op_b))
    if c is not None and beta != 0.0:
        want = want + beta * c.astype(np.float64)
        magnitude = magnitude + abs(beta) * np.abs(c.astype(np.float64))
    fn = backend.gemm_batched if a.ndim >= 3 else backend.gemm
    c_in = c if in_place or c is None else c.copy()
    got = fn(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=c_in)
    assert got.dtype == a.dtype
    if c_in is not None:
        assert got is c_in, "gemm must update c in place and return it"
    assert_gemm_close(got, want, magnitude, op_a.shape[-1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", SIZES)
@pytest.mark.parametrize("n", [0, 1, 17, 33, 130])
@pytest.mark.parametrize("k", [0, 1, 13, 97, 300])
def test_gemm_shapes(simd, rng, dtype, m, n, k):
    _check(rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25), (0.0, 3.0)])
def test_gemm_transpose_alpha_beta(simd, rng, dtype, trans_a, trans_b, alpha, beta):
    m, n, k = 37, 29, 53
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    _check(a, b, trans_a, trans_b, alpha, beta, c)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout_a", ["contiguous", "transposed", "padded", "strided"])
@pytest.mark.parametrize("layout_b", ["contiguous", "transposed", "padded", "strided"])
def test_gemm_layouts(simd, rng, dtype, layout_a, layout_b):
    a = _operand(rng, 41, 23, dtype, layout_a)
    b = _operand(rng, 23, 19, dtype, layout_b)
    _check(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_beta_zero_ignores_nan_in_c(simd, rng, dtype):
    a, b = rng.standard_normal((9, 5)).astype(dtype), rng.standard_normal((5, 7)).astype(dtype)
    c = np.full((9, 7), np.nan, dtype)
    got = backend.gemm(a, b, beta=0.0, c=c)
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_into_non_contiguous_c(simd, rng, dtype):
    a, b = rng.standard_normal((8, 6)).astype(dtype), rng.standard_normal((6, 10)).astype(dtype)
    base = rng.standard_normal((10, 8)).astype(dtype)
    c = base.T  # a transposed view: the result must land in it
    before = c.astype(np.float64)
    got = backend.gemm(a, b, alpha=1.0, beta=1.0, c=c)
    assert got is c
    np.testing.assert_allclose(base.T, before + a.astype(np.float64) @ b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_large(simd, rng, dtype):
    a = rng.standard_normal((1000, 1000)).astype(dtype)
    b = rng.standard_normal((1000, 1000)).astype(dtype)
    _check(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_large_transposed_multithreaded(rng, dtype, simd):
    import tinytape

    saved = tinytape.get_num_threads()
    tinytape.set_num_threads(2)
    try:
        a = rng.standard_normal((611, 389)).astype(dtype)
        b = rng.standard_normal((757, 611)).astype(dtype)
        _check(a, b, trans_a=True, trans_b=True)
        _check(
            rng.standard_normal((1, 700)).astype(dtype),
            rng.standard_normal((700, 900)).astype(dtype),
        )
    finally:
        tinytape.set_num_threads(saved)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "m,n,k",
    [(301, 517, 263), (50, 2003, 300), (1024, 128, 128)],
    ids=["claimed rows", "split columns", "claimed rows, direct if NN"],
)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)])
def test_gemm_two_thread_schemes(rng, dtype, simd, m, n, k, trans_a, trans_b):
    """Each way of splitting one product over 2 threads (csrc/gemm_impl.inc, gemm_run):
    row chunks claimed in turn (packed, or unpacked for a small product with B not
    transposed), and a fixed grid that splits the columns (few rows)."""
    import tinytape

    saved = tinytape.get_num_threads()
    tinytape.set_num_threads(2)
    try:
        a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
        c = rng.standard_normal((m, n)).astype(dtype)
        _check(a, b, trans_a, trans_b, alpha=-0.75, beta=0.5, c=c)
    finally:
        tinytape.set_num_threads(saved)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "m,n,k,trans_a,trans_b",
    [
        (256, 256, 256, False, False),
        (512, 512, 512, False, False),
        (300, 1100, 900, True, True),
        (17000, 40, 20, False, True),
        (1000, 130, 777, True, False),
    ],
    ids=[
        "unpacked",
        "rows over a column grid",
        "several k and n blocks",
        "chunks capped at MC rows",
        "transposed A",
    ],
)
def test_gemm_claimed_rows_match_one_thread(rng, dtype, simd, m, n, k, trans_a, trans_b):
    """Row chunks claimed by 2 threads in whatever order the threads run are computed as
    one thread computes those rows: the products are bit for bit the serial ones (and
    right against float64 numpy), with beta folding in C."""
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    got = {}
    for threads in (1, 2):
        with kernel_threads(threads):
            got[threads] = backend.gemm(
                a, b, trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=-1.0, c=c.copy()
            )
    np.testing.assert_array_equal(got[2], got[1])
    with kernel_threads(2):
        _check(a, b, trans_a, trans_b, alpha=0.5, beta=-1.0, c=c)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("n", [32, 96])
def test_gemm_unpacked_matches_packed(simd, one_kernel_thread, rng, dtype, trans_a, n):
    """Two implementations of one product: a small product runs unpacked (the strided
    kernel reading A and B in place, on SIMD paths that have it), the same rows inside a
    product too big for that path run packed, and both sum each element in the same
    order and end it the same way, so their rows agree bit for bit. k = 300 spans two k
    blocks on AVX2; 31 rows end in a partial row tile where the packed product has a
    full one; n is a whole number of register tiles on every path (the packed edge
    columns of AVX2 round alpha and beta apart, in a tile buffer)."""
    k, m_small, m_big = 300, 31, 2000  # 2000 x n x 300 is over every set's direct limit
    alpha, beta = 0.3, -0.7
    a = rng.standard_normal((m_big, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = rng.standard_normal((m_big, n)).astype(dtype)

    def product(rows):
        # a transposed view reaches the kernel as trans_a over the (k, rows) array
        op_a = np.ascontiguousarray(a[:rows].T).T if trans_a else a[:rows]
        return backend.gemm(op_a, b, alpha=alpha, beta=beta, c=c[:rows].copy())

    small, big = product(m_small), product(m_big)
    np.testing.assert_array_equal(small, big[:m_small])
    _check(a[:m_small], b, alpha=alpha, beta=beta, c=c[:m_small])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_a,batch_b", [(6, 6), (1, 5), (4, 1), (0, 0), (1, 1)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True)])
def test_gemm_batched(simd, rng, dtype, batch_a, batch_b, trans_a, trans_b):
    m, n, k = 11, 18, 9
    a = rng.standard_normal((batch_a,) + ((k, m) if trans_a else (m, k))).astype(dtype)
    b = rng.standard_normal((batch_b,) + ((n, k) if trans_b else (k, n))).astype(dtype)
    _check(a, b, trans_a, trans_b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_batched_beta_and_views(simd, rng, dtype):
    a = rng.standard_normal((3, 20, 7)).astype(dtype)
    b = rng.standard_normal((3, 9, 7)).astype(dtype).transpose(0, 2, 1)  # per-batch transposed
    c = rng.standard_normal((3, 20, 9)).astype(dtype)
    _check(a, b, alpha=0.5, beta=-1.0, c=c)
    _check(a[:, ::2], rng.standard_normal((3, 7, 4)).astype(dtype))  # strided rows: copied
    _check(a[::-1], b)  # negative batch stride: copied


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_gemm_batched_two_levels_in_place(simd, rng, dtype, threads):
    """Heads of (B, T, H, d) arrays permuted to (B, H, T, d): read and written in place
    (outer stride T*H*d, inner stride d, row stride H*d), against numpy; 2 threads split
    the interleaved outputs by whole products."""
    import tinytape

    B, T, H, d = 3, 13, 5, 7
    qkv = rng.standard_normal((B, T, 3, H, d)).astype(dtype)
    q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # (B, H, T, d) views, no copy
    scores = np.full((B, T, H, T), np.nan, dtype).transpose(0, 2, 1, 3)  # (B, H, T, T) view
    big = rng.standard_normal((8, 64, 4, 64)).astype(dtype).transpose(0, 2, 1, 3)
    saved = tinytape.get_num_threads()
    tinytape.set_num_threads(threads)
    try:
        _check(q, k, trans_b=True, alpha=0.5, c=scores, in_place=True)
        _check(scores, v, c=q, in_place=True)  # written into q's slots of qkv
        _check(scores[:1], k)  # the outer level broadcast
        # enough work for whole products per thread, into interleaved heads
        _check(
            big,
            big,
            trans_b=True,
            c=np.zeros_like(big.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3),
            in_place=True,
        )
        _check(big, big[:1, :1], trans_a=True)
    finally:
        tinytape.set_num_threads(saved)


def test_gemm_rejects_self_overlapping_output(any_backend):
    """An output whose elements share memory is refused on both backends (on numpy, the
    writes of c[...] = result would land on one another and leave a wrong answer)."""
    base = np.zeros(64)
    strided = np.lib.stride_tricks.as_strided
    batched = strided(base, (2, 3, 4, 4), (8, 8, 32, 8), writeable=True)  # batches 1 apart
    with pytest.raises(ValueError, match=r"gemm_batched: c overlaps itself .*strides \(8, 8"):
        backend.gemm_batched(np.ones((2, 3, 4, 5)), np.ones((2, 3, 5, 4)), c=batched)
    rows = strided(base, (4, 4), (8, 8), writeable=True)  # each row starts 1 element on
    with pytest.raises(ValueError, match="gemm: c overlaps itself"):
        backend.gemm(np.ones((4, 5)), np.ones((5, 4)), c=rows)
    assert not base.any()  # nothing was written
    # the same memory without overlap is accepted: the check is not a blanket refusal
    disjoint = strided(base, (4, 4), (128, 8), writeable=True)  # rows 16 elements apart
    out = backend.gemm(np.ones((4, 5)), np.full((5, 4), 2.0), beta=0.0, c=disjoint)
    np.testing.assert_array_equal(base.reshape(4, 16)[:, :4], np.full((4, 4), 10.0))
    assert out is disjoint


def test_gemm_many_small_batches_threaded(simd, rng):
    import tinytape

    saved = tinytape.get_num_threads()
    tinytape.set_num_threads(2)
    try:
        a = rng.standard_normal((64, 64, 64)).astype(np.float32)
        b = rng.standard_normal((64, 64, 64)).astype(np.float32)
        _check(a, b)
    finally:
        tinytape.set_num_threads(saved)


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(0, 70),
    n=st.integers(0, 70),
    k=st.integers(0, 70),
    trans_a=st.booleans(),
    trans_b=st.booleans(),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**32 - 1),
    beta=st.sampled_from([0.0, 1.0, -0.5]),
)
def test_gemm_hypothesis(m, n, k, trans_a, trans_b, dtype, seed, beta):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    for name in backend.available():
        with backend.use(name):
            _check(a, b, trans_a, trans_b, 1.5, beta, c)


def test_gemm_backends_agree(rng):
    if "c" not in backend.available():
        pytest.skip("the C extension is not built")
    a, b = rng.standard_normal((50, 40)), rng.standard_normal((40, 30))
    with backend.use("c"):
        got = backend.gemm(a, b, trans_a=False)
    with backend.use("numpy"):
        want = backend.gemm(a, b)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ errors
def test_gemm_takes_lists_and_array_subclasses_as_arrays(any_backend):
    a, b = [[1.0, 2.0], [3.0, 4.0]], np.ma.masked_array([[5.0], [6.0]])
    got = backend.gemm(a, b)
    assert type(got) is np.ndarray and got.dtype == np.float64
    np.testing.assert_array_equal(got, [[17.0], [39.0]])


def test_gemm_errors(any_backend):
    f32 = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"inner dimensions differ.*\(3, 4\).*\(5, 2\)"):
        backend.gemm(f32, np.ones((5, 2), np.float32))
    with pytest.raises(TypeError, match="mixed dtypes.*float32.*float64"):
        backend.gemm(f32, np.ones((4, 2)))
    with pytest.raises(TypeError, match="float32 or float64, got dtype int64"):
        backend.gemm(np.ones((3, 4), np.int64), f32.T)
    with pytest.raises(ValueError, match=r"gemm: b must be 2-D, got shape \(4,\)"):
        backend.gemm(f32, np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"gemm: a must be 2-D, got shape \(2, 3, 4\)"):
        backend.gemm(np.ones((2, 3, 4), np.float32), np.ones(4, np.float32))
    with pytest.raises(TypeError, match="b must be float32 or float64, got dtype bool"):
        backend.gemm(f32, [[True], [False], [True], [True]])
    with pytest.raises(ValueError, match=r"c has shape \(2, 2\), expected \(3, 2\)"):
        backend.gemm(f32, np.ones((4, 2), np.float32), c=np.ones((2, 2), np.float32))
    with pytest.raises(TypeError, match="mixed dtypes"):
        backend.gemm(f32, np.ones((4, 2), np.float32), c=np.ones((3, 2)))
    with pytest.raises(ValueError, match="read-only"):
        backend.gemm(
            f32, np.ones((4, 2), np.float32), c=np.broadcast_to(np.ones(2, np.float32), (3, 2))
        )
    with pytest.raises(ValueError, match=r"batch dims differ: a \(2, 3, 4\) and b \(3, 4, 5\)"):
        backend.gemm_batched(np.ones((2, 3, 4)), np.ones((3, 4, 5)))
    with pytest.raises(ValueError, match=r"must be 3-D or 4-D"):
        backend.gemm_batched(np.ones((3, 4)), np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"must be 3-D or 4-D"):
        backend.gemm_batched(np.ones((1, 2, 2, 3, 4)), np.ones((1, 2, 2, 4, 5)))


def test_c_binding_rejects_inconsistent_buffers():
    """The Cython layer itself refuses extents that do not match, so C never runs past them."""
    if "c" not in backend.available():
        pytest.skip("the C extension is not built")
    from tinytape import _C

    a, b = np.ones((3, 4)), np.ones((5, 2))
    with pytest.raises(ValueError, match="internal"):
        _C.gemm(False, False, 1.0, a, b, 0.0, np.ones((3, 2)))
    with pytest.raises(ValueError, match="internal"):
        _C.gemm(False, False, 1.0, a, np.ones((4, 2), np.float32), 0.0, np.ones((3, 2)))
    with pytest.raises(ValueError, match="internal"):
        _C.softmax_fwd(np.ones((3, 4)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="internal"):
        _C.cross_entropy_fwd(np.ones((3, 4)), np.zeros(2, np.int64), -100, np.ones(3))
