/*
 * context.c -- the context: allocator hooks, the chained-block arena, marks and
 * rewinds, the tape's node table, error state, status strings and version.
 * Tensors and ops live elsewhere.
 */
#include "hess_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__linux__)
#include <sys/random.h>
#endif

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

/* Bytes a block of `size` usable bytes takes, or 0 when that overflows. */
static size_t block_bytes(size_t size)
{
    const size_t head = sizeof(hess__block) + HESS_ALIGN;
    return size > SIZE_MAX - head ? 0 : head + size;
}

static hess__block *block_new(hess_context *ctx, size_t size)
{
    const size_t bytes = block_bytes(size);
    hess__block *b = bytes ? raw_alloc(ctx, bytes) : NULL;
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

/* splitmix64's finaliser: a bijection of 64-bit values that mixes every bit. */
static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15u;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* A context's identity: 64 random bits from the system (getrandom on Linux)
 * mixed with the time and the context's address.  Not the address alone, which
 * a new context can get from a destroyed one; no process-wide counter, which
 * would be global state.  Two contexts share one with probability 2^-64. */
static uint64_t context_id(const hess_context *ctx)
{
    uint64_t r = 0;
#if defined(__linux__)
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = 0;
#endif
    struct timespec ts = {0, 0};
    timespec_get(&ts, TIME_UTC);
    uint64_t h = mix64(r ^ (uint64_t)(uintptr_t)ctx);
    h = mix64(h ^ (uint64_t)ts.tv_sec);
    h = mix64(h ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)clock() << 32));
    return h ? h : 1; /* 0 is the NULL context's mark */
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
    if (!block_bytes(c.block_bytes) || c.block_bytes > SIZE_MAX / 4)
        return HESS_ERR_ARG; /* no allocator gives that much: a size that overflows */
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
    ctx->id = context_id(ctx);
    ctx->last_op = -1;
    ctx->key = mix64(ctx->id ^ 0x6865737369616e00u);
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
    if (ctx->busy) { /* the running call still needs it: refused, as any other call */
        hess__busy(ctx, "hess_context_destroy");
        return;
    }
    for (hess__block *b = ctx->head, *next; b; b = next) {
        next = b->next;
        raw_free(ctx, b, block_bytes(b->size));
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
    if (size > SIZE_MAX / 4) { /* rounding up or doubling a block would overflow */
        hess__error(ctx, HESS_ERR_NOMEM, "%s: out of memory (%zu bytes asked of the arena)", fn,
                    size);
        return NULL;
    }
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
        size_t bs = b->size <= SIZE_MAX / 8 ? b->size * 2 : b->size;
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
        hess_tensor **nn = (uint64_t)cap <= SIZE_MAX / 4 / sizeof *nn
                               ? raw_alloc(ctx, (size_t)cap * sizeof *nn)
                               : NULL;
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
    if (t->op != HESS_OP_NONE)
        ctx->last_op = t->id;
    ctx->nodes[ctx->n_nodes++] = t;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Marks and rewinds                                                        */
/*                                                                          */
/* A mark is a position in the arena (block, used) and on the tape (nodes,  */
/* the serial of the last node), the rewinds done when it was taken (gen),  */
/* the context's identity and a check keyed by the context's secret over    */
/* all of these, so that an edited field is refused.  A mark is stale when  */
/* a later rewind went back before it: the context keeps the cuts, rewind   */
/* `gen` to `pos`, as a stack increasing in both (a new cut removes those  */
/* at or after its position, which it covers), so the earliest cut after a  */
/* mark is the first entry with a larger gen.                               */
/* ------------------------------------------------------------------------ */

/* Position order in the arena: block, then bytes used in it. */
static bool pos_le(size_t b1, size_t u1, size_t b2, size_t u2)
{
    return b1 < b2 || (b1 == b2 && u1 <= u2);
}

/* Each field goes through a bijection of the running value (xor, multiply by
 * an odd constant, xor-shift), so changing any one field changes the result;
 * the secret key makes it hard to forge for changes of several. */
static uint64_t mark_check(const hess_context *ctx, const hess_mark *m)
{
    const uint64_t f[6] = {
        m->ctx_id, (uint64_t)m->block, (uint64_t)m->used, (uint64_t)m->nodes, m->last, m->gen};
    uint64_t h = ctx->key;
    for (int i = 0; i < 6; i++) {
        h = (h ^ f[i]) * 0x9E3779B97F4A7C15u;
        h ^= h >> 29;
    }
    return mix64(h);
}

hess_mark hess__mark(const hess_context *ctx)
{
    hess_mark m;
    m.block = ctx->cur_index;
    m.used = ctx->cur->used;
    m.nodes = ctx->n_nodes;
    m.ctx_id = ctx->id;
    m.last = ctx->n_nodes ? ctx->nodes[ctx->n_nodes - 1]->serial : 0;
    m.gen = ctx->gen;
    m.check = 0;
    return m;
}

hess_mark hess_context_mark(const hess_context *ctx)
{
    hess_mark m;
    memset(&m, 0, sizeof m);
    if (!ctx)
        return m;
    m = hess__mark(ctx);
    m.check = mark_check(ctx, &m);
    return m;
}

/* Why @p m cannot be rewound to, or NULL when it can; *blk is then its block. */
static const char *mark_problem(const hess_context *ctx, const hess_mark *m, hess__block **blk)
{
    if (m->ctx_id != ctx->id || m->check != mark_check(ctx, m))
        return "the mark is not one of this context's (another context's, a destroyed "
               "context's, or edited)";
    if (!pos_le(m->block, m->used, ctx->cur_index, ctx->cur->used) || m->nodes > ctx->n_nodes ||
        (m->nodes ? ctx->nodes[m->nodes - 1]->serial != m->last : m->last != 0))
        return "the mark is not an earlier point of this context";
    for (int i = 0; i < ctx->n_cuts; i++)
        if (ctx->cuts[i].gen > m->gen) {
            if (!pos_le(m->block, m->used, ctx->cuts[i].block, ctx->cuts[i].used))
                return "the mark is stale: a later rewind went back before it";
            break;
        }
    hess__block *b = ctx->head;
    for (size_t i = 0; i < m->block && b; i++)
        b = b->next;
    if (!b || m->used > b->size)
        return "the mark names arena memory that does not exist";
    *blk = b;
    return NULL;
}

/* Records rewind number ctx->gen going back to (block, used). */
static void add_cut(hess_context *ctx, size_t block, size_t used)
{
    int n = ctx->n_cuts;
    while (n > 0 && pos_le(block, used, ctx->cuts[n - 1].block, ctx->cuts[n - 1].used))
        n--;
    if (n == (int)(sizeof ctx->cuts / sizeof ctx->cuts[0])) {
        /* Full: the two oldest become one, at the older position and the newer
         * gen.  Marks between them then meet an earlier cut: some valid marks
         * that old may be refused, never a stale one accepted. */
        ctx->cuts[1].block = ctx->cuts[0].block;
        ctx->cuts[1].used = ctx->cuts[0].used;
        memmove(ctx->cuts, ctx->cuts + 1, (size_t)(n - 1) * sizeof ctx->cuts[0]);
        n--;
    }
    ctx->cuts[n].gen = ctx->gen;
    ctx->cuts[n].block = block;
    ctx->cuts[n].used = used;
    ctx->n_cuts = n + 1;
}

static void rewind_to(hess_context *ctx, const hess_mark *m, hess__block *b);

hess_status hess_context_rewind(hess_context *ctx, hess_mark mark)
{
    static const char fn[] = "hess_context_rewind";
    if (!ctx)
        return HESS_ERR_ARG;
    if (ctx->busy)
        return hess__busy(ctx, fn);
    hess__block *b = NULL;
    const char *why = mark_problem(ctx, &mark, &b);
    if (why) {
        hess__error(ctx, HESS_ERR_ARG, "%s: %s", fn, why);
        return HESS_ERR_ARG;
    }
    rewind_to(ctx, &mark, b);
    return HESS_OK;
}

/* Goes back to m, in block b: the nodes after it are freed. */
static void rewind_to(hess_context *ctx, const hess_mark *m, hess__block *b)
{
    for (int64_t i = m->nodes; i < ctx->n_nodes; i++)
        ctx->nodes[i]->magic = 0; /* detected as freed while the memory is not reused */
    ctx->n_nodes = m->nodes;
    if (ctx->last_op >= ctx->n_nodes) /* back to the last op below the mark */
        for (ctx->last_op = ctx->n_nodes - 1;
             ctx->last_op >= 0 && ctx->nodes[ctx->last_op]->op == HESS_OP_NONE;)
            ctx->last_op--;
    if (ctx->stale_hi > ctx->n_nodes)
        ctx->stale_hi = ctx->n_nodes;
    if (ctx->stale_hi <= ctx->stale_lo)
        ctx->stale_lo = ctx->stale_hi = 0; /* what could be stale is gone */
    ctx->cur = b;
    ctx->cur_index = m->block;
    b->used = m->used;
    ctx->gen++;
    add_cut(ctx, m->block, m->used);
}

void hess__rewind(hess_context *ctx, const hess_mark *m)
{
    hess__block *b = ctx->cur;
    if (m->block != ctx->cur_index) {
        b = ctx->head;
        for (size_t i = 0; i < m->block; i++)
            b = b->next;
    }
    rewind_to(ctx, m, b);
}

hess_status hess__busy(hess_context *ctx, const char *fn)
{
    hess__error(ctx, HESS_ERR_STATE,
                "%s: called from inside the progress callback of %s; the context is busy until "
                "the callback returns",
                fn, ctx->busy);
    return HESS_ERR_STATE;
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
    if (ctx->busy) {
        hess__busy(ctx, fn);
        return NULL;
    }
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
    t->stamp = 0;
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
    hess__ops[t->op]->forward(t);
    t->stamp = src_stamp(t);
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
/* its users follow.  Nodes made while ctx->defer (HESS_T_PENDING) were     */
/* never evaluated and are evaluated the first time they are needed.       */
/* ------------------------------------------------------------------------ */

void hess__touch(hess_context *ctx, hess_tensor *leaf, bool by_caller)
{
    leaf->stamp = ++ctx->clock;
    leaf->flags &= ~HESS_T_DENSE;
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
    return t->op != HESS_OP_NONE && ((t->flags & HESS_T_PENDING) || src_stamp(t) > t->stamp);
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
    if (ctx->stale_lo >= ctx->stale_hi || t->op == HESS_OP_NONE || t->id < ctx->stale_lo)
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
            now[id] = u->op == HESS_OP_NONE || s <= u->stamp ? u->stamp : s;
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
        if (t->op == HESS_OP_NONE || (t->flags & HESS_T_PENDING))
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

hess_status hess__enter(hess_context *ctx, const char *fn)
{
    if (!ctx)
        return HESS_ERR_ARG;
    if (ctx->status != HESS_OK)
        return ctx->status; /* an earlier error is pending: do nothing */
    if (ctx->busy)
        return hess__busy(ctx, fn);
    return HESS_OK;
}
