/*
 * test_context.c -- the context: creation options and allocator hooks, status
 * strings and version, arena growth, marks and rewinds, the byte limit, error
 * clearing, parameter updates, accessors on NULL, and the training-loop memory
 * rule (after the first iteration of mark / forward / gradient / update /
 * rewind the allocator is never called again).
 */
#include "check.h"
#include "hess_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SHP(...) ((const int64_t[]){__VA_ARGS__})
#define VAL(...) ((const double[]){__VA_ARGS__})

/* ------------------------------------------------------------------------ */
/* A counting allocator on top of cmocka's leak-checking malloc             */
/* ------------------------------------------------------------------------ */

#define MAX_LIVE 256

typedef struct counter {
    size_t n_alloc, n_free; /* calls */
    size_t live_bytes;      /* sum of the sizes of live blocks */
    size_t n_live;
    void *ptr[MAX_LIVE];
    size_t size[MAX_LIVE];
    int bad_free; /* free of an unknown pointer or with a wrong size */
} counter;

static void *c_alloc(size_t size, void *user)
{
    counter *c = user;
    c->n_alloc++;
    void *p = test_malloc(size);
    if (p && c->n_live < MAX_LIVE) {
        c->ptr[c->n_live] = p;
        c->size[c->n_live++] = size;
        c->live_bytes += size;
    }
    return p;
}

static void c_free(void *p, size_t size, void *user)
{
    counter *c = user;
    c->n_free++;
    size_t i = 0;
    while (i < c->n_live && c->ptr[i] != p)
        i++;
    if (i == c->n_live || c->size[i] != size) {
        c->bad_free++;
    } else {
        c->live_bytes -= size;
        c->ptr[i] = c->ptr[c->n_live - 1];
        c->size[i] = c->size[c->n_live - 1];
        c->n_live--;
    }
    test_free(p);
}

static hess_context *counted_context(counter *c, size_t block_bytes, size_t max_bytes)
{
    memset(c, 0, sizeof *c);
    hess_config cfg = {0};
    cfg.alloc = c_alloc;
    cfg.free = c_free;
    cfg.user = c;
    cfg.block_bytes = block_bytes;
    cfg.max_bytes = max_bytes;
    hess_context *ctx = NULL;
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    assert_non_null(ctx);
    return ctx;
}

/* Destroys ctx and checks every allocation came back with its own size. */
static void destroy_counted(hess_context *ctx, counter *c)
{
    hess_context_destroy(ctx);
    assert_int_equal(c->bad_free, 0);
    assert_int_equal(c->n_free, c->n_alloc);
    assert_int_equal(c->live_bytes, 0);
    assert_int_equal(c->n_live, 0);
}

static hess_tensor *mk(hess_context *ctx, int ndim, const int64_t *shape, const double *data)
{
    hess_tensor *t = hess_tensor_new(ctx, ndim, shape, data);
    assert_ok(ctx, hess_context_status(ctx));
    assert_non_null(t);
    return t;
}

static int mark_equal(hess_mark a, hess_mark b)
{
    return a.block == b.block && a.used == b.used && a.nodes == b.nodes && a.ctx_id == b.ctx_id;
}

/* ------------------------------------------------------------------------ */
/* Creation and destruction                                                 */
/* ------------------------------------------------------------------------ */

static void test_context_create_null_cfg(void **state)
{
    (void)state;
    hess_context *ctx = NULL;
    assert_int_equal(hess_context_create(NULL, &ctx), HESS_OK);
    assert_non_null(ctx);
    assert_int_equal(hess_context_status(ctx), HESS_OK);
    assert_string_equal(hess_context_errmsg(ctx), "");
    /* the context and the default 64 KiB first block */
    assert_true(hess_context_bytes(ctx) >= (size_t)64 * 1024);
    hess_tensor *t = hess_scalar(ctx, 2.0);
    assert_non_null(t);
    assert_true(hess_tensor_data(t)[0] == 2.0);
    hess_context_destroy(ctx);

    hess_config zero = {0};
    assert_int_equal(hess_context_create(&zero, &ctx), HESS_OK);
    assert_non_null(ctx);
    hess_context_destroy(ctx);
}

static void test_context_create_with_hooks(void **state)
{
    (void)state;
    counter c;
    hess_context *ctx = counted_context(&c, 0, 0);
    /* one allocation for the context, one for the first block */
    assert_int_equal(c.n_alloc, 2);
    assert_int_equal(c.n_free, 0);
    assert_int_equal(hess_context_bytes(ctx), c.live_bytes);
    assert_true(c.live_bytes >= (size_t)64 * 1024);
    for (int i = 0; i < 300; i++) /* past the tape's first node table */
        assert_non_null(hess_scalar(ctx, (double)i));
    assert_true(c.n_alloc > 2);
    assert_int_equal(hess_context_bytes(ctx), c.live_bytes);
    destroy_counted(ctx, &c);
}

static void test_context_create_block_bytes(void **state)
{
    (void)state;
    counter c;
    hess_context *ctx = counted_context(&c, 4096, 0);
    const size_t small = hess_context_bytes(ctx);
    assert_true(small >= 4096);
    assert_true(small < (size_t)64 * 1024);
    assert_int_equal(small, c.live_bytes);
    destroy_counted(ctx, &c);
}

static void test_context_create_null_out(void **state)
{
    (void)state;
    assert_int_equal(hess_context_create(NULL, NULL), HESS_ERR_ARG);
    counter c;
    memset(&c, 0, sizeof c);
    hess_config cfg = {0};
    cfg.alloc = c_alloc;
    cfg.free = c_free;
    cfg.user = &c;
    assert_int_equal(hess_context_create(&cfg, NULL), HESS_ERR_ARG);
    assert_int_equal(c.n_alloc, 0);
}

static void test_context_create_one_hook(void **state)
{
    (void)state;
    counter c;
    memset(&c, 0, sizeof c);
    hess_context *ctx = NULL;
    hess_config cfg = {0};
    cfg.user = &c;
    cfg.alloc = c_alloc; /* alloc without free */
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_ERR_ARG);
    assert_null(ctx);
    cfg.alloc = NULL;
    cfg.free = c_free; /* free without alloc */
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_ERR_ARG);
    assert_null(ctx);
    assert_int_equal(c.n_alloc, 0);
    assert_int_equal(c.n_free, 0);
}

static void test_context_create_max_bytes_too_small(void **state)
{
    (void)state;
    counter c;
    memset(&c, 0, sizeof c);
    hess_config cfg = {0};
    cfg.alloc = c_alloc;
    cfg.free = c_free;
    cfg.user = &c;
    hess_context *ctx = NULL;
    cfg.max_bytes = 64; /* not even the context fits */
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_ERR_NOMEM);
    assert_null(ctx);
    cfg.max_bytes = 8192; /* the context fits, the default 64 KiB block does not */
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_ERR_NOMEM);
    assert_null(ctx);
    assert_int_equal(c.n_free, c.n_alloc); /* nothing left behind */
    assert_int_equal(c.live_bytes, 0);
}

static void test_context_destroy_null(void **state)
{
    (void)state;
    hess_context_destroy(NULL); /* a no-op, must not crash */
}

/* ------------------------------------------------------------------------ */
/* Status strings and version                                               */
/* ------------------------------------------------------------------------ */

typedef struct status_row {
    hess_status code;
    int value;
    const char *name, *text;
} status_row;

static const status_row status_rows[] = {
#define X_(name, value, text) {name, value, #name, text},
    HESS_STATUS_LIST(X_)
#undef X_
};

static void test_context_status_str_every_code(void **state)
{
    (void)state;
    const size_t n = sizeof status_rows / sizeof status_rows[0];
    assert_true(n >= 9);
    for (size_t i = 0; i < n; i++) {
        const status_row *r = &status_rows[i];
        assert_int_equal((int)r->code, r->value);
        const char *s = hess_status_str(r->code);
        assert_non_null(s);
        if (strcmp(s, r->text) != 0)
            fail_msg("hess_status_str(%s) = \"%s\", expected \"%s\"", r->name, s, r->text);
        assert_true(r->value == 0 ? r->code == HESS_OK : r->value < 0);
        for (size_t j = 0; j < i; j++) { /* values and texts are distinct */
            assert_int_not_equal(status_rows[j].value, r->value);
            assert_string_not_equal(status_rows[j].text, r->text);
        }
    }
    assert_string_equal(hess_status_str(HESS_OK), "success");
    assert_string_equal(hess_status_str(HESS_ERR_NOMEM), "out of memory");
    /* a code outside the list still gets a static, non-empty text */
    const char *u = hess_status_str((hess_status)-99);
    assert_non_null(u);
    assert_true(u[0] != '\0');
    u = hess_status_str((hess_status)7);
    assert_non_null(u);
    assert_true(u[0] != '\0');
}

static void test_context_version(void **state)
{
    (void)state;
    assert_int_equal(hess_version(), HESS_VERSION_NUMBER);
    assert_int_equal(HESS_VERSION_NUMBER,
                     HESS_VERSION_MAJOR * 10000 + HESS_VERSION_MINOR * 100 + HESS_VERSION_PATCH);
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", HESS_VERSION_MAJOR, HESS_VERSION_MINOR,
             HESS_VERSION_PATCH);
    assert_non_null(hess_version_string());
    assert_string_equal(hess_version_string(), want);
    assert_ptr_equal(hess_version_string(), hess_version_string()); /* static storage */
}

/* ------------------------------------------------------------------------ */
/* Arena growth                                                             */
/* ------------------------------------------------------------------------ */

static void test_context_arena_many_tensors(void **state)
{
    (void)state;
    counter c;
    hess_context *ctx = counted_context(&c, 4096, 0);
    const size_t before = hess_context_bytes(ctx);
    enum { N = 2000 };
    static hess_tensor *t[N];
    for (int i = 0; i < N; i++) {
        const double v[3] = {i, -i, 0.5 * i};
        t[i] = mk(ctx, 1, SHP(3), v);
    }
    assert_true(hess_context_bytes(ctx) > before + (size_t)N * 3 * sizeof(double));
    assert_int_equal(hess_context_bytes(ctx), c.live_bytes);
    assert_true(c.n_alloc > 3); /* several blocks and node tables */
    for (int i = 0; i < N; i++) {
        const double *d = hess_tensor_data(t[i]);
        assert_true(d[0] == i && d[1] == -i && d[2] == 0.5 * i);
    }
    /* the tensors are usable in ops across blocks */
    hess_tensor *s = hess_add(ctx, t[0], t[N - 1]);
    assert_non_null(s);
    assert_true(hess_tensor_data(s)[0] == N - 1);
    destroy_counted(ctx, &c);
}

static void test_context_arena_big_tensor(void **state)
{
    (void)state;
    counter c;
    hess_context *ctx = counted_context(&c, 4096, 0);
    hess_tensor *small = mk(ctx, 1, SHP(2), VAL(1, 2));
    enum { BIG = 100000 }; /* 800 kB, far past the 4 kB block */
    hess_tensor *big = hess_tensor_new(ctx, 1, SHP(BIG), NULL);
    assert_non_null(big);
    assert_ok(ctx, hess_context_status(ctx));
    assert_true(hess_context_bytes(ctx) >= (size_t)BIG * sizeof(double));
    for (int64_t i = 0; i < BIG; i++)
        assert_true(hess_tensor_data(big)[i] == 0.0);
    hess_tensor *one = hess_exp(ctx, big);
    assert_non_null(one);
    hess_tensor *s = hess_sum(ctx, one);
    assert_non_null(s);
    assert_true(hess_tensor_data(s)[0] == (double)BIG);
    assert_true(hess_tensor_data(small)[0] == 1.0 && hess_tensor_data(small)[1] == 2.0);
    hess_tensor *after = mk(ctx, 1, SHP(2), VAL(3, 4));
    assert_true(hess_tensor_data(after)[1] == 4.0);
    destroy_counted(ctx, &c);
}

static void test_context_tape_growth(void **state)
{
    hess_context *ctx = *state;
    /* a chain far longer than the first node table */
    hess_tensor *x = mk(ctx, 0, NULL, VAL(0));
    hess_tensor *one = hess_scalar(ctx, 1.0);
    for (int i = 0; i < 3000; i++)
        x = hess_add(ctx, x, one);
    assert_non_null(x);
    assert_ok(ctx, hess_context_status(ctx));
    assert_true(hess_tensor_data(x)[0] == 3000.0);
}

/* ------------------------------------------------------------------------ */
/* Marks and rewinds                                                        */
/* ------------------------------------------------------------------------ */

static void test_context_rewind_invalidates_later_tensors(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 1, SHP(3), VAL(1, 2, 3));
    hess_tensor *p = hess_param_new(ctx, 1, SHP(3), VAL(4, 5, 6));
    hess_tensor *ap = hess_mul(ctx, a, p);
    hess_tensor *y = hess_sum(ctx, ap);
    assert_non_null(y);
    const hess_mark m = hess_context_mark(ctx);
    hess_tensor *b = mk(ctx, 1, SHP(3), VAL(7, 8, 9));
    hess_tensor *q = hess_param_new(ctx, 1, SHP(3), VAL(1, 1, 1));
    hess_tensor *c = hess_add(ctx, a, b);
    assert_non_null(c);
    assert_ok(ctx, hess_context_rewind(ctx, m));
    assert_true(mark_equal(hess_context_mark(ctx), m));

    /* every tensor made after the mark is detected, before any memory is reused */
    assert_null(hess_add(ctx, a, b));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_STATE);
    assert_non_null(strstr(hess_context_errmsg(ctx), "hess_add"));
    assert_non_null(strstr(hess_context_errmsg(ctx), "rewind"));
    hess_context_clear_error(ctx);
    assert_null(hess_sum(ctx, c));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_STATE);
    hess_context_clear_error(ctx);
    assert_int_equal(hess_param_set(ctx, q, VAL(0, 0, 0)), HESS_ERR_STATE);
    hess_context_clear_error(ctx);
    hess_tensor *g[1] = {NULL};
    assert_int_equal(hess_grad(ctx, y, 1, &q, g, 0), HESS_ERR_STATE);
    assert_null(g[0]);
    hess_context_clear_error(ctx);

    /* tensors from before the mark are valid and unchanged */
    assert_memory_equal(hess_tensor_data(a), VAL(1, 2, 3), 3 * sizeof(double));
    assert_memory_equal(hess_tensor_data(ap), VAL(4, 10, 18), 3 * sizeof(double));
    assert_ok(ctx, hess_grad(ctx, y, 1, &p, g, 0));
    assert_memory_equal(hess_tensor_data(g[0]), VAL(1, 2, 3), 3 * sizeof(double));
    hess_tensor *d = hess_add(ctx, a, p);
    assert_non_null(d);
    assert_memory_equal(hess_tensor_data(d), VAL(5, 7, 9), 3 * sizeof(double));
}

static void test_context_rewind_nested_marks(void **state)
{
    hess_context *ctx = *state;
    const hess_mark m0 = hess_context_mark(ctx);
    hess_tensor *t1 = mk(ctx, 1, SHP(2), VAL(1, 2));
    const hess_mark m1 = hess_context_mark(ctx);
    hess_tensor *t2 = hess_scale(ctx, t1, 2.0);
    const hess_mark m2 = hess_context_mark(ctx);
    hess_tensor *t3 = hess_scale(ctx, t2, 2.0);
    assert_non_null(t3);

    assert_ok(ctx, hess_context_rewind(ctx, m2));
    assert_null(hess_neg(ctx, t3));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_STATE);
    hess_context_clear_error(ctx);
    hess_tensor *n2 = hess_neg(ctx, t2); /* still valid */
    assert_non_null(n2);
    assert_memory_equal(hess_tensor_data(n2), VAL(-2, -4), 2 * sizeof(double));

    assert_ok(ctx, hess_context_rewind(ctx, m1));
    assert_true(mark_equal(hess_context_mark(ctx), m1));
    assert_null(hess_neg(ctx, t2));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_STATE);
    hess_context_clear_error(ctx);
    assert_memory_equal(hess_tensor_data(t1), VAL(1, 2), 2 * sizeof(double));
    assert_ok(ctx, hess_context_rewind(ctx, m1)); /* the same mark twice is fine */

    assert_ok(ctx, hess_context_rewind(ctx, m0));
    assert_true(mark_equal(hess_context_mark(ctx), m0));
    assert_null(hess_neg(ctx, t1));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_STATE);
    hess_context_clear_error(ctx);

    /* the context goes on as new */
    hess_tensor *u = mk(ctx, 1, SHP(2), VAL(5, 6));
    hess_tensor *v = hess_scale(ctx, u, 0.5);
    assert_non_null(v);
    assert_memory_equal(hess_tensor_data(v), VAL(2.5, 3), 2 * sizeof(double));
}

static void test_context_rewind_mark_of_other_context(void **state)
{
    hess_context *ctx = *state;
    hess_context *other = test_context();
    hess_tensor *a = mk(ctx, 1, SHP(2), VAL(1, 2));
    const hess_mark mo = hess_context_mark(other);
    assert_non_null(hess_scalar(other, 1.0));
    hess_tensor *b = hess_scale(ctx, a, 3.0);
    assert_int_equal(hess_context_rewind(ctx, mo), HESS_ERR_ARG);
    assert_int_equal(hess_context_status(ctx), HESS_ERR_ARG);
    assert_non_null(strstr(hess_context_errmsg(ctx), "hess_context_rewind"));
    hess_context_clear_error(ctx);
    /* nothing was freed */
    hess_tensor *c = hess_add(ctx, a, b);
    assert_non_null(c);
    assert_memory_equal(hess_tensor_data(c), VAL(4, 8), 2 * sizeof(double));
    /* a zeroed mark is nobody's */
    hess_mark z;
    memset(&z, 0, sizeof z);
    assert_int_equal(hess_context_rewind(ctx, z), HESS_ERR_ARG);
    hess_context_clear_error(ctx);
    assert_int_equal(hess_context_rewind(NULL, mo), HESS_ERR_ARG);
    hess_context_destroy(other);
}

static void test_context_rewind_later_mark(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 1, SHP(2), VAL(1, 2));
    const hess_mark m1 = hess_context_mark(ctx);
    assert_non_null(hess_scale(ctx, a, 2.0));
    const hess_mark m2 = hess_context_mark(ctx);
    assert_ok(ctx, hess_context_rewind(ctx, m1));
    assert_int_equal(hess_context_rewind(ctx, m2), HESS_ERR_ARG);
    assert_int_equal(hess_context_status(ctx), HESS_ERR_ARG);
    hess_context_clear_error(ctx);
    assert_true(mark_equal(hess_context_mark(ctx), m1));
    assert_memory_equal(hess_tensor_data(a), VAL(1, 2), 2 * sizeof(double));
}

/* A mark taken on a branch of history that was rewound away is not an earlier
 * point of the context: accepting it would free memory that live tensors use. */
static void test_context_rewind_stale_mark(void **state)
{
    hess_context *ctx = *state;
    assert_non_null(mk(ctx, 1, SHP(1), VAL(0)));
    const hess_mark m1 = hess_context_mark(ctx);
    assert_non_null(hess_tensor_new(ctx, 1, SHP(100), NULL));
    const hess_mark m2 = hess_context_mark(ctx); /* 2 nodes, ~1 kB into the arena */
    assert_ok(ctx, hess_context_rewind(ctx, m1));
    double v[200];
    for (int i = 0; i < 200; i++)
        v[i] = i;
    hess_tensor *c = mk(ctx, 1, SHP(200), v); /* node 1 again, reaching past m2 */
    const hess_status st = hess_context_rewind(ctx, m2);
    hess_context_clear_error(ctx);
    /* whatever the status, c must stay intact */
    hess_tensor *d = hess_tensor_new(ctx, 1, SHP(200), NULL);
    assert_non_null(d);
    if (memcmp(hess_tensor_data(c), v, sizeof v) != 0)
        fail_msg("rewind to a stale mark returned %d (%s) and a live tensor was overwritten "
                 "by the next allocation",
                 (int)st, hess_status_str(st));
    assert_int_equal(st, HESS_ERR_ARG);
}

/* ------------------------------------------------------------------------ */
/* Marks are checked completely (issue #13 item 8)                          */
/* ------------------------------------------------------------------------ */

/* An allocator that hands a freed block of the same size straight back, so a
 * context made after another is destroyed gets the same address for its
 * struct and its first block: the case a mark's identity must survive. */
typedef struct recycler {
    void *spare[4];
    size_t size[4];
} recycler;

static void *recycle_alloc(size_t size, void *user)
{
    recycler *r = user;
    for (int i = 0; i < 4; i++)
        if (r->spare[i] && r->size[i] == size) {
            void *p = r->spare[i];
            r->spare[i] = NULL;
            return p;
        }
    return test_malloc(size);
}

static void recycle_free(void *p, size_t size, void *user)
{
    recycler *r = user;
    for (int i = 0; i < 4; i++)
        if (!r->spare[i]) {
            r->spare[i] = p;
            r->size[i] = size;
            return;
        }
    test_free(p);
}

static void test_context_rewind_mark_of_destroyed_context(void **state)
{
    (void)state;
    recycler r = {{NULL}, {0}};
    const hess_config cfg = {recycle_alloc, recycle_free, &r, 0, 0, 0};
    hess_context *a, *b;
    assert_int_equal(hess_context_create(&cfg, &a), HESS_OK);
    assert_non_null(hess_tensor_new(a, 1, SHP(4), NULL));
    const hess_mark ma = hess_context_mark(a);
    hess_context_destroy(a);
    assert_int_equal(hess_context_create(&cfg, &b), HESS_OK);
    assert_ptr_equal(a, b); /* the same memory: only the identity tells them apart */
    double v[64];
    for (int i = 0; i < 64; i++)
        v[i] = i;
    hess_tensor *t0 = hess_tensor_new(b, 1, SHP(4), NULL);
    hess_tensor *t1 = hess_tensor_new(b, 1, SHP(64), v);
    assert_non_null(t0);
    assert_int_equal(hess_context_rewind(b, ma), HESS_ERR_ARG);
    assert_non_null(strstr(hess_context_errmsg(b), "not one of this context's"));
    hess_context_clear_error(b);
    assert_non_null(hess_tensor_new(b, 1, SHP(64), NULL)); /* would land on t1 */
    assert_memory_equal(hess_tensor_data(t1), v, sizeof v);
    hess_context_destroy(b);
    for (int i = 0; i < 4; i++)
        if (r.spare[i])
            test_free(r.spare[i]);
}

/* Each field of a mark changed by one: refused, nothing freed. */
static void test_context_rewind_edited_mark(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 1, SHP(2), VAL(1, 2));
    const hess_mark m = hess_context_mark(ctx);
    double v[300];
    for (int i = 0; i < 300; i++)
        v[i] = -i;
    hess_tensor *b = mk(ctx, 1, SHP(300), v);
    for (int field = 0; field < 14; field++) {
        hess_mark e = m;
        const int d = field % 2 ? -1 : 1;
        switch (field / 2) {
        case 0:
            e.block += (size_t)d;
            break;
        case 1:
            e.used += (size_t)d * 32;
            break;
        case 2:
            e.nodes += d;
            break;
        case 3:
            e.ctx_id += (uint64_t)d;
            break;
        case 4:
            e.last += (uint64_t)d;
            break;
        case 5:
            e.gen += (uint64_t)d;
            break;
        case 6:
            e.check += (uint64_t)d;
            break;
        }
        assert_int_equal(hess_context_rewind(ctx, e), HESS_ERR_ARG);
        hess_context_clear_error(ctx);
    }
    hess_mark big = m;
    big.used = SIZE_MAX / 2;
    big.block = 1000;
    assert_int_equal(hess_context_rewind(ctx, big), HESS_ERR_ARG);
    hess_context_clear_error(ctx);
    assert_non_null(hess_tensor_new(ctx, 1, SHP(300), NULL));
    assert_memory_equal(hess_tensor_data(b), v, sizeof v);
    assert_memory_equal(hess_tensor_data(a), VAL(1, 2), 2 * sizeof(double));
    assert_ok(ctx, hess_context_rewind(ctx, m)); /* the mark itself is good */
}

/* A mark taken after arena memory that no tensor owns (the library's own
 * scratch), on a branch since rewound away: the tape cannot tell (the same
 * nodes), the record of the rewind does. */
static void test_context_rewind_stale_mark_past_scratch(void **state)
{
    hess_context *ctx = *state;
    assert_non_null(mk(ctx, 1, SHP(1), VAL(0)));
    const hess_mark m1 = hess_context_mark(ctx);
    assert_non_null(hess__alloc(ctx, 4000, "test"));
    const hess_mark m2 = hess_context_mark(ctx);
    assert_ok(ctx, hess_context_rewind(ctx, m1));
    double *live = hess__alloc(ctx, 8000, "test"); /* covers m2's position */
    for (int i = 0; i < 1000; i++)
        live[i] = i;
    assert_int_equal(hess_context_rewind(ctx, m2), HESS_ERR_ARG);
    assert_non_null(strstr(hess_context_errmsg(ctx), "stale"));
    hess_context_clear_error(ctx);
    assert_non_null(hess__alloc(ctx, 8000, "test"));
    for (int i = 0; i < 1000; i++)
        assert_true(live[i] == i);
    assert_ok(ctx, hess_context_rewind(ctx, m1));
}

/* ------------------------------------------------------------------------ */
/* Sizes are checked on the way in (issue #13 item 9)                       */
/* ------------------------------------------------------------------------ */

static void test_context_absurd_sizes(void **state)
{
    (void)state;
    const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 64, SIZE_MAX / 2, SIZE_MAX / 4 + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        counter c;
        memset(&c, 0, sizeof c);
        hess_config cfg = {c_alloc, c_free, &c, 0, sizes[i], 0};
        hess_context *ctx = (hess_context *)&c; /* must be set to NULL */
        assert_int_equal(hess_context_create(&cfg, &ctx), HESS_ERR_ARG);
        assert_null(ctx);
        assert_int_equal(c.n_alloc, 0);
        cfg.max_bytes = SIZE_MAX; /* a cap of any size is fine */
        assert_int_equal(hess_context_create(&cfg, &ctx), HESS_ERR_ARG);
    }
    /* arena requests that cannot be rounded up: refused, no wrap-around */
    hess_context *ctx = test_context();
    const size_t asks[] = {SIZE_MAX, SIZE_MAX - 16, SIZE_MAX / 2, SIZE_MAX / 4 + 1};
    for (size_t i = 0; i < sizeof asks / sizeof asks[0]; i++) {
        assert_null(hess__alloc(ctx, asks[i], "test"));
        assert_int_equal(hess_context_status(ctx), HESS_ERR_NOMEM);
        hess_context_clear_error(ctx);
    }
    /* and tensors whose byte count would overflow */
    assert_null(hess_tensor_new(ctx, 2, SHP(INT64_C(1) << 31, INT64_C(1) << 31), NULL));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_ARG);
    assert_non_null(strstr(hess_context_errmsg(ctx), "overflows"));
    hess_context_clear_error(ctx);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Byte limit and errors                                                    */
/* ------------------------------------------------------------------------ */

static void test_context_max_bytes_nomem(void **state)
{
    (void)state;
    counter c;
    const size_t limit = 256 * 1024;
    hess_context *ctx = counted_context(&c, 0, limit);
    hess_tensor *a = mk(ctx, 1, SHP(3), VAL(1, 2, 3));
    enum { M = 12000 }; /* 96 kB each: three cannot fit in 256 kB */
    hess_tensor *x = hess_tensor_new(ctx, 1, SHP(M), NULL);
    assert_non_null(x);
    hess_tensor *y = NULL;
    int made = 0;
    for (int i = 0; i < 10; i++) {
        y = hess_exp(ctx, x);
        if (!y)
            break;
        made++;
        assert_true(hess_context_bytes(ctx) <= limit);
    }
    assert_null(y);
    assert_true(made < 3);
    assert_int_equal(hess_context_status(ctx), HESS_ERR_NOMEM);
    assert_non_null(strstr(hess_context_errmsg(ctx), "hess_exp"));
    assert_non_null(strstr(hess_context_errmsg(ctx), "out of memory"));
    assert_true(hess_context_bytes(ctx) <= limit);
    assert_true(c.live_bytes <= limit);
    assert_int_equal(hess_context_bytes(ctx), c.live_bytes);

    /* a too big leaf fails the same way, and keeps the first message */
    assert_null(hess_tensor_new(ctx, 1, SHP(4 * M), NULL));
    assert_non_null(strstr(hess_context_errmsg(ctx), "hess_exp"));

    /* cleared, the context works again and nothing made before changed */
    hess_context_clear_error(ctx);
    assert_int_equal(hess_context_status(ctx), HESS_OK);
    assert_string_equal(hess_context_errmsg(ctx), "");
    hess_tensor *b = hess_add(ctx, a, a);
    assert_non_null(b);
    assert_memory_equal(hess_tensor_data(b), VAL(2, 4, 6), 3 * sizeof(double));
    assert_memory_equal(hess_tensor_data(a), VAL(1, 2, 3), 3 * sizeof(double));
    assert_true(hess_tensor_data(x)[M - 1] == 0.0);
    assert_null(hess_tensor_new(ctx, 1, SHP(4 * M), NULL));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_NOMEM);
    assert_non_null(strstr(hess_context_errmsg(ctx), "hess_tensor_new"));
    hess_context_clear_error(ctx);
    destroy_counted(ctx, &c);
}

static void test_context_clear_error(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 2), VAL(1, 2, 3, 4));
    assert_null(hess_reshape(ctx, a, 1, SHP(5)));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_SHAPE);
    assert_true(hess_context_errmsg(ctx)[0] != '\0');
    /* later errors do not replace the first */
    assert_null(hess_sum_axis(ctx, a, 7));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_SHAPE);
    assert_non_null(strstr(hess_context_errmsg(ctx), "hess_reshape"));
    hess_context_clear_error(ctx);
    assert_int_equal(hess_context_status(ctx), HESS_OK);
    assert_string_equal(hess_context_errmsg(ctx), "");
    hess_context_clear_error(ctx); /* clearing twice is harmless */
    hess_context_clear_error(NULL);
    hess_tensor *t = hess_transpose(ctx, a);
    assert_non_null(t);
    assert_memory_equal(hess_tensor_data(t), VAL(1, 3, 2, 4), 4 * sizeof(double));
}

/* ------------------------------------------------------------------------ */
/* Parameters and accessors                                                 */
/* ------------------------------------------------------------------------ */

static void test_context_param_set(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = hess_param_new(ctx, 1, SHP(3), VAL(1, 2, 3));
    assert_non_null(p);
    hess_tensor *y = hess_sum(ctx, hess_square(ctx, p));
    hess_tensor *r = hess_reshape(ctx, p, 2, SHP(3, 1)); /* a reshape too keeps old values */
    hess_tensor *rr = hess_reshape(ctx, r, 1, SHP(3));
    assert_true(hess_tensor_data(y)[0] == 14.0);
    double nv[3] = {0, 0, 2};
    assert_ok(ctx, hess_param_set(ctx, p, nv));
    nv[2] = 99; /* copied, not borrowed */
    assert_memory_equal(hess_tensor_data(p), VAL(0, 0, 2), 3 * sizeof(double));
    assert_true(hess_tensor_data(y)[0] == 14.0); /* old results keep old values */
    assert_memory_equal(hess_tensor_data(r), VAL(1, 2, 3), 3 * sizeof(double));
    assert_memory_equal(hess_tensor_data(rr), VAL(1, 2, 3), 3 * sizeof(double));
    hess_tensor *y2 = hess_sum(ctx, hess_square(ctx, p));
    assert_true(hess_tensor_data(y2)[0] == 4.0);
    hess_tensor *g[1];
    assert_ok(ctx, hess_grad(ctx, y2, 1, &p, g, 0));
    assert_memory_equal(hess_tensor_data(g[0]), VAL(0, 0, 4), 3 * sizeof(double));

    /* refusals: the parameter keeps its values */
    hess_tensor *k = mk(ctx, 1, SHP(3), VAL(5, 5, 5));
    assert_int_equal(hess_param_set(ctx, k, VAL(1, 1, 1)), HESS_ERR_ARG);
    assert_non_null(strstr(hess_context_errmsg(ctx), "hess_param_set"));
    assert_memory_equal(hess_tensor_data(k), VAL(5, 5, 5), 3 * sizeof(double));
    hess_context_clear_error(ctx);
    assert_int_equal(hess_param_set(ctx, p, NULL), HESS_ERR_ARG);
    hess_context_clear_error(ctx);
    assert_int_equal(hess_param_set(ctx, NULL, VAL(1, 1, 1)), HESS_ERR_ARG);
    hess_context_clear_error(ctx);
    assert_int_equal(hess_param_set(NULL, p, VAL(1, 1, 1)), HESS_ERR_ARG);
    hess_context *other = test_context();
    assert_int_equal(hess_param_set(other, p, VAL(1, 1, 1)), HESS_ERR_ARG);
    hess_context_destroy(other);
    assert_memory_equal(hess_tensor_data(p), VAL(0, 0, 2), 3 * sizeof(double));
}

/* hess_build_info: one line, the version first, then the matmul backend, the
 * SIMD level of this CPU and the build. */
static void test_context_build_info(void **state)
{
    (void)state;
    const char *b = hess_build_info();
    char want[64];
    snprintf(want, sizeof want, "libhessian %s; matmul: ", hess_version_string());
    assert_true(strncmp(b, want, strlen(want)) == 0);
    assert_non_null(strstr(b, "; simd: "));
    assert_non_null(strstr(b, "; build: "));
    assert_null(strchr(b, '\n'));
    assert_ptr_equal(b, hess_build_info()); /* static storage, the same each time */
}

static void test_context_accessors_on_null(void **state)
{
    (void)state;
    assert_int_equal(hess_tensor_ndim(NULL), -1);
    assert_null(hess_tensor_shape(NULL));
    assert_int_equal(hess_tensor_numel(NULL), 0);
    assert_null(hess_tensor_data(NULL));
    assert_int_equal(hess_tensor_is_param(NULL), 0);
    assert_int_equal(hess_context_status(NULL), HESS_ERR_ARG);
    assert_non_null(hess_context_errmsg(NULL));
    assert_int_equal(hess_context_bytes(NULL), 0);
    const hess_mark m = hess_context_mark(NULL);
    assert_int_equal(m.nodes, 0);
    assert_int_equal(m.ctx_id, 0);
    hess_context_clear_error(NULL);
    assert_int_equal(hess_param_count(1, NULL), 0);
    hess_tensor *none[2] = {NULL, NULL};
    assert_int_equal(hess_param_count(2, none), 0);
    assert_null(hess_tensor_new(NULL, 1, SHP(2), NULL));
    assert_null(hess_param_new(NULL, 1, SHP(2), NULL));
    assert_null(hess_scalar(NULL, 1.0));
}

static void test_context_param_count(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p[3] = {hess_param_new(ctx, 2, SHP(2, 3), NULL),
                         hess_param_new(ctx, 0, NULL, NULL), hess_param_new(ctx, 1, SHP(4), NULL)};
    assert_int_equal(hess_param_count(3, p), 11);
    assert_int_equal(hess_param_count(1, p), 6);
    assert_int_equal(hess_param_count(0, p), 0);
    p[1] = NULL;
    assert_int_equal(hess_param_count(3, p), 0);
}

/* ------------------------------------------------------------------------ */
/* The training-loop memory rule                                            */
/* ------------------------------------------------------------------------ */

typedef struct mlp {
    hess_tensor *p[4]; /* W1 [H,I], b1 [H], W2 [O,H], b2 [O] */
    hess_tensor *x, *y;
    double *theta; /* host copy, flattened */
    size_t n;
} mlp;

static void mlp_init(hess_context *ctx, mlp *m, int B, int I, int H, int O, double *store)
{
    uint64_t s = 0x9e3779b97f4a7c15u;
    const int64_t shapes[4][2] = {{H, I}, {H, 1}, {O, H}, {O, 1}};
    const int nds[4] = {2, 1, 2, 1};
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        const size_t n = (size_t)(shapes[i][0] * (nds[i] == 2 ? shapes[i][1] : 1));
        for (size_t j = 0; j < n; j++)
            store[off + j] = rnd_uniform(&s, -0.8, 0.8);
        m->p[i] = hess_param_new(ctx, nds[i], shapes[i], store + off);
        assert_non_null(m->p[i]);
        off += n;
    }
    m->theta = store;
    m->n = off;
    double xv[256], yv[256];
    assert_true(B * I <= 256 && B * O <= 256);
    for (int i = 0; i < B * I; i++)
        xv[i] = rnd_uniform(&s, -1, 1);
    for (int i = 0; i < B * O; i++)
        yv[i] = rnd_uniform(&s, -0.5, 0.5);
    m->x = mk(ctx, 2, SHP(B, I), xv);
    m->y = mk(ctx, 2, SHP(B, O), yv);
}

static hess_tensor *mlp_loss(hess_context *ctx, const mlp *m)
{
    hess_tensor *h = hess_tanh(ctx, hess_linear(ctx, m->x, m->p[0], m->p[1]));
    return hess_mse_loss(ctx, hess_linear(ctx, h, m->p[2], m->p[3]), m->y);
}

/* theta -= lr * grad, written back with hess_param_set. */
static void mlp_step(hess_context *ctx, mlp *m, hess_tensor *const g[4], double lr)
{
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        const size_t n = (size_t)hess_tensor_numel(m->p[i]);
        for (size_t j = 0; j < n; j++)
            m->theta[off + j] -= lr * hess_tensor_data(g[i])[j];
        assert_ok(ctx, hess_param_set(ctx, m->p[i], m->theta + off));
        off += n;
    }
}

/* The allocator's counts and the arena's size after iteration 0 of a loop;
 * every later iteration must leave them as they were. */
typedef struct steady {
    size_t calls, frees, bytes;
} steady;

static void steady_check(hess_context *ctx, const counter *c, int it, steady *st)
{
    if (it == 0) {
        *st = (steady){c->n_alloc, c->n_free, hess_context_bytes(ctx)};
        return;
    }
    if (c->n_alloc != st->calls || c->n_free != st->frees)
        fail_msg("iteration %d called the allocator: %zu allocs, %zu frees "
                 "(after the first iteration: %zu, %zu)",
                 it, c->n_alloc, c->n_free, st->calls, st->frees);
    assert_int_equal(hess_context_bytes(ctx), st->bytes);
}

static void test_context_training_loop_no_allocations(void **state)
{
    (void)state;
    counter c;
    hess_context *ctx = counted_context(&c, 16 * 1024, 0);
    double store[512];
    mlp m;
    mlp_init(ctx, &m, 16, 4, 8, 3, store);
    steady st = {0, 0, 0};
    double first = 0, last = 0;
    for (int it = 0; it < 20; it++) {
        const hess_mark mk0 = hess_context_mark(ctx);
        hess_tensor *loss = mlp_loss(ctx, &m);
        assert_non_null(loss);
        hess_tensor *g[4];
        assert_ok(ctx, hess_grad(ctx, loss, 4, m.p, g, 0));
        if (it == 0)
            first = hess_tensor_data(loss)[0];
        last = hess_tensor_data(loss)[0];
        mlp_step(ctx, &m, g, 0.2);
        assert_ok(ctx, hess_context_rewind(ctx, mk0));
        assert_true(mark_equal(hess_context_mark(ctx), mk0));
        steady_check(ctx, &c, it, &st);
        assert_int_equal(hess_context_bytes(ctx), c.live_bytes);
    }
    assert_true(last < first); /* the updates reached the model */
    destroy_counted(ctx, &c);
}

static void test_context_training_loop_hvp_hessian_no_allocations(void **state)
{
    (void)state;
    counter c;
    hess_context *ctx = counted_context(&c, 8 * 1024, 0);
    double store[64];
    mlp m;
    mlp_init(ctx, &m, 5, 3, 4, 2, store);
    const size_t N = hess_param_count(4, m.p);
    assert_int_equal(N, m.n);
    double v[64], hv[64], h[64 * 64], d[64];
    for (size_t i = 0; i < N; i++)
        v[i] = 1.0 / (1.0 + (double)i);
    steady st = {0, 0, 0};
    for (int it = 0; it < 20; it++) {
        const hess_mark mk0 = hess_context_mark(ctx);
        hess_tensor *loss = mlp_loss(ctx, &m);
        assert_non_null(loss);
        hess_tensor *g[4];
        assert_ok(ctx, hess_grad(ctx, loss, 4, m.p, g, 0));
        assert_ok(ctx, hess_hvp(ctx, loss, 4, m.p, v, hv));
        assert_ok(ctx, hess_hessian(ctx, loss, 4, m.p, h));
        assert_ok(ctx, hess_hessian_diag(ctx, loss, 4, m.p, d));
        /* the three agree: H v, and the diagonal of H */
        for (size_t i = 0; i < N; i++) {
            double s = 0;
            for (size_t j = 0; j < N; j++)
                s += h[i * N + j] * v[j];
            assert_close(hv[i], s, 1e-12, 1e-13);
            assert_close(d[i], h[i * N + i], 1e-12, 1e-14);
        }
        mlp_step(ctx, &m, g, 0.1);
        assert_ok(ctx, hess_context_rewind(ctx, mk0));
        steady_check(ctx, &c, it, &st);
    }
    destroy_counted(ctx, &c);
}

/* The Hessian functions leave the context at the point where they found it. */
static void test_context_hessian_leaves_memory_as_found(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = hess_param_new(ctx, 1, SHP(3), VAL(0.5, -1, 2));
    hess_tensor *loss = hess_sum(ctx, hess_exp(ctx, hess_mul(ctx, p, p)));
    assert_non_null(loss);
    const hess_mark m = hess_context_mark(ctx);
    double h[9], hv[3], d[3];
    assert_ok(ctx, hess_hessian(ctx, loss, 1, &p, h));
    assert_true(mark_equal(hess_context_mark(ctx), m));
    assert_ok(ctx, hess_hvp(ctx, loss, 1, &p, VAL(1, 0, 0), hv));
    assert_true(mark_equal(hess_context_mark(ctx), m));
    assert_ok(ctx, hess_hessian_diag(ctx, loss, 1, &p, d));
    assert_true(mark_equal(hess_context_mark(ctx), m));
    assert_ok(ctx, hess_hessian_block(ctx, loss, p, p, h));
    assert_true(mark_equal(hess_context_mark(ctx), m));
    /* d2/dx2 exp(x^2) = (2 + 4x^2) exp(x^2), diagonal */
    const double x[3] = {0.5, -1, 2};
    for (int i = 0; i < 3; i++) {
        const double want = (2 + 4 * x[i] * x[i]) * exp(x[i] * x[i]);
        assert_close(d[i], want, 1e-13, 0);
        assert_close(h[i * 3 + i], want, 1e-13, 0);
    }
    assert_close(hv[0], (2 + 1.0) * exp(0.25), 1e-13, 0);
    assert_true(hv[1] == 0.0 && hv[2] == 0.0);
}

int main(void)
{
#define T(f)  cmocka_unit_test(f)
#define TC(f) cmocka_unit_test_setup_teardown(f, setup_ctx, teardown_ctx)
    const struct CMUnitTest tests[] = {
        T(test_context_create_null_cfg),
        T(test_context_create_with_hooks),
        T(test_context_create_block_bytes),
        T(test_context_create_null_out),
        T(test_context_create_one_hook),
        T(test_context_create_max_bytes_too_small),
        T(test_context_destroy_null),
        T(test_context_status_str_every_code),
        T(test_context_version),
        T(test_context_arena_many_tensors),
        T(test_context_arena_big_tensor),
        TC(test_context_tape_growth),
        TC(test_context_rewind_invalidates_later_tensors),
        TC(test_context_rewind_nested_marks),
        TC(test_context_rewind_mark_of_other_context),
        TC(test_context_rewind_later_mark),
        TC(test_context_rewind_stale_mark),
        T(test_context_rewind_mark_of_destroyed_context),
        T(test_context_build_info),
        TC(test_context_rewind_edited_mark),
        TC(test_context_rewind_stale_mark_past_scratch),
        T(test_context_absurd_sizes),
        T(test_context_max_bytes_nomem),
        TC(test_context_clear_error),
        TC(test_context_param_set),
        T(test_context_accessors_on_null),
        TC(test_context_param_count),
        T(test_context_training_loop_no_allocations),
        T(test_context_training_loop_hvp_hessian_no_allocations),
        TC(test_context_hessian_leaves_memory_as_found),
    };
#undef T
#undef TC
    return cmocka_run_group_tests(tests, NULL, NULL);
}
