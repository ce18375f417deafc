/*
 * replay.c -- "regrad" and "rehvp": the gradient and H v as graphs built once
 * and evaluated again (hess_param_set + hess_recompute) at each repeat, as a
 * tape replay does.  Each builder checks its graph against the operation
 * built afresh (ops.c) and exits on a mismatch; the timing and the table row
 * are workloads.c's.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

/* The gradient of the graph regrad_build made: the parameters are set from
 * theta and the graph evaluated again (hess_recompute), no node made. */
void op_regrad(job *j)
{
    params_set(j, j->p, j->m->theta, "regrad");
    if (hess_recompute(j->ctx) != HESS_OK)
        die_ctx(j, "regrad");
    j->loss = hess_tensor_data(j->rloss)[0];
}

/* H v of the graph rehvp_build made: parameters and direction set, the
 * graph evaluated again. */
void op_rehvp(job *j)
{
    params_set(j, j->p, j->m->theta, "rehvp");
    params_set(j, j->rv, j->m->v, "rehvp");
    if (hess_recompute(j->ctx) != HESS_OK)
        die_ctx(j, "rehvp");
    j->loss = hess_tensor_data(j->rloss)[0];
}

/* Forward + gradient built once (ADOL-C's gradient() replays a taped
 * function the same way).  Checked: bit for bit the gradient built afresh. */
void regrad_build(job *j)
{
    j->keep = true;
    op_grad(j); /* the reference, into out */
    j->keep = false;
    hess_tensor *loss = forward(j);
    if (!loss || hess_grad(j->ctx, loss, N_PARAMS, j->p, j->rg, 0) != HESS_OK)
        die_ctx(j, "regrad");
    j->rloss = loss;
    op_regrad(j);
    double *g = xmalloc(j->m->n * sizeof(double));
    params_get(j->rg, g);
    if (memcmp(g, j->out, j->m->n * sizeof(double)) != 0) {
        fprintf(stderr, "hessian_bench: %s regrad: gradient differs from a fresh build\n",
                j->m->name);
        exit(1);
    }
    free(g);
}

/* H v as a graph built once: g = dL/dθ recorded, s = Σ g·v with v held in
 * parameters, H v = ds/dθ.  Checked against hess_hvp to 1e-12 of its largest
 * magnitude (same values to rounding; the graphs differ, so not bit for bit). */
void rehvp_build(job *j)
{
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
    double *hv = xmalloc(j->m->n * sizeof(double)), err, big;
    params_get(j->rhv, hv);
    err_scale(hv, j->out, j->m->n, &err, &big);
    if (err > 1e-12 * big) {
        fprintf(stderr, "hessian_bench: %s rehvp: differs from hess_hvp by %.3g (max %.3g)\n",
                j->m->name, err, big);
        exit(1);
    }
    free(hv);
}
