/*
 * elementwise.c -- the elementwise binary ops add, sub, mul, div, maximum,
 * minimum (with max_mask, their derivative) and pow_t, and the ternary
 * where, with NumPy broadcasting.  Each op is its row kernel, its rule and
 * its record; the list at the end is the family's.  Legend: out the result,
 * a, b the operands, g the cotangent of out.
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

/* maximum and minimum as PyTorch's: NaN when either is NaN, else
 * std::max / std::min (a at a tie, so maximum(-0, 0) = -0) */
static inline double max2(double x, double y)
{
    return x != x || y != y ? x + y : x < y ? y : x;
}
static inline double min2(double x, double y)
{
    return x != x || y != y ? x + y : y < x ? y : x;
}
/* maximum's derivative in a: 1 where a > b, 1/2 at a tie, 0 where a < b; 1
 * with a NaN (PyTorch's masks then keep the whole gradient for both) */
#define MAX_MASK_F(x, y) ((x) < (y) ? 0.0 : (x) == (y) ? 0.5 : 1.0)
#define POW_T_F(x, y)    pow((x), (y))

HESS_BINARY_ROW(add_row, ADD_F)
HESS_BINARY_ROW(sub_row, SUB_F)
HESS_BINARY_ROW(mul_row, MUL_F)
HESS_BINARY_ROW(div_row, DIV_F)
HESS_BINARY_ROW(maximum_row, max2)
HESS_BINARY_ROW(minimum_row, min2)
HESS_BINARY_ROW(max_mask_row, MAX_MASK_F)
HESS_BINARY_ROW(pow_t_row, POW_T_F)

HESS_BINARY_FORWARD(add)
HESS_BINARY_FORWARD(sub)
HESS_BINARY_FORWARD(mul)
HESS_BINARY_FORWARD(div)
HESS_BINARY_FORWARD(maximum)
HESS_BINARY_FORWARD(minimum)
HESS_BINARY_FORWARD(max_mask)
HESS_BINARY_FORWARD(pow_t)

/* where: out = cond != 0 ? a : b over the broadcast of the three.  Sources
 * of the result's size or of one element take one flat loop; the rest walk
 * the result's index space with per-source strides (0 where one repeats). */
static void where_strides(const hess_tensor *t, const hess_tensor *out, int64_t *st)
{
    const int off = out->ndim - t->ndim;
    int64_t s = 1;
    for (int i = out->ndim - 1; i >= 0; i--) {
        const int j = i - off;
        st[i] = (j < 0 || t->shape[j] == 1) ? 0 : s;
        if (j >= 0)
            s *= t->shape[j];
    }
}

static void where_forward(hess_tensor *out)
{
    const hess_tensor *src[3] = {out->src[0], out->src[1], out->src[2]};
    const double *c = src[0]->data, *a = src[1]->data, *b = src[2]->data;
    double *o = out->data;
    bool flat = true;
    for (int k = 0; k < 3; k++)
        flat = flat && (src[k]->numel == out->numel || src[k]->numel == 1);
    if (flat) {
        const int64_t sc = src[0]->numel > 1, sa = src[1]->numel > 1, sb = src[2]->numel > 1;
        for (int64_t i = 0; i < out->numel; i++)
            o[i] = c[i * sc] != 0.0 ? a[i * sa] : b[i * sb];
        return;
    }
    int64_t st[3][HESS_DIMS], idx[HESS_DIMS] = {0}, off[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++)
        where_strides(src[k], out, st[k]);
    const int last = out->ndim - 1; /* >= 0: a rank-0 result is flat */
    for (int64_t i = 0; i < out->numel;) {
        for (int64_t j = 0; j < out->shape[last]; j++, i++) /* one row */
            o[i] = c[off[0] + j * st[0][last]] != 0.0 ? a[off[1] + j * st[1][last]]
                                                      : b[off[2] + j * st[2][last]];
        for (int d = last - 1; d >= 0; d--) { /* the next row */
            for (int k = 0; k < 3; k++)
                off[k] += st[k][d];
            if (++idx[d] < out->shape[d])
                break;
            for (int k = 0; k < 3; k++)
                off[k] -= st[k][d] * out->shape[d];
            idx[d] = 0;
        }
    }
}

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

static hess_tensor *max_mask(hess_context *ctx, hess_tensor *a, hess_tensor *b);
static hess_tensor *where3(hess_context *ctx, hess_tensor *c, hess_tensor *a, hess_tensor *b);

/* d max(a, b) = g m(a, b) da + g m(b, a) db, m = max_mask: a tie splits the
 * gradient evenly, as PyTorch */
VJP(maximum_vjp)
{
    hess_tensor *a = out->src[0], *b = out->src[1];
    if (HESS_NEED(pass, 0))
        gin[0] = hess__sum_like(ctx, pass, hess_mul(ctx, g, max_mask(ctx, a, b)), a);
    if (HESS_NEED(pass, 1))
        gin[1] = hess__sum_like(ctx, pass, hess_mul(ctx, g, max_mask(ctx, b, a)), b);
}

/* d min(a, b) = g m(b, a) da + g m(a, b) db */
VJP(minimum_vjp)
{
    hess_tensor *a = out->src[0], *b = out->src[1];
    if (HESS_NEED(pass, 0))
        gin[0] = hess__sum_like(ctx, pass, hess_mul(ctx, g, max_mask(ctx, b, a)), a);
    if (HESS_NEED(pass, 1))
        gin[1] = hess__sum_like(ctx, pass, hess_mul(ctx, g, max_mask(ctx, a, b)), b);
}

/* a mask: exactly zero derivative */
VJP(max_mask_vjp)
{
    (void)ctx, (void)pass, (void)out, (void)g, (void)gin;
}

/* The factors of d a^b = fa da + fb db, shaped like out, for the sources
 * need selects (bit i: source i; the other is NULL): fa = b a^(b-1) and fb =
 * out log(a), exact for a > 0.  At a = 0 they follow PyTorch: fa = 0 where
 * b = 0 too (not 0 * Inf) and fb = 0 where b >= 0 (not 0 * -Inf).  Those
 * points take a = 1 inside the formula (out log 1 = 0; fa's factor b is
 * masked too, so that d fa/db = 0 = d fb/da there), not a mask on the
 * result, so that the derivatives of the factors are finite there too and a
 * Hessian product is not poisoned by 0 * Inf.
 * (PyTorch masks fa wherever b = 0, which for a > 0 zeroes one of the mixed
 * second derivatives: its Hessian of a^b at b = 0 is not symmetric.) */
static void pow_t_factors(hess_context *ctx, hess_tensor *out, unsigned need, hess_tensor *f[2])
{
    hess_tensor *a = out->src[0], *b = out->src[1], *one = hess_scalar(ctx, 1.0);
    hess_tensor *a0 = hess__mask(ctx, a, 0.0, 0.0);
    f[0] = f[1] = NULL;
    if (need & 1u) {
        hess_tensor *c = hess_mul(ctx, a0, hess__mask(ctx, b, 0.0, 0.0));
        hess_tensor *sa = where3(ctx, c, one, a);
        hess_tensor *bk = hess_mul(ctx, b, hess__affine(ctx, c, -1.0, 1.0)); /* b, 0 at a = b = 0 */
        f[0] = hess_mul(ctx, bk, hess_pow_t(ctx, sa, hess__affine(ctx, b, 1.0, -1.0)));
    }
    if (need & 2u) {
        hess_tensor *sa = where3(ctx, hess_mul(ctx, a0, hess__mask(ctx, b, 0.0, INFINITY)), one, a);
        f[1] = hess_mul(ctx, out, hess_log(ctx, sa));
    }
}

VJP(pow_t_vjp)
{
    hess_tensor *f[2];
    pow_t_factors(ctx, out, pass->need & 3u, f);
    for (int i = 0; i < 2; i++)
        if (f[i])
            gin[i] = hess__sum_like(ctx, pass, hess_mul(ctx, g, f[i]), out->src[i]);
}

/* d where(c, a, b) = where(c, g, 0) da + where(c, 0, g) db; c is never
 * differentiated (a mask, a constant) */
VJP(where_vjp)
{
    hess_tensor *c = out->src[0], *zero = NULL;
    if (HESS_NEED(pass, 1) || HESS_NEED(pass, 2))
        zero = hess_scalar(ctx, 0.0);
    if (HESS_NEED(pass, 1))
        gin[1] = hess__sum_like(ctx, pass, where3(ctx, c, g, zero), out->src[1]);
    if (HESS_NEED(pass, 2))
        gin[2] = hess__sum_like(ctx, pass, where3(ctx, c, zero, g), out->src[2]);
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

/* d max(a, b) = m(a, b) da + m(b, a) db */
JVP(maximum_jvp)
{
    hess_tensor *a = out->src[0], *b = out->src[1];
    hess_tensor *ta = hess__lift(ctx, pass, tin[0], out), *tb = hess__lift(ctx, pass, tin[1], out);
    return hess__add_or(ctx, ta ? hess_mul(ctx, ta, max_mask(ctx, a, b)) : NULL,
                        tb ? hess_mul(ctx, tb, max_mask(ctx, b, a)) : NULL);
}

/* d min(a, b) = m(b, a) da + m(a, b) db */
JVP(minimum_jvp)
{
    hess_tensor *a = out->src[0], *b = out->src[1];
    hess_tensor *ta = hess__lift(ctx, pass, tin[0], out), *tb = hess__lift(ctx, pass, tin[1], out);
    return hess__add_or(ctx, ta ? hess_mul(ctx, ta, max_mask(ctx, b, a)) : NULL,
                        tb ? hess_mul(ctx, tb, max_mask(ctx, a, b)) : NULL);
}

JVP(max_mask_jvp)
{
    (void)ctx, (void)pass, (void)out, (void)tin;
    return NULL;
}

/* d a^b = fa da + fb db */
JVP(pow_t_jvp)
{
    hess_tensor *ta = hess__lift(ctx, pass, tin[0], out), *tb = hess__lift(ctx, pass, tin[1], out);
    if (!ta && !tb)
        return NULL;
    hess_tensor *f[2];
    pow_t_factors(ctx, out, (ta ? 1u : 0u) | (tb ? 2u : 0u), f);
    return hess__add_or(ctx, ta ? hess_mul(ctx, ta, f[0]) : NULL,
                        tb ? hess_mul(ctx, tb, f[1]) : NULL);
}

/* d where(c, a, b) = where(c, da, db), c's tangent ignored */
JVP(where_jvp)
{
    hess_tensor *ta = hess__lift(ctx, pass, tin[1], out), *tb = hess__lift(ctx, pass, tin[2], out);
    if (!ta && !tb)
        return NULL;
    hess_tensor *zero = ta && tb ? NULL : hess_scalar(ctx, 0.0);
    return where3(ctx, out->src[0], ta ? ta : zero, tb ? tb : zero);
}

/* ------------------------------------------------------------------------ */
/* Records and builders                                                     */
/* ------------------------------------------------------------------------ */

HESS_BINARY_RECORD(add, "out = a + b", HESS_OPF_LINEAR)
HESS_BINARY_RECORD(sub, "out = a - b", HESS_OPF_LINEAR)
HESS_BINARY_RECORD(mul, "out = a * b", HESS_OPF_MULTILINEAR)
HESS_BINARY_RECORD(div, "out = a / b", 0)
HESS_BINARY_RECORD(maximum,
                   "out = max(a, b), NaN if either is; a tie splits the gradient",
                   HESS_OPF_LINEAR)
HESS_BINARY_RECORD(minimum,
                   "out = min(a, b), NaN if either is; a tie splits the gradient",
                   HESS_OPF_LINEAR)
HESS_BINARY_RECORD(max_mask,
                   "out = [a > b] + [a == b] / 2 (the derivative of maximum)",
                   HESS_OPF_LINEAR)
HESS_BINARY_RECORD(pow_t, "out = a^b, a tensor exponent", 0)

/* The broadcast of the three shapes (NumPy). */
static bool where_shape(hess_context *ctx,
                        hess_tensor *const src[],
                        const hess_op_params *par,
                        int *ndim,
                        int64_t *shape,
                        const char *fn)
{
    (void)par;
    int n = 0;
    for (int k = 0; k < 3; k++)
        n = src[k]->ndim > n ? src[k]->ndim : n;
    bool ok = true;
    for (int i = 0; i < n; i++) {
        int64_t d = 1;
        for (int k = 0; k < 3; k++) {
            const int j = i - (n - src[k]->ndim);
            const int64_t dk = j >= 0 ? src[k]->shape[j] : 1;
            ok = ok && (dk == d || dk == 1 || d == 1);
            d = dk == 1 ? d : dk;
        }
        shape[i] = d;
    }
    if (ok) {
        *ndim = n;
        return true;
    }
    char s0[96], s1[96], s2[96];
    hess__error(ctx, HESS_ERR_SHAPE, "%s: shapes %s (cond), %s and %s do not broadcast", fn,
                hess__shape_str(s0, src[0]->ndim, src[0]->shape),
                hess__shape_str(s1, src[1]->ndim, src[1]->shape),
                hess__shape_str(s2, src[2]->ndim, src[2]->shape));
    return false;
}

static const hess_op_def op_where = {.name = "where",
                                     .formula = "out = cond != 0 ? a : b, broadcast",
                                     .arity = 3,
                                     .flags = HESS_OPF_ELEMENTWISE | HESS_OPF_LINEAR,
                                     .shape = where_shape,
                                     .forward = where_forward,
                                     .vjp = where_vjp,
                                     .jvp = where_jvp};

static hess_tensor *max_mask(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return hess__apply2(ctx, &op_max_mask, a, b, "hess_max_mask");
}

static hess_tensor *where3(hess_context *ctx, hess_tensor *c, hess_tensor *a, hess_tensor *b)
{
    hess_tensor *src[3] = {c, a, b};
    return hess__apply(ctx, &op_where, src, NULL, "hess_where");
}

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

hess_tensor *hess_maximum(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return hess__apply2(ctx, &op_maximum, a, b, "hess_maximum");
}

hess_tensor *hess_minimum(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return hess__apply2(ctx, &op_minimum, a, b, "hess_minimum");
}

hess_tensor *hess_pow_t(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return hess__apply2(ctx, &op_pow_t, a, b, "hess_pow_t");
}

hess_tensor *hess_where(hess_context *ctx, hess_tensor *cond, hess_tensor *a, hess_tensor *b)
{
    return where3(ctx, cond, a, b);
}

static const hess_op_def *const elementwise_ops[] = {&op_add,      &op_sub,     &op_mul,
                                                     &op_div,      &op_maximum, &op_minimum,
                                                     &op_max_mask, &op_pow_t,   &op_where};
const hess__op_family hess__elementwise_family = {elementwise_ops, sizeof elementwise_ops /
                                                                       sizeof elementwise_ops[0]};
