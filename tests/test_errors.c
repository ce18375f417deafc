/*
 * test_errors.c -- every error path of the op builders, the reverse mode and the
 * Hessian functions: the status, and a message naming the function and the
 * shapes (or index) involved.  Also: the first error is kept while an
 * expression is built from NULL results, tensors of another context, detached
 * gradients, HESS_CHECK_FINITE, cancellation, and that after
 * hess_context_clear_error the context works and earlier tensors are unchanged.
 */
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SHP(...) ((const int64_t[]){__VA_ARGS__})
#define VAL(...) ((const double[]){__VA_ARGS__})

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* The context holds status st and a message containing every fragment; the
 * error is then cleared. */
static void expect_err_at(
    hess_context *ctx, hess_status st, const char *const frag[], const char *file, int line)
{
    const hess_status got = hess_context_status(ctx);
    const char *msg = hess_context_errmsg(ctx);
    if (got != st) {
        print_error("%s:%d: status %d (%s), expected %d (%s); message \"%s\"\n", file, line,
                    (int)got, hess_status_str(got), (int)st, hess_status_str(st), msg);
        _fail(file, line);
    }
    for (int i = 0; frag[i]; i++)
        if (!strstr(msg, frag[i])) {
            print_error("%s:%d: message \"%s\" lacks \"%s\"\n", file, line, msg, frag[i]);
            _fail(file, line);
        }
    hess_context_clear_error(ctx);
    assert_int_equal(hess_context_status(ctx), HESS_OK);
}
#define EXPECT_ERR(ctx, st, ...)                                                                   \
    expect_err_at((ctx), (st), (const char *const[]){__VA_ARGS__, NULL}, __FILE__, __LINE__)

static hess_tensor *mk(hess_context *ctx, int ndim, const int64_t *shape, const double *data)
{
    hess_tensor *t = hess_tensor_new(ctx, ndim, shape, data);
    assert_ok(ctx, hess_context_status(ctx));
    assert_non_null(t);
    return t;
}

static hess_tensor *par(hess_context *ctx, int ndim, const int64_t *shape, const double *data)
{
    hess_tensor *t = hess_param_new(ctx, ndim, shape, data);
    assert_ok(ctx, hess_context_status(ctx));
    assert_non_null(t);
    return t;
}

/* ------------------------------------------------------------------------ */
/* Shapes                                                                   */
/* ------------------------------------------------------------------------ */

static void test_errors_matmul_inner_dims(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(4, 3), NULL), *b = mk(ctx, 2, SHP(4, 5), NULL);
    assert_null(hess_matmul(ctx, a, b));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_matmul", "[4,3]", "[4,5]");
    hess_tensor *v4 = mk(ctx, 1, SHP(4), NULL), *v3 = mk(ctx, 1, SHP(3), NULL);
    assert_null(hess_matmul(ctx, v3, v4));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_matmul", "[3]", "[4]");
    assert_null(hess_matmul(ctx, a, v4)); /* [4,3] x [4] */
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_matmul", "[4,3]", "[4]");
    assert_null(hess_matmul(ctx, v3, b)); /* [3] x [4,5] */
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_matmul", "[3]", "[4,5]");
    assert_null(hess_matmul(ctx, hess_scalar(ctx, 1), v4)); /* rank 0 */
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_matmul");
    /* batch dims 2 and 3 do not broadcast */
    hess_tensor *x = mk(ctx, 3, SHP(2, 3, 4), NULL), *y = mk(ctx, 3, SHP(3, 4, 5), NULL);
    assert_null(hess_matmul(ctx, x, y));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_matmul", "[2,3,4]", "[3,4,5]");
}

static void test_errors_broadcast_impossible(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), NULL), *b = mk(ctx, 1, SHP(2), NULL);
    assert_null(hess_add(ctx, a, b));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_add", "[2,3]", "[2]");
    assert_null(hess_sub(ctx, b, a));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_sub", "[2]", "[2,3]");
    assert_null(hess_mul(ctx, a, b));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_mul", "[2,3]", "[2]");
    assert_null(hess_div(ctx, a, b));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_div", "[2,3]", "[2]");
    hess_tensor *c = mk(ctx, 3, SHP(4, 1, 3), NULL), *d = mk(ctx, 2, SHP(2, 4), NULL);
    assert_null(hess_mul(ctx, c, d));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_mul", "[4,1,3]", "[2,4]");
}

static void test_errors_transpose_rank(void **state)
{
    hess_context *ctx = *state;
    assert_null(hess_transpose(ctx, mk(ctx, 1, SHP(3), NULL)));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_transpose", "[3]");
    assert_null(hess_transpose(ctx, hess_scalar(ctx, 2)));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_transpose", "[]");
}

static void test_errors_reshape(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), NULL);
    assert_null(hess_reshape(ctx, a, 1, SHP(4)));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_reshape", "[2,3]", "[4]");
    assert_null(hess_reshape(ctx, a, 2, SHP(4, 2)));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_reshape", "[2,3]", "[4,2]");
    assert_null(hess_reshape(ctx, a, 0, NULL));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_reshape", "[2,3]", "[]");
    assert_null(hess_reshape(ctx, a, 2, SHP(6, 0)));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_reshape", "dimension 1");
    assert_null(hess_reshape(ctx, a, 2, SHP(-2, -3)));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_reshape");
    assert_null(hess_reshape(ctx, a, 7, SHP(1, 1, 1, 1, 1, 2, 3)));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_reshape", "rank 7");
    assert_null(hess_reshape(ctx, a, -1, SHP(6)));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_reshape", "rank -1");
    assert_null(hess_reshape(ctx, a, 2, NULL));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_reshape");
    /* a huge product must not wrap around to the right count */
    assert_null(hess_reshape(ctx, a, 3, SHP(INT64_MAX / 2 + 1, 4, 3)));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_reshape");
}

static void test_errors_sum_to_broadcast_to(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), NULL);
    assert_null(hess_sum_to(ctx, a, 1, SHP(2)));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_sum_to", "[2,3]", "[2]");
    assert_null(hess_sum_to(ctx, a, 3, SHP(1, 2, 3))); /* more dims than a */
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_sum_to", "[2,3]", "[1,2,3]");
    assert_null(hess_sum_to(ctx, a, 2, SHP(2, 2)));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_sum_to", "[2,3]", "[2,2]");
    assert_null(hess_sum_to(ctx, a, 2, SHP(2, 0)));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_sum_to");
    assert_null(hess_broadcast_to(ctx, a, 2, SHP(3, 3)));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_broadcast_to", "[2,3]", "[3,3]");
    assert_null(hess_broadcast_to(ctx, a, 1, SHP(3))); /* fewer dims than a */
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_broadcast_to", "[2,3]", "[3]");
    assert_null(hess_broadcast_to(ctx, a, 7, SHP(1, 1, 1, 1, 1, 2, 3)));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_broadcast_to", "rank 7");
}

static void test_errors_linear_shapes(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *W = mk(ctx, 2, SHP(2, 4), NULL);
    assert_null(hess_linear(ctx, mk(ctx, 1, SHP(3), NULL), W, NULL));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_linear", "[3]", "[2,4]");
    assert_null(hess_linear(ctx, mk(ctx, 2, SHP(5, 3), NULL), W, NULL));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_linear", "[5,3]", "[2,4]");
    assert_null(hess_linear(ctx, mk(ctx, 3, SHP(2, 2, 4), NULL), W, NULL));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_linear", "[2,2,4]");
    assert_null(hess_linear(ctx, mk(ctx, 1, SHP(4), NULL), mk(ctx, 1, SHP(4), NULL), NULL));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_linear", "[4]");
    hess_tensor *x = mk(ctx, 2, SHP(5, 4), NULL);
    assert_null(hess_linear(ctx, x, W, mk(ctx, 1, SHP(3), NULL)));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_linear", "[3]", "[2,4]");
    assert_null(hess_linear(ctx, x, W, mk(ctx, 2, SHP(1, 2), NULL)));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_linear", "[1,2]", "[2,4]");
}

static void test_errors_loss_shapes(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), NULL), *b = mk(ctx, 1, SHP(3), NULL);
    assert_null(hess_mse_loss(ctx, a, b)); /* would broadcast, but a loss must not */
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_mse_loss", "[2,3]", "[3]");
    assert_null(hess_mse_loss(ctx, a, mk(ctx, 2, SHP(3, 2), NULL)));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_mse_loss", "[2,3]", "[3,2]");
    assert_null(hess_bce_with_logits(ctx, b, a));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_bce_with_logits", "[3]", "[2,3]");
}

static void test_errors_cross_entropy(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *z = mk(ctx, 2, SHP(2, 3), NULL);
    assert_null(hess_cross_entropy(ctx, z, mk(ctx, 1, SHP(2), VAL(0, 3))));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_cross_entropy", "target 1", "3");
    assert_null(hess_cross_entropy(ctx, z, mk(ctx, 1, SHP(2), VAL(-1, 0))));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_cross_entropy", "target 0", "-1");
    assert_null(hess_cross_entropy(ctx, z, mk(ctx, 1, SHP(2), VAL(1, 1.5))));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_cross_entropy", "target 1", "1.5");
    assert_null(hess_cross_entropy(ctx, z, mk(ctx, 1, SHP(2), VAL(NAN, 0))));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_cross_entropy", "target 0");
    assert_null(hess_cross_entropy(ctx, z, mk(ctx, 1, SHP(2), VAL(INFINITY, 0))));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_cross_entropy");
    /* shapes */
    assert_null(hess_cross_entropy(ctx, z, mk(ctx, 1, SHP(3), NULL)));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_cross_entropy", "[2,3]", "[3]");
    assert_null(hess_cross_entropy(ctx, z, mk(ctx, 2, SHP(2, 1), NULL)));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_cross_entropy", "[2,3]", "[2,1]");
    assert_null(hess_cross_entropy(ctx, z, hess_scalar(ctx, 0)));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_cross_entropy", "[2,3]", "[]");
    hess_tensor *z1 = mk(ctx, 1, SHP(3), NULL);
    assert_null(hess_cross_entropy(ctx, z1, mk(ctx, 1, SHP(1), VAL(0))));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_cross_entropy", "[3]", "[1]");
    assert_null(hess_cross_entropy(ctx, z1, hess_scalar(ctx, 3)));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_cross_entropy", "3");
    assert_null(hess_cross_entropy(ctx, mk(ctx, 3, SHP(2, 2, 3), NULL), mk(ctx, 1, SHP(2), NULL)));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_cross_entropy", "[2,2,3]");
    assert_null(hess_cross_entropy(ctx, hess_scalar(ctx, 1), hess_scalar(ctx, 0)));
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_cross_entropy");
}

static void test_errors_bad_axis(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), NULL);
    assert_null(hess_sum_axis(ctx, a, 2));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_sum_axis", "axis 2", "[2,3]");
    assert_null(hess_sum_axis(ctx, a, -3));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_sum_axis", "axis -3", "[2,3]");
    assert_null(hess_mean_axis(ctx, a, 5));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_mean_axis", "axis 5", "[2,3]");
    assert_null(hess_log_softmax(ctx, a, 2));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_log_softmax", "axis 2", "[2,3]");
    assert_null(hess_softmax(ctx, a, -3));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "softmax", "axis -3", "[2,3]");
    assert_null(hess_sum_axis(ctx, hess_scalar(ctx, 1), 0));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_sum_axis", "axis 0", "[]");
    assert_null(hess_log_softmax(ctx, hess_scalar(ctx, 1), -1));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_log_softmax", "axis -1");
}

static void test_errors_pow_exponent(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 1, SHP(2), VAL(1, 2));
    assert_null(hess_pow(ctx, a, NAN));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_pow", "exponent");
    assert_null(hess_pow(ctx, a, INFINITY));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_pow", "exponent");
    assert_null(hess_pow(ctx, a, -INFINITY));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_pow", "exponent");
}

static void test_errors_leaf_shapes(void **state)
{
    hess_context *ctx = *state;
    assert_null(hess_tensor_new(ctx, 7, SHP(1, 1, 1, 1, 1, 1, 1), NULL));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_tensor_new", "rank 7");
    assert_null(hess_tensor_new(ctx, -1, SHP(1), NULL));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_tensor_new", "rank -1");
    assert_null(hess_tensor_new(ctx, 2, SHP(3, 0), NULL));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_tensor_new", "dimension 1");
    assert_null(hess_tensor_new(ctx, 1, SHP(-4), NULL));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_tensor_new", "dimension 0");
    assert_null(hess_tensor_new(ctx, 2, NULL, NULL));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_tensor_new");
    assert_null(hess_tensor_new(ctx, 3, SHP(INT64_MAX / 4, 4, 4), NULL));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_tensor_new", "overflow");
    assert_null(hess_param_new(ctx, 1, SHP(0), NULL));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_param_new", "dimension 0");
    assert_null(hess_param_new(ctx, 9, SHP(1), NULL));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_param_new", "rank 9");
}

/* ------------------------------------------------------------------------ */
/* NULL operands and the first error                                        */
/* ------------------------------------------------------------------------ */

/* Every builder given a NULL operand returns NULL and records HESS_ERR_ARG
 * naming itself (when no error is pending). */
static void test_errors_null_operand_each_builder(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(2, 3), NULL), *n = NULL;
#define NULL_CASE(call, name)                                                                      \
    do {                                                                                           \
        assert_null(call);                                                                         \
        EXPECT_ERR(ctx, HESS_ERR_ARG, name, "NULL");                                               \
    } while (0)
    NULL_CASE(hess_add(ctx, n, a), "hess_add");
    NULL_CASE(hess_add(ctx, a, n), "hess_add");
    NULL_CASE(hess_sub(ctx, n, a), "hess_sub");
    NULL_CASE(hess_mul(ctx, a, n), "hess_mul");
    NULL_CASE(hess_div(ctx, n, a), "hess_div");
    NULL_CASE(hess_neg(ctx, n), "hess_neg");
    NULL_CASE(hess_scale(ctx, n, 2.0), "hess_scale");
    NULL_CASE(hess_matmul(ctx, n, a), "hess_matmul");
    NULL_CASE(hess_matmul(ctx, a, n), "hess_matmul");
    NULL_CASE(hess_transpose(ctx, n), "hess_transpose");
    NULL_CASE(hess_reshape(ctx, n, 1, SHP(6)), "hess_reshape");
    NULL_CASE(hess_sum(ctx, n), "hess_sum");
    NULL_CASE(hess_sum_axis(ctx, n, 0), "hess_sum_axis");
    NULL_CASE(hess_mean(ctx, n), "hess_mean");
    NULL_CASE(hess_mean_axis(ctx, n, 0), "hess_mean_axis");
    NULL_CASE(hess_sum_to(ctx, n, 1, SHP(3)), "hess_sum_to");
    NULL_CASE(hess_broadcast_to(ctx, n, 2, SHP(2, 3)), "hess_broadcast_to");
    NULL_CASE(hess_exp(ctx, n), "hess_exp");
    NULL_CASE(hess_log(ctx, n), "hess_log");
    NULL_CASE(hess_tanh(ctx, n), "hess_tanh");
    NULL_CASE(hess_sigmoid(ctx, n), "hess_sigmoid");
    NULL_CASE(hess_relu(ctx, n), "hess_relu");
    NULL_CASE(hess_softplus(ctx, n), "hess_softplus");
    NULL_CASE(hess_square(ctx, n), "hess_square");
    NULL_CASE(hess_sqrt(ctx, n), "hess_sqrt");
    NULL_CASE(hess_pow(ctx, n, 2.0), "hess_pow");
    NULL_CASE(hess_log_softmax(ctx, n, 0), "hess_log_softmax");
    NULL_CASE(hess_softmax(ctx, n, 0), "softmax");
    NULL_CASE(hess_linear(ctx, n, a, NULL), "hess_linear");
    NULL_CASE(hess_linear(ctx, a, n, NULL), "hess_linear");
    NULL_CASE(hess_mse_loss(ctx, n, a), "hess_mse_loss");
    NULL_CASE(hess_mse_loss(ctx, a, n), "hess_mse_loss");
    NULL_CASE(hess_cross_entropy(ctx, n, a), "hess_cross_entropy");
    NULL_CASE(hess_bce_with_logits(ctx, a, n), "hess_bce_with_logits");
#undef NULL_CASE
    /* a NULL context: NULL back, nothing recorded anywhere */
    assert_null(hess_add(NULL, a, a));
    assert_null(hess_exp(NULL, a));
    assert_null(hess_pow(NULL, a, NAN));
    assert_null(hess_matmul(NULL, a, a));
    assert_null(hess_linear(NULL, a, a, NULL));
    assert_null(hess_cross_entropy(NULL, a, a));
    assert_null(hess_sum_axis(NULL, a, 0));
    assert_int_equal(hess_context_status(ctx), HESS_OK);
}

/* A whole expression built on a failed op fails once, with the first error. */
static void test_errors_first_error_kept(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *a = mk(ctx, 2, SHP(4, 3), NULL), *b = mk(ctx, 2, SHP(4, 5), NULL);
    hess_tensor *w = par(ctx, 1, SHP(3), VAL(1, 2, 3));
    hess_tensor *bad = hess_matmul(ctx, a, b);
    assert_null(bad);
    hess_tensor *y = hess_mean(
        ctx, hess_tanh(ctx, hess_add(ctx, hess_mul(ctx, hess_exp(ctx, bad), w),
                                     hess_linear(ctx, bad, hess_transpose(ctx, bad), NULL))));
    assert_null(y);
    hess_tensor *loss = hess_mse_loss(ctx, hess_log_softmax(ctx, bad, 9), hess_sum_axis(ctx, a, 9));
    assert_null(loss);
    /* later shape and axis errors did not replace the first */
    assert_null(hess_reshape(ctx, a, 1, SHP(5)));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_SHAPE);
    /* the work functions return the pending error and do nothing */
    hess_tensor *g[1] = {a};
    assert_int_equal(hess_grad(ctx, y, 1, &w, g, 0), HESS_ERR_SHAPE);
    double h[9];
    assert_int_equal(hess_hessian(ctx, y, 1, &w, h), HESS_ERR_SHAPE);
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_matmul", "[4,3]", "[4,5]");
}

static void test_errors_other_context(void **state)
{
    hess_context *ctx = *state;
    hess_context *other = test_context();
    hess_tensor *a = par(ctx, 1, SHP(3), VAL(1, 2, 3));
    hess_tensor *b = hess_param_new(other, 1, SHP(3), VAL(4, 5, 6));
    assert_non_null(b);
    assert_null(hess_add(ctx, a, b));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_add", "another context");
    assert_null(hess_exp(ctx, b));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_exp", "another context");
    assert_null(hess_linear(ctx, a, mk(ctx, 2, SHP(2, 3), NULL), b));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_linear", "another context");
    hess_tensor *y = hess_sum(ctx, hess_square(ctx, a));
    assert_non_null(y);
    hess_tensor *g[1];
    assert_int_equal(hess_grad(ctx, y, 1, &b, g, 0), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_grad", "another context");
    hess_tensor *yo = hess_sum(other, b);
    assert_int_equal(hess_grad(ctx, yo, 1, &a, g, 0), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_grad", "another context");
    double h[9];
    assert_int_equal(hess_hessian(ctx, y, 1, &b, h), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_hessian", "another context");
    /* the other context saw none of it */
    assert_int_equal(hess_context_status(other), HESS_OK);
    hess_context_destroy(other);
}

/* ------------------------------------------------------------------------ */
/* hess_grad and hess_vjp                                                   */
/* ------------------------------------------------------------------------ */

static void test_errors_grad_nonscalar_y(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = par(ctx, 1, SHP(2), VAL(1, 2));
    hess_tensor *y = hess_square(ctx, p);
    hess_tensor *g[1];
    assert_int_equal(hess_grad(ctx, y, 1, &p, g, 0), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_grad", "scalar", "[2]");
    /* one element of any rank is a scalar */
    hess_tensor *y11 = hess_reshape(ctx, hess_sum(ctx, y), 2, SHP(1, 1));
    assert_ok(ctx, hess_grad(ctx, y11, 1, &p, g, 0));
    assert_memory_equal(hess_tensor_data(g[0]), VAL(2, 4), 2 * sizeof(double));
}

/* "On error grads[] is set to NULL": for every way hess_grad can fail. */
static void test_errors_grad_error_nulls_grads(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = par(ctx, 1, SHP(2), VAL(1, 2)), *u = par(ctx, 1, SHP(2), VAL(1, 2));
    hess_tensor *y = hess_sum(ctx, hess_square(ctx, p)), *sq = hess_square(ctx, p);
    hess_tensor *wrt[2] = {p, u}, *g[2];
    const char *what[5] = {"unused wrt (NODIFF)", "non-scalar y", "unknown flags", "NULL y",
                           "an error pending"};
    hess_status st[5];
    int left[5];
    for (int k = 0; k < 5; k++) {
        g[0] = g[1] = p; /* garbage the call must overwrite */
        if (k == 4)
            assert_null(hess_exp(ctx, NULL));
        st[k] = hess_grad(ctx, k == 1 ? sq : k == 3 ? NULL : y, 2, wrt, g, k == 2 ? 64u : 0u);
        left[k] = g[0] != NULL || g[1] != NULL;
        hess_context_clear_error(ctx);
    }
    char bad[256] = "";
    for (int k = 0; k < 5; k++) {
        assert_int_not_equal(st[k], HESS_OK);
        if (left[k])
            snprintf(bad + strlen(bad), sizeof bad - strlen(bad), "%s%s", bad[0] ? ", " : "",
                     what[k]);
    }
    if (bad[0])
        fail_msg("hess_grad failed but left grads[] non-NULL for: %s", bad);
}

static void test_errors_grad_bad_arrays(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = par(ctx, 1, SHP(2), VAL(1, 2)), *q = par(ctx, 0, NULL, VAL(3));
    hess_tensor *y = hess_sum(ctx, hess_mul(ctx, p, q));
    hess_tensor *wrt[2] = {p, q}, *g[2] = {p, p};
    assert_int_equal(hess_grad(ctx, y, 0, wrt, g, 0), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_grad");
    assert_int_equal(hess_grad(ctx, y, 2, NULL, g, 0), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_grad", "NULL");
    assert_int_equal(hess_grad(ctx, y, 2, wrt, NULL, 0), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_grad", "NULL");
    hess_tensor *holes[2] = {p, NULL};
    assert_int_equal(hess_grad(ctx, y, 2, holes, g, 0), HESS_ERR_ARG);
    assert_null(g[0]);
    assert_null(g[1]);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_grad", "wrt[1]");
    assert_int_equal(hess_grad(ctx, NULL, 2, wrt, g, 0), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_grad", "NULL");
    assert_int_equal(hess_grad(NULL, y, 2, wrt, g, 0), HESS_ERR_ARG);
    assert_int_equal(hess_context_status(ctx), HESS_OK);
    /* and the call works with good arguments */
    assert_ok(ctx, hess_grad(ctx, y, 2, wrt, g, 0));
    assert_memory_equal(hess_tensor_data(g[0]), VAL(3, 3), 2 * sizeof(double));
    assert_memory_equal(hess_tensor_data(g[1]), VAL(3), sizeof(double));
}

static void test_errors_grad_unused_wrt(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = par(ctx, 1, SHP(2), VAL(1, 2)), *u = par(ctx, 2, SHP(2, 3), NULL);
    hess_tensor *c = mk(ctx, 1, SHP(2), VAL(5, 6));
    hess_tensor *y = hess_sum(ctx, hess_square(ctx, p));
    hess_tensor *wrt[3] = {p, u, c}, *g[3] = {p, p, p};
    assert_int_equal(hess_grad(ctx, y, 3, wrt, g, 0), HESS_ERR_NODIFF);
    assert_null(g[0]);
    assert_null(g[1]);
    assert_null(g[2]);
    EXPECT_ERR(ctx, HESS_ERR_NODIFF, "hess_grad", "wrt[1]", "[2,3]");
    /* a tensor made after y cannot be on its path */
    hess_tensor *late = par(ctx, 1, SHP(2), VAL(0, 0));
    assert_int_equal(hess_grad(ctx, y, 1, &late, g, 0), HESS_ERR_NODIFF);
    EXPECT_ERR(ctx, HESS_ERR_NODIFF, "hess_grad", "wrt[0]");

    /* with HESS_ALLOW_UNUSED: zeros shaped like the tensor */
    assert_ok(ctx, hess_grad(ctx, y, 3, wrt, g, HESS_ALLOW_UNUSED));
    assert_memory_equal(hess_tensor_data(g[0]), VAL(2, 4), 2 * sizeof(double));
    assert_int_equal(hess_tensor_ndim(g[1]), 2);
    assert_int_equal(hess_tensor_shape(g[1])[0], 2);
    assert_int_equal(hess_tensor_shape(g[1])[1], 3);
    for (int i = 0; i < 6; i++)
        assert_true(hess_tensor_data(g[1])[i] == 0.0);
    assert_int_equal(hess_tensor_numel(g[2]), 2);
    assert_true(hess_tensor_data(g[2])[0] == 0.0 && hess_tensor_data(g[2])[1] == 0.0);
}

static void test_errors_grad_unknown_flags(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = par(ctx, 1, SHP(2), VAL(1, 2));
    hess_tensor *y = hess_sum(ctx, p), *g[1];
    assert_int_equal(hess_grad(ctx, y, 1, &p, g, 4u), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_grad", "flags");
    assert_int_equal(hess_grad(ctx, y, 1, &p, g, HESS_CREATE_GRAPH | 0x100u), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_grad", "flags");
    hess_tensor *seed = hess_scalar(ctx, 1.0);
    assert_int_equal(hess_vjp(ctx, 1, &y, &seed, 1, &p, g, 8u), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_vjp", "flags");
}

/* Without HESS_CREATE_GRAPH the gradients are constants to later passes. */
static void test_errors_grad_through_detached(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = par(ctx, 1, SHP(2), VAL(1, 2));
    hess_tensor *y = hess_sum(ctx, hess_pow(ctx, p, 3.0));
    hess_tensor *g[1], *g2[1];
    assert_ok(ctx, hess_grad(ctx, y, 1, &p, g, 0));
    assert_memory_equal(hess_tensor_data(g[0]), VAL(3, 12), 2 * sizeof(double));
    hess_tensor *s = hess_sum(ctx, g[0]);
    assert_non_null(s);
    assert_int_equal(hess_grad(ctx, s, 1, &p, g2, 0), HESS_ERR_NODIFF);
    assert_null(g2[0]);
    EXPECT_ERR(ctx, HESS_ERR_NODIFF, "hess_grad", "wrt[0]", "HESS_CREATE_GRAPH");
    /* not zeros with HESS_ALLOW_UNUSED either (issue #13 item 5) ... */
    assert_int_equal(hess_grad(ctx, s, 1, &p, g2, HESS_ALLOW_UNUSED), HESS_ERR_NODIFF);
    assert_null(g2[0]);
    EXPECT_ERR(ctx, HESS_ERR_NODIFF, "hess_grad", "wrt[0]", "HESS_CREATE_GRAPH");
    /* ... nor beside a recorded path (y + sum(g) would miss g's derivative) */
    assert_int_equal(hess_grad(ctx, hess_add(ctx, y, s), 1, &p, g2, 0), HESS_ERR_NODIFF);
    EXPECT_ERR(ctx, HESS_ERR_NODIFF, "hess_grad", "HESS_CREATE_GRAPH");
    /* hess_detach makes a constant on purpose: no path, so zeros or NODIFF */
    hess_tensor *sd = hess_sum(ctx, hess_detach(ctx, g[0]));
    assert_ok(ctx, hess_grad(ctx, sd, 1, &p, g2, HESS_ALLOW_UNUSED));
    assert_memory_equal(hess_tensor_data(g2[0]), VAL(0, 0), 2 * sizeof(double));
    assert_int_equal(hess_grad(ctx, sd, 1, &p, g2, 0), HESS_ERR_NODIFF);
    EXPECT_ERR(ctx, HESS_ERR_NODIFF, "hess_grad", "does not depend on wrt[0]");
    /* recorded, the same gradient differentiates: d/dp sum(3p^2) = 6p */
    assert_ok(ctx, hess_grad(ctx, y, 1, &p, g, HESS_CREATE_GRAPH));
    assert_ok(ctx, hess_grad(ctx, hess_sum(ctx, g[0]), 1, &p, g2, 0));
    assert_memory_equal(hess_tensor_data(g2[0]), VAL(6, 12), 2 * sizeof(double));
}

static void test_errors_vjp(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = par(ctx, 1, SHP(3), VAL(1, 2, 3));
    hess_tensor *y = hess_square(ctx, p), *g[1];
    hess_tensor *seed_bad = mk(ctx, 1, SHP(2), VAL(1, 1));
    assert_int_equal(hess_vjp(ctx, 1, &y, &seed_bad, 1, &p, g, 0), HESS_ERR_SHAPE);
    EXPECT_ERR(ctx, HESS_ERR_SHAPE, "hess_vjp", "[2]", "[3]");
    hess_tensor *seed = mk(ctx, 1, SHP(3), VAL(1, 0, -1));
    assert_int_equal(hess_vjp(ctx, 0, &y, &seed, 1, &p, g, 0), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_vjp");
    assert_int_equal(hess_vjp(ctx, 1, &y, NULL, 1, &p, g, 0), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_vjp");
    hess_tensor *c = mk(ctx, 1, SHP(3), NULL);
    assert_int_equal(hess_vjp(ctx, 1, &y, &seed, 1, &c, g, 0), HESS_ERR_NODIFF);
    EXPECT_ERR(ctx, HESS_ERR_NODIFF, "hess_vjp", "wrt[0]");
    assert_ok(ctx, hess_vjp(ctx, 1, &y, &seed, 1, &p, g, 0));
    assert_memory_equal(hess_tensor_data(g[0]), VAL(2, 0, -6), 3 * sizeof(double));
}

/* ------------------------------------------------------------------------ */
/* Hessian functions                                                        */
/* ------------------------------------------------------------------------ */

static int cancel_at_second(size_t done, size_t total, void *user)
{
    int *calls = user;
    (*calls)++;
    return done < total && *calls >= 2;
}

/* Runs every Hessian function on (loss, params) and expects status st with a
 * message holding the function's name and frag (NULL: just the name). */
static void expect_all_hessian_fns(hess_context *ctx,
                                   hess_tensor *loss,
                                   size_t n,
                                   hess_tensor *const p[],
                                   hess_status st,
                                   const char *frag)
{
    double buf[256], v[16] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    hess_tensor *out[4];
    const char *f = frag ? frag : "";
    assert_int_equal(hess_hvp(ctx, loss, n, p, v, buf), st);
    EXPECT_ERR(ctx, st, "hess_hvp", f);
    assert_int_equal(hess_hessian(ctx, loss, n, p, buf), st);
    EXPECT_ERR(ctx, st, "hess_hessian", f);
    assert_int_equal(hess_hessian_ex(ctx, loss, n, p, NULL, buf), st);
    EXPECT_ERR(ctx, st, "hess_hessian", f);
    assert_int_equal(hess_hessian_diag(ctx, loss, n, p, buf), st);
    EXPECT_ERR(ctx, st, "hess_hessian_diag", f);
    assert_int_equal(hess_hessian_diag_ex(ctx, loss, n, p, NULL, buf), st);
    EXPECT_ERR(ctx, st, "hess_hessian_diag", f);
    assert_int_equal(hess_hessian_diag_tensors(ctx, loss, n, p, out), st);
    EXPECT_ERR(ctx, st, "hess_hessian_diag", f); /* _tensors: see the test below */
    assert_int_equal(hess_hvp_batch(ctx, loss, n, p, 1, v, NULL, buf), st);
    EXPECT_ERR(ctx, st, "hess_hvp_batch", f);
}

static void test_errors_hessian_nonscalar_loss(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = par(ctx, 1, SHP(2), VAL(1, 2));
    hess_tensor *y = hess_square(ctx, p);
    expect_all_hessian_fns(ctx, y, 1, &p, HESS_ERR_ARG, "scalar");
    double buf[4];
    assert_int_equal(hess_hessian_block(ctx, y, p, p, buf), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_hessian_block", "scalar", "[2]");
}

/* The Hessian functions take what hess_grad takes as wrt: a constant (an
 * input) or an op result, for a Hessian with respect to it (issue #13 item
 * 6).  y = sum(p^2 c): H over (p, c) = [[diag(2c), diag(2p)], [diag(2p), 0]]. */
static void test_errors_hessian_wrt_any_tensor(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = par(ctx, 1, SHP(2), VAL(1, 2));
    hess_tensor *c = mk(ctx, 1, SHP(2), VAL(3, 4));
    hess_tensor *sq = hess_square(ctx, p);
    hess_tensor *y = hess_sum(ctx, hess_mul(ctx, sq, c));
    hess_tensor *ps[2] = {p, c};
    double h[16], d[4], hv[4], blk[4];
    const double want[16] = {6, 0, 2, 0, 0, 8, 0, 4, 2, 0, 0, 0, 0, 4, 0, 0};
    assert_ok(ctx, hess_hessian(ctx, y, 2, ps, h));
    assert_memory_equal(h, want, sizeof want);
    assert_ok(ctx, hess_hessian_diag(ctx, y, 2, ps, d));
    assert_memory_equal(d, VAL(6, 8, 0, 0), sizeof d);
    assert_ok(ctx, hess_hvp(ctx, y, 2, ps, VAL(0, 0, 1, 0), hv));
    assert_memory_equal(hv, VAL(2, 0, 0, 0), sizeof hv);
    assert_ok(ctx, hess_hessian_block(ctx, y, c, p, blk));
    assert_memory_equal(blk, VAL(2, 0, 0, 4), sizeof blk);
    /* an op result: y is linear in sq, so its Hessian there is zero */
    hess_tensor *ps2[1] = {sq};
    assert_ok(ctx, hess_hessian(ctx, y, 1, ps2, blk));
    assert_memory_equal(blk, VAL(0, 0, 0, 0), sizeof blk);
}

/* A list names each tensor once: every function that takes one refuses a
 * repeat with HESS_ERR_ARG naming both indices (issue #13 item 4). */
static void test_errors_repeated_tensor_in_a_list(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = par(ctx, 1, SHP(2), VAL(1, 2)), *q = par(ctx, 0, NULL, VAL(3));
    hess_tensor *y = hess_sum(ctx, hess_mul(ctx, hess_square(ctx, p), q));
    hess_tensor *ps[3] = {p, q, p}, *g[3];
    expect_all_hessian_fns(ctx, y, 3, ps, HESS_ERR_ARG,
                           "params[2] is the same tensor as params[0]");
    assert_int_equal(hess_grad(ctx, y, 3, ps, g, 0), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_grad", "wrt[2] is the same tensor as wrt[0]");
    assert_null(g[0]);
    hess_tensor *seed = mk(ctx, 0, NULL, VAL(1));
    assert_int_equal(hess_vjp(ctx, 1, &y, &seed, 3, ps, g, 0), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_vjp", "wrt[2] is the same tensor as wrt[0]");
}

static void test_errors_hessian_unused_parameter(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = par(ctx, 1, SHP(2), VAL(1, 2)), *u = par(ctx, 1, SHP(3), NULL);
    hess_tensor *y = hess_sum(ctx, hess_exp(ctx, p));
    hess_tensor *ps[2] = {p, u};
    expect_all_hessian_fns(ctx, y, 2, ps, HESS_ERR_NODIFF, "params[1]");
    hess_tensor *ps2[2] = {u, p};
    expect_all_hessian_fns(ctx, y, 2, ps2, HESS_ERR_NODIFF, "params[0]");
    double buf[8];
    assert_int_equal(hess_hessian_block(ctx, y, p, u, buf), HESS_ERR_NODIFF);
    EXPECT_ERR(ctx, HESS_ERR_NODIFF, "hess_hessian_block", "params[1]");
    assert_int_equal(hess_hessian_block(ctx, y, u, p, buf), HESS_ERR_NODIFF);
    EXPECT_ERR(ctx, HESS_ERR_NODIFF, "hess_hessian_block", "params[0]");

    /* HESS_ALLOW_UNUSED in the options: zero rows and columns (item 5) */
    hess_hessian_opts o = {0};
    o.flags = HESS_ALLOW_UNUSED;
    double h[25], d[5], hv[10];
    const double e1 = exp(1.0), e2 = exp(2.0);
    assert_ok(ctx, hess_hessian_ex(ctx, y, 2, ps, &o, h));
    for (int i = 0; i < 25; i++)
        assert_true(h[i] == (i == 0 ? e1 : i == 6 ? e2 : 0.0));
    assert_ok(ctx, hess_hessian_diag_ex(ctx, y, 2, ps2, &o, d));
    assert_memory_equal(d, VAL(0, 0, 0, e1, e2), sizeof d);
    assert_ok(ctx, hess_hvp_batch(ctx, y, 2, ps, 2, VAL(1, 1, 1, 1, 1, 0, 2, 0, 0, 0), &o, hv));
    assert_memory_equal(hv, VAL(e1, e2, 0, 0, 0, 0, 2 * e2, 0, 0, 0), sizeof hv);
    assert_ok(ctx, hess_hessian_block_ex(ctx, y, p, u, &o, buf));
    assert_memory_equal(buf, VAL(0, 0, 0, 0, 0, 0), 6 * sizeof(double));
    o.flags = 4;
    assert_int_equal(hess_hessian_ex(ctx, y, 2, ps, &o, h), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_hessian", "unknown flags");
}

/* Progress callbacks that call back into the context: refused with
 * HESS_ERR_STATE, and the outer call returns that error (issue #13 item 10). */
typedef struct reenter {
    hess_context *ctx;
    hess_tensor *loss, *p;
    int what, calls;
    hess_status inner;
} reenter;

static int progress_reenter(size_t done, size_t total, void *user)
{
    (void)done, (void)total;
    reenter *r = user;
    hess_context *ctx = r->ctx;
    double buf[16];
    hess_tensor *g[1];
    r->calls++;
    switch (r->what) {
    case 0:
        r->inner = hess_context_rewind(ctx, hess_context_mark(ctx));
        break;
    case 1:
        r->inner = hess_grad(ctx, r->loss, 1, &r->p, g, 0);
        break;
    case 2:
        r->inner = hess_hessian(ctx, r->loss, 1, &r->p, buf);
        break;
    case 3:
        r->inner = hess_exp(ctx, r->p) ? HESS_OK : hess_context_status(ctx);
        break;
    case 4:
        r->inner = hess_param_set(ctx, r->p, VAL(1, 2, 3, 4));
        break;
    case 5:
        r->inner = hess_recompute(ctx);
        break;
    case 6:
        hess_context_destroy(ctx); /* refused: the context lives on */
        r->inner = hess_context_status(ctx);
        break;
    case 7:
        r->inner = hess_tensor_new(ctx, 0, NULL, NULL) ? HESS_OK : hess_context_status(ctx);
        break;
    }
    return 0;
}

static void test_errors_reentrant_callback(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = par(ctx, 1, SHP(4), VAL(0.5, -1, 0.25, 2));
    hess_tensor *y = hess_sum(ctx, hess_exp(ctx, p));
    const hess_mark mk = hess_context_mark(ctx);
    for (int what = 0; what < 8; what++) {
        reenter r = {ctx, y, p, what, 0, HESS_OK};
        hess_hessian_opts o = {0};
        o.block_rows = 1;
        o.progress = progress_reenter;
        o.user = &r;
        double h[16];
        assert_int_equal(hess_hessian_ex(ctx, y, 1, &p, &o, h), HESS_ERR_STATE);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.inner, HESS_ERR_STATE);
        EXPECT_ERR(ctx, HESS_ERR_STATE, "progress callback of hess_hessian", "busy");
        /* the context works as before, its tape as found */
        assert_memory_equal(hess_tensor_data(p), VAL(0.5, -1, 0.25, 2), 4 * sizeof(double));
        assert_int_equal(hess_context_mark(ctx).nodes, mk.nodes);
        assert_ok(ctx, hess_hessian(ctx, y, 1, &p, h));
        assert_close(h[5], exp(-1.0), 1e-15, 0);
    }
}

/* The message names the function the caller called, not a helper of it. */
static void test_errors_hessian_diag_tensors_names_itself(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = par(ctx, 1, SHP(2), VAL(1, 2)), *u = par(ctx, 1, SHP(3), NULL);
    hess_tensor *y = hess_sum(ctx, hess_exp(ctx, p));
    hess_tensor *ps[2] = {p, u}, *out[2] = {p, p};
    assert_int_equal(hess_hessian_diag_tensors(ctx, y, 2, ps, out), HESS_ERR_NODIFF);
    assert_null(out[0]);
    assert_null(out[1]);
    EXPECT_ERR(ctx, HESS_ERR_NODIFF, "hess_hessian_diag_tensors", "params[1]");
}

static void test_errors_hessian_bad_arguments(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = par(ctx, 1, SHP(2), VAL(1, 2));
    hess_tensor *y = hess_sum(ctx, hess_exp(ctx, p));
    double buf[8], v[2] = {1, 0};
    hess_tensor *none[1] = {NULL}, *out[1];
    assert_int_equal(hess_hessian(ctx, y, 0, &p, buf), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_hessian");
    assert_int_equal(hess_hessian(ctx, y, 1, NULL, buf), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_hessian");
    assert_int_equal(hess_hessian_diag(ctx, y, 1, none, buf), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_hessian_diag", "params[0]", "NULL");
    assert_int_equal(hess_hessian(ctx, y, 1, &p, NULL), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_hessian", "output");
    assert_int_equal(hess_hessian_diag_tensors(ctx, y, 1, &p, NULL), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_hessian_diag_tensors", "output");
    assert_int_equal(hess_hessian_block(ctx, y, p, p, NULL), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_hessian_block", "output");
    assert_int_equal(hess_hessian_block(ctx, y, p, NULL, buf), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_hessian_block", "NULL");
    assert_int_equal(hess_hvp(ctx, y, 1, &p, NULL, buf), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_hvp", "direction");
    assert_int_equal(hess_hvp(ctx, y, 1, &p, v, NULL), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_hvp", "output");
    assert_int_equal(hess_hvp(ctx, NULL, 1, &p, v, buf), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_hvp", "NULL");
    assert_int_equal(hess_hvp_batch(ctx, y, 1, &p, 0, v, NULL, buf), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_hvp_batch", "m = 0");
    assert_int_equal(hess_hvp_batch(ctx, y, 1, &p, 1, NULL, NULL, buf), HESS_ERR_ARG);
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_hvp_batch", "NULL V");
    assert_int_equal(hess_hessian(NULL, y, 1, &p, buf), HESS_ERR_ARG);
    assert_int_equal(hess_hvp(NULL, y, 1, &p, v, buf), HESS_ERR_ARG);
    assert_int_equal(hess_hessian_diag_tensors(NULL, y, 1, &p, out), HESS_ERR_ARG);
    assert_int_equal(hess_context_status(ctx), HESS_OK);
    /* good arguments still work: d2/dp2 sum(exp(p)) = diag(exp(p)) */
    assert_ok(ctx, hess_hessian(ctx, y, 1, &p, buf));
    assert_close(buf[0], exp(1.0), 1e-15, 0);
    assert_true(buf[1] == 0.0 && buf[2] == 0.0);
    assert_close(buf[3], exp(2.0), 1e-15, 0);
}

static void test_errors_hessian_cancelled(void **state)
{
    hess_context *ctx = *state;
    const double x[4] = {0.5, -1, 0.25, 2};
    hess_tensor *p = par(ctx, 1, SHP(4), x);
    /* L = sum(exp(p)) + (sum p)^2: H = diag(exp(p)) + 2 */
    hess_tensor *y =
        hess_add(ctx, hess_sum(ctx, hess_exp(ctx, p)), hess_square(ctx, hess_sum(ctx, p)));
    double h[16], want[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            want[i * 4 + j] = 2.0 + (i == j ? exp(x[i]) : 0.0);
    int calls = 0;
    hess_hessian_opts o = {0};
    o.block_rows = 1;
    o.progress = cancel_at_second;
    o.user = &calls;
    for (int i = 0; i < 16; i++)
        h[i] = -1.0;
    assert_int_equal(hess_hessian_ex(ctx, y, 1, &p, &o, h), HESS_ERR_CANCELLED);
    assert_int_equal(calls, 2);
    EXPECT_ERR(ctx, HESS_ERR_CANCELLED, "hess_hessian", "cancelled", "2", "4");
    /* the rows reported done are complete and correct */
    assert_close_array(h, want, 8, 1e-14, 1e-14);
    calls = 0;
    double d[4];
    o.method = HESS_DIAG_ROWS; /* one call at the end by backpropagation (test_diag) */
    assert_int_equal(hess_hessian_diag_ex(ctx, y, 1, &p, &o, d), HESS_ERR_CANCELLED);
    o.method = 0;
    EXPECT_ERR(ctx, HESS_ERR_CANCELLED, "hess_hessian_diag", "cancelled");
    assert_close(d[0], want[0], 1e-14, 0);
    assert_close(d[1], want[5], 1e-14, 0);
    calls = 0;
    double V[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0}, HV[12];
    assert_int_equal(hess_hvp_batch(ctx, y, 1, &p, 3, V, &o, HV), HESS_ERR_CANCELLED);
    EXPECT_ERR(ctx, HESS_ERR_CANCELLED, "hess_hvp_batch", "cancelled");
    assert_close_array(HV, want, 8, 1e-14, 1e-14); /* H e0, H e1 */
    /* cleared, the same call with no callback completes */
    assert_ok(ctx, hess_hessian_ex(ctx, y, 1, &p, NULL, h));
    assert_close_array(h, want, 16, 1e-14, 1e-14);
}

/* ------------------------------------------------------------------------ */
/* HESS_CHECK_FINITE and recovery                                           */
/* ------------------------------------------------------------------------ */

static void test_errors_check_finite(void **state)
{
    (void)state;
    hess_context *ctx = test_context_flags(HESS_CHECK_FINITE);
    const double xv[3] = {1.0, -2.0, 4.0};
    hess_tensor *x = mk(ctx, 1, SHP(3), xv);
    hess_tensor *p = par(ctx, 2, SHP(2, 2), VAL(0.5, 1, 1.5, 2));
    hess_tensor *lp = hess_log(ctx, p); /* fine: positive */
    assert_non_null(lp);
    double lp_before[4], p_before[4];
    memcpy(lp_before, hess_tensor_data(lp), sizeof lp_before);
    memcpy(p_before, hess_tensor_data(p), sizeof p_before);

    assert_null(hess_log(ctx, x));
    EXPECT_ERR(ctx, HESS_ERR_NONFINITE, "hess_log", "log", "[3]");
    assert_null(hess_sqrt(ctx, x));
    EXPECT_ERR(ctx, HESS_ERR_NONFINITE, "hess_sqrt", "sqrt", "[3]");
    assert_null(hess_exp(ctx, mk(ctx, 2, SHP(1, 2), VAL(1, 1000))));
    EXPECT_ERR(ctx, HESS_ERR_NONFINITE, "hess_exp", "[1,2]");
    assert_null(hess_div(ctx, x, mk(ctx, 2, SHP(2, 1), VAL(1, 0))));
    EXPECT_ERR(ctx, HESS_ERR_NONFINITE, "hess_div", "[3]", "[2,1]");
    assert_null(hess_pow(ctx, x, 0.5));
    EXPECT_ERR(ctx, HESS_ERR_NONFINITE, "hess_pow", "[3]");
    /* a whole expression on top fails once with the first message */
    hess_tensor *y = hess_sum(ctx, hess_add(ctx, hess_log(ctx, x), hess_exp(ctx, x)));
    assert_null(y);
    EXPECT_ERR(ctx, HESS_ERR_NONFINITE, "hess_log", "[3]");

    /* the context works again and made-before tensors are unchanged */
    assert_memory_equal(hess_tensor_data(lp), lp_before, sizeof lp_before);
    assert_memory_equal(hess_tensor_data(p), p_before, sizeof p_before);
    assert_memory_equal(hess_tensor_data(x), xv, sizeof xv);
    hess_tensor *loss = hess_sum(ctx, hess_mul(ctx, lp, p)); /* sum p log p */
    assert_non_null(loss);
    hess_tensor *g[1];
    assert_ok(ctx, hess_grad(ctx, loss, 1, &p, g, 0));
    for (int i = 0; i < 4; i++)
        assert_close(hess_tensor_data(g[0])[i], log(p_before[i]) + 1.0, 1e-15, 1e-15);
    double h[16];
    assert_ok(ctx, hess_hessian(ctx, loss, 1, &p, h));
    for (int i = 0; i < 4; i++)
        assert_close(h[i * 4 + i], 1.0 / p_before[i], 1e-15, 0);

    /* a Hessian that overflows is reported, the gradient alone is finite */
    hess_tensor *q = par(ctx, 1, SHP(2), VAL(354.5, 1.0));
    hess_tensor *big = hess_sum(ctx, hess_square(ctx, hess_exp(ctx, q)));
    assert_non_null(big);
    assert_ok(ctx, hess_grad(ctx, big, 1, &q, g, 0));
    assert_int_equal(hess_hessian(ctx, big, 1, &q, h), HESS_ERR_NONFINITE);
    EXPECT_ERR(ctx, HESS_ERR_NONFINITE, "non-finite");
    const double v[2] = {1, 0};
    assert_int_equal(hess_hvp(ctx, big, 1, &q, v, h), HESS_ERR_NONFINITE);
    EXPECT_ERR(ctx, HESS_ERR_NONFINITE, "non-finite");
    assert_memory_equal(hess_tensor_data(p), p_before, sizeof p_before);
    hess_context_destroy(ctx);
}

/* Without the flag, values are not checked: log(-2) is NaN and no error. */
static void test_errors_no_check_finite_by_default(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *l = hess_log(ctx, mk(ctx, 1, SHP(2), VAL(-2, 0)));
    assert_non_null(l);
    assert_int_equal(hess_context_status(ctx), HESS_OK);
    assert_true(isnan(hess_tensor_data(l)[0]));
    assert_true(isinf(hess_tensor_data(l)[1]));
}

/* Errors of every kind in a row, each cleared: nothing made before changes. */
static void test_errors_clear_error_keeps_tensors(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *W = par(ctx, 2, SHP(2, 3), VAL(0.1, -0.2, 0.3, 0.4, -0.5, 0.6));
    hess_tensor *x = mk(ctx, 2, SHP(4, 3), VAL(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12));
    hess_tensor *t = mk(ctx, 1, SHP(4), VAL(0, 1, 1, 0));
    hess_tensor *z = hess_linear(ctx, x, W, NULL);
    hess_tensor *loss = hess_cross_entropy(ctx, z, t);
    assert_non_null(loss);
    double zb[8], lb;
    memcpy(zb, hess_tensor_data(z), sizeof zb);
    lb = hess_tensor_data(loss)[0];

    assert_null(hess_matmul(ctx, x, x));
    hess_context_clear_error(ctx);
    assert_null(hess_cross_entropy(ctx, z, mk(ctx, 1, SHP(4), VAL(0, 1, 2, 0))));
    hess_context_clear_error(ctx);
    hess_tensor *g[1];
    assert_int_equal(hess_grad(ctx, z, 1, &W, g, 0), HESS_ERR_ARG);
    hess_context_clear_error(ctx);
    double h[36];
    hess_tensor *twice[2] = {W, W};
    assert_int_equal(hess_hessian(ctx, loss, 2, twice, h), HESS_ERR_ARG);
    hess_context_clear_error(ctx);

    assert_memory_equal(hess_tensor_data(z), zb, sizeof zb);
    assert_true(hess_tensor_data(loss)[0] == lb);
    assert_ok(ctx, hess_grad(ctx, loss, 1, &W, g, 0));
    assert_ok(ctx, hess_hessian(ctx, loss, 1, &W, h));
    /* H is symmetric and positive semi-definite on its diagonal */
    for (int i = 0; i < 6; i++) {
        assert_true(h[i * 6 + i] >= 0);
        for (int j = 0; j < 6; j++)
            assert_close(h[i * 6 + j], h[j * 6 + i], 1e-13, 1e-15);
    }
}

/* A broadcast to a shape whose element count (or byte count) overflows is
 * refused, like the same shape in hess_tensor_new, not allocated short.
 * Last in the list: without the check the write overruns the arena. */
static void test_errors_broadcast_to_overflowing_shape(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *s = hess_scalar(ctx, 1.0);
    const int64_t two31 = (int64_t)1 << 31, two32 = (int64_t)1 << 32;
    assert_null(hess_tensor_new(ctx, 2, SHP(two31, two31), NULL));
    EXPECT_ERR(ctx, HESS_ERR_ARG, "hess_tensor_new", "overflow");
    assert_null(hess_broadcast_to(ctx, s, 2, SHP(two32, two32))); /* 2^64 elements */
    assert_int_not_equal(hess_context_status(ctx), HESS_OK);
    EXPECT_ERR(ctx, hess_context_status(ctx), "hess_broadcast_to");
    assert_null(hess_broadcast_to(ctx, s, 2, SHP(two31, two31))); /* 2^65 bytes */
    assert_int_not_equal(hess_context_status(ctx), HESS_OK);
    EXPECT_ERR(ctx, hess_context_status(ctx), "hess_broadcast_to");
    hess_tensor *ok = hess_broadcast_to(ctx, s, 2, SHP(2, 2));
    assert_non_null(ok);
    assert_true(hess_tensor_data(ok)[3] == 1.0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_ctx, teardown_ctx)
    const struct CMUnitTest tests[] = {
        T(test_errors_matmul_inner_dims),
        T(test_errors_broadcast_impossible),
        T(test_errors_transpose_rank),
        T(test_errors_reshape),
        T(test_errors_sum_to_broadcast_to),
        T(test_errors_linear_shapes),
        T(test_errors_loss_shapes),
        T(test_errors_cross_entropy),
        T(test_errors_bad_axis),
        T(test_errors_pow_exponent),
        T(test_errors_leaf_shapes),
        T(test_errors_null_operand_each_builder),
        T(test_errors_first_error_kept),
        T(test_errors_other_context),
        T(test_errors_grad_nonscalar_y),
        T(test_errors_grad_error_nulls_grads),
        T(test_errors_grad_bad_arrays),
        T(test_errors_grad_unused_wrt),
        T(test_errors_grad_unknown_flags),
        T(test_errors_grad_through_detached),
        T(test_errors_vjp),
        T(test_errors_hessian_nonscalar_loss),
        T(test_errors_hessian_wrt_any_tensor),
        T(test_errors_repeated_tensor_in_a_list),
        T(test_errors_reentrant_callback),
        T(test_errors_hessian_unused_parameter),
        T(test_errors_hessian_diag_tensors_names_itself),
        T(test_errors_hessian_bad_arguments),
        T(test_errors_hessian_cancelled),
        cmocka_unit_test(test_errors_check_finite),
        T(test_errors_no_check_finite_by_default),
        T(test_errors_clear_error_keeps_tensors),
        T(test_errors_broadcast_to_overflowing_shape),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
