/*
 * index.c -- selections along an axis and their adjoints: slice and
 * slice_scatter (into zeros), index_select and index_add, gather and
 * scatter_add (torch.gather and Tensor.scatter_add_ into zeros), cat (two
 * at a time) and stack (unsqueeze, then cat).  The vjp rule of each
 * selection is its adjoint and the adjoint's is the selection again, so every
 * order of derivative exists; all are linear, and each tangent is the op
 * applied to the source's tangent.  The selections copy each result element
 * from one source element (HESS_OPF_REINDEX); the adjoints that add several
 * elements into one (index_add, scatter_add) are not re-indexings.
 *
 * Legend: a tensor split at the axis as [outer, n, inner].  Axes in the
 * records are >= 0; a rule that meets a cotangent or tangent with the
 * directions of a batched pass in front ([k, ...]) shifts the axis by the
 * dims in front (lead).
 */
#include "ops.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Shared                                                                   */
/* ------------------------------------------------------------------------ */

static void split(const hess_tensor *t, int axis, int64_t *outer, int64_t *inner)
{
    *outer = hess__numel(axis, t->shape);
    *inner = hess__numel(t->ndim - axis - 1, t->shape + axis + 1);
}

/* The dims t (a cotangent or a tangent) has in front of those of like. */
static int lead_of(const hess_tensor *t, const hess_tensor *like)
{
    return t->ndim - like->ndim;
}

static bool axis_in(hess_context *ctx, const hess_tensor *a, int axis, const char *fn)
{
    if (axis >= 0 && axis < a->ndim)
        return true;
    char s[96];
    hess__error(ctx, HESS_ERR_ARG, "%s: axis %d is out of range for %s", fn, axis,
                hess__shape_str(s, a->ndim, a->shape));
    return false;
}

/* Rows (the leading dim) stay rows unless the axis is the leading one. */
static bool take_rowwise(const hess_tensor *out, int i)
{
    (void)i;
    return out->par.take.axis != 0;
}

static bool axis_rowwise(const hess_tensor *out, int i)
{
    return i == 0 && out->par.axis.axis != 0;
}

/* Copies n blocks of inner doubles, block j of y from block pos(j) of x. */
static void copy_block(double *y, const double *x, int64_t inner)
{
    if (inner == 1)
        *y = *x;
    else
        memcpy(y, x, (size_t)inner * sizeof *y);
}

static void add_block(double *y, const double *x, int64_t inner)
{
    for (int64_t i = 0; i < inner; i++)
        y[i] += x[i];
}

/* ------------------------------------------------------------------------ */
/* slice and slice_scatter                                                  */
/* ------------------------------------------------------------------------ */

/* Whether count positions start + j step (j < count) lie in [0, n). */
static bool positions_fit(int64_t start, int64_t step, int64_t count, int64_t n)
{
    return start >= 0 && step >= 1 && count >= 1 && start < n &&
           count - 1 <= (n - 1 - start) / step;
}

/* slice: a with len positions along the axis; slice_scatter: g with the
 * axis len long, g's positions placed at start + j step. */
static bool slices_shape(hess_context *ctx,
                         hess_tensor *const src[],
                         const hess_op_params *par,
                         int *ndim,
                         int64_t *shape,
                         const char *fn,
                         bool scatter)
{
    const hess_tensor *a = src[0];
    const hess_op_params zero = {.take = {0, 0, {{0, 0}}}};
    const hess_op_params *p = par ? par : &zero;
    const int axis = p->take.axis;
    if (!axis_in(ctx, a, axis, fn))
        return false;
    const int64_t count = scatter ? a->shape[axis] : p->take.len;
    const int64_t n = scatter ? p->take.len : a->shape[axis];
    if (!positions_fit(p->take.start, p->take.step, count, n)) {
        char s[96];
        hess__error(ctx, HESS_ERR_ARG,
                    "%s: %lld positions from %lld by step %lld do not fit a length %lld (axis "
                    "%d of %s)",
                    fn, (long long)count, (long long)p->take.start, (long long)p->take.step,
                    (long long)n, axis, hess__shape_str(s, a->ndim, a->shape));
        return false;
    }
    *ndim = a->ndim;
    memcpy(shape, a->shape, (size_t)a->ndim * sizeof *shape);
    shape[axis] = scatter ? n : count;
    return true;
}

static bool slice_shape(hess_context *ctx,
                        hess_tensor *const src[],
                        const hess_op_params *par,
                        int *ndim,
                        int64_t *shape,
                        const char *fn)
{
    return slices_shape(ctx, src, par, ndim, shape, fn, false);
}

static bool slice_scatter_shape(hess_context *ctx,
                                hess_tensor *const src[],
                                const hess_op_params *par,
                                int *ndim,
                                int64_t *shape,
                                const char *fn)
{
    return slices_shape(ctx, src, par, ndim, shape, fn, true);
}

/* out[o, j, i] = a[o, start + j step, i] */
static void slice_forward(hess_tensor *out)
{
    const hess_tensor *a = out->src[0];
    const int axis = out->par.take.axis;
    const int64_t n = a->shape[axis], m = out->shape[axis];
    const int64_t start = out->par.take.start, step = out->par.take.step;
    int64_t outer, inner;
    split(a, axis, &outer, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < m; j++)
            copy_block(out->data + (o * m + j) * inner,
                       a->data + (o * n + start + j * step) * inner, inner);
}

/* out = zeros with out[o, start + j step, i] = g[o, j, i] */
static void slice_scatter_forward(hess_tensor *out)
{
    const hess_tensor *g = out->src[0];
    const int axis = out->par.take.axis;
    const int64_t n = out->shape[axis], m = g->shape[axis];
    const int64_t start = out->par.take.start, step = out->par.take.step;
    int64_t outer, inner;
    split(out, axis, &outer, &inner);
    memset(out->data, 0, (size_t)out->numel * sizeof *out->data);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < m; j++)
            copy_block(out->data + (o * n + start + j * step) * inner,
                       g->data + (o * m + j) * inner, inner);
}

static const hess_op_def op_slice, op_slice_scatter;

static hess_tensor *slices_node(hess_context *ctx,
                                const hess_op_def *def,
                                hess_tensor *a,
                                int axis,
                                int64_t start,
                                int64_t step,
                                int64_t len,
                                const char *fn)
{
    if (!a)
        return NULL;
    /* every position, in order: a itself */
    if (start == 0 && step == 1 && axis >= 0 && axis < a->ndim && len == a->shape[axis])
        return a;
    hess_op_params par = {.take = {axis, len, {{start, step}}}};
    return hess__apply1(ctx, def, a, &par, fn);
}

/* d slice(a) = slice(da): the cotangent placed into zeros of a's length */
static HESS_VJP(slice_vjp)
{
    (void)pass;
    const int axis = out->par.take.axis;
    gin[0] = slices_node(ctx, &op_slice_scatter, g, axis + lead_of(g, out), out->par.take.start,
                         out->par.take.step, out->src[0]->shape[axis], "hess_slice");
}

static HESS_JVP(slice_jvp)
{
    (void)pass;
    hess_tensor *t = tin[0];
    const int axis = out->par.take.axis;
    return t ? slices_node(ctx, &op_slice, t, axis + lead_of(t, out->src[0]), out->par.take.start,
                           out->par.take.step, out->shape[axis], "hess_slice")
             : NULL;
}

/* d slice_scatter(g) = slice_scatter(dg): the cotangent sliced back */
static HESS_VJP(slice_scatter_vjp)
{
    (void)pass;
    const int axis = out->par.take.axis;
    gin[0] = slices_node(ctx, &op_slice, g, axis + lead_of(g, out), out->par.take.start,
                         out->par.take.step, out->src[0]->shape[axis], "hess_slice");
}

static HESS_JVP(slice_scatter_jvp)
{
    (void)pass;
    hess_tensor *t = tin[0];
    const int axis = out->par.take.axis;
    return t ? slices_node(ctx, &op_slice_scatter, t, axis + lead_of(t, out->src[0]),
                           out->par.take.start, out->par.take.step, out->shape[axis], "hess_slice")
             : NULL;
}

static const hess_op_def op_slice = {.name = "slice",
                                     .formula = "out[.., j, ..] = a[.., start + j step, ..]",
                                     .arity = 1,
                                     .flags = HESS_OPF_LINEAR | HESS_OPF_REINDEX,
                                     .shape = slice_shape,
                                     .forward = slice_forward,
                                     .vjp = slice_vjp,
                                     .jvp = slice_jvp,
                                     .rowwise = take_rowwise};
static const hess_op_def op_slice_scatter = {
    .name = "slice_scatter",
    .formula = "out = zeros, out[.., start + j step, ..] = a[.., j, ..]",
    .arity = 1,
    .flags = HESS_OPF_LINEAR | HESS_OPF_REINDEX,
    .shape = slice_scatter_shape,
    .forward = slice_scatter_forward,
    .vjp = slice_scatter_vjp,
    .jvp = slice_scatter_jvp,
    .rowwise = take_rowwise};

/* Python's a[start:stop:step] bounds for a length n and step >= 1: negative
 * ones count from the end, then both are clipped to [0, n]; the count of
 * positions (0 when empty). */
static int64_t python_slice(int64_t n, int64_t *start, int64_t *stop, int64_t step)
{
    int64_t b[2] = {*start, *stop};
    for (int k = 0; k < 2; k++) {
        if (b[k] < 0)
            b[k] = b[k] < -n ? 0 : b[k] + n;
        if (b[k] > n)
            b[k] = n;
    }
    *start = b[0];
    *stop = b[1];
    return b[1] > b[0] ? (b[1] - b[0] - 1) / step + 1 : 0;
}

hess_tensor *
hess_slice(hess_context *ctx, hess_tensor *a, int axis, int64_t start, int64_t stop, int64_t step)
{
    static const char fn[] = "hess_slice";
    if (!ctx || hess__check(ctx, a, fn) || !hess__norm_axis(ctx, a, &axis, fn))
        return NULL;
    char s[96];
    if (step < 1) {
        hess__error(ctx, HESS_ERR_ARG, "%s: step %lld; the step must be >= 1", fn, (long long)step);
        return NULL;
    }
    const int64_t b0 = start, b1 = stop;
    const int64_t count = python_slice(a->shape[axis], &start, &stop, step);
    if (count == 0) {
        hess__error(ctx, HESS_ERR_SHAPE,
                    "%s: [%lld:%lld:%lld] along axis %d of %s is empty; tensors have no empty "
                    "dimension",
                    fn, (long long)b0, (long long)b1, (long long)step, axis,
                    hess__shape_str(s, a->ndim, a->shape));
        return NULL;
    }
    if (count == a->shape[axis]) /* everything, in order: a view */
        return hess_reshape(ctx, a, a->ndim, a->shape);
    return slices_node(ctx, &op_slice, a, axis, start, step, count, fn);
}

/* ------------------------------------------------------------------------ */
/* index_select and index_add                                               */
/* ------------------------------------------------------------------------ */

/* index_select: a with len positions along the axis, position j from
 * idx[j] in [0, n); index_add: g's positions added at idx[j] in [0, len). */
static bool indexed_shape(hess_context *ctx,
                          hess_tensor *const src[],
                          const hess_op_params *par,
                          int *ndim,
                          int64_t *shape,
                          const char *fn,
                          bool add)
{
    const hess_tensor *a = src[0];
    const hess_op_params zero = {.take = {0, 0, {{0, 0}}}};
    const hess_op_params *p = par ? par : &zero;
    const int axis = p->take.axis;
    if (!axis_in(ctx, a, axis, fn))
        return false;
    const int64_t count = add ? a->shape[axis] : p->take.len;
    const int64_t n = add ? p->take.len : a->shape[axis];
    char s[96];
    if (count < 1 || n < 1 || !p->take.idx) {
        hess__error(ctx, HESS_ERR_ARG, "%s: %lld indices into a length %lld (axis %d of %s)", fn,
                    (long long)count, (long long)n, axis, hess__shape_str(s, a->ndim, a->shape));
        return false;
    }
    for (int64_t j = 0; j < count; j++)
        if (p->take.idx[j] < 0 || p->take.idx[j] >= n) {
            hess__error(ctx, HESS_ERR_ARG, "%s: index %lld is %lld, outside [0,%lld)", fn,
                        (long long)j, (long long)p->take.idx[j], (long long)n);
            return false;
        }
    *ndim = a->ndim;
    memcpy(shape, a->shape, (size_t)a->ndim * sizeof *shape);
    shape[axis] = add ? n : count;
    return true;
}

static bool index_select_shape(hess_context *ctx,
                               hess_tensor *const src[],
                               const hess_op_params *par,
                               int *ndim,
                               int64_t *shape,
                               const char *fn)
{
    return indexed_shape(ctx, src, par, ndim, shape, fn, false);
}

static bool index_add_shape(hess_context *ctx,
                            hess_tensor *const src[],
                            const hess_op_params *par,
                            int *ndim,
                            int64_t *shape,
                            const char *fn)
{
    return indexed_shape(ctx, src, par, ndim, shape, fn, true);
}

/* out[o, j, i] = a[o, idx[j], i] */
static void index_select_forward(hess_tensor *out)
{
    const hess_tensor *a = out->src[0];
    const int axis = out->par.take.axis;
    const int64_t n = a->shape[axis], m = out->shape[axis], *idx = out->par.take.idx;
    int64_t outer, inner;
    split(a, axis, &outer, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < m; j++)
            copy_block(out->data + (o * m + j) * inner, a->data + (o * n + idx[j]) * inner, inner);
}

/* out = zeros; out[o, idx[j], i] += g[o, j, i] */
static void index_add_forward(hess_tensor *out)
{
    const hess_tensor *g = out->src[0];
    const int axis = out->par.take.axis;
    const int64_t n = out->shape[axis], m = g->shape[axis], *idx = out->par.take.idx;
    int64_t outer, inner;
    split(out, axis, &outer, &inner);
    memset(out->data, 0, (size_t)out->numel * sizeof *out->data);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < m; j++)
            add_block(out->data + (o * n + idx[j]) * inner, g->data + (o * m + j) * inner, inner);
}

static const hess_op_def op_index_select, op_index_add;

static hess_tensor *indexed_node(hess_context *ctx,
                                 const hess_op_def *def,
                                 hess_tensor *a,
                                 int axis,
                                 const int64_t *idx,
                                 int64_t len,
                                 const char *fn)
{
    if (!a)
        return NULL;
    hess_op_params par = {.take = {axis, len, {{0, 0}}}};
    par.take.idx = idx;
    return hess__apply1(ctx, def, a, &par, fn);
}

/* d index_select(a) = index_select(da): the cotangent added back at idx */
static HESS_VJP(index_select_vjp)
{
    (void)pass;
    const int axis = out->par.take.axis;
    gin[0] = indexed_node(ctx, &op_index_add, g, axis + lead_of(g, out), out->par.take.idx,
                          out->src[0]->shape[axis], "hess_index_select");
}

static HESS_JVP(index_select_jvp)
{
    (void)pass;
    hess_tensor *t = tin[0];
    const int axis = out->par.take.axis;
    return t ? indexed_node(ctx, &op_index_select, t, axis + lead_of(t, out->src[0]),
                            out->par.take.idx, out->shape[axis], "hess_index_select")
             : NULL;
}

/* d index_add(g) = index_add(dg): the cotangent selected at idx */
static HESS_VJP(index_add_vjp)
{
    (void)pass;
    const int axis = out->par.take.axis;
    gin[0] = indexed_node(ctx, &op_index_select, g, axis + lead_of(g, out), out->par.take.idx,
                          out->src[0]->shape[axis], "hess_index_select");
}

static HESS_JVP(index_add_jvp)
{
    (void)pass;
    hess_tensor *t = tin[0];
    const int axis = out->par.take.axis;
    return t ? indexed_node(ctx, &op_index_add, t, axis + lead_of(t, out->src[0]),
                            out->par.take.idx, out->shape[axis], "hess_index_select")
             : NULL;
}

static const hess_op_def op_index_select = {.name = "index_select",
                                            .formula = "out[.., j, ..] = a[.., idx[j], ..]",
                                            .arity = 1,
                                            .flags = HESS_OPF_LINEAR | HESS_OPF_REINDEX,
                                            .shape = index_select_shape,
                                            .forward = index_select_forward,
                                            .vjp = index_select_vjp,
                                            .jvp = index_select_jvp,
                                            .rowwise = take_rowwise};
static const hess_op_def op_index_add = {.name = "index_add",
                                         .formula =
                                             "out = zeros, out[.., idx[j], ..] += a[.., j, ..]",
                                         .arity = 1,
                                         .flags = HESS_OPF_LINEAR,
                                         .shape = index_add_shape,
                                         .forward = index_add_forward,
                                         .vjp = index_add_vjp,
                                         .jvp = index_add_jvp,
                                         .rowwise = take_rowwise};

hess_tensor *
hess_index_select(hess_context *ctx, hess_tensor *a, int axis, size_t n, const int64_t *idx)
{
    static const char fn[] = "hess_index_select";
    if (!ctx || hess__check(ctx, a, fn) || !hess__norm_axis(ctx, a, &axis, fn))
        return NULL;
    char s[96];
    if (n == 0) {
        hess__error(ctx, HESS_ERR_SHAPE,
                    "%s: no indices: the result would have an empty dimension (axis %d of %s)", fn,
                    axis, hess__shape_str(s, a->ndim, a->shape));
        return NULL;
    }
    if (!idx || n > (size_t)INT64_MAX / sizeof *idx) {
        hess__error(ctx, HESS_ERR_ARG, "%s: %s idx for %zu indices", fn, idx ? "too many" : "NULL",
                    n);
        return NULL;
    }
    /* PyTorch's index_select takes no negative index */
    const int64_t len = a->shape[axis];
    bool in_order = (int64_t)n == len;
    for (size_t j = 0; j < n; j++) {
        if (idx[j] < 0 || idx[j] >= len) {
            hess__error(
                ctx, HESS_ERR_ARG, "%s: idx[%zu] = %lld is outside [0,%lld) (axis %d of %s)", fn, j,
                (long long)idx[j], (long long)len, axis, hess__shape_str(s, a->ndim, a->shape));
            return NULL;
        }
        in_order = in_order && idx[j] == (int64_t)j;
    }
    if (in_order) /* every position, in order: a view */
        return hess_reshape(ctx, a, a->ndim, a->shape);
    int64_t *copy = hess__alloc(ctx, n * sizeof *copy, fn);
    if (!copy)
        return NULL;
    memcpy(copy, idx, n * sizeof *copy);
    return indexed_node(ctx, &op_index_select, a, axis, copy, (int64_t)n, fn);
}

/* ------------------------------------------------------------------------ */
/* gather and scatter_add                                                   */
/* ------------------------------------------------------------------------ */

/* Whether v is an index into a length n. */
static bool is_index(double v, int64_t n)
{
    return v >= 0 && v < (double)n && v == floor(v);
}

/* The first of t[0..count) that is not an index into a length n, or -1. */
static int64_t first_bad(const double *t, int64_t count, int64_t n)
{
    for (int64_t i = 0; i < count; i++)
        if (!is_index(t[i], n))
            return i;
    return -1;
}

/* Checks the index values t[0..count) for a length n; the error names fn. */
static hess_status
check_indices(hess_context *ctx, const double *t, int64_t count, int64_t n, const char *fn)
{
    const int64_t i = first_bad(t, count, n);
    if (i < 0)
        return HESS_OK;
    hess__error(ctx, HESS_ERR_ARG,
                "%s: index element %lld is %g; indices must be integers in [0,%lld)", fn,
                (long long)i, t[i], (long long)n);
    return HESS_ERR_ARG;
}

/* gather(a, axis, index): out is [a's first lead dims, index's dims], lead =
 * rank(a) - rank(index) (the directions of a batched pass), axis >= lead, and
 * index no larger than a in the dims other than the axis. */
static bool gather_shape(hess_context *ctx,
                         hess_tensor *const src[],
                         const hess_op_params *par,
                         int *ndim,
                         int64_t *shape,
                         const char *fn)
{
    const hess_tensor *a = src[0], *ix = src[1];
    const int axis = par ? par->axis.axis : 0, lead = a->ndim - ix->ndim;
    char sa[96], si[96];
    bool ok = lead >= 0 && axis >= lead && axis < a->ndim;
    for (int d = 0; d < ix->ndim && ok; d++)
        ok = lead + d == axis || ix->shape[d] <= a->shape[lead + d];
    if (!ok) {
        hess__error(ctx, HESS_ERR_SHAPE,
                    "%s: index %s does not fit a %s along axis %d (the same rank, and no larger "
                    "in the other dims)",
                    fn, hess__shape_str(si, ix->ndim, ix->shape),
                    hess__shape_str(sa, a->ndim, a->shape), axis);
        return false;
    }
    *ndim = a->ndim;
    for (int d = 0; d < a->ndim; d++)
        shape[d] = d < lead ? a->shape[d] : ix->shape[d - lead];
    return true;
}

/* Strides of t's dims. */
static void strides(const hess_tensor *t, int64_t *st)
{
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        st[d] = s;
        s *= t->shape[d];
    }
}

/* Walks the elements of a tensor shaped shape[nd] in order, keeping off =
 * the offset, in a tensor of strides st, of the same indices with the one at
 * axis taken as 0. */
typedef struct walk {
    int nd, axis;
    const int64_t *shape, *st;
    int64_t idx[HESS_DIMS], off;
} walk;

static void walk_next(walk *w)
{
    for (int d = w->nd - 1; d >= 0; d--) {
        if (d != w->axis)
            w->off += w->st[d];
        if (++w->idx[d] < w->shape[d])
            return;
        if (d != w->axis)
            w->off -= w->st[d] * w->shape[d];
        w->idx[d] = 0;
    }
}

/* out[.., i_axis, ..] = a[.., index[.., i_axis, ..], ..]; NaN where an index
 * is not one (tensors the builder and hess_tensor_set checked never have
 * one). */
static void gather_forward(hess_tensor *out)
{
    const hess_tensor *a = out->src[0], *ix = out->src[1];
    const int axis = out->par.axis.axis;
    int64_t ast[HESS_DIMS];
    strides(a, ast);
    walk w = {out->ndim, axis, out->shape, ast, {0}, 0};
    const int64_t n = a->shape[axis];
    for (int64_t e = 0, q = 0; e < out->numel; e++, q = q + 1 == ix->numel ? 0 : q + 1) {
        const double v = ix->data[q];
        out->data[e] = is_index(v, n) ? a->data[w.off + (int64_t)v * ast[axis]] : NAN;
        walk_next(&w);
    }
}

/* out = zeros; out[.., index[.., j, ..], ..] += g[.., j, ..]; all NaN when an
 * index is not one. */
static void scatter_add_forward(hess_tensor *out)
{
    const hess_tensor *g = out->src[0], *ix = out->src[1];
    const int axis = out->par.axis.axis;
    const int64_t n = out->shape[axis];
    const bool ok = first_bad(ix->data, ix->numel, n) < 0;
    for (int64_t e = 0; e < out->numel; e++)
        out->data[e] = ok ? 0.0 : NAN;
    if (!ok)
        return;
    int64_t ost[HESS_DIMS];
    strides(out, ost);
    walk w = {g->ndim, axis, g->shape, ost, {0}, 0};
    for (int64_t e = 0, q = 0; e < g->numel; e++, q = q + 1 == ix->numel ? 0 : q + 1) {
        out->data[w.off + (int64_t)ix->data[q] * ost[axis]] += g->data[e];
        walk_next(&w);
    }
}

static hess_tensor *scatter_add_node(hess_context *ctx,
                                     hess_tensor *g,
                                     hess_tensor *index,
                                     int axis,
                                     int nd,
                                     const int64_t *shape,
                                     const char *fn);

/* The index has no derivative (PyTorch: an integer tensor). */
static void index_nodiff(hess_context *ctx, const hess_pass *pass)
{
    hess__error(ctx, HESS_ERR_NODIFF, "%s: a gather index has no derivative",
                pass->api ? pass->api : "hess_gather");
}

static hess_tensor *
gather_node(hess_context *ctx, hess_tensor *a, int axis, hess_tensor *index, const char *fn);

/* d gather(a) = gather(da): the cotangent added back at the index, into
 * zeros shaped like a (behind g's directions) */
static HESS_VJP(gather_vjp)
{
    if (HESS_NEED(pass, 1)) {
        index_nodiff(ctx, pass);
        return;
    }
    const hess_tensor *a = out->src[0];
    const int lead = lead_of(g, out);
    int64_t shape[HESS_DIMS];
    memcpy(shape, g->shape, (size_t)lead * sizeof *shape);
    memcpy(shape + lead, a->shape, (size_t)a->ndim * sizeof *shape);
    gin[0] = scatter_add_node(ctx, g, out->src[1], out->par.axis.axis + lead, lead + a->ndim, shape,
                              "hess_gather");
}

static HESS_JVP(gather_jvp)
{
    if (tin[1]) {
        index_nodiff(ctx, pass);
        return NULL;
    }
    hess_tensor *t = tin[0];
    return t ? gather_node(ctx, t, out->par.axis.axis + lead_of(t, out->src[0]), out->src[1],
                           "hess_gather")
             : NULL;
}

/* d scatter_add(g) = scatter_add(dg): the cotangent gathered at the index */
static HESS_VJP(scatter_add_vjp)
{
    if (HESS_NEED(pass, 1)) {
        index_nodiff(ctx, pass);
        return;
    }
    gin[0] = gather_node(ctx, g, out->par.axis.axis + lead_of(g, out), out->src[1], "hess_gather");
}

static HESS_JVP(scatter_add_jvp)
{
    if (tin[1]) {
        index_nodiff(ctx, pass);
        return NULL;
    }
    hess_tensor *t = tin[0];
    if (!t)
        return NULL;
    const int lead = lead_of(t, out->src[0]);
    int64_t shape[HESS_DIMS];
    memcpy(shape, t->shape, (size_t)lead * sizeof *shape);
    memcpy(shape + lead, out->shape, (size_t)out->ndim * sizeof *shape);
    return scatter_add_node(ctx, t, out->src[1], out->par.axis.axis + lead, lead + out->ndim, shape,
                            "hess_gather");
}

/* hess_tensor_set on an index leaf: its new values must be indices. */
static hess_status
gather_check(hess_context *ctx, const hess_tensor *out, int k, const double *data, const char *fn)
{
    const int axis = out->par.axis.axis;
    return k == 1 ? check_indices(ctx, data, out->src[1]->numel, out->src[0]->shape[axis], fn)
                  : HESS_OK;
}

static hess_status scatter_add_check(
    hess_context *ctx, const hess_tensor *out, int k, const double *data, const char *fn)
{
    const int axis = out->par.axis.axis;
    return k == 1 ? check_indices(ctx, data, out->src[1]->numel, out->shape[axis], fn) : HESS_OK;
}

static const hess_op_def op_gather = {.name = "gather",
                                      .formula =
                                          "out[.., i_axis, ..] = a[.., index[.., i_axis, ..], ..]",
                                      .arity = 2,
                                      .flags = HESS_OPF_LINEAR | HESS_OPF_REINDEX,
                                      .shape = gather_shape,
                                      .forward = gather_forward,
                                      .vjp = gather_vjp,
                                      .jvp = gather_jvp,
                                      .rowwise = axis_rowwise,
                                      .check_src = gather_check};
/* No shape rule: its builder is given a's shape (fuzz_graph: built by
 * gather's rule). */
static const hess_op_def op_scatter_add = {
    .name = "scatter_add",
    .formula = "out = zeros, out[.., index[.., j, ..], ..] += a[.., j, ..]",
    .arity = 2,
    .flags = HESS_OPF_LINEAR,
    .forward = scatter_add_forward,
    .vjp = scatter_add_vjp,
    .jvp = scatter_add_jvp,
    .rowwise = axis_rowwise,
    .check_src = scatter_add_check};

static hess_tensor *
gather_node(hess_context *ctx, hess_tensor *a, int axis, hess_tensor *index, const char *fn)
{
    if (!a)
        return NULL;
    const hess_op_params par = {.axis = {axis}};
    hess_tensor *src[2] = {a, index};
    return hess__apply(ctx, &op_gather, src, &par, fn);
}

/* g [lead.., index's dims] added at the index into zeros shaped shape[nd]
 * ([lead.., a's dims]). */
static hess_tensor *scatter_add_node(hess_context *ctx,
                                     hess_tensor *g,
                                     hess_tensor *index,
                                     int axis,
                                     int nd,
                                     const int64_t *shape,
                                     const char *fn)
{
    if (!g || hess__check(ctx, g, fn) || hess__check(ctx, index, fn) ||
        !hess__check_shape(ctx, nd, shape, HESS_DIMS, fn))
        return NULL;
    const int lead = g->ndim - index->ndim;
    bool ok = lead >= 0 && nd == g->ndim && axis >= lead && axis < nd;
    for (int d = 0; d < nd && ok; d++)
        ok = d < lead
                 ? g->shape[d] == shape[d]
                 : g->shape[d] == index->shape[d - lead] && (d == axis || g->shape[d] <= shape[d]);
    if (!ok) {
        char sg[96], si[96], so[96];
        hess__error(ctx, HESS_ERR_SHAPE, "%s: cannot add %s at index %s into %s along axis %d", fn,
                    hess__shape_str(sg, g->ndim, g->shape),
                    hess__shape_str(si, index->ndim, index->shape), hess__shape_str(so, nd, shape),
                    axis);
        return NULL;
    }
    hess_tensor *t = hess__node(ctx, &op_scatter_add, nd, shape, g, index, fn);
    if (t)
        t->par.axis.axis = axis;
    return hess__finish(ctx, t, fn);
}

hess_tensor *hess_gather(hess_context *ctx, hess_tensor *a, int axis, hess_tensor *index)
{
    static const char fn[] = "hess_gather";
    if (!ctx || hess__check(ctx, a, fn) || hess__check(ctx, index, fn))
        return NULL;
    if (a->ndim != index->ndim) {
        char sa[96], si[96];
        hess__error(ctx, HESS_ERR_SHAPE, "%s: index %s and a %s differ in rank", fn,
                    hess__shape_str(si, index->ndim, index->shape),
                    hess__shape_str(sa, a->ndim, a->shape));
        return NULL;
    }
    if (!hess__norm_axis(ctx, a, &axis, fn))
        return NULL;
    hess_tensor *src[2] = {a, index};
    int nd;
    int64_t shape[HESS_DIMS];
    const hess_op_params par = {.axis = {axis}};
    if (!gather_shape(ctx, src, &par, &nd, shape, fn) ||
        hess__refresh(ctx, 1, &index, fn) != HESS_OK ||
        check_indices(ctx, index->data, index->numel, a->shape[axis], fn) != HESS_OK)
        return NULL;
    hess_tensor *t = hess__apply(ctx, &op_gather, src, &par, fn);
    if (t && hess__is_leaf(index))
        index->flags |= HESS_T_CHECKED;
    return t;
}

/* ------------------------------------------------------------------------ */
/* cat and stack                                                            */
/* ------------------------------------------------------------------------ */

/* a and b of one rank, equal but along the axis. */
static bool cat_shape(hess_context *ctx,
                      hess_tensor *const src[],
                      const hess_op_params *par,
                      int *ndim,
                      int64_t *shape,
                      const char *fn)
{
    const hess_tensor *a = src[0], *b = src[1];
    const int axis = par ? par->axis.axis : 0;
    if (!axis_in(ctx, a, axis, fn))
        return false;
    bool ok = a->ndim == b->ndim && b->shape[axis] <= INT64_MAX - a->shape[axis];
    for (int d = 0; d < a->ndim && ok; d++)
        ok = d == axis || a->shape[d] == b->shape[d];
    if (!ok) {
        char sa[96], sb[96];
        hess__error(ctx, HESS_ERR_SHAPE, "%s: %s and %s do not join along axis %d", fn,
                    hess__shape_str(sa, a->ndim, a->shape), hess__shape_str(sb, b->ndim, b->shape),
                    axis);
        return false;
    }
    *ndim = a->ndim;
    memcpy(shape, a->shape, (size_t)a->ndim * sizeof *shape);
    shape[axis] += b->shape[axis];
    return true;
}

/* out[o] = (a[o], b[o]) */
static void cat_forward(hess_tensor *out)
{
    const hess_tensor *a = out->src[0], *b = out->src[1];
    const int axis = out->par.axis.axis;
    int64_t outer, inner;
    split(out, axis, &outer, &inner);
    const int64_t na = a->shape[axis] * inner, nb = b->shape[axis] * inner;
    double *y = out->data;
    for (int64_t o = 0; o < outer; o++, y += na + nb) {
        memcpy(y, a->data + o * na, (size_t)na * sizeof *y);
        memcpy(y + na, b->data + o * nb, (size_t)nb * sizeof *y);
    }
}

static hess_tensor *
cat_node(hess_context *ctx, hess_tensor *a, hess_tensor *b, int axis, const char *fn);

/* d cat(a, b) = cat(da, db): the cotangent's two slices */
static HESS_VJP(cat_vjp)
{
    const hess_tensor *a = out->src[0], *b = out->src[1];
    const int axis = out->par.axis.axis, ax = axis + lead_of(g, out);
    if (HESS_NEED(pass, 0))
        gin[0] = slices_node(ctx, &op_slice, g, ax, 0, 1, a->shape[axis], "hess_cat");
    if (HESS_NEED(pass, 1))
        gin[1] = slices_node(ctx, &op_slice, g, ax, a->shape[axis], 1, b->shape[axis], "hess_cat");
}

static HESS_JVP(cat_jvp)
{
    if (!tin[0] && !tin[1])
        return NULL;
    hess_tensor *t[2];
    for (int k = 0; k < 2; k++)
        t[k] = tin[k] ? tin[k] : hess__zeros_like(ctx, pass, out->src[k]);
    const int lead = lead_of(tin[0] ? tin[0] : tin[1], out->src[0]);
    return cat_node(ctx, t[0], t[1], out->par.axis.axis + lead, "hess_cat");
}

static const hess_op_def op_cat = {.name = "cat",
                                   .formula = "out = (a, b) joined along the axis",
                                   .arity = 2,
                                   .flags = HESS_OPF_LINEAR | HESS_OPF_REINDEX,
                                   .shape = cat_shape,
                                   .forward = cat_forward,
                                   .vjp = cat_vjp,
                                   .jvp = cat_jvp,
                                   .rowwise = take_rowwise};

static hess_tensor *
cat_node(hess_context *ctx, hess_tensor *a, hess_tensor *b, int axis, const char *fn)
{
    if (!a || !b)
        return NULL;
    const hess_op_params par = {.axis = {axis}};
    hess_tensor *src[2] = {a, b};
    return hess__apply(ctx, &op_cat, src, &par, fn);
}

/* ts[lo..hi) joined as a balanced tree of two-way cats: each element is
 * copied log2(n) times at most. */
static hess_tensor *
cat_tree(hess_context *ctx, hess_tensor *const ts[], size_t lo, size_t hi, int axis, const char *fn)
{
    if (hi - lo == 1)
        return ts[lo];
    const size_t mid = lo + (hi - lo) / 2;
    hess_tensor *a = cat_tree(ctx, ts, lo, mid, axis, fn);
    hess_tensor *b = a ? cat_tree(ctx, ts, mid, hi, axis, fn) : NULL;
    return cat_node(ctx, a, b, axis, fn);
}

/* Checks the list: n >= 1 live tensors of ctx, of one rank >= 1 (and one
 * shape when same); *axis normalised over [-r - extra, r - 1 + extra]. */
static bool check_joinable(hess_context *ctx,
                           size_t n,
                           hess_tensor *const ts[],
                           int *axis,
                           int extra,
                           bool same,
                           const char *fn)
{
    if (n == 0 || !ts) {
        hess__error(ctx, HESS_ERR_ARG, "%s: no tensors (n = %zu, ts %s)", fn, n,
                    ts ? "given" : "NULL");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!ts[i]) {
            hess__error(ctx, HESS_ERR_ARG, "%s: ts[%zu] is NULL", fn, i);
            return false;
        }
        if (hess__check(ctx, ts[i], fn) != HESS_OK)
            return false;
    }
    const hess_tensor *t0 = ts[0];
    const int r = t0->ndim;
    char s0[96], si[96];
    if (r + extra < 1) {
        hess__error(ctx, HESS_ERR_SHAPE, "%s: ts[0] %s is a scalar; scalars do not join", fn,
                    hess__shape_str(s0, r, t0->shape));
        return false;
    }
    const int lo = -r - extra, hi = r - 1 + extra;
    if (*axis < lo || *axis > hi) {
        hess__error(ctx, HESS_ERR_ARG, "%s: axis %d is out of range [%d,%d] for %s", fn, *axis, lo,
                    hi, hess__shape_str(s0, r, t0->shape));
        return false;
    }
    const int ax = *axis < 0 ? *axis + r + extra : *axis;
    for (size_t i = 1; i < n; i++) {
        const hess_tensor *t = ts[i];
        bool ok = t->ndim == r;
        for (int d = 0; d < r && ok; d++)
            ok = t->shape[d] == t0->shape[d] || (!same && d == ax);
        if (!ok) {
            hess__shape_str(si, t->ndim, t->shape);
            hess__shape_str(s0, r, t0->shape);
            if (same)
                hess__error(ctx, HESS_ERR_SHAPE,
                            "%s: ts[%zu] %s and ts[0] %s differ (stack needs one shape)", fn, i, si,
                            s0);
            else if (t->ndim != r)
                hess__error(ctx, HESS_ERR_SHAPE, "%s: ts[%zu] %s and ts[0] %s differ in rank", fn,
                            i, si, s0);
            else
                hess__error(ctx, HESS_ERR_SHAPE,
                            "%s: ts[%zu] %s and ts[0] %s differ outside axis %d", fn, i, si, s0,
                            ax);
            return false;
        }
    }
    *axis = ax;
    return true;
}

static hess_tensor *cat_impl(hess_context *ctx, size_t n, hess_tensor *const ts[], int axis)
{
    static const char fn[] = "hess_cat";
    if (!ctx || !check_joinable(ctx, n, ts, &axis, 0, false, fn))
        return NULL;
    if (n == 1) /* a new tensor all the same: a view */
        return hess_reshape(ctx, ts[0], ts[0]->ndim, ts[0]->shape);
    return cat_tree(ctx, ts, 0, n, axis, fn);
}

static hess_tensor *stack_impl(hess_context *ctx, size_t n, hess_tensor *const ts[], int axis)
{
    static const char fn[] = "hess_stack";
    if (!ctx || !check_joinable(ctx, n, ts, &axis, 1, true, fn))
        return NULL;
    hess_tensor *one[1], **u = one;
    if (n > 1 && !(u = hess__alloc(ctx, n * sizeof *u, fn)))
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!(u[i] = hess_unsqueeze(ctx, ts[i], axis)))
            return NULL;
    return n == 1 ? u[0] : cat_tree(ctx, u, 0, n, axis, fn);
}

hess_tensor *hess_cat(hess_context *ctx, size_t n, hess_tensor *const ts[], int axis)
{
    const char *saved = hess__api_enter(ctx, "hess_cat");
    return hess__api_leave(ctx, saved, cat_impl(ctx, n, ts, axis));
}

hess_tensor *hess_stack(hess_context *ctx, size_t n, hess_tensor *const ts[], int axis)
{
    const char *saved = hess__api_enter(ctx, "hess_stack");
    return hess__api_leave(ctx, saved, stack_impl(ctx, n, ts, axis));
}

static const hess_op_def *const index_ops[] = {&op_slice,     &op_slice_scatter, &op_index_select,
                                               &op_index_add, &op_gather,        &op_scatter_add,
                                               &op_cat};
const hess__op_family hess__index_family = {index_ops, sizeof index_ops / sizeof index_ops[0]};
