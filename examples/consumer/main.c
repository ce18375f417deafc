/*
 * consumer/main.c -- builds against an *installed* libhessian, using only
 * <hessian.h>.  f(x0, x1) = x0^2 * x1 + 3 x1 at (2, 5):
 *   gradient  [2 x0 x1, x0^2 + 3]      = [20, 7]
 *   Hessian   [[2 x1, 2 x0], [2 x0, 0]] = [[10, 4], [4, 0]]
 * Exits 0 when every value matches, 1 otherwise.
 */
#include <hessian.h>

#include <stdio.h>

static int check(const char *what, double got, double want)
{
    double err = got > want ? got - want : want - got;
    double tol = 1e-12 * (1.0 + (want < 0 ? -want : want));
    if (!(err <= tol)) { /* NaN fails too */
        fprintf(stderr, "consumer: %s = %.17g, expected %.17g\n", what, got, want);
        return 1;
    }
    return 0;
}

int main(void)
{
    if (hess_version() != HESS_VERSION_NUMBER) {
        fprintf(stderr, "consumer: header is %d, library is %u (%s)\n", HESS_VERSION_NUMBER,
                hess_version(), hess_version_string());
        return 1;
    }

    hess_context *ctx = NULL;
    hess_status s = hess_context_create(NULL, &ctx);
    if (s != HESS_OK) {
        fprintf(stderr, "consumer: hess_context_create: %s\n", hess_status_str(s));
        return 1;
    }

    const double v0 = 2.0, v1 = 5.0;
    hess_tensor *x[2] = {hess_param_new(ctx, 0, NULL, &v0), hess_param_new(ctx, 0, NULL, &v1)};
    hess_tensor *f =
        hess_add(ctx, hess_mul(ctx, hess_square(ctx, x[0]), x[1]), hess_scale(ctx, x[1], 3.0));
    hess_tensor *g[2] = {NULL, NULL};
    double h[4] = {0};
    s = hess_context_status(ctx);
    if (s == HESS_OK)
        s = hess_grad(ctx, f, 2, x, g, 0);
    if (s == HESS_OK)
        s = hess_hessian(ctx, f, 2, x, h);
    if (s != HESS_OK) {
        fprintf(stderr, "consumer: %s: %s\n", hess_status_str(s), hess_context_errmsg(ctx));
        hess_context_destroy(ctx);
        return 1;
    }

    int bad = check("f", hess_tensor_data(f)[0], 35.0);
    bad |= check("df/dx0", hess_tensor_data(g[0])[0], 20.0);
    bad |= check("df/dx1", hess_tensor_data(g[1])[0], 7.0);
    const double want[4] = {10.0, 4.0, 4.0, 0.0};
    for (int i = 0; i < 4; i++) {
        char what[16];
        snprintf(what, sizeof what, "H[%d][%d]", i / 2, i % 2);
        bad |= check(what, h[i], want[i]);
    }
    hess_context_destroy(ctx);
    if (!bad)
        printf("consumer: libhessian %s OK\n", hess_version_string());
    return bad;
}
