/*
 * custom_op.c -- an op of your own: softsign, defined at run time, and its
 * exact gradient and Hessian beside those of the same model written from
 * built-in ops.
 *
 * The story, top to bottom:
 *
 *  1. The op.  softsign(x) = x / (1 + |x|), elementwise, with
 *         d softsign(x) = dx / (1 + |x|)^2.
 *     Like PyTorch's autograd.Function or a JAX primitive, it is described
 *     once (a hess_op record) and registered in the context:
 *       - forward:  a loop over doubles, y[i] = x[i] / (1 + |x[i]|);
 *       - vjp:      the cotangent of x given the cotangent g of y, built from
 *                   libhessian's own ops: g / (1 + |x|)^2, with
 *                   |x| = relu(x) + relu(-x).  Because the rule is made of
 *                   ops that have rules themselves, the result can be
 *                   differentiated again: the Hessian (and every higher
 *                   derivative) of a model using softsign follows;
 *       - flags:    HESS_OP_ELEMENTWISE, so that forward mode takes the vjp
 *                   as the op's tangent rule and the exact Hessian diagonal
 *                   covers it by curvature backpropagation.
 *     hess_op_apply() then uses it like any built-in op.
 *
 *  2. The model, a small network on a batch of 4 samples:
 *         loss = mse(softsign(x W1^T + b1) W2^T + b2, y),
 *     x [4,3], W1 [2,3], b1 [2], W2 [2,2], b2 [2], y [4,2]: 14 parameters.
 *     It is built twice in one context: with the user op, and with softsign
 *     written from built-in ops, x / (1 + relu(x) + relu(-x)).
 *
 *  3. Derivatives of both: the gradient (hess_grad), printed side by side,
 *     the 14 x 14 Hessian (hess_hessian), printed for both, and the Hessian
 *     diagonal by curvature backpropagation (hess_hessian_diag_ex with
 *     HESS_DIAG_BACKPROP) of the user-op model against the Hessian's
 *     diagonal.  The largest absolute difference of each is printed.
 *
 * Exit status: 0 every difference is at most 1e-12 ("PASS"); 1 some
 * difference is larger ("FAIL"); 2 an argument was given (the program takes
 * none); 3 a library call failed (the context's message goes to stderr).
 */
#include "hessian.h"

#include <math.h>
#include <stdio.h>

enum { CO_OK = 0, CO_DIFFERENT = 1, CO_BAD_ARGS = 2, CO_LIBRARY_ERROR = 3 };

#define LIMIT 1e-12 /* largest difference accepted */
#define NP    4     /* W1 b1 W2 b2 */
#define N     14    /* parameter elements */

/* ------------------------------------------------------------------------ */
/* The op: softsign                                                         */
/* ------------------------------------------------------------------------ */

/* y = x / (1 + |x|), element by element (src[0] has out's shape: an
 * elementwise op without a shape callback takes sources of the result's
 * shape). */
static hess_status softsign_forward(
    size_t n, const hess_op_array src[], const hess_op_array *out, double *y, void *user)
{
    (void)n, (void)user;
    const double *x = src[0].data;
    for (int64_t i = 0; i < out->numel; i++)
        y[i] = x[i] / (1.0 + fabs(x[i]));
    return HESS_OK;
}

/* 1 + |x| from ops: relu(x) + relu(-x) is |x| exactly. */
static hess_tensor *one_plus_abs(hess_context *ctx, hess_tensor *x)
{
    hess_tensor *abs_x = hess_add(ctx, hess_relu(ctx, x), hess_relu(ctx, hess_neg(ctx, x)));
    return hess_add(ctx, hess_scalar(ctx, 1.0), abs_x);
}

/* The cotangent of x: g / (1 + |x|)^2, built from ops (never from numbers
 * read out of x: the graph is evaluated again for other values). */
static hess_status softsign_vjp(hess_context *ctx,
                                hess_tensor *out,
                                size_t n,
                                hess_tensor *const src[],
                                hess_tensor *g,
                                hess_tensor *grads[],
                                void *user)
{
    (void)out, (void)n, (void)user;
    grads[0] = hess_div(ctx, g, hess_square(ctx, one_plus_abs(ctx, src[0])));
    return HESS_OK; /* an op that failed above has recorded its error: the library sees it */
}

static const hess_op softsign_op = {
    .name = "softsign",
    .arity = 1,
    .flags = HESS_OP_ELEMENTWISE,
    .forward = softsign_forward,
    .vjp = softsign_vjp,
};

/* ------------------------------------------------------------------------ */
/* The model                                                                */
/* ------------------------------------------------------------------------ */

static const double W1[6] = {0.8, -0.5, 0.3, -0.2, 0.9, -0.7}, b1[2] = {0.1, -0.3};
static const double W2[4] = {1.2, -0.6, 0.4, 0.9}, b2[2] = {0.05, -0.15};
static const double X[12] = {1.0, -0.5, 2.0, 0.3, 0.8, -1.2, -1.5, 0.2, 0.7, 0.6, -0.9, 0.4};
static const double Y[8] = {0.5, -0.2, 0.1, 0.4, -0.3, 0.6, 0.2, -0.1};
static const char *const names[NP] = {"W1", "b1", "W2", "b2"};

/* The loss; p[] receives W1 b1 W2 b2.  softsign is the user op when op is
 * not NULL, else built from ops.  NULL with the error in ctx. */
static hess_tensor *build_loss(hess_context *ctx, const hess_op_handle *op, hess_tensor *p[NP])
{
    p[0] = hess_param_new(ctx, 2, (const int64_t[]){2, 3}, W1);
    p[1] = hess_param_new(ctx, 1, (const int64_t[]){2}, b1);
    p[2] = hess_param_new(ctx, 2, (const int64_t[]){2, 2}, W2);
    p[3] = hess_param_new(ctx, 1, (const int64_t[]){2}, b2);
    hess_tensor *x = hess_tensor_new(ctx, 2, (const int64_t[]){4, 3}, X);
    hess_tensor *y = hess_tensor_new(ctx, 2, (const int64_t[]){4, 2}, Y);
    hess_tensor *a = hess_linear(ctx, x, p[0], p[1]); /* [4,2] */
    hess_tensor *h = op ? hess_op_apply(ctx, op, 1, &a) : hess_div(ctx, a, one_plus_abs(ctx, a));
    return hess_mse_loss(ctx, hess_linear(ctx, h, p[2], p[3]), y);
}

/* ------------------------------------------------------------------------ */
/* Printing and comparing                                                   */
/* ------------------------------------------------------------------------ */

static double max_diff(const double *a, const double *b, size_t n)
{
    double d = 0.0;
    for (size_t i = 0; i < n; i++)
        d = fmax(d, isnan(a[i] - b[i]) ? INFINITY : fabs(a[i] - b[i]));
    return d;
}

static void print_matrix(const char *title, const double *h)
{
    printf("%s\n", title);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < N; j++)
            printf("%7.3f", h[i * N + j]);
        putchar('\n');
    }
}

static int library_error(const hess_context *ctx, const char *what)
{
    fprintf(stderr, "custom_op: %s failed: %s\n", what, hess_context_errmsg(ctx));
    return CO_LIBRARY_ERROR;
}

int main(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "custom_op: takes no arguments\n");
        return CO_BAD_ARGS;
    }
    hess_context *ctx = NULL;
    if (hess_context_create(NULL, &ctx) != HESS_OK) {
        fprintf(stderr, "custom_op: cannot create a context\n");
        return CO_LIBRARY_ERROR;
    }
    int rc = CO_OK;
    const hess_op_handle *softsign = NULL;
    hess_tensor *pu[NP], *pb[NP], *gu[NP], *gb[NP];
    static double hu[N * N], hb[N * N], diag[N], hdiag[N];
    double gvu[N], gvb[N];
    hess_hessian_opts opts = {.method = HESS_DIAG_BACKPROP};
    if (hess_op_register(ctx, &softsign_op, &softsign) != HESS_OK)
        rc = library_error(ctx, "hess_op_register");
    hess_tensor *lu = rc ? NULL : build_loss(ctx, softsign, pu);
    hess_tensor *lb = rc ? NULL : build_loss(ctx, NULL, pb);
    if (!rc && (!lu || !lb))
        rc = library_error(ctx, "building the models");
    if (!rc && (hess_grad(ctx, lu, NP, pu, gu, 0) != HESS_OK ||
                hess_grad(ctx, lb, NP, pb, gb, 0) != HESS_OK ||
                hess_params_get(NP, gu, gvu) != HESS_OK || hess_params_get(NP, gb, gvb) != HESS_OK))
        rc = library_error(ctx, "hess_grad");
    if (!rc && (hess_hessian(ctx, lu, NP, pu, hu) != HESS_OK ||
                hess_hessian(ctx, lb, NP, pb, hb) != HESS_OK))
        rc = library_error(ctx, "hess_hessian");
    if (!rc && hess_hessian_diag_ex(ctx, lu, NP, pu, &opts, diag) != HESS_OK)
        rc = library_error(ctx, "hess_hessian_diag_ex");
    if (rc) {
        hess_context_destroy(ctx);
        return rc;
    }

    printf("loss: user op %.17g, built-in ops %.17g\n\n", hess_tensor_data(lu)[0],
           hess_tensor_data(lb)[0]);
    printf("gradient              user op (softsign)       built-in ops    |difference|\n");
    for (int i = 0, k = 0; i < NP; i++)
        for (int64_t j = 0; j < hess_tensor_numel(pu[i]); j++, k++)
            printf("  %s[%lld]%*s %+.17f %+.17f  %.1e\n", names[i], (long long)j, j < 10 ? 8 : 7,
                   "", gvu[k], gvb[k], fabs(gvu[k] - gvb[k]));
    putchar('\n');
    print_matrix("Hessian, user op (softsign):", hu);
    putchar('\n');
    print_matrix("Hessian, built-in ops:", hb);
    for (int i = 0; i < N; i++)
        hdiag[i] = hu[i * N + i];

    const double dg = max_diff(gvu, gvb, N), dh = max_diff(hu, hb, N * N);
    const double dd = max_diff(diag, hdiag, N);
    printf("\nmax |difference|, user op against built-in ops (limit %g):\n", LIMIT);
    printf("  gradient  %.1e  %s\n", dg, dg <= LIMIT ? "ok" : "TOO LARGE");
    printf("  Hessian   %.1e  %s\n", dh, dh <= LIMIT ? "ok" : "TOO LARGE");
    printf("  diagonal by curvature backpropagation against the Hessian's: %.1e  %s\n", dd,
           dd <= LIMIT ? "ok" : "TOO LARGE");
    rc = dg <= LIMIT && dh <= LIMIT && dd <= LIMIT ? CO_OK : CO_DIFFERENT;
    printf("%s\n", rc == CO_OK ? "PASS" : "FAIL");
    hess_context_destroy(ctx);
    return rc;
}
