/* Row kernels, AVX2 + FMA path: rowops_impl.inc compiled with the AVX2 target
 * attribute, so GCC vectorizes it with 32-byte vectors and fused multiply-add.
 * Chosen at run time by rowops.c; empty on non-x86 builds. */
#include "rowops.h"

#if TT_X86_SIMD

#define TT_MATH_TARGET TT_TARGET_AVX2
#define TT_MATH_FMA 1
#include "tt_math.h"

#define RO_PATH avx2
#define RO_ATTR TT_TARGET_AVX2

#define RO_T float
#define RO_TS f32
#include "rowops_impl.inc"

#define RO_T double
#define RO_TS f64
#include "rowops_impl.inc"

const struct tt_rowops tt_rowops_avx2 = TT_ROWOPS_TABLE(avx2);

#else
typedef int tt_rowops_avx2_unused; /* ISO C forbids an empty translation unit */
#endif
