/* Portable GEMM microkernels (plain C) for CPUs without a SIMD path here:
 * float 4x16 and double 4x8. The tile is a fixed-size local array updated by
 * unit-stride inner loops over N, which GCC and clang auto-vectorize for the
 * baseline vector ISA (SSE2, NEON, ...). */
#include "gemm_ukernels.h"

#define MR_F32 4
#define NR_F32 16
#define MR_F64 4
#define NR_F64 8

#define TT_DEFINE_UKR_GENERIC(T, NAME, MR, NR)                                           \
    static void NAME(int64_t k, const T *TT_RESTRICT a, const T *TT_RESTRICT b, T *c,     \
                     int64_t ldc, T alpha, T beta) {                                      \
        T acc[MR][NR];                                                                    \
        for (int i = 0; i < MR; i++)                                                      \
            for (int j = 0; j < NR; j++) acc[i][j] = (T)0;                                \
        for (int64_t p = 0; p < k; p++, a += MR, b += NR)                                 \
            for (int i = 0; i < MR; i++) {                                                \
                const T ai = a[i];                                                        \
                for (int j = 0; j < NR; j++) acc[i][j] += ai * b[j];                      \
            }                                                                             \
        for (int i = 0; i < MR; i++) {                                                    \
            T *ci = c + i * ldc;                                                          \
            if (beta == (T)0)                                                             \
                for (int j = 0; j < NR; j++) ci[j] = alpha * acc[i][j];                   \
            else                                                                          \
                for (int j = 0; j < NR; j++) ci[j] = alpha * acc[i][j] + beta * ci[j];    \
        }                                                                                 \
    }

TT_DEFINE_UKR_GENERIC(float, ukr_f32, MR_F32, NR_F32)
TT_DEFINE_UKR_GENERIC(double, ukr_f64, MR_F64, NR_F64)

static void pack_a_f32(int pcontig, int64_t len, int64_t kc, const float *src, int64_t ld,
                       float *dst) {
    tt_pack_body_f32(pcontig, len, kc, src, ld, dst, MR_F32);
}
static void pack_b_f32(int pcontig, int64_t len, int64_t kc, const float *src, int64_t ld,
                       float *dst) {
    tt_pack_body_f32(pcontig, len, kc, src, ld, dst, NR_F32);
}
static void pack_a_f64(int pcontig, int64_t len, int64_t kc, const double *src, int64_t ld,
                       double *dst) {
    tt_pack_body_f64(pcontig, len, kc, src, ld, dst, MR_F64);
}
static void pack_b_f64(int pcontig, int64_t len, int64_t kc, const double *src, int64_t ld,
                       double *dst) {
    tt_pack_body_f64(pcontig, len, kc, src, ld, dst, NR_F64);
}

static void gemv_f32(int trans, int64_t len, int64_t k, const float *X, int64_t ldx,
                     const float *v, float *y) {
    if (trans)
        tt_gemv_body_f32_sums(len, k, X, ldx, v, y);
    else
        tt_gemv_body_f32_dots(len, k, X, ldx, v, y);
}
static void gemv_f64(int trans, int64_t len, int64_t k, const double *X, int64_t ldx,
                     const double *v, double *y) {
    if (trans)
        tt_gemv_body_f64_sums(len, k, X, ldx, v, y);
    else
        tt_gemv_body_f64_dots(len, k, X, ldx, v, y);
}

/* Modest blocking that suits typical 32-48 KB L1 / 256 KB-1 MB L2 caches. */
static const tt_gemm_kernels_f32 k_f32 = {
    .mr = MR_F32, .nr = NR_F32, .kc = 256, .mc = 512, .nc = 256,
    .ukr = ukr_f32, .ukr_strided = NULL,
    .pack_a = pack_a_f32, .pack_b = pack_b_f32, .gemv = gemv_f32};
static const tt_gemm_kernels_f64 k_f64 = {
    .mr = MR_F64, .nr = NR_F64, .kc = 256, .mc = 256, .nc = 256,
    .ukr = ukr_f64, .ukr_strided = NULL,
    .pack_a = pack_a_f64, .pack_b = pack_b_f64, .gemv = gemv_f64};

const tt_gemm_kernels_f32 *tt_gemm_kernels_generic_f32(void) { return &k_f32; }
const tt_gemm_kernels_f64 *tt_gemm_kernels_generic_f64(void) { return &k_f64; }
