/*
 * npy.c -- NumPy .npy files: format 1.0 to 3.0, dtype '<f8', C order.  Values
 * move as bits, little-endian whatever the host.
 */
#include "io.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Little helpers: byte order, numbers in the "C" notation, NaN spellings   */
/* ------------------------------------------------------------------------ */

/* .npy data is little-endian whatever the host: bytes are assembled by
 * shifts.  Values move as bits (memcpy), never through a floating-point
 * register, where an x87 FPU would quiet a signalling NaN. */
static void get_f64le(const unsigned char *b, double *d)
{
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = u << 8 | b[i];
    memcpy(d, &u, sizeof u);
}

static void put_f64le(unsigned char *b, const double *d)
{
    uint64_t u;
    memcpy(&u, d, sizeof u);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(u >> (8 * i));
}

/* ------------------------------------------------------------------------ */
/* .npy: writing                                                            */
/* ------------------------------------------------------------------------ */

#define NPY_MAGIC_LEN 6
static const unsigned char npy_magic[NPY_MAGIC_LEN] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
/* Largest header accepted on reading (NumPy writes about 128 bytes for '<f8'). */
#define NPY_MAX_HEADER 65536u
#define NPY_ALIGN      64u

/* The preamble and header NumPy writes for a C-order '<f8' array of this shape:
 * magic, version 1.0, header length (uint16 LE), then the dict as Python's repr
 * prints it, padded with spaces and ended by '\n' so that the data starts at a
 * multiple of 64 bytes.  Returns the total length (<= 320). */
static size_t npy_header(unsigned char buf[320], int ndim, const int64_t *shape)
{
    char dict[256];
    int len = snprintf(dict, sizeof dict, "{'descr': '<f8', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < ndim; i++)
        len += snprintf(dict + len, sizeof dict - (size_t)len, i ? ", %lld" : "%lld",
                        (long long)shape[i]);
    len += snprintf(dict + len, sizeof dict - (size_t)len, ndim == 1 ? ",), }" : "), }");
    const size_t pre = NPY_MAGIC_LEN + 2 + 2;
    size_t total = pre + (size_t)len + 1; /* + '\n' */
    total = (total + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    const size_t hlen = total - pre;
    memcpy(buf, npy_magic, NPY_MAGIC_LEN);
    buf[6] = 1; /* version 1.0 */
    buf[7] = 0;
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    memcpy(buf + pre, dict, (size_t)len);
    memset(buf + pre + len, ' ', total - pre - (size_t)len - 1);
    buf[total - 1] = '\n';
    return total;
}

/* Checks rank and shape of an array to be written; HESS_ERR_ARG recorded. */
static hess_status
check_array(hess_context *ctx, int ndim, const int64_t *shape, const double *data, const char *fn)
{
    if (ndim < 0 || ndim > HESS_MAX_DIMS || (ndim > 0 && !shape) || !data) {
        hess__error(ctx, HESS_ERR_ARG, "%s: %s", fn,
                    !data ? "NULL data" : "rank outside 0..HESS_MAX_DIMS or NULL shape");
        return HESS_ERR_ARG;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1 || shape[i] > INT64_MAX / 8 / n) {
            hess__error(ctx, HESS_ERR_ARG, "%s: dimension %d is %lld (must be >= 1, no overflow)",
                        fn, i, (long long)shape[i]);
            return HESS_ERR_ARG;
        }
        n *= shape[i];
    }
    return HESS_OK;
}

/* What put_npy writes. */
typedef struct npy_array {
    int ndim;
    const int64_t *shape;
    const double *data;
} npy_array;

/* The whole .npy file of a (an npy_array): header, then the data. */
static bool put_npy(FILE *f, const void *arg)
{
    const npy_array *a = arg;
    unsigned char head[320];
    const size_t hl = npy_header(head, a->ndim, a->shape);
    bool ok = fwrite(head, 1, hl, f) == hl;
    const size_t numel = (size_t)hess__numel(a->ndim, a->shape);
    unsigned char chunk[4096];
    for (size_t i = 0; ok && i < numel;) {
        size_t k = 0;
        for (; k < sizeof chunk / 8 && i < numel; k++, i++)
            put_f64le(chunk + 8 * k, &a->data[i]);
        ok = fwrite(chunk, 8, k, f) == k;
    }
    return ok;
}

static hess_status write_npy(hess_context *ctx,
                             const char *path,
                             int ndim,
                             const int64_t *shape,
                             const double *data,
                             const char *fn)
{
    const npy_array a = {ndim, shape, data};
    return hess__save_atomic(ctx, path, fn, put_npy, &a);
}

/* What every save function checks first: a context, no pending error (then it
 * does nothing and returns that status), a path. */

hess_status hess_save_npy(hess_context *ctx, const char *path, const hess_tensor *t)
{
    static const char fn[] = "hess_save_npy";
    hess_status st = hess__save_begin(ctx, path, fn);
    if (st != HESS_OK || (st = hess__check(ctx, t, fn)) != HESS_OK)
        return st;
    /* brought up to date first: the tape's own pointer to it, not a cast */
    if ((st = hess__refresh(ctx, 1, &ctx->nodes[t->id], fn)) != HESS_OK)
        return st;
    return write_npy(ctx, path, t->ndim, t->shape, t->data, fn);
}

hess_status hess_save_npy_array(
    hess_context *ctx, const char *path, int ndim, const int64_t *shape, const double *data)
{
    static const char fn[] = "hess_save_npy_array";
    hess_status st = hess__save_begin(ctx, path, fn);
    if (st != HESS_OK || (st = check_array(ctx, ndim, shape, data, fn)) != HESS_OK)
        return st;
    return write_npy(ctx, path, ndim, shape, data, fn);
}

/* ------------------------------------------------------------------------ */
/* .npy: reading                                                            */
/* ------------------------------------------------------------------------ */

/* What a header says, and where its parts are. */
typedef struct npy_info {
    int ndim;
    int64_t shape[HESS_MAX_DIMS];
    size_t dict_off; /* the header dict: after magic, version and length */
    size_t data_off; /* the data: after the dict */
} npy_info;

/* The preamble: magic, version (exactly 1.0, 2.0 or 3.0), header length. */
static bool npy_preamble(hess__src *r, npy_info *info, hess__fault *p)
{
    unsigned char b[12];
    const size_t got = hess__src_read(r, b, 8);
    if (got < NPY_MAGIC_LEN || memcmp(b, npy_magic, NPY_MAGIC_LEN) != 0)
        return hess__fault_at(p, 0, 0, "bad magic (not a .npy file)");
    if (got < 8)
        return hess__fault_at(p, got, 0, "truncated preamble");
    if (b[6] < 1 || b[6] > 3 || b[7] != 0)
        return hess__fault_at(
            p, 6, 0, "unsupported format version %u.%u (1.0, 2.0 and 3.0 are read)", b[6], b[7]);
    const size_t lenbytes = b[6] == 1 ? 2 : 4;
    if (hess__src_read(r, b + 8, lenbytes) != lenbytes)
        return hess__fault_at(p, r->pos, 0, "truncated preamble");
    size_t hlen = 0;
    for (size_t i = lenbytes; i-- > 0;)
        hlen = hlen << 8 | b[8 + i];
    if (hlen > NPY_MAX_HEADER)
        return hess__fault_at(p, 8, 0, "header too long (%zu bytes, at most 65536 are read)", hlen);
    info->dict_off = 8 + lenbytes;
    info->data_off = info->dict_off + hlen;
    return true;
}

/* A cursor over the header text; never reads at or past end. */
typedef struct cur {
    const char *s, *end;
} cur;

static void skip_ws(cur *c)
{
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r'))
        c->s++;
}

static bool eat(cur *c, char ch)
{
    skip_ws(c);
    if (c->s < c->end && *c->s == ch) {
        c->s++;
        return true;
    }
    return false;
}

/* A quoted Python string without escapes into out (cap bytes); false if not one. */
static bool read_str(cur *c, char *out, size_t cap)
{
    skip_ws(c);
    if (c->s >= c->end || (*c->s != '\'' && *c->s != '"'))
        return false;
    const char q = *c->s++;
    size_t n = 0;
    while (c->s < c->end && *c->s != q) {
        if (*c->s == '\\' || n + 1 >= cap)
            return false;
        out[n++] = *c->s++;
    }
    if (c->s >= c->end)
        return false;
    c->s++;
    out[n] = '\0';
    return true;
}

/* An identifier (True, False) into out; false if none. */
static bool read_word(cur *c, char *out, size_t cap)
{
    skip_ws(c);
    size_t n = 0;
    while (c->s < c->end && ((*c->s >= 'A' && *c->s <= 'Z') || (*c->s >= 'a' && *c->s <= 'z'))) {
        if (n + 1 >= cap)
            return false;
        out[n++] = *c->s++;
    }
    out[n] = '\0';
    return n > 0;
}

/* The shape tuple: "()", "(5,)", "(3, 4)"; NULL or the problem. */
static const char *read_shape(cur *c, npy_info *info)
{
    if (!eat(c, '('))
        return "'shape' is not a tuple";
    info->ndim = 0;
    for (;;) {
        if (eat(c, ')'))
            return NULL;
        skip_ws(c);
        if (c->s < c->end && *c->s == '-')
            return "negative dimension in 'shape'";
        if (c->s >= c->end || *c->s < '0' || *c->s > '9')
            return "malformed 'shape'";
        const char *dim = c->s;
        int64_t d = 0;
        while (c->s < c->end && *c->s >= '0' && *c->s <= '9') {
            if (d > (INT64_MAX - 9) / 10) {
                c->s = dim;
                return "absurd dimension in 'shape'";
            }
            d = d * 10 + (*c->s++ - '0');
        }
        if (c->s < c->end && *c->s == 'L')
            c->s++; /* Python 2 long */
        if (d == 0 || info->ndim == HESS_MAX_DIMS) {
            c->s = dim;
            return d == 0 ? "zero dimension in 'shape' (empty arrays are not supported)"
                          : "rank of 'shape' exceeds HESS_MAX_DIMS";
        }
        info->shape[info->ndim++] = d;
        if (!eat(c, ',')) {
            if (eat(c, ')'))
                return NULL;
            return "malformed 'shape'";
        }
    }
}

/* The value of a known key of the header dict (k: 0 'descr', 1
 * 'fortran_order', 2 'shape') into info.  NULL or the problem (which may be
 * written into why, cap bytes), with c->s at it. */
static const char *npy_value(cur *c, int k, npy_info *info, char *why, size_t cap)
{
    char val[32];
    skip_ws(c);
    const char *v = c->s, *e = NULL;
    if (k == 0) {
        if (!read_str(c, val, sizeof val)) {
            e = "'descr' is not a simple dtype (only '<f8' is read)";
        } else if (strcmp(val, "<f8") != 0) {
            snprintf(why, cap, "dtype '%s' is not supported (only '<f8', float64 LE)", val);
            e = why;
        }
    } else if (k == 1) {
        if (!read_word(c, val, sizeof val) ||
            (strcmp(val, "False") != 0 && strcmp(val, "True") != 0))
            e = "malformed 'fortran_order'";
        else if (strcmp(val, "True") == 0)
            e = "fortran_order is True (only C order is read)";
    } else {
        return read_shape(c, info); /* which leaves c->s at a problem */
    }
    if (e)
        c->s = v;
    return e;
}

/* The header dict s[0..len) into info.  NULL or the problem (which may be
 * written into why, cap bytes), with *at its offset in s. */
static const char *
npy_dict(const char *s, size_t len, npy_info *info, char *why, size_t cap, size_t *at)
{
    static const char *const keys[3] = {"descr", "fortran_order", "shape"};
    bool seen[3] = {false, false, false};
    cur c = {s, s + len};
    const char *e = eat(&c, '{') ? NULL : "header is not a dict";
    while (!e && !eat(&c, '}')) {
        char key[32];
        skip_ws(&c);
        const char *k0 = c.s;
        if (!read_str(&c, key, sizeof key) || !eat(&c, ':')) {
            e = "malformed header dict";
            break;
        }
        int k = 0;
        while (k < 3 && strcmp(key, keys[k]) != 0)
            k++;
        if (k == 3 || seen[k]) {
            c.s = k0;
            snprintf(why, cap, "unexpected or repeated key '%s' in header", key);
            e = why;
            break;
        }
        seen[k] = true;
        if ((e = npy_value(&c, k, info, why, cap)) != NULL)
            break;
        if (!eat(&c, ',')) {
            if (!eat(&c, '}'))
                e = "malformed header dict";
            break;
        }
    }
    if (!e) {
        skip_ws(&c);
        if (c.s != c.end)
            e = "junk after the header dict";
    }
    if (!e && (!seen[0] || !seen[1] || !seen[2])) {
        snprintf(why, cap, "header lacks '%s'", keys[!seen[0] ? 0 : !seen[1] ? 1 : 2]);
        e = why;
    }
    *at = (size_t)(c.s - s);
    return e;
}

/* Reads the header dict into arena scratch, given back before returning,
 * once its bytes are known to be there, and parses it into info. */
static bool
npy_read_dict(hess_context *ctx, hess__src *r, npy_info *info, hess__fault *p, const char *fn)
{
    const size_t hlen = info->data_off - info->dict_off;
    if (!hess__src_has(r, hlen))
        return hess__fault_at(p, info->dict_off, 0, "truncated header (its length says %zu bytes)",
                              hlen);
    const hess_mark mk = hess__mark(ctx);
    char *h = hess__alloc(ctx, hlen + 1, fn);
    bool ok = h != NULL; /* else HESS_ERR_NOMEM is recorded */
    if (ok && hess__src_read(r, h, hlen) != hlen)
        ok = hess__fault_at(p, r->pos, 0, "truncated header");
    char why[160];
    size_t at = 0;
    const char *e = ok ? npy_dict(h, hlen, info, why, sizeof why, &at) : NULL;
    if (e)
        ok = hess__fault_at(p, info->dict_off + at, 0, "%s", e);
    hess__rewind(ctx, &mk);
    return ok;
}

/* The data: the shape's count of little-endian doubles, then the end of the
 * input.  The bytes are known to be there before the tensor is allocated. */
static hess_tensor *npy_data(hess_context *ctx,
                             hess__src *r,
                             const npy_info *info,
                             int as_param,
                             hess__fault *p,
                             const char *fn)
{
    size_t numel = 1;
    bool fits = true;
    for (int i = 0; i < info->ndim && fits; i++)
        if ((fits = (uint64_t)info->shape[i] <= SIZE_MAX / 8 / numel))
            numel *= (size_t)info->shape[i];
    const size_t need = numel * 8;
    if (!fits || !hess__src_has(r, need)) {
        hess__fault_at(p, r->pos, 0, "truncated data (the shape needs %s%zu bytes, fewer follow)",
                       fits ? "" : "more than ", fits ? need : SIZE_MAX);
        return NULL;
    }
    if (hess__src_has(r, need + 1)) {
        hess__fault_at(p, r->pos + need, 0, "trailing bytes after the data (the shape needs %zu)",
                       need);
        return NULL;
    }
    hess_tensor *t = hess__leaf(ctx, info->ndim, info->shape, as_param ? HESS_T_PARAM : 0u, fn);
    unsigned char chunk[4096];
    for (size_t i = 0; t && i < numel;) {
        const size_t k = numel - i < sizeof chunk / 8 ? numel - i : sizeof chunk / 8;
        if (hess__src_read(r, chunk, 8 * k) != 8 * k) {
            hess__fault_at(p, r->pos, 0, "truncated data (the file shrank while being read)");
            return NULL;
        }
        for (size_t j = 0; j < k; j++, i++)
            get_f64le(chunk + 8 * j, &t->data[i]);
    }
    if (t && hess__src_getc(r) != EOF) {
        hess__fault_at(p, r->pos - 1, 0,
                       "trailing bytes after the data (the file grew while being read)");
        return NULL;
    }
    if (t)
        hess__leaf_scan(t);
    return t;
}

/* The common body of the file and memory readers; nothing is left in the
 * context on failure. */
static hess_tensor *
npy_load(hess_context *ctx, hess__src *r, const char *name, int as_param, const char *fn)
{
    const hess_mark mk = hess__mark(ctx);
    npy_info info;
    hess__fault p = {0, 0, "no problem"};
    hess_tensor *t = NULL;
    if (npy_preamble(r, &info, &p) && npy_read_dict(ctx, r, &info, &p, fn))
        t = npy_data(ctx, r, &info, as_param, &p, fn);
    if (!t) {
        hess__report(ctx, r, fn, name, &p);
        hess__rewind(ctx, &mk);
    }
    return t;
}

hess_tensor *
hess__npy_load_mem(hess_context *ctx, const void *buf, size_t len, const char *name, int as_param)
{
    return hess__read_mem(ctx, buf, len, name, as_param, npy_load, "hess_load_npy");
}

hess_tensor *hess_load_npy(hess_context *ctx, const char *path, int as_param)
{
    return hess__read_path(ctx, path, as_param, npy_load, "hess_load_npy");
}
