/*
 * check.h -- shared test support: tolerant comparisons that print both values,
 * and contexts whose allocator goes through cmocka's leak-checking malloc.
 */
#ifndef HESS_CHECK_H
#define HESS_CHECK_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "hessian.h"

/* Fails unless |actual - expected| <= atol + rtol * |expected|. */
#define assert_close(actual, expected, rtol, atol)                                                 \
    check_close((actual), (expected), (rtol), (atol), #actual, __FILE__, __LINE__)
void check_close(double actual,
                 double expected,
                 double rtol,
                 double atol,
                 const char *what,
                 const char *file,
                 int line);

/* Element-wise assert_close over n values; names the first bad index. */
#define assert_close_array(actual, expected, n, rtol, atol)                                        \
    check_close_array((actual), (expected), (n), (rtol), (atol), #actual, __FILE__, __LINE__)
void check_close_array(const double *actual,
                       const double *expected,
                       size_t n,
                       double rtol,
                       double atol,
                       const char *what,
                       const char *file,
                       int line);

/* Fails with the context's message when st is not HESS_OK. */
#define assert_ok(ctx, st) check_ok((ctx), (st), __FILE__, __LINE__)
void check_ok(const hess_context *ctx, hess_status st, const char *file, int line);

/* A context whose memory goes through cmocka's test_malloc/test_free. */
hess_context *test_context(void);
hess_context *test_context_flags(unsigned flags);

/* cmocka fixtures: *state becomes a context with the default allocator
 * (cmocka checks test_malloc leaks before teardown runs), destroyed afterwards. */
int setup_ctx(void **state);
int teardown_ctx(void **state);

/* Path of a file in tests/data (static buffer). */
const char *data_path(const char *name);

/* A reproducible uniform double in [lo, hi). */
double rnd_uniform(uint64_t *state, double lo, double hi);

#endif
