/*
 * test_refs_loss.c -- the PyTorch reference cases of the losses
 * (tests/data/ops/<case>.ref, made by tests/data/make_op_refs.py with
 * PyTorch 1.13 in float64; the format is in tests/data/README.md).
 *
 * Each case of the table maps a case name to a C builder of its model line
 * (the model text is checked against the file, so a regenerated file with
 * another model fails).  For each case: the file is loaded with
 * hess_load_ref ("param:" inputs become parameters), the builder makes out,
 * and out, L = sum(out * w), the gradients (hess_grad), the Hessian diagonal
 * (hess_hessian_diag, and each of its methods: rows and curvature
 * backpropagation), the HVP (hess_hvp) and, when present, the full Hessian
 * (hess_hessian) are compared with the file, each tensor to 1e-12 of its
 * largest element.
 *
 * One exception, and its reason: the second derivatives of hess_bce (BCELoss
 * on probabilities) are compared to 1e-10.  PyTorch 1.13's double backward
 * of binary_cross_entropy divides by (p + 1e-12)^2 (1 - p + 1e-12)^2 instead
 * of p^2 (1 - p)^2 (FunctionsManual.cpp, binary_cross_entropy_double_backward),
 * which moves its values by about 2e-12 / min(p, 1 - p) relative: 4e-11 at
 * the cases' p = 0.05.  test_refs_loss_bce_epsilon shows it: the exact
 * second derivative agrees with libhessian to 1e-15, and PyTorch's with that
 * formula to 1e-15.
 *
 * test_refs_loss_claims_every_case fails when a case file of these losses
 * (a name of the losses' prefixes, or a model whose final call is one of
 * them) has no builder here, except the composite models listed in
 * LEFT_TO_LEAD, which need ops of other families.
 */
#define _POSIX_C_SOURCE 200809L /* opendir */
#include "check.h"

#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* The cases                                                                */
/* ------------------------------------------------------------------------ */

#define OPTS(...) (&(hess_loss_opts){__VA_ARGS__})
#define NONE      .reduction = HESS_REDUCE_NONE
#define SUM       .reduction = HESS_REDUCE_SUM
#define MEAN      .reduction = HESS_REDUCE_MEAN
#define IGNORE(k) .use_ignore_index = 1, .ignore_index = (k)

/* X(case, model line of the file, C expression of it over in[k], tolerance of
 * the second derivatives) */
#define LOSS_CASES(X)                                                                              \
    X(model_gather_lse_huber,                                                                      \
      "t0 = hess_linear(ctx, hess_tanh(ctx, hess_linear(ctx, in0, in1, in2)), in3, in4); t1 = "    \
      "hess_sub(ctx, hess_gather(ctx, t0, 1, in5), hess_logsumexp(ctx, t0, 1, [-1], 1)); "         \
      "hess_huber_loss(ctx, t1, in6, {delta=0.5})",                                                \
      gather_lse_huber(ctx, in), TOL)                                                              \
    X(bce_binary_targets, "hess_bce(ctx, in0, in1, NULL)", hess_bce(ctx, in[0], in[1], NULL),      \
      TOL_BCE)                                                                                     \
    X(bce_default, "hess_bce(ctx, in0, in1, NULL)", hess_bce(ctx, in[0], in[1], NULL), TOL_BCE)    \
    X(bce_none, "hess_bce(ctx, in0, in1, {reduction=none})",                                       \
      hess_bce(ctx, in[0], in[1], OPTS(NONE)), TOL_BCE)                                            \
    X(bce_sum, "hess_bce(ctx, in0, in1, {reduction=sum})", hess_bce(ctx, in[0], in[1], OPTS(SUM)), \
      TOL_BCE)                                                                                     \
    X(bce_target_param, "hess_bce(ctx, in0, in1, {reduction=sum})",                                \
      hess_bce(ctx, in[0], in[1], OPTS(SUM)), TOL_BCE)                                             \
    X(bce_weight, "hess_bce(ctx, in0, in1, {weight=in2})",                                         \
      hess_bce(ctx, in[0], in[1], OPTS(.weight = in[2])), TOL_BCE)                                 \
    X(bce_with_logits, "hess_bce_with_logits(ctx, in0, in1)",                                      \
      hess_bce_with_logits(ctx, in[0], in[1]), TOL)                                                \
    X(bce_with_logits_ex_default, "hess_bce_with_logits_ex(ctx, in0, in1, NULL)",                  \
      hess_bce_with_logits_ex(ctx, in[0], in[1], NULL), TOL)                                       \
    X(bce_with_logits_ex_large, "hess_bce_with_logits_ex(ctx, in0, in1, {reduction=none})",        \
      hess_bce_with_logits_ex(ctx, in[0], in[1], OPTS(NONE)), TOL)                                 \
    X(bce_with_logits_ex_none, "hess_bce_with_logits_ex(ctx, in0, in1, {reduction=none})",         \
      hess_bce_with_logits_ex(ctx, in[0], in[1], OPTS(NONE)), TOL)                                 \
    X(bce_with_logits_ex_sum, "hess_bce_with_logits_ex(ctx, in0, in1, {reduction=sum})",           \
      hess_bce_with_logits_ex(ctx, in[0], in[1], OPTS(SUM)), TOL)                                  \
    X(bce_with_logits_ex_weight, "hess_bce_with_logits_ex(ctx, in0, in1, {weight=in2})",           \
      hess_bce_with_logits_ex(ctx, in[0], in[1], OPTS(.weight = in[2])), TOL)                      \
    X(bce_with_logits_ex_weight_sum,                                                               \
      "hess_bce_with_logits_ex(ctx, in0, in1, {reduction=sum, weight=in2})",                       \
      hess_bce_with_logits_ex(ctx, in[0], in[1], OPTS(SUM, .weight = in[2])), TOL)                 \
    X(cross_entropy, "hess_cross_entropy(ctx, in0, in1)", hess_cross_entropy(ctx, in[0], in[1]),   \
      TOL)                                                                                         \
    X(cross_entropy_vec, "hess_cross_entropy(ctx, in0, in1)",                                      \
      hess_cross_entropy(ctx, in[0], in[1]), TOL)                                                  \
    X(cross_entropy_ex_all_options,                                                                \
      "hess_cross_entropy_ex(ctx, in0, in1, {weight=in2, use_ignore_index=1, ignore_index=0, "     \
      "label_smoothing=0.15})",                                                                    \
      hess_cross_entropy_ex(ctx, in[0], in[1],                                                     \
                            OPTS(.weight = in[2], IGNORE(0), .label_smoothing = 0.15)),            \
      TOL)                                                                                         \
    X(cross_entropy_ex_all_options_none,                                                           \
      "hess_cross_entropy_ex(ctx, in0, in1, {reduction=none, weight=in2, use_ignore_index=1, "     \
      "ignore_index=1, label_smoothing=0.3})",                                                     \
      hess_cross_entropy_ex(ctx, in[0], in[1],                                                     \
                            OPTS(NONE, .weight = in[2], IGNORE(1), .label_smoothing = 0.3)),       \
      TOL)                                                                                         \
    X(cross_entropy_ex_all_options_sum,                                                            \
      "hess_cross_entropy_ex(ctx, in0, in1, {reduction=sum, weight=in2, use_ignore_index=1, "      \
      "ignore_index=2, label_smoothing=0.1})",                                                     \
      hess_cross_entropy_ex(ctx, in[0], in[1],                                                     \
                            OPTS(SUM, .weight = in[2], IGNORE(2), .label_smoothing = 0.1)),        \
      TOL)                                                                                         \
    X(cross_entropy_ex_default, "hess_cross_entropy_ex(ctx, in0, in1, NULL)",                      \
      hess_cross_entropy_ex(ctx, in[0], in[1], NULL), TOL)                                         \
    X(cross_entropy_ex_ignore,                                                                     \
      "hess_cross_entropy_ex(ctx, in0, in1, {use_ignore_index=1, ignore_index=1})",                \
      hess_cross_entropy_ex(ctx, in[0], in[1], OPTS(IGNORE(1))), TOL)                              \
    X(cross_entropy_ex_ignore_none,                                                                \
      "hess_cross_entropy_ex(ctx, in0, in1, {reduction=none, use_ignore_index=1, "                 \
      "ignore_index=2})",                                                                          \
      hess_cross_entropy_ex(ctx, in[0], in[1], OPTS(NONE, IGNORE(2))), TOL)                        \
    X(cross_entropy_ex_none, "hess_cross_entropy_ex(ctx, in0, in1, {reduction=none})",             \
      hess_cross_entropy_ex(ctx, in[0], in[1], OPTS(NONE)), TOL)                                   \
    X(cross_entropy_ex_smoothing, "hess_cross_entropy_ex(ctx, in0, in1, {label_smoothing=0.1})",   \
      hess_cross_entropy_ex(ctx, in[0], in[1], OPTS(.label_smoothing = 0.1)), TOL)                 \
    X(cross_entropy_ex_smoothing_sum,                                                              \
      "hess_cross_entropy_ex(ctx, in0, in1, {reduction=sum, label_smoothing=0.25})",               \
      hess_cross_entropy_ex(ctx, in[0], in[1], OPTS(SUM, .label_smoothing = 0.25)), TOL)           \
    X(cross_entropy_ex_sum, "hess_cross_entropy_ex(ctx, in0, in1, {reduction=sum})",               \
      hess_cross_entropy_ex(ctx, in[0], in[1], OPTS(SUM)), TOL)                                    \
    X(cross_entropy_ex_vec_smoothing,                                                              \
      "hess_cross_entropy_ex(ctx, in0, in1, {label_smoothing=0.1})",                               \
      hess_cross_entropy_ex(ctx, in[0], in[1], OPTS(.label_smoothing = 0.1)), TOL)                 \
    X(cross_entropy_ex_vec_weight, "hess_cross_entropy_ex(ctx, in0, in1, {weight=in2})",           \
      hess_cross_entropy_ex(ctx, in[0], in[1], OPTS(.weight = in[2])), TOL)                        \
    X(cross_entropy_ex_weight, "hess_cross_entropy_ex(ctx, in0, in1, {weight=in2})",               \
      hess_cross_entropy_ex(ctx, in[0], in[1], OPTS(.weight = in[2])), TOL)                        \
    X(cross_entropy_ex_weight_none,                                                                \
      "hess_cross_entropy_ex(ctx, in0, in1, {reduction=none, weight=in2})",                        \
      hess_cross_entropy_ex(ctx, in[0], in[1], OPTS(NONE, .weight = in[2])), TOL)                  \
    X(cross_entropy_ex_weight_smoothing,                                                           \
      "hess_cross_entropy_ex(ctx, in0, in1, {weight=in2, label_smoothing=0.2})",                   \
      hess_cross_entropy_ex(ctx, in[0], in[1], OPTS(.weight = in[2], .label_smoothing = 0.2)),     \
      TOL)                                                                                         \
    X(cross_entropy_ex_weight_sum,                                                                 \
      "hess_cross_entropy_ex(ctx, in0, in1, {reduction=sum, weight=in2})",                         \
      hess_cross_entropy_ex(ctx, in[0], in[1], OPTS(SUM, .weight = in[2])), TOL)                   \
    X(huber_loss_default, "hess_huber_loss(ctx, in0, in1, NULL)",                                  \
      hess_huber_loss(ctx, in[0], in[1], NULL), TOL)                                               \
    X(huber_loss_delta, "hess_huber_loss(ctx, in0, in1, {delta=0.5})",                             \
      hess_huber_loss(ctx, in[0], in[1], OPTS(.delta = 0.5)), TOL)                                 \
    X(huber_loss_kink, "hess_huber_loss(ctx, in0, in1, {reduction=sum, delta=0.5})",               \
      hess_huber_loss(ctx, in[0], in[1], OPTS(SUM, .delta = 0.5)), TOL)                            \
    X(huber_loss_none, "hess_huber_loss(ctx, in0, in1, {reduction=none, delta=1})",                \
      hess_huber_loss(ctx, in[0], in[1], OPTS(NONE, .delta = 1)), TOL)                             \
    X(huber_loss_sum, "hess_huber_loss(ctx, in0, in1, {reduction=sum, delta=2})",                  \
      hess_huber_loss(ctx, in[0], in[1], OPTS(SUM, .delta = 2)), TOL)                              \
    X(l1_loss, "hess_l1_loss(ctx, in0, in1, {reduction=mean})",                                    \
      hess_l1_loss(ctx, in[0], in[1], OPTS(MEAN)), TOL)                                            \
    X(l1_loss_default, "hess_l1_loss(ctx, in0, in1, NULL)", hess_l1_loss(ctx, in[0], in[1], NULL), \
      TOL)                                                                                         \
    X(l1_loss_kink, "hess_l1_loss(ctx, in0, in1, {reduction=sum})",                                \
      hess_l1_loss(ctx, in[0], in[1], OPTS(SUM)), TOL)                                             \
    X(l1_loss_none, "hess_l1_loss(ctx, in0, in1, {reduction=none})",                               \
      hess_l1_loss(ctx, in[0], in[1], OPTS(NONE)), TOL)                                            \
    X(l1_loss_sum, "hess_l1_loss(ctx, in0, in1, {reduction=sum})",                                 \
      hess_l1_loss(ctx, in[0], in[1], OPTS(SUM)), TOL)                                             \
    X(mse_loss, "hess_mse_loss(ctx, in0, in1)", hess_mse_loss(ctx, in[0], in[1]), TOL)             \
    X(mse_loss_ex_default, "hess_mse_loss_ex(ctx, in0, in1, NULL)",                                \
      hess_mse_loss_ex(ctx, in[0], in[1], NULL), TOL)                                              \
    X(mse_loss_ex_mean, "hess_mse_loss_ex(ctx, in0, in1, {reduction=mean})",                       \
      hess_mse_loss_ex(ctx, in[0], in[1], OPTS(MEAN)), TOL)                                        \
    X(mse_loss_ex_none, "hess_mse_loss_ex(ctx, in0, in1, {reduction=none})",                       \
      hess_mse_loss_ex(ctx, in[0], in[1], OPTS(NONE)), TOL)                                        \
    X(mse_loss_ex_sum, "hess_mse_loss_ex(ctx, in0, in1, {reduction=sum})",                         \
      hess_mse_loss_ex(ctx, in[0], in[1], OPTS(SUM)), TOL)                                         \
    X(nll_loss_default, "hess_nll_loss(ctx, in0, in1, NULL)",                                      \
      hess_nll_loss(ctx, in[0], in[1], NULL), TOL)                                                 \
    X(nll_loss_ignore, "hess_nll_loss(ctx, in0, in1, {use_ignore_index=1, ignore_index=0})",       \
      hess_nll_loss(ctx, in[0], in[1], OPTS(IGNORE(0))), TOL)                                      \
    X(nll_loss_none, "hess_nll_loss(ctx, in0, in1, {reduction=none})",                             \
      hess_nll_loss(ctx, in[0], in[1], OPTS(NONE)), TOL)                                           \
    X(nll_loss_sum, "hess_nll_loss(ctx, in0, in1, {reduction=sum})",                               \
      hess_nll_loss(ctx, in[0], in[1], OPTS(SUM)), TOL)                                            \
    X(nll_loss_weight, "hess_nll_loss(ctx, in0, in1, {weight=in2})",                               \
      hess_nll_loss(ctx, in[0], in[1], OPTS(.weight = in[2])), TOL)                                \
    X(nll_loss_weight_ignore_none,                                                                 \
      "hess_nll_loss(ctx, in0, in1, {reduction=none, weight=in2, use_ignore_index=1, "             \
      "ignore_index=2})",                                                                          \
      hess_nll_loss(ctx, in[0], in[1], OPTS(NONE, .weight = in[2], IGNORE(2))), TOL)

#define TOL     1e-12
#define TOL_BCE 1e-10 /* PyTorch's epsilon in BCE's double backward: see the top */

/* The loss cases' name prefixes and functions: a file with either is one of ours. */
static const char *const PREFIXES[] = {"bce",     "cross_entropy", "huber_loss",
                                       "l1_loss", "mse_loss",      "nll_loss"};
static const char *const FUNCTIONS[] = {
    "hess_bce",           "hess_bce_with_logits",  "hess_bce_with_logits_ex",
    "hess_cross_entropy", "hess_cross_entropy_ex", "hess_huber_loss",
    "hess_l1_loss",       "hess_mse_loss",         "hess_mse_loss_ex",
    "hess_nll_loss"};

/* Composite models ending in a loss whose cases live with the family of
 * their other ops: test_refs_conv (the CNN), test_refs_reduce (layer norm). */
static const char *const LEFT_TO_LEAD[] = {"model_cnn_ce", "model_layernorm_mse"};

/* The composite of gather, logsumexp and Huber: a two-layer tanh network's
 * log-probability of the chosen class, as gather minus logsumexp. */
static hess_tensor *gather_lse_huber(hess_context *ctx, hess_tensor *const in[])
{
    hess_tensor *t0 =
        hess_linear(ctx, hess_tanh(ctx, hess_linear(ctx, in[0], in[1], in[2])), in[3], in[4]);
    hess_tensor *t1 = hess_sub(ctx, hess_gather(ctx, t0, 1, in[5]),
                               hess_logsumexp(ctx, t0, 1, (const int[]){-1}, 1));
    return hess_huber_loss(ctx, t1, in[6], OPTS(.delta = 0.5));
}

typedef hess_tensor *(*builder)(hess_context *ctx, hess_tensor *const in[]);

typedef struct loss_case {
    const char *name;
    const char *model;
    builder build;
    double tol2; /* second derivatives: hdiag, hvp, hess */
} loss_case;

#define DEFINE(name, model, expr, tol)                                                             \
    static hess_tensor *b_##name(hess_context *ctx, hess_tensor *const in[])                       \
    {                                                                                              \
        return (expr);                                                                             \
    }
LOSS_CASES(DEFINE)
#define ENTRY(name, model, expr, tol) {#name, model, b_##name, tol},
static loss_case cases[] = {LOSS_CASES(ENTRY)};
#define N_CASES (sizeof cases / sizeof cases[0])

/* ------------------------------------------------------------------------ */
/* Comparisons                                                              */
/* ------------------------------------------------------------------------ */

#define MAXIN 8 /* inputs of a case at most */
#define MAXN  512 /* differentiated elements of one case */

/* got[0..n) against the reference tensor's values: |got - want| <= tol *
 * max|want| (tol when every value is 0). */
static void
compare(const char *cs, const char *what, const double *got, const hess_tensor *want, double tol)
{
    const size_t n = (size_t)hess_tensor_numel(want);
    const double *w = hess_tensor_data(want);
    double scale = 0.0;
    for (size_t i = 0; i < n; i++)
        scale = fabs(w[i]) > scale ? fabs(w[i]) : scale;
    const double lim = tol * (scale > 0.0 ? scale : 1.0);
    for (size_t i = 0; i < n; i++)
        if (!(fabs(got[i] - w[i]) <= lim))
            fail_msg("%s: %s[%zu] = %.17g, PyTorch %.17g (difference %.3g > %.3g = %g of the "
                     "largest |element| %.3g)",
                     cs, what, i, got[i], w[i], fabs(got[i] - w[i]), lim, tol, scale);
}

/* The name of parameter t in f without its "param:". */
static const char *pname(const hess_ref_file *f, const hess_tensor *t)
{
    for (size_t j = 0; j < f->n; j++)
        if (f->tensors[j].tensor == t)
            return f->tensors[j].name + strlen("param:");
    return "?";
}

static const hess_tensor *need(const hess_ref_file *f, const char *cs, const char *name)
{
    const hess_tensor *t = hess_ref_find(f, name);
    if (!t)
        fail_msg("%s: the file has no tensor %s", cs, name);
    return t;
}

static void same_shape(const char *cs, const char *what, const hess_tensor *a, const hess_tensor *b)
{
    if (hess_tensor_ndim(a) != hess_tensor_ndim(b) ||
        memcmp(hess_tensor_shape(a), hess_tensor_shape(b),
               (size_t)hess_tensor_ndim(a) * sizeof(int64_t)) != 0)
        fail_msg("%s: %s has rank %d, the reference rank %d (or another shape)", cs, what,
                 hess_tensor_ndim(a), hess_tensor_ndim(b));
}

/* ------------------------------------------------------------------------ */
/* One case                                                                 */
/* ------------------------------------------------------------------------ */

static void test_refs_loss_case(void **state)
{
    const loss_case *lc = *state;
    const char *cs = lc->name;
    hess_context *ctx = test_context();
    char path[256];
    snprintf(path, sizeof path, "ops/%s.ref", cs);
    hess_ref_file f;
    assert_ok(ctx, hess_load_ref(ctx, data_path(path), "param:", &f));
    if (strcmp(f.case_name, cs) != 0 || strcmp(f.model, lc->model) != 0)
        fail_msg("%s: the file is case %s with model \"%s\"; the builder is for \"%s\"", cs,
                 f.case_name, f.model, lc->model);

    /* inputs in0, in1, ...; the parameters among them in index order */
    hess_tensor *in[MAXIN] = {NULL}, *p[MAXIN];
    size_t np = 0, nin = 0;
    char name[64];
    for (int k = 0; k < MAXIN; k++) {
        snprintf(name, sizeof name, "param:in%d", k);
        hess_tensor *t = hess_ref_find(&f, name);
        if (t)
            p[np++] = t;
        else {
            snprintf(name, sizeof name, "input:in%d", k);
            t = hess_ref_find(&f, name);
        }
        if (!t)
            break;
        in[nin++] = t;
    }
    assert_true(nin >= 2 && np >= 1);

    hess_tensor *out = lc->build(ctx, in);
    if (!out)
        fail_msg("%s: the builder failed: %s", cs, hess_context_errmsg(ctx));
    const hess_tensor *ref_out = need(&f, cs, "out");
    same_shape(cs, "out", out, ref_out);
    compare(cs, "out", hess_tensor_data(out), ref_out, TOL);

    /* L = sum(out * w) */
    hess_tensor *w = hess_ref_find(&f, "w");
    assert_non_null(w);
    hess_tensor *L = hess_sum(ctx, hess_mul(ctx, out, w));
    assert_non_null(L);
    compare(cs, "L", hess_tensor_data(L), need(&f, cs, "L"), TOL);

    /* the gradient */
    hess_tensor *g[MAXIN];
    assert_ok(ctx, hess_grad(ctx, L, np, p, g, 0));
    for (size_t i = 0; i < np; i++) {
        snprintf(name, sizeof name, "grad:%s", pname(&f, p[i]));
        compare(cs, name, hess_tensor_data(g[i]), need(&f, cs, name), TOL);
    }

    /* the diagonal, by each method; the direction and the HVP */
    const size_t N = hess_param_count(np, p);
    assert_true(N <= MAXN);
    static double d[MAXN], v[MAXN], hv[MAXN], H[MAXN * MAXN];
    const int methods[3] = {HESS_DIAG_AUTO, HESS_DIAG_ROWS, HESS_DIAG_BACKPROP};
    static const char *const mname[3] = {"hdiag (auto)", "hdiag (rows)", "hdiag (backprop)"};
    for (int m = 0; m < 3; m++) {
        hess_hessian_opts o = {0};
        o.method = methods[m];
        if (m == 0)
            assert_ok(ctx, hess_hessian_diag(ctx, L, np, p, d));
        else
            assert_ok(ctx, hess_hessian_diag_ex(ctx, L, np, p, &o, d));
        size_t off = 0;
        for (size_t i = 0; i < np; i++) {
            snprintf(name, sizeof name, "hdiag:%s", pname(&f, p[i]));
            char what[96];
            snprintf(what, sizeof what, "%s %s", mname[m], name);
            const hess_tensor *ref = need(&f, cs, name);
            compare(cs, what, d + off, ref, lc->tol2);
            off += (size_t)hess_tensor_numel(ref);
        }
    }
    size_t off = 0;
    for (size_t i = 0; i < np; i++) {
        snprintf(name, sizeof name, "v:%s", pname(&f, p[i]));
        const hess_tensor *vt = need(&f, cs, name);
        memcpy(v + off, hess_tensor_data(vt), (size_t)hess_tensor_numel(vt) * sizeof *v);
        off += (size_t)hess_tensor_numel(vt);
    }
    assert_ok(ctx, hess_hvp(ctx, L, np, p, v, hv));
    off = 0;
    for (size_t i = 0; i < np; i++) {
        snprintf(name, sizeof name, "hvp:%s", pname(&f, p[i]));
        const hess_tensor *ref = need(&f, cs, name);
        compare(cs, name, hv + off, ref, lc->tol2);
        off += (size_t)hess_tensor_numel(ref);
    }

    /* the full Hessian, when the file has it */
    const hess_tensor *href = hess_ref_find(&f, "hess");
    if (href) {
        assert_int_equal(hess_tensor_numel(href), (int64_t)(N * N));
        assert_ok(ctx, hess_hessian(ctx, L, np, p, H));
        compare(cs, "hess", H, href, lc->tol2);
    }
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Every case file of the losses has a builder                              */
/* ------------------------------------------------------------------------ */

static bool in_list(const char *s, const char *const list[], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

/* The function of the model's final call: the text after the last "; " up
 * to "(". */
static void final_call(const char *model, char *fn, size_t len)
{
    const char *s = strrchr(model, ';');
    s = s ? s + 1 : model;
    while (*s == ' ')
        s++;
    size_t k = 0;
    while (s[k] && s[k] != '(' && s[k] != ' ' && k + 1 < len) {
        fn[k] = s[k];
        k++;
    }
    fn[k] = '\0';
}

static void test_refs_loss_claims_every_case(void **state)
{
    (void)state;
    DIR *dir = opendir(data_path("ops"));
    assert_non_null(dir);
    char missing[2048] = "";
    size_t ours = 0, left = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        const size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".ref") != 0)
            continue;
        char cs[256];
        snprintf(cs, sizeof cs, "%.*s", (int)(len - 4), e->d_name);
        char path[300], line[1024] = "", model[1024] = "", fn[64];
        snprintf(path, sizeof path, "ops/%s", e->d_name);
        FILE *fp = fopen(data_path(path), "r");
        assert_non_null(fp);
        while (fgets(line, sizeof line, fp))
            if (strncmp(line, "model ", 6) == 0) {
                snprintf(model, sizeof model, "%s", line + 6);
                model[strcspn(model, "\r\n")] = '\0';
                break;
            }
        fclose(fp);
        final_call(model, fn, sizeof fn);
        bool mine = in_list(fn, FUNCTIONS, sizeof FUNCTIONS / sizeof FUNCTIONS[0]);
        for (size_t i = 0; i < sizeof PREFIXES / sizeof PREFIXES[0]; i++)
            mine = mine || strncmp(cs, PREFIXES[i], strlen(PREFIXES[i])) == 0;
        if (!mine)
            continue;
        bool claimed = false;
        for (size_t i = 0; i < N_CASES; i++)
            claimed = claimed || strcmp(cases[i].name, cs) == 0;
        if (claimed)
            ours++;
        else if (in_list(cs, LEFT_TO_LEAD, sizeof LEFT_TO_LEAD / sizeof LEFT_TO_LEAD[0]))
            left++;
        else
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " %s", cs);
    }
    closedir(dir);
    if (missing[0])
        fail_msg("loss reference cases without a builder in test_refs_loss.c:%s", missing);
    /* every builder has its file (a missing one fails its own test too) */
    assert_int_equal(ours, N_CASES);
    assert_int_equal(left, sizeof LEFT_TO_LEAD / sizeof LEFT_TO_LEAD[0]);
}

/* ------------------------------------------------------------------------ */
/* PyTorch's epsilon in BCE's second derivative                             */
/* ------------------------------------------------------------------------ */

/* bce_default: libhessian's diagonal is the exact (y - 2yp + p^2) / (p^2 (1 -
 * p)^2) / numel to 1e-15, and PyTorch's file holds the same with p + 1e-12 and
 * 1 - p + 1e-12 in the denominator, to 1e-15: the two differ by more than
 * 1e-12 and less than 1e-10, the tolerance of the BCE cases. */
static void test_refs_loss_bce_epsilon(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_ref_file f;
    assert_ok(ctx, hess_load_ref(ctx, data_path("ops/bce_default.ref"), "param:", &f));
    hess_tensor *p = hess_ref_find(&f, "param:in0"), *y = hess_ref_find(&f, "input:in1");
    const hess_tensor *hd = hess_ref_find(&f, "hdiag:in0");
    assert_non_null(p);
    assert_non_null(y);
    assert_non_null(hd);
    hess_tensor *L = hess_bce(ctx, p, y, NULL);
    const size_t n = (size_t)hess_tensor_numel(p);
    double d[64];
    assert_true(n <= 64);
    assert_ok(ctx, hess_hessian_diag(ctx, L, 1, &p, d));
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double q = hess_tensor_data(p)[i], t = hess_tensor_data(y)[i];
        const double num = (q * q - 2 * q * t + t) / (double)n;
        const double exact = num / (q * q * (1 - q) * (1 - q));
        const double e = 1e-12, torch = num / ((q + e) * (q + e) * (1 - q + e) * (1 - q + e));
        assert_close(d[i], exact, 1e-15, 0);
        assert_close(hess_tensor_data(hd)[i], torch, 1e-15, 0);
        const double rel = fabs(exact - torch) / fabs(exact);
        worst = rel > worst ? rel : worst;
    }
    assert_true(worst > 1e-12 && worst < 1e-10);
    hess_context_destroy(ctx);
}

int main(void)
{
    struct CMUnitTest tests[N_CASES + 2];
    tests[0] = (struct CMUnitTest)cmocka_unit_test(test_refs_loss_claims_every_case);
    tests[1] = (struct CMUnitTest)cmocka_unit_test(test_refs_loss_bce_epsilon);
    for (size_t i = 0; i < N_CASES; i++)
        tests[i + 2] =
            (struct CMUnitTest){cases[i].name, test_refs_loss_case, NULL, NULL, &cases[i]};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
