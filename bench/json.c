/*
 * json.c -- --json FILE: the machine, the peak, every row of the workload
 * table and of the sweeps, as one JSON object.  The tables are printed where
 * the rows are measured (workloads.c, sweep.c).
 */
#include "bench.h"

#include <stdlib.h>

static void json_stats(FILE *f, const char *key, stats s)
{
    fprintf(f, "\"%s\": {\"median_s\": %.9g, \"min_s\": %.9g, \"reps\": %d}", key, s.med, s.min,
            s.reps);
}

/* One row of the workload table. */
static void json_result(FILE *f, const result *r, double pk)
{
    const double g = r->flops > 0 ? r->flops / r->s.med / 1e9 : 0;
    fprintf(f, "{\"workload\": \"%s\", \"n\": %zu, \"op\": \"%s\", ", r->w, r->n, r->op);
    json_stats(f, "time", r->s);
    fprintf(f, ", \"flops\": %.6g, \"gflops\": %.4g", r->flops, g);
    if (pk > 0)
        fprintf(f, ", \"pct_peak\": %.3g", 100.0 * g / pk);
    if (r->nodes)
        fprintf(f, ", \"nodes\": %lld, \"ns_per_node\": %.4g", (long long)r->nodes,
                1e9 * r->s.med / (double)r->nodes);
    fprintf(f, "}");
}

/* One row of a sweep: grad and hvp (width and batch rows) or block_rows, and
 * the Hessian when it was run. */
static void json_sweep_row(FILE *f, const sweep_row *s)
{
    fprintf(f, "{\"kind\": \"%s\", \"width\": %lld, \"batch\": %lld, \"n\": %zu, ", s->kind,
            (long long)s->width, (long long)s->batch, s->n);
    if (s->grad.reps) {
        json_stats(f, "grad", s->grad);
        fprintf(f, ", ");
        json_stats(f, "hvp", s->hvp);
        fprintf(f, ", \"grad_flops\": %.6g, \"hvp_flops\": %.6g", s->grad_flops, s->hvp_flops);
    } else {
        fprintf(f, "\"block_rows\": %zu", s->k);
    }
    if (s->hess.reps) {
        fprintf(f, ", ");
        json_stats(f, "hessian", s->hess);
        fprintf(f, ", \"hessian_flops\": %.6g", s->hess_flops);
        if (s->hvp.reps)
            fprintf(f, ", \"hessian_over_n_hvp\": %.4g", s->hess.med / ((double)s->n * s->hvp.med));
    }
    fprintf(f, "}");
}

void write_json(const report *rep, const char *path, const char *cpu, const char *kernels)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "hessian_bench: cannot write %s\n", path);
        exit(1);
    }
    fprintf(f,
            "{\n  \"libhessian\": \"%s\", \"build\": \"%s\", \"native\": %d, \"matmul_blas\": "
            "\"%s\", \"kernels\": \"%s\", \"cpu\": \"%s\",\n",
            hess_version_string(), HESS_BENCH_BUILD_TYPE, HESS_BENCH_NATIVE, HESS_BENCH_LIB_BLAS,
            kernels, cpu);
    fprintf(f,
            "  \"peak_gflops\": {\"openblas_median\": %.4g, \"openblas_best\": %.4g, "
            "\"c_kernel_median\": %.4g, \"c_kernel_best\": %.4g, \"reference\": %.4g},\n",
            rep->pk.blas_med, rep->pk.blas_best, rep->pk.c_med, rep->pk.c_best, peak_ref(&rep->pk));
    fprintf(f, "  \"results\": [");
    for (int i = 0; i < rep->nr; i++) {
        fprintf(f, "%s\n    ", i ? "," : "");
        json_result(f, &rep->r[i], peak_ref(&rep->pk));
    }
    fprintf(f, "\n  ],\n  \"sweep\": [");
    for (int i = 0; i < rep->ns; i++) {
        fprintf(f, "%s\n    ", i ? "," : "");
        json_sweep_row(f, &rep->sw[i]);
    }
    fprintf(f, "\n  ]\n}\n");
    fclose(f);
}
