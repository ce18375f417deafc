/*
 * test_gradcheck.c -- hess_check_derivatives, the derivative check for users:
 * it passes on correct models (an MLP with tanh and MSE, cross-entropy, logistic
 * regression with weight decay, a loss that ignores a parameter), it fails and
 * names the right parameter, element and check when the analytic derivative is
 * made wrong through the public API (a constant copy of a parameter hides a
 * path from hess_grad; a penalty on w - copy(w) is invisible to the values and
 * the gradient but not to the Hessian), and it leaves parameters and memory as
 * it found them, also when the callback fails.
 */
#include "check.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Models                                                                   */
/* ------------------------------------------------------------------------ */

/* Data tensors a callback uses, made once before the check. */
typedef struct data {
    hess_tensor *x, *y;
    int variant; /* which deliberate mistake, 0 = none */
    int calls;   /* callback calls so far */
    int fail_at; /* > 0: the call that fails */
} data;

static hess_tensor *
rnd_tensor(hess_context *ctx, int param, int ndim, const int64_t *shape, uint64_t *s, double r)
{
    double v[256];
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    assert_true(n <= 256);
    for (int64_t i = 0; i < n; i++)
        v[i] = rnd_uniform(s, -r, r);
    return param ? hess_param_new(ctx, ndim, shape, v) : hess_tensor_new(ctx, ndim, shape, v);
}

/* A constant holding a parameter's current values: hess_grad cannot see
 * through it, finite differences can. */
static hess_tensor *frozen(hess_context *ctx, hess_tensor *p)
{
    return hess_tensor_new(ctx, hess_tensor_ndim(p), hess_tensor_shape(p), hess_tensor_data(p));
}

/* Linear(5,6) -> tanh -> Linear(6,3), MSE, batch 4.  params: W1 b1 W2 b2.
 * variant 1: b1[2] also enters as 3 * frozen(b1)[2]^2 (a missed gradient).
 * variant 2: adds 0.5 * |W2 - frozen(W2)|^2, zero with zero gradient, but
 *            Hessian + I on W2 (a wrong HVP with a right gradient). */
static hess_tensor *mlp_loss(hess_context *ctx, size_t n, hess_tensor *const p[], void *user)
{
    data *d = user;
    assert_int_equal(n, 4);
    d->calls++;
    if (d->fail_at && d->calls == d->fail_at)
        return hess_matmul(ctx, p[1], p[3]); /* [6] x [3]: a shape error */
    hess_tensor *h = hess_tanh(ctx, hess_linear(ctx, d->x, p[0], p[1]));
    hess_tensor *loss = hess_mse_loss(ctx, hess_linear(ctx, h, p[2], p[3]), d->y);
    if (d->variant == 1) {
        const double mask[6] = {0, 0, 3, 0, 0, 0};
        const int64_t six = 6;
        hess_tensor *fb = frozen(ctx, p[1]);
        hess_tensor *term =
            hess_mul(ctx, hess_tensor_new(ctx, 1, &six, mask), hess_square(ctx, fb));
        loss = hess_add(ctx, loss, hess_sum(ctx, hess_mul(ctx, p[1], term)));
        /* value: + 3 b1[2]^3, its analytic gradient only 3 b1[2]^2 (not 9 b1[2]^2) */
    } else if (d->variant == 2) {
        hess_tensor *diff = hess_sub(ctx, p[2], frozen(ctx, p[2]));
        loss = hess_add(ctx, loss, hess_scale(ctx, hess_sum(ctx, hess_square(ctx, diff)), 0.5));
    }
    return loss;
}

typedef struct mlp {
    hess_tensor *p[4];
    data d;
} mlp;

static void make_mlp(hess_context *ctx, mlp *m, uint64_t seed)
{
    uint64_t s = seed;
    const int64_t w1[2] = {6, 5}, b1[1] = {6}, w2[2] = {3, 6}, b2[1] = {3};
    const int64_t xs[2] = {4, 5}, ys[2] = {4, 3};
    m->p[0] = rnd_tensor(ctx, 1, 2, w1, &s, 0.8);
    m->p[1] = rnd_tensor(ctx, 1, 1, b1, &s, 0.5);
    m->p[2] = rnd_tensor(ctx, 1, 2, w2, &s, 0.8);
    m->p[3] = rnd_tensor(ctx, 1, 1, b2, &s, 0.5);
    memset(&m->d, 0, sizeof m->d);
    m->d.x = rnd_tensor(ctx, 0, 2, xs, &s, 1.5);
    m->d.y = rnd_tensor(ctx, 0, 2, ys, &s, 1.0);
}

/* Snapshot of the parameters' values, to check they are restored. */
static void snapshot(hess_tensor *const p[], size_t n, double *out)
{
    for (size_t i = 0; i < n; i++) {
        memcpy(out, hess_tensor_data(p[i]), (size_t)hess_tensor_numel(p[i]) * sizeof *out);
        out += hess_tensor_numel(p[i]);
    }
}

static bool same_mark(hess_mark a, hess_mark b)
{
    return a.block == b.block && a.used == b.used && a.nodes == b.nodes;
}

/* Runs the check and asserts that values and memory are as found. */
static hess_status run_check(hess_context *ctx,
                             hess_loss_fn f,
                             void *user,
                             size_t n,
                             hess_tensor *const p[],
                             const hess_check_opts *opts,
                             hess_check_report *rep)
{
    double before[256], after[256];
    const size_t N = hess_param_count(n, p);
    assert_true(N <= 256);
    snapshot(p, n, before);
    const hess_mark mk = hess_context_mark(ctx);
    hess_status st = hess_check_derivatives(ctx, f, user, n, p, opts, rep);
    assert_true(same_mark(mk, hess_context_mark(ctx)));
    snapshot(p, n, after);
    assert_memory_equal(before, after, N * sizeof *before);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Correct models pass                                                      */
/* ------------------------------------------------------------------------ */

static void test_mlp_tanh_passes(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    mlp m;
    make_mlp(ctx, &m, 42);
    hess_check_report rep;
    assert_ok(ctx, run_check(ctx, mlp_loss, &m.d, 4, m.p, NULL, &rep));
    assert_int_equal(rep.ok, 1);
    assert_true(rep.max_grad_err <= 1.0);
    assert_true(rep.max_hvp_err <= 1.0);
    assert_true(rep.max_grad_err < 0.01); /* central differences are far better than 1e-3 */
    assert_true(rep.max_hvp_err < 0.01);
    assert_true(rep.what == HESS_CHECK_GRADIENT || rep.what == HESS_CHECK_HVP);
    assert_true(rep.param < 4);
    /* 2N + 1 loss builds, then 2 per direction */
    assert_int_equal(m.d.calls, 2 * 57 + 1 + 2 * 4);
    hess_context_destroy(ctx);
}

/* Linear(4,3) logits, cross-entropy over a batch of 5. */
static hess_tensor *ce_loss(hess_context *ctx, size_t n, hess_tensor *const p[], void *user)
{
    (void)n;
    data *d = user;
    d->calls++;
    return hess_cross_entropy(ctx, hess_linear(ctx, d->x, p[0], p[1]), d->y);
}

static void test_cross_entropy_passes(void **state)
{
    hess_context *ctx = *state;
    uint64_t s = 7;
    const int64_t ws[2] = {3, 4}, bs[1] = {3}, xs[2] = {5, 4}, ts[1] = {5};
    hess_tensor *p[2] = {rnd_tensor(ctx, 1, 2, ws, &s, 1.0), rnd_tensor(ctx, 1, 1, bs, &s, 1.0)};
    const double targets[5] = {0, 2, 1, 2, 0};
    data d = {rnd_tensor(ctx, 0, 2, xs, &s, 2.0), hess_tensor_new(ctx, 1, ts, targets), 0, 0, 0};
    hess_check_opts opts = {0};
    opts.n_hvp = 6;
    opts.seed = 99;
    hess_check_report rep;
    assert_ok(ctx, run_check(ctx, ce_loss, &d, 2, p, &opts, &rep));
    assert_int_equal(rep.ok, 1);
    assert_int_equal(d.calls, 2 * 15 + 1 + 2 * 6);
}

/* Logistic regression with weight decay: BCE-with-logits + lambda |w|^2. */
static hess_tensor *logreg_loss(hess_context *ctx, size_t n, hess_tensor *const p[], void *user)
{
    (void)n;
    data *d = user;
    hess_tensor *z = hess_add(ctx, hess_matmul(ctx, d->x, p[0]), p[1]);
    hess_tensor *decay = hess_scale(ctx, hess_sum(ctx, hess_square(ctx, p[0])), 0.01);
    return hess_add(ctx, hess_bce_with_logits(ctx, z, d->y), decay);
}

static void test_logistic_weight_decay_passes(void **state)
{
    hess_context *ctx = *state;
    uint64_t s = 3;
    const int64_t ws[1] = {6}, xs[2] = {10, 6}, ys[1] = {10};
    hess_tensor *p[2] = {rnd_tensor(ctx, 1, 1, ws, &s, 1.0), hess_param_new(ctx, 0, NULL, NULL)};
    double y[10];
    for (int i = 0; i < 10; i++)
        y[i] = i % 3 == 0;
    data d = {rnd_tensor(ctx, 0, 2, xs, &s, 3.0), hess_tensor_new(ctx, 1, ys, y), 0, 0, 0};
    hess_check_report rep;
    /* tighter than the defaults, with a smaller step */
    hess_check_opts opts = {1e-5, 1e-6, 1e-9, 3, 1};
    assert_ok(ctx, run_check(ctx, logreg_loss, &d, 2, p, &opts, &rep));
    if (!rep.ok)
        fail_msg("param %zu index %lld: analytic %.17g numeric %.17g", rep.param,
                 (long long)rep.index, rep.analytic, rep.numeric);
}

/* The loss ignores its second parameter: a zero gradient, checked as such. */
static hess_tensor *unused_loss(hess_context *ctx, size_t n, hess_tensor *const p[], void *user)
{
    (void)n, (void)user;
    return hess_sum(ctx, hess_pow(ctx, p[0], 3.0));
}

static void test_unused_parameter_passes(void **state)
{
    hess_context *ctx = *state;
    const double a[3] = {0.5, -1.0, 2.0}, b[2] = {1, 2};
    const int64_t s3 = 3, s2 = 2;
    hess_tensor *p[2] = {hess_param_new(ctx, 1, &s3, a), hess_param_new(ctx, 1, &s2, b)};
    hess_check_report rep;
    assert_ok(ctx, run_check(ctx, unused_loss, NULL, 2, p, NULL, &rep));
    assert_int_equal(rep.ok, 1);
    assert_int_equal(hess_context_status(ctx), HESS_OK);
}

/* ------------------------------------------------------------------------ */
/* Wrong derivatives fail, naming the element                               */
/* ------------------------------------------------------------------------ */

static void test_missed_gradient_path_fails(void **state)
{
    hess_context *ctx = *state;
    mlp m;
    make_mlp(ctx, &m, 5);
    m.d.variant = 1;
    hess_check_report rep;
    assert_ok(ctx, run_check(ctx, mlp_loss, &m.d, 4, m.p, NULL, &rep));
    assert_int_equal(rep.ok, 0);
    assert_int_equal(rep.what, HESS_CHECK_GRADIENT);
    assert_int_equal(rep.param, 1); /* b1 */
    assert_int_equal(rep.index, 2);
    /* the numeric derivative sees 9 b^2 where the analytic one has 3 b^2 */
    const double b = hess_tensor_data(m.p[1])[2];
    assert_close(rep.numeric - rep.analytic, 6 * b * b, 1e-4, 1e-7);
    assert_true(rep.max_grad_err > 1.0);
    assert_true(rep.max_hvp_err == 0.0); /* not run after a failed gradient check */
}

static void test_wrong_hessian_fails(void **state)
{
    hess_context *ctx = *state;
    mlp m;
    make_mlp(ctx, &m, 6);
    m.d.variant = 2;
    hess_check_report rep;
    assert_ok(ctx, run_check(ctx, mlp_loss, &m.d, 4, m.p, NULL, &rep));
    assert_int_equal(rep.ok, 0);
    assert_true(rep.max_grad_err <= 1.0); /* the gradient is right */
    assert_true(rep.max_hvp_err > 1.0);
    assert_int_equal(rep.what, HESS_CHECK_HVP);
    assert_int_equal(rep.param, 2); /* W2 */
    assert_true(rep.index >= 0 && rep.index < 18);
    /* analytic H v has an extra v there, |v_i| <= 1 */
    const double extra = rep.analytic - rep.numeric;
    assert_true(fabs(extra) > 1e-3 && fabs(extra) <= 1.0 + 1e-6);
}

/* The same seed gives the same directions, hence the same report. */
static void test_seed_reproducible(void **state)
{
    hess_context *ctx = *state;
    mlp m;
    make_mlp(ctx, &m, 6);
    m.d.variant = 2;
    hess_check_opts opts = {0};
    opts.seed = 1234;
    hess_check_report r1, r2, r3;
    assert_ok(ctx, run_check(ctx, mlp_loss, &m.d, 4, m.p, &opts, &r1));
    assert_ok(ctx, run_check(ctx, mlp_loss, &m.d, 4, m.p, &opts, &r2));
    assert_memory_equal(&r1, &r2, sizeof r1);
    opts.seed = 4321;
    assert_ok(ctx, run_check(ctx, mlp_loss, &m.d, 4, m.p, &opts, &r3));
    assert_true(r3.analytic != r1.analytic || r3.numeric != r1.numeric);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

static hess_tensor *null_loss(hess_context *ctx, size_t n, hess_tensor *const p[], void *user)
{
    (void)ctx, (void)n, (void)p, (void)user;
    return NULL;
}

static hess_tensor *vector_loss(hess_context *ctx, size_t n, hess_tensor *const p[], void *user)
{
    (void)ctx, (void)n, (void)user;
    return hess_square(ctx, p[0]);
}

static void expect(hess_context *ctx, hess_status got, hess_status want, const char *frag)
{
    assert_int_equal(got, want);
    assert_int_equal(hess_context_status(ctx), want);
    if (!strstr(hess_context_errmsg(ctx), frag))
        fail_msg("message \"%s\" lacks \"%s\"", hess_context_errmsg(ctx), frag);
    hess_context_clear_error(ctx);
}

static void test_errors(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    mlp m;
    make_mlp(ctx, &m, 9);
    hess_check_report rep;
    memset(&rep, 0x55, sizeof rep);

    assert_int_equal(hess_check_derivatives(NULL, mlp_loss, &m.d, 4, m.p, NULL, &rep),
                     HESS_ERR_ARG);
    expect(ctx, hess_check_derivatives(ctx, NULL, &m.d, 4, m.p, NULL, &rep), HESS_ERR_ARG,
           "hess_check_derivatives: NULL callback");
    assert_int_equal(rep.ok, 0); /* the report is cleared on every call */
    expect(ctx, hess_check_derivatives(ctx, mlp_loss, &m.d, 4, m.p, NULL, NULL), HESS_ERR_ARG,
           "NULL report");
    expect(ctx, hess_check_derivatives(ctx, mlp_loss, &m.d, 0, m.p, NULL, &rep), HESS_ERR_ARG,
           "no parameters");
    hess_tensor *q[4] = {m.p[0], m.p[1], hess_exp(ctx, m.d.x), m.p[3]};
    expect(ctx, hess_check_derivatives(ctx, mlp_loss, &m.d, 4, q, NULL, &rep), HESS_ERR_ARG,
           "params[2] is the result of exp, not a leaf");
    hess_tensor *dup[4] = {m.p[0], m.p[1], m.p[2], m.p[1]};
    expect(ctx, hess_check_derivatives(ctx, mlp_loss, &m.d, 4, dup, NULL, &rep), HESS_ERR_ARG,
           "params[3] is the same tensor as params[1]");
    hess_check_opts bad = {-1e-6, 0, 0, 0, 0};
    expect(ctx, hess_check_derivatives(ctx, mlp_loss, &m.d, 4, m.p, &bad, &rep), HESS_ERR_ARG,
           "finite and >= 0");
    bad.eps = 0;
    bad.rtol = NAN;
    expect(ctx, hess_check_derivatives(ctx, mlp_loss, &m.d, 4, m.p, &bad, &rep), HESS_ERR_ARG,
           "finite and >= 0");
    expect(ctx, run_check(ctx, null_loss, NULL, 4, m.p, NULL, &rep), HESS_ERR_ARG,
           "the callback returned NULL");
    expect(ctx, run_check(ctx, vector_loss, NULL, 4, m.p, NULL, &rep), HESS_ERR_ARG,
           "must be a scalar, got [6,5]");

    /* the callback fails on its first call, and on a call during the
     * finite differences: its own error, values restored, memory as found */
    m.d.fail_at = 1;
    expect(ctx, run_check(ctx, mlp_loss, &m.d, 4, m.p, NULL, &rep), HESS_ERR_SHAPE, "hess_matmul");
    m.d.calls = 0;
    m.d.fail_at = 30;
    expect(ctx, run_check(ctx, mlp_loss, &m.d, 4, m.p, NULL, &rep), HESS_ERR_SHAPE, "hess_matmul");
    assert_int_equal(rep.ok, 0);
    assert_int_equal(m.d.calls, 30);
    m.d.calls = 0;
    m.d.fail_at = 2 * 57 + 3; /* during the HVP check */
    expect(ctx, run_check(ctx, mlp_loss, &m.d, 4, m.p, NULL, &rep), HESS_ERR_SHAPE, "hess_matmul");

    /* a pending error: nothing is done */
    m.d.calls = 0;
    m.d.fail_at = 0;
    assert_null(hess_matmul(ctx, m.p[1], m.p[3]));
    assert_int_equal(hess_check_derivatives(ctx, mlp_loss, &m.d, 4, m.p, NULL, &rep),
                     HESS_ERR_SHAPE);
    assert_int_equal(m.d.calls, 0);
    hess_context_clear_error(ctx);
    hess_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_tanh_passes),
        cmocka_unit_test_setup_teardown(test_cross_entropy_passes, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_logistic_weight_decay_passes, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_unused_parameter_passes, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_missed_gradient_path_fails, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_wrong_hessian_fails, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_seed_reproducible, setup_ctx, teardown_ctx),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
