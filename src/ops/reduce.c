/*
 * reduce.c -- reductions.  Composed from sum_to, reshape and affine, with no
 * rule of their own: sum, mean, sum_axis, mean_axis, sum_axes, mean_axes,
 * var, std, logsumexp and norm.  Primitives: amax and amin (max and min over
 * axes, ties sharing the gradient), and the small ops those and the
 * composites need: eq_mask (the ties, no derivative), lse_shift (logsumexp's
 * shift, a constant), sqrt0 and recip0 (sqrt and 1/a whose derivatives are
 * taken as 0 at 0: std and the 2-norm at 0).  Legend: a = src[0], out = the
 * result, g = its cotangent; a reduction's primitive keeps the reduced axes
 * as 1 ("keep shape"), and the public builder drops them unless keepdim.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Axes                                                                     */
/* ------------------------------------------------------------------------ */

/* The axes of a reduction as a mask, bit i for axis i of a: naxes = 0 means
 * every axis; each axis in [-ndim, ndim), negative from the end, and none
 * twice.  false with HESS_ERR_ARG recorded, naming fn and the values. */
static bool axes_mask(hess_context *ctx,
                      const hess_tensor *a,
                      size_t naxes,
                      const int *axes,
                      unsigned *mask,
                      const char *fn)
{
    if (naxes == 0) {
        *mask = (1u << a->ndim) - 1u;
        return true;
    }
    if (!axes) {
        hess__error(ctx, HESS_ERR_ARG, "%s: axes is NULL with naxes = %zu", fn, naxes);
        return false;
    }
    unsigned m = 0;
    for (size_t k = 0; k < naxes; k++) {
        int ax = axes[k];
        if (!hess__norm_axis(ctx, a, &ax, fn))
            return false;
        if (m & (1u << ax)) {
            size_t first = 0; /* the earlier mention, which exists */
            while ((axes[first] < 0 ? axes[first] + a->ndim : axes[first]) != ax)
                first++;
            hess__error(ctx, HESS_ERR_ARG, "%s: axes[%zu] = %d repeats axis %d (axes[%zu] = %d)",
                        fn, k, axes[k], ax, first, axes[first]);
            return false;
        }
        m |= 1u << ax;
    }
    *mask = m;
    return true;
}

/* The shapes of a reduction of a over mask: keep[ndim] with the reduced axes
 * as 1, drop[*nd] without them; *count = elements reduced per result. */
static void reduced_shapes(
    const hess_tensor *a, unsigned mask, int64_t *keep, int64_t *drop, int *nd, int64_t *count)
{
    *nd = 0;
    *count = 1;
    for (int i = 0; i < a->ndim; i++) {
        const bool r = (mask >> i) & 1u;
        keep[i] = r ? 1 : a->shape[i];
        if (r)
            *count *= a->shape[i];
        else
            drop[(*nd)++] = a->shape[i];
    }
}

/* t, of a's rank with the axes of mask as 1, as the result of the public
 * reduction: unchanged with keepdim, else without those axes. */
static hess_tensor *
finish_keepdim(hess_context *ctx, hess_tensor *t, const hess_tensor *a, unsigned mask, int keepdim)
{
    if (keepdim || !t)
        return t;
    int64_t keep[HESS_DIMS], drop[HESS_DIMS], count;
    int nd;
    reduced_shapes(a, mask, keep, drop, &nd, &count);
    return hess_reshape(ctx, t, nd, drop);
}

/* sum of a over mask, kept as 1 (keepdim) or dropped: one sum_to node (a
 * reshape too when axes other than the leading ones are dropped). */
static hess_tensor *sum_over(hess_context *ctx, hess_tensor *a, unsigned mask, int keepdim)
{
    if (!a) /* an op before failed; the context keeps its error */
        return NULL;
    int64_t keep[HESS_DIMS], drop[HESS_DIMS], count;
    int nd;
    reduced_shapes(a, mask, keep, drop, &nd, &count);
    /* sum_to sums leading axes away: dropping only those is one node */
    const bool leading = (mask & (mask + 1u)) == 0;
    if (!keepdim && leading)
        return hess_sum_to(ctx, a, nd, drop);
    return finish_keepdim(ctx, hess_sum_to(ctx, a, a->ndim, keep), a, mask, keepdim);
}

/* ------------------------------------------------------------------------ */
/* sqrt0 and recip0: derivatives taken as 0 at 0                            */
/* ------------------------------------------------------------------------ */

static void sqrt0_forward(hess_tensor *out)
{
    const double *x = out->src[0]->data;
    for (int64_t i = 0; i < out->numel; i++)
        out->data[i] = sqrt(x[i]);
}

/* out = 1/a, and 0 at a = 0 (either sign). */
static void recip0_forward(hess_tensor *out)
{
    const double *x = out->src[0]->data;
    for (int64_t i = 0; i < out->numel; i++)
        out->data[i] = x[i] == 0.0 ? 0.0 : 1.0 / x[i];
}

static hess_tensor *recip0(hess_context *ctx, hess_tensor *a);

/* d sqrt(a) = da / (2 out), taken as 0 where out = 0 (PyTorch's std and
 * 2-norm at 0) */
static HESS_VJP(sqrt0_vjp)
{
    (void)pass;
    gin[0] = hess_mul(ctx, g, hess__affine(ctx, recip0(ctx, out), 0.5, 0.0));
}

/* d (1/a) = -out^2 da, 0 at a = 0 with out */
static HESS_VJP(recip0_vjp)
{
    (void)pass;
    gin[0] = hess_mul(ctx, g, hess_neg(ctx, hess_square(ctx, out)));
}

static const hess_op_def op_sqrt0 = {
    .name = "sqrt0",
    .formula = "out = sqrt(a), its derivative taken as 0 where a = 0 (std, 2-norm)",
    .arity = 1,
    .flags = HESS_OPF_ELEMENTWISE,
    .shape = hess__shape_same,
    .forward = sqrt0_forward,
    .vjp = sqrt0_vjp};
static const hess_op_def op_recip0 = {.name = "recip0",
                                      .formula = "out = 1 / a, and 0 where a = 0",
                                      .arity = 1,
                                      .flags = HESS_OPF_ELEMENTWISE,
                                      .shape = hess__shape_same,
                                      .forward = recip0_forward,
                                      .vjp = recip0_vjp};

static hess_tensor *recip0(hess_context *ctx, hess_tensor *a)
{
    return hess__apply1(ctx, &op_recip0, a, NULL, "hess_recip0");
}

/* ------------------------------------------------------------------------ */
/* eq_mask: the ties of amax and amin                                       */
/* ------------------------------------------------------------------------ */

#define EQ_F(x, y) ((x) == (y) ? 1.0 : 0.0)
HESS_BINARY_ROW(eq_mask_row, EQ_F)
HESS_BINARY_FORWARD(eq_mask)

/* piecewise constant: no derivative, in either source */
static HESS_VJP(eq_mask_vjp)
{
    (void)ctx, (void)pass, (void)out, (void)g;
    gin[0] = gin[1] = NULL;
}

static HESS_JVP(eq_mask_jvp)
{
    (void)ctx, (void)pass, (void)out, (void)tin;
    return NULL;
}

HESS_BINARY_RECORD(eq_mask,
                   "out = [a == b] (1 or 0), broadcast; no derivative (the ties of amax)",
                   HESS_OPF_LINEAR)

/* The share of the cotangent each element of a gets from the reduction r
 * (keep shape) it is tied for: [a == r] / (ties in its slice), 0 off the
 * ties; NaN in a slice with none (a NaN maximum: 0/0, as PyTorch 1.13). */
static hess_tensor *tie_weights(hess_context *ctx, hess_tensor *a, hess_tensor *r)
{
    hess_tensor *m = hess__apply2(ctx, &op_eq_mask, a, r, "hess_eq_mask");
    return hess_div(ctx, m, hess__sum_to(ctx, m, r->ndim, r->shape));
}

/* ------------------------------------------------------------------------ */
/* amax, amin and lse_shift                                                 */
/* ------------------------------------------------------------------------ */

/* The keep shape: a's with the axes of par.reduce.axes (0: all) as 1. */
static bool reduce_shape(hess_context *ctx,
                         hess_tensor *const src[],
                         const hess_op_params *par,
                         int *ndim,
                         int64_t *shape,
                         const char *fn)
{
    const hess_tensor *a = src[0];
    const unsigned all = (1u << a->ndim) - 1u;
    const unsigned m = par && par->reduce.axes ? par->reduce.axes : all;
    if (m & ~all) {
        char s[96];
        hess__error(ctx, HESS_ERR_ARG, "%s: axes 0x%x are out of range for %s", fn, m,
                    hess__shape_str(s, a->ndim, a->shape));
        return false;
    }
    *ndim = a->ndim;
    for (int i = 0; i < a->ndim; i++)
        shape[i] = (m >> i) & 1u ? 1 : a->shape[i];
    return true;
}

/* o = the max (min) with a: NaN wins, as in PyTorch */
#define MAX_F(o, x) ((o) = isnan(o) || (x) <= (o) ? (o) : (x))
#define MIN_F(o, x) ((o) = isnan(o) || (x) >= (o) ? (o) : (x))

/* Folds a row of a (off[0], st[0]) into out (off[1], st[1]: 0 where reduced). */
#define HESS_EXTREME_ROW(name, F)                                                                  \
    static void name(void *k, const int64_t *off, const int64_t *st, int64_t n)                    \
    {                                                                                              \
        hess__bin_args *g = k;                                                                     \
        const double *a = g->a + off[0];                                                           \
        double *o = g->o + off[1];                                                                 \
        if (st[1] == 0) {                                                                          \
            double acc = o[0];                                                                     \
            for (int64_t i = 0; i < n; i++)                                                        \
                F(acc, a[i * st[0]]);                                                              \
            o[0] = acc;                                                                            \
        } else {                                                                                   \
            for (int64_t i = 0; i < n; i++)                                                        \
                F(o[i * st[1]], a[i * st[0]]);                                                     \
        }                                                                                          \
    }
HESS_EXTREME_ROW(max_row, MAX_F)
HESS_EXTREME_ROW(min_row, MIN_F)

/* out (keep shape) = the max or min of a over the reduced axes. */
static void extreme(hess_tensor *out, bool min)
{
    const hess_tensor *a = out->src[0];
    for (int64_t i = 0; i < out->numel; i++)
        out->data[i] = min ? INFINITY : -INFINITY;
    hess__bin_args g = {out->data, a->data, NULL};
    const hess_tensor *t[2] = {a, out};
    hess__bcast_rows(a->ndim, a->shape, 2, t, min ? min_row : max_row, &g);
}

static void amax_forward(hess_tensor *out)
{
    extreme(out, false);
}

static void amin_forward(hess_tensor *out)
{
    extreme(out, true);
}

/* The max shifted out of logsumexp: 0 where it is not finite (PyTorch), so
 * that an all -Inf slice gives -Inf and a +Inf element +Inf, not NaN. */
static void lse_shift_forward(hess_tensor *out)
{
    extreme(out, false);
    for (int64_t i = 0; i < out->numel; i++)
        out->data[i] = isfinite(out->data[i]) ? out->data[i] : 0.0;
}

/* d out = sum over the slice of w da, w = the tie weights: the k elements
 * equal to the extreme get g / k each (PyTorch's amax), the others 0; w has
 * no derivative, so the second derivatives are 0. */
static HESS_VJP(amax_vjp)
{
    hess_tensor *a = out->src[0];
    gin[0] = hess__sum_like(ctx, pass, hess_mul(ctx, g, tie_weights(ctx, a, out)), a);
}

/* d out = sum over the slice of w da; tin[0] is never NULL: forward mode
 * calls a rule only when some source has a tangent, and amax has one source */
static HESS_JVP(amax_jvp)
{
    hess_tensor *w = tie_weights(ctx, out->src[0], out);
    return hess__sum_like(ctx, pass, hess_mul(ctx, tin[0], w), out);
}

/* a constant to differentiation: nothing flows back */
static HESS_VJP(lse_shift_vjp)
{
    (void)ctx, (void)pass, (void)out, (void)g;
    gin[0] = NULL;
}

/* Row b of out is made from row b of a when the leading axis is kept. */
static bool reduce_rowwise(const hess_tensor *out, int i)
{
    (void)i;
    const unsigned m = out->par.reduce.axes;
    return m != 0 && !(m & 1u);
}

static const hess_op_def op_amax = {.name = "amax",
                                    .formula = "out = max of a over axes (kept as 1)",
                                    .arity = 1,
                                    .flags = HESS_OPF_LINEAR,
                                    .shape = reduce_shape,
                                    .forward = amax_forward,
                                    .vjp = amax_vjp,
                                    .jvp = amax_jvp,
                                    .rowwise = reduce_rowwise};
static const hess_op_def op_amin = {.name = "amin",
                                    .formula = "out = min of a over axes (kept as 1)",
                                    .arity = 1,
                                    .flags = HESS_OPF_LINEAR,
                                    .shape = reduce_shape,
                                    .forward = amin_forward,
                                    .vjp = amax_vjp,
                                    .jvp = amax_jvp,
                                    .rowwise = reduce_rowwise};
static const hess_op_def op_lse_shift = {
    .name = "lse_shift",
    .formula = "out = max of a over axes (kept as 1), 0 where not finite; a constant",
    .arity = 1,
    .flags = HESS_OPF_CONSTANT,
    .shape = reduce_shape,
    .forward = lse_shift_forward,
    .vjp = lse_shift_vjp,
    .rowwise = reduce_rowwise};

/* def over mask of a, keep shape. */
static hess_tensor *reduce_node(
    hess_context *ctx, const hess_op_def *def, hess_tensor *a, unsigned mask, const char *fn)
{
    const hess_op_params par = {.reduce = {mask}};
    return hess__apply1(ctx, def, a, &par, fn);
}

/* ------------------------------------------------------------------------ */
/* The public reductions                                                    */
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
    if (!ctx || hess__check(ctx, a, fn) || !hess__norm_axis(ctx, a, &axis, fn))
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

/* The checks every reduction over axes starts with; false with the error
 * recorded. */
static bool reduce_args(hess_context *ctx,
                        hess_tensor *a,
                        size_t naxes,
                        const int *axes,
                        unsigned *mask,
                        const char *fn)
{
    return ctx && !hess__check(ctx, a, fn) && axes_mask(ctx, a, naxes, axes, mask, fn);
}

/* sum or mean over axes */
static hess_tensor *sum_axes_impl(hess_context *ctx,
                                  hess_tensor *a,
                                  size_t naxes,
                                  const int *axes,
                                  int keepdim,
                                  bool mean,
                                  const char *fn)
{
    unsigned m;
    if (!reduce_args(ctx, a, naxes, axes, &m, fn))
        return NULL;
    int64_t keep[HESS_DIMS], drop[HESS_DIMS], count;
    int nd;
    reduced_shapes(a, m, keep, drop, &nd, &count);
    hess_tensor *s = sum_over(ctx, a, m, keepdim);
    return mean ? hess_scale(ctx, s, 1.0 / (double)count) : s;
}

static hess_tensor *extreme_impl(hess_context *ctx,
                                 hess_tensor *a,
                                 size_t naxes,
                                 const int *axes,
                                 int keepdim,
                                 const hess_op_def *def,
                                 const char *fn)
{
    unsigned m;
    if (!reduce_args(ctx, a, naxes, axes, &m, fn))
        return NULL;
    /* a scalar has no axes: its amax is itself, one node like the others */
    return finish_keepdim(ctx, reduce_node(ctx, def, a, m, fn), a, m, keepdim);
}

/* M + log(sum(exp(a - M))) with M the max, 0 where infinite (PyTorch): M is
 * a constant to differentiation, and cancels, so every derivative is exact
 * (the first is softmax). */
static hess_tensor *logsumexp_impl(
    hess_context *ctx, hess_tensor *a, size_t naxes, const int *axes, int keepdim, const char *fn)
{
    unsigned m;
    if (!reduce_args(ctx, a, naxes, axes, &m, fn))
        return NULL;
    hess_tensor *M = reduce_node(ctx, &op_lse_shift, a, m, fn);
    hess_tensor *s = sum_over(ctx, hess_exp(ctx, hess_sub(ctx, a, M)), m, 1);
    return finish_keepdim(ctx, hess_add(ctx, hess_log(ctx, s), M), a, m, keepdim);
}

/* sum((a - mean)^2) / max(0, N - correction), N the elements per result; 1/0
 * is +Inf: +Inf, or NaN where the slice is constant (as PyTorch). */
static hess_tensor *var_impl(hess_context *ctx,
                             hess_tensor *a,
                             size_t naxes,
                             const int *axes,
                             int correction,
                             int keepdim,
                             bool sd,
                             const char *fn)
{
    unsigned m;
    if (!reduce_args(ctx, a, naxes, axes, &m, fn))
        return NULL;
    int64_t keep[HESS_DIMS], drop[HESS_DIMS], count;
    int nd;
    reduced_shapes(a, m, keep, drop, &nd, &count);
    const double div = (double)count - (double)correction;
    hess_tensor *mu = hess_scale(ctx, hess_sum_to(ctx, a, a->ndim, keep), 1.0 / (double)count);
    hess_tensor *ss = sum_over(ctx, hess_square(ctx, hess_sub(ctx, a, mu)), m, keepdim);
    hess_tensor *v = hess_scale(ctx, ss, div > 0 ? 1.0 / div : INFINITY);
    return sd ? hess__apply1(ctx, &op_sqrt0, v, NULL, fn) : v;
}

/* |a| as relu(a) + relu(-a): exact, with the derivative sign(a), 0 at 0. */
static hess_tensor *abs_of(hess_context *ctx, hess_tensor *a)
{
    return hess_add(ctx, hess_relu(ctx, a), hess_relu(ctx, hess_neg(ctx, a)));
}

static hess_tensor *norm_impl(hess_context *ctx, hess_tensor *a, double p)
{
    static const char fn[] = "hess_norm";
    if (!ctx || hess__check(ctx, a, fn))
        return NULL;
    if (p == 1.0)
        return hess_sum_to(ctx, abs_of(ctx, a), 0, NULL);
    if (p == 2.0)
        return hess__apply1(ctx, &op_sqrt0, hess_sum_to(ctx, hess_square(ctx, a), 0, NULL), NULL,
                            fn);
    if (p == INFINITY) {
        const unsigned all = (1u << a->ndim) - 1u;
        return finish_keepdim(ctx, reduce_node(ctx, &op_amax, abs_of(ctx, a), all, fn), a, all, 0);
    }
    hess__error(ctx, HESS_ERR_ARG, "%s: p = %g is not 1, 2 or INFINITY", fn, p);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Public entry points: errors from the ops they build name the function  */
/* the caller called.                                                       */
/* ------------------------------------------------------------------------ */

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
    return hess__api_leave(ctx, saved, sum_axis(ctx, a, axis, false, "hess_sum_axis"));
}

hess_tensor *hess_mean_axis(hess_context *ctx, hess_tensor *a, int axis)
{
    const char *saved = hess__api_enter(ctx, "hess_mean_axis");
    return hess__api_leave(ctx, saved, sum_axis(ctx, a, axis, true, "hess_mean_axis"));
}

hess_tensor *
hess_sum_axes(hess_context *ctx, hess_tensor *a, size_t naxes, const int *axes, int keepdim)
{
    static const char fn[] = "hess_sum_axes";
    const char *saved = hess__api_enter(ctx, fn);
    return hess__api_leave(ctx, saved, sum_axes_impl(ctx, a, naxes, axes, keepdim, false, fn));
}

hess_tensor *
hess_mean_axes(hess_context *ctx, hess_tensor *a, size_t naxes, const int *axes, int keepdim)
{
    static const char fn[] = "hess_mean_axes";
    const char *saved = hess__api_enter(ctx, fn);
    return hess__api_leave(ctx, saved, sum_axes_impl(ctx, a, naxes, axes, keepdim, true, fn));
}

hess_tensor *
hess_amax(hess_context *ctx, hess_tensor *a, size_t naxes, const int *axes, int keepdim)
{
    static const char fn[] = "hess_amax";
    const char *saved = hess__api_enter(ctx, fn);
    return hess__api_leave(ctx, saved, extreme_impl(ctx, a, naxes, axes, keepdim, &op_amax, fn));
}

hess_tensor *
hess_amin(hess_context *ctx, hess_tensor *a, size_t naxes, const int *axes, int keepdim)
{
    static const char fn[] = "hess_amin";
    const char *saved = hess__api_enter(ctx, fn);
    return hess__api_leave(ctx, saved, extreme_impl(ctx, a, naxes, axes, keepdim, &op_amin, fn));
}

hess_tensor *
hess_logsumexp(hess_context *ctx, hess_tensor *a, size_t naxes, const int *axes, int keepdim)
{
    static const char fn[] = "hess_logsumexp";
    const char *saved = hess__api_enter(ctx, fn);
    return hess__api_leave(ctx, saved, logsumexp_impl(ctx, a, naxes, axes, keepdim, fn));
}

hess_tensor *hess_var(
    hess_context *ctx, hess_tensor *a, size_t naxes, const int *axes, int correction, int keepdim)
{
    static const char fn[] = "hess_var";
    const char *saved = hess__api_enter(ctx, fn);
    return hess__api_leave(ctx, saved,
                           var_impl(ctx, a, naxes, axes, correction, keepdim, false, fn));
}

hess_tensor *hess_std(
    hess_context *ctx, hess_tensor *a, size_t naxes, const int *axes, int correction, int keepdim)
{
    static const char fn[] = "hess_std";
    const char *saved = hess__api_enter(ctx, fn);
    return hess__api_leave(ctx, saved,
                           var_impl(ctx, a, naxes, axes, correction, keepdim, true, fn));
}

hess_tensor *hess_norm(hess_context *ctx, hess_tensor *a, double p)
{
    const char *saved = hess__api_enter(ctx, "hess_norm");
    return hess__api_leave(ctx, saved, norm_impl(ctx, a, p));
}

/* ------------------------------------------------------------------------ */
/* The family                                                               */
/* ------------------------------------------------------------------------ */

static const hess_op_def *const reduce_ops[] = {&op_amax,      &op_amin,  &op_eq_mask,
                                                &op_lse_shift, &op_sqrt0, &op_recip0};
const hess__op_family hess__reduce_family = {reduce_ops, sizeof reduce_ops / sizeof reduce_ops[0]};
