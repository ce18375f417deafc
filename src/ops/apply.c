/*
 * apply.c -- building a node from its record: the generic builder every
 * simple op's public function is a line over, and the shape rules that most
 * records share.
 */
#include "ops.h"

#include <string.h>

hess_tensor *hess__apply(hess_context *ctx,
                         const hess_op_def *def,
                         hess_tensor *const src[],
                         const hess_op_params *par,
                         const char *fn)
{
    if (!ctx)
        return NULL;
    for (int i = 0; i < def->arity; i++)
        if (hess__check(ctx, src[i], fn) != HESS_OK)
            return NULL;
    int nd = 0;
    int64_t shape[HESS_DIMS];
    if (!def->shape(ctx, src, par, &nd, shape, fn))
        return NULL;
    hess_tensor *t = hess__node(ctx, def, nd, shape, def->arity > 0 ? src[0] : NULL,
                                def->arity > 1 ? src[1] : NULL, fn);
    if (!t)
        return NULL;
    if (def->arity > 2)
        t->src[2] = src[2];
    if (par)
        t->par = *par;
    if (def->prepare && !def->prepare(ctx, t, fn))
        return NULL;
    return hess__finish(ctx, t, fn);
}

hess_tensor *hess__apply2(
    hess_context *ctx, const hess_op_def *def, hess_tensor *a, hess_tensor *b, const char *fn)
{
    hess_tensor *src[2] = {a, b};
    return hess__apply(ctx, def, src, NULL, fn);
}

hess_tensor *hess__apply1(hess_context *ctx,
                          const hess_op_def *def,
                          hess_tensor *a,
                          const hess_op_params *par,
                          const char *fn)
{
    hess_tensor *src[1] = {a};
    return hess__apply(ctx, def, src, par, fn);
}

bool hess__shape_same(hess_context *ctx,
                      hess_tensor *const src[],
                      const hess_op_params *par,
                      int *ndim,
                      int64_t *shape,
                      const char *fn)
{
    (void)ctx, (void)par, (void)fn;
    *ndim = src[0]->ndim;
    memcpy(shape, src[0]->shape, (size_t)src[0]->ndim * sizeof *shape);
    return true;
}

bool hess__shape_bcast(hess_context *ctx,
                       hess_tensor *const src[],
                       const hess_op_params *par,
                       int *ndim,
                       int64_t *shape,
                       const char *fn)
{
    (void)par;
    if (hess__broadcast_shape(src[0], src[1], ndim, shape))
        return true;
    char sa[96], sb[96];
    hess__error(ctx, HESS_ERR_SHAPE, "%s: shapes %s and %s do not broadcast", fn,
                hess__shape_str(sa, src[0]->ndim, src[0]->shape),
                hess__shape_str(sb, src[1]->ndim, src[1]->shape));
    return false;
}

bool hess__shape_scalar(hess_context *ctx,
                        hess_tensor *const src[],
                        const hess_op_params *par,
                        int *ndim,
                        int64_t *shape,
                        const char *fn)
{
    (void)ctx, (void)src, (void)par, (void)shape, (void)fn;
    *ndim = 0;
    return true;
}

/* Normalises a possibly negative axis; records HESS_ERR_ARG when out of range. */
bool hess__norm_axis(hess_context *ctx, const hess_tensor *a, int *axis, const char *fn)
{
    int ax = *axis < 0 ? *axis + a->ndim : *axis;
    if (ax < 0 || ax >= a->ndim) {
        char s[96];
        hess__error(ctx, HESS_ERR_ARG, "%s: axis %d is out of range for %s", fn, *axis,
                    hess__shape_str(s, a->ndim, a->shape));
        return false;
    }
    *axis = ax;
    return true;
}
