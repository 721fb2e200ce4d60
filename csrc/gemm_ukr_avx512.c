/* AVX-512 GEMM microkernels: float 14x32, double 14x16 (two zmm per C row,
 * 28 accumulators + 2 B vectors + 1 broadcast = 31 of the 32 zmm registers).
 * Each k step loads one row of the B micro-panel and broadcasts the MR values
 * of the A column: 2 loads + MR broadcasts per 2*MR FMAs.
 *
 * One strided kernel serves every case: A element (i, p) at a[i*rs + p*cs]
 * and B row p at b + p*ldb, so packed panels (rs = 1, cs = MR, ldb = NR) and
 * unpacked operands (the direct path for small products) share the code.
 * Partial tiles run a variant compiled for their row count (and one vector
 * when nr fits in one) with masked B and C accesses, straight on C: nothing is
 * read or written past the tile and no padded rows are computed. */
#include "gemm_ukernels.h"

#if TT_X86_SIMD

#define MR_F32 14
#define NR_F32 32
#define MR_F64 14
#define NR_F64 16

/* Kernel for R rows (<= MR), V vectors per row (1 or 2), masked (edge) or not. */
#define TT_DEFINE_K512(T, SFX, VEC, MR, VL, MASK_T, SET1, ZERO, LOADU, STOREU, MLOADU,         \
                       MSTOREU, FMADD, MUL)                                                   \
    TT_TARGET_AVX512 TT_INLINE void k512_##SFX(const int R, const int V, const int MASKED,     \
                                               int64_t k, const T *a, int64_t rs, int64_t cs,  \
                                               const T *b, int64_t ldb, T *c, int64_t ldc,     \
                                               T alpha, T beta, MASK_T m0, MASK_T m1) {        \
        VEC c0[MR], c1[MR];                                                                    \
        _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) {                                 \
            c0[i] = ZERO();                                                                    \
            c1[i] = ZERO();                                                                    \
            /* start pulling the C tile in while the k loop runs */                           \
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);                           \
        }                                                                                      \
        for (int64_t p = 0; p < k; p++) {                                                      \
            const VEC b0 = MASKED ? MLOADU(m0, b) : LOADU(b);                                  \
            const VEC b1 = V == 2 ? (MASKED ? MLOADU(m1, b + VL) : LOADU(b + VL)) : ZERO();    \
            _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) {                             \
                const VEC ai = SET1(a[i * rs]);                                                \
                c0[i] = FMADD(ai, b0, c0[i]);                                                  \
                if (V == 2) c1[i] = FMADD(ai, b1, c1[i]);                                      \
            }                                                                                  \
            a += cs;                                                                           \
            b += ldb;                                                                          \
        }                                                                                      \
        const VEC va = SET1(alpha), vb = SET1(beta);                                           \
        _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) {                                 \
            T *ci = c + i * ldc;                                                               \
            VEC r0 = MUL(va, c0[i]), r1 = MUL(va, c1[i]);                                      \
            if (beta != (T)0) { /* beta == 0: C is not read */                                 \
                r0 = FMADD(vb, MASKED ? MLOADU(m0, ci) : LOADU(ci), r0);                       \
                if (V == 2) r1 = FMADD(vb, MASKED ? MLOADU(m1, ci + VL) : LOADU(ci + VL), r1); \
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

TT_DEFINE_K512(float, f32, __m512, MR_F32, 16, __mmask16, _mm512_set1_ps, _mm512_setzero_ps,
               _mm512_loadu_ps, _mm512_storeu_ps, _mm512_maskz_loadu_ps, _mm512_mask_storeu_ps,
               _mm512_fmadd_ps, _mm512_mul_ps)
TT_DEFINE_K512(double, f64, __m512d, MR_F64, 8, __mmask8, _mm512_set1_pd, _mm512_setzero_pd,
               _mm512_loadu_pd, _mm512_storeu_pd, _mm512_maskz_loadu_pd, _mm512_mask_storeu_pd,
               _mm512_fmadd_pd, _mm512_mul_pd)

typedef void (*k32_fn)(int64_t, const float *, int64_t, int64_t, const float *, int64_t, float *,
                       int64_t, float, float, __mmask16, __mmask16);
typedef void (*k64_fn)(int64_t, const double *, int64_t, int64_t, const double *, int64_t,
                       double *, int64_t, double, double, __mmask8, __mmask8);

#define K_FN(T, SFX, MASK_T, NAME, R, V, MASKED)                                               \
    TT_TARGET_AVX512 static void NAME(int64_t k, const T *a, int64_t rs, int64_t cs,           \
                                      const T *b, int64_t ldb, T *c, int64_t ldc, T al, T be,  \
                                      MASK_T m0, MASK_T m1) {                                  \
        k512_##SFX(R, V, MASKED, k, a, rs, cs, b, ldb, c, ldc, al, be, m0, m1);                 \
    }

/* Full tiles, then the masked variants for every row count and vector count. */
K_FN(float, f32, __mmask16, k32_full, MR_F32, 2, 0)
K_FN(double, f64, __mmask8, k64_full, MR_F64, 2, 0)

#define EDGE_FNS(R)                                         \
    K_FN(float, f32, __mmask16, k32_##R##_1, R, 1, 1)       \
    K_FN(float, f32, __mmask16, k32_##R##_2, R, 2, 1)       \
    K_FN(double, f64, __mmask8, k64_##R##_1, R, 1, 1)       \
    K_FN(double, f64, __mmask8, k64_##R##_2, R, 2, 1)
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
#define EDGE_TABLE(W)                                                                  \
    {EDGE_ROW(W, 1),  EDGE_ROW(W, 2),  EDGE_ROW(W, 3),  EDGE_ROW(W, 4),  EDGE_ROW(W, 5), \
     EDGE_ROW(W, 6),  EDGE_ROW(W, 7),  EDGE_ROW(W, 8),  EDGE_ROW(W, 9),  EDGE_ROW(W, 10), \
     EDGE_ROW(W, 11), EDGE_ROW(W, 12), EDGE_ROW(W, 13), EDGE_ROW(W, 14)}
static const k32_fn edge_f32[MR_F32][2] = EDGE_TABLE(k32);
static const k64_fn edge_f64[MR_F64][2] = EDGE_TABLE(k64);

static void ukr_f32(int64_t k, const float *a, const float *b, float *c, int64_t ldc, float alpha,
                    float beta) {
    k32_full(k, a, 1, MR_F32, b, NR_F32, c, ldc, alpha, beta, 0, 0);
}

static void ukr_f64(int64_t k, const double *a, const double *b, double *c, int64_t ldc,
                    double alpha, double beta) {
    k64_full(k, a, 1, MR_F64, b, NR_F64, c, ldc, alpha, beta, 0, 0);
}

static void ukr_strided_f32(int64_t mr, int64_t nr, int64_t k, const float *a, int64_t rs,
                            int64_t cs, const float *b, int64_t ldb, float *c, int64_t ldc,
                            float alpha, float beta) {
    if (mr == MR_F32 && nr == NR_F32) {
        k32_full(k, a, rs, cs, b, ldb, c, ldc, alpha, beta, 0, 0);
        return;
    }
    const int v = nr > 16;
    const unsigned n0 = v ? 16u : (unsigned)nr, n1 = v ? (unsigned)nr - 16u : 0u;
    const __mmask16 m0 = (__mmask16)((1u << n0) - 1u), m1 = (__mmask16)((1u << n1) - 1u);
    edge_f32[mr - 1][v](k, a, rs, cs, b, ldb, c, ldc, alpha, beta, m0, m1);
}

static void ukr_strided_f64(int64_t mr, int64_t nr, int64_t k, const double *a, int64_t rs,
                            int64_t cs, const double *b, int64_t ldb, double *c, int64_t ldc,
                            double alpha, double beta) {
    if (mr == MR_F64 && nr == NR_F64) {
        k64_full(k, a, rs, cs, b, ldb, c, ldc, alpha, beta, 0, 0);
        return;
    }
    const int v = nr > 8;
    const unsigned n0 = v ? 8u : (unsigned)nr, n1 = v ? (unsigned)nr - 8u : 0u;
    const __mmask8 m0 = (__mmask8)((1u << n0) - 1u), m1 = (__mmask8)((1u << n1) - 1u);
    edge_f64[mr - 1][v](k, a, rs, cs, b, ldb, c, ldc, alpha, beta, m0, m1);
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

/* GEMV dots: four rows at a time share each load of v; the k tail is a
 * masked load, so short rows cost no scalar loop. */
#define TT_DEFINE_DOTS512(T, SFX, VEC, VL, MASK_T, ZERO, LOADU, MLOADU, FMADD, REDUCE)           \
    TT_TARGET_AVX512 static void dots_##SFX(int64_t len, int64_t k, const T *X, int64_t ldx,     \
                                            const T *v, T *y) {                                  \
        const int64_t kv = k / VL * VL;                                                          \
        const MASK_T mt = (MASK_T)((1u << (unsigned)(k - kv)) - 1u);                             \
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
            if (mt) {                                                                            \
                const VEC vv = MLOADU(mt, v + kv);                                               \
                a0 = FMADD(MLOADU(mt, x0 + kv), vv, a0);                                         \
                a1 = FMADD(MLOADU(mt, x1 + kv), vv, a1);                                         \
                a2 = FMADD(MLOADU(mt, x2 + kv), vv, a2);                                         \
                a3 = FMADD(MLOADU(mt, x3 + kv), vv, a3);                                         \
            }                                                                                    \
            y[i] = REDUCE(a0);                                                                   \
            y[i + 1] = REDUCE(a1);                                                               \
            y[i + 2] = REDUCE(a2);                                                               \
            y[i + 3] = REDUCE(a3);                                                               \
        }                                                                                        \
        for (; i < len; i++) {                                                                   \
            const T *x0 = X + i * ldx;                                                           \
            VEC a0 = ZERO();                                                                     \
            for (int64_t p = 0; p < kv; p += VL) a0 = FMADD(LOADU(x0 + p), LOADU(v + p), a0);    \
            if (mt) a0 = FMADD(MLOADU(mt, x0 + kv), MLOADU(mt, v + kv), a0);                     \
            y[i] = REDUCE(a0);                                                                   \
        }                                                                                        \
    }
TT_DEFINE_DOTS512(float, f32, __m512, 16, __mmask16, _mm512_setzero_ps, _mm512_loadu_ps,
                  _mm512_maskz_loadu_ps, _mm512_fmadd_ps, _mm512_reduce_add_ps)
TT_DEFINE_DOTS512(double, f64, __m512d, 8, __mmask8, _mm512_setzero_pd, _mm512_loadu_pd,
                  _mm512_maskz_loadu_pd, _mm512_fmadd_pd, _mm512_reduce_add_pd)

TT_DEFINE_GEMV_DISPATCH(TT_TARGET_AVX512, dots_f32, dots_f64)

/* Blocking for Zen4-class cores (32 KB L1d, 1 MB L2): the A micro-panel
 * (MR x KC) is reused from L1 across the B micro-panels that stream from the
 * KC x NC block in L2; MC rows of A (a few MB) sit in L3, so B is packed only
 * once for m <= MC. */
/* Limits of the unpacked (direct) path, measured on Zen 4: m*n*k, and bytes of B
 * rows per k block (half its 1 MB L2). */
#define DIRECT_MAX (256.0 * 256.0 * 256.0)
#define DIRECT_BBLOCK (512.0 * 1024.0)

static const tt_gemm_kernels_f32 k_f32 = {
    .mr = MR_F32, .nr = NR_F32, .kc = 384, .mc = 2016, .nc = 512,
    .ukr = ukr_f32, .ukr_strided = ukr_strided_f32, .strided_edges = 1,
    .direct_max = DIRECT_MAX, .direct_bblock = DIRECT_BBLOCK,
    .pack_a = pack_a_f32, .pack_b = pack_b_f32, .gemv = gemv_f32};
static const tt_gemm_kernels_f64 k_f64 = {
    .mr = MR_F64, .nr = NR_F64, .kc = 256, .mc = 2016, .nc = 384,
    .ukr = ukr_f64, .ukr_strided = ukr_strided_f64, .strided_edges = 1,
    .direct_max = DIRECT_MAX, .direct_bblock = DIRECT_BBLOCK,
    .pack_a = pack_a_f64, .pack_b = pack_b_f64, .gemv = gemv_f64};

const tt_gemm_kernels_f32 *tt_gemm_kernels_avx512_f32(void) { return &k_f32; }
const tt_gemm_kernels_f64 *tt_gemm_kernels_avx512_f64(void) { return &k_f64; }

#endif /* TT_X86_SIMD */
