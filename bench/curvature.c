/*
 * curvature.c -- --curvature W1|W2|all: issue #15's targets for the exact
 * diagonal and the curvature functions (hessian.h, "Curvature at scale"),
 * each result checked before its time is printed:
 *
 *   W1   hess_hessian, the reference time; hess_hessian_diag against it
 *        (method_used reported); hess_eigs top 5 (largest, magnitude) against
 *        LAPACK's eigenvalues of the full Hessian; hess_trace_estimate with 120
 *        products (Hutchinson, Hutch++, XTrace) against the exact trace, and on
 *        a Hessian of rank 30 (R30, where Hutch++ and XTrace must be exact);
 *        hess_solve by CG with damping |lambda_min| + 1 to 1e-10.
 *   W2   hess_hessian_diag against the gradient's time (spot-checked by
 *        hess_hvp on unit vectors; rows cancelled after a budget and
 *        extrapolated), hess_eigs top 5, hess_spectral_density, each with the
 *        process's peak RSS.
 *   threads  the W1 Hessian and a W2 hess_hvp_batch of 100 directions with
 *        opts.n_threads 1 and 2, compared bit for bit.
 *
 * Every call has opts.n_threads = 1 unless its row's t column says otherwise.
 * Rows have the main table's first eight columns; the op's first word is the
 * key run_peers.sh matches with bench/curvature_torch.py's rows.  A wrong
 * result exits 1 before its time is printed.
 */
#include "bench.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#ifdef HESS_BENCH_LAPACKE
#include <lapacke.h>
#endif

#define N_PRODUCTS 120   /* products of each trace estimate (issue #15) */
#define N_EIGS     5     /* eigenvalues asked of hess_eigs */
#define EIG_TOL    1e-8  /* hess_eigs against LAPACK, relative to each eigenvalue */
#define SOLVE_TOL  1e-10 /* hess_solve's relative residual */
#define TRUE_TOL   1e-9  /* the solve's residual recomputed from the full Hessian */
#define EXACT_TOL  1e-8  /* rank-30 trace: error against ||H||_F */
#define RANK       30    /* samples of R30, the rank of its Hessian */
#define RANK_IN    512   /* R30's inputs: its parameter count */
#define N_DIRS     100   /* directions of the threads' hess_hvp_batch */
#define N_SPOT     5     /* W2 diagonal entries checked by hess_hvp */
#define N_GRID     1001  /* points of the W2 spectral density */
#define LONG_CALL  4.0   /* seconds: a first call this long is timed once */

/* A job with what the curvature calls take; first member job, so that the
 * timing harness's job * is cast back by the ops below. */
typedef struct cjob {
    job j;
    hess_tensor *(*loss)(const job *j); /* builds the loss from the leaves */
    size_t np;                          /* parameter tensors j.p[0..np) */
    hess_hessian_opts o;                /* the call's options */
    int used;                           /* o.method_used points here */
    size_t k;                           /* hess_eigs */
    int which;
    double *evals, *evecs;
    double trace, std_err; /* hess_trace_estimate */
    const double *b;       /* hess_solve */
    double damping;
    hess_solve_info info;
    const double *grid; /* hess_spectral_density */
    double *density;
    const double *V; /* hess_hvp_batch: N_DIRS directions */
    double budget;   /* hess_hessian_diag: cancel after this many seconds (0: never) */
    double t0;
    size_t done;     /* what the progress callback saw last */
    size_t products; /* done after the checked call: products (or rows) it spent */
    bool cancelled;
} cjob;

static cjob *cj(job *j)
{
    return (cjob *)j;
}

/* ------------------------------------------------------------------------ */
/* The operations (each builds the loss, calls, rewinds: ops.c's pattern)    */
/* ------------------------------------------------------------------------ */

/* Every call's progress: the products (or rows) done, and for a diagonal
 * with a budget, cancellation once it is spent. */
static int count_progress(size_t done, size_t total, void *user)
{
    cjob *c = user;
    c->done = done;
    c->cancelled = c->budget > 0 && done < total && now() - c->t0 > c->budget;
    return c->cancelled;
}

static void op_c_diag(job *j)
{
    cjob *c = cj(j);
    c->t0 = now();
    c->done = 0;
    c->cancelled = false;
    hess_tensor *loss = c->loss(j);
    hess_status st =
        loss ? hess_hessian_diag_ex(j->ctx, loss, c->np, j->p, &c->o, j->out) : HESS_ERR_STATE;
    if (st == HESS_ERR_CANCELLED && c->cancelled) {
        hess_context_clear_error(j->ctx);
        st = HESS_OK;
    } else
        c->done = j->m->n;
    op_end(j, st, "hess_hessian_diag");
}

static void op_c_hessian(job *j)
{
    cjob *c = cj(j);
    hess_tensor *loss = c->loss(j);
    op_end(j, loss ? hess_hessian_ex(j->ctx, loss, c->np, j->p, &c->o, j->out) : HESS_ERR_STATE,
           "hess_hessian_ex");
}

static void op_c_eigs(job *j)
{
    cjob *c = cj(j);
    hess_tensor *loss = c->loss(j);
    op_end(j,
           loss ? hess_eigs(j->ctx, loss, c->np, j->p, c->k, c->which, &c->o, c->evals, c->evecs)
                : HESS_ERR_STATE,
           "hess_eigs");
}

static void op_c_trace(job *j)
{
    cjob *c = cj(j);
    hess_tensor *loss = c->loss(j);
    op_end(j,
           loss ? hess_trace_estimate(j->ctx, loss, c->np, j->p, &c->o, &c->trace, &c->std_err)
                : HESS_ERR_STATE,
           "hess_trace_estimate");
}

static void op_c_solve(job *j)
{
    cjob *c = cj(j);
    hess_tensor *loss = c->loss(j);
    op_end(j,
           loss ? hess_solve(j->ctx, loss, c->np, j->p, c->b, c->damping, &c->o, j->out, &c->info)
                : HESS_ERR_STATE,
           "hess_solve");
}

static void op_c_density(job *j)
{
    cjob *c = cj(j);
    hess_tensor *loss = c->loss(j);
    op_end(
        j,
        loss ? hess_spectral_density(j->ctx, loss, c->np, j->p, &c->o, N_GRID, c->grid, c->density)
             : HESS_ERR_STATE,
        "hess_spectral_density");
}

static void op_c_hvp_batch(job *j)
{
    cjob *c = cj(j);
    hess_tensor *loss = c->loss(j);
    op_end(j,
           loss ? hess_hvp_batch(j->ctx, loss, c->np, j->p, N_DIRS, c->V, &c->o, j->out)
                : HESS_ERR_STATE,
           "hess_hvp_batch");
}

/* H v into out by hess_hvp: the checks' reference. */
static void hvp_of(cjob *c, const double *v, double *out)
{
    hess_tensor *loss = c->loss(&c->j);
    op_end(&c->j, loss ? hess_hvp(c->j.ctx, loss, c->np, c->j.p, v, out) : HESS_ERR_STATE,
           "hess_hvp");
}

/* ------------------------------------------------------------------------ */
/* Options, timing, rows                                                     */
/* ------------------------------------------------------------------------ */

/* The options every call starts from: one thread, method_used reported. */
static void c_reset(cjob *c)
{
    memset(&c->o, 0, sizeof c->o);
    c->o.n_threads = 1;
    c->o.method_used = &c->used;
    c->o.progress = count_progress;
    c->o.user = c;
    c->used = -1;
    c->budget = 0;
}

static const char *method_str(int m)
{
    switch (m) {
    case HESS_DIAG_BACKPROP:
        return "backprop";
    case HESS_DIAG_ROWS:
        return "rows";
    case HESS_EST_HUTCHINSON:
        return "hutchinson";
    case HESS_EST_HUTCHPP:
        return "hutch++";
    case HESS_EST_XTRACE:
        return "xtrace";
    case HESS_SOLVE_CG:
        return "cg";
    case HESS_SOLVE_MINRES:
        return "minres";
    case -1:
        return "not reported";
    default:
        return "?";
    }
}

/* The first call of f, timed once: the call whose result is checked. */
static stats c_first(cjob *c, op_fn f)
{
    c->done = 0;
    const double t0 = now();
    f(&c->j);
    const double t = now() - t0;
    c->products = c->done;
    return (stats){t, t, 1};
}

/* After the check: the plan's repeats, unless the first call was cancelled or
 * took LONG_CALL (its time then stands alone). */
static stats c_time(const opts *o, cjob *c, op_fn f, stats first)
{
    if (c->cancelled || first.med > LONG_CALL)
        return first;
    return time_op(f, &c->j, plan_for(o, true));
}

static void print_curv_header(void)
{
    printf("| %-10s | t | W   | %6s | %-34s | %10s | %10s | %5s | %s |\n", "impl", "n", "op",
           "median", "min", "reps", "result");
    printf("|---|---|---|---|---|---|---|---|---|\n");
}

/* One row: the main table's first eight columns, then the result in words. */
static void crow(const cjob *c, const char *op, stats s, const char *fmt, ...)
{
    char a[32], b[32], text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    printf("| %-10s | %d | %-3s | %6zu | %-34s | %10s | %10s | %5d | %s |\n", "libhessian",
           c->o.n_threads, c->j.m->name, c->j.m->n, op, fmt_t(a, sizeof a, s.med),
           fmt_t(b, sizeof b, s.min), s.reps, text);
    fflush(stdout);
}

/* Exits with a message when a check failed: no time is printed for it. */
static void require(bool ok, const cjob *c, const char *fmt, ...)
{
    if (ok)
        return;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fprintf(stderr, "hessian_bench: %s: %s; no timing reported\n", c->j.m->name, text);
    exit(1);
}

/* The process's peak resident set so far (getrusage ru_maxrss), MiB. */
static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* kilobytes on Linux */
}

static void print_rss(const cjob *c, const char *op, double before)
{
    printf("# %s %s peak RSS: %.1f MiB (%.1f MiB before the op; target <= 2048 MiB); "
           "context %.1f MiB\n",
           c->j.m->name, op, peak_rss_mib(), before,
           (double)hess_context_bytes(c->j.ctx) / 1048576.0);
}

/* ------------------------------------------------------------------------ */
/* Dense references                                                          */
/* ------------------------------------------------------------------------ */

/* The eigenvalues of the symmetric H (n x n), ascending, by LAPACK's dsyevd;
 * NULL when the bench is built without LAPACKE. */
static double *lapack_eigvals(const double *H, size_t n)
{
#ifdef HESS_BENCH_LAPACKE
    double *a = xmalloc(n * n * sizeof(double)), *w = xmalloc(n * sizeof(double));
    memcpy(a, H, n * n * sizeof(double));
    const lapack_int info =
        LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', (lapack_int)n, a, (lapack_int)n, w);
    free(a);
    if (info != 0) {
        fprintf(stderr, "hessian_bench: LAPACKE_dsyevd failed (info %d)\n", (int)info);
        exit(1);
    }
    return w;
#else
    (void)H;
    (void)n;
    return NULL;
#endif
}

/* The k wanted eigenvalues out of the ascending w, in hess_eigs' order. */
static void wanted_eigs(const double *w, size_t n, int which, size_t k, double *out)
{
    size_t lo = 0, hi = n; /* magnitude: merge from both ends */
    for (size_t i = 0; i < k; i++) {
        if (which == HESS_EIG_LARGEST)
            out[i] = w[n - 1 - i];
        else if (which == HESS_EIG_SMALLEST)
            out[i] = w[i];
        else
            out[i] = fabs(w[lo]) > fabs(w[hi - 1]) ? w[lo++] : w[--hi];
    }
}

/* max_j ||H x_j - lambda_j x_j|| over the k pairs, H x_j from the dense H, or
 * by hess_hvp when H is NULL. */
static double
eig_residual(cjob *c, const double *H, size_t n, const double *evals, const double *evecs)
{
    double *hx = xmalloc(n * sizeof(double)), worst = 0.0;
    for (size_t q = 0; q < c->k; q++) {
        const double *x = evecs + q * n;
        if (H)
            matvec(H, x, n, hx);
        else
            hvp_of(c, x, hx);
        double e = 0.0;
        for (size_t r = 0; r < n; r++)
            e += (hx[r] - evals[q] * x[r]) * (hx[r] - evals[q] * x[r]);
        worst = fmax(worst, sqrt(e));
    }
    free(hx);
    return worst;
}

static double norm2(const double *a, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * a[i];
    return sqrt(s);
}

/* The cost of hess_eigs' products alone: hess_solve by MINRES held to the
 * same number of single-vector products (tol out of reach), timed like the
 * rest; b is the model's v.  *per is the median per product. */
static stats products_only(const opts *o, cjob *c, size_t count, double *per)
{
    c_reset(c);
    c->o.method = HESS_SOLVE_MINRES;
    c->o.tol = 1e-300;
    c->o.max_iter = count;
    c->b = c->j.m->v;
    c->damping = 0.0;
    stats s = c_first(c, op_c_solve);
    require(c->info.iterations > 0, c, "MINRES made no product");
    const size_t done = c->info.iterations;
    s = c_time(o, c, op_c_solve, s);
    *per = s.med / (double)done;
    return s;
}

/* ------------------------------------------------------------------------ */
/* W1                                                                       */
/* ------------------------------------------------------------------------ */

/* The diagonal, by the library's choice and by rows, against the Hessian's. */
static void w1_diag(const opts *o, cjob *c, const double *H, const ref_case *rc, stats sh)
{
    const size_t n = c->j.m->n;
    double *d = xmalloc(n * sizeof(double)), *ref = xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        d[i] = H[i * n + i];
    const bool have_ref = ref_cat(rc, "hdiag:", c->j.m, ref) == 0;
    const int methods[2] = {HESS_DIAG_AUTO, HESS_DIAG_ROWS};
    for (int q = 0; q < 2; q++) {
        c_reset(c);
        c->o.method = methods[q];
        stats s = c_first(c, op_c_diag);
        const double e = rel_err(c->j.out, d, n), er = have_ref ? rel_err(c->j.out, ref, n) : 0;
        require(e <= REF_TOL && er <= REF_TOL, c,
                "hess_hessian_diag (method %d) differs from the Hessian's diagonal by %.2e, from "
                "PyTorch's by %.2e",
                methods[q], e, er);
        s = c_time(o, c, op_c_diag, s);
        char ratio[64] = "-";
        if (sh.reps)
            snprintf(ratio, sizeof ratio, "%.2fx", sh.med / s.med);
        crow(c, q == 0 ? "diag [auto]" : "diag [rows]", s,
             "opts.method %s, method_used %s; hessian/diag %s (target >= 50x); err %.1e",
             q == 0 ? "AUTO" : "ROWS", method_str(c->used), ratio, e);
    }
    free(d);
    free(ref);
}

/* Top 5 eigenvalues, largest and of largest magnitude, against LAPACK's. */
static void w1_eigs(const opts *o, cjob *c, const double *H, const double *w, stats sh)
{
    const size_t n = c->j.m->n;
    const int whichs[2] = {HESS_EIG_LARGEST, HESS_EIG_MAGNITUDE};
    const char *names[2] = {"eigs-largest", "eigs-magnitude"};
    double want[N_EIGS], hnorm = 0.0;
    c->evals = xmalloc(N_EIGS * sizeof(double));
    c->evecs = xmalloc(N_EIGS * n * sizeof(double));
    for (int q = 0; q < 2; q++) {
        c_reset(c);
        c->k = N_EIGS;
        c->which = whichs[q];
        stats s = c_first(c, op_c_eigs);
        double err = -1.0;
        if (w) {
            wanted_eigs(w, n, whichs[q], N_EIGS, want);
            hnorm = fmax(fabs(w[0]), fabs(w[n - 1]));
            err = 0.0;
            for (int i = 0; i < N_EIGS; i++)
                err = fmax(err, fabs(c->evals[i] - want[i]) / fabs(want[i]));
            require(err <= EIG_TOL, c, "%s: top-%d relative error %.2e against LAPACK > %.0e",
                    names[q], N_EIGS, err, EIG_TOL);
        }
        const double res = eig_residual(c, H, n, c->evals, c->evecs);
        require(res <= EIG_TOL * (hnorm > 0 ? hnorm : fabs(c->evals[0])), c,
                "%s: eigenpair residual %.2e", names[q], res);
        s = c_time(o, c, op_c_eigs, s);
        const size_t products = c->products;
        double per;
        const stats sp = products_only(o, c, products, &per);
        char lap[64] = "LAPACK check skipped (no LAPACKE)", ratio[64] = "-", pbuf[32];
        if (w)
            snprintf(lap, sizeof lap, "max rel err vs LAPACK %.1e", err);
        if (sh.reps)
            snprintf(ratio, sizeof ratio, "%.3f", s.med / sh.med);
        crow(c, names[q], s,
             "%.10g %.10g %.10g %.10g %.10g; %zu products (alone, by MINRES: %s, %.1f us each); "
             "%s; residual %.1e; eigs/hessian %s (target <= 0.1)",
             c->evals[0], c->evals[1], c->evals[2], c->evals[3], c->evals[4], products,
             fmt_t(pbuf, sizeof pbuf, sp.med), per * 1e6, lap, res, ratio);
    }
    free(c->evals);
    free(c->evecs);
}

/* Trace estimates from N_PRODUCTS products against the exact trace tr.  On
 * a Hessian of rank RANK (exact), Hutch++ and XTrace must be exact to
 * EXACT_TOL ||H||_F; on W1 each estimate must lie within 10 of its reported
 * standard errors. */
static void trace_rows(const opts *o, cjob *c, double tr, double fro, bool exact)
{
    const int methods[3] = {HESS_EST_HUTCHINSON, HESS_EST_HUTCHPP, HESS_EST_XTRACE};
    for (int q = exact ? 1 : 0; q < 3; q++) {
        c_reset(c);
        c->o.method = methods[q];
        c->o.n_probes = N_PRODUCTS;
        stats s = c_first(c, op_c_trace);
        const double err = fabs(c->trace - tr);
        if (exact)
            require(err <= EXACT_TOL * fro, c,
                    "%s on a rank-%d Hessian: error %.2e > %.0e ||H||_F = %.2e",
                    method_str(methods[q]), RANK, err, EXACT_TOL, EXACT_TOL * fro);
        else
            require(isfinite(c->trace) && isfinite(c->std_err) && err <= 10 * c->std_err, c,
                    "%s: trace %.6g against %.6g, more than 10 reported standard errors (%.2e)",
                    method_str(methods[q]), c->trace, tr, c->std_err);
        s = c_time(o, c, op_c_trace, s);
        crow(c, method_str(c->used), s,
             "%zu products: estimate %.10g, exact %.10g; error %.2e (rel %.1e, %.2e ||H||_F), "
             "reported std err %.2e",
             c->products, c->trace, tr, err, err / fabs(tr), err / fro, c->std_err);
    }
}

/* CG on (H + (|lambda_min| + 1) I) x = g, g the gradient, to SOLVE_TOL; the
 * residual recomputed from the full Hessian. */
static void w1_solve(const opts *o, cjob *c, const double *H, const double *w)
{
    job *j = &c->j;
    const size_t n = j->m->n;
    double *g = xmalloc(n * sizeof(double)), lmin;
    j->keep = true;
    op_into(j, op_grad, g);
    j->keep = false;
    if (w)
        lmin = w[0];
    else { /* no LAPACK: the smallest eigenvalue by hess_eigs */
        c_reset(c);
        c->k = 1;
        c->which = HESS_EIG_SMALLEST;
        c->evals = &lmin;
        c->evecs = NULL;
        op_c_eigs(j);
    }
    c_reset(c);
    c->o.method = HESS_SOLVE_CG;
    c->o.tol = SOLVE_TOL;
    c->b = g;
    c->damping = fabs(lmin) + 1.0;
    stats s = c_first(c, op_c_solve);
    double *r = xmalloc(n * sizeof(double));
    matvec(H, j->out, n, r);
    for (size_t i = 0; i < n; i++)
        r[i] += c->damping * j->out[i] - g[i];
    const double true_res = norm2(r, n) / norm2(g, n);
    require(c->info.converged && !c->info.negative_curvature && true_res <= TRUE_TOL, c,
            "hess_solve: converged %d, negative curvature %d, residual %.2e (recomputed %.2e)",
            c->info.converged, c->info.negative_curvature, c->info.rel_residual, true_res);
    const size_t iters = c->info.iterations;
    s = c_time(o, c, op_c_solve, s);
    crow(c, "cg", s,
         "damping |lambda_min|+1 = %.10g; %zu iterations; residual %.1e reported, %.1e "
         "recomputed from H (tol %.0e)",
         c->damping, iters, c->info.rel_residual, true_res, SOLVE_TOL);
    free(g);
    free(r);
}

/* The full Hessian with opts.n_threads 1 and 2: times, ratio, bit identity. */
static void threads_hessian(const opts *o, cjob *c, const double *H)
{
    const size_t n = c->j.m->n;
    double *h2 = xmalloc(n * n * sizeof(double));
    stats s[2];
    for (int t = 1; t <= 2; t++) {
        c_reset(c);
        c->o.n_threads = t;
        s[t - 1] = c_first(c, op_c_hessian);
        if (t == 2)
            memcpy(h2, c->j.out, n * n * sizeof(double));
        require(rel_err(c->j.out, H, n * n) <= SELF_TOL, c,
                "hess_hessian_ex n_threads %d differs from hess_hessian", t);
        s[t - 1] = c_time(o, c, op_c_hessian, s[t - 1]);
    }
    const bool same = memcmp(h2, H, n * n * sizeof(double)) == 0;
    c->o.n_threads = 1;
    crow(c, "hessian-threads [n_threads 1]", s[0], "hess_hessian_ex");
    c->o.n_threads = 2;
    crow(c, "hessian-threads [n_threads 2]", s[1],
         "t1/t2 %.2fx (target >= 1.7x); bit-identical to n_threads 1: %s", s[0].med / s[1].med,
         same ? "yes" : "NO");
    free(h2);
}

/* ------------------------------------------------------------------------ */
/* R30: a Hessian of rank 30                                                 */
/* ------------------------------------------------------------------------ */

/* MSE of a linear model without bias on RANK samples: H = (2/RANK) X^T X,
 * X [RANK, RANK_IN] Gaussian, so rank(H) = RANK in RANK_IN dimensions. */
static hess_tensor *rank_loss(const job *j)
{
    return hess_mse_loss(j->ctx, hess_linear(j->ctx, j->x, j->p[0], NULL), j->y);
}

static void rank_trace(const opts *o)
{
    static cjob c;
    model m;
    memset(&m, 0, sizeof m);
    memset(&c, 0, sizeof c);
    snprintf(m.name, sizeof m.name, "R30");
    m.in = RANK_IN, m.out = 1, m.batch = RANK, m.batched = true;
    m.n = RANK_IN;
    m.theta = xmalloc(m.n * sizeof(double));
    m.x = xmalloc(RANK * RANK_IN * sizeof(double));
    m.y = xmalloc(RANK * sizeof(double));
    m.v = xmalloc(m.n * sizeof(double));
    uint64_t seed = 30;
    for (size_t i = 0; i < m.n; i++)
        m.theta[i] = 0.1 * rng_normal(&seed), m.v[i] = rng_normal(&seed);
    for (size_t i = 0; i < RANK * RANK_IN; i++)
        m.x[i] = rng_normal(&seed);
    for (size_t i = 0; i < RANK; i++)
        m.y[i] = rng_normal(&seed);

    job *j = &c.j;
    j->m = &m;
    if (hess_context_create(&(hess_config){.flags = o->ctx_flags}, &j->ctx) != HESS_OK)
        exit(1);
    const int64_t ws[2] = {1, RANK_IN}, xs[2] = {RANK, RANK_IN}, ys[2] = {RANK, 1};
    j->p[0] = hess_param_new(j->ctx, 2, ws, m.theta);
    j->x = hess_tensor_new(j->ctx, 2, xs, m.x);
    j->y = hess_tensor_new(j->ctx, 2, ys, m.y);
    if (hess_context_status(j->ctx) != HESS_OK)
        die_ctx(j, "setup");
    j->mark = hess_context_mark(j->ctx);
    j->out = xmalloc(m.n * m.n * sizeof(double));
    c.loss = rank_loss;
    c.np = 1;

    c_reset(&c);
    op_c_hessian(j);
    double *H = xmalloc(m.n * m.n * sizeof(double));
    memcpy(H, j->out, m.n * m.n * sizeof(double));
    double *hv = xmalloc(m.n * sizeof(double)), *Hv = xmalloc(m.n * sizeof(double));
    hvp_of(&c, m.v, hv);
    matvec(H, m.v, m.n, Hv);
    require(rel_err(Hv, hv, m.n) <= SELF_TOL, &c, "H v differs from hess_hvp by %.2e",
            rel_err(Hv, hv, m.n));
    free(hv);
    free(Hv);
    double tr = 0.0, fro = 0.0;
    for (size_t i = 0; i < m.n * m.n; i++)
        fro += H[i] * H[i];
    fro = sqrt(fro);
    for (size_t i = 0; i < m.n; i++)
        tr += H[i * m.n + i];
    double *w = lapack_eigvals(H, m.n);
    if (w) {
        size_t rank = 0;
        for (size_t i = 0; i < m.n; i++)
            rank += fabs(w[i]) > 1e-10 * fabs(w[m.n - 1]);
        require(rank == RANK, &c, "the R30 Hessian has numerical rank %zu, not %d", rank, RANK);
        printf("# R30: linear model x W^T, MSE, %d samples, %d parameters: Hessian (2/%d) X^T X of "
               "numerical rank %zu (LAPACK: %zu eigenvalues above 1e-10 lambda_max = %.4g)\n",
               RANK, RANK_IN, RANK, rank, rank, w[m.n - 1]);
    } else
        printf("# R30: linear model x W^T, MSE, %d samples, %d parameters: rank %d by "
               "construction (no LAPACKE to check it)\n",
               RANK, RANK_IN, RANK);
    trace_rows(o, &c, tr, fro, true);
    free(w);
    free(H);
    job_free(j);
    model_free(&m);
}

/* ------------------------------------------------------------------------ */
/* W2                                                                       */
/* ------------------------------------------------------------------------ */

/* The exact diagonal against the gradient's time; rows cancelled after a
 * budget and extrapolated to N.  Spot-checked by hess_hvp on unit vectors. */
static void w2_diag(const opts *o, cjob *c, stats sg)
{
    const size_t n = c->j.m->n;
    c_reset(c);
    c->budget = o->quick ? 2.0 : 10.0;
    const double rss0 = peak_rss_mib();
    stats s = c_first(c, op_c_diag);
    /* N_SPOT unit vectors: one per parameter block when complete, else spread
     * over the rows done. */
    const size_t full[N_SPOT] = {0, 50000, 100352 + 5, 100480 + 7, 101760 + 3};
    double *e = xmalloc(n * sizeof(double)), *row = xmalloc(n * sizeof(double)), worst = 0.0;
    memset(e, 0, n * sizeof(double));
    for (int q = 0; q < N_SPOT; q++) {
        const size_t i = c->done == n ? full[q] % n : c->done * (size_t)q / N_SPOT;
        e[i] = 1.0;
        hvp_of(c, e, row);
        e[i] = 0.0;
        double scale = 0.0;
        for (size_t r = 0; r < n; r++)
            scale = fmax(scale, fabs(row[r]));
        worst = fmax(worst, fabs(c->j.out[i] - row[i]) / (scale > 0 ? scale : 1.0));
    }
    require(c->done > 0 && worst <= REF_TOL, c,
            "hess_hessian_diag against hess_hvp on unit vectors: %.2e (%zu entries done)", worst,
            c->done);
    s = c_time(o, c, op_c_diag, s);
    char ratio[64] = "-", how[128] = "";
    if (c->cancelled) {
        s.med = s.min = s.med * (double)n / (double)c->done;
        snprintf(how, sizeof how, "; extrapolated: %zu of %zu rows in %.1f s", c->done, n,
                 c->budget);
    }
    if (sg.reps)
        snprintf(ratio, sizeof ratio, "%.1fx", s.med / sg.med);
    crow(c, c->cancelled ? "diag [auto, extrapolated]" : "diag [auto]", s,
         "method_used %s; diag/grad %s (target <= 20x); hvp spot check %.1e%s", method_str(c->used),
         ratio, worst, how);
    print_rss(c, "diag", rss0);
    free(e);
    free(row);
}

/* Top 5 eigenvalues; checked by their residuals through hess_hvp. */
static void w2_eigs(const opts *o, cjob *c)
{
    const size_t n = c->j.m->n;
    c_reset(c);
    c->k = N_EIGS;
    c->which = HESS_EIG_LARGEST;
    c->evals = xmalloc(N_EIGS * sizeof(double));
    c->evecs = xmalloc(N_EIGS * n * sizeof(double));
    const double rss0 = peak_rss_mib();
    stats s = c_first(c, op_c_eigs);
    const double res = eig_residual(c, NULL, n, c->evals, c->evecs);
    bool sorted = true;
    for (int i = 1; i < N_EIGS; i++)
        sorted = sorted && c->evals[i] <= c->evals[i - 1];
    require(sorted && res <= EIG_TOL * fabs(c->evals[0]), c,
            "eigs-largest: residual %.2e (lambda_1 %.4g), sorted %d", res, c->evals[0], sorted);
    s = c_time(o, c, op_c_eigs, s);
    const size_t products = c->products;
    double per;
    char pbuf[32];
    const stats sp = products_only(o, c, products, &per);
    crow(c, "eigs-largest", s,
         "%.10g %.10g %.10g %.10g %.10g; %zu products (alone, by MINRES: %s, %.0f us each); "
         "residual %.1e (hvp)",
         c->evals[0], c->evals[1], c->evals[2], c->evals[3], c->evals[4], products,
         fmt_t(pbuf, sizeof pbuf, sp.med), per * 1e6, res);
    print_rss(c, "eigs", rss0);
    free(c->evals);
    free(c->evecs);
}

/* The density on N_GRID points over +-1.1 |lambda|_max (found first, not
 * timed); checked: finite, non-negative, integral 1 within 2 %. */
static void w2_density(const opts *o, cjob *c)
{
    double lmax, *grid = xmalloc(N_GRID * sizeof(double));
    c_reset(c);
    c->k = 1;
    c->which = HESS_EIG_MAGNITUDE;
    c->evals = &lmax;
    c->evecs = NULL;
    op_c_eigs(&c->j);
    const double hi = 1.1 * fabs(lmax), step = 2.0 * hi / (N_GRID - 1);
    for (int i = 0; i < N_GRID; i++)
        grid[i] = -hi + step * i;
    c_reset(c);
    c->grid = grid;
    c->density = xmalloc(N_GRID * sizeof(double));
    const double rss0 = peak_rss_mib();
    stats s = c_first(c, op_c_density);
    double mass = 0.0, mean = 0.0;
    bool ok = true;
    for (int i = 0; i < N_GRID; i++) {
        ok = ok && isfinite(c->density[i]) && c->density[i] >= 0;
        const double wgt = (i == 0 || i == N_GRID - 1) ? 0.5 * step : step;
        mass += wgt * c->density[i];
        mean += wgt * c->density[i] * grid[i];
    }
    require(ok && fabs(mass - 1.0) <= 0.02, c, "hess_spectral_density: integral %.4f, finite %d",
            mass, ok);
    s = c_time(o, c, op_c_density, s);
    crow(c, "density", s,
         "defaults: %zu products (8 probes x 80 Lanczos steps); %d points on +-%.4g; integral "
         "%.4f, mean %.3g",
         c->products, N_GRID, hi, mass, mean);
    print_rss(c, "density", rss0);
    free(grid);
    free(c->density);
}

/* hess_hvp_batch of N_DIRS Gaussian directions with n_threads 1 and 2. */
static void threads_hvp_batch(const opts *o, cjob *c)
{
    const size_t n = c->j.m->n;
    double *V = xmalloc(N_DIRS * n * sizeof(double)), *hv = xmalloc(n * sizeof(double));
    double *out[2] = {xmalloc(N_DIRS * n * sizeof(double)), xmalloc(N_DIRS * n * sizeof(double))};
    uint64_t seed = 15;
    for (size_t i = 0; i < N_DIRS * n; i++)
        V[i] = rng_normal(&seed);
    c->V = V;
    stats s[2];
    for (int t = 1; t <= 2; t++) {
        c_reset(c);
        c->o.n_threads = t;
        double *keep = c->j.out;
        c->j.out = out[t - 1];
        s[t - 1] = c_first(c, op_c_hvp_batch);
        for (size_t r = 0; r < N_DIRS; r += N_DIRS - 1) {
            hvp_of(c, V + r * n, hv);
            require(rel_err(out[t - 1] + r * n, hv, n) <= REF_TOL, c,
                    "hess_hvp_batch row %zu (n_threads %d) differs from hess_hvp", r, t);
        }
        s[t - 1] = c_time(o, c, op_c_hvp_batch, s[t - 1]);
        c->j.out = keep;
    }
    const bool same = memcmp(out[0], out[1], N_DIRS * n * sizeof(double)) == 0;
    c->o.n_threads = 1;
    crow(c, "hvp_batch-threads [n_threads 1]", s[0], "%d Gaussian directions", N_DIRS);
    c->o.n_threads = 2;
    crow(c, "hvp_batch-threads [n_threads 2]", s[1],
         "t1/t2 %.2fx (target >= 1.7x); bit-identical to n_threads 1: %s", s[0].med / s[1].med,
         same ? "yes" : "NO");
    free(V);
    free(hv);
    free(out[0]);
    free(out[1]);
}

/* ------------------------------------------------------------------------ */
/* The section                                                               */
/* ------------------------------------------------------------------------ */

static void curv_w1(const opts *o, cjob *c, const ref_case *rc)
{
    job *j = &c->j;
    const size_t n = j->m->n;
    /* The full Hessian: the reference of every check, checked itself (H v
     * against hess_hvp, its diagonal against PyTorch's when diag runs). */
    c_reset(c);
    stats sh = c_first(c, op_c_hessian);
    double *H = xmalloc(n * n * sizeof(double));
    memcpy(H, j->out, n * n * sizeof(double));
    sweep_check(j, H);
    if (wanted(o, "hessian") || wanted(o, "diag") || wanted(o, "eigs")) {
        sh = c_time(o, c, op_c_hessian, sh);
        crow(c, "hessian [full]", sh, "hess_hessian_ex, the reference of the ratios below");
    } else
        sh.reps = 0;
    double *w = NULL;
    if (wanted(o, "eigs") || wanted(o, "solve") || wanted(o, "trace"))
        w = lapack_eigvals(H, n);
    if (w)
        printf("# W1 LAPACK dsyevd: lambda_min %.10g, lambda_max %.10g\n", w[0], w[n - 1]);
    if (wanted(o, "diag"))
        w1_diag(o, c, H, rc, sh);
    if (wanted(o, "eigs"))
        w1_eigs(o, c, H, w, sh);
    if (wanted(o, "trace")) {
        double tr = 0.0, fro = 0.0;
        for (size_t i = 0; i < n; i++)
            tr += H[i * n + i];
        for (size_t i = 0; i < n * n; i++)
            fro += H[i] * H[i];
        trace_rows(o, c, tr, sqrt(fro), false);
        rank_trace(o);
    }
    if (wanted(o, "solve"))
        w1_solve(o, c, H, w);
    if (wanted(o, "threads"))
        threads_hessian(o, c, H);
    free(w);
    free(H);
}

static void curv_w2(const opts *o, cjob *c)
{
    stats sg = {0, 0, 0};
    c_reset(c);
    if (wanted(o, "grad") || wanted(o, "diag")) {
        const double rss0 = peak_rss_mib();
        sg = time_op(op_grad, &c->j, plan_for(o, false));
        crow(c, "grad", sg, "forward + hess_grad, the reference of diag/grad");
        print_rss(c, "grad", rss0);
    }
    if (wanted(o, "diag"))
        w2_diag(o, c, sg);
    if (wanted(o, "eigs"))
        w2_eigs(o, c);
    if (wanted(o, "density"))
        w2_density(o, c);
    if (wanted(o, "threads"))
        threads_hvp_batch(o, c);
}

/* One workload of the section: W1 (checked against PyTorch's values by the
 * full Hessian) or W2 (checked through hess_hvp). */
void run_curvature(const opts *o, const char *name)
{
    static cjob c;
    model m;
    ref_case rc;
    memset(&rc, 0, sizeof rc);
    memset(&c, 0, sizeof c);
    load_workload(&m, o, name, &rc);
    const bool w1 = strcmp(name, "W1") == 0;
    job_bind(&c.j, &m, w1 ? m.n * m.n : m.n, o->ctx_flags);
    c.loss = forward;
    c.np = N_PARAMS;
    printf("\n# %s curvature (issue #15): opts.n_threads = t, every result checked first; "
           "LAPACK: %s\n",
           name,
#ifdef HESS_BENCH_LAPACKE
           "LAPACKE_dsyevd"
#else
           "none (eigenvalues checked by residuals only)"
#endif
    );
    print_curv_header();
    if (w1)
        curv_w1(o, &c, &rc);
    else
        curv_w2(o, &c);
    job_free(&c.j);
    model_free(&m);
    ref_free(&rc);
}
