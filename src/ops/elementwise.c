/*
 * elementwise.c -- the elementwise binary ops add, sub, mul and div, with
 * NumPy broadcasting.  Each op is its row kernel, its rule and its record; the
 * list at the end is the family's.  Legend: out the result, a, b the
 * operands, g the cotangent of out.
 */
#include "ops.h"

#include <string.h>

/* ------------------------------------------------------------------------ */
/* Kernels                                                                  */
/* ------------------------------------------------------------------------ */

#define ADD_F(x, y) ((x) + (y))
#define SUB_F(x, y) ((x) - (y))
#define MUL_F(x, y) ((x) * (y))
#define DIV_F(x, y) ((x) / (y))

HESS_BINARY_ROW(add_row, ADD_F)
HESS_BINARY_ROW(sub_row, SUB_F)
HESS_BINARY_ROW(mul_row, MUL_F)
HESS_BINARY_ROW(div_row, DIV_F)

HESS_BINARY_FORWARD(add)
HESS_BINARY_FORWARD(sub)
HESS_BINARY_FORWARD(mul)
HESS_BINARY_FORWARD(div)

/* ------------------------------------------------------------------------ */
/* Rules: each cotangent summed back to its operand's shape                 */
/* ------------------------------------------------------------------------ */

#define VJP static HESS_VJP

/* d(a+b) = g da + g db */
VJP(add_vjp)
{
    if (HESS_NEED(pass, 0))
        gin[0] = hess__sum_like(ctx, pass, g, out->src[0]);
    if (HESS_NEED(pass, 1))
        gin[1] = hess__sum_like(ctx, pass, g, out->src[1]);
}

/* d(a-b) = g da - g db */
VJP(sub_vjp)
{
    if (HESS_NEED(pass, 0))
        gin[0] = hess__sum_like(ctx, pass, g, out->src[0]);
    if (HESS_NEED(pass, 1))
        gin[1] = hess__sum_like(ctx, pass, hess_neg(ctx, g), out->src[1]);
}

/* d(ab) = g b da + g a db */
VJP(mul_vjp)
{
    hess_tensor *a = out->src[0], *b = out->src[1];
    if (HESS_NEED(pass, 0))
        gin[0] = hess__sum_like(ctx, pass, hess_mul(ctx, g, b), a);
    if (HESS_NEED(pass, 1))
        gin[1] = hess__sum_like(ctx, pass, hess_mul(ctx, g, a), b);
}

/* d(a/b) = g/b da - g*out/b db */
VJP(div_vjp)
{
    hess_tensor *a = out->src[0], *b = out->src[1];
    hess_tensor *gb = hess_div(ctx, g, b);
    if (HESS_NEED(pass, 0))
        gin[0] = hess__sum_like(ctx, pass, gb, a);
    if (HESS_NEED(pass, 1))
        gin[1] = hess__sum_like(ctx, pass, hess_neg(ctx, hess_mul(ctx, gb, out)), b);
}

/* ------------------------------------------------------------------------ */
/* Forward-mode rules: the sources' tangents repeated to out's shape first  */
/* ------------------------------------------------------------------------ */

#define JVP static HESS_JVP

/* d(a+b) = da + db */
JVP(add_jvp)
{
    return hess__add_or(ctx, hess__lift(ctx, pass, tin[0], out),
                        hess__lift(ctx, pass, tin[1], out));
}

/* d(a-b) = da - db */
JVP(sub_jvp)
{
    hess_tensor *tb = hess__lift(ctx, pass, tin[1], out);
    return hess__add_or(ctx, hess__lift(ctx, pass, tin[0], out), tb ? hess_neg(ctx, tb) : NULL);
}

/* d(ab) = da b + a db */
JVP(mul_jvp)
{
    hess_tensor *a = out->src[0], *b = out->src[1];
    hess_tensor *ta = hess__lift(ctx, pass, tin[0], out), *tb = hess__lift(ctx, pass, tin[1], out);
    return hess__add_or(ctx, ta ? hess_mul(ctx, ta, b) : NULL, tb ? hess_mul(ctx, a, tb) : NULL);
}

/* d(a/b) = (da - out db) / b */
JVP(div_jvp)
{
    hess_tensor *b = out->src[1];
    hess_tensor *ta = hess__lift(ctx, pass, tin[0], out), *tb = hess__lift(ctx, pass, tin[1], out);
    hess_tensor *num = hess__add_or(ctx, ta, tb ? hess_neg(ctx, hess_mul(ctx, out, tb)) : NULL);
    return num ? hess_div(ctx, num, b) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Records and builders                                                     */
/* ------------------------------------------------------------------------ */

HESS_BINARY_RECORD(add, "out = a + b", HESS_OPF_LINEAR)
HESS_BINARY_RECORD(sub, "out = a - b", HESS_OPF_LINEAR)
HESS_BINARY_RECORD(mul, "out = a * b", HESS_OPF_MULTILINEAR)
HESS_BINARY_RECORD(div, "out = a / b", 0)

hess_tensor *hess_add(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return hess__apply2(ctx, &op_add, a, b, "hess_add");
}

hess_tensor *hess_sub(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return hess__apply2(ctx, &op_sub, a, b, "hess_sub");
}

hess_tensor *hess_mul(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return hess__apply2(ctx, &op_mul, a, b, "hess_mul");
}

hess_tensor *hess_div(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return hess__apply2(ctx, &op_div, a, b, "hess_div");
}

static const hess_op_def *const elementwise_ops[] = {&op_add, &op_sub, &op_mul, &op_div};
const hess__op_family hess__elementwise_family = {elementwise_ops, sizeof elementwise_ops /
                                                                       sizeof elementwise_ops[0]};
