/*
 * test_grad.c -- table-driven derivative checks over the op registry.
 *
 * Each table entry names an op of the registry (ops/registry.c) and builds, from one to three
 * parameters, a scalar loss that runs the op and feeds its result through a
 * nonlinear head (sum(tanh(out * c)), c random constants), so the op's
 * cotangent varies with the parameters and every order of derivative passes
 * through its backward rule.  At several random points away from kinks:
 *   1. hess_grad against central differences of the loss value;
 *   2. hess_hessian (also in blocks of 1 and 2 rows, its diagonal and blocks),
 *      hess_hvp and hess_hvp_batch against central differences of the
 *      analytic gradient;
 *   3. the third derivative d/dx (u^T H(x) v), built by differentiating
 *      hess_grad's recorded gradient twice more, against central differences
 *      of hess_hvp, and the recorded H v against hess_hvp.
 * The table must cover every op (test_grad_table_covers_every_op), and each
 * entry must really put a node of its op on the tape (checked through the
 * internal tape, hess_internal.h); MATMUL entries name the transpose-flag
 * combinations they must produce.
 */
#include "check.h"
#include "hess_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* An op of the registry applied by name, as the generic builder does it (for
 * the ops no public function makes directly). */
static hess_tensor *op2(const char *name, hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    return hess__apply2(ctx, hess__op_find(name), a, b, name);
}

#define MAXN   48  /* total parameter elements of one entry */
#define NW     512 /* random constants per point */
#define POINTS 3   /* random points per entry */

#define H1        1e-6 /* step for the gradient from loss values */
#define H2        1e-5 /* step for second and third derivatives from gradients */
#define RTOL_G    1e-7
#define RTOL_H    1e-6
#define RTOL_T    1e-6
#define RTOL_SAME 1e-11 /* two exact routes to the same quantity */

/* ------------------------------------------------------------------------ */
/* The table                                                                */
/* ------------------------------------------------------------------------ */

typedef struct pspec {
    int ndim;
    int64_t shape[4];
    double lo, hi; /* values uniform in [lo, hi) */
    bool away0;    /* ... with a random sign: |x| in [lo, hi) */
} pspec;

/* What a builder gets: the context and this point's fixed random constants. */
typedef struct env {
    hess_context *ctx;
    const double *w;
    size_t used;
} env;

typedef hess_tensor *(*build_fn)(env *e, hess_tensor *const p[]);

/* Bit of a MATMUL node's transpose flags: FF (A B), FT (A B^T), TF, TT. */
#define MM_FF 1u
#define MM_FT 2u
#define MM_TF 4u
#define MM_TT 8u

typedef struct grad_case {
    const char *name; /* the cmocka test name */
    const char *op;   /* the name of the op record this entry exercises */
    build_fn build;
    int np;
    pspec p[3];
    bool in_grad;    /* the op first appears in the gradient graph */
    unsigned mm_fwd; /* MATMUL flags required on the forward tape */
    unsigned mm_any; /* ... anywhere in the forward, 2nd and 3rd order graphs */
} grad_case;

/* Constants shaped [shape], uniform in [lo, hi), the same on every rebuild. */
static hess_tensor *konst(env *e, int ndim, const int64_t *shape, double lo, double hi)
{
    double buf[128];
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    assert_true(n <= 128);
    for (int64_t i = 0; i < n; i++)
        buf[i] = lo + (hi - lo) * e->w[e->used++ % NW];
    return hess_tensor_new(e->ctx, ndim, shape, buf);
}

/* The nonlinear head: sum(tanh(t * c)). */
static hess_tensor *head(env *e, hess_tensor *t)
{
    if (!t)
        return NULL;
    hess_tensor *c = konst(e, hess_tensor_ndim(t), hess_tensor_shape(t), -1.2, 1.2);
    return hess_sum(e->ctx, hess_tanh(e->ctx, hess_mul(e->ctx, t, c)));
}

#define SHP(...)    ((const int64_t[]){__VA_ARGS__})
#define BUILD(name) static hess_tensor *b_##name(env *e, hess_tensor *const p[])
#define CTX         e->ctx

/* Elementwise binary ops, with broadcasting in every direction. */
BUILD(add_bcast)
{
    return head(e, hess_add(CTX, p[0], p[1]));
}
BUILD(add_outer)
{
    return head(e, hess_mul(CTX, hess_add(CTX, p[0], p[1]), p[0]));
}
BUILD(add_scalar)
{
    return head(e, hess_add(CTX, p[1], p[0]));
}
BUILD(sub_rank3)
{
    return head(e, hess_sub(CTX, p[0], p[1]));
}
BUILD(sub_rev)
{
    return head(e, hess_sub(CTX, p[1], hess_square(CTX, p[0])));
}
BUILD(mul_bcast)
{
    return head(e, hess_mul(CTX, p[0], p[1]));
}
BUILD(mul_self)
{
    return head(e, hess_mul(CTX, p[0], p[0]));
}
BUILD(div_bcast)
{
    return head(e, hess_div(CTX, p[0], p[1]));
}
BUILD(div_rev)
{
    return head(e, hess_div(CTX, p[1], p[0]));
}
/* AFFINE through hess_scale, hess_neg and hess_mean. */
BUILD(affine)
{
    hess_tensor *a = hess_scale(CTX, p[0], -1.7);
    hess_tensor *b = hess_neg(CTX, hess_mul(CTX, p[0], p[1]));
    return head(e, hess_add(CTX, a, b));
}
BUILD(mean)
{
    hess_tensor *m = hess_mean(CTX, hess_mul(CTX, p[0], p[0]));
    return head(e, hess_add(CTX, hess_mean_axis(CTX, p[0], 1), m));
}
/* Products: the public forms, then the internal transpose-flag forms. */
BUILD(matmul_mm)
{
    return head(e, hess_matmul(CTX, p[0], p[1]));
}
BUILD(matmul_batched)
{
    return head(e, hess_matmul(CTX, p[0], p[1]));
}
/* a vector with a matrix: one MATMUL node, outer products in its backward */
BUILD(matmul_mv)
{
    return head(e, hess_matmul(CTX, p[0], p[1]));
}
BUILD(matmul_vm)
{
    return head(e, hess_matmul(CTX, p[0], p[1]));
}
BUILD(mv_t)
{
    return head(e, hess__matmul_t(CTX, p[0], p[1], true, false, "test_grad"));
}
BUILD(vm_t)
{
    return head(e, hess__matmul_t(CTX, p[0], p[1], false, true, "test_grad"));
}
BUILD(linear_batch)
{
    hess_tensor *x = konst(e, 2, SHP(4, 3), -1, 1);
    return head(e, hess_linear(CTX, x, p[0], p[1]));
}
BUILD(linear_batch_x)
{
    return head(e, hess_linear(CTX, p[0], p[1], NULL));
}
BUILD(linear_vec)
{
    return head(e, hess_linear(CTX, p[0], p[1], p[2]));
}
/* the same loss with x a parameter batch [B,in]: the entry's shapes differ */
#define b_linear_x_w_b b_linear_vec
BUILD(mm_tf)
{
    return head(e, hess__matmul_t(CTX, p[0], p[1], true, false, "test_grad"));
}
BUILD(mm_ft)
{
    return head(e, hess__matmul_t(CTX, p[0], p[1], false, true, "test_grad"));
}
BUILD(mm_tt)
{
    return head(e, hess__matmul_t(CTX, p[0], p[1], true, true, "test_grad"));
}
BUILD(mm_tt_batched)
{
    return head(e, hess__matmul_t(CTX, p[0], p[1], true, true, "test_grad"));
}
/* every dimension >= 4, so that the AVX2 kernel (where the CPU has it) takes
 * the products of all three passes */
BUILD(mm_ff_wide)
{
    return head(e, hess_matmul(CTX, p[0], p[1]));
}
BUILD(mm_tt_wide)
{
    return head(e, hess__matmul_t(CTX, p[0], p[1], true, true, "test_grad"));
}
BUILD(mlp)
{
    hess_tensor *x = konst(e, 2, SHP(3, 2), -1, 1), *y = konst(e, 2, SHP(3, 2), -1, 1);
    hess_tensor *h = hess_tanh(CTX, hess_linear(CTX, x, p[0], p[1]));
    return hess_mse_loss(CTX, hess_linear(CTX, h, p[2], NULL), y);
}
BUILD(transpose)
{
    return head(e, hess_mul(CTX, hess_transpose(CTX, p[0]), p[1]));
}
BUILD(transpose_batched)
{
    return head(e, hess_transpose(CTX, p[0]));
}
BUILD(reshape)
{
    hess_tensor *r = hess_reshape(CTX, p[0], 2, SHP(3, 2));
    return head(e, hess_mul(CTX, r, hess_reshape(CTX, p[0], 3, SHP(3, 1, 2))));
}
/* a reshape of an op result shares its values: replays must see them */
BUILD(reshape_view)
{
    hess_tensor *r = hess_reshape(CTX, hess_sigmoid(CTX, p[0]), 2, SHP(3, 2));
    return head(e, hess_mul(CTX, hess_reshape(CTX, r, 1, SHP(6)), p[1]));
}
BUILD(reshape_scalar)
{
    return head(e, hess_mul(CTX, hess_reshape(CTX, p[0], 0, NULL), p[1]));
}
BUILD(sum_to)
{
    hess_tensor *a = hess_sum_to(CTX, p[0], 2, SHP(1, 3));
    hess_tensor *b = hess_sum_to(CTX, hess_square(CTX, p[0]), 2, SHP(2, 1));
    return head(e, hess_add(CTX, a, b));
}
BUILD(sum_axis)
{
    return head(e, hess_mul(CTX, hess_sum_axis(CTX, p[0], 1), hess_sum_axis(CTX, p[0], -1)));
}
BUILD(sum_all)
{
    return head(e, hess_mul(CTX, hess_sum(CTX, p[0]), p[0]));
}
BUILD(broadcast_to)
{
    hess_tensor *a = hess_broadcast_to(CTX, p[0], 2, SHP(2, 3));
    hess_tensor *b = hess_broadcast_to(CTX, p[1], 2, SHP(2, 3));
    return head(e, hess_mul(CTX, a, b));
}
/* Elementwise functions. */
BUILD(exp)
{
    return head(e, hess_exp(CTX, p[0]));
}
BUILD(log)
{
    return head(e, hess_log(CTX, p[0]));
}
BUILD(tanh)
{
    return head(e, hess_tanh(CTX, p[0]));
}
BUILD(sigmoid)
{
    return head(e, hess_sigmoid(CTX, p[0]));
}
/* The fused derivatives as forward ops, broadcasting both ways. */
BUILD(tanh_grad_bcast)
{
    return head(e, op2("tanh_grad", CTX, p[0], p[1]));
}
BUILD(sigmoid_grad_bcast)
{
    return head(e, op2("sigmoid_grad", CTX, p[1], p[0]));
}
BUILD(relu)
{
    return head(e, hess_mul(CTX, hess_relu(CTX, p[0]), p[1]));
}
/* alpha != 1, so that the first derivative jumps at 0 too */
BUILD(elu)
{
    return head(e, hess_elu(CTX, p[0], 0.7));
}
BUILD(softplus)
{
    return head(e, hess_softplus(CTX, p[0]));
}
BUILD(square)
{
    return head(e, hess_square(CTX, p[0]));
}
BUILD(sqrt)
{
    return head(e, hess_sqrt(CTX, p[0]));
}
BUILD(sin)
{
    return head(e, hess_sin(CTX, p[0]));
}
BUILD(cos)
{
    return head(e, hess_cos(CTX, p[0]));
}
BUILD(pow2)
{
    return head(e, hess_pow(CTX, p[0], 2.0));
}
BUILD(pow3)
{
    return head(e, hess_pow(CTX, p[0], 3.0));
}
BUILD(pow_frac)
{
    return head(e, hess_pow(CTX, p[0], 2.7));
}
BUILD(pow_neg)
{
    return head(e, hess_pow(CTX, p[0], -1.3));
}
BUILD(pow_half)
{
    return head(e, hess_pow(CTX, p[0], 0.5));
}
/* Softmax family and losses. */
BUILD(log_softmax_2d_0)
{
    return head(e, hess_log_softmax(CTX, p[0], 0));
}
BUILD(log_softmax_2d_1)
{
    return head(e, hess_log_softmax(CTX, p[0], -1));
}
BUILD(log_softmax_3d_0)
{
    return head(e, hess_log_softmax(CTX, p[0], 0));
}
BUILD(log_softmax_3d_1)
{
    return head(e, hess_log_softmax(CTX, p[0], 1));
}
BUILD(log_softmax_3d_2)
{
    return head(e, hess_log_softmax(CTX, p[0], 2));
}
BUILD(softmax_3d_1)
{
    return head(e, hess_softmax(CTX, p[0], -2));
}
BUILD(cross_entropy)
{
    hess_tensor *t = hess_tensor_new(CTX, 1, SHP(3), (const double[]){0, 3, 1});
    return head(e, hess_cross_entropy(CTX, p[0], t));
}
BUILD(cross_entropy_single)
{
    return head(e, hess_cross_entropy(CTX, p[0], hess_scalar(CTX, 2)));
}
BUILD(mse)
{
    return head(e, hess_mse_loss(CTX, p[0], konst(e, 2, SHP(2, 3), -1, 1)));
}
BUILD(mse_both)
{
    return head(e, hess_mse_loss(CTX, p[0], p[1]));
}
BUILD(bce)
{
    return head(e, hess_bce_with_logits(CTX, p[0], konst(e, 2, SHP(2, 2), 0, 1)));
}
/* targets are differentiated too (PyTorch's BCEWithLogitsLoss) */
BUILD(bce_both)
{
    return head(e, hess_bce_with_logits(CTX, p[0], p[1]));
}
/* detach on a path from constants only: the finite differences see what the
 * derivatives see (a detached parameter would differ from them by design) */
BUILD(detach)
{
    hess_tensor *c = hess_detach(CTX, hess_exp(CTX, konst(e, 1, SHP(3), -1, 1)));
    return head(e, hess_mul(CTX, p[0], c));
}

#define P(nd, lo_, hi_, ...)                                                                       \
    {                                                                                              \
        nd, {__VA_ARGS__}, lo_, hi_, false                                                         \
    }
#define PA(nd, lo_, hi_, ...)                                                                      \
    {                                                                                              \
        nd, {__VA_ARGS__}, lo_, hi_, true                                                          \
    }
#define P0(lo_, hi_)                                                                               \
    {                                                                                              \
        0, {0}, lo_, hi_, false                                                                    \
    }

#define CASE(n, o, np_, ...)                                                                       \
    {                                                                                              \
        .name = "test_grad_" #n, .op = o, .build = b_##n, .np = np_, .p = { __VA_ARGS__ }          \
    }
/* MATMUL and LINEAR entries also name the flag combinations they must produce. */
#define MMCASE_OP(n, o, fwd, any, np_, ...)                                                        \
    {                                                                                              \
        .name = "test_grad_" #n, .op = o, .build = b_##n, .np = np_, .p = {__VA_ARGS__},           \
        .mm_fwd = fwd, .mm_any = any                                                               \
    }
#define MMCASE(n, fwd, any, np_, ...) MMCASE_OP(n, "matmul", fwd, any, np_, __VA_ARGS__)

static grad_case cases[] = {
    CASE(add_bcast, "add", 2, P(2, -1, 1, 2, 3), P(1, -1, 1, 3)),
    CASE(add_outer, "add", 2, P(2, -1, 1, 2, 1), P(2, -1, 1, 1, 3)),
    CASE(add_scalar, "add", 2, P0(-1, 1), P(2, -1, 1, 2, 2)),
    CASE(sub_rank3, "sub", 2, P(3, -1, 1, 2, 1, 3), P(2, -1, 1, 2, 3)),
    CASE(sub_rev, "sub", 2, P(1, -1, 1, 3), P(2, -1, 1, 2, 3)),
    CASE(mul_bcast, "mul", 2, P(2, -1, 1, 2, 3), P(2, -1, 1, 2, 1)),
    CASE(mul_self, "mul", 1, P(1, -1.2, 1.2, 3)),
    CASE(div_bcast, "div", 2, P(2, -1, 1, 2, 3), P(1, 0.5, 1.5, 3)),
    CASE(div_rev, "div", 2, PA(2, 0.5, 1.5, 2, 2), P(1, -1, 1, 2)),
    CASE(affine, "affine", 2, P(2, -1, 1, 2, 2), P(1, -1, 1, 2)),
    CASE(mean, "affine", 1, P(2, -1, 1, 2, 3)),
    MMCASE(matmul_mm, MM_FF, MM_FF | MM_FT | MM_TF, 2, P(2, -1, 1, 2, 3), P(2, -1, 1, 3, 2)),
    MMCASE(matmul_batched,
           MM_FF,
           MM_FF | MM_FT | MM_TF,
           2,
           P(4, -1, 1, 2, 1, 2, 3),
           P(3, -1, 1, 3, 3, 2)),
    MMCASE(matmul_mv, MM_FF, MM_FF | MM_TT, 2, P(2, -1, 1, 2, 3), P(1, -1, 1, 3)),
    MMCASE(matmul_vm, MM_FF, MM_FF | MM_FT | MM_TT, 2, P(1, -1, 1, 2), P(2, -1, 1, 2, 3)),
    MMCASE(mv_t, MM_TF, MM_TF | MM_FT | MM_TT, 2, P(2, -1, 1, 3, 2), P(1, -1, 1, 3)),
    MMCASE(vm_t, MM_FT, MM_FT | MM_FF | MM_TT, 2, P(1, -1, 1, 3), P(2, -1, 1, 2, 3)),
    MMCASE_OP(linear_batch, "linear", MM_FT, MM_FT | MM_TF, 2, P(2, -1, 1, 2, 3), P(1, -1, 1, 2)),
    MMCASE(linear_batch_x, MM_FT, MM_FT | MM_FF | MM_TF, 2, P(2, -1, 1, 4, 3), P(2, -1, 1, 2, 3)),
    MMCASE_OP(linear_vec,
              "linear",
              MM_FF,
              MM_FF | MM_FT | MM_TT,
              3,
              P(1, -1, 1, 3),
              P(2, -1, 1, 2, 3),
              P(1, -1, 1, 2)),
    MMCASE_OP(linear_x_w_b,
              "linear",
              MM_FT,
              MM_FT | MM_TF | MM_FF,
              3,
              P(2, -1, 1, 3, 2),
              P(2, -1, 1, 2, 2),
              P(1, -1, 1, 2)),
    MMCASE(mm_tf, MM_TF, MM_TF | MM_FT | MM_FF, 2, P(2, -1, 1, 3, 2), P(2, -1, 1, 3, 2)),
    MMCASE(mm_ft, MM_FT, MM_FT | MM_FF | MM_TF, 2, P(2, -1, 1, 2, 3), P(2, -1, 1, 2, 3)),
    MMCASE(mm_tt, MM_TT, MM_TT, 2, P(2, -1, 1, 3, 2), P(2, -1, 1, 2, 3)),
    MMCASE(mm_tt_batched, MM_TT, MM_TT, 2, P(3, -1, 1, 2, 3, 2), P(2, -1, 1, 2, 3)),
    MMCASE(mm_ff_wide, MM_FF, MM_FF | MM_FT | MM_TF, 2, P(2, -1, 1, 4, 5), P(2, -1, 1, 5, 4)),
    MMCASE(mm_tt_wide, MM_TT, MM_TT, 2, P(2, -1, 1, 5, 4), P(2, -1, 1, 4, 5)),
    MMCASE(
        mlp, MM_FT, MM_FT | MM_FF | MM_TF, 3, P(2, -1, 1, 3, 2), P(1, -1, 1, 3), P(2, -1, 1, 2, 3)),
    CASE(transpose, "transpose", 2, P(2, -1, 1, 2, 3), P(2, -1, 1, 3, 2)),
    CASE(transpose_batched, "transpose", 1, P(3, -1, 1, 2, 2, 3)),
    CASE(reshape, "reshape", 1, P(2, -1, 1, 2, 3)),
    CASE(reshape_view, "reshape", 2, P(2, -1.5, 1.5, 2, 3), P(1, -1, 1, 6)),
    CASE(reshape_scalar, "reshape", 2, P(2, -1, 1, 1, 1), P(1, -1, 1, 3)),
    CASE(sum_to, "sum_to", 1, P(2, -1, 1, 2, 3)),
    CASE(sum_axis, "sum_to", 1, P(3, -1, 1, 2, 2, 2)),
    CASE(sum_all, "sum_to", 1, P(1, -1, 1, 4)),
    CASE(broadcast_to, "broadcast_to", 2, P(1, -1, 1, 3), P(2, -1, 1, 2, 1)),
    CASE(exp, "exp", 1, P(2, -1, 1, 2, 2)),
    CASE(log, "log", 1, P(2, 0.5, 2, 2, 2)),
    CASE(tanh, "tanh", 1, P(2, -1.5, 1.5, 2, 2)),
    CASE(sigmoid, "sigmoid", 1, P(2, -2, 2, 2, 2)),
    /* TANH_GRAD and SIGMOID_GRAD are made by the backward passes of tanh and
     * sigmoid, and work as forward ops of their own */
    {.name = "test_grad_tanh_grad",
     .op = "tanh_grad",
     .build = b_tanh,
     .np = 1,
     .p = {P(2, -1.5, 1.5, 2, 2)},
     .in_grad = true},
    CASE(tanh_grad_bcast, "tanh_grad", 2, P(2, -1.5, 1.5, 2, 3), P(1, -1.5, 1.5, 3)),
    {.name = "test_grad_sigmoid_grad",
     .op = "sigmoid_grad",
     .build = b_sigmoid,
     .np = 1,
     .p = {P(2, -2, 2, 2, 2)},
     .in_grad = true},
    CASE(sigmoid_grad_bcast, "sigmoid_grad", 2, P(2, -4, 4, 2, 3), P(2, -1.5, 1.5, 2, 1)),
    CASE(relu, "relu", 2, PA(2, 0.05, 2, 3, 4), P(1, -1, 1, 4)),
    /* STEP is relu's derivative: it is made by the backward pass */
    {.name = "test_grad_step",
     .op = "step",
     .build = b_relu,
     .np = 2,
     .p = {PA(2, 0.05, 2, 3, 4), P(1, -1, 1, 4)},
     .in_grad = true},
    CASE(elu, "elu", 1, PA(2, 0.05, 2, 2, 3)),
    CASE(softplus, "softplus", 1, P(2, -2, 2, 2, 2)),
    CASE(square, "square", 1, P(1, -1.5, 1.5, 3)),
    CASE(sqrt, "sqrt", 1, P(1, 0.5, 2, 3)),
    CASE(sin, "sin", 1, P(2, -4, 4, 2, 3)),
    CASE(cos, "cos", 1, P(2, -4, 4, 2, 3)),
    CASE(pow2, "pow", 1, P(1, 0.5, 2, 3)),
    CASE(pow3, "pow", 1, PA(1, 0.3, 1.5, 3)),
    CASE(pow_frac, "pow", 1, P(1, 0.5, 2, 3)),
    CASE(pow_neg, "pow", 1, P(1, 0.5, 2, 3)),
    CASE(pow_half, "pow", 1, P(1, 0.5, 2, 3)),
    CASE(log_softmax_2d_0, "log_softmax", 1, P(2, -1.5, 1.5, 2, 3)),
    CASE(log_softmax_2d_1, "log_softmax", 1, P(2, -1.5, 1.5, 2, 3)),
    CASE(log_softmax_3d_0, "log_softmax", 1, P(3, -1.5, 1.5, 2, 3, 2)),
    CASE(log_softmax_3d_1, "log_softmax", 1, P(3, -1.5, 1.5, 2, 3, 2)),
    CASE(log_softmax_3d_2, "log_softmax", 1, P(3, -1.5, 1.5, 2, 3, 2)),
    CASE(softmax_3d_1, "softmax", 1, P(3, -1.5, 1.5, 2, 3, 2)),
    CASE(cross_entropy, "cross_entropy", 1, P(2, -1.5, 1.5, 3, 4)),
    CASE(cross_entropy_single, "cross_entropy", 1, P(1, -1.5, 1.5, 4)),
    /* ONE_HOT is made by cross_entropy's backward pass */
    {.name = "test_grad_one_hot",
     .op = "one_hot",
     .build = b_cross_entropy,
     .np = 1,
     .p = {P(2, -1.5, 1.5, 3, 4)},
     .in_grad = true},
    CASE(mse, "mse_loss", 1, P(2, -1, 1, 2, 3)),
    CASE(mse_both, "mse_loss", 2, P(3, -1, 1, 2, 2, 2), P(3, -1, 1, 2, 2, 2)),
    CASE(bce, "bce_with_logits", 1, P(2, -2, 2, 2, 2)),
    CASE(bce_both, "bce_with_logits", 2, P(2, -2, 2, 2, 2), P(2, 0.05, 0.95, 2, 2)),
    CASE(detach, "detach", 1, P(1, -1, 1, 3)),
};

#define N_CASES (sizeof cases / sizeof cases[0])

/* ------------------------------------------------------------------------ */
/* Coverage of the op list                                                  */
/* ------------------------------------------------------------------------ */

static void test_grad_table_covers_every_op(void **state)
{
    (void)state;
    char missing[512] = "";
    for (size_t op = 0; op < hess__op_count(); op++) {
        bool found = false;
        for (size_t i = 0; i < N_CASES; i++)
            found = found || strcmp(cases[i].op, hess__op_at(op)->name) == 0;
        if (!found)
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " %s",
                     hess__op_at(op)->name);
    }
    if (missing[0])
        fail_msg("ops of the registry without a test_grad entry:%s", missing);
    for (size_t i = 0; i < N_CASES; i++) {
        if (!hess__op_find(cases[i].op))
            fail_msg("%s names op %s, which the registry does not have", cases[i].name,
                     cases[i].op);
        assert_true(cases[i].np >= 1 && cases[i].np <= 3);
        assert_non_null(cases[i].build);
    }
    /* every op has a kernel and a rule, so every op is differentiable */
    for (size_t op = 0; op < hess__op_count(); op++) {
        const hess_op_def *d = hess__op_at(op);
        assert_non_null(d->forward);
        assert_non_null(d->formula);
        assert_true(d->arity >= 1 && d->arity <= HESS_MAX_SRC);
        if (!d->vjp)
            fail_msg("op %s has no backward rule", d->name);
    }
}

/* x^p for p = 0..3 is a polynomial: its first three derivatives are finite
 * everywhere, also at x = 0 and x < 0, where the table's points never go
 * (pow(0, p - k) with p - k < 0 must not leak in as 0 * Inf = NaN). */
static void test_grad_pow_integral_exponents_at_zero(void **state)
{
    (void)state;
    static const double ps[4] = {0, 1, 2, 3}, xs[3] = {0.0, -1.5, 0.75};
    char bad[1024] = "";
    for (int ip = 0; ip < 4; ip++)
        for (int ix = 0; ix < 3; ix++) {
            const double pw = ps[ip], x = xs[ix];
            hess_context *ctx = test_context();
            hess_tensor *t = hess_param_new(ctx, 1, (const int64_t[]){1}, &x);
            hess_tensor *y = hess_sum(ctx, hess_pow(ctx, t, pw)), *g1, *g2, *g3;
            assert_ok(ctx, hess_grad(ctx, y, 1, &t, &g1, HESS_CREATE_GRAPH));
            assert_ok(ctx, hess_grad(ctx, hess_sum(ctx, g1), 1, &t, &g2,
                                     HESS_CREATE_GRAPH | HESS_ALLOW_UNUSED));
            assert_ok(ctx, hess_grad(ctx, hess_sum(ctx, g2), 1, &t, &g3, HESS_ALLOW_UNUSED));
            double h;
            assert_ok(ctx, hess_hessian(ctx, y, 1, &t, &h));
            /* d^k/dx^k x^p = p (p-1) .. (p-k+1) x^(p-k), 0 once a factor is 0 */
            double want[4], got[4] = {hess_tensor_data(g1)[0], hess_tensor_data(g2)[0],
                                      hess_tensor_data(g3)[0], h};
            for (int k = 1; k <= 3; k++) {
                double c = 1;
                for (int j = 0; j < k; j++)
                    c *= pw - j;
                want[k - 1] = c == 0 ? 0.0 : c * pow(x, pw - k);
            }
            want[3] = want[1];
            static const char *names[4] = {"d/dx", "d2/dx2", "d3/dx3", "hess_hessian"};
            for (int k = 0; k < 4; k++)
                if (!(fabs(got[k] - want[k]) <= 1e-14 * (1 + fabs(want[k]))))
                    snprintf(bad + strlen(bad), sizeof bad - strlen(bad),
                             "\n  %s x^%g at x = %g: %g, expected %g", names[k], pw, x, got[k],
                             want[k]);
            hess_context_destroy(ctx);
        }
    if (bad[0])
        fail_msg("derivatives of hess_pow with integral exponents:%s", bad);
}

/* ------------------------------------------------------------------------ */
/* Running one entry                                                        */
/* ------------------------------------------------------------------------ */

typedef struct runner {
    const grad_case *gc;
    int point;
    hess_context *ctx;
    env e;
    double w[NW];
    hess_tensor *p[3];
    size_t off[4], N;
    double x[MAXN]; /* the point */
} runner;

static void set_params(runner *r, const double *x)
{
    for (int i = 0; i < r->gc->np; i++)
        assert_ok(r->ctx, hess_param_set(r->ctx, r->p[i], x + r->off[i]));
}

static hess_tensor *build(runner *r)
{
    r->e.used = 0;
    hess_tensor *L = r->gc->build(&r->e, r->p);
    if (!L)
        fail_msg("%s: building the loss failed: %s", r->gc->name, hess_context_errmsg(r->ctx));
    assert_ok(r->ctx, hess_context_status(r->ctx));
    assert_int_equal(hess_tensor_numel(L), 1);
    return L;
}

static void flatten(const runner *r, hess_tensor *const g[], double *out)
{
    for (int i = 0; i < r->gc->np; i++) {
        assert_non_null(g[i]);
        assert_int_equal(hess_tensor_numel(g[i]), hess_tensor_numel(r->p[i]));
        memcpy(out + r->off[i], hess_tensor_data(g[i]),
               (size_t)hess_tensor_numel(g[i]) * sizeof(double));
    }
}

static double loss_at(runner *r, const double *x)
{
    set_params(r, x);
    const hess_mark m = hess_context_mark(r->ctx);
    const double v = hess_tensor_data(build(r))[0];
    assert_ok(r->ctx, hess_context_rewind(r->ctx, m));
    return v;
}

static void grad_at(runner *r, const double *x, double *g)
{
    set_params(r, x);
    const hess_mark m = hess_context_mark(r->ctx);
    hess_tensor *L = build(r), *gt[3];
    assert_ok(r->ctx, hess_grad(r->ctx, L, (size_t)r->gc->np, r->p, gt, 0));
    flatten(r, gt, g);
    assert_ok(r->ctx, hess_context_rewind(r->ctx, m));
}

static double uhv_at(runner *r, const double *x, const double *u, const double *v)
{
    set_params(r, x);
    const hess_mark m = hess_context_mark(r->ctx);
    hess_tensor *L = build(r);
    double hv[MAXN];
    assert_ok(r->ctx, hess_hvp(r->ctx, L, (size_t)r->gc->np, r->p, v, hv));
    assert_ok(r->ctx, hess_context_rewind(r->ctx, m));
    double s = 0;
    for (size_t i = 0; i < r->N; i++)
        s += u[i] * hv[i];
    return s;
}

static double max_abs(const double *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* Fails unless |got - want| <= rtol * (|want| + max|want|) elementwise, naming
 * the entry, the point and the quantity. */
static void compare(
    const runner *r, const char *what, const double *got, const double *want, size_t n, double rtol)
{
    const double scale = max_abs(want, n) > 1e-8 ? max_abs(want, n) : 1e-8;
    for (size_t i = 0; i < n; i++) {
        const double err = fabs(got[i] - want[i]);
        if (!(err <= rtol * (fabs(want[i]) + scale)))
            fail_msg("%s, point %d: %s[%zu] = %.17g, expected %.17g (error %.3g, scale %.3g, "
                     "rtol %.1g)",
                     r->gc->name, r->point, what, i, got[i], want[i], err, scale, rtol);
    }
}

/* Which ops (their registry positions) and matmul flag combinations are on
 * the tape from node `from` on. */
static void scan_tape(const hess_context *ctx, int64_t from, bool *has_op, unsigned *mm)
{
    for (int64_t i = from; i < ctx->n_nodes; i++) {
        const hess_tensor *t = ctx->nodes[i];
        for (size_t op = 0; op < hess__op_count(); op++)
            if (hess__op_at(op) == t->def)
                has_op[op] = true;
        if (!strcmp(t->def->name, "matmul") || !strcmp(t->def->name, "linear"))
            *mm |= 1u << ((t->par.mm.ta ? 2 : 0) + (t->par.mm.tb ? 1 : 0));
    }
}

/* The registry position of the op named name. */
static size_t op_pos(const char *name)
{
    for (size_t op = 0; op < hess__op_count(); op++)
        if (!strcmp(hess__op_at(op)->name, name))
            return op;
    fail_msg("no op %s", name);
    return 0;
}

static void init_point(runner *r, const grad_case *gc, int point)
{
    memset(r, 0, sizeof *r);
    r->gc = gc;
    r->point = point;
    r->ctx = test_context();
    uint64_t s = 0x9e3779b97f4a7c15u ^ ((uint64_t)(gc - cases) + 1) * 0x100000001b3u ^
                 (uint64_t)(point + 1) * 0xbf58476d1ce4e5b9u;
    for (int i = 0; i < 8; i++)
        (void)rnd_uniform(&s, 0, 1); /* decorrelate nearby seeds */
    for (int i = 0; i < NW; i++)
        r->w[i] = rnd_uniform(&s, 0, 1);
    r->e.ctx = r->ctx;
    r->e.w = r->w;
    for (int i = 0; i < gc->np; i++) {
        const pspec *ps = &gc->p[i];
        int64_t n = 1;
        for (int d = 0; d < ps->ndim; d++)
            n *= ps->shape[d];
        r->off[i + 1] = r->off[i] + (size_t)n;
        assert_true(r->off[i + 1] <= MAXN);
        for (int64_t j = 0; j < n; j++) {
            double v = rnd_uniform(&s, ps->lo, ps->hi);
            if (ps->away0 && rnd_uniform(&s, 0, 1) < 0.5)
                v = -v;
            r->x[r->off[i] + (size_t)j] = v;
        }
        r->p[i] = hess_param_new(r->ctx, ps->ndim, ps->shape, r->x + r->off[i]);
        assert_non_null(r->p[i]);
    }
    r->N = r->off[gc->np];
}

/* The first and second derivative checks at r->x. */
static void check_first_second(runner *r, uint64_t *s)
{
    const size_t N = r->N, np = (size_t)r->gc->np;
    double ga[MAXN], fd[MAXN], xp[MAXN];
    static double Hfd[MAXN * MAXN], H[MAXN * MAXN], Hk[MAXN * MAXN];

    /* 1. the gradient against differences of the loss */
    grad_at(r, r->x, ga);
    for (size_t i = 0; i < N; i++) {
        memcpy(xp, r->x, N * sizeof *xp);
        xp[i] = r->x[i] + H1;
        const double fp = loss_at(r, xp);
        xp[i] = r->x[i] - H1;
        const double fm = loss_at(r, xp);
        fd[i] = (fp - fm) / (2 * H1);
    }
    compare(r, "gradient", ga, fd, N, RTOL_G);
    if (max_abs(ga, N) < 1e-6)
        fail_msg("%s: the gradient is zero: the entry tests nothing", r->gc->name);

    /* 2. the Hessian against differences of the analytic gradient */
    double gp[MAXN], gm[MAXN];
    for (size_t j = 0; j < N; j++) {
        memcpy(xp, r->x, N * sizeof *xp);
        xp[j] = r->x[j] + H2;
        grad_at(r, xp, gp);
        xp[j] = r->x[j] - H2;
        grad_at(r, xp, gm);
        for (size_t i = 0; i < N; i++)
            Hfd[i * N + j] = (gp[i] - gm[i]) / (2 * H2);
    }
    if (max_abs(Hfd, N * N) < 1e-6)
        fail_msg("%s: the Hessian is zero: the entry tests nothing", r->gc->name);

    set_params(r, r->x);
    const hess_mark m = hess_context_mark(r->ctx);
    hess_tensor *L = build(r);
    assert_ok(r->ctx, hess_hessian(r->ctx, L, np, r->p, H));
    compare(r, "hess_hessian", H, Hfd, N * N, RTOL_H);
    for (size_t i = 0; i < N; i++) /* symmetric to rounding */
        for (size_t j = 0; j < i; j++)
            assert_close(H[i * N + j], H[j * N + i], RTOL_SAME, RTOL_SAME * max_abs(H, N * N));

    /* in blocks of 1 and 2 rows (a partial last block when N is odd) */
    for (size_t k = 1; k <= 2; k++) {
        hess_hessian_opts o = {0};
        o.block_rows = k;
        assert_ok(r->ctx, hess_hessian_ex(r->ctx, L, np, r->p, &o, Hk));
        compare(r, k == 1 ? "hess_hessian_ex k=1" : "hess_hessian_ex k=2", Hk, H, N * N, RTOL_SAME);
    }
    double d[MAXN], dd[MAXN];
    assert_ok(r->ctx, hess_hessian_diag(r->ctx, L, np, r->p, d));
    for (size_t i = 0; i < N; i++)
        dd[i] = H[i * N + i];
    compare(r, "hess_hessian_diag", d, dd, N, RTOL_SAME);

    /* the block of the first and the last parameter */
    const size_t last = np - 1, ni = r->off[1], nj = r->off[np] - r->off[last];
    assert_ok(r->ctx, hess_hessian_block(r->ctx, L, r->p[0], r->p[last], Hk));
    for (size_t i = 0; i < ni; i++)
        compare(r, "hess_hessian_block", Hk + i * nj, H + i * N + r->off[last], nj, RTOL_SAME);

    /* H v for a random v, alone and three at a time */
    double V[3 * MAXN], HV[3 * MAXN], want[3 * MAXN], hv[MAXN];
    for (size_t i = 0; i < 3 * N; i++)
        V[i] = rnd_uniform(s, -1, 1);
    for (size_t q = 0; q < 3; q++)
        for (size_t i = 0; i < N; i++) {
            double acc = 0;
            for (size_t j = 0; j < N; j++)
                acc += Hfd[i * N + j] * V[q * N + j];
            want[q * N + i] = acc;
        }
    assert_ok(r->ctx, hess_hvp(r->ctx, L, np, r->p, V, hv));
    compare(r, "hess_hvp", hv, want, N, RTOL_H);
    assert_ok(r->ctx, hess_hvp_batch(r->ctx, L, np, r->p, 3, V, NULL, HV));
    compare(r, "hess_hvp_batch", HV, want, 3 * N, RTOL_H);
    compare(r, "hess_hvp_batch vs hess_hvp", HV, hv, N, RTOL_SAME);
    assert_ok(r->ctx, hess_context_rewind(r->ctx, m));
}

/* The third derivative d/dx (u^T H(x) v) built by three recorded passes,
 * against differences of hess_hvp; also checks the op's presence. */
static void check_third(runner *r, uint64_t *s, int64_t tape0)
{
    const size_t N = r->N, np = (size_t)r->gc->np;
    hess_context *ctx = r->ctx;
    double u[MAXN], v[MAXN], T[MAXN], Tfd[MAXN], xp[MAXN], hv_ref[MAXN], hv_graph[MAXN];
    for (size_t i = 0; i < N; i++) {
        u[i] = rnd_uniform(s, -1, 1);
        v[i] = rnd_uniform(s, -1, 1);
    }
    for (size_t k = 0; k < N; k++) {
        memcpy(xp, r->x, N * sizeof *xp);
        xp[k] = r->x[k] + H2;
        const double qp = uhv_at(r, xp, u, v);
        xp[k] = r->x[k] - H2;
        const double qm = uhv_at(r, xp, u, v);
        Tfd[k] = (qp - qm) / (2 * H2);
    }

    set_params(r, r->x);
    const hess_mark m = hess_context_mark(ctx);
    bool has_fwd[128] = {false}, has_any[128] = {false};
    assert_true(hess__op_count() <= 128);
    unsigned mm_fwd = 0, mm_any = 0;
    hess_tensor *L = build(r);
    scan_tape(ctx, tape0, has_fwd, &mm_fwd);
    assert_ok(ctx, hess_hvp(ctx, L, np, r->p, v, hv_ref));

    hess_tensor *g[3], *hv[3], *t3[3], *sv = NULL, *su = NULL;
    assert_ok(ctx, hess_grad(ctx, L, np, r->p, g, HESS_CREATE_GRAPH));
    for (size_t i = 0; i < np; i++) {
        hess_tensor *vt = hess_tensor_new(ctx, hess_tensor_ndim(r->p[i]),
                                          hess_tensor_shape(r->p[i]), v + r->off[i]);
        hess_tensor *d = hess_sum(ctx, hess_mul(ctx, g[i], vt));
        sv = sv ? hess_add(ctx, sv, d) : d;
    }
    assert_ok(ctx, hess_context_status(ctx));
    assert_ok(ctx, hess_grad(ctx, sv, np, r->p, hv, HESS_CREATE_GRAPH | HESS_ALLOW_UNUSED));
    flatten(r, hv, hv_graph);
    compare(r, "recorded H v vs hess_hvp", hv_graph, hv_ref, N, RTOL_SAME);
    for (size_t i = 0; i < np; i++) {
        hess_tensor *ut = hess_tensor_new(ctx, hess_tensor_ndim(r->p[i]),
                                          hess_tensor_shape(r->p[i]), u + r->off[i]);
        hess_tensor *d = hess_sum(ctx, hess_mul(ctx, hv[i], ut));
        su = su ? hess_add(ctx, su, d) : d;
    }
    assert_ok(ctx, hess_context_status(ctx));
    assert_ok(ctx, hess_grad(ctx, su, np, r->p, t3, HESS_CREATE_GRAPH | HESS_ALLOW_UNUSED));
    flatten(r, t3, T);
    compare(r, "third derivative d(u^T H v)/dx", T, Tfd, N, RTOL_T);

    /* the op is on the tape: forward, or anywhere in the derivative graphs */
    scan_tape(ctx, tape0, has_any, &mm_any);
    const char *opname = r->gc->op;
    const size_t pos = op_pos(opname);
    if (!r->gc->in_grad && !has_fwd[pos])
        fail_msg("%s: the loss has no %s node", r->gc->name, opname);
    if (!has_any[pos])
        fail_msg("%s: no %s node in the loss or its derivative graphs", r->gc->name, opname);
    if ((mm_fwd & r->gc->mm_fwd) != r->gc->mm_fwd)
        fail_msg("%s: forward matmul flags 0x%x lack 0x%x", r->gc->name, mm_fwd, r->gc->mm_fwd);
    if ((mm_any & r->gc->mm_any) != r->gc->mm_any)
        fail_msg("%s: matmul flags 0x%x in all graphs lack 0x%x", r->gc->name, mm_any,
                 r->gc->mm_any);
    assert_ok(ctx, hess_context_rewind(ctx, m));
}

static void test_grad_case(void **state)
{
    const grad_case *gc = *state;
    for (int point = 0; point < POINTS; point++) {
        runner r;
        init_point(&r, gc, point);
        uint64_t s = 0x2545f4914f6cdd1du + (uint64_t)point * 7919u + (uint64_t)(gc - cases);
        const int64_t tape0 = r.ctx->n_nodes;
        check_first_second(&r, &s);
        check_third(&r, &s, tape0);
        /* every check left the context as it found it */
        assert_int_equal(r.ctx->n_nodes, tape0);
        assert_memory_equal(hess_tensor_data(r.p[0]), r.x, r.off[1] * sizeof(double));
        hess_context_destroy(r.ctx);
    }
}

/* mse_loss's rule with a batched cotangent, as a batched pass would send it
 * (no rule builds an mse_loss node, so the table never gets there): g [K]
 * gives dA [K, ...] = g_q 2 (a - b) / numel, and dB its negative. */
static void test_grad_mse_batched_cotangent(void **state)
{
    (void)state;
    hess_context *ctx;
    assert_int_equal(hess_context_create(NULL, &ctx), HESS_OK);
    const double a[6] = {1, -2, 0.5, 3, 0, -1}, b[6] = {0.5, 1, 1, -1, 2, -1};
    const int64_t shape[2] = {2, 3}, ks[1] = {2};
    hess_tensor *p[2] = {hess_param_new(ctx, 2, shape, a), hess_param_new(ctx, 2, shape, b)};
    hess_tensor *L = hess_mse_loss(ctx, p[0], p[1]);
    hess_tensor *seed = hess_tensor_new(ctx, 1, ks, (const double[]){1.5, -2});
    hess_tensor *g[2];
    assert_int_equal(hess__backward(ctx, 1, &L, &seed, 2, p, g, 0, 2, "test", "params"), HESS_OK);
    double want[12];
    for (int q = 0; q < 2; q++)
        for (int i = 0; i < 6; i++)
            want[q * 6 + i] = (q ? -2.0 : 1.5) * 2.0 * (a[i] - b[i]) / 6.0;
    for (int s = 0; s < 2; s++) {
        assert_int_equal(hess_tensor_ndim(g[s]), 3);
        assert_int_equal(hess_tensor_shape(g[s])[0], 2);
        for (int i = 0; i < 12; i++)
            assert_true(fabs(hess_tensor_data(g[s])[i] - (s ? -want[i] : want[i])) <= 1e-15);
    }
    hess_context_destroy(ctx);
}

int main(void)
{
    struct CMUnitTest tests[N_CASES + 3];
    tests[0] = (struct CMUnitTest)cmocka_unit_test(test_grad_table_covers_every_op);
    tests[1] = (struct CMUnitTest)cmocka_unit_test(test_grad_pow_integral_exponents_at_zero);
    tests[2] = (struct CMUnitTest)cmocka_unit_test(test_grad_mse_batched_cotangent);
    for (size_t i = 0; i < N_CASES; i++)
        tests[i + 3] = (struct CMUnitTest){cases[i].name, test_grad_case, NULL, NULL, &cases[i]};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
