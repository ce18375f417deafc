/*
 * test_refs_reduce.c -- the PyTorch reference cases (tests/data/ops/, made by
 * tests/data/make_op_refs.py with PyTorch 1.13 in float64) of the reductions
 * and their relatives: sum, mean, sum_axis, mean_axis, sum_axes, mean_axes,
 * sum_to, broadcast_to, amax, amin, logsumexp, var, std, norm, softmax,
 * log_softmax, and the layer norm built from mean_axes and var.
 *
 * Each case name maps to a C builder of its model line (the line itself is
 * checked, so a regenerated file with another model fails).  Against the
 * file: out, L = sum(out * w), the gradient, the Hessian diagonal (by
 * hess_hessian_diag, and by the curvature backpropagation where it covers
 * the graph), the HVP and, when present, the full Hessian, each within
 * 1e-12 of the largest element of the reference tensor.  A case file of
 * these ops that no row claims fails test_refs_reduce_every_file_claimed.
 * Last, the conventions no case pins: non-finite slices, var with
 * correction >= N, std and the norms at 0, scalars and keepdim shapes.
 */
#include "alloc.h"
#include "check.h"
#include "refcase.h"
#include "hess_internal.h" /* the records through the generic builder */

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define AX(...) ((const int[]){__VA_ARGS__})
#define SH(...) ((const int64_t[]){__VA_ARGS__})

/* The layer norm over the last axis from mean_axes and var (biased, eps
 * inside the sqrt), between two linear layers, under an MSE loss. */
static hess_tensor *b_model_layernorm_mse(hess_context *ctx, hess_tensor *const in[])
{
    hess_tensor *t0 = hess_linear(ctx, in[0], in[1], in[2]);
    hess_tensor *t1 = hess_sub(ctx, t0, hess_mean_axes(ctx, t0, 1, AX(-1), 1));
    hess_tensor *t2 =
        hess_sqrt(ctx, hess_add(ctx, hess_var(ctx, t0, 1, AX(-1), 0, 1), hess_scalar(ctx, 1e-05)));
    hess_tensor *t3 = hess_add(ctx, hess_mul(ctx, hess_div(ctx, t1, t2), in[3]), in[4]);
    return hess_mse_loss(ctx, hess_linear(ctx, t3, in[5], in[6]), in[7]);
}

/* X(case, model line, expression of ctx and in0): one row each. */
#define REF_CASES(X)                                                                               \
    X(sum, "hess_sum(ctx, in0)", hess_sum(ctx, in0))                                               \
    X(mean, "hess_mean(ctx, in0)", hess_mean(ctx, in0))                                            \
    X(sum_axis0, "hess_sum_axis(ctx, in0, 0)", hess_sum_axis(ctx, in0, 0))                         \
    X(sum_axis_neg, "hess_sum_axis(ctx, in0, -1)", hess_sum_axis(ctx, in0, -1))                    \
    X(mean_axis1, "hess_mean_axis(ctx, in0, 1)", hess_mean_axis(ctx, in0, 1))                      \
    X(mean_axis_neg, "hess_mean_axis(ctx, in0, -2)", hess_mean_axis(ctx, in0, -2))                 \
    X(sum_to_lead, "hess_sum_to(ctx, in0, 2, [3, 1])", hess_sum_to(ctx, in0, 2, SH(3, 1)))         \
    X(sum_to_row, "hess_sum_to(ctx, in0, 2, [1, 3])", hess_sum_to(ctx, in0, 2, SH(1, 3)))          \
    X(sum_to_scalar, "hess_sum_to(ctx, in0, 0, NULL)", hess_sum_to(ctx, in0, 0, NULL))             \
    X(broadcast_to_lead, "hess_broadcast_to(ctx, in0, 3, [4, 2, 3])",                              \
      hess_broadcast_to(ctx, in0, 3, SH(4, 2, 3)))                                                 \
    X(broadcast_to_row, "hess_broadcast_to(ctx, in0, 2, [2, 3])",                                  \
      hess_broadcast_to(ctx, in0, 2, SH(2, 3)))                                                    \
    X(broadcast_to_scalar, "hess_broadcast_to(ctx, in0, 2, [2, 3])",                               \
      hess_broadcast_to(ctx, in0, 2, SH(2, 3)))                                                    \
    X(sum_axes_two, "hess_sum_axes(ctx, in0, 2, [0, 2], 0)",                                       \
      hess_sum_axes(ctx, in0, 2, AX(0, 2), 0))                                                     \
    X(sum_axes_neg_keep, "hess_sum_axes(ctx, in0, 1, [-1], 1)",                                    \
      hess_sum_axes(ctx, in0, 1, AX(-1), 1))                                                       \
    X(sum_axes_all, "hess_sum_axes(ctx, in0, 0, NULL, 0)", hess_sum_axes(ctx, in0, 0, NULL, 0))    \
    X(sum_axes_all_keep, "hess_sum_axes(ctx, in0, 0, NULL, 1)",                                    \
      hess_sum_axes(ctx, in0, 0, NULL, 1))                                                         \
    X(mean_axes_two, "hess_mean_axes(ctx, in0, 2, [0, 2], 0)",                                     \
      hess_mean_axes(ctx, in0, 2, AX(0, 2), 0))                                                    \
    X(mean_axes_neg_keep, "hess_mean_axes(ctx, in0, 1, [-1], 1)",                                  \
      hess_mean_axes(ctx, in0, 1, AX(-1), 1))                                                      \
    X(mean_axes_all, "hess_mean_axes(ctx, in0, 0, NULL, 0)", hess_mean_axes(ctx, in0, 0, NULL, 0)) \
    X(mean_axes_all_keep, "hess_mean_axes(ctx, in0, 0, NULL, 1)",                                  \
      hess_mean_axes(ctx, in0, 0, NULL, 1))                                                        \
    X(amax_axis, "hess_amax(ctx, in0, 1, [1], 0)", hess_amax(ctx, in0, 1, AX(1), 0))               \
    X(amax_two_keep, "hess_amax(ctx, in0, 2, [0, -1], 1)", hess_amax(ctx, in0, 2, AX(0, -1), 1))   \
    X(amax_all, "hess_amax(ctx, in0, 0, NULL, 0)", hess_amax(ctx, in0, 0, NULL, 0))                \
    X(amax_tie, "hess_amax(ctx, in0, 1, [1], 0)", hess_amax(ctx, in0, 1, AX(1), 0))                \
    X(amax_all_tie, "hess_amax(ctx, in0, 0, NULL, 0)", hess_amax(ctx, in0, 0, NULL, 0))            \
    X(amin_axis, "hess_amin(ctx, in0, 1, [1], 0)", hess_amin(ctx, in0, 1, AX(1), 0))               \
    X(amin_two_keep, "hess_amin(ctx, in0, 2, [0, -1], 1)", hess_amin(ctx, in0, 2, AX(0, -1), 1))   \
    X(amin_all, "hess_amin(ctx, in0, 0, NULL, 0)", hess_amin(ctx, in0, 0, NULL, 0))                \
    X(amin_tie, "hess_amin(ctx, in0, 1, [-1], 1)", hess_amin(ctx, in0, 1, AX(-1), 1))              \
    X(logsumexp_two, "hess_logsumexp(ctx, in0, 2, [0, 2], 0)",                                     \
      hess_logsumexp(ctx, in0, 2, AX(0, 2), 0))                                                    \
    X(logsumexp_neg_keep, "hess_logsumexp(ctx, in0, 1, [-1], 1)",                                  \
      hess_logsumexp(ctx, in0, 1, AX(-1), 1))                                                      \
    X(logsumexp_all, "hess_logsumexp(ctx, in0, 0, NULL, 0)", hess_logsumexp(ctx, in0, 0, NULL, 0)) \
    X(logsumexp_all_keep, "hess_logsumexp(ctx, in0, 0, NULL, 1)",                                  \
      hess_logsumexp(ctx, in0, 0, NULL, 1))                                                        \
    X(logsumexp_large, "hess_logsumexp(ctx, in0, 1, [1], 0)",                                      \
      hess_logsumexp(ctx, in0, 1, AX(1), 0))                                                       \
    X(var_last, "hess_var(ctx, in0, 1, [-1], 1, 0)", hess_var(ctx, in0, 1, AX(-1), 1, 0))          \
    X(var_biased_keep, "hess_var(ctx, in0, 1, [1], 0, 1)", hess_var(ctx, in0, 1, AX(1), 0, 1))     \
    X(var_two_axes, "hess_var(ctx, in0, 2, [0, 2], 1, 0)", hess_var(ctx, in0, 2, AX(0, 2), 1, 0))  \
    X(var_all, "hess_var(ctx, in0, 0, NULL, 1, 0)", hess_var(ctx, in0, 0, NULL, 1, 0))             \
    X(var_all_corr2_keep, "hess_var(ctx, in0, 0, NULL, 2, 1)", hess_var(ctx, in0, 0, NULL, 2, 1))  \
    X(std_last, "hess_std(ctx, in0, 1, [-1], 1, 0)", hess_std(ctx, in0, 1, AX(-1), 1, 0))          \
    X(std_biased_keep, "hess_std(ctx, in0, 1, [1], 0, 1)", hess_std(ctx, in0, 1, AX(1), 0, 1))     \
    X(std_two_axes, "hess_std(ctx, in0, 2, [0, 2], 1, 0)", hess_std(ctx, in0, 2, AX(0, 2), 1, 0))  \
    X(std_all, "hess_std(ctx, in0, 0, NULL, 1, 0)", hess_std(ctx, in0, 0, NULL, 1, 0))             \
    X(std_all_corr2_keep, "hess_std(ctx, in0, 0, NULL, 2, 1)", hess_std(ctx, in0, 0, NULL, 2, 1))  \
    X(norm_1, "hess_norm(ctx, in0, 1)", hess_norm(ctx, in0, 1))                                    \
    X(norm_1_kink, "hess_norm(ctx, in0, 1)", hess_norm(ctx, in0, 1))                               \
    X(norm_2, "hess_norm(ctx, in0, 2)", hess_norm(ctx, in0, 2))                                    \
    X(norm_inf, "hess_norm(ctx, in0, inf)", hess_norm(ctx, in0, INFINITY))                         \
    X(norm_inf_tie, "hess_norm(ctx, in0, inf)", hess_norm(ctx, in0, INFINITY))                     \
    X(softmax_last, "hess_softmax(ctx, in0, -1)", hess_softmax(ctx, in0, -1))                      \
    X(softmax_axis1, "hess_softmax(ctx, in0, 1)", hess_softmax(ctx, in0, 1))                       \
    X(log_softmax_last, "hess_log_softmax(ctx, in0, -1)", hess_log_softmax(ctx, in0, -1))          \
    X(log_softmax_axis0, "hess_log_softmax(ctx, in0, 0)", hess_log_softmax(ctx, in0, 0))           \
    X(log_softmax_large, "hess_log_softmax(ctx, in0, 1)", hess_log_softmax(ctx, in0, 1))

#define in0 (in[0])
#define X_BUILD(name, model, expr)                                                                 \
    static hess_tensor *b_##name(hess_context *ctx, hess_tensor *const in[])                       \
    {                                                                                              \
        return expr;                                                                               \
    }
REF_CASES(X_BUILD)
#undef X_BUILD
#undef in0

static ref_row rows[] = {
#define X_ROW(name, model, expr) {#name, model, b_##name},
    REF_CASES(X_ROW)
#undef X_ROW
        {"model_layernorm_mse",
         "t0 = hess_linear(ctx, in0, in1, in2); t1 = hess_sub(ctx, t0, hess_mean_axes(ctx, t0, 1, "
         "[-1], 1)); t2 = hess_sqrt(ctx, hess_add(ctx, hess_var(ctx, t0, 1, [-1], 0, 1), "
         "hess_scalar(ctx, 1e-05))); t3 = hess_add(ctx, hess_mul(ctx, hess_div(ctx, t1, t2), in3), "
         "in4); hess_mse_loss(ctx, hess_linear(ctx, t3, in5, in6), in7)",
         b_model_layernorm_mse},
};
#define N_ROWS (sizeof rows / sizeof rows[0])

/* The files of these ops: a stem equal to one of these or starting with it
 * and '_' (the cases of the op and its variants). */
static const char *const PREFIXES[] = {"sum",       "mean",        "amax",        "amin",
                                       "logsumexp", "var",         "std",         "norm",
                                       "softmax",   "log_softmax", "broadcast_to"};
static const char *const EXACT[] = {"model_layernorm_mse"};

static const ref_family FAMILY = {"the reductions, softmax and layer norm", REF_LIST(PREFIXES),
                                  REF_LIST(EXACT), 0};

/* ------------------------------------------------------------------------ */
/* The cases (ref_run_case, refcase.h), and every file of these ops has a   */
/* row                                                                      */
/* ------------------------------------------------------------------------ */

static void test_ref_case(void **state)
{
    ref_run_case(&FAMILY, *state);
}

static void test_refs_reduce_every_file_claimed(void **state)
{
    (void)state;
    ref_check_claimed(&FAMILY, rows, N_ROWS);
}

/* ------------------------------------------------------------------------ */
/* The conventions the reference cases do not pin (PyTorch 1.13's, checked  */
/* by hand with it): non-finite slices, correction >= N, the kinks at 0,   */
/* scalars, shapes with keepdim.                                            */
/* ------------------------------------------------------------------------ */

/* The gradient (and, when h is not NULL, the Hessian) of sum(out) with
 * respect to the parameter p of n elements. */
static void derivs(hess_context *ctx, hess_tensor *out, hess_tensor *p, double *g, double *h)
{
    hess_tensor *L = hess_sum(ctx, out), *gt;
    assert_ok(ctx, hess_grad(ctx, L, 1, &p, &gt, 0));
    memcpy(g, hess_tensor_data(gt), (size_t)hess_tensor_numel(p) * sizeof *g);
    if (h)
        assert_ok(ctx, hess_hessian(ctx, L, 1, &p, h));
}

static void assert_values(const hess_tensor *t, const double *want, int64_t n)
{
    assert_non_null(t);
    assert_int_equal(hess_tensor_numel(t), n);
    for (int64_t i = 0; i < n; i++) {
        const double got = hess_tensor_data(t)[i];
        if (!(got == want[i] || (isnan(got) && isnan(want[i]))))
            fail_msg("element %lld is %.17g, expected %.17g", (long long)i, got, want[i]);
    }
}

static void test_reduce_nonfinite_slices(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    const double x[6] = {-INFINITY, -INFINITY, INFINITY, 1.0, NAN, 1.0};
    hess_tensor *a = hess_param_new(ctx, 2, SH(3, 2), x);
    /* logsumexp: -inf for an all -inf row, +inf with +inf, NaN with NaN */
    assert_values(hess_logsumexp(ctx, a, 1, AX(1), 0), (const double[]){-INFINITY, INFINITY, NAN},
                  3);
    /* amax and amin: NaN wins; a NaN row gets NaN gradients (0/0, as PyTorch) */
    assert_values(hess_amax(ctx, a, 1, AX(-1), 0), (const double[]){-INFINITY, INFINITY, NAN}, 3);
    assert_values(hess_amin(ctx, a, 1, AX(-1), 1), (const double[]){-INFINITY, 1.0, NAN}, 3);
    double g[6];
    derivs(ctx, hess_amax(ctx, a, 1, AX(-1), 0), a, g, NULL);
    assert_values(hess_tensor_new(ctx, 1, SH(6), g), (const double[]){0.5, 0.5, 1, 0, NAN, NAN}, 6);
    hess_context_destroy(ctx);
}

static void test_reduce_var_correction_at_least_count(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *a = hess_tensor_new(ctx, 2, SH(2, 3), (const double[]){1, 2, 3, 2, 2, 2});
    /* the divisor N - correction <= 0 is 0: +inf, and NaN for a constant row */
    assert_values(hess_var(ctx, a, 1, AX(1), 3, 0), (const double[]){INFINITY, NAN}, 2);
    assert_values(hess_var(ctx, a, 1, AX(1), 7, 1), (const double[]){INFINITY, NAN}, 2);
    assert_values(hess_std(ctx, a, 1, AX(1), 3, 0), (const double[]){INFINITY, NAN}, 2);
    assert_values(hess_var(ctx, a, 1, AX(1), 2, 0), (const double[]){2, 0}, 2);
    assert_values(hess_var(ctx, a, 1, AX(1), -1, 0), (const double[]){0.5, 0}, 2);
    hess_context_destroy(ctx);
}

/* std at a constant slice, and the norms at 0: gradient 0, Hessian 0. */
static void test_reduce_kinks_at_zero(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *c = hess_param_new(ctx, 1, SH(3), (const double[]){2, 2, 2});
    hess_tensor *z = hess_param_new(ctx, 1, SH(3), (const double[]){0, -0.0, 0});
    const double zeros[9] = {0};
    double g[3], h[9];
    hess_tensor *sd = hess_std(ctx, c, 0, NULL, 1, 0);
    assert_values(sd, zeros, 1);
    derivs(ctx, sd, c, g, h);
    assert_values(hess_tensor_new(ctx, 1, SH(3), g), zeros, 3);
    assert_values(hess_tensor_new(ctx, 1, SH(9), h), zeros, 9);
    const double ps[3] = {1, 2, INFINITY};
    for (int k = 0; k < 3; k++) {
        hess_tensor *n = hess_norm(ctx, z, ps[k]);
        assert_int_equal(hess_tensor_ndim(n), 0);
        assert_values(n, zeros, 1);
        derivs(ctx, n, z, g, h);
        assert_values(hess_tensor_new(ctx, 1, SH(3), g), zeros, 3);
        assert_values(hess_tensor_new(ctx, 1, SH(9), h), zeros, 9);
    }
    /* and away from 0: sign(a), a / |a|_2, sign(a) / k on the ties */
    hess_tensor *a = hess_param_new(ctx, 1, SH(3), (const double[]){-3, 0, 3});
    derivs(ctx, hess_norm(ctx, a, 1), a, g, NULL);
    assert_values(hess_tensor_new(ctx, 1, SH(3), g), (const double[]){-1, 0, 1}, 3);
    derivs(ctx, hess_norm(ctx, a, INFINITY), a, g, NULL);
    assert_values(hess_tensor_new(ctx, 1, SH(3), g), (const double[]){-0.5, 0, 0.5}, 3);
    hess_context_destroy(ctx);
}

static void test_reduce_shapes(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    double x[24];
    for (int i = 0; i < 24; i++)
        x[i] = (i * 7) % 24 - 11.5;
    hess_tensor *a = hess_tensor_new(ctx, 3, SH(2, 3, 4), x), *s = hess_scalar(ctx, -1.5);
    hess_tensor *t[] = {hess_amax(ctx, a, 2, AX(0, 2), 1), hess_amax(ctx, a, 2, AX(2, -3), 0),
                        hess_sum_axes(ctx, a, 1, AX(1), 0), hess_logsumexp(ctx, a, 0, NULL, 1),
                        hess_var(ctx, a, 2, AX(-1, 1), 1, 1)};
    const int nd[] = {3, 1, 2, 3, 3};
    const int64_t shapes[][3] = {{1, 3, 1}, {3}, {2, 4}, {1, 1, 1}, {2, 1, 1}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        assert_non_null(t[i]);
        assert_int_equal(hess_tensor_ndim(t[i]), nd[i]);
        assert_memory_equal(hess_tensor_shape(t[i]), shapes[i], (size_t)nd[i] * sizeof(int64_t));
    }
    /* a scalar has no axes: naxes = 0 gives it back (the var of one element
     * with correction 0 is 0) */
    assert_values(hess_sum_axes(ctx, s, 0, NULL, 1), (const double[]){-1.5}, 1);
    assert_values(hess_amin(ctx, s, 0, NULL, 0), (const double[]){-1.5}, 1);
    assert_values(hess_logsumexp(ctx, s, 0, NULL, 0), (const double[]){-1.5}, 1);
    assert_values(hess_var(ctx, s, 0, NULL, 0, 0), (const double[]){0}, 1);
    assert_int_equal(hess_tensor_ndim(hess_mean_axes(ctx, s, 0, NULL, 0)), 0);
    assert_ok(ctx, hess_context_status(ctx));
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* amax and amin over leading and middle axes, ties and NaN, on both kernel */
/* sets; the records through the generic builder; batched passes            */
/* ------------------------------------------------------------------------ */

#define RN 12 /* a [2,3,2] */

/* The keep-shape index of element e of a [2,3,2] reduced over mask. */
static int64_t kept_index(int64_t e, unsigned mask)
{
    const int64_t s[3] = {2, 3, 2};
    int64_t idx[3] = {e / 6, (e / 2) % 3, e % 2}, k = 0;
    for (int i = 0; i < 3; i++)
        k = k * ((mask >> i) & 1u ? 1 : s[i]) + ((mask >> i) & 1u ? 0 : idx[i]);
    return k;
}

/* amax (amin) of a [2,3,2] over every mask of axes, kept and dropped, on the
 * AVX2 and the portable kernels: the values against a plain loop (NaN wins),
 * the shapes, and the gradient of the sum: 1/k on each of the k elements
 * tied for the extreme of their slice, 0 elsewhere, NaN over a NaN slice. */
static void test_reduce_extremes_every_axis_set(void **state)
{
    (void)state;
    /* ties along axis 0 (4 and 4, -1 and -1, 7 and 7), axis 1 (7 and 7) and
     * axis 2 (7 and 7); the NaN comes first along axis 0, so a slot already
     * NaN meets another value */
    const double x[RN] = {4, -1, 7, NAN, 7, 7, 4, -1, 7, 3, 3, 1};
    const unsigned flags[2] = {0u, HESS_NO_SIMD};
    for (int fl = 0; fl < 2; fl++)
        for (unsigned mask = 1; mask < 8; mask++)
            for (int mn = 0; mn < 2; mn++)
                for (int keep = 0; keep < 2; keep++) {
                    hess_context *ctx = test_context_flags(flags[fl]);
                    int axes[3], na = 0;
                    for (int i = 2; i >= 0; i--) /* listed last axis first, negative */
                        if ((mask >> i) & 1u)
                            axes[na++] = i - 3;
                    hess_tensor *a = hess_param_new(ctx, 3, SH(2, 3, 2), x);
                    hess_tensor *r = mn ? hess_amin(ctx, a, (size_t)na, axes, keep)
                                        : hess_amax(ctx, a, (size_t)na, axes, keep);
                    assert_ok(ctx, hess_context_status(ctx));
                    /* the reference: the extreme and the ties per kept slice */
                    double want[RN], cnt[RN] = {0};
                    int64_t n = 1, shape[3];
                    int nd = 0;
                    for (int i = 0; i < 3; i++) {
                        const int64_t d = (mask >> i) & 1u ? 1 : (i == 1 ? 3 : 2);
                        n *= d;
                        if (keep || !((mask >> i) & 1u))
                            shape[nd++] = d;
                    }
                    for (int64_t k = 0; k < n; k++)
                        want[k] = mn ? INFINITY : -INFINITY;
                    for (int64_t e = 0; e < RN; e++) {
                        double *w = &want[kept_index(e, mask)];
                        if (isnan(x[e]) || isnan(*w))
                            *w = NAN;
                        else if (mn ? x[e] < *w : x[e] > *w)
                            *w = x[e];
                    }
                    for (int64_t e = 0; e < RN; e++)
                        cnt[kept_index(e, mask)] += x[e] == want[kept_index(e, mask)];
                    assert_int_equal(hess_tensor_ndim(r), nd);
                    if (nd > 0)
                        assert_memory_equal(hess_tensor_shape(r), shape,
                                            (size_t)nd * sizeof *shape);
                    assert_values(r, want, n);
                    double g[RN], gw[RN];
                    derivs(ctx, r, a, g, NULL);
                    for (int64_t e = 0; e < RN; e++) {
                        const int64_t k = kept_index(e, mask);
                        gw[e] = cnt[k] == 0 ? NAN : (x[e] == want[k]) / cnt[k];
                    }
                    assert_values(hess_tensor_new(ctx, 1, SH(RN), g), gw, RN);
                    hess_context_destroy(ctx);
                }
}

/* Fails unless the last call refused with status st and message msg
 * exactly; then clears it. */
static void refused(hess_context *ctx, const hess_tensor *t, hess_status st, const char *msg)
{
    assert_null(t);
    assert_int_equal(hess_context_status(ctx), st);
    if (strcmp(hess_context_errmsg(ctx), msg) != 0)
        fail_msg("message \"%s\", expected \"%s\"", hess_context_errmsg(ctx), msg);
    hess_context_clear_error(ctx);
}

/* The records of the family through the generic builder (the one the
 * fuzzer drives with arbitrary operands and zeroed parameters): amax with
 * no parameters reduces every axis, and refuses axes beyond the rank;
 * eq_mask broadcasts either operand (amax's rule only ever repeats the
 * second), on both kernel sets; softmax and log_softmax take their axis as
 * given: 0 without parameters, and a negative or out-of-range one refused. */
static void test_reduce_records_generic_builder(void **state)
{
    (void)state;
    const double x[6] = {3, -1, 3, 2, 0, 2};
    const unsigned flags[2] = {0u, HESS_NO_SIMD};
    for (int fl = 0; fl < 2; fl++) {
        hess_context *ctx = test_context_flags(flags[fl]);
        hess_tensor *a = hess_tensor_new(ctx, 2, SH(2, 3), x);
        hess_tensor *m = hess__apply1(ctx, hess__op_find("amax"), a, NULL, "test");
        assert_ok(ctx, hess_context_status(ctx));
        assert_int_equal(hess_tensor_ndim(m), 2);
        assert_values(m, (const double[]){3}, 1);
        const hess_op_params bad = {.reduce = {4u}};
        refused(ctx, hess__apply1(ctx, hess__op_find("amin"), a, &bad, "test"), HESS_ERR_ARG,
                "test: axes 0x4 are out of range for [2,3]");
        /* eq_mask(b, a) with b [3] repeated over a's rows, and (a, b) */
        hess_tensor *b = hess_tensor_new(ctx, 1, SH(3), (const double[]){3, 0, 2});
        const hess_op_def *eq = hess__op_find("eq_mask");
        assert_values(hess__apply2(ctx, eq, b, a, "test"), (const double[]){1, 0, 0, 0, 1, 1}, 6);
        assert_values(hess__apply2(ctx, eq, a, b, "test"), (const double[]){1, 0, 0, 0, 1, 1}, 6);
        hess_tensor *c = hess_tensor_new(ctx, 2, SH(2, 1), (const double[]){3, 2});
        assert_values(hess__apply2(ctx, eq, c, a, "test"), (const double[]){1, 0, 1, 1, 0, 1}, 6);
        assert_values(hess__apply2(ctx, eq, hess_scalar(ctx, 2), a, "test"),
                      (const double[]){0, 0, 0, 1, 0, 1}, 6);
        /* softmax along axis 0 without parameters: each column sums to 1 */
        hess_tensor *s = hess__apply1(ctx, hess__op_find("softmax"), a, NULL, "test");
        assert_ok(ctx, hess_context_status(ctx));
        for (int j = 0; j < 3; j++)
            assert_close(hess_tensor_data(s)[j] + hess_tensor_data(s)[3 + j], 1.0, 1e-15, 0.0);
        assert_close(hess_tensor_data(s)[0], 1.0 / (1.0 + exp(-1.0)), 1e-15, 0.0);
        const hess_op_params neg = {.axis = {-1}}, big = {.axis = {2}};
        refused(ctx, hess__apply1(ctx, hess__op_find("log_softmax"), a, &neg, "test"), HESS_ERR_ARG,
                "test: axis -1 is negative; the op takes it as 1");
        refused(ctx, hess__apply1(ctx, hess__op_find("softmax"), a, &big, "test"), HESS_ERR_ARG,
                "test: axis 2 is out of range for [2,3]");
        assert_values(a, x, 6);
        hess_context_destroy(ctx);
    }
}

/* Under HESS_CHECK_FINITE a reduction whose result is not finite is refused
 * (also when its keep shape would have been reshaped), and the operand is
 * left as it was; without the flag the same calls give +Inf. */
static void test_reduce_check_finite(void **state)
{
    (void)state;
    const double x[6] = {1, INFINITY, 3, 4, 5, 6}, y[6] = {1, -INFINITY, 3, 4, 5, 6};
    for (int check = 0; check < 2; check++) {
        hess_context *ctx = test_context_flags(check ? HESS_CHECK_FINITE : 0u);
        hess_tensor *a = hess_tensor_new(ctx, 2, SH(2, 3), x),
                    *b = hess_tensor_new(ctx, 2, SH(2, 3), y);
        hess_tensor *r[3] = {hess_amax(ctx, a, 1, AX(1), 0), NULL, NULL};
        if (check)
            refused(ctx, r[0], HESS_ERR_NONFINITE,
                    "hess_amax: non-finite value in the result of amax([2,3])");
        r[1] = hess_amin(ctx, b, 1, AX(0), 1);
        if (check)
            refused(ctx, r[1], HESS_ERR_NONFINITE,
                    "hess_amin: non-finite value in the result of amin([2,3])");
        r[2] = hess_logsumexp(ctx, a, 1, AX(-1), 0);
        if (check) {
            /* a composite: the message names the function called, then the
             * op inside it that failed (a minus the shift holds the Inf) */
            refused(
                ctx, r[2], HESS_ERR_NONFINITE,
                "hess_logsumexp: hess_sub: non-finite value in the result of sub([2,3], [2,1])");
            assert_values(a, x, 6);
            assert_values(b, y, 6);
        } else {
            assert_ok(ctx, hess_context_status(ctx));
            assert_values(r[0], (const double[]){INFINITY, 6}, 2);
            assert_values(r[1], (const double[]){1, -INFINITY, 3}, 3);
            assert_int_equal(hess_tensor_numel(r[2]), 2);
            assert_true(hess_tensor_data(r[2])[0] == INFINITY);
            assert_close(hess_tensor_data(r[2])[1], 6.0 + log(exp(-2.0) + exp(-1.0) + 1.0), 1e-15,
                         0.0);
        }
        hess_context_destroy(ctx);
    }
}

/* ------------------------------------------------------------------------ */
/* Batched passes                                                           */
/* ------------------------------------------------------------------------ */

#define BNP (RN + 2) /* a [2,3,2] and b [2] */

/* r(a b), b [2] scaling a's last axis: each reduction with its axes and
 * keepdim variants. */
static hess_tensor *red_model(hess_context *ctx, int k, hess_tensor *a, hess_tensor *b)
{
    hess_tensor *x = hess_mul(ctx, a, b);
    switch (k) {
    case 0:
        return hess_amax(ctx, x, 1, AX(0), 0);
    case 1:
        return hess_amin(ctx, x, 1, AX(1), 1);
    case 2:
        return hess_amax(ctx, x, 0, NULL, 0);
    case 3:
        return hess_logsumexp(ctx, x, 2, AX(0, 2), 0);
    case 4:
        return hess_var(ctx, x, 1, AX(1), 1, 0);
    case 5:
        return hess_std(ctx, x, 1, AX(0), 0, 1);
    case 6:
        return hess_mean_axes(ctx, x, 1, AX(1), 0);
    case 7:
        return hess_sum_axes(ctx, x, 2, AX(2, 0), 1);
    case 8:
        return hess_norm(ctx, x, 2.0);
    default:
        return hess_norm(ctx, x, INFINITY);
    }
}
#define N_RED 10

/* L = sum(r^2) + sum(r) / 2. */
static hess_tensor *red_loss(hess_context *ctx, hess_tensor *r)
{
    return hess_add(ctx, hess_sum(ctx, hess_square(ctx, r)),
                    hess_scale(ctx, hess_sum(ctx, r), 0.5));
}

static void red_params(hess_context *ctx, const double *x, hess_tensor *p[2])
{
    p[0] = hess_param_new(ctx, 3, SH(2, 3, 2), x);
    p[1] = hess_param_new(ctx, 1, SH(2), x + RN);
}

static void red_grad(int k, const double *x, double *g)
{
    hess_context *ctx = test_context();
    hess_tensor *p[2], *gt[2];
    red_params(ctx, x, p);
    assert_ok(ctx, hess_grad(ctx, red_loss(ctx, red_model(ctx, k, p[0], p[1])), 2, p, gt, 0));
    memcpy(g, hess_tensor_data(gt[0]), RN * sizeof *g);
    memcpy(g + RN, hess_tensor_data(gt[1]), 2 * sizeof *g);
    hess_context_destroy(ctx);
}

/* The values of r at x (n of them), on a fresh graph. */
static void red_value(int k, const double *x, double *r, int64_t n)
{
    hess_context *ctx = test_context();
    hess_tensor *p[2];
    red_params(ctx, x, p);
    hess_tensor *t = red_model(ctx, k, p[0], p[1]);
    assert_ok(ctx, hess_context_status(ctx));
    assert_int_equal(hess_tensor_numel(t), n);
    memcpy(r, hess_tensor_data(t), (size_t)n * sizeof *r);
    hess_context_destroy(ctx);
}

/* The rules of the reductions (amax and amin's tie weights, logsumexp's
 * shift, sqrt0, sum_to and reshape) in the passes that carry k directions:
 * the Hessian of L by sweeps of 1 and 5 rows against the default one and
 * central differences of the gradient, the diagonal by rows and by the
 * curvature backpropagation (where it covers the graph), hess_hvp_fwd, and
 * the Jacobian of r against central differences of r. */
static void test_reduce_batched_passes(void **state)
{
    (void)state;
    /* no ties in any slice, and no kink within the differences' step */
    const double x0[BNP] = {0.3, 1.7,  -0.8, 2.2, 1.1,  -1.5, 0.9,
                            2.6, -0.4, 1.4,  0.6, -2.1, 1.2,  0.7};
    const double v[BNP] = {1, -0.5, 0.25, 0, 2, 1, -1, 0.5, 0.75, -2, 1, 0.125, 1, -1};
    for (int k = 0; k < N_RED; k++) {
        hess_context *ctx = test_context();
        hess_tensor *p[2];
        red_params(ctx, x0, p);
        hess_tensor *r = red_model(ctx, k, p[0], p[1]), *L = red_loss(ctx, r);
        assert_ok(ctx, hess_context_status(ctx));
        const int64_t n = hess_tensor_numel(r);
        static double H[BNP * BNP], Hb[BNP * BNP], d[BNP], hv[BNP], J[RN * BNP];
        assert_ok(ctx, hess_hessian(ctx, L, 2, p, H));
        for (int j = 0; j < BNP; j++) {
            double xp[BNP], xm[BNP], gp[BNP], gm[BNP], rp[RN], rm[RN];
            memcpy(xp, x0, sizeof xp);
            memcpy(xm, x0, sizeof xm);
            xp[j] += 1e-6;
            xm[j] -= 1e-6;
            red_grad(k, xp, gp);
            red_grad(k, xm, gm);
            for (int i = 0; i < BNP; i++)
                assert_close(H[i * BNP + j], (gp[i] - gm[i]) / 2e-6, 1e-6, 1e-6);
            red_value(k, xp, rp, n);
            red_value(k, xm, rm, n);
            if (j == 0)
                assert_ok(ctx, hess_jacobian(ctx, r, 2, p, J));
            for (int64_t i = 0; i < n; i++)
                assert_close(J[i * BNP + j], (rp[i] - rm[i]) / 2e-6, 1e-6, 1e-7);
        }
        const size_t blocks[2] = {1, 5};
        for (int b = 0; b < 2; b++) {
            hess_hessian_opts o = {0};
            o.block_rows = blocks[b];
            assert_ok(ctx, hess_hessian_ex(ctx, L, 2, p, &o, Hb));
            assert_close_array(Hb, H, BNP * BNP, 1e-13, 1e-13);
        }
        for (int m = HESS_DIAG_BACKPROP; m <= HESS_DIAG_ROWS; m++) {
            hess_hessian_opts o = {0};
            o.method = m;
            if (hess_hessian_diag_ex(ctx, L, 2, p, &o, d) != HESS_OK) {
                /* the backpropagation does not cover a reduction that
                 * mixes the samples: it says which op */
                assert_int_equal(m, HESS_DIAG_BACKPROP);
                assert_non_null(strstr(hess_context_errmsg(ctx), "does not cover"));
                hess_context_clear_error(ctx);
                continue;
            }
            for (int i = 0; i < BNP; i++)
                assert_close(d[i], H[i * BNP + i], 1e-13, 1e-13);
        }
        assert_ok(ctx, hess_hvp_fwd(ctx, L, 2, p, v, hv));
        for (int i = 0; i < BNP; i++) {
            double s = 0.0;
            for (int j = 0; j < BNP; j++)
                s += H[i * BNP + j] * v[j];
            assert_close(hv[i], s, 1e-12, 1e-12);
        }
        /* b alone: fewer columns than outputs where r keeps 2 or more */
        double Jb[RN * 2];
        assert_ok(ctx, hess_jacobian(ctx, r, 1, &p[1], Jb));
        for (int64_t i = 0; i < n; i++)
            for (int j = 0; j < 2; j++)
                assert_close(Jb[i * 2 + j], J[i * BNP + RN + j], 1e-14, 1e-15);
        hess_context_destroy(ctx);
    }
}

/* The diagonal of a small network through amax, by the curvature
 * backpropagation and by rows, against the Hessian's: one sample, with amax
 * keeping the sample axis, reducing it, or the record without parameters
 * (every axis); and two samples, amax over the 2 units (per sample) or
 * over the samples, whose result [2] has the batch's size but mixes the
 * samples. */
static void test_reduce_diag_through_amax(void **state)
{
    (void)state;
    const double xv[6] = {0.5, -1, 2, -0.25, 1.5, 0.75};
    for (int k = 0; k < 5; k++) {
        hess_context *ctx = test_context();
        hess_tensor *W =
            hess_param_new(ctx, 2, SH(2, 3), (const double[]){0.4, -0.3, 0.8, 0.2, 0.6, -0.5});
        hess_tensor *x = hess_tensor_new(ctx, 2, SH(k < 3 ? 1 : 2, 3), xv);
        hess_tensor *y = hess_tanh(ctx, hess_linear(ctx, x, W, NULL));
        hess_tensor *m = k == 0   ? hess_amax(ctx, y, 1, AX(1), 1)
                         : k == 1 ? hess_amax(ctx, y, 1, AX(0), 1)
                         : k == 2 ? hess__apply1(ctx, hess__op_find("amax"), y, NULL, "test")
                         : k == 3 ? hess_amax(ctx, y, 1, AX(1), 0)
                                  : hess_amax(ctx, y, 1, AX(0), 0);
        hess_tensor *L = hess_sum(ctx, hess_square(ctx, m));
        double H[36], d[6], dr[6];
        assert_ok(ctx, hess_hessian(ctx, L, 1, &W, H));
        hess_hessian_opts o = {0};
        int used = -1;
        o.method = HESS_DIAG_BACKPROP;
        o.method_used = &used;
        assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 1, &W, &o, d));
        assert_int_equal(used, HESS_DIAG_BACKPROP);
        o.method = HESS_DIAG_ROWS;
        assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 1, &W, &o, dr));
        for (int i = 0; i < 6; i++) {
            assert_close(d[i], H[i * 7], 1e-14, 1e-15);
            assert_close(dr[i], H[i * 7], 1e-14, 1e-15);
        }
        /* one sample, amax over the 2 units: it picks one, and the row of W
         * of the other has no curvature */
        if (k == 0 || k == 2)
            assert_true((d[0] == 0.0 && d[1] == 0.0 && d[2] == 0.0) !=
                        (d[3] == 0.0 && d[4] == 0.0 && d[5] == 0.0));
        hess_context_destroy(ctx);
    }
}

/* ------------------------------------------------------------------------ */
/* Out of memory in the rules                                               */
/* ------------------------------------------------------------------------ */

#define OOM_PER (1 + BNP * BNP + BNP + RN * BNP)
#define OOM_OUT (N_RED * OOM_PER)

/* For every reduction of red_model: the tangent along v (forward mode), the
 * Hessian of red_loss by sweeps of 3 rows, its diagonal, and the Jacobian of
 * the reduction. */
static hess_status red_oom_flow(hess_context *ctx, double *out)
{
    static const double v[BNP] = {1, -0.5, 0.25, 0, 2, 1, -1, 0.5, 0.75, -2, 1, 0.125, 1, -1};
    const double x0[BNP] = {0.3, 1.7,  -0.8, 2.2, 1.1,  -1.5, 0.9,
                            2.6, -0.4, 1.4,  0.6, -2.1, 1.2,  0.7};
    hess_status st = HESS_OK;
    for (int k = 0; k < N_RED && st == HESS_OK; k++) {
        hess_tensor *p[2];
        red_params(ctx, x0, p);
        hess_tensor *r = red_model(ctx, k, p[0], p[1]), *L = red_loss(ctx, r);
        double *o = out + k * OOM_PER;
        hess_hessian_opts ho = {0};
        ho.block_rows = 3;
        st = hess_context_status(ctx);
        if (st == HESS_OK)
            st = hess_jvp(ctx, L, 2, p, v, o);
        if (st == HESS_OK)
            st = hess_hessian_ex(ctx, L, 2, p, &ho, o + 1);
        if (st == HESS_OK)
            st = hess_hessian_diag(ctx, L, 2, p, o + 1 + BNP * BNP);
        if (st == HESS_OK)
            st = hess_jacobian(ctx, r, 2, p, o + 1 + BNP * BNP + BNP);
    }
    return st;
}

/* Every byte limit up to what the flow needs (byte_limit_sweep, alloc.h). */
static void test_reduce_out_of_memory(void **state)
{
    (void)state;
    byte_limit_sweep(red_oom_flow, OOM_OUT);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_refs_reduce_every_file_claimed),
        cmocka_unit_test(test_reduce_nonfinite_slices),
        cmocka_unit_test(test_reduce_var_correction_at_least_count),
        cmocka_unit_test(test_reduce_kinks_at_zero),
        cmocka_unit_test(test_reduce_shapes),
        cmocka_unit_test(test_reduce_extremes_every_axis_set),
        cmocka_unit_test(test_reduce_records_generic_builder),
        cmocka_unit_test(test_reduce_check_finite),
        cmocka_unit_test(test_reduce_batched_passes),
        cmocka_unit_test(test_reduce_diag_through_amax),
        cmocka_unit_test(test_reduce_out_of_memory),
    };
    const size_t nf = sizeof fixed / sizeof fixed[0];
    struct CMUnitTest tests[N_ROWS + sizeof fixed / sizeof fixed[0]];
    memcpy(tests, fixed, sizeof fixed);
    char names[N_ROWS][96];
    for (size_t i = 0; i < N_ROWS; i++) {
        snprintf(names[i], sizeof names[i], "ref_%s", rows[i].name);
        tests[nf + i] = (struct CMUnitTest){names[i], test_ref_case, NULL, NULL, &rows[i]};
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
