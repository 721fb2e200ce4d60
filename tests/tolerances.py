"""Error bounds for comparing kernels with float64 references, and why they hold.

Inputs are made in the tested dtype; the reference is computed in float64 from
those same values, so it is exact to ~1e-16 and the bound is on our kernel alone.
"""

from __future__ import annotations

import numpy as np

EPS = {np.dtype(np.float32): float(np.finfo(np.float32).eps),
       np.dtype(np.float64): float(np.finfo(np.float64).eps)}


def assert_gemm_close(got: np.ndarray, want64: np.ndarray, magnitude64: np.ndarray, k: int):
    """Higham's bound for a dot product of length k: |error| <= k * u * (|A| |B|), u = eps/2.

    We allow 2 * (k + 2) * eps * magnitude (plus one rounding of the output), with
    magnitude = |alpha| |op(A)| @ |op(B)| + |beta| |C0|, so blocked summation orders and
    FMA contractions are covered with room to spare.
    """
    eps = EPS[got.dtype]
    bound = 2.0 * (k + 2) * eps * magnitude64 + eps * np.abs(want64)
    err = np.abs(got.astype(np.float64) - want64)
    bad = err > bound + 1e-300
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"gemm {got.dtype} {got.shape}: element {i} = {got[i]!r}, expected {want64[i]!r} "
            f"(error {err[i]:.3e} > bound {bound[i]:.3e}); {int(bad.sum())} elements out of bound"
        )


# Row kernels (softmax, log-softmax, cross-entropy, layer norm): each output is a few
# exps (a polynomial accurate to ~2 ulp), a sum over the row (blocked, error ~ log2(n) ulp
# in practice, n ulp worst case) and a few roundings. For rows up to ~5,000 long that is
# well inside 64 ulp for float64 (~1.4e-14) and 1e-5 for float32 (~84 ulp); absolute terms
# cover outputs that round to zero.
ROW_TOL = {np.dtype(np.float32): dict(rtol=2e-5, atol=2e-6),
           np.dtype(np.float64): dict(rtol=1e-12, atol=1e-13)}


def assert_rows_close(got: np.ndarray, want64: np.ndarray, dtype, scale: float = 1.0):
    """Compare a row-kernel output with its float64 reference; `scale` widens atol for
    outputs whose natural size is larger than 1 (e.g. layer-norm dgamma sums over rows)."""
    tol = ROW_TOL[np.dtype(dtype)]
    assert got.dtype == np.dtype(dtype), f"dtype {got.dtype}, expected {np.dtype(dtype)}"
    assert got.shape == want64.shape, f"shape {got.shape}, expected {want64.shape}"
    np.testing.assert_allclose(got.astype(np.float64), want64, rtol=tol["rtol"],
                               atol=tol["atol"] * scale)


def assert_summed_close(got: np.ndarray, want64: np.ndarray, magnitude64: np.ndarray, n: int,
                        what: str = ""):
    """|error| <= 4 (log2 n + 2) eps magnitude, elementwise: for outputs built from sums of
    n terms (blocked, so the error grows like log n in practice) and a few roundings, where
    `magnitude` is the float64 value of the same formula with every term replaced by its
    absolute value (and, where a cancellation's inputs carry rounding, by their size).
    Layer norm's cases need at most 0.08 of this bound (every SIMD path, both backends, rows
    of 1 to 5,000, constant rows, +-1e4, offsets up to 1e4 and spreads down to 1e-3), so it
    has room to spare while following each case: 2-12x tighter than a fixed atol on y,
    dgamma, dbeta, ~150x on dx and ~600x on rstd, and 0 (exact) where the answer is exact.
    """
    eps = EPS[got.dtype]
    assert got.shape == want64.shape, f"{what}: shape {got.shape}, expected {want64.shape}"
    bound = 4.0 * (np.log2(max(n, 1)) + 2.0) * eps * magnitude64
    err = np.abs(got.astype(np.float64) - want64)
    bad = ~(err <= bound)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{what} {got.dtype} {got.shape}: element {i} = {got[i]!r}, expected {want64[i]!r} "
            f"(error {err[i]:.3e} > bound {bound[i]:.3e}); {int(bad.sum())} elements out of bound"
        )
