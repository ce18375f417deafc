/*
 * tanh.h -- the kernel of the tanh op (ops/logistic.c), header-only: that op is
 * its one user.  tanh without libm's (glibc computes every tanh through
 * expm1, a call per element): a branch-free rational function for small |v|
 * that vectorises, 1 - 2 / (exp(2|v|) + 1) beyond, and an AVX2+FMA copy of
 * the same formulas for CPUs that have it.
 */
#ifndef HESS_KERNEL_TANH_H
#define HESS_KERNEL_TANH_H

#include "kernels.h"

#include <string.h>

static double pick(int64_t sel, double a, double b)
{
    int64_t ia, ib;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    ia = (ia & sel) | (ib & ~sel);
    memcpy(&a, &ia, sizeof a);
    return a;
}

/* tanh for |v| < 0.55 (tanh1 below says how); for larger |v| the argument is
 * clamped to 0.55, so that any v gives a finite value.  No branch and no call,
 * so that a loop of it vectorises. */
static double tanh_small(double v)
{
    const double a = fabs(v), d055 = a - 0.55;
    uint64_t u;
    memcpy(&u, &d055, sizeof u);
    const double as = pick(-(int64_t)(u >> 63), a, 0.55); /* a < 0.55 ? a : 0.55 */
    const double z = as * as;
    const double n = ((4.933338266671600004933e-7 * z + 2.930402930402930402930e-4) * z +
                      2.222222222222222222222e-2) *
                         z +
                     3.333333333333333333333e-1;
    const double d = (((4.933338266671600004933e-7 * z + 3.108003108003108003108e-4) * z +
                       2.564102564102564102564e-2) *
                          z +
                      4.666666666666666666667e-1) *
                         z +
                     1.0;
    return copysign(as - as * z * n / d, v);
}

/* tanh without libm's (glibc computes every tanh through expm1).  For
 * |v| < 0.55 a rational function: Lambert's continued fraction
 * tanh v = v / (1 + z / (3 + z / (5 + ...))), z = v^2, cut after 15 = 2*7 + 1
 * (truncation error below 1e-18 on that range), written as v - v z N(z) / D(z)
 * so that the rounding of N / D is damped by z / 3 <= 0.1; coefficients are
 * the exact rationals of that convergent, rounded.  For |v| >= 0.55,
 * 1 - 2 / (exp(2|v|) + 1) >= 0.5 cancels nothing.  Both are within 1.5 ulp of
 * the true value (checked against 50-digit arithmetic at 80,000 points and
 * against tanhl at 10^6: worst 1.47 ulp, in the exp branch). */
static double tanh1(double v)
{
    const double a = fabs(v);
    if (a < 0.55)
        return tanh_small(v);
    if (a <= 20.0)
        return copysign(1.0 - 2.0 / (exp(2.0 * a) + 1.0), v);
    if (a > 20.0) /* 1 - tanh < 2^-56: exactly 1 in double */
        return copysign(1.0, v);
    return v; /* NaN */
}

#if HESS_SIMD_X86
#include <immintrin.h>

/* The same two formulas as tanh1, four lanes at a time, both
 * computed for every lane and the right one kept: for |v| < 0.55 the
 * rational function of Lambert's continued fraction (same coefficients), for
 * larger |v| 1 - 2 / (e^(2|v|) + 1), with e^y = 2^q e^r, q = round(y / ln 2),
 * r = y - q ln 2 in two steps (|r| <= ln 2 / 2) and e^r by its Taylor
 * polynomial to degree 13 (truncation below 5e-18).  |v| is clamped to 20,
 * past which tanh is 1 in double.  NaN gives NaN.  Within 2 ulp of the true
 * value (test_ops checks 3 against tanhl). */
__attribute__((target("avx2,fma"))) static void tanh_avx2(const double *x, double *y, int64_t n)
{
    const __m256d sign = _mm256_set1_pd(-0.0), c055 = _mm256_set1_pd(0.55),
                  one = _mm256_set1_pd(1.0), two = _mm256_set1_pd(2.0), c20 = _mm256_set1_pd(20.0),
                  inv_ln2 = _mm256_set1_pd(1.4426950408889634),
                  ln2_hi = _mm256_set1_pd(6.93147180369123816490e-01),
                  ln2_lo = _mm256_set1_pd(1.90821492927058770002e-10),
                  shifter = _mm256_set1_pd(0x1.8p52);
    /* 1/13!, 1/12!, ..., 1/2!, 1, 1 */
    static const double ec[14] = {1.0 / 6227020800.0,
                                  1.0 / 479001600.0,
                                  1.0 / 39916800.0,
                                  1.0 / 3628800.0,
                                  1.0 / 362880.0,
                                  1.0 / 40320.0,
                                  1.0 / 5040.0,
                                  1.0 / 720.0,
                                  1.0 / 120.0,
                                  1.0 / 24.0,
                                  1.0 / 6.0,
                                  0.5,
                                  1.0,
                                  1.0};
    int64_t i = 0;
    for (; i < n; i += 4) {
        double buf[4];
        const bool part = n - i < 4;
        const double *src = x + i;
        if (part) { /* the last 1-3 elements, padded with zeros */
            for (int j = 0; j < 4; j++)
                buf[j] = i + j < n ? x[i + j] : 0.0;
            src = buf;
        }
        const __m256d v = _mm256_loadu_pd(src);
        const __m256d a = _mm256_andnot_pd(sign, v);
        /* |v| < 0.55: as - as z N(z) / D(z) */
        const __m256d as = _mm256_min_pd(a, c055), z = _mm256_mul_pd(as, as);
        __m256d num = _mm256_fmadd_pd(_mm256_set1_pd(4.933338266671600004933e-7), z,
                                      _mm256_set1_pd(2.930402930402930402930e-4));
        num = _mm256_fmadd_pd(num, z, _mm256_set1_pd(2.222222222222222222222e-2));
        num = _mm256_fmadd_pd(num, z, _mm256_set1_pd(3.333333333333333333333e-1));
        __m256d den = _mm256_fmadd_pd(_mm256_set1_pd(4.933338266671600004933e-7), z,
                                      _mm256_set1_pd(3.108003108003108003108e-4));
        den = _mm256_fmadd_pd(den, z, _mm256_set1_pd(2.564102564102564102564e-2));
        den = _mm256_fmadd_pd(den, z, _mm256_set1_pd(4.666666666666666666667e-1));
        den = _mm256_fmadd_pd(den, z, one);
        /* |v| >= 0.55: 1 - 2 / (e^(2|v|) + 1) */
        const __m256d yv = _mm256_mul_pd(two, _mm256_min_pd(a, c20));
        const __m256d qs = _mm256_fmadd_pd(yv, inv_ln2, shifter); /* q in the low bits */
        const __m256d q = _mm256_sub_pd(qs, shifter);
        __m256d r = _mm256_fnmadd_pd(q, ln2_hi, yv);
        r = _mm256_fnmadd_pd(q, ln2_lo, r);
        __m256d e = _mm256_set1_pd(ec[0]);
        for (int j = 1; j < 14; j++)
            e = _mm256_fmadd_pd(e, r, _mm256_set1_pd(ec[j]));
        /* times 2^q: q added to the exponent field */
        e = _mm256_castsi256_pd(_mm256_add_epi64(_mm256_castpd_si256(e),
                                                 _mm256_slli_epi64(_mm256_castpd_si256(qs), 52)));
        /* one division for both: base - num / den per lane */
        const __m256d lt = _mm256_cmp_pd(a, c055, _CMP_LT_OQ);
        const __m256d qn = _mm256_blendv_pd(two, _mm256_mul_pd(_mm256_mul_pd(as, z), num), lt);
        const __m256d qd = _mm256_blendv_pd(_mm256_add_pd(e, one), den, lt);
        __m256d t = _mm256_sub_pd(_mm256_blendv_pd(one, as, lt), _mm256_div_pd(qn, qd));
        t = _mm256_or_pd(t, _mm256_and_pd(v, sign));                   /* the sign of v */
        t = _mm256_blendv_pd(t, v, _mm256_cmp_pd(v, v, _CMP_UNORD_Q)); /* NaN stays */
        if (part) {
            _mm256_storeu_pd(buf, t);
            for (int j = 0; i + j < n; j++)
                y[i + j] = buf[j];
        } else {
            _mm256_storeu_pd(y + i, t);
        }
    }
}

#endif

/* y = tanh(x) over n values: the AVX2 kernel when simd (the same formulas,
 * both for every lane); else two passes: the rational branch for every
 * element, vectorised, then the exp branch (a call per element) only where
 * |v| >= 0.55 or v is NaN. */
static inline void hess__tanh_kernel(bool simd, const double *x, double *y, int64_t n)
{
#if HESS_SIMD_X86
    if (simd) {
        tanh_avx2(x, y, n);
        return;
    }
#else
    (void)simd;
#endif
    for (int64_t i = 0; i < n; i++)
        y[i] = tanh_small(x[i]);
    for (int64_t i = 0; i < n; i++)
        if (!(fabs(x[i]) < 0.55))
            y[i] = tanh1(x[i]);
}

#endif /* HESS_KERNEL_TANH_H */
