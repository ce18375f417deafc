/*
 * bench.h -- what the files of hessian_bench share (bench/README.md): the
 * build's settings, the tolerances, the types (a model, a model bound to a
 * context, timing plans and statistics, the report of every row) and the
 * functions one file calls in another, grouped by the file that defines them:
 *
 *   main.c       options, the header lines, the order of the run
 *   workloads.c  W0, W1, W2: checked, then each operation timed (main table)
 *   cnn.c        W3, the LeNet-5 CNN: its model, checks and timed operations
 *   sweep.c      --sweep: widths, batches and block_rows of the W1-type MLP
 *   curvature.c  --curvature: issue #15's diagonal, eigenvalues, traces, solves,
 *                density and threads
 *   model.c      the MLP's parameters and data, FLOP counts, which workload
 *   ops.c        a model bound to a context; the operations built afresh
 *   replay.c     regrad and rehvp: graphs built once, evaluated again
 *   check.c      the checks against PyTorch, finite differences and hvp
 *   timing.c     the clock and the repeat loop
 *   machine.c    CPU name, kernels, one thread, the matmul peak
 *   json.c       --json FILE
 *   util.c       allocation, random streams, number formats, errors
 *
 * Not part of the library: it prints, allocates freely and exits on error.
 *
 * Legend: B batch, n parameter count, F forward matmul FLOPs, f1 the first
 * layer's share of F (multiply-add = 2 FLOP, as peers/peak_flops.py counts).
 */
#ifndef HESS_BENCH_H
#define HESS_BENCH_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime, setenv, execv, sysconf */
#endif

#include "hessian.h"
#include "ref.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef HESS_BENCH_WORKLOADS
#define HESS_BENCH_WORKLOADS "bench/workloads"
#endif
#ifndef HESS_BENCH_BUILD_TYPE
#define HESS_BENCH_BUILD_TYPE "?"
#endif
#ifndef HESS_BENCH_NATIVE
#define HESS_BENCH_NATIVE 0
#endif
#ifndef HESS_BENCH_LIB_BLAS
#define HESS_BENCH_LIB_BLAS "" /* the CBLAS library libhessian links for matmul, if any */
#endif

#define REF_TOL  1e-10 /* relative to the reference's largest magnitude */
#define FD_TOL   1e-6  /* finite-difference checks (W2 has no reference) */
#define SELF_TOL 1e-8  /* sweep: rows of hess_hessian times v against hess_hvp */
#define MAX_REPS 10000
#define MAX_ROWS 64
#define N_PARAMS 4 /* W1, b1, W2, b2: flattened in this order, as PyTorch */
#define N_OF(a)  (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------ */
/* Types                                                                    */
/* ------------------------------------------------------------------------ */

/* Linear(in,hidden) -> [tanh] -> Linear(hidden,out) -> MSE or CE. */
typedef struct model {
    char name[24];
    int64_t in, hidden, out, batch;
    bool batched;     /* x is [B,in]; else one sample x [in] (W0) */
    bool tanh_hidden; /* tanh between the layers (W1, W2) */
    bool ce;          /* cross-entropy on class indices y [B]; else MSE, y like the output */
    size_t n;         /* parameter count */
    double *theta;    /* n values: W1 [hidden,in], b1, W2 [out,hidden], b2 */
    double *x, *y, *v;
} model;

/* FLOPs of the matmuls of one call of each operation (flops_of). */
typedef struct flop_model {
    double fwd, grad, hvp, hess;
} flop_model;

/* A model bound to a context: its leaves, and what the timed operations leave. */
typedef struct job {
    const model *m;
    hess_context *ctx;
    hess_tensor *p[N_PARAMS], *x, *y;
    hess_mark mark; /* after the leaves, before any forward pass */
    double *out;    /* n (or n*n for the Hessian) doubles of results */
    bool keep;      /* op_grad copies the gradient into out */
    size_t k;       /* op_hessian_k: rows per sweep (hess_hessian_opts.block_rows), 0 = auto */
    double loss;
    int64_t nodes;              /* tape nodes the last op_grad made (forward + backward) */
    hess_tensor *rloss;         /* op_regrad: the loss of the graph built once */
    hess_tensor *rg[N_PARAMS];  /* ... and its gradient */
    hess_tensor *rv[N_PARAMS];  /* op_rehvp: the direction, as parameters */
    hess_tensor *rhv[N_PARAMS]; /* ... and H v */
} job;

typedef void (*op_fn)(job *j);

typedef struct plan {
    double budget; /* seconds of timed repeats, after min_reps */
    int min_reps, warmup;
    int fixed; /* > 0: exactly this many repeats (--repeat) */
} plan;

typedef struct stats {
    double med, min;
    int reps;
} stats;

typedef struct peak {
    double blas_med, blas_best; /* OpenBLAS dgemm 1024^3, 0 when not built in */
    double c_med, c_best;       /* the plain C kernel (machine.c), 512^3 */
} peak;

typedef struct result {
    char w[24];
    size_t n;
    char op[16];
    stats s;
    double flops;  /* matmul FLOPs of one call (0: not counted) */
    int64_t nodes; /* grad: tape nodes of forward + backward; else 0 */
} result;

typedef struct sweep_row {
    const char *kind; /* "width", "batch" or "block_rows" */
    int64_t width, batch;
    size_t n, k;           /* k: block_rows of the "block_rows" rows, 0 = auto */
    stats grad, hvp, hess; /* hess.reps == 0: not run */
    double grad_flops, hvp_flops, hess_flops;
} sweep_row;

typedef struct report {
    peak pk;
    int nr, ns;
    result r[MAX_ROWS];
    sweep_row sw[MAX_ROWS];
} report;

typedef struct opts {
    const char *workload; /* W0, W1, W2, all or none */
    const char *dir;      /* where W0.ref and W1.ref are */
    const char *json;     /* NULL: no JSON */
    const char *op;       /* NULL: every op; else only these (comma-separated; profiling) */
    const char *curv;     /* --curvature W1, W2 or all; NULL: no curvature section */
    int repeat;           /* > 0: fixed repeat count */
    bool quick, sweep, no_peak;
    unsigned ctx_flags; /* hess_config.flags of every context (--no-simd: HESS_NO_SIMD) */
} opts;

/* ------------------------------------------------------------------------ */
/* Functions, by the file that defines them                                 */
/* ------------------------------------------------------------------------ */

/* util.c */
void *xmalloc(size_t size);
uint64_t rng_next(uint64_t *s);
double rng_uniform(uint64_t *s);
double rng_normal(uint64_t *s);
const char *fmt_t(char *buf, size_t len, double s);
void fmt_pct(char *buf, size_t len, double gflops, double pk);
void err_scale(const double *a, const double *b, size_t n, double *err, double *scale);
double rel_err(const double *a, const double *b, size_t n);
bool list_has(const char *csv, const char *word);

/* timing.c */
double now(void);
int cmp_double(const void *a, const void *b);
stats time_call(void (*f)(void *), void *arg, plan p);
stats time_op(op_fn f, job *j, plan p);
plan plan_for(const opts *o, bool slow);

/* model.c */
void model_shapes(const model *m, int64_t shapes[N_PARAMS][2], int ndims[N_PARAMS]);
void model_free(model *m);
void model_random(model *m, uint64_t seed);
int ref_cat(const ref_case *rc, const char *prefix, const model *m, double *out);
flop_model flops_of(const model *m);
void load_workload(model *m, const opts *o, const char *name, ref_case *rc);
void sweep_model(model *m, int64_t width, int64_t batch);

/* ops.c */
void die_ctx(const job *j, const char *what);
void job_bind(job *j, const model *m, size_t out_len, unsigned ctx_flags);
void job_free(job *j);
void params_set(job *j, hess_tensor *const t[N_PARAMS], const double *flat, const char *what);
void params_get(hess_tensor *const t[N_PARAMS], double *flat);
hess_tensor *forward(const job *j);
void op_grad(job *j);
void op_hvp(job *j);
void op_diag(job *j);
void op_hessian(job *j);
void op_hessian_k(job *j);
void op_end(job *j, hess_status st, const char *what);

/* replay.c */
void regrad_build(job *j);
void rehvp_build(job *j);
void op_regrad(job *j);
void op_rehvp(job *j);

/* check.c */
bool check_ref(job *j, const ref_case *rc);
bool check_fd(job *j);
void sweep_check(job *j, const double *H);
void op_into(job *j, op_fn f, double *buf);
void matvec(const double *H, const double *v, size_t n, double *out);

/* machine.c */
void cpu_name(char *buf, size_t len);
void one_thread(char **argv);
const char *simd_state(const opts *o);
peak measure_peak(bool quick);
double peak_ref(const peak *pk);

/* workloads.c */
void print_header(void);
bool wanted(const opts *o, const char *op);
result *report_row(
    report *rep, const char *w, size_t n, const char *op, stats s, double flops, int64_t nodes);
void run_workload(report *rep, const opts *o, const char *name);
bool wanted(const opts *o, const char *op);

/* curvature.c */
void run_curvature(const opts *o, const char *name);

/* cnn.c */
void run_cnn(report *rep, const opts *o);

/* sweep.c */
void run_sweep(report *rep, const opts *o);

/* json.c */
void write_json(const report *rep, const char *path, const char *cpu, const char *kernels);

#endif
