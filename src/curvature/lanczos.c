/*
 * lanczos.c -- the Lanczos process on a symmetric operator: extreme
 * eigenpairs (hess__lanczos_eigs), and the spectral density by stochastic
 * Lanczos quadrature (hess__slq_density).  Both keep every basis vector, so
 * no ghost copies of converged eigenvalues appear.  For N <= 256 (and
 * hess__lanczos_eigs' 2k + 20 >= N), and in the thick restarts of
 * hess__lanczos_eigs, each new vector is reorthogonalized
 * against all of them (orthonormal to working precision); otherwise the
 * basis (the first cycle of hess__lanczos_eigs, each SLQ probe's) is kept
 * semi-orthogonal by partial reorthogonalization (Simon 1984), which gives
 * the same Ritz values at a fraction of the passes over the basis.
 *
 * Legend: N = the operator's dimension; V = the basis, one vector per row;
 * T = V^T A V, the projected matrix; j = the vectors whose product is known.
 */
#include "curvature.h"

#include "../kernels/gemm.h"
#include "../kernels/kernels.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Up to this N the basis may grow to N vectors (no restart): the answer is then
 * exact after at most N products, and the basis costs at most N^2 doubles. */
#define FULL_BASIS_MAX 256
/* A new Lanczos vector whose norm is below this times ||A|| ends the Krylov
 * space: it is invariant (to rounding). */
#define BREAKDOWN (64 * DBL_EPSILON)
/* A first cycle on a basis of N > FULL_BASIS_MAX keeps it semi-orthogonal
 * (partial reorthogonalization, below) and may grow it to this many vectors
 * within PRO_BASIS_BYTES, before the thick restarts of ncv vectors. */
#define PRO_BASIS_MAX   160
#define PRO_BASIS_BYTES ((size_t)128 << 20)
/* The orthogonality level that partial reorthogonalization keeps: sqrt(eps). */
#define PRO_DELTA 1.4901161193847656e-08
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

/* ------------------------------------------------------------------------ */
/* Partial reorthogonalization                                              */
/* ------------------------------------------------------------------------ */

/* A Lanczos basis of N > FULL_BASIS_MAX kept semi-orthogonal (Simon 1984): T
 * stays tridiagonal (alpha, beta); the omega recurrence estimates every
 * v_{j+1} . v_i from T alone, and the new vector is made orthogonal to the
 * whole basis only when one estimate passes sqrt(eps) (and once more at the
 * next step, which the recurrence needs).  A semi-orthogonal basis gives T's
 * eigenvalues to O(eps ||A||), as full reorthogonalization does, at a
 * fraction of its passes over the basis. */
typedef struct pro_basis {
    size_t N;
    double *V;     /* the vectors, one per row; V[j + 1] is A v_j at a step */
    double *alpha; /* T's diagonal */
    double *beta;  /* beta[i] couples v_{i-1} and v_i (beta[0] = 0) */
    double *om[3]; /* v_{j-1} . v_i, v_j . v_i, v_{j+1} . v_i, a row per step */
    bool force;    /* reorthogonalize the next vector too */
    bool simd;     /* the context's AVX2 copies */
} pro_basis;

/* The three-term step, fused into two passes over w: b = u . w and
 * a = v . w (classical Gram-Schmidt: u and v are orthogonal to working
 * precision), then w -= b u + a v; returns ||w||^2 after.  u is v_{j-1} (at
 * j = 0 pass v: its b is then ignored).  Four partial sums in a block the
 * compiler vectorises; the AVX2 copy is the same C, so both round alike. */
#define LOCAL_STEP_AS(name, ATTR)                                                                  \
    ATTR static double name(size_t n, const double *u, const double *v, double *w, bool has_u,     \
                            double *pa, double *pb)                                                \
    {                                                                                              \
        double sa[4] = {0, 0, 0, 0}, sb[4] = {0, 0, 0, 0}, ss[4] = {0, 0, 0, 0};                   \
        const size_t n4 = n & ~(size_t)3;                                                          \
        for (size_t i = 0; i < n4; i += 4)                                                         \
            for (int q = 0; q < 4; q++) {                                                          \
                sa[q] += v[i + q] * w[i + q];                                                      \
                sb[q] += u[i + q] * w[i + q];                                                      \
            }                                                                                      \
        for (size_t i = n4; i < n; i++) {                                                          \
            sa[0] += v[i] * w[i];                                                                  \
            sb[0] += u[i] * w[i];                                                                  \
        }                                                                                          \
        const double a = (sa[0] + sa[1]) + (sa[2] + sa[3]);                                        \
        const double b = has_u ? (sb[0] + sb[1]) + (sb[2] + sb[3]) : 0.0;                          \
        for (size_t i = 0; i < n4; i += 4)                                                         \
            for (int q = 0; q < 4; q++) {                                                          \
                w[i + q] -= b * u[i + q] + a * v[i + q];                                           \
                ss[q] += w[i + q] * w[i + q];                                                      \
            }                                                                                      \
        for (size_t i = n4; i < n; i++) {                                                          \
            w[i] -= b * u[i] + a * v[i];                                                           \
            ss[0] += w[i] * w[i];                                                                  \
        }                                                                                          \
        *pa = a, *pb = b;                                                                          \
        return (ss[0] + ss[1]) + (ss[2] + ss[3]);                                                  \
    }
LOCAL_STEP_AS(local_step, )
#if HESS_SIMD_X86
LOCAL_STEP_AS(local_step_avx2, HESS_AVX2)
#endif

/* w *= s, four wide where the context may use AVX2. */
#define SCALE_AS(name, ATTR)                                                                       \
    ATTR static void name(size_t n, double s, double *w)                                           \
    {                                                                                              \
        for (size_t i = 0; i < n; i++)                                                             \
            w[i] *= s;                                                                             \
    }
SCALE_AS(scale, )
#if HESS_SIMD_X86
SCALE_AS(scale_avx2, HESS_AVX2)
#endif

/* The eps of the omega recurrence: the rounding of a product of N terms. */
static double pro_eps(size_t N)
{
    return sqrt((double)N) * DBL_EPSILON / 2;
}

/* One step: w = V[j + 1] holds A v_j.  The three-term recurrence, alpha[j],
 * the omega estimates and, when they ask, a pass against the whole basis.
 * Returns ||w|| (w is not yet scaled: pro_accept, or the caller's breakdown
 * path); *av gets ||A v_j|| (a lower bound of ||A||, Inf when it is not a
 * double); normest bounds the rounding that the recurrence adds. */
static double pro_step(pro_basis *b, size_t j, double normest, double *av)
{
    const size_t N = b->N;
    const double *vj = b->V + j * N;
    double *w = b->V + (j + 1) * N, a, c;
#if HESS_SIMD_X86
    const double ss =
        (b->simd ? local_step_avx2 : local_step)(N, j ? vj - N : vj, vj, w, j > 0, &a, &c);
#else
    const double ss = local_step(N, j ? vj - N : vj, vj, w, j > 0, &a, &c);
#endif
    b->alpha[j] = a;
    /* the sum of squares when safely inside the doubles' range, as hess__nrm2 */
    double nrm = ss > 0x1p-960 && ss < 0x1p960 ? sqrt(ss) : hess__nrm2(N, w);
    *av = hypot(hypot(a, c), nrm);
    normest = fmax(normest, *av);

    /* omega recurrence: beta_{j+1} w_{j+1,i} = beta_{i+1} w_{j,i+1}
     * + (alpha_i - alpha_j) w_{j,i} + beta_i w_{j,i-1} - beta_j w_{j-1,i},
     * plus rounding of eps1 ||A|| with the sign that makes it worse */
    const double eps1 = pro_eps(N), noise = 2 * eps1 * normest;
    const double *prev = b->om[0], *cur = b->om[1], inv = 1.0 / nrm; /* Inf for nrm = 0 */
    double *next = b->om[2], worst = 0.0;
    for (size_t i = 0; i < j; i++) {
        double t = b->beta[i + 1] * cur[i + 1] + (b->alpha[i] - a) * cur[i] - b->beta[j] * prev[i];
        if (i > 0)
            t += b->beta[i] * cur[i - 1];
        t = (t + copysign(noise, t)) * inv;
        next[i] = t;
        if (fabs(t) > worst)
            worst = fabs(t);
    }
    const bool trig = worst > PRO_DELTA;
    if (b->force || trig) {
        hess__orth_against(j + 1, b->V, N, w, NULL);
        nrm = hess__nrm2(N, w);
        for (size_t i = 0; i < j; i++)
            next[i] = eps1;
    }
    b->force = trig && !b->force;
    next[j] = eps1;
    next[j + 1] = 1.0;
    /* prev <- cur <- next */
    double *t0 = b->om[0];
    b->om[0] = b->om[1], b->om[1] = b->om[2], b->om[2] = t0;
    return nrm;
}

/* After pro_step: v_{j+1} = w / nrm, beta_{j+1} = nrm. */
static void pro_accept(pro_basis *b, size_t j, double nrm)
{
    double *w = b->V + (j + 1) * b->N;
#if HESS_SIMD_X86
    (b->simd ? scale_avx2 : scale)(b->N, 1.0 / nrm, w);
#else
    scale(b->N, 1.0 / nrm, w);
#endif
    b->beta[j + 1] = nrm;
}

/* After pro_step: w was replaced by a unit vector orthogonal to the whole
 * basis (a breakdown's fresh start), beta_{j+1} = 0. */
static void pro_fresh(pro_basis *b, size_t j)
{
    for (size_t i = 0; i <= j; i++)
        b->om[1][i] = pro_eps(b->N);
    b->beta[j + 1] = 0.0;
}

/* The first cycle of hess__lanczos_eigs on a large basis: the basis (its
 * rows the state's V), and the checks: tridiagonal (O(j^2)) between full
 * ones tracked by inverse iteration (O(k j)); Ritz vectors by inverse
 * iteration. */
typedef struct pro_state {
    pro_basis b;
    size_t ncv;   /* the basis this cycle may grow to */
    double *d;    /* ncv: T's eigenvalues (a copy for hess__tridiag_eig) */
    double *off;  /* ncv: its off-diagonal copy */
    double *z;    /* ncv: the last components of T's eigenvectors */
    double *sel;  /* ncv: wanted Ritz values, in order */
    double *zl;   /* ncv: the last components of the first k's vectors */
    double *work; /* 5 ncv: hess__tridiag_vectors */
    bool seeded;  /* sel holds the last check's values: pro_track may run */
} pro_state;

/* Ritz values of the first cycle's T, all e->j of them (e->theta, and the
 * wanted order), by QL: the first cnt wanted in p->sel, the last components
 * of the first k's vectors in p->zl. */
static hess_status
pro_ritz(hess__curv_run *run, eigs_state *e, pro_state *p, int which, size_t cnt, size_t k)
{
    const size_t j = e->j;
    memcpy(p->d, p->b.alpha, j * sizeof *p->d);
    memcpy(p->off, p->b.beta + 1, j * sizeof *p->off);
    memset(p->z, 0, j * sizeof *p->z);
    p->z[j - 1] = 1.0;
    if (hess__tridiag_eig(j, p->d, p->off, 1, p->z) != 0) {
        hess__error(run->ctx, HESS_ERR_NONFINITE,
                    "%s: the %zu x %zu projected eigenproblem did not converge", run->fn, j, j);
        return HESS_ERR_NONFINITE;
    }
    memcpy(e->theta, p->d, j * sizeof *e->theta);
    want_order(j, e->theta, which, e->order);
    for (size_t c = 0; c < cnt && c < j; c++)
        p->sel[c] = e->theta[e->order[c]];
    for (size_t c = 0; c < k; c++)
        p->zl[c] = p->z[e->order[c]];
    p->seeded = true;
    return HESS_OK;
}

/* Eigenvalues of the tridiagonal (d, e) below x, by the signs of the pivots
 * of T - x I (a Sturm count), on T scaled by s. */
static size_t sturm_below(size_t n, const double *d, const double *e, double s, double x)
{
    size_t below = 0;
    double q = 1.0;
    for (size_t i = 0; i < n; i++) {
        const double b = i ? e[i - 1] * s : 0.0;
        q = (d[i] - x) * s - (i ? b * b / q : 0.0);
        if (fabs(q) < DBL_MIN)
            q = -DBL_MIN;
        below += q < 0;
    }
    return below;
}

/* The check between full ones, O(k j): the k wanted values of the last check
 * as shifts of inverse iteration on this T; their Rayleigh quotients are the
 * new values, with an eigenvalue of T within each one's residual r.  They
 * are T's k wanted eigenvalues when their intervals are apart and Sturm
 * counts find exactly k eigenvalues beyond the least wanted one (less r):
 * then p->sel and p->zl are updated and it returns true.  Otherwise (a new
 * value among the wanted, or values too close to tell apart) false, and a
 * full check decides. */
static bool pro_track(eigs_state *e, pro_state *p, size_t k, int which, hess__rng *rng)
{
    const size_t j = e->j;
    const double *a = p->b.alpha, *b = p->b.beta + 1;
    const double tnorm = hess__tridiag_norm(j, a, b);
    if (!(tnorm > 0.0) || !isfinite(tnorm))
        return false;
    double *Y = e->S, *th = p->d, *t = p->z;
    hess__tridiag_vectors(j, a, b, k, p->sel, Y, p->work, rng);
    double r = 0.0;
    for (size_t c = 0; c < k; c++) {
        const double *y = Y + c * j;
        double q = 0.0;
        for (size_t i = 0; i < j; i++) {
            t[i] =
                a[i] * y[i] + (i ? b[i - 1] * y[i - 1] : 0.0) + (i + 1 < j ? b[i] * y[i + 1] : 0.0);
            q += y[i] * t[i];
        }
        double res = 0.0;
        for (size_t i = 0; i < j; i++)
            res += (t[i] - q * y[i]) * (t[i] - q * y[i]);
        th[c] = q;
        r = fmax(r, sqrt(res));
    }
    r += 64 * DBL_EPSILON * tnorm;
    /* the k values in increasing order (an insertion sort of indices) */
    size_t *idx = e->order;
    for (size_t c = 0; c < k; c++) {
        size_t q = c;
        while (q > 0 && th[idx[q - 1]] > th[c]) {
            idx[q] = idx[q - 1];
            q--;
        }
        idx[q] = c;
    }
    for (size_t c = 0; c + 1 < k; c++)
        if (!(th[idx[c + 1]] - th[idx[c]] > 2 * r))
            return false;
    const double s = 1.0 / tnorm, lo = th[idx[0]], hi = th[idx[k - 1]];
    size_t beyond;
    if (which == HESS_EIG_LARGEST) {
        beyond = j - sturm_below(j, a, b, s, lo - r);
    } else if (which == HESS_EIG_SMALLEST) {
        beyond = sturm_below(j, a, b, s, hi + r);
    } else {
        double least = INFINITY;
        for (size_t c = 0; c < k; c++)
            least = fmin(least, fabs(th[c]));
        if (!(least - r > 0))
            return false;
        beyond = sturm_below(j, a, b, s, -(least - r)) + (j - sturm_below(j, a, b, s, least - r));
    }
    if (beyond != k)
        return false;
    /* the wanted order: want_order over the increasing values */
    for (size_t c = 0; c < k; c++)
        e->theta[c] = th[idx[c]];
    want_order(k, e->theta, which, e->order + k);
    for (size_t c = 0; c < k; c++) {
        const size_t src = idx[e->order[k + c]];
        p->sel[c] = th[src];
        p->zl[c] = Y[src * j + j - 1];
    }
    return true;
}

/* out[c] = the Ritz vector of the wanted value p->sel[c], c < cnt (cnt x
 * N), from the first cycle's basis: T's eigenvectors by inverse iteration,
 * then one product with V. */
static void pro_vectors(eigs_state *e, pro_state *p, size_t cnt, hess__rng *rng, double *out)
{
    const size_t j = e->j;
    hess__tridiag_vectors(j, p->b.alpha, p->b.beta + 1, cnt, p->sel, e->S, p->work, rng);
#if HESS_SIMD_X86
    /* a few rows times a tall basis: the AVX2 kernel streams V once, where
     * BLAS packs it first (measured: 0.05 ms of W1's 1.8) */
    if (e->simd && cnt >= HESS_SIMD_MIN_DIM && j >= HESS_SIMD_MIN_DIM) {
        hess__gemm_simd((int64_t)cnt, (int64_t)e->N, (int64_t)j, e->S, (int64_t)j, 1, e->V,
                        (int64_t)e->N, false, out);
        return;
    }
#endif
    hess__gemm(e->simd, false, false, (int64_t)cnt, (int64_t)e->N, (int64_t)j, e->S, e->V, out);
}

/* Steps to the next check after one at step j whose largest residual was
 * worst, the one before at step then with worst_then: every j / 8 steps (at
 * least 4) while a check costs O(j^2); once checks are cheap (pro_track), as
 * many steps as the residual's rate since then says it needs to reach goal,
 * at least 1, so that few products are spent past convergence. */
static size_t
check_gap(size_t j, bool cheap, double worst_then, size_t then, double worst, double goal)
{
    const size_t most = j / 8 > 4 ? j / 8 : 4;
    if (!cheap || !(worst < worst_then) || !(worst > 0) || then >= j)
        return most;
    const double rate = log(worst / worst_then) / (double)(j - then); /* < 0 */
    const double need = log(goal / worst) / rate;
    if (!(need < (double)most))
        return most;
    return need < 1 ? 1 : (size_t)ceil(need);
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
    /* a restarted basis: the first cycle is semi-orthogonal and longer */
    pro_state p = {0};
    if (ncv < N) {
        size_t cap = PRO_BASIS_BYTES / sizeof(double) / N;
        cap = cap > PRO_BASIS_MAX ? PRO_BASIS_MAX : cap;
        cap = cap > N - 1 ? N - 1 : cap;
        p.ncv = cap > ncv ? cap : ncv;
    }
    /* S: the dense eigenproblem, or the first cycle's keep eigenvectors of T */
    const size_t nv = p.ncv > ncv ? p.ncv : ncv;
    const size_t s_len = ncv * ncv > keep * p.ncv ? ncv * ncv : keep * p.ncv;

    const hess_mark mk = hess__mark(ctx);
    e.V = hess__curv_doubles(run, nv + 1, N);
    e.T = hess__curv_doubles(run, ncv, ncv);
    e.S = hess__curv_doubles(run, s_len, 1);
    e.Z = hess__curv_doubles(run, ncv, ncv);
    e.theta = hess__curv_doubles(run, nv, 1);
    e.work = hess__curv_doubles(run, 3 * ncv + 1, 1);
    double *h = hess__curv_doubles(run, ncv + 1, 1);
    double *scratch = ncv < N ? hess__curv_doubles(run, keep, N) : NULL;
    e.order = hess__alloc(ctx, nv * sizeof *e.order, run->fn);
    double *pro = p.ncv ? hess__curv_doubles(run, 15 * p.ncv + 4, 1) : NULL;
    if (!e.V || !e.T || !e.S || !e.Z || !e.theta || !e.work || !h || (ncv < N && !scratch) ||
        !e.order || (p.ncv && !pro)) {
        hess__rewind(ctx, &mk);
        return ctx->status;
    }
    memset(e.T, 0, ncv * ncv * sizeof *e.T);
    if (pro) {
        memset(pro, 0, (15 * p.ncv + 4) * sizeof *pro);
        p.b = (pro_basis){.N = N, .V = e.V, .alpha = pro, .beta = pro + p.ncv, .simd = e.simd};
        for (int r = 0; r < 3; r++)
            p.b.om[r] = pro + 2 * p.ncv + 1 + (size_t)r * (p.ncv + 1);
        p.d = pro + 5 * p.ncv + 4, p.off = p.d + p.ncv, p.z = p.off + p.ncv;
        p.sel = p.z + p.ncv, p.zl = p.sel + p.ncv, p.work = p.zl + p.ncv;
        p.b.om[1][0] = 1.0; /* v_0 . v_0 */
    }
    bool first = p.ncv > 0; /* in the first, semi-orthogonal cycle */

    hess__rng rng;
    hess__rng_init(&rng, seed, 0);
    hess__random_orth(0, NULL, N, e.V, &rng); /* the start vector */

    run->total = max_iter;
    hess_status st = HESS_OK;
    double beta = 0.0, normest = 0.0, worst = 0.0;
    size_t last_check = 0, gap = 4, broken_until = 0;
    int broken = 0, converged = 0;
    for (;;) {
        /* one Lanczos step: A v_j, orthogonal to the basis, is the next vector */
        const size_t j = e.j;
        double *w = e.V + (j + 1) * N;
        if ((st = hess__curv_apply(run, 1, e.V + j * N, w)) != HESS_OK)
            break;
        double nrm, av; /* ||w||, and ||A v_j|| (a lower bound of ||A||) */
        if (first) {
            nrm = pro_step(&p.b, j, normest, &av);
        } else {
            hess__orth_local(j + 1, e.V, N, w, h, 2);
            for (size_t i = 0; i <= j; i++)
                e.T[i * ncv + j] = e.T[j * ncv + i] = h[i];
            nrm = hess__nrm2(N, w);
            av = hypot(hess__nrm2(j + 1, h), nrm); /* scaled */
        }
        /* an Inf here would make every step look like a breakdown */
        if (!isfinite(av)) {
            st = overflow(run, av);
            break;
        }
        normest = fmax(normest, av);
        e.j = j + 1;
        const int complete = !first && e.j == N; /* the basis spans everything: T is A */
        const int was = broken;
        if (complete) {
            beta = 0.0;
        } else if (nrm <= fmax(BREAKDOWN, tol) * normest) {
            /* An invariant subspace, to within what the convergence test calls
             * 0 (the products of a Hessian carry rounding of about 1e-11 of
             * ||H||, far above BREAKDOWN): go on in a random direction
             * orthogonal to it, and trust no convergence test for a while (a
             * multiple eigenvalue shows one copy per invariant subspace; its
             * other copies would be missed): until this basis is full, or in
             * the first cycle for as many steps as a basis of ncv would have
             * waited and at least ncv / 2 past the breakdown. */
            hess__random_orth(e.j, e.V, N, w, &rng);
            if (first)
                pro_fresh(&p.b, j);
            beta = 0.0;
            broken = 1;
        } else {
            if (first)
                pro_accept(&p.b, j, nrm);
            else
                for (size_t i = 0; i < N; i++)
                    w[i] /= nrm;
            beta = nrm;
        }
        if (first && broken && !was)
            broken_until = e.j + ncv / 2 > ncv ? e.j + ncv / 2 : ncv;
        if (first && broken && e.j >= broken_until)
            broken = 0;

        const int full = e.j == (first ? p.ncv : ncv), spent = run->done >= max_iter;
        /* the projected eigenproblem: checked every few steps */
        if (!complete && !full && !spent && (e.j < k || broken || e.j - last_check < gap))
            continue;
        const double worst_then = worst;
        const size_t then = last_check;
        last_check = e.j;
        /* a full basis restarts from Ritz vectors unless this check ends it */
        if (first) {
            if ((full || !p.seeded || !pro_track(&e, &p, k, which, &rng)) &&
                (st = pro_ritz(run, &e, &p, which, full ? keep : k, k)) != HESS_OK)
                break;
            for (size_t c = 0; c < k; c++)
                normest = fmax(normest, fabs(p.sel[c]));
        } else {
            if ((st = ritz(run, &e, which, full)) != HESS_OK)
                break;
            for (size_t i = 0; i < e.j; i++)
                normest = fmax(normest, fabs(e.theta[i]));
        }
        /* ||A x - theta x|| = beta |last component of y| for x = V y */
        worst = 0.0;
        for (size_t c = 0; c < k; c++) {
            const double y = first ? p.zl[c] : e.Z[(e.nz - 1) * e.j + e.order[c]];
            const double res = fabs(beta * y);
            if (res > worst)
                worst = res;
        }
        converged = complete || worst <= tol * normest;
        if (converged || spent)
            break;
        if (full && first) {
            /* into the thick restarts: keep Ritz vectors, T their values */
            pro_vectors(&e, &p, keep, &rng, scratch);
            memmove(e.V + keep * N, e.V + e.j * N, N * sizeof *e.V);
            memcpy(e.V, scratch, keep * N * sizeof *e.V);
            for (size_t c = 0; c < keep; c++)
                e.T[c * ncv + c] = p.sel[c];
            e.j = keep;
            first = false;
            broken = 0;
            last_check = e.j;
        } else if (full) {
            restart(&e, keep, scratch);
            broken = 0;
            last_check = e.j;
        }
        gap = check_gap(e.j, first && p.seeded, worst_then, then, worst, tol * normest);
    }

    if (st == HESS_OK) {
        for (size_t c = 0; c < k; c++)
            evals[c] = first ? p.sel[c] : e.theta[e.order[c]];
        if (evecs && first)
            pro_vectors(&e, &p, k, &rng, evecs);
        else if (evecs && (e.nz == e.j || (st = ritz(run, &e, which, true)) == HESS_OK))
            ritz_vectors(&e, k, evecs);
        if (evecs && st == HESS_OK)
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
        if (st == HESS_OK && !converged) {
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
    double *beta;    /* count x (steps + 1): as pro_basis's (beta[0] = 0) */
    double *normest; /* count: ||A|| seen by each probe */
    size_t *len;     /* count: Lanczos steps done */
    unsigned char *live;
    /* N > FULL_BASIS_MAX: partial reorthogonalization, each probe's omega
     * rows (count x 3 x (steps + 1), row j % 3 that of v_j) and its flag */
    double *om;
    unsigned char *force;
    bool simd;
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
            double *w = Y + a * N, *Vp = g->V + p * steps * N, *bp = g->beta + p * (steps + 1);
            g->len[p] = j + 1;
            if (j + 1 == steps) { /* the last: alpha alone */
                g->alpha[p * steps + j] = hess__dot(N, Vp + j * N, w);
                g->live[p] = 0;
                continue;
            }
            double nrm, av;
            if (g->om) {
                double *om = g->om + p * 3 * (steps + 1);
                pro_basis b = {.N = N,
                               .V = Vp,
                               .alpha = g->alpha + p * steps,
                               .beta = bp,
                               .om = {om + (j + 2) % 3 * (steps + 1), om + j % 3 * (steps + 1),
                                      om + (j + 1) % 3 * (steps + 1)},
                               .force = g->force[p],
                               .simd = g->simd};
                memcpy(Vp + (j + 1) * N, w, N * sizeof *w);
                nrm = pro_step(&b, j, g->normest[p], &av);
                g->force[p] = b.force;
                w = Vp + (j + 1) * N;
            } else {
                hess__orth_local(j + 1, Vp, N, w, h, 2);
                g->alpha[p * steps + j] = h[j];
                nrm = hess__nrm2(N, w);
                av = hypot(hess__nrm2(j + 1, h), nrm); /* as in hess__lanczos_eigs */
            }
            if (!isfinite(av))
                return overflow(run, av);
            if (av > g->normest[p])
                g->normest[p] = av;
            if (nrm <= BREAKDOWN * g->normest[p]) {
                /* invariant: the j + 1 nodes are this probe's exact measure */
                g->live[p] = 0;
                continue;
            }
            bp[j + 1] = nrm;
            const double inv = 1.0 / nrm;
            for (size_t i = 0; i < N; i++)
                Vp[(j + 1) * N + i] = w[i] * inv;
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
    g.beta = hess__curv_doubles(run, b, steps + 1);
    g.simd = ctx->simd;
    if (N > FULL_BASIS_MAX) {
        g.om = hess__curv_doubles(run, 3 * b, steps + 1);
        g.force = hess__alloc(ctx, b, run->fn);
    }
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
        (N > FULL_BASIS_MAX && (!g.om || !g.force)) || !nodes || !weights || !e || !count) {
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
            g.beta[q * (steps + 1)] = 0.0;
            if (g.om) {
                double *om = g.om + q * 3 * (steps + 1);
                memset(om, 0, 3 * (steps + 1) * sizeof *om);
                om[0] = 1.0; /* v_0 . v_0 */
                g.force[q] = 0;
            }
        }
        for (size_t j = 0; j < steps && st == HESS_OK; j++)
            st = slq_step(run, &g, j, steps, X, Y, h);
        /* nodes: eigenvalues of T; weights: squared first components */
        for (size_t q = 0; q < g.count && st == HESS_OK; q++) {
            const size_t p = p0 + q, m = g.len[q];
            double *d = nodes + p * steps, *z = weights + p * steps;
            memcpy(d, g.alpha + q * steps, m * sizeof *d);
            memcpy(e, g.beta + q * (steps + 1) + 1, m * sizeof *e);
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
