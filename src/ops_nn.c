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

/* sum(t, axis) keeping the axis as 1, for a t shaped like out or with a
 * leading direction dim (the axis is counted from the end). */
static hess_tensor *sum_keep(hess_context *ctx, hess_tensor *t, const hess_tensor *out)
{
    int64_t keep[HESS_DIMS];
    memcpy(keep, t->shape, (size_t)t->ndim * sizeof *keep);
    keep[t->ndim - (out->ndim - out->axis)] = 1;
    return hess_sum_to(ctx, t, t->ndim, keep);
}

/* d out = da - softmax(a) * sum(da, axis):  gin = g - softmax(a) sum(g, axis, keepdim).
 * softmax(a) rather than exp(out): out is -Inf where a is more than DBL_MAX
 * below the maximum, softmax(a) is 0 there, so the derivatives stay finite. */
static void
log_softmax_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    hess_tensor *p = hess__softmax(ctx, out->src[0], out->axis);
    gin[0] = hess_sub(ctx, g, hess_mul(ctx, p, sum_keep(ctx, g, out)));
}

const hess_op_def hess__op_log_softmax = {.name = "log_softmax",
                                          .arity = 1,
                                          .forward = log_softmax_forward,
                                          .backward = log_softmax_backward};

/* out = exp(a - max) / sum(exp(a - max)) along the axis: in [0, 1] for any
 * finite a. */
static void softmax_forward(hess_tensor *out)
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
                s += yr[j * inner] = exp(xr[j * inner] - mx);
            for (int64_t j = 0; j < n; j++)
                yr[j * inner] /= s;
        }
}

/* d out = out (da - sum(out da, axis)):  gin = out (g - sum(g out, axis, keepdim)) */
static void
softmax_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    hess_tensor *s = sum_keep(ctx, hess_mul(ctx, g, out), out);
    gin[0] = hess_mul(ctx, out, hess_sub(ctx, g, s));
}

const hess_op_def hess__op_softmax = {
    .name = "softmax", .arity = 1, .forward = softmax_forward, .backward = softmax_backward};

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

/* The cotangent g of a loss, which is [] (or [K] during a batched pass),
 * times c: a batched g meets c as [K, 1, ...]. */
static hess_tensor *scalar_times(hess_context *ctx, hess_tensor *g, hess_tensor *c)
{
    if (g && c && g->ndim > 0) {
        int64_t shape[HESS_DIMS];
        shape[0] = g->shape[0];
        for (int i = 0; i < c->ndim; i++)
            shape[1 + i] = 1;
        g = hess_reshape(ctx, g, c->ndim + 1, shape);
    }
    return hess_mul(ctx, g, c);
}

/* da = g 2 alpha (a - b), db = -da.  The factor 2 alpha (a - b) is formed
 * before it meets the cotangent, so a Hessian sweep replays only the last
 * product. */
static void mse_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    hess_tensor *a = out->src[0], *b = out->src[1];
    hess_tensor *c = hess__affine(ctx, hess_sub(ctx, a, b), 2.0 * out->p[0], 0.0);
    hess_tensor *da = scalar_times(ctx, g, c);
    if (HESS_NEED(ctx, 0))
        gin[0] = hess__sum_like(ctx, da, a);
    if (HESS_NEED(ctx, 1))
        gin[1] = hess__sum_like(ctx, hess_neg(ctx, da), b);
}

const hess_op_def hess__op_mse_loss = {
    .name = "mse_loss", .arity = 2, .forward = mse_forward, .backward = mse_backward};

/* ------------------------------------------------------------------------ */
/* cross_entropy and one_hot                                                */
/* ------------------------------------------------------------------------ */

/* Whether v is a class index of C classes. */
static bool class_index(double v, int64_t C)
{
    return v >= 0 && v < (double)C && v == floor(v);
}

/* Checks class indices t[0..n) for C classes; the error names fn and what. */
static hess_status
check_classes(hess_context *ctx, const double *t, int64_t n, int64_t C, const char *fn)
{
    for (int64_t i = 0; i < n; i++)
        if (!class_index(t[i], C)) {
            hess__error(ctx, HESS_ERR_ARG,
                        "%s: target %lld is %g; class indices must be integers in [0,%lld)", fn,
                        (long long)i, t[i], (long long)C);
            return HESS_ERR_ARG;
        }
    return HESS_OK;
}

/* out [B,C] (or [C]) = 1 where c == targets[b], else 0; a row whose target is
 * not a class index is NaN, so that it cannot pass unseen (tensors the
 * builder and hess_tensor_set checked never have one). */
static void one_hot_forward(hess_tensor *out)
{
    const int64_t C = out->shape[out->ndim - 1], B = out->numel / C;
    const double *t = out->src[0]->data;
    for (int64_t b = 0; b < B; b++) {
        double *row = out->data + b * C;
        const bool ok = class_index(t[b], C);
        for (int64_t c = 0; c < C; c++)
            row[c] = ok ? 0.0 : NAN;
        if (ok)
            row[(int64_t)t[b]] = 1.0;
    }
}

static hess_status
one_hot_check(hess_context *ctx, const hess_tensor *out, int k, const double *data, const char *fn)
{
    (void)k;
    const int64_t C = out->shape[out->ndim - 1];
    return check_classes(ctx, data, out->numel / C, C, fn);
}

/* Class indices have no derivative (PyTorch: not implemented for target). */
static void
one_hot_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    (void)out, (void)g, (void)gin;
    hess__error(ctx, HESS_ERR_NODIFF, "%s: class-index targets have no derivative",
                "hess_cross_entropy");
}

const hess_op_def hess__op_one_hot = {"one_hot", 1, one_hot_forward, one_hot_backward,
                                      one_hot_check};

/* The loss of one row: logsumexp(x) - x[t] = (max - x[t]) + log(sum exp(x -
 * max)), which is -log_softmax(x)[t] to the bit; NaN for a bad target. */
static double ce_row(const double *x, int64_t C, double t)
{
    if (!class_index(t, C))
        return NAN;
    double mx = x[0];
    for (int64_t j = 1; j < C; j++)
        mx = x[j] > mx ? x[j] : mx;
    double s = 0.0;
    for (int64_t j = 0; j < C; j++)
        s += exp(x[j] - mx);
    return (mx - x[(int64_t)t]) + log(s);
}

/* out = alpha sum_b ce_row(logits[b], targets[b]), alpha = p[0] = 1/B. */
static void cross_entropy_forward(hess_tensor *out)
{
    const hess_tensor *x = out->src[0], *t = out->src[1];
    const int64_t C = x->shape[x->ndim - 1], B = x->numel / C;
    double sum = 0.0;
    for (int64_t b = 0; b < B; b++)
        sum += ce_row(x->data + b * C, C, t->data[b]);
    if (isfinite(sum) || isnan(sum)) {
        out->data[0] = sum * out->p[0];
        return;
    }
    double s = 0.0; /* terms near DBL_MAX: scale each first */
    for (int64_t b = 0; b < B; b++)
        s += ce_row(x->data + b * C, C, t->data[b]) * out->p[0];
    out->data[0] = s;
}

/* d logits = g alpha (softmax(logits) - onehot(targets)), the factor formed
 * before it meets g; softmax is finite for any finite logits, and so are its
 * derivatives. */
static void
cross_entropy_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    hess_tensor *x = out->src[0], *t = out->src[1];
    if (HESS_NEED(ctx, 1)) {
        one_hot_backward(ctx, out, g, gin);
        return;
    }
    hess_tensor *oh = hess__one_hot(ctx, t, x->shape[x->ndim - 1]);
    hess_tensor *p = hess__softmax(ctx, x, x->ndim - 1);
    hess_tensor *c = hess__affine(ctx, hess_sub(ctx, p, oh), out->p[0], 0.0);
    gin[0] = hess__sum_like(ctx, scalar_times(ctx, g, c), x);
}

static hess_status cross_entropy_check(
    hess_context *ctx, const hess_tensor *out, int k, const double *data, const char *fn)
{
    const hess_tensor *x = out->src[0];
    const int64_t C = x->shape[x->ndim - 1];
    return k == 1 ? check_classes(ctx, data, x->numel / C, C, fn) : HESS_OK;
}

const hess_op_def hess__op_cross_entropy = {"cross_entropy", 2, cross_entropy_forward,
                                            cross_entropy_backward, cross_entropy_check};

/* ------------------------------------------------------------------------ */
/* bce_with_logits                                                          */
/* ------------------------------------------------------------------------ */

/* out = alpha sum(softplus(x) - x y), alpha = p[0] = 1/numel: the same sum as
 * mean(softplus(x) - x*y).  Each term is at most |x| for y in [0, 1]. */
static void bce_logits_forward(hess_tensor *out)
{
    const hess_tensor *x = out->src[0], *y = out->src[1];
    double sum = 0.0;
    for (int64_t i = 0; i < x->numel; i++)
        sum += hess__softplus1(x->data[i]) - x->data[i] * y->data[i];
    if (isfinite(sum) || isnan(sum)) {
        out->data[0] = sum * out->p[0];
        return;
    }
    double s = 0.0; /* terms near DBL_MAX: scale each first */
    for (int64_t i = 0; i < x->numel; i++)
        s += (hess__softplus1(x->data[i]) - x->data[i] * y->data[i]) * out->p[0];
    out->data[0] = s;
}

/* dx = g alpha (sigmoid(x) - y), dy = -g alpha x; each factor formed first. */
static void
bce_logits_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    hess_tensor *x = out->src[0], *y = out->src[1];
    if (HESS_NEED(ctx, 0)) {
        hess_tensor *c = hess__affine(ctx, hess_sub(ctx, hess_sigmoid(ctx, x), y), out->p[0], 0.0);
        gin[0] = hess__sum_like(ctx, scalar_times(ctx, g, c), x);
    }
    if (HESS_NEED(ctx, 1))
        gin[1] =
            hess__sum_like(ctx, scalar_times(ctx, g, hess__affine(ctx, x, -out->p[0], 0.0)), y);
}

/* Targets are probabilities, in [0, 1] (PyTorch's documented domain); the
 * loss is finite for any finite logits only there. */
static hess_status check_probs(hess_context *ctx, const double *y, int64_t n, const char *fn)
{
    for (int64_t i = 0; i < n; i++)
        if (!(y[i] >= 0.0 && y[i] <= 1.0)) {
            hess__error(ctx, HESS_ERR_ARG, "%s: target %lld is %g; targets must be in [0, 1]", fn,
                        (long long)i, y[i]);
            return HESS_ERR_ARG;
        }
    return HESS_OK;
}

static hess_status bce_logits_check(
    hess_context *ctx, const hess_tensor *out, int k, const double *data, const char *fn)
{
    return k == 1 ? check_probs(ctx, data, out->src[1]->numel, fn) : HESS_OK;
}

const hess_op_def hess__op_bce_with_logits = {"bce_with_logits", 2, bce_logits_forward,
                                              bce_logits_backward, bce_logits_check};

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

hess_tensor *hess__softmax(hess_context *ctx, hess_tensor *a, int axis)
{
    static const char fn[] = "hess_softmax";
    if (!ctx || hess__check(ctx, a, fn) || !norm_axis(ctx, a, &axis, fn))
        return NULL;
    hess_tensor *t = hess__node(ctx, HESS_OP_SOFTMAX, a->ndim, a->shape, a, NULL, fn);
    if (!t)
        return NULL;
    t->axis = (int8_t)axis;
    return hess__finish(ctx, t, fn);
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

/* A one-node loss: out [] = op(a, b), p[0] = alpha; a leaf b whose values the
 * op checks is flagged so that hess_tensor_set asks the op. */
static hess_tensor *loss_node(
    hess_context *ctx, hess_op op, hess_tensor *a, hess_tensor *b, double alpha, const char *fn)
{
    hess_tensor *t = hess__node(ctx, op, 0, NULL, a, b, fn);
    if (!t)
        return NULL;
    t->p[0] = alpha;
    if (b->op == HESS_OP_NONE && hess__ops[op]->check_src)
        b->flags |= HESS_T_CHECKED;
    return hess__finish(ctx, t, fn);
}

static hess_tensor *mse_loss_impl(hess_context *ctx, hess_tensor *pred, hess_tensor *target)
{
    static const char fn[] = "hess_mse_loss";
    if (!ctx || hess__check(ctx, pred, fn) || hess__check(ctx, target, fn) ||
        !same_shape_or_fail(ctx, pred, target, fn))
        return NULL;
    return loss_node(ctx, HESS_OP_MSE, pred, target, 1.0 / (double)pred->numel, fn);
}

static hess_tensor *
bce_with_logits_impl(hess_context *ctx, hess_tensor *logits, hess_tensor *targets)
{
    static const char fn[] = "hess_bce_with_logits";
    if (!ctx || hess__check(ctx, logits, fn) || hess__check(ctx, targets, fn) ||
        !same_shape_or_fail(ctx, logits, targets, fn) ||
        hess__refresh(ctx, 1, &targets, fn) != HESS_OK ||
        check_probs(ctx, targets->data, targets->numel, fn) != HESS_OK)
        return NULL;
    return loss_node(ctx, HESS_OP_BCE_WITH_LOGITS, logits, targets, 1.0 / (double)logits->numel,
                     fn);
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
    if (hess__refresh(ctx, 1, &targets, fn) != HESS_OK ||
        check_classes(ctx, targets->data, B, C, fn) != HESS_OK)
        return NULL;
    return loss_node(ctx, HESS_OP_CROSS_ENTROPY, logits, targets, 1.0 / (double)B, fn);
}

hess_tensor *hess__one_hot(hess_context *ctx, hess_tensor *targets, int64_t C)
{
    static const char fn[] = "hess_cross_entropy";
    if (!ctx || hess__check(ctx, targets, fn))
        return NULL;
    int64_t shape[HESS_DIMS];
    memcpy(shape, targets->shape, (size_t)targets->ndim * sizeof *shape);
    shape[targets->ndim] = C;
    hess_tensor *t = hess__node(ctx, HESS_OP_ONE_HOT, targets->ndim + 1, shape, targets, NULL, fn);
    if (t && targets->op == HESS_OP_NONE)
        targets->flags |= HESS_T_CHECKED;
    return hess__finish(ctx, t, fn);
}

/* ------------------------------------------------------------------------ */
/* Public entry points: errors from the ops they build name the function  */
/* the caller called.                                                       */
/* ------------------------------------------------------------------------ */

hess_tensor *hess_softmax(hess_context *ctx, hess_tensor *a, int axis)
{
    const char *saved = hess__api_enter(ctx, "hess_softmax");
    return hess__api_leave(ctx, saved, hess__softmax(ctx, a, axis));
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
