/*
 * context.c -- the context: allocator hooks, the chained-block arena, marks and
 * rewinds, the tape's node table, error state, status strings and version.
 * Tensors and ops live elsewhere.
 */
#include "hess_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HESS_ALIGN         32u
#define HESS_DEFAULT_BLOCK ((size_t)64 * 1024)

/* ------------------------------------------------------------------------ */
/* Version and status strings                                               */
/* ------------------------------------------------------------------------ */

#define HESS_STR_(x) #x
#define HESS_STR(x)  HESS_STR_(x)

unsigned hess_version(void)
{
    return HESS_VERSION_NUMBER;
}

const char *hess_version_string(void)
{
    return HESS_STR(HESS_VERSION_MAJOR) "." HESS_STR(HESS_VERSION_MINOR) "." HESS_STR(
        HESS_VERSION_PATCH);
}

const char *hess_status_str(hess_status s)
{
    switch (s) {
#define HESS_X_(name, value, text)                                                                 \
    case name:                                                                                     \
        return text;
        HESS_STATUS_LIST(HESS_X_)
#undef HESS_X_
    }
    return "unknown status";
}

/* ------------------------------------------------------------------------ */
/* Raw allocation through the hooks, with the byte limit                    */
/* ------------------------------------------------------------------------ */

static void *raw_alloc(hess_context *ctx, size_t size)
{
    if (ctx->cfg.max_bytes && (size > ctx->cfg.max_bytes || ctx->bytes > ctx->cfg.max_bytes - size))
        return NULL;
    void *p = ctx->cfg.alloc ? ctx->cfg.alloc(size, ctx->cfg.user) : malloc(size);
    if (p)
        ctx->bytes += size;
    return p;
}

static void raw_free(hess_context *ctx, void *p, size_t size)
{
    if (!p)
        return;
    ctx->bytes -= size;
    if (ctx->cfg.free)
        ctx->cfg.free(p, size, ctx->cfg.user);
    else
        free(p);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

void hess__error(hess_context *ctx, hess_status s, const char *fmt, ...)
{
    if (!ctx || ctx->status != HESS_OK)
        return;
    ctx->status = s;
    /* Inside a composite (hess_mean, hess_softmax, the Hessians, ...) the
     * message is prefixed with the public function the caller called. */
    size_t off = 0;
    if (ctx->api && strncmp(fmt, "%s", 2) == 0) {
        off = (size_t)snprintf(ctx->errmsg, sizeof ctx->errmsg, "%s: ", ctx->api);
        if (off >= sizeof ctx->errmsg)
            off = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->errmsg + off, sizeof ctx->errmsg - off, fmt, ap);
    va_end(ap);
    /* "hess_mean: hess_mean: ..." when the composite itself failed */
    const size_t n = ctx->api ? strlen(ctx->api) : 0;
    if (off && strncmp(ctx->errmsg + off, ctx->api, n) == 0 && ctx->errmsg[off + n] == ':')
        memmove(ctx->errmsg, ctx->errmsg + off, strlen(ctx->errmsg + off) + 1);
}

hess_status hess_context_status(const hess_context *ctx)
{
    return ctx ? ctx->status : HESS_ERR_ARG;
}

const char *hess_context_errmsg(const hess_context *ctx)
{
    if (!ctx)
        return "hess_context_errmsg: NULL context";
    return ctx->status == HESS_OK ? "" : ctx->errmsg;
}

void hess_context_clear_error(hess_context *ctx)
{
    if (!ctx)
        return;
    ctx->status = HESS_OK;
    ctx->errmsg[0] = '\0';
}

const char *hess__shape_str(char *buf, int ndim, const int64_t *shape)
{
    size_t n = 0;
    buf[n++] = '[';
    buf[n] = '\0';
    for (int i = 0; i < ndim && n < 80; i++)
        n += (size_t)snprintf(buf + n, 96 - n, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (n < 95) {
        buf[n++] = ']';
        buf[n] = '\0';
    }
    return buf;
}

const char *hess__api_enter(hess_context *ctx, const char *fn)
{
    if (!ctx)
        return NULL;
    const char *saved = ctx->api;
    if (!saved)
        ctx->api = fn;
    return saved;
}

hess_tensor *hess__api_leave(hess_context *ctx, const char *saved, hess_tensor *result)
{
    if (ctx)
        ctx->api = saved;
    return result;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */
/* ------------------------------------------------------------------------ */

static hess__block *block_new(hess_context *ctx, size_t size)
{
    hess__block *b = raw_alloc(ctx, sizeof(hess__block) + HESS_ALIGN + size);
    if (!b)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

static unsigned char *block_base(hess__block *b)
{
    uintptr_t p = (uintptr_t)(b + 1);
    p = (p + HESS_ALIGN - 1) & ~(uintptr_t)(HESS_ALIGN - 1);
    return (unsigned char *)p;
}

hess_status hess_context_create(const hess_config *cfg, hess_context **out)
{
    if (!out)
        return HESS_ERR_ARG;
    *out = NULL;
    hess_config c = {0};
    if (cfg)
        c = *cfg;
    if ((c.alloc == NULL) != (c.free == NULL))
        return HESS_ERR_ARG; /* both hooks or neither */
    if (c.block_bytes == 0)
        c.block_bytes = HESS_DEFAULT_BLOCK;
    size_t need = sizeof(hess_context);
    if (c.max_bytes && need > c.max_bytes)
        return HESS_ERR_NOMEM;
    hess_context *ctx = c.alloc ? c.alloc(need, c.user) : malloc(need);
    if (!ctx)
        return HESS_ERR_NOMEM;
    memset(ctx, 0, sizeof *ctx);
    ctx->cfg = c;
    ctx->bytes = need;
    ctx->simd = !(c.flags & HESS_NO_SIMD) && hess__simd_available();
    /* The epoch tells this context's marks from another's; the address is
     * unique among live contexts, which is all that is needed. */
    ctx->epoch = (uint64_t)(uintptr_t)ctx;
    ctx->head = block_new(ctx, c.block_bytes);
    if (!ctx->head) {
        if (c.free)
            c.free(ctx, need, c.user);
        else
            free(ctx);
        return HESS_ERR_NOMEM;
    }
    ctx->cur = ctx->head;
    *out = ctx;
    return HESS_OK;
}

void hess_context_destroy(hess_context *ctx)
{
    if (!ctx)
        return;
    for (hess__block *b = ctx->head, *next; b; b = next) {
        next = b->next;
        raw_free(ctx, b, sizeof(hess__block) + HESS_ALIGN + b->size);
    }
    raw_free(ctx, ctx->nodes, (size_t)ctx->cap_nodes * sizeof(hess_tensor *));
    hess_config c = ctx->cfg;
    if (c.free)
        c.free(ctx, sizeof(hess_context), c.user);
    else
        free(ctx);
}

size_t hess_context_bytes(const hess_context *ctx)
{
    return ctx ? ctx->bytes : 0;
}

/* ------------------------------------------------------------------------ */
/* Arena                                                                    */
/* ------------------------------------------------------------------------ */

void *hess__alloc(hess_context *ctx, size_t size, const char *fn)
{
    size = (size + HESS_ALIGN - 1) & ~(size_t)(HESS_ALIGN - 1);
    if (size == 0)
        size = HESS_ALIGN;
    hess__block *b = ctx->cur;
    if (b->size - b->used >= size) {
        void *p = block_base(b) + b->used;
        b->used += size;
        return p;
    }
    /* Move on to the next kept block if it fits, else insert a new one. */
    if (b->next && b->next->size >= size) {
        b = b->next;
        b->used = 0;
    } else {
        size_t bs = b->size * 2;
        if (bs < size)
            bs = size;
        hess__block *nb = block_new(ctx, bs);
        if (!nb && bs > size)
            nb = block_new(ctx, size); /* the byte limit may still allow this much */
        if (!nb) {
            hess__error(ctx, HESS_ERR_NOMEM, "%s: out of memory (arena needs %zu more bytes)", fn,
                        size);
            return NULL;
        }
        nb->next = b->next;
        b->next = nb;
        b = nb;
    }
    ctx->cur = b;
    ctx->cur_index++;
    void *p = block_base(b);
    b->used = size;
    return p;
}

void *hess__calloc(hess_context *ctx, size_t size, const char *fn)
{
    void *p = hess__alloc(ctx, size, fn);
    if (p)
        memset(p, 0, size);
    return p;
}

/* Appends t to the tape, growing the node table geometrically. */
static bool tape_push(hess_context *ctx, hess_tensor *t, const char *fn)
{
    if (ctx->n_nodes == ctx->cap_nodes) {
        int64_t cap = ctx->cap_nodes ? ctx->cap_nodes * 2 : 256;
        hess_tensor **nn = raw_alloc(ctx, (size_t)cap * sizeof *nn);
        if (!nn) {
            hess__error(ctx, HESS_ERR_NOMEM, "%s: out of memory (tape of %lld nodes)", fn,
                        (long long)cap);
            return false;
        }
        if (ctx->n_nodes)
            memcpy(nn, ctx->nodes, (size_t)ctx->n_nodes * sizeof *nn);
        raw_free(ctx, ctx->nodes, (size_t)ctx->cap_nodes * sizeof *nn);
        ctx->nodes = nn;
        ctx->cap_nodes = cap;
    }
    t->id = ctx->n_nodes;
    t->serial = ++ctx->serial;
    ctx->nodes[ctx->n_nodes++] = t;
    return true;
}

hess_mark hess_context_mark(const hess_context *ctx)
{
    hess_mark m = {0, 0, 0, 0, 0};
    if (!ctx)
        return m;
    m.block = ctx->cur_index;
    m.used = ctx->cur->used;
    m.nodes = ctx->n_nodes;
    m.epoch = ctx->epoch;
    m.last = ctx->n_nodes ? ctx->nodes[ctx->n_nodes - 1]->serial : 0;
    return m;
}

hess_status hess_context_rewind(hess_context *ctx, hess_mark mark)
{
    if (!ctx)
        return HESS_ERR_ARG;
    bool later = mark.block < ctx->cur_index ||
                 (mark.block == ctx->cur_index && mark.used <= ctx->cur->used);
    /* A stale mark (taken after a point since rewound to) is caught by the
     * serial of its last tensor, which a rebuilt tape cannot repeat. */
    bool same =
        mark.nodes <= ctx->n_nodes &&
        (mark.nodes == 0 ? mark.last == 0 : ctx->nodes[mark.nodes - 1]->serial == mark.last);
    if (mark.epoch != ctx->epoch || !same || !later) {
        hess__error(ctx, HESS_ERR_ARG,
                    "hess_context_rewind: the mark is not an earlier point "
                    "of this context");
        return HESS_ERR_ARG;
    }
    for (int64_t i = mark.nodes; i < ctx->n_nodes; i++)
        ctx->nodes[i]->magic = 0; /* detected as freed while the memory is not reused */
    ctx->n_nodes = mark.nodes;
    hess__block *b = ctx->head;
    for (size_t i = 0; i < mark.block; i++)
        b = b->next;
    ctx->cur = b;
    ctx->cur_index = mark.block;
    b->used = mark.used;
    return HESS_OK;
}

/* ------------------------------------------------------------------------ */
/* Nodes                                                                    */
/* ------------------------------------------------------------------------ */

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

hess_tensor *hess__node(hess_context *ctx,
                        hess_op op,
                        int ndim,
                        const int64_t *shape,
                        hess_tensor *a,
                        hess_tensor *b,
                        const char *fn)
{
    /* every result passes here: a broadcast of two valid shapes can still overflow */
    const int64_t numel = numel_checked(ndim, shape);
    if (numel < 0) {
        hess__error(ctx, HESS_ERR_ARG, "%s: element count overflows", fn);
        return NULL;
    }
    /* A reshape shares its source's values, which never change in place:
     * only parameters do (hess_param_set), so a reshaped parameter is a copy.
     * Otherwise the values follow the header in the same allocation. */
    const bool view = op == HESS_OP_RESHAPE && !(a->flags & HESS_T_PARAM);
    const size_t head = (sizeof(hess_tensor) + HESS_ALIGN - 1) & ~(size_t)(HESS_ALIGN - 1);
    hess_tensor *t = hess__alloc(ctx, head + (view ? 0 : (size_t)numel * sizeof(double)), fn);
    if (!t)
        return NULL;
    double *data = view ? a->data : (double *)(void *)((char *)t + head);
    /* field by field: a memset of the whole struct costs more than the rest
     * of this function on small graphs (shape[] past ndim is never read) */
    t->op = (uint8_t)op;
    t->flags = ctx->no_record ? HESS_T_DETACHED : 0;
    t->ndim = (uint8_t)ndim;
    t->axis = 0;
    t->ctx = ctx;
    t->numel = numel;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->p[0] = t->p[1] = 0.0;
    t->src[0] = a;
    t->src[1] = b;
    t->src[2] = NULL;
    t->data = data;
    t->scratch = NULL;
    if (!tape_push(ctx, t, fn))
        return NULL;
    t->magic = HESS_TENSOR_MAGIC;
    return t;
}

static bool all_finite(const double *x, int64_t n)
{
    double acc = 0.0;
    for (int64_t i = 0; i < n; i++)
        acc += x[i] * 0.0; /* NaN for NaN or Inf, 0 otherwise */
    return acc == 0.0;
}

/* Runs t's kernel; under HESS_CHECK_FINITE, a non-finite result is an error
 * naming fn, the op and its operands' shapes.  Every evaluation passes here:
 * at build (hess__finish), deferred (hess__eval) and replayed. */
static hess_status eval_node(hess_context *ctx, hess_tensor *t, const char *fn)
{
    hess__ops[t->op]->forward(t);
    if (!(ctx->cfg.flags & HESS_CHECK_FINITE) || all_finite(t->data, t->numel))
        return HESS_OK;
    char s[HESS_MAX_SRC][96] = {""};
    for (int k = 0; k < HESS_MAX_SRC && t->src[k]; k++)
        hess__shape_str(s[k], t->src[k]->ndim, t->src[k]->shape);
    hess__error(ctx, HESS_ERR_NONFINITE, "%s: non-finite value in the result of %s(%s%s%s%s%s)", fn,
                hess__ops[t->op]->name, s[0], t->src[1] ? ", " : "", s[1], t->src[2] ? ", " : "",
                s[2]);
    return HESS_ERR_NONFINITE;
}

hess_tensor *hess__finish(hess_context *ctx, hess_tensor *out, const char *fn)
{
    if (!out)
        return NULL;
    if (ctx->defer) { /* computed later, if needed (hess__eval) */
        out->flags |= HESS_T_STALE;
        return out;
    }
    return eval_node(ctx, out, fn) == HESS_OK ? out : NULL;
}

/* ------------------------------------------------------------------------ */
/* Replay                                                                   */
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
        if (t->op == HESS_OP_NONE || (t->flags & HESS_T_STALE))
            continue; /* a stale node is one nothing needs (hess__eval) */
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

hess_status
hess__eval(hess_context *ctx, int64_t first, size_t n, hess_tensor *const outs[], const char *fn)
{
    const int64_t span = ctx->n_nodes - first;
    if (span <= 0)
        return HESS_OK;
    unsigned char *need = hess__calloc(ctx, (size_t)span, fn);
    if (!need)
        return ctx->status;
    for (size_t i = 0; i < n; i++)
        if (outs[i] && outs[i]->id >= first)
            need[outs[i]->id - first] = 1;
    /* sources come before their users: one sweep down the tape marks ancestors */
    for (int64_t id = ctx->n_nodes - 1; id >= first; id--) {
        const hess_tensor *t = ctx->nodes[id];
        if (!need[id - first] || !(t->flags & HESS_T_STALE))
            continue;
        for (int k = 0; k < HESS_MAX_SRC; k++)
            if (t->src[k] && t->src[k]->id >= first)
                need[t->src[k]->id - first] = 1;
    }
    for (int64_t id = first; id < ctx->n_nodes; id++) {
        hess_tensor *t = ctx->nodes[id];
        if (!need[id - first] || !(t->flags & HESS_T_STALE))
            continue;
        t->flags &= ~HESS_T_STALE;
        hess_status st = eval_node(ctx, t, fn);
        if (st != HESS_OK)
            return st;
    }
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
    if (!ctx)
        return HESS_ERR_ARG;
    if (ctx->status != HESS_OK)
        return ctx->status; /* an earlier error is pending: do nothing */
    /* the parameters are the leaves whose values change (hess_param_set) */
    const hess_mark mk = hess_context_mark(ctx);
    int64_t n = 0;
    for (int64_t id = 0; id < ctx->n_nodes; id++)
        n += (ctx->nodes[id]->flags & HESS_T_PARAM) != 0;
    if (n == 0)
        return HESS_OK;
    hess_tensor **params = hess__alloc(ctx, (size_t)n * sizeof *params, fn);
    if (!params)
        return ctx->status;
    n = 0;
    for (int64_t id = 0; id < ctx->n_nodes; id++)
        if (ctx->nodes[id]->flags & HESS_T_PARAM)
            params[n++] = ctx->nodes[id];
    hess__replay plan;
    hess_status st = hess__replay_plan(ctx, (size_t)n, params, &plan);
    if (st == HESS_OK)
        st = hess__replay_run(ctx, &plan, fn);
    hess_context_rewind(ctx, mk); /* the plan only */
    return st;
}
