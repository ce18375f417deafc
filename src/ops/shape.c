/*
 * shape.c -- reshape, and the shapes of cotangents in a pass: the helpers
 * rules use to sum, repeat, reshape or make zeros shaped like a source's
 * cotangent, which carries the direction dimension [k] in a batched pass.
 */
#include "ops.h"

#include <string.h>

/* ------------------------------------------------------------------------ */
/* reshape                                                                  */
/* ------------------------------------------------------------------------ */

static HESS_JVP(reshape_jvp);

static void reshape_forward(hess_tensor *out)
{
    if (out->data != out->src[0]->data) /* a view needs nothing */
        memcpy(out->data, out->src[0]->data, (size_t)out->numel * sizeof(double));
}

/* d reshape(a) = reshape(g) back to a's shape */
static HESS_VJP(reshape_vjp)
{
    gin[0] = hess__reshape_like(ctx, pass, g, out->src[0]);
}

static const hess_op_def op_reshape = {.name = "reshape",
                                       .formula = "out = a with another shape of equal count",
                                       .arity = 1,
                                       .flags = HESS_OPF_LINEAR | HESS_OPF_REINDEX,
                                       .forward = reshape_forward,
                                       .vjp = reshape_vjp,
                                       .jvp = reshape_jvp,
                                       .rowwise = hess__rowwise_any};

bool hess__shape_is(const hess_tensor *a, int nd, const int64_t *shape)
{
    if (a->ndim != nd)
        return false;
    for (int i = 0; i < nd; i++)
        if (a->shape[i] != shape[i])
            return false;
    return true;
}

/* a's values with shape[nd], nd <= max_dims. */
static hess_tensor *reshape(
    hess_context *ctx, hess_tensor *a, int nd, const int64_t *shape, int max_dims, const char *fn)
{
    if (!ctx || hess__check(ctx, a, fn) || !hess__check_shape(ctx, nd, shape, max_dims, fn))
        return NULL;
    /* the count, stopping past a->numel (dimensions are >= 1 here) */
    int64_t n = 1;
    bool ok = true;
    for (int i = 0; i < nd && ok; i++) {
        ok = hess__mul_within(n, shape[i], a->numel);
        n *= ok ? shape[i] : 1;
    }
    if (!ok || n != a->numel) {
        char sa[96], sb[96];
        hess__error(ctx, HESS_ERR_SHAPE, "%s: cannot turn %s into %s", fn,
                    hess__shape_str(sa, a->ndim, a->shape), hess__shape_str(sb, nd, shape));
        return NULL;
    }
    /* reshape(reshape(x)) back to x's shape is x, when both were made alike
     * (recorded or detached) and x is not a parameter, whose values change */
    if (a->def == &op_reshape && hess__shape_is(a->src[0], nd, shape) &&
        !(a->src[0]->flags & HESS_T_PARAM) &&
        (a->flags & HESS_T_DETACHED) == (a->src[0]->flags & HESS_T_DETACHED))
        return a->src[0];
    /* A reshape shares its source's values, which change in place only when
     * they are evaluated again; a parameter's are set from outside, so a
     * reshaped parameter is a copy that follows them when it is evaluated. */
    hess_tensor *t = a->flags & HESS_T_PARAM ? hess__node(ctx, &op_reshape, nd, shape, a, NULL, fn)
                                             : hess__node_view(ctx, &op_reshape, nd, shape, a, fn);
    return hess__finish(ctx, t, fn);
}

hess_tensor *hess_reshape(hess_context *ctx, hess_tensor *a, int ndim, const int64_t *shape)
{
    return reshape(ctx, a, ndim, shape, HESS_MAX_DIMS, "hess_reshape");
}

hess_tensor *hess__reshape_any(hess_context *ctx, hess_tensor *a, int nd, const int64_t *shape)
{
    if (!a || hess__shape_is(a, nd, shape))
        return a;
    return reshape(ctx, a, nd, shape, HESS_DIMS, "hess_reshape");
}

/* ------------------------------------------------------------------------ */
/* Shapes of cotangents                                                     */
/* ------------------------------------------------------------------------ */

/* The shape a cotangent of `like` has in the pass: like's shape, behind the
 * direction dimension [k] while a batched pass runs (pass->k > 0). */
static int cot_shape(const hess_pass *pass, const hess_tensor *like, int64_t *shape)
{
    int nd = 0;
    if (pass->k)
        shape[nd++] = pass->k;
    for (int i = 0; i < like->ndim; i++)
        shape[nd++] = like->shape[i];
    return nd;
}

/* Whether a already has that shape (the common case, checked without a copy). */
static bool is_cot_shape(const hess_pass *pass, const hess_tensor *a, const hess_tensor *like)
{
    const int off = pass->k ? 1 : 0;
    if (a->ndim != like->ndim + off || (off && a->shape[0] != pass->k))
        return false;
    for (int i = 0; i < like->ndim; i++)
        if (a->shape[off + i] != like->shape[i])
            return false;
    return true;
}

/* [k, 1, ..., 1, s...]: the batched tensor a of rank 1 + r padded with ones to
 * rank 1 + rank, so that NumPy alignment pairs its dims with like's, not k. */
static int padded_shape(const hess_tensor *a, int rank, int64_t *shape)
{
    int nd = 0, pad = rank - (a->ndim - 1);
    shape[nd++] = a->shape[0];
    for (int i = 0; i < pad; i++)
        shape[nd++] = 1;
    for (int i = 1; i < a->ndim; i++)
        shape[nd++] = a->shape[i];
    return nd;
}

hess_tensor *
hess__sum_like(hess_context *ctx, const hess_pass *pass, hess_tensor *a, const hess_tensor *like)
{
    if (!a || is_cot_shape(pass, a, like))
        return a;
    int64_t to[HESS_DIMS];
    const int nd = cot_shape(pass, like, to);
    if (!pass->k)
        return hess__sum_to(ctx, a, nd, to);
    /* sum [k, X...] to [k, 1.., like...], then drop the padding */
    int64_t keep[HESS_DIMS];
    int nk = 0, pad = (a->ndim - 1) - like->ndim;
    keep[nk++] = pass->k;
    for (int i = 0; i < pad; i++)
        keep[nk++] = 1;
    for (int i = 0; i < like->ndim; i++)
        keep[nk++] = like->shape[i];
    return hess__reshape_any(ctx, hess__sum_to(ctx, a, nk, keep), nd, to);
}

hess_tensor *hess__broadcast_like(hess_context *ctx,
                                  const hess_pass *pass,
                                  hess_tensor *a,
                                  const hess_tensor *like)
{
    if (!a || is_cot_shape(pass, a, like))
        return a;
    int64_t to[HESS_DIMS];
    const int nd = cot_shape(pass, like, to);
    if (pass->k) {
        int64_t pad[HESS_DIMS];
        int np = padded_shape(a, like->ndim, pad);
        a = hess__reshape_any(ctx, a, np, pad);
    }
    return hess__broadcast_to(ctx, a, nd, to);
}

hess_tensor *hess__reshape_like(hess_context *ctx,
                                const hess_pass *pass,
                                hess_tensor *a,
                                const hess_tensor *like)
{
    int64_t to[HESS_DIMS];
    const int nd = a ? cot_shape(pass, like, to) : 0;
    return hess__reshape_any(ctx, a, nd, to);
}

hess_tensor *hess__zeros_like(hess_context *ctx, const hess_pass *pass, const hess_tensor *like)
{
    int64_t to[HESS_DIMS];
    const int nd = cot_shape(pass, like, to);
    hess_tensor *t = hess__leaf(ctx, nd, to, 0u, "hess_grad");
    if (t) {
        memset(t->data, 0, (size_t)t->numel * sizeof(double));
        t->par.leaf.nz_chunks = 0;
    }
    return t;
}

bool hess__rowwise_any(const hess_tensor *out, int i)
{
    (void)out, (void)i;
    return true;
}

bool hess__rowwise_same_rank(const hess_tensor *out, int i)
{
    return out->src[i]->ndim == out->ndim;
}

hess_tensor *
hess__lift(hess_context *ctx, const hess_pass *pass, hess_tensor *t, const hess_tensor *out)
{
    return t ? hess__broadcast_like(ctx, pass, t, out) : NULL;
}

hess_tensor *hess__add_or(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return !a ? b : !b ? a : hess_add(ctx, a, b);
}

/* d reshape(a) = reshape(da) */
static HESS_JVP(reshape_jvp)
{
    return tin[0] ? hess__reshape_like(ctx, pass, tin[0], out) : NULL;
}

static const hess_op_def *const shape_ops[] = {&op_reshape};
const hess__op_family hess__shape_family = {shape_ops, sizeof shape_ops / sizeof shape_ops[0]};
