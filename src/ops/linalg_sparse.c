/*
 * linalg_sparse.c -- the sparse path of a matrix product: one batched operand
 * that holds a leaf's values and is mostly zeros, such as the unit
 * directions of a Hessian sweep (their leaf says where its ones are,
 * HESS_T_ONEHOT), adds a scaled column or row of the other operand per
 * nonzero instead of a dense product.  How many of a leaf's chunks of 8 hold
 * a nonzero is counted by whoever writes its values (par.leaf.nz_chunks), so
 * a dense leaf is never scanned: a kernel never writes into its sources.
 */
#include "ops.h"

#include <string.h>

/* Below this many multiply-adds a product does not look for zeros to skip
 * (a scan of the operand costs about as much as the product). */
#define SPARSE_MIN_MACS 4096

/* The leaf whose values t holds (t itself, or the source of a chain of
 * reshape views), or NULL: values set from outside, such as the direction
 * leaves of a Hessian sweep. */
static const hess_tensor *leaf_of(const hess_tensor *t)
{
    while (!hess__is_leaf(t) && t->src[0] && t->data == t->src[0]->data)
        t = t->src[0];
    return hess__is_leaf(t) ? t : NULL;
}

/* The one nonzero of the one-hot operand S's block b (S batched nbatch times,
 * its leaf marked HESS_T_ONEHOT), as an element index into the block, or -1. */
static int64_t onehot_at(const hess_tensor *leaf, int64_t b, int64_t blk)
{
    const int64_t e = leaf->par.leaf.onehot_first + b;
    return b < leaf->par.leaf.onehot_count && e >= 0 && e < blk ? e : -1;
}

/* Products with one batched operand that holds a leaf's values and is mostly
 * zeros -- the unit directions of a Hessian sweep (hessian.c) are one-hot, so
 * x V^T and the like have one term per direction, not n k.  Each nonzero
 * adds a scaled column (B batched) or row (A batched) of the other operand.
 * Taken only when that is under 1/8 of the dense work and the other operand
 * is finite (so that 0 * inf gives NaN as the dense product does); false
 * otherwise. */
bool hess__matmul_sparse(hess_tensor *out, bool ta, bool tb, int64_t nbatch)
{
    hess_tensor *A = out->src[0], *B = out->src[1];
    const int nb = out->ndim - 2;
    const int64_t m = out->shape[nb], n = out->shape[nb + 1];
    const int64_t k = A->shape[A->ndim - (ta ? 2 : 1)];
    if (nbatch == 1 && m * n * k < SPARSE_MIN_MACS)
        return false; /* one small product: a one-hot one gains nothing either */
    const hess_tensor *lb =
        hess__batch_numel(A) == 1 && hess__batch_numel(B) == nbatch ? leaf_of(B) : NULL;
    const hess_tensor *la =
        !lb && hess__batch_numel(B) == 1 && hess__batch_numel(A) == nbatch ? leaf_of(A) : NULL;
    if (!lb && !la)
        return false;
    const bool bside = lb != NULL;
    const hess_tensor *S = bside ? B : A, *D = bside ? A : B; /* sparse, dense */
    const hess_tensor *leaf = bside ? lb : la;
    const int64_t blk = S->numel / nbatch; /* one batch block of S */
    /* unit directions: their ones are known, nothing to scan */
    const bool onehot = (leaf->flags & HESS_T_ONEHOT) && leaf->ndim > 0 &&
                        leaf->shape[0] == nbatch && leaf->numel / nbatch == blk;
    if (!onehot && nbatch * m * n * k < SPARSE_MIN_MACS)
        return false; /* a scan would cost about what it could save */
    /* One pass over S in chunks of 8, keeping the chunks with a nonzero (an OR
     * of the bits without the sign: -0 counts as zero); too many: dense.  The
     * leaf's writer counted them already: a dense leaf is not scanned. */
    enum { CHUNK = 8, MAX_CHUNKS = 1024 };
    const int64_t nz = leaf->par.leaf.nz_chunks;
    if (!onehot && nz >= 0 && (nz > MAX_CHUNKS || nz * CHUNK * 8 > S->numel))
        return false;
    int64_t list[MAX_CHUNKS];
    int64_t nl = 0;
    for (int64_t e0 = 0; !onehot && e0 < S->numel; e0 += CHUNK) {
        const int64_t e1 = e0 + CHUNK < S->numel ? e0 + CHUNK : S->numel;
        uint64_t acc = 0;
        for (int64_t e = e0; e < e1; e++) {
            uint64_t u;
            memcpy(&u, S->data + e, sizeof u);
            acc |= u << 1;
        }
        if (acc) {
            if (nl == MAX_CHUNKS || (nl + 1) * CHUNK * 8 > S->numel)
                return false;
            list[nl++] = e0;
        }
    }
    for (int64_t i = 0; i < D->numel; i++)
        if (!isfinite(D->data[i]))
            return false;
    memset(out->data, 0, (size_t)out->numel * sizeof(double));
    /* element strides: op(A)(i, p) = a[i ai + p ap], op(B)(p, j) = b[p bp + j bj] */
    const int64_t ai = ta ? 1 : k, ap = ta ? m : 1, bp = tb ? 1 : n, bj = tb ? k : 1;
    /* each batch block of S as stored: rows x cols */
    const bool st = bside ? tb : ta;
    const int64_t cols = bside ? (tb ? k : n) : (ta ? m : k);
    /* the nonzeros: one per block (onehot), or those of the kept chunks */
    const int64_t count = onehot ? nbatch : nl * CHUNK;
    for (int64_t q = 0; q < count; q++) {
        int64_t e;
        if (onehot) {
            const int64_t at = onehot_at(leaf, q, blk);
            if (at < 0)
                continue;
            e = q * blk + at;
        } else {
            e = list[q / CHUNK] + q % CHUNK;
            if (e >= S->numel)
                continue;
        }
        const double v = S->data[e];
        if (v == 0.0)
            continue;
        const int64_t b = e / blk, r = e % blk / cols, c = e % blk % cols;
        double *cb = out->data + b * m * n;
        if (bside) { /* B_b(p, j) = v: C_b(:, j) += v op(A)(:, p) */
            const int64_t p = st ? c : r, j = st ? r : c;
            for (int64_t i = 0; i < m; i++)
                cb[i * n + j] += v * D->data[i * ai + p * ap];
        } else { /* A_b(i, p) = v: C_b(i, :) += v op(B)(p, :) */
            const int64_t i = st ? c : r, p = st ? r : c;
            for (int64_t jj = 0; jj < n; jj++)
                cb[i * n + jj] += v * D->data[p * bp + jj * bj];
        }
    }
    return true;
}
