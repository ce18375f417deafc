/*
 * tensor.c -- leaves (constants, inputs, parameters), accessors and the
 * in-place parameter update.  Op results are made in the op files.
 */
#include "hess_internal.h"

#include <string.h>

static hess_tensor *leaf_new(hess_context *ctx,
                             int ndim,
                             const int64_t *shape,
                             const double *data,
                             unsigned flags,
                             const char *fn)
{
    if (!ctx || !hess__check_shape(ctx, ndim, shape, HESS_MAX_DIMS, fn))
        return NULL;
    hess_tensor *t = hess__node(ctx, HESS_OP_NONE, ndim, shape, NULL, NULL, fn);
    if (!t)
        return NULL;
    t->flags = (uint8_t)flags;
    if (data)
        memcpy(t->data, data, (size_t)t->numel * sizeof(double));
    else
        memset(t->data, 0, (size_t)t->numel * sizeof(double));
    return t;
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

hess_status hess_param_set(hess_context *ctx, hess_tensor *param, const double *data)
{
    static const char fn[] = "hess_param_set";
    if (!ctx)
        return HESS_ERR_ARG;
    hess_status st = hess__check(ctx, param, fn);
    if (st != HESS_OK)
        return st;
    if (!data) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL data", fn);
        return HESS_ERR_ARG;
    }
    if (!(param->flags & HESS_T_PARAM)) {
        hess__error(ctx, HESS_ERR_ARG, "%s: tensor is not a parameter", fn);
        return HESS_ERR_ARG;
    }
    memmove(param->data, data, (size_t)param->numel * sizeof(double));
    param->flags &= ~HESS_T_DENSE;
    return HESS_OK;
}
