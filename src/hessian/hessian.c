/*
 * hessian.c -- Hessian-vector products, rows, blocks, the diagonal and the full
 * Hessian, all by double backward.
 *
 * The gradient graph g = dL/dθ is built once (HESS_CREATE_GRAPH).  Then one
 * batched vector-Jacobian product of g is built with k directions at once: the
 * seed V is a leaf of shape [k, θ...], every cotangent carries that leading
 * dimension, and the result is HV = V H ([k, θ...]), so the model's
 * matrix-vector products become matrix-matrix products.  Rows are evaluated
 * k at a time by writing directions into V and re-running only the nodes that
 * depend on V ("define once, compute many times").
 */
#include "second_order.h"

#include <stdatomic.h>
#include <string.h>

#define DEFAULT_SWEEP_BYTES ((size_t)2 << 20) /* about an L2 cache: larger sweeps spill */
#define MAX_BLOCK_ROWS      512

/* The double-backward graph for rows over params pi[] and columns over pj[]. */
typedef struct hvp_graph {
    size_t ni, nj;
    int64_t k;        /* directions per sweep */
    hess_tensor **v;  /* direction leaves [k, pi...] (one given direction: [pi...]) */
    hess_tensor **hv; /* results [k, pj...] (likewise [pj...]) */
    hess__replay plan;
    size_t rows, cols;
} hvp_graph;

hess_status hess__progress(
    hess_context *ctx, const hess_hessian_opts *opts, size_t done, size_t total, const char *fn)
{
    if (!opts || !opts->progress)
        return HESS_OK;
    /* the context is busy while the callback runs (hess__enter) */
    ctx->busy = fn;
    const int stop = opts->progress(done, total, opts->user);
    ctx->busy = NULL;
    if (ctx->status != HESS_OK)
        return ctx->status; /* recorded inside the callback */
    if (stop) {
        hess__error(ctx, HESS_ERR_CANCELLED, "%s: cancelled after %zu of %zu", fn, done, total);
        return HESS_ERR_CANCELLED;
    }
    return HESS_OK;
}

/* ------------------------------------------------------------------------ */
/* Argument checks                                                          */
/* ------------------------------------------------------------------------ */

hess_status hess__check_loss(
    hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const params[], const char *fn)
{
    hess_status st = hess__enter(ctx, fn);
    if (st != HESS_OK || (st = hess__check(ctx, loss, fn)) != HESS_OK)
        return st;
    if (loss->numel != 1) {
        char s[96];
        hess__error(ctx, HESS_ERR_ARG, "%s: the loss must be a scalar (one element), got %s", fn,
                    hess__shape_str(s, loss->ndim, loss->shape));
        return HESS_ERR_ARG;
    }
    return hess__check_list(ctx, n, params, "params", fn);
}

/* Checks the common arguments and brings the loss up to date; HESS_OK or the
 * status (recorded).  params[] may hold any tensors of ctx, each once. */
static hess_status check_call(hess_context *ctx,
                              hess_tensor *loss,
                              size_t n,
                              hess_tensor *const params[],
                              const void *out,
                              const char *fn)
{
    const hess_status st = hess__check_loss(ctx, loss, n, params, fn);
    if (st != HESS_OK)
        return st;
    if (!out) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL output buffer", fn);
        return HESS_ERR_ARG;
    }
    return hess__refresh(ctx, 1, &loss, fn);
}

/* The flags of opts that the functions take. */
static hess_status check_opts(hess_context *ctx, const hess_hessian_opts *opts, const char *fn)
{
    if (opts && (opts->flags & ~HESS_ALLOW_UNUSED)) {
        hess__error(ctx, HESS_ERR_ARG,
                    "%s: unknown flags 0x%x in the options (only "
                    "HESS_ALLOW_UNUSED)",
                    fn, opts->flags);
        return HESS_ERR_ARG;
    }
    if (opts && opts->n_threads < 0) {
        hess__error(ctx, HESS_ERR_ARG, "%s: opts->n_threads is %d (0 = all cores, or a count)", fn,
                    opts->n_threads);
        return HESS_ERR_ARG;
    }
    return HESS_OK;
}

/* ------------------------------------------------------------------------ */
/* Building the double-backward graph                                       */
/* ------------------------------------------------------------------------ */

/* k from the caller, or from the memory one direction costs: about twice the
 * gradient graph's values (first..n_nodes), capped by the rows wanted. */
static int64_t
choose_k(const hess_context *ctx, int64_t first, size_t m, const hess_hessian_opts *opts)
{
    if (opts && opts->block_rows)
        return (int64_t)(opts->block_rows < m ? opts->block_rows : m);
    size_t per_dir = 0;
    for (int64_t id = first; id < ctx->n_nodes; id++)
        per_dir += 2 * (size_t)ctx->nodes[id]->numel * sizeof(double);
    const size_t budget = opts && opts->max_bytes ? opts->max_bytes : DEFAULT_SWEEP_BYTES;
    size_t k = per_dir ? budget / per_dir : m;
    if (k > m)
        k = m;
    if (k > MAX_BLOCK_ROWS)
        k = MAX_BLOCK_ROWS;
    return k ? (int64_t)k : 1;
}

/* Writes directions r0..r0+kk-1 into the k slots of the leaves v[] (unit
 * vectors when Vsrc is NULL, else rows of Vsrc); slots past kk are zero.
 * touch: stamp the leaves (the graph's own; a replica's are not stamped). */
static void set_dirs(const hvp_graph *G,
                     hess_tensor *const v_[],
                     const double *Vsrc,
                     size_t r0,
                     size_t kk,
                     bool touch)
{
    size_t off = 0;
    for (size_t i = 0; i < G->ni; i++) {
        hess_tensor *v = v_[i];
        double *d = v->data;
        const size_t len = (size_t)v->numel / (size_t)G->k;
        if (!Vsrc && (v->flags & HESS_T_ONEHOT)) { /* clear only the last sweep's ones */
            const int64_t s = v->par.leaf.onehot_first;
            for (int64_t q = 0; q < v->par.leaf.onehot_count; q++)
                if (s + q >= 0 && s + q < (int64_t)len)
                    d[q * (int64_t)len + s + q] = 0.0;
        } else if (!Vsrc || kk < (size_t)G->k) {
            memset(d, 0, (size_t)v->numel * sizeof *d);
        }
        for (size_t q = 0; q < kk; q++) {
            const size_t r = r0 + q;
            if (Vsrc)
                memcpy(d + q * len, Vsrc + r * G->rows + off, len * sizeof *d);
            else if (r >= off && r < off + len)
                d[q * len + (r - off)] = 1.0;
        }
        /* unit directions say so, for the products that skip zeros (ops_linalg.c) */
        if (touch)
            hess__touch(v->ctx, v, false);
        v->flags = Vsrc ? v->flags & ~HESS_T_ONEHOT : v->flags | HESS_T_ONEHOT;
        v->par.leaf.onehot_first = (int64_t)r0 - (int64_t)off;
        v->par.leaf.onehot_count = (int64_t)kk;
        v->par.leaf.nz_chunks = -1; /* given directions: scanned by the products */
        off += len;
    }
}

/* Builds g = dL/dpi (recorded) and HV = V . d g / d pj (detached, k directions),
 * for m directions in all (rows of Vsrc, or unit vectors when it is NULL).  The
 * first k directions are set before the build, so the first sweep's results
 * are ready when it returns; a replay plan is made only when more follow. */
static hess_status hvp_build(hess_context *ctx,
                             hess_tensor *loss,
                             size_t ni,
                             hess_tensor *const pi[],
                             size_t nj,
                             hess_tensor *const pj[],
                             size_t m,
                             const double *Vsrc,
                             const hess_hessian_opts *opts,
                             hvp_graph *G,
                             const char *fn)
{
    memset(G, 0, sizeof *G);
    G->ni = ni;
    G->nj = nj;
    G->rows = hess_param_count(ni, pi);
    G->cols = hess_param_count(nj, pj);
    /* a block of one parameter with itself is its diagonal block */
    const bool block = pj != pi && !(ni == 1 && nj == 1 && pi[0] == pj[0]);
    /* The first gradient is taken over pi and pj together, so that a pj the
     * loss does not depend on is reported; only g over pi is used. */
    const size_t nw = block ? ni + nj : ni;
    hess_tensor **wrt = hess__alloc(ctx, nw * sizeof *wrt, fn);
    hess_tensor **g = hess__alloc(ctx, nw * sizeof *g, fn);
    G->v = hess__alloc(ctx, ni * sizeof *G->v, fn);
    G->hv = hess__alloc(ctx, nj * sizeof *G->hv, fn);
    const double one_v = 1.0; /* the seed: shaped like the loss, [] or [1] or [1,1] ... */
    hess_tensor *one = hess__const_new(ctx, loss->ndim, loss->shape, &one_v, fn);
    if (!wrt || !g || !G->v || !G->hv || !one)
        return ctx->status;
    memcpy(wrt, pi, ni * sizeof *wrt);
    if (block)
        memcpy(wrt + ni, pj, nj * sizeof *wrt);
    const int64_t first = ctx->n_nodes;
    /* Both passes only build (the tape is lazy); hess__eval then computes what
     * the results need:
     * the gradient's own values (g_W = delta^T x and the like) are never read. */
    const unsigned unused = opts && (opts->flags & HESS_ALLOW_UNUSED) ? HESS_ALLOW_UNUSED : 0;
    ctx->lazy++;
    hess_status st = hess__backward(ctx, 1, &loss, &one, nw, wrt, g,
                                    HESS_CREATE_GRAPH | HESS__FRESH | unused, 0, fn, "params");
    if (st != HESS_OK) {
        ctx->lazy--;
        return st;
    }

    /* One given direction (hess_hvp) is shaped like the parameters, without
     * the leading [k] the batched pass gives every cotangent: fewer nodes (no
     * reshapes around the batch dimension) for the same values. */
    const bool flat = m == 1 && Vsrc;
    G->k = flat ? 1 : choose_k(ctx, first, m, opts);
    for (size_t i = 0; i < ni; i++) {
        int64_t shape[HESS_DIMS];
        shape[0] = G->k;
        memcpy(shape + 1, pi[i]->shape, (size_t)pi[i]->ndim * sizeof *shape);
        hess_tensor *v = hess__leaf(ctx, pi[i]->ndim + !flat, shape + flat, 0u, fn);
        if (!v) {
            ctx->lazy--;
            return ctx->status;
        }
        G->v[i] = v;
    }
    set_dirs(G, G->v, Vsrc, 0, m < (size_t)G->k ? m : (size_t)G->k, true);
    st = hess__backward(ctx, ni, g, G->v, nj, pj, G->hv, HESS_ALLOW_UNUSED | HESS__FRESH,
                        flat ? 0 : G->k, fn, "params");
    ctx->lazy--;
    if (st == HESS_OK)
        st = hess__eval(ctx, first, nj, G->hv, fn);
    if (st != HESS_OK || m <= (size_t)G->k)
        return st;
    return hess__replay_plan(ctx, ni, G->v, &G->plan);
}

/* ------------------------------------------------------------------------ */
/* Sweeps                                                                   */
/* ------------------------------------------------------------------------ */

/* Copies result row q of the current sweep of results hv[] into out. */
static void get_row(const hvp_graph *G, hess_tensor *const hv[], size_t q, double *out)
{
    for (size_t j = 0; j < G->nj; j++) {
        const size_t len = (size_t)hv[j]->numel / (size_t)G->k;
        memcpy(out, hv[j]->data + q * len, len * sizeof *out);
        out += len;
    }
}

/* Element c of result row q of the current sweep of results hv[]. */
static double get_elem(const hvp_graph *G, hess_tensor *const hv[], size_t q, size_t c)
{
    for (size_t j = 0; j < G->nj; j++) {
        const size_t len = (size_t)hv[j]->numel / (size_t)G->k;
        if (c < len)
            return hv[j]->data[q * len + c];
        c -= len;
    }
    return 0.0;
}

/* One evaluator of the sweeps: the graph itself (lane 0), or a replica of
 * its replay with its own directions and results (the other threads). */
typedef struct lane {
    hess_tensor **v, **hv;
    hess__replica rep;
    bool replica;
} lane;

/* Lanes for up to n threads (0: all cores), at most `blocks` of them; lane 0
 * is the graph.  Returns how many were made (1 when replicas would not pay,
 * or memory for one ran out: then the error is cleared and fewer run). */
static int
make_lanes(hess_context *ctx, hvp_graph *G, int n, size_t blocks, lane *lanes, const char *fn)
{
    if (n <= 0)
        n = hess__cores();
    if (n > HESS_MAX_THREADS)
        n = HESS_MAX_THREADS;
    if ((size_t)n > blocks)
        n = (int)blocks;
    lanes[0] = (lane){G->v, G->hv, {0}, false};
    int made = 1;
    for (int t = 1; t < n && G->plan.ids; t++, made++) {
        lane *L = &lanes[t];
        const hess_mark mk = hess__mark(ctx);
        L->v = hess__alloc(ctx, G->ni * sizeof *L->v, fn);
        L->hv = hess__alloc(ctx, G->nj * sizeof *L->hv, fn);
        if (!L->v || !L->hv ||
            hess__replica_make(ctx, &G->plan, G->ni, G->v, &L->rep, fn) != HESS_OK) {
            if (ctx->status == HESS_ERR_NOMEM) /* fewer threads, not a failure */
                hess_context_clear_error(ctx);
            hess__rewind(ctx, &mk);
            break;
        }
        for (size_t i = 0; i < G->ni; i++)
            L->v[i] = hess__replica_of(&L->rep, G->v[i]);
        for (size_t j = 0; j < G->nj; j++)
            L->hv[j] = hess__replica_of(&L->rep, G->hv[j]);
        L->replica = true;
    }
    return made;
}

/* A sweep over blocks of k directions shared by the lanes: blocks first..nb-1
 * are taken in turn by whichever lane is free; each writes its rows (or its
 * diagonal elements) of the result, which do not depend on the lane.  Lane 0,
 * on the caller's thread, reports progress in block order and stops the
 * others when asked. */
typedef struct sweep_job {
    hess_context *ctx;
    const hvp_graph *G;
    lane *lanes;
    const double *Vsrc;
    size_t m, nb;
    double *out, *diag;
    const hess_hessian_opts *opts;
    const char *fn;
    atomic_size_t next;
    atomic_uchar *done;
    atomic_int stop, nonfinite;
    size_t reported; /* blocks reported, lane 0's */
    hess_status st;  /* lane 0's */
} sweep_job;

static void sweep_block(sweep_job *J, lane *L, size_t b)
{
    const hvp_graph *G = J->G;
    const size_t r0 = b * (size_t)G->k;
    const size_t kk = J->m - r0 < (size_t)G->k ? J->m - r0 : (size_t)G->k;
    set_dirs(G, L->v, J->Vsrc, r0, kk, !L->replica);
    if (L->replica) {
        if (!hess__replica_run(&L->rep, J->ctx->cfg.flags & HESS_CHECK_FINITE)) {
            atomic_store(&J->nonfinite, 1);
            atomic_store(&J->stop, 1);
            return;
        }
    } else if ((J->st = hess__replay_run(J->ctx, &G->plan, J->fn)) != HESS_OK) {
        atomic_store(&J->stop, 1);
        return;
    }
    for (size_t q = 0; q < kk; q++) {
        if (J->diag)
            J->diag[r0 + q] = get_elem(G, L->hv, q, r0 + q);
        else
            get_row(G, L->hv, q, J->out + (r0 + q) * G->cols);
    }
    if (J->done)
        atomic_store(&J->done[b], 1);
}

/* Lane 0: progress for the blocks done, in order. */
static void sweep_report(sweep_job *J)
{
    while (J->done && J->st == HESS_OK && J->reported < J->nb &&
           atomic_load(&J->done[J->reported])) {
        J->reported++;
        const size_t rows =
            J->reported * (size_t)J->G->k < J->m ? J->reported * (size_t)J->G->k : J->m;
        if ((J->st = hess__progress(J->ctx, J->opts, rows, J->m, J->fn)) != HESS_OK)
            atomic_store(&J->stop, 1);
    }
}

static void sweep_worker(void *arg, int t)
{
    sweep_job *J = arg;
    for (;;) {
        if (t == 0)
            sweep_report(J);
        if (atomic_load(&J->stop))
            break;
        const size_t b = atomic_fetch_add(&J->next, 1);
        if (b >= J->nb)
            break;
        sweep_block(J, &J->lanes[t], b);
    }
}

/* Evaluates m rows, k per sweep, on up to opts->n_threads threads: out gets
 * m x cols values, or with diag only element r of row r.  The first sweep
 * ran when the graph was built. */
static hess_status run_rows(hess_context *ctx,
                            hvp_graph *G,
                            const double *Vsrc,
                            size_t m,
                            double *out,
                            double *diag,
                            const hess_hessian_opts *opts,
                            const char *fn)
{
    const size_t nb = (m + (size_t)G->k - 1) / (size_t)G->k;
    lane lanes[HESS_MAX_THREADS];
    atomic_uchar *done = hess__alloc(ctx, nb * sizeof *done, fn);
    if (!done)
        return ctx->status;
    for (size_t b = 0; b < nb; b++)
        atomic_init(&done[b], 0);
    const int nl = nb > 1 ? make_lanes(ctx, G, opts ? opts->n_threads : 0, nb - 1, lanes, fn) : 1;
    if (nb <= 1)
        lanes[0] = (lane){G->v, G->hv, {0}, false};
    sweep_job J = {.ctx = ctx,
                   .G = G,
                   .lanes = lanes,
                   .Vsrc = Vsrc,
                   .m = m,
                   .nb = nb,
                   .out = out,
                   .diag = diag,
                   .opts = opts,
                   .fn = fn,
                   .done = done,
                   .st = HESS_OK};
    atomic_init(&J.next, 1);
    atomic_init(&J.stop, 0);
    atomic_init(&J.nonfinite, 0);
    /* block 0: the sweep the build ran */
    const size_t kk0 = m < (size_t)G->k ? m : (size_t)G->k;
    for (size_t q = 0; q < kk0; q++) {
        if (diag)
            diag[q] = get_elem(G, G->hv, q, q);
        else
            get_row(G, G->hv, q, out + q * G->cols);
    }
    atomic_store(&done[0], 1);
    hess__parallel(nl, sweep_worker, &J);
    sweep_report(&J);
    if (J.st != HESS_OK)
        return J.st;
    if (atomic_load(&J.nonfinite)) {
        hess__error(ctx, HESS_ERR_NONFINITE, "%s: non-finite value in a row of the Hessian", fn);
        return HESS_ERR_NONFINITE;
    }
    return HESS_OK;
}

/* The common body of the row-evaluating functions: rows over pi[], columns
 * over pj[]; directions from V (m x rows) or unit vectors (m = rows). */
static hess_status rows_call(hess_context *ctx,
                             hess_tensor *loss,
                             size_t ni,
                             hess_tensor *const pi[],
                             size_t nj,
                             hess_tensor *const pj[],
                             const double *V,
                             size_t m,
                             double *out,
                             double *diag,
                             const hess_hessian_opts *opts,
                             const char *fn)
{
    const hess_mark mk = hess__mark(ctx);
    if (!V)
        m = hess_param_count(ni, pi);
    hvp_graph G;
    ctx->api = fn;
    hess_status st = hvp_build(ctx, loss, ni, pi, nj, pj, m, V, opts, &G, fn);
    if (st == HESS_OK)
        st = run_rows(ctx, &G, V, m, out, diag, opts, fn);
    ctx->api = NULL;
    hess__rewind(ctx, &mk);
    return st;
}

/* ------------------------------------------------------------------------ */
/* The Hessian as an operator kept open (the curvature functions)           */
/* ------------------------------------------------------------------------ */

struct hess__hvp_op {
    hess_context *ctx;
    hess_mark mk; /* where it began: hess__hvp_close goes back there */
    hvp_graph G;
    const char *fn;
    lane lanes[HESS_MAX_THREADS];
    int nl;
};

hess_status hess__hvp_open(hess_context *ctx,
                           hess_tensor *loss,
                           size_t n,
                           hess_tensor *const params[],
                           size_t k,
                           const hess_hessian_opts *opts,
                           const char *fn,
                           hess__hvp_op **out)
{
    *out = NULL;
    hess_status st = check_call(ctx, loss, n, params, out, fn);
    if (st != HESS_OK)
        return st;
    const hess_mark mk = hess__mark(ctx);
    hess__hvp_op *op = hess__calloc(ctx, sizeof *op, fn);
    const size_t N = hess_param_count(n, params);
    /* the first sweep (made with the graph) multiplies zeros: as many
     * directions as the m = k + 1 below may put in one sweep, or one flat */
    double *zeros = op ? hess__calloc(ctx, (k > 1 ? k + 1 : 1) * N * sizeof *zeros, fn) : NULL;
    if (!zeros) {
        hess__rewind(ctx, &mk);
        return ctx->status;
    }
    hess_hessian_opts o = {0};
    if (opts)
        o.flags = opts->flags, o.max_bytes = opts->max_bytes, o.block_rows = opts->block_rows;
    if (o.block_rows > k)
        o.block_rows = k;
    /* m = k + 1 directions: k per sweep at most (fewer when the memory budget
     * says so), and a replay plan */
    const char *saved = hess__api_enter(ctx, fn);
    st = hvp_build(ctx, loss, n, params, n, params, k <= 1 ? 1 : k + 1, zeros, &o, &op->G, fn);
    if (st == HESS_OK && !op->G.plan.ids)
        st = hess__replay_plan(ctx, n, op->G.v, &op->G.plan);
    /* the threads' replicas, when a product has more than one block */
    op->nl = 1;
    op->lanes[0] = (lane){op->G.v, op->G.hv, {0}, false};
    if (st == HESS_OK && op->G.k > 1)
        op->nl =
            make_lanes(ctx, &op->G, opts ? opts->n_threads : 0, HESS_MAX_THREADS, op->lanes, fn);
    hess__api_leave(ctx, saved, NULL);
    if (st != HESS_OK) {
        hess__rewind(ctx, &mk);
        return st;
    }
    op->ctx = ctx;
    op->mk = mk;
    op->fn = fn;
    *out = op;
    return HESS_OK;
}

hess_status hess__hvp_apply(hess__hvp_op *op, size_t m, const double *X, double *Y)
{
    const hvp_graph *G = &op->G;
    const char *saved = hess__api_enter(op->ctx, op->fn);
    const size_t nb = (m + (size_t)G->k - 1) / (size_t)G->k;
    sweep_job J = {.ctx = op->ctx,
                   .G = G,
                   .lanes = op->lanes,
                   .Vsrc = X,
                   .m = m,
                   .nb = nb,
                   .out = Y,
                   .fn = op->fn,
                   .st = HESS_OK};
    atomic_init(&J.next, 0);
    atomic_init(&J.stop, 0);
    atomic_init(&J.nonfinite, 0);
    hess__parallel(op->nl < (int)nb ? op->nl : (int)nb, sweep_worker, &J);
    hess_status st = J.st;
    if (st == HESS_OK && atomic_load(&J.nonfinite)) {
        hess__error(op->ctx, HESS_ERR_NONFINITE, "%s: non-finite value in a Hessian-vector product",
                    op->fn);
        st = HESS_ERR_NONFINITE;
    }
    hess__api_leave(op->ctx, saved, NULL);
    return st;
}

void hess__hvp_close(hess__hvp_op *op)
{
    if (op)
        hess__rewind(op->ctx, &op->mk);
}

/* ------------------------------------------------------------------------ */
/* Public functions                                                         */
/* ------------------------------------------------------------------------ */

hess_status hess_hvp(hess_context *ctx,
                     hess_tensor *loss,
                     size_t n,
                     hess_tensor *const params[],
                     const double *v,
                     double *hv)
{
    static const char fn[] = "hess_hvp";
    hess_status st = check_call(ctx, loss, n, params, hv, fn);
    if (st != HESS_OK)
        return st;
    if (!v) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL direction v", fn);
        return HESS_ERR_ARG;
    }
    const hess_mark mk = hess__mark(ctx);
    hvp_graph G;
    ctx->api = fn;
    st = hvp_build(ctx, loss, n, params, n, params, 1, v, NULL, &G, fn);
    ctx->api = NULL;
    if (st == HESS_OK)
        get_row(&G, G.hv, 0, hv);
    hess__rewind(ctx, &mk);
    return st;
}

/* Forward over reverse: the gradient graph g = dL/dθ, then one forward-mode
 * pass of g with tangent v, whose tangent is H v. */
hess_status hess_hvp_fwd(hess_context *ctx,
                         hess_tensor *loss,
                         size_t n,
                         hess_tensor *const params[],
                         const double *v,
                         double *hv)
{
    static const char fn[] = "hess_hvp_fwd";
    hess_status st = check_call(ctx, loss, n, params, hv, fn);
    if (st != HESS_OK)
        return st;
    if (!v) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL direction v", fn);
        return HESS_ERR_ARG;
    }
    const hess_mark mk = hess__mark(ctx);
    const int64_t first = ctx->n_nodes;
    ctx->api = fn;
    const double one_v = 1.0;
    hess_tensor *one = hess__const_new(ctx, loss->ndim, loss->shape, &one_v, fn);
    hess_tensor **g = hess__alloc(ctx, n * sizeof *g, fn),
                **hvt = hess__alloc(ctx, n * sizeof *hvt, fn);
    hess_tensor **t = hess__leaves_like(ctx, n, params, 0, v, fn);
    if (one && g && hvt && t) {
        ctx->lazy++;
        st = hess__backward(ctx, 1, &loss, &one, n, params, g, HESS_CREATE_GRAPH | HESS__FRESH, 0,
                            fn, "params");
        if (st == HESS_OK)
            st = hess__forward(ctx, n, g, n, params, t, hvt, HESS__FRESH, 0, fn, "params");
        ctx->lazy--;
        if (st == HESS_OK)
            st = hess__eval(ctx, first, n, hvt, fn);
        for (size_t i = 0; i < n && st == HESS_OK; i++) {
            memcpy(hv, hvt[i]->data, (size_t)hvt[i]->numel * sizeof *hv);
            hv += hvt[i]->numel;
        }
    }
    ctx->api = NULL;
    hess__rewind(ctx, &mk);
    return ctx->status;
}

hess_status hess_hvp_batch(hess_context *ctx,
                           hess_tensor *loss,
                           size_t n,
                           hess_tensor *const params[],
                           size_t m,
                           const double *V,
                           const hess_hessian_opts *opts,
                           double *HV)
{
    static const char fn[] = "hess_hvp_batch";
    hess_status st = check_call(ctx, loss, n, params, HV, fn);
    if (st != HESS_OK || (st = check_opts(ctx, opts, fn)) != HESS_OK)
        return st;
    if (!V || m == 0) {
        hess__error(ctx, HESS_ERR_ARG, "%s: %s", fn, V ? "no directions (m = 0)" : "NULL V");
        return HESS_ERR_ARG;
    }
    return rows_call(ctx, loss, n, params, n, params, V, m, HV, NULL, opts, fn);
}

hess_status hess_hessian_ex(hess_context *ctx,
                            hess_tensor *loss,
                            size_t n,
                            hess_tensor *const params[],
                            const hess_hessian_opts *opts,
                            double *h)
{
    static const char fn[] = "hess_hessian";
    hess_status st = check_call(ctx, loss, n, params, h, fn);
    if (st != HESS_OK || (st = check_opts(ctx, opts, fn)) != HESS_OK)
        return st;
    return rows_call(ctx, loss, n, params, n, params, NULL, 0, h, NULL, opts, fn);
}

hess_status
hess_hessian(hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const params[], double *h)
{
    return hess_hessian_ex(ctx, loss, n, params, NULL, h);
}

/* The diagonal, with fn naming the public function in messages. */
static hess_status diag_call(hess_context *ctx,
                             hess_tensor *loss,
                             size_t n,
                             hess_tensor *const params[],
                             const hess_hessian_opts *opts,
                             double *diag,
                             const char *fn)
{
    hess_status st = check_call(ctx, loss, n, params, diag, fn);
    if (st != HESS_OK || (st = check_opts(ctx, opts, fn)) != HESS_OK)
        return st;
    const int method = opts ? opts->method : HESS_DIAG_AUTO;
    if (method != HESS_DIAG_AUTO && method != HESS_DIAG_BACKPROP && method != HESS_DIAG_ROWS) {
        hess__error(ctx, HESS_ERR_ARG,
                    "%s: opts->method %d is not a diagonal method (HESS_DIAG_AUTO, "
                    "HESS_DIAG_BACKPROP or HESS_DIAG_ROWS)",
                    fn, method);
        return HESS_ERR_ARG;
    }
    if (method != HESS_DIAG_ROWS) {
        const hess_mark mk = hess__mark(ctx);
        char why[HESS_DIAG_WHY];
        const size_t N = hess_param_count(n, params);
        ctx->api = fn;
        st = hess__diag_backprop(ctx, loss, NULL, n, params, opts ? opts->flags : 0u,
                                 method == HESS_DIAG_AUTO ? N : 0, diag, why, fn);
        ctx->api = NULL;
        hess__rewind(ctx, &mk);
        if (st != HESS_OK)
            return st;
        if (!why[0]) {
            if (opts && opts->method_used)
                *opts->method_used = HESS_DIAG_BACKPROP;
            return hess__progress(ctx, opts, N, N, fn);
        }
        if (method == HESS_DIAG_BACKPROP) {
            hess__error(ctx, HESS_ERR_ARG,
                        "%s: HESS_DIAG_BACKPROP does not cover this graph: %s; HESS_DIAG_AUTO "
                        "falls back to the rows",
                        fn, why);
            return HESS_ERR_ARG;
        }
    }
    if (opts && opts->method_used)
        *opts->method_used = HESS_DIAG_ROWS;
    return rows_call(ctx, loss, n, params, n, params, NULL, 0, NULL, diag, opts, fn);
}

hess_status hess_hessian_diag_ex(hess_context *ctx,
                                 hess_tensor *loss,
                                 size_t n,
                                 hess_tensor *const params[],
                                 const hess_hessian_opts *opts,
                                 double *diag)
{
    return diag_call(ctx, loss, n, params, opts, diag, "hess_hessian_diag");
}

hess_status hess_hessian_diag(
    hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const params[], double *diag)
{
    return diag_call(ctx, loss, n, params, NULL, diag, "hess_hessian_diag");
}

hess_status hess_hessian_diag_tensors(
    hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const params[], hess_tensor *out[])
{
    static const char fn[] = "hess_hessian_diag_tensors";
    hess_status st = check_call(ctx, loss, n, params, out, fn);
    if (st != HESS_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    /* The results are made before the mark mk, so that rewinding to it keeps
     * them and frees the scratch diagonal; on failure all goes (m0). */
    const hess_mark m0 = hess__mark(ctx);
    for (size_t i = 0; i < n && ctx->status == HESS_OK; i++)
        out[i] = hess__const_new(ctx, params[i]->ndim, params[i]->shape, NULL, fn);
    const hess_mark mk = hess__mark(ctx);
    double *diag = ctx->status == HESS_OK
                       ? hess__alloc(ctx, hess_param_count(n, params) * sizeof(double), fn)
                       : NULL;
    st = diag ? diag_call(ctx, loss, n, params, NULL, diag, fn) : ctx->status;
    for (size_t i = 0, off = 0; i < n && st == HESS_OK; off += (size_t)out[i]->numel, i++)
        memcpy(out[i]->data, diag + off, (size_t)out[i]->numel * sizeof(double));
    hess__rewind(ctx, st == HESS_OK ? &mk : &m0);
    if (st != HESS_OK)
        for (size_t i = 0; i < n; i++)
            out[i] = NULL;
    return st;
}

hess_status hess_hessian_block_ex(hess_context *ctx,
                                  hess_tensor *loss,
                                  hess_tensor *pi,
                                  hess_tensor *pj,
                                  const hess_hessian_opts *opts,
                                  double *out)
{
    static const char fn[] = "hess_hessian_block";
    hess_status st = check_call(ctx, loss, 1, &pi, out, fn);
    if (st != HESS_OK || (st = hess__check_list(ctx, 1, &pj, "params", fn)) != HESS_OK ||
        (st = check_opts(ctx, opts, fn)) != HESS_OK)
        return st;
    return rows_call(ctx, loss, 1, &pi, 1, &pj, NULL, 0, out, NULL, opts, fn);
}

hess_status hess_hessian_block(
    hess_context *ctx, hess_tensor *loss, hess_tensor *pi, hess_tensor *pj, double *out)
{
    return hess_hessian_block_ex(ctx, loss, pi, pj, NULL, out);
}
