/*
 * diag.c -- the exact Hessian diagonal, and the generalized Gauss-Newton
 * diagonal, by backpropagating curvature (BackPACK's Hessian backpropagation,
 * generalised from layer chains to any graph its rules cover).
 *
 * The Hessian of the loss with respect to each node Y of the graph is carried
 * from the loss down, in factored form: H_Y = sum_g s_g F_g F_g^T + diag(D_Y),
 * with groups of columns F_g [C_g, ...Y] of signs s_g = +-1 and a diagonal
 * part D_Y.  A node Y = op(X, ...) hands its curvature to its sources:
 *   - every group through the op's own vjp rule, as a batched pass of C_g
 *     directions: J^T F_g (exact, the op being linear in its cotangent), and
 *     groups that meet again where paths join add, so fan-out is exact;
 *   - D_Y through a re-indexing (HESS_OPF_REINDEX: reshape, transpose,
 *     permute, slices, gathers, cat) by the op's own vjp rule, each element
 *     to the one source element it copies, and as D_Y f'(X)^2
 *     through an elementwise op of one source; through any other op it is
 *     first turned into columns sqrt(D+) and sqrt(D-) (materialised);
 *   - its own second derivative contracted with its cotangent g (the
 *     residual): g f''(X) for an elementwise op, found by differentiating
 *     the op's vjp rule in forward mode, and the record's curv rule for the
 *     others (softmax, log_softmax, the losses).  Ops flagged linear have
 *     none; a product of two tensors that both depend on the parameters is
 *     not covered.
 * A parameter's diagonal is then sum_g s_g sum_c F_g[c]^2 + D.
 *
 * When the loss is a sum over samples (the leading dimension B of the
 * activations) and no op mixes samples, each column stands for B columns, one
 * per sample (compressed): F_g is [C_g, B, ...] and holds the per-sample
 * Hessians' factors side by side, so that a network's batch costs C columns,
 * not B C.  A parameter shared by the samples (W of x W^T, a bias) then takes
 * its diagonal from the record's diag_param rule (for x W^T: (x^2)^T Q with Q
 * the per-sample diagonal at the output), or, for an elementwise op, from the
 * per-sample products summed within each sample and squared.  A graph the
 * compressed form does not fit is swept again with explicit columns
 * (B = 0), which also covers weight tying; a graph neither covers falls back
 * to the rows (hessian.c) under HESS_DIAG_AUTO.
 *
 * Everything is built from ops and evaluated as it is built; the scratch goes
 * when the caller rewinds.
 */
#include "second_order.h"

#include <stdio.h>
#include <string.h>

#define MATERIALISE_BYTES ((size_t)512 << 20) /* largest identity a sweep makes */

typedef struct term {
    struct term *next;
    size_t group;
    hess_tensor *F; /* [C_g, ...node] */
} term;

typedef struct sweep {
    hess_context *ctx;
    const char *fn;
    int64_t lo, top, B; /* window; B > 0: columns per sample (compressed) */
    const unsigned char *req;
    const unsigned char *out_dep; /* GGN: depends on the output; else NULL */
    int64_t out_id;
    hess_tensor **cot; /* first-order cotangents */
    term **F;
    hess_tensor **D;
    int *pidx;     /* parameter index of a window node, or -1 */
    uint64_t *anc; /* the parameters a node depends on, bit i % 64 for params[i] */
    int *shared;   /* nodes a shared parameter took its diagonal from */
    hess_tensor **acc;
    size_t n;
    hess_tensor *const *params;
    double *gsign;
    size_t ng, gcap;
    size_t columns, max_columns;
    char *why; /* HESS_DIAG_WHY bytes: what the sweep does not cover */
} sweep;

/* ------------------------------------------------------------------------ */
/* Bookkeeping                                                              */
/* ------------------------------------------------------------------------ */

static int64_t at(const sweep *s, const hess_tensor *t)
{
    return t->id >= s->lo && t->id <= s->top ? t->id - s->lo : -1;
}

/* Records what is not covered; false (the sweep stops). */
static bool uncovered(sweep *s, const hess_tensor *t, const char *reason)
{
    if (s->ctx->status == HESS_OK && !s->why[0])
        snprintf(s->why, HESS_DIAG_WHY, "op %s: %s", t->def->name, reason);
    return false;
}

/* The sweep may go on: no error, nothing uncovered. */
static bool live(const sweep *s)
{
    return s->ctx->status == HESS_OK && !s->why[0];
}

/* Whether Y hands curvature to source i: it depends on a parameter and, for
 * the GGN above the output, on the output. */
static bool follow(const sweep *s, const hess_tensor *Y, int i)
{
    const hess_tensor *x = Y->src[i];
    const int64_t a = at(s, x);
    if (a < 0 || !(s->req[a] & HESS__REQ))
        return false;
    if (s->out_dep && s->out_dep[at(s, Y)] && Y->id != s->out_id)
        return s->out_dep[a] != 0;
    return true;
}

/* Whether the sources Y follows depend on disjoint sets of parameters: then
 * the second derivatives across them reach only pairs of different
 * parameters, off the diagonal, and each source can be treated alone. */
static bool disjoint(const sweep *s, const hess_tensor *Y)
{
    uint64_t seen = 0;
    for (int i = 0; i < Y->def->arity; i++) {
        if (!follow(s, Y, i))
            continue;
        const uint64_t m = s->anc[at(s, Y->src[i])];
        if (seen & m)
            return false;
        seen |= m;
    }
    return true;
}

static int n_follow(const sweep *s, const hess_tensor *Y, int *first)
{
    int n = 0;
    for (int i = 0; i < Y->def->arity; i++)
        if (follow(s, Y, i)) {
            if (!n && first)
                *first = i;
            n++;
        }
    return n;
}

static bool is_zero(const hess_tensor *t)
{
    for (int64_t j = 0; j < t->numel; j++)
        if (t->data[j] != 0.0)
            return false;
    return true;
}

static hess_tensor *add_or(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return !a ? b : !b ? a : hess_add(ctx, a, b);
}

static void add_D(sweep *s, const hess_tensor *x, hess_tensor *d)
{
    if (d && !is_zero(d))
        s->D[at(s, x)] = add_or(s->ctx, s->D[at(s, x)], d);
}

static bool new_group(sweep *s, const hess_tensor *t, int64_t C, double sign, size_t *g)
{
    if (s->ng == s->gcap) {
        const size_t cap = s->gcap ? 2 * s->gcap : 16;
        double *gs = hess__alloc(s->ctx, cap * sizeof *gs, s->fn);
        if (!gs)
            return false;
        if (s->ng)
            memcpy(gs, s->gsign, s->ng * sizeof *gs);
        s->gsign = gs;
        s->gcap = cap;
    }
    s->columns += (size_t)C;
    if (s->max_columns && s->columns > s->max_columns)
        return uncovered(s, t,
                         "needs more columns than the Hessian has rows: the rows are cheaper");
    s->gsign[s->ng] = sign;
    *g = s->ng++;
    return true;
}

static void add_term(sweep *s, const hess_tensor *x, size_t group, hess_tensor *F)
{
    if (!F)
        return;
    term **list = &s->F[at(s, x)];
    for (term *t = *list; t; t = t->next)
        if (t->group == group) {
            t->F = hess_add(s->ctx, t->F, F);
            return;
        }
    term *t = hess__alloc(s->ctx, sizeof *t, s->fn);
    if (!t)
        return;
    t->next = *list;
    t->group = group;
    t->F = F;
    *list = t;
}

/* A constant leaf of the given shape, zeros. */
static hess_tensor *zeros(sweep *s, int nd, const int64_t *shape)
{
    hess_tensor *t = hess__leaf(s->ctx, nd, shape, 0u, s->fn);
    if (t) {
        memset(t->data, 0, (size_t)t->numel * sizeof(double));
        t->par.leaf.nz_chunks = -1;
    }
    return t;
}

/* An identity over the per-sample part of t: [f, 1, t[1:]...] when
 * compressed (f = numel / B), else [f, t...] (f = numel); NULL when too big. */
static hess_tensor *identity_for(sweep *s, const hess_tensor *t)
{
    const int64_t f = s->B ? t->numel / t->shape[0] : t->numel;
    if ((size_t)f * (size_t)f > MATERIALISE_BYTES / sizeof(double)) {
        uncovered(s, t, "too many columns to materialise");
        return NULL;
    }
    int64_t shape[HESS_DIMS];
    int nd = 0;
    shape[nd++] = f;
    if (s->B)
        shape[nd++] = 1;
    for (int d = s->B ? 1 : 0; d < t->ndim; d++)
        shape[nd++] = t->shape[d];
    hess_tensor *E = zeros(s, nd, shape);
    if (E)
        for (int64_t c = 0; c < f; c++)
            E->data[c * f + c] = 1.0;
    return E;
}

/* The columns a curvature rule's col stands for at source t: one per position
 * of t's dims other than axis (and other than the samples' when compressed),
 * each holding col's slice along axis there: [ncols, ...t].  axis < 0: col is
 * one column.  *C = ncols. */
static hess_tensor *
block_columns(sweep *s, const hess_tensor *t, hess_tensor *col, int axis, int64_t *C)
{
    int64_t es[HESS_DIMS];
    int64_t nc = 1;
    for (int d = 0; d < t->ndim; d++) {
        const bool in_block = d == axis || (s->B && d == 0);
        es[1 + d] = axis < 0 || in_block ? 1 : t->shape[d];
        nc *= es[1 + d];
    }
    es[0] = nc;
    *C = nc;
    if (nc == 1) {
        int64_t shape[HESS_DIMS];
        shape[0] = 1;
        memcpy(shape + 1, t->shape, (size_t)t->ndim * sizeof *shape);
        return hess__reshape_any(s->ctx, col, t->ndim + 1, shape);
    }
    if ((size_t)nc * (size_t)nc > MATERIALISE_BYTES / sizeof(double)) {
        uncovered(s, t, "too many columns to materialise");
        return NULL;
    }
    hess_tensor *E = zeros(s, t->ndim + 1, es);
    if (!E)
        return NULL;
    for (int64_t c = 0; c < nc; c++)
        E->data[c * nc + c] = 1.0;
    return hess_mul(s->ctx, E, col);
}

/* Adds the signed columns sqrt(D+) and sqrt(D-) of a diagonal d at node t as
 * new groups, into t's list (list == NULL) or into *list. */
static bool materialise(sweep *s, const hess_tensor *t, hess_tensor *d, term **list)
{
    bool pos = false, neg = false;
    for (int64_t j = 0; j < d->numel; j++) {
        pos = pos || d->data[j] > 0;
        neg = neg || d->data[j] < 0;
    }
    hess_tensor *E = pos || neg ? identity_for(s, t) : NULL;
    if ((pos || neg) && !E)
        return false;
    for (int k = 0; k < 2; k++) {
        if (!(k == 0 ? pos : neg))
            continue;
        size_t g;
        if (!new_group(s, t, E->shape[0], k == 0 ? 1.0 : -1.0, &g))
            return false;
        hess_tensor *r = hess_sqrt(s->ctx, hess_relu(s->ctx, k == 0 ? d : hess_neg(s->ctx, d)));
        hess_tensor *F = hess_mul(s->ctx, E, r);
        term *tm = hess__alloc(s->ctx, sizeof *tm, s->fn);
        if (!tm || !F)
            return false;
        tm->group = g;
        tm->F = F;
        tm->next = *list;
        *list = tm;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Elementwise ops: f' and g f'' from the vjp rule                          */
/* ------------------------------------------------------------------------ */

/* The tangent of y for the tangent ones of x (x a leaf y is built on). */
static hess_tensor *tangent_of_ones(sweep *s, hess_tensor *y, hess_tensor *x)
{
    hess_tensor *ones = hess__leaf(s->ctx, x->ndim, x->shape, 0u, s->fn), *t = NULL;
    if (!ones)
        return NULL;
    for (int64_t j = 0; j < ones->numel; j++)
        ones->data[j] = 1.0;
    hess__leaf_scan(ones);
    hess__forward(s->ctx, 1, &y, 1, &x, &ones, &t, HESS__FRESH, 0, s->fn, "params");
    return t;
}

/* For an elementwise Y and its source i: *t = dY/dx per element (shaped
 * like Y) and *r = g d2Y/dx2 per element of x (summed over its repeats),
 * from a copy of the node on a fresh leaf x', so that each forward pass
 * visits the few new nodes only. */
static void
elementwise_parts(sweep *s, hess_tensor *Y, int i, hess_tensor *g, hess_tensor **t, hess_tensor **r)
{
    hess_context *ctx = s->ctx;
    hess_tensor *x = Y->src[i];
    hess_tensor *xp = hess__leaf(ctx, x->ndim, x->shape, 0u, s->fn);
    if (!xp)
        return;
    memcpy(xp->data, x->data, (size_t)x->numel * sizeof(double));
    hess__leaf_scan(xp);
    hess_tensor *src[HESS_MAX_SRC] = {NULL};
    for (int k = 0; k < Y->def->arity; k++)
        src[k] = k == i ? xp : Y->src[k];
    hess_tensor *Yp = hess__apply(ctx, Y->def, src, &Y->par, s->fn);
    if (!Yp)
        return;
    if (t)
        *t = tangent_of_ones(s, Yp, xp);
    if (r && g) {
        hess_pass pass = {1u << i, false, 0, s->fn};
        hess_tensor *gin[HESS_MAX_SRC] = {NULL};
        Yp->def->vjp(ctx, &pass, Yp, g, gin);
        *r = gin[i] ? tangent_of_ones(s, gin[i], xp) : NULL;
    }
}

/* ------------------------------------------------------------------------ */
/* The residual of a node: its own second derivative times its cotangent    */
/* ------------------------------------------------------------------------ */

static bool source_residual(sweep *s, hess_tensor *Y, int i, hess_tensor *g);
static bool rowwise(const sweep *s, const hess_tensor *Y, int i);

/* An elementwise Y of two sources that share a parameter: the block
 * [[0, diag(c)], [diag(c), 0]] of the Hessian across them (over Y's
 * elements; a broadcast source sums its repeats), c = g d2Y/dX1dX2, as
 * columns (u, u) and (u, -u) with u = sqrt(|c| / 2), signed by c (one group
 * on both sources: where they meet again the columns add). */
static bool cross_residual(sweep *s, hess_tensor *Y, int i, hess_tensor *g)
{
    hess_context *ctx = s->ctx;
    int j = i + 1;
    while (j < Y->def->arity && !follow(s, Y, j))
        j++;
    hess_tensor *x1 = Y->src[i], *x2 = Y->src[j];
    if (s->B && !(rowwise(s, Y, i) && rowwise(s, Y, j)))
        return uncovered(s, Y,
                         "curved across two sources that share a parameter, one of "
                         "them repeated over the samples");
    hess_tensor *src[HESS_MAX_SRC] = {NULL}, *xp[2];
    for (int k = 0; k < 2; k++) { /* leaves of Y's shape: c per element of Y */
        hess_tensor *x = hess__broadcast_to(ctx, k ? x2 : x1, Y->ndim, Y->shape);
        xp[k] = x ? hess__leaf(ctx, Y->ndim, Y->shape, 0u, s->fn) : NULL;
        if (!xp[k])
            return false;
        memcpy(xp[k]->data, x->data, (size_t)x->numel * sizeof(double));
        hess__leaf_scan(xp[k]);
    }
    for (int k = 0; k < Y->def->arity; k++)
        src[k] = k == i ? xp[0] : k == j ? xp[1] : Y->src[k];
    hess_tensor *Yp = hess__apply(ctx, Y->def, src, &Y->par, s->fn);
    if (!Yp)
        return false;
    hess_pass pass = {1u << i, false, 0, s->fn};
    hess_tensor *gin[HESS_MAX_SRC] = {NULL};
    Yp->def->vjp(ctx, &pass, Yp, g, gin);
    hess_tensor *c = gin[i] ? tangent_of_ones(s, gin[i], xp[1]) : NULL;
    if (!c || is_zero(c))
        return live(s);
    hess_tensor *E = identity_for(s, Y);
    if (!E)
        return false;
    for (int k = 0; k < 2; k++) { /* c+ then c- */
        hess_tensor *half = hess__affine(ctx, hess_relu(ctx, k ? hess_neg(ctx, c) : c), 0.5, 0.0);
        if (is_zero(half))
            continue;
        hess_tensor *u = hess_mul(ctx, E, hess_sqrt(ctx, half));
        for (int m = 0; m < 2; m++) { /* (u, u) and (u, -u) */
            size_t grp;
            if (!new_group(s, Y, E->shape[0], (k == 0) == (m == 0) ? 1.0 : -1.0, &grp))
                return false;
            const hess_pass pk = {0, false, E->shape[0], s->fn};
            add_term(s, x1, grp, hess__sum_like(ctx, &pk, u, x1));
            add_term(s, x2, grp, hess__sum_like(ctx, &pk, m ? hess_neg(ctx, u) : u, x2));
        }
    }
    return live(s);
}

static bool residual(sweep *s, hess_tensor *Y)
{
    hess_tensor *g = s->cot[at(s, Y)];
    const hess_op_def *def = Y->def;
    if (!g || (def->flags & (HESS_OPF_LINEAR | HESS_OPF_CONSTANT)))
        return true;
    if (s->out_dep && !(s->out_dep[at(s, Y)] && Y->id != s->out_id))
        return true; /* the GGN keeps the curvature above the output only */
    int i0 = 0;
    const int nf = n_follow(s, Y, &i0);
    if (nf == 0)
        return true;
    if (nf > 1 && !disjoint(s, Y)) {
        /* the second derivative across two sources reaches the diagonal */
        if (!(def->flags & HESS_OPF_ELEMENTWISE) || nf != 2)
            return uncovered(s, Y,
                             def->flags & HESS_OPF_MULTILINEAR
                                 ? "a product of two tensors that depend on one parameter"
                                 : "curved in two sources that depend on one parameter");
        if (!cross_residual(s, Y, i0, g))
            return false;
    }
    if (def->flags & HESS_OPF_MULTILINEAR)
        return true; /* linear in each source: only cross terms, off the diagonal */
    for (int i = 0; i < def->arity && live(s); i++)
        if (follow(s, Y, i) && !source_residual(s, Y, i, g))
            return false;
    return live(s);
}

/* The residual of Y in its source i alone. */
static bool source_residual(sweep *s, hess_tensor *Y, int i, hess_tensor *g)
{
    const hess_op_def *def = Y->def;
    hess_tensor *x = Y->src[i];
    if (def->flags & HESS_OPF_ELEMENTWISE) {
        hess_tensor *r = NULL;
        elementwise_parts(s, Y, i, g, NULL, &r);
        add_D(s, x, r);
        return live(s);
    }
    if (!def->curv)
        return uncovered(s, Y, "no curvature rule");
    hess_curv c = {0};
    const hess_pass pass = {1u << i, false, 0, s->fn};
    if (!def->curv(s->ctx, &pass, Y, g, i, &c))
        return uncovered(s, Y, "its curvature rule does not cover these shapes");
    add_D(s, x, c.diag);
    for (int k = 0; k < 2 && live(s); k++) {
        if (!c.col[k] || is_zero(c.col[k]))
            continue;
        if (s->B && !(c.axis > 0 && x->ndim >= 1 && x->shape[0] == s->B))
            return uncovered(s, Y, "its curvature spans the samples");
        int64_t C;
        hess_tensor *F = block_columns(s, x, c.col[k], c.axis, &C);
        size_t grp;
        if (!F || !new_group(s, Y, C, c.sign[k], &grp))
            return false;
        add_term(s, x, grp, F);
    }
    return live(s);
}

/* ------------------------------------------------------------------------ */
/* Handing a node's curvature to its sources                                */
/* ------------------------------------------------------------------------ */

/* Whether source i of Y carries per-sample curvature: row b of Y depends on
 * row b of it alone. */
static bool rowwise(const sweep *s, const hess_tensor *Y, int i)
{
    const hess_tensor *x = Y->src[i];
    if (!s->B || Y->ndim < 1 || Y->shape[0] != s->B || x->ndim < 1 || x->shape[0] != s->B)
        return false;
    if (Y->def->rowwise)
        return Y->def->rowwise(Y, i);
    return (Y->def->flags & HESS_OPF_ELEMENTWISE) && x->ndim == Y->ndim;
}

/* The vjp of Y for source i alone, for the cotangent G (k directions). */
static hess_tensor *vjp_one(sweep *s, hess_tensor *Y, int i, hess_tensor *G, int64_t k)
{
    hess_pass pass = {1u << i, false, k, s->fn};
    hess_tensor *gin[HESS_MAX_SRC] = {NULL};
    Y->def->vjp(s->ctx, &pass, Y, G, gin);
    return gin[i];
}

/* The diagonal that an elementwise Y gives a parameter p (source i) that the
 * samples share: each sample's gradient sums, within the sample, the
 * products F t (t = dY/dp); its squares are summed over columns and samples;
 * and the diagonal part contributes sum D t^2. */
static bool
elementwise_param(sweep *s, hess_tensor *Y, int i, const hess_factor *f, hess_tensor **d)
{
    hess_context *ctx = s->ctx;
    hess_tensor *p = Y->src[i], *t = NULL;
    elementwise_parts(s, Y, i, NULL, &t, NULL);
    if (!t)
        return false;
    /* p's dims aligned with Y's per-sample dims (p has no batch) */
    int64_t pp[HESS_DIMS];
    const int r = Y->ndim, pad = r - p->ndim;
    for (int k = 0; k < r; k++)
        pp[k] = k < pad ? 1 : p->shape[k - pad];
    if (pp[0] != 1)
        return false;
    hess_tensor *sum = NULL;
    for (size_t g = 0; g < f->n; g++) {
        int64_t per[HESS_DIMS];
        per[0] = f->F[g]->shape[0];
        per[1] = s->B;
        memcpy(per + 2, pp + 1, (size_t)(r - 1) * sizeof *per);
        hess_tensor *P = hess__sum_to(ctx, hess_mul(ctx, f->F[g], t), r + 1, per);
        hess_tensor *q = hess__sum_to(ctx, hess_mul(ctx, P, P), p->ndim, p->shape);
        sum = add_or(ctx, sum, f->sign[g] < 0 ? hess_neg(ctx, q) : q);
    }
    if (f->D)
        sum =
            add_or(ctx, sum,
                   hess__sum_to(ctx, hess_mul(ctx, f->D, hess_mul(ctx, t, t)), p->ndim, p->shape));
    *d = sum;
    return true;
}

/* D_Y for source i when Y maps it diagonally (a re-indexing, or an
 * elementwise op of that source alone, not repeated); NULL otherwise. */
static bool diagonal_path(const sweep *s, hess_tensor *Y, int i)
{
    if (Y->def->flags & HESS_OPF_REINDEX)
        return true;
    return (Y->def->flags & HESS_OPF_ELEMENTWISE) && hess__same_shape(Y, Y->src[i]) &&
           (n_follow(s, Y, NULL) == 1 || disjoint(s, Y));
}

static bool propagate(sweep *s, hess_tensor *Y)
{
    hess_context *ctx = s->ctx;
    const int64_t a = at(s, Y);
    term *list = s->F[a], *mat = NULL;
    hess_tensor *D = s->D[a];
    if (!list && !D)
        return true;
    bool mat_done = false;
    for (int i = 0; i < Y->def->arity && live(s); i++) {
        if (!follow(s, Y, i))
            continue;
        hess_tensor *x = Y->src[i];
        const int pi = s->pidx[at(s, x)];
        const bool rows = rowwise(s, Y, i);
        if (s->B && !rows) {
            if (pi < 0)
                return uncovered(s, Y, "mixes the samples");
            /* a parameter the samples share: the record's rule */
            size_t nt = 0;
            for (term *t = list; t; t = t->next)
                nt++;
            hess_tensor **F = hess__alloc(ctx, (nt + 1) * sizeof *F, s->fn);
            double *sg = hess__alloc(ctx, (nt + 1) * sizeof *sg, s->fn);
            if (!F || !sg)
                return false;
            nt = 0;
            for (term *t = list; t; t = t->next, nt++) {
                F[nt] = t->F;
                sg[nt] = s->gsign[t->group];
            }
            const hess_factor f = {nt, F, sg, D, s->B};
            const hess_pass pass = {1u << i, false, 0, s->fn};
            hess_tensor *d = NULL;
            bool ok;
            if (Y->def->flags & HESS_OPF_ELEMENTWISE)
                ok = elementwise_param(s, Y, i, &f, &d);
            else
                ok = Y->def->diag_param && Y->def->diag_param(ctx, &pass, Y, i, &f, &d);
            if (!ok)
                return uncovered(s, Y, "no rule for the diagonal of a parameter the samples share");
            if (s->shared[pi]++)
                return uncovered(s, Y, "a parameter the samples share is used twice");
            s->acc[pi] = add_or(ctx, s->acc[pi], d);
            continue;
        }
        for (term *t = list; t && live(s); t = t->next)
            add_term(s, x, t->group, vjp_one(s, Y, i, t->F, t->F->shape[0]));
        if (!D)
            continue;
        if (diagonal_path(s, Y, i)) {
            if (Y->def->flags & HESS_OPF_REINDEX) {
                add_D(s, x, vjp_one(s, Y, i, D, 0));
            } else {
                hess_tensor *t = NULL;
                elementwise_parts(s, Y, i, NULL, &t, NULL);
                if (t)
                    add_D(s, x, hess_mul(ctx, D, hess_mul(ctx, t, t)));
            }
            continue;
        }
        if (!mat_done && !materialise(s, Y, D, &mat))
            return false;
        mat_done = true;
        for (term *t = mat; t && live(s); t = t->next)
            add_term(s, x, t->group, vjp_one(s, Y, i, t->F, t->F->shape[0]));
    }
    return live(s);
}

/* ------------------------------------------------------------------------ */
/* The sweep and its driver                                                 */
/* ------------------------------------------------------------------------ */

/* One sweep with B (0: explicit columns); true when it covered the graph. */
static bool run(sweep *s)
{
    hess_context *ctx = s->ctx;
    const size_t span = (size_t)(s->top - s->lo + 1);
    s->F = hess__calloc(ctx, span * sizeof *s->F, s->fn);
    s->D = hess__calloc(ctx, span * sizeof *s->D, s->fn);
    s->acc = hess__calloc(ctx, s->n * sizeof *s->acc, s->fn);
    s->shared = hess__calloc(ctx, s->n * sizeof *s->shared, s->fn);
    s->ng = s->gcap = s->columns = 0;
    s->why[0] = '\0';
    if (!s->F || !s->D || !s->acc || !s->shared)
        return false;
    for (int64_t id = s->top; id >= s->lo && live(s); id--) {
        hess_tensor *Y = ctx->nodes[id];
        if (hess__is_leaf(Y) || !(s->req[id - s->lo] & HESS__REQ))
            continue;
        if (!residual(s, Y) || !propagate(s, Y))
            return false;
    }
    /* the parameters' own curvature: columns and diagonal that reached them */
    for (size_t i = 0; i < s->n && live(s); i++) {
        const int64_t a = at(s, s->params[i]);
        if (a < 0)
            continue;
        const hess_tensor *p = s->params[i];
        /* a parameter read both ways: the columns that reached it here and
         * those its shared uses squared per sample would have to meet first */
        if (s->shared[i] && s->F[a])
            return uncovered(s, p, "a parameter the samples share is also used per sample");
        for (term *t = s->F[a]; t; t = t->next) {
            hess_tensor *q = hess__sum_to(ctx, hess_mul(ctx, t->F, t->F), p->ndim, p->shape);
            s->acc[i] = add_or(ctx, s->acc[i], s->gsign[t->group] < 0 ? hess_neg(ctx, q) : q);
        }
        s->acc[i] = add_or(ctx, s->acc[i], s->D[a]);
    }
    return live(s);
}

/* The leading dimension the samples are on: that of the loss's prediction
 * when the loss is an op of several elements' worth, else of the highest
 * node of rank >= 2 that depends on the parameters; 0 when none. */
static int64_t guess_batch(const sweep *s, const hess_tensor *loss)
{
    if (!hess__is_leaf(loss) && loss->def->curv && loss->src[0]->ndim >= 1 &&
        loss->src[0]->shape[0] > 1)
        return loss->src[0]->shape[0];
    for (int64_t id = s->top; id >= s->lo; id--) {
        const hess_tensor *t = s->ctx->nodes[id];
        if ((s->req[id - s->lo] & HESS__REQ) && !hess__is_leaf(t) && t->ndim >= 2 &&
            t->shape[0] > 1)
            return t->shape[0];
    }
    return 0;
}

hess_status hess__diag_backprop(hess_context *ctx,
                                hess_tensor *loss,
                                hess_tensor *output,
                                size_t n,
                                hess_tensor *const params[],
                                unsigned flags,
                                size_t max_columns,
                                double *diag,
                                char *why,
                                const char *fn)
{
    why[0] = '\0';
    sweep s = {.ctx = ctx, .fn = fn, .n = n, .params = params, .why = why};
    s.max_columns = max_columns;
    hess__window w;
    hess_tensor *const outs[1] = {loss};
    const hess_status wst = hess__window_open(ctx, 1, outs, n, params, fn, "params", &w);
    if (wst != HESS_OK)
        return wst;
    if (w.span == 0) { /* the loss precedes every parameter */
        if (!(flags & HESS_ALLOW_UNUSED)) {
            hess__error(ctx, HESS_ERR_NODIFF, "%s: the loss does not depend on params[0]", fn);
            return HESS_ERR_NODIFF;
        }
        memset(diag, 0, hess_param_count(n, params) * sizeof *diag);
        return HESS_OK;
    }
    s.lo = w.lo, s.top = w.top, s.req = w.mask, s.cot = w.slot;
    const size_t span = (size_t)w.span;
    s.pidx = hess__alloc(ctx, span * sizeof *s.pidx, fn);
    hess_tensor *one = hess__leaf(ctx, loss->ndim, loss->shape, 0u, fn);
    if (!s.pidx || !one)
        return ctx->status;
    one->data[0] = 1.0;
    hess__leaf_scan(one);
    for (size_t j = 0; j < span; j++)
        s.pidx[j] = -1;
    for (size_t i = 0; i < n; i++)
        if (params[i]->id <= s.top)
            s.pidx[params[i]->id - s.lo] = (int)i;
    s.anc = hess__calloc(ctx, span * sizeof *s.anc, fn);
    if (!s.anc)
        return ctx->status;
    for (size_t i = 0; i < n; i++)
        if (params[i]->id <= s.top)
            s.anc[params[i]->id - s.lo] |= (uint64_t)1 << (i % 64);
    for (size_t j = 0; j < span; j++) {
        const hess_tensor *t = ctx->nodes[s.lo + (int64_t)j];
        if (hess__is_leaf(t) || !(s.req[j] & HESS__REQ))
            continue;
        for (int k = 0; k < t->def->arity; k++)
            if (t->src[k]->id >= s.lo)
                s.anc[j] |= s.anc[t->src[k]->id - s.lo];
    }
    if (output) {
        unsigned char *od = hess__calloc(ctx, span, fn);
        if (!od)
            return ctx->status;
        if (output->id < s.lo || !(s.req[output->id - s.lo] & HESS__REQ)) {
            hess__error(ctx, HESS_ERR_ARG, "%s: the output does not depend on the parameters", fn);
            return HESS_ERR_ARG;
        }
        od[output->id - s.lo] = HESS__REQ | HESS__ANY;
        hess__depend_sweep(ctx, output->id, s.top, od + (output->id - s.lo));
        if (!(od[span - 1] & HESS__REQ)) {
            hess__error(ctx, HESS_ERR_ARG, "%s: the loss does not depend on the output", fn);
            return HESS_ERR_ARG;
        }
        s.out_dep = od;
        s.out_id = output->id;
    }

    /* the first-order cotangents of every node */
    hess_pass pass = {0, false, 0, fn};
    s.cot[span - 1] = one;
    if (s.req[span - 1] & HESS__REQ)
        hess__reverse_sweep(ctx, &pass, s.lo, s.top, s.req, s.cot, fn);
    if (ctx->status != HESS_OK)
        return ctx->status;
    for (size_t i = 0; i < n; i++)
        if (!(flags & HESS_ALLOW_UNUSED) &&
            (params[i]->id > s.top || !s.cot[params[i]->id - s.lo])) {
            char sh[96];
            hess__error(ctx, HESS_ERR_NODIFF, "%s: the loss does not depend on params[%zu] %s", fn,
                        i, hess__shape_str(sh, params[i]->ndim, params[i]->shape));
            return HESS_ERR_NODIFF;
        }

    /* compressed first, then explicit columns */
    const hess_mark mk = hess__mark(ctx);
    const int64_t B = guess_batch(&s, loss);
    bool covered = false;
    char first[HESS_DIAG_WHY] = "";
    for (int attempt = B ? 0 : 1; attempt < 2 && !covered && ctx->status == HESS_OK; attempt++) {
        if (attempt == 1 && B) {
            memcpy(first, why, HESS_DIAG_WHY);
            hess__rewind(ctx, &mk);
        }
        s.B = attempt == 0 ? B : 0;
        covered = run(&s);
    }
    if (!covered && first[0] && why[0]) { /* say what stopped each form */
        char second[HESS_DIAG_WHY];
        memcpy(second, why, HESS_DIAG_WHY);
        snprintf(why, HESS_DIAG_WHY, "%.150s (per sample: %.150s)", second, first);
    }
    if (ctx->status != HESS_OK)
        return ctx->status;
    if (!covered)
        return HESS_OK; /* why[] says what is not covered */
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const size_t len = (size_t)params[i]->numel;
        if (s.acc[i])
            memcpy(diag + off, s.acc[i]->data, len * sizeof *diag);
        else
            memset(diag + off, 0, len * sizeof *diag);
        off += len;
    }
    return HESS_OK;
}
