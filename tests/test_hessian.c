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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_seed_ann),
        cmocka_unit_test(test_ref_seed_ann_sigmoid),
        cmocka_unit_test(test_ref_mlp_tanh_mse_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
