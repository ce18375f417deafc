/*
 * gemm.h -- the kernel of the matrix product ops (ops/linalg.c),
 * header-only so that its one user compiles it with the product's call
 * (the products of small models are a few dozen multiply-adds): C = op(A)
 * op(B) in portable C, and the dispatch between it, the AVX2 kernel
 * (simd_x86.c) and CBLAS.  Legend: A [m,k], B [k,n], C [m,n] after the
 * optional transposes.
 */
#ifndef HESS_KERNEL_GEMM_H
#define HESS_KERNEL_GEMM_H

#include "kernels.h"

#include <string.h>

#ifdef HESSIAN_HAVE_CBLAS
#include <cblas.h>
/* Below this many multiply-adds the call overhead of BLAS outweighs its speed. */
#define HESS_BLAS_MIN_FLOPS 4096
#endif

/* C[m,n] = sum_p A(i,p) B(p,j) where A(i,p) = a[i*ai + p*ap], B(p,j) = b[p*bp + j*bj]. */
static inline void gemm_portable(int64_t m,
                                 int64_t n,
                                 int64_t k,
                                 const double *a,
                                 int64_t ai,
                                 int64_t ap,
                                 const double *b,
                                 int64_t bp,
                                 int64_t bj,
                                 double *c)
{
    if (k == 1) { /* an outer product: C(i,j) = A(i,0) B(0,j) */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                c[i * n + j] = a[i * ai] * b[j * bj];
        return;
    }
    if (n == 1) {
        /* matrix-vector: c[i] = sum_p A(i,p) b[p*bp] */
        for (int64_t i = 0; i < m; i++) {
            double acc = 0.0;
            for (int64_t p = 0; p < k; p++)
                acc += a[i * ai + p * ap] * b[p * bp];
            c[i] = acc;
        }
        return;
    }
    if (bj == 1) {
        /* Rows of B are contiguous: C[i,:] += A(i,p) B[p,:], four rows of C at a
         * time so that each loaded row of B is used four times.  Columns are
         * taken in panels that keep the four rows of C in L1. */
        memset(c, 0, (size_t)(m * n) * sizeof(double));
        const int64_t JB = 512;
        for (int64_t j0 = 0; j0 < n; j0 += JB) {
            const int64_t nj = n - j0 < JB ? n - j0 : JB;
            int64_t i = 0;
            for (; i + 4 <= m; i += 4) {
                double *c0 = c + i * n + j0, *c1 = c0 + n, *c2 = c1 + n, *c3 = c2 + n;
                for (int64_t p = 0; p < k; p++) {
                    const double *br = b + p * bp + j0;
                    const double a0 = a[i * ai + p * ap], a1 = a[(i + 1) * ai + p * ap];
                    const double a2 = a[(i + 2) * ai + p * ap], a3 = a[(i + 3) * ai + p * ap];
                    for (int64_t j = 0; j < nj; j++) {
                        const double bv = br[j];
                        c0[j] += a0 * bv;
                        c1[j] += a1 * bv;
                        c2[j] += a2 * bv;
                        c3[j] += a3 * bv;
                    }
                }
            }
            for (; i < m; i++) {
                double *c0 = c + i * n + j0;
                for (int64_t p = 0; p < k; p++) {
                    const double *br = b + p * bp + j0;
                    const double a0 = a[i * ai + p * ap];
                    for (int64_t j = 0; j < nj; j++)
                        c0[j] += a0 * br[j];
                }
            }
        }
    } else if (ap == 1 && bp == 1) {
        /* A rows and B columns contiguous: dot products. */
        for (int64_t i = 0; i < m; i++) {
            const double *ar = a + i * ai;
            for (int64_t j = 0; j < n; j++) {
                const double *bc = b + j * bj;
                double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                int64_t p = 0;
                for (; p + 4 <= k; p += 4) {
                    s0 += ar[p] * bc[p];
                    s1 += ar[p + 1] * bc[p + 1];
                    s2 += ar[p + 2] * bc[p + 2];
                    s3 += ar[p + 3] * bc[p + 3];
                }
                for (; p < k; p++)
                    s0 += ar[p] * bc[p];
                c[i * n + j] = (s0 + s1) + (s2 + s3);
            }
        }
    } else {
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t p = 0; p < k; p++)
                    s += a[i * ai + p * ap] * b[p * bp + j * bj];
                c[i * n + j] = s;
            }
    }
}

/* Products the AVX2 kernel (simd_x86.c) takes when the context may use it:
 * not the tiny ones (its panel and tile set-up cost more than they save),
 * and with BLAS built in not those above 2^19 multiply-adds, where BLAS's
 * cache blocking wins (the crossover is measured in bench/README.md). */
#define HESS_SIMD_MIN_DIM  4
#define HESS_SIMD_MAX_MACS ((int64_t)1 << 19)

/* Whether the AVX2 kernel takes an m x n x k product (when the context may
 * use it). */
static inline bool hess__gemm_simd_fits(int64_t m, int64_t n, int64_t k)
{
    return m >= HESS_SIMD_MIN_DIM && n >= HESS_SIMD_MIN_DIM && k >= HESS_SIMD_MIN_DIM
#ifdef HESSIAN_HAVE_CBLAS
           && m * n * k <= HESS_SIMD_MAX_MACS
#endif
        ;
}

/* Whether CBLAS takes an m x n x k product: built with it, and not a tiny one. */
static inline bool hess__gemm_blas_fits(int64_t m, int64_t n, int64_t k)
{
#ifdef HESSIAN_HAVE_CBLAS
    return m * n * k >= HESS_BLAS_MIN_FLOPS;
#else
    (void)m, (void)n, (void)k;
    return false;
#endif
}

static inline void hess__gemm_ld(bool simd,
                                 bool ta,
                                 bool tb,
                                 int64_t m,
                                 int64_t n,
                                 int64_t k,
                                 const double *a,
                                 int64_t lda,
                                 const double *b,
                                 int64_t ldb,
                                 double *c)
{
#if HESS_SIMD_X86
    if (simd && hess__gemm_simd_fits(m, n, k)) {
        hess__gemm_simd(m, n, k, a, ta ? 1 : lda, ta ? lda : 1, b, ldb, tb, c);
        return;
    }
#else
    (void)simd;
#endif
#ifdef HESSIAN_HAVE_CBLAS
    if (hess__gemm_blas_fits(m, n, k)) {
        cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    (int)m, (int)n, (int)k, 1.0, a, (int)lda, b, (int)ldb, 0.0, c, (int)n);
        return;
    }
#endif
    /* element strides of op(A)(i,p) and op(B)(p,j) */
    gemm_portable(m, n, k, a, ta ? 1 : lda, ta ? lda : 1, b, tb ? 1 : ldb, tb ? ldb : 1, c);
}

static inline void hess__gemm(bool simd,
                              bool ta,
                              bool tb,
                              int64_t m,
                              int64_t n,
                              int64_t k,
                              const double *a,
                              const double *b,
                              double *c)
{
    hess__gemm_ld(simd, ta, tb, m, n, k, a, ta ? m : k, b, tb ? k : n, c);
}

#endif /* HESS_KERNEL_GEMM_H */
