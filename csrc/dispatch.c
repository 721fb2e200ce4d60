/* Run-time choice of the SIMD path, thread count and build information. */
#define _POSIX_C_SOURCE 200112L /* posix_memalign under -std=c11 */
#include <stdlib.h>
#include <string.h>
#include "tt_internal.h"

#ifndef TT_BUILD_INFO
#define TT_BUILD_INFO "unknown"
#endif

/* The settings below are read by every kernel call and may be changed by another
 * Python thread at any time (the bindings release the GIL): each is one int read
 * and written atomically (relaxed: no other memory hangs on it). A call reads the
 * thread count once and the SIMD path once per kernel, so a change made during a
 * call takes effect from the next one. */
#if defined(__GNUC__) || defined(__clang__)
#define TT_LOAD(v) __atomic_load_n(&(v), __ATOMIC_RELAXED)
#define TT_STORE(v, x) __atomic_store_n(&(v), (x), __ATOMIC_RELAXED)
#else
#define TT_LOAD(v) (v)
#define TT_STORE(v, x) ((v) = (x))
#endif

static int detected_level = -1;
static int active_level = -1;
static int num_threads = 0; /* 0: not set yet, use OpenMP's default */

int tt_simd_detected(void) {
    int detected = TT_LOAD(detected_level);
    if (detected < 0) {
        int level = TT_SIMD_GENERIC;
#if TT_X86_SIMD
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) level = TT_SIMD_AVX2;
        if (level == TT_SIMD_AVX2 && __builtin_cpu_supports("avx512f") &&
            __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("avx512bw"))
            level = TT_SIMD_AVX512;
#endif
        TT_STORE(detected_level, level);
        detected = level;
    }
    return detected;
}

int tt_simd_level(void) {
    int active = TT_LOAD(active_level);
    if (active < 0) {
        int level = tt_simd_detected();
        const char *env = getenv("TINYTAPE_SIMD");
        if (env != NULL) {
            int want = level;
            if (strcmp(env, "generic") == 0) want = TT_SIMD_GENERIC;
            else if (strcmp(env, "avx2") == 0) want = TT_SIMD_AVX2;
            if (want < level) level = want;
        }
        TT_STORE(active_level, level);
        active = level;
    }
    return active;
}

int tt_set_simd_level(int level) {
    int best = tt_simd_detected();
    if (level < TT_SIMD_GENERIC) level = TT_SIMD_GENERIC;
    level = level > best ? best : level;
    TT_STORE(active_level, level);
    return level;
}

const char *tt_simd_name(int level) {
    switch (level) {
        case TT_SIMD_AVX512: return "avx512";
        case TT_SIMD_AVX2: return "avx2";
        default: return "generic";
    }
}

int tt_have_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

void tt_set_num_threads(int n) { TT_STORE(num_threads, n < 1 ? 1 : n); }

int tt_get_num_threads(void) {
#ifdef _OPENMP
    int n = TT_LOAD(num_threads);
    if (n == 0) { /* first use: OpenMP's default; a concurrent set_num_threads wins */
        int unset = 0;
        n = omp_get_max_threads();
#if defined(__GNUC__) || defined(__clang__)
        if (!__atomic_compare_exchange_n(&num_threads, &unset, n, 0, __ATOMIC_RELAXED,
                                         __ATOMIC_RELAXED))
            n = unset;
#else
        (void)unset;
        num_threads = n;
#endif
    }
    return n;
#else
    return 1;
#endif
}

/* Below TT_MT_MIN_WORK a second thread costs more than it saves: threads sleep
 * between calls (OMP_WAIT_POLICY=PASSIVE, see tinytape/backend/_state.py), and
 * waking one took about 50 us on the development machine, about what a row
 * kernel needs for 500K elements on one core. On a 2-core Zen 3 VM (AVX2) an
 * empty 2-thread region after 200 us idle took 9 us (fastest of 200) to 15 us
 * (median): a lower threshold may pay there, but with the machine shared by
 * several jobs 2-thread timings of smaller kernels could not be told apart, so
 * the value stays the one measured on the quiet machine. */
#ifndef TT_MT_MIN_WORK
#define TT_MT_MIN_WORK 1000000.0
#endif

int tt_threads_for(double work) {
    int n = tt_get_num_threads();
    if (work < TT_MT_MIN_WORK) return 1;
    return n;
}

const char *tt_build_info(void) { return TT_BUILD_INFO; }

void *tt_aligned_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = TT_ALIGN;
    bytes = (bytes + TT_ALIGN - 1) / TT_ALIGN * TT_ALIGN;
#if defined(_WIN32)
    p = _aligned_malloc(bytes, TT_ALIGN);
#else
    if (posix_memalign(&p, TT_ALIGN, bytes) != 0) p = NULL;
#endif
    return p;
}

void tt_aligned_free(void *p) {
#if defined(_WIN32)
    _aligned_free(p);
#else
    free(p);
#endif
}
