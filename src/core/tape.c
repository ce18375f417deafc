/*
 * tape.c -- the tape: nodes in creation order (a topological order), the
 * checks every builder makes of its operands, and evaluation: a node's
 * kernel run at build, deferred while the tape is lazy, and again when a
 * leaf it depends on was written (stamps, refresh, replay, recompute).
 */
#include "core.h"

#include <string.h>

/* ------------------------------------------------------------------------ */
/* Nodes                                                                    */
/* ------------------------------------------------------------------------ */

/* Appends t to the tape, growing the node table geometrically. */
static bool tape_push(hess_context *ctx, hess_tensor *t, const char *fn)
{
    if (ctx->n_nodes == ctx->cap_nodes) {
        int64_t cap = ctx->cap_nodes ? ctx->cap_nodes * 2 : 256;
        hess_tensor **nn = (uint64_t)cap <= SIZE_MAX / 4 / sizeof *nn
                               ? hess__raw_alloc(ctx, (size_t)cap * sizeof *nn)
                               : NULL;
        if (!nn) {
            hess__error(ctx, HESS_ERR_NOMEM, "%s: out of memory (tape of %lld nodes)", fn,
                        (long long)cap);
            return false;
        }
        if (ctx->n_nodes)
            memcpy(nn, ctx->nodes, (size_t)ctx->n_nodes * sizeof *nn);
        hess__raw_free(ctx, ctx->nodes, (size_t)ctx->cap_nodes * sizeof *nn);
        ctx->nodes = nn;
        ctx->cap_nodes = cap;
    }
    t->id = ctx->n_nodes;
    t->serial = ++ctx->serial;
    if (!hess__is_leaf(t))
        ctx->last_op = t->id;
    ctx->nodes[ctx->n_nodes++] = t;
    return true;
}

/* The largest element count a tensor may have: its bytes fit size_t with room. */
#define HESS_MAX_NUMEL                                                                             \
    ((uint64_t)(SIZE_MAX / 4 / sizeof(double)) < (uint64_t)(INT64_MAX / 4)                         \
         ? (int64_t)(SIZE_MAX / 4 / sizeof(double))                                                \
         : INT64_MAX / 4)

/* Element count of a shape, or -1 when it exceeds HESS_MAX_NUMEL. */
static int64_t numel_checked(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1 || !hess__mul_within(n, shape[i], HESS_MAX_NUMEL))
            return -1;
        n *= shape[i];
    }
    return n;
}

bool hess__check_shape(
    hess_context *ctx, int ndim, const int64_t *shape, int max_dims, const char *fn)
{
    if (ndim < 0 || ndim > max_dims) {
        hess__error(ctx, HESS_ERR_ARG, "%s: rank %d is outside 0..%d", fn, ndim, max_dims);
        return false;
    }
    if (ndim > 0 && !shape) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL shape for rank %d", fn, ndim);
        return false;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 1) {
            hess__error(ctx, HESS_ERR_ARG, "%s: dimension %d is %lld; dimensions must be >= 1", fn,
                        i, (long long)shape[i]);
            return false;
        }
    return true; /* an element count that overflows is refused by hess__node */
}

int64_t hess__numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

bool hess__same_shape(const hess_tensor *a, const hess_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

hess_status hess__check_slow(hess_context *ctx, const hess_tensor *t, const char *fn)
{
    /* A NULL operand usually follows an earlier failure, whose error is kept. */
    if (!t) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL tensor", fn);
        return HESS_ERR_ARG;
    }
    if (t->ctx != ctx && t->magic == HESS_TENSOR_MAGIC) {
        hess__error(ctx, HESS_ERR_ARG, "%s: tensor belongs to another context", fn);
        return HESS_ERR_ARG;
    }
    if (t->magic != HESS_TENSOR_MAGIC || t->ctx != ctx || t->id < 0 || t->id >= ctx->n_nodes ||
        ctx->nodes[t->id] != t) {
        hess__error(ctx, HESS_ERR_STATE, "%s: tensor was freed by hess_context_rewind", fn);
        return HESS_ERR_STATE;
    }
    return HESS_OK;
}

/* The shared part of hess__node and hess__node_view: a header, and values
 * after it unless the node is a view of src's. */
static hess_tensor *node_new(hess_context *ctx,
                             const hess_op_def *def,
                             int ndim,
                             const int64_t *shape,
                             hess_tensor *a,
                             hess_tensor *b,
                             bool view,
                             const char *fn)
{
    if (ctx->busy && !ctx->busy_ops) { /* a user op's vjp or jvp callback may build ops */
        hess__busy(ctx, fn);
        return NULL;
    }
    /* every result passes here: a broadcast of two valid shapes can still overflow */
    const int64_t numel = numel_checked(ndim, shape);
    if (numel < 0) {
        hess__error(ctx, HESS_ERR_ARG, "%s: element count overflows", fn);
        return NULL;
    }
    const size_t head = (sizeof(hess_tensor) + 31u) & ~(size_t)31u;
    hess_tensor *t = hess__alloc(ctx, head + (view ? 0 : (size_t)numel * sizeof(double)), fn);
    if (!t)
        return NULL;
    /* field by field: a memset of the whole struct costs more than the rest
     * of this function on small graphs (shape[] past ndim is never read) */
    t->def = def;
    t->flags = 0;
    t->stamp = 0;
    t->ndim = (uint8_t)ndim;
    t->ctx = ctx;
    t->numel = numel;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    memset(&t->par, 0, sizeof t->par);
    t->src[0] = a;
    t->src[1] = b;
    t->src[2] = NULL;
    t->data = view ? a->data : (double *)(void *)((char *)t + head);
    t->scratch = NULL;
    if (!tape_push(ctx, t, fn))
        return NULL;
    t->magic = HESS_TENSOR_MAGIC;
    return t;
}

hess_tensor *hess__node(hess_context *ctx,
                        const hess_op_def *def,
                        int ndim,
                        const int64_t *shape,
                        hess_tensor *a,
                        hess_tensor *b,
                        const char *fn)
{
    return node_new(ctx, def, ndim, shape, a, b, false, fn);
}

hess_tensor *hess__node_view(hess_context *ctx,
                             const hess_op_def *def,
                             int ndim,
                             const int64_t *shape,
                             hess_tensor *a,
                             const char *fn)
{
    return node_new(ctx, def, ndim, shape, a, NULL, true, fn);
}

static bool all_finite(const double *x, int64_t n)
{
    double acc = 0.0;
    for (int64_t i = 0; i < n; i++)
        acc += x[i] * 0.0; /* NaN for NaN or Inf, 0 otherwise */
    return acc == 0.0;
}

/* The largest stamp of t's sources: what t's values follow from. */
static uint64_t src_stamp(const hess_tensor *t)
{
    uint64_t s = 0;
    for (int k = 0; k < HESS_MAX_SRC; k++)
        if (t->src[k] && t->src[k]->stamp > s)
            s = t->src[k]->stamp;
    return s;
}

/* Runs t's kernel and stamps it; under HESS_CHECK_FINITE, a non-finite result
 * is an error naming fn, the op and its operands' shapes.  Every evaluation
 * passes here: at build (hess__finish), deferred, refreshed and replayed. */
static hess_status eval_node(hess_context *ctx, hess_tensor *t, const char *fn)
{
    ctx->eval_fn = fn; /* for the message of a kernel that fails (a user op's callback) */
    t->def->forward(t);
    if (t->flags & HESS_T_FAILED) { /* the kernel recorded why (or an earlier error is kept) */
        t->flags &= (uint8_t)~HESS_T_FAILED;
        return ctx->status != HESS_OK ? ctx->status : HESS_ERR_ARG;
    }
    t->stamp = src_stamp(t);
    if (!(ctx->cfg.flags & HESS_CHECK_FINITE) || all_finite(t->data, t->numel))
        return HESS_OK;
    char s[HESS_MAX_SRC][96] = {""};
    for (int k = 0; k < HESS_MAX_SRC && t->src[k]; k++)
        hess__shape_str(s[k], t->src[k]->ndim, t->src[k]->shape);
    hess__error(ctx, HESS_ERR_NONFINITE, "%s: non-finite value in the result of %s(%s%s%s%s%s)", fn,
                t->def->name, s[0], t->src[1] ? ", " : "", s[1], t->src[2] ? ", " : "", s[2]);
    return HESS_ERR_NONFINITE;
}

hess_tensor *hess__finish(hess_context *ctx, hess_tensor *out, const char *fn)
{
    if (!out)
        return NULL;
    if (ctx->lazy) { /* computed later, if needed (hess__eval) */
        out->flags |= HESS_T_PENDING;
        return out;
    }
    return eval_node(ctx, out, fn) == HESS_OK ? out : NULL;
}

/* ------------------------------------------------------------------------ */
/* Bringing values up to date                                              */
/*                                                                          */
/* Leaves carry the clock of their last write, results the largest stamp of */
/* their sources when last evaluated.  Walking the tape in order and        */
/* evaluating again each result with a source newer than itself leaves      */
/* every result up to date: a source evaluated again gets the new stamp, so */
/* its users follow.  Nodes made while the tape is lazy (HESS_T_PENDING) were */
/* never evaluated and are evaluated the first time they are needed.       */
/* ------------------------------------------------------------------------ */

void hess__leaf_scan(hess_tensor *leaf)
{
    int64_t nz = 0;
    for (int64_t e0 = 0; e0 < leaf->numel; e0 += 8) {
        const int64_t e1 = e0 + 8 < leaf->numel ? e0 + 8 : leaf->numel;
        uint64_t acc = 0;
        for (int64_t e = e0; e < e1; e++) {
            uint64_t u;
            memcpy(&u, leaf->data + e, sizeof u);
            acc |= u << 1;
        }
        nz += acc != 0;
    }
    leaf->par.leaf.nz_chunks = nz;
}

void hess__touch(hess_context *ctx, hess_tensor *leaf, bool by_caller)
{
    leaf->stamp = ++ctx->clock;
    /* results made before now and after the leaf may follow from it: they
     * are the region a refresh looks at (none when no result follows it) */
    if (by_caller && ctx->last_op > leaf->id) {
        if (ctx->stale_lo >= ctx->stale_hi || leaf->id + 1 < ctx->stale_lo)
            ctx->stale_lo = leaf->id + 1;
        ctx->stale_hi = ctx->n_nodes;
    }
}

static bool out_of_date(const hess_tensor *t)
{
    return !hess__is_leaf(t) && ((t->flags & HESS_T_PENDING) || src_stamp(t) > t->stamp);
}

/* Evaluates, in tape order from node `first` on, every node that outs[]
 * depend on (every node when outs is NULL) and that is pending or out of
 * date.  Nodes nothing needs are left as they are.  Memory: one byte per node
 * from first to the last output, in the arena, given back. */
static hess_status bring_up_to_date(
    hess_context *ctx, int64_t first, size_t n, hess_tensor *const outs[], const char *fn)
{
    int64_t top = outs ? -1 : ctx->n_nodes - 1;
    for (size_t i = 0; outs && i < n; i++)
        if (outs[i] && outs[i]->id > top)
            top = outs[i]->id;
    if (top < first)
        return HESS_OK;
    const hess_mark mk = hess__mark(ctx);
    unsigned char *need = hess__alloc(ctx, (size_t)(top - first + 1), fn);
    if (!need)
        return ctx->status;
    memset(need, outs ? 0 : 1, (size_t)(top - first + 1));
    for (size_t i = 0; outs && i < n; i++)
        if (outs[i] && outs[i]->id >= first)
            need[outs[i]->id - first] = 1;
    /* sources come before their users: one sweep down the tape marks ancestors */
    for (int64_t id = top; id >= first; id--) {
        const hess_tensor *t = ctx->nodes[id];
        if (!need[id - first])
            continue;
        for (int k = 0; k < HESS_MAX_SRC; k++)
            if (t->src[k] && t->src[k]->id >= first)
                need[t->src[k]->id - first] = 1;
    }
    hess_status st = HESS_OK;
    for (int64_t id = first; id <= top && st == HESS_OK; id++) {
        hess_tensor *t = ctx->nodes[id];
        if (need[id - first] && out_of_date(t)) {
            t->flags &= ~HESS_T_PENDING;
            st = eval_node(ctx, t, fn);
        }
    }
    hess__rewind(ctx, &mk);
    return st;
}

hess_status
hess__eval(hess_context *ctx, int64_t first, size_t n, hess_tensor *const outs[], const char *fn)
{
    return bring_up_to_date(ctx, first, n, outs, fn);
}

hess_status hess__refresh(hess_context *ctx, size_t n, hess_tensor *const outs[], const char *fn)
{
    if (ctx->stale_lo >= ctx->stale_hi)
        return HESS_OK; /* no result made before a write and after its leaf */
    return bring_up_to_date(ctx, ctx->stale_lo, n, outs, fn);
}

int hess_tensor_is_stale(const hess_tensor *t)
{
    if (!t || t->magic != HESS_TENSOR_MAGIC || !t->ctx || t->id < 0 || t->id >= t->ctx->n_nodes ||
        t->ctx->nodes[t->id] != t)
        return -1;
    hess_context *ctx = t->ctx;
    if (t->flags & HESS_T_PENDING)
        return 1;
    if (ctx->stale_lo >= ctx->stale_hi || hess__is_leaf(t) || t->id < ctx->stale_lo)
        return 0;
    /* the stamps t would get, walking its ancestors in tape order */
    const hess_mark mk = hess__mark(ctx);
    const int64_t top = t->id;
    uint64_t *now = hess__alloc(ctx, (size_t)(top + 1) * sizeof *now, "hess_tensor_is_stale");
    unsigned char *need = hess__calloc(ctx, (size_t)(top + 1), "hess_tensor_is_stale");
    int stale = -1;
    if (now && need) {
        need[top] = 1;
        for (int64_t id = top; id >= ctx->stale_lo; id--)
            for (int k = 0; need[id] && k < HESS_MAX_SRC; k++)
                if (ctx->nodes[id]->src[k])
                    need[ctx->nodes[id]->src[k]->id] = 1;
        for (int64_t id = 0; id < ctx->stale_lo; id++)
            now[id] = ctx->nodes[id]->stamp; /* up to date: made before any stale node */
        for (int64_t id = ctx->stale_lo; id <= top; id++) {
            const hess_tensor *u = ctx->nodes[id];
            if (!need[id])
                continue;
            uint64_t s = 0;
            for (int k = 0; k < HESS_MAX_SRC; k++)
                if (u->src[k] && now[u->src[k]->id] > s)
                    s = now[u->src[k]->id];
            now[id] = hess__is_leaf(u) || s <= u->stamp ? u->stamp : s;
        }
        stale = now[top] != t->stamp;
    }
    hess__rewind(ctx, &mk);
    return stale;
}

/* ------------------------------------------------------------------------ */
/* Replay: the nodes that depend on given leaves, evaluated again after     */
/* their values changed ("define once, compute many times").              */
/* ------------------------------------------------------------------------ */

hess_status hess__replay_plan(hess_context *ctx,
                              size_t n_leaves,
                              hess_tensor *const leaves[],
                              hess__replay *plan)
{
    int64_t first = ctx->n_nodes;
    for (size_t i = 0; i < n_leaves; i++)
        if (leaves[i]->id < first)
            first = leaves[i]->id;
    int64_t span = ctx->n_nodes - first;
    unsigned char *dirty = hess__calloc(ctx, (size_t)span + 1, "hess_replay");
    int64_t *ids = hess__alloc(ctx, ((size_t)span + 1) * sizeof *ids, "hess_replay");
    if (!dirty || !ids)
        return HESS_ERR_NOMEM;
    for (size_t i = 0; i < n_leaves; i++)
        dirty[leaves[i]->id - first] = 1;
    int64_t n = 0;
    for (int64_t id = first; id < ctx->n_nodes; id++) {
        const hess_tensor *t = ctx->nodes[id];
        if (hess__is_leaf(t) || (t->flags & HESS_T_PENDING))
            continue; /* a pending node is one nothing needs (hess__eval) */
        for (int k = 0; k < HESS_MAX_SRC; k++) {
            const hess_tensor *s = t->src[k];
            if (s && s->id >= first && dirty[s->id - first]) {
                dirty[id - first] = 1;
                ids[n++] = id;
                break;
            }
        }
    }
    plan->ids = ids;
    plan->n = n;
    return HESS_OK;
}

hess_status hess__replay_run(hess_context *ctx, const hess__replay *plan, const char *fn)
{
    for (int64_t i = 0; i < plan->n; i++) {
        hess_status st = eval_node(ctx, ctx->nodes[plan->ids[i]], fn);
        if (st != HESS_OK)
            return st;
    }
    return HESS_OK;
}

hess_status hess_recompute(hess_context *ctx)
{
    static const char fn[] = "hess_recompute";
    hess_status st = hess__enter(ctx, fn);
    if (st != HESS_OK)
        return st;
    if (ctx->stale_lo >= ctx->stale_hi)
        return HESS_OK;
    st = bring_up_to_date(ctx, ctx->stale_lo, 0, NULL, fn);
    if (st == HESS_OK)
        ctx->stale_lo = ctx->stale_hi = 0; /* the whole tape is up to date */
    return st;
}

/* ------------------------------------------------------------------------ */
/* Lists of tensors                                                         */
/* ------------------------------------------------------------------------ */

static hess_status repeated(hess_context *ctx, const char *what, size_t i, size_t j, const char *fn)
{
    hess__error(ctx, HESS_ERR_ARG,
                "%s: %s[%zu] is the same tensor as %s[%zu]; a list names each tensor once", fn,
                what, i, what, j);
    return HESS_ERR_ARG;
}

hess_status hess__check_list(
    hess_context *ctx, size_t n, hess_tensor *const list[], const char *what, const char *fn)
{
    if (!list || n == 0) {
        hess__error(ctx, HESS_ERR_ARG, "%s: no parameters given (%s is empty)", fn, what);
        return HESS_ERR_ARG;
    }
    for (size_t i = 0; i < n; i++) {
        if (!list[i]) {
            hess__error(ctx, HESS_ERR_ARG, "%s: %s[%zu] is NULL", fn, what, i);
            return HESS_ERR_ARG;
        }
        hess_status st = hess__check(ctx, list[i], fn);
        if (st != HESS_OK)
            return st;
    }
    /* Each tensor once: a repeated one would be two blocks of one variable,
     * which setting values from a flat vector cannot honour.  Short lists by
     * pairs; long ones by a table over the range of their tape ids. */
    if (n <= 32) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (list[i] == list[j])
                    return repeated(ctx, what, i, j, fn);
        return HESS_OK;
    }
    int64_t lo = INT64_MAX, hi = -1;
    for (size_t i = 0; i < n; i++) {
        lo = list[i]->id < lo ? list[i]->id : lo;
        hi = list[i]->id > hi ? list[i]->id : hi;
    }
    const hess_mark mk = hess__mark(ctx);
    size_t *seen = hess__calloc(ctx, (size_t)(hi - lo + 1) * sizeof *seen, fn);
    hess_status st = seen ? HESS_OK : ctx->status;
    for (size_t i = 0; i < n && st == HESS_OK; i++) {
        size_t *slot = &seen[list[i]->id - lo];
        if (*slot)
            st = repeated(ctx, what, i, *slot - 1, fn);
        *slot = i + 1;
    }
    hess__rewind(ctx, &mk);
    return st;
}
