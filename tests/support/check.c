/*
 * check.c -- shared test support (see check.h).
 */
#include "check.h"

#include <math.h>
#include <stdio.h>

static void
fail_close(double actual, double expected, double tol, const char *what, const char *file, int line)
{
    print_error("%s:%d: %s = %.17g, expected %.17g (difference %.3g > tolerance %.3g)\n", file,
                line, what, actual, expected, fabs(actual - expected), tol);
    _fail(file, line);
}

void check_close(double actual,
                 double expected,
                 double rtol,
                 double atol,
                 const char *what,
                 const char *file,
                 int line)
{
    double tol = atol + rtol * fabs(expected);
    if (!(fabs(actual - expected) <= tol) && !(actual == expected))
        fail_close(actual, expected, tol, what, file, line);
}

void check_close_array(const double *actual,
                       const double *expected,
                       size_t n,
                       double rtol,
                       double atol,
                       const char *what,
                       const char *file,
                       int line)
{
    for (size_t i = 0; i < n; i++) {
        double tol = atol + rtol * fabs(expected[i]);
        if (!(fabs(actual[i] - expected[i]) <= tol) && !(actual[i] == expected[i])) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s[%zu]", what, i);
            fail_close(actual[i], expected[i], tol, buf, file, line);
        }
    }
}

void check_ok(const hess_context *ctx, hess_status st, const char *file, int line)
{
    if (st != HESS_OK) {
        print_error("%s:%d: status %d (%s): %s\n", file, line, (int)st, hess_status_str(st),
                    hess_context_errmsg(ctx));
        _fail(file, line);
    }
}

static void *t_alloc(size_t size, void *user)
{
    (void)user;
    return test_malloc(size);
}

static void t_free(void *p, size_t size, void *user)
{
    (void)user, (void)size;
    test_free(p);
}

hess_context *test_context_flags(unsigned flags)
{
    hess_config cfg = {0};
    cfg.alloc = t_alloc;
    cfg.free = t_free;
    cfg.flags = flags;
    hess_context *ctx = NULL;
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    return ctx;
}

hess_context *test_context(void)
{
    return test_context_flags(0);
}

/* cmocka checks test_malloc blocks at the end of each test function, before
 * the teardown runs, so a fixture context must not use test_malloc: it uses
 * the default allocator.  Tests that want leak checks make test_context()
 * inside the test body. */
int setup_ctx(void **state)
{
    hess_context *ctx = NULL;
    if (hess_context_create(NULL, &ctx) != HESS_OK)
        return -1;
    *state = ctx;
    return 0;
}

int teardown_ctx(void **state)
{
    hess_context_destroy(*state);
    return 0;
}

const char *data_path(const char *name)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", HESS_TEST_DATA_DIR, name);
    return buf;
}

double rnd_uniform(uint64_t *s, double lo, double hi)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return lo + (hi - lo) * (double)(*s >> 11) * (1.0 / 9007199254740992.0);
}
