/*
 * shape.c -- reshape (with one -1 inferred), squeeze and unsqueeze (reshapes),
 * permute, and the shapes of cotangents in a pass: the helpers rules use to
 * sum, repeat, reshape or make zeros shaped like a source's cotangent, which
 * carries the direction dimension [k] in a batched pass.
 */
#include "ops.h"

#include <string.h>

/* ------------------------------------------------------------------------ */
/* reshape                                                                  */
/* ------------------------------------------------------------------------ */

static HESS_JVP(reshape_jvp);

static void reshape_forward(hess_tensor *out)
{
    if (out->data != out->src[0]->data) /* a view needs nothing */
        memcpy(out->data, out->src[0]->data, (size_t)out->numel * sizeof(double));
}

/* d reshape(a) = reshape(g) back to a's shape */
static HESS_VJP(reshape_vjp)
{
    gin[0] = hess__reshape_like(ctx, pass, g, out->src[0]);
}

static const hess_op_def op_reshape = {.name = "reshape",
                                       .formula = "out = a with another shape of equal count",
                                       .arity = 1,
                                       .flags = HESS_OPF_LINEAR | HESS_OPF_REINDEX,
                                       .forward = reshape_forward,
                                       .vjp = reshape_vjp,
                                       .jvp = reshape_jvp,
                                       .rowwise = hess__rowwise_any};

bool hess__shape_is(const hess_tensor *a, int nd, const int64_t *shape)
{
    if (a->ndim != nd)
        return false;
    for (int i = 0; i < nd; i++)
        if (a->shape[i] != shape[i])
            return false;
    return true;
}

/* a's values with shape[nd], nd <= max_dims. */
static hess_tensor *reshape(
    hess_context *ctx, hess_tensor *a, int nd, const int64_t *shape, int max_dims, const char *fn)
{
    if (!ctx || hess__check(ctx, a, fn) || !hess__check_shape(ctx, nd, shape, max_dims, fn))
        return NULL;
    /* the count, stopping past a->numel (dimensions are >= 1 here) */
    int64_t n = 1;
    bool ok = true;
    for (int i = 0; i < nd && ok; i++) {
        ok = hess__mul_within(n, shape[i], a->numel);
        n *= ok ? shape[i] : 1;
    }
    if (!ok || n != a->numel) {
        char sa[96], sb[96];
        hess__error(ctx, HESS_ERR_SHAPE, "%s: cannot turn %s into %s", fn,
                    hess__shape_str(sa, a->ndim, a->shape), hess__shape_str(sb, nd, shape));
        return NULL;
    }
    /* reshape(reshape(x)) back to x's shape is x, when both were made alike
     * (recorded or detached) and x is not a parameter, whose values change */
    if (a->def == &op_reshape && hess__shape_is(a->src[0], nd, shape) &&
        !(a->src[0]->flags & HESS_T_PARAM) &&
        (a->flags & HESS_T_DETACHED) == (a->src[0]->flags & HESS_T_DETACHED))
        return a->src[0];
    /* A reshape shares its source's values, which change in place only when
     * they are evaluated again; a parameter's are set from outside, so a
     * reshaped parameter is a copy that follows them when it is evaluated. */
    hess_tensor *t = a->flags & HESS_T_PARAM ? hess__node(ctx, &op_reshape, nd, shape, a, NULL, fn)
                                             : hess__node_view(ctx, &op_reshape, nd, shape, a, fn);
    return hess__finish(ctx, t, fn);
}

/* One dimension of -1 (PyTorch's view(-1)) takes what the others leave. */
hess_tensor *hess_reshape(hess_context *ctx, hess_tensor *a, int ndim, const int64_t *shape)
{
    static const char fn[] = "hess_reshape";
    int infer = -1;
    for (int i = 0; ctx && shape && ndim <= HESS_MAX_DIMS && i < ndim; i++)
        if (shape[i] == -1) {
            char s[96];
            if (infer >= 0) {
                hess__error(ctx, HESS_ERR_ARG, "%s: %s has more than one -1", fn,
                            hess__shape_str(s, ndim, shape));
                return NULL;
            }
            infer = i;
        }
    if (infer < 0)
        return reshape(ctx, a, ndim, shape, HESS_MAX_DIMS, fn);
    int64_t to[HESS_MAX_DIMS];
    memcpy(to, shape, (size_t)ndim * sizeof *to);
    to[infer] = 1;
    if (hess__check(ctx, a, fn) || !hess__check_shape(ctx, ndim, to, HESS_MAX_DIMS, fn))
        return NULL;
    int64_t known = 1; /* the other dims' count, stopping past a->numel */
    bool ok = true;
    for (int i = 0; i < ndim && ok; i++) {
        ok = hess__mul_within(known, to[i], a->numel);
        known *= ok ? to[i] : 1;
    }
    if (!ok || a->numel % known != 0) {
        char sa[96], sb[96];
        hess__error(ctx, HESS_ERR_SHAPE, "%s: cannot turn %s into %s", fn,
                    hess__shape_str(sa, a->ndim, a->shape), hess__shape_str(sb, ndim, shape));
        return NULL;
    }
    to[infer] = a->numel / known;
    return reshape(ctx, a, ndim, to, HESS_MAX_DIMS, fn);
}

/* ------------------------------------------------------------------------ */
/* squeeze and unsqueeze: reshapes (views, no copy)                         */
/* ------------------------------------------------------------------------ */

hess_tensor *hess_squeeze(hess_context *ctx, hess_tensor *a, int axis)
{
    static const char fn[] = "hess_squeeze";
    if (!ctx || hess__check(ctx, a, fn))
        return NULL;
    /* PyTorch: a scalar takes axis 0 or -1, and a dim that is not 1 stays */
    const int lo = a->ndim ? -a->ndim : -1, hi = a->ndim ? a->ndim - 1 : 0;
    if (axis < lo || axis > hi) {
        char s[96];
        hess__error(ctx, HESS_ERR_ARG, "%s: axis %d is out of range [%d,%d] for %s", fn, axis, lo,
                    hi, hess__shape_str(s, a->ndim, a->shape));
        return NULL;
    }
    const int ax = axis < 0 ? axis + (a->ndim ? a->ndim : 1) : axis;
    int64_t to[HESS_DIMS];
    int nd = 0;
    for (int i = 0; i < a->ndim; i++)
        if (i != ax || a->shape[i] != 1)
            to[nd++] = a->shape[i];
    return reshape(ctx, a, nd, to, HESS_MAX_DIMS, fn);
}

hess_tensor *hess_unsqueeze(hess_context *ctx, hess_tensor *a, int axis)
{
    static const char fn[] = "hess_unsqueeze";
    if (!ctx || hess__check(ctx, a, fn))
        return NULL;
    if (axis < -a->ndim - 1 || axis > a->ndim) {
        char s[96];
        hess__error(ctx, HESS_ERR_ARG, "%s: axis %d is out of range [%d,%d] for %s", fn, axis,
                    -a->ndim - 1, a->ndim, hess__shape_str(s, a->ndim, a->shape));
        return NULL;
    }
    if (a->ndim >= HESS_MAX_DIMS) {
        char s[96];
        hess__error(ctx, HESS_ERR_ARG, "%s: %s has rank %d; the result would exceed rank %d", fn,
                    hess__shape_str(s, a->ndim, a->shape), a->ndim, HESS_MAX_DIMS);
        return NULL;
    }
    const int ax = axis < 0 ? axis + a->ndim + 1 : axis;
    int64_t to[HESS_DIMS];
    int nd = 0;
    for (int i = 0; i <= a->ndim; i++) {
        if (i == ax)
            to[nd++] = 1;
        if (i < a->ndim)
            to[nd++] = a->shape[i];
    }
    return reshape(ctx, a, nd, to, HESS_MAX_DIMS, fn);
}

/* ------------------------------------------------------------------------ */
/* permute                                                                  */
/* ------------------------------------------------------------------------ */

/* out's dims: a's first `lead` dims, then a's last rank dims in perm's order
 * (lead = a->ndim - rank: the directions of a batched pass). */
static bool permute_shape(hess_context *ctx,
                          hess_tensor *const src[],
                          const hess_op_params *par,
                          int *ndim,
                          int64_t *shape,
                          const char *fn)
{
    const hess_tensor *a = src[0];
    const int r = par ? par->perm.rank : 0, lead = a->ndim - r;
    bool seen[HESS_DIMS] = {false}, ok = lead >= 0;
    for (int d = 0; d < r && ok; d++) {
        const int p = par->perm.perm[d];
        ok = p >= 0 && p < r && !seen[p];
        if (ok)
            seen[p] = true;
    }
    if (!ok) {
        char s[96];
        hess__error(ctx, HESS_ERR_ARG, "%s: not a permutation of the last %d dims of %s", fn, r,
                    hess__shape_str(s, a->ndim, a->shape));
        return false;
    }
    *ndim = a->ndim;
    for (int d = 0; d < a->ndim; d++)
        shape[d] = d < lead ? a->shape[d] : a->shape[lead + par->perm.perm[d - lead]];
    return true;
}

/* out[i_0, ..., i_n] = a at the same indices taken in perm's order: a walk
 * over out in order, reading a with the stride of each out dim. */
static void permute_forward(hess_tensor *out)
{
    const hess_tensor *a = out->src[0];
    const int nd = out->ndim, lead = a->ndim - out->par.perm.rank;
    if (nd == 0) {
        out->data[0] = a->data[0];
        return;
    }
    int64_t ast[HESS_DIMS], st[HESS_DIMS], idx[HESS_DIMS] = {0};
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        ast[d] = s;
        s *= a->shape[d];
    }
    for (int d = 0; d < nd; d++)
        st[d] = d < lead ? ast[d] : ast[lead + out->par.perm.perm[d - lead]];
    const int64_t n = out->shape[nd - 1], sl = st[nd - 1];
    double *y = out->data;
    int64_t off = 0;
    for (;;) {
        const double *x = a->data + off;
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i * sl];
        y += n;
        int d = nd - 2;
        for (; d >= 0; d--) {
            off += st[d];
            if (++idx[d] < out->shape[d])
                break;
            off -= st[d] * out->shape[d];
            idx[d] = 0;
        }
        if (d < 0)
            return;
    }
}

/* A permute node of a's last rank dims (rank <= a->ndim); a itself for the
 * identity. */
static hess_tensor *
permute_node(hess_context *ctx, hess_tensor *a, int rank, const int8_t *perm, const char *fn);

/* d permute(a) = permute(da): gin = g permuted back (perm's inverse) */
static HESS_VJP(permute_vjp)
{
    (void)pass;
    int8_t inv[HESS_DIMS];
    const int r = out->par.perm.rank;
    for (int d = 0; d < r; d++)
        inv[out->par.perm.perm[d]] = (int8_t)d;
    gin[0] = permute_node(ctx, g, r, inv, "hess_permute");
}

static HESS_JVP(permute_jvp)
{
    (void)pass;
    return tin[0]
               ? permute_node(ctx, tin[0], out->par.perm.rank, out->par.perm.perm, "hess_permute")
               : NULL;
}

/* Rows stay rows when the leading dim stays first. */
static bool permute_rowwise(const hess_tensor *out, int i)
{
    const hess_tensor *a = out->src[i];
    return a->ndim > out->par.perm.rank || out->par.perm.rank == 0 || out->par.perm.perm[0] == 0;
}

static const hess_op_def op_permute = {.name = "permute",
                                       .formula = "out = a with its dims in the order perm",
                                       .arity = 1,
                                       .flags = HESS_OPF_LINEAR | HESS_OPF_REINDEX,
                                       .shape = permute_shape,
                                       .forward = permute_forward,
                                       .vjp = permute_vjp,
                                       .jvp = permute_jvp,
                                       .rowwise = permute_rowwise};

static hess_tensor *
permute_node(hess_context *ctx, hess_tensor *a, int rank, const int8_t *perm, const char *fn)
{
    bool identity = true;
    for (int d = 0; d < rank; d++)
        identity = identity && perm[d] == d;
    if (!a || identity)
        return a;
    hess_op_params par = {.perm = {{0}, (uint8_t)rank}};
    memcpy(par.perm.perm, perm, (size_t)rank);
    return hess__apply1(ctx, &op_permute, a, &par, fn);
}

hess_tensor *hess_permute(hess_context *ctx, hess_tensor *a, const int *perm)
{
    static const char fn[] = "hess_permute";
    if (!ctx || hess__check(ctx, a, fn))
        return NULL;
    const int nd = a->ndim;
    char s[96];
    if (nd > 0 && !perm) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL perm for %s", fn,
                    hess__shape_str(s, nd, a->shape));
        return NULL;
    }
    hess_op_params par = {.perm = {{0}, (uint8_t)nd}};
    bool seen[HESS_DIMS] = {false};
    for (int d = 0; d < nd; d++) {
        const int p = perm[d] < 0 ? perm[d] + nd : perm[d];
        if (p < 0 || p >= nd || seen[p]) {
            hess__error(ctx, HESS_ERR_ARG, "%s: perm[%d] = %d %s for %s", fn, d, perm[d],
                        p < 0 || p >= nd ? "is out of range" : "repeats a dim",
                        hess__shape_str(s, nd, a->shape));
            return NULL;
        }
        seen[p] = true;
        par.perm.perm[d] = (int8_t)p;
    }
    /* moving only dims of 1 keeps the order of the values: a reshape (a view) */
    int64_t to[HESS_DIMS];
    int last = -1;
    bool in_order = true;
    for (int d = 0; d < nd; d++) {
        to[d] = a->shape[par.perm.perm[d]];
        if (to[d] != 1) {
            in_order = in_order && par.perm.perm[d] > last;
            last = par.perm.perm[d];
        }
    }
    if (in_order)
        return reshape(ctx, a, nd, to, HESS_MAX_DIMS, fn);
    return hess__apply1(ctx, &op_permute, a, &par, fn);
}

hess_tensor *hess__reshape_any(hess_context *ctx, hess_tensor *a, int nd, const int64_t *shape)
{
    if (!a || hess__shape_is(a, nd, shape))
        return a;
    return reshape(ctx, a, nd, shape, HESS_DIMS, "hess_reshape");
}

/* ------------------------------------------------------------------------ */
/* Shapes of cotangents                                                     */
/* ------------------------------------------------------------------------ */

/* The shape a cotangent of `like` has in the pass: like's shape, behind the
 * direction dimension [k] while a batched pass runs (pass->k > 0). */
static int cot_shape(const hess_pass *pass, const hess_tensor *like, int64_t *shape)
{
    int nd = 0;
    if (pass->k)
        shape[nd++] = pass->k;
    for (int i = 0; i < like->ndim; i++)
        shape[nd++] = like->shape[i];
    return nd;
}

/* Whether a already has that shape (the common case, checked without a copy). */
static bool is_cot_shape(const hess_pass *pass, const hess_tensor *a, const hess_tensor *like)
{
    const int off = pass->k ? 1 : 0;
    if (a->ndim != like->ndim + off || (off && a->shape[0] != pass->k))
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

hess_tensor *
hess__sum_like(hess_context *ctx, const hess_pass *pass, hess_tensor *a, const hess_tensor *like)
{
    if (!a || is_cot_shape(pass, a, like))
        return a;
    int64_t to[HESS_DIMS];
    const int nd = cot_shape(pass, like, to);
    if (!pass->k)
        return hess__sum_to(ctx, a, nd, to);
    /* sum [k, X...] to [k, 1.., like...], then drop the padding */
    int64_t keep[HESS_DIMS];
    int nk = 0, pad = (a->ndim - 1) - like->ndim;
    keep[nk++] = pass->k;
    for (int i = 0; i < pad; i++)
        keep[nk++] = 1;
    for (int i = 0; i < like->ndim; i++)
        keep[nk++] = like->shape[i];
    return hess__reshape_any(ctx, hess__sum_to(ctx, a, nk, keep), nd, to);
}

hess_tensor *hess__broadcast_like(hess_context *ctx,
                                  const hess_pass *pass,
                                  hess_tensor *a,
                                  const hess_tensor *like)
{
    if (!a || is_cot_shape(pass, a, like))
        return a;
    int64_t to[HESS_DIMS];
    const int nd = cot_shape(pass, like, to);
    if (pass->k) {
        int64_t pad[HESS_DIMS];
        int np = padded_shape(a, like->ndim, pad);
        a = hess__reshape_any(ctx, a, np, pad);
    }
    return hess__broadcast_to(ctx, a, nd, to);
}

hess_tensor *hess__reshape_like(hess_context *ctx,
                                const hess_pass *pass,
                                hess_tensor *a,
                                const hess_tensor *like)
{
    int64_t to[HESS_DIMS];
    const int nd = a ? cot_shape(pass, like, to) : 0;
    return hess__reshape_any(ctx, a, nd, to);
}

hess_tensor *hess__zeros_like(hess_context *ctx, const hess_pass *pass, const hess_tensor *like)
{
    int64_t to[HESS_DIMS];
    const int nd = cot_shape(pass, like, to);
    hess_tensor *t = hess__leaf(ctx, nd, to, 0u, "hess_grad");
    if (t) {
        memset(t->data, 0, (size_t)t->numel * sizeof(double));
        t->par.leaf.nz_chunks = 0;
    }
    return t;
}

bool hess__rowwise_any(const hess_tensor *out, int i)
{
    (void)out, (void)i;
    return true;
}

bool hess__rowwise_same_rank(const hess_tensor *out, int i)
{
    return out->src[i]->ndim == out->ndim;
}

hess_tensor *
hess__lift(hess_context *ctx, const hess_pass *pass, hess_tensor *t, const hess_tensor *out)
{
    return t ? hess__broadcast_like(ctx, pass, t, out) : NULL;
}

hess_tensor *hess__add_or(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return !a ? b : !b ? a : hess_add(ctx, a, b);
}

/* d reshape(a) = reshape(da) */
static HESS_JVP(reshape_jvp)
{
    return tin[0] ? hess__reshape_like(ctx, pass, tin[0], out) : NULL;
}

static const hess_op_def *const shape_ops[] = {&op_reshape, &op_permute};
const hess__op_family hess__shape_family = {shape_ops, sizeof shape_ops / sizeof shape_ops[0]};
