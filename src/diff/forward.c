/*
 * forward.c -- forward mode.  A forward pass walks the tape in creation order
 * from the wrt tensors, visiting only nodes that depend on them, and gives
 * each its tangent from its sources' by the op's jvp rule (an elementwise
 * op's vjp rule serves: its Jacobian is diagonal).  Tangents live in a
 * per-pass table indexed by tape position and are built from ops, so they can
 * be differentiated again; with [k] in front, one pass carries k directions.
 *
 * hess_jvp is one forward pass; hess_jacobian is column blocks of forward
 * passes or row blocks of backward passes, whichever is fewer, built once
 * and replayed for each block.
 */
#include "diff.h"

#include <string.h>

#define JAC_BLOCK 64 /* directions per pass of hess_jacobian */

static hess_status check_args(hess_context *ctx,
                              size_t n_out,
                              hess_tensor *const outputs[],
                              size_t n,
                              hess_tensor *const wrt[],
                              hess_tensor *const tangents[],
                              hess_tensor *touts[],
                              int64_t k,
                              const char *fn,
                              const char *what)
{
    (void)outputs;
    for (size_t j = 0; j < n_out; j++)
        touts[j] = NULL;
    if (ctx->status != HESS_OK)
        return ctx->status;
    /* the public functions checked the tensors and lists; the library's
     * own callers make the tangents */
    for (size_t i = 0; i < n; i++) {
        if (!hess__fits(k, wrt[i], tangents[i])) {
            char a[96], b[96];
            hess__error(ctx, HESS_ERR_SHAPE, "%s: tangent %s does not match %s[%zu] %s", fn,
                        hess__shape_str(a, tangents[i]->ndim, tangents[i]->shape), what, i,
                        hess__shape_str(b, wrt[i]->ndim, wrt[i]->shape));
            return HESS_ERR_SHAPE;
        }
    }
    return HESS_OK;
}

/* The tangent of node t from its sources' (tin[i] NULL: zero). */
static hess_tensor *
node_tangent(hess_context *ctx, hess_pass *pass, hess_tensor *t, hess_tensor *const tin[])
{
    const hess_op_def *def = t->def;
    pass->need = 0;
    for (int i = 0; i < def->arity; i++)
        if (tin[i])
            pass->need |= 1u << i;
    if (def->jvp)
        return def->jvp(ctx, pass, t, tin);
    if ((def->flags & HESS_OPF_ELEMENTWISE) && def->vjp) {
        /* a diagonal Jacobian is its own transpose */
        hess_tensor *gin[HESS_MAX_SRC] = {NULL};
        def->vjp(ctx, pass, t, tin[0], gin);
        return gin[0];
    }
    hess__error(ctx, HESS_ERR_NODIFF, "%s: op %s has no forward-mode rule", pass->api, def->name);
    return NULL;
}

static hess_status forward_impl(hess_context *ctx,
                                size_t n_out,
                                hess_tensor *const outputs[],
                                size_t n,
                                hess_tensor *const wrt[],
                                hess_tensor *const tangents[],
                                hess_tensor *touts[],
                                unsigned flags,
                                int64_t k,
                                const char *fn,
                                const char *what)
{
    hess_status st = check_args(ctx, n_out, outputs, n, wrt, tangents, touts, k, fn, what);
    if (st != HESS_OK)
        return st;
    if (!(flags & HESS__FRESH) && ((st = hess__refresh(ctx, n_out, outputs, fn)) != HESS_OK ||
                                   (st = hess__refresh(ctx, n, tangents, fn)) != HESS_OK))
        return st;

    hess__window w;
    if ((st = hess__window_open(ctx, n_out, outputs, n, wrt, fn, what, &w)) != HESS_OK)
        return st;
    const int64_t lo = w.lo, top = w.top, span = w.span;
    const unsigned char *mask = w.mask;
    hess_tensor **tan = w.slot; /* the tangent of each node of the window */

    hess_pass pass = {0, (flags & HESS_CREATE_GRAPH) != 0, k, fn};
    const int64_t first_new = ctx->n_nodes;
    for (size_t i = 0; i < n; i++)
        if (wrt[i]->id <= top)
            tan[wrt[i]->id - lo] = tangents[i];
    for (int64_t id = lo; id <= top && ctx->status == HESS_OK; id++) {
        hess_tensor *t = ctx->nodes[id];
        if (hess__is_leaf(t) || !(mask[id - lo] & HESS__REQ))
            continue;
        hess_tensor *tin[HESS_MAX_SRC] = {NULL};
        bool any = false;
        for (int i = 0; i < t->def->arity; i++) {
            const hess_tensor *s = t->src[i];
            if (s->id >= lo && (mask[s->id - lo] & HESS__REQ) && tan[s->id - lo]) {
                tin[i] = tan[s->id - lo];
                any = true;
            }
        }
        if (any)
            tan[id - lo] = node_tangent(ctx, &pass, t, tin);
    }
    for (size_t j = 0; j < n_out && ctx->status == HESS_OK; j++) {
        hess_tensor *o = outputs[j];
        hess_tensor *d = span && o->id >= lo ? tan[o->id - lo] : NULL;
        touts[j] = d ? d : hess__zeros_like(ctx, &pass, o);
    }
    /* as in reverse mode: without HESS_CREATE_GRAPH the tangents are constants */
    if (!pass.record)
        for (int64_t id = first_new; id < ctx->n_nodes; id++)
            ctx->nodes[id]->flags |= HESS_T_DETACHED;
    if (ctx->status != HESS_OK)
        for (size_t j = 0; j < n_out; j++)
            touts[j] = NULL;
    return ctx->status;
}

hess_status hess__forward(hess_context *ctx,
                          size_t n_out,
                          hess_tensor *const outputs[],
                          size_t n,
                          hess_tensor *const wrt[],
                          hess_tensor *const tangents[],
                          hess_tensor *touts[],
                          unsigned flags,
                          int64_t k,
                          const char *fn,
                          const char *what)
{
    const char *saved = hess__api_enter(ctx, fn);
    hess_status st = forward_impl(ctx, n_out, outputs, n, wrt, tangents, touts, flags, k, fn, what);
    hess__api_leave(ctx, saved, NULL);
    return st;
}

/* ------------------------------------------------------------------------ */
/* hess_jvp and hess_jacobian                                               */
/* ------------------------------------------------------------------------ */

/* Checks what hess_jvp and hess_jacobian take and brings output up to date. */
static hess_status check_call(hess_context *ctx,
                              hess_tensor *output,
                              size_t n,
                              hess_tensor *const wrt[],
                              const void *in,
                              const void *out,
                              const char *fn)
{
    hess_status st = hess__enter(ctx, fn);
    if (st != HESS_OK || (st = hess__check(ctx, output, fn)) != HESS_OK ||
        (st = hess__check_list(ctx, n, wrt, "wrt", fn)) != HESS_OK)
        return st;
    if (!in || !out) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL vector or output buffer", fn);
        return HESS_ERR_ARG;
    }
    return hess__refresh(ctx, 1, &output, fn);
}

/* Writes the flat vector x (n tensors' worth) into leaves v[] and stamps them. */
static void put_flat(hess_context *ctx, size_t n, hess_tensor *const v[], const double *x)
{
    for (size_t i = 0; i < n; i++) {
        memcpy(v[i]->data, x, (size_t)v[i]->numel * sizeof *x);
        x += v[i]->numel;
        hess__leaf_scan(v[i]);
        hess__touch(ctx, v[i], false);
    }
}

hess_tensor **hess__leaves_like(hess_context *ctx,
                                size_t n,
                                hess_tensor *const ts[],
                                int64_t k,
                                const double *x,
                                const char *fn)
{
    hess_tensor **v = hess__alloc(ctx, n * sizeof *v, fn);
    for (size_t i = 0; v && i < n; i++) {
        int64_t shape[HESS_DIMS];
        shape[0] = k;
        memcpy(shape + 1, ts[i]->shape, (size_t)ts[i]->ndim * sizeof *shape);
        v[i] = hess__leaf(ctx, ts[i]->ndim + (k > 0), shape + (k == 0), 0u, fn);
        if (!v[i])
            return NULL;
    }
    if (v && x)
        put_flat(ctx, n, v, x);
    return v;
}

hess_status hess_jvp(hess_context *ctx,
                     hess_tensor *output,
                     size_t n,
                     hess_tensor *const wrt[],
                     const double *v,
                     double *jv)
{
    static const char fn[] = "hess_jvp";
    hess_status st = check_call(ctx, output, n, wrt, v, jv, fn);
    if (st != HESS_OK)
        return st;
    const hess_mark mk = hess__mark(ctx);
    const int64_t first = ctx->n_nodes;
    hess_tensor **t = hess__leaves_like(ctx, n, wrt, 0, v, fn);
    hess_tensor *tout = NULL;
    if (t) {
        ctx->lazy++;
        st = hess__forward(ctx, 1, &output, n, wrt, t, &tout, HESS__FRESH, 0, fn, "wrt");
        ctx->lazy--;
        if (st == HESS_OK)
            st = hess__eval(ctx, first, 1, &tout, fn);
        if (st == HESS_OK)
            memcpy(jv, tout->data, (size_t)output->numel * sizeof *jv);
    }
    hess__rewind(ctx, &mk);
    return ctx->status;
}

/* Unit directions c0..c0+kk-1 of a space of `len` in the k slots of leaves v[]
 * (the slots past kk zero). */
static void
put_units(hess_context *ctx, size_t n, hess_tensor *const v[], int64_t k, size_t c0, size_t kk)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const size_t len = (size_t)(v[i]->numel / k);
        memset(v[i]->data, 0, (size_t)v[i]->numel * sizeof(double));
        for (size_t q = 0; q < kk; q++)
            if (c0 + q >= off && c0 + q < off + len)
                v[i]->data[q * len + (c0 + q - off)] = 1.0;
        off += len;
        hess__leaf_scan(v[i]);
        hess__touch(ctx, v[i], false);
    }
}

/* J (M x N, row-major) by blocks of k directions: forward passes give k
 * columns each, backward passes k rows each. */
static hess_status jacobian_blocks(hess_context *ctx,
                                   hess_tensor *output,
                                   size_t n,
                                   hess_tensor *const wrt[],
                                   bool forward,
                                   double *J,
                                   const char *fn)
{
    const size_t M = (size_t)output->numel, N = hess_param_count(n, wrt);
    const size_t dirs = forward ? N : M;
    const int64_t k = (int64_t)(dirs < JAC_BLOCK ? dirs : JAC_BLOCK);
    const int64_t first = ctx->n_nodes;
    hess_tensor **v = forward ? hess__leaves_like(ctx, n, wrt, k, NULL, fn)
                              : hess__leaves_like(ctx, 1, &output, k, NULL, fn);
    hess_tensor **res = hess__alloc(ctx, (forward ? 1 : n) * sizeof *res, fn);
    if (!v || !res)
        return ctx->status;
    const size_t nv = forward ? n : 1, nr = forward ? 1 : n;
    put_units(ctx, nv, v, k, 0, (size_t)k);
    ctx->lazy++;
    hess_status st = forward
                         ? hess__forward(ctx, 1, &output, n, wrt, v, res, HESS__FRESH, k, fn, "wrt")
                         : hess__backward(ctx, 1, &output, v, n, wrt, res,
                                          HESS__FRESH | HESS_ALLOW_UNUSED, k, fn, "wrt");
    ctx->lazy--;
    if (st == HESS_OK)
        st = hess__eval(ctx, first, nr, res, fn);
    hess__replay plan = {0};
    if (st == HESS_OK && dirs > (size_t)k)
        st = hess__replay_plan(ctx, nv, v, &plan);
    for (size_t c0 = 0; c0 < dirs && st == HESS_OK; c0 += (size_t)k) {
        const size_t kk = dirs - c0 < (size_t)k ? dirs - c0 : (size_t)k;
        if (c0 > 0) {
            put_units(ctx, nv, v, k, c0, kk);
            if ((st = hess__replay_run(ctx, &plan, fn)) != HESS_OK)
                break;
        }
        for (size_t q = 0; q < kk; q++) {
            if (forward) { /* column c0 + q of J */
                const double *col = res[0]->data + q * M;
                for (size_t r = 0; r < M; r++)
                    J[r * N + c0 + q] = col[r];
                continue;
            }
            double *row = J + (c0 + q) * N; /* row c0 + q */
            for (size_t i = 0; i < n; i++) {
                const size_t len = (size_t)wrt[i]->numel;
                memcpy(row, res[i]->data + q * len, len * sizeof *row);
                row += len;
            }
        }
    }
    return st;
}

hess_status
hess_jacobian(hess_context *ctx, hess_tensor *output, size_t n, hess_tensor *const wrt[], double *J)
{
    static const char fn[] = "hess_jacobian";
    hess_status st = check_call(ctx, output, n, wrt, J, J, fn);
    if (st != HESS_OK)
        return st;
    const hess_mark mk = hess__mark(ctx);
    const char *saved = hess__api_enter(ctx, fn);
    /* forward when the columns are no more than the rows */
    st = jacobian_blocks(ctx, output, n, wrt, hess_param_count(n, wrt) <= (size_t)output->numel, J,
                         fn);
    hess__api_leave(ctx, saved, NULL);
    hess__rewind(ctx, &mk);
    return st;
}
