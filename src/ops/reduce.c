/*
 * reduce.c -- reductions composed from sum_to, reshape and affine, which need
 * no rule of their own: sum, mean, sum_axis, mean_axis.
 */
#include "ops.h"

/* ------------------------------------------------------------------------ */
/* Reductions composed from sum_to and reshape                              */
/* ------------------------------------------------------------------------ */

static hess_tensor *sum_impl(hess_context *ctx, hess_tensor *a)
{
    if (!ctx || hess__check(ctx, a, "hess_sum"))
        return NULL;
    return hess_sum_to(ctx, a, 0, NULL);
}

static hess_tensor *mean_impl(hess_context *ctx, hess_tensor *a)
{
    if (!ctx || hess__check(ctx, a, "hess_mean"))
        return NULL;
    return hess_scale(ctx, hess_sum_to(ctx, a, 0, NULL), 1.0 / (double)a->numel);
}

static hess_tensor *sum_axis(hess_context *ctx, hess_tensor *a, int axis, bool mean, const char *fn)
{
    if (!ctx || hess__check(ctx, a, fn) || !hess__norm_axis(ctx, a, &axis, fn))
        return NULL;
    int64_t keep[HESS_DIMS], drop[HESS_DIMS];
    int nd = 0;
    for (int i = 0; i < a->ndim; i++) {
        keep[i] = i == axis ? 1 : a->shape[i];
        if (i != axis)
            drop[nd++] = a->shape[i];
    }
    hess_tensor *s = hess_reshape(ctx, hess_sum_to(ctx, a, a->ndim, keep), nd, drop);
    return mean ? hess_scale(ctx, s, 1.0 / (double)a->shape[axis]) : s;
}

static hess_tensor *sum_axis_impl(hess_context *ctx, hess_tensor *a, int axis)
{
    return sum_axis(ctx, a, axis, false, "hess_sum_axis");
}

static hess_tensor *mean_axis_impl(hess_context *ctx, hess_tensor *a, int axis)
{
    return sum_axis(ctx, a, axis, true, "hess_mean_axis");
}

/* ------------------------------------------------------------------------ */
/* Public entry points: errors from the ops they build name the function  */
/* the caller called.                                                       */
/* ------------------------------------------------------------------------ */

hess_tensor *hess_sum(hess_context *ctx, hess_tensor *a)
{
    const char *saved = hess__api_enter(ctx, "hess_sum");
    return hess__api_leave(ctx, saved, sum_impl(ctx, a));
}

hess_tensor *hess_mean(hess_context *ctx, hess_tensor *a)
{
    const char *saved = hess__api_enter(ctx, "hess_mean");
    return hess__api_leave(ctx, saved, mean_impl(ctx, a));
}

hess_tensor *hess_sum_axis(hess_context *ctx, hess_tensor *a, int axis)
{
    const char *saved = hess__api_enter(ctx, "hess_sum_axis");
    return hess__api_leave(ctx, saved, sum_axis_impl(ctx, a, axis));
}

hess_tensor *hess_mean_axis(hess_context *ctx, hess_tensor *a, int axis)
{
    const char *saved = hess__api_enter(ctx, "hess_mean_axis");
    return hess__api_leave(ctx, saved, mean_axis_impl(ctx, a, axis));
}
