/* Portable GEMM microkernels for CPUs without a SIMD path here (and for
 * builds with TT_NO_X86_SIMD). With GCC or clang the tile is kept in 16-byte
 * generic vectors (SSE2, NEON, VSX, ... whatever the baseline is), vectors
 * along N like the x86 kernels; other compilers get plain loops. The tile is
 * sized for the register file: 32 vector registers on AArch64, 16 otherwise. */
#include <string.h>
#include "gemm_ukernels.h"

#if defined(__aarch64__)
#define MR_F32 4
#define NR_F32 16
#define MR_F64 4
#define NR_F64 8
#else
#define MR_F32 4
#define NR_F32 8
#define MR_F64 4
#define NR_F64 4
#endif

#if defined(__GNUC__) || defined(__clang__)
typedef float tt_v4f __attribute__((vector_size(16)));
typedef double tt_v2d __attribute__((vector_size(16)));

/* acc[i][v] holds C[i][v*VL : v*VL+VL]; memcpy keeps the loads and stores
 * free of alignment and aliasing assumptions (it compiles to vector moves). */
#define TT_DEFINE_UKR_GENERIC(T, VT, VL, NAME, MR, NR)                                  \
    static void NAME(int64_t k, const T *TT_RESTRICT a, const T *TT_RESTRICT b, T *c,    \
                     int64_t ldc, T alpha, T beta) {                                     \
        VT acc[MR][NR / VL];                                                             \
        _Pragma("GCC unroll 8") for (int i = 0; i < MR; i++)                             \
            _Pragma("GCC unroll 8") for (int v = 0; v < NR / VL; v++) acc[i][v] = (VT){0}; \
        for (int64_t p = 0; p < k; p++, a += MR, b += NR) {                              \
            VT bv[NR / VL];                                                              \
            memcpy(bv, b, sizeof(bv));                                                   \
            /* fully unrolled, so that acc lives in registers */                        \
            _Pragma("GCC unroll 8") for (int i = 0; i < MR; i++) {                       \
                const T ai = a[i];                                                       \
                _Pragma("GCC unroll 8") for (int v = 0; v < NR / VL; v++)                \
                    acc[i][v] += bv[v] * ai;                                             \
            }                                                                            \
        }                                                                                \
        _Pragma("GCC unroll 8") for (int i = 0; i < MR; i++)                             \
            _Pragma("GCC unroll 8") for (int v = 0; v < NR / VL; v++) {                  \
                T *cv = c + i * ldc + v * VL;                                            \
                VT r = acc[i][v] * alpha;                                                \
                if (beta != (T)0) { /* beta == 0: C is not read */                       \
                    VT old;                                                              \
                    memcpy(&old, cv, sizeof(old));                                       \
                    r += old * beta;                                                     \
                }                                                                        \
                memcpy(cv, &r, sizeof(r));                                               \
            }                                                                            \
    }
TT_DEFINE_UKR_GENERIC(float, tt_v4f, 4, ukr_f32, MR_F32, NR_F32)
TT_DEFINE_UKR_GENERIC(double, tt_v2d, 2, ukr_f64, MR_F64, NR_F64)
#else
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
#endif

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

TT_DEFINE_GEMV_DISPATCH(, tt_gemv_body_f32_dots, tt_gemv_body_f64_dots)

/* Modest blocking that suits typical 32-48 KB L1 / 256 KB-1 MB L2 caches. */
static const tt_gemm_kernels_f32 k_f32 = {
    .mr = MR_F32, .nr = NR_F32, .kc = 256, .mc = 512, .nc = 256,
    .ukr = ukr_f32, .ukr_strided = NULL, .strided_edges = 0,
    .direct_max = 0.0, .direct_bblock = 0.0,
    .pack_a = pack_a_f32, .pack_b = pack_b_f32, .gemv = gemv_f32};
static const tt_gemm_kernels_f64 k_f64 = {
    .mr = MR_F64, .nr = NR_F64, .kc = 256, .mc = 256, .nc = 256,
    .ukr = ukr_f64, .ukr_strided = NULL, .strided_edges = 0,
    .direct_max = 0.0, .direct_bblock = 0.0,
    .pack_a = pack_a_f64, .pack_b = pack_b_f64, .gemv = gemv_f64};

const tt_gemm_kernels_f32 *tt_gemm_kernels_generic_f32(void) { return &k_f32; }
const tt_gemm_kernels_f64 *tt_gemm_kernels_generic_f64(void) { return &k_f64; }
