/* Row kernels, AVX-512 path: rowops_impl.inc compiled with the AVX-512 target
 * attribute (which prefers 512-bit vectors), so GCC vectorizes it with 64-byte
 * vectors and fused multiply-add. Chosen at run time by rowops.c; empty on
 * non-x86 builds. */
#include "rowops.h"

#if TT_X86_SIMD

#define TT_MATH_TARGET TT_TARGET_AVX512
#define TT_MATH_FMA 1
#include "tt_math.h"

#define RO_PATH avx512
#define RO_ATTR TT_TARGET_AVX512

#define RO_T float
#define RO_TS f32
#include "rowops_impl.inc"

#define RO_T double
#define RO_TS f64
#include "rowops_impl.inc"

const struct tt_rowops tt_rowops_avx512 = TT_ROWOPS_TABLE(avx512);

#else
typedef int tt_rowops_avx512_unused; /* ISO C forbids an empty translation unit */
#endif
