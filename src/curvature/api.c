/*
 * api.c -- the public curvature functions of issue #15: hess_eigs,
 * hess_spectral_density, hess_trace_estimate, hess_diag_estimate and
 * hess_solve.  Each checks its arguments, resolves the defaults of its
 * options, and runs an algorithm of lanczos.c, estimators.c or solvers.c on
 * the Hessian as a linear operator.  The operator is the only place the graph
 * is seen: the Hessian kept open (hess__hvp_open: the gradient graph and a
 * batched double-backward graph built once, which brings the loss up to date
 * and checks it and the parameters), each product a replay of its sweep.
 *
 * Legend: N = hess_param_count(n, params).
 */
#include "curvature.h"

#include <math.h>
#include <string.h>

#define DEFAULT_TOL      1e-10
#define DEFAULT_PROBES   32 /* trace and diagonal */
#define DEFAULT_SLQ      8  /* density */
#define DEFAULT_SLQ_STEP 80
#define EST_BATCH        32 /* probes per product of the estimators' operator, at most */

/* ------------------------------------------------------------------------ */
/* The Hessian as an operator                                               */
/* ------------------------------------------------------------------------ */

/* The operator of one call: the Hessian kept open (hess__hvp_open) while the
 * algorithm runs. */
typedef struct hvp_op {
    hess_context *ctx;
    hess_tensor *loss;
    size_t n;
    hess_tensor *const *params;
    hess_hessian_opts opts; /* the caller's flags and budget */
    const char *fn;
    hess__hvp_op *open;
} hvp_op;

static hess_status hvp_apply(void *user, size_t m, const double *X, double *Y)
{
    hvp_op *h = user;
    return hess__hvp_apply(h->open, m, X, Y);
}

/* One public call: its operator and its run. */
typedef struct call {
    hvp_op h;
    hess__linop op;
    hess__curv_run run;
    hess_hessian_opts o; /* the caller's options, or zeros */
} call;

/* What every function checks first: the pending error and a busy context, the
 * loss (one element), params (live tensors of ctx, each once), the option
 * flags and tolerance; then sets up c.  N is hess_param_count. */
static hess_status begin(call *c,
                         hess_context *ctx,
                         hess_tensor *loss,
                         size_t n,
                         hess_tensor *const params[],
                         const hess_hessian_opts *opts,
                         const char *fn)
{
    hess_status st = hess__check_loss(ctx, loss, n, params, fn);
    if (st != HESS_OK)
        return st;
    memset(c, 0, sizeof *c);
    if (opts)
        c->o = *opts;
    if (c->o.flags & ~HESS_ALLOW_UNUSED) {
        hess__error(ctx, HESS_ERR_ARG,
                    "%s: unknown flags 0x%x in the options (only HESS_ALLOW_UNUSED)", fn,
                    c->o.flags);
        return HESS_ERR_ARG;
    }
    if (!(c->o.tol >= 0) || !isfinite(c->o.tol)) {
        hess__error(ctx, HESS_ERR_ARG, "%s: opts.tol = %g must be finite and >= 0 (0 = default)",
                    fn, c->o.tol);
        return HESS_ERR_ARG;
    }
    c->h.ctx = ctx;
    c->h.loss = loss;
    c->h.n = n;
    c->h.params = params;
    c->h.opts = c->o;
    c->h.opts.progress = NULL; /* reported per batch of products by the algorithm */
    c->h.opts.user = NULL;
    c->h.opts.method = 0;
    c->h.opts.method_used = NULL;
    c->h.fn = fn;
    c->op.n = hess_param_count(n, params);
    c->op.apply = hvp_apply;
    c->op.user = &c->h;
    c->run.ctx = ctx;
    c->run.op = &c->op;
    c->run.opts = opts;
    c->run.fn = fn;
    return HESS_OK;
}

/* Runs algo with the Hessian kept open for up to k directions per product
 * (the operator's graph made first in the arena, so the algorithm's scratch
 * comes after it and is given back before it is). */
#define WITH_OPERATOR(c, k, call)                                                                  \
    do {                                                                                           \
        hess_status st_ = hess__hvp_open((c).h.ctx, (c).h.loss, (c).h.n, (c).h.params, (k),        \
                                         &(c).h.opts, (c).h.fn, &(c).h.open);                      \
        if (st_ == HESS_OK)                                                                        \
            st_ = (call);                                                                          \
        hess__hvp_close((c).h.open);                                                               \
        return st_;                                                                                \
    } while (0)

static hess_status arg_error(hess_context *ctx, const char *fn, const char *what)
{
    hess__error(ctx, HESS_ERR_ARG, "%s: %s", fn, what);
    return HESS_ERR_ARG;
}

/* The name of a method constant, for messages. */
static const char *method_name(int m)
{
    switch (m) {
    case HESS_DIAG_BACKPROP:
        return "HESS_DIAG_BACKPROP (of the diagonal functions)";
    case HESS_DIAG_ROWS:
        return "HESS_DIAG_ROWS (of the diagonal functions)";
    case HESS_EST_HUTCHINSON:
        return "HESS_EST_HUTCHINSON (of the estimators)";
    case HESS_EST_HUTCHPP:
        return "HESS_EST_HUTCHPP (of the estimators)";
    case HESS_EST_XTRACE:
        return "HESS_EST_XTRACE (of the estimators)";
    case HESS_SOLVE_CG:
        return "HESS_SOLVE_CG (of hess_solve)";
    case HESS_SOLVE_MINRES:
        return "HESS_SOLVE_MINRES (of hess_solve)";
    default:
        return "not a method";
    }
}

static hess_status bad_method(hess_context *ctx, const char *fn, int m, const char *allowed)
{
    hess__error(ctx, HESS_ERR_ARG, "%s: opts.method = %d is %s; %s takes %s", fn, m, method_name(m),
                fn, allowed);
    return HESS_ERR_ARG;
}

static void set_method_used(const hess_hessian_opts *opts, int m)
{
    if (opts && opts->method_used)
        *opts->method_used = m;
}

/* ------------------------------------------------------------------------ */
/* Public functions                                                         */
/* ------------------------------------------------------------------------ */

hess_status hess_eigs(hess_context *ctx,
                      hess_tensor *loss,
                      size_t n,
                      hess_tensor *const params[],
                      size_t k,
                      int which,
                      const hess_hessian_opts *opts,
                      double *evals,
                      double *evecs)
{
    static const char fn[] = "hess_eigs";
    call c;
    hess_status st = begin(&c, ctx, loss, n, params, opts, fn);
    if (st != HESS_OK)
        return st;
    const size_t N = c.op.n;
    if (!evals)
        return arg_error(ctx, fn, "NULL evals");
    if (k == 0 || k > N) {
        hess__error(ctx, HESS_ERR_ARG, "%s: k = %zu eigenpairs asked of N = %zu parameters (1..N)",
                    fn, k, N);
        return HESS_ERR_ARG;
    }
    if (which != HESS_EIG_LARGEST && which != HESS_EIG_SMALLEST && which != HESS_EIG_MAGNITUDE) {
        hess__error(ctx, HESS_ERR_ARG,
                    "%s: which = %d is not HESS_EIG_LARGEST (0), HESS_EIG_SMALLEST (1) or "
                    "HESS_EIG_MAGNITUDE (2)",
                    fn, which);
        return HESS_ERR_ARG;
    }
    if (c.o.method != 0)
        return bad_method(ctx, fn, c.o.method, "no method (0)");
    size_t max_iter = c.o.max_iter;
    if (max_iter == 0) {
        max_iter = 20 * k > 300 ? 20 * k : 300;
        if (max_iter > N)
            max_iter = N;
    }
    if (max_iter < k) {
        hess__error(ctx, HESS_ERR_ARG, "%s: opts.max_iter = %zu products cannot find k = %zu pairs",
                    fn, max_iter, k);
        return HESS_ERR_ARG;
    }
    set_method_used(opts, 0);
    const double tol = c.o.tol > 0 ? c.o.tol : DEFAULT_TOL;
    WITH_OPERATOR(c, 1,
                  hess__lanczos_eigs(&c.run, k, which, tol, max_iter, c.o.seed, evals, evecs));
}

hess_status hess_spectral_density(hess_context *ctx,
                                  hess_tensor *loss,
                                  size_t n,
                                  hess_tensor *const params[],
                                  const hess_hessian_opts *opts,
                                  size_t n_grid,
                                  const double *grid,
                                  double *density)
{
    static const char fn[] = "hess_spectral_density";
    call c;
    hess_status st = begin(&c, ctx, loss, n, params, opts, fn);
    if (st != HESS_OK)
        return st;
    const size_t N = c.op.n;
    if (n_grid == 0)
        return arg_error(ctx, fn, "n_grid = 0: no points to evaluate the density at");
    if (!grid || !density)
        return arg_error(ctx, fn, !grid ? "NULL grid" : "NULL density");
    if (!(c.o.sigma >= 0) || !isfinite(c.o.sigma)) {
        hess__error(ctx, HESS_ERR_ARG, "%s: opts.sigma = %g must be finite and >= 0 (0 = default)",
                    fn, c.o.sigma);
        return HESS_ERR_ARG;
    }
    if (c.o.method != 0)
        return bad_method(ctx, fn, c.o.method, "no method (0)");
    const size_t probes = c.o.n_probes ? c.o.n_probes : DEFAULT_SLQ;
    size_t steps = c.o.lanczos_steps ? c.o.lanczos_steps : DEFAULT_SLQ_STEP;
    if (steps > N)
        steps = N; /* a Krylov space has at most N dimensions */
    set_method_used(opts, 0);
    WITH_OPERATOR(
        c, probes < SLQ_BATCH ? probes : SLQ_BATCH,
        hess__slq_density(&c.run, probes, steps, c.o.sigma, c.o.seed, n_grid, grid, density));
}

/* The method of the estimators, or HESS_ERR_ARG recorded. */
static hess_status est_method(call *c, hess_context *ctx, const char *fn, int *method)
{
    *method = c->o.method ? c->o.method : HESS_EST_HUTCHPP;
    if (*method != HESS_EST_HUTCHINSON && *method != HESS_EST_HUTCHPP && *method != HESS_EST_XTRACE)
        return bad_method(ctx, fn, c->o.method,
                          "HESS_EST_HUTCHINSON, HESS_EST_HUTCHPP or HESS_EST_XTRACE");
    const size_t budget = c->o.n_probes ? c->o.n_probes : DEFAULT_PROBES;
    /* Hutchinson needs one product, which every budget gives */
    if (budget < c->op.n && budget < hess__est_min_budget(*method)) {
        hess__error(ctx, HESS_ERR_ARG,
                    "%s: opts.n_probes = %zu products is too small for %s, which needs at least "
                    "%zu (or N = %zu for the exact value)",
                    fn, budget, *method == HESS_EST_HUTCHPP ? "Hutch++" : "XTrace",
                    hess__est_min_budget(*method), c->op.n);
        return HESS_ERR_ARG;
    }
    set_method_used(c->run.opts, *method);
    return HESS_OK;
}

hess_status hess_trace_estimate(hess_context *ctx,
                                hess_tensor *loss,
                                size_t n,
                                hess_tensor *const params[],
                                const hess_hessian_opts *opts,
                                double *trace,
                                double *std_err)
{
    static const char fn[] = "hess_trace_estimate";
    call c;
    int method;
    hess_status st = begin(&c, ctx, loss, n, params, opts, fn);
    if (st != HESS_OK)
        return st;
    if (!trace)
        return arg_error(ctx, fn, "NULL trace");
    if ((st = est_method(&c, ctx, fn, &method)) != HESS_OK)
        return st;
    const size_t budget = c.o.n_probes ? c.o.n_probes : DEFAULT_PROBES;
    WITH_OPERATOR(c, budget < EST_BATCH ? budget : EST_BATCH,
                  hess__trace_est(&c.run, method, budget, c.o.seed, trace, std_err));
}

hess_status hess_diag_estimate(hess_context *ctx,
                               hess_tensor *loss,
                               size_t n,
                               hess_tensor *const params[],
                               const hess_hessian_opts *opts,
                               double *diag)
{
    static const char fn[] = "hess_diag_estimate";
    call c;
    int method;
    hess_status st = begin(&c, ctx, loss, n, params, opts, fn);
    if (st != HESS_OK)
        return st;
    if (!diag)
        return arg_error(ctx, fn, "NULL diag");
    if ((st = est_method(&c, ctx, fn, &method)) != HESS_OK)
        return st;
    const size_t budget = c.o.n_probes ? c.o.n_probes : DEFAULT_PROBES;
    WITH_OPERATOR(c, budget < EST_BATCH ? budget : EST_BATCH,
                  hess__diag_est(&c.run, method, budget, c.o.seed, diag));
}

hess_status hess_solve(hess_context *ctx,
                       hess_tensor *loss,
                       size_t n,
                       hess_tensor *const params[],
                       const double *b,
                       double damping,
                       const hess_hessian_opts *opts,
                       double *x,
                       hess_solve_info *info)
{
    static const char fn[] = "hess_solve";
    call c;
    hess_status st = begin(&c, ctx, loss, n, params, opts, fn);
    if (st != HESS_OK)
        return st;
    if (!b || !x)
        return arg_error(ctx, fn, !b ? "NULL b" : "NULL x");
    if (!(damping >= 0) || !isfinite(damping)) {
        hess__error(ctx, HESS_ERR_ARG, "%s: damping = %g must be finite and >= 0", fn, damping);
        return HESS_ERR_ARG;
    }
    const int method = c.o.method ? c.o.method : HESS_SOLVE_CG;
    if (method != HESS_SOLVE_CG && method != HESS_SOLVE_MINRES)
        return bad_method(ctx, fn, c.o.method, "HESS_SOLVE_CG or HESS_SOLVE_MINRES");
    set_method_used(opts, method);
    /* N doubles of each parameter are in memory: 2 N cannot overflow */
    const size_t max_iter = c.o.max_iter ? c.o.max_iter : 2 * c.op.n;
    const double tol = c.o.tol > 0 ? c.o.tol : DEFAULT_TOL;
    hess_solve_info local;
    if (!info)
        info = &local;
    WITH_OPERATOR(c, 1,
                  method == HESS_SOLVE_CG
                      ? hess__cg(&c.run, b, damping, tol, max_iter, x, info)
                      : hess__minres(&c.run, b, damping, tol, max_iter, x, info));
}
