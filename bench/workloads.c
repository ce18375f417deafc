/*
 * workloads.c -- the peer workloads W0, W1, W2: each checked (check.c), then
 * every operation timed and printed as a row of the main table.  The models
 * themselves are in model.c; the sweeps in sweep.c.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

/* The main table's header: main.c prints it once before the workloads. */
void print_header(void)
{
    printf("| %-10s | t | W  | %6s | %-8s | %10s | %10s | %5s | %9s | %7s | %6s |\n", "impl", "n",
           "op", "median", "min", "reps", "MFLOP", "GFLOP/s", "% peak");
    printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
}

/* One row of the main table; FLOP columns "-" when the op's FLOPs are not counted. */
static void print_row(const result *r, double pk)
{
    char a[32], b[32], fl[32] = "-", gf[32] = "-", pc[32] = "-";
    if (r->flops > 0) {
        const double g = r->flops / r->s.med / 1e9;
        snprintf(fl, sizeof fl, "%.4g", r->flops / 1e6);
        snprintf(gf, sizeof gf, "%.2f", g);
        fmt_pct(pc, sizeof pc, g, pk);
    }
    printf("| %-10s | 1 | %s | %6zu | %-8s | %10s | %10s | %5d | %9s | %7s | %6s |\n", "libhessian",
           r->w, r->n, r->op, fmt_t(a, sizeof a, r->s.med), fmt_t(b, sizeof b, r->s.min), r->s.reps,
           fl, gf, pc);
    fflush(stdout);
}

/* --op OP[,OP...]: only those are timed (the checks still run). */
bool wanted(const opts *o, const char *op)
{
    return !o->op || list_has(o->op, op);
}

/* Adds a row to the report and prints it. */
result *report_row(
    report *rep, const char *w, size_t n, const char *op, stats s, double flops, int64_t nodes)
{
    if (rep->nr == MAX_ROWS)
        exit(1);
    result *r = &rep->r[rep->nr++];
    memset(r, 0, sizeof *r);
    snprintf(r->w, sizeof r->w, "%s", w);
    snprintf(r->op, sizeof r->op, "%s", op);
    r->n = n;
    r->flops = flops;
    r->s = s;
    r->nodes = nodes;
    print_row(r, peak_ref(&rep->pk));
    return r;
}

/* Times f on j and adds its row to the report and the table. */
static result *bench_op(report *rep, const opts *o, job *j, const char *op, op_fn f, double flops)
{
    if (!wanted(o, op))
        return NULL;
    const stats s = time_op(f, j, plan_for(o, f == op_diag || f == op_hessian));
    return report_row(rep, j->m->name, j->m->n, op, s, flops, f == op_grad ? j->nodes : 0);
}

/* An operation on a graph built once (replay.c): built and checked, timed,
 * then the graph dropped by a rewind to the mark. */
static void bench_replay(report *rep,
                         const opts *o,
                         job *j,
                         const char *op,
                         void (*build)(job *j),
                         op_fn f,
                         double flops)
{
    if (!wanted(o, op))
        return;
    build(j);
    bench_op(rep, o, j, op, f, flops);
    hess_context_rewind(j->ctx, j->mark);
}

/* One workload: checked first (a wrong result exits 1 before any time), then
 * grad, regrad, hvp, rehvp, and for W0 and W1 diag and hessian; then the
 * tape's node counts. */
void run_workload(report *rep, const opts *o, const char *name)
{
    model m;
    ref_case rc;
    memset(&rc, 0, sizeof rc);
    load_workload(&m, o, name, &rc);
    const bool small = strcmp(name, "W2") != 0;
    const flop_model fl = flops_of(&m);
    job j;
    job_bind(&j, &m, small ? m.n * m.n : m.n, o->ctx_flags);
    if ((small && !check_ref(&j, &rc)) || !check_fd(&j)) {
        fprintf(stderr, "hessian_bench: %s: wrong results, no timings reported\n", name);
        exit(1);
    }
    if (!forward(&j))
        die_ctx(&j, "forward");
    const int64_t fwd_nodes = hess_context_mark(j.ctx).nodes - j.mark.nodes;
    hess_context_rewind(j.ctx, j.mark);

    const result *g = bench_op(rep, o, &j, "grad", op_grad, fl.grad);
    bench_replay(rep, o, &j, "regrad", regrad_build, op_regrad, fl.grad);
    bench_op(rep, o, &j, "hvp", op_hvp, fl.hvp);
    bench_replay(rep, o, &j, "rehvp", rehvp_build, op_rehvp, fl.hvp);
    if (small) {
        bench_op(rep, o, &j, "diag", op_diag, fl.hess);
        bench_op(rep, o, &j, "hessian", op_hessian, fl.hess);
    }
    if (g)
        printf("# %s tape: forward %lld nodes, forward+gradient %lld nodes; grad median %.0f ns "
               "per node\n",
               name, (long long)fwd_nodes, (long long)g->nodes, 1e9 * g->s.med / (double)g->nodes);
    job_free(&j);
    model_free(&m);
    ref_free(&rc);
}
