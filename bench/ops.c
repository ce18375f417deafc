/*
 * ops.c -- a model bound to a context (job) and the operations timed end to
 * end from the parameters: build the forward pass, compute, rewind to the
 * mark.  The operations on a graph built once are in replay.c.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

/* Exits with the context's status and message. */
void die_ctx(const job *j, const char *what)
{
    fprintf(stderr, "hessian_bench: %s %s: %s (%s)\n", j->m->name, what,
            hess_status_str(hess_context_status(j->ctx)), hess_context_errmsg(j->ctx));
    exit(1);
}

/* A context for m with its parameters and data as leaves, the mark after them,
 * and out_len doubles of results. */
void job_bind(job *j, const model *m, size_t out_len, unsigned ctx_flags)
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

void job_free(job *j)
{
    hess_context_destroy(j->ctx);
    free(j->out);
}

/* Sets the N_PARAMS tensors t (the parameters, or tensors shaped like them)
 * from one flat vector, in the order W1, b1, W2, b2. */
void params_set(job *j, hess_tensor *const t[N_PARAMS], const double *flat, const char *what)
{
    size_t off = 0;
    for (int i = 0; i < N_PARAMS; i++) {
        if (hess_param_set(j->ctx, t[i], flat + off) != HESS_OK)
            die_ctx(j, what);
        off += (size_t)hess_tensor_numel(t[i]);
    }
}

/* Copies the values of N_PARAMS tensors into one flat vector (the inverse). */
void params_get(hess_tensor *const t[N_PARAMS], double *flat)
{
    size_t off = 0;
    for (int i = 0; i < N_PARAMS; i++) {
        const size_t len = (size_t)hess_tensor_numel(t[i]);
        memcpy(flat + off, hess_tensor_data(t[i]), len * sizeof(double));
        off += len;
    }
}

/* The loss: Linear -> [tanh] -> Linear -> MSE or cross-entropy. */
hess_tensor *forward(const job *j)
{
    hess_context *ctx = j->ctx;
    hess_tensor *h = hess_linear(ctx, j->x, j->p[0], j->p[1]);
    if (j->m->tanh_hidden)
        h = hess_tanh(ctx, h);
    hess_tensor *o = hess_linear(ctx, h, j->p[2], j->p[3]);
    return j->m->ce ? hess_cross_entropy(ctx, o, j->y) : hess_mse_loss(ctx, o, j->y);
}

/* Ends an operation: exits on error, else rewinds to the mark. */
void op_end(job *j, hess_status st, const char *what)
{
    if (st != HESS_OK || hess_context_status(j->ctx) != HESS_OK)
        die_ctx(j, what);
    hess_context_rewind(j->ctx, j->mark);
}

/* Loss and gradient; the loss and the node count kept, the gradient copied to
 * out when j->keep (the checks). */
void op_grad(job *j)
{
    hess_tensor *loss = forward(j), *g[N_PARAMS];
    hess_status st = loss ? hess_grad(j->ctx, loss, N_PARAMS, j->p, g, 0) : HESS_ERR_STATE;
    if (st == HESS_OK) {
        j->loss = hess_tensor_data(loss)[0];
        j->nodes = hess_context_mark(j->ctx).nodes - j->mark.nodes;
        if (j->keep)
            params_get(g, j->out);
    }
    op_end(j, st, "grad");
}

void op_hvp(job *j)
{
    hess_tensor *loss = forward(j);
    op_end(j, loss ? hess_hvp(j->ctx, loss, N_PARAMS, j->p, j->m->v, j->out) : HESS_ERR_STATE,
           "hvp");
}

void op_diag(job *j)
{
    hess_tensor *loss = forward(j);
    op_end(j, loss ? hess_hessian_diag(j->ctx, loss, N_PARAMS, j->p, j->out) : HESS_ERR_STATE,
           "diag");
}

void op_hessian(job *j)
{
    hess_tensor *loss = forward(j);
    op_end(j, loss ? hess_hessian(j->ctx, loss, N_PARAMS, j->p, j->out) : HESS_ERR_STATE,
           "hessian");
}

/* The full Hessian through hess_hessian_ex with block_rows = j->k. */
void op_hessian_k(job *j)
{
    const hess_hessian_opts opt = {.block_rows = j->k};
    hess_tensor *loss = forward(j);
    op_end(j, loss ? hess_hessian_ex(j->ctx, loss, N_PARAMS, j->p, &opt, j->out) : HESS_ERR_STATE,
           "hessian_ex");
}
