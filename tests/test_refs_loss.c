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
#include "alloc.h"
#include "check.h"
#include "hess_internal.h" /* the records through the generic builder */

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

#define MAXIN 8   /* inputs of a case at most */
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

/* ------------------------------------------------------------------------ */
/* Beyond the reference cases: class targets (no derivative; values changed */
/* after the loss was built), the target leaves the losses check, refreshes */
/* refused under HESS_CHECK_FINITE, huge logits, the records' shape rules   */
/* through the generic builder, and the batched passes of every loss rule   */
/* ------------------------------------------------------------------------ */

#define SH(...) ((const int64_t[]){__VA_ARGS__})

/* Fails unless the context holds status st with message msg exactly (and,
 * for a builder, it returned NULL); then clears it. */
static void refused(hess_context *ctx, hess_status st, const char *msg)
{
    assert_int_equal(hess_context_status(ctx), st);
    if (strcmp(hess_context_errmsg(ctx), msg) != 0)
        fail_msg("message \"%s\", expected \"%s\"", hess_context_errmsg(ctx), msg);
    hess_context_clear_error(ctx);
}

static void refused_build(hess_context *ctx, const hess_tensor *t, hess_status st, const char *msg)
{
    assert_null(t);
    refused(ctx, st, msg);
}

static const double X23[6] = {0.5, -1.0, 2.0, 1.5, 0.25, -0.75};

/* d mean_b CE(x_b, t_b) / dx = (softmax(x_b) - onehot(t_b)) / B, for [2,3]. */
static void ce_grad_ref(const double *x, const double *t, double *g)
{
    for (int b = 0; b < 2; b++) {
        double s = 0.0;
        for (int c = 0; c < 3; c++)
            s += exp(x[b * 3 + c]);
        for (int c = 0; c < 3; c++)
            g[b * 3 + c] = (exp(x[b * 3 + c]) / s - (c == (int)t[b])) / 2.0;
    }
}

/* The gradient of L with respect to x [2,3] is ce_grad_ref's. */
static void grad_is_ce(hess_context *ctx, hess_tensor *L, hess_tensor *x, const double *t)
{
    hess_tensor *g;
    double want[6];
    assert_ok(ctx, hess_grad(ctx, L, 1, &x, &g, 0));
    ce_grad_ref(X23, t, want);
    assert_close_array(hess_tensor_data(g), want, 6, 1e-14, 1e-15);
}

/* Class-index targets have no derivative (PyTorch: not implemented for
 * target), in every pass that would need one: reverse and forward mode on
 * the one-node cross-entropy (its rule), on the losses with options (the
 * smoothed one-hot rows), on the Hessian's diagonal, and a second
 * derivative through the one-hot rows that cross_entropy's rule builds from
 * targets computed from another tensor.  The error names the function
 * called; afterwards the context differentiates again. */
static void test_loss_class_targets_have_no_derivative(void **state)
{
    (void)state;
    const double tv[2] = {0, 2};
    double v[8] = {1, 0, 0, 0, 0, 0, 1, 1}, jv[2], d[8];
    /* each loss in a context of its own: forward mode visits every node
     * that depends on the tangents, also those of another loss */
    for (int k = 0; k < 3; k++) {
        hess_context *ctx = test_context();
        hess_tensor *x = hess_param_new(ctx, 2, SH(2, 3), X23);
        hess_tensor *t = hess_tensor_new(ctx, 1, SH(2), tv);
        hess_tensor *both[2] = {x, t}, *g[2];
        hess_tensor *L =
            k == 0   ? hess_cross_entropy(ctx, x, t)
            : k == 1 ? hess_cross_entropy_ex(ctx, x, t, OPTS(.label_smoothing = 0.1))
                     : hess_nll_loss(ctx, hess_log_softmax(ctx, x, -1), t, OPTS(SUM, IGNORE(1)));
        assert_ok(ctx, hess_context_status(ctx));
        assert_int_equal(hess_grad(ctx, L, 1, &t, g, 0), HESS_ERR_NODIFF);
        refused(ctx, HESS_ERR_NODIFF, "hess_grad: class-index targets have no derivative");
        assert_int_equal(hess_jvp(ctx, L, 2, both, v, jv), HESS_ERR_NODIFF);
        refused(ctx, HESS_ERR_NODIFF, "hess_jvp: class-index targets have no derivative");
        hess_hessian_opts o = {0};
        o.method = HESS_DIAG_BACKPROP;
        assert_int_equal(hess_hessian_diag_ex(ctx, L, 2, both, &o, d), HESS_ERR_NODIFF);
        refused(ctx, HESS_ERR_NODIFF, "hess_hessian_diag: class-index targets have no derivative");
        if (k == 0)
            grad_is_ce(ctx, L, x, tv);
        hess_context_destroy(ctx);
    }
    /* targets computed from q: the first gradient (in x alone) holds the
     * one-hot rows of q's values; differentiating it in q reaches them */
    hess_context *ctx = test_context();
    hess_tensor *x = hess_param_new(ctx, 2, SH(2, 3), X23);
    hess_tensor *q = hess_tensor_new(ctx, 1, SH(2), tv);
    hess_tensor *gx, *Lq = hess_cross_entropy(ctx, x, hess_scale(ctx, q, 1.0));
    assert_ok(ctx, hess_grad(ctx, Lq, 1, &x, &gx, HESS_CREATE_GRAPH));
    hess_tensor *s = hess_sum(ctx, hess_square(ctx, gx)), *gq;
    assert_int_equal(hess_grad(ctx, s, 1, &q, &gq, 0), HESS_ERR_NODIFF);
    refused(ctx, HESS_ERR_NODIFF, "hess_grad: class-index targets have no derivative");
    double jq[6];
    assert_int_equal(hess_jvp(ctx, gx, 1, &q, v, jq), HESS_ERR_NODIFF);
    refused(ctx, HESS_ERR_NODIFF, "hess_jvp: class-index targets have no derivative");
    grad_is_ce(ctx, Lq, x, tv);
    hess_context_destroy(ctx);
}

/* Targets computed from another leaf are checked when a loss is built, but
 * that leaf is not one the loss checks when it is set: a row whose target is
 * no longer a class index then evaluates to NaN (the loss, its one-hot or
 * smoothed rows, their gradient rows), so that it cannot pass unseen; the
 * other rows keep their values.  Under HESS_CHECK_FINITE the evaluation is
 * refused instead. */
static void test_loss_class_targets_changed_after_build(void **state)
{
    (void)state;
    for (int check = 0; check < 2; check++) {
        hess_context *ctx = test_context_flags(check ? HESS_CHECK_FINITE : 0u);
        hess_tensor *x = hess_param_new(ctx, 2, SH(2, 3), X23);
        hess_tensor *q = hess_tensor_new(ctx, 1, SH(2), (const double[]){0, 2});
        hess_tensor *tc = hess_scale(ctx, q, 1.0);
        hess_tensor *L = hess_cross_entropy(ctx, x, tc);
        hess_tensor *Ls = hess_cross_entropy_ex(ctx, x, tc, OPTS(NONE, .label_smoothing = 0.2));
        hess_tensor *Li = hess_nll_loss(ctx, x, tc, OPTS(NONE, IGNORE(2)));
        hess_tensor *g;
        assert_ok(ctx, hess_grad(ctx, L, 1, &x, &g, HESS_CREATE_GRAPH));
        const double row0 = log(exp(0.5) + exp(-1.0) + exp(2.0)) - 0.5;
        assert_close(hess_tensor_data(Ls)[0],
                     log(exp(0.5) + exp(-1.0) + exp(2.0)) - (0.8 * 0.5 + 0.2 * 1.5 / 3.0), 1e-15,
                     0.0);
        /* q's first value becomes 1.5: not a class, and not refused */
        assert_ok(ctx, hess_tensor_set(ctx, q, (const double[]){1.5, 2}));
        if (check) {
            assert_int_equal(hess_recompute(ctx), HESS_ERR_NONFINITE);
            refused(ctx, HESS_ERR_NONFINITE,
                    "hess_recompute: non-finite value in the result of cross_entropy([2,3], [2])");
            hess_context_destroy(ctx);
            continue;
        }
        assert_ok(ctx, hess_recompute(ctx));
        assert_true(isnan(hess_tensor_data(L)[0]));
        /* the smoothed rows: row 0 NaN, row 1 as before */
        assert_true(isnan(hess_tensor_data(Ls)[0]));
        assert_close(hess_tensor_data(Ls)[1],
                     log(exp(1.5) + exp(0.25) + exp(-0.75)) - (0.8 * -0.75 + 0.2 * 1.0 / 3.0),
                     1e-15, 0.0);
        /* nll with ignore_index 2: row 0 NaN, row 1 ignored (0) */
        assert_true(isnan(hess_tensor_data(Li)[0]));
        assert_true(hess_tensor_data(Li)[1] == 0.0);
        /* the gradient: the one-hot row of the bad target is NaN */
        const double *gd = hess_tensor_data(g);
        double want[6];
        ce_grad_ref(X23, (const double[]){0, 2}, want);
        for (int c = 0; c < 3; c++) {
            assert_true(isnan(gd[c]));
            assert_close(gd[3 + c], want[3 + c], 1e-14, 1e-15);
        }
        /* back to a class: everything as before */
        assert_ok(ctx, hess_tensor_set(ctx, q, (const double[]){0, 2}));
        assert_ok(ctx, hess_recompute(ctx));
        assert_close(hess_tensor_data(L)[0],
                     (row0 + log(exp(1.5) + exp(0.25) + exp(-0.75)) + 0.75) / 2.0, 1e-15, 0.0);
        assert_close_array(gd, want, 6, 1e-14, 1e-15);
        hess_context_destroy(ctx);
    }
}

/* The leaves a loss checks when they are set (hess_tensor_set asks every op
 * built on them): the targets of hess_bce and of the weighted
 * hess_bce_with_logits_ex (its per-element terms) must stay in [0, 1]; a
 * leaf that is both the logits and the targets is checked as the targets
 * only; a leaf that is the targets of one cross-entropy and the logits of
 * another is checked as class indices.  A refused set leaves the leaf as it
 * was. */
static void test_loss_checked_leaves(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    const double pv[3] = {0.25, 0.5, 0.75}, yv[3] = {0, 1, 0.5};
    hess_tensor *p = hess_tensor_new(ctx, 1, SH(3), pv), *y = hess_tensor_new(ctx, 1, SH(3), yv);
    hess_tensor *y2 = hess_tensor_new(ctx, 1, SH(3), yv), *w = hess_tensor_new(ctx, 1, SH(3), pv);
    assert_non_null(hess_bce(ctx, p, y, NULL));
    assert_non_null(hess_bce_with_logits_ex(ctx, p, y2, OPTS(.weight = w)));
    assert_int_equal(hess_tensor_set(ctx, y, (const double[]){1.5, 0, 0}), HESS_ERR_ARG);
    refused(ctx, HESS_ERR_ARG, "hess_tensor_set: target 0 is 1.5; targets must be in [0, 1]");
    assert_int_equal(hess_tensor_set(ctx, y2, (const double[]){0, -0.5, 0}), HESS_ERR_ARG);
    refused(ctx, HESS_ERR_ARG, "hess_tensor_set: target 1 is -0.5; targets must be in [0, 1]");
    assert_memory_equal(hess_tensor_data(y), yv, sizeof yv);
    assert_memory_equal(hess_tensor_data(y2), yv, sizeof yv);
    /* z as logits and targets at once, of both forms of the loss */
    hess_tensor *z = hess_tensor_new(ctx, 1, SH(2), (const double[]){0.25, 0.75});
    hess_tensor *l1 = hess_bce_with_logits(ctx, z, z);
    hess_tensor *l2 = hess_bce_with_logits_ex(ctx, z, z, OPTS(NONE));
    assert_ok(ctx, hess_context_status(ctx));
    assert_ok(ctx, hess_tensor_set(ctx, z, (const double[]){0.5, 1}));
    assert_ok(ctx, hess_recompute(ctx));
    /* softplus(v) - v^2 at 0.5 and 1 */
    const double t0 = log1p(exp(0.5)) - 0.25, t1 = log1p(exp(1.0)) - 1.0;
    assert_close(hess_tensor_data(l2)[0], t0, 1e-15, 0.0);
    assert_close(hess_tensor_data(l2)[1], t1, 1e-15, 0.0);
    assert_close(hess_tensor_data(l1)[0], (t0 + t1) / 2.0, 1e-15, 0.0);
    assert_int_equal(hess_tensor_set(ctx, z, (const double[]){0.5, 2}), HESS_ERR_ARG);
    refused(ctx, HESS_ERR_ARG, "hess_tensor_set: target 1 is 2; targets must be in [0, 1]");
    assert_close(hess_tensor_data(z)[1], 1.0, 0.0, 0.0);
    /* c: the targets [2] of a [2,3] cross-entropy, and the logits [2] of one
     * with the target [] 1 */
    hess_tensor *X = hess_tensor_new(ctx, 2, SH(2, 3), X23);
    hess_tensor *c = hess_tensor_new(ctx, 1, SH(2), (const double[]){0, 2});
    hess_tensor *e1 = hess_cross_entropy(ctx, X, c);
    hess_tensor *e2 =
        hess_cross_entropy(ctx, c, hess_tensor_new(ctx, 0, NULL, (const double[]){1}));
    assert_ok(ctx, hess_context_status(ctx));
    assert_ok(ctx, hess_tensor_set(ctx, c, (const double[]){1, 2}));
    assert_ok(ctx, hess_recompute(ctx));
    assert_close(hess_tensor_data(e2)[0], log(exp(1.0) + exp(2.0)) - 2.0, 1e-15, 0.0);
    assert_close(hess_tensor_data(e1)[0],
                 (log(exp(0.5) + exp(-1.0) + exp(2.0)) + 1.0 +
                  log(exp(1.5) + exp(0.25) + exp(-0.75)) + 0.75) /
                     2.0,
                 1e-15, 0.0);
    assert_int_equal(hess_tensor_set(ctx, c, (const double[]){0.5, 1}), HESS_ERR_ARG);
    refused(ctx, HESS_ERR_ARG,
            "hess_tensor_set: target 0 is 0.5; class indices must be integers in [0,3)");
    assert_close(hess_tensor_data(c)[0], 1.0, 0.0, 0.0);
    hess_context_destroy(ctx);
}

/* Under HESS_CHECK_FINITE a loss brings its targets up to date before it
 * checks their values; targets log(q) of a q set to 0 since are -Inf, and
 * every loss built on them then is refused, naming itself and the op. */
static void test_loss_targets_refresh_refused(void **state)
{
    (void)state;
    hess_context *ctx = test_context_flags(HESS_CHECK_FINITE);
    hess_tensor *x = hess_param_new(ctx, 2, SH(2, 3), X23);
    hess_tensor *x2 = hess_param_new(ctx, 1, SH(2), (const double[]){0.5, -1});
    hess_tensor *p2 = hess_tensor_new(ctx, 1, SH(2), (const double[]){0.25, 0.5});
    hess_tensor *q = hess_tensor_new(ctx, 1, SH(2), (const double[]){1, 1});
    hess_tensor *t = hess_log(ctx, q); /* {0, 0}: classes, and probabilities */
    assert_non_null(hess_cross_entropy(ctx, x, t));
    /* q is set before each call: a refused evaluation leaves log(q) stamped */
#define STALE() assert_ok(ctx, hess_tensor_set(ctx, q, (const double[]){1, 0}))
    STALE();
    refused_build(ctx, hess_cross_entropy(ctx, x, t), HESS_ERR_NONFINITE,
                  "hess_cross_entropy: non-finite value in the result of log([2])");
    STALE();
    refused_build(ctx, hess_cross_entropy_ex(ctx, x, t, OPTS(.label_smoothing = 0.1)),
                  HESS_ERR_NONFINITE,
                  "hess_cross_entropy_ex: non-finite value in the result of log([2])");
    STALE();
    refused_build(ctx, hess_nll_loss(ctx, x, t, NULL), HESS_ERR_NONFINITE,
                  "hess_nll_loss: non-finite value in the result of log([2])");
    STALE();
    refused_build(ctx, hess_bce_with_logits(ctx, x2, t), HESS_ERR_NONFINITE,
                  "hess_bce_with_logits: non-finite value in the result of log([2])");
    STALE();
    refused_build(ctx, hess_bce_with_logits_ex(ctx, x2, t, OPTS(NONE)), HESS_ERR_NONFINITE,
                  "hess_bce_with_logits_ex: non-finite value in the result of log([2])");
    STALE();
    refused_build(ctx, hess_bce(ctx, p2, t, NULL), HESS_ERR_NONFINITE,
                  "hess_bce: non-finite value in the result of log([2])");
#undef STALE
    /* q back to 1: the same calls build */
    assert_ok(ctx, hess_tensor_set(ctx, q, (const double[]){1, 1}));
    hess_tensor *L = hess_bce(ctx, p2, t, OPTS(SUM));
    assert_ok(ctx, hess_context_status(ctx));
    assert_close(hess_tensor_data(L)[0], -(log(0.75) + log(0.5)), 1e-15, 0.0);
    hess_context_destroy(ctx);
}

/* Rows whose losses are finite but whose sum is not (logits near DBL_MAX):
 * the mean scales each row first, so it is finite (PyTorch's sum overflows
 * to +Inf before the division); the sum is +Inf. */
static void test_loss_cross_entropy_huge_logits(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *x = hess_tensor_new(ctx, 2, SH(3, 2),
                                     (const double[]){0.5e308, -0.5e308, 0.5e308, -0.5e308, 1, 2});
    hess_tensor *t = hess_tensor_new(ctx, 1, SH(3), (const double[]){1, 1, 0});
    hess_tensor *mean = hess_cross_entropy(ctx, x, t);
    hess_tensor *sum = hess_cross_entropy_ex(ctx, x, t, OPTS(SUM));
    assert_ok(ctx, hess_context_status(ctx));
    /* each of the first two rows is 1e308: (1e308 + 1e308 + ce) / 3 */
    const double ce = 1.0 + log(1.0 + exp(-1.0));
    assert_close(hess_tensor_data(mean)[0], 1e308 / 3.0 + 1e308 / 3.0 + ce / 3.0, 1e-15, 0.0);
    assert_true(hess_tensor_data(sum)[0] == INFINITY);
    hess_context_destroy(ctx);
}

/* The shape rules of the loss records through the generic builder (the
 * fuzzer's route, which the public builders check before): the pairs must
 * have one shape, and nll_rows's log-probabilities a class axis. */
static void test_loss_records_generic_builder(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *a = hess_tensor_new(ctx, 1, SH(2), (const double[]){0.25, 0.5});
    hess_tensor *b = hess_tensor_new(ctx, 1, SH(3), (const double[]){0.25, 0.5, 1});
    hess_tensor *s = hess_scalar(ctx, 0.5);
    const char *pairs[] = {"mse_loss", "bce_with_logits", "bce_term", "bce_logits_term",
                           "nll_rows"};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const hess_op_def *def = hess__op_find(pairs[i]);
        assert_non_null(def);
        refused_build(ctx, hess__apply2(ctx, def, a, b, "test"), HESS_ERR_SHAPE,
                      "test: input [2] and target [3] differ in shape");
    }
    refused_build(ctx, hess__apply2(ctx, hess__op_find("nll_rows"), s, s, "test"), HESS_ERR_SHAPE,
                  "test: log-probabilities of rank 0 have no class axis");
    /* and of one shape: the values of the formulas */
    hess_tensor *y = hess_tensor_new(ctx, 1, SH(2), (const double[]){1, 0});
    hess_tensor *m = hess__apply2(ctx, hess__op_find("mse_loss"), a, y, "test");
    hess_tensor *n = hess__apply2(ctx, hess__op_find("nll_rows"), a, y, "test");
    assert_ok(ctx, hess_context_status(ctx));
    assert_int_equal(hess_tensor_ndim(m), 0);
    assert_close(hess_tensor_data(m)[0], 0.0, 0.0, 0.0); /* alpha: 0 without parameters */
    assert_int_equal(hess_tensor_ndim(n), 0);
    assert_close(hess_tensor_data(n)[0], -0.25, 0.0, 0.0);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Batched passes                                                           */
/* ------------------------------------------------------------------------ */

#define LNP 12 /* W [3,3] and b [3] */

static const double LX[12] = {0.5, -1.0, 0.25, 1.5, 0.75, -0.5, -0.25, 2.0, 1.0, 0.1, -0.6, 0.9};
static const double LT[4] = {0, 2, 1, 2};
static const double LY[12] = {0.3, -0.2, 1.1, 0.8, 0.1, -0.9, 1.6, -0.4, 0.2, 0.05, 0.7, -1.2};
static const double LYP[12] = {0.1, 0.9, 0.5, 1, 0, 0.25, 0.7, 0.3, 0.6, 0.45, 0.8, 0.2};
static const double LEW[12] = {1, 0.5, 2, 1.5, 1, 0.25, 0.75, 1, 1.25, 2, 0.5, 1};
static const double LCW[3] = {0.5, 1.5, 1.0};

/* Loss k of logits = x W^T + b, x [4,3]; *l: the per-term losses of the
 * unreduced forms (NULL for the others), L their weighted sum of squares. */
static hess_tensor *loss_model(hess_context *ctx, int k, hess_tensor *const p[2], hess_tensor **l)
{
    hess_tensor *z = hess_linear(ctx, hess_tensor_new(ctx, 2, SH(4, 3), LX), p[0], p[1]);
    hess_tensor *t = hess_tensor_new(ctx, 1, SH(4), LT), *y = hess_tensor_new(ctx, 2, SH(4, 3), LY);
    hess_tensor *yp = hess_tensor_new(ctx, 2, SH(4, 3), LYP);
    hess_tensor *ew = hess_tensor_new(ctx, 2, SH(4, 3), LEW),
                *cw = hess_tensor_new(ctx, 1, SH(3), LCW);
    *l = NULL;
    switch (k) {
    case 0:
        return hess_cross_entropy(ctx, z, t);
    case 1:
        return hess_cross_entropy_ex(ctx, z, t,
                                     OPTS(.weight = cw, IGNORE(1), .label_smoothing = 0.1));
    case 2:
        return hess_nll_loss(ctx, hess_log_softmax(ctx, z, -1), t, OPTS(SUM, .weight = cw));
    case 3:
        return hess_mse_loss(ctx, z, y);
    case 4:
        return hess_huber_loss(ctx, z, y, OPTS(SUM, .delta = 0.5));
    case 5:
        return hess_l1_loss(ctx, z, y, NULL);
    case 6:
        return hess_bce_with_logits(ctx, z, yp);
    case 7:
        return hess_bce_with_logits_ex(ctx, z, yp, OPTS(SUM, .weight = ew));
    case 8:
        return hess_bce(ctx, hess_sigmoid(ctx, z), yp, OPTS(.weight = ew));
    case 9:
        *l = hess_mse_loss_ex(ctx, z, y, OPTS(NONE));
        break;
    case 10:
        *l = hess_bce_with_logits_ex(ctx, z, yp, OPTS(NONE));
        break;
    case 11:
        *l = hess_bce(ctx, hess_sigmoid(ctx, z), yp, OPTS(NONE));
        break;
    case 12:
        *l = hess_cross_entropy_ex(ctx, z, t, OPTS(NONE, .label_smoothing = 0.2));
        break;
    default:
        *l = hess_huber_loss(ctx, z, y, OPTS(NONE, .delta = 0.5));
        break;
    }
    return hess_sum(ctx, hess_square(ctx, *l));
}
#define N_LOSS 14

static void loss_params(hess_context *ctx, const double *x, hess_tensor *p[2])
{
    p[0] = hess_param_new(ctx, 2, SH(3, 3), x);
    p[1] = hess_param_new(ctx, 1, SH(3), x + 9);
}

/* The gradient of loss k at x, and the unreduced terms' values (when it has
 * them; *n of them), on a fresh graph. */
static void loss_at(int k, const double *x, double *g, double *lv, int64_t *n)
{
    hess_context *ctx = test_context();
    hess_tensor *p[2], *gt[2], *l;
    loss_params(ctx, x, p);
    hess_tensor *L = loss_model(ctx, k, p, &l);
    assert_ok(ctx, hess_grad(ctx, L, 2, p, gt, 0));
    memcpy(g, hess_tensor_data(gt[0]), 9 * sizeof *g);
    memcpy(g + 9, hess_tensor_data(gt[1]), 3 * sizeof *g);
    *n = l ? hess_tensor_numel(l) : 0;
    if (l)
        memcpy(lv, hess_tensor_data(l), (size_t)*n * sizeof *lv);
    hess_context_destroy(ctx);
}

/* Every loss rule (the one-node losses' and hess__jvp_scalar, bce_term,
 * bce_logits_term, huber, nll_rows, smooth_one_hot's rows) in the passes
 * that carry k directions: the Hessian through a linear layer by sweeps of
 * 1 and 5 rows against the default one and central differences of the
 * gradient; its diagonal by rows and by the curvature backpropagation
 * (where it covers the graph); hess_hvp_batch and hess_hvp_fwd; and the
 * Jacobian of the unreduced terms in b (forward mode: 3 columns) and in W
 * and b (reverse mode where there are fewer terms) against central
 * differences. */
static void test_loss_batched_passes(void **state)
{
    (void)state;
    const double x0[LNP] = {0.4, -0.3, 0.8, 0.2, 0.6, -0.5, -0.7, 0.1, 0.3, 0.05, -0.2, 0.15};
    double V[2 * LNP];
    for (int i = 0; i < 2 * LNP; i++)
        V[i] = (double)((i * 5) % 7) / 4.0 - 0.6;
    for (int k = 0; k < N_LOSS; k++) {
        hess_context *ctx = test_context();
        hess_tensor *p[2], *l;
        loss_params(ctx, x0, p);
        hess_tensor *L = loss_model(ctx, k, p, &l);
        assert_ok(ctx, hess_context_status(ctx));
        static double H[LNP * LNP], Hb[LNP * LNP], d[LNP], HV[2 * LNP], hv[LNP], J[12 * LNP];
        assert_ok(ctx, hess_hessian(ctx, L, 2, p, H));
        const int64_t n = l ? hess_tensor_numel(l) : 0;
        if (l)
            assert_ok(ctx, hess_jacobian(ctx, l, 2, p, J));
        for (int j = 0; j < LNP; j++) {
            double xp[LNP], xm[LNP], gp[LNP], gm[LNP], lp[12], lm[12];
            int64_t np_, nm;
            memcpy(xp, x0, sizeof xp);
            memcpy(xm, x0, sizeof xm);
            xp[j] += 1e-6;
            xm[j] -= 1e-6;
            loss_at(k, xp, gp, lp, &np_);
            loss_at(k, xm, gm, lm, &nm);
            assert_int_equal(np_, n);
            for (int i = 0; i < LNP; i++)
                assert_close(H[i * LNP + j], (gp[i] - gm[i]) / 2e-6, 1e-6, 1e-6);
            for (int64_t i = 0; i < n; i++)
                assert_close(J[i * LNP + j], (lp[i] - lm[i]) / 2e-6, 1e-6, 1e-7);
        }
        const size_t blocks[2] = {1, 5};
        for (int b = 0; b < 2; b++) {
            hess_hessian_opts o = {0};
            o.block_rows = blocks[b];
            assert_ok(ctx, hess_hessian_ex(ctx, L, 2, p, &o, Hb));
            assert_close_array(Hb, H, LNP * LNP, 1e-13, 1e-13);
        }
        for (int m = HESS_DIAG_BACKPROP; m <= HESS_DIAG_ROWS; m++) {
            hess_hessian_opts o = {0};
            o.method = m;
            if (hess_hessian_diag_ex(ctx, L, 2, p, &o, d) != HESS_OK) {
                assert_int_equal(m, HESS_DIAG_BACKPROP);
                assert_non_null(strstr(hess_context_errmsg(ctx), "does not cover"));
                hess_context_clear_error(ctx);
                continue;
            }
            for (int i = 0; i < LNP; i++)
                assert_close(d[i], H[i * LNP + i], 1e-12, 1e-13);
        }
        hess_hessian_opts o = {0};
        o.block_rows = 2;
        assert_ok(ctx, hess_hvp_batch(ctx, L, 2, p, 2, V, &o, HV));
        for (int r = 0; r < 2; r++) {
            assert_ok(ctx, hess_hvp_fwd(ctx, L, 2, p, V + r * LNP, hv));
            for (int i = 0; i < LNP; i++) {
                double s = 0.0;
                for (int j = 0; j < LNP; j++)
                    s += H[i * LNP + j] * V[r * LNP + j];
                assert_close(HV[r * LNP + i], s, 1e-12, 1e-12);
                assert_close(hv[i], s, 1e-12, 1e-12);
            }
        }
        if (l) {
            double Jb[12 * 3];
            assert_ok(ctx, hess_jacobian(ctx, l, 1, &p[1], Jb));
            for (int64_t i = 0; i < n; i++)
                for (int j = 0; j < 3; j++)
                    assert_close(Jb[i * 3 + j], J[i * LNP + 9 + j], 1e-13, 1e-14);
        }
        hess_context_destroy(ctx);
    }
}

/* The loss of row b of LX [4,3] for class LT[b]: logsumexp - x[t]. */
static double lx_ce(int b)
{
    const double *x = LX + 3 * b;
    return log(exp(x[0]) + exp(x[1]) + exp(x[2])) - x[(int)LT[b]];
}

/* Class weights and element weights are operands like any other (PyTorch's
 * are not differentiated): the derivatives of the weighted cross-entropy and
 * NLL in the class weights w, summed, averaged (divided by the sum of the
 * rows' weights) and per row, by reverse mode, hess_jvp and hess_jacobian
 * (forward mode for the 4 rows' terms in 3 weights); and a weight that does
 * not broadcast to the input's shape, though of its rank, is refused. */
static void test_loss_weights_are_operands(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *x = hess_tensor_new(ctx, 2, SH(4, 3), LX), *t = hess_tensor_new(ctx, 1, SH(4), LT);
    hess_tensor *w = hess_param_new(ctx, 1, SH(3), LCW);
    hess_tensor *lp = hess_log_softmax(ctx, x, -1);
    hess_tensor *Ls = hess_cross_entropy_ex(ctx, x, t, OPTS(SUM, .weight = w));
    hess_tensor *Lm = hess_nll_loss(ctx, lp, t, OPTS(.weight = w));
    hess_tensor *l = hess_cross_entropy_ex(ctx, x, t, OPTS(NONE, .weight = w));
    assert_ok(ctx, hess_context_status(ctx));
    /* sum_b w[t_b] ce_b: d/dw_c = S_c, the sum of the rows of class c */
    double S[3] = {0}, n[3] = {0}, W = 0.0, Lmean = 0.0;
    for (int b = 0; b < 4; b++) {
        S[(int)LT[b]] += lx_ce(b);
        n[(int)LT[b]] += 1.0;
        W += LCW[(int)LT[b]];
        Lmean += LCW[(int)LT[b]] * lx_ce(b);
    }
    Lmean /= W;
    assert_close(hess_tensor_data(Lm)[0], Lmean, 1e-15, 0.0);
    const double v[3] = {1, 2, 3};
    hess_tensor *g;
    double jv;
    assert_ok(ctx, hess_grad(ctx, Ls, 1, &w, &g, 0));
    assert_close_array(hess_tensor_data(g), S, 3, 1e-15, 0.0);
    assert_ok(ctx, hess_jvp(ctx, Ls, 1, &w, v, &jv));
    assert_close(jv, S[0] + 2 * S[1] + 3 * S[2], 1e-15, 0.0);
    /* the mean: d/dw_c (sum_b w[t_b] ce_b / W) = (S_c - L n_c) / W */
    double gm[3];
    for (int c = 0; c < 3; c++)
        gm[c] = (S[c] - Lmean * n[c]) / W;
    assert_ok(ctx, hess_grad(ctx, Lm, 1, &w, &g, 0));
    assert_close_array(hess_tensor_data(g), gm, 3, 1e-14, 1e-16);
    assert_ok(ctx, hess_jvp(ctx, Lm, 1, &w, v, &jv));
    assert_close(jv, gm[0] + 2 * gm[1] + 3 * gm[2], 1e-14, 1e-16);
    /* per row: l_b = w[t_b] ce_b, d l_b / dw_c = [t_b == c] ce_b */
    double J[12];
    assert_ok(ctx, hess_jacobian(ctx, l, 1, &w, J));
    for (int b = 0; b < 4; b++)
        for (int c = 0; c < 3; c++)
            assert_close(J[b * 3 + c], (int)LT[b] == c ? lx_ce(b) : 0.0, 1e-15, 0.0);
    /* element weights of the input's rank that would expand it */
    hess_tensor *z = hess_tensor_new(ctx, 2, SH(1, 3), LYP);
    hess_tensor *ew = hess_tensor_new(ctx, 2, SH(4, 3), LEW);
    refused_build(ctx, hess_bce_with_logits_ex(ctx, z, z, OPTS(.weight = ew)), HESS_ERR_SHAPE,
                  "hess_bce_with_logits_ex: weight [4,3] does not broadcast to the input's shape "
                  "[1,3]");
    refused_build(ctx, hess_bce(ctx, z, z, OPTS(.weight = ew)), HESS_ERR_SHAPE,
                  "hess_bce: weight [4,3] does not broadcast to the input's shape [1,3]");
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Out of memory in the losses' builders and rules                          */
/* ------------------------------------------------------------------------ */

#define OOM_PER (1 + LNP * LNP + LNP + 12 * LNP)
#define OOM_OUT ((N_LOSS + 1) * OOM_PER)

/* For every loss of loss_model, and for sum(softmax(z)^2): the tangent
 * along v (forward mode, the one-node losses through hess__jvp_scalar), the
 * Hessian by sweeps of 3 rows (the rules on batched cotangents), the
 * diagonal (the curvature rules where they cover the graph), and the
 * Jacobian of the unreduced terms. */
static hess_status loss_oom_flow(hess_context *ctx, double *out)
{
    static const double v[LNP] = {1, -0.5, 0.25, 0, 2, 1, -1, 0.5, 0.75, 0.3, -0.2, 0.1};
    const double x0[LNP] = {0.4, -0.3, 0.8, 0.2, 0.6, -0.5, -0.7, 0.1, 0.3, 0.05, -0.2, 0.15};
    hess_status st = HESS_OK;
    for (int k = 0; k <= N_LOSS && st == HESS_OK; k++) {
        hess_tensor *p[2], *l = NULL, *L;
        loss_params(ctx, x0, p);
        if (k < N_LOSS) {
            L = loss_model(ctx, k, p, &l);
        } else {
            hess_tensor *z = hess_linear(ctx, hess_tensor_new(ctx, 2, SH(4, 3), LX), p[0], p[1]);
            L = hess_sum(ctx, hess_square(ctx, hess_softmax(ctx, z, -1)));
        }
        double *r = out + k * OOM_PER;
        hess_hessian_opts o = {0};
        o.block_rows = 3;
        st = hess_context_status(ctx);
        if (st == HESS_OK)
            st = hess_jvp(ctx, L, 2, p, v, r);
        if (st == HESS_OK)
            st = hess_hessian_ex(ctx, L, 2, p, &o, r + 1);
        if (st == HESS_OK)
            st = hess_hessian_diag(ctx, L, 2, p, r + 1 + LNP * LNP);
        if (st == HESS_OK && l)
            st = hess_jacobian(ctx, l, 2, p, r + 1 + LNP * LNP + LNP);
    }
    return st;
}

/* Every byte limit up to what the flow needs (byte_limit_sweep, alloc.h). */
static void test_loss_out_of_memory(void **state)
{
    (void)state;
    byte_limit_sweep(loss_oom_flow, OOM_OUT);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_refs_loss_claims_every_case),
        cmocka_unit_test(test_refs_loss_bce_epsilon),
        cmocka_unit_test(test_loss_class_targets_have_no_derivative),
        cmocka_unit_test(test_loss_class_targets_changed_after_build),
        cmocka_unit_test(test_loss_checked_leaves),
        cmocka_unit_test(test_loss_targets_refresh_refused),
        cmocka_unit_test(test_loss_cross_entropy_huge_logits),
        cmocka_unit_test(test_loss_records_generic_builder),
        cmocka_unit_test(test_loss_batched_passes),
        cmocka_unit_test(test_loss_weights_are_operands),
        cmocka_unit_test(test_loss_out_of_memory),
    };
    const size_t nf = sizeof fixed / sizeof fixed[0];
    struct CMUnitTest tests[N_CASES + sizeof fixed / sizeof fixed[0]];
    memcpy(tests, fixed, sizeof fixed);
    for (size_t i = 0; i < N_CASES; i++)
        tests[nf + i] =
            (struct CMUnitTest){cases[i].name, test_refs_loss_case, NULL, NULL, &cases[i]};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
