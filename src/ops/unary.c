/*
 * unary.c -- elementwise functions of one tensor: affine (scale, neg), exp,
 * log, square, sqrt, pow, relu with its step, elu, and detach (the logistic
 * family is in logistic.c).  Each op is one block: its rule (built from ops, so every order of
 * derivative exists), then HESS_UNARY_OP, which makes its kernel, its record
 * and its public builder; the list at the end is the family's.  Legend: a =
 * src[0], out = result, g = cotangent of out, v = an element of a.
 */
#include "ops.h"

#include <string.h>

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
#define HESS_UNARY_OP(NAME, FORMULA, EXPR)                                                         \
    HESS_UNARY_KERNEL(NAME, EXPR)                                                                  \
    HESS_UNARY_RECORD(NAME, FORMULA, 0)                                                            \
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
HESS_UNARY_RECORD(affine, "out = alpha a + beta", 0)

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
HESS_UNARY_RECORD(pow, "out = a^p, p a constant", 0)

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
HESS_UNARY_OP(relu,
              "out = max(a, 0), NaN for NaN; the derivative at 0 (and NaN) is 0",
              v > 0 || isnan(v) ? v : 0.0)

/* exactly zero away from 0; the sub-gradient 0 at 0 */
VJP(step_vjp)
{
    (void)ctx, (void)pass, (void)out, (void)g;
    gin[0] = NULL;
}
HESS_UNARY_KERNEL(step, v > 0 ? 1.0 : 0.0)
HESS_UNARY_RECORD(step, "out = [a > 0] (relu's derivative)", 0)

hess_tensor *hess__step(hess_context *ctx, hess_tensor *a)
{
    return hess__apply1(ctx, &op_step, a, NULL, "hess_step");
}

/* ------------------------------------------------------------------------ */
/* elu: out = a for a > 0, alpha (exp(a) - 1) otherwise (PyTorch's ELU)     */
/* ------------------------------------------------------------------------ */

/* d elu(a) = e1(a) da with PyTorch's (1.13) values at a = 0 for every order:
 * e1 = 1 for a > 0, alpha exp(a) for a <= 0 (alpha at 0), and its own
 * derivative e2 = alpha exp(a) for a < 0, 0 for a >= 0 (0 at 0: PyTorch's
 * double backward masks with a < 0).  Built from ops, without an exp that
 * could overflow for large a:
 *     e1 = (1 - alpha) [a > 0] + alpha + out [a < 0]
 * (out + alpha = alpha exp(a) where a <= 0, and out = 0 at 0); the masks are
 * steps, whose derivative is zero, so d e1 = e1' [a < 0] da = e2 da, and the
 * rule of out (this one) gives every higher order. */
VJP(elu_vjp)
{
    (void)pass;
    hess_tensor *a = out->src[0];
    const double alpha = out->par.elu.alpha;
    hess_tensor *pos = hess__step(ctx, a);                               /* [a > 0] */
    hess_tensor *neg = hess__step(ctx, hess__affine(ctx, a, -1.0, 0.0)); /* [a < 0] */
    hess_tensor *e1 =
        hess_add(ctx, hess__affine(ctx, pos, 1.0 - alpha, alpha), hess_mul(ctx, out, neg));
    gin[0] = hess_mul(ctx, g, e1);
}
/* expm1: full relative accuracy for small |a| (PyTorch computes exp(a) - 1) */
HESS_UNARY_KERNEL(elu, v > 0 ? v : par->elu.alpha * expm1(v))
HESS_UNARY_RECORD(elu, "out = a for a > 0, alpha (exp(a) - 1) otherwise", 0)

hess_tensor *hess_elu(hess_context *ctx, hess_tensor *a, double alpha)
{
    if (ctx && !isfinite(alpha)) {
        hess__error(ctx, HESS_ERR_ARG, "hess_elu: alpha %g is not finite", alpha);
        return NULL;
    }
    const hess_op_params par = {.elu = {alpha}};
    return hess__apply1(ctx, &op_elu, a, &par, "hess_elu");
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

static const hess_op_def *const unary_ops[] = {&op_affine, &op_exp,  &op_log, &op_square,
                                               &op_sqrt,   &op_sin,  &op_cos, &op_pow,
                                               &op_relu,   &op_step, &op_elu, &op_detach};
const hess__op_family hess__unary_family = {unary_ops, sizeof unary_ops / sizeof unary_ops[0]};
