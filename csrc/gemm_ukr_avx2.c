/* AVX2 + FMA GEMM microkernels: float 6x16, double 6x8 (two ymm per C row,
 * 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 ymm registers).
 *
 * Tiles of packed panels run ukr_* (edge tiles through a tile buffer: masked
 * loads in the k loop cost more, 64 x 10 x 256 took 1.12x as long). The
 * strided kernel (ukr_strided_*, A element (i, p) at a[i*rs + p*cs], B row p
 * at b + p*ldb) runs the unpacked direct path of small products, as on
 * AVX-512: a variant per row count (and one vector when nr fits in one), with
 * masked loads and stores (vmaskmov) at the last columns, straight on C. It
 * ends as ukr_* does (alpha * acc, plus beta * C when beta != 0). */
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

/* Kernel for R rows (<= MR), V vectors per row (1 or 2), masked (edge) or not. */
#define TT_DEFINE_K256(T, SFX, VEC, MR, VL, SET1, ZERO, LOADU, STOREU, MLOADU, MSTOREU, FMADD, \
                       MUL)                                                                    \
    TT_TARGET_AVX2 TT_INLINE void k256_##SFX(const int R, const int V, const int MASKED,         \
                                             int64_t k, const T *a, int64_t rs, int64_t cs,      \
                                             const T *b, int64_t ldb, T *c, int64_t ldc,         \
                                             T alpha, T beta, __m256i m0, __m256i m1) {          \
        VEC c0[MR], c1[MR];                                                                    \
        _Pragma("GCC unroll 6") for (int i = 0; i < R; i++) {                                  \
            c0[i] = ZERO();                                                                    \
            c1[i] = ZERO();                                                                    \
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);                           \
        }                                                                                      \
        for (int64_t p = 0; p < k; p++) {                                                      \
            const VEC b0 = MASKED && V == 1 ? MLOADU(b, m0) : LOADU(b); /* V == 2: b0 full */ \
            const VEC b1 = V == 2 ? (MASKED ? MLOADU(b + VL, m1) : LOADU(b + VL)) : ZERO();    \
            _Pragma("GCC unroll 6") for (int i = 0; i < R; i++) {                              \
                const VEC ai = SET1(a[i * rs]);                                                \
                c0[i] = FMADD(ai, b0, c0[i]);                                                  \
                if (V == 2) c1[i] = FMADD(ai, b1, c1[i]);                                      \
            }                                                                                  \
            a += cs;                                                                           \
            b += ldb;                                                                          \
        }                                                                                      \
        const VEC va = SET1(alpha), vb = SET1(beta);                                           \
        _Pragma("GCC unroll 6") for (int i = 0; i < R; i++) {                                  \
            T *ci = c + i * ldc;                                                               \
            VEC r0 = MUL(va, c0[i]), r1 = MUL(va, c1[i]);                                      \
            if (beta != (T)0) { /* beta == 0: C is not read */                                 \
                r0 = FMADD(va, c0[i], MUL(vb, MASKED ? MLOADU(ci, m0) : LOADU(ci)));           \
                if (V == 2)                                                                    \
                    r1 = FMADD(va, c1[i],                                                      \
                               MUL(vb, MASKED ? MLOADU(ci + VL, m1) : LOADU(ci + VL)));        \
            }                                                                                  \
            if (MASKED)                                                                        \
                MSTOREU(ci, m0, r0);                                                           \
            else                                                                               \
                STOREU(ci, r0);                                                                \
            if (V == 2) {                                                                      \
                if (MASKED)                                                                    \
                    MSTOREU(ci + VL, m1, r1);                                                  \
                else                                                                           \
                    STOREU(ci + VL, r1);                                                       \
            }                                                                                  \
        }                                                                                      \
    }

TT_DEFINE_K256(float, f32, __m256, MR_F32, 8, _mm256_set1_ps, _mm256_setzero_ps,
               _mm256_loadu_ps, _mm256_storeu_ps, _mm256_maskload_ps, _mm256_maskstore_ps,
               _mm256_fmadd_ps, _mm256_mul_ps)
TT_DEFINE_K256(double, f64, __m256d, MR_F64, 4, _mm256_set1_pd, _mm256_setzero_pd,
               _mm256_loadu_pd, _mm256_storeu_pd, _mm256_maskload_pd, _mm256_maskstore_pd,
               _mm256_fmadd_pd, _mm256_mul_pd)

typedef void (*k32_fn)(int64_t, const float *, int64_t, int64_t, const float *, int64_t, float *,
                       int64_t, float, float, __m256i, __m256i);
typedef void (*k64_fn)(int64_t, const double *, int64_t, int64_t, const double *, int64_t,
                       double *, int64_t, double, double, __m256i, __m256i);

#define K_FN(T, SFX, NAME, R, V, MASKED)                                                       \
    TT_TARGET_AVX2 static void NAME(int64_t k, const T *a, int64_t rs, int64_t cs, const T *b, \
                                    int64_t ldb, T *c, int64_t ldc, T al, T be, __m256i m0,    \
                                    __m256i m1) {                                              \
        k256_##SFX(R, V, MASKED, k, a, rs, cs, b, ldb, c, ldc, al, be, m0, m1);                 \
    }

/* The full tile unpacked, then the masked variants for every row and vector count. */
K_FN(float, f32, k32_full, MR_F32, 2, 0)
K_FN(double, f64, k64_full, MR_F64, 2, 0)

#define EDGE_FNS(R)                           \
    K_FN(float, f32, k32_##R##_1, R, 1, 1)    \
    K_FN(float, f32, k32_##R##_2, R, 2, 1)    \
    K_FN(double, f64, k64_##R##_1, R, 1, 1)   \
    K_FN(double, f64, k64_##R##_2, R, 2, 1)
EDGE_FNS(1)
EDGE_FNS(2)
EDGE_FNS(3)
EDGE_FNS(4)
EDGE_FNS(5)
EDGE_FNS(6)

#define EDGE_ROW(W, R) {W##_##R##_1, W##_##R##_2}
static const k32_fn edge_f32[MR_F32][2] = {EDGE_ROW(k32, 1), EDGE_ROW(k32, 2), EDGE_ROW(k32, 3),
                                           EDGE_ROW(k32, 4), EDGE_ROW(k32, 5), EDGE_ROW(k32, 6)};
static const k64_fn edge_f64[MR_F64][2] = {EDGE_ROW(k64, 1), EDGE_ROW(k64, 2), EDGE_ROW(k64, 3),
                                           EDGE_ROW(k64, 4), EDGE_ROW(k64, 5), EDGE_ROW(k64, 6)};

/* Lane i of the mask is on when i < n (vmaskmov reads the sign bit of each lane). */
TT_TARGET_AVX2 static inline __m256i lanes32(unsigned n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
TT_TARGET_AVX2 static inline __m256i lanes64(unsigned n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)n), _mm256_setr_epi64x(0, 1, 2, 3));
}

TT_TARGET_AVX2 static void ukr_strided_f32(int64_t mr, int64_t nr, int64_t k, const float *a,
                                           int64_t rs, int64_t cs, const float *b, int64_t ldb,
                                           float *c, int64_t ldc, float alpha, float beta) {
    const __m256i none = _mm256_setzero_si256();
    if (mr == MR_F32 && nr == NR_F32) {
        k32_full(k, a, rs, cs, b, ldb, c, ldc, alpha, beta, none, none);
        return;
    }
    const int v = nr > 8;
    const unsigned n0 = v ? 8u : (unsigned)nr, n1 = v ? (unsigned)nr - 8u : 0u;
    edge_f32[mr - 1][v](k, a, rs, cs, b, ldb, c, ldc, alpha, beta, lanes32(n0), lanes32(n1));
}

TT_TARGET_AVX2 static void ukr_strided_f64(int64_t mr, int64_t nr, int64_t k, const double *a,
                                           int64_t rs, int64_t cs, const double *b, int64_t ldb,
                                           double *c, int64_t ldc, double alpha, double beta) {
    const __m256i none = _mm256_setzero_si256();
    if (mr == MR_F64 && nr == NR_F64) {
        k64_full(k, a, rs, cs, b, ldb, c, ldc, alpha, beta, none, none);
        return;
    }
    const int v = nr > 4;
    const unsigned n0 = v ? 4u : (unsigned)nr, n1 = v ? (unsigned)nr - 4u : 0u;
    edge_f64[mr - 1][v](k, a, rs, cs, b, ldb, c, ldc, alpha, beta, lanes64(n0), lanes64(n1));
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

/* Limits of the unpacked (direct) path, measured on Zen 3 (512 KB of L2) against
 * packing, the two builds' kernels alternating in one process (medians of 15
 * rounds): unpacked, 64^3 took 1/1.16 of the time, 128^3 1/1.06 to 1/1.21 (A
 * transposed: 1/1.11), 160^3 1/1.01 to 1/1.10, 64 x 10 x 256 1/1.5; 64 x 256 x 256
 * and 256 x 256 x 64 anywhere from 1/1.11 to 1/0.91 (left packed); 256^3 1/0.89
 * and 64 x 512 x 512 (B rows of 512 KB per k block) 1/0.74. */
#define DIRECT_MAX (160.0 * 160.0 * 160.0)
#define DIRECT_BBLOCK (256.0 * 1024.0)

static const tt_gemm_kernels_f32 k_f32 = {
    .mr = MR_F32, .nr = NR_F32, .kc = 256, .mc = 2016, .nc = 512,
    .ukr = ukr_f32, .ukr_strided = ukr_strided_f32, .strided_edges = 0,
    .direct_max = DIRECT_MAX, .direct_bblock = DIRECT_BBLOCK,
    .pack_a = pack_a_f32, .pack_b = pack_b_f32, .gemv = gemv_f32};
static const tt_gemm_kernels_f64 k_f64 = {
    .mr = MR_F64, .nr = NR_F64, .kc = 256, .mc = 1008, .nc = 256,
    .ukr = ukr_f64, .ukr_strided = ukr_strided_f64, .strided_edges = 0,
    .direct_max = DIRECT_MAX, .direct_bblock = DIRECT_BBLOCK,
    .pack_a = pack_a_f64, .pack_b = pack_b_f64, .gemv = gemv_f64};

const tt_gemm_kernels_f32 *tt_gemm_kernels_avx2_f32(void) { return &k_f32; }
const tt_gemm_kernels_f64 *tt_gemm_kernels_avx2_f64(void) { return &k_f64; }

#endif /* TT_X86_SIMD */
