/*
 * ops_binary.c -- broadcasting and the elementwise binary ops add, sub, mul,
 * div, the fused activation derivatives tanh_grad and sigmoid_grad, with the
 * broadcast pair sum_to / broadcast_to that are each other's adjoints.  Legend: `out` is the
 * result, `a`, `b` the operands; shapes align at the trailing dimension (NumPy).
 */
#include "hess_internal.h"

#include <math.h>
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

/* Calls row(k, off[], st_last[], n) for every row of the index space spanned by
 * shape[nd], where t[0..nt-1] are the operands; adjacent dimensions that every
 * operand walks contiguously are merged first, so same-shape operands give one
 * row and a bias add gives one row per sample. */
typedef void (*row_fn)(void *k, const int64_t *off, const int64_t *st, int64_t n);

static void
bcast_rows(int nd, const int64_t *shape, int nt, const hess_tensor *const t[], row_fn row, void *k)
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
        bool merge = m > 0;
        for (int j = 0; j < nt && merge; j++)
            merge = st[j][i] == ms[j][m - 1] * dims[m - 1];
        if (merge && m > 0) {
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
    int64_t idx[HESS_DIMS] = {0}, off[3] = {0, 0, 0}, last[3];
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

static bool broadcast_shape(const hess_tensor *a, const hess_tensor *b, int *nd, int64_t *shape)
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

/* ------------------------------------------------------------------------ */
/* Elementwise binary kernels                                               */
/* ------------------------------------------------------------------------ */

typedef struct {
    double *o;
    const double *a, *b;
} bin_args;

/* One row: o[i] = F(a[i*sa], b[i*sb]), specialised for the strides 0/1 so
 * that the compiler vectorises the common cases.  ATTR makes the AVX2 copy. */
#define HESS_BINARY_ROW_AS(name, F, ATTR)                                                          \
    ATTR static void name(void *k, const int64_t *off, const int64_t *st, int64_t n)               \
    {                                                                                              \
        bin_args *g = k;                                                                           \
        double *o = g->o + off[0];                                                                 \
        const double *a = g->a + off[1], *b = g->b + off[2];                                       \
        if (st[1] == 1 && st[2] == 1)                                                              \
            for (int64_t i = 0; i < n; i++)                                                        \
                o[i] = F(a[i], b[i]);                                                              \
        else if (st[1] == 1 && st[2] == 0) {                                                       \
            const double bv = b[0];                                                                \
            for (int64_t i = 0; i < n; i++)                                                        \
                o[i] = F(a[i], bv);                                                                \
        } else if (st[1] == 0 && st[2] == 1) {                                                     \
            const double av = a[0];                                                                \
            for (int64_t i = 0; i < n; i++)                                                        \
                o[i] = F(av, b[i]);                                                                \
        } else                                                                                     \
            for (int64_t i = 0; i < n; i++)                                                        \
                o[i] = F(a[i * st[1]], b[i * st[2]]);                                              \
    }

/* name and, on x86-64, name_avx2: the kernels a context picks from
 * (ctx->simd), which give the same bits */
#if HESS_SIMD_X86
#define HESS_BINARY_ROW(name, F)                                                                   \
    HESS_BINARY_ROW_AS(name, F, )                                                                  \
    HESS_BINARY_ROW_AS(name##_avx2, F, HESS_AVX2)
#define ROW_FOR(out, name) ((out)->ctx->simd ? name##_avx2 : name)
#else
#define HESS_BINARY_ROW(name, F) HESS_BINARY_ROW_AS(name, F, )
#define ROW_FOR(out, name)       name
#endif

/* sigmoid'(v) = sigmoid(v) sigmoid(-v) = e / (1 + e)^2 with e = exp(-|v|) <= 1:
 * one exp, no overflow, full relative accuracy in both tails */
static double dsigmoid1(double v)
{
    const double e = exp(-fabs(v)), d = 1.0 + e;
    return e / (d * d);
}

#define ADD_F(x, y)          ((x) + (y))
#define SUB_F(x, y)          ((x) - (y))
#define MUL_F(x, y)          ((x) * (y))
#define DIV_F(x, y)          ((x) / (y))
#define TANH_GRAD_F(x, y)    ((x) * (1.0 - (y) * (y)))
#define SIGMOID_GRAD_F(x, y) ((x)*dsigmoid1(y))

HESS_BINARY_ROW(add_row, ADD_F)
HESS_BINARY_ROW(sub_row, SUB_F)
HESS_BINARY_ROW(mul_row, MUL_F)
HESS_BINARY_ROW(div_row, DIV_F)
HESS_BINARY_ROW(tanh_grad_row, TANH_GRAD_F)
HESS_BINARY_ROW(sigmoid_grad_row, SIGMOID_GRAD_F)

static void binary_forward(hess_tensor *out, row_fn row)
{
    const hess_tensor *a = out->src[0], *b = out->src[1];
    bin_args g = {out->data, a->data, b->data};
    /* An operand with the result's element count is laid out like it, and one
     * element is a scalar: both are one row, without the general iterator. */
    if ((a->numel == out->numel || a->numel == 1) && (b->numel == out->numel || b->numel == 1)) {
        static const int64_t off[3] = {0, 0, 0};
        const int64_t st[3] = {1, a->numel == out->numel, b->numel == out->numel};
        row(&g, off, st, out->numel);
        return;
    }
    const hess_tensor *t[3] = {out, a, b};
    bcast_rows(out->ndim, out->shape, 3, t, row, &g);
}

static void add_forward(hess_tensor *out)
{
    binary_forward(out, ROW_FOR(out, add_row));
}
static void sub_forward(hess_tensor *out)
{
    binary_forward(out, ROW_FOR(out, sub_row));
}
static void mul_forward(hess_tensor *out)
{
    binary_forward(out, ROW_FOR(out, mul_row));
}
static void div_forward(hess_tensor *out)
{
    binary_forward(out, ROW_FOR(out, div_row));
}
static void tanh_grad_forward(hess_tensor *out)
{
    binary_forward(out, ROW_FOR(out, tanh_grad_row));
}
static void sigmoid_grad_forward(hess_tensor *out)
{
    binary_forward(out, ROW_FOR(out, sigmoid_grad_row));
}

/* d(a+b) = g da + g db, each summed back to its operand's shape */
static void add_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    if (HESS_NEED(ctx, 0))
        gin[0] = hess__sum_like(ctx, g, out->src[0]);
    if (HESS_NEED(ctx, 1))
        gin[1] = hess__sum_like(ctx, g, out->src[1]);
}

static void sub_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    if (HESS_NEED(ctx, 0))
        gin[0] = hess__sum_like(ctx, g, out->src[0]);
    if (HESS_NEED(ctx, 1))
        gin[1] = hess__sum_like(ctx, hess_neg(ctx, g), out->src[1]);
}

static void mul_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    hess_tensor *a = out->src[0], *b = out->src[1];
    if (HESS_NEED(ctx, 0))
        gin[0] = hess__sum_like(ctx, hess_mul(ctx, g, b), a);
    if (HESS_NEED(ctx, 1))
        gin[1] = hess__sum_like(ctx, hess_mul(ctx, g, a), b);
}

/* d(a/b) = g/b da - g*out/b db */
static void div_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    hess_tensor *a = out->src[0], *b = out->src[1];
    hess_tensor *gb = hess_div(ctx, g, b);
    if (HESS_NEED(ctx, 0))
        gin[0] = hess__sum_like(ctx, gb, a);
    if (HESS_NEED(ctx, 1))
        gin[1] = hess__sum_like(ctx, hess_neg(ctx, hess_mul(ctx, gb, out)), b);
}

/* out = g (1 - y^2):  d/dg = (1 - y^2),  d/dy = -2 g y.  The factor -2 g y
 * is formed before it meets the cotangent: in a Hessian sweep g and y are
 * fixed, so only the last product is replayed for each block of rows. */
static void
tanh_grad_backward(hess_context *ctx, hess_tensor *out, hess_tensor *c, hess_tensor *gin[])
{
    hess_tensor *g = out->src[0], *y = out->src[1];
    if (HESS_NEED(ctx, 0))
        gin[0] = hess__sum_like(ctx, hess__tanh_grad(ctx, c, y), g);
    if (HESS_NEED(ctx, 1))
        gin[1] = hess__sum_like(
            ctx, hess_mul(ctx, c, hess__affine(ctx, hess_mul(ctx, g, y), -2.0, 0.0)), y);
}

/* out = g s'(a) with s' = sigmoid':  d/dg = s'(a),  d/da = g s''(a), where
 * s'' = s' (1 - 2 sigmoid) = -s' tanh(a/2) keeps its relative accuracy in the
 * tails; the fixed factor is formed first, as for tanh_grad. */
static void
sigmoid_grad_backward(hess_context *ctx, hess_tensor *out, hess_tensor *c, hess_tensor *gin[])
{
    hess_tensor *g = out->src[0], *a = out->src[1];
    if (HESS_NEED(ctx, 0))
        gin[0] = hess__sum_like(ctx, hess__sigmoid_grad(ctx, c, a), g);
    if (HESS_NEED(ctx, 1)) {
        hess_tensor *t = hess_tanh(ctx, hess__affine(ctx, a, 0.5, 0.0));
        hess_tensor *d2 =
            hess__sigmoid_grad(ctx, hess__affine(ctx, hess_mul(ctx, g, t), -1.0, 0.0), a);
        gin[1] = hess__sum_like(ctx, hess_mul(ctx, c, d2), a);
    }
}

static hess_tensor *
binary(hess_context *ctx, hess_op op, hess_tensor *a, hess_tensor *b, const char *fn)
{
    if (!ctx || hess__check(ctx, a, fn) || hess__check(ctx, b, fn))
        return NULL;
    int nd;
    int64_t shape[HESS_DIMS];
    if (!broadcast_shape(a, b, &nd, shape)) {
        char sa[96], sb[96];
        hess__error(ctx, HESS_ERR_SHAPE, "%s: shapes %s and %s do not broadcast", fn,
                    hess__shape_str(sa, a->ndim, a->shape), hess__shape_str(sb, b->ndim, b->shape));
        return NULL;
    }
    return hess__finish(ctx, hess__node(ctx, op, nd, shape, a, b, fn), fn);
}

hess_tensor *hess_add(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return binary(ctx, HESS_OP_ADD, a, b, "hess_add");
}

hess_tensor *hess_sub(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return binary(ctx, HESS_OP_SUB, a, b, "hess_sub");
}

hess_tensor *hess_mul(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return binary(ctx, HESS_OP_MUL, a, b, "hess_mul");
}

hess_tensor *hess_div(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return binary(ctx, HESS_OP_DIV, a, b, "hess_div");
}

hess_tensor *hess__tanh_grad(hess_context *ctx, hess_tensor *g, hess_tensor *y)
{
    return binary(ctx, HESS_OP_TANH_GRAD, g, y, "hess_tanh");
}

hess_tensor *hess__sigmoid_grad(hess_context *ctx, hess_tensor *g, hess_tensor *a)
{
    return binary(ctx, HESS_OP_SIGMOID_GRAD, g, a, "hess_sigmoid");
}

/* ------------------------------------------------------------------------ */
/* sum_to and broadcast_to                                                  */
/* ------------------------------------------------------------------------ */

/* Accumulates a row of the big operand into the (strided) small one. */
#define HESS_SUM_ROW_AS(name, ATTR)                                                                \
    ATTR static void name(void *k, const int64_t *off, const int64_t *st, int64_t n)               \
    {                                                                                              \
        bin_args *g = k;                                                                           \
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
    bin_args g = {out->data, a->data, NULL};
    const hess_tensor *t[2] = {a, out};
    bcast_rows(a->ndim, a->shape, 2, t, ROW_FOR(out, sum_row), &g);
}

static void copy_row(void *k, const int64_t *off, const int64_t *st, int64_t n)
{
    bin_args *g = k;
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
    bin_args g = {out->data, out->src[0]->data, NULL};
    const hess_tensor *t[2] = {out, out->src[0]};
    bcast_rows(out->ndim, out->shape, 2, t, copy_row, &g);
}

static void sum_to_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    gin[0] = hess__broadcast_like(ctx, g, out->src[0]);
}

static void
broadcast_to_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    gin[0] = hess__sum_like(ctx, g, out->src[0]);
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

static bool shape_is(const hess_tensor *a, int nd, const int64_t *shape);

static hess_tensor *reshape_op(
    hess_context *ctx, hess_op op, hess_tensor *a, int ndim, const int64_t *shape, const char *fn)
{
    if (!ctx || hess__check(ctx, a, fn))
        return NULL;
    if (!hess__check_shape(ctx, ndim, shape, ctx->batch_k ? HESS_DIMS : HESS_MAX_DIMS, fn))
        return NULL;
    /* a count that cannot match is a shape error below; a broadcast whose
     * count overflows is refused by hess__node */
    bool ok;
    if (op == HESS_OP_SUM_TO)
        ok = broadcasts_to(ndim, shape, a->ndim, a->shape);
    else if (op == HESS_OP_BROADCAST_TO)
        ok = broadcasts_to(a->ndim, a->shape, ndim, shape);
    else { /* the count, stopping past a->numel (dimensions are >= 1 here) */
        int64_t n = 1;
        ok = true;
        for (int i = 0; i < ndim && ok; i++) {
            ok = hess__mul_within(n, shape[i], a->numel);
            n *= ok ? shape[i] : 1;
        }
        ok = ok && n == a->numel;
    }
    if (!ok) {
        char sa[96], sb[96];
        hess__error(ctx, HESS_ERR_SHAPE, "%s: cannot turn %s into %s", fn,
                    hess__shape_str(sa, a->ndim, a->shape), hess__shape_str(sb, ndim, shape));
        return NULL;
    }
    /* reshape(reshape(x)) back to x's shape is x, when both were made alike
     * (recorded or detached) and x is not a parameter, whose values change */
    if (op == HESS_OP_RESHAPE && a->op == HESS_OP_RESHAPE && shape_is(a->src[0], ndim, shape) &&
        !(a->src[0]->flags & HESS_T_PARAM) &&
        (a->flags & HESS_T_DETACHED) == (a->src[0]->flags & HESS_T_DETACHED) &&
        (a->flags & HESS_T_DETACHED) == (ctx->no_record ? HESS_T_DETACHED : 0u))
        return a->src[0];
    return hess__finish(ctx, hess__node(ctx, op, ndim, shape, a, NULL, fn), fn);
}

hess_tensor *hess_sum_to(hess_context *ctx, hess_tensor *a, int ndim, const int64_t *shape)
{
    return reshape_op(ctx, HESS_OP_SUM_TO, a, ndim, shape, "hess_sum_to");
}

hess_tensor *hess_broadcast_to(hess_context *ctx, hess_tensor *a, int ndim, const int64_t *shape)
{
    return reshape_op(ctx, HESS_OP_BROADCAST_TO, a, ndim, shape, "hess_broadcast_to");
}

hess_tensor *hess_reshape(hess_context *ctx, hess_tensor *a, int ndim, const int64_t *shape)
{
    return reshape_op(ctx, HESS_OP_RESHAPE, a, ndim, shape, "hess_reshape");
}

static void reshape_forward(hess_tensor *out)
{
    if (out->data != out->src[0]->data) /* a view needs nothing */
        memcpy(out->data, out->src[0]->data, (size_t)out->numel * sizeof(double));
}

static void
reshape_backward(hess_context *ctx, hess_tensor *out, hess_tensor *g, hess_tensor *gin[])
{
    gin[0] = hess__reshape_like(ctx, g, out->src[0]);
}

/* The shape a cotangent of `like` has in the current pass: like's shape, behind
 * the direction dimension [k] while a batched pass runs (ctx->batch_k > 0). */
static int cot_shape(const hess_context *ctx, const hess_tensor *like, int64_t *shape)
{
    int nd = 0;
    if (ctx->batch_k)
        shape[nd++] = ctx->batch_k;
    for (int i = 0; i < like->ndim; i++)
        shape[nd++] = like->shape[i];
    return nd;
}

/* Whether a already has that shape (the common case, checked without a copy). */
static bool is_cot_shape(const hess_context *ctx, const hess_tensor *a, const hess_tensor *like)
{
    const int off = ctx->batch_k ? 1 : 0;
    if (a->ndim != like->ndim + off || (off && a->shape[0] != ctx->batch_k))
        return false;
    for (int i = 0; i < like->ndim; i++)
        if (a->shape[off + i] != like->shape[i])
            return false;
    return true;
}

/* [k, 1, ..., 1, s...]: the batched tensor a of rank 1 + r padded with ones to
 * rank 1 + rank, so that NumPy alignment pairs its dims with like's, not k. */
static int padded_shape(const hess_tensor *a, int rank, int64_t *shape)
{
    int nd = 0, pad = rank - (a->ndim - 1);
    shape[nd++] = a->shape[0];
    for (int i = 0; i < pad; i++)
        shape[nd++] = 1;
    for (int i = 1; i < a->ndim; i++)
        shape[nd++] = a->shape[i];
    return nd;
}

static bool shape_is(const hess_tensor *a, int nd, const int64_t *shape)
{
    if (a->ndim != nd)
        return false;
    for (int i = 0; i < nd; i++)
        if (a->shape[i] != shape[i])
            return false;
    return true;
}

hess_tensor *hess__sum_like(hess_context *ctx, hess_tensor *a, const hess_tensor *like)
{
    if (!a || is_cot_shape(ctx, a, like))
        return a;
    int64_t to[HESS_DIMS];
    const int nd = cot_shape(ctx, like, to);
    if (!ctx->batch_k)
        return hess_sum_to(ctx, a, nd, to);
    /* sum [k, X...] to [k, 1.., like...], then drop the padding */
    int64_t keep[HESS_DIMS];
    int nk = 0, pad = (a->ndim - 1) - like->ndim;
    keep[nk++] = ctx->batch_k;
    for (int i = 0; i < pad; i++)
        keep[nk++] = 1;
    for (int i = 0; i < like->ndim; i++)
        keep[nk++] = like->shape[i];
    return hess__reshape_any(ctx, hess_sum_to(ctx, a, nk, keep), nd, to);
}

hess_tensor *hess__broadcast_like(hess_context *ctx, hess_tensor *a, const hess_tensor *like)
{
    if (!a || is_cot_shape(ctx, a, like))
        return a;
    int64_t to[HESS_DIMS];
    const int nd = cot_shape(ctx, like, to);
    if (ctx->batch_k) {
        int64_t pad[HESS_DIMS];
        int np = padded_shape(a, like->ndim, pad);
        a = hess__reshape_any(ctx, a, np, pad);
    }
    return hess_broadcast_to(ctx, a, nd, to);
}

hess_tensor *hess__reshape_like(hess_context *ctx, hess_tensor *a, const hess_tensor *like)
{
    int64_t to[HESS_DIMS];
    const int nd = a ? cot_shape(ctx, like, to) : 0;
    return hess__reshape_any(ctx, a, nd, to);
}

hess_tensor *hess__reshape_any(hess_context *ctx, hess_tensor *a, int nd, const int64_t *shape)
{
    if (!a || shape_is(a, nd, shape))
        return a;
    return reshape_op(ctx, HESS_OP_RESHAPE, a, nd, shape, "hess_reshape");
}

hess_tensor *hess__zeros_like(hess_context *ctx, const hess_tensor *like)
{
    int64_t to[HESS_DIMS];
    const int nd = cot_shape(ctx, like, to);
    hess_tensor *t = hess__node(ctx, HESS_OP_NONE, nd, to, NULL, NULL, "hess_grad");
    if (t)
        memset(t->data, 0, (size_t)t->numel * sizeof(double));
    return t;
}

/* ------------------------------------------------------------------------ */
/* Registry entries                                                         */
/* ------------------------------------------------------------------------ */

const hess_op_def hess__op_add = {
    .name = "add", .arity = 2, .forward = add_forward, .backward = add_backward};
const hess_op_def hess__op_sub = {
    .name = "sub", .arity = 2, .forward = sub_forward, .backward = sub_backward};
const hess_op_def hess__op_mul = {
    .name = "mul", .arity = 2, .forward = mul_forward, .backward = mul_backward};
const hess_op_def hess__op_div = {
    .name = "div", .arity = 2, .forward = div_forward, .backward = div_backward};
const hess_op_def hess__op_tanh_grad = {
    .name = "tanh_grad", .arity = 2, .forward = tanh_grad_forward, .backward = tanh_grad_backward};
const hess_op_def hess__op_sigmoid_grad = {.name = "sigmoid_grad",
                                           .arity = 2,
                                           .forward = sigmoid_grad_forward,
                                           .backward = sigmoid_grad_backward};
const hess_op_def hess__op_sum_to = {
    .name = "sum_to", .arity = 1, .forward = sum_to_forward, .backward = sum_to_backward};
const hess_op_def hess__op_broadcast_to = {.name = "broadcast_to",
                                           .arity = 1,
                                           .forward = broadcast_to_forward,
                                           .backward = broadcast_to_backward};
const hess_op_def hess__op_reshape = {
    .name = "reshape", .arity = 1, .forward = reshape_forward, .backward = reshape_backward};
