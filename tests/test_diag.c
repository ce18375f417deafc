/*
 * test_diag.c -- the exact Hessian diagonal by curvature backpropagation and
 * the generalized Gauss-Newton functions, through the public API: on networks
 * (batches of samples, compressed columns; one sample, explicit columns;
 * several curved layers, where the diagonal parts become columns; weight
 * tying; softmax; composite losses) against the diagonal of hess_hessian;
 * the choice HESS_DIAG_AUTO makes and reports; graphs the rules do not cover;
 * the GGN against J^T H_L J formed densely from hess_jacobian and the Hessian
 * with respect to the output; and the seed model against PyTorch's values.
 * Each op's curvature rule is checked in test_grad's table.
 */
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define RTOL       1e-10

static void fill(uint64_t *s, double *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = rnd_uniform(s, lo, hi);
}

static hess_tensor *
rand_param(hess_context *ctx, uint64_t *s, int nd, const int64_t *shape, double a)
{
    int64_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= shape[i];
    double *buf = malloc((size_t)n * sizeof *buf);
    fill(s, buf, (size_t)n, -a, a);
    hess_tensor *t = hess_param_new(ctx, nd, shape, buf);
    free(buf);
    return t;
}

static hess_tensor *
rand_const(hess_context *ctx, uint64_t *s, int nd, const int64_t *shape, double a)
{
    double buf[4096];
    int64_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= shape[i];
    fill(s, buf, (size_t)n, -a, a);
    return hess_tensor_new(ctx, nd, shape, buf);
}

static double max_abs(const double *a, size_t n)
{
    double r = 0;
    for (size_t i = 0; i < n; i++)
        r = fabs(a[i]) > r ? fabs(a[i]) : r;
    return r;
}

/* The diagonal by the method asked (and the one that ran) against that of
 * the full Hessian, to RTOL of the largest element. */
static void expect_diag(
    hess_context *ctx, hess_tensor *L, size_t n, hess_tensor *const p[], int method, int want_used)
{
    const size_t N = hess_param_count(n, p);
    double *H = test_malloc(N * N * sizeof *H), *d = test_malloc(N * sizeof *d),
           *h = test_malloc(N * sizeof *h);
    assert_ok(ctx, hess_hessian(ctx, L, n, p, H));
    for (size_t i = 0; i < N; i++)
        h[i] = H[i * N + i];
    int used = -1;
    hess_hessian_opts o = {0};
    o.method = method;
    o.method_used = &used;
    assert_ok(ctx, hess_hessian_diag_ex(ctx, L, n, p, &o, d));
    assert_int_equal(used, want_used);
    const double scale = max_abs(h, N);
    assert_true(scale > 1e-6);
    for (size_t i = 0; i < N; i++)
        assert_close(d[i], h[i], 0, RTOL * scale);
    test_free(H), test_free(d), test_free(h);
}

/* An MLP on a batch: x [B, I] -> linear -> act -> linear [B, O], the
 * activations given per layer (NULL: identity). */
typedef hess_tensor *(*act_fn)(hess_context *, hess_tensor *);

static hess_tensor *
mlp(hess_context *ctx, hess_tensor *x, hess_tensor *const p[], int layers, const act_fn *act)
{
    hess_tensor *h = x;
    for (int l = 0; l < layers; l++) {
        h = hess_linear(ctx, h, p[2 * l], p[2 * l + 1]);
        if (l < layers - 1 && act[l])
            h = act[l](ctx, h);
    }
    return h;
}

/* W1's shape at a smaller width: Linear(6,5) -> tanh -> Linear(5,3), MSE,
 * batch 4 (compressed: 3 columns per sample against N = 53 rows). */
static void test_diag_mlp_mse_batch(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    uint64_t s = 1;
    hess_tensor *p[4] = {
        rand_param(ctx, &s, 2, SHAPE(5, 6), 0.6), rand_param(ctx, &s, 1, SHAPE(5), 0.3),
        rand_param(ctx, &s, 2, SHAPE(3, 5), 0.6), rand_param(ctx, &s, 1, SHAPE(3), 0.3)};
    hess_tensor *x = rand_const(ctx, &s, 2, SHAPE(4, 6), 1),
                *y = rand_const(ctx, &s, 2, SHAPE(4, 3), 1);
    const act_fn act[1] = {hess_tanh};
    hess_tensor *L = hess_mse_loss(ctx, mlp(ctx, x, p, 2, act), y);
    expect_diag(ctx, L, 4, p, HESS_DIAG_BACKPROP, HESS_DIAG_BACKPROP);
    expect_diag(ctx, L, 4, p, HESS_DIAG_ROWS, HESS_DIAG_ROWS);
    hess_context_destroy(ctx);
}

/* Three curved layers and cross-entropy: the diagonal parts of the lower
 * layers become columns (sigmoid, softplus, tanh; relu has none). */
static void test_diag_deep_cross_entropy(void **state)
{
    (void)state;
    const act_fn acts[2][3] = {{hess_sigmoid, hess_softplus, hess_tanh},
                               {hess_relu, hess_tanh, hess_relu}};
    for (int v = 0; v < 2; v++) {
        hess_context *ctx = test_context();
        uint64_t s = 7 + (uint64_t)v;
        const int64_t w[5] = {4, 6, 5, 6, 4};
        hess_tensor *p[8];
        for (int l = 0; l < 4; l++) {
            p[2 * l] = rand_param(ctx, &s, 2, SHAPE(w[l + 1], w[l]), 0.8);
            p[2 * l + 1] = rand_param(ctx, &s, 1, SHAPE(w[l + 1]), 0.3);
        }
        hess_tensor *x = rand_const(ctx, &s, 2, SHAPE(5, 4), 1.5);
        hess_tensor *t = hess_tensor_new(ctx, 1, SHAPE(5), (const double[]){0, 3, 1, 2, 3});
        hess_tensor *L = hess_cross_entropy(ctx, mlp(ctx, x, p, 4, acts[v]), t);
        expect_diag(ctx, L, 8, p, HESS_DIAG_BACKPROP, HESS_DIAG_BACKPROP);
        hess_context_destroy(ctx);
    }
}

/* One sample, vector forms (W x): explicit columns. */
static void test_diag_single_sample(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    uint64_t s = 3;
    hess_tensor *p[4] = {
        rand_param(ctx, &s, 2, SHAPE(4, 3), 0.7), rand_param(ctx, &s, 1, SHAPE(4), 0.3),
        rand_param(ctx, &s, 2, SHAPE(5, 4), 0.7), rand_param(ctx, &s, 1, SHAPE(5), 0.3)};
    hess_tensor *x = rand_const(ctx, &s, 1, SHAPE(3), 1), *y = rand_const(ctx, &s, 1, SHAPE(5), 1);
    const act_fn act[1] = {hess_sigmoid};
    hess_tensor *L = hess_mse_loss(ctx, mlp(ctx, x, p, 2, act), y);
    expect_diag(ctx, L, 4, p, HESS_DIAG_BACKPROP, HESS_DIAG_BACKPROP);
    /* softmax then MSE on the probabilities, and bce_with_logits */
    hess_tensor *L2 = hess_mse_loss(ctx, hess_softmax(ctx, mlp(ctx, x, p, 2, act), 0), y);
    expect_diag(ctx, L2, 4, p, HESS_DIAG_BACKPROP, HESS_DIAG_BACKPROP);
    hess_tensor *pr = hess_tensor_new(ctx, 1, SHAPE(5), (const double[]){0, 1, 0.5, 0.2, 1});
    hess_tensor *L3 = hess_bce_with_logits(ctx, mlp(ctx, x, p, 2, act), pr);
    expect_diag(ctx, L3, 4, p, HESS_DIAG_BACKPROP, HESS_DIAG_BACKPROP);
    hess_context_destroy(ctx);
}

/* A composite loss (mean of squares and of exponentials), softmax on a
 * batch, and a log_softmax with a hand-made NLL. */
static void test_diag_composite_losses(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    uint64_t s = 5;
    hess_tensor *p[4] = {
        rand_param(ctx, &s, 2, SHAPE(4, 3), 0.7), rand_param(ctx, &s, 1, SHAPE(4), 0.3),
        rand_param(ctx, &s, 2, SHAPE(3, 4), 0.7), rand_param(ctx, &s, 1, SHAPE(3), 0.3)};
    hess_tensor *x = rand_const(ctx, &s, 2, SHAPE(6, 3), 1),
                *y = rand_const(ctx, &s, 2, SHAPE(6, 3), 1);
    const act_fn act[1] = {hess_tanh};
    hess_tensor *z = mlp(ctx, x, p, 2, act);
    hess_tensor *L1 = hess_add(ctx, hess_mean(ctx, hess_square(ctx, hess_sub(ctx, z, y))),
                               hess_scale(ctx, hess_mean(ctx, hess_exp(ctx, z)), 0.1));
    expect_diag(ctx, L1, 4, p, HESS_DIAG_BACKPROP, HESS_DIAG_BACKPROP);
    hess_tensor *L2 = hess_sum(ctx, hess_mul(ctx, hess_softmax(ctx, z, 1), y));
    expect_diag(ctx, L2, 4, p, HESS_DIAG_BACKPROP, HESS_DIAG_BACKPROP);
    double oh[18] = {0};
    for (int b = 0; b < 6; b++)
        oh[b * 3 + b % 3] = 1;
    hess_tensor *Y = hess_tensor_new(ctx, 2, SHAPE(6, 3), oh);
    hess_tensor *L3 = hess_neg(ctx, hess_mean(ctx, hess_mul(ctx, hess_log_softmax(ctx, z, -1), Y)));
    expect_diag(ctx, L3, 4, p, HESS_DIAG_BACKPROP, HESS_DIAG_BACKPROP);
    hess_context_destroy(ctx);
}

/* A parameter used by two ops (a scale a inside the first layer and added
 * to the output: tied), and a product of two tensors that share the
 * parameters (z * sigmoid(z)): the columns cannot be compressed per sample
 * for the first, so the sweep uses explicit columns, where the uses meet;
 * exact.  A weight used as x W^T and again on an activation that depends on
 * it (h W^T with h made from W) is a product the rules do not cover: rows. */
static void test_diag_shared_parameters(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    uint64_t s = 11;
    hess_tensor *W = rand_param(ctx, &s, 2, SHAPE(4, 4), 0.6),
                *b = rand_param(ctx, &s, 1, SHAPE(4), 0.3);
    hess_tensor *a = rand_param(ctx, &s, 1, SHAPE(4), 1.0),
                *V = rand_param(ctx, &s, 2, SHAPE(4, 4), 0.6);
    hess_tensor *x = rand_const(ctx, &s, 2, SHAPE(3, 4), 1),
                *y = rand_const(ctx, &s, 2, SHAPE(3, 4), 1);
    hess_tensor *h = hess_tanh(ctx, hess_mul(ctx, hess_linear(ctx, x, W, b), a));
    hess_tensor *z = hess_add(ctx, hess_linear(ctx, h, V, NULL), a); /* a again */
    hess_tensor *L = hess_mse_loss(ctx, hess_mul(ctx, z, hess_sigmoid(ctx, z)), y);
    hess_tensor *p[4] = {W, b, a, V};
    expect_diag(ctx, L, 4, p, HESS_DIAG_BACKPROP, HESS_DIAG_BACKPROP);
    /* a parameter x [2,2] read per sample (x * ...) and as a shared weight
     * (W @ x): the two reads meet in explicit columns (found by fuzzing) */
    hess_tensor *x2 = rand_param(ctx, &s, 2, SHAPE(2, 2), 1.0);
    hess_tensor *W2 = rand_const(ctx, &s, 2, SHAPE(2, 2), 1.0);
    hess_tensor *Lx[4] = {
        hess_sum(ctx, hess_mul(ctx, hess_matmul(ctx, W2, x2), x2)),
        hess_sum(ctx, hess_mul(ctx, hess_matmul(ctx, W2, x2), hess_square(ctx, x2))),
        hess_sum(ctx, hess_mul(ctx, hess_matmul(ctx, x2, W2), x2)),
        hess_sum(ctx, hess_mul(ctx, hess_transpose(ctx, x2), x2))};
    for (int i = 0; i < 4; i++)
        expect_diag(ctx, Lx[i], 1, &x2, HESS_DIAG_BACKPROP, HESS_DIAG_BACKPROP);
    hess_tensor *z2 = hess_linear(ctx, h, W, NULL); /* W again, on h made from W */
    hess_tensor *L2 = hess_mse_loss(ctx, z2, y);
    expect_diag(ctx, L2, 3, p, HESS_DIAG_AUTO, HESS_DIAG_ROWS);
    hess_context_destroy(ctx);
}

/* What the rules do not cover: a matmul of two tensors that depend on one
 * parameter.  Forcing the method is refused with the op named; AUTO takes
 * the rows and says so. */
static void test_diag_not_covered(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    uint64_t s = 13;
    hess_tensor *X = rand_param(ctx, &s, 2, SHAPE(3, 4), 0.8);
    hess_tensor *L = hess_sum(ctx, hess_tanh(ctx, hess_matmul(ctx, X, hess_transpose(ctx, X))));
    double d[12];
    hess_hessian_opts o = {0};
    int used = -1;
    o.method = HESS_DIAG_BACKPROP;
    o.method_used = &used;
    assert_int_equal(hess_hessian_diag_ex(ctx, L, 1, &X, &o, d), HESS_ERR_ARG);
    assert_non_null(strstr(hess_context_errmsg(ctx), "hess_hessian_diag"));
    assert_non_null(strstr(hess_context_errmsg(ctx), "op matmul"));
    assert_non_null(strstr(hess_context_errmsg(ctx), "HESS_DIAG_AUTO"));
    hess_context_clear_error(ctx);
    expect_diag(ctx, L, 1, &X, HESS_DIAG_AUTO, HESS_DIAG_ROWS);
    o.method = 7;
    assert_int_equal(hess_hessian_diag_ex(ctx, L, 1, &X, &o, d), HESS_ERR_ARG);
    assert_non_null(strstr(hess_context_errmsg(ctx), "not a diagonal method"));
    hess_context_destroy(ctx);
}

/* The rules every Hessian function keeps: a stale graph is brought up to
 * date, an unused parameter is named (zeros with HESS_ALLOW_UNUSED),
 * progress is reported and cancellation honoured. */
static int count_progress(size_t done, size_t total, void *user)
{
    int *calls = user;
    (*calls)++;
    return done == total && *calls > 100; /* never: one call for the sweep */
}

static int cancel_at_once(size_t done, size_t total, void *user)
{
    (void)done, (void)total, (void)user;
    return 1;
}

static void test_diag_rules(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    uint64_t s = 17;
    hess_tensor *p[4] = {
        rand_param(ctx, &s, 2, SHAPE(3, 2), 0.7), rand_param(ctx, &s, 1, SHAPE(3), 0.3),
        rand_param(ctx, &s, 2, SHAPE(2, 3), 0.7), rand_param(ctx, &s, 1, SHAPE(2), 0.3)};
    hess_tensor *x = rand_const(ctx, &s, 2, SHAPE(4, 2), 1),
                *y = rand_const(ctx, &s, 2, SHAPE(4, 2), 1);
    const act_fn act[1] = {hess_tanh};
    hess_tensor *L = hess_mse_loss(ctx, mlp(ctx, x, p, 2, act), y);
    double w[6] = {0.1, 0.9, -0.4, 0.3, 0.2, -0.8};
    assert_ok(ctx, hess_param_set(ctx, p[0], w));
    assert_true(hess_tensor_is_stale(L));
    expect_diag(ctx, L, 4, p, HESS_DIAG_BACKPROP, HESS_DIAG_BACKPROP);

    hess_tensor *u = rand_param(ctx, &s, 1, SHAPE(2), 1);
    hess_tensor *pu[2] = {p[0], u};
    double d[32];
    assert_int_equal(hess_hessian_diag(ctx, L, 2, pu, d), HESS_ERR_NODIFF);
    assert_non_null(strstr(hess_context_errmsg(ctx), "params[1]"));
    hess_context_clear_error(ctx);
    hess_hessian_opts o = {0};
    o.flags = HESS_ALLOW_UNUSED;
    o.method = HESS_DIAG_BACKPROP;
    assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 2, pu, &o, d));
    assert_true(d[6] == 0.0 && d[7] == 0.0);

    int calls = 0;
    hess_hessian_opts op = {0};
    op.progress = count_progress;
    op.user = &calls;
    assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 4, p, &op, d));
    assert_int_equal(calls, 1);
    op.progress = cancel_at_once;
    assert_int_equal(hess_hessian_diag_ex(ctx, L, 4, p, &op, d), HESS_ERR_CANCELLED);
    hess_context_destroy(ctx);
}

/* bench/'s W2 shape (784 -> 128 -> tanh -> 10, cross-entropy; 101,770
 * parameters) on a batch of 8: the diagonal by backpropagation, spot-checked
 * against hess_hvp on unit vectors (the full Hessian would be 83 GB). */
static void test_diag_w2_spot_check(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    uint64_t s = 37;
    hess_tensor *p[4] = {
        rand_param(ctx, &s, 2, SHAPE(128, 784), 0.036), rand_param(ctx, &s, 1, SHAPE(128), 0.036),
        rand_param(ctx, &s, 2, SHAPE(10, 128), 0.088), rand_param(ctx, &s, 1, SHAPE(10), 0.088)};
    double *xb = malloc(8 * 784 * sizeof *xb);
    fill(&s, xb, 8 * 784, -1, 1);
    hess_tensor *x = hess_tensor_new(ctx, 2, SHAPE(8, 784), xb);
    free(xb);
    hess_tensor *t = hess_tensor_new(ctx, 1, SHAPE(8), (const double[]){3, 1, 4, 1, 5, 9, 2, 6});
    const act_fn act[1] = {hess_tanh};
    hess_tensor *L = hess_cross_entropy(ctx, mlp(ctx, x, p, 2, act), t);
    const size_t N = hess_param_count(4, p);
    assert_int_equal(N, 101770);
    double *d = malloc(N * sizeof *d), *e = calloc(N, sizeof *e), *hv = malloc(N * sizeof *hv);
    int used = -1;
    hess_hessian_opts o = {0};
    o.method_used = &used;
    assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 4, p, &o, d));
    assert_int_equal(used, HESS_DIAG_BACKPROP);
    /* an element of each parameter, and the largest of W1's and W2's */
    size_t idx[6] = {12345, 100352 + 17, 100480 + 640, 101760 + 3, 0, 100480};
    for (size_t i = 0; i < 100352; i++)
        idx[4] = fabs(d[i]) > fabs(d[idx[4]]) ? i : idx[4];
    for (size_t i = 100480; i < 101760; i++)
        idx[5] = fabs(d[i]) > fabs(d[idx[5]]) ? i : idx[5];
    for (int k = 0; k < 6; k++) {
        e[idx[k]] = 1.0;
        assert_ok(ctx, hess_hvp(ctx, L, 4, p, e, hv));
        e[idx[k]] = 0.0;
        assert_close(d[idx[k]], hv[idx[k]], 1e-10, 1e-15);
    }
    free(d), free(e), free(hv);
    hess_context_destroy(ctx);
}

/* The edges of the sweep: a loss made before a parameter (unused: named, or
 * zeros), a loss the parameters do not reach, a parameter reached only
 * through a gradient taken without HESS_CREATE_GRAPH (refused, saying what
 * to do), a loss of two sources that share a parameter (not covered: rows),
 * too many columns to materialise (not covered: rows), a log_softmax along
 * the samples (the per-sample form does not fit: explicit columns). */
static void test_diag_edges(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    uint64_t s = 41;
    hess_tensor *p = rand_param(ctx, &s, 1, SHAPE(3), 1.0);
    hess_tensor *L = hess_sum(ctx, hess_exp(ctx, p));
    hess_tensor *late = rand_param(ctx, &s, 1, SHAPE(2), 1.0);
    double d[16];
    hess_hessian_opts o = {0};
    o.method = HESS_DIAG_BACKPROP;
    assert_int_equal(hess_hessian_diag_ex(ctx, L, 1, &late, &o, d), HESS_ERR_NODIFF);
    assert_non_null(strstr(hess_context_errmsg(ctx), "does not depend on params[0]"));
    hess_context_clear_error(ctx);
    o.flags = HESS_ALLOW_UNUSED;
    d[0] = d[1] = -1;
    assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 1, &late, &o, d));
    assert_true(d[0] == 0.0 && d[1] == 0.0);
    /* a loss of constants, after the parameter: zeros with HESS_ALLOW_UNUSED */
    hess_tensor *Lc = hess_sum(ctx, hess_square(ctx, rand_const(ctx, &s, 1, SHAPE(3), 1.0)));
    d[0] = -1;
    assert_ok(ctx, hess_hessian_diag_ex(ctx, Lc, 1, &p, &o, d));
    assert_true(d[0] == 0.0 && d[1] == 0.0 && d[2] == 0.0);
    o.flags = 0;

    /* through a gradient without HESS_CREATE_GRAPH */
    hess_tensor *g;
    assert_ok(ctx, hess_grad(ctx, L, 1, &p, &g, 0));
    hess_tensor *L2 = hess_add(ctx, hess_sum(ctx, hess_square(ctx, g)), L);
    assert_int_equal(hess_hessian_diag_ex(ctx, L2, 1, &p, &o, d), HESS_ERR_NODIFF);
    assert_non_null(strstr(hess_context_errmsg(ctx), "HESS_CREATE_GRAPH"));
    hess_context_clear_error(ctx);

    /* mse of two tensors made from one parameter: curved across them */
    hess_tensor *L3 = hess_mse_loss(ctx, hess_exp(ctx, p), hess_sin(ctx, p));
    assert_int_equal(hess_hessian_diag_ex(ctx, L3, 1, &p, &o, d), HESS_ERR_ARG);
    assert_non_null(
        strstr(hess_context_errmsg(ctx), "curved in two sources that depend on one parameter"));
    hess_context_clear_error(ctx);
    expect_diag(ctx, L3, 1, &p, HESS_DIAG_AUTO, HESS_DIAG_ROWS);

    /* a diagonal part on a node of 9000 elements to turn into columns */
    hess_tensor *x = rand_param(ctx, &s, 2, SHAPE(1, 4), 0.1);
    double *wb = malloc(4 * 9000 * sizeof *wb);
    fill(&s, wb, 4 * 9000, -0.1, 0.1);
    hess_tensor *W = hess_tensor_new(ctx, 2, SHAPE(4, 9000), wb);
    free(wb);
    hess_tensor *L4 = hess_sum(ctx, hess_exp(ctx, hess_matmul(ctx, x, W)));
    assert_int_equal(hess_hessian_diag_ex(ctx, L4, 1, &x, &o, d), HESS_ERR_ARG);
    assert_non_null(strstr(hess_context_errmsg(ctx), "too many columns"));
    hess_context_clear_error(ctx);
    expect_diag(ctx, L4, 1, &x, HESS_DIAG_AUTO, HESS_DIAG_ROWS);

    /* log_softmax over the batch dimension of a batched layer */
    hess_tensor *pw[2] = {rand_param(ctx, &s, 2, SHAPE(3, 4), 0.7),
                          rand_param(ctx, &s, 1, SHAPE(3), 0.3)};
    hess_tensor *xb = rand_const(ctx, &s, 2, SHAPE(5, 4), 1.0),
                *yb = rand_const(ctx, &s, 2, SHAPE(5, 3), 1.0);
    hess_tensor *L5 = hess_sum(
        ctx, hess_mul(ctx, hess_log_softmax(ctx, hess_linear(ctx, xb, pw[0], pw[1]), 0), yb));
    expect_diag(ctx, L5, 2, pw, HESS_DIAG_BACKPROP, HESS_DIAG_BACKPROP);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* The generalized Gauss-Newton matrix                                       */
/* ------------------------------------------------------------------------ */

/* G = J^T H_L J formed densely: J by hess_jacobian, H_L by hess_hessian with
 * respect to the output. */
static void dense_ggn(
    hess_context *ctx, hess_tensor *L, hess_tensor *z, size_t n, hess_tensor *const p[], double *G)
{
    const size_t N = hess_param_count(n, p), M = (size_t)hess_tensor_numel(z);
    double *J = test_malloc(M * N * sizeof *J), *HL = test_malloc(M * M * sizeof *HL);
    double *HJ = test_malloc(M * N * sizeof *HJ);
    assert_ok(ctx, hess_jacobian(ctx, z, n, p, J));
    assert_ok(ctx, hess_hessian(ctx, L, 1, &z, HL));
    for (size_t a = 0; a < M; a++)
        for (size_t c = 0; c < N; c++) {
            double acc = 0;
            for (size_t b = 0; b < M; b++)
                acc += HL[a * M + b] * J[b * N + c];
            HJ[a * N + c] = acc;
        }
    for (size_t r = 0; r < N; r++)
        for (size_t c = 0; c < N; c++) {
            double acc = 0;
            for (size_t a = 0; a < M; a++)
                acc += J[a * N + r] * HJ[a * N + c];
            G[r * N + c] = acc;
        }
    test_free(J), test_free(HL), test_free(HJ);
}

static void
check_ggn(hess_context *ctx, hess_tensor *L, hess_tensor *z, size_t n, hess_tensor *const p[])
{
    const size_t N = hess_param_count(n, p);
    double *G = test_malloc(N * N * sizeof *G), *d = test_malloc(N * sizeof *d);
    double *v = test_malloc(N * sizeof *v), *gv = test_malloc(N * sizeof *gv);
    dense_ggn(ctx, L, z, n, p, G);
    const double scale = max_abs(G, N * N);
    assert_true(scale > 1e-6);
    assert_ok(ctx, hess_ggn_diag(ctx, L, z, n, p, d));
    for (size_t i = 0; i < N; i++)
        assert_close(d[i], G[i * N + i], 0, RTOL * scale);
    uint64_t s = 99;
    fill(&s, v, N, -1, 1);
    assert_ok(ctx, hess_ggn_vp(ctx, L, z, n, p, v, gv));
    for (size_t r = 0; r < N; r++) {
        double acc = 0;
        for (size_t c = 0; c < N; c++)
            acc += G[r * N + c] * v[c];
        assert_close(gv[r], acc, 0, RTOL * scale * (double)N);
    }
    test_free(G), test_free(d), test_free(v), test_free(gv);
}

static void test_ggn_against_dense(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    uint64_t s = 23;
    hess_tensor *p[4] = {
        rand_param(ctx, &s, 2, SHAPE(5, 4), 0.7), rand_param(ctx, &s, 1, SHAPE(5), 0.3),
        rand_param(ctx, &s, 2, SHAPE(3, 5), 0.7), rand_param(ctx, &s, 1, SHAPE(3), 0.3)};
    hess_tensor *x = rand_const(ctx, &s, 2, SHAPE(4, 4), 1),
                *y = rand_const(ctx, &s, 2, SHAPE(4, 3), 1);
    const act_fn act[1] = {hess_tanh};
    hess_tensor *z = mlp(ctx, x, p, 2, act);
    hess_tensor *t = hess_tensor_new(ctx, 1, SHAPE(4), (const double[]){2, 0, 1, 1});
    check_ggn(ctx, hess_mse_loss(ctx, z, y), z, 4, p);
    check_ggn(ctx, hess_cross_entropy(ctx, z, t), z, 4, p);
    /* a curved composite loss, and a loss the rules do not cover (a matmul of
     * the output with itself): the products with unit vectors */
    check_ggn(ctx, hess_mean(ctx, hess_exp(ctx, hess_sub(ctx, z, y))), z, 4, p);
    check_ggn(ctx, hess_sum(ctx, hess_tanh(ctx, hess_matmul(ctx, z, hess_transpose(ctx, z)))), z, 4,
              p);
    /* the output one layer down: the GGN there keeps the tanh's curvature */
    hess_tensor *h = hess_linear(ctx, x, p[0], p[1]);
    hess_tensor *L = hess_mse_loss(ctx, hess_linear(ctx, hess_tanh(ctx, h), p[2], p[3]), y);
    hess_tensor *p0[2] = {p[0], p[1]};
    check_ggn(ctx, L, h, 2, p0);
    hess_context_destroy(ctx);
}

/* The GGN of an MSE loss over a linear model is its Hessian. */
static void test_ggn_linear_model_is_hessian(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    uint64_t s = 29;
    hess_tensor *p[2] = {rand_param(ctx, &s, 2, SHAPE(3, 4), 0.7),
                         rand_param(ctx, &s, 1, SHAPE(3), 0.3)};
    hess_tensor *x = rand_const(ctx, &s, 2, SHAPE(5, 4), 1),
                *y = rand_const(ctx, &s, 2, SHAPE(5, 3), 1);
    hess_tensor *z = hess_linear(ctx, x, p[0], p[1]);
    hess_tensor *L = hess_mse_loss(ctx, z, y);
    double g[15], h[15];
    assert_ok(ctx, hess_ggn_diag(ctx, L, z, 2, p, g));
    assert_ok(ctx, hess_hessian_diag(ctx, L, 2, p, h));
    assert_close_array(g, h, 15, 1e-13, 1e-14);
    hess_context_destroy(ctx);
}

static void test_ggn_bad_arguments(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    uint64_t s = 31;
    hess_tensor *W = rand_param(ctx, &s, 2, SHAPE(2, 2), 1);
    hess_tensor *x = rand_const(ctx, &s, 1, SHAPE(2), 1);
    hess_tensor *z = hess_matmul(ctx, W, x), *L = hess_sum(ctx, hess_square(ctx, z));
    hess_tensor *later = hess_exp(ctx, z);
    double v[4] = {1, 0, 0, 1}, out[4];
    assert_int_equal(hess_ggn_diag(ctx, L, later, 1, &W, out), HESS_ERR_ARG);
    assert_non_null(strstr(hess_context_errmsg(ctx), "does not depend on the output"));
    hess_context_clear_error(ctx);
    assert_int_equal(hess_ggn_vp(ctx, z, z, 1, &W, v, out), HESS_ERR_ARG); /* z is not a scalar */
    hess_context_clear_error(ctx);
    assert_int_equal(hess_ggn_vp(ctx, L, z, 1, &W, NULL, out), HESS_ERR_ARG);
    hess_context_clear_error(ctx);
    assert_int_equal(hess_ggn_diag(NULL, L, z, 1, &W, out), HESS_ERR_ARG);
    hess_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diag_mlp_mse_batch),
        cmocka_unit_test(test_diag_deep_cross_entropy),
        cmocka_unit_test(test_diag_single_sample),
        cmocka_unit_test(test_diag_composite_losses),
        cmocka_unit_test(test_diag_shared_parameters),
        cmocka_unit_test(test_diag_not_covered),
        cmocka_unit_test(test_diag_rules),
        cmocka_unit_test(test_diag_w2_spot_check),
        cmocka_unit_test(test_diag_edges),
        cmocka_unit_test(test_ggn_against_dense),
        cmocka_unit_test(test_ggn_linear_model_is_hessian),
        cmocka_unit_test(test_ggn_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
