/* Fused multi-head self-attention on a packed projection (see tinytape.h).
 *
 * qkv is (batch, n, 3 * heads * d), row-major: for each token the queries of
 * every head, then the keys, then the values. Head h of q for batch b is the
 * n x d matrix at qkv + b*n*ld + h*d with row stride ld = 3*heads*d (k and v
 * follow at + heads*d and + 2*heads*d), so the GEMMs read the heads in place.
 * One parallel region per call gives whole (batch, head) pairs to threads; each
 * pair runs its two (forward) or four (backward) products and its softmax rows
 * on one thread, so a step wakes the team once per attention layer and pass
 * instead of once per product. The weights P (batch, heads, n, n) are written
 * by the forward and read by the backward. */
#include "tt_internal.h"

/* Threads for `pairs` products of n x n x d: the GEMM rule (serial below
 * TT_GEMM_MT_MIN flops), at most one thread per pair. */
static int tt_attention_threads(int64_t pairs, int64_t n, int64_t d) {
    const double flops = 4.0 * (double)pairs * (double)n * (double)n * (double)d;
    int nt = flops < TT_GEMM_MT_MIN ? 1 : tt_threads_for(flops);
    if (nt > pairs) nt = (int)pairs;
    return nt;
}

/* The calling thread's share [p0, p1) of `pairs`, split by hand rather than by
 * a worksharing loop, which every thread would have to reach: a thread whose
 * scratch allocation failed skips its share (the call then fails). */
static void tt_attention_share(int64_t pairs, int64_t *p0, int64_t *p1) {
#ifdef _OPENMP
    const int64_t tid = omp_get_thread_num(), nth = omp_get_num_threads();
#else
    const int64_t tid = 0, nth = 1;
#endif
    *p0 = pairs * tid / nth;
    *p1 = pairs * (tid + 1) / nth;
}

#define T float
#define S(x) x##_f32
#include "attention_impl.inc"
#undef T
#undef S

#define T double
#define S(x) x##_f64
#include "attention_impl.inc"
#undef T
#undef S
