/* AVX-512 GEMM microkernels: float 14x32, double 14x16 (two zmm per C row,
 * 28 accumulators + 2 B vectors + 1 broadcast = 31 of the 32 zmm registers).
 * Each k step loads one row of the packed B micro-panel and broadcasts the MR
 * values of the packed A column: 2 loads + MR broadcasts per 2*MR FMAs.
 *
 * Edge tiles run a variant specialised for their row count (and one vector
 * when nr fits in one) with masked C accesses, straight on C: no padded rows
 * are computed and nothing is copied. */
#include "gemm_ukernels.h"

#if TT_X86_SIMD

#define MR_F32 14
#define NR_F32 32
#define MR_F64 14
#define NR_F64 16

/* How far ahead (in k steps) to prefetch the B micro-panel streamed from L2. */
#define PF_DIST 8

/* Kernel body for R rows (<= MR) and V vectors per row (1 or 2); the packed
 * panels keep their full MR / NR strides. MASKED uses m0/m1 on C columns. */
#define TT_DEFINE_K512(T, SFX, VEC, MR, NR, VL, MASK_T, SET1, ZERO, LOAD, LOADU, STOREU,      \
                       MLOADU, MSTOREU, FMADD, MUL)                                          \
    TT_TARGET_AVX512 TT_INLINE void k512_##SFX(const int R, const int V, const int MASKED,    \
                                               int64_t k, const T *a, const T *b, T *c,       \
                                               int64_t ldc, T alpha, T beta, MASK_T m0,       \
                                               MASK_T m1) {                                   \
        VEC c0[MR], c1[MR];                                                                   \
        _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) {                                \
            c0[i] = ZERO();                                                                   \
            c1[i] = ZERO();                                                                   \
            /* pull the C tile toward L1 while the k loop runs */                            \
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);                          \
            _mm_prefetch((const char *)(c + i * ldc + V * VL - 1), _MM_HINT_T0);             \
        }                                                                                     \
        for (int64_t p = 0; p < k; p++) {                                                     \
            const VEC b0 = LOAD(b);                                                           \
            const VEC b1 = V == 2 ? LOAD(b + VL) : ZERO();                                    \
            _mm_prefetch((const char *)(b + PF_DIST * NR), _MM_HINT_T0);                     \
            _mm_prefetch((const char *)(b + PF_DIST * NR + VL), _MM_HINT_T0);                \
            _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) {                            \
                const VEC ai = SET1(a[i]);                                                    \
                c0[i] = FMADD(ai, b0, c0[i]);                                                 \
                if (V == 2) c1[i] = FMADD(ai, b1, c1[i]);                                     \
            }                                                                                 \
            a += MR;                                                                          \
            b += NR;                                                                          \
        }                                                                                     \
        const VEC va = SET1(alpha), vb = SET1(beta);                                          \
        _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) {                                \
            T *ci = c + i * ldc;                                                              \
            VEC r0 = MUL(va, c0[i]), r1 = MUL(va, c1[i]);                                     \
            if (beta != (T)0) {                                                               \
                r0 = FMADD(vb, MASKED ? MLOADU(m0, ci) : LOADU(ci), r0);                      \
                if (V == 2) r1 = FMADD(vb, MASKED ? MLOADU(m1, ci + VL) : LOADU(ci + VL), r1); \
            }                                                                                 \
            if (MASKED)                                                                       \
                MSTOREU(ci, m0, r0);                                                          \
            else                                                                              \
                STOREU(ci, r0);                                                               \
            if (V == 2) {                                                                     \
                if (MASKED)                                                                   \
                    MSTOREU(ci + VL, m1, r1);                                                 \
                else                                                                          \
                    STOREU(ci + VL, r1);                                                      \
            }                                                                                 \
        }                                                                                     \
    }

TT_DEFINE_K512(float, f32, __m512, MR_F32, NR_F32, 16, __mmask16, _mm512_set1_ps,
               _mm512_setzero_ps, _mm512_load_ps, _mm512_loadu_ps, _mm512_storeu_ps,
               _mm512_maskz_loadu_ps, _mm512_mask_storeu_ps, _mm512_fmadd_ps, _mm512_mul_ps)
TT_DEFINE_K512(double, f64, __m512d, MR_F64, NR_F64, 8, __mmask8, _mm512_set1_pd,
               _mm512_setzero_pd, _mm512_load_pd, _mm512_loadu_pd, _mm512_storeu_pd,
               _mm512_maskz_loadu_pd, _mm512_mask_storeu_pd, _mm512_fmadd_pd, _mm512_mul_pd)

TT_TARGET_AVX512 static void ukr_f32(int64_t k, const float *a, const float *b, float *c,
                                     int64_t ldc, float alpha, float beta) {
    k512_f32(MR_F32, 2, 0, k, a, b, c, ldc, alpha, beta, 0, 0);
}
TT_TARGET_AVX512 static void ukr_f64(int64_t k, const double *a, const double *b, double *c,
                                     int64_t ldc, double alpha, double beta) {
    k512_f64(MR_F64, 2, 0, k, a, b, c, ldc, alpha, beta, 0, 0);
}

/* Edge variants: one per (rows, vectors), selected through a table. */
typedef void (*edge_f32_fn)(int64_t, const float *, const float *, float *, int64_t, float, float,
                            __mmask16, __mmask16);
typedef void (*edge_f64_fn)(int64_t, const double *, const double *, double *, int64_t, double,
                            double, __mmask8, __mmask8);

#define EDGE_FNS(R)                                                                           \
    TT_TARGET_AVX512 static void e32_##R##_1(int64_t k, const float *a, const float *b,       \
                                             float *c, int64_t ldc, float al, float be,       \
                                             __mmask16 m0, __mmask16 m1) {                    \
        k512_f32(R, 1, 1, k, a, b, c, ldc, al, be, m0, m1);                                   \
    }                                                                                         \
    TT_TARGET_AVX512 static void e32_##R##_2(int64_t k, const float *a, const float *b,       \
                                             float *c, int64_t ldc, float al, float be,       \
                                             __mmask16 m0, __mmask16 m1) {                    \
        k512_f32(R, 2, 1, k, a, b, c, ldc, al, be, m0, m1);                                   \
    }                                                                                         \
    TT_TARGET_AVX512 static void e64_##R##_1(int64_t k, const double *a, const double *b,     \
                                             double *c, int64_t ldc, double al, double be,    \
                                             __mmask8 m0, __mmask8 m1) {                      \
        k512_f64(R, 1, 1, k, a, b, c, ldc, al, be, m0, m1);                                   \
    }                                                                                         \
    TT_TARGET_AVX512 static void e64_##R##_2(int64_t k, const double *a, const double *b,     \
                                             double *c, int64_t ldc, double al, double be,    \
                                             __mmask8 m0, __mmask8 m1) {                      \
        k512_f64(R, 2, 1, k, a, b, c, ldc, al, be, m0, m1);                                   \
    }

EDGE_FNS(1)
EDGE_FNS(2)
EDGE_FNS(3)
EDGE_FNS(4)
EDGE_FNS(5)
EDGE_FNS(6)
EDGE_FNS(7)
EDGE_FNS(8)
EDGE_FNS(9)
EDGE_FNS(10)
EDGE_FNS(11)
EDGE_FNS(12)
EDGE_FNS(13)
EDGE_FNS(14)

#define EDGE_ROW(W, R) {W##_##R##_1, W##_##R##_2}
static const edge_f32_fn edge_f32[MR_F32][2] = {
    EDGE_ROW(e32, 1), EDGE_ROW(e32, 2),  EDGE_ROW(e32, 3),  EDGE_ROW(e32, 4),  EDGE_ROW(e32, 5),
    EDGE_ROW(e32, 6), EDGE_ROW(e32, 7),  EDGE_ROW(e32, 8),  EDGE_ROW(e32, 9),  EDGE_ROW(e32, 10),
    EDGE_ROW(e32, 11), EDGE_ROW(e32, 12), EDGE_ROW(e32, 13), EDGE_ROW(e32, 14)};
static const edge_f64_fn edge_f64[MR_F64][2] = {
    EDGE_ROW(e64, 1), EDGE_ROW(e64, 2),  EDGE_ROW(e64, 3),  EDGE_ROW(e64, 4),  EDGE_ROW(e64, 5),
    EDGE_ROW(e64, 6), EDGE_ROW(e64, 7),  EDGE_ROW(e64, 8),  EDGE_ROW(e64, 9),  EDGE_ROW(e64, 10),
    EDGE_ROW(e64, 11), EDGE_ROW(e64, 12), EDGE_ROW(e64, 13), EDGE_ROW(e64, 14)};

static void ukr_edge_f32(int64_t mr, int64_t nr, int64_t k, const float *a, const float *b,
                         float *c, int64_t ldc, float alpha, float beta) {
    const int v = nr > 16;
    const int64_t n0 = v ? 16 : nr, n1 = v ? nr - 16 : 0;
    const __mmask16 m0 = (__mmask16)((1u << n0) - 1u), m1 = (__mmask16)((1u << n1) - 1u);
    edge_f32[mr - 1][v](k, a, b, c, ldc, alpha, beta, m0, m1);
}

static void ukr_edge_f64(int64_t mr, int64_t nr, int64_t k, const double *a, const double *b,
                         double *c, int64_t ldc, double alpha, double beta) {
    const int v = nr > 8;
    const int64_t n0 = v ? 8 : nr, n1 = v ? nr - 8 : 0;
    const __mmask8 m0 = (__mmask8)((1u << n0) - 1u), m1 = (__mmask8)((1u << n1) - 1u);
    edge_f64[mr - 1][v](k, a, b, c, ldc, alpha, beta, m0, m1);
}

TT_TARGET_AVX512 static void pack_a_f32(int pcontig, int64_t len, int64_t kc, const float *src,
                                        int64_t ld, float *dst) {
    tt_pack_x86_f32(pcontig, len, kc, src, ld, dst, MR_F32);
}
TT_TARGET_AVX512 static void pack_b_f32(int pcontig, int64_t len, int64_t kc, const float *src,
                                        int64_t ld, float *dst) {
    tt_pack_x86_f32(pcontig, len, kc, src, ld, dst, NR_F32);
}
TT_TARGET_AVX512 static void pack_a_f64(int pcontig, int64_t len, int64_t kc, const double *src,
                                        int64_t ld, double *dst) {
    tt_pack_x86_f64(pcontig, len, kc, src, ld, dst, MR_F64);
}
TT_TARGET_AVX512 static void pack_b_f64(int pcontig, int64_t len, int64_t kc, const double *src,
                                        int64_t ld, double *dst) {
    tt_pack_x86_f64(pcontig, len, kc, src, ld, dst, NR_F64);
}

/* Blocking for Zen4-class cores (32 KB L1d, 1 MB L2): an A micro-panel of
 * MR x KC is reused from L1 across the B micro-panels streaming from the
 * KC x NC block in L2; MC rows of A (a few MB) stay in L3 so that B is packed
 * once for m <= MC. */
#ifndef KC_F32
#define KC_F32 384
#define MC_F32 2016
#define NC_F32 512
#endif
#ifndef KC_F64
#define KC_F64 256
#define MC_F64 2016
#define NC_F64 384
#endif
static const tt_gemm_kernels_f32 k_f32 = {MR_F32, NR_F32, KC_F32, MC_F32, NC_F32,
                                          ukr_f32, ukr_edge_f32, pack_a_f32, pack_b_f32};
static const tt_gemm_kernels_f64 k_f64 = {MR_F64, NR_F64, KC_F64, MC_F64, NC_F64,
                                          ukr_f64, ukr_edge_f64, pack_a_f64, pack_b_f64};

const tt_gemm_kernels_f32 *tt_gemm_kernels_avx512_f32(void) { return &k_f32; }
const tt_gemm_kernels_f64 *tt_gemm_kernels_avx512_f64(void) { return &k_f64; }

#endif /* TT_X86_SIMD */
