/*
 * loss.c -- the losses with options (hess_loss_opts: PyTorch's reduction,
 * class weights, ignore_index, label smoothing, Huber's delta) and the ops
 * they are made of.  Where the options allow, a loss is the one-node
 * primitive of nn.c or logistic.c (mse_loss, cross_entropy,
 * bce_with_logits with the mean's or the sum's factor); otherwise it is
 * composed of per-element or per-row terms and a reduction:
 *   - bce_term, bce_logits_term: the binary cross-entropies per element
 *     (elementwise, fused kernels: PyTorch's formula for bce_term, softplus(x)
 *     - x y without cancellation for bce_logits_term), with clamped_log,
 *     PyTorch's log clamped at -100, for bce_term's rule;
 *   - huber and huber_slope: the Huber term of d = pred - target and its
 *     derivative clamp(d, -delta, delta) (elementwise);
 *   - smooth_one_hot: the smoothed one-hot rows of class targets, zero for an
 *     ignored row (a constant of the targets, like nn.c's one_hot);
 *   - nll_rows: -sum_c m[b,c] x[b,c] per row, leaving out the terms whose
 *     weight m is 0, so that a -Inf log-probability there adds nothing.
 * L1 is relu(d) + relu(-d), MSE's terms square(d).  Legend: B batch, C
 * classes, d = pred - target, g = cotangent of out.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Shape rules                                                              */
/* ------------------------------------------------------------------------ */

/* The binary terms: two sources of one shape, the result shaped like them. */
static bool pair_same_shape(hess_context *ctx,
                            hess_tensor *const src[],
                            const hess_op_params *par,
                            int *ndim,
                            int64_t *shape,
                            const char *fn)
{
    if (!hess__same_shape_or_fail(ctx, src[0], src[1], fn))
        return false;
    return hess__shape_same(ctx, src, par, ndim, shape, fn); /* always true */
}

/* nll_rows: x and m of one shape, rank >= 1; the last axis is summed away. */
static bool rows_shape(hess_context *ctx,
                       hess_tensor *const src[],
                       const hess_op_params *par,
                       int *ndim,
                       int64_t *shape,
                       const char *fn)
{
    (void)par;
    if (src[0]->ndim < 1) {
        hess__error(ctx, HESS_ERR_SHAPE, "%s: log-probabilities of rank 0 have no class axis", fn);
        return false;
    }
    if (!hess__same_shape_or_fail(ctx, src[0], src[1], fn))
        return false;
    *ndim = src[0]->ndim - 1;
    memcpy(shape, src[0]->shape, (size_t)*ndim * sizeof *shape);
    return true;
}

/* ------------------------------------------------------------------------ */
/* clamped_log: PyTorch's binary cross-entropy log                          */
/* ------------------------------------------------------------------------ */

/* max(log(v), -100) as std::max(log(v), -100): NaN stays NaN. */
static double clamped_log1(double v)
{
    const double l = log(v);
    return l < -100.0 ? -100.0 : l;
}

static void clamped_log_forward(hess_tensor *out)
{
    const double *x = out->src[0]->data;
    for (int64_t i = 0; i < out->numel; i++)
        out->data[i] = clamped_log1(x[i]);
}

/* d max(log a, -100) / da = [log a > -100] / a, formed as s / (a + (1 - s)),
 * s = step(out + 100): exactly 1/a where the log is not clamped, and 0 (not
 * 0/0) where it is, also at a = 0.  s has no derivative, so the rule's own
 * derivative is -s / a^2, again 0 where clamped. */
static hess_tensor *dclamped_log(hess_context *ctx, hess_tensor *a, hess_tensor *out)
{
    hess_tensor *s = hess__step(ctx, hess__affine(ctx, out, 1.0, 100.0));
    return hess_div(ctx, s, hess_add(ctx, a, hess__affine(ctx, s, -1.0, 1.0)));
}

static HESS_VJP(clamped_log_vjp)
{
    (void)pass;
    gin[0] = hess_mul(ctx, g, dclamped_log(ctx, out->src[0], out));
}

static const hess_op_def op_clamped_log = {
    .name = "clamped_log",
    .formula = "out = max(log(a), -100) (PyTorch's binary cross-entropy log)",
    .arity = 1,
    .flags = HESS_OPF_ELEMENTWISE,
    .shape = hess__shape_same,
    .forward = clamped_log_forward,
    .vjp = clamped_log_vjp};

static hess_tensor *clamped_log(hess_context *ctx, hess_tensor *a)
{
    return hess__apply1(ctx, &op_clamped_log, a, NULL, "hess_bce");
}

/* ------------------------------------------------------------------------ */
/* bce_term: -(y log p + (1 - y) log(1 - p)), each log clamped at -100      */
/* ------------------------------------------------------------------------ */

/* Probabilities and targets of a binary cross-entropy are in [0, 1]. */
static hess_status
check_unit(hess_context *ctx, const double *v, int64_t n, const char *what, const char *fn)
{
    for (int64_t i = 0; i < n; i++)
        if (!(v[i] >= 0.0 && v[i] <= 1.0)) {
            hess__error(ctx, HESS_ERR_ARG, "%s: %s %lld is %g; %s must be in [0, 1]", fn, what,
                        (long long)i, v[i],
                        strcmp(what, "input") == 0 ? "probabilities" : "targets");
            return HESS_ERR_ARG;
        }
    return HESS_OK;
}

/* PyTorch's kernel, term for term: (y - 1) max(log(1 - p), -100) - y max(log(p), -100). */
static void bce_term_forward(hess_tensor *out)
{
    const double *p = out->src[0]->data, *y = out->src[1]->data;
    for (int64_t i = 0; i < out->numel; i++)
        out->data[i] = (y[i] - 1.0) * clamped_log1(1.0 - p[i]) - y[i] * clamped_log1(p[i]);
}

/* d/dp = (1 - y) L'(1 - p) - y L'(p) and d/dy = L(1 - p) - L(p), L the
 * clamped log: the factors the cotangent (or tangent) meets. */
static void
bce_term_factors(hess_context *ctx, hess_tensor *out, hess_tensor **cp, hess_tensor **cy)
{
    hess_tensor *p = out->src[0], *y = out->src[1];
    hess_tensor *q = hess__affine(ctx, p, -1.0, 1.0);
    hess_tensor *lq = clamped_log(ctx, q), *lp = clamped_log(ctx, p);
    if (cp)
        *cp =
            hess_sub(ctx, hess_mul(ctx, hess__affine(ctx, y, -1.0, 1.0), dclamped_log(ctx, q, lq)),
                     hess_mul(ctx, y, dclamped_log(ctx, p, lp)));
    if (cy)
        *cy = hess_sub(ctx, lq, lp);
}

static HESS_VJP(bce_term_vjp)
{
    hess_tensor *cp = NULL, *cy = NULL;
    bce_term_factors(ctx, out, HESS_NEED(pass, 0) ? &cp : NULL, HESS_NEED(pass, 1) ? &cy : NULL);
    if (cp)
        gin[0] = hess_mul(ctx, g, cp);
    if (cy)
        gin[1] = hess_mul(ctx, g, cy);
}

static HESS_JVP(bce_term_jvp)
{
    (void)pass;
    hess_tensor *cp = NULL, *cy = NULL;
    bce_term_factors(ctx, out, tin[0] ? &cp : NULL, tin[1] ? &cy : NULL);
    return hess__add_or(ctx, cp ? hess_mul(ctx, tin[0], cp) : NULL,
                        cy ? hess_mul(ctx, tin[1], cy) : NULL);
}

static hess_status
bce_term_check(hess_context *ctx, const hess_tensor *out, int k, const double *data, const char *fn)
{
    return check_unit(ctx, data, out->numel, k == 0 ? "input" : "target", fn);
}

static const hess_op_def op_bce_term = {
    .name = "bce_term",
    .formula = "out = (y - 1) max(log(1 - p), -100) - y max(log(p), -100)",
    .arity = 2,
    .flags = HESS_OPF_ELEMENTWISE,
    .shape = pair_same_shape,
    .forward = bce_term_forward,
    .vjp = bce_term_vjp,
    .jvp = bce_term_jvp,
    .check_src = bce_term_check};

/* ------------------------------------------------------------------------ */
/* bce_logits_term: softplus(x) - x y                                       */
/* ------------------------------------------------------------------------ */

/* softplus(x) - x y = (max(x, 0) - x y) + log1p(exp(-|x|)), the first part
 * x (1 - y) or -x y: for y in [0, 1] both parts are >= 0, so nothing cancels
 * (softplus(x) - x y loses the digits of a small loss at a large x). */
static double bce_logits1(double x, double y)
{
    return (x > 0 ? x * (1.0 - y) : -x * y) + log1p(exp(-fabs(x)));
}

static void bce_logits_term_forward(hess_tensor *out)
{
    const double *x = out->src[0]->data, *y = out->src[1]->data;
    for (int64_t i = 0; i < out->numel; i++)
        out->data[i] = bce_logits1(x[i], y[i]);
}

/* d/dx = sigmoid(x) - y, d/dy = -x */
static HESS_VJP(bce_logits_term_vjp)
{
    hess_tensor *x = out->src[0], *y = out->src[1];
    if (HESS_NEED(pass, 0))
        gin[0] = hess_mul(ctx, g, hess_sub(ctx, hess_sigmoid(ctx, x), y));
    if (HESS_NEED(pass, 1))
        gin[1] = hess_mul(ctx, g, hess_neg(ctx, x));
}

static HESS_JVP(bce_logits_term_jvp)
{
    (void)pass;
    hess_tensor *x = out->src[0], *y = out->src[1];
    return hess__add_or(
        ctx, tin[0] ? hess_mul(ctx, tin[0], hess_sub(ctx, hess_sigmoid(ctx, x), y)) : NULL,
        tin[1] ? hess_mul(ctx, tin[1], hess_neg(ctx, x)) : NULL);
}

static hess_status bce_logits_term_check(
    hess_context *ctx, const hess_tensor *out, int k, const double *data, const char *fn)
{
    return k == 1 ? check_unit(ctx, data, out->numel, "target", fn) : HESS_OK;
}

static const hess_op_def op_bce_logits_term = {
    .name = "bce_logits_term",
    .formula = "out = softplus(x) - x y, as (max(x, 0) - x y) + log1p(exp(-|x|))",
    .arity = 2,
    .flags = HESS_OPF_ELEMENTWISE,
    .shape = pair_same_shape,
    .forward = bce_logits_term_forward,
    .vjp = bce_logits_term_vjp,
    .jvp = bce_logits_term_jvp,
    .check_src = bce_logits_term_check};

/* ------------------------------------------------------------------------ */
/* huber and huber_slope                                                    */
/* ------------------------------------------------------------------------ */

/* PyTorch's kernel: z = |d|; z < delta ? 0.5 z^2 : delta (z - 0.5 delta). */
static void huber_forward(hess_tensor *out)
{
    const double *x = out->src[0]->data, delta = out->par.huber.delta;
    for (int64_t i = 0; i < out->numel; i++) {
        const double z = fabs(x[i]);
        out->data[i] = z < delta ? 0.5 * z * z : delta * (z - 0.5 * delta);
    }
}

/* clamp(d, -delta, delta): d inside, +-delta outside (and at the ends). */
static void huber_slope_forward(hess_tensor *out)
{
    const double *x = out->src[0]->data, delta = out->par.huber.delta;
    for (int64_t i = 0; i < out->numel; i++) {
        const double v = x[i];
        out->data[i] = v >= delta ? delta : v <= -delta ? -delta : v;
    }
}

static hess_tensor *
huber_apply(hess_context *ctx, const hess_op_def *def, hess_tensor *d, double delta);
static const hess_op_def op_huber_slope;

/* d huber(d) = clamp(d, -delta, delta) dd */
static HESS_VJP(huber_vjp)
{
    (void)pass;
    gin[0] = hess_mul(ctx, g, huber_apply(ctx, &op_huber_slope, out->src[0], out->par.huber.delta));
}

/* d clamp(d, -delta, delta) = [|d| < delta] dd: the open interval, so that
 * the Huber term's second derivative is 0 at |d| == delta (PyTorch's); the
 * mask [delta - d > 0] [d + delta > 0] is exact and has no derivative. */
static HESS_VJP(huber_slope_vjp)
{
    (void)pass;
    hess_tensor *d = out->src[0];
    const double delta = out->par.huber.delta;
    hess_tensor *in = hess_mul(ctx, hess__step(ctx, hess__affine(ctx, d, -1.0, delta)),
                               hess__step(ctx, hess__affine(ctx, d, 1.0, delta)));
    gin[0] = hess_mul(ctx, g, in);
}

static const hess_op_def op_huber = {.name = "huber",
                                     .formula = "out = |a| < delta ? a^2 / 2 : delta (|a| - "
                                                "delta / 2)",
                                     .arity = 1,
                                     .flags = HESS_OPF_ELEMENTWISE,
                                     .shape = hess__shape_same,
                                     .forward = huber_forward,
                                     .vjp = huber_vjp};

static const hess_op_def op_huber_slope = {
    .name = "huber_slope",
    .formula = "out = clamp(a, -delta, delta), derivative [|a| < delta] (Huber's derivative)",
    .arity = 1,
    .flags = HESS_OPF_ELEMENTWISE | HESS_OPF_LINEAR,
    .shape = hess__shape_same,
    .forward = huber_slope_forward,
    .vjp = huber_slope_vjp};

static hess_tensor *
huber_apply(hess_context *ctx, const hess_op_def *def, hess_tensor *d, double delta)
{
    const hess_op_params par = {.huber = {delta}};
    return hess__apply1(ctx, def, d, &par, "hess_huber_loss");
}

/* ------------------------------------------------------------------------ */
/* smooth_one_hot: the rows a class target weighs log-probabilities by      */
/* ------------------------------------------------------------------------ */

/* Whether v is the ignore_index of par (when it is used). */
static bool ignored(double v, const hess_op_params *par)
{
    return par->classes.use_ignore && v == (double)par->classes.ignore_index;
}

static bool class_index(double v, int64_t C)
{
    return v >= 0 && v < (double)C && v == floor(v);
}

/* Checks targets t[0..n) for C classes and the ignore_index of par. */
static hess_status check_targets(hess_context *ctx,
                                 const double *t,
                                 int64_t n,
                                 int64_t C,
                                 const hess_op_params *par,
                                 const char *fn)
{
    for (int64_t i = 0; i < n; i++)
        if (!class_index(t[i], C) && !ignored(t[i], par)) {
            if (par->classes.use_ignore)
                hess__error(ctx, HESS_ERR_ARG,
                            "%s: target %lld is %g; class indices must be integers in [0,%lld) "
                            "or the ignore_index %lld",
                            fn, (long long)i, t[i], (long long)C,
                            (long long)par->classes.ignore_index);
            else
                hess__error(ctx, HESS_ERR_ARG,
                            "%s: target %lld is %g; class indices must be integers in [0,%lld)", fn,
                            (long long)i, t[i], (long long)C);
            return HESS_ERR_ARG;
        }
    return HESS_OK;
}

/* out [B,C] (or [C]) = (1 - eps) [c == t_b] + eps / C, and 0 for an ignored
 * row; a row whose target is neither a class nor ignored is NaN, so that it
 * cannot pass unseen. */
static void smooth_one_hot_forward(hess_tensor *out)
{
    const int64_t C = out->shape[out->ndim - 1], B = out->numel / C;
    const double eps = out->par.classes.eps, off = eps / (double)C, on = (1.0 - eps) + off;
    const double *t = out->src[0]->data;
    for (int64_t b = 0; b < B; b++) {
        double *row = out->data + b * C;
        const bool skip = ignored(t[b], &out->par), ok = class_index(t[b], C);
        const double fill = skip ? 0.0 : ok ? off : NAN;
        for (int64_t c = 0; c < C; c++)
            row[c] = fill;
        if (ok && !skip)
            row[(int64_t)t[b]] = on;
    }
}

static hess_status smooth_one_hot_check(
    hess_context *ctx, const hess_tensor *out, int k, const double *data, const char *fn)
{
    (void)k;
    const int64_t C = out->shape[out->ndim - 1];
    return check_targets(ctx, data, out->numel / C, C, &out->par, fn);
}

/* Class indices have no derivative (PyTorch: not implemented for target). */
static HESS_VJP(smooth_one_hot_vjp)
{
    (void)out, (void)g, (void)gin;
    hess__error(ctx, HESS_ERR_NODIFF, "%s: class-index targets have no derivative",
                pass->api ? pass->api : "hess_cross_entropy_ex");
}

static HESS_JVP(smooth_one_hot_jvp)
{
    smooth_one_hot_vjp(ctx, pass, out, tin[0], NULL);
    return NULL;
}

static const hess_op_def op_smooth_one_hot = {
    .name = "smooth_one_hot",
    .formula = "out[..., c] = keep ((1 - eps) [c == t] + eps / C), keep = [t != ignore_index]",
    .arity = 1,
    .forward = smooth_one_hot_forward,
    .vjp = smooth_one_hot_vjp,
    .jvp = smooth_one_hot_jvp,
    .check_src = smooth_one_hot_check};

/* The [..., C] rows of targets [...] (checked by the caller). */
static hess_tensor *smooth_one_hot(hess_context *ctx,
                                   hess_tensor *targets,
                                   int64_t C,
                                   double eps,
                                   bool use_ignore,
                                   int64_t ignore_index,
                                   const char *fn)
{
    int64_t shape[HESS_DIMS];
    memcpy(shape, targets->shape, (size_t)targets->ndim * sizeof *shape);
    shape[targets->ndim] = C;
    hess_tensor *t =
        hess__node(ctx, &op_smooth_one_hot, targets->ndim + 1, shape, targets, NULL, fn);
    if (!t)
        return NULL;
    t->par.classes.eps = eps;
    t->par.classes.use_ignore = use_ignore;
    t->par.classes.ignore_index = ignore_index;
    if (hess__is_leaf(targets))
        targets->flags |= HESS_T_CHECKED;
    return hess__finish(ctx, t, fn);
}

/* ------------------------------------------------------------------------ */
/* nll_rows: -sum_c m[..., c] x[..., c]                                     */
/* ------------------------------------------------------------------------ */

/* Terms with m == 0 are left out (PyTorch gathers the target's entry), and
 * the sum is made by subtraction from +0, so that an empty row is +0. */
static void nll_rows_forward(hess_tensor *out)
{
    const hess_tensor *x = out->src[0], *m = out->src[1];
    const int64_t C = x->shape[x->ndim - 1];
    for (int64_t r = 0; r < out->numel; r++) {
        const double *xr = x->data + r * C, *mr = m->data + r * C;
        double s = 0.0;
        for (int64_t c = 0; c < C; c++)
            if (mr[c] != 0.0)
                s -= mr[c] * xr[c];
        out->data[r] = s;
    }
}

/* t [..., C] summed over its last axis: [...] (a batched tangent keeps its [k]). */
static hess_tensor *sum_last(hess_context *ctx, hess_tensor *t)
{
    int64_t shape[HESS_DIMS];
    memcpy(shape, t->shape, (size_t)t->ndim * sizeof *shape);
    shape[t->ndim - 1] = 1;
    return hess__reshape_any(ctx, hess__sum_to(ctx, t, t->ndim, shape), t->ndim - 1, shape);
}

/* g [...] (or [k, ...]) as [..., 1], to meet [..., C]. */
static hess_tensor *unsqueeze_last(hess_context *ctx, hess_tensor *g)
{
    int64_t shape[HESS_DIMS];
    memcpy(shape, g->shape, (size_t)g->ndim * sizeof *shape);
    shape[g->ndim] = 1;
    return hess__reshape_any(ctx, g, g->ndim + 1, shape);
}

/* dx = -g m, dm = -g x (the factors -m and -x formed first). */
static HESS_VJP(nll_rows_vjp)
{
    hess_tensor *x = out->src[0], *m = out->src[1];
    hess_tensor *gk = unsqueeze_last(ctx, g);
    if (HESS_NEED(pass, 0))
        gin[0] = hess_mul(ctx, gk, hess_neg(ctx, m));
    if (HESS_NEED(pass, 1))
        gin[1] = hess_mul(ctx, gk, hess_neg(ctx, x));
}

/* d out = -sum_c (dx m + x dm) */
static HESS_JVP(nll_rows_jvp)
{
    (void)pass;
    hess_tensor *x = out->src[0], *m = out->src[1];
    hess_tensor *t = hess__add_or(ctx, tin[0] ? hess_mul(ctx, tin[0], m) : NULL,
                                  tin[1] ? hess_mul(ctx, x, tin[1]) : NULL);
    return t ? hess_neg(ctx, sum_last(ctx, t)) : NULL;
}

static const hess_op_def op_nll_rows = {
    .name = "nll_rows",
    .formula = "out[...] = -sum_c m[..., c] x[..., c], the terms with m = 0 left out",
    .arity = 2,
    .flags = HESS_OPF_MULTILINEAR,
    .shape = rows_shape,
    .forward = nll_rows_forward,
    .vjp = nll_rows_vjp,
    .jvp = nll_rows_jvp,
    .rowwise = hess__rowwise_any};

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

/* What a loss takes besides the reduction. */
#define TAKES_WEIGHT    1u
#define TAKES_IGNORE    2u
#define TAKES_SMOOTHING 4u
#define TAKES_DELTA     8u

typedef struct lopts {
    int reduction;
    hess_tensor *weight; /* NULL: none */
    bool use_ignore;
    int64_t ignore_index;
    double eps, delta;
} lopts;

/* Reads *opts (NULL: the defaults) into *o; false with HESS_ERR_ARG (or the
 * weight's own error) recorded, naming fn and the value. */
static bool
read_opts(hess_context *ctx, const hess_loss_opts *opts, unsigned takes, lopts *o, const char *fn)
{
    *o = (lopts){HESS_REDUCE_MEAN, NULL, false, 0, 0.0, 1.0};
    if (!opts)
        return true;
    if (opts->reduction != HESS_REDUCE_MEAN && opts->reduction != HESS_REDUCE_SUM &&
        opts->reduction != HESS_REDUCE_NONE) {
        hess__error(ctx, HESS_ERR_ARG,
                    "%s: reduction %d is not HESS_REDUCE_MEAN (0), HESS_REDUCE_SUM (1) or "
                    "HESS_REDUCE_NONE (2)",
                    fn, opts->reduction);
        return false;
    }
    o->reduction = opts->reduction;
    if (opts->weight) {
        if (!(takes & TAKES_WEIGHT)) {
            hess__error(ctx, HESS_ERR_ARG,
                        "%s: weight is set, but this loss takes no weight (PyTorch's neither)", fn);
            return false;
        }
        if (hess__check(ctx, opts->weight, fn) != HESS_OK)
            return false;
        o->weight = ctx->nodes[opts->weight->id]; /* the same tensor, not const */
    }
    if (opts->use_ignore_index) {
        if (!(takes & TAKES_IGNORE)) {
            hess__error(ctx, HESS_ERR_ARG,
                        "%s: use_ignore_index is %d, but only hess_cross_entropy_ex and "
                        "hess_nll_loss take an ignore_index",
                        fn, opts->use_ignore_index);
            return false;
        }
        o->use_ignore = true;
        o->ignore_index = opts->ignore_index;
    }
    if ((takes & TAKES_SMOOTHING) &&
        !(opts->label_smoothing >= 0.0 && opts->label_smoothing <= 1.0)) {
        hess__error(ctx, HESS_ERR_ARG, "%s: label_smoothing %g is not in [0, 1]", fn,
                    opts->label_smoothing);
        return false;
    }
    if (!(takes & TAKES_SMOOTHING) && opts->label_smoothing != 0.0) {
        hess__error(ctx, HESS_ERR_ARG,
                    "%s: label_smoothing is %g, but only hess_cross_entropy_ex takes label "
                    "smoothing",
                    fn, opts->label_smoothing);
        return false;
    }
    o->eps = opts->label_smoothing;
    if (takes & TAKES_DELTA) {
        if (!(opts->delta > 0.0)) {
            hess__error(ctx, HESS_ERR_ARG,
                        "%s: delta %g is not > 0 (PyTorch requires delta > 0; NULL options "
                        "mean delta 1)",
                        fn, opts->delta);
            return false;
        }
        o->delta = opts->delta;
    }
    return true;
}

/* The per-element terms l reduced as asked: the mean over all elements, the
 * sum, or l itself. */
static hess_tensor *reduce(hess_context *ctx, hess_tensor *l, int reduction)
{
    if (reduction == HESS_REDUCE_NONE)
        return l;
    return reduction == HESS_REDUCE_SUM ? hess_sum(ctx, l) : hess_mean(ctx, l);
}

/* Two live operands of one shape. */
static bool pair_ok(hess_context *ctx, hess_tensor *a, hess_tensor *b, const char *fn)
{
    return hess__check(ctx, a, fn) == HESS_OK && hess__check(ctx, b, fn) == HESS_OK;
}

/* A weight that broadcasts to x's shape (PyTorch multiplies the terms by it in place). */
static bool
weight_fits_elements(hess_context *ctx, const hess_tensor *w, const hess_tensor *x, const char *fn)
{
    int nd;
    int64_t shape[HESS_DIMS];
    if (hess__broadcast_shape(x, w, &nd, shape) && nd == x->ndim &&
        memcmp(shape, x->shape, (size_t)nd * sizeof *shape) == 0)
        return true;
    char sw[96], sx[96];
    hess__error(ctx, HESS_ERR_SHAPE, "%s: weight %s does not broadcast to the input's shape %s", fn,
                hess__shape_str(sw, w->ndim, w->shape), hess__shape_str(sx, x->ndim, x->shape));
    return false;
}

/* ------------------------------------------------------------------------ */
/* Losses of two tensors of one shape                                       */
/* ------------------------------------------------------------------------ */

static hess_tensor *
mse_ex_impl(hess_context *ctx, hess_tensor *pred, hess_tensor *target, const hess_loss_opts *opts)
{
    static const char fn[] = "hess_mse_loss_ex";
    lopts o;
    if (!ctx || !pair_ok(ctx, pred, target, fn) || !read_opts(ctx, opts, 0u, &o, fn))
        return NULL;
    if (o.reduction != HESS_REDUCE_NONE) /* one node: hess_mse_loss for the mean */
        return hess__mse_loss_reduced(ctx, pred, target, o.reduction == HESS_REDUCE_MEAN, fn);
    if (!hess__same_shape_or_fail(ctx, pred, target, fn))
        return NULL;
    return hess_square(ctx, hess_sub(ctx, pred, target));
}

/* |d| = relu(d) + relu(-d), exactly (one of them is 0); the derivative
 * step(d) - step(-d) is torch's sign, 0 at 0, and the second derivative 0. */
static hess_tensor *
l1_impl(hess_context *ctx, hess_tensor *pred, hess_tensor *target, const hess_loss_opts *opts)
{
    static const char fn[] = "hess_l1_loss";
    lopts o;
    if (!ctx || !pair_ok(ctx, pred, target, fn) || !read_opts(ctx, opts, 0u, &o, fn) ||
        !hess__same_shape_or_fail(ctx, pred, target, fn))
        return NULL;
    hess_tensor *d = hess_sub(ctx, pred, target);
    return reduce(ctx, hess_add(ctx, hess_relu(ctx, d), hess_relu(ctx, hess_neg(ctx, d))),
                  o.reduction);
}

static hess_tensor *
huber_impl(hess_context *ctx, hess_tensor *pred, hess_tensor *target, const hess_loss_opts *opts)
{
    static const char fn[] = "hess_huber_loss";
    lopts o;
    if (!ctx || !pair_ok(ctx, pred, target, fn) || !read_opts(ctx, opts, TAKES_DELTA, &o, fn) ||
        !hess__same_shape_or_fail(ctx, pred, target, fn))
        return NULL;
    return reduce(ctx, huber_apply(ctx, &op_huber, hess_sub(ctx, pred, target), o.delta),
                  o.reduction);
}

/* A binary term node of a and b, the leaves among them flagged for the
 * term's check of their values. */
static hess_tensor *
term_node(hess_context *ctx, const hess_op_def *def, hess_tensor *a, hess_tensor *b, const char *fn)
{
    hess_tensor *t = hess__apply2(ctx, def, a, b, fn);
    if (t && hess__is_leaf(a) && def == &op_bce_term)
        a->flags |= HESS_T_CHECKED;
    if (t && hess__is_leaf(b))
        b->flags |= HESS_T_CHECKED;
    return t;
}

/* The weighted terms of a binary cross-entropy, reduced. */
static hess_tensor *weighted(hess_context *ctx, hess_tensor *l, const lopts *o)
{
    return reduce(ctx, o->weight ? hess_mul(ctx, l, o->weight) : l, o->reduction);
}

static hess_tensor *
bce_impl(hess_context *ctx, hess_tensor *probs, hess_tensor *target, const hess_loss_opts *opts)
{
    static const char fn[] = "hess_bce";
    lopts o;
    if (!ctx || !pair_ok(ctx, probs, target, fn) || !read_opts(ctx, opts, TAKES_WEIGHT, &o, fn) ||
        !hess__same_shape_or_fail(ctx, probs, target, fn) ||
        (o.weight && !weight_fits_elements(ctx, o.weight, probs, fn)))
        return NULL;
    hess_tensor *both[2] = {probs, target};
    if (hess__refresh(ctx, 2, both, fn) != HESS_OK ||
        check_unit(ctx, probs->data, probs->numel, "input", fn) != HESS_OK ||
        check_unit(ctx, target->data, target->numel, "target", fn) != HESS_OK)
        return NULL;
    return weighted(ctx, term_node(ctx, &op_bce_term, probs, target, fn), &o);
}

static hess_tensor *bce_logits_ex_impl(hess_context *ctx,
                                       hess_tensor *logits,
                                       hess_tensor *targets,
                                       const hess_loss_opts *opts)
{
    static const char fn[] = "hess_bce_with_logits_ex";
    lopts o;
    if (!ctx || !pair_ok(ctx, logits, targets, fn) || !read_opts(ctx, opts, TAKES_WEIGHT, &o, fn) ||
        !hess__same_shape_or_fail(ctx, logits, targets, fn) ||
        (o.weight && !weight_fits_elements(ctx, o.weight, logits, fn)))
        return NULL;
    if (!o.weight && o.reduction != HESS_REDUCE_NONE) /* one node: hess_bce_with_logits */
        return hess__bce_with_logits_reduced(ctx, logits, targets, o.reduction == HESS_REDUCE_MEAN,
                                             fn);
    if (hess__refresh(ctx, 1, &targets, fn) != HESS_OK ||
        check_unit(ctx, targets->data, targets->numel, "target", fn) != HESS_OK)
        return NULL;
    return weighted(ctx, term_node(ctx, &op_bce_logits_term, logits, targets, fn), &o);
}

/* ------------------------------------------------------------------------ */
/* Losses of class targets                                                  */
/* ------------------------------------------------------------------------ */

/* x [B,C] with targets [B], or [C] with []; a weight [C]; targets that are
 * classes or ignored.  *C = classes. */
static bool classes_ok(hess_context *ctx,
                       hess_tensor *x,
                       hess_tensor *targets,
                       const lopts *o,
                       int64_t *C,
                       const char *fn)
{
    char sa[96], sb[96];
    if (!((x->ndim == 2 && targets->ndim == 1 && targets->shape[0] == x->shape[0]) ||
          (x->ndim == 1 && targets->ndim == 0))) {
        hess__error(ctx, HESS_ERR_SHAPE,
                    "%s: input %s and targets %s do not fit (input [B,C] with targets [B], "
                    "or [C] with [])",
                    fn, hess__shape_str(sa, x->ndim, x->shape),
                    hess__shape_str(sb, targets->ndim, targets->shape));
        return false;
    }
    *C = x->shape[x->ndim - 1];
    if (o->weight && (o->weight->ndim != 1 || o->weight->shape[0] != *C)) {
        hess__error(ctx, HESS_ERR_SHAPE, "%s: weight %s does not fit %lld classes (weight [C])", fn,
                    hess__shape_str(sa, o->weight->ndim, o->weight->shape), (long long)*C);
        return false;
    }
    const hess_op_params par = {.classes = {o->eps, o->ignore_index, o->use_ignore}};
    return hess__refresh(ctx, 1, &targets, fn) == HESS_OK &&
           check_targets(ctx, targets->data, targets->numel, *C, &par, fn) == HESS_OK;
}

/* l = -sum_c M lp per row, M = smooth_one_hot(targets) * weight, reduced:
 * the mean divides by the sum of the kept targets' weights (PyTorch's). */
static hess_tensor *class_loss(hess_context *ctx,
                               hess_tensor *lp,
                               hess_tensor *targets,
                               const lopts *o,
                               int64_t C,
                               const char *fn)
{
    hess_tensor *K = smooth_one_hot(ctx, targets, C, o->eps, o->use_ignore, o->ignore_index, fn);
    hess_tensor *M = o->weight ? hess_mul(ctx, K, o->weight) : K;
    hess_tensor *l = hess__apply2(ctx, &op_nll_rows, lp, M, fn);
    if (o->reduction == HESS_REDUCE_NONE)
        return l;
    hess_tensor *s = hess_sum(ctx, l);
    if (o->reduction == HESS_REDUCE_SUM)
        return s;
    const int64_t B = targets->numel;
    if (!o->weight && !o->use_ignore) /* every row kept, each of weight 1 */
        return B == 1 ? s : hess_scale(ctx, s, 1.0 / (double)B);
    hess_tensor *K0 =
        o->eps == 0.0 ? K
                      : smooth_one_hot(ctx, targets, C, 0.0, o->use_ignore, o->ignore_index, fn);
    hess_tensor *W0 = !o->weight ? K0 : o->eps == 0.0 ? M : hess_mul(ctx, K0, o->weight);
    return hess_div(ctx, s, hess_sum(ctx, W0));
}

static hess_tensor *cross_entropy_ex_impl(hess_context *ctx,
                                          hess_tensor *logits,
                                          hess_tensor *targets,
                                          const hess_loss_opts *opts)
{
    static const char fn[] = "hess_cross_entropy_ex";
    lopts o;
    int64_t C;
    if (!ctx || !pair_ok(ctx, logits, targets, fn) ||
        !read_opts(ctx, opts, TAKES_WEIGHT | TAKES_IGNORE | TAKES_SMOOTHING, &o, fn) ||
        !classes_ok(ctx, logits, targets, &o, &C, fn))
        return NULL;
    if (!o.weight && !o.use_ignore && o.eps == 0.0 && o.reduction != HESS_REDUCE_NONE)
        return hess__cross_entropy_reduced(ctx, logits, targets, o.reduction == HESS_REDUCE_MEAN,
                                           fn); /* one node: hess_cross_entropy for the mean */
    return class_loss(ctx, hess_log_softmax(ctx, logits, -1), targets, &o, C, fn);
}

static hess_tensor *nll_impl(hess_context *ctx,
                             hess_tensor *log_probs,
                             hess_tensor *targets,
                             const hess_loss_opts *opts)
{
    static const char fn[] = "hess_nll_loss";
    lopts o;
    int64_t C;
    if (!ctx || !pair_ok(ctx, log_probs, targets, fn) ||
        !read_opts(ctx, opts, TAKES_WEIGHT | TAKES_IGNORE, &o, fn) ||
        !classes_ok(ctx, log_probs, targets, &o, &C, fn))
        return NULL;
    return class_loss(ctx, log_probs, targets, &o, C, fn);
}

/* ------------------------------------------------------------------------ */
/* Public entry points: errors from the ops they build name the function  */
/* the caller called.                                                       */
/* ------------------------------------------------------------------------ */

hess_tensor *hess_mse_loss_ex(hess_context *ctx,
                              hess_tensor *pred,
                              hess_tensor *target,
                              const hess_loss_opts *opts)
{
    const char *saved = hess__api_enter(ctx, "hess_mse_loss_ex");
    return hess__api_leave(ctx, saved, mse_ex_impl(ctx, pred, target, opts));
}

hess_tensor *hess_cross_entropy_ex(hess_context *ctx,
                                   hess_tensor *logits,
                                   hess_tensor *targets,
                                   const hess_loss_opts *opts)
{
    const char *saved = hess__api_enter(ctx, "hess_cross_entropy_ex");
    return hess__api_leave(ctx, saved, cross_entropy_ex_impl(ctx, logits, targets, opts));
}

hess_tensor *hess_nll_loss(hess_context *ctx,
                           hess_tensor *log_probs,
                           hess_tensor *targets,
                           const hess_loss_opts *opts)
{
    const char *saved = hess__api_enter(ctx, "hess_nll_loss");
    return hess__api_leave(ctx, saved, nll_impl(ctx, log_probs, targets, opts));
}

hess_tensor *
hess_l1_loss(hess_context *ctx, hess_tensor *pred, hess_tensor *target, const hess_loss_opts *opts)
{
    const char *saved = hess__api_enter(ctx, "hess_l1_loss");
    return hess__api_leave(ctx, saved, l1_impl(ctx, pred, target, opts));
}

hess_tensor *hess_huber_loss(hess_context *ctx,
                             hess_tensor *pred,
                             hess_tensor *target,
                             const hess_loss_opts *opts)
{
    const char *saved = hess__api_enter(ctx, "hess_huber_loss");
    return hess__api_leave(ctx, saved, huber_impl(ctx, pred, target, opts));
}

hess_tensor *
hess_bce(hess_context *ctx, hess_tensor *probs, hess_tensor *target, const hess_loss_opts *opts)
{
    const char *saved = hess__api_enter(ctx, "hess_bce");
    return hess__api_leave(ctx, saved, bce_impl(ctx, probs, target, opts));
}

hess_tensor *hess_bce_with_logits_ex(hess_context *ctx,
                                     hess_tensor *logits,
                                     hess_tensor *targets,
                                     const hess_loss_opts *opts)
{
    const char *saved = hess__api_enter(ctx, "hess_bce_with_logits_ex");
    return hess__api_leave(ctx, saved, bce_logits_ex_impl(ctx, logits, targets, opts));
}

static const hess_op_def *const loss_ops[] = {&op_clamped_log, &op_bce_term,    &op_bce_logits_term,
                                              &op_huber,       &op_huber_slope, &op_smooth_one_hot,
                                              &op_nll_rows};
const hess__op_family hess__loss_family = {loss_ops, sizeof loss_ops / sizeof loss_ops[0]};
