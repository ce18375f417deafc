/*
 * nn.c -- the ops of networks: log_softmax and softmax (primitives, for the
 * stable log-sum-exp and derivatives finite for any input), the losses (one
 * node each: mse, cross_entropy with its one_hot; bce_with_logits is in
 * logistic.c; the losses with options, which use them, are in loss.c), and
 * hess_linear (one MATMUL or LINEAR node, linalg.c).  Legend: B batch, C
 * classes, axis split as [outer, n, inner].
 */
#include "ops.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Shape rules                                                              */
/* ------------------------------------------------------------------------ */

/* log_softmax, softmax: shaped like a, the axis (>= 0) inside it; the
 * kernels take it as given, so a negative one is refused (the public
 * builders normalise it first). */
static bool axis_shape(hess_context *ctx,
                       hess_tensor *const src[],
                       const hess_op_params *par,
                       int *ndim,
                       int64_t *shape,
                       const char *fn)
{
    const int given = par ? par->axis.axis : 0;
    int axis = given;
    if (!hess__norm_axis(ctx, src[0], &axis, fn))
        return false;
    if (axis != given) {
        hess__error(ctx, HESS_ERR_ARG, "%s: axis %d is negative; the op takes it as %d", fn, given,
                    axis);
        return false;
    }
    return hess__shape_same(ctx, src, par, ndim, shape, fn);
}

/* mse: pred and target of one shape; the loss is []. */
static bool pair_loss_shape(hess_context *ctx,
                            hess_tensor *const src[],
                            const hess_op_params *par,
                            int *ndim,
                            int64_t *shape,
                            const char *fn)
{
    if (!hess__same_shape_or_fail(ctx, src[0], src[1], fn))
        return false;
    return hess__shape_scalar(ctx, src, par, ndim, shape, fn); /* always true */
}

/* cross_entropy: logits [B,C] with targets [B], or [C] with []; the loss is []. */
static bool ce_shape(hess_context *ctx,
                     hess_tensor *const src[],
                     const hess_op_params *par,
                     int *ndim,
                     int64_t *shape,
                     const char *fn)
{
    const hess_tensor *logits = src[0], *targets = src[1];
    if ((logits->ndim == 2 && targets->ndim == 1 && targets->shape[0] == logits->shape[0]) ||
        (logits->ndim == 1 && targets->ndim == 0))
        return hess__shape_scalar(ctx, src, par, ndim, shape, fn);
    char sa[96], sb[96];
    hess__error(ctx, HESS_ERR_SHAPE,
                "%s: logits %s and targets %s do not fit (logits [B,C] with targets [B], "
                "or [C] with [])",
                fn, hess__shape_str(sa, logits->ndim, logits->shape),
                hess__shape_str(sb, targets->ndim, targets->shape));
    return false;
}

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
    axis_split(out, out->par.axis.axis, &outer, &n, &inner);
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
 * leading direction dim (the axis is counted from the end); NULL for a NULL
 * t (the op that made it failed, and the context keeps its error). */
static hess_tensor *sum_keep(hess_context *ctx, hess_tensor *t, const hess_tensor *out)
{
    if (!t)
        return NULL;
    int64_t keep[HESS_DIMS];
    memcpy(keep, t->shape, (size_t)t->ndim * sizeof *keep);
    keep[t->ndim - (out->ndim - out->par.axis.axis)] = 1;
    return hess__sum_to(ctx, t, t->ndim, keep);
}

/* d out = da - softmax(a) * sum(da, axis):  gin = g - softmax(a) sum(g, axis, keepdim).
 * softmax(a) rather than exp(out): out is -Inf where a is more than DBL_MAX
 * below the maximum, softmax(a) is 0 there, so the derivatives stay finite. */
static HESS_VJP(log_softmax_vjp)
{
    (void)pass;
    hess_tensor *p = hess__softmax(ctx, out->src[0], out->par.axis.axis);
    gin[0] = hess_sub(ctx, g, hess_mul(ctx, p, sum_keep(ctx, g, out)));
}

/* d out = da - sum(softmax(a) da, axis, keepdim) */
static HESS_JVP(log_softmax_jvp)
{
    (void)pass;
    hess_tensor *p = hess__softmax(ctx, out->src[0], out->par.axis.axis);
    return hess_sub(ctx, tin[0], sum_keep(ctx, hess_mul(ctx, p, tin[0]), out));
}

/* Along an axis other than the leading one, rows are independent. */
static bool axis_rowwise(const hess_tensor *out, int i)
{
    (void)i;
    return out->par.axis.axis != 0;
}

/* sqrt(max(s, 0)) and sqrt(max(-s, 0)): the scales of the two columns a
 * rank-one term s u u^T of either sign splits into. */
static hess_tensor *sqrt_pos(hess_context *ctx, hess_tensor *s, double sign)
{
    return hess_sqrt(ctx, hess_relu(ctx, sign > 0 ? s : hess_neg(ctx, s)));
}

/* A curvature of the form diag(d) + s u u^T per slice along axis, s of any
 * sign per slice: the diagonal, and u scaled by sqrt(s+) (sign +1) and
 * sqrt(s-) (-1). */
static void diag_plus_rank_one(
    hess_context *ctx, hess_tensor *d, hess_tensor *s, hess_tensor *u, int axis, hess_curv *c)
{
    c->diag = d;
    c->col[0] = hess_mul(ctx, sqrt_pos(ctx, s, 1.0), u);
    c->col[1] = hess_mul(ctx, sqrt_pos(ctx, s, -1.0), u);
    c->sign[0] = 1.0;
    c->sign[1] = -1.0;
    c->axis = axis;
}

/* log_softmax = a - lse(a) per row: sum_i g_i d2 out_i = -s (diag p - p p^T),
 * s = sum(g) per row, p = softmax(a): diagonal -s p and the rank-one s p p^T. */
static bool log_softmax_curv(
    hess_context *ctx, const hess_pass *pass, hess_tensor *out, hess_tensor *g, int i, hess_curv *c)
{
    (void)pass, (void)i;
    hess_tensor *p = hess__softmax(ctx, out->src[0], out->par.axis.axis);
    hess_tensor *s = sum_keep(ctx, g, out);
    diag_plus_rank_one(ctx, hess_neg(ctx, hess_mul(ctx, s, p)), s, p, out->par.axis.axis, c);
    return true;
}

static const hess_op_def op_log_softmax = {.name = "log_softmax",
                                           .formula = "out = a - log(sum(exp(a), axis))",
                                           .arity = 1,
                                           .shape = axis_shape,
                                           .forward = log_softmax_forward,
                                           .vjp = log_softmax_vjp,
                                           .jvp = log_softmax_jvp,
                                           .rowwise = axis_rowwise,
                                           .curv = log_softmax_curv};

/* out = exp(a - max) / sum(exp(a - max)) along the axis: in [0, 1] for any
 * finite a. */
static void softmax_forward(hess_tensor *out)
{
    int64_t outer, n, inner;
    axis_split(out, out->par.axis.axis, &outer, &n, &inner);
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
static HESS_VJP(softmax_vjp)
{
    (void)pass;
    hess_tensor *s = sum_keep(ctx, hess_mul(ctx, g, out), out);
    gin[0] = hess_mul(ctx, out, hess_sub(ctx, g, s));
}

/* The Jacobian of softmax is symmetric: the tangent is the vjp rule's result
 * for the tangent. */
static HESS_JVP(softmax_jvp)
{
    hess_tensor *gin[HESS_MAX_SRC] = {NULL};
    softmax_vjp(ctx, pass, out, tin[0], gin);
    return gin[0];
}

/* softmax per row: sum_i g_i d2 p_i = diag(q) - q p^T - p q^T with h = g -
 * sum(g p), q = p h; and -(q p^T + p q^T) = (p - q)(p - q)^T / 2 - (p + q)(p +
 * q)^T / 2: the diagonal q and two columns of fixed signs. */
static bool softmax_curv(
    hess_context *ctx, const hess_pass *pass, hess_tensor *out, hess_tensor *g, int i, hess_curv *c)
{
    (void)pass, (void)i;
    hess_tensor *h = hess_sub(ctx, g, sum_keep(ctx, hess_mul(ctx, g, out), out));
    hess_tensor *q = hess_mul(ctx, out, h);
    c->diag = q;
    c->col[0] = hess__affine(ctx, hess_sub(ctx, out, q), 0.70710678118654752440, 0.0);
    c->col[1] = hess__affine(ctx, hess_add(ctx, out, q), 0.70710678118654752440, 0.0);
    c->sign[0] = 1.0;
    c->sign[1] = -1.0;
    c->axis = out->par.axis.axis;
    return true;
}

static const hess_op_def op_softmax = {.name = "softmax",
                                       .formula = "out = exp(a) / sum(exp(a), axis)",
                                       .arity = 1,
                                       .shape = axis_shape,
                                       .forward = softmax_forward,
                                       .vjp = softmax_vjp,
                                       .jvp = softmax_jvp,
                                       .rowwise = axis_rowwise,
                                       .curv = softmax_curv};

/* ------------------------------------------------------------------------ */
/* mse_loss                                                                 */
/* ------------------------------------------------------------------------ */

/* out = alpha sum((a - b)^2), alpha = par.loss.alpha = 1/numel: the same sum,
 * in the same order, as mean(square(a - b)), so the same bits.  A primitive
 * because the composite is four nodes, and its gradient four more, where the
 * loss of a small model is most of its graph: one node here took the W0
 * gradient graph from 16 to 12 nodes (the time saved is in bench/README.md). */
static void mse_forward(hess_tensor *out)
{
    const hess_tensor *a = out->src[0], *b = out->src[1];
    double s = 0.0;
    for (int64_t i = 0; i < a->numel; i++) {
        const double d = a->data[i] - b->data[i];
        s += d * d;
    }
    out->data[0] = s * out->par.loss.alpha;
}

/* The cotangent g of a loss, which is [] (or [K] during a batched pass),
 * times c: a batched g meets c as [K, 1, ...]. */
hess_tensor *hess__scalar_times(hess_context *ctx, hess_tensor *g, hess_tensor *c)
{
    if (g && c && g->ndim > 0) {
        int64_t shape[HESS_DIMS];
        shape[0] = g->shape[0];
        for (int i = 0; i < c->ndim; i++)
            shape[1 + i] = 1;
        g = hess__reshape_any(ctx, g, c->ndim + 1, shape);
    }
    return hess_mul(ctx, g, c);
}

/* The tangent of an op with a one-element result (a loss): the sum over its
 * sources of <d out / d src, t_src>, with d out / d src from the op's own vjp
 * rule given a cotangent of 1 (a loss's rule forms that factor anyway). */
hess_tensor *hess__jvp_scalar(hess_context *ctx,
                              const hess_pass *pass,
                              hess_tensor *out,
                              hess_tensor *const tin[HESS_MAX_SRC])
{
    hess_pass one_pass = {0, pass->record, 0, pass->api};
    for (int i = 0; i < out->def->arity; i++)
        if (tin[i])
            one_pass.need |= 1u << i;
    hess_tensor *one = hess__leaf(ctx, out->ndim, out->shape, 0u, "hess_jvp");
    if (!one)
        return NULL;
    one->data[0] = 1.0;
    hess__leaf_scan(one);
    hess_tensor *gin[HESS_MAX_SRC] = {NULL}, *sum = NULL;
    out->def->vjp(ctx, &one_pass, out, one, gin);
    for (int i = 0; i < out->def->arity; i++)
        if (tin[i] && gin[i])
            sum = hess__add_or(ctx, sum,
                               hess__sum_like(ctx, pass, hess_mul(ctx, tin[i], gin[i]), out));
    return sum;
}

/* da = g 2 alpha (a - b), db = -da.  The factor 2 alpha (a - b) is formed
 * before it meets the cotangent, so a Hessian sweep replays only the last
 * product. */
static HESS_VJP(mse_vjp)
{
    hess_tensor *a = out->src[0], *b = out->src[1];
    hess_tensor *c = hess__affine(ctx, hess_sub(ctx, a, b), 2.0 * out->par.loss.alpha, 0.0);
    hess_tensor *da = hess__scalar_times(ctx, g, c);
    if (HESS_NEED(pass, 0))
        gin[0] = hess__sum_like(ctx, pass, da, a);
    if (HESS_NEED(pass, 1))
        gin[1] = hess__sum_like(ctx, pass, hess_neg(ctx, da), b);
}

/* A leaf shaped like t holding v everywhere. */
static hess_tensor *filled_like(hess_context *ctx, const hess_tensor *t, double v)
{
    hess_tensor *c = hess__leaf(ctx, t->ndim, t->shape, 0u, "hess_mse_loss");
    if (c) {
        for (int64_t j = 0; j < c->numel; j++)
            c->data[j] = v;
        hess__leaf_scan(c);
    }
    return c;
}

/* g alpha sum((a - b)^2): the diagonal 2 alpha g in a (or in b, when a is a
 * constant). */
static bool mse_curv(
    hess_context *ctx, const hess_pass *pass, hess_tensor *out, hess_tensor *g, int i, hess_curv *c)
{
    (void)pass;
    c->diag = hess_mul(ctx, g, filled_like(ctx, out->src[i], 2.0 * out->par.loss.alpha));
    return true;
}

static const hess_op_def op_mse_loss = {.name = "mse_loss",
                                        .formula = "out = alpha sum((a - b)^2), alpha = 1/numel",
                                        .arity = 2,
                                        .shape = pair_loss_shape,
                                        .forward = mse_forward,
                                        .vjp = mse_vjp,
                                        .jvp = hess__jvp_scalar,
                                        .curv = mse_curv};

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
static HESS_VJP(one_hot_vjp)
{
    (void)out, (void)g, (void)gin;
    hess__error(ctx, HESS_ERR_NODIFF, "%s: class-index targets have no derivative",
                pass->api ? pass->api : "hess_cross_entropy");
}

static HESS_JVP(one_hot_jvp)
{
    one_hot_vjp(ctx, pass, out, tin[0], NULL);
    return NULL;
}

static const hess_op_def op_one_hot = {.name = "one_hot",
                                       .formula = "out[..., c] = [c == targets[...]]",
                                       .arity = 1,
                                       .forward = one_hot_forward,
                                       .vjp = one_hot_vjp,
                                       .jvp = one_hot_jvp,
                                       .check_src = one_hot_check};

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

/* out = alpha sum_b ce_row(logits[b], targets[b]), alpha = par.loss.alpha = 1/B. */
static void cross_entropy_forward(hess_tensor *out)
{
    const hess_tensor *x = out->src[0], *t = out->src[1];
    const int64_t C = x->shape[x->ndim - 1], B = x->numel / C;
    double sum = 0.0;
    for (int64_t b = 0; b < B; b++)
        sum += ce_row(x->data + b * C, C, t->data[b]);
    if (isfinite(sum) || isnan(sum)) {
        out->data[0] = sum * out->par.loss.alpha;
        return;
    }
    double s = 0.0; /* terms near DBL_MAX: scale each first */
    for (int64_t b = 0; b < B; b++)
        s += ce_row(x->data + b * C, C, t->data[b]) * out->par.loss.alpha;
    out->data[0] = s;
}

/* d logits = g alpha (softmax(logits) - onehot(targets)), the factor formed
 * before it meets g; softmax is finite for any finite logits, and so are its
 * derivatives. */
static HESS_VJP(cross_entropy_vjp)
{
    hess_tensor *x = out->src[0], *t = out->src[1];
    if (HESS_NEED(pass, 1)) {
        one_hot_vjp(ctx, pass, out, g, gin);
        return;
    }
    hess_tensor *oh = hess__one_hot(ctx, t, x->shape[x->ndim - 1]);
    hess_tensor *p = hess__softmax(ctx, x, x->ndim - 1);
    hess_tensor *c = hess__affine(ctx, hess_sub(ctx, p, oh), out->par.loss.alpha, 0.0);
    gin[0] = hess__sum_like(ctx, pass, hess__scalar_times(ctx, g, c), x);
}

/* g alpha sum_b ce(x_b): per row g alpha (diag p - p p^T), p = softmax(x_b). */
static bool cross_entropy_curv(
    hess_context *ctx, const hess_pass *pass, hess_tensor *out, hess_tensor *g, int i, hess_curv *c)
{
    (void)pass;
    hess_tensor *x = out->src[0];
    if (i != 0)
        return false;
    hess_tensor *p = hess__softmax(ctx, x, x->ndim - 1);
    hess_tensor *ga = hess__affine(ctx, g, out->par.loss.alpha, 0.0);
    diag_plus_rank_one(ctx, hess_mul(ctx, ga, p), hess_neg(ctx, ga), p, x->ndim - 1, c);
    return true;
}

static hess_status cross_entropy_check(
    hess_context *ctx, const hess_tensor *out, int k, const double *data, const char *fn)
{
    const hess_tensor *x = out->src[0];
    const int64_t C = x->shape[x->ndim - 1];
    return k == 1 ? check_classes(ctx, data, x->numel / C, C, fn) : HESS_OK;
}

static const hess_op_def op_cross_entropy = {
    .name = "cross_entropy",
    .formula = "out = alpha sum_b (logsumexp(x[b]) - x[b, t[b]]), alpha = 1/B",
    .arity = 2,
    .shape = ce_shape,
    .forward = cross_entropy_forward,
    .vjp = cross_entropy_vjp,
    .jvp = hess__jvp_scalar,
    .curv = cross_entropy_curv,
    .check_src = cross_entropy_check};

/* log_softmax or softmax along axis (negative from the end). */
static hess_tensor *
along(hess_context *ctx, const hess_op_def *def, hess_tensor *a, int axis, const char *fn)
{
    if (!ctx || hess__check(ctx, a, fn) || !hess__norm_axis(ctx, a, &axis, fn))
        return NULL;
    const hess_op_params par = {.axis = {axis}};
    return hess__apply1(ctx, def, a, &par, fn);
}

hess_tensor *hess_log_softmax(hess_context *ctx, hess_tensor *a, int axis)
{
    return along(ctx, &op_log_softmax, a, axis, "hess_log_softmax");
}

hess_tensor *hess__softmax(hess_context *ctx, hess_tensor *a, int axis)
{
    return along(ctx, &op_softmax, a, axis, "hess_softmax");
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

bool hess__same_shape_or_fail(hess_context *ctx,
                              const hess_tensor *a,
                              const hess_tensor *b,
                              const char *fn)
{
    if (hess__same_shape(a, b))
        return true;
    char sa[96], sb[96];
    hess__error(ctx, HESS_ERR_SHAPE, "%s: input %s and target %s differ in shape", fn,
                hess__shape_str(sa, a->ndim, a->shape), hess__shape_str(sb, b->ndim, b->shape));
    return false;
}

/* A one-node loss: out [] = op(a, b), par.loss.alpha = alpha; a leaf b whose values the
 * op checks is flagged so that hess_tensor_set asks the op. */
hess_tensor *hess__loss_node(hess_context *ctx,
                             const hess_op_def *def,
                             hess_tensor *a,
                             hess_tensor *b,
                             double alpha,
                             const char *fn)
{
    const hess_op_params par = {.loss = {alpha}};
    hess_tensor *src[2] = {a, b};
    hess_tensor *t = hess__apply(ctx, def, src, &par, fn);
    if (t && hess__is_leaf(b) && def->check_src)
        b->flags |= HESS_T_CHECKED;
    return t;
}

hess_tensor *hess__mse_loss_reduced(
    hess_context *ctx, hess_tensor *pred, hess_tensor *target, bool mean, const char *fn)
{
    if (!ctx || hess__check(ctx, pred, fn))
        return NULL;
    const double alpha = mean ? 1.0 / (double)pred->numel : 1.0;
    return hess__loss_node(ctx, &op_mse_loss, pred, target, alpha, fn);
}

static hess_tensor *mse_loss_impl(hess_context *ctx, hess_tensor *pred, hess_tensor *target)
{
    return hess__mse_loss_reduced(ctx, pred, target, true, "hess_mse_loss");
}

hess_tensor *hess__cross_entropy_reduced(
    hess_context *ctx, hess_tensor *logits, hess_tensor *targets, bool mean, const char *fn)
{
    hess_tensor *src[2] = {logits, targets};
    int nd;
    int64_t shape[HESS_DIMS];
    if (!ctx || hess__check(ctx, logits, fn) || hess__check(ctx, targets, fn) ||
        !ce_shape(ctx, src, NULL, &nd, shape, fn))
        return NULL;
    const int64_t B = logits->ndim == 2 ? logits->shape[0] : 1;
    const int64_t C = logits->shape[logits->ndim - 1];
    if (hess__refresh(ctx, 1, &targets, fn) != HESS_OK ||
        check_classes(ctx, targets->data, B, C, fn) != HESS_OK)
        return NULL;
    return hess__loss_node(ctx, &op_cross_entropy, logits, targets, mean ? 1.0 / (double)B : 1.0,
                           fn);
}

static hess_tensor *cross_entropy_impl(hess_context *ctx, hess_tensor *logits, hess_tensor *targets)
{
    return hess__cross_entropy_reduced(ctx, logits, targets, true, "hess_cross_entropy");
}

/* targets is the live source of the loss whose rule calls this (its only
 * caller, cross_entropy_vjp), so it is not checked again. */
hess_tensor *hess__one_hot(hess_context *ctx, hess_tensor *targets, int64_t C)
{
    static const char fn[] = "hess_cross_entropy";
    int64_t shape[HESS_DIMS];
    memcpy(shape, targets->shape, (size_t)targets->ndim * sizeof *shape);
    shape[targets->ndim] = C;
    hess_tensor *t = hess__node(ctx, &op_one_hot, targets->ndim + 1, shape, targets, NULL, fn);
    if (t && hess__is_leaf(targets))
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

hess_tensor *hess_cross_entropy(hess_context *ctx, hess_tensor *logits, hess_tensor *targets)
{
    const char *saved = hess__api_enter(ctx, "hess_cross_entropy");
    return hess__api_leave(ctx, saved, cross_entropy_impl(ctx, logits, targets));
}

static const hess_op_def *const nn_ops[] = {&op_log_softmax, &op_softmax, &op_mse_loss,
                                            &op_cross_entropy, &op_one_hot};
const hess__op_family hess__nn_family = {nn_ops, sizeof nn_ops / sizeof nn_ops[0]};
