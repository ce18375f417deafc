/*
 * test_docs.c -- what the documentation says about memory, checked: the
 * "memory" paragraph and the "kept" column of the cost table in docs/guide.md
 * (section "What each function costs"), the training-loop rule of README.md
 * and the guide, and the examples the README and the guide give (the usage
 * snippet's parameter count and error message, one sweep for the seed
 * network).  Each test names the statement it checks.
 *
 * Terms, as the guide uses them: hess_context_bytes() is what the context
 * holds from the allocator (the context, its arena blocks, the tape's node
 * table); "kept" is what a call leaves in the arena and on the tape, seen
 * through hess_context_mark() (block, bytes used in it, tape length).  The
 * tests are white-box where they must tell nodes from other arena memory:
 * they read the tape (hess_internal.h) to add up the new nodes' sizes.
 */
#include "check.h"
#include "hess_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SHP(...) ((const int64_t[]){__VA_ARGS__})
#define VAL(...) ((const double[]){__VA_ARGS__})

#define KIB         ((size_t)1024)
#define ARENA_ALIGN ((size_t)32) /* HESS_ALIGN in src/core/arena.c */

/* ------------------------------------------------------------------------ */
/* Snapshots: bytes held, and the mark (arena position, tape length)        */
/* ------------------------------------------------------------------------ */

typedef struct snap {
    size_t bytes;
    hess_mark mk;
} snap;

static snap take(const hess_context *ctx)
{
    snap s = {hess_context_bytes(ctx), hess_context_mark(ctx)};
    return s;
}

static size_t align_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
}

/* Arena bytes of one node: its header, and its values unless it shares
 * another tensor's (a reshape view). */
static size_t node_size(const hess_tensor *t)
{
    const size_t head = align_up(sizeof(hess_tensor));
    const bool own = t->data == (const double *)(const void *)((const char *)t + head);
    return align_up(head + (own ? (size_t)t->numel * sizeof(double) : 0));
}

/* What a call kept, between snapshots a and b taken in the same arena block. */
typedef struct kept {
    int64_t nodes;     /* new tape entries */
    size_t node_bytes; /* their headers and values */
    size_t extra;      /* the rest of the arena growth: tables, names, workspace */
    size_t view_nodes; /* new nodes without values of their own */
    long long bytes;   /* change of hess_context_bytes() */
} kept;

static kept kept_between(const hess_context *ctx, snap a, snap b)
{
    assert_int_equal(a.mk.block, b.mk.block); /* the tests use one large block */
    assert_true(b.mk.used >= a.mk.used);
    assert_true(b.mk.nodes >= a.mk.nodes);
    kept k = {b.mk.nodes - a.mk.nodes, 0, 0, 0, (long long)b.bytes - (long long)a.bytes};
    for (int64_t id = a.mk.nodes; id < b.mk.nodes; id++) {
        const hess_tensor *t = ctx->nodes[id];
        k.node_bytes += node_size(t);
        k.view_nodes += node_size(t) == align_up(sizeof(hess_tensor));
    }
    assert_true(b.mk.used - a.mk.used >= k.node_bytes);
    k.extra = b.mk.used - a.mk.used - k.node_bytes;
    return k;
}

/* The guide's "nothing": the mark and the bytes held are as before. */
static void assert_nothing_kept(const hess_context *ctx, snap a, const char *what)
{
    snap b = take(ctx);
    if (a.bytes != b.bytes || a.mk.block != b.mk.block || a.mk.used != b.mk.used ||
        a.mk.nodes != b.mk.nodes)
        fail_msg("%s kept something: bytes %zu -> %zu, block %zu -> %zu, used %zu -> %zu, "
                 "nodes %lld -> %lld",
                 what, a.bytes, b.bytes, a.mk.block, b.mk.block, a.mk.used, b.mk.used,
                 (long long)a.mk.nodes, (long long)b.mk.nodes);
}

/* One node with values of its own, and nothing else. */
static void assert_one_node(const hess_context *ctx, snap a, const char *what)
{
    kept k = kept_between(ctx, a, take(ctx));
    if (k.nodes != 1 || k.extra != 0 || k.view_nodes != 0 || k.bytes != 0)
        fail_msg("%s: %lld nodes (%zu views), %zu extra arena bytes, bytes held %+lld; "
                 "expected one node with its values",
                 what, (long long)k.nodes, k.view_nodes, k.extra, k.bytes);
}

/* A context with one first block large enough for every test below, so that
 * arena growth is a difference of marks in one block. */
static hess_context *big_context(void)
{
    hess_config cfg = {0};
    cfg.block_bytes = 8 * KIB * KIB;
    hess_context *ctx = NULL;
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    return ctx;
}

/* ------------------------------------------------------------------------ */
/* A counting allocator                                                     */
/* ------------------------------------------------------------------------ */

typedef struct counter {
    size_t n_alloc, n_free;
    size_t live; /* bytes allocated and not freed */
} counter;

static void *count_alloc(size_t size, void *user)
{
    counter *c = user;
    c->n_alloc++;
    c->live += size;
    return test_malloc(size);
}

static void count_free(void *p, size_t size, void *user)
{
    counter *c = user;
    c->n_free++;
    c->live -= size;
    test_free(p);
}

static hess_context *counted_context(counter *c, size_t block_bytes)
{
    hess_config cfg = {0};
    cfg.alloc = count_alloc;
    cfg.free = count_free;
    cfg.user = c;
    cfg.block_bytes = block_bytes;
    hess_context *ctx = NULL;
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    return ctx;
}

/* ------------------------------------------------------------------------ */
/* The seed network of examples/ann_mse.c (README, guide)                   */
/* ------------------------------------------------------------------------ */

typedef struct net {
    hess_tensor *p[4]; /* W1 [4,3], b1 [4], W2 [5,4], b2 [5] */
    hess_tensor *x, *y;
} net;

static net make_net(hess_context *ctx)
{
    double w1[12], w2[20];
    for (int i = 0; i < 12; i++)
        w1[i] = 0.1 * (i % 5) - 0.2;
    for (int i = 0; i < 20; i++)
        w2[i] = 0.07 * (i % 7) - 0.2;
    net n;
    n.p[0] = hess_param_new(ctx, 2, SHP(4, 3), w1);
    n.p[1] = hess_param_new(ctx, 1, SHP(4), VAL(0.0, 0.05, 0.1, 0.15));
    n.p[2] = hess_param_new(ctx, 2, SHP(5, 4), w2);
    n.p[3] = hess_param_new(ctx, 1, SHP(5), VAL(0.0, 0.01, 0.02, 0.03, 0.04));
    n.x = hess_tensor_new(ctx, 1, SHP(3), VAL(1, 2, 3));
    n.y = hess_tensor_new(ctx, 1, SHP(5), VAL(1, 1, 5, 7, 8));
    assert_ok(ctx, hess_context_status(ctx));
    return n;
}

static hess_tensor *net_loss(hess_context *ctx, size_t n, hess_tensor *const p[], void *user)
{
    (void)n;
    const net *m = user;
    hess_tensor *h = hess_tanh(ctx, hess_linear(ctx, m->x, p[0], p[1]));
    return hess_mse_loss(ctx, hess_linear(ctx, h, p[2], p[3]), m->y);
}

/* A user op for the rows of hess_op_register and hess_op_apply: out = 2 a. */
static hess_status
twice_forward(size_t n, const hess_op_array src[], const hess_op_array *out, double *y, void *user)
{
    (void)n;
    (void)user;
    for (int64_t i = 0; i < out->numel; i++)
        y[i] = 2.0 * src[0].data[i];
    return HESS_OK;
}

static hess_status twice_vjp(hess_context *ctx,
                             hess_tensor *out,
                             size_t n,
                             hess_tensor *const src[],
                             hess_tensor *g,
                             hess_tensor *grads[],
                             void *user)
{
    (void)out;
    (void)n;
    (void)src;
    (void)user;
    grads[0] = hess_scale(ctx, g, 2.0);
    return HESS_OK;
}

static const hess_op twice_op = {.name = "twice",
                                 .arity = 1,
                                 .flags = HESS_OP_ELEMENTWISE,
                                 .forward = twice_forward,
                                 .vjp = twice_vjp};

/* ------------------------------------------------------------------------ */
/* Context, blocks, tape table                                              */
/* ------------------------------------------------------------------------ */

/* "hess_context_create: two allocations; kept: the context (about 1 KiB)
 * and its first block (64 KiB by default)"; "hess_context_destroy: frees
 * everything"; hess_context_bytes() is what is held from the allocator. */
static void test_docs_create_and_destroy(void **state)
{
    (void)state;
    const size_t blocks[2] = {0, 4 * KIB}; /* 0: the default, 64 KiB */
    for (int i = 0; i < 2; i++) {
        counter c = {0, 0, 0};
        hess_context *ctx = counted_context(&c, blocks[i]);
        const size_t block = blocks[i] ? blocks[i] : 64 * KIB;
        assert_int_equal(c.n_alloc, 2);
        assert_int_equal(hess_context_bytes(ctx), c.live);
        assert_true(hess_context_bytes(ctx) > block);
        assert_true(hess_context_bytes(ctx) <= block + 2 * KIB);
        assert_true(sizeof(hess_context) >= KIB / 2 &&
                    sizeof(hess_context) <= KIB + KIB / 4); /* "about 1 KiB" */
        hess_tensor *t = hess_tensor_new(ctx, 1, SHP(3), VAL(1, 2, 3));
        assert_non_null(hess_exp(ctx, t));
        assert_int_equal(hess_context_bytes(ctx), c.live);
        hess_context_destroy(ctx);
        assert_int_equal(c.live, 0);
        assert_int_equal(c.n_alloc, c.n_free);
    }
}

/* "The node table is allocated with the first tensor for 256 nodes (2 KiB)
 * and doubles whenever the tape outgrows it; it never shrinks." */
static void test_docs_tape_table(void **state)
{
    (void)state;
    hess_context *ctx = big_context();
    const size_t b0 = hess_context_bytes(ctx);
    const hess_mark empty = hess_context_mark(ctx);
    assert_non_null(hess_scalar(ctx, 1.0));
    assert_int_equal(hess_context_bytes(ctx), b0 + 256 * sizeof(void *));
    for (int i = 1; i < 256; i++)
        assert_non_null(hess_scalar(ctx, 1.0));
    assert_int_equal(hess_context_bytes(ctx), b0 + 256 * sizeof(void *));
    assert_non_null(hess_scalar(ctx, 1.0)); /* the 257th node */
    assert_int_equal(hess_context_bytes(ctx), b0 + 512 * sizeof(void *));
    for (int i = 257; i < 513; i++)
        assert_non_null(hess_scalar(ctx, 1.0));
    assert_int_equal(hess_context_bytes(ctx), b0 + 1024 * sizeof(void *));
    /* a rewind to the empty tape keeps the table */
    assert_int_equal(hess_context_rewind(ctx, empty), HESS_OK);
    assert_int_equal(hess_context_bytes(ctx), b0 + 1024 * sizeof(void *));
    hess_context_destroy(ctx);
}

/* "A block that is full is followed by a new one, twice the size of the last
 * or the size of the request if that is larger; hess_context_rewind() empties
 * blocks for reuse, it does not free them" -- and so, README and guide: "a
 * training loop that marks, builds, differentiates, updates and rewinds calls
 * the allocator only in its first iteration". */
static void test_docs_blocks_and_training_loop(void **state)
{
    (void)state;
    counter c = {0, 0, 0};
    hess_context *ctx = counted_context(&c, 4 * KIB);
    assert_non_null(hess_scalar(ctx, 1.0)); /* the node table */
    const hess_mark m0 = hess_context_mark(ctx);
    size_t b = hess_context_bytes(ctx);
    /* 2 KiB values: the first block has room for one such tensor, not two */
    assert_non_null(hess_tensor_new(ctx, 1, SHP(256), NULL));
    assert_int_equal(hess_context_bytes(ctx), b);
    assert_non_null(hess_tensor_new(ctx, 1, SHP(256), NULL));
    const size_t grew = hess_context_bytes(ctx) - b;
    assert_true(grew >= 8 * KIB && grew <= 8 * KIB + 128); /* twice the 4 KiB block */
    b = hess_context_bytes(ctx);
    /* larger than twice the last block: the request's size */
    assert_non_null(hess_tensor_new(ctx, 1, SHP(8 * 1024), NULL));
    const size_t grew2 = hess_context_bytes(ctx) - b;
    assert_true(grew2 >= 64 * KIB && grew2 <= 64 * KIB + 256);
    b = hess_context_bytes(ctx);
    assert_int_equal(hess_context_rewind(ctx, m0), HESS_OK);
    assert_int_equal(hess_context_bytes(ctx), b); /* kept for reuse */
    assert_int_equal(hess_context_bytes(ctx), c.live);

    /* The training loop of the guide, "Scopes: mark and rewind". */
    net m = make_net(ctx);
    const hess_mark scope = hess_context_mark(ctx);
    size_t allocs_after_first = 0;
    for (int step = 0; step < 5; step++) {
        const size_t before = c.n_alloc;
        hess_tensor *loss = net_loss(ctx, 4, m.p, &m);
        hess_tensor *g[4];
        assert_ok(ctx, hess_grad(ctx, loss, 4, m.p, g, 0));
        for (int i = 0; i < 4; i++) {
            double w[20];
            const double *pw = hess_tensor_data(m.p[i]), *pg = hess_tensor_data(g[i]);
            for (int64_t j = 0; j < hess_tensor_numel(m.p[i]); j++)
                w[j] = pw[j] - 0.01 * pg[j];
            assert_ok(ctx, hess_param_set(ctx, m.p[i], w));
        }
        assert_ok(ctx, hess_context_rewind(ctx, scope));
        if (step > 0)
            allocs_after_first += c.n_alloc - before;
    }
    assert_int_equal(allocs_after_first, 0);
    hess_context_destroy(ctx);
    assert_int_equal(c.live, 0);
}

/* ------------------------------------------------------------------------ */
/* The cost table's "kept" column, row by row                               */
/* ------------------------------------------------------------------------ */

/* Rows "nothing": version, build information, status strings, mark, bytes, status, errmsg,
 * clear_error, the accessors, hess_param_count, hess_param_set,
 * hess_ref_find; "hess_context_rewind: frees what was made after the mark,
 * keeps the blocks and the node table". */
static void test_docs_kept_nothing(void **state)
{
    (void)state;
    hess_context *ctx = big_context();
    net m = make_net(ctx);
    snap s = take(ctx);
    assert_true(hess_version() > 0);
    assert_non_null(hess_version_string());
    assert_non_null(hess_build_info());
    assert_non_null(hess_status_str(HESS_ERR_SHAPE));
    (void)hess_context_mark(ctx);
    (void)hess_context_bytes(ctx);
    (void)hess_context_status(ctx);
    (void)hess_context_errmsg(ctx);
    hess_context_clear_error(ctx);
    assert_int_equal(hess_tensor_ndim(m.p[0]), 2);
    assert_non_null(hess_tensor_shape(m.p[0]));
    assert_int_equal(hess_tensor_numel(m.p[0]), 12);
    assert_non_null(hess_tensor_data(m.p[0]));
    assert_int_equal(hess_tensor_is_param(m.p[0]), 1);
    assert_int_equal(hess_param_count(4, m.p), 41);
    assert_ok(ctx, hess_param_set(ctx, m.p[1], VAL(0.1, 0.2, 0.3, 0.4)));
    assert_nothing_kept(ctx, s, "the O(1) calls and hess_param_set");

    hess_named_tensor items[1] = {{"W1", m.p[0]}};
    const hess_ref_file file = {"", "", 1, items};
    assert_ptr_equal(hess_ref_find(&file, "W1"), m.p[0]);
    assert_nothing_kept(ctx, s, "hess_ref_find");

    /* rewind: the arena and tape back to the mark, the bytes held unchanged */
    const hess_mark mk = hess_context_mark(ctx);
    for (int i = 0; i < 300; i++) /* past the 256-node table, into new memory */
        assert_non_null(hess_tensor_new(ctx, 1, SHP(64), NULL));
    const size_t held = hess_context_bytes(ctx);
    assert_true(held > s.bytes);
    assert_ok(ctx, hess_context_rewind(ctx, mk));
    snap r = take(ctx);
    assert_int_equal(r.bytes, held);
    assert_int_equal(r.mk.used, mk.used);
    assert_int_equal(r.mk.nodes, mk.nodes);
    hess_context_destroy(ctx);
}

/* "hess_tensor_new, hess_param_new, hess_scalar: one node with its values";
 * "elementwise ops (unary, binary and hess_where), hess_scale, hess_sum,
 * hess_sum_to, hess_broadcast_to, hess_transpose, hess_permute, hess_slice,
 * hess_gather, activations, hess_detach, hess_log_softmax, hess_mse_loss,
 * hess_matmul, hess_linear, hess_op_apply: one node with its values";
 * "hess_reshape: one node, which shares its source's values (a parameter's
 * are copied); a reshape back to the shape of a reshape's source returns that
 * source". */
static void test_docs_kept_one_node(void **state)
{
    (void)state;
    hess_context *ctx = big_context();
    net m = make_net(ctx);
    hess_tensor *x = m.x, *W = m.p[0];
    hess_tensor *x2 = hess_broadcast_to(ctx, x, 2, SHP(2, 3));
    hess_tensor *p2 = hess_param_new(ctx, 2, SHP(2, 3), VAL(0.1, -0.2, 0.3, 0.4, 0.5, -0.6));
    hess_tensor *cond = hess_tensor_new(ctx, 2, SHP(2, 3), VAL(1, 0, 1, 0, 1, 0));
    hess_tensor *index = hess_tensor_new(ctx, 2, SHP(2, 2), VAL(0, 2, 1, 1));
    const hess_op_handle *twice = NULL;
    assert_ok(ctx, hess_op_register(ctx, &twice_op, &twice));
    assert_non_null(x2);
    snap s;
#define ONE(expr)                                                                                  \
    do {                                                                                           \
        s = take(ctx);                                                                             \
        assert_non_null(expr);                                                                     \
        assert_one_node(ctx, s, #expr);                                                            \
    } while (0)
    ONE(hess_tensor_new(ctx, 2, SHP(3, 5), NULL));
    ONE(hess_param_new(ctx, 1, SHP(7), NULL));
    ONE(hess_scalar(ctx, 2.0));
    ONE(hess_add(ctx, x, x));
    ONE(hess_sub(ctx, x, x));
    ONE(hess_mul(ctx, x2, x));
    ONE(hess_div(ctx, x, x));
    ONE(hess_neg(ctx, x));
    ONE(hess_scale(ctx, x, 2.0));
    ONE(hess_sum(ctx, x2));
    ONE(hess_sum_to(ctx, x2, 1, SHP(3)));
    ONE(hess_broadcast_to(ctx, x, 2, SHP(4, 3)));
    ONE(hess_transpose(ctx, W));
    ONE(hess_exp(ctx, x));
    ONE(hess_log(ctx, x));
    ONE(hess_tanh(ctx, x));
    ONE(hess_sigmoid(ctx, x));
    ONE(hess_relu(ctx, x));
    ONE(hess_softplus(ctx, x));
    ONE(hess_square(ctx, x));
    ONE(hess_sqrt(ctx, x));
    ONE(hess_pow(ctx, x, 1.5));
    ONE(hess_sin(ctx, x));
    ONE(hess_cos(ctx, x));
    ONE(hess_log1p(ctx, x));
    ONE(hess_expm1(ctx, x));
    ONE(hess_reciprocal(ctx, x));
    ONE(hess_rsqrt(ctx, x));
    ONE(hess_erf(ctx, x));
    ONE(hess_abs(ctx, p2));
    ONE(hess_clamp(ctx, p2, -0.1, 0.2));
    ONE(hess_silu(ctx, p2));
    ONE(hess_gelu(ctx, p2));
    ONE(hess_gelu_tanh(ctx, p2));
    ONE(hess_elu(ctx, p2, 0.5));
    ONE(hess_leaky_relu(ctx, p2, 0.01));
    ONE(hess_detach(ctx, p2));
    ONE(hess_maximum(ctx, p2, x2));
    ONE(hess_minimum(ctx, p2, x));
    ONE(hess_where(ctx, cond, p2, x2));
    ONE(hess_pow_t(ctx, x2, p2));
    ONE(hess_permute(ctx, p2, (const int[]){1, 0}));
    ONE(hess_permute(ctx, x2, (const int[]){1, 0}));
    ONE(hess_slice(ctx, p2, 1, 0, 2, 1));
    ONE(hess_slice(ctx, x2, -1, -2, 100, 1));
    ONE(hess_gather(ctx, p2, 1, index));
    ONE(hess_op_apply(ctx, twice, 1, &p2));
    ONE(hess_log_softmax(ctx, x2, 1));
    ONE(hess_mse_loss(ctx, x2, x2));
    ONE(hess_matmul(ctx, W, x));
    ONE(hess_matmul(ctx, m.p[2], W));
    ONE(hess_linear(ctx, x, W, m.p[1]));
    ONE(hess_linear(ctx, x2, W, NULL));
    ONE(hess_reshape(ctx, m.p[1], 2, SHP(2, 2))); /* a parameter's values are copied */
#undef ONE

    /* a reshape of a constant: one node sharing its source's values */
    s = take(ctx);
    hess_tensor *r = hess_reshape(ctx, x2, 1, SHP(6));
    assert_non_null(r);
    kept k = kept_between(ctx, s, take(ctx));
    assert_int_equal(k.nodes, 1);
    assert_int_equal(k.view_nodes, 1);
    assert_int_equal(k.extra, 0);
    /* and back to its source's shape: the source itself, nothing kept */
    s = take(ctx);
    assert_ptr_equal(hess_reshape(ctx, r, 2, SHP(2, 3)), x2);
    assert_nothing_kept(ctx, s, "a reshape back");

    /* "a batched product of one matrix with a batch of matrices
     * ([m,k] x [b,k,n]) may also keep a workspace of up to the sizes of the
     * result and the batch": here, below the AVX2 kernel's 4 rows and BLAS's
     * 4096 multiply-adds, it does, whatever the kernels. */
    hess_tensor *A = hess_tensor_new(ctx, 2, SHP(3, 3), NULL);
    hess_tensor *B = hess_tensor_new(ctx, 3, SHP(2, 3, 3), NULL);
    s = take(ctx);
    hess_tensor *AB = hess_matmul(ctx, A, B);
    assert_non_null(AB);
    k = kept_between(ctx, s, take(ctx));
    assert_int_equal(k.nodes, 1);
    assert_true(k.extra > 0);
    assert_true(k.extra <=
                align_up((size_t)(hess_tensor_numel(AB) + hess_tensor_numel(B)) * sizeof(double)));
    hess_context_destroy(ctx);
}

/* "hess_reshape, hess_squeeze, hess_unsqueeze (and a hess_permute that moves
 * only dims of size 1, a hess_slice that selects everything): one node that
 * shares its source's values (a parameter's are copied)"; "hess_index_select:
 * one node with its values, and a copy of the indices"; "hess_cat: n - 1
 * nodes with their values; for n = 1, one node as hess_reshape";
 * "hess_stack: 2n - 1 nodes: the n sources unsqueezed and hess_cat's n - 1;
 * and the list of the n sources". */
static void test_docs_kept_views_and_joins(void **state)
{
    (void)state;
    hess_context *ctx = big_context();
    hess_tensor *c = hess_tensor_new(ctx, 3, SHP(2, 1, 3), VAL(1, 2, 3, 4, 5, 6));
    hess_tensor *p = hess_param_new(ctx, 2, SHP(2, 3), VAL(1, 2, 3, 4, 5, 6));
    assert_ok(ctx, hess_context_status(ctx));
    snap s;
    kept k;
#define VIEW(expr)                                                                                 \
    do {                                                                                           \
        s = take(ctx);                                                                             \
        assert_non_null(expr);                                                                     \
        k = kept_between(ctx, s, take(ctx));                                                       \
        if (k.nodes != 1 || k.view_nodes != 1 || k.extra != 0 || k.bytes != 0)                     \
            fail_msg("%s: %lld nodes (%zu views), %zu extra arena bytes; expected one view",       \
                     #expr, (long long)k.nodes, k.view_nodes, k.extra);                            \
    } while (0)
    VIEW(hess_squeeze(ctx, c, 1));
    VIEW(hess_squeeze(ctx, c, 0)); /* a dim that is not 1: a's shape */
    VIEW(hess_unsqueeze(ctx, c, -1));
    VIEW(hess_reshape(ctx, c, 2, SHP(3, -1)));
    VIEW(hess_permute(ctx, c, (const int[]){1, 0, 2})); /* moves only the dim of size 1 */
    VIEW(hess_slice(ctx, c, 2, 0, 3, 1));               /* everything */
    VIEW(hess_cat(ctx, 1, &c, 0));
#undef VIEW
    /* of a parameter: one node with its values */
    s = take(ctx);
    assert_non_null(hess_unsqueeze(ctx, p, 0));
    assert_one_node(ctx, s, "hess_unsqueeze of a parameter");
    s = take(ctx);
    assert_non_null(hess_squeeze(ctx, p, 0));
    assert_one_node(ctx, s, "hess_squeeze of a parameter");

    /* index_select: the node and the n indices */
    s = take(ctx);
    assert_non_null(hess_index_select(ctx, p, 1, 5, (const int64_t[]){2, 0, 2, 1, 1}));
    k = kept_between(ctx, s, take(ctx));
    assert_int_equal(k.nodes, 1);
    assert_int_equal(k.view_nodes, 0);
    assert_int_equal(k.extra, align_up(5 * sizeof(int64_t)));

    /* cat: n - 1 nodes; stack: 2n - 1 nodes and the list of its sources */
    hess_tensor *ts[5] = {p, p, p, p, p};
    for (size_t n = 2; n <= 5; n++) {
        s = take(ctx);
        assert_non_null(hess_cat(ctx, n, ts, 1));
        k = kept_between(ctx, s, take(ctx));
        assert_int_equal(k.nodes, (int64_t)n - 1);
        assert_int_equal(k.view_nodes, 0);
        assert_int_equal(k.extra, 0);
        assert_int_equal(k.bytes, 0);
        s = take(ctx);
        assert_non_null(hess_stack(ctx, n, ts, 0));
        k = kept_between(ctx, s, take(ctx));
        assert_int_equal(k.nodes, 2 * (int64_t)n - 1);
        assert_int_equal(k.extra, align_up(n * sizeof(hess_tensor *)));
        assert_int_equal(k.bytes, 0);
    }
    hess_context_destroy(ctx);
}

/* "hess_mean, hess_sum_axis, hess_mean_axis, hess_softmax,
 * hess_cross_entropy, hess_bce_with_logits; the reductions over axes
 * (hess_sum_axes, hess_mean_axes, hess_amax, hess_amin, hess_logsumexp,
 * hess_var, hess_std), hess_norm; the losses with options: a few nodes (at
 * most 10) with their values". */
static void test_docs_kept_few_nodes(void **state)
{
    (void)state;
    hess_context *ctx = big_context();
    /* a node table for all the nodes below, so that it does not grow in a call */
    const hess_mark empty = hess_context_mark(ctx);
    for (int i = 0; i < 1024; i++)
        assert_non_null(hess_scalar(ctx, 0.0));
    assert_ok(ctx, hess_context_rewind(ctx, empty));
    hess_tensor *a = hess_tensor_new(ctx, 2, SHP(2, 3), VAL(0.1, 0.2, 0.3, 0.4, 0.5, 0.6));
    hess_tensor *t = hess_tensor_new(ctx, 1, SHP(2), VAL(0, 2));
    hess_tensor *y = hess_tensor_new(ctx, 2, SHP(2, 3), VAL(0, 1, 0, 1, 1, 0));
    snap s;
#define FEW(expr)                                                                                  \
    do {                                                                                           \
        s = take(ctx);                                                                             \
        assert_non_null(expr);                                                                     \
        kept k_ = kept_between(ctx, s, take(ctx));                                                 \
        if (k_.nodes < 1 || k_.nodes > 10 || k_.extra != 0 || k_.bytes != 0)                       \
            fail_msg("%s: %lld nodes, %zu extra arena bytes; expected 1 to 10 nodes", #expr,       \
                     (long long)k_.nodes, k_.extra);                                               \
    } while (0)
    FEW(hess_mean(ctx, a));
    FEW(hess_sum_axis(ctx, a, 0));
    FEW(hess_mean_axis(ctx, a, -1));
    FEW(hess_softmax(ctx, a, 1));
    FEW(hess_cross_entropy(ctx, a, t));
    FEW(hess_bce_with_logits(ctx, a, y));

    hess_tensor *q = hess_param_new(ctx, 4, SHP(2, 3, 4, 5), NULL);
    hess_tensor *pa = hess_param_new(ctx, 2, SHP(2, 3), VAL(0.1, 0.2, 0.3, 0.4, 0.5, 0.6));
    hess_tensor *pv = hess_param_new(ctx, 1, SHP(3), VAL(0.1, 0.2, 0.3));
    hess_tensor *w = hess_tensor_new(ctx, 1, SHP(3), VAL(1, 2, 0.5));
    hess_tensor *t0 = hess_scalar(ctx, 1);
    assert_ok(ctx, hess_context_status(ctx));
    const int ax[3] = {1, 3, -2};
    for (size_t na = 0; na <= 3; na++) {
        for (int keep = 0; keep < 2; keep++) {
            FEW(hess_sum_axes(ctx, q, na, ax, keep));
            FEW(hess_mean_axes(ctx, q, na, ax, keep));
            FEW(hess_amax(ctx, q, na, ax, keep));
            FEW(hess_amin(ctx, q, na, ax, keep));
            FEW(hess_logsumexp(ctx, q, na, ax, keep));
            FEW(hess_var(ctx, q, na, ax, 1, keep));
            FEW(hess_std(ctx, q, na, ax, 0, keep));
        }
    }
    FEW(hess_norm(ctx, q, 1));
    FEW(hess_norm(ctx, q, 2));
    FEW(hess_norm(ctx, q, INFINITY));
    for (int r = HESS_REDUCE_MEAN; r <= HESS_REDUCE_NONE; r++) {
        const hess_loss_opts plain = {.reduction = r, .delta = 0.5};
        const hess_loss_opts all = {.reduction = r,
                                    .weight = w,
                                    .use_ignore_index = 1,
                                    .ignore_index = 2,
                                    .label_smoothing = 0.1};
        const hess_loss_opts nll = {.reduction = r, .weight = w, .use_ignore_index = 1};
        const hess_loss_opts bw = {.reduction = r, .weight = w};
        FEW(hess_mse_loss_ex(ctx, pa, a, &plain));
        FEW(hess_cross_entropy_ex(ctx, pa, t, &all));
        FEW(hess_cross_entropy_ex(ctx, pv, t0, &all));
        FEW(hess_nll_loss(ctx, pa, t, &nll));
        FEW(hess_nll_loss(ctx, pv, t0, &nll));
        FEW(hess_l1_loss(ctx, pa, a, &(hess_loss_opts){.reduction = r}));
        FEW(hess_huber_loss(ctx, pa, a, &plain));
        FEW(hess_bce(ctx, pa, y, &bw));
        FEW(hess_bce_with_logits_ex(ctx, pa, y, &bw));
    }
#undef FEW
    hess_context_destroy(ctx);
}

/* "hess_conv2d: one node with its values, its geometry (96 bytes) and a
 * workspace of one sample's unfolded group, (C/groups) kh kw OH OW doubles
 * (none for a 1x1 kernel with stride 1 and no padding)"; "hess_avg_pool2d,
 * hess_max_pool2d: one node with its values and its geometry (96 bytes);
 * hess_max_pool2d also the position of each window's maximum, 8 bytes per
 * element of the result". */
static void test_docs_kept_conv_and_pool(void **state)
{
    (void)state;
    hess_context *ctx = big_context();
    hess_tensor *x = hess_param_new(ctx, 4, SHP(2, 4, 7, 6), NULL);
    hess_tensor *w = hess_param_new(ctx, 4, SHP(6, 2, 3, 2), NULL);
    hess_tensor *w1 = hess_param_new(ctx, 4, SHP(3, 4, 1, 1), NULL);
    hess_tensor *b = hess_param_new(ctx, 1, SHP(6), NULL);
    assert_ok(ctx, hess_context_status(ctx));
    const size_t geometry = 96;
    assert_true(align_up(sizeof(hess__conv_par)) == geometry);
    /* groups 2: C/groups = 2; stride (2,1), padding (1,0), dilation (1,2):
     * OH = (7 + 2 - 2 - 1) / 2 + 1 = 4, OW = (6 - 2 - 1) / 1 + 1 = 4 */
    const hess_conv_opts o = {.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}, .groups = 2};
    snap s = take(ctx);
    hess_tensor *y = hess_conv2d(ctx, x, w, b, &o);
    assert_non_null(y);
    assert_int_equal(hess_tensor_shape(y)[2], 4);
    assert_int_equal(hess_tensor_shape(y)[3], 4);
    kept k = kept_between(ctx, s, take(ctx));
    assert_int_equal(k.nodes, 1);
    assert_int_equal(k.view_nodes, 0);
    assert_int_equal(k.extra, geometry + align_up((size_t)(2 * 3 * 2 * 4 * 4) * sizeof(double)));
    assert_int_equal(k.bytes, 0);
    /* a 1x1 kernel, stride 1, no padding: no workspace */
    s = take(ctx);
    assert_non_null(hess_conv2d(ctx, x, w1, NULL, NULL));
    k = kept_between(ctx, s, take(ctx));
    assert_int_equal(k.nodes, 1);
    assert_int_equal(k.extra, geometry);

    s = take(ctx);
    assert_non_null(hess_avg_pool2d(ctx, x, 2, 3, 0, 0));
    k = kept_between(ctx, s, take(ctx));
    assert_int_equal(k.nodes, 1);
    assert_int_equal(k.extra, geometry);
    s = take(ctx);
    hess_tensor *mp = hess_max_pool2d(ctx, x, 3, 2, 1, 2);
    assert_non_null(mp);
    k = kept_between(ctx, s, take(ctx));
    assert_int_equal(k.nodes, 1);
    assert_int_equal(k.extra, geometry + align_up((size_t)hess_tensor_numel(mp) * sizeof(int64_t)));
    assert_int_equal(k.bytes, 0);
    hess_context_destroy(ctx);
}

/* "hess_op_register: nothing in the arena; the registration, about 250
 * bytes outside it, held until the context is destroyed" (and the guide's
 * Memory paragraph: hess_context_bytes() counts the registrations of user
 * ops); a rewind keeps it.  "hess_load_idx: the loaded tensor, one node
 * with its values." */
static void test_docs_kept_by_register_and_load_idx(void **state)
{
    (void)state;
    counter c = {0, 0, 0};
    hess_context *ctx = counted_context(&c, 0);
    assert_non_null(hess_scalar(ctx, 1.0)); /* the node table */
    const hess_mark mk = hess_context_mark(ctx);
    snap s = take(ctx);
    const hess_op_handle *h = NULL;
    assert_ok(ctx, hess_op_register(ctx, &twice_op, &h));
    snap r = take(ctx);
    assert_true(s.mk.block == r.mk.block && s.mk.used == r.mk.used && s.mk.nodes == r.mk.nodes);
    assert_true(r.bytes > s.bytes);
    assert_true(r.bytes - s.bytes >= 200 && r.bytes - s.bytes <= 300); /* "about 250 bytes" */
    assert_int_equal(hess_context_bytes(ctx), c.live);
    assert_ok(ctx, hess_context_rewind(ctx, mk));
    assert_int_equal(hess_context_bytes(ctx), r.bytes);
    hess_tensor *a = hess_tensor_new(ctx, 1, SHP(3), VAL(1, 2, 3));
    assert_non_null(hess_op_apply(ctx, h, 1, &a)); /* the handle outlives the rewind */

    /* an IDX file of unsigned bytes [2,3] */
    const char *path = "test_docs.idx";
    static const unsigned char idx[] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255};
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(idx, 1, sizeof idx, f), sizeof idx);
    assert_int_equal(fclose(f), 0);
    s = take(ctx);
    hess_tensor *t = hess_load_idx(ctx, path, 0);
    assert_non_null(t);
    assert_true(hess_tensor_data(t)[5] == 255.0);
    assert_one_node(ctx, s, "hess_load_idx");
    remove(path);
    hess_context_destroy(ctx);
    assert_int_equal(c.live, 0);
}

/* "hess_grad, hess_vjp: the gradient nodes, hess_grad's seed (one node) and
 * two tables over the tape from the first of the wrt tensors to the output,
 * 9 bytes per node". */
static void test_docs_kept_by_grad(void **state)
{
    (void)state;
    hess_context *ctx = big_context();
    net m = make_net(ctx);
    hess_tensor *loss = net_loss(ctx, 4, m.p, &m);
    assert_non_null(loss);
    const size_t span = (size_t)(loss->id - m.p[0]->id + 1);
    const size_t tables = align_up(span + 1) + align_up((span + 1) * sizeof(hess_tensor *));
    const unsigned flags[2] = {0, HESS_CREATE_GRAPH};
    for (int f = 0; f < 2; f++) {
        hess_tensor *g[4];
        snap s = take(ctx);
        assert_ok(ctx, hess_grad(ctx, loss, 4, m.p, g, flags[f]));
        kept k = kept_between(ctx, s, take(ctx));
        assert_int_equal(k.extra, tables);
        assert_int_equal(k.bytes, 0);
        /* the seed is the first new node, the gradients are among the new ones */
        const hess_tensor *seed = ctx->nodes[s.mk.nodes];
        assert_int_equal(hess_tensor_numel(seed), 1);
        assert_true(hess_tensor_data(seed)[0] == 1.0);
        for (int i = 0; i < 4; i++)
            assert_true(g[i]->id >= s.mk.nodes);
    }
    hess_tensor *seed = hess_scalar(ctx, 1.0), *g[4];
    snap s = take(ctx);
    assert_ok(ctx, hess_vjp(ctx, 1, &loss, &seed, 4, m.p, g, 0));
    kept k = kept_between(ctx, s, take(ctx));
    assert_int_equal(k.extra, tables);
    hess_context_destroy(ctx);
}

/* Rows "nothing (rewound)": hess_recompute, hess_hvp, the Hessian
 * functions, hess_hvp_batch, the writers of files, hess_check_derivatives;
 * "hess_hessian_diag_tensors: the result tensors (one node per parameter)";
 * "hess_load_npy: the loaded tensor"; "hess_load_ref: the loaded tensors,
 * their names, the tensor array and the case and model strings". */
static void test_docs_kept_after_rewinding_calls(void **state)
{
    (void)state;
    hess_context *ctx = big_context();
    net m = make_net(ctx);
    hess_tensor *loss = net_loss(ctx, 4, m.p, &m);
    hess_tensor *g[4];
    assert_ok(ctx, hess_grad(ctx, loss, 4, m.p, g, HESS_CREATE_GRAPH));
    double v[41], hv[41], H[41 * 41], d[41];
    for (int i = 0; i < 41; i++)
        v[i] = 1.0 / (i + 1);
    hess_hessian_opts opts = {0};
    opts.block_rows = 7;
    char npy[256], ref[256], svg[256];
    snprintf(npy, sizeof npy, "%s", "test_docs.npy");
    snprintf(ref, sizeof ref, "%s", "test_docs.ref");
    snprintf(svg, sizeof svg, "%s", "test_docs.svg");
    const hess_named_tensor items[2] = {{"param:W1", m.p[0]}, {"loss", loss}};
    const hess_ref_file rf = {"docs", "Linear(3,4), MSE", 2, items};
    hess_check_report rep;

    for (int round = 0; round < 2; round++) { /* the first call and a repeated one */
        snap s = take(ctx);
        assert_ok(ctx, hess_recompute(ctx));
        assert_ok(ctx, hess_hvp(ctx, loss, 4, m.p, v, hv));
        assert_ok(ctx, hess_hessian(ctx, loss, 4, m.p, H));
        assert_ok(ctx, hess_hessian_ex(ctx, loss, 4, m.p, &opts, H));
        assert_ok(ctx, hess_hessian_diag(ctx, loss, 4, m.p, d));
        assert_ok(ctx, hess_hessian_diag_ex(ctx, loss, 4, m.p, &opts, d));
        assert_ok(ctx, hess_hessian_block(ctx, loss, m.p[0], m.p[2], H));
        assert_ok(ctx, hess_hessian_block_ex(ctx, loss, m.p[2], m.p[2], &opts, H));
        assert_ok(ctx, hess_hvp_batch(ctx, loss, 4, m.p, 1, v, NULL, hv));
        assert_ok(ctx, hess_save_npy(ctx, npy, m.p[0]));
        assert_ok(ctx, hess_save_npy_array(ctx, npy, 2, SHP(41, 41), H));
        assert_ok(ctx, hess_save_ref(ctx, ref, &rf));
        assert_ok(ctx, hess_write_svg_heatmap(ctx, svg, 41, H, 0, NULL, NULL, "H"));
        const hess_series curve = {"diagonal", 41, v, d};
        assert_ok(ctx, hess_write_svg_lines(ctx, svg, "H", "i", "H_ii", 1, &curve));
        assert_ok(ctx, hess_check_derivatives(ctx, net_loss, &m, 4, m.p, NULL, &rep));
        assert_true(rep.ok);
        assert_nothing_kept(ctx, s, "the rewinding calls");

        /* forward mode, the GGN, the curvature functions, flat vectors */
        double J[5 * 41], x[41], ev[2], grid[3] = {-1, 0, 1}, dens[3], tr, se, flat[41];
        hess_solve_info info;
        hess_tensor *out = loss->src[0]; /* the network's output (white-box) */
        hess_hessian_opts co = {0};
        co.n_probes = 8;
        co.lanczos_steps = 10;
        s = take(ctx);
        assert_ok(ctx, hess_jvp(ctx, loss, 4, m.p, v, hv));
        assert_ok(ctx, hess_jacobian(ctx, out, 4, m.p, J));
        assert_ok(ctx, hess_hvp_fwd(ctx, loss, 4, m.p, v, hv));
        assert_ok(ctx, hess_ggn_vp(ctx, loss, out, 4, m.p, v, hv));
        assert_ok(ctx, hess_ggn_diag(ctx, loss, out, 4, m.p, d));
        assert_ok(ctx, hess_eigs(ctx, loss, 4, m.p, 2, HESS_EIG_LARGEST, NULL, ev, NULL));
        assert_ok(ctx, hess_spectral_density(ctx, loss, 4, m.p, &co, 3, grid, dens));
        assert_ok(ctx, hess_trace_estimate(ctx, loss, 4, m.p, &co, &tr, &se));
        assert_ok(ctx, hess_diag_estimate(ctx, loss, 4, m.p, &co, d));
        assert_ok(ctx, hess_solve(ctx, loss, 4, m.p, v, 1.0, NULL, x, &info));
        assert_int_equal(hess_params_get(4, m.p, flat), HESS_OK);
        assert_ok(ctx, hess_params_set(ctx, 4, m.p, flat));
        assert_ok(ctx, hess_params_axpy(ctx, 4, m.p, 0.0, flat));
        assert_nothing_kept(ctx, s, "forward mode, the GGN and the curvature functions");

        hess_tensor *dt[4];
        s = take(ctx);
        assert_ok(ctx, hess_hessian_diag_tensors(ctx, loss, 4, m.p, dt));
        kept k = kept_between(ctx, s, take(ctx));
        assert_int_equal(k.nodes, 4);
        assert_int_equal(k.extra, 0);
        for (int i = 0; i < 4; i++)
            assert_int_equal(hess_tensor_numel(dt[i]), hess_tensor_numel(m.p[i]));

        s = take(ctx);
        hess_tensor *loaded = hess_load_npy(ctx, npy, 0);
        assert_non_null(loaded);
        assert_one_node(ctx, s, "hess_load_npy");

        hess_ref_file in;
        s = take(ctx);
        assert_ok(ctx, hess_load_ref(ctx, ref, "param:", &in));
        k = kept_between(ctx, s, take(ctx));
        assert_int_equal(k.nodes, 2);
        assert_true(k.extra > 0); /* the names, the array, the strings */
        assert_true(k.extra <= 4 * KIB);
    }
    remove(npy);
    remove(ref);
    remove(svg);
    hess_context_destroy(ctx);
}

/* "A call repeated on the same shapes -- after a rewind, or a call that
 * rewinds itself -- holds nothing more than the first", and the first may
 * need a new block: with the default 64 KiB block, hess_hessian of the seed
 * network does.  Guide, "Define once, run many times": hess_recompute makes
 * no node, and after the first call allocates nothing. */
static void test_docs_repeated_calls_allocate_nothing(void **state)
{
    (void)state;
    counter c = {0, 0, 0};
    hess_context *ctx = counted_context(&c, 0);
    net m = make_net(ctx);
    hess_tensor *loss = net_loss(ctx, 4, m.p, &m);
    hess_tensor *g[4];
    assert_ok(ctx, hess_grad(ctx, loss, 4, m.p, g, HESS_CREATE_GRAPH));
    double v[41], hv[41], H[41 * 41];
    for (int i = 0; i < 41; i++)
        v[i] = 1.0 / (i + 1);
    const size_t b0 = hess_context_bytes(ctx);
    assert_ok(ctx, hess_hessian(ctx, loss, 4, m.p, H));
    assert_true(hess_context_bytes(ctx) > b0); /* a new block: the sweep needs more */
    hess_check_report rep;
    size_t n_alloc, bytes;
    int64_t nodes;
#define TWICE(call)                                                                                \
    do {                                                                                           \
        assert_ok(ctx, call);                                                                      \
        n_alloc = c.n_alloc;                                                                       \
        bytes = hess_context_bytes(ctx);                                                           \
        nodes = hess_context_mark(ctx).nodes;                                                      \
        assert_ok(ctx, call);                                                                      \
        if (c.n_alloc != n_alloc || hess_context_bytes(ctx) != bytes ||                            \
            hess_context_mark(ctx).nodes != nodes)                                                 \
            fail_msg("%s again: %zu allocations, bytes held %zu -> %zu", #call,                    \
                     c.n_alloc - n_alloc, bytes, hess_context_bytes(ctx));                         \
    } while (0)
    TWICE(hess_param_set(ctx, m.p[0], hess_tensor_data(m.p[0])));
    TWICE(hess_recompute(ctx));
    TWICE(hess_hvp(ctx, loss, 4, m.p, v, hv));
    TWICE(hess_hessian(ctx, loss, 4, m.p, H));
    TWICE(hess_hessian_diag(ctx, loss, 4, m.p, hv));
    TWICE(hess_hessian_block(ctx, loss, m.p[0], m.p[2], H));
    TWICE(hess_hvp_batch(ctx, loss, 4, m.p, 1, v, NULL, hv));
    TWICE(hess_check_derivatives(ctx, net_loss, &m, 4, m.p, NULL, &rep));
#undef TWICE
    hess_context_destroy(ctx);
    assert_int_equal(c.live, 0);
}

/* ------------------------------------------------------------------------ */
/* Examples given in the README and the guide                               */
/* ------------------------------------------------------------------------ */

/* README "Usage": N = 16 for W [4,3] and b [4]; the message of
 * "hess_matmul: inner dimensions differ: [4,3] x [4,5]". */
static void test_docs_readme_usage(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *W = hess_param_new(ctx, 2, SHP(4, 3), NULL);
    hess_tensor *b = hess_param_new(ctx, 1, SHP(4), NULL);
    hess_tensor *params[2] = {W, b};
    assert_int_equal(hess_param_count(2, params), 16);
    assert_null(hess_matmul(ctx, W, hess_tensor_new(ctx, 2, SHP(4, 5), NULL)));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_SHAPE);
    assert_string_equal(hess_context_errmsg(ctx),
                        "hess_matmul: inner dimensions differ: [4,3] x [4,5]");
}

static int count_sweeps(size_t done, size_t total, void *user)
{
    size_t *n = user;
    n[0]++;
    n[1] = done;
    n[2] = total;
    return 0;
}

/* Guide, "The Hessian, step by step": with the default budget the
 * 41-parameter seed network takes all its rows in one sweep (N <= k). */
static void test_docs_seed_network_one_sweep(void **state)
{
    hess_context *ctx = *state;
    net m = make_net(ctx);
    hess_tensor *loss = net_loss(ctx, 4, m.p, &m);
    size_t seen[3] = {0, 0, 0};
    hess_hessian_opts opts = {0};
    opts.progress = count_sweeps;
    opts.user = seen;
    double H[41 * 41];
    assert_ok(ctx, hess_hessian_ex(ctx, loss, 4, m.p, &opts, H));
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 41);
    assert_int_equal(seen[2], 41);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docs_create_and_destroy),
        cmocka_unit_test(test_docs_tape_table),
        cmocka_unit_test(test_docs_blocks_and_training_loop),
        cmocka_unit_test(test_docs_kept_nothing),
        cmocka_unit_test(test_docs_kept_one_node),
        cmocka_unit_test(test_docs_kept_views_and_joins),
        cmocka_unit_test(test_docs_kept_few_nodes),
        cmocka_unit_test(test_docs_kept_conv_and_pool),
        cmocka_unit_test(test_docs_kept_by_register_and_load_idx),
        cmocka_unit_test(test_docs_kept_by_grad),
        cmocka_unit_test(test_docs_kept_after_rewinding_calls),
        cmocka_unit_test(test_docs_repeated_calls_allocate_nothing),
        cmocka_unit_test_setup_teardown(test_docs_readme_usage, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_docs_seed_network_one_sweep, setup_ctx, teardown_ctx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
