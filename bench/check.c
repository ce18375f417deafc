/*
 * check.c -- the checks of results: nothing is timed until these pass.  W0
 * and W1 against the PyTorch values, every workload against central
 * differences, and the sweep's Hessians against hess_hvp.  The replay's own
 * checks are in replay.c.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Prints one check's error; clears ok when it is above tol (or NaN). */
static bool check_one(const char *w, const char *what, double err, double tol, bool *ok)
{
    printf(" %s %.1e", what, err);
    if (!(err <= tol)) {
        fprintf(stderr, "hessian_bench: %s: %s is wrong: relative error %.3e > %.0e\n", w, what,
                err, tol);
        *ok = false;
    }
    return *ok;
}

/* Runs f with its results written to buf instead of j->out. */
void op_into(job *j, op_fn f, double *buf)
{
    double *keep = j->out;
    j->out = buf;
    f(j);
    j->out = keep;
}

/* out = H v, H n x n row-major. */
void matvec(const double *H, const double *v, size_t n, double *out)
{
    for (size_t r = 0; r < n; r++) {
        double s = 0.0;
        for (size_t c = 0; c < n; c++)
            s += H[r * n + c] * v[c];
        out[r] = s;
    }
}

/* max |H - H^T| relative to the largest entry below the diagonal. */
static double asymmetry(const double *H, size_t n)
{
    double asym = 0.0, hmax = 0.0;
    for (size_t r = 0; r < n; r++)
        for (size_t c = 0; c < r; c++) {
            asym = fmax(asym, fabs(H[r * n + c] - H[c * n + r]));
            hmax = fmax(hmax, fabs(H[r * n + c]));
        }
    return hmax > 0 ? asym / hmax : asym;
}

/* The full Hessian against the reference: every entry when the file has them
 * (W0), its diagonal against diag, H v against hv, and its symmetry. */
static void
check_ref_hessian(job *j, const ref_case *rc, const double *diag, const ref_tensor *hv, bool *ok)
{
    const model *m = j->m;
    const size_t n = m->n;
    double *H = xmalloc(n * n * sizeof(double)), *got = xmalloc(n * sizeof(double));
    op_into(j, op_hessian, H);
    const ref_tensor *Href = ref_find(rc, "hessian");
    if (Href && (size_t)Href->numel == n * n)
        check_one(m->name, "hessian", rel_err(H, Href->data, n * n), REF_TOL, ok);
    for (size_t r = 0; r < n; r++)
        got[r] = H[r * n + r];
    check_one(m->name, "diag(H)", rel_err(got, diag, n), REF_TOL, ok);
    matvec(H, m->v, n, got);
    check_one(m->name, "H*v", hv ? rel_err(got, hv->data, n) : INFINITY, REF_TOL, ok);
    check_one(m->name, "H-H^T", asymmetry(H, n), REF_TOL, ok);
    free(H);
    free(got);
}

/* W0/W1 against the PyTorch values: loss, gradient, Hv, diagonal, full Hessian
 * (W0: every entry; W1: its diagonal, H v and symmetry). */
bool check_ref(job *j, const ref_case *rc)
{
    const model *m = j->m;
    const size_t n = m->n;
    double *want = xmalloc(n * sizeof(double));
    bool ok = true;
    printf("# %s check vs PyTorch (max rel err, limit %.0e):", m->name, REF_TOL);
    j->keep = true;
    op_grad(j);
    j->keep = false;
    const double lref = ref_find(rc, "loss") ? ref_find(rc, "loss")->data[0] : NAN;
    check_one(m->name, "loss", fabs(j->loss - lref) / fabs(lref), REF_TOL, &ok);
    if (ref_cat(rc, "grad:", m, want) == 0)
        check_one(m->name, "grad", rel_err(j->out, want, n), REF_TOL, &ok);
    else
        ok = false;
    const ref_tensor *hv = ref_find(rc, "hvp:Hv");
    op_hvp(j);
    check_one(m->name, "hvp", hv ? rel_err(j->out, hv->data, n) : INFINITY, REF_TOL, &ok);
    op_diag(j);
    if (ref_cat(rc, "hdiag:", m, want) == 0)
        check_one(m->name, "diag", rel_err(j->out, want, n), REF_TOL, &ok);
    else
        ok = false;
    check_ref_hessian(j, rc, want, hv, &ok);
    printf("%s\n", ok ? "  ok" : "  FAILED");
    free(want);
    return ok;
}

/* Sets the parameters to theta + h v (through hess_param_set). */
static void set_theta(job *j, double h)
{
    const model *m = j->m;
    double *t = xmalloc(m->n * sizeof(double));
    for (size_t i = 0; i < m->n; i++)
        t[i] = m->theta[i] + h * m->v[i];
    params_set(j, j->p, t, "hess_param_set");
    free(t);
}

/* Central differences along v: of the loss against g.v, and of the gradient
 * against hess_hvp.  The only check W2 gets, a cross-check for W0 and W1. */
bool check_fd(job *j)
{
    const model *m = j->m;
    const size_t n = m->n;
    double vmax = 0.0;
    for (size_t i = 0; i < n; i++)
        vmax = fmax(vmax, fabs(m->v[i]));
    const double h = 1e-5 / vmax;
    double *gp = xmalloc(n * sizeof(double)), *gm = xmalloc(n * sizeof(double));
    double *hv = xmalloc(n * sizeof(double));
    j->keep = true;
    set_theta(j, h);
    op_grad(j);
    const double lp = j->loss;
    memcpy(gp, j->out, n * sizeof(double));
    set_theta(j, -h);
    op_grad(j);
    const double lm = j->loss;
    memcpy(gm, j->out, n * sizeof(double));
    set_theta(j, 0.0);
    op_grad(j);
    j->keep = false;
    double gv = 0.0;
    for (size_t i = 0; i < n; i++)
        gv += j->out[i] * m->v[i];
    op_hvp(j);
    memcpy(hv, j->out, n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        gp[i] = (gp[i] - gm[i]) / (2.0 * h);
    const double fd = (lp - lm) / (2.0 * h);
    bool ok = true;
    printf("# %s check vs central differences along v (rel err, limit %.0e):", m->name, FD_TOL);
    check_one(m->name, "g.v", fabs(fd - gv) / fmax(fabs(gv), 1e-300), FD_TOL, &ok);
    check_one(m->name, "hvp", rel_err(gp, hv, n), FD_TOL, &ok);
    printf("%s\n", ok ? "  ok" : "  FAILED");
    free(gp);
    free(gm);
    free(hv);
    return ok;
}

/* Hessian rows times v against hess_hvp(v): the sweep's correctness check. */
void sweep_check(job *j, const double *H)
{
    const size_t n = j->m->n;
    double *hv = xmalloc(n * sizeof(double)), *Hv = xmalloc(n * sizeof(double));
    op_into(j, op_hvp, hv);
    matvec(H, j->m->v, n, Hv);
    const double e = rel_err(Hv, hv, n);
    if (!(e <= SELF_TOL)) {
        fprintf(stderr, "hessian_bench: sweep %s: H v differs from hess_hvp by %.2e\n", j->m->name,
                e);
        exit(1);
    }
    free(hv);
    free(Hv);
}
