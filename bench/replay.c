/*
 * replay.c -- "regrad" and "rehvp": the gradient and H v as graphs built once
 * and evaluated again (hess_param_set + hess_recompute) at each repeat, each
 * checked against the operation built afresh (ops.c) before it is timed.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* "regrad": forward + gradient built once, then timed as parameters set +
 * hess_recompute -- what a tape replay does (ADOL-C's gradient() replays a
 * taped function).  Checked first: bit for bit the gradient built afresh. */
void bench_regrad(report *rep, const opts *o, job *j, double flops)
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
void bench_rehvp(report *rep, const opts *o, job *j, double flops)
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
