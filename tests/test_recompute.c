/*
 * test_recompute.c -- hess_recompute: a graph built once, evaluated again for
 * new parameter values.  Every check compares against a fresh build in a
 * second context with the same values, which runs the same kernels in the
 * same order, so the results must be bit for bit the same: the loss, the
 * gradients (recorded or detached), tensors built from the gradients, and a
 * full Hessian taken after the recompute.  Also: it allocates nothing after
 * its first call, and it reports a pending error, a NULL context and a
 * non-finite value under HESS_CHECK_FINITE.
 */
#include "check.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SHP(...) ((const int64_t[]){__VA_ARGS__})

enum { B = 5, IN = 4, HID = 6, OUT = 3, NP = 5 };
/* W1 [HID,IN], b1 [HID], W2 [OUT,HID], b2 [OUT], s [HID] */
static const int64_t pshape[NP][2] = {{HID, IN}, {HID, 0}, {OUT, HID}, {OUT, 0}, {HID, 0}};
static const int pnd[NP] = {2, 1, 2, 1, 1};

static int64_t pnumel(int i)
{
    return pnd[i] == 2 ? pshape[i][0] * pshape[i][1] : pshape[i][0];
}

typedef struct model {
    hess_tensor *p[NP], *loss, *g[NP], *gv;
} model;

/* Parameter values from a seed; the scale s stays positive (it meets sqrt, log
 * and pow). */
static void theta(uint64_t seed, double *th[NP])
{
    uint64_t st = seed * 0x9E3779B97F4A7C15u + 1;
    for (int i = 0; i < NP; i++)
        for (int64_t j = 0; j < pnumel(i); j++)
            th[i][j] = i == 4 ? rnd_uniform(&st, 0.5, 1.5) : rnd_uniform(&st, -0.8, 0.8);
}

/* A loss that goes through most ops: linear, tanh, sigmoid, relu, softplus,
 * exp, log, sqrt, pow, div, square, transpose, matmul, reshape (of a parameter:
 * a copy; of a node: a view), sum_axis, mean, log_softmax / cross-entropy and
 * MSE. */
static hess_tensor *build_loss(hess_context *ctx, hess_tensor *const p[NP])
{
    double xv[B * IN], yv[B] = {0, 2, 1, 1, 0}, tv[B * OUT];
    for (int i = 0; i < B * IN; i++)
        xv[i] = sin(0.7 * i + 0.3);
    for (int i = 0; i < B * OUT; i++)
        tv[i] = cos(0.4 * i);
    hess_tensor *x = hess_tensor_new(ctx, 2, SHP(B, IN), xv);
    hess_tensor *y = hess_tensor_new(ctx, 1, SHP(B), yv);
    hess_tensor *t = hess_tensor_new(ctx, 2, SHP(B, OUT), tv);
    hess_tensor *s = p[4];

    hess_tensor *h = hess_tanh(ctx, hess_linear(ctx, x, p[0], p[1]));       /* [B,HID] */
    hess_tensor *h2 = hess_add(ctx, hess_mul(ctx, hess_sigmoid(ctx, h), s), /* s broadcast */
                               hess_softplus(ctx, hess_relu(ctx, h)));
    hess_tensor *o = hess_linear(ctx, h2, p[2], p[3]); /* [B,OUT] */
    hess_tensor *ce = hess_cross_entropy(ctx, o, y);
    hess_tensor *mse = hess_mse_loss(ctx, hess_exp(ctx, hess_scale(ctx, o, 0.3)), t);
    /* s through sqrt, log, pow and div; a reshaped parameter and a view */
    hess_tensor *sv = hess_reshape(ctx, s, 2, SHP(2, HID / 2));
    hess_tensor *s2 = hess_div(ctx, hess_sqrt(ctx, sv), hess_pow(ctx, sv, 1.5));
    hess_tensor *hv = hess_reshape(ctx, hess_mean_axis(ctx, h, 0), 2, SHP(2, HID / 2));
    hess_tensor *reg =
        hess_sum(ctx, hess_mul(ctx, hess_log(ctx, hess_add(ctx, s2, hess_square(ctx, hv))), s2));
    /* a product through transpose and matmul */
    hess_tensor *w = hess_matmul(ctx, hess_transpose(ctx, p[2]), p[2]); /* [HID,HID] */
    hess_tensor *reg2 = hess_mean(ctx, hess_sum_axis(ctx, hess_square(ctx, w), 1));
    return hess_add(ctx, hess_add(ctx, ce, mse), hess_add(ctx, hess_scale(ctx, reg, 0.1), reg2));
}

/* Parameters from th, the loss, its gradient with flags, and (recorded
 * gradients only) gv = sum_i sum(g_i * g_i), a tensor built from them. */
static void build_model(hess_context *ctx, double *th[NP], unsigned flags, model *m)
{
    memset(m, 0, sizeof *m);
    for (int i = 0; i < NP; i++)
        m->p[i] = hess_param_new(ctx, pnd[i], pshape[i], th[i]);
    m->loss = build_loss(ctx, m->p);
    assert_non_null(m->loss);
    assert_ok(ctx, hess_grad(ctx, m->loss, NP, m->p, m->g, flags));
    if (flags & HESS_CREATE_GRAPH) {
        hess_tensor *acc = NULL;
        for (int i = 0; i < NP; i++) {
            hess_tensor *q = hess_sum(ctx, hess_square(ctx, m->g[i]));
            acc = acc ? hess_add(ctx, acc, q) : q;
        }
        m->gv = acc;
    }
    assert_ok(ctx, hess_context_status(ctx));
}

static void assert_same(const hess_tensor *a, const hess_tensor *b)
{
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(hess_tensor_numel(a), hess_tensor_numel(b));
    assert_memory_equal(hess_tensor_data(a), hess_tensor_data(b),
                        (size_t)hess_tensor_numel(a) * sizeof(double));
}

/* Storage for one set of parameter values. */
typedef struct values {
    double buf[NP][HID * IN];
    double *th[NP];
} values;

static void values_init(values *v, uint64_t seed)
{
    for (int i = 0; i < NP; i++)
        v->th[i] = v->buf[i];
    theta(seed, v->th);
}

/* Built once for seed 1, then recomputed for seeds 2..6: the loss, the
 * gradients and (recorded) gv equal a fresh build for each seed. */
static void recompute_rounds(unsigned flags)
{
    hess_context *ctx = test_context();
    values v0;
    values_init(&v0, 1);
    model m;
    build_model(ctx, v0.th, flags, &m);
    const double first_loss = hess_tensor_data(m.loss)[0];
    for (uint64_t seed = 2; seed <= 6; seed++) {
        values v;
        values_init(&v, seed);
        for (int i = 0; i < NP; i++)
            assert_ok(ctx, hess_param_set(ctx, m.p[i], v.th[i]));
        assert_ok(ctx, hess_recompute(ctx));

        hess_context *fresh = test_context();
        model f;
        build_model(fresh, v.th, flags, &f);
        assert_same(m.loss, f.loss);
        for (int i = 0; i < NP; i++)
            assert_same(m.g[i], f.g[i]);
        if (flags & HESS_CREATE_GRAPH)
            assert_same(m.gv, f.gv);
        hess_context_destroy(fresh);
    }
    assert_true(hess_tensor_data(m.loss)[0] != first_loss); /* it did change */
    hess_context_destroy(ctx);
}

static void test_recompute_detached_gradient(void **state)
{
    (void)state;
    recompute_rounds(0);
}

static void test_recompute_recorded_gradient(void **state)
{
    (void)state;
    recompute_rounds(HESS_CREATE_GRAPH);
}

/* The Hessian functions bring the graph up to date first: with or without a
 * recompute they give the fresh build's Hessian, never a mixture of the old
 * forward values and the new parameters (issue #13 item 1). */
static void test_recompute_then_hessian(void **state)
{
    (void)state;
    hess_context *ctx = test_context(), *fresh = test_context();
    values v1, v2;
    values_init(&v1, 11);
    values_init(&v2, 12);
    model m, f;
    build_model(ctx, v1.th, 0, &m);
    build_model(fresh, v2.th, 0, &f);
    const size_t n = hess_param_count(NP, m.p);
    double *h = test_malloc(n * n * sizeof *h), *want = test_malloc(n * n * sizeof *want);
    double *stale = test_malloc(n * n * sizeof *stale);
    assert_ok(fresh, hess_hessian(fresh, f.loss, NP, f.p, want));

    for (int i = 0; i < NP; i++)
        assert_ok(ctx, hess_param_set(ctx, m.p[i], v2.th[i]));
    assert_int_equal(hess_tensor_is_stale(m.loss), 1);
    assert_ok(ctx, hess_hessian(ctx, m.loss, NP, m.p, stale)); /* brought up to date first */
    assert_int_equal(hess_tensor_is_stale(m.loss), 0);
    assert_ok(ctx, hess_recompute(ctx));
    assert_ok(ctx, hess_hessian(ctx, m.loss, NP, m.p, h));
    assert_memory_equal(h, want, n * n * sizeof *h);
    assert_memory_equal(stale, want, n * n * sizeof *h);

    test_free(h);
    test_free(want);
    test_free(stale);
    hess_context_destroy(ctx);
    hess_context_destroy(fresh);
}

/* H v as a graph built once (docs/guide.md): g recorded, v held in
 * parameters, s = sum_i sum(g_i v_i), hv = ds/dθ; for new (θ, v), set both and
 * recompute.  Matches hess_hvp at the same point to rounding (the two graphs
 * differ, so not bit for bit). */
static void test_recompute_hvp_pattern(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    values v0, d0;
    values_init(&v0, 31);
    values_init(&d0, 32);
    model m;
    build_model(ctx, v0.th, HESS_CREATE_GRAPH, &m);
    hess_tensor *v[NP], *hv[NP], *s = NULL;
    for (int i = 0; i < NP; i++) {
        v[i] = hess_param_new(ctx, pnd[i], pshape[i], d0.th[i]);
        hess_tensor *t = hess_sum(ctx, hess_mul(ctx, m.g[i], v[i]));
        s = s ? hess_add(ctx, s, t) : t;
    }
    assert_ok(ctx, hess_grad(ctx, s, NP, m.p, hv, 0));
    for (uint64_t seed = 33; seed < 39; seed += 2) {
        values th, dir;
        values_init(&th, seed);
        values_init(&dir, seed + 1);
        for (int i = 0; i < NP; i++) {
            assert_ok(ctx, hess_param_set(ctx, m.p[i], th.th[i]));
            assert_ok(ctx, hess_param_set(ctx, v[i], dir.th[i]));
        }
        assert_ok(ctx, hess_recompute(ctx));

        hess_context *fresh = test_context();
        model f;
        build_model(fresh, th.th, 0, &f);
        double flat[NP * HID * IN], want[NP * HID * IN];
        size_t off = 0;
        for (int i = 0; i < NP; i++)
            for (int64_t e = 0; e < pnumel(i); e++)
                flat[off++] = dir.th[i][e];
        assert_ok(fresh, hess_hvp(fresh, f.loss, NP, f.p, flat, want));
        off = 0;
        for (int i = 0; i < NP; i++) {
            assert_close_array(hess_tensor_data(hv[i]), want + off, (size_t)pnumel(i), 1e-12,
                               1e-13);
            off += (size_t)pnumel(i);
        }
        hess_context_destroy(fresh);
    }
    hess_context_destroy(ctx);
}

/* A counting allocator: after the first recompute, further ones make no
 * allocator call and leave the arena where it was. */
typedef struct counter {
    size_t calls;
} counter;

static void *c_alloc(size_t size, void *user)
{
    ((counter *)user)->calls++;
    return test_malloc(size);
}

static void c_free(void *ptr, size_t size, void *user)
{
    (void)size, (void)user;
    test_free(ptr);
}

static void test_recompute_allocates_nothing(void **state)
{
    (void)state;
    counter c = {0};
    const hess_config cfg = {c_alloc, c_free, &c, 0, 4096, 0};
    hess_context *ctx;
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    values v;
    values_init(&v, 21);
    model m;
    build_model(ctx, v.th, HESS_CREATE_GRAPH, &m);
    assert_ok(ctx, hess_recompute(ctx));
    const hess_mark before = hess_context_mark(ctx);
    const size_t calls = c.calls;
    for (uint64_t seed = 22; seed < 32; seed++) {
        values_init(&v, seed);
        for (int i = 0; i < NP; i++)
            assert_ok(ctx, hess_param_set(ctx, m.p[i], v.th[i]));
        assert_ok(ctx, hess_recompute(ctx));
    }
    const hess_mark after = hess_context_mark(ctx);
    assert_int_equal(c.calls, calls);
    assert_int_equal(after.block, before.block);
    assert_int_equal(after.used, before.used);
    assert_int_equal(after.nodes, before.nodes);
    hess_context_destroy(ctx);
}

static void test_recompute_errors(void **state)
{
    (void)state;
    assert_int_equal(hess_recompute(NULL), HESS_ERR_ARG);

    /* no parameters: nothing to do */
    hess_context *ctx = test_context();
    assert_non_null(hess_exp(ctx, hess_scalar(ctx, 1.0)));
    assert_ok(ctx, hess_recompute(ctx));

    /* a pending error is returned and nothing is evaluated */
    double one = 1.0, two = 2.0;
    hess_tensor *p = hess_param_new(ctx, 0, NULL, &one);
    hess_tensor *e = hess_exp(ctx, p);
    assert_null(hess_add(ctx, hess_tensor_new(ctx, 1, SHP(2), (const double[]){1, 2}),
                         hess_tensor_new(ctx, 1, SHP(3), (const double[]){1, 2, 3})));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_SHAPE);
    assert_int_equal(hess_param_set(ctx, p, &two), HESS_OK);
    assert_int_equal(hess_recompute(ctx), HESS_ERR_SHAPE);
    assert_true(hess_tensor_data(e)[0] == exp(1.0));
    hess_context_clear_error(ctx);
    assert_ok(ctx, hess_recompute(ctx));
    assert_true(hess_tensor_data(e)[0] == exp(2.0));
    hess_context_destroy(ctx);

    /* a value that turns non-finite, under HESS_CHECK_FINITE */
    ctx = test_context_flags(HESS_CHECK_FINITE);
    p = hess_param_new(ctx, 0, NULL, &one);
    hess_tensor *l = hess_log(ctx, p);
    assert_non_null(l);
    const double neg = -1.0;
    assert_ok(ctx, hess_param_set(ctx, p, &neg));
    assert_int_equal(hess_recompute(ctx), HESS_ERR_NONFINITE);
    assert_non_null(strstr(hess_context_errmsg(ctx), "hess_recompute"));
    assert_non_null(strstr(hess_context_errmsg(ctx), "log"));
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Stale graphs (issue #13 items 1 and 2): every function that reads a      */
/* graph, after new parameters and new data, equals the same call on a      */
/* graph built fresh for those values -- with and without hess_recompute.   */
/* ------------------------------------------------------------------------ */

enum { DB = 4, DIN = 3, DH = 5, DC = 3, DNP = 4 };

/* A classifier with its data as leaves: x [DB,DIN], class targets y [DB],
 * BCE targets q [DB,DC]; loss = CE(o, y) + BCE(o, q), o = W2 tanh(W1 x + b1) + b2. */
typedef struct dmodel {
    hess_tensor *p[DNP], *x, *y, *q, *o, *loss;
} dmodel;

typedef struct dvalues {
    double w1[DH * DIN], b1[DH], w2[DC * DH], b2[DC], x[DB * DIN], y[DB], q[DB * DC];
} dvalues;

static void dvalues_init(dvalues *v, uint64_t seed)
{
    uint64_t st = seed * 0x9E3779B97F4A7C15u + 7;
    double *ws[] = {v->w1, v->b1, v->w2, v->b2, v->x};
    const size_t ns[] = {DH * DIN, DH, DC * DH, DC, DB * DIN};
    for (int i = 0; i < 5; i++)
        for (size_t j = 0; j < ns[i]; j++)
            ws[i][j] = rnd_uniform(&st, -1.0, 1.0);
    for (int b = 0; b < DB; b++)
        v->y[b] = (double)((seed + (uint64_t)b) % DC);
    for (int j = 0; j < DB * DC; j++)
        v->q[j] = rnd_uniform(&st, 0.0, 1.0);
}

static void dmodel_build(hess_context *ctx, const dvalues *v, dmodel *m)
{
    m->p[0] = hess_param_new(ctx, 2, SHP(DH, DIN), v->w1);
    m->p[1] = hess_param_new(ctx, 1, SHP(DH), v->b1);
    m->p[2] = hess_param_new(ctx, 2, SHP(DC, DH), v->w2);
    m->p[3] = hess_param_new(ctx, 1, SHP(DC), v->b2);
    m->x = hess_tensor_new(ctx, 2, SHP(DB, DIN), v->x);
    m->y = hess_tensor_new(ctx, 1, SHP(DB), v->y);
    m->q = hess_tensor_new(ctx, 2, SHP(DB, DC), v->q);
    hess_tensor *h = hess_tanh(ctx, hess_linear(ctx, m->x, m->p[0], m->p[1]));
    m->o = hess_linear(ctx, h, m->p[2], m->p[3]);
    m->loss =
        hess_add(ctx, hess_cross_entropy(ctx, m->o, m->y), hess_bce_with_logits(ctx, m->o, m->q));
    assert_non_null(m->loss);
}

#define DN (DH * DIN + DH + DC * DH + DC)

/* Everything a reader gives, for one graph. */
typedef struct readings {
    double loss, grad[DN], vjp[DN], hvp[DN], hvpb[2 * DN], hess[DN * DN], diag[DN];
    double diagt[DN], block[DC * DH * DH], gc_grad_err;
} readings;

static void read_all(hess_context *ctx, const dmodel *m, readings *r)
{
    double v[2 * DN];
    for (int i = 0; i < 2 * DN; i++)
        v[i] = sin(0.37 * i + 0.1);
    hess_tensor *g[DNP], *dt[DNP];
    assert_ok(ctx, hess_grad(ctx, m->loss, DNP, m->p, g, 0));
    r->loss = hess_tensor_data(m->loss)[0]; /* brought up to date by hess_grad */
    for (int i = 0, off = 0; i < DNP; off += (int)hess_tensor_numel(g[i]), i++)
        memcpy(r->grad + off, hess_tensor_data(g[i]), (size_t)hess_tensor_numel(g[i]) * 8);
    double ones[DB * DC];
    for (int i = 0; i < DB * DC; i++)
        ones[i] = 1.0 + 0.1 * i;
    hess_tensor *seed = hess_tensor_new(ctx, 2, SHP(DB, DC), ones);
    hess_tensor *o = m->o;
    assert_ok(ctx, hess_vjp(ctx, 1, &o, &seed, DNP, m->p, g, 0));
    for (int i = 0, off = 0; i < DNP; off += (int)hess_tensor_numel(g[i]), i++)
        memcpy(r->vjp + off, hess_tensor_data(g[i]), (size_t)hess_tensor_numel(g[i]) * 8);
    assert_ok(ctx, hess_hvp(ctx, m->loss, DNP, m->p, v, r->hvp));
    assert_ok(ctx, hess_hvp_batch(ctx, m->loss, DNP, m->p, 2, v, NULL, r->hvpb));
    assert_ok(ctx, hess_hessian(ctx, m->loss, DNP, m->p, r->hess));
    assert_ok(ctx, hess_hessian_diag(ctx, m->loss, DNP, m->p, r->diag));
    assert_ok(ctx, hess_hessian_diag_tensors(ctx, m->loss, DNP, m->p, dt));
    for (int i = 0, off = 0; i < DNP; off += (int)hess_tensor_numel(dt[i]), i++)
        memcpy(r->diagt + off, hess_tensor_data(dt[i]), (size_t)hess_tensor_numel(dt[i]) * 8);
    assert_ok(ctx, hess_hessian_block(ctx, m->loss, m->p[2], m->p[1], r->block));
}

static void assert_readings_equal(const readings *a, const readings *b)
{
    const double rt = 1e-15, at = 1e-300;
    assert_close(a->loss, b->loss, rt, at);
    assert_close_array(a->grad, b->grad, DN, rt, at);
    assert_close_array(a->vjp, b->vjp, DN, rt, at);
    assert_close_array(a->hvp, b->hvp, DN, rt, at);
    assert_close_array(a->hvpb, b->hvpb, 2 * DN, rt, at);
    assert_close_array(a->hess, b->hess, DN * DN, rt, at);
    assert_close_array(a->diag, b->diag, DN, rt, at);
    assert_close_array(a->diagt, b->diagt, DN, rt, at);
    assert_close_array(a->block, b->block, DC * DH * DH, rt, at);
}

/* Built at values 1, read, moved to values 2 (parameters only, or data too),
 * recomputed or not, read again: equal to a fresh build at values 2. */
static void stale_round(bool data, bool recompute)
{
    hess_context *ctx = test_context(), *fresh = test_context();
    dvalues v1, v2;
    dvalues_init(&v1, 1);
    dvalues_init(&v2, 2);
    if (!data)
        memcpy(v2.x, v1.x, sizeof v1.x), memcpy(v2.y, v1.y, sizeof v1.y),
            memcpy(v2.q, v1.q, sizeof v1.q);
    dmodel m, f;
    dmodel_build(ctx, &v1, &m);
    dmodel_build(fresh, &v2, &f);
    readings *r1 = test_malloc(sizeof *r1), *r2 = test_malloc(sizeof *r2);
    read_all(ctx, &m, r1); /* the graph is used at values 1 first */
    assert_int_equal(hess_tensor_is_stale(m.loss), 0);

    const double *pv[DNP] = {v2.w1, v2.b1, v2.w2, v2.b2};
    for (int i = 0; i < DNP; i++)
        assert_ok(ctx, hess_param_set(ctx, m.p[i], pv[i]));
    if (data) {
        assert_ok(ctx, hess_tensor_set(ctx, m.x, v2.x));
        assert_ok(ctx, hess_tensor_set(ctx, m.y, v2.y));
        assert_ok(ctx, hess_tensor_set(ctx, m.q, v2.q));
    }
    assert_int_equal(hess_tensor_is_stale(m.loss), 1);
    assert_int_equal(hess_tensor_is_stale(m.o), 1);
    assert_int_equal(hess_tensor_is_stale(m.p[0]), 0); /* a leaf is never stale */
    if (recompute) {
        assert_ok(ctx, hess_recompute(ctx));
        assert_int_equal(hess_tensor_is_stale(m.loss), 0);
        assert_memory_equal(hess_tensor_data(m.loss), hess_tensor_data(f.loss), sizeof(double));
    }
    read_all(ctx, &m, r1);
    read_all(fresh, &f, r2);
    assert_readings_equal(r1, r2);
    assert_int_equal(hess_tensor_is_stale(m.loss), 0);
    test_free(r1);
    test_free(r2);
    hess_context_destroy(ctx);
    hess_context_destroy(fresh);
}

static void test_stale_params_without_recompute(void **state)
{
    (void)state;
    stale_round(false, false);
}

static void test_stale_params_with_recompute(void **state)
{
    (void)state;
    stale_round(false, true);
}

static void test_stale_data_without_recompute(void **state)
{
    (void)state;
    stale_round(true, false);
}

static void test_stale_data_with_recompute(void **state)
{
    (void)state;
    stale_round(true, true);
}

/* hess_check_derivatives on a loss built before new values reads the new ones. */
static hess_tensor *held_loss(hess_context *ctx, size_t n, hess_tensor *const p[], void *user)
{
    (void)ctx, (void)n, (void)p;
    return user; /* the loss built once, outside the callback */
}

static void test_stale_check_derivatives(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    dvalues v1, v2;
    dvalues_init(&v1, 3);
    dvalues_init(&v2, 4);
    dmodel m;
    dmodel_build(ctx, &v1, &m);
    const double *pv[DNP] = {v2.w1, v2.b1, v2.w2, v2.b2};
    for (int i = 0; i < DNP; i++)
        assert_ok(ctx, hess_param_set(ctx, m.p[i], pv[i]));
    hess_check_report rep;
    assert_ok(ctx, hess_check_derivatives(ctx, held_loss, m.loss, DNP, m.p, NULL, &rep));
    assert_true(rep.ok);
    assert_true(rep.max_grad_err < 0.1 && rep.max_hvp_err < 0.1);
    hess_context_destroy(ctx);
}

/* hess_tensor_set: class targets and probabilities are checked against the
 * ops built on them, and a refused call changes nothing; new targets reach
 * the loss (cross-entropy once read its targets only when it was built). */
static void test_tensor_set_checks_and_reaches_the_loss(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    dvalues v;
    dvalues_init(&v, 5);
    dmodel m;
    dmodel_build(ctx, &v, &m);
    const double before = hess_tensor_data(m.loss)[0];
    double bad[DB];
    memcpy(bad, v.y, sizeof bad);
    const double refused[] = {3.0, -1.0, 0.5, NAN, INFINITY};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        bad[2] = refused[i];
        assert_int_equal(hess_tensor_set(ctx, m.y, bad), HESS_ERR_ARG);
        assert_non_null(strstr(hess_context_errmsg(ctx), "hess_tensor_set: target 2 is"));
        hess_context_clear_error(ctx);
        assert_memory_equal(hess_tensor_data(m.y), v.y, sizeof v.y);
        assert_int_equal(hess_tensor_is_stale(m.loss), 0);
    }
    double qbad[DB * DC];
    memcpy(qbad, v.q, sizeof qbad);
    qbad[5] = 1.5;
    assert_int_equal(hess_tensor_set(ctx, m.q, qbad), HESS_ERR_ARG);
    assert_non_null(strstr(hess_context_errmsg(ctx), "targets must be in [0, 1]"));
    hess_context_clear_error(ctx);
    assert_memory_equal(hess_tensor_data(m.q), v.q, sizeof v.q);

    /* new class targets: the loss follows, by recompute and by a reader */
    double y2[DB];
    for (int b = 0; b < DB; b++)
        y2[b] = (double)((int)(v.y[b] + 1) % DC);
    assert_ok(ctx, hess_tensor_set(ctx, m.y, y2));
    assert_ok(ctx, hess_recompute(ctx));
    const double after = hess_tensor_data(m.loss)[0];
    assert_true(after != before);
    hess_context *fresh = test_context();
    memcpy(v.y, y2, sizeof y2);
    dmodel f;
    dmodel_build(fresh, &v, &f);
    assert_memory_equal(&after, hess_tensor_data(f.loss), sizeof after);
    hess_context_destroy(fresh);
    hess_context_destroy(ctx);
}

/* hess_params_get / _set / _axpy: flat vectors in the order given; a refused
 * value (a class index out of range) changes none of the leaves. */
static void test_params_flat(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    dvalues v;
    dvalues_init(&v, 9);
    dmodel m;
    dmodel_build(ctx, &v, &m);
    double flat[DN], back[DN], d[DN];
    assert_ok(ctx, hess_params_get(DNP, m.p, flat));
    assert_memory_equal(flat, v.w1, sizeof v.w1);
    assert_memory_equal(flat + DN - DC, v.b2, sizeof v.b2);
    for (int i = 0; i < DN; i++)
        d[i] = 0.01 * i;
    assert_ok(ctx, hess_params_axpy(ctx, DNP, m.p, -2.0, d));
    assert_ok(ctx, hess_params_get(DNP, m.p, back));
    for (int i = 0; i < DN; i++)
        assert_true(back[i] == flat[i] + -2.0 * d[i]);
    assert_int_equal(hess_tensor_is_stale(m.loss), 1);
    assert_ok(ctx, hess_params_set(ctx, DNP, m.p, flat));
    assert_ok(ctx, hess_params_get(DNP, m.p, back));
    assert_memory_equal(back, flat, sizeof flat);
    /* the data through the same calls: y is checked, nothing written on refusal */
    hess_tensor *data[3] = {m.x, m.q, m.y};
    double dv[DB * DIN + DB * DC + DB];
    assert_ok(ctx, hess_params_get(3, data, dv));
    dv[DB * DIN + DB * DC + 1] = 7.0; /* a class index out of range */
    dv[0] += 1.0;
    assert_int_equal(hess_params_set(ctx, 3, data, dv), HESS_ERR_ARG);
    assert_non_null(strstr(hess_context_errmsg(ctx), "class indices"));
    hess_context_clear_error(ctx);
    assert_memory_equal(hess_tensor_data(m.x), v.x, sizeof v.x);
    /* bad lists */
    hess_tensor *twice[2] = {m.p[0], m.p[0]}, *res[1] = {m.o};
    assert_int_equal(hess_params_get(2, twice, back), HESS_ERR_ARG);
    hess_context_clear_error(ctx);
    assert_int_equal(hess_params_set(ctx, 1, res, back), HESS_ERR_ARG);
    assert_non_null(strstr(hess_context_errmsg(ctx), "not a leaf"));
    hess_context_clear_error(ctx);
    assert_int_equal(hess_params_get(0, m.p, back), HESS_ERR_ARG);
    assert_int_equal(hess_params_get(DNP, m.p, NULL), HESS_ERR_ARG);
    hess_context_clear_error(ctx);
    assert_int_equal(hess_params_axpy(ctx, DNP, m.p, 1.0, NULL), HESS_ERR_ARG);
    hess_context_clear_error(ctx);
    hess_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recompute_detached_gradient),
        cmocka_unit_test(test_recompute_recorded_gradient),
        cmocka_unit_test(test_recompute_then_hessian),
        cmocka_unit_test(test_recompute_hvp_pattern),
        cmocka_unit_test(test_recompute_allocates_nothing),
        cmocka_unit_test(test_recompute_errors),
        cmocka_unit_test(test_stale_params_without_recompute),
        cmocka_unit_test(test_stale_params_with_recompute),
        cmocka_unit_test(test_stale_data_without_recompute),
        cmocka_unit_test(test_stale_data_with_recompute),
        cmocka_unit_test(test_stale_check_derivatives),
        cmocka_unit_test(test_tensor_set_checks_and_reaches_the_loss),
        cmocka_unit_test(test_params_flat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
