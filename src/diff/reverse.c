/*
 * reverse.c -- reverse mode.  The tape's creation order is a topological
 * order, so a backward pass walks it in reverse from the outputs, without
 * recursion, visiting only nodes that lie on a path from a wrt tensor to an
 * output.  Cotangents live in a per-pass table indexed by tape position (never
 * in the tensors) and are built from ops, so they can be differentiated again.
 */
#include "diff.h"

#include <string.h>

/* Validates the arguments common to hess_grad and hess_vjp. */
static hess_status check_args(hess_context *ctx,
                              size_t n_out,
                              hess_tensor *const outputs[],
                              hess_tensor *const seeds[],
                              size_t n,
                              hess_tensor *const wrt[],
                              hess_tensor *grads[],
                              int64_t k,
                              const char *fn,
                              const char *what)
{
    if (ctx->status != HESS_OK)
        return ctx->status; /* an earlier error is pending: do nothing */
    if (!outputs || !seeds || n_out == 0 || !wrt || !grads || n == 0) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL array or empty list", fn);
        return HESS_ERR_ARG;
    }
    for (size_t i = 0; i < n; i++)
        grads[i] = NULL;
    hess_status st;
    for (size_t j = 0; j < n_out; j++) {
        if ((st = hess__check(ctx, outputs[j], fn)) || (st = hess__check(ctx, seeds[j], fn)))
            return st;
        if (!hess__fits(k, outputs[j], seeds[j])) {
            char a[96], b[96];
            hess__error(ctx, HESS_ERR_SHAPE, "%s: seed %s does not match output %s", fn,
                        hess__shape_str(a, seeds[j]->ndim, seeds[j]->shape),
                        hess__shape_str(b, outputs[j]->ndim, outputs[j]->shape));
            return HESS_ERR_SHAPE;
        }
    }
    return hess__check_list(ctx, n, wrt, what, fn);
}

/* Adds c into the cotangent slot *slot ("add or set"). */
static void accumulate(hess_context *ctx, hess_tensor **slot, hess_tensor *c)
{
    *slot = *slot ? hess_add(ctx, *slot, c) : c;
}

/* The reverse sweep over [lo, top]: each node's rule, given the pass it runs
 * in, adds its sources' cotangents into cot[]. */
void hess__reverse_sweep(hess_context *ctx,
                         hess_pass *pass,
                         int64_t lo,
                         int64_t top,
                         const unsigned char *mask,
                         hess_tensor **cot,
                         const char *fn)
{
    for (int64_t id = top; id >= lo && ctx->status == HESS_OK; id--) {
        hess_tensor *t = ctx->nodes[id], *g = cot[id - lo];
        if (!g || hess__is_leaf(t) || !(mask[id - lo] & HESS__REQ))
            continue;
        const hess_op_def *def = t->def;
        if (!def->vjp) {
            hess__error(ctx, HESS_ERR_NODIFF, "%s: op %s has no derivative", fn, def->name);
            return;
        }
        hess_tensor *gin[HESS_MAX_SRC] = {NULL};
        pass->need = 0;
        for (int k = 0; k < def->arity; k++)
            if (t->src[k]->id >= lo && (mask[t->src[k]->id - lo] & HESS__REQ))
                pass->need |= 1u << k;
        def->vjp(ctx, pass, t, g, gin);
        for (int k = 0; k < def->arity && ctx->status == HESS_OK; k++) {
            hess_tensor *s = t->src[k];
            if (gin[k] && s->id >= lo && (mask[s->id - lo] & HESS__REQ))
                accumulate(ctx, &cot[s->id - lo], gin[k]);
        }
    }
}

static hess_status backward_impl(hess_context *ctx,
                                 size_t n_out,
                                 hess_tensor *const outputs[],
                                 hess_tensor *const seeds[],
                                 size_t n,
                                 hess_tensor *const wrt[],
                                 hess_tensor *grads[],
                                 unsigned flags,
                                 int64_t k,
                                 const char *fn,
                                 const char *what)
{
    hess_status st = check_args(ctx, n_out, outputs, seeds, n, wrt, grads, k, fn, what);
    if (st != HESS_OK)
        return st;
    /* the rules read the values of what the outputs are made of */
    if (!(flags & HESS__FRESH) && ((st = hess__refresh(ctx, n_out, outputs, fn)) != HESS_OK ||
                                   (st = hess__refresh(ctx, n_out, seeds, fn)) != HESS_OK))
        return st;

    /* The window of the tape that matters, and which of its nodes depend on a
     * wrt tensor (detached nodes do not). */
    hess__window w;
    if ((st = hess__window_open(ctx, n_out, outputs, n, wrt, fn, what, &w)) != HESS_OK)
        return st;
    const int64_t lo = w.lo, top = w.top, span = w.span;
    const unsigned char *mask = w.mask;
    hess_tensor **cot = w.slot; /* the cotangent of each node of the window */

    hess_pass pass = {0, (flags & HESS_CREATE_GRAPH) != 0, k, fn};
    const int64_t first_new = ctx->n_nodes;
    for (size_t j = 0; j < n_out && span; j++)
        if (mask[outputs[j]->id - lo])
            accumulate(ctx, &cot[outputs[j]->id - lo], seeds[j]);
    if (span)
        hess__reverse_sweep(ctx, &pass, lo, top, mask, cot, fn);

    for (size_t i = 0; i < n && ctx->status == HESS_OK; i++) {
        hess_tensor *g = wrt[i]->id <= top ? cot[wrt[i]->id - lo] : NULL;
        if (!g && (flags & HESS_ALLOW_UNUSED))
            g = hess__zeros_like(ctx, &pass, wrt[i]);
        if (!g) {
            char s[96];
            hess__error(ctx, HESS_ERR_NODIFF, "%s: the output does not depend on %s[%zu] %s", fn,
                        what, i, hess__shape_str(s, wrt[i]->ndim, wrt[i]->shape));
            break;
        }
        grads[i] = g;
    }
    /* Without HESS_CREATE_GRAPH the pass's nodes are constants to later passes
     * (nothing during the pass looks at the flag: its nodes lie past top). */
    if (!pass.record)
        for (int64_t id = first_new; id < ctx->n_nodes; id++)
            ctx->nodes[id]->flags |= HESS_T_DETACHED;
    if (ctx->status != HESS_OK)
        for (size_t i = 0; i < n; i++)
            grads[i] = NULL;
    return ctx->status;
}
hess_status hess__backward(hess_context *ctx,
                           size_t n_out,
                           hess_tensor *const outputs[],
                           hess_tensor *const seeds[],
                           size_t n,
                           hess_tensor *const wrt[],
                           hess_tensor *grads[],
                           unsigned flags,
                           int64_t k,
                           const char *fn,
                           const char *what)
{
    /* errors raised by the ops of the rules name fn */
    const char *saved = hess__api_enter(ctx, fn);
    hess_status st = backward_impl(ctx, n_out, outputs, seeds, n, wrt, grads, flags, k, fn, what);
    hess__api_leave(ctx, saved, NULL);
    return st;
}
/* What hess_grad and hess_vjp check first: grads[] is NULL on every failure,
 * a pending error is returned as it is, and the flags must be known ones. */
static hess_status
entry_checks(hess_context *ctx, size_t n, hess_tensor *grads[], unsigned flags, const char *fn)
{
    if (grads)
        for (size_t i = 0; i < n; i++)
            grads[i] = NULL;
    hess_status st = hess__enter(ctx, fn);
    if (st != HESS_OK)
        return st;
    if (flags & ~(HESS_CREATE_GRAPH | HESS_ALLOW_UNUSED)) {
        hess__error(ctx, HESS_ERR_ARG, "%s: unknown flags 0x%x", fn, flags);
        return HESS_ERR_ARG;
    }
    return HESS_OK;
}

hess_status hess_grad(hess_context *ctx,
                      hess_tensor *y,
                      size_t n,
                      hess_tensor *const wrt[],
                      hess_tensor *grads[],
                      unsigned flags)
{
    static const char fn[] = "hess_grad";
    hess_status st = entry_checks(ctx, n, grads, flags, fn);
    if (st != HESS_OK || (st = hess__check(ctx, y, fn)) != HESS_OK)
        return st;
    if (y->numel != 1) {
        char s[96];
        hess__error(ctx, HESS_ERR_ARG, "%s: y must be a scalar, got %s", fn,
                    hess__shape_str(s, y->ndim, y->shape));
        return HESS_ERR_ARG;
    }
    const double one = 1.0;
    hess_tensor *seed = hess__const_new(ctx, y->ndim, y->shape, &one, fn);
    if (!seed)
        return ctx->status;
    return hess__backward(ctx, 1, &y, &seed, n, wrt, grads, flags, 0, fn, "wrt");
}

hess_status hess_vjp(hess_context *ctx,
                     size_t n_out,
                     hess_tensor *const outputs[],
                     hess_tensor *const seeds[],
                     size_t n,
                     hess_tensor *const wrt[],
                     hess_tensor *grads[],
                     unsigned flags)
{
    hess_status st = entry_checks(ctx, n, grads, flags, "hess_vjp");
    if (st != HESS_OK)
        return st;
    return hess__backward(ctx, n_out, outputs, seeds, n, wrt, grads, flags, 0, "hess_vjp", "wrt");
}
