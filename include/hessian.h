/*
 * hessian.h -- libhessian: exact first and second derivatives for C.
 *
 * A program builds a scalar loss from libhessian's tensor ops.  Every op is
 * evaluated at once (eagerly) and recorded on the context's tape.  hess_grad()
 * walks the tape backwards and builds the gradient out of the same ops, so with
 * HESS_CREATE_GRAPH the gradient can itself be differentiated: that second pass
 * gives Hessian-vector products, Hessian rows, blocks, the diagonal and the
 * full Hessian.
 *
 * Rules that hold for the whole API:
 *  - Every pointer a hess_* call returns belongs to its context and stays valid
 *    until the context is destroyed or rewound past it (hess_context_rewind).
 *  - Data passed in is copied, never borrowed.  Output buffers of the Hessian
 *    functions are the caller's.
 *  - A context is not thread-safe; distinct contexts are fully independent.
 *    The library has no global mutable state.
 *  - Library code never aborts, exits or prints.  Functions that do work return
 *    a hess_status; op builders return NULL and record the first error in the
 *    context (hess_context_status / hess_context_errmsg).  A builder given a NULL
 *    operand returns NULL and keeps the first error, so a whole expression can be
 *    built and checked once.
 *  - Elements are double, tensors are contiguous and row-major, rank 0 to
 *    HESS_MAX_DIMS.
 *
 * Copyright (c) 2026 The libhessian authors. MIT licence, see LICENSE.
 */
#ifndef HESSIAN_H
#define HESSIAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Version: written once, here; CMake reads it from this file.              */
/* ------------------------------------------------------------------------ */

/** Major version: releases with the same major version are ABI compatible. */
#define HESS_VERSION_MAJOR 0
/** Minor version: additions that keep the ABI. */
#define HESS_VERSION_MINOR 1
/** Patch version: fixes only. */
#define HESS_VERSION_PATCH 0
/** The version as one number, MAJOR*10000 + MINOR*100 + PATCH. */
#define HESS_VERSION_NUMBER                                                                        \
    (HESS_VERSION_MAJOR * 10000 + HESS_VERSION_MINOR * 100 + HESS_VERSION_PATCH)

/* ------------------------------------------------------------------------ */
/* Export macro                                                             */
/* ------------------------------------------------------------------------ */

/**
 * @def HESS_API
 * Marks a public declaration: exported from the shared library (default
 * visibility; dllexport/dllimport on Windows).  Everything else is hidden.
 */
#if defined(_WIN32) && defined(HESSIAN_SHARED)
#ifdef HESSIAN_BUILDING
#define HESS_API __declspec(dllexport)
#else
#define HESS_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define HESS_API __attribute__((visibility("default")))
#else
#define HESS_API
#endif

/** HESS_VERSION_NUMBER of the library actually linked. */
HESS_API unsigned hess_version(void);
/** The linked library's version as "MAJOR.MINOR.PATCH" (static storage). */
HESS_API const char *hess_version_string(void);

/**
 * One line saying how the linked library was built and what it runs here:
 * the version, the matrix product's backend (CBLAS and which, or the built-in
 * kernels only), the SIMD level selected at run time (AVX2+FMA where the CPU
 * has both; none; not built), and the build type with any sanitizers, e.g.
 * "libhessian 0.1.0; matmul: CBLAS (openblas) for large products; simd:
 * AVX2+FMA (this CPU); build: Release" (static storage, like
 * zlibCompileFlags).  Cost O(1).
 */
HESS_API const char *hess_build_info(void);

/* ------------------------------------------------------------------------ */
/* Status codes: one list, from which the enum and the strings are made.    */
/* ------------------------------------------------------------------------ */

/** Every status code with its value and text; HESS_OK is 0, errors negative. */
#define HESS_STATUS_LIST(X)                                                                        \
    X(HESS_OK, 0, "success")                                                                       \
    X(HESS_ERR_NOMEM, -1, "out of memory")                                                         \
    X(HESS_ERR_ARG, -2, "invalid argument")                                                        \
    X(HESS_ERR_SHAPE, -3, "incompatible tensor shapes")                                            \
    X(HESS_ERR_NODIFF, -4, "no derivative along this path")                                        \
    X(HESS_ERR_STATE, -5, "object not valid in this state")                                        \
    X(HESS_ERR_IO, -6, "input/output error")                                                       \
    X(HESS_ERR_NONFINITE, -7, "non-finite value (NaN or Inf)")                                     \
    X(HESS_ERR_CANCELLED, -8, "cancelled by the caller")

/** A status code: HESS_OK (0) or one of the negative HESS_ERR_* values. */
typedef enum hess_status {
/** @cond INTERNAL */
#define HESS_X_(name, value, text) name = value,
    HESS_STATUS_LIST(HESS_X_)
#undef HESS_X_
    /** @endcond */
} hess_status;

/** Static text for a status code ("out of memory"); never NULL. */
HESS_API const char *hess_status_str(hess_status s);

/* ------------------------------------------------------------------------ */
/* Opaque types                                                             */
/* ------------------------------------------------------------------------ */

/** A context: owns the arena that holds every tensor, tape node and table. */
typedef struct hess_context hess_context;
/** A tensor: a node on its context's tape (leaf or op result). */
typedef struct hess_tensor hess_tensor;

/** Largest rank a tensor may have. */
#define HESS_MAX_DIMS 6

/* ------------------------------------------------------------------------ */
/* Context lifecycle, memory and errors                                     */
/* ------------------------------------------------------------------------ */

/** Context flag: fail any op whose result holds NaN or Inf (HESS_ERR_NONFINITE). */
#define HESS_CHECK_FINITE 1u
/**
 * Context flag: matrix products and tanh use only the portable C kernels (and
 * BLAS, when built in, for the products it takes), not the AVX2+FMA kernels
 * the library otherwise picks at run time on x86-64 CPUs that have them.  The
 * kernels round differently (fused multiply-adds), so in a build without BLAS
 * this makes the library's own arithmetic the same on every x86-64 CPU (libm's
 * exp and log may still differ), at some cost in speed.
 */
#define HESS_NO_SIMD 2u

/**
 * Creation options; a zeroed struct (or a NULL pointer) gives the defaults.
 * alloc/free replace malloc/free for every byte the context uses (free gets
 * the size that was asked for).  max_bytes caps the total held from the
 * allocator (0 = no cap); past it calls fail with HESS_ERR_NOMEM.
 */
typedef struct hess_config {
    void *(*alloc)(size_t size, void *user);          /**< NULL = malloc */
    void (*free)(void *ptr, size_t size, void *user); /**< NULL = free */
    void *user;                                       /**< passed to alloc and free */
    size_t max_bytes;                                 /**< 0 = unlimited */
    size_t block_bytes;                               /**< first arena block size, 0 = 64 KiB */
    unsigned flags;                                   /**< HESS_CHECK_FINITE, HESS_NO_SIMD or 0 */
} hess_config;

/**
 * Creates a context.  @p cfg may be NULL for defaults; it is copied.
 * @return HESS_OK and *out set; HESS_ERR_ARG if out is NULL; HESS_ERR_NOMEM.
 * Cost: one allocation of the context and one of the first arena block.
 */
HESS_API hess_status hess_context_create(const hess_config *cfg, hess_context **out);

/**
 * Frees the context and everything it owns.  NULL is a no-op.  Called from a
 * progress callback of the same context it does nothing but record
 * HESS_ERR_STATE, which the running call then returns.
 */
HESS_API void hess_context_destroy(hess_context *ctx);

/**
 * A point in a context's history, from hess_context_mark().  The fields are
 * opaque: a mark is checked completely when it is used, and one whose fields
 * were changed is refused.
 */
typedef struct hess_mark {
    size_t block;    /**< arena block index */
    size_t used;     /**< bytes used in that block */
    int64_t nodes;   /**< tape length */
    uint64_t ctx_id; /**< the context's identity (not its address) */
    uint64_t last;   /**< serial of the last tensor */
    uint64_t gen;    /**< rewinds done before the mark was taken */
    uint64_t check;  /**< a check over the other fields, keyed by the context */
} hess_mark;

/** Records the current point so that hess_context_rewind() can return to it. Cost O(1). */
HESS_API hess_mark hess_context_mark(const hess_context *ctx);

/**
 * Frees everything created after @p mark: tensors made after it become invalid
 * (using one is detected as HESS_ERR_STATE unless its memory has been reused by
 * a newer tensor).  Arena blocks are kept for reuse, so a loop of forward,
 * gradient, update, rewind calls the allocator only in its first iteration.
 * @return HESS_OK; HESS_ERR_ARG for a NULL context or a mark that is not an
 * earlier point of this context: another context's mark (also one of a
 * destroyed context whose memory this one reuses), a mark with edited fields,
 * a mark of a later point, or a stale mark, one taken after a point that has
 * since been rewound to (after more than 16 nested levels of rewinds, a valid
 * mark that old may be refused too); HESS_ERR_STATE from inside a progress
 * callback.  Nothing changes on error.  Cost O(tensors freed).
 */
HESS_API hess_status hess_context_rewind(hess_context *ctx, hess_mark mark);

/** Bytes currently held from the allocator by the context (arena and tables). */
HESS_API size_t hess_context_bytes(const hess_context *ctx);

/** The first error recorded and not yet cleared, HESS_OK if none (HESS_ERR_ARG for NULL). */
HESS_API hess_status hess_context_status(const hess_context *ctx);

/**
 * Message of the first recorded error, naming the function and the shapes
 * involved, e.g. "hess_matmul: inner dimensions differ: [4,3] x [4,5]".
 * "" when there is no error.  Valid until the next call on the context.
 */
HESS_API const char *hess_context_errmsg(const hess_context *ctx);

/** Forgets the recorded error.  Everything made before it remains valid and unchanged. */
HESS_API void hess_context_clear_error(hess_context *ctx);

/* ------------------------------------------------------------------------ */
/* Tensors                                                                  */
/* ------------------------------------------------------------------------ */

/**
 * A constant or input tensor of rank @p ndim (0..HESS_MAX_DIMS) and the given
 * shape (every dimension >= 1); @p data (numel values, row-major) is copied,
 * NULL gives zeros.  Not differentiated.
 * @return the tensor, or NULL with HESS_ERR_ARG (bad rank, dimension, overflow)
 * or HESS_ERR_NOMEM recorded.  Cost O(numel).
 */
HESS_API hess_tensor *
hess_tensor_new(hess_context *ctx, int ndim, const int64_t *shape, const double *data);

/** Like hess_tensor_new(), but a parameter: a leaf that hess_grad() differentiates. */
HESS_API hess_tensor *
hess_param_new(hess_context *ctx, int ndim, const int64_t *shape, const double *data);

/** A rank-0 constant holding @p value. */
HESS_API hess_tensor *hess_scalar(hess_context *ctx, double value);

/** Rank of @p t (0 for a scalar; -1 for NULL). */
HESS_API int hess_tensor_ndim(const hess_tensor *t);
/** Shape of @p t: ndim values, owned by the tensor (NULL for NULL). */
HESS_API const int64_t *hess_tensor_shape(const hess_tensor *t);
/** Number of elements, the product of the shape (1 for a scalar, 0 for NULL). */
HESS_API int64_t hess_tensor_numel(const hess_tensor *t);
/** The values, numel doubles row-major, owned by the tensor (NULL for NULL). */
HESS_API const double *hess_tensor_data(const hess_tensor *t);
/** 1 if @p t is a parameter made by hess_param_new(), else 0. */
HESS_API int hess_tensor_is_param(const hess_tensor *t);

/**
 * Whether @p t's values are out of date: 1 when a leaf it depends on was
 * written (hess_tensor_set(), hess_param_set()) after t was last evaluated, 0
 * when they are up to date, -1 for NULL, a freed tensor, or when the check
 * could not get memory.  hess_tensor_data() of a stale tensor gives the values
 * of its last evaluation, made from the leaves' earlier values; hess_recompute()
 * brings every tensor up to date, and every function that reads a graph's
 * values or derivatives (hess_grad(), hess_vjp(), the Hessian functions,
 * hess_check_derivatives(), the savers) brings what it reads up to date first.
 * Cost: O(1) when nothing was written since the tape was last up to date, else
 * O(tape length up to t) time and 9 bytes per node of scratch memory.
 */
HESS_API int hess_tensor_is_stale(const hess_tensor *t);

/**
 * Overwrites the values of a leaf -- a parameter, an input or a target made by
 * hess_tensor_new(), hess_param_new(), hess_scalar() or a loader -- in place
 * (an optimizer step, a new minibatch): copies numel values from @p data.  The
 * values are checked first against what the ops built on the leaf require
 * (hess_cross_entropy() targets: integral class indices in [0, C);
 * hess_bce_with_logits() targets: in [0, 1]; likewise the targets of the
 * losses with options, and hess_bce()'s probabilities); on refusal the leaf is
 * unchanged.  Tensors computed from the leaf become stale
 * (hess_tensor_is_stale()): the functions that read a graph bring what they
 * read up to date first, and hess_recompute() brings the whole tape up to
 * date, so a graph is built once and run for every new parameter value or
 * minibatch.
 * @return HESS_OK; HESS_ERR_ARG (NULL context, tensor or data, another
 * context's tensor, a tensor that is not a leaf, values an op refuses, named
 * with the op and the element); HESS_ERR_STATE (tensor freed by a rewind, or
 * called from a progress callback).  Cost O(numel), plus O(tape length) when
 * an op checks the leaf's values.
 */
HESS_API hess_status hess_tensor_set(hess_context *ctx, hess_tensor *leaf, const double *data);

/**
 * hess_tensor_set() restricted to parameters (hess_param_new()): HESS_ERR_ARG
 * for any other tensor.
 */
HESS_API hess_status hess_param_set(hess_context *ctx, hess_tensor *param, const double *data);

/**
 * Evaluates again, in place, every stale tensor (one that depends on a leaf
 * written by hess_tensor_set() or hess_param_set() since it was evaluated), so
 * that the whole graph already built -- the forward pass and any gradients
 * taken since with hess_grad() or hess_vjp(), with or without
 * HESS_CREATE_GRAPH -- holds the values for the leaves' current values.
 * Define once, run many times: the tensors keep their identity, and no node is
 * made.  The functions that read a graph (hess_grad(), hess_vjp(), the Hessian
 * functions, hess_check_derivatives()) do this themselves for what they read,
 * so hess_recompute() is needed only to read values with hess_tensor_data().
 * @return HESS_OK; the pending status, doing nothing; HESS_ERR_ARG (NULL
 * context); HESS_ERR_NOMEM; HESS_ERR_STATE from a progress callback;
 * HESS_ERR_NONFINITE under HESS_CHECK_FINITE (the tensors before the failing
 * one hold new values, the rest stay stale).
 * Cost: the kernels of the stale tensors, O(tape length) to find them;
 * memory: one byte per node while it runs, none after.
 */
HESS_API hess_status hess_recompute(hess_context *ctx);

/* ------------------------------------------------------------------------ */
/* Operators.  Each returns a new tensor owned by ctx, or NULL with the     */
/* error recorded (HESS_ERR_SHAPE for shapes, HESS_ERR_ARG for bad          */
/* arguments or tensors of another context, HESS_ERR_STATE for a tensor     */
/* freed by a rewind, HESS_ERR_NOMEM, HESS_ERR_NONFINITE when the context   */
/* checks values).  Cost: O(numel of the result) unless stated.             */
/* Broadcasting follows NumPy: shapes align at the trailing dimension, and  */
/* each pair of dimensions must be equal or one of them 1.                  */
/* ------------------------------------------------------------------------ */

/** out = a + b, broadcast. */
HESS_API hess_tensor *hess_add(hess_context *ctx, hess_tensor *a, hess_tensor *b);
/** out = a - b, broadcast. */
HESS_API hess_tensor *hess_sub(hess_context *ctx, hess_tensor *a, hess_tensor *b);
/** out = a * b elementwise, broadcast. */
HESS_API hess_tensor *hess_mul(hess_context *ctx, hess_tensor *a, hess_tensor *b);
/** out = a / b elementwise, broadcast. */
HESS_API hess_tensor *hess_div(hess_context *ctx, hess_tensor *a, hess_tensor *b);
/** out = -a. */
HESS_API hess_tensor *hess_neg(hess_context *ctx, hess_tensor *a);
/** out = alpha * a. */
HESS_API hess_tensor *hess_scale(hess_context *ctx, hess_tensor *a, double alpha);
/**
 * out = max(a, b) elementwise, broadcast (torch.maximum): NaN where either is
 * NaN.  The derivative goes to the larger operand; at a tie a == b it is split
 * evenly, 1/2 to each (as PyTorch), and a broadcast operand collects the
 * halves of all its ties.  Piecewise linear: no second derivative.
 * @return the tensor, or NULL with HESS_ERR_SHAPE (shapes that do not
 * broadcast) or the operators' errors above.
 */
HESS_API hess_tensor *hess_maximum(hess_context *ctx, hess_tensor *a, hess_tensor *b);
/** out = min(a, b) elementwise, broadcast (torch.minimum); ties as hess_maximum(). */
HESS_API hess_tensor *hess_minimum(hess_context *ctx, hess_tensor *a, hess_tensor *b);
/**
 * out = cond != 0 ? a : b elementwise (torch.where(cond != 0, a, b)), the
 * three broadcast together.  @p cond is read as a constant: any tensor, its
 * non-zero elements (NaN included) true; it is never differentiated, even
 * when it depends on parameters (a parameter reached only through it gets no
 * derivative: HESS_ERR_NODIFF, zeros with HESS_ALLOW_UNUSED).  The derivative
 * goes to a where cond holds and to b elsewhere; the operand not taken gets
 * an exact 0 there (a selection, not a product with a mask: an Inf or NaN
 * cotangent does not reach it as NaN).  Linear in a and b.
 * @return the tensor, or NULL with HESS_ERR_SHAPE naming the three shapes
 * when they do not broadcast, or the operators' errors above.
 */
HESS_API hess_tensor *
hess_where(hess_context *ctx, hess_tensor *cond, hess_tensor *a, hess_tensor *b);
/**
 * out = a ^ b elementwise with a tensor exponent, broadcast (torch.pow(a, b)).
 * The domain is a > 0, where every derivative is exact: d/da = b a^(b-1),
 * d/db = a^b log(a) (unlike PyTorch's, the Hessian is symmetric at b = 0
 * too).  At a = 0 the values are C's pow (0 for b > 0, 1 for b = 0, Inf for
 * b < 0) and the first derivatives PyTorch's: d/db = 0 where b >= 0, d/da = 0
 * where b = 0, otherwise the formulas (d/da = Inf for 0 < b < 1, d/db = -Inf
 * for b < 0); higher derivatives there are finite where these are (e.g. for
 * b = 2: d2/da2 = 2, the others 0).  For a < 0 the value is real only for an
 * integral b, and d/db = a^b log(a) is NaN.  Nothing is refused for its
 * values.
 * @return the tensor, or NULL with HESS_ERR_SHAPE (shapes that do not
 * broadcast) or the operators' errors above.
 */
HESS_API hess_tensor *hess_pow_t(hess_context *ctx, hess_tensor *a, hess_tensor *b);

/**
 * Matrix product, NumPy's matmul.  [m,k] x [k,n] -> [m,n]; [m,k] x [k] -> [m];
 * [k] x [k,n] -> [n]; [k] x [k] -> [] (dot product); and batched,
 * [..., m,k] x [..., k,n] -> [..., m,n] with the leading dims broadcast.
 * Cost O(batch*m*k*n).
 */
HESS_API hess_tensor *hess_matmul(hess_context *ctx, hess_tensor *a, hess_tensor *b);
/** out[..., j,i] = a[..., i,j]: swaps the last two dims of a tensor of rank >= 2. */
HESS_API hess_tensor *hess_transpose(hess_context *ctx, hess_tensor *a);
/**
 * The same values with a new shape of equal element count (torch.reshape).
 * One dimension may be -1: it takes the count the others leave.  Two -1s are
 * HESS_ERR_ARG, and so is any other dimension < 1; a count that does not fit
 * (also with the -1: a->numel not divisible by the other dimensions) is
 * HESS_ERR_SHAPE.  The result shares a's values (no copy) unless a is a
 * parameter.
 */
HESS_API hess_tensor *
hess_reshape(hess_context *ctx, hess_tensor *a, int ndim, const int64_t *shape);

/* Shapes and indexing (PyTorch's conventions).  Each is linear: its
 * derivatives are the op itself (or its adjoint) applied to the incoming
 * derivative, so every order exists.  Libhessian's tensors have no empty
 * dimension: an op whose result would have one is HESS_ERR_SHAPE. */

/**
 * torch.permute: out's dim d is a's dim perm[d], for perm a permutation of
 * the rank(a) dims (entries may be negative, counted from the end; NULL for
 * a scalar).  HESS_ERR_ARG for an entry out of range or repeated.  A perm
 * that moves only dims of size 1 is a reshape (no copy).  Cost O(numel).
 */
HESS_API hess_tensor *hess_permute(hess_context *ctx, hess_tensor *a, const int *perm);
/**
 * torch.squeeze(a, axis): a without dim @p axis if that dim is 1, else a
 * tensor of a's shape (a no-op, as in PyTorch).  axis in [-rank, rank-1]
 * (a scalar takes 0 or -1), else HESS_ERR_ARG.  A reshape: shares a's values
 * unless a is a parameter.
 */
HESS_API hess_tensor *hess_squeeze(hess_context *ctx, hess_tensor *a, int axis);
/**
 * torch.unsqueeze(a, axis): a with a new dim of 1 at @p axis, in
 * [-rank-1, rank] (-1 appends one), else HESS_ERR_ARG; a result above
 * HESS_MAX_DIMS is HESS_ERR_ARG.  A reshape: shares a's values
 * unless a is a parameter.
 */
HESS_API hess_tensor *hess_unsqueeze(hess_context *ctx, hess_tensor *a, int axis);
/**
 * torch.cat: ts[0..n-1] joined along @p axis (negative from the end).  They
 * have one rank >= 1 and equal dims but along the axis (else
 * HESS_ERR_SHAPE); n = 0, a NULL list or entry is HESS_ERR_ARG.  A tensor may
 * appear more than once.  Cost O(numel * log2 n) (two at a time, as a
 * balanced tree).
 */
HESS_API hess_tensor *hess_cat(hess_context *ctx, size_t n, hess_tensor *const ts[], int axis);
/**
 * torch.stack: ts[0..n-1], all of one shape (else HESS_ERR_SHAPE), joined
 * along a new dim @p axis in [-rank-1, rank]: unsqueeze, then cat.  Scalars
 * stack to [n].  Errors as hess_cat.
 */
HESS_API hess_tensor *hess_stack(hess_context *ctx, size_t n, hess_tensor *const ts[], int axis);
/**
 * Python's a[..., start:stop:step, ...] along @p axis (negative from the
 * end): negative bounds count from the end, then bounds are clipped to
 * [0, length], so bounds out of range are fine; step >= 1 (else
 * HESS_ERR_ARG).  An empty selection (e.g. start >= stop) is HESS_ERR_SHAPE,
 * since tensors have no empty dimension.  Selecting everything is a view of
 * a.  The derivative puts the incoming one back into zeros.
 */
HESS_API hess_tensor *
hess_slice(hess_context *ctx, hess_tensor *a, int axis, int64_t start, int64_t stop, int64_t step);
/**
 * torch.index_select: out[..., j, ...] = a[..., idx[j], ...] along @p axis
 * (negative from the end), j < n; an index may repeat (its derivatives add).
 * As in PyTorch, every idx[j] is in [0, length of the axis): a negative or
 * larger one is HESS_ERR_ARG; n = 0 is HESS_ERR_SHAPE.  idx is copied.
 */
HESS_API hess_tensor *
hess_index_select(hess_context *ctx, hess_tensor *a, int axis, size_t n, const int64_t *idx);
/**
 * torch.gather: out[i][j][k] = a[index[i][j][k]][j][k] for axis 0 (and so
 * on), shaped like @p index.  index has a's rank and is no larger than a in
 * the dims other than the axis (else HESS_ERR_SHAPE); it holds integral
 * values in [0, length of the axis) (else HESS_ERR_ARG, also from
 * hess_tensor_set() and hess_param_set() on an index leaf; an index made by
 * other ops is checked here, and a later value out of range gives NaN); it
 * has no derivative (HESS_ERR_NODIFF when asked for one).  Repeated indices
 * add their derivatives.
 */
HESS_API hess_tensor *hess_gather(hess_context *ctx, hess_tensor *a, int axis, hess_tensor *index);

/** out = sum of all elements, shape []. */
HESS_API hess_tensor *hess_sum(hess_context *ctx, hess_tensor *a);
/** Sum along @p axis (negative counts from the end); the axis is removed. */
HESS_API hess_tensor *hess_sum_axis(hess_context *ctx, hess_tensor *a, int axis);
/** out = mean of all elements, shape []. */
HESS_API hess_tensor *hess_mean(hess_context *ctx, hess_tensor *a);
/** Mean along @p axis (negative counts from the end); the axis is removed. */
HESS_API hess_tensor *hess_mean_axis(hess_context *ctx, hess_tensor *a, int axis);

/*
 * Reductions over several axes, PyTorch's (torch.sum(a, dims, keepdim) and
 * the like).  @p axes holds @p naxes axes of a, each in [-ndim, ndim)
 * (negative counts from the end); naxes = 0 means every axis (axes may then
 * be NULL), so that a scalar, which has no axes, reduces to itself.  The
 * reduced axes are removed, or kept as 1 when @p keepdim is nonzero.  An axis
 * out of range, an axis given twice (also as -1 and ndim-1), or axes NULL
 * with naxes > 0 is HESS_ERR_ARG naming the function and the values.  N below
 * is the number of elements reduced into each result.  Cost O(numel(a)).
 */

/** out = sum of a over @p axes (torch.sum).  Linear. */
HESS_API hess_tensor *
hess_sum_axes(hess_context *ctx, hess_tensor *a, size_t naxes, const int *axes, int keepdim);
/** out = sum of a over @p axes / N (torch.mean).  Linear. */
HESS_API hess_tensor *
hess_mean_axes(hess_context *ctx, hess_tensor *a, size_t naxes, const int *axes, int keepdim);
/**
 * out = max of a over @p axes (torch.amax); NaN where a reduced slice holds a
 * NaN.  Ties split the gradient evenly (PyTorch's amax): each of the k
 * elements equal to the maximum gets 1/k of the cotangent, the others 0 (a
 * slice whose maximum is NaN gets NaN, 0/0, as in PyTorch 1.13).  Piecewise
 * linear: the second and higher derivatives are 0.
 */
HESS_API hess_tensor *
hess_amax(hess_context *ctx, hess_tensor *a, size_t naxes, const int *axes, int keepdim);
/** out = min of a over @p axes (torch.amin); ties as hess_amax(). */
HESS_API hess_tensor *
hess_amin(hess_context *ctx, hess_tensor *a, size_t naxes, const int *axes, int keepdim);
/**
 * out = log(sum(exp(a))) over @p axes (torch.logsumexp), computed as
 * M + log(sum(exp(a - M))) with M the maximum of the slice (0 where M is
 * infinite, as PyTorch): finite for any finite a, +Inf when the slice holds
 * +Inf, -Inf when all of it is -Inf.  M is a constant to differentiation
 * and cancels, so every derivative is exact: the gradient is softmax(a) over
 * the slice, the Hessian diag(p) - p p^T.
 */
HESS_API hess_tensor *
hess_logsumexp(hess_context *ctx, hess_tensor *a, size_t naxes, const int *axes, int keepdim);
/**
 * out = sum((a - mean)^2) / (N - correction) over @p axes, torch.var(a, dims,
 * correction=c, keepdim): correction 1 is the unbiased estimate, 0 the
 * biased one.  When N - correction <= 0 the divisor is 0, as in PyTorch: the
 * result is +Inf, or NaN where the slice is constant (0/0), and its
 * derivatives are infinite or NaN alike (PyTorch 1.13's backward refuses
 * that case).
 */
HESS_API hess_tensor *hess_var(
    hess_context *ctx, hess_tensor *a, size_t naxes, const int *axes, int correction, int keepdim);
/**
 * out = sqrt(hess_var(ctx, a, naxes, axes, correction, keepdim))
 * (torch.std).  Where the result is 0 (a constant slice) the derivative of
 * the square root is taken as 0, as PyTorch does: the gradient there is 0,
 * and so are the second derivatives.
 */
HESS_API hess_tensor *hess_std(
    hess_context *ctx, hess_tensor *a, size_t naxes, const int *axes, int correction, int keepdim);
/**
 * The vector p-norm of all elements of a (torch.linalg.vector_norm), shape
 * [], for @p p = 1 (sum |a|), 2 (sqrt(sum a^2)) or INFINITY (max |a|); any
 * other p is HESS_ERR_ARG.  Conventions at the kinks, PyTorch's: p = 1 has
 * the gradient sign(a), 0 at a zero element; p = 2 has the gradient a / out,
 * and 0 at the zero vector, where its second derivatives are taken as 0
 * (the true ones are infinite; PyTorch gives NaN); p = INFINITY gives each of
 * the k elements tied for the largest |a| the gradient sign(a) / k, the
 * others 0 (all 0 at the zero vector).  The second derivatives of p = 1 and
 * INFINITY are 0.
 */
HESS_API hess_tensor *hess_norm(hess_context *ctx, hess_tensor *a, double p);
/**
 * Sums @p a down to @p shape, which must broadcast to a's shape: the adjoint of
 * hess_broadcast_to.  Cost O(numel(a)).
 */
HESS_API hess_tensor *
hess_sum_to(hess_context *ctx, hess_tensor *a, int ndim, const int64_t *shape);
/** Repeats @p a to @p shape by NumPy broadcasting: the adjoint of hess_sum_to. */
HESS_API hess_tensor *
hess_broadcast_to(hess_context *ctx, hess_tensor *a, int ndim, const int64_t *shape);

/** out = exp(a). */
HESS_API hess_tensor *hess_exp(hess_context *ctx, hess_tensor *a);
/** out = log(a) (natural; -Inf at 0, NaN below). */
HESS_API hess_tensor *hess_log(hess_context *ctx, hess_tensor *a);
/** out = tanh(a). */
HESS_API hess_tensor *hess_tanh(hess_context *ctx, hess_tensor *a);
/** out = 1 / (1 + exp(-a)), evaluated without overflow. */
HESS_API hess_tensor *hess_sigmoid(hess_context *ctx, hess_tensor *a);
/** out = max(a, 0), NaN for NaN (as PyTorch); the derivative at 0 (and NaN) is taken as 0. */
HESS_API hess_tensor *hess_relu(hess_context *ctx, hess_tensor *a);
/** out = log(1 + exp(a)), as max(a,0) + log1p(exp(-|a|)). */
HESS_API hess_tensor *hess_softplus(hess_context *ctx, hess_tensor *a);
/** out = a * a. */
HESS_API hess_tensor *hess_square(hess_context *ctx, hess_tensor *a);
/** out = sqrt(a). */
HESS_API hess_tensor *hess_sqrt(hess_context *ctx, hess_tensor *a);
/** out = sin(a) (radians). */
HESS_API hess_tensor *hess_sin(hess_context *ctx, hess_tensor *a);
/** out = cos(a) (radians). */
HESS_API hess_tensor *hess_cos(hess_context *ctx, hess_tensor *a);
/** out = a ^ p for a constant exponent p. */
HESS_API hess_tensor *hess_pow(hess_context *ctx, hess_tensor *a, double p);
/** out = log(1 + a), accurate for small |a| (log1p); derivative 1 / (1 + a). */
HESS_API hess_tensor *hess_log1p(hess_context *ctx, hess_tensor *a);
/** out = exp(a) - 1, accurate for small |a| (expm1); derivative exp(a). */
HESS_API hess_tensor *hess_expm1(hess_context *ctx, hess_tensor *a);
/** out = 1 / a (Inf at 0); derivative -1 / a^2. */
HESS_API hess_tensor *hess_reciprocal(hess_context *ctx, hess_tensor *a);
/** out = 1 / sqrt(a) (Inf at 0, NaN below); derivative -out^3 / 2. */
HESS_API hess_tensor *hess_rsqrt(hess_context *ctx, hess_tensor *a);
/** out = erf(a), the error function; derivative 2 / sqrt(pi) exp(-a^2). */
HESS_API hess_tensor *hess_erf(hess_context *ctx, hess_tensor *a);
/**
 * out = |a|.  The derivative is sign(a), taken as 0 at a = 0 and a = -0 (and
 * at NaN), as PyTorch's abs; piecewise linear: no second derivative.
 */
HESS_API hess_tensor *hess_abs(hess_context *ctx, hess_tensor *a);
/**
 * out = a sigmoid(a) (SiLU, swish; F.silu), evaluated without overflow for
 * any finite a.  Derivative sigmoid(a) + a sigmoid(a) sigmoid(-a).
 */
HESS_API hess_tensor *hess_silu(hess_context *ctx, hess_tensor *a);
/**
 * out = a Phi(a), Phi the standard normal CDF, computed as
 * a erfc(-a / sqrt(2)) / 2 (PyTorch's default gelu, approximate='none';
 * accurate in both tails).  Derivative Phi(a) + a exp(-a^2 / 2) / sqrt(2 pi).
 */
HESS_API hess_tensor *hess_gelu(hess_context *ctx, hess_tensor *a);
/**
 * out = a (1 + tanh(u)) / 2 with u = sqrt(2/pi) (a + 0.044715 a^3)
 * (F.gelu(a, approximate='tanh')), computed as a sigmoid(2u), which is the
 * same function without the cancellation of 1 + tanh(u) for a < 0.
 */
HESS_API hess_tensor *hess_gelu_tanh(hess_context *ctx, hess_tensor *a);
/**
 * out = a for a > 0, alpha (exp(a) - 1) for a <= 0 (F.elu, expm1 for
 * accuracy near 0).  As PyTorch: the derivative at 0 (and -0) is alpha, from
 * the a <= 0 branch, and the second derivative there is 0 (only a < 0 is
 * curved), so for alpha != 1 the derivative jumps at 0.
 * @return the tensor, or NULL with HESS_ERR_ARG for a NaN or infinite
 * @p alpha, or the operators' errors above.
 */
HESS_API hess_tensor *hess_elu(hess_context *ctx, hess_tensor *a, double alpha);
/**
 * out = a for a > 0, slope a otherwise (F.leaky_relu; PyTorch's default slope
 * is 0.01).  The derivative at 0 (and -0) is the slope, as PyTorch; piecewise
 * linear: no second derivative.
 * @return the tensor, or NULL with HESS_ERR_ARG for a NaN or infinite
 * @p slope, or the operators' errors above.
 */
HESS_API hess_tensor *hess_leaky_relu(hess_context *ctx, hess_tensor *a, double slope);
/**
 * out = min(max(a, lo), hi) (torch.clamp): -INFINITY for @p lo or INFINITY
 * for @p hi clamps one side only; hi where lo > hi; NaN for NaN.  The
 * derivative is 1 on the closed interval lo <= a <= hi (at a == lo and a == hi
 * too, as PyTorch) and 0 outside; piecewise linear: no second derivative.
 * @return the tensor, or NULL with HESS_ERR_ARG when a bound is NaN, or the
 * operators' errors above.
 */
HESS_API hess_tensor *hess_clamp(hess_context *ctx, hess_tensor *a, double lo, double hi);
/**
 * out = a, as a constant to differentiation (torch.Tensor.detach): no
 * derivative flows through it, so a gradient with respect to a tensor reached
 * only through it is HESS_ERR_NODIFF (zeros with HESS_ALLOW_UNUSED).  Its
 * values follow a's when the graph is brought up to date.
 */
HESS_API hess_tensor *hess_detach(hess_context *ctx, hess_tensor *a);

/**
 * out = a - log(sum(exp(a), axis)) along @p axis, by the shifted log-sum-exp
 * (a - max) - log(sum(exp(a - max))).  Finite wherever the result is
 * representable: when every a - max along the axis is >= -DBL_MAX (so for any
 * |a| <= DBL_MAX / 2); an element further than that below the maximum gives
 * -Inf, the correctly rounded value.  Its first and second derivatives are
 * finite for any finite input.
 */
HESS_API hess_tensor *hess_log_softmax(hess_context *ctx, hess_tensor *a, int axis);
/** out = exp(a) / sum(exp(a), axis) along @p axis, as exp(log_softmax(a)). */
HESS_API hess_tensor *hess_softmax(hess_context *ctx, hess_tensor *a, int axis);

/**
 * A fully connected layer, PyTorch's nn.Linear: out = x W^T + b.
 * x is [in] or [B,in], W is [out,in], b is [out] or NULL; the result is [out]
 * or [B,out].  Shapes that do not fit give NULL and HESS_ERR_SHAPE.  A NULL
 * b means no bias -- also when b is NULL because an earlier op failed, whose
 * error the context keeps.  One node; cost O(B*in*out).
 */
HESS_API hess_tensor *
hess_linear(hess_context *ctx, hess_tensor *x, hess_tensor *W, hess_tensor *b);

/**
 * Options of hess_conv2d(), PyTorch's Conv2d arguments per spatial axis
 * (height, width).  Zeros mean the defaults: stride 1, padding 0 (zeros
 * added on both sides), dilation 1, groups 1; negative values are
 * HESS_ERR_ARG.  A zeroed struct (or NULL) is PyTorch's default convolution.
 */
typedef struct hess_conv_opts {
    int stride[2];   /**< step between windows, >= 1 (0: 1) */
    int padding[2];  /**< implicit zeros on each side, >= 0 */
    int dilation[2]; /**< spacing of the kernel's taps, >= 1 (0: 1) */
    int groups;      /**< channel groups, >= 1 (0: 1); divides C and O */
} hess_conv_opts;

/**
 * 2-D convolution (cross-correlation), PyTorch's F.conv2d, NCHW:
 * y[n,o,p,q] = b[o] + sum_{c,i,j} w[o,c,i,j] x[n, g c', p s0 - p0 + i d0, q s1 - p1 + j d1]
 * with c' = (o / (O/groups)) (C/groups) + c the input channel of group g, and
 * x read as 0 in the padding.  x is [N,C,H,W] (or [C,H,W], one sample: the
 * result is then [O,OH,OW]), w is [O,C/groups,kh,kw], b is [O] or NULL (no
 * bias); the result is [N,O,OH,OW] with OH = floor((H + 2 p0 - d0 (kh-1) - 1)
 * / s0) + 1 (and OW alike).  @p opts may be NULL (all defaults).  One node,
 * whose derivatives in x and w are the two adjoint convolutions (each made of
 * the three, so every order of derivative exists); computed per sample and
 * group as an unfolded copy of the input (im2col) times the weight, by the
 * library's matrix kernels.  Cost O(N O (C/groups) kh kw OH OW), and a
 * workspace of one sample's unfolded group.
 * @return the result, or NULL with HESS_ERR_ARG (NULL or foreign tensors,
 *         negative options), HESS_ERR_STATE (freed tensor), HESS_ERR_SHAPE
 *         (ranks, channels that groups do not divide or that w does not take,
 *         b not [O], an input smaller than the dilated kernel), HESS_ERR_NOMEM.
 */
HESS_API hess_tensor *hess_conv2d(
    hess_context *ctx, hess_tensor *x, hess_tensor *w, hess_tensor *b, const hess_conv_opts *opts);

/**
 * 2-D average pooling, PyTorch's F.avg_pool2d(x, (kh,kw), (sh,sw)) (no
 * padding, floor mode): out[...,p,q] = the mean of x[..., p sh + i, q sw + j]
 * over i < kh, j < kw.  x is [N,C,H,W] or [C,H,W]; out has OH = floor((H -
 * kh) / sh) + 1 rows (the last rows or columns of x may be left out), OW
 * alike.  A stride of 0 means the kernel size (PyTorch's default).  Linear;
 * its derivative is its adjoint (each window's cotangent spread over the
 * window), an op with rules of its own.  Cost O(numel(out) kh kw).
 * @return the result, or NULL with HESS_ERR_ARG (kernel < 1, stride < 0,
 *         NULL or foreign tensor), HESS_ERR_STATE, HESS_ERR_SHAPE (rank not 3
 *         or 4, input smaller than the kernel), HESS_ERR_NOMEM.
 */
HESS_API hess_tensor *
hess_avg_pool2d(hess_context *ctx, hess_tensor *x, int kh, int kw, int sh, int sw);

/**
 * 2-D max pooling, PyTorch's F.max_pool2d(x, (kh,kw), (sh,sw)) (no padding,
 * no dilation, floor mode): out[...,p,q] = the maximum of x over the window
 * at (p sh, q sw).  Shapes and arguments as hess_avg_pool2d().  Ties go as
 * in PyTorch 1.13: the derivative goes whole to the first maximum in
 * row-major window order (not split); a NaN in a window is its maximum (the
 * last NaN when there are several), and so gets the derivative.  Piecewise
 * linear: its derivative selects the windows' maxima (an op whose own
 * derivative adds back into those positions), and its second derivative is
 * zero.  Cost O(numel(out) kh kw).
 * @return as hess_avg_pool2d().
 */
HESS_API hess_tensor *
hess_max_pool2d(hess_context *ctx, hess_tensor *x, int kh, int kw, int sh, int sw);

/**
 * Mean squared error, PyTorch's MSELoss: mean over all elements of
 * (pred - target)^2.  pred and target must have the same shape (else NULL,
 * HESS_ERR_SHAPE).  One node; cost O(numel).
 */
HESS_API hess_tensor *hess_mse_loss(hess_context *ctx, hess_tensor *pred, hess_tensor *target);

/**
 * Cross-entropy on logits, PyTorch's CrossEntropyLoss with class indices:
 * -mean over b of log_softmax(logits[b])[targets[b]], computed per row as
 * (max - logits[t]) + log(sum(exp(logits - max))).  logits [B,C] with targets
 * [B], or logits [C] with a scalar target; targets hold integral doubles in
 * [0, C) (HESS_ERR_ARG otherwise, also from hess_tensor_set()) and have no
 * derivative (differentiating with respect to them is HESS_ERR_NODIFF).  One
 * node.  The value is finite when max - logits[t] <= DBL_MAX in every row
 * (e.g. any |logits| <= DBL_MAX / 2; beyond, +Inf is the correctly rounded
 * value); its gradient (softmax - onehot) / B and second derivatives are
 * finite for any finite logits.
 */
HESS_API hess_tensor *
hess_cross_entropy(hess_context *ctx, hess_tensor *logits, hess_tensor *targets);

/**
 * Binary cross-entropy on logits, PyTorch's BCEWithLogitsLoss:
 * mean over all elements of softplus(x) - x*y.  logits and targets have the
 * same shape; targets are probabilities in [0, 1] (HESS_ERR_ARG otherwise,
 * also from hess_tensor_set()), and are differentiated like the logits.  One
 * node.  The value, the gradient and the second derivatives are finite for
 * any finite logits: each term is at most |x|, and a mean of terms near
 * DBL_MAX is summed scaled.
 */
HESS_API hess_tensor *
hess_bce_with_logits(hess_context *ctx, hess_tensor *logits, hess_tensor *targets);

/* ------------------------------------------------------------------------ */
/* Losses with options: PyTorch's reduction, class weights, ignore_index,   */
/* label smoothing and Huber's delta.  Every one of these takes a NULL      */
/* options pointer for all the defaults.                                     */
/* ------------------------------------------------------------------------ */

/** hess_loss_opts.reduction: the mean (PyTorch's 'mean', the default); see each loss for its
 * denominator. */
#define HESS_REDUCE_MEAN 0
/** hess_loss_opts.reduction: the sum of the terms (PyTorch's 'sum'). */
#define HESS_REDUCE_SUM 1
/** hess_loss_opts.reduction: no reduction (PyTorch's 'none'): the tensor of the terms, shaped
 * like the input (per sample, [B] or [], for hess_cross_entropy_ex() and hess_nll_loss()). */
#define HESS_REDUCE_NONE 2

/**
 * Options of the losses below, as PyTorch's loss functions take them.  A NULL pointer means
 * every default (mean, no weight, no ignore_index, no smoothing, delta 1); so does a zeroed
 * struct, except for hess_huber_loss(), which then refuses delta 0 (set it).  A loss refuses
 * (HESS_ERR_ARG) the options it does not have when they are set: a weight for
 * hess_mse_loss_ex(), hess_l1_loss() and hess_huber_loss(); use_ignore_index for any loss but
 * hess_cross_entropy_ex() and hess_nll_loss(); a non-zero label_smoothing for any loss but
 * hess_cross_entropy_ex().  delta is read by hess_huber_loss() alone.
 */
typedef struct hess_loss_opts {
    int reduction;             /**< HESS_REDUCE_MEAN (0), HESS_REDUCE_SUM or HESS_REDUCE_NONE */
    const hess_tensor *weight; /**< NULL: none.  Class weights [C] (hess_cross_entropy_ex(),
                                    hess_nll_loss()), or weights that broadcast to the input's
                                    shape and multiply each term (hess_bce(),
                                    hess_bce_with_logits_ex()); a tensor of the same context,
                                    differentiated like any operand (PyTorch's are not) */
    int use_ignore_index;      /**< non-zero: rows whose target is ignore_index are left out */
    int64_t ignore_index;      /**< the target value of the rows left out (PyTorch's -100) */
    double label_smoothing;    /**< in [0, 1]: the weight moved to the uniform distribution */
    double delta;              /**< hess_huber_loss(): the threshold, > 0 */
} hess_loss_opts;

/**
 * Mean squared error with options, PyTorch's MSELoss: terms (pred - target)^2; mean over all
 * elements, sum, or the terms themselves (shaped like pred).  pred and target have one shape
 * (else HESS_ERR_SHAPE).  With the mean or the sum, one node: the mean is hess_mse_loss(),
 * bit for bit.  Options: reduction only.
 * @return the loss owned by @p ctx, or NULL with HESS_ERR_SHAPE or HESS_ERR_ARG (a bad
 * reduction, an option this loss does not have) recorded, naming the function and the values.
 */
HESS_API hess_tensor *hess_mse_loss_ex(hess_context *ctx,
                                       hess_tensor *pred,
                                       hess_tensor *target,
                                       const hess_loss_opts *opts);

/**
 * Cross-entropy on logits with options, PyTorch's CrossEntropyLoss with class-index targets:
 * logits [B,C] with targets [B], or [C] with [] (one sample).  With lp = log_softmax(logits)
 * per row, class weights wc (all 1 without a weight), smoothing e and keep_i = 0 for a row
 * whose target is the ignore_index (else 1), the term of row i is
 *     l_i = keep_i ((1 - e) wc[t_i] (-lp[i,t_i]) + (e / C) sum_c wc[c] (-lp[i,c])),
 * and the mean is sum_i l_i / sum_i keep_i wc[t_i] (PyTorch's weighted mean, also for the
 * smoothing term); the sum is sum_i l_i; none gives l ([B], or [] for one sample; 0 for
 * ignored rows).  A mean over no kept row (or kept weights summing to 0) is NaN, as in
 * PyTorch, and so are its derivatives (PyTorch's gradient is 0 there).  Targets are integral
 * class indices in [0, C), or the ignore_index when use_ignore_index is set (HESS_ERR_ARG
 * otherwise, here and from hess_tensor_set()); they have no derivative (HESS_ERR_NODIFF).
 * weight [C] (HESS_ERR_SHAPE otherwise); label_smoothing in [0, 1] (HESS_ERR_ARG otherwise).
 * Without weight, ignore_index or smoothing, the mean and the sum are one node (the mean is
 * hess_cross_entropy(), bit for bit); otherwise log_softmax, a smoothed one-hot row per target
 * and a weighted sum per row (a term whose weight is 0 is left out, so a -Inf log-probability
 * there adds nothing), all covered by the exact diagonal's curvature rules.
 * @return the loss owned by @p ctx, or NULL with the error recorded, naming the function and
 * the values.
 */
HESS_API hess_tensor *hess_cross_entropy_ex(hess_context *ctx,
                                            hess_tensor *logits,
                                            hess_tensor *targets,
                                            const hess_loss_opts *opts);

/**
 * Negative log-likelihood, PyTorch's NLLLoss: hess_cross_entropy_ex() with log_probs taken as
 * the log-probabilities themselves and no smoothing: l_i = -keep_i wc[t_i] log_probs[i,t_i],
 * reduced as there (the mean divides by sum_i keep_i wc[t_i]).  log_probs [B,C] with targets
 * [B], or [C] with []; only the target's entry of a row is read, so other entries may be
 * -Inf.  Options: reduction, weight [C], use_ignore_index and ignore_index (label_smoothing
 * must be 0).  Linear in log_probs: its Hessian is zero unless the weight is differentiated.
 * @return the loss owned by @p ctx, or NULL with HESS_ERR_SHAPE or HESS_ERR_ARG recorded
 * (as hess_cross_entropy_ex()).
 */
HESS_API hess_tensor *hess_nll_loss(hess_context *ctx,
                                    hess_tensor *log_probs,
                                    hess_tensor *targets,
                                    const hess_loss_opts *opts);

/**
 * Mean absolute error, PyTorch's L1Loss: terms |pred - target|, reduced by the mean over all
 * elements, the sum, or none.  The derivative at pred == target is 0 (torch's sign(0) = 0),
 * and the second derivative is 0 everywhere.  pred and target have one shape (else
 * HESS_ERR_SHAPE).  Options: reduction only.  Composed of relu(d) + relu(-d), d = pred -
 * target, which is |d| to the bit.
 * @return the loss owned by @p ctx, or NULL with HESS_ERR_SHAPE or HESS_ERR_ARG recorded.
 */
HESS_API hess_tensor *
hess_l1_loss(hess_context *ctx, hess_tensor *pred, hess_tensor *target, const hess_loss_opts *opts);

/**
 * Huber loss, PyTorch's HuberLoss: with d = pred - target, terms 0.5 d^2 where |d| < delta and
 * delta (|d| - 0.5 delta) elsewhere, reduced by the mean over all elements, the sum, or none.
 * The derivative is clamp(d, -delta, delta), continuous; the second derivative is 1 on the open
 * interval |d| < delta and 0 elsewhere, also at |d| == delta (PyTorch's convention).  delta is
 * 1 when @p opts is NULL; otherwise opts->delta must be > 0 (PyTorch's requirement; a zeroed
 * struct is refused with HESS_ERR_ARG).  pred and target have one shape (else HESS_ERR_SHAPE).
 * Options: reduction and delta.
 * @return the loss owned by @p ctx, or NULL with HESS_ERR_SHAPE or HESS_ERR_ARG recorded.
 */
HESS_API hess_tensor *hess_huber_loss(hess_context *ctx,
                                      hess_tensor *pred,
                                      hess_tensor *target,
                                      const hess_loss_opts *opts);

/**
 * Binary cross-entropy on probabilities, PyTorch's BCELoss: terms
 * w (y - 1) max(log(1 - p), -100) - w y max(log(p), -100) (PyTorch's formula, its log clamped
 * at -100, so the loss is finite at p = 0 and p = 1), with w the weight broadcast to p's shape
 * (1 without one); the mean divides by the number of elements, not by the weights.  probs and
 * target have one shape (else HESS_ERR_SHAPE); both hold values in [0, 1] (HESS_ERR_ARG
 * otherwise, here and, for leaves, from hess_tensor_set(); a computed probs that later leaves
 * [0, 1] gives NaN).  Both are differentiated.  The derivatives are those of the clamped
 * function: zero in p where a log is clamped.  PyTorch's backward instead divides by
 * max(p (1 - p), 1e-12), and its second derivative by (p + 1e-12)^2 (1 - p + 1e-12)^2, which
 * differs from the exact one by about 2e-12 / min(p, 1 - p) relative.  Options: reduction and
 * weight.
 * @return the loss owned by @p ctx, or NULL with HESS_ERR_SHAPE or HESS_ERR_ARG recorded.
 */
HESS_API hess_tensor *
hess_bce(hess_context *ctx, hess_tensor *probs, hess_tensor *target, const hess_loss_opts *opts);

/**
 * Binary cross-entropy on logits with options, PyTorch's BCEWithLogitsLoss (no pos_weight):
 * terms w (softplus(x) - x y), computed as max(x, 0) - x y + log1p(exp(-|x|)) with the first
 * part x (1 - y) or -x y, so that no term cancels; w is the weight broadcast to the logits'
 * shape (1 without one), and the mean divides by the number of elements.  logits and targets
 * have one shape (else HESS_ERR_SHAPE); targets are in [0, 1] (HESS_ERR_ARG otherwise, also
 * from hess_tensor_set()) and are differentiated like the logits.  Without a weight, the mean
 * and the sum are one node (the mean is hess_bce_with_logits(), bit for bit).  Options:
 * reduction and weight.
 * @return the loss owned by @p ctx, or NULL with HESS_ERR_SHAPE or HESS_ERR_ARG recorded.
 */
HESS_API hess_tensor *hess_bce_with_logits_ex(hess_context *ctx,
                                              hess_tensor *logits,
                                              hess_tensor *targets,
                                              const hess_loss_opts *opts);

/* ------------------------------------------------------------------------ */
/* Ops of your own, registered at run time (PyTorch's autograd.Function,    */
/* JAX's primitives with custom rules).  A program describes its op in a    */
/* hess_op record -- a name, the number of sources, a shape callback, a     */
/* forward callback over double arrays, a vjp callback that builds the      */
/* sources' cotangents from libhessian's own ops, optionally a jvp          */
/* callback -- registers it in a context (hess_op_register) and applies it  */
/* like a built-in op (hess_op_apply).  The vjp callback builds ops, which  */
/* have rules of their own, so the op is differentiable to any order:       */
/* hess_grad, hess_vjp, the Hessian and curvature functions and             */
/* hess_check_derivatives take it like any other op, and so does forward    */
/* mode (hess_jvp, hess_jacobian, hess_hvp_fwd, hess_ggn_vp) given a jvp    */
/* callback, or for a one-source op flagged HESS_OP_ELEMENTWISE, whose vjp  */
/* callback serves.  The exact diagonal (hess_hessian_diag) covers an op     */
/* flagged HESS_OP_ELEMENTWISE by its backpropagation, from the vjp         */
/* callback; around other user ops HESS_DIAG_AUTO takes the Hessian's rows. */
/*                                                                          */
/* The callbacks run on the thread that called into the library, while a   */
/* call on the context runs: the forward and shape callbacks may not call   */
/* libhessian on the context at all, the vjp and jvp callbacks may only     */
/* build ops (anything else fails with HESS_ERR_STATE).  Errors inside a    */
/* callback -- an error status returned, an op that failed, a result of the */
/* wrong shape or of another context -- make the call that ran it fail with */
/* a message naming the op (e.g. "hess_grad: user op softsign: the vjp      */
/* callback gave a cotangent [3] for source 0, which is [2,3]").            */
/* ------------------------------------------------------------------------ */

/** Most sources a user op may have (hess_op::arity). */
#define HESS_OP_MAX_SRC 3
/** Longest name of a user op, in bytes without the terminating NUL. */
#define HESS_OP_NAME_MAX 63

/**
 * hess_op flag: the op is elementwise, out[i] = f(a[i], b[i], ...): each
 * element of the result depends on the element at the same position of each
 * source (a source may be broadcast to the result's shape, NumPy's rule).
 * Without a shape callback the sources must all have one shape, which is the
 * result's.  The flag lets the exact diagonal's backpropagation cover the op
 * (its second derivatives follow from the vjp callback) and lets the vjp
 * callback of a one-source op serve as its forward-mode rule (its Jacobian is
 * diagonal).  Flagging an op that is not elementwise gives wrong diagonals
 * and tangents.
 */
#define HESS_OP_ELEMENTWISE 1u

/** A source or the result of a user op, as its shape and forward callbacks see it. */
typedef struct hess_op_array {
    int ndim;             /**< rank, 0..HESS_MAX_DIMS */
    const int64_t *shape; /**< the ndim dimensions, each >= 1 */
    int64_t numel;        /**< the product of the shape, 1 for rank 0 */
    const double *data;   /**< numel values, row-major; NULL in the shape callback and for
                               the result in the forward callback */
} hess_op_array;

/**
 * A user op's shape callback: the result's rank and shape from the sources'
 * src[0..n-1] (their data is NULL: a shape may not depend on values, which
 * change when the graph is evaluated again).  Writes *ndim (0..HESS_MAX_DIMS)
 * and shape[0..*ndim-1] (each >= 1).  Called by hess_op_apply() only.
 * @return HESS_OK; or an error status (usually HESS_ERR_SHAPE) when the
 * sources do not fit, which hess_op_apply() then fails with, naming the op
 * and the sources' shapes.
 */
typedef hess_status (*hess_op_shape_fn)(
    size_t n, const hess_op_array src[], int *ndim, int64_t shape[HESS_MAX_DIMS], void *user);

/**
 * A user op's forward callback: writes the result's out->numel values,
 * row-major, to @p y from the values of src[0..n-1].  Called when the op is
 * applied and again whenever the graph is evaluated for new leaf values
 * (hess_tensor_set() then any function that reads the graph, hess_recompute(),
 * the sweeps of the Hessian functions), possibly later than the op was
 * applied, so it may depend on nothing but its arguments (and on what @p user
 * points at, unchanged).
 * @return HESS_OK; or an error status, which the call that evaluated the op
 * (hess_op_apply(), hess_grad(), ...) then fails with, naming the op.
 */
typedef hess_status (*hess_op_forward_fn)(
    size_t n, const hess_op_array src[], const hess_op_array *out, double *y, void *user);

/**
 * A user op's vector-Jacobian product callback (PyTorch's backward, JAX's vjp
 * rule): sets grads[i] (i < n, all NULL on entry) to the cotangent of source i,
 * sum over the result's elements of g * d out / d src[i], shaped like src[i],
 * or leaves it NULL when it is zero.  @p g is shaped like @p out, never
 * batched: a pass that carries many directions at once (the Hessian sweeps)
 * calls the callback once and applies what it built to every direction, so
 * the map from g to grads[i] must be linear, as a vjp is.  The cotangents are
 * built on @p ctx from libhessian's ops (hess_mul, hess_matmul, hess_sum_to,
 * hess_op_apply of user ops ...) applied to @p out, src[] and g, so that they
 * can be differentiated again: never from numbers read out of the tensors
 * (hess_tensor_data), which change when the graph is evaluated again and may
 * not even be computed yet when the callback runs.  While it runs the context
 * only builds ops.
 * @return HESS_OK; or an error status (an op that failed inside counts as
 * one): the function differentiating (hess_grad(), ...) fails with it, as it
 * does for a cotangent of the wrong shape or a tensor of another context,
 * naming the op.
 */
typedef hess_status (*hess_op_vjp_fn)(hess_context *ctx,
                                      hess_tensor *out,
                                      size_t n,
                                      hess_tensor *const src[],
                                      hess_tensor *g,
                                      hess_tensor *grads[],
                                      void *user);

/**
 * A user op's Jacobian-vector product callback (JAX's jvp rule), for forward
 * mode: sets *tangent to sum over i of d out / d src[i] applied to
 * tangents[i], shaped like @p out, or leaves it NULL (as on entry) when it is
 * zero.  tangents[i] is shaped like src[i] and never NULL (zeros for a source
 * without a tangent), never batched; the map from the tangents to *tangent
 * must be linear.  Built from ops, as the vjp callback's cotangents, with the
 * same rules and errors.
 */
typedef hess_status (*hess_op_jvp_fn)(hess_context *ctx,
                                      hess_tensor *out,
                                      size_t n,
                                      hess_tensor *const src[],
                                      hess_tensor *const tangents[],
                                      hess_tensor **tangent,
                                      void *user);

/**
 * The description of a user op, for hess_op_register().  Initialise it
 * field by field ({.name = ..., .forward = ...}) so that fields added later
 * read as zero.  The callbacks get @p user as their last argument.
 */
typedef struct hess_op {
    const char *name;           /**< 1..HESS_OP_NAME_MAX bytes of printable ASCII, no blanks;
                                     unique within the context (a built-in op's name may be
                                     taken: messages say "user op NAME") */
    int arity;                  /**< number of sources, 1..HESS_OP_MAX_SRC */
    unsigned flags;             /**< HESS_OP_ELEMENTWISE or 0 */
    hess_op_shape_fn shape;     /**< the result's shape; NULL only for an elementwise op,
                                     whose sources then share the result's shape */
    hess_op_forward_fn forward; /**< the values; required */
    hess_op_vjp_fn vjp;         /**< reverse mode, from ops; required */
    hess_op_jvp_fn jvp;         /**< forward mode, from ops; NULL: the vjp callback of a
                                     one-source elementwise op serves, and forward mode
                                     through any other op fails with HESS_ERR_NODIFF */
    void *user;                 /**< passed to every callback; kept as a pointer, not copied:
                                     what it points at must outlive the op's use */
} hess_op;

/** A user op registered in a context, from hess_op_register() (opaque). */
typedef struct hess_op_handle hess_op_handle;

/**
 * Registers the op @p op describes in @p ctx and sets *out to its handle.
 * The record and its name are copied, into memory the context keeps outside
 * its arena until it is destroyed: hess_context_rewind() does not remove a
 * registration (a rewind past tensors made by the op frees those tensors as
 * any others), so the handle stays valid for the context's life, and an op is
 * registered once per context, not once per graph.  Registering in one
 * context does not affect another; the same record may be registered in
 * several.
 * @return HESS_OK; the pending status, doing nothing; HESS_ERR_ARG (NULL
 * context, op or out; a NULL, empty, too long name or one with blanks or
 * control characters; arity outside 1..HESS_OP_MAX_SRC; unknown flags; a NULL
 * forward or vjp callback; a NULL shape callback for an op not flagged
 * elementwise; a name registered in the context already), each named in the
 * message; HESS_ERR_STATE (called from a progress callback or an op's
 * callback); HESS_ERR_NOMEM.  *out is NULL on error.  Cost O(ops registered
 * in the context); memory about 250 bytes, counted by hess_context_bytes().
 */
HESS_API hess_status hess_op_register(hess_context *ctx,
                                      const hess_op *op,
                                      const hess_op_handle **out);

/**
 * Applies the user op @p op (registered in @p ctx) to the n sources src[],
 * n = its arity: the result's shape from the shape callback, its values from
 * the forward callback.  The result is a tensor like any other: ops, the
 * derivative functions and hess_tensor_set() / hess_recompute() take it.
 * @return the result, or NULL with the error recorded: HESS_ERR_ARG (NULL op
 * or src, an op not registered in ctx, n not the op's arity, a NULL source or
 * one of another context, a shape callback giving a bad rank or dimension),
 * HESS_ERR_SHAPE (sources the shape callback refuses, or of different shapes
 * for an elementwise op without one), HESS_ERR_STATE (a freed source, or
 * called from a progress callback or a forward callback), the status a
 * callback returned, HESS_ERR_NOMEM, HESS_ERR_NONFINITE (when the context
 * checks values).  Cost: the callbacks', plus O(ops registered in ctx).
 */
HESS_API hess_tensor *
hess_op_apply(hess_context *ctx, const hess_op_handle *op, size_t n, hess_tensor *const src[]);

/* ------------------------------------------------------------------------ */
/* Reverse mode                                                             */
/* ------------------------------------------------------------------------ */

/** hess_grad flag: record the backward pass so the gradients can be differentiated again. */
#define HESS_CREATE_GRAPH 1u
/** hess_grad flag: a wrt tensor that y does not depend on gets zeros, not HESS_ERR_NODIFF. */
#define HESS_ALLOW_UNUSED 2u

/**
 * Gradients of a scalar @p y (any tensor of one element: shape [], [1], [1,1]
 * ...) with respect to the tensors wrt[0..n-1] -- parameters, inputs or any
 * tensor on the tape, each named once: grads[i] = dy/dwrt[i], shaped like
 * wrt[i], owned by ctx.  With HESS_CREATE_GRAPH the gradients are themselves
 * on the tape and can be differentiated to any order; without it they are
 * constants, and differentiating anything that depends on a wrt tensor
 * through them is HESS_ERR_NODIFF whose message says to pass
 * HESS_CREATE_GRAPH (use hess_detach() for a constant on purpose).  Brings y
 * up to date first (hess_tensor_is_stale()).  Walks the tape backwards once,
 * visiting only nodes that lie on a path from a wrt tensor to y.
 * @return HESS_OK; HESS_ERR_ARG (NULL, n = 0, y not of one element, another
 * context's tensor, a tensor named twice in wrt); HESS_ERR_STATE (freed
 * tensor, or from a progress callback); HESS_ERR_NODIFF (y does not depend on
 * some wrt[i], without HESS_ALLOW_UNUSED; or depends on one through a gradient
 * taken without HESS_CREATE_GRAPH, with or without it); HESS_ERR_NOMEM.  On
 * error grads[] is set to NULL.  Cost: about twice the forward pass.
 */
HESS_API hess_status hess_grad(hess_context *ctx,
                               hess_tensor *y,
                               size_t n,
                               hess_tensor *const wrt[],
                               hess_tensor *grads[],
                               unsigned flags);

/**
 * Vector-Jacobian product: grads[i] = sum_j seeds[j] . d outputs[j] / d wrt[i],
 * for outputs of any shape, seeds[j] shaped like outputs[j].  Flags and
 * statuses as hess_grad (HESS_ERR_SHAPE for a seed of the wrong shape).
 */
HESS_API hess_status hess_vjp(hess_context *ctx,
                              size_t n_out,
                              hess_tensor *const outputs[],
                              hess_tensor *const seeds[],
                              size_t n,
                              hess_tensor *const wrt[],
                              hess_tensor *grads[],
                              unsigned flags);

/**
 * Jacobian-vector product (forward mode): jv = J v, J = d output / d wrt, for
 * an output of any shape; v has N = hess_param_count(n, wrt) elements (wrt
 * flattened in order, each row-major) and jv numel(output) (caller's).  One
 * forward-mode pass: each op on a path from wrt to output gives its tangent
 * from its sources' by its forward-mode rule.  An output that depends on no
 * wrt tensor gives zeros (as torch.func.jvp).  Brings output up to date
 * first; the tape is left as it was found.  Statuses as hess_grad.  Cost:
 * about twice the forward pass.
 */
HESS_API hess_status hess_jvp(hess_context *ctx,
                              hess_tensor *output,
                              size_t n,
                              hess_tensor *const wrt[],
                              const double *v,
                              double *jv);

/**
 * The Jacobian d output / d wrt, numel(output) x N row-major into J
 * (caller's), N = hess_param_count(n, wrt); columns of wrt the output does not
 * depend on are zero.  Forward mode when N <= numel(output) (columns, 64 per
 * pass), else reverse mode (rows, 64 per pass); either pass is built once and
 * re-run for each block.  Statuses as hess_jvp.  Cost: about
 * min(N, numel(output)) / 64 batched passes of 64 directions each.
 */
HESS_API hess_status hess_jacobian(
    hess_context *ctx, hess_tensor *output, size_t n, hess_tensor *const wrt[], double *J);

/* ------------------------------------------------------------------------ */
/* Hessians.  Parameters are flattened in the order given, each row-major  */
/* (torch.nn.utils.parameters_to_vector); N = hess_param_count().  params  */
/* may name any tensors, as hess_grad's wrt (parameters, or inputs for a    */
/* Hessian with respect to the input), each once.  The loss is any tensor  */
/* of one element; it is brought up to date first.  Each function builds   */
/* the gradient graph once, then evaluates the second backward pass once    */
/* per row by re-running only the nodes that depend on the direction.  The  */
/* forward graph is not rebuilt; the context's tape is left as it was      */
/* found.  Statuses: HESS_ERR_ARG (NULL, n = 0, loss not of one element,    */
/* another context's tensor, a tensor named twice, unknown option flags),   */
/* HESS_ERR_STATE (freed tensor, or called from a progress callback),       */
/* HESS_ERR_NODIFF (the loss does not depend on a parameter, which is       */
/* named; zero rows and columns instead with HESS_ALLOW_UNUSED in the       */
/* options of the _ex functions), HESS_ERR_NOMEM, HESS_ERR_NONFINITE.       */
/* Let G be the cost of one gradient (about 3 forward passes).               */
/* ------------------------------------------------------------------------ */

/** N, the total number of elements of params[0..n-1] (0 if any is NULL). */
HESS_API size_t hess_param_count(size_t n, hess_tensor *const params[]);

/**
 * Hessian-vector product hv = H v, with v and hv of length N (caller's).
 * Cost: about 2G (one gradient graph plus one double-backward pass).
 */
HESS_API hess_status hess_hvp(hess_context *ctx,
                              hess_tensor *loss,
                              size_t n,
                              hess_tensor *const params[],
                              const double *v,
                              double *hv);

/**
 * hv = H v as hess_hvp, by forward over reverse: the gradient graph, then one
 * forward-mode pass of the gradient in the direction v (hess_jvp of the
 * gradient).  Same values as hess_hvp to rounding; statuses as hess_hvp.
 * Cost: about 2G, like hess_hvp.
 */
HESS_API hess_status hess_hvp_fwd(hess_context *ctx,
                                  hess_tensor *loss,
                                  size_t n,
                                  hess_tensor *const params[],
                                  const double *v,
                                  double *hv);

/**
 * The full N x N Hessian, row-major, into h (N*N doubles, caller's).  Rows are
 * symmetric to rounding.  Cost: G + N replays of the double-backward pass.
 */
HESS_API hess_status hess_hessian(
    hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const params[], double *h);

/**
 * The per-element diagonal d^2 loss / d theta_i^2, N doubles into diag, exact.
 * By the curvature backpropagation (HESS_DIAG_BACKPROP) where its rules cover
 * the graph and it needs fewer columns than the Hessian has rows, else one
 * Hessian row per element (HESS_DIAG_ROWS); hess_hessian_diag_ex() chooses,
 * and reports which ran.  The backpropagation carries the Hessian with
 * respect to each node from the loss down, as signed columns per sample plus
 * a diagonal, through each op's rules: C columns for a loss over C outputs
 * per sample, plus the width of each curved layer whose input leads to more
 * parameters.  Every op of the library has its rule (each op's record
 * carries it): matmul, linear and conv2d layers, bias adds and every other
 * elementwise op, the shape and indexing ops, the reductions, pooling,
 * softmax and log_softmax, and every loss with its options, for a loss that
 * sums or averages per-sample terms (the leading dimension); graphs where ops
 * mix samples, or share a parameter between ops, are swept with explicit
 * columns instead.  Not covered (rows): a product (matmul, conv2d, mul) of
 * two tensors that both depend on one parameter, and a user-defined op not
 * flagged HESS_OP_ELEMENTWISE (an elementwise one's curvature follows from
 * its vjp callback).  Cost: about C + 1 gradients by
 * backpropagation (W2 in bench/); as hess_hessian by rows.  Memory O(N + C
 * times the activations).
 */
HESS_API hess_status hess_hessian_diag(
    hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const params[], double *diag);

/**
 * The diagonal as one tensor per parameter, shaped like it: out[i] is a new
 * constant tensor owned by ctx.  Statuses and cost as hess_hessian_diag.
 */
HESS_API hess_status hess_hessian_diag_tensors(hess_context *ctx,
                                               hess_tensor *loss,
                                               size_t n,
                                               hess_tensor *const params[],
                                               hess_tensor *out[]);

/**
 * The block d^2 loss / d pi d pj, numel(pi) x numel(pj) row-major into out.
 * pi == pj gives a diagonal block.  Cost: G + numel(pi) replays.
 */
HESS_API hess_status hess_hessian_block(
    hess_context *ctx, hess_tensor *loss, hess_tensor *pi, hess_tensor *pj, double *out);

/* ------------------------------------------------------------------------ */
/* Hessians in blocks of rows, with progress and cancellation               */
/* ------------------------------------------------------------------------ */

/**
 * Progress callback of the long computations: called after each sweep with the
 * number of rows (directions) complete and the total.  Return 0 to go on, or
 * non-zero to cancel: the call then returns HESS_ERR_CANCELLED, and the rows
 * reported done are complete and correct in the output.  The context is busy
 * while the callback runs: any call on it that would change it (op builders,
 * rewinds, setters, gradients, Hessians, loads and saves) fails with
 * HESS_ERR_STATE, and the outer call then returns that error.  Reading
 * values, statuses and marks is fine.
 */
typedef int (*hess_progress_fn)(size_t done, size_t total, void *user);

/**
 * Options of the _ex functions; a zeroed struct (or NULL) gives the defaults.
 * block_rows is k, the number of rows evaluated per sweep of the
 * double-backward graph (k directions carried at once as a leading dimension
 * of the cotangents, so that matrix-vector work becomes matrix-matrix work);
 * 0 lets the library choose k so that one sweep's values take about
 * max_bytes (2 MiB by default, about an L2 cache: measured on W1, sweeps
 * much larger than the cache run slower, not faster).  A sweep holds about
 * k times twice the gradient graph's values.
 */
typedef struct hess_hessian_opts {
    size_t block_rows;         /**< rows per sweep; 0 = chosen by the library */
    size_t max_bytes;          /**< memory budget of one sweep; 0 = 2 MiB */
    hess_progress_fn progress; /**< NULL = no callback */
    void *user;                /**< passed to progress */
    unsigned flags;            /**< HESS_ALLOW_UNUSED: zero rows and columns for a parameter the
                                    loss does not depend on (else HESS_ERR_NODIFF); or 0 */
    int method;                /**< per function: a HESS_DIAG_*, HESS_EST_* or HESS_SOLVE_* value;
                                    0 = the function's default */
    uint64_t seed;             /**< seed of random probes and starting vectors (0 is a seed too) */
    size_t n_probes;           /**< random probes (trace, diagonal, density); 0 = the default */
    size_t lanczos_steps;      /**< Lanczos steps per probe (density); 0 = the default */
    double sigma;              /**< width of the density's Gaussian; 0 = the default */
    double tol;                /**< relative tolerance (eigenpairs, solves); 0 = the default */
    size_t max_iter;           /**< iteration limit (eigenpairs, solves); 0 = the default */
    int n_threads;             /**< threads of the sweeps; 0 = all cores, 1 = the caller's only */
    int *method_used;          /**< receives the method that ran (a HESS_DIAG_*, HESS_EST_* or
                                    HESS_SOLVE_* value), when not NULL */
} hess_hessian_opts;

/** opts.method of the diagonal functions: the fastest exact method the graph allows. */
#define HESS_DIAG_AUTO 0
/** opts.method of the diagonal functions: curvature backpropagation (exact, about the cost
 * of C + 1 gradients; HESS_ERR_ARG, saying which op, when its rules do not cover the graph). */
#define HESS_DIAG_BACKPROP 1
/** opts.method of the diagonal functions: one Hessian row per element (exact, N HVPs). */
#define HESS_DIAG_ROWS 2
/** opts.method of hess_trace_estimate and hess_diag_estimate: Hutchinson's estimator. */
#define HESS_EST_HUTCHINSON 3
/** opts.method of the estimators: Hutch++ (low-rank part exact, the rest Hutchinson);
 * the default. */
#define HESS_EST_HUTCHPP 4
/** opts.method of the estimators: XTrace / XDiag (exchangeable, leave-one-out). */
#define HESS_EST_XTRACE 5
/** opts.method of hess_solve: conjugate gradients (the default; for positive definite
 * H + damping I). */
#define HESS_SOLVE_CG 6
/** opts.method of hess_solve: MINRES (symmetric, possibly indefinite). */
#define HESS_SOLVE_MINRES 7

/** hess_hessian with options; adds HESS_ERR_CANCELLED. Cost: G + ceil(N/k) sweeps. */
HESS_API hess_status hess_hessian_ex(hess_context *ctx,
                                     hess_tensor *loss,
                                     size_t n,
                                     hess_tensor *const params[],
                                     const hess_hessian_opts *opts,
                                     double *h);

/** hess_hessian_diag with options; adds HESS_ERR_CANCELLED (diag[0..done) are then valid). */
HESS_API hess_status hess_hessian_diag_ex(hess_context *ctx,
                                          hess_tensor *loss,
                                          size_t n,
                                          hess_tensor *const params[],
                                          const hess_hessian_opts *opts,
                                          double *diag);

/** hess_hessian_block with options; adds HESS_ERR_CANCELLED. */
HESS_API hess_status hess_hessian_block_ex(hess_context *ctx,
                                           hess_tensor *loss,
                                           hess_tensor *pi,
                                           hess_tensor *pj,
                                           const hess_hessian_opts *opts,
                                           double *out);

/**
 * Batched Hessian-vector products HV = V H for m directions at once: V and HV
 * are m x N row-major (row r is the r-th direction and its product H v_r).
 * Statuses as hess_hvp, plus HESS_ERR_CANCELLED.  Cost: G + ceil(m/k) sweeps.
 */
HESS_API hess_status hess_hvp_batch(hess_context *ctx,
                                    hess_tensor *loss,
                                    size_t n,
                                    hess_tensor *const params[],
                                    size_t m,
                                    const double *V,
                                    const hess_hessian_opts *opts,
                                    double *HV);

/**
 * Generalized Gauss-Newton product gv = J^T H_L J v: J = d output / d params
 * (output a network's output, any shape), H_L = d^2 loss / d output^2 (the
 * loss as a function of output alone).  v and gv have N elements.  One
 * forward-mode pass (J v), one double-backward pass through the part of the
 * graph between output and loss (H_L J v) and one backward pass.  Statuses as
 * hess_hvp (HESS_ERR_NODIFF names a parameter output does not depend on),
 * plus HESS_ERR_ARG when the loss does not depend on output.  Cost: about 3G.
 */
HESS_API hess_status hess_ggn_vp(hess_context *ctx,
                                 hess_tensor *loss,
                                 hess_tensor *output,
                                 size_t n,
                                 hess_tensor *const params[],
                                 const double *v,
                                 double *gv);

/**
 * The diagonal of the generalized Gauss-Newton matrix J^T H_L J (as
 * hess_ggn_vp), N doubles into diag: by the curvature backpropagation of
 * hess_hessian_diag with the second derivatives of the ops below output
 * dropped (BackPACK's DiagGGN), about the cost of C + 1 gradients for a loss
 * over C outputs per sample; where its rules do not cover the graph, by
 * products with unit vectors (N / 32 batched passes).  Statuses as
 * hess_ggn_vp.
 */
HESS_API hess_status hess_ggn_diag(hess_context *ctx,
                                   hess_tensor *loss,
                                   hess_tensor *output,
                                   size_t n,
                                   hess_tensor *const params[],
                                   double *diag);

/* ------------------------------------------------------------------------ */
/* Curvature at scale: spectra, traces, diagonals and solves from           */
/* Hessian-vector products, in memory O(N k) for k vectors at once.  Each  */
/* function takes the rules of the Hessian functions above (the loss is     */
/* brought up to date first; params any tensors, each once; HESS_ALLOW_     */
/* UNUSED in opts.flags), reports progress through opts.progress after     */
/* each batch of products and honours cancellation (HESS_ERR_CANCELLED),   */
/* and draws its random vectors from opts.seed, so the same seed gives the  */
/* same result.  Let P be the cost of one batched Hessian-vector product.  */
/* ------------------------------------------------------------------------ */

/** hess_eigs: the k algebraically largest eigenvalues, in decreasing order. */
#define HESS_EIG_LARGEST 0
/** hess_eigs: the k algebraically smallest eigenvalues, in increasing order. */
#define HESS_EIG_SMALLEST 1
/** hess_eigs: the k eigenvalues of largest magnitude, in decreasing |lambda|. */
#define HESS_EIG_MAGNITUDE 2

/**
 * k extreme eigenpairs of the Hessian by the Lanczos method, run until the k
 * wanted Ritz pairs have relative residual ||H x - lambda x|| <= tol * ||H||
 * (tol default 1e-10) or opts.max_iter products were spent (default
 * max(300, 20 k) bounded by N).  For N <= 256 (or 2k + 20 >= N) one basis,
 * fully reorthogonalized.  Otherwise a first cycle keeps its basis
 * semi-orthogonal by partial reorthogonalization (Simon's recurrence: the
 * Ritz values are those of full reorthogonalization, to rounding) on up to
 * 160 vectors within 128 MiB, then thick restarts on max(40, 2k + 20)
 * vectors, fully reorthogonalized.
 * @p which is HESS_EIG_LARGEST, HESS_EIG_SMALLEST or HESS_EIG_MAGNITUDE;
 * evals[0..k-1] are sorted in that order; evecs, when not NULL, receives the
 * unit eigenvectors as an N x k column-major array (column j belongs to
 * evals[j]).  The start vector is drawn from opts.seed.
 * @return HESS_OK; the statuses of the Hessian functions; HESS_ERR_ARG (k = 0,
 * k > N, an unknown which, NULL evals); HESS_ERR_CANCELLED; HESS_ERR_NONFINITE
 * when it did not converge within max_iter (evals then hold the best
 * estimates).  Cost: m products with m the Lanczos steps (about 2k to 4k for
 * well separated eigenvalues, 81 for the top 5 of bench/'s W1); memory
 * O(N b), b the basis above.
 */
HESS_API hess_status hess_eigs(hess_context *ctx,
                               hess_tensor *loss,
                               size_t n,
                               hess_tensor *const params[],
                               size_t k,
                               int which,
                               const hess_hessian_opts *opts,
                               double *evals,
                               double *evecs);

/**
 * The Hessian's eigenvalue density by stochastic Lanczos quadrature (Ubaru,
 * Chen and Saad 2017; PyHessian): for each of opts.n_probes Rademacher probes
 * (default 8), opts.lanczos_steps Lanczos steps (default min(N, 80)) give
 * nodes and weights, and the density is their mixture of Gaussians of width
 * opts.sigma (default (lambda_max - lambda_min) / 100 of the nodes found),
 * averaged over probes and normalised to integrate to 1 over the real line,
 * evaluated at grid[0..n_grid-1] into density.  Each probe's basis is kept
 * orthonormal (N <= 256) or semi-orthogonal by partial reorthogonalization,
 * as in hess_eigs, so that no ghost copies of eigenvalues weigh twice.
 * @return HESS_OK; the statuses of the Hessian functions; HESS_ERR_ARG
 * (n_grid = 0, NULL grid or density, sigma < 0 or not finite);
 * HESS_ERR_CANCELLED.  Cost: n_probes * lanczos_steps products, memory
 * O(N lanczos_steps).
 */
HESS_API hess_status hess_spectral_density(hess_context *ctx,
                                           hess_tensor *loss,
                                           size_t n,
                                           hess_tensor *const params[],
                                           const hess_hessian_opts *opts,
                                           size_t n_grid,
                                           const double *grid,
                                           double *density);

/**
 * An estimate of the Hessian's trace from opts.n_probes Hessian-vector
 * products in all (default 32): Hutchinson (mean of z^T H z over Rademacher
 * z), Hutch++ (Meyer, Musco, Musco and Woodruff 2021: a third of the products
 * find the dominant range, whose part of the trace is exact, the rest
 * Hutchinson; the default) or XTrace (Epperly, Tropp and Webber 2024) by
 * opts.method.  *std_err (may be NULL) receives the estimated standard error
 * of the estimate.  A matrix of rank r is found exactly (up to rounding) by
 * Hutch++ and XTrace with at least 3r and 2r+2 products.
 * @return HESS_OK; the statuses of the Hessian functions; HESS_ERR_ARG (NULL
 * trace, n_probes too small for the method, a method of another function);
 * HESS_ERR_CANCELLED.  Cost: n_probes products; memory O(N n_probes).
 */
HESS_API hess_status hess_trace_estimate(hess_context *ctx,
                                         hess_tensor *loss,
                                         size_t n,
                                         hess_tensor *const params[],
                                         const hess_hessian_opts *opts,
                                         double *trace,
                                         double *std_err);

/**
 * An estimate of the Hessian's diagonal, N doubles into diag, from
 * opts.n_probes products in all, by the diagonal forms of the estimators of
 * hess_trace_estimate (Hutchinson: mean of z * (H z); Hutch++ and XDiag: the
 * low-rank part exact).  For the exact diagonal see hess_hessian_diag().
 * @return and cost as hess_trace_estimate.
 */
HESS_API hess_status hess_diag_estimate(hess_context *ctx,
                                        hess_tensor *loss,
                                        size_t n,
                                        hess_tensor *const params[],
                                        const hess_hessian_opts *opts,
                                        double *diag);

/** What hess_solve() did. */
typedef struct hess_solve_info {
    size_t iterations;      /**< Hessian-vector products spent */
    double rel_residual;    /**< ||b - (H + damping I) x|| / ||b|| at the end */
    int negative_curvature; /**< 1 when CG met p^T (H + damping I) p <= 0 and stopped */
    int converged;          /**< 1 when rel_residual <= tol */
} hess_solve_info;

/**
 * Solves (H + damping I) x = b (N doubles each) -- the Newton-CG and
 * Hessian-free step -- by conjugate gradients (opts.method HESS_SOLVE_CG, the
 * default, for positive definite systems) or MINRES (HESS_SOLVE_MINRES, for
 * any symmetric system), from x = 0, until the relative residual is at most
 * opts.tol (default 1e-10) or opts.max_iter products (default 2N) were spent.
 * CG stops where it meets a direction of non-positive curvature and says so in
 * info->negative_curvature (x is then the last iterate, a descent direction);
 * MINRES goes on.  @p info may be NULL.
 * @return HESS_OK (also when not converged: see info->converged); the statuses
 * of the Hessian functions; HESS_ERR_ARG (NULL b or x, damping < 0 or not
 * finite, a method of another function); HESS_ERR_CANCELLED.  Cost: one
 * product per iteration; memory O(N).
 */
HESS_API hess_status hess_solve(hess_context *ctx,
                                hess_tensor *loss,
                                size_t n,
                                hess_tensor *const params[],
                                const double *b,
                                double damping,
                                const hess_hessian_opts *opts,
                                double *x,
                                hess_solve_info *info);

/* ------------------------------------------------------------------------ */
/* Flat parameter vectors                                                   */
/* ------------------------------------------------------------------------ */

/**
 * Copies the values of params[0..n-1] into flat (N doubles, each tensor
 * row-major, in the order given, as hess_param_count() counts them).
 * @return HESS_OK; HESS_ERR_ARG (NULL or empty list, a NULL tensor, NULL flat;
 * a tensor named twice); HESS_ERR_STATE (a freed tensor).  A tensor is
 * brought up to date first when it is stale.  Cost O(N).
 */
HESS_API hess_status hess_params_get(size_t n, hess_tensor *const params[], double *flat);

/**
 * Writes flat (N doubles) into the leaves params[0..n-1], each as
 * hess_tensor_set() does (checked, and nothing changes when any is refused).
 * @return HESS_OK; the statuses of hess_tensor_set(); HESS_ERR_ARG (a list as
 * hess_params_get refuses, a tensor that is not a leaf).  Cost O(N).
 */
HESS_API hess_status hess_params_set(hess_context *ctx,
                                     size_t n,
                                     hess_tensor *const params[],
                                     const double *flat);

/**
 * params += alpha * d, d flat (N doubles): an optimizer step, each leaf
 * written as hess_tensor_set() does.  Statuses as hess_params_set().
 * Cost O(N).
 */
HESS_API hess_status hess_params_axpy(
    hess_context *ctx, size_t n, hess_tensor *const params[], double alpha, const double *d);

/* ------------------------------------------------------------------------ */
/* Interchange: NumPy .npy files and the plain-text reference format.       */
/* These functions read and write whole files.  Like the Hessian functions, */
/* the status-returning ones do nothing and return the pending error when   */
/* the context already holds one.  HESS_ERR_IO messages are one line: the   */
/* function, the file, for readers the byte offset (and for the reference   */
/* format the line) where the problem was found, and the problem, e.g.      */
/* "hess_load_npy: w.npy: byte 20: dtype '<f4' is not supported (...)".     */
/* Numbers are written in C notation ('.' as the decimal point) whatever    */
/* the locale.                                                              */
/*                                                                          */
/* Saving (hess_save_npy, hess_save_npy_array, hess_save_ref,               */
/* hess_write_svg_heatmap and hess_write_svg_lines) is atomic on POSIX      */
/* systems: the file is written to a temporary file in the directory of its */
/* target, flushed to disk (fsync) and renamed over the target, so the      */
/* target holds either its old bytes or the complete new ones, and a reader */
/* that has the old file open keeps reading the old bytes.  On any failure  */
/* the old file is left byte for byte and only the temporary file is        */
/* removed.  The target is @p path, or, when @p path is a symbolic link to  */
/* a regular file, the file the link resolves to (the link is kept).  An    */
/* existing path that is not a regular file (a directory, device, FIFO or   */
/* socket, or a symbolic link to one) and a symbolic link to nothing are    */
/* refused with HESS_ERR_IO, nothing written.  A replaced file keeps its    */
/* permission bits (not its owner, ACLs or extended attributes, and other   */
/* hard links to it keep the old contents); a new file gets 0666 less the   */
/* umask.  The temporary file is named ".<name>.<16 hex digits>.tmp"; the   */
/* directory must be writable, even to replace a writable file.  On Windows */
/* the file is written in place, and removed when the write fails.          */
/*                                                                          */
/* Reading (hess_load_npy, hess_load_ref) never trusts the size the system  */
/* reports for a file (0 for /proc files and pipes): sizes in a header are  */
/* checked against bytes actually read before anything is allocated, so a   */
/* hostile header cannot make a reader allocate more than the input could   */
/* fill.  Pipes, FIFOs and terminals, which cannot seek, are read whole     */
/* into memory from the context's allocator (within what is left of its     */
/* byte limit, given back before returning), then parsed.                   */
/* ------------------------------------------------------------------------ */

/**
 * Writes @p t to @p path as a NumPy .npy file, readable with numpy.load(path):
 * format version 1.0, dtype '<f8' (little-endian float64 on any host),
 * fortran_order False, shape = t's shape (a rank-0 tensor gives shape ()),
 * the header padded with spaces and ended by '\n' so that the data starts at
 * a multiple of 64 bytes.  The values are copied bit for bit: signed zeros,
 * infinities and NaNs with their payloads (signalling NaNs included) read
 * back unchanged.  The save is atomic (see the section above): a failure
 * leaves an existing file as it was.
 * @return HESS_OK; HESS_ERR_ARG (NULL context, path or tensor, tensor of
 * another context); HESS_ERR_STATE (tensor freed by a rewind); HESS_ERR_IO
 * (path exists and is not a regular file or a link to one, is a link to
 * nothing, or the temporary file cannot be created, written, flushed or
 * renamed over the target; the message says which, with the system's
 * reason).  Cost O(numel), no context memory.
 */
HESS_API hess_status hess_save_npy(hess_context *ctx, const char *path, const hess_tensor *t);

/**
 * Like hess_save_npy() for an array in the caller's buffer, e.g. a Hessian
 * from hess_hessian() (ndim 2, shape {N, N}): @p data holds the product of
 * the shape's numel doubles, row-major, written bit for bit.  @p ndim is
 * 0..HESS_MAX_DIMS and every dimension >= 1 (HESS_ERR_ARG otherwise); the
 * atomic save, other statuses and cost as hess_save_npy().
 */
HESS_API hess_status hess_save_npy_array(
    hess_context *ctx, const char *path, int ndim, const int64_t *shape, const double *data);

/**
 * Reads a .npy file into a new tensor owned by @p ctx: a constant, or a
 * parameter (as hess_param_new()) when @p as_param is non-zero.  Reads format
 * versions 1.0, 2.0 and 3.0 exactly (any other pair of version bytes is
 * refused) with dtype '<f8', fortran_order False and a shape of rank
 * 0..HESS_MAX_DIMS with every dimension >= 1; the file must hold exactly the
 * shape's data after the header.  Values are copied bit for bit (NaN
 * payloads, signalling NaNs and signed zeros are kept).  Anything else,
 * including a truncated or malformed file, is HESS_ERR_IO with a one-line
 * message naming the file, the byte offset and what is wrong (bad magic,
 * unsupported version, header too long, missing or repeated key, Fortran
 * order, other dtype, negative, zero or absurd dimension, truncated data,
 * trailing bytes, a read error).  The header's sizes are checked against
 * bytes actually present (read, never taken from the size the system
 * reports) before the tensor is allocated, so a hostile header cannot make
 * it allocate more than the file could fill.  @p path may be a regular file,
 * a /proc file, a device, or a pipe or FIFO (read whole into memory first,
 * see the section above).
 * @return the tensor, or NULL with HESS_ERR_ARG (NULL path), HESS_ERR_IO or
 * HESS_ERR_NOMEM recorded (nothing is left in the context).  Cost O(numel);
 * from a pipe, memory for the bytes read (up to about four times their
 * number, in a scratch context freed before returning).
 */
HESS_API hess_tensor *hess_load_npy(hess_context *ctx, const char *path, int as_param);

/**
 * Reads an IDX file -- the format of MNIST and Fashion-MNIST: two zero bytes,
 * a type byte, a rank byte, one big-endian uint32 per dimension, then the
 * elements big-endian, row-major -- plain or gzip-compressed (recognised by
 * gzip's magic bytes 1f 8b, whatever the name; several gzip members are read
 * as one stream, as gzip -d does), into a new tensor owned by @p ctx: a
 * constant, or a parameter (as hess_param_new()) when @p as_param is
 * non-zero.  The rank is 1..HESS_MAX_DIMS, every dimension >= 1; the types
 * 0x08 (unsigned byte), 0x09 (signed byte), 0x0B (int16), 0x0C (int32), 0x0D
 * (float32) and 0x0E (float64) are read, each value converted exactly to a
 * double (a byte 255 is 255.0: the caller scales).  The file must hold
 * exactly the shape's data after the header.  Anything else, including a
 * truncated, malformed or corrupt file, is HESS_ERR_IO with a one-line
 * message naming the file, the byte offset and what is wrong (bad magic,
 * unknown type, rank 0 or above HESS_MAX_DIMS, a zero dimension, truncated
 * header or data, trailing bytes, a corrupt or truncated gzip stream, a read
 * error).  In a compressed file the offset of a problem of the IDX contents
 * is one in the decompressed data, and the message says "(decompressed)";
 * e.g. "hess_load_idx: t.gz: byte 16: (decompressed) truncated data (the shape
 * [60000,28,28] of unsigned byte needs 47040000 bytes, 100 follow)".  Sizes
 * in the header are checked against bytes actually present before the tensor
 * is allocated, so a hostile header cannot make it allocate more than the
 * data could fill: a plain file as hess_load_npy() does; a compressed file is
 * decompressed twice, first only to count its bytes (in a fixed buffer,
 * stopping one byte past what the header announces, and checking gzip's CRC
 * and length), then into the tensor.  A library built without zlib (CMake
 * option HESSIAN_ZLIB=off, or zlib not found) reads plain files only and
 * refuses a compressed one with HESS_ERR_IO saying so.  @p path may be what
 * hess_load_npy() accepts (a pipe is read whole into memory first).
 * @return the tensor, or NULL with HESS_ERR_ARG (NULL path), HESS_ERR_IO or
 * HESS_ERR_NOMEM recorded (nothing is left in the context).  Cost O(numel),
 * for a compressed file two decompressions; memory: the tensor, and zlib's
 * state (about 40 KiB, from the context's allocator in a scratch context freed
 * before returning).
 */
HESS_API hess_tensor *hess_load_idx(hess_context *ctx, const char *path, int as_param);

/** A tensor with a name, an entry of a hess_ref_file. */
typedef struct hess_named_tensor {
    const char *name;    /**< 1..63 bytes, no blanks or control characters */
    hess_tensor *tensor; /**< the tensor, of the context that loads or saves */
} hess_named_tensor;

/**
 * The contents of a file in libhessian's plain-text reference format
 * (tests/data/README.md): a header line that is exactly
 * "# libhessian reference case v1" (then "\n" or "\r\n"), optional
 * "case <word>" and "model <text>" lines, then for each tensor a line
 * "tensor <name> <ndim> <d0> ..." followed by its numel values, row-major.
 * Values read back bit for bit: finite numbers with 17 significant digits
 * ("-0" for negative zero), "inf" and "-inf", "nan" and "-nan" for the quiet
 * NaN with an empty payload (bits 0x7ff8000000000000, 0xfff8000000000000),
 * and "nan:0x" with the 16 hex digits of the bit pattern for any other NaN,
 * e.g. "nan:0x7ff0000000000001".
 */
typedef struct hess_ref_file {
    const char *case_name; /**< the case's name, one word (<= 127 bytes); NULL or "" = none */
    const char *model;     /**< one line, <= 500 bytes, no controls but tabs; NULL or "" = none */
    size_t n;              /**< number of tensors, >= 1 */
    const hess_named_tensor *tensors; /**< n tensors with distinct names, in file order */
} hess_ref_file;

/**
 * Writes @p file to @p path in the reference format, one row (last dimension)
 * of values per line, each value spelled as hess_ref_file says so that it
 * reads back bit for bit (NaN payloads and signs included).  The save is
 * atomic (see the section above): a failure leaves an existing file as it
 * was.
 * @return HESS_OK; HESS_ERR_ARG (NULL context, path or file, no tensors, a
 * name that is empty, too long, has blanks or repeats an earlier one, a case
 * name or model text that does not fit, a NULL tensor or one of another
 * context); HESS_ERR_STATE (tensor freed by a rewind); HESS_ERR_IO (as
 * hess_save_npy()).  Cost O(total numel), no context memory.
 */
HESS_API hess_status hess_save_ref(hess_context *ctx, const char *path, const hess_ref_file *file);

/**
 * Reads a reference-format file into @p out.  Every tensor is new and owned by
 * @p ctx, and so are the names, the tensors array and the case and model
 * strings ("" when absent).  Tensors whose names begin with @p param_prefix
 * (e.g. "param:") are made parameters, the others constants; NULL or "" makes
 * them all constants.  Only version 1 is read: the first line must be exactly
 * "# libhessian reference case v1" ("v10", "v1.5", "v1x", text after it or
 * blanks before it are refused).  Values are read bit for bit in the
 * spellings hess_ref_file lists; a NaN spelled otherwise ("NaN", "nan(1)",
 * "+nan", "nan:0x" without exactly 16 hex digits of a NaN) is malformed.
 * Malformed input (bad header, unknown keyword, a control byte, rank above
 * HESS_MAX_DIMS, a dimension < 1, a shape needing more values than the bytes
 * left could hold, a malformed or missing value, a name or token too long, a
 * repeated name, no tensors, a read error) is HESS_ERR_IO with a one-line
 * message naming the file, the byte offset and line, and the problem.  Shapes
 * are checked against bytes actually present (read, never taken from the
 * size the system reports) before a tensor is allocated.  @p path may be a
 * regular file, a /proc file, a device, or a pipe or FIFO (read whole into
 * memory first, see the section above).  What is read can always be written
 * back by hess_save_ref().
 * @return HESS_OK; HESS_ERR_ARG (NULL path or out); HESS_ERR_IO;
 * HESS_ERR_NOMEM.  On error *out is zeroed and nothing is left in the context.
 * Cost O(file size).
 */
HESS_API hess_status hess_load_ref(hess_context *ctx,
                                   const char *path,
                                   const char *param_prefix,
                                   hess_ref_file *out);

/**
 * The tensor called @p name in @p file, or NULL if there is none (or an
 * argument is NULL).  Cost O(n).
 */
HESS_API hess_tensor *hess_ref_find(const hess_ref_file *file, const char *name);

/* ------------------------------------------------------------------------ */
/* Pictures                                                                 */
/* ------------------------------------------------------------------------ */

/**
 * Writes the square matrix @p m (n x n doubles, row-major, e.g. a Hessian from
 * hess_hessian()) to @p path as a stand-alone SVG heatmap: no scripts, fonts
 * or images from elsewhere.  Colours are a diverging blue-white-red scale,
 * linear and symmetric about 0 up to the largest finite |value| (white for 0,
 * red for positive, blue for negative; NaN grey, +-Inf the end colours); a
 * legend shows the scale with its values.  When @p nblocks > 0 the rows and
 * columns are split into parameter blocks of @p sizes[0..nblocks-1] (which must
 * sum to n): the blocks are outlined and labelled "name (size)" along both
 * axes; @p names may be NULL, and so may any names[i] (the label is then the
 * size).  @p title (may be NULL) is drawn above the matrix.  Text is escaped
 * for XML, invalid UTF-8 replaced.  Above 300 rows the matrix is shown
 * downsampled to 300 x 300 cells, each showing the entry of largest magnitude
 * in its bin (the caption says so).  The save is atomic (see the section
 * "Interchange"): a failure leaves an existing file as it was.
 * @return HESS_OK; HESS_ERR_ARG (NULL context, path or m, n = 0 or too large,
 * sizes NULL or 0 or not summing to n); HESS_ERR_IO (as hess_save_npy());
 * HESS_ERR_NOMEM (the label positions, with blocks).  Cost O(n^2) time, file
 * size O(min(n, 300)^2), context memory O(nblocks), given back.
 */
HESS_API hess_status hess_write_svg_heatmap(hess_context *ctx,
                                            const char *path,
                                            size_t n,
                                            const double *m,
                                            size_t nblocks,
                                            const char *const names[],
                                            const size_t sizes[],
                                            const char *title);

/** One curve of hess_write_svg_lines(): the points (x[i], y[i]), i < n. */
typedef struct hess_series {
    const char *name; /**< its legend entry (UTF-8); NULL: none */
    size_t n;         /**< number of points; 0 draws nothing (x and y may then be NULL) */
    const double *x;  /**< n abscissas, in drawing order (need not be sorted) */
    const double *y;  /**< n ordinates */
} hess_series;

/**
 * Writes @p series[0..n_series-1] to @p path as a stand-alone SVG line chart
 * (SVG 1.1, no scripts, fonts or images from elsewhere), e.g. training curves,
 * a spectral density from hess_spectral_density() or a loss along a line.
 * Each series is drawn as lines joining its points in the order given, in its
 * own colour (eight colours, then again from the first); the lines break at
 * every point whose x or y is not finite (NaN, +-Inf), and a point alone
 * between breaks is drawn as a dot.  The axes cover the finite points of all
 * series, rounded out to ticks of 1, 2 or 5 times a power of ten (about five
 * per axis) with a grid; without finite points an axis is [0, 1], and a
 * single value v is shown on v +- 10% (+-0.5 about 0).  A series with n = 0
 * draws nothing but keeps its colour and legend entry.  When any series has a
 * name, a legend right of the plot lists the named ones.  @p title (drawn
 * above), @p xlabel and @p ylabel may each be NULL (not drawn).  Text is
 * escaped for XML, invalid UTF-8 replaced, as hess_write_svg_heatmap() does;
 * names are cut at 40 characters, axis labels at 100, the title at 200.
 * Numbers are written in C notation whatever the locale.  The arrays are only
 * read.  The save is atomic (see the section "Interchange"): a failure leaves
 * an existing file as it was.
 * @return HESS_OK; the pending status, doing nothing; HESS_ERR_ARG (NULL
 * context, path or series, n_series = 0, a series with n > 0 and NULL x or y,
 * a count no array could hold or points of all series overflowing size_t;
 * the message names the series); HESS_ERR_IO (as hess_save_npy()).  Cost
 * O(total points) time and file size, no context memory.
 */
HESS_API hess_status hess_write_svg_lines(hess_context *ctx,
                                          const char *path,
                                          const char *title,
                                          const char *xlabel,
                                          const char *ylabel,
                                          size_t n_series,
                                          const hess_series *series);

/* ------------------------------------------------------------------------ */
/* Derivative checks for users (in the spirit of PyTorch's gradcheck and    */
/* gradgradcheck)                                                           */
/* ------------------------------------------------------------------------ */

/**
 * A loss callback for hess_check_derivatives(): builds, from libhessian ops on
 * @p params[0..n-1] (and any tensors it holds in @p user), the same scalar loss
 * each time it is called, and returns it (NULL with an error recorded in the
 * context on failure).  It is called at perturbed parameter values and must
 * read the parameters' current values, i.e. rebuild the whole expression.
 */
typedef hess_tensor *(*hess_loss_fn)(hess_context *ctx,
                                     size_t n,
                                     hess_tensor *const params[],
                                     void *user);

/** Options of hess_check_derivatives(); a zeroed struct (or NULL) gives the defaults. */
typedef struct hess_check_opts {
    double eps;    /**< finite-difference step, scaled by max(1, |x|); 0 = 1e-6 */
    double rtol;   /**< relative tolerance; 0 = 1e-3 */
    double atol;   /**< absolute tolerance; 0 = 1e-5 */
    size_t n_hvp;  /**< random directions for the Hessian-vector check; 0 = 4 */
    uint64_t seed; /**< seed of the directions (the same seed, the same directions) */
} hess_check_opts;

/** What hess_check_report::what names: the kind of the worst element. */
enum hess_check_what {
    HESS_CHECK_NONE = 0,     /**< no element was compared */
    HESS_CHECK_GRADIENT = 1, /**< an element of the gradient */
    HESS_CHECK_HVP = 2       /**< an element of a Hessian-vector product */
};

/**
 * The result of hess_check_derivatives().  An element passes when
 * |analytic - numeric| <= atol + rtol * |numeric|; its scaled error is
 * |analytic - numeric| / (atol + rtol * |numeric|), so it passes when that is
 * <= 1 (NaN on either side counts as +Inf).  The worst element is the one with
 * the largest scaled error over both checks.
 */
typedef struct hess_check_report {
    int ok;              /**< 1 when every element passed, else 0 */
    double max_grad_err; /**< largest scaled error of the gradient check */
    double max_hvp_err;  /**< largest scaled error of the HVP check (0 if it did not run) */
    size_t param;        /**< worst element: index into params[] */
    int64_t index;       /**< worst element: row-major index within that parameter */
    double analytic;     /**< worst element: the analytic value */
    double numeric;      /**< worst element: the finite-difference value */
    int what;            /**< worst element: an enum hess_check_what value */
} hess_check_report;

/**
 * Checks the analytic derivatives of the loss built by @p f against central
 * finite differences at the parameters' current values.
 *
 * 1. Gradient: hess_grad() of the loss, against (f(x + h e_i) - f(x - h e_i)) /
 *    2h for every element i of every parameter, h = eps * max(1, |x_i|).
 * 2. Hessian-vector products, only when the gradient check passed: hess_hvp()
 *    along n_hvp random directions v (components uniform in [-1, 1], scaled to
 *    max |v_i| = 1), against (g(x + h v) - g(x - h v)) / 2h with g the analytic
 *    gradient, h = eps * max(1, max |x_i|).
 *
 * Each perturbed loss is built by calling @p f inside a mark and rewind, so
 * memory stays bounded; parameter values are restored afterwards (also on
 * error) and the context's memory is left as found.  A parameter the loss does
 * not depend on has a zero gradient.  Central differences have error O(h^2)
 * plus rounding O(|loss| * 1e-16 / h): with the defaults, tolerances suit
 * losses of moderate size; near a kink (relu at 0) the check may fail though
 * the derivatives are right.
 * @return HESS_OK when the check ran (@p report says whether it passed);
 * HESS_ERR_ARG (NULL context, callback, report or params, n = 0, a
 * non-parameter or another context's tensor, negative or non-finite options,
 * the callback's loss not a scalar); HESS_ERR_STATE; the callback's own error
 * when it returns NULL (HESS_ERR_ARG if it recorded none); HESS_ERR_NOMEM;
 * HESS_ERR_NONFINITE.  Cost: (2N + 1) calls of f plus one gradient, then per
 * direction one hess_hvp and 2 calls of f with their gradients (N =
 * hess_param_count()); memory 6N doubles plus two loss graphs.
 */
HESS_API hess_status hess_check_derivatives(hess_context *ctx,
                                            hess_loss_fn f,
                                            void *user,
                                            size_t n,
                                            hess_tensor *const params[],
                                            const hess_check_opts *opts,
                                            hess_check_report *report);

#ifdef __cplusplus
}
#endif
#endif /* HESSIAN_H */
