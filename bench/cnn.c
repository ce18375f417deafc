/*
 * cnn.c -- W3, a LeNet-5-sized CNN (bench/README.md), beside PyTorch's
 * (bench/cnn_torch.py, run by run_peers.sh):
 *
 *   x [32,1,28,28] -> conv 1->6 5x5 -> relu -> max_pool 2x2 -> conv 6->16 5x5
 *   -> relu -> max_pool 2x2 -> [32,256] -> linear 120 -> relu -> linear 84
 *   -> relu -> linear 10 -> cross-entropy (mean)           44,426 parameters
 *
 * Weights U(+-1/sqrt(fan_in)) as PyTorch's default init, inputs N(0,1),
 * classes uniform: only the timings depend on them (the ops are checked
 * against PyTorch in tests/test_refs_conv.c).  Checked before any time is
 * printed, as W2 is: central differences along v of the loss against g.v and
 * of the gradient against hess_hvp.  Timed as the MLP workloads are: grad and
 * hvp end to end from the parameters (forward pass, derivative, rewind),
 * regrad and rehvp on graphs built once and evaluated again.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CNN_B      32
#define CNN_PARAMS 10 /* conv1 w, b, conv2 w, b, fc1 W, b, fc2 W, b, fc3 W, b */

/* The parameters' shapes, in PyTorch's order (model.parameters()). */
static const int CNN_ND[CNN_PARAMS] = {4, 1, 4, 1, 2, 1, 2, 1, 2, 1};
static const int64_t CNN_SHAPE[CNN_PARAMS][4] = {
    {6, 1, 5, 5}, {6}, {16, 6, 5, 5}, {16}, {120, 256}, {120}, {84, 120}, {84}, {10, 84}, {10}};
static const int64_t CNN_FAN_IN[CNN_PARAMS] = {25, 25, 150, 150, 256, 256, 120, 120, 84, 84};

typedef struct cnn {
    size_t n; /* 44,426 */
    double *theta, *x, *y, *v;
    double *out; /* n doubles of results */
    hess_context *ctx;
    hess_tensor *p[CNN_PARAMS], *xt, *yt;
    hess_mark mark;
    double loss;
    int64_t nodes;
    hess_tensor *rloss, *rg[CNN_PARAMS], *rv[CNN_PARAMS], *rhv[CNN_PARAMS];
} cnn;

static int64_t numel_of(int i)
{
    int64_t n = 1;
    for (int d = 0; d < CNN_ND[i]; d++)
        n *= CNN_SHAPE[i][d];
    return n;
}

static void die(const cnn *c, const char *what)
{
    fprintf(stderr, "hessian_bench: W3 %s: %s (%s)\n", what,
            hess_status_str(hess_context_status(c->ctx)), hess_context_errmsg(c->ctx));
    exit(1);
}

static void cnn_make(cnn *c, unsigned ctx_flags)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < CNN_PARAMS; i++)
        c->n += (size_t)numel_of(i);
    const size_t nx = (size_t)CNN_B * 28 * 28;
    c->theta = xmalloc(c->n * sizeof(double));
    c->v = xmalloc(c->n * sizeof(double));
    c->out = xmalloc(c->n * sizeof(double));
    c->x = xmalloc(nx * sizeof(double));
    c->y = xmalloc(CNN_B * sizeof(double));
    uint64_t s = 103;
    size_t off = 0;
    for (int i = 0; i < CNN_PARAMS; i++) {
        const double a = 1.0 / sqrt((double)CNN_FAN_IN[i]);
        for (int64_t k = 0; k < numel_of(i); k++)
            c->theta[off++] = a * (2.0 * rng_uniform(&s) - 1.0);
    }
    for (size_t i = 0; i < nx; i++)
        c->x[i] = rng_normal(&s);
    for (int b = 0; b < CNN_B; b++)
        c->y[b] = (double)(rng_next(&s) % 10u);
    for (size_t i = 0; i < c->n; i++)
        c->v[i] = rng_normal(&s);

    if (hess_context_create(&(hess_config){.flags = ctx_flags}, &c->ctx) != HESS_OK) {
        fprintf(stderr, "hessian_bench: cannot create a context\n");
        exit(1);
    }
    off = 0;
    for (int i = 0; i < CNN_PARAMS; i++) {
        c->p[i] = hess_param_new(c->ctx, CNN_ND[i], CNN_SHAPE[i], c->theta + off);
        off += (size_t)numel_of(i);
    }
    c->xt = hess_tensor_new(c->ctx, 4, (const int64_t[]){CNN_B, 1, 28, 28}, c->x);
    c->yt = hess_tensor_new(c->ctx, 1, (const int64_t[]){CNN_B}, c->y);
    if (hess_context_status(c->ctx) != HESS_OK)
        die(c, "setup");
    c->mark = hess_context_mark(c->ctx);
}

static void cnn_free(cnn *c)
{
    hess_context_destroy(c->ctx);
    free(c->theta), free(c->v), free(c->out), free(c->x), free(c->y);
}

/* The loss. */
static hess_tensor *cnn_forward(const cnn *c)
{
    hess_context *ctx = c->ctx;
    hess_tensor *const *p = c->p;
    hess_tensor *h = hess_conv2d(ctx, c->xt, p[0], p[1], NULL);
    h = hess_max_pool2d(ctx, hess_relu(ctx, h), 2, 2, 2, 2);
    h = hess_max_pool2d(ctx, hess_relu(ctx, hess_conv2d(ctx, h, p[2], p[3], NULL)), 2, 2, 2, 2);
    h = hess_reshape(ctx, h, 2, (const int64_t[]){CNN_B, 256});
    h = hess_relu(ctx, hess_linear(ctx, h, p[4], p[5]));
    h = hess_relu(ctx, hess_linear(ctx, h, p[6], p[7]));
    return hess_cross_entropy(ctx, hess_linear(ctx, h, p[8], p[9]), c->yt);
}

static void flat_get(hess_tensor *const t[CNN_PARAMS], double *flat)
{
    for (int i = 0, off = 0; i < CNN_PARAMS; off += (int)numel_of(i), i++)
        memcpy(flat + off, hess_tensor_data(t[i]), (size_t)numel_of(i) * sizeof(double));
}

static void flat_set(cnn *c, hess_tensor *const t[CNN_PARAMS], const double *flat)
{
    for (int i = 0, off = 0; i < CNN_PARAMS; off += (int)numel_of(i), i++)
        if (hess_param_set(c->ctx, t[i], flat + off) != HESS_OK)
            die(c, "hess_param_set");
}

static void end(cnn *c, hess_status st, const char *what)
{
    if (st != HESS_OK || hess_context_status(c->ctx) != HESS_OK)
        die(c, what);
    hess_context_rewind(c->ctx, c->mark);
}

/* ------------------------------------------------------------------------ */
/* The operations                                                           */
/* ------------------------------------------------------------------------ */

/* Loss and gradient (copied to out). */
static void op_grad_cnn(void *arg)
{
    cnn *c = arg;
    hess_tensor *loss = cnn_forward(c), *g[CNN_PARAMS];
    const hess_status st =
        loss ? hess_grad(c->ctx, loss, CNN_PARAMS, c->p, g, 0) : hess_context_status(c->ctx);
    if (st == HESS_OK) {
        c->loss = hess_tensor_data(loss)[0];
        c->nodes = hess_context_mark(c->ctx).nodes - c->mark.nodes;
        flat_get(g, c->out);
    }
    end(c, st, "grad");
}

static void op_hvp_cnn(void *arg)
{
    cnn *c = arg;
    hess_tensor *loss = cnn_forward(c);
    end(c, loss ? hess_hvp(c->ctx, loss, CNN_PARAMS, c->p, c->v, c->out) : HESS_ERR_STATE, "hvp");
}

static void op_regrad_cnn(void *arg)
{
    cnn *c = arg;
    flat_set(c, c->p, c->theta);
    if (hess_recompute(c->ctx) != HESS_OK)
        die(c, "regrad");
}

static void op_rehvp_cnn(void *arg)
{
    cnn *c = arg;
    flat_set(c, c->p, c->theta);
    flat_set(c, c->rv, c->v);
    if (hess_recompute(c->ctx) != HESS_OK)
        die(c, "rehvp");
}

/* The gradient graph built once; checked bit for bit against a fresh one. */
static void regrad_build_cnn(cnn *c)
{
    op_grad_cnn(c);
    double *g = xmalloc(c->n * sizeof(double));
    c->rloss = cnn_forward(c);
    if (!c->rloss || hess_grad(c->ctx, c->rloss, CNN_PARAMS, c->p, c->rg, 0) != HESS_OK)
        die(c, "regrad");
    op_regrad_cnn(c);
    flat_get(c->rg, g);
    if (memcmp(g, c->out, c->n * sizeof(double)) != 0) {
        fprintf(stderr, "hessian_bench: W3 regrad: gradient differs from a fresh build\n");
        exit(1);
    }
    free(g);
}

/* H v as a graph built once (v in parameters); checked against hess_hvp to
 * 1e-12 of its largest magnitude. */
static void rehvp_build_cnn(cnn *c)
{
    op_hvp_cnn(c);
    hess_context *ctx = c->ctx;
    hess_tensor *g[CNN_PARAMS], *s = NULL;
    c->rloss = cnn_forward(c);
    if (!c->rloss || hess_grad(ctx, c->rloss, CNN_PARAMS, c->p, g, HESS_CREATE_GRAPH) != HESS_OK)
        die(c, "rehvp");
    for (int i = 0, off = 0; i < CNN_PARAMS; off += (int)numel_of(i), i++) {
        c->rv[i] = hess_param_new(ctx, CNN_ND[i], CNN_SHAPE[i], c->v + off);
        hess_tensor *t = hess_sum(ctx, hess_mul(ctx, g[i], c->rv[i]));
        s = s ? hess_add(ctx, s, t) : t;
    }
    if (!s || hess_grad(ctx, s, CNN_PARAMS, c->p, c->rhv, 0) != HESS_OK)
        die(c, "rehvp");
    op_rehvp_cnn(c);
    double *hv = xmalloc(c->n * sizeof(double));
    flat_get(c->rhv, hv);
    if (!(rel_err(hv, c->out, c->n) <= 1e-12)) {
        fprintf(stderr, "hessian_bench: W3 rehvp: H v differs from hess_hvp by %.2e\n",
                rel_err(hv, c->out, c->n));
        exit(1);
    }
    free(hv);
}

/* ------------------------------------------------------------------------ */
/* Check and run                                                            */
/* ------------------------------------------------------------------------ */

/* The loss and gradient at theta + h v. */
static double grad_at(cnn *c, double h, double *g)
{
    double *t = xmalloc(c->n * sizeof(double));
    for (size_t i = 0; i < c->n; i++)
        t[i] = c->theta[i] + h * c->v[i];
    flat_set(c, c->p, t);
    op_grad_cnn(c);
    memcpy(g, c->out, c->n * sizeof(double));
    flat_set(c, c->p, c->theta);
    free(t);
    return c->loss;
}

/* Central differences along v: of the loss against g.v, of the gradient
 * against hess_hvp (relu and max_pool are piecewise linear: the step is
 * small enough that no kink is crossed at this point). */
static bool cnn_check(cnn *c)
{
    double vmax = 0.0;
    for (size_t i = 0; i < c->n; i++)
        vmax = fmax(vmax, fabs(c->v[i]));
    const double h = 1e-6 / vmax;
    double *gp = xmalloc(c->n * sizeof(double)), *gm = xmalloc(c->n * sizeof(double));
    double *g = xmalloc(c->n * sizeof(double));
    const double lp = grad_at(c, h, gp), lm = grad_at(c, -h, gm);
    grad_at(c, 0.0, g);
    double gv = 0.0;
    for (size_t i = 0; i < c->n; i++) {
        gv += g[i] * c->v[i];
        gp[i] = (gp[i] - gm[i]) / (2.0 * h);
    }
    op_hvp_cnn(c);
    const double e1 = fabs((lp - lm) / (2.0 * h) - gv) / fmax(fabs(gv), 1e-300);
    const double e2 = rel_err(gp, c->out, c->n);
    const bool ok = e1 <= FD_TOL && e2 <= FD_TOL;
    printf("# W3 check vs central differences along v (rel err, limit %.0e): g.v %.1e, hvp "
           "%.1e  %s\n",
           FD_TOL, e1, e2, ok ? "ok" : "FAILED");
    free(gp), free(gm), free(g);
    return ok;
}

/* Forward FLOPs of the products (multiply-add = 2) and the first layer's. */
static void cnn_flops(double *F, double *f1)
{
    const double B = CNN_B;
    *f1 = 2.0 * B * 6 * 25 * 24 * 24;
    *F = *f1 + 2.0 * B * 16 * 150 * 8 * 8 + 2.0 * B * (256 * 120 + 120 * 84 + 84 * 10);
}

void run_cnn(report *rep, const opts *o)
{
    cnn c;
    cnn_make(&c, o->ctx_flags);
    if (!cnn_check(&c)) {
        fprintf(stderr, "hessian_bench: W3: wrong results, no timings reported\n");
        exit(1);
    }
    double F, f1;
    cnn_flops(&F, &f1);
    const double fgrad = 3 * F - f1, fhvp = 9 * F - 5 * f1;
    const plan p = plan_for(o, false);
    const result *g = NULL;
    if (wanted(o, "grad")) {
        const stats s = time_call(op_grad_cnn, &c, p);
        g = report_row(rep, "W3", c.n, "grad", s, fgrad, c.nodes);
    }
    if (wanted(o, "regrad")) {
        regrad_build_cnn(&c);
        report_row(rep, "W3", c.n, "regrad", time_call(op_regrad_cnn, &c, p), fgrad, 0);
        hess_context_rewind(c.ctx, c.mark);
    }
    if (wanted(o, "hvp"))
        report_row(rep, "W3", c.n, "hvp", time_call(op_hvp_cnn, &c, p), fhvp, 0);
    if (wanted(o, "rehvp")) {
        rehvp_build_cnn(&c);
        report_row(rep, "W3", c.n, "rehvp", time_call(op_rehvp_cnn, &c, p), fhvp, 0);
        hess_context_rewind(c.ctx, c.mark);
    }
    if (g)
        printf("# W3 tape: forward+gradient %lld nodes; grad median %.0f ns per node\n",
               (long long)g->nodes, 1e9 * g->s.med / (double)g->nodes);
    cnn_free(&c);
}
