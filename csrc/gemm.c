/* GEMM: C = alpha * op(A) @ op(B) + beta * C for row-major float / double.
 *
 * Goto / BLIS style ("Anatomy of High-Performance Matrix Multiplication").
 * Because C is row-major the microkernel keeps vectors along N: it broadcasts
 * MR values of a packed A column and multiplies them into one row of a packed
 * B micro-panel, accumulating an MR x NR tile of C in registers. Loop nest on
 * one block of C (one per thread):
 *
 *   for ic in 0..m step MC           A rows per block          (MC x KC: L3)
 *     for pc in 0..k step KC         depth; beta on pc == 0 only, then += 1
 *       pack A[ic:ic+MC, pc:pc+KC]   into MR-row micro-panels, k-major
 *       for jc in 0..n step NC
 *         pack B[pc:pc+KC, jc:jc+NC] into NR-column micro-panels (KC x NC: L2)
 *         for ir in 0..MC step MR    A micro-panel MR x KC stays in L1
 *           for jr in 0..NC step NR  B micro-panels stream from L2
 *             microkernel (edge tiles go through a local tile buffer)
 *
 * Transposes are absorbed by the packing routines; panels are zero-padded so
 * the microkernel always runs full tiles.
 *
 * Tile sizes and blocking (MR x NR, KC, MC, NC), per kernel set:
 *   AVX-512  float 14x32, KC 384, MC 1008, NC 512;  double 14x16, KC 256, MC 504, NC 256
 *   AVX2     float  6x16, KC 256, MC 1008, NC 512;  double  6x8,  KC 256, MC 504, NC 256
 *   generic  float  4x16, KC 256, MC  512, NC 256;  double  4x8,  KC 256, MC 256, NC 256
 * (the authoritative numbers live with each kernel in gemm_ukr_*.c.)
 *
 * Threads: C is cut into a tm x tn grid of whole micro-tiles (tm * tn = threads,
 * chosen to balance work and packing); each thread runs the serial blocked
 * algorithm on its block with private pack buffers. Small products stay serial.
 * Batched products give whole products to threads when there are enough of them.
 */
#include "gemm_ukernels.h"

#ifdef _OPENMP
/* Pick a tm x tn grid with tm * tn == nth for an m x n x k product. The cost
 * of a thread is its tile-rounded share of the flops plus its packing work
 * (packing A transposes, so it counts double). */
static void tt_gemm_grid(int nth, int64_t m, int64_t n, int64_t k, int mr, int nr, int *tm,
                         int *tn) {
    const int64_t pm = (m + mr - 1) / mr, pn = (n + nr - 1) / nr;
    double best = -1.0;
    *tm = nth;
    *tn = 1;
    for (int a = nth; a >= 1; a--) {
        if (nth % a) continue;
        const int b = nth / a;
        const double bm = (double)((pm + a - 1) / a) * mr, bn = (double)((pn + b - 1) / b) * nr;
        const double cost = 2.0 * bm * bn * (double)k + (2.0 * bm + bn) * (double)k * 4.0;
        if (best < 0.0 || cost < best) {
            best = cost;
            *tm = a;
            *tn = b;
        }
    }
}
#endif

static const tt_gemm_kernels_f32 *kernels_f32(void) {
#if TT_X86_SIMD
    switch (tt_simd_level()) {
        case TT_SIMD_AVX512: return tt_gemm_kernels_avx512_f32();
        case TT_SIMD_AVX2: return tt_gemm_kernels_avx2_f32();
        default: break;
    }
#endif
    return tt_gemm_kernels_generic_f32();
}

static const tt_gemm_kernels_f64 *kernels_f64(void) {
#if TT_X86_SIMD
    switch (tt_simd_level()) {
        case TT_SIMD_AVX512: return tt_gemm_kernels_avx512_f64();
        case TT_SIMD_AVX2: return tt_gemm_kernels_avx2_f64();
        default: break;
    }
#endif
    return tt_gemm_kernels_generic_f64();
}

#define T float
#define S(x) x##_f32
#define KSET tt_gemm_kernels_f32
#include "gemm_impl.inc"
#undef T
#undef S
#undef KSET

#define T double
#define S(x) x##_f64
#define KSET tt_gemm_kernels_f64
#include "gemm_impl.inc"
#undef T
#undef S
#undef KSET

/* ------------------------------------------------------------ public API */

void tt_gemm_f32(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                 int64_t ldc) {
    const int nt = tt_threads_for(2.0 * (double)m * (double)n * (double)k);
    gemm_run_f32(kernels_f32(), nt, trans_a != 0, trans_b != 0, m, n, k, alpha, A, lda, B, ldb,
                 beta, C, ldc);
}

void tt_gemm_f64(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                 const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                 double *C, int64_t ldc) {
    const int nt = tt_threads_for(2.0 * (double)m * (double)n * (double)k);
    gemm_run_f64(kernels_f64(), nt, trans_a != 0, trans_b != 0, m, n, k, alpha, A, lda, B, ldb,
                 beta, C, ldc);
}

void tt_gemm_batched_f32(int trans_a, int trans_b, int64_t batch, int64_t m, int64_t n, int64_t k,
                         float alpha, const float *A, int64_t lda, int64_t stride_a,
                         const float *B, int64_t ldb, int64_t stride_b, float beta, float *C,
                         int64_t ldc, int64_t stride_c) {
    gemm_batched_run_f32(kernels_f32(), trans_a != 0, trans_b != 0, batch, m, n, k, alpha, A, lda,
                         stride_a, B, ldb, stride_b, beta, C, ldc, stride_c);
}

void tt_gemm_batched_f64(int trans_a, int trans_b, int64_t batch, int64_t m, int64_t n, int64_t k,
                         double alpha, const double *A, int64_t lda, int64_t stride_a,
                         const double *B, int64_t ldb, int64_t stride_b, double beta, double *C,
                         int64_t ldc, int64_t stride_c) {
    gemm_batched_run_f64(kernels_f64(), trans_a != 0, trans_b != 0, batch, m, n, k, alpha, A, lda,
                         stride_a, B, ldb, stride_b, beta, C, ldc, stride_c);
}
