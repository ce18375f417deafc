/*
 * test_threads.c -- distinct contexts are fully independent: 8 threads, each
 * with its own context (and its own allocator hooks and user pointer), build
 * and differentiate their own models at the same time -- forward, gradient,
 * Hessian-vector product, batched HVPs, the full Hessian, rewinds -- for
 * several rounds.  Every result must be bit-identical (memcmp) to the same
 * model computed on one thread beforehand.  Run under ThreadSanitizer this
 * also shows the library has no shared mutable state.  POSIX threads rather
 * than C11 <threads.h>: ThreadSanitizer does not intercept glibc's
 * thrd_create (the threads it starts crash at their first instrumented call).
 */
#define _POSIX_C_SOURCE 200809L /* pthreads, sched_yield */
#include "check.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>

#define N_THREADS 8
#define ROUNDS    100
#define MAX_N     128

/* ------------------------------------------------------------------------ */
/* Allocator hooks with a per-context counter (malloc is thread-safe; cmocka's */
/* test_malloc is not, so it is not used here).                             */
/* ------------------------------------------------------------------------ */

typedef struct counter {
    size_t live;
    long calls;
    unsigned tag; /* which thread owns it: a hook called with another's is a bug */
} counter;

static _Thread_local unsigned t_tag;
static atomic_int g_wrong_user;

static void *c_alloc(size_t size, void *user)
{
    counter *c = user;
    if (c->tag != t_tag)
        atomic_fetch_add(&g_wrong_user, 1);
    c->live += size;
    c->calls++;
    return malloc(size);
}

static void c_free(void *p, size_t size, void *user)
{
    counter *c = user;
    if (c->tag != t_tag)
        atomic_fetch_add(&g_wrong_user, 1);
    c->live -= size;
    free(p);
}

/* ------------------------------------------------------------------------ */
/* A model per thread: Linear -> act -> Linear with a loss, sizes and        */
/* activation chosen by the thread's index                                  */
/* ------------------------------------------------------------------------ */

typedef struct results {
    size_t N;
    double loss, g[MAX_N], hv[MAX_N], HV[2 * MAX_N], H[MAX_N * MAX_N], diag[MAX_N];
} results;

typedef struct job {
    unsigned index;
    results ref; /* single-threaded */
    results got; /* concurrent, last round */
    int mismatches;
    hess_status status;
    char msg[320];
} job;

static hess_tensor *model(hess_context *ctx, unsigned t, hess_tensor *p[4], uint64_t *seed)
{
    const int64_t B = 3 + t % 3, in = 2 + t % 3, hid = 3 + t % 4, out = 1 + t % 3;
    double buf[64];
    const int64_t shapes[4][2] = {{hid, in}, {hid, 0}, {out, hid}, {out, 0}};
    for (int i = 0; i < 4; i++) {
        const int nd = shapes[i][1] ? 2 : 1;
        const int64_t n = nd == 2 ? shapes[i][0] * shapes[i][1] : shapes[i][0];
        for (int64_t j = 0; j < n; j++)
            buf[j] = rnd_uniform(seed, -1.0, 1.0);
        p[i] = hess_param_new(ctx, nd, shapes[i], buf);
    }
    for (int64_t j = 0; j < B * in; j++)
        buf[j] = rnd_uniform(seed, -2.0, 2.0);
    hess_tensor *x = hess_tensor_new(ctx, 2, (const int64_t[]){B, in}, buf);
    hess_tensor *h = hess_linear(ctx, x, p[0], p[1]);
    h = t % 2 ? hess_tanh(ctx, h) : hess_sigmoid(ctx, h);
    hess_tensor *o = hess_linear(ctx, h, p[2], p[3]);
    if (t % 3 == 2 && out > 1) {
        /* classification: cross-entropy against fixed classes */
        for (int64_t j = 0; j < B; j++)
            buf[j] = (double)(j % out);
        return hess_cross_entropy(ctx, o, hess_tensor_new(ctx, 1, (const int64_t[]){B}, buf));
    }
    for (int64_t j = 0; j < B * out; j++)
        buf[j] = rnd_uniform(seed, -1.0, 1.0);
    return hess_mse_loss(ctx, o, hess_tensor_new(ctx, 2, (const int64_t[]){B, out}, buf));
}

/* Builds and differentiates thread t's model in ctx. */
static hess_status compute(hess_context *ctx, unsigned t, results *r)
{
    uint64_t seed = 0x1234567u + 977u * t;
    hess_tensor *p[4], *g[4];
    const hess_mark m0 = hess_context_mark(ctx);
    hess_tensor *loss = model(ctx, t, p, &seed);
    if (!loss)
        return hess_context_status(ctx);
    r->N = hess_param_count(4, p);
    if (r->N > MAX_N)
        return HESS_ERR_ARG;
    r->loss = hess_tensor_data(loss)[0];
    hess_status st = hess_grad(ctx, loss, 4, p, g, HESS_CREATE_GRAPH);
    if (st != HESS_OK)
        return st;
    for (size_t i = 0, off = 0; i < 4; off += (size_t)hess_tensor_numel(g[i]), i++)
        memcpy(r->g + off, hess_tensor_data(g[i]),
               (size_t)hess_tensor_numel(g[i]) * sizeof(double));
    double v[2 * MAX_N];
    for (size_t i = 0; i < 2 * r->N; i++)
        v[i] = rnd_uniform(&seed, -1.0, 1.0);
    const hess_hessian_opts opts = {.block_rows = 1 + t % 3};
    if ((st = hess_hvp(ctx, loss, 4, p, v, r->hv)) != HESS_OK ||
        (st = hess_hvp_batch(ctx, loss, 4, p, 2, v, &opts, r->HV)) != HESS_OK ||
        (st = hess_hessian(ctx, loss, 4, p, r->H)) != HESS_OK ||
        (st = hess_hessian_diag_ex(ctx, loss, 4, p, &opts, r->diag)) != HESS_OK)
        return st;
    return hess_context_rewind(ctx, m0);
}

static bool same(const results *a, const results *b)
{
    return a->N == b->N && a->loss == b->loss && !memcmp(a->g, b->g, a->N * sizeof(double)) &&
           !memcmp(a->hv, b->hv, a->N * sizeof(double)) &&
           !memcmp(a->HV, b->HV, 2 * a->N * sizeof(double)) &&
           !memcmp(a->H, b->H, a->N * a->N * sizeof(double)) &&
           !memcmp(a->diag, b->diag, a->N * sizeof(double));
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                  */
/* ------------------------------------------------------------------------ */

static atomic_int g_ready;

static void *worker(void *arg)
{
    job *j = arg;
    t_tag = j->index + 1;
    /* start together, so that the threads overlap */
    atomic_fetch_add(&g_ready, 1);
    while (atomic_load(&g_ready) < N_THREADS)
        sched_yield();
    counter cnt = {0, 0, t_tag};
    hess_config cfg = {c_alloc, c_free, &cnt, 0, 0, 0};
    for (int round = 0; round < ROUNDS && j->status == HESS_OK; round++) {
        /* a fresh context every other round, else the same one after a rewind */
        hess_context *ctx = NULL;
        j->status = hess_context_create(&cfg, &ctx);
        if (j->status != HESS_OK)
            break;
        for (int rep = 0; rep < 2 && j->status == HESS_OK; rep++) {
            memset(&j->got, 0, sizeof j->got);
            j->status = compute(ctx, j->index, &j->got);
            if (j->status == HESS_OK && !same(&j->got, &j->ref))
                j->mismatches++;
        }
        if (j->status != HESS_OK)
            snprintf(j->msg, sizeof j->msg, "%s", hess_context_errmsg(ctx));
        hess_context_destroy(ctx);
        if (cnt.live != 0)
            j->mismatches += 1000;
    }
    return NULL;
}

static void test_threads_bit_identical(void **state)
{
    (void)state;
    job *jobs = calloc(N_THREADS, sizeof *jobs);
    assert_non_null(jobs);
    /* the reference, one model after another on this thread */
    for (unsigned t = 0; t < N_THREADS; t++) {
        jobs[t].index = t;
        t_tag = t + 1;
        counter cnt = {0, 0, t_tag};
        hess_config cfg = {c_alloc, c_free, &cnt, 0, 0, 0};
        hess_context *ctx = NULL;
        assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
        assert_ok(ctx, compute(ctx, t, &jobs[t].ref));
        hess_context_destroy(ctx);
        assert_int_equal(cnt.live, 0);
        /* sanity: the Hessian is symmetric and its diagonal is diag */
        const results *r = &jobs[t].ref;
        for (size_t a = 0; a < r->N; a++) {
            assert_true(r->H[a * r->N + a] == r->diag[a] ||
                        fabs(r->H[a * r->N + a] - r->diag[a]) <= 1e-12 * (1 + fabs(r->diag[a])));
            for (size_t b = 0; b < a; b++)
                assert_close(r->H[a * r->N + b], r->H[b * r->N + a], 1e-10, 1e-12);
        }
    }
    t_tag = 0;

    pthread_t th[N_THREADS];
    atomic_store(&g_ready, 0);
    for (unsigned t = 0; t < N_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, worker, &jobs[t]), 0);
    for (unsigned t = 0; t < N_THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);

    for (unsigned t = 0; t < N_THREADS; t++) {
        if (jobs[t].status != HESS_OK)
            fail_msg("thread %u: status %d: %s", t, jobs[t].status, jobs[t].msg);
        if (jobs[t].mismatches)
            fail_msg("thread %u: %d results differ from the single-threaded run (>= 1000: leak)", t,
                     jobs[t].mismatches);
    }
    assert_int_equal(atomic_load(&g_wrong_user), 0);
    print_message("  %d threads x %d rounds x 2 workflows: bit-identical to one thread\n",
                  N_THREADS, ROUNDS);
    free(jobs);
}

/* ------------------------------------------------------------------------ */
/* The library's own threads: the sweeps on opts.n_threads                  */
/* ------------------------------------------------------------------------ */

/* A two-layer tanh network, MSE, batch 6: N = 212. */
static hess_tensor *sweep_model(hess_context *ctx, hess_tensor *p[4])
{
    uint64_t s = 2024;
    double buf[256];
    const int64_t shapes[4][2] = {{16, 8}, {16, 0}, {4, 16}, {4, 0}};
    for (int i = 0; i < 4; i++) {
        const int nd = shapes[i][1] ? 2 : 1;
        const int64_t n = shapes[i][0] * (nd == 2 ? shapes[i][1] : 1);
        for (int64_t j = 0; j < n; j++)
            buf[j] = rnd_uniform(&s, -0.7, 0.7);
        p[i] = hess_param_new(ctx, nd, shapes[i], buf);
    }
    for (int j = 0; j < 48; j++)
        buf[j] = rnd_uniform(&s, -1, 1);
    hess_tensor *x = hess_tensor_new(ctx, 2, (const int64_t[]){6, 8}, buf);
    hess_tensor *y = hess_tensor_new(ctx, 2, (const int64_t[]){6, 4}, buf + 24);
    hess_tensor *h = hess_tanh(ctx, hess_linear(ctx, x, p[0], p[1]));
    return hess_mse_loss(ctx, hess_linear(ctx, h, p[2], p[3]), y);
}

typedef struct progress_log {
    size_t calls, last, stop_at;
    bool in_order;
} progress_log;

static int log_progress(size_t done, size_t total, void *user)
{
    progress_log *l = user;
    l->in_order = l->in_order && done > l->last && done <= total;
    l->last = done;
    return ++l->calls == l->stop_at;
}

/* The full Hessian, its diagonal by rows, a block, batched HVPs and a trace
 * estimate on 1, 2, 3 and 8 threads: the same bits; progress is reported in
 * order, once per block, and cancelling stops with the reported rows done. */
static void test_threads_sweeps_bit_identical(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *p[4];
    hess_tensor *L = sweep_model(ctx, p);
    const size_t N = hess_param_count(4, p), m = 37;
    assert_int_equal(N, 212);
    double *H[2], *HV[2], *B[2], *V = malloc(m * N * sizeof *V), d[2][212], tr[2], se[2];
    const size_t nb = 128 * 64; /* the block of p[0] [16,8] with p[2] [4,16] */
    for (int i = 0; i < 2; i++) {
        H[i] = malloc(N * N * sizeof *H[i]);
        HV[i] = malloc(m * N * sizeof *HV[i]);
        B[i] = malloc(nb * sizeof *B[i]);
    }
    uint64_t s = 5;
    for (size_t i = 0; i < m * N; i++)
        V[i] = rnd_uniform(&s, -1, 1);
    const int threads[4] = {1, 2, 3, 8};
    for (int c = 0; c < 4; c++) {
        const int r = c > 0; /* 0: the one-thread reference */
        hess_hessian_opts o = {0};
        o.block_rows = 8; /* 27 blocks */
        o.n_threads = threads[c];
        assert_ok(ctx, hess_hessian_ex(ctx, L, 4, p, &o, H[r]));
        assert_ok(ctx, hess_hvp_batch(ctx, L, 4, p, m, V, &o, HV[r]));
        o.method = HESS_DIAG_ROWS;
        assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 4, p, &o, d[r]));
        o.method = 0;
        assert_ok(ctx, hess_hessian_block_ex(ctx, L, p[0], p[2], &o, B[r]));
        o.method = HESS_EST_HUTCHINSON;
        o.n_probes = 64;
        o.seed = 7;
        assert_ok(ctx, hess_trace_estimate(ctx, L, 4, p, &o, &tr[r], &se[r]));
        if (r) {
            assert_memory_equal(H[0], H[1], N * N * sizeof(double));
            assert_memory_equal(HV[0], HV[1], m * N * sizeof(double));
            assert_memory_equal(d[0], d[1], sizeof d[0]);
            assert_memory_equal(B[0], B[1], nb * sizeof(double));
            assert_memory_equal(&tr[0], &tr[1], sizeof tr[0]);
        }
    }
    /* progress on 2 threads: 27 calls, in order; cancelled at the 5th */
    progress_log log = {0, 0, 0, true};
    hess_hessian_opts o = {0};
    o.block_rows = 8;
    o.n_threads = 2;
    o.progress = log_progress;
    o.user = &log;
    assert_ok(ctx, hess_hessian_ex(ctx, L, 4, p, &o, H[1]));
    assert_int_equal(log.calls, 27);
    assert_true(log.in_order);
    assert_int_equal(log.last, N);
    log = (progress_log){0, 0, 5, true};
    for (size_t i = 0; i < N * N; i++)
        H[1][i] = 0.0;
    assert_int_equal(hess_hessian_ex(ctx, L, 4, p, &o, H[1]), HESS_ERR_CANCELLED);
    assert_int_equal(log.calls, 5);
    assert_memory_equal(H[0], H[1], 40 * N * sizeof(double)); /* rows 0..39 done */
    hess_context_clear_error(ctx);
    o.progress = NULL;
    o.n_threads = -1;
    assert_int_equal(hess_hessian_ex(ctx, L, 4, p, &o, H[1]), HESS_ERR_ARG);
    assert_non_null(strstr(hess_context_errmsg(ctx), "n_threads"));
    for (int i = 0; i < 2; i++)
        free(H[i]), free(HV[i]), free(B[i]);
    free(V);
    hess_context_destroy(ctx);
}

/* More threads asked for than the library runs (HESS_MAX_THREADS) and than
 * cores; a non-finite Hessian row met by a replica under HESS_CHECK_FINITE;
 * reshapes (views) among the replayed nodes. */
static void test_threads_limits(void **state)
{
    (void)state;
    /* 80 elements, one row per sweep: 79 blocks for 200 threads asked */
    hess_context *ctx = test_context();
    double x[80];
    for (int i = 0; i < 80; i++)
        x[i] = 0.5 + 0.01 * i;
    hess_tensor *p = hess_param_new(ctx, 2, (const int64_t[]){8, 10}, x);
    hess_tensor *r = hess_reshape(ctx, hess_tanh(ctx, p), 1, (const int64_t[]){80});
    hess_tensor *L = hess_sum(
        ctx, hess_square(ctx, hess_reshape(ctx, hess_mul(ctx, r, r), 2, (const int64_t[]){10, 8})));
    double *H1 = malloc(80 * 80 * sizeof *H1), *H2 = malloc(80 * 80 * sizeof *H2);
    hess_hessian_opts o = {0};
    o.block_rows = 1;
    o.n_threads = 1;
    assert_ok(ctx, hess_hessian_ex(ctx, L, 1, &p, &o, H1));
    o.n_threads = 200;
    assert_ok(ctx, hess_hessian_ex(ctx, L, 1, &p, &o, H2));
    assert_memory_equal(H1, H2, 80 * 80 * sizeof(double));
    hess_context_destroy(ctx);

    /* sum(a^1.5): finite gradient at a = 0, an infinite second derivative:
     * zeros in every block but the first, which the build evaluates */
    ctx = test_context_flags(HESS_CHECK_FINITE);
    for (int i = 0; i < 80; i++)
        x[i] = i >= 4 && i % 4 == 0 ? 0.0 : 1.0 + 0.01 * i;
    hess_tensor *a = hess_param_new(ctx, 1, (const int64_t[]){80}, x);
    hess_tensor *L2 = hess_sum(ctx, hess_pow(ctx, a, 1.5));
    o.block_rows = 4;
    o.n_threads = 2;
    assert_int_equal(hess_hessian_ex(ctx, L2, 1, &a, &o, H1), HESS_ERR_NONFINITE);
    assert_non_null(strstr(hess_context_errmsg(ctx), "hess_hessian"));
    assert_non_null(strstr(hess_context_errmsg(ctx), "non-finite"));
    hess_context_destroy(ctx);
    free(H1), free(H2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_limits),
        cmocka_unit_test(test_threads_bit_identical),
        cmocka_unit_test(test_threads_sweeps_bit_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
