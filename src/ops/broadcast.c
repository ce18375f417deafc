/*
 * broadcast.c -- NumPy broadcasting: the iteration the elementwise kernels
 * share, and the pair sum_to / broadcast_to, each other's adjoints.  Legend:
 * shapes align at the trailing dimension.
 */
#include "ops.h"

#include <string.h>

/* ------------------------------------------------------------------------ */
/* Broadcast iteration                                                      */
/* ------------------------------------------------------------------------ */

/* Strides of t's elements in the index space of shape[nd] (0 where t repeats). */
static void bcast_strides(const hess_tensor *t, int nd, const int64_t *shape, int64_t *st)
{
    int off = nd - t->ndim;
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        int j = i - off;
        st[i] = (j < 0 || (t->shape[j] == 1 && shape[i] != 1)) ? 0 : s;
        if (j >= 0)
            s *= t->shape[j];
    }
}

void hess__bcast_rows(
    int nd, const int64_t *shape, int nt, const hess_tensor *const t[], hess__row_fn row, void *k)
{
    int64_t st[3][HESS_DIMS], dims[HESS_DIMS];
    int m = 0;
    for (int j = 0; j < nt; j++)
        bcast_strides(t[j], nd, shape, st[j]);
    /* merge: walk from the last dimension, folding i into the current group */
    int64_t ms[3][HESS_DIMS];
    for (int i = nd - 1; i >= 0; i--) {
        if (shape[i] == 1)
            continue;
        bool merge = m > 0; /* into the group before, when there is one */
        for (int j = 0; j < nt && merge; j++)
            merge = st[j][i] == ms[j][m - 1] * dims[m - 1];
        if (merge) {
            dims[m - 1] *= shape[i];
        } else {
            dims[m] = shape[i];
            for (int j = 0; j < nt; j++)
                ms[j][m] = st[j][i];
            m++;
        }
    }
    if (m == 0) { /* every dimension is 1: one element */
        dims[0] = 1;
        for (int j = 0; j < nt; j++)
            ms[j][0] = 0;
        m = 1;
    }
    /* dims[0] is the innermost; iterate the rest with counters */
    int64_t idx[HESS_DIMS] = {0}, off[3] = {0, 0, 0}, last[3] = {0, 0, 0};
    for (int j = 0; j < nt; j++)
        last[j] = ms[j][0];
    for (;;) {
        row(k, off, last, dims[0]);
        int d = 1;
        for (; d < m; d++) {
            idx[d]++;
            for (int j = 0; j < nt; j++)
                off[j] += ms[j][d];
            if (idx[d] < dims[d])
                break;
            for (int j = 0; j < nt; j++)
                off[j] -= ms[j][d] * dims[d];
            idx[d] = 0;
        }
        if (d >= m)
            return;
    }
}

bool hess__broadcast_shape(const hess_tensor *a, const hess_tensor *b, int *nd, int64_t *shape)
{
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return false;
        shape[i] = da == 1 ? db : da;
    }
    *nd = n;
    return true;
}

void hess__binary_forward(hess_tensor *out, hess__row_fn row)
{
    const hess_tensor *a = out->src[0], *b = out->src[1];
    hess__bin_args g = {out->data, a->data, b->data};
    /* An operand with the result's element count is laid out like it, and one
     * element is a scalar: both are one row, without the general iterator. */
    if ((a->numel == out->numel || a->numel == 1) && (b->numel == out->numel || b->numel == 1)) {
        static const int64_t off[3] = {0, 0, 0};
        const int64_t st[3] = {1, a->numel == out->numel, b->numel == out->numel};
        row(&g, off, st, out->numel);
        return;
    }
    const hess_tensor *t[3] = {out, a, b};
    hess__bcast_rows(out->ndim, out->shape, 3, t, row, &g);
}

/* ------------------------------------------------------------------------ */
/* sum_to and broadcast_to                                                  */
/* ------------------------------------------------------------------------ */

/* Accumulates a row of the big operand into the (strided) small one. */
#define HESS_SUM_ROW_AS(name, ATTR)                                                                \
    ATTR static void name(void *k, const int64_t *off, const int64_t *st, int64_t n)               \
    {                                                                                              \
        hess__bin_args *g = k;                                                                     \
        const double *a = g->a + off[0];                                                           \
        double *o = g->o + off[1];                                                                 \
        if (st[1] == 0) {                                                                          \
            double s = 0.0;                                                                        \
            for (int64_t i = 0; i < n; i++)                                                        \
                s += a[i * st[0]];                                                                 \
            o[0] += s;                                                                             \
        } else if (st[0] == 1 && st[1] == 1) {                                                     \
            for (int64_t i = 0; i < n; i++)                                                        \
                o[i] += a[i];                                                                      \
        } else {                                                                                   \
            for (int64_t i = 0; i < n; i++)                                                        \
                o[i * st[1]] += a[i * st[0]];                                                      \
        }                                                                                          \
    }
HESS_SUM_ROW_AS(sum_row, )
#if HESS_SIMD_X86
HESS_SUM_ROW_AS(sum_row_avx2, HESS_AVX2)
#endif

static void sum_to_forward(hess_tensor *out)
{
    hess_tensor *a = out->src[0];
    if (out->numel == 1) { /* a full sum */
        double acc = 0.0;
        for (int64_t i = 0; i < a->numel; i++)
            acc += a->data[i];
        out->data[0] = acc;
        return;
    }
    memset(out->data, 0, (size_t)out->numel * sizeof(double));
    hess__bin_args g = {out->data, a->data, NULL};
    const hess_tensor *t[2] = {a, out};
    hess__bcast_rows(a->ndim, a->shape, 2, t, HESS_ROW_FOR(out, sum_row), &g);
}

static void copy_row(void *k, const int64_t *off, const int64_t *st, int64_t n)
{
    hess__bin_args *g = k;
    double *o = g->o + off[0];
    const double *a = g->a + off[1];
    if (st[1] == 0) {
        const double v = a[0];
        for (int64_t i = 0; i < n; i++)
            o[i] = v;
    } else if (st[1] == 1) {
        memcpy(o, a, (size_t)n * sizeof(double));
    } else {
        for (int64_t i = 0; i < n; i++)
            o[i] = a[i * st[1]];
    }
}

static void broadcast_to_forward(hess_tensor *out)
{
    if (out->src[0]->numel == 1) { /* a fill */
        const double v = out->src[0]->data[0];
        for (int64_t i = 0; i < out->numel; i++)
            out->data[i] = v;
        return;
    }
    hess__bin_args g = {out->data, out->src[0]->data, NULL};
    const hess_tensor *t[2] = {out, out->src[0]};
    hess__bcast_rows(out->ndim, out->shape, 2, t, copy_row, &g);
}

/* d sum_to(a) = broadcast(g) */
static HESS_VJP(sum_to_vjp)
{
    gin[0] = hess__broadcast_like(ctx, pass, g, out->src[0]);
}

/* d broadcast_to(a) = sum_to(g) */
static HESS_VJP(broadcast_to_vjp)
{
    gin[0] = hess__sum_like(ctx, pass, g, out->src[0]);
}

/* True when small broadcasts to big (NumPy rules, small no longer than big). */
static bool broadcasts_to(int nsmall, const int64_t *small, int nbig, const int64_t *big)
{
    if (nsmall > nbig)
        return false;
    for (int i = 0; i < nsmall; i++) {
        int64_t s = small[nsmall - 1 - i], b = big[nbig - 1 - i];
        if (s != b && s != 1)
            return false;
    }
    return true;
}

/* sum_to and broadcast_to are linear: their tangents are the op applied to
 * the source's tangent. */
static HESS_JVP(sum_to_jvp)
{
    return hess__sum_like(ctx, pass, tin[0], out); /* NULL stays NULL */
}

static HESS_JVP(broadcast_to_jvp)
{
    return hess__lift(ctx, pass, tin[0], out);
}

static const hess_op_def op_sum_to = {.name = "sum_to",
                                      .formula = "out = a summed over its broadcast dims",
                                      .arity = 1,
                                      .flags = HESS_OPF_LINEAR,
                                      .forward = sum_to_forward,
                                      .vjp = sum_to_vjp,
                                      .jvp = sum_to_jvp,
                                      .rowwise = hess__rowwise_same_rank};
static const hess_op_def op_broadcast_to = {.name = "broadcast_to",
                                            .formula = "out = a repeated to a shape",
                                            .arity = 1,
                                            .flags = HESS_OPF_LINEAR,
                                            .forward = broadcast_to_forward,
                                            .vjp = broadcast_to_vjp,
                                            .jvp = broadcast_to_jvp,
                                            .rowwise = hess__rowwise_same_rank};

/* sum_to (sum) or broadcast_to a's values to shape[nd], nd <= max_dims. */
static hess_tensor *to(hess_context *ctx,
                       hess_tensor *a,
                       bool sum,
                       int nd,
                       const int64_t *shape,
                       int max_dims,
                       const char *fn)
{
    if (!ctx || hess__check(ctx, a, fn) || !hess__check_shape(ctx, nd, shape, max_dims, fn))
        return NULL;
    const bool ok = sum ? broadcasts_to(nd, shape, a->ndim, a->shape)
                        : broadcasts_to(a->ndim, a->shape, nd, shape);
    if (!ok) {
        char sa[96], sb[96];
        hess__error(ctx, HESS_ERR_SHAPE, "%s: cannot turn %s into %s", fn,
                    hess__shape_str(sa, a->ndim, a->shape), hess__shape_str(sb, nd, shape));
        return NULL;
    }
    /* a broadcast whose count overflows is refused by hess__node */
    return hess__finish(
        ctx, hess__node(ctx, sum ? &op_sum_to : &op_broadcast_to, nd, shape, a, NULL, fn), fn);
}

hess_tensor *hess_sum_to(hess_context *ctx, hess_tensor *a, int ndim, const int64_t *shape)
{
    return to(ctx, a, true, ndim, shape, HESS_MAX_DIMS, "hess_sum_to");
}

hess_tensor *hess_broadcast_to(hess_context *ctx, hess_tensor *a, int ndim, const int64_t *shape)
{
    return to(ctx, a, false, ndim, shape, HESS_MAX_DIMS, "hess_broadcast_to");
}

hess_tensor *hess__sum_to(hess_context *ctx, hess_tensor *a, int nd, const int64_t *shape)
{
    return to(ctx, a, true, nd, shape, HESS_DIMS, "hess_sum_to");
}

hess_tensor *hess__broadcast_to(hess_context *ctx, hess_tensor *a, int nd, const int64_t *shape)
{
    return to(ctx, a, false, nd, shape, HESS_DIMS, "hess_broadcast_to");
}

static const hess_op_def *const broadcast_ops[] = {&op_sum_to, &op_broadcast_to};
const hess__op_family hess__broadcast_family = {broadcast_ops,
                                                sizeof broadcast_ops / sizeof broadcast_ops[0]};
