/*
 * linalg.c -- what the curvature algorithms share: the checked product of the
 * operator, arena scratch, the random generator, and small dense linear
 * algebra (dots, Gram-Schmidt, the symmetric tridiagonal and dense
 * eigenproblems).  No LAPACK: everything here is O(N k) or O(k^3) for the
 * small k of a Krylov or sketch basis.
 *
 * Legend: N = the operator's dimension; blocks of vectors are row-major, row
 * r being vector r.
 */
#include "curvature.h"

#include <float.h>
#include <math.h>
#include <string.h>

#ifdef HESSIAN_HAVE_CBLAS
#include <cblas.h>
/* Below this many multiply-adds the call overhead of BLAS outweighs its speed. */
#define GEMV_BLAS_MIN 4096
#endif

/* ------------------------------------------------------------------------ */
/* The operator                                                             */
/* ------------------------------------------------------------------------ */

hess_status hess__curv_apply(hess__curv_run *run, size_t m, const double *X, double *Y)
{
    hess_context *ctx = run->ctx;
    const size_t n = run->op->n;
    hess_status st = run->op->apply(run->op->user, m, X, Y);
    if (st != HESS_OK) {
        /* an operator that did not say why (tests' dense ones) */
        if (ctx->status == HESS_OK)
            hess__error(ctx, st, "%s: the operator failed (%s)", run->fn, hess_status_str(st));
        return st;
    }
    /* one branch-free pass that vectorises (y * 0 is a zero for finite y, a
     * NaN for Inf and NaN), then the first bad element for the message */
    double z[4] = {0, 0, 0, 0};
    const size_t len = m * n, len4 = len & ~(size_t)3;
    for (size_t i = 0; i < len4; i += 4)
        for (int q = 0; q < 4; q++)
            z[q] += Y[i + q] * 0.0;
    for (size_t i = len4; i < len; i++)
        z[0] += Y[i] * 0.0;
    const bool bad = !((z[0] + z[1]) + (z[2] + z[3]) == 0.0);
    for (size_t i = 0; bad && i < len; i++)
        if (!isfinite(Y[i])) {
            hess__error(ctx, HESS_ERR_NONFINITE,
                        "%s: Hessian-vector product %zu has a non-finite value (%g at element %zu)",
                        run->fn, run->done + i / n + 1, Y[i], i % n);
            return HESS_ERR_NONFINITE;
        }
    run->done += m;
    return hess__progress(ctx, run->opts, run->done, run->total, run->fn);
}

double *hess__curv_doubles(hess__curv_run *run, size_t a, size_t b)
{
    if (a && b > SIZE_MAX / sizeof(double) / a) {
        hess__error(run->ctx, HESS_ERR_NOMEM, "%s: out of memory (%zu x %zu doubles)", run->fn, a,
                    b);
        return NULL;
    }
    return hess__alloc(run->ctx, a * b * sizeof(double), run->fn);
}

/* ------------------------------------------------------------------------ */
/* Random numbers                                                           */
/* ------------------------------------------------------------------------ */

/* splitmix64: the next value of the sequence x, x + gamma, ... mixed. */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

void hess__rng_init(hess__rng *r, uint64_t seed, uint64_t stream)
{
    /* the stream is mixed before it meets the seed, so that (seed, stream)
     * pairs that differ anywhere start far apart */
    uint64_t t = stream;
    uint64_t x = seed ^ splitmix(&t);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1; /* the one state xoshiro cannot leave */
    r->has_spare = 0;
    r->spare = 0.0;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna). */
uint64_t hess__rng_next(hess__rng *r)
{
    uint64_t *s = r->s;
    const uint64_t out = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double hess__rng_uniform(hess__rng *r)
{
    /* 53 random bits, centred in their cell: never 0, never 1 */
    return ((double)(hess__rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double hess__rng_normal(hess__rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    /* Box-Muller: a radius from u1, an angle from u2, two normals */
    const double rad = sqrt(-2.0 * log(hess__rng_uniform(r)));
    const double ang = 6.283185307179586476925 * hess__rng_uniform(r);
    r->spare = rad * sin(ang);
    r->has_spare = 1;
    return rad * cos(ang);
}

void hess__rng_signs(hess__rng *r, double *x, size_t n)
{
    for (size_t i = 0; i < n; i += 64) {
        uint64_t bits = hess__rng_next(r);
        const size_t len = n - i < 64 ? n - i : 64;
        for (size_t j = 0; j < len; j++, bits >>= 1)
            x[i + j] = (bits & 1u) ? 1.0 : -1.0;
    }
}

void hess__rng_normals(hess__rng *r, double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = hess__rng_normal(r);
}

/* ------------------------------------------------------------------------ */
/* Vectors and Gram-Schmidt                                                 */
/* ------------------------------------------------------------------------ */

double hess__dot(size_t n, const double *x, const double *y)
{
    /* four partial sums: vectorisable, and a little more accurate */
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i] * y[i];
        s1 += x[i + 1] * y[i + 1];
        s2 += x[i + 2] * y[i + 2];
        s3 += x[i + 3] * y[i + 3];
    }
    for (; i < n; i++)
        s0 += x[i] * y[i];
    return (s0 + s1) + (s2 + s3);
}

double hess__nrm2(size_t n, const double *x)
{
    /* One pass when the sum of squares is safely inside the doubles' range
     * (a square that underflowed then weighs below its last bit); else
     * scaled, so that neither huge nor tiny vectors overflow or underflow. */
    const double ss = hess__dot(n, x, x);
    if (ss > 0x1p-960 && ss < 0x1p960)
        return sqrt(ss);
    double amax = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > amax)
            amax = fabs(x[i]);
    if (amax == 0 || !isfinite(amax))
        return amax;
    double s = 0;
    for (size_t i = 0; i < n; i++) { /* not x[i] * (1 / amax): that is Inf for a subnormal amax */
        const double t = x[i] / amax;
        s += t * t;
    }
    return amax * sqrt(s);
}

void hess__axpy(size_t n, double a, const double *x, double *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* c[i] = B[i] . w, i < nb: four rows per pass over w (or BLAS). */
static void dots_rows(size_t nb, const double *B, size_t n, const double *w, double *c)
{
#ifdef HESSIAN_HAVE_CBLAS
    if (nb * n >= GEMV_BLAS_MIN) {
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)nb, (int)n, 1.0, B, (int)n, w, 1, 0.0, c, 1);
        return;
    }
#endif
    size_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const double *b0 = B + i * n, *b1 = b0 + n, *b2 = b1 + n, *b3 = b2 + n;
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t t = 0; t < n; t++) {
            s0 += b0[t] * w[t];
            s1 += b1[t] * w[t];
            s2 += b2[t] * w[t];
            s3 += b3[t] * w[t];
        }
        c[i] = s0, c[i + 1] = s1, c[i + 2] = s2, c[i + 3] = s3;
    }
    for (; i < nb; i++)
        c[i] = hess__dot(n, B + i * n, w);
}

/* w -= sum_i c[i] B[i], i < nb: four rows per pass over w (or BLAS). */
static void sub_rows(size_t nb, const double *B, size_t n, const double *c, double *w)
{
#ifdef HESSIAN_HAVE_CBLAS
    if (nb * n >= GEMV_BLAS_MIN) {
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)nb, (int)n, -1.0, B, (int)n, c, 1, 1.0, w, 1);
        return;
    }
#endif
    size_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const double *b0 = B + i * n, *b1 = b0 + n, *b2 = b1 + n, *b3 = b2 + n;
        for (size_t t = 0; t < n; t++)
            w[t] -= c[i] * b0[t] + c[i + 1] * b1[t] + c[i + 2] * b2[t] + c[i + 3] * b3[t];
    }
    for (; i < nb; i++)
        hess__axpy(n, -c[i], B + i * n, w);
}

/* Classical Gram-Schmidt in blocks of rows (each a product with the block
 * and one back), repeated when the first pass cancelled much of w (the
 * DGKS test: the norm fell below 1/sqrt(2) of what it was), at most twice:
 * orthogonal to working precision as two passes of modified Gram-Schmidt
 * are, at a quarter of the passes over the basis when no cancellation.
 *
 * With local > 0, w is first made orthogonal to the last min(local, nb) rows
 * alone, one at a time (O(n) each): for a Lanczos vector A v_j that is the
 * three-term recurrence, after which w is orthogonal to the other rows up to
 * rounding, so the pass over the whole basis cancels little and is seldom
 * repeated -- two passes over the basis per step instead of four. */
void hess__orth_local(size_t nb, const double *B, size_t n, double *w, double *h, size_t local)
{
    enum { BLOCK = 64 };
    double c[BLOCK];
    if (h)
        memset(h, 0, nb * sizeof *h);
    for (size_t i = nb - (local < nb ? local : nb); i < nb; i++) {
        const double ci = hess__dot(n, B + i * n, w);
        hess__axpy(n, -ci, B + i * n, w);
        if (h)
            h[i] += ci;
    }
    double before = hess__nrm2(n, w);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i0 = 0; i0 < nb; i0 += BLOCK) {
            const size_t m = nb - i0 < BLOCK ? nb - i0 : BLOCK;
            dots_rows(m, B + i0 * n, n, w, c);
            sub_rows(m, B + i0 * n, n, c, w);
            if (h)
                for (size_t i = 0; i < m; i++)
                    h[i0 + i] += c[i];
        }
        const double after = hess__nrm2(n, w);
        if (after > 0.70710678118654752440 * before)
            break;
        before = after;
    }
}

void hess__orth_against(size_t nb, const double *B, size_t n, double *w, double *h)
{
    hess__orth_local(nb, B, n, w, h, 0);
}

void hess__random_orth(size_t nb, const double *B, size_t n, double *w, hess__rng *rng)
{
    memset(w, 0, n * sizeof *w);
    /* One try almost surely: the part left has a norm of about sqrt(n - nb)
     * against sqrt(n).  Below 1e-10 of it the two Gram-Schmidt passes might
     * not have made it orthogonal to working precision. */
    for (int tries = 0; nb < n && tries < 32; tries++) {
        hess__rng_normals(rng, w, n);
        const double n0 = hess__nrm2(n, w);
        hess__orth_against(nb, B, n, w, NULL);
        const double nrm = hess__nrm2(n, w);
        if (nrm > 1e-10 * n0) {
            for (size_t i = 0; i < n; i++)
                w[i] /= nrm;
            return;
        }
    }
    memset(w, 0, n * sizeof *w);
}

void hess__orth_rows(size_t m, size_t n, double *Y, double *R, hess__rng *rng)
{
    if (R)
        memset(R, 0, m * m * sizeof *R);
    for (size_t i = 0; i < m; i++) {
        double *y = Y + i * n;
        const double n0 = hess__nrm2(n, y);
        for (int pass = 0; pass < 2; pass++)
            for (size_t c = 0; c < i; c++) {
                const double t = hess__dot(n, Y + c * n, y);
                hess__axpy(n, -t, Y + c * n, y);
                if (R)
                    R[c * m + i] += t;
            }
        const double nrm = hess__nrm2(n, y);
        if (i < n && nrm > 1e-13 * n0) { /* so nrm > 0: n0 >= 0 */
            for (size_t j = 0; j < n; j++)
                y[j] /= nrm;
            if (R)
                R[i * m + i] = nrm;
        } else { /* numerically dependent: any direction orthogonal to the rest */
            hess__random_orth(i, Y, n, y, rng);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Symmetric eigenproblems                                                  */
/* ------------------------------------------------------------------------ */

/* Sorts d[0..n-1] increasingly, moving the columns of Z (nz x n) along. */
static void sort_pairs(size_t n, double *d, size_t nz, double *Z)
{
    for (size_t i = 0; i + 1 < n; i++) {
        size_t lo = i;
        for (size_t j = i + 1; j < n; j++)
            if (d[j] < d[lo])
                lo = j;
        if (lo == i)
            continue;
        const double t = d[i];
        d[i] = d[lo];
        d[lo] = t;
        for (size_t r = 0; r < nz; r++) {
            double *row = Z + r * n;
            const double u = row[i];
            row[i] = row[lo];
            row[lo] = u;
        }
    }
}

/* sqrt(a^2 + b^2) without overflow or destructive underflow, a few times
 * faster than libm's hypot (which also keeps the last bit exact, which the
 * QL sweeps below do not need). */
static double pythag(double a, double b)
{
    const double x = fabs(a), y = fabs(b);
    if (x > y) {
        const double t = y / x;
        return x * sqrt(1.0 + t * t);
    }
    if (y == 0.0)
        return 0.0;
    const double t = x / y;
    return y * sqrt(1.0 + t * t);
}

/*
 * Implicit QL with shifts.  The unreduced block d[l..m] is found by looking
 * for the first negligible e[m]; a shift from the 2 x 2 block at l (the
 * eigenvalue of it nearer d[l]) starts a bulge at the bottom, which Givens
 * rotations chase up to l.  Each rotation acts on columns i, i+1 of Z.
 */
int hess__tridiag_eig(size_t n, double *d, double *e, size_t nz, double *Z)
{
    if (n == 0)
        return 0;
    e[n - 1] = 0.0;
    for (size_t l = 0; l < n; l++) {
        for (int sweep = 0;; sweep++) {
            size_t m = l;
            for (; m + 1 < n; m++)
                if (fabs(e[m]) <= DBL_EPSILON * (fabs(d[m]) + fabs(d[m + 1])))
                    break;
            if (m == l)
                break; /* d[l] is an eigenvalue */
            if (sweep == 60)
                return -1;
            double g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            double r = pythag(g, 1.0);
            g = d[m] - d[l] + e[l] / (g + copysign(r, g)); /* d[m] - shift */
            double s = 1.0, c = 1.0, p = 0.0;
            int deflated = 0;
            for (size_t i = m; i-- > l;) {
                const double f = s * e[i], b = c * e[i];
                r = pythag(f, g);
                e[i + 1] = r;
                if (r == 0.0) { /* the rotation underflowed: the block split at i */
                    d[i + 1] -= p;
                    e[m] = 0.0;
                    deflated = 1;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                r = (d[i] - g) * s + 2.0 * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
                for (size_t z = 0; z < nz; z++) {
                    double *row = Z + z * n;
                    const double t = row[i + 1];
                    row[i + 1] = s * row[i] + c * t;
                    row[i] = c * row[i] - s * t;
                }
            }
            if (deflated)
                continue;
            d[l] -= p;
            e[l] = g;
            e[m] = 0.0;
        }
    }
    sort_pairs(n, d, nz, Z);
    return 0;
}

double hess__tridiag_norm(size_t n, const double *d, const double *e)
{
    double tnorm = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double r = fabs(d[i]) + (i ? fabs(e[i - 1]) : 0.0) + (i + 1 < n ? fabs(e[i]) : 0.0);
        tnorm = r > tnorm ? r : tnorm;
    }
    return tnorm;
}

/* 1 / a, a raised to DBL_EPSILON in magnitude first (keeping its sign, + for 0). */
static double pivot_inverse(double a)
{
    return 1.0 / (fabs(a) < DBL_EPSILON ? (a < 0 ? -DBL_EPSILON : DBL_EPSILON) : a);
}

/* Factors (T - theta I) / tnorm = P L U by Gaussian elimination with row
 * interchanges (LAPACK's dgttrf): U has the diagonal 1 / u0 (u0 keeps the
 * reciprocals: the solves multiply) and two superdiagonals u1, u2; l the
 * multipliers, swap the interchanges.  A pivot below DBL_EPSILON (theta an
 * eigenvalue to working precision) is raised to it, which is what makes the
 * solve amplify the eigenvector. */
static void shifted_lu(size_t n,
                       const double *d,
                       const double *e,
                       double theta,
                       double s,
                       double *u0,
                       double *u1,
                       double *u2,
                       double *l,
                       unsigned char *swap)
{
    double a = (d[0] - theta) * s, b = n > 1 ? e[0] * s : 0.0;
    for (size_t i = 0; i + 1 < n; i++) {
        const double sub = e[i] * s, dn = (d[i + 1] - theta) * s;
        const double en = i + 2 < n ? e[i + 1] * s : 0.0;
        if (fabs(a) >= fabs(sub)) { /* a = sub = 0 too: nothing to eliminate */
            swap[i] = 0;
            u0[i] = a, u1[i] = b, u2[i] = 0.0;
            l[i] = a != 0.0 ? sub / a : 0.0;
            a = dn - l[i] * b;
            b = en;
        } else {
            swap[i] = 1;
            u0[i] = sub, u1[i] = dn, u2[i] = en;
            l[i] = a / sub;
            a = b - l[i] * dn;
            b = -l[i] * en;
        }
        u0[i] = pivot_inverse(u0[i]);
    }
    u0[n - 1] = pivot_inverse(a);
}

/* x = (P L U)^-1 x up to a positive factor: back substitution rescales what
 * it has made (and the right-hand side left) when an entry passes 2^600, so
 * that nothing overflows. */
static void shifted_solve(size_t n,
                          const double *u0,
                          const double *u1,
                          const double *u2,
                          const double *l,
                          const unsigned char *swap,
                          double *x)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (swap[i]) {
            const double t = x[i];
            x[i] = x[i + 1];
            x[i + 1] = t;
        }
        x[i + 1] -= l[i] * x[i];
    }
    for (size_t i = n; i-- > 0;) {
        double t = x[i];
        if (i + 1 < n)
            t -= u1[i] * x[i + 1];
        if (i + 2 < n)
            t -= u2[i] * x[i + 2];
        x[i] = t * u0[i];
        if (fabs(x[i]) > 0x1p600) {
            const double f = 1.0 / fabs(x[i]);
            for (size_t q = 0; q < n; q++)
                x[q] *= f;
        }
    }
}

void hess__tridiag_vectors(size_t n,
                           const double *d,
                           const double *e,
                           size_t cnt,
                           const double *theta,
                           double *Y,
                           double *work,
                           hess__rng *rng)
{
    double tnorm = hess__tridiag_norm(n, d, e);
    if (!(tnorm > 0.0) || !isfinite(tnorm))
        tnorm = 1.0;
    const double s = 1.0 / tnorm;
    double *u0 = work, *u1 = work + n, *u2 = work + 2 * n, *l = work + 3 * n;
    unsigned char *swap = (unsigned char *)(work + 4 * n);
    for (size_t c = 0; c < cnt; c++) {
        double *y = Y + c * n;
        shifted_lu(n, d, e, theta[c], s, u0, u1, u2, l, swap);
        for (size_t i = 0; i < n; i++)
            y[i] = hess__rng_uniform(rng) - 0.5;
        for (int it = 0; it < 3; it++) {
            shifted_solve(n, u0, u1, u2, l, swap, y);
            /* a cluster: orthogonal to the vectors of its other members */
            for (size_t q = 0; q < c; q++)
                if (fabs(theta[q] - theta[c]) <= 1e-3 * tnorm)
                    hess__axpy(n, -hess__dot(n, Y + q * n, y), Y + q * n, y);
            double nrm = hess__nrm2(n, y);
            if (!(nrm > 0.0) || !isfinite(nrm)) { /* a start inside the cluster's span */
                for (size_t i = 0; i < n; i++)
                    y[i] = hess__rng_uniform(rng) - 0.5;
                nrm = hess__nrm2(n, y);
            }
            for (size_t i = 0; i < n; i++)
                y[i] /= nrm;
        }
    }
}

/*
 * Householder tridiagonalisation: for each column k, the reflector
 * H = I - 2 v v^T maps A[k+1.., k] to (alpha, 0, ..., 0).  With p = A v and
 * K = v^T p the update is H A H = A - 2 v q^T - 2 q v^T, q = p - K v, on the
 * trailing block.  Z accumulates H_0 H_1 ..., so A = Z T Z^T.
 */
int hess__sym_eig(size_t n, double *A, double *w, size_t nz, double *Z, double *work)
{
    double *v = work, *p = work + n, *e = work + 2 * n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            A[i * n + j] = A[j * n + i];
    memset(Z, 0, nz * n * sizeof *Z);
    for (size_t r = 0; r < nz; r++) /* rows n - nz .. n - 1 of the identity */
        Z[r * n + n - nz + r] = 1.0;
    for (size_t k = 0; k + 2 < n; k++) {
        const size_t o = k + 1, len = n - o; /* the block A[o.., o..] */
        for (size_t i = 0; i < len; i++)
            v[i] = A[(o + i) * n + k];
        const double xn = hess__nrm2(len, v);
        if (xn == 0.0)
            continue;
        const double alpha = v[0] > 0 ? -xn : xn; /* no cancellation in v[0] - alpha */
        v[0] -= alpha;                            /* |v[0]| = |v[0]| + xn: vn >= xn > 0 */
        const double vn = hess__nrm2(len, v);
        for (size_t i = 0; i < len; i++)
            v[i] /= vn;
        for (size_t i = 0; i < len; i++)
            p[i] = hess__dot(len, A + (o + i) * n + o, v);
        const double K = hess__dot(len, v, p);
        for (size_t i = 0; i < len; i++)
            p[i] -= K * v[i];
        for (size_t i = 0; i < len; i++)
            for (size_t j = 0; j < len; j++)
                A[(o + i) * n + o + j] -= 2.0 * (v[i] * p[j] + p[i] * v[j]);
        for (size_t i = 0; i < len; i++)
            A[(o + i) * n + k] = A[k * n + o + i] = i ? 0.0 : alpha;
        for (size_t r = 0; r < nz; r++) {
            double *row = Z + r * n + o;
            const double t = 2.0 * hess__dot(len, row, v);
            hess__axpy(len, -t, v, row);
        }
    }
    for (size_t i = 0; i < n; i++) {
        w[i] = A[i * n + i];
        e[i] = i + 1 < n ? A[(i + 1) * n + i] : 0.0;
    }
    return hess__tridiag_eig(n, w, e, nz, Z);
}
