/*
 * alloc.h -- shared test support: allocators for hess_config's hooks that
 * count or fail (both through cmocka's leak-checking test_malloc), and the
 * byte-limit sweep of a workflow under hess_config.max_bytes.
 */
#ifndef HESS_TEST_ALLOC_H
#define HESS_TEST_ALLOC_H

#include <stddef.h>

#include "hessian.h"

/* Counts the bytes held: cfg = {count_mem_alloc, count_mem_free, &m, ...}. */
typedef struct count_mem {
    size_t live, peak;
} count_mem;
void *count_mem_alloc(size_t size, void *user);
void count_mem_free(void *p, size_t size, void *user);

/* Fails the fail_at-th allocation (1-based; 0 = never), and every later one
 * when sticky: cfg.alloc = fail_mem_alloc, cfg.free = fail_mem_free. */
typedef struct fail_mem {
    long count;   /* allocations asked for */
    long fail_at; /* fail this one (1-based); 0 = never */
    int sticky;   /* and every later one */
} fail_mem;
void *fail_mem_alloc(size_t size, void *user);
void fail_mem_free(void *p, size_t size, void *user);
/* A context whose memory goes through fail_mem_alloc with *a, in arena
 * blocks of block_bytes (small ones make a workflow grow the arena); fails
 * the test unless it is created. */
hess_context *fail_mem_context(fail_mem *a, size_t block_bytes);

/* Runs flow, which writes nout numbers to out, once without a limit, then
 * under byte limits from what a context needs to what the flow needs: it
 * must return HESS_OK with the values of the run without limit, or
 * HESS_ERR_NOMEM saying so, never hold more bytes than the limit, keep the
 * context's count equal to the allocator's, and leak nothing (cmocka's
 * test_malloc).  Fails unless some limit lets it finish and more than 10
 * limits run out of memory. */
void byte_limit_sweep(hess_status (*flow)(hess_context *ctx, double *out), size_t nout);

#endif
