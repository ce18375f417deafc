/*
 * test_curvature.c -- curvature at scale (issue #15): the algorithms of
 * src/curvature against dense symmetric matrices through a linear operator
 * (eigenpairs against the test's own Jacobi eigensolver, exact traces and
 * diagonals of low-rank matrices, Hutchinson's error against its standard
 * error, SLQ against the smoothed exact spectrum, CG and MINRES against a
 * dense solve), then the public functions on small real graphs against
 * hess_hessian's dense matrix, and their argument checks, cancellation and
 * reproducibility.
 */
#include "alloc.h"
#include "check.h"
#include "curvature/curvature.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Dense references                                                         */
/* ------------------------------------------------------------------------ */

/* Cyclic Jacobi: w increasing, V (n x n row-major) the eigenvectors as columns.
 * A (n x n, symmetric) is destroyed. */
static void jacobi_eig(size_t n, double *A, double *w, double *V)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            V[i * n + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, tot = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                tot += A[i * n + j] * A[i * n + j];
                if (i != j)
                    off += A[i * n + j] * A[i * n + j];
            }
        if (off <= 1e-32 * tot || off == 0)
            break;
        for (size_t p = 0; p < n; p++)
            for (size_t q = p + 1; q < n; q++) {
                const double apq = A[p * n + q];
                if (apq == 0)
                    continue;
                /* the rotation that zeroes A[p][q] */
                const double theta = (A[q * n + q] - A[p * n + p]) / (2 * apq);
                const double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                const double c = 1 / sqrt(t * t + 1), s = t * c;
                for (size_t k = 0; k < n; k++) { /* columns p, q */
                    const double akp = A[k * n + p], akq = A[k * n + q];
                    A[k * n + p] = c * akp - s * akq;
                    A[k * n + q] = s * akp + c * akq;
                }
                for (size_t k = 0; k < n; k++) { /* rows p, q */
                    const double apk = A[p * n + k], aqk = A[q * n + k];
                    A[p * n + k] = c * apk - s * aqk;
                    A[q * n + k] = s * apk + c * aqk;
                }
                for (size_t k = 0; k < n; k++) {
                    const double vkp = V[k * n + p], vkq = V[k * n + q];
                    V[k * n + p] = c * vkp - s * vkq;
                    V[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (size_t i = 0; i < n; i++)
        w[i] = A[i * n + i];
    for (size_t i = 0; i < n; i++) { /* selection sort, columns along */
        size_t lo = i;
        for (size_t j = i + 1; j < n; j++)
            if (w[j] < w[lo])
                lo = j;
        double t = w[i];
        w[i] = w[lo];
        w[lo] = t;
        for (size_t k = 0; k < n; k++) {
            t = V[k * n + i];
            V[k * n + i] = V[k * n + lo];
            V[k * n + lo] = t;
        }
    }
}

/* Eigenvalues of the symmetric A (not changed), increasing; V may be NULL. */
static void ref_eig(size_t n, const double *A, double *w, double *V)
{
    double *a = malloc(n * n * sizeof *a), *v = malloc(n * n * sizeof *v);
    memcpy(a, A, n * n * sizeof *a);
    jacobi_eig(n, a, w, v);
    if (V)
        memcpy(V, v, n * n * sizeof *v);
    free(a);
    free(v);
}

/* x = A^{-1} b by Gaussian elimination with partial pivoting. */
static void dense_solve(size_t n, const double *A, const double *b, double *x)
{
    double *M = malloc(n * (n + 1) * sizeof *M);
    for (size_t i = 0; i < n; i++) {
        memcpy(M + i * (n + 1), A + i * n, n * sizeof *M);
        M[i * (n + 1) + n] = b[i];
    }
    for (size_t c = 0; c < n; c++) {
        size_t piv = c;
        for (size_t r = c + 1; r < n; r++)
            if (fabs(M[r * (n + 1) + c]) > fabs(M[piv * (n + 1) + c]))
                piv = r;
        for (size_t k = 0; k <= n; k++) {
            const double t = M[c * (n + 1) + k];
            M[c * (n + 1) + k] = M[piv * (n + 1) + k];
            M[piv * (n + 1) + k] = t;
        }
        for (size_t r = c + 1; r < n; r++) {
            const double f = M[r * (n + 1) + c] / M[c * (n + 1) + c];
            for (size_t k = c; k <= n; k++)
                M[r * (n + 1) + k] -= f * M[c * (n + 1) + k];
        }
    }
    for (size_t c = n; c-- > 0;) {
        double s = M[c * (n + 1) + n];
        for (size_t k = c + 1; k < n; k++)
            s -= M[c * (n + 1) + k] * x[k];
        x[c] = s / M[c * (n + 1) + c];
    }
    free(M);
}

static double frob(size_t n, const double *A)
{
    double s = 0;
    for (size_t i = 0; i < n * n; i++)
        s += A[i] * A[i];
    return sqrt(s);
}

static double vnorm(size_t n, const double *x)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i] * x[i];
    return sqrt(s);
}

static double gauss(uint64_t *s)
{
    const double u1 = rnd_uniform(s, 1e-300, 1), u2 = rnd_uniform(s, 0, 1);
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

/* A = U diag(lambda) U^T with U a random orthogonal matrix (Gram-Schmidt of
 * normals, twice); U (n x n, columns the eigenvectors) may be NULL. */
static double *spectrum_matrix(size_t n, const double *lambda, uint64_t seed, double *Uout)
{
    double *U = malloc(n * n * sizeof *U), *A = calloc(n * n, sizeof *A);
    for (size_t i = 0; i < n * n; i++)
        U[i] = gauss(&seed);
    for (size_t c = 0; c < n; c++) { /* column c of U = row c of this array */
        double *u = U + c * n;
        for (int pass = 0; pass < 2; pass++)
            for (size_t d = 0; d < c; d++) {
                double t = 0;
                for (size_t i = 0; i < n; i++)
                    t += U[d * n + i] * u[i];
                for (size_t i = 0; i < n; i++)
                    u[i] -= t * U[d * n + i];
            }
        const double nr = vnorm(n, u);
        for (size_t i = 0; i < n; i++)
            u[i] /= nr;
    }
    for (size_t c = 0; c < n; c++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                A[i * n + j] += lambda[c] * U[c * n + i] * U[c * n + j];
    for (size_t i = 0; i < n; i++) /* exactly symmetric */
        for (size_t j = 0; j < i; j++)
            A[i * n + j] = A[j * n + i] = 0.5 * (A[i * n + j] + A[j * n + i]);
    if (Uout)
        for (size_t c = 0; c < n; c++)
            for (size_t i = 0; i < n; i++)
                Uout[i * n + c] = U[c * n + i];
    free(U);
    return A;
}

/* ------------------------------------------------------------------------ */
/* A dense matrix as a linear operator                                      */
/* ------------------------------------------------------------------------ */

typedef struct dense_op {
    size_t n;
    const double *A;
    size_t calls, products;
    int poison; /* > 0: the poison-th product holds a NaN */
} dense_op;

static hess_status dense_apply(void *user, size_t m, const double *X, double *Y)
{
    dense_op *d = user;
    const size_t n = d->n;
    for (size_t r = 0; r < m; r++)
        for (size_t i = 0; i < n; i++) {
            double s = 0;
            for (size_t j = 0; j < n; j++)
                s += d->A[i * n + j] * X[r * n + j];
            Y[r * n + i] = s;
        }
    d->calls++;
    for (size_t r = 0; r < m; r++)
        if (++d->products == (size_t)d->poison)
            Y[r * n] = NAN;
    return HESS_OK;
}

typedef struct fixture {
    hess_context *ctx;
    dense_op d;
    hess__linop op;
    hess__curv_run run;
} fixture;

static void fixture_init(fixture *f, hess_context *ctx, size_t n, const double *A)
{
    memset(f, 0, sizeof *f);
    f->ctx = ctx;
    f->d.n = n;
    f->d.A = A;
    f->op.n = n;
    f->op.apply = dense_apply;
    f->op.user = &f->d;
    f->run.ctx = ctx;
    f->run.op = &f->op;
    f->run.fn = "test";
}

/* a fresh run on the same operator */
static hess__curv_run *fresh(fixture *f)
{
    f->run.done = f->run.total = 0;
    f->d.calls = f->d.products = 0;
    return &f->run;
}

/* Arena memory is given back: the context's mark does not move. */
static void assert_same_mark(const hess_mark *a, const hess_mark *b)
{
    assert_true(a->block == b->block && a->used == b->used && a->nodes == b->nodes);
}

/* ------------------------------------------------------------------------ */
/* Small dense eigenproblems of the library                                 */
/* ------------------------------------------------------------------------ */

static void test_tridiag_and_dense_eig(void **state)
{
    (void)state;
    enum { N = 30 };
    uint64_t seed = 5;
    double d[N], e[N], T[N * N] = {0}, w[N], V[N * N], Z[N * N];
    for (int i = 0; i < N; i++) {
        d[i] = rnd_uniform(&seed, -3, 3);
        e[i] = i + 1 < N ? rnd_uniform(&seed, -1, 1) : 0;
    }
    e[7] = 0; /* a split block */
    for (int i = 0; i < N; i++) {
        T[i * N + i] = d[i];
        if (i + 1 < N)
            T[i * N + i + 1] = T[(i + 1) * N + i] = e[i];
    }
    ref_eig(N, T, w, V);
    for (int i = 0; i < N * N; i++)
        Z[i] = i % (N + 1) == 0;
    assert_int_equal(hess__tridiag_eig(N, d, e, N, Z), 0);
    assert_close_array(d, w, N, 0, 1e-13);
    for (int c = 0; c < N; c++) { /* T z = lambda z */
        for (int i = 0; i < N; i++) {
            double s = 0;
            for (int j = 0; j < N; j++)
                s += T[i * N + j] * Z[j * N + c];
            assert_close(s, d[c] * Z[i * N + c], 0, 1e-13);
        }
    }

    /* dense: Householder + QL against Jacobi */
    double A[N * N], A2[N * N], work[3 * N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++)
            A[i * N + j] = A[j * N + i] = rnd_uniform(&seed, -1, 1);
    memcpy(A2, A, sizeof A);
    ref_eig(N, A, w, V);
    assert_int_equal(hess__sym_eig(N, A2, d, N, Z, work), 0);
    assert_close_array(d, w, N, 0, 1e-13);
    for (int c = 0; c < N; c++) {
        double dot = 0;
        for (int i = 0; i < N; i++) {
            double s = 0;
            for (int j = 0; j < N; j++)
                s += A[i * N + j] * Z[j * N + c];
            assert_close(s, d[c] * Z[i * N + c], 0, 1e-13);
            dot += Z[i * N + c] * V[i * N + c];
        }
        assert_close(fabs(dot), 1, 1e-12, 0);
    }
    /* the last row alone (Lanczos' residual test): the same eigenvalues bit for
     * bit, and the same last components as the full eigenvector matrix */
    double d1[N], zlast[N];
    memcpy(A2, A, sizeof A);
    assert_int_equal(hess__sym_eig(N, A2, d1, 1, zlast, work), 0);
    assert_memory_equal(d1, d, sizeof d1);
    assert_memory_equal(zlast, Z + (N - 1) * N, sizeof zlast);
    /* 1 x 1 and 0 x 0 */
    double one = 4, z1 = 1, e1 = 0;
    assert_int_equal(hess__tridiag_eig(1, &one, &e1, 1, &z1), 0);
    assert_true(one == 4 && z1 == 1);
    assert_int_equal(hess__tridiag_eig(0, NULL, NULL, 0, NULL), 0);
}

/* Max |Y Y^T - I| over the cnt rows of Y (cnt x n). */
static double orth_error(size_t cnt, size_t n, const double *Y)
{
    double err = 0;
    for (size_t a = 0; a < cnt; a++)
        for (size_t b = 0; b <= a; b++) {
            double dot = 0;
            for (size_t i = 0; i < n; i++)
                dot += Y[a * n + i] * Y[b * n + i];
            err = fmax(err, fabs(dot - (a == b)));
        }
    return err;
}

/* ||T y - theta y|| for the tridiagonal (d, e) and a unit y. */
static double
tri_residual(size_t n, const double *d, const double *e, double theta, const double *y)
{
    double r = 0;
    for (size_t i = 0; i < n; i++) {
        double t = (d[i] - theta) * y[i];
        if (i > 0)
            t += e[i - 1] * y[i - 1];
        if (i + 1 < n)
            t += e[i] * y[i + 1];
        r += t * t;
    }
    return sqrt(r);
}

/* Inverse iteration on tridiagonals: each vector against QL's on a random
 * matrix; on Wilkinson's W21+ (pairs of eigenvalues 1e-14 apart and less)
 * and on a split matrix of two equal blocks (every eigenvalue double), an
 * orthonormal set with residuals at rounding: a cluster's vectors span its
 * invariant subspace. */
static void test_tridiag_vectors(void **state)
{
    (void)state;
    enum { N = 40, W = 21 };
    uint64_t seed = 12;
    hess__rng rng;
    hess__rng_init(&rng, 1, 0);
    double d[N], e[N], dq[N], eq[N], Z[N * N], Y[N * N], work[5 * N];
    for (int i = 0; i < N; i++) {
        d[i] = rnd_uniform(&seed, -2, 2);
        e[i] = i + 1 < N ? rnd_uniform(&seed, -1, 1) : 0;
    }
    memcpy(dq, d, sizeof d);
    memcpy(eq, e, sizeof e);
    for (int i = 0; i < N * N; i++)
        Z[i] = i % (N + 1) == 0;
    assert_int_equal(hess__tridiag_eig(N, dq, eq, N, Z), 0);
    hess__tridiag_vectors(N, d, e, N, dq, Y, work, &rng);
    for (int c = 0; c < N; c++) {
        double dot = 0;
        for (int i = 0; i < N; i++)
            dot += Y[c * N + i] * Z[i * N + c];
        assert_close(fabs(dot), 1, 1e-12, 0);
        assert_true(tri_residual(N, d, e, dq[c], Y + c * N) <= 1e-14 * 4);
    }
    assert_true(orth_error(N, N, Y) <= 1e-13);

    /* W21+: d = |10 - i|, e = 1 */
    for (int i = 0; i < W; i++) {
        d[i] = fabs(10.0 - i);
        e[i] = i + 1 < W ? 1 : 0;
    }
    memcpy(dq, d, W * sizeof *d);
    memcpy(eq, e, W * sizeof *e);
    assert_int_equal(hess__tridiag_eig(W, dq, eq, 0, NULL), 0);
    assert_true(dq[W - 1] - dq[W - 2] < 1e-13); /* the top pair */
    hess__tridiag_vectors(W, d, e, W, dq, Y, work, &rng);
    assert_true(orth_error(W, W, Y) <= 1e-12);
    for (int c = 0; c < W; c++)
        assert_true(tri_residual(W, d, e, dq[c], Y + c * W) <= 1e-13 * 12);

    /* two equal blocks of 10: every eigenvalue twice, exactly */
    for (int i = 0; i < 20; i++) {
        d[i] = 0.3 * (i % 10) - 1;
        e[i] = i % 10 == 9 ? 0 : 0.5;
    }
    memcpy(dq, d, 20 * sizeof *d);
    memcpy(eq, e, 20 * sizeof *e);
    assert_int_equal(hess__tridiag_eig(20, dq, eq, 0, NULL), 0);
    hess__tridiag_vectors(20, d, e, 20, dq, Y, work, &rng);
    assert_true(orth_error(20, 20, Y) <= 1e-12);
    for (int c = 0; c < 20; c++)
        assert_true(tri_residual(20, d, e, dq[c], Y + c * 20) <= 1e-13 * 3);

    /* 1 x 1 */
    const double one = -7, none = 0, th = -7;
    double y1 = 0;
    hess__tridiag_vectors(1, &one, &none, 1, &th, &y1, work, &rng);
    assert_true(fabs(y1) == 1);
    /* more vectors than the dimension: the second is orthogonal to the first,
     * 0, and comes back as a random unit vector rather than a NaN */
    const double th2[2] = {-7, -7};
    double y2[2] = {0, 0};
    hess__tridiag_vectors(1, &one, &none, 2, th2, y2, work, &rng);
    assert_true(fabs(y2[0]) == 1 && fabs(y2[1]) == 1);
}

static void test_orth_rows_rank_deficient(void **state)
{
    (void)state;
    enum { M = 6, N = 20 };
    uint64_t seed = 9;
    double Y[M * N], Y0[M * N], R[M * M];
    for (int i = 0; i < 3 * N; i++)
        Y[i] = rnd_uniform(&seed, -1, 1);
    for (int j = 0; j < N; j++) { /* rows 3, 4 dependent, row 5 zero */
        Y[3 * N + j] = Y[j] - 2 * Y[N + j];
        Y[4 * N + j] = 0.5 * Y[2 * N + j];
        Y[5 * N + j] = 0;
    }
    memcpy(Y0, Y, sizeof Y);
    hess__rng rng;
    hess__rng_init(&rng, 1, 2);
    hess__orth_rows(M, N, Y, R, &rng);
    for (int a = 0; a < M; a++)
        for (int b = 0; b < M; b++)
            assert_close(hess__dot(N, Y + a * N, Y + b * N), a == b, 0, 1e-14);
    for (int i = 3; i < M; i++)
        assert_true(R[i * M + i] == 0);
    for (int i = 0; i < M; i++) /* y_i = sum_c R[c][i] q_c */
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int c = 0; c < M; c++)
                s += R[c * M + i] * Y[c * N + j];
            assert_close(s, Y0[i * N + j], 0, 1e-13);
        }
}

/* ------------------------------------------------------------------------ */
/* Lanczos eigenpairs                                                       */
/* ------------------------------------------------------------------------ */

/* Checks evals against the sorted spectrum lam (increasing) for which, and
 * each evecs column x: ||A x - lambda x|| <= rtol ||A|| and |x . u| = 1. */
static void check_pairs(size_t n,
                        const double *A,
                        const double *lam,
                        const double *U,
                        size_t k,
                        int which,
                        const double *evals,
                        const double *evecs,
                        double rtol)
{
    const double anorm = fmax(fabs(lam[0]), fabs(lam[n - 1]));
    size_t *idx = malloc(n * sizeof *idx);
    for (size_t i = 0; i < n; i++)
        idx[i] = which == HESS_EIG_SMALLEST ? i : n - 1 - i;
    if (which == HESS_EIG_MAGNITUDE) /* by |lambda|, insertion sort */
        for (size_t i = 1; i < n; i++) {
            size_t t = idx[i], q = i;
            while (q > 0 && fabs(lam[idx[q - 1]]) < fabs(lam[t])) {
                idx[q] = idx[q - 1];
                q--;
            }
            idx[q] = t;
        }
    for (size_t c = 0; c < k; c++) {
        assert_close(evals[c], lam[idx[c]], 0, rtol * anorm);
        if (!evecs)
            continue;
        const double *x = evecs + c * n;
        assert_close(vnorm(n, x), 1, 1e-12, 0);
        double res = 0;
        for (size_t i = 0; i < n; i++) {
            double s = -evals[c] * x[i];
            for (size_t j = 0; j < n; j++)
                s += A[i * n + j] * x[j];
            res += s * s;
        }
        assert_true(sqrt(res) <= rtol * anorm);
        if (U) { /* simple eigenvalues: the vector itself */
            double dot = 0;
            for (size_t i = 0; i < n; i++)
                dot += x[i] * U[i * n + idx[c]];
            assert_close(fabs(dot), 1, 1e-10, 0);
        }
    }
    free(idx);
}

static void test_lanczos_restarted(void **state)
{
    (void)state;
    /* N = 400 > 256: the basis holds 40 vectors and restarts */
    enum { N = 400, K = 4 };
    hess_context *ctx = test_context();
    double *lam = malloc(N * sizeof *lam), *U = malloc(N * N * sizeof *U);
    for (int i = 0; i < N; i++) /* -3..5 with a gap at each end */
        lam[i] = -2.0 + 6.0 * i / (N - 1.0);
    lam[0] = -3.5, lam[1] = -3.2, lam[N - 1] = 5, lam[N - 2] = 4.7, lam[N - 3] = 4.5;
    double *A = spectrum_matrix(N, lam, 21, U);
    fixture f;
    fixture_init(&f, ctx, N, A);
    double ev[K], *vec = malloc(N * K * sizeof *vec);
    const hess_mark before = hess_context_mark(ctx);
    for (int which = 0; which < 3; which++) {
        assert_ok(ctx, hess__lanczos_eigs(fresh(&f), K, which, 1e-10, 2000, 3, ev, vec));
        check_pairs(N, A, lam, which == HESS_EIG_LARGEST ? U : NULL, K, which, ev, vec, 1e-8);
        assert_true(f.d.products > 40); /* it did restart */
        assert_int_equal(f.d.products, f.run.done);
    }
    const hess_mark after = hess_context_mark(ctx);
    assert_same_mark(&before, &after);
    free(vec);
    free(A);
    free(lam);
    free(U);
    hess_context_destroy(ctx);
}

static void test_lanczos_small_and_multiple(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    fixture f;
    /* k = N: every pair, exact */
    {
        enum { N = 7 };
        const double lam[N] = {-2, -1.2, 0.5, 1, 3, 3.5, 8};
        double U[N * N], ev[N], vec[N * N];
        double *A = spectrum_matrix(N, lam, 4, U);
        fixture_init(&f, ctx, N, A);
        for (int which = 0; which < 3; which++) {
            assert_ok(ctx, hess__lanczos_eigs(fresh(&f), N, which, 1e-10, N, 1, ev, vec));
            check_pairs(N, A, lam, U, N, which, ev, vec, 1e-12);
            assert_true(f.d.products <= N);
        }
        free(A);
    }
    /* N = 1 */
    {
        const double a = -2.5;
        double ev, vec;
        fixture_init(&f, ctx, 1, &a);
        assert_ok(ctx, hess__lanczos_eigs(fresh(&f), 1, HESS_EIG_LARGEST, 1e-10, 1, 0, &ev, &vec));
        assert_true(ev == -2.5 && vec == 1);
    }
    /* a triple top eigenvalue and a rank-5 matrix: invariant subspaces early */
    {
        enum { N = 60 };
        double lam[N] = {0}, ev[4], vec[N * 4];
        lam[N - 1] = lam[N - 2] = lam[N - 3] = 2, lam[N - 4] = 1, lam[N - 5] = -0.5;
        double *A = spectrum_matrix(N, lam, 8, NULL);
        fixture_init(&f, ctx, N, A);
        double sorted[N];
        for (int i = 0; i < N; i++)
            sorted[i] = lam[i];
        sorted[0] = -0.5, sorted[N - 5] = 0; /* increasing order */
        assert_ok(ctx, hess__lanczos_eigs(fresh(&f), 4, HESS_EIG_LARGEST, 1e-10, N, 2, ev, vec));
        check_pairs(N, A, sorted, NULL, 4, HESS_EIG_LARGEST, ev, vec, 1e-10);
        assert_ok(ctx, hess__lanczos_eigs(fresh(&f), 4, HESS_EIG_MAGNITUDE, 1e-10, N, 2, ev, vec));
        check_pairs(N, A, sorted, NULL, 4, HESS_EIG_MAGNITUDE, ev, vec, 1e-10);
        free(A);
    }
    /* the zero matrix */
    {
        enum { N = 5 };
        const double Z[N * N] = {0};
        double ev[2], vec[2 * N];
        fixture_init(&f, ctx, N, Z);
        assert_ok(ctx, hess__lanczos_eigs(fresh(&f), 2, HESS_EIG_SMALLEST, 1e-10, N, 0, ev, vec));
        assert_true(ev[0] == 0 && ev[1] == 0);
        assert_close(vnorm(N, vec), 1, 1e-14, 0);
    }
    hess_context_destroy(ctx);
}

static void test_lanczos_no_convergence(void **state)
{
    (void)state;
    enum { N = 300 };
    hess_context *ctx = test_context();
    double lam[N], ev[2];
    for (int i = 0; i < N; i++) /* clustered at the top: slow */
        lam[i] = 1.0 - 1.0 / (i + 1.0);
    double *A = spectrum_matrix(N, lam, 3, NULL);
    fixture f;
    fixture_init(&f, ctx, N, A);
    assert_int_equal(hess__lanczos_eigs(fresh(&f), 2, HESS_EIG_LARGEST, 1e-12, 10, 0, ev, NULL),
                     HESS_ERR_NONFINITE);
    assert_non_null(strstr(hess_context_errmsg(ctx), "did not converge"));
    assert_int_equal(f.d.products, 10);
    assert_true(isfinite(ev[0]) && isfinite(ev[1]) && ev[0] >= ev[1] && ev[0] <= 1);
    hess_context_clear_error(ctx);
    free(A);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Stochastic Lanczos quadrature                                            */
/* ------------------------------------------------------------------------ */

static double normal_pdf(double x, double s)
{
    return exp(-0.5 * x * x / (s * s)) / (s * sqrt(2 * 3.141592653589793));
}

/* lam (n): a bulk sin(0.01 i) and four outliers -2 .. 1; grid (g points on
 * [-3, 2]) and ref: its spectrum smoothed by Gaussians of width sigma, the
 * density SLQ estimates.  Returns the grid step. */
static double bulk_spectrum(int n, double *lam, int g, double *grid, double sigma, double *ref)
{
    for (int i = 0; i < n; i++)
        lam[i] = i < n - 4 ? sin(0.01 * i) : 2.0 + i - n;
    const double lo = -3.0, hi = 2.0, dx = (hi - lo) / (g - 1);
    for (int t = 0; t < g; t++) {
        grid[t] = lo + t * dx;
        ref[t] = 0;
        for (int i = 0; i < n; i++)
            ref[t] += normal_pdf(grid[t] - lam[i], sigma) / n;
    }
    return dx;
}

static void test_slq_density(void **state)
{
    (void)state;
    enum { N = 120, G = 1001 };
    hess_context *ctx = test_context();
    double lam[N], *grid = malloc(G * sizeof *grid), *dens = malloc(G * sizeof *dens);
    double *ref = malloc(G * sizeof *ref);
    const double sigma = 0.05, dx = bulk_spectrum(N, lam, G, grid, sigma, ref);
    double *A = spectrum_matrix(N, lam, 17, NULL);
    fixture f;
    fixture_init(&f, ctx, N, A);
    /* steps = N: exact quadrature, only the probes' sampling error is left;
     * steps = 40: Gauss quadrature of the smooth Gaussians, converged */
    double *full = malloc(G * sizeof *full);
    const size_t steps_list[2] = {N, 40};
    for (int c = 0; c < 2; c++) {
        assert_ok(ctx, hess__slq_density(fresh(&f), 64, steps_list[c], sigma, 7, G, grid, dens));
        double l1 = 0, mass = 0, l1_full = 0;
        for (int t = 0; t < G; t++) {
            l1 += fabs(dens[t] - ref[t]) * dx;
            mass += dens[t] * dx;
            if (c == 0)
                full[t] = dens[t];
            l1_full += fabs(dens[t] - full[t]) * dx;
        }
        printf("SLQ steps %zu: L1 %.6f to the smoothed spectrum, %.3g to steps = N, mass "
               "%.12f, %zu calls\n",
               steps_list[c], l1, l1_full, mass, f.d.calls);
        assert_true(l1 <= 0.05);
        assert_true(l1_full <= 1e-4);
        assert_close(mass, 1, 1e-9, 0);
        /* 64 probes side by side: one call per step */
        assert_int_equal(f.d.calls, steps_list[c]);
    }
    free(full);
    /* a tiny exact case: steps = N, one probe; nodes are the eigenvalues and
     * the weights (u_i . z)^2 / N for the probe z of stream 1 */
    {
        enum { n = 4 };
        const double l4[n] = {-1, 0.5, 2, 3};
        double U[n * n], z[n], d4[5], g4[5] = {-1.2, 0, 0.5, 1.9, 3.3};
        double *B = spectrum_matrix(n, l4, 2, U);
        fixture f4;
        fixture_init(&f4, ctx, n, B);
        assert_ok(ctx, hess__slq_density(fresh(&f4), 1, n, 0.3, 11, 5, g4, d4));
        hess__rng rng;
        hess__rng_init(&rng, 11, 1);
        hess__rng_signs(&rng, z, n);
        for (int t = 0; t < 5; t++) {
            double r = 0;
            for (int i = 0; i < n; i++) {
                double dot = 0;
                for (int j = 0; j < n; j++)
                    dot += U[j * n + i] * z[j];
                r += dot * dot / n * normal_pdf(g4[t] - l4[i], 0.3);
            }
            assert_close(d4[t], r, 1e-10, 1e-14);
        }
        free(B);
    }
    free(A);
    free(grid);
    free(dens);
    free(ref);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Trace and diagonal estimators                                            */
/* ------------------------------------------------------------------------ */

/* SLQ on N = 300 > 256: each probe's basis kept semi-orthogonal by partial
 * reorthogonalization.  The density against the smoothed exact spectrum (the
 * probes' sampling error), the quadrature converged (50 steps against 120),
 * mass 1; the same nodes, bit for bit, without the AVX2 copies. */
static void test_slq_semi_orthogonal(void **state)
{
    (void)state;
    enum { N = 300, G = 501, P = 16 };
    hess_context *ctx = test_context(), *plain = test_context_flags(HESS_NO_SIMD);
    double lam[N], *grid = malloc(G * sizeof *grid), *ref = malloc(G * sizeof *ref);
    double *dens = malloc(G * sizeof *dens), *d50 = malloc(G * sizeof *d50);
    const double sigma = 0.05, dx = bulk_spectrum(N, lam, G, grid, sigma, ref);
    double *A = spectrum_matrix(N, lam, 19, NULL);
    fixture f, g;
    fixture_init(&f, ctx, N, A);
    fixture_init(&g, plain, N, A);
    assert_ok(ctx, hess__slq_density(fresh(&f), P, 50, sigma, 5, G, grid, d50));
    assert_int_equal(f.d.calls, 50); /* the probes side by side */
    assert_ok(plain, hess__slq_density(fresh(&g), P, 50, sigma, 5, G, grid, dens));
    assert_memory_equal(dens, d50, G * sizeof *dens);
    assert_ok(ctx, hess__slq_density(fresh(&f), P, 120, sigma, 5, G, grid, dens));
    double l1 = 0, l1_steps = 0, mass = 0;
    for (int t = 0; t < G; t++) {
        l1 += fabs(dens[t] - ref[t]) * dx;
        l1_steps += fabs(dens[t] - d50[t]) * dx;
        mass += dens[t] * dx;
    }
    printf("SLQ N = 300: L1 %.6f to the smoothed spectrum, %.3g from 50 to 120 steps, mass %.12f\n",
           l1, l1_steps, mass);
    assert_true(l1 <= 0.04);        /* 0.027 */
    assert_true(l1_steps <= 1e-10); /* 1.3e-15 */
    assert_close(mass, 1, 1e-9, 0);
    free(A);
    free(grid);
    free(ref);
    free(dens);
    free(d50);
    hess_context_destroy(plain);
    hess_context_destroy(ctx);
}

static void test_estimators_exact_low_rank(void **state)
{
    (void)state;
    enum { N = 120, R = 5 };
    hess_context *ctx = test_context();
    double lam[N] = {0};
    const double top[R] = {7, -3, 2.5, 1, 0.25};
    memcpy(lam, top, sizeof top);
    double *A = spectrum_matrix(N, lam, 31, NULL);
    const double fro = frob(N, A), tr = 7 - 3 + 2.5 + 1 + 0.25;
    fixture f;
    fixture_init(&f, ctx, N, A);
    double t, se, diag[N];
    const int methods[2] = {HESS_EST_HUTCHPP, HESS_EST_XTRACE};
    const size_t budget[2] = {3 * R, 2 * R + 2};
    for (int m = 0; m < 2; m++)
        for (uint64_t seed = 0; seed < 5; seed++) {
            assert_ok(ctx, hess__trace_est(fresh(&f), methods[m], budget[m], seed, &t, &se));
            assert_close(t, tr, 0, 1e-8 * fro);
            assert_true(se <= 1e-8 * fro);
            assert_int_equal(f.d.products, budget[m]);
            assert_ok(ctx, hess__diag_est(fresh(&f), methods[m], budget[m], seed, diag));
            for (int i = 0; i < N; i++)
                assert_close(diag[i], A[i * N + i], 0, 1e-8 * fro);
            assert_int_equal(f.d.products, budget[m]);
            assert_true(f.d.calls <= 3); /* the sketches are blocks */
        }
    /* rank 1 with 3 products (one Hutchinson sample: the bound as error) */
    {
        double l1[N] = {0};
        l1[0] = 2;
        double *B = spectrum_matrix(N, l1, 5, NULL);
        fixture f1;
        fixture_init(&f1, ctx, N, B);
        assert_ok(ctx, hess__trace_est(fresh(&f1), HESS_EST_HUTCHPP, 3, 1, &t, &se));
        assert_close(t, 2, 0, 1e-12);
        assert_true(se <= 1e-12);
        free(B);
    }
    /* n_probes >= N: exact from unit vectors, N products */
    for (int m = HESS_EST_HUTCHINSON; m <= HESS_EST_XTRACE; m++) {
        assert_ok(ctx, hess__trace_est(fresh(&f), m, N, 0, &t, &se));
        double want = 0;
        for (int i = 0; i < N; i++)
            want += A[i * N + i];
        assert_close(t, want, 1e-13, 1e-13);
        assert_true(se == 0 && f.d.products == N);
        assert_ok(ctx, hess__diag_est(fresh(&f), m, N + 5, 0, diag));
        for (int i = 0; i < N; i++)
            assert_true(diag[i] == A[i * N + i]);
    }
    /* too small */
    assert_int_equal(hess__trace_est(fresh(&f), HESS_EST_HUTCHPP, 2, 0, &t, NULL), HESS_ERR_ARG);
    assert_non_null(strstr(hess_context_errmsg(ctx), "n_probes = 2"));
    hess_context_clear_error(ctx);
    assert_int_equal(hess__diag_est(fresh(&f), HESS_EST_XTRACE, 3, 0, diag), HESS_ERR_ARG);
    hess_context_clear_error(ctx);
    assert_int_equal(hess__trace_est(fresh(&f), HESS_EST_HUTCHINSON, 0, 0, &t, NULL), HESS_ERR_ARG);
    hess_context_clear_error(ctx);
    free(A);
    hess_context_destroy(ctx);
}

static void test_estimators_statistics(void **state)
{
    (void)state;
    enum { N = 100, S = 40 };
    hess_context *ctx = test_context();
    uint64_t seed = 77;
    double *A = malloc(N * N * sizeof *A);
    for (int i = 0; i < N; i++) /* a full-rank matrix with a big diagonal */
        for (int j = 0; j <= i; j++)
            A[i * N + j] = A[j * N + i] = (i == j ? 3.0 + i * 0.05 : 0) + rnd_uniform(&seed, -1, 1);
    double tr = 0, fro2 = 0, dsq = 0;
    for (int i = 0; i < N; i++) {
        tr += A[i * N + i];
        dsq += A[i * N + i] * A[i * N + i];
    }
    for (int i = 0; i < N * N; i++)
        fro2 += A[i] * A[i];
    fixture f;
    fixture_init(&f, ctx, N, A);

    /* Hutchinson: error within 3.5 reported standard errors, and the
     * standard error near the true one, sqrt(2 (||A||_F^2 - sum A_ii^2) / n) */
    const size_t budget = 50;
    const double true_se = sqrt(2 * (fro2 - dsq) / budget);
    double t, se, mean = 0;
    for (uint64_t s = 0; s < S; s++) {
        assert_ok(ctx, hess__trace_est(fresh(&f), HESS_EST_HUTCHINSON, budget, s, &t, &se));
        assert_true(fabs(t - tr) <= 3.5 * se);
        assert_true(se >= 0.6 * true_se && se <= 1.4 * true_se);
        assert_true(f.d.calls == 1); /* 50 probes, one block */
        mean += t / S;
    }
    assert_true(fabs(mean - tr) <= 3.5 * true_se / sqrt(S));

    /* Hutch++ and XTrace: unbiased (the mean over seeds), and XTrace's error
     * estimate covers its error */
    for (int m = HESS_EST_HUTCHPP; m <= HESS_EST_XTRACE; m++) {
        double sum = 0, sum2 = 0;
        for (uint64_t s = 0; s < S; s++) {
            assert_ok(ctx, hess__trace_est(fresh(&f), m, 48, s, &t, &se));
            assert_int_equal(f.d.products, 48);
            if (m == HESS_EST_XTRACE)
                assert_true(fabs(t - tr) <= 4 * se);
            sum += t;
            sum2 += t * t;
        }
        const double mu = sum / S, sd = sqrt((sum2 - S * mu * mu) / (S - 1));
        printf("%s: mean error %.4f, spread %.4f (Hutchinson's %.4f)\n",
               m == HESS_EST_HUTCHPP ? "Hutch++" : "XTrace", mu - tr, sd, true_se);
        assert_true(fabs(mu - tr) <= 4 * sd / sqrt(S));
    }

    /* diagonal: Var(z_i (A z)_i) = sum_{j != i} A_ij^2 */
    double diag[N];
    for (int m = HESS_EST_HUTCHINSON; m <= HESS_EST_XTRACE; m++) {
        assert_ok(ctx, hess__diag_est(fresh(&f), m, 60, 3, diag));
        int outside = 0;
        for (int i = 0; i < N; i++) {
            double v = 0;
            for (int j = 0; j < N; j++)
                if (j != i)
                    v += A[i * N + j] * A[i * N + j];
            const double sdi = sqrt(v / (m == HESS_EST_HUTCHINSON ? 60 : 20));
            outside += fabs(diag[i] - A[i * N + i]) > 3 * sdi;
        }
        printf("diag method %d: %d of %d entries beyond 3 standard deviations\n", m, outside, N);
        assert_true(outside <= 3);
    }
    free(A);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* CG and MINRES                                                            */
/* ------------------------------------------------------------------------ */

static void test_solvers_dense(void **state)
{
    (void)state;
    enum { N = 60 };
    hess_context *ctx = test_context();
    double lam[N], b[N], x[N], ref[N], M[N * N];
    uint64_t seed = 3;
    for (int i = 0; i < N; i++) {
        lam[i] = -1.0 + 7.0 * i / (N - 1.0); /* indefinite: -1..6, none near 0 */
        if (fabs(lam[i]) < 0.05)
            lam[i] = 0.05;
        b[i] = rnd_uniform(&seed, -1, 1);
    }
    double *A = spectrum_matrix(N, lam, 12, NULL);
    fixture f;
    fixture_init(&f, ctx, N, A);
    hess_solve_info info;

    /* CG on A + 1.5 I (positive definite) */
    memcpy(M, A, sizeof M);
    for (int i = 0; i < N; i++)
        M[i * N + i] += 1.5;
    dense_solve(N, M, b, ref);
    assert_ok(ctx, hess__cg(fresh(&f), b, 1.5, 1e-12, 2 * N, x, &info));
    assert_true(info.converged && !info.negative_curvature && info.rel_residual <= 1e-12);
    assert_int_equal(info.iterations, f.d.products);
    assert_close_array(x, ref, N, 0, 1e-10 * vnorm(N, ref));

    /* CG on A: meets negative curvature, returns a descent direction */
    assert_ok(ctx, hess__cg(fresh(&f), b, 0, 1e-12, 2 * N, x, &info));
    assert_true(info.negative_curvature && !info.converged && info.iterations >= 1);
    double bx = 0;
    for (int i = 0; i < N; i++)
        bx += b[i] * x[i];
    assert_true(bx > 0);

    /* MINRES on A (indefinite), and on A + 1.5 I */
    dense_solve(N, A, b, ref);
    assert_ok(ctx, hess__minres(fresh(&f), b, 0, 1e-12, 4 * N, x, &info));
    assert_true(info.converged && !info.negative_curvature);
    assert_close_array(x, ref, N, 0, 1e-10 * vnorm(N, ref));
    double r[N];
    for (int i = 0; i < N; i++) { /* the reported residual is the true one */
        r[i] = b[i];
        for (int j = 0; j < N; j++)
            r[i] -= A[i * N + j] * x[j];
    }
    assert_close(info.rel_residual, vnorm(N, r) / vnorm(N, b), 1e-3, 1e-14);
    dense_solve(N, M, b, ref);
    assert_ok(ctx, hess__minres(fresh(&f), b, 1.5, 1e-12, 4 * N, x, &info));
    assert_close_array(x, ref, N, 0, 1e-10 * vnorm(N, ref));

    /* negative curvature at the first step: x = b, residual ||b - A b|| */
    double neg[4 * 4] = {0}, b4[4] = {1, 2, -1, 0.5}, x4[4];
    for (int i = 0; i < 4; i++)
        neg[i * 4 + i] = -1;
    fixture f4;
    fixture_init(&f4, ctx, 4, neg);
    assert_ok(ctx, hess__cg(fresh(&f4), b4, 0, 1e-10, 8, x4, &info));
    assert_true(info.negative_curvature && info.iterations == 1);
    assert_close_array(x4, b4, 4, 0, 0);
    assert_close(info.rel_residual, 2, 1e-15, 0);

    /* b = 0; x aliasing b; max_iter reached */
    double zero[N] = {0};
    assert_ok(ctx, hess__cg(fresh(&f), zero, 1.5, 1e-10, 10, x, &info));
    assert_true(info.iterations == 0 && info.converged && info.rel_residual == 0);
    assert_ok(ctx, hess__minres(fresh(&f), zero, 0, 1e-10, 10, x, &info));
    assert_true(info.iterations == 0 && info.converged);
    memcpy(x, b, sizeof x);
    assert_ok(ctx, hess__minres(fresh(&f), x, 0, 1e-12, 4 * N, x, &info));
    dense_solve(N, A, b, ref);
    assert_close_array(x, ref, N, 0, 1e-10 * vnorm(N, ref));
    assert_ok(ctx, hess__cg(fresh(&f), b, 1.5, 1e-14, 3, x, &info));
    assert_true(info.iterations == 3 && !info.converged && info.rel_residual > 1e-14);
    free(A);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Failures inside the algorithms                                           */
/* ------------------------------------------------------------------------ */

typedef struct progress_log {
    int calls;
    size_t stop_at; /* cancel once this many products are done; 0 = never */
} progress_log;

static int progress_stop(size_t done, size_t total, void *user)
{
    progress_log *log = user;
    (void)total;
    log->calls++;
    return log->stop_at && done >= log->stop_at;
}

static void test_algorithms_nan_and_cancel(void **state)
{
    (void)state;
    enum { N = 30 };
    hess_context *ctx = test_context();
    double lam[N], b[N], x[N], ev[2], t, grid[3] = {0, 1, 2}, dens[3], diag[N];
    for (int i = 0; i < N; i++)
        lam[i] = 1 + i, b[i] = 1;
    double *A = spectrum_matrix(N, lam, 1, NULL);
    fixture f;
    fixture_init(&f, ctx, N, A);
    hess_solve_info info;
    const hess_mark before = hess_context_mark(ctx);

    f.d.poison = 3;
    assert_int_equal(hess__lanczos_eigs(fresh(&f), 2, 0, 1e-10, N, 0, ev, NULL),
                     HESS_ERR_NONFINITE);
    assert_non_null(strstr(hess_context_errmsg(ctx), "non-finite"));
    hess_context_clear_error(ctx);
    assert_int_equal(hess__cg(fresh(&f), b, 0, 1e-10, N, x, &info), HESS_ERR_NONFINITE);
    hess_context_clear_error(ctx);
    f.d.poison = 0;

    progress_log log = {0, 2};
    hess_hessian_opts o = {0};
    o.progress = progress_stop;
    o.user = &log;
    f.run.opts = &o;
    assert_int_equal(hess__lanczos_eigs(fresh(&f), 2, 0, 1e-10, N, 0, ev, NULL),
                     HESS_ERR_CANCELLED);
    assert_int_equal(f.d.products, 2);
    hess_context_clear_error(ctx);
    assert_int_equal(hess__minres(fresh(&f), b, 0, 1e-10, N, x, &info), HESS_ERR_CANCELLED);
    hess_context_clear_error(ctx);
    assert_int_equal(hess__slq_density(fresh(&f), 4, 10, 0, 0, 3, grid, dens), HESS_ERR_CANCELLED);
    assert_int_equal(f.d.calls, 1); /* 4 probes, one call per step: 4 >= 2 at once */
    hess_context_clear_error(ctx);
    assert_int_equal(hess__trace_est(fresh(&f), HESS_EST_XTRACE, 10, 0, &t, NULL),
                     HESS_ERR_CANCELLED);
    hess_context_clear_error(ctx);
    assert_int_equal(hess__diag_est(fresh(&f), HESS_EST_HUTCHPP, 9, 0, diag), HESS_ERR_CANCELLED);
    hess_context_clear_error(ctx);
    /* progress without cancelling: (done, total) in products */
    log.stop_at = 0;
    log.calls = 0;
    assert_ok(ctx, hess__trace_est(fresh(&f), HESS_EST_HUTCHPP, 9, 0, &t, NULL));
    assert_int_equal(log.calls, 3);
    const hess_mark after = hess_context_mark(ctx);
    assert_same_mark(&before, &after);
    free(A);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* The public functions on graphs                                           */
/* ------------------------------------------------------------------------ */

typedef struct net {
    hess_tensor *p[4];
    hess_tensor *loss;
    size_t N;
    double *H; /* dense Hessian from hess_hessian */
    double lam[64], V[64 * 64];
} net;

/* Linear(3, 4) -> tanh -> Linear(4, 2), MSE against targets, 6 samples:
 * N = 12 + 4 + 8 + 2 = 26.  The graph only (no dense Hessian). */
static void build_mlp_graph(hess_context *ctx, net *m, uint64_t seed)
{
    double x[6 * 3], y[6 * 2], w1[4 * 3], b1[4], w2[2 * 4], b2[2];
    for (int i = 0; i < 18; i++)
        x[i] = rnd_uniform(&seed, -1.5, 1.5);
    for (int i = 0; i < 12; i++)
        y[i] = rnd_uniform(&seed, -1, 1), w1[i] = rnd_uniform(&seed, -1, 1);
    for (int i = 0; i < 8; i++)
        w2[i] = rnd_uniform(&seed, -1, 1);
    for (int i = 0; i < 4; i++)
        b1[i] = rnd_uniform(&seed, -0.5, 0.5);
    b2[0] = 0.1, b2[1] = -0.2;
    hess_tensor *X = hess_tensor_new(ctx, 2, (const int64_t[]){6, 3}, x);
    hess_tensor *Y = hess_tensor_new(ctx, 2, (const int64_t[]){6, 2}, y);
    m->p[0] = hess_param_new(ctx, 2, (const int64_t[]){4, 3}, w1);
    m->p[1] = hess_param_new(ctx, 1, (const int64_t[]){4}, b1);
    m->p[2] = hess_param_new(ctx, 2, (const int64_t[]){2, 4}, w2);
    m->p[3] = hess_param_new(ctx, 1, (const int64_t[]){2}, b2);
    hess_tensor *h = hess_tanh(ctx, hess_linear(ctx, X, m->p[0], m->p[1]));
    m->loss = hess_mse_loss(ctx, hess_linear(ctx, h, m->p[2], m->p[3]), Y);
    assert_non_null(m->loss);
    m->N = hess_param_count(4, m->p);
    assert_int_equal(m->N, 26);
    m->H = NULL;
}

/* The graph, its dense Hessian H and H's eigenpairs (Jacobi). */
static void build_mlp(hess_context *ctx, net *m, uint64_t seed)
{
    build_mlp_graph(ctx, m, seed);
    m->H = malloc(m->N * m->N * sizeof *m->H);
    assert_ok(ctx, hess_hessian(ctx, m->loss, 4, m->p, m->H));
    for (size_t i = 0; i < m->N; i++) /* symmetric to rounding; the reference exactly */
        for (size_t j = 0; j < i; j++)
            m->H[i * m->N + j] = m->H[j * m->N + i] =
                0.5 * (m->H[i * m->N + j] + m->H[j * m->N + i]);
    ref_eig(m->N, m->H, m->lam, m->V);
}

static void test_public_eigs(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    net m;
    build_mlp(ctx, &m, 42);
    const size_t N = m.N;
    double ev[26], vec[26 * 26];
    int used = -1;
    hess_hessian_opts o = {0};
    o.method_used = &used;
    o.seed = 5;
    const hess_mark before = hess_context_mark(ctx);
    for (int which = 0; which < 3; which++) {
        assert_ok(ctx, hess_eigs(ctx, m.loss, 4, m.p, 3, which, &o, ev, vec));
        check_pairs(N, m.H, m.lam, NULL, 3, which, ev, vec, 1e-8);
        assert_int_equal(used, 0);
    }
    printf("MLP Hessian: lambda in [%.6g, %.6g]\n", m.lam[0], m.lam[N - 1]);
    assert_ok(ctx, hess_eigs(ctx, m.loss, 4, m.p, 3, HESS_EIG_LARGEST, NULL, ev, NULL));
    check_pairs(N, m.H, m.lam, m.V, 3, HESS_EIG_LARGEST, ev, NULL, 1e-8);
    /* k = N: the whole spectrum */
    assert_ok(ctx, hess_eigs(ctx, m.loss, 4, m.p, N, HESS_EIG_SMALLEST, NULL, ev, vec));
    check_pairs(N, m.H, m.lam, NULL, N, HESS_EIG_SMALLEST, ev, vec, 1e-8);
    /* same seed, same bits; another seed, another start */
    double ev2[3], vec2[26 * 3];
    assert_ok(ctx, hess_eigs(ctx, m.loss, 4, m.p, 3, HESS_EIG_LARGEST, &o, ev, vec));
    assert_ok(ctx, hess_eigs(ctx, m.loss, 4, m.p, 3, HESS_EIG_LARGEST, &o, ev2, vec2));
    assert_memory_equal(ev, ev2, sizeof ev2);
    assert_memory_equal(vec, vec2, sizeof vec2);
    const hess_mark after = hess_context_mark(ctx);
    assert_same_mark(&before, &after);
    free(m.H);
    hess_context_destroy(ctx);
}

static void test_public_density(void **state)
{
    (void)state;
    enum { G = 2001 };
    hess_context *ctx = test_context();
    net m;
    build_mlp(ctx, &m, 42);
    const size_t N = m.N;
    double *grid = malloc(G * sizeof *grid), *dens = malloc(G * sizeof *dens);
    const double lo = m.lam[0] - 1, hi = m.lam[N - 1] + 1, dx = (hi - lo) / (G - 1);
    for (int t = 0; t < G; t++)
        grid[t] = lo + t * dx;
    hess_hessian_opts o = {0};
    o.n_probes = 200;
    o.seed = 1;
    o.sigma = 0.02 * (m.lam[N - 1] - m.lam[0]);
    assert_ok(ctx, hess_spectral_density(ctx, m.loss, 4, m.p, &o, G, grid, dens));
    double mass = 0, l1 = 0;
    for (int t = 0; t < G; t++) {
        double r = 0;
        for (size_t i = 0; i < N; i++)
            r += normal_pdf(grid[t] - m.lam[i], o.sigma) / N;
        mass += dens[t] * dx;
        l1 += fabs(dens[t] - r) * dx;
    }
    printf("MLP density: mass %.10f, L1 to the smoothed spectrum %.4f\n", mass, l1);
    assert_close(mass, 1, 1e-6, 0);
    assert_true(l1 <= 0.15);
    /* default sigma and steps; reproducible bit for bit */
    double *d2 = malloc(G * sizeof *d2);
    o.n_probes = 0;
    o.sigma = 0;
    assert_ok(ctx, hess_spectral_density(ctx, m.loss, 4, m.p, &o, G, grid, dens));
    assert_ok(ctx, hess_spectral_density(ctx, m.loss, 4, m.p, &o, G, grid, d2));
    assert_memory_equal(dens, d2, G * sizeof *d2);
    mass = 0;
    for (int t = 0; t < G; t++)
        mass += dens[t] * dx;
    assert_close(mass, 1, 1e-6, 0);
    free(d2);
    free(grid);
    free(dens);
    free(m.H);
    hess_context_destroy(ctx);
}

/* Linear regression on 3 samples of 10 features: H = (2/3) X^T X, rank 3. */
static void test_public_estimators(void **state)
{
    (void)state;
    enum { B = 3, F = 10 };
    hess_context *ctx = test_context();
    uint64_t seed = 8;
    double x[B * F], y[B], w[F], H[F * F], hd[F];
    for (int i = 0; i < B * F; i++)
        x[i] = rnd_uniform(&seed, -1, 1);
    for (int i = 0; i < F; i++)
        w[i] = rnd_uniform(&seed, -1, 1);
    for (int i = 0; i < B; i++)
        y[i] = rnd_uniform(&seed, -1, 1);
    hess_tensor *X = hess_tensor_new(ctx, 2, (const int64_t[]){B, F}, x);
    hess_tensor *Y = hess_tensor_new(ctx, 2, (const int64_t[]){B, 1}, y);
    hess_tensor *W = hess_param_new(ctx, 2, (const int64_t[]){1, F}, w);
    hess_tensor *loss = hess_mse_loss(ctx, hess_linear(ctx, X, W, NULL), Y);
    assert_ok(ctx, hess_hessian(ctx, loss, 1, &W, H));
    assert_ok(ctx, hess_hessian_diag(ctx, loss, 1, &W, hd));
    double tr = 0;
    for (int i = 0; i < F; i++)
        tr += H[i * F + i];
    const double fro = frob(F, H);
    hess_hessian_opts o = {0};
    int used = 0;
    o.method_used = &used;
    double t, se, d[F];
    /* default: Hutch++ with 32 >= N products, the exact value */
    assert_ok(ctx, hess_trace_estimate(ctx, loss, 1, &W, NULL, &t, &se));
    assert_close(t, tr, 1e-13, 0);
    assert_true(se == 0);
    /* rank 3: Hutch++ with 9 < N products and XTrace with 8 are exact */
    o.method = HESS_EST_HUTCHPP;
    o.n_probes = 9;
    for (o.seed = 0; o.seed < 4; o.seed++) {
        assert_ok(ctx, hess_trace_estimate(ctx, loss, 1, &W, &o, &t, &se));
        assert_close(t, tr, 0, 1e-8 * fro);
        assert_int_equal(used, HESS_EST_HUTCHPP);
        assert_ok(ctx, hess_diag_estimate(ctx, loss, 1, &W, &o, d));
        assert_close_array(d, hd, F, 0, 1e-8 * fro);
    }
    o.method = HESS_EST_XTRACE;
    o.n_probes = 8;
    for (o.seed = 0; o.seed < 4; o.seed++) {
        assert_ok(ctx, hess_trace_estimate(ctx, loss, 1, &W, &o, &t, NULL));
        assert_close(t, tr, 0, 1e-8 * fro);
        assert_int_equal(used, HESS_EST_XTRACE);
        assert_ok(ctx, hess_diag_estimate(ctx, loss, 1, &W, &o, d));
        assert_close_array(d, hd, F, 0, 1e-8 * fro);
    }
    /* Hutchinson: within its standard errors; the same seed, the same bits */
    o.method = HESS_EST_HUTCHINSON;
    o.n_probes = 9;
    o.seed = 3;
    double t2, se2;
    assert_ok(ctx, hess_trace_estimate(ctx, loss, 1, &W, &o, &t, &se));
    assert_ok(ctx, hess_trace_estimate(ctx, loss, 1, &W, &o, &t2, &se2));
    assert_true(memcmp(&t, &t2, sizeof t) == 0 && memcmp(&se, &se2, sizeof se) == 0);
    assert_true(fabs(t - tr) <= 4 * se && se > 0);
    o.seed = 4;
    assert_ok(ctx, hess_trace_estimate(ctx, loss, 1, &W, &o, &t2, NULL));
    assert_true(t2 != t);
    assert_int_equal(used, HESS_EST_HUTCHINSON);

    /* the MLP: exact with n_probes >= N, and Hutch++ near */
    net m;
    build_mlp(ctx, &m, 42);
    double trm = 0;
    for (size_t i = 0; i < m.N; i++)
        trm += m.H[i * m.N + i];
    memset(&o, 0, sizeof o);
    o.n_probes = 26;
    assert_ok(ctx, hess_trace_estimate(ctx, m.loss, 4, m.p, &o, &t, &se));
    assert_close(t, trm, 1e-12, 1e-12);
    o.n_probes = 24;
    o.seed = 2;
    assert_ok(ctx, hess_trace_estimate(ctx, m.loss, 4, m.p, &o, &t, &se));
    printf("MLP trace %.6f, Hutch++ %.6f +- %.6f\n", trm, t, se);
    assert_true(fabs(t - trm) <= 4 * se);
    free(m.H);
    hess_context_destroy(ctx);
}

static void test_public_solve(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    net m;
    build_mlp(ctx, &m, 42);
    const size_t N = m.N;
    double b[26], x[26], ref[26], M[26 * 26];
    uint64_t seed = 1;
    for (size_t i = 0; i < N; i++)
        b[i] = rnd_uniform(&seed, -1, 1);
    hess_hessian_opts o = {0};
    int used = 0;
    o.method_used = &used;
    hess_solve_info info;
    /* CG with damping that makes H + damping I positive definite */
    const double damping = fmax(0, -m.lam[0]) + 0.5;
    memcpy(M, m.H, sizeof M);
    for (size_t i = 0; i < N; i++)
        M[i * N + i] += damping;
    dense_solve(N, M, b, ref);
    assert_ok(ctx, hess_solve(ctx, m.loss, 4, m.p, b, damping, &o, x, &info));
    assert_true(info.converged && info.rel_residual <= 1e-10 && !info.negative_curvature);
    assert_int_equal(used, HESS_SOLVE_CG);
    assert_close_array(x, ref, N, 0, 1e-10 * vnorm(N, ref));
    printf("MLP CG: %zu products, relative residual %.3g\n", info.iterations, info.rel_residual);
    /* MINRES on H itself */
    printf("MLP Hessian: smallest |lambda| ");
    double amin = INFINITY;
    for (size_t i = 0; i < N; i++)
        amin = fmin(amin, fabs(m.lam[i]));
    printf("%.3g\n", amin);
    dense_solve(N, m.H, b, ref);
    o.method = HESS_SOLVE_MINRES;
    o.max_iter = 20 * N;
    o.tol = 1e-13;
    assert_ok(ctx, hess_solve(ctx, m.loss, 4, m.p, b, 0, &o, x, NULL));
    assert_int_equal(used, HESS_SOLVE_MINRES);
    assert_close_array(x, ref, N, 0, 1e-10 * vnorm(N, ref));
    free(m.H);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Arguments, pending errors, cancellation                                  */
/* ------------------------------------------------------------------------ */

/* the call failed with st, and its message names fn and contains word */
static void
expect_error(hess_context *ctx, hess_status got, hess_status st, const char *fn, const char *word)
{
    if (got != st || strncmp(hess_context_errmsg(ctx), fn, strlen(fn)) != 0 ||
        !strstr(hess_context_errmsg(ctx), word))
        fail_msg("status %d (want %d), message \"%s\" (want %s ... %s)", (int)got, (int)st,
                 hess_context_errmsg(ctx), fn, word);
    hess_context_clear_error(ctx);
}

static int cancel_now(size_t done, size_t total, void *user)
{
    (void)done, (void)total, (void)user;
    return 1;
}

static void test_public_bad_arguments(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    net m;
    build_mlp(ctx, &m, 42);
    double ev[30], vec[26 * 30], g[3] = {0, 1, 2}, dens[3], t, diag[26], b[26] = {1}, x[26];
    hess_hessian_opts o = {0};
    hess_tensor **p = m.p;
    const hess_mark before = hess_context_mark(ctx);

    expect_error(ctx, hess_eigs(ctx, m.loss, 4, p, 0, 0, NULL, ev, vec), HESS_ERR_ARG, "hess_eigs",
                 "k = 0");
    expect_error(ctx, hess_eigs(ctx, m.loss, 4, p, 27, 0, NULL, ev, vec), HESS_ERR_ARG, "hess_eigs",
                 "k = 27");
    expect_error(ctx, hess_eigs(ctx, m.loss, 4, p, 2, 3, NULL, ev, vec), HESS_ERR_ARG, "hess_eigs",
                 "which = 3");
    expect_error(ctx, hess_eigs(ctx, m.loss, 4, p, 2, -1, NULL, ev, vec), HESS_ERR_ARG, "hess_eigs",
                 "which = -1");
    expect_error(ctx, hess_eigs(ctx, m.loss, 4, p, 2, 0, NULL, NULL, vec), HESS_ERR_ARG,
                 "hess_eigs", "NULL evals");
    o.max_iter = 1;
    expect_error(ctx, hess_eigs(ctx, m.loss, 4, p, 2, 0, &o, ev, vec), HESS_ERR_ARG, "hess_eigs",
                 "max_iter = 1");
    o.max_iter = 0;
    o.method = HESS_SOLVE_CG;
    expect_error(ctx, hess_eigs(ctx, m.loss, 4, p, 2, 0, &o, ev, vec), HESS_ERR_ARG, "hess_eigs",
                 "HESS_SOLVE_CG");
    o.method = 0;
    o.tol = -1;
    expect_error(ctx, hess_eigs(ctx, m.loss, 4, p, 2, 0, &o, ev, vec), HESS_ERR_ARG, "hess_eigs",
                 "opts.tol = -1");
    o.tol = 0;
    o.flags = 8;
    expect_error(ctx, hess_eigs(ctx, m.loss, 4, p, 2, 0, &o, ev, vec), HESS_ERR_ARG, "hess_eigs",
                 "flags 0x8");
    o.flags = 0;
    expect_error(ctx, hess_eigs(ctx, NULL, 4, p, 2, 0, NULL, ev, vec), HESS_ERR_ARG, "hess_eigs",
                 "NULL");
    expect_error(ctx, hess_eigs(ctx, p[0], 4, p, 2, 0, NULL, ev, vec), HESS_ERR_ARG, "hess_eigs",
                 "scalar");
    expect_error(ctx, hess_eigs(ctx, m.loss, 0, p, 2, 0, NULL, ev, vec), HESS_ERR_ARG, "hess_eigs",
                 "params");

    expect_error(ctx, hess_spectral_density(ctx, m.loss, 4, p, NULL, 0, g, dens), HESS_ERR_ARG,
                 "hess_spectral_density", "n_grid = 0");
    expect_error(ctx, hess_spectral_density(ctx, m.loss, 4, p, NULL, 3, NULL, dens), HESS_ERR_ARG,
                 "hess_spectral_density", "NULL grid");
    expect_error(ctx, hess_spectral_density(ctx, m.loss, 4, p, NULL, 3, g, NULL), HESS_ERR_ARG,
                 "hess_spectral_density", "NULL density");
    o.sigma = -0.5;
    expect_error(ctx, hess_spectral_density(ctx, m.loss, 4, p, &o, 3, g, dens), HESS_ERR_ARG,
                 "hess_spectral_density", "sigma = -0.5");
    o.sigma = INFINITY;
    expect_error(ctx, hess_spectral_density(ctx, m.loss, 4, p, &o, 3, g, dens), HESS_ERR_ARG,
                 "hess_spectral_density", "sigma = inf");
    o.sigma = 0;

    expect_error(ctx, hess_trace_estimate(ctx, m.loss, 4, p, NULL, NULL, NULL), HESS_ERR_ARG,
                 "hess_trace_estimate", "NULL trace");
    o.method = HESS_SOLVE_CG;
    expect_error(ctx, hess_trace_estimate(ctx, m.loss, 4, p, &o, &t, NULL), HESS_ERR_ARG,
                 "hess_trace_estimate", "HESS_SOLVE_CG (of hess_solve)");
    o.method = HESS_DIAG_ROWS;
    expect_error(ctx, hess_diag_estimate(ctx, m.loss, 4, p, &o, diag), HESS_ERR_ARG,
                 "hess_diag_estimate", "HESS_DIAG_ROWS");
    o.method = 99;
    expect_error(ctx, hess_diag_estimate(ctx, m.loss, 4, p, &o, diag), HESS_ERR_ARG,
                 "hess_diag_estimate", "opts.method = 99 is not a method");
    o.method = HESS_EST_XTRACE;
    o.n_probes = 3;
    expect_error(ctx, hess_trace_estimate(ctx, m.loss, 4, p, &o, &t, NULL), HESS_ERR_ARG,
                 "hess_trace_estimate", "n_probes = 3");
    o.method = HESS_EST_HUTCHPP;
    o.n_probes = 2;
    expect_error(ctx, hess_diag_estimate(ctx, m.loss, 4, p, &o, diag), HESS_ERR_ARG,
                 "hess_diag_estimate", "Hutch++");
    o.n_probes = 0;
    expect_error(ctx, hess_diag_estimate(ctx, m.loss, 4, p, &o, NULL), HESS_ERR_ARG,
                 "hess_diag_estimate", "NULL diag");

    o.method = 0;
    expect_error(ctx, hess_solve(ctx, m.loss, 4, p, b, -1, NULL, x, NULL), HESS_ERR_ARG,
                 "hess_solve", "damping = -1");
    expect_error(ctx, hess_solve(ctx, m.loss, 4, p, b, NAN, NULL, x, NULL), HESS_ERR_ARG,
                 "hess_solve", "damping = nan");
    expect_error(ctx, hess_solve(ctx, m.loss, 4, p, NULL, 0, NULL, x, NULL), HESS_ERR_ARG,
                 "hess_solve", "NULL b");
    expect_error(ctx, hess_solve(ctx, m.loss, 4, p, b, 0, NULL, NULL, NULL), HESS_ERR_ARG,
                 "hess_solve", "NULL x");
    o.method = HESS_EST_XTRACE;
    expect_error(ctx, hess_solve(ctx, m.loss, 4, p, b, 0, &o, x, NULL), HESS_ERR_ARG, "hess_solve",
                 "HESS_EST_XTRACE");

    /* an error from the products names the caller too */
    hess_tensor *unused = hess_param_new(ctx, 1, (const int64_t[]){2}, (const double[]){1, 2});
    hess_tensor *pu[5] = {p[0], p[1], p[2], p[3], unused};
    expect_error(ctx, hess_trace_estimate(ctx, m.loss, 5, pu, NULL, &t, NULL), HESS_ERR_NODIFF,
                 "hess_trace_estimate: the output does not depend on", "params[4]");
    o.method = 0;
    o.flags = HESS_ALLOW_UNUSED; /* zero rows: the trace of the padded Hessian */
    o.n_probes = 40;
    assert_ok(ctx, hess_trace_estimate(ctx, m.loss, 5, pu, &o, &t, NULL));
    double trm = 0;
    for (size_t i = 0; i < m.N; i++)
        trm += m.H[i * m.N + i];
    assert_close(t, trm, 1e-12, 1e-12);
    memset(&o, 0, sizeof o);

    /* a pending error: returned, nothing done, the message kept */
    assert_null(hess_tensor_new(ctx, -1, NULL, NULL));
    const char *msg = hess_context_errmsg(ctx);
    char saved[400];
    snprintf(saved, sizeof saved, "%s", msg);
    ev[0] = 12345;
    assert_int_equal(hess_eigs(ctx, m.loss, 4, p, 2, 0, NULL, ev, NULL), HESS_ERR_ARG);
    assert_int_equal(hess_spectral_density(ctx, m.loss, 4, p, NULL, 3, g, dens), HESS_ERR_ARG);
    assert_int_equal(hess_trace_estimate(ctx, m.loss, 4, p, NULL, &t, NULL), HESS_ERR_ARG);
    assert_int_equal(hess_diag_estimate(ctx, m.loss, 4, p, NULL, diag), HESS_ERR_ARG);
    assert_int_equal(hess_solve(ctx, m.loss, 4, p, b, 0, NULL, x, NULL), HESS_ERR_ARG);
    assert_true(ev[0] == 12345);
    assert_string_equal(hess_context_errmsg(ctx), saved);
    hess_context_clear_error(ctx);
    assert_int_equal(hess_eigs(NULL, m.loss, 4, p, 2, 0, NULL, ev, NULL), HESS_ERR_ARG);

    /* cancellation through opts.progress */
    o.progress = cancel_now;
    expect_error(ctx, hess_eigs(ctx, m.loss, 4, p, 2, 0, &o, ev, NULL), HESS_ERR_CANCELLED,
                 "hess_eigs", "cancelled after 1 of 26");
    expect_error(ctx, hess_spectral_density(ctx, m.loss, 4, p, &o, 3, g, dens), HESS_ERR_CANCELLED,
                 "hess_spectral_density", "cancelled");
    expect_error(ctx, hess_trace_estimate(ctx, m.loss, 4, p, &o, &t, NULL), HESS_ERR_CANCELLED,
                 "hess_trace_estimate", "cancelled");
    expect_error(ctx, hess_diag_estimate(ctx, m.loss, 4, p, &o, diag), HESS_ERR_CANCELLED,
                 "hess_diag_estimate", "cancelled");
    expect_error(ctx, hess_solve(ctx, m.loss, 4, p, b, 1, &o, x, NULL), HESS_ERR_CANCELLED,
                 "hess_solve", "cancelled after 1 of 52");
    const hess_mark after = hess_context_mark(ctx);
    assert_true(after.nodes == before.nodes + 1); /* the unused parameter */
    free(m.H);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Out of memory                                                            */
/* ------------------------------------------------------------------------ */

/* The allocator fails the k-th allocation: fail_mem (alloc.h). */

enum { NCALLS = 5, OUT = 26 * 3 + 4 };

/* Call c of the five public functions on the MLP; out gets its numbers. */
static hess_status run_call(hess_context *ctx, net *m, int c, double *out)
{
    static const double grid[4] = {-1, 0, 1, 2};
    double b[26];
    for (int i = 0; i < 26; i++)
        b[i] = 0.1 * i - 1;
    hess_hessian_opts o = {0};
    o.seed = 9;
    switch (c) {
    case 0:
        return hess_eigs(ctx, m->loss, 4, m->p, 2, HESS_EIG_LARGEST, &o, out, out + 2);
    case 1:
        o.n_probes = 3;
        o.lanczos_steps = 10;
        return hess_spectral_density(ctx, m->loss, 4, m->p, &o, 4, grid, out);
    case 2:
        o.n_probes = 9;
        return hess_trace_estimate(ctx, m->loss, 4, m->p, &o, out, out + 1);
    case 3:
        o.n_probes = 8;
        o.method = HESS_EST_XTRACE;
        return hess_diag_estimate(ctx, m->loss, 4, m->p, &o, out);
    default: {
        hess_solve_info info;
        return hess_solve(ctx, m->loss, 4, m->p, b, 2.0, &o, out, &info);
    }
    }
}

/* Every allocation of every call fails in turn (once, and from then on):
 * HESS_ERR_NOMEM with a message naming the function, nothing leaked, and
 * after hess_context_clear_error the same context gives the reference. */
static void test_public_out_of_memory(void **state)
{
    (void)state;
    for (int c = 0; c < NCALLS; c++) {
        double want[OUT] = {0}, got[OUT];
        for (int sticky = 0; sticky < 2; sticky++)
            for (long k = 1;; k++) {
                fail_mem a = {0, 0, sticky};
                /* small blocks: the calls must grow the arena */
                hess_context *ctx = fail_mem_context(&a, 1024);
                net m;
                build_mlp_graph(ctx, &m, 42);
                if (k == 1 && sticky == 0) { /* the reference, nothing failing */
                    assert_ok(ctx, run_call(ctx, &m, c, want));
                    hess_context_destroy(ctx);
                    ctx = fail_mem_context(&a, 1024);
                    build_mlp_graph(ctx, &m, 42);
                }
                a.fail_at = a.count + k;
                memset(got, 0, sizeof got);
                hess_status st = run_call(ctx, &m, c, got);
                const int reached = a.count >= a.fail_at;
                if (st == HESS_OK) { /* not reached, or the arena found room another way */
                    assert_memory_equal(got, want, sizeof got);
                } else {
                    assert_int_equal(st, HESS_ERR_NOMEM);
                    assert_non_null(strstr(hess_context_errmsg(ctx), "out of memory"));
                    static const char *names[NCALLS] = {"hess_eigs", "hess_spectral_density",
                                                        "hess_trace_estimate", "hess_diag_estimate",
                                                        "hess_solve"};
                    assert_int_equal(strncmp(hess_context_errmsg(ctx), names[c], strlen(names[c])),
                                     0);
                    hess_context_clear_error(ctx);
                    a.fail_at = 0;
                    memset(got, 0, sizeof got);
                    assert_ok(ctx, run_call(ctx, &m, c, got));
                    assert_memory_equal(got, want, sizeof got);
                }
                hess_context_destroy(ctx);
                if (!reached) { /* the call no longer reaches the k-th allocation */
                    assert_true(k > 1);
                    break;
                }
            }
    }
}

/* ------------------------------------------------------------------------ */
/* Requests the algorithms refuse, failing operators, scratch that overflows */
/* ------------------------------------------------------------------------ */

/* An operator that fails: with a message of its own (recorded in the
 * context, as the Hessian's products do), or without one. */
typedef struct failing_op {
    hess_context *ctx;
    int say; /* record a message */
} failing_op;

static hess_status failing_apply(void *user, size_t m, const double *X, double *Y)
{
    failing_op *f = user;
    (void)m, (void)X, (void)Y;
    if (f->say)
        hess_tensor_new(f->ctx, -1, NULL, NULL); /* records HESS_ERR_ARG */
    return f->say ? HESS_ERR_ARG : HESS_ERR_NOMEM;
}

/* what the context says, then cleared */
static void expect_msg(hess_context *ctx, hess_status got, hess_status st, const char *msg)
{
    if (got != st || hess_context_status(ctx) != st || !strstr(hess_context_errmsg(ctx), msg))
        fail_msg("status %d / %d (want %d), message \"%s\" (want \"%s\")", (int)got,
                 (int)hess_context_status(ctx), (int)st, hess_context_errmsg(ctx), msg);
    hess_context_clear_error(ctx);
}

static void test_algorithms_refuse(void **state)
{
    (void)state;
    enum { N = 5 };
    hess_context *ctx = test_context();
    double A[N * N] = {0}, ev[N], x[N], b[N] = {1, 2, 3, 4, 5}, g[2] = {0, 1}, d[2], t;
    for (int i = 0; i < N; i++)
        A[i * N + i] = i + 1;
    fixture f;
    fixture_init(&f, ctx, N, A);
    hess_solve_info info;
    const hess_mark before = hess_context_mark(ctx);
    static const char lz[] = "test: bad Lanczos request";
    expect_msg(ctx, hess__lanczos_eigs(fresh(&f), 0, 0, 1e-10, N, 0, ev, NULL), HESS_ERR_ARG,
               "test: bad Lanczos request (k = 0, N = 5, which = 0, max_iter = 5, tol = 1e-10)");
    expect_msg(ctx, hess__lanczos_eigs(fresh(&f), 6, 0, 1e-10, N, 0, ev, NULL), HESS_ERR_ARG, lz);
    expect_msg(ctx, hess__lanczos_eigs(fresh(&f), 3, 0, 1e-10, 2, 0, ev, NULL), HESS_ERR_ARG,
               "max_iter = 2");
    expect_msg(ctx, hess__lanczos_eigs(fresh(&f), 1, 0, 0, N, 0, ev, NULL), HESS_ERR_ARG,
               "tol = 0)");
    expect_msg(ctx, hess__lanczos_eigs(fresh(&f), 1, 0, NAN, N, 0, ev, NULL), HESS_ERR_ARG,
               "tol = nan)");
    expect_msg(ctx, hess__lanczos_eigs(fresh(&f), 1, 3, 1e-10, N, 0, ev, NULL), HESS_ERR_ARG,
               "which = 3");
    expect_msg(ctx, hess__lanczos_eigs(fresh(&f), 1, -1, 1e-10, N, 0, ev, NULL), HESS_ERR_ARG,
               "which = -1");
    static const char qd[] = "test: bad quadrature request";
    expect_msg(ctx, hess__slq_density(fresh(&f), 0, 2, 0.1, 0, 2, g, d), HESS_ERR_ARG,
               "test: bad quadrature request (n_probes = 0, steps = 2, N = 5, sigma = 0.1, "
               "n_grid = 2)");
    expect_msg(ctx, hess__slq_density(fresh(&f), 1, 0, 0.1, 0, 2, g, d), HESS_ERR_ARG, qd);
    expect_msg(ctx, hess__slq_density(fresh(&f), 1, 6, 0.1, 0, 2, g, d), HESS_ERR_ARG,
               "steps = 6, N = 5");
    expect_msg(ctx, hess__slq_density(fresh(&f), 1, 2, -1, 0, 2, g, d), HESS_ERR_ARG, "sigma = -1");
    expect_msg(ctx, hess__slq_density(fresh(&f), 1, 2, INFINITY, 0, 2, g, d), HESS_ERR_ARG,
               "sigma = inf");
    expect_msg(ctx, hess__slq_density(fresh(&f), 1, 2, 0.1, 0, 0, g, d), HESS_ERR_ARG,
               "n_grid = 0)");
    expect_msg(ctx, hess__trace_est(fresh(&f), 99, 10, 0, &t, NULL), HESS_ERR_ARG,
               "test: method 99 is not an estimator");
    expect_msg(ctx, hess__diag_est(fresh(&f), HESS_SOLVE_CG, 10, 0, x), HESS_ERR_ARG,
               "is not an estimator");
    static const char sv[] = "test: bad solve request";
    expect_msg(ctx, hess__cg(fresh(&f), b, 0, 1e-10, 0, x, &info), HESS_ERR_ARG,
               "test: bad solve request (max_iter = 0, tol = 1e-10, shift = 0)");
    expect_msg(ctx, hess__cg(fresh(&f), b, 0, -1, 5, x, &info), HESS_ERR_ARG, "tol = -1");
    expect_msg(ctx, hess__minres(fresh(&f), b, INFINITY, 1e-10, 5, x, &info), HESS_ERR_ARG,
               "shift = inf");
    expect_msg(ctx, hess__minres(fresh(&f), b, 0, NAN, 5, x, &info), HESS_ERR_ARG, sv);
    assert_int_equal(f.d.calls, 0); /* refused before any product */
    const hess_mark after = hess_context_mark(ctx);
    assert_same_mark(&before, &after);

    /* scratch whose size overflows */
    assert_null(hess__curv_doubles(fresh(&f), 2, SIZE_MAX / 8));
    char want[96];
    snprintf(want, sizeof want, "test: out of memory (2 x %zu doubles)", SIZE_MAX / 8);
    expect_msg(ctx, HESS_ERR_NOMEM, HESS_ERR_NOMEM, want);
    const hess_mark m0 = hess_context_mark(ctx);
    assert_non_null(hess__curv_doubles(fresh(&f), 0, SIZE_MAX / 8)); /* none: no overflow */
    assert_ok(ctx, hess_context_rewind(ctx, m0));

    /* an operator failing without a message gets one naming the caller; one
     * with its own message keeps it */
    failing_op fo = {ctx, 0};
    f.op.apply = failing_apply;
    f.op.user = &fo;
    expect_msg(ctx, hess__cg(fresh(&f), b, 0, 1e-10, 5, x, &info), HESS_ERR_NOMEM,
               "test: the operator failed (out of memory)");
    fo.say = 1;
    expect_msg(ctx, hess__minres(fresh(&f), b, 0, 1e-10, 5, x, &info), HESS_ERR_ARG,
               "hess_tensor_new");
    expect_msg(ctx, hess__lanczos_eigs(fresh(&f), 1, 0, 1e-10, N, 0, ev, NULL), HESS_ERR_ARG,
               "hess_tensor_new");
    const hess_mark end = hess_context_mark(ctx);
    assert_same_mark(&before, &end);
    hess_context_destroy(ctx);
}

/* Norms of extreme and non-finite vectors; a vector orthogonal to a basis
 * of everything (none: zero); more rows than dimensions to orthonormalise
 * (the extra rows zero). */
static void test_linalg_edges(void **state)
{
    (void)state;
    const double big[2] = {3e300, 4e300}, tiny[2] = {3e-310, 4e-310}, inf[3] = {1, -INFINITY, 2};
    const double zero[3] = {0, 0, 0};
    assert_close(hess__nrm2(2, big), 5e300, 1e-15, 0);
    assert_close(hess__nrm2(2, tiny), 5e-310, 1e-12, 0);
    assert_true(hess__nrm2(3, inf) == INFINITY);
    assert_true(hess__nrm2(3, zero) == 0);
    assert_true(hess__nrm2(0, NULL) == 0);

    hess__rng rng;
    hess__rng_init(&rng, 3, 4);
    double I3[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, w[3] = {7, 7, 7};
    hess__random_orth(3, I3, 3, w, &rng);
    assert_true(w[0] == 0 && w[1] == 0 && w[2] == 0);
    hess__random_orth(2, I3, 3, w, &rng); /* the one direction left: +-e3 */
    assert_true(w[0] == 0 && w[1] == 0 && fabs(w[2]) == 1);

    enum { M = 5, D = 3 };
    uint64_t seed = 12;
    double Y[M * D], R[M * M];
    for (int i = 0; i < M * D; i++)
        Y[i] = rnd_uniform(&seed, -1, 1);
    hess__orth_rows(M, D, Y, R, &rng);
    for (int a = 0; a < M; a++)
        for (int c = 0; c < M; c++)
            assert_close(hess__dot(D, Y + a * D, Y + c * D), a == c && a < D, 0, 1e-14);
    for (int i = D; i < M; i++)
        assert_true(R[i * M + i] == 0);

    /* a diagonal matrix: nothing to reduce, eigenvalues sorted, Z a permutation */
    double A[9] = {3, 0, 0, 0, -1, 0, 0, 0, 2}, ev[3], Z[9], work[10];
    assert_int_equal(hess__sym_eig(3, A, ev, 3, Z, work), 0);
    assert_true(ev[0] == -1 && ev[1] == 2 && ev[2] == 3);
    assert_true(fabs(Z[1 * 3 + 0]) == 1 && fabs(Z[2 * 3 + 1]) == 1 && fabs(Z[0 * 3 + 2]) == 1);
}

/* ------------------------------------------------------------------------ */
/* Operators with few distinct eigenvalues                                  */
/* ------------------------------------------------------------------------ */

/* A diagonal operator of any size. */
typedef struct diag_op {
    size_t n;
    const double *a;
    size_t products;
} diag_op;

static hess_status diag_apply(void *user, size_t m, const double *X, double *Y)
{
    diag_op *d = user;
    for (size_t r = 0; r < m; r++)
        for (size_t i = 0; i < d->n; i++)
            Y[r * d->n + i] = d->a[i] * X[r * d->n + i];
    d->products += m;
    return HESS_OK;
}

typedef struct diag_fixture {
    diag_op d;
    hess__linop op;
    hess__curv_run run;
} diag_fixture;

static hess__curv_run *diag_run(diag_fixture *f, hess_context *ctx, size_t n, const double *a)
{
    memset(f, 0, sizeof *f);
    f->d.n = n;
    f->d.a = a;
    f->op.n = n;
    f->op.apply = diag_apply;
    f->op.user = &f->d;
    f->run.ctx = ctx;
    f->run.op = &f->op;
    f->run.fn = "test";
    return &f->run;
}

/* The density of a diagonal operator holding c[k] copies of the value v[k]:
 * a Rademacher probe z / sqrt(N) puts weight c[k] / N on v[k] exactly, so
 * every probe's quadrature is the smoothed spectrum itself. */
static double
diag_density(size_t nv, const double *v, const size_t *c, size_t N, double t, double s)
{
    double r = 0;
    for (size_t k = 0; k < nv; k++)
        r += (double)c[k] / (double)N * normal_pdf(t - v[k], s);
    return r;
}

/* SLQ on operators whose Krylov spaces end early (every probe breaks down,
 * the remaining steps find no live probe); bases too big for one group
 * (300000 x 30 doubles a probe: one probe at a time); c I and 0, whose
 * default sigma comes from the value itself (1 %, or 0.01 for 0). */
static void test_slq_breakdown_and_groups(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    diag_fixture f;
    const double grid[5] = {-1.5, -1, 0, 2, 2.1};
    double dens[5];
    {
        enum { N = 300000 };
        double *a = malloc(N * sizeof *a);
        for (int i = 0; i < N; i++)
            a[i] = i % 3 ? 2 : -1;
        const double v[2] = {-1, 2};
        const size_t c[2] = {N / 3, N - N / 3};
        const hess_mark before = hess_context_mark(ctx);
        assert_ok(ctx, hess__slq_density(diag_run(&f, ctx, N, a), 2, 30, 0.25, 5, 5, grid, dens));
        for (int t = 0; t < 5; t++)
            assert_close(dens[t], diag_density(2, v, c, N, grid[t], 0.25), 1e-9, 1e-15);
        assert_int_equal(f.d.products, 2 * 2); /* two steps each, one probe at a time */
        /* cancelled in the first group: the second is not begun */
        progress_log log = {0, 1};
        hess_hessian_opts o = {0};
        o.progress = progress_stop;
        o.user = &log;
        hess__curv_run *run = diag_run(&f, ctx, N, a);
        run->opts = &o;
        assert_int_equal(hess__slq_density(run, 2, 30, 0.25, 5, 5, grid, dens), HESS_ERR_CANCELLED);
        hess_context_clear_error(ctx);
        assert_int_equal(f.d.products, 1);
        const hess_mark after = hess_context_mark(ctx);
        assert_same_mark(&before, &after);
        free(a);
    }
    {
        enum { N = 50 };
        double a[N];
        for (int i = 0; i < N; i++)
            a[i] = i < 10 ? 0.5 : i < 30 ? -2 : 1;
        const double v[3] = {0.5, -2, 1};
        const size_t c[3] = {10, 20, 20};
        /* 100 probes: two product calls per step while they live */
        assert_ok(ctx, hess__slq_density(diag_run(&f, ctx, N, a), 100, 20, 0.3, 1, 5, grid, dens));
        for (int t = 0; t < 5; t++)
            assert_close(dens[t], diag_density(3, v, c, N, grid[t], 0.3), 1e-9, 1e-15);
        assert_int_equal(f.d.products, 100 * 3);
    }
    /* 3 I and 0: one node; sigma 0.03 and 0.01 by default */
    {
        enum { N = 20 };
        double a[N];
        for (int i = 0; i < N; i++)
            a[i] = 3;
        const double g3[3] = {2.97, 3, 3.05};
        assert_ok(ctx, hess__slq_density(diag_run(&f, ctx, N, a), 4, 10, 0, 2, 3, g3, dens));
        for (int t = 0; t < 3; t++)
            assert_close(dens[t], normal_pdf(g3[t] - 3, 0.03), 1e-12, 0);
        memset(a, 0, sizeof a);
        assert_ok(ctx, hess__slq_density(diag_run(&f, ctx, N, a), 4, 10, 0, 2, 3, grid + 1, dens));
        for (int t = 0; t < 3; t++)
            assert_close(dens[t], normal_pdf(grid[1 + t], 0.01), 1e-12, 1e-300);
    }
    hess_context_destroy(ctx);
}

/* Probes that see different numbers of eigenvalues break down at different
 * steps.  A = [[1, 1], [1, 1]] + 2 I_8 (direct sum): eigenvalue 0 on
 * (e1 - e2) / sqrt 2, 2 on the rest; a probe with z1 = z2 sees only 2 (one
 * step), one with z1 = -z2 also 0, with weight 2 / N. */
static void test_slq_probes_end_apart(void **state)
{
    (void)state;
    enum { N = 10, P = 12 };
    hess_context *ctx = test_context();
    double A[N * N] = {0};
    A[0] = A[1] = A[N] = A[N + 1] = 1;
    for (int i = 2; i < N; i++)
        A[i * N + i] = 2;
    fixture f;
    fixture_init(&f, ctx, N, A);
    const double grid[4] = {-0.1, 0, 1, 2};
    double dens[4];
    const uint64_t seed = 21;
    assert_ok(ctx, hess__slq_density(fresh(&f), P, 6, 0.2, seed, 4, grid, dens));
    int opposite = 0; /* probes with z1 = -z2 */
    for (int p = 0; p < P; p++) {
        hess__rng rng;
        double z[N];
        hess__rng_init(&rng, seed, (uint64_t)p + 1);
        hess__rng_signs(&rng, z, N);
        opposite += z[0] == -z[1];
    }
    assert_true(opposite > 0 && opposite < P); /* both kinds: this seed has them */
    const double w0 = (double)opposite / P * 2.0 / N;
    for (int t = 0; t < 4; t++)
        assert_close(dens[t],
                     w0 * normal_pdf(grid[t], 0.2) + (1 - w0) * normal_pdf(grid[t] - 2, 0.2), 1e-10,
                     1e-14);
    assert_int_equal(f.d.products, (size_t)(P + opposite)); /* one or two steps each */
    hess_context_destroy(ctx);
}

/* N = 300 > 256: the first cycle, semi-orthogonal (partial
 * reorthogonalization) on up to 160 vectors.  Converging inside it (a
 * gapped spectrum), for each which: the pairs against the exact ones, the
 * vectors orthonormal to the tolerance; converging only after the basis
 * filled and went into thick restarts (a spectrum crowded at the top); and
 * the invariant subspaces of a rank-5 matrix (breakdowns, a 295-fold 0). */
static void test_lanczos_semi_orthogonal(void **state)
{
    (void)state;
    enum { N = 300, K = 5 };
    hess_context *ctx = test_context();
    double *lam = malloc(N * sizeof *lam), *U = malloc(N * N * sizeof *U);
    double ev[K], *vec = malloc(N * K * sizeof *vec);
    fixture f;
    const hess_mark before = hess_context_mark(ctx);
    for (int i = 0; i < N; i++)
        lam[i] = -1.0 + 2.0 * i / (N - 1.0);
    lam[0] = -2.5, lam[1] = -2.2, lam[2] = -2.0, lam[3] = -1.8, lam[4] = -1.6;
    lam[N - 1] = 3, lam[N - 2] = 2.6, lam[N - 3] = 2.3, lam[N - 4] = 2.1, lam[N - 5] = 1.9;
    double *A = spectrum_matrix(N, lam, 31, U);
    fixture_init(&f, ctx, N, A);
    for (int which = 0; which < 3; which++) {
        assert_ok(ctx, hess__lanczos_eigs(fresh(&f), K, which, 1e-10, N, 7, ev, vec));
        check_pairs(N, A, lam, which == HESS_EIG_MAGNITUDE ? NULL : U, K, which, ev, vec, 1e-9);
        assert_true(orth_error(K, N, vec) <= 1e-9);
        assert_true(f.d.products < 160); /* 31 to 37 */
    }
    /* without the AVX2 copies: the same values, bit for bit (the vectors
     * differ by the rounding of the last product with the basis) */
    {
        hess_context *plain = test_context_flags(HESS_NO_SIMD);
        double ev2[K], *vec2 = malloc(N * K * sizeof *vec2);
        fixture g;
        fixture_init(&g, plain, N, A);
        assert_ok(ctx, hess__lanczos_eigs(fresh(&f), K, HESS_EIG_LARGEST, 1e-10, N, 7, ev, vec));
        assert_ok(plain,
                  hess__lanczos_eigs(fresh(&g), K, HESS_EIG_LARGEST, 1e-10, N, 7, ev2, vec2));
        assert_memory_equal(ev, ev2, sizeof ev);
        assert_close_array(vec, vec2, N * K, 0, 1e-13);
        free(vec2);
        hess_context_destroy(plain);
    }
    free(A);

    for (int i = 0; i < N; i++) /* crowded at the top */
        lam[i] = 1.0 - 1.0 / (1.0 + 0.05 * i);
    A = spectrum_matrix(N, lam, 32, U);
    fixture_init(&f, ctx, N, A);
    assert_ok(ctx, hess__lanczos_eigs(fresh(&f), 3, HESS_EIG_LARGEST, 1e-10, 2000, 8, ev, vec));
    check_pairs(N, A, lam, U, 3, HESS_EIG_LARGEST, ev, vec, 1e-9);
    assert_true(f.d.products > 160); /* 343: it went into the thick restarts */
    free(A);

    memset(lam, 0, N * sizeof *lam); /* rank 5 */
    lam[N - 1] = 4, lam[N - 2] = 3, lam[N - 3] = 2.5, lam[N - 4] = 1, lam[N - 5] = 0.5;
    A = spectrum_matrix(N, lam, 33, U);
    fixture_init(&f, ctx, N, A);
    for (int which = 0; which < 3; which++) {
        assert_ok(ctx, hess__lanczos_eigs(fresh(&f), 3, which, 1e-10, N, 9, ev, vec));
        check_pairs(N, A, lam, which == HESS_EIG_SMALLEST ? NULL : U, 3, which, ev, vec, 1e-9);
        assert_true(orth_error(3, N, vec) <= 1e-9);
        assert_int_equal(f.d.products, 40); /* checks wait 40 steps after a breakdown */
    }
    free(A);
    {
        /* the zero operator: T = 0, every step a breakdown */
        diag_fixture z;
        double *zero = calloc(N, sizeof *zero);
        assert_ok(ctx, hess__lanczos_eigs(diag_run(&z, ctx, N, zero), 2, HESS_EIG_MAGNITUDE, 1e-10,
                                          N, 3, ev, vec));
        assert_true(ev[0] == 0 && ev[1] == 0);
        assert_close(vnorm(N, vec), 1, 1e-14, 0);
        assert_int_equal(z.d.products, 40);
        free(zero);
    }
    const hess_mark after = hess_context_mark(ctx);
    assert_same_mark(&before, &after);
    free(vec);
    free(lam);
    free(U);
    hess_context_destroy(ctx);
}

/* Lanczos where N > 256 but 2k + 20 >= N: a full basis, no restart; and
 * HESS_EIG_MAGNITUDE where the most negative eigenvalue is the largest in
 * magnitude. */
static void test_lanczos_full_basis_and_magnitude(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    fixture f;
    {
        enum { N = 260, K = 120 };
        double *lam = malloc(N * sizeof *lam);
        for (int i = 0; i < N; i++)
            lam[i] = -1.0 + 3.0 * i / (N - 1.0) + (i % 2 ? 0.001 : 0); /* distinct */
        double *A = spectrum_matrix(N, lam, 9, NULL), *ev = malloc(K * sizeof *ev);
        fixture_init(&f, ctx, N, A);
        assert_ok(ctx, hess__lanczos_eigs(fresh(&f), K, HESS_EIG_SMALLEST, 1e-10, N, 4, ev, NULL));
        check_pairs(N, A, lam, NULL, K, HESS_EIG_SMALLEST, ev, NULL, 1e-9);
        assert_true(f.d.products <= N);
        free(ev);
        free(A);
        free(lam);
    }
    {
        enum { N = 9 };
        const double lam[N] = {-9, -1, 0.25, 0.5, 1, 2, 3, 4, 5};
        double U[N * N], ev[3], vec[3 * N];
        double *A = spectrum_matrix(N, lam, 6, U);
        fixture_init(&f, ctx, N, A);
        assert_ok(ctx, hess__lanczos_eigs(fresh(&f), 3, HESS_EIG_MAGNITUDE, 1e-12, N, 1, ev, vec));
        assert_close(ev[0], -9, 0, 1e-12 * 9);
        assert_close(ev[1], 5, 0, 1e-12 * 9);
        assert_close(ev[2], 4, 0, 1e-12 * 9);
        check_pairs(N, A, lam, U, 3, HESS_EIG_MAGNITUDE, ev, vec, 1e-10);
        free(A);
    }
    hess_context_destroy(ctx);
}

/* Estimators on operators where they are exact: Hutchinson on a diagonal
 * (z^T A z = tr A for every Rademacher z) over more probes than one block;
 * every method on the zero operator (XTrace gave -0.36 +- 0.63 there, its
 * sketch A Omega = 0 floored to Q). */
static void test_estimators_exact_cases(void **state)
{
    (void)state;
    enum { N = 150 };
    hess_context *ctx = test_context();
    double a[N], tr = 0, d[N], t, se;
    for (int i = 0; i < N; i++)
        a[i] = 0.5 * i - 20, tr += a[i];
    diag_fixture f;
    progress_log log = {0, 0};
    hess_hessian_opts o = {0};
    o.progress = progress_stop;
    o.user = &log;
    hess__curv_run *run = diag_run(&f, ctx, N, a);
    run->opts = &o;
    assert_ok(ctx, hess__trace_est(run, HESS_EST_HUTCHINSON, 100, 3, &t, &se));
    assert_close(t, tr, 1e-14, 1e-12);
    assert_true(se <= 1e-12);
    assert_int_equal(f.d.products, 100);
    assert_int_equal(log.calls, 2); /* blocks of 64 probes */
    run = diag_run(&f, ctx, N, a);
    assert_ok(ctx, hess__diag_est(run, HESS_EST_HUTCHINSON, 70, 3, d));
    for (int i = 0; i < N; i++)
        assert_close(d[i], a[i], 1e-14, 1e-14);
    /* the zero operator */
    memset(a, 0, sizeof a);
    for (int m = HESS_EST_HUTCHINSON; m <= HESS_EST_XTRACE; m++) {
        t = se = 1;
        assert_ok(ctx, hess__trace_est(diag_run(&f, ctx, N, a), m, 10, 1, &t, &se));
        if (!(fabs(t) <= 1e-300 && se <= 1e-300)) /* XTrace: within its floor, DBL_MIN */
            fail_msg("method %d: trace %g +- %g of the zero operator", m, t, se);
        d[0] = 1;
        assert_ok(ctx, hess__diag_est(diag_run(&f, ctx, N, a), m, 10, 1, d));
        for (int i = 0; i < N; i++)
            if (!(fabs(d[i]) <= 1e-300))
                fail_msg("method %d: diagonal %d is %g for the zero operator", m, i, d[i]);
    }
    hess_context_destroy(ctx);
}

/* Cancellation at every stage of the estimators, the exact diagonal and the
 * solvers: HESS_ERR_CANCELLED after exactly the products asked for, the
 * arena given back. */
static void test_cancel_every_stage(void **state)
{
    (void)state;
    enum { N = 120 };
    hess_context *ctx = test_context();
    double lam[N], t, d[N], b[N], x[N];
    for (int i = 0; i < N; i++)
        lam[i] = 1 + (i % 7), b[i] = 1;
    double *A = spectrum_matrix(N, lam, 2, NULL);
    fixture f;
    fixture_init(&f, ctx, N, A);
    progress_log log = {0, 0};
    hess_hessian_opts o = {0};
    o.progress = progress_stop;
    o.user = &log;
    f.run.opts = &o;
    hess_solve_info info;
    const hess_mark before = hess_context_mark(ctx);
    static const struct {
        int what; /* 0 trace, 1 diag, 2 CG, 3 MINRES */
        int method;
        size_t budget, stop_at, products;
    } cases[] = {
        {0, HESS_EST_HUTCHPP, 30, 21, 30},      /* in the Hutchinson part (after 2 x 10) */
        {1, HESS_EST_HUTCHPP, 30, 21, 30},      /* idem, for the diagonal */
        {0, HESS_EST_XTRACE, 20, 11, 20},       /* at the second half of the sketch */
        {1, HESS_EST_XTRACE, 20, 10, 10},       /* at its first half */
        {1, HESS_EST_XTRACE, 20, 11, 20},       /* at its second half */
        {0, HESS_EST_HUTCHINSON, 100, 1, 64},   /* the first block */
        {1, HESS_EST_HUTCHINSON, 100, 65, 100}, /* the second block */
        {0, HESS_EST_HUTCHPP, N, 64, 64},       /* exact: the first block of unit vectors */
        {1, HESS_EST_XTRACE, N + 1, 65, N},     /* exact: the second */
        {2, 0, 0, 3, 3},
        {3, 0, 0, 5, 5},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        log.stop_at = cases[k].stop_at;
        hess_status st;
        switch (cases[k].what) {
        case 0:
            st = hess__trace_est(fresh(&f), cases[k].method, cases[k].budget, 1, &t, NULL);
            break;
        case 1:
            st = hess__diag_est(fresh(&f), cases[k].method, cases[k].budget, 1, d);
            break;
        case 2:
            st = hess__cg(fresh(&f), b, 0.5, 1e-14, 100, x, &info);
            break;
        default:
            st = hess__minres(fresh(&f), b, 0.5, 1e-14, 100, x, &info);
            break;
        }
        if (st != HESS_ERR_CANCELLED || f.d.products != cases[k].products)
            fail_msg("case %zu: status %d, %zu products (want %zu)", k, (int)st, f.d.products,
                     cases[k].products);
        assert_non_null(strstr(hess_context_errmsg(ctx), "cancelled"));
        hess_context_clear_error(ctx);
        const hess_mark after = hess_context_mark(ctx);
        assert_same_mark(&before, &after);
    }
    free(A);
    hess_context_destroy(ctx);
}

/* MINRES stopped by max_iter; on a singular system whose b lies in the null
 * space, x = 0 and the true residual ||b||, not "converged" (it said so, with
 * a residual of 0, before); on a singular consistent one, the solution. */
static void test_minres_singular_and_max_iter(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    enum { N = 4 };
    const double A[N * N] = {2, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 3};
    fixture f;
    fixture_init(&f, ctx, N, A);
    hess_solve_info info;
    double x[N];
    /* b in the null space: x = 0, residual ||b||, one product */
    const double b0[N] = {0, 1.5, 0, 0};
    assert_ok(ctx, hess__minres(fresh(&f), b0, 0, 1e-12, 10, x, &info));
    assert_true(x[0] == 0 && x[1] == 0 && x[2] == 0 && x[3] == 0);
    assert_true(!info.converged && info.rel_residual == 1 && info.iterations == 1);
    /* consistent: solved */
    const double b2[N] = {2, 0, 1, 3};
    assert_ok(ctx, hess__minres(fresh(&f), b2, 0, 1e-12, 10, x, &info));
    const double want2[N] = {1, 0, -1, 1};
    assert_close_array(x, want2, N, 0, 1e-12);
    assert_true(info.converged && info.rel_residual <= 1e-12);
    /* max_iter reached */
    enum { M = 40 };
    double lam[M], b[M], y[M];
    for (int i = 0; i < M; i++)
        lam[i] = (i % 2 ? 1 : -1) * (0.01 + i), b[i] = 1;
    double *B = spectrum_matrix(M, lam, 5, NULL);
    fixture g;
    fixture_init(&g, ctx, M, B);
    assert_ok(ctx, hess__minres(fresh(&g), b, 0, 1e-12, 3, y, &info));
    assert_true(info.iterations == 3 && !info.converged && info.rel_residual > 1e-12 &&
                info.rel_residual < 1);
    assert_int_equal(g.d.products, 3);
    free(B);
    hess_context_destroy(ctx);
}

/* Eigenvalues near the largest double: the projected eigenproblems overflow
 * (their shifts are differences of +-1e308) and do not converge, which the
 * algorithms report as HESS_ERR_NONFINITE, the arena given back. */
static void test_overflowing_eigenproblems(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    diag_fixture f;
    const double grid[2] = {0, 1};
    double dens[2] = {-1, -1}, ev[2];
    const hess_mark before = hess_context_mark(ctx);
    /* SLQ: T = [[0, b], [b, 0]] with b = 1.7e308, whose rotations overflow */
    const double a2[2] = {1.7e308, -1.7e308};
    assert_int_equal(hess__slq_density(diag_run(&f, ctx, 2, a2), 2, 2, 1, 3, 2, grid, dens),
                     HESS_ERR_NONFINITE);
    expect_msg(ctx, HESS_ERR_NONFINITE, HESS_ERR_NONFINITE,
               "test: the 2 x 2 tridiagonal eigenproblem of probe 0 did not converge");
    assert_true(dens[0] == -1 && dens[1] == -1); /* not written */
    /* Lanczos: the Ritz problem */
    const double a6[6] = {1.5e308, -1.5e308, 1e308, -1e308, 0.5, 1.7e308};
    assert_int_equal(
        hess__lanczos_eigs(diag_run(&f, ctx, 6, a6), 2, HESS_EIG_LARGEST, 1e-10, 6, 3, ev, NULL),
        HESS_ERR_NONFINITE);
    expect_msg(ctx, HESS_ERR_NONFINITE, HESS_ERR_NONFINITE,
               "test: the 4 x 4 projected eigenproblem did not converge");
    const hess_mark after = hess_context_mark(ctx);
    assert_same_mark(&before, &after);
    hess_context_destroy(ctx);
}

/* Every product is 1e308 in each of 16 elements: ||A v|| = 4e308 is not a
 * double.  Both Lanczos loops refuse it rather than read the Inf as a
 * breakdown (before, SLQ put the whole spectrum at 0 with HESS_OK). */
static hess_status huge_apply(void *user, size_t m, const double *X, double *Y)
{
    const diag_op *d = user;
    (void)X;
    for (size_t i = 0; i < m * d->n; i++)
        Y[i] = 1e308;
    return HESS_OK;
}

static void test_overflowing_norm(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    diag_fixture f;
    const double grid[2] = {0, 1};
    double *a = calloc(300, sizeof *a);
    const hess_mark before = hess_context_mark(ctx);
    /* N = 16 (full reorthogonalization) and 300 (partial), SLQ and Lanczos */
    for (int c = 0; c < 4; c++) {
        double dens[2] = {-1, -1}, ev[2] = {-1, -1};
        hess__curv_run *run = diag_run(&f, ctx, c < 2 ? 16 : 300, a);
        f.op.apply = huge_apply;
        const hess_status st =
            c % 2 ? hess__lanczos_eigs(run, 1, HESS_EIG_LARGEST, 1e-10, f.d.n, 3, ev, NULL)
                  : hess__slq_density(run, 1, 4, 1, 3, 2, grid, dens);
        expect_msg(ctx, st, HESS_ERR_NONFINITE,
                   "test: ||H v|| = inf for a unit vector v (the operator's norm is not a finite "
                   "double)");
        assert_true(dens[0] == -1 && dens[1] == -1);
    }
    const hess_mark after = hess_context_mark(ctx);
    assert_same_mark(&before, &after);
    free(a);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* The public functions: more options and edges                             */
/* ------------------------------------------------------------------------ */

/* Methods of other functions, named in the refusal; infinite tolerance and
 * damping. */
static void test_public_more_refusals(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    net m;
    build_mlp_graph(ctx, &m, 42);
    hess_tensor **p = m.p;
    double ev[2], g[2] = {0, 1}, dens[2], t, b[26] = {1}, x[26];
    hess_hessian_opts o = {0};
    o.method = HESS_EST_HUTCHINSON;
    expect_error(ctx, hess_eigs(ctx, m.loss, 4, p, 2, 0, &o, ev, NULL), HESS_ERR_ARG, "hess_eigs",
                 "is HESS_EST_HUTCHINSON (of the estimators); hess_eigs takes no method (0)");
    o.method = HESS_SOLVE_MINRES;
    expect_error(ctx, hess_spectral_density(ctx, m.loss, 4, p, &o, 2, g, dens), HESS_ERR_ARG,
                 "hess_spectral_density",
                 "is HESS_SOLVE_MINRES (of hess_solve); hess_spectral_density takes no method");
    o.method = HESS_DIAG_BACKPROP;
    expect_error(ctx, hess_trace_estimate(ctx, m.loss, 4, p, &o, &t, NULL), HESS_ERR_ARG,
                 "hess_trace_estimate", "is HESS_DIAG_BACKPROP (of the diagonal functions)");
    o.method = HESS_EST_HUTCHPP;
    expect_error(ctx, hess_solve(ctx, m.loss, 4, p, b, 0, &o, x, NULL), HESS_ERR_ARG, "hess_solve",
                 "is HESS_EST_HUTCHPP (of the estimators); hess_solve takes HESS_SOLVE_CG or "
                 "HESS_SOLVE_MINRES");
    o.method = 0;
    o.tol = INFINITY;
    expect_error(ctx, hess_solve(ctx, m.loss, 4, p, b, 0, &o, x, NULL), HESS_ERR_ARG, "hess_solve",
                 "opts.tol = inf must be finite and >= 0");
    o.tol = 0;
    expect_error(ctx, hess_solve(ctx, m.loss, 4, p, b, INFINITY, &o, x, NULL), HESS_ERR_ARG,
                 "hess_solve", "damping = inf must be finite and >= 0");
    hess_context_destroy(ctx);
}

/* Linear regression on B samples of F features: H = (2 / B) X^T X, whose
 * nonzero eigenvalues are those of the B x B matrix (2 / B) X X^T. */
typedef struct linreg {
    hess_tensor *w, *loss;
    double gram_eig[8]; /* increasing */
} linreg;

static void build_linreg(hess_context *ctx, linreg *r, int B, int F, uint64_t seed)
{
    double *x = malloc((size_t)B * F * sizeof *x), *w = malloc((size_t)F * sizeof *w), y[8];
    double G[64];
    assert_true(B <= 8);
    for (int i = 0; i < B * F; i++)
        x[i] = rnd_uniform(&seed, -1, 1);
    for (int i = 0; i < F; i++)
        w[i] = rnd_uniform(&seed, -1, 1);
    for (int i = 0; i < B; i++)
        y[i] = rnd_uniform(&seed, -1, 1);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) {
            double s = 0;
            for (int k = 0; k < F; k++)
                s += x[i * F + k] * x[j * F + k];
            G[i * B + j] = 2.0 * s / B;
        }
    ref_eig((size_t)B, G, r->gram_eig, NULL);
    hess_tensor *X = hess_tensor_new(ctx, 2, (const int64_t[]){B, F}, x);
    hess_tensor *Y = hess_tensor_new(ctx, 2, (const int64_t[]){B, 1}, y);
    r->w = hess_param_new(ctx, 2, (const int64_t[]){1, F}, w);
    r->loss = hess_mse_loss(ctx, hess_linear(ctx, X, r->w, NULL), Y);
    assert_non_null(r->loss);
    free(x);
    free(w);
}

/* N = 310 >= 300 parameters (the default max_iter is 300, not N) with a Hessian
 * of rank 5: Lanczos breaks down after 6 products and goes on in random
 * directions; the largest eigenvalues are the Gram matrix's, the smallest 0.
 * A tolerance of the caller's. */
static void test_public_eigs_low_rank(void **state)
{
    (void)state;
    enum { B = 5, F = 310 };
    hess_context *ctx = test_context();
    linreg r;
    build_linreg(ctx, &r, B, F, 17);
    double ev[3];
    assert_ok(ctx, hess_eigs(ctx, r.loss, 1, &r.w, 3, HESS_EIG_LARGEST, NULL, ev, NULL));
    for (int c = 0; c < 3; c++)
        assert_close(ev[c], r.gram_eig[B - 1 - c], 1e-9, 0);
    /* the two smallest are 0 (305 times): the Krylov space of the start
     * vector is invariant after 6 products to about 1e-11 of ||H||, above
     * which it was taken for converged, giving 0 and the least nonzero */
    hess_hessian_opts o = {0};
    o.seed = 3;
    double vec[2 * F];
    for (int k = 0; k < 2; k++) {
        o.tol = k ? 1e-6 : 0;
        assert_ok(ctx, hess_eigs(ctx, r.loss, 1, &r.w, 2, HESS_EIG_SMALLEST, &o, ev, vec));
        printf("rank 5, N = %d: smallest %g %g (tol %g), largest %g\n", F, ev[0], ev[1], o.tol,
               r.gram_eig[B - 1]);
        assert_true(fabs(ev[0]) <= 1e-9 * r.gram_eig[B - 1]);
        assert_true(fabs(ev[1]) <= 1e-9 * r.gram_eig[B - 1]);
        /* the vectors: unit, orthogonal, in H's null space (H x = 0 to rounding) */
        assert_close(hess__dot(F, vec, vec + F), 0, 0, 1e-10);
        for (int c = 0; c < 2; c++) {
            assert_close(vnorm(F, vec + c * F), 1, 1e-12, 0);
            double hx[F];
            assert_ok(ctx, hess_hvp(ctx, r.loss, 1, &r.w, vec + c * F, hx));
            assert_true(vnorm(F, hx) <= 1e-6 * r.gram_eig[B - 1]);
        }
    }
    hess_context_destroy(ctx);
}

/* An unused parameter under HESS_ALLOW_UNUSED: zero rows.  The eigenvalues
 * are the model's and 0; MINRES on a right-hand side only on the unused
 * parameter returns x = 0, not converged, residual 1.  k = N - 1 by
 * magnitude; density steps few and more than N; estimator budgets at their
 * least, odd, and at N below the least. */
static void test_public_edges(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    net m;
    build_mlp(ctx, &m, 42);
    const size_t N = m.N;
    hess_tensor *unused = hess_param_new(ctx, 1, (const int64_t[]){2}, (const double[]){1, 2});
    hess_tensor *pu[5] = {m.p[0], m.p[1], m.p[2], m.p[3], unused};
    hess_hessian_opts o = {0};
    o.flags = HESS_ALLOW_UNUSED;
    double ev[28], vec[28 * 28];
    assert_ok(ctx, hess_eigs(ctx, m.loss, 5, pu, 3, HESS_EIG_LARGEST, &o, ev, NULL));
    for (int c = 0; c < 3; c++)
        assert_close(ev[c], m.lam[N - 1 - c], 1e-8, 1e-10);
    double b[28] = {0}, x[28];
    b[N + 1] = 2; /* on the unused parameter only */
    o.method = HESS_SOLVE_MINRES;
    hess_solve_info info;
    assert_ok(ctx, hess_solve(ctx, m.loss, 5, pu, b, 0, &o, x, &info));
    for (size_t i = 0; i < N + 2; i++)
        assert_true(x[i] == 0);
    assert_true(!info.converged && info.rel_residual == 1 && info.iterations == 1);
    o.flags = 0;
    o.method = 0;

    /* k = N - 1 by magnitude */
    assert_ok(ctx, hess_eigs(ctx, m.loss, 4, m.p, N - 1, HESS_EIG_MAGNITUDE, NULL, ev, vec));
    check_pairs(N, m.H, m.lam, NULL, N - 1, HESS_EIG_MAGNITUDE, ev, vec, 1e-8);

    /* density: 3 steps; 1000 steps (N used); each integrates to 1 */
    enum { G = 801 };
    double *grid = malloc(G * sizeof *grid), *dens = malloc(G * sizeof *dens);
    o.sigma = 0.05 * (m.lam[N - 1] - m.lam[0]);
    const double lo = m.lam[0] - 8 * o.sigma, hi = m.lam[N - 1] + 8 * o.sigma;
    const double dx = (hi - lo) / (G - 1);
    for (int t = 0; t < G; t++)
        grid[t] = lo + t * dx;
    o.n_probes = 4;
    for (int k = 0; k < 2; k++) {
        o.lanczos_steps = k ? 1000 : 3;
        assert_ok(ctx, hess_spectral_density(ctx, m.loss, 4, m.p, &o, G, grid, dens));
        double mass = 0;
        for (int t = 0; t < G; t++)
            mass += dens[t] * dx;
        assert_close(mass, 1, 1e-6, 0);
    }
    /* 1000 steps are N steps: the same as asking for N */
    double *d2 = malloc(G * sizeof *d2);
    o.lanczos_steps = N;
    assert_ok(ctx, hess_spectral_density(ctx, m.loss, 4, m.p, &o, G, grid, d2));
    assert_memory_equal(dens, d2, G * sizeof *d2);
    free(d2);
    free(grid);
    free(dens);

    /* budgets: Hutch++ 3 and XTrace 4 (the least), XTrace 5 (odd: 4 used) */
    double trm = 0, t, se;
    for (size_t i = 0; i < N; i++)
        trm += m.H[i * N + i];
    memset(&o, 0, sizeof o);
    int used = 0;
    o.method_used = &used;
    static const struct {
        int method;
        size_t probes;
    } budgets[] = {{HESS_EST_HUTCHPP, 3}, {HESS_EST_XTRACE, 4}, {HESS_EST_XTRACE, 5}};
    for (size_t k = 0; k < 3; k++) {
        o.method = budgets[k].method;
        o.n_probes = budgets[k].probes;
        assert_ok(ctx, hess_trace_estimate(ctx, m.loss, 4, m.p, &o, &t, &se));
        assert_int_equal(used, budgets[k].method);
        assert_true(isfinite(t) && se >= 0 && fabs(t - trm) <= 6 * se + 1e-9);
    }
    free(m.H);

    /* N = 2 parameters, n_probes 2: below Hutch++'s least, but N, so exact */
    hess_tensor *w = hess_param_new(ctx, 1, (const int64_t[]){2}, (const double[]){0.5, -1});
    hess_tensor *q =
        hess_sum(ctx, hess_mul(ctx, hess_mul(ctx, w, w), w)); /* sum w^3: H = diag(6 w) */
    o.method = HESS_EST_HUTCHPP;
    o.n_probes = 2;
    assert_ok(ctx, hess_trace_estimate(ctx, q, 1, &w, &o, &t, &se));
    assert_true(t == 6 * 0.5 - 6 && se == 0);
    double d[2];
    assert_ok(ctx, hess_diag_estimate(ctx, q, 1, &w, &o, d));
    assert_true(d[0] == 3 && d[1] == -6);
    hess_context_destroy(ctx);
}

/* Every allocation of every algorithm fails in turn (once, and from then on),
 * on a dense operator of 120 rows (the restarted Lanczos and SLQ on one of 300):
 * HESS_ERR_NOMEM naming the caller, the arena given back, nothing leaked, and
 * then the same result as without failures. */
enum { ALGO_CALLS = 12 };

static hess_status algo_call(hess__curv_run *run, int c, double *out)
{
    static const double grid[3] = {-1, 0.5, 2};
    const size_t N = run->op->n;
    double b[300];
    for (size_t i = 0; i < N; i++)
        b[i] = 0.01 * (double)i - 0.5;
    hess_solve_info info;
    switch (c) {
    case 0:
        return hess__lanczos_eigs(run, 3, HESS_EIG_LARGEST, 1e-10, N, 2, out, out + 3);
    case 1:
        return hess__slq_density(run, 70, 8, 0.2, 3, 3, grid, out);
    case 2:
        return hess__trace_est(run, HESS_EST_HUTCHINSON, 9, 1, out, out + 1);
    case 3:
        return hess__trace_est(run, HESS_EST_HUTCHPP, 9, 1, out, out + 1);
    case 4:
        return hess__trace_est(run, HESS_EST_XTRACE, 8, 1, out, out + 1);
    case 5:
        return hess__trace_est(run, HESS_EST_HUTCHPP, N, 1, out, out + 1);
    case 6:
        return hess__diag_est(run, HESS_EST_HUTCHINSON, 9, 1, out);
    case 7:
        return hess__diag_est(run, HESS_EST_HUTCHPP, 9, 1, out);
    case 8:
        return hess__diag_est(run, HESS_EST_XTRACE, 8, 1, out);
    case 9:
        return hess__diag_est(run, HESS_EST_XTRACE, N, 1, out);
    case 10:
        return hess__cg(run, b, 8.0, 1e-10, 50, out, &info);
    case ALGO_CALLS + 1: /* N = 300: the probes' partial reorthogonalization */
        return hess__slq_density(run, 4, 8, 0.2, 3, 3, grid, out);
    default:
        return hess__minres(run, b, 0.5, 1e-10, 50, out, &info);
    }
}

static void test_algorithms_out_of_memory(void **state)
{
    (void)state;
    enum { N = 120, NB = 300 };
    double lam[NB];
    for (int i = 0; i < NB; i++)
        lam[i] = -3 + 10.0 * i / NB;
    double *A = spectrum_matrix(N, lam, 4, NULL), *Abig = spectrum_matrix(NB, lam, 4, NULL);
    /* c = ALGO_CALLS, ALGO_CALLS + 1: Lanczos restarted and SLQ on 300 */
    for (int c = 0; c <= ALGO_CALLS + 1; c++) {
        const size_t n = c >= ALGO_CALLS ? NB : N;
        const double *M = c >= ALGO_CALLS ? Abig : A;
        const int call = c == ALGO_CALLS ? 0 : c;
        double *want = calloc(NB * 4, sizeof *want), *got = calloc(NB * 4, sizeof *got);
        for (int sticky = 0; sticky < 2; sticky++)
            for (long k = 1;; k++) {
                fail_mem a = {0, 0, sticky};
                hess_context *ctx = fail_mem_context(&a, 1024);
                fixture f;
                if (k == 1 && sticky == 0) { /* the reference, in a context of its own */
                    fixture_init(&f, ctx, n, M);
                    assert_ok(ctx, algo_call(fresh(&f), call, want));
                    hess_context_destroy(ctx);
                    ctx = fail_mem_context(&a, 1024);
                }
                fixture_init(&f, ctx, n, M);
                a.fail_at = a.count + k;
                memset(got, 0, NB * 4 * sizeof *got);
                const hess_mark before = hess_context_mark(ctx);
                const hess_status st = algo_call(fresh(&f), call, got);
                const int reached = a.count >= a.fail_at;
                if (st == HESS_OK) {
                    assert_memory_equal(got, want, NB * 4 * sizeof *got);
                } else {
                    if (st != HESS_ERR_NOMEM || strncmp(hess_context_errmsg(ctx), "test: ", 6) ||
                        !strstr(hess_context_errmsg(ctx), "out of memory"))
                        fail_msg("call %d, allocation %ld%s: status %d, \"%s\"", c, k,
                                 sticky ? " on" : "", (int)st, hess_context_errmsg(ctx));
                    const hess_mark after = hess_context_mark(ctx);
                    assert_same_mark(&before, &after);
                    hess_context_clear_error(ctx);
                    a.fail_at = 0;
                    memset(got, 0, NB * 4 * sizeof *got);
                    assert_ok(ctx, algo_call(fresh(&f), call, got));
                    assert_memory_equal(got, want, NB * 4 * sizeof *got);
                }
                hess_context_destroy(ctx);
                if (!reached) {
                    if (k == 1)
                        fail_msg("call %d makes no allocation", c);
                    break;
                }
            }
        free(want);
        free(got);
    }
    free(A);
    free(Abig);
}

int main(int argc, char **argv)
{
    if (argc > 1) /* a pattern: run only the tests it matches */
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tridiag_and_dense_eig),
        cmocka_unit_test(test_tridiag_vectors),
        cmocka_unit_test(test_orth_rows_rank_deficient),
        cmocka_unit_test(test_lanczos_restarted),
        cmocka_unit_test(test_lanczos_semi_orthogonal),
        cmocka_unit_test(test_lanczos_small_and_multiple),
        cmocka_unit_test(test_lanczos_no_convergence),
        cmocka_unit_test(test_slq_density),
        cmocka_unit_test(test_slq_semi_orthogonal),
        cmocka_unit_test(test_estimators_exact_low_rank),
        cmocka_unit_test(test_estimators_statistics),
        cmocka_unit_test(test_solvers_dense),
        cmocka_unit_test(test_algorithms_nan_and_cancel),
        cmocka_unit_test(test_public_eigs),
        cmocka_unit_test(test_public_density),
        cmocka_unit_test(test_public_estimators),
        cmocka_unit_test(test_public_solve),
        cmocka_unit_test(test_public_bad_arguments),
        cmocka_unit_test(test_public_out_of_memory),
        cmocka_unit_test(test_algorithms_refuse),
        cmocka_unit_test(test_linalg_edges),
        cmocka_unit_test(test_slq_breakdown_and_groups),
        cmocka_unit_test(test_slq_probes_end_apart),
        cmocka_unit_test(test_lanczos_full_basis_and_magnitude),
        cmocka_unit_test(test_estimators_exact_cases),
        cmocka_unit_test(test_cancel_every_stage),
        cmocka_unit_test(test_minres_singular_and_max_iter),
        cmocka_unit_test(test_overflowing_eigenproblems),
        cmocka_unit_test(test_overflowing_norm),
        cmocka_unit_test(test_public_more_refusals),
        cmocka_unit_test(test_public_eigs_low_rank),
        cmocka_unit_test(test_public_edges),
        cmocka_unit_test(test_algorithms_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
