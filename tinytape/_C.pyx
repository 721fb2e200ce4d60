# cython: language_level=3, boundscheck=False, wraparound=False
"""Cython bindings of the C kernels in csrc/ (private: use tinytape.backend).

Each function takes numpy arrays that tinytape.backend has already validated
and laid out (float32 or float64, rows with unit stride). The checks here are
the last line of defence that keeps C inside its buffers: they compare the
extents the C call will touch with the arrays it was given, and raise
ValueError("internal: ...") on a mismatch. The GIL is released around every
kernel call. The exceptions are the elementwise sigmoid, tanh, ReLU and binary
kernels and the SGD step (see there), which check and lay out their arguments
themselves, and keep the GIL for small arrays.
"""

from libc.stdint cimport int64_t, uint8_t

cimport numpy as cnp

cnp.import_array()


cdef extern from "tinytape.h" nogil:
    int tt_simd_detected()
    int tt_simd_level()
    int tt_set_simd_level(int level)
    const char *tt_simd_name(int level)
    int tt_have_openmp()
    void tt_set_num_threads(int n)
    int tt_get_num_threads()
    const char *tt_build_info()

    void tt_gemm_f32(int, int, int64_t, int64_t, int64_t, float, const float *, int64_t,
                     const float *, int64_t, float, float *, int64_t)
    void tt_gemm_f64(int, int, int64_t, int64_t, int64_t, double, const double *, int64_t,
                     const double *, int64_t, double, double *, int64_t)
    void tt_gemm_batched_f32(int, int, int64_t, int64_t, int64_t, int64_t, int64_t, float,
                             const float *, int64_t, int64_t, int64_t,
                             const float *, int64_t, int64_t, int64_t,
                             float, float *, int64_t, int64_t, int64_t)
    void tt_gemm_batched_f64(int, int, int64_t, int64_t, int64_t, int64_t, int64_t, double,
                             const double *, int64_t, int64_t, int64_t,
                             const double *, int64_t, int64_t, int64_t,
                             double, double *, int64_t, int64_t, int64_t)

    void tt_softmax_fwd_f32(const float *, float *, int64_t, int64_t)
    void tt_softmax_fwd_f64(const double *, double *, int64_t, int64_t)
    void tt_softmax_bwd_f32(const float *, const float *, float *, int64_t, int64_t)
    void tt_softmax_bwd_f64(const double *, const double *, double *, int64_t, int64_t)
    void tt_log_softmax_fwd_f32(const float *, float *, int64_t, int64_t)
    void tt_log_softmax_fwd_f64(const double *, double *, int64_t, int64_t)
    void tt_log_softmax_bwd_f32(const float *, const float *, float *, int64_t, int64_t)
    void tt_log_softmax_bwd_f64(const double *, const double *, double *, int64_t, int64_t)

    int64_t tt_cross_entropy_fwd_f32(const float *, const int64_t *, int64_t, int64_t, int64_t,
                                     float *, double *, int64_t *)
    int64_t tt_cross_entropy_fwd_f64(const double *, const int64_t *, int64_t, int64_t, int64_t,
                                     double *, double *, int64_t *)
    int64_t tt_cross_entropy_bwd_f32(const float *, const int64_t *, const float *, int64_t,
                                     int64_t, int64_t, float, float *)
    int64_t tt_cross_entropy_bwd_f64(const double *, const int64_t *, const double *, int64_t,
                                     int64_t, int64_t, double, double *)

    void tt_layer_norm_fwd_f32(const float *, const float *, const float *, float *, float *,
                               float *, int64_t, int64_t, float)
    void tt_layer_norm_fwd_f64(const double *, const double *, const double *, double *,
                               double *, double *, int64_t, int64_t, double)
    void tt_layer_norm_bwd_f32(const float *, const float *, const float *, const float *,
                               const float *, float *, float *, float *, int64_t, int64_t)
    void tt_layer_norm_bwd_f64(const double *, const double *, const double *, const double *,
                               const double *, double *, double *, double *, int64_t, int64_t)

    int tt_attention_fwd_f32(int64_t, int64_t, int64_t, int64_t, const float *, const float *,
                             int, float, float *, float *)
    int tt_attention_fwd_f64(int64_t, int64_t, int64_t, int64_t, const double *,
                             const double *, int, double, double *, double *)
    int tt_attention_bwd_f32(int64_t, int64_t, int64_t, int64_t, const float *, const float *,
                             const float *, const float *, int, float, float *)
    int tt_attention_bwd_f64(int64_t, int64_t, int64_t, int64_t, const double *,
                             const double *, const double *, const double *, int, double,
                             double *)
    void tt_gelu_fwd_f32(const float *, float *, int64_t)
    void tt_gelu_fwd_f64(const double *, double *, int64_t)
    void tt_gelu_bwd_f32(const float *, const float *, float *, int64_t)
    void tt_gelu_bwd_f64(const double *, const double *, double *, int64_t)
    void tt_sigmoid_fwd_f32(const float *, float *, int64_t)
    void tt_sigmoid_fwd_f64(const double *, double *, int64_t)
    void tt_sigmoid_bwd_f32(const float *, const float *, float *, int64_t)
    void tt_sigmoid_bwd_f64(const double *, const double *, double *, int64_t)
    void tt_tanh_bwd_f32(const float *, const float *, float *, int64_t)
    void tt_tanh_bwd_f64(const double *, const double *, double *, int64_t)
    void tt_relu_fwd_f32(const float *, float *, uint8_t *, int64_t)
    void tt_relu_fwd_f64(const double *, double *, uint8_t *, int64_t)
    void tt_relu_bwd_f32(const uint8_t *, const float *, float *, int64_t)
    void tt_relu_bwd_f64(const uint8_t *, const double *, double *, int64_t)
    enum:
        TT_ADD, TT_SUB, TT_MUL, TT_DIV
    int tt_binary_f32(int, const float *, int64_t, const float *, int64_t, float *, int64_t)
    int tt_binary_f64(int, const double *, int64_t, const double *, int64_t, double *,
                      int64_t)
    int tt_binary_threads(int64_t)

    struct tt_adam_params:
        double grad_sign, decay, l2, lerp_weight, beta2, one_minus_beta2
        double bias_correction2_sqrt, eps, neg_step_size
    void tt_adam_step_f32(float *, const float *, float *, float *, float *, int64_t,
                          const tt_adam_params *)
    void tt_adam_step_f64(double *, const double *, double *, double *, double *, int64_t,
                          const tt_adam_params *)

    struct tt_sgd_params:
        double grad_sign, weight_decay, momentum, one_minus_dampening, lr
        int nesterov, init_buffer
    void tt_sgd_step_f32(float *, const float *, float *, int64_t, const tt_sgd_params *)
    void tt_sgd_step_f64(double *, const double *, double *, int64_t, const tt_sgd_params *)


# ----------------------------------------------------------------- config

def simd_detected() -> int:
    return tt_simd_detected()


def simd_level() -> int:
    return tt_simd_level()


def set_simd_level(int level) -> int:
    return tt_set_simd_level(level)


def simd_name(int level) -> str:
    return tt_simd_name(level).decode()


def have_openmp() -> bool:
    return bool(tt_have_openmp())


def set_num_threads(int n) -> None:
    tt_set_num_threads(n)


def get_num_threads() -> int:
    return tt_get_num_threads()


def build_info() -> str:
    return tt_build_info().decode()


# ----------------------------------------------------------------- checks

cdef inline int _is_f32(cnp.ndarray a) except -1:
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_FLOAT32:
        return 1
    if t == cnp.NPY_FLOAT64:
        return 0
    raise ValueError(f"internal: kernel got dtype {a.dtype}")


cdef inline void _same_type(cnp.ndarray ref, cnp.ndarray a) except *:
    if cnp.PyArray_TYPE(a) != cnp.PyArray_TYPE(ref):
        raise ValueError(f"internal: kernel got dtypes {ref.dtype} and {a.dtype}")


cdef inline void _contig(cnp.ndarray a, int64_t size, bint writable=False) except *:
    """a is C-contiguous with exactly `size` elements (and writable when asked)."""
    if not cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_SIZE(a) != size:
        raise ValueError(f"internal: kernel buffer of shape {(<object>a).shape} is not a contiguous "
                         f"block of {size} elements")
    if writable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError("internal: kernel output is read-only")


cdef inline int64_t _row_stride(cnp.ndarray a, int64_t rows, int64_t cols,
                                bint writable=False) except -1:
    """Leading dimension (elements) of a 2-D array with unit-stride rows."""
    if a.ndim != 2 or a.shape[0] != rows or a.shape[1] != cols:
        raise ValueError(f"internal: kernel got shape {(<object>a).shape}, expected ({rows}, {cols})")
    cdef int64_t item = cnp.PyArray_ITEMSIZE(a)
    cdef int64_t s0 = cnp.PyArray_STRIDE(a, 0)
    cdef int64_t s1 = cnp.PyArray_STRIDE(a, 1)
    if cols > 1 and s1 != item:
        raise ValueError("internal: kernel rows must have unit stride")
    if rows <= 1:
        return cols if cols > 1 else 1
    if s0 % item != 0 or s0 < cols * item:
        raise ValueError(f"internal: kernel row stride {s0} does not cover {cols} columns")
    if writable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError("internal: kernel output is read-only")
    return s0 // item


cdef inline int64_t _batch_stride(cnp.ndarray a, int axis) except -1:
    """Stride (elements) of batch axis `axis` of a 4-D array: 0 when it has one entry."""
    cdef int64_t item = cnp.PyArray_ITEMSIZE(a)
    cdef int64_t s = cnp.PyArray_STRIDE(a, axis)
    if a.shape[axis] <= 1:
        return 0
    if s < 0 or s % item != 0:
        raise ValueError(f"internal: kernel batch stride {s} is not usable")
    return s // item


cdef inline void _check_disjoint(cnp.ndarray c) except *:
    """The matrices of a 4-D output do not overlap (the test of tt_gemm_c_disjoint)."""
    cdef int64_t item = cnp.PyArray_ITEMSIZE(c)
    axes = sorted((abs(cnp.PyArray_STRIDE(c, i)) // item, c.shape[i]) for i in range(4))
    cdef int64_t span = 0
    for step, size in axes:
        if size <= 1:
            continue
        if step <= span:
            raise ValueError("internal: kernel output matrices overlap")
        span += (size - 1) * step


# ----------------------------------------------------------------- GEMM

def gemm(bint trans_a, bint trans_b, double alpha, cnp.ndarray a, cnp.ndarray b,
         double beta, cnp.ndarray c) -> None:
    """c = alpha * op(a) @ op(b) + beta * c, in place. 2-D arrays with unit-stride rows."""
    cdef bint f32 = _is_f32(c)
    _same_type(c, a)
    _same_type(c, b)
    cdef int64_t m = c.shape[0], n = c.shape[1]
    cdef int64_t k = a.shape[0] if trans_a else a.shape[1]
    cdef int64_t lda = _row_stride(a, k if trans_a else m, m if trans_a else k)
    cdef int64_t ldb = _row_stride(b, n if trans_b else k, k if trans_b else n)
    cdef int64_t ldc = _row_stride(c, m, n, True)
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef void *pb = cnp.PyArray_DATA(b)
    cdef void *pc = cnp.PyArray_DATA(c)
    with nogil:
        if f32:
            tt_gemm_f32(trans_a, trans_b, m, n, k, <float>alpha, <const float *>pa, lda,
                        <const float *>pb, ldb, <float>beta, <float *>pc, ldc)
        else:
            tt_gemm_f64(trans_a, trans_b, m, n, k, alpha, <const double *>pa, lda,
                        <const double *>pb, ldb, beta, <double *>pc, ldc)


def gemm_batched(bint trans_a, bint trans_b, double alpha, cnp.ndarray a, cnp.ndarray b,
                 double beta, cnp.ndarray c) -> None:
    """The batched form of gemm on 4-D arrays (outer, inner, rows, cols), each batch axis
    with any non-negative stride; a stride of 0 broadcasts a or b over that axis."""
    cdef bint f32 = _is_f32(c)
    _same_type(c, a)
    _same_type(c, b)
    if a.ndim != 4 or b.ndim != 4 or c.ndim != 4:
        raise ValueError("internal: gemm_batched needs 4-D arrays")
    cdef int64_t outer = c.shape[0], inner = c.shape[1], m = c.shape[2], n = c.shape[3]
    if a.shape[0] != outer or b.shape[0] != outer or a.shape[1] != inner \
            or b.shape[1] != inner:
        raise ValueError(f"internal: gemm_batched batch shapes {(<object>a).shape[:2]}, "
                         f"{(<object>b).shape[:2]}, {(<object>c).shape[:2]} differ")
    if outer == 0 or inner == 0:
        return
    cdef int64_t k = a.shape[2] if trans_a else a.shape[3]
    cdef int64_t ar = k if trans_a else m, ac = m if trans_a else k
    cdef int64_t br = n if trans_b else k, bc = k if trans_b else n
    cdef int64_t lda = _row_stride(a[0, 0], ar, ac)
    cdef int64_t ldb = _row_stride(b[0, 0], br, bc)
    cdef int64_t ldc = _row_stride(c[0, 0], m, n, True)
    _check_disjoint(c)
    cdef int64_t sao = _batch_stride(a, 0), sai = _batch_stride(a, 1)
    cdef int64_t sbo = _batch_stride(b, 0), sbi = _batch_stride(b, 1)
    cdef int64_t sco = _batch_stride(c, 0), sci = _batch_stride(c, 1)
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef void *pb = cnp.PyArray_DATA(b)
    cdef void *pc = cnp.PyArray_DATA(c)
    with nogil:
        if f32:
            tt_gemm_batched_f32(trans_a, trans_b, outer, inner, m, n, k, <float>alpha,
                                <const float *>pa, lda, sao, sai, <const float *>pb, ldb, sbo,
                                sbi, <float>beta, <float *>pc, ldc, sco, sci)
        else:
            tt_gemm_batched_f64(trans_a, trans_b, outer, inner, m, n, k, alpha,
                                <const double *>pa, lda, sao, sai, <const double *>pb, ldb, sbo,
                                sbi, beta, <double *>pc, ldc, sco, sci)


# ----------------------------------------------------------------- row kernels

cdef inline void _rows_cols(cnp.ndarray x, int64_t *rows, int64_t *cols) except *:
    if x.ndim != 2:
        raise ValueError(f"internal: row kernel needs a 2-D array, got shape {(<object>x).shape}")
    rows[0] = x.shape[0]
    cols[0] = x.shape[1]


def softmax_fwd(cnp.ndarray x, cnp.ndarray y) -> None:
    _row_fwd(x, y, False)


def log_softmax_fwd(cnp.ndarray x, cnp.ndarray y) -> None:
    _row_fwd(x, y, True)


cdef void _row_fwd(cnp.ndarray x, cnp.ndarray y, bint log) except *:
    cdef int64_t rows = 0, cols = 0
    _rows_cols(x, &rows, &cols)
    cdef bint f32 = _is_f32(x)
    _same_type(x, y)
    _contig(x, rows * cols)
    _contig(y, rows * cols, True)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *py = cnp.PyArray_DATA(y)
    with nogil:
        if f32 and log:
            tt_log_softmax_fwd_f32(<const float *>px, <float *>py, rows, cols)
        elif f32:
            tt_softmax_fwd_f32(<const float *>px, <float *>py, rows, cols)
        elif log:
            tt_log_softmax_fwd_f64(<const double *>px, <double *>py, rows, cols)
        else:
            tt_softmax_fwd_f64(<const double *>px, <double *>py, rows, cols)


def softmax_bwd(cnp.ndarray y, cnp.ndarray dy, cnp.ndarray dx) -> None:
    _row_bwd(y, dy, dx, False)


def log_softmax_bwd(cnp.ndarray y, cnp.ndarray dy, cnp.ndarray dx) -> None:
    _row_bwd(y, dy, dx, True)


cdef void _row_bwd(cnp.ndarray y, cnp.ndarray dy, cnp.ndarray dx, bint log) except *:
    cdef int64_t rows = 0, cols = 0
    _rows_cols(y, &rows, &cols)
    cdef bint f32 = _is_f32(y)
    _same_type(y, dy)
    _same_type(y, dx)
    _contig(y, rows * cols)
    _contig(dy, rows * cols)
    _contig(dx, rows * cols, True)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef void *pdy = cnp.PyArray_DATA(dy)
    cdef void *pdx = cnp.PyArray_DATA(dx)
    with nogil:
        if f32 and log:
            tt_log_softmax_bwd_f32(<const float *>py, <const float *>pdy, <float *>pdx, rows, cols)
        elif f32:
            tt_softmax_bwd_f32(<const float *>py, <const float *>pdy, <float *>pdx, rows, cols)
        elif log:
            tt_log_softmax_bwd_f64(<const double *>py, <const double *>pdy, <double *>pdx,
                                   rows, cols)
        else:
            tt_softmax_bwd_f64(<const double *>py, <const double *>pdy, <double *>pdx,
                               rows, cols)


cdef inline void _targets(cnp.ndarray targets, int64_t rows) except *:
    if cnp.PyArray_TYPE(targets) != cnp.NPY_INT64:
        raise ValueError(f"internal: targets must be int64, got {targets.dtype}")
    _contig(targets, rows)


def cross_entropy_fwd(cnp.ndarray logits, cnp.ndarray targets, int64_t ignore_index,
                      cnp.ndarray lse) -> tuple:
    """Returns (loss_sum, count, bad_row); bad_row is -1 when every target is valid."""
    cdef int64_t rows = 0, cols = 0, bad, count = 0
    cdef double loss_sum = 0.0
    _rows_cols(logits, &rows, &cols)
    cdef bint f32 = _is_f32(logits)
    _same_type(logits, lse)
    _contig(logits, rows * cols)
    _contig(lse, rows, True)
    _targets(targets, rows)
    cdef void *px = cnp.PyArray_DATA(logits)
    cdef const int64_t *pt = <const int64_t *>cnp.PyArray_DATA(targets)
    cdef void *pl = cnp.PyArray_DATA(lse)
    with nogil:
        if f32:
            bad = tt_cross_entropy_fwd_f32(<const float *>px, pt, rows, cols, ignore_index,
                                           <float *>pl, &loss_sum, &count)
        else:
            bad = tt_cross_entropy_fwd_f64(<const double *>px, pt, rows, cols, ignore_index,
                                           <double *>pl, &loss_sum, &count)
    return loss_sum, count, bad


def cross_entropy_bwd(cnp.ndarray logits, cnp.ndarray targets, cnp.ndarray lse,
                      int64_t ignore_index, double scale, cnp.ndarray dlogits) -> int:
    """Writes dlogits; returns the first bad row or -1."""
    cdef int64_t rows = 0, cols = 0, bad
    _rows_cols(logits, &rows, &cols)
    cdef bint f32 = _is_f32(logits)
    _same_type(logits, lse)
    _same_type(logits, dlogits)
    _contig(logits, rows * cols)
    _contig(dlogits, rows * cols, True)
    _contig(lse, rows)
    _targets(targets, rows)
    cdef void *px = cnp.PyArray_DATA(logits)
    cdef const int64_t *pt = <const int64_t *>cnp.PyArray_DATA(targets)
    cdef void *pl = cnp.PyArray_DATA(lse)
    cdef void *pd = cnp.PyArray_DATA(dlogits)
    with nogil:
        if f32:
            bad = tt_cross_entropy_bwd_f32(<const float *>px, pt, <const float *>pl, rows, cols,
                                           ignore_index, <float>scale, <float *>pd)
        else:
            bad = tt_cross_entropy_bwd_f64(<const double *>px, pt, <const double *>pl, rows,
                                           cols, ignore_index, scale, <double *>pd)
    return bad


def layer_norm_fwd(cnp.ndarray x, cnp.ndarray gamma, cnp.ndarray beta, double eps,
                   cnp.ndarray y, cnp.ndarray mean, cnp.ndarray rstd) -> None:
    cdef int64_t rows = 0, cols = 0
    _rows_cols(x, &rows, &cols)
    cdef bint f32 = _is_f32(x)
    for a in (gamma, beta, y, mean, rstd):
        _same_type(x, a)
    _contig(x, rows * cols)
    _contig(gamma, cols)
    _contig(beta, cols)
    _contig(y, rows * cols, True)
    _contig(mean, rows, True)
    _contig(rstd, rows, True)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *pg = cnp.PyArray_DATA(gamma)
    cdef void *pb = cnp.PyArray_DATA(beta)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef void *pm = cnp.PyArray_DATA(mean)
    cdef void *pr = cnp.PyArray_DATA(rstd)
    with nogil:
        if f32:
            tt_layer_norm_fwd_f32(<const float *>px, <const float *>pg, <const float *>pb,
                                  <float *>py, <float *>pm, <float *>pr, rows, cols, <float>eps)
        else:
            tt_layer_norm_fwd_f64(<const double *>px, <const double *>pg, <const double *>pb,
                                  <double *>py, <double *>pm, <double *>pr, rows, cols, eps)


def layer_norm_bwd(cnp.ndarray dy, cnp.ndarray x, cnp.ndarray gamma, cnp.ndarray mean,
                   cnp.ndarray rstd, cnp.ndarray dx, cnp.ndarray dgamma,
                   cnp.ndarray dbeta) -> None:
    cdef int64_t rows = 0, cols = 0
    _rows_cols(x, &rows, &cols)
    cdef bint f32 = _is_f32(x)
    for a in (dy, gamma, mean, rstd, dx, dgamma, dbeta):
        _same_type(x, a)
    _contig(dy, rows * cols)
    _contig(x, rows * cols)
    _contig(gamma, cols)
    _contig(mean, rows)
    _contig(rstd, rows)
    _contig(dx, rows * cols, True)
    _contig(dgamma, cols, True)
    _contig(dbeta, cols, True)
    cdef void *pdy = cnp.PyArray_DATA(dy)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *pg = cnp.PyArray_DATA(gamma)
    cdef void *pm = cnp.PyArray_DATA(mean)
    cdef void *pr = cnp.PyArray_DATA(rstd)
    cdef void *pdx = cnp.PyArray_DATA(dx)
    cdef void *pdg = cnp.PyArray_DATA(dgamma)
    cdef void *pdb = cnp.PyArray_DATA(dbeta)
    with nogil:
        if f32:
            tt_layer_norm_bwd_f32(<const float *>pdy, <const float *>px, <const float *>pg,
                                  <const float *>pm, <const float *>pr, <float *>pdx,
                                  <float *>pdg, <float *>pdb, rows, cols)
        else:
            tt_layer_norm_bwd_f64(<const double *>pdy, <const double *>px, <const double *>pg,
                                  <const double *>pm, <const double *>pr, <double *>pdx,
                                  <double *>pdg, <double *>pdb, rows, cols)


# ---------------------------------------------------------------- elementwise
# sigmoid_fwd, sigmoid_bwd and tanh_bwd run once per op on the tape's hot path, often on
# arrays of a few dozen values, where a numpy ufunc call costs about 3K instructions. So
# these take any array, check it and allocate the output through the numpy C-API (no
# Python-level ascontiguousarray or empty_like), copy only an input that is not aligned
# and C-contiguous, and keep the GIL below _EW_NOGIL_MIN values (numpy's ufuncs keep it
# below 500): dropping and taking it back cost 0.23 us a call (sigmoid_bwd on 8,191 and
# 8,192 float32 values: 0.83 and 1.06 us), more than a whole call on 64 values (0.13 us).
# A call on 64 values runs about 1,150 (backwards) to 1,570 (sigmoid) instructions, half
# of them numpy's allocation of the output (callgrind). Unlike the kernels above they check
# their arguments fully, with the messages of tinytape/backend/_checks.py, since
# tinytape.backend passes arrays straight through.

cdef enum:
    _EW_NOGIL_MIN = 8192
    _EW_SIGMOID_FWD = 0
    _EW_SIGMOID_BWD = 1
    _EW_TANH_BWD = 2


cdef cnp.ndarray _ew_input(str op, str name, object a):
    """a as an aligned, C-contiguous float32/float64 array in native byte order: a itself
    when it is one, else a copy; TypeError naming the dtype otherwise."""
    cdef cnp.ndarray arr = a if cnp.PyArray_Check(a) else cnp.PyArray_FROM_O(a)
    cdef int t = cnp.PyArray_TYPE(arr)
    if (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {arr.dtype}")
    if cnp.PyArray_CHKFLAGS(arr, cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED):
        return arr
    return cnp.PyArray_NewCopy(arr, cnp.NPY_CORDER)


cdef void _ew_run(int kernel, bint f32, const void *a, const void *b, void *out,
                  int64_t n) noexcept nogil:
    if kernel == _EW_SIGMOID_FWD:
        if f32:
            tt_sigmoid_fwd_f32(<const float *>a, <float *>out, n)
        else:
            tt_sigmoid_fwd_f64(<const double *>a, <double *>out, n)
    elif kernel == _EW_SIGMOID_BWD:
        if f32:
            tt_sigmoid_bwd_f32(<const float *>a, <const float *>b, <float *>out, n)
        else:
            tt_sigmoid_bwd_f64(<const double *>a, <const double *>b, <double *>out, n)
    else:
        if f32:
            tt_tanh_bwd_f32(<const float *>a, <const float *>b, <float *>out, n)
        else:
            tt_tanh_bwd_f64(<const double *>a, <const double *>b, <double *>out, n)


cdef cnp.ndarray _ew_call(int kernel, cnp.ndarray a, cnp.ndarray b):
    """A new array of a's shape and dtype from the kernel on a (and b); both checked."""
    cdef int t = cnp.PyArray_TYPE(a)
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(a), cnp.PyArray_DIMS(a), t, 0)
    cdef int64_t n = cnp.PyArray_SIZE(a)
    cdef bint f32 = t == cnp.NPY_FLOAT32
    cdef const void *pa = cnp.PyArray_DATA(a)
    cdef const void *pb = cnp.PyArray_DATA(b) if b is not None else NULL
    cdef void *po = cnp.PyArray_DATA(out)
    if n < _EW_NOGIL_MIN:
        _ew_run(kernel, f32, pa, pb, po, n)
    else:
        with nogil:
            _ew_run(kernel, f32, pa, pb, po, n)
    return out


cdef cnp.ndarray _ew_backward(int kernel, str op, object y, object dy):
    cdef cnp.ndarray ya = _ew_input(op, "y", y)
    cdef cnp.ndarray ga = _ew_input(op, "dy", dy)
    if cnp.PyArray_TYPE(ya) != cnp.PyArray_TYPE(ga):
        raise TypeError(f"{op}: mixed dtypes (y {ya.dtype}, dy {ga.dtype}); convert them to "
                        "one dtype first")
    if not cnp.PyArray_SAMESHAPE(ya, ga):
        raise ValueError(f"{op}: shapes must match, got y {(<object>ya).shape}, "
                         f"dy {(<object>ga).shape}")
    return _ew_call(kernel, ya, ga)


def sigmoid_fwd(x) -> cnp.ndarray:
    """1 / (1 + e^-x) of any float32/float64 array: a new C-contiguous array."""
    return _ew_call(_EW_SIGMOID_FWD, _ew_input("sigmoid", "x", x), None)


def sigmoid_bwd(y, dy) -> cnp.ndarray:
    """dy (1 - y) y from sigmoid's saved output y: a new C-contiguous array."""
    return _ew_backward(_EW_SIGMOID_BWD, "sigmoid_backward", y, dy)


def tanh_bwd(y, dy) -> cnp.ndarray:
    """dy (1 - y^2) from tanh's saved output y: a new C-contiguous array."""
    return _ew_backward(_EW_TANH_BWD, "tanh_backward", y, dy)


# ReLU: the forward writes the output and, when recorded, the bool mask "not (x <= 0)"
# in one pass; the backward selects g where the mask is set. Same conventions as above.

def relu_fwd(x, bint with_mask):
    """max(x, 0) of any float32/float64 array, NaN kept: a new C-contiguous array y, or
    with with_mask the pair (y, mask), mask a bool array true where not (x <= 0)."""
    cdef cnp.ndarray xa = _ew_input("relu", "x", x)
    cdef int t = cnp.PyArray_TYPE(xa)
    cdef int nd = cnp.PyArray_NDIM(xa)
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(xa)
    cdef cnp.ndarray y = cnp.PyArray_EMPTY(nd, dims, t, 0)
    cdef cnp.ndarray mask = None
    cdef uint8_t *pm = NULL
    if with_mask:
        mask = cnp.PyArray_EMPTY(nd, dims, cnp.NPY_BOOL, 0)
        pm = <uint8_t *>cnp.PyArray_DATA(mask)
    cdef int64_t n = cnp.PyArray_SIZE(xa)
    cdef const void *px = cnp.PyArray_DATA(xa)
    cdef void *py = cnp.PyArray_DATA(y)
    if n < _EW_NOGIL_MIN:
        _relu_fwd_run(t == cnp.NPY_FLOAT32, px, py, pm, n)
    else:
        with nogil:
            _relu_fwd_run(t == cnp.NPY_FLOAT32, px, py, pm, n)
    return (y, mask) if with_mask else y


cdef void _relu_fwd_run(bint f32, const void *x, void *y, uint8_t *mask,
                        int64_t n) noexcept nogil:
    if f32:
        tt_relu_fwd_f32(<const float *>x, <float *>y, mask, n)
    else:
        tt_relu_fwd_f64(<const double *>x, <double *>y, mask, n)


def relu_bwd(mask, dy) -> cnp.ndarray:
    """dy where mask (a bool array of dy's shape) is true, else 0: a new C-contiguous
    array."""
    cdef cnp.ndarray ga = _ew_input("relu_backward", "dy", dy)
    cdef cnp.ndarray ma = mask if cnp.PyArray_Check(mask) else cnp.PyArray_FROM_O(mask)
    if cnp.PyArray_TYPE(ma) != cnp.NPY_BOOL:
        raise TypeError(f"relu_backward: mask must be bool, got dtype {ma.dtype}")
    if not cnp.PyArray_SAMESHAPE(ma, ga):
        raise ValueError(f"relu_backward: shapes must match, got mask {(<object>ma).shape}, "
                         f"dy {(<object>ga).shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(ma):
        ma = cnp.PyArray_NewCopy(ma, cnp.NPY_CORDER)
    cdef int t = cnp.PyArray_TYPE(ga)
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(ga), cnp.PyArray_DIMS(ga), t, 0)
    cdef int64_t n = cnp.PyArray_SIZE(ga)
    cdef const uint8_t *pm = <const uint8_t *>cnp.PyArray_DATA(ma)
    cdef const void *pg = cnp.PyArray_DATA(ga)
    cdef void *po = cnp.PyArray_DATA(out)
    if n < _EW_NOGIL_MIN:
        _relu_bwd_run(t == cnp.NPY_FLOAT32, pm, pg, po, n)
    else:
        with nogil:
            _relu_bwd_run(t == cnp.NPY_FLOAT32, pm, pg, po, n)
    return out


cdef void _relu_bwd_run(bint f32, const uint8_t *mask, const void *g, void *dx,
                        int64_t n) noexcept nogil:
    if f32:
        tt_relu_bwd_f32(mask, <const float *>g, <float *>dx, n)
    else:
        tt_relu_bwd_f64(mask, <const double *>g, <double *>dx, n)
# add, sub, mul and div cover the tape's common cases only, two arrays of one float dtype,
# aligned and C-contiguous, of one shape or one of them a single value (size 1, no more
# dimensions than the other), and return None for anything else: the caller then uses the
# numpy ufunc, which broadcasts, promotes, walks strides and raises numpy's errors (a copy
# to a contiguous layout would cost more than its strided loop). The kernel reports the
# floating-point exceptions it raised and PyUFunc_GiveFloatingpointErrors turns them into
# numpy's warnings or errors under the ufunc's name, as np.errstate asks.
# On one thread from _EW_NUMPY_FROM values on, they answer None too: there the cost of a
# call no longer shows and numpy's loop was as fast or a little faster (median time of the
# kernel over numpy's, float32 add, AVX-512 path: 0.76-0.89 at 4,096 values, 0.96-0.98 at
# 65,536, 1.02-1.05 at 131,072, 1.03-1.07 at 524,288, 1.17-1.25 at 2M; at 2M on two
# threads the kernel's split took 0.69-0.75 of numpy's one-thread time).

cdef extern from "numpy/ufuncobject.h":
    int PyUFunc_GiveFloatingpointErrors(const char *name, int fpe_errors) except -1

cnp.import_ufunc()

cdef enum:
    _EW_FLAGS = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED
    _EW_NUMPY_FROM = 131072


cdef object _ew_binary(int op, const char *name, object a, object b):
    if not (cnp.PyArray_CheckExact(a) and cnp.PyArray_CheckExact(b)):
        return None
    cdef cnp.ndarray x = <cnp.ndarray>a
    cdef cnp.ndarray y = <cnp.ndarray>b
    cdef int t = cnp.PyArray_TYPE(x)
    if ((t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or cnp.PyArray_TYPE(y) != t
            or not (cnp.PyArray_CHKFLAGS(x, _EW_FLAGS) and cnp.PyArray_CHKFLAGS(y, _EW_FLAGS))
            or not (cnp.PyArray_ISNOTSWAPPED(x) and cnp.PyArray_ISNOTSWAPPED(y))):
        return None
    cdef cnp.ndarray shaped  # the operand whose shape the output takes
    cdef int64_t sx = 1, sy = 1
    if cnp.PyArray_SAMESHAPE(x, y):
        shaped = x
    elif cnp.PyArray_SIZE(y) == 1 and cnp.PyArray_NDIM(y) <= cnp.PyArray_NDIM(x):
        shaped, sy = x, 0
    elif cnp.PyArray_SIZE(x) == 1 and cnp.PyArray_NDIM(x) <= cnp.PyArray_NDIM(y):
        shaped, sx = y, 0
    else:
        return None
    cdef int64_t n = cnp.PyArray_SIZE(shaped)
    if n >= _EW_NUMPY_FROM and tt_binary_threads(n) == 1:
        return None
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(shaped), cnp.PyArray_DIMS(shaped),
                                             t, 0)
    cdef const void *px = cnp.PyArray_DATA(x)
    cdef const void *py = cnp.PyArray_DATA(y)
    cdef void *po = cnp.PyArray_DATA(out)
    cdef int raised
    if n < _EW_NOGIL_MIN:
        raised = _ew_binary_run(op, t == cnp.NPY_FLOAT32, px, sx, py, sy, po, n)
    else:
        with nogil:
            raised = _ew_binary_run(op, t == cnp.NPY_FLOAT32, px, sx, py, sy, po, n)
    if raised:
        PyUFunc_GiveFloatingpointErrors(name, raised)
    return out


cdef int _ew_binary_run(int op, bint f32, const void *a, int64_t sa, const void *b,
                        int64_t sb, void *out, int64_t n) noexcept nogil:
    if f32:
        return tt_binary_f32(op, <const float *>a, sa, <const float *>b, sb, <float *>out, n)
    return tt_binary_f64(op, <const double *>a, sa, <const double *>b, sb, <double *>out, n)


def add(a, b) -> cnp.ndarray | None:
    """a + b as np.add gives it, or None where the kernel does not apply (see above)."""
    return _ew_binary(TT_ADD, b"add", a, b)


def sub(a, b) -> cnp.ndarray | None:
    """a - b as np.subtract gives it, or None where the kernel does not apply."""
    return _ew_binary(TT_SUB, b"subtract", a, b)


def mul(a, b) -> cnp.ndarray | None:
    """a * b as np.multiply gives it, or None where the kernel does not apply."""
    return _ew_binary(TT_MUL, b"multiply", a, b)


def div(a, b) -> cnp.ndarray | None:
    """a / b as np.true_divide gives it, or None where the kernel does not apply."""
    return _ew_binary(TT_DIV, b"divide", a, b)

# ----------------------------------------------------------------- attention

cdef void *_attention_args(cnp.ndarray qkv, int64_t heads, object keep, cnp.ndarray weights,
                           bint weights_out, int64_t *dims) except? NULL:
    """Checks a packed qkv (batch, n, 3 * heads * d), the weights (batch, heads, n, n,
    written when weights_out) and keep (their shape, or None): qkv's dtype, contiguous.
    Sets dims = batch, n, d; returns keep's data, or NULL for None."""
    if qkv.ndim != 3 or heads < 1 or qkv.shape[2] % (3 * heads) != 0:
        raise ValueError(f"internal: attention got qkv of shape {(<object>qkv).shape} "
                         f"for {heads} heads")
    dims[0], dims[1], dims[2] = qkv.shape[0], qkv.shape[1], qkv.shape[2] // (3 * heads)
    cdef int64_t pairs = dims[0] * heads * dims[1] * dims[1]
    _contig(qkv, cnp.PyArray_SIZE(qkv))
    _same_type(qkv, weights)
    _contig(weights, pairs, weights_out)
    if keep is None:
        return NULL
    _same_type(qkv, keep)
    _contig(keep, pairs)
    return cnp.PyArray_DATA(keep)


cdef inline void _attention_status(int status) except *:
    if status != 0:
        raise MemoryError("attention: could not allocate scratch memory")


def attention_fwd(cnp.ndarray qkv, int64_t heads, object keep, bint causal, double scale,
                  cnp.ndarray weights, cnp.ndarray out) -> None:
    """weights (batch, heads, n, n) and out (batch, n, heads * d) from a packed qkv."""
    cdef int64_t dims[3]
    cdef void *pk = _attention_args(qkv, heads, keep, weights, True, dims)
    cdef int64_t b = dims[0], n = dims[1], d = dims[2]
    cdef bint f32 = _is_f32(qkv)
    _same_type(qkv, out)
    _contig(out, b * n * heads * d, True)
    cdef void *px = cnp.PyArray_DATA(qkv)
    cdef void *pw = cnp.PyArray_DATA(weights)
    cdef void *po = cnp.PyArray_DATA(out)
    cdef int status
    with nogil:
        if f32:
            status = tt_attention_fwd_f32(b, n, heads, d, <const float *>px, <const float *>pk,
                                          causal, <float>scale, <float *>pw, <float *>po)
        else:
            status = tt_attention_fwd_f64(b, n, heads, d, <const double *>px,
                                          <const double *>pk, causal, scale, <double *>pw,
                                          <double *>po)
    _attention_status(status)


def attention_bwd(cnp.ndarray qkv, int64_t heads, object keep, cnp.ndarray weights,
                  cnp.ndarray grad_out, bint causal, double scale,
                  cnp.ndarray grad_qkv) -> None:
    """grad_qkv (the shape of qkv) from the saved weights and grad_out (batch, n, heads*d)."""
    cdef int64_t dims[3]
    cdef void *pk = _attention_args(qkv, heads, keep, weights, False, dims)
    cdef int64_t b = dims[0], n = dims[1], d = dims[2]
    cdef bint f32 = _is_f32(qkv)
    _same_type(qkv, grad_out)
    _same_type(qkv, grad_qkv)
    _contig(grad_out, b * n * heads * d)
    _contig(grad_qkv, cnp.PyArray_SIZE(qkv), True)
    cdef void *px = cnp.PyArray_DATA(qkv)
    cdef void *pw = cnp.PyArray_DATA(weights)
    cdef void *pg = cnp.PyArray_DATA(grad_out)
    cdef void *pr = cnp.PyArray_DATA(grad_qkv)
    cdef int status
    with nogil:
        if f32:
            status = tt_attention_bwd_f32(b, n, heads, d, <const float *>px, <const float *>pk,
                                          <const float *>pw, <const float *>pg, causal,
                                          <float>scale, <float *>pr)
        else:
            status = tt_attention_bwd_f64(b, n, heads, d, <const double *>px,
                                          <const double *>pk, <const double *>pw,
                                          <const double *>pg, causal, scale, <double *>pr)
    _attention_status(status)


def gelu_fwd(cnp.ndarray x, cnp.ndarray y) -> None:
    cdef int64_t n = cnp.PyArray_SIZE(x)
    cdef bint f32 = _is_f32(x)
    _same_type(x, y)
    _contig(x, n)
    _contig(y, n, True)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *py = cnp.PyArray_DATA(y)
    with nogil:
        if f32:
            tt_gelu_fwd_f32(<const float *>px, <float *>py, n)
        else:
            tt_gelu_fwd_f64(<const double *>px, <double *>py, n)


def gelu_bwd(cnp.ndarray x, cnp.ndarray dy, cnp.ndarray dx) -> None:
    cdef int64_t n = cnp.PyArray_SIZE(x)
    cdef bint f32 = _is_f32(x)
    _same_type(x, dy)
    _same_type(x, dx)
    _contig(x, n)
    _contig(dy, n)
    _contig(dx, n, True)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *pdy = cnp.PyArray_DATA(dy)
    cdef void *pdx = cnp.PyArray_DATA(dx)
    with nogil:
        if f32:
            tt_gelu_bwd_f32(<const float *>px, <const float *>pdy, <float *>pdx, n)
        else:
            tt_gelu_bwd_f64(<const double *>px, <const double *>pdy, <double *>pdx, n)


def adam_step(cnp.ndarray p, cnp.ndarray g, cnp.ndarray m, cnp.ndarray v, object vmax,
              double grad_sign, double decay, double l2, double lerp_weight, double beta2,
              double one_minus_beta2, double bias_correction2_sqrt, double eps,
              double neg_step_size) -> None:
    cdef int64_t n = cnp.PyArray_SIZE(p)
    cdef bint f32 = _is_f32(p)
    cdef cnp.ndarray vm
    cdef void *pvmax = NULL
    for a in (g, m, v):
        _same_type(p, a)
    _contig(p, n, True)
    _contig(g, n)
    _contig(m, n, True)
    _contig(v, n, True)
    if vmax is not None:
        vm = vmax
        _same_type(p, vm)
        _contig(vm, n, True)
        pvmax = cnp.PyArray_DATA(vm)
    cdef tt_adam_params hp
    hp.grad_sign, hp.decay, hp.l2, hp.lerp_weight = grad_sign, decay, l2, lerp_weight
    hp.beta2, hp.one_minus_beta2 = beta2, one_minus_beta2
    hp.bias_correction2_sqrt, hp.eps, hp.neg_step_size = bias_correction2_sqrt, eps, neg_step_size
    cdef void *pp = cnp.PyArray_DATA(p)
    cdef void *pg = cnp.PyArray_DATA(g)
    cdef void *pm = cnp.PyArray_DATA(m)
    cdef void *pv = cnp.PyArray_DATA(v)
    with nogil:
        if f32:
            tt_adam_step_f32(<float *>pp, <const float *>pg, <float *>pm, <float *>pv,
                             <float *>pvmax, n, &hp)
        else:
            tt_adam_step_f64(<double *>pp, <const double *>pg, <double *>pm, <double *>pv,
                             <double *>pvmax, n, &hp)


# SGD runs once per parameter per step, often on a few hundred values, so like the
# elementwise kernels it checks its arguments in C-API calls and keeps the GIL for small
# parameters. It takes the arrays only when p (and the buffer) are aligned, C-contiguous,
# writable float32/float64 arrays in native byte order, and the gradient an array of
# their dtype and shape (copied when not aligned and C-contiguous); otherwise it returns
# NotImplemented before touching anything, and tinytape.backend raises the error or runs
# the numpy reference.

cdef inline bint _updatable(object a, int t):
    """a is an aligned, C-contiguous, writable array of type t in native byte order."""
    return (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == t
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)
            and cnp.PyArray_CHKFLAGS(<cnp.ndarray>a, cnp.NPY_ARRAY_C_CONTIGUOUS
                                     | cnp.NPY_ARRAY_ALIGNED | cnp.NPY_ARRAY_WRITEABLE))


cdef inline bint _same(cnp.ndarray a, object b, int t):
    """b is an array of a's shape and of type t in native byte order."""
    return (cnp.PyArray_Check(b) and cnp.PyArray_TYPE(<cnp.ndarray>b) == t
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>b)
            and cnp.PyArray_SAMESHAPE(a, <cnp.ndarray>b))


def sgd_step(p, grad, buf, double lr, double momentum, double dampening,
             double weight_decay, bint nesterov, bint maximize):
    """One torch.optim.SGD step of the parameter p in place (tinytape/backend/sgd.py).
    Returns the momentum buffer: buf updated, a new array on the first step (buf None,
    momentum != 0), or buf untouched without momentum; NotImplemented, with nothing
    changed, for arguments it does not take (see above)."""
    if not cnp.PyArray_Check(p):
        return NotImplemented
    cdef cnp.ndarray pa = p
    cdef int t = cnp.PyArray_TYPE(pa)
    cdef bint use_buf = momentum != 0
    if ((t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or not _updatable(pa, t)
            or not _same(pa, grad, t)
            or (use_buf and buf is not None and not (_updatable(buf, t) and _same(pa, buf, t)))):
        return NotImplemented
    cdef cnp.ndarray ga = grad
    if not cnp.PyArray_CHKFLAGS(ga, cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED):
        ga = cnp.PyArray_NewCopy(ga, cnp.NPY_CORDER)
    cdef cnp.ndarray ba = None
    cdef void *pb = NULL
    cdef tt_sgd_params hp
    hp.init_buffer = 0
    if use_buf:
        if buf is None:
            ba = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(pa), cnp.PyArray_DIMS(pa), t, 0)
            hp.init_buffer = 1
        else:
            ba = buf
        pb = cnp.PyArray_DATA(ba)
    hp.grad_sign = -1.0 if maximize else 1.0
    hp.weight_decay, hp.momentum, hp.one_minus_dampening = weight_decay, momentum, 1 - dampening
    hp.lr, hp.nesterov = lr, nesterov
    cdef int64_t n = cnp.PyArray_SIZE(pa)
    cdef void *pp = cnp.PyArray_DATA(pa)
    cdef const void *pg = cnp.PyArray_DATA(ga)
    if n < _EW_NOGIL_MIN:
        _sgd_run(t == cnp.NPY_FLOAT32, pp, pg, pb, n, &hp)
    else:
        with nogil:
            _sgd_run(t == cnp.NPY_FLOAT32, pp, pg, pb, n, &hp)
    return ba if use_buf else buf


cdef void _sgd_run(bint f32, void *p, const void *g, void *buf, int64_t n,
                   const tt_sgd_params *hp) noexcept nogil:
    if f32:
        tt_sgd_step_f32(<float *>p, <const float *>g, <float *>buf, n, hp)
    else:
        tt_sgd_step_f64(<double *>p, <const double *>g, <double *>buf, n, hp)
