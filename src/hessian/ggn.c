/*
 * ggn.c -- the generalized Gauss-Newton matrix G = J^T H_L J of a loss L
 * over a network output z (J = dz/dtheta, H_L = d2L/dz2): products G V by
 * a forward pass (J V), a double-backward pass through the loss alone
 * (H_L J V) and a backward pass (J^T H_L J V), all batched over k
 * directions, built once and replayed for each block; and its diagonal by
 * the curvature backpropagation (diag.c) with the residuals below z dropped,
 * or, where its rules do not cover the graph, by the products with unit
 * vectors.
 */
#include "second_order.h"

#include <string.h>

#define GGN_BLOCK 32 /* directions per replayed pass */

/* What both functions check: the loss of one element, the output a tensor
 * the loss depends on, the parameters; brings the loss up to date. */
static hess_status check_ggn(hess_context *ctx,
                             hess_tensor *loss,
                             hess_tensor *output,
                             size_t n,
                             hess_tensor *const params[],
                             const void *in,
                             const void *out,
                             const char *fn)
{
    hess_status st = hess__check_loss(ctx, loss, n, params, fn);
    if (st != HESS_OK || (st = hess__check(ctx, output, fn)) != HESS_OK)
        return st;
    if (!in || !out) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL vector or output buffer", fn);
        return HESS_ERR_ARG;
    }
    if ((st = hess__refresh(ctx, 1, &loss, fn)) != HESS_OK)
        return st;
    if (output->id > loss->id) {
        hess__error(ctx, HESS_ERR_ARG, "%s: the loss does not depend on the output", fn);
        return HESS_ERR_ARG;
    }
    /* what the loss and the output depend on: one walk back from each */
    const hess_mark mk = hess__mark(ctx);
    const int64_t span = loss->id + 1;
    unsigned char *reach = hess__calloc(ctx, (size_t)span, fn);
    if (!reach)
        return ctx->status;
    reach[loss->id] = 1;
    reach[output->id] |= 2;
    for (int64_t id = loss->id; id >= 0; id--) {
        const hess_tensor *t = ctx->nodes[id];
        if (!reach[id] || hess__is_leaf(t) || (t->def->flags & HESS_OPF_CONSTANT))
            continue;
        for (int k = 0; k < t->def->arity; k++)
            reach[t->src[k]->id] |= reach[id];
    }
    st = HESS_OK;
    if (!(reach[output->id] & 1)) {
        hess__error(ctx, HESS_ERR_ARG, "%s: the loss does not depend on the output", fn);
        st = HESS_ERR_ARG;
    }
    for (size_t i = 0; i < n && st == HESS_OK; i++)
        if (params[i]->id >= span || !(reach[params[i]->id] & 2)) {
            char s[96];
            hess__error(ctx, HESS_ERR_NODIFF, "%s: the output does not depend on params[%zu] %s",
                        fn, i, hess__shape_str(s, params[i]->ndim, params[i]->shape));
            st = HESS_ERR_NODIFF;
        }
    hess__rewind(ctx, &mk);
    return st;
}

/* The operator kept open: direction leaves V [k, params...] and results
 * GV [k, params...], with a replay plan over V. */
typedef struct ggn_op {
    size_t n;
    int64_t k;
    hess_tensor **v, **gv;
    hess__replay plan;
} ggn_op;

static hess_status ggn_build(hess_context *ctx,
                             hess_tensor *loss,
                             hess_tensor *output,
                             size_t n,
                             hess_tensor *const params[],
                             int64_t k,
                             bool replay,
                             ggn_op *G,
                             const char *fn)
{
    memset(G, 0, sizeof *G);
    G->n = n;
    G->k = k;
    const int64_t first = ctx->n_nodes;
    const double one_v = 1.0;
    hess_tensor *one = hess__const_new(ctx, loss->ndim, loss->shape, &one_v, fn);
    G->v = hess__leaves_like(ctx, n, params, k, NULL, fn);
    G->gv = hess__alloc(ctx, n * sizeof *G->gv, fn);
    if (!one || !G->v || !G->gv)
        return ctx->status;
    for (size_t i = 0; i < n; i++) {
        memset(G->v[i]->data, 0, (size_t)G->v[i]->numel * sizeof(double));
        G->v[i]->par.leaf.nz_chunks = 0;
    }
    hess_tensor *gz = NULL, *jv = NULL, *hjv = NULL;
    ctx->lazy++;
    /* dL/dz, recorded; J V; H_L J V as the vjp of dL/dz with seed J V; then
     * J^T of that */
    hess_status st = hess__backward(ctx, 1, &loss, &one, 1, &output, &gz,
                                    HESS_CREATE_GRAPH | HESS__FRESH, 0, fn, "output");
    if (st == HESS_OK)
        st = hess__forward(ctx, 1, &output, n, params, G->v, &jv, HESS__FRESH, k, fn, "params");
    if (st == HESS_OK)
        st = hess__backward(ctx, 1, &gz, &jv, 1, &output, &hjv, HESS__FRESH | HESS_ALLOW_UNUSED, k,
                            fn, "output");
    if (st == HESS_OK)
        st = hess__backward(ctx, 1, &output, &hjv, n, params, G->gv,
                            HESS__FRESH | HESS_ALLOW_UNUSED, k, fn, "params");
    ctx->lazy--;
    if (st == HESS_OK)
        st = hess__eval(ctx, first, n, G->gv, fn);
    if (st == HESS_OK && replay)
        st = hess__replay_plan(ctx, n, G->v, &G->plan);
    return st;
}

/* Writes directions into V (rows r0.. of X, or unit vectors e_r0.. when X is
 * NULL; kk of them, the rest zero) and replays. */
static hess_status ggn_run(
    hess_context *ctx, ggn_op *G, const double *X, size_t N, size_t r0, size_t kk, const char *fn)
{
    size_t off = 0;
    for (size_t i = 0; i < G->n; i++) {
        hess_tensor *v = G->v[i];
        const size_t len = (size_t)v->numel / (size_t)G->k;
        memset(v->data, 0, (size_t)v->numel * sizeof(double));
        for (size_t q = 0; q < kk; q++) {
            const size_t r = r0 + q;
            if (X)
                memcpy(v->data + q * len, X + r * N + off, len * sizeof(double));
            else if (r >= off && r < off + len)
                v->data[q * len + (r - off)] = 1.0;
        }
        hess__leaf_scan(v);
        hess__touch(ctx, v, false);
        off += len;
    }
    return hess__replay_run(ctx, &G->plan, fn);
}

hess_status hess_ggn_vp(hess_context *ctx,
                        hess_tensor *loss,
                        hess_tensor *output,
                        size_t n,
                        hess_tensor *const params[],
                        const double *v,
                        double *gv)
{
    static const char fn[] = "hess_ggn_vp";
    hess_status st = check_ggn(ctx, loss, output, n, params, v, gv, fn);
    if (st != HESS_OK)
        return st;
    const hess_mark mk = hess__mark(ctx);
    ctx->api = fn;
    ggn_op G;
    st = ggn_build(ctx, loss, output, n, params, 1, true, &G, fn);
    if (st == HESS_OK)
        st = ggn_run(ctx, &G, v, hess_param_count(n, params), 0, 1, fn);
    for (size_t i = 0; i < n && st == HESS_OK; i++) {
        memcpy(gv, G.gv[i]->data, (size_t)G.gv[i]->numel * sizeof *gv);
        gv += G.gv[i]->numel;
    }
    ctx->api = NULL;
    hess__rewind(ctx, &mk);
    return st;
}

/* The diagonal by products with unit vectors, GGN_BLOCK at a time. */
static hess_status ggn_diag_rows(hess_context *ctx,
                                 hess_tensor *loss,
                                 hess_tensor *output,
                                 size_t n,
                                 hess_tensor *const params[],
                                 double *diag,
                                 const char *fn)
{
    const size_t N = hess_param_count(n, params);
    const int64_t k = (int64_t)(N < GGN_BLOCK ? N : GGN_BLOCK);
    ggn_op G;
    hess_status st = ggn_build(ctx, loss, output, n, params, k, true, &G, fn);
    for (size_t r0 = 0; r0 < N && st == HESS_OK; r0 += (size_t)k) {
        const size_t kk = N - r0 < (size_t)k ? N - r0 : (size_t)k;
        if ((st = ggn_run(ctx, &G, NULL, N, r0, kk, fn)) != HESS_OK)
            break;
        for (size_t q = 0; q < kk; q++) { /* element r0 + q of row q */
            size_t c = r0 + q;
            for (size_t i = 0; i < n; i++) {
                const size_t len = (size_t)params[i]->numel;
                if (c < len) {
                    diag[r0 + q] = G.gv[i]->data[q * len + c];
                    break;
                }
                c -= len;
            }
        }
    }
    return st;
}

hess_status hess_ggn_diag(hess_context *ctx,
                          hess_tensor *loss,
                          hess_tensor *output,
                          size_t n,
                          hess_tensor *const params[],
                          double *diag)
{
    static const char fn[] = "hess_ggn_diag";
    hess_status st = check_ggn(ctx, loss, output, n, params, diag, diag, fn);
    if (st != HESS_OK)
        return st;
    const hess_mark mk = hess__mark(ctx);
    ctx->api = fn;
    char why[HESS_DIAG_WHY];
    st = hess__diag_backprop(ctx, loss, output, n, params, HESS_ALLOW_UNUSED, 0, diag, why, fn);
    hess__rewind(ctx, &mk);
    if (st == HESS_OK && why[0])
        st = ggn_diag_rows(ctx, loss, output, n, params, diag, fn);
    ctx->api = NULL;
    hess__rewind(ctx, &mk);
    return st;
}
