/* Row kernels, internal: the per-path function tables that rowops.c dispatches to.
 *
 * rowops_impl.inc is compiled once per SIMD path (rowops_generic.c,
 * rowops_avx2.c, rowops_avx512.c); each path exports one table. The table
 * functions process a contiguous block of rows on the calling thread and trust
 * their arguments: rowops.c splits rows over threads, checks targets, and
 * handles empty shapes.
 *
 * Every output may be the same buffer as an input of the same shape (in place);
 * partial overlap is not allowed.
 */
#ifndef TT_ROWOPS_H
#define TT_ROWOPS_H

#include <stdint.h>
#include "tt_internal.h"

/* Layer-norm backward sums dgamma/dbeta rows in blocks of this many rows in the
 * element type, then adds each block into a double total: float sums of 4096
 * rows would lose ~3 digits, and a double add per element per row would cost. */
#define TT_LN_BLOCK_ROWS 32

/* Cross-entropy backward trusts the saved lse while |lse| is below this: its
 * rounding then moves the gradient by at most 2^-18 (float) relative. */
#define TT_CE_LSE_EXACT 64.0

/* GELU clamps x to [-tt_gelu_clamp, tt_gelu_clamp] (1e4) before it forms z. Read once
 * per call from this volatile object, like exp's limits (tt_math.h): clamped to
 * compile-time constants, GCC left the loop scalar (140 ms for a 2M-value forward and
 * backward on AVX2, against 4.5 ms vectorized). */
static volatile const double tt_gelu_clamp = 1e4;

struct tt_rowops {
    void (*softmax_fwd_f32)(const float *x, float *y, int64_t rows, int64_t cols);
    void (*softmax_fwd_f64)(const double *x, double *y, int64_t rows, int64_t cols);
    void (*softmax_bwd_f32)(const float *y, const float *dy, float *dx, int64_t rows,
                            int64_t cols);
    void (*softmax_bwd_f64)(const double *y, const double *dy, double *dx, int64_t rows,
                            int64_t cols);
    void (*log_softmax_fwd_f32)(const float *x, float *y, int64_t rows, int64_t cols);
    void (*log_softmax_fwd_f64)(const double *x, double *y, int64_t rows, int64_t cols);
    void (*log_softmax_bwd_f32)(const float *y, const float *dy, float *dx, int64_t rows,
                                int64_t cols);
    void (*log_softmax_bwd_f64)(const double *y, const double *dy, double *dx, int64_t rows,
                                int64_t cols);
    /* Writes lse for every row; returns the sum over rows whose target is not
     * ignore of lse - logits[t]. Targets must already be valid. */
    double (*ce_fwd_f32)(const float *logits, const int64_t *targets, int64_t rows,
                         int64_t cols, int64_t ignore, float *lse);
    double (*ce_fwd_f64)(const double *logits, const int64_t *targets, int64_t rows,
                         int64_t cols, int64_t ignore, double *lse);
    void (*ce_bwd_f32)(const float *logits, const int64_t *targets, const float *lse,
                       int64_t rows, int64_t cols, int64_t ignore, float scale, float *dlogits);
    void (*ce_bwd_f64)(const double *logits, const int64_t *targets, const double *lse,
                       int64_t rows, int64_t cols, int64_t ignore, double scale,
                       double *dlogits);
    void (*ln_fwd_f32)(const float *x, const float *gamma, const float *beta, float *y,
                       float *mean, float *rstd, int64_t rows, int64_t cols, float eps);
    void (*ln_fwd_f64)(const double *x, const double *gamma, const double *beta, double *y,
                       double *mean, double *rstd, int64_t rows, int64_t cols, double eps);
    /* Writes dx; overwrites part_g/part_b (length cols) with sum over rows of
     * dy*xhat and dy. With tot_g/tot_b non-NULL the sums go to those (double)
     * in blocks of TT_LN_BLOCK_ROWS rows and part_* are scratch; with NULL all
     * rows are summed straight into part_*. */
    void (*ln_bwd_f32)(const float *dy, const float *x, const float *gamma, const float *mean,
                       const float *rstd, float *dx, int64_t rows, int64_t cols,
                       float *part_g, float *part_b, double *tot_g, double *tot_b);
    void (*ln_bwd_f64)(const double *dy, const double *x, const double *gamma,
                       const double *mean, const double *rstd, double *dx, int64_t rows,
                       int64_t cols, double *part_g, double *part_b, double *tot_g,
                       double *tot_b);
    /* Elementwise over n values. */
    void (*gelu_fwd_f32)(const float *x, float *y, int64_t n);
    void (*gelu_fwd_f64)(const double *x, double *y, int64_t n);
    void (*gelu_bwd_f32)(const float *x, const float *dy, float *dx, int64_t n);
    void (*gelu_bwd_f64)(const double *x, const double *dy, double *dx, int64_t n);
    void (*sigmoid_fwd_f32)(const float *x, float *y, int64_t n);
    void (*sigmoid_fwd_f64)(const double *x, double *y, int64_t n);
    void (*sigmoid_bwd_f32)(const float *y, const float *g, float *dx, int64_t n);
    void (*sigmoid_bwd_f64)(const double *y, const double *g, double *dx, int64_t n);
    void (*tanh_bwd_f32)(const float *y, const float *g, float *dx, int64_t n);
    void (*tanh_bwd_f64)(const double *y, const double *g, double *dx, int64_t n);
    /* mask may be NULL (no mask written) */
    void (*relu_fwd_f32)(const float *x, float *y, uint8_t *mask, int64_t n);
    void (*relu_fwd_f64)(const double *x, double *y, uint8_t *mask, int64_t n);
    void (*relu_bwd_f32)(const uint8_t *mask, const float *g, float *dx, int64_t n);
    void (*relu_bwd_f64)(const uint8_t *mask, const double *g, double *dx, int64_t n);
    void (*adam_f32)(float *p, const float *g, float *m, float *v, float *vmax, int64_t n,
                     const struct tt_adam_params *hp);
    void (*adam_f64)(double *p, const double *g, double *m, double *v, double *vmax,
                     int64_t n, const struct tt_adam_params *hp);
    void (*sgd_f32)(float *p, const float *g, float *buf, int64_t n,
                    const struct tt_sgd_params *hp);
    void (*sgd_f64)(double *p, const double *g, double *buf, int64_t n,
                    const struct tt_sgd_params *hp);
    /* out = a (op) b over n values; sa, sb: 1 for n values, 0 for one broadcast value. */
    void (*binary_f32)(int op, const float *a, int64_t sa, const float *b, int64_t sb,
                       float *out, int64_t n);
    void (*binary_f64)(int op, const double *a, int64_t sa, const double *b, int64_t sb,
                       double *out, int64_t n);
};

/* The table of a path whose kernels rowops_impl.inc defined with suffix _<path>. */
#define TT_ROWOPS_TABLE(path)                                                             \
    {                                                                                     \
        tt_ro_softmax_fwd_f32_##path, tt_ro_softmax_fwd_f64_##path,                       \
        tt_ro_softmax_bwd_f32_##path, tt_ro_softmax_bwd_f64_##path,                       \
        tt_ro_log_softmax_fwd_f32_##path, tt_ro_log_softmax_fwd_f64_##path,               \
        tt_ro_log_softmax_bwd_f32_##path, tt_ro_log_softmax_bwd_f64_##path,               \
        tt_ro_ce_fwd_f32_##path, tt_ro_ce_fwd_f64_##path,                                 \
        tt_ro_ce_bwd_f32_##path, tt_ro_ce_bwd_f64_##path,                                 \
        tt_ro_ln_fwd_f32_##path, tt_ro_ln_fwd_f64_##path,                                 \
        tt_ro_ln_bwd_f32_##path, tt_ro_ln_bwd_f64_##path,                                 \
        tt_ro_gelu_fwd_f32_##path, tt_ro_gelu_fwd_f64_##path,                             \
        tt_ro_gelu_bwd_f32_##path, tt_ro_gelu_bwd_f64_##path,                             \
        tt_ro_sigmoid_fwd_f32_##path, tt_ro_sigmoid_fwd_f64_##path,                       \
        tt_ro_sigmoid_bwd_f32_##path, tt_ro_sigmoid_bwd_f64_##path,                       \
        tt_ro_tanh_bwd_f32_##path, tt_ro_tanh_bwd_f64_##path,                             \
        tt_ro_relu_fwd_f32_##path, tt_ro_relu_fwd_f64_##path,                             \
        tt_ro_relu_bwd_f32_##path, tt_ro_relu_bwd_f64_##path,                             \
        tt_ro_adam_f32_##path, tt_ro_adam_f64_##path,                                     \
        tt_ro_sgd_f32_##path, tt_ro_sgd_f64_##path,                                       \
        tt_ro_binary_f32_##path, tt_ro_binary_f64_##path                                  \
    }

extern const struct tt_rowops tt_rowops_generic;
#if TT_X86_SIMD
extern const struct tt_rowops tt_rowops_avx2;
extern const struct tt_rowops tt_rowops_avx512;
#endif

#endif /* TT_ROWOPS_H */
