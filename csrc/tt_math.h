/* Branch-free exp for float and double that GCC can vectorize: no libm call,
 * no table, no branch, only arithmetic, compares/selects and integer bit moves.
 *
 * exp(x) = 2^n * exp(r), n = round(x * log2(e)), r = x - n*ln2 in [-ln2/2, ln2/2]:
 *   - n comes from the magic-number trick: adding 1.5*2^23 (1.5*2^52) rounds
 *     x*log2(e) to an integer in the low mantissa bits, so n needs no float->int
 *     conversion (which is undefined for NaN and slow to vectorize for double);
 *   - r uses a Cody-Waite split of ln2 so n*ln2_hi is exact;
 *   - exp(r) is a polynomial: float Cephes expf (degree 7 with 1 + r leading,
 *     ~1 ulp), double Taylor to degree 13 (truncation < 5e-18 on the range);
 *   - 2^n is built from the exponent bits (memcpy punning, which compiles to a
 *     plain register move and vectorizes).
 * Inputs below about -87.7 (float) / -708.7 (double), i.e. where exp is
 * subnormal, give exactly 0 (softmax feeds x - max <= 0, so deep negatives
 * and -inf are common). Inputs above 88.37 (float) / 709.43 (double) give
 * +inf, a little before the true overflow point. NaN gives NaN. Accuracy
 * elsewhere: ~1 ulp (float), ~1-2 ulp (double).
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

/* Range limits. x is clamped to [lo, hi] (float [-88, 89], double [-709, 710]);
 * there n lands in [-127, 128] ([-1023, 1024]), whose 2^n bits are exactly 0
 * and +inf, so the limits need no select on the result. The bound a lane is
 * clamped to is rebuilt from x's own sign bit (x < lo is negative, x > hi
 * positive) rather than written as a constant: with a constant GCC folds the
 * clamped lanes to constant results, sinks the polynomial under a branch, and
 * cannot vectorize the loop (-ftrapping-math forbids speculating it back).
 * Masks built from a compare (-(uint64_t)(x < lo)) avoid that too, but GCC 12
 * cannot vectorize them for double on SSE2. NaN fails both compares and
 * stays NaN. */

TT_MATH_INLINE TT_MATH_TARGET float tt_exp_f32(float x) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    const uint32_t neg = -(bits >> 31);
    uint32_t lob = neg & 0xC2B00000u, hib = ~neg & 0x42B20000u; /* -88.0f, 89.0f */
    float lo, hi;
    memcpy(&lo, &lob, sizeof lo);
    memcpy(&hi, &hib, sizeof hi);
    x = x < -88.0f ? lo : x;
    x = x > 89.0f ? hi : x;
    float t = tt_madd_f32(x, 1.44269504088896341f, magic);
    float n = t - magic;
    float r = tt_madd_f32(n, -0.693359375f, x); /* ln2_hi: 9 bits, n*hi exact */
    r = tt_madd_f32(n, 2.12194440e-4f, r);      /* -ln2_lo */
    float p = 1.9875691500e-4f;
    p = tt_madd_f32(p, r, 1.3981999507e-3f);
    p = tt_madd_f32(p, r, 8.3334519073e-3f);
    p = tt_madd_f32(p, r, 4.1665795894e-2f);
    p = tt_madd_f32(p, r, 1.6666665459e-1f);
    p = tt_madd_f32(p, r, 5.0000001201e-1f);
    p = tt_madd_f32(p, r * r, r) + 1.0f;
    /* t's bits are 0x4B400000 + n; unsigned arithmetic wraps instead of UB */
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

TT_MATH_INLINE TT_MATH_TARGET double tt_exp_f64(double x) {
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    const uint64_t neg = -(bits >> 63);
    uint64_t lob = neg & 0xC086280000000000ull, hib = ~neg & 0x4086300000000000ull;
    double lo, hi; /* -709.0, 710.0 */
    memcpy(&lo, &lob, sizeof lo);
    memcpy(&hi, &hib, sizeof hi);
    x = x < -709.0 ? lo : x;
    x = x > 710.0 ? hi : x;
    double t = tt_madd_f64(x, 1.4426950408889634, magic);
    double n = t - magic;
    double r = tt_madd_f64(n, -6.93147180369123816490e-01, x); /* fdlibm ln2_hi */
    r = tt_madd_f64(n, -1.90821492927058770002e-10, r);        /* ln2_lo */
    /* Taylor coefficients 1/k!, k = 13..2, then 1 + r + r^2 * q */
    double q = 1.6059043836821613e-10;
    q = tt_madd_f64(q, r, 2.0876756987868099e-09);
    q = tt_madd_f64(q, r, 2.5052108385441720e-08);
    q = tt_madd_f64(q, r, 2.7557319223985893e-07);
    q = tt_madd_f64(q, r, 2.7557319223985888e-06);
    q = tt_madd_f64(q, r, 2.4801587301587302e-05);
    q = tt_madd_f64(q, r, 1.9841269841269841e-04);
    q = tt_madd_f64(q, r, 1.3888888888888889e-03);
    q = tt_madd_f64(q, r, 8.3333333333333333e-03);
    q = tt_madd_f64(q, r, 4.1666666666666667e-02);
    q = tt_madd_f64(q, r, 1.6666666666666667e-01);
    q = tt_madd_f64(q, r, 0.5);
    double p = tt_madd_f64(q, r * r, r) + 1.0;
    /* t's bits are 0x4338000000000000 + n */
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4338000000000000ull + 1023ull) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif /* TT_MATH_H */
