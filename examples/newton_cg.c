/*
 * newton_cg.c -- Hessian-free optimisation (truncated Newton, Martens 2010):
 * Newton steps solved by conjugate gradients on Hessian-vector products, for
 * a classifier of 101,770 parameters, never forming the Hessian.
 *
 *  1. Data and model.  256 samples of 784 features (uniform in [-1, 1],
 *     xorshift64 from a fixed seed), labelled by a random "teacher" network
 *     of the same shape: an MLP 784 -> 128 -> tanh -> 10 (W1 [128, 784],
 *     b1 [128], W2 [10, 128], b2 [10]: N = 101,770, bench/'s W2), with the
 *     mean cross-entropy loss (hess_cross_entropy) and a small L2 term.
 *
 *  2. One step.  The gradient g (hess_grad), then the damped Newton system
 *     (H + lambda I) d = g by hess_solve: CG on Hessian-vector products, to a
 *     relative residual of 1e-2 or 60 products, stopping at a direction of
 *     negative curvature (then d is still a descent direction).  The step
 *     theta -= alpha d takes the largest alpha in 1, 1/2, 1/4, ... that
 *     decreases the loss by at least 1e-4 alpha g.d (Armijo), and lambda
 *     follows the Levenberg-Marquardt rule: the ratio rho of the actual to
 *     the predicted decrease, lambda * 2/3 when rho > 3/4, * 3/2 when
 *     rho < 1/4.  hess_params_get / hess_params_axpy move the weights.
 *
 *  3. Output: one line per step (loss, |g|, CG products, residual, whether
 *     negative curvature was met, lambda, alpha), then the loss's decrease.
 *     It exits 0 when the loss fell below a third of its start in the steps
 *     given (--steps N, default 6), else 1.  Everything stays in memory
 *     O(N): the products reuse one graph (hess_solve keeps it open).
 *
 * Usage: newton_cg [--steps N]
 */
#include "hessian.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B   256
#define IN  784
#define HID 128
#define OUT 10
#define L2  1e-4
#define NP  4

static uint64_t rng = 0x9e3779b97f4a7c15u;

static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static void fill(double *x, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = scale * (2.0 * uniform() - 1.0);
}

typedef struct model {
    hess_context *ctx;
    hess_tensor *p[NP];
    hess_tensor *x, *t;
    size_t N;
} model;

/* The loss: mean cross-entropy of the MLP plus (L2 / 2) |W|^2. */
static hess_tensor *loss_of(model *m)
{
    hess_context *ctx = m->ctx;
    hess_tensor *h = hess_tanh(ctx, hess_linear(ctx, m->x, m->p[0], m->p[1]));
    hess_tensor *ce = hess_cross_entropy(ctx, hess_linear(ctx, h, m->p[2], m->p[3]), m->t);
    hess_tensor *reg = hess_add(ctx, hess_sum(ctx, hess_square(ctx, m->p[0])),
                                hess_sum(ctx, hess_square(ctx, m->p[2])));
    return hess_add(ctx, ce, hess_scale(ctx, reg, 0.5 * L2));
}

static int fail(const model *m, const char *what)
{
    fprintf(stderr, "newton_cg: %s: %s\n", what, hess_context_errmsg(m->ctx));
    return 1;
}

/* The teacher's labels: argmax of a random network of the same shape. */
static void make_data(double *X, double *labels)
{
    fill(X, (size_t)B * IN, 1.0);
    double *W1 = malloc(sizeof(double) * HID * IN), *W2 = malloc(sizeof(double) * OUT * HID);
    fill(W1, (size_t)HID * IN, 0.1);
    fill(W2, (size_t)OUT * HID, 1.0);
    for (int b = 0; b < B; b++) {
        double h[HID], best = -INFINITY;
        for (int j = 0; j < HID; j++) {
            double z = 0;
            for (int i = 0; i < IN; i++)
                z += W1[j * IN + i] * X[b * IN + i];
            h[j] = tanh(z);
        }
        for (int c = 0; c < OUT; c++) {
            double z = 0;
            for (int j = 0; j < HID; j++)
                z += W2[c * HID + j] * h[j];
            if (z > best) {
                best = z;
                labels[b] = c;
            }
        }
    }
    free(W1), free(W2);
}

int main(int argc, char **argv)
{
    int steps = 6;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc && atoi(argv[i + 1]) > 0) {
            steps = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: newton_cg [--steps N]\n");
            return 2;
        }
    }
    model m;
    memset(&m, 0, sizeof m);
    if (hess_context_create(NULL, &m.ctx) != HESS_OK)
        return 1;
    double *X = malloc(sizeof(double) * B * IN), labels[B];
    double *buf = malloc(sizeof(double) * HID * IN);
    make_data(X, labels);
    const int64_t shapes[NP][2] = {{HID, IN}, {HID, 0}, {OUT, HID}, {OUT, 0}};
    for (int i = 0; i < NP; i++) {
        const int nd = shapes[i][1] ? 2 : 1;
        const size_t n = (size_t)(shapes[i][0] * (nd == 2 ? shapes[i][1] : 1));
        fill(buf, n, i == 0 ? 1.0 / sqrt(IN) : i == 2 ? 1.0 / sqrt(HID) : 0.0);
        m.p[i] = hess_param_new(m.ctx, nd, shapes[i], buf);
    }
    m.x = hess_tensor_new(m.ctx, 2, (const int64_t[]){B, IN}, X);
    m.t = hess_tensor_new(m.ctx, 1, (const int64_t[]){B}, labels);
    free(X), free(buf);
    m.N = hess_param_count(NP, m.p);
    hess_tensor *L = loss_of(&m); /* built once; evaluated again as the weights move */
    if (!L)
        return fail(&m, "building the loss");
    printf("Hessian-free Newton-CG: MLP %d-%d-%d, cross-entropy, batch %d, N = %zu parameters\n",
           IN, HID, OUT, B, m.N);
    printf("step  loss after  |g| before   CG products  residual  neg.curv   lambda   alpha\n");

    double *g = malloc(m.N * sizeof *g), *d = malloc(m.N * sizeof *d),
           *Hd = malloc(m.N * sizeof *Hd);
    double *theta = malloc(m.N * sizeof *theta);
    double lambda = 1.0, loss0 = hess_tensor_data(L)[0], loss = loss0;
    size_t products = 0;
    for (int s = 0; s < steps; s++) {
        const hess_mark mk = hess_context_mark(m.ctx);
        hess_tensor *gt[NP];
        if (hess_grad(m.ctx, L, NP, m.p, gt, 0) != HESS_OK)
            return fail(&m, "hess_grad");
        double gn = 0;
        for (int i = 0, off = 0; i < NP; off += (int)hess_tensor_numel(gt[i]), i++)
            memcpy(g + off, hess_tensor_data(gt[i]), (size_t)hess_tensor_numel(gt[i]) * sizeof *g);
        for (size_t i = 0; i < m.N; i++)
            gn += g[i] * g[i];
        hess_context_rewind(m.ctx, mk);

        hess_hessian_opts o = {0};
        o.tol = 1e-2;
        o.max_iter = 60;
        hess_solve_info info;
        if (hess_solve(m.ctx, L, NP, m.p, g, lambda, &o, d, &info) != HESS_OK)
            return fail(&m, "hess_solve");
        products += info.iterations;
        /* predicted decrease of the quadratic model for the step -d:
         * g.d - d.(H + lambda I)d / 2 */
        if (hess_hvp(m.ctx, L, NP, m.p, d, Hd) != HESS_OK)
            return fail(&m, "hess_hvp");
        double gd = 0, dHd = 0;
        for (size_t i = 0; i < m.N; i++) {
            gd += g[i] * d[i];
            dHd += d[i] * (Hd[i] + lambda * d[i]);
        }
        if (hess_params_get(NP, m.p, theta) != HESS_OK)
            return fail(&m, "hess_params_get");
        double alpha = 1.0, next = loss;
        for (int tries = 0; tries < 30; tries++, alpha *= 0.5) {
            if (hess_params_set(m.ctx, NP, m.p, theta) != HESS_OK ||
                hess_params_axpy(m.ctx, NP, m.p, -alpha, d) != HESS_OK ||
                hess_recompute(m.ctx) != HESS_OK)
                return fail(&m, "the step");
            next = hess_tensor_data(L)[0];
            if (next <= loss - 1e-4 * alpha * gd)
                break;
        }
        const double predicted = alpha * gd - 0.5 * alpha * alpha * dHd;
        const double rho = predicted > 0 ? (loss - next) / predicted : 0.0;
        printf("%4d  %10.6f  %10.3e  %12zu  %8.1e  %8s  %7.2e  %6.4f\n", s + 1, next, sqrt(gn),
               info.iterations, info.rel_residual, info.negative_curvature ? "yes" : "no", lambda,
               alpha);
        lambda *= rho > 0.75 ? 2.0 / 3.0 : rho < 0.25 ? 1.5 : 1.0;
        loss = next;
    }
    printf(
        "loss %.6f -> %.6f in %d steps, %zu Hessian-vector products (N = %zu, no Hessian formed)\n",
        loss0, loss, steps, products, m.N);
    free(g), free(d), free(Hd), free(theta);
    hess_context_destroy(m.ctx);
    return loss < loss0 / 3.0 ? 0 : 1;
}
