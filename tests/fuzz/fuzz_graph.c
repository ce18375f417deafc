/*
 * fuzz_graph.c -- a libFuzzer target: the input bytes are decoded into a small
 * program of libhessian calls (leaves of random shapes, valid and invalid,
 * with values including 0, +-1e300, +-1e-300, NaN, Inf and large negatives;
 * unary, binary, shape and loss ops on random earlier results; marks,
 * rewinds and clear_error), run in a fresh context, then differentiated with
 * hess_grad and every Hessian function.  It checks:
 *
 *  - nothing crashes (the sanitizers watch memory and undefined behaviour);
 *  - every failure is a status with a message naming a hess_ function, and a
 *    builder's NULL comes with an error in the context;
 *  - an error pending before a call is still the one reported after it, with
 *    the same message (the first error is kept);
 *  - for every valid program whose values are finite and moderate (|x| < 1e3,
 *    and no op near a kink or a domain edge: relu inputs, log, sqrt and pow
 *    bases, divisors all at least 0.05 from 0), the gradient agrees with
 *    central differences of the loss, H v (hess_hvp) with central differences
 *    of the gradient, and hess_hessian is symmetric and agrees with hess_hvp,
 *    hess_hessian_diag and hess_hvp_batch.
 *
 * A failed check prints what and where, then aborts (a libFuzzer crash).
 *
 * Input layout (all reads past the end give 0):
 *   byte 0  context: bit 0 HESS_CHECK_FINITE, bit 1 a 256 KiB byte limit,
 *           bit 2 an allocator that fails the (byte 1)-th allocation,
 *           bits 3-4 hess_grad flags of the first gradient, bit 5
 *           HESS_NO_SIMD (the portable kernels)
 *   byte 1  allocation to fail (with bit 2)
 *   then up to 32 instructions, each an opcode byte and its operands:
 *     0 param / 1 constant: rank, dims..., value seed, extreme-value byte
 *     2 unary op: op, slot, parameter byte
 *     3 binary op: op, slot, slot[, slot]
 *     4 mark / rewind / clear_error: sub-op
 *     5 any op of the registry, built from its record with zero parameters
 *       (the generic builder): op, slot, slot[, slot]; smooth_one_hot
 *       through the class losses instead: op, slot, slot, options byte
 *   (see decode_* below).  tests/fuzz/README.md describes the corpus.
 *
 * Built with -DFUZZ_STANDALONE it has a main() that runs the files named on
 * the command line (the corpus replay used by ctest, without libFuzzer);
 * there FUZZ_TRACE=1 prints the decoded program as it runs and FUZZ_VERBOSE=1
 * every failure message.
 */
#include "hessian.h"
#include "hess_internal.h" /* the op registry: the generic builder of every op */

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INSNS  32
#define MAX_SLOTS  24
#define MAX_PARAMS 8
#define MAX_FD_N   32  /* parameters elements for the finite-difference checks */
#define MAX_HESS_N 160 /* parameter elements for the Hessian calls */
#define MODERATE   1e3
#define MARGIN     0.05
/* Central-difference step, absolute: small against MARGIN, so that the
 * truncation error (h / distance to a singularity)^2 stays near 1e-9, and
 * large enough that rounding (1e-16 |loss| / h) stays below the tolerances'
 * absolute floor. */
#define FD_STEP 1e-6

/* ------------------------------------------------------------------------ */
/* Failing a check                                                          */
/* ------------------------------------------------------------------------ */

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_graph: check failed at line %d: %s\n  ", __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Input reader and the values it makes                                     */
/* ------------------------------------------------------------------------ */

typedef struct reader {
    const uint8_t *d;
    size_t n, i;
} reader;

static uint8_t next(reader *r)
{
    return r->i < r->n ? r->d[r->i++] : 0;
}

static const double EXTREMES[16] = {0.0,      1e300,     -1e300, 1e-300,  -1e-300, NAN,
                                    INFINITY, -INFINITY, -1000,  1000,    -1e6,    709.8,
                                    -745.2,   1e-8,      -0.0,   4.9e-324};

/* A dimension: mostly 1..4; a few bytes give invalid or huge ones. */
static int64_t decode_dim(uint8_t b)
{
    switch (b) {
    case 255:
        return 0;
    case 254:
        return -1;
    case 253:
        return INT64_C(1) << 31;
    case 252:
        return INT64_MAX;
    case 251:
        return INT64_C(1) << 40;
    default:
        return 1 + b % 4;
    }
}

/* A rank: mostly 0..3; a few bytes give 4..6, 7 or -1. */
static int decode_rank(uint8_t b)
{
    if (b >= 250)
        return b == 255 ? -1 : b == 254 ? HESS_MAX_DIMS + 1 : 4 + b % 3;
    return b % 4;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ------------------------------------------------------------------------ */
/* The context's allocator: a cap (so that absurd sizes fail fast, also     */
/* under ASan) and an optional k-th allocation failure                      */
/* ------------------------------------------------------------------------ */

typedef struct alloc_state {
    long count, fail_at;
    size_t live;
} alloc_state;

static void *f_alloc(size_t size, void *user)
{
    alloc_state *a = user;
    a->count++;
    if ((a->fail_at && a->count == a->fail_at) || size > ((size_t)64 << 20))
        return NULL;
    void *p = malloc(size);
    if (p)
        a->live += size;
    return p;
}

static void f_free(void *p, size_t size, void *user)
{
    alloc_state *a = user;
    a->live -= size;
    free(p);
}

/* ------------------------------------------------------------------------ */
/* The interpreter                                                          */
/* ------------------------------------------------------------------------ */

typedef struct run {
    hess_context *ctx;
    alloc_state mem;
    hess_tensor *slot[MAX_SLOTS];
    unsigned dep[MAX_SLOTS]; /* bit p: depends on param[p] */
    bool unsafe[MAX_SLOTS];  /* not fit for finite differences */
    bool dead[MAX_SLOTS];    /* freed by a rewind */
    int n_slots;
    hess_tensor *param[MAX_PARAMS]; /* NULL once freed by a rewind */
    int param_slot[MAX_PARAMS];
    size_t param_numel[MAX_PARAMS];
    int n_params;
    bool error_seen; /* some call failed */
    bool rewound;
    hess_mark mark;
    int mark_slots;
    bool marked;
    hess_tensor *loss;
    unsigned loss_dep;
    bool loss_unsafe;
} run;

static bool live(const run *R, int s)
{
    return s >= 0 && s < R->n_slots && R->slot[s] && !R->dead[s];
}

/* Checks on any failed call: an error is recorded, with a message naming a
 * library function. */
static void check_failure(const run *R, hess_status st, const char *what)
{
    const hess_status now = hess_context_status(R->ctx);
    const char *msg = hess_context_errmsg(R->ctx);
    CHECK(now != HESS_OK, "%s failed (status %d) but the context holds no error", what, st);
    CHECK(msg && msg[0] != '\0', "%s failed with an empty message", what);
    CHECK(strstr(msg, "hess_") != NULL, "%s: message \"%s\" names no function", what, msg);
    CHECK(strlen(msg) < 320, "%s: message too long", what);
#ifdef FUZZ_STANDALONE
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "  %s failed: %s\n", what, msg);
#endif
}

/* The error pending before a call, to check that the call keeps it. */
typedef struct pending {
    hess_status st;
    char msg[400];
} pending;

static void pending_save(const run *R, pending *p)
{
    p->st = hess_context_status(R->ctx);
    snprintf(p->msg, sizeof p->msg, "%s", hess_context_errmsg(R->ctx));
}

static void pending_check(const run *R, const pending *p, const char *what)
{
    if (p->st == HESS_OK)
        return;
    CHECK(hess_context_status(R->ctx) == p->st && !strcmp(hess_context_errmsg(R->ctx), p->msg),
          "%s replaced the pending error %d \"%s\" by %d \"%s\"", what, p->st, p->msg,
          hess_context_status(R->ctx), hess_context_errmsg(R->ctx));
}

static bool values_moderate(const hess_tensor *t)
{
    const double *x = hess_tensor_data(t);
    for (int64_t i = 0; i < hess_tensor_numel(t); i++)
        if (!(fabs(x[i]) < MODERATE))
            return false;
    return true;
}

/* True when some element of t is within MARGIN of 0 (or below it, if
 * negative_too is false and the op needs a positive argument). */
static bool near_edge(const hess_tensor *t, bool positive_domain)
{
    if (!t)
        return true;
    const double *x = hess_tensor_data(t);
    for (int64_t i = 0; i < hess_tensor_numel(t); i++)
        if (positive_domain ? !(x[i] >= MARGIN) : !(fabs(x[i]) >= MARGIN))
            return true;
    return false;
}

/* FUZZ_TRACE=1 (standalone build) prints the program as it runs. */
static int g_trace = -1;

static void trace(const run *R, const char *what, hess_tensor *t, int a, int b)
{
#ifdef FUZZ_STANDALONE
    if (g_trace < 0)
        g_trace = getenv("FUZZ_TRACE") != NULL;
    if (!g_trace)
        return;
    fprintf(stderr, "  s%d = %s(s%d, s%d)", R->n_slots, what, a, b);
    if (t) {
        fprintf(stderr, " [");
        for (int i = 0; i < hess_tensor_ndim(t); i++)
            fprintf(stderr, i ? ",%lld" : "%lld", (long long)hess_tensor_shape(t)[i]);
        fprintf(stderr, "] =");
        for (int64_t i = 0; i < hess_tensor_numel(t) && i < 6; i++)
            fprintf(stderr, " %.6g", hess_tensor_data(t)[i]);
        fprintf(stderr, "%s\n", hess_tensor_numel(t) > 6 ? " ..." : "");
    } else {
        fprintf(stderr, " -> NULL: %s\n", hess_context_errmsg(R->ctx));
    }
#else
    (void)R, (void)what, (void)t, (void)a, (void)b;
#endif
}

/* Records the result of a builder: a new slot (also for NULL, to feed NULL
 * operands to later ops). */
static void add_slot(run *R, hess_tensor *t, unsigned dep, bool unsafe, const char *what)
{
    if (!t) {
        check_failure(R, HESS_OK, what);
        R->error_seen = true;
    } else {
        CHECK(hess_tensor_ndim(t) >= 0 && hess_tensor_ndim(t) <= HESS_MAX_DIMS, "%s: rank %d", what,
              hess_tensor_ndim(t));
        int64_t n = 1;
        for (int i = 0; i < hess_tensor_ndim(t); i++) {
            CHECK(hess_tensor_shape(t)[i] >= 1, "%s: dimension %lld", what,
                  (long long)hess_tensor_shape(t)[i]);
            n *= hess_tensor_shape(t)[i];
        }
        CHECK(n == hess_tensor_numel(t), "%s: numel %lld but shape gives %lld", what,
              (long long)hess_tensor_numel(t), (long long)n);
        unsafe = unsafe || !values_moderate(t);
    }
    if (R->n_slots < MAX_SLOTS) {
        R->slot[R->n_slots] = t;
        R->dep[R->n_slots] = dep;
        R->unsafe[R->n_slots] = unsafe || !t;
        R->dead[R->n_slots] = false;
        R->n_slots++;
    }
}

/* A slot operand: usually a live one, sometimes NULL or a freed one. */
static int pick(run *R, uint8_t b)
{
    if (R->n_slots == 0)
        return -1;
    return b % (R->n_slots + 1) == (unsigned)R->n_slots ? -1 : b % (R->n_slots + 1);
}

static hess_tensor *slot_t(const run *R, int s)
{
    return s >= 0 ? R->slot[s] : NULL; /* dead slots too: the library must say STATE */
}

static unsigned slot_dep(const run *R, int s)
{
    return s >= 0 ? R->dep[s] : 0;
}

static bool slot_unsafe(const run *R, int s)
{
    return s < 0 || !live(R, s) || R->unsafe[s];
}

/* Counters for the standalone replay's summary. */
static long g_n_hessian, g_n_fd_grad, g_n_fd_hvp;

/* Length of the perturbation vector of the current interpret() call. */
static size_t g_perturb_n;

/* 0 param / 1 constant: rank, dims, seed, extreme. */
static void decode_leaf(run *R, reader *rd, bool param, const double *perturb, size_t *poff)
{
    const int nd = decode_rank(next(rd));
    int64_t shape[HESS_MAX_DIMS + 2];
    int64_t numel = 1;
    bool sane = nd >= 0 && nd <= HESS_MAX_DIMS;
    for (int i = 0; i < (nd > 0 ? nd : 0) && i < HESS_MAX_DIMS + 1; i++) {
        shape[i] = decode_dim(next(rd));
        sane = sane && shape[i] >= 1 && shape[i] <= 4;
        if (sane)
            numel *= shape[i];
    }
    uint64_t seed = 0x9E3779B97F4A7C15u ^ ((uint64_t)next(rd) << 8 | next(rd));
    const uint8_t ext = next(rd);
    double vals[4096];
    if (sane) {
        for (int64_t i = 0; i < numel; i++)
            vals[i] = ((double)(xorshift(&seed) >> 11) * (1.0 / 9007199254740992.0)) * 4.0 - 2.0;
        if (ext < 64) /* one element takes an extreme value */
            vals[(ext >> 4) % numel] = EXTREMES[ext % 16];
        if (param && perturb && R->n_params < MAX_PARAMS)
            for (int64_t i = 0; i < numel && *poff + (size_t)i < g_perturb_n; i++)
                vals[i] += perturb[*poff + (size_t)i];
    }
    pending p;
    pending_save(R, &p);
    hess_tensor *t = param ? hess_param_new(R->ctx, nd, shape, sane ? vals : NULL)
                           : hess_tensor_new(R->ctx, nd, shape, sane ? vals : NULL);
    pending_check(R, &p, param ? "hess_param_new" : "hess_tensor_new");
    unsigned dep = 0;
    if (t && param && R->n_params < MAX_PARAMS) {
        R->param[R->n_params] = t;
        R->param_slot[R->n_params] = R->n_slots;
        R->param_numel[R->n_params] = (size_t)hess_tensor_numel(t);
        dep = 1u << R->n_params;
        R->n_params++;
        *poff += (size_t)hess_tensor_numel(t);
    }
    trace(R, param ? "param" : "constant", t, -1, -1);
    add_slot(R, t, dep, false, param ? "hess_param_new" : "hess_tensor_new");
}

static const double POWS[12] = {2, 3, 0.5, -1, 1.5, -0.5, 0, 1, 2.5, NAN, INFINITY, -2};
static const double SCALES[8] = {2, -1, 0.5, 0, 1e300, NAN, -3, 1e-300};

/* 2 unary: op, slot, parameter byte. */
static void decode_unary(run *R, reader *rd)
{
    const uint8_t op = next(rd) % 21;
    const int s = pick(R, next(rd));
    const uint8_t pb = next(rd);
    hess_context *c = R->ctx;
    hess_tensor *a = slot_t(R, s), *t = NULL;
    const int axis = (int)(pb % 7) - 3; /* -3..3: some out of range */
    int64_t shape[HESS_MAX_DIMS + 1];
    const int nd = pb % 4;
    for (int i = 0; i < nd; i++)
        shape[i] = 1 + ((pb >> (2 + i)) & 3) % 4;
    bool unsafe = slot_unsafe(R, s);
    static const char *const names[21] = {
        "neg",         "exp",     "log",      "tanh",      "sigmoid", "relu",   "softplus",
        "square",      "sqrt",    "pow",      "scale",     "sum",     "mean",   "transpose",
        "log_softmax", "softmax", "sum_axis", "mean_axis", "reshape", "sum_to", "broadcast_to"};
    pending p;
    pending_save(R, &p);
    switch (op) {
    case 0:
        t = hess_neg(c, a);
        break;
    case 1:
        t = hess_exp(c, a);
        break;
    case 2:
        t = hess_log(c, a);
        unsafe = unsafe || (live(R, s) && near_edge(a, true));
        break;
    case 3:
        t = hess_tanh(c, a);
        break;
    case 4:
        t = hess_sigmoid(c, a);
        break;
    case 5:
        t = hess_relu(c, a);
        unsafe = unsafe || (live(R, s) && near_edge(a, false));
        break;
    case 6:
        t = hess_softplus(c, a);
        break;
    case 7:
        t = hess_square(c, a);
        break;
    case 8:
        t = hess_sqrt(c, a);
        unsafe = unsafe || (live(R, s) && near_edge(a, true));
        break;
    case 9: {
        const double e = POWS[pb % 12];
        t = hess_pow(c, a, e);
        if (live(R, s) && e != floor(e))
            unsafe = unsafe || near_edge(a, true);
        else if (live(R, s) && e < 0)
            unsafe = unsafe || near_edge(a, false);
        break;
    }
    case 10:
        /* a factor like 1e300 turns the finite-difference step into overflow */
        t = hess_scale(c, a, SCALES[pb % 8]);
        unsafe = unsafe || !(fabs(SCALES[pb % 8]) <= MODERATE);
        break;
    case 11:
        t = hess_sum(c, a);
        break;
    case 12:
        t = hess_mean(c, a);
        break;
    case 13:
        t = hess_transpose(c, a);
        break;
    case 14:
        t = hess_log_softmax(c, a, axis);
        break;
    case 15:
        t = hess_softmax(c, a, axis);
        break;
    case 16:
        t = hess_sum_axis(c, a, axis);
        break;
    case 17:
        t = hess_mean_axis(c, a, axis);
        break;
    case 18:
        t = hess_reshape(c, a, nd, shape);
        break;
    case 19:
        t = hess_sum_to(c, a, nd, shape);
        break;
    default: {
        /* broadcast to a's shape with a dimension prepended, or to an odd shape */
        int64_t bs[HESS_MAX_DIMS + 1];
        int bn = 0;
        if (live(R, s) && (pb & 1) && hess_tensor_ndim(a) < HESS_MAX_DIMS) {
            bs[bn++] = 1 + (pb >> 1) % 3;
            for (int i = 0; i < hess_tensor_ndim(a); i++)
                bs[bn++] = hess_tensor_shape(a)[i];
        } else {
            bn = nd;
            for (int i = 0; i < nd; i++)
                bs[i] = pb >= 248 ? decode_dim((uint8_t)(251 + i % 3)) : shape[i];
        }
        t = hess_broadcast_to(c, a, bn, bs);
        break;
    }
    }
    char what[48];
    snprintf(what, sizeof what, "hess_%s", names[op]);
    pending_check(R, &p, what);
    trace(R, what, t, s, -1);
    add_slot(R, t, slot_dep(R, s), unsafe, what);
}

/* 3 binary: op, slot, slot[, slot for linear's bias]. */
static void decode_binary(run *R, reader *rd)
{
    const uint8_t op = next(rd) % 10;
    const int s0 = pick(R, next(rd)), s1 = pick(R, next(rd));
    hess_context *c = R->ctx;
    hess_tensor *a = slot_t(R, s0), *b = slot_t(R, s1), *t = NULL;
    bool unsafe = slot_unsafe(R, s0) || slot_unsafe(R, s1);
    unsigned dep = slot_dep(R, s0) | slot_dep(R, s1);
    static const char *const names[10] = {
        "add",           "sub",    "mul",   "div", "matmul", "mse_loss", "bce_with_logits",
        "cross_entropy", "linear", "linear"};
    pending p;
    pending_save(R, &p);
    switch (op) {
    case 0:
        t = hess_add(c, a, b);
        break;
    case 1:
        t = hess_sub(c, a, b);
        break;
    case 2:
        t = hess_mul(c, a, b);
        break;
    case 3:
        t = hess_div(c, a, b);
        unsafe = unsafe || (live(R, s1) && near_edge(b, false));
        break;
    case 4:
        t = hess_matmul(c, a, b);
        break;
    case 5:
        t = hess_mse_loss(c, a, b);
        break;
    case 6:
        t = hess_bce_with_logits(c, a, b);
        break;
    case 7:
        /* targets are not differentiated: a perturbed run must see the same */
        t = hess_cross_entropy(c, a, b);
        unsafe = unsafe || slot_dep(R, s1) != 0;
        break;
    case 8:
        t = hess_linear(c, a, b, NULL);
        break;
    default: {
        const int s2 = pick(R, next(rd));
        t = hess_linear(c, a, b, slot_t(R, s2));
        unsafe = unsafe || slot_unsafe(R, s2);
        dep |= slot_dep(R, s2);
        break;
    }
    }
    char what[48];
    snprintf(what, sizeof what, "hess_%s", names[op]);
    pending_check(R, &p, what);
    trace(R, what, t, s0, s1);
    add_slot(R, t, dep, unsafe, what);
}

/* Ops of the registry without a shape rule: their builders are given the
 * shape, so opcode 5 cannot make them; opcodes 2 and 3 and the rules do
 * (one_hot is made by cross_entropy's rule, scatter_add by gather's;
 * smooth_one_hot by hess_cross_entropy_ex and hess_nll_loss, which opcode 5
 * calls when it picks smooth_one_hot: decode_class_loss). */
static const char *const BUILT_ELSEWHERE[] = {"reshape", "sum_to",      "broadcast_to",
                                              "one_hot", "scatter_add", "smooth_one_hot"};

/* The shape and indexing ops, when opcode 5 picks one of their records:
 * through the public builders (hess_squeeze, hess_unsqueeze and hess_reshape
 * with a -1 with permute's record, hess_stack with cat's), with parameters
 * from the next bytes, valid and not.  The adjoints (slice_scatter,
 * index_add) keep opcode 5's zero parameters.  False for other ops. */
static bool decode_shape_op(run *R,
                            reader *rd,
                            const hess_op_def *def,
                            hess_tensor *const src[],
                            const int s[],
                            unsigned dep)
{
    static const char *const ops[] = {"permute", "slice", "index_select", "gather", "cat"};
    int op = -1;
    for (int i = 0; i < 5 && op < 0; i++)
        op = strcmp(def->name, ops[i]) ? -1 : i;
    if (op < 0)
        return false;
    hess_context *c = R->ctx;
    hess_tensor *a = src[0], *t = NULL;
    const uint8_t b0 = next(rd), b1 = next(rd);
    const int axis = (int)(b0 % 9) - 4; /* -4..4: some out of range */
    const int nd = hess_tensor_ndim(a) > 0 ? hess_tensor_ndim(a) : 0;
    bool unsafe = slot_unsafe(R, s[0]);
    const char *what = "hess_permute";
    pending p;
    pending_save(R, &p);
    if (op == 0 && b1 % 4 == 0) {
        what = "hess_squeeze";
        t = hess_squeeze(c, a, axis);
    } else if (op == 0 && b1 % 4 == 1) {
        what = "hess_unsqueeze";
        t = hess_unsqueeze(c, a, axis);
    } else if (op == 0 && b1 % 4 == 2) {
        /* a's shape with one dim (or a bad one) replaced by -1 */
        int64_t shape[HESS_MAX_DIMS];
        for (int i = 0; i < nd && i < HESS_MAX_DIMS; i++)
            shape[i] = hess_tensor_shape(a)[i];
        if (nd > 0)
            shape[(b1 >> 2) % nd] = -1;
        if (nd > 1 && (b1 & 64))
            shape[0] = b1 & 128 ? -1 : shape[0] + 1;
        what = "hess_reshape";
        t = hess_reshape(c, a, nd, shape);
    } else if (op == 0) {
        /* a permutation of a's dims by swaps, sometimes spoilt */
        int perm[HESS_MAX_DIMS + 1];
        for (int i = 0; i < nd && i <= HESS_MAX_DIMS; i++)
            perm[i] = i;
        for (int i = nd - 1; i > 0 && i <= HESS_MAX_DIMS; i--) {
            const int j = next(rd) % (i + 1), tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
            if (b1 & 16)
                perm[i] -= nd; /* the same dim, counted from the end */
        }
        if (nd > 0 && (b1 & 32))
            perm[0] = b1 & 64 ? nd : perm[nd - 1];
        t = hess_permute(c, a, nd > 0 ? perm : NULL);
    } else if (op == 1) {
        const int64_t start = (int8_t)next(rd) % 6, stop = (int8_t)next(rd) % 6;
        const int64_t step = b1 < 250 ? (int64_t)(b1 % 4) : b1 == 255 ? INT64_MAX : -1;
        what = "hess_slice";
        t = hess_slice(c, a, axis, start, b0 & 128 ? INT64_MAX : stop, step);
    } else if (op == 2) {
        int64_t idx[8];
        const size_t n = b1 % 9;
        for (size_t i = 0; i < n; i++)
            idx[i] = (int64_t)(next(rd) % 6) - 1; /* -1..4: some out of range */
        what = "hess_index_select";
        t = hess_index_select(c, a, axis, n, b1 == 255 ? NULL : idx);
    } else if (op == 3) {
        /* an index shaped like a (or like src[1]) with values from bytes */
        hess_tensor *ix = src[1];
        if (b1 & 1) {
            double v[4096];
            const int64_t m =
                hess_tensor_numel(a) > 0 && hess_tensor_numel(a) <= 4096 ? hess_tensor_numel(a) : 0;
            for (int64_t i = 0; i < m; i++)
                v[i] = (double)(next(rd) % 5);
            ix = m ? hess_tensor_new(c, nd, hess_tensor_shape(a), v) : NULL;
        } else {
            unsafe = unsafe || slot_dep(R, s[1]) != 0 || slot_unsafe(R, s[1]);
        }
        dep = slot_dep(R, s[0]) | (b1 & 1 ? 0u : slot_dep(R, s[1]));
        what = "hess_gather";
        t = hess_gather(c, a, axis, ix);
    } else {
        hess_tensor *ts[3] = {src[0], src[1], src[b1 % 2]};
        const size_t n = 1 + b1 % 3;
        unsafe = unsafe || (n > 1 && slot_unsafe(R, s[1]));
        dep = slot_dep(R, s[0]) | (n > 1 ? slot_dep(R, s[1]) : 0u);
        what = b0 & 128 ? "hess_stack" : "hess_cat";
        t = b0 & 128 ? hess_stack(c, n, ts, axis) : hess_cat(c, n, ts, axis);
    }
    pending_check(R, &p, what);
    trace(R, what, t, s[0], s[1]);
    add_slot(R, t, dep, unsafe, what);
    return true;
}

/* smooth_one_hot, for opcode 5: hess_cross_entropy_ex or hess_nll_loss of
 * slot a (logits, log-probabilities) and the next slot (targets, rarely all
 * class indices: most calls fail, and the failures are checked), with an
 * options byte: bits 0-1 reduction (3 is refused), 2 use_ignore_index, 3
 * ignore_index -100 (else 0), 4 label_smoothing 0.25 (refused by NLL), 5 a
 * weight of ones [C], 7 NLL. */
static void decode_class_loss(run *R, reader *rd, int a)
{
    const int b = pick(R, next(rd));
    const uint8_t ob = next(rd);
    hess_context *c = R->ctx;
    hess_tensor *x = slot_t(R, a), *tg = slot_t(R, b);
    const bool nll = (ob >> 7) & 1;
    const char *what = nll ? "hess_nll_loss" : "hess_cross_entropy_ex";
    hess_loss_opts o = {0};
    o.reduction = ob & 3;
    o.use_ignore_index = (ob >> 2) & 1;
    o.ignore_index = (ob >> 3) & 1 ? -100 : 0;
    o.label_smoothing = (ob >> 4) & 1 ? 0.25 : 0.0;
    pending p;
    pending_save(R, &p);
    if (((ob >> 5) & 1) && live(R, a) && hess_tensor_ndim(x) >= 1) {
        const int64_t C = hess_tensor_shape(x)[hess_tensor_ndim(x) - 1];
        double ones[64];
        for (int i = 0; i < 64; i++)
            ones[i] = 1.0;
        if (C <= 64)
            o.weight = hess_tensor_new(c, 1, &C, ones);
    }
    hess_tensor *t = nll ? hess_nll_loss(c, x, tg, &o) : hess_cross_entropy_ex(c, x, tg, &o);
    pending_check(R, &p, what);
    trace(R, what, t, a, b);
    /* targets are not differentiated: a perturbed run must see the same */
    const bool unsafe = slot_unsafe(R, a) || slot_unsafe(R, b) || slot_dep(R, b) != 0;
    add_slot(R, t, slot_dep(R, a) | slot_dep(R, b), unsafe, what);
}

/* Every op of the registry is fuzzed: by opcode 5 or, without a shape rule,
 * through one of the builders above.  Checked before the first input, so an
 * op added without either fails the corpus replay. */
static void check_op_coverage(void)
{
    for (size_t i = 0; i < hess__op_count(); i++) {
        const hess_op_def *d = hess__op_at(i);
        bool ok = d->shape != NULL;
        for (size_t j = 0; !ok && j < sizeof BUILT_ELSEWHERE / sizeof BUILT_ELSEWHERE[0]; j++)
            ok = strcmp(d->name, BUILT_ELSEWHERE[j]) == 0;
        CHECK(ok, "op %s has no shape rule and no builder in fuzz_graph", d->name);
    }
}

/* 5: an op of the registry by its record, operands from the slots, zero
 * parameters; its derivatives are not compared with finite differences (the
 * parameters and points are arbitrary), but everything else is checked. */
static void decode_registry_op(run *R, reader *rd)
{
    const hess_op_def *def = hess__op_at(next(rd) % hess__op_count());
    hess_tensor *src[HESS_MAX_SRC] = {NULL, NULL, NULL};
    int s[HESS_MAX_SRC] = {-1, -1, -1};
    unsigned dep = 0;
    for (int i = 0; i < def->arity; i++) {
        s[i] = pick(R, next(rd));
        src[i] = slot_t(R, s[i]);
        dep |= slot_dep(R, s[i]);
    }
    if (decode_shape_op(R, rd, def, src, s, dep))
        return;
    if (!def->shape) { /* made by the builders of opcodes 2 and 3, or: */
        if (strcmp(def->name, "smooth_one_hot") == 0)
            decode_class_loss(R, rd, s[0]);
        return;
    }
    const hess_op_params par = {.affine = {0.0, 0.0}};
    char what[48];
    snprintf(what, sizeof what, "hess_%s", def->name);
    pending p;
    pending_save(R, &p);
    hess_tensor *t = hess__apply(R->ctx, def, src, &par, what);
    pending_check(R, &p, what);
    trace(R, what, t, s[0], s[1]);
    add_slot(R, t, dep, true, what);
}

/* 4: 0 mark, 1 rewind to the mark, 2 clear_error, 3 rewind with a foreign or
 * stale mark. */
static void decode_control(run *R, reader *rd)
{
    const uint8_t sub = next(rd) % 4;
    if (sub == 0) {
        R->mark = hess_context_mark(R->ctx);
        R->mark_slots = R->n_slots;
        R->marked = true;
    } else if (sub == 1 && R->marked) {
        pending p;
        pending_save(R, &p);
        hess_status st = hess_context_rewind(R->ctx, R->mark);
        pending_check(R, &p, "hess_context_rewind");
        if (st == HESS_OK) {
            for (int s = R->mark_slots; s < R->n_slots; s++)
                R->dead[s] = true;
            for (int i = 0; i < R->n_params; i++)
                if (R->param_slot[i] >= R->mark_slots)
                    R->param[i] = NULL;
            R->rewound = true;
        } else {
            /* a mark made before an earlier rewind went back past it */
            check_failure(R, st, "hess_context_rewind");
            R->error_seen = true;
        }
    } else if (sub == 2) {
        hess_context_clear_error(R->ctx);
        CHECK(hess_context_status(R->ctx) == HESS_OK && hess_context_errmsg(R->ctx)[0] == '\0',
              "clear_error left \"%s\"", hess_context_errmsg(R->ctx));
    } else {
        hess_mark m = hess_context_mark(R->ctx);
        m.ctx_id ^= 0x5a5a; /* not this context's */
        pending p;
        pending_save(R, &p);
        hess_status st = hess_context_rewind(R->ctx, m);
        pending_check(R, &p, "hess_context_rewind");
        CHECK(st == HESS_ERR_ARG, "rewind to a foreign mark gave %d", st);
        check_failure(R, st, "hess_context_rewind");
        R->error_seen = true;
    }
}

/* Decodes and runs the program.  With perturb, the parameters' values are
 * shifted by it (flattened in creation order) and no failing allocator or
 * byte limit is used. */
static bool interpret(const uint8_t *data, size_t size, const double *perturb, run *R)
{
    memset(R, 0, sizeof *R);
    reader rd = {data, size, 0};
    const uint8_t h0 = next(&rd), h1 = next(&rd);
    hess_config cfg = {
        f_alloc, f_free, &R->mem,
        0,       0,      ((h0 & 1) ? HESS_CHECK_FINITE : 0) | ((h0 & 32) ? HESS_NO_SIMD : 0)};
    if (!perturb) {
        if (h0 & 2)
            cfg.max_bytes = (size_t)256 << 10;
        if (h0 & 4)
            R->mem.fail_at = 1 + h1;
    }
    hess_status st = hess_context_create(&cfg, &R->ctx);
    if (st != HESS_OK) {
        CHECK(st == HESS_ERR_NOMEM && R->ctx == NULL && R->mem.live == 0, "hess_context_create: %d",
              st);
        return false;
    }
    size_t poff = 0;
    for (int k = 0; k < MAX_INSNS && rd.i < rd.n; k++) {
        switch (next(&rd) % 6) {
        case 0:
            decode_leaf(R, &rd, true, perturb, &poff);
            break;
        case 1:
            decode_leaf(R, &rd, false, NULL, &poff);
            break;
        case 2:
            decode_unary(R, &rd);
            break;
        case 3:
            decode_binary(R, &rd);
            break;
        case 4:
            decode_control(R, &rd);
            break;
        default:
            decode_registry_op(R, &rd);
            break;
        }
        CHECK((size_t)hess_context_bytes(R->ctx) == R->mem.live,
              "hess_context_bytes %zu but the allocator holds %zu", hess_context_bytes(R->ctx),
              R->mem.live);
    }
    if (hess_context_status(R->ctx) != HESS_OK)
        R->error_seen = true;
    /* The loss: the last live scalar that depends on a parameter, else the sum
     * of the last live tensor that does. */
    for (int s = R->n_slots - 1; s >= 0 && !R->loss; s--)
        if (live(R, s) && R->dep[s] && hess_tensor_numel(R->slot[s]) == 1) {
            R->loss = R->slot[s];
            R->loss_dep = R->dep[s];
            R->loss_unsafe = R->unsafe[s];
        }
    for (int s = R->n_slots - 1; s >= 0 && !R->loss; s--)
        if (live(R, s) && R->dep[s]) {
            pending p;
            pending_save(R, &p);
            R->loss = hess_sum(R->ctx, R->slot[s]);
            pending_check(R, &p, "hess_sum");
            if (!R->loss) {
                check_failure(R, HESS_OK, "hess_sum");
                R->error_seen = true;
                break;
            }
            R->loss_dep = R->dep[s];
            R->loss_unsafe = R->unsafe[s] || !values_moderate(R->loss);
        }
    return R->loss != NULL;
}

static void finish(run *R)
{
    hess_context_destroy(R->ctx);
    CHECK(R->mem.live == 0, "%zu bytes held after hess_context_destroy", R->mem.live);
}

/* ------------------------------------------------------------------------ */
/* Differentiation                                                          */
/* ------------------------------------------------------------------------ */

/* The parameters the loss depends on, live, in creation order. */
static int used_params(const run *R, hess_tensor *out[MAX_PARAMS], size_t *N)
{
    int n = 0;
    *N = 0;
    for (int i = 0; i < R->n_params; i++)
        if ((R->loss_dep >> i & 1u) && R->param[i]) {
            out[n++] = R->param[i];
            *N += (size_t)hess_tensor_numel(R->param[i]);
        }
    return n;
}

static void check_status(const run *R, hess_status st, const char *what)
{
    CHECK(st <= 0 && st >= HESS_ERR_CANCELLED, "%s returned an unknown status %d", what, st);
    if (st != HESS_OK) {
        check_failure(R, st, what);
        CHECK(hess_context_status(R->ctx) == st, "%s returned %d but the context holds %d", what,
              st, hess_context_status(R->ctx));
    }
}

static bool all_finite(const double *x, size_t n, double limit)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabs(x[i]) < limit))
            return false;
    return true;
}

/* Flattened gradient of a run's loss in the given parameters. */
static hess_status flat_grad(run *R, int n, hess_tensor *const p[], double *g, unsigned flags)
{
    hess_tensor *gt[MAX_PARAMS];
    pending pe;
    pending_save(R, &pe);
    hess_status st = hess_grad(R->ctx, R->loss, (size_t)n, p, gt, flags);
    pending_check(R, &pe, "hess_grad");
    check_status(R, st, "hess_grad");
    if (st != HESS_OK) {
        for (int i = 0; i < n; i++)
            CHECK(gt[i] == NULL, "hess_grad failed but grads[%d] is set", i);
        return st;
    }
    for (int i = 0, off = 0; i < n; off += (int)hess_tensor_numel(gt[i]), i++) {
        CHECK(hess_tensor_ndim(gt[i]) == hess_tensor_ndim(p[i]) &&
                  !memcmp(hess_tensor_shape(gt[i]), hess_tensor_shape(p[i]),
                          (size_t)hess_tensor_ndim(p[i]) * sizeof(int64_t)),
              "gradient %d is not shaped like its parameter", i);
        memcpy(g + off, hess_tensor_data(gt[i]), (size_t)hess_tensor_numel(gt[i]) * sizeof *g);
    }
    return HESS_OK;
}

/* The loss and gradient of the program with the parameters shifted by d
 * (over all parameters, creation order); false if that run fails. */
static bool eval_at(const uint8_t *data, size_t size, const double *d, double *loss, double *g)
{
    run R2;
    bool ok = interpret(data, size, d, &R2) && !R2.error_seen;
    if (ok) {
        hess_tensor *p[MAX_PARAMS];
        size_t N;
        const int n = used_params(&R2, p, &N);
        *loss = hess_tensor_data(R2.loss)[0];
        ok = n > 0 && isfinite(*loss) && (!g || flat_grad(&R2, n, p, g, 0) == HESS_OK) &&
             (!g || all_finite(g, N, INFINITY));
    }
    if (R2.ctx)
        finish(&R2);
    return ok;
}

/* Offsets of the used parameters inside the all-parameter perturbation vector. */
static void used_offsets(const run *R, size_t *off, size_t *total)
{
    size_t o = 0;
    int k = 0;
    for (int i = 0; i < R->n_params; i++) {
        const size_t n = R->param_numel[i];
        if ((R->loss_dep >> i & 1u) && R->param[i])
            for (size_t j = 0; j < n; j++)
                off[k++] = o + j;
        o += n;
    }
    *total = o;
}

static bool close_enough(double a, double b, double rtol, double atol)
{
    return fabs(a - b) <= rtol * (fabs(a) + fabs(b)) + atol;
}

/* Gradient against central differences of the loss; H v against central
 * differences of the gradient. */
static void fd_checks(const uint8_t *data,
                      size_t size,
                      const run *R,
                      const double *g,
                      const double *hv,
                      const double *v,
                      size_t N)
{
    size_t off[MAX_FD_N], total;
    used_offsets(R, off, &total);
    double *d = calloc(total + 1, sizeof *d);
    g_perturb_n = total;
    double gp[MAX_FD_N], gm[MAX_FD_N], Lp, Lm, gmax = 0;
    const double L0 = hess_tensor_data(R->loss)[0];
    for (size_t i = 0; i < N; i++)
        gmax = fmax(gmax, fabs(g[i]));
    for (size_t i = 0; i < N; i++) {
        const double h = FD_STEP;
        d[off[i]] = h;
        bool ok = eval_at(data, size, d, &Lp, NULL);
        d[off[i]] = -h;
        ok = ok && eval_at(data, size, d, &Lm, NULL);
        d[off[i]] = 0;
        if (!ok)
            goto out; /* a perturbed run failed (e.g. crossed a domain edge) */
        const double fd = (Lp - Lm) / (2 * h);
        CHECK(close_enough(g[i], fd, 1e-4, 1e-6 * (1 + fabs(L0) + gmax)),
              "gradient[%zu] = %.12g but central differences give %.12g (loss %.6g)", i, g[i], fd,
              L0);
    }
    g_n_fd_grad++;
    double hvmax = 0;
    for (size_t i = 0; i < N; i++)
        hvmax = fmax(hvmax, fabs(hv[i]));
    const double h = FD_STEP;
    for (size_t i = 0; i < N; i++)
        d[off[i]] = h * v[i];
    bool ok = eval_at(data, size, d, &Lp, gp);
    for (size_t i = 0; i < N; i++)
        d[off[i]] = -h * v[i];
    ok = ok && eval_at(data, size, d, &Lm, gm);
    g_n_fd_hvp += ok;
    if (ok)
        for (size_t i = 0; i < N; i++) {
            const double fd = (gp[i] - gm[i]) / (2 * h);
            CHECK(close_enough(hv[i], fd, 1e-4, 1e-6 * (1 + gmax + hvmax)),
                  "Hv[%zu] = %.12g but central differences of the gradient give %.12g", i, hv[i],
                  fd);
        }
out:
    free(d);
}

/* Cancels hess_hessian_ex once `at` rows are done; records how many were. */
typedef struct cancel_at {
    size_t at, done;
} cancel_at;

static int progress_cancel(size_t done, size_t total, void *user)
{
    cancel_at *c = user;
    CHECK(done <= total && done > c->done, "progress %zu of %zu after %zu", done, total, c->done);
    c->done = done;
    return done >= c->at;
}

/* The other functions on the same loss, after the mark check (they leave
 * tensors in the context): hess_vjp seeded with 2 (= 2 g), the diagonal as
 * tensors (= diag) and hess_hessian_ex cancelled part way (the rows reported
 * done = those of H).  compare: the loss is fit for comparisons. */
static void more_checks(run *R,
                        int n,
                        hess_tensor *const p[],
                        size_t N,
                        const double *g,
                        const double *H,
                        const double *diag,
                        size_t size,
                        bool compare)
{
    hess_tensor *two = hess_scalar(R->ctx, 2.0), *gt[MAX_PARAMS], *dt[MAX_PARAMS];
    hess_tensor *seed =
        two && hess_tensor_ndim(R->loss) > 0
            ? hess_reshape(R->ctx, two, hess_tensor_ndim(R->loss), hess_tensor_shape(R->loss))
            : two;
    if (!seed)
        return;
    hess_status st = hess_vjp(R->ctx, 1, &R->loss, &seed, (size_t)n, p, gt, 0);
    check_status(R, st, "hess_vjp");
    for (int i = 0, off = 0; st == HESS_OK && compare && i < n;
         off += (int)hess_tensor_numel(gt[i]), i++)
        for (int64_t j = 0; j < hess_tensor_numel(gt[i]); j++)
            CHECK(close_enough(hess_tensor_data(gt[i])[j], 2 * g[off + j], 1e-12, 1e-300),
                  "hess_vjp with seed 2 gave %.17g, 2 g = %.17g", hess_tensor_data(gt[i])[j],
                  2 * g[off + j]);
    st = hess_hessian_diag_tensors(R->ctx, R->loss, (size_t)n, p, dt);
    check_status(R, st, "hess_hessian_diag_tensors");
    for (int i = 0, off = 0; st == HESS_OK && compare && i < n;
         off += (int)hess_tensor_numel(dt[i]), i++)
        for (int64_t j = 0; j < hess_tensor_numel(dt[i]); j++)
            CHECK(hess_tensor_data(dt[i])[j] == diag[off + j],
                  "hess_hessian_diag_tensors gave %.17g, hess_hessian_diag %.17g",
                  hess_tensor_data(dt[i])[j], diag[off + j]);
    double *rows = malloc(N * N * sizeof *rows);
    cancel_at c = {1 + size % N, 0};
    const hess_hessian_opts o = {
        .block_rows = 1 + size % 4, .progress = progress_cancel, .user = &c};
    st = hess_hessian_ex(R->ctx, R->loss, (size_t)n, p, &o, rows);
    check_status(R, st, "hess_hessian_ex");
    if (st == HESS_OK)
        CHECK(c.done == N, "hess_hessian_ex finished after %zu of %zu rows", c.done, N);
    if (st == HESS_ERR_CANCELLED) {
        CHECK(c.done < N || c.at <= N, "cancelled with nothing left to do");
        double hmax = 0;
        for (size_t i = 0; i < N * N; i++)
            hmax = fmax(hmax, fabs(H[i]));
        for (size_t i = 0; compare && i < c.done * N; i++)
            CHECK(close_enough(rows[i], H[i], 1e-9, 1e-9 * (1 + hmax)),
                  "hess_hessian_ex cancelled after %zu rows: element %zu = %.17g, H = %.17g",
                  c.done, i, rows[i], H[i]);
        hess_context_clear_error(R->ctx);
    }
    free(rows);
}

/* Every Hessian function on the run's loss: statuses and messages always;
 * symmetry and agreement between them when they succeed. */
static void hessian_checks(const uint8_t *data, size_t size, run *R, bool fd_ok)
{
    hess_tensor *p[MAX_PARAMS];
    size_t N;
    const int n = used_params(R, p, &N);
    if (n == 0 || N > MAX_HESS_N)
        return;
    double *H = malloc(N * N * sizeof *H), *g = malloc(N * sizeof *g);
    double *v = malloc(2 * N * sizeof *v), *hv = malloc(N * sizeof *hv);
    double *HV = malloc(2 * N * sizeof *HV), *diag = malloc(N * sizeof *diag);
    double *blk = malloc(N * N * sizeof *blk), *dbp = malloc(N * sizeof *dbp);
    double *hvf = malloc(N * sizeof *hvf), jv = 0;
    uint64_t s = 0x2545F4914F6CDD1Du ^ size;
    for (size_t i = 0; i < 2 * N; i++)
        v[i] = ((double)(xorshift(&s) >> 11) * (1.0 / 9007199254740992.0)) * 2.0 - 1.0;

    hess_status st_g = flat_grad(R, n, p, g, 0);
    const hess_mark m0 = hess_context_mark(R->ctx);
    pending pe;
    pending_save(R, &pe);
    const hess_status st_h = hess_hessian(R->ctx, R->loss, (size_t)n, p, H);
    pending_check(R, &pe, "hess_hessian");
    check_status(R, st_h, "hess_hessian");
    const hess_status st_v = hess_hvp(R->ctx, R->loss, (size_t)n, p, v, hv);
    check_status(R, st_v, "hess_hvp");
    const hess_status st_d = hess_hessian_diag(R->ctx, R->loss, (size_t)n, p, diag);
    check_status(R, st_d, "hess_hessian_diag");
    const hess_hessian_opts opts = {.block_rows = 1 + size % 3};
    const hess_status st_b = hess_hvp_batch(R->ctx, R->loss, (size_t)n, p, 2, v, &opts, HV);
    check_status(R, st_b, "hess_hvp_batch");
    const hess_status st_k = hess_hessian_block(R->ctx, R->loss, p[0], p[n - 1], blk);
    check_status(R, st_k, "hess_hessian_block");
    /* the diagonal by curvature backpropagation, forced: exact, or refused
     * (HESS_ERR_ARG saying what it does not cover); forward mode */
    hess_hessian_opts bo = {0};
    bo.method = HESS_DIAG_BACKPROP;
    const hess_status before = hess_context_status(R->ctx);
    hess_status st_bp = hess_hessian_diag_ex(R->ctx, R->loss, (size_t)n, p, &bo, dbp);
    if (before == HESS_OK && st_bp == HESS_ERR_ARG &&
        strstr(hess_context_errmsg(R->ctx), "does not cover")) {
        hess_context_clear_error(R->ctx);
    } else {
        check_status(R, st_bp, "hess_hessian_diag_ex (backprop)");
    }
    const hess_status st_j = hess_jvp(R->ctx, R->loss, (size_t)n, p, v, &jv);
    check_status(R, st_j, "hess_jvp");
    const hess_status st_f = hess_hvp_fwd(R->ctx, R->loss, (size_t)n, p, v, hvf);
    check_status(R, st_f, "hess_hvp_fwd");
    /* the Hessian functions leave the context's memory as they found it */
    const hess_mark m1 = hess_context_mark(R->ctx);
    CHECK(m1.block == m0.block && m1.used == m0.used && m1.nodes == m0.nodes,
          "the Hessian functions left the context changed: block %zu->%zu, used %zu->%zu, "
          "nodes %lld->%lld",
          m0.block, m1.block, m0.used, m1.used, (long long)m0.nodes, (long long)m1.nodes);

    const bool all_ok = st_g == HESS_OK && st_h == HESS_OK && st_v == HESS_OK && st_d == HESS_OK &&
                        st_b == HESS_OK && st_k == HESS_OK;
    more_checks(R, n, p, N, g, H, diag, size,
                all_ok && !R->loss_unsafe && all_finite(H, N * N, 1e8) && all_finite(g, N, 1e8));
    /* Only for a loss away from kinks and singularities: near one (sqrt of
     * 1e-16, say) the double-backward graph holds terms of 1e16 that cancel,
     * and the functions' different summation orders differ by their rounding
     * (tests/fuzz/corpus/regress_cancellation_near_zero.bin). */
    if (all_ok && !R->loss_unsafe && all_finite(H, N * N, 1e8) && all_finite(g, N, 1e8)) {
        g_n_hessian++;
        double hmax = 0;
        for (size_t i = 0; i < N * N; i++)
            hmax = fmax(hmax, fabs(H[i]));
        const double atol = 1e-9 * (1 + hmax);
        for (size_t i = 0; i < N; i++) {
            for (size_t j = 0; j < i; j++)
                CHECK(close_enough(H[i * N + j], H[j * N + i], 1e-9, atol),
                      "H[%zu][%zu] = %.17g but H[%zu][%zu] = %.17g", i, j, H[i * N + j], j, i,
                      H[j * N + i]);
            CHECK(close_enough(diag[i], H[i * N + i], 1e-9, atol),
                  "hess_hessian_diag[%zu] = %.17g, H[%zu][%zu] = %.17g", i, diag[i], i, i,
                  H[i * N + i]);
            CHECK(st_bp != HESS_OK || close_enough(dbp[i], H[i * N + i], 1e-9, atol),
                  "hess_hessian_diag by backpropagation [%zu] = %.17g, H[%zu][%zu] = %.17g", i,
                  dbp[i], i, i, H[i * N + i]);
            double Hv = 0, Hv1 = 0;
            for (size_t j = 0; j < N; j++) {
                Hv += H[i * N + j] * v[j];
                Hv1 += H[i * N + j] * v[N + j];
            }
            const double vt = 1e-9 * (1 + hmax * (double)N);
            CHECK(close_enough(hv[i], Hv, 1e-8, vt), "hess_hvp[%zu] = %.17g, H v = %.17g", i, hv[i],
                  Hv);
            CHECK(st_f != HESS_OK || close_enough(hvf[i], Hv, 1e-8, vt),
                  "hess_hvp_fwd[%zu] = %.17g, H v = %.17g", i, hvf[i], Hv);
            CHECK(close_enough(HV[i], Hv, 1e-8, vt), "hess_hvp_batch[0][%zu] = %.17g, H v = %.17g",
                  i, HV[i], Hv);
            CHECK(close_enough(HV[N + i], Hv1, 1e-8, vt),
                  "hess_hvp_batch[1][%zu] = %.17g, H v = %.17g", i, HV[N + i], Hv1);
        }
        /* forward mode: the loss's tangent is g . v */
        double gv = 0, gmag = 0;
        for (size_t i = 0; i < N; i++) {
            gv += g[i] * v[i];
            gmag += fabs(g[i] * v[i]);
        }
        CHECK(st_j != HESS_OK || close_enough(jv, gv, 1e-9, 1e-9 * (1 + gmag)),
              "hess_jvp of the loss = %.17g, g . v = %.17g", jv, gv);
        /* the block p[0] x p[n-1] is the matching slice of H */
        const size_t r0 = 0, c0 = N - (size_t)hess_tensor_numel(p[n - 1]);
        const size_t nr = (size_t)hess_tensor_numel(p[0]), nc = (size_t)hess_tensor_numel(p[n - 1]);
        for (size_t i = 0; i < nr; i++)
            for (size_t j = 0; j < nc; j++)
                CHECK(close_enough(blk[i * nc + j], H[(r0 + i) * N + c0 + j], 1e-9, atol),
                      "block[%zu][%zu] = %.17g, H = %.17g", i, j, blk[i * nc + j],
                      H[(r0 + i) * N + c0 + j]);
        if (fd_ok && N <= MAX_FD_N && all_finite(hv, N, 1e6) && all_finite(g, N, 1e6))
            fd_checks(data, size, R, g, hv, v, N);
    }
    free(H), free(g), free(v), free(hv), free(HV), free(diag), free(blk), free(dbp), free(hvf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    check_op_coverage();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run R;
    const bool have_loss = interpret(data, size, NULL, &R);
    if (!R.ctx)
        return 0;
    if (have_loss) {
        /* a first gradient with the flags the input asks for */
        hess_tensor *p[MAX_PARAMS];
        size_t N;
        const int n = used_params(&R, p, &N);
        double *g = malloc((N + 1) * sizeof *g);
        const unsigned flags = (size ? data[0] >> 3 : 0) & 3u;
        if (n > 0)
            (void)flat_grad(&R, n, p, g, flags);
        free(g);
        const bool fd_ok = !R.error_seen && !R.loss_unsafe &&
                           hess_context_status(R.ctx) == HESS_OK &&
                           isfinite(hess_tensor_data(R.loss)[0]);
        hessian_checks(data, size, &R, fd_ok);
    }
    finish(&R);
    return 0;
}

#ifdef FUZZ_STANDALONE
/* Runs each file named on the command line once (corpus replay). */
int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            fprintf(stderr, "fuzz_graph: cannot open %s\n", argv[i]);
            return 2;
        }
        static uint8_t buf[1 << 16];
        const size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("fuzz_graph: %d input(s) replayed without a failure; Hessian checks on %ld, "
           "finite differences of the gradient on %ld and of H v on %ld\n",
           argc - 1, g_n_hessian, g_n_fd_grad, g_n_fd_hvp);
    return 0;
}
#endif
