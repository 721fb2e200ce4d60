/* GEMM microkernels and packing routines: internal interface between the
 * blocked driver (gemm.c, gemm_impl.inc) and the per-ISA files
 * gemm_ukr_{generic,avx2,avx512}.c. Not part of the public API.
 *
 * Packed formats (all zero-padded to full micro-panels, 64-byte aligned):
 *   A block (mc x kc): ceil(mc/MR) micro-panels, each kc steps of MR values,
 *                      pa[panel*MR*kc + p*MR + i] = op(A)[panel*MR + i][p]
 *   B block (kc x nc): ceil(nc/NR) micro-panels, each kc steps of NR values,
 *                      pb[panel*NR*kc + p*NR + j] = op(B)[p][panel*NR + j]
 * The microkernel computes one MR x NR tile, vectors along N (C is row-major):
 *   C = alpha * pa_panel @ pb_panel + beta * C   (beta == 0: C is not read).
 */
#ifndef TT_GEMM_UKERNELS_H
#define TT_GEMM_UKERNELS_H

#include <stdint.h>
#include "tt_internal.h"

/* Largest MR * NR of any kernel: the driver's edge-tile buffer. */
#define TT_GEMM_MAX_TILE 512

typedef void (*tt_ukr_f32)(int64_t k, const float *a, const float *b, float *c, int64_t ldc,
                           float alpha, float beta);
typedef void (*tt_ukr_f64)(int64_t k, const double *a, const double *b, double *c, int64_t ldc,
                           double alpha, double beta);

/* Optional strided kernel for any mr x nr (<= MR x NR) tile, working on C
 * directly: A element (i, p) at a[i*rs + p*cs], B row p at b + p*ldb (B not
 * transposed; nothing past column nr is touched). It handles edge tiles of
 * packed panels (rs = 1, cs = MR, ldb = NR) and the unpacked direct path. */
typedef void (*tt_ukr_strided_f32)(int64_t mr, int64_t nr, int64_t k, const float *a,
                                   int64_t rs, int64_t cs, const float *b, int64_t ldb,
                                   float *c, int64_t ldc, float alpha, float beta);
typedef void (*tt_ukr_strided_f64)(int64_t mr, int64_t nr, int64_t k, const double *a,
                                   int64_t rs, int64_t cs, const double *b, int64_t ldb,
                                   double *c, int64_t ldc, double alpha, double beta);

/* Pack `len` rows of a micro-panel direction into W-wide micro-panels over kc
 * steps. Element (x, p) of the source is src[x*ld + p] when `pcontig` (each x
 * is a contiguous row along k) else src[p*ld + x] (each k step is contiguous). */
typedef void (*tt_pack_f32)(int pcontig, int64_t len, int64_t kc, const float *src, int64_t ld,
                            float *dst);
typedef void (*tt_pack_f64)(int pcontig, int64_t len, int64_t kc, const double *src, int64_t ld,
                            double *dst);

/* Matrix-vector product, see TT_DEFINE_GEMV below. */
typedef void (*tt_gemv_f32)(int trans, int64_t len, int64_t k, const float *X, int64_t ldx,
                            const float *v, float *y);
typedef void (*tt_gemv_f64)(int trans, int64_t len, int64_t k, const double *X, int64_t ldx,
                            const double *v, double *y);

/* A kernel set: tile shape, cache blocking and the routines to use them. */
typedef struct {
    int mr, nr;   /* register tile */
    int kc;       /* depth of a block: an MR x kc A micro-panel stays in L1 */
    int mc;       /* rows of A packed per block (kc x mc lives in L3) */
    int nc;       /* columns of B packed per block (kc x nc lives in L2) */
    tt_ukr_f32 ukr;
    tt_ukr_strided_f32 ukr_strided; /* may be NULL: edges via a tile buffer, no direct path */
    int strided_edges;    /* edge tiles of packed panels on ukr_strided, not a tile buffer */
    double direct_max;    /* the direct path: m*n*k at most this (and n <= NR always) ... */
    double direct_bblock; /* ... and at most these bytes of B rows per k block */
    tt_pack_f32 pack_a, pack_b;
    tt_gemv_f32 gemv;
} tt_gemm_kernels_f32;

typedef struct {
    int mr, nr, kc, mc, nc;
    tt_ukr_f64 ukr;
    tt_ukr_strided_f64 ukr_strided;
    int strided_edges;
    double direct_max, direct_bblock;
    tt_pack_f64 pack_a, pack_b;
    tt_gemv_f64 gemv;
} tt_gemm_kernels_f64;

const tt_gemm_kernels_f32 *tt_gemm_kernels_generic_f32(void);
const tt_gemm_kernels_f64 *tt_gemm_kernels_generic_f64(void);
#if TT_X86_SIMD
const tt_gemm_kernels_f32 *tt_gemm_kernels_avx2_f32(void);
const tt_gemm_kernels_f64 *tt_gemm_kernels_avx2_f64(void);
const tt_gemm_kernels_f32 *tt_gemm_kernels_avx512_f32(void);
const tt_gemm_kernels_f64 *tt_gemm_kernels_avx512_f64(void);
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TT_INLINE static inline __attribute__((always_inline))
#else
#define TT_INLINE static inline
#endif

/* Generic packing bodies. W is a compile-time constant at every call site (the
 * per-ISA wrappers inline these under their own target attribute), so the
 * fixed-width copies compile to plain vector moves. */
#define TT_DEFINE_PACK(T, NAME)                                                          \
    TT_INLINE void NAME(int pcontig, int64_t len, int64_t kc, const T *src, int64_t ld, \
                        T *dst, const int W) {                                          \
        for (int64_t x0 = 0; x0 < len; x0 += W) {                                       \
            const int64_t w = len - x0 < W ? len - x0 : W;                              \
            T *d = dst + x0 * kc;                                                       \
            if (!pcontig) {                                                             \
                /* each k step is w contiguous values: a row copy */                   \
                const T *s = src + x0;                                                  \
                if (w == W) {                                                           \
                    for (int64_t p = 0; p < kc; p++, s += ld, d += W)                   \
                        for (int x = 0; x < W; x++) d[x] = s[x];                        \
                } else {                                                                \
                    for (int64_t p = 0; p < kc; p++, s += ld, d += W) {                 \
                        int x = 0;                                                      \
                        for (; x < w; x++) d[x] = s[x];                                 \
                        for (; x < W; x++) d[x] = (T)0;                                 \
                    }                                                                   \
                }                                                                       \
            } else {                                                                    \
                /* each x is a contiguous run along k: transpose in 8-step strips */   \
                const T *s = src + x0 * ld;                                             \
                int64_t p = 0;                                                          \
                for (; p + 8 <= kc; p += 8) {                                           \
                    for (int64_t x = 0; x < w; x++) {                                   \
                        const T *sx = s + x * ld + p;                                   \
                        for (int q = 0; q < 8; q++) d[(p + q) * W + x] = sx[q];         \
                    }                                                                   \
                    for (int64_t x = w; x < W; x++)                                     \
                        for (int q = 0; q < 8; q++) d[(p + q) * W + x] = (T)0;          \
                }                                                                       \
                for (; p < kc; p++) {                                                   \
                    for (int64_t x = 0; x < w; x++) d[p * W + x] = s[x * ld + p];       \
                    for (int64_t x = w; x < W; x++) d[p * W + x] = (T)0;                \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    }

TT_DEFINE_PACK(float, tt_pack_body_f32)
TT_DEFINE_PACK(double, tt_pack_body_f64)

/* Matrix-vector products for m == 1 or n == 1 (memory bound: no packing).
 * v and y are contiguous:
 *   dots (trans == 0): y[i] = sum_p X[i*ldx + p] * v[p]   (i < len, p < k)
 *   sums (trans == 1): y[j] = sum_p X[p*ldx + j] * v[p]   (j < len, p < k)
 * Plain C whose fixed-width loops the compiler vectorizes for the target of
 * the wrapper; partial sums are combined in a fixed order (reproducible).
 * The x86 files replace the dots with intrinsics (FMA, masked tails). */
#define TT_GEMV_LANES 16
#define TT_GEMV_CHUNK 512
#define TT_DEFINE_GEMV(T, NAME)                                                                \
    TT_INLINE T NAME##_dot(const T *x, const T *v, int64_t k) {                               \
        T a[TT_GEMV_LANES] = {0}, s = (T)0;                                                    \
        int64_t p = 0;                                                                         \
        for (; p + TT_GEMV_LANES <= k; p += TT_GEMV_LANES)                                     \
            for (int j = 0; j < TT_GEMV_LANES; j++) a[j] += x[p + j] * v[p + j];               \
        for (int j = 0; j < TT_GEMV_LANES; j++) s += a[j];                                     \
        for (; p < k; p++) s += x[p] * v[p];                                                   \
        return s;                                                                              \
    }                                                                                          \
    TT_INLINE void NAME##_dots(int64_t len, int64_t k, const T *X, int64_t ldx, const T *v,    \
                               T *y) {                                                         \
        for (int64_t i = 0; i < len; i++) y[i] = NAME##_dot(X + i * ldx, v, k);                \
    }                                                                                          \
    TT_INLINE void NAME##_sums(int64_t len, int64_t k, const T *X, int64_t ldx, const T *v,    \
                               T *y) {                                                         \
        for (int64_t j0 = 0; j0 < len; j0 += TT_GEMV_CHUNK) {                                  \
            /* a chunk of y accumulates in L1 while rows of X stream past, 4 at a time */     \
            const int64_t w = len - j0 < TT_GEMV_CHUNK ? len - j0 : TT_GEMV_CHUNK;             \
            T acc[TT_GEMV_CHUNK];                                                              \
            for (int64_t j = 0; j < w; j++) acc[j] = (T)0;                                     \
            int64_t p = 0;                                                                     \
            for (; p + 4 <= k; p += 4) {                                                       \
                const T *x0 = X + p * ldx + j0, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx; \
                const T v0 = v[p], v1 = v[p + 1], v2 = v[p + 2], v3 = v[p + 3];                \
                for (int64_t j = 0; j < w; j++)                                                \
                    acc[j] += v0 * x0[j] + v1 * x1[j] + v2 * x2[j] + v3 * x3[j];               \
            }                                                                                  \
            for (; p < k; p++) {                                                               \
                const T *x0 = X + p * ldx + j0;                                                \
                const T v0 = v[p];                                                             \
                for (int64_t j = 0; j < w; j++) acc[j] += v0 * x0[j];                          \
            }                                                                                  \
            for (int64_t j = 0; j < w; j++) y[j0 + j] = acc[j];                                \
        }                                                                                      \
    }

TT_DEFINE_GEMV(float, tt_gemv_body_f32)
TT_DEFINE_GEMV(double, tt_gemv_body_f64)

/* A kernel set's gemv_f32 / gemv_f64 (tt_gemv_f32/f64): the shared column-sum body for
 * op(X) = X^T, the set's own row-dot kernels DOTS_F32 / DOTS_F64 otherwise; ATTR is the
 * set's target attribute. */
#define TT_DEFINE_GEMV_DISPATCH(ATTR, DOTS_F32, DOTS_F64)                                      \
    ATTR static void gemv_f32(int trans, int64_t len, int64_t k, const float *X, int64_t ldx, \
                              const float *v, float *y) {                                     \
        if (trans)                                                                             \
            tt_gemv_body_f32_sums(len, k, X, ldx, v, y);                                       \
        else                                                                                   \
            DOTS_F32(len, k, X, ldx, v, y);                                                    \
    }                                                                                          \
    ATTR static void gemv_f64(int trans, int64_t len, int64_t k, const double *X,             \
                              int64_t ldx, const double *v, double *y) {                      \
        if (trans)                                                                             \
            tt_gemv_body_f64_sums(len, k, X, ldx, v, y);                                       \
        else                                                                                   \
            DOTS_F64(len, k, X, ldx, v, y);                                                    \
    }

#if TT_X86_SIMD
#include <immintrin.h>

/* x86 packing for the transposing case (pcontig): 8x8 float / 4x4 double
 * register transposes instead of one scalar move per element. AVX2-level
 * helpers, inlined into both the AVX2 and the AVX-512 pack wrappers. */

TT_TARGET_AVX2 TT_INLINE void tt_tr8x8_ps(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

TT_TARGET_AVX2 TT_INLINE void tt_tr4x4_pd(__m256d r[4]) {
    const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

/* Store the first n (constant) lanes of v. */
TT_TARGET_AVX2 TT_INLINE void tt_store_lanes_ps(float *d, __m256 v, const int n) {
    if (n == 8) {
        _mm256_storeu_ps(d, v);
        return;
    }
    int rem = n;
    __m128 part = _mm256_castps256_ps128(v);
    if (rem >= 4) {
        _mm_storeu_ps(d, part);
        part = _mm256_extractf128_ps(v, 1);
        d += 4;
        rem -= 4;
    }
    if (rem >= 2) {
        _mm_storel_pi((__m64 *)d, part);
        part = _mm_movehl_ps(part, part);
        d += 2;
        rem -= 2;
    }
    if (rem) _mm_store_ss(d, part);
}

TT_TARGET_AVX2 TT_INLINE void tt_store_lanes_pd(double *d, __m256d v, const int n) {
    if (n == 4) {
        _mm256_storeu_pd(d, v);
        return;
    }
    __m128d part = _mm256_castpd256_pd128(v);
    if (n >= 2) {
        _mm_storeu_pd(d, part);
        if (n == 3) _mm_store_sd(d + 2, _mm256_extractf128_pd(v, 1));
    } else {
        _mm_store_sd(d, part);
    }
}

/* One W-wide micro-panel of the transposing pack (w <= W valid rows; rows
 * past w are zeros and never read). W is a constant; so is w for full panels. */
TT_TARGET_AVX2 TT_INLINE void tt_pack_panel_x86_f32(const float *s, int64_t ld, int64_t kc,
                                                    float *d, const int W, const int w) {
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) {
#pragma GCC unroll 4
        for (int g = 0; g < W; g += 8) {
            const int gw = W - g < 8 ? W - g : 8;
            __m256 r[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++)
                r[i] = i < gw && g + i < w ? _mm256_loadu_ps(s + (g + i) * ld + p)
                                           : _mm256_setzero_ps();
            tt_tr8x8_ps(r);
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++) tt_store_lanes_ps(d + (p + q) * W + g, r[q], gw);
        }
    }
    for (; p < kc; p++)
        for (int x = 0; x < W; x++) d[p * W + x] = x < w ? s[x * ld + p] : 0.0f;
}

TT_TARGET_AVX2 TT_INLINE void tt_pack_panel_x86_f64(const double *s, int64_t ld, int64_t kc,
                                                    double *d, const int W, const int w) {
    int64_t p = 0;
    for (; p + 4 <= kc; p += 4) {
#pragma GCC unroll 8
        for (int g = 0; g < W; g += 4) {
            const int gw = W - g < 4 ? W - g : 4;
            __m256d r[4];
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++)
                r[i] = i < gw && g + i < w ? _mm256_loadu_pd(s + (g + i) * ld + p)
                                           : _mm256_setzero_pd();
            tt_tr4x4_pd(r);
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) tt_store_lanes_pd(d + (p + q) * W + g, r[q], gw);
        }
    }
    for (; p < kc; p++)
        for (int x = 0; x < W; x++) d[p * W + x] = x < w ? s[x * ld + p] : 0.0;
}

TT_TARGET_AVX2 TT_INLINE void tt_pack_x86_f32(int pcontig, int64_t len, int64_t kc,
                                              const float *src, int64_t ld, float *dst,
                                              const int W) {
    if (!pcontig) {
        tt_pack_body_f32(0, len, kc, src, ld, dst, W);
        return;
    }
    const int64_t full = len / W * W;
    for (int64_t x0 = 0; x0 < full; x0 += W)
        tt_pack_panel_x86_f32(src + x0 * ld, ld, kc, dst + x0 * kc, W, W);
    if (full < len)
        tt_pack_panel_x86_f32(src + full * ld, ld, kc, dst + full * kc, W, (int)(len - full));
}

TT_TARGET_AVX2 TT_INLINE void tt_pack_x86_f64(int pcontig, int64_t len, int64_t kc,
                                              const double *src, int64_t ld, double *dst,
                                              const int W) {
    if (!pcontig) {
        tt_pack_body_f64(0, len, kc, src, ld, dst, W);
        return;
    }
    const int64_t full = len / W * W;
    for (int64_t x0 = 0; x0 < full; x0 += W)
        tt_pack_panel_x86_f64(src + x0 * ld, ld, kc, dst + x0 * kc, W, W);
    if (full < len)
        tt_pack_panel_x86_f64(src + full * ld, ld, kc, dst + full * kc, W, (int)(len - full));
}
#endif /* TT_X86_SIMD */

#endif /* TT_GEMM_UKERNELS_H */
