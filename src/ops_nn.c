/*
 * ops_nn.c -- log_softmax (a primitive, for the stable log-sum-exp) and
 * mse_loss (a primitive: one node for the loss that ends most regressions),
 * and the ops composed from primitives, which need no backward rule of their
 * own: sum, mean, softmax, linear (one MATMUL or LINEAR node, ops_linalg.c),
 * and the other losses.  Legend: B batch, C classes, axis split as
 * [outer, n, inner].
 */
#include "hess_internal.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* log_softmax                                                              */
/* ------------------------------------------------------------------------ */

static void axis_split(const hess_tensor *t, int axis, int64_t *outer, int64_t *n, int64_t *inner)
{
    *outer = hess__numel(axis, t->shape);
    *n = t->shape[axis];
    *inner = hess__numel(t->ndim - axis - 1, t->shape + axis + 1);
}

/* out = a - max - log(sum(exp(a - max))) along the axis */
static void log_softmax_forward(hess_tensor *out)
{
    int64_t outer, n, inner;
    axis_split(out, out->axis, &outer, &n, &inner);
    const double *x = out->src[0]->data;
    double *y = out->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const double *xr = x + o * n * inner + i;
            double *yr = y + o * n * inner + i;
            double mx = xr[0];
            for (int64_t j = 1; j < n; j++)
                mx = xr[j * inner] > mx ? xr[j * inner] : mx;
            double s = 0.0;
            for (int64_t j = 0; j < n; j++)
                s += exp(xr[j * inner] - mx);
            /* (x - max) - log s is exact where x - (max + log s) loses digits */
            const double ls = log(s);
            for (int64_t j = 0; j < n; j++)
                yr[j * inner] = (xr[j * inner] - mx) - ls;
        }
}

/* d out = da - softmax * sum(da, axis):  gin = g - exp(out) * sum(g, axis, keepdim) */
static void
log_softmax_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    /* g may carry a leading direction dim: count the axis from the end */
    int64_t keep[HESS_DIMS];
    memcpy(keep, g->shape, (size_t)g->ndim * sizeof *keep);
    keep[g->ndim - (out->ndim - out->axis)] = 1;
    hess_tensor *sg = hess_sum_to(ctx, g, g->ndim, keep);
    gin[0] = hess_sub(ctx, g, hess_mul(ctx, hess_exp(ctx, out), sg));
}

const hess_op_def hess__op_log_softmax = {"log_softmax", 1, log_softmax_forward,
                                          log_softmax_backward};

/* ------------------------------------------------------------------------ */
/* mse_loss                                                                 */
/* ------------------------------------------------------------------------ */

/* out = alpha sum((a - b)^2), alpha = p[0] = 1/numel: the same sum, in the
 * same order, as mean(square(a - b)), so the same bits.  A primitive because
 * the composite is four nodes, and its gradient four more, where the loss of
 * a small model is most of its graph: one node here took the W0 gradient
 * graph from 16 to 12 nodes (callgrind per call: gradient 9.10K -> 7.66K
 * instructions, HVP 21.9K -> 20.2K). */
static void mse_forward(hess_tensor *out)
{
    const hess_tensor *a = out->src[0], *b = out->src[1];
    double s = 0.0;
    for (int64_t i = 0; i < a->numel; i++) {
        const double d = a->data[i] - b->data[i];
        s += d * d;
    }
    out->data[0] = s * out->p[0];
}

/* da = g 2 alpha (a - b), db = -da.  The factor 2 alpha (a - b) is formed
 * before it meets the cotangent, so a Hessian sweep replays only the last
 * product.  A batched g ([K] during a batched pass) meets it as [K, 1, ...]. */
static void mse_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    hess_tensor *a = out->src[0], *b = out->src[1];
    hess_tensor *c = hess__affine(ctx, hess_sub(ctx, a, b), 2.0 * out->p[0], 0.0);
    if (g->ndim > 0) {
        int64_t shape[HESS_DIMS];
        shape[0] = g->shape[0];
        for (int i = 0; i < a->ndim; i++)
            shape[1 + i] = 1;
        g = hess_reshape(ctx, g, a->ndim + 1, shape);
    }
    hess_tensor *da = hess_mul(ctx, g, c);
    if (HESS_NEED(ctx, 0))
        gin[0] = hess__sum_like(ctx, da, a);
    if (HESS_NEED(ctx, 1))
        gin[1] = hess__sum_like(ctx, hess_neg(ctx, da), b);
}

const hess_op_def hess__op_mse_loss = {"mse_loss", 2, mse_forward, mse_backward};

/* Normalises a possibly negative axis; records HESS_ERR_ARG when out of range. */
static bool norm_axis(hess_context *ctx, const hess_tensor *a, int *axis, const char *fn)
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

hess_tensor *hess_log_softmax(hess_context *ctx, hess_tensor *a, int axis)
{
    static const char fn[] = "hess_log_softmax";
    if (!ctx || hess__check(ctx, a, fn) || !norm_axis(ctx, a, &axis, fn))
        return NULL;
    hess_tensor *t = hess__node(ctx, HESS_OP_LOG_SOFTMAX, a->ndim, a->shape, a, NULL, fn);
    if (!t)
        return NULL;
    t->axis = (int8_t)axis;
    return hess__finish(ctx, t, fn);
}

static hess_tensor *softmax_impl(hess_context *ctx, hess_tensor *a, int axis)
{
    return hess_exp(ctx, hess_log_softmax(ctx, a, axis));
}

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
    if (!ctx || hess__check(ctx, a, fn) || !norm_axis(ctx, a, &axis, fn))
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
/* Layers and losses                                                        */
/* ------------------------------------------------------------------------ */

static hess_tensor *linear_impl(hess_context *ctx, hess_tensor *x, hess_tensor *W, hess_tensor *b)
{
    static const char fn[] = "hess_linear";
    if (!ctx || hess__check(ctx, x, fn) || hess__check(ctx, W, fn) ||
        (b && hess__check(ctx, b, fn)))
        return NULL;
    char sx[96], sw[96], sb[96];
    if (W->ndim != 2 || (x->ndim != 1 && x->ndim != 2) || x->shape[x->ndim - 1] != W->shape[1]) {
        hess__error(ctx, HESS_ERR_SHAPE,
                    "%s: x %s does not fit W %s (x [in] or [B,in], W [out,in])", fn,
                    hess__shape_str(sx, x->ndim, x->shape), hess__shape_str(sw, W->ndim, W->shape));
        return NULL;
    }
    if (b && (b->ndim != 1 || b->shape[0] != W->shape[0])) {
        hess__error(ctx, HESS_ERR_SHAPE, "%s: b %s does not fit W %s (b [out])", fn,
                    hess__shape_str(sb, b->ndim, b->shape), hess__shape_str(sw, W->ndim, W->shape));
        return NULL;
    }
    /* one node: [B,in] x [out,in]^T or [out,in] x [in], + b on every row */
    if (x->ndim == 2)
        return b ? hess__linear_t(ctx, x, W, false, true, b, fn)
                 : hess__matmul_t(ctx, x, W, false, true, fn);
    return b ? hess__linear_t(ctx, W, x, false, false, b, fn)
             : hess__matmul_t(ctx, W, x, false, false, fn);
}

static bool
same_shape_or_fail(hess_context *ctx, const hess_tensor *a, const hess_tensor *b, const char *fn)
{
    if (hess__same_shape(a, b))
        return true;
    char sa[96], sb[96];
    hess__error(ctx, HESS_ERR_SHAPE, "%s: input %s and target %s differ in shape", fn,
                hess__shape_str(sa, a->ndim, a->shape), hess__shape_str(sb, b->ndim, b->shape));
    return false;
}

static hess_tensor *mse_loss_impl(hess_context *ctx, hess_tensor *pred, hess_tensor *target)
{
    static const char fn[] = "hess_mse_loss";
    if (!ctx || hess__check(ctx, pred, fn) || hess__check(ctx, target, fn) ||
        !same_shape_or_fail(ctx, pred, target, fn))
        return NULL;
    hess_tensor *t = hess__node(ctx, HESS_OP_MSE, 0, NULL, pred, target, fn);
    if (!t)
        return NULL;
    t->p[0] = 1.0 / (double)pred->numel;
    return hess__finish(ctx, t, fn);
}

static hess_tensor *
bce_with_logits_impl(hess_context *ctx, hess_tensor *logits, hess_tensor *targets)
{
    static const char fn[] = "hess_bce_with_logits";
    if (!ctx || hess__check(ctx, logits, fn) || hess__check(ctx, targets, fn) ||
        !same_shape_or_fail(ctx, logits, targets, fn))
        return NULL;
    return hess_mean(ctx,
                     hess_sub(ctx, hess_softplus(ctx, logits), hess_mul(ctx, logits, targets)));
}

static hess_tensor *cross_entropy_impl(hess_context *ctx, hess_tensor *logits, hess_tensor *targets)
{
    static const char fn[] = "hess_cross_entropy";
    if (!ctx || hess__check(ctx, logits, fn) || hess__check(ctx, targets, fn))
        return NULL;
    const bool batched = logits->ndim == 2;
    if (!((batched && targets->ndim == 1 && targets->shape[0] == logits->shape[0]) ||
          (logits->ndim == 1 && targets->ndim == 0))) {
        char sa[96], sb[96];
        hess__error(ctx, HESS_ERR_SHAPE,
                    "%s: logits %s and targets %s do not fit (logits [B,C] with targets [B], "
                    "or [C] with [])",
                    fn, hess__shape_str(sa, logits->ndim, logits->shape),
                    hess__shape_str(sb, targets->ndim, targets->shape));
        return NULL;
    }
    const int64_t B = batched ? logits->shape[0] : 1, C = logits->shape[logits->ndim - 1];
    for (int64_t i = 0; i < B; i++) {
        const double t = targets->data[i];
        if (!(t >= 0 && t < (double)C) || t != floor(t)) {
            hess__error(ctx, HESS_ERR_ARG,
                        "%s: target %lld is %g; class indices must be integers in [0,%lld)", fn,
                        (long long)i, t, (long long)C);
            return NULL;
        }
    }
    /* -mean_b sum_c onehot[b,c] log_softmax(logits)[b,c] */
    hess_tensor *onehot = hess_tensor_new(ctx, logits->ndim, logits->shape, NULL);
    if (!onehot)
        return NULL;
    for (int64_t i = 0; i < B; i++)
        onehot->data[i * C + (int64_t)targets->data[i]] = 1.0;
    hess_tensor *lp = hess_log_softmax(ctx, logits, -1);
    return hess_scale(ctx, hess_sum(ctx, hess_mul(ctx, onehot, lp)), -1.0 / (double)B);
}

/* ------------------------------------------------------------------------ */
/* Public entry points: errors from the ops they build name the function  */
/* the caller called.                                                       */
/* ------------------------------------------------------------------------ */

hess_tensor *hess_softmax(hess_context *ctx, hess_tensor *a, int axis)
{
    const char *saved = hess__api_enter(ctx, "hess_softmax");
    return hess__api_leave(ctx, saved, softmax_impl(ctx, a, axis));
}

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

hess_tensor *hess_linear(hess_context *ctx, hess_tensor *x, hess_tensor *W, hess_tensor *b)
{
    const char *saved = hess__api_enter(ctx, "hess_linear");
    return hess__api_leave(ctx, saved, linear_impl(ctx, x, W, b));
}

hess_tensor *hess_mse_loss(hess_context *ctx, hess_tensor *pred, hess_tensor *target)
{
    const char *saved = hess__api_enter(ctx, "hess_mse_loss");
    return hess__api_leave(ctx, saved, mse_loss_impl(ctx, pred, target));
}

hess_tensor *hess_bce_with_logits(hess_context *ctx, hess_tensor *logits, hess_tensor *targets)
{
    const char *saved = hess__api_enter(ctx, "hess_bce_with_logits");
    return hess__api_leave(ctx, saved, bce_with_logits_impl(ctx, logits, targets));
}

hess_tensor *hess_cross_entropy(hess_context *ctx, hess_tensor *logits, hess_tensor *targets)
{
    const char *saved = hess__api_enter(ctx, "hess_cross_entropy");
    return hess__api_leave(ctx, saved, cross_entropy_impl(ctx, logits, targets));
}
