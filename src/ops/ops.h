/*
 * ops.h -- the ops layer: every op is one record (core.h's hess_op_def) with
 * its kernel, shape rule and rules, in the file of its family, next to its
 * public builder.  This header gives what the families share: the generic
 * builder, the shape rules, broadcasting, the builders that rules use, and
 * the registry of every record (registry.c), which the tests and the
 * fuzzers take their list of ops from.
 */
#ifndef HESS_OPS_H
#define HESS_OPS_H

#include "../core/core.h"
#include "../kernels/kernels.h"

/* The signature of every vjp rule: gin[i] = cotangent of source i. */
#define HESS_VJP(name)                                                                             \
    void name(hess_context *ctx, const hess_pass *pass, hess_tensor *out, hess_tensor *g,          \
              hess_tensor *gin[HESS_MAX_SRC])

/* The signature of every jvp rule: the tangent of out from those of its
 * sources (tin[i] NULL: zero). */
#define HESS_JVP(name)                                                                             \
    hess_tensor *name(hess_context *ctx, const hess_pass *pass, hess_tensor *out,                  \
                      hess_tensor *const tin[HESS_MAX_SRC])

/* ------------------------------------------------------------------------ */
/* Building a node from its record (apply.c)                                */
/* ------------------------------------------------------------------------ */

/* Checks the def->arity sources (live tensors of ctx), asks def->shape for
 * the result's shape, makes the node with parameters *par (NULL: zeros) and
 * evaluates it.  NULL with the error recorded, naming fn, on failure; a NULL
 * source keeps the error that made it NULL. */
HESS_INTERNAL hess_tensor *hess__apply(hess_context *ctx,
                                       const hess_op_def *def,
                                       hess_tensor *const src[],
                                       const hess_op_params *par,
                                       const char *fn);
/* hess__apply for two sources. */
HESS_INTERNAL hess_tensor *hess__apply2(
    hess_context *ctx, const hess_op_def *def, hess_tensor *a, hess_tensor *b, const char *fn);
/* hess__apply for one source. */
HESS_INTERNAL hess_tensor *hess__apply1(hess_context *ctx,
                                        const hess_op_def *def,
                                        hess_tensor *a,
                                        const hess_op_params *par,
                                        const char *fn);

/* Shape rules: the result shaped like the first source; the sources
 * broadcast (NumPy); a scalar []. */
HESS_INTERNAL bool hess__shape_same(hess_context *ctx,
                                    hess_tensor *const src[],
                                    const hess_op_params *par,
                                    int *ndim,
                                    int64_t *shape,
                                    const char *fn);
HESS_INTERNAL bool hess__shape_bcast(hess_context *ctx,
                                     hess_tensor *const src[],
                                     const hess_op_params *par,
                                     int *ndim,
                                     int64_t *shape,
                                     const char *fn);
HESS_INTERNAL bool hess__shape_scalar(hess_context *ctx,
                                      hess_tensor *const src[],
                                      const hess_op_params *par,
                                      int *ndim,
                                      int64_t *shape,
                                      const char *fn);

/* Normalises a possibly negative axis of a in place; false with HESS_ERR_ARG
 * recorded (naming fn and the shape) when it is out of range. */
HESS_INTERNAL bool
hess__norm_axis(hess_context *ctx, const hess_tensor *a, int *axis, const char *fn);

/* ------------------------------------------------------------------------ */
/* Broadcasting (broadcast.c)                                               */
/* ------------------------------------------------------------------------ */

/* The broadcast shape of a and b, false if they do not broadcast. */
HESS_INTERNAL bool
hess__broadcast_shape(const hess_tensor *a, const hess_tensor *b, int *nd, int64_t *shape);

/* Calls row(k, off[], st_last[], n) for every row of the index space spanned by
 * shape[nd], where t[0..nt-1] (nt <= 3) are the operands; adjacent dimensions
 * that every operand walks contiguously are merged first, so same-shape
 * operands give one row and a bias add gives one row per sample. */
typedef void (*hess__row_fn)(void *k, const int64_t *off, const int64_t *st, int64_t n);
HESS_INTERNAL void hess__bcast_rows(
    int nd, const int64_t *shape, int nt, const hess_tensor *const t[], hess__row_fn row, void *k);

/* The rows of an elementwise kernel: out o, operands a and b. */
typedef struct hess__bin_args {
    double *o;
    const double *a, *b;
} hess__bin_args;

/* A row kernel and, on x86-64, its AVX2 copy name##_avx2 (same C, same bits):
 * the one a node's context picks. */
#if HESS_SIMD_X86
#define HESS_ROW_FOR(out, name) ((out)->ctx->simd ? name##_avx2 : name)
#else
#define HESS_ROW_FOR(out, name) name
#endif

/* The kernel of an elementwise binary op: out = F(a, b) by rows (below). */
HESS_INTERNAL void hess__binary_forward(hess_tensor *out, hess__row_fn row);

/* One row: o[i] = F(a[i*sa], b[i*sb]) with (sa, sb) = (st[1], st[2]) one of
 * (1, 1), (1, 0) or (0, 1), specialised so that the compiler vectorises each.
 * Those are the only strides hess__binary_forward passes: the result is
 * contiguous and its innermost dimension other than 1 is walked by every
 * operand that has it with stride 1, and it has at least one that does
 * (else the result's dimension would be 1); an operand of one element
 * repeats (0).  ATTR makes the AVX2 copy. */
#define HESS_BINARY_ROW_AS(name, F, ATTR)                                                          \
    ATTR static void name(void *k, const int64_t *off, const int64_t *st, int64_t n)               \
    {                                                                                              \
        hess__bin_args *g = k;                                                                     \
        double *o = g->o + off[0];                                                                 \
        const double *a = g->a + off[1], *b = g->b + off[2];                                       \
        if (st[2] == 0) {                                                                          \
            const double bv = b[0];                                                                \
            for (int64_t i = 0; i < n; i++)                                                        \
                o[i] = F(a[i], bv);                                                                \
        } else if (st[1] == 0) {                                                                   \
            const double av = a[0];                                                                \
            for (int64_t i = 0; i < n; i++)                                                        \
                o[i] = F(av, b[i]);                                                                \
        } else                                                                                     \
            for (int64_t i = 0; i < n; i++)                                                        \
                o[i] = F(a[i], b[i]);                                                              \
    }

/* name and, on x86-64, name_avx2: the kernels a context picks from
 * (ctx->simd), which give the same bits */
#if HESS_SIMD_X86
#define HESS_BINARY_ROW(name, F)                                                                   \
    HESS_BINARY_ROW_AS(name, F, )                                                                  \
    HESS_BINARY_ROW_AS(name##_avx2, F, HESS_AVX2)
#else
#define HESS_BINARY_ROW(name, F) HESS_BINARY_ROW_AS(name, F, )
#endif

/* The kernel NAME_forward of an elementwise binary op whose rows are NAME_row. */
#define HESS_BINARY_FORWARD(NAME)                                                                  \
    static void NAME##_forward(hess_tensor *out)                                                   \
    {                                                                                              \
        hess__binary_forward(out, HESS_ROW_FOR(out, NAME##_row));                                  \
    }

/* The record of an elementwise binary op NAME with its kernel NAME_forward and
 * rules NAME_vjp and NAME_jvp, flagged HESS_OPF_ELEMENTWISE | FLAGS: op_NAME. */
#define HESS_BINARY_RECORD(NAME, FORMULA, FLAGS)                                                   \
    static const hess_op_def op_##NAME = {.name = #NAME,                                           \
                                          .formula = FORMULA,                                      \
                                          .arity = 2,                                              \
                                          .flags = HESS_OPF_ELEMENTWISE | (FLAGS),                 \
                                          .shape = hess__shape_bcast,                              \
                                          .forward = NAME##_forward,                               \
                                          .vjp = NAME##_vjp,                                       \
                                          .jvp = NAME##_jvp};
/* ------------------------------------------------------------------------ */
/* Builders that rules and composites use                                   */
/* ------------------------------------------------------------------------ */

/* alpha a + beta; step(a) = [a > 0] (relu's derivative). */
HESS_INTERNAL hess_tensor *
hess__affine(hess_context *ctx, hess_tensor *a, double alpha, double beta);
HESS_INTERNAL hess_tensor *hess__step(hess_context *ctx, hess_tensor *a);
/* mask(a) = [lo <= a <= hi], 0 for NaN, with zero derivative (the derivative
 * of clamp; an open bound is the next double: [a < 0] is hi = -DBL_TRUE_MIN). */
HESS_INTERNAL hess_tensor *hess__mask(hess_context *ctx, hess_tensor *a, double lo, double hi);
/* softmax along an axis (negative from the end), one node. */
HESS_INTERNAL hess_tensor *hess__softmax(hess_context *ctx, hess_tensor *a, int axis);
/* [..., C] one-hot rows of class indices (cross_entropy's rule). */
HESS_INTERNAL hess_tensor *hess__one_hot(hess_context *ctx, hess_tensor *targets, int64_t C);

/* Losses (nn.c): out [] = def(a, b) with par.loss.alpha = alpha, and a leaf b
 * flagged HESS_T_CHECKED when the op checks its values; the cotangent g of a
 * loss ([] or [k]) times c, a batched g meeting c as [k, 1, ...]; a and b of
 * one shape, else HESS_ERR_SHAPE naming fn. */
HESS_INTERNAL hess_tensor *hess__loss_node(hess_context *ctx,
                                           const hess_op_def *def,
                                           hess_tensor *a,
                                           hess_tensor *b,
                                           double alpha,
                                           const char *fn);
/* The one-node losses with the reduction's factor: the mean's 1/count (mean)
 * or 1 (the sum); errors name fn.  The losses with options (loss.c) take
 * them where their options allow. */
HESS_INTERNAL hess_tensor *hess__mse_loss_reduced(
    hess_context *ctx, hess_tensor *pred, hess_tensor *target, bool mean, const char *fn);
HESS_INTERNAL hess_tensor *hess__cross_entropy_reduced(
    hess_context *ctx, hess_tensor *logits, hess_tensor *targets, bool mean, const char *fn);
HESS_INTERNAL hess_tensor *hess__bce_with_logits_reduced(
    hess_context *ctx, hess_tensor *logits, hess_tensor *targets, bool mean, const char *fn);
/* The jvp rule of an op whose result has one element, from its vjp rule. */
HESS_INTERNAL hess_tensor *hess__jvp_scalar(hess_context *ctx,
                                            const hess_pass *pass,
                                            hess_tensor *out,
                                            hess_tensor *const tin[HESS_MAX_SRC]);
HESS_INTERNAL hess_tensor *hess__scalar_times(hess_context *ctx, hess_tensor *g, hess_tensor *c);
HESS_INTERNAL bool hess__same_shape_or_fail(hess_context *ctx,
                                            const hess_tensor *a,
                                            const hess_tensor *b,
                                            const char *fn);

/* The shapes of cotangents in a pass: like's shape, behind the direction
 * dimension [k] in a batched pass (pass->k > 0).  sum_like / broadcast_like
 * sum or repeat a to that shape (a itself when it has it already);
 * reshape_like reshapes to it; zeros_like is a leaf of zeros of it. */
HESS_INTERNAL hess_tensor *
hess__sum_like(hess_context *ctx, const hess_pass *pass, hess_tensor *a, const hess_tensor *like);
HESS_INTERNAL hess_tensor *hess__broadcast_like(hess_context *ctx,
                                                const hess_pass *pass,
                                                hess_tensor *a,
                                                const hess_tensor *like);
HESS_INTERNAL hess_tensor *hess__reshape_like(hess_context *ctx,
                                              const hess_pass *pass,
                                              hess_tensor *a,
                                              const hess_tensor *like);
HESS_INTERNAL hess_tensor *
hess__zeros_like(hess_context *ctx, const hess_pass *pass, const hess_tensor *like);
/* Forward mode: a source's tangent t (NULL: zero) repeated to the shape of
 * the tangent of out (behind [k] in a batched pass), as the broadcast of an
 * elementwise op repeats the source; NULL stays NULL.  hess__add_or: a + b
 * where either may be NULL (zero). */
HESS_INTERNAL hess_tensor *
hess__lift(hess_context *ctx, const hess_pass *pass, hess_tensor *t, const hess_tensor *out);
HESS_INTERNAL hess_tensor *hess__add_or(hess_context *ctx, hess_tensor *a, hess_tensor *b);
/* The diagonal of the Hessian with respect to out per sample, from the
 * curvature f at out: sum_g sign_g sum_c F_g[c]^2 + D, shaped like out
 * (curv.c). */
HESS_INTERNAL hess_tensor *
hess__factor_sq(hess_context *ctx, const hess_factor *f, const hess_tensor *out);
/* rowwise predicates of the records (core.h): any source of the leading
 * dimension's size; a source of out's rank. */
HESS_INTERNAL bool hess__rowwise_any(const hess_tensor *out, int i);
HESS_INTERNAL bool hess__rowwise_same_rank(const hess_tensor *out, int i);
/* reshape, sum_to and broadcast_to to any shape of rank up to HESS_DIMS (the
 * public builders stop at HESS_MAX_DIMS): what rules use for batched
 * cotangents.  reshape_any returns a when it has the shape already. */
HESS_INTERNAL hess_tensor *
hess__reshape_any(hess_context *ctx, hess_tensor *a, int nd, const int64_t *shape);
HESS_INTERNAL hess_tensor *
hess__sum_to(hess_context *ctx, hess_tensor *a, int nd, const int64_t *shape);
HESS_INTERNAL hess_tensor *
hess__broadcast_to(hess_context *ctx, hess_tensor *a, int nd, const int64_t *shape);
/* Whether a has shape[nd]. */
HESS_INTERNAL bool hess__shape_is(const hess_tensor *a, int nd, const int64_t *shape);

/* op(a) op(b) (op = transpose where ta / tb); shapes checked, errors name fn. */
HESS_INTERNAL hess_tensor *
hess__matmul_t(hess_context *ctx, hess_tensor *a, hess_tensor *b, bool ta, bool tb, const char *fn);
/* op(a) op(b) + c, c [n] added to every row: one LINEAR node (hess_linear). */
HESS_INTERNAL hess_tensor *hess__linear_t(hess_context *ctx,
                                          hess_tensor *a,
                                          hess_tensor *b,
                                          bool ta,
                                          bool tb,
                                          hess_tensor *c,
                                          const char *fn);
/* Batch elements of a matrix operand (all but its last two dims). */
static inline int64_t hess__batch_numel(const hess_tensor *t)
{
    return hess__numel(t->ndim - 2, t->shape);
}
/* The sparse path of a matmul with one batched operand that is mostly zeros
 * (the unit directions of a Hessian sweep): true when it computed out. */
HESS_INTERNAL bool hess__matmul_sparse(hess_tensor *out, bool ta, bool tb, int64_t nbatch);

/* ------------------------------------------------------------------------ */
/* The registry (registry.c)                                                */
/* ------------------------------------------------------------------------ */

/* Every op record, in family order: count, i-th, and by name (NULL if none). */
HESS_INTERNAL size_t hess__op_count(void);
HESS_INTERNAL const hess_op_def *hess__op_at(size_t i);
HESS_INTERNAL const hess_op_def *hess__op_find(const char *name);

/* Each family file lists its records (the only list an op is added to). */
typedef struct hess__op_family {
    const hess_op_def *const *ops;
    size_t n;
} hess__op_family;
HESS_INTERNAL extern const hess__op_family hess__unary_family, hess__logistic_family,
    hess__elementwise_family, hess__broadcast_family, hess__shape_family, hess__linalg_family,
    hess__nn_family, hess__index_family, hess__reduce_family, hess__conv_family;
HESS_INTERNAL extern const hess__op_family hess__loss_family;

#endif /* HESS_OPS_H */
