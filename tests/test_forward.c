/*
 * test_forward.c -- forward mode through the public API: hess_jvp against
 * central differences and against hess_vjp, hess_jacobian by both of its
 * paths (forward when the columns are fewer, reverse otherwise) and across
 * blocks of 64 directions, hess_hvp_fwd against hess_hvp on a network, and
 * the rules every mode keeps: a stale graph is brought up to date, a detached
 * tensor carries no tangent, a gradient taken without HESS_CREATE_GRAPH is
 * refused.  Each op's forward-mode rule is checked in test_grad's table.
 */
#include "check.h"

#include <math.h>
#include <string.h>

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

static void fill(uint64_t *s, double *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = rnd_uniform(s, lo, hi);
}

/* A two-layer tanh network's outputs [B, O] for input x [B, I]. */
typedef struct net {
    hess_context *ctx;
    hess_tensor *p[4]; /* W1 [H, I], b1 [H], W2 [O, H], b2 [O] */
    hess_tensor *x, *out;
    size_t N;
} net;

static void net_build(net *m, int64_t B, int64_t I, int64_t H, int64_t O, uint64_t seed)
{
    uint64_t s = seed;
    static double buf[4096];
    m->ctx = test_context();
    const int64_t shapes[4][2] = {{H, I}, {H, 0}, {O, H}, {O, 0}};
    m->N = 0;
    for (int i = 0; i < 4; i++) {
        const int nd = shapes[i][1] ? 2 : 1;
        const size_t n = (size_t)(shapes[i][0] * (nd == 2 ? shapes[i][1] : 1));
        fill(&s, buf, n, -0.8, 0.8);
        m->p[i] = hess_param_new(m->ctx, nd, shapes[i], buf);
        m->N += n;
    }
    fill(&s, buf, (size_t)(B * I), -1, 1);
    m->x = hess_tensor_new(m->ctx, 2, SHAPE(B, I), buf);
    m->out = hess_linear(m->ctx, hess_tanh(m->ctx, hess_linear(m->ctx, m->x, m->p[0], m->p[1])),
                         m->p[2], m->p[3]);
    assert_ok(m->ctx, hess_context_status(m->ctx));
}

/* The flat parameters, and writing them back. */
static void net_get(const net *m, double *x)
{
    assert_int_equal(hess_params_get(4, m->p, x), HESS_OK);
}

static void net_set(net *m, const double *x)
{
    assert_ok(m->ctx, hess_params_set(m->ctx, 4, m->p, x));
}

/* J v by central differences of the output's values. */
static void jv_fd(net *m, const double *v, double *jv)
{
    const size_t M = (size_t)hess_tensor_numel(m->out);
    double x0[4096], xp[4096], fp[4096];
    const double h = 1e-6;
    net_get(m, x0);
    for (size_t i = 0; i < m->N; i++)
        xp[i] = x0[i] + h * v[i];
    net_set(m, xp);
    assert_ok(m->ctx, hess_recompute(m->ctx));
    memcpy(fp, hess_tensor_data(m->out), M * sizeof *fp);
    for (size_t i = 0; i < m->N; i++)
        xp[i] = x0[i] - h * v[i];
    net_set(m, xp);
    assert_ok(m->ctx, hess_recompute(m->ctx));
    for (size_t r = 0; r < M; r++)
        jv[r] = (fp[r] - hess_tensor_data(m->out)[r]) / (2 * h);
    net_set(m, x0);
    assert_ok(m->ctx, hess_recompute(m->ctx));
}

/* The Jacobian's rows from hess_vjp with unit seeds. */
static void jacobian_by_vjp(net *m, double *J)
{
    const size_t M = (size_t)hess_tensor_numel(m->out);
    double *seed = test_calloc(M, sizeof *seed);
    for (size_t r = 0; r < M; r++) {
        const hess_mark mk = hess_context_mark(m->ctx);
        seed[r] = 1.0;
        hess_tensor *sd =
            hess_tensor_new(m->ctx, hess_tensor_ndim(m->out), hess_tensor_shape(m->out), seed);
        hess_tensor *g[4];
        assert_ok(m->ctx, hess_vjp(m->ctx, 1, &m->out, &sd, 4, m->p, g, 0));
        double *row = J + r * m->N;
        for (int i = 0; i < 4; i++) {
            memcpy(row, hess_tensor_data(g[i]), (size_t)hess_tensor_numel(g[i]) * sizeof *row);
            row += hess_tensor_numel(g[i]);
        }
        seed[r] = 0.0;
        assert_ok(m->ctx, hess_context_rewind(m->ctx, mk));
    }
    test_free(seed);
}

static double max_abs(const double *a, size_t n)
{
    double r = 0;
    for (size_t i = 0; i < n; i++)
        r = fabs(a[i]) > r ? fabs(a[i]) : r;
    return r;
}

/* hess_jvp of a network's outputs [3, 2] against differences and against
 * J v from the rows hess_vjp gives; the tape is left as it was. */
static void test_forward_jvp_network(void **state)
{
    (void)state;
    net m;
    net_build(&m, 3, 4, 5, 2, 11);
    const size_t M = 6, N = m.N;
    double v[64], jv[6], fd[6], want[6], J[6 * 64];
    uint64_t s = 5;
    fill(&s, v, N, -1, 1);
    const int64_t tape = hess_context_mark(m.ctx).nodes;
    assert_ok(m.ctx, hess_jvp(m.ctx, m.out, 4, m.p, v, jv));
    assert_int_equal(hess_context_mark(m.ctx).nodes, tape);
    jv_fd(&m, v, fd);
    assert_close_array(jv, fd, M, 1e-7, 1e-8);
    jacobian_by_vjp(&m, J);
    for (size_t r = 0; r < M; r++) {
        want[r] = 0;
        for (size_t c = 0; c < N; c++)
            want[r] += J[r * N + c] * v[c];
    }
    assert_close_array(jv, want, M, 1e-13, 1e-13);
    hess_context_destroy(m.ctx);
}

/* Both paths of hess_jacobian, each over more than one block of 64
 * directions: a tall Jacobian (outputs [40, 3] = 120 rows, N = 67 columns:
 * forward) and a wide one (outputs [30, 2] = 60 rows, N = 112: reverse). */
static void test_forward_jacobian_both_paths(void **state)
{
    (void)state;
    const int64_t dims[2][4] = {{40, 4, 8, 3}, {30, 4, 16, 2}};
    for (int t = 0; t < 2; t++) {
        net m;
        net_build(&m, dims[t][0], dims[t][1], dims[t][2], dims[t][3], 21 + (uint64_t)t);
        const size_t M = (size_t)hess_tensor_numel(m.out), N = m.N;
        assert_true(t == 0 ? N <= M && N > 64 : N > M && M > 32);
        double *J = test_malloc(M * N * sizeof *J), *Jr = test_malloc(M * N * sizeof *Jr);
        assert_ok(m.ctx, hess_jacobian(m.ctx, m.out, 4, m.p, J));
        jacobian_by_vjp(&m, Jr);
        const double scale = max_abs(Jr, M * N);
        for (size_t i = 0; i < M * N; i++)
            assert_close(J[i], Jr[i], 0, 1e-13 * scale);
        /* and column by column with hess_jvp */
        double e[128] = {0}, col[128];
        for (size_t c = 0; c < N; c += 13) {
            e[c] = 1;
            assert_ok(m.ctx, hess_jvp(m.ctx, m.out, 4, m.p, e, col));
            e[c] = 0;
            for (size_t r = 0; r < M; r++)
                assert_close(col[r], Jr[r * N + c], 0, 1e-13 * scale);
        }
        test_free(J), test_free(Jr);
        hess_context_destroy(m.ctx);
    }
}

/* The Jacobian of an input and of a tensor with respect to itself. */
static void test_forward_jacobian_of_identity_and_input(void **state)
{
    (void)state;
    net m;
    net_build(&m, 2, 3, 4, 2, 31);
    double J[16 * 16];
    assert_ok(m.ctx, hess_jacobian(m.ctx, m.p[1], 1, &m.p[1], J));
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 4; j++)
            assert_true(J[i * 4 + j] == (i == j ? 1.0 : 0.0));
    /* d out / d x: W2 diag(1 - h^2) W1 per sample, checked against the vjp
     * rows of the same output with x as the only wrt */
    double Jx[4 * 6], Jr[4 * 6], seedv[4] = {0};
    assert_ok(m.ctx, hess_jacobian(m.ctx, m.out, 1, &m.x, Jx));
    for (size_t r = 0; r < 4; r++) {
        seedv[r] = 1;
        hess_tensor *sd = hess_tensor_new(m.ctx, 2, SHAPE(2, 2), seedv), *g;
        assert_ok(m.ctx, hess_vjp(m.ctx, 1, &m.out, &sd, 1, &m.x, &g, 0));
        memcpy(Jr + r * 6, hess_tensor_data(g), 6 * sizeof(double));
        seedv[r] = 0;
    }
    assert_close_array(Jx, Jr, 24, 1e-14, 1e-14);
    /* sample 0's outputs do not depend on sample 1's inputs */
    for (size_t c = 3; c < 6; c++)
        assert_true(Jx[0 * 6 + c] == 0.0 && Jx[1 * 6 + c] == 0.0);
    hess_context_destroy(m.ctx);
}

/* hess_hvp_fwd (forward over reverse) against hess_hvp (reverse over
 * reverse) on a cross-entropy network and on the seed's MSE model. */
static void test_forward_hvp_fwd_matches_hvp(void **state)
{
    (void)state;
    net m;
    net_build(&m, 6, 5, 7, 3, 41);
    double t[6] = {0, 2, 1, 1, 0, 2};
    hess_tensor *tg = hess_tensor_new(m.ctx, 1, SHAPE(6), t);
    hess_tensor *L = hess_cross_entropy(m.ctx, m.out, tg);
    double v[128], hv[128], hvf[128];
    uint64_t s = 9;
    fill(&s, v, m.N, -1, 1);
    assert_ok(m.ctx, hess_hvp(m.ctx, L, 4, m.p, v, hv));
    assert_ok(m.ctx, hess_hvp_fwd(m.ctx, L, 4, m.p, v, hvf));
    assert_close_array(hvf, hv, m.N, 1e-12, 1e-13 * max_abs(hv, m.N));

    hess_tensor *y = hess_tensor_new(m.ctx, 2, SHAPE(6, 3), NULL);
    hess_tensor *L2 = hess_mse_loss(m.ctx, hess_sigmoid(m.ctx, m.out), y);
    assert_ok(m.ctx, hess_hvp(m.ctx, L2, 4, m.p, v, hv));
    assert_ok(m.ctx, hess_hvp_fwd(m.ctx, L2, 4, m.p, v, hvf));
    assert_close_array(hvf, hv, m.N, 1e-12, 1e-13 * max_abs(hv, m.N));
    hess_context_destroy(m.ctx);
}

/* After hess_param_set the functions see the new values (the graph is
 * brought up to date first), without a hess_recompute. */
static void test_forward_stale_graph_is_refreshed(void **state)
{
    (void)state;
    net m;
    net_build(&m, 2, 3, 4, 2, 51);
    double x[64], v[64], jv[4], jv2[4];
    uint64_t s = 3;
    fill(&s, v, m.N, -1, 1);
    net_get(&m, x);
    for (size_t i = 0; i < m.N; i++)
        x[i] *= 1.5;
    net_set(&m, x);
    assert_true(hess_tensor_is_stale(m.out));
    assert_ok(m.ctx, hess_jvp(m.ctx, m.out, 4, m.p, v, jv));
    assert_false(hess_tensor_is_stale(m.out));
    /* the same model built afresh at the new values */
    net m2;
    net_build(&m2, 2, 3, 4, 2, 51);
    net_set(&m2, x);
    assert_ok(m2.ctx, hess_recompute(m2.ctx));
    assert_ok(m2.ctx, hess_jvp(m2.ctx, m2.out, 4, m2.p, v, jv2));
    assert_close_array(jv, jv2, 4, 0, 0);
    hess_context_destroy(m.ctx);
    hess_context_destroy(m2.ctx);
}

/* A detached tensor carries no tangent; a gradient taken without
 * HESS_CREATE_GRAPH is refused with a message that says what to do. */
static void test_forward_detach_and_cut(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *a = hess_param_new(ctx, 1, SHAPE(3), (const double[]){1, 2, 3});
    hess_tensor *y =
        hess_mul(ctx, hess_detach(ctx, hess_exp(ctx, a)), a); /* e^a0 a, tangent e^a0 da */
    double v[3] = {1, -1, 0.5}, jv[3];
    assert_ok(ctx, hess_jvp(ctx, y, 1, &a, v, jv));
    for (int i = 0; i < 3; i++)
        assert_close(jv[i], exp((double)(i + 1)) * v[i], 1e-15, 0);

    hess_tensor *L = hess_sum(ctx, hess_mul(ctx, a, hess_mul(ctx, a, a))), *g;
    assert_ok(ctx, hess_grad(ctx, L, 1, &a, &g, 0)); /* without HESS_CREATE_GRAPH */
    assert_int_equal(hess_jvp(ctx, g, 1, &a, v, jv), HESS_ERR_NODIFF);
    assert_non_null(strstr(hess_context_errmsg(ctx), "hess_jvp"));
    assert_non_null(strstr(hess_context_errmsg(ctx), "HESS_CREATE_GRAPH"));
    hess_context_clear_error(ctx);
    /* with it, the tangent of the gradient 3 a^2 is 6 a v */
    assert_ok(ctx, hess_grad(ctx, L, 1, &a, &g, HESS_CREATE_GRAPH));
    assert_ok(ctx, hess_jvp(ctx, g, 1, &a, v, jv));
    for (int i = 0; i < 3; i++)
        assert_close(jv[i], 6.0 * (i + 1) * v[i], 1e-15, 0);
    hess_context_destroy(ctx);
}

/* Tangent shapes through the vector forms of hess_matmul, a batched matmul
 * with broadcast batch dimensions, and the reductions, checked by
 * differences of the output values. */
static void test_forward_shapes(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    uint64_t s = 77;
    double buf[64];
    fill(&s, buf, 24, -1, 1);
    hess_tensor *A = hess_param_new(ctx, 3, SHAPE(2, 3, 4), buf);  /* batch of 2 */
    hess_tensor *B = hess_param_new(ctx, 2, SHAPE(4, 2), buf + 3); /* broadcast */
    hess_tensor *u = hess_param_new(ctx, 1, SHAPE(4), buf + 7);
    hess_tensor *w[3] = {A, B, u};
    hess_tensor *C = hess_matmul(ctx, A, B);                      /* [2, 3, 2] */
    hess_tensor *d = hess_matmul(ctx, u, B);                      /* [2] */
    hess_tensor *e = hess_matmul(ctx, hess_transpose(ctx, B), u); /* [2] */
    hess_tensor *f = hess_matmul(ctx, u, u);                      /* [] */
    hess_tensor *out =
        hess_add(ctx, hess_mul(ctx, hess_sum_axis(ctx, C, 1), hess_add(ctx, d, e)), f); /* [2, 2] */
    assert_ok(ctx, hess_context_status(ctx));
    double v[40], jv[4], x0[40], xp[40], fp[4], fm[4];
    fill(&s, v, 40, -1, 1);
    const size_t N = hess_param_count(3, w);
    assert_int_equal(N, 24 + 8 + 4);
    assert_ok(ctx, hess_jvp(ctx, out, 3, w, v, jv));
    assert_int_equal(hess_params_get(3, w, x0), HESS_OK);
    const double h = 1e-6;
    for (int sg = 0; sg < 2; sg++) {
        for (size_t i = 0; i < N; i++)
            xp[i] = x0[i] + (sg ? -h : h) * v[i];
        assert_ok(ctx, hess_params_set(ctx, 3, w, xp));
        assert_ok(ctx, hess_recompute(ctx));
        memcpy(sg ? fm : fp, hess_tensor_data(out), 4 * sizeof(double));
    }
    for (int r = 0; r < 4; r++)
        assert_close(jv[r], (fp[r] - fm[r]) / (2 * h), 1e-7, 1e-8);
    hess_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_jvp_network),
        cmocka_unit_test(test_forward_jacobian_both_paths),
        cmocka_unit_test(test_forward_jacobian_of_identity_and_input),
        cmocka_unit_test(test_forward_hvp_fwd_matches_hvp),
        cmocka_unit_test(test_forward_stale_graph_is_refreshed),
        cmocka_unit_test(test_forward_detach_and_cut),
        cmocka_unit_test(test_forward_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
