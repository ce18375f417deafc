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
 */
#define _POSIX_C_SOURCE 200809L /* opendir */
#include "check.h"

#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define RTOL  1e-12
#define MAXIN 8

typedef hess_tensor *(*ref_build)(hess_context *ctx, hess_tensor *const in[]);

typedef struct ref_row {
    const char *name;  /* the case: tests/data/ops/<name>.ref */
    const char *model; /* its model line, exactly */
    ref_build build;
} ref_row;

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

/* ------------------------------------------------------------------------ */
/* Comparing                                                                */
/* ------------------------------------------------------------------------ */

/* got[n] against the reference tensor want: within RTOL of want's largest
 * magnitude (exactly where want is all zeros). */
static void compare(const char *cs, const char *what, const double *got, const hess_tensor *want)
{
    const int64_t n = hess_tensor_numel(want);
    const double *w = hess_tensor_data(want);
    double scale = 0.0;
    for (int64_t i = 0; i < n; i++)
        scale = fabs(w[i]) > scale ? fabs(w[i]) : scale;
    for (int64_t i = 0; i < n; i++) {
        const double err = fabs(got[i] - w[i]);
        if (!(err <= RTOL * scale) && !(got[i] == w[i]))
            fail_msg("%s: %s[%lld] = %.17g, PyTorch %.17g (error %.3g, largest %.3g)", cs, what,
                     (long long)i, got[i], w[i], err, scale);
    }
}

static void
compare_tensor(const char *cs, const char *what, const hess_tensor *got, const hess_tensor *want)
{
    if (!want)
        fail_msg("%s: the file has no tensor %s", cs, what);
    if (hess_tensor_ndim(got) != hess_tensor_ndim(want) ||
        memcmp(hess_tensor_shape(got), hess_tensor_shape(want),
               (size_t)hess_tensor_ndim(got) * sizeof(int64_t)) != 0)
        fail_msg("%s: %s has rank %d and %lld elements, PyTorch rank %d and %lld", cs, what,
                 hess_tensor_ndim(got), (long long)hess_tensor_numel(got), hess_tensor_ndim(want),
                 (long long)hess_tensor_numel(want));
    compare(cs, what, hess_tensor_data(got), want);
}

/* ------------------------------------------------------------------------ */
/* One case                                                                 */
/* ------------------------------------------------------------------------ */

static hess_tensor *named(const hess_ref_file *f, const char *prefix, int k)
{
    char nm[64];
    snprintf(nm, sizeof nm, "%s%d", prefix, k);
    return hess_ref_find(f, nm);
}

/* The per-parameter tensors "<what>:inK" against flat[N] in parameter order. */
static void compare_split(const char *cs,
                          const hess_ref_file *f,
                          const char *what,
                          const int *idx,
                          size_t np,
                          const double *flat,
                          const char *label)
{
    size_t off = 0;
    for (size_t i = 0; i < np; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s:in%d", what, idx[i]);
        const hess_tensor *want = hess_ref_find(f, nm);
        if (!want)
            fail_msg("%s: the file has no tensor %s", cs, nm);
        compare(cs, label ? label : nm, flat + off, want);
        off += (size_t)hess_tensor_numel(want);
    }
}

static void test_ref_case(void **state)
{
    const ref_row *r = *state;
    const char *cs = r->name;
    hess_context *ctx = test_context();
    char file[128];
    snprintf(file, sizeof file, "ops/%s.ref", cs);
    hess_ref_file f;
    assert_ok(ctx, hess_load_ref(ctx, data_path(file), "param:", &f));
    if (strcmp(f.model, r->model) != 0)
        fail_msg("%s: the file's model is \"%s\", the builder's \"%s\"", cs, f.model, r->model);

    hess_tensor *in[MAXIN] = {NULL}, *params[MAXIN];
    int idx[MAXIN];
    size_t np = 0, N = 0;
    for (int k = 0; k < MAXIN; k++) {
        hess_tensor *p = named(&f, "param:in", k), *c = named(&f, "input:in", k);
        in[k] = p ? p : c;
        if (p) {
            idx[np] = k;
            params[np++] = p;
            N += (size_t)hess_tensor_numel(p);
        }
    }
    assert_true(np > 0);

    hess_tensor *out = r->build(ctx, in);
    if (!out)
        fail_msg("%s: the builder failed: %s", cs, hess_context_errmsg(ctx));
    compare_tensor(cs, "out", out, hess_ref_find(&f, "out"));
    hess_tensor *L = hess_sum(ctx, hess_mul(ctx, out, hess_ref_find(&f, "w")));
    assert_ok(ctx, hess_context_status(ctx));
    compare_tensor(cs, "L", L, hess_ref_find(&f, "L"));

    hess_tensor *g[MAXIN];
    assert_ok(ctx, hess_grad(ctx, L, np, params, g, 0));
    for (size_t i = 0; i < np; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "grad:in%d", idx[i]);
        compare_tensor(cs, nm, g[i], hess_ref_find(&f, nm));
    }
    double *d = test_malloc(N * sizeof *d), *v = test_malloc(N * sizeof *v);
    double *hv = test_malloc(N * sizeof *hv);
    size_t off = 0;
    for (size_t i = 0; i < np; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "v:in%d", idx[i]);
        const hess_tensor *vi = hess_ref_find(&f, nm);
        assert_non_null(vi);
        memcpy(v + off, hess_tensor_data(vi), (size_t)hess_tensor_numel(vi) * sizeof *v);
        off += (size_t)hess_tensor_numel(vi);
    }

    /* the diagonal by the default method and by each method forced */
    static const int methods[3] = {-1, HESS_DIAG_ROWS, HESS_DIAG_BACKPROP};
    static const char *const labels[3] = {NULL, "hdiag (rows)", "hdiag (backprop)"};
    for (int m = 0; m < 3; m++) {
        if (methods[m] < 0) {
            assert_ok(ctx, hess_hessian_diag(ctx, L, np, params, d));
        } else {
            hess_hessian_opts o = {0};
            o.method = methods[m];
            assert_ok(ctx, hess_hessian_diag_ex(ctx, L, np, params, &o, d));
        }
        compare_split(cs, &f, "hdiag", idx, np, d, labels[m]);
    }

    assert_ok(ctx, hess_hvp(ctx, L, np, params, v, hv));
    compare_split(cs, &f, "hvp", idx, np, hv, NULL);
    assert_ok(ctx, hess_hvp_fwd(ctx, L, np, params, v, hv));
    compare_split(cs, &f, "hvp", idx, np, hv, "hvp (forward over reverse)");

    const hess_tensor *H = hess_ref_find(&f, "hess");
    if (H) {
        assert_int_equal(hess_tensor_numel(H), (int64_t)(N * N));
        double *h = test_malloc(N * N * sizeof *h);
        assert_ok(ctx, hess_hessian(ctx, L, np, params, h));
        compare(cs, "hess", h, H);
        test_free(h);
    }
    test_free(d), test_free(v), test_free(hv);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Every file of these ops has a row                                        */
/* ------------------------------------------------------------------------ */

static bool ours(const char *stem)
{
    for (size_t i = 0; i < sizeof EXACT / sizeof EXACT[0]; i++)
        if (strcmp(stem, EXACT[i]) == 0)
            return true;
    for (size_t i = 0; i < sizeof PREFIXES / sizeof PREFIXES[0]; i++) {
        const size_t n = strlen(PREFIXES[i]);
        if (strncmp(stem, PREFIXES[i], n) == 0 && (stem[n] == '\0' || stem[n] == '_'))
            return true;
    }
    return false;
}

static void test_refs_conv_every_file_claimed(void **state)
{
    (void)state;
    DIR *dir = opendir(data_path("ops"));
    assert_non_null(dir);
    char missing[1024] = "";
    size_t found = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        const size_t n = strlen(e->d_name);
        if (n <= 4 || strcmp(e->d_name + n - 4, ".ref") != 0)
            continue;
        char stem[256];
        snprintf(stem, sizeof stem, "%.*s", (int)(n - 4), e->d_name);
        if (!ours(stem))
            continue;
        found++;
        bool claimed = false;
        for (size_t i = 0; i < N_ROWS && !claimed; i++)
            claimed = strcmp(rows[i].name, stem) == 0;
        if (!claimed)
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " %s", stem);
    }
    closedir(dir);
    if (missing[0])
        fail_msg("reference cases of these ops without a builder:%s", missing);
    /* and every row's file is there (its test would fail to load it too) */
    assert_int_equal(found, N_ROWS);
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

int main(void)
{
    struct CMUnitTest tests[N_ROWS + 2];
    tests[0] = (struct CMUnitTest)cmocka_unit_test(test_refs_conv_every_file_claimed);
    tests[1] = (struct CMUnitTest)cmocka_unit_test(test_conv_diag_backprop_batch);
    char names[N_ROWS][96];
    for (size_t i = 0; i < N_ROWS; i++) {
        snprintf(names[i], sizeof names[i], "ref_%s", rows[i].name);
        tests[i + 2] = (struct CMUnitTest){names[i], test_ref_case, NULL, NULL, &rows[i]};
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
