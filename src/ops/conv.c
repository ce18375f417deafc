/*
 * conv.c -- convolution and pooling over the last two dims (NCHW).
 *
 * conv2d and its two adjoints -- conv2d_input, the cotangent of x (PyTorch's
 * conv_transpose2d, torch.nn.grad.conv2d_input), and conv2d_weight, the
 * cotangent of w (torch.nn.grad.conv2d_weight) -- are linear in each source,
 * and the vjp and jvp rules of each are made of the three, so every order of
 * derivative exists.  All three run on the GEMM path: one sample and group at
 * a time, the input unfolded (im2col) into a workspace the node keeps (one
 * sample's, so it stays in cache), then one product of kernels/gemm.h; the
 * adjoint folds back (col2im).  A 1x1 kernel with stride 1 and no padding
 * needs no unfolding.
 *
 * avg_pool2d and its adjoint are linear.  max_pool2d is a selection: its
 * node keeps where the maxima of its windows are (as PyTorch's
 * max_pool2d_with_indices), and its derivatives are the selection of another
 * tensor at those positions (max_pool2d_select) and the adjoint of that,
 * which adds a tensor into them (max_unpool2d): both take the max_pool2d
 * node as their second source and read its positions, so the maxima are
 * found once per evaluation of the forward pass.  The rules of the two are
 * each other.  The maxima follow PyTorch: the first maximum in row-major
 * window order, and a NaN in a window is taken as its maximum (the last NaN
 * when there are more).
 *
 * Legend: x [N,C,H,W], w [O,C/G,kh,kw], y [N,O,OH,OW], G groups; per group
 * Cg = C/G and Og = O/G channels, K = Cg*kh*kw rows of the unfolded input,
 * P = OH*OW positions.  The records take any dims before these four (a batch
 * prefix: the directions of a batched pass), broadcast between the two
 * operands as hess_matmul's batch dims are; the pooling ops take any dims
 * before the last two (planes), and max_pool2d_select / max_unpool2d a
 * prefix before the shape of x (or y) on their first operand.  The geometry
 * (hess__conv_par, core.h) is in the arena, pointed to by the parameters.
 */
#include "ops.h"

#include "../kernels/gemm.h"

#include <string.h>

/* ------------------------------------------------------------------------ */
/* Geometry                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct geom {
    int64_t N, C, H, W, O, OH, OW;
    int64_t kh, kw, sh, sw, ph, pw, dh, dw, G;
    int64_t Cg, Og, K, P;
    bool direct; /* a 1x1 kernel, stride 1, no padding: the unfolded input is x */
} geom;

static const hess__conv_par no_par;

/* The geometry par points to (none: every default). */
static const hess__conv_par *cp(const hess_op_params *par)
{
    return par && par->conv.p ? par->conv.p : &no_par;
}

/* Parameters pointing to c, which the node's prepare copies (keep_par). */
static hess_op_params with(const hess__conv_par *c)
{
    hess_op_params p;
    memset(&p, 0, sizeof p);
    p.conv.p = c;
    return p;
}

/* A node keeps its geometry in the arena: a copy of what its builder gave. */
static bool keep_par(hess_context *ctx, hess_tensor *out, const char *fn)
{
    if (!out->par.conv.p)
        return true;
    hess__conv_par *c = hess__alloc(ctx, sizeof *c, fn);
    if (!c)
        return false;
    *c = *out->par.conv.p;
    out->par.conv.p = c;
    return true;
}

static int64_t or_default(int64_t v, int64_t d)
{
    return v > 0 ? v : d;
}

/* Stride, padding, dilation and groups of par (NULL: all defaults). */
static void conv_params(const hess_op_params *par, geom *g)
{
    const hess__conv_par *c = cp(par);
    g->sh = or_default(c->sh, 1);
    g->sw = or_default(c->sw, 1);
    g->ph = or_default(c->ph, 0);
    g->pw = or_default(c->pw, 0);
    g->dh = or_default(c->dh, 1);
    g->dw = or_default(c->dw, 1);
    g->G = or_default(c->groups, 1);
}

static void geom_finish(geom *g)
{
    g->Cg = g->C / g->G;
    g->Og = g->O / g->G;
    g->K = g->Cg * g->kh * g->kw;
    g->P = g->OH * g->OW;
    g->direct = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

/* The last four dims of t. */
static const int64_t *dims4(const hess_tensor *t)
{
    return t->shape + t->ndim - 4;
}

/* The geometry of a node whose shapes were checked: x-like [N,C,H,W],
 * w-like [O,Cg,kh,kw] and y-like [N,O,OH,OW] tensors (sources or out). */
static void geom_of(geom *g,
                    const hess_op_params *par,
                    const hess_tensor *x,
                    const hess_tensor *w,
                    const hess_tensor *y)
{
    const int64_t *xs = dims4(x), *ws = dims4(w), *ys = dims4(y);
    conv_params(par, g);
    g->N = xs[0], g->C = xs[1], g->H = xs[2], g->W = xs[3];
    g->O = ws[0], g->kh = ws[2], g->kw = ws[3];
    g->OH = ys[2], g->OW = ys[3];
    geom_finish(g);
}

/* Output length along one axis, floor((in + 2p - d (k-1) - 1) / s) + 1, or 0
 * when the padded input is shorter than the dilated kernel. */
static int64_t conv_len(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d)
{
    const int64_t span = in + 2 * p - 1;
    if (k - 1 > span / d)
        return 0;
    return (span - d * (k - 1)) / s + 1;
}

/* The shortest input giving `out` positions, (out-1) s + d (k-1) + 1 - 2p;
 * 0 when that is not positive or too large. */
static int64_t conv_in_len(int64_t out, int64_t k, int64_t s, int64_t p, int64_t d)
{
    const int64_t big = INT64_MAX / 4;
    if (out - 1 > big / s || k - 1 > big / d)
        return 0;
    const int64_t n = (out - 1) * s + d * (k - 1) + 1 - 2 * p;
    return n > 0 ? n : 0;
}

/* The largest kernel mapping `in` to `out` positions; 0 when none. */
static int64_t conv_k_len(int64_t in, int64_t out, int64_t s, int64_t p, int64_t d)
{
    if (out - 1 > (INT64_MAX / 4) / s)
        return 0;
    const int64_t r = in + 2 * p - 1 - (out - 1) * s;
    return r >= 0 ? r / d + 1 : 0;
}

/* The broadcast of the batch prefixes of a and b (their dims before the last
 * four), NumPy-aligned, into shape; false if they do not broadcast. */
static bool prefix_bcast(const hess_tensor *a, const hess_tensor *b, int *np, int64_t *shape)
{
    const int na = a->ndim - 4, nb = b->ndim - 4, n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        const int ia = i - (n - na), ib = i - (n - nb);
        const int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return false;
        shape[i] = da == 1 ? db : da;
    }
    *np = n;
    return true;
}

/* Offset in t of element bi of out's batch prefix (its first np dims). */
static int64_t prefix_offset(const hess_tensor *t, const hess_tensor *out, int np, int64_t bi)
{
    const int tp = t->ndim - 4;
    int64_t off = 0, stride = hess__numel(4, dims4(t));
    for (int d = np - 1; d >= 0; d--) {
        const int64_t idx = bi % out->shape[d];
        bi /= out->shape[d];
        const int td = d - (np - tp);
        if (td >= 0) {
            if (t->shape[td] != 1)
                off += idx * stride;
            stride *= t->shape[td];
        }
    }
    return off;
}

/* ------------------------------------------------------------------------ */
/* Kernels: unfolding, folding, and the three products                      */
/* ------------------------------------------------------------------------ */

/* The positions ow in [*lo, *hi) whose column iw0 + ow*sw is inside [0, W). */
static void col_range(const geom *g, int64_t iw0, int64_t *lo, int64_t *hi)
{
    int64_t l = iw0 >= 0 ? 0 : (-iw0 + g->sw - 1) / g->sw;
    int64_t h = g->W - 1 - iw0 < 0 ? 0 : (g->W - 1 - iw0) / g->sw + 1;
    h = h < g->OW ? h : g->OW;
    *lo = l < h ? l : h;
    *hi = h;
}

/* Without padding every read is inside x: the rows of the unfolded input
 * are strided copies of x's rows, with the geometry in locals (on LeNet's
 * shapes half the time of the general loop below, whose short rows are
 * dominated by their bookkeeping). */
static void im2col_inside(const double *restrict x, const geom *g, double *restrict cols)
{
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW, kh = g->kh, kw = g->kw;
    const int64_t sh = g->sh, sw = g->sw, dh = g->dh, dw = g->dw, P = g->P;
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t i = 0; i < kh; i++)
            for (int64_t j = 0; j < kw; j++) {
                double *row = cols + ((c * kh + i) * kw + j) * P;
                const double *src = x + (c * H + i * dh) * W + j * dw;
                for (int64_t oh = 0; oh < OH; oh++, row += OW, src += sh * W)
                    if (sw == 1)
                        for (int64_t ow = 0; ow < OW; ow++)
                            row[ow] = src[ow];
                    else
                        for (int64_t ow = 0; ow < OW; ow++)
                            row[ow] = src[ow * sw];
            }
}

/* The adjoint of im2col_inside. */
static void col2im_inside(const double *restrict cols, const geom *g, double *restrict x)
{
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW, kh = g->kh, kw = g->kw;
    const int64_t sh = g->sh, sw = g->sw, dh = g->dh, dw = g->dw, P = g->P;
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t i = 0; i < kh; i++)
            for (int64_t j = 0; j < kw; j++) {
                const double *row = cols + ((c * kh + i) * kw + j) * P;
                double *dst = x + (c * H + i * dh) * W + j * dw;
                for (int64_t oh = 0; oh < OH; oh++, row += OW, dst += sh * W)
                    if (sw == 1)
                        for (int64_t ow = 0; ow < OW; ow++)
                            dst[ow] += row[ow];
                    else
                        for (int64_t ow = 0; ow < OW; ow++)
                            dst[ow * sw] += row[ow];
            }
}

/* cols [K, P] from Cg channels at x (planes of H*W):
 * cols[(c kh + i) kw + j, oh OW + ow] = x[c, oh sh - ph + i dh, ow sw - pw + j dw],
 * 0 in the padding. */
static void im2col(const double *x, const geom *g, double *cols)
{
    if (g->ph == 0 && g->pw == 0) {
        im2col_inside(x, g, cols);
        return;
    }
    const int64_t H = g->H, W = g->W, OW = g->OW;
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                double *row = cols + ((c * g->kh + i) * g->kw + j) * g->P;
                const int64_t iw0 = j * g->dw - g->pw;
                int64_t lo, hi;
                col_range(g, iw0, &lo, &hi);
                for (int64_t oh = 0; oh < g->OH; oh++) {
                    double *dst = row + oh * OW;
                    const int64_t ih = oh * g->sh - g->ph + i * g->dh;
                    if (ih < 0 || ih >= H) {
                        memset(dst, 0, (size_t)OW * sizeof *dst);
                        continue;
                    }
                    const double *src = x + (c * H + ih) * W;
                    for (int64_t ow = 0; ow < lo; ow++)
                        dst[ow] = 0.0;
                    /* rows are short (OW doubles): a loop, not a call */
                    if (g->sw == 1)
                        for (int64_t ow = lo; ow < hi; ow++)
                            dst[ow] = src[iw0 + ow];
                    else
                        for (int64_t ow = lo; ow < hi; ow++)
                            dst[ow] = src[iw0 + ow * g->sw];
                    for (int64_t ow = hi; ow < OW; ow++)
                        dst[ow] = 0.0;
                }
            }
}

/* The adjoint of im2col: x[c, ih, iw] += cols[row, position] over every
 * row and position that reads it (x holds Cg planes). */
static void col2im_add(const double *cols, const geom *g, double *x)
{
    if (g->ph == 0 && g->pw == 0) {
        col2im_inside(cols, g, x);
        return;
    }
    const int64_t H = g->H, W = g->W, OW = g->OW;
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                const double *row = cols + ((c * g->kh + i) * g->kw + j) * g->P;
                const int64_t iw0 = j * g->dw - g->pw;
                int64_t lo, hi;
                col_range(g, iw0, &lo, &hi);
                for (int64_t oh = 0; oh < g->OH; oh++) {
                    const int64_t ih = oh * g->sh - g->ph + i * g->dh;
                    if (ih < 0 || ih >= H)
                        continue;
                    const double *src = row + oh * OW;
                    double *dst = x + (c * H + ih) * W;
                    for (int64_t ow = lo; ow < hi; ow++)
                        dst[iw0 + ow * g->sw] += src[ow];
                }
            }
}

/* y[n] = W_g x_g[n] unfolded, per group, + b[o] on every position:
 * y [..., N, O, P] from x [..., N, C, H, W] and w [..., G, Og, K]. */
static void conv_forward(hess_tensor *out)
{
    const hess_tensor *x = out->src[0], *w = out->src[1];
    geom g;
    geom_of(&g, &out->par, x, w, out);
    const int np = out->ndim - 4;
    const int64_t nb = hess__numel(np, out->shape), CHW = g.C * g.H * g.W;
    const double *cached = NULL; /* the group the workspace holds unfolded */
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t bi = 0; bi < nb; bi++) {
            const double *xs = x->data + prefix_offset(x, out, np, bi) + n * CHW;
            const double *ws = w->data + prefix_offset(w, out, np, bi);
            double *ys = out->data + (bi * g.N + n) * g.O * g.P;
            for (int64_t gi = 0; gi < g.G; gi++) {
                const double *xg = xs + gi * g.Cg * g.H * g.W;
                if (!g.direct && xg != cached) {
                    im2col(xg, &g, out->scratch);
                    cached = xg;
                }
                hess__gemm(out->ctx->simd, false, false, g.Og, g.P, g.K, ws + gi * g.Og * g.K,
                           g.direct ? xg : out->scratch, ys + gi * g.Og * g.P);
            }
        }
    if (out->def->arity < 3)
        return;
    const double *b = out->src[2]->data;
    for (int64_t r = 0; r < nb * g.N; r++)
        for (int64_t o = 0; o < g.O; o++) {
            double *yo = out->data + (r * g.O + o) * g.P;
            for (int64_t p = 0; p < g.P; p++)
                yo[p] += b[o];
        }
}

/* x-like out [..., N, C, H, W] = the fold of W_g^T gy_g[n], per group: the
 * adjoint of conv2d in x, from gy [..., N, O, OH, OW] and w. */
static void conv_input_forward(hess_tensor *out)
{
    const hess_tensor *gy = out->src[0], *w = out->src[1];
    geom g;
    geom_of(&g, &out->par, out, w, gy);
    const int np = out->ndim - 4;
    const int64_t nb = hess__numel(np, out->shape), CHW = g.C * g.H * g.W;
    if (!g.direct) /* direct products write every element */
        memset(out->data, 0, (size_t)out->numel * sizeof(double));
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t bi = 0; bi < nb; bi++) {
            const double *gs = gy->data + prefix_offset(gy, out, np, bi) + n * g.O * g.P;
            const double *ws = w->data + prefix_offset(w, out, np, bi);
            double *xs = out->data + (bi * g.N + n) * CHW;
            for (int64_t gi = 0; gi < g.G; gi++) {
                double *xg = xs + gi * g.Cg * g.H * g.W;
                double *cols = g.direct ? xg : out->scratch;
                hess__gemm(out->ctx->simd, true, false, g.K, g.P, g.Og, ws + gi * g.Og * g.K,
                           gs + gi * g.Og * g.P, cols);
                if (!g.direct)
                    col2im_add(cols, &g, xg);
            }
        }
}

/* w-like out [..., O, Cg, kh, kw] = sum over n of gy_g[n] x_g[n]^T unfolded,
 * per group: the adjoint of conv2d in w, from gy and x.  Each sample's
 * product is formed transposed, cols [K, P] gy_g^T -> [K, Og], and added
 * into out transposed: the kernel then packs gy (Og x P), not the unfolded
 * input (K x P), which took 1.3 to 1.4 times as long on LeNet's shapes. */
static void conv_weight_forward(hess_tensor *out)
{
    const hess_tensor *gy = out->src[0], *x = out->src[1];
    geom g;
    geom_of(&g, &out->par, x, out, gy);
    const int np = out->ndim - 4;
    const int64_t nb = hess__numel(np, out->shape), CHW = g.C * g.H * g.W;
    double *cols = out->scratch, *prod = out->scratch + (g.direct ? 0 : g.K * g.P);
    const double *cached = NULL;
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t bi = 0; bi < nb; bi++) {
            const double *xs = x->data + prefix_offset(x, out, np, bi) + n * CHW;
            const double *gs = gy->data + prefix_offset(gy, out, np, bi) + n * g.O * g.P;
            double *ws = out->data + bi * g.O * g.K;
            for (int64_t gi = 0; gi < g.G; gi++) {
                const double *xg = xs + gi * g.Cg * g.H * g.W;
                if (!g.direct && xg != cached) {
                    im2col(xg, &g, cols);
                    cached = xg;
                }
                hess__gemm(out->ctx->simd, false, true, g.K, g.Og, g.P, g.direct ? xg : cols,
                           gs + gi * g.Og * g.P, prod);
                double *wg = ws + gi * g.Og * g.K;
                for (int64_t o = 0; o < g.Og; o++) /* the first sample sets, the others add */
                    for (int64_t r = 0; r < g.K; r++)
                        wg[o * g.K + r] = (n ? wg[o * g.K + r] : 0.0) + prod[r * g.Og + o];
            }
        }
}

/* ------------------------------------------------------------------------ */
/* Shape rules                                                              */
/* ------------------------------------------------------------------------ */

static bool conv_rank_error(
    hess_context *ctx, const hess_tensor *a, const hess_tensor *b, const char *what, const char *fn)
{
    char sa[96], sb[96];
    hess__error(ctx, HESS_ERR_SHAPE, "%s: %s %s and %s: need rank >= 4", fn, what,
                hess__shape_str(sa, a->ndim, a->shape), hess__shape_str(sb, b->ndim, b->shape));
    return false;
}

/* The channels of x-like and w-like tensors fit the groups; false with the
 * error recorded. */
static bool check_groups(hess_context *ctx, const geom *g, int64_t Cw, const char *fn)
{
    if (g->C == Cw * g->G && g->O % g->G == 0)
        return true;
    hess__error(ctx, HESS_ERR_SHAPE,
                "%s: %lld input channels and %lld outputs do not fit a weight of %lld channels "
                "per group with %lld groups",
                fn, (long long)g->C, (long long)g->O, (long long)Cw, (long long)g->G);
    return false;
}

/* The result shape: the operands' broadcast prefix, then last[4]. */
static bool prefix_result(hess_context *ctx,
                          const hess_tensor *a,
                          const hess_tensor *b,
                          const int64_t last[4],
                          int *ndim,
                          int64_t *shape,
                          const char *fn)
{
    int np;
    char sa[96], sb[96];
    /* np + 4 <= HESS_DIMS: each operand has rank <= HESS_DIMS, so at most
     * HESS_DIMS - 4 prefix dims */
    if (!prefix_bcast(a, b, &np, shape)) {
        hess__error(ctx, HESS_ERR_SHAPE, "%s: the leading dims of %s and %s do not broadcast", fn,
                    hess__shape_str(sa, a->ndim, a->shape), hess__shape_str(sb, b->ndim, b->shape));
        return false;
    }
    memcpy(shape + np, last, 4 * sizeof *shape);
    *ndim = np + 4;
    return true;
}

/* conv2d: y [..., N, O, OH, OW] from x [..., N, C, H, W], w [..., O, C/G, kh, kw]. */
static bool conv_shape(hess_context *ctx,
                       hess_tensor *const src[],
                       const hess_op_params *par,
                       int *ndim,
                       int64_t *shape,
                       const char *fn)
{
    const hess_tensor *x = src[0], *w = src[1];
    if (x->ndim < 4 || w->ndim < 4)
        return conv_rank_error(ctx, x, w, "x and w", fn);
    geom g;
    conv_params(par, &g);
    const int64_t *xs = dims4(x), *ws = dims4(w);
    g.N = xs[0], g.C = xs[1], g.H = xs[2], g.W = xs[3];
    g.O = ws[0], g.kh = ws[2], g.kw = ws[3];
    if (!check_groups(ctx, &g, ws[1], fn))
        return false;
    g.OH = conv_len(g.H, g.kh, g.sh, g.ph, g.dh);
    g.OW = conv_len(g.W, g.kw, g.sw, g.pw, g.dw);
    if (!g.OH || !g.OW) {
        char sx[96], sw[96];
        hess__error(ctx, HESS_ERR_SHAPE,
                    "%s: input %s with padding (%lld,%lld) is smaller than the kernel %s with "
                    "dilation (%lld,%lld)",
                    fn, hess__shape_str(sx, x->ndim, x->shape), (long long)g.ph, (long long)g.pw,
                    hess__shape_str(sw, w->ndim, w->shape), (long long)g.dh, (long long)g.dw);
        return false;
    }
    const int64_t last[4] = {g.N, g.O, g.OH, g.OW};
    return prefix_result(ctx, x, w, last, ndim, shape, fn);
}

/* conv2d with a bias b [O]. */
static bool conv_bias_shape(hess_context *ctx,
                            hess_tensor *const src[],
                            const hess_op_params *par,
                            int *ndim,
                            int64_t *shape,
                            const char *fn)
{
    if (!conv_shape(ctx, src, par, ndim, shape, fn))
        return false;
    const hess_tensor *b = src[2];
    if (b->ndim == 1 && b->shape[0] == shape[*ndim - 3])
        return true;
    char sb[96], sy[96];
    hess__error(ctx, HESS_ERR_SHAPE, "%s: bias %s does not fit the %lld output channels of %s", fn,
                hess__shape_str(sb, b->ndim, b->shape), (long long)shape[*ndim - 3],
                hess__shape_str(sy, *ndim, shape));
    return false;
}

/* conv2d_input: x-like [..., N, C, H, W] from gy [..., N, O, OH, OW] and w;
 * H, W from par (0: the shortest input giving OH, OW). */
static bool conv_input_shape(hess_context *ctx,
                             hess_tensor *const src[],
                             const hess_op_params *par,
                             int *ndim,
                             int64_t *shape,
                             const char *fn)
{
    const hess_tensor *gy = src[0], *w = src[1];
    if (gy->ndim < 4 || w->ndim < 4)
        return conv_rank_error(ctx, gy, w, "cotangent and w", fn);
    geom g;
    conv_params(par, &g);
    const int64_t *ys = dims4(gy), *ws = dims4(w);
    g.N = ys[0], g.O = ws[0], g.C = ws[1] * g.G, g.OH = ys[2], g.OW = ys[3];
    g.kh = ws[2], g.kw = ws[3];
    g.H = cp(par)->in_h > 0 ? cp(par)->in_h : conv_in_len(g.OH, g.kh, g.sh, g.ph, g.dh);
    g.W = cp(par)->in_w > 0 ? cp(par)->in_w : conv_in_len(g.OW, g.kw, g.sw, g.pw, g.dw);
    char sy[96], sw[96];
    if (ys[1] != g.O || !check_groups(ctx, &g, ws[1], fn)) {
        hess__error(ctx, HESS_ERR_SHAPE, "%s: cotangent %s does not fit w %s", fn,
                    hess__shape_str(sy, gy->ndim, gy->shape),
                    hess__shape_str(sw, w->ndim, w->shape));
        return false;
    }
    if (!g.H || !g.W || conv_len(g.H, g.kh, g.sh, g.ph, g.dh) != g.OH ||
        conv_len(g.W, g.kw, g.sw, g.pw, g.dw) != g.OW) {
        hess__error(ctx, HESS_ERR_SHAPE, "%s: no input of %lldx%lld gives the cotangent %s", fn,
                    (long long)g.H, (long long)g.W, hess__shape_str(sy, gy->ndim, gy->shape));
        return false;
    }
    const int64_t last[4] = {g.N, g.C, g.H, g.W};
    return prefix_result(ctx, gy, w, last, ndim, shape, fn);
}

/* conv2d_weight: w-like [..., O, C/G, kh, kw] from gy [..., N, O, OH, OW] and
 * x [..., N, C, H, W]; kh, kw from par (0: the largest giving OH, OW). */
static bool conv_weight_shape(hess_context *ctx,
                              hess_tensor *const src[],
                              const hess_op_params *par,
                              int *ndim,
                              int64_t *shape,
                              const char *fn)
{
    const hess_tensor *gy = src[0], *x = src[1];
    if (gy->ndim < 4 || x->ndim < 4)
        return conv_rank_error(ctx, gy, x, "cotangent and x", fn);
    geom g;
    conv_params(par, &g);
    const int64_t *ys = dims4(gy), *xs = dims4(x);
    g.N = xs[0], g.C = xs[1], g.H = xs[2], g.W = xs[3], g.O = ys[1], g.OH = ys[2], g.OW = ys[3];
    g.kh = cp(par)->kh > 0 ? cp(par)->kh : conv_k_len(g.H, g.OH, g.sh, g.ph, g.dh);
    g.kw = cp(par)->kw > 0 ? cp(par)->kw : conv_k_len(g.W, g.OW, g.sw, g.pw, g.dw);
    char sy[96], sx[96];
    if (ys[0] != g.N || g.C % g.G || !check_groups(ctx, &g, g.C / g.G, fn)) {
        hess__error(ctx, HESS_ERR_SHAPE, "%s: cotangent %s does not fit x %s", fn,
                    hess__shape_str(sy, gy->ndim, gy->shape),
                    hess__shape_str(sx, x->ndim, x->shape));
        return false;
    }
    if (!g.kh || !g.kw || conv_len(g.H, g.kh, g.sh, g.ph, g.dh) != g.OH ||
        conv_len(g.W, g.kw, g.sw, g.pw, g.dw) != g.OW) {
        hess__error(ctx, HESS_ERR_SHAPE, "%s: no kernel of %lldx%lld maps x %s to the cotangent %s",
                    fn, (long long)g.kh, (long long)g.kw, hess__shape_str(sx, x->ndim, x->shape),
                    hess__shape_str(sy, gy->ndim, gy->shape));
        return false;
    }
    const int64_t last[4] = {g.O, g.C / g.G, g.kh, g.kw};
    return prefix_result(ctx, gy, x, last, ndim, shape, fn);
}

/* The workspace of a node: one sample's unfolded group (not for a direct
 * product), and for conv2d_weight a product to add. */
static bool
conv_prepare_with(hess_context *ctx, hess_tensor *out, const geom *g, bool product, const char *fn)
{
    size_t n = g->direct ? 0 : (size_t)g->K * (size_t)g->P;
    if (product)
        n += (size_t)g->Og * (size_t)g->K;
    if (!n)
        return true;
    if (n > SIZE_MAX / 2 / sizeof(double)) {
        hess__error(ctx, HESS_ERR_NOMEM, "%s: a workspace of %zu doubles is too large", fn, n);
        return false;
    }
    return (out->scratch = hess__alloc(ctx, n * sizeof(double), fn)) != NULL;
}

static bool conv_prepare(hess_context *ctx, hess_tensor *out, const char *fn)
{
    if (!keep_par(ctx, out, fn))
        return false;
    geom g;
    geom_of(&g, &out->par, out->src[0], out->src[1], out);
    return conv_prepare_with(ctx, out, &g, false, fn);
}

static bool conv_input_prepare(hess_context *ctx, hess_tensor *out, const char *fn)
{
    if (!keep_par(ctx, out, fn))
        return false;
    geom g;
    geom_of(&g, &out->par, out, out->src[1], out->src[0]);
    return conv_prepare_with(ctx, out, &g, false, fn);
}

static bool conv_weight_prepare(hess_context *ctx, hess_tensor *out, const char *fn)
{
    if (!keep_par(ctx, out, fn))
        return false;
    geom g;
    geom_of(&g, &out->par, out->src[1], out, out->src[0]);
    return conv_prepare_with(ctx, out, &g, true, fn);
}

/* ------------------------------------------------------------------------ */
/* Rules of the convolution                                                 */
/* ------------------------------------------------------------------------ */

static hess_tensor *
conv_node(hess_context *ctx, hess_tensor *x, hess_tensor *w, const hess_op_params *par);
static hess_tensor *
conv_input_node(hess_context *ctx, hess_tensor *gy, hess_tensor *w, const hess_op_params *par);
static hess_tensor *
conv_weight_node(hess_context *ctx, hess_tensor *gy, hess_tensor *x, const hess_op_params *par);

/* The parameters of an adjoint: out's, with the input's height and width
 * from the x-like tensor and the kernel from the w-like one. */
static hess__conv_par
adjoint_params(const hess_tensor *out, const hess_tensor *x, const hess_tensor *w)
{
    hess__conv_par c = *cp(&out->par);
    c.in_h = dims4(x)[2], c.in_w = dims4(x)[3];
    c.kh = dims4(w)[2], c.kw = dims4(w)[3];
    return c;
}

/* A tangent [k, ...] of an operand (never NULL: the rules pad those they
 * have), padded with ones after k so that its prefix has out's np dims: k
 * then meets no prefix dim of the other operand. */
static hess_tensor *pad_k(hess_context *ctx, const hess_pass *pass, hess_tensor *t, int np)
{
    if (!pass->k || t->ndim - 5 >= np)
        return t;
    int64_t shape[HESS_DIMS];
    const int pad = np - (t->ndim - 5);
    shape[0] = t->shape[0];
    for (int i = 0; i < pad; i++)
        shape[1 + i] = 1;
    memcpy(shape + 1 + pad, t->shape + 1, (size_t)(t->ndim - 1) * sizeof *shape);
    return hess__reshape_any(ctx, t, t->ndim + pad, shape);
}

/* db = gy summed over all but the channel dim (and the directions). */
static hess_tensor *
bias_cotangent(hess_context *ctx, const hess_pass *pass, hess_tensor *g, const hess_tensor *b)
{
    int64_t keep[HESS_DIMS];
    for (int d = 0; d < g->ndim; d++)
        keep[d] = (d == 0 && pass->k) || d == g->ndim - 3 ? g->shape[d] : 1;
    return hess__reshape_like(ctx, pass, hess__sum_to(ctx, g, g->ndim, keep), b);
}

/* d conv2d(x, w) + b = conv2d_input(G, w) dx + conv2d_weight(G, x) dw + sum(G) db */
static HESS_VJP(conv_vjp)
{
    hess_tensor *x = out->src[0], *w = out->src[1];
    const hess__conv_par c = adjoint_params(out, x, w);
    const hess_op_params p = with(&c);
    if (HESS_NEED(pass, 0))
        gin[0] = hess__sum_like(ctx, pass, conv_input_node(ctx, g, w, &p), x);
    if (HESS_NEED(pass, 1))
        gin[1] = hess__sum_like(ctx, pass, conv_weight_node(ctx, g, x, &p), w);
    if (out->def->arity == 3 && HESS_NEED(pass, 2))
        gin[2] = bias_cotangent(ctx, pass, g, out->src[2]);
}

/* conv2d(dx, w) + conv2d(x, dw) + db on every position */
static HESS_JVP(conv_jvp)
{
    hess_tensor *x = out->src[0], *w = out->src[1], *t = NULL;
    const int np = out->ndim - 4;
    if (tin[0])
        t = conv_node(ctx, pad_k(ctx, pass, tin[0], np), w, &out->par);
    if (tin[1])
        t = hess__add_or(ctx, t, conv_node(ctx, x, pad_k(ctx, pass, tin[1], np), &out->par));
    if (out->def->arity == 3 && tin[2]) { /* db [k?, O] as [k?, O, 1, 1] */
        int64_t shape[4];
        int nd = 0;
        if (pass->k)
            shape[nd++] = pass->k;
        shape[nd++] = tin[2]->shape[tin[2]->ndim - 1];
        shape[nd++] = 1;
        shape[nd++] = 1;
        hess_tensor *col = hess__reshape_any(ctx, tin[2], nd, shape);
        t = hess__add_or(ctx, t, hess__lift(ctx, pass, col, out));
    }
    return t;
}

/* out = conv2d_input(gy, w): d = conv2d(G, w) dgy + conv2d_weight(gy, G) dw */
static HESS_VJP(conv_input_vjp)
{
    hess_tensor *gy = out->src[0], *w = out->src[1];
    const hess__conv_par c = adjoint_params(out, out, w);
    const hess_op_params p = with(&c);
    if (HESS_NEED(pass, 0))
        gin[0] = hess__sum_like(ctx, pass, conv_node(ctx, g, w, &p), gy);
    if (HESS_NEED(pass, 1))
        gin[1] = hess__sum_like(ctx, pass, conv_weight_node(ctx, gy, g, &p), w);
}

static HESS_JVP(conv_input_jvp)
{
    hess_tensor *gy = out->src[0], *w = out->src[1], *t = NULL;
    const int np = out->ndim - 4;
    if (tin[0])
        t = conv_input_node(ctx, pad_k(ctx, pass, tin[0], np), w, &out->par);
    if (tin[1])
        t = hess__add_or(ctx, t, conv_input_node(ctx, gy, pad_k(ctx, pass, tin[1], np), &out->par));
    return t;
}

/* out = conv2d_weight(gy, x): d = conv2d(x, G) dgy + conv2d_input(gy, G) dx */
static HESS_VJP(conv_weight_vjp)
{
    hess_tensor *gy = out->src[0], *x = out->src[1];
    const hess__conv_par c = adjoint_params(out, x, out);
    const hess_op_params p = with(&c);
    if (HESS_NEED(pass, 0))
        gin[0] = hess__sum_like(ctx, pass, conv_node(ctx, x, g, &p), gy);
    if (HESS_NEED(pass, 1))
        gin[1] = hess__sum_like(ctx, pass, conv_input_node(ctx, gy, g, &p), x);
}

static HESS_JVP(conv_weight_jvp)
{
    hess_tensor *gy = out->src[0], *x = out->src[1], *t = NULL;
    const int np = out->ndim - 4;
    if (tin[0])
        t = conv_weight_node(ctx, pad_k(ctx, pass, tin[0], np), x, &out->par);
    if (tin[1])
        t = hess__add_or(ctx, t,
                         conv_weight_node(ctx, gy, pad_k(ctx, pass, tin[1], np), &out->par));
    return t;
}

/* Row n of y depends on row n of x alone (no batch prefix: y of rank 4 has
 * x and w of rank 4). */
static bool conv_rowwise(const hess_tensor *out, int i)
{
    return i == 0 && out->ndim == 4;
}

/* The diagonal of w and b, which the samples share, from the curvature f at
 * y [B, O, OH, OW] (per sample sum_g s_g F_g F_g^T + diag(D)).  A sample's
 * gradient of w for a column F[c, b] sums over the positions,
 * conv2d_weight(F[c, b], x[b]): its square does not split, so the per-sample
 * gradients are made, [C, B, ...w] (one conv2d_weight with the columns and
 * the samples as a batch), squared and summed.  The diagonal part needs no
 * such product: sum_b,p D[b, o, p] x[b, unfolded]^2 = conv2d_weight(D, x^2).
 * The bias's per-sample gradient is the column summed over the positions. */
static bool conv_diag_param(hess_context *ctx,
                            const hess_pass *pass,
                            hess_tensor *out,
                            int i,
                            const hess_factor *f,
                            hess_tensor **d)
{
    (void)pass;
    hess_tensor *x = out->src[0], *w = out->src[1], *sum = NULL;
    /* y of rank 4 has x and w of rank 4 (its prefix is theirs, broadcast);
     * i is w (1) or b (2): x is per sample (conv_rowwise) whenever y's
     * leading dim is the samples' B, and otherwise y is refused here first */
    if (out->ndim != 4 || out->shape[0] != f->B)
        return false;
    const int64_t B = f->B, O = out->shape[1];
    const hess__conv_par c = adjoint_params(out, x, w);
    const hess_op_params p = with(&c);
    const int64_t bias[3] = {O, 1, 1}, xb[5] = {B, 1, x->shape[1], x->shape[2], x->shape[3]};
    hess_tensor *xr = i == 1 ? hess__reshape_any(ctx, x, 5, xb) : NULL;
    for (size_t k = 0; k < f->n; k++) {
        hess_tensor *F = f->F[k], *q; /* [C, ...y]: rank 5 */
        const int64_t C = F->shape[0];
        if (i == 2) {
            const int64_t per[5] = {C, B, O, 1, 1};
            hess_tensor *s = hess__sum_to(ctx, F, 5, per);
            q = hess__sum_to(ctx, hess_mul(ctx, s, s), 3, bias);
        } else {
            const int64_t fs[6] = {C, B, 1, O, out->shape[2], out->shape[3]};
            hess_tensor *gw = conv_weight_node(ctx, hess__reshape_any(ctx, F, 6, fs), xr, &p);
            q = hess__sum_to(ctx, hess_mul(ctx, gw, gw), w->ndim, w->shape);
        }
        sum = hess__add_or(ctx, sum, f->sign[k] < 0 ? hess_neg(ctx, q) : q);
    }
    if (f->D)
        sum = hess__add_or(ctx, sum,
                           i == 2 ? hess__sum_to(ctx, f->D, 3, bias)
                                  : conv_weight_node(ctx, f->D, hess_mul(ctx, x, x), &p));
    *d = i == 2 ? hess__reshape_any(ctx, sum, 1, &O) : sum; /* (NULL stays NULL) */
    return true;
}

/* ------------------------------------------------------------------------ */
/* Pooling                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct pgeom {
    int64_t M, H, W, OH, OW, kh, kw, sh, sw; /* M planes of H x W */
} pgeom;

/* Kernel and stride of par (kernel 0: 1; stride 0: the kernel). */
static void pool_params(const hess_op_params *par, pgeom *g)
{
    const hess__conv_par *c = cp(par);
    g->kh = or_default(c->kh, 1);
    g->kw = or_default(c->kw, 1);
    g->sh = or_default(c->sh, g->kh);
    g->sw = or_default(c->sw, g->kw);
}

static int64_t pool_len(int64_t in, int64_t k, int64_t s)
{
    return in >= k ? (in - k) / s + 1 : 0;
}

/* The geometry of a pooling node from its input-like x and output-like y. */
static void
pgeom_of(pgeom *g, const hess_op_params *par, const hess_tensor *x, const hess_tensor *y)
{
    pool_params(par, g);
    g->H = x->shape[x->ndim - 2], g->W = x->shape[x->ndim - 1];
    g->OH = y->shape[y->ndim - 2], g->OW = y->shape[y->ndim - 1];
    g->M = x->numel / (g->H * g->W);
}

/* Pooled sizes of x [..., H, W]; false with the error recorded. */
static bool pool_geom(
    hess_context *ctx, const hess_tensor *x, const hess_op_params *par, pgeom *g, const char *fn)
{
    char s[96];
    if (x->ndim < 2) {
        hess__error(ctx, HESS_ERR_SHAPE, "%s: needs a tensor of rank >= 2, got %s", fn,
                    hess__shape_str(s, x->ndim, x->shape));
        return false;
    }
    pool_params(par, g);
    g->H = x->shape[x->ndim - 2], g->W = x->shape[x->ndim - 1];
    g->OH = pool_len(g->H, g->kh, g->sh), g->OW = pool_len(g->W, g->kw, g->sw);
    if (g->OH && g->OW)
        return true;
    hess__error(ctx, HESS_ERR_SHAPE, "%s: input %s is smaller than the kernel %lldx%lld", fn,
                hess__shape_str(s, x->ndim, x->shape), (long long)g->kh, (long long)g->kw);
    return false;
}

/* avg_pool2d, max_pool2d: [..., H, W] -> [..., OH, OW]. */
static bool pool_shape(hess_context *ctx,
                       hess_tensor *const src[],
                       const hess_op_params *par,
                       int *ndim,
                       int64_t *shape,
                       const char *fn)
{
    pgeom g;
    const hess_tensor *x = src[0];
    if (!pool_geom(ctx, x, par, &g, fn))
        return false;
    *ndim = x->ndim;
    memcpy(shape, x->shape, (size_t)x->ndim * sizeof *shape);
    shape[x->ndim - 2] = g.OH, shape[x->ndim - 1] = g.OW;
    return true;
}

/* avg_pool2d_adjoint: [..., OH, OW] -> [..., H, W], H and W from par (0: the
 * shortest input giving OH, OW). */
static bool pool_adjoint_shape(hess_context *ctx,
                               hess_tensor *const src[],
                               const hess_op_params *par,
                               int *ndim,
                               int64_t *shape,
                               const char *fn)
{
    const hess_tensor *gy = src[0];
    char s[96];
    if (gy->ndim < 2) {
        hess__error(ctx, HESS_ERR_SHAPE, "%s: needs a tensor of rank >= 2, got %s", fn,
                    hess__shape_str(s, gy->ndim, gy->shape));
        return false;
    }
    pgeom g;
    pool_params(par, &g);
    g.OH = gy->shape[gy->ndim - 2], g.OW = gy->shape[gy->ndim - 1];
    g.H = cp(par)->in_h > 0 ? cp(par)->in_h : conv_in_len(g.OH, g.kh, g.sh, 0, 1);
    g.W = cp(par)->in_w > 0 ? cp(par)->in_w : conv_in_len(g.OW, g.kw, g.sw, 0, 1);
    if (!g.H || !g.W || pool_len(g.H, g.kh, g.sh) != g.OH || pool_len(g.W, g.kw, g.sw) != g.OW) {
        hess__error(ctx, HESS_ERR_SHAPE, "%s: no input of %lldx%lld pools to %s", fn,
                    (long long)g.H, (long long)g.W, hess__shape_str(s, gy->ndim, gy->shape));
        return false;
    }
    *ndim = gy->ndim;
    memcpy(shape, gy->shape, (size_t)gy->ndim * sizeof *shape);
    shape[gy->ndim - 2] = g.H, shape[gy->ndim - 1] = g.W;
    return true;
}

/* Whether t is shaped [..., like...] (a prefix before like's shape), with
 * like's last two dims replaced by h, w. */
static bool prefixed_like(const hess_tensor *t, const hess_tensor *like, int64_t h, int64_t w)
{
    if (t->ndim < like->ndim)
        return false;
    const int off = t->ndim - like->ndim;
    for (int d = 0; d < like->ndim - 2; d++)
        if (t->shape[off + d] != like->shape[d])
            return false;
    return t->shape[t->ndim - 2] == h && t->shape[t->ndim - 1] == w;
}

static const hess_op_def op_avg_pool2d, op_avg_pool2d_adjoint, op_max_pool2d, op_max_pool2d_select,
    op_max_unpool2d;

/* max_pool2d_select (t, y) and max_unpool2d (g, y) take the maxima of
 * y = max_pool2d(x), which y's node keeps: t [..., x...] -> [..., y...], t's
 * elements at the maxima; g [..., y...] -> [..., x...], added into them. */
static bool select_shape(hess_context *ctx,
                         hess_tensor *const src[],
                         const hess_op_params *par,
                         int *ndim,
                         int64_t *shape,
                         const char *fn,
                         bool unpool)
{
    (void)par;
    const hess_tensor *t = src[0], *y = src[1];
    char st[96], sy[96];
    if (y->def != &op_max_pool2d) {
        hess__error(ctx, HESS_ERR_ARG, "%s: %s is not a result of max_pool2d (op %s)", fn,
                    hess__shape_str(sy, y->ndim, y->shape), y->def->name);
        return false;
    }
    const hess_tensor *x = y->src[0];
    const hess_tensor *from = unpool ? y : x, *to = unpool ? x : y;
    if (!prefixed_like(t, from, from->shape[from->ndim - 2], from->shape[from->ndim - 1])) {
        hess__error(ctx, HESS_ERR_SHAPE, "%s: %s %s does not fit %s", fn,
                    unpool ? "cotangent" : "tensor", hess__shape_str(st, t->ndim, t->shape),
                    hess__shape_str(sy, from->ndim, from->shape));
        return false;
    }
    *ndim = t->ndim;
    memcpy(shape, t->shape, (size_t)t->ndim * sizeof *shape);
    shape[t->ndim - 2] = to->shape[to->ndim - 2];
    shape[t->ndim - 1] = to->shape[to->ndim - 1];
    return true;
}

static bool max_select_shape(hess_context *ctx,
                             hess_tensor *const src[],
                             const hess_op_params *par,
                             int *ndim,
                             int64_t *shape,
                             const char *fn)
{
    return select_shape(ctx, src, par, ndim, shape, fn, false);
}

static bool max_unpool_shape(hess_context *ctx,
                             hess_tensor *const src[],
                             const hess_op_params *par,
                             int *ndim,
                             int64_t *shape,
                             const char *fn)
{
    return select_shape(ctx, src, par, ndim, shape, fn, true);
}

/* max_pool2d's workspace: the positions of its maxima, which its selections
 * read. */
static bool max_pool_prepare(hess_context *ctx, hess_tensor *out, const char *fn)
{
    if (!keep_par(ctx, out, fn))
        return false;
    out->scratch = hess__alloc(ctx, (size_t)out->numel * sizeof(int64_t), fn);
    return out->scratch != NULL;
}

/* out[m, oh, ow] = the mean of x's window (kh x kw at oh sh, ow sw). */
static void avg_pool_forward(hess_tensor *out)
{
    const hess_tensor *x = out->src[0];
    pgeom g;
    pgeom_of(&g, &out->par, x, out);
    const double n = (double)(g.kh * g.kw);
    for (int64_t m = 0; m < g.M; m++) {
        const double *plane = x->data + m * g.H * g.W;
        double *o = out->data + m * g.OH * g.OW;
        for (int64_t oh = 0; oh < g.OH; oh++)
            for (int64_t ow = 0; ow < g.OW; ow++) {
                const double *win = plane + oh * g.sh * g.W + ow * g.sw;
                double s = 0.0;
                for (int64_t i = 0; i < g.kh; i++)
                    for (int64_t j = 0; j < g.kw; j++)
                        s += win[i * g.W + j];
                o[oh * g.OW + ow] = s / n;
            }
    }
}

/* The adjoint: each window's element of g / (kh kw) added to its window. */
static void avg_pool_adjoint_forward(hess_tensor *out)
{
    const hess_tensor *gy = out->src[0];
    pgeom g;
    pgeom_of(&g, &out->par, out, gy);
    const double n = (double)(g.kh * g.kw);
    memset(out->data, 0, (size_t)out->numel * sizeof(double));
    for (int64_t m = 0; m < g.M; m++) {
        double *plane = out->data + m * g.H * g.W;
        const double *gi = gy->data + m * g.OH * g.OW;
        for (int64_t oh = 0; oh < g.OH; oh++)
            for (int64_t ow = 0; ow < g.OW; ow++) {
                double *win = plane + oh * g.sh * g.W + ow * g.sw;
                const double v = gi[oh * g.OW + ow] / n;
                for (int64_t i = 0; i < g.kh; i++)
                    for (int64_t j = 0; j < g.kw; j++)
                        win[i * g.W + j] += v;
            }
    }
}

/* The maximum of the kh x kw window at position at0 of a plane (row length
 * W) and where it is, as PyTorch picks it: the first maximum in row-major
 * order, a NaN over any number (the last NaN).  The comparison compiles to
 * conditional moves (no branch on the values: on data in random order half
 * of them would be mispredicted), NaNs are found after. */
static inline int64_t
window_max(const double *plane, int64_t at0, int64_t W, int64_t kh, int64_t kw, double *vmax)
{
    int64_t best = at0;
    double v = plane[at0];
    bool nan = false;
    for (int64_t i = 0; i < kh; i++)
        for (int64_t j = 0; j < kw; j++) {
            const int64_t at = at0 + i * W + j;
            const double u = plane[at];
            /* an integer mask, which compilers do not turn back into a branch */
            const int64_t take = -(int64_t)(u > v);
            best = (best & ~take) | (at & take);
            v = u > v ? u : v;
            nan |= u != u;
        }
    if (nan)
        for (int64_t i = 0; i < kh; i++)
            for (int64_t j = 0; j < kw; j++)
                if (plane[at0 + i * W + j] != plane[at0 + i * W + j])
                    best = at0 + i * W + j;
    *vmax = plane[best];
    return best;
}

/* y[m, q] = the maximum of window q of x's plane m, idx[m, q] its position in
 * the plane (kept for the selections); 2x2 windows (the common case)
 * unrolled. */
static void max_pool_forward(hess_tensor *out)
{
    const hess_tensor *x = out->src[0];
    pgeom g;
    pgeom_of(&g, &out->par, x, out);
    const bool two = g.kh == 2 && g.kw == 2;
    int64_t *idx = (int64_t *)(void *)out->scratch;
    for (int64_t m = 0; m < g.M; m++) {
        const double *plane = x->data + m * g.H * g.W;
        for (int64_t oh = 0; oh < g.OH; oh++)
            for (int64_t ow = 0; ow < g.OW; ow++) {
                const int64_t at0 = oh * g.sh * g.W + ow * g.sw, q = (m * g.OH + oh) * g.OW + ow;
                idx[q] = two ? window_max(plane, at0, g.W, 2, 2, out->data + q)
                             : window_max(plane, at0, g.W, g.kh, g.kw, out->data + q);
            }
    }
}

/* The maxima a selection reads: those of y = src[1]; M planes of H x W
 * pooled to P positions. */
static const int64_t *maxima(const hess_tensor *out, int64_t *M, int64_t *HW, int64_t *P)
{
    const hess_tensor *y = out->src[1], *x = y->src[0];
    *HW = x->shape[x->ndim - 2] * x->shape[x->ndim - 1];
    *P = y->shape[y->ndim - 2] * y->shape[y->ndim - 1];
    *M = x->numel / *HW;
    return (const int64_t *)(const void *)y->scratch;
}

/* out[.., m, q] = t[.., m, idx[m, q]]: t's elements at the maxima, for every
 * block of t's prefix. */
static void max_select_forward(hess_tensor *out)
{
    int64_t M, HW, P;
    const int64_t *idx = maxima(out, &M, &HW, &P);
    const hess_tensor *t = out->src[0];
    const int64_t blocks = t->numel / (M * HW);
    for (int64_t k = 0; k < blocks; k++)
        for (int64_t m = 0; m < M; m++) {
            const double *plane = t->data + (k * M + m) * HW;
            const int64_t *im = idx + m * P;
            double *o = out->data + (k * M + m) * P;
            for (int64_t q = 0; q < P; q++)
                o[q] = plane[im[q]];
        }
}

/* The adjoint: out[.., m, idx[m, q]] += g[.., m, q], zeros elsewhere. */
static void max_unpool_forward(hess_tensor *out)
{
    int64_t M, HW, P;
    const int64_t *idx = maxima(out, &M, &HW, &P);
    const hess_tensor *gy = out->src[0];
    const int64_t blocks = gy->numel / (M * P);
    memset(out->data, 0, (size_t)out->numel * sizeof(double));
    for (int64_t k = 0; k < blocks; k++)
        for (int64_t m = 0; m < M; m++) {
            double *plane = out->data + (k * M + m) * HW;
            const int64_t *im = idx + m * P;
            const double *gs = gy->data + (k * M + m) * P;
            for (int64_t q = 0; q < P; q++)
                plane[im[q]] += gs[q];
        }
}

/* ------------------------------------------------------------------------ */
/* Rules of the pooling ops                                                 */
/* ------------------------------------------------------------------------ */

static hess_tensor *pool_node(hess_context *ctx,
                              const hess_op_def *def,
                              hess_tensor *a,
                              hess_tensor *x,
                              const hess_op_params *par);

/* out's parameters with the height and width of x. */
static hess__conv_par pool_adjoint_params(const hess_tensor *out, const hess_tensor *x)
{
    hess__conv_par c = *cp(&out->par);
    c.in_h = x->shape[x->ndim - 2], c.in_w = x->shape[x->ndim - 1];
    return c;
}

static HESS_VJP(avg_pool_vjp)
{
    (void)pass;
    const hess__conv_par c = pool_adjoint_params(out, out->src[0]);
    const hess_op_params p = with(&c);
    gin[0] = pool_node(ctx, &op_avg_pool2d_adjoint, g, NULL, &p);
}

static HESS_JVP(avg_pool_jvp)
{
    (void)pass;
    return pool_node(ctx, &op_avg_pool2d, tin[0], NULL, &out->par);
}

static HESS_VJP(avg_pool_adjoint_vjp)
{
    (void)pass;
    gin[0] = pool_node(ctx, &op_avg_pool2d, g, NULL, &out->par);
}

static HESS_JVP(avg_pool_adjoint_jvp)
{
    (void)pass;
    return pool_node(ctx, &op_avg_pool2d_adjoint, tin[0], NULL, &out->par);
}

/* d max_pool2d(x) = dx at the maxima: its cotangent goes back to them */
static HESS_VJP(max_pool_vjp)
{
    (void)pass;
    gin[0] = pool_node(ctx, &op_max_unpool2d, g, out, NULL);
}

/* (one source: the forward pass asks only when its tangent is not zero) */
static HESS_JVP(max_pool_jvp)
{
    (void)pass;
    return pool_node(ctx, &op_max_pool2d_select, tin[0], out, NULL);
}

/* Linear in t; the maxima of x are piecewise constant, so x has no
 * derivative (zero almost everywhere). */
static HESS_VJP(max_select_vjp)
{
    (void)pass;
    gin[0] = pool_node(ctx, &op_max_unpool2d, g, out->src[1], NULL);
}

static HESS_JVP(max_select_jvp)
{
    (void)pass;
    return tin[0] ? pool_node(ctx, &op_max_pool2d_select, tin[0], out->src[1], NULL) : NULL;
}

static HESS_VJP(max_unpool_vjp)
{
    (void)pass;
    gin[0] = pool_node(ctx, &op_max_pool2d_select, g, out->src[1], NULL);
}

static HESS_JVP(max_unpool_jvp)
{
    (void)pass;
    return tin[0] ? pool_node(ctx, &op_max_unpool2d, tin[0], out->src[1], NULL) : NULL;
}

/* The planes stay the samples' (rank >= 3: the leading dim is not pooled). */
static bool pool_rowwise(const hess_tensor *out, int i)
{
    (void)i;
    return out->ndim >= 3;
}

/* ... and for the selections, when t has no prefix before x's shape. */
static bool select_rowwise(const hess_tensor *out, int i)
{
    (void)i;
    return out->ndim >= 3 && out->src[0]->ndim == out->src[1]->ndim;
}

/* ------------------------------------------------------------------------ */
/* Records                                                                  */
/* ------------------------------------------------------------------------ */

static const hess_op_def op_conv2d = {
    .name = "conv2d",
    .formula = "y[n,o] = sum_c,i,j w[o,c,i,j] x[n,g(o)+c, oh sh-ph+i dh, ow sw-pw+j dw]",
    .arity = 2,
    .flags = HESS_OPF_MULTILINEAR,
    .shape = conv_shape,
    .prepare = conv_prepare,
    .forward = conv_forward,
    .vjp = conv_vjp,
    .jvp = conv_jvp,
    .rowwise = conv_rowwise,
    .diag_param = conv_diag_param};
static const hess_op_def op_conv2d_bias = {.name = "conv2d_bias",
                                           .formula = "y = conv2d(x, w) + b[o] at every position",
                                           .arity = 3,
                                           .flags = HESS_OPF_MULTILINEAR,
                                           .shape = conv_bias_shape,
                                           .prepare = conv_prepare,
                                           .forward = conv_forward,
                                           .vjp = conv_vjp,
                                           .jvp = conv_jvp,
                                           .rowwise = conv_rowwise,
                                           .diag_param = conv_diag_param};
static const hess_op_def op_conv2d_input = {
    .name = "conv2d_input",
    .formula = "x-like = conv2d's adjoint in x applied to gy (conv_transpose2d(gy, w))",
    .arity = 2,
    .flags = HESS_OPF_MULTILINEAR,
    .shape = conv_input_shape,
    .prepare = conv_input_prepare,
    .forward = conv_input_forward,
    .vjp = conv_input_vjp,
    .jvp = conv_input_jvp,
    .rowwise = conv_rowwise};
static const hess_op_def op_conv2d_weight = {
    .name = "conv2d_weight",
    .formula = "w-like = sum_n gy[n] unfold(x[n])^T per group: conv2d's adjoint in w",
    .arity = 2,
    .flags = HESS_OPF_MULTILINEAR,
    .shape = conv_weight_shape,
    .prepare = conv_weight_prepare,
    .forward = conv_weight_forward,
    .vjp = conv_weight_vjp,
    .jvp = conv_weight_jvp};
static const hess_op_def op_avg_pool2d = {.name = "avg_pool2d",
                                          .formula = "out[.., oh, ow] = mean of the kh x kw window "
                                                     "at (oh sh, ow sw)",
                                          .arity = 1,
                                          .flags = HESS_OPF_LINEAR,
                                          .shape = pool_shape,
                                          .prepare = keep_par,
                                          .forward = avg_pool_forward,
                                          .vjp = avg_pool_vjp,
                                          .jvp = avg_pool_jvp,
                                          .rowwise = pool_rowwise};
static const hess_op_def op_avg_pool2d_adjoint = {
    .name = "avg_pool2d_adjoint",
    .formula = "out[.., h, w] = sum of g / (kh kw) over the windows holding (h, w)",
    .arity = 1,
    .flags = HESS_OPF_LINEAR,
    .shape = pool_adjoint_shape,
    .prepare = keep_par,
    .forward = avg_pool_adjoint_forward,
    .vjp = avg_pool_adjoint_vjp,
    .jvp = avg_pool_adjoint_jvp,
    .rowwise = pool_rowwise};
/* A selection: each element of out is one element of x, so a diagonal
 * curvature at out maps to a diagonal one at x by the vjp rule (scattered
 * and added where windows share their maximum): HESS_OPF_REINDEX. */
static const hess_op_def op_max_pool2d = {.name = "max_pool2d",
                                          .formula = "out[.., oh, ow] = max of the kh x kw window "
                                                     "at (oh sh, ow sw)",
                                          .arity = 1,
                                          .flags = HESS_OPF_LINEAR | HESS_OPF_REINDEX,
                                          .shape = pool_shape,
                                          .prepare = max_pool_prepare,
                                          .forward = max_pool_forward,
                                          .vjp = max_pool_vjp,
                                          .jvp = max_pool_jvp,
                                          .rowwise = pool_rowwise};
static const hess_op_def op_max_pool2d_select = {
    .name = "max_pool2d_select",
    .formula = "out[.., oh, ow] = t at the maximum of window (oh, ow) that y = max_pool2d(x) took",
    .arity = 2,
    .flags = HESS_OPF_LINEAR | HESS_OPF_REINDEX,
    .shape = max_select_shape,
    .forward = max_select_forward,
    .vjp = max_select_vjp,
    .jvp = max_select_jvp,
    .rowwise = select_rowwise};
static const hess_op_def op_max_unpool2d = {
    .name = "max_unpool2d",
    .formula = "out[.., h, w] = sum of g over the windows of y = max_pool2d(x) whose maximum "
               "is at (h, w)",
    .arity = 2,
    .flags = HESS_OPF_LINEAR,
    .shape = max_unpool_shape,
    .forward = max_unpool_forward,
    .vjp = max_unpool_vjp,
    .jvp = max_unpool_jvp,
    .rowwise = select_rowwise};

/* ------------------------------------------------------------------------ */
/* Builders                                                                 */
/* ------------------------------------------------------------------------ */

/* conv2d without a bias: the rules' products (the bias's derivative is a sum) */
static hess_tensor *
conv_node(hess_context *ctx, hess_tensor *x, hess_tensor *w, const hess_op_params *par)
{
    hess_tensor *src[2] = {x, w};
    return hess__apply(ctx, &op_conv2d, src, par, "hess_conv2d");
}

static hess_tensor *
conv_input_node(hess_context *ctx, hess_tensor *gy, hess_tensor *w, const hess_op_params *par)
{
    hess_tensor *src[2] = {gy, w};
    return hess__apply(ctx, &op_conv2d_input, src, par, "hess_conv2d");
}

static hess_tensor *
conv_weight_node(hess_context *ctx, hess_tensor *gy, hess_tensor *x, const hess_op_params *par)
{
    hess_tensor *src[2] = {gy, x};
    return hess__apply(ctx, &op_conv2d_weight, src, par, "hess_conv2d");
}

static hess_tensor *pool_node(hess_context *ctx,
                              const hess_op_def *def,
                              hess_tensor *a,
                              hess_tensor *x,
                              const hess_op_params *par)
{
    hess_tensor *src[2] = {a, x};
    const bool avg = def == &op_avg_pool2d || def == &op_avg_pool2d_adjoint;
    return hess__apply(ctx, def, src, par, avg ? "hess_avg_pool2d" : "hess_max_pool2d");
}

/* A public operand x of rank 3 ([C,H,W], one sample) or 4; false with
 * HESS_ERR_SHAPE recorded. */
static bool rank_3_or_4(hess_context *ctx, const hess_tensor *x, const char *what, const char *fn)
{
    if (x->ndim == 3 || x->ndim == 4)
        return true;
    char s[96];
    hess__error(ctx, HESS_ERR_SHAPE, "%s: %s %s must be [N,C,H,W] or [C,H,W]", fn, what,
                hess__shape_str(s, x->ndim, x->shape));
    return false;
}

/* x of rank 3 as one sample [1,C,H,W]; y back to rank 3. */
static hess_tensor *as_batch(hess_context *ctx, hess_tensor *t, bool to_batch)
{
    int64_t shape[4];
    if (to_batch) {
        shape[0] = 1;
        memcpy(shape + 1, t->shape, 3 * sizeof *shape);
        return hess_reshape(ctx, t, 4, shape);
    }
    return t ? hess_reshape(ctx, t, 3, t->shape + 1) : NULL;
}

/* The options as parameters: zeros mean the defaults, negatives are refused. */
static bool
conv_opts_params(hess_context *ctx, const hess_conv_opts *o, hess__conv_par *c, const char *fn)
{
    memset(c, 0, sizeof *c);
    c->sh = c->sw = c->dh = c->dw = c->groups = 1;
    if (!o)
        return true;
    for (int i = 0; i < 2; i++)
        if (o->stride[i] < 0 || o->padding[i] < 0 || o->dilation[i] < 0) {
            hess__error(ctx, HESS_ERR_ARG,
                        "%s: stride (%d,%d), padding (%d,%d) and dilation (%d,%d) must be >= 0 "
                        "(0: the default)",
                        fn, o->stride[0], o->stride[1], o->padding[0], o->padding[1],
                        o->dilation[0], o->dilation[1]);
            return false;
        }
    if (o->groups < 0) {
        hess__error(ctx, HESS_ERR_ARG, "%s: groups %d must be >= 0 (0: one group)", fn, o->groups);
        return false;
    }
    c->sh = o->stride[0] ? o->stride[0] : 1;
    c->sw = o->stride[1] ? o->stride[1] : 1;
    c->ph = o->padding[0];
    c->pw = o->padding[1];
    c->dh = o->dilation[0] ? o->dilation[0] : 1;
    c->dw = o->dilation[1] ? o->dilation[1] : 1;
    c->groups = o->groups ? o->groups : 1;
    return true;
}

static hess_tensor *conv2d_impl(
    hess_context *ctx, hess_tensor *x, hess_tensor *w, hess_tensor *b, const hess_conv_opts *opts)
{
    static const char fn[] = "hess_conv2d";
    if (!ctx || hess__check(ctx, x, fn) || hess__check(ctx, w, fn) ||
        (b && hess__check(ctx, b, fn)))
        return NULL;
    hess__conv_par c;
    if (!conv_opts_params(ctx, opts, &c, fn) || !rank_3_or_4(ctx, x, "x", fn))
        return NULL;
    char sw[96], sb[96];
    if (w->ndim != 4) {
        hess__error(ctx, HESS_ERR_SHAPE, "%s: w %s must be [O,C/groups,kh,kw]", fn,
                    hess__shape_str(sw, w->ndim, w->shape));
        return NULL;
    }
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0])) {
        hess__error(ctx, HESS_ERR_SHAPE, "%s: b %s does not fit w %s (b [O])", fn,
                    hess__shape_str(sb, b->ndim, b->shape), hess__shape_str(sw, w->ndim, w->shape));
        return NULL;
    }
    const bool one = x->ndim == 3;
    hess_tensor *x4 = one ? as_batch(ctx, x, true) : x;
    if (!x4)
        return NULL;
    c.kh = w->shape[2], c.kw = w->shape[3];
    c.in_h = x4->shape[2], c.in_w = x4->shape[3];
    const hess_op_params par = with(&c);
    hess_tensor *src[3] = {x4, w, b};
    hess_tensor *y = hess__apply(ctx, b ? &op_conv2d_bias : &op_conv2d, src, &par, fn);
    return one ? as_batch(ctx, y, false) : y;
}

hess_tensor *hess_conv2d(
    hess_context *ctx, hess_tensor *x, hess_tensor *w, hess_tensor *b, const hess_conv_opts *opts)
{
    const char *saved = hess__api_enter(ctx, "hess_conv2d");
    return hess__api_leave(ctx, saved, conv2d_impl(ctx, x, w, b, opts));
}

static hess_tensor *pool_impl(hess_context *ctx,
                              const hess_op_def *def,
                              hess_tensor *x,
                              int kh,
                              int kw,
                              int sh,
                              int sw,
                              const char *fn)
{
    if (!ctx || hess__check(ctx, x, fn))
        return NULL;
    if (kh < 1 || kw < 1 || sh < 0 || sw < 0) {
        hess__error(ctx, HESS_ERR_ARG,
                    "%s: kernel %dx%d must be >= 1 and stride %dx%d >= 0 (0: the kernel)", fn, kh,
                    kw, sh, sw);
        return NULL;
    }
    if (!rank_3_or_4(ctx, x, "x", fn))
        return NULL;
    hess__conv_par c;
    memset(&c, 0, sizeof c);
    c.kh = kh, c.kw = kw;
    c.sh = sh ? sh : kh, c.sw = sw ? sw : kw;
    const hess_op_params par = with(&c);
    hess_tensor *src[1] = {x};
    return hess__apply(ctx, def, src, &par, fn);
}

hess_tensor *hess_avg_pool2d(hess_context *ctx, hess_tensor *x, int kh, int kw, int sh, int sw)
{
    return pool_impl(ctx, &op_avg_pool2d, x, kh, kw, sh, sw, "hess_avg_pool2d");
}

hess_tensor *hess_max_pool2d(hess_context *ctx, hess_tensor *x, int kh, int kw, int sh, int sw)
{
    return pool_impl(ctx, &op_max_pool2d, x, kh, kw, sh, sw, "hess_max_pool2d");
}

static const hess_op_def *const conv_ops[] = {
    &op_conv2d,        &op_conv2d_bias,       &op_conv2d_input,
    &op_conv2d_weight, &op_avg_pool2d,        &op_avg_pool2d_adjoint,
    &op_max_pool2d,    &op_max_pool2d_select, &op_max_unpool2d};
const hess__op_family hess__conv_family = {conv_ops, sizeof conv_ops / sizeof conv_ops[0]};
