/*
 * curvature.h -- internal interface of the curvature-at-scale algorithms
 * (issue #15): Lanczos eigenpairs, stochastic Lanczos quadrature, trace and
 * diagonal estimators, CG and MINRES.  Nothing here is installed.
 *
 * The algorithms never see the graph: they work on a symmetric linear operator
 * given by a function that multiplies m vectors at once (hess__linop).  The
 * public functions (api.c) build one from the Hessian kept open
 * (hess__hvp_open); the tests build
 * one from dense matrices.
 *
 * Legend: N = the operator's dimension; a block of m vectors is an m x N
 * row-major array (row r is vector r), so a product of a block is matrix-
 * matrix work.  Scratch memory comes from the context's arena and is given
 * back before an algorithm returns.
 */
#ifndef HESS_CURVATURE_H
#define HESS_CURVATURE_H

#include "../hessian/second_order.h"

#include <stddef.h>
#include <stdint.h>

/* Probes that stochastic Lanczos quadrature runs side by side, one product
 * call per step for all of them. */
#define SLQ_BATCH 64

/* ------------------------------------------------------------------------ */
/* The operator                                                             */
/* ------------------------------------------------------------------------ */

/* A symmetric N x N operator A: apply writes Y = X A, i.e. row r of Y is
 * A x_r, for X and Y m x N row-major (m >= 1; X and Y do not overlap).  It
 * returns HESS_OK or an error status, recorded in the context when it has
 * one to record. */
typedef struct hess__linop {
    size_t n;
    hess_status (*apply)(void *user, size_t m, const double *X, double *Y);
    void *user;
} hess__linop;

/* One run of an algorithm: where errors and scratch go, whom progress is told,
 * and the products spent so far. */
typedef struct hess__curv_run {
    hess_context *ctx;             /* arena and error state */
    const hess__linop *op;         /* the operator */
    const hess_hessian_opts *opts; /* opts->progress, or NULL */
    const char *fn;                /* the public function, for messages */
    size_t done;                   /* products spent */
    size_t total;                  /* products planned, for progress */
} hess__curv_run;

/* Y = X A for m vectors; counts the products, checks that every value is
 * finite (HESS_ERR_NONFINITE otherwise) and reports progress (done, total),
 * which may cancel (HESS_ERR_CANCELLED).  Errors are recorded naming run->fn. */
HESS_INTERNAL hess_status hess__curv_apply(hess__curv_run *run,
                                           size_t m,
                                           const double *X,
                                           double *Y);

/* a * b doubles from the arena, or NULL with HESS_ERR_NOMEM recorded (also
 * when a * b * 8 overflows). */
HESS_INTERNAL double *hess__curv_doubles(hess__curv_run *run, size_t a, size_t b);

/* ------------------------------------------------------------------------ */
/* Random numbers: xoshiro256** seeded through splitmix64, one stream per    */
/* (seed, stream) pair, state in the caller's struct (no globals).           */
/* ------------------------------------------------------------------------ */

typedef struct hess__rng {
    uint64_t s[4];
    double spare; /* the second normal of the last Box-Muller pair */
    int has_spare;
} hess__rng;

HESS_INTERNAL void hess__rng_init(hess__rng *r, uint64_t seed, uint64_t stream);
HESS_INTERNAL uint64_t hess__rng_next(hess__rng *r);
/* Uniform in (0, 1), never 0 or 1. */
HESS_INTERNAL double hess__rng_uniform(hess__rng *r);
/* Standard normal (Box-Muller). */
HESS_INTERNAL double hess__rng_normal(hess__rng *r);
/* x[0..n-1] = independent +-1 (Rademacher). */
HESS_INTERNAL void hess__rng_signs(hess__rng *r, double *x, size_t n);
/* x[0..n-1] = independent standard normals. */
HESS_INTERNAL void hess__rng_normals(hess__rng *r, double *x, size_t n);

/* ------------------------------------------------------------------------ */
/* Small dense linear algebra (linalg.c)                                    */
/* ------------------------------------------------------------------------ */

HESS_INTERNAL double hess__dot(size_t n, const double *x, const double *y);
HESS_INTERNAL double hess__nrm2(size_t n, const double *x);
/* y += a x */
HESS_INTERNAL void hess__axpy(size_t n, double a, const double *x, double *y);

/* Eigenvalues and, optionally, eigenvector components of the symmetric
 * tridiagonal matrix with diagonal d[0..n-1] and off-diagonal e[0..n-2] (e
 * has room for n values; e[n-1] is scratch), by implicit QL with shifts.
 * On return d holds the eigenvalues in increasing order and each of the nz
 * rows of Z (row-major, nz x n) has been multiplied by the eigenvector
 * matrix: start from the identity for the eigenvectors (column j belongs to
 * d[j]), from e_0^T alone (nz = 1) for their first components.  Returns 0,
 * or -1 when an eigenvalue needed more than 60 sweeps (never seen for
 * finite input). */
HESS_INTERNAL int hess__tridiag_eig(size_t n, double *d, double *e, size_t nz, double *Z);

/* max_i |e_{i-1}| + |d_i| + |e_i|, the infinity norm of the tridiagonal
 * (d, e), a bound of its eigenvalues' magnitude.  O(n). */
HESS_INTERNAL double hess__tridiag_norm(size_t n, const double *d, const double *e);

/* Unit eigenvectors of the tridiagonal matrix of hess__tridiag_eig (d, e
 * unchanged) for cnt of its eigenvalues theta[] (as that function returns
 * them), by inverse iteration: three solves with T - theta I from a random
 * start (rng), each vector made orthogonal after each solve to those of the
 * earlier eigenvalues within 1e-3 ||T|| of its own (a cluster, as LAPACK's
 * dstein does).  Y (cnt x n, row c for theta[c]); work holds 5n doubles.
 * O(cnt n) for separated eigenvalues. */
HESS_INTERNAL void hess__tridiag_vectors(size_t n,
                                         const double *d,
                                         const double *e,
                                         size_t cnt,
                                         const double *theta,
                                         double *Y,
                                         double *work,
                                         hess__rng *rng);

/* The eigenvalues of the dense symmetric n x n matrix A (row-major, lower
 * triangle read, destroyed) and the last nz rows of its eigenvectors:
 * Householder tridiagonalisation, then hess__tridiag_eig.  w gets the
 * eigenvalues in increasing order, Z (nz x n, row-major) rows n - nz .. n - 1
 * of the orthonormal eigenvector matrix (column j belongs to w[j]): all of
 * it for nz = n, the last components alone for nz = 1 (a Lanczos residual
 * test: O(n^2) of the rotations' work instead of O(n^3)).  work holds 3n
 * doubles.  Returns as hess__tridiag_eig. */
HESS_INTERNAL int hess__sym_eig(size_t n, double *A, double *w, size_t nz, double *Z, double *work);

/* Makes w orthogonal to the nb orthonormal rows of B (nb x n) by classical
 * Gram-Schmidt, repeated once when it cancelled ("twice is enough"); h (nb
 * values, or NULL) receives the coefficients removed, B w, summed over the
 * passes.  hess__orth_local first takes w against the last @p local rows
 * alone (a Lanczos step's recurrence), so the whole-basis pass is seldom
 * repeated. */
HESS_INTERNAL void hess__orth_against(size_t nb, const double *B, size_t n, double *w, double *h);
HESS_INTERNAL void
hess__orth_local(size_t nb, const double *B, size_t n, double *w, double *h, size_t local);

/* w = a random unit vector (normal, from rng) orthogonal to the nb orthonormal
 * rows of B; zeros when nb >= n (there is none). */
HESS_INTERNAL void
hess__random_orth(size_t nb, const double *B, size_t n, double *w, hess__rng *rng);

/* Orthonormalises the m rows of Y (m x n) in place, so that the input rows are
 * y_i = sum_{c <= i} R[c][i] q_c.  R (m x m row-major, upper triangular, may be
 * NULL) receives the coefficients.  A row numerically in the span of the
 * earlier ones (its remainder below 1e-13 of its norm, or m > n) is replaced
 * by a normal random vector from rng made orthogonal to them (its R[i][i] is
 * then 0), so that the result always has m orthonormal rows (m <= n). */
HESS_INTERNAL void hess__orth_rows(size_t m, size_t n, double *Y, double *R, hess__rng *rng);

/* ------------------------------------------------------------------------ */
/* The algorithms.  Each validates its sizes (HESS_ERR_ARG naming run->fn),  */
/* takes its scratch from the arena and gives it back.                      */
/* ------------------------------------------------------------------------ */

/* k eigenpairs of A by Lanczos: for N > 256 (and 2k + 20 < N) a first cycle
 * with partial reorthogonalization on up to 160 vectors (128 MiB), then thick
 * restarts on 2k + 20 (at least 40) with full reorthogonalization; for smaller
 * N one unrestarted, fully reorthogonalized basis; which is HESS_EIG_*.  evals[0..k-1] in that
 * order, evecs (N x k column-major, may be NULL).  HESS_ERR_NONFINITE when they did not converge
 * within max_iter products (best estimates written).  tol > 0, k <= max_iter. */
HESS_INTERNAL hess_status hess__lanczos_eigs(hess__curv_run *run,
                                             size_t k,
                                             int which,
                                             double tol,
                                             size_t max_iter,
                                             uint64_t seed,
                                             double *evals,
                                             double *evecs);

/* Stochastic Lanczos quadrature: n_probes Rademacher probes, steps Lanczos
 * steps each (1 <= steps <= N; full reorthogonalization for N <= 256, else
 * partial), Gaussians of width sigma (0 = the default (max - min node) /
 * 100), at grid[0..n_grid-1] into density. */
HESS_INTERNAL hess_status hess__slq_density(hess__curv_run *run,
                                            size_t n_probes,
                                            size_t steps,
                                            double sigma,
                                            uint64_t seed,
                                            size_t n_grid,
                                            const double *grid,
                                            double *density);

/* Trace and diagonal estimates from budget products in all; method is
 * HESS_EST_HUTCHINSON, HESS_EST_HUTCHPP or HESS_EST_XTRACE.  A budget >= N
 * gives the exact value from N unit vectors (std_err 0).  std_err may be
 * NULL. */
HESS_INTERNAL hess_status hess__trace_est(
    hess__curv_run *run, int method, size_t budget, uint64_t seed, double *trace, double *std_err);
HESS_INTERNAL hess_status
hess__diag_est(hess__curv_run *run, int method, size_t budget, uint64_t seed, double *diag);

/* The smallest budget a method accepts below N products (1, 3, 4). */
HESS_INTERNAL size_t hess__est_min_budget(int method);

/* (A + shift I) x = b from x = 0: conjugate gradients (stops at curvature
 * p^T (A + shift I) p <= 0) or MINRES, until ||r|| <= tol ||b|| or max_iter
 * products.  info as hess_solve_info (never NULL here). */
HESS_INTERNAL hess_status hess__cg(hess__curv_run *run,
                                   const double *b,
                                   double shift,
                                   double tol,
                                   size_t max_iter,
                                   double *x,
                                   hess_solve_info *info);
HESS_INTERNAL hess_status hess__minres(hess__curv_run *run,
                                       const double *b,
                                       double shift,
                                       double tol,
                                       size_t max_iter,
                                       double *x,
                                       hess_solve_info *info);

#endif /* HESS_CURVATURE_H */
