/*
 * curv.c -- what the curvature rules of the records share (the exact
 * diagonal by backpropagation, hessian/diag.c): the per-sample diagonal of a
 * factored Hessian.
 */
#include "ops.h"

hess_tensor *hess__factor_sq(hess_context *ctx, const hess_factor *f, const hess_tensor *out)
{
    hess_tensor *q = f->D;
    for (size_t g = 0; g < f->n; g++) {
        hess_tensor *F = f->F[g];
        hess_tensor *s = hess__sum_to(ctx, hess_mul(ctx, F, F), out->ndim, out->shape);
        if (f->sign[g] < 0)
            s = hess_neg(ctx, s);
        q = q ? hess_add(ctx, q, s) : s;
    }
    return q;
}
