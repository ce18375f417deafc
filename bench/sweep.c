/*
 * sweep.c -- --sweep: the W1-type MLP Linear(64,width) -> tanh ->
 * Linear(width,10), MSE, timed across widths and batches, and its full
 * Hessian across block_rows; each Hessian checked against hess_hvp.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

/* A new row of the sweep report for the model m (exits when the report is full). */
static sweep_row *sweep_row_add(report *rep, const char *kind, const model *m)
{
    if (rep->ns == MAX_ROWS)
        exit(1);
    sweep_row *s = &rep->sw[rep->ns++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->width = m->hidden;
    s->batch = m->batch;
    s->n = m->n;
    return s;
}

static void print_point_header(void)
{
    printf("| width | batch | %7s | %10s | %10s | %9s | %7s | %7s | %10s | %10s | %6s |\n", "n",
           "grad", "hvp", "hvp MFLOP", "GFLOP/s", "% peak", "hessian", "n x hvp", "ratio");
    printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
}

/* A width or batch row; the Hessian columns "-" when it was not run. */
static void print_point(const sweep_row *s, double pk)
{
    char a[32], b[32], c[32] = "-", d[32] = "-", e[32] = "-", pc[32] = "-";
    const double gf = s->hvp_flops / s->hvp.med / 1e9;
    fmt_pct(pc, sizeof pc, gf, pk);
    if (s->hess.reps) {
        fmt_t(c, sizeof c, s->hess.med);
        fmt_t(d, sizeof d, (double)s->n * s->hvp.med);
        snprintf(e, sizeof e, "%.3f", s->hess.med / ((double)s->n * s->hvp.med));
    }
    printf("| %5lld | %5lld | %7zu | %10s | %10s | %9.4g | %7.2f | %7s | %10s | %10s | %6s |\n",
           (long long)s->width, (long long)s->batch, s->n, fmt_t(a, sizeof a, s->grad.med),
           fmt_t(b, sizeof b, s->hvp.med), s->hvp_flops / 1e6, gf, pc, c, d, e);
    fflush(stdout);
}

/* grad and hvp at one width and batch, and the full Hessian when it is small
 * enough (n <= 5000, FLOPs under the budget). */
static void sweep_point(report *rep, const opts *o, const char *kind, int64_t width, int64_t batch)
{
    model m;
    sweep_model(&m, width, batch);
    const flop_model fl = flops_of(&m);
    const bool hess = m.n <= 5000u && fl.hess <= (o->quick ? 1e9 : 4e9);
    job j;
    job_bind(&j, &m, hess ? m.n * m.n : m.n, o->ctx_flags);
    sweep_row *s = sweep_row_add(rep, kind, &m);
    s->grad_flops = fl.grad;
    s->hvp_flops = fl.hvp;
    s->hess_flops = fl.hess;
    s->grad = time_op(op_grad, &j, plan_for(o, false));
    s->hvp = time_op(op_hvp, &j, plan_for(o, false));
    if (hess) {
        s->hess = time_op(op_hessian, &j, plan_for(o, true));
        sweep_check(&j, j.out);
    }
    print_point(s, peak_ref(&rep->pk));
    job_free(&j);
    model_free(&m);
}

/* Full Hessian time against k, the rows per sweep of the double-backward graph. */
static void sweep_k(report *rep, const opts *o, int64_t batch)
{
    static const size_t ks[] = {0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    model m;
    sweep_model(&m, 32, batch);
    const flop_model fl = flops_of(&m);
    job j;
    job_bind(&j, &m, m.n * m.n, o->ctx_flags);
    plan p = plan_for(o, true);
    p.budget = o->quick ? 0.3 : 1.0;
    double t_auto = 0.0;
    for (size_t i = 0; i < N_OF(ks) && rep->ns < MAX_ROWS; i++) {
        j.k = ks[i];
        sweep_row *s = sweep_row_add(rep, "block_rows", &m);
        s->k = ks[i];
        s->hess_flops = fl.hess;
        s->hess = time_op(op_hessian_k, &j, p);
        sweep_check(&j, j.out);
        t_auto = i == 0 ? s->hess.med : t_auto;
        char a[32], b[32], k[24] = "auto";
        if (ks[i])
            snprintf(k, sizeof k, "%zu", ks[i]);
        printf("| %5lld | %5lld | %7zu | %5s | %10s | %10s | %7.2f | %8.2f |\n", (long long)32,
               (long long)batch, m.n, k, fmt_t(a, sizeof a, s->hess.med),
               fmt_t(b, sizeof b, s->hess.min), fl.hess / s->hess.med / 1e9, t_auto / s->hess.med);
        fflush(stdout);
    }
    job_free(&j);
    model_free(&m);
}

/* The three sweeps, each with its table. */
void run_sweep(report *rep, const opts *o)
{
    static const int64_t widths[] = {16, 32, 64, 128, 256, 512, 1024};
    static const int64_t batches[] = {1, 4, 16, 64, 256, 1024};
    printf("\n# sweep: MLP Linear(64,width) -> tanh -> Linear(width,10), MSE; hessian only for "
           "n <= 5000 and <= %g GFLOP (its H v is checked against hvp to %.0e)\n",
           o->quick ? 1.0 : 4.0, SELF_TOL);
    print_point_header();
    for (size_t i = 0; i < N_OF(widths); i++)
        sweep_point(rep, o, "width", widths[i], 32);
    printf("\n# batch sweep: width 32\n");
    print_point_header();
    for (size_t i = 0; i < N_OF(batches); i++)
        sweep_point(rep, o, "batch", 32, batches[i]);
    printf("\n# full Hessian (hess_hessian_ex) against block_rows k, width 32; auto/k above 1: "
           "k beats the library's choice\n");
    printf("| width | batch |       n |     k |    hessian |        min | GFLOP/s |  auto/k |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    sweep_k(rep, o, 32);
    sweep_k(rep, o, 1);
}
