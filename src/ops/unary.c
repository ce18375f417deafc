/*
 * unary.c -- elementwise functions of one tensor: affine (scale, neg), exp,
 * log, log1p, expm1, square, sqrt, reciprocal, rsqrt, sin, cos, erf, pow;
 * the piecewise ones relu, leaky_relu, elu, abs and clamp with the masks
 * their derivatives are made of (step, sign, mask: zero derivative); and
 * detach (the logistic family, with silu and the gelus, is in logistic.c).
 * Each op is one block: its rule (built from ops, so every order of
 * derivative exists), then HESS_UNARY_OP, which makes its kernel, its record
 * and its public builder; the list at the end is the family's.  Legend: a =
 * src[0], out = result, g = cotangent of out, v = an element of a.
 */
#include "ops.h"

#include <float.h>
#include <string.h>

#define TWO_OVER_SQRT_PI 1.12837916709551257390 /* 2 / sqrt(pi), erf's derivative at 0 */

/* The kernel y[i] = EXPR(v = a[i], par = the node's parameters), the record
 * and the public builder hess_NAME of a unary op. */
#define HESS_UNARY_KERNEL(NAME, EXPR)                                                              \
    static void NAME##_forward(hess_tensor *out)                                                   \
    {                                                                                              \
        const double *x = out->src[0]->data;                                                       \
        double *y = out->data;                                                                     \
        const hess_op_params *par = &out->par;                                                     \
        (void)par;                                                                                 \
        for (int64_t i = 0; i < out->numel; i++) {                                                 \
            const double v = x[i];                                                                 \
            y[i] = (EXPR);                                                                         \
        }                                                                                          \
    }
#define HESS_UNARY_RECORD(NAME, FORMULA, FLAGS)                                                    \
    static const hess_op_def op_##NAME = {.name = #NAME,                                           \
                                          .formula = FORMULA,                                      \
                                          .arity = 1,                                              \
                                          .flags = FLAGS,                                          \
                                          .shape = hess__shape_same,                               \
                                          .forward = NAME##_forward,                               \
                                          .vjp = NAME##_vjp};
#define HESS_UNARY_OP(NAME, FORMULA, EXPR) HESS_UNARY_OP_FLAGS(NAME, FORMULA, EXPR, 0)
/* ... with more record flags (HESS_OPF_LINEAR for a piecewise-linear op) */
#define HESS_UNARY_OP_FLAGS(NAME, FORMULA, EXPR, FLAGS)                                            \
    HESS_UNARY_KERNEL(NAME, EXPR)                                                                  \
    HESS_UNARY_RECORD(NAME, FORMULA, HESS_OPF_ELEMENTWISE | (FLAGS))                               \
    hess_tensor *hess_##NAME(hess_context *ctx, hess_tensor *a)                                    \
    {                                                                                              \
        return hess__apply1(ctx, &op_##NAME, a, NULL, "hess_" #NAME);                              \
    }

#define VJP static HESS_VJP

/* ------------------------------------------------------------------------ */
/* affine: out = alpha a + beta (scale, neg, and the rules' scalings)       */
/* ------------------------------------------------------------------------ */

VJP(affine_vjp)
{
    (void)pass;
    gin[0] = hess__affine(ctx, g, out->par.affine.alpha, 0.0);
}
HESS_UNARY_KERNEL(affine, par->affine.alpha *v + par->affine.beta)
HESS_UNARY_RECORD(affine, "out = alpha a + beta", HESS_OPF_ELEMENTWISE | HESS_OPF_LINEAR)

static hess_tensor *
affine(hess_context *ctx, hess_tensor *a, double alpha, double beta, const char *fn)
{
    const hess_op_params p = {.affine = {alpha, beta}};
    return hess__apply1(ctx, &op_affine, a, &p, fn);
}

hess_tensor *hess__affine(hess_context *ctx, hess_tensor *a, double alpha, double beta)
{
    return affine(ctx, a, alpha, beta, "hess_affine");
}

hess_tensor *hess_neg(hess_context *ctx, hess_tensor *a)
{
    return affine(ctx, a, -1.0, 0.0, "hess_neg");
}

hess_tensor *hess_scale(hess_context *ctx, hess_tensor *a, double alpha)
{
    return affine(ctx, a, alpha, 0.0, "hess_scale");
}

/* ------------------------------------------------------------------------ */
/* Transcendental and algebraic functions                                   */
/* ------------------------------------------------------------------------ */

/* d exp(a) = out da */
VJP(exp_vjp)
{
    (void)pass;
    gin[0] = hess_mul(ctx, g, out);
}
HESS_UNARY_OP(exp, "out = exp(a)", exp(v))

/* d log(a) = da / a */
VJP(log_vjp)
{
    (void)pass;
    gin[0] = hess_div(ctx, g, out->src[0]);
}
HESS_UNARY_OP(log, "out = log(a) (natural; -Inf at 0, NaN below)", log(v))

/* d a^2 = 2a da */
VJP(square_vjp)
{
    (void)pass;
    gin[0] = hess_mul(ctx, g, hess__affine(ctx, out->src[0], 2.0, 0.0));
}
HESS_UNARY_OP(square, "out = a * a", v *v)

/* d sqrt(a) = da / (2 out) */
VJP(sqrt_vjp)
{
    (void)pass;
    gin[0] = hess_div(ctx, hess__affine(ctx, g, 0.5, 0.0), out);
}
HESS_UNARY_OP(sqrt, "out = sqrt(a)", sqrt(v))

/* d sin(a) = cos(a) da */
VJP(sin_vjp)
{
    (void)pass;
    gin[0] = hess_mul(ctx, g, hess_cos(ctx, out->src[0]));
}
HESS_UNARY_OP(sin, "out = sin(a)", sin(v))

/* d cos(a) = -sin(a) da */
VJP(cos_vjp)
{
    (void)pass;
    gin[0] = hess_mul(ctx, g, hess__affine(ctx, hess_sin(ctx, out->src[0]), -1.0, 0.0));
}
HESS_UNARY_OP(cos, "out = cos(a)", cos(v))

/* d log1p(a) = da / (1 + a) */
VJP(log1p_vjp)
{
    (void)pass;
    gin[0] = hess_div(ctx, g, hess__affine(ctx, out->src[0], 1.0, 1.0));
}
HESS_UNARY_OP(log1p, "out = log(1 + a), accurate for small a", log1p(v))

/* d expm1(a) = exp(a) da */
VJP(expm1_vjp)
{
    (void)pass;
    gin[0] = hess_mul(ctx, g, hess_exp(ctx, out->src[0]));
}
HESS_UNARY_OP(expm1, "out = exp(a) - 1, accurate for small a", expm1(v))

/* d (1/a) = -out^2 da (PyTorch's form) */
VJP(reciprocal_vjp)
{
    (void)pass;
    gin[0] = hess_mul(ctx, g, hess__affine(ctx, hess_square(ctx, out), -1.0, 0.0));
}
HESS_UNARY_OP(reciprocal, "out = 1 / a", 1.0 / v)

/* d a^(-1/2) = -out^3 / 2 da (PyTorch's form) */
VJP(rsqrt_vjp)
{
    (void)pass;
    gin[0] = hess_mul(ctx, g, hess__affine(ctx, hess_pow(ctx, out, 3.0), -0.5, 0.0));
}
HESS_UNARY_OP(rsqrt, "out = 1 / sqrt(a)", 1.0 / sqrt(v))

/* d erf(a) = 2/sqrt(pi) exp(-a^2) da */
VJP(erf_vjp)
{
    (void)pass;
    hess_tensor *e = hess_exp(ctx, hess__affine(ctx, hess_square(ctx, out->src[0]), -1.0, 0.0));
    gin[0] = hess_mul(ctx, g, hess__affine(ctx, e, TWO_OVER_SQRT_PI, 0.0));
}
HESS_UNARY_OP(erf, "out = erf(a)", erf(v))

/* d a^p = p a^(p-1) da */
VJP(pow_vjp)
{
    (void)pass;
    const double p = out->par.pow.p;
    if (p == 0.0) { /* a^0 = 1: a zero cotangent (not 0 * pow(0, -1) = NaN), kept
                     * on the graph so that the dependence stays, as in PyTorch */
        gin[0] = hess__affine(ctx, g, 0.0, 0.0);
        return;
    }
    if (p == 1.0) {
        gin[0] = g;
        return;
    }
    hess_tensor *a = out->src[0];
    hess_tensor *d = p == 2.0 ? hess__affine(ctx, a, 2.0, 0.0)
                              : hess__affine(ctx, hess_pow(ctx, a, p - 1.0), p, 0.0);
    gin[0] = hess_mul(ctx, g, d);
}
HESS_UNARY_KERNEL(pow, pow(v, par->pow.p))
HESS_UNARY_RECORD(pow, "out = a^p, p a constant", HESS_OPF_ELEMENTWISE)

hess_tensor *hess_pow(hess_context *ctx, hess_tensor *a, double p)
{
    if (ctx && !isfinite(p)) {
        hess__error(ctx, HESS_ERR_ARG, "hess_pow: exponent %g is not finite", p);
        return NULL;
    }
    const hess_op_params par = {.pow = {p}};
    return hess__apply1(ctx, &op_pow, a, &par, "hess_pow");
}

/* ------------------------------------------------------------------------ */
/* Piecewise-linear functions                                               */
/* ------------------------------------------------------------------------ */

/* d relu(a) = step(a) da; step's own derivative is zero */
VJP(relu_vjp)
{
    (void)pass;
    gin[0] = hess_mul(ctx, g, hess__step(ctx, out->src[0]));
}
HESS_UNARY_OP_FLAGS(relu,
                    "out = max(a, 0), NaN for NaN; the derivative at 0 (and NaN) is 0",
                    v > 0 || isnan(v) ? v : 0.0,
                    HESS_OPF_LINEAR)

/* exactly zero away from 0; the sub-gradient 0 at 0 */
VJP(step_vjp)
{
    (void)ctx, (void)pass, (void)out, (void)g;
    gin[0] = NULL;
}
HESS_UNARY_KERNEL(step, v > 0 ? 1.0 : 0.0)
HESS_UNARY_RECORD(step, "out = [a > 0] (relu's derivative)", HESS_OPF_ELEMENTWISE | HESS_OPF_LINEAR)

hess_tensor *hess__step(hess_context *ctx, hess_tensor *a)
{
    return hess__apply1(ctx, &op_step, a, NULL, "hess_step");
}

/* The masks: exactly zero derivative (a rule's constants, recomputed with a) */
VJP(mask_vjp)
{
    (void)ctx, (void)pass, (void)out, (void)g;
    gin[0] = NULL;
}
HESS_UNARY_KERNEL(mask, v >= par->range.lo && v <= par->range.hi ? 1.0 : 0.0)
HESS_UNARY_RECORD(mask,
                  "out = [lo <= a <= hi] (the derivative of clamp and elu)",
                  HESS_OPF_ELEMENTWISE | HESS_OPF_LINEAR)

hess_tensor *hess__mask(hess_context *ctx, hess_tensor *a, double lo, double hi)
{
    const hess_op_params p = {.range = {lo, hi}};
    return hess__apply1(ctx, &op_mask, a, &p, "hess_mask");
}

VJP(sign_vjp)
{
    (void)ctx, (void)pass, (void)out, (void)g;
    gin[0] = NULL;
}
HESS_UNARY_KERNEL(sign, v > 0 ? 1.0 : v < 0 ? -1.0 : 0.0)
HESS_UNARY_RECORD(
    sign,
    "out = -1, 0 or 1 by the sign of a, 0 at +-0 and NaN (torch.sign; abs's derivative)",
    HESS_OPF_ELEMENTWISE | HESS_OPF_LINEAR)

/* d |a| = sign(a) da: 0 at 0 (PyTorch's subgradient) and at NaN (PyTorch's too) */
VJP(abs_vjp)
{
    (void)pass;
    gin[0] = hess_mul(ctx, g, hess__apply1(ctx, &op_sign, out->src[0], NULL, "hess_sign"));
}
HESS_UNARY_OP_FLAGS(abs, "out = |a|; the derivative at 0 is 0", fabs(v), HESS_OPF_LINEAR)

/* d leaky_relu(a) = (slope + (1 - slope) [a > 0]) da: the slope at 0 */
VJP(leaky_relu_vjp)
{
    (void)pass;
    const double s = out->par.leaky.slope;
    gin[0] = hess_mul(ctx, g, hess__affine(ctx, hess__step(ctx, out->src[0]), 1.0 - s, s));
}
HESS_UNARY_KERNEL(leaky_relu, v > 0 ? v : par->leaky.slope * v)
HESS_UNARY_RECORD(leaky_relu,
                  "out = a for a > 0, slope a otherwise; the derivative at 0 is the slope",
                  HESS_OPF_ELEMENTWISE | HESS_OPF_LINEAR)

hess_tensor *hess_leaky_relu(hess_context *ctx, hess_tensor *a, double slope)
{
    if (ctx && !isfinite(slope)) {
        hess__error(ctx, HESS_ERR_ARG, "hess_leaky_relu: slope %g is not finite", slope);
        return NULL;
    }
    const hess_op_params par = {.leaky = {slope}};
    return hess__apply1(ctx, &op_leaky_relu, a, &par, "hess_leaky_relu");
}

/* d elu(a) = ([a > 0] + alpha [a <= 0] + alpha [a < 0] expm1(min(a, 0))) da.
 * At 0 the derivative is alpha (the a <= 0 branch) and the second derivative
 * alpha [a < 0] exp(a) is 0, as PyTorch's double backward; expm1 of min(a, 0)
 * keeps every derivative finite for large a. */
VJP(elu_vjp)
{
    (void)pass;
    const double al = out->par.elu.alpha;
    hess_tensor *a = out->src[0];
    hess_tensor *lin = hess__affine(ctx, hess__step(ctx, a), 1.0 - al, al);
    hess_tensor *em = hess_expm1(ctx, hess_clamp(ctx, a, -INFINITY, 0.0));
    hess_tensor *neg = hess_mul(ctx, hess__mask(ctx, a, -INFINITY, -DBL_TRUE_MIN), em);
    gin[0] = hess_mul(ctx, g, hess_add(ctx, lin, hess__affine(ctx, neg, al, 0.0)));
}
HESS_UNARY_KERNEL(elu, v > 0 ? v : par->elu.alpha * expm1(v))
HESS_UNARY_RECORD(elu, "out = a for a > 0, alpha (exp(a) - 1) otherwise", HESS_OPF_ELEMENTWISE)

hess_tensor *hess_elu(hess_context *ctx, hess_tensor *a, double alpha)
{
    if (ctx && !isfinite(alpha)) {
        hess__error(ctx, HESS_ERR_ARG, "hess_elu: alpha %g is not finite", alpha);
        return NULL;
    }
    const hess_op_params par = {.elu = {alpha}};
    return hess__apply1(ctx, &op_elu, a, &par, "hess_elu");
}

/* d clamp(a) = [lo <= a <= hi] da: the closed interval, as PyTorch */
VJP(clamp_vjp)
{
    (void)pass;
    gin[0] = hess_mul(ctx, g, hess__mask(ctx, out->src[0], out->par.range.lo, out->par.range.hi));
}

/* max(a, lo), then min(., hi): hi where lo > hi, NaN for NaN (PyTorch) */
static inline double clamp1(double v, double lo, double hi)
{
    const double t = v < lo ? lo : v;
    return t > hi ? hi : t;
}
HESS_UNARY_KERNEL(clamp, clamp1(v, par->range.lo, par->range.hi))
HESS_UNARY_RECORD(clamp,
                  "out = min(max(a, lo), hi); the derivative is 1 on [lo, hi]",
                  HESS_OPF_ELEMENTWISE | HESS_OPF_LINEAR)

hess_tensor *hess_clamp(hess_context *ctx, hess_tensor *a, double lo, double hi)
{
    if (ctx && (isnan(lo) || isnan(hi))) {
        hess__error(ctx, HESS_ERR_ARG, "hess_clamp: bounds lo = %g and hi = %g: NaN is no bound",
                    lo, hi);
        return NULL;
    }
    const hess_op_params par = {.range = {lo, hi}};
    return hess__apply1(ctx, &op_clamp, a, &par, "hess_clamp");
}

/* a constant by request: no derivative flows through it (HESS_OPF_CONSTANT:
 * the reverse mode does not follow it) */
VJP(detach_vjp)
{
    (void)ctx, (void)pass, (void)out, (void)g;
    gin[0] = NULL;
}
HESS_UNARY_KERNEL(detach, v)
HESS_UNARY_RECORD(detach, "out = a, a constant to differentiation", HESS_OPF_CONSTANT)
hess_tensor *hess_detach(hess_context *ctx, hess_tensor *a)
{
    return hess__apply1(ctx, &op_detach, a, NULL, "hess_detach");
}

/* ------------------------------------------------------------------------ */
/* The family                                                               */
/* ------------------------------------------------------------------------ */

static const hess_op_def *const unary_ops[] = {
    &op_affine, &op_exp,  &op_log,    &op_square,     &op_sqrt,  &op_sin,        &op_cos,   &op_pow,
    &op_relu,   &op_step, &op_detach, &op_log1p,      &op_expm1, &op_reciprocal, &op_rsqrt, &op_erf,
    &op_abs,    &op_sign, &op_mask,   &op_leaky_relu, &op_elu,   &op_clamp};
const hess__op_family hess__unary_family = {unary_ops, sizeof unary_ops / sizeof unary_ops[0]};
