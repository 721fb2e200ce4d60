/* tinytape C kernels: the public C API.
 *
 * Plain C (no Python.h). All matrices are row-major with an explicit row stride
 * ("leading dimension", in elements). Callers (the Cython layer) guarantee that
 * every pointer covers the extent the sizes and strides describe; the kernels
 * never read or write outside it.
 *
 * Each kernel exists for float (f32) and double (f64). The public functions
 * below dispatch to the SIMD path chosen at run time (AVX-512, AVX2+FMA or
 * plain C) and split work over OpenMP threads where the build has OpenMP.
 */
#ifndef TINYTAPE_H
#define TINYTAPE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- config */
enum tt_simd { TT_SIMD_GENERIC = 0, TT_SIMD_AVX2 = 1, TT_SIMD_AVX512 = 2 };

int tt_simd_detected(void);        /* best path this CPU and build support */
int tt_simd_level(void);           /* path in use */
int tt_set_simd_level(int level);  /* force a path (<= detected); returns the one in use */
const char *tt_simd_name(int level);
int tt_have_openmp(void);
void tt_set_num_threads(int n);
int tt_get_num_threads(void);
const char *tt_build_info(void);   /* compiler and flags the kernels were built with */

/* ------------------------------------------------------------------ GEMM */
/* C = alpha * op(A) @ op(B) + beta * C, with op(A) m x k and op(B) k x n.
 * A is stored m x k (lda >= k) or, with trans_a, k x m (lda >= m); B likewise.
 * beta == 0 overwrites C without reading it (NaNs in C do not propagate). */
void tt_gemm_f32(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                 float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                 float beta, float *C, int64_t ldc);
void tt_gemm_f64(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                 double alpha, const double *A, int64_t lda, const double *B, int64_t ldb,
                 double beta, double *C, int64_t ldc);

/* The same for outer x inner independent products; product (o, i) reads A at
 * A + o*sa_outer + i*sa_inner (likewise B, C). Two batch levels let strided
 * views such as the heads of a (batch, tokens, heads, head_dim) array be used
 * without a copy. A stride of 0 broadcasts one matrix over that level. */
void tt_gemm_batched_f32(int trans_a, int trans_b, int64_t outer, int64_t inner, int64_t m,
                         int64_t n, int64_t k, float alpha, const float *A, int64_t lda,
                         int64_t sa_outer, int64_t sa_inner, const float *B, int64_t ldb,
                         int64_t sb_outer, int64_t sb_inner, float beta, float *C, int64_t ldc,
                         int64_t sc_outer, int64_t sc_inner);
void tt_gemm_batched_f64(int trans_a, int trans_b, int64_t outer, int64_t inner, int64_t m,
                         int64_t n, int64_t k, double alpha, const double *A, int64_t lda,
                         int64_t sa_outer, int64_t sa_inner, const double *B, int64_t ldb,
                         int64_t sb_outer, int64_t sb_inner, double beta, double *C, int64_t ldc,
                         int64_t sc_outer, int64_t sc_inner);

/* ------------------------------------------------------------- attention */
/* Multi-head self-attention from a packed projection qkv (batch, n, 3*heads*d):
 * per token the queries of all heads, then the keys, then the values. Forward
 * writes weights (batch, heads, n, n) = softmax(scale * q k^T), with the keys
 * after a query's position weighted 0 when causal, and out (batch, n, heads*d)
 * = (weights * keep) v, the heads side by side; keep (batch, heads, n, n) holds
 * dropout multipliers, or is NULL. Backward takes the saved weights and
 * grad_out (batch, n, heads*d) and writes every element of grad_qkv (the shape
 * of qkv). All buffers contiguous. Return 0, or -1 when scratch memory (n*n
 * values per thread) could not be allocated. */
int tt_attention_fwd_f32(int64_t batch, int64_t n, int64_t heads, int64_t d, const float *qkv,
                         const float *keep, int causal, float scale, float *weights, float *out);
int tt_attention_fwd_f64(int64_t batch, int64_t n, int64_t heads, int64_t d, const double *qkv,
                         const double *keep, int causal, double scale, double *weights,
                         double *out);
int tt_attention_bwd_f32(int64_t batch, int64_t n, int64_t heads, int64_t d, const float *qkv,
                         const float *keep, const float *weights, const float *grad_out,
                         int causal, float scale, float *grad_qkv);
int tt_attention_bwd_f64(int64_t batch, int64_t n, int64_t heads, int64_t d, const double *qkv,
                         const double *keep, const double *weights, const double *grad_out,
                         int causal, double scale, double *grad_qkv);

/* ------------------------------------------------------------- row kernels */
/* All row kernels work on contiguous (rows x cols) buffers, one row at a time. */

/* y = softmax(x) per row.  dx = y * (dy - sum(dy * y)) from the saved output y. */
void tt_softmax_fwd_f32(const float *x, float *y, int64_t rows, int64_t cols);
void tt_softmax_fwd_f64(const double *x, double *y, int64_t rows, int64_t cols);
void tt_softmax_bwd_f32(const float *y, const float *dy, float *dx, int64_t rows, int64_t cols);
void tt_softmax_bwd_f64(const double *y, const double *dy, double *dx, int64_t rows, int64_t cols);

/* y = x - logsumexp(x) per row.  dx = dy - exp(y) * sum(dy) from the saved output y. */
void tt_log_softmax_fwd_f32(const float *x, float *y, int64_t rows, int64_t cols);
void tt_log_softmax_fwd_f64(const double *x, double *y, int64_t rows, int64_t cols);
void tt_log_softmax_bwd_f32(const float *y, const float *dy, float *dx, int64_t rows, int64_t cols);
void tt_log_softmax_bwd_f64(const double *y, const double *dy, double *dx, int64_t rows, int64_t cols);

/* Softmax cross-entropy with integer targets. Rows whose target equals
 * ignore_index do not count. Forward writes lse[r] = logsumexp(logits[r]) (saved
 * for backward) and *loss_sum = sum over counted rows of lse[r] - logits[r, t],
 * accumulated in double; *count = number of counted rows.
 * Backward: dlogits[r] = scale * (softmax(logits[r]) - onehot(t)), zero for
 * ignored rows; the caller passes scale = grad_loss / count.
 * Both return -1, or the first row whose target is neither ignore_index nor in
 * [0, cols): then nothing past that row is read through the target. */
int64_t tt_cross_entropy_fwd_f32(const float *logits, const int64_t *targets, int64_t rows,
                                 int64_t cols, int64_t ignore_index, float *lse,
                                 double *loss_sum, int64_t *count);
int64_t tt_cross_entropy_fwd_f64(const double *logits, const int64_t *targets, int64_t rows,
                                 int64_t cols, int64_t ignore_index, double *lse,
                                 double *loss_sum, int64_t *count);
int64_t tt_cross_entropy_bwd_f32(const float *logits, const int64_t *targets, const float *lse,
                                 int64_t rows, int64_t cols, int64_t ignore_index, float scale,
                                 float *dlogits);
int64_t tt_cross_entropy_bwd_f64(const double *logits, const int64_t *targets, const double *lse,
                                 int64_t rows, int64_t cols, int64_t ignore_index, double scale,
                                 double *dlogits);

/* Layer norm over each row: y = (x - mean) * rstd * gamma + beta, with
 * rstd = 1 / sqrt(var + eps) (biased variance). Saves mean[rows], rstd[rows].
 * Backward gives dx, and dgamma/dbeta (length cols, overwritten) in one pass. */
void tt_layer_norm_fwd_f32(const float *x, const float *gamma, const float *beta, float *y,
                           float *mean, float *rstd, int64_t rows, int64_t cols, float eps);
void tt_layer_norm_fwd_f64(const double *x, const double *gamma, const double *beta, double *y,
                           double *mean, double *rstd, int64_t rows, int64_t cols, double eps);
void tt_layer_norm_bwd_f32(const float *dy, const float *x, const float *gamma, const float *mean,
                           const float *rstd, float *dx, float *dgamma, float *dbeta,
                           int64_t rows, int64_t cols);
void tt_layer_norm_bwd_f64(const double *dy, const double *x, const double *gamma,
                           const double *mean, const double *rstd, double *dx, double *dgamma,
                           double *dbeta, int64_t rows, int64_t cols);

/* GELU, tanh approximation, elementwise over n contiguous values:
 * y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); the backward takes the
 * saved input x and gives dx = dy * gelu'(x). */
void tt_gelu_fwd_f32(const float *x, float *y, int64_t n);
void tt_gelu_fwd_f64(const double *x, double *y, int64_t n);
void tt_gelu_bwd_f32(const float *x, const float *dy, float *dx, int64_t n);
void tt_gelu_bwd_f64(const double *x, const double *dy, double *dx, int64_t n);

/* Sigmoid and the sigmoid and tanh backwards, elementwise over n contiguous values:
 * y = 1 / (1 + e^-x) (no overflow; 0 below x = -87.5 in float, -708.5 in double, where
 * y is subnormal), and from the saved output y the gradients dx = g (1 - y) y (sigmoid)
 * and dx = g (1 - y^2) (tanh), in PyTorch's order of operations. dx may be g or y (in
 * place). */
void tt_sigmoid_fwd_f32(const float *x, float *y, int64_t n);
void tt_sigmoid_fwd_f64(const double *x, double *y, int64_t n);
void tt_sigmoid_bwd_f32(const float *y, const float *g, float *dx, int64_t n);
void tt_sigmoid_bwd_f64(const double *y, const double *g, double *dx, int64_t n);
void tt_tanh_bwd_f32(const float *y, const float *g, float *dx, int64_t n);
void tt_tanh_bwd_f64(const double *y, const double *g, double *dx, int64_t n);

/* ReLU, elementwise over n contiguous values. The forward keeps v where not (v <= 0)
 * (so NaN stays NaN) and writes +0 elsewhere, and, when mask is not NULL, mask = 1 where
 * it kept v and 0 elsewhere: PyTorch's threshold_backward test "not (y <= 0)", so the
 * gradient passes at NaN. The backward is a select, dx = mask ? g : 0, as PyTorch's
 * threshold_backward: an inf or NaN in g where the mask is 0 gives 0, not NaN. dx may be
 * g (in place). */
void tt_relu_fwd_f32(const float *x, float *y, uint8_t *mask, int64_t n);
void tt_relu_fwd_f64(const double *x, double *y, uint8_t *mask, int64_t n);
void tt_relu_bwd_f32(const uint8_t *mask, const float *g, float *dx, int64_t n);
void tt_relu_bwd_f64(const uint8_t *mask, const double *g, double *dx, int64_t n);

/* One SGD step, in place over n contiguous values of the parameter p, its gradient g and
 * the momentum buffer buf (NULL when momentum is 0), as torch.optim.SGD. Per value, in
 * the element type, each constant rounded to it first:
 *   d = grad_sign * g;  d = d + weight_decay * p (when weight_decay != 0)
 *   buf = d (init_buffer: the first step), else buf = momentum * buf + (1 - dampening) * d
 *   d = nesterov ? d + momentum * buf : buf (when momentum != 0);  p = p - lr * d */
struct tt_sgd_params {
    double grad_sign;           /* -1 to maximize, else 1 */
    double weight_decay;
    double momentum;            /* 0: no buffer */
    double one_minus_dampening; /* 1 - dampening */
    double lr;
    int nesterov;
    int init_buffer;            /* 1 on the first step: buf = d, whatever it held */
};
void tt_sgd_step_f32(float *p, const float *g, float *buf, int64_t n,
                     const struct tt_sgd_params *hp);
void tt_sgd_step_f64(double *p, const double *g, double *buf, int64_t n,
                     const struct tt_sgd_params *hp);

/* One Adam / AdamW step, in place over n contiguous values of the parameter p,
 * its gradient g and the state m (exp_avg), v (exp_avg_sq) and vmax (AMSGrad's
 * max_exp_avg_sq, or NULL). Per value, in the element type:
 *   g = grad_sign * g;  p = decay * p;  g = g + l2 * p (when l2 != 0)
 *   m = lerp(m, g, lerp_weight);  v = beta2 * v + (one_minus_beta2 * g) * g
 *   vmax = max(vmax, v) (then used as v);  p = p + (neg_step_size * m) / (sqrt(v) / bc2s + eps)
 * (the lerp as PyTorch's: m + w (g - m) for |w| < 0.5, else g - (g - m)(1 - w)). */
struct tt_adam_params {
    double grad_sign;             /* -1 to maximize, else 1 */
    double decay;                 /* 1 - lr * weight_decay for AdamW, else 1 */
    double l2;                    /* weight_decay for Adam's L2 penalty, else 0 */
    double lerp_weight;           /* 1 - beta1 */
    double beta2, one_minus_beta2;
    double bias_correction2_sqrt; /* sqrt(1 - beta2^t) */
    double eps;
    double neg_step_size;         /* -lr / (1 - beta1^t) */
};
void tt_adam_step_f32(float *p, const float *g, float *m, float *v, float *vmax, int64_t n,
                      const struct tt_adam_params *hp);
void tt_adam_step_f64(double *p, const double *g, double *m, double *v, double *vmax,
                      int64_t n, const struct tt_adam_params *hp);

/* out = a (op) b elementwise over n values, op one of TT_ADD ... TT_DIV: each of a and b
 * is either n contiguous values (stride sa or sb = 1) or one value broadcast over all n
 * (stride 0). One IEEE operation per value, so the results are bit-equal to numpy's
 * ufuncs on every path. out may be a or b (in place). Returns the floating-point
 * exceptions the arithmetic raised on any thread, as numpy's NPY_FPE_* bits (TT_FPE_*),
 * for the caller to report as numpy would (np.errstate). */
enum { TT_ADD = 0, TT_SUB = 1, TT_MUL = 2, TT_DIV = 3 };
enum { TT_FPE_DIVIDEBYZERO = 1, TT_FPE_OVERFLOW = 2, TT_FPE_UNDERFLOW = 4, TT_FPE_INVALID = 8 };
int tt_binary_f32(int op, const float *a, int64_t sa, const float *b, int64_t sb, float *out,
                  int64_t n);
int tt_binary_f64(int op, const double *a, int64_t sa, const double *b, int64_t sb,
                  double *out, int64_t n);
/* The threads tt_binary_* would use for n values (1 below the split size). */
int tt_binary_threads(int64_t n);

#ifdef __cplusplus
}
#endif
#endif /* TINYTAPE_H */
