/* AVX2 + FMA GEMM microkernels: float 6x16, double 6x8 (two ymm per C row,
 * 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 ymm registers). */
#include "gemm_ukernels.h"

#if TT_X86_SIMD
#include <immintrin.h>

#define MR_F32 6
#define NR_F32 16
#define MR_F64 6
#define NR_F64 8

/* How far ahead (in k steps) to prefetch the streamed B micro-panel. */
#define PF_DIST 8

TT_TARGET_AVX2 static void ukr_f32(int64_t k, const float *a, const float *b, float *c,
                                   int64_t ldc, float alpha, float beta) {
    __m256 c0[MR_F32], c1[MR_F32];
#pragma GCC unroll 6
    for (int i = 0; i < MR_F32; i++) {
        c0[i] = c1[i] = _mm256_setzero_ps();
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
    }
    for (int64_t p = 0; p < k; p++) {
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        _mm_prefetch((const char *)(b + PF_DIST * NR_F32), _MM_HINT_T0);
#pragma GCC unroll 6
        for (int i = 0; i < MR_F32; i++) {
            const __m256 ai = _mm256_broadcast_ss(a + i);
            c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
        }
        a += MR_F32;
        b += NR_F32;
    }
    const __m256 va = _mm256_set1_ps(alpha);
    if (beta == 0.0f) {
#pragma GCC unroll 6
        for (int i = 0; i < MR_F32; i++) {
            _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, c0[i]));
            _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, c1[i]));
        }
    } else {
        const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
        for (int i = 0; i < MR_F32; i++) {
            float *ci = c + i * ldc;
            const __m256 o0 = _mm256_mul_ps(vb, _mm256_loadu_ps(ci));
            const __m256 o1 = _mm256_mul_ps(vb, _mm256_loadu_ps(ci + 8));
            _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, c0[i], o0));
            _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(va, c1[i], o1));
        }
    }
}

TT_TARGET_AVX2 static void ukr_f64(int64_t k, const double *a, const double *b, double *c,
                                   int64_t ldc, double alpha, double beta) {
    __m256d c0[MR_F64], c1[MR_F64];
#pragma GCC unroll 6
    for (int i = 0; i < MR_F64; i++) {
        c0[i] = c1[i] = _mm256_setzero_pd();
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 7), _MM_HINT_T0);
    }
    for (int64_t p = 0; p < k; p++) {
        const __m256d b0 = _mm256_load_pd(b), b1 = _mm256_load_pd(b + 4);
        _mm_prefetch((const char *)(b + PF_DIST * NR_F64), _MM_HINT_T0);
#pragma GCC unroll 6
        for (int i = 0; i < MR_F64; i++) {
            const __m256d ai = _mm256_broadcast_sd(a + i);
            c0[i] = _mm256_fmadd_pd(ai, b0, c0[i]);
            c1[i] = _mm256_fmadd_pd(ai, b1, c1[i]);
        }
        a += MR_F64;
        b += NR_F64;
    }
    const __m256d va = _mm256_set1_pd(alpha);
    if (beta == 0.0) {
#pragma GCC unroll 6
        for (int i = 0; i < MR_F64; i++) {
            _mm256_storeu_pd(c + i * ldc, _mm256_mul_pd(va, c0[i]));
            _mm256_storeu_pd(c + i * ldc + 4, _mm256_mul_pd(va, c1[i]));
        }
    } else {
        const __m256d vb = _mm256_set1_pd(beta);
#pragma GCC unroll 6
        for (int i = 0; i < MR_F64; i++) {
            double *ci = c + i * ldc;
            const __m256d o0 = _mm256_mul_pd(vb, _mm256_loadu_pd(ci));
            const __m256d o1 = _mm256_mul_pd(vb, _mm256_loadu_pd(ci + 4));
            _mm256_storeu_pd(ci, _mm256_fmadd_pd(va, c0[i], o0));
            _mm256_storeu_pd(ci + 4, _mm256_fmadd_pd(va, c1[i], o1));
        }
    }
}

TT_TARGET_AVX2 static void pack_a_f32(int pcontig, int64_t len, int64_t kc, const float *src,
                                      int64_t ld, float *dst) {
    tt_pack_x86_f32(pcontig, len, kc, src, ld, dst, MR_F32);
}
TT_TARGET_AVX2 static void pack_b_f32(int pcontig, int64_t len, int64_t kc, const float *src,
                                      int64_t ld, float *dst) {
    tt_pack_x86_f32(pcontig, len, kc, src, ld, dst, NR_F32);
}
TT_TARGET_AVX2 static void pack_a_f64(int pcontig, int64_t len, int64_t kc, const double *src,
                                      int64_t ld, double *dst) {
    tt_pack_x86_f64(pcontig, len, kc, src, ld, dst, MR_F64);
}
TT_TARGET_AVX2 static void pack_b_f64(int pcontig, int64_t len, int64_t kc, const double *src,
                                      int64_t ld, double *dst) {
    tt_pack_x86_f64(pcontig, len, kc, src, ld, dst, NR_F64);
}

/* Horizontal sums (fixed order). */
TT_TARGET_AVX2 static inline float hsum_ps(__m256 x) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
TT_TARGET_AVX2 static inline double hsum_pd(__m256d x) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(x), _mm256_extractf128_pd(x, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

/* GEMV dots: four rows at a time share each load of v; scalar k tail. */
#define TT_DEFINE_DOTS256(T, SFX, VEC, VL, ZERO, LOADU, FMADD, HSUM)                             \
    TT_TARGET_AVX2 static void dots_##SFX(int64_t len, int64_t k, const T *X, int64_t ldx,       \
                                          const T *v, T *y) {                                    \
        const int64_t kv = k / VL * VL;                                                          \
        int64_t i = 0;                                                                           \
        for (; i + 4 <= len; i += 4) {                                                           \
            const T *x0 = X + i * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;           \
            VEC a0 = ZERO(), a1 = ZERO(), a2 = ZERO(), a3 = ZERO();                              \
            for (int64_t p = 0; p < kv; p += VL) {                                               \
                const VEC vv = LOADU(v + p);                                                     \
                a0 = FMADD(LOADU(x0 + p), vv, a0);                                               \
                a1 = FMADD(LOADU(x1 + p), vv, a1);                                               \
                a2 = FMADD(LOADU(x2 + p), vv, a2);                                               \
                a3 = FMADD(LOADU(x3 + p), vv, a3);                                               \
            }                                                                                    \
            T s0 = HSUM(a0), s1 = HSUM(a1), s2 = HSUM(a2), s3 = HSUM(a3);                        \
            for (int64_t p = kv; p < k; p++) {                                                   \
                s0 += x0[p] * v[p];                                                              \
                s1 += x1[p] * v[p];                                                              \
                s2 += x2[p] * v[p];                                                              \
                s3 += x3[p] * v[p];                                                              \
            }                                                                                    \
            y[i] = s0;                                                                           \
            y[i + 1] = s1;                                                                       \
            y[i + 2] = s2;                                                                       \
            y[i + 3] = s3;                                                                       \
        }                                                                                        \
        for (; i < len; i++) {                                                                   \
            const T *x0 = X + i * ldx;                                                           \
            VEC a0 = ZERO();                                                                     \
            for (int64_t p = 0; p < kv; p += VL) a0 = FMADD(LOADU(x0 + p), LOADU(v + p), a0);    \
            T s0 = HSUM(a0);                                                                     \
            for (int64_t p = kv; p < k; p++) s0 += x0[p] * v[p];                                 \
            y[i] = s0;                                                                           \
        }                                                                                        \
    }
TT_DEFINE_DOTS256(float, f32, __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_fmadd_ps,
                  hsum_ps)
TT_DEFINE_DOTS256(double, f64, __m256d, 4, _mm256_setzero_pd, _mm256_loadu_pd, _mm256_fmadd_pd,
                  hsum_pd)

TT_DEFINE_GEMV_DISPATCH(TT_TARGET_AVX2, dots_f32, dots_f64)

static const tt_gemm_kernels_f32 k_f32 = {
    .mr = MR_F32, .nr = NR_F32, .kc = 256, .mc = 2016, .nc = 512,
    .ukr = ukr_f32, .ukr_strided = NULL,
    .pack_a = pack_a_f32, .pack_b = pack_b_f32, .gemv = gemv_f32};
static const tt_gemm_kernels_f64 k_f64 = {
    .mr = MR_F64, .nr = NR_F64, .kc = 256, .mc = 1008, .nc = 256,
    .ukr = ukr_f64, .ukr_strided = NULL,
    .pack_a = pack_a_f64, .pack_b = pack_b_f64, .gemv = gemv_f64};

const tt_gemm_kernels_f32 *tt_gemm_kernels_avx2_f32(void) { return &k_f32; }
const tt_gemm_kernels_f64 *tt_gemm_kernels_avx2_f64(void) { return &k_f64; }

#endif /* TT_X86_SIMD */
