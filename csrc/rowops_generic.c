/* Row kernels, portable path: rowops_impl.inc compiled without target
 * attributes (SSE2 on x86-64, whatever the baseline ISA is elsewhere), no FMA. */
#include "rowops.h"

#define TT_MATH_FMA 0
#include "tt_math.h"

#define RO_PATH generic
#define RO_ATTR

#define RO_T float
#define RO_TS f32
#include "rowops_impl.inc"

#define RO_T double
#define RO_TS f64
#include "rowops_impl.inc"

const struct tt_rowops tt_rowops_generic = TT_ROWOPS_TABLE(generic);
