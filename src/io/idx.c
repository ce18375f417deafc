/*
 * idx.c -- IDX files (the MNIST format: LeCun's "magic 0 0 type ndim, big-
 * endian dimensions, big-endian data"), plain or gzip-compressed, read into a
 * tensor of doubles.  Compressed files are read with zlib when the library
 * is built with it (HESSIAN_HAVE_ZLIB); without it they are refused with a
 * message that says so.  Nothing here writes IDX files.
 *
 * A hostile header cannot make the reader allocate more than the data could
 * fill: a plain file's data bytes are checked to be there (hess__src_has)
 * before the tensor is allocated; a compressed file is inflated twice, first
 * only to count its bytes (with a fixed buffer, refusing as soon as the count
 * passes what the header says), then into the tensor.
 */
#include "io.h"

#include <stdlib.h>
#include <string.h>
#ifdef HESSIAN_HAVE_ZLIB
#include <zlib.h>
#endif

/* ------------------------------------------------------------------------ */
/* Element types                                                            */
/* ------------------------------------------------------------------------ */

/* An IDX element type: its code (the magic's third byte), size and name. */
typedef struct idx_type {
    unsigned char code;
    unsigned char size;
    const char *name;
} idx_type;

static const idx_type idx_types[] = {{0x08, 1, "unsigned byte"}, {0x09, 1, "signed byte"},
                                     {0x0B, 2, "short (int16)"}, {0x0C, 4, "int (int32)"},
                                     {0x0D, 4, "float"},         {0x0E, 8, "double"}};

static const idx_type *idx_type_of(unsigned char code)
{
    for (size_t i = 0; i < sizeof idx_types / sizeof idx_types[0]; i++)
        if (idx_types[i].code == code)
            return &idx_types[i];
    return NULL;
}

/* Big-endian bytes as an unsigned number of n <= 8 bytes. */
static uint64_t get_be(const unsigned char *b, size_t n)
{
    uint64_t u = 0;
    for (size_t i = 0; i < n; i++)
        u = u << 8 | b[i];
    return u;
}

/* k elements of type ty at b into y, as doubles.  Floating-point values move
 * as bits (memcpy), integers keep their values (a byte 255 gives 255.0). */
static void convert(const idx_type *ty, const unsigned char *b, size_t k, double *y)
{
    switch (ty->code) {
    case 0x08:
        for (size_t i = 0; i < k; i++)
            y[i] = b[i];
        break;
    case 0x09:
        for (size_t i = 0; i < k; i++)
            y[i] = (signed char)b[i];
        break;
    case 0x0B:
        for (size_t i = 0; i < k; i++)
            y[i] = (int16_t)(uint16_t)get_be(b + 2 * i, 2);
        break;
    case 0x0C:
        for (size_t i = 0; i < k; i++)
            y[i] = (int32_t)(uint32_t)get_be(b + 4 * i, 4);
        break;
    case 0x0D:
        for (size_t i = 0; i < k; i++) {
            const uint32_t u = (uint32_t)get_be(b + 4 * i, 4);
            float f;
            memcpy(&f, &u, sizeof f);
            y[i] = f;
        }
        break;
    default: /* 0x0E */
        for (size_t i = 0; i < k; i++) {
            const uint64_t u = get_be(b + 8 * i, 8);
            memcpy(&y[i], &u, sizeof u);
        }
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* The bytes of the IDX image: the input itself, or the input inflated      */
/* ------------------------------------------------------------------------ */

/* Where the IDX image comes from.  pos counts the image's bytes delivered
 * (for a plain file, the file's offset). */
typedef struct idx_in {
    hess__src *r;
    bool gz;     /* the input is gzip-compressed */
    bool failed; /* a compressed stream is corrupt (the fault says how) ... */
    bool nomem;  /* ... or zlib ran out of memory */
    size_t pos;  /* bytes of the image delivered so far */
    hess__fault *p;
#ifdef HESSIAN_HAVE_ZLIB
    hess_context *scratch; /* holds zlib's state */
    z_stream z;
    bool z_ready; /* inflateInit2 succeeded */
    bool z_end;   /* the last member ended and no input follows */
    int members;  /* gzip members that ended */
    unsigned char buf[16384];
#endif
} idx_in;

#ifdef HESSIAN_HAVE_ZLIB

/* The scratch context's first arena block, small: inflate's state (about
 * 7 KiB) and its 32 KiB window get a block each, about 40 KiB in all, where
 * the default first block alone would take 64 KiB. */
#define Z_FIRST_BLOCK ((size_t)1 << 10)

/* zlib's memory, from the scratch context's arena (freed all at once when the
 * scratch context is destroyed). */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
#if SIZE_MAX <= UINT32_MAX /* two uInt factors cannot overflow a 64-bit size_t */
    if (size && items > SIZE_MAX / size)
        return NULL;
#endif
    return hess__alloc(opaque, (size_t)items * size, "hess_load_idx");
}

static void z_free(voidpf opaque, voidpf address)
{
    (void)opaque, (void)address;
}

/* A context for zlib's state with the caller's allocator and what is left of
 * its byte limit: nothing of it stays in the caller's context. */
static bool z_open(hess_context *ctx, idx_in *in, const char *fn)
{
    hess_config cfg = ctx->cfg;
    cfg.block_bytes = Z_FIRST_BLOCK;
    if (cfg.max_bytes)
        cfg.max_bytes = cfg.max_bytes > ctx->bytes ? cfg.max_bytes - ctx->bytes : 1;
    if (hess_context_create(&cfg, &in->scratch) != HESS_OK) {
        hess__error(ctx, HESS_ERR_NOMEM, "%s: out of memory for the decompressor", fn);
        return false;
    }
    in->z.zalloc = z_alloc;
    in->z.zfree = z_free;
    in->z.opaque = in->scratch;
    in->z.next_in = Z_NULL;
    in->z.avail_in = 0;
    /* 15 + 16: a gzip wrapper (and its CRC-32 and length checked at the end) */
    if (inflateInit2(&in->z, 15 + 16) != Z_OK) {
        hess__error(ctx, HESS_ERR_NOMEM, "%s: out of memory for the decompressor", fn);
        return false;
    }
    in->z_ready = true;
    return true;
}

static void z_close(idx_in *in)
{
    if (in->z_ready)
        inflateEnd(&in->z);
    in->z_ready = false;
    hess_context_destroy(in->scratch);
    in->scratch = NULL;
}

/* Up to n bytes of the inflated image into out; fewer at its end, or when
 * the stream is corrupt (in->failed, with the fault set) or zlib is out of
 * memory (in->failed and in->nomem). */
static size_t z_read(idx_in *in, unsigned char *out, size_t n)
{
    size_t got = 0;
    while (got < n && !in->z_end && !in->failed) {
        if (in->z.avail_in == 0) {
            const size_t k = hess__src_read(in->r, in->buf, sizeof in->buf);
            in->z.next_in = in->buf;
            in->z.avail_in = (uInt)k;
            if (k == 0) {
                in->failed = true;
                hess__fault_at(in->p, in->r->pos, 0,
                               "truncated gzip stream (the compressed data ends early)");
                break;
            }
        }
        const size_t want = n - got < UINT32_MAX ? n - got : UINT32_MAX;
        in->z.next_out = out + got;
        in->z.avail_out = (uInt)want;
        const int zs = inflate(&in->z, Z_NO_FLUSH);
        got += want - in->z.avail_out;
        if (zs == Z_STREAM_END) {
            /* another gzip member may follow (gzip -d reads them all) */
            in->members++;
            if (in->z.avail_in == 0 && !hess__src_has(in->r, 1))
                in->z_end = true;
            else
                inflateReset(&in->z);
        } else if (zs != Z_OK && zs != Z_BUF_ERROR) {
            in->failed = true;
            const size_t at = in->r->pos - in->z.avail_in;
            if (zs == Z_MEM_ERROR) /* its window: HESS_ERR_NOMEM, as for its state */
                in->nomem = true;
            else
                hess__fault_at(in->p, at, 0, "%s (zlib: %s)",
                               in->members > 0
                                   ? "trailing bytes after the gzip stream, not a gzip member"
                                   : "corrupt gzip stream",
                               in->z.msg ? in->z.msg : "data error");
        }
    }
    in->pos += got;
    return got;
}

#endif /* HESSIAN_HAVE_ZLIB */

/* Up to n bytes of the image into out: fewer at its end or on a failure. */
static size_t in_read(idx_in *in, void *out, size_t n)
{
#ifdef HESSIAN_HAVE_ZLIB
    if (in->gz)
        return z_read(in, out, n);
#endif
    const size_t got = hess__src_read(in->r, out, n);
    in->pos += got;
    return got;
}

/* Back to the first byte of the input. */
static bool src_restart(hess__src *r)
{
    if (r->f) {
        if (fseek(r->f, 0, SEEK_SET) != 0)
            return false;
        clearerr(r->f);
    }
    r->pos = 0;
    return true;
}

/* A problem of the image at offset at; in a compressed file the offset is
 * one of the decompressed data, which the message says.  Returns false. */
HESS_PRINTF(3, 4) static bool bad(idx_in *in, size_t at, const char *fmt, ...)
{
    char why[sizeof in->p->why];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return hess__fault_at(in->p, at, 0, "%s%s", in->gz ? "(decompressed) " : "", why);
}

/* The image read a second time differs from the first pass (the file was
 * written meanwhile), at offset at; unless the stream itself failed, whose
 * fault is set already.  Returns false. */
static bool changed(idx_in *in, size_t at)
{
    if (!in->failed)
        hess__fault_at(in->p, at, 0, "the file changed while being read");
    return false;
}

/* ------------------------------------------------------------------------ */
/* The header                                                               */
/* ------------------------------------------------------------------------ */

/* What a header says. */
typedef struct idx_info {
    const idx_type *type;
    int ndim;
    int64_t shape[HESS_MAX_DIMS];
    size_t numel;
    size_t head;                                /* header bytes: 4 + 4 ndim */
    size_t need;                                /* data bytes: numel * type->size */
    unsigned char bytes[4 + 4 * HESS_MAX_DIMS]; /* the header as read */
} idx_info;

/* The magic and the dimensions. */
static bool idx_header(idx_in *in, idx_info *info)
{
    unsigned char *b = info->bytes;
    const size_t got = in_read(in, b, 4);
    if (in->failed)
        return false;
    if ((got >= 1 && b[0] != 0) || (got >= 2 && b[1] != 0))
        return bad(in, b[0] != 0 ? 0 : 1, "bad magic (an IDX file begins with two zero bytes)");
    if (got < 4)
        return bad(in, got, "truncated header (%zu of the 4 magic bytes)", got);
    if (!(info->type = idx_type_of(b[2])))
        return bad(in, 2,
                   "unknown element type 0x%02x (0x08, 0x09, 0x0B, 0x0C, 0x0D and 0x0E are read)",
                   b[2]);
    if (b[3] < 1 || b[3] > HESS_MAX_DIMS)
        return bad(in, 3, "rank %u is outside 1..%d", b[3], HESS_MAX_DIMS);
    info->ndim = b[3];
    info->head = 4 + 4 * (size_t)info->ndim;
    info->numel = 1;
    bool fits = true;
    for (int i = 0; i < info->ndim; i++) {
        unsigned char *d = b + 4 + 4 * i;
        const size_t n = in_read(in, d, 4);
        if (in->failed)
            return false;
        if (n < 4)
            return bad(in, 4 + 4 * (size_t)i + n,
                       "truncated header (%d dimensions announced, %d found)", info->ndim, i);
        const uint64_t dim = get_be(d, 4);
        if (dim == 0)
            return bad(in, 4 + 4 * (size_t)i, "dimension %d is 0 (empty arrays are not supported)",
                       i);
        info->shape[i] = (int64_t)dim;
        /* the tensor holds numel doubles: 8 numel bytes must be countable */
        if ((fits = fits && dim <= SIZE_MAX / 8 / info->numel))
            info->numel *= (size_t)dim;
    }
    if (!fits)
        return bad(in, 4, "the dimensions multiply to more elements than fit in memory");
    info->need = info->numel * info->type->size;
    return true;
}

/* ------------------------------------------------------------------------ */
/* The data                                                                 */
/* ------------------------------------------------------------------------ */

/* A plain file: the data bytes are there, and nothing after them. */
static bool plain_check(idx_in *in, const idx_info *info)
{
    char sb[96];
    hess__src *r = in->r;
    if (!hess__src_has(r, info->need))
        return bad(in, r->pos, "truncated data (the shape %s of %s needs %zu bytes, fewer follow)",
                   hess__shape_str(sb, info->ndim, info->shape), info->type->name, info->need);
    if (hess__src_has(r, info->need + 1))
        return bad(in, r->pos + info->need,
                   "trailing bytes after the data (the shape %s of %s needs %zu)",
                   hess__shape_str(sb, info->ndim, info->shape), info->type->name, info->need);
    return true;
}

#ifdef HESSIAN_HAVE_ZLIB
/* A compressed file, first pass: inflates the rest of the image into a fixed
 * buffer only to count it, stopping one byte past what the header says, and
 * to the end of the stream (whose CRC-32 and length zlib checks); then back
 * to the start and past the header again, which must be the same. */
static bool gz_check(idx_in *in, const idx_info *info)
{
    char sb[96];
    size_t count = 0;
    const size_t cap = info->need + 1;
    unsigned char chunk[16384];
    while (count < cap) {
        const size_t want = cap - count < sizeof chunk ? cap - count : sizeof chunk;
        const size_t got = in_read(in, chunk, want);
        count += got;
        if (in->failed)
            return false;
        if (got < want)
            break;
    }
    if (count < info->need)
        return bad(
            in, info->head, "truncated data (the shape %s of %s needs %zu bytes, %zu follow)",
            hess__shape_str(sb, info->ndim, info->shape), info->type->name, info->need, count);
    if (count > info->need)
        return bad(in, info->head + info->need,
                   "trailing bytes after the data (the shape %s of %s needs %zu)",
                   hess__shape_str(sb, info->ndim, info->shape), info->type->name, info->need);
    unsigned char again[sizeof info->bytes];
    in->pos = 0;
    in->z_end = false;
    in->z.next_in = Z_NULL;
    in->z.avail_in = 0;
    if (!src_restart(in->r) || inflateReset(&in->z) != Z_OK)
        return hess__fault_at(in->p, 0, 0, "cannot go back to the start of the file");
    if (in_read(in, again, info->head) != info->head || memcmp(again, info->bytes, info->head))
        return changed(in, 0);
    return true;
}
#endif

/* Reads the data (known to be there) into a new leaf, converting chunk by
 * chunk; NULL with the fault set (or HESS_ERR_NOMEM recorded). */
static hess_tensor *
idx_data(hess_context *ctx, idx_in *in, const idx_info *info, int as_param, const char *fn)
{
    hess_tensor *t = hess__leaf(ctx, info->ndim, info->shape, as_param ? HESS_T_PARAM : 0u, fn);
    unsigned char chunk[16384];
    const size_t per = sizeof chunk / info->type->size;
    for (size_t i = 0; t && i < info->numel;) {
        const size_t k = info->numel - i < per ? info->numel - i : per;
        const size_t bytes = k * info->type->size;
        if (in_read(in, chunk, bytes) != bytes) {
            changed(in, in->pos);
            return NULL;
        }
        convert(info->type, chunk, k, t->data + i);
        i += k;
    }
    /* the end, as the first pass found it (and for gzip its checks again) */
    if (t && (in->gz ? in_read(in, chunk, 1) != 0 || in->failed : hess__src_getc(in->r) != EOF)) {
        changed(in, in->pos);
        return NULL;
    }
    if (t)
        hess__leaf_scan(t);
    return t;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */
/* ------------------------------------------------------------------------ */

/* Whether the input begins with gzip's magic 1f 8b (an IDX file begins with
 * 00 00); the input is back at its start after. */
static bool is_gzip(hess__src *r, hess__fault *p, bool *ok)
{
    unsigned char m[2] = {0, 0};
    const bool gz = hess__src_read(r, m, 2) == 2 && m[0] == 0x1f && m[1] == 0x8b;
    if (!src_restart(r))
        *ok = hess__fault_at(p, 0, 0, "cannot go back to the start of the file");
    return gz;
}

/* The common body of the file and memory readers; nothing is left in the
 * context on failure. */
static hess_tensor *
idx_load(hess_context *ctx, hess__src *r, const char *name, int as_param, const char *fn)
{
    const hess_mark mk = hess__mark(ctx);
    hess__fault p = {0, 0, "no problem"};
    idx_in in;
    memset(&in, 0, sizeof in);
    in.r = r;
    in.p = &p;
    bool ok = true;
    in.gz = is_gzip(r, &p, &ok);
#ifdef HESSIAN_HAVE_ZLIB
    ok = ok && (!in.gz || z_open(ctx, &in, fn));
#else
    if (ok && in.gz)
        ok = hess__fault_at(&p, 0, 0,
                            "gzip-compressed, and this libhessian was built without zlib "
                            "(HESSIAN_ZLIB=off or zlib not found): decompress it first (gunzip)");
#endif
    hess_tensor *t = NULL;
    idx_info info;
    if (ok && idx_header(&in, &info)) {
#ifdef HESSIAN_HAVE_ZLIB
        ok = in.gz ? gz_check(&in, &info) : plain_check(&in, &info);
#else
        ok = plain_check(&in, &info);
#endif
        if (ok)
            t = idx_data(ctx, &in, &info, as_param, fn);
    }
#ifdef HESSIAN_HAVE_ZLIB
    z_close(&in);
#endif
    if (!t) {
        if (in.nomem)
            hess__error(ctx, HESS_ERR_NOMEM, "%s: out of memory for the decompressor", fn);
        else
            hess__report(ctx, r, fn, name, &p);
        hess__rewind(ctx, &mk);
    }
    return t;
}

hess_tensor *
hess__idx_load_mem(hess_context *ctx, const void *buf, size_t len, const char *name, int as_param)
{
    return hess__read_mem(ctx, buf, len, name, as_param, idx_load, "hess_load_idx");
}

hess_tensor *hess_load_idx(hess_context *ctx, const char *path, int as_param)
{
    return hess__read_path(ctx, path, as_param, idx_load, "hess_load_idx");
}
