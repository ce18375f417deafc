/*
 * ops_unary.c -- elementwise functions of one tensor: affine (scale, neg),
 * exp, log, tanh, sigmoid, relu with its step, softplus, square, sqrt, pow.
 * Each backward is built from these same ops, so every order of derivative
 * exists.  Legend: a = src[0], out = result, g = cotangent of out.
 */
#include "hess_internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Kernels                                                                  */
/* ------------------------------------------------------------------------ */

#define HESS_UNARY_FORWARD(name, EXPR)                                                             \
    static void name##_forward(hess_tensor *out)                                                   \
    {                                                                                              \
        const double *x = out->src[0]->data;                                                       \
        double *y = out->data;                                                                     \
        const double p0 = out->p[0], p1 = out->p[1];                                               \
        (void)p0;                                                                                  \
        (void)p1;                                                                                  \
        for (int64_t i = 0; i < out->numel; i++) {                                                 \
            const double v = x[i];                                                                 \
            y[i] = (EXPR);                                                                         \
        }                                                                                          \
    }

/* a where sel is all ones (-1), b where it is zero, without a branch.  The mask
 * comes from a sign bit, not a comparison: gcc 12 if-converts neither
 * `c ? a : b` on doubles (under the default -ftrapping-math) nor a comparison
 * turned into a 64-bit mask, and either keeps a loop scalar. */
static double pick(int64_t sel, double a, double b)
{
    int64_t ia, ib;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    ia = (ia & sel) | (ib & ~sel);
    memcpy(&a, &ia, sizeof a);
    return a;
}

/* tanh for |v| < 0.55 (tanh1 below says how); for larger |v| the argument is
 * clamped to 0.55, so that any v gives a finite value.  No branch and no call,
 * so that a loop of it vectorises. */
static double tanh_small(double v)
{
    const double a = fabs(v), d055 = a - 0.55;
    uint64_t u;
    memcpy(&u, &d055, sizeof u);
    const double as = pick(-(int64_t)(u >> 63), a, 0.55); /* a < 0.55 ? a : 0.55 */
    const double z = as * as;
    const double n = ((4.933338266671600004933e-7 * z + 2.930402930402930402930e-4) * z +
                      2.222222222222222222222e-2) *
                         z +
                     3.333333333333333333333e-1;
    const double d = (((4.933338266671600004933e-7 * z + 3.108003108003108003108e-4) * z +
                       2.564102564102564102564e-2) *
                          z +
                      4.666666666666666666667e-1) *
                         z +
                     1.0;
    return copysign(as - as * z * n / d, v);
}

/* tanh without libm's (glibc computes every tanh through expm1).  For
 * |v| < 0.55 a rational function: Lambert's continued fraction
 * tanh v = v / (1 + z / (3 + z / (5 + ...))), z = v^2, cut after 15 = 2*7 + 1
 * (truncation error below 1e-18 on that range), written as v - v z N(z) / D(z)
 * so that the rounding of N / D is damped by z / 3 <= 0.1; coefficients are
 * the exact rationals of that convergent, rounded.  For |v| >= 0.55,
 * 1 - 2 / (exp(2|v|) + 1) >= 0.5 cancels nothing.  Both are within 1.5 ulp of
 * the true value (checked against 50-digit arithmetic at 80,000 points and
 * against tanhl at 10^6: worst 1.47 ulp, in the exp branch). */
static double tanh1(double v)
{
    const double a = fabs(v);
    if (a < 0.55)
        return tanh_small(v);
    if (a <= 20.0)
        return copysign(1.0 - 2.0 / (exp(2.0 * a) + 1.0), v);
    if (a > 20.0) /* 1 - tanh < 2^-56: exactly 1 in double */
        return copysign(1.0, v);
    return v; /* NaN */
}

/* The AVX2 kernel where the context may use it (the same formulas, both for
 * every lane); else two passes: the rational branch for every element,
 * vectorised, then the exp branch (a call per element) only where |v| >= 0.55
 * or v is NaN. */
static void tanh_forward(hess_tensor *out)
{
    const double *x = out->src[0]->data;
    double *y = out->data;
    const int64_t n = out->numel;
#if HESS_SIMD_X86
    if (out->ctx->simd) {
        hess__tanh_simd(x, y, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++)
        y[i] = tanh_small(x[i]);
    for (int64_t i = 0; i < n; i++)
        if (!(fabs(x[i]) < 0.55))
            y[i] = tanh1(x[i]);
}

HESS_UNARY_FORWARD(affine, p0 *v + p1)
HESS_UNARY_FORWARD(exp, exp(v))
HESS_UNARY_FORWARD(log, log(v))
HESS_UNARY_FORWARD(sigmoid, hess__sigmoid1(v))
HESS_UNARY_FORWARD(relu, v > 0 || isnan(v) ? v : 0.0) /* NaN stays NaN, as in PyTorch */
HESS_UNARY_FORWARD(step, v > 0 ? 1.0 : 0.0)
HESS_UNARY_FORWARD(softplus, hess__softplus1(v))
HESS_UNARY_FORWARD(detach, v)
HESS_UNARY_FORWARD(square, v *v)
HESS_UNARY_FORWARD(sqrt, sqrt(v))
HESS_UNARY_FORWARD(pow, pow(v, p0))

/* ------------------------------------------------------------------------ */
/* Backward rules                                                           */
/* ------------------------------------------------------------------------ */

static void affine_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    gin[0] = hess__affine(ctx, g, out->p[0], 0.0);
}

/* d exp(a) = out da */
static void exp_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    gin[0] = hess_mul(ctx, g, out);
}

/* d log(a) = da / a */
static void log_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    gin[0] = hess_div(ctx, g, out->src[0]);
}

/* d tanh(a) = (1 - out^2) da, one fused op (tanh_grad, ops_binary.c) */
static void tanh_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    gin[0] = hess__tanh_grad(ctx, g, out);
}

/* d sigmoid(a) = sigmoid(a) sigmoid(-a) da, one fused op (sigmoid_grad), exact
 * where 1 - out would cancel (a >~ 30) */
static void
sigmoid_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    gin[0] = hess__sigmoid_grad(ctx, g, out->src[0]);
}

/* d relu(a) = step(a) da; step's own derivative is zero */
static void relu_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    gin[0] = hess_mul(ctx, g, hess__step(ctx, out->src[0]));
}

static void step_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    (void)ctx, (void)out, (void)g;
    gin[0] = NULL; /* exactly zero away from 0; the sub-gradient 0 at 0 */
}

/* a constant by request: no path through it (autodiff.c does not follow one) */
static void detach_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    (void)ctx, (void)out, (void)g;
    gin[0] = NULL;
}

/* d softplus(a) = sigmoid(a) da */
static void
softplus_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    gin[0] = hess_mul(ctx, g, hess_sigmoid(ctx, out->src[0]));
}

/* d a^2 = 2a da */
static void square_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    gin[0] = hess_mul(ctx, g, hess__affine(ctx, out->src[0], 2.0, 0.0));
}

/* d sqrt(a) = da / (2 out) */
static void sqrt_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    gin[0] = hess_div(ctx, hess__affine(ctx, g, 0.5, 0.0), out);
}

/* d a^p = p a^(p-1) da */
static void pow_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    const double p = out->p[0];
    if (p == 0.0) { /* a^0 = 1: a zero cotangent (not 0 * pow(0, -1) = NaN), kept
                     * on the graph so that the dependence stays, as in PyTorch */
        gin[0] = hess__affine(ctx, g, 0.0, 0.0);
        return;
    }
    if (p == 1.0) {
        gin[0] = g;
        return;
    }
    hess_tensor *d = p == 2.0 ? hess__affine(ctx, out->src[0], 2.0, 0.0)
                              : hess__affine(ctx, hess_pow(ctx, out->src[0], p - 1.0), p, 0.0);
    gin[0] = hess_mul(ctx, g, d);
}

/* ------------------------------------------------------------------------ */
/* Builders                                                                 */
/* ------------------------------------------------------------------------ */

static hess_tensor *
unary(hess_context *ctx, hess_op op, hess_tensor *a, double p0, double p1, const char *fn)
{
    if (!ctx || hess__check(ctx, a, fn))
        return NULL;
    hess_tensor *t = hess__node(ctx, op, a->ndim, a->shape, a, NULL, fn);
    if (!t)
        return NULL;
    t->p[0] = p0;
    t->p[1] = p1;
    return hess__finish(ctx, t, fn);
}

hess_tensor *hess__affine(hess_context *ctx, hess_tensor *a, double alpha, double beta)
{
    return unary(ctx, HESS_OP_AFFINE, a, alpha, beta, "hess_affine");
}

hess_tensor *hess__step(hess_context *ctx, hess_tensor *a)
{
    return unary(ctx, HESS_OP_STEP, a, 0, 0, "hess_step");
}

hess_tensor *hess_neg(hess_context *ctx, hess_tensor *a)
{
    return unary(ctx, HESS_OP_AFFINE, a, -1.0, 0.0, "hess_neg");
}

hess_tensor *hess_scale(hess_context *ctx, hess_tensor *a, double alpha)
{
    return unary(ctx, HESS_OP_AFFINE, a, alpha, 0.0, "hess_scale");
}

#define HESS_UNARY_BUILDER(name, OP)                                                               \
    hess_tensor *hess_##name(hess_context *ctx, hess_tensor *a)                                    \
    {                                                                                              \
        return unary(ctx, OP, a, 0, 0, "hess_" #name);                                             \
    }

HESS_UNARY_BUILDER(exp, HESS_OP_EXP)
HESS_UNARY_BUILDER(log, HESS_OP_LOG)
HESS_UNARY_BUILDER(tanh, HESS_OP_TANH)
HESS_UNARY_BUILDER(sigmoid, HESS_OP_SIGMOID)
HESS_UNARY_BUILDER(relu, HESS_OP_RELU)
HESS_UNARY_BUILDER(softplus, HESS_OP_SOFTPLUS)
HESS_UNARY_BUILDER(square, HESS_OP_SQUARE)
HESS_UNARY_BUILDER(sqrt, HESS_OP_SQRT)
HESS_UNARY_BUILDER(detach, HESS_OP_DETACH)

hess_tensor *hess_pow(hess_context *ctx, hess_tensor *a, double p)
{
    if (ctx && !isfinite(p)) {
        hess__error(ctx, HESS_ERR_ARG, "hess_pow: exponent %g is not finite", p);
        return NULL;
    }
    return unary(ctx, HESS_OP_POW, a, p, 0, "hess_pow");
}

/* ------------------------------------------------------------------------ */
/* Registry entries                                                         */
/* ------------------------------------------------------------------------ */

#define HESS_UNARY_DEF(op)                                                                         \
    const hess_op_def hess__op_##op = {                                                            \
        .name = #op, .arity = 1, .forward = op##_forward, .backward = op##_backward};

HESS_UNARY_DEF(affine)
HESS_UNARY_DEF(exp)
HESS_UNARY_DEF(log)
HESS_UNARY_DEF(tanh)
HESS_UNARY_DEF(sigmoid)
HESS_UNARY_DEF(relu)
HESS_UNARY_DEF(step)
HESS_UNARY_DEF(softplus)
HESS_UNARY_DEF(square)
HESS_UNARY_DEF(sqrt)
HESS_UNARY_DEF(pow)
HESS_UNARY_DEF(detach)
