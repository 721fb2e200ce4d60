/* Row kernels (softmax, log-softmax, cross-entropy, layer norm), the elementwise GELU,
 * sigmoid, tanh backward and ReLU, Adam and SGD, and add/sub/mul/div: the public entry
 * points declared in tinytape.h.
 *
 * Each entry point handles empty shapes and bad targets, cuts the rows into
 * contiguous chunks that the OpenMP threads claim in turn (serial for small
 * inputs; layer-norm backward gives each thread one chunk, see there), and runs
 * the chunks on the SIMD path tt_simd_level() names at the time of the call.
 * The per-row work lives in rowops_impl.inc.
 */
#include <math.h>
#include "rowops.h"
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#else
#include <fenv.h>
#endif

/* Work per element in tt_threads_for units (serial below TT_MT_MIN_WORK = 1M),
 * relative costs measured on AVX-512 with 2 threads: the exp kernels go
 * parallel from 500K elements, the plain ones from 1M and layer-norm backward
 * (whose per-thread dgamma/dbeta buffers cost extra) from 2M. With sleeping
 * threads, (1024, 512) float32 took 251 us on one thread and 201 us on two for
 * softmax, but 149 and 175 us for layer norm. */
#define RO_COST_EXP 2.0
#define RO_COST_PLAIN 1.0
#define RO_COST_LN_BWD 0.5

/* Most threads a row kernel uses (ro_threads caps the count). */
#define RO_MAX_THREADS 256

/* Row kernels with independent rows cut them into this many chunks per thread, which
 * the threads claim one at a time (OpenMP's dynamic schedule). A thread that wakes late
 * (a sleeping OpenMP worker takes 10-50 us to wake, and on a busy machine it may not get
 * a core at once) then costs at most a chunk of imbalance instead of its whole static
 * share: the caller's thread takes the chunks the other has not claimed. */
#define RO_CHUNKS_PER_THREAD 4

/* Cross-entropy keeps one partial loss per chunk on the stack. */
#define RO_MAX_CHUNKS (RO_MAX_THREADS * RO_CHUNKS_PER_THREAD)

static const struct tt_rowops *ro_ops(void) {
#if TT_X86_SIMD
    switch (tt_simd_level()) {
        case TT_SIMD_AVX512: return &tt_rowops_avx512;
        case TT_SIMD_AVX2: return &tt_rowops_avx2;
        default: break;
    }
#endif
    return &tt_rowops_generic;
}

static int ro_threads(int64_t rows, int64_t cols, double cost) {
    int nt = tt_threads_for((double)rows * (double)cols * cost);
    if (nt > rows) nt = (int)rows;
    if (nt > RO_MAX_THREADS) nt = RO_MAX_THREADS;
    return nt < 1 ? 1 : nt;
}

/* Rows [*r0, *r0 + *nr) of part i out of n: contiguous, sizes differ by <= 1. */
static void ro_chunk(int64_t rows, int64_t i, int64_t n, int64_t *r0, int64_t *nr) {
    const int64_t base = rows / n, extra = rows % n;
    *r0 = i * base + (i < extra ? i : extra);
    *nr = base + (i < extra ? 1 : 0);
}

/* Chunks of `rows` for nt threads (1 when serial, never more than the rows). */
static int64_t ro_chunks(int64_t rows, int nt) {
    const int64_t n = nt > 1 ? (int64_t)nt * RO_CHUNKS_PER_THREAD : 1;
    return n < rows ? n : rows;
}

/* Runs BODY once per chunk with ci (chunk index, below ro_chunks(rows, nthreads)),
 * r0 (first row) and nr (row count, >= 1) set; chunks go to threads as they ask. */
#ifdef _OPENMP
#define RO_FOR_CHUNKS(nthreads, rows, BODY)                                  \
    do {                                                                     \
        const int ro_nt = (nthreads);                                        \
        const int64_t ro_rows = (rows), ro_nc = ro_chunks(ro_rows, ro_nt);   \
        if (ro_nt > 1) {                                                     \
            _Pragma("omp parallel for schedule(dynamic, 1) num_threads(ro_nt)") \
            for (int64_t ci = 0; ci < ro_nc; ci++) {                         \
                int64_t r0, nr;                                              \
                ro_chunk(ro_rows, ci, ro_nc, &r0, &nr);                      \
                BODY;                                                        \
            }                                                                \
        } else {                                                             \
            const int64_t ci = 0, r0 = 0, nr = ro_rows;                      \
            (void)ci;                                                        \
            BODY;                                                            \
        }                                                                    \
    } while (0)
#else
#define RO_FOR_CHUNKS(nthreads, rows, BODY)                                  \
    do {                                                                     \
        const int64_t ci = 0, r0 = 0, nr = (rows);                           \
        (void)(nthreads);                                                    \
        (void)ci;                                                            \
        BODY;                                                                \
    } while (0)
#endif

/* ------------------------------------------------ softmax and log-softmax */

#define RO_DEFINE_FWD(name, field, T, cost)                                           \
    void name(const T *x, T *y, int64_t rows, int64_t cols) {                        \
        if (rows <= 0 || cols <= 0) return;                                          \
        const struct tt_rowops *ops = ro_ops();                                      \
        RO_FOR_CHUNKS(ro_threads(rows, cols, cost), rows,                            \
                      ops->field(x + r0 * cols, y + r0 * cols, nr, cols));           \
    }

#define RO_DEFINE_BWD(name, field, T, cost)                                           \
    void name(const T *y, const T *dy, T *dx, int64_t rows, int64_t cols) {          \
        if (rows <= 0 || cols <= 0) return;                                          \
        const struct tt_rowops *ops = ro_ops();                                      \
        RO_FOR_CHUNKS(ro_threads(rows, cols, cost), rows,                            \
                      ops->field(y + r0 * cols, dy + r0 * cols, dx + r0 * cols, nr,  \
                                 cols));                                             \
    }

RO_DEFINE_FWD(tt_softmax_fwd_f32, softmax_fwd_f32, float, RO_COST_EXP)
RO_DEFINE_FWD(tt_softmax_fwd_f64, softmax_fwd_f64, double, RO_COST_EXP)
RO_DEFINE_BWD(tt_softmax_bwd_f32, softmax_bwd_f32, float, RO_COST_PLAIN)
RO_DEFINE_BWD(tt_softmax_bwd_f64, softmax_bwd_f64, double, RO_COST_PLAIN)
RO_DEFINE_FWD(tt_log_softmax_fwd_f32, log_softmax_fwd_f32, float, RO_COST_EXP)
RO_DEFINE_FWD(tt_log_softmax_fwd_f64, log_softmax_fwd_f64, double, RO_COST_EXP)
RO_DEFINE_BWD(tt_log_softmax_bwd_f32, log_softmax_bwd_f32, float, RO_COST_EXP)
RO_DEFINE_BWD(tt_log_softmax_bwd_f64, log_softmax_bwd_f64, double, RO_COST_EXP)

/* --------------------------------------------------------- cross-entropy */

/* First row whose target is neither ignore nor in [0, cols), else -1; counts
 * the other rows. Checked up front so the kernels never index with a bad
 * target and the answer does not depend on the thread split. */
static int64_t ro_check_targets(const int64_t *targets, int64_t rows, int64_t cols,
                                int64_t ignore, int64_t *count) {
    int64_t n = 0;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t t = targets[r];
        if (t == ignore) continue;
        if (t < 0 || t >= cols) return r;
        n++;
    }
    *count = n;
    return -1;
}

#define RO_DEFINE_CE_FWD(name, field, T)                                               \
    int64_t name(const T *logits, const int64_t *targets, int64_t rows, int64_t cols,  \
                 int64_t ignore_index, T *lse, double *loss_sum, int64_t *count) {     \
        int64_t n = 0;                                                                 \
        *loss_sum = 0.0;                                                               \
        *count = 0;                                                                    \
        if (rows <= 0) return -1;                                                      \
        const int64_t bad = ro_check_targets(targets, rows, cols, ignore_index, &n);   \
        if (bad >= 0) return bad;                                                      \
        if (cols == 0) { /* every row is ignored; logsumexp of nothing */              \
            for (int64_t r = 0; r < rows; r++) lse[r] = -(T)INFINITY;                  \
            return -1;                                                                 \
        }                                                                              \
        const struct tt_rowops *ops = ro_ops();                                        \
        double part[RO_MAX_CHUNKS] = {0}; /* summed in chunk order: deterministic */  \
        const int nt = ro_threads(rows, cols, RO_COST_EXP);                            \
        RO_FOR_CHUNKS(nt, rows,                                                        \
                      part[ci] = ops->field(logits + r0 * cols, targets + r0, nr,      \
                                            cols, ignore_index, lse + r0));            \
        double sum = 0.0;                                                              \
        for (int64_t c = 0; c < ro_chunks(rows, nt); c++) sum += part[c];              \
        *loss_sum = sum;                                                               \
        *count = n;                                                                    \
        return -1;                                                                     \
    }

#define RO_DEFINE_CE_BWD(name, field, T)                                               \
    int64_t name(const T *logits, const int64_t *targets, const T *lse, int64_t rows,  \
                 int64_t cols, int64_t ignore_index, T scale, T *dlogits) {            \
        int64_t n = 0;                                                                 \
        if (rows <= 0) return -1;                                                      \
        const int64_t bad = ro_check_targets(targets, rows, cols, ignore_index, &n);   \
        if (bad >= 0) return bad;                                                      \
        if (cols == 0) return -1;                                                      \
        const struct tt_rowops *ops = ro_ops();                                        \
        RO_FOR_CHUNKS(ro_threads(rows, cols, RO_COST_EXP), rows,                       \
                      ops->field(logits + r0 * cols, targets + r0, lse + r0, nr, cols, \
                                 ignore_index, scale, dlogits + r0 * cols));           \
        return -1;                                                                     \
    }

RO_DEFINE_CE_FWD(tt_cross_entropy_fwd_f32, ce_fwd_f32, float)
RO_DEFINE_CE_FWD(tt_cross_entropy_fwd_f64, ce_fwd_f64, double)
RO_DEFINE_CE_BWD(tt_cross_entropy_bwd_f32, ce_bwd_f32, float)
RO_DEFINE_CE_BWD(tt_cross_entropy_bwd_f64, ce_bwd_f64, double)

/* ------------------------------------------------------------ layer norm */

#define RO_DEFINE_LN_FWD(name, field, T)                                                \
    void name(const T *x, const T *gamma, const T *beta, T *y, T *mean, T *rstd,        \
              int64_t rows, int64_t cols, T eps) {                                      \
        if (rows <= 0) return;                                                          \
        if (cols == 0) { /* statistics of nothing, as numpy gives them */               \
            for (int64_t r = 0; r < rows; r++) mean[r] = rstd[r] = (T)NAN;              \
            return;                                                                     \
        }                                                                               \
        const struct tt_rowops *ops = ro_ops();                                         \
        RO_FOR_CHUNKS(ro_threads(rows, cols, RO_COST_PLAIN), rows,                      \
                      ops->field(x + r0 * cols, gamma, beta, y + r0 * cols, mean + r0,  \
                                 rstd + r0, nr, cols, eps));                            \
    }

RO_DEFINE_LN_FWD(tt_layer_norm_fwd_f32, ln_fwd_f32, float)
RO_DEFINE_LN_FWD(tt_layer_norm_fwd_f64, ln_fwd_f64, double)

/* Backward: each thread sums dgamma/dbeta over its rows into its own buffers
 * (double totals, see TT_LN_BLOCK_ROWS); the totals are then added in thread
 * order, so the result depends on the thread count but not on timing. */
#ifdef _OPENMP
#define RO_LN_PARALLEL_REGION _Pragma("omp parallel num_threads(nt) if (nt > 1)")
#define RO_LN_TID omp_get_thread_num()
#define RO_LN_TEAM omp_get_num_threads()
#else
#define RO_LN_PARALLEL_REGION
#define RO_LN_TID 0
#define RO_LN_TEAM 1
#endif

#define RO_DEFINE_LN_BWD(name, field, T)                                                 \
    void name(const T *dy, const T *x, const T *gamma, const T *mean, const T *rstd,     \
              T *dx, T *dgamma, T *dbeta, int64_t rows, int64_t cols) {                  \
        if (cols <= 0) return;                                                           \
        if (rows <= 0) {                                                                 \
            for (int64_t j = 0; j < cols; j++) dgamma[j] = dbeta[j] = 0;                 \
            return;                                                                      \
        }                                                                                \
        const struct tt_rowops *ops = ro_ops();                                          \
        const int nt = ro_threads(rows, cols, RO_COST_LN_BWD);                                 \
        /* per thread: part_g, part_b (T), tot_g, tot_b (double), 64-byte aligned */    \
        const int64_t cpad = (cols + 15) / 16 * 16;                                       \
        const int64_t stride = 2 * cpad * (int64_t)sizeof(T) + 2 * cpad * 8;             \
        char *buf = (char *)tt_aligned_alloc((size_t)(nt * stride));                     \
        if (buf == NULL) { /* serial, summing straight into the outputs */              \
            ops->field(dy, x, gamma, mean, rstd, dx, rows, cols, dgamma, dbeta, NULL,    \
                       NULL);                                                            \
            return;                                                                      \
        }                                                                                \
        int team = 1;                                                                    \
        RO_LN_PARALLEL_REGION                                                            \
        {                                                                                \
            const int tid = RO_LN_TID, tn = RO_LN_TEAM;                                  \
            int64_t r0, nr;                                                              \
            ro_chunk(rows, tid, tn, &r0, &nr);                                           \
            if (tid == 0) team = tn;                                                     \
            char *mine = buf + tid * stride;                                             \
            T *pg = (T *)mine, *pb = pg + cpad;                                          \
            double *tg = (double *)(pb + cpad), *tb = tg + cpad;                         \
            /* also with nr == 0: zeroes this thread's totals */                        \
            ops->field(dy + r0 * cols, x + r0 * cols, gamma, mean + r0, rstd + r0,       \
                       dx + r0 * cols, nr, cols, pg, pb, tg, tb);                        \
        }                                                                                \
        /* add the totals into thread 0's, in thread order */                            \
        double *tot0 = (double *)(buf + 2 * cpad * (int64_t)sizeof(T));                 \
        for (int t = 1; t < team; t++) {                                                 \
            const double *tot = (const double *)((char *)tot0 + t * stride);             \
            for (int64_t j = 0; j < 2 * cpad; j++) tot0[j] += tot[j];                    \
        }                                                                                \
        for (int64_t j = 0; j < cols; j++) {                                             \
            dgamma[j] = (T)tot0[j];                                                      \
            dbeta[j] = (T)tot0[cpad + j];                                                \
        }                                                                                \
        tt_aligned_free(buf);                                                            \
    }

RO_DEFINE_LN_BWD(tt_layer_norm_bwd_f32, ln_bwd_f32, float)
RO_DEFINE_LN_BWD(tt_layer_norm_bwd_f64, ln_bwd_f64, double)

/* ------------------------------------------- elementwise: GELU, sigmoid, tanh */
/* Each value is a "row" of one, so the chunks split the values. The exp kernels (GELU,
 * the sigmoid forward) cost RO_COST_EXP a value, the sigmoid and tanh backwards (two
 * multiplies and a subtraction) RO_COST_PLAIN. */

#define RO_DEFINE_EW_FWD(name, field, T, cost)                                         \
    void name(const T *x, T *y, int64_t n) {                                          \
        if (n <= 0) return;                                                           \
        const struct tt_rowops *ops = ro_ops();                                       \
        RO_FOR_CHUNKS(ro_threads(n, 1, cost), n, ops->field(x + r0, y + r0, nr));     \
    }

#define RO_DEFINE_EW_BWD(name, field, T, cost)                                         \
    void name(const T *a, const T *b, T *dx, int64_t n) {                             \
        if (n <= 0) return;                                                           \
        const struct tt_rowops *ops = ro_ops();                                       \
        RO_FOR_CHUNKS(ro_threads(n, 1, cost), n, ops->field(a + r0, b + r0, dx + r0, nr)); \
    }

RO_DEFINE_EW_FWD(tt_gelu_fwd_f32, gelu_fwd_f32, float, RO_COST_EXP)
RO_DEFINE_EW_FWD(tt_gelu_fwd_f64, gelu_fwd_f64, double, RO_COST_EXP)
RO_DEFINE_EW_BWD(tt_gelu_bwd_f32, gelu_bwd_f32, float, RO_COST_EXP)
RO_DEFINE_EW_BWD(tt_gelu_bwd_f64, gelu_bwd_f64, double, RO_COST_EXP)
RO_DEFINE_EW_FWD(tt_sigmoid_fwd_f32, sigmoid_fwd_f32, float, RO_COST_EXP)
RO_DEFINE_EW_FWD(tt_sigmoid_fwd_f64, sigmoid_fwd_f64, double, RO_COST_EXP)
RO_DEFINE_EW_BWD(tt_sigmoid_bwd_f32, sigmoid_bwd_f32, float, RO_COST_PLAIN)
RO_DEFINE_EW_BWD(tt_sigmoid_bwd_f64, sigmoid_bwd_f64, double, RO_COST_PLAIN)
RO_DEFINE_EW_BWD(tt_tanh_bwd_f32, tanh_bwd_f32, float, RO_COST_PLAIN)
RO_DEFINE_EW_BWD(tt_tanh_bwd_f64, tanh_bwd_f64, double, RO_COST_PLAIN)

/* ReLU, forward (the mask is optional) and backward: RO_COST_PLAIN. */

#define RO_DEFINE_RELU_FWD(name, field, T)                                             \
    void name(const T *x, T *y, uint8_t *mask, int64_t n) {                           \
        if (n <= 0) return;                                                           \
        const struct tt_rowops *ops = ro_ops();                                       \
        RO_FOR_CHUNKS(ro_threads(n, 1, RO_COST_PLAIN), n,                             \
                      ops->field(x + r0, y + r0, mask ? mask + r0 : NULL, nr));       \
    }

#define RO_DEFINE_RELU_BWD(name, field, T)                                             \
    void name(const uint8_t *mask, const T *g, T *dx, int64_t n) {                    \
        if (n <= 0) return;                                                           \
        const struct tt_rowops *ops = ro_ops();                                       \
        RO_FOR_CHUNKS(ro_threads(n, 1, RO_COST_PLAIN), n,                             \
                      ops->field(mask + r0, g + r0, dx + r0, nr));                    \
    }

RO_DEFINE_RELU_FWD(tt_relu_fwd_f32, relu_fwd_f32, float)
RO_DEFINE_RELU_FWD(tt_relu_fwd_f64, relu_fwd_f64, double)
RO_DEFINE_RELU_BWD(tt_relu_bwd_f32, relu_bwd_f32, float)
RO_DEFINE_RELU_BWD(tt_relu_bwd_f64, relu_bwd_f64, double)

/* ------------------------------------------------------------------ Adam */

#define RO_DEFINE_ADAM(name, field, T)                                                 \
    void name(T *p, const T *g, T *m, T *v, T *vmax, int64_t n,                       \
              const struct tt_adam_params *hp) {                                      \
        if (n <= 0) return;                                                           \
        const struct tt_rowops *ops = ro_ops();                                       \
        RO_FOR_CHUNKS(ro_threads(n, 1, RO_COST_PLAIN), n,                             \
                      ops->field(p + r0, g + r0, m + r0, v + r0, vmax ? vmax + r0 : NULL, \
                                 nr, hp));                                            \
    }

RO_DEFINE_ADAM(tt_adam_step_f32, adam_f32, float)
RO_DEFINE_ADAM(tt_adam_step_f64, adam_f64, double)

/* ------------------------------------------------------------------ SGD */

#define RO_DEFINE_SGD(name, field, T)                                                  \
    void name(T *p, const T *g, T *buf, int64_t n, const struct tt_sgd_params *hp) {  \
        if (n <= 0) return;                                                           \
        const struct tt_rowops *ops = ro_ops();                                       \
        RO_FOR_CHUNKS(ro_threads(n, 1, RO_COST_PLAIN), n,                             \
                      ops->field(p + r0, g + r0, buf ? buf + r0 : NULL, nr, hp));     \
    }

RO_DEFINE_SGD(tt_sgd_step_f32, sgd_f32, float)
RO_DEFINE_SGD(tt_sgd_step_f64, sgd_f64, double)
/* ---------------------------------------------------- add, sub, mul, div */
/* The floating-point exception flags of the calling thread, cleared before a chunk and
 * read after it, so that the binding can warn (or raise) as numpy's ufuncs do. On x86-64
 * the arithmetic is SSE/AVX, whose flags live in MXCSR alone: reading and writing it
 * directly costs a few cycles, fenv's calls (which also save the x87 state) far more. */
#if defined(__x86_64__) || defined(_M_X64)
static void ro_fpe_clear(void) { _mm_setcsr(_mm_getcsr() & ~0x3Fu); }
static int ro_fpe_raised(void) {
    const unsigned s = _mm_getcsr(); /* IE bit 0, ZE bit 2, OE bit 3, UE bit 4 */
    return (s & 0x01 ? TT_FPE_INVALID : 0) | (s & 0x04 ? TT_FPE_DIVIDEBYZERO : 0) |
           (s & 0x08 ? TT_FPE_OVERFLOW : 0) | (s & 0x10 ? TT_FPE_UNDERFLOW : 0);
}
#else
static void ro_fpe_clear(void) { feclearexcept(FE_ALL_EXCEPT); }
static int ro_fpe_raised(void) {
    const int s = fetestexcept(FE_ALL_EXCEPT);
    return (s & FE_INVALID ? TT_FPE_INVALID : 0) | (s & FE_DIVBYZERO ? TT_FPE_DIVIDEBYZERO : 0) |
           (s & FE_OVERFLOW ? TT_FPE_OVERFLOW : 0) | (s & FE_UNDERFLOW ? TT_FPE_UNDERFLOW : 0);
}
#endif

static void ro_add_fpe(int *flags, int raised) {
    if (raised) {
#ifdef _OPENMP
#pragma omp atomic
#endif
        *flags |= raised;
    }
}

/* One chunk on the calling thread: its flags cleared, the kernel run, the flags read.
 * Memory-bound, so RO_COST_PLAIN (one op per value) splits it from 1M values. */
#define RO_DEFINE_BINARY(name, field, T)                                               \
    static int name##_chunk(const struct tt_rowops *ops, int op, const T *a, int64_t sa, \
                            const T *b, int64_t sb, T *out, int64_t n) {              \
        ro_fpe_clear();                                                               \
        ops->field(op, a, sa, b, sb, out, n);                                         \
        return ro_fpe_raised();                                                       \
    }                                                                                 \
    int name(int op, const T *a, int64_t sa, const T *b, int64_t sb, T *out, int64_t n) { \
        if (n <= 0) return 0;                                                         \
        const struct tt_rowops *ops = ro_ops();                                       \
        int flags = 0;                                                                \
        RO_FOR_CHUNKS(ro_threads(n, 1, RO_COST_PLAIN), n,                             \
                      ro_add_fpe(&flags, name##_chunk(ops, op, a + r0 * sa, sa, b + r0 * sb, \
                                                      sb, out + r0, nr)));            \
        return flags;                                                                 \
    }

RO_DEFINE_BINARY(tt_binary_f32, binary_f32, float)
RO_DEFINE_BINARY(tt_binary_f64, binary_f64, double)

int tt_binary_threads(int64_t n) { return ro_threads(n, 1, RO_COST_PLAIN); }
