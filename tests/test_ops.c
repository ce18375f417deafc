/*
 * test_ops.c -- forward values of every public op against hand-computed
 * results: literal tables for the small cases, closed forms evaluated here with
 * libm, and plain reference loops (index arithmetic written out) for
 * broadcasting, batched products, reductions and softmax.  Shapes (rank and
 * every dimension) are checked with the values.  Derivatives are test_grad's.
 */
#include "check.h"
#include "hess_internal.h" /* hess__matmul_t: the transpose-flag forms */

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* An op of the registry applied by name, as the generic builder does it (for
 * the ops no public function makes directly). */
static hess_tensor *op2(const char *name, hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return hess__apply2(ctx, hess__op_find(name), a, b, name);
}

#define RTOL 1e-14
#define ATOL 1e-15

#define SHP(...) ((const int64_t[]){__VA_ARGS__})
#define VAL(...) ((const double[]){__VA_ARGS__})

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static hess_tensor *mk(hess_context *ctx, int ndim, const int64_t *shape, const double *data)
{
    hess_tensor *t = hess_tensor_new(ctx, ndim, shape, data);
    assert_ok(ctx, hess_context_status(ctx));
    assert_non_null(t);
    return t;
}

/* A tensor with values lo, lo + step, ... */
static hess_tensor *ramp(hess_context *ctx, int ndim, const int64_t *shape, double lo, double step)
{
    double buf[1024];
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    assert_true(n <= 1024);
    for (int64_t i = 0; i < n; i++)
        buf[i] = lo + step * (double)i;
    return mk(ctx, ndim, shape, buf);
}

/* A context on the portable kernels only (HESS_NO_SIMD), beside the default
 * one, whose kernels may be the AVX2 ones. */
static hess_context *portable_context(void)
{
    hess_context *ctx;
    assert_int_equal(hess_context_create(&(hess_config){.flags = HESS_NO_SIMD}, &ctx), HESS_OK);
    return ctx;
}

static void check_shape(const hess_tensor *t, int ndim, const int64_t *shape)
{
    assert_non_null(t);
    assert_int_equal(hess_tensor_ndim(t), ndim);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        assert_int_equal(hess_tensor_shape(t)[i], shape[i]);
        n *= shape[i];
    }
    assert_int_equal(hess_tensor_numel(t), n);
}

/* t has this rank, shape and values (to RTOL/ATOL); the context has no error. */
static void check_tensor(
    hess_context *ctx, const hess_tensor *t, int ndim, const int64_t *shape, const double *expected)
{
    assert_ok(ctx, hess_context_status(ctx));
    check_shape(t, ndim, shape);
    assert_close_array(hess_tensor_data(t), expected, (size_t)hess_tensor_numel(t), RTOL, ATOL);
}

static void check_scalar(hess_context *ctx, const hess_tensor *t, double expected)
{
    check_tensor(ctx, t, 0, NULL, &expected);
}

/* ------------------------------------------------------------------------ */
/* Leaves                                                                   */
/* ------------------------------------------------------------------------ */

static void test_ops_tensor_new_copies_data(void **state)
{
    hess_context *ctx = *state;
    double src[6] = {1, 2, 3, 4, 5, 6};
    hess_tensor *t = mk(ctx, 2, SHP(2, 3), src);
    src[0] = 100.0; /* the tensor holds a copy */
    check_tensor(ctx, t, 2, SHP(2, 3), VAL(1, 2, 3, 4, 5, 6));
    assert_int_equal(hess_tensor_is_param(t), 0);

    hess_tensor *z = mk(ctx, 3, SHP(2, 1, 2), NULL);
    check_tensor(ctx, z, 3, SHP(2, 1, 2), VAL(0, 0, 0, 0));

    hess_tensor *p = hess_param_new(ctx, 1, SHP(3), VAL(7, 8, 9));
    check_tensor(ctx, p, 1, SHP(3), VAL(7, 8, 9));
    assert_int_equal(hess_tensor_is_param(p), 1);

    hess_tensor *s = hess_scalar(ctx, -2.5);
    check_scalar(ctx, s, -2.5);
    assert_int_equal(hess_tensor_numel(s), 1);

    /* rank HESS_MAX_DIMS is allowed */
    hess_tensor *big = mk(ctx, 6, SHP(1, 2, 1, 2, 1, 2), NULL);
    check_shape(big, 6, SHP(1, 2, 1, 2, 1, 2));
}

/* ------------------------------------------------------------------------ */
/* Elementwise binary ops and broadcasting                                  */
/* ------------------------------------------------------------------------ */

static void test_ops_add_sub_mul_div_same_shape(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 2), VAL(1, 2, 3, 4));
    hess_tensor *b = mk(ctx, 2, SHP(2, 2), VAL(0.5, -2, 8, 16));
    check_tensor(ctx, hess_add(ctx, a, b), 2, SHP(2, 2), VAL(1.5, 0, 11, 20));
    check_tensor(ctx, hess_sub(ctx, a, b), 2, SHP(2, 2), VAL(0.5, 4, -5, -12));
    check_tensor(ctx, hess_mul(ctx, a, b), 2, SHP(2, 2), VAL(0.5, -4, 24, 64));
    check_tensor(ctx, hess_div(ctx, a, b), 2, SHP(2, 2), VAL(2, -1, 0.375, 0.25));
}

static void test_ops_add_broadcast_row(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), VAL(1, 2, 3, 4, 5, 6));
    hess_tensor *b = mk(ctx, 1, SHP(3), VAL(10, 20, 30));
    const double *want = VAL(11, 22, 33, 14, 25, 36);
    check_tensor(ctx, hess_add(ctx, a, b), 2, SHP(2, 3), want);
    check_tensor(ctx, hess_add(ctx, b, a), 2, SHP(2, 3), want);
    check_tensor(ctx, hess_sub(ctx, b, a), 2, SHP(2, 3), VAL(9, 18, 27, 6, 15, 24));
    check_tensor(ctx, hess_div(ctx, a, b), 2, SHP(2, 3), VAL(0.1, 0.1, 0.1, 0.4, 0.25, 0.2));
}

static void test_ops_mul_broadcast_outer(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 1), VAL(2, 3));
    hess_tensor *b = mk(ctx, 2, SHP(1, 3), VAL(1, 10, 100));
    check_tensor(ctx, hess_mul(ctx, a, b), 2, SHP(2, 3), VAL(2, 20, 200, 3, 30, 300));
    check_tensor(ctx, hess_mul(ctx, b, a), 2, SHP(2, 3), VAL(2, 20, 200, 3, 30, 300));
    check_tensor(ctx, hess_add(ctx, a, b), 2, SHP(2, 3), VAL(3, 12, 102, 4, 13, 103));
    check_tensor(ctx, hess_sub(ctx, a, b), 2, SHP(2, 3), VAL(1, -8, -98, 2, -7, -97));
}

static void test_ops_binary_scalar_with_tensor(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *s = hess_scalar(ctx, 4.0);
    hess_tensor *t = mk(ctx, 2, SHP(2, 2), VAL(1, 2, -4, 8));
    check_tensor(ctx, hess_add(ctx, s, t), 2, SHP(2, 2), VAL(5, 6, 0, 12));
    check_tensor(ctx, hess_add(ctx, t, s), 2, SHP(2, 2), VAL(5, 6, 0, 12));
    check_tensor(ctx, hess_sub(ctx, s, t), 2, SHP(2, 2), VAL(3, 2, 8, -4));
    check_tensor(ctx, hess_sub(ctx, t, s), 2, SHP(2, 2), VAL(-3, -2, -8, 4));
    check_tensor(ctx, hess_mul(ctx, s, t), 2, SHP(2, 2), VAL(4, 8, -16, 32));
    check_tensor(ctx, hess_div(ctx, s, t), 2, SHP(2, 2), VAL(4, 2, -1, 0.5));
    check_tensor(ctx, hess_div(ctx, t, s), 2, SHP(2, 2), VAL(0.25, 0.5, -1, 2));
    /* rank 0 with rank 0 stays rank 0 */
    check_scalar(ctx, hess_mul(ctx, s, hess_scalar(ctx, -0.5)), -2.0);
    check_scalar(ctx, hess_sub(ctx, s, hess_scalar(ctx, 1.5)), 2.5);
    /* a [1] tensor with a scalar gives [1] */
    check_tensor(ctx, hess_add(ctx, mk(ctx, 1, SHP(1), VAL(1)), s), 1, SHP(1), VAL(5));
}

static void test_ops_sub_broadcast_rank3(void **state)
{
    hess_context *ctx = *state;
    /* [4,1,3] - [2,3] -> [4,2,3] */
    hess_tensor *a = ramp(ctx, 3, SHP(4, 1, 3), 0.0, 1.0); /* a[i,0,k] = 3i + k */
    hess_tensor *b = ramp(ctx, 2, SHP(2, 3), 100.0, 10.0); /* b[j,k] = 100 + 10(3j + k) */
    double want[24];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++)
            for (int k = 0; k < 3; k++)
                want[(i * 2 + j) * 3 + k] = (3 * i + k) - (100 + 10 * (3 * j + k));
    check_tensor(ctx, hess_sub(ctx, a, b), 3, SHP(4, 2, 3), want);
    for (int q = 0; q < 24; q++)
        want[q] = -want[q];
    check_tensor(ctx, hess_sub(ctx, b, a), 3, SHP(4, 2, 3), want);
}

/* Every binary op on [2,1,3,1] with [4,1,2] -> [2,4,3,2], against index arithmetic. */
static void test_ops_binary_broadcast_general(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = ramp(ctx, 4, SHP(2, 1, 3, 1), 1.0, 1.0); /* a[i,0,k,0] = 1 + 3i + k */
    hess_tensor *b = ramp(ctx, 3, SHP(4, 1, 2), 0.5, 0.25);   /* b[j,0,l] = 0.5 + (2j + l)/4 */
    double want[4][48];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 3; k++)
                for (int l = 0; l < 2; l++) {
                    const double x = 1.0 + 3 * i + k, y = 0.5 + 0.25 * (2 * j + l);
                    const int q = ((i * 4 + j) * 3 + k) * 2 + l;
                    want[0][q] = x + y;
                    want[1][q] = x - y;
                    want[2][q] = x * y;
                    want[3][q] = x / y;
                }
    const int64_t *shape = SHP(2, 4, 3, 2);
    check_tensor(ctx, hess_add(ctx, a, b), 4, shape, want[0]);
    check_tensor(ctx, hess_sub(ctx, a, b), 4, shape, want[1]);
    check_tensor(ctx, hess_mul(ctx, a, b), 4, shape, want[2]);
    check_tensor(ctx, hess_div(ctx, a, b), 4, shape, want[3]);
}

static void test_ops_div_broadcast_column(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), VAL(1, 2, 3, 4, 5, 6));
    hess_tensor *b = mk(ctx, 2, SHP(2, 1), VAL(2, -4));
    check_tensor(ctx, hess_div(ctx, a, b), 2, SHP(2, 3), VAL(0.5, 1, 1.5, -1, -1.25, -1.5));
    check_tensor(ctx, hess_div(ctx, b, a), 2, SHP(2, 3), VAL(2, 1, 2.0 / 3, -1, -0.8, -4.0 / 6));
}

static void test_ops_neg_scale(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(3, 1), VAL(1, -2, 0.5));
    check_tensor(ctx, hess_neg(ctx, a), 2, SHP(3, 1), VAL(-1, 2, -0.5));
    check_tensor(ctx, hess_scale(ctx, a, 3.0), 2, SHP(3, 1), VAL(3, -6, 1.5));
    check_tensor(ctx, hess_scale(ctx, a, 0.0), 2, SHP(3, 1), VAL(0, 0, 0));
    check_scalar(ctx, hess_scale(ctx, hess_scalar(ctx, 2.0), -0.25), -0.5);
    check_scalar(ctx, hess_neg(ctx, hess_scalar(ctx, 2.0)), -2.0);
}

/* ------------------------------------------------------------------------ */
/* Matrix products, transpose, reshape                                      */
/* ------------------------------------------------------------------------ */

/* c[m,n] = a[m,k] b[k,n] by the textbook loop. */
static void naive_mm(int m, int k, int n, const double *a, const double *b, double *c)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++)
                s += a[i * k + p] * b[p * n + j];
            c[i * n + j] = s;
        }
}

static void test_ops_matmul_matrix_matrix(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), VAL(1, 2, 3, 4, 5, 6));
    hess_tensor *b = mk(ctx, 2, SHP(3, 2), VAL(7, 8, 9, 10, 11, 12));
    check_tensor(ctx, hess_matmul(ctx, a, b), 2, SHP(2, 2), VAL(58, 64, 139, 154));
    check_tensor(ctx, hess_matmul(ctx, b, a), 2, SHP(3, 3),
                 VAL(39, 54, 69, 49, 68, 87, 59, 82, 105));

    /* sizes that use the blocked kernel's four-row groups and the remainder rows */
    double x[9 * 7], y[7 * 6], want[9 * 6];
    for (int i = 0; i < 9 * 7; i++)
        x[i] = sin(0.3 * i) + 0.1 * i;
    for (int i = 0; i < 7 * 6; i++)
        y[i] = cos(0.7 * i) - 0.05 * i;
    naive_mm(9, 7, 6, x, y, want);
    hess_tensor *X = mk(ctx, 2, SHP(9, 7), x), *Y = mk(ctx, 2, SHP(7, 6), y);
    hess_tensor *c = hess_matmul(ctx, X, Y);
    assert_ok(ctx, hess_context_status(ctx));
    check_shape(c, 2, SHP(9, 6));
    assert_close_array(hess_tensor_data(c), want, 54, 1e-13, 1e-13);
}

static void test_ops_matmul_matrix_vector(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), VAL(1, 2, 3, 4, 5, 6));
    hess_tensor *v = mk(ctx, 1, SHP(3), VAL(1, -1, 2));
    const int64_t before = hess_context_mark(ctx).nodes;
    check_tensor(ctx, hess_matmul(ctx, a, v), 1, SHP(2), VAL(5, 11));
    assert_int_equal(hess_context_mark(ctx).nodes, before + 1); /* one node, no reshapes */
    /* the transposed form: A stored [3,2], A^T v */
    hess_tensor *at = mk(ctx, 2, SHP(3, 2), VAL(1, 4, 2, 5, 3, 6));
    check_tensor(ctx, hess__matmul_t(ctx, at, v, true, false, "test_ops"), 1, SHP(2), VAL(5, 11));
}

static void test_ops_matmul_vector_matrix(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *v = mk(ctx, 1, SHP(2), VAL(2, -1));
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), VAL(1, 2, 3, 4, 5, 6));
    const int64_t before = hess_context_mark(ctx).nodes;
    check_tensor(ctx, hess_matmul(ctx, v, a), 1, SHP(3), VAL(-2, -1, 0));
    assert_int_equal(hess_context_mark(ctx).nodes, before + 1);
    /* the transposed form: B stored [3,2], v B^T */
    hess_tensor *bt = mk(ctx, 2, SHP(3, 2), VAL(1, 4, 2, 5, 3, 6));
    check_tensor(ctx, hess__matmul_t(ctx, v, bt, false, true, "test_ops"), 1, SHP(3),
                 VAL(-2, -1, 0));
    /* a vector whose length does not fit */
    assert_null(hess__matmul_t(ctx, v, bt, false, false, "test_ops"));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_SHAPE);
    hess_context_clear_error(ctx);
}

static void test_ops_matmul_vector_vector(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *u = mk(ctx, 1, SHP(4), VAL(1, 2, 3, 4));
    hess_tensor *v = mk(ctx, 1, SHP(4), VAL(0.5, -1, 2, 0.25));
    check_scalar(ctx, hess_matmul(ctx, u, v), 0.5 - 2 + 6 + 1);
    /* [1] x [1] is a dot product too */
    check_scalar(ctx, hess_matmul(ctx, mk(ctx, 1, SHP(1), VAL(3)), mk(ctx, 1, SHP(1), VAL(-2))),
                 -6);
}

/* Two vectors, both transposed: the outer-product node that the backward
 * rules of the vector forms build for one cotangent. */
static void test_ops_matmul_outer(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *u = mk(ctx, 1, SHP(3), VAL(1, -2, 0.5));
    hess_tensor *v = mk(ctx, 1, SHP(2), VAL(4, -0.25));
    const int64_t before = hess_context_mark(ctx).nodes;
    check_tensor(ctx, hess__matmul_t(ctx, u, v, true, true, "test_ops"), 2, SHP(3, 2),
                 VAL(4, -0.25, -8, 0.5, 2, -0.125));
    assert_int_equal(hess_context_mark(ctx).nodes, before + 1);
    /* one transposed vector of two is no form */
    assert_null(hess__matmul_t(ctx, u, v, true, false, "test_ops"));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_SHAPE);
    hess_context_clear_error(ctx);
    /* d sum(W x) / dW = 1 x^T for one sample: the seed, its broadcast and
     * one outer-product node, no reshapes */
    hess_tensor *W = hess_param_new(ctx, 2, SHP(2, 3), VAL(1, 2, 3, 4, 5, 6));
    hess_tensor *L = hess_sum(ctx, hess_linear(ctx, u, W, NULL));
    hess_tensor *g;
    const int64_t at = hess_context_mark(ctx).nodes;
    assert_ok(ctx, hess_grad(ctx, L, 1, &W, &g, 0));
    assert_int_equal(hess_context_mark(ctx).nodes, at + 3);
    check_tensor(ctx, g, 2, SHP(2, 3), VAL(1, -2, 0.5, 1, -2, 0.5));
}

/* Batched hess_matmul against per-matrix products, the batch dims broadcast. */
static void test_ops_matmul_batched(void **state)
{
    hess_context *ctx = *state;
    double want[64], tmp[16];

    /* [2,3,4] x [4,2] -> [2,3,2]: the shared right operand */
    hess_tensor *a = ramp(ctx, 3, SHP(2, 3, 4), -1.0, 0.125);
    hess_tensor *b = ramp(ctx, 2, SHP(4, 2), 0.5, -0.25);
    for (int q = 0; q < 2; q++)
        naive_mm(3, 4, 2, hess_tensor_data(a) + q * 12, hess_tensor_data(b), want + q * 6);
    check_tensor(ctx, hess_matmul(ctx, a, b), 3, SHP(2, 3, 2), want);

    /* [3,4] x [2,4,2] -> [2,3,2]: the shared left operand */
    hess_tensor *l = ramp(ctx, 2, SHP(3, 4), 1.0, -0.5);
    hess_tensor *r = ramp(ctx, 3, SHP(2, 4, 2), -2.0, 0.375);
    for (int q = 0; q < 2; q++)
        naive_mm(3, 4, 2, hess_tensor_data(l), hess_tensor_data(r) + q * 8, want + q * 6);
    check_tensor(ctx, hess_matmul(ctx, l, r), 3, SHP(2, 3, 2), want);

    /* [2,1,2,3] x [3,3,2] -> [2,3,2,2]: both operands broadcast */
    hess_tensor *x = ramp(ctx, 4, SHP(2, 1, 2, 3), 0.25, 0.5);
    hess_tensor *y = ramp(ctx, 3, SHP(3, 3, 2), 1.0, -0.125);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            naive_mm(2, 3, 2, hess_tensor_data(x) + i * 6, hess_tensor_data(y) + j * 6,
                     want + (i * 3 + j) * 4);
    check_tensor(ctx, hess_matmul(ctx, x, y), 4, SHP(2, 3, 2, 2), want);

    /* [2,3,4] x [4] -> [2,3] and [4] x [2,4,2] -> [2,2] */
    hess_tensor *v = mk(ctx, 1, SHP(4), VAL(1, -1, 0.5, 2));
    for (int q = 0; q < 2; q++)
        naive_mm(3, 4, 1, hess_tensor_data(a) + q * 12, hess_tensor_data(v), want + q * 3);
    check_tensor(ctx, hess_matmul(ctx, a, v), 2, SHP(2, 3), want);
    for (int q = 0; q < 2; q++) {
        naive_mm(1, 4, 2, hess_tensor_data(v), hess_tensor_data(r) + q * 8, tmp);
        want[q * 2] = tmp[0];
        want[q * 2 + 1] = tmp[1];
    }
    check_tensor(ctx, hess_matmul(ctx, v, r), 2, SHP(2, 2), want);
}

/* op(A) op(B) with one operand batched -- the form a Hessian sweep's products
 * take -- for every transpose-flag pair, against a loop over the batch, at
 * two sizes, in a default context and one with HESS_NO_SIMD, which stack
 * the products differently (the kernels themselves are
 * test_ops_matmul_kernels').
 * With sparse, the batched leaf is one-hot per block (the unit directions of
 * a sweep), which takes the zero-skipping path. */
static void test_ops_matmul_stacked_flags(void **state)
{
    hess_context *plain = portable_context();                     /* other stacking (mm_plan) */
    static const int64_t sizes[2][3] = {{5, 7, 6}, {20, 24, 16}}; /* m, n, k */
    static double av[3 * 24 * 24], bv[3 * 24 * 24], want[3 * 24 * 24];
    for (int c = 0; c < 2; c++)
        for (int sparse = 0; sparse < 2; sparse++)
            for (int s = 0; s < 2; s++)
                for (int f = 0; f < 4; f++)
                    for (int side = 0; side < 2; side++) {
                        const int64_t m = sizes[s][0], n = sizes[s][1], k = sizes[s][2], K = 3;
                        const bool ta = f & 1, tb = f & 2, abat = side == 0;
                        /* stored shapes: A [m,k] or [k,m]; B [k,n] or [n,k] */
                        const int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k,
                                      bc = tb ? k : n;
                        const int64_t na = (abat ? K : 1) * ar * ac, nb = (abat ? 1 : K) * br * bc;
                        for (int64_t i = 0; i < na; i++)
                            av[i] = sin(0.37 * (double)i + s + f);
                        for (int64_t i = 0; i < nb; i++)
                            bv[i] = cos(0.23 * (double)i - s + f);
                        if (sparse) { /* the batched operand one-hot per block, as in a
                                       * Hessian sweep, and one block all zero */
                            double *bat = abat ? av : bv;
                            const int64_t blk = abat ? ar * ac : br * bc;
                            memset(bat, 0, (size_t)(K * blk) * sizeof(double));
                            bat[(7 * (s + f) + side) % blk] = 1.0;
                            bat[2 * blk + (3 * f + 1) % blk] = -2.5;
                        }
                        for (int64_t q = 0; q < K; q++) {
                            const double *a = av + (abat ? q * ar * ac : 0);
                            const double *b = bv + (abat ? 0 : q * br * bc);
                            for (int64_t i = 0; i < m; i++)
                                for (int64_t j = 0; j < n; j++) {
                                    double acc = 0.0;
                                    for (int64_t p = 0; p < k; p++)
                                        acc += (ta ? a[p * m + i] : a[i * k + p]) *
                                               (tb ? b[j * k + p] : b[p * n + j]);
                                    want[(q * m + i) * n + j] = acc;
                                }
                        }
                        const int64_t sa[3] = {K, ar, ac}, sb[3] = {K, br, bc};
                        hess_context *ctx = c ? plain : *state;
                        hess_tensor *A = abat ? mk(ctx, 3, sa, av) : mk(ctx, 2, sa + 1, av);
                        hess_tensor *B = abat ? mk(ctx, 2, sb + 1, bv) : mk(ctx, 3, sb, bv);
                        check_tensor(ctx, hess__matmul_t(ctx, A, B, ta, tb, "test_ops"), 3,
                                     SHP(K, m, n), want);
                    }
    hess_context_destroy(plain);
}

/* The zero-skipping path (products of at least 4096 multiply-adds): a reshape
 * view of a mostly-zero leaf takes it too, and a non-finite value in the dense
 * operand gives NaN as 0 * inf does. */
static void test_ops_matmul_sparse_edges(void **state)
{
    hess_context *ctx = *state;
    enum { M = 16, K = 24, N = 16, Q = 4 }; /* Q x 16 x 16 x 24 multiply-adds */
    static double a[M * K], b[Q * K * N], want[Q * M * N];
    for (int i = 0; i < M * K; i++)
        a[i] = sin(0.3 * i + 0.1);
    memset(b, 0, sizeof b);
    b[1] = 2.0;                  /* block 0: B(0,1) */
    b[K * N + 5 * N] = 1.0;      /* block 1: B(5,0) */
    b[K * N + 7 * N + 3] = -0.5; /* and B(7,3) */
    /* blocks 2 and 3 stay zero */
    hess_tensor *A = mk(ctx, 2, SHP(M, K), a);
    hess_tensor *Bv = hess_reshape(ctx, mk(ctx, 2, SHP(Q, K * N), b), 3, SHP(Q, K, N));
    for (int q = 0; q < Q; q++)
        naive_mm(M, K, N, a, b + K * N * q, want + M * N * q);
    check_tensor(ctx, hess_matmul(ctx, A, Bv), 3, SHP(Q, M, N), want);

    a[5] = INFINITY; /* row 0, column 5: meets B(5,0) of block 1 and zeros elsewhere */
    A = mk(ctx, 2, SHP(M, K), a);
    for (int q = 0; q < Q; q++)
        naive_mm(M, K, N, a, b + K * N * q, want + M * N * q);
    hess_tensor *C = hess_matmul(ctx, A, Bv);
    assert_non_null(C);
    for (int i = 0; i < Q * M * N; i++) {
        const double got = hess_tensor_data(C)[i];
        assert_true(isnan(want[i]) ? isnan(got) : got == want[i]);
    }
    assert_true(isnan(want[1])); /* the case is real: 0 * inf in block 0, row 0 */
}

/* A leaf's writer counts its chunks with a nonzero (par.leaf.nz_chunks), so a
 * product never scans a dense leaf, and the products' kernels never write into
 * their sources: a dense and a sparse operand give the dense product's values
 * either way, before and after hess_param_set. */
static void test_ops_matmul_dense_verdict(void **state)
{
    hess_context *ctx = *state;
    enum { M = 16, K = 24, N = 16 }; /* 6144 multiply-adds: the zero path is tried */
    static double x[M * K], dense[K * N], sparse[K * N], want[M * N];
    for (int i = 0; i < M * K; i++)
        x[i] = cos(0.41 * i);
    for (int i = 0; i < K * N; i++)
        dense[i] = 1.0 + 0.5 * sin(0.7 * i);
    sparse[3 * N + 2] = 1.5;
    sparse[20 * N + 15] = -2.0;
    hess_tensor *X = mk(ctx, 2, SHP(M, K), x);
    hess_tensor *P = hess_param_new(ctx, 2, SHP(K, N), dense);
    assert_int_equal(P->par.leaf.nz_chunks, K * N / 8);
    const hess_tensor before = *P;
    hess_tensor *C = hess_matmul(ctx, X, P);
    naive_mm(M, K, N, x, dense, want);
    check_tensor(ctx, C, 2, SHP(M, N), want);
    /* the kernel left its source alone (field by field: the struct's padding
     * is not part of its value, and valgrind rightly flags a memcmp over it) */
    assert_int_equal(P->flags, before.flags);
    assert_int_equal(P->stamp, before.stamp);
    assert_int_equal(P->par.leaf.nz_chunks, before.par.leaf.nz_chunks);
    assert_ptr_equal(P->data, before.data);
    assert_ptr_equal(P->scratch, before.scratch);
    assert_ptr_equal(P->def, before.def);
    assert_ok(ctx, hess_param_set(ctx, P, sparse));
    assert_int_equal(P->par.leaf.nz_chunks, 2);
    assert_ok(ctx, hess_recompute(ctx));
    naive_mm(M, K, N, x, sparse, want);
    check_tensor(ctx, C, 2, SHP(M, N), want);
    assert_ok(ctx, hess_param_set(ctx, P, dense));
    assert_int_equal(P->par.leaf.nz_chunks, K * N / 8);
    naive_mm(M, K, N, x, dense, want);
    check_tensor(ctx, hess_matmul(ctx, X, P), 2, SHP(M, N), want);
}

/* The zero-skipping scan of a batched leaf whose element count is not a
 * multiple of its chunks of 8: the last chunk is short, and positions past
 * the end are skipped.  A batched operand that is computed (not a leaf's
 * values, not a view of them) is never scanned: the dense product. */
static void test_ops_matmul_sparse_tail(void **state)
{
    hess_context *ctx = *state;
    enum { M = 16, K = 13, N = 7, Q = 3 }; /* 4368 multiply-adds; B has 273 elements */
    static double a[M * K], b[Q * K * N], want[Q * M * N];
    for (int i = 0; i < M * K; i++)
        a[i] = cos(0.23 * i) - 0.1;
    memset(b, 0, sizeof b);
    b[Q * K * N - 1] = 2.5; /* block 2: B(12, 6), alone in the short last chunk */
    hess_tensor *A = mk(ctx, 2, SHP(M, K), a);
    hess_tensor *B = mk(ctx, 3, SHP(Q, K, N), b);
    assert_int_equal(B->par.leaf.nz_chunks, 1);
    for (int q = 0; q < Q; q++)
        naive_mm(M, K, N, a, b + K * N * q, want + M * N * q);
    for (int i = 0; i < M; i++) /* the one column it makes */
        assert_true(want[2 * M * N + i * N + 6] == 2.5 * a[i * K + 12]);
    check_tensor(ctx, hess_matmul(ctx, A, B), 3, SHP(Q, M, N), want);
    /* the same values through a computed operand: -(-B) */
    check_tensor(ctx, hess_matmul(ctx, A, hess_neg(ctx, hess_neg(ctx, B))), 3, SHP(Q, M, N), want);
    /* and with the batch on the left: A_b = B_b^T [N, K] times a^T [K, M] */
    hess_tensor *Bt = hess_transpose(ctx, B), *At = hess_transpose(ctx, A);
    static double wt[Q * N * M];
    for (int q = 0; q < Q; q++)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                wt[(q * N + j) * M + i] = want[(q * M + i) * N + j];
    check_tensor(ctx, hess_matmul(ctx, Bt, At), 3, SHP(Q, N, M), wt);
}

/* The transposed-operand builders the layers use check what the public
 * functions check: a missing context or operand, and shapes that do not
 * fit, for the product and for the product with a bias (LINEAR). */
static void test_ops_matmul_internal_checks(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = ramp(ctx, 2, SHP(2, 3), 1.0, 1.0), *b = ramp(ctx, 2, SHP(4, 3), -1.0, 0.5);
    hess_tensor *c = mk(ctx, 1, SHP(4), VAL(1, 2, 3, 4));
    assert_null(hess__matmul_t(NULL, a, b, false, true, "t"));
    assert_null(hess__linear_t(NULL, a, b, false, true, c, "t"));
    assert_int_equal(hess_context_status(ctx), HESS_OK);
    const struct {
        hess_tensor *x, *y, *z;
    } bad[] = {{NULL, b, c}, {a, NULL, c}, {a, b, NULL}};
    for (int i = 0; i < 3; i++) {
        if (bad[i].z)
            assert_null(hess__matmul_t(ctx, bad[i].x, bad[i].y, false, true, "t"));
        else
            assert_null(hess__linear_t(ctx, bad[i].x, bad[i].y, false, true, bad[i].z, "t"));
        assert_int_equal(hess_context_status(ctx), HESS_ERR_ARG);
        assert_string_equal(hess_context_errmsg(ctx), "t: NULL tensor");
        hess_context_clear_error(ctx);
        if (bad[i].z) {
            assert_null(hess__linear_t(ctx, bad[i].x, bad[i].y, false, true, bad[i].z, "t"));
            assert_string_equal(hess_context_errmsg(ctx), "t: NULL tensor");
            hess_context_clear_error(ctx);
        }
    }
    assert_null(hess__linear_t(ctx, a, b, false, false, c, "t"));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_SHAPE);
    assert_string_equal(hess_context_errmsg(ctx), "t: inner dimensions differ: [2,3] x [4,3]");
    hess_context_clear_error(ctx);
    assert_null(hess__linear_t(ctx, a, b, false, true, mk(ctx, 1, SHP(3), VAL(1, 2, 3)), "t"));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_SHAPE);
    assert_string_equal(hess_context_errmsg(ctx), "t: bias [3] does not fit rows of [2,4]");
    hess_context_clear_error(ctx);
    /* and what fits: a b^T + c */
    double want[8];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            want[i * 4 + j] = j + 1.0;
            for (int k = 0; k < 3; k++)
                want[i * 4 + j] += (1.0 + i * 3 + k) * (-1.0 + 0.5 * (j * 3 + k));
        }
    check_tensor(ctx, hess__linear_t(ctx, a, b, false, true, c, "t"), 2, SHP(2, 4), want);
}

/* Every matrix-product kernel against a long double loop, for every transpose
 * pair: the AVX2 kernel (the default context, where the CPU has it) and the
 * portable one (HESS_NO_SIMD), at sizes that take each tail of its 6 x 8 tile
 * (m mod 6, n mod 8), several column panels (n > 16), several depth panels
 * (k > 128), the tiny products it leaves to the portable kernel, and one
 * above 2^19 multiply-adds (BLAS when built in).  Error bound: k ulps of
 * sum |A(i,p) B(p,j)|. */
static void test_ops_matmul_kernels(void **state)
{
    (void)state;
    static const int64_t sizes[][3] = {{6, 8, 5},    {7, 9, 4},     {11, 13, 17}, {12, 16, 129},
                                       {5, 37, 33},  {23, 10, 300}, {3, 5, 7},    {4, 4, 3},
                                       {32, 10, 32}, {81, 83, 80},  {10, 12, 20}, {16, 14, 140},
                                       {10, 15, 9},  {4, 20, 130}}; /* m, n, k */
    hess_context *simd, *plain;
    assert_int_equal(hess_context_create(NULL, &simd), HESS_OK);
    plain = portable_context();
    assert_true(hess__simd_available() == simd->simd);
    assert_false(plain->simd);
    bool differ = false; /* the kernels round differently: both ran */
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int f = 0; f < 4; f++) {
            const int64_t m = sizes[s][0], n = sizes[s][1], k = sizes[s][2];
            const bool ta = f & 1, tb = f & 2;
            double *a = malloc((size_t)(m * k) * sizeof(double));
            double *b = malloc((size_t)(k * n) * sizeof(double));
            assert_non_null(a);
            assert_non_null(b);
            for (int64_t i = 0; i < m * k; i++)
                a[i] = sin(0.37 * (double)i + (double)s) * (1.0 + 0.001 * (double)f);
            for (int64_t i = 0; i < k * n; i++)
                b[i] = cos(0.23 * (double)i - (double)s);
            const hess_tensor *c[2];
            hess_context *ctxs[2] = {simd, plain};
            for (int q = 0; q < 2; q++) {
                hess_tensor *A = hess_tensor_new(ctxs[q], 2, ta ? SHP(k, m) : SHP(m, k), a);
                hess_tensor *B = hess_tensor_new(ctxs[q], 2, tb ? SHP(n, k) : SHP(k, n), b);
                c[q] = hess__matmul_t(ctxs[q], A, B, ta, tb, "test_ops");
                assert_ok(ctxs[q], hess_context_status(ctxs[q]));
                check_shape(c[q], 2, SHP(m, n));
            }
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                    long double want = 0.0L, mag = 0.0L;
                    for (int64_t p = 0; p < k; p++) {
                        const long double t = (long double)(ta ? a[p * m + i] : a[i * k + p]) *
                                              (tb ? b[j * k + p] : b[p * n + j]);
                        want += t;
                        mag += fabsl(t);
                    }
                    const double tol = (double)k * 0x1p-52 * (double)mag;
                    for (int q = 0; q < 2; q++)
                        if (!(fabs(hess_tensor_data(c[q])[i * n + j] - (double)want) <= tol))
                            fail_msg(
                                "%s kernel, [%lld,%lld,%lld] ta %d tb %d, C(%lld,%lld) = %.17g, "
                                "want %.17Lg",
                                q ? "portable" : "default", (long long)m, (long long)n,
                                (long long)k, ta, tb, (long long)i, (long long)j,
                                hess_tensor_data(c[q])[i * n + j], want);
                    differ |=
                        hess_tensor_data(c[0])[i * n + j] != hess_tensor_data(c[1])[i * n + j];
                }
            free(a);
            free(b);
        }
    assert_true(differ == simd->simd);
    hess_context_destroy(simd);
    hess_context_destroy(plain);
}

/* The elementwise kernels' AVX2 copies give the same bits as the portable
 * ones (HESS_NO_SIMD): every binary op and sum_to, at lengths 1 to 9 and
 * 37 (every vector tail), same shape, a broadcast row, a broadcast column
 * and a scalar on either side. */
static void test_ops_elementwise_kernels_agree(void **state)
{
    (void)state;
    hess_context *ctx[2];
    assert_int_equal(hess_context_create(NULL, &ctx[0]), HESS_OK);
    ctx[1] = portable_context();
    static const int64_t lens[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 37};
    double x[5 * 37], y[5 * 37];
    for (int i = 0; i < 5 * 37; i++) {
        x[i] = sin(1.3 * i) * 3.0;
        y[i] = cos(0.7 * i) + 1.5;
    }
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t n = lens[li];
        /* [5,n] with [5,n], [n], [5,1], [] on the right, and the reverse */
        const int64_t shp[4][2] = {{5, n}, {n, 0}, {5, 1}, {0, 0}};
        const int nd[4] = {2, 1, 2, 0};
        for (int form = 0; form < 8; form++) {
            const double *res[2][11];
            for (int q = 0; q < 2; q++) {
                hess_tensor *big = mk(ctx[q], 2, SHP(5, n), x);
                hess_tensor *oth = mk(ctx[q], nd[form % 4], shp[form % 4], y);
                hess_tensor *a = form < 4 ? big : oth, *b = form < 4 ? oth : big;
                hess_tensor *r[11] = {hess_add(ctx[q], a, b),
                                      hess_sub(ctx[q], a, b),
                                      hess_mul(ctx[q], a, b),
                                      hess_div(ctx[q], a, b),
                                      op2("tanh_grad", ctx[q], a, b),
                                      op2("sigmoid_grad", ctx[q], a, b),
                                      hess_sum_to(ctx[q], big, nd[form % 4], shp[form % 4]),
                                      hess_maximum(ctx[q], a, b),
                                      hess_minimum(ctx[q], a, b),
                                      op2("max_mask", ctx[q], a, b),
                                      hess_pow_t(ctx[q], a, b)};
                assert_ok(ctx[q], hess_context_status(ctx[q]));
                for (int o = 0; o < 11; o++)
                    res[q][o] = hess_tensor_data(r[o]);
            }
            for (int o = 0; o < 11; o++) {
                const size_t cnt = o != 6 ? (size_t)(5 * n)
                                          : (size_t)(form % 4 == 0   ? 5 * n
                                                     : form % 4 == 1 ? n
                                                     : form % 4 == 2 ? 5
                                                                     : 1);
                assert_memory_equal(res[0][o], res[1][o], cnt * sizeof(double));
            }
        }
    }
    hess_context_destroy(ctx[0]);
    hess_context_destroy(ctx[1]);
}

static void test_ops_transpose(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), VAL(1, 2, 3, 4, 5, 6));
    check_tensor(ctx, hess_transpose(ctx, a), 2, SHP(3, 2), VAL(1, 4, 2, 5, 3, 6));
    check_tensor(ctx, hess_transpose(ctx, hess_transpose(ctx, a)), 2, SHP(2, 3),
                 hess_tensor_data(a));

    /* larger than the 32 x 32 tiles, not a multiple of them */
    static double x[33 * 40], want[33 * 40];
    for (int i = 0; i < 33 * 40; i++)
        x[i] = (double)i;
    for (int i = 0; i < 33; i++)
        for (int j = 0; j < 40; j++)
            want[j * 33 + i] = x[i * 40 + j];
    hess_tensor *X = hess_tensor_new(ctx, 2, SHP(33, 40), x);
    check_tensor(ctx, hess_transpose(ctx, X), 2, SHP(40, 33), want);

    /* batched: the last two dims swap */
    hess_tensor *b = ramp(ctx, 3, SHP(2, 2, 3), 0.0, 1.0);
    check_tensor(ctx, hess_transpose(ctx, b), 3, SHP(2, 3, 2),
                 VAL(0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11));
}

static void test_ops_reshape(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = ramp(ctx, 2, SHP(2, 3), 1.0, 1.0);
    check_tensor(ctx, hess_reshape(ctx, a, 2, SHP(3, 2)), 2, SHP(3, 2), VAL(1, 2, 3, 4, 5, 6));
    check_tensor(ctx, hess_reshape(ctx, a, 1, SHP(6)), 1, SHP(6), VAL(1, 2, 3, 4, 5, 6));
    check_tensor(ctx, hess_reshape(ctx, a, 4, SHP(1, 3, 1, 2)), 4, SHP(1, 3, 1, 2),
                 VAL(1, 2, 3, 4, 5, 6));
    /* rank 0 <-> [1] <-> [1,1] */
    hess_tensor *s = hess_scalar(ctx, 7.0);
    hess_tensor *s11 = hess_reshape(ctx, s, 2, SHP(1, 1));
    check_tensor(ctx, s11, 2, SHP(1, 1), VAL(7));
    check_scalar(ctx, hess_reshape(ctx, s11, 0, NULL), 7.0);
    /* back to the original shape is the original tensor, except for a
     * parameter, whose values hess_param_set changes: that stays a copy */
    assert_ptr_equal(hess_reshape(ctx, hess_reshape(ctx, a, 1, SHP(6)), 2, SHP(2, 3)), a);
    double pv[6] = {1, 2, 3, 4, 5, 6};
    hess_tensor *p = hess_param_new(ctx, 2, SHP(2, 3), pv);
    hess_tensor *pp = hess_reshape(ctx, hess_reshape(ctx, p, 1, SHP(6)), 2, SHP(2, 3));
    assert_ptr_not_equal(pp, p);
    pv[0] = -1.0;
    assert_ok(ctx, hess_param_set(ctx, p, pv));
    check_tensor(ctx, pp, 2, SHP(2, 3), VAL(1, 2, 3, 4, 5, 6));
}

/* reshape with -1; squeeze, unsqueeze and a permute of dims of 1 are views */
static void test_ops_reshape_infer_and_views(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = ramp(ctx, 3, SHP(2, 1, 3), 1.0, 1.0);
    check_tensor(ctx, hess_reshape(ctx, a, 2, SHP(-1, 2)), 2, SHP(3, 2), VAL(1, 2, 3, 4, 5, 6));
    const double *d = hess_tensor_data(a);
    hess_tensor *sq = hess_squeeze(ctx, a, -2), *no = hess_squeeze(ctx, a, 0);
    hess_tensor *un = hess_unsqueeze(ctx, a, -1);
    hess_tensor *pm = hess_permute(ctx, a, (const int[]){1, 0, 2});
    check_shape(sq, 2, SHP(2, 3));
    check_shape(no, 3, SHP(2, 1, 3)); /* dim 0 is 2: PyTorch leaves it */
    check_shape(un, 4, SHP(2, 1, 3, 1));
    check_shape(pm, 3, SHP(1, 2, 3));
    assert_true(hess_tensor_data(sq) == d && hess_tensor_data(no) == d &&
                hess_tensor_data(un) == d && hess_tensor_data(pm) == d);
    check_shape(hess_squeeze(ctx, hess_scalar(ctx, 1.0), -1), 0, NULL);
    check_shape(hess_unsqueeze(ctx, hess_scalar(ctx, 1.0), 0), 1, SHP(1));
}

/* permute against loops: out[i,j,k] = a[j,k,i] for perm (2, 0, 1) */
static void test_ops_permute(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = ramp(ctx, 3, SHP(2, 3, 4), 0.0, 1.0);
    double want[24];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++)
            for (int k = 0; k < 3; k++)
                want[(i * 2 + j) * 3 + k] = (j * 3 + k) * 4 + i;
    check_tensor(ctx, hess_permute(ctx, a, (const int[]){2, 0, 1}), 3, SHP(4, 2, 3), want);
    check_tensor(ctx, hess_permute(ctx, a, (const int[]){-1, -3, -2}), 3, SHP(4, 2, 3), want);
    hess_tensor *b =
        hess_permute(ctx, hess_permute(ctx, a, (const int[]){2, 0, 1}), (const int[]){1, 2, 0});
    check_tensor(ctx, b, 3, SHP(2, 3, 4), hess_tensor_data(a));
}

/* Python's bounds: negative from the end, clipped to [0, n] */
static void test_ops_slice(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = ramp(ctx, 1, SHP(10), 0.0, 1.0);
    check_tensor(ctx, hess_slice(ctx, a, 0, -3, INT64_MAX, 1), 1, SHP(3), VAL(7, 8, 9));
    check_tensor(ctx, hess_slice(ctx, a, 0, 0, 10, 3), 1, SHP(4), VAL(0, 3, 6, 9));
    check_tensor(ctx, hess_slice(ctx, a, -1, 2, 100, 4), 1, SHP(2), VAL(2, 6));
    check_tensor(ctx, hess_slice(ctx, a, 0, -100, 2, 1), 1, SHP(2), VAL(0, 1));
    check_tensor(ctx, hess_slice(ctx, a, 0, 9, 10, 1000), 1, SHP(1), VAL(9));
    hess_tensor *all = hess_slice(ctx, a, 0, -10, 10, 1); /* everything: a view */
    check_tensor(ctx, all, 1, SHP(10), hess_tensor_data(a));
    assert_true(hess_tensor_data(all) == hess_tensor_data(a));
    assert_null(hess_slice(ctx, a, 0, -1, -4, 1)); /* empty */
    assert_int_equal(hess_context_status(ctx), HESS_ERR_SHAPE);
    hess_context_clear_error(ctx);
    hess_tensor *m = ramp(ctx, 2, SHP(3, 4), 0.0, 1.0);
    check_tensor(ctx, hess_slice(ctx, m, 1, 1, 4, 2), 2, SHP(3, 2), VAL(1, 3, 5, 7, 9, 11));
    check_tensor(ctx, hess_slice(ctx, m, 0, 1, 3, 1), 2, SHP(2, 4), VAL(4, 5, 6, 7, 8, 9, 10, 11));
}

static void test_ops_index_select_cat_stack(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *m = ramp(ctx, 2, SHP(2, 3), 0.0, 1.0);
    check_tensor(ctx, hess_index_select(ctx, m, 1, 4, (const int64_t[]){2, 0, 2, 1}), 2, SHP(2, 4),
                 VAL(2, 0, 2, 1, 5, 3, 5, 4));
    check_tensor(ctx, hess_index_select(ctx, m, 0, 1, (const int64_t[]){1}), 2, SHP(1, 3),
                 VAL(3, 4, 5));
    hess_tensor *v = mk(ctx, 2, SHP(2, 1), VAL(-1, -2));
    hess_tensor *const ts[3] = {m, v, m};
    check_tensor(ctx, hess_cat(ctx, 3, ts, -1), 2, SHP(2, 7),
                 VAL(0, 1, 2, -1, 0, 1, 2, 3, 4, 5, -2, 3, 4, 5));
    check_tensor(ctx, hess_cat(ctx, 2, (hess_tensor *const[]){m, m}, 0), 2, SHP(4, 3),
                 VAL(0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5));
    check_tensor(ctx, hess_stack(ctx, 2, (hess_tensor *const[]){m, m}, -1), 3, SHP(2, 3, 2),
                 VAL(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5));
    hess_tensor *const sc[2] = {hess_scalar(ctx, 1.5), hess_scalar(ctx, -2.0)};
    check_tensor(ctx, hess_stack(ctx, 2, sc, 0), 1, SHP(2), VAL(1.5, -2.0));
}

/* The selections on a rank-3 tensor, against loops over its indices: slice
 * with a step on the middle axis, index_select on the last with repeats,
 * gather along the first and the last, cat of four (one of them twice) on
 * the middle axis, stack on a negative axis. */
static void test_ops_index_rank3(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = ramp(ctx, 3, SHP(2, 5, 3), 0.0, 1.0); /* a[i,j,k] = 15 i + 3 j + k */
#define A3(i, j, k) (15.0 * (i) + 3.0 * (j) + (k))
    double want[60];
    /* slice(a, -2, 1, 5, 2): j = 1, 3 */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            for (int k = 0; k < 3; k++)
                want[(i * 2 + j) * 3 + k] = A3(i, 1 + 2 * j, k);
    check_tensor(ctx, hess_slice(ctx, a, -2, 1, 5, 2), 3, SHP(2, 2, 3), want);
    /* index_select(a, 2, [2, 0, 2, 2]) */
    const int64_t ix[4] = {2, 0, 2, 2};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 5; j++)
            for (int q = 0; q < 4; q++)
                want[(i * 5 + j) * 4 + q] = A3(i, j, ix[q]);
    check_tensor(ctx, hess_index_select(ctx, a, 2, 4, ix), 3, SHP(2, 5, 4), want);
    /* gather(a, 0, g0) with g0 [1, 2, 3]: out[0, j, k] = a[g0[0, j, k], j, k] */
    const double g0[6] = {1, 0, 1, 0, 0, 1};
    for (int j = 0; j < 2; j++)
        for (int k = 0; k < 3; k++)
            want[j * 3 + k] = A3((int)g0[j * 3 + k], j, k);
    check_tensor(ctx, hess_gather(ctx, a, 0, mk(ctx, 3, SHP(1, 2, 3), g0)), 3, SHP(1, 2, 3), want);
    /* gather(a, -1, g2) with g2 [2, 3, 2]: out[i, j, q] = a[i, j, g2[i, j, q]] */
    const double g2[12] = {2, 2, 0, 1, 1, 0, 0, 0, 2, 1, 1, 2};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int q = 0; q < 2; q++)
                want[(i * 3 + j) * 2 + q] = A3(i, j, (int)g2[(i * 3 + j) * 2 + q]);
    check_tensor(ctx, hess_gather(ctx, a, -1, mk(ctx, 3, SHP(2, 3, 2), g2)), 3, SHP(2, 3, 2), want);
    /* cat(a[:, 0:1], b, a[:, 0:1], a, axis 1) with b = -a[:, 3:5] */
    hess_tensor *a0 = hess_slice(ctx, a, 1, 0, 1, 1);
    hess_tensor *b = hess_neg(ctx, hess_slice(ctx, a, 1, 3, 5, 1));
    double cw[2 * 9 * 3];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 9; j++)
            for (int k = 0; k < 3; k++)
                cw[(i * 9 + j) * 3 + k] = j == 0 || j == 3 ? A3(i, 0, k)
                                          : j < 3          ? -A3(i, j + 2, k)
                                                           : A3(i, j - 4, k);
    check_tensor(ctx, hess_cat(ctx, 4, (hess_tensor *const[]){a0, b, a0, a}, 1), 3, SHP(2, 9, 3),
                 cw);
    /* stack(a0, a0, b[:, 1:2], -2): [2, 1, 3, 3] */
    hess_tensor *b1 = hess_slice(ctx, b, 1, 1, 2, 1);
    for (int i = 0; i < 2; i++)
        for (int s = 0; s < 3; s++)
            for (int k = 0; k < 3; k++)
                want[(i * 3 + s) * 3 + k] = s < 2 ? A3(i, 0, k) : -A3(i, 4, k);
    check_tensor(ctx, hess_stack(ctx, 3, (hess_tensor *const[]){a0, a0, b1}, -2), 4,
                 SHP(2, 1, 3, 3), want);
#undef A3
}

/* torch.gather; an index leaf set later: the values and the gradient follow */
static void test_ops_gather(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = hess_param_new(ctx, 2, SHP(2, 3), VAL(0, 1, 2, 3, 4, 5));
    hess_tensor *ix = mk(ctx, 2, SHP(2, 2), VAL(2, 2, 0, 1));
    hess_tensor *g = hess_gather(ctx, a, 1, ix);
    check_tensor(ctx, g, 2, SHP(2, 2), VAL(2, 2, 3, 4));
    hess_tensor *ix0 = mk(ctx, 2, SHP(1, 3), VAL(1, 0, 1));
    check_tensor(ctx, hess_gather(ctx, a, 0, ix0), 2, SHP(1, 3), VAL(3, 1, 5));
    hess_tensor *L = hess_sum(ctx, g), *da;
    assert_ok(ctx, hess_grad(ctx, L, 1, &a, &da, 0));
    check_tensor(ctx, da, 2, SHP(2, 3), VAL(0, 0, 2, 1, 1, 0));
    /* a bad value is refused and changes nothing; a good one is taken */
    assert_int_equal(hess_tensor_set(ctx, ix, VAL(0, 3, 0, 0)), HESS_ERR_ARG);
    hess_context_clear_error(ctx);
    check_tensor(ctx, ix, 2, SHP(2, 2), VAL(2, 2, 0, 1));
    assert_ok(ctx, hess_tensor_set(ctx, ix, VAL(0, 1, 1, 1)));
    assert_ok(ctx, hess_recompute(ctx));
    check_tensor(ctx, g, 2, SHP(2, 2), VAL(0, 1, 4, 4));
    assert_ok(ctx, hess_grad(ctx, L, 1, &a, &da, 0));
    check_tensor(ctx, da, 2, SHP(2, 3), VAL(1, 1, 0, 0, 2, 0));
}

/* ------------------------------------------------------------------------ */
/* Reductions and broadcasting                                              */
/* ------------------------------------------------------------------------ */

static void test_ops_sum_mean(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), VAL(1, 2, 3, 4, 5, 6.5));
    check_scalar(ctx, hess_sum(ctx, a), 21.5);
    check_scalar(ctx, hess_mean(ctx, a), 21.5 / 6);
    hess_tensor *s = hess_scalar(ctx, -3.0);
    check_scalar(ctx, hess_sum(ctx, s), -3.0);
    check_scalar(ctx, hess_mean(ctx, s), -3.0);
    hess_tensor *r3 = ramp(ctx, 3, SHP(2, 3, 4), 0.0, 1.0);
    check_scalar(ctx, hess_sum(ctx, r3), 276.0);
    check_scalar(ctx, hess_mean(ctx, r3), 11.5);
}

/* Sums of a [2,3,4] ramp along each axis, positive and negative, by loops. */
static void test_ops_sum_axis_each_axis(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = ramp(ctx, 3, SHP(2, 3, 4), 0.5, 1.0);
    const double *x = hess_tensor_data(a);
    double s0[12] = {0}, s1[8] = {0}, s2[6] = {0};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++) {
                const double v = x[(i * 3 + j) * 4 + k];
                s0[j * 4 + k] += v;
                s1[i * 4 + k] += v;
                s2[i * 3 + j] += v;
            }
    check_tensor(ctx, hess_sum_axis(ctx, a, 0), 2, SHP(3, 4), s0);
    check_tensor(ctx, hess_sum_axis(ctx, a, 1), 2, SHP(2, 4), s1);
    check_tensor(ctx, hess_sum_axis(ctx, a, 2), 2, SHP(2, 3), s2);
    check_tensor(ctx, hess_sum_axis(ctx, a, -3), 2, SHP(3, 4), s0);
    check_tensor(ctx, hess_sum_axis(ctx, a, -2), 2, SHP(2, 4), s1);
    check_tensor(ctx, hess_sum_axis(ctx, a, -1), 2, SHP(2, 3), s2);

    /* a vector reduces to rank 0; an axis of length 1 just disappears */
    hess_tensor *v = mk(ctx, 1, SHP(3), VAL(1, 2, 4));
    check_scalar(ctx, hess_sum_axis(ctx, v, 0), 7);
    check_scalar(ctx, hess_sum_axis(ctx, v, -1), 7);
    hess_tensor *c = mk(ctx, 2, SHP(3, 1), VAL(1, 2, 4));
    check_tensor(ctx, hess_sum_axis(ctx, c, 1), 1, SHP(3), VAL(1, 2, 4));
    check_tensor(ctx, hess_sum_axis(ctx, c, 0), 1, SHP(1), VAL(7));
}

static void test_ops_mean_axis(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), VAL(1, 2, 3, 4, 5, 9));
    check_tensor(ctx, hess_mean_axis(ctx, a, 0), 1, SHP(3), VAL(2.5, 3.5, 6));
    check_tensor(ctx, hess_mean_axis(ctx, a, 1), 1, SHP(2), VAL(2, 6));
    check_tensor(ctx, hess_mean_axis(ctx, a, -1), 1, SHP(2), VAL(2, 6));
    check_tensor(ctx, hess_mean_axis(ctx, a, -2), 1, SHP(3), VAL(2.5, 3.5, 6));
    hess_tensor *b = ramp(ctx, 3, SHP(2, 3, 2), 0.0, 1.0);
    check_tensor(ctx, hess_mean_axis(ctx, b, 1), 2, SHP(2, 2), VAL(2, 3, 8, 9));
}

static void test_ops_sum_to(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = ramp(ctx, 2, SHP(2, 3), 1.0, 1.0); /* 1..6 */
    check_tensor(ctx, hess_sum_to(ctx, a, 1, SHP(3)), 1, SHP(3), VAL(5, 7, 9));
    check_tensor(ctx, hess_sum_to(ctx, a, 2, SHP(1, 3)), 2, SHP(1, 3), VAL(5, 7, 9));
    check_tensor(ctx, hess_sum_to(ctx, a, 2, SHP(2, 1)), 2, SHP(2, 1), VAL(6, 15));
    check_tensor(ctx, hess_sum_to(ctx, a, 2, SHP(1, 1)), 2, SHP(1, 1), VAL(21));
    check_tensor(ctx, hess_sum_to(ctx, a, 2, SHP(2, 3)), 2, SHP(2, 3), VAL(1, 2, 3, 4, 5, 6));
    check_scalar(ctx, hess_sum_to(ctx, a, 0, NULL), 21);

    /* [2,3,4] down to [3,1] (leading dim dropped, last summed) */
    hess_tensor *b = ramp(ctx, 3, SHP(2, 3, 4), 0.0, 1.0);
    double want[3] = {0};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                want[j] += (double)((i * 3 + j) * 4 + k);
    check_tensor(ctx, hess_sum_to(ctx, b, 2, SHP(3, 1)), 2, SHP(3, 1), want);
    /* and to [2,1,4] */
    double w2[8] = {0};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                w2[i * 4 + k] += (double)((i * 3 + j) * 4 + k);
    check_tensor(ctx, hess_sum_to(ctx, b, 3, SHP(2, 1, 4)), 3, SHP(2, 1, 4), w2);
}

static void test_ops_broadcast_to(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *r = mk(ctx, 1, SHP(3), VAL(1, 2, 3));
    check_tensor(ctx, hess_broadcast_to(ctx, r, 2, SHP(2, 3)), 2, SHP(2, 3), VAL(1, 2, 3, 1, 2, 3));
    hess_tensor *c = mk(ctx, 2, SHP(2, 1), VAL(7, 8));
    check_tensor(ctx, hess_broadcast_to(ctx, c, 2, SHP(2, 3)), 2, SHP(2, 3), VAL(7, 7, 7, 8, 8, 8));
    check_tensor(ctx, hess_broadcast_to(ctx, c, 3, SHP(2, 2, 2)), 3, SHP(2, 2, 2),
                 VAL(7, 7, 8, 8, 7, 7, 8, 8));
    check_tensor(ctx, hess_broadcast_to(ctx, hess_scalar(ctx, 5), 2, SHP(2, 2)), 2, SHP(2, 2),
                 VAL(5, 5, 5, 5));
    check_tensor(ctx, hess_broadcast_to(ctx, r, 1, SHP(3)), 1, SHP(3), VAL(1, 2, 3));
    /* [2,1,3] to [2,2,3] repeats the middle */
    hess_tensor *m = ramp(ctx, 3, SHP(2, 1, 3), 1.0, 1.0);
    check_tensor(ctx, hess_broadcast_to(ctx, m, 3, SHP(2, 2, 3)), 3, SHP(2, 2, 3),
                 VAL(1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6));
    /* sum_to undoes broadcast_to up to the repeat count */
    hess_tensor *back =
        hess_sum_to(ctx, hess_broadcast_to(ctx, m, 3, SHP(2, 2, 3)), 3, SHP(2, 1, 3));
    check_tensor(ctx, back, 3, SHP(2, 1, 3), VAL(2, 4, 6, 8, 10, 12));
}

/* ------------------------------------------------------------------------ */
/* Elementwise functions                                                    */
/* ------------------------------------------------------------------------ */

#define NX 7
static const double xs[NX] = {-3.0, -1.25, -0.5, 0.0, 0.3, 1.0, 2.75};

/* f applied to xs, compared with the op's result on a [NX] tensor. */
static void check_unary(hess_context *ctx, hess_tensor *out, double (*f)(double))
{
    double want[NX];
    for (int i = 0; i < NX; i++)
        want[i] = f(xs[i]);
    check_tensor(ctx, out, 1, SHP(NX), want);
}

static double ref_sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}
static double ref_relu(double x)
{
    return x > 0 ? x : 0.0;
}
static double ref_softplus(double x)
{
    return log1p(exp(x));
}
static double ref_square(double x)
{
    return x * x;
}

static void test_ops_exp_log(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *x = mk(ctx, 1, SHP(NX), xs);
    check_unary(ctx, hess_exp(ctx, x), exp);
    hess_tensor *p = mk(ctx, 2, SHP(2, 2), VAL(1, exp(1.0), 0.25, 1e10));
    check_tensor(ctx, hess_log(ctx, p), 2, SHP(2, 2), VAL(0, 1, log(0.25), log(1e10)));
    /* log(exp(x)) round trip */
    check_tensor(ctx, hess_log(ctx, hess_exp(ctx, x)), 1, SHP(NX), xs);
    /* log(0) is -Inf, as documented (the context does not check values) */
    hess_tensor *z = hess_log(ctx, hess_scalar(ctx, 0.0));
    assert_ok(ctx, hess_context_status(ctx));
    assert_true(isinf(hess_tensor_data(z)[0]) && hess_tensor_data(z)[0] < 0);
}

/* |got - tanh(x)| in units in the last place of got, against long double */
static double tanh_ulps(double got, double x)
{
    const long double ref = tanhl((long double)x);
    const double ulp = nextafter(fabs(got), INFINITY) - fabs(got);
    return (double)(fabsl((long double)got - ref) / ulp);
}

/* tanh within 3 ulp of the long double tanhl on a fine grid over -21..21
 * (dense below 0.55, where a rational function takes over from exp), at the
 * switch points 0.55 and 20, and tiny and signed-zero arguments; the
 * library's is within 2 ulp of exact, and 3 leaves room for valgrind, which
 * computes long double at double precision.  NaN stays NaN, +-inf give +-1,
 * and lengths 1 to 7 take every tail of a 4-wide kernel. */
static void check_tanh(hess_context *ctx)
{
    enum { NG = 2001 };
    static double g[NG];
    for (int i = 0; i < NG; i++)
        g[i] = i < 1000 ? -0.6 + 1.2 * i / 999.0 + 1e-4 * sin((double)i)
                        : -21.0 + 42.0 * (i - 1000) / 1000.0 + 1e-3 * sin((double)i);
    hess_tensor *th = hess_tanh(ctx, mk(ctx, 1, SHP(NG), g));
    assert_non_null(th);
    for (int i = 0; i < NG; i++)
        assert_true(tanh_ulps(hess_tensor_data(th)[i], g[i]) <= 3.0);
    const double edges[8] = {
        0.55, nextafter(0.55, 0.0), -0.55, 20.0, nextafter(20.0, 30.0), 1e-300, -1e-310, 1e-8};
    for (int n = 1; n <= 8; n++) { /* the first n edges, as one tensor */
        hess_tensor *t = hess_tanh(ctx, mk(ctx, 1, SHP(n), edges));
        assert_non_null(t);
        for (int i = 0; i < n; i++)
            assert_true(tanh_ulps(hess_tensor_data(t)[i], edges[i]) <= 3.0);
    }
    hess_tensor *nz = hess_tanh(ctx, hess_scalar(ctx, -0.0));
    assert_non_null(nz);
    assert_true(hess_tensor_data(nz)[0] == 0.0 && signbit(hess_tensor_data(nz)[0]));
    const double *sp = hess_tensor_data(
        hess_tanh(ctx, mk(ctx, 1, SHP(5), VAL(NAN, INFINITY, -INFINITY, -NAN, 0.3))));
    assert_true(isnan(sp[0]) && sp[1] == 1.0 && sp[2] == -1.0 && isnan(sp[3]));
    assert_true(tanh_ulps(sp[4], 0.3) <= 3.0);
}

static void test_ops_tanh_sigmoid(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *x = mk(ctx, 1, SHP(NX), xs);
    check_unary(ctx, hess_tanh(ctx, x), tanh);
    check_unary(ctx, hess_sigmoid(ctx, x), ref_sigmoid);
    /* far tails: no overflow, no NaN, the exact limits */
    hess_tensor *big = mk(ctx, 1, SHP(4), VAL(-800, -40, 40, 800));
    const double e40 = exp(-40.0);
    check_tensor(ctx, hess_sigmoid(ctx, big), 1, SHP(4), VAL(0, e40 / (1 + e40), 1 / (1 + e40), 1));
    check_tensor(ctx, hess_tanh(ctx, big), 1, SHP(4), VAL(-1, -1, 1, 1));
    check_scalar(ctx, hess_sigmoid(ctx, hess_scalar(ctx, 0.0)), 0.5);
    /* tanh's two kernels: AVX2 (where the CPU has it) and portable */
    check_tanh(ctx);
    hess_context *plain = portable_context();
    check_tanh(plain);
    hess_context_destroy(plain);
}

static void test_ops_relu_softplus(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *x = mk(ctx, 1, SHP(NX), xs);
    check_unary(ctx, hess_relu(ctx, x), ref_relu);
    /* NaN stays NaN (as in PyTorch), -0 and +-inf */
    const double *r =
        hess_tensor_data(hess_relu(ctx, mk(ctx, 1, SHP(4), VAL(NAN, -0.0, INFINITY, -INFINITY))));
    assert_true(isnan(r[0]) && r[1] == 0.0 && r[2] == INFINITY && r[3] == 0.0);
    check_unary(ctx, hess_softplus(ctx, x), ref_softplus);
    check_scalar(ctx, hess_softplus(ctx, hess_scalar(ctx, 0.0)), log(2.0));
    /* large |x|: softplus(x) = x + log1p(exp(-x)), softplus(-x) = log1p(exp(-x)) */
    hess_tensor *big = mk(ctx, 1, SHP(4), VAL(-1000, -50, 50, 1000));
    check_tensor(ctx, hess_softplus(ctx, big), 1, SHP(4),
                 VAL(0, log1p(exp(-50.0)), 50 + log1p(exp(-50.0)), 1000));
}

static void test_ops_square_sqrt_pow(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *x = mk(ctx, 1, SHP(NX), xs);
    check_unary(ctx, hess_square(ctx, x), ref_square);
    hess_tensor *p = mk(ctx, 1, SHP(5), VAL(0, 0.25, 1, 2, 9));
    check_tensor(ctx, hess_sqrt(ctx, p), 1, SHP(5), VAL(0, 0.5, 1, sqrt(2.0), 3));
    check_tensor(ctx, hess_pow(ctx, p, 2.0), 1, SHP(5), VAL(0, 0.0625, 1, 4, 81));
    check_tensor(ctx, hess_pow(ctx, p, 0.5), 1, SHP(5), VAL(0, 0.5, 1, sqrt(2.0), 3));
    check_tensor(ctx, hess_pow(ctx, p, 3.0), 1, SHP(5), VAL(0, 0.015625, 1, 8, 729));
    check_tensor(ctx, hess_pow(ctx, p, 0.0), 1, SHP(5), VAL(1, 1, 1, 1, 1));
    check_tensor(ctx, hess_pow(ctx, p, 1.0), 1, SHP(5), VAL(0, 0.25, 1, 2, 9));
    hess_tensor *q = mk(ctx, 1, SHP(3), VAL(0.5, 2, 4));
    check_tensor(ctx, hess_pow(ctx, q, -1.5), 1, SHP(3),
                 VAL(pow(0.5, -1.5), pow(2.0, -1.5), 0.125));
    check_tensor(ctx, hess_pow(ctx, q, 2.7), 1, SHP(3),
                 VAL(pow(0.5, 2.7), pow(2.0, 2.7), pow(4.0, 2.7)));
    /* integral exponents of negative bases */
    hess_tensor *n = mk(ctx, 1, SHP(2), VAL(-2, -0.5));
    check_tensor(ctx, hess_pow(ctx, n, 3.0), 1, SHP(2), VAL(-8, -0.125));
    check_tensor(ctx, hess_pow(ctx, n, -2.0), 1, SHP(2), VAL(0.25, 4));
}

/* log1p, expm1, reciprocal, rsqrt, erf, abs and the piecewise-linear ones,
 * at hand-computed points: small arguments keep their digits (log1p(1e-20)
 * = 1e-20 where log(1 + 1e-20) = 0), the kinks and NaN give PyTorch's values. */
static void test_ops_unary_more(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *x = mk(ctx, 1, SHP(NX), xs);
    check_unary(ctx, hess_abs(ctx, x), fabs);
    check_unary(ctx, hess_erf(ctx, x), erf);
    hess_tensor *s = mk(ctx, 1, SHP(4), VAL(1e-20, -0.5, 0, 1));
    check_tensor(ctx, hess_log1p(ctx, s), 1, SHP(4), VAL(1e-20, -log(2.0), 0, log(2.0)));
    check_tensor(ctx, hess_expm1(ctx, s), 1, SHP(4),
                 VAL(1e-20, exp(-0.5) - 1, 0, 1.7182818284590452));
    hess_tensor *r = mk(ctx, 1, SHP(3), VAL(0.25, 4, -0.5));
    check_tensor(ctx, hess_reciprocal(ctx, r), 1, SHP(3), VAL(4, 0.25, -2));
    check_tensor(ctx, hess_rsqrt(ctx, hess_abs(ctx, r)), 1, SHP(3), VAL(2, 0.5, sqrt(2.0)));
    check_tensor(ctx, hess_erf(ctx, mk(ctx, 1, SHP(3), VAL(0, 10, -1e-300))), 1, SHP(3),
                 VAL(0, 1, -1.1283791670955126e-300));
    /* the kinks: -0 and +0, NaN through */
    hess_tensor *k = mk(ctx, 1, SHP(6), VAL(-2, -0.0, 0, 0.5, 3, NAN));
    const double *a = hess_tensor_data(hess_abs(ctx, k));
    assert_true(a[1] == 0.0 && !signbit(a[1]) && isnan(a[5]));
    const double *e = hess_tensor_data(hess_elu(ctx, k, 0.5));
    assert_close(e[0], 0.5 * (exp(-2.0) - 1), 1e-15, 0);
    assert_true(e[1] == 0.0 && e[2] == 0.0 && e[3] == 0.5 && e[4] == 3 && isnan(e[5]));
    const double *l = hess_tensor_data(hess_leaky_relu(ctx, k, 0.1));
    assert_true(l[0] == -0.2 && l[2] == 0.0 && l[3] == 0.5 && isnan(l[5]));
    const double *c = hess_tensor_data(hess_clamp(ctx, k, -0.5, 0.5));
    assert_true(c[0] == -0.5 && c[2] == 0 && c[3] == 0.5 && c[4] == 0.5 && isnan(c[5]));
    /* one side, and lo > hi: hi everywhere (PyTorch) */
    check_tensor(ctx, hess_clamp(ctx, hess_abs(ctx, r), -INFINITY, 1), 1, SHP(3),
                 VAL(0.25, 1, 0.5));
    check_tensor(ctx, hess_clamp(ctx, r, 1, INFINITY), 1, SHP(3), VAL(1, 4, 1));
    check_tensor(ctx, hess_clamp(ctx, r, 2, 1), 1, SHP(3), VAL(1, 1, 1));
}

/* silu, gelu and gelu_tanh from -1000 to 1000: no overflow, and the tails keep
 * their digits (gelu(-10) = -10 Phi(-10), which 1 + erf(-10 / sqrt 2) loses). */
static void test_ops_gates(void **state)
{
    hess_context *ctx = *state;
    static const double X[9] = {-1000, -40, -3, -0.5, 0, 0.5, 3, 40, 1000};
    hess_tensor *x = mk(ctx, 1, SHP(9), X);
    const double *si = hess_tensor_data(hess_silu(ctx, x));
    const double *ge = hess_tensor_data(hess_gelu(ctx, x));
    const double *gt = hess_tensor_data(hess_gelu_tanh(ctx, x));
    assert_ok(ctx, hess_context_status(ctx));
    const double k = sqrt(2.0 / 3.14159265358979323846);
    for (int i = 0; i < 9; i++) {
        const double v = X[i];
        const double sig = v >= 0 ? 1 / (1 + exp(-v)) : exp(v) / (1 + exp(v));
        assert_close(si[i], v * sig, 1e-14, 1e-300);
        assert_close(ge[i],
                     v < 0 ? 0.5 * v * erfc(-v / sqrt(2.0)) : v - 0.5 * v * erfc(v / sqrt(2.0)),
                     1e-14, 1e-300);
        if (fabs(v) <= 3) /* the textbook form, where it has its digits */
            assert_close(gt[i], 0.5 * v * (1 + tanh(k * (v + 0.044715 * v * v * v))), 1e-14, 1e-16);
        assert_true(isfinite(si[i]) && isfinite(ge[i]) && isfinite(gt[i]));
    }
    assert_true(si[8] == 1000 && ge[8] == 1000 && gt[8] == 1000);
    assert_true(si[0] == 0 && ge[0] == 0 && gt[0] == 0 && ge[1] == 0);
    check_scalar(ctx, hess_gelu(ctx, hess_scalar(ctx, -10)), -7.6198530241605260659733e-23);
}

/* maximum and minimum with a tie, a NaN and broadcasting: NaN when either is */
static void test_ops_maximum_minimum(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), VAL(1, -2, 3, NAN, 0, 7));
    hess_tensor *b = mk(ctx, 1, SHP(3), VAL(1, 0, 5));
    const double *mx = hess_tensor_data(hess_maximum(ctx, a, b));
    const double *mn = hess_tensor_data(hess_minimum(ctx, b, a));
    check_shape(hess_maximum(ctx, b, a), 2, SHP(2, 3));
    static const double wmx[6] = {1, 0, 5, NAN, 0, 7}, wmn[6] = {1, -2, 3, NAN, 0, 5};
    for (int i = 0; i < 6; i++) {
        assert_true(i == 3 ? isnan(mx[i]) : mx[i] == wmx[i]);
        assert_true(i == 3 ? isnan(mn[i]) : mn[i] == wmn[i]);
    }
    assert_true(isnan(hess_tensor_data(hess_maximum(ctx, b, hess_scalar(ctx, NAN)))[1]));
}

/* where over three broadcast shapes (the strided path) against a loop, a
 * non-zero condition (-2.5, NaN) being true */
static void test_ops_where(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *c = mk(ctx, 3, SHP(2, 1, 3), VAL(0, -2.5, 1, NAN, 0, -0.0));
    hess_tensor *a = ramp(ctx, 2, SHP(4, 1), 10, 1), *b = ramp(ctx, 1, SHP(3), -1, -1);
    hess_tensor *w = hess_where(ctx, c, a, b);
    double want[24];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 3; k++) {
                const double cv = hess_tensor_data(c)[i * 3 + k];
                want[(i * 4 + j) * 3 + k] = cv != 0 ? 10 + j : -1 - k;
            }
    check_tensor(ctx, w, 3, SHP(2, 4, 3), want);
    /* all the same shape, and scalars */
    hess_tensor *c6 = mk(ctx, 1, SHP(3), VAL(1, 0, 1));
    check_tensor(ctx, hess_where(ctx, c6, hess_scalar(ctx, 7), b), 1, SHP(3), VAL(7, -2, 7));
    check_tensor(ctx, hess_where(ctx, hess_scalar(ctx, 0), c6, b), 1, SHP(3), VAL(-1, -2, -3));
}

/* a^b with a tensor exponent, broadcast both ways, and at a = 0 */
static void test_ops_pow_t(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), VAL(0.5, 2, 4, 1.5, 0, 9));
    hess_tensor *b = mk(ctx, 1, SHP(3), VAL(2, -1, 0.5));
    check_tensor(ctx, hess_pow_t(ctx, a, b), 2, SHP(2, 3), VAL(0.25, 0.5, 2, 2.25, INFINITY, 3));
    check_tensor(ctx, hess_pow_t(ctx, hess_scalar(ctx, 2), b), 1, SHP(3), VAL(4, 0.5, sqrt(2.0)));
    check_tensor(ctx, hess_pow_t(ctx, b, hess_scalar(ctx, 0)), 1, SHP(3), VAL(1, 1, 1));
}

/* ------------------------------------------------------------------------ */
/* Softmax                                                                  */
/* ------------------------------------------------------------------------ */

/* log_softmax of x (shape[nd]) along axis by the textbook formula, into y. */
static void ref_log_softmax(const double *x, int nd, const int64_t *shape, int axis, double *y)
{
    int64_t outer = 1, inner = 1, n = shape[axis];
    for (int i = 0; i < axis; i++)
        outer *= shape[i];
    for (int i = axis + 1; i < nd; i++)
        inner *= shape[i];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double s = 0;
            for (int64_t j = 0; j < n; j++)
                s += exp(x[(o * n + j) * inner + i]);
            for (int64_t j = 0; j < n; j++)
                y[(o * n + j) * inner + i] = x[(o * n + j) * inner + i] - log(s);
        }
}

/* log_softmax and softmax of a along every axis (and its negative alias). */
static void check_softmax_all_axes(hess_context *ctx, hess_tensor *a)
{
    const int nd = hess_tensor_ndim(a);
    const int64_t *shape = hess_tensor_shape(a);
    const size_t n = (size_t)hess_tensor_numel(a);
    double ls[64], sm[64];
    assert_true(n <= 64);
    for (int axis = 0; axis < nd; axis++) {
        ref_log_softmax(hess_tensor_data(a), nd, shape, axis, ls);
        for (size_t i = 0; i < n; i++)
            sm[i] = exp(ls[i]);
        check_tensor(ctx, hess_log_softmax(ctx, a, axis), nd, shape, ls);
        check_tensor(ctx, hess_log_softmax(ctx, a, axis - nd), nd, shape, ls);
        hess_tensor *s = hess_softmax(ctx, a, axis);
        check_tensor(ctx, s, nd, shape, sm);
        check_tensor(ctx, hess_softmax(ctx, a, axis - nd), nd, shape, sm);
        /* each slice along the axis sums to one */
        hess_tensor *tot = hess_sum_axis(ctx, s, axis);
        for (int64_t i = 0; i < hess_tensor_numel(tot); i++)
            assert_close(hess_tensor_data(tot)[i], 1.0, 1e-15, 0);
    }
}

static void test_ops_log_softmax_2d(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), VAL(1, 2, 3, -1, 0.5, 4));
    check_softmax_all_axes(ctx, a);
    /* one hand value: row [1,2,3] along the last axis */
    const double lse = log(exp(1.0) + exp(2.0) + exp(3.0));
    hess_tensor *ls = hess_log_softmax(ctx, a, 1);
    assert_close(hess_tensor_data(ls)[0], 1.0 - lse, RTOL, ATOL);
    assert_close(hess_tensor_data(ls)[2], 3.0 - lse, RTOL, ATOL);
}

static void test_ops_log_softmax_3d(void **state)
{
    hess_context *ctx = *state;
    double x[24];
    for (int i = 0; i < 24; i++)
        x[i] = sin(1.7 * i) * 2.0;
    hess_tensor *a = mk(ctx, 3, SHP(2, 3, 4), x);
    check_softmax_all_axes(ctx, a);
    /* an axis of length 1 gives log_softmax 0 and softmax 1 */
    hess_tensor *b = mk(ctx, 2, SHP(3, 1), VAL(-5, 0, 5));
    check_tensor(ctx, hess_log_softmax(ctx, b, 1), 2, SHP(3, 1), VAL(0, 0, 0));
    check_tensor(ctx, hess_softmax(ctx, b, 1), 2, SHP(3, 1), VAL(1, 1, 1));
}

static void test_ops_log_softmax_large_inputs(void **state)
{
    hess_context *ctx = *state;
    /* shifted log-sum-exp: finite and exact where the naive formula overflows */
    hess_tensor *a = mk(ctx, 1, SHP(3), VAL(1000, 1001, 999));
    const double lse = log(exp(-1.0) + 1.0 + exp(-2.0)); /* relative to 1001 */
    const double want[3] = {-1 - lse, -lse, -2 - lse};
    hess_tensor *ls = hess_log_softmax(ctx, a, 0);
    assert_ok(ctx, hess_context_status(ctx));
    check_shape(ls, 1, SHP(3));
    /* Absolute 1e-12, a few ulps of the inputs' magnitude: x - (max + log s)
     * rounds at the scale of 1000 (see the report; (x - max) - log s would not). */
    assert_close_array(hess_tensor_data(ls), want, 3, 0, 1e-12);
    hess_tensor *b = mk(ctx, 1, SHP(2), VAL(-1000, 0));
    hess_tensor *s = hess_softmax(ctx, b, 0);
    check_tensor(ctx, s, 1, SHP(2), VAL(0, 1));
}

/* ------------------------------------------------------------------------ */
/* Layers and losses                                                        */
/* ------------------------------------------------------------------------ */

static void test_ops_linear_vector(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *x = mk(ctx, 1, SHP(3), VAL(1, 2, 3));
    hess_tensor *W = mk(ctx, 2, SHP(2, 3), VAL(1, 0, -1, 0.5, 0.5, 0.5));
    hess_tensor *b = mk(ctx, 1, SHP(2), VAL(10, -10));
    check_tensor(ctx, hess_linear(ctx, x, W, NULL), 1, SHP(2), VAL(-2, 3));
    const int64_t before = hess_context_mark(ctx).nodes;
    check_tensor(ctx, hess_linear(ctx, x, W, b), 1, SHP(2), VAL(8, -7));
    assert_int_equal(hess_context_mark(ctx).nodes, before + 1); /* W x + b: one LINEAR node */
    /* in = 1, out = 1 */
    hess_tensor *w1 = mk(ctx, 2, SHP(1, 1), VAL(-3));
    check_tensor(ctx, hess_linear(ctx, mk(ctx, 1, SHP(1), VAL(2)), w1, mk(ctx, 1, SHP(1), VAL(1))),
                 1, SHP(1), VAL(-5));
}

static void test_ops_linear_batch(void **state)
{
    hess_context *ctx = *state;
    /* x [4,3], W [2,3], b [2]: y = x W^T + b, by loops */
    hess_tensor *x = ramp(ctx, 2, SHP(4, 3), -1.0, 0.5);
    hess_tensor *W = mk(ctx, 2, SHP(2, 3), VAL(1, 2, -1, 0.25, -0.5, 3));
    hess_tensor *b = mk(ctx, 1, SHP(2), VAL(0.5, -2));
    double want[8], wantb[8];
    for (int i = 0; i < 4; i++)
        for (int o = 0; o < 2; o++) {
            double s = 0;
            for (int k = 0; k < 3; k++)
                s += hess_tensor_data(x)[i * 3 + k] * hess_tensor_data(W)[o * 3 + k];
            want[i * 2 + o] = s;
            wantb[i * 2 + o] = s + hess_tensor_data(b)[o];
        }
    check_tensor(ctx, hess_linear(ctx, x, W, NULL), 2, SHP(4, 2), want);
    const int64_t before = hess_context_mark(ctx).nodes;
    check_tensor(ctx, hess_linear(ctx, x, W, b), 2, SHP(4, 2), wantb);
    assert_int_equal(hess_context_mark(ctx).nodes, before + 1);
    /* the same bits as a matmul and an add, here and where every dimension
     * is at least 4 (the AVX2 kernel, where the CPU has it) */
    hess_tensor *two = hess_add(ctx, hess_linear(ctx, x, W, NULL), b);
    assert_memory_equal(hess_tensor_data(hess_linear(ctx, x, W, b)), hess_tensor_data(two),
                        sizeof wantb);
    hess_tensor *xw = ramp(ctx, 2, SHP(7, 9), -1.5, 0.0625);
    hess_tensor *Ww = ramp(ctx, 2, SHP(5, 9), 0.75, -0.03125);
    hess_tensor *bw = ramp(ctx, 1, SHP(5), 0.3, 0.7);
    hess_tensor *one = hess_linear(ctx, xw, Ww, bw);
    two = hess_add(ctx, hess_linear(ctx, xw, Ww, NULL), bw);
    assert_ok(ctx, hess_context_status(ctx));
    assert_memory_equal(hess_tensor_data(one), hess_tensor_data(two), 35 * sizeof(double));
    /* the internal builder checks the bias against the rows */
    assert_null(hess__linear_t(ctx, x, W, false, true, W, "test_ops"));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_SHAPE);
    hess_context_clear_error(ctx);
    assert_null(
        hess__linear_t(ctx, x, W, false, true, mk(ctx, 1, SHP(3), VAL(1, 2, 3)), "test_ops"));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_SHAPE);
    hess_context_clear_error(ctx);
    /* a batch of one row equals the vector form */
    hess_tensor *x1 = mk(ctx, 2, SHP(1, 3), VAL(1, 2, 3));
    check_tensor(ctx, hess_linear(ctx, x1, W, b), 2, SHP(1, 2),
                 VAL(1 + 4 - 3 + 0.5, 0.25 - 1 + 9 - 2));
}

/* Convolution and pooling by hand: x = 1..16 as a 4x4 plane. */
static void test_ops_conv_pool(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *x = ramp(ctx, 4, SHP(1, 1, 4, 4), 1.0, 1.0);
    /* a 2x2 kernel of ones sums each window: x[i][j] + x[i][j+1] + x[i+1][j] +
     * x[i+1][j+1] = 4 (4i + j + 1) + 10, at stride 2: windows at (0,0), (0,2),
     * (2,0), (2,2); b = 0.5 */
    hess_tensor *w = mk(ctx, 4, SHP(1, 1, 2, 2), VAL(1, 1, 1, 1));
    hess_tensor *b = mk(ctx, 1, SHP(1), VAL(0.5));
    const hess_conv_opts s2 = {{2, 2}, {0, 0}, {0, 0}, 0};
    check_tensor(ctx, hess_conv2d(ctx, x, w, b, &s2), 4, SHP(1, 1, 2, 2),
                 VAL(14.5, 22.5, 46.5, 54.5));
    /* padding 1 with a 1x1 kernel of 2: a border of zeros around 2 x */
    const hess_conv_opts p1 = {{1, 1}, {1, 1}, {1, 1}, 1};
    hess_tensor *y = hess_conv2d(ctx, x, mk(ctx, 4, SHP(1, 1, 1, 1), VAL(2)), NULL, &p1);
    assert_ok(ctx, hess_context_status(ctx));
    assert_int_equal(hess_tensor_numel(y), 36);
    assert_true(hess_tensor_data(y)[0] == 0.0 && hess_tensor_data(y)[7] == 2.0 &&
                hess_tensor_data(y)[28] == 32.0 && hess_tensor_data(y)[35] == 0.0);
    /* dilation 3 with a 2x2 kernel reaches the corners: 1 + 4 + 13 + 16 */
    const hess_conv_opts d3 = {{1, 1}, {0, 0}, {3, 3}, 1};
    check_tensor(ctx, hess_conv2d(ctx, x, w, NULL, &d3), 4, SHP(1, 1, 1, 1), VAL(34));
    /* groups 2: each output channel sees its own input channel */
    hess_tensor *x2 = ramp(ctx, 3, SHP(2, 2, 2), 1.0, 1.0); /* one sample [C,H,W] */
    hess_tensor *w2 = mk(ctx, 4, SHP(2, 1, 2, 2), VAL(1, 0, 0, 0, 0, 0, 0, 1));
    const hess_conv_opts g2 = {{1, 1}, {0, 0}, {1, 1}, 2};
    check_tensor(ctx, hess_conv2d(ctx, x2, w2, NULL, &g2), 3, SHP(2, 1, 1), VAL(1, 8));
    /* pooling, floor mode: 2x2 windows at stride 2 (0 = the kernel) */
    check_tensor(ctx, hess_avg_pool2d(ctx, x, 2, 2, 0, 0), 4, SHP(1, 1, 2, 2),
                 VAL(3.5, 5.5, 11.5, 13.5));
    check_tensor(ctx, hess_max_pool2d(ctx, x, 2, 2, 2, 2), 4, SHP(1, 1, 2, 2), VAL(6, 8, 14, 16));
    check_tensor(ctx, hess_max_pool2d(ctx, x, 3, 3, 2, 2), 4, SHP(1, 1, 1, 1), VAL(11));
    /* ties go to the first maximum in the window: its derivative is there */
    hess_tensor *t = hess_param_new(ctx, 4, SHP(1, 1, 2, 2), VAL(1, 3, 3, 2)), *g;
    assert_ok(ctx,
              hess_grad(ctx, hess_sum(ctx, hess_max_pool2d(ctx, t, 2, 2, 2, 2)), 1, &t, &g, 0));
    check_tensor(ctx, g, 4, SHP(1, 1, 2, 2), VAL(0, 1, 0, 0));
}

static void test_ops_mse_loss(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = mk(ctx, 2, SHP(2, 2), VAL(1, 2, 3, 4));
    hess_tensor *t = mk(ctx, 2, SHP(2, 2), VAL(1.5, 2, 1, 7));
    /* (0.25 + 0 + 4 + 9) / 4: the mean over all elements, as torch.nn.MSELoss */
    check_scalar(ctx, hess_mse_loss(ctx, p, t), 13.25 / 4);
    check_scalar(ctx, hess_mse_loss(ctx, p, p), 0.0);
    check_scalar(ctx, hess_mse_loss(ctx, hess_scalar(ctx, 3), hess_scalar(ctx, -1)), 16.0);
}

static void test_ops_cross_entropy_batch(void **state)
{
    hess_context *ctx = *state;
    const double z[6] = {1, 2, 3, 0.5, -1, 2};
    hess_tensor *logits = mk(ctx, 2, SHP(2, 3), z);
    hess_tensor *targets = mk(ctx, 1, SHP(2), VAL(2, 0));
    const double l0 = log(exp(1.0) + exp(2.0) + exp(3.0)) - 3.0;
    const double l1 = log(exp(0.5) + exp(-1.0) + exp(2.0)) - 0.5;
    check_scalar(ctx, hess_cross_entropy(ctx, logits, targets), (l0 + l1) / 2);
    /* uniform logits give log C whatever the targets */
    hess_tensor *u = mk(ctx, 2, SHP(3, 4), NULL);
    check_scalar(ctx, hess_cross_entropy(ctx, u, mk(ctx, 1, SHP(3), VAL(0, 3, 1))), log(4.0));
}

static void test_ops_cross_entropy_single(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *logits = mk(ctx, 1, SHP(3), VAL(0.5, -1, 2));
    const double lse = log(exp(0.5) + exp(-1.0) + exp(2.0));
    check_scalar(ctx, hess_cross_entropy(ctx, logits, hess_scalar(ctx, 1)), lse + 1.0);
    check_scalar(ctx, hess_cross_entropy(ctx, logits, hess_scalar(ctx, 0)), lse - 0.5);
    check_scalar(ctx, hess_cross_entropy(ctx, logits, hess_scalar(ctx, 2)), lse - 2.0);
}

static void test_ops_bce_with_logits(void **state)
{
    hess_context *ctx = *state;
    const double x[4] = {0.5, -1, 2, 0}, y[4] = {1, 0, 0.25, 1};
    double want = 0;
    for (int i = 0; i < 4; i++)
        want += log1p(exp(x[i])) - x[i] * y[i];
    check_scalar(ctx, hess_bce_with_logits(ctx, mk(ctx, 2, SHP(2, 2), x), mk(ctx, 2, SHP(2, 2), y)),
                 want / 4);
    /* the textbook form -[y log s + (1-y) log(1-s)] agrees */
    double tb = 0;
    for (int i = 0; i < 4; i++) {
        const double s = 1 / (1 + exp(-x[i]));
        tb -= y[i] * log(s) + (1 - y[i]) * log(1 - s);
    }
    assert_close(want / 4, tb / 4, 1e-14, 0);
    /* finite for huge logits: softplus(1000) - 1000*1 = 0, softplus(-1000) = 0 */
    check_scalar(ctx,
                 hess_bce_with_logits(ctx, mk(ctx, 1, SHP(2), VAL(1000, -1000)),
                                      mk(ctx, 1, SHP(2), VAL(1, 0))),
                 0.0);
}

/* The losses with options: the defaults (NULL, or a zeroed struct) are the
 * one-node losses bit for bit, values and gradients. */
static void test_ops_losses_ex_default_bits(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = hess_param_new(ctx, 2, SHP(2, 3), VAL(0.5, -1, 2, 0.25, 3, -0.75));
    hess_tensor *y = mk(ctx, 2, SHP(2, 3), VAL(0.2, 0, 1, 0.7, 0.5, 0.1));
    hess_tensor *t = mk(ctx, 1, SHP(2), VAL(2, 0));
    const hess_loss_opts zero = {0};
    hess_tensor *pairs[3][3] = {
        {hess_mse_loss(ctx, p, y), hess_mse_loss_ex(ctx, p, y, NULL),
         hess_mse_loss_ex(ctx, p, y, &zero)},
        {hess_cross_entropy(ctx, p, t), hess_cross_entropy_ex(ctx, p, t, NULL),
         hess_cross_entropy_ex(ctx, p, t, &zero)},
        {hess_bce_with_logits(ctx, p, y), hess_bce_with_logits_ex(ctx, p, y, NULL),
         hess_bce_with_logits_ex(ctx, p, y, &zero)}};
    for (int i = 0; i < 3; i++) {
        hess_tensor *g[3];
        for (int k = 0; k < 3; k++)
            assert_ok(ctx, hess_grad(ctx, pairs[i][k], 1, &p, &g[k], 0));
        for (int k = 1; k < 3; k++) {
            assert_memory_equal(hess_tensor_data(pairs[i][k]), hess_tensor_data(pairs[i][0]),
                                sizeof(double));
            assert_memory_equal(hess_tensor_data(g[k]), hess_tensor_data(g[0]), 6 * sizeof(double));
        }
    }
}

/* Cross-entropy with a weight, an ignored row and smoothing, by hand:
 * l_i = keep_i ((1-e) w[t_i] (-lp[i,t_i]) + (e/C) sum_c w[c] (-lp[i,c])), and
 * the mean divides by the kept rows' target weights. */
static void test_ops_cross_entropy_ex_by_hand(void **state)
{
    hess_context *ctx = *state;
    const double z[9] = {1, 2, 3, 0.5, -1, 2, -0.25, 0.75, 0}, w[3] = {0.5, 2, 1}, e = 0.3;
    const double tv[3] = {0, 2, 1};
    hess_tensor *logits = mk(ctx, 2, SHP(3, 3), z), *targets = mk(ctx, 1, SHP(3), tv);
    double l[3], den = 0, sum = 0;
    for (int i = 0; i < 3; i++) {
        const double lse = log(exp(z[3 * i]) + exp(z[3 * i + 1]) + exp(z[3 * i + 2]));
        const int ti = (int)tv[i];
        double smooth = 0;
        for (int c = 0; c < 3; c++)
            smooth += w[c] * (lse - z[3 * i + c]);
        l[i] = i == 1 ? 0.0 : (1 - e) * w[ti] * (lse - z[3 * i + ti]) + e / 3 * smooth;
        den += i == 1 ? 0.0 : w[ti];
        sum += l[i];
    }
    hess_tensor *wt = mk(ctx, 1, SHP(3), w);
    hess_loss_opts o = {
        .weight = wt, .use_ignore_index = 1, .ignore_index = 2, .label_smoothing = e};
    check_scalar(ctx, hess_cross_entropy_ex(ctx, logits, targets, &o), sum / den);
    o.reduction = HESS_REDUCE_SUM;
    check_scalar(ctx, hess_cross_entropy_ex(ctx, logits, targets, &o), sum);
    o.reduction = HESS_REDUCE_NONE;
    check_tensor(ctx, hess_cross_entropy_ex(ctx, logits, targets, &o), 1, SHP(3), l);
    /* NLL of the log-probabilities: the same without smoothing */
    o.label_smoothing = 0;
    hess_tensor *lp = hess_log_softmax(ctx, logits, 1);
    check_tensor(ctx, hess_nll_loss(ctx, lp, targets, &o), 1, SHP(3),
                 VAL(-w[0] * hess_tensor_data(lp)[0], 0, -w[1] * hess_tensor_data(lp)[7]));
}

/* NLL reads the target's entry only: -Inf elsewhere is no NaN, in the value
 * or the gradient. */
static void test_ops_nll_loss_neg_inf_elsewhere(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *x =
        hess_param_new(ctx, 2, SHP(2, 3), VAL(-INFINITY, -0.5, -INFINITY, -2, -0.25, -1));
    hess_tensor *L = hess_nll_loss(ctx, x, mk(ctx, 1, SHP(2), VAL(1, 0)), NULL);
    check_scalar(ctx, L, (0.5 + 2) / 2);
    hess_tensor *g;
    assert_ok(ctx, hess_grad(ctx, L, 1, &x, &g, 0));
    check_tensor(ctx, g, 2, SHP(2, 3), VAL(0, -0.5, 0, -0.5, 0, 0));
}

/* BCE on probabilities at 0 and 1: PyTorch's logs clamped at -100, so the
 * loss is finite, and the derivatives are the clamped function's: 0 where a
 * log is clamped, finite everywhere. */
static void test_ops_bce_clamped_log(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = hess_param_new(ctx, 1, SHP(4), VAL(0, 1, 0, 1));
    hess_tensor *y = mk(ctx, 1, SHP(4), VAL(1, 0, 0, 1));
    const hess_loss_opts sum = {.reduction = HESS_REDUCE_SUM};
    hess_tensor *L = hess_bce(ctx, p, y, &sum);
    check_scalar(ctx, L, 200.0);
    hess_tensor *g;
    double d[4];
    assert_ok(ctx, hess_grad(ctx, L, 1, &p, &g, 0));
    check_tensor(ctx, g, 1, SHP(4), VAL(0, 0, 1, -1));
    assert_ok(ctx, hess_hessian_diag(ctx, L, 1, &p, d));
    assert_close_array(d, VAL(0, 0, 1, 1), 4, RTOL, ATOL);
    /* inside: -(y log p + (1-y) log(1-p)) */
    hess_tensor *q = mk(ctx, 1, SHP(2), VAL(0.25, 0.9));
    check_tensor(ctx,
                 hess_bce(ctx, q, mk(ctx, 1, SHP(2), VAL(1, 0.5)),
                          &(hess_loss_opts){.reduction = HESS_REDUCE_NONE}),
                 1, SHP(2), VAL(-log(0.25), -0.5 * log(0.9) - 0.5 * log(1 - 0.9)));
}

/* BCE with logits per element: softplus(x) - x y without cancellation, so a
 * tiny loss at a large logit keeps its digits. */
static void test_ops_bce_with_logits_ex_small_terms(void **state)
{
    hess_context *ctx = *state;
    const hess_loss_opts none = {.reduction = HESS_REDUCE_NONE};
    hess_tensor *l = hess_bce_with_logits_ex(ctx, mk(ctx, 1, SHP(3), VAL(40, -40, 20)),
                                             mk(ctx, 1, SHP(3), VAL(1, 0, 1)), &none);
    check_tensor(ctx, l, 1, SHP(3), VAL(log1p(exp(-40.0)), log1p(exp(-40.0)), log1p(exp(-20.0))));
    /* a weight [2,1] scales the rows; the mean divides by the elements */
    hess_tensor *x = mk(ctx, 2, SHP(2, 2), VAL(0.5, -1, 2, 0)),
                *y = mk(ctx, 2, SHP(2, 2), VAL(1, 0, 0.25, 1));
    const hess_loss_opts w = {.weight = mk(ctx, 2, SHP(2, 1), VAL(2, 0.5))};
    double want = 0;
    const double xv[4] = {0.5, -1, 2, 0}, yv[4] = {1, 0, 0.25, 1}, wv[4] = {2, 2, 0.5, 0.5};
    for (int i = 0; i < 4; i++)
        want += wv[i] * (log1p(exp(xv[i])) - xv[i] * yv[i]);
    check_scalar(ctx, hess_bce_with_logits_ex(ctx, x, y, &w), want / 4);
}

/* Huber on both sides of delta, and L1, whose value at 0 is +0. */
static void test_ops_huber_l1(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 1, SHP(4), VAL(0.25, -2, 0.5, 1)),
                *b = mk(ctx, 1, SHP(4), VAL(0, 0, 0, 1));
    const hess_loss_opts none = {.reduction = HESS_REDUCE_NONE, .delta = 0.5};
    check_tensor(ctx, hess_huber_loss(ctx, a, b, &none), 1, SHP(4),
                 VAL(0.5 * 0.0625, 0.5 * (2 - 0.25), 0.5 * (0.5 - 0.25), 0));
    check_scalar(ctx, hess_huber_loss(ctx, a, b, NULL), (0.03125 + 1.5 + 0.125 + 0) / 4);
    hess_tensor *l = hess_l1_loss(ctx, a, b, &none);
    check_tensor(ctx, l, 1, SHP(4), VAL(0.25, 2, 0.5, 0));
    assert_false(signbit(hess_tensor_data(l)[3]));
    check_scalar(ctx, hess_l1_loss(ctx, a, b, &(hess_loss_opts){.reduction = HESS_REDUCE_SUM}),
                 2.75);
}

/* Building ops never changes their operands. */
static void test_ops_operands_unchanged(void **state)
{
    hess_context *ctx = *state;
    const double av[6] = {1, -2, 3, -4, 5, 0.5}, bv[3] = {0.5, 2, -1};
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), av);
    hess_tensor *b = hess_param_new(ctx, 1, SHP(3), bv);
    hess_tensor *y = hess_add(ctx, hess_mul(ctx, a, b), hess_div(ctx, b, a));
    y = hess_log_softmax(
        ctx, hess_tanh(ctx, hess_linear(ctx, a, hess_reshape(ctx, a, 2, SHP(2, 3)), NULL)), 0);
    y = hess_add(ctx, hess_sum(ctx, y), hess_sum(ctx, hess_transpose(ctx, a)));
    assert_non_null(y);
    assert_ok(ctx, hess_context_status(ctx));
    assert_memory_equal(hess_tensor_data(a), av, sizeof av);
    assert_memory_equal(hess_tensor_data(b), bv, sizeof bv);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_ctx, teardown_ctx)
    const struct CMUnitTest tests[] = {
        T(test_ops_tensor_new_copies_data),
        T(test_ops_add_sub_mul_div_same_shape),
        T(test_ops_add_broadcast_row),
        T(test_ops_mul_broadcast_outer),
        T(test_ops_binary_scalar_with_tensor),
        T(test_ops_sub_broadcast_rank3),
        T(test_ops_binary_broadcast_general),
        T(test_ops_div_broadcast_column),
        T(test_ops_neg_scale),
        T(test_ops_matmul_matrix_matrix),
        T(test_ops_matmul_matrix_vector),
        T(test_ops_matmul_vector_matrix),
        T(test_ops_matmul_vector_vector),
        T(test_ops_matmul_outer),
        T(test_ops_matmul_batched),
        T(test_ops_matmul_stacked_flags),
        T(test_ops_matmul_sparse_edges),
        T(test_ops_matmul_dense_verdict),
        T(test_ops_matmul_sparse_tail),
        T(test_ops_matmul_internal_checks),
        T(test_ops_matmul_kernels),
        T(test_ops_elementwise_kernels_agree),
        T(test_ops_transpose),
        T(test_ops_reshape),
        T(test_ops_reshape_infer_and_views),
        T(test_ops_permute),
        T(test_ops_slice),
        T(test_ops_index_select_cat_stack),
        T(test_ops_index_rank3),
        T(test_ops_gather),
        T(test_ops_sum_mean),
        T(test_ops_sum_axis_each_axis),
        T(test_ops_mean_axis),
        T(test_ops_sum_to),
        T(test_ops_broadcast_to),
        T(test_ops_exp_log),
        T(test_ops_tanh_sigmoid),
        T(test_ops_relu_softplus),
        T(test_ops_square_sqrt_pow),
        T(test_ops_unary_more),
        T(test_ops_gates),
        T(test_ops_maximum_minimum),
        T(test_ops_where),
        T(test_ops_pow_t),
        T(test_ops_log_softmax_2d),
        T(test_ops_log_softmax_3d),
        T(test_ops_log_softmax_large_inputs),
        T(test_ops_linear_vector),
        T(test_ops_linear_batch),
        T(test_ops_conv_pool),
        T(test_ops_mse_loss),
        T(test_ops_cross_entropy_batch),
        T(test_ops_cross_entropy_single),
        T(test_ops_bce_with_logits),
        T(test_ops_losses_ex_default_bits),
        T(test_ops_cross_entropy_ex_by_hand),
        T(test_ops_nll_loss_neg_inf_elsewhere),
        T(test_ops_bce_clamped_log),
        T(test_ops_bce_with_logits_ex_small_terms),
        T(test_ops_huber_l1),
        T(test_ops_operands_unchanged),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
