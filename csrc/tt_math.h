/* Branch-free exp for float and double that GCC can vectorize: no libm call,
 * no table, no branch, only arithmetic, min/max and integer bit moves.
 *
 * exp(x) = 2^n * exp(r), n = round(x * log2(e)), r = x - n*ln2 in [-ln2/2, ln2/2]:
 *   - n comes from the magic-number trick: adding 1.5*2^23 (1.5*2^52) rounds
 *     x*log2(e) to an integer in the low mantissa bits, so n needs no float->int
 *     conversion (which is undefined for NaN and slow to vectorize for double);
 *   - r uses a Cody-Waite split of ln2 so n*ln2_hi is exact;
 *   - exp(r) is a minimax polynomial in Horner form: degree 6 for float
 *     (Cephes-style; approximation error 2.6e-9), degree 11 for double
 *     (1.8e-17), one fused multiply-add per degree where the ISA has FMA;
 *   - 2^n is built from the exponent bits (memcpy punning, which compiles to a
 *     plain register move and vectorizes).
 * Inputs below about -87.7 (float) / -708.7 (double), i.e. where exp is
 * subnormal, give exactly 0 (softmax feeds x - max <= 0, so deep negatives
 * and -inf are common). Inputs above 88.37 (float) / 709.43 (double) give
 * +inf, a little before the true overflow point. NaN gives NaN. Measured
 * error elsewhere: float <= 1.5 ulp (1.2 with FMA), double <= 1 ulp.
 *
 * Configure before including (once per translation unit):
 *   TT_MATH_TARGET  function attribute of the SIMD path (default: none), so the
 *                   functions are compiled for the same ISA as their callers;
 *   TT_MATH_FMA     1 to use fused multiply-add (only where the ISA has FMA:
 *                   without hardware FMA, fma() is a slow library call).
 */
#ifndef TT_MATH_H
#define TT_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef TT_MATH_TARGET
#define TT_MATH_TARGET
#endif
#ifndef TT_MATH_FMA
#define TT_MATH_FMA 0
#endif

/* Forced inlining: the vectorizer only sees through calls that are inlined. */
#if defined(__GNUC__) || defined(__clang__)
#define TT_MATH_INLINE static inline __attribute__((always_inline, unused))
#else
#define TT_MATH_INLINE static inline
#endif

/* a * b + c, fused where the path has FMA (-std=c11 turns off contraction). */
TT_MATH_INLINE TT_MATH_TARGET float tt_madd_f32(float a, float b, float c) {
#if TT_MATH_FMA
    return fmaf(a, b, c);
#else
    return a * b + c;
#endif
}

TT_MATH_INLINE TT_MATH_TARGET double tt_madd_f64(double a, double b, double c) {
#if TT_MATH_FMA
    return fma(a, b, c);
#else
    return a * b + c;
#endif
}

/* Input limits: x is clamped to [lo, hi] = [-88, 89] (double: [-709, 710]),
 * where n lands in [-127, 128] ([-1023, 1024]) and 2^n's bits come out
 * exactly 0 and +inf, so the limits need nothing after the polynomial.
 * Kernels read the limits once per call from these volatile objects and pass
 * them in: a clamp to compile-time constants lets GCC fold the clamped lanes
 * to constant results, sink the polynomial under a branch and then not
 * vectorize the loop at all (-ftrapping-math forbids speculating it back);
 * against opaque values the clamp compiles to one min and one max. NaN fails
 * both compares and stays NaN. */
static volatile const float tt_exp_limits_f32[2] = {-88.0f, 89.0f};
static volatile const double tt_exp_limits_f64[2] = {-709.0, 710.0};

TT_MATH_INLINE TT_MATH_TARGET float tt_exp_f32(float x, float lo, float hi) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    x = x < lo ? lo : x;
    x = x > hi ? hi : x;
    float t = tt_madd_f32(x, 1.44269504088896341f, magic);
    float n = t - magic;
    float r = tt_madd_f32(n, -0.693359375f, x); /* ln2_hi: 9 bits, n*hi exact */
    r = tt_madd_f32(n, 2.12194440e-4f, r);      /* -ln2_lo */
    /* minimax for exp on [-ln2/2, ln2/2], relative error 2.6e-9 */
    float p = 0.0014061423f;
    p = tt_madd_f32(p, r, 0.008379059f);
    p = tt_madd_f32(p, r, 0.04166477f);
    p = tt_madd_f32(p, r, 0.16666365f);
    p = tt_madd_f32(p, r, 0.50000006f);
    p = tt_madd_f32(p, r, 1.0f);
    p = tt_madd_f32(p, r, 1.0f);
    /* t's bits are 0x4B400000 + n; unsigned arithmetic wraps instead of UB */
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

TT_MATH_INLINE TT_MATH_TARGET double tt_exp_f64(double x, double lo, double hi) {
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    x = x < lo ? lo : x;
    x = x > hi ? hi : x;
    double t = tt_madd_f64(x, 1.4426950408889634, magic);
    double n = t - magic;
    double r = tt_madd_f64(n, -6.93147180369123816490e-01, x); /* fdlibm ln2_hi */
    r = tt_madd_f64(n, -1.90821492927058770002e-10, r);        /* ln2_lo */
    /* minimax of degree 11 on [-ln2/2, ln2/2], relative error 1.8e-17 */
    double p = 2.2981328866020198e-08;
    p = tt_madd_f64(p, r, 2.762636556852593e-07);
    p = tt_madd_f64(p, r, 2.756426190540047e-06);
    p = tt_madd_f64(p, r, 2.480150434536771e-05);
    p = tt_madd_f64(p, r, 0.0001984126147461493);
    p = tt_madd_f64(p, r, 0.0013888888932471243);
    p = tt_madd_f64(p, r, 0.008333333337728652);
    p = tt_madd_f64(p, r, 0.04166666666657327);
    p = tt_madd_f64(p, r, 0.16666666666657265);
    p = tt_madd_f64(p, r, 0.5000000000000006);
    p = tt_madd_f64(p, r, 1.0000000000000007);
    p = tt_madd_f64(p, r, 1.0);
    /* t's bits are 0x4338000000000000 + n */
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4338000000000000ull + 1023ull) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif /* TT_MATH_H */
