/*
 * hessian.c -- Hessian-vector products, rows, blocks, the diagonal and the full
 * Hessian, all by double backward.  The gradient graph g = dL/dθ is built once
 * (HESS_CREATE_GRAPH), then h(v) = d<g, v>/dθ is built once with v a leaf, and
 * each row H e_r is had by writing e_r into v and re-running only the nodes
 * that depend on v ("define once, compute many times").
 */
#include "hess_internal.h"

#include <string.h>

/* The double-backward graph for rows over params pi[] and columns over pj[]. */
typedef struct hvp_graph {
    size_t ni, nj;
    hess_tensor **v;  /* direction leaves, shaped like pi[] */
    hess_tensor **hv; /* results, shaped like pj[] */
    hess__replay plan;
    size_t rows, cols;
} hvp_graph;

size_t hess_param_count(size_t n, hess_tensor *const params[])
{
    if (!params)
        return 0;
    size_t N = 0;
    for (size_t i = 0; i < n; i++) {
        if (!params[i])
            return 0;
        N += (size_t)params[i]->numel;
    }
    return N;
}

static hess_status check_params(hess_context *ctx, size_t n, hess_tensor *const p[], const char *fn)
{
    if (!p || n == 0) {
        hess__error(ctx, HESS_ERR_ARG, "%s: no parameters given", fn);
        return HESS_ERR_ARG;
    }
    for (size_t i = 0; i < n; i++) {
        if (!p[i]) {
            hess__error(ctx, HESS_ERR_ARG, "%s: params[%zu] is NULL", fn, i);
            return HESS_ERR_ARG;
        }
        hess_status st = hess__check(ctx, p[i], fn);
        if (st != HESS_OK)
            return st;
        if (!(p[i]->flags & HESS_T_PARAM)) {
            hess__error(ctx, HESS_ERR_ARG, "%s: params[%zu] is not a parameter", fn, i);
            return HESS_ERR_ARG;
        }
    }
    return HESS_OK;
}

/* Checks the common arguments; HESS_OK or the status (recorded). */
static hess_status check_call(hess_context *ctx,
                              hess_tensor *loss,
                              size_t n,
                              hess_tensor *const params[],
                              const void *out,
                              const char *fn)
{
    if (!ctx)
        return HESS_ERR_ARG;
    if (ctx->status != HESS_OK)
        return ctx->status;
    hess_status st = hess__check(ctx, loss, fn);
    if (st != HESS_OK)
        return st;
    if (loss->numel != 1) {
        char s[96];
        hess__error(ctx, HESS_ERR_ARG, "%s: the loss must be a scalar, got %s", fn,
                    hess__shape_str(s, loss->ndim, loss->shape));
        return HESS_ERR_ARG;
    }
    if ((st = check_params(ctx, n, params, fn)) != HESS_OK)
        return st;
    if (!out) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL output buffer", fn);
        return HESS_ERR_ARG;
    }
    return HESS_OK;
}

/* Builds g = dL/dpi (recorded), v, s = sum_i <g_i, v_i>, hv = ds/dpj (detached).
 * v starts as v0 (rows-long, may be NULL for zeros); the replay plan is made
 * only when rows will be evaluated (plan != 0). */
static hess_status hvp_build(hess_context *ctx,
                             hess_tensor *loss,
                             size_t ni,
                             hess_tensor *const pi[],
                             size_t nj,
                             hess_tensor *const pj[],
                             const double *v0,
                             bool plan,
                             hvp_graph *G,
                             const char *fn)
{
    memset(G, 0, sizeof *G);
    G->ni = ni;
    G->nj = nj;
    G->rows = hess_param_count(ni, pi);
    G->cols = hess_param_count(nj, pj);
    hess_tensor **g = hess__alloc(ctx, ni * sizeof *g, fn);
    G->v = hess__alloc(ctx, ni * sizeof *G->v, fn);
    G->hv = hess__alloc(ctx, nj * sizeof *G->hv, fn);
    if (!g || !G->v || !G->hv)
        return ctx->status;
    hess_tensor *one = hess_scalar(ctx, 1.0);
    if (!one)
        return ctx->status;
    /* The first gradient is taken over pi and pj together, so that a pj the
     * loss does not depend on is reported; only g over pi is used. */
    hess_tensor *const *wrt = pi;
    hess_tensor **both = NULL;
    if (pj != pi) {
        both = hess__alloc(ctx, (ni + nj) * sizeof *both, fn);
        g = hess__alloc(ctx, (ni + nj) * sizeof *g, fn);
        if (!both || !g)
            return ctx->status;
        memcpy(both, pi, ni * sizeof *both);
        memcpy(both + ni, pj, nj * sizeof *both);
        wrt = both;
    }
    hess_status st = hess__backward(ctx, 1, &loss, &one, pj != pi ? ni + nj : ni, wrt, g,
                                    HESS_CREATE_GRAPH, fn, "params");
    if (st != HESS_OK)
        return st;
    hess_tensor *s = NULL;
    size_t off = 0;
    for (size_t i = 0; i < ni; i++) {
        G->v[i] = hess_tensor_new(ctx, pi[i]->ndim, pi[i]->shape, v0 ? v0 + off : NULL);
        hess_tensor *d = hess_sum(ctx, hess_mul(ctx, g[i], G->v[i]));
        s = s ? hess_add(ctx, s, d) : d;
        off += (size_t)pi[i]->numel;
    }
    if (ctx->status != HESS_OK)
        return ctx->status;
    hess_tensor *seed = hess_scalar(ctx, 1.0);
    if (!seed)
        return ctx->status;
    st = hess__backward(ctx, 1, &s, &seed, nj, pj, G->hv, HESS_ALLOW_UNUSED, fn, "params");
    if (st != HESS_OK || !plan)
        return st;
    return hess__replay_plan(ctx, ni, G->v, &G->plan);
}

/* Copies the result tensors, flattened, into out (cols doubles). */
static void hv_copy(const hvp_graph *G, double *out)
{
    for (size_t j = 0; j < G->nj; j++) {
        memcpy(out, G->hv[j]->data, (size_t)G->hv[j]->numel * sizeof(double));
        out += G->hv[j]->numel;
    }
}

/* Points *v at the direction element r (flattened over the row parameters). */
static double *dir_elem(const hvp_graph *G, size_t r)
{
    for (size_t i = 0; i < G->ni; i++) {
        if (r < (size_t)G->v[i]->numel)
            return G->v[i]->data + r;
        r -= (size_t)G->v[i]->numel;
    }
    return NULL;
}

/* Evaluates row r of the (block) Hessian: v = e_r, replay, read hv. If diag is
 * non-NULL only element r of the row is kept (the diagonal case). */
static hess_status
eval_rows(hess_context *ctx, const hvp_graph *G, double *rows, double *diag, double *scratch)
{
    for (size_t r = 0; r < G->rows; r++) {
        double *e = dir_elem(G, r);
        *e = 1.0;
        hess_status st = hess__replay_run(ctx, &G->plan);
        *e = 0.0;
        if (st != HESS_OK)
            return st;
        if (diag) {
            hv_copy(G, scratch);
            diag[r] = scratch[r];
        } else {
            hv_copy(G, rows + r * G->cols);
        }
    }
    return HESS_OK;
}

hess_status hess_hvp(hess_context *ctx,
                     hess_tensor *loss,
                     size_t n,
                     hess_tensor *const params[],
                     const double *v,
                     double *hv)
{
    static const char fn[] = "hess_hvp";
    hess_status st = check_call(ctx, loss, n, params, hv, fn);
    if (st != HESS_OK)
        return st;
    if (!v) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL direction v", fn);
        return HESS_ERR_ARG;
    }
    hess_mark m = hess_context_mark(ctx);
    hvp_graph G;
    st = hvp_build(ctx, loss, n, params, n, params, v, false, &G, fn);
    if (st == HESS_OK)
        hv_copy(&G, hv);
    hess_context_rewind(ctx, m);
    return st;
}

hess_status
hess_hessian(hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const params[], double *h)
{
    static const char fn[] = "hess_hessian";
    hess_status st = check_call(ctx, loss, n, params, h, fn);
    if (st != HESS_OK)
        return st;
    hess_mark m = hess_context_mark(ctx);
    hvp_graph G;
    st = hvp_build(ctx, loss, n, params, n, params, NULL, true, &G, fn);
    if (st == HESS_OK)
        st = eval_rows(ctx, &G, h, NULL, NULL);
    hess_context_rewind(ctx, m);
    return st;
}

hess_status hess_hessian_diag(
    hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const params[], double *diag)
{
    static const char fn[] = "hess_hessian_diag";
    hess_status st = check_call(ctx, loss, n, params, diag, fn);
    if (st != HESS_OK)
        return st;
    hess_mark m = hess_context_mark(ctx);
    hvp_graph G;
    st = hvp_build(ctx, loss, n, params, n, params, NULL, true, &G, fn);
    double *scratch = st == HESS_OK ? hess__alloc(ctx, G.cols * sizeof(double), fn) : NULL;
    if (st == HESS_OK && !scratch)
        st = ctx->status;
    if (st == HESS_OK)
        st = eval_rows(ctx, &G, NULL, diag, scratch);
    hess_context_rewind(ctx, m);
    return st;
}

hess_status hess_hessian_diag_tensors(
    hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const params[], hess_tensor *out[])
{
    static const char fn[] = "hess_hessian_diag_tensors";
    hess_status st = check_call(ctx, loss, n, params, out, fn);
    if (st != HESS_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    /* The results are made first, before the mark, so that the rewind keeps
     * them and frees the scratch diagonal. */
    for (size_t i = 0; i < n; i++)
        if (!(out[i] = hess_tensor_new(ctx, params[i]->ndim, params[i]->shape, NULL)))
            break;
    hess_mark m = hess_context_mark(ctx);
    double *diag = ctx->status == HESS_OK
                       ? hess__alloc(ctx, hess_param_count(n, params) * sizeof(double), fn)
                       : NULL;
    st = diag ? hess_hessian_diag(ctx, loss, n, params, diag) : ctx->status;
    for (size_t i = 0, off = 0; i < n && st == HESS_OK; off += (size_t)out[i]->numel, i++)
        memcpy(out[i]->data, diag + off, (size_t)out[i]->numel * sizeof(double));
    hess_context_rewind(ctx, m);
    if (st != HESS_OK)
        for (size_t i = 0; i < n; i++)
            out[i] = NULL;
    return st;
}

hess_status hess_hessian_block(
    hess_context *ctx, hess_tensor *loss, hess_tensor *pi, hess_tensor *pj, double *out)
{
    static const char fn[] = "hess_hessian_block";
    hess_status st = check_call(ctx, loss, 1, &pi, out, fn);
    if (st != HESS_OK || (st = check_params(ctx, 1, &pj, fn)) != HESS_OK)
        return st;
    hess_mark m = hess_context_mark(ctx);
    hvp_graph G;
    st = hvp_build(ctx, loss, 1, &pi, 1, &pj, NULL, true, &G, fn);
    if (st == HESS_OK)
        st = eval_rows(ctx, &G, out, NULL, NULL);
    hess_context_rewind(ctx, m);
    return st;
}
