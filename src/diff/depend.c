/*
 * depend.c -- what both modes ask first: which nodes of a window of the tape
 * depend on the tensors being differentiated, and through what.
 */
#include "diff.h"

#include <string.h>

/* A seed is shaped like its output, behind [k] in a batched pass. */
bool hess__fits(int64_t k, const hess_tensor *out, const hess_tensor *seed)
{
    if (!k)
        return hess__same_shape(out, seed);
    if (seed->ndim != out->ndim + 1 || seed->shape[0] != k)
        return false;
    for (int i = 0; i < out->ndim; i++)
        if (seed->shape[i + 1] != out->shape[i])
            return false;
    return true;
}

/* Marks, in tape order over [lo, top], the nodes that depend on a node marked
 * HESS__REQ | HESS__ANY: HESS__REQ through recorded nodes, HESS__ANY through any node but the
 * results of hess_detach (a constant by request), HESS__CUT through a node made by a backward pass
 * without HESS_CREATE_GRAPH (a constant by omission). */
void hess__depend_sweep(const hess_context *ctx, int64_t lo, int64_t top, unsigned char *mask)
{
    for (int64_t id = lo; id <= top; id++) {
        const hess_tensor *t = ctx->nodes[id];
        if (mask[id - lo] || hess__is_leaf(t) || (t->def->flags & HESS_OPF_CONSTANT))
            continue;
        unsigned m = 0;
        for (int k = 0; k < HESS_MAX_SRC; k++)
            if (t->src[k] && t->src[k]->id >= lo)
                m |= mask[t->src[k]->id - lo];
        if (t->flags & HESS_T_DETACHED)
            m = m & HESS__ANY ? HESS__ANY | HESS__CUT : 0;
        mask[id - lo] = (unsigned char)m;
    }
}

/* The output depends on some wrt only through a gradient taken without
 * HESS_CREATE_GRAPH: its derivative would miss those paths.  Names the first
 * wrt tensor that does. */
hess_status hess__cut_error(hess_context *ctx,
                            const hess_tensor *out,
                            size_t n,
                            hess_tensor *const wrt[],
                            int64_t lo,
                            int64_t top,
                            unsigned char *mask,
                            const char *fn,
                            const char *what)
{
    size_t which = 0;
    for (size_t i = 0; i < n; i++) {
        memset(mask, 0, (size_t)(top - lo + 1));
        if (wrt[i]->id > top)
            continue;
        mask[wrt[i]->id - lo] = HESS__REQ | HESS__ANY;
        hess__depend_sweep(ctx, lo, top, mask);
        if (mask[out->id - lo] & HESS__CUT) {
            which = i;
            break;
        }
    }
    hess__error(ctx, HESS_ERR_NODIFF,
                "%s: the output depends on %s[%zu] through a gradient taken without "
                "HESS_CREATE_GRAPH, which is a constant to differentiation: pass "
                "HESS_CREATE_GRAPH to the hess_grad or hess_vjp that made it (or hess_detach "
                "it to treat it as a constant)",
                fn, what, which);
    return HESS_ERR_NODIFF;
}

hess_status hess__window_open(hess_context *ctx,
                              size_t n_out,
                              hess_tensor *const outputs[],
                              size_t n,
                              hess_tensor *const wrt[],
                              const char *fn,
                              const char *what,
                              hess__window *w)
{
    w->lo = INT64_MAX, w->top = -1;
    for (size_t i = 0; i < n; i++)
        w->lo = wrt[i]->id < w->lo ? wrt[i]->id : w->lo;
    for (size_t j = 0; j < n_out; j++)
        w->top = outputs[j]->id > w->top ? outputs[j]->id : w->top;
    w->span = w->top >= w->lo ? w->top - w->lo + 1 : 0;
    w->mask = hess__calloc(ctx, (size_t)w->span + 1, fn);
    w->slot = hess__calloc(ctx, ((size_t)w->span + 1) * sizeof *w->slot, fn);
    if (!w->mask || !w->slot)
        return ctx->status;
    for (size_t i = 0; i < n; i++)
        if (wrt[i]->id <= w->top)
            w->mask[wrt[i]->id - w->lo] = HESS__REQ | HESS__ANY;
    hess__depend_sweep(ctx, w->lo, w->top, w->mask);
    for (size_t j = 0; j < n_out && w->span; j++)
        if (outputs[j]->id >= w->lo && (w->mask[outputs[j]->id - w->lo] & HESS__CUT))
            return hess__cut_error(ctx, outputs[j], n, wrt, w->lo, w->top, w->mask, fn, what);
    return HESS_OK;
}
