/*
 * user_op.c -- ops a program defines at run time (hess_op_register,
 * hess_op_apply).  A registered op is an op record (core.h's hess_op_def) like
 * the built-in ones, made when the op is registered, whose slots are adapters
 * that call the program's callbacks; each node of the op finds its
 * registration in par.user.  The registration lives outside the arena, kept
 * by the context until it is destroyed (hess__keep), so rewinds never leave a
 * handle dangling.
 *
 * The callbacks see one direction only.  A pass that carries k directions at
 * once (the Hessian sweeps, hess_jacobian, the exact diagonal's columns) gives
 * a rule cotangents [k, ...out]; the program's rule is written for [...out].
 * A vjp is linear in its cotangent, so the rule applied to each direction is
 * the derivative of the rule's own graph along it: the adapter builds the rule
 * once on a placeholder g0 shaped like out, then one batched forward-mode pass
 * (hess__forward) from g0 to the cotangents, with g as g0's tangent, gives all
 * k directions' cotangents from ops, differentiable again.  The jvp callback
 * is batched the same way.  That pass is why this file sits in diff/ and not
 * with the built-in ops: its rules run a pass of their own.
 */
#include "diff.h"

#include <stdio.h>
#include <string.h>

/* A registration: the record nodes point at, the program's description and
 * its name, copied. */
struct hess_op_handle {
    hess_op_def def;
    hess_op op;                  /* op.name points at name[] */
    struct hess_op_handle *next; /* the context's list, newest first */
    char name[HESS_OP_NAME_MAX + 1];
};

static const hess_op_handle *handle_of(const hess_tensor *t)
{
    return t->par.user;
}

/* ------------------------------------------------------------------------ */
/* Calling back                                                             */
/* ------------------------------------------------------------------------ */

/* The callbacks, for messages: "the vjp callback of user op". */
typedef enum cb_kind { CB_SHAPE, CB_FORWARD, CB_VJP, CB_JVP } cb_kind;
static const char *const cb_what[] = {"the shape callback of user op",
                                      "the forward callback of user op",
                                      "the vjp callback of user op", "the jvp callback of user op"};
static const char *const cb_name[] = {"shape", "forward", "vjp", "jvp"};

/* The context's busy state around a callback: what it may do while the
 * program's code runs (hess__enter, node_new) and what messages say. */
typedef struct guard {
    const char *busy, *what;
    bool ops;
} guard;

static guard enter_cb(hess_context *ctx, const hess_op_handle *h, cb_kind cb)
{
    const guard g = {ctx->busy, ctx->busy_what, ctx->busy_ops};
    ctx->busy = h->name;
    ctx->busy_what = cb_what[cb];
    ctx->busy_ops = cb == CB_VJP || cb == CB_JVP; /* they build their results from ops */
    return g;
}

static void leave_cb(hess_context *ctx, guard g)
{
    ctx->busy = g.busy;
    ctx->busy_what = g.what;
    ctx->busy_ops = g.ops;
}

/* Whether st is one of the error statuses (a callback may return anything). */
static bool is_error(hess_status st)
{
    switch (st) {
#define HESS_X_(name, value, text) case name:
        HESS_STATUS_LIST(HESS_X_)
#undef HESS_X_
        return st != HESS_OK;
    }
    return false;
}

/* After a callback of kind cb that returned st, with the context's status
 * `before` it ran: true when it succeeded.  Otherwise the error is recorded:
 * when an op the callback called recorded one, that error, with the callback
 * named after it; else the status it returned (`fallback` for a value that is
 * no status) with a message naming fn and the op. */
static bool callback_ok(hess_context *ctx,
                        const hess_op_handle *h,
                        cb_kind cb,
                        hess_status st,
                        hess_status before,
                        hess_status fallback,
                        const char *fn)
{
    if (before == HESS_OK && ctx->status != HESS_OK) {
        const size_t len = strlen(ctx->errmsg);
        if (len + 1 < sizeof ctx->errmsg)
            snprintf(ctx->errmsg + len, sizeof ctx->errmsg - len, " (in %s %s)", cb_what[cb],
                     h->name);
        return false;
    }
    if (st == HESS_OK)
        return true;
    hess__error(ctx, is_error(st) ? st : fallback,
                "%s: user op %s: the %s callback failed (returned %d: %s)", fn, h->name,
                cb_name[cb], (int)st, is_error(st) ? hess_status_str(st) : "not a status");
    return false;
}

/* Whether t is a live tensor of ctx, without recording anything. */
static bool live(const hess_context *ctx, const hess_tensor *t)
{
    return t->ctx == ctx && t->magic == HESS_TENSOR_MAGIC && t->id >= 0 && t->id < ctx->n_nodes &&
           ctx->nodes[t->id] == t;
}

/* A result r (a cotangent of source i, or the tangent when i < 0) that the
 * callback gave: a live tensor of ctx shaped like `like`; else the error,
 * recorded. */
static bool check_result(hess_context *ctx,
                         const hess_op_handle *h,
                         const hess_tensor *r,
                         const hess_tensor *like,
                         int i,
                         const char *fn)
{
    const char *what =
        i < 0 ? "the jvp callback gave a tangent" : "the vjp callback gave a cotangent";
    if (!live(ctx, r)) {
        hess__error(ctx, HESS_ERR_ARG,
                    "%s: user op %s: %s that is not a live tensor of this context (another "
                    "context's, or freed)",
                    fn, h->name, what);
        return false;
    }
    if (hess__same_shape(r, like))
        return true;
    char a[96], b[96], which[32] = "the result";
    if (i >= 0)
        snprintf(which, sizeof which, "source %d", i);
    hess__error(ctx, HESS_ERR_SHAPE, "%s: user op %s: %s %s for %s, which is %s", fn, h->name, what,
                hess__shape_str(a, r->ndim, r->shape), which,
                hess__shape_str(b, like->ndim, like->shape));
    return false;
}

/* The arrays the shape and forward callbacks see. */
static void arrays_of(const hess_tensor *out, int n, bool data, hess_op_array a[HESS_MAX_SRC])
{
    for (int i = 0; i < n; i++) {
        const hess_tensor *s = out->src[i];
        a[i] = (hess_op_array){s->ndim, s->shape, s->numel, data ? s->data : NULL};
    }
}

/* ------------------------------------------------------------------------ */
/* The record's slots                                                       */
/* ------------------------------------------------------------------------ */

/* Whether a source of shape s broadcasts to the result's shape (NumPy). */
static bool broadcasts_to(const hess_tensor *s, int nd, const int64_t *shape)
{
    if (s->ndim > nd)
        return false;
    for (int d = 0; d < s->ndim; d++) {
        const int64_t a = s->shape[s->ndim - 1 - d], b = shape[nd - 1 - d];
        if (a != b && a != 1)
            return false;
    }
    return true;
}

static bool user_shape(hess_context *ctx,
                       hess_tensor *const src[],
                       const hess_op_params *par,
                       int *ndim,
                       int64_t *shape,
                       const char *fn)
{
    const hess_op_handle *h = par->user;
    const int n = h->def.arity;
    char s[2][96];
    if (!h->op.shape) { /* elementwise: the sources' common shape */
        for (int i = 1; i < n; i++)
            if (!hess__same_shape(src[0], src[i])) {
                hess__error(ctx, HESS_ERR_SHAPE,
                            "%s: user op %s: sources 0 %s and %d %s differ in shape (an "
                            "elementwise op without a shape callback takes sources of one shape)",
                            fn, h->name, hess__shape_str(s[0], src[0]->ndim, src[0]->shape), i,
                            hess__shape_str(s[1], src[i]->ndim, src[i]->shape));
                return false;
            }
        *ndim = src[0]->ndim;
        memcpy(shape, src[0]->shape, (size_t)src[0]->ndim * sizeof *shape);
        return true;
    }
    hess_op_array a[HESS_MAX_SRC];
    for (int i = 0; i < n; i++)
        a[i] = (hess_op_array){src[i]->ndim, src[i]->shape, src[i]->numel, NULL};
    int nd = -1;
    int64_t sh[HESS_MAX_DIMS] = {0};
    const hess_status before = ctx->status;
    const guard g = enter_cb(ctx, h, CB_SHAPE);
    const hess_status st = h->op.shape((size_t)n, a, &nd, sh, h->op.user);
    leave_cb(ctx, g);
    if (st != HESS_OK && (before != HESS_OK || ctx->status == HESS_OK)) {
        char all[3 * 96 + 8] = "";
        for (int i = 0; i < n; i++) {
            char one[96];
            hess__shape_str(one, src[i]->ndim, src[i]->shape);
            strcat(all, i ? ", " : "");
            strcat(all, one);
        }
        hess__error(ctx, is_error(st) ? st : HESS_ERR_SHAPE,
                    "%s: user op %s: the shape callback refused sources %s (returned %d: %s)", fn,
                    h->name, all, (int)st, is_error(st) ? hess_status_str(st) : "not a status");
        return false;
    }
    if (!callback_ok(ctx, h, CB_SHAPE, st, before, HESS_ERR_SHAPE, fn))
        return false;
    if (nd < 0 || nd > HESS_MAX_DIMS) {
        hess__error(ctx, HESS_ERR_ARG,
                    "%s: user op %s: the shape callback gave rank %d (not 0..%d)", fn, h->name, nd,
                    HESS_MAX_DIMS);
        return false;
    }
    for (int d = 0; d < nd; d++)
        if (sh[d] < 1) {
            hess__error(
                ctx, HESS_ERR_ARG,
                "%s: user op %s: the shape callback gave dimension %d = %lld (must be >= 1)", fn,
                h->name, d, (long long)sh[d]);
            return false;
        }
    for (int i = 0; i < n && (h->op.flags & HESS_OP_ELEMENTWISE); i++)
        if (!broadcasts_to(src[i], nd, sh)) {
            hess__error(ctx, HESS_ERR_SHAPE,
                        "%s: user op %s: the shape callback of an elementwise op gave %s, to "
                        "which source %d %s does not broadcast",
                        fn, h->name, hess__shape_str(s[0], nd, sh), i,
                        hess__shape_str(s[1], src[i]->ndim, src[i]->shape));
            return false;
        }
    *ndim = nd;
    memcpy(shape, sh, (size_t)nd * sizeof *shape);
    return true;
}

static void user_forward(hess_tensor *out)
{
    const hess_op_handle *h = handle_of(out);
    hess_context *ctx = out->ctx;
    hess_op_array a[HESS_MAX_SRC];
    arrays_of(out, h->def.arity, true, a);
    const hess_op_array o = {out->ndim, out->shape, out->numel, NULL};
    const hess_status before = ctx->status;
    const guard g = enter_cb(ctx, h, CB_FORWARD);
    const hess_status st = h->op.forward((size_t)h->def.arity, a, &o, out->data, h->op.user);
    leave_cb(ctx, g);
    const char *fn = ctx->eval_fn ? ctx->eval_fn : "hess_op_apply";
    if (!callback_ok(ctx, h, CB_FORWARD, st, before, HESS_ERR_ARG, fn))
        out->flags |= HESS_T_FAILED; /* eval_node returns the error */
}

/* A constant leaf of zeros shaped like t: the placeholder a callback builds
 * its rule on. */
static hess_tensor *placeholder(hess_context *ctx, const hess_tensor *t, const char *fn)
{
    hess_tensor *z = hess__leaf(ctx, t->ndim, t->shape, 0u, fn);
    if (z) {
        memset(z->data, 0, (size_t)z->numel * sizeof(double));
        z->par.leaf.nz_chunks = 0;
    }
    return z;
}

/* The program's vjp for the cotangent g of out (shaped like out): cot[i] for
 * the sources in need; false on failure (recorded). */
static bool call_vjp(hess_context *ctx,
                     const hess_op_handle *h,
                     hess_tensor *out,
                     hess_tensor *g,
                     unsigned need,
                     hess_tensor *cot[HESS_MAX_SRC],
                     const char *fn)
{
    const int n = h->def.arity;
    hess_tensor *src[HESS_MAX_SRC] = {NULL}, *res[HESS_MAX_SRC] = {NULL};
    memcpy(src, out->src, (size_t)n * sizeof *src);
    const hess_status before = ctx->status;
    const guard gd = enter_cb(ctx, h, CB_VJP);
    const hess_status st = h->op.vjp(ctx, out, (size_t)n, src, g, res, h->op.user);
    leave_cb(ctx, gd);
    if (!callback_ok(ctx, h, CB_VJP, st, before, HESS_ERR_ARG, fn))
        return false;
    for (int i = 0; i < n; i++) {
        if (res[i] && !check_result(ctx, h, res[i], out->src[i], i, fn))
            return false;
        cot[i] = (need >> i) & 1u ? res[i] : NULL;
    }
    return true;
}

/* The program's jvp for the tangents t[] (each shaped like its source): *r,
 * shaped like out, or NULL for zero; false on failure (recorded). */
static bool call_jvp(hess_context *ctx,
                     const hess_op_handle *h,
                     hess_tensor *out,
                     hess_tensor *const t[HESS_MAX_SRC],
                     hess_tensor **r,
                     const char *fn)
{
    const int n = h->def.arity;
    hess_tensor *src[HESS_MAX_SRC] = {NULL}, *res = NULL;
    memcpy(src, out->src, (size_t)n * sizeof *src);
    const hess_status before = ctx->status;
    const guard gd = enter_cb(ctx, h, CB_JVP);
    const hess_status st = h->op.jvp(ctx, out, (size_t)n, src, t, &res, h->op.user);
    leave_cb(ctx, gd);
    if (!callback_ok(ctx, h, CB_JVP, st, before, HESS_ERR_ARG, fn))
        return false;
    if (res && !check_result(ctx, h, res, out, -1, fn))
        return false;
    *r = res;
    return true;
}

/* The rule's graph, built on the placeholders p[0..np) for one direction
 * (outputs y[0..ny), NULL: zero), applied to the k directions t[] of the pass
 * (each [k, ...p]): the tangents of y along t, by one batched forward pass,
 * into res[] (NULL where y is NULL). */
static void apply_to_directions(hess_context *ctx,
                                const hess_pass *pass,
                                size_t np,
                                hess_tensor *const p[],
                                hess_tensor *const t[],
                                int ny,
                                hess_tensor *const y[],
                                hess_tensor *res[])
{
    hess_tensor *outs[HESS_MAX_SRC], *touts[HESS_MAX_SRC];
    int at[HESS_MAX_SRC];
    size_t m = 0;
    for (int i = 0; i < ny; i++)
        if (y[i]) {
            outs[m] = y[i];
            at[m++] = i;
        }
    if (m == 0)
        return;
    /* recorded as the nodes of any rule: the pass running decides whether
     * they are constants to later passes (a pass without HESS_CREATE_GRAPH
     * marks every node it made so when it ends) */
    const unsigned flags = HESS__FRESH | HESS_CREATE_GRAPH;
    if (hess__forward(ctx, m, outs, np, p, t, touts, flags, pass->k, pass->api, "directions") !=
        HESS_OK)
        return;
    for (size_t j = 0; j < m; j++)
        res[at[j]] = touts[j];
}

static HESS_VJP(user_vjp)
{
    const hess_op_handle *h = handle_of(out);
    if (pass->k == 0) {
        call_vjp(ctx, h, out, g, pass->need, gin, pass->api);
        return;
    }
    /* k directions: the rule once on g0, then along g (see the top of the file) */
    if (!hess__fits(pass->k, out, g)) { /* never: the passes give [k, ...out] */
        char a[96], b[96];
        hess__error(ctx, HESS_ERR_SHAPE,
                    "%s: user op %s: cotangent %s does not fit k = %lld and %s", pass->api, h->name,
                    hess__shape_str(a, g->ndim, g->shape), (long long)pass->k,
                    hess__shape_str(b, out->ndim, out->shape));
        return;
    }
    hess_tensor *g0 = placeholder(ctx, out, pass->api), *c0[HESS_MAX_SRC] = {NULL};
    if (!g0 || !call_vjp(ctx, h, out, g0, pass->need, c0, pass->api))
        return;
    apply_to_directions(ctx, pass, 1, &g0, &g, h->def.arity, c0, gin);
}

static HESS_JVP(user_jvp)
{
    const hess_op_handle *h = handle_of(out);
    const int n = h->def.arity;
    if (!h->op.jvp) {
        if ((h->op.flags & HESS_OP_ELEMENTWISE) && n == 1 && hess__same_shape(out, out->src[0])) {
            /* a diagonal Jacobian is its own transpose: the vjp rule serves */
            hess_pass p = *pass;
            p.need = 1u;
            hess_tensor *gin[HESS_MAX_SRC] = {NULL};
            user_vjp(ctx, &p, out, tin[0], gin);
            return gin[0];
        }
        hess__error(ctx, HESS_ERR_NODIFF,
                    "%s: user op %s has no forward-mode rule: give its hess_op record a jvp "
                    "callback (a one-source op flagged HESS_OP_ELEMENTWISE, of its source's shape, "
                    "needs none)",
                    pass->api, h->name);
        return NULL;
    }
    hess_tensor *t[HESS_MAX_SRC] = {NULL}, *r = NULL;
    for (int i = 0; i < n; i++) {
        t[i] = pass->k == 0 && tin[i] ? tin[i] : placeholder(ctx, out->src[i], pass->api);
        if (!t[i])
            return NULL;
    }
    if (!call_jvp(ctx, h, out, t, &r, pass->api) || pass->k == 0 || !r)
        return r;
    /* k directions: the rule once on the placeholders, then along tin */
    hess_tensor *p[HESS_MAX_SRC], *d[HESS_MAX_SRC], *res = NULL;
    size_t np = 0;
    for (int i = 0; i < n; i++)
        if (tin[i]) {
            p[np] = t[i];
            d[np++] = tin[i];
        }
    apply_to_directions(ctx, pass, np, p, d, 1, &r, &res);
    return res;
}

/* ------------------------------------------------------------------------ */
/* Registering and applying                                                 */
/* ------------------------------------------------------------------------ */

static hess_status refuse(hess_context *ctx, const char *why, const char *name)
{
    hess__error(ctx, HESS_ERR_ARG, "hess_op_register: %s%s%s", name ? "op " : "", name ? name : "",
                why);
    return HESS_ERR_ARG;
}

/* What is wrong with the description, recorded; HESS_OK if nothing. */
static hess_status check_op(hess_context *ctx, const hess_op *op)
{
    if (!op->name)
        return refuse(ctx, "the name is NULL", NULL);
    const char *end = memchr(op->name, '\0', HESS_OP_NAME_MAX + 1);
    if (!end) {
        hess__error(ctx, HESS_ERR_ARG,
                    "hess_op_register: the name \"%.*s...\" is too long (at most %d bytes)", 16,
                    op->name, HESS_OP_NAME_MAX);
        return HESS_ERR_ARG;
    }
    if (end == op->name)
        return refuse(ctx, "the name is empty", NULL);
    for (const char *c = op->name; c < end; c++)
        if (*c <= ' ' || *c > '~') {
            hess__error(ctx, HESS_ERR_ARG,
                        "hess_op_register: the name has a blank, control or non-ASCII byte at "
                        "%d (printable ASCII only)",
                        (int)(c - op->name));
            return HESS_ERR_ARG;
        }
    const char *nm = op->name;
    if (op->arity < 1 || op->arity > HESS_OP_MAX_SRC) {
        hess__error(ctx, HESS_ERR_ARG, "hess_op_register: op %s: arity %d is outside 1..%d", nm,
                    op->arity, HESS_OP_MAX_SRC);
        return HESS_ERR_ARG;
    }
    if (op->flags & ~HESS_OP_ELEMENTWISE) {
        hess__error(ctx, HESS_ERR_ARG, "hess_op_register: op %s: unknown flags 0x%x", nm,
                    op->flags);
        return HESS_ERR_ARG;
    }
    if (!op->forward)
        return refuse(ctx, ": the forward callback is NULL", nm);
    if (!op->vjp)
        return refuse(ctx, ": the vjp callback is NULL", nm);
    if (!op->shape && !(op->flags & HESS_OP_ELEMENTWISE))
        return refuse(ctx,
                      ": the shape callback is NULL (only an op flagged HESS_OP_ELEMENTWISE may "
                      "omit it)",
                      nm);
    for (const hess_op_handle *h = ctx->user_ops; h; h = h->next)
        if (strcmp(h->name, nm) == 0)
            return refuse(ctx, " is registered in this context already", nm);
    return HESS_OK;
}

hess_status hess_op_register(hess_context *ctx, const hess_op *op, const hess_op_handle **out)
{
    static const char fn[] = "hess_op_register";
    if (out)
        *out = NULL;
    hess_status st = hess__enter(ctx, fn);
    if (st != HESS_OK)
        return st;
    if (!op || !out) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL %s", fn, !op ? "op" : "out");
        return HESS_ERR_ARG;
    }
    if ((st = check_op(ctx, op)) != HESS_OK)
        return st;
    hess_op_handle *h = hess__keep(ctx, sizeof *h, fn);
    if (!h)
        return ctx->status;
    memcpy(h->name, op->name, strlen(op->name) + 1);
    h->op = *op;
    h->op.name = h->name;
    h->def = (hess_op_def){
        .name = h->name,
        .formula = "a user op (hess_op_register)",
        .arity = op->arity,
        .flags = op->flags & HESS_OP_ELEMENTWISE ? HESS_OPF_ELEMENTWISE : 0u,
        .shape = user_shape,
        .forward = user_forward,
        .vjp = user_vjp,
        .jvp = user_jvp,
    };
    h->next = ctx->user_ops;
    ctx->user_ops = h;
    *out = h;
    return HESS_OK;
}

hess_tensor *
hess_op_apply(hess_context *ctx, const hess_op_handle *op, size_t n, hess_tensor *const src[])
{
    static const char fn[] = "hess_op_apply";
    if (!ctx)
        return NULL;
    const hess_op_handle *h = ctx->user_ops;
    while (h && h != op) /* compares pointers only: another context's handle is never read */
        h = h->next;
    if (!h) {
        hess__error(ctx, HESS_ERR_ARG, "%s: %s", fn,
                    op ? "the op is not registered in this context (another context's handle?)"
                       : "NULL op");
        return NULL;
    }
    if (n != (size_t)h->def.arity || !src) {
        if (!src)
            hess__error(ctx, HESS_ERR_ARG, "%s: user op %s: NULL src", fn, h->name);
        else
            hess__error(ctx, HESS_ERR_ARG, "%s: user op %s takes %d sources, %zu given", fn,
                        h->name, h->def.arity, n);
        return NULL;
    }
    hess_op_params par;
    memset(&par, 0, sizeof par);
    par.user = h;
    return hess__apply(ctx, &h->def, src, &par, fn);
}
