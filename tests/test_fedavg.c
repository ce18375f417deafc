/*
 * test_fedavg.c -- the local steps of examples/per_fedavg (built from
 * examples/per_fedavg_lib.c) on a small synthetic federated set and a small
 * model of the same form (12 -> 6 -> 5 -> 3 with ELU, N = 131 parameters),
 * against formulas computed here independently, with a graph of the test's
 * own and the dense Hessian from hess_hessian:
 *   - the exact-HVP step is w - beta (g - alpha H g) to 1e-12, g the gradient
 *     at the personalised point w - alpha grad f(w, D) on D', H at w on D'';
 *   - the HF step approaches it as delta -> 0 as a central difference should:
 *     its error shrinks by 4 when delta halves (after checking that no ELU
 *     kink lies between w - delta g and w + delta g, where the Hessian jumps);
 *   - the FO step differs from it by exactly the Hessian term beta alpha H g;
 *   - FedAvg's step is w - beta grad f(w, D);
 *   - a client's graph is built once: after the first step of each kind, no
 *     step and no accuracy evaluation calls the allocator or adds a node;
 *   - the split is non-IID as asked, its shares disjoint and reproducible, and
 *     the keyed streams depend on their keys only.
 * Needs no data package.
 */
#include "check.h"
#include "per_fedavg_lib.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IN      12
#define CLASSES 3
#define BATCH   8

static const pf_arch ARCH = {IN, 6, 5, CLASSES, 1.0};

/* The federation every test uses: 3 clients with 2 of the 3 classes each. */
typedef struct world {
    pf_images train, test;
    pf_share *shares;
    size_t N;
} world;

static void world_make(world *w)
{
    assert_int_equal(pf_images_synthetic(40, IN, CLASSES, 99, 0, &w->train), 0);
    assert_int_equal(pf_images_synthetic(10, IN, CLASSES, 99, 1, &w->test), 0);
    w->shares = pf_split(&w->train, &w->test, 3, 2, 5);
    assert_non_null(w->shares);
    w->N = pf_param_count(&ARCH);
    assert_int_equal(w->N, 12 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3);
}

static void world_free(world *w)
{
    pf_shares_free(w->shares, 3);
    pf_images_free(&w->train);
    pf_images_free(&w->test);
}

/* ------------------------------------------------------------------------ */
/* The reference: the loss of a minibatch built here with the public ops    */
/* ------------------------------------------------------------------------ */

typedef struct ref {
    hess_context *ctx;
    hess_tensor *p[6];
    hess_tensor *z1, *z2; /* the pre-activations */
    hess_tensor *loss;
} ref;

/* The minibatch's loss at w (flat), in a context of its own. */
static void
ref_build(ref *r, const world *w, const pf_share *sh, const size_t *batch, const double *flat)
{
    assert_int_equal(hess_context_create(NULL, &r->ctx), HESS_OK);
    hess_context *ctx = r->ctx;
    const int64_t shapes[6][2] = {{6, IN}, {6, 0}, {5, 6}, {5, 0}, {CLASSES, 5}, {CLASSES, 0}};
    for (int i = 0; i < 6; i++) {
        r->p[i] = hess_param_new(ctx, i % 2 ? 1 : 2, shapes[i], flat);
        flat += hess_tensor_numel(r->p[i]);
    }
    double x[BATCH * IN], y[BATCH];
    for (int b = 0; b < BATCH; b++) {
        const size_t s = sh->train[batch[b]];
        for (int j = 0; j < IN; j++)
            x[b * IN + j] = w->train.x[s * IN + (size_t)j] / 255.0;
        y[b] = w->train.y[s];
    }
    const int64_t xs[2] = {BATCH, IN};
    hess_tensor *X = hess_tensor_new(ctx, 2, xs, x), *Y = hess_tensor_new(ctx, 1, xs, y);
    r->z1 = hess_linear(ctx, X, r->p[0], r->p[1]);
    r->z2 = hess_linear(ctx, hess_elu(ctx, r->z1, 1.0), r->p[2], r->p[3]);
    hess_tensor *logits = hess_linear(ctx, hess_elu(ctx, r->z2, 1.0), r->p[4], r->p[5]);
    r->loss = hess_cross_entropy(ctx, logits, Y);
    assert_ok(ctx, hess_context_status(ctx));
}

static void
ref_grad(const world *w, const pf_share *sh, const size_t *batch, const double *at, double *g)
{
    ref r;
    ref_build(&r, w, sh, batch, at);
    hess_tensor *gr[6];
    assert_ok(r.ctx, hess_grad(r.ctx, r.loss, 6, r.p, gr, 0));
    assert_ok(r.ctx, hess_params_get(6, gr, g));
    hess_context_destroy(r.ctx);
}

/* H (N x N) at `at` on the minibatch. */
static void
ref_hessian(const world *w, const pf_share *sh, const size_t *batch, const double *at, double *H)
{
    ref r;
    ref_build(&r, w, sh, batch, at);
    assert_ok(r.ctx, hess_hessian(r.ctx, r.loss, 6, r.p, H));
    hess_context_destroy(r.ctx);
}

/* Whether every pre-activation keeps its sign between a and b. */
static bool same_signs(
    const world *w, const pf_share *sh, const size_t *batch, const double *a, const double *b)
{
    ref ra, rb;
    ref_build(&ra, w, sh, batch, a);
    ref_build(&rb, w, sh, batch, b);
    bool same = true;
    for (int l = 0; l < 2; l++) {
        const hess_tensor *za = l ? ra.z2 : ra.z1, *zb = l ? rb.z2 : rb.z1;
        for (int64_t i = 0; i < hess_tensor_numel(za); i++)
            same = same && (hess_tensor_data(za)[i] > 0) == (hess_tensor_data(zb)[i] > 0);
    }
    hess_context_destroy(ra.ctx);
    hess_context_destroy(rb.ctx);
    return same;
}

static double max_abs_diff(const double *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

/* The three minibatches of one step, drawn as per_fedavg draws them. */
static void draw(const pf_share *sh, uint64_t key, size_t *D)
{
    pf_rng r = pf_rng_key(42, key, 0, PF_STREAM_LOCAL);
    for (int j = 0; j < 3; j++)
        pf_rng_sample(&r, sh->n_train, BATCH, D + j * BATCH);
}

/* ------------------------------------------------------------------------ */
/* The steps against the formulas                                           */
/* ------------------------------------------------------------------------ */

static void test_fedavg_steps_against_dense_hessian(void **state)
{
    (void)state;
    world w;
    world_make(&w);
    const pf_share *sh = &w.shares[1];
    char err[400];
    pf_worker *wk = pf_worker_new(&ARCH, BATCH, &w.train, &w.test, sh, NULL, err, sizeof err);
    if (!wk)
        fail_msg("%s", err);
    const size_t N = w.N;
    double *w0 = malloc(N * sizeof *w0), *step = malloc(N * sizeof *step);
    double *g1 = malloc(N * sizeof *g1), *wt = malloc(N * sizeof *wt);
    double *g2 = malloc(N * sizeof *g2), *Hg = malloc(N * sizeof *Hg);
    double *H = malloc(N * N * sizeof *H), *want = malloc(N * sizeof *want);
    double *w_fo = malloc(N * sizeof *w_fo), *w_hvp = malloc(N * sizeof *w_hvp);
    assert_true(w0 && step && g1 && wt && g2 && Hg && H && want && w_fo && w_hvp);
    pf_init_params(&ARCH, 3, w0);
    const pf_hyper hp = {.alpha = 0.3, .beta = 0.2, .delta = 0};
    const double deltas[3] = {0.04, 0.02, 0.01};
    /* the formula, computed here: g2 at the personalised point, H at w0.  The
     * minibatches are the first draw whose D'' has no ELU kink between
     * w0 - delta g2 and w0 + delta g2 for the largest delta (where H jumps,
     * a central difference is no longer O(delta^2)) */
    size_t D[3 * BATCH];
    uint64_t key = 0;
    bool smooth = false;
    while (!smooth && ++key <= 64) {
        draw(sh, key, D);
        ref_grad(&w, sh, D, w0, g1);
        for (size_t i = 0; i < N; i++)
            wt[i] = w0[i] - hp.alpha * g1[i];
        ref_grad(&w, sh, D + BATCH, wt, g2);
        for (size_t i = 0; i < N; i++) {
            step[i] = w0[i] + deltas[0] * g2[i];
            want[i] = w0[i] - deltas[0] * g2[i];
        }
        smooth = same_signs(&w, sh, D + 2 * BATCH, step, want);
    }
    if (!smooth)
        fail_msg("every draw puts an ELU kink within delta = %g of w0", deltas[0]);
    printf("minibatches of draw %llu (no kink within delta = %g)\n", (unsigned long long)key,
           deltas[0]);
    ref_hessian(&w, sh, D + 2 * BATCH, w0, H);
    for (size_t i = 0; i < N; i++) {
        double s = 0;
        for (size_t j = 0; j < N; j++)
            s += H[i * N + j] * g2[j];
        Hg[i] = s;
        want[i] = w0[i] - hp.beta * (g2[i] - hp.alpha * Hg[i]);
    }

    /* exact HVP */
    double loss = 0;
    memcpy(w_hvp, w0, N * sizeof *w0);
    assert_int_equal(pf_local_step(wk, PF_HVP, &hp, w_hvp, D, D + BATCH, D + 2 * BATCH, &loss), 0);
    const double e_hvp = max_abs_diff(w_hvp, want, N);
    printf("exact HVP step vs w - beta (g - alpha H g) with the dense H: max |diff| = %.3g\n",
           e_hvp);
    assert_true(e_hvp <= 1e-12);
    assert_true(max_abs_diff(w_hvp, w0, N) > 1e-3); /* the step is not nothing */
    double l_ref;
    {
        ref r;
        ref_build(&r, &w, sh, D, w0);
        l_ref = hess_tensor_data(r.loss)[0];
        hess_context_destroy(r.ctx);
    }
    assert_close(loss, l_ref, 1e-14, 0);

    /* FO: exactly the Hessian term away */
    memcpy(w_fo, w0, N * sizeof *w0);
    assert_int_equal(pf_local_step(wk, PF_FO, &hp, w_fo, D, D + BATCH, D + 2 * BATCH, &loss), 0);
    for (size_t i = 0; i < N; i++)
        step[i] = w_fo[i] + hp.beta * hp.alpha * Hg[i];
    const double e_fo = max_abs_diff(step, w_hvp, N);
    printf("FO step + beta alpha H g vs the exact HVP step: max |diff| = %.3g "
           "(the Hessian term: max %.3g)\n",
           e_fo, max_abs_diff(w_fo, w_hvp, N));
    assert_true(e_fo <= 1e-12);
    assert_true(max_abs_diff(w_fo, w_hvp, N) > 1e-4);

    /* HF: a central difference, error O(delta^2) */
    double err_hf[3];
    for (int k = 0; k < 3; k++) {
        pf_hyper hf = hp;
        hf.delta = deltas[k];
        memcpy(step, w0, N * sizeof *w0);
        assert_int_equal(pf_local_step(wk, PF_HF, &hf, step, D, D + BATCH, D + 2 * BATCH, &loss),
                         0);
        err_hf[k] = max_abs_diff(step, w_hvp, N);
        printf("HF step, delta = %-5g: max |diff| to the exact HVP step = %.4g%s", deltas[k],
               err_hf[k], k ? "" : "\n");
        if (k)
            printf("  (ratio to the previous delta: %.3f)\n", err_hf[k - 1] / err_hf[k]);
    }
    for (int k = 1; k < 3; k++) {
        const double ratio = err_hf[k - 1] / err_hf[k];
        assert_true(ratio > 3.6 && ratio < 4.4);
    }
    assert_true(err_hf[2] < 1e-6);

    /* FedAvg: plain SGD with beta */
    memcpy(step, w0, N * sizeof *w0);
    assert_int_equal(pf_local_step(wk, PF_FEDAVG, &hp, step, D, D + BATCH, D + 2 * BATCH, &loss),
                     0);
    for (size_t i = 0; i < N; i++)
        want[i] = w0[i] - hp.beta * g1[i];
    assert_true(max_abs_diff(step, want, N) <= 1e-15);

    pf_worker_free(wk);
    free(w0), free(step), free(g1), free(wt), free(g2), free(Hg), free(H), free(want);
    free(w_fo), free(w_hvp);
    world_free(&w);
}

/* ------------------------------------------------------------------------ */
/* Built once: no allocation per step                                       */
/* ------------------------------------------------------------------------ */

typedef struct counter {
    size_t calls;
} counter;

static void *count_alloc(size_t size, void *user)
{
    ((counter *)user)->calls++;
    return malloc(size);
}

static void count_free(void *p, size_t size, void *user)
{
    (void)size, (void)user;
    free(p);
}

static void test_fedavg_no_allocation_per_step(void **state)
{
    (void)state;
    world w;
    world_make(&w);
    counter c = {0};
    const hess_config cfg = {.alloc = count_alloc, .free = count_free, .user = &c};
    char err[400];
    pf_worker *wk =
        pf_worker_new(&ARCH, BATCH, &w.train, &w.test, &w.shares[0], &cfg, err, sizeof err);
    if (!wk)
        fail_msg("%s", err);
    double *v = malloc(w.N * sizeof *v);
    assert_non_null(v);
    pf_init_params(&ARCH, 8, v);
    const pf_hyper hp = {.alpha = 0.1, .beta = 0.1, .delta = 1e-3};
    size_t D[3 * BATCH];
    double loss, acc;
    /* the first step of each kind, and an evaluation */
    for (int a = PF_FEDAVG; a <= PF_HVP; a++) {
        draw(&w.shares[0], (uint64_t)a, D);
        assert_int_equal(pf_local_step(wk, (pf_algo)a, &hp, v, D, D + BATCH, D + 2 * BATCH, &loss),
                         0);
    }
    assert_int_equal(pf_personal_accuracy(wk, v, hp.alpha, D, &acc), 0);
    const size_t calls = c.calls, bytes = hess_context_bytes(pf_worker_context(wk));
    const int64_t nodes = hess_context_mark(pf_worker_context(wk)).nodes;
    for (int rep = 0; rep < 5; rep++)
        for (int a = PF_FEDAVG; a <= PF_HVP; a++) {
            draw(&w.shares[0], (uint64_t)(10 + 4 * rep + a), D);
            assert_int_equal(
                pf_local_step(wk, (pf_algo)a, &hp, v, D, D + BATCH, D + 2 * BATCH, &loss), 0);
            assert_int_equal(pf_personal_accuracy(wk, v, hp.alpha, D + BATCH, &acc), 0);
            assert_true(acc >= 0 && acc <= 1);
        }
    printf("allocator calls: %zu to build the graph and take the first steps, %zu in the 20 "
           "steps and evaluations after\n",
           calls, c.calls - calls);
    assert_int_equal(c.calls, calls);
    assert_int_equal(hess_context_bytes(pf_worker_context(wk)), bytes);
    assert_int_equal(hess_context_mark(pf_worker_context(wk)).nodes, nodes);
    pf_worker_free(wk);
    free(v);
    world_free(&w);
}

/* ------------------------------------------------------------------------ */
/* The split and the streams                                                */
/* ------------------------------------------------------------------------ */

static void test_fedavg_split(void **state)
{
    (void)state;
    pf_images tr, te;
    assert_int_equal(pf_images_synthetic(30, 4, 10, 1, 0, &tr), 0);
    assert_int_equal(pf_images_synthetic(10, 4, 10, 1, 1, &te), 0);
    const int n = 20, k = 2;
    pf_share *s = pf_split(&tr, &te, n, k, 11), *again = pf_split(&tr, &te, n, k, 11);
    assert_non_null(s);
    assert_non_null(again);
    unsigned char *seen = calloc(tr.n, 1);
    assert_non_null(seen);
    size_t total = 0;
    int holders[10] = {0};
    for (int i = 0; i < n; i++) {
        assert_int_equal(s[i].n_classes, k);
        assert_true(s[i].classes[0] != s[i].classes[1]);
        holders[s[i].classes[0]]++, holders[s[i].classes[1]]++;
        assert_int_equal(s[i].n_train, again[i].n_train);
        assert_memory_equal(s[i].train, again[i].train, s[i].n_train * sizeof *s[i].train);
        for (size_t j = 0; j < s[i].n_train; j++) { /* its classes only, no sample twice */
            const size_t x = s[i].train[j];
            assert_true(tr.y[x] == s[i].classes[0] || tr.y[x] == s[i].classes[1]);
            assert_int_equal(seen[x], 0);
            seen[x] = 1;
        }
        for (size_t j = 0; j < s[i].n_test; j++)
            assert_true(te.y[s[i].test[j]] == s[i].classes[0] ||
                        te.y[s[i].test[j]] == s[i].classes[1]);
        total += s[i].n_train;
    }
    assert_int_equal(total, tr.n); /* every sample dealt: 4 holders per class */
    for (int c = 0; c < 10; c++)
        assert_int_equal(holders[c], n * k / 10);
    pf_shares_free(s, n);
    pf_shares_free(again, n);
    free(seen);
    pf_images_free(&tr);
    pf_images_free(&te);

    /* streams: reproducible, different keys differ, samples distinct */
    pf_rng a = pf_rng_key(1, 2, 3, PF_STREAM_LOCAL), b = pf_rng_key(1, 2, 3, PF_STREAM_LOCAL);
    pf_rng c = pf_rng_key(1, 3, 2, PF_STREAM_LOCAL);
    assert_true(pf_rng_next(&a) == pf_rng_next(&b));
    assert_true(pf_rng_next(&a) != pf_rng_next(&c));
    size_t pick[50];
    pf_rng_sample(&a, 60, 50, pick);
    for (int i = 0; i < 50; i++) {
        assert_true(pick[i] < 60);
        for (int j = 0; j < i; j++)
            assert_true(pick[i] != pick[j]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fedavg_steps_against_dense_hessian),
        cmocka_unit_test(test_fedavg_no_allocation_per_step),
        cmocka_unit_test(test_fedavg_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
