/*
 * main.c -- hessian_bench's entry: the options, the header lines (build,
 * machine, peak), then the workloads, the sweeps and the JSON in that order;
 * the work itself is in the other files (bench.h lists them).  The bench runs
 * the peers' workloads (/work/shared/peers: W0 seed net, W1 MLP 64-32-10, W2 MLP
 * 784-128-10) and W3, a LeNet-5-sized CNN (cnn.c, its PyTorch peer
 * bench/cnn_torch.py), each operation timed end to end from the parameters as the
 * peers do: build the model in a context, compute, rewind to a mark taken
 * before the forward pass.  Results are checked against the PyTorch values in
 * workloads/W0.ref and W1.ref (and against finite differences) before any time
 * is reported; a wrong answer exits 1.  A float64 matmul peak is measured in
 * the same run.  --sweep adds a width and a batch sweep of the W1-type MLP;
 * --curvature the diagonal and curvature functions of issue #15 (curvature.c).
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const workloads[] = {"W0", "W1", "W2", "W3"};
static const char *const ops[] = {"grad", "regrad", "hvp",   "rehvp",   "diag",   "hessian",
                                  "eigs", "trace",  "solve", "density", "threads"};

/* Whether s is one of the n strings of list. */
static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(s, list[k]) == 0)
            return true;
    return false;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: hessian_bench [--workload W0|W1|W2|W3|all|none] [--repeat N] [--quick] "
        "[--no-simd]\n"
        "                     [--op OP[,OP...]] [--curvature W1|W2|all] [--sweep] [--json FILE]\n"
        "                     [--workloads DIR]\n"
        "  OP: grad|regrad|hvp|rehvp|diag|hessian|eigs|trace|solve|density|threads\n"
        "  --workload   which peer workload to run (default all; none with --sweep)\n"
        "  --repeat N   exactly N timed repeats per op (default: a time budget)\n"
        "  --quick      short budgets, for a smoke run\n"
        "  --op OP,...  time only those operations (checks still run); re*: graph built once\n"
        "  --no-peak    skip the matmul peak (for profiling; no %% peak column)\n"
        "  --no-simd    contexts with HESS_NO_SIMD: the portable kernels only\n"
        "  --curvature  also issue #15's section (diagonal, eigs, trace, solve, density, threads)\n"
        "  --sweep      also the width and batch sweep of the 64-width-10 MLP\n"
        "  --json FILE  also write the results as JSON\n"
        "  --workloads  directory of W0.ref and W1.ref (default %s)\n",
        HESS_BENCH_WORKLOADS);
}

static void parse_args(int argc, char **argv, opts *o)
{
    *o = (opts){"all", HESS_BENCH_WORKLOADS, NULL, NULL, NULL, 0, false, false, false, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0)
            o->quick = true;
        else if (strcmp(a, "--no-peak") == 0)
            o->no_peak = true;
        else if (strcmp(a, "--no-simd") == 0)
            o->ctx_flags |= HESS_NO_SIMD;
        else if (strcmp(a, "--sweep") == 0)
            o->sweep = true;
        else if (strcmp(a, "--workload") == 0 && next)
            o->workload = argv[++i];
        else if (strcmp(a, "--workloads") == 0 && next)
            o->dir = argv[++i];
        else if (strcmp(a, "--curvature") == 0 && next)
            o->curv = argv[++i];
        else if (strcmp(a, "--op") == 0 && next)
            o->op = argv[++i];
        else if (strcmp(a, "--json") == 0 && next)
            o->json = argv[++i];
        else if (strcmp(a, "--repeat") == 0 && next && atoi(next) > 0)
            o->repeat = atoi(argv[++i]);
        else {
            usage(strcmp(a, "--help") == 0 ? stdout : stderr);
            exit(strcmp(a, "--help") == 0 ? 0 : 2);
        }
    }
    const bool w_ok = in_list(o->workload, workloads, N_OF(workloads)) ||
                      strcmp(o->workload, "all") == 0 || strcmp(o->workload, "none") == 0;
    bool op_ok = true; /* every item of the --op list is an op */
    for (const char *s = o->op; s && op_ok; s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL) {
        char item[16];
        snprintf(item, sizeof item, "%.*s", (int)strcspn(s, ","), s);
        op_ok = in_list(item, ops, N_OF(ops));
    }
    const bool c_ok = !o->curv || strcmp(o->curv, "W1") == 0 || strcmp(o->curv, "W2") == 0 ||
                      strcmp(o->curv, "all") == 0;
    if (!w_ok || !op_ok || !c_ok) {
        usage(stderr);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    opts o;
    parse_args(argc, argv, &o);
    static report rep;
    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    one_thread(argv);
    printf("# libhessian %s bench, %s build%s, double, 1 thread; %s, %ld CPUs online\n",
           hess_version_string(), HESS_BENCH_BUILD_TYPE, HESS_BENCH_NATIVE ? " -march=native" : "",
           cpu, sysconf(_SC_NPROCESSORS_ONLN));
    printf("# libhessian kernels: %s; products the AVX2 kernel does not take: %s%s\n",
           simd_state(&o), HESS_BENCH_LIB_BLAS[0] ? "CBLAS -l" : "built-in kernel",
           HESS_BENCH_LIB_BLAS);
    if (!o.no_peak) {
        rep.pk = measure_peak(o.quick);
        printf("# %% peak is against %.1f GFLOP/s; FLOPs count matmuls only (peers/README.md)\n",
               peak_ref(&rep.pk));
    }
    if (strcmp(o.workload, "none") != 0) {
        print_header();
        for (size_t i = 0; i < N_OF(workloads); i++)
            if (strcmp(o.workload, "all") == 0 || strcmp(o.workload, workloads[i]) == 0) {
                if (strcmp(workloads[i], "W3") == 0)
                    run_cnn(&rep, &o);
                else
                    run_workload(&rep, &o, workloads[i]);
            }
    }
    for (size_t i = 1; o.curv && i < N_OF(workloads); i++)
        if (strcmp(o.curv, "all") == 0 || strcmp(o.curv, workloads[i]) == 0)
            run_curvature(&o, workloads[i]);
    if (o.sweep)
        run_sweep(&rep, &o);
    if (o.json)
        write_json(&rep, o.json, cpu, simd_state(&o));
    return 0;
}
