/*
 * test_custom_op.c -- ops of the program's own (hess_op_register,
 * hess_op_apply).  Each user op is checked against the same model written
 * with built-in ops, to 1e-12 of the largest element: values, the gradient,
 * hess_vjp, the Hessian (batched sweeps), hess_hvp and hess_hvp_fwd, the
 * third derivative through recorded gradients and the Hessian of a
 * recorded gradient, hess_jvp and hess_jacobian in both modes, the exact
 * diagonal by both methods (and the rows that HESS_DIAG_AUTO falls back to
 * around an op that is not elementwise), the generalized Gauss-Newton
 * products and diagonal, and the graph run again for new
 * parameter values.  The ops: softsign x / (1 + |x|) (elementwise, no jvp
 * callback: its vjp serves forward mode), softsign2 (the same, its rule
 * built from a second user op), a scaled product c a b (two sources, a jvp
 * callback, c in the user data), the same without the elementwise flag and
 * without a jvp callback, and the sum of squares of each row (not
 * elementwise, a shape callback).  Then registration errors, bad
 * applications, every way a callback can fail, two contexts, rewinds past a
 * registration, memory limits and hess_check_derivatives.
 */
#include "check.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define TOL        1e-12

/* ------------------------------------------------------------------------ */
/* The ops                                                                  */
/* ------------------------------------------------------------------------ */

/* |a| = relu(a) + relu(-a), exact; and 1 + |a|. */
static hess_tensor *abs_of(hess_context *ctx, hess_tensor *a)
{
    return hess_add(ctx, hess_relu(ctx, a), hess_relu(ctx, hess_neg(ctx, a)));
}

static hess_tensor *one_plus_abs(hess_context *ctx, hess_tensor *a)
{
    return hess_add(ctx, hess_scalar(ctx, 1.0), abs_of(ctx, a));
}

/* softsign(x) = x / (1 + |x|) */
static hess_status softsign_forward(
    size_t n, const hess_op_array src[], const hess_op_array *out, double *y, void *user)
{
    (void)n, (void)user;
    for (int64_t i = 0; i < out->numel; i++)
        y[i] = src[0].data[i] / (1.0 + fabs(src[0].data[i]));
    return HESS_OK;
}

/* d softsign(x) = dx / (1 + |x|)^2 */
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
    return HESS_OK;
}

/* dsoftsign(x) = (1 + |x|)^-2, a user op that softsign2's rule is built from */
static hess_status dsoftsign_forward(
    size_t n, const hess_op_array src[], const hess_op_array *out, double *y, void *user)
{
    (void)n, (void)user;
    for (int64_t i = 0; i < out->numel; i++) {
        const double d = 1.0 + fabs(src[0].data[i]);
        y[i] = 1.0 / (d * d);
    }
    return HESS_OK;
}

/* d (1 + |x|)^-2 = -2 sign(x) (1 + |x|)^-3 dx, sign(x) = x / |x| (x != 0 here) */
static hess_status dsoftsign_vjp(hess_context *ctx,
                                 hess_tensor *out,
                                 size_t n,
                                 hess_tensor *const src[],
                                 hess_tensor *g,
                                 hess_tensor *grads[],
                                 void *user)
{
    (void)out, (void)n, (void)user;
    hess_tensor *x = src[0], *sign = hess_div(ctx, x, abs_of(ctx, x));
    hess_tensor *f = hess_mul(ctx, sign, hess_pow(ctx, one_plus_abs(ctx, x), -3.0));
    grads[0] = hess_mul(ctx, g, hess_scale(ctx, f, -2.0));
    return HESS_OK;
}

/* The handles of the ops in one context, and the user data they read. */
typedef struct ops {
    const hess_op_handle *softsign, *softsign2, *dsoftsign, *smul, *smul_plain, *rowsumsq;
    double c; /* smul's scale */
} ops;

static hess_status softsign2_vjp(hess_context *ctx,
                                 hess_tensor *out,
                                 size_t n,
                                 hess_tensor *const src[],
                                 hess_tensor *g,
                                 hess_tensor *grads[],
                                 void *user)
{
    (void)out, (void)n;
    const ops *o = user;
    grads[0] = hess_mul(ctx, g, hess_op_apply(ctx, o->dsoftsign, 1, src));
    return HESS_OK;
}

/* smul(a, b) = c a b, elementwise, c = *user */
static hess_status
smul_forward(size_t n, const hess_op_array src[], const hess_op_array *out, double *y, void *user)
{
    (void)n;
    const double c = *(const double *)user;
    for (int64_t i = 0; i < out->numel; i++)
        y[i] = c * src[0].data[i] * src[1].data[i];
    return HESS_OK;
}

static hess_status smul_vjp(hess_context *ctx,
                            hess_tensor *out,
                            size_t n,
                            hess_tensor *const src[],
                            hess_tensor *g,
                            hess_tensor *grads[],
                            void *user)
{
    (void)out, (void)n;
    const double c = *(const double *)user;
    grads[0] = hess_scale(ctx, hess_mul(ctx, g, src[1]), c);
    grads[1] = hess_scale(ctx, hess_mul(ctx, g, src[0]), c);
    return HESS_OK;
}

static hess_status smul_jvp(hess_context *ctx,
                            hess_tensor *out,
                            size_t n,
                            hess_tensor *const src[],
                            hess_tensor *const t[],
                            hess_tensor **tangent,
                            void *user)
{
    (void)out, (void)n;
    const double c = *(const double *)user;
    *tangent =
        hess_scale(ctx, hess_add(ctx, hess_mul(ctx, t[0], src[1]), hess_mul(ctx, src[0], t[1])), c);
    return HESS_OK;
}

/* The shape of smul_plain: two sources of one shape. */
static hess_status
same_shape(size_t n, const hess_op_array src[], int *ndim, int64_t shape[HESS_MAX_DIMS], void *user)
{
    (void)n, (void)user;
    if (src[0].ndim != src[1].ndim ||
        memcmp(src[0].shape, src[1].shape, (size_t)src[0].ndim * sizeof(int64_t)) != 0)
        return HESS_ERR_SHAPE;
    *ndim = src[0].ndim;
    memcpy(shape, src[0].shape, (size_t)src[0].ndim * sizeof(int64_t));
    return HESS_OK;
}

/* rowsumsq(x)[b] = sum_j x[b,j]^2, x [B,n] -> [B] */
static hess_status rowsumsq_shape(
    size_t n, const hess_op_array src[], int *ndim, int64_t shape[HESS_MAX_DIMS], void *user)
{
    (void)n, (void)user;
    if (src[0].ndim != 2)
        return HESS_ERR_SHAPE;
    *ndim = 1;
    shape[0] = src[0].shape[0];
    return HESS_OK;
}

static hess_status rowsumsq_forward(
    size_t n, const hess_op_array src[], const hess_op_array *out, double *y, void *user)
{
    (void)n, (void)user;
    const int64_t B = src[0].shape[0], m = src[0].shape[1];
    for (int64_t b = 0; b < B; b++) {
        double s = 0;
        for (int64_t j = 0; j < m; j++)
            s += src[0].data[b * m + j] * src[0].data[b * m + j];
        y[b] = s;
    }
    (void)out;
    return HESS_OK;
}

/* d rowsumsq = 2 x[b,:] . dx[b,:]: the cotangent g [B] as a column times 2x */
static hess_status rowsumsq_vjp(hess_context *ctx,
                                hess_tensor *out,
                                size_t n,
                                hess_tensor *const src[],
                                hess_tensor *g,
                                hess_tensor *grads[],
                                void *user)
{
    (void)n, (void)user;
    const int64_t col[2] = {hess_tensor_shape(out)[0], 1};
    grads[0] = hess_mul(ctx, hess_reshape(ctx, g, 2, col), hess_scale(ctx, src[0], 2.0));
    return HESS_OK;
}

static hess_status rowsumsq_jvp(hess_context *ctx,
                                hess_tensor *out,
                                size_t n,
                                hess_tensor *const src[],
                                hess_tensor *const t[],
                                hess_tensor **tangent,
                                void *user)
{
    (void)out, (void)n, (void)user;
    *tangent = hess_sum_axis(ctx, hess_scale(ctx, hess_mul(ctx, src[0], t[0]), 2.0), 1);
    return HESS_OK;
}

static void register_all(hess_context *ctx, ops *o, double c)
{
    o->c = c;
    const hess_op softsign = {.name = "softsign",
                              .arity = 1,
                              .flags = HESS_OP_ELEMENTWISE,
                              .forward = softsign_forward,
                              .vjp = softsign_vjp};
    const hess_op dsoftsign = {.name = "dsoftsign",
                               .arity = 1,
                               .flags = HESS_OP_ELEMENTWISE,
                               .forward = dsoftsign_forward,
                               .vjp = dsoftsign_vjp};
    const hess_op softsign2 = {.name = "softsign2",
                               .arity = 1,
                               .flags = HESS_OP_ELEMENTWISE,
                               .forward = softsign_forward,
                               .vjp = softsign2_vjp,
                               .user = o};
    const hess_op smul = {.name = "smul",
                          .arity = 2,
                          .flags = HESS_OP_ELEMENTWISE,
                          .forward = smul_forward,
                          .vjp = smul_vjp,
                          .jvp = smul_jvp,
                          .user = &o->c};
    const hess_op smul_plain = {.name = "smul_plain",
                                .arity = 2,
                                .shape = same_shape,
                                .forward = smul_forward,
                                .vjp = smul_vjp,
                                .user = &o->c};
    const hess_op rowsumsq = {.name = "rowsumsq",
                              .arity = 1,
                              .shape = rowsumsq_shape,
                              .forward = rowsumsq_forward,
                              .vjp = rowsumsq_vjp,
                              .jvp = rowsumsq_jvp};
    assert_ok(ctx, hess_op_register(ctx, &softsign, &o->softsign));
    assert_ok(ctx, hess_op_register(ctx, &dsoftsign, &o->dsoftsign));
    assert_ok(ctx, hess_op_register(ctx, &softsign2, &o->softsign2));
    assert_ok(ctx, hess_op_register(ctx, &smul, &o->smul));
    assert_ok(ctx, hess_op_register(ctx, &smul_plain, &o->smul_plain));
    assert_ok(ctx, hess_op_register(ctx, &rowsumsq, &o->rowsumsq));
}

static hess_tensor *apply1(hess_context *ctx, const hess_op_handle *op, hess_tensor *a)
{
    return hess_op_apply(ctx, op, 1, (hess_tensor *const[]){a});
}

static hess_tensor *
apply2(hess_context *ctx, const hess_op_handle *op, hess_tensor *a, hess_tensor *b)
{
    return hess_op_apply(ctx, op, 2, (hess_tensor *const[]){a, b});
}

/* ------------------------------------------------------------------------ */
/* The model, with user ops or the same from built-in ops                   */
/* ------------------------------------------------------------------------ */

enum variant {
    V_ELEM,   /* softsign, smul: elementwise user ops */
    V_NESTED, /* softsign2, whose rule applies dsoftsign */
    V_ROWS,   /* plus rowsumsq, not elementwise */
    V_PLAIN   /* smul_plain: no elementwise flag, no jvp callback */
};

#define NP 5
typedef struct model {
    hess_tensor *p[NP]; /* W1 [3,4], b1 [3], W2 [3,4], b2 [3], V [2,3] */
    hess_tensor *x, *y, *q, *out, *loss;
    hess_tensor *r; /* rowsumsq(q) [5], V_ROWS only */
    size_t N;
} model;

static const int64_t p_shape[NP][2] = {{3, 4}, {3, 0}, {3, 4}, {3, 0}, {2, 3}};
static const int p_nd[NP] = {2, 1, 2, 1, 2};

static void fill(uint64_t seed, double *v, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        v[i] = rnd_uniform(&seed, lo, hi);
}

/* h1 = softsign(x W1^T + b1), h2 = tanh(x W2^T + b2), q = c h1 h2 + c h1 h1,
 * out = q V^T, loss = mse(out, y) (+ mean(tanh(rowsumsq(q))) / 2 for V_ROWS). */
static void build(hess_context *ctx, const ops *o, bool user, int variant, model *m)
{
    memset(m, 0, sizeof *m);
    double buf[64];
    for (int i = 0; i < NP; i++) {
        fill(11 + (uint64_t)i, buf, 12, -0.9, 0.9);
        m->p[i] = hess_param_new(ctx, p_nd[i], p_shape[i], buf);
    }
    fill(3, buf, 20, -1.5, 1.5);
    m->x = hess_tensor_new(ctx, 2, SHAPE(5, 4), buf);
    fill(4, buf, 10, -1, 1);
    m->y = hess_tensor_new(ctx, 2, SHAPE(5, 2), buf);
    hess_tensor *a = hess_linear(ctx, m->x, m->p[0], m->p[1]);
    hess_tensor *h1, *h2 = hess_tanh(ctx, hess_linear(ctx, m->x, m->p[2], m->p[3]));
    if (!user)
        h1 = hess_div(ctx, a, one_plus_abs(ctx, a));
    else
        h1 = apply1(ctx, variant == V_NESTED ? o->softsign2 : o->softsign, a);
    const hess_op_handle *mul_op = variant == V_PLAIN ? o->smul_plain : o->smul;
    if (user)
        m->q = hess_add(ctx, apply2(ctx, mul_op, h1, h2), apply2(ctx, mul_op, h1, h1));
    else
        m->q = hess_add(ctx, hess_scale(ctx, hess_mul(ctx, h1, h2), o->c),
                        hess_scale(ctx, hess_mul(ctx, h1, h1), o->c));
    m->out = hess_linear(ctx, m->q, m->p[4], NULL);
    m->loss = hess_mse_loss(ctx, m->out, m->y);
    if (variant == V_ROWS) {
        hess_tensor *r =
            user ? apply1(ctx, o->rowsumsq, m->q) : hess_sum_axis(ctx, hess_square(ctx, m->q), 1);
        m->r = r;
        m->loss = hess_add(ctx, m->loss, hess_scale(ctx, hess_mean(ctx, hess_tanh(ctx, r)), 0.5));
    }
    assert_non_null(m->loss);
    m->N = hess_param_count(NP, m->p);
}

/* ------------------------------------------------------------------------ */
/* Comparing                                                                */
/* ------------------------------------------------------------------------ */

static double max_abs(const double *a, size_t n)
{
    double r = 0;
    for (size_t i = 0; i < n; i++)
        r = fmax(r, fabs(a[i]));
    return r;
}

/* a against the built-in model's b, to TOL of b's largest element (or 1). */
static void expect_same(const double *a, const double *b, size_t n, const char *what)
{
    const double tol = TOL * fmax(1.0, max_abs(b, n));
    for (size_t i = 0; i < n; i++)
        if (!(fabs(a[i] - b[i]) <= tol))
            fail_msg("%s[%zu]: user op %.17g, built-in %.17g (tolerance %g)", what, i, a[i], b[i],
                     tol);
}

static void expect_tensor(const hess_tensor *a, const hess_tensor *b, const char *what)
{
    assert_int_equal(hess_tensor_numel(a), hess_tensor_numel(b));
    expect_same(hess_tensor_data(a), hess_tensor_data(b), (size_t)hess_tensor_numel(b), what);
}

/* sum_i sum(t[i] * v_i), v flat (N), as constants. */
static hess_tensor *dot_flat(hess_context *ctx, size_t n, hess_tensor *const t[], const double *v)
{
    hess_tensor *s = NULL;
    for (size_t i = 0, off = 0; i < n; off += (size_t)hess_tensor_numel(t[i]), i++) {
        hess_tensor *c =
            hess_tensor_new(ctx, hess_tensor_ndim(t[i]), hess_tensor_shape(t[i]), v + off);
        hess_tensor *d = hess_sum(ctx, hess_mul(ctx, t[i], c));
        s = s ? hess_add(ctx, s, d) : d;
    }
    return s;
}

/* The third derivative contracted with v and w: d/dp (w . d/dp (v . dL/dp)),
 * through recorded gradients. */
static void third(hess_context *ctx, const model *m, const double *v, const double *w, double *t3)
{
    hess_tensor *g[NP], *hv[NP], *t[NP];
    assert_ok(ctx, hess_grad(ctx, m->loss, NP, m->p, g, HESS_CREATE_GRAPH));
    assert_ok(ctx, hess_grad(ctx, dot_flat(ctx, NP, g, v), NP, m->p, hv, HESS_CREATE_GRAPH));
    assert_ok(ctx, hess_grad(ctx, dot_flat(ctx, NP, hv, w), NP, m->p, t, HESS_ALLOW_UNUSED));
    assert_ok(ctx, hess_params_get(NP, t, t3));
}

/* The Hessian of v . dL/dp: the third derivative along v, as a matrix (the
 * batched double-backward sweeps through the nodes the rules built). */
static void third_matrix(hess_context *ctx, const model *m, const double *v, double *T)
{
    hess_tensor *g[NP];
    assert_ok(ctx, hess_grad(ctx, m->loss, NP, m->p, g, HESS_CREATE_GRAPH));
    const hess_hessian_opts o = {.flags = HESS_ALLOW_UNUSED};
    assert_ok(ctx, hess_hessian_ex(ctx, dot_flat(ctx, NP, g, v), NP, m->p, &o, T));
}

/* The diagonal by `method`, and the method that ran. */
static int diag(hess_context *ctx, const model *m, int method, double *d)
{
    int used = -1;
    hess_hessian_opts o = {0};
    o.method = method;
    o.method_used = &used;
    assert_ok(ctx, hess_hessian_diag_ex(ctx, m->loss, NP, m->p, &o, d));
    return used;
}

/* Everything the user-op model gives against the built-in one. */
static void compare_models(int variant)
{
    hess_context *ctx = test_context();
    ops o;
    register_all(ctx, &o, 0.75);
    model mu, mb;
    build(ctx, &o, true, variant, &mu);
    build(ctx, &o, false, variant, &mb);
    const size_t N = mb.N;
    assert_int_equal(N, 36);
    double *a = test_malloc(N * N * sizeof *a), *b = test_malloc(N * N * sizeof *b);
    double v[36], w[36];
    fill(21, v, N, -1, 1);
    fill(22, w, N, -1, 1);

    expect_tensor(mu.loss, mb.loss, "loss");
    expect_tensor(mu.q, mb.q, "q");

    /* reverse mode */
    hess_tensor *gu[NP], *gb[NP];
    assert_ok(ctx, hess_grad(ctx, mu.loss, NP, mu.p, gu, 0));
    assert_ok(ctx, hess_grad(ctx, mb.loss, NP, mb.p, gb, 0));
    assert_ok(ctx, hess_params_get(NP, gu, a));
    assert_ok(ctx, hess_params_get(NP, gb, b));
    expect_same(a, b, N, "gradient");
    hess_tensor *seed = hess_tensor_new(ctx, 2, SHAPE(5, 2), v);
    assert_ok(ctx, hess_vjp(ctx, 1, &mu.out, &seed, NP, mu.p, gu, 0));
    assert_ok(ctx, hess_vjp(ctx, 1, &mb.out, &seed, NP, mb.p, gb, 0));
    assert_ok(ctx, hess_params_get(NP, gu, a));
    assert_ok(ctx, hess_params_get(NP, gb, b));
    expect_same(a, b, N, "vjp");

    /* second order: the Hessian (batched sweeps), products */
    assert_ok(ctx, hess_hessian(ctx, mu.loss, NP, mu.p, a));
    assert_ok(ctx, hess_hessian(ctx, mb.loss, NP, mb.p, b));
    expect_same(a, b, N * N, "Hessian");
    const hess_hessian_opts one_row = {.block_rows = 1};
    assert_ok(ctx, hess_hessian_ex(ctx, mu.loss, NP, mu.p, &one_row, a));
    expect_same(a, b, N * N, "Hessian, one row per sweep");
    assert_ok(ctx, hess_hvp(ctx, mu.loss, NP, mu.p, v, a));
    assert_ok(ctx, hess_hvp(ctx, mb.loss, NP, mb.p, v, b));
    expect_same(a, b, N, "hvp");

    /* third order */
    third(ctx, &mu, v, w, a);
    third(ctx, &mb, v, w, b);
    expect_same(a, b, N, "third derivative");
    third_matrix(ctx, &mu, v, a);
    third_matrix(ctx, &mb, v, b);
    expect_same(a, b, N * N, "Hessian of v . gradient");

    if (variant == V_PLAIN) {
        /* forward mode needs a jvp callback: the message says so */
        assert_int_equal(hess_jvp(ctx, mu.loss, NP, mu.p, v, a), HESS_ERR_NODIFF);
        assert_non_null(strstr(hess_context_errmsg(ctx), "hess_jvp: user op smul_plain"));
        assert_non_null(strstr(hess_context_errmsg(ctx), "jvp callback"));
        hess_context_clear_error(ctx);
        assert_int_equal(hess_hvp_fwd(ctx, mu.loss, NP, mu.p, v, a), HESS_ERR_NODIFF);
        hess_context_clear_error(ctx);
    } else {
        /* forward mode: unbatched, and batched (Jacobians of 64 columns) */
        assert_ok(ctx, hess_jvp(ctx, mu.out, NP, mu.p, v, a));
        assert_ok(ctx, hess_jvp(ctx, mb.out, NP, mb.p, v, b));
        expect_same(a, b, 10, "jvp");
        assert_ok(ctx, hess_hvp_fwd(ctx, mu.loss, NP, mu.p, v, a));
        assert_ok(ctx, hess_hvp_fwd(ctx, mb.loss, NP, mb.p, v, b));
        expect_same(a, b, N, "hvp_fwd");
        assert_ok(ctx, hess_jacobian(ctx, mu.q, 1, mu.p, a)); /* 12 columns < 15 rows */
        assert_ok(ctx, hess_jacobian(ctx, mb.q, 1, mb.p, b));
        expect_same(a, b, 15 * 12, "Jacobian by columns");
        /* the generalized Gauss-Newton matrix at the output (forward mode, then backward) */
        assert_ok(ctx, hess_ggn_vp(ctx, mu.loss, mu.out, NP, mu.p, v, a));
        assert_ok(ctx, hess_ggn_vp(ctx, mb.loss, mb.out, NP, mb.p, v, b));
        expect_same(a, b, N, "ggn_vp");
        assert_ok(ctx, hess_ggn_diag(ctx, mu.loss, mu.out, NP, mu.p, a));
        assert_ok(ctx, hess_ggn_diag(ctx, mb.loss, mb.out, NP, mb.p, b));
        expect_same(a, b, N, "ggn_diag");
        if (variant == V_ROWS) { /* 3 columns < 5 rows: rowsumsq's jvp callback, batched */
            assert_ok(ctx, hess_jacobian(ctx, mu.r, 1, mu.p + 1, a));
            assert_ok(ctx, hess_jacobian(ctx, mb.r, 1, mb.p + 1, b));
            expect_same(a, b, 5 * 3, "Jacobian of rowsumsq by columns");
        }
    }
    assert_ok(ctx, hess_jacobian(ctx, mu.out, NP, mu.p, a)); /* 10 rows < 36 columns */
    assert_ok(ctx, hess_jacobian(ctx, mb.out, NP, mb.p, b));
    expect_same(a, b, 10 * N, "Jacobian by rows");

    /* the exact diagonal */
    assert_int_equal(diag(ctx, &mu, HESS_DIAG_ROWS, a), HESS_DIAG_ROWS);
    assert_int_equal(diag(ctx, &mb, HESS_DIAG_ROWS, b), HESS_DIAG_ROWS);
    expect_same(a, b, N, "diagonal by rows");
    if (variant == V_ELEM || variant == V_NESTED) {
        assert_int_equal(diag(ctx, &mu, HESS_DIAG_BACKPROP, a), HESS_DIAG_BACKPROP);
        expect_same(a, b, N, "diagonal by backpropagation");
        assert_int_equal(diag(ctx, &mu, HESS_DIAG_AUTO, a), diag(ctx, &mb, HESS_DIAG_AUTO, b));
        expect_same(a, b, N, "diagonal, AUTO");
    } else {
        /* not elementwise: the backpropagation refuses, naming the op; AUTO takes rows */
        hess_hessian_opts bp = {.method = HESS_DIAG_BACKPROP};
        assert_int_equal(hess_hessian_diag_ex(ctx, mu.loss, NP, mu.p, &bp, a), HESS_ERR_ARG);
        assert_non_null(
            strstr(hess_context_errmsg(ctx), variant == V_ROWS ? "rowsumsq" : "smul_plain"));
        hess_context_clear_error(ctx);
        assert_int_equal(diag(ctx, &mu, HESS_DIAG_AUTO, a), HESS_DIAG_ROWS);
        expect_same(a, b, N, "diagonal, AUTO");
    }
    hess_tensor *du[NP], *db[NP];
    assert_ok(ctx, hess_hessian_diag_tensors(ctx, mu.loss, NP, mu.p, du));
    assert_ok(ctx, hess_hessian_diag_tensors(ctx, mb.loss, NP, mb.p, db));
    for (int i = 0; i < NP; i++)
        expect_tensor(du[i], db[i], "diagonal tensors");

    /* new parameter values: the forward callbacks run again */
    double p2[36];
    fill(31, p2, N, -1.2, 1.2);
    assert_ok(ctx, hess_params_set(ctx, NP, mu.p, p2));
    assert_ok(ctx, hess_params_set(ctx, NP, mb.p, p2));
    assert_int_equal(hess_tensor_is_stale(mu.loss), 1);
    assert_ok(ctx, hess_recompute(ctx));
    expect_tensor(mu.loss, mb.loss, "loss at new values");
    assert_ok(ctx, hess_hessian(ctx, mu.loss, NP, mu.p, a));
    assert_ok(ctx, hess_hessian(ctx, mb.loss, NP, mb.p, b));
    expect_same(a, b, N * N, "Hessian at new values");
    assert_ok(ctx, hess_params_axpy(ctx, NP, mu.p, 0.1, v));
    assert_ok(ctx, hess_params_axpy(ctx, NP, mb.p, 0.1, v));
    assert_ok(ctx, hess_grad(ctx, mu.loss, NP, mu.p, gu, 0)); /* brings it up to date */
    assert_ok(ctx, hess_grad(ctx, mb.loss, NP, mb.p, gb, 0));
    assert_ok(ctx, hess_params_get(NP, gu, a));
    assert_ok(ctx, hess_params_get(NP, gb, b));
    expect_same(a, b, N, "gradient after a step");
    expect_tensor(mu.loss, mb.loss, "loss after a step");

    test_free(a);
    test_free(b);
    hess_context_destroy(ctx);
}

static void test_elementwise_ops(void **state)
{
    (void)state;
    compare_models(V_ELEM);
}

static void test_nested_user_ops(void **state)
{
    (void)state;
    compare_models(V_NESTED);
}

static void test_op_not_elementwise(void **state)
{
    (void)state;
    compare_models(V_ROWS);
}

static void test_op_without_jvp(void **state)
{
    (void)state;
    compare_models(V_PLAIN);
}

/* A hand-checked value and derivatives of softsign at a few points, and the
 * op on a lazy tape (the sweeps build the rule before values exist). */
static void test_softsign_values(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    ops o;
    register_all(ctx, &o, 1.0);
    hess_tensor *x = hess_param_new(ctx, 1, SHAPE(3), (const double[]){-3.0, 0.5, 1.0});
    hess_tensor *y = apply1(ctx, o.softsign, x);
    const double want[3] = {-0.75, 1.0 / 3.0, 0.5};
    assert_close_array(hess_tensor_data(y), want, 3, 1e-15, 0);
    hess_tensor *g;
    assert_ok(ctx, hess_grad(ctx, hess_sum(ctx, y), 1, &x, &g, 0));
    const double d1[3] = {1.0 / 16, 1.0 / (1.5 * 1.5), 0.25}; /* (1 + |x|)^-2 */
    assert_close_array(hess_tensor_data(g), d1, 3, 1e-15, 0);
    /* d2/dx2 x/(1+|x|) = -2 sign(x) / (1+|x|)^3 */
    double d2[3];
    assert_ok(ctx, hess_hessian_diag(ctx, hess_sum(ctx, y), 1, &x, d2));
    const double d2want[3] = {2.0 / 64, -2.0 / (1.5 * 1.5 * 1.5), -2.0 / 8};
    assert_close_array(d2, d2want, 3, 1e-14, 0);
    hess_context_destroy(ctx);
}

/* dot(a, b) = sum a b, a scalar: in a pass of k directions its cotangent
 * would be [k], which meets [n] wrongly (or not at all); the callback sees []. */
static hess_status
dot_shape(size_t n, const hess_op_array src[], int *ndim, int64_t shape[HESS_MAX_DIMS], void *user)
{
    (void)n, (void)shape, (void)user;
    *ndim = 0;
    return src[0].numel == src[1].numel ? HESS_OK : HESS_ERR_SHAPE;
}

static hess_status
dot_forward(size_t n, const hess_op_array src[], const hess_op_array *out, double *y, void *user)
{
    (void)n, (void)out, (void)user;
    y[0] = 0;
    for (int64_t i = 0; i < src[0].numel; i++)
        y[0] += src[0].data[i] * src[1].data[i];
    return HESS_OK;
}

static hess_status dot_vjp(hess_context *ctx,
                           hess_tensor *out,
                           size_t n,
                           hess_tensor *const src[],
                           hess_tensor *g,
                           hess_tensor *grads[],
                           void *user)
{
    (void)out, (void)n, (void)user;
    grads[0] = hess_mul(ctx, g, src[1]);
    grads[1] = hess_mul(ctx, g, src[0]);
    return HESS_OK;
}

static void test_scalar_result(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    const hess_op dot = {
        .name = "dot", .arity = 2, .shape = dot_shape, .forward = dot_forward, .vjp = dot_vjp};
    const hess_op_handle *h;
    assert_ok(ctx, hess_op_register(ctx, &dot, &h));
    const double av[2] = {0.3, -0.8}, bv[2] = {1.1, 0.4};
    hess_tensor *p[2] = {hess_param_new(ctx, 1, SHAPE(2), av),
                         hess_param_new(ctx, 1, SHAPE(2), bv)};
    hess_tensor *q[2] = {hess_param_new(ctx, 1, SHAPE(2), av),
                         hess_param_new(ctx, 1, SHAPE(2), bv)};
    hess_tensor *lu = hess_tanh(ctx, apply2(ctx, h, p[0], p[1]));
    hess_tensor *lb = hess_tanh(ctx, hess_sum(ctx, hess_mul(ctx, q[0], q[1])));
    expect_tensor(lu, lb, "tanh(dot)");
    double a[16], b[16];
    assert_ok(ctx, hess_hessian(ctx, lu, 2, p, a)); /* k = 4 directions: g [4] against [2] */
    assert_ok(ctx, hess_hessian(ctx, lb, 2, q, b));
    expect_same(a, b, 16, "Hessian of tanh(dot)");
    assert_ok(ctx, hess_hvp(ctx, lu, 2, p, (const double[]){1, 2, 3, 4}, a));
    assert_ok(ctx, hess_hvp(ctx, lb, 2, q, (const double[]){1, 2, 3, 4}, b));
    expect_same(a, b, 4, "hvp of tanh(dot)");
    /* the user op itself as the loss: d2 dot = [[0, I], [I, 0]] */
    assert_ok(ctx, hess_hessian(ctx, apply2(ctx, h, p[0], p[1]), 2, p, a));
    const double want[16] = {0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0};
    assert_memory_equal(a, want, sizeof want);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Registration errors                                                      */
/* ------------------------------------------------------------------------ */

static void expect_refused(hess_context *ctx, const hess_op *op, hess_status st, const char *what)
{
    const hess_op_handle *h = (const hess_op_handle *)ctx; /* must be reset to NULL */
    assert_int_equal(hess_op_register(ctx, op, &h), st);
    assert_null(h);
    assert_int_equal(hess_context_status(ctx), st);
    const char *msg = hess_context_errmsg(ctx);
    if (!strstr(msg, "hess_op_register") || !strstr(msg, what))
        fail_msg("message \"%s\" does not name hess_op_register and say \"%s\"", msg, what);
    hess_context_clear_error(ctx);
}

static void test_register_errors(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    const hess_op good = {.name = "softsign",
                          .arity = 1,
                          .flags = HESS_OP_ELEMENTWISE,
                          .forward = softsign_forward,
                          .vjp = softsign_vjp};
    const hess_op_handle *h = NULL;
    assert_int_equal(hess_op_register(NULL, &good, &h), HESS_ERR_ARG);
    assert_null(h);
    expect_refused(ctx, NULL, HESS_ERR_ARG, "NULL op");
    assert_int_equal(hess_op_register(ctx, &good, NULL), HESS_ERR_ARG);
    assert_non_null(strstr(hess_context_errmsg(ctx), "NULL out"));
    hess_context_clear_error(ctx);

    hess_op op = good;
    op.name = NULL;
    expect_refused(ctx, &op, HESS_ERR_ARG, "name is NULL");
    op.name = "";
    expect_refused(ctx, &op, HESS_ERR_ARG, "empty");
    char long_name[HESS_OP_NAME_MAX + 2];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[HESS_OP_NAME_MAX + 1] = '\0';
    op.name = long_name;
    expect_refused(ctx, &op, HESS_ERR_ARG, "too long");
    long_name[HESS_OP_NAME_MAX] = '\0'; /* exactly the longest: taken */
    assert_ok(ctx, hess_op_register(ctx, &op, &h));
    assert_non_null(h);
    op.name = "soft sign";
    expect_refused(ctx, &op, HESS_ERR_ARG, "blank");
    op.name = "soft\tsign";
    expect_refused(ctx, &op, HESS_ERR_ARG, "byte at 4");
    op.name = "softsign";
    op.arity = 0;
    expect_refused(ctx, &op, HESS_ERR_ARG, "arity 0 is outside 1..3");
    op.arity = HESS_OP_MAX_SRC + 1;
    expect_refused(ctx, &op, HESS_ERR_ARG, "arity 4");
    op.arity = -1;
    expect_refused(ctx, &op, HESS_ERR_ARG, "arity -1");
    op = good;
    op.flags = 6;
    expect_refused(ctx, &op, HESS_ERR_ARG, "unknown flags 0x6");
    op = good;
    op.forward = NULL;
    expect_refused(ctx, &op, HESS_ERR_ARG, "forward callback is NULL");
    op = good;
    op.vjp = NULL;
    expect_refused(ctx, &op, HESS_ERR_ARG, "vjp callback is NULL");
    op = good;
    op.flags = 0;
    expect_refused(ctx, &op, HESS_ERR_ARG, "shape callback is NULL");

    /* a duplicate name in one context; a built-in op's name is free */
    assert_ok(ctx, hess_op_register(ctx, &good, &h));
    expect_refused(ctx, &good, HESS_ERR_ARG, "softsign is registered in this context already");
    op = good;
    op.name = "tanh";
    assert_ok(ctx, hess_op_register(ctx, &op, &h));

    /* a pending error: nothing is registered, the status comes back */
    assert_null(hess_matmul(ctx, hess_scalar(ctx, 1), hess_scalar(ctx, 2)));
    const hess_status pending = hess_context_status(ctx);
    const size_t bytes = hess_context_bytes(ctx);
    op.name = "later";
    assert_int_equal(hess_op_register(ctx, &op, &h), pending);
    assert_null(h);
    assert_int_equal(hess_context_bytes(ctx), bytes);
    hess_context_clear_error(ctx);
    assert_ok(ctx, hess_op_register(ctx, &op, &h)); /* not taken by the refused call */
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Applying: bad arguments and shapes                                       */
/* ------------------------------------------------------------------------ */

static void expect_apply_error(hess_context *ctx, hess_tensor *t, hess_status st, const char *what)
{
    const char *msg = hess_context_errmsg(ctx);
    if (t || hess_context_status(ctx) != st)
        fail_msg("expected NULL and status %d (\"%s\"), got %s and status %d: \"%s\"", st, what,
                 t ? "a tensor" : "NULL", hess_context_status(ctx), msg);
    if (!strstr(msg, "hess_op_apply") || !strstr(msg, what))
        fail_msg("message \"%s\" does not name hess_op_apply and say \"%s\"", msg, what);
    hess_context_clear_error(ctx);
}

/* Zeros, whatever the shapes. */
static hess_status
zero_forward(size_t n, const hess_op_array src[], const hess_op_array *out, double *y, void *user)
{
    (void)n, (void)src, (void)user;
    memset(y, 0, (size_t)out->numel * sizeof *y);
    return HESS_OK;
}

/* A shape callback giving what *user says: rank, then a dimension. */
static hess_status
odd_shape(size_t n, const hess_op_array src[], int *ndim, int64_t shape[HESS_MAX_DIMS], void *user)
{
    (void)n, (void)src;
    const int64_t *want = user;
    *ndim = (int)want[0];
    for (int d = 0; d < HESS_MAX_DIMS && d < want[0]; d++)
        shape[d] = want[1];
    return (hess_status)want[2];
}

static void test_apply_errors(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    ops o;
    register_all(ctx, &o, 2.0);
    hess_tensor *v3 = hess_tensor_new(ctx, 1, SHAPE(3), (const double[]){1, 2, 3});
    hess_tensor *v4 = hess_tensor_new(ctx, 1, SHAPE(4), NULL);
    hess_tensor *m23 = hess_tensor_new(ctx, 2, SHAPE(2, 3), NULL);

    assert_null(hess_op_apply(NULL, o.softsign, 1, &v3));
    expect_apply_error(ctx, hess_op_apply(ctx, NULL, 1, &v3), HESS_ERR_ARG, "NULL op");
    expect_apply_error(ctx, hess_op_apply(ctx, o.softsign, 2, (hess_tensor *const[]){v3, v3}),
                       HESS_ERR_ARG, "takes 1 sources, 2 given");
    expect_apply_error(ctx, hess_op_apply(ctx, o.smul, 1, &v3), HESS_ERR_ARG,
                       "takes 2 sources, 1 given");
    expect_apply_error(ctx, hess_op_apply(ctx, o.softsign, 1, NULL), HESS_ERR_ARG, "NULL src");
    expect_apply_error(ctx, apply1(ctx, o.softsign, NULL), HESS_ERR_ARG, "NULL tensor");
    expect_apply_error(ctx, apply2(ctx, o.smul, v3, v4), HESS_ERR_SHAPE,
                       "sources 0 [3] and 1 [4] differ in shape");
    expect_apply_error(ctx, apply2(ctx, o.smul, m23, v3), HESS_ERR_SHAPE, "differ in shape");
    expect_apply_error(ctx, apply2(ctx, o.smul_plain, v3, v4), HESS_ERR_SHAPE,
                       "user op smul_plain: the shape callback refused sources [3], [4]");
    expect_apply_error(ctx, apply1(ctx, o.rowsumsq, v3), HESS_ERR_SHAPE,
                       "rowsumsq: the shape callback refused sources [3]");

    /* a freed source */
    const hess_mark mk = hess_context_mark(ctx);
    assert_non_null(hess_tensor_new(ctx, 1, SHAPE(100), NULL)); /* a pad, as in test_badinput */
    hess_tensor *dead = hess_tensor_new(ctx, 1, SHAPE(3), NULL);
    assert_ok(ctx, hess_context_rewind(ctx, mk));
    expect_apply_error(ctx, apply1(ctx, o.softsign, dead), HESS_ERR_STATE, "freed");

    /* shape callbacks giving bad shapes, or statuses that are none */
    int64_t want[3] = {HESS_MAX_DIMS + 1, 2, HESS_OK};
    hess_op odd = {.name = "odd", .arity = 1, .shape = odd_shape, .forward = zero_forward};
    odd.vjp = softsign_vjp;
    odd.user = want;
    const hess_op_handle *h;
    assert_ok(ctx, hess_op_register(ctx, &odd, &h));
    expect_apply_error(ctx, apply1(ctx, h, v3), HESS_ERR_ARG, "gave rank 7");
    want[0] = -1;
    expect_apply_error(ctx, apply1(ctx, h, v3), HESS_ERR_ARG, "gave rank -1");
    want[0] = 2;
    want[1] = 0;
    expect_apply_error(ctx, apply1(ctx, h, v3), HESS_ERR_ARG, "dimension 0 = 0");
    want[1] = 3;
    want[2] = 77;
    expect_apply_error(ctx, apply1(ctx, h, v3), HESS_ERR_SHAPE, "returned 77: not a status");
    want[2] = HESS_ERR_NOMEM;
    expect_apply_error(ctx, apply1(ctx, h, v3), HESS_ERR_NOMEM, "out of memory");
    want[2] = HESS_OK;
    hess_tensor *t = apply1(ctx, h, v3); /* [3,3] */
    assert_non_null(t);
    assert_int_equal(hess_tensor_numel(t), 9);

    /* an elementwise op whose shape callback gives a shape its source does not broadcast to */
    odd.name = "odd_elementwise";
    odd.flags = HESS_OP_ELEMENTWISE;
    want[0] = 1;
    want[1] = 4;
    assert_ok(ctx, hess_op_register(ctx, &odd, &h));
    expect_apply_error(ctx, apply1(ctx, h, v3), HESS_ERR_SHAPE,
                       "gave [4], to which source 0 [3] does not broadcast");
    want[1] = 3; /* [3] from [3] is fine */
    assert_non_null(apply1(ctx, h, v3));

    /* a source that is non-finite, under HESS_CHECK_FINITE */
    hess_context *cf = test_context_flags(HESS_CHECK_FINITE);
    ops of;
    register_all(cf, &of, 1.0);
    hess_tensor *inf = hess_tensor_new(cf, 1, SHAPE(2), (const double[]){1.0, INFINITY});
    expect_apply_error(cf, apply2(cf, of.smul, inf, inf), HESS_ERR_NONFINITE, "smul");
    hess_context_destroy(cf);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Callbacks that fail                                                      */
/* ------------------------------------------------------------------------ */

/* What a bad callback does, by mode. */
enum bad_mode {
    BAD_NONE,
    BAD_SHAPE,       /* a cotangent of the wrong shape */
    BAD_STATUS,      /* an error status, nothing recorded */
    BAD_OP_ERROR,    /* an op inside fails */
    BAD_FOREIGN,     /* a tensor of another context */
    BAD_FREED,       /* a tensor freed by a rewind */
    BAD_NOT_STATUS,  /* returns 42 */
    BAD_GRAD,        /* calls hess_grad */
    BAD_REWIND,      /* calls hess_context_rewind */
    BAD_REGISTER,    /* calls hess_op_register */
    BAD_SET,         /* calls hess_tensor_set */
    BAD_DESTROY,     /* calls hess_context_destroy */
    BAD_IGNORED,     /* an op fails and the callback returns HESS_OK all the same */
    BAD_NEGATIVE_IN, /* the forward callback refuses negative inputs */
    BAD_BUILD_IN_FWD /* the forward callback builds an op on the context */
};

typedef struct bad {
    int mode;
    hess_context *ctx;   /* the context the forward callback misuses */
    hess_context *other; /* another context */
    hess_tensor *foreign, *freed, *leaf;
    hess_mark mark;
} bad;

static hess_status
bad_forward(size_t n, const hess_op_array src[], const hess_op_array *out, double *y, void *user)
{
    (void)n;
    const bad *b = user;
    for (int64_t i = 0; i < out->numel; i++) {
        if (b->mode == BAD_NEGATIVE_IN && src[0].data[i] < 0)
            return HESS_ERR_ARG;
        y[i] = 3.0 * src[0].data[i];
    }
    if (b->mode == BAD_BUILD_IN_FWD && hess_scalar(b->ctx, 1.0) != NULL)
        return HESS_ERR_IO; /* must not happen: the context is busy */
    return HESS_OK;
}

static hess_status bad_vjp(hess_context *ctx,
                           hess_tensor *out,
                           size_t n,
                           hess_tensor *const src[],
                           hess_tensor *g,
                           hess_tensor *grads[],
                           void *user)
{
    (void)out, (void)n, (void)src;
    bad *b = user;
    hess_tensor *gr = NULL;
    grads[0] = hess_scale(ctx, g, 3.0);
    switch (b->mode) {
    case BAD_SHAPE:
        grads[0] = hess_sum(ctx, grads[0]);
        return HESS_OK;
    case BAD_STATUS:
        return HESS_ERR_NODIFF;
    case BAD_OP_ERROR:
        grads[0] = hess_add(ctx, grads[0], hess_tensor_new(ctx, 1, SHAPE(7), NULL));
        return hess_context_status(ctx);
    case BAD_IGNORED:
        grads[0] = hess_add(ctx, grads[0], hess_tensor_new(ctx, 1, SHAPE(7), NULL));
        return HESS_OK;
    case BAD_FOREIGN:
        grads[0] = b->foreign;
        return HESS_OK;
    case BAD_FREED:
        grads[0] = b->freed;
        return HESS_OK;
    case BAD_NOT_STATUS:
        return (hess_status)42;
    case BAD_GRAD:
        return hess_grad(ctx, hess_sum(ctx, g), 1, &b->leaf, &gr, 0);
    case BAD_REWIND:
        return hess_context_rewind(ctx, b->mark);
    case BAD_REGISTER: {
        const hess_op op = {.name = "inner",
                            .arity = 1,
                            .flags = HESS_OP_ELEMENTWISE,
                            .forward = softsign_forward,
                            .vjp = softsign_vjp};
        const hess_op_handle *h;
        return hess_op_register(ctx, &op, &h);
    }
    case BAD_SET:
        return hess_tensor_set(ctx, b->leaf, (const double[]){1, 2, 3});
    case BAD_DESTROY:
        hess_context_destroy(ctx); /* refused: the error is recorded */
        return HESS_OK;
    default:
        return HESS_OK;
    }
}

/* The jvp callback fails as the vjp callback does (modes BAD_SHAPE, BAD_STATUS). */
static hess_status bad_jvp(hess_context *ctx,
                           hess_tensor *out,
                           size_t n,
                           hess_tensor *const src[],
                           hess_tensor *const t[],
                           hess_tensor **tangent,
                           void *user)
{
    (void)out, (void)n, (void)src;
    const bad *b = user;
    *tangent = hess_scale(ctx, t[0], 3.0);
    if (b->mode == BAD_SHAPE)
        *tangent = hess_sum(ctx, *tangent);
    return b->mode == BAD_STATUS ? HESS_ERR_NODIFF : HESS_OK;
}

/* Runs fn (0 grad, 1 Hessian, 2 jvp) on 3x's sum, with the callbacks in
 * `mode`; expects status st and a message with what, then a context that
 * works again after clear_error. */
static void expect_callback_error(int mode, int fn, hess_status st, const char *what)
{
    hess_context *ctx = test_context(), *other = test_context();
    bad b = {BAD_NONE, ctx, other, NULL, NULL, NULL, {0}};
    /* the freed tensor after a pad, so that what the calls allocate does not reuse its memory */
    const hess_op op = {.name = "bad",
                        .arity = 1,
                        .flags = HESS_OP_ELEMENTWISE,
                        .forward = bad_forward,
                        .vjp = bad_vjp,
                        .jvp = bad_jvp,
                        .user = &b};
    const hess_op_handle *h;
    assert_ok(ctx, hess_op_register(ctx, &op, &h));
    b.foreign = hess_tensor_new(other, 1, SHAPE(3), NULL);
    b.mark = hess_context_mark(ctx);
    assert_non_null(hess_tensor_new(ctx, 1, SHAPE(2000), NULL));
    b.freed = hess_tensor_new(ctx, 1, SHAPE(3), NULL);
    assert_ok(ctx, hess_context_rewind(ctx, b.mark));
    hess_tensor *x = hess_param_new(ctx, 1, SHAPE(3), (const double[]){1, 2, 3});
    b.leaf = x;
    hess_tensor *y = hess_sum(ctx, apply1(ctx, h, x));
    assert_non_null(y);
    b.mode = mode;
    double out[9];
    hess_tensor *g = (hess_tensor *)ctx;
    hess_status got = fn == 0   ? hess_grad(ctx, y, 1, &x, &g, 0)
                      : fn == 1 ? hess_hessian(ctx, y, 1, &x, out)
                                : hess_jvp(ctx, y, 1, &x, (const double[]){1, 1, 1}, out);
    const char *msg = hess_context_errmsg(ctx);
    const char *name = fn == 0 ? "hess_grad" : fn == 1 ? "hess_hessian" : "hess_jvp";
    if (got != st || hess_context_status(ctx) != st || !strstr(msg, name) || !strstr(msg, what))
        fail_msg("mode %d, %s: status %d (context %d), expected %d; message \"%s\" should name "
                 "%s and say \"%s\"",
                 mode, name, got, hess_context_status(ctx), st, msg, name, what);
    if (fn == 0)
        assert_null(g);
    assert_int_equal(hess_context_status(other), HESS_OK);
    /* the context recovers: the same graph, well-behaved callbacks */
    hess_context_clear_error(ctx);
    b.mode = BAD_NONE;
    assert_ok(ctx, hess_grad(ctx, y, 1, &x, &g, 0));
    const double three[3] = {3, 3, 3};
    assert_memory_equal(hess_tensor_data(g), three, sizeof three);
    assert_ok(ctx, hess_hessian(ctx, y, 1, &x, out));
    hess_context_destroy(ctx);
    hess_context_destroy(other);
}

static void test_vjp_callback_errors(void **state)
{
    (void)state;
    for (int fn = 0; fn < 2; fn++) { /* unbatched (hess_grad) and batched (hess_hessian) */
        expect_callback_error(BAD_SHAPE, fn, HESS_ERR_SHAPE,
                              "user op bad: the vjp callback gave a cotangent [] for source 0, "
                              "which is [3]");
        expect_callback_error(BAD_STATUS, fn, HESS_ERR_NODIFF,
                              "user op bad: the vjp callback failed (returned -4: no derivative");
        expect_callback_error(BAD_OP_ERROR, fn, HESS_ERR_SHAPE,
                              "hess_add: shapes [3] and [7] do not broadcast (in the vjp "
                              "callback of user op bad)");
        expect_callback_error(BAD_IGNORED, fn, HESS_ERR_SHAPE,
                              "(in the vjp callback of user op bad)");
        expect_callback_error(BAD_FOREIGN, fn, HESS_ERR_ARG, "not a live tensor of this context");
        expect_callback_error(BAD_FREED, fn, HESS_ERR_ARG, "not a live tensor of this context");
        expect_callback_error(BAD_NOT_STATUS, fn, HESS_ERR_ARG, "returned 42: not a status");
        expect_callback_error(BAD_GRAD, fn, HESS_ERR_STATE,
                              "hess_grad: called from inside the vjp callback of user op bad; "
                              "only ops may be built until the callback returns");
        expect_callback_error(BAD_REWIND, fn, HESS_ERR_STATE,
                              "hess_context_rewind: called from inside the vjp callback");
        expect_callback_error(BAD_REGISTER, fn, HESS_ERR_STATE,
                              "hess_op_register: called from inside the vjp callback");
        expect_callback_error(BAD_SET, fn, HESS_ERR_STATE,
                              "hess_tensor_set: called from inside the vjp callback");
        expect_callback_error(BAD_DESTROY, fn, HESS_ERR_STATE,
                              "hess_context_destroy: called from inside the vjp callback");
    }
}

static void test_jvp_callback_errors(void **state)
{
    (void)state;
    expect_callback_error(BAD_SHAPE, 2, HESS_ERR_SHAPE,
                          "user op bad: the jvp callback gave a tangent [] for the result, "
                          "which is [3]");
    expect_callback_error(BAD_STATUS, 2, HESS_ERR_NODIFF, "the jvp callback failed (returned -4");
}

static void test_forward_callback_errors(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    bad b = {BAD_NEGATIVE_IN, ctx, NULL, NULL, NULL, NULL, {0}};
    const hess_op op = {.name = "bad",
                        .arity = 1,
                        .flags = HESS_OP_ELEMENTWISE,
                        .forward = bad_forward,
                        .vjp = bad_vjp,
                        .user = &b};
    const hess_op_handle *h;
    assert_ok(ctx, hess_op_register(ctx, &op, &h));
    hess_tensor *neg = hess_tensor_new(ctx, 1, SHAPE(2), (const double[]){1, -1});
    expect_apply_error(ctx, apply1(ctx, h, neg), HESS_ERR_ARG,
                       "hess_op_apply: user op bad: the forward callback failed (returned -2");

    /* at build it succeeds; after hess_tensor_set, the refresh of hess_grad fails */
    hess_tensor *x = hess_param_new(ctx, 1, SHAPE(2), (const double[]){1, 2});
    hess_tensor *y = hess_sum(ctx, apply1(ctx, h, x)), *g;
    assert_non_null(y);
    assert_ok(ctx, hess_tensor_set(ctx, x, (const double[]){1, -2}));
    assert_int_equal(hess_grad(ctx, y, 1, &x, &g, 0), HESS_ERR_ARG);
    assert_non_null(
        strstr(hess_context_errmsg(ctx), "hess_grad: user op bad: the forward callback"));
    hess_context_clear_error(ctx);
    assert_int_equal(hess_recompute(ctx), HESS_ERR_ARG);
    assert_non_null(strstr(hess_context_errmsg(ctx), "hess_recompute: user op bad"));
    hess_context_clear_error(ctx);
    assert_int_equal(hess_tensor_is_stale(y), 1); /* still: it was not computed */
    assert_ok(ctx, hess_tensor_set(ctx, x, (const double[]){2, 2}));
    assert_ok(ctx, hess_grad(ctx, y, 1, &x, &g, 0));
    assert_close(hess_tensor_data(y)[0], 12.0, 0, 0);
    assert_int_equal(hess_tensor_is_stale(y), 0);

    /* a forward callback that builds an op on the context: refused, and the op fails */
    b.mode = BAD_BUILD_IN_FWD;
    hess_tensor *t = apply1(ctx, h, x);
    assert_null(t);
    assert_int_equal(hess_context_status(ctx), HESS_ERR_STATE);
    assert_non_null(strstr(hess_context_errmsg(ctx),
                           "hess_scalar: called from inside the forward callback of user op bad; "
                           "the context is busy"));
    hess_context_clear_error(ctx);

    /* with an error pending, the builder still runs (as every builder) and keeps the error */
    b.mode = BAD_NEGATIVE_IN;
    assert_null(hess_matmul(ctx, x, hess_scalar(ctx, 1.0)));
    const hess_status first = hess_context_status(ctx);
    assert_null(apply1(ctx, h, neg));
    assert_int_equal(hess_context_status(ctx), first);
    assert_non_null(strstr(hess_context_errmsg(ctx), "hess_matmul"));
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Contexts, rewinds, memory                                                */
/* ------------------------------------------------------------------------ */

static void test_two_contexts(void **state)
{
    (void)state;
    hess_context *c1 = test_context(), *c2 = test_context();
    ops o1, o2;
    register_all(c1, &o1, 2.0);
    register_all(c2, &o2, -1.0); /* the same names, other user data */
    const double xv[2] = {0.5, -2.0}, yv[2] = {3.0, 4.0};
    hess_tensor *x1 = hess_param_new(c1, 1, SHAPE(2), xv),
                *y1 = hess_tensor_new(c1, 1, SHAPE(2), yv);
    hess_tensor *x2 = hess_param_new(c2, 1, SHAPE(2), xv),
                *y2 = hess_tensor_new(c2, 1, SHAPE(2), yv);
    hess_tensor *r1 = apply2(c1, o1.smul, x1, y1), *r2 = apply2(c2, o2.smul, x2, y2);
    assert_close(hess_tensor_data(r1)[1], 2.0 * -2.0 * 4.0, 0, 0);
    assert_close(hess_tensor_data(r2)[1], -1.0 * -2.0 * 4.0, 0, 0);
    /* a handle of one context in the other: refused, never read */
    expect_apply_error(c2, apply2(c2, o1.smul, x2, y2), HESS_ERR_ARG,
                       "not registered in this context");
    assert_int_equal(hess_context_status(c1), HESS_OK);
    /* tensors of the other context */
    expect_apply_error(c1, apply2(c1, o1.smul, x1, y2), HESS_ERR_ARG, "another context");
    /* gradients in each, with their own data */
    hess_tensor *g1, *g2;
    assert_ok(c1, hess_grad(c1, hess_sum(c1, r1), 1, &x1, &g1, 0));
    assert_ok(c2, hess_grad(c2, hess_sum(c2, r2), 1, &x2, &g2, 0));
    assert_close(hess_tensor_data(g1)[0], 6.0, 0, 0);
    assert_close(hess_tensor_data(g2)[0], -3.0, 0, 0);
    /* registering more in one leaves the other as it was */
    const size_t bytes2 = hess_context_bytes(c2);
    const hess_op extra = {.name = "extra",
                           .arity = 1,
                           .flags = HESS_OP_ELEMENTWISE,
                           .forward = softsign_forward,
                           .vjp = softsign_vjp};
    const hess_op_handle *h;
    assert_ok(c1, hess_op_register(c1, &extra, &h));
    assert_int_equal(hess_context_bytes(c2), bytes2);
    expect_apply_error(c2, apply1(c2, h, x2), HESS_ERR_ARG, "not registered in this context");
    hess_context_destroy(c1);
    /* c2 does not notice c1 going */
    assert_ok(c2, hess_grad(c2, hess_sum(c2, apply1(c2, o2.softsign, x2)), 1, &x2, &g2, 0));
    hess_context_destroy(c2);
}

/* Registrations live outside the arena: a rewind past one keeps the handle
 * valid (the tensors the op made are freed as any others). */
static void test_rewind_past_registration(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    const size_t bytes0 = hess_context_bytes(ctx);
    const hess_mark mk = hess_context_mark(ctx);
    ops o;
    register_all(ctx, &o, 1.5);
    const size_t per_op = (hess_context_bytes(ctx) - bytes0) / 6;
    assert_true(per_op > 0 && per_op <= 320); /* "about 250 bytes" */
    hess_tensor *x = hess_param_new(ctx, 1, SHAPE(2), (const double[]){1, 2});
    hess_tensor *y = apply1(ctx, o.softsign, x);
    assert_non_null(y);
    const size_t bytes1 = hess_context_bytes(ctx);
    assert_ok(ctx, hess_context_rewind(ctx, mk));
    assert_int_equal(hess_context_bytes(ctx), bytes1); /* blocks kept for reuse */
    /* y is freed; the handle is not */
    hess_tensor *big = hess_tensor_new(ctx, 1, SHAPE(200), NULL);
    assert_non_null(big);
    expect_apply_error(ctx, apply1(ctx, o.softsign, y), HESS_ERR_STATE, "freed");
    x = hess_param_new(ctx, 1, SHAPE(2), (const double[]){1, -3});
    y = apply1(ctx, o.softsign2, x);
    assert_non_null(y);
    assert_close(hess_tensor_data(y)[1], -0.75, 0, 0);
    hess_tensor *g;
    assert_ok(ctx, hess_grad(ctx, hess_sum(ctx, y), 1, &x, &g, 0));
    assert_close(hess_tensor_data(g)[1], 1.0 / 16, 0, 0);
    /* still registered: the name is taken */
    const hess_op again = {.name = "softsign",
                           .arity = 1,
                           .flags = HESS_OP_ELEMENTWISE,
                           .forward = softsign_forward,
                           .vjp = softsign_vjp};
    const hess_op_handle *h;
    assert_int_equal(hess_op_register(ctx, &again, &h), HESS_ERR_ARG);
    hess_context_clear_error(ctx);
    hess_context_destroy(ctx); /* cmocka checks that the registrations were freed */
}

static void test_register_out_of_memory(void **state)
{
    (void)state;
    /* the smallest byte limit a context can be made with leaves nothing for a registration */
    hess_context *ctx = NULL;
    hess_config cfg = {.block_bytes = 1024};
    for (cfg.max_bytes = 256; hess_context_create(&cfg, &ctx) != HESS_OK; cfg.max_bytes += 16)
        assert_true(cfg.max_bytes < 65536);
    const hess_op op = {.name = "softsign",
                        .arity = 1,
                        .flags = HESS_OP_ELEMENTWISE,
                        .forward = softsign_forward,
                        .vjp = softsign_vjp};
    const hess_op_handle *h = NULL;
    assert_int_equal(hess_op_register(ctx, &op, &h), HESS_ERR_NOMEM);
    assert_null(h);
    assert_non_null(strstr(hess_context_errmsg(ctx), "hess_op_register: out of memory"));
    hess_context_destroy(ctx);
}

/* A progress callback may not register or apply ops. */
static const hess_op_handle *g_progress_op;
static hess_context *g_progress_ctx;
static hess_tensor *g_progress_x;

static int progress_applies(size_t done, size_t total, void *user)
{
    (void)done, (void)total, (void)user;
    return apply1(g_progress_ctx, g_progress_op, g_progress_x) != NULL;
}

static void test_progress_callback_applies(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    ops o;
    register_all(ctx, &o, 1.0);
    hess_tensor *x = hess_param_new(ctx, 1, SHAPE(2), (const double[]){1, 2});
    g_progress_op = o.softsign, g_progress_ctx = ctx, g_progress_x = x;
    double H[4];
    const hess_hessian_opts opts = {.progress = progress_applies};
    assert_int_equal(
        hess_hessian_ex(ctx, hess_sum(ctx, apply1(ctx, o.softsign, x)), 1, &x, &opts, H),
        HESS_ERR_STATE);
    if (!strstr(hess_context_errmsg(ctx),
                "hess_op_apply: called from inside the progress callback of hess_hessian; "
                "the context is busy"))
        fail_msg("message \"%s\"", hess_context_errmsg(ctx));
    hess_context_destroy(ctx);
}

/* hess_check_derivatives takes a loss built from user ops. */
static hess_tensor *checked_loss(hess_context *ctx, size_t n, hess_tensor *const p[], void *user)
{
    (void)n;
    const ops *o = user;
    hess_tensor *s = apply1(ctx, o->softsign2, p[0]);
    return hess_sum(ctx, hess_op_apply(ctx, o->smul, 2, (hess_tensor *const[]){s, p[1]}));
}

static void test_check_derivatives(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    ops o;
    register_all(ctx, &o, 0.5);
    hess_tensor *p[2] = {hess_param_new(ctx, 1, SHAPE(3), (const double[]){0.3, -1.2, 2.0}),
                         hess_param_new(ctx, 1, SHAPE(3), (const double[]){1.1, 0.4, -0.7})};
    hess_check_report rep;
    assert_ok(ctx, hess_check_derivatives(ctx, checked_loss, &o, 2, p, NULL, &rep));
    assert_true(rep.ok);
    hess_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softsign_values),
        cmocka_unit_test(test_elementwise_ops),
        cmocka_unit_test(test_nested_user_ops),
        cmocka_unit_test(test_op_not_elementwise),
        cmocka_unit_test(test_op_without_jvp),
        cmocka_unit_test(test_scalar_result),
        cmocka_unit_test(test_register_errors),
        cmocka_unit_test(test_apply_errors),
        cmocka_unit_test(test_vjp_callback_errors),
        cmocka_unit_test(test_jvp_callback_errors),
        cmocka_unit_test(test_forward_callback_errors),
        cmocka_unit_test(test_two_contexts),
        cmocka_unit_test(test_rewind_past_registration),
        cmocka_unit_test(test_register_out_of_memory),
        cmocka_unit_test(test_progress_callback_applies),
        cmocka_unit_test(test_check_derivatives),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
