/*
 * test_badinput.c -- the bad-input table: every public function of hessian.h
 * driven with a NULL context, NULL tensors and NULL output pointers, n = 0,
 * bad ranks, dimensions and element counts, shape mismatches for each op,
 * tensors of another context, tensors freed by hess_context_rewind, a
 * non-scalar loss, a parameter the loss does not use, and NaN/Inf values
 * (computed with by default, HESS_ERR_NONFINITE under HESS_CHECK_FINITE).
 *
 * Each row names the function called, the status expected and a word the
 * message must contain.  Every row checks
 *   - the status (returned, or hess_context_status after a builder's NULL),
 *   - that hess_context_errmsg names the function and says what was wrong,
 *   - that every tensor made before the call is unchanged (bit for bit),
 *   - that after hess_context_clear_error the same context builds and
 *     differentiates again with the exact earlier results.
 * Every row runs twice: on a clean context, and with an earlier error
 * pending, where op builders must keep the first error and the functions
 * that do work (hess_grad, hess_vjp, the Hessian functions) must return the
 * pending status and do nothing.  Each row is first run in a child process,
 * so that a crash fails that row alone instead of ending the table.
 */
#define _POSIX_C_SOURCE 200809L /* fork, waitpid, mkdtemp */
#include "check.h"

#include <ctype.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h> /* RUNNING_ON_VALGRIND */
#define HAVE_VALGRIND_H 1
#endif
#endif
#ifndef HAVE_VALGRIND_H
#define HAVE_VALGRIND_H 0
#endif

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define NP         4    /* parameters of the fixture model */
#define MAXN       16   /* largest parameter count a row uses */
#define WRONG      1000 /* "the call returned, but with a wrong result" */

/* ------------------------------------------------------------------------ */
/* A counting allocator through cmocka's test_malloc.  Requests above the cap */
/* fail (cmocka's test_malloc asserts instead of returning NULL).            */
/* ------------------------------------------------------------------------ */

typedef struct counter {
    size_t live;
    size_t cap;
} counter;

static void *c_alloc(size_t size, void *user)
{
    counter *c = user;
    if (size > c->cap)
        return NULL;
    void *p = test_malloc(size);
    if (p)
        c->live += size;
    return p;
}

static void c_free(void *p, size_t size, void *user)
{
    counter *c = user;
    c->live -= size;
    test_free(p);
}

/* ------------------------------------------------------------------------ */
/* The fixture: a small model and one tensor of every kind a row needs       */
/* ------------------------------------------------------------------------ */

#define MAX_SNAP 48

typedef struct fx {
    counter mem, mem2;
    hess_context *ctx, *other;
    hess_tensor *p[NP]; /* W1 [2,3], b1 [2], W2 [1,2], b2 [1] */
    hess_tensor *x, *y, *out, *loss;
    hess_tensor *u;  /* a parameter [2] the loss does not use */
    hess_tensor *c3; /* constant [3] */
    hess_tensor *m23, *m45, *m223, *m334, *v3, *v4, *s, *t3d;
    hess_tensor *logits, *tgt; /* [2,3], [2] = {0, 2} */
    hess_tensor *nan3, *inf3;
    hess_tensor *x4, *w4, *nan4;     /* [1,2,3,3], [2,2,2,2], [1,1,2,2] with a NaN: conv, pooling */
    hess_tensor *pr3;                /* probabilities {0, 0.5, 1}: BCE targets */
    hess_tensor *pz, *zloss, *sloss; /* pz = {0, 1}: sum(pz^1.5), sum(sqrt(pz)) */
    hess_tensor *pn, *nloss;         /* sum(pn^2 * nan3), default context only */
    hess_tensor *seed_out, *seed_bad;
    hess_tensor *fx3, *fparam, *floss; /* in the other context */
    hess_tensor *dead, *deadp;         /* freed by a rewind */
    hess_mark m_other;
    hess_tensor *pu[2], *pnull[2], *pc[2], *pf[2], *pd[2], *pz1[1], *pn1[1], *pdup[2];
    hess_tensor *loss11; /* the loss reshaped to [1,1]: a loss of one element */

    const hess_op_handle *op, *op_other; /* the user op "bmul" in ctx, and in other */
    hess_tensor *g[MAXN], *dt[MAXN];
    size_t N;
    double H0[11 * 11], g0[11];
    double dir[MAXN], dirs[2 * MAXN], obuf[4 * MAXN * MAXN], buf[MAXN];
    size_t last_n; /* doubles an adapter left in obuf */
    int n_snap;
    hess_tensor *snap_t[MAX_SNAP];
    int snap_nd[MAX_SNAP];
    int64_t snap_shape[MAX_SNAP][HESS_MAX_DIMS];
    double *snap_d[MAX_SNAP];
} fx;

static const double W1[6] = {0.5, -0.3, 0.8, -0.6, 0.2, 0.4}, B1[2] = {0.1, -0.2};
static const double W2[2] = {0.7, -0.9}, B2[1] = {0.05};
static const double X43[12] = {1, 2, -1, 0.5, -0.5, 1.5, -2, 0.3, 0.7, 1.1, -0.4, 0.9};
static const double Y41[4] = {0.3, -0.1, 0.6, 0.2};
static const double V3[3] = {1.5, -2.0, 0.25};

/* A user op for the rows of hess_op_register and hess_op_apply: bmul(a, b) =
 * a b, elementwise; its forward callback refuses the value 1234.5. */
static hess_status
bmul_forward(size_t n, const hess_op_array src[], const hess_op_array *out, double *y, void *user)
{
    (void)n, (void)user;
    for (int64_t i = 0; i < out->numel; i++) {
        if (src[0].data[i] == 1234.5 || src[1].data[i] == 1234.5)
            return HESS_ERR_ARG;
        y[i] = src[0].data[i] * src[1].data[i];
    }
    return HESS_OK;
}

static hess_status bmul_vjp(hess_context *ctx,
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

static const hess_op bmul_op = {.name = "bmul",
                                .arity = 2,
                                .flags = HESS_OP_ELEMENTWISE,
                                .forward = bmul_forward,
                                .vjp = bmul_vjp};

static hess_tensor *ones(hess_context *ctx, int nd, const int64_t *shape)
{
    double d[64];
    for (int i = 0; i < 64; i++)
        d[i] = 1.0 + 0.125 * i;
    return hess_tensor_new(ctx, nd, shape, d);
}

static void snap_add(fx *f, hess_tensor *t)
{
    if (t && f->n_snap < MAX_SNAP)
        f->snap_t[f->n_snap++] = t;
}

/* Builds the fixture without cmocka assertions (it also runs in a child);
 * returns 0, or -1 if something failed. */
static int fx_build(fx *f, unsigned flags)
{
    memset(f, 0, sizeof *f);
    f->mem.cap = f->mem2.cap = (size_t)1 << 30;
    hess_config cfg = {c_alloc, c_free, &f->mem, 0, 0, flags};
    if (hess_context_create(&cfg, &f->ctx) != HESS_OK)
        return -1;
    cfg.user = &f->mem2;
    cfg.flags = 0;
    if (hess_context_create(&cfg, &f->other) != HESS_OK)
        return -1;
    hess_context *c = f->ctx;
    f->p[0] = hess_param_new(c, 2, SHAPE(2, 3), W1);
    f->p[1] = hess_param_new(c, 1, SHAPE(2), B1);
    f->p[2] = hess_param_new(c, 2, SHAPE(1, 2), W2);
    f->p[3] = hess_param_new(c, 1, SHAPE(1), B2);
    f->x = hess_tensor_new(c, 2, SHAPE(4, 3), X43);
    f->y = hess_tensor_new(c, 2, SHAPE(4, 1), Y41);
    f->out = hess_linear(c, hess_tanh(c, hess_linear(c, f->x, f->p[0], f->p[1])), f->p[2], f->p[3]);
    f->loss = hess_mse_loss(c, f->out, f->y);
    f->u = hess_param_new(c, 1, SHAPE(2), NULL);
    f->c3 = hess_tensor_new(c, 1, SHAPE(3), V3);
    f->m23 = ones(c, 2, SHAPE(2, 3));
    f->m45 = ones(c, 2, SHAPE(4, 5));
    f->m223 = ones(c, 3, SHAPE(2, 2, 3));
    f->m334 = ones(c, 3, SHAPE(3, 3, 4));
    f->t3d = ones(c, 3, SHAPE(2, 1, 3));
    f->v3 = ones(c, 1, SHAPE(3));
    f->v4 = ones(c, 1, SHAPE(4));
    f->s = hess_scalar(c, 2.5);
    f->logits = hess_tensor_new(c, 2, SHAPE(2, 3), W1);
    f->tgt = hess_tensor_new(c, 1, SHAPE(2), (const double[]){0, 2});
    f->nan3 = hess_tensor_new(c, 1, SHAPE(3), (const double[]){1.0, NAN, 2.0});
    f->inf3 = hess_tensor_new(c, 1, SHAPE(3), (const double[]){1.0, INFINITY, -INFINITY});
    f->x4 = ones(c, 4, SHAPE(1, 2, 3, 3));
    f->w4 = ones(c, 4, SHAPE(2, 2, 2, 2));
    f->nan4 = hess_tensor_new(c, 4, SHAPE(1, 1, 2, 2), (const double[]){1.0, NAN, 2.0, 3.0});
    f->pr3 = hess_tensor_new(c, 1, SHAPE(3), (const double[]){0.0, 0.5, 1.0});
    f->pz = hess_param_new(c, 1, SHAPE(2), (const double[]){0.0, 1.0});
    f->zloss = hess_sum(c, hess_pow(c, f->pz, 1.5));
    f->sloss = hess_sum(c, hess_sqrt(c, f->pz));
    f->pn = hess_param_new(c, 1, SHAPE(3), V3);
    if (!(flags & HESS_CHECK_FINITE))
        f->nloss = hess_sum(c, hess_mul(c, hess_square(c, f->pn), f->nan3));
    f->seed_out = ones(c, 2, SHAPE(4, 1));
    f->seed_bad = ones(c, 1, SHAPE(3));
    f->fx3 = hess_tensor_new(f->other, 1, SHAPE(3), V3);
    f->fparam = hess_param_new(f->other, 1, SHAPE(3), V3);
    f->floss = hess_sum(f->other, hess_square(f->other, f->fparam));
    if (hess_op_register(c, &bmul_op, &f->op) != HESS_OK ||
        hess_op_register(f->other, &bmul_op, &f->op_other) != HESS_OK)
        return -1;
    f->m_other = hess_context_mark(f->other);

    hess_tensor *pu[2] = {f->p[0], f->u}, *pnull[2] = {f->p[0], NULL};
    hess_tensor *pc[2] = {f->p[0], f->c3}, *pf[2] = {f->p[0], f->fparam};
    memcpy(f->pu, pu, sizeof pu);
    memcpy(f->pnull, pnull, sizeof pnull);
    memcpy(f->pc, pc, sizeof pc);
    f->pdup[0] = f->pdup[1] = f->p[1];
    f->loss11 = hess_reshape(c, f->loss, 2, SHAPE(1, 1));
    memcpy(f->pf, pf, sizeof pf);
    f->pz1[0] = f->pz;
    f->pn1[0] = f->pn;
    for (int i = 0; i < MAXN; i++) {
        f->dir[i] = 1.0 - 0.1 * i;
        f->dirs[i] = 0.5 + 0.05 * i;
        f->dirs[MAXN + i] = -0.25 * i;
        f->buf[i] = 9.0;
    }

    f->N = hess_param_count(NP, f->p);
    if (f->N != 11 || hess_hessian(c, f->loss, NP, f->p, f->H0) != HESS_OK ||
        hess_grad(c, f->loss, NP, f->p, f->g, 0) != HESS_OK)
        return -1;
    for (size_t i = 0, off = 0; i < NP; off += (size_t)hess_tensor_numel(f->g[i]), i++)
        memcpy(f->g0 + off, hess_tensor_data(f->g[i]),
               (size_t)hess_tensor_numel(f->g[i]) * sizeof(double));

    /* Freed tensors, made after a 100-element pad so that the few bytes a
     * failing call may allocate before it looks at them do not reuse their
     * memory (which would make them look alive again, as documented). */
    hess_mark mk = hess_context_mark(c);
    hess_tensor *pad = hess_tensor_new(c, 1, SHAPE(100), NULL);
    f->dead = hess_tensor_new(c, 1, SHAPE(3), V3);
    f->deadp = hess_param_new(c, 1, SHAPE(3), V3);
    if (!pad || !f->dead || !f->deadp || hess_context_rewind(c, mk) != HESS_OK)
        return -1;
    f->pd[0] = f->p[0];
    f->pd[1] = f->deadp;

    if (hess_context_status(c) != HESS_OK || hess_context_status(f->other) != HESS_OK)
        return -1;
    hess_tensor *all[] = {
        f->p[0],  f->p[1], f->p[2],   f->p[3],     f->x,        f->y,    f->out,    f->loss,
        f->u,     f->c3,   f->m23,    f->m45,      f->m223,     f->m334, f->t3d,    f->v3,
        f->v4,    f->s,    f->logits, f->tgt,      f->nan3,     f->inf3, f->pz,     f->zloss,
        f->sloss, f->pn,   f->nloss,  f->seed_out, f->seed_bad, f->fx3,  f->fparam, f->floss,
        f->g[0],  f->g[1], f->g[2],   f->g[3],     f->x4,       f->w4,   f->nan4};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        snap_add(f, all[i]);
    for (int i = 0; i < f->n_snap; i++) {
        const hess_tensor *t = f->snap_t[i];
        f->snap_nd[i] = hess_tensor_ndim(t);
        memcpy(f->snap_shape[i], hess_tensor_shape(t), (size_t)f->snap_nd[i] * sizeof(int64_t));
        const size_t bytes = (size_t)hess_tensor_numel(t) * sizeof(double);
        f->snap_d[i] = malloc(bytes);
        if (!f->snap_d[i])
            return -1;
        memcpy(f->snap_d[i], hess_tensor_data(t), bytes);
    }
    return 0;
}

static void fx_free(fx *f)
{
    hess_context_destroy(f->ctx);
    hess_context_destroy(f->other);
    for (int i = 0; i < f->n_snap; i++)
        free(f->snap_d[i]);
}

/* Every tensor made before the call still has its rank, shape and values. */
static void check_unchanged(const fx *f, const char *row, const char *when)
{
    for (int i = 0; i < f->n_snap; i++) {
        const hess_tensor *t = f->snap_t[i];
        const int nd = f->snap_nd[i];
        if (hess_tensor_ndim(t) != nd ||
            memcmp(hess_tensor_shape(t), f->snap_shape[i], (size_t)nd * sizeof(int64_t)) != 0 ||
            memcmp(hess_tensor_data(t), f->snap_d[i],
                   (size_t)hess_tensor_numel(t) * sizeof(double)) != 0)
            fail_msg("%s: fixture tensor %d changed %s", row, i, when);
    }
}

/* After clear_error the context builds and differentiates again, and the
 * fixture's gradient and Hessian come out exactly as before. */
static void check_recovery(fx *f, const char *row)
{
    hess_context *c = f->ctx;
    if (hess_context_status(c) != HESS_OK || hess_context_errmsg(c)[0] != '\0')
        fail_msg("%s: error not cleared: %s", row, hess_context_errmsg(c));
    hess_tensor *q = hess_param_new(c, 1, SHAPE(3), (const double[]){1, -2, 3});
    hess_tensor *y = hess_sum(c, hess_square(c, q));
    hess_tensor *g[NP];
    double h[11 * 11];
    if (!y)
        fail_msg("%s: context unusable after clear_error: %s", row, hess_context_errmsg(c));
    assert_ok(c, hess_grad(c, y, 1, &q, g, 0));
    const double g_expect[3] = {2, -4, 6}, h_expect[9] = {2, 0, 0, 0, 2, 0, 0, 0, 2};
    assert_memory_equal(hess_tensor_data(g[0]), g_expect, sizeof g_expect);
    assert_ok(c, hess_hessian(c, y, 1, &q, h));
    assert_memory_equal(h, h_expect, sizeof h_expect);
    assert_ok(c, hess_hessian(c, f->loss, NP, f->p, h));
    assert_memory_equal(h, f->H0, sizeof f->H0);
    assert_ok(c, hess_grad(c, f->loss, NP, f->p, g, 0));
    for (size_t i = 0, off = 0; i < NP; off += (size_t)hess_tensor_numel(g[i]), i++)
        assert_memory_equal(hess_tensor_data(g[i]), f->g0 + off,
                            (size_t)hess_tensor_numel(g[i]) * sizeof(double));
}

/* ------------------------------------------------------------------------ */
/* Row bodies: helpers                                                      */
/* ------------------------------------------------------------------------ */

static bool has_nonfinite(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return true;
    return false;
}

/* A builder's outcome: HESS_OK for a tensor, else the context's status. */
static int built(const fx *f, hess_context *ctx, const hess_tensor *t)
{
    (void)f;
    return t ? HESS_OK : hess_context_status(ctx);
}

/* A builder that must succeed with a non-finite value somewhere. */
static int built_nonfinite(hess_context *ctx, const hess_tensor *t)
{
    if (!t)
        return hess_context_status(ctx);
    return has_nonfinite(hess_tensor_data(t), (size_t)hess_tensor_numel(t)) ? HESS_OK : WRONG;
}

/* A work function that must succeed with a non-finite value in its output. */
static int call_nonfinite(const fx *f, hess_status st)
{
    if (st != HESS_OK)
        return st;
    return has_nonfinite(f->obuf, f->last_n) ? HESS_OK : WRONG;
}

#define BUILD(e)       return built(f, f->ctx, (e))
#define BUILD_NOCTX(e) return built(f, NULL, (e))
#define BUILD_NF(e)    return built_nonfinite(f->ctx, (e))
#define CALL(e)        return (e)
#define CALL_NF(e)     return call_nonfinite(f, (e))

/* Adapters: the Hessian-family functions with one signature.  out = 0 passes
 * the function's output buffer, out = 1 passes NULL instead. */
typedef hess_status (*hfun)(
    fx *f, hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const p[], int null_out);

static hess_status
ad_hvp(fx *f, hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const p[], int null_out)
{
    f->last_n = hess_param_count(n, p);
    return hess_hvp(ctx, loss, n, p, f->dir, null_out ? NULL : f->obuf);
}

static hess_status ad_hvp_fwd(
    fx *f, hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const p[], int null_out)
{
    f->last_n = hess_param_count(n, p);
    return hess_hvp_fwd(ctx, loss, n, p, f->dir, null_out ? NULL : f->obuf);
}

/* hess_jvp and hess_jacobian of an output the wrt tensors do not reach: zeros. */
static hess_status forward_unused(fx *f, bool jac)
{
    for (size_t i = 0; i < 6; i++)
        f->obuf[i] = -1.0;
    hess_status st = jac ? hess_jacobian(f->ctx, f->out, 1, &f->u, f->obuf)
                         : hess_jvp(f->ctx, f->out, 1, &f->u, f->dir, f->obuf);
    if (st != HESS_OK)
        return st;
    const size_t m = (size_t)hess_tensor_numel(f->out) * (jac ? 2 : 1);
    for (size_t i = 0; i < m; i++)
        if (f->obuf[i] != 0.0)
            return WRONG;
    return HESS_OK;
}

static hess_status ad_hessian(
    fx *f, hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const p[], int null_out)
{
    f->last_n = hess_param_count(n, p) * hess_param_count(n, p);
    return hess_hessian(ctx, loss, n, p, null_out ? NULL : f->obuf);
}

static hess_status ad_hessian_ex(
    fx *f, hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const p[], int null_out)
{
    const hess_hessian_opts o = {.block_rows = 3};
    f->last_n = hess_param_count(n, p) * hess_param_count(n, p);
    return hess_hessian_ex(ctx, loss, n, p, &o, null_out ? NULL : f->obuf);
}

static hess_status
ad_diag(fx *f, hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const p[], int null_out)
{
    f->last_n = hess_param_count(n, p);
    return hess_hessian_diag(ctx, loss, n, p, null_out ? NULL : f->obuf);
}

static hess_status ad_diag_ex(
    fx *f, hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const p[], int null_out)
{
    const hess_hessian_opts o = {.block_rows = 2};
    f->last_n = hess_param_count(n, p);
    return hess_hessian_diag_ex(ctx, loss, n, p, &o, null_out ? NULL : f->obuf);
}

static hess_status ad_diag_tensors(
    fx *f, hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const p[], int null_out)
{
    hess_status st = hess_hessian_diag_tensors(ctx, loss, n, p, null_out ? NULL : f->dt);
    f->last_n = 0;
    for (size_t i = 0; st == HESS_OK && i < n; i++) {
        memcpy(f->obuf + f->last_n, hess_tensor_data(f->dt[i]),
               (size_t)hess_tensor_numel(f->dt[i]) * sizeof(double));
        f->last_n += (size_t)hess_tensor_numel(f->dt[i]);
    }
    return st;
}

static hess_status ad_hvp_batch(
    fx *f, hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const p[], int null_out)
{
    /* directions are rows of length N: take them from dirs with stride N */
    const size_t N = hess_param_count(n, p);
    double V[2 * MAXN];
    for (size_t i = 0; i < 2 * N && i < 2 * MAXN; i++)
        V[i] = f->dirs[i];
    f->last_n = 2 * N;
    return hess_hvp_batch(ctx, loss, n, p, 2, V, NULL, null_out ? NULL : f->obuf);
}

/* Rows with more to do than one call. */

static int create_one_hook(void)
{
    counter cnt = {0, (size_t)1 << 30};
    hess_config cfg = {c_alloc, NULL, &cnt, 0, 0, 0}; /* alloc without free */
    hess_context *ctx = (hess_context *)&cnt;
    hess_status st = hess_context_create(&cfg, &ctx);
    return ctx == NULL && cnt.live == 0 ? (int)st : WRONG;
}

static int create_limited(size_t max_bytes)
{
    counter cnt = {0, (size_t)1 << 30};
    hess_config cfg = {c_alloc, c_free, &cnt, max_bytes, 0, 0};
    hess_context *ctx = (hess_context *)&cnt;
    hess_status st = hess_context_create(&cfg, &ctx);
    if (st == HESS_OK)
        hess_context_destroy(ctx);
    return (st == HESS_OK || ctx == NULL) && cnt.live == 0 ? (int)st : WRONG;
}

static int accessors_null(void)
{
    return hess_tensor_ndim(NULL) == -1 && hess_tensor_shape(NULL) == NULL &&
                   hess_tensor_numel(NULL) == 0 && hess_tensor_data(NULL) == NULL &&
                   hess_tensor_is_param(NULL) == 0
               ? HESS_OK
               : WRONG;
}

static int param_count_bad(const fx *f)
{
    return hess_param_count(NP, NULL) == 0 && hess_param_count(2, f->pnull) == 0 &&
                   hess_param_count(0, f->p) == 0
               ? HESS_OK
               : WRONG;
}

static int context_null_queries(void)
{
    hess_context_destroy(NULL);
    hess_context_clear_error(NULL);
    const hess_mark m = hess_context_mark(NULL);
    const char *msg = hess_context_errmsg(NULL);
    return hess_context_status(NULL) == HESS_ERR_ARG && hess_context_bytes(NULL) == 0 &&
                   m.nodes == 0 && m.ctx_id == 0 && msg && msg[0] != '\0'
               ? HESS_OK
               : WRONG;
}

static int status_str_unknown(void)
{
    const char *s = hess_status_str((hess_status)-1234);
    return s && s[0] ? HESS_OK : WRONG;
}

/* A mark made after the current point (then rewound past) is refused. */
static int rewind_later(fx *f)
{
    const hess_mark early = hess_context_mark(f->ctx);
    if (!hess_scalar(f->ctx, 1.0))
        return WRONG;
    const hess_mark late = hess_context_mark(f->ctx);
    if (hess_context_rewind(f->ctx, early) != HESS_OK)
        return WRONG;
    return hess_context_rewind(f->ctx, late);
}

/* A mark whose point was rewound past, then overbuilt by a tensor with fewer
 * nodes but more bytes: it is no earlier point of this context any more. */
static int rewind_stale(fx *f)
{
    const hess_mark m0 = hess_context_mark(f->ctx);
    if (!hess_scalar(f->ctx, 1.0))
        return WRONG;
    const hess_mark m1 = hess_context_mark(f->ctx);
    if (!hess_scalar(f->ctx, 2.0) || hess_context_rewind(f->ctx, m0) != HESS_OK)
        return WRONG;
    hess_tensor *big = hess_tensor_new(f->ctx, 1, SHAPE(100), NULL);
    if (!big)
        return WRONG;
    hess_status st = hess_context_rewind(f->ctx, m1);
    if (st == HESS_OK) {
        /* big is still alive: it must keep its zeros when more is built */
        double fill[100];
        for (int i = 0; i < 100; i++)
            fill[i] = 42.0;
        if (!hess_tensor_new(f->ctx, 1, SHAPE(100), fill))
            return WRONG;
        for (int i = 0; i < 100; i++)
            if (hess_tensor_data(big)[i] != 0.0)
                return WRONG;
    }
    return st;
}

static int grad_unused_allowed(fx *f)
{
    hess_status st = hess_grad(f->ctx, f->loss, 2, f->pu, f->g, HESS_ALLOW_UNUSED);
    if (st != HESS_OK)
        return st;
    const double *z = hess_tensor_data(f->g[1]);
    return hess_tensor_numel(f->g[1]) == 2 && z[0] == 0.0 && z[1] == 0.0 ? HESS_OK : WRONG;
}

static int grad_nonfinite(fx *f, hess_tensor *loss, hess_tensor *p)
{
    hess_status st = hess_grad(f->ctx, loss, 1, &p, f->g, 0);
    if (st != HESS_OK)
        return st;
    return has_nonfinite(hess_tensor_data(f->g[0]), (size_t)hess_tensor_numel(f->g[0])) ? HESS_OK
                                                                                        : WRONG;
}

static int cancel_after_first(size_t done, size_t total, void *user)
{
    (void)done, (void)total, (void)user;
    return 1;
}

/* Cancelled after the first sweep of one row: that row is complete. */
static int hessian_cancelled(fx *f)
{
    const hess_hessian_opts o = {.block_rows = 1, .progress = cancel_after_first};
    hess_status st = hess_hessian_ex(f->ctx, f->loss, NP, f->p, &o, f->obuf);
    for (size_t j = 0; st == HESS_ERR_CANCELLED && j < f->N; j++)
        if (!(fabs(f->obuf[j] - f->H0[j]) <= 1e-12 * (1 + fabs(f->H0[j]))))
            return WRONG;
    return st;
}

/* Files: a scratch directory made by main(), a garbage file in it, and a
 * directory that does not exist. */
static char g_dir[64];

static const char *P(const char *name)
{
    static char buf[4][160];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

#define NO_DIR "/nonexistent-libhessian-dir/x"

static int save_ref_with(
    fx *f, const char *path, const char *name0, const char *name1, hess_tensor *t1, size_t n)
{
    const hess_named_tensor t[2] = {{name0, f->v3}, {name1, t1}};
    const hess_ref_file file = {"case", "model", n, t};
    return hess_save_ref(f->ctx, path, &file);
}

static int load_ref_into(fx *f, const char *path)
{
    hess_ref_file out;
    memset(&out, 0xAB, sizeof out);
    hess_status st = hess_load_ref(f->ctx, path, "param:", &out);
    if (st != HESS_OK && (out.n != 0 || out.tensors != NULL))
        return WRONG; /* "On error *out is zeroed" */
    return st;
}

static int ref_find_null(void)
{
    const hess_named_tensor t[1] = {{"a", NULL}};
    const hess_ref_file file = {"c", "m", 1, t};
    return hess_ref_find(NULL, "a") == NULL && hess_ref_find(&file, NULL) == NULL &&
                   hess_ref_find(&file, "b") == NULL
               ? HESS_OK
               : WRONG;
}

static int
svg_with(fx *f, const char *path, size_t n, const double *m, size_t nb, const size_t *sizes)
{
    return hess_write_svg_heatmap(f->ctx, path, n, m, nb, NULL, sizes, "t");
}

/* hess_write_svg_lines of two series: W1 against itself, and the given one. */
static int
lines_with(fx *f, const char *path, size_t n_series, size_t n1, const double *x1, const double *y1)
{
    const hess_series s[2] = {{"a", 6, W1, W1}, {"b & <c>", n1, x1, y1}};
    return hess_write_svg_lines(f->ctx, path, "t", "x", "y", n_series, s);
}

static const hess_series NO_POINTS = {NULL, 0, NULL, NULL};

/* 17 series of 2^60 - 1 points: more than size_t counts in all. */
static int lines_overflow(fx *f)
{
    hess_series s[17];
    for (int i = 0; i < 17; i++)
        s[i] = (hess_series){NULL, PTRDIFF_MAX / sizeof(double), W1, W1};
    return hess_write_svg_lines(f->ctx, P("l.svg"), NULL, NULL, NULL, 17, s);
}

static hess_tensor *cb_square(hess_context *ctx, size_t n, hess_tensor *const p[], void *user)
{
    (void)n, (void)user;
    return hess_sum(ctx, hess_square(ctx, p[0]));
}

static hess_tensor *cb_null(hess_context *ctx, size_t n, hess_tensor *const p[], void *user)
{
    (void)ctx, (void)n, (void)p, (void)user;
    return NULL; /* and no error recorded */
}

static hess_tensor *cb_vector(hess_context *ctx, size_t n, hess_tensor *const p[], void *user)
{
    (void)n, (void)user;
    return hess_square(ctx, p[0]);
}

static hess_tensor *cb_shape_error(hess_context *ctx, size_t n, hess_tensor *const p[], void *user)
{
    fx *f = user;
    (void)n;
    return hess_sum(ctx, hess_add(ctx, p[0], f->v4)); /* [3] + [4] */
}

static int check_with(fx *f,
                      hess_loss_fn cb,
                      size_t n,
                      hess_tensor *const p[],
                      const hess_check_opts *o,
                      int null_report)
{
    hess_check_report rep = {0};
    hess_status st = hess_check_derivatives(f->ctx, cb, f, n, p, o, null_report ? NULL : &rep);
    if (st == HESS_OK && !rep.ok)
        return WRONG;
    return st;
}

/* hess_op_register of bmul's record with one field changed (which: 0 the
 * name, 1 the arity, 2 the flags, 3 the callbacks); *out must come back NULL. */
static int register_with(fx *f, const char *name, int which, int value)
{
    hess_op op = bmul_op;
    const hess_op_handle *h = f->op;
    if (which == 0)
        op.name = name;
    else if (which == 1)
        op.arity = value;
    else if (which == 2)
        op.flags = (unsigned)value;
    else if (value == 0)
        op.forward = NULL;
    else if (value == 1)
        op.vjp = NULL;
    else
        op.flags = 0; /* and no shape callback */
    hess_status st = hess_op_register(f->ctx, &op, &h);
    if (st != HESS_OK && h != NULL)
        return WRONG; /* "*out is NULL on error" */
    return st;
}

static hess_tensor *
bmul(fx *f, hess_context *ctx, const hess_op_handle *op, hess_tensor *a, hess_tensor *b)
{
    (void)f;
    return hess_op_apply(ctx, op, 2, (hess_tensor *const[]){a, b});
}

#define LONG_NAME "a_name_of_sixty_four_bytes_is_one_byte_longer_than_the_limit_64b"

/* ------------------------------------------------------------------------ */
/* The table                                                                */
/* ------------------------------------------------------------------------ */

enum { K_BUILD, K_WORK, K_OTHER };
#define F_NOCTX  1u /* no context to hold a message: only the status is checked */
#define F_FINITE 2u /* the fixture context has HESS_CHECK_FINITE */

/* The rows of a pooling function (hess_avg_pool2d, hess_max_pool2d). */
#define POOL_ROWS(X, op)                                                                           \
    X(op##_null_ctx, K_BUILD, "hess_" #op, A, NULL, F_NOCTX,                                       \
      BUILD_NOCTX(hess_##op(NULL, f->x4, 2, 2, 2, 2)))                                             \
    X(op##_null_x, K_BUILD, "hess_" #op, A, "NULL", 0, BUILD(hess_##op(f->ctx, NULL, 2, 2, 2, 2))) \
    X(op##_kernel_zero, K_BUILD, "hess_" #op, A, "kernel 0x2", 0,                                  \
      BUILD(hess_##op(f->ctx, f->x4, 0, 2, 2, 2)))                                                 \
    X(op##_negative_stride, K_BUILD, "hess_" #op, A, "stride 2x-1", 0,                             \
      BUILD(hess_##op(f->ctx, f->x4, 2, 2, 2, -1)))                                                \
    X(op##_rank2, K_BUILD, "hess_" #op, SH, "[N,C,H,W]", 0,                                        \
      BUILD(hess_##op(f->ctx, f->m45, 2, 2, 2, 2)))                                                \
    X(op##_kernel_too_big, K_BUILD, "hess_" #op, SH, "smaller than the kernel 4x2", 0,             \
      BUILD(hess_##op(f->ctx, f->x4, 4, 2, 1, 1)))                                                 \
    X(op##_kernel_width_zero, K_BUILD, "hess_" #op, A, "kernel 2x0", 0,                            \
      BUILD(hess_##op(f->ctx, f->x4, 2, 0, 2, 2)))                                                 \
    X(op##_negative_stride_h, K_BUILD, "hess_" #op, A, "stride -1x2", 0,                           \
      BUILD(hess_##op(f->ctx, f->x4, 2, 2, -1, 2)))                                                \
    X(op##_kernel_too_wide, K_BUILD, "hess_" #op, SH, "[1,2,3,3] is smaller than the kernel 2x4",  \
      0, BUILD(hess_##op(f->ctx, f->x4, 2, 4, 1, 1)))                                              \
    X(op##_foreign, K_BUILD, "hess_" #op, A, "another context", 0,                                 \
      BUILD(hess_##op(f->ctx, f->fx3, 2, 2, 2, 2)))                                                \
    X(op##_freed, K_BUILD, "hess_" #op, ST, "freed", 0,                                            \
      BUILD(hess_##op(f->ctx, f->dead, 2, 2, 2, 2)))                                               \
    X(op##_nan, K_BUILD, "hess_" #op, OK, NULL, 0,                                                 \
      BUILD_NF(hess_##op(f->ctx, f->nan4, 2, 2, 0, 0)))                                            \
    X(op##_nan_checked, K_BUILD, "hess_" #op, NF, "non-finite", F_FINITE,                          \
      BUILD(hess_##op(f->ctx, f->nan4, 2, 2, 0, 0)))

#define A  HESS_ERR_ARG
#define SH HESS_ERR_SHAPE
#define ST HESS_ERR_STATE
#define ND HESS_ERR_NODIFF
#define NF HESS_ERR_NONFINITE
#define NM HESS_ERR_NOMEM
#define OK HESS_OK

/* The rows every elementwise binary op gets. */
#define BINARY_ROWS(X, op)                                                                         \
    X(op##_null_ctx, K_BUILD, "hess_" #op, A, NULL, F_NOCTX,                                       \
      BUILD_NOCTX(hess_##op(NULL, f->v3, f->v3)))                                                  \
    X(op##_null_a, K_BUILD, "hess_" #op, A, "NULL", 0, BUILD(hess_##op(f->ctx, NULL, f->v3)))      \
    X(op##_null_b, K_BUILD, "hess_" #op, A, "NULL", 0, BUILD(hess_##op(f->ctx, f->v3, NULL)))      \
    X(op##_no_broadcast, K_BUILD, "hess_" #op, SH, "broadcast", 0,                                 \
      BUILD(hess_##op(f->ctx, f->m23, f->m45)))                                                    \
    X(op##_no_broadcast_vec, K_BUILD, "hess_" #op, SH, "broadcast", 0,                             \
      BUILD(hess_##op(f->ctx, f->v3, f->v4)))                                                      \
    X(op##_foreign, K_BUILD, "hess_" #op, A, "another context", 0,                                 \
      BUILD(hess_##op(f->ctx, f->v3, f->fx3)))                                                     \
    X(op##_freed, K_BUILD, "hess_" #op, ST, "freed", 0, BUILD(hess_##op(f->ctx, f->dead, f->v3)))  \
    X(op##_nan, K_BUILD, "hess_" #op, OK, NULL, 0, BUILD_NF(hess_##op(f->ctx, f->nan3, f->v3)))    \
    X(op##_nan_checked, K_BUILD, "hess_" #op, NF, "non-finite", F_FINITE,                          \
      BUILD(hess_##op(f->ctx, f->nan3, f->v3)))                                                    \
    X(op##_inf_checked, K_BUILD, "hess_" #op, NF, "non-finite", F_FINITE,                          \
      BUILD(hess_##op(f->ctx, f->inf3, f->v3)))

/* The rows every elementwise unary op gets. */
#define UNARY_ROWS(X, op, bad)                                                                     \
    X(op##_null_ctx, K_BUILD, "hess_" #op, A, NULL, F_NOCTX, BUILD_NOCTX(hess_##op(NULL, f->v3)))  \
    X(op##_null_a, K_BUILD, "hess_" #op, A, "NULL", 0, BUILD(hess_##op(f->ctx, NULL)))             \
    X(op##_foreign, K_BUILD, "hess_" #op, A, "another context", 0,                                 \
      BUILD(hess_##op(f->ctx, f->fx3)))                                                            \
    X(op##_freed, K_BUILD, "hess_" #op, ST, "freed", 0, BUILD(hess_##op(f->ctx, f->dead)))         \
    X(op##_nan, K_BUILD, "hess_" #op, OK, NULL, 0, BUILD_NF(hess_##op(f->ctx, f->bad)))            \
    X(op##_nan_checked, K_BUILD, "hess_" #op, NF, "non-finite", F_FINITE,                          \
      BUILD(hess_##op(f->ctx, f->bad)))

/* The rows every Hessian-family function gets, through its adapter. */
#define HESS_ROWS(X, nm, FN, ad)                                                                   \
    X(nm##_null_ctx, K_WORK, FN, A, NULL, F_NOCTX, CALL(ad(f, NULL, f->loss, NP, f->p, 0)))        \
    X(nm##_null_loss, K_WORK, FN, A, "NULL", 0, CALL(ad(f, f->ctx, NULL, NP, f->p, 0)))            \
    X(nm##_loss_not_scalar, K_WORK, FN, A, "scalar", 0, CALL(ad(f, f->ctx, f->out, NP, f->p, 0)))  \
    X(nm##_n_zero, K_WORK, FN, A, "no parameters", 0, CALL(ad(f, f->ctx, f->loss, 0, f->p, 0)))    \
    X(nm##_null_params, K_WORK, FN, A, "no parameters", 0,                                         \
      CALL(ad(f, f->ctx, f->loss, NP, NULL, 0)))                                                   \
    X(nm##_param_null, K_WORK, FN, A, "NULL", 0, CALL(ad(f, f->ctx, f->loss, 2, f->pnull, 0)))     \
    X(nm##_constant_unused, K_WORK, FN, ND, "does not depend on params[1]", 0,                     \
      CALL(ad(f, f->ctx, f->loss, 2, f->pc, 0)))                                                   \
    X(nm##_duplicate_param, K_WORK, FN, A, "params[1] is the same tensor as params[0]", 0,         \
      CALL(ad(f, f->ctx, f->loss, 2, f->pdup, 0)))                                                 \
    X(nm##_loss_of_one_element, K_WORK, FN, OK, NULL, 0,                                           \
      CALL(ad(f, f->ctx, f->loss11, NP, f->p, 0)))                                                 \
    X(nm##_unused_param, K_WORK, FN, ND, "does not depend", 0,                                     \
      CALL(ad(f, f->ctx, f->loss, 2, f->pu, 0)))                                                   \
    X(nm##_foreign_param, K_WORK, FN, A, "another context", 0,                                     \
      CALL(ad(f, f->ctx, f->loss, 2, f->pf, 0)))                                                   \
    X(nm##_foreign_loss, K_WORK, FN, A, "another context", 0,                                      \
      CALL(ad(f, f->ctx, f->floss, NP, f->p, 0)))                                                  \
    X(nm##_freed_param, K_WORK, FN, ST, "freed", 0, CALL(ad(f, f->ctx, f->loss, 2, f->pd, 0)))     \
    X(nm##_freed_loss, K_WORK, FN, ST, "freed", 0, CALL(ad(f, f->ctx, f->dead, NP, f->p, 0)))      \
    X(nm##_null_out, K_WORK, FN, A, "NULL", 0, CALL(ad(f, f->ctx, f->loss, NP, f->p, 1)))          \
    X(nm##_nan, K_WORK, FN, OK, NULL, 0, CALL_NF(ad(f, f->ctx, f->nloss, 1, f->pn1, 0)))           \
    X(nm##_inf, K_WORK, FN, OK, NULL, 0, CALL_NF(ad(f, f->ctx, f->zloss, 1, f->pz1, 0)))           \
    X(nm##_inf_checked, K_WORK, FN, NF, "non-finite", F_FINITE,                                    \
      CALL(ad(f, f->ctx, f->zloss, 1, f->pz1, 0)))

/* The reductions over axes, with one signature: R5 for (ctx, a, naxes, axes,
 * keepdim), R6 for (ctx, a, naxes, axes, correction, keepdim). */
#define AXS(...)                   ((const int[]){__VA_ARGS__})
#define R5(op, ctx, a, n, ax)      hess_##op(ctx, a, n, ax, 0)
#define R6(op, ctx, a, n, ax)      hess_##op(ctx, a, n, ax, 1, 0)
#define R5_KEEP(op, ctx, a, n, ax) hess_##op(ctx, a, n, ax, 1)
#define R6_KEEP(op, ctx, a, n, ax) hess_##op(ctx, a, n, ax, 0, 1)

/* The rows every reduction over axes gets. */
#define REDUCE_ROWS(X, op, R, RK)                                                                  \
    X(op##_null_ctx, K_BUILD, "hess_" #op, A, NULL, F_NOCTX,                                       \
      BUILD_NOCTX(R(op, NULL, f->m23, 1, AXS(0))))                                                 \
    X(op##_null_a, K_BUILD, "hess_" #op, A, "NULL", 0, BUILD(R(op, f->ctx, NULL, 1, AXS(0))))      \
    X(op##_axis_out_of_range, K_BUILD, "hess_" #op, A, "axis 2 is out of range", 0,                \
      BUILD(R(op, f->ctx, f->m23, 2, AXS(0, 2))))                                                  \
    X(op##_axis_negative_out_of_range, K_BUILD, "hess_" #op, A, "axis -4 is out of range", 0,      \
      BUILD(RK(op, f->ctx, f->m223, 1, AXS(-4))))                                                  \
    X(op##_axis_of_scalar, K_BUILD, "hess_" #op, A, "axis 0 is out of range for []", 0,            \
      BUILD(R(op, f->ctx, f->s, 1, AXS(0))))                                                       \
    X(op##_axis_repeated, K_BUILD, "hess_" #op, A, "axes[2] = -1 repeats axis 2 (axes[0] = 2)", 0, \
      BUILD(RK(op, f->ctx, f->m223, 3, AXS(2, 0, -1))))                                            \
    X(op##_axis_repeated_later, K_BUILD, "hess_" #op, A,                                           \
      "axes[2] = 2 repeats axis 2 (axes[1] = -1)", 0,                                              \
      BUILD(RK(op, f->ctx, f->m223, 3, AXS(0, -1, 2))))                                            \
    X(op##_axes_null, K_BUILD, "hess_" #op, A, "axes is NULL with naxes = 2", 0,                   \
      BUILD(R(op, f->ctx, f->m23, 2, NULL)))                                                       \
    X(op##_foreign, K_BUILD, "hess_" #op, A, "another context", 0,                                 \
      BUILD(R(op, f->ctx, f->fx3, 0, NULL)))                                                       \
    X(op##_freed, K_BUILD, "hess_" #op, ST, "freed", 0, BUILD(R(op, f->ctx, f->dead, 0, NULL)))    \
    X(op##_nan, K_BUILD, "hess_" #op, OK, NULL, 0, BUILD_NF(R(op, f->ctx, f->nan3, 1, AXS(-1))))   \
    X(op##_nan_checked, K_BUILD, "hess_" #op, NF, "non-finite", F_FINITE,                          \
      BUILD(RK(op, f->ctx, f->nan3, 0, NULL)))

/* hess_tensor_set of a cross-entropy (bce) target leaf with one bad value;
 * the loss is built first, so the leaf is one the op checks. */
static hess_status set_ce_targets(fx *f, double bad)
{
    if (!hess_cross_entropy(f->ctx, f->logits, f->tgt))
        return hess_context_status(f->ctx);
    return hess_tensor_set(f->ctx, f->tgt, (const double[]){1.0, bad});
}

static hess_status set_bce_targets(fx *f, double bad)
{
    if (!hess_bce_with_logits(f->ctx, f->v3, f->pr3))
        return hess_context_status(f->ctx);
    return hess_tensor_set(f->ctx, f->pr3, (const double[]){0.25, bad, 1.0});
}

/* hess_tensor_set of a gather index leaf with one bad value; the gather is
 * built first, so the leaf is one the op checks. */
static hess_status set_gather_index(fx *f, double bad)
{
    hess_tensor *ix = hess_tensor_new(f->ctx, 2, SHAPE(2, 2), (const double[]){0, 2, 1, 1});
    if (!hess_gather(f->ctx, f->m23, 1, ix))
        return hess_context_status(f->ctx);
    return hess_tensor_set(f->ctx, ix, (const double[]){0, 1, bad, 2});
}

/* The gradient of a gather with respect to its index (a parameter). */
static hess_status grad_gather_index(fx *f)
{
    hess_tensor *ix = hess_param_new(f->ctx, 2, SHAPE(2, 2), (const double[]){0, 2, 1, 1}), *g;
    hess_tensor *y = hess_sum(f->ctx, hess_gather(f->ctx, f->m23, 1, ix));
    if (!y)
        return hess_context_status(f->ctx);
    return hess_grad(f->ctx, y, 1, &ix, &g, 0);
}

/* An index tensor [2,2] of the given values, for hess_gather. */
#define IDX22(...) hess_tensor_new(f->ctx, 2, SHAPE(2, 2), (const double[]){__VA_ARGS__})
#define TL(...)    ((hess_tensor *const[]){__VA_ARGS__})
/* hess_tensor_set of the leaves the losses with options check: class
 * targets with an ignore_index (-100 passes, 5 does not), and the
 * probabilities of hess_bce. */
static hess_status set_ignored_targets(fx *f, double bad)
{
    const hess_loss_opts o = {.use_ignore_index = 1, .ignore_index = -100};
    hess_tensor *t = hess_tensor_new(f->ctx, 1, SHAPE(2), (const double[]){0, 2});
    if (!hess_cross_entropy_ex(f->ctx, f->logits, t, &o))
        return hess_context_status(f->ctx);
    hess_status st = hess_tensor_set(f->ctx, t, (const double[]){-100, 1});
    return st != HESS_OK ? WRONG : hess_tensor_set(f->ctx, t, (const double[]){2, bad});
}

static hess_status set_bce_probs(fx *f, double bad)
{
    hess_tensor *p = hess_param_new(f->ctx, 1, SHAPE(3), (const double[]){0.25, 0.5, 0.75});
    if (!hess_bce(f->ctx, p, f->pr3, NULL))
        return hess_context_status(f->ctx);
    return hess_param_set(f->ctx, p, (const double[]){0.5, bad, 1.0});
}

#define LOPTS(...) (&(hess_loss_opts){__VA_ARGS__})
#define TGT2(a, b) hess_tensor_new(f->ctx, 1, SHAPE(2), (const double[]){a, b})

/* The rows of a loss with options of two tensors of one shape (a, b valid
 * operands; bad a non-finite a). */
#define LOSS_PAIR_ROWS(X, op, a, b, bad)                                                           \
    X(op##_null_ctx, K_BUILD, "hess_" #op, A, NULL, F_NOCTX,                                       \
      BUILD_NOCTX(hess_##op(NULL, f->a, f->b, NULL)))                                              \
    X(op##_null_a, K_BUILD, "hess_" #op, A, "NULL", 0, BUILD(hess_##op(f->ctx, NULL, f->b, NULL))) \
    X(op##_null_b, K_BUILD, "hess_" #op, A, "NULL", 0, BUILD(hess_##op(f->ctx, f->a, NULL, NULL))) \
    X(op##_shapes_differ, K_BUILD, "hess_" #op, SH, "differ", 0,                                   \
      BUILD(hess_##op(f->ctx, f->m23, f->b, NULL)))                                                \
    X(op##_shapes_differ_none, K_BUILD, "hess_" #op, SH, "differ", 0,                              \
      BUILD(hess_##op(f->ctx, f->a, f->v4, LOPTS(.reduction = HESS_REDUCE_NONE, .delta = 1))))     \
    X(op##_bad_reduction, K_BUILD, "hess_" #op, A, "reduction 3", 0,                               \
      BUILD(hess_##op(f->ctx, f->a, f->b, LOPTS(.reduction = 3, .delta = 1))))                     \
    X(op##_negative_reduction, K_BUILD, "hess_" #op, A, "reduction -1", 0,                         \
      BUILD(hess_##op(f->ctx, f->a, f->b, LOPTS(.reduction = -1, .delta = 1))))                    \
    X(op##_ignore_not_taken, K_BUILD, "hess_" #op, A, "ignore_index", 0,                           \
      BUILD(hess_##op(f->ctx, f->a, f->b, LOPTS(.use_ignore_index = 1, .delta = 1))))              \
    X(op##_smoothing_not_taken, K_BUILD, "hess_" #op, A, "label smoothing", 0,                     \
      BUILD(hess_##op(f->ctx, f->a, f->b, LOPTS(.label_smoothing = 0.1, .delta = 1))))             \
    X(op##_foreign, K_BUILD, "hess_" #op, A, "another context", 0,                                 \
      BUILD(hess_##op(f->ctx, f->fx3, f->b, NULL)))                                                \
    X(op##_freed, K_BUILD, "hess_" #op, ST, "freed", 0,                                            \
      BUILD(hess_##op(f->ctx, f->a, f->dead, NULL)))                                               \
    X(op##_nan, K_BUILD, "hess_" #op, OK, NULL, 0,                                                 \
      BUILD_NF(hess_##op(f->ctx, f->bad, f->b, NULL)))                                             \
    X(op##_nan_none, K_BUILD, "hess_" #op, OK, NULL, 0,                                            \
      BUILD_NF(hess_##op(f->ctx, f->bad, f->b, LOPTS(.reduction = HESS_REDUCE_NONE, .delta = 1)))) \
    X(op##_nan_checked, K_BUILD, "hess_" #op, NF, "non-finite", F_FINITE,                          \
      BUILD(hess_##op(f->ctx, f->bad, f->b, NULL)))

/* The rows of a loss with options of class targets. */
#define LOSS_CLASS_ROWS(X, op)                                                                     \
    X(op##_null_ctx, K_BUILD, "hess_" #op, A, NULL, F_NOCTX,                                       \
      BUILD_NOCTX(hess_##op(NULL, f->logits, f->tgt, NULL)))                                       \
    X(op##_null_input, K_BUILD, "hess_" #op, A, "NULL", 0,                                         \
      BUILD(hess_##op(f->ctx, NULL, f->tgt, NULL)))                                                \
    X(op##_null_targets, K_BUILD, "hess_" #op, A, "NULL", 0,                                       \
      BUILD(hess_##op(f->ctx, f->logits, NULL, NULL)))                                             \
    X(op##_batch_differs, K_BUILD, "hess_" #op, SH, "do not fit", 0,                               \
      BUILD(hess_##op(f->ctx, f->logits, f->v3, NULL)))                                            \
    X(op##_targets_2d, K_BUILD, "hess_" #op, SH, "do not fit", 0,                                  \
      BUILD(hess_##op(f->ctx, f->logits, f->m23, NULL)))                                           \
    X(op##_input_rank3, K_BUILD, "hess_" #op, SH, "do not fit", 0,                                 \
      BUILD(hess_##op(f->ctx, f->t3d, f->tgt, NULL)))                                              \
    X(op##_vector_input_vector_targets, K_BUILD, "hess_" #op, SH, "do not fit", 0,                 \
      BUILD(hess_##op(f->ctx, f->v3, f->v3, NULL)))                                                \
    X(op##_scalar_input, K_BUILD, "hess_" #op, SH, "do not fit", 0,                                \
      BUILD(hess_##op(f->ctx, f->s, f->s, NULL)))                                                  \
    X(op##_index_too_big, K_BUILD, "hess_" #op, A, "class ind", 0,                                 \
      BUILD(hess_##op(f->ctx, f->logits, TGT2(0, 3), NULL)))                                       \
    X(op##_index_not_integral, K_BUILD, "hess_" #op, A, "class ind", 0,                            \
      BUILD(hess_##op(f->ctx, f->logits, TGT2(1, 0.5), NULL)))                                     \
    X(op##_index_nan, K_BUILD, "hess_" #op, A, "class ind", 0,                                     \
      BUILD(hess_##op(f->ctx, f->logits, TGT2(NAN, 0), NULL)))                                     \
    X(op##_index_not_ignored, K_BUILD, "hess_" #op, A, "or the ignore_index -100", 0,              \
      BUILD(hess_##op(f->ctx, f->logits, TGT2(-1, 0),                                              \
                      LOPTS(.use_ignore_index = 1, .ignore_index = -100))))                        \
    X(op##_index_ignored, K_BUILD, "hess_" #op, OK, NULL, 0,                                       \
      BUILD(hess_##op(f->ctx, f->logits, TGT2(-100, 0),                                            \
                      LOPTS(.use_ignore_index = 1, .ignore_index = -100))))                        \
    X(op##_ignore_unused_is_refused, K_BUILD, "hess_" #op, A, "class ind", 0,                      \
      BUILD(hess_##op(f->ctx, f->logits, TGT2(-100, 0), LOPTS(.ignore_index = -100))))             \
    X(op##_scalar_index_too_big, K_BUILD, "hess_" #op, A, "class ind", 0,                          \
      BUILD(hess_##op(f->ctx, f->v3, hess_scalar(f->ctx, 3.0), NULL)))                             \
    X(op##_weight_size, K_BUILD, "hess_" #op, SH, "does not fit 3 classes", 0,                     \
      BUILD(hess_##op(f->ctx, f->logits, f->tgt, LOPTS(.weight = f->v4))))                         \
    X(op##_weight_rank, K_BUILD, "hess_" #op, SH, "does not fit 3 classes", 0,                     \
      BUILD(hess_##op(f->ctx, f->logits, f->tgt, LOPTS(.weight = f->m23))))                        \
    X(op##_weight_foreign, K_BUILD, "hess_" #op, A, "another context", 0,                          \
      BUILD(hess_##op(f->ctx, f->logits, f->tgt, LOPTS(.weight = f->fx3))))                        \
    X(op##_weight_freed, K_BUILD, "hess_" #op, ST, "freed", 0,                                     \
      BUILD(hess_##op(f->ctx, f->logits, f->tgt, LOPTS(.weight = f->dead))))                       \
    X(op##_bad_reduction, K_BUILD, "hess_" #op, A, "reduction 7", 0,                               \
      BUILD(hess_##op(f->ctx, f->logits, f->tgt, LOPTS(.reduction = 7))))                          \
    X(op##_foreign, K_BUILD, "hess_" #op, A, "another context", 0,                                 \
      BUILD(hess_##op(f->ctx, f->fx3, f->tgt, NULL)))                                              \
    X(op##_freed, K_BUILD, "hess_" #op, ST, "freed", 0,                                            \
      BUILD(hess_##op(f->ctx, f->logits, f->dead, NULL)))                                          \
    X(op##_nan_input, K_BUILD, "hess_" #op, OK, NULL, 0,                                           \
      BUILD_NF(hess_##op(f->ctx, f->nan3, hess_scalar(f->ctx, 1.0),                                \
                         LOPTS(.reduction = HESS_REDUCE_SUM, .weight = f->c3))))                   \
    X(op##_nan_input_checked, K_BUILD, "hess_" #op, NF, "non-finite", F_FINITE,                    \
      BUILD(hess_##op(f->ctx, f->nan3, hess_scalar(f->ctx, 1.0),                                   \
                      LOPTS(.reduction = HESS_REDUCE_SUM, .weight = f->c3))))

/* A parameter reached only through hess_where's condition: no derivative
 * (HESS_ERR_NODIFF), zeros with HESS_ALLOW_UNUSED. */
static hess_status grad_through_cond(fx *f, unsigned flags)
{
    hess_tensor *y = hess_sum(f->ctx, hess_where(f->ctx, f->pn, f->v3, f->c3)), *g;
    if (!y)
        return hess_context_status(f->ctx);
    const hess_status st = hess_grad(f->ctx, y, 1, &f->pn, &g, flags);
    if (st != HESS_OK)
        return st;
    for (int i = 0; i < 3; i++)
        if (hess_tensor_data(g)[i] != 0.0)
            return WRONG;
    return HESS_OK;
}

#define BAD_LIMIT (INT64_C(1) << 32)

/* X(id, kind, function named in the message, status, word in the message, flags, body) */
#define CASES(X)                                                                                   \
    /* context lifecycle, marks and error queries */                                               \
    X(create_null_out, K_OTHER, "hess_context_create", A, NULL, F_NOCTX,                           \
      CALL(hess_context_create(NULL, NULL)))                                                       \
    X(create_alloc_without_free, K_OTHER, "hess_context_create", A, NULL, F_NOCTX,                 \
      CALL(create_one_hook()))                                                                     \
    X(create_limit_too_small, K_OTHER, "hess_context_create", NM, NULL, F_NOCTX,                   \
      CALL(create_limited(16)))                                                                    \
    X(create_limit_no_block, K_OTHER, "hess_context_create", NM, NULL, F_NOCTX,                    \
      CALL(create_limited(2048)))                                                                  \
    X(context_null_queries, K_OTHER, "hess_context_status", OK, NULL, F_NOCTX,                     \
      CALL(context_null_queries()))                                                                \
    X(status_str_unknown, K_OTHER, "hess_status_str", OK, NULL, F_NOCTX,                           \
      CALL(status_str_unknown()))                                                                  \
    X(rewind_null_ctx, K_OTHER, "hess_context_rewind", A, NULL, F_NOCTX,                           \
      CALL(hess_context_rewind(NULL, hess_context_mark(f->ctx))))                                  \
    X(rewind_foreign_mark, K_OTHER, "hess_context_rewind", A, "mark", 0,                           \
      CALL(hess_context_rewind(f->ctx, f->m_other)))                                               \
    X(rewind_later_mark, K_OTHER, "hess_context_rewind", A, "mark", 0, CALL(rewind_later(f)))      \
    X(rewind_stale_mark, K_OTHER, "hess_context_rewind", A, "mark", 0, CALL(rewind_stale(f)))      \
    /* leaves */                                                                                   \
    X(tensor_new_null_ctx, K_BUILD, "hess_tensor_new", A, NULL, F_NOCTX,                           \
      BUILD_NOCTX(hess_tensor_new(NULL, 1, SHAPE(3), NULL)))                                       \
    X(tensor_new_rank_negative, K_BUILD, "hess_tensor_new", A, "rank", 0,                          \
      BUILD(hess_tensor_new(f->ctx, -1, SHAPE(3), NULL)))                                          \
    X(tensor_new_rank_too_big, K_BUILD, "hess_tensor_new", A, "rank", 0,                           \
      BUILD(hess_tensor_new(f->ctx, HESS_MAX_DIMS + 1, SHAPE(1, 1, 1, 1, 1, 1, 1, 1), NULL)))      \
    X(tensor_new_null_shape, K_BUILD, "hess_tensor_new", A, "NULL", 0,                             \
      BUILD(hess_tensor_new(f->ctx, 2, NULL, NULL)))                                               \
    X(tensor_new_dim_zero, K_BUILD, "hess_tensor_new", A, "dimension", 0,                          \
      BUILD(hess_tensor_new(f->ctx, 2, SHAPE(2, 0), NULL)))                                        \
    X(tensor_new_dim_negative, K_BUILD, "hess_tensor_new", A, "dimension", 0,                      \
      BUILD(hess_tensor_new(f->ctx, 2, SHAPE(-3, 2), NULL)))                                       \
    X(tensor_new_overflow_int64, K_BUILD, "hess_tensor_new", A, "overflow", 0,                     \
      BUILD(hess_tensor_new(f->ctx, 2, SHAPE(INT64_MAX, 2), NULL)))                                \
    X(tensor_new_overflow_square, K_BUILD, "hess_tensor_new", A, "overflow", 0,                    \
      BUILD(hess_tensor_new(f->ctx, 2, SHAPE(BAD_LIMIT, BAD_LIMIT), NULL)))                        \
    X(tensor_new_overflow_bytes, K_BUILD, "hess_tensor_new", A, "overflow", 0,                     \
      BUILD(hess_tensor_new(f->ctx, 1, SHAPE(INT64_C(1) << 61), NULL)))                            \
    X(tensor_new_too_big_for_memory, K_BUILD, "hess_tensor_new", NM, "out of memory", 0,           \
      BUILD(hess_tensor_new(f->ctx, 1, SHAPE(INT64_C(1) << 40), NULL)))                            \
    X(tensor_new_nan_checked, K_BUILD, "hess_tensor_new", OK, NULL, F_FINITE,                      \
      BUILD_NF(hess_tensor_new(f->ctx, 1, SHAPE(2), (const double[]){NAN, 1.0})))                  \
    X(param_new_null_ctx, K_BUILD, "hess_param_new", A, NULL, F_NOCTX,                             \
      BUILD_NOCTX(hess_param_new(NULL, 1, SHAPE(3), NULL)))                                        \
    X(param_new_rank_too_big, K_BUILD, "hess_param_new", A, "rank", 0,                             \
      BUILD(hess_param_new(f->ctx, 99, SHAPE(1), NULL)))                                           \
    X(param_new_null_shape, K_BUILD, "hess_param_new", A, "NULL", 0,                               \
      BUILD(hess_param_new(f->ctx, 1, NULL, NULL)))                                                \
    X(param_new_dim_zero, K_BUILD, "hess_param_new", A, "dimension", 0,                            \
      BUILD(hess_param_new(f->ctx, 3, SHAPE(2, 2, 0), NULL)))                                      \
    X(param_new_overflow, K_BUILD, "hess_param_new", A, "overflow", 0,                             \
      BUILD(hess_param_new(f->ctx, 3, SHAPE(BAD_LIMIT, BAD_LIMIT, BAD_LIMIT), NULL)))              \
    X(scalar_null_ctx, K_BUILD, "hess_scalar", A, NULL, F_NOCTX,                                   \
      BUILD_NOCTX(hess_scalar(NULL, 1.0)))                                                         \
    X(accessors_null, K_OTHER, "hess_tensor_ndim", OK, NULL, F_NOCTX, CALL(accessors_null()))      \
    X(param_count_bad, K_OTHER, "hess_param_count", OK, NULL, F_NOCTX, CALL(param_count_bad(f)))   \
    X(param_set_null_ctx, K_OTHER, "hess_param_set", A, NULL, F_NOCTX,                             \
      CALL(hess_param_set(NULL, f->p[0], f->buf)))                                                 \
    X(param_set_null_param, K_OTHER, "hess_param_set", A, "NULL", 0,                               \
      CALL(hess_param_set(f->ctx, NULL, f->buf)))                                                  \
    X(param_set_null_data, K_OTHER, "hess_param_set", A, "NULL", 0,                                \
      CALL(hess_param_set(f->ctx, f->p[0], NULL)))                                                 \
    X(param_set_not_param, K_OTHER, "hess_param_set", A, "not a parameter", 0,                     \
      CALL(hess_param_set(f->ctx, f->c3, f->buf)))                                                 \
    X(param_set_foreign, K_OTHER, "hess_param_set", A, "another context", 0,                       \
      CALL(hess_param_set(f->ctx, f->fparam, f->buf)))                                             \
    X(tensor_set_null_ctx, K_OTHER, "hess_tensor_set", A, NULL, F_NOCTX,                           \
      CALL(hess_tensor_set(NULL, f->x, f->buf)))                                                   \
    X(tensor_set_null_leaf, K_OTHER, "hess_tensor_set", A, "NULL", 0,                              \
      CALL(hess_tensor_set(f->ctx, NULL, f->buf)))                                                 \
    X(tensor_set_null_data, K_OTHER, "hess_tensor_set", A, "NULL", 0,                              \
      CALL(hess_tensor_set(f->ctx, f->x, NULL)))                                                   \
    X(tensor_set_not_leaf, K_OTHER, "hess_tensor_set", A, "not a leaf", 0,                         \
      CALL(hess_tensor_set(f->ctx, f->out, f->buf)))                                               \
    X(tensor_set_foreign, K_OTHER, "hess_tensor_set", A, "another context", 0,                     \
      CALL(hess_tensor_set(f->ctx, f->fx3, f->buf)))                                               \
    X(tensor_set_freed, K_OTHER, "hess_tensor_set", ST, "freed", 0,                                \
      CALL(hess_tensor_set(f->ctx, f->dead, f->buf)))                                              \
    X(tensor_set_class_out_of_range, K_OTHER, "hess_tensor_set", A, "class indices", 0,            \
      CALL(set_ce_targets(f, 3.0)))                                                                \
    X(tensor_set_class_not_integral, K_OTHER, "hess_tensor_set", A, "class indices", 0,            \
      CALL(set_ce_targets(f, 0.5)))                                                                \
    X(tensor_set_bce_target, K_OTHER, "hess_tensor_set", A, "targets must be in [0, 1]", 0,        \
      CALL(set_bce_targets(f, 1.5)))                                                               \
    X(tensor_set_gather_index_out_of_range, K_OTHER, "hess_tensor_set", A, "indices must be", 0,   \
      CALL(set_gather_index(f, 3.0)))                                                              \
    X(tensor_set_gather_index_negative, K_OTHER, "hess_tensor_set", A, "indices must be", 0,       \
      CALL(set_gather_index(f, -1.0)))                                                             \
    X(tensor_set_gather_index_not_integral, K_OTHER, "hess_tensor_set", A, "indices must be", 0,   \
      CALL(set_gather_index(f, 1.5)))                                                              \
    X(tensor_set_ignored_target, K_OTHER, "hess_tensor_set", A, "or the ignore_index -100", 0,     \
      CALL(set_ignored_targets(f, 5.0)))                                                           \
    X(param_set_bce_probability, K_OTHER, "hess_param_set", A, "probabilities must be in [0, 1]",  \
      0, CALL(set_bce_probs(f, -0.5)))                                                             \
    X(param_set_freed, K_OTHER, "hess_param_set", ST, "freed", 0,                                  \
      CALL(hess_param_set(f->ctx, f->deadp, f->buf)))                                              \
    X(recompute_null_ctx, K_WORK, "hess_recompute", A, NULL, F_NOCTX, CALL(hess_recompute(NULL)))  \
    X(recompute_unchanged, K_WORK, "hess_recompute", OK, NULL, 0, CALL(hess_recompute(f->ctx)))    \
    /* elementwise */                                                                              \
    BINARY_ROWS(X, add)                                                                            \
    BINARY_ROWS(X, sub)                                                                            \
    BINARY_ROWS(X, mul)                                                                            \
    BINARY_ROWS(X, div)                                                                            \
    BINARY_ROWS(X, maximum)                                                                        \
    BINARY_ROWS(X, minimum)                                                                        \
    BINARY_ROWS(X, pow_t)                                                                          \
    X(where_null_ctx, K_BUILD, "hess_where", A, NULL, F_NOCTX,                                     \
      BUILD_NOCTX(hess_where(NULL, f->v3, f->v3, f->v3)))                                          \
    X(where_null_cond, K_BUILD, "hess_where", A, "NULL", 0,                                        \
      BUILD(hess_where(f->ctx, NULL, f->v3, f->v3)))                                               \
    X(where_null_a, K_BUILD, "hess_where", A, "NULL", 0,                                           \
      BUILD(hess_where(f->ctx, f->v3, NULL, f->v3)))                                               \
    X(where_null_b, K_BUILD, "hess_where", A, "NULL", 0,                                           \
      BUILD(hess_where(f->ctx, f->v3, f->v3, NULL)))                                               \
    X(where_no_broadcast, K_BUILD, "hess_where", SH, "[2,3] and [4] do not broadcast", 0,          \
      BUILD(hess_where(f->ctx, f->v3, f->m23, f->v4)))                                             \
    X(where_no_broadcast_cond, K_BUILD, "hess_where", SH, "[4] (cond)", 0,                         \
      BUILD(hess_where(f->ctx, f->v4, f->m23, f->m23)))                                            \
    X(where_foreign_cond, K_BUILD, "hess_where", A, "another context", 0,                          \
      BUILD(hess_where(f->ctx, f->fx3, f->v3, f->v3)))                                             \
    X(where_freed, K_BUILD, "hess_where", ST, "freed", 0,                                          \
      BUILD(hess_where(f->ctx, f->v3, f->v3, f->dead)))                                            \
    X(where_nan, K_BUILD, "hess_where", OK, NULL, 0,                                               \
      BUILD_NF(hess_where(f->ctx, f->v3, f->nan3, f->v3)))                                         \
    X(where_nan_checked, K_BUILD, "hess_where", NF, "non-finite", F_FINITE,                        \
      BUILD(hess_where(f->ctx, f->v3, f->nan3, f->v3)))                                            \
    X(where_grad_through_cond, K_OTHER, "hess_grad", ND, "does not depend", 0,                     \
      CALL(grad_through_cond(f, 0)))                                                               \
    X(where_grad_through_cond_unused, K_OTHER, "hess_grad", OK, NULL, 0,                           \
      CALL(grad_through_cond(f, HESS_ALLOW_UNUSED)))                                               \
    /* a NaN condition is true, and is no result value */                                          \
    X(where_nan_cond_checked, K_BUILD, "hess_where", OK, NULL, F_FINITE,                           \
      BUILD(hess_where(f->ctx, f->nan3, f->v3, f->m23)))                                           \
    UNARY_ROWS(X, neg, nan3)                                                                       \
    UNARY_ROWS(X, exp, nan3)                                                                       \
    UNARY_ROWS(X, log, nan3)                                                                       \
    UNARY_ROWS(X, tanh, nan3)                                                                      \
    UNARY_ROWS(X, sigmoid, nan3)                                                                   \
    UNARY_ROWS(X, relu, nan3)                                                                      \
    UNARY_ROWS(X, softplus, nan3)                                                                  \
    UNARY_ROWS(X, square, nan3)                                                                    \
    UNARY_ROWS(X, sqrt, nan3)                                                                      \
    UNARY_ROWS(X, sum, nan3)                                                                       \
    UNARY_ROWS(X, mean, nan3)                                                                      \
    UNARY_ROWS(X, abs, nan3)                                                                       \
    UNARY_ROWS(X, log1p, nan3)                                                                     \
    UNARY_ROWS(X, expm1, nan3)                                                                     \
    UNARY_ROWS(X, reciprocal, nan3)                                                                \
    UNARY_ROWS(X, rsqrt, nan3)                                                                     \
    UNARY_ROWS(X, erf, nan3)                                                                       \
    UNARY_ROWS(X, silu, nan3)                                                                      \
    UNARY_ROWS(X, gelu, nan3)                                                                      \
    UNARY_ROWS(X, gelu_tanh, nan3)                                                                 \
    X(reciprocal_zero_checked, K_BUILD, "hess_reciprocal", NF, "non-finite", F_FINITE,             \
      BUILD(hess_reciprocal(f->ctx, f->u)))                                                        \
    X(log1p_below_minus_one_checked, K_BUILD, "hess_log1p", NF, "non-finite", F_FINITE,            \
      BUILD(hess_log1p(f->ctx, hess_neg(f->ctx, f->m23))))                                         \
    X(silu_gelu_inf, K_BUILD, "hess_silu", OK, NULL, 0,                                            \
      BUILD_NF(hess_gelu(f->ctx, hess_silu(f->ctx, f->inf3))))                                     \
    X(log_negative_checked, K_BUILD, "hess_log", NF, "non-finite", F_FINITE,                       \
      BUILD(hess_log(f->ctx, hess_neg(f->ctx, f->v3))))                                            \
    X(log_zero_checked, K_BUILD, "hess_log", NF, "non-finite", F_FINITE,                           \
      BUILD(hess_log(f->ctx, f->u)))                                                               \
    X(exp_overflow_checked, K_BUILD, "hess_exp", NF, "non-finite", F_FINITE,                       \
      BUILD(hess_exp(f->ctx, hess_scale(f->ctx, f->v3, 1000.0))))                                  \
    X(tanh_inf_checked, K_BUILD, "hess_tanh", OK, NULL, F_FINITE,                                  \
      BUILD(hess_tanh(f->ctx, f->inf3)))                                                           \
    X(scale_null_ctx, K_BUILD, "hess_scale", A, NULL, F_NOCTX,                                     \
      BUILD_NOCTX(hess_scale(NULL, f->v3, 2)))                                                     \
    X(scale_null_a, K_BUILD, "hess_scale", A, "NULL", 0, BUILD(hess_scale(f->ctx, NULL, 2)))       \
    X(scale_foreign, K_BUILD, "hess_scale", A, "another context", 0,                               \
      BUILD(hess_scale(f->ctx, f->fx3, 2)))                                                        \
    X(scale_freed, K_BUILD, "hess_scale", ST, "freed", 0, BUILD(hess_scale(f->ctx, f->dead, 2)))   \
    X(scale_by_inf, K_BUILD, "hess_scale", OK, NULL, 0,                                            \
      BUILD_NF(hess_scale(f->ctx, f->v3, INFINITY)))                                               \
    X(scale_by_nan_checked, K_BUILD, "hess_scale", NF, "non-finite", F_FINITE,                     \
      BUILD(hess_scale(f->ctx, f->v3, NAN)))                                                       \
    X(pow_null_ctx, K_BUILD, "hess_pow", A, NULL, F_NOCTX, BUILD_NOCTX(hess_pow(NULL, f->v3, 2)))  \
    X(pow_null_a, K_BUILD, "hess_pow", A, "NULL", 0, BUILD(hess_pow(f->ctx, NULL, 2)))             \
    X(pow_nan_exponent, K_BUILD, "hess_pow", A, "exponent", 0,                                     \
      BUILD(hess_pow(f->ctx, f->v3, NAN)))                                                         \
    X(pow_inf_exponent, K_BUILD, "hess_pow", A, "exponent", 0,                                     \
      BUILD(hess_pow(f->ctx, f->v3, -INFINITY)))                                                   \
    X(pow_foreign, K_BUILD, "hess_pow", A, "another context", 0,                                   \
      BUILD(hess_pow(f->ctx, f->fx3, 2)))                                                          \
    X(pow_freed, K_BUILD, "hess_pow", ST, "freed", 0, BUILD(hess_pow(f->ctx, f->dead, 2)))         \
    X(pow_negative_base_checked, K_BUILD, "hess_pow", NF, "non-finite", F_FINITE,                  \
      BUILD(hess_pow(f->ctx, hess_neg(f->ctx, f->v3), 0.5)))                                       \
    X(elu_null_ctx, K_BUILD, "hess_elu", A, NULL, F_NOCTX, BUILD_NOCTX(hess_elu(NULL, f->v3, 1)))  \
    X(elu_null_a, K_BUILD, "hess_elu", A, "NULL", 0, BUILD(hess_elu(f->ctx, NULL, 1)))             \
    X(elu_nan_alpha, K_BUILD, "hess_elu", A, "alpha nan", 0, BUILD(hess_elu(f->ctx, f->v3, NAN)))  \
    X(elu_inf_alpha, K_BUILD, "hess_elu", A, "alpha inf", 0,                                       \
      BUILD(hess_elu(f->ctx, f->v3, INFINITY)))                                                    \
    X(elu_foreign, K_BUILD, "hess_elu", A, "another context", 0,                                   \
      BUILD(hess_elu(f->ctx, f->fx3, 1)))                                                          \
    X(elu_freed, K_BUILD, "hess_elu", ST, "freed", 0, BUILD(hess_elu(f->ctx, f->dead, 1)))         \
    X(elu_nan, K_BUILD, "hess_elu", OK, NULL, 0, BUILD_NF(hess_elu(f->ctx, f->nan3, 1)))           \
    X(elu_nan_checked, K_BUILD, "hess_elu", NF, "non-finite", F_FINITE,                            \
      BUILD(hess_elu(f->ctx, f->nan3, 1)))                                                         \
    X(leaky_relu_null_ctx, K_BUILD, "hess_leaky_relu", A, NULL, F_NOCTX,                           \
      BUILD_NOCTX(hess_leaky_relu(NULL, f->v3, 0.1)))                                              \
    X(leaky_relu_null_a, K_BUILD, "hess_leaky_relu", A, "NULL", 0,                                 \
      BUILD(hess_leaky_relu(f->ctx, NULL, 0.1)))                                                   \
    X(leaky_relu_nan_slope, K_BUILD, "hess_leaky_relu", A, "slope nan", 0,                         \
      BUILD(hess_leaky_relu(f->ctx, f->v3, NAN)))                                                  \
    X(leaky_relu_inf_slope, K_BUILD, "hess_leaky_relu", A, "slope -inf", 0,                        \
      BUILD(hess_leaky_relu(f->ctx, f->v3, -INFINITY)))                                            \
    X(leaky_relu_foreign, K_BUILD, "hess_leaky_relu", A, "another context", 0,                     \
      BUILD(hess_leaky_relu(f->ctx, f->fx3, 0.1)))                                                 \
    X(leaky_relu_freed, K_BUILD, "hess_leaky_relu", ST, "freed", 0,                                \
      BUILD(hess_leaky_relu(f->ctx, f->dead, 0.1)))                                                \
    X(leaky_relu_nan, K_BUILD, "hess_leaky_relu", OK, NULL, 0,                                     \
      BUILD_NF(hess_leaky_relu(f->ctx, f->nan3, 0.1)))                                             \
    X(leaky_relu_nan_checked, K_BUILD, "hess_leaky_relu", NF, "non-finite", F_FINITE,              \
      BUILD(hess_leaky_relu(f->ctx, f->nan3, 0.1)))                                                \
    X(clamp_null_ctx, K_BUILD, "hess_clamp", A, NULL, F_NOCTX,                                     \
      BUILD_NOCTX(hess_clamp(NULL, f->v3, 0, 1)))                                                  \
    X(clamp_null_a, K_BUILD, "hess_clamp", A, "NULL", 0, BUILD(hess_clamp(f->ctx, NULL, 0, 1)))    \
    X(clamp_nan_lo, K_BUILD, "hess_clamp", A, "NaN is no bound", 0,                                \
      BUILD(hess_clamp(f->ctx, f->v3, NAN, 1)))                                                    \
    X(clamp_nan_hi, K_BUILD, "hess_clamp", A, "hi = nan", 0,                                       \
      BUILD(hess_clamp(f->ctx, f->v3, 0, NAN)))                                                    \
    X(clamp_foreign, K_BUILD, "hess_clamp", A, "another context", 0,                               \
      BUILD(hess_clamp(f->ctx, f->fx3, 0, 1)))                                                     \
    X(clamp_freed, K_BUILD, "hess_clamp", ST, "freed", 0,                                          \
      BUILD(hess_clamp(f->ctx, f->dead, 0, 1)))                                                    \
    /* infinite bounds clamp nothing; lo > hi gives hi (PyTorch) */                                \
    X(clamp_inf_bounds, K_BUILD, "hess_clamp", OK, NULL, F_FINITE,                                 \
      BUILD(hess_clamp(f->ctx, f->v3, -INFINITY, INFINITY)))                                       \
    X(clamp_lo_above_hi, K_BUILD, "hess_clamp", OK, NULL, 0,                                       \
      BUILD(hess_clamp(f->ctx, f->v3, 2, 1)))                                                      \
    X(clamp_nan, K_BUILD, "hess_clamp", OK, NULL, 0, BUILD_NF(hess_clamp(f->ctx, f->nan3, 0, 1)))  \
    X(clamp_nan_checked, K_BUILD, "hess_clamp", NF, "non-finite", F_FINITE,                        \
      BUILD(hess_clamp(f->ctx, f->nan3, 0, 1)))                                                    \
    /* linear algebra and shapes */                                                                \
    X(matmul_null_ctx, K_BUILD, "hess_matmul", A, NULL, F_NOCTX,                                   \
      BUILD_NOCTX(hess_matmul(NULL, f->m23, f->v3)))                                               \
    X(matmul_null_a, K_BUILD, "hess_matmul", A, "NULL", 0,                                         \
      BUILD(hess_matmul(f->ctx, NULL, f->v3)))                                                     \
    X(matmul_null_b, K_BUILD, "hess_matmul", A, "NULL", 0,                                         \
      BUILD(hess_matmul(f->ctx, f->m23, NULL)))                                                    \
    X(matmul_inner_dims, K_BUILD, "hess_matmul", SH, "inner dimensions", 0,                        \
      BUILD(hess_matmul(f->ctx, f->m23, f->m45)))                                                  \
    X(matmul_inner_dims_square, K_BUILD, "hess_matmul", SH, "inner dimensions", 0,                 \
      BUILD(hess_matmul(f->ctx, f->m23, f->m23)))                                                  \
    X(matmul_vec_vec, K_BUILD, "hess_matmul", SH, "inner dimensions", 0,                           \
      BUILD(hess_matmul(f->ctx, f->v3, f->v4)))                                                    \
    X(matmul_mat_vec, K_BUILD, "hess_matmul", SH, "inner dimensions", 0,                           \
      BUILD(hess_matmul(f->ctx, f->m23, f->v4)))                                                   \
    X(matmul_vec_mat, K_BUILD, "hess_matmul", SH, "inner dimensions", 0,                           \
      BUILD(hess_matmul(f->ctx, f->v3, f->m45)))                                                   \
    X(matmul_scalar, K_BUILD, "hess_matmul", SH, "inner dimensions", 0,                            \
      BUILD(hess_matmul(f->ctx, f->s, f->v3)))                                                     \
    X(matmul_batch_no_broadcast, K_BUILD, "hess_matmul", SH, "[2,2,3]", 0,                         \
      BUILD(hess_matmul(f->ctx, f->m223, f->m334)))                                                \
    X(matmul_foreign, K_BUILD, "hess_matmul", A, "another context", 0,                             \
      BUILD(hess_matmul(f->ctx, f->fx3, f->v3)))                                                   \
    X(matmul_freed, K_BUILD, "hess_matmul", ST, "freed", 0,                                        \
      BUILD(hess_matmul(f->ctx, f->m23, f->dead)))                                                 \
    X(matmul_nan, K_BUILD, "hess_matmul", OK, NULL, 0,                                             \
      BUILD_NF(hess_matmul(f->ctx, f->m23, f->nan3)))                                              \
    X(matmul_nan_checked, K_BUILD, "hess_matmul", NF, "non-finite", F_FINITE,                      \
      BUILD(hess_matmul(f->ctx, f->m23, f->nan3)))                                                 \
    X(transpose_null_ctx, K_BUILD, "hess_transpose", A, NULL, F_NOCTX,                             \
      BUILD_NOCTX(hess_transpose(NULL, f->m23)))                                                   \
    X(transpose_null, K_BUILD, "hess_transpose", A, "NULL", 0,                                     \
      BUILD(hess_transpose(f->ctx, NULL)))                                                         \
    X(transpose_vector, K_BUILD, "hess_transpose", SH, "rank", 0,                                  \
      BUILD(hess_transpose(f->ctx, f->v3)))                                                        \
    X(transpose_scalar, K_BUILD, "hess_transpose", SH, "rank", 0,                                  \
      BUILD(hess_transpose(f->ctx, f->s)))                                                         \
    X(transpose_foreign, K_BUILD, "hess_transpose", A, "another context", 0,                       \
      BUILD(hess_transpose(f->ctx, f->fx3)))                                                       \
    X(transpose_freed, K_BUILD, "hess_transpose", ST, "freed", 0,                                  \
      BUILD(hess_transpose(f->ctx, f->dead)))                                                      \
    X(reshape_null_ctx, K_BUILD, "hess_reshape", A, NULL, F_NOCTX,                                 \
      BUILD_NOCTX(hess_reshape(NULL, f->m23, 1, SHAPE(6))))                                        \
    X(reshape_null_a, K_BUILD, "hess_reshape", A, "NULL", 0,                                       \
      BUILD(hess_reshape(f->ctx, NULL, 1, SHAPE(6))))                                              \
    X(reshape_count_differs, K_BUILD, "hess_reshape", SH, "[2,3]", 0,                              \
      BUILD(hess_reshape(f->ctx, f->m23, 1, SHAPE(4))))                                            \
    X(reshape_rank_too_big, K_BUILD, "hess_reshape", A, "rank", 0,                                 \
      BUILD(hess_reshape(f->ctx, f->m23, 7, SHAPE(1, 1, 1, 1, 1, 2, 3))))                          \
    X(reshape_rank_negative, K_BUILD, "hess_reshape", A, "rank", 0,                                \
      BUILD(hess_reshape(f->ctx, f->m23, -2, SHAPE(6))))                                           \
    X(reshape_null_shape, K_BUILD, "hess_reshape", A, "NULL", 0,                                   \
      BUILD(hess_reshape(f->ctx, f->m23, 2, NULL)))                                                \
    X(reshape_dim_zero, K_BUILD, "hess_reshape", A, "dimension", 0,                                \
      BUILD(hess_reshape(f->ctx, f->m23, 2, SHAPE(6, 0))))                                         \
    X(reshape_overflow_int64, K_BUILD, "hess_reshape", SH, "[2,3]", 0,                             \
      BUILD(hess_reshape(f->ctx, f->m23, 2, SHAPE(INT64_MAX, 2))))                                 \
    X(reshape_overflow_wraps_to_6, K_BUILD, "hess_reshape", SH, "[2,3]", 0,                        \
      BUILD(hess_reshape(f->ctx, f->m23, 3, SHAPE(6, BAD_LIMIT, BAD_LIMIT))))                      \
    X(reshape_foreign, K_BUILD, "hess_reshape", A, "another context", 0,                           \
      BUILD(hess_reshape(f->ctx, f->fx3, 1, SHAPE(3))))                                            \
    X(reshape_freed, K_BUILD, "hess_reshape", ST, "freed", 0,                                      \
      BUILD(hess_reshape(f->ctx, f->dead, 1, SHAPE(3))))                                           \
    X(reshape_infer, K_BUILD, "hess_reshape", OK, NULL, 0,                                         \
      BUILD(hess_reshape(f->ctx, f->m23, 3, SHAPE(3, -1, 1))))                                     \
    X(reshape_infer_twice, K_BUILD, "hess_reshape", A, "more than one -1", 0,                      \
      BUILD(hess_reshape(f->ctx, f->m23, 2, SHAPE(-1, -1))))                                       \
    X(reshape_infer_not_divisible, K_BUILD, "hess_reshape", SH, "[-1,4]", 0,                       \
      BUILD(hess_reshape(f->ctx, f->m23, 2, SHAPE(-1, 4))))                                        \
    X(reshape_infer_too_big, K_BUILD, "hess_reshape", SH, "[2,3]", 0,                              \
      BUILD(hess_reshape(f->ctx, f->m23, 3, SHAPE(-1, BAD_LIMIT, BAD_LIMIT))))                     \
    X(reshape_infer_dim_zero, K_BUILD, "hess_reshape", A, "dimension", 0,                          \
      BUILD(hess_reshape(f->ctx, f->m23, 2, SHAPE(-1, 0))))                                        \
    X(reshape_minus_two, K_BUILD, "hess_reshape", A, "dimension", 0,                               \
      BUILD(hess_reshape(f->ctx, f->m23, 2, SHAPE(-2, 3))))                                        \
    X(reshape_infer_freed, K_BUILD, "hess_reshape", ST, "freed", 0,                                \
      BUILD(hess_reshape(f->ctx, f->dead, 1, SHAPE(-1))))                                          \
    X(permute_null_ctx, K_BUILD, "hess_permute", A, NULL, F_NOCTX,                                 \
      BUILD_NOCTX(hess_permute(NULL, f->m23, (const int[]){1, 0})))                                \
    X(permute_null_a, K_BUILD, "hess_permute", A, "NULL", 0,                                       \
      BUILD(hess_permute(f->ctx, NULL, (const int[]){1, 0})))                                      \
    X(permute_null_perm, K_BUILD, "hess_permute", A, "NULL perm", 0,                               \
      BUILD(hess_permute(f->ctx, f->m23, NULL)))                                                   \
    X(permute_scalar, K_BUILD, "hess_permute", OK, NULL, 0,                                        \
      BUILD(hess_permute(f->ctx, f->s, NULL)))                                                     \
    X(permute_out_of_range, K_BUILD, "hess_permute", A, "out of range", 0,                         \
      BUILD(hess_permute(f->ctx, f->m23, (const int[]){0, 2})))                                    \
    X(permute_negative_out_of_range, K_BUILD, "hess_permute", A, "out of range", 0,                \
      BUILD(hess_permute(f->ctx, f->m23, (const int[]){-3, 0})))                                   \
    X(permute_repeated, K_BUILD, "hess_permute", A, "repeats", 0,                                  \
      BUILD(hess_permute(f->ctx, f->m223, (const int[]){1, -2, 0})))                               \
    X(permute_foreign, K_BUILD, "hess_permute", A, "another context", 0,                           \
      BUILD(hess_permute(f->ctx, f->fx3, (const int[]){0})))                                       \
    X(permute_freed, K_BUILD, "hess_permute", ST, "freed", 0,                                      \
      BUILD(hess_permute(f->ctx, f->dead, (const int[]){0})))                                      \
    X(squeeze_null_ctx, K_BUILD, "hess_squeeze", A, NULL, F_NOCTX,                                 \
      BUILD_NOCTX(hess_squeeze(NULL, f->t3d, 1)))                                                  \
    X(squeeze_null_a, K_BUILD, "hess_squeeze", A, "NULL", 0, BUILD(hess_squeeze(f->ctx, NULL, 1))) \
    X(squeeze_axis_out_of_range, K_BUILD, "hess_squeeze", A, "out of range", 0,                    \
      BUILD(hess_squeeze(f->ctx, f->t3d, 3)))                                                      \
    X(squeeze_axis_negative_out_of_range, K_BUILD, "hess_squeeze", A, "out of range", 0,           \
      BUILD(hess_squeeze(f->ctx, f->t3d, -4)))                                                     \
    X(squeeze_scalar_axis_1, K_BUILD, "hess_squeeze", A, "out of range", 0,                        \
      BUILD(hess_squeeze(f->ctx, f->s, 1)))                                                        \
    X(squeeze_not_one, K_BUILD, "hess_squeeze", OK, NULL, 0,                                       \
      BUILD(hess_squeeze(f->ctx, f->t3d, 0)))                                                      \
    X(squeeze_foreign, K_BUILD, "hess_squeeze", A, "another context", 0,                           \
      BUILD(hess_squeeze(f->ctx, f->fx3, 0)))                                                      \
    X(squeeze_freed, K_BUILD, "hess_squeeze", ST, "freed", 0,                                      \
      BUILD(hess_squeeze(f->ctx, f->dead, 0)))                                                     \
    X(unsqueeze_null_ctx, K_BUILD, "hess_unsqueeze", A, NULL, F_NOCTX,                             \
      BUILD_NOCTX(hess_unsqueeze(NULL, f->m23, 0)))                                                \
    X(unsqueeze_null_a, K_BUILD, "hess_unsqueeze", A, "NULL", 0,                                   \
      BUILD(hess_unsqueeze(f->ctx, NULL, 0)))                                                      \
    X(unsqueeze_axis_out_of_range, K_BUILD, "hess_unsqueeze", A, "out of range", 0,                \
      BUILD(hess_unsqueeze(f->ctx, f->m23, 3)))                                                    \
    X(unsqueeze_axis_negative_out_of_range, K_BUILD, "hess_unsqueeze", A, "out of range", 0,       \
      BUILD(hess_unsqueeze(f->ctx, f->m23, -4)))                                                   \
    X(unsqueeze_rank_too_big, K_BUILD, "hess_unsqueeze", A, "exceed", 0,                           \
      BUILD(hess_unsqueeze(f->ctx, hess_reshape(f->ctx, f->m23, 6, SHAPE(1, 1, 1, 1, 2, 3)), 0)))  \
    X(unsqueeze_foreign, K_BUILD, "hess_unsqueeze", A, "another context", 0,                       \
      BUILD(hess_unsqueeze(f->ctx, f->fx3, 0)))                                                    \
    X(unsqueeze_freed, K_BUILD, "hess_unsqueeze", ST, "freed", 0,                                  \
      BUILD(hess_unsqueeze(f->ctx, f->dead, 0)))                                                   \
    X(cat_null_ctx, K_BUILD, "hess_cat", A, NULL, F_NOCTX,                                         \
      BUILD_NOCTX(hess_cat(NULL, 2, TL(f->m23, f->m23), 0)))                                       \
    X(cat_n_zero, K_BUILD, "hess_cat", A, "no tensors", 0,                                         \
      BUILD(hess_cat(f->ctx, 0, TL(f->m23), 0)))                                                   \
    X(cat_null_list, K_BUILD, "hess_cat", A, "no tensors", 0, BUILD(hess_cat(f->ctx, 2, NULL, 0))) \
    X(cat_null_entry, K_BUILD, "hess_cat", A, "ts[1] is NULL", 0,                                  \
      BUILD(hess_cat(f->ctx, 2, TL(f->m23, NULL), 0)))                                             \
    X(cat_shapes_differ, K_BUILD, "hess_cat", SH, "[4,5]", 0,                                      \
      BUILD(hess_cat(f->ctx, 2, TL(f->m23, f->m45), 0)))                                           \
    X(cat_ranks_differ, K_BUILD, "hess_cat", SH, "differ in rank", 0,                              \
      BUILD(hess_cat(f->ctx, 2, TL(f->v3, f->m23), 0)))                                            \
    X(cat_scalars, K_BUILD, "hess_cat", SH, "scalar", 0,                                           \
      BUILD(hess_cat(f->ctx, 2, TL(f->s, f->s), 0)))                                               \
    X(cat_axis_out_of_range, K_BUILD, "hess_cat", A, "out of range", 0,                            \
      BUILD(hess_cat(f->ctx, 2, TL(f->m23, f->m23), 2)))                                           \
    X(cat_foreign, K_BUILD, "hess_cat", A, "another context", 0,                                   \
      BUILD(hess_cat(f->ctx, 2, TL(f->v3, f->fx3), 0)))                                            \
    X(cat_freed, K_BUILD, "hess_cat", ST, "freed", 0,                                              \
      BUILD(hess_cat(f->ctx, 2, TL(f->v3, f->dead), 0)))                                           \
    X(cat_same_tensor, K_BUILD, "hess_cat", OK, NULL, 0,                                           \
      BUILD(hess_cat(f->ctx, 3, TL(f->m23, f->m23, f->m23), -1)))                                  \
    X(stack_null_ctx, K_BUILD, "hess_stack", A, NULL, F_NOCTX,                                     \
      BUILD_NOCTX(hess_stack(NULL, 2, TL(f->v3, f->v3), 0)))                                       \
    X(stack_n_zero, K_BUILD, "hess_stack", A, "no tensors", 0,                                     \
      BUILD(hess_stack(f->ctx, 0, TL(f->v3), 0)))                                                  \
    X(stack_null_entry, K_BUILD, "hess_stack", A, "ts[0] is NULL", 0,                              \
      BUILD(hess_stack(f->ctx, 2, TL(NULL, f->v3), 0)))                                            \
    X(stack_shapes_differ, K_BUILD, "hess_stack", SH, "one shape", 0,                              \
      BUILD(hess_stack(f->ctx, 2, TL(f->v3, f->v4), 0)))                                           \
    X(stack_axis_out_of_range, K_BUILD, "hess_stack", A, "out of range", 0,                        \
      BUILD(hess_stack(f->ctx, 2, TL(f->m23, f->m23), -4)))                                        \
    X(stack_scalars, K_BUILD, "hess_stack", OK, NULL, 0,                                           \
      BUILD(hess_stack(f->ctx, 2, TL(f->s, f->s), 0)))                                             \
    X(stack_foreign, K_BUILD, "hess_stack", A, "another context", 0,                               \
      BUILD(hess_stack(f->ctx, 2, TL(f->fx3, f->v3), 0)))                                          \
    X(stack_freed, K_BUILD, "hess_stack", ST, "freed", 0,                                          \
      BUILD(hess_stack(f->ctx, 2, TL(f->v3, f->dead), 0)))                                         \
    X(slice_null_ctx, K_BUILD, "hess_slice", A, NULL, F_NOCTX,                                     \
      BUILD_NOCTX(hess_slice(NULL, f->m23, 1, 0, 2, 1)))                                           \
    X(slice_null_a, K_BUILD, "hess_slice", A, "NULL", 0,                                           \
      BUILD(hess_slice(f->ctx, NULL, 1, 0, 2, 1)))                                                 \
    X(slice_axis_out_of_range, K_BUILD, "hess_slice", A, "axis", 0,                                \
      BUILD(hess_slice(f->ctx, f->m23, 2, 0, 2, 1)))                                               \
    X(slice_scalar, K_BUILD, "hess_slice", A, "axis", 0,                                           \
      BUILD(hess_slice(f->ctx, f->s, 0, 0, 1, 1)))                                                 \
    X(slice_step_zero, K_BUILD, "hess_slice", A, "step", 0,                                        \
      BUILD(hess_slice(f->ctx, f->m23, 1, 0, 2, 0)))                                               \
    X(slice_step_negative, K_BUILD, "hess_slice", A, "step", 0,                                    \
      BUILD(hess_slice(f->ctx, f->m23, 1, 2, 0, -1)))                                              \
    X(slice_empty, K_BUILD, "hess_slice", SH, "empty", 0,                                          \
      BUILD(hess_slice(f->ctx, f->m23, 1, 2, 1, 1)))                                               \
    X(slice_empty_past_end, K_BUILD, "hess_slice", SH, "empty", 0,                                 \
      BUILD(hess_slice(f->ctx, f->m23, -1, 5, INT64_MAX, 1)))                                      \
    X(slice_empty_extremes, K_BUILD, "hess_slice", SH, "empty", 0,                                 \
      BUILD(hess_slice(f->ctx, f->m23, 0, INT64_MIN, INT64_MIN, INT64_MAX)))                       \
    X(slice_huge_step, K_BUILD, "hess_slice", OK, NULL, 0,                                         \
      BUILD(hess_slice(f->ctx, f->m23, 1, INT64_MIN, INT64_MAX, INT64_MAX)))                       \
    X(slice_foreign, K_BUILD, "hess_slice", A, "another context", 0,                               \
      BUILD(hess_slice(f->ctx, f->fx3, 0, 0, 2, 1)))                                               \
    X(slice_freed, K_BUILD, "hess_slice", ST, "freed", 0,                                          \
      BUILD(hess_slice(f->ctx, f->dead, 0, 0, 2, 1)))                                              \
    X(index_select_null_ctx, K_BUILD, "hess_index_select", A, NULL, F_NOCTX,                       \
      BUILD_NOCTX(hess_index_select(NULL, f->m23, 1, 2, (const int64_t[]){0, 2})))                 \
    X(index_select_null_a, K_BUILD, "hess_index_select", A, "NULL", 0,                             \
      BUILD(hess_index_select(f->ctx, NULL, 1, 2, (const int64_t[]){0, 2})))                       \
    X(index_select_null_idx, K_BUILD, "hess_index_select", A, "NULL idx", 0,                       \
      BUILD(hess_index_select(f->ctx, f->m23, 1, 2, NULL)))                                        \
    X(index_select_too_many, K_BUILD, "hess_index_select", A, "too many idx", 0,                   \
      BUILD(hess_index_select(f->ctx, f->m23, 1, SIZE_MAX, (const int64_t[]){0, 1})))              \
    X(index_select_none, K_BUILD, "hess_index_select", SH, "empty", 0,                             \
      BUILD(hess_index_select(f->ctx, f->m23, 1, 0, (const int64_t[]){0})))                        \
    X(index_select_negative, K_BUILD, "hess_index_select", A, "outside [0,3)", 0,                  \
      BUILD(hess_index_select(f->ctx, f->m23, 1, 2, (const int64_t[]){0, -1})))                    \
    X(index_select_too_big, K_BUILD, "hess_index_select", A, "outside [0,2)", 0,                   \
      BUILD(hess_index_select(f->ctx, f->m23, 0, 2, (const int64_t[]){1, 2})))                     \
    X(index_select_axis_out_of_range, K_BUILD, "hess_index_select", A, "axis", 0,                  \
      BUILD(hess_index_select(f->ctx, f->m23, -3, 1, (const int64_t[]){0})))                       \
    X(index_select_foreign, K_BUILD, "hess_index_select", A, "another context", 0,                 \
      BUILD(hess_index_select(f->ctx, f->fx3, 0, 1, (const int64_t[]){0})))                        \
    X(index_select_freed, K_BUILD, "hess_index_select", ST, "freed", 0,                            \
      BUILD(hess_index_select(f->ctx, f->dead, 0, 1, (const int64_t[]){0})))                       \
    X(gather_null_ctx, K_BUILD, "hess_gather", A, NULL, F_NOCTX,                                   \
      BUILD_NOCTX(hess_gather(NULL, f->m23, 1, f->m23)))                                           \
    X(gather_null_a, K_BUILD, "hess_gather", A, "NULL", 0,                                         \
      BUILD(hess_gather(f->ctx, NULL, 1, IDX22(0, 1, 2, 0))))                                      \
    X(gather_null_index, K_BUILD, "hess_gather", A, "NULL", 0,                                     \
      BUILD(hess_gather(f->ctx, f->m23, 1, NULL)))                                                 \
    X(gather_ranks_differ, K_BUILD, "hess_gather", SH, "rank", 0,                                  \
      BUILD(hess_gather(f->ctx, f->m23, 0, hess_tensor_new(f->ctx, 1, SHAPE(2), NULL))))           \
    X(gather_index_larger, K_BUILD, "hess_gather", SH, "does not fit", 0,                          \
      BUILD(hess_gather(f->ctx, f->m23, 0, hess_tensor_new(f->ctx, 2, SHAPE(1, 4), NULL))))        \
    X(gather_axis_out_of_range, K_BUILD, "hess_gather", A, "axis", 0,                              \
      BUILD(hess_gather(f->ctx, f->m23, 2, IDX22(0, 1, 2, 0))))                                    \
    X(gather_index_too_big, K_BUILD, "hess_gather", A, "[0,3)", 0,                                 \
      BUILD(hess_gather(f->ctx, f->m23, 1, IDX22(0, 1, 3, 0))))                                    \
    X(gather_index_negative, K_BUILD, "hess_gather", A, "[0,2)", 0,                                \
      BUILD(hess_gather(f->ctx, f->m23, 0, IDX22(0, -1, 1, 0))))                                   \
    X(gather_index_not_integral, K_BUILD, "hess_gather", A, "integers", 0,                         \
      BUILD(hess_gather(f->ctx, f->m23, 1, IDX22(0, 0.5, 1, 0))))                                  \
    X(gather_index_nan, K_BUILD, "hess_gather", A, "integers", 0,                                  \
      BUILD(hess_gather(f->ctx, f->m23, 1, IDX22(0, 1, NAN, 0))))                                  \
    X(gather_foreign, K_BUILD, "hess_gather", A, "another context", 0,                             \
      BUILD(hess_gather(f->ctx, f->fx3, 0, f->v3)))                                                \
    X(gather_foreign_index, K_BUILD, "hess_gather", A, "another context", 0,                       \
      BUILD(hess_gather(f->ctx, f->v3, 0, f->fx3)))                                                \
    X(gather_freed, K_BUILD, "hess_gather", ST, "freed", 0,                                        \
      BUILD(hess_gather(f->ctx, f->v3, 0, f->dead)))                                               \
    X(gather_grad_index, K_OTHER, "hess_grad", ND, "no derivative", 0, CALL(grad_gather_index(f))) \
    X(sum_axis_out_of_range, K_BUILD, "hess_sum_axis", A, "axis", 0,                               \
      BUILD(hess_sum_axis(f->ctx, f->v3, 1)))                                                      \
    X(sum_axis_negative_out_of_range, K_BUILD, "hess_sum_axis", A, "axis", 0,                      \
      BUILD(hess_sum_axis(f->ctx, f->m23, -3)))                                                    \
    X(sum_axis_scalar, K_BUILD, "hess_sum_axis", A, "axis", 0,                                     \
      BUILD(hess_sum_axis(f->ctx, f->s, 0)))                                                       \
    X(sum_axis_null, K_BUILD, "hess_sum_axis", A, "NULL", 0,                                       \
      BUILD(hess_sum_axis(f->ctx, NULL, 0)))                                                       \
    X(sum_axis_null_ctx, K_BUILD, "hess_sum_axis", A, NULL, F_NOCTX,                               \
      BUILD_NOCTX(hess_sum_axis(NULL, f->v3, 0)))                                                  \
    X(sum_axis_foreign, K_BUILD, "hess_sum_axis", A, "another context", 0,                         \
      BUILD(hess_sum_axis(f->ctx, f->fx3, 0)))                                                     \
    X(sum_axis_freed, K_BUILD, "hess_sum_axis", ST, "freed", 0,                                    \
      BUILD(hess_sum_axis(f->ctx, f->dead, 0)))                                                    \
    X(mean_axis_out_of_range, K_BUILD, "hess_mean_axis", A, "axis", 0,                             \
      BUILD(hess_mean_axis(f->ctx, f->m23, 2)))                                                    \
    X(mean_axis_null, K_BUILD, "hess_mean_axis", A, "NULL", 0,                                     \
      BUILD(hess_mean_axis(f->ctx, NULL, 0)))                                                      \
    X(mean_axis_freed, K_BUILD, "hess_mean_axis", ST, "freed", 0,                                  \
      BUILD(hess_mean_axis(f->ctx, f->dead, 0)))                                                   \
    X(mean_axis_nan_checked, K_BUILD, "hess_mean_axis", NF, "non-finite", F_FINITE,                \
      BUILD(hess_mean_axis(f->ctx, f->nan3, 0)))                                                   \
    REDUCE_ROWS(X, sum_axes, R5, R5_KEEP)                                                          \
    REDUCE_ROWS(X, mean_axes, R5, R5_KEEP)                                                         \
    REDUCE_ROWS(X, amax, R5, R5_KEEP)                                                              \
    REDUCE_ROWS(X, amin, R5, R5_KEEP)                                                              \
    REDUCE_ROWS(X, logsumexp, R5, R5_KEEP)                                                         \
    REDUCE_ROWS(X, var, R6, R6_KEEP)                                                               \
    REDUCE_ROWS(X, std, R6, R6_KEEP)                                                               \
    X(logsumexp_inf, K_BUILD, "hess_logsumexp", OK, NULL, 0,                                       \
      BUILD_NF(hess_logsumexp(f->ctx, f->inf3, 0, NULL, 0)))                                       \
    X(var_correction_too_big, K_BUILD, "hess_var", OK, NULL, 0,                                    \
      BUILD_NF(hess_var(f->ctx, f->v3, 0, NULL, 3, 0)))                                            \
    X(var_correction_too_big_checked, K_BUILD, "hess_var", NF, "non-finite", F_FINITE,             \
      BUILD(hess_var(f->ctx, f->v3, 0, NULL, 4, 1)))                                               \
    X(std_correction_too_big, K_BUILD, "hess_std", OK, NULL, 0,                                    \
      BUILD_NF(hess_std(f->ctx, f->m23, 1, AXS(-1), 3, 0)))                                        \
    X(norm_p, K_BUILD, "hess_norm", A, "p = 3 is not 1, 2 or INFINITY", 0,                         \
      BUILD(hess_norm(f->ctx, f->v3, 3)))                                                          \
    X(norm_p_nan, K_BUILD, "hess_norm", A, "p = nan", 0, BUILD(hess_norm(f->ctx, f->v3, NAN)))     \
    X(norm_p_minus_inf, K_BUILD, "hess_norm", A, "p = -inf", 0,                                    \
      BUILD(hess_norm(f->ctx, f->v3, -INFINITY)))                                                  \
    X(norm_null_ctx, K_BUILD, "hess_norm", A, NULL, F_NOCTX,                                       \
      BUILD_NOCTX(hess_norm(NULL, f->v3, 2)))                                                      \
    X(norm_null_a, K_BUILD, "hess_norm", A, "NULL", 0, BUILD(hess_norm(f->ctx, NULL, 1)))          \
    X(norm_foreign, K_BUILD, "hess_norm", A, "another context", 0,                                 \
      BUILD(hess_norm(f->ctx, f->fx3, INFINITY)))                                                  \
    X(norm_freed, K_BUILD, "hess_norm", ST, "freed", 0, BUILD(hess_norm(f->ctx, f->dead, 2)))      \
    X(norm_nan, K_BUILD, "hess_norm", OK, NULL, 0, BUILD_NF(hess_norm(f->ctx, f->nan3, 2)))        \
    X(norm_inf_checked, K_BUILD, "hess_norm", NF, "non-finite", F_FINITE,                          \
      BUILD(hess_norm(f->ctx, f->inf3, 1)))                                                        \
    X(sum_to_null_ctx, K_BUILD, "hess_sum_to", A, NULL, F_NOCTX,                                   \
      BUILD_NOCTX(hess_sum_to(NULL, f->m23, 1, SHAPE(3))))                                         \
    X(sum_to_impossible, K_BUILD, "hess_sum_to", SH, "[2,3]", 0,                                   \
      BUILD(hess_sum_to(f->ctx, f->m23, 1, SHAPE(2))))                                             \
    X(sum_to_bigger, K_BUILD, "hess_sum_to", SH, "[2,3]", 0,                                       \
      BUILD(hess_sum_to(f->ctx, f->m23, 3, SHAPE(2, 2, 3))))                                       \
    X(sum_to_rank_too_big, K_BUILD, "hess_sum_to", A, "rank", 0,                                   \
      BUILD(hess_sum_to(f->ctx, f->m23, 7, SHAPE(1, 1, 1, 1, 1, 1, 3))))                           \
    X(sum_to_dim_zero, K_BUILD, "hess_sum_to", A, "dimension", 0,                                  \
      BUILD(hess_sum_to(f->ctx, f->m23, 1, SHAPE(0))))                                             \
    X(sum_to_null_shape, K_BUILD, "hess_sum_to", A, "NULL", 0,                                     \
      BUILD(hess_sum_to(f->ctx, f->m23, 1, NULL)))                                                 \
    X(sum_to_null, K_BUILD, "hess_sum_to", A, "NULL", 0,                                           \
      BUILD(hess_sum_to(f->ctx, NULL, 0, NULL)))                                                   \
    X(sum_to_foreign, K_BUILD, "hess_sum_to", A, "another context", 0,                             \
      BUILD(hess_sum_to(f->ctx, f->fx3, 0, NULL)))                                                 \
    X(sum_to_freed, K_BUILD, "hess_sum_to", ST, "freed", 0,                                        \
      BUILD(hess_sum_to(f->ctx, f->dead, 0, NULL)))                                                \
    X(broadcast_to_null_ctx, K_BUILD, "hess_broadcast_to", A, NULL, F_NOCTX,                       \
      BUILD_NOCTX(hess_broadcast_to(NULL, f->m23, 3, SHAPE(2, 2, 3))))                             \
    X(broadcast_to_impossible, K_BUILD, "hess_broadcast_to", SH, "[2,3]", 0,                       \
      BUILD(hess_broadcast_to(f->ctx, f->m23, 2, SHAPE(4, 5))))                                    \
    X(broadcast_to_smaller, K_BUILD, "hess_broadcast_to", SH, "[2,3]", 0,                          \
      BUILD(hess_broadcast_to(f->ctx, f->m23, 1, SHAPE(3))))                                       \
    X(broadcast_to_rank_too_big, K_BUILD, "hess_broadcast_to", A, "rank", 0,                       \
      BUILD(hess_broadcast_to(f->ctx, f->s, 7, SHAPE(1, 1, 1, 1, 1, 1, 1))))                       \
    X(broadcast_to_dim_negative, K_BUILD, "hess_broadcast_to", A, "dimension", 0,                  \
      BUILD(hess_broadcast_to(f->ctx, f->s, 2, SHAPE(2, -1))))                                     \
    X(broadcast_to_null_shape, K_BUILD, "hess_broadcast_to", A, "NULL", 0,                         \
      BUILD(hess_broadcast_to(f->ctx, f->s, 2, NULL)))                                             \
    X(broadcast_to_too_big_for_memory, K_BUILD, "hess_broadcast_to", NM, "out of memory", 0,       \
      BUILD(hess_broadcast_to(f->ctx, f->s, 2, SHAPE(INT64_C(1) << 20, INT64_C(1) << 20))))        \
    X(broadcast_to_overflow_bytes, K_BUILD, "hess_broadcast_to", A, "overflow", 0,                 \
      BUILD(hess_broadcast_to(f->ctx, f->s, 2, SHAPE(INT64_C(1) << 31, INT64_C(1) << 31))))        \
    X(broadcast_to_overflow_int64, K_BUILD, "hess_broadcast_to", A, "overflow", 0,                 \
      BUILD(hess_broadcast_to(f->ctx, f->s, 2, SHAPE(BAD_LIMIT, BAD_LIMIT))))                      \
    X(broadcast_to_null, K_BUILD, "hess_broadcast_to", A, "NULL", 0,                               \
      BUILD(hess_broadcast_to(f->ctx, NULL, 1, SHAPE(3))))                                         \
    X(broadcast_to_foreign, K_BUILD, "hess_broadcast_to", A, "another context", 0,                 \
      BUILD(hess_broadcast_to(f->ctx, f->fx3, 2, SHAPE(2, 3))))                                    \
    X(broadcast_to_freed, K_BUILD, "hess_broadcast_to", ST, "freed", 0,                            \
      BUILD(hess_broadcast_to(f->ctx, f->dead, 2, SHAPE(2, 3))))                                   \
    /* softmax family */                                                                           \
    X(log_softmax_axis, K_BUILD, "hess_log_softmax", A, "axis", 0,                                 \
      BUILD(hess_log_softmax(f->ctx, f->v3, 1)))                                                   \
    X(log_softmax_axis_negative, K_BUILD, "hess_log_softmax", A, "axis", 0,                        \
      BUILD(hess_log_softmax(f->ctx, f->m23, -3)))                                                 \
    X(log_softmax_scalar, K_BUILD, "hess_log_softmax", A, "axis", 0,                               \
      BUILD(hess_log_softmax(f->ctx, f->s, 0)))                                                    \
    X(log_softmax_null, K_BUILD, "hess_log_softmax", A, "NULL", 0,                                 \
      BUILD(hess_log_softmax(f->ctx, NULL, 0)))                                                    \
    X(log_softmax_null_ctx, K_BUILD, "hess_log_softmax", A, NULL, F_NOCTX,                         \
      BUILD_NOCTX(hess_log_softmax(NULL, f->v3, 0)))                                               \
    X(log_softmax_foreign, K_BUILD, "hess_log_softmax", A, "another context", 0,                   \
      BUILD(hess_log_softmax(f->ctx, f->fx3, 0)))                                                  \
    X(log_softmax_freed, K_BUILD, "hess_log_softmax", ST, "freed", 0,                              \
      BUILD(hess_log_softmax(f->ctx, f->dead, 0)))                                                 \
    X(log_softmax_nan, K_BUILD, "hess_log_softmax", OK, NULL, 0,                                   \
      BUILD_NF(hess_log_softmax(f->ctx, f->nan3, 0)))                                              \
    X(log_softmax_inf_checked, K_BUILD, "hess_log_softmax", NF, "non-finite", F_FINITE,            \
      BUILD(hess_log_softmax(f->ctx, f->inf3, 0)))                                                 \
    X(softmax_axis, K_BUILD, "hess_softmax", A, "axis", 0, BUILD(hess_softmax(f->ctx, f->v3, 2)))  \
    X(softmax_null, K_BUILD, "hess_softmax", A, "NULL", 0, BUILD(hess_softmax(f->ctx, NULL, 0)))   \
    X(softmax_null_ctx, K_BUILD, "hess_softmax", A, NULL, F_NOCTX,                                 \
      BUILD_NOCTX(hess_softmax(NULL, f->v3, 0)))                                                   \
    X(softmax_foreign, K_BUILD, "hess_softmax", A, "another context", 0,                           \
      BUILD(hess_softmax(f->ctx, f->fx3, 0)))                                                      \
    X(softmax_freed, K_BUILD, "hess_softmax", ST, "freed", 0,                                      \
      BUILD(hess_softmax(f->ctx, f->dead, 0)))                                                     \
    X(softmax_nan_checked, K_BUILD, "hess_softmax", NF, "non-finite", F_FINITE,                    \
      BUILD(hess_softmax(f->ctx, f->nan3, 0)))                                                     \
    /* layers and losses */                                                                        \
    X(linear_null_ctx, K_BUILD, "hess_linear", A, NULL, F_NOCTX,                                   \
      BUILD_NOCTX(hess_linear(NULL, f->v3, f->m23, NULL)))                                         \
    X(linear_null_x, K_BUILD, "hess_linear", A, "NULL", 0,                                         \
      BUILD(hess_linear(f->ctx, NULL, f->m23, NULL)))                                              \
    X(linear_null_W, K_BUILD, "hess_linear", A, "NULL", 0,                                         \
      BUILD(hess_linear(f->ctx, f->v3, NULL, NULL)))                                               \
    X(linear_W_vector, K_BUILD, "hess_linear", SH, "does not fit W", 0,                            \
      BUILD(hess_linear(f->ctx, f->v3, f->v3, NULL)))                                              \
    X(linear_W_wrong_in, K_BUILD, "hess_linear", SH, "does not fit W", 0,                          \
      BUILD(hess_linear(f->ctx, f->v4, f->m23, NULL)))                                             \
    X(linear_W_batch_wrong_in, K_BUILD, "hess_linear", SH, "does not fit W", 0,                    \
      BUILD(hess_linear(f->ctx, f->x, f->m45, NULL)))                                              \
    X(linear_x_rank3, K_BUILD, "hess_linear", SH, "does not fit W", 0,                             \
      BUILD(hess_linear(f->ctx, f->t3d, f->m23, NULL)))                                            \
    X(linear_x_scalar, K_BUILD, "hess_linear", SH, "does not fit W", 0,                            \
      BUILD(hess_linear(f->ctx, f->s, f->m23, NULL)))                                              \
    X(linear_b_wrong_length, K_BUILD, "hess_linear", SH, "b [3]", 0,                               \
      BUILD(hess_linear(f->ctx, f->v3, f->m23, f->v3)))                                            \
    X(linear_b_matrix, K_BUILD, "hess_linear", SH, "b [2,3]", 0,                                   \
      BUILD(hess_linear(f->ctx, f->v3, f->m23, f->m23)))                                           \
    X(linear_foreign_W, K_BUILD, "hess_linear", A, "another context", 0,                           \
      BUILD(hess_linear(f->ctx, f->v3, f->fparam, NULL)))                                          \
    X(linear_freed_b, K_BUILD, "hess_linear", ST, "freed", 0,                                      \
      BUILD(hess_linear(f->ctx, f->v3, f->m23, f->dead)))                                          \
    X(linear_nan, K_BUILD, "hess_linear", OK, NULL, 0,                                             \
      BUILD_NF(hess_linear(f->ctx, f->nan3, f->m23, NULL)))                                        \
    X(linear_nan_checked, K_BUILD, "hess_linear", NF, "non-finite", F_FINITE,                      \
      BUILD(hess_linear(f->ctx, f->nan3, f->m23, NULL)))                                           \
    /* convolution and pooling */                                                                  \
    X(conv2d_null_ctx, K_BUILD, "hess_conv2d", A, NULL, F_NOCTX,                                   \
      BUILD_NOCTX(hess_conv2d(NULL, f->x4, f->w4, NULL, NULL)))                                    \
    X(conv2d_null_x, K_BUILD, "hess_conv2d", A, "NULL", 0,                                         \
      BUILD(hess_conv2d(f->ctx, NULL, f->w4, NULL, NULL)))                                         \
    X(conv2d_null_w, K_BUILD, "hess_conv2d", A, "NULL", 0,                                         \
      BUILD(hess_conv2d(f->ctx, f->x4, NULL, NULL, NULL)))                                         \
    X(conv2d_x_rank2, K_BUILD, "hess_conv2d", SH, "[N,C,H,W]", 0,                                  \
      BUILD(hess_conv2d(f->ctx, f->m23, f->w4, NULL, NULL)))                                       \
    X(conv2d_w_rank3, K_BUILD, "hess_conv2d", SH, "[O,C/groups,kh,kw]", 0,                         \
      BUILD(hess_conv2d(f->ctx, f->x4, f->m223, NULL, NULL)))                                      \
    X(conv2d_channels, K_BUILD, "hess_conv2d", SH, "channels", 0,                                  \
      BUILD(hess_conv2d(f->ctx, f->nan4, f->w4, NULL, NULL)))                                      \
    X(conv2d_groups, K_BUILD, "hess_conv2d", SH, "2 groups", 0,                                    \
      BUILD(hess_conv2d(f->ctx, f->x4, f->w4, NULL, &(hess_conv_opts){.groups = 2})))              \
    X(conv2d_kernel_too_big, K_BUILD, "hess_conv2d", SH, "smaller than the kernel", 0,             \
      BUILD(hess_conv2d(f->ctx, f->x4, f->w4, NULL, &(hess_conv_opts){.dilation = {3, 1}})))       \
    X(conv2d_b_wrong_length, K_BUILD, "hess_conv2d", SH, "b [3]", 0,                               \
      BUILD(hess_conv2d(f->ctx, f->x4, f->w4, f->v3, NULL)))                                       \
    X(conv2d_b_rank2, K_BUILD, "hess_conv2d", SH, "b [2,3] does not fit w [2,2,2,2]", 0,           \
      BUILD(hess_conv2d(f->ctx, f->x4, f->w4, f->m23, NULL)))                                      \
    X(conv2d_outputs_groups, K_BUILD, "hess_conv2d", SH, "2 input channels and 1 outputs", 0,      \
      BUILD(hess_conv2d(f->ctx, f->x4, f->nan4, NULL, &(hess_conv_opts){.groups = 2})))            \
    X(conv2d_kernel_too_wide, K_BUILD, "hess_conv2d", SH, "dilation (1,3)", 0,                     \
      BUILD(hess_conv2d(f->ctx, f->x4, f->w4, NULL, &(hess_conv_opts){.dilation = {1, 3}})))       \
    X(conv2d_bias_kernel_too_big, K_BUILD, "hess_conv2d", SH, "smaller than the kernel", 0,        \
      BUILD(hess_conv2d(f->ctx, f->x4, f->w4, f->p[1], &(hess_conv_opts){.dilation = {3, 1}})))    \
    X(conv2d_x3_groups, K_BUILD, "hess_conv2d", SH, "2 input channels", 0,                         \
      BUILD(hess_conv2d(f->ctx, f->m223, f->w4, NULL, &(hess_conv_opts){.groups = 2})))            \
    X(conv2d_negative_dilation, K_BUILD, "hess_conv2d", A, "dilation (0,-1)", 0,                   \
      BUILD(hess_conv2d(f->ctx, f->x4, f->w4, NULL, &(hess_conv_opts){.dilation = {0, -1}})))      \
    X(conv2d_negative_stride, K_BUILD, "hess_conv2d", A, "stride (1,-1)", 0,                       \
      BUILD(hess_conv2d(f->ctx, f->x4, f->w4, NULL, &(hess_conv_opts){.stride = {1, -1}})))        \
    X(conv2d_negative_padding, K_BUILD, "hess_conv2d", A, "padding (-2,0)", 0,                     \
      BUILD(hess_conv2d(f->ctx, f->x4, f->w4, NULL, &(hess_conv_opts){.padding = {-2, 0}})))       \
    X(conv2d_negative_groups, K_BUILD, "hess_conv2d", A, "groups -1", 0,                           \
      BUILD(hess_conv2d(f->ctx, f->x4, f->w4, NULL, &(hess_conv_opts){.groups = -1})))             \
    X(conv2d_foreign_w, K_BUILD, "hess_conv2d", A, "another context", 0,                           \
      BUILD(hess_conv2d(f->ctx, f->x4, f->fparam, NULL, NULL)))                                    \
    X(conv2d_freed_b, K_BUILD, "hess_conv2d", ST, "freed", 0,                                      \
      BUILD(hess_conv2d(f->ctx, f->x4, f->w4, f->dead, NULL)))                                     \
    X(conv2d_nan, K_BUILD, "hess_conv2d", OK, NULL, 0,                                             \
      BUILD_NF(hess_conv2d(f->ctx, f->nan4, f->nan4, NULL, NULL)))                                 \
    X(conv2d_nan_checked, K_BUILD, "hess_conv2d", NF, "non-finite", F_FINITE,                      \
      BUILD(hess_conv2d(f->ctx, f->nan4, f->nan4, NULL, NULL)))                                    \
    POOL_ROWS(X, avg_pool2d)                                                                       \
    POOL_ROWS(X, max_pool2d)                                                                       \
    X(mse_null_ctx, K_BUILD, "hess_mse_loss", A, NULL, F_NOCTX,                                    \
      BUILD_NOCTX(hess_mse_loss(NULL, f->v3, f->v3)))                                              \
    X(mse_null_pred, K_BUILD, "hess_mse_loss", A, "NULL", 0,                                       \
      BUILD(hess_mse_loss(f->ctx, NULL, f->v3)))                                                   \
    X(mse_null_target, K_BUILD, "hess_mse_loss", A, "NULL", 0,                                     \
      BUILD(hess_mse_loss(f->ctx, f->v3, NULL)))                                                   \
    X(mse_shapes_differ, K_BUILD, "hess_mse_loss", SH, "differ", 0,                                \
      BUILD(hess_mse_loss(f->ctx, f->v3, f->v4)))                                                  \
    X(mse_broadcastable_shapes, K_BUILD, "hess_mse_loss", SH, "differ", 0,                         \
      BUILD(hess_mse_loss(f->ctx, f->m23, f->v3)))                                                 \
    X(mse_foreign, K_BUILD, "hess_mse_loss", A, "another context", 0,                              \
      BUILD(hess_mse_loss(f->ctx, f->v3, f->fx3)))                                                 \
    X(mse_freed, K_BUILD, "hess_mse_loss", ST, "freed", 0,                                         \
      BUILD(hess_mse_loss(f->ctx, f->dead, f->v3)))                                                \
    X(mse_nan, K_BUILD, "hess_mse_loss", OK, NULL, 0,                                              \
      BUILD_NF(hess_mse_loss(f->ctx, f->v3, f->nan3)))                                             \
    X(mse_nan_checked, K_BUILD, "hess_mse_loss", NF, "non-finite", F_FINITE,                       \
      BUILD(hess_mse_loss(f->ctx, f->v3, f->nan3)))                                                \
    X(ce_null_ctx, K_BUILD, "hess_cross_entropy", A, NULL, F_NOCTX,                                \
      BUILD_NOCTX(hess_cross_entropy(NULL, f->logits, f->tgt)))                                    \
    X(ce_null_logits, K_BUILD, "hess_cross_entropy", A, "NULL", 0,                                 \
      BUILD(hess_cross_entropy(f->ctx, NULL, f->tgt)))                                             \
    X(ce_null_targets, K_BUILD, "hess_cross_entropy", A, "NULL", 0,                                \
      BUILD(hess_cross_entropy(f->ctx, f->logits, NULL)))                                          \
    X(ce_batch_differs, K_BUILD, "hess_cross_entropy", SH, "do not fit", 0,                        \
      BUILD(hess_cross_entropy(f->ctx, f->logits, f->v3)))                                         \
    X(ce_vector_logits_vector_target, K_BUILD, "hess_cross_entropy", SH, "do not fit", 0,          \
      BUILD(hess_cross_entropy(f->ctx, f->v3, f->v3)))                                             \
    X(ce_targets_2d, K_BUILD, "hess_cross_entropy", SH, "do not fit", 0,                           \
      BUILD(hess_cross_entropy(f->ctx, f->logits, f->m23)))                                        \
    X(ce_logits_rank3, K_BUILD, "hess_cross_entropy", SH, "do not fit", 0,                         \
      BUILD(hess_cross_entropy(f->ctx, f->t3d, f->tgt)))                                           \
    X(ce_scalar_logits, K_BUILD, "hess_cross_entropy", SH, "do not fit", 0,                        \
      BUILD(hess_cross_entropy(f->ctx, f->s, f->s)))                                               \
    X(ce_index_too_big, K_BUILD, "hess_cross_entropy", A, "class ind", 0,                          \
      BUILD(hess_cross_entropy(f->ctx, f->logits,                                                  \
                               hess_tensor_new(f->ctx, 1, SHAPE(2), (const double[]){0, 3}))))     \
    X(ce_index_negative, K_BUILD, "hess_cross_entropy", A, "class ind", 0,                         \
      BUILD(hess_cross_entropy(f->ctx, f->logits,                                                  \
                               hess_tensor_new(f->ctx, 1, SHAPE(2), (const double[]){-1, 0}))))    \
    X(ce_index_not_integral, K_BUILD, "hess_cross_entropy", A, "class ind", 0,                     \
      BUILD(hess_cross_entropy(f->ctx, f->logits,                                                  \
                               hess_tensor_new(f->ctx, 1, SHAPE(2), (const double[]){1, 0.5}))))   \
    X(ce_index_nan, K_BUILD, "hess_cross_entropy", A, "class ind", 0,                              \
      BUILD(hess_cross_entropy(f->ctx, f->logits,                                                  \
                               hess_tensor_new(f->ctx, 1, SHAPE(2), (const double[]){NAN, 0}))))   \
    X(ce_index_inf, K_BUILD, "hess_cross_entropy", A, "class ind", 0,                              \
      BUILD(hess_cross_entropy(                                                                    \
          f->ctx, f->logits,                                                                       \
          hess_tensor_new(f->ctx, 1, SHAPE(2), (const double[]){1, INFINITY}))))                   \
    X(ce_scalar_index_too_big, K_BUILD, "hess_cross_entropy", A, "class ind", 0,                   \
      BUILD(hess_cross_entropy(f->ctx, f->v3, hess_scalar(f->ctx, 3.0))))                          \
    X(ce_foreign, K_BUILD, "hess_cross_entropy", A, "another context", 0,                          \
      BUILD(hess_cross_entropy(f->ctx, f->fx3, f->tgt)))                                           \
    X(ce_freed, K_BUILD, "hess_cross_entropy", ST, "freed", 0,                                     \
      BUILD(hess_cross_entropy(f->ctx, f->logits, f->dead)))                                       \
    X(ce_nan_logits, K_BUILD, "hess_cross_entropy", OK, NULL, 0,                                   \
      BUILD_NF(hess_cross_entropy(f->ctx, f->nan3, hess_scalar(f->ctx, 0.0))))                     \
    X(ce_nan_logits_checked, K_BUILD, "hess_cross_entropy", NF, "non-finite", F_FINITE,            \
      BUILD(hess_cross_entropy(f->ctx, f->nan3, hess_scalar(f->ctx, 0.0))))                        \
    X(bce_null_ctx, K_BUILD, "hess_bce_with_logits", A, NULL, F_NOCTX,                             \
      BUILD_NOCTX(hess_bce_with_logits(NULL, f->v3, f->v3)))                                       \
    X(bce_null_logits, K_BUILD, "hess_bce_with_logits", A, "NULL", 0,                              \
      BUILD(hess_bce_with_logits(f->ctx, NULL, f->v3)))                                            \
    X(bce_null_targets, K_BUILD, "hess_bce_with_logits", A, "NULL", 0,                             \
      BUILD(hess_bce_with_logits(f->ctx, f->v3, NULL)))                                            \
    X(bce_shapes_differ, K_BUILD, "hess_bce_with_logits", SH, "differ", 0,                         \
      BUILD(hess_bce_with_logits(f->ctx, f->m23, f->v3)))                                          \
    X(bce_foreign, K_BUILD, "hess_bce_with_logits", A, "another context", 0,                       \
      BUILD(hess_bce_with_logits(f->ctx, f->fx3, f->v3)))                                          \
    X(bce_freed, K_BUILD, "hess_bce_with_logits", ST, "freed", 0,                                  \
      BUILD(hess_bce_with_logits(f->ctx, f->v3, f->dead)))                                         \
    X(bce_nan, K_BUILD, "hess_bce_with_logits", OK, NULL, 0,                                       \
      BUILD_NF(hess_bce_with_logits(f->ctx, f->nan3, f->pr3)))                                     \
    X(bce_nan_checked, K_BUILD, "hess_bce_with_logits", NF, "non-finite", F_FINITE,                \
      BUILD(hess_bce_with_logits(f->ctx, f->nan3, f->pr3)))                                        \
    X(bce_target_above_one, K_BUILD, "hess_bce_with_logits", A, "targets must be in [0, 1]", 0,    \
      BUILD(hess_bce_with_logits(f->ctx, f->v3, f->v3)))                                           \
    X(bce_target_nan, K_BUILD, "hess_bce_with_logits", A, "targets must be in [0, 1]", 0,          \
      BUILD(hess_bce_with_logits(f->ctx, f->v3, f->nan3)))                                         \
    /* losses with options */                                                                      \
    LOSS_PAIR_ROWS(X, mse_loss_ex, v3, c3, nan3)                                                   \
    X(mse_loss_ex_weight_not_taken, K_BUILD, "hess_mse_loss_ex", A, "takes no weight", 0,          \
      BUILD(hess_mse_loss_ex(f->ctx, f->v3, f->c3, LOPTS(.weight = f->c3))))                       \
    LOSS_PAIR_ROWS(X, l1_loss, v3, c3, nan3)                                                       \
    X(l1_loss_weight_not_taken, K_BUILD, "hess_l1_loss", A, "takes no weight", 0,                  \
      BUILD(hess_l1_loss(f->ctx, f->v3, f->c3, LOPTS(.weight = f->c3))))                           \
    LOSS_PAIR_ROWS(X, huber_loss, v3, c3, nan3)                                                    \
    X(huber_loss_weight_not_taken, K_BUILD, "hess_huber_loss", A, "takes no weight", 0,            \
      BUILD(hess_huber_loss(f->ctx, f->v3, f->c3, LOPTS(.weight = f->c3, .delta = 1))))            \
    X(huber_loss_delta_zero, K_BUILD, "hess_huber_loss", A, "delta 0 is not > 0", 0,               \
      BUILD(hess_huber_loss(f->ctx, f->v3, f->c3, LOPTS(.reduction = HESS_REDUCE_SUM))))           \
    X(huber_loss_delta_negative, K_BUILD, "hess_huber_loss", A, "delta -1 is not > 0", 0,          \
      BUILD(hess_huber_loss(f->ctx, f->v3, f->c3, LOPTS(.delta = -1))))                            \
    X(huber_loss_delta_nan, K_BUILD, "hess_huber_loss", A, "delta nan is not > 0", 0,              \
      BUILD(hess_huber_loss(f->ctx, f->v3, f->c3, LOPTS(.delta = NAN))))                           \
    LOSS_PAIR_ROWS(X, bce_with_logits_ex, v3, pr3, nan3)                                           \
    X(bce_with_logits_ex_target_above_one, K_BUILD, "hess_bce_with_logits_ex", A,                  \
      "targets must be in [0, 1]", 0,                                                              \
      BUILD(hess_bce_with_logits_ex(f->ctx, f->v3, f->v3, LOPTS(.reduction = HESS_REDUCE_NONE))))  \
    X(bce_with_logits_ex_target_nan, K_BUILD, "hess_bce_with_logits_ex", A,                        \
      "targets must be in [0, 1]", 0,                                                              \
      BUILD(hess_bce_with_logits_ex(f->ctx, f->v3, f->nan3, NULL)))                                \
    X(bce_with_logits_ex_weight_no_broadcast, K_BUILD, "hess_bce_with_logits_ex", SH,              \
      "does not broadcast", 0,                                                                     \
      BUILD(hess_bce_with_logits_ex(f->ctx, f->v3, f->pr3, LOPTS(.weight = f->v4))))               \
    X(bce_with_logits_ex_weight_expands, K_BUILD, "hess_bce_with_logits_ex", SH,                   \
      "does not broadcast", 0,                                                                     \
      BUILD(hess_bce_with_logits_ex(f->ctx, f->v3, f->pr3, LOPTS(.weight = f->m23))))              \
    X(bce_with_logits_ex_weight_foreign, K_BUILD, "hess_bce_with_logits_ex", A, "another context", \
      0, BUILD(hess_bce_with_logits_ex(f->ctx, f->v3, f->pr3, LOPTS(.weight = f->fx3))))           \
    X(bce_with_logits_ex_weight_freed, K_BUILD, "hess_bce_with_logits_ex", ST, "freed", 0,         \
      BUILD(hess_bce_with_logits_ex(f->ctx, f->v3, f->pr3, LOPTS(.weight = f->dead))))             \
    X(bce_null_ctx_opts, K_BUILD, "hess_bce", A, NULL, F_NOCTX,                                    \
      BUILD_NOCTX(hess_bce(NULL, f->pr3, f->pr3, NULL)))                                           \
    X(bce_null_probs, K_BUILD, "hess_bce", A, "NULL", 0,                                           \
      BUILD(hess_bce(f->ctx, NULL, f->pr3, NULL)))                                                 \
    X(bce_null_target, K_BUILD, "hess_bce", A, "NULL", 0,                                          \
      BUILD(hess_bce(f->ctx, f->pr3, NULL, NULL)))                                                 \
    X(bce_probs_shapes_differ, K_BUILD, "hess_bce", SH, "differ", 0,                               \
      BUILD(hess_bce(f->ctx, f->m23, f->pr3, NULL)))                                               \
    X(bce_probs_above_one, K_BUILD, "hess_bce", A, "probabilities must be in [0, 1]", 0,           \
      BUILD(hess_bce(f->ctx, f->v3, f->pr3, NULL)))                                                \
    X(bce_probs_nan, K_BUILD, "hess_bce", A, "input 1 is nan", 0,                                  \
      BUILD(hess_bce(f->ctx, f->nan3, f->pr3, NULL)))                                              \
    X(bce_probs_target_above_one, K_BUILD, "hess_bce", A, "targets must be in [0, 1]", 0,          \
      BUILD(hess_bce(f->ctx, f->pr3, f->v3, NULL)))                                                \
    X(bce_probs_weight_no_broadcast, K_BUILD, "hess_bce", SH, "does not broadcast", 0,             \
      BUILD(hess_bce(f->ctx, f->pr3, f->pr3, LOPTS(.weight = f->v4))))                             \
    X(bce_probs_bad_reduction, K_BUILD, "hess_bce", A, "reduction 3", 0,                           \
      BUILD(hess_bce(f->ctx, f->pr3, f->pr3, LOPTS(.reduction = 3))))                              \
    X(bce_probs_ignore_not_taken, K_BUILD, "hess_bce", A, "ignore_index", 0,                       \
      BUILD(hess_bce(f->ctx, f->pr3, f->pr3, LOPTS(.use_ignore_index = 1))))                       \
    X(bce_probs_foreign, K_BUILD, "hess_bce", A, "another context", 0,                             \
      BUILD(hess_bce(f->ctx, f->fx3, f->pr3, NULL)))                                               \
    X(bce_probs_freed, K_BUILD, "hess_bce", ST, "freed", 0,                                        \
      BUILD(hess_bce(f->ctx, f->pr3, f->dead, NULL)))                                              \
    X(bce_probs_at_ends, K_BUILD, "hess_bce", OK, NULL, 0,                                         \
      BUILD(hess_bce(f->ctx, f->pr3, f->pr3, LOPTS(.reduction = HESS_REDUCE_NONE))))               \
    LOSS_CLASS_ROWS(X, cross_entropy_ex)                                                           \
    X(cross_entropy_ex_smoothing_above_one, K_BUILD, "hess_cross_entropy_ex", A,                   \
      "label_smoothing 1.5 is not in [0, 1]", 0,                                                   \
      BUILD(hess_cross_entropy_ex(f->ctx, f->logits, f->tgt, LOPTS(.label_smoothing = 1.5))))      \
    X(cross_entropy_ex_smoothing_negative, K_BUILD, "hess_cross_entropy_ex", A,                    \
      "label_smoothing -0.1 is not in [0, 1]", 0,                                                  \
      BUILD(hess_cross_entropy_ex(f->ctx, f->logits, f->tgt, LOPTS(.label_smoothing = -0.1))))     \
    X(cross_entropy_ex_smoothing_nan, K_BUILD, "hess_cross_entropy_ex", A,                         \
      "label_smoothing nan is not in [0, 1]", 0,                                                   \
      BUILD(hess_cross_entropy_ex(f->ctx, f->logits, f->tgt, LOPTS(.label_smoothing = NAN))))      \
    X(cross_entropy_ex_all_ignored_mean_is_nan, K_BUILD, "hess_cross_entropy_ex", OK, NULL, 0,     \
      BUILD_NF(hess_cross_entropy_ex(f->ctx, f->logits, TGT2(-100, -100),                          \
                                     LOPTS(.use_ignore_index = 1, .ignore_index = -100))))         \
    LOSS_CLASS_ROWS(X, nll_loss)                                                                   \
    X(nll_loss_smoothing_not_taken, K_BUILD, "hess_nll_loss", A, "label smoothing", 0,             \
      BUILD(hess_nll_loss(f->ctx, f->logits, f->tgt, LOPTS(.label_smoothing = 0.1))))              \
    X(nll_loss_neg_inf_elsewhere, K_BUILD, "hess_nll_loss", OK, NULL, 0,                           \
      BUILD(hess_nll_loss(f->ctx, f->inf3, hess_scalar(f->ctx, 0.0), NULL)))                       \
    /* user ops */                                                                                 \
    X(op_register_null_ctx, K_WORK, "hess_op_register", A, NULL, F_NOCTX,                          \
      CALL(hess_op_register(NULL, &bmul_op, &f->op)))                                              \
    X(op_register_null_op, K_WORK, "hess_op_register", A, "NULL op", 0,                            \
      CALL(hess_op_register(f->ctx, NULL, &f->op)))                                                \
    X(op_register_null_out, K_WORK, "hess_op_register", A, "NULL out", 0,                          \
      CALL(hess_op_register(f->ctx, &bmul_op, NULL)))                                              \
    X(op_register_null_name, K_WORK, "hess_op_register", A, "name is NULL", 0,                     \
      CALL(register_with(f, NULL, 0, 0)))                                                          \
    X(op_register_empty_name, K_WORK, "hess_op_register", A, "empty", 0,                           \
      CALL(register_with(f, "", 0, 0)))                                                            \
    X(op_register_long_name, K_WORK, "hess_op_register", A, "too long", 0,                         \
      CALL(register_with(f, LONG_NAME, 0, 0)))                                                     \
    X(op_register_blank_name, K_WORK, "hess_op_register", A, "blank", 0,                           \
      CALL(register_with(f, "b mul", 0, 0)))                                                       \
    X(op_register_arity_zero, K_WORK, "hess_op_register", A, "arity 0", 0,                         \
      CALL(register_with(f, NULL, 1, 0)))                                                          \
    X(op_register_arity_too_big, K_WORK, "hess_op_register", A, "arity 4", 0,                      \
      CALL(register_with(f, NULL, 1, 4)))                                                          \
    X(op_register_bad_flags, K_WORK, "hess_op_register", A, "unknown flags", 0,                    \
      CALL(register_with(f, NULL, 2, 0x10)))                                                       \
    X(op_register_no_forward, K_WORK, "hess_op_register", A, "forward callback is NULL", 0,        \
      CALL(register_with(f, NULL, 3, 0)))                                                          \
    X(op_register_no_vjp, K_WORK, "hess_op_register", A, "vjp callback is NULL", 0,                \
      CALL(register_with(f, NULL, 3, 1)))                                                          \
    X(op_register_no_shape, K_WORK, "hess_op_register", A, "shape callback is NULL", 0,            \
      CALL(register_with(f, NULL, 3, 2)))                                                          \
    X(op_register_duplicate, K_WORK, "hess_op_register", A, "registered in this context already",  \
      0, CALL(hess_op_register(f->ctx, &bmul_op, &f->op)))                                         \
    X(op_register_new_name, K_WORK, "hess_op_register", OK, NULL, 0,                               \
      CALL(register_with(f, "bmul2", 0, 0)))                                                       \
    X(op_apply_null_ctx, K_BUILD, "hess_op_apply", A, NULL, F_NOCTX,                               \
      BUILD_NOCTX(bmul(f, NULL, f->op, f->v3, f->v3)))                                             \
    X(op_apply_null_op, K_BUILD, "hess_op_apply", A, "NULL op", 0,                                 \
      BUILD(bmul(f, f->ctx, NULL, f->v3, f->v3)))                                                  \
    X(op_apply_foreign_op, K_BUILD, "hess_op_apply", A, "not registered in this context", 0,       \
      BUILD(bmul(f, f->ctx, f->op_other, f->v3, f->v3)))                                           \
    X(op_apply_wrong_n, K_BUILD, "hess_op_apply", A, "takes 2 sources, 1 given", 0,                \
      BUILD(hess_op_apply(f->ctx, f->op, 1, &f->v3)))                                              \
    X(op_apply_null_src, K_BUILD, "hess_op_apply", A, "NULL src", 0,                               \
      BUILD(hess_op_apply(f->ctx, f->op, 2, NULL)))                                                \
    X(op_apply_null_tensor, K_BUILD, "hess_op_apply", A, "NULL", 0,                                \
      BUILD(bmul(f, f->ctx, f->op, f->v3, NULL)))                                                  \
    X(op_apply_foreign_tensor, K_BUILD, "hess_op_apply", A, "another context", 0,                  \
      BUILD(bmul(f, f->ctx, f->op, f->v3, f->fx3)))                                                \
    X(op_apply_freed, K_BUILD, "hess_op_apply", ST, "freed", 0,                                    \
      BUILD(bmul(f, f->ctx, f->op, f->dead, f->v3)))                                               \
    X(op_apply_shapes_differ, K_BUILD, "hess_op_apply", SH, "differ in shape", 0,                  \
      BUILD(bmul(f, f->ctx, f->op, f->v3, f->v4)))                                                 \
    X(op_apply_broadcastable_shapes, K_BUILD, "hess_op_apply", SH, "differ in shape", 0,           \
      BUILD(bmul(f, f->ctx, f->op, f->m23, f->v3)))                                                \
    X(op_apply_forward_refuses, K_BUILD, "hess_op_apply", A, "forward callback failed", 0,         \
      BUILD(bmul(f, f->ctx, f->op, f->v3,                                                          \
                 hess_tensor_new(f->ctx, 1, SHAPE(3), (const double[]){1, 1234.5, 2}))))           \
    X(op_apply_nan, K_BUILD, "hess_op_apply", OK, NULL, 0,                                         \
      BUILD_NF(bmul(f, f->ctx, f->op, f->nan3, f->v3)))                                            \
    X(op_apply_nan_checked, K_BUILD, "hess_op_apply", NF, "non-finite", F_FINITE,                  \
      BUILD(bmul(f, f->ctx, f->op, f->nan3, f->v3)))                                               \
    /* reverse mode */                                                                             \
    X(grad_null_ctx, K_WORK, "hess_grad", A, NULL, F_NOCTX,                                        \
      CALL(hess_grad(NULL, f->loss, NP, f->p, f->g, 0)))                                           \
    X(grad_null_y, K_WORK, "hess_grad", A, "NULL", 0,                                              \
      CALL(hess_grad(f->ctx, NULL, NP, f->p, f->g, 0)))                                            \
    X(grad_y_not_scalar, K_WORK, "hess_grad", A, "scalar", 0,                                      \
      CALL(hess_grad(f->ctx, f->out, NP, f->p, f->g, 0)))                                          \
    X(grad_n_zero, K_WORK, "hess_grad", A, "empty", 0,                                             \
      CALL(hess_grad(f->ctx, f->loss, 0, f->p, f->g, 0)))                                          \
    X(grad_null_wrt, K_WORK, "hess_grad", A, "NULL", 0,                                            \
      CALL(hess_grad(f->ctx, f->loss, NP, NULL, f->g, 0)))                                         \
    X(grad_null_grads, K_WORK, "hess_grad", A, "NULL", 0,                                          \
      CALL(hess_grad(f->ctx, f->loss, NP, f->p, NULL, 0)))                                         \
    X(grad_wrt_null, K_WORK, "hess_grad", A, "NULL", 0,                                            \
      CALL(hess_grad(f->ctx, f->loss, 2, f->pnull, f->g, 0)))                                      \
    X(grad_bad_flags, K_WORK, "hess_grad", A, "flags", 0,                                          \
      CALL(hess_grad(f->ctx, f->loss, NP, f->p, f->g, 0x80)))                                      \
    X(grad_unused, K_WORK, "hess_grad", ND, "does not depend", 0,                                  \
      CALL(hess_grad(f->ctx, f->loss, 2, f->pu, f->g, 0)))                                         \
    X(grad_unused_allowed, K_WORK, "hess_grad", OK, NULL, 0, CALL(grad_unused_allowed(f)))         \
    X(grad_foreign_y, K_WORK, "hess_grad", A, "another context", 0,                                \
      CALL(hess_grad(f->ctx, f->floss, NP, f->p, f->g, 0)))                                        \
    X(grad_foreign_wrt, K_WORK, "hess_grad", A, "another context", 0,                              \
      CALL(hess_grad(f->ctx, f->loss, 2, f->pf, f->g, 0)))                                         \
    X(grad_freed_y, K_WORK, "hess_grad", ST, "freed", 0,                                           \
      CALL(hess_grad(f->ctx, f->dead, NP, f->p, f->g, 0)))                                         \
    X(grad_freed_wrt, K_WORK, "hess_grad", ST, "freed", 0,                                         \
      CALL(hess_grad(f->ctx, f->loss, 2, f->pd, f->g, 0)))                                         \
    X(grad_nan, K_WORK, "hess_grad", OK, NULL, 0, CALL(grad_nonfinite(f, f->nloss, f->pn)))        \
    X(grad_inf, K_WORK, "hess_grad", OK, NULL, 0, CALL(grad_nonfinite(f, f->sloss, f->pz)))        \
    X(grad_inf_checked, K_WORK, "hess_grad", NF, "non-finite", F_FINITE,                           \
      CALL(hess_grad(f->ctx, f->sloss, 1, f->pz1, f->g, 0)))                                       \
    X(vjp_null_ctx, K_WORK, "hess_vjp", A, NULL, F_NOCTX,                                          \
      CALL(hess_vjp(NULL, 1, &f->out, &f->seed_out, NP, f->p, f->g, 0)))                           \
    X(vjp_no_outputs, K_WORK, "hess_vjp", A, "empty", 0,                                           \
      CALL(hess_vjp(f->ctx, 0, &f->out, &f->seed_out, NP, f->p, f->g, 0)))                         \
    X(vjp_null_outputs, K_WORK, "hess_vjp", A, "NULL", 0,                                          \
      CALL(hess_vjp(f->ctx, 1, NULL, &f->seed_out, NP, f->p, f->g, 0)))                            \
    X(vjp_null_seeds, K_WORK, "hess_vjp", A, "NULL", 0,                                            \
      CALL(hess_vjp(f->ctx, 1, &f->out, NULL, NP, f->p, f->g, 0)))                                 \
    X(vjp_n_zero, K_WORK, "hess_vjp", A, "empty", 0,                                               \
      CALL(hess_vjp(f->ctx, 1, &f->out, &f->seed_out, 0, f->p, f->g, 0)))                          \
    X(vjp_null_grads, K_WORK, "hess_vjp", A, "NULL", 0,                                            \
      CALL(hess_vjp(f->ctx, 1, &f->out, &f->seed_out, NP, f->p, NULL, 0)))                         \
    X(vjp_seed_shape, K_WORK, "hess_vjp", SH, "seed", 0,                                           \
      CALL(hess_vjp(f->ctx, 1, &f->out, &f->seed_bad, NP, f->p, f->g, 0)))                         \
    X(vjp_bad_flags, K_WORK, "hess_vjp", A, "flags", 0,                                            \
      CALL(hess_vjp(f->ctx, 1, &f->out, &f->seed_out, NP, f->p, f->g, 0x40)))                      \
    X(vjp_unused, K_WORK, "hess_vjp", ND, "does not depend", 0,                                    \
      CALL(hess_vjp(f->ctx, 1, &f->out, &f->seed_out, 2, f->pu, f->g, 0)))                         \
    X(vjp_foreign_seed, K_WORK, "hess_vjp", A, "another context", 0,                               \
      CALL(hess_vjp(f->ctx, 1, &f->out, &f->fx3, NP, f->p, f->g, 0)))                              \
    X(vjp_freed_output, K_WORK, "hess_vjp", ST, "freed", 0,                                        \
      CALL(hess_vjp(f->ctx, 1, &f->dead, &f->seed_bad, NP, f->p, f->g, 0)))                        \
    /* the generalized Gauss-Newton matrix */                                                      \
    X(ggn_vp_null_ctx, K_WORK, "hess_ggn_vp", A, NULL, F_NOCTX,                                    \
      CALL(hess_ggn_vp(NULL, f->loss, f->out, NP, f->p, f->dir, f->obuf)))                         \
    X(ggn_vp_null_loss, K_WORK, "hess_ggn_vp", A, "NULL", 0,                                       \
      CALL(hess_ggn_vp(f->ctx, NULL, f->out, NP, f->p, f->dir, f->obuf)))                          \
    X(ggn_vp_null_output, K_WORK, "hess_ggn_vp", A, "NULL", 0,                                     \
      CALL(hess_ggn_vp(f->ctx, f->loss, NULL, NP, f->p, f->dir, f->obuf)))                         \
    X(ggn_vp_loss_not_scalar, K_WORK, "hess_ggn_vp", A, "scalar", 0,                               \
      CALL(hess_ggn_vp(f->ctx, f->out, f->out, NP, f->p, f->dir, f->obuf)))                        \
    X(ggn_vp_n_zero, K_WORK, "hess_ggn_vp", A, "no parameters", 0,                                 \
      CALL(hess_ggn_vp(f->ctx, f->loss, f->out, 0, f->p, f->dir, f->obuf)))                        \
    X(ggn_vp_null_params, K_WORK, "hess_ggn_vp", A, "no parameters", 0,                            \
      CALL(hess_ggn_vp(f->ctx, f->loss, f->out, NP, NULL, f->dir, f->obuf)))                       \
    X(ggn_vp_param_null, K_WORK, "hess_ggn_vp", A, "NULL", 0,                                      \
      CALL(hess_ggn_vp(f->ctx, f->loss, f->out, 2, f->pnull, f->dir, f->obuf)))                    \
    X(ggn_vp_duplicate_param, K_WORK, "hess_ggn_vp", A,                                            \
      "params[1] is the same tensor as params[0]", 0,                                              \
      CALL(hess_ggn_vp(f->ctx, f->loss, f->out, 2, f->pdup, f->dir, f->obuf)))                     \
    X(ggn_vp_unused_param, K_WORK, "hess_ggn_vp", ND, "does not depend on params[1]", 0,           \
      CALL(hess_ggn_vp(f->ctx, f->loss, f->out, 2, f->pu, f->dir, f->obuf)))                       \
    X(ggn_vp_loss_not_of_output, K_WORK, "hess_ggn_vp", A, "does not depend on the output", 0,     \
      CALL(hess_ggn_vp(f->ctx, f->zloss, f->out, NP, f->p, f->dir, f->obuf)))                      \
    X(ggn_vp_foreign_param, K_WORK, "hess_ggn_vp", A, "another context", 0,                        \
      CALL(hess_ggn_vp(f->ctx, f->loss, f->out, 2, f->pf, f->dir, f->obuf)))                       \
    X(ggn_vp_foreign_loss, K_WORK, "hess_ggn_vp", A, "another context", 0,                         \
      CALL(hess_ggn_vp(f->ctx, f->floss, f->out, NP, f->p, f->dir, f->obuf)))                      \
    X(ggn_vp_foreign_output, K_WORK, "hess_ggn_vp", A, "another context", 0,                       \
      CALL(hess_ggn_vp(f->ctx, f->loss, f->fx3, NP, f->p, f->dir, f->obuf)))                       \
    X(ggn_vp_freed_param, K_WORK, "hess_ggn_vp", ST, "freed", 0,                                   \
      CALL(hess_ggn_vp(f->ctx, f->loss, f->out, 2, f->pd, f->dir, f->obuf)))                       \
    X(ggn_vp_freed_loss, K_WORK, "hess_ggn_vp", ST, "freed", 0,                                    \
      CALL(hess_ggn_vp(f->ctx, f->dead, f->out, NP, f->p, f->dir, f->obuf)))                       \
    X(ggn_vp_freed_output, K_WORK, "hess_ggn_vp", ST, "freed", 0,                                  \
      CALL(hess_ggn_vp(f->ctx, f->loss, f->dead, NP, f->p, f->dir, f->obuf)))                      \
    X(ggn_vp_null_out, K_WORK, "hess_ggn_vp", A, "NULL", 0,                                        \
      CALL(hess_ggn_vp(f->ctx, f->loss, f->out, NP, f->p, f->dir, NULL)))                          \
    X(ggn_vp_loss_of_one_element, K_WORK, "hess_ggn_vp", OK, NULL, 0,                              \
      CALL(hess_ggn_vp(f->ctx, f->loss11, f->out, NP, f->p, f->dir, f->obuf)))                     \
    X(ggn_diag_null_ctx, K_WORK, "hess_ggn_diag", A, NULL, F_NOCTX,                                \
      CALL(hess_ggn_diag(NULL, f->loss, f->out, NP, f->p, f->obuf)))                               \
    X(ggn_diag_null_loss, K_WORK, "hess_ggn_diag", A, "NULL", 0,                                   \
      CALL(hess_ggn_diag(f->ctx, NULL, f->out, NP, f->p, f->obuf)))                                \
    X(ggn_diag_null_output, K_WORK, "hess_ggn_diag", A, "NULL", 0,                                 \
      CALL(hess_ggn_diag(f->ctx, f->loss, NULL, NP, f->p, f->obuf)))                               \
    X(ggn_diag_loss_not_scalar, K_WORK, "hess_ggn_diag", A, "scalar", 0,                           \
      CALL(hess_ggn_diag(f->ctx, f->out, f->out, NP, f->p, f->obuf)))                              \
    X(ggn_diag_n_zero, K_WORK, "hess_ggn_diag", A, "no parameters", 0,                             \
      CALL(hess_ggn_diag(f->ctx, f->loss, f->out, 0, f->p, f->obuf)))                              \
    X(ggn_diag_null_params, K_WORK, "hess_ggn_diag", A, "no parameters", 0,                        \
      CALL(hess_ggn_diag(f->ctx, f->loss, f->out, NP, NULL, f->obuf)))                             \
    X(ggn_diag_param_null, K_WORK, "hess_ggn_diag", A, "NULL", 0,                                  \
      CALL(hess_ggn_diag(f->ctx, f->loss, f->out, 2, f->pnull, f->obuf)))                          \
    X(ggn_diag_duplicate_param, K_WORK, "hess_ggn_diag", A,                                        \
      "params[1] is the same tensor as params[0]", 0,                                              \
      CALL(hess_ggn_diag(f->ctx, f->loss, f->out, 2, f->pdup, f->obuf)))                           \
    X(ggn_diag_unused_param, K_WORK, "hess_ggn_diag", ND, "does not depend on params[1]", 0,       \
      CALL(hess_ggn_diag(f->ctx, f->loss, f->out, 2, f->pu, f->obuf)))                             \
    X(ggn_diag_loss_not_of_output, K_WORK, "hess_ggn_diag", A, "does not depend on the output", 0, \
      CALL(hess_ggn_diag(f->ctx, f->zloss, f->out, NP, f->p, f->obuf)))                            \
    X(ggn_diag_foreign_param, K_WORK, "hess_ggn_diag", A, "another context", 0,                    \
      CALL(hess_ggn_diag(f->ctx, f->loss, f->out, 2, f->pf, f->obuf)))                             \
    X(ggn_diag_foreign_loss, K_WORK, "hess_ggn_diag", A, "another context", 0,                     \
      CALL(hess_ggn_diag(f->ctx, f->floss, f->out, NP, f->p, f->obuf)))                            \
    X(ggn_diag_foreign_output, K_WORK, "hess_ggn_diag", A, "another context", 0,                   \
      CALL(hess_ggn_diag(f->ctx, f->loss, f->fx3, NP, f->p, f->obuf)))                             \
    X(ggn_diag_freed_param, K_WORK, "hess_ggn_diag", ST, "freed", 0,                               \
      CALL(hess_ggn_diag(f->ctx, f->loss, f->out, 2, f->pd, f->obuf)))                             \
    X(ggn_diag_freed_loss, K_WORK, "hess_ggn_diag", ST, "freed", 0,                                \
      CALL(hess_ggn_diag(f->ctx, f->dead, f->out, NP, f->p, f->obuf)))                             \
    X(ggn_diag_freed_output, K_WORK, "hess_ggn_diag", ST, "freed", 0,                              \
      CALL(hess_ggn_diag(f->ctx, f->loss, f->dead, NP, f->p, f->obuf)))                            \
    X(ggn_diag_null_out, K_WORK, "hess_ggn_diag", A, "NULL", 0,                                    \
      CALL(hess_ggn_diag(f->ctx, f->loss, f->out, NP, f->p, NULL)))                                \
    X(ggn_diag_loss_of_one_element, K_WORK, "hess_ggn_diag", OK, NULL, 0,                          \
      CALL(hess_ggn_diag(f->ctx, f->loss11, f->out, NP, f->p, f->obuf)))                           \
    X(ggn_vp_null_v, K_WORK, "hess_ggn_vp", A, "NULL", 0,                                          \
      CALL(hess_ggn_vp(f->ctx, f->loss, f->out, NP, f->p, NULL, f->obuf)))                         \
    /* forward mode */                                                                             \
    X(jvp_null_ctx, K_WORK, "hess_jvp", A, NULL, F_NOCTX,                                          \
      CALL(hess_jvp(NULL, f->out, NP, f->p, f->dir, f->obuf)))                                     \
    X(jvp_null_output, K_WORK, "hess_jvp", A, "NULL", 0,                                           \
      CALL(hess_jvp(f->ctx, NULL, NP, f->p, f->dir, f->obuf)))                                     \
    X(jvp_n_zero, K_WORK, "hess_jvp", A, "empty", 0,                                               \
      CALL(hess_jvp(f->ctx, f->out, 0, f->p, f->dir, f->obuf)))                                    \
    X(jvp_null_wrt, K_WORK, "hess_jvp", A, "empty", 0,                                             \
      CALL(hess_jvp(f->ctx, f->out, NP, NULL, f->dir, f->obuf)))                                   \
    X(jvp_wrt_null, K_WORK, "hess_jvp", A, "NULL", 0,                                              \
      CALL(hess_jvp(f->ctx, f->out, 2, f->pnull, f->dir, f->obuf)))                                \
    X(jvp_duplicate, K_WORK, "hess_jvp", A, "wrt[1] is the same tensor as wrt[0]", 0,              \
      CALL(hess_jvp(f->ctx, f->out, 2, f->pdup, f->dir, f->obuf)))                                 \
    X(jvp_foreign_output, K_WORK, "hess_jvp", A, "another context", 0,                             \
      CALL(hess_jvp(f->ctx, f->floss, NP, f->p, f->dir, f->obuf)))                                 \
    X(jvp_foreign_wrt, K_WORK, "hess_jvp", A, "another context", 0,                                \
      CALL(hess_jvp(f->ctx, f->out, 2, f->pf, f->dir, f->obuf)))                                   \
    X(jvp_freed_output, K_WORK, "hess_jvp", ST, "freed", 0,                                        \
      CALL(hess_jvp(f->ctx, f->dead, NP, f->p, f->dir, f->obuf)))                                  \
    X(jvp_freed_wrt, K_WORK, "hess_jvp", ST, "freed", 0,                                           \
      CALL(hess_jvp(f->ctx, f->out, 2, f->pd, f->dir, f->obuf)))                                   \
    X(jacobian_null_ctx, K_WORK, "hess_jacobian", A, NULL, F_NOCTX,                                \
      CALL(hess_jacobian(NULL, f->out, NP, f->p, f->obuf)))                                        \
    X(jacobian_null_output, K_WORK, "hess_jacobian", A, "NULL", 0,                                 \
      CALL(hess_jacobian(f->ctx, NULL, NP, f->p, f->obuf)))                                        \
    X(jacobian_n_zero, K_WORK, "hess_jacobian", A, "empty", 0,                                     \
      CALL(hess_jacobian(f->ctx, f->out, 0, f->p, f->obuf)))                                       \
    X(jacobian_null_wrt, K_WORK, "hess_jacobian", A, "empty", 0,                                   \
      CALL(hess_jacobian(f->ctx, f->out, NP, NULL, f->obuf)))                                      \
    X(jacobian_wrt_null, K_WORK, "hess_jacobian", A, "NULL", 0,                                    \
      CALL(hess_jacobian(f->ctx, f->out, 2, f->pnull, f->obuf)))                                   \
    X(jacobian_duplicate, K_WORK, "hess_jacobian", A, "wrt[1] is the same tensor as wrt[0]", 0,    \
      CALL(hess_jacobian(f->ctx, f->out, 2, f->pdup, f->obuf)))                                    \
    X(jacobian_foreign_output, K_WORK, "hess_jacobian", A, "another context", 0,                   \
      CALL(hess_jacobian(f->ctx, f->floss, NP, f->p, f->obuf)))                                    \
    X(jacobian_foreign_wrt, K_WORK, "hess_jacobian", A, "another context", 0,                      \
      CALL(hess_jacobian(f->ctx, f->out, 2, f->pf, f->obuf)))                                      \
    X(jacobian_freed_output, K_WORK, "hess_jacobian", ST, "freed", 0,                              \
      CALL(hess_jacobian(f->ctx, f->dead, NP, f->p, f->obuf)))                                     \
    X(jacobian_freed_wrt, K_WORK, "hess_jacobian", ST, "freed", 0,                                 \
      CALL(hess_jacobian(f->ctx, f->out, 2, f->pd, f->obuf)))                                      \
    X(jvp_null_v, K_WORK, "hess_jvp", A, "NULL", 0,                                                \
      CALL(hess_jvp(f->ctx, f->out, NP, f->p, NULL, f->obuf)))                                     \
    X(jvp_null_out, K_WORK, "hess_jvp", A, "NULL", 0,                                              \
      CALL(hess_jvp(f->ctx, f->out, NP, f->p, f->dir, NULL)))                                      \
    X(jacobian_null_out, K_WORK, "hess_jacobian", A, "NULL", 0,                                    \
      CALL(hess_jacobian(f->ctx, f->out, NP, f->p, NULL)))                                         \
    X(jvp_unused, K_WORK, "hess_jvp", OK, NULL, 0, CALL(forward_unused(f, false)))                 \
    X(jacobian_unused, K_WORK, "hess_jacobian", OK, NULL, 0, CALL(forward_unused(f, true)))        \
    X(hvp_fwd_null_v, K_WORK, "hess_hvp_fwd", A, "direction", 0,                                   \
      CALL(hess_hvp_fwd(f->ctx, f->loss, NP, f->p, NULL, f->obuf)))                                \
    HESS_ROWS(X, hvp_fwd, "hess_hvp_fwd", ad_hvp_fwd)                                              \
    /* Hessians */                                                                                 \
    HESS_ROWS(X, hvp, "hess_hvp", ad_hvp)                                                          \
    HESS_ROWS(X, hessian, "hess_hessian", ad_hessian)                                              \
    HESS_ROWS(X, hessian_ex, "hess_hessian", ad_hessian_ex)                                        \
    HESS_ROWS(X, diag, "hess_hessian_diag", ad_diag)                                               \
    HESS_ROWS(X, diag_ex, "hess_hessian_diag", ad_diag_ex)                                         \
    HESS_ROWS(X, diag_tensors, "hess_hessian_diag_tensors", ad_diag_tensors)                       \
    HESS_ROWS(X, hvp_batch, "hess_hvp_batch", ad_hvp_batch)                                        \
    X(hvp_null_v, K_WORK, "hess_hvp", A, "direction", 0,                                           \
      CALL(hess_hvp(f->ctx, f->loss, NP, f->p, NULL, f->obuf)))                                    \
    X(hvp_batch_m_zero, K_WORK, "hess_hvp_batch", A, "m = 0", 0,                                   \
      CALL(hess_hvp_batch(f->ctx, f->loss, NP, f->p, 0, f->dirs, NULL, f->obuf)))                  \
    X(hvp_batch_null_V, K_WORK, "hess_hvp_batch", A, "NULL", 0,                                    \
      CALL(hess_hvp_batch(f->ctx, f->loss, NP, f->p, 2, NULL, NULL, f->obuf)))                     \
    X(hessian_ex_cancelled, K_WORK, "hess_hessian", HESS_ERR_CANCELLED, "cancel", 0,               \
      CALL(hessian_cancelled(f)))                                                                  \
    X(block_null_ctx, K_WORK, "hess_hessian_block", A, NULL, F_NOCTX,                              \
      CALL(hess_hessian_block(NULL, f->loss, f->p[0], f->p[1], f->obuf)))                          \
    X(block_null_loss, K_WORK, "hess_hessian_block", A, "NULL", 0,                                 \
      CALL(hess_hessian_block(f->ctx, NULL, f->p[0], f->p[1], f->obuf)))                           \
    X(block_loss_not_scalar, K_WORK, "hess_hessian_block", A, "scalar", 0,                         \
      CALL(hess_hessian_block(f->ctx, f->out, f->p[0], f->p[1], f->obuf)))                         \
    X(block_null_pi, K_WORK, "hess_hessian_block", A, "NULL", 0,                                   \
      CALL(hess_hessian_block(f->ctx, f->loss, NULL, f->p[1], f->obuf)))                           \
    X(block_null_pj, K_WORK, "hess_hessian_block", A, "NULL", 0,                                   \
      CALL(hess_hessian_block(f->ctx, f->loss, f->p[0], NULL, f->obuf)))                           \
    X(block_pi_input, K_WORK, "hess_hessian_block", OK, NULL, 0,                                   \
      CALL(hess_hessian_block(f->ctx, f->loss, f->x, f->p[1], f->obuf)))                           \
    X(block_pj_intermediate, K_WORK, "hess_hessian_block", OK, NULL, 0,                            \
      CALL(hess_hessian_block(f->ctx, f->loss, f->p[0], f->out, f->obuf)))                         \
    X(block_pi_unused, K_WORK, "hess_hessian_block", ND, "does not depend", 0,                     \
      CALL(hess_hessian_block(f->ctx, f->loss, f->u, f->p[1], f->obuf)))                           \
    X(block_pj_unused, K_WORK, "hess_hessian_block", ND, "does not depend", 0,                     \
      CALL(hess_hessian_block(f->ctx, f->loss, f->p[1], f->u, f->obuf)))                           \
    X(block_foreign_pi, K_WORK, "hess_hessian_block", A, "another context", 0,                     \
      CALL(hess_hessian_block(f->ctx, f->loss, f->fparam, f->p[1], f->obuf)))                      \
    X(block_foreign_loss, K_WORK, "hess_hessian_block", A, "another context", 0,                   \
      CALL(hess_hessian_block(f->ctx, f->floss, f->p[0], f->p[1], f->obuf)))                       \
    X(block_freed_pj, K_WORK, "hess_hessian_block", ST, "freed", 0,                                \
      CALL(hess_hessian_block(f->ctx, f->loss, f->p[0], f->deadp, f->obuf)))                       \
    X(block_null_out, K_WORK, "hess_hessian_block", A, "NULL", 0,                                  \
      CALL(hess_hessian_block(f->ctx, f->loss, f->p[0], f->p[1], NULL)))                           \
    X(block_inf_checked, K_WORK, "hess_hessian_block", NF, "non-finite", F_FINITE,                 \
      CALL(hess_hessian_block(f->ctx, f->zloss, f->pz, f->pz, f->obuf)))                           \
    X(block_ex_null_ctx, K_WORK, "hess_hessian_block", A, NULL, F_NOCTX,                           \
      CALL(hess_hessian_block_ex(NULL, f->loss, f->p[0], f->p[1], NULL, f->obuf)))                 \
    X(block_ex_loss_not_scalar, K_WORK, "hess_hessian_block", A, "scalar", 0,                      \
      CALL(hess_hessian_block_ex(f->ctx, f->out, f->p[0], f->p[1], NULL, f->obuf)))                \
    X(block_ex_pj_unused, K_WORK, "hess_hessian_block", ND, "does not depend", 0,                  \
      CALL(hess_hessian_block_ex(f->ctx, f->loss, f->p[0], f->u, NULL, f->obuf)))                  \
    X(block_ex_freed_pi, K_WORK, "hess_hessian_block", ST, "freed", 0,                             \
      CALL(hess_hessian_block_ex(f->ctx, f->loss, f->deadp, f->p[0], NULL, f->obuf)))              \
    /* interchange, pictures, derivative checks */                                                 \
    X(save_npy_null_ctx, K_WORK, "hess_save_npy", A, NULL, F_NOCTX,                                \
      CALL(hess_save_npy(NULL, P("a.npy"), f->v3)))                                                \
    X(save_npy_null_path, K_WORK, "hess_save_npy", A, "NULL", 0,                                   \
      CALL(hess_save_npy(f->ctx, NULL, f->v3)))                                                    \
    X(save_npy_null_tensor, K_WORK, "hess_save_npy", A, "NULL", 0,                                 \
      CALL(hess_save_npy(f->ctx, P("a.npy"), NULL)))                                               \
    X(save_npy_foreign, K_WORK, "hess_save_npy", A, "another context", 0,                          \
      CALL(hess_save_npy(f->ctx, P("a.npy"), f->fx3)))                                             \
    X(save_npy_freed, K_WORK, "hess_save_npy", ST, "freed", 0,                                     \
      CALL(hess_save_npy(f->ctx, P("a.npy"), f->dead)))                                            \
    X(save_npy_no_dir, K_WORK, "hess_save_npy", HESS_ERR_IO, NO_DIR, 0,                            \
      CALL(hess_save_npy(f->ctx, NO_DIR, f->v3)))                                                  \
    X(save_npy_array_null_ctx, K_WORK, "hess_save_npy_array", A, NULL, F_NOCTX,                    \
      CALL(hess_save_npy_array(NULL, P("b.npy"), 1, SHAPE(3), V3)))                                \
    X(save_npy_array_null_path, K_WORK, "hess_save_npy_array", A, "NULL", 0,                       \
      CALL(hess_save_npy_array(f->ctx, NULL, 1, SHAPE(3), V3)))                                    \
    X(save_npy_array_null_data, K_WORK, "hess_save_npy_array", A, "NULL", 0,                       \
      CALL(hess_save_npy_array(f->ctx, P("b.npy"), 1, SHAPE(3), NULL)))                            \
    X(save_npy_array_null_shape, K_WORK, "hess_save_npy_array", A, "NULL", 0,                      \
      CALL(hess_save_npy_array(f->ctx, P("b.npy"), 1, NULL, V3)))                                  \
    X(save_npy_array_rank, K_WORK, "hess_save_npy_array", A, "rank", 0,                            \
      CALL(hess_save_npy_array(f->ctx, P("b.npy"), 7, SHAPE(1, 1, 1, 1, 1, 1, 3), V3)))            \
    X(save_npy_array_dim_zero, K_WORK, "hess_save_npy_array", A, "dimension", 0,                   \
      CALL(hess_save_npy_array(f->ctx, P("b.npy"), 2, SHAPE(3, 0), V3)))                           \
    X(save_npy_array_overflow, K_WORK, "hess_save_npy_array", A, "overflow", 0,                    \
      CALL(hess_save_npy_array(f->ctx, P("b.npy"), 2, SHAPE(BAD_LIMIT, BAD_LIMIT), V3)))           \
    X(save_npy_array_no_dir, K_WORK, "hess_save_npy_array", HESS_ERR_IO, NO_DIR, 0,                \
      CALL(hess_save_npy_array(f->ctx, NO_DIR, 1, SHAPE(3), V3)))                                  \
    X(load_npy_null_ctx, K_BUILD, "hess_load_npy", A, NULL, F_NOCTX,                               \
      BUILD_NOCTX(hess_load_npy(NULL, P("garbage.npy"), 0)))                                       \
    X(load_npy_null_path, K_BUILD, "hess_load_npy", A, "NULL", 0,                                  \
      BUILD(hess_load_npy(f->ctx, NULL, 0)))                                                       \
    X(load_npy_missing, K_BUILD, "hess_load_npy", HESS_ERR_IO, "missing.npy", 0,                   \
      BUILD(hess_load_npy(f->ctx, P("missing.npy"), 0)))                                           \
    X(load_npy_garbage, K_BUILD, "hess_load_npy", HESS_ERR_IO, "garbage.npy", 0,                   \
      BUILD(hess_load_npy(f->ctx, P("garbage.npy"), 1)))                                           \
    X(load_npy_directory, K_BUILD, "hess_load_npy", HESS_ERR_IO, NULL, 0,                          \
      BUILD(hess_load_npy(f->ctx, g_dir, 0)))                                                      \
    X(save_ref_null_ctx, K_WORK, "hess_save_ref", A, NULL, F_NOCTX,                                \
      CALL(hess_save_ref(NULL, P("a.ref"), NULL)))                                                 \
    X(save_ref_null_file, K_WORK, "hess_save_ref", A, "NULL", 0,                                   \
      CALL(hess_save_ref(f->ctx, P("a.ref"), NULL)))                                               \
    X(save_ref_null_path, K_WORK, "hess_save_ref", A, "NULL", 0,                                   \
      CALL(save_ref_with(f, NULL, "a", "b", f->v4, 2)))                                            \
    X(save_ref_no_tensors, K_WORK, "hess_save_ref", A, "tensor", 0,                                \
      CALL(save_ref_with(f, P("a.ref"), "a", "b", f->v4, 0)))                                      \
    X(save_ref_empty_name, K_WORK, "hess_save_ref", A, "name", 0,                                  \
      CALL(save_ref_with(f, P("a.ref"), "a", "", f->v4, 2)))                                       \
    X(save_ref_blank_in_name, K_WORK, "hess_save_ref", A, "name", 0,                               \
      CALL(save_ref_with(f, P("a.ref"), "a", "b c", f->v4, 2)))                                    \
    X(save_ref_repeated_name, K_WORK, "hess_save_ref", A, "name", 0,                               \
      CALL(save_ref_with(f, P("a.ref"), "a", "a", f->v4, 2)))                                      \
    X(save_ref_null_tensor, K_WORK, "hess_save_ref", A, "NULL", 0,                                 \
      CALL(save_ref_with(f, P("a.ref"), "a", "b", NULL, 2)))                                       \
    X(save_ref_foreign, K_WORK, "hess_save_ref", A, "another context", 0,                          \
      CALL(save_ref_with(f, P("a.ref"), "a", "b", f->fx3, 2)))                                     \
    X(save_ref_freed, K_WORK, "hess_save_ref", ST, "freed", 0,                                     \
      CALL(save_ref_with(f, P("a.ref"), "a", "b", f->dead, 2)))                                    \
    X(save_ref_no_dir, K_WORK, "hess_save_ref", HESS_ERR_IO, NO_DIR, 0,                            \
      CALL(save_ref_with(f, NO_DIR, "a", "b", f->v4, 2)))                                          \
    X(load_ref_null_ctx, K_WORK, "hess_load_ref", A, NULL, F_NOCTX,                                \
      CALL(hess_load_ref(NULL, P("garbage.npy"), NULL, NULL)))                                     \
    X(load_ref_null_path, K_WORK, "hess_load_ref", A, "NULL", 0, CALL(load_ref_into(f, NULL)))     \
    X(load_ref_null_out, K_WORK, "hess_load_ref", A, "NULL", 0,                                    \
      CALL(hess_load_ref(f->ctx, P("garbage.npy"), NULL, NULL)))                                   \
    X(load_ref_missing, K_WORK, "hess_load_ref", HESS_ERR_IO, "missing.ref", 0,                    \
      CALL(load_ref_into(f, P("missing.ref"))))                                                    \
    X(load_ref_garbage, K_WORK, "hess_load_ref", HESS_ERR_IO, "garbage.npy", 0,                    \
      CALL(load_ref_into(f, P("garbage.npy"))))                                                    \
    X(ref_find_null, K_OTHER, "hess_ref_find", OK, NULL, F_NOCTX, CALL(ref_find_null()))           \
    X(svg_null_ctx, K_WORK, "hess_write_svg_heatmap", A, NULL, F_NOCTX,                            \
      CALL(hess_write_svg_heatmap(NULL, P("a.svg"), 2, W1, 0, NULL, NULL, NULL)))                  \
    X(svg_null_path, K_WORK, "hess_write_svg_heatmap", A, "NULL", 0,                               \
      CALL(svg_with(f, NULL, 2, W1, 0, NULL)))                                                     \
    X(svg_null_matrix, K_WORK, "hess_write_svg_heatmap", A, "NULL", 0,                             \
      CALL(svg_with(f, P("a.svg"), 2, NULL, 0, NULL)))                                             \
    X(svg_n_zero, K_WORK, "hess_write_svg_heatmap", A, "n", 0,                                     \
      CALL(svg_with(f, P("a.svg"), 0, W1, 0, NULL)))                                               \
    X(svg_n_too_large, K_WORK, "hess_write_svg_heatmap", A, "n", 0,                                \
      CALL(svg_with(f, P("a.svg"), SIZE_MAX / 2, W1, 0, NULL)))                                    \
    X(svg_null_sizes, K_WORK, "hess_write_svg_heatmap", A, "sizes", 0,                             \
      CALL(svg_with(f, P("a.svg"), 2, W1, 2, NULL)))                                               \
    X(svg_sizes_sum, K_WORK, "hess_write_svg_heatmap", A, "sum", 0,                                \
      CALL(svg_with(f, P("a.svg"), 2, W1, 2, (const size_t[]){1, 2})))                             \
    X(svg_size_zero, K_WORK, "hess_write_svg_heatmap", A, "size", 0,                               \
      CALL(svg_with(f, P("a.svg"), 2, W1, 2, (const size_t[]){2, 0})))                             \
    X(svg_sizes_overflow, K_WORK, "hess_write_svg_heatmap", A, "sum", 0,                           \
      CALL(svg_with(f, P("a.svg"), 2, W1, 2, (const size_t[]){SIZE_MAX, 3})))                      \
    X(svg_no_dir, K_WORK, "hess_write_svg_heatmap", HESS_ERR_IO, NO_DIR, 0,                        \
      CALL(svg_with(f, NO_DIR, 2, W1, 0, NULL)))                                                   \
    X(svg_nonfinite_values, K_WORK, "hess_write_svg_heatmap", OK, NULL, 0,                         \
      CALL(svg_with(f, P("nf.svg"), 2, (const double[]){NAN, INFINITY, -INFINITY, 0}, 0, NULL)))   \
    X(lines_null_ctx, K_WORK, "hess_write_svg_lines", A, NULL, F_NOCTX,                            \
      CALL(hess_write_svg_lines(NULL, P("l.svg"), NULL, NULL, NULL, 1, &NO_POINTS)))               \
    X(lines_null_path, K_WORK, "hess_write_svg_lines", A, "NULL path", 0,                          \
      CALL(lines_with(f, NULL, 2, 6, W1, W1)))                                                     \
    X(lines_null_series, K_WORK, "hess_write_svg_lines", A, "NULL series", 0,                      \
      CALL(hess_write_svg_lines(f->ctx, P("l.svg"), NULL, NULL, NULL, 2, NULL)))                   \
    X(lines_n_series_zero, K_WORK, "hess_write_svg_lines", A, "n_series = 0", 0,                   \
      CALL(lines_with(f, P("l.svg"), 0, 6, W1, W1)))                                               \
    X(lines_n_series_too_large, K_WORK, "hess_write_svg_lines", A, "more series", 0,               \
      CALL(lines_with(f, P("l.svg"), SIZE_MAX, 6, W1, W1)))                                        \
    X(lines_null_x, K_WORK, "hess_write_svg_lines", A, "series 1: NULL x", 0,                      \
      CALL(lines_with(f, P("l.svg"), 2, 6, NULL, W1)))                                             \
    X(lines_null_y, K_WORK, "hess_write_svg_lines", A, "series 1: NULL y", 0,                      \
      CALL(lines_with(f, P("l.svg"), 2, 6, W1, NULL)))                                             \
    X(lines_n_too_large, K_WORK, "hess_write_svg_lines", A, "more points", 0,                      \
      CALL(lines_with(f, P("l.svg"), 2, SIZE_MAX, W1, W1)))                                        \
    X(lines_points_overflow, K_WORK, "hess_write_svg_lines", A, "overflow", 0,                     \
      CALL(lines_overflow(f)))                                                                     \
    X(lines_no_dir, K_WORK, "hess_write_svg_lines", HESS_ERR_IO, NO_DIR, 0,                        \
      CALL(lines_with(f, NO_DIR, 2, 6, W1, W1)))                                                   \
    X(lines_no_points, K_WORK, "hess_write_svg_lines", OK, NULL, 0,                                \
      CALL(lines_with(f, P("l.svg"), 2, 0, NULL, NULL)))                                           \
    X(lines_nonfinite_points, K_WORK, "hess_write_svg_lines", OK, NULL, 0,                         \
      CALL(lines_with(f, P("nfl.svg"), 2, 4, (const double[]){NAN, 1, INFINITY, 2},                \
                      (const double[]){0, NAN, 1, -INFINITY})))                                    \
    X(gradcheck_null_ctx, K_WORK, "hess_check_derivatives", A, NULL, F_NOCTX,                      \
      CALL(hess_check_derivatives(NULL, cb_square, f, 1, f->pn1, NULL, NULL)))                     \
    X(gradcheck_null_callback, K_WORK, "hess_check_derivatives", A, "callback", 0,                 \
      CALL(check_with(f, NULL, 1, f->pn1, NULL, 0)))                                               \
    X(gradcheck_null_report, K_WORK, "hess_check_derivatives", A, "report", 0,                     \
      CALL(check_with(f, cb_square, 1, f->pn1, NULL, 1)))                                          \
    X(gradcheck_n_zero, K_WORK, "hess_check_derivatives", A, "no parameters", 0,                   \
      CALL(check_with(f, cb_square, 0, f->pn1, NULL, 0)))                                          \
    X(gradcheck_null_params, K_WORK, "hess_check_derivatives", A, "no parameters", 0,              \
      CALL(check_with(f, cb_square, 1, NULL, NULL, 0)))                                            \
    X(gradcheck_param_null, K_WORK, "hess_check_derivatives", A, "NULL", 0,                        \
      CALL(check_with(f, cb_square, 2, f->pnull, NULL, 0)))                                        \
    X(gradcheck_constant, K_WORK, "hess_check_derivatives", OK, NULL, 0,                           \
      CALL(check_with(f, cb_square, 2, f->pc, NULL, 0)))                                           \
    X(gradcheck_duplicate, K_WORK, "hess_check_derivatives", A, "same tensor", 0,                  \
      CALL(check_with(f, cb_square, 2, f->pdup, NULL, 0)))                                         \
    X(gradcheck_foreign, K_WORK, "hess_check_derivatives", A, "another context", 0,                \
      CALL(check_with(f, cb_square, 2, f->pf, NULL, 0)))                                           \
    X(gradcheck_freed, K_WORK, "hess_check_derivatives", ST, "freed", 0,                           \
      CALL(check_with(f, cb_square, 2, f->pd, NULL, 0)))                                           \
    X(gradcheck_nan_eps, K_WORK, "hess_check_derivatives", A, "eps", 0,                            \
      CALL(check_with(f, cb_square, 1, f->pn1, &(const hess_check_opts){NAN, 0, 0, 0, 0}, 0)))     \
    X(gradcheck_negative_rtol, K_WORK, "hess_check_derivatives", A, "rtol", 0,                     \
      CALL(check_with(f, cb_square, 1, f->pn1, &(const hess_check_opts){0, -1, 0, 0, 0}, 0)))      \
    X(gradcheck_callback_null, K_WORK, "hess_check_derivatives", A, "callback", 0,                 \
      CALL(check_with(f, cb_null, 1, f->pn1, NULL, 0)))                                            \
    X(gradcheck_callback_vector, K_WORK, "hess_check_derivatives", A, "scalar", 0,                 \
      CALL(check_with(f, cb_vector, 1, f->pn1, NULL, 0)))                                          \
    X(gradcheck_callback_error, K_WORK, "hess_add", SH, "broadcast", 0,                            \
      CALL(check_with(f, cb_shape_error, 1, f->pn1, NULL, 0)))                                     \
    X(gradcheck_unused_param, K_WORK, "hess_check_derivatives", OK, NULL, 0,                       \
      CALL(check_with(f, cb_square, 2, (hess_tensor *const[]){f->pn, f->u}, NULL, 0)))

#define X_FN(id, kind, fn, st, what, flags, body)                                                  \
    static int case_##id(fx *f)                                                                    \
    {                                                                                              \
        (void)f;                                                                                   \
        body;                                                                                      \
    }
CASES(X_FN)
#undef X_FN

typedef struct row {
    const char *name;
    int kind;
    const char *fn;
    int expect;
    const char *what;
    unsigned flags;
    int (*run)(fx *f);
} row;

static row rows[] = {
#define X_ROW(id, kind, fn, st, what, flags, body) {#id, kind, fn, st, what, flags, case_##id},
    CASES(X_ROW)
#undef X_ROW
};

/* ------------------------------------------------------------------------ */
/* Running a row                                                            */
/* ------------------------------------------------------------------------ */

static bool contains_ci(const char *hay, const char *needle)
{
    const size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return n == 0;
}

static const char *status_name(int st)
{
    return st == WRONG ? "a wrong result" : hess_status_str((hess_status)st);
}

/* Runs the row in a child process first: a crash, a hang or a sanitizer
 * report fails this row with a clear message, and the table goes on.  Not
 * under valgrind, which reports a crash itself and makes each of the table's
 * two thousand forks cost about half a second (CI's valgrind stage). */
static void probe_in_child(const row *r, bool pending)
{
#if HAVE_VALGRIND_H
    if (RUNNING_ON_VALGRIND)
        return;
#endif
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            signal(sigs[i], SIG_DFL);
        alarm(60);
        fx *f = calloc(1, sizeof *f);
        if (!f || fx_build(f, (r->flags & F_FINITE) ? HESS_CHECK_FINITE : 0) != 0)
            _exit(4);
        if (pending)
            hess_matmul(f->ctx, f->m23, f->m45);
        const int st = r->run(f);
        _exit(pending || st == r->expect ? 0 : 3);
    }
    int ws = 0;
    assert_true(waitpid(pid, &ws, 0) == pid);
    if (WIFSIGNALED(ws))
        fail_msg("%s: LIBRARY BUG: %s(...) crashed with signal %d (run alone in a child)", r->name,
                 r->fn, WTERMSIG(ws));
    if (WIFEXITED(ws) && WEXITSTATUS(ws) != 0 && WEXITSTATUS(ws) != 3)
        fail_msg("%s: LIBRARY BUG: %s(...) ended the child with exit status %d (a sanitizer "
                 "report is printed above)",
                 r->name, r->fn, WEXITSTATUS(ws));
}

/* The fixture of the running row, freed by the teardown if the row failed. */
static fx *g_fx;

static fx *fx_new(const row *r)
{
    fx *f = test_calloc(1, sizeof *f);
    g_fx = f;
    if (fx_build(f, (r->flags & F_FINITE) ? HESS_CHECK_FINITE : 0) != 0)
        fail_msg("%s: fixture failed: %s", r->name, hess_context_errmsg(f->ctx));
    return f;
}

static void fx_delete(fx *f, const char *name)
{
    fx_free(f);
    const size_t live = f->mem.live, live2 = f->mem2.live;
    test_free(f);
    g_fx = NULL;
    if (live != 0 || live2 != 0)
        fail_msg("%s: %zu + %zu bytes still held after hess_context_destroy", name, live, live2);
}

static int teardown_row(void **state)
{
    (void)state;
    if (g_fx) {
        fx_free(g_fx);
        test_free(g_fx);
        g_fx = NULL;
    }
    return 0;
}

/* The row on a clean context. */
static void run_row(void **state)
{
    const row *r = *state;
    probe_in_child(r, false);
    fx *f = fx_new(r);
    const int st = r->run(f);
    const hess_status now = hess_context_status(f->ctx);
    const char *msg = hess_context_errmsg(f->ctx);
    if (st != r->expect)
        fail_msg("%s: %s gave %s (%d), expected %s; message \"%s\"", r->name, r->fn,
                 status_name(st), st, status_name(r->expect), msg);
    if (r->flags & F_NOCTX) {
        if (now != HESS_OK)
            fail_msg("%s: a call without the context recorded \"%s\" in it", r->name, msg);
    } else if (r->expect == HESS_OK) {
        if (now != HESS_OK || msg[0] != '\0')
            fail_msg("%s: success left status %d, message \"%s\"", r->name, now, msg);
    } else {
        if (now != r->expect)
            fail_msg("%s: returned %d but the context holds %d", r->name, st, now);
        if (!strstr(msg, r->fn))
            fail_msg("%s: message \"%s\" does not name %s", r->name, msg, r->fn);
        if (r->what && !contains_ci(msg, r->what))
            fail_msg("%s: message \"%s\" does not say \"%s\"", r->name, msg, r->what);
    }
    if (hess_context_status(f->other) != HESS_OK)
        fail_msg("%s: the other context got an error: %s", r->name, hess_context_errmsg(f->other));
    check_unchanged(f, r->name, "by the call");
    hess_context_clear_error(f->ctx);
    check_recovery(f, r->name);
    check_unchanged(f, r->name, "after recovery");
    fx_delete(f, r->name);
}

/* The row with an earlier error pending: it must stay the one reported, and
 * the work functions must return it without doing anything. */
static void run_row_pending(void **state)
{
    const row *r = *state;
    probe_in_child(r, true);
    fx *f = fx_new(r);
    assert_null(hess_matmul(f->ctx, f->m23, f->m45));
    const hess_status first = hess_context_status(f->ctx);
    char first_msg[400];
    snprintf(first_msg, sizeof first_msg, "%s", hess_context_errmsg(f->ctx));
    assert_int_equal(first, HESS_ERR_SHAPE);
    const hess_mark before = hess_context_mark(f->ctx);

    const int st = r->run(f);
    if (hess_context_status(f->ctx) != first || strcmp(hess_context_errmsg(f->ctx), first_msg))
        fail_msg("%s: the first error was replaced by %d \"%s\"", r->name,
                 hess_context_status(f->ctx), hess_context_errmsg(f->ctx));
    if (r->kind == K_WORK) {
        const hess_mark after = hess_context_mark(f->ctx);
        if (st != first)
            fail_msg("%s: %s returned %s, not the pending status", r->name, r->fn, status_name(st));
        if (after.block != before.block || after.used != before.used || after.nodes != before.nodes)
            fail_msg("%s: %s did work while an error was pending", r->name, r->fn);
    }
    check_unchanged(f, r->name, "by the call (error pending)");
    hess_context_clear_error(f->ctx);
    check_recovery(f, r->name);
    check_unchanged(f, r->name, "after recovery");
    fx_delete(f, r->name);
}

/* Every status has its own non-empty text. */
static void test_status_strings(void **state)
{
    (void)state;
    const hess_status all[] = {
#define HESS_X_(name, value, text) name,
        HESS_STATUS_LIST(HESS_X_)
#undef HESS_X_
    };
    const size_t n = sizeof all / sizeof all[0];
    for (size_t i = 0; i < n; i++) {
        const char *s = hess_status_str(all[i]);
        assert_non_null(s);
        assert_true(s[0] != '\0');
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, hess_status_str(all[j]));
    }
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/hess_badinput_XXXXXX");
    if (!mkdtemp(g_dir))
        return 1;
    FILE *gf = fopen(P("garbage.npy"), "wb");
    if (!gf)
        return 1;
    fputs("\x93NUMPY garbage, not a header\n# libhessian nothing\n", gf);
    fclose(gf);
    const size_t n = sizeof rows / sizeof rows[0];
    size_t m = 0;
    struct CMUnitTest *tests = calloc(2 * n + 1, sizeof *tests);
    char(*names)[96] = calloc(n, sizeof *names);
    if (!tests || !names)
        return 1;
    tests[m++] = (struct CMUnitTest)cmocka_unit_test(test_status_strings);
    for (size_t i = 0; i < n; i++)
        tests[m++] =
            (struct CMUnitTest){rows[i].name, run_row, NULL, teardown_row, (void *)&rows[i]};
    for (size_t i = 0; i < n; i++) {
        if (rows[i].flags & F_NOCTX)
            continue;
        snprintf(names[i], sizeof names[i], "%s (error pending)", rows[i].name);
        tests[m++] =
            (struct CMUnitTest){names[i], run_row_pending, NULL, teardown_row, (void *)&rows[i]};
    }
    const int failed = _cmocka_run_group_tests("badinput", tests, m, NULL, NULL);
    free(tests);
    free(names);
    const char *files[] = {"garbage.npy", "a.npy",  "b.npy", "a.ref",
                           "a.svg",       "nf.svg", "l.svg", "nfl.svg"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        remove(P(files[i]));
    rmdir(g_dir);
    return failed;
}
