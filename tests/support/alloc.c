/*
 * alloc.c -- the counting and failing allocators of alloc.h, and the
 * byte-limit sweep over them.
 */
#include "alloc.h"
#include "check.h"

#include <string.h>

void *count_mem_alloc(size_t size, void *user)
{
    count_mem *m = user;
    void *p = test_malloc(size);
    m->live += size;
    m->peak = m->live > m->peak ? m->live : m->peak;
    return p;
}

void count_mem_free(void *p, size_t size, void *user)
{
    count_mem *m = user;
    m->live -= size;
    test_free(p);
}

void *fail_mem_alloc(size_t size, void *user)
{
    fail_mem *a = user;
    a->count++;
    if (a->fail_at && (a->count == a->fail_at || (a->sticky && a->count > a->fail_at)))
        return NULL;
    return test_malloc(size);
}

void fail_mem_free(void *p, size_t size, void *user)
{
    (void)size, (void)user;
    test_free(p);
}

hess_context *fail_mem_context(fail_mem *a, size_t block_bytes)
{
    hess_config cfg = {0};
    cfg.alloc = fail_mem_alloc;
    cfg.free = fail_mem_free;
    cfg.user = a;
    cfg.block_bytes = block_bytes;
    hess_context *ctx = NULL;
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    return ctx;
}

void byte_limit_sweep(hess_status (*flow)(hess_context *ctx, double *out), size_t nout)
{
    double *ref = test_malloc(nout * sizeof *ref), *got = test_malloc(nout * sizeof *got);
    count_mem m = {0};
    hess_config cfg = {count_mem_alloc, count_mem_free, &m, 0, 64, 0};
    hess_context *ctx;
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    assert_ok(ctx, flow(ctx, ref));
    hess_context_destroy(ctx);
    const size_t peak = m.peak;
    /* about a thousand limits, 32 bytes (the arena's alignment) apart or more */
    const size_t step = peak / 1000 > 32 ? peak / 1000 / 32 * 32 : 32;
    int failed = 0, done = 0;
    for (size_t limit = step; limit <= peak + step && !done; limit += step) {
        count_mem ml = {0};
        hess_config cl = {count_mem_alloc, count_mem_free, &ml, limit, 64, 0};
        if (hess_context_create(&cl, &ctx) != HESS_OK)
            continue;
        const hess_status st = flow(ctx, got);
        assert_true(ml.peak <= limit);
        assert_int_equal(hess_context_bytes(ctx), ml.live);
        if (st == HESS_OK) {
            assert_memory_equal(got, ref, nout * sizeof *ref);
            done = 1;
        } else {
            assert_int_equal(st, HESS_ERR_NOMEM);
            assert_non_null(strstr(hess_context_errmsg(ctx), "out of memory"));
            failed++;
        }
        hess_context_destroy(ctx);
        assert_int_equal(ml.live, 0);
    }
    print_message("  byte limits up to %zu by %zu (peak without limit %zu): %d out of memory\n",
                  peak + step, step, peak, failed);
    assert_true(done);
    assert_true(failed > 10);
    test_free(ref);
    test_free(got);
}
