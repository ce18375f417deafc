/*
 * arena.c -- the context's memory: the allocator hooks with the byte limit,
 * the chained-block arena, the context's life, and marks and rewinds.
 */
#include "core.h"

#include "../kernels/kernels.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__linux__)
#include <sys/random.h>
#endif

#define HESS_ALIGN         32u
#define HESS_DEFAULT_BLOCK ((size_t)64 * 1024)

/* ------------------------------------------------------------------------ */
/* Raw allocation through the hooks, with the byte limit                    */
/* ------------------------------------------------------------------------ */

void *hess__raw_alloc(hess_context *ctx, size_t size)
{
    if (ctx->cfg.max_bytes && (size > ctx->cfg.max_bytes || ctx->bytes > ctx->cfg.max_bytes - size))
        return NULL;
    void *p = ctx->cfg.alloc ? ctx->cfg.alloc(size, ctx->cfg.user) : malloc(size);
    if (p)
        ctx->bytes += size;
    return p;
}

void hess__raw_free(hess_context *ctx, void *p, size_t size)
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
    hess__block *b = bytes ? hess__raw_alloc(ctx, bytes) : NULL;
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
        hess__raw_free(ctx, b, block_bytes(b->size));
    }
    for (hess__kept *k = ctx->kept, *next; k; k = next) {
        next = k->next;
        hess__raw_free(ctx, k, k->size);
    }
    hess__raw_free(ctx, ctx->nodes, (size_t)ctx->cap_nodes * sizeof(hess_tensor *));
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

void *hess__keep(hess_context *ctx, size_t size, const char *fn)
{
    const size_t head = sizeof(hess__kept);
    hess__kept *k = size <= SIZE_MAX / 4 ? hess__raw_alloc(ctx, head + size) : NULL;
    if (!k) {
        hess__error(ctx, HESS_ERR_NOMEM, "%s: out of memory (%zu bytes)", fn, size);
        return NULL;
    }
    k->next = ctx->kept;
    k->size = head + size;
    ctx->kept = k;
    memset(k + 1, 0, size);
    return k + 1;
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
             ctx->last_op >= 0 && hess__is_leaf(ctx->nodes[ctx->last_op]);)
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
