/*
 * simd_x86.c -- the matrix product for x86-64 CPUs with AVX2 and FMA.  A context uses them only
 * where hess__simd_available() says the CPU has both (ctx->simd), so the default build stays
 * portable: only the functions below are compiled for AVX2, through the target attribute. Elsewhere
 * (other CPUs, other compilers) this file provides hess__simd_available() returning false and
 * nothing else.
 *
 * Matrix product.  C[m,n] = op(A)[m,k] op(B)[k,n], A(i,p) = a[i ai + p ap]
 * (any strides), op(B) given by its stored rows (b, ldb, tb).  op(B) is
 * copied in panels of KB x NB (rows zero-padded to NB columns), transposing
 * when tb, or read in place when it is not transposed and a whole panel wide;
 * each panel is swept by an MR x 8 register tile: per step, two loads of the
 * panel, MR broadcasts of A and 2 MR fused multiply-adds.  Edge tiles have
 * their own instances, with only their rows and 4 or 8 columns.  Small products --
 * those of small models, where BLAS's packing and call costs dominate -- are
 * the target; gemm.c decides which products come here.
 */
#include "kernels.h"

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

#else

bool hess__simd_available(void)
{
    return false;
}

#endif
