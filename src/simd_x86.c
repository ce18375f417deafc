/*
 * simd_x86.c -- kernels for x86-64 CPUs with AVX2 and FMA: the matrix product
 * and tanh.  A context uses them only where hess__simd_available() says the
 * CPU has both (ctx->simd), so the default build stays portable: only the
 * functions below are compiled for AVX2, through the target attribute.
 * Elsewhere (other CPUs, other compilers) this file provides
 * hess__simd_available() returning false and nothing else.
 *
 * Matrix product.  C[m,n] = op(A)[m,k] op(B)[k,n], A(i,p) = a[i ai + p ap]
 * (any strides), op(B) given by its stored rows (b, ldb, tb).  op(B) is
 * copied in panels of KB x NB (rows zero-padded to NB columns), transposing
 * when tb, or read in place when it is not transposed and a whole panel wide;
 * each panel is swept by an MR x 8 register tile: per step, two loads of the
 * panel, MR broadcasts of A and 2 MR fused multiply-adds.  Edge tiles have
 * their own instances, with only their rows and 4 or 8 columns.  Small products --
 * those of small models, where BLAS's packing and call costs dominate -- are
 * the target; ops_linalg.c decides which products come here.
 */
#include "hess_internal.h"

#if HESS_SIMD_X86

#include <immintrin.h>
#include <string.h>

#define SIMD_TARGET __attribute__((target("avx2,fma")))

bool hess__simd_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

enum { KB = 128, NB = 16, MR = 6 }; /* a panel: KB x NB doubles = 16 KiB of stack */

/* Copies op(B)[p0 .. p0+kb, j0 .. j0+nb] into panel[kb][NB], zeros past nb. */
static void pack(const double *b,
                 int64_t ldb,
                 bool tb,
                 int64_t p0,
                 int64_t kb,
                 int64_t j0,
                 int64_t nb,
                 double *panel)
{
    if (nb < NB)
        memset(panel, 0, (size_t)(kb * NB) * sizeof(double));
    if (!tb) { /* rows of op(B) are stored rows */
        for (int64_t p = 0; p < kb; p++)
            for (int64_t j = 0; j < nb; j++)
                panel[p * NB + j] = b[(p0 + p) * ldb + j0 + j];
    } else { /* op(B)(p, j) = b[j ldb + p]: read stored rows, write columns */
        for (int64_t j = 0; j < nb; j++) {
            const double *src = b + (j0 + j) * ldb + p0;
            for (int64_t p = 0; p < kb; p++)
                panel[p * NB + j] = src[p];
        }
    }
}

/* C[0..R, 0..cols] (+)= A[0..R, 0..kb] P[0..kb, 0..4V], P(p, j) =
 * panel[p ldp + j], cols <= 4 V (P holds zeros past cols).  acc: add to C,
 * else set.  Inlined with constant R and V, so an edge tile does only its own
 * rows and columns' work. */
SIMD_TARGET static inline __attribute__((always_inline)) void tile_rv(const int R,
                                                                      const int V,
                                                                      int64_t kb,
                                                                      const double *a,
                                                                      int64_t ai,
                                                                      int64_t ap,
                                                                      const double *panel,
                                                                      int64_t ldp,
                                                                      double *c,
                                                                      int64_t ldc,
                                                                      int cols,
                                                                      bool acc)
{
    const double *ar[MR];
    for (int i = 0; i < R; i++)
        ar[i] = a + i * ai;
    __m256d r[MR][2];
    for (int i = 0; i < R; i++)
        r[i][0] = r[i][1] = _mm256_setzero_pd();
    for (int64_t p = 0; p < kb; p++) {
        const double *br = panel + p * ldp;
        const __m256d b0 = _mm256_loadu_pd(br);
        const __m256d b1 = V == 2 ? _mm256_loadu_pd(br + 4) : b0;
        const int64_t o = p * ap;
#pragma GCC unroll 8
        for (int i = 0; i < R; i++) {
            const __m256d x = _mm256_broadcast_sd(ar[i] + o);
            r[i][0] = _mm256_fmadd_pd(x, b0, r[i][0]);
            if (V == 2)
                r[i][1] = _mm256_fmadd_pd(x, b1, r[i][1]);
        }
    }
    if (cols == 4 * V) {
        for (int i = 0; i < R; i++) {
            double *cr = c + i * ldc;
            for (int v = 0; v < V; v++) {
                if (acc)
                    r[i][v] = _mm256_add_pd(r[i][v], _mm256_loadu_pd(cr + 4 * v));
                _mm256_storeu_pd(cr + 4 * v, r[i][v]);
            }
        }
        return;
    }
    double t[MR][8];
    for (int i = 0; i < R; i++)
        for (int v = 0; v < V; v++)
            _mm256_storeu_pd(t[i] + 4 * v, r[i][v]);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < cols; j++)
            c[i * ldc + j] = acc ? c[i * ldc + j] + t[i][j] : t[i][j];
}

/* tile_rv for rows <= MR and cols <= 8, one instance per shape. */
SIMD_TARGET static void tile(int64_t kb,
                             const double *a,
                             int64_t ai,
                             int64_t ap,
                             const double *panel,
                             int64_t ldp,
                             double *c,
                             int64_t ldc,
                             int rows,
                             int cols,
                             bool acc)
{
#define TILE_CASE(R)                                                                               \
    case R:                                                                                        \
        if (cols > 4)                                                                              \
            tile_rv(R, 2, kb, a, ai, ap, panel, ldp, c, ldc, cols, acc);                           \
        else                                                                                       \
            tile_rv(R, 1, kb, a, ai, ap, panel, ldp, c, ldc, cols, acc);                           \
        return;
    switch (rows) {
        TILE_CASE(6)
        TILE_CASE(5)
        TILE_CASE(4)
        TILE_CASE(3)
        TILE_CASE(2)
        TILE_CASE(1)
    default:
        return;
    }
#undef TILE_CASE
}

SIMD_TARGET void hess__gemm_simd(int64_t m,
                                 int64_t n,
                                 int64_t k,
                                 const double *a,
                                 int64_t ai,
                                 int64_t ap,
                                 const double *b,
                                 int64_t ldb,
                                 bool tb,
                                 double *c)
{
    double panel[KB * NB];
    for (int64_t j0 = 0; j0 < n; j0 += NB) {
        const int64_t nb = n - j0 < NB ? n - j0 : NB;
        for (int64_t p0 = 0; p0 < k; p0 += KB) {
            const int64_t kb = k - p0 < KB ? k - p0 : KB;
            /* whole rows of 16 are read where they are stored */
            const bool direct = !tb && nb == NB;
            if (!direct)
                pack(b, ldb, tb, p0, kb, j0, nb, panel);
            const double *pb = direct ? b + p0 * ldb + j0 : panel;
            const int64_t ldp = direct ? ldb : NB;
            for (int64_t s = 0; s < nb; s += 8) {
                const int cols = nb - s < 8 ? (int)(nb - s) : 8;
                for (int64_t i = 0; i < m; i += MR) {
                    const int rows = m - i < MR ? (int)(m - i) : MR;
                    tile(kb, a + i * ai + p0 * ap, ai, ap, pb + s, ldp, c + i * n + j0 + s, n, rows,
                         cols, p0 > 0);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* tanh                                                                     */
/* ------------------------------------------------------------------------ */

/* The same two formulas as ops_unary.c's tanh1, four lanes at a time, both
 * computed for every lane and the right one kept: for |v| < 0.55 the
 * rational function of Lambert's continued fraction (same coefficients), for
 * larger |v| 1 - 2 / (e^(2|v|) + 1), with e^y = 2^q e^r, q = round(y / ln 2),
 * r = y - q ln 2 in two steps (|r| <= ln 2 / 2) and e^r by its Taylor
 * polynomial to degree 13 (truncation below 5e-18).  |v| is clamped to 20,
 * past which tanh is 1 in double.  NaN gives NaN.  Within 2 ulp of the true
 * value (test_ops checks 3 against tanhl). */
SIMD_TARGET void hess__tanh_simd(const double *x, double *y, int64_t n)
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

#else

bool hess__simd_available(void)
{
    return false;
}

#endif
