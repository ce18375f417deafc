/*
 * solvers.c -- Krylov solvers for (A + shift I) x = b with A symmetric, one
 * product per iteration and O(N) memory: conjugate gradients, which stops
 * where it meets non-positive curvature (the Newton-CG / Hessian-free rule),
 * and MINRES (Paige and Saunders 1975), which minimises ||b - (A + shift I) x||
 * over the Krylov space and so works for indefinite systems too.
 *
 * Legend: N = the operator's dimension; all vectors have N doubles.
 */
#include "curvature.h"

#include <math.h>
#include <string.h>

static hess_status check_solve(hess__curv_run *run, double shift, double tol, size_t max_iter)
{
    if (max_iter == 0 || !(tol >= 0) || !isfinite(shift)) {
        hess__error(run->ctx, HESS_ERR_ARG,
                    "%s: bad solve request (max_iter = %zu, tol = %g, "
                    "shift = %g)",
                    run->fn, max_iter, tol, shift);
        return HESS_ERR_ARG;
    }
    return HESS_OK;
}

/* y = (A + shift I) x for one vector. */
static hess_status apply_shifted(hess__curv_run *run, double shift, const double *x, double *y)
{
    hess_status st = hess__curv_apply(run, 1, x, y);
    if (st == HESS_OK && shift != 0.0)
        hess__axpy(run->op->n, shift, x, y);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Conjugate gradients                                                      */
/* ------------------------------------------------------------------------ */

hess_status hess__cg(hess__curv_run *run,
                     const double *b,
                     double shift,
                     double tol,
                     size_t max_iter,
                     double *x,
                     hess_solve_info *info)
{
    hess_status st = check_solve(run, shift, tol, max_iter);
    if (st != HESS_OK)
        return st;
    const size_t N = run->op->n;
    memset(info, 0, sizeof *info);
    const hess_mark mk = hess__mark(run->ctx);
    double *r = hess__curv_doubles(run, N, 1), *p = hess__curv_doubles(run, N, 1);
    double *Ap = hess__curv_doubles(run, N, 1);
    if (!r || !p || !Ap) {
        hess__rewind(run->ctx, &mk);
        return run->ctx->status;
    }
    memcpy(r, b, N * sizeof *r); /* before x is written: x may be b */
    memcpy(p, b, N * sizeof *p);
    memset(x, 0, N * sizeof *x);
    const double bn = hess__nrm2(N, r);
    run->total = max_iter;
    double rr = hess__dot(N, r, r), rn = bn;
    while (bn > 0 && rn > tol * bn && info->iterations < max_iter) {
        if ((st = apply_shifted(run, shift, p, Ap)) != HESS_OK)
            break;
        info->iterations++;
        const double pAp = hess__dot(N, p, Ap);
        if (!(pAp > 0)) {
            /* Non-positive curvature along p: the quadratic model is unbounded
             * below there.  The iterate so far is a descent direction; before
             * the first step it is 0, so b itself (steepest descent for
             * b = -gradient) is returned, with its residual b - A b. */
            info->negative_curvature = 1;
            if (info->iterations == 1) {
                memcpy(x, p, N * sizeof *x);
                hess__axpy(N, -1.0, Ap, r);
                rn = hess__nrm2(N, r);
            }
            break;
        }
        const double a = rr / pAp;
        hess__axpy(N, a, p, x);
        hess__axpy(N, -a, Ap, r);
        const double rr_new = hess__dot(N, r, r);
        rn = sqrt(rr_new);
        const double bta = rr_new / rr;
        for (size_t i = 0; i < N; i++)
            p[i] = r[i] + bta * p[i];
        rr = rr_new;
    }
    if (st == HESS_OK) {
        info->rel_residual = bn > 0 ? rn / bn : 0.0;
        info->converged = info->rel_residual <= tol;
    }
    hess__rewind(run->ctx, &mk);
    return st;
}

/* ------------------------------------------------------------------------ */
/* MINRES                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * The Lanczos process on A + shift I from v_1 = b / ||b|| gives
 * (A + shift I) V_k = V_{k+1} Tbar_k, with Tbar_k (k+1) x k tridiagonal.
 * MINRES minimises || beta_1 e_1 - Tbar_k y || by a QR factorisation of
 * Tbar_k kept up to date with one Givens rotation (cs, sn) per step, and
 * x_k = V_k y_k = D_k t_k where the search directions D_k = V_k R_k^{-1}
 * obey a three-term recurrence (w), so nothing grows with k.  phibar is the
 * residual norm ||b - (A + shift I) x_k||.
 */
hess_status hess__minres(hess__curv_run *run,
                         const double *b,
                         double shift,
                         double tol,
                         size_t max_iter,
                         double *x,
                         hess_solve_info *info)
{
    hess_status st = check_solve(run, shift, tol, max_iter);
    if (st != HESS_OK)
        return st;
    const size_t N = run->op->n;
    memset(info, 0, sizeof *info);
    const hess_mark mk = hess__mark(run->ctx);
    double *buf = hess__curv_doubles(run, 7, N);
    if (!buf) {
        hess__rewind(run->ctx, &mk);
        return run->ctx->status;
    }
    /* r1, r2: the last two Lanczos vectors unnormalised (beta_k v_k); y the
     * next; v the current one; w, w1, w2 the last three directions */
    double *r1 = buf, *r2 = buf + N, *y = buf + 2 * N, *v = buf + 3 * N;
    double *w = buf + 4 * N, *w1 = buf + 5 * N, *w2 = buf + 6 * N;
    memcpy(r1, b, N * sizeof *r1); /* before x is written: x may be b */
    memcpy(r2, b, N * sizeof *r2);
    memset(x, 0, N * sizeof *x);
    memset(w, 0, N * sizeof *w);
    memset(w2, 0, N * sizeof *w2);
    const double beta1 = hess__nrm2(N, r2);
    double beta = beta1, oldb = 0.0;
    double cs = -1.0, sn = 0.0, dbar = 0.0, epsln = 0.0, phibar = beta1;
    run->total = max_iter;
    /* beta_{k+1} = 0 ends the loop too: then sn = 0 makes phibar 0, or the
     * step broke out (gamma = 0) */
    while (beta1 > 0 && phibar > tol * beta1 && info->iterations < max_iter) {
        /* Lanczos step: beta_{k+1} v_{k+1} = (A + shift I) v_k - alpha_k v_k - beta_k v_{k-1} */
        for (size_t i = 0; i < N; i++)
            v[i] = r2[i] / beta;
        if ((st = apply_shifted(run, shift, v, y)) != HESS_OK)
            break;
        info->iterations++;
        if (info->iterations >= 2)
            hess__axpy(N, -beta / oldb, r1, y);
        const double alpha = hess__dot(N, v, y);
        hess__axpy(N, -alpha / beta, r2, y);
        double *t = r1;
        r1 = r2;
        r2 = y;
        y = t;
        oldb = beta;
        beta = hess__nrm2(N, r2);

        /* apply the previous rotation to the new column of Tbar, then make
         * the rotation that annihilates its subdiagonal beta_{k+1} */
        const double oldeps = epsln;
        const double delta = cs * dbar + sn * alpha;
        const double gbar = sn * dbar - cs * alpha;
        epsln = sn * beta;
        dbar = -cs * beta;
        const double gamma = hypot(gbar, beta);
        if (gamma == 0.0) {
            /* beta_{k+1} = 0 and the new column of Tbar is zero once rotated:
             * the Krylov space is invariant and v_k reduces no residual (b has
             * a part A + shift I cannot reach, an inconsistent singular
             * system).  x and phibar, the least residual, stay as they are. */
            break;
        }
        cs = gbar / gamma;
        sn = beta / gamma;
        const double phi = cs * phibar;
        phibar = sn * phibar;

        /* the new direction and the update of x */
        t = w1;
        w1 = w2;
        w2 = w;
        w = t;
        for (size_t i = 0; i < N; i++)
            w[i] = (v[i] - oldeps * w1[i] - delta * w2[i]) / gamma;
        hess__axpy(N, phi, w, x);
    }
    if (st == HESS_OK) {
        info->rel_residual = beta1 > 0 ? fabs(phibar) / beta1 : 0.0;
        info->converged = info->rel_residual <= tol;
    }
    hess__rewind(run->ctx, &mk);
    return st;
}
