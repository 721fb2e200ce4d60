/* GEMM: C = alpha * op(A) @ op(B) + beta * C for row-major float / double.
 *
 * Goto / BLIS style ("Anatomy of High-Performance Matrix Multiplication").
 * C is row-major, so the microkernel keeps vectors along N: per k step it
 * broadcasts MR values of an A column and multiplies them into one row of a
 * B micro-panel, accumulating an MR x NR tile of C in registers. Loop nest on
 * one block of C:
 *
 *   for ic in 0..m step MC             A rows per block     (MC x KC: L3)
 *     for pc in 0..k step KC           beta on pc == 0 only, then accumulate
 *       pack A[ic:+MC, pc:+KC]         MR-row micro-panels, k-major
 *       for jc in 0..n step NC
 *         pack B[pc:+KC, jc:+NC]       NR-column micro-panels (KC x NC: L2)
 *         for ir in 0..MC step MR      A micro-panel (MR x KC) stays in L1
 *           for jr in 0..NC step NR    B micro-panels stream from L2
 *             microkernel
 *
 * When n <= NC, B is one block per k block and the nest turns around: for each
 * k block, B is packed once and A goes under it in blocks of about 192 rows
 * (TT_GEMM_A_ROWS, gemm_impl.inc), so the A buffer stays small whatever m.
 *
 * Packing absorbs the transposes and zero-pads partial panels. Edge tiles
 * either run a kernel variant for their exact size with masked accesses
 * (AVX-512) or compute the full tile into a local buffer and copy the valid
 * part (AVX2, where masked loads in the k loop cost more than the copy, and
 * generic). Register tiles and blocking (MR x NR, KC, MC, NC):
 *   AVX-512  float 14x32, 384, 2016, 512     double 14x16, 256, 2016, 384
 *   AVX2     float  6x16, 256, 2016, 512     double  6x8,  256, 1008, 256
 *   generic  float  4x8,  256,  512, 256     double  4x4,  256,  256, 256
 *            (4x16 and 4x8 on AArch64, which has 32 vector registers)
 * (the values live with each kernel set in gemm_ukr_*.c). MC is large so
 * that a wider B is packed only once for m <= MC.
 *
 * Shapes that packing does not suit:
 *   - m == 1 or n == 1: matrix-vector kernels (dots of rows, or sums of rows),
 *     memory bound, no packing.
 *   - small products, or n <= NR (packed A panels would be used once), with B
 *     not transposed: the strided kernel (AVX-512, AVX2) reads A and B in
 *     place (gemm_direct; the limits, measured per kernel set, live with it).
 *
 * Threads (OpenMP): a tm x tn grid of whole micro-tiles (tm * tn = threads)
 * is chosen for balanced work and little packing. When it cuts C by rows
 * only, or there are rows enough (see TT_GEMM_CLAIM_ROWS), the rows are cut
 * into several chunks per thread that the threads claim in turn, each thread
 * with its own packed copy of B: a worker that wakes late or shares its core
 * with another process takes fewer chunks instead of holding the others up
 * (a fixed half each gave no speed-up at all on a 2-core machine with one
 * other busy process), no barrier is needed, and the result is bit for bit
 * the serial one. Other grids give every thread one block with private
 * buffers. Products under
 * TT_GEMM_MT_MIN flops stay serial. Batched products give whole products to
 * threads when there are enough of them and their C matrices do not overlap.
 * A batch has two levels (outer x inner, each with its own stride), so the
 * heads of a (batch, tokens, heads, head_dim) array are read and written in
 * place.
 */
#include "gemm_ukernels.h"

/* Threads for `work` flops: serial below TT_GEMM_MT_MIN (tt_internal.h). */
static int tt_gemm_threads(double work) {
    return work < TT_GEMM_MT_MIN ? 1 : tt_threads_for(work);
}

/* Chunks of rows per thread when the rows are claimed in turn (see
 * gemm_rows_claimed): enough that a thread that wakes late or shares its core
 * leaves its share to the others, few enough that each chunk keeps whole
 * micro-panels busy. */
#ifndef TT_GEMM_CHUNKS_PER_THREAD
#define TT_GEMM_CHUNKS_PER_THREAD 4
#endif

/* When rows are claimed in turn each thread packs all of B, which costs about
 * 5 / rows of its rows' product: rows are claimed when the grid would cut by
 * rows anyway, or when every thread gets at least TT_GEMM_CLAIM_ROWS rows (a
 * few % for B), and B packed takes at most TT_GEMM_CLAIM_BMAX bytes. */
#ifndef TT_GEMM_CLAIM_ROWS
#define TT_GEMM_CLAIM_ROWS 128
#endif
#ifndef TT_GEMM_CLAIM_BMAX
#define TT_GEMM_CLAIM_BMAX (16.0 * 1024.0 * 1024.0)
#endif

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

#ifdef _OPENMP
/* Whether the outer x inner matrices (m x n, row stride ldc) of a batched C are
 * pairwise disjoint, so that threads may write them at once: sorted by stride,
 * every axis must step past everything the smaller axes span (numpy's
 * sufficient test for a layout without overlap). */
static int tt_gemm_c_disjoint(int64_t outer, int64_t inner, int64_t m, int64_t n, int64_t ldc,
                              int64_t sco, int64_t sci) {
    int64_t size[4] = {n, m, inner, outer};
    int64_t step[4] = {1, ldc, sci < 0 ? -sci : sci, sco < 0 ? -sco : sco};
    for (int i = 1; i < 4; i++) /* insertion sort by stride */
        for (int j = i; j > 0 && step[j] < step[j - 1]; j--) {
            int64_t t = step[j]; step[j] = step[j - 1]; step[j - 1] = t;
            t = size[j]; size[j] = size[j - 1]; size[j - 1] = t;
        }
    int64_t span = 0; /* elements spanned by the axes sorted so far, minus one */
    for (int i = 0; i < 4; i++) {
        if (size[i] <= 1) continue;
        if (step[i] <= span) return 0;
        span += (size[i] - 1) * step[i];
    }
    return 1;
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
    const int nt = tt_gemm_threads(2.0 * (double)m * (double)n * (double)k);
    gemm_run_f32(kernels_f32(), nt, trans_a != 0, trans_b != 0, m, n, k, alpha, A, lda, B, ldb,
                 beta, C, ldc);
}

void tt_gemm_f64(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                 const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                 double *C, int64_t ldc) {
    const int nt = tt_gemm_threads(2.0 * (double)m * (double)n * (double)k);
    gemm_run_f64(kernels_f64(), nt, trans_a != 0, trans_b != 0, m, n, k, alpha, A, lda, B, ldb,
                 beta, C, ldc);
}

void tt_gemm_batched_f32(int trans_a, int trans_b, int64_t outer, int64_t inner, int64_t m,
                         int64_t n, int64_t k, float alpha, const float *A, int64_t lda,
                         int64_t sa_outer, int64_t sa_inner, const float *B, int64_t ldb,
                         int64_t sb_outer, int64_t sb_inner, float beta, float *C, int64_t ldc,
                         int64_t sc_outer, int64_t sc_inner) {
    gemm_batched_run_f32(kernels_f32(), trans_a != 0, trans_b != 0, outer, inner, m, n, k, alpha,
                         A, lda, sa_outer, sa_inner, B, ldb, sb_outer, sb_inner, beta, C, ldc,
                         sc_outer, sc_inner);
}

void tt_gemm_batched_f64(int trans_a, int trans_b, int64_t outer, int64_t inner, int64_t m,
                         int64_t n, int64_t k, double alpha, const double *A, int64_t lda,
                         int64_t sa_outer, int64_t sa_inner, const double *B, int64_t ldb,
                         int64_t sb_outer, int64_t sb_inner, double beta, double *C, int64_t ldc,
                         int64_t sc_outer, int64_t sc_inner) {
    gemm_batched_run_f64(kernels_f64(), trans_a != 0, trans_b != 0, outer, inner, m, n, k, alpha,
                         A, lda, sa_outer, sa_inner, B, ldb, sb_outer, sb_inner, beta, C, ldc,
                         sc_outer, sc_inner);
}
