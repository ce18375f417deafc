/*
 * test_hessian.c -- the Hessian functions against the PyTorch reference cases
 * in tests/data, against closed forms (quadratic form, Rosenbrock,
 * log-sum-exp, linear least squares, a cubic's third derivative), and the
 * invariants that tie them together on random networks.
 */
#include "check.h"
#include "ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RTOL 1e-12
#define ATOL 1e-14

/* ------------------------------------------------------------------------ */
/* Reference cases                                                          */
/* ------------------------------------------------------------------------ */

typedef enum { ACT_NONE, ACT_SIGMOID, ACT_TANH } act_kind;

typedef struct model {
    hess_tensor *p[4]; /* W1 b1 W2 b2 */
    hess_tensor *loss;
} model;

static hess_tensor *from_ref(hess_context *ctx, const ref_case *rc, const char *name, int param)
{
    const ref_tensor *t = ref_find(rc, name);
    assert_non_null(t);
    return param ? hess_param_new(ctx, t->ndim, t->shape, t->data)
                 : hess_tensor_new(ctx, t->ndim, t->shape, t->data);
}

/* Linear -> act -> Linear, MSE, as in the reference cases. */
static void build_mlp(hess_context *ctx, const ref_case *rc, act_kind act, model *m)
{
    static const char *names[4] = {"param:W1", "param:b1", "param:W2", "param:b2"};
    for (int i = 0; i < 4; i++)
        m->p[i] = from_ref(ctx, rc, names[i], 1);
    hess_tensor *x = from_ref(ctx, rc, "input:x", 0), *y = from_ref(ctx, rc, "input:y", 0);
    hess_tensor *h = hess_linear(ctx, x, m->p[0], m->p[1]);
    if (act == ACT_SIGMOID)
        h = hess_sigmoid(ctx, h);
    else if (act == ACT_TANH)
        h = hess_tanh(ctx, h);
    m->loss = hess_mse_loss(ctx, hess_linear(ctx, h, m->p[2], m->p[3]), y);
    assert_non_null(m->loss);
}

static void check_ref_case(const char *file, act_kind act)
{
    ref_case rc;
    char err[256];
    if (ref_load(data_path(file), &rc, err, sizeof err) != 0)
        fail_msg("%s", err);
    hess_context *ctx = test_context();
    model m;
    build_mlp(ctx, &rc, act, &m);
    const size_t N = hess_param_count(4, m.p);
    static const char *pn[4] = {"W1", "b1", "W2", "b2"};

    assert_close(hess_tensor_data(m.loss)[0], ref_find(&rc, "loss")->data[0], RTOL, ATOL);

    hess_tensor *g[4];
    assert_ok(ctx, hess_grad(ctx, m.loss, 4, m.p, g, 0));
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "grad:%s", pn[i]);
        const ref_tensor *r = ref_find(&rc, name);
        assert_int_equal(hess_tensor_numel(g[i]), r->numel);
        assert_close_array(hess_tensor_data(g[i]), r->data, (size_t)r->numel, RTOL, ATOL);
    }

    const ref_tensor *H = ref_find(&rc, "hessian");
    assert_int_equal(H->numel, (int64_t)(N * N));
    double *h = malloc(N * N * sizeof *h), *d = malloc(N * sizeof *d), *hv = malloc(N * sizeof *hv);
    size_t before = hess_context_bytes(ctx);
    hess_mark mk = hess_context_mark(ctx);
    assert_ok(ctx, hess_hessian(ctx, m.loss, 4, m.p, h));
    assert_close_array(h, H->data, N * N, RTOL, ATOL);
    /* memory left as found: the same mark, so nothing new is live */
    hess_mark mk2 = hess_context_mark(ctx);
    assert_true(mk.block == mk2.block && mk.used == mk2.used && mk.nodes == mk2.nodes);

    assert_ok(ctx, hess_hessian_diag(ctx, m.loss, 4, m.p, d));
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "hdiag:%s", pn[i]);
        const ref_tensor *r = ref_find(&rc, name);
        assert_close_array(d + off, r->data, (size_t)r->numel, RTOL, ATOL);
        off += (size_t)r->numel;
    }
    hess_tensor *dt[4];
    assert_ok(ctx, hess_hessian_diag_tensors(ctx, m.loss, 4, m.p, dt));
    for (int i = 0; i < 4; i++) {
        assert_int_equal(hess_tensor_ndim(dt[i]), hess_tensor_ndim(m.p[i]));
        assert_memory_equal(hess_tensor_shape(dt[i]), hess_tensor_shape(m.p[i]),
                            (size_t)hess_tensor_ndim(dt[i]) * sizeof(int64_t));
    }
    off = 0;
    for (int i = 0; i < 4; i++) {
        assert_close_array(hess_tensor_data(dt[i]), d + off, (size_t)hess_tensor_numel(dt[i]), 0,
                           0);
        off += (size_t)hess_tensor_numel(dt[i]);
    }

    const ref_tensor *v = ref_find(&rc, "hvp:v"), *Hv = ref_find(&rc, "hvp:Hv");
    assert_ok(ctx, hess_hvp(ctx, m.loss, 4, m.p, v->data, hv));
    assert_close_array(hv, Hv->data, N, RTOL, ATOL);

    /* every block is the matching slice of the reference Hessian */
    size_t offs[5] = {0};
    for (int i = 0; i < 4; i++)
        offs[i + 1] = offs[i] + (size_t)hess_tensor_numel(m.p[i]);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            size_t ni = offs[i + 1] - offs[i], nj = offs[j + 1] - offs[j];
            double *blk = malloc(ni * nj * sizeof *blk);
            assert_ok(ctx, hess_hessian_block(ctx, m.loss, m.p[i], m.p[j], blk));
            for (size_t r = 0; r < ni; r++)
                assert_close_array(blk + r * nj, H->data + (offs[i] + r) * N + offs[j], nj, RTOL,
                                   ATOL);
            free(blk);
        }
    (void)before;
    free(h);
    free(d);
    free(hv);
    hess_context_destroy(ctx);
    ref_free(&rc);
}

static void test_ref_seed_ann(void **state)
{
    (void)state;
    check_ref_case("seed_ann.ref", ACT_NONE);
}

static void test_ref_seed_ann_sigmoid(void **state)
{
    (void)state;
    check_ref_case("seed_ann_sigmoid.ref", ACT_SIGMOID);
}

static void test_ref_mlp_tanh_mse_batch(void **state)
{
    (void)state;
    check_ref_case("mlp_tanh_mse_batch.ref", ACT_TANH);
}

/* ------------------------------------------------------------------------ */
/* Closed forms                                                             */
/* ------------------------------------------------------------------------ */

/* H of 1/2 x^T A x is (A + A^T) / 2 for any square A. */
static void test_analytic_quadratic_form(void **state)
{
    hess_context *ctx = *state;
    enum { N = 5 };
    uint64_t seed = 11;
    double A[N * N], x[N];
    for (int i = 0; i < N * N; i++)
        A[i] = rnd_uniform(&seed, -1, 1);
    for (int i = 0; i < N; i++)
        x[i] = rnd_uniform(&seed, -2, 2);
    const int64_t sa[2] = {N, N}, sx[1] = {N};
    hess_tensor *At = hess_tensor_new(ctx, 2, sa, A), *xp = hess_param_new(ctx, 1, sx, x);
    hess_tensor *f =
        hess_scale(ctx, hess_sum(ctx, hess_mul(ctx, xp, hess_matmul(ctx, At, xp))), 0.5);
    assert_non_null(f);
    double h[N * N];
    assert_ok(ctx, hess_hessian(ctx, f, 1, &xp, h));
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            assert_close(h[i * N + j], 0.5 * (A[i * N + j] + A[j * N + i]), 1e-14, 1e-15);
}

/* Rosenbrock f = (1 - x)^2 + 100 (y - x^2)^2 on two scalar parameters. */
static void test_analytic_rosenbrock(void **state)
{
    hess_context *ctx = *state;
    const double pts[3][2] = {{-1.2, 1.0}, {1.0, 1.0}, {0.3, -0.7}};
    for (int k = 0; k < 3; k++) {
        const double x = pts[k][0], y = pts[k][1];
        hess_tensor *px = hess_param_new(ctx, 0, NULL, &x), *py = hess_param_new(ctx, 0, NULL, &y);
        hess_tensor *one = hess_scalar(ctx, 1.0);
        hess_tensor *a = hess_sub(ctx, one, px), *t = hess_sub(ctx, py, hess_square(ctx, px));
        hess_tensor *f =
            hess_add(ctx, hess_square(ctx, a), hess_scale(ctx, hess_square(ctx, t), 100));
        hess_tensor *p[2] = {px, py};
        double h[4];
        assert_ok(ctx, hess_hessian(ctx, f, 2, p, h));
        assert_close(h[0], 2 - 400 * (y - x * x) + 800 * x * x, 1e-14, 1e-14);
        assert_close(h[1], -400 * x, 1e-14, 1e-14);
        assert_close(h[2], -400 * x, 1e-14, 1e-14);
        assert_close(h[3], 200, 1e-14, 1e-14);
        hess_tensor *g[2];
        assert_ok(ctx, hess_grad(ctx, f, 2, p, g, 0));
        assert_close(hess_tensor_data(g[0])[0], -2 * (1 - x) - 400 * x * (y - x * x), 1e-14, 1e-14);
        assert_close(hess_tensor_data(g[1])[0], 200 * (y - x * x), 1e-14, 1e-14);
    }
}

/* log-sum-exp: H = diag(p) - p p^T with p = softmax(x). */
static void test_analytic_logsumexp(void **state)
{
    hess_context *ctx = *state;
    enum { N = 6 };
    const double x[N] = {0.3, -1.2, 2.5, 0.0, -0.4, 1.1};
    const int64_t sx[1] = {N};
    hess_tensor *xp = hess_param_new(ctx, 1, sx, x);
    hess_tensor *f = hess_log(ctx, hess_sum(ctx, hess_exp(ctx, xp)));
    double h[N * N], p[N], z = 0;
    assert_ok(ctx, hess_hessian(ctx, f, 1, &xp, h));
    for (int i = 0; i < N; i++)
        z += exp(x[i]);
    for (int i = 0; i < N; i++)
        p[i] = exp(x[i]) / z;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            assert_close(h[i * N + j], (i == j ? p[i] : 0.0) - p[i] * p[j], 1e-13, 1e-16);
    /* the same through log_softmax: lse(x) = x_0 - log_softmax(x)_0 */
    hess_tensor *e0 = hess_tensor_new(ctx, 1, sx, (const double[N]){1, 0, 0, 0, 0, 0});
    hess_tensor *f2 =
        hess_sum(ctx, hess_mul(ctx, e0, hess_sub(ctx, xp, hess_log_softmax(ctx, xp, 0))));
    double h2[N * N];
    assert_ok(ctx, hess_hessian(ctx, f2, 1, &xp, h2));
    assert_close_array(h2, h, N * N, 1e-13, 1e-16);
}

/* L = mean((X w^T + b - y)^2): H_ww = 2/m X^T X, H_wb = 2/m X^T 1, H_bb = 2. */
static void test_analytic_linear_mse(void **state)
{
    hess_context *ctx = *state;
    enum { M = 7, D = 3 };
    uint64_t seed = 5;
    double X[M * D], y[M], w[D], b = 0.25;
    for (int i = 0; i < M * D; i++)
        X[i] = rnd_uniform(&seed, -1, 1);
    for (int i = 0; i < M; i++)
        y[i] = rnd_uniform(&seed, -1, 1);
    for (int i = 0; i < D; i++)
        w[i] = rnd_uniform(&seed, -1, 1);
    const int64_t sX[2] = {M, D}, sy[2] = {M, 1}, sw[2] = {1, D}, sb[1] = {1};
    hess_tensor *Xt = hess_tensor_new(ctx, 2, sX, X), *yt = hess_tensor_new(ctx, 2, sy, y);
    hess_tensor *p[2] = {hess_param_new(ctx, 2, sw, w), hess_param_new(ctx, 1, sb, &b)};
    hess_tensor *L = hess_mse_loss(ctx, hess_linear(ctx, Xt, p[0], p[1]), yt);
    double h[(D + 1) * (D + 1)];
    assert_ok(ctx, hess_hessian(ctx, L, 2, p, h));
    for (int i = 0; i < D; i++) {
        for (int j = 0; j < D; j++) {
            double s = 0;
            for (int r = 0; r < M; r++)
                s += X[r * D + i] * X[r * D + j];
            assert_close(h[i * (D + 1) + j], 2.0 / M * s, 1e-14, 1e-15);
        }
        double s = 0;
        for (int r = 0; r < M; r++)
            s += X[r * D + i];
        assert_close(h[i * (D + 1) + D], 2.0 / M * s, 1e-14, 1e-15);
        assert_close(h[D * (D + 1) + i], 2.0 / M * s, 1e-14, 1e-15);
    }
    assert_close(h[D * (D + 1) + D], 2.0, 1e-15, 0);
}

/* Third order: f = sum(c x^3) + (sum x)^3 has T(u, v)_i = 6 c_i u_i v_i + 6 (sum u)(sum v);
 * got by differentiating a Hessian-vector product once more. */
static void test_analytic_cubic_third_derivative(void **state)
{
    hess_context *ctx = *state;
    enum { N = 4 };
    const double c[N] = {0.5, -1.0, 2.0, 0.25}, x[N] = {0.7, -0.3, 1.1, 0.4};
    const double u[N] = {1.0, 0.5, -0.25, 2.0}, v[N] = {-1.0, 0.3, 0.8, 0.1};
    const int64_t s[1] = {N};
    hess_tensor *xp = hess_param_new(ctx, 1, s, x);
    hess_tensor *ct = hess_tensor_new(ctx, 1, s, c), *ut = hess_tensor_new(ctx, 1, s, u);
    hess_tensor *vt = hess_tensor_new(ctx, 1, s, v);
    hess_tensor *f = hess_add(ctx, hess_sum(ctx, hess_mul(ctx, ct, hess_pow(ctx, xp, 3))),
                              hess_pow(ctx, hess_sum(ctx, xp), 3));
    hess_tensor *g, *hv, *t;
    assert_ok(ctx, hess_grad(ctx, f, 1, &xp, &g, HESS_CREATE_GRAPH));
    assert_ok(ctx,
              hess_grad(ctx, hess_sum(ctx, hess_mul(ctx, g, vt)), 1, &xp, &hv, HESS_CREATE_GRAPH));
    assert_ok(ctx, hess_grad(ctx, hess_sum(ctx, hess_mul(ctx, hv, ut)), 1, &xp, &t, 0));
    double su = 0, sv = 0, sx = 0;
    for (int i = 0; i < N; i++)
        su += u[i], sv += v[i], sx += x[i];
    for (int i = 0; i < N; i++) {
        assert_close(hess_tensor_data(t)[i], 6 * c[i] * u[i] * v[i] + 6 * su * sv, 1e-14, 1e-14);
        /* and the HVP itself: H v = 6 c x v + 6 (sum x)(sum v) */
        assert_close(hess_tensor_data(hv)[i], 6 * c[i] * x[i] * v[i] + 6 * sx * sv, 1e-14, 1e-14);
    }
}

/* sigmoid' = sigmoid(x) sigmoid(-x) keeps full relative accuracy in the tail,
 * where sigmoid (1 - sigmoid) cancels; and so does its second derivative. */
static void test_analytic_sigmoid_tail(void **state)
{
    hess_context *ctx = *state;
    const double xs[4] = {30.0, 40.0, 100.0, -40.0};
    for (int i = 0; i < 4; i++) {
        const double x = xs[i];
        hess_tensor *p = hess_param_new(ctx, 0, NULL, &x), *g, *h;
        hess_tensor *y = hess_sigmoid(ctx, p);
        assert_ok(ctx, hess_grad(ctx, y, 1, &p, &g, HESS_CREATE_GRAPH));
        assert_ok(ctx, hess_grad(ctx, g, 1, &p, &h, 0));
        const double e = exp(-fabs(x)), s1 = e / ((1 + e) * (1 + e));
        const double s2 = (x > 0 ? -1 : 1) * s1 * (1 - e) / (1 + e);
        assert_close(hess_tensor_data(g)[0], s1, 1e-14, 0);
        assert_close(hess_tensor_data(h)[0], s2, 1e-13, 0);
    }
}

/* ------------------------------------------------------------------------ */
/* Invariants on random small networks                                      */
/* ------------------------------------------------------------------------ */

typedef enum { NET_TANH_MSE, NET_RELU_CE, NET_SIGMOID_BCE, NET_SOFTPLUS_DEEP } net_kind;

typedef struct net {
    size_t n;
    hess_tensor *p[6];
    hess_tensor *loss;
} net;

static hess_tensor *rnd_tensor(hess_context *ctx,
                               uint64_t *seed,
                               int param,
                               int ndim,
                               const int64_t *shape,
                               double lo,
                               double hi)
{
    double buf[256];
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    assert_true(n <= 256);
    for (int64_t i = 0; i < n; i++)
        buf[i] = rnd_uniform(seed, lo, hi);
    return param ? hess_param_new(ctx, ndim, shape, buf) : hess_tensor_new(ctx, ndim, shape, buf);
}

/* A parameter drawn from the stream, or (reuse) the existing one, with the
 * stream advanced the same way so that the data stays the same. */
static hess_tensor *param_or(hess_context *ctx,
                             uint64_t *seed,
                             hess_tensor *old,
                             int ndim,
                             const int64_t *shape,
                             double lo,
                             double hi)
{
    if (!old)
        return rnd_tensor(ctx, seed, 1, ndim, shape, lo, hi);
    for (int64_t i = 0; i < hess_tensor_numel(old); i++)
        (void)rnd_uniform(seed, lo, hi);
    return old;
}

/* Builds one of the small networks; with reuse, on the parameters in m->p. */
static void build_net(hess_context *ctx, net_kind kind, uint64_t seed, net *m, int reuse)
{
    if (!reuse)
        memset(m, 0, sizeof *m);
    enum { B = 4, I = 3, H = 5, O = 3 };
    const int64_t sx[2] = {B, I}, sW1[2] = {H, I}, sb1[1] = {H}, sW2[2] = {O, H}, sb2[1] = {O};
    hess_tensor *x = rnd_tensor(ctx, &seed, 0, 2, sx, -1, 1);
    m->p[0] = param_or(ctx, &seed, m->p[0], 2, sW1, -0.8, 0.8);
    m->p[1] = param_or(ctx, &seed, m->p[1], 1, sb1, -0.5, 0.5);
    m->p[2] = param_or(ctx, &seed, m->p[2], 2, sW2, -0.8, 0.8);
    m->p[3] = param_or(ctx, &seed, m->p[3], 1, sb2, -0.5, 0.5);
    m->n = 4;
    hess_tensor *h = hess_linear(ctx, x, m->p[0], m->p[1]);
    const int64_t so[2] = {B, O};
    switch (kind) {
    case NET_TANH_MSE:
        h = hess_linear(ctx, hess_tanh(ctx, h), m->p[2], m->p[3]);
        m->loss = hess_mse_loss(ctx, h, rnd_tensor(ctx, &seed, 0, 2, so, -1, 1));
        break;
    case NET_RELU_CE: {
        const double t[B] = {0, 2, 1, 2};
        const int64_t st[1] = {B};
        h = hess_linear(ctx, hess_relu(ctx, h), m->p[2], m->p[3]);
        m->loss = hess_cross_entropy(ctx, h, hess_tensor_new(ctx, 1, st, t));
        break;
    }
    case NET_SIGMOID_BCE:
        h = hess_linear(ctx, hess_sigmoid(ctx, h), m->p[2], m->p[3]);
        m->loss = hess_bce_with_logits(ctx, h, rnd_tensor(ctx, &seed, 0, 2, so, 0, 1));
        break;
    case NET_SOFTPLUS_DEEP: {
        const int64_t sW3[2] = {O, O}, sb3[1] = {O};
        m->p[4] = param_or(ctx, &seed, m->p[4], 2, sW3, -0.8, 0.8);
        m->p[5] = param_or(ctx, &seed, m->p[5], 1, sb3, -0.5, 0.5);
        m->n = 6;
        h = hess_softplus(ctx, hess_linear(ctx, hess_softplus(ctx, h), m->p[2], m->p[3]));
        h = hess_log_softmax(ctx, hess_linear(ctx, h, m->p[4], m->p[5]), 1);
        /* mean of squared log-probabilities plus weight decay on W1 */
        m->loss = hess_add(ctx, hess_mean(ctx, hess_square(ctx, h)),
                           hess_scale(ctx, hess_sum(ctx, hess_square(ctx, m->p[0])), 1e-2));
        break;
    }
    }
    assert_non_null(m->loss);
}

typedef struct progress_log {
    size_t calls, last_done, total, cancel_after;
} progress_log;

static int on_progress(size_t done, size_t total, void *user)
{
    progress_log *pl = user;
    assert_true(done > pl->last_done && done <= total);
    pl->calls++;
    pl->last_done = done;
    pl->total = total;
    return pl->cancel_after && pl->calls >= pl->cancel_after;
}

static void check_invariants(hess_context *ctx, net_kind kind, uint64_t seed)
{
    const uint64_t seed0 = seed;
    net m;
    build_net(ctx, kind, seed, &m, 0);
    const size_t N = hess_param_count(m.n, m.p);
    double *h = malloc(N * N * sizeof *h), *h2 = malloc(N * N * sizeof *h2);
    double *d = malloc(N * sizeof *d), *v = malloc(3 * N * sizeof *v),
           *hv = malloc(3 * N * sizeof *hv);
    assert_ok(ctx, hess_hessian(ctx, m.loss, m.n, m.p, h));
    double hmax = 0;
    for (size_t i = 0; i < N * N; i++)
        hmax = fmax(hmax, fabs(h[i]));
    /* symmetric to rounding */
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < i; j++)
            assert_close(h[i * N + j], h[j * N + i], 1e-13, 1e-13 * hmax);
    /* the diagonal is diag(H) */
    assert_ok(ctx, hess_hessian_diag(ctx, m.loss, m.n, m.p, d));
    for (size_t i = 0; i < N; i++)
        assert_close(d[i], h[i * N + i], 1e-13, 1e-15 * hmax);
    /* HVP is H v, one at a time and batched */
    for (size_t i = 0; i < 3 * N; i++)
        v[i] = rnd_uniform(&seed, -1, 1);
    hess_hessian_opts o = {0};
    o.block_rows = 2;
    assert_ok(ctx, hess_hvp_batch(ctx, m.loss, m.n, m.p, 3, v, &o, hv));
    for (size_t r = 0; r < 3; r++) {
        double one[64];
        assert_true(N <= 64);
        assert_ok(ctx, hess_hvp(ctx, m.loss, m.n, m.p, v + r * N, one));
        for (size_t i = 0; i < N; i++) {
            double s = 0;
            for (size_t j = 0; j < N; j++)
                s += h[i * N + j] * v[r * N + j];
            assert_close(one[i], s, 1e-12, 1e-14 * hmax);
            assert_close(hv[r * N + i], one[i], 1e-13, 1e-15 * hmax);
        }
    }
    /* any block size gives the same Hessian; progress is reported per sweep */
    const size_t ks[4] = {1, 3, 7, N + 5};
    for (int t = 0; t < 4; t++) {
        progress_log pl = {0};
        hess_hessian_opts ok = {0};
        ok.block_rows = ks[t];
        ok.progress = on_progress;
        ok.user = &pl;
        assert_ok(ctx, hess_hessian_ex(ctx, m.loss, m.n, m.p, &ok, h2));
        assert_close_array(h2, h, N * N, 1e-13, 1e-15 * hmax);
        const size_t k = ks[t] < N ? ks[t] : N;
        assert_int_equal(pl.calls, (N + k - 1) / k);
        assert_int_equal(pl.last_done, N);
        assert_int_equal(pl.total, N);
    }
    /* cancelling after the second sweep keeps the rows reported done */
    progress_log pl = {0};
    pl.cancel_after = 2;
    hess_hessian_opts oc = {0};
    oc.block_rows = 3;
    oc.progress = on_progress;
    oc.user = &pl;
    memset(h2, 0, N * N * sizeof *h2);
    assert_int_equal(hess_hessian_ex(ctx, m.loss, m.n, m.p, &oc, h2), HESS_ERR_CANCELLED);
    assert_int_equal(hess_context_status(ctx), HESS_ERR_CANCELLED);
    assert_non_null(strstr(hess_context_errmsg(ctx), "cancelled"));
    hess_context_clear_error(ctx);
    assert_int_equal(pl.last_done, 6);
    assert_close_array(h2, h, 6 * N, 1e-13, 1e-15 * hmax);
    /* every block is the matching slice of H */
    size_t offs[7] = {0};
    for (size_t i = 0; i < m.n; i++)
        offs[i + 1] = offs[i] + (size_t)hess_tensor_numel(m.p[i]);
    for (size_t i = 0; i < m.n; i++)
        for (size_t j = 0; j < m.n; j++) {
            const size_t ni = offs[i + 1] - offs[i], nj = offs[j + 1] - offs[j];
            double *blk = malloc(ni * nj * sizeof *blk);
            assert_ok(ctx, hess_hessian_block(ctx, m.loss, m.p[i], m.p[j], blk));
            for (size_t r = 0; r < ni; r++)
                assert_close_array(blk + r * nj, h + (offs[i] + r) * N + offs[j], nj, 1e-13,
                                   1e-15 * hmax);
            free(blk);
        }
    /* H against central differences of the analytic gradient: column c is
     * (g(w + eps e_c) - g(w - eps e_c)) / 2 eps, the loss rebuilt each time */
    const double eps = 1e-5;
    for (size_t pi = 0, col = 0; pi < m.n; pi++) {
        const size_t ne = (size_t)hess_tensor_numel(m.p[pi]);
        double w[64], gpm[2][64];
        memcpy(w, hess_tensor_data(m.p[pi]), ne * sizeof *w);
        for (size_t e = 0; e < ne; e++, col++) {
            for (int sgn = 0; sgn < 2; sgn++) {
                const double old = w[e];
                w[e] = old + (sgn ? -eps : eps);
                assert_ok(ctx, hess_param_set(ctx, m.p[pi], w));
                w[e] = old;
                const hess_mark mk = hess_context_mark(ctx);
                net m2 = m;
                build_net(ctx, kind, seed0, &m2, 1);
                hess_tensor *g[6];
                assert_ok(ctx, hess_grad(ctx, m2.loss, m2.n, m2.p, g, 0));
                for (size_t q = 0, off = 0; q < m.n; off += (size_t)hess_tensor_numel(g[q]), q++)
                    memcpy(gpm[sgn] + off, hess_tensor_data(g[q]),
                           (size_t)hess_tensor_numel(g[q]) * sizeof(double));
                assert_ok(ctx, hess_context_rewind(ctx, mk));
            }
            assert_ok(ctx, hess_param_set(ctx, m.p[pi], w));
            for (size_t r = 0; r < N; r++)
                assert_close((gpm[0][r] - gpm[1][r]) / (2 * eps), h[r * N + col], 1e-6,
                             1e-7 * (1 + hmax));
        }
    }
    free(h);
    free(h2);
    free(d);
    free(v);
    free(hv);
}

static void test_invariants_tanh_mse(void **state)
{
    check_invariants(*state, NET_TANH_MSE, 1);
    check_invariants(*state, NET_TANH_MSE, 2);
}

static void test_invariants_relu_cross_entropy(void **state)
{
    check_invariants(*state, NET_RELU_CE, 3);
}

static void test_invariants_sigmoid_bce(void **state)
{
    check_invariants(*state, NET_SIGMOID_BCE, 4);
}

static void test_invariants_deep_softplus(void **state)
{
    check_invariants(*state, NET_SOFTPLUS_DEEP, 5);
}

/* A loss of one element is a scalar loss whatever its rank (issue #13 item
 * 3): [1] from hess_mean_axis, [1,1] from a reshape; every Hessian function
 * gives what it gives for the [] loss. */
static void test_loss_of_one_element(void **state)
{
    hess_context *ctx = *state;
    const double w[6] = {0.3, -0.7, 1.1, 0.4, -0.2, 0.9};
    hess_tensor *p = hess_param_new(ctx, 2, (const int64_t[]){2, 3}, w);
    hess_tensor *e = hess_exp(ctx, hess_mul(ctx, p, p));
    hess_tensor *l0 = hess_sum(ctx, e); /* [] */
    hess_tensor *l1 = hess_mean_axis(ctx, hess_reshape(ctx, e, 2, (const int64_t[]){1, 6}), 1);
    hess_tensor *l11 = hess_reshape(ctx, l0, 2, (const int64_t[]){1, 1});
    hess_tensor *l1s = hess_scale(ctx, l1, 6.0); /* the sum again, as [1] */
    assert_int_equal(hess_tensor_ndim(l1), 1);
    double want[36], h[36], d0[6], d[6], hv0[6], hv[6], v[6] = {1, -1, 0.5, 2, 0, 1};
    double hvb0[12], hvb[12], vv[12];
    for (int i = 0; i < 12; i++)
        vv[i] = sin(i + 1.0);
    assert_ok(ctx, hess_hessian(ctx, l0, 1, &p, want));
    assert_ok(ctx, hess_hessian_diag(ctx, l0, 1, &p, d0));
    assert_ok(ctx, hess_hvp(ctx, l0, 1, &p, v, hv0));
    assert_ok(ctx, hess_hvp_batch(ctx, l0, 1, &p, 2, vv, NULL, hvb0));
    hess_tensor *losses[2] = {l11, l1s};
    for (int k = 0; k < 2; k++) {
        hess_tensor *l = losses[k];
        assert_ok(ctx, hess_hessian(ctx, l, 1, &p, h));
        assert_close_array(h, want, 36, 1e-15, 0);
        assert_ok(ctx, hess_hessian_block(ctx, l, p, p, h));
        assert_close_array(h, want, 36, 1e-15, 0);
        assert_ok(ctx, hess_hessian_diag(ctx, l, 1, &p, d));
        assert_close_array(d, d0, 6, 1e-15, 0);
        assert_ok(ctx, hess_hvp(ctx, l, 1, &p, v, hv));
        assert_close_array(hv, hv0, 6, 1e-15, 0);
        assert_ok(ctx, hess_hvp_batch(ctx, l, 1, &p, 2, vv, NULL, hvb));
        assert_close_array(hvb, hvb0, 12, 1e-15, 0);
        hess_tensor *dt[1], *g[1];
        assert_ok(ctx, hess_hessian_diag_tensors(ctx, l, 1, &p, dt));
        assert_close_array(hess_tensor_data(dt[0]), d0, 6, 1e-15, 0);
        assert_ok(ctx, hess_grad(ctx, l, 1, &p, g, 0));
        assert_int_equal(hess_tensor_numel(g[0]), 6);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_seed_ann),
        cmocka_unit_test(test_ref_seed_ann_sigmoid),
        cmocka_unit_test(test_ref_mlp_tanh_mse_batch),
        cmocka_unit_test_setup_teardown(test_analytic_quadratic_form, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_analytic_rosenbrock, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_analytic_logsumexp, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_analytic_linear_mse, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_analytic_cubic_third_derivative, setup_ctx,
                                        teardown_ctx),
        cmocka_unit_test_setup_teardown(test_analytic_sigmoid_tail, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_invariants_tanh_mse, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_invariants_relu_cross_entropy, setup_ctx,
                                        teardown_ctx),
        cmocka_unit_test_setup_teardown(test_invariants_sigmoid_bce, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_invariants_deep_softplus, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_loss_of_one_element, setup_ctx, teardown_ctx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
