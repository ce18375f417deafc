/*
 * bench.c -- the libhessian benchmark (bench/README.md).  Runs the peers'
 * workloads (/work/shared/peers: W0 seed net, W1 MLP 64-32-10, W2 MLP
 * 784-128-10), each operation timed end to end from the parameters as the
 * peers do: build the model in a context, compute, rewind to a mark taken
 * before the forward pass.  Results are checked against the PyTorch values in
 * workloads/W0.ref and W1.ref (and against finite differences) before any time
 * is reported; a wrong answer exits 1.  A float64 matmul peak is measured in
 * the same run.  --sweep adds a width and a batch sweep of the W1-type MLP.
 *
 * Legend: B batch, n parameter count, F forward matmul FLOPs, f1 the first
 * layer's share of F (multiply-add = 2 FLOP, as peers/peak_flops.py counts).
 * Not part of the library: it prints, allocates freely and exits on error.
 */
#define _POSIX_C_SOURCE 200809L

#include "hessian.h"
#include "ref.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef HESS_BENCH_OPENBLAS
#include <cblas.h>
#endif

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

/* ------------------------------------------------------------------------ */
/* Small utilities                                                          */
/* ------------------------------------------------------------------------ */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p) {
        fprintf(stderr, "hessian_bench: out of memory (%zu bytes)\n", size);
        exit(1);
    }
    return p;
}

/* splitmix64: a fixed stream per seed, so every run times the same numbers. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *s) /* in (0, 1) */
{
    return ((double)(rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double rng_normal(uint64_t *s) /* Box-Muller */
{
    const double u = rng_uniform(s), w = rng_uniform(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * w);
}

/* A time as the peers print it: "2.85 us", "99.1 us", "3.21 ms", "2.78 s". */
static const char *fmt_t(char *buf, size_t len, double s)
{
    if (s < 1e-5)
        snprintf(buf, len, "%.2f us", s * 1e6);
    else if (s < 1e-3)
        snprintf(buf, len, "%.1f us", s * 1e6);
    else if (s < 1)
        snprintf(buf, len, "%.2f ms", s * 1e3);
    else
        snprintf(buf, len, "%.2f s", s);
    return buf;
}

/* max |a - b| / max |b|: the error relative to the reference's scale. */
static double rel_err(const double *a, const double *b, size_t n)
{
    double e = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs(a[i] - b[i]));
        s = fmax(s, fabs(b[i]));
    }
    return s > 0.0 ? e / s : e;
}

/* ------------------------------------------------------------------------ */
/* Models: Linear(in,hidden) -> [tanh] -> Linear(hidden,out) -> MSE or CE    */
/* ------------------------------------------------------------------------ */

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

static void model_shapes(const model *m, int64_t shapes[N_PARAMS][2], int ndims[N_PARAMS])
{
    const int64_t s[N_PARAMS][2] = {
        {m->hidden, m->in}, {m->hidden, 0}, {m->out, m->hidden}, {m->out, 0}};
    for (int i = 0; i < N_PARAMS; i++) {
        shapes[i][0] = s[i][0];
        shapes[i][1] = s[i][1];
        ndims[i] = s[i][1] ? 2 : 1;
    }
}

static void model_alloc(model *m)
{
    m->n = (size_t)(m->hidden * m->in + m->hidden + m->out * m->hidden + m->out);
    m->theta = xmalloc(m->n * sizeof(double));
    m->v = xmalloc(m->n * sizeof(double));
    m->x = xmalloc((size_t)(m->batch * m->in) * sizeof(double));
    m->y = xmalloc((size_t)(m->batch * (m->ce ? 1 : m->out)) * sizeof(double));
}

static void model_free(model *m)
{
    free(m->theta);
    free(m->v);
    free(m->x);
    free(m->y);
}

/* Random weights with PyTorch's nn.Linear scales, U(-1/sqrt(fan_in), +), and
 * N(0,1) inputs, targets and direction: only the timing depends on them. */
static void model_random(model *m, uint64_t seed)
{
    model_alloc(m);
    uint64_t s = seed;
    const double a1 = 1.0 / sqrt((double)m->in), a2 = 1.0 / sqrt((double)m->hidden);
    const size_t n1 = (size_t)(m->hidden * m->in + m->hidden);
    for (size_t i = 0; i < m->n; i++)
        m->theta[i] = (i < n1 ? a1 : a2) * (2.0 * rng_uniform(&s) - 1.0);
    for (int64_t i = 0; i < m->batch * m->in; i++)
        m->x[i] = rng_normal(&s);
    for (int64_t i = 0; i < m->batch * (m->ce ? 1 : m->out); i++)
        m->y[i] = m->ce ? (double)(rng_next(&s) % (uint64_t)m->out) : rng_normal(&s);
    for (size_t i = 0; i < m->n; i++)
        m->v[i] = rng_normal(&s);
}

/* Concatenates prefix W1, b1, W2, b2 of a reference case into out (n values). */
static int ref_cat(const ref_case *rc, const char *prefix, const model *m, double *out)
{
    static const char *const names[N_PARAMS] = {"W1", "b1", "W2", "b2"};
    size_t off = 0;
    for (int i = 0; i < N_PARAMS; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s%s", prefix, names[i]);
        const ref_tensor *t = ref_find(rc, key);
        if (!t || off + (size_t)t->numel > m->n) {
            fprintf(stderr, "hessian_bench: %s: tensor %s missing or too large\n", rc->name, key);
            return -1;
        }
        memcpy(out + off, t->data, (size_t)t->numel * sizeof(double));
        off += (size_t)t->numel;
    }
    return off == m->n ? 0 : -1;
}

/* Shapes, weights, data and the direction v from a peer workload file. */
static int model_from_ref(model *m, const ref_case *rc)
{
    const ref_tensor *W1 = ref_find(rc, "param:W1"), *W2 = ref_find(rc, "param:W2");
    const ref_tensor *x = ref_find(rc, "input:x"), *y = ref_find(rc, "input:y");
    const ref_tensor *v = ref_find(rc, "hvp:v");
    if (!W1 || !W2 || !x || !y || !v || W1->ndim != 2 || W2->ndim != 2 || x->ndim < 1) {
        fprintf(stderr, "hessian_bench: %s: not a bench workload file\n", rc->name);
        return -1;
    }
    m->in = W1->shape[1];
    m->hidden = W1->shape[0];
    m->out = W2->shape[0];
    m->batched = x->ndim == 2;
    m->batch = m->batched ? x->shape[0] : 1;
    model_alloc(m);
    if (ref_cat(rc, "param:", m, m->theta) || (size_t)v->numel != m->n ||
        x->numel != m->batch * m->in || y->numel != m->batch * m->out)
        return -1;
    memcpy(m->x, x->data, (size_t)x->numel * sizeof(double));
    memcpy(m->y, y->data, (size_t)y->numel * sizeof(double));
    memcpy(m->v, v->data, m->n * sizeof(double));
    return 0;
}

/* FLOPs of the matmuls (peers/README.md): forward F, gradient 3F - f1,
 * HVP 9F - 5 f1, full Hessian n (6F - 4 f1) + 3F - f1.  The diagonal costs
 * what the full Hessian does here (one double-backward replay per element). */
typedef struct flop_model {
    double fwd, grad, hvp, hess;
} flop_model;

static flop_model flops_of(const model *m)
{
    const double f1 = 2.0 * (double)(m->batch * m->in * m->hidden);
    const double F = f1 + 2.0 * (double)(m->batch * m->hidden * m->out);
    const flop_model r = {F, 3 * F - f1, 9 * F - 5 * f1,
                          (double)m->n * (6 * F - 4 * f1) + 3 * F - f1};
    return r;
}

/* ------------------------------------------------------------------------ */
/* A model bound to a context, and the timed operations                     */
/* ------------------------------------------------------------------------ */

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

static void die_ctx(const job *j, const char *what)
{
    fprintf(stderr, "hessian_bench: %s %s: %s (%s)\n", j->m->name, what,
            hess_status_str(hess_context_status(j->ctx)), hess_context_errmsg(j->ctx));
    exit(1);
}

static void job_bind(job *j, const model *m, size_t out_len, unsigned ctx_flags)
{
    memset(j, 0, sizeof *j);
    j->m = m;
    if (hess_context_create(&(hess_config){.flags = ctx_flags}, &j->ctx) != HESS_OK) {
        fprintf(stderr, "hessian_bench: cannot create a context\n");
        exit(1);
    }
    int64_t shapes[N_PARAMS][2];
    int nd[N_PARAMS];
    model_shapes(m, shapes, nd);
    size_t off = 0;
    for (int i = 0; i < N_PARAMS; i++) {
        j->p[i] = hess_param_new(j->ctx, nd[i], shapes[i], m->theta + off);
        off += (size_t)(shapes[i][0] * (nd[i] == 2 ? shapes[i][1] : 1));
    }
    const int64_t xs[2] = {m->batch, m->in}, ys[2] = {m->batch, m->out};
    j->x = m->batched ? hess_tensor_new(j->ctx, 2, xs, m->x)
                      : hess_tensor_new(j->ctx, 1, xs + 1, m->x);
    if (m->ce)
        j->y = hess_tensor_new(j->ctx, 1, ys, m->y);
    else
        j->y = m->batched ? hess_tensor_new(j->ctx, 2, ys, m->y)
                          : hess_tensor_new(j->ctx, 1, ys + 1, m->y);
    if (hess_context_status(j->ctx) != HESS_OK)
        die_ctx(j, "setup");
    j->mark = hess_context_mark(j->ctx);
    j->out = xmalloc(out_len * sizeof(double));
}

static void job_free(job *j)
{
    hess_context_destroy(j->ctx);
    free(j->out);
}

/* The loss: Linear -> [tanh] -> Linear -> MSE or cross-entropy. */
static hess_tensor *forward(const job *j)
{
    hess_context *ctx = j->ctx;
    hess_tensor *h = hess_linear(ctx, j->x, j->p[0], j->p[1]);
    if (j->m->tanh_hidden)
        h = hess_tanh(ctx, h);
    hess_tensor *o = hess_linear(ctx, h, j->p[2], j->p[3]);
    return j->m->ce ? hess_cross_entropy(ctx, o, j->y) : hess_mse_loss(ctx, o, j->y);
}

/* Ends an operation: exits on error, else rewinds to the mark. */
static void op_end(job *j, hess_status st, const char *what)
{
    if (st != HESS_OK || hess_context_status(j->ctx) != HESS_OK)
        die_ctx(j, what);
    hess_context_rewind(j->ctx, j->mark);
}

static void op_grad(job *j)
{
    hess_tensor *loss = forward(j), *g[N_PARAMS];
    hess_status st = loss ? hess_grad(j->ctx, loss, N_PARAMS, j->p, g, 0) : HESS_ERR_STATE;
    if (st == HESS_OK) {
        j->loss = hess_tensor_data(loss)[0];
        j->nodes = hess_context_mark(j->ctx).nodes - j->mark.nodes;
        for (int i = 0, off = 0; j->keep && i < N_PARAMS; off += (int)hess_tensor_numel(g[i]), i++)
            memcpy(j->out + off, hess_tensor_data(g[i]),
                   (size_t)hess_tensor_numel(g[i]) * sizeof(double));
    }
    op_end(j, st, "grad");
}

static void op_hvp(job *j)
{
    hess_tensor *loss = forward(j);
    op_end(j, loss ? hess_hvp(j->ctx, loss, N_PARAMS, j->p, j->m->v, j->out) : HESS_ERR_STATE,
           "hvp");
}

static void op_diag(job *j)
{
    hess_tensor *loss = forward(j);
    op_end(j, loss ? hess_hessian_diag(j->ctx, loss, N_PARAMS, j->p, j->out) : HESS_ERR_STATE,
           "diag");
}

static void op_hessian(job *j)
{
    hess_tensor *loss = forward(j);
    op_end(j, loss ? hess_hessian(j->ctx, loss, N_PARAMS, j->p, j->out) : HESS_ERR_STATE,
           "hessian");
}

/* The full Hessian through hess_hessian_ex with block_rows = j->k. */
static void op_hessian_k(job *j)
{
    const hess_hessian_opts opt = {.block_rows = j->k};
    hess_tensor *loss = forward(j);
    op_end(j, loss ? hess_hessian_ex(j->ctx, loss, N_PARAMS, j->p, &opt, j->out) : HESS_ERR_STATE,
           "hessian_ex");
}

/* The gradient of a graph built once (bench_regrad): the parameters are set
 * from theta and the graph evaluated again (hess_recompute), no node made. */
static void op_regrad(job *j)
{
    size_t off = 0;
    for (int i = 0; i < N_PARAMS; i++) {
        if (hess_param_set(j->ctx, j->p[i], j->m->theta + off) != HESS_OK)
            die_ctx(j, "regrad");
        off += (size_t)hess_tensor_numel(j->p[i]);
    }
    if (hess_recompute(j->ctx) != HESS_OK)
        die_ctx(j, "regrad");
    j->loss = hess_tensor_data(j->rloss)[0];
}

/* H v of a graph built once (bench_rehvp): parameters and direction set,
 * the graph evaluated again. */
static void op_rehvp(job *j)
{
    size_t off = 0;
    for (int i = 0; i < N_PARAMS; i++) {
        if (hess_param_set(j->ctx, j->p[i], j->m->theta + off) != HESS_OK ||
            hess_param_set(j->ctx, j->rv[i], j->m->v + off) != HESS_OK)
            die_ctx(j, "rehvp");
        off += (size_t)hess_tensor_numel(j->p[i]);
    }
    if (hess_recompute(j->ctx) != HESS_OK)
        die_ctx(j, "rehvp");
    j->loss = hess_tensor_data(j->rloss)[0];
}

typedef void (*op_fn)(job *j);

/* ------------------------------------------------------------------------ */
/* Timing: warm-up, then repeats until a time budget (or a fixed count)     */
/* ------------------------------------------------------------------------ */

typedef struct plan {
    double budget; /* seconds of timed repeats, after min_reps */
    int min_reps, warmup;
    int fixed; /* > 0: exactly this many repeats (--repeat) */
} plan;

typedef struct stats {
    double med, min;
    int reps;
} stats;

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static stats time_op(op_fn f, job *j, plan p)
{
    static double ts[MAX_REPS];
    for (int i = 0; i < p.warmup; i++)
        f(j);
    const int max = p.fixed > 0 ? (p.fixed < MAX_REPS ? p.fixed : MAX_REPS) : MAX_REPS;
    int n = 0;
    const double start = now();
    while (n < max) {
        const double t0 = now();
        f(j);
        ts[n++] = now() - t0;
        if (p.fixed <= 0 && n >= p.min_reps && now() - start > p.budget)
            break;
    }
    qsort(ts, (size_t)n, sizeof ts[0], cmp_double);
    stats s = {n % 2 ? ts[n / 2] : 0.5 * (ts[n / 2 - 1] + ts[n / 2]), ts[0], n};
    return s;
}

/* ------------------------------------------------------------------------ */
/* Checks: nothing is timed until these pass                                */
/* ------------------------------------------------------------------------ */

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

/* W0/W1 against the PyTorch values: loss, gradient, Hv, diagonal, full Hessian
 * (W0: every entry; W1: its diagonal, H v and symmetry). */
static bool check_ref(job *j, const ref_case *rc)
{
    const model *m = j->m;
    const size_t n = m->n;
    double *want = xmalloc(n * sizeof(double)), *got = xmalloc(n * sizeof(double));
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
    /* the full Hessian into a job whose buffer holds n*n */
    double *keep_out = j->out;
    j->out = xmalloc(n * n * sizeof(double));
    op_hessian(j);
    const double *H = j->out;
    const ref_tensor *Href = ref_find(rc, "hessian");
    if (Href && (size_t)Href->numel == n * n)
        check_one(m->name, "hessian", rel_err(H, Href->data, n * n), REF_TOL, &ok);
    for (size_t r = 0; r < n; r++)
        got[r] = H[r * n + r];
    check_one(m->name, "diag(H)", rel_err(got, want, n), REF_TOL, &ok);
    for (size_t r = 0; r < n; r++) {
        double s = 0.0;
        for (size_t c = 0; c < n; c++)
            s += H[r * n + c] * m->v[c];
        got[r] = s;
    }
    check_one(m->name, "H*v", hv ? rel_err(got, hv->data, n) : INFINITY, REF_TOL, &ok);
    double asym = 0.0, hmax = 0.0;
    for (size_t r = 0; r < n; r++)
        for (size_t c = 0; c < r; c++) {
            asym = fmax(asym, fabs(H[r * n + c] - H[c * n + r]));
            hmax = fmax(hmax, fabs(H[r * n + c]));
        }
    check_one(m->name, "H-H^T", hmax > 0 ? asym / hmax : asym, REF_TOL, &ok);
    printf("%s\n", ok ? "  ok" : "  FAILED");
    free(j->out);
    j->out = keep_out;
    free(want);
    free(got);
    return ok;
}

/* Sets the parameters to theta + h v (through hess_param_set). */
static void set_theta(job *j, double h)
{
    const model *m = j->m;
    double *t = xmalloc(m->n * sizeof(double));
    for (size_t i = 0; i < m->n; i++)
        t[i] = m->theta[i] + h * m->v[i];
    size_t off = 0;
    for (int i = 0; i < N_PARAMS; i++) {
        if (hess_param_set(j->ctx, j->p[i], t + off) != HESS_OK)
            die_ctx(j, "hess_param_set");
        off += (size_t)hess_tensor_numel(j->p[i]);
    }
    free(t);
}

/* Central differences along v: of the loss against g.v, and of the gradient
 * against hess_hvp.  The only check W2 gets, a cross-check for W0 and W1. */
static bool check_fd(job *j)
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

/* ------------------------------------------------------------------------ */
/* Machine peak: float64 matmul, one thread                                 */
/* ------------------------------------------------------------------------ */

typedef struct peak {
    double blas_med, blas_best; /* OpenBLAS dgemm 1024^3, 0 when not built in */
    double c_med, c_best;       /* the plain C kernel below, 512^3 */
} peak;

/* C[n,n] = A B, row-major, n a multiple of 8: panels of B (KC x 8) packed,
 * a 4 x 8 block of C held in locals.  Plain C, so it reaches what the
 * compiler makes of it with this build's flags (no -march unless asked). */
static void gemm_c(int n, const double *a, const double *b, double *c, double *pack)
{
    enum { KC = 256 };
    memset(c, 0, (size_t)n * (size_t)n * sizeof(double));
    for (int p0 = 0; p0 < n; p0 += KC) {
        const int kc = n - p0 < KC ? n - p0 : KC;
        for (int j0 = 0; j0 < n; j0 += 8) {
            for (int p = 0; p < kc; p++)
                memcpy(pack + p * 8, b + (size_t)(p0 + p) * (size_t)n + j0, 8 * sizeof(double));
            for (int i = 0; i + 4 <= n; i += 4) {
                double acc[4][8] = {{0}};
                const double *ar = a + (size_t)i * (size_t)n + p0;
                for (int p = 0; p < kc; p++)
                    for (int r = 0; r < 4; r++) {
                        const double av = ar[(size_t)r * (size_t)n + p];
                        for (int q = 0; q < 8; q++)
                            acc[r][q] += av * pack[p * 8 + q];
                    }
                for (int r = 0; r < 4; r++)
                    for (int q = 0; q < 8; q++)
                        c[(size_t)(i + r) * (size_t)n + j0 + q] += acc[r][q];
            }
        }
    }
}

static void peak_run(int n, int reps, bool blas, double *med, double *best)
{
    const size_t nn = (size_t)n * (size_t)n;
    double *a = xmalloc(nn * sizeof(double)), *b = xmalloc(nn * sizeof(double));
    double *c = xmalloc(nn * sizeof(double)), *pack = xmalloc(256 * 8 * sizeof(double));
    double ts[64];
    uint64_t s = 1;
    for (size_t i = 0; i < nn; i++) {
        a[i] = rng_normal(&s);
        b[i] = rng_normal(&s);
    }
    reps = reps > 60 ? 60 : reps;
    for (int r = -2; r < reps; r++) { /* two warm-up calls */
        const double t0 = now();
#ifdef HESS_BENCH_OPENBLAS
        if (blas)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a, n, b, n, 0.0, c,
                        n);
        else
#endif
            gemm_c(n, a, b, c, pack);
        if (r >= 0)
            ts[r] = now() - t0;
    }
    (void)blas;
    qsort(ts, (size_t)reps, sizeof ts[0], cmp_double);
    const double fl = 2.0 * (double)n * (double)n * (double)n;
    *med = fl / ts[reps / 2] / 1e9;
    *best = fl / ts[0] / 1e9;
    free(a);
    free(b);
    free(c);
    free(pack);
}

static peak measure_peak(bool quick)
{
    peak pk = {0, 0, 0, 0};
#ifdef HESS_BENCH_OPENBLAS
    openblas_set_num_threads(1);
    peak_run(1024, quick ? 5 : 15, true, &pk.blas_med, &pk.blas_best);
    printf("# peak: OpenBLAS dgemm 1024^3, 1 thread: median %.1f GFLOP/s, best %.1f GFLOP/s\n",
           pk.blas_med, pk.blas_best);
#endif
    peak_run(512, quick ? 3 : 7, false, &pk.c_med, &pk.c_best);
    printf("# peak: plain C 4x8 kernel 512^3 (this build's flags): median %.1f GFLOP/s, best %.1f "
           "GFLOP/s\n",
           pk.c_med, pk.c_best);
    return pk;
}

/* The reference peak for "% peak": OpenBLAS's best repeat when built in, else
 * the C kernel's.  The best, not the median: on a shared machine noise only
 * ever slows a repeat down, and the peak is the machine's capability. */
static double peak_ref(const peak *pk)
{
    return pk->blas_best > 0 ? pk->blas_best : pk->c_best;
}

/* ------------------------------------------------------------------------ */
/* Results and their table                                                  */
/* ------------------------------------------------------------------------ */

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
    const char *op;       /* NULL: every op; else only this one (for profiling) */
    int repeat;           /* > 0: fixed repeat count */
    bool quick, sweep, no_peak;
    unsigned ctx_flags; /* hess_config.flags of every context (--no-simd: HESS_NO_SIMD) */
} opts;

static plan plan_for(const opts *o, bool slow)
{
    plan p = {slow ? 3.0 : 1.5, slow ? 3 : 5, slow ? 1 : 2, o->repeat};
    if (o->quick) {
        p.budget = slow ? 0.5 : 0.2;
        p.min_reps = slow ? 1 : 3;
        p.warmup = 1;
    }
    return p;
}

static void print_header(void)
{
    printf("| %-10s | t | W  | %6s | %-8s | %10s | %10s | %5s | %9s | %7s | %6s |\n", "impl", "n",
           "op", "median", "min", "reps", "MFLOP", "GFLOP/s", "% peak");
    printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
}

static void print_row(const result *r, double pk)
{
    char a[32], b[32], fl[32] = "-", gf[32] = "-", pc[32] = "-";
    if (r->flops > 0) {
        const double g = r->flops / r->s.med / 1e9;
        snprintf(fl, sizeof fl, "%.4g", r->flops / 1e6);
        snprintf(gf, sizeof gf, "%.2f", g);
        if (pk > 0)
            snprintf(pc, sizeof pc, "%.1f %%", 100.0 * g / pk);
    }
    printf("| %-10s | 1 | %s | %6zu | %-8s | %10s | %10s | %5d | %9s | %7s | %6s |\n", "libhessian",
           r->w, r->n, r->op, fmt_t(a, sizeof a, r->s.med), fmt_t(b, sizeof b, r->s.min), r->s.reps,
           fl, gf, pc);
    fflush(stdout);
}

static result *bench_op(report *rep, const opts *o, job *j, const char *op, op_fn f, double flops)
{
    if (o->op && strcmp(o->op, op) != 0)
        return NULL;
    if (rep->nr == MAX_ROWS)
        exit(1);
    result *r = &rep->r[rep->nr++];
    memset(r, 0, sizeof *r);
    snprintf(r->w, sizeof r->w, "%s", j->m->name);
    snprintf(r->op, sizeof r->op, "%s", op);
    r->n = j->m->n;
    r->flops = flops;
    r->s = time_op(f, j, plan_for(o, f == op_diag || f == op_hessian));
    if (f == op_grad)
        r->nodes = j->nodes;
    print_row(r, peak_ref(&rep->pk));
    return r;
}

/* "regrad": forward + gradient built once, then timed as parameters set +
 * hess_recompute -- what a tape replay does (ADOL-C's gradient() replays a
 * taped function).  Checked first: bit for bit the gradient built afresh. */
static void bench_regrad(report *rep, const opts *o, job *j, double flops)
{
    if (o->op && strcmp(o->op, "regrad") != 0)
        return;
    j->keep = true;
    op_grad(j); /* the reference, into out */
    j->keep = false;
    hess_tensor *loss = forward(j);
    if (!loss || hess_grad(j->ctx, loss, N_PARAMS, j->p, j->rg, 0) != HESS_OK)
        die_ctx(j, "regrad");
    j->rloss = loss;
    op_regrad(j);
    size_t off = 0;
    for (int i = 0; i < N_PARAMS; i++) {
        const size_t len = (size_t)hess_tensor_numel(j->rg[i]);
        if (memcmp(hess_tensor_data(j->rg[i]), j->out + off, len * sizeof(double)) != 0) {
            fprintf(stderr, "hessian_bench: %s regrad: gradient differs from a fresh build\n",
                    j->m->name);
            exit(1);
        }
        off += len;
    }
    bench_op(rep, o, j, "regrad", op_regrad, flops);
    hess_context_rewind(j->ctx, j->mark);
}

/* "rehvp": H v as a graph built once -- g = dL/dθ recorded, s = Σ g·v with v
 * held in parameters, H v = ds/dθ -- timed as parameters and v set +
 * hess_recompute.  Checked first against hess_hvp (same values to rounding;
 * the graphs differ, so not bit for bit). */
static void bench_rehvp(report *rep, const opts *o, job *j, double flops)
{
    if (o->op && strcmp(o->op, "rehvp") != 0)
        return;
    op_hvp(j); /* the reference, into out */
    hess_context *ctx = j->ctx;
    hess_tensor *loss = forward(j), *g[N_PARAMS], *s = NULL;
    if (!loss || hess_grad(ctx, loss, N_PARAMS, j->p, g, HESS_CREATE_GRAPH) != HESS_OK)
        die_ctx(j, "rehvp");
    size_t off = 0;
    for (int i = 0; i < N_PARAMS; i++) {
        j->rv[i] = hess_param_new(ctx, hess_tensor_ndim(j->p[i]), hess_tensor_shape(j->p[i]),
                                  j->m->v + off);
        hess_tensor *t = hess_sum(ctx, hess_mul(ctx, g[i], j->rv[i]));
        s = s ? hess_add(ctx, s, t) : t;
        off += (size_t)hess_tensor_numel(j->p[i]);
    }
    if (!s || hess_grad(ctx, s, N_PARAMS, j->p, j->rhv, 0) != HESS_OK)
        die_ctx(j, "rehvp");
    j->rloss = loss;
    op_rehvp(j);
    double err = 0.0, big = 0.0;
    off = 0;
    for (int i = 0; i < N_PARAMS; i++) {
        const double *h = hess_tensor_data(j->rhv[i]);
        for (int64_t e = 0; e < hess_tensor_numel(j->rhv[i]); e++, off++) {
            err = fmax(err, fabs(h[e] - j->out[off]));
            big = fmax(big, fabs(j->out[off]));
        }
    }
    if (err > 1e-12 * big) {
        fprintf(stderr, "hessian_bench: %s rehvp: differs from hess_hvp by %.3g (max %.3g)\n",
                j->m->name, err, big);
        exit(1);
    }
    bench_op(rep, o, j, "rehvp", op_rehvp, flops);
    hess_context_rewind(ctx, j->mark);
}

/* ------------------------------------------------------------------------ */
/* The workloads                                                            */
/* ------------------------------------------------------------------------ */

static void load_workload(model *m, const opts *o, const char *name, ref_case *rc)
{
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    if (strcmp(name, "W2") == 0) {
        m->in = 784, m->hidden = 128, m->out = 10, m->batch = 64;
        m->batched = m->tanh_hidden = m->ce = true;
        model_random(m, 102);
        return;
    }
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/%s.ref", o->dir, name);
    if (ref_load(path, rc, err, sizeof err) != 0) {
        fprintf(stderr, "hessian_bench: %s\n", err);
        exit(1);
    }
    m->tanh_hidden = strcmp(name, "W1") == 0; /* W0 is the seed net: no activation */
    if (model_from_ref(m, rc) != 0)
        exit(1);
}

static void run_workload(report *rep, const opts *o, const char *name)
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
    bench_regrad(rep, o, &j, fl.grad);
    bench_op(rep, o, &j, "hvp", op_hvp, fl.hvp);
    bench_rehvp(rep, o, &j, fl.hvp);
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

/* ------------------------------------------------------------------------ */
/* Sweep: MLP Linear(64,width) -> tanh -> Linear(width,10), MSE             */
/* ------------------------------------------------------------------------ */

/* Hessian rows times v against hess_hvp(v): the sweep's correctness check. */
static void sweep_check(job *j, const double *H)
{
    const size_t n = j->m->n;
    double *hv = xmalloc(n * sizeof(double)), *Hv = xmalloc(n * sizeof(double));
    double *keep = j->out;
    j->out = hv;
    op_hvp(j);
    j->out = keep;
    for (size_t r = 0; r < n; r++) {
        double s = 0.0;
        for (size_t c = 0; c < n; c++)
            s += H[r * n + c] * j->m->v[c];
        Hv[r] = s;
    }
    const double e = rel_err(Hv, hv, n);
    if (!(e <= SELF_TOL)) {
        fprintf(stderr, "hessian_bench: sweep %s: H v differs from hess_hvp by %.2e\n", j->m->name,
                e);
        exit(1);
    }
    free(hv);
    free(Hv);
}

static void sweep_point(report *rep, const opts *o, const char *kind, int64_t width, int64_t batch)
{
    if (rep->ns == MAX_ROWS)
        exit(1);
    model m;
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "w%lld-b%lld", (long long)width, (long long)batch);
    m.in = 64, m.hidden = width, m.out = 10, m.batch = batch;
    m.batched = m.tanh_hidden = true;
    model_random(&m, 1000 + (uint64_t)width * 7919u + (uint64_t)batch);
    const flop_model fl = flops_of(&m);
    const bool hess = m.n <= 5000u && fl.hess <= (o->quick ? 1e9 : 4e9);
    job j;
    job_bind(&j, &m, hess ? m.n * m.n : m.n, o->ctx_flags);
    sweep_row *s = &rep->sw[rep->ns++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->width = width;
    s->batch = batch;
    s->n = m.n;
    s->grad_flops = fl.grad;
    s->hvp_flops = fl.hvp;
    s->hess_flops = fl.hess;
    s->grad = time_op(op_grad, &j, plan_for(o, false));
    s->hvp = time_op(op_hvp, &j, plan_for(o, false));
    if (hess) {
        s->hess = time_op(op_hessian, &j, plan_for(o, true));
        sweep_check(&j, j.out);
    }
    char a[32], b[32], c[32] = "-", d[32] = "-", e[32] = "-", pc[32] = "-";
    const double gf = fl.hvp / s->hvp.med / 1e9, pk = peak_ref(&rep->pk);
    if (pk > 0)
        snprintf(pc, sizeof pc, "%.1f %%", 100.0 * gf / pk);
    if (hess) {
        fmt_t(c, sizeof c, s->hess.med);
        fmt_t(d, sizeof d, (double)m.n * s->hvp.med);
        snprintf(e, sizeof e, "%.3f", s->hess.med / ((double)m.n * s->hvp.med));
    }
    printf("| %5lld | %5lld | %7zu | %10s | %10s | %9.4g | %7.2f | %7s | %10s | %10s | %6s |\n",
           (long long)width, (long long)batch, m.n, fmt_t(a, sizeof a, s->grad.med),
           fmt_t(b, sizeof b, s->hvp.med), fl.hvp / 1e6, gf, pc, c, d, e);
    fflush(stdout);
    job_free(&j);
    model_free(&m);
}

/* Full Hessian time against k, the rows per sweep of the double-backward graph. */
static void sweep_k(report *rep, const opts *o, int64_t batch)
{
    static const size_t ks[] = {0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    model m;
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "w32-b%lld", (long long)batch);
    m.in = 64, m.hidden = 32, m.out = 10, m.batch = batch;
    m.batched = m.tanh_hidden = true;
    model_random(&m, 1000 + 32u * 7919u + (uint64_t)batch);
    const flop_model fl = flops_of(&m);
    job j;
    job_bind(&j, &m, m.n * m.n, o->ctx_flags);
    plan p = plan_for(o, true);
    p.budget = o->quick ? 0.3 : 1.0;
    double t_auto = 0.0;
    for (size_t i = 0; i < sizeof ks / sizeof ks[0] && rep->ns < MAX_ROWS; i++) {
        j.k = ks[i];
        sweep_row *s = &rep->sw[rep->ns++];
        memset(s, 0, sizeof *s);
        s->kind = "block_rows";
        s->width = 32;
        s->batch = batch;
        s->n = m.n;
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

static void run_sweep(report *rep, const opts *o)
{
    static const int64_t widths[] = {16, 32, 64, 128, 256, 512, 1024};
    static const int64_t batches[] = {1, 4, 16, 64, 256, 1024};
    const char *head =
        "| width | batch | %7s | %10s | %10s | %9s | %7s | %7s | %10s | %10s | %6s |\n";
    printf("\n# sweep: MLP Linear(64,width) -> tanh -> Linear(width,10), MSE; hessian only for "
           "n <= 5000 and <= %g GFLOP (its H v is checked against hvp to %.0e)\n",
           o->quick ? 1.0 : 4.0, SELF_TOL);
    printf(head, "n", "grad", "hvp", "hvp MFLOP", "GFLOP/s", "% peak", "hessian", "n x hvp",
           "ratio");
    printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++)
        sweep_point(rep, o, "width", widths[i], 32);
    printf("\n# batch sweep: width 32\n");
    printf(head, "n", "grad", "hvp", "hvp MFLOP", "GFLOP/s", "% peak", "hessian", "n x hvp",
           "ratio");
    printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++)
        sweep_point(rep, o, "batch", 32, batches[i]);
    printf("\n# full Hessian (hess_hessian_ex) against block_rows k, width 32; auto/k above 1: "
           "k beats the library's choice\n");
    printf("| width | batch |       n |     k |    hessian |        min | GFLOP/s |  auto/k |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    sweep_k(rep, o, 32);
    sweep_k(rep, o, 1);
}

/* ------------------------------------------------------------------------ */
/* Machine description and JSON                                             */
/* ------------------------------------------------------------------------ */

static void cpu_name(char *buf, size_t len)
{
    snprintf(buf, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        const char *c = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && c) {
            snprintf(buf, len, "%s", c + 2);
            buf[strcspn(buf, "\n")] = '\0';
            break;
        }
    }
    fclose(f);
}

static void json_stats(FILE *f, const char *key, stats s)
{
    fprintf(f, "\"%s\": {\"median_s\": %.9g, \"min_s\": %.9g, \"reps\": %d}", key, s.med, s.min,
            s.reps);
}

static void write_json(const report *rep, const char *path, const char *cpu, const char *kernels)
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
        const result *r = &rep->r[i];
        const double g = r->flops > 0 ? r->flops / r->s.med / 1e9 : 0;
        fprintf(f, "%s\n    {\"workload\": \"%s\", \"n\": %zu, \"op\": \"%s\", ", i ? "," : "",
                r->w, r->n, r->op);
        json_stats(f, "time", r->s);
        fprintf(f, ", \"flops\": %.6g, \"gflops\": %.4g", r->flops, g);
        if (peak_ref(&rep->pk) > 0)
            fprintf(f, ", \"pct_peak\": %.3g", 100.0 * g / peak_ref(&rep->pk));
        if (r->nodes)
            fprintf(f, ", \"nodes\": %lld, \"ns_per_node\": %.4g", (long long)r->nodes,
                    1e9 * r->s.med / (double)r->nodes);
        fprintf(f, "}");
    }
    fprintf(f, "\n  ],\n  \"sweep\": [");
    for (int i = 0; i < rep->ns; i++) {
        const sweep_row *s = &rep->sw[i];
        fprintf(f, "%s\n    {\"kind\": \"%s\", \"width\": %lld, \"batch\": %lld, \"n\": %zu, ",
                i ? "," : "", s->kind, (long long)s->width, (long long)s->batch, s->n);
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
                fprintf(f, ", \"hessian_over_n_hvp\": %.4g",
                        s->hess.med / ((double)s->n * s->hvp.med));
        }
        fprintf(f, "}");
    }
    fprintf(f, "\n  ]\n}\n");
    fclose(f);
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

/* One thread.  OpenBLAS (the peak's, and libhessian's own when it links it)
 * starts its worker threads when it is loaded, and idle workers spin on
 * sched_yield beside the timed thread even after openblas_set_num_threads(1);
 * so unless OPENBLAS_NUM_THREADS=1 is already set, set it and re-execute. */
static void one_thread(char **argv)
{
#ifdef __linux__
    const char *t = getenv("OPENBLAS_NUM_THREADS");
    if (!t || strcmp(t, "1") != 0) {
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        setenv("OMP_NUM_THREADS", "1", 1);
        execv("/proc/self/exe", argv);
        fprintf(stderr, "hessian_bench: could not re-execute with OPENBLAS_NUM_THREADS=1\n");
    }
#endif
#ifdef HESS_BENCH_OPENBLAS
    openblas_set_num_threads(1);
#endif
    (void)argv;
}

/* Which kernels the library's contexts use here (see HESS_NO_SIMD). */
static const char *simd_state(const opts *o)
{
    if (o->ctx_flags & HESS_NO_SIMD)
        return "portable (--no-simd)";
#if HESS_BENCH_SIMD && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
               ? "AVX2+FMA (this CPU has them)"
               : "portable (this CPU lacks AVX2 or FMA)";
#else
    return "portable (built with HESSIAN_SIMD=OFF or not x86-64)";
#endif
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: hessian_bench [--workload W0|W1|W2|all|none] [--repeat N] [--quick] [--no-simd]\n"
        "                     [--op grad|regrad|hvp|rehvp|diag|hessian]\n"
        "                     [--sweep] [--json FILE] [--workloads DIR]\n"
        "  --workload   which peer workload to run (default all; none with --sweep)\n"
        "  --repeat N   exactly N timed repeats per op (default: a time budget)\n"
        "  --quick      short budgets, for a smoke run\n"
        "  --op OP      time only that operation (checks still run); re*: graph built once\n"
        "  --no-peak    skip the matmul peak (for profiling; no %% peak column)\n"
        "  --no-simd    contexts with HESS_NO_SIMD: the portable kernels only\n"
        "  --sweep      also the width and batch sweep of the 64-width-10 MLP\n"
        "  --json FILE  also write the results as JSON\n"
        "  --workloads  directory of W0.ref and W1.ref (default %s)\n",
        HESS_BENCH_WORKLOADS);
}

static void parse_args(int argc, char **argv, opts *o)
{
    *o = (opts){"all", HESS_BENCH_WORKLOADS, NULL, NULL, 0, false, false, false, 0};
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
    const char *ok[] = {"W0", "W1", "W2", "all", "none"},
               *ops[] = {"grad", "regrad", "hvp", "rehvp", "diag", "hessian"};
    bool w_ok = false, op_ok = !o->op;
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++)
        w_ok = w_ok || strcmp(o->workload, ok[k]) == 0;
    for (size_t k = 0; o->op && k < sizeof ops / sizeof ops[0]; k++)
        op_ok = op_ok || strcmp(o->op, ops[k]) == 0;
    if (!w_ok || !op_ok) {
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
    static const char *const all[] = {"W0", "W1", "W2"};
    if (strcmp(o.workload, "none") != 0) {
        print_header();
        for (int i = 0; i < 3; i++)
            if (strcmp(o.workload, "all") == 0 || strcmp(o.workload, all[i]) == 0)
                run_workload(&rep, &o, all[i]);
    }
    if (o.sweep)
        run_sweep(&rep, &o);
    if (o.json)
        write_json(&rep, o.json, cpu, simd_state(&o));
    return 0;
}
