/*
 * logistic.c -- the logistic family: tanh, sigmoid and softplus, their fused
 * derivatives tanh_grad and sigmoid_grad (elementwise binary ops, so that a
 * rule's cotangent costs one node), the smooth gates silu, gelu and
 * gelu_tanh (a times a sigmoid or the normal CDF), and the loss built on
 * them, bce_with_logits.  Everything about these functions lives here and in
 * their kernel (kernels/tanh.h).  Legend: a = src[0], out = result, g =
 * cotangent.
 */
#include "ops.h"

#include "../kernels/tanh.h"

#include <string.h>

/* ------------------------------------------------------------------------ */
/* Scalar kernels                                                           */
/* ------------------------------------------------------------------------ */

/* 1 / (1 + exp(-v)); exp(-|v|) <= 1 keeps it free of overflow */
static double sigmoid1(double v)
{
    if (v >= 0)
        return 1.0 / (1.0 + exp(-v));
    const double e = exp(v);
    return e / (1.0 + e);
}

/* sigmoid'(v) = sigmoid(v) sigmoid(-v) = e / (1 + e)^2 with e = exp(-|v|) <= 1:
 * one exp, no overflow, full relative accuracy in both tails */
static double dsigmoid1(double v)
{
    const double e = exp(-fabs(v)), d = 1.0 + e;
    return e / (d * d);
}

/* log(1 + exp(v)) = max(v, 0) + log1p(exp(-|v|)), finite for finite v */
static double softplus1(double v)
{
    return (v > 0 ? v : 0.0) + log1p(exp(-fabs(v)));
}

/* ------------------------------------------------------------------------ */
/* The fused derivatives: binary, broadcasting                              */
/* ------------------------------------------------------------------------ */

#define TANH_GRAD_F(x, y)    ((x) * (1.0 - (y) * (y)))
#define SIGMOID_GRAD_F(x, y) ((x)*dsigmoid1(y))
HESS_BINARY_ROW(tanh_grad_row, TANH_GRAD_F)
HESS_BINARY_ROW(sigmoid_grad_row, SIGMOID_GRAD_F)
HESS_BINARY_FORWARD(tanh_grad)
HESS_BINARY_FORWARD(sigmoid_grad)

static hess_tensor *tanh_grad(hess_context *ctx, hess_tensor *g, hess_tensor *y);
static hess_tensor *sigmoid_grad(hess_context *ctx, hess_tensor *g, hess_tensor *a);

/* out = g (1 - y^2):  d/dg = (1 - y^2),  d/dy = -2 g y.  The factor -2 g y
 * is formed before it meets the cotangent c: in a Hessian sweep g and y are
 * fixed, so only the last product is replayed for each block of rows. */
static void tanh_grad_vjp(
    hess_context *ctx, const hess_pass *pass, hess_tensor *out, hess_tensor *c, hess_tensor *gin[])
{
    hess_tensor *g = out->src[0], *y = out->src[1];
    if (HESS_NEED(pass, 0))
        gin[0] = hess__sum_like(ctx, pass, tanh_grad(ctx, c, y), g);
    if (HESS_NEED(pass, 1))
        gin[1] = hess__sum_like(
            ctx, pass, hess_mul(ctx, c, hess__affine(ctx, hess_mul(ctx, g, y), -2.0, 0.0)), y);
}

/* out = g s'(a) with s' = sigmoid':  d/dg = s'(a),  d/da = g s''(a), where
 * s'' = s' (1 - 2 sigmoid) = -s' tanh(a/2) keeps its relative accuracy in the
 * tails; the fixed factor is formed first, as for tanh_grad. */
static void sigmoid_grad_vjp(
    hess_context *ctx, const hess_pass *pass, hess_tensor *out, hess_tensor *c, hess_tensor *gin[])
{
    hess_tensor *g = out->src[0], *a = out->src[1];
    if (HESS_NEED(pass, 0))
        gin[0] = hess__sum_like(ctx, pass, sigmoid_grad(ctx, c, a), g);
    if (HESS_NEED(pass, 1)) {
        hess_tensor *t = hess_tanh(ctx, hess__affine(ctx, a, 0.5, 0.0));
        hess_tensor *d2 = sigmoid_grad(ctx, hess__affine(ctx, hess_mul(ctx, g, t), -1.0, 0.0), a);
        gin[1] = hess__sum_like(ctx, pass, hess_mul(ctx, c, d2), a);
    }
}

/* d[g (1 - y^2)] = dg (1 - y^2) - 2 g y dy */
static HESS_JVP(tanh_grad_jvp)
{
    hess_tensor *g = out->src[0], *y = out->src[1];
    hess_tensor *tg = hess__lift(ctx, pass, tin[0], out), *ty = hess__lift(ctx, pass, tin[1], out);
    return hess__add_or(ctx, tg ? tanh_grad(ctx, tg, y) : NULL,
                        ty ? hess_mul(ctx, ty, hess__affine(ctx, hess_mul(ctx, g, y), -2.0, 0.0))
                           : NULL);
}

/* d[g s'(a)] = dg s'(a) + g s''(a) da, s'' = -s' tanh(a/2) */
static HESS_JVP(sigmoid_grad_jvp)
{
    hess_tensor *g = out->src[0], *a = out->src[1];
    hess_tensor *tg = hess__lift(ctx, pass, tin[0], out), *ta = hess__lift(ctx, pass, tin[1], out);
    hess_tensor *d2 = NULL;
    if (ta) {
        hess_tensor *t = hess_tanh(ctx, hess__affine(ctx, a, 0.5, 0.0));
        d2 = hess_mul(ctx, ta,
                      sigmoid_grad(ctx, hess__affine(ctx, hess_mul(ctx, g, t), -1.0, 0.0), a));
    }
    return hess__add_or(ctx, tg ? sigmoid_grad(ctx, tg, a) : NULL, d2);
}

HESS_BINARY_RECORD(tanh_grad, "out = g (1 - y^2), the derivative of tanh with y = tanh(a)", 0)
HESS_BINARY_RECORD(sigmoid_grad, "out = g sigmoid(a) sigmoid(-a), the derivative of sigmoid", 0)

static hess_tensor *tanh_grad(hess_context *ctx, hess_tensor *g, hess_tensor *y)
{
    return hess__apply2(ctx, &op_tanh_grad, g, y, "hess_tanh");
}

static hess_tensor *sigmoid_grad(hess_context *ctx, hess_tensor *g, hess_tensor *a)
{
    return hess__apply2(ctx, &op_sigmoid_grad, g, a, "hess_sigmoid");
}

/* ------------------------------------------------------------------------ */
/* tanh, sigmoid, softplus                                                  */
/* ------------------------------------------------------------------------ */

/* The record of a unary op NAME with its kernel and rule, and its builder. */
#define LOGISTIC_OP(NAME, FORMULA)                                                                 \
    static const hess_op_def op_##NAME = {.name = #NAME,                                           \
                                          .formula = FORMULA,                                      \
                                          .arity = 1,                                              \
                                          .flags = HESS_OPF_ELEMENTWISE,                           \
                                          .shape = hess__shape_same,                               \
                                          .forward = NAME##_forward,                               \
                                          .vjp = NAME##_vjp};                                      \
    hess_tensor *hess_##NAME(hess_context *ctx, hess_tensor *a)                                    \
    {                                                                                              \
        return hess__apply1(ctx, &op_##NAME, a, NULL, "hess_" #NAME);                              \
    }

static void tanh_forward(hess_tensor *out)
{
    hess__tanh_kernel(out->ctx->simd, out->src[0]->data, out->data, out->numel);
}

/* d tanh(a) = (1 - out^2) da, one fused node */
static HESS_VJP(tanh_vjp)
{
    (void)pass;
    gin[0] = tanh_grad(ctx, g, out);
}
LOGISTIC_OP(tanh, "out = tanh(a)")

static void sigmoid_forward(hess_tensor *out)
{
    for (int64_t i = 0; i < out->numel; i++)
        out->data[i] = sigmoid1(out->src[0]->data[i]);
}

/* d sigmoid(a) = sigmoid(a) sigmoid(-a) da, one fused node, exact where
 * 1 - out would cancel (a >~ 30) */
static HESS_VJP(sigmoid_vjp)
{
    (void)pass;
    gin[0] = sigmoid_grad(ctx, g, out->src[0]);
}
LOGISTIC_OP(sigmoid, "out = 1 / (1 + exp(-a)), without overflow")

static void softplus_forward(hess_tensor *out)
{
    for (int64_t i = 0; i < out->numel; i++)
        out->data[i] = softplus1(out->src[0]->data[i]);
}

/* d softplus(a) = sigmoid(a) da */
static HESS_VJP(softplus_vjp)
{
    (void)pass;
    gin[0] = hess_mul(ctx, g, hess_sigmoid(ctx, out->src[0]));
}
LOGISTIC_OP(softplus, "out = log(1 + exp(a)), as max(a, 0) + log1p(exp(-|a|))")

/* ------------------------------------------------------------------------ */
/* silu, gelu, gelu_tanh: a times a gate                                    */
/* ------------------------------------------------------------------------ */

#define SQRT1_2      0.70710678118654752440 /* 1 / sqrt(2) */
#define INV_SQRT_2PI 0.39894228040143267794 /* 1 / sqrt(2 pi), the normal density at 0 */
#define GELU_K       0.79788456080286535588 /* sqrt(2 / pi) */
#define GELU_C       0.044715               /* the cubic term of the tanh form */

/* a sigmoid(a): sigmoid1 has no overflow, so neither has silu */
static void silu_forward(hess_tensor *out)
{
    for (int64_t i = 0; i < out->numel; i++) {
        const double v = out->src[0]->data[i];
        out->data[i] = v * sigmoid1(v);
    }
}

/* d silu(a) = (sigmoid(a) + a sigmoid'(a)) da, the factor formed first (one
 * fused sigmoid_grad node for a sigmoid'(a)) */
static HESS_VJP(silu_vjp)
{
    (void)pass;
    hess_tensor *a = out->src[0];
    hess_tensor *d = hess_add(ctx, hess_sigmoid(ctx, a), sigmoid_grad(ctx, a, a));
    gin[0] = hess_mul(ctx, g, d);
}
LOGISTIC_OP(silu, "out = a sigmoid(a) (SiLU, swish), without overflow")

/* a Phi(a), Phi the standard normal CDF, as erfc(-a / sqrt 2) / 2: no
 * cancellation in the left tail, where 1 + erf would lose every digit */
static void gelu_forward(hess_tensor *out)
{
    for (int64_t i = 0; i < out->numel; i++) {
        const double v = out->src[0]->data[i];
        out->data[i] = 0.5 * v * erfc(-v * SQRT1_2);
    }
}

/* d gelu(a) = (Phi(a) + a phi(a)) da with Phi(a) = (1 + erf(a / sqrt 2)) / 2
 * and phi(a) = exp(-a^2 / 2) / sqrt(2 pi): PyTorch's formula, from erf and exp */
static HESS_VJP(gelu_vjp)
{
    (void)pass;
    hess_tensor *a = out->src[0];
    hess_tensor *cdf =
        hess__affine(ctx, hess_erf(ctx, hess__affine(ctx, a, SQRT1_2, 0.0)), 0.5, 0.5);
    hess_tensor *e = hess_exp(ctx, hess__affine(ctx, hess_square(ctx, a), -0.5, 0.0));
    hess_tensor *apdf = hess__affine(ctx, hess_mul(ctx, a, e), INV_SQRT_2PI, 0.0);
    gin[0] = hess_mul(ctx, g, hess_add(ctx, cdf, apdf));
}
LOGISTIC_OP(gelu, "out = a Phi(a), Phi the standard normal CDF (PyTorch's exact gelu)")

/* 0.5 a (1 + tanh(u)) with u = sqrt(2/pi) (a + 0.044715 a^3), computed as
 * a sigmoid(2u): the same function, without the cancellation of 1 + tanh(u)
 * for a < 0 */
static void gelu_tanh_forward(hess_tensor *out)
{
    for (int64_t i = 0; i < out->numel; i++) {
        const double v = out->src[0]->data[i];
        const double u = GELU_K * (v + GELU_C * v * v * v);
        out->data[i] = v * sigmoid1(2.0 * u);
    }
}

/* With z = 2u = a (2k + 2kc a^2) and z' = 2k + 6kc a^2 (k = sqrt(2/pi), c =
 * 0.044715): d gelu_tanh(a) = (sigmoid(z) + a z' sigmoid'(z)) da */
static HESS_VJP(gelu_tanh_vjp)
{
    (void)pass;
    hess_tensor *a = out->src[0], *a2 = hess_square(ctx, a);
    hess_tensor *z = hess_mul(ctx, a, hess__affine(ctx, a2, 2.0 * GELU_K * GELU_C, 2.0 * GELU_K));
    hess_tensor *dz = hess__affine(ctx, a2, 6.0 * GELU_K * GELU_C, 2.0 * GELU_K);
    hess_tensor *d =
        hess_add(ctx, hess_sigmoid(ctx, z), sigmoid_grad(ctx, hess_mul(ctx, a, dz), z));
    gin[0] = hess_mul(ctx, g, d);
}
LOGISTIC_OP(gelu_tanh,
            "out = a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3))) / 2 (PyTorch's tanh gelu)")

/* ------------------------------------------------------------------------ */
/* bce_with_logits                                                          */
/* ------------------------------------------------------------------------ */

/* out = alpha sum(softplus(x) - x y), alpha = par.loss.alpha = 1/numel: the same sum as
 * mean(softplus(x) - x*y).  Each term is at most |x| for y in [0, 1]. */
static void bce_logits_forward(hess_tensor *out)
{
    const hess_tensor *x = out->src[0], *y = out->src[1];
    double sum = 0.0;
    for (int64_t i = 0; i < x->numel; i++)
        sum += softplus1(x->data[i]) - x->data[i] * y->data[i];
    if (isfinite(sum) || isnan(sum)) {
        out->data[0] = sum * out->par.loss.alpha;
        return;
    }
    double s = 0.0; /* terms near DBL_MAX: scale each first */
    for (int64_t i = 0; i < x->numel; i++)
        s += (softplus1(x->data[i]) - x->data[i] * y->data[i]) * out->par.loss.alpha;
    out->data[0] = s;
}

/* dx = g alpha (sigmoid(x) - y), dy = -g alpha x; each factor formed first. */
static HESS_VJP(bce_logits_vjp)
{
    hess_tensor *x = out->src[0], *y = out->src[1];
    if (HESS_NEED(pass, 0)) {
        hess_tensor *c =
            hess__affine(ctx, hess_sub(ctx, hess_sigmoid(ctx, x), y), out->par.loss.alpha, 0.0);
        gin[0] = hess__sum_like(ctx, pass, hess__scalar_times(ctx, g, c), x);
    }
    if (HESS_NEED(pass, 1))
        gin[1] = hess__sum_like(
            ctx, pass, hess__scalar_times(ctx, g, hess__affine(ctx, x, -out->par.loss.alpha, 0.0)),
            y);
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

/* logits and targets of one shape; the loss is []. */
static bool pair_shape(hess_context *ctx,
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

/* g alpha sum(softplus(x) - x y) in x: the diagonal g alpha sigmoid'(x). */
static bool bce_logits_curv(
    hess_context *ctx, const hess_pass *pass, hess_tensor *out, hess_tensor *g, int i, hess_curv *c)
{
    (void)pass;
    if (i != 0)
        return true; /* linear in the targets */
    hess_tensor *x = out->src[0];
    hess_tensor *ga = hess__affine(ctx, g, out->par.loss.alpha, 0.0);
    c->diag = sigmoid_grad(ctx, hess__broadcast_to(ctx, ga, x->ndim, x->shape), x);
    return true;
}

static const hess_op_def op_bce_with_logits = {
    .name = "bce_with_logits",
    .formula = "out = alpha sum(softplus(x) - x y), alpha = 1/numel",
    .arity = 2,
    .shape = pair_shape,
    .forward = bce_logits_forward,
    .vjp = bce_logits_vjp,
    .jvp = hess__jvp_scalar,
    .curv = bce_logits_curv,
    .check_src = bce_logits_check};

hess_tensor *hess__bce_with_logits_reduced(
    hess_context *ctx, hess_tensor *logits, hess_tensor *targets, bool mean, const char *fn)
{
    if (!ctx || hess__check(ctx, logits, fn) || hess__check(ctx, targets, fn) ||
        !hess__same_shape_or_fail(ctx, logits, targets, fn) ||
        hess__refresh(ctx, 1, &targets, fn) != HESS_OK ||
        check_probs(ctx, targets->data, targets->numel, fn) != HESS_OK)
        return NULL;
    const double alpha = mean ? 1.0 / (double)logits->numel : 1.0;
    return hess__loss_node(ctx, &op_bce_with_logits, logits, targets, alpha, fn);
}

static hess_tensor *
bce_with_logits_impl(hess_context *ctx, hess_tensor *logits, hess_tensor *targets)
{
    return hess__bce_with_logits_reduced(ctx, logits, targets, true, "hess_bce_with_logits");
}

hess_tensor *hess_bce_with_logits(hess_context *ctx, hess_tensor *logits, hess_tensor *targets)
{
    const char *saved = hess__api_enter(ctx, "hess_bce_with_logits");
    return hess__api_leave(ctx, saved, bce_with_logits_impl(ctx, logits, targets));
}

static const hess_op_def *const logistic_ops[] = {
    &op_tanh, &op_sigmoid, &op_softplus, &op_tanh_grad, &op_sigmoid_grad, &op_bce_with_logits,
    &op_silu, &op_gelu,    &op_gelu_tanh};
const hess__op_family hess__logistic_family = {logistic_ops,
                                               sizeof logistic_ops / sizeof logistic_ops[0]};
