/*
 * test_oom.c -- out of memory, everywhere.  A test allocator (the context's
 * alloc/free hooks, through cmocka's test_malloc so that cmocka sees leaks)
 * counts live bytes and fails the k-th allocation.  For every k until a run no
 * longer reaches the k-th allocation, a whole workflow runs: create, forward
 * of a 2-layer tanh MLP, hess_grad, hess_hvp, hess_hessian, hess_hessian_diag,
 * hess_hessian_diag_tensors, hess_hessian_block, hess_hvp_batch, mark and
 * rewind, rebuild, destroy.  Each run must end in success or HESS_ERR_NOMEM
 * with a message, leave earlier tensors unchanged, keep hess_context_bytes
 * equal to the allocator's live count, and leak nothing; after
 * hess_context_clear_error, with the allocator no longer failing, the same
 * context must complete the workflow with results equal to a reference run.
 * The same is done failing every allocation from the k-th on, and with the
 * byte limit hess_config.max_bytes swept over a range of limits.
 */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* The failing allocator                                                    */
/* ------------------------------------------------------------------------ */

typedef struct falloc {
    size_t live, peak;
    long count;   /* allocations asked for */
    long fail_at; /* fail this one (1-based); 0 = never */
    int sticky;   /* also fail every later one */
    long failed;  /* allocations refused */
} falloc;

static void *f_alloc(size_t size, void *user)
{
    falloc *a = user;
    a->count++;
    if (a->fail_at && (a->count == a->fail_at || (a->sticky && a->count > a->fail_at))) {
        a->failed++;
        return NULL;
    }
    void *p = test_malloc(size);
    a->live += size;
    if (a->live > a->peak)
        a->peak = a->live;
    return p;
}

static void f_free(void *p, size_t size, void *user)
{
    falloc *a = user;
    assert_true(a->live >= size);
    a->live -= size;
    test_free(p);
}

/* ------------------------------------------------------------------------ */
/* The workflow                                                             */
/* ------------------------------------------------------------------------ */

#define NB   5                                  /* batch */
#define NIN  3                                  /* inputs */
#define NH   4                                  /* hidden units */
#define NOUT 2                                  /* outputs */
#define N    (NH * NIN + NH + NOUT * NH + NOUT) /* parameters: 26 */
#define M    3                                  /* directions of hvp_batch */

typedef struct results {
    double loss, loss2;
    double g[N], hv[N], H[N * N], diag[N], diagt[N], blk[NH * NIN * NOUT * NH], HV[M * N];
    double jv, J[NB * NOUT * N], hvf[N], gv[N], ggnd[N], dbp[N], dex[N], H2[N * N];
} results;

static double W1[NH * NIN], B1[NH], W2[NOUT * NH], B2[NOUT], X[NB * NIN], Y[NB * NOUT];
static double V[M * N];
static hess_tensor *g_out; /* the network's output, made by forward() */

static void init_data(void)
{
    uint64_t s = 0x9e3779b97f4a7c15u;
    double *all[] = {W1, B1, W2, B2, X, Y, V};
    const size_t len[] = {NH * NIN, NH, NOUT * NH, NOUT, NB * NIN, NB * NOUT, M * N};
    for (size_t j = 0; j < sizeof all / sizeof all[0]; j++)
        for (size_t i = 0; i < len[j]; i++)
            all[j][i] = rnd_uniform(&s, -1.0, 1.0);
}

/* The tensors a run has made so far, to check they survive a failure. */
typedef struct made {
    const hess_tensor *t[8];
    double *copy[8];
    int n;
} made;

static void made_add(made *m, const hess_tensor *t)
{
    const size_t bytes = (size_t)hess_tensor_numel(t) * sizeof(double);
    m->t[m->n] = t;
    m->copy[m->n] = malloc(bytes);
    assert_non_null(m->copy[m->n]);
    memcpy(m->copy[m->n], hess_tensor_data(t), bytes);
    m->n++;
}

static void made_check_free(made *m)
{
    for (int i = 0; i < m->n; i++) {
        assert_memory_equal(hess_tensor_data(m->t[i]), m->copy[i],
                            (size_t)hess_tensor_numel(m->t[i]) * sizeof(double));
        free(m->copy[i]);
    }
    m->n = 0;
}

static hess_tensor *
forward(hess_context *ctx, hess_tensor *const p[4], hess_tensor *x, hess_tensor *y)
{
    hess_tensor *h = hess_tanh(ctx, hess_linear(ctx, x, p[0], p[1]));
    g_out = hess_linear(ctx, h, p[2], p[3]);
    return hess_mse_loss(ctx, g_out, y);
}

/* The distinct messages seen, up to the first digit (sizes vary). */
static char g_sites[64][96];
static int g_n_sites;

static void note_site(const char *msg)
{
    char key[96];
    size_t n = 0;
    while (msg[n] && (msg[n] < '0' || msg[n] > '9') && n + 1 < sizeof key) {
        key[n] = msg[n];
        n++;
    }
    key[n] = '\0';
    for (int i = 0; i < g_n_sites; i++)
        if (!strcmp(g_sites[i], key))
            return;
    if (g_n_sites < 64)
        snprintf(g_sites[g_n_sites++], sizeof g_sites[0], "%s", key);
}

/* Checks the state after a step failed: HESS_ERR_NOMEM with a message. */
static hess_status failed_step(hess_context *ctx, hess_status st)
{
    if (st == HESS_OK)
        st = hess_context_status(ctx);
    assert_int_equal(st, HESS_ERR_NOMEM);
    assert_int_equal(hess_context_status(ctx), HESS_ERR_NOMEM);
    const char *msg = hess_context_errmsg(ctx);
    assert_non_null(strstr(msg, "out of memory"));
    assert_non_null(strstr(msg, "hess_"));
    note_site(msg);
    return st;
}

#define STEP(call)                                                                                 \
    do {                                                                                           \
        hess_status st_ = (call);                                                                  \
        if (st_ != HESS_OK || hess_context_status(ctx) != HESS_OK) {                               \
            st_ = failed_step(ctx, st_);                                                           \
            made_check_free(&mk);                                                                  \
            return st_;                                                                            \
        }                                                                                          \
    } while (0)

#define BUILD(lhs, expr)                                                                           \
    do {                                                                                           \
        lhs = (expr);                                                                              \
        if (!(lhs)) {                                                                              \
            hess_status st_ = failed_step(ctx, HESS_OK);                                           \
            made_check_free(&mk);                                                                  \
            return st_;                                                                            \
        }                                                                                          \
    } while (0)

static void copy_grads(double *dst, hess_tensor *const g[4])
{
    for (int i = 0; i < 4; i++) {
        const size_t n = (size_t)hess_tensor_numel(g[i]);
        memcpy(dst, hess_tensor_data(g[i]), n * sizeof *dst);
        dst += n;
    }
}

/* The whole workflow on ctx; HESS_OK, or HESS_ERR_NOMEM at the first failed step. */
static hess_status workflow(hess_context *ctx, results *r, const falloc *a)
{
    made mk = {0};
    hess_tensor *p[4], *x, *y, *loss, *g[4], *dt[4];
    memset(r, 0, sizeof *r);
    BUILD(p[0], hess_param_new(ctx, 2, (const int64_t[]){NH, NIN}, W1));
    BUILD(p[1], hess_param_new(ctx, 1, (const int64_t[]){NH}, B1));
    BUILD(p[2], hess_param_new(ctx, 2, (const int64_t[]){NOUT, NH}, W2));
    BUILD(p[3], hess_param_new(ctx, 1, (const int64_t[]){NOUT}, B2));
    BUILD(x, hess_tensor_new(ctx, 2, (const int64_t[]){NB, NIN}, X));
    BUILD(y, hess_tensor_new(ctx, 2, (const int64_t[]){NB, NOUT}, Y));
    for (int i = 0; i < 4; i++)
        made_add(&mk, p[i]);
    made_add(&mk, x);
    made_add(&mk, y);
    const hess_mark m0 = hess_context_mark(ctx);
    BUILD(loss, forward(ctx, p, x, y));
    r->loss = hess_tensor_data(loss)[0];
    made_add(&mk, loss);
    assert_int_equal(hess_context_bytes(ctx), a->live);

    STEP(hess_grad(ctx, loss, 4, p, g, 0));
    copy_grads(r->g, g);
    STEP(hess_hvp(ctx, loss, 4, p, V, r->hv));
    STEP(hess_hessian(ctx, loss, 4, p, r->H));
    STEP(hess_hessian_diag(ctx, loss, 4, p, r->diag));
    STEP(hess_hessian_diag_tensors(ctx, loss, 4, p, dt));
    copy_grads(r->diagt, dt);
    STEP(hess_hessian_block(ctx, loss, p[0], p[2], r->blk));
    STEP(hess_hvp_batch(ctx, loss, 4, p, M, V, NULL, r->HV));
    /* forward mode, the GGN, the diagonal by both methods and two sweeps'
     * threads (whose replicas may fail to allocate: fewer threads, same bits) */
    STEP(hess_jvp(ctx, loss, 4, p, V, &r->jv));
    STEP(hess_jacobian(ctx, g_out, 4, p, r->J));
    STEP(hess_hvp_fwd(ctx, loss, 4, p, V, r->hvf));
    STEP(hess_ggn_vp(ctx, loss, g_out, 4, p, V, r->gv));
    STEP(hess_ggn_diag(ctx, loss, g_out, 4, p, r->ggnd));
    hess_hessian_opts o = {0};
    o.method = HESS_DIAG_BACKPROP;
    STEP(hess_hessian_diag_ex(ctx, loss, 4, p, &o, r->dbp));
    hess_tensor *pt[2] = {p[2], p[0]}; /* out of tape order: the explicit sweep too */
    STEP(hess_hessian_diag_ex(ctx, hess_add(ctx, loss, hess_sum(ctx, hess_mul(ctx, p[0], p[0]))), 2,
                              pt, &o, r->dex));
    o.method = 0;
    o.n_threads = 2;
    o.block_rows = 5;
    STEP(hess_hessian_ex(ctx, loss, 4, p, &o, r->H2));
    assert_int_equal(hess_context_bytes(ctx), a->live);

    /* back to before the forward pass (which frees the loss), and the same loss again */
    made_check_free(&mk);
    for (int i = 0; i < 4; i++)
        made_add(&mk, p[i]);
    made_add(&mk, x);
    made_add(&mk, y);
    STEP(hess_context_rewind(ctx, m0));
    BUILD(loss, forward(ctx, p, x, y));
    r->loss2 = hess_tensor_data(loss)[0];
    made_check_free(&mk);
    return HESS_OK;
}

static void check_results(const results *got, const results *ref)
{
    /* the same arithmetic in the same order: equal bit for bit */
    assert_memory_equal(got, ref, sizeof *got);
}

/* ------------------------------------------------------------------------ */
/* Sweeps                                                                   */
/* ------------------------------------------------------------------------ */

static results g_ref;
static falloc g_ref_alloc;

static hess_config cfg_for(falloc *a, size_t block_bytes, size_t max_bytes)
{
    hess_config cfg = {f_alloc, f_free, a, max_bytes, block_bytes, 0};
    return cfg;
}

static void reference(size_t block_bytes)
{
    memset(&g_ref_alloc, 0, sizeof g_ref_alloc);
    hess_config cfg = cfg_for(&g_ref_alloc, block_bytes, 0);
    hess_context *ctx = NULL;
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    assert_ok(ctx, workflow(ctx, &g_ref, &g_ref_alloc));
    assert_true(g_ref.loss == g_ref.loss2);
    hess_context_destroy(ctx);
    assert_int_equal(g_ref_alloc.live, 0);
}

/* One run with the k-th allocation failing (and with sticky, all after it).
 * Returns 1 when the run never reached the k-th allocation. */
static int run_failing_at(long k, int sticky, size_t block_bytes)
{
    falloc a = {0, 0, 0, k, sticky, 0};
    hess_config cfg = cfg_for(&a, block_bytes, 0);
    hess_context *ctx = NULL;
    results r;
    hess_status st = hess_context_create(&cfg, &ctx);
    if (st != HESS_OK) {
        /* creation failed: nothing is held, and a new context does the work */
        assert_int_equal(st, HESS_ERR_NOMEM);
        assert_null(ctx);
        assert_int_equal(a.live, 0);
        a.fail_at = 0;
        assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
        assert_ok(ctx, workflow(ctx, &r, &a));
        check_results(&r, &g_ref);
        hess_context_destroy(ctx);
        assert_int_equal(a.live, 0);
        return 0;
    }
    st = workflow(ctx, &r, &a);
    const int reached = a.count >= k;
    assert_int_equal(hess_context_bytes(ctx), a.live);
    if (st == HESS_OK) {
        check_results(&r, &g_ref);
    } else {
        assert_int_equal(st, HESS_ERR_NOMEM);
        assert_true(reached);
        /* the same context, the allocator healthy again: the whole workflow */
        hess_context_clear_error(ctx);
        a.fail_at = 0;
        assert_ok(ctx, workflow(ctx, &r, &a));
        check_results(&r, &g_ref);
    }
    hess_context_destroy(ctx);
    assert_int_equal(a.live, 0);
    return !reached;
}

static void sweep_k(int sticky, size_t block_bytes)
{
    reference(block_bytes);
    const long total = g_ref_alloc.count;
    long k = 1;
    while (!run_failing_at(k, sticky, block_bytes)) {
        k++;
        assert_true(k <= 4 * total + 16); /* a run must end */
    }
    /* every allocation of the reference run was made to fail once */
    assert_true(k > total);
    print_message("  %s failure of allocation k = 1..%ld (block %zu bytes): all recovered\n",
                  sticky ? "sticky" : "one-shot", k - 1, block_bytes);
}

/* First arena block sizes: each moves the points where the arena needs a new
 * block, and so where in the workflow an allocation can fail. */
static const size_t block_sizes[] = {0,    32,   48,   64,   96,   128,   160,   192,
                                     256,  320,  384,  512,  640,  768,   1024,  1536,
                                     2048, 3072, 4096, 6144, 8192, 12288, 16384, 32768};
#define N_BLOCK_SIZES (sizeof block_sizes / sizeof block_sizes[0])

static void print_sites(void)
{
    print_message("  %d distinct out-of-memory messages:\n", g_n_sites);
    for (int i = 0; i < g_n_sites; i++)
        print_message("    %s\n", g_sites[i]);
}

static void test_fail_kth_allocation(void **state)
{
    (void)state;
    init_data();
    for (size_t i = 0; i < N_BLOCK_SIZES; i++)
        sweep_k(0, block_sizes[i]);
    print_sites();
}

static void test_fail_from_kth_allocation(void **state)
{
    (void)state;
    init_data();
    for (size_t i = 0; i < N_BLOCK_SIZES; i++)
        sweep_k(1, block_sizes[i]);
}

/* With a byte limit: success or HESS_ERR_NOMEM, never more than the limit
 * held, success whenever the limit is at least the reference run's peak, and
 * after clear_error the context still works within what it holds. */
static void run_with_limit(size_t limit, size_t block_bytes, size_t peak)
{
    falloc a = {0};
    hess_config cfg = cfg_for(&a, block_bytes, limit);
    hess_context *ctx = NULL;
    results r;
    hess_status st = hess_context_create(&cfg, &ctx);
    if (st != HESS_OK) {
        assert_int_equal(st, HESS_ERR_NOMEM);
        assert_null(ctx);
        assert_int_equal(a.live, 0);
        assert_true(limit < peak);
        return;
    }
    const hess_mark m0 = hess_context_mark(ctx);
    st = workflow(ctx, &r, &a);
    assert_true(a.peak <= limit);
    assert_int_equal(hess_context_bytes(ctx), a.live);
    if (st == HESS_OK) {
        check_results(&r, &g_ref);
    } else {
        assert_int_equal(st, HESS_ERR_NOMEM);
        if (limit >= peak)
            fail_msg("limit %zu >= peak %zu of the reference run, yet: %s", limit, peak,
                     hess_context_errmsg(ctx));
        hess_context_clear_error(ctx);
        /* a small computation in the blocks already held: done, or NOMEM again */
        assert_ok(ctx, hess_context_rewind(ctx, m0));
        hess_tensor *q = hess_param_new(ctx, 0, NULL, (const double[]){3.0});
        hess_tensor *yq = hess_square(ctx, q), *g = NULL;
        st = yq ? hess_grad(ctx, yq, 1, &q, &g, 0) : hess_context_status(ctx);
        if (st == HESS_OK)
            assert_true(hess_tensor_data(g)[0] == 6.0);
        else
            failed_step(ctx, st);
        assert_true(a.peak <= limit);
    }
    hess_context_destroy(ctx);
    assert_int_equal(a.live, 0);
}

static void sweep_limit(size_t block_bytes)
{
    reference(block_bytes);
    const size_t peak = g_ref_alloc.peak;
    const size_t top = peak + peak / 4 + 4096;
    const size_t step = top / 3000 > 8 ? top / 3000 : 8;
    for (size_t limit = step; limit <= top; limit += step) /* 0 would mean no limit */
        run_with_limit(limit, block_bytes, peak);
    /* and every byte around the reference peak */
    for (size_t limit = peak - 64; limit <= peak + 64; limit++)
        run_with_limit(limit, block_bytes, peak);
    print_message("  byte limits 0..%zu (block %zu bytes, reference peak %zu): all recovered\n",
                  top, block_bytes, peak);
}

static void test_byte_limit_sweep(void **state)
{
    (void)state;
    init_data();
    const size_t bs[] = {0, 64, 512, 4096};
    for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++)
        sweep_limit(bs[i]);
    print_sites();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_kth_allocation),
        cmocka_unit_test(test_fail_from_kth_allocation),
        cmocka_unit_test(test_byte_limit_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
