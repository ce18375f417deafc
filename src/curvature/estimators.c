/*
 * estimators.c -- randomized trace and diagonal estimators from products with
 * a symmetric operator A:
 *
 *   Hutchinson     tr A ~ mean z^T A z,  diag A ~ mean z . (A z), z Rademacher;
 *   Hutch++        Q = orth(A S) from a third of the budget; tr(Q^T A Q) (a
 *                  third) exact, the rest Hutchinson on (I - QQ^T) A (I - QQ^T)
 *                  (Meyer, Musco, Musco and Woodruff 2021); for the diagonal
 *                  diag(Q Q^T A) exact plus Hutchinson on (I - QQ^T) A;
 *   XTrace/XDiag   half the budget sketches Y = A Omega, half computes A Q; each
 *                  test vector w_i is used for Hutchinson on the complement of
 *                  the basis Q_(i) of the other test vectors, and the m
 *                  estimates are averaged (Epperly, Tropp and Webber 2024).
 *
 * A budget of at least N products gives the exact value from N unit vectors.
 * Probes are multiplied in blocks, so that the products are matrix-matrix work.
 *
 * Legend: N = the operator's dimension; blocks are row-major, one vector per
 * row; s = sketch size (Hutch++), m = test vectors (XTrace).
 */
#include "curvature.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Probes multiplied per call in the Hutchinson parts. */
#define PROBE_BLOCK 64

/* Random streams of one estimate (the same seed, the same probes). */
enum { STREAM_SKETCH = 1, STREAM_FILL = 2, STREAM_PROBES = 3 };

static const char *est_name(int method)
{
    return method == HESS_EST_HUTCHINSON ? "Hutchinson"
           : method == HESS_EST_HUTCHPP  ? "Hutch++"
                                         : "XTrace";
}

size_t hess__est_min_budget(int method)
{
    /* Hutch++: a sketch vector, its product and one probe; XTrace: two test
     * vectors, so that each has another to leave out */
    return method == HESS_EST_HUTCHINSON ? 1 : method == HESS_EST_HUTCHPP ? 3 : 4;
}

static hess_status check_request(hess__curv_run *run, int method, size_t budget)
{
    const size_t N = run->op->n;
    if (method != HESS_EST_HUTCHINSON && method != HESS_EST_HUTCHPP && method != HESS_EST_XTRACE) {
        hess__error(run->ctx, HESS_ERR_ARG, "%s: method %d is not an estimator", run->fn, method);
        return HESS_ERR_ARG;
    }
    if (budget < N && budget < hess__est_min_budget(method)) {
        hess__error(run->ctx, HESS_ERR_ARG,
                    "%s: n_probes = %zu is too small for %s (at least %zu products, or N = %zu "
                    "for the exact value)",
                    run->fn, budget, est_name(method), hess__est_min_budget(method), N);
        return HESS_ERR_ARG;
    }
    return HESS_OK;
}

/* Running mean and variance (Welford). */
typedef struct moments {
    size_t n;
    double mean, m2;
} moments;

static void moments_add(moments *s, double x)
{
    s->n++;
    const double d = x - s->mean;
    s->mean += d / (double)s->n;
    s->m2 += d * (x - s->mean);
}

/* The standard error of the mean of s; from one sample, the bound
 * sqrt(2) ||B z|| of Hutchinson's (Var z^T B z <= 2 ||B||_F^2, and ||B z||^2
 * estimates ||B||_F^2), bz being that norm. */
static double std_error(const moments *s, double bz)
{
    if (s->n >= 2)
        return sqrt(s->m2 / (double)(s->n - 1) / (double)s->n);
    return sqrt(2.0) * bz;
}

/* ------------------------------------------------------------------------ */
/* Exact: N unit vectors                                                    */
/* ------------------------------------------------------------------------ */

static hess_status exact_diag(hess__curv_run *run, double *diag)
{
    const size_t N = run->op->n, B = N < PROBE_BLOCK ? N : PROBE_BLOCK;
    const hess_mark mk = hess__mark(run->ctx);
    double *X = hess__curv_doubles(run, B, N), *Y = hess__curv_doubles(run, B, N);
    hess_status st = X && Y ? HESS_OK : run->ctx->status;
    if (st == HESS_OK)
        memset(X, 0, B * N * sizeof *X);
    run->total = N;
    for (size_t r0 = 0; r0 < N && st == HESS_OK; r0 += B) {
        const size_t bb = N - r0 < B ? N - r0 : B;
        for (size_t q = 0; q < bb; q++)
            X[q * N + r0 + q] = 1.0;
        st = hess__curv_apply(run, bb, X, Y);
        for (size_t q = 0; q < bb; q++) {
            X[q * N + r0 + q] = 0.0;
            if (st == HESS_OK)
                diag[r0 + q] = Y[q * N + r0 + q];
        }
    }
    hess__rewind(run->ctx, &mk);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Hutchinson                                                               */
/* ------------------------------------------------------------------------ */

/* Hutchinson over count probes of stream STREAM_PROBES.  When Q (s x N
 * orthonormal rows) is given the probes are first projected, z <- (I - QQ^T)
 * z, and for the diagonal the products too, A z <- (I - QQ^T) A z (Hutch++'s
 * remainders).  Adds z^T (A z) to *tr (when tr is not NULL) and z . (A z) /
 * count to diag (when not NULL). */
static hess_status hutchinson(hess__curv_run *run,
                              size_t count,
                              uint64_t seed,
                              const double *Q,
                              size_t s,
                              moments *tr,
                              double *bz,
                              double *diag)
{
    const size_t N = run->op->n, B = count < PROBE_BLOCK ? count : PROBE_BLOCK;
    const hess_mark mk = hess__mark(run->ctx);
    double *Z = hess__curv_doubles(run, B, N), *Y = hess__curv_doubles(run, B, N);
    if (!Z || !Y) {
        hess__rewind(run->ctx, &mk);
        return run->ctx->status;
    }
    hess__rng rng;
    hess__rng_init(&rng, seed, STREAM_PROBES);
    hess_status st = HESS_OK;
    for (size_t r0 = 0; r0 < count; r0 += B) { /* a failed product breaks out */
        const size_t bb = count - r0 < B ? count - r0 : B;
        hess__rng_signs(&rng, Z, bb * N);
        if (Q && tr)
            for (size_t q = 0; q < bb; q++)
                hess__orth_against(s, Q, N, Z + q * N, NULL);
        if ((st = hess__curv_apply(run, bb, Z, Y)) != HESS_OK)
            break;
        for (size_t q = 0; q < bb; q++) {
            const double *z = Z + q * N;
            double *y = Y + q * N;
            if (Q) /* (I - QQ^T) A z: the part of the product outside the sketch */
                hess__orth_against(s, Q, N, y, NULL);
            if (tr) {
                moments_add(tr, hess__dot(N, z, y));
                *bz = hess__nrm2(N, y);
            }
            if (diag)
                for (size_t i = 0; i < N; i++)
                    diag[i] += z[i] * y[i] / (double)count;
        }
    }
    hess__rewind(run->ctx, &mk);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Hutch++                                                                  */
/* ------------------------------------------------------------------------ */

/* Q = orth(A S) (s x N) and AQ = A Q, from 2s products. */
static hess_status sketch(hess__curv_run *run, size_t s, uint64_t seed, double *Q, double *AQ)
{
    const size_t N = run->op->n;
    hess__rng rng;
    hess__rng_init(&rng, seed, STREAM_SKETCH);
    hess__rng_signs(&rng, AQ, s * N); /* S, in AQ's room until A Q is known */
    hess_status st = hess__curv_apply(run, s, AQ, Q);
    if (st != HESS_OK)
        return st;
    hess__rng_init(&rng, seed, STREAM_FILL);
    hess__orth_rows(s, N, Q, NULL, &rng);
    return hess__curv_apply(run, s, Q, AQ);
}

static hess_status hutchpp(
    hess__curv_run *run, size_t budget, uint64_t seed, double *trace, double *std_err, double *diag)
{
    const size_t N = run->op->n, s = budget / 3, g = budget - 2 * s;
    const hess_mark mk = hess__mark(run->ctx);
    double *Q = hess__curv_doubles(run, s, N), *AQ = hess__curv_doubles(run, s, N);
    hess_status st = Q && AQ ? sketch(run, s, seed, Q, AQ) : run->ctx->status;
    if (st == HESS_OK && trace) {
        double exact = 0.0; /* tr(Q^T A Q) */
        for (size_t c = 0; c < s; c++)
            exact += hess__dot(N, Q + c * N, AQ + c * N);
        moments m = {0};
        double bz = 0.0;
        st = hutchinson(run, g, seed, Q, s, &m, &bz, NULL);
        if (st == HESS_OK) {
            *trace = exact + m.mean;
            if (std_err)
                *std_err = std_error(&m, bz);
        }
    }
    if (st == HESS_OK && diag) {
        /* diag(Q Q^T A)_i = sum_c Q[c][i] (A q_c)_i, A being symmetric */
        memset(diag, 0, N * sizeof *diag);
        for (size_t c = 0; c < s; c++)
            for (size_t i = 0; i < N; i++)
                diag[i] += Q[c * N + i] * AQ[c * N + i];
        st = hutchinson(run, g, seed, Q, s, NULL, NULL, diag);
    }
    hess__rewind(run->ctx, &mk);
    return st;
}

/* ------------------------------------------------------------------------ */
/* XTrace and XDiag                                                         */
/* ------------------------------------------------------------------------ */

/*
 * With Y = A Omega = Q R (m test vectors w_i, rows of Omega), the basis of all
 * test vectors but w_i spans Q (I - s_i s_i^T) Q^T, s_i = R^{-T} e_i /
 * ||R^{-T} e_i||: the one direction of range(R) that the other columns of R
 * miss.  So every leave-one-out quantity is an m x m computation on
 * H = Q^T A Q, W = Q^T Omega, T = (A Q) Omega^T and R.
 */
typedef struct xsketch {
    size_t m;
    double *Om, *Q, *AQ; /* m x N each */
    double *R, *S;       /* m x m; row i of S is s_i */
} xsketch;

static hess_status xsketch_make(hess__curv_run *run, size_t m, uint64_t seed, xsketch *x)
{
    const size_t N = run->op->n;
    x->m = m;
    x->Om = hess__curv_doubles(run, m, N);
    x->Q = hess__curv_doubles(run, m, N);
    x->AQ = hess__curv_doubles(run, m, N);
    x->R = hess__curv_doubles(run, m, m);
    x->S = hess__curv_doubles(run, m, m);
    if (!x->Om || !x->Q || !x->AQ || !x->R || !x->S)
        return run->ctx->status;
    hess__rng rng;
    hess__rng_init(&rng, seed, STREAM_SKETCH);
    hess__rng_signs(&rng, x->Om, m * N);
    hess_status st = hess__curv_apply(run, m, x->Om, x->Q);
    if (st != HESS_OK)
        return st;
    hess__rng_init(&rng, seed, STREAM_FILL);
    hess__orth_rows(m, N, x->Q, x->R, &rng);
    if ((st = hess__curv_apply(run, m, x->Q, x->AQ)) != HESS_OK)
        return st;

    /* A rank-deficient Y leaves zeros (or rounding) on R's diagonal: a floor
     * of eps ||R|| keeps R^{-T} finite, and the s_i it gives lie in the
     * directions the sketch did not reach, which is the limit of Y + tiny.
     * Y = 0 (A Omega = 0) has no scale: the floor is the least normal
     * double, as tiny as can be (a floor of 1 made Q R = Q, not A Omega). */
    double rn = 0.0;
    for (size_t i = 0; i < m * m; i++)
        rn = hypot(rn, x->R[i]);
    const double least = rn > 0 ? DBL_EPSILON * rn : DBL_MIN;
    for (size_t c = 0; c < m; c++)
        if (x->R[c * m + c] < least)
            x->R[c * m + c] = least;
    /* s_i: solve R^T s = e_i (forward substitution), then normalise */
    for (size_t i = 0; i < m; i++) {
        double *s = x->S + i * m;
        memset(s, 0, m * sizeof *s);
        for (size_t c = i; c < m; c++) {
            double t = c == i ? 1.0 : 0.0;
            for (size_t l = i; l < c; l++)
                t -= x->R[l * m + c] * s[l];
            s[c] = t / x->R[c * m + c];
        }
        const double sn = hess__nrm2(m, s);
        for (size_t c = 0; c < m; c++)
            s[c] /= sn;
    }
    return HESS_OK;
}

static hess_status
xtrace(hess__curv_run *run, size_t budget, uint64_t seed, double *trace, double *std_err)
{
    const size_t N = run->op->n, m = budget / 2;
    const hess_mark mk = hess__mark(run->ctx);
    xsketch x;
    hess_status st = xsketch_make(run, m, seed, &x);
    double *H = st == HESS_OK ? hess__curv_doubles(run, m, m) : NULL;
    double *W = H ? hess__curv_doubles(run, m, m) : NULL;
    double *T = W ? hess__curv_doubles(run, m, m) : NULL;
    double *u = T ? hess__curv_doubles(run, 2 * m, 1) : NULL;
    if (st == HESS_OK && !u)
        st = run->ctx->status;
    if (st != HESS_OK) {
        hess__rewind(run->ctx, &mk);
        return st;
    }
    double trH = 0.0;
    for (size_t c = 0; c < m; c++) {
        for (size_t d = 0; d < m; d++) {
            H[c * m + d] = hess__dot(N, x.Q + c * N, x.AQ + d * N);
            W[c * m + d] = hess__dot(N, x.Q + c * N, x.Om + d * N);  /* q_c . w_d */
            T[c * m + d] = hess__dot(N, x.AQ + c * N, x.Om + d * N); /* (A q_c) . w_d */
        }
        trH += H[c * m + c];
    }
    for (size_t c = 0; c < m; c++) /* symmetric to rounding; make it exactly so */
        for (size_t d = 0; d < c; d++)
            H[c * m + d] = H[d * m + c] = 0.5 * (H[c * m + d] + H[d * m + c]);
    moments est = {0};
    double *Hu = u + m;
    for (size_t i = 0; i < m; i++) {
        const double *s = x.S + i * m;
        /* tr of A on the leave-one-out basis: tr H - s^T H s */
        double sHs = 0.0, sW = 0.0;
        for (size_t c = 0; c < m; c++) {
            sHs += s[c] * hess__dot(m, H + c * m, s);
            sW += s[c] * W[c * m + i];
        }
        /* p = (I - Pi_i) w_i = w_i - Q u, u = (I - s s^T) W e_i; with
         * A w_i = Q R e_i, p^T A p = W_i.r_i - u.T_i - u.r_i + u^T H u */
        double pAp = 0.0;
        for (size_t c = 0; c < m; c++)
            u[c] = W[c * m + i] - s[c] * sW;
        for (size_t c = 0; c < m; c++)
            Hu[c] = hess__dot(m, H + c * m, u);
        for (size_t c = 0; c < m; c++) {
            const double r = x.R[c * m + i];
            pAp += W[c * m + i] * r - u[c] * (T[c * m + i] + r) + u[c] * Hu[c];
        }
        moments_add(&est, trH - sHs + pAp);
    }
    *trace = est.mean;
    if (std_err)
        *std_err = std_error(&est, 0.0);
    hess__rewind(run->ctx, &mk);
    return HESS_OK;
}

static hess_status xdiag(hess__curv_run *run, size_t budget, uint64_t seed, double *diag)
{
    const size_t N = run->op->n, m = budget / 2;
    const hess_mark mk = hess__mark(run->ctx);
    xsketch x;
    hess_status st = xsketch_make(run, m, seed, &x);
    double *QS = st == HESS_OK ? hess__curv_doubles(run, m, N) : NULL;
    double *AQS = QS ? hess__curv_doubles(run, m, N) : NULL;
    if (st == HESS_OK && !AQS)
        st = run->ctx->status;
    if (st != HESS_OK) {
        hess__rewind(run->ctx, &mk);
        return st;
    }
    /* Q s_i and A Q s_i */
    memset(QS, 0, m * N * sizeof *QS);
    memset(AQS, 0, m * N * sizeof *AQS);
    for (size_t i = 0; i < m; i++)
        for (size_t c = 0; c < m; c++) {
            hess__axpy(N, x.S[i * m + c], x.Q + c * N, QS + i * N);
            hess__axpy(N, x.S[i * m + c], x.AQ + c * N, AQS + i * N);
        }
    /* diag(Pi_i A) = diag(Q Q^T A) - diag(Q s_i s_i^T Q^T A), averaged over i;
     * (I - Pi_i) A w_i = Q s_i (s_i . R e_i), since A w_i = Q R e_i */
    memset(diag, 0, N * sizeof *diag);
    for (size_t c = 0; c < m; c++)
        for (size_t k = 0; k < N; k++)
            diag[k] += x.Q[c * N + k] * x.AQ[c * N + k];
    const double inv_m = 1.0 / (double)m;
    for (size_t i = 0; i < m; i++) {
        double sr = 0.0;
        for (size_t c = 0; c < m; c++)
            sr += x.S[i * m + c] * x.R[c * m + i];
        const double *qs = QS + i * N, *aqs = AQS + i * N, *w = x.Om + i * N;
        for (size_t k = 0; k < N; k++)
            diag[k] += inv_m * (w[k] * sr * qs[k] - qs[k] * aqs[k]);
    }
    hess__rewind(run->ctx, &mk);
    return HESS_OK;
}

/* ------------------------------------------------------------------------ */
/* Entry points                                                             */
/* ------------------------------------------------------------------------ */

hess_status hess__trace_est(
    hess__curv_run *run, int method, size_t budget, uint64_t seed, double *trace, double *std_err)
{
    hess_status st = check_request(run, method, budget);
    if (st != HESS_OK)
        return st;
    const size_t N = run->op->n;
    if (budget >= N) {
        const hess_mark mk = hess__mark(run->ctx);
        double *d = hess__curv_doubles(run, N, 1);
        st = d ? exact_diag(run, d) : run->ctx->status;
        if (st == HESS_OK) {
            double t = 0.0;
            for (size_t i = 0; i < N; i++)
                t += d[i];
            *trace = t;
            if (std_err)
                *std_err = 0.0;
        }
        hess__rewind(run->ctx, &mk);
        return st;
    }
    run->total = method == HESS_EST_XTRACE ? budget / 2 * 2 : budget;
    if (method == HESS_EST_HUTCHINSON) {
        moments m = {0};
        double bz = 0.0;
        st = hutchinson(run, budget, seed, NULL, 0, &m, &bz, NULL);
        if (st == HESS_OK) {
            *trace = m.mean;
            if (std_err)
                *std_err = std_error(&m, bz);
        }
        return st;
    }
    if (method == HESS_EST_HUTCHPP)
        return hutchpp(run, budget, seed, trace, std_err, NULL);
    return xtrace(run, budget, seed, trace, std_err);
}

hess_status
hess__diag_est(hess__curv_run *run, int method, size_t budget, uint64_t seed, double *diag)
{
    hess_status st = check_request(run, method, budget);
    if (st != HESS_OK)
        return st;
    const size_t N = run->op->n;
    if (budget >= N)
        return exact_diag(run, diag);
    run->total = method == HESS_EST_XTRACE ? budget / 2 * 2 : budget;
    if (method == HESS_EST_HUTCHINSON) {
        memset(diag, 0, N * sizeof *diag);
        return hutchinson(run, budget, seed, NULL, 0, NULL, NULL, diag);
    }
    if (method == HESS_EST_HUTCHPP)
        return hutchpp(run, budget, seed, NULL, NULL, diag);
    return xdiag(run, budget, seed, diag);
}
