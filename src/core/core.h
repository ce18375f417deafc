/*
 * core.h -- the bottom layer: the context and its arena, errors, the tensor
 * (a node of the tape), the op record every node points at, and the tape's
 * evaluation (stamps, refresh, replay).  Everything above includes this;
 * nothing here knows any particular op.  Nothing here is installed.
 */
#ifndef HESS_CORE_H
#define HESS_CORE_H

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

#define HESS_MAX_SRC 3
/* Internal rank limit: one more than the public one, for the direction
 * dimension that cotangents carry in a batched pass. */
#define HESS_DIMS (HESS_MAX_DIMS + 1)

/* Tensor flags. */
#define HESS_T_PARAM    1u /* made by hess_param_new                                  */
#define HESS_T_DETACHED 2u /* made by a backward pass without HESS_CREATE_GRAPH:       */
                           /* a constant to later passes, though still replayable      */
#define HESS_T_ONEHOT  4u  /* a leaf of unit directions, described by par.leaf        */
#define HESS_T_PENDING 8u  /* made while the tape was lazy: values not computed yet    */
#define HESS_T_CHECKED 16u /* a leaf that an op checks the values of (check_src)       */
#define HESS_T_FAILED  32u /* set by a kernel that failed, with the error recorded      */
                           /* (a user op's forward callback): eval_node clears it       */

/* A magic value in live tensors; a rewound tensor has it cleared. */
#define HESS_TENSOR_MAGIC 0x48455353u /* "HESS" */

typedef struct hess_op_def hess_op_def;

/* The geometry of a convolution or pooling node (ops/conv.c), over the last
 * two dims (height, width): kernel, stride, padding, dilation, groups, and
 * the input's height and width for the ops that map back to it; 0 means the
 * default.  Kept in the arena by the node: its prepare copies what the
 * builder pointed to. */
typedef struct hess__conv_par {
    int64_t kh, kw, sh, sw, ph, pw, dh, dw, groups, in_h, in_w;
} hess__conv_par;

/* An op's parameters, one named struct per kind of op (the op record says
 * which applies).  Leaves use `leaf`, set by whoever writes their values. */
typedef union hess_op_params {
    struct {
        double alpha, beta; /* out = alpha a + beta */
    } affine;
    struct {
        double p; /* out = a^p */
    } pow;
    struct {
        double lo, hi; /* clamp: min(max(a, lo), hi); mask: [lo <= a <= hi] */
    } range;
    struct {
        double alpha; /* elu: alpha (exp(a) - 1) for a <= 0 */
    } elu;
    struct {
        double slope; /* leaky_relu: slope a for a <= 0 */
    } leaky;
    struct {
        int axis; /* log_softmax, softmax: the axis, >= 0 */
    } axis;
    struct {
        bool ta, tb; /* matmul, linear: op(A) op(B), op = transpose when set */
    } mm;
    struct {
        double alpha; /* mse, cross_entropy, bce: the mean's 1/count */
    } loss;
    struct {
        /* permute: dim d of out's last `rank` dims is dim perm[d] of a's
         * last `rank` dims; the dims before them (a batched pass's
         * directions) are kept */
        int8_t perm[HESS_MAX_DIMS + 1];
        uint8_t rank;
    } perm;
    struct {
        int axis; /* >= 0 */
        /* slice, index_select: the positions taken; slice_scatter,
         * index_add: the result's length along the axis */
        int64_t len;
        union {
            struct {
                int64_t start, step; /* slice, slice_scatter: start + j step */
            };
            const int64_t *idx; /* index_select, index_add: one index per
                                   position taken (in the arena) */
        };
    } take;
    struct {
        double delta; /* huber, huber_slope: the half-width of the quadratic region */
    } huber;
    struct {
        /* smooth_one_hot: label smoothing eps, and the target value of the rows
         * left out (all zeros) when use_ignore is set */
        double eps;
        int64_t ignore_index;
        bool use_ignore;
    } classes;
    struct {
        /* amax, amin, lse_shift: bit i set when axis i is reduced, 0 for
         * every axis; the result keeps the reduced axes as 1 */
        unsigned axes;
    } reduce;
    struct {
        const struct hess__conv_par *p; /* conv.c's ops; NULL: every default */
    } conv;
    struct {
        /* what the leaf's writer knows of its values (hess__leaf_scan):
         * chunks of 8 elements with a nonzero, -1 when not counted */
        int64_t nz_chunks;
        /* a leaf [k, ...] of unit directions (HESS_T_ONEHOT): slot q <
         * onehot_count holds a 1 at element onehot_first + q of its block
         * when inside it */
        int64_t onehot_first, onehot_count;
    } leaf;
    const void *user; /* ops made at run time */
} hess_op_params;

struct hess_tensor {
    uint32_t magic;
    uint8_t flags; /* HESS_T_* */
    uint8_t ndim;
    const hess_op_def *def; /* the op that made it (&hess__op_leaf for a leaf) */
    int64_t id;             /* position on the tape */
    uint64_t serial;        /* never reused within a context: tells marks apart */
    uint64_t stamp;         /* a leaf: the clock of its last write (0 if never written);
                               an op result: the largest stamp of its sources when it was
                               last evaluated.  A result is stale when a source is stale or
                               has a newer stamp (hess__refresh) */
    hess_context *ctx;      /* owner */
    int64_t numel;
    int64_t shape[HESS_DIMS];
    hess_op_params par;
    hess_tensor *src[HESS_MAX_SRC];
    double *data;
    double *scratch; /* op workspace reused by every evaluation (matmul), or NULL */
};

/* ------------------------------------------------------------------------ */
/* The op record                                                            */
/* ------------------------------------------------------------------------ */

/* What a rule needs to know about the pass it runs in: given as an argument,
 * never read from the context. */
typedef struct hess_pass {
    unsigned need;   /* bit i: source i needs a cotangent (rules may skip the rest) */
    bool record;     /* the pass records its nodes (HESS_CREATE_GRAPH) */
    int64_t k;       /* directions of a batched pass: cotangents are [k, ...]; 0: none */
    const char *api; /* the public function running, for messages */
} hess_pass;

/* In a rule: whether source i needs a cotangent. */
#define HESS_NEED(pass, i) ((((pass)->need) >> (i)) & 1u)

/* Record flags. */
#define HESS_OPF_CONSTANT 1u /* no derivative flows through it (hess_detach) */
/* out[i] = f(a[i], b[i], ...) with broadcasting: each result element depends
 * on one element of each source.  With one source the Jacobian is diagonal,
 * so the forward-mode rule is the vjp rule applied to the tangent; the
 * curvature of the exact diagonal (f' and g f'') follows from the vjp rule by
 * differentiating it, for any arity. */
#define HESS_OPF_ELEMENTWISE 2u
/* For the curvature backpropagation (hessian/diag.c): the op has no second
 * derivative -- it is linear in its sources jointly (add, reshape, a sum), or
 * piecewise so (relu, a maximum) -- */
#define HESS_OPF_LINEAR 4u
/* -- or it is linear in each source alone (mul, matmul), so that its second
 * derivatives are only across two sources that both depend on the
 * parameters. */
#define HESS_OPF_MULTILINEAR 8u
/* A re-indexing: each result element is zero or a copy of one source element
 * (every row of the Jacobian holds at most one nonzero, a 1): reshape,
 * transpose, permute, and the selections slice, index_select, gather, cat.
 * J^T diag(D) J is then the diagonal J^T D, so a diagonal Hessian maps
 * through it by its own vjp rule, to each source alone (a result element
 * comes from one source only, so there is no block across two). */
#define HESS_OPF_REINDEX 16u

/* The second derivative of an op with respect to one source, contracted with
 * the cotangent g of its result (the "residual" of the curvature
 * backpropagation): a diagonal part plus up to two signed columns, each
 * shaped like the source, which may stand for one column per block (axis). */
typedef struct hess_curv {
    hess_tensor *diag;   /* NULL: zero */
    hess_tensor *col[2]; /* NULL: none */
    double sign[2];      /* +1 or -1 */
    int axis;            /* each col[k] holds one column per position of the
                            source's other dims: the slice along this axis is
                            a block of the Hessian (softmax's rows); -1: the
                            whole of col[k] is one column */
} hess_curv;

/* The curvature at a result that a parameter's diagonal is read from: the
 * Hessian with respect to out, per sample of its leading dimension B, is
 * sum_g sign_g F_g F_g^T + diag(D): groups of factor columns F_g
 * [C_g, B, ...out] with signs sign_g (+1 or -1), and a diagonal part D shaped
 * like out (NULL: zero). */
typedef struct hess_factor {
    size_t n;
    hess_tensor *const *F;
    const double *sign;
    hess_tensor *D;
    int64_t B;
} hess_factor;

/* One op, defined in one place.  A node points at its record, so records can
 * also be made at run time.  forward computes out->data from out->src[]
 * (numbers only, no allocation, no write but to out).  vjp builds, from
 * differentiable ops only, the cotangent of each source given the cotangent g
 * of out (gin[i] NULL: exactly zero); a NULL vjp means the op has no
 * derivative (HESS_ERR_NODIFF).  jvp is the rule of forward mode; rowwise,
 * curv and diag_param those of the curvature backpropagation. */
struct hess_op_def {
    const char *name;    /* "exp": messages, dumps, the test table */
    const char *formula; /* the math, one line */
    int arity;           /* sources, 0..HESS_MAX_SRC */
    unsigned flags;      /* HESS_OPF_* */
    /* The result's shape from the sources and parameters; false with the error
     * recorded (naming fn) when they do not fit.  NULL for the ops whose
     * builder is given the shape (reshape, sum_to, broadcast_to). */
    bool (*shape)(hess_context *ctx,
                  hess_tensor *const src[],
                  const hess_op_params *par,
                  int *ndim,
                  int64_t *shape,
                  const char *fn);
    /* Optional: the set-up a node needs once, after it is made and before it is
     * evaluated (a workspace, kept by the node); false with the error
     * recorded, naming fn. */
    bool (*prepare)(hess_context *ctx, hess_tensor *out, const char *fn);
    void (*forward)(hess_tensor *out);
    void (*vjp)(hess_context *ctx,
                const hess_pass *pass,
                hess_tensor *out,
                hess_tensor *g,
                hess_tensor *gin[HESS_MAX_SRC]);
    /* Forward mode: the tangent of out given those of the sources (tin[i]
     * NULL: zero; each shaped like its source, behind [k] in a batched pass),
     * built from ops; NULL when it is zero.  May be NULL for an op flagged
     * HESS_OPF_ELEMENTWISE (its vjp rule serves). */
    hess_tensor *(*jvp)(hess_context *ctx,
                        const hess_pass *pass,
                        hess_tensor *out,
                        hess_tensor *const tin[HESS_MAX_SRC]);
    /* The curvature backpropagation of the exact diagonal (hessian/diag.c);
     * all optional, and an op without them makes that method fall back to
     * the Hessian's rows.
     * rowwise: whether row b of out (its leading dimension) depends only on
     * row b of source i, which has as many rows (ops of one sample at a time,
     * such as x W^T with x [B, n] as source 0); NULL: an elementwise op's
     * sources of out's rank are, other ops' are not. */
    bool (*rowwise)(const hess_tensor *out, int i);
    /* curv: the residual of an op that is curved and not elementwise
     * (softmax, the losses) with respect to source i, for the cotangent g of
     * out; false when the rule does not cover the case. */
    bool (*curv)(hess_context *ctx,
                 const hess_pass *pass,
                 hess_tensor *out,
                 hess_tensor *g,
                 int i,
                 hess_curv *c);
    /* diag_param: *d = the contribution of this node to the Hessian diagonal
     * of source i, a parameter shared by the B samples (W of x W^T, a bias),
     * from the curvature f at out; false when the rule does not cover the
     * case. */
    bool (*diag_param)(hess_context *ctx,
                       const hess_pass *pass,
                       hess_tensor *out,
                       int i,
                       const hess_factor *f,
                       hess_tensor **d);
    /* Optional: whether source k of out may take the values data (numel of the
     * source), HESS_OK or the error recorded naming fn.  Called by
     * hess_tensor_set for the leaves the builder flagged HESS_T_CHECKED. */
    hess_status (*check_src)(
        hess_context *ctx, const hess_tensor *out, int k, const double *data, const char *fn);
};

/* The record of leaves: no kernel, no rule. */
HESS_INTERNAL extern const hess_op_def hess__op_leaf;

static inline bool hess__is_leaf(const hess_tensor *t)
{
    return t->def == &hess__op_leaf;
}

/* ------------------------------------------------------------------------ */
/* Context and arena                                                        */
/* ------------------------------------------------------------------------ */

typedef struct hess__block {
    struct hess__block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
} hess__block;

/* Memory outside the arena, kept until the context is destroyed (rewinds do
 * not reach it): what hess__keep hands out follows this header. */
typedef struct hess__kept {
    struct hess__kept *next;
    size_t size; /* bytes from the allocator, header included */
} hess__kept;

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
     * to position pos.  Kept increasing in both, see arena.c. */
    struct {
        uint64_t gen;
        size_t block, used;
    } cuts[16];
    int n_cuts;
    unsigned lazy;    /* > 0: the tape's evaluation policy while a pass that only
                         needs some results runs (hess__finish); no rule reads it */
    bool simd;        /* the AVX2 kernels may run (the CPU has AVX2+FMA, no HESS_NO_SIMD) */
    const char *api;  /* the public function running, prefixed to messages (error.c) */
    const char *busy; /* the public function whose callback is running, or NULL */

    /* A user op's callback runs (diff/user_op.c): busy is the op's name. */
    const char *busy_what;    /* which callback of busy runs, for messages ("the vjp callback
                                 of user op"); NULL: "the progress callback of" */
    bool busy_ops;            /* while busy: ops may still be built (a user op's vjp or jvp
                                 callback builds its result from ops); nothing else */
    const char *eval_fn;      /* the function whose evaluation of a node runs (eval_node), for
                                 the messages of kernels that can fail (user ops) */
    hess__kept *kept;         /* memory kept until destroy, outside the arena */
    hess_op_handle *user_ops; /* the registered user ops, newest first (kept) */

    hess_status status;
    char errmsg[320];
};

/* ------------------------------------------------------------------------ */
/* Memory (arena.c)                                                         */
/* ------------------------------------------------------------------------ */

/* Bytes from the allocator hooks, within the byte limit; NULL when refused. */
HESS_INTERNAL void *hess__raw_alloc(hess_context *ctx, size_t size);
HESS_INTERNAL void hess__raw_free(hess_context *ctx, void *p, size_t size);

/* Zeroed memory outside the arena, kept until the context is destroyed
 * (rewinds do not free it), aligned as the allocator's memory; NULL (and
 * HESS_ERR_NOMEM recorded, named by fn) when the allocator or the byte limit
 * refuses. */
HESS_INTERNAL void *hess__keep(hess_context *ctx, size_t size, const char *fn);

/* Arena allocation, 32-byte aligned; NULL (and HESS_ERR_NOMEM recorded, named
 * by fn) when the allocator or the byte limit refuses. */
HESS_INTERNAL void *hess__alloc(hess_context *ctx, size_t size, const char *fn);
HESS_INTERNAL void *hess__calloc(hess_context *ctx, size_t size, const char *fn);

/* Internal marks and rewinds: the same positions as hess_context_mark and
 * hess_context_rewind, without the check (the library's own marks are never
 * edited); a rewind is recorded as any other, so user marks it cuts off are
 * refused. */
HESS_INTERNAL hess_mark hess__mark(const hess_context *ctx);
HESS_INTERNAL void hess__rewind(hess_context *ctx, const hess_mark *m);

/* ------------------------------------------------------------------------ */
/* Errors (error.c)                                                         */
/* ------------------------------------------------------------------------ */

/* Records the first error; later ones are ignored until cleared.  Inside a
 * composite or a pass (ctx->api set) the message is prefixed with it. */
HESS_INTERNAL void hess__error(hess_context *ctx, hess_status s, const char *fmt, ...)
    HESS_PRINTF(3, 4);

/* Composite builders and passes run between these two, so that errors raised
 * by the ops they are made of name the public function:
 * saved = hess__api_enter(ctx, fn); ... hess__api_leave(ctx, saved, result).
 * The outermost call wins. */
HESS_INTERNAL const char *hess__api_enter(hess_context *ctx, const char *fn);
HESS_INTERNAL hess_tensor *
hess__api_leave(hess_context *ctx, const char *saved, hess_tensor *result);

/* What every status-returning public function checks first: HESS_ERR_ARG for
 * a NULL context, the pending error, or HESS_ERR_STATE (recorded) while a
 * progress callback of the context runs (or a user op's callback). */
HESS_INTERNAL hess_status hess__enter(hess_context *ctx, const char *fn);
/* Records and returns HESS_ERR_STATE: fn was called while ctx->busy (a
 * progress callback, or a user op's callback: see busy_what). */
HESS_INTERNAL hess_status hess__busy(hess_context *ctx, const char *fn);

/* Formats a shape as "[4,3]" into buf (at least 96 bytes). */
HESS_INTERNAL const char *hess__shape_str(char *buf, int ndim, const int64_t *shape);

/* ------------------------------------------------------------------------ */
/* Tensors and the tape (tape.c, tensor.c)                                  */
/* ------------------------------------------------------------------------ */

/* Checks rank (0..max_dims), a shape pointer and dimensions (>= 1); false with
 * HESS_ERR_ARG recorded otherwise.  The element count is checked by hess__node. */
HESS_INTERNAL bool
hess__check_shape(hess_context *ctx, int ndim, const int64_t *shape, int max_dims, const char *fn);

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

/* Checks a list of n tensors (wrt, params): non-empty, each live and of ctx,
 * none twice.  HESS_OK or the error recorded, naming fn and what[i]. */
HESS_INTERNAL hess_status hess__check_list(
    hess_context *ctx, size_t n, hess_tensor *const list[], const char *what, const char *fn);

/* Whether n * s <= limit, for n, s, limit >= 1, without overflow: a division
 * only for factors of 2^31 or more (two smaller ones cannot overflow). */
static inline bool hess__mul_within(int64_t n, int64_t s, int64_t limit)
{
    const int64_t small = (int64_t)1 << 31;
    return n < small && s < small ? n * s <= limit : s <= limit / n;
}

HESS_INTERNAL bool hess__same_shape(const hess_tensor *a, const hess_tensor *b);
HESS_INTERNAL int64_t hess__numel(int ndim, const int64_t *shape);

/* A new node of op def and the given shape, sources a, b (the third is set by
 * the caller), values allocated (not computed).  The tensor's parameters are
 * zero. */
HESS_INTERNAL hess_tensor *hess__node(hess_context *ctx,
                                      const hess_op_def *def,
                                      int ndim,
                                      const int64_t *shape,
                                      hess_tensor *a,
                                      hess_tensor *b,
                                      const char *fn);
/* hess_tensor_new for the library's own constants (seeds, directions): its
 * errors name fn, the public function running. */
HESS_INTERNAL hess_tensor *hess__const_new(
    hess_context *ctx, int ndim, const int64_t *shape, const double *data, const char *fn);
/* A leaf with flags (HESS_T_*), values allocated and not set: the loaders'
 * and the directions of a sweep (rank up to HESS_DIMS; checked by the caller). */
HESS_INTERNAL hess_tensor *
hess__leaf(hess_context *ctx, int ndim, const int64_t *shape, unsigned flags, const char *fn);
/* The same, a node whose values are a's (a view: a reshape). */
HESS_INTERNAL hess_tensor *hess__node_view(hess_context *ctx,
                                           const hess_op_def *def,
                                           int ndim,
                                           const int64_t *shape,
                                           hess_tensor *a,
                                           const char *fn);
/* Runs out's forward kernel (unless the tape is lazy) and, if asked, checks
 * for non-finite values; out or NULL. */
HESS_INTERNAL hess_tensor *hess__finish(hess_context *ctx, hess_tensor *out, const char *fn);

/* ------------------------------------------------------------------------ */
/* Evaluation: stamps, refresh, replay (tape.c)                             */
/* ------------------------------------------------------------------------ */

/* Computes, in tape order, the pending nodes (made while the tape was lazy)
 * and the out-of-date ones that outs[] depend on, from node `first` on;
 * pending nodes nothing needs stay pending. */
HESS_INTERNAL hess_status
hess__eval(hess_context *ctx, int64_t first, size_t n, hess_tensor *const outs[], const char *fn);
/* Brings outs[] and everything they depend on up to date with the leaves'
 * current values (after hess_tensor_set): evaluates again, in tape order, each
 * result with a source newer than itself.  O(1) when no result was made
 * between a written leaf and its write, else O(tape) plus the kernels run. */
HESS_INTERNAL hess_status hess__refresh(hess_context *ctx,
                                        size_t n,
                                        hess_tensor *const outs[],
                                        const char *fn);
/* Counts a leaf's chunks of 8 elements with a nonzero into par.leaf.nz_chunks
 * (-0 counts as zero): what its writer knows for the products that skip zeros,
 * computed once per write.  O(numel). */
HESS_INTERNAL void hess__leaf_scan(hess_tensor *leaf);
/* A leaf's values were written: stamps it with a new clock; by_caller marks
 * the results made since the leaf as possibly out of date (hess_tensor_set);
 * internal writes of leaves whose users are evaluated explicitly (the
 * directions of a sweep) do not. */
HESS_INTERNAL void hess__touch(hess_context *ctx, hess_tensor *leaf, bool by_caller);

/* Replay: re-evaluate the nodes that depend on some leaves after their values
 * changed ("define once, compute many times"). */
typedef struct hess__replay {
    int64_t *ids; /* nodes to recompute, in tape order */
    int64_t n;
} hess__replay;

/* Plans the nodes after the leaves that depend on any of them (arena). */
HESS_INTERNAL hess_status hess__replay_plan(hess_context *ctx,
                                            size_t n_leaves,
                                            hess_tensor *const leaves[],
                                            hess__replay *plan);
/* Recomputes the planned nodes in order. */
HESS_INTERNAL hess_status hess__replay_run(hess_context *ctx,
                                           const hess__replay *plan,
                                           const char *fn);

/* ------------------------------------------------------------------------ */
/* Threads (parallel.c)                                                     */
/* ------------------------------------------------------------------------ */

#define HESS_MAX_THREADS 64

/* The cores online, 1..HESS_MAX_THREADS. */
HESS_INTERNAL int hess__cores(void);
/* Runs fn(arg, t) for t = 0..n-1 at once (n <= HESS_MAX_THREADS), t = 0 on
 * the calling thread;
 * returns how many ran (a thread that could not start is skipped, so fn
 * shares its work dynamically and every t does what is left). */
HESS_INTERNAL int hess__parallel(int n, void (*fn)(void *arg, int t), void *arg);

/* A replica of a replay: clones of the leaves and of the planned nodes, with
 * their own values and workspace, sources mapped to the clones; the nodes
 * outside the plan are shared, read only.  Made on the caller's thread;
 * hess__replica_run evaluates the clones in order, kernels only (false when
 * check_finite and a value is not finite). */
typedef struct hess__replica {
    const hess__replay *plan;
    hess_tensor *nodes; /* clones of plan->ids, in order */
    hess_tensor **map;  /* by id - first: the clone, or NULL */
    int64_t first, span;
} hess__replica;

HESS_INTERNAL hess_status hess__replica_make(hess_context *ctx,
                                             const hess__replay *plan,
                                             size_t n_leaves,
                                             hess_tensor *const leaves[],
                                             hess__replica *r,
                                             const char *fn);
/* The clone of t in r, or t itself when r has none. */
HESS_INTERNAL hess_tensor *hess__replica_of(const hess__replica *r, hess_tensor *t);
HESS_INTERNAL bool hess__replica_run(const hess__replica *r, bool check_finite);

#endif /* HESS_CORE_H */
