/*
 * newton_logistic.c -- Newton's method with the full Hessian, for L2-regularised
 * logistic regression, checked against the closed form.
 *
 * The story, top to bottom:
 *
 *  1. Data.  200 samples of 5 features, uniform in [-1, 1], made with a
 *     xorshift64 generator from a fixed seed (so every run and every machine
 *     sees the same numbers).  Each label is drawn from the model itself:
 *     y = 1 with probability sigmoid(x . w_true + b_true), else 0, which puts
 *     label noise in the data (some labels disagree with the sign of the
 *     true logit) and keeps the classes from being separable.
 *
 *  2. The loss, with libhessian ops only (include/hessian.h):
 *
 *         loss(w, b) = mean_i [softplus(z_i) - y_i z_i] + (lambda/2) ||w||^2,
 *         z = X w + b,  lambda = 1e-2,
 *
 *     i.e. hess_bce_with_logits(hess_linear(X, W, b), y) with W shaped [1, 5]
 *     (PyTorch's nn.Linear(5, 1)), plus hess_scale(hess_sum(hess_square(W))).
 *     The parameters, flattened in the order given, are theta = [w1..w5, b].
 *
 *  3. Newton's method.  Each step builds the loss inside a
 *     hess_context_mark / hess_context_rewind scope, takes the gradient g
 *     (hess_grad) and the full 6 x 6 Hessian H (hess_hessian_ex, whose
 *     progress callback draws a bar on stderr when stderr is a terminal and
 *     is left out otherwise), solves H delta = g by a Cholesky factorisation
 *     written below, and sets theta -= delta (hess_param_set).  H is positive
 *     definite everywhere: lambda I covers any direction that moves w, and
 *     the data term mean p(1-p) > 0 covers b alone, so the step is always
 *     defined.  (Full Newton steps are not guaranteed to converge from any
 *     start; from 0 on this data they do, with no line search.)  Near the
 *     optimum convergence is quadratic: the exponent of ||g|| roughly
 *     doubles per step.  It stops when
 *     ||g|| < 1e-10, or fails after 20 steps.
 *
 *  4. Checks without the library, at the final parameters, with p =
 *     sigmoid(X w + b) and X~ = [X, 1] (a column of ones for the intercept):
 *
 *         gradient  X^T (p - y) / n + lambda w  and  mean(p - y):  norm < 1e-9
 *         Hessian   X~^T diag(p (1 - p)) X~ / n + lambda I (on the w block),
 *                   against libhessian's: max |H - H_cf| / max |H_cf| < 1e-10.
 *
 * Exit status: 0 converged and both checks pass; 1 no convergence in 20 steps,
 * a Hessian that is not positive definite, or a check above its limit; 2 an
 * argument was given (the program takes none); 3 a library call failed (the
 * context's message goes to stderr).
 */
#include "hessian.h"
#include "progress.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>

enum { NL_OK = 0, NL_FAILED = 1, NL_BAD_ARGS = 2, NL_LIBRARY_ERROR = 3 };

#define N_SAMPLES  200
#define N_FEATURES 5
#define N_PARAMS   (N_FEATURES + 1) /* theta = [w1..w5, b] */
#define LAMBDA     1e-2
#define SEED       UINT64_C(0x9E3779B97F4A7C15)

#define GRAD_TOL   1e-10 /* Newton stops below this ||g|| */
#define MAX_STEPS  20
#define CHECK_GRAD 1e-9  /* limit of the closed-form gradient's norm */
#define CHECK_HESS 1e-10 /* limit of the Hessian's relative deviation */

/* The weights the labels are drawn from. */
static const double w_true[N_FEATURES] = {1.5, -2.0, 0.75, 0.0, 1.0};
static const double b_true = -0.5;

/* ------------------------------------------------------------------------ */
/* 1. The data                                                              */
/* ------------------------------------------------------------------------ */

/* xorshift64 (Marsaglia 2003): a deterministic stream of 64-bit numbers. */
static uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* Uniform in [0, 1), from the top 53 bits. */
static double uniform(uint64_t *state)
{
    return (double)(xorshift64(state) >> 11) * 0x1.0p-53;
}

/* 1 / (1 + exp(-z)) without overflow for any z. */
static double sigmoid(double z)
{
    if (z >= 0.0)
        return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

/* Fills X (row-major [n, d]) and y; returns how many labels disagree with sign(true logit). */
static int make_data(double X[N_SAMPLES * N_FEATURES], double y[N_SAMPLES])
{
    uint64_t state = SEED;
    int noisy = 0;
    for (int i = 0; i < N_SAMPLES; i++) {
        double z = b_true;
        for (int j = 0; j < N_FEATURES; j++) {
            X[i * N_FEATURES + j] = 2.0 * uniform(&state) - 1.0;
            z += X[i * N_FEATURES + j] * w_true[j];
        }
        y[i] = uniform(&state) < sigmoid(z) ? 1.0 : 0.0;
        noisy += (y[i] == 1.0) != (z > 0.0);
    }
    return noisy;
}

/* ------------------------------------------------------------------------ */
/* Solving H delta = g: Cholesky, H = L L^T                                 */
/* ------------------------------------------------------------------------ */

/* Solves H x = g for symmetric positive definite H (n x n); returns -1 if it is not. */
static int cholesky_solve(int n, const double *H, const double *g, double *x)
{
    double L[N_PARAMS * N_PARAMS] = {0};
    for (int j = 0; j < n; j++) {
        double d = H[j * n + j];
        for (int k = 0; k < j; k++)
            d -= L[j * n + k] * L[j * n + k];
        if (!(d > 0.0))
            return -1;
        L[j * n + j] = sqrt(d);
        for (int i = j + 1; i < n; i++) {
            double s = H[i * n + j];
            for (int k = 0; k < j; k++)
                s -= L[i * n + k] * L[j * n + k];
            L[i * n + j] = s / L[j * n + j];
        }
    }
    for (int i = 0; i < n; i++) { /* L u = g */
        double s = g[i];
        for (int k = 0; k < i; k++)
            s -= L[i * n + k] * x[k];
        x[i] = s / L[i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) { /* L^T x = u */
        double s = x[i];
        for (int k = i + 1; k < n; k++)
            s -= L[k * n + i] * x[k];
        x[i] = s / L[i * n + i];
    }
    return 0;
}

static double norm2(int n, const double *v)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += v[i] * v[i];
    return sqrt(s);
}

/* ------------------------------------------------------------------------ */
/* 2. The loss with libhessian                                              */
/* ------------------------------------------------------------------------ */

/* Reports a failed library call with the context's message. */
static int library_error(const hess_context *ctx, const char *what, hess_status st)
{
    fprintf(stderr, "newton_logistic: %s failed: %s: %s\n", what, hess_status_str(st),
            hess_context_errmsg(ctx));
    return NL_LIBRARY_ERROR;
}

/* loss = BCEWithLogits(X W^T + b, y) + (lambda/2) sum(W^2); NULL with the error in ctx. */
static hess_tensor *
build_loss(hess_context *ctx, hess_tensor *X, hess_tensor *y, hess_tensor *W, hess_tensor *b)
{
    /* Builders pass a NULL operand on, so the caller checks the result once. */
    hess_tensor *logits = hess_linear(ctx, X, W, b); /* [n, 1] */
    hess_tensor *data_term = hess_bce_with_logits(ctx, logits, y);
    hess_tensor *penalty = hess_scale(ctx, hess_sum(ctx, hess_square(ctx, W)), 0.5 * LAMBDA);
    return hess_add(ctx, data_term, penalty);
}

/* ------------------------------------------------------------------------ */
/* 4. The closed form, in plain C                                           */
/* ------------------------------------------------------------------------ */

/*
 * At theta = [w, b]: the gradient g_cf and the Hessian H_cf (N_PARAMS^2,
 * row-major) of the loss, from p = sigmoid(X w + b) and X~ = [X, 1].
 */
static void
closed_form(const double *X, const double *y, const double *theta, double *g_cf, double *H_cf)
{
    for (int a = 0; a < N_PARAMS; a++) {
        g_cf[a] = 0.0;
        for (int c = 0; c < N_PARAMS; c++)
            H_cf[a * N_PARAMS + c] = 0.0;
    }
    for (int i = 0; i < N_SAMPLES; i++) {
        double xt[N_PARAMS]; /* row i of X~ */
        double z = theta[N_FEATURES];
        for (int j = 0; j < N_FEATURES; j++) {
            xt[j] = X[i * N_FEATURES + j];
            z += xt[j] * theta[j];
        }
        xt[N_FEATURES] = 1.0;
        double p = sigmoid(z);
        for (int a = 0; a < N_PARAMS; a++) {
            g_cf[a] += xt[a] * (p - y[i]) / N_SAMPLES;
            for (int c = 0; c < N_PARAMS; c++)
                H_cf[a * N_PARAMS + c] += xt[a] * p * (1.0 - p) * xt[c] / N_SAMPLES;
        }
    }
    for (int j = 0; j < N_FEATURES; j++) { /* the penalty acts on w, not on b */
        g_cf[j] += LAMBDA * theta[j];
        H_cf[j * N_PARAMS + j] += LAMBDA;
    }
}

/* ------------------------------------------------------------------------ */
/* 3. Newton's method, then the checks                                      */
/* ------------------------------------------------------------------------ */

static int run(hess_context *ctx)
{
    static double X_data[N_SAMPLES * N_FEATURES], y_data[N_SAMPLES];
    int noisy = make_data(X_data, y_data);

    printf("libhessian %s: Newton's method for L2-regularised logistic regression\n",
           hess_version_string());
    printf("data: %d samples, %d features + intercept, xorshift64 seed 0x%016llX\n", N_SAMPLES,
           N_FEATURES, (unsigned long long)SEED);
    printf("labels drawn from sigmoid(x.w_true + b_true): %d of %d disagree with the sign of "
           "the true logit\n",
           noisy, N_SAMPLES);
    printf("loss(w, b) = BCEWithLogits(X w + b, y) + (%g/2) ||w||^2, theta = [w1..w%d, b]\n\n",
           LAMBDA, N_FEATURES);

    /* The data and the parameters live for the whole run: made before any mark. */
    const int64_t X_shape[2] = {N_SAMPLES, N_FEATURES}, y_shape[2] = {N_SAMPLES, 1};
    const int64_t W_shape[2] = {1, N_FEATURES}, b_shape[1] = {1};
    double theta[N_PARAMS] = {0}; /* start at w = 0, b = 0 */
    hess_tensor *X = hess_tensor_new(ctx, 2, X_shape, X_data);
    hess_tensor *y = hess_tensor_new(ctx, 2, y_shape, y_data);
    hess_tensor *W = hess_param_new(ctx, 2, W_shape, theta);
    hess_tensor *b = hess_param_new(ctx, 1, b_shape, theta + N_FEATURES);
    if (!X || !y || !W || !b)
        return library_error(ctx, "making the tensors", hess_context_status(ctx));
    hess_tensor *const params[2] = {W, b};

    double g[N_PARAMS], H[N_PARAMS * N_PARAMS], delta[N_PARAMS];
    double loss_value = 0.0, g_norm = INFINITY;
    const hess_mark mark = hess_context_mark(ctx);
    size_t bytes_first = 0;
    int step = 0;
    printf("%4s  %17s  %10s  %10s\n", "step", "loss", "||g||", "||delta||");
    for (;; step++) {
        /* Everything built in this step is freed by the rewind at its end. */
        hess_status st = HESS_OK;
        hess_tensor *loss = build_loss(ctx, X, y, W, b);
        if (!loss)
            return library_error(ctx, "building the loss", hess_context_status(ctx));
        hess_tensor *grads[2];
        if ((st = hess_grad(ctx, loss, 2, params, grads, 0)) != HESS_OK)
            return library_error(ctx, "hess_grad", st);
        hess_hessian_opts opts = progress_opts();
        st = hess_hessian_ex(ctx, loss, 2, params, &opts, H);
        progress_done(&opts);
        if (st != HESS_OK)
            return library_error(ctx, "hess_hessian_ex", st);

        /* Copy out what outlives the rewind: the loss and g = [dL/dw, dL/db]. */
        loss_value = hess_tensor_data(loss)[0];
        for (int j = 0; j < N_FEATURES; j++)
            g[j] = hess_tensor_data(grads[0])[j];
        g[N_FEATURES] = hess_tensor_data(grads[1])[0];
        if ((st = hess_context_rewind(ctx, mark)) != HESS_OK)
            return library_error(ctx, "hess_context_rewind", st);
        if (step == 0)
            bytes_first = hess_context_bytes(ctx);

        g_norm = norm2(N_PARAMS, g);
        printf("%4d  %.15f  %10.3e", step, loss_value, g_norm);
        if (g_norm < GRAD_TOL || step == MAX_STEPS) {
            printf("  %10s\n", "-");
            break;
        }

        /* The Newton step: H delta = g, theta -= delta. */
        if (cholesky_solve(N_PARAMS, H, g, delta) != 0) {
            printf("\n");
            fprintf(stderr, "newton_logistic: the Hessian is not positive definite\n");
            return NL_FAILED;
        }
        printf("  %10.3e\n", norm2(N_PARAMS, delta));
        for (int k = 0; k < N_PARAMS; k++)
            theta[k] -= delta[k];
        if ((st = hess_param_set(ctx, W, theta)) != HESS_OK ||
            (st = hess_param_set(ctx, b, theta + N_FEATURES)) != HESS_OK)
            return library_error(ctx, "hess_param_set", st);
    }
    if (!(g_norm < GRAD_TOL)) {
        printf("did not converge in %d Newton steps: ||g|| = %.3e\n", MAX_STEPS, g_norm);
        return NL_FAILED;
    }
    printf("converged in %d Newton steps: ||g|| = %.3e < %g\n", step, g_norm, GRAD_TOL);
    printf("context memory: %zu bytes after the first step, %zu after the last\n", bytes_first,
           hess_context_bytes(ctx));

    printf("\n%-8s", "");
    for (int j = 0; j < N_FEATURES; j++)
        printf("  %8s%d", "w", j + 1);
    printf("  %9s\n%-8s", "b", "fitted");
    for (int k = 0; k < N_PARAMS; k++)
        printf("  %9.5f", theta[k]);
    printf("\n%-8s", "true");
    for (int j = 0; j < N_FEATURES; j++)
        printf("  %9.5f", w_true[j]);
    printf("  %9.5f\n", b_true);

    /* The checks: H still holds the Hessian at the final theta (the last step's). */
    double g_cf[N_PARAMS], H_cf[N_PARAMS * N_PARAMS];
    closed_form(X_data, y_data, theta, g_cf, H_cf);
    double g_cf_norm = norm2(N_PARAMS, g_cf);
    double dev = 0.0, scale = 0.0;
    for (int k = 0; k < N_PARAMS * N_PARAMS; k++) {
        dev = fmax(dev, fabs(H[k] - H_cf[k]));
        scale = fmax(scale, fabs(H_cf[k]));
    }
    double rel = dev / scale;
    int grad_ok = g_cf_norm < CHECK_GRAD, hess_ok = rel < CHECK_HESS;

    printf("\nchecks at the final theta, in plain C without libhessian (p = sigmoid(X w + b), "
           "X~ = [X, 1]):\n");
    printf("  gradient [X^T (p - y) / n + lambda w, mean(p - y)]:  norm %.3e  (limit %g)  %s\n",
           g_cf_norm, CHECK_GRAD, grad_ok ? "ok" : "FAIL");
    printf("  Hessian X~^T diag(p(1-p)) X~ / n + lambda I_w vs libhessian:\n"
           "    max |H - H_cf| / max |H_cf| = %.3e  (limit %g)  %s\n",
           rel, CHECK_HESS, hess_ok ? "ok" : "FAIL");
    if (!grad_ok || !hess_ok) {
        printf("FAIL: a check is above its limit\n");
        return NL_FAILED;
    }
    printf("PASS: both checks within their limits\n");
    return NL_OK;
}

int main(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "newton_logistic: takes no arguments\n");
        return NL_BAD_ARGS;
    }
    hess_context *ctx = NULL;
    hess_status st = hess_context_create(NULL, &ctx);
    if (st != HESS_OK) { /* no context, so no message beyond the status */
        fprintf(stderr, "newton_logistic: hess_context_create failed: %s\n", hess_status_str(st));
        return NL_LIBRARY_ERROR;
    }
    int status = run(ctx);
    hess_context_destroy(ctx);
    return status;
}
