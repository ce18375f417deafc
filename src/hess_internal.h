/*
 * hess_internal.h -- private structures shared by the library's source files:
 * the context and its arena, the tensor (tape node), the op list and the
 * helpers every op file uses.  Nothing here is installed.
 */
#ifndef HESS_INTERNAL_H
#define HESS_INTERNAL_H

#include "hessian.h"

#include <stdarg.h>
#include <stdbool.h>

#if defined(__GNUC__)
#define HESS_INTERNAL     __attribute__((visibility("hidden")))
#define HESS_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define HESS_INTERNAL
#define HESS_PRINTF(f, a)
#endif

/* ------------------------------------------------------------------------ */
/* The op list: one line per op, from which the enum, the name table and    */
/* the registry are generated.  X(ENUM, name, arity).  Leaves have op NONE. */
/* ------------------------------------------------------------------------ */

#define HESS_OP_LIST(X)                                                                            \
    X(NONE, leaf, 0)                                                                               \
    X(ADD, add, 2)                                                                                 \
    X(SUB, sub, 2)                                                                                 \
    X(MUL, mul, 2)                                                                                 \
    X(DIV, div, 2)                                                                                 \
    X(AFFINE, affine, 1)                                                                           \
    X(MATMUL, matmul, 2)                                                                           \
    X(LINEAR, linear, 3)                                                                           \
    X(TRANSPOSE, transpose, 1)                                                                     \
    X(RESHAPE, reshape, 1)                                                                         \
    X(SUM_TO, sum_to, 1)                                                                           \
    X(BROADCAST_TO, broadcast_to, 1)                                                               \
    X(EXP, exp, 1)                                                                                 \
    X(LOG, log, 1)                                                                                 \
    X(TANH, tanh, 1)                                                                               \
    X(SIGMOID, sigmoid, 1)                                                                         \
    X(RELU, relu, 1)                                                                               \
    X(STEP, step, 1)                                                                               \
    X(SOFTPLUS, softplus, 1)                                                                       \
    X(SQUARE, square, 1)                                                                           \
    X(SQRT, sqrt, 1)                                                                               \
    X(POW, pow, 1)                                                                                 \
    X(LOG_SOFTMAX, log_softmax, 1)                                                                 \
    X(SOFTMAX, softmax, 1)                                                                         \
    X(MSE, mse_loss, 2)                                                                            \
    X(CROSS_ENTROPY, cross_entropy, 2)                                                             \
    X(BCE_WITH_LOGITS, bce_with_logits, 2)                                                         \
    X(ONE_HOT, one_hot, 1)                                                                         \
    X(DETACH, detach, 1)                                                                           \
    X(TANH_GRAD, tanh_grad, 2)                                                                     \
    X(SIGMOID_GRAD, sigmoid_grad, 2)

typedef enum hess_op {
#define HESS_X_(e, n, a) HESS_OP_##e,
    HESS_OP_LIST(HESS_X_)
#undef HESS_X_
        HESS_OP_COUNT
} hess_op;

#define HESS_MAX_SRC 3
/* Internal rank limit: one more than the public one, for the direction
 * dimension that cotangents carry in a batched pass. */
#define HESS_DIMS (HESS_MAX_DIMS + 1)

/* Tensor flags. */
#define HESS_T_PARAM    1u /* made by hess_param_new                                */
#define HESS_T_DETACHED 2u /* made by a backward pass without HESS_CREATE_GRAPH:     */
                           /* a constant to later passes, though still replayable    */
#define HESS_T_PENDING 8u  /* made while ctx->defer: values not computed yet */
#define HESS_T_ONEHOT  4u  /* a direction leaf [k, ...] of unit vectors (hessian.c): */
                           /* slot q < p[1] holds a 1 at element p[0] + q of its   */
                           /* block when that is inside it, zeros elsewhere        */
#define HESS_T_DENSE 16u   /* a leaf found with too many nonzeros to skip zeros in  */
                           /* products (ops_linalg.c); every write of a leaf's      */
                           /* values after it is made clears it (hess_param_set,    */
                           /* set_dirs, gradcheck's set_flat).  Only saves a scan:  */
                           /* a stale flag costs speed, never a wrong value         */
#define HESS_T_CHECKED 32u /* a leaf that an op checks the values of (check_src)   */

/* A magic value in live tensors; a rewound tensor has it cleared. */
#define HESS_TENSOR_MAGIC 0x48455353u /* "HESS" */

struct hess_tensor {
    uint32_t magic;
    uint8_t op;    /* enum hess_op */
    uint8_t flags; /* HESS_T_* */
    uint8_t ndim;
    int8_t axis;       /* op parameter (LOG_SOFTMAX) */
    int64_t id;        /* position on the tape */
    uint64_t serial;   /* never reused within a context: tells marks apart */
    uint64_t stamp;    /* a leaf: the clock of its last write (0 if never written);
                          an op result: the largest stamp of its sources when it was
                          last evaluated.  A result is stale when a source is stale or
                          has a newer stamp (hess__refresh) */
    hess_context *ctx; /* owner */
    int64_t numel;
    int64_t shape[HESS_DIMS];
    double p[2]; /* op parameters (AFFINE alpha/beta, POW exponent, MATMUL and LINEAR
                    transpose flags, MSE 1/numel) */
    hess_tensor *src[HESS_MAX_SRC];
    double *data;
    double *scratch; /* op workspace reused by every evaluation (MATMUL), or NULL */
};

/* One op's behaviour.  forward computes out->data from out->src[] (numbers
 * only, no allocation; the one write elsewhere is a product marking a leaf
 * source HESS_T_DENSE, a fact about the leaf's values that never changes a
 * result).  backward builds, from differentiable ops only, the
 * cotangent of each source given the cotangent g of out; it sets gin[i] to
 * NULL when the contribution is exactly zero.  A NULL backward means the op
 * has no derivative (differentiating through it is HESS_ERR_NODIFF). */
/* In a backward rule: whether source i needs a cotangent (rules may skip the rest). */
#define HESS_NEED(ctx, i) (((ctx)->need >> (i)) & 1u)

typedef struct hess_op_def {
    const char *name;
    int arity;
    void (*forward)(hess_tensor *out);
    void (*backward)(hess_context *ctx,
                     hess_tensor *out,
                     hess_tensor *g,
                     hess_tensor *gin[HESS_MAX_SRC]);
    /* Optional: whether source k of out may take the values data (numel of
     * the source), HESS_OK or the error recorded naming fn.  Called by
     * hess_tensor_set for the leaves the builder flagged HESS_T_CHECKED. */
    hess_status (*check_src)(
        hess_context *ctx, const hess_tensor *out, int k, const double *data, const char *fn);
} hess_op_def;

HESS_INTERNAL extern const hess_op_def *const hess__ops[HESS_OP_COUNT];

/* ------------------------------------------------------------------------ */
/* Context and arena                                                        */
/* ------------------------------------------------------------------------ */

typedef struct hess__block {
    struct hess__block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
} hess__block;

struct hess_context {
    hess_config cfg;
    hess__block *head;   /* first block */
    hess__block *cur;    /* block being filled */
    size_t cur_index;    /* index of cur in the chain */
    size_t bytes;        /* bytes held from the allocator */
    hess_tensor **nodes; /* the tape: nodes[id] */
    int64_t n_nodes;
    int64_t cap_nodes;
    uint64_t id;      /* unique in the process: tells marks of contexts apart */
    uint64_t key;     /* secret of the keyed check in marks */
    uint64_t serial;  /* serials handed out so far */
    uint64_t clock;   /* leaf writes so far (stamps) */
    int64_t last_op;  /* id of the last node that is not a leaf, -1 if none */
    int64_t stale_lo; /* nodes [stale_lo, stale_hi) may be out of date: made */
    int64_t stale_hi; /* before a write and after its leaf (empty: lo >= hi) */
    uint64_t gen;     /* rewinds so far */
    /* Rewinds that cut history, for telling stale marks: rewind gen g went back
     * to position pos.  Kept increasing in both, see context.c. */
    struct {
        uint64_t gen;
        size_t block, used;
    } cuts[16];
    int n_cuts;
    const char *busy;   /* the public function whose callback is running, or NULL */
    unsigned no_record; /* > 0: new nodes are detached (HESS_T_DETACHED) */
    unsigned defer;     /* > 0: results are not computed (HESS_T_STALE), see hess__eval */
    int64_t batch_k;    /* > 0 during a batched backward pass: cotangents are [k, ...] */
    bool simd;          /* the AVX2 kernels may run (the CPU has AVX2+FMA, no HESS_NO_SIMD) */
    unsigned need;      /* during a backward rule: bit i set if src[i] needs its cotangent */
    const char *api;    /* the public function running (Hessians), for messages */
    hess_status status;
    char errmsg[320];
};

/* The AVX2+FMA kernels (simd_x86.c), compiled on x86-64 with GCC or Clang and
 * run only where hess__simd_available() says the CPU has AVX2 and FMA (not
 * compiled with -DHESSIAN_SIMD=OFF, which defines HESSIAN_NO_SIMD).
 * hess__gemm_simd: C[m,n] = op(A) op(B), A(i,p) = a[i ai + p ap], op(B) from
 * its stored rows (leading dimension ldb, transposed when tb), C dense.
 * hess__tanh_simd: y[i] = tanh(x[i]), as ops_unary.c's tanh to 2 ulp. */
/* Not on Windows: GCC there cannot align the stack to 32 bytes for spilled
 * AVX registers (GCC bug 54412). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32) &&        \
    !defined(HESSIAN_NO_SIMD)
#define HESS_SIMD_X86 1
HESS_INTERNAL void hess__gemm_simd(int64_t m,
                                   int64_t n,
                                   int64_t k,
                                   const double *a,
                                   int64_t ai,
                                   int64_t ap,
                                   const double *b,
                                   int64_t ldb,
                                   bool tb,
                                   double *c);
HESS_INTERNAL void hess__tanh_simd(const double *x, double *y, int64_t n);
/* An AVX2 copy of a portable loop: the same C, vectorised 4 wide.  Without
 * FMA, so that the copy rounds exactly as the original does. */
#define HESS_AVX2 __attribute__((target("avx2")))
#else
#define HESS_SIMD_X86 0
#endif
HESS_INTERNAL bool hess__simd_available(void);

/* Scalar kernels shared by several ops. */
#include <math.h>
/* 1 / (1 + exp(-v)); exp(-|v|) <= 1 keeps it free of overflow */
static inline double hess__sigmoid1(double v)
{
    if (v >= 0)
        return 1.0 / (1.0 + exp(-v));
    const double e = exp(v);
    return e / (1.0 + e);
}
/* log(1 + exp(v)) = max(v, 0) + log1p(exp(-|v|)), finite for finite v */
static inline double hess__softplus1(double v)
{
    return (v > 0 ? v : 0.0) + log1p(exp(-fabs(v)));
}

/* Arena allocation, 32-byte aligned; NULL (and HESS_ERR_NOMEM recorded, named
 * by fn) when the allocator or the byte limit refuses. */
HESS_INTERNAL void *hess__alloc(hess_context *ctx, size_t size, const char *fn);
HESS_INTERNAL void *hess__calloc(hess_context *ctx, size_t size, const char *fn);

/* Composite builders run between these two, so that errors raised by the ops
 * they are made of name the public function:  saved = hess__api_enter(ctx, fn);
 * return hess__api_leave(ctx, saved, impl(...)).  The outermost call wins. */
HESS_INTERNAL const char *hess__api_enter(hess_context *ctx, const char *fn);
HESS_INTERNAL hess_tensor *
hess__api_leave(hess_context *ctx, const char *saved, hess_tensor *result);

/* Records the first error; later ones are ignored until cleared. */
HESS_INTERNAL void hess__error(hess_context *ctx, hess_status s, const char *fmt, ...)
    HESS_PRINTF(3, 4);

/* Checks rank (0..max_dims), a shape pointer and dimensions (>= 1); false with
 * HESS_ERR_ARG recorded otherwise.  The element count is checked by hess__node. */
HESS_INTERNAL bool
hess__check_shape(hess_context *ctx, int ndim, const int64_t *shape, int max_dims, const char *fn);

/* Formats a shape as "[4,3]" into buf (at least 96 bytes). */
HESS_INTERNAL const char *hess__shape_str(char *buf, int ndim, const int64_t *shape);

/* Checks that t is a live tensor of ctx: HESS_OK, or the error (recorded unless
 * an earlier one is): HESS_ERR_ARG for NULL or another context's tensor,
 * HESS_ERR_STATE for a tensor freed by a rewind. */
HESS_INTERNAL hess_status hess__check_slow(hess_context *ctx, const hess_tensor *t, const char *fn);
static inline hess_status hess__check(hess_context *ctx, const hess_tensor *t, const char *fn)
{
    /* the common case inline: every builder checks each operand */
    if (t && t->ctx == ctx && t->magic == HESS_TENSOR_MAGIC && t->id >= 0 && t->id < ctx->n_nodes &&
        ctx->nodes[t->id] == t)
        return HESS_OK;
    return hess__check_slow(ctx, t, fn);
}

/* Whether n * s <= limit, for n, s, limit >= 1, without overflow: a division
 * only for factors of 2^31 or more (two smaller ones cannot overflow). */
static inline bool hess__mul_within(int64_t n, int64_t s, int64_t limit)
{
    const int64_t small = (int64_t)1 << 31;
    return n < small && s < small ? n * s <= limit : s <= limit / n;
}

/* A new node of the given op and shape with data allocated (not computed). */
HESS_INTERNAL hess_tensor *hess__node(hess_context *ctx,
                                      hess_op op,
                                      int ndim,
                                      const int64_t *shape,
                                      hess_tensor *a,
                                      hess_tensor *b,
                                      const char *fn);
/* Runs out's forward kernel and, if asked, checks for non-finite values. */
HESS_INTERNAL hess_tensor *hess__finish(hess_context *ctx, hess_tensor *out, const char *fn);

/* Internal builders used by backward rules and derived ops. */
HESS_INTERNAL hess_tensor *
hess__affine(hess_context *ctx, hess_tensor *a, double alpha, double beta);
HESS_INTERNAL hess_tensor *hess__step(hess_context *ctx, hess_tensor *a);
/* Fused derivatives, elementwise with broadcasting: g (1 - y^2), the
 * cotangent of tanh with y = tanh(a); and g sigmoid'(a) = g sigmoid(a) sigmoid(-a). */
HESS_INTERNAL hess_tensor *hess__tanh_grad(hess_context *ctx, hess_tensor *g, hess_tensor *y);
HESS_INTERNAL hess_tensor *hess__sigmoid_grad(hess_context *ctx, hess_tensor *g, hess_tensor *a);
/* softmax along an axis (negative from the end), one SOFTMAX node. */
HESS_INTERNAL hess_tensor *hess__softmax(hess_context *ctx, hess_tensor *a, int axis);
/* [..., C] one-hot rows of class indices (cross_entropy's rule). */
HESS_INTERNAL hess_tensor *hess__one_hot(hess_context *ctx, hess_tensor *targets, int64_t C);
/* sum_to / broadcast_to the shape of `like`; returns a itself when equal. */
HESS_INTERNAL hess_tensor *
hess__sum_like(hess_context *ctx, hess_tensor *a, const hess_tensor *like);
HESS_INTERNAL hess_tensor *
hess__broadcast_like(hess_context *ctx, hess_tensor *a, const hess_tensor *like);
HESS_INTERNAL hess_tensor *
hess__reshape_like(hess_context *ctx, hess_tensor *a, const hess_tensor *like);
/* op(a) op(b) for 2-D a, b (op = transpose where ta / tb); shapes checked. */
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
/* reshape to any shape (up to HESS_DIMS during a batched pass); a if equal. */
HESS_INTERNAL hess_tensor *
hess__reshape_any(hess_context *ctx, hess_tensor *a, int nd, const int64_t *shape);
/* Zeros shaped like a cotangent of like in the current pass. */
HESS_INTERNAL hess_tensor *hess__zeros_like(hess_context *ctx, const hess_tensor *like);

HESS_INTERNAL bool hess__same_shape(const hess_tensor *a, const hess_tensor *b);
HESS_INTERNAL int64_t hess__numel(int ndim, const int64_t *shape);

/* Flag of hess__backward: the caller has brought the outputs and seeds up to
 * date (hess__refresh) already. */
#define HESS__FRESH 0x100u

/* Checks a list of n tensors (wrt, params): non-empty, each live and of ctx,
 * none twice.  HESS_OK or the error recorded, naming fn and what[i]. */
HESS_INTERNAL hess_status hess__check_list(
    hess_context *ctx, size_t n, hess_tensor *const list[], const char *what, const char *fn);

/* The backward pass behind hess_grad and hess_vjp; fn and what name the
 * caller and its wrt list in messages ("hess_hessian", "params"). */
HESS_INTERNAL hess_status hess__backward(hess_context *ctx,
                                         size_t n_out,
                                         hess_tensor *const outputs[],
                                         hess_tensor *const seeds[],
                                         size_t n,
                                         hess_tensor *const wrt[],
                                         hess_tensor *grads[],
                                         unsigned flags,
                                         const char *fn,
                                         const char *what);

/* ------------------------------------------------------------------------ */
/* Replay: re-evaluate the nodes that depend on some leaves after their      */
/* values changed ("define once, compute many times").                      */
/* ------------------------------------------------------------------------ */

typedef struct hess__replay {
    int64_t *ids; /* nodes to recompute, in tape order */
    int64_t n;
} hess__replay;

/* Computes, in tape order, the pending nodes (made while ctx->defer) and the
 * out-of-date ones that outs[] depend on, from node `first` on; pending nodes
 * nothing needs stay pending. */
HESS_INTERNAL hess_status
hess__eval(hess_context *ctx, int64_t first, size_t n, hess_tensor *const outs[], const char *fn);
/* Brings outs[] and everything they depend on up to date with the leaves'
 * current values (after hess_tensor_set): evaluates again, in tape order, each
 * result with a source newer than itself.  O(1) when nothing was written since
 * the whole tape was last up to date, else O(tape) plus the kernels run. */
HESS_INTERNAL hess_status hess__refresh(hess_context *ctx,
                                        size_t n,
                                        hess_tensor *const outs[],
                                        const char *fn);
/* A leaf's values were written: stamps it with a new clock; by_caller marks
 * the tape as possibly out of date (hess_tensor_set), internal writes of
 * leaves whose users are evaluated explicitly (directions) do not. */
HESS_INTERNAL void hess__touch(hess_context *ctx, hess_tensor *leaf, bool by_caller);
/* Internal marks and rewinds: the same positions as hess_context_mark and
 * hess_context_rewind, without the check (the library's own marks are never
 * edited); a rewind is recorded as any other, so user marks it cuts off are
 * refused. */
HESS_INTERNAL hess_mark hess__mark(const hess_context *ctx);
HESS_INTERNAL void hess__rewind(hess_context *ctx, const hess_mark *m);
/* What every status-returning public function checks first: HESS_ERR_ARG for
 * a NULL context, the pending error, or HESS_ERR_STATE (recorded) while a
 * progress callback of the context runs. */
HESS_INTERNAL hess_status hess__enter(hess_context *ctx, const char *fn);
/* Calls opts->progress(done, total) with the context busy: HESS_OK to go
 * on; the error recorded inside the callback; or HESS_ERR_CANCELLED
 * (recorded, naming fn) when it asks to stop. */
HESS_INTERNAL hess_status hess__progress(
    hess_context *ctx, const hess_hessian_opts *opts, size_t done, size_t total, const char *fn);
/* Records and returns HESS_ERR_STATE: fn was called while ctx->busy. */
HESS_INTERNAL hess_status hess__busy(hess_context *ctx, const char *fn);

/* Plans the nodes after the leaves that depend on any of them (arena). */
HESS_INTERNAL hess_status hess__replay_plan(hess_context *ctx,
                                            size_t n_leaves,
                                            hess_tensor *const leaves[],
                                            hess__replay *plan);
/* Recomputes the planned nodes in order. */
HESS_INTERNAL hess_status hess__replay_run(hess_context *ctx,
                                           const hess__replay *plan,
                                           const char *fn);

#endif /* HESS_INTERNAL_H */
