/*
 * lanczos.c -- the Lanczos process on a symmetric operator: extreme
 * eigenpairs by thick-restart Lanczos (hess__lanczos_eigs), and the spectral
 * density by stochastic Lanczos quadrature (hess__slq_density).  Both keep
 * every basis vector and reorthogonalize each new one against all of them,
 * twice, so the basis stays orthonormal to working precision and no ghost
 * copies of converged eigenvalues appear.
 *
 * Legend: N = the operator's dimension; V = the basis, one vector per row;
 * T = V^T A V, the projected matrix; j = the vectors whose product is known.
 */
#include "curvature.h"

#include "../kernels/gemm.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Up to this N the basis may grow to N vectors (no restart): the answer is then
 * exact after at most N products, and the basis costs at most N^2 doubles. */
#define FULL_BASIS_MAX 256
/* A new Lanczos vector whose norm is below this times ||A|| ends the Krylov
 * space: it is invariant (to rounding). */
#define BREAKDOWN (64 * DBL_EPSILON)
/* SLQ runs probes side by side (one batched product per step) while their
 * bases fit in this many bytes; at least one probe at a time. */
#define SLQ_GROUP_BYTES ((size_t)64 << 20)
/* Probes multiplied per call (X and Y hold this many vectors). */

/* ------------------------------------------------------------------------ */
/* Eigenpairs                                                               */
/* ------------------------------------------------------------------------ */

/* The order in which Ritz values are wanted: order[0] the most.  theta is
 * increasing (hess__sym_eig). */
static void want_order(size_t j, const double *theta, int which, size_t *order)
{
    for (size_t i = 0; i < j; i++)
        order[i] = which == HESS_EIG_SMALLEST ? i : j - 1 - i;
    if (which != HESS_EIG_MAGNITUDE)
        return;
    /* insertion sort by decreasing |theta|; ties keep the larger value first */
    for (size_t i = 1; i < j; i++) {
        const size_t t = order[i];
        size_t q = i;
        while (q > 0 && fabs(theta[order[q - 1]]) < fabs(theta[t])) {
            order[q] = order[q - 1];
            q--;
        }
        order[q] = t;
    }
}

/* The state of one hess__lanczos_eigs call. */
typedef struct eigs_state {
    size_t N, ncv, j;
    double *V;     /* (ncv + 1) x N: the basis and the next vector */
    double *T;     /* ncv x ncv: V^T A V */
    double *S;     /* ncv x ncv: scratch copy of T for the eigensolver */
    double *Z;     /* nz x j: the last nz rows of T's eigenvectors (columns) */
    size_t nz;     /* j (all of them) or 1 (the last components) */
    double *theta; /* ncv: Ritz values, increasing */
    double *work;  /* 3 ncv + 1 */
    size_t *order; /* ncv: Ritz values in the order wanted */
    bool simd;     /* the context's kernels (ritz_vectors' product) */
} eigs_state;

/* ||A v|| for a unit v is not a finite double (an operator whose norm
 * exceeds DBL_MAX, or a product that met an Inf): nothing after it can be
 * trusted, the breakdown test least of all. */
static hess_status overflow(hess__curv_run *run, double av)
{
    hess__error(run->ctx, HESS_ERR_NONFINITE,
                "%s: ||H v|| = %g for a unit vector v (the operator's norm is not a finite "
                "double)",
                run->fn, av);
    return HESS_ERR_NONFINITE;
}

/* Ritz values of T[0..j-1][0..j-1] in theta, and the wanted order; Z gets
 * T's eigenvectors (for Ritz vectors) when @p vectors, else only their last
 * components (for the residuals), at O(j^2) rather than O(j^3) rotations.
 * Either way theta is the same, bit for bit. */
static hess_status ritz(hess__curv_run *run, eigs_state *e, int which, bool vectors)
{
    const size_t j = e->j;
    for (size_t r = 0; r < j; r++)
        memcpy(e->S + r * j, e->T + r * e->ncv, j * sizeof *e->S);
    e->nz = vectors ? j : 1;
    if (hess__sym_eig(j, e->S, e->theta, e->nz, e->Z, e->work) != 0) {
        hess__error(run->ctx, HESS_ERR_NONFINITE,
                    "%s: the %zu x %zu projected eigenproblem did not converge", run->fn, j, j);
        return HESS_ERR_NONFINITE;
    }
    want_order(j, e->theta, which, e->order);
    return HESS_OK;
}

/* out[c] = sum_l Z[l][order[c]] V[l] for c < cnt: Ritz vectors, cnt x N, as
 * one product Y V with Y[c][l] = Z[l][order[c]] (in S, free after ritz). */
static void ritz_vectors(const eigs_state *e, size_t cnt, double *out)
{
    const size_t N = e->N, j = e->j;
    for (size_t c = 0; c < cnt; c++)
        for (size_t l = 0; l < j; l++)
            e->S[c * j + l] = e->Z[l * j + e->order[c]];
    hess__gemm(e->simd, false, false, (int64_t)cnt, (int64_t)N, (int64_t)j, e->S, e->V, out);
}

/* Thick restart: the basis becomes the first keep wanted Ritz vectors and the
 * last Lanczos vector; T their diagonal of Ritz values (the couplings to the
 * last vector come back with its product). */
static void restart(eigs_state *e, size_t keep, double *scratch)
{
    const size_t N = e->N, ncv = e->ncv;
    ritz_vectors(e, keep, scratch);
    memmove(e->V + keep * N, e->V + e->j * N, N * sizeof *e->V);
    memcpy(e->V, scratch, keep * N * sizeof *e->V);
    memset(e->T, 0, ncv * ncv * sizeof *e->T);
    for (size_t c = 0; c < keep; c++)
        e->T[c * ncv + c] = e->theta[e->order[c]];
    e->j = keep;
}

hess_status hess__lanczos_eigs(hess__curv_run *run,
                               size_t k,
                               int which,
                               double tol,
                               size_t max_iter,
                               uint64_t seed,
                               double *evals,
                               double *evecs)
{
    hess_context *ctx = run->ctx;
    const size_t N = run->op->n;
    if (k == 0 || k > N || max_iter < k || !(tol > 0) ||
        (which != HESS_EIG_LARGEST && which != HESS_EIG_SMALLEST && which != HESS_EIG_MAGNITUDE)) {
        hess__error(ctx, HESS_ERR_ARG,
                    "%s: bad Lanczos request (k = %zu, N = %zu, which = %d, max_iter = %zu, "
                    "tol = %g)",
                    run->fn, k, N, which, max_iter, tol);
        return HESS_ERR_ARG;
    }
    eigs_state e = {0};
    e.N = N;
    e.simd = ctx->simd;
    if (N <= FULL_BASIS_MAX || 2 * k + 20 >= N)
        e.ncv = N;
    else
        e.ncv = 2 * k + 20 > 40 ? 2 * k + 20 : 40;
    const size_t ncv = e.ncv, keep = k + (ncv - k) / 2;

    const hess_mark mk = hess__mark(ctx);
    e.V = hess__curv_doubles(run, ncv + 1, N);
    e.T = hess__curv_doubles(run, ncv, ncv);
    e.S = hess__curv_doubles(run, ncv, ncv);
    e.Z = hess__curv_doubles(run, ncv, ncv);
    e.theta = hess__curv_doubles(run, ncv, 1);
    e.work = hess__curv_doubles(run, 3 * ncv + 1, 1);
    double *h = hess__curv_doubles(run, ncv + 1, 1);
    double *scratch = ncv < N ? hess__curv_doubles(run, keep, N) : NULL;
    e.order = hess__alloc(ctx, ncv * sizeof *e.order, run->fn);
    if (!e.V || !e.T || !e.S || !e.Z || !e.theta || !e.work || !h || (ncv < N && !scratch) ||
        !e.order) {
        hess__rewind(ctx, &mk);
        return ctx->status;
    }
    memset(e.T, 0, ncv * ncv * sizeof *e.T);

    hess__rng rng;
    hess__rng_init(&rng, seed, 0);
    hess__random_orth(0, NULL, N, e.V, &rng); /* the start vector */

    run->total = max_iter;
    hess_status st = HESS_OK;
    double beta = 0.0, normest = 0.0, worst = 0.0;
    size_t last_check = 0;
    int broken = 0, converged = 0;
    for (;;) {
        /* one Lanczos step: A v_j, orthogonal to the basis, is the next vector */
        const size_t j = e.j;
        double *w = e.V + (j + 1) * N;
        if ((st = hess__curv_apply(run, 1, e.V + j * N, w)) != HESS_OK)
            break;
        hess__orth_local(j + 1, e.V, N, w, h, 2);
        for (size_t i = 0; i <= j; i++)
            e.T[i * ncv + j] = e.T[j * ncv + i] = h[i];
        const double nrm = hess__nrm2(N, w);
        /* ||A v_j||, a lower bound of ||A||, scaled: an Inf here would make
         * every step look like a breakdown */
        const double av = hypot(hess__nrm2(j + 1, h), nrm);
        if (!isfinite(av)) {
            st = overflow(run, av);
            break;
        }
        if (av > normest)
            normest = av;
        e.j = j + 1;
        const int complete = e.j == N; /* the basis spans everything: T is A */
        if (complete) {
            beta = 0.0;
        } else if (nrm <= fmax(BREAKDOWN, tol) * normest) {
            /* An invariant subspace, to within what the convergence test calls
             * 0 (the products of a Hessian carry rounding of about 1e-11 of
             * ||H||, far above BREAKDOWN): go on in a random direction
             * orthogonal to it, and trust no convergence test until this basis
             * is full (a multiple eigenvalue shows one copy per invariant
             * subspace; its other copies would be missed). */
            hess__random_orth(e.j, e.V, N, w, &rng);
            beta = 0.0;
            broken = 1;
        } else {
            for (size_t i = 0; i < N; i++)
                w[i] /= nrm;
            beta = nrm;
        }

        const int full = e.j == ncv, spent = run->done >= max_iter;
        /* the projected eigenproblem is O(j^3): solved every few steps */
        const size_t gap = e.j / 8 > 4 ? e.j / 8 : 4;
        if (!complete && !full && !spent && (e.j < k || broken || e.j - last_check < gap))
            continue;
        last_check = e.j;
        /* a full basis restarts from Ritz vectors unless this check ends it */
        if ((st = ritz(run, &e, which, full)) != HESS_OK)
            break;
        for (size_t i = 0; i < e.j; i++)
            if (fabs(e.theta[i]) > normest)
                normest = fabs(e.theta[i]);
        /* ||A x - theta x|| = beta |last component of y| for x = V y */
        worst = 0.0;
        for (size_t c = 0; c < k; c++) {
            const double res = fabs(beta * e.Z[(e.nz - 1) * e.j + e.order[c]]);
            if (res > worst)
                worst = res;
        }
        converged = complete || worst <= tol * normest;
        if (converged || spent)
            break;
        if (full) {
            restart(&e, keep, scratch);
            broken = 0;
            last_check = e.j;
        }
    }

    if (st == HESS_OK) {
        for (size_t c = 0; c < k; c++)
            evals[c] = e.theta[e.order[c]];
        if (evecs && (e.nz == e.j || (st = ritz(run, &e, which, true)) == HESS_OK)) {
            ritz_vectors(&e, k, evecs);
            for (size_t c = 0; c < k; c++) { /* a fixed sign: the largest entry positive */
                double *x = evecs + c * N;
                size_t big = 0;
                for (size_t i = 1; i < N; i++)
                    if (fabs(x[i]) > fabs(x[big]))
                        big = i;
                const double s = (x[big] < 0 ? -1.0 : 1.0) / hess__nrm2(N, x);
                for (size_t i = 0; i < N; i++)
                    x[i] *= s;
            }
        }
        if (!converged) {
            hess__error(ctx, HESS_ERR_NONFINITE,
                        "%s: the %zu eigenpairs did not converge within max_iter = %zu products "
                        "(largest residual %.3g > tol %.3g x ||H|| %.3g)",
                        run->fn, k, max_iter, worst, tol, normest);
            st = HESS_ERR_NONFINITE;
        }
    }
    hess__rewind(ctx, &mk);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Stochastic Lanczos quadrature                                            */
/* ------------------------------------------------------------------------ */

/* The state of one group of probes run side by side. */
typedef struct slq_group {
    size_t count;    /* probes in the group */
    double *V;       /* count x steps x N: each probe's basis */
    double *alpha;   /* count x steps */
    double *beta;    /* count x steps */
    double *normest; /* count: ||A|| seen by each probe */
    size_t *len;     /* count: Lanczos steps done */
    unsigned char *live;
} slq_group;

/* One batched Lanczos step (step j) of every live probe of the group. */
static hess_status
slq_step(hess__curv_run *run, slq_group *g, size_t j, size_t steps, double *X, double *Y, double *h)
{
    const size_t N = run->op->n;
    size_t idx[SLQ_BATCH], na = 0, q0 = 0;
    /* the live probes' vectors, SLQ_BATCH per product call */
    while (q0 < g->count) {
        na = 0;
        size_t q = q0;
        for (; q < g->count && na < SLQ_BATCH; q++)
            if (g->live[q]) {
                memcpy(X + na * N, g->V + (q * steps + j) * N, N * sizeof *X);
                idx[na++] = q;
            }
        q0 = q;
        if (na == 0)
            continue;
        hess_status st = hess__curv_apply(run, na, X, Y);
        if (st != HESS_OK)
            return st;
        for (size_t a = 0; a < na; a++) {
            const size_t p = idx[a];
            double *w = Y + a * N, *Vp = g->V + p * steps * N;
            hess__orth_local(j + 1, Vp, N, w, h, 2);
            g->alpha[p * steps + j] = h[j];
            g->len[p] = j + 1;
            if (j + 1 == steps) {
                g->live[p] = 0;
                continue;
            }
            const double nrm = hess__nrm2(N, w);
            const double av = hypot(hess__nrm2(j + 1, h), nrm); /* as in hess__lanczos_eigs */
            if (!isfinite(av))
                return overflow(run, av);
            if (av > g->normest[p])
                g->normest[p] = av;
            if (nrm <= BREAKDOWN * g->normest[p]) {
                /* invariant: the j + 1 nodes are this probe's exact measure */
                g->live[p] = 0;
                continue;
            }
            g->beta[p * steps + j] = nrm;
            for (size_t i = 0; i < N; i++)
                Vp[(j + 1) * N + i] = w[i] / nrm;
        }
    }
    return HESS_OK;
}

hess_status hess__slq_density(hess__curv_run *run,
                              size_t n_probes,
                              size_t steps,
                              double sigma,
                              uint64_t seed,
                              size_t n_grid,
                              const double *grid,
                              double *density)
{
    hess_context *ctx = run->ctx;
    const size_t N = run->op->n;
    if (n_probes == 0 || steps == 0 || steps > N || !(sigma >= 0) || !isfinite(sigma) ||
        n_grid == 0) {
        hess__error(ctx, HESS_ERR_ARG,
                    "%s: bad quadrature request (n_probes = %zu, steps = %zu, N = %zu, "
                    "sigma = %g, n_grid = %zu)",
                    run->fn, n_probes, steps, N, sigma, n_grid);
        return HESS_ERR_ARG;
    }
    /* probes whose bases (steps x N doubles each) fit in SLQ_GROUP_BYTES,
     * divided in turn: no product to overflow */
    size_t b = SLQ_GROUP_BYTES / sizeof(double) / N / steps;
    b = b < 1 ? 1 : b > n_probes ? n_probes : b;
    const size_t batch = b < SLQ_BATCH ? b : SLQ_BATCH;

    const hess_mark mk = hess__mark(ctx);
    slq_group g = {0};
    g.V = hess__curv_doubles(run, b * steps, N);
    g.alpha = hess__curv_doubles(run, b, steps);
    g.beta = hess__curv_doubles(run, b, steps);
    g.normest = hess__curv_doubles(run, b, 1);
    g.len = hess__alloc(ctx, b * sizeof *g.len, run->fn);
    g.live = hess__alloc(ctx, b, run->fn);
    double *X = hess__curv_doubles(run, batch, N), *Y = hess__curv_doubles(run, batch, N);
    double *h = hess__curv_doubles(run, steps, 1);
    double *nodes = hess__curv_doubles(run, n_probes, steps);
    double *weights = hess__curv_doubles(run, n_probes, steps);
    double *e = hess__curv_doubles(run, steps, 1);
    size_t *count = hess__alloc(ctx, n_probes * sizeof *count, run->fn);
    if (!g.V || !g.alpha || !g.beta || !g.normest || !g.len || !g.live || !X || !Y || !h ||
        !nodes || !weights || !e || !count) {
        hess__rewind(ctx, &mk);
        return ctx->status;
    }

    run->total = n_probes * steps;
    hess_status st = HESS_OK;
    const double inv_sqrt_n = 1.0 / sqrt((double)N);
    for (size_t p0 = 0; p0 < n_probes && st == HESS_OK; p0 += b) {
        g.count = n_probes - p0 < b ? n_probes - p0 : b;
        for (size_t q = 0; q < g.count; q++) {
            /* probe p's own stream: the result does not depend on the grouping */
            hess__rng rng;
            hess__rng_init(&rng, seed, p0 + q + 1);
            double *v = g.V + q * steps * N;
            hess__rng_signs(&rng, v, N);
            for (size_t i = 0; i < N; i++)
                v[i] *= inv_sqrt_n;
            g.live[q] = 1;
            g.len[q] = 0;
            g.normest[q] = 0.0;
        }
        for (size_t j = 0; j < steps && st == HESS_OK; j++)
            st = slq_step(run, &g, j, steps, X, Y, h);
        /* nodes: eigenvalues of T; weights: squared first components */
        for (size_t q = 0; q < g.count && st == HESS_OK; q++) {
            const size_t p = p0 + q, m = g.len[q];
            double *d = nodes + p * steps, *z = weights + p * steps;
            memcpy(d, g.alpha + q * steps, m * sizeof *d);
            memcpy(e, g.beta + q * steps, m * sizeof *e);
            memset(z, 0, m * sizeof *z);
            z[0] = 1.0;
            if (hess__tridiag_eig(m, d, e, 1, z) != 0) {
                hess__error(ctx, HESS_ERR_NONFINITE,
                            "%s: the %zu x %zu tridiagonal eigenproblem of probe %zu did not "
                            "converge",
                            run->fn, m, m, p);
                st = HESS_ERR_NONFINITE;
                break;
            }
            for (size_t i = 0; i < m; i++)
                z[i] *= z[i];
            count[p] = m;
        }
    }

    if (st == HESS_OK) {
        double lo = INFINITY, hi = -INFINITY;
        for (size_t p = 0; p < n_probes; p++)
            for (size_t i = 0; i < count[p]; i++) {
                const double t = nodes[p * steps + i];
                lo = t < lo ? t : lo;
                hi = t > hi ? t : hi;
            }
        if (sigma == 0.0) {
            /* the header's default; one node (A = c I) has no range: 1 % of |c|,
             * or 0.01 for A = 0 */
            sigma = (hi - lo) / 100.0;
            if (!(sigma > 0))
                sigma = fmax(fabs(lo), fabs(hi)) / 100.0;
            if (!(sigma > 0))
                sigma = 0.01;
        }
        /* each probe's weights sum to 1 and each Gaussian integrates to 1 */
        const double c = 1.0 / (sigma * sqrt(2.0 * 3.141592653589793238462643) * (double)n_probes);
        for (size_t t = 0; t < n_grid; t++) {
            double s = 0.0;
            for (size_t p = 0; p < n_probes; p++)
                for (size_t i = 0; i < count[p]; i++) {
                    const double u = (grid[t] - nodes[p * steps + i]) / sigma;
                    s += weights[p * steps + i] * exp(-0.5 * u * u);
                }
            density[t] = c * s;
        }
    }
    hess__rewind(ctx, &mk);
    return st;
}
