/*
 * gradcheck.c -- hess_check_derivatives(), the derivative check for users: the
 * analytic gradient (hess_grad) and Hessian-vector products (hess_hvp) of a
 * loss that the caller's callback builds, against central finite differences
 * of the loss and of the gradient.  The library's own op-by-op checks are in
 * tests/test_grad.c.
 *
 * Legend: N = hess_param_count(n, params), the flattened parameter vector x
 * (each parameter row-major, in the order given).
 */
#include "second_order.h"

#include <math.h>
#include <string.h>

#define DEFAULT_EPS   1e-6
#define DEFAULT_RTOL  1e-3
#define DEFAULT_ATOL  1e-5
#define DEFAULT_N_HVP 4

static const char fn[] = "hess_check_derivatives";

/* State of one check. */
typedef struct gc {
    hess_context *ctx;
    hess_loss_fn f;
    void *user;
    size_t n;
    hess_tensor *const *params;
    size_t N;
    double eps, rtol, atol;
    hess_check_report *rep;
    double worst; /* largest scaled error so far, -1 before the first element */
} gc;

/* ------------------------------------------------------------------------ */
/* Arguments                                                                */
/* ------------------------------------------------------------------------ */

static hess_status check_args(hess_context *ctx,
                              hess_loss_fn f,
                              size_t n,
                              hess_tensor *const params[],
                              const hess_check_opts *opts,
                              const hess_check_report *report)
{
    if (!f || !report || !params || n == 0) {
        hess__error(ctx, HESS_ERR_ARG, "%s: %s", fn,
                    !f        ? "NULL callback"
                    : !report ? "NULL report"
                              : "no parameters given");
        return HESS_ERR_ARG;
    }
    hess_status st = hess__check_list(ctx, n, params, "params", fn);
    if (st != HESS_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        if (!hess__is_leaf(params[i])) { /* its values are computed, not set */
            hess__error(ctx, HESS_ERR_ARG,
                        "%s: params[%zu] is the result of %s, not a leaf (a parameter or input)",
                        fn, i, params[i]->def->name);
            return HESS_ERR_ARG;
        }
    if (opts && !(opts->eps >= 0 && opts->rtol >= 0 && opts->atol >= 0 && isfinite(opts->eps) &&
                  isfinite(opts->rtol) && isfinite(opts->atol))) {
        hess__error(ctx, HESS_ERR_ARG, "%s: eps, rtol and atol must be finite and >= 0", fn);
        return HESS_ERR_ARG;
    }
    return HESS_OK;
}

/* ------------------------------------------------------------------------ */
/* Evaluations                                                              */
/* ------------------------------------------------------------------------ */

/* Calls the callback; the loss, or NULL with the error recorded. */
static hess_tensor *build_loss(gc *c)
{
    hess_tensor *loss = c->f(c->ctx, c->n, c->params, c->user);
    if (!loss) {
        if (c->ctx->status == HESS_OK)
            hess__error(c->ctx, HESS_ERR_ARG, "%s: the callback returned NULL", fn);
        return NULL;
    }
    if (hess__check(c->ctx, loss, fn) != HESS_OK || hess__refresh(c->ctx, 1, &loss, fn) != HESS_OK)
        return NULL;
    if (loss->numel != 1) {
        char s[96];
        hess__error(c->ctx, HESS_ERR_ARG, "%s: the callback's loss must be a scalar, got %s", fn,
                    hess__shape_str(s, loss->ndim, loss->shape));
        return NULL;
    }
    return loss;
}

/* The gradient of loss, flattened into g (N doubles). */
static hess_status flat_grad(gc *c, hess_tensor *loss, double *g)
{
    hess_tensor **gr = hess__alloc(c->ctx, c->n * sizeof *gr, fn);
    if (!gr)
        return c->ctx->status;
    hess_status st = hess_grad(c->ctx, loss, c->n, c->params, gr, HESS_ALLOW_UNUSED);
    for (size_t i = 0; i < c->n && st == HESS_OK; i++) {
        memcpy(g, gr[i]->data, (size_t)gr[i]->numel * sizeof *g);
        g += gr[i]->numel;
    }
    return st;
}

/* The loss at the current values, built after mark mk and rewound. */
static hess_status loss_at(gc *c, hess_mark mk, double *value)
{
    hess_tensor *loss = build_loss(c);
    if (loss)
        *value = loss->data[0];
    hess__rewind(c->ctx, &mk);
    return c->ctx->status;
}

/* The gradient at the current values, built after mark mk and rewound. */
static hess_status grad_at(gc *c, hess_mark mk, double *g)
{
    hess_tensor *loss = build_loss(c);
    hess_status st = loss ? flat_grad(c, loss, g) : c->ctx->status;
    hess__rewind(c->ctx, &mk);
    return st;
}

/* Writes the flat vector x into the parameters (as hess_tensor_set does,
 * without its checks: the values are the caller's, moved by a small step). */
static void set_flat(const gc *c, const double *x)
{
    for (size_t i = 0; i < c->n; i++) {
        memcpy(c->params[i]->data, x, (size_t)c->params[i]->numel * sizeof *x);
        c->params[i]->par.leaf.nz_chunks = -1; /* not counted: moved by a small step */
        hess__touch(c->ctx, c->params[i], true);
        x += c->params[i]->numel;
    }
}

/* Sets element j of parameter p to x. */
static void set_elem(const gc *c, hess_tensor *p, int64_t j, double x)
{
    p->data[j] = x;
    p->par.leaf.nz_chunks = -1;
    hess__touch(c->ctx, p, true);
}

/* ------------------------------------------------------------------------ */
/* Comparison                                                               */
/* ------------------------------------------------------------------------ */

/* Scores one element (flat index k) and keeps the worst. */
static double compare(gc *c, size_t k, double analytic, double numeric, int what)
{
    double err;
    if (isnan(analytic) || isnan(numeric))
        err = INFINITY;
    else if (analytic == numeric)
        err = 0.0; /* also equal infinities */
    else
        err = fabs(analytic - numeric) / (c->atol + c->rtol * fabs(numeric));
    if (isnan(err))
        err = INFINITY; /* inf - inf */
    if (err > c->worst) {
        c->worst = err;
        size_t p = 0;
        while (k >= (size_t)c->params[p]->numel)
            k -= (size_t)c->params[p++]->numel;
        c->rep->param = p;
        c->rep->index = (int64_t)k;
        c->rep->analytic = analytic;
        c->rep->numeric = numeric;
        c->rep->what = what;
    }
    return err;
}

/* ------------------------------------------------------------------------ */
/* The two checks                                                           */
/* ------------------------------------------------------------------------ */

/* Gradient: analytic ga against central differences of the loss, element by
 * element.  x0 holds the flat values, which every parameter gets back. */
static hess_status check_grad(gc *c, const double *ga, const double *x0, hess_mark mk)
{
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        hess_tensor *p = c->params[i];
        for (int64_t j = 0; j < p->numel; j++, k++) {
            const double x = x0[k], h = c->eps * fmax(1.0, fabs(x));
            const double xp = x + h, xm = x - h;
            double fp = 0, fm = 0;
            set_elem(c, p, j, xp);
            hess_status st = loss_at(c, mk, &fp);
            set_elem(c, p, j, xm);
            if (st == HESS_OK)
                st = loss_at(c, mk, &fm);
            set_elem(c, p, j, x);
            if (st != HESS_OK)
                return st;
            const double e = compare(c, k, ga[k], (fp - fm) / (xp - xm), HESS_CHECK_GRADIENT);
            if (!(e <= c->rep->max_grad_err))
                c->rep->max_grad_err = e;
        }
    }
    return HESS_OK;
}

/* A reproducible direction: uniform in [-1, 1), scaled to max |v_i| = 1. */
static void random_direction(uint64_t *s, double *v, size_t N)
{
    double big = 0.0;
    for (size_t i = 0; i < N; i++) {
        uint64_t z = (*s += 0x9E3779B97F4A7C15u); /* splitmix64 */
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
        z ^= z >> 31;
        v[i] = (double)(z >> 11) * (2.0 / 9007199254740992.0) - 1.0;
        big = fmax(big, fabs(v[i]));
    }
    for (size_t i = 0; big > 0 && i < N; i++)
        v[i] /= big;
}

/* H v by the explicit double backward, for a loss that does not depend on
 * every parameter (hess_hvp reports that as HESS_ERR_NODIFF). */
static hess_status hvp_unused(gc *c, hess_tensor *loss, const double *v, double *hv)
{
    hess_context *ctx = c->ctx;
    const hess_mark mk = hess__mark(ctx);
    hess_tensor **g = hess__alloc(ctx, c->n * sizeof *g, fn);
    hess_status st =
        g ? hess_grad(ctx, loss, c->n, c->params, g, HESS_CREATE_GRAPH | HESS_ALLOW_UNUSED)
          : ctx->status;
    hess_tensor *dot = NULL;
    for (size_t i = 0; i < c->n && st == HESS_OK; i++) {
        const hess_tensor *p = c->params[i];
        hess_tensor *vi = hess_tensor_new(ctx, p->ndim, p->shape, v);
        hess_tensor *term = hess_sum(ctx, hess_mul(ctx, g[i], vi));
        dot = dot ? hess_add(ctx, dot, term) : term;
        v += p->numel;
        st = ctx->status;
    }
    if (st == HESS_OK)
        st = flat_grad(c, dot, hv);
    hess__rewind(ctx, &mk);
    return st;
}

/* HVP: analytic H v against central differences of the gradient along v, for
 * n_hvp random directions.  x0 as in check_grad; v, hv, gp, gm are N scratch
 * doubles each. */
static hess_status check_hvp(gc *c,
                             hess_tensor *loss,
                             const hess_check_opts *opts,
                             double *x0,
                             double *scratch,
                             hess_mark mk)
{
    const size_t N = c->N, n_hvp = opts && opts->n_hvp ? opts->n_hvp : DEFAULT_N_HVP;
    double *v = scratch, *hv = v + N, *gp = hv + N, *gm = gp + N, *x = gm + N;
    double big = 0.0;
    for (size_t k = 0; k < N; k++)
        big = fmax(big, fabs(x0[k]));
    const double h = c->eps * fmax(1.0, big);
    uint64_t seed = opts ? opts->seed : 0;
    for (size_t r = 0; r < n_hvp; r++) {
        random_direction(&seed, v, N);
        hess_status st = hess_hvp(c->ctx, loss, c->n, c->params, v, hv);
        if (st == HESS_ERR_NODIFF) {
            hess_context_clear_error(c->ctx); /* the context was clean on entry */
            st = hvp_unused(c, loss, v, hv);
        }
        for (int side = 0; side < 2 && st == HESS_OK; side++) {
            for (size_t k = 0; k < N; k++)
                x[k] = x0[k] + (side ? -h : h) * v[k];
            set_flat(c, x);
            st = grad_at(c, mk, side ? gm : gp);
        }
        set_flat(c, x0);
        if (st != HESS_OK)
            return st;
        for (size_t k = 0; k < N; k++) {
            const double e = compare(c, k, hv[k], (gp[k] - gm[k]) / (2 * h), HESS_CHECK_HVP);
            if (!(e <= c->rep->max_hvp_err))
                c->rep->max_hvp_err = e;
        }
    }
    return HESS_OK;
}

/* ------------------------------------------------------------------------ */
/* Public function                                                          */
/* ------------------------------------------------------------------------ */

hess_status hess_check_derivatives(hess_context *ctx,
                                   hess_loss_fn f,
                                   void *user,
                                   size_t n,
                                   hess_tensor *const params[],
                                   const hess_check_opts *opts,
                                   hess_check_report *report)
{
    if (report)
        memset(report, 0, sizeof *report);
    hess_status st = hess__enter(ctx, fn);
    if (st != HESS_OK)
        return st;
    st = check_args(ctx, f, n, params, opts, report);
    if (st != HESS_OK)
        return st;
    gc c = {ctx,          f,
            user,         n,
            params,       hess_param_count(n, params),
            DEFAULT_EPS,  DEFAULT_RTOL,
            DEFAULT_ATOL, report,
            -1.0};
    if (opts && opts->eps > 0)
        c.eps = opts->eps;
    if (opts && opts->rtol > 0)
        c.rtol = opts->rtol;
    if (opts && opts->atol > 0)
        c.atol = opts->atol;

    const hess_mark m0 = hess__mark(ctx);
    /* x0, the analytic gradient, then 5 scratch vectors for the HVP check. */
    double *x0 = hess__alloc(ctx, 7 * c.N * sizeof *x0, fn);
    if (!x0)
        return ctx->status;
    double *ga = x0 + c.N;
    for (size_t i = 0, k = 0; i < n; k += (size_t)params[i]->numel, i++)
        memcpy(x0 + k, params[i]->data, (size_t)params[i]->numel * sizeof *x0);

    hess_tensor *loss = build_loss(&c);
    st = loss ? flat_grad(&c, loss, ga) : ctx->status;
    const hess_mark m1 = hess__mark(ctx);
    if (st == HESS_OK)
        st = check_grad(&c, ga, x0, m1);
    if (st == HESS_OK && c.worst <= 1.0)
        st = check_hvp(&c, loss, opts, x0, ga + c.N, m1);
    set_flat(&c, x0);
    hess__rewind(ctx, &m0);
    report->ok = st == HESS_OK && c.worst <= 1.0;
    if (st != HESS_OK) {
        memset(report, 0, sizeof *report);
        return st;
    }
    return HESS_OK;
}
