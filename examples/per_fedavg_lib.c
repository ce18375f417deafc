/*
 * per_fedavg_lib.c -- the parts of examples/per_fedavg.c another federated
 * program would reuse (per_fedavg_lib.h says what each does): keyed random
 * streams, image sets, the non-IID split, one client's graph and the local
 * steps (its chart is the library's hess_write_svg_lines).  Only
 * include/hessian.h is used.
 */
#include "per_fedavg_lib.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Keyed random numbers                                                     */
/* ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

pf_rng pf_rng_key(uint64_t seed, uint64_t a, uint64_t b, int purpose)
{
    /* the key's parts mixed one after the other, so that (1, 2) and (2, 1)
     * give different streams */
    uint64_t x = seed;
    uint64_t h = splitmix64(&x);
    x = h ^ a;
    h = splitmix64(&x);
    x = h ^ b;
    h = splitmix64(&x);
    x = h ^ (uint64_t)purpose;
    pf_rng r;
    for (int i = 0; i < 4; i++)
        r.s[i] = splitmix64(&x);
    return r;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t pf_rng_next(pf_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double pf_rng_uniform(pf_rng *r)
{
    return (double)(pf_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t pf_rng_below(pf_rng *r, uint64_t n)
{
    /* rejection of the top partial copy of 0..n-1 */
    const uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do
        v = pf_rng_next(r);
    while (v >= lim);
    return v % n;
}

void pf_rng_sample(pf_rng *r, size_t n, size_t k, size_t *out)
{
    /* Floyd: for j = n-k .. n-1, take t uniform in 0..j, or j if t is taken */
    size_t m = 0;
    for (size_t j = n - k; j < n; j++) {
        size_t t = (size_t)pf_rng_below(r, (uint64_t)j + 1);
        for (size_t q = 0; q < m; q++)
            if (out[q] == t) {
                t = j;
                break;
            }
        out[m++] = t;
    }
}

/* ------------------------------------------------------------------------ */
/* Labelled images                                                          */
/* ------------------------------------------------------------------------ */

static void say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The values of t as bytes 0..max into *out (malloc'ed); -1 with err set. */
static int to_bytes(const hess_tensor *t,
                    const char *path,
                    double max,
                    unsigned char **out,
                    char *err,
                    size_t errlen)
{
    const size_t n = (size_t)hess_tensor_numel(t);
    const double *v = hess_tensor_data(t);
    unsigned char *b = malloc(n);
    if (!b) {
        say(err, errlen, "%s: out of memory (%zu bytes)", path, n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(v[i] >= 0 && v[i] <= max && v[i] == floor(v[i]))) {
            say(err, errlen, "%s: element %zu is %g, not an integer in 0..%g", path, i, v[i], max);
            free(b);
            return -1;
        }
        b[i] = (unsigned char)v[i];
    }
    *out = b;
    return 0;
}

/* Reads one IDX file in a context of its own into bytes; its shape into
 * shape[0..*ndim).  -1 with err set (the library's one-line message). */
static int load_bytes(const char *path,
                      double max,
                      int *ndim,
                      int64_t shape[HESS_MAX_DIMS],
                      unsigned char **out,
                      char *err,
                      size_t errlen)
{
    hess_context *ctx = NULL;
    if (hess_context_create(NULL, &ctx) != HESS_OK) {
        say(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rc = -1;
    hess_tensor *t = hess_load_idx(ctx, path, 0);
    if (!t) {
        say(err, errlen, "%s", hess_context_errmsg(ctx));
    } else {
        *ndim = hess_tensor_ndim(t);
        memcpy(shape, hess_tensor_shape(t), (size_t)*ndim * sizeof *shape);
        rc = to_bytes(t, path, max, out, err, errlen);
    }
    hess_context_destroy(ctx);
    return rc;
}

int pf_images_load(
    const char *images, const char *labels, int classes, pf_images *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int nd_x = 0, nd_y = 0;
    int64_t sx[HESS_MAX_DIMS], sy[HESS_MAX_DIMS];
    if (load_bytes(images, 255, &nd_x, sx, &out->x, err, errlen) != 0)
        return -1;
    if (nd_x != 2 && nd_x != 3) {
        say(err, errlen, "%s: rank %d, expected images [n, rows, cols] or [n, features]", images,
            nd_x);
        pf_images_free(out);
        return -1;
    }
    out->n = (size_t)sx[0];
    out->d = (size_t)(sx[1] * (nd_x == 3 ? sx[2] : 1));
    if (load_bytes(labels, classes - 1, &nd_y, sy, &out->y, err, errlen) != 0) {
        pf_images_free(out);
        return -1;
    }
    if (nd_y != 1 || (size_t)sy[0] != out->n) {
        say(err, errlen, "%s: %s labels, expected [%zu] (one per image of %s)", labels,
            nd_y != 1 ? "not a vector of" : "another number of", out->n, images);
        pf_images_free(out);
        return -1;
    }
    out->classes = classes;
    return 0;
}

int pf_images_synthetic(
    size_t per_class, size_t d, int classes, uint64_t seed, int part, pf_images *out)
{
    memset(out, 0, sizeof *out);
    out->n = per_class * (size_t)classes;
    out->d = d;
    out->classes = classes;
    out->x = malloc(out->n * d);
    out->y = malloc(out->n);
    unsigned char *proto = malloc(d);
    if (!out->x || !out->y || !proto) {
        free(proto);
        pf_images_free(out);
        return -1;
    }
    for (int c = 0; c < classes; c++) {
        /* the class's prototype: the same in every part */
        pf_rng pr = pf_rng_key(seed, (uint64_t)c, 0, PF_STREAM_DATA);
        for (size_t j = 0; j < d; j++)
            proto[j] = (unsigned char)pf_rng_below(&pr, 256);
        /* its samples, interleaved with the other classes' */
        pf_rng sr = pf_rng_key(seed, (uint64_t)c, 1 + (uint64_t)part, PF_STREAM_DATA);
        for (size_t s = 0; s < per_class; s++) {
            const size_t i = s * (size_t)classes + (size_t)c;
            for (size_t j = 0; j < d; j++) {
                const double v = proto[j] + 200.0 * (pf_rng_uniform(&sr) - 0.5);
                out->x[i * d + j] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
            out->y[i] = (unsigned char)c;
        }
    }
    free(proto);
    return 0;
}

void pf_images_free(pf_images *s)
{
    free(s->x);
    free(s->y);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------------ */
/* Clients: a non-IID split                                                 */
/* ------------------------------------------------------------------------ */

/* The samples of class c of set s, shuffled by rng: a malloc'ed array. */
static size_t *class_samples(const pf_images *s, int c, pf_rng *rng, size_t *count)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += s->y[i] == c;
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    if (!idx)
        return NULL;
    n = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->y[i] == c)
            idx[n++] = i;
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
        const size_t j = (size_t)pf_rng_below(rng, i);
        const size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
    *count = n;
    return idx;
}

/* Deals the samples of every class of set s to its holders; part 0 fills
 * the clients' training lists, part 1 their test lists. */
static int
deal(const pf_images *s, int part, pf_share *sh, int n, int k, const int *perm, uint64_t seed)
{
    const int C = s->classes;
    /* first the counts, then the lists */
    size_t *fill = calloc((size_t)n, sizeof *fill);
    if (!fill)
        return -1;
    int rc = 0;
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (int c = 0; c < C && rc == 0; c++) {
            int holders = 0;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < k; j++)
                    holders += perm[(i * k + j) % C] == c;
            if (holders == 0)
                continue;
            pf_rng rng = pf_rng_key(seed, (uint64_t)c, (uint64_t)part, PF_STREAM_SPLIT);
            size_t m = 0;
            size_t *idx = class_samples(s, c, &rng, &m);
            if (!idx) {
                rc = -1;
                break;
            }
            int q = 0;
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < k; j++) {
                    if (perm[(i * k + j) % C] != c)
                        continue;
                    const size_t lo = m * (size_t)q / (size_t)holders;
                    const size_t hi = m * (size_t)(q + 1) / (size_t)holders;
                    q++;
                    if (pass == 0) {
                        *(part ? &sh[i].n_test : &sh[i].n_train) += hi - lo;
                    } else {
                        size_t *list = part ? sh[i].test : sh[i].train;
                        memcpy(list + fill[i], idx + lo, (hi - lo) * sizeof *idx);
                        fill[i] += hi - lo;
                    }
                }
            }
            free(idx);
        }
        if (pass == 0)
            for (int i = 0; i < n && rc == 0; i++) {
                const size_t cnt = part ? sh[i].n_test : sh[i].n_train;
                size_t *list = malloc((cnt ? cnt : 1) * sizeof *list);
                if (!list)
                    rc = -1;
                *(part ? &sh[i].test : &sh[i].train) = list;
            }
    }
    free(fill);
    return rc;
}

pf_share *pf_split(const pf_images *train, const pf_images *test, int n, int k, uint64_t seed)
{
    const int C = train->classes;
    if (n < 1 || k < 1 || k > C || k > 16 || C > 256)
        return NULL;
    pf_share *sh = calloc((size_t)n, sizeof *sh);
    if (!sh)
        return NULL;
    int perm[256];
    for (int c = 0; c < C; c++)
        perm[c] = c;
    pf_rng rng = pf_rng_key(seed, 0, 0, PF_STREAM_SPLIT);
    for (int i = C; i > 1; i--) {
        const int j = (int)pf_rng_below(&rng, (uint64_t)i);
        const int t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < n; i++) {
        sh[i].n_classes = k;
        for (int j = 0; j < k; j++)
            sh[i].classes[j] = perm[(i * k + j) % C];
    }
    if (deal(train, 0, sh, n, k, perm, seed) != 0 || deal(test, 1, sh, n, k, perm, seed) != 0) {
        pf_shares_free(sh, n);
        return NULL;
    }
    return sh;
}

void pf_shares_free(pf_share *s, int n)
{
    if (!s)
        return;
    for (int i = 0; i < n; i++) {
        free(s[i].train);
        free(s[i].test);
    }
    free(s);
}

/* ------------------------------------------------------------------------ */
/* The model                                                                */
/* ------------------------------------------------------------------------ */

/* The parameters' shapes: W1, b1, W2, b2, W3, b3. */
static void param_shapes(const pf_arch *a, int ndim[6], int64_t shape[6][2])
{
    const int64_t fan_out[3] = {a->h1, a->h2, a->out}, fan_in[3] = {a->in, a->h1, a->h2};
    for (int l = 0; l < 3; l++) {
        ndim[2 * l] = 2;
        shape[2 * l][0] = fan_out[l];
        shape[2 * l][1] = fan_in[l];
        ndim[2 * l + 1] = 1;
        shape[2 * l + 1][0] = fan_out[l];
    }
}

size_t pf_param_count(const pf_arch *a)
{
    return (size_t)a->h1 * (size_t)(a->in + 1) + (size_t)a->h2 * (size_t)(a->h1 + 1) +
           (size_t)a->out * (size_t)(a->h2 + 1);
}

void pf_init_params(const pf_arch *a, uint64_t seed, double *w)
{
    pf_rng r = pf_rng_key(seed, 0, 0, PF_STREAM_INIT);
    const int fan_in[3] = {a->in, a->h1, a->h2}, fan_out[3] = {a->h1, a->h2, a->out};
    for (int l = 0; l < 3; l++) {
        const double bound = 1.0 / sqrt((double)fan_in[l]);
        const size_t n = (size_t)fan_out[l] * (size_t)(fan_in[l] + 1); /* W, then b */
        for (size_t i = 0; i < n; i++)
            *w++ = bound * (2.0 * pf_rng_uniform(&r) - 1.0);
    }
}

/* logits = W3 elu(W2 elu(W1 x + b1) + b2) + b3, rows of x being samples. */
static hess_tensor *mlp(hess_context *ctx, hess_tensor *const p[6], hess_tensor *x, double alpha)
{
    hess_tensor *h = hess_elu(ctx, hess_linear(ctx, x, p[0], p[1]), alpha);
    h = hess_elu(ctx, hess_linear(ctx, h, p[2], p[3]), alpha);
    return hess_linear(ctx, h, p[4], p[5]);
}

/* ------------------------------------------------------------------------ */
/* One client's graph                                                       */
/* ------------------------------------------------------------------------ */

struct pf_worker {
    pf_arch arch;
    int batch;
    size_t N;
    hess_context *ctx;
    hess_tensor *p[6];        /* W1 b1 W2 b2 W3 b3 */
    hess_tensor *x, *y;       /* the minibatch: [B, in] and [B] */
    hess_tensor *loss, *g[6]; /* its loss and gradient */
    hess_tensor *logits_test; /* [n_test, out] of the client's test samples */
    const pf_images *train;
    const pf_share *share;
    size_t n_test;
    /* one malloc'ed block: */
    double *bx, *by;               /* the minibatch's values */
    double *g1, *g2, *h, *wt, *wp; /* N each: the steps' vectors */
    double *lt;                    /* n_test x out */
    unsigned char *labels_test;    /* n_test */
    double scale[256];             /* v / 255.0 for a byte v */
    char err[400];
};

hess_context *pf_worker_context(pf_worker *w)
{
    return w->ctx;
}

const char *pf_worker_error(const pf_worker *w)
{
    return w->err;
}

/* Records the context's message (or what) as the worker's error; -1. */
static int fail(pf_worker *wk, const char *what)
{
    const char *m = hess_context_errmsg(wk->ctx);
    snprintf(wk->err, sizeof wk->err, "%s%s%s", what, m[0] ? ": " : "", m);
    return -1;
}

/* The test samples, scaled to [0, 1], as a constant [n_test, in]; their
 * labels into labels_test. */
static hess_tensor *test_inputs(pf_worker *wk, const pf_images *test, const pf_share *share)
{
    const size_t d = test->d, n = share->n_test;
    double *buf = malloc(n * d * sizeof *buf);
    if (!buf)
        return NULL;
    for (size_t r = 0; r < n; r++) {
        const size_t s = share->test[r];
        for (size_t j = 0; j < d; j++)
            buf[r * d + j] = wk->scale[test->x[s * d + j]];
        wk->labels_test[r] = test->y[s];
    }
    const int64_t shape[2] = {(int64_t)n, (int64_t)d};
    hess_tensor *t = hess_tensor_new(wk->ctx, 2, shape, buf);
    free(buf);
    return t;
}

/* The scratch block: minibatch buffers, step vectors, test logits, labels. */
static int worker_buffers(pf_worker *wk)
{
    const size_t B = (size_t)wk->batch, N = wk->N;
    const size_t nd = B * (size_t)wk->arch.in + B + 5 * N + wk->n_test * (size_t)wk->arch.out;
    double *d = malloc(nd * sizeof *d + wk->n_test);
    if (!d)
        return -1;
    wk->bx = d;
    wk->by = wk->bx + B * (size_t)wk->arch.in;
    wk->g1 = wk->by + B;
    wk->g2 = wk->g1 + N;
    wk->h = wk->g2 + N;
    wk->wt = wk->h + N;
    wk->wp = wk->wt + N;
    wk->lt = wk->wp + N;
    wk->labels_test = (unsigned char *)(d + nd);
    return 0;
}

pf_worker *pf_worker_new(const pf_arch *a,
                         int batch,
                         const pf_images *train,
                         const pf_images *test,
                         const pf_share *share,
                         const hess_config *cfg,
                         char *err,
                         size_t errlen)
{
    if (batch < 1 || share->n_train < (size_t)batch || share->n_test < 1 ||
        train->d != (size_t)a->in || test->d != (size_t)a->in) {
        say(err, errlen,
            "a client needs at least a batch (%d) of training samples and one test sample, "
            "of %d features (it has %zu and %zu, of %zu)",
            batch, a->in, share->n_train, share->n_test, train->d);
        return NULL;
    }
    pf_worker *wk = calloc(1, sizeof *wk);
    if (!wk) {
        say(err, errlen, "out of memory");
        return NULL;
    }
    wk->arch = *a;
    wk->batch = batch;
    wk->N = pf_param_count(a);
    wk->train = train;
    wk->share = share;
    wk->n_test = share->n_test;
    for (int v = 0; v < 256; v++) /* exactly v / 255.0, without a division per pixel */
        wk->scale[v] = v / 255.0;
    if (worker_buffers(wk) != 0 || hess_context_create(cfg, &wk->ctx) != HESS_OK) {
        say(err, errlen, "out of memory");
        pf_worker_free(wk);
        return NULL;
    }
    hess_context *ctx = wk->ctx;
    int nd[6];
    int64_t shape[6][2];
    param_shapes(a, nd, shape);
    for (int i = 0; i < 6; i++)
        wk->p[i] = hess_param_new(ctx, nd[i], shape[i], NULL);
    const int64_t xs[2] = {batch, a->in};
    wk->x = hess_tensor_new(ctx, 2, xs, NULL);
    wk->y = hess_tensor_new(ctx, 1, xs, NULL); /* zeros: class 0 */
    wk->loss = hess_cross_entropy(ctx, mlp(ctx, wk->p, wk->x, a->elu_alpha), wk->y);
    /* the gradient, built once: brought up to date by whatever reads it */
    if (wk->loss)
        hess_grad(ctx, wk->loss, 6, wk->p, wk->g, 0);
    hess_tensor *xt = test_inputs(wk, test, share);
    wk->logits_test = mlp(ctx, wk->p, xt, a->elu_alpha);
    if (hess_context_status(ctx) != HESS_OK) {
        fail(wk, "building a client's graph");
        say(err, errlen, "%s", wk->err);
        pf_worker_free(wk);
        return NULL;
    }
    return wk;
}

void pf_worker_free(pf_worker *w)
{
    if (!w)
        return;
    hess_context_destroy(w->ctx);
    free(w->bx);
    free(w);
}

/* Parameters w and the minibatch into the graph's leaves. */
static int set_point(pf_worker *wk, const double *w, const size_t *batch)
{
    hess_context *ctx = wk->ctx;
    const size_t d = wk->train->d;
    for (int r = 0; r < wk->batch; r++) {
        const size_t s = wk->share->train[batch[r]];
        const unsigned char *px = wk->train->x + s * d;
        double *row = wk->bx + (size_t)r * d;
        for (size_t j = 0; j < d; j++)
            row[j] = wk->scale[px[j]];
        wk->by[r] = wk->train->y[s];
    }
    if (hess_params_set(ctx, 6, wk->p, w) != HESS_OK ||
        hess_tensor_set(ctx, wk->x, wk->bx) != HESS_OK ||
        hess_tensor_set(ctx, wk->y, wk->by) != HESS_OK)
        return fail(wk, "setting parameters and minibatch");
    return 0;
}

int pf_grad(pf_worker *wk, const double *w, const size_t *batch, double *g, double *loss)
{
    if (set_point(wk, w, batch) != 0)
        return -1;
    if ((g && hess_params_get(6, wk->g, g) != HESS_OK) ||
        (loss && hess_params_get(1, &wk->loss, loss) != HESS_OK))
        return fail(wk, "gradient");
    return 0;
}

int pf_hvp(pf_worker *wk, const double *w, const size_t *batch, const double *v, double *hv)
{
    if (set_point(wk, w, batch) != 0)
        return -1;
    if (hess_hvp(wk->ctx, wk->loss, 6, wk->p, v, hv) != HESS_OK)
        return fail(wk, "Hessian-vector product");
    return 0;
}

static const char *const algo_names[] = {"fedavg", "fo", "hf", "hvp"};

const char *pf_algo_name(pf_algo a)
{
    return a >= PF_FEDAVG && a <= PF_HVP ? algo_names[a] : "?";
}

int pf_algo_parse(const char *s)
{
    for (int a = 0; a < 4; a++)
        if (strcmp(s, algo_names[a]) == 0)
            return a;
    return -1;
}

int pf_local_step(pf_worker *wk,
                  pf_algo algo,
                  const pf_hyper *hp,
                  double *w,
                  const size_t *D,
                  const size_t *D1,
                  const size_t *D2,
                  double *loss)
{
    const size_t N = wk->N;
    double *g1 = wk->g1, *g2 = wk->g2, *h = wk->h, *wt = wk->wt, *wp = wk->wp;
    if (pf_grad(wk, w, D, g1, loss) != 0)
        return -1;
    if (algo == PF_FEDAVG) {
        for (size_t i = 0; i < N; i++)
            w[i] -= hp->beta * g1[i];
        return 0;
    }
    /* the personalised point and the gradient there, on D' */
    for (size_t i = 0; i < N; i++)
        wt[i] = w[i] - hp->alpha * g1[i];
    if (pf_grad(wk, wt, D1, g2, NULL) != 0)
        return -1;
    if (algo == PF_FO) {
        for (size_t i = 0; i < N; i++)
            w[i] -= hp->beta * g2[i];
        return 0;
    }
    /* h ~ H(w, D'') g */
    if (algo == PF_HVP) {
        if (pf_hvp(wk, w, D2, g2, h) != 0)
            return -1;
    } else {
        for (size_t i = 0; i < N; i++)
            wp[i] = w[i] + hp->delta * g2[i];
        if (pf_grad(wk, wp, D2, h, NULL) != 0)
            return -1;
        for (size_t i = 0; i < N; i++)
            wp[i] = w[i] - hp->delta * g2[i];
        if (pf_grad(wk, wp, D2, g1, NULL) != 0) /* g1 is free again */
            return -1;
        for (size_t i = 0; i < N; i++)
            h[i] = (h[i] - g1[i]) / (2.0 * hp->delta);
    }
    for (size_t i = 0; i < N; i++)
        w[i] -= hp->beta * (g2[i] - hp->alpha * h[i]);
    return 0;
}

int pf_personal_accuracy(
    pf_worker *wk, const double *w, double alpha, const size_t *batch, double *accuracy)
{
    const size_t N = wk->N;
    if (pf_grad(wk, w, batch, wk->g1, NULL) != 0)
        return -1;
    for (size_t i = 0; i < N; i++)
        wk->wp[i] = w[i] - alpha * wk->g1[i];
    /* only the test logits are brought up to date, not the training graph */
    if (hess_params_set(wk->ctx, 6, wk->p, wk->wp) != HESS_OK ||
        hess_params_get(1, &wk->logits_test, wk->lt) != HESS_OK)
        return fail(wk, "personalised accuracy");
    const int C = wk->arch.out;
    size_t right = 0;
    for (size_t r = 0; r < wk->n_test; r++) {
        const double *row = wk->lt + r * (size_t)C;
        int best = 0;
        for (int c = 1; c < C; c++)
            if (row[c] > row[best])
                best = c;
        right += best == wk->labels_test[r];
    }
    *accuracy = (double)right / (double)wk->n_test;
    return 0;
}
