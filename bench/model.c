/*
 * model.c -- the benchmarked model, Linear(in,hidden) -> [tanh] ->
 * Linear(hidden,out) -> MSE or cross-entropy: its parameters and data (from a
 * peer workload file or random), its matmul FLOP counts, and the workloads
 * W0, W1, W2.  Binding a model to a context is in ops.c.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* The model                                                                */
/* ------------------------------------------------------------------------ */

/* The parameters' shapes and ranks: W1 [hidden,in], b1 [hidden], W2
 * [out,hidden], b2 [out]. */
void model_shapes(const model *m, int64_t shapes[N_PARAMS][2], int ndims[N_PARAMS])
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

void model_free(model *m)
{
    free(m->theta);
    free(m->v);
    free(m->x);
    free(m->y);
}

/* Random weights with PyTorch's nn.Linear scales, U(-1/sqrt(fan_in), +), and
 * N(0,1) inputs, targets and direction: only the timing depends on them. */
void model_random(model *m, uint64_t seed)
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
int ref_cat(const ref_case *rc, const char *prefix, const model *m, double *out)
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
flop_model flops_of(const model *m)
{
    const double f1 = 2.0 * (double)(m->batch * m->in * m->hidden);
    const double F = f1 + 2.0 * (double)(m->batch * m->hidden * m->out);
    const flop_model r = {F, 3 * F - f1, 9 * F - 5 * f1,
                          (double)m->n * (6 * F - 4 * f1) + 3 * F - f1};
    return r;
}

/* ------------------------------------------------------------------------ */
/* The workloads and the sweep's model                                      */
/* ------------------------------------------------------------------------ */

/* W0 and W1 from the peers' files in o->dir (into rc, kept for the checks);
 * W2 Linear(784,128) -> tanh -> Linear(128,10), cross-entropy, batch 64, random. */
void load_workload(model *m, const opts *o, const char *name, ref_case *rc)
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

/* The sweeps' MLP: Linear(64,width) -> tanh -> Linear(width,10), MSE, on
 * random data with a fixed seed per (width, batch). */
void sweep_model(model *m, int64_t width, int64_t batch)
{
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "w%lld-b%lld", (long long)width, (long long)batch);
    m->in = 64, m->hidden = width, m->out = 10, m->batch = batch;
    m->batched = m->tanh_hidden = true;
    model_random(m, 1000 + (uint64_t)width * 7919u + (uint64_t)batch);
}
