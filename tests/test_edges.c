/*
 * test_edges.c -- numerical edges: the saturating functions at |x| up to 1000.
 * hess_sigmoid, hess_softplus, hess_log_softmax, hess_softmax,
 * hess_cross_entropy and hess_bce_with_logits at x in
 * {-1000, -100, -30, 0, 30, 100, 1000} must give finite values, gradients
 * (hess_grad) and Hessians (hess_hessian), equal to the exact formulas
 * evaluated stably here (sigmoid(1000) = 1 with derivative 0, softplus(-1000)
 * = 0, softplus(1000) = 1000, softplus' = sigmoid, log_softmax([1000, 0]) =
 * [0, -1000], cross-entropy's Hessian diag(p) - p p^T, ...).
 *
 * The gates silu, gelu, gelu_tanh and elu, and erf, get the same sweep of
 * value, derivative and second derivative (elu at 0: alpha and 0, PyTorch's);
 * hess_pow_t at a = 0 and hess_where with an infinite cotangent have their
 * first and second derivatives finite where PyTorch's conventions make them,
 * and abs, clamp, leaky_relu and maximum have PyTorch's derivatives at NaN.
 *
 * Tolerance: relative 1e-12 plus an absolute 1e-15 per unit of the quantity's
 * natural scale, so that values that underflow towards 0 (sigmoid'(30) is
 * 9.4e-14, computed as s(1 - s) with s rounded to 1 - 9.3e-14) are held to
 * the limit rather than to their last digits.
 */
#include "check.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define RTOL 1e-12
#define ATOL 1e-15

static const double XS[] = {-1000, -100, -30, 0, 30, 100, 1000};
#define NX ((int)(sizeof XS / sizeof XS[0]))

/* ------------------------------------------------------------------------ */
/* Exact formulas, evaluated without overflow or cancellation               */
/* ------------------------------------------------------------------------ */

static double sig(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    const double e = exp(x);
    return e / (1.0 + e);
}

/* sigmoid'(x) = s(x) s(-x): no 1 - s cancellation */
static double dsig(double x)
{
    return sig(x) * sig(-x);
}

/* sigmoid''(x) = s'(x) (s(-x) - s(x)) */
static double ddsig(double x)
{
    return dsig(x) * (sig(-x) - sig(x));
}

static double softplus(double x)
{
    return fmax(x, 0.0) + log1p(exp(-fabs(x)));
}

/* log-sum-exp and softmax of z[0..n-1] */
static double lse(const double *z, int n)
{
    double m = z[0];
    for (int i = 1; i < n; i++)
        m = fmax(m, z[i]);
    double s = 0;
    for (int i = 0; i < n; i++)
        s += exp(z[i] - m);
    return m + log(s);
}

static void softmax(const double *z, int n, double *p)
{
    const double l = lse(z, n);
    for (int i = 0; i < n; i++)
        p[i] = exp(z[i] - l);
}

/* ------------------------------------------------------------------------ */
/* Evaluation through the library                                           */
/* ------------------------------------------------------------------------ */

typedef struct eval {
    double value;
    double g[64];
    double H[64 * 64];
    size_t N;
} eval;

/* Value, gradient and Hessian of a scalar loss in its parameters; all finite. */
static void
evaluate(hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const p[], eval *e)
{
    assert_non_null(loss);
    assert_ok(ctx, hess_context_status(ctx));
    e->N = hess_param_count(n, p);
    assert_true(e->N <= 64);
    e->value = hess_tensor_data(loss)[0];
    hess_tensor *g[8];
    assert_ok(ctx, hess_grad(ctx, loss, n, p, g, 0));
    for (size_t i = 0, off = 0; i < n; off += (size_t)hess_tensor_numel(g[i]), i++)
        memcpy(e->g + off, hess_tensor_data(g[i]),
               (size_t)hess_tensor_numel(g[i]) * sizeof(double));
    assert_ok(ctx, hess_hessian(ctx, loss, n, p, e->H));
    if (!isfinite(e->value))
        fail_msg("loss value %g is not finite", e->value);
    for (size_t i = 0; i < e->N; i++) {
        if (!isfinite(e->g[i]))
            fail_msg("gradient[%zu] = %g is not finite", i, e->g[i]);
        for (size_t j = 0; j < e->N; j++) {
            const double h = e->H[i * e->N + j];
            if (!isfinite(h))
                fail_msg("Hessian[%zu][%zu] = %g is not finite", i, j, h);
            assert_close(h, e->H[j * e->N + i], RTOL, ATOL);
        }
    }
}

/* Compares e with the exact value, gradient and Hessian; scale is the
 * quantity's natural size for the absolute tolerance. */
static void expect(const eval *e,
                   double value,
                   const double *g,
                   const double *H,
                   double scale,
                   const char *what,
                   double x)
{
    const double atol = ATOL * scale;
    if (!(fabs(e->value - value) <= RTOL * fabs(value) + atol))
        fail_msg("%s at x = %g: value %.17g, exact %.17g", what, x, e->value, value);
    for (size_t i = 0; i < e->N; i++) {
        if (!(fabs(e->g[i] - g[i]) <= RTOL * fabs(g[i]) + atol))
            fail_msg("%s at x = %g: gradient[%zu] %.17g, exact %.17g", what, x, i, e->g[i], g[i]);
        for (size_t j = 0; j < e->N; j++) {
            const double a = e->H[i * e->N + j], b = H[i * e->N + j];
            if (!(fabs(a - b) <= RTOL * fabs(b) + atol))
                fail_msg("%s at x = %g: Hessian[%zu][%zu] %.17g, exact %.17g", what, x, i, j, a, b);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Scalar functions                                                         */
/* ------------------------------------------------------------------------ */

/* op at every XS: value, derivative and second derivative against f, df, ddf. */
static void sweep_unary(hess_context *ctx,
                        hess_tensor *(*op)(hess_context *, hess_tensor *),
                        double (*f)(double),
                        double (*df)(double),
                        double (*ddf)(double),
                        const char *name)
{
    for (int k = 0; k < NX; k++) {
        const double x = XS[k];
        const hess_mark m = hess_context_mark(ctx);
        hess_tensor *p = hess_param_new(ctx, 0, NULL, &x);
        eval e;
        evaluate(ctx, op(ctx, p), 1, &p, &e);
        const double g = df(x), H = ddf(x);
        expect(&e, f(x), &g, &H, 1.0, name, x);
        assert_ok(ctx, hess_context_rewind(ctx, m));
    }
}

static void test_sigmoid(void **state)
{
    sweep_unary(*state, hess_sigmoid, sig, dsig, ddsig, "sigmoid");
}

/* The limits themselves, exactly. */
static void test_sigmoid_limits(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = hess_param_new(ctx, 1, (const int64_t[]){2}, (const double[]){-1000, 1000});
    hess_tensor *s = hess_sigmoid(ctx, p);
    assert_non_null(s);
    assert_true(hess_tensor_data(s)[0] == 0.0);
    assert_true(hess_tensor_data(s)[1] == 1.0);
    hess_tensor *g;
    assert_ok(ctx, hess_grad(ctx, hess_sum(ctx, s), 1, &p, &g, 0));
    assert_true(hess_tensor_data(g)[0] == 0.0);
    assert_true(hess_tensor_data(g)[1] == 0.0);
}

/* softplus' = sigmoid, softplus'' = sigmoid' */
static void test_softplus(void **state)
{
    sweep_unary(*state, hess_softplus, softplus, sig, dsig, "softplus");
}

static void test_softplus_limits(void **state)
{
    hess_context *ctx = *state;
    hess_tensor *p = hess_param_new(ctx, 1, (const int64_t[]){2}, (const double[]){-1000, 1000});
    hess_tensor *s = hess_softplus(ctx, p);
    assert_non_null(s);
    assert_true(hess_tensor_data(s)[0] == 0.0);
    assert_true(hess_tensor_data(s)[1] == 1000.0);
    hess_tensor *g;
    assert_ok(ctx, hess_grad(ctx, hess_sum(ctx, s), 1, &p, &g, 0));
    assert_true(hess_tensor_data(g)[0] == 0.0);
    assert_true(hess_tensor_data(g)[1] == 1.0);
    double H[4];
    assert_ok(ctx, hess_hessian(ctx, hess_sum(ctx, s), 1, &p, H));
    for (int i = 0; i < 4; i++)
        assert_true(H[i] == 0.0);
}

/* ------------------------------------------------------------------------ */
/* log_softmax and softmax                                                  */
/* ------------------------------------------------------------------------ */

#define C 3
static const double W[C] = {0.3, -1.2, 2.0};

/* z = [x, 0, -x/2]: at x = 1000 the classes are 1500 apart. */
static void logits_at(double x, double *z)
{
    z[0] = x;
    z[1] = 0.0;
    z[2] = -0.5 * x;
}

static void test_log_softmax(void **state)
{
    hess_context *ctx = *state;
    for (int k = 0; k < NX; k++) {
        const double x = XS[k];
        double z[C], p[C], g[C], H[C * C], sw = 0, v = 0;
        logits_at(x, z);
        softmax(z, C, p);
        const double l = lse(z, C);
        for (int i = 0; i < C; i++) {
            sw += W[i];
            v += W[i] * (z[i] - l);
        }
        /* L = w . log_softmax(z): dL = w - p sum(w); d2L = -sum(w) (diag(p) - p p^T) */
        for (int i = 0; i < C; i++) {
            g[i] = W[i] - p[i] * sw;
            for (int j = 0; j < C; j++)
                H[i * C + j] = -sw * ((i == j ? p[i] : 0.0) - p[i] * p[j]);
        }
        const hess_mark m = hess_context_mark(ctx);
        hess_tensor *zp = hess_param_new(ctx, 1, (const int64_t[]){C}, z);
        hess_tensor *w = hess_tensor_new(ctx, 1, (const int64_t[]){C}, W);
        hess_tensor *ls = hess_log_softmax(ctx, zp, 0);
        assert_non_null(ls);
        /* z - lse rounds to the ulp of |x| */
        for (int i = 0; i < C; i++)
            assert_close(hess_tensor_data(ls)[i], z[i] - l, RTOL, ATOL * (1.0 + fabs(x)));
        eval e;
        evaluate(ctx, hess_sum(ctx, hess_mul(ctx, w, ls)), 1, &zp, &e);
        expect(&e, v, g, H, 1.0 + fabs(x), "log_softmax", x);
        assert_ok(ctx, hess_context_rewind(ctx, m));
    }
}

static void test_log_softmax_limits(void **state)
{
    hess_context *ctx = *state;
    /* rows [1000, 0], [0, 1000], [1000, -1000] along the last axis */
    const double z[6] = {1000, 0, 0, 1000, 1000, -1000};
    hess_tensor *zp = hess_param_new(ctx, 2, (const int64_t[]){3, 2}, z);
    hess_tensor *ls = hess_log_softmax(ctx, zp, -1);
    assert_non_null(ls);
    const double want[6] = {0, -1000, -1000, 0, 0, -2000};
    assert_memory_equal(hess_tensor_data(ls), want, sizeof want);
    /* along the first axis: column 0 is [1000, 0, 1000] */
    hess_tensor *l0 = hess_log_softmax(ctx, zp, 0);
    assert_non_null(l0);
    assert_close(hess_tensor_data(l0)[0], -log(2.0), RTOL, ATOL);
    assert_close(hess_tensor_data(l0)[2], -1000.0 - log(2.0), RTOL, ATOL);
    assert_close(hess_tensor_data(l0)[4], -log(2.0), RTOL, ATOL);
    /* softmax = exp(log_softmax): exactly one-hot here */
    hess_tensor *s = hess_softmax(ctx, zp, 1);
    assert_non_null(s);
    const double onehot[6] = {1, 0, 0, 1, 1, 0};
    assert_memory_equal(hess_tensor_data(s), onehot, sizeof onehot);
    eval e;
    evaluate(ctx, hess_sum(ctx, ls), 1, &zp, &e);
    /* d/dz sum_j log_softmax_j = 1 - C p = 1 - 2p: [-1, 1], [1, -1], [-1, 1] */
    const double g[6] = {-1, 1, 1, -1, -1, 1};
    assert_close_array(e.g, g, 6, RTOL, ATOL);
    for (size_t i = 0; i < 36; i++)
        assert_close(e.H[i], 0.0, 0, ATOL); /* p (1 - p) = 0 in every row */
}

static void test_softmax(void **state)
{
    hess_context *ctx = *state;
    for (int k = 0; k < NX; k++) {
        const double x = XS[k];
        double z[C], s[C], g[C], H[C * C], m = 0;
        logits_at(x, z);
        softmax(z, C, s);
        for (int i = 0; i < C; i++)
            m += W[i] * s[i];
        /* L = w . s: dL_i = s_i (w_i - m); d2L_ij = s_i (d_ij - s_j)(w_i - m) - s_i s_j (w_j - m)
         */
        for (int i = 0; i < C; i++) {
            g[i] = s[i] * (W[i] - m);
            for (int j = 0; j < C; j++)
                H[i * C + j] = s[i] * ((i == j) - s[j]) * (W[i] - m) - s[i] * s[j] * (W[j] - m);
        }
        const hess_mark mk = hess_context_mark(ctx);
        hess_tensor *zp = hess_param_new(ctx, 1, (const int64_t[]){C}, z);
        hess_tensor *w = hess_tensor_new(ctx, 1, (const int64_t[]){C}, W);
        eval e;
        evaluate(ctx, hess_sum(ctx, hess_mul(ctx, w, hess_softmax(ctx, zp, 0))), 1, &zp, &e);
        expect(&e, m, g, H, 1.0, "softmax", x);
        assert_ok(ctx, hess_context_rewind(ctx, mk));
    }
}

/* ------------------------------------------------------------------------ */
/* Losses                                                                   */
/* ------------------------------------------------------------------------ */

/* Cross-entropy over a batch: row b holds logits_at(XS[b]) and its target
 * cycles through the classes, so every extreme meets every target. */
static void test_cross_entropy_batch(void **state)
{
    hess_context *ctx = *state;
    for (int shift = 0; shift < C; shift++) {
        enum { B = NX };
        double z[B * C], t[B], g[B * C], p[B * C], v = 0;
        double *H = calloc((size_t)(B * C) * (B * C), sizeof *H);
        assert_non_null(H);
        for (int b = 0; b < B; b++) {
            logits_at(XS[b], z + b * C);
            t[b] = (double)((b + shift) % C);
            softmax(z + b * C, C, p + b * C);
            const int tb = (int)t[b];
            v += (lse(z + b * C, C) - z[b * C + tb]) / B;
            /* dL/dz_b = (p_b - e_t) / B; the Hessian is block diagonal:
             * (diag(p_b) - p_b p_b^T) / B */
            for (int i = 0; i < C; i++) {
                g[b * C + i] = (p[b * C + i] - (i == tb)) / B;
                for (int j = 0; j < C; j++)
                    H[(b * C + i) * (B * C) + b * C + j] =
                        ((i == j ? p[b * C + i] : 0.0) - p[b * C + i] * p[b * C + j]) / B;
            }
        }
        const hess_mark m = hess_context_mark(ctx);
        hess_tensor *zp = hess_param_new(ctx, 2, (const int64_t[]){B, C}, z);
        hess_tensor *tt = hess_tensor_new(ctx, 1, (const int64_t[]){B}, t);
        eval *e = malloc(sizeof *e);
        assert_non_null(e);
        evaluate(ctx, hess_cross_entropy(ctx, zp, tt), 1, &zp, e);
        expect(e, v, g, H, 1000.0, "cross_entropy (batch)", (double)shift);
        free(e);
        free(H);
        assert_ok(ctx, hess_context_rewind(ctx, m));
    }
}

/* The unbatched form: logits [2] = [x, 0] with each target. */
static void test_cross_entropy_single(void **state)
{
    hess_context *ctx = *state;
    for (int k = 0; k < NX; k++)
        for (int target = 0; target < 2; target++) {
            const double x = XS[k], z[2] = {x, 0.0};
            double p[2], g[2], H[4];
            softmax(z, 2, p);
            const double v = lse(z, 2) - z[target];
            for (int i = 0; i < 2; i++) {
                g[i] = p[i] - (i == target);
                for (int j = 0; j < 2; j++)
                    H[i * 2 + j] = (i == j ? p[i] : 0.0) - p[i] * p[j];
            }
            const hess_mark m = hess_context_mark(ctx);
            hess_tensor *zp = hess_param_new(ctx, 1, (const int64_t[]){2}, z);
            eval e;
            evaluate(ctx, hess_cross_entropy(ctx, zp, hess_scalar(ctx, target)), 1, &zp, &e);
            expect(&e, v, g, H, 1000.0, "cross_entropy", x);
            if (fabs(x) == 1000.0) /* the limits: loss 0 or 1000, gradient +-1 or 0 */
                assert_true(e.value == (x > 0 ? (target ? 1000.0 : 0.0) : (target ? 0.0 : 1000.0)));
            assert_ok(ctx, hess_context_rewind(ctx, m));
        }
}

static void test_bce_with_logits(void **state)
{
    hess_context *ctx = *state;
    static const double targets[3] = {0.0, 1.0, 0.3};
    for (int shift = 0; shift < 3; shift++) {
        double y[NX], g[NX], H[NX * NX] = {0}, v = 0;
        for (int i = 0; i < NX; i++) {
            const double x = XS[i];
            y[i] = targets[(i + shift) % 3];
            /* mean of softplus(x) - x y: gradient (s(x) - y)/n, Hessian diag(s'(x))/n */
            v += (softplus(x) - x * y[i]) / NX;
            g[i] = (sig(x) - y[i]) / NX;
            H[i * NX + i] = dsig(x) / NX;
        }
        const hess_mark m = hess_context_mark(ctx);
        hess_tensor *xp = hess_param_new(ctx, 1, (const int64_t[]){NX}, XS);
        hess_tensor *yt = hess_tensor_new(ctx, 1, (const int64_t[]){NX}, y);
        eval e;
        evaluate(ctx, hess_bce_with_logits(ctx, xp, yt), 1, &xp, &e);
        expect(&e, v, g, H, 1000.0, "bce_with_logits", (double)shift);
        assert_ok(ctx, hess_context_rewind(ctx, m));
    }
}

/* One logit at a time, as a [1] tensor: the limits exactly. */
static void test_bce_with_logits_limits(void **state)
{
    hess_context *ctx = *state;
    const struct {
        double x, y, loss, grad;
    } cases[] = {{1000, 1, 0, 0}, {1000, 0, 1000, 1}, {-1000, 0, 0, 0}, {-1000, 1, 1000, -1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        hess_tensor *xp = hess_param_new(ctx, 1, (const int64_t[]){1}, &cases[c].x);
        hess_tensor *yt = hess_tensor_new(ctx, 1, (const int64_t[]){1}, &cases[c].y);
        eval e;
        evaluate(ctx, hess_bce_with_logits(ctx, xp, yt), 1, &xp, &e);
        assert_true(e.value == cases[c].loss);
        assert_true(e.g[0] == cases[c].grad);
        assert_true(e.H[0] == 0.0);
    }
}

/* ------------------------------------------------------------------------ */
/* Inputs up to +-1e308 (issue #13 item 7): what the header claims finite   */
/* is finite, to the second derivative, also where an intermediate of the   */
/* backward graphs could overflow (the HESS_CHECK_FINITE run).               */
/* ------------------------------------------------------------------------ */

static const double XH[] = {-1e308, -1e300, -1e200, -1e20, -1.0, 0.0,
                            1.0,    1e20,   1e200,  1e300, 1e308};
#define NXH ((int)(sizeof XH / sizeof XH[0]))

/* softplus(x) - x y without overflow, the exact term of BCE with logits */
static double bce_term(double x, double y)
{
    return (x > 0 ? x * (1 - y) : -x * y) + log1p(exp(-fabs(x)));
}

/* BCE with logits: every logit with each target in {0, 0.5, 1}, one element
 * at a time (logit and target both differentiated) and all at once (a mean
 * of terms near DBL_MAX). */
static void test_bce_with_logits_huge(void **state)
{
    hess_context *ctx = *state;
    static const double ys[3] = {0.0, 0.5, 1.0};
    for (int k = 0; k < 3; k++) {
        double y[NXH];
        for (int i = 0; i < NXH; i++) {
            const double x = XH[i];
            y[i] = ys[k];
            const hess_mark m = hess_context_mark(ctx);
            hess_tensor *xp = hess_param_new(ctx, 1, (const int64_t[]){1}, &x);
            hess_tensor *yp = hess_param_new(ctx, 1, (const int64_t[]){1}, &y[i]);
            hess_tensor *ps[2] = {xp, yp};
            eval e;
            evaluate(ctx, hess_bce_with_logits(ctx, xp, yp), 2, ps, &e);
            /* d/dx = sigmoid(x) - y, d/dy = -x, d2/dx2 = sigmoid'(x), d2/dxdy = -1 */
            const double g[2] = {sig(x) - y[i], -x}, H[4] = {dsig(x), -1.0, -1.0, 0.0};
            expect(&e, bce_term(x, y[i]), g, H, 1.0, "bce_with_logits (huge)", x);
            assert_ok(ctx, hess_context_rewind(ctx, m));
        }
        const hess_mark m = hess_context_mark(ctx);
        hess_tensor *xp = hess_param_new(ctx, 1, (const int64_t[]){NXH}, XH);
        hess_tensor *yt = hess_tensor_new(ctx, 1, (const int64_t[]){NXH}, y);
        eval e;
        evaluate(ctx, hess_bce_with_logits(ctx, xp, yt), 1, &xp, &e);
        double v = 0.0;
        for (int i = 0; i < NXH; i++)
            v += bce_term(XH[i], y[i]) / NXH;
        if (!(fabs(e.value - v) <= 1e-12 * fabs(v)))
            fail_msg("bce mean over huge logits: %.17g, exact %.17g", e.value, v);
        assert_ok(ctx, hess_context_rewind(ctx, m));
    }
    /* terms whose plain sum overflows: the mean is still 1.5e308 */
    const hess_mark m = hess_context_mark(ctx);
    const double x2[2] = {1.5e308, -1.5e308}, y2[2] = {0.0, 1.0};
    hess_tensor *xp = hess_param_new(ctx, 1, (const int64_t[]){2}, x2);
    hess_tensor *yt = hess_tensor_new(ctx, 1, (const int64_t[]){2}, y2);
    eval e;
    evaluate(ctx, hess_bce_with_logits(ctx, xp, yt), 1, &xp, &e);
    assert_true(e.value == 1.5e308);
    assert_ok(ctx, hess_context_rewind(ctx, m));
}

/* One row z of log_softmax: its derivatives are finite even where its value
 * is -Inf (z more than DBL_MAX below the maximum; HESS_CHECK_FINITE refuses
 * the value itself then). */
static void log_softmax_row(hess_context *ctx, hess_tensor *zp, hess_tensor *w, bool representable)
{
    hess_tensor *ls = hess_log_softmax(ctx, zp, 0);
    if (!ls) {
        assert_false(representable);
        assert_int_equal(hess_context_status(ctx), HESS_ERR_NONFINITE);
        hess_context_clear_error(ctx);
        return;
    }
    hess_tensor *ps[1] = {zp}, *g[1];
    double H[9];
    assert_ok(ctx, hess_grad(ctx, hess_sum(ctx, hess_mul(ctx, ls, w)), 1, ps, g, 0));
    assert_ok(ctx, hess_hessian(ctx, hess_sum(ctx, hess_mul(ctx, ls, w)), 1, ps, H));
    for (int k = 0; k < 3; k++)
        assert_true(isfinite(hess_tensor_data(g[0])[k]));
    for (int k = 0; k < 9; k++)
        assert_true(isfinite(H[k]));
}

/* log_softmax, softmax and cross-entropy on rows of huge logits: values
 * finite where the result is representable (every logit within DBL_MAX of
 * the row's maximum), first and second derivatives finite everywhere. */
static void test_softmax_family_huge(void **state)
{
    hess_context *ctx = *state;
    for (int i = 0; i < NXH; i++)
        for (int j = 0; j < NXH; j++) {
            const double z[3] = {XH[i], XH[j], 0.5 * XH[i]};
            const double mx = fmax(z[0], fmax(z[1], z[2]));
            bool representable = true;
            for (int c = 0; c < 3; c++)
                representable = representable && mx - z[c] <= DBL_MAX;
            const hess_mark m = hess_context_mark(ctx);
            hess_tensor *zp = hess_param_new(ctx, 1, (const int64_t[]){3}, z);
            hess_tensor *w =
                hess_tensor_new(ctx, 1, (const int64_t[]){3}, (const double[]){0.2, -0.4, 0.3});
            /* cross-entropy at the row's arg max: its value is representable */
            const int am = z[0] >= z[1] ? (z[0] >= z[2] ? 0 : 2) : (z[1] >= z[2] ? 1 : 2);
            eval e;
            evaluate(ctx, hess_cross_entropy(ctx, zp, hess_scalar(ctx, (double)am)), 1, &zp, &e);
            /* softmax: its value is always finite */
            evaluate(ctx, hess_sum(ctx, hess_mul(ctx, hess_softmax(ctx, zp, 0), w)), 1, &zp, &e);
            if (representable)
                evaluate(ctx, hess_sum(ctx, hess_mul(ctx, hess_log_softmax(ctx, zp, 0), w)), 1, &zp,
                         &e);
            log_softmax_row(ctx, zp, w, representable);
            assert_ok(ctx, hess_context_rewind(ctx, m));
        }
}

/* ------------------------------------------------------------------------ */
/* The gates and erf                                                        */
/* ------------------------------------------------------------------------ */

#define INV_SQRT_2PI 0.39894228040143267794
#define GELU_K       0.79788456080286535588 /* sqrt(2 / pi) */
#define GELU_C       0.044715

static double silu(double x)
{
    return x * sig(x);
}
static double dsilu(double x)
{
    return sig(x) + x * dsig(x);
}
static double ddsilu(double x)
{
    return 2 * dsig(x) + x * ddsig(x);
}

/* Phi(x) = erfc(-x / sqrt 2) / 2 and the density phi: gelu = x Phi,
 * gelu' = Phi + x phi, gelu'' = phi (2 - x^2) */
static double Phi(double x)
{
    return 0.5 * erfc(-x / sqrt(2.0));
}
static double phi(double x)
{
    return exp(-0.5 * x * x) * INV_SQRT_2PI;
}
static double gelu(double x)
{
    return x * Phi(x);
}
static double dgelu(double x)
{
    return Phi(x) + x * phi(x);
}
static double ddgelu(double x)
{
    return phi(x) * (2 - x * x);
}

/* gelu_tanh = x S(z), z = 2k (x + c x^3): f' = S + x S' z',
 * f'' = 2 S' z' + x S'' z'^2 + x S' z'' */
static double gz(double x)
{
    return 2 * GELU_K * (x + GELU_C * x * x * x);
}
static double gelu_tanh(double x)
{
    return x * sig(gz(x));
}
static double dgelu_tanh(double x)
{
    return sig(gz(x)) + x * dsig(gz(x)) * 2 * GELU_K * (1 + 3 * GELU_C * x * x);
}
static double ddgelu_tanh(double x)
{
    const double z = gz(x), d1 = 2 * GELU_K * (1 + 3 * GELU_C * x * x),
                 d2 = 12 * GELU_K * GELU_C * x;
    return 2 * dsig(z) * d1 + x * ddsig(z) * d1 * d1 + x * dsig(z) * d2;
}

/* elu with alpha 0.7: at 0 the derivative is alpha and the second 0 */
static hess_tensor *elu07(hess_context *ctx, hess_tensor *a)
{
    return hess_elu(ctx, a, 0.7);
}
static double elu(double x)
{
    return x > 0 ? x : 0.7 * expm1(x);
}
static double delu(double x)
{
    return x > 0 ? 1 : 0.7 * exp(x);
}
static double ddelu(double x)
{
    return x < 0 ? 0.7 * exp(x) : 0;
}

static double derf(double x)
{
    return 1.12837916709551257390 * exp(-x * x);
}
static double dderf(double x)
{
    return -2 * x * derf(x);
}

static void test_gates(void **state)
{
    sweep_unary(*state, hess_silu, silu, dsilu, ddsilu, "silu");
    sweep_unary(*state, hess_gelu, gelu, dgelu, ddgelu, "gelu");
    sweep_unary(*state, hess_gelu_tanh, gelu_tanh, dgelu_tanh, ddgelu_tanh, "gelu_tanh");
    sweep_unary(*state, elu07, elu, delu, ddelu, "elu");
    sweep_unary(*state, hess_erf, erf, derf, dderf, "erf");
}

/* a^b at a = 0, b = 2 and b = 0: PyTorch's zero first derivatives (not
 * 0 * Inf), d2/da2 = 2 at b = 2, every other second derivative 0. */
static void test_pow_t_at_zero(void **state)
{
    hess_context *ctx = *state;
    const int64_t two[1] = {2};
    hess_tensor *p[2] = {hess_param_new(ctx, 1, two, (const double[]){0, 0}),
                         hess_param_new(ctx, 1, two, (const double[]){2, 0})};
    eval e;
    evaluate(ctx, hess_sum(ctx, hess_pow_t(ctx, p[0], p[1])), 2, p, &e);
    const double g[4] = {0, 0, 0, 0};
    double H[16] = {0};
    H[0] = 2;
    expect(&e, 1, g, H, 1.0, "pow_t", 0);
}

/* where(c, p, q) * w with w[0] = Inf where c picks p: q's gradient there is
 * exactly 0, not 0 * Inf */
static void test_where_infinite_cotangent(void **state)
{
    hess_context *ctx = *state;
    const int64_t two[1] = {2};
    hess_tensor *p[2] = {hess_param_new(ctx, 1, two, (const double[]){1, 2}),
                         hess_param_new(ctx, 1, two, (const double[]){3, 4})};
    hess_tensor *c = hess_tensor_new(ctx, 1, two, (const double[]){1, 0});
    hess_tensor *w = hess_tensor_new(ctx, 1, two, (const double[]){INFINITY, 1});
    hess_tensor *L = hess_sum(ctx, hess_mul(ctx, hess_where(ctx, c, p[0], p[1]), w)), *g[2];
    assert_ok(ctx, hess_grad(ctx, L, 2, p, g, 0));
    const double *gp = hess_tensor_data(g[0]), *gq = hess_tensor_data(g[1]);
    assert_true(gp[0] == INFINITY && gp[1] == 0 && gq[0] == 0 && gq[1] == 1);
}

/* PyTorch's derivatives at NaN: abs' = sign = 0, clamp' = 0 (outside
 * [lo, hi]), leaky_relu' = the slope, maximum's to both operands in full. */
static void test_nan_derivatives(void **state)
{
    hess_context *ctx = *state;
    const int64_t one[1] = {1};
    hess_tensor *p = hess_param_new(ctx, 1, one, (const double[]){NAN});
    hess_tensor *q = hess_param_new(ctx, 1, one, (const double[]){1});
    hess_tensor *ys[3] = {hess_abs(ctx, p), hess_clamp(ctx, p, -1, 1),
                          hess_leaky_relu(ctx, p, 0.25)};
    const double want[3] = {0, 0, 0.25};
    for (int i = 0; i < 3; i++) {
        hess_tensor *g;
        assert_ok(ctx, hess_grad(ctx, hess_sum(ctx, ys[i]), 1, &p, &g, 0));
        assert_true(hess_tensor_data(g)[0] == want[i]);
    }
    hess_tensor *pq[2] = {p, q}, *g[2];
    assert_ok(ctx, hess_grad(ctx, hess_sum(ctx, hess_maximum(ctx, p, q)), 2, pq, g, 0));
    assert_true(hess_tensor_data(g[0])[0] == 1 && hess_tensor_data(g[1])[0] == 1);
}

/* The same tests in a context that fails on any NaN or Inf, in the forward
 * pass or in any node of the backward graphs: no intermediate may overflow
 * even where the final result would come out finite. */
static int setup_checked(void **state)
{
    /* the default allocator, as setup_ctx: cmocka checks test_malloc blocks
     * before the teardown runs */
    const hess_config cfg = {NULL, NULL, NULL, 0, 0, HESS_CHECK_FINITE};
    hess_context *ctx = NULL;
    if (hess_context_create(&cfg, &ctx) != HESS_OK)
        return -1;
    *state = ctx;
    return 0;
}

#define BOTH(t)                                                                                    \
    cmocka_unit_test_setup_teardown(t, setup_ctx, teardown_ctx),                                   \
    {                                                                                              \
#t " (HESS_CHECK_FINITE)", t, setup_checked, teardown_ctx, NULL                            \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_sigmoid),
        BOTH(test_sigmoid_limits),
        BOTH(test_softplus),
        BOTH(test_softplus_limits),
        BOTH(test_log_softmax),
        BOTH(test_log_softmax_limits),
        BOTH(test_softmax),
        BOTH(test_cross_entropy_batch),
        BOTH(test_cross_entropy_single),
        BOTH(test_bce_with_logits),
        BOTH(test_bce_with_logits_limits),
        BOTH(test_bce_with_logits_huge),
        BOTH(test_softmax_family_huge),
        BOTH(test_gates),
        BOTH(test_pow_t_at_zero),
        cmocka_unit_test_setup_teardown(test_where_infinite_cotangent, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_nan_derivatives, setup_ctx, teardown_ctx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
