/*
 * test_refs_conv.c -- the PyTorch reference cases (tests/data/ops/, made by
 * tests/data/make_op_refs.py with PyTorch 1.13 in float64) of convolution
 * and pooling: conv2d*, avg_pool2d*, max_pool2d*, and the small CNN
 * model_cnn_ce (conv, relu, max-pool, conv, linear, cross-entropy with label
 * smoothing).
 *
 * Each case name maps to a C builder of its model line (the line itself is
 * checked, so a regenerated file with another model fails).  Against the
 * file: out, L = sum(out * w), the gradient, the Hessian diagonal (by
 * hess_hessian_diag, and by the curvature backpropagation, which covers
 * every case here), the HVP and, when present, the full Hessian, each within
 * 1e-12 of the largest element of the reference tensor.  A case file of these
 * ops that no row claims fails test_refs_conv_every_file_claimed.  Also the
 * exact diagonal of a batched CNN by the curvature backpropagation against
 * the Hessian's rows (test_conv_diag_backprop_batch).
 *
 * Beyond the files: geometries they do not have (1x1 kernels, direct and
 * not, a kernel wider than the input) against a convolution written from
 * the header's formula, with the Jacobian in x, the Hessian in blocks of
 * rows against finite differences of the gradient, its diagonal and
 * forward-over-reverse HVPs; 2x3 max-pooling by hand; the diagonal when the
 * convolution's batch is not the samples'; out of memory at every step of a
 * workflow (hess_config.max_bytes); and, white box (hess_internal.h), the
 * records by themselves as the rules and the fuzzer apply them: their shape
 * errors, their default parameters, batch prefixes in forward mode and in
 * the diagonal, and selections of rank 2 or with a constant operand.
 */
#include "check.h"
#include "refcase.h"
#include "hess_internal.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* hess_conv2d with {stride=[s0, s1], padding=[p0, p1], dilation=[d0, d1], groups=g} */
static hess_tensor *conv(hess_context *ctx,
                         hess_tensor *x,
                         hess_tensor *w,
                         hess_tensor *b,
                         int s0,
                         int s1,
                         int p0,
                         int p1,
                         int d0,
                         int d1,
                         int g)
{
    const hess_conv_opts o = {{s0, s1}, {p0, p1}, {d0, d1}, g};
    return hess_conv2d(ctx, x, w, b, &o);
}

#define CONV_MODEL(b, s0, s1, p0, p1, d0, d1, g)                                                   \
    "hess_conv2d(ctx, in0, in1, " b ", {stride=[" #s0 ", " #s1 "], padding=[" #p0 ", " #p1         \
    "], dilation=[" #d0 ", " #d1 "], groups=" #g "})"

/* X(case, model line, expression of ctx and in[]): one row each. */
#define REF_CASES(X)                                                                               \
    X(conv2d_small, CONV_MODEL("in2", 1, 1, 0, 0, 1, 1, 1),                                        \
      conv(ctx, in[0], in[1], in[2], 1, 1, 0, 0, 1, 1, 1))                                         \
    X(conv2d_no_bias, CONV_MODEL("NULL", 1, 1, 0, 0, 1, 1, 1),                                     \
      conv(ctx, in[0], in[1], NULL, 1, 1, 0, 0, 1, 1, 1))                                          \
    X(conv2d_channels, CONV_MODEL("in2", 1, 1, 0, 0, 1, 1, 1),                                     \
      conv(ctx, in[0], in[1], in[2], 1, 1, 0, 0, 1, 1, 1))                                         \
    X(conv2d_stride_pad, CONV_MODEL("in2", 2, 2, 1, 1, 1, 1, 1),                                   \
      conv(ctx, in[0], in[1], in[2], 2, 2, 1, 1, 1, 1, 1))                                         \
    X(conv2d_dilation, CONV_MODEL("in2", 1, 1, 0, 0, 2, 2, 1),                                     \
      conv(ctx, in[0], in[1], in[2], 1, 1, 0, 0, 2, 2, 1))                                         \
    X(conv2d_dilation_pad, CONV_MODEL("in2", 1, 1, 1, 1, 2, 2, 1),                                 \
      conv(ctx, in[0], in[1], in[2], 1, 1, 1, 1, 2, 2, 1))                                         \
    X(conv2d_groups, CONV_MODEL("in2", 1, 1, 0, 0, 1, 1, 2),                                       \
      conv(ctx, in[0], in[1], in[2], 1, 1, 0, 0, 1, 1, 2))                                         \
    X(conv2d_depthwise, CONV_MODEL("in2", 1, 1, 0, 0, 1, 1, 3),                                    \
      conv(ctx, in[0], in[1], in[2], 1, 1, 0, 0, 1, 1, 3))                                         \
    X(conv2d_asym, CONV_MODEL("in2", 2, 1, 0, 1, 1, 2, 1),                                         \
      conv(ctx, in[0], in[1], in[2], 2, 1, 0, 1, 1, 2, 1))                                         \
    X(conv2d_stride_drop, CONV_MODEL("in2", 2, 2, 0, 0, 1, 1, 1),                                  \
      conv(ctx, in[0], in[1], in[2], 2, 2, 0, 0, 1, 1, 1))                                         \
    X(conv2d_weights_only, CONV_MODEL("in2", 1, 1, 1, 1, 1, 1, 1),                                 \
      conv(ctx, in[0], in[1], in[2], 1, 1, 1, 1, 1, 1, 1))                                         \
    X(avg_pool2d, "hess_avg_pool2d(ctx, in0, 2, 2, 2, 2)",                                         \
      hess_avg_pool2d(ctx, in[0], 2, 2, 2, 2))                                                     \
    X(avg_pool2d_channels, "hess_avg_pool2d(ctx, in0, 2, 2, 2, 2)",                                \
      hess_avg_pool2d(ctx, in[0], 2, 2, 2, 2))                                                     \
    X(avg_pool2d_overlap, "hess_avg_pool2d(ctx, in0, 3, 2, 1, 2)",                                 \
      hess_avg_pool2d(ctx, in[0], 3, 2, 1, 2))                                                     \
    X(max_pool2d, "hess_max_pool2d(ctx, in0, 2, 2, 2, 2)",                                         \
      hess_max_pool2d(ctx, in[0], 2, 2, 2, 2))                                                     \
    X(max_pool2d_channels, "hess_max_pool2d(ctx, in0, 2, 2, 2, 2)",                                \
      hess_max_pool2d(ctx, in[0], 2, 2, 2, 2))                                                     \
    X(max_pool2d_overlap, "hess_max_pool2d(ctx, in0, 3, 2, 1, 2)",                                 \
      hess_max_pool2d(ctx, in[0], 3, 2, 1, 2))                                                     \
    X(max_pool2d_tie, "hess_max_pool2d(ctx, in0, 2, 2, 2, 2)",                                     \
      hess_max_pool2d(ctx, in[0], 2, 2, 2, 2))                                                     \
    X(max_pool2d_tie_overlap, "hess_max_pool2d(ctx, in0, 2, 2, 1, 1)",                             \
      hess_max_pool2d(ctx, in[0], 2, 2, 1, 1))

#define X_BUILD(name, model, expr)                                                                 \
    static hess_tensor *b_##name(hess_context *ctx, hess_tensor *const in[])                       \
    {                                                                                              \
        return expr;                                                                               \
    }
REF_CASES(X_BUILD)
#undef X_BUILD

static hess_tensor *b_model_cnn_ce(hess_context *ctx, hess_tensor *const in[])
{
    hess_tensor *t0 = hess_max_pool2d(
        ctx, hess_relu(ctx, conv(ctx, in[0], in[1], in[2], 2, 2, 1, 1, 1, 1, 1)), 2, 2, 1, 1);
    hess_tensor *t1 = conv(ctx, t0, in[3], in[4], 1, 1, 1, 1, 1, 1, 1);
    hess_tensor *flat = hess_reshape(ctx, t1, 2, (const int64_t[]){2, -1});
    return hess_cross_entropy_ex(ctx, hess_linear(ctx, flat, in[5], in[6]), in[7],
                                 &(hess_loss_opts){.label_smoothing = 0.1});
}

static ref_row rows[] = {
#define X_ROW(name, model, expr) {#name, model, b_##name},
    REF_CASES(X_ROW)
#undef X_ROW
        {"model_cnn_ce",
         "t0 = hess_max_pool2d(ctx, hess_relu(ctx, hess_conv2d(ctx, in0, in1, in2, {stride=[2, 2], "
         "padding=[1, 1], dilation=[1, 1], groups=1})), 2, 2, 1, 1); t1 = hess_conv2d(ctx, t0, "
         "in3, "
         "in4, {stride=[1, 1], padding=[1, 1], dilation=[1, 1], groups=1}); hess_cross_entropy_ex("
         "ctx, hess_linear(ctx, hess_reshape(ctx, t1, 2, [2, -1]), in5, in6), in7, "
         "{label_smoothing=0.1})",
         b_model_cnn_ce},
};
#define N_ROWS (sizeof rows / sizeof rows[0])

/* The files of these ops: a stem equal to one of these or starting with it
 * and '_' (the cases of the op and its variants). */
static const char *const PREFIXES[] = {"conv2d", "avg_pool2d", "max_pool2d"};
static const char *const EXACT[] = {"model_cnn_ce"};

static const ref_family FAMILY = {"the convolution and pooling ops", REF_LIST(PREFIXES),
                                  REF_LIST(EXACT),
                                  REF_DIAG_ROWS | REF_DIAG_BACKPROP_ALL | REF_HVP_FWD};

/* ------------------------------------------------------------------------ */
/* The cases (ref_run_case, refcase.h), and every file of these ops has a   */
/* row                                                                      */
/* ------------------------------------------------------------------------ */

static void test_ref_case(void **state)
{
    ref_run_case(&FAMILY, *state);
}

static void test_refs_conv_every_file_claimed(void **state)
{
    (void)state;
    ref_check_claimed(&FAMILY, rows, N_ROWS);
}

/* ------------------------------------------------------------------------ */
/* The exact diagonal of a batched CNN                                      */
/* ------------------------------------------------------------------------ */

/* A batch of 4 through conv (bias) -> tanh -> max-pool -> grouped conv ->
 * relu -> avg-pool -> linear -> cross-entropy: the curvature
 * backpropagation (per-sample factors through the convolutions and pools,
 * the diag_param rule for the shared weights and biases) against the rows
 * of the Hessian. */
static void test_conv_diag_backprop_batch(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    uint64_t s = 16;
    double buf[1024];
    for (size_t i = 0; i < sizeof buf / sizeof buf[0]; i++)
        buf[i] = rnd_uniform(&s, -0.8, 0.8);
    hess_tensor *x = hess_tensor_new(ctx, 4, (const int64_t[]){4, 2, 7, 7}, buf);
    hess_tensor *p[6] = {
        hess_param_new(ctx, 4, (const int64_t[]){4, 2, 2, 2}, buf + 400),
        hess_param_new(ctx, 1, (const int64_t[]){4}, buf + 440),
        hess_param_new(ctx, 4, (const int64_t[]){4, 2, 2, 2}, buf + 460),
        hess_param_new(ctx, 1, (const int64_t[]){4}, buf + 500),
        hess_param_new(ctx, 2, (const int64_t[]){3, 4}, buf + 520),
        hess_param_new(ctx, 1, (const int64_t[]){3}, buf + 540),
    };
    hess_tensor *y = hess_tensor_new(ctx, 1, (const int64_t[]){4}, (const double[]){2, 0, 1, 2});
    const hess_conv_opts grouped = {{1, 1}, {1, 1}, {1, 1}, 2};
    hess_tensor *h =
        hess_max_pool2d(ctx, hess_tanh(ctx, hess_conv2d(ctx, x, p[0], p[1], NULL)), 2, 2, 2, 2);
    h = hess_avg_pool2d(ctx, hess_relu(ctx, hess_conv2d(ctx, h, p[2], p[3], &grouped)), 4, 4, 0, 0);
    hess_tensor *L = hess_cross_entropy(
        ctx, hess_linear(ctx, hess_reshape(ctx, h, 2, (const int64_t[]){4, 4}), p[4], p[5]), y);
    assert_ok(ctx, hess_context_status(ctx));
    const size_t n = hess_param_count(6, p);
    double *byrows = test_malloc(n * sizeof *byrows), *bp = test_malloc(n * sizeof *bp);
    hess_hessian_opts o = {0};
    int used = -1;
    o.method_used = &used;
    o.method = HESS_DIAG_ROWS;
    assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 6, p, &o, byrows));
    o.method = HESS_DIAG_BACKPROP;
    assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 6, p, &o, bp));
    assert_int_equal(used, HESS_DIAG_BACKPROP);
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fabs(byrows[i]) > scale ? fabs(byrows[i]) : scale;
    assert_true(scale > 1e-6);
    for (size_t i = 0; i < n; i++)
        assert_close(bp[i], byrows[i], 0, 1e-12 * scale);
    test_free(byrows), test_free(bp);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Geometries against a convolution read straight off the header's formula */
/* ------------------------------------------------------------------------ */

typedef struct geo {
    const char *name;
    int64_t N, C, H, W, O, kh, kw;
    hess_conv_opts o;
    bool bias;
} geo;

static int64_t or1(int v)
{
    return v ? v : 1;
}

static int64_t out_len(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d)
{
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

/* y[n,o,p,q] = b[o] + sum_{c,i,j} w[o,c,i,j] x[n, g Cg + c, p s0 - p0 + i d0, q s1 - p1 + j d1],
 * g = o / (O/groups), x read as 0 outside: no unfolding, no products. */
static void naive_conv(const geo *g, const double *x, const double *w, const double *b, double *y)
{
    const int64_t G = or1(g->o.groups), Cg = g->C / G, Og = g->O / G;
    const int64_t s0 = or1(g->o.stride[0]), s1 = or1(g->o.stride[1]);
    const int64_t d0 = or1(g->o.dilation[0]), d1 = or1(g->o.dilation[1]);
    const int64_t p0 = g->o.padding[0], p1 = g->o.padding[1];
    const int64_t OH = out_len(g->H, g->kh, s0, p0, d0), OW = out_len(g->W, g->kw, s1, p1, d1);
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t o = 0; o < g->O; o++)
            for (int64_t p = 0; p < OH; p++)
                for (int64_t q = 0; q < OW; q++) {
                    double acc = b ? b[o] : 0.0;
                    for (int64_t c = 0; c < Cg; c++)
                        for (int64_t i = 0; i < g->kh; i++)
                            for (int64_t j = 0; j < g->kw; j++) {
                                const int64_t ih = p * s0 - p0 + i * d0, iw = q * s1 - p1 + j * d1;
                                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W)
                                    continue;
                                acc += w[((o * Cg + c) * g->kh + i) * g->kw + j] *
                                       x[((n * g->C + (o / Og) * Cg + c) * g->H + ih) * g->W + iw];
                            }
                    y[((n * g->O + o) * OH + p) * OW + q] = acc;
                }
}

/* The gradient of L in params[], flattened, made inside a mark and rewind. */
static void
grad_flat(hess_context *ctx, hess_tensor *L, size_t np, hess_tensor *const p[], double *g)
{
    const hess_mark m = hess_context_mark(ctx);
    hess_tensor *gt[4];
    assert_ok(ctx, hess_grad(ctx, L, np, p, gt, 0));
    for (size_t i = 0; i < np; i++) {
        memcpy(g, hess_tensor_data(gt[i]), (size_t)hess_tensor_numel(p[i]) * sizeof *g);
        g += hess_tensor_numel(p[i]);
    }
    assert_ok(ctx, hess_context_rewind(ctx, m));
}

/* The Hessian by central differences of the analytic gradient, column j from
 * (g(theta + h e_j) - g(theta - h e_j)) / 2h: an independent check of the
 * second-order passes (errors about h^2 |g'''| and 1e-16 |g| / h). */
static void
fd_hessian(hess_context *ctx, hess_tensor *L, size_t np, hess_tensor *const p[], double *H)
{
    const double h = 1e-5;
    const size_t N = hess_param_count(np, p);
    double *gp = test_malloc(N * sizeof *gp), *gm = test_malloc(N * sizeof *gm);
    size_t col = 0;
    for (size_t a = 0; a < np; a++) {
        const int64_t n = hess_tensor_numel(p[a]);
        double *v = test_malloc((size_t)n * sizeof *v);
        memcpy(v, hess_tensor_data(p[a]), (size_t)n * sizeof *v);
        for (int64_t e = 0; e < n; e++, col++) {
            const double v0 = v[e];
            v[e] = v0 + h;
            assert_ok(ctx, hess_param_set(ctx, p[a], v));
            grad_flat(ctx, L, np, p, gp);
            v[e] = v0 - h;
            assert_ok(ctx, hess_param_set(ctx, p[a], v));
            grad_flat(ctx, L, np, p, gm);
            v[e] = v0;
            assert_ok(ctx, hess_param_set(ctx, p[a], v));
            for (size_t r = 0; r < N; r++)
                H[r * N + col] = (gp[r] - gm[r]) / (2 * h);
        }
        test_free(v);
    }
    test_free(gp), test_free(gm);
}

/* The Jacobian of the convolution in x alone, against the naive one applied
 * to unit inputs (no bias): the forward-mode rule with w and b constant. */
static void
check_jacobian_x(hess_context *ctx, const geo *g, hess_tensor *y, hess_tensor *x, const double *w)
{
    const size_t nx = (size_t)hess_tensor_numel(x), ny = (size_t)hess_tensor_numel(y);
    double *J = test_malloc(ny * nx * sizeof *J), *e = test_malloc(nx * sizeof *e);
    double *col = test_malloc(ny * sizeof *col);
    assert_ok(ctx, hess_jacobian(ctx, y, 1, &x, J));
    memset(e, 0, nx * sizeof *e);
    for (size_t j = 0; j < nx; j++) {
        e[j] = 1.0;
        naive_conv(g, e, w, NULL, col);
        e[j] = 0.0;
        for (size_t r = 0; r < ny; r++)
            if (fabs(J[r * nx + j] - col[r]) > 1e-14)
                fail_msg("%s: J[%zu, %zu] = %.17g, by hand %.17g", g->name, r, j, J[r * nx + j],
                         col[r]);
    }
    test_free(J), test_free(e), test_free(col);
}

/* Second order, L = sum(c tanh(y)) in x, w (and b): the Hessian in blocks
 * of 5 rows against finite differences, its diagonal by the curvature
 * backpropagation, forward over reverse HVPs in all parameters and in x
 * alone (w constant in the rules of the gradient). */
static void check_second_order(
    hess_context *ctx, const geo *g, hess_tensor *L, size_t np, hess_tensor *const p[])
{
    const size_t N = hess_param_count(np, p), nx = (size_t)hess_tensor_numel(p[0]);
    double *H = test_malloc(N * N * sizeof *H), *F = test_malloc(N * N * sizeof *F);
    double *v = test_malloc(N * sizeof *v), *hv = test_malloc(N * sizeof *hv);
    hess_hessian_opts o = {0};
    o.block_rows = 5;
    assert_ok(ctx, hess_hessian_ex(ctx, L, np, p, &o, H));
    fd_hessian(ctx, L, np, p, F);
    double scale = 0;
    for (size_t i = 0; i < N * N; i++)
        scale = fabs(F[i]) > scale ? fabs(F[i]) : scale;
    double hs = 0;
    for (size_t i = 0; i < N * N; i++)
        hs = fabs(H[i]) > hs ? fabs(H[i]) : hs;
    if (!(scale > 1e-3))
        fail_msg("%s: FD scale %g, H scale %g", g->name, scale, hs);
    for (size_t i = 0; i < N * N; i++)
        if (fabs(H[i] - F[i]) > 1e-7 * scale)
            fail_msg("%s: H[%zu, %zu] = %.17g, finite differences %.17g", g->name, i / N, i % N,
                     H[i], F[i]);
    int used = -1;
    o.block_rows = 0;
    o.method = HESS_DIAG_BACKPROP;
    o.method_used = &used;
    assert_ok(ctx, hess_hessian_diag_ex(ctx, L, np, p, &o, v));
    assert_int_equal(used, HESS_DIAG_BACKPROP);
    for (size_t i = 0; i < N; i++)
        assert_close(v[i], H[i * N + i], 0, 1e-12 * scale);
    uint64_t s = 99;
    for (size_t i = 0; i < N; i++)
        v[i] = rnd_uniform(&s, -1, 1);
    for (int part = 0; part < 2; part++) { /* all parameters, then x alone */
        const size_t n = part ? nx : N;
        assert_ok(ctx, hess_hvp_fwd(ctx, L, part ? 1 : np, p, v, hv));
        for (size_t r = 0; r < n; r++) {
            double want = 0;
            for (size_t c = 0; c < n; c++)
                want += H[r * N + c] * v[c];
            assert_close(hv[r], want, 0, 1e-12 * scale * (double)n);
        }
    }
    test_free(H), test_free(F), test_free(v), test_free(hv);
}

static void check_geometry(const geo *g)
{
    hess_context *ctx = test_context();
    const int64_t Cg = g->C / or1(g->o.groups);
    const int64_t OH =
        out_len(g->H, g->kh, or1(g->o.stride[0]), g->o.padding[0], or1(g->o.dilation[0]));
    const int64_t OW =
        out_len(g->W, g->kw, or1(g->o.stride[1]), g->o.padding[1], or1(g->o.dilation[1]));
    const int64_t nx = g->N * g->C * g->H * g->W, nw = g->O * Cg * g->kh * g->kw;
    const int64_t ny = g->N * g->O * OH * OW;
    assert_true(nx <= 96 && nw <= 32 && ny <= 128);
    double buf[96 + 32 + 8 + 128], want[128];
    uint64_t s = 5;
    for (size_t i = 0; i < sizeof buf / sizeof buf[0]; i++)
        buf[i] = rnd_uniform(&s, -1, 1);
    const double *xv = buf, *wv = buf + 96, *bv = buf + 128, *cv = buf + 136;
    hess_tensor *p[3] = {
        hess_param_new(ctx, 4, (const int64_t[]){g->N, g->C, g->H, g->W}, xv),
        hess_param_new(ctx, 4, (const int64_t[]){g->O, Cg, g->kh, g->kw}, wv),
        g->bias ? hess_param_new(ctx, 1, &g->O, bv) : NULL,
    };
    const size_t np = g->bias ? 3 : 2;
    hess_tensor *y = hess_conv2d(ctx, p[0], p[1], p[2], &g->o);
    if (!y)
        fail_msg("%s: %s", g->name, hess_context_errmsg(ctx));
    const int64_t shape[4] = {g->N, g->O, OH, OW};
    assert_int_equal(hess_tensor_ndim(y), 4);
    assert_memory_equal(hess_tensor_shape(y), shape, sizeof shape);
    naive_conv(g, xv, wv, g->bias ? bv : NULL, want);
    for (int64_t i = 0; i < ny; i++)
        if (fabs(hess_tensor_data(y)[i] - want[i]) > 1e-14)
            fail_msg("%s: y[%lld] = %.17g, by hand %.17g", g->name, (long long)i,
                     hess_tensor_data(y)[i], want[i]);
    check_jacobian_x(ctx, g, y, p[0], wv);
    hess_tensor *L =
        hess_sum(ctx, hess_mul(ctx, hess_tensor_new(ctx, 4, shape, cv), hess_tanh(ctx, y)));
    assert_ok(ctx, hess_context_status(ctx));
    check_second_order(ctx, g, L, np, p);
    hess_context_destroy(ctx);
}

/* A 1x1 kernel at stride 1 without padding multiplies x itself (no unfolded
 * copy), per group; each change of that geometry takes the general path. */
static void test_conv_geometries(void **state)
{
    (void)state;
    static const geo geos[] = {
        {"1x1, one group (direct)", 2, 3, 2, 3, 2, 1, 1, {{0, 0}, {0, 0}, {0, 0}, 0}, true},
        {"1x1, two groups (direct)", 2, 4, 3, 2, 4, 1, 1, {{1, 1}, {0, 0}, {1, 1}, 2}, true},
        {"1x1, stride 2x1", 1, 2, 3, 3, 2, 1, 1, {{2, 1}, {0, 0}, {0, 0}, 0}, false},
        {"1x1, stride 1x2", 1, 2, 3, 3, 2, 1, 1, {{1, 2}, {0, 0}, {0, 0}, 0}, false},
        {"1x1, padding 1x0", 1, 2, 2, 3, 2, 1, 1, {{0, 0}, {1, 0}, {0, 0}, 0}, true},
        {"1x1, padding 0x1", 1, 2, 2, 3, 2, 1, 1, {{0, 0}, {0, 1}, {0, 0}, 0}, false},
        {"1x2 kernel", 2, 2, 2, 3, 2, 1, 2, {{0, 0}, {0, 0}, {0, 0}, 0}, true},
        {"2x1 kernel, stride 1x2", 1, 2, 3, 4, 2, 2, 1, {{1, 2}, {0, 0}, {0, 0}, 0}, false},
        /* a kernel wider than the input: its last column reads only the
         * padding on the right (columns -1, 0, 1 of a plane 1 wide) */
        {"a tap past the right edge", 1, 2, 3, 1, 2, 2, 3, {{1, 1}, {0, 1}, {1, 1}, 1}, true},
        /* rows -1 and 1, then 0 and 2 of a plane 2 high */
        {"a tap past the bottom edge", 1, 2, 2, 3, 2, 2, 2, {{1, 1}, {1, 0}, {2, 1}, 1}, false},
    };
    for (size_t i = 0; i < sizeof geos / sizeof geos[0]; i++)
        check_geometry(&geos[i]);
}

/* ------------------------------------------------------------------------ */
/* Pooling windows that are not 2x2                                         */
/* ------------------------------------------------------------------------ */

/* Max-pooling 2x3 windows at stride 1 (not the unrolled 2x2 case), by hand:
 * the maxima and, for sum(c y), the gradient c scattered to them, added
 * where two windows share their maximum. */
static void test_max_pool_2x3(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    static const double xv[12] = {1, 9, 2, 0, /**/ 3, 4, 8, 5, /**/ 7, 6, 1, 2};
    hess_tensor *x = hess_param_new(ctx, 4, (const int64_t[]){1, 1, 3, 4}, xv);
    hess_tensor *y = hess_max_pool2d(ctx, x, 2, 3, 1, 1);
    assert_non_null(y);
    assert_memory_equal(hess_tensor_shape(y), ((const int64_t[]){1, 1, 2, 2}), 4 * sizeof(int64_t));
    /* windows: rows 0-1 cols 0-2 -> 9 at (0,1); rows 0-1 cols 1-3 -> 9 at
     * (0,1); rows 1-2 cols 0-2 -> 8 at (1,2); rows 1-2 cols 1-3 -> 8 at (1,2) */
    assert_memory_equal(hess_tensor_data(y), ((const double[]){9, 9, 8, 8}), 4 * sizeof(double));
    hess_tensor *c =
        hess_tensor_new(ctx, 4, (const int64_t[]){1, 1, 2, 2}, (const double[]){0.5, -2, 3, 0.25});
    hess_tensor *L = hess_sum(ctx, hess_mul(ctx, c, y)), *g;
    assert_ok(ctx, hess_grad(ctx, L, 1, &x, &g, 0));
    static const double want[12] = {0, -1.5, 0, 0, /**/ 0, 0, 3.25, 0, /**/ 0, 0, 0, 0};
    assert_memory_equal(hess_tensor_data(g), want, sizeof want);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* The diagonal when the convolution's batch is not the samples'            */
/* ------------------------------------------------------------------------ */

/* L = sum(tanh(conv(x [1, ...], w, b))) + sum(tanh(q)), q [3, 2]: the
 * samples' dimension is taken from q (B = 3), the convolution's output has
 * one row, so its shared w and b have no per-sample rule; the curvature
 * backpropagation sweeps explicit columns instead, and gives the rows'
 * diagonal. */
static void test_conv_diag_other_batch(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    uint64_t s = 3;
    double buf[64];
    for (size_t i = 0; i < 64; i++)
        buf[i] = rnd_uniform(&s, -0.9, 0.9);
    hess_tensor *x = hess_tensor_new(ctx, 4, (const int64_t[]){1, 2, 3, 3}, buf);
    hess_tensor *p[3] = {
        hess_param_new(ctx, 4, (const int64_t[]){2, 2, 2, 2}, buf + 20),
        hess_param_new(ctx, 1, (const int64_t[]){2}, buf + 40),
        hess_param_new(ctx, 2, (const int64_t[]){3, 2}, buf + 50),
    };
    hess_tensor *L =
        hess_add(ctx, hess_sum(ctx, hess_tanh(ctx, hess_conv2d(ctx, x, p[0], p[1], NULL))),
                 hess_sum(ctx, hess_tanh(ctx, p[2])));
    assert_ok(ctx, hess_context_status(ctx));
    double byrows[24], bp[24];
    hess_hessian_opts o = {0};
    int used = -1;
    o.method_used = &used;
    o.method = HESS_DIAG_ROWS;
    assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 3, p, &o, byrows));
    o.method = HESS_DIAG_BACKPROP;
    assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 3, p, &o, bp));
    assert_int_equal(used, HESS_DIAG_BACKPROP);
    double scale = 0;
    for (size_t i = 0; i < 24; i++)
        scale = fabs(byrows[i]) > scale ? fabs(byrows[i]) : scale;
    for (size_t i = 0; i < 24; i++)
        assert_close(bp[i], byrows[i], 0, 1e-13 * scale);
    /* q's part by hand: d2/dq2 tanh(q) = -2 tanh(q) (1 - tanh(q)^2) */
    for (size_t i = 0; i < 6; i++) {
        const double t = tanh(buf[50 + i]);
        assert_close(byrows[18 + i], -2 * t * (1 - t * t), 1e-13, 0);
    }
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Out of memory                                                            */
/* ------------------------------------------------------------------------ */

/* One sample [C,H,W] through conv (bias, padding) -> tanh -> max-pool ->
 * avg-pool -> sum of squares; its gradient and one HVP.  Returns the index
 * of the step that failed (in STEPS) or N_STEPS when all passed, -1 when
 * the leaves could not be made; L and the derivatives in out[]. */
#define N_STEPS 8
static const char *const STEPS[N_STEPS] = {"hess_conv2d",     "hess_tanh", "hess_max_pool2d",
                                           "hess_avg_pool2d", "hess_",     "hess_tensor_new",
                                           "hess_vjp",        "hess_hvp"};
#define N_OUT (1 + 2 * 36)
static int pool_workflow(hess_context *ctx, double out[N_OUT])
{
    static const double xv[18] = {0.1,  -0.4, 0.9, 0.3,  -0.8, 0.5,  0.7, -0.2, 0.6,
                                  -0.5, 0.2,  0.8, -0.9, 0.4,  -0.1, 0.3, 0.6,  -0.7};
    static const double wv[16] = {0.3, -0.2, 0.5,  0.1, -0.4, 0.6,  0.2, -0.3,
                                  0.4, 0.1,  -0.5, 0.2, 0.3,  -0.6, 0.1, 0.5};
    hess_tensor *p[3] = {hess_param_new(ctx, 3, (const int64_t[]){2, 3, 3}, xv),
                         hess_param_new(ctx, 4, (const int64_t[]){2, 2, 2, 2}, wv),
                         hess_param_new(ctx, 1, (const int64_t[]){2}, (const double[]){0.1, -0.2})};
    if (!p[0] || !p[1] || !p[2])
        return -1;
    const hess_conv_opts pad = {{1, 1}, {1, 1}, {1, 1}, 1};
    hess_tensor *t[5];
    if (!(t[0] = hess_conv2d(ctx, p[0], p[1], p[2], &pad))) /* [2,4,4] */
        return 0;
    if (!(t[1] = hess_tanh(ctx, t[0])))
        return 1;
    if (!(t[2] = hess_max_pool2d(ctx, t[1], 2, 2, 0, 0))) /* [2,2,2] */
        return 2;
    if (!(t[3] = hess_avg_pool2d(ctx, t[2], 1, 2, 1, 1))) /* [2,2,1] */
        return 3;
    if (!(t[4] = hess_sum(ctx, hess_mul(ctx, t[3], t[3]))))
        return 4;
    out[0] = hess_tensor_data(t[4])[0];
    /* the gradient by hess_vjp from a seed of our own: every error of the
     * backward pass then names hess_vjp */
    hess_tensor *g[3], *seed = hess_tensor_new(ctx, 0, NULL, (const double[]){1.0});
    if (!seed)
        return 5;
    if (hess_vjp(ctx, 1, &t[4], &seed, 3, p, g, 0) != HESS_OK)
        return 6;
    for (int i = 0, off = 1; i < 3; off += (int)hess_tensor_numel(p[i]), i++)
        memcpy(out + off, hess_tensor_data(g[i]), (size_t)hess_tensor_numel(p[i]) * sizeof *out);
    double v[36];
    for (int i = 0; i < 36; i++)
        v[i] = 1.0 / (i + 1);
    return hess_hvp(ctx, t[4], 3, p, v, out + 37) == HESS_OK ? N_STEPS : 7;
}

/* The workflow under byte limits from 1 KiB up, each run in a fresh context
 * with small arena blocks (so that, near the limit, each request is a block
 * of its own): every run either completes with the unlimited run's numbers
 * or fails with HESS_ERR_NOMEM and a message naming the function, and every
 * step fails at some limit. */
static void test_conv_out_of_memory(void **state)
{
    (void)state;
    hess_context *ctx;
    hess_config cfg = {0};
    cfg.block_bytes = 256;
    double want[N_OUT], got[N_OUT];
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    assert_int_equal(pool_workflow(ctx, want), N_STEPS);
    hess_context_destroy(ctx);
    int failed[N_STEPS] = {0};
    bool done = false;
    for (cfg.max_bytes = 1024; !done && cfg.max_bytes < (1u << 20); cfg.max_bytes += 16) {
        if (hess_context_create(&cfg, &ctx) != HESS_OK)
            continue;
        const int r = pool_workflow(ctx, got);
        if (r == N_STEPS) {
            assert_memory_equal(got, want, sizeof want);
            done = true;
        } else if (r >= 0) {
            failed[r]++;
            assert_int_equal(hess_context_status(ctx), HESS_ERR_NOMEM);
            const char *msg = hess_context_errmsg(ctx);
            if (strncmp(msg, STEPS[r], strlen(STEPS[r])) != 0 || !strstr(msg, "out of memory"))
                fail_msg("limit %zu, step %d: \"%s\"", cfg.max_bytes, r, msg);
        }
        hess_context_destroy(ctx);
    }
    assert_true(done);
    for (int r = 0; r < N_STEPS; r++)
        if (!failed[r])
            fail_msg("step %d (%s) never ran out of memory", r, STEPS[r]);
}

/* ------------------------------------------------------------------------ */
/* The records by themselves (white box): what the builders never give them */
/* ------------------------------------------------------------------------ */

/* The rules make the adjoint records, and the fuzzer applies any record to
 * any operands: their shape rules must refuse what does not fit, with the
 * record's name, and their rules take the batch prefix the passes add. */

static hess_tensor *leaf(hess_context *ctx, int nd, const int64_t *shape)
{
    double v[128];
    int64_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= shape[i];
    assert_true(n <= 128);
    for (int64_t i = 0; i < n; i++)
        v[i] = (double)((i * 7) % 11) - 4.5; /* distinct magnitudes per window */
    return hess_tensor_new(ctx, nd, shape, v);
}
#define LEAF(...)                                                                                  \
    leaf(ctx, (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),                     \
         (const int64_t[]){__VA_ARGS__})

/* The record `name` on a, b (and c), with the geometry *par (NULL: the
 * parameters point to none). */
static hess_tensor *record(hess_context *ctx,
                           const char *name,
                           hess_tensor *a,
                           hess_tensor *b,
                           hess_tensor *c,
                           const hess__conv_par *par)
{
    hess_tensor *src[3] = {a, b, c};
    hess_op_params p;
    memset(&p, 0, sizeof p);
    p.conv.p = par;
    return hess__apply(ctx, hess__op_find(name), src, &p, name);
}

/* t is NULL with status st and exactly the message msg; the error is then cleared. */
static void refused(hess_context *ctx, const hess_tensor *t, hess_status st, const char *msg)
{
    assert_null(t);
    assert_int_equal(hess_context_status(ctx), st);
    if (strcmp(hess_context_errmsg(ctx), msg) != 0)
        fail_msg("message \"%s\", expected \"%s\"", hess_context_errmsg(ctx), msg);
    hess_context_clear_error(ctx);
}

static void test_conv_records_refuse(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    const hess__conv_par none = {0}, g2 = {.groups = 2}, huge_s = {.sh = INT64_MAX / 4},
                         huge_sw = {.sw = INT64_MAX / 4}, huge_d = {.dh = INT64_MAX / 2};
    hess_tensor *x = LEAF(1, 1, 3, 3), *w = LEAF(1, 1, 2, 2), *gy = LEAF(1, 1, 2, 2);
    hess_tensor *r3 = LEAF(1, 3, 3);
    refused(ctx, record(ctx, "conv2d", r3, w, NULL, &none), HESS_ERR_SHAPE,
            "conv2d: x and w [1,3,3] and [1,1,2,2]: need rank >= 4");
    refused(ctx, record(ctx, "conv2d", x, LEAF(1, 2, 2), NULL, &none), HESS_ERR_SHAPE,
            "conv2d: x and w [1,1,3,3] and [1,2,2]: need rank >= 4");
    refused(ctx, record(ctx, "conv2d", LEAF(2, 1, 1, 3, 3), LEAF(3, 1, 1, 2, 2), NULL, &none),
            HESS_ERR_SHAPE,
            "conv2d: the leading dims of [2,1,1,3,3] and [3,1,1,2,2] do not broadcast");
    refused(ctx, record(ctx, "conv2d_bias", x, w, LEAF(2), &none), HESS_ERR_SHAPE,
            "conv2d_bias: bias [2] does not fit the 1 output channels of [1,1,2,2]");
    refused(ctx, record(ctx, "conv2d_bias", x, w, LEAF(1, 1), &none), HESS_ERR_SHAPE,
            "conv2d_bias: bias [1,1] does not fit the 1 output channels of [1,1,2,2]");
    refused(ctx, record(ctx, "conv2d_bias", r3, w, LEAF(1), &none), HESS_ERR_SHAPE,
            "conv2d_bias: x and w [1,3,3] and [1,1,2,2]: need rank >= 4");

    /* conv2d_input(gy, w): x-like, H and W given or the shortest */
    refused(ctx, record(ctx, "conv2d_input", LEAF(1, 2, 2), w, NULL, &none), HESS_ERR_SHAPE,
            "conv2d_input: cotangent and w [1,2,2] and [1,1,2,2]: need rank >= 4");
    refused(ctx, record(ctx, "conv2d_input", gy, LEAF(1, 2, 2), NULL, &none), HESS_ERR_SHAPE,
            "conv2d_input: cotangent and w [1,1,2,2] and [1,2,2]: need rank >= 4");
    refused(ctx, record(ctx, "conv2d_input", LEAF(1, 2, 2, 2), w, NULL, &none), HESS_ERR_SHAPE,
            "conv2d_input: cotangent [1,2,2,2] does not fit w [1,1,2,2]");
    refused(ctx, record(ctx, "conv2d_input", LEAF(1, 3, 2, 2), LEAF(3, 1, 2, 2), NULL, &g2),
            HESS_ERR_SHAPE,
            "conv2d_input: 2 input channels and 3 outputs do not fit a weight of 1 channels per "
            "group with 2 groups");
    refused(ctx, record(ctx, "conv2d_input", gy, w, NULL, &(hess__conv_par){.in_h = 10, .in_w = 3}),
            HESS_ERR_SHAPE, "conv2d_input: no input of 10x3 gives the cotangent [1,1,2,2]");
    refused(ctx, record(ctx, "conv2d_input", gy, w, NULL, &(hess__conv_par){.in_h = 3, .in_w = 7}),
            HESS_ERR_SHAPE, "conv2d_input: no input of 3x7 gives the cotangent [1,1,2,2]");
    /* (OH - 1) s or (k - 1) d past INT64_MAX / 4: no input */
    hess_tensor *gy3 = LEAF(1, 1, 3, 3);
    refused(ctx, record(ctx, "conv2d_input", gy3, w, NULL, &huge_s), HESS_ERR_SHAPE,
            "conv2d_input: no input of 0x4 gives the cotangent [1,1,3,3]");
    refused(ctx, record(ctx, "conv2d_input", gy3, w, NULL, &huge_sw), HESS_ERR_SHAPE,
            "conv2d_input: no input of 4x0 gives the cotangent [1,1,3,3]");
    refused(ctx, record(ctx, "conv2d_input", gy3, w, NULL, &huge_d), HESS_ERR_SHAPE,
            "conv2d_input: no input of 0x4 gives the cotangent [1,1,3,3]");

    /* conv2d_weight(gy, x): w-like, kh and kw given or the largest */
    refused(ctx, record(ctx, "conv2d_weight", LEAF(1, 2, 2), x, NULL, &none), HESS_ERR_SHAPE,
            "conv2d_weight: cotangent and x [1,2,2] and [1,1,3,3]: need rank >= 4");
    refused(ctx, record(ctx, "conv2d_weight", gy, r3, NULL, &none), HESS_ERR_SHAPE,
            "conv2d_weight: cotangent and x [1,1,2,2] and [1,3,3]: need rank >= 4");
    refused(ctx, record(ctx, "conv2d_weight", LEAF(2, 1, 2, 2), x, NULL, &none), HESS_ERR_SHAPE,
            "conv2d_weight: cotangent [2,1,2,2] does not fit x [1,1,3,3]");
    refused(ctx, record(ctx, "conv2d_weight", LEAF(1, 2, 2, 2), LEAF(1, 3, 3, 3), NULL, &g2),
            HESS_ERR_SHAPE, "conv2d_weight: cotangent [1,2,2,2] does not fit x [1,3,3,3]");
    refused(ctx, record(ctx, "conv2d_weight", LEAF(1, 3, 2, 2), LEAF(1, 2, 3, 3), NULL, &g2),
            HESS_ERR_SHAPE,
            "conv2d_weight: 2 input channels and 3 outputs do not fit a weight of 1 channels per "
            "group with 2 groups");
    refused(ctx, record(ctx, "conv2d_weight", gy, x, NULL, &(hess__conv_par){.kh = 5, .kw = 2}),
            HESS_ERR_SHAPE,
            "conv2d_weight: no kernel of 5x2 maps x [1,1,3,3] to the cotangent [1,1,2,2]");
    refused(ctx, record(ctx, "conv2d_weight", gy, x, NULL, &(hess__conv_par){.kh = 2, .kw = 3}),
            HESS_ERR_SHAPE,
            "conv2d_weight: no kernel of 2x3 maps x [1,1,3,3] to the cotangent [1,1,2,2]");
    refused(ctx, record(ctx, "conv2d_weight", LEAF(1, 1, 4, 2), x, NULL, &none), HESS_ERR_SHAPE,
            "conv2d_weight: no kernel of 0x2 maps x [1,1,3,3] to the cotangent [1,1,4,2]");
    refused(ctx, record(ctx, "conv2d_weight", LEAF(1, 1, 2, 4), x, NULL, &none), HESS_ERR_SHAPE,
            "conv2d_weight: no kernel of 2x0 maps x [1,1,3,3] to the cotangent [1,1,2,4]");
    refused(ctx, record(ctx, "conv2d_weight", gy3, x, NULL, &huge_s), HESS_ERR_SHAPE,
            "conv2d_weight: no kernel of 0x1 maps x [1,1,3,3] to the cotangent [1,1,3,3]");
    hess_context_destroy(ctx);
}

static void test_pool_records_refuse(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    const hess__conv_par k2 = {.kh = 2, .kw = 2};
    hess_tensor *x = LEAF(1, 1, 4, 4), *gy = LEAF(1, 1, 2, 2);
    refused(ctx, record(ctx, "avg_pool2d", LEAF(4), NULL, NULL, &k2), HESS_ERR_SHAPE,
            "avg_pool2d: needs a tensor of rank >= 2, got [4]");
    refused(ctx, record(ctx, "avg_pool2d_adjoint", LEAF(4), NULL, NULL, &k2), HESS_ERR_SHAPE,
            "avg_pool2d_adjoint: needs a tensor of rank >= 2, got [4]");
    refused(ctx,
            record(ctx, "avg_pool2d_adjoint", gy, NULL, NULL,
                   &(hess__conv_par){.kh = 2, .kw = 2, .in_h = 7, .in_w = 4}),
            HESS_ERR_SHAPE, "avg_pool2d_adjoint: no input of 7x4 pools to [1,1,2,2]");
    refused(ctx,
            record(ctx, "avg_pool2d_adjoint", gy, NULL, NULL,
                   &(hess__conv_par){.kh = 2, .kw = 2, .in_h = 4, .in_w = 6}),
            HESS_ERR_SHAPE, "avg_pool2d_adjoint: no input of 4x6 pools to [1,1,2,2]");
    refused(ctx,
            record(ctx, "avg_pool2d_adjoint", gy, NULL, NULL,
                   &(hess__conv_par){.kh = 2, .kw = 2, .sh = INT64_MAX / 2}),
            HESS_ERR_SHAPE, "avg_pool2d_adjoint: no input of 0x4 pools to [1,1,2,2]");
    refused(ctx,
            record(ctx, "avg_pool2d_adjoint", gy, NULL, NULL,
                   &(hess__conv_par){.kh = 2, .kw = 2, .sw = INT64_MAX / 2}),
            HESS_ERR_SHAPE, "avg_pool2d_adjoint: no input of 4x0 pools to [1,1,2,2]");

    /* the selections read the maxima of a max_pool2d node, and take t shaped
     * like its input (or a prefix before that) */
    hess_tensor *y = hess_max_pool2d(ctx, x, 2, 2, 0, 0), *a = hess_avg_pool2d(ctx, x, 2, 2, 0, 0);
    refused(ctx, record(ctx, "max_pool2d_select", x, a, NULL, NULL), HESS_ERR_ARG,
            "max_pool2d_select: [1,1,2,2] is not a result of max_pool2d (op avg_pool2d)");
    refused(ctx, record(ctx, "max_pool2d_select", LEAF(4, 4), y, NULL, NULL), HESS_ERR_SHAPE,
            "max_pool2d_select: tensor [4,4] does not fit [1,1,4,4]");
    refused(ctx, record(ctx, "max_pool2d_select", LEAF(1, 2, 4, 4), y, NULL, NULL), HESS_ERR_SHAPE,
            "max_pool2d_select: tensor [1,2,4,4] does not fit [1,1,4,4]");
    refused(ctx, record(ctx, "max_pool2d_select", LEAF(1, 1, 3, 4), y, NULL, NULL), HESS_ERR_SHAPE,
            "max_pool2d_select: tensor [1,1,3,4] does not fit [1,1,4,4]");
    refused(ctx, record(ctx, "max_pool2d_select", LEAF(1, 1, 4, 3), y, NULL, NULL), HESS_ERR_SHAPE,
            "max_pool2d_select: tensor [1,1,4,3] does not fit [1,1,4,4]");
    refused(ctx, record(ctx, "max_unpool2d", LEAF(1, 1, 3, 2), y, NULL, NULL), HESS_ERR_SHAPE,
            "max_unpool2d: cotangent [1,1,3,2] does not fit [1,1,2,2]");
    hess_context_destroy(ctx);
}

/* Without a geometry (parameters NULL, or pointing to none) the records take
 * the defaults: stride 1, no padding, one group; a 1x1 window. */
static void test_conv_records_defaults(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *x = LEAF(2, 2, 3, 3), *w = LEAF(2, 2, 2, 2);
    hess_tensor *want = hess_conv2d(ctx, x, w, NULL, NULL);
    hess_tensor *src[2] = {x, w};
    hess_tensor *got[2] = {hess__apply(ctx, hess__op_find("conv2d"), src, NULL, "conv2d"),
                           record(ctx, "conv2d", x, w, NULL, NULL)};
    for (int i = 0; i < 2; i++) {
        assert_non_null(got[i]);
        assert_memory_equal(hess_tensor_shape(got[i]), hess_tensor_shape(want),
                            4 * sizeof(int64_t));
        assert_memory_equal(hess_tensor_data(got[i]), hess_tensor_data(want), 16 * sizeof(double));
    }
    hess_tensor *id = hess__apply(ctx, hess__op_find("avg_pool2d"), src, NULL, "avg_pool2d");
    assert_non_null(id);
    assert_memory_equal(hess_tensor_data(id), hess_tensor_data(x), 36 * sizeof(double));
    /* the adjoint's input: the shortest that pools to gy, (2 - 1) 2 + 2 = 4 */
    hess_tensor *gy = LEAF(1, 1, 2, 2);
    hess_tensor *up =
        record(ctx, "avg_pool2d_adjoint", gy, NULL, NULL, &(hess__conv_par){.kh = 2, .kw = 2});
    assert_non_null(up);
    assert_memory_equal(hess_tensor_shape(up), ((const int64_t[]){1, 1, 4, 4}),
                        4 * sizeof(int64_t));
    const double *g = hess_tensor_data(gy), *u = hess_tensor_data(up);
    for (int h = 0; h < 4; h++)
        for (int c = 0; c < 4; c++)
            assert_close(u[h * 4 + c], g[(h / 2) * 2 + c / 2] / 4, 0, 0);
    hess_context_destroy(ctx);
}

/* The Jacobian of the record `name` in one operand (`which`, a parameter),
 * by hess_jacobian's forward mode (the k directions as a leading dim; the
 * operand without the other's batch prefix has its tangent padded to it),
 * against the record applied to the unit tensors, the record being linear
 * in each operand. */
static void check_linear_record(
    const char *name, int which, int na, const int64_t *sa, int nb, const int64_t *sb)
{
    hess_context *ctx = test_context();
    hess_tensor *ops[2] = {leaf(ctx, na, sa), leaf(ctx, nb, sb)};
    hess_tensor *p = ops[which];
    ops[which] =
        hess_param_new(ctx, hess_tensor_ndim(p), hess_tensor_shape(p), hess_tensor_data(p));
    p = ops[which];
    const hess__conv_par none = {0};
    hess_tensor *y = record(ctx, name, ops[0], ops[1], NULL, &none);
    assert_non_null(y);
    const size_t n = (size_t)hess_tensor_numel(p), m = (size_t)hess_tensor_numel(y);
    assert_true(n <= m && n <= 16); /* forward mode: one batched pass */
    double J[16 * 64], e[16] = {0};
    assert_true(m <= 64);
    assert_ok(ctx, hess_jacobian(ctx, y, 1, &p, J));
    for (size_t j = 0; j < n; j++) {
        e[j] = 1.0;
        hess_tensor *u = hess_tensor_new(ctx, hess_tensor_ndim(p), hess_tensor_shape(p), e);
        e[j] = 0.0;
        hess_tensor *col = record(ctx, name, which ? ops[0] : u, which ? u : ops[1], NULL, &none);
        assert_non_null(col);
        for (size_t r = 0; r < m; r++)
            if (J[r * n + j] != hess_tensor_data(col)[r])
                fail_msg("%s in operand %d: J[%zu, %zu] = %.17g, by units %.17g", name, which, r, j,
                         J[r * n + j], hess_tensor_data(col)[r]);
    }
    hess_context_destroy(ctx);
}

#define SH(...)                                                                                    \
    (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[])             \
    {                                                                                              \
        __VA_ARGS__                                                                                \
    }

static void test_conv_records_prefix_jvp(void **state)
{
    (void)state;
    /* conv2d(x, w): x with a prefix of 2 and w without, and the reverse */
    check_linear_record("conv2d", 1, SH(2, 1, 1, 3, 3), SH(1, 1, 2, 2));
    check_linear_record("conv2d", 0, SH(1, 1, 3, 3), SH(3, 1, 1, 2, 2));
    /* conv2d_input(gy, w) */
    check_linear_record("conv2d_input", 1, SH(2, 1, 1, 2, 2), SH(1, 1, 2, 2));
    check_linear_record("conv2d_input", 0, SH(1, 1, 2, 2), SH(2, 1, 1, 2, 2));
    /* conv2d_weight(gy, x) */
    check_linear_record("conv2d_weight", 1, SH(2, 1, 1, 1, 1), SH(1, 1, 2, 2));
    check_linear_record("conv2d_weight", 0, SH(1, 1, 1, 1), SH(2, 1, 1, 2, 2));
}

/* max_pool2d_select(t, y) with t constant: the maxima y picks move only
 * where x has ties, so the selection has no derivative in x (zero), and its
 * values are t at x's maxima. */
static void test_select_constant_t(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    static const double xv[16] = {1, 5, 2, 0, /**/ 3, 4, 8, 6, /**/ 9, 2, 1, 7, /**/ 0, 3, 4, 2};
    hess_tensor *x = hess_param_new(ctx, 4, (const int64_t[]){1, 1, 4, 4}, xv);
    hess_tensor *t = LEAF(1, 1, 4, 4);
    hess_tensor *s =
        record(ctx, "max_pool2d_select", t, hess_max_pool2d(ctx, x, 2, 2, 0, 0), NULL, NULL);
    assert_non_null(s);
    const double *tv = hess_tensor_data(t);
    /* maxima at (0,1), (1,2), (2,0), (2,3) */
    const double want[4] = {tv[1], tv[6], tv[8], tv[11]};
    assert_memory_equal(hess_tensor_data(s), want, sizeof want);
    double v[16], jv[4] = {1, 1, 1, 1};
    for (int i = 0; i < 16; i++)
        v[i] = i + 1.0;
    assert_ok(ctx, hess_jvp(ctx, s, 1, &x, v, jv));
    assert_memory_equal(jv, ((const double[]){0, 0, 0, 0}), sizeof jv);
    hess_context_destroy(ctx);
}

/* L = sum(tanh(max_pool2d_select(tanh(q), max_pool2d(x)))) on planes of
 * rank 2 ([4,4] pooled 1x2 to [4,2]): a plane's rows are not samples, so the
 * curvature backpropagation sweeps explicit columns, and gives the rows'
 * diagonal; by hand, tanh(q)'s elements at x's maxima each have the
 * diagonal of tanh(tanh(q)), the others none. */
static void test_select_rank2_diag(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    static const double xv[16] = {1, 5, 2, 0, /**/ 3, 4, 8, 6, /**/ 9, 2, 1, 7, /**/ 0, 3, 4, 2};
    double qv[16];
    for (int i = 0; i < 16; i++)
        qv[i] = 0.1 * (i - 7.5);
    hess_tensor *x = hess_tensor_new(ctx, 2, (const int64_t[]){4, 4}, xv);
    hess_tensor *q = hess_param_new(ctx, 2, (const int64_t[]){4, 4}, qv);
    const hess__conv_par k12 = {.kh = 1, .kw = 2};
    hess_tensor *y = record(ctx, "max_pool2d", x, NULL, NULL, &k12);
    hess_tensor *s = record(ctx, "max_pool2d_select", hess_tanh(ctx, q), y, NULL, NULL);
    hess_tensor *L = hess_sum(ctx, hess_tanh(ctx, s));
    assert_ok(ctx, hess_context_status(ctx));
    double byrows[16], bp[16];
    hess_hessian_opts o = {0};
    int used = -1;
    o.method_used = &used;
    o.method = HESS_DIAG_ROWS;
    assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 1, &q, &o, byrows));
    o.method = HESS_DIAG_BACKPROP;
    assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 1, &q, &o, bp));
    assert_int_equal(used, HESS_DIAG_BACKPROP);
    /* maxima of the 1x2 windows: columns 1, 0 | 0, 1 | 0, 1 | 1, 0 of each pair */
    static const int at[8] = {1, 2, 5, 6, 8, 11, 13, 14};
    bool picked[16] = {false};
    for (int k = 0; k < 8; k++)
        picked[at[k]] = true;
    for (int i = 0; i < 16; i++) {
        /* f(q) = tanh(u), u = tanh(q): f'' = (1 - t^2)(-2 t) u'^2 + (1 - t^2) u'',
         * t = tanh(u), u' = 1 - u^2, u'' = -2 u u' */
        const double u = tanh(qv[i]), t = tanh(u), du = 1 - u * u;
        const double want = picked[i] ? (1 - t * t) * (-2 * t * du * du - 2 * u * du) : 0.0;
        assert_close(byrows[i], want, 1e-12, 1e-15);
        assert_close(bp[i], byrows[i], 1e-12, 1e-15);
    }
    hess_context_destroy(ctx);
}

/* A convolution record with a batch prefix before its samples (as the
 * passes make): its x is not per sample, its w and b are not the rank-4 case
 * the per-sample rule covers, so the curvature backpropagation sweeps
 * explicit columns, and gives the rows' diagonal. */
static void test_conv_records_prefix_diag(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *x = LEAF(2, 3, 1, 3, 3);
    double xv[54];
    for (int i = 0; i < 54; i++)
        xv[i] = 0.1 * hess_tensor_data(x)[i];
    hess_tensor *p[3] = {hess_param_new(ctx, 5, hess_tensor_shape(x), xv),
                         hess_param_new(ctx, 4, (const int64_t[]){1, 1, 2, 2},
                                        (const double[]){0.5, -1.0, 0.8, 0.2}),
                         hess_param_new(ctx, 1, (const int64_t[]){1}, (const double[]){0.3})};
    const hess__conv_par none = {0};
    hess_tensor *L =
        hess_sum(ctx, hess_tanh(ctx, record(ctx, "conv2d_bias", p[0], p[1], p[2], &none)));
    assert_ok(ctx, hess_context_status(ctx));
    double byrows[59], bp[59];
    hess_hessian_opts o = {0};
    int used = -1;
    o.method_used = &used;
    o.method = HESS_DIAG_ROWS;
    assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 3, p, &o, byrows));
    o.method = HESS_DIAG_BACKPROP;
    assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 3, p, &o, bp));
    assert_int_equal(used, HESS_DIAG_BACKPROP);
    double scale = 0;
    for (int i = 0; i < 59; i++)
        scale = fabs(byrows[i]) > scale ? fabs(byrows[i]) : scale;
    assert_true(scale > 1e-3);
    for (int i = 0; i < 59; i++)
        assert_close(bp[i], byrows[i], 0, 1e-13 * scale);
    hess_context_destroy(ctx);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_refs_conv_every_file_claimed),
        cmocka_unit_test(test_conv_diag_backprop_batch),
        cmocka_unit_test(test_conv_geometries),
        cmocka_unit_test(test_max_pool_2x3),
        cmocka_unit_test(test_conv_diag_other_batch),
        cmocka_unit_test(test_conv_out_of_memory),
        cmocka_unit_test(test_conv_records_refuse),
        cmocka_unit_test(test_pool_records_refuse),
        cmocka_unit_test(test_conv_records_defaults),
        cmocka_unit_test(test_conv_records_prefix_jvp),
        cmocka_unit_test(test_select_constant_t),
        cmocka_unit_test(test_select_rank2_diag),
        cmocka_unit_test(test_conv_records_prefix_diag),
    };
#define N_FIXED (sizeof fixed / sizeof fixed[0])
    struct CMUnitTest tests[N_FIXED + N_ROWS];
    memcpy(tests, fixed, sizeof fixed);
    char names[N_ROWS][96];
    for (size_t i = 0; i < N_ROWS; i++) {
        snprintf(names[i], sizeof names[i], "ref_%s", rows[i].name);
        tests[i + N_FIXED] = (struct CMUnitTest){names[i], test_ref_case, NULL, NULL, &rows[i]};
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
