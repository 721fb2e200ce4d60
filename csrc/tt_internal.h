/* Internal helpers shared by the kernel files: SIMD target attributes, threading
 * and aligned buffers. Not part of the public API (see tinytape.h). */
#ifndef TT_INTERNAL_H
#define TT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "tinytape.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* x86-64 SIMD paths are compiled with per-function target attributes (GCC, clang),
 * so the build needs no -march flag and the CPU that runs the code picks the path. */
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) \
    && !defined(TT_NO_X86_SIMD)
#define TT_X86_SIMD 1
#define TT_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define TT_TARGET_AVX512 \
    __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma,prefer-vector-width=512")))
#else
#define TT_X86_SIMD 0
#endif

#define TT_RESTRICT __restrict
#define TT_ALIGN 64

/* Threads to use for `work` scalar operations: 1 below a size where forking
 * costs more than it saves, else the configured count. */
int tt_threads_for(double work);

/* Matrix products of fewer flops than this stay on one thread: serial below 12
 * MFLOP (about 2 * 180^3). Waking a sleeping thread costs about 50 us (see
 * tt_threads_for); measured on AVX-512 float32 with 2 threads: 128^3 took 49 us
 * on one thread and 67 us on two, 160^3 86 and 106 us, 256^3 337 and 216 us.
 * Again with rows claimed in turn (gemm_rows_claimed) and a 2 MFLOP threshold,
 * medians of 9 alternating rounds: 128^3 42-47 us on one thread, 53-59 on two;
 * 64x256x256 85 and 90-98; 160^3 84-88 and 89-103: still slower on two.
 * Used by the GEMM and the fused attention kernel. */
#ifndef TT_GEMM_MT_MIN
#define TT_GEMM_MT_MIN 1.2e7
#endif

/* 64-byte aligned buffers (NULL on failure). */
void *tt_aligned_alloc(size_t bytes);
void tt_aligned_free(void *p);

#endif /* TT_INTERNAL_H */
