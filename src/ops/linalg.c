/*
 * linalg.c -- the matrix product (with transposed operands, so that x W^T and
 * the backward products need no copies), the LINEAR node (a product with a
 * bias on every row: hess_linear), transpose, and the vector forms of
 * hess_matmul.  Legend: A [m,k], B [k,n], C [m,n] after the optional
 * transposes; the flags live in par.mm.  A MATMUL node also takes a vector
 * with a matrix (b [k] as a column, or a [k] as a row, the result without
 * that dimension), so that a one-sample layer W x is one node, and two
 * vectors both transposed (the outer product a b^T, which rules build); with
 * a batch, or for a dot product, hess_matmul reshapes around it.  The
 * numbers are kernels/gemm.c's; products with a one-hot operand take the
 * sparse path (linalg_sparse.c).
 */
#include "ops.h"

#include "../kernels/gemm.h"

#include <string.h>

/* ------------------------------------------------------------------------ */
/* Batched products                                                         */
/* ------------------------------------------------------------------------ */

/* Offset of batch element bi of t (batch dims = all but the last two) in the
 * broadcast batch space bshape[nb]. */
static int64_t batch_offset(const hess_tensor *t, int nb, const int64_t *bshape, int64_t bi)
{
    const int tb = t->ndim - 2;
    const int64_t mat = t->shape[t->ndim - 2] * t->shape[t->ndim - 1];
    int64_t off = 0, stride = mat;
    for (int d = nb - 1; d >= 0; d--) {
        const int64_t idx = bi % bshape[d];
        bi /= bshape[d];
        const int td = d - (nb - tb);
        if (td >= 0) {
            if (t->shape[td] != 1)
                off += idx * stride;
            stride *= t->shape[td];
        }
    }
    return off;
}

/* y[b] = x[b]^T for nb blocks of [r, c]. */
static void transpose_blocks(const double *x, double *y, int64_t nb, int64_t r, int64_t c)
{
    const int64_t T = 32;
    for (int64_t bi = 0; bi < nb; bi++, x += r * c, y += r * c)
        for (int64_t i0 = 0; i0 < r; i0 += T)
            for (int64_t j0 = 0; j0 < c; j0 += T)
                for (int64_t i = i0; i < r && i < i0 + T; i++)
                    for (int64_t j = j0; j < c && j < j0 + T; j++)
                        y[j * r + i] = x[i * c + j];
}

/* Moves rows of c doubles between the layouts [K, r, c] and [r, K, c]:
 * y[i, b, :] = x[b, i, :] (to_inner) or y[b, i, :] = x[i, b, :]. */
static void swap_outer(const double *x, double *y, int64_t K, int64_t r, int64_t c, bool to_inner)
{
    for (int64_t b = 0; b < K; b++)
        for (int64_t i = 0; i < r; i++) {
            const int64_t kri = (b * r + i) * c, rki = (i * K + b) * c;
            const double *src = x + (to_inner ? kri : rki);
            double *dst = y + (to_inner ? rki : kri);
            if (c >= 16) {
                memcpy(dst, src, (size_t)c * sizeof(double));
            } else { /* short rows (small models): a call per row costs more */
                for (int64_t j = 0; j < c; j++)
                    dst[j] = src[j];
            }
        }
}

/* Which single-product form a batched matmul takes (see matmul_forward) and
 * the scratch it needs, in doubles. */
typedef enum { MM_LOOP, MM_STACK_A, MM_STACK_B } mm_form;

static mm_form
mm_plan(const hess_tensor *out, const hess_tensor *A, const hess_tensor *B, size_t *scratch)
{
    *scratch = 0;
    if (A->ndim == 1 || B->ndim == 1)
        return MM_LOOP; /* a vector and a matrix, or two: one product, no batch */
    const int64_t nbatch = hess__batch_numel(out);
    if (nbatch == 1)
        return MM_LOOP; /* one product */
    const bool ta = out->par.mm.ta, tb = out->par.mm.tb;
    const int64_t m = out->shape[out->ndim - 2], n = out->shape[out->ndim - 1];
    const int64_t k = A->shape[A->ndim - (ta ? 2 : 1)];
    /* Products the AVX2 kernel takes one by one: that beats one stacked
     * product when rows must move first (measured on W1, bench/README.md) */
    const bool simd_each = out->ctx->simd && hess__gemm_simd_fits(m, n, k);
    if (hess__batch_numel(A) == nbatch && hess__batch_numel(B) == 1) {
        if (ta && simd_each)
            return MM_LOOP;
        *scratch = ta ? (size_t)A->numel : 0;
        return MM_STACK_A;
    }
    if (hess__batch_numel(B) == nbatch && hess__batch_numel(A) == 1) {
        if (simd_each)
            return MM_LOOP;
        /* Products big enough for BLAS run faster one by one than as one wide
         * product with rows moved in and out (OpenBLAS, measured in
         * bench/README.md) */
        if (hess__gemm_blas_fits(m, n, k))
            return MM_LOOP;
        *scratch = (size_t)out->numel + (tb ? 0 : (size_t)B->numel);
        return MM_STACK_B;
    }
    return MM_LOOP;
}

/* C[..., m, n] = op(A)[..., m, k] op(B)[..., k, n], batch dims broadcast.
 * When only one operand is batched -- the directions of a Hessian sweep -- the
 * batch becomes one product, with whole rows moved where a layout must change
 * (never element-wise transposes):
 *   A batched:  [C_1; ...; C_K] = [op(A_1); ...; op(A_K)] op(B); when ta the
 *               stack is (A_1 | ... | A_K)^T, a transposed operand to BLAS
 *   B batched:  (C_1 | ... | C_K) = op(A) (op(B_1) | ... | op(B_K)); when tb the
 *               right side is the stored [B_1; ...; B_K] transposed */
static void matmul_forward(hess_tensor *out)
{
    const hess_tensor *A = out->src[0], *B = out->src[1];
    const bool ta = out->par.mm.ta, tb = out->par.mm.tb;
    if (A->ndim == 1 && B->ndim == 1) { /* a^T b^T: a [m,1] column, b [1,n] row */
        hess__gemm(out->ctx->simd, false, false, A->shape[0], B->shape[0], 1, A->data, B->data,
                   out->data);
        return;
    }
    if (B->ndim == 1) { /* op(A) b: b is a [k,1] column */
        hess__gemm(out->ctx->simd, ta, false, out->shape[0], 1, B->shape[0], A->data, B->data,
                   out->data);
        return;
    }
    if (A->ndim == 1) { /* a op(B): a is a [1,k] row */
        hess__gemm(out->ctx->simd, false, tb, 1, out->shape[0], A->shape[0], A->data, B->data,
                   out->data);
        return;
    }
    const int nb = out->ndim - 2;
    const int64_t m = out->shape[nb], n = out->shape[nb + 1];
    const int64_t k = A->shape[A->ndim - (ta ? 2 : 1)];
    const int64_t nbatch = hess__numel(nb, out->shape);
    const bool simd = out->ctx->simd;
    size_t scratch;
    if (hess__matmul_sparse(out, ta, tb, nbatch))
        return;
    if (nbatch == 1) {
        hess__gemm(simd, ta, tb, m, n, k, A->data, B->data, out->data);
        return;
    }
    switch (mm_plan(out, A, B, &scratch)) {
    case MM_STACK_A:
        if (!ta) {
            hess__gemm(simd, false, tb, nbatch * m, n, k, A->data, B->data, out->data);
        } else { /* A_b is stored [k, m]: side by side they are [k, K*m] */
            swap_outer(A->data, out->scratch, nbatch, k, m, true);
            hess__gemm_ld(simd, true, tb, nbatch * m, n, k, out->scratch, nbatch * m, B->data,
                          tb ? k : n, out->data);
        }
        return;
    case MM_STACK_B: {
        double *cs = out->scratch; /* [m, K, n] */
        if (tb) {                  /* B_b is stored [n, k]: the stack is [K*n, k] as it is */
            hess__gemm_ld(simd, ta, true, m, nbatch * n, k, A->data, ta ? m : k, B->data, k, cs);
        } else { /* B_b is stored [k, n]: side by side they are [k, K*n] */
            double *bs = cs + out->numel;
            swap_outer(B->data, bs, nbatch, k, n, true);
            hess__gemm_ld(simd, ta, false, m, nbatch * n, k, A->data, ta ? m : k, bs, nbatch * n,
                          cs);
        }
        swap_outer(cs, out->data, nbatch, m, n, false);
        return;
    }
    case MM_LOOP:
        break;
    }
    for (int64_t bi = 0; bi < nbatch; bi++)
        hess__gemm(simd, ta, tb, m, n, k, A->data + batch_offset(A, nb, out->shape, bi),
                   B->data + batch_offset(B, nb, out->shape, bi), out->data + bi * m * n);
}

/* out = op(A) op(B) + c, c [n] added to every row: the same sums as a matmul
 * node and an add node, so the same bits.  A primitive because the bias add
 * is a node and a pass of its own in every layer: one node here took the W0
 * gradient graph from 12 to 10 nodes (the time saved is in bench/README.md). */
static void linear_forward(hess_tensor *out)
{
    matmul_forward(out);
    const hess_tensor *c = out->src[2];
    const int64_t n = c->numel;
    for (int64_t r = 0; r < out->numel; r += n)
        for (int64_t j = 0; j < n; j++)
            out->data[r + j] += c->data[j];
}

/* out[..., j, i] = a[..., i, j] */
static void transpose_forward(hess_tensor *out)
{
    const hess_tensor *a = out->src[0];
    const int64_t r = a->shape[a->ndim - 2], c = a->shape[a->ndim - 1];
    transpose_blocks(a->data, out->data, a->numel / (r * c), r, c);
}

/* ------------------------------------------------------------------------ */
/* Rules                                                                    */
/* ------------------------------------------------------------------------ */

static hess_tensor *mm(hess_context *ctx, hess_tensor *a, hess_tensor *b, bool ta, bool tb);

/* t with a dimension of 1 inserted before its last (row) or after it (col):
 * [..., n] -> [..., 1, n] or [..., n, 1]. */
static hess_tensor *unsqueeze(hess_context *ctx, hess_tensor *t, bool col)
{
    int64_t shape[HESS_DIMS];
    const int nd = t->ndim;
    memcpy(shape, t->shape, (size_t)nd * sizeof *shape);
    shape[nd] = col ? 1 : shape[nd - 1];
    if (!col)
        shape[nd - 1] = 1;
    return hess__reshape_any(ctx, t, nd + 1, shape);
}

/* A vector and a matrix, with cotangent G ([n] or [m], or [K, ...] during a
 * batched pass).  The outer products are one outer-form node for one G, and
 * for a batched G products over an inner dimension of 1 (one stacked product,
 * and a one-hot G skips its zeros):
 *   C = op(A) b:  dA = G b^T stored as A is (G [.., m, 1] x b [1, k], or
 *                 b [k, 1] x G [.., 1, m] when ta),  db = G op(A)
 *   C = a op(B):  da = G op(B)^T,  dB = a G^T stored as B is (a [k, 1] x
 *                 G [.., 1, n], or G [.., n, 1] x a [1, k] when tb) */
static HESS_VJP(matvec_vjp)
{
    hess_tensor *A = out->src[0], *B = out->src[1];
    const bool ta = out->par.mm.ta, tb = out->par.mm.tb;
    hess_tensor *v = B->ndim == 1 ? B : A;     /* the vector */
    const bool vcol = B->ndim == 1 ? ta : !tb; /* it enters dM as a column */
    if (HESS_NEED(pass, B->ndim == 1 ? 0 : 1)) {
        hess_tensor *dm;
        if (g->ndim == 1) { /* one cotangent: an outer-product node */
            dm = vcol ? mm(ctx, v, g, true, true) : mm(ctx, g, v, true, true);
        } else {
            hess_tensor *vm = unsqueeze(ctx, v, vcol);
            hess_tensor *gm = unsqueeze(ctx, g, !vcol);
            dm = vcol ? mm(ctx, vm, gm, false, false) : mm(ctx, gm, vm, false, false);
        }
        if (B->ndim == 1)
            gin[0] = hess__sum_like(ctx, pass, dm, A);
        else
            gin[1] = hess__sum_like(ctx, pass, dm, B);
    }
    if (B->ndim == 1 && HESS_NEED(pass, 1))
        gin[1] = hess__sum_like(ctx, pass, mm(ctx, g, A, false, ta), B);
    if (A->ndim == 1 && HESS_NEED(pass, 0))
        gin[0] = hess__sum_like(ctx, pass, mm(ctx, g, B, false, !tb), A);
}

/* C = a b^T (two vectors, the outer form) with cotangent G, [m, n] or
 * [K, m, n] during a batched pass:  da = G b,  db = G^T a.  A batched G meets
 * the vector as a [n, 1] or [m, 1] column, and the result drops that 1. */
static HESS_VJP(outer_vjp)
{
    hess_tensor *A = out->src[0], *B = out->src[1];
    for (int i = 0; i < 2; i++) {
        if (!HESS_NEED(pass, i))
            continue;
        hess_tensor *v = i == 0 ? B : A; /* G b or G^T a */
        hess_tensor *d;
        if (g->ndim == 2) {
            d = mm(ctx, g, v, i == 1, false);
        } else {
            hess_tensor *c = mm(ctx, g, unsqueeze(ctx, v, true), i == 1, false);
            d = c ? hess__reshape_any(ctx, c, c->ndim - 1, c->shape) : NULL;
        }
        gin[i] = hess__sum_like(ctx, pass, d, out->src[i]);
    }
}

/* For C = op(A) op(B) with cotangent G:
 *   C = A B:      dA = G B^T,     dB = A^T G
 *   C = A^T B:    dA = B G^T,     dB = A G
 *   C = A B^T:    dA = G B,       dB = G^T A
 *   C = A^T B^T:  dA = B^T G^T,   dB = G^T A^T */
static HESS_VJP(matmul_vjp)
{
    hess_tensor *A = out->src[0], *B = out->src[1];
    const bool ta = out->par.mm.ta, tb = out->par.mm.tb;
    if (A->ndim == 1 && B->ndim == 1) {
        outer_vjp(ctx, pass, out, g, gin);
        return;
    }
    if (A->ndim == 1 || B->ndim == 1) {
        matvec_vjp(ctx, pass, out, g, gin);
        return;
    }
    /* each product only when that operand needs it; sum_like undoes the
     * broadcast of batch dims */
    if (HESS_NEED(pass, 0)) {
        hess_tensor *ga = !ta ? mm(ctx, g, B, false, !tb)
                              : (tb ? mm(ctx, B, g, true, true) : mm(ctx, B, g, false, true));
        gin[0] = hess__sum_like(ctx, pass, ga, A);
    }
    if (HESS_NEED(pass, 1)) {
        hess_tensor *gb = !ta ? (tb ? mm(ctx, g, A, true, false) : mm(ctx, A, g, true, false))
                              : (tb ? mm(ctx, g, A, true, true) : mm(ctx, A, g, false, false));
        gin[1] = hess__sum_like(ctx, pass, gb, B);
    }
}

/* The matmul's rule for A and B; dc = G summed over the rows. */
static HESS_VJP(linear_vjp)
{
    matmul_vjp(ctx, pass, out, g, gin);
    if (HESS_NEED(pass, 2))
        gin[2] = hess__sum_like(ctx, pass, g, out->src[2]);
}

static HESS_VJP(transpose_vjp)
{
    (void)out, (void)pass;
    gin[0] = hess_transpose(ctx, g);
}

/* A vector operand (or its tangent, behind [K]) as the matrix it acts as: the
 * first as a row [.., 1, k] (a column [.., m, 1] in the outer form), the
 * second as a column [.., k, 1] (a row [.., 1, n] in the outer form). */
static hess_tensor *
as_matrix(hess_context *ctx, hess_tensor *t, const hess_tensor *src, int i, bool outer)
{
    if (!t || src->ndim != 1)
        return t;
    return unsqueeze(ctx, t, (i == 1) != outer);
}

/* A matrix operand's tangent behind [K], padded with ones after K to out's
 * rank, so that K meets no batch dimension of the other operand. */
static hess_tensor *
pad_tangent(hess_context *ctx, const hess_pass *pass, hess_tensor *t, const hess_tensor *out)
{
    if (!t || !pass->k || t->ndim - 1 < 2 || t->ndim - 1 >= out->ndim)
        return t;
    int64_t shape[HESS_DIMS];
    const int pad = out->ndim - (t->ndim - 1);
    shape[0] = t->shape[0];
    for (int i = 0; i < pad; i++)
        shape[1 + i] = 1;
    memcpy(shape + 1 + pad, t->shape + 1, (size_t)(t->ndim - 1) * sizeof *shape);
    return hess__reshape_any(ctx, t, out->ndim + 1, shape);
}

/* d[op(A) op(B)] = op(dA) op(B) + op(A) op(dB), vectors taken as the matrices
 * they act as and the sum reshaped to out's tangent; a tangent behind [K] meets
 * the other operand as a batch of K. */
static hess_tensor *
matmul_tangent(hess_context *ctx, const hess_pass *pass, hess_tensor *out, hess_tensor *const tin[])
{
    hess_tensor *A = out->src[0], *B = out->src[1];
    const bool outer = A->ndim == 1 && B->ndim == 1;
    /* a vector enters untransposed as the matrix as_matrix makes */
    const bool ta = A->ndim > 1 && out->par.mm.ta, tb = B->ndim > 1 && out->par.mm.tb;
    hess_tensor *Am = as_matrix(ctx, A, A, 0, outer), *Bm = as_matrix(ctx, B, B, 1, outer);
    hess_tensor *d = NULL;
    if (tin[0])
        d = mm(ctx, as_matrix(ctx, pad_tangent(ctx, pass, tin[0], out), A, 0, outer), Bm, ta, tb);
    if (tin[1])
        d = hess__add_or(
            ctx, d,
            mm(ctx, Am, as_matrix(ctx, pad_tangent(ctx, pass, tin[1], out), B, 1, outer), ta, tb));
    return d ? hess__reshape_like(ctx, pass, d, out) : NULL;
}

static HESS_JVP(matmul_jvp)
{
    return matmul_tangent(ctx, pass, out, tin);
}

/* the matmul's tangent + dc on every row */
static HESS_JVP(linear_jvp)
{
    return hess__add_or(ctx, matmul_tangent(ctx, pass, out, tin),
                        hess__lift(ctx, pass, tin[2], out));
}

static HESS_JVP(transpose_jvp)
{
    (void)out, (void)pass;
    return hess_transpose(ctx, tin[0]);
}

/* ------------------------------------------------------------------------ */
/* Curvature: which operand carries the samples, the parameter's diagonal   */
/* ------------------------------------------------------------------------ */

/* Row b of op(A) op(B) depends on row b of A alone when A is not transposed
 * and has out's rank (x W^T with x [B, n]; a batch [B, m, k]), and on row b
 * of B when both carry the batch in front (rank >= 3). */
static bool matmul_rowwise(const hess_tensor *out, int i)
{
    const hess_tensor *s = out->src[i];
    if (i == 0)
        return s->ndim >= 2 && s->ndim == out->ndim && !(s->ndim == 2 && out->par.mm.ta);
    return i == 1 && s->ndim >= 3 && s->ndim == out->ndim;
}

static bool transpose_rowwise(const hess_tensor *out, int i)
{
    (void)i;
    return out->ndim >= 3;
}

/* The diagonal of a weight B in out = X op(B), X [B, k] the samples' rows
 * (not transposed), out [B, n]: with Q = the diagonal of the Hessian with
 * respect to out (hess__factor_sq), each sample's gradient of op(B) is the
 * outer product x_b q_b^T, whose squares sum to (X^2)^T Q, stored as B is.
 * The bias c of a LINEAR node: the column sums of Q. */
static bool matmul_diag_param(hess_context *ctx,
                              const hess_pass *pass,
                              hess_tensor *out,
                              int i,
                              const hess_factor *f,
                              hess_tensor **d)
{
    (void)pass;
    hess_tensor *X = out->src[0], *W = out->src[1];
    if (out->ndim != 2 || X->ndim != 2 || out->par.mm.ta || out->shape[0] != f->B)
        return false;
    hess_tensor *Q = hess__factor_sq(ctx, f, out);
    if (i == 2) {
        *d = hess__sum_to(ctx, Q, 1, out->shape + 1);
        return true;
    }
    if (i != 1 || W->ndim != 2)
        return false;
    hess_tensor *X2 = hess_mul(ctx, X, X);
    *d = out->par.mm.tb ? mm(ctx, Q, X2, true, false) : mm(ctx, X2, Q, true, false);
    return true;
}

/* ------------------------------------------------------------------------ */
/* Shapes and records                                                       */
/* ------------------------------------------------------------------------ */

/* Result shape of op(a) op(b), batch dims broadcast; false if they do not fit. */
static bool
mm_shape(const hess_tensor *a, const hess_tensor *b, bool ta, bool tb, int *nd, int64_t *shape)
{
    /* a vector with a matrix: a [k] x op(B) [k,n] -> [n], op(A) [m,k] x b [k] -> [m] */
    if (a->ndim == 1 && b->ndim == 2 && !ta) {
        *nd = 1;
        shape[0] = b->shape[tb ? 0 : 1];
        return a->shape[0] == b->shape[tb ? 1 : 0];
    }
    if (b->ndim == 1 && a->ndim == 2 && !tb) {
        *nd = 1;
        shape[0] = a->shape[ta ? 1 : 0];
        return b->shape[0] == a->shape[ta ? 0 : 1];
    }
    /* two vectors, both transposed: the outer product a [m,1] x b [1,n] -> [m,n] */
    if (a->ndim == 1 && b->ndim == 1 && ta && tb) {
        *nd = 2;
        shape[0] = a->shape[0];
        shape[1] = b->shape[0];
        return true;
    }
    if (a->ndim < 2 || b->ndim < 2)
        return false;
    const int64_t ka = a->shape[a->ndim - (ta ? 2 : 1)], kb = b->shape[b->ndim - (tb ? 1 : 2)];
    if (ka != kb)
        return false;
    const int na = a->ndim - 2, nb = b->ndim - 2, n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        const int ia = i - (n - na), ib = i - (n - nb);
        const int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return false;
        shape[i] = da == 1 ? db : da;
    }
    shape[n] = a->shape[a->ndim - (ta ? 1 : 2)];
    shape[n + 1] = b->shape[b->ndim - (tb ? 2 : 1)];
    *nd = n + 2;
    return true;
}

static void mm_error(
    hess_context *ctx, const hess_tensor *a, const hess_tensor *b, bool ta, bool tb, const char *fn)
{
    char sa[96], sb[96];
    hess__error(ctx, HESS_ERR_SHAPE, "%s: inner dimensions differ: %s%s x %s%s", fn,
                hess__shape_str(sa, a->ndim, a->shape), ta ? "^T" : "",
                hess__shape_str(sb, b->ndim, b->shape), tb ? "^T" : "");
}

/* The matmul record's shape rule: op(src[0]) op(src[1]) with the flags of par. */
static bool matmul_shape(hess_context *ctx,
                         hess_tensor *const src[],
                         const hess_op_params *par,
                         int *ndim,
                         int64_t *shape,
                         const char *fn)
{
    const bool ta = par && par->mm.ta, tb = par && par->mm.tb;
    if (mm_shape(src[0], src[1], ta, tb, ndim, shape) && *ndim <= HESS_DIMS)
        return true;
    mm_error(ctx, src[0], src[1], ta, tb, fn);
    return false;
}

/* [..., r, c] -> [..., c, r], rank >= 2 */
/* The linear record's: the product, and src[2] a row [n] added to every row. */
static bool linear_shape(hess_context *ctx,
                         hess_tensor *const src[],
                         const hess_op_params *par,
                         int *ndim,
                         int64_t *shape,
                         const char *fn)
{
    if (!matmul_shape(ctx, src, par, ndim, shape, fn))
        return false;
    const hess_tensor *c = src[2];
    if (c->ndim == 1 && *ndim >= 1 && c->shape[0] == shape[*ndim - 1])
        return true;
    char sc[96], so[96];
    hess__error(ctx, HESS_ERR_SHAPE, "%s: bias %s does not fit rows of %s", fn,
                hess__shape_str(sc, c->ndim, c->shape), hess__shape_str(so, *ndim, shape));
    return false;
}

/* Per node: the workspace of the batched forms (mm_plan), kept by the node. */
static bool mm_prepare(hess_context *ctx, hess_tensor *out, const char *fn)
{
    size_t scratch;
    mm_plan(out, out->src[0], out->src[1], &scratch);
    return !scratch || (out->scratch = hess__alloc(ctx, scratch * sizeof(double), fn)) != NULL;
}

static bool transpose_shape(hess_context *ctx,
                            hess_tensor *const src[],
                            const hess_op_params *par,
                            int *ndim,
                            int64_t *shape,
                            const char *fn)
{
    (void)par;
    const hess_tensor *a = src[0];
    if (a->ndim < 2) {
        char s[96];
        hess__error(ctx, HESS_ERR_SHAPE, "%s: needs a tensor of rank >= 2, got %s", fn,
                    hess__shape_str(s, a->ndim, a->shape));
        return false;
    }
    *ndim = a->ndim;
    memcpy(shape, a->shape, (size_t)a->ndim * sizeof *shape);
    shape[a->ndim - 2] = a->shape[a->ndim - 1];
    shape[a->ndim - 1] = a->shape[a->ndim - 2];
    return true;
}

/* ------------------------------------------------------------------------ */
/* Records                                                                  */
/* ------------------------------------------------------------------------ */

static const hess_op_def op_matmul = {
    .name = "matmul",
    .formula = "out = op(A) op(B), op = transpose by par.mm; vectors as rows or columns",
    .arity = 2,
    .flags = HESS_OPF_MULTILINEAR,
    .shape = matmul_shape,
    .prepare = mm_prepare,
    .forward = matmul_forward,
    .vjp = matmul_vjp,
    .jvp = matmul_jvp,
    .rowwise = matmul_rowwise,
    .diag_param = matmul_diag_param};
static const hess_op_def op_linear = {.name = "linear",
                                      .formula = "out = op(A) op(B) + c, c [n] on every row",
                                      .arity = 3,
                                      .flags = HESS_OPF_MULTILINEAR,
                                      .shape = linear_shape,
                                      .prepare = mm_prepare,
                                      .forward = linear_forward,
                                      .vjp = linear_vjp,
                                      .jvp = linear_jvp,
                                      .rowwise = matmul_rowwise,
                                      .diag_param = matmul_diag_param};
static const hess_op_def op_transpose = {.name = "transpose",
                                         .formula = "out[..., j, i] = a[..., i, j]",
                                         .arity = 1,
                                         .flags = HESS_OPF_LINEAR | HESS_OPF_REINDEX,
                                         .shape = transpose_shape,
                                         .forward = transpose_forward,
                                         .vjp = transpose_vjp,
                                         .jvp = transpose_jvp,
                                         .rowwise = transpose_rowwise};

/* ------------------------------------------------------------------------ */
/* Builders                                                                 */
/* ------------------------------------------------------------------------ */

/* op(a) op(b), + c when c is not NULL (a LINEAR node, c [n] added to every
 * row); shapes checked, HESS_ERR_SHAPE naming fn otherwise. */
static hess_tensor *mm_node(hess_context *ctx,
                            hess_tensor *a,
                            hess_tensor *b,
                            bool ta,
                            bool tb,
                            hess_tensor *c,
                            const char *fn)
{
    if (!a || !b)
        return NULL;
    hess_tensor *src[3] = {a, b, c};
    const hess_op_params par = {.mm = {ta, tb}};
    return hess__apply(ctx, c ? &op_linear : &op_matmul, src, &par, fn);
}

static hess_tensor *
mm_fn(hess_context *ctx, hess_tensor *a, hess_tensor *b, bool ta, bool tb, const char *fn)
{
    return mm_node(ctx, a, b, ta, tb, NULL, fn);
}

static hess_tensor *mm(hess_context *ctx, hess_tensor *a, hess_tensor *b, bool ta, bool tb)
{
    return mm_fn(ctx, a, b, ta, tb, "hess_matmul");
}

hess_tensor *hess__linear_t(hess_context *ctx,
                            hess_tensor *a,
                            hess_tensor *b,
                            bool ta,
                            bool tb,
                            hess_tensor *c,
                            const char *fn)
{
    if (!ctx || hess__check(ctx, a, fn) || hess__check(ctx, b, fn) || hess__check(ctx, c, fn))
        return NULL;
    return mm_node(ctx, a, b, ta, tb, c, fn);
}

hess_tensor *
hess__matmul_t(hess_context *ctx, hess_tensor *a, hess_tensor *b, bool ta, bool tb, const char *fn)
{
    if (!ctx || hess__check(ctx, a, fn) || hess__check(ctx, b, fn))
        return NULL;
    return mm_fn(ctx, a, b, ta, tb, fn);
}

static hess_tensor *matmul_impl(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    static const char fn[] = "hess_matmul";
    if (!ctx || hess__check(ctx, a, fn) || hess__check(ctx, b, fn))
        return NULL;
    const bool av = a->ndim == 1, bv = b->ndim == 1;
    if (a->ndim == 0 || b->ndim == 0 || a->shape[a->ndim - 1] != b->shape[bv ? 0 : b->ndim - 2]) {
        mm_error(ctx, a, b, false, false, fn);
        return NULL;
    }
    if ((!av && !bv) || (av && b->ndim == 2) || (bv && a->ndim == 2))
        return mm_fn(ctx, a, b, false, false, fn); /* vector with matrix: one node */
    /* with a batch, or two vectors: vectors become [1,k] rows or [k,1] columns,
     * and the result drops those dims */
    const int64_t k = a->shape[a->ndim - 1];
    const int64_t row[2] = {1, k}, col[2] = {k, 1};
    hess_tensor *a2 = av ? hess_reshape(ctx, a, 2, row) : a;
    hess_tensor *b2 = bv ? hess_reshape(ctx, b, 2, col) : b;
    hess_tensor *c = mm_fn(ctx, a2, b2, false, false, fn);
    if (!c)
        return NULL;
    int64_t shape[HESS_DIMS];
    int nd = 0;
    for (int i = 0; i < c->ndim - 2; i++)
        shape[nd++] = c->shape[i];
    if (!av)
        shape[nd++] = c->shape[c->ndim - 2];
    if (!bv)
        shape[nd++] = c->shape[c->ndim - 1];
    return hess_reshape(ctx, c, nd, shape);
}

hess_tensor *hess_transpose(hess_context *ctx, hess_tensor *a)
{
    return hess__apply1(ctx, &op_transpose, a, NULL, "hess_transpose");
}

hess_tensor *hess_matmul(hess_context *ctx, hess_tensor *a, hess_tensor *b)
{
    const char *saved = hess__api_enter(ctx, "hess_matmul");
    return hess__api_leave(ctx, saved, matmul_impl(ctx, a, b));
}

static const hess_op_def *const linalg_ops[] = {&op_matmul, &op_linear, &op_transpose};
const hess__op_family hess__linalg_family = {linalg_ops, sizeof linalg_ops / sizeof linalg_ops[0]};
