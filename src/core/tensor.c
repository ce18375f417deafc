/*
 * tensor.c -- leaves (constants, inputs, parameters) and their record,
 * accessors, and writing a leaf's values: one leaf (hess_tensor_set) or a
 * flat vector over a list (hess_params_*).  Op results are made by the ops.
 */
#include "core.h"

#include <string.h>

const hess_op_def hess__op_leaf = {.name = "leaf", .formula = "a leaf: values set from outside"};

hess_tensor *
hess__leaf(hess_context *ctx, int ndim, const int64_t *shape, unsigned flags, const char *fn)
{
    hess_tensor *t = hess__node(ctx, &hess__op_leaf, ndim, shape, NULL, NULL, fn);
    if (t) {
        t->flags = (uint8_t)flags;
        t->par.leaf.nz_chunks = -1; /* not counted until the values are known */
    }
    return t;
}

static hess_tensor *leaf_new(hess_context *ctx,
                             int ndim,
                             const int64_t *shape,
                             const double *data,
                             unsigned flags,
                             const char *fn)
{
    if (!ctx || !hess__check_shape(ctx, ndim, shape, HESS_MAX_DIMS, fn))
        return NULL;
    hess_tensor *t = hess__leaf(ctx, ndim, shape, flags, fn);
    if (!t)
        return NULL;
    if (data) {
        memcpy(t->data, data, (size_t)t->numel * sizeof(double));
        hess__leaf_scan(t);
    } else {
        memset(t->data, 0, (size_t)t->numel * sizeof(double));
        t->par.leaf.nz_chunks = 0;
    }
    return t;
}

hess_tensor *hess__const_new(
    hess_context *ctx, int ndim, const int64_t *shape, const double *data, const char *fn)
{
    return leaf_new(ctx, ndim, shape, data, 0, fn);
}

hess_tensor *hess_tensor_new(hess_context *ctx, int ndim, const int64_t *shape, const double *data)
{
    return leaf_new(ctx, ndim, shape, data, 0, "hess_tensor_new");
}

hess_tensor *hess_param_new(hess_context *ctx, int ndim, const int64_t *shape, const double *data)
{
    return leaf_new(ctx, ndim, shape, data, HESS_T_PARAM, "hess_param_new");
}

hess_tensor *hess_scalar(hess_context *ctx, double value)
{
    return leaf_new(ctx, 0, NULL, &value, 0, "hess_scalar");
}

int hess_tensor_ndim(const hess_tensor *t)
{
    return t ? t->ndim : -1;
}

const int64_t *hess_tensor_shape(const hess_tensor *t)
{
    return t ? t->shape : NULL;
}

int64_t hess_tensor_numel(const hess_tensor *t)
{
    return t ? t->numel : 0;
}

const double *hess_tensor_data(const hess_tensor *t)
{
    return t ? t->data : NULL;
}

int hess_tensor_is_param(const hess_tensor *t)
{
    return t && (t->flags & HESS_T_PARAM) ? 1 : 0;
}

/* Asks every op built on the leaf whether it takes these values (a leaf
 * flagged HESS_T_CHECKED has one that checks). */
static hess_status
check_users(hess_context *ctx, const hess_tensor *leaf, const double *data, const char *fn)
{
    if (!(leaf->flags & HESS_T_CHECKED))
        return HESS_OK;
    for (int64_t id = leaf->id + 1; id < ctx->n_nodes; id++) {
        const hess_tensor *t = ctx->nodes[id];
        const hess_op_def *def = t->def;
        for (int k = 0; k < HESS_MAX_SRC && def->check_src; k++)
            if (t->src[k] == leaf) {
                hess_status st = def->check_src(ctx, t, k, data, fn);
                if (st != HESS_OK)
                    return st;
            }
    }
    return HESS_OK;
}

static hess_status
leaf_set(hess_context *ctx, hess_tensor *leaf, const double *data, bool params_only, const char *fn)
{
    if (!ctx)
        return HESS_ERR_ARG;
    if (ctx->busy) /* a pending error does not stop a setter: it builds nothing */
        return hess__busy(ctx, fn);
    hess_status st = hess__check(ctx, leaf, fn);
    if (st != HESS_OK)
        return st;
    if (!data) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL data", fn);
        return HESS_ERR_ARG;
    }
    if (params_only && !(leaf->flags & HESS_T_PARAM)) {
        hess__error(ctx, HESS_ERR_ARG, "%s: tensor is not a parameter", fn);
        return HESS_ERR_ARG;
    }
    if (!hess__is_leaf(leaf)) {
        hess__error(ctx, HESS_ERR_ARG,
                    "%s: tensor is the result of %s, not a leaf; only leaves (made by "
                    "hess_tensor_new, hess_param_new, hess_scalar or a loader) can be set",
                    fn, leaf->def->name);
        return HESS_ERR_ARG;
    }
    if ((st = check_users(ctx, leaf, data, fn)) != HESS_OK)
        return st;
    memmove(leaf->data, data, (size_t)leaf->numel * sizeof(double));
    hess__leaf_scan(leaf);
    hess__touch(ctx, leaf, true);
    return HESS_OK;
}

hess_status hess_tensor_set(hess_context *ctx, hess_tensor *leaf, const double *data)
{
    return leaf_set(ctx, leaf, data, false, "hess_tensor_set");
}

hess_status hess_param_set(hess_context *ctx, hess_tensor *param, const double *data)
{
    return leaf_set(ctx, param, data, true, "hess_param_set");
}

/* ------------------------------------------------------------------------ */
/* Flat parameter vectors                                                   */
/* ------------------------------------------------------------------------ */

size_t hess_param_count(size_t n, hess_tensor *const params[])
{
    if (!params)
        return 0;
    size_t N = 0;
    for (size_t i = 0; i < n; i++) {
        if (!params[i])
            return 0;
        N += (size_t)params[i]->numel;
    }
    return N;
}

/* The list is one of ctx's live tensors, each once; leaves only if `leaves`. */
static hess_status
check_flat(hess_context *ctx, size_t n, hess_tensor *const p[], bool leaves, const char *fn)
{
    hess_status st = hess__check_list(ctx, n, p, "params", fn);
    for (size_t i = 0; i < n && st == HESS_OK && leaves; i++)
        if (!hess__is_leaf(p[i])) {
            hess__error(ctx, HESS_ERR_ARG, "%s: params[%zu] is the result of %s, not a leaf", fn, i,
                        p[i]->def->name);
            st = HESS_ERR_ARG;
        }
    return st;
}

hess_status hess_params_get(size_t n, hess_tensor *const params[], double *flat)
{
    static const char fn[] = "hess_params_get";
    hess_context *ctx =
        params && n && params[0] && params[0]->magic == HESS_TENSOR_MAGIC ? params[0]->ctx : NULL;
    if (!ctx)
        return HESS_ERR_ARG; /* no context to record a message in */
    hess_status st = hess__enter(ctx, fn);
    if (st != HESS_OK || (st = check_flat(ctx, n, params, false, fn)) != HESS_OK)
        return st;
    if (!flat) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL flat", fn);
        return HESS_ERR_ARG;
    }
    if ((st = hess__refresh(ctx, n, params, fn)) != HESS_OK)
        return st;
    for (size_t i = 0; i < n; flat += params[i]->numel, i++)
        memcpy(flat, params[i]->data, (size_t)params[i]->numel * sizeof *flat);
    return HESS_OK;
}

/* params = flat, or params += alpha * flat when axpy: every leaf checked
 * before any is written. */
static hess_status flat_set(hess_context *ctx,
                            size_t n,
                            hess_tensor *const params[],
                            bool axpy,
                            double alpha,
                            const double *flat,
                            const char *fn)
{
    if (!ctx)
        return HESS_ERR_ARG;
    if (ctx->busy) /* as hess_tensor_set: a pending error does not stop a setter */
        return hess__busy(ctx, fn);
    hess_status st = check_flat(ctx, n, params, true, fn);
    if (st != HESS_OK)
        return st;
    if (!flat) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL %s", fn, axpy ? "d" : "flat");
        return HESS_ERR_ARG;
    }
    const hess_mark mk = hess__mark(ctx);
    const size_t N = hess_param_count(n, params);
    double *v = axpy ? hess__alloc(ctx, N * sizeof *v, fn) : NULL;
    if (axpy && !v)
        return ctx->status;
    for (size_t i = 0, off = 0; axpy && i < n; off += (size_t)params[i]->numel, i++)
        for (int64_t j = 0; j < params[i]->numel; j++)
            v[off + (size_t)j] = params[i]->data[j] + alpha * flat[off + (size_t)j];
    const double *src = axpy ? v : flat;
    for (size_t i = 0, off = 0; i < n && st == HESS_OK; off += (size_t)params[i]->numel, i++)
        st = check_users(ctx, params[i], src + off, fn);
    for (size_t i = 0, off = 0; i < n && st == HESS_OK; off += (size_t)params[i]->numel, i++) {
        memmove(params[i]->data, src + off, (size_t)params[i]->numel * sizeof *src);
        hess__leaf_scan(params[i]);
        hess__touch(ctx, params[i], true);
    }
    hess__rewind(ctx, &mk);
    return st;
}

hess_status
hess_params_set(hess_context *ctx, size_t n, hess_tensor *const params[], const double *flat)
{
    return flat_set(ctx, n, params, false, 0.0, flat, "hess_params_set");
}

hess_status hess_params_axpy(
    hess_context *ctx, size_t n, hess_tensor *const params[], double alpha, const double *d)
{
    return flat_set(ctx, n, params, true, alpha, d, "hess_params_axpy");
}
