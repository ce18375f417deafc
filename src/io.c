/*
 * io.c -- interchange files: NumPy .npy (format 1.0 to 3.0, dtype '<f8', C
 * order) and the plain-text reference format of tests/data/README.md, and
 * the atomic save that every writer (these and svg.c's picture) goes through.
 *
 * Every reader parses from a file or, for the fuzzers, from a memory buffer
 * through the same code; it never reads past the bytes it has, and it checks
 * every size against the bytes actually present before it allocates, so a
 * hostile header cannot make it allocate more than the file could fill.
 * Numbers are written and read in the "C" notation whatever the locale.
 * Pictures (SVG) are in svg.c.
 */
#if !defined(_WIN32) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700 /* POSIX.1-2008 with XSI: open, fsync, fchmod, realpath, lstat */
#endif
#include "hess_internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#endif

_Static_assert(sizeof(double) == 8, "the file formats store IEEE 754 binary64");

/* Entry points for the fuzzers (tests/fuzz): parse a whole file image held
 * in memory; `name` stands for the path in messages.  Same results and
 * statuses as hess_load_npy() and hess_load_ref(). */
HESS_INTERNAL hess_tensor *
hess__npy_load_mem(hess_context *ctx, const void *buf, size_t len, const char *name, int as_param);
HESS_INTERNAL hess_status hess__ref_load_mem(hess_context *ctx,
                                             const void *buf,
                                             size_t len,
                                             const char *name,
                                             const char *param_prefix,
                                             hess_ref_file *out);

/* Writes a whole file through write(f, arg), which returns false when it
 * fails (a stream error counts too), and puts it in place of path only once
 * complete: see "Atomic saves" below.  Every save function goes through it,
 * those here and svg.c's, which declares it as well. */
HESS_INTERNAL hess_status hess__save_atomic(hess_context *ctx,
                                            const char *path,
                                            const char *fn,
                                            bool (*write)(FILE *f, const void *arg),
                                            const void *arg);

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

/* The decimal point of the current C locale, as printf writes it ("." or e.g. ","). */
static void locale_point(char pt[8])
{
    char b[32];
    snprintf(b, sizeof b, "%.1f", 0.5); /* "0<point>5" */
    size_t n = strlen(b);
    n = n >= 3 && n - 2 < 8 ? n - 2 : 1;
    memcpy(pt, b + 1, n);
    pt[n] = '\0';
}

#define F64_SIGN UINT64_C(0x8000000000000000)
#define F64_EXP  UINT64_C(0x7ff0000000000000) /* all ones: an infinity, or a NaN */
#define F64_QNAN UINT64_C(0x7ff8000000000000) /* the quiet NaN with an empty payload */

/* A NaN in the reference format: "nan" or "-nan" for the quiet NaN with an
 * empty payload (0.0 / 0.0 gives "-nan" on x86, "nan" on ARM), any other as
 * "nan:0x" and the 16 hex digits of its bits, sign included.  "%.17g" would
 * print every NaN as "nan" or "-nan" and lose the payload. */
static void fmt_nan(char *buf, size_t cap, uint64_t u)
{
    if ((u & ~F64_SIGN) == F64_QNAN)
        snprintf(buf, cap, "%snan", u & F64_SIGN ? "-" : "");
    else
        snprintf(buf, cap, "nan:0x%016llx", (unsigned long long)u);
}

/* The bits of a NaN spelled as fmt_nan spells it; false for any other token,
 * and for "nan:0x" digits that are no NaN. */
static bool parse_nan(const char *tok, uint64_t *u)
{
    if (strcmp(tok, "nan") == 0 || strcmp(tok, "-nan") == 0) {
        *u = F64_QNAN | (tok[0] == '-' ? F64_SIGN : 0);
        return true;
    }
    if (strncmp(tok, "nan:0x", 6) != 0 || strlen(tok) != 6 + 16)
        return false;
    uint64_t v = 0;
    for (const char *s = tok + 6; *s; s++) {
        const char c = *s;
        const int d = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                             : -1;
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    if ((v & F64_EXP) != F64_EXP || (v & ~(F64_SIGN | F64_EXP)) == 0)
        return false;
    *u = v;
    return true;
}

/* *x as the reference format writes it: a NaN as fmt_nan spells it, "inf"
 * and "-inf", any other number with 17 significant digits ("%.17g", exact for
 * binary64, "-0" for negative zero) and '.' as the point; pt is the locale's
 * point from locale_point().  *x is read as bits first, so that a NaN never
 * passes through a floating-point register. */
static void fmt_double(char *buf, size_t cap, const double *x, const char *pt)
{
    uint64_t u;
    memcpy(&u, x, sizeof u);
    if ((u & F64_EXP) == F64_EXP) {
        if (u & ~(F64_SIGN | F64_EXP))
            fmt_nan(buf, cap, u);
        else
            snprintf(buf, cap, "%sinf", u & F64_SIGN ? "-" : "");
        return;
    }
    snprintf(buf, cap, "%.17g", *x);
    char *p = strcmp(pt, ".") ? strstr(buf, pt) : NULL;
    if (p) {
        *p = '.';
        memmove(p + 1, p + strlen(pt), strlen(p + strlen(pt)) + 1);
    }
}

/* Parses a whole token as a double, '.' as the point whatever the locale. */
static bool parse_double(const char *tok, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(tok, &end);
    if (end != tok && *end == '\0')
        return true; /* ERANGE (underflow, overflow to Inf) still gives the nearest value */
    char pt[8];
    locale_point(pt);
    const char *dot = strchr(tok, '.');
    if (!dot || strcmp(pt, ".") == 0 || strlen(tok) > 127)
        return false;
    char tmp[144];
    const size_t head = (size_t)(dot - tok);
    memcpy(tmp, tok, head);
    snprintf(tmp + head, sizeof tmp - head, "%s%s", pt, dot + 1);
    *out = strtod(tmp, &end);
    return end != tmp && *end == '\0';
}

/* A value of the reference format into *out: a NaN spelled as fmt_nan spells
 * it (its bits copied), or a number strtod reads that is no NaN (decimal,
 * "inf").  Other NaN spellings ("NaN", "nan(1)", "+nan") are refused: the
 * bits they stand for depend on the C library. */
static bool parse_value(const char *tok, double *out)
{
    uint64_t u;
    double v;
    if (parse_nan(tok, &u))
        memcpy(out, &u, sizeof u);
    else if (parse_double(tok, &v) && !isnan(v))
        *out = v;
    else
        return false;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Atomic saves                                                             */
/* ------------------------------------------------------------------------ */
/* A save writes a temporary file in the directory of its target, flushes it
 * to disk and rename()s it over the target: the target holds the old bytes or
 * the new ones, whatever fails and whoever reads it meanwhile, and on failure
 * only the temporary file is removed.  The target is path or, when path is a
 * symbolic link, the regular file the link resolves to (the link is kept).
 * An existing path that is not a regular file (directory, device, FIFO,
 * socket, or a link to one) is refused: renaming over it would replace it,
 * and writing into it is no save.  A link to nothing is refused too (which
 * file it would create is anybody's guess).  Windows gets a plain write. */

#ifndef _WIN32

/* Where a save goes. */
typedef struct save_plan {
    char target[PATH_MAX]; /* the file to replace: path, or what its links resolve to */
    char tmp[PATH_MAX];    /* the temporary file beside it */
    bool replace;          /* target exists (a regular file) ... */
    mode_t mode;           /* ... with these permission bits */
} save_plan;

/* What a file of mode m is, for messages. */
static const char *file_kind(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISSOCK(m) ? "a socket"
                         : "a special file";
}

/* Fills plan for a save to path; false with HESS_ERR_IO recorded when path
 * exists and is no regular file, is a link to nothing or cannot be resolved. */
static bool plan_save(hess_context *ctx, const char *path, save_plan *plan, const char *fn)
{
    struct stat st;
    const bool link = lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
    if (!path[0] || stat(path, &st) != 0) {
        const int err = path[0] ? errno : ENOENT;
        const bool fresh = err == ENOENT && !link && path[0] != '\0';
        if (fresh && strlen(path) < sizeof plan->target) {
            strcpy(plan->target, path); /* a new file */
            plan->replace = false;
            return true;
        }
        if (err == ENOENT && link)
            hess__error(ctx, HESS_ERR_IO, "%s: %s: is a symbolic link to nothing; nothing written",
                        fn, path);
        else
            hess__error(ctx, HESS_ERR_IO, "%s: %s: cannot save there (%s)", fn, path,
                        strerror(fresh ? ENAMETOOLONG : err));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        hess__error(ctx, HESS_ERR_IO, "%s: %s: is %s%s, not a regular file; nothing written", fn,
                    path, link ? "a symbolic link to " : "", file_kind(st.st_mode));
        return false;
    }
    if (!realpath(path, plan->target)) {
        hess__error(ctx, HESS_ERR_IO, "%s: %s: cannot resolve the path (%s)", fn, path,
                    strerror(errno));
        return false;
    }
    plan->replace = true;
    plan->mode = st.st_mode & 0777;
    return true;
}

/* h and x mixed (splitmix64's finaliser). */
static uint64_t mix64(uint64_t h, uint64_t x)
{
    h ^= x + UINT64_C(0x9e3779b97f4a7c15) + (h << 6) + (h >> 2);
    h = (h ^ (h >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    h = (h ^ (h >> 27)) * UINT64_C(0x94d049bb133111eb);
    return h ^ (h >> 31);
}

/* Creates plan->tmp beside plan->target, ".<name, up to 32 bytes>.<16 hex
 * digits>.tmp", with O_EXCL so that it is new.  The digits hash the pid, the
 * address of a local of this call (distinct between threads), the time and
 * the attempt; a name that exists is skipped.  The mode is 0666, which open()
 * masks with the umask (reading the umask means setting it, for every thread
 * of the process), or the old file's.  Returns the descriptor, or -1 (errno). */
static int create_temp(save_plan *plan)
{
    const char *slash = strrchr(plan->target, '/');
    const int dir = slash ? (int)(slash - plan->target) + 1 : 0;
    for (unsigned attempt = 0; attempt < 64; attempt++) {
        struct timespec ts = {0, 0};
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t h = mix64(0, (uint64_t)getpid());
        h = mix64(h, (uint64_t)(uintptr_t)&ts);
        h = mix64(h, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
        h = mix64(h, attempt);
        const int n = snprintf(plan->tmp, sizeof plan->tmp, "%.*s.%.32s.%016llx.tmp", dir,
                               plan->target, plan->target + dir, (unsigned long long)h);
        if (n < 0 || (size_t)n >= sizeof plan->tmp) {
            errno = ENAMETOOLONG;
            return -1;
        }
        const int fd = open(plan->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                            plan->replace ? plan->mode : (mode_t)0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1; /* errno is EEXIST */
}

/* Fills the temporary file: the old file's permissions first (before any
 * byte is in it), then the writer, fflush, and fsync so that the data is on
 * disk before the rename makes it the file.  Closes fd in every case.
 * Returns NULL or what failed, with its errno in *err. */
static const char *fill_temp(int fd,
                             const save_plan *plan,
                             bool (*write)(FILE *f, const void *arg),
                             const void *arg,
                             int *err)
{
    const char *what = NULL;
    FILE *f = NULL;
    errno = 0;
    if (plan->replace && fchmod(fd, plan->mode) != 0)
        what = "cannot give the new file the old one's permissions";
    else if ((f = fdopen(fd, "wb")) == NULL)
        what = "cannot write the temporary file";
    else if (!write(f, arg) || fflush(f) != 0 || ferror(f))
        what = "write failed";
    else if (fsync(fileno(f)) != 0)
        what = "cannot flush the file to disk";
    *err = errno;
    if ((f ? fclose(f) : close(fd)) != 0 && !what) {
        what = "write failed";
        *err = errno;
    }
    return what;
}

hess_status hess__save_atomic(hess_context *ctx,
                              const char *path,
                              const char *fn,
                              bool (*write)(FILE *f, const void *arg),
                              const void *arg)
{
    save_plan plan;
    if (!plan_save(ctx, path, &plan, fn))
        return HESS_ERR_IO;
    const int fd = create_temp(&plan);
    int err = errno;
    const char *what = fd < 0 ? "cannot create a temporary file beside it"
                              : fill_temp(fd, &plan, write, arg, &err);
    if (!what && rename(plan.tmp, plan.target) != 0) {
        what = "cannot rename the temporary file over it";
        err = errno;
    }
    if (!what)
        return HESS_OK;
    if (fd >= 0)
        unlink(plan.tmp); /* the only file a failed save touches */
    hess__error(ctx, HESS_ERR_IO, "%s: %s: %s (%s); %s", fn, path, what,
                err ? strerror(err) : "unknown error",
                plan.replace ? "the file is unchanged" : "no file made");
    return HESS_ERR_IO;
}

#else /* _WIN32: a plain write, removed when it fails half-way */

hess_status hess__save_atomic(hess_context *ctx,
                              const char *path,
                              const char *fn,
                              bool (*write)(FILE *f, const void *arg),
                              const void *arg)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        hess__error(ctx, HESS_ERR_IO, "%s: %s: cannot create file (%s)", fn, path, strerror(errno));
        return HESS_ERR_IO;
    }
    errno = 0;
    bool ok = write(f, arg) && fflush(f) == 0 && !ferror(f);
    int err = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (ok)
        return HESS_OK;
    remove(path);
    hess__error(ctx, HESS_ERR_IO, "%s: %s: write failed (%s)", fn, path,
                err ? strerror(err) : "unknown error");
    return HESS_ERR_IO;
}

#endif

/* ------------------------------------------------------------------------ */
/* Input: the bytes a reader parses                                         */
/* ------------------------------------------------------------------------ */
/* A file that can seek is read where it lies; any other (a pipe, a FIFO, a
 * terminal) is first read whole into memory, as is a fuzzer's buffer.  No
 * reader asks the system for a file's size, which is 0 for /proc files and
 * pipes and may change meanwhile: before it allocates for n bytes of data it
 * makes sure, with src_has(), that they are there. */

typedef struct src {
    FILE *f;                /* a file that can seek, or NULL */
    const unsigned char *p; /* else the bytes in memory */
    size_t size;            /* how many, in memory */
    size_t pos;             /* bytes consumed: the offset of the next one */
    long line;              /* line of the last byte consumed, from 1 */
    bool nl;                /* the last byte consumed was a newline */
    int err;                /* errno of a read that failed, else 0 */
    size_t tok_at;          /* offset of the last token (or problem) found */
    long tok_line;          /* and its line */
    hess_context *stage;    /* owns p when a pipe was read into memory */
} src;

static src src_mem(const void *buf, size_t len)
{
    const src r = {NULL, buf, len, 0, 1, false, 0, 0, 1, NULL};
    return r;
}

/* Reads a stream that cannot seek whole into memory of a scratch context
 * with the caller's allocator and what is left of its byte limit (freed by
 * src_close).  The buffer doubles when full, so it stays below twice the
 * bytes that came, and the copies it outgrew below as much again. */
static hess_status src_stage(hess_context *ctx, FILE *f, src *r, const char *path, const char *fn)
{
    hess_config cfg = ctx->cfg;
    cfg.block_bytes = 0;
    if (cfg.max_bytes)
        cfg.max_bytes = cfg.max_bytes > ctx->bytes ? cfg.max_bytes - ctx->bytes : 1;
    unsigned char *buf = NULL;
    size_t cap = 0, len = 0;
    bool ok = hess_context_create(&cfg, &r->stage) == HESS_OK;
    while (ok) {
        if (len == cap) {
            const size_t grown = cap ? 2 * cap : 16384;
            unsigned char *nb = cap <= SIZE_MAX / 2 ? hess__alloc(r->stage, grown, fn) : NULL;
            if (!(ok = nb != NULL))
                break;
            if (len)
                memcpy(nb, buf, len);
            buf = nb;
            cap = grown;
        }
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap && (feof(f) || ferror(f)))
            break;
    }
    if (!ok) {
        hess__error(ctx, HESS_ERR_NOMEM, "%s: %s: out of memory reading a pipe (%zu bytes so far)",
                    fn, path, len);
        return HESS_ERR_NOMEM;
    }
    if (ferror(f)) {
        hess__error(ctx, HESS_ERR_IO, "%s: %s: byte %zu: read error (%s)", fn, path, len,
                    strerror(errno));
        return HESS_ERR_IO;
    }
    r->p = buf;
    r->size = len;
    return HESS_OK;
}

/* Opens path to read; HESS_ERR_IO or HESS_ERR_NOMEM recorded on failure.
 * src_close() releases it in any case. */
static hess_status src_open(hess_context *ctx, const char *path, src *r, const char *fn)
{
    *r = src_mem(NULL, 0);
    FILE *f = fopen(path, "rb");
    if (!f) {
        hess__error(ctx, HESS_ERR_IO, "%s: %s: cannot open file (%s)", fn, path, strerror(errno));
        return HESS_ERR_IO;
    }
    if (fseek(f, 0, SEEK_CUR) == 0) {
        r->f = f;
        return HESS_OK;
    }
    const hess_status st = src_stage(ctx, f, r, path, fn);
    fclose(f);
    return st;
}

static void src_close(src *r)
{
    if (r->f)
        fclose(r->f);
    hess_context_destroy(r->stage);
    r->f = NULL;
    r->stage = NULL;
}

static int src_getc(src *r)
{
    int c = EOF;
    if (r->f) {
        c = getc(r->f);
        if (c == EOF && ferror(r->f) && !r->err)
            r->err = errno ? errno : EIO;
    } else if (r->pos < r->size) {
        c = r->p[r->pos];
    }
    if (c != EOF) {
        r->pos++;
        r->line += r->nl;
        r->nl = c == '\n';
    }
    return c;
}

/* Up to n bytes into buf (no line counting: for binary data); the count. */
static size_t src_read(src *r, void *buf, size_t n)
{
    size_t got;
    if (r->f) {
        got = fread(buf, 1, n, r->f);
        if (got < n && ferror(r->f) && !r->err)
            r->err = errno ? errno : EIO;
    } else {
        got = r->pos < r->size ? r->size - r->pos : 0;
        got = got < n ? got : n;
        if (got)
            memcpy(buf, r->p + r->pos, got);
    }
    r->pos += got;
    return got;
}

/* Whether n more bytes follow, found by reading the last of them (seek, read
 * a byte, seek back), never from the size the system reports. */
static bool src_has(src *r, size_t n)
{
    if (n == 0)
        return true;
    if (!r->f)
        return r->pos <= r->size && r->size - r->pos >= n;
    if (r->pos > (size_t)LONG_MAX || n - 1 > (size_t)LONG_MAX - r->pos)
        return false; /* beyond what fseek can reach: more than the file holds here */
    const bool yes = fseek(r->f, (long)(r->pos + n - 1), SEEK_SET) == 0 && getc(r->f) != EOF;
    clearerr(r->f);
    if (fseek(r->f, (long)r->pos, SEEK_SET) != 0) {
        r->err = errno ? errno : EIO;
        return false;
    }
    return yes;
}

/* Where a reader found a problem, and what it is. */
typedef struct fault {
    size_t at;     /* byte offset in the input */
    long line;     /* its line in a text format, else 0 */
    char why[200]; /* what is wrong */
} fault;

HESS_PRINTF(4, 0)
static bool vfault(fault *p, size_t at, long line, const char *fmt, va_list ap)
{
    p->at = at;
    p->line = line;
    vsnprintf(p->why, sizeof p->why, fmt, ap);
    return false;
}

/* Sets the problem; returns false for use in return statements. */
HESS_PRINTF(4, 5) static bool fault_at(fault *p, size_t at, long line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfault(p, at, line, fmt, ap);
    va_end(ap);
    return false;
}

/* Records a reader's problem as HESS_ERR_IO in one line: the function, the
 * input, the byte offset (and line) and what is wrong; a failed read comes
 * first, as it causes what follows.  Nothing if an error is pending: a
 * failed allocation has said so. */
static void
report(hess_context *ctx, const src *r, const char *fn, const char *name, const fault *p)
{
    if (ctx->status != HESS_OK)
        return;
    if (r->err)
        hess__error(ctx, HESS_ERR_IO, "%s: %s: byte %zu: read error (%s)", fn, name, r->pos,
                    strerror(r->err));
    else if (p->line)
        hess__error(ctx, HESS_ERR_IO, "%s: %s: byte %zu (line %ld): %s", fn, name, p->at, p->line,
                    p->why);
    else
        hess__error(ctx, HESS_ERR_IO, "%s: %s: byte %zu: %s", fn, name, p->at, p->why);
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
static hess_status save_begin(hess_context *ctx, const char *path, const char *fn)
{
    hess_status st = hess__enter(ctx, fn);
    if (st != HESS_OK)
        return st;
    if (!path) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL path", fn);
        return HESS_ERR_ARG;
    }
    return HESS_OK;
}

hess_status hess_save_npy(hess_context *ctx, const char *path, const hess_tensor *t)
{
    static const char fn[] = "hess_save_npy";
    hess_status st = save_begin(ctx, path, fn);
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
    hess_status st = save_begin(ctx, path, fn);
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
static bool npy_preamble(src *r, npy_info *info, fault *p)
{
    unsigned char b[12];
    const size_t got = src_read(r, b, 8);
    if (got < NPY_MAGIC_LEN || memcmp(b, npy_magic, NPY_MAGIC_LEN) != 0)
        return fault_at(p, 0, 0, "bad magic (not a .npy file)");
    if (got < 8)
        return fault_at(p, got, 0, "truncated preamble");
    if (b[6] < 1 || b[6] > 3 || b[7] != 0)
        return fault_at(p, 6, 0, "unsupported format version %u.%u (1.0, 2.0 and 3.0 are read)",
                        b[6], b[7]);
    const size_t lenbytes = b[6] == 1 ? 2 : 4;
    if (src_read(r, b + 8, lenbytes) != lenbytes)
        return fault_at(p, r->pos, 0, "truncated preamble");
    size_t hlen = 0;
    for (size_t i = lenbytes; i-- > 0;)
        hlen = hlen << 8 | b[8 + i];
    if (hlen > NPY_MAX_HEADER)
        return fault_at(p, 8, 0, "header too long (%zu bytes, at most 65536 are read)", hlen);
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

/* A new leaf for the loaded values (filled by the caller). */
static hess_tensor *
new_leaf(hess_context *ctx, int ndim, const int64_t *shape, int as_param, const char *fn)
{
    hess_tensor *t = hess__node(ctx, HESS_OP_NONE, ndim, shape, NULL, NULL, fn);
    if (t)
        t->flags = as_param ? HESS_T_PARAM : 0; /* as hess_param_new / hess_tensor_new */
    return t;
}

/* Reads the header dict into arena scratch, given back before returning,
 * once its bytes are known to be there, and parses it into info. */
static bool npy_read_dict(hess_context *ctx, src *r, npy_info *info, fault *p, const char *fn)
{
    const size_t hlen = info->data_off - info->dict_off;
    if (!src_has(r, hlen))
        return fault_at(p, info->dict_off, 0, "truncated header (its length says %zu bytes)", hlen);
    const hess_mark mk = hess_context_mark(ctx);
    char *h = hess__alloc(ctx, hlen + 1, fn);
    bool ok = h != NULL; /* else HESS_ERR_NOMEM is recorded */
    if (ok && src_read(r, h, hlen) != hlen)
        ok = fault_at(p, r->pos, 0, "truncated header");
    char why[160];
    size_t at = 0;
    const char *e = ok ? npy_dict(h, hlen, info, why, sizeof why, &at) : NULL;
    if (e)
        ok = fault_at(p, info->dict_off + at, 0, "%s", e);
    hess_context_rewind(ctx, mk);
    return ok;
}

/* The data: the shape's count of little-endian doubles, then the end of the
 * input.  The bytes are known to be there before the tensor is allocated. */
static hess_tensor *
npy_data(hess_context *ctx, src *r, const npy_info *info, int as_param, fault *p, const char *fn)
{
    size_t numel = 1;
    bool fits = true;
    for (int i = 0; i < info->ndim && fits; i++)
        if ((fits = (uint64_t)info->shape[i] <= SIZE_MAX / 8 / numel))
            numel *= (size_t)info->shape[i];
    const size_t need = numel * 8;
    if (!fits || !src_has(r, need)) {
        fault_at(p, r->pos, 0, "truncated data (the shape needs %s%zu bytes, fewer follow)",
                 fits ? "" : "more than ", fits ? need : SIZE_MAX);
        return NULL;
    }
    if (src_has(r, need + 1)) {
        fault_at(p, r->pos + need, 0, "trailing bytes after the data (the shape needs %zu)", need);
        return NULL;
    }
    hess_tensor *t = new_leaf(ctx, info->ndim, info->shape, as_param, fn);
    unsigned char chunk[4096];
    for (size_t i = 0; t && i < numel;) {
        const size_t k = numel - i < sizeof chunk / 8 ? numel - i : sizeof chunk / 8;
        if (src_read(r, chunk, 8 * k) != 8 * k) {
            fault_at(p, r->pos, 0, "truncated data (the file shrank while being read)");
            return NULL;
        }
        for (size_t j = 0; j < k; j++, i++)
            get_f64le(chunk + 8 * j, &t->data[i]);
    }
    if (t && src_getc(r) != EOF) {
        fault_at(p, r->pos - 1, 0,
                 "trailing bytes after the data (the file grew while being read)");
        return NULL;
    }
    return t;
}

/* The common body of the file and memory readers; nothing is left in the
 * context on failure. */
static hess_tensor *
npy_load(hess_context *ctx, src *r, const char *name, int as_param, const char *fn)
{
    const hess_mark mk = hess_context_mark(ctx);
    npy_info info;
    fault p = {0, 0, "no problem"};
    hess_tensor *t = NULL;
    if (npy_preamble(r, &info, &p) && npy_read_dict(ctx, r, &info, &p, fn))
        t = npy_data(ctx, r, &info, as_param, &p, fn);
    if (!t) {
        report(ctx, r, fn, name, &p);
        hess_context_rewind(ctx, mk);
    }
    return t;
}

hess_tensor *
hess__npy_load_mem(hess_context *ctx, const void *buf, size_t len, const char *name, int as_param)
{
    static const char fn[] = "hess_load_npy";
    if (!ctx)
        return NULL;
    if (!buf || !name) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL buffer or name", fn);
        return NULL;
    }
    src r = src_mem(buf, len);
    return npy_load(ctx, &r, name, as_param, fn);
}

hess_tensor *hess_load_npy(hess_context *ctx, const char *path, int as_param)
{
    static const char fn[] = "hess_load_npy";
    if (!ctx)
        return NULL;
    if (!path) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL path", fn);
        return NULL;
    }
    src r;
    hess_tensor *t = NULL;
    if (src_open(ctx, path, &r, fn) == HESS_OK)
        t = npy_load(ctx, &r, path, as_param, fn);
    src_close(&r);
    return t;
}

/* ------------------------------------------------------------------------ */
/* Reference format: writing                                                */
/* ------------------------------------------------------------------------ */

#define REF_HEADER    "# libhessian reference case v1"
#define REF_MAX_NAME  63  /* as tests/support/ref.c reads them */
#define REF_MAX_CASE  127 /* idem */
#define REF_MAX_MODEL 500
#define REF_MAX_TOKEN 128

/* A word: 1..max bytes, none of them blank or a control character. */
static bool is_word(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] <= ' ' || s[n] == 0x7f)
            return false;
    return n >= 1 && n <= max;
}

/* Model text: no control characters but tabs. */
static bool model_text_ok(const char *s)
{
    for (; *s; s++)
        if (((unsigned char)*s < ' ' && *s != '\t') || *s == 0x7f)
            return false;
    return true;
}

/* Checks what hess_save_ref will write; HESS_ERR_ARG/STATE recorded. */
static hess_status check_ref(hess_context *ctx, const hess_ref_file *file, const char *fn)
{
    if (!file || !file->tensors || file->n == 0) {
        hess__error(ctx, HESS_ERR_ARG, "%s: %s", fn, file ? "no tensors" : "NULL file");
        return HESS_ERR_ARG;
    }
    if (file->case_name && file->case_name[0] && !is_word(file->case_name, REF_MAX_CASE)) {
        hess__error(ctx, HESS_ERR_ARG, "%s: case name has blanks or more than %d bytes", fn,
                    REF_MAX_CASE);
        return HESS_ERR_ARG;
    }
    if (file->model) {
        if (!model_text_ok(file->model) || strlen(file->model) > REF_MAX_MODEL) {
            hess__error(ctx, HESS_ERR_ARG,
                        "%s: model text has a control character or more "
                        "than %d bytes",
                        fn, REF_MAX_MODEL);
            return HESS_ERR_ARG;
        }
    }
    for (size_t i = 0; i < file->n; i++) {
        const hess_named_tensor *nt = &file->tensors[i];
        if (!nt->name || !is_word(nt->name, REF_MAX_NAME)) {
            hess__error(ctx, HESS_ERR_ARG,
                        "%s: tensors[%zu]: the name must be 1..%d bytes "
                        "without blanks",
                        fn, i, REF_MAX_NAME);
            return HESS_ERR_ARG;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(file->tensors[j].name, nt->name) == 0) {
                hess__error(ctx, HESS_ERR_ARG, "%s: tensors[%zu]: name '%s' is repeated", fn, i,
                            nt->name);
                return HESS_ERR_ARG;
            }
        hess_status st = hess__check(ctx, nt->tensor, fn);
        if (st != HESS_OK)
            return st;
    }
    return HESS_OK;
}

/* One tensor: its line, then its values, one row (last dimension) per line. */
static bool write_ref_tensor(FILE *f, const char *name, const hess_tensor *t)
{
    char pt[8];
    locale_point(pt);
    bool ok = fprintf(f, "tensor %s %d", name, t->ndim) > 0;
    for (int i = 0; i < t->ndim && ok; i++)
        ok = fprintf(f, " %lld", (long long)t->shape[i]) > 0;
    ok = ok && fputc('\n', f) != EOF;
    const int64_t row = t->ndim ? t->shape[t->ndim - 1] : 1;
    for (int64_t i = 0; i < t->numel && ok; i++) {
        char num[40];
        fmt_double(num, sizeof num, &t->data[i], pt);
        ok = fputs(num, f) != EOF && fputc((i + 1) % row ? ' ' : '\n', f) != EOF;
    }
    return ok;
}

/* The whole reference file of arg (a checked hess_ref_file). */
static bool put_ref(FILE *f, const void *arg)
{
    const hess_ref_file *file = arg;
    bool ok = fprintf(f, REF_HEADER "\n") > 0;
    if (ok && file->case_name && file->case_name[0])
        ok = fprintf(f, "case %s\n", file->case_name) > 0;
    if (ok && file->model && file->model[0])
        ok = fprintf(f, "model %s\n", file->model) > 0;
    for (size_t i = 0; i < file->n && ok; i++)
        ok = write_ref_tensor(f, file->tensors[i].name, file->tensors[i].tensor);
    return ok;
}

hess_status hess_save_ref(hess_context *ctx, const char *path, const hess_ref_file *file)
{
    static const char fn[] = "hess_save_ref";
    hess_status st = save_begin(ctx, path, fn);
    if (st != HESS_OK || (st = check_ref(ctx, file, fn)) != HESS_OK)
        return st;
    for (size_t i = 0; i < file->n; i++)
        if ((st = hess__refresh(ctx, 1, &file->tensors[i].tensor, fn)) != HESS_OK)
            return st;
    return hess__save_atomic(ctx, path, fn, put_ref, file);
}

/* ------------------------------------------------------------------------ */
/* Reference format: reading                                                */
/* ------------------------------------------------------------------------ */

static bool is_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* A control byte other than a blank: never part of a token or a model line
 * (a NUL would cut a name short). */
static bool is_control(int c)
{
    return (c < 0x20 && !is_blank(c)) || c == 0x7f;
}

#define TOK_LONG    (-1) /* next_token: token too long */
#define TOK_CONTROL (-2) /* next_token: control byte */

/* The next blank-separated token into tok (REF_MAX_TOKEN bytes), its offset
 * and line in r->tok_at and r->tok_line.  Returns 1; 0 at the end of input,
 * TOK_LONG or TOK_CONTROL, with r->tok_at at the end, the token or the byte. */
static int next_token(src *r, char tok[REF_MAX_TOKEN])
{
    int c;
    while ((c = src_getc(r)) != EOF && is_blank(c))
        ;
    r->tok_at = c == EOF ? r->pos : r->pos - 1;
    r->tok_line = c == EOF ? r->line + r->nl : r->line;
    if (c == EOF)
        return 0;
    size_t n = 0;
    for (; c != EOF && !is_blank(c); c = src_getc(r)) {
        if (is_control(c)) {
            r->tok_at = r->pos - 1;
            return TOK_CONTROL;
        }
        if (n + 1 >= REF_MAX_TOKEN)
            return TOK_LONG;
        tok[n++] = (char)c;
    }
    tok[n] = '\0';
    return 1;
}

/* What went wrong in a token, for messages. */
static const char *token_problem(int got)
{
    return got == TOK_LONG ? "token too long" : got == TOK_CONTROL ? "control byte" : "file ends";
}

/* The rest of the line, without leading blanks and the final "\r\n", into
 * buf (max + 2 bytes).  False when it is longer than max bytes or holds a
 * control byte other than a tab, with r->tok_at at the first such byte. */
static bool rest_of_line(src *r, char *buf, size_t max)
{
    int c;
    while ((c = src_getc(r)) == ' ' || c == '\t')
        ;
    const size_t start = c == EOF ? r->pos : r->pos - 1;
    r->tok_line = r->line;
    size_t n = 0;
    for (; c != EOF && c != '\n' && n <= max; c = src_getc(r))
        buf[n++] = (char)c;
    if (n && buf[n - 1] == '\r' && (c == '\n' || c == EOF))
        n--;
    buf[n] = '\0';
    r->tok_at = start + max;
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)buf[i] < ' ' && buf[i] != '\t') || buf[i] == 0x7f) {
            r->tok_at = start + i;
            return false;
        }
    return true;
}

/* A copy of s in the arena. */
static char *arena_strdup(hess_context *ctx, const char *s, const char *fn)
{
    const size_t n = strlen(s) + 1;
    char *d = hess__alloc(ctx, n, fn);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* State of one hess_load_ref call. */
typedef struct ref_reader {
    hess_context *ctx;
    src *in;
    const char *prefix; /* param prefix or NULL */
    hess_named_tensor *items;
    size_t n, cap;
    fault problem;
} ref_reader;

/* Sets the problem, found at the last token; returns false. */
HESS_PRINTF(2, 3) static bool bad(ref_reader *rr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfault(&rr->problem, rr->in->tok_at, rr->in->tok_line, fmt, ap);
    va_end(ap);
    return false;
}

/* The first line: exactly REF_HEADER, then "\n", "\r\n" or the end of the
 * input.  "v10", "v1.5", "v1x" or any text after "v1" is a format this reader
 * does not know. */
static bool ref_header(ref_reader *rr)
{
    src *r = rr->in;
    size_t i = 0;
    int c = src_getc(r);
    for (; i < sizeof REF_HEADER - 1 && c == (unsigned char)REF_HEADER[i]; i++)
        c = src_getc(r);
    if (i == sizeof REF_HEADER - 1 && c == '\r')
        c = src_getc(r);
    if (i == sizeof REF_HEADER - 1 && (c == '\n' || c == EOF))
        return true;
    return fault_at(&rr->problem, c == EOF ? r->pos : r->pos - 1, 1,
                    "bad header (the first line must be \"%s\")", REF_HEADER);
}

/* Appends a loaded tensor to rr->items, which grows geometrically (the old
 * array is left in the arena). */
static bool add_item(ref_reader *rr, const char *name, hess_tensor *t, const char *fn)
{
    if (rr->n == rr->cap) {
        const size_t cap = rr->cap ? 2 * rr->cap : 16;
        hess_named_tensor *a = hess__alloc(rr->ctx, cap * sizeof *a, fn);
        if (!a)
            return false;
        if (rr->n)
            memcpy(a, rr->items, rr->n * sizeof *a);
        rr->items = a;
        rr->cap = cap;
    }
    rr->items[rr->n].name = arena_strdup(rr->ctx, name, fn);
    rr->items[rr->n].tensor = t;
    return rr->items[rr->n++].name != NULL;
}

/* The shape of "tensor <name> <ndim> <dims...>" after the name; *numel its
 * element count, which the values after it must be able to fill. */
static bool
read_shape_line(ref_reader *rr, const char *name, int *ndim, int64_t *shape, size_t *numel)
{
    char tok[REF_MAX_TOKEN], *end;
    long rank = -1;
    if (next_token(rr->in, tok) == 1 && ((rank = strtol(tok, &end, 10)), *end))
        rank = -1;
    if (rank < 0 || rank > HESS_MAX_DIMS)
        return bad(rr, "tensor '%s': rank must be 0..%d", name, HESS_MAX_DIMS);
    bool fits = true;
    *numel = 1;
    for (long i = 0; i < rank; i++) {
        long long d = -1;
        if (next_token(rr->in, tok) == 1 && ((d = strtoll(tok, &end, 10)), *end))
            d = -1;
        if (d < 1)
            return bad(rr, "tensor '%s': dimension %ld is not a positive integer", name, i);
        if ((fits = fits && (unsigned long long)d <= SIZE_MAX / 2 / *numel))
            *numel *= (size_t)d;
        shape[i] = d;
    }
    *ndim = (int)rank;
    /* Each value takes a byte and all but the last a separator: the bytes
     * must be there before the tensor is allocated. */
    src *r = rr->in;
    if (!fits || !src_has(r, 2 * *numel - 1))
        return fault_at(&rr->problem, r->pos, r->line + r->nl,
                        "tensor '%s': the shape needs more values than the file can hold", name);
    return true;
}

/* Reads one "tensor <name> <ndim> <dims...>" line and its values. */
static bool read_tensor(ref_reader *rr, const char *fn)
{
    char tok[REF_MAX_TOKEN], name[REF_MAX_TOKEN];
    if (next_token(rr->in, name) != 1 || strlen(name) > REF_MAX_NAME)
        return bad(rr, "missing, too long or malformed tensor name");
    for (size_t j = 0; j < rr->n; j++)
        if (strcmp(rr->items[j].name, name) == 0)
            return bad(rr, "tensor '%s' appears twice", name);
    int ndim;
    int64_t shape[HESS_MAX_DIMS];
    size_t numel;
    if (!read_shape_line(rr, name, &ndim, shape, &numel))
        return false;
    hess_tensor *t = new_leaf(rr->ctx, ndim, shape,
                              rr->prefix && strncmp(name, rr->prefix, strlen(rr->prefix)) == 0, fn);
    if (!t)
        return false;
    for (size_t i = 0; i < numel; i++) {
        const int got = next_token(rr->in, tok);
        if (got != 1 || !parse_value(tok, &t->data[i]))
            return bad(rr, "tensor '%s': %s after %zu of %zu values", name,
                       got == 1 ? "malformed value" : token_problem(got), i, numel);
    }
    return add_item(rr, name, t, fn);
}

/* Parses the whole input into rr and *out. */
static bool read_ref(ref_reader *rr, hess_ref_file *out, const char *fn)
{
    if (!ref_header(rr))
        return false;
    char tok[REF_MAX_TOKEN], line[REF_MAX_MODEL + 2];
    int got;
    while ((got = next_token(rr->in, tok)) == 1) {
        if (strcmp(tok, "case") == 0) {
            if (next_token(rr->in, tok) != 1 || strlen(tok) > REF_MAX_CASE)
                return bad(rr, "bad case line");
            if (!(out->case_name = arena_strdup(rr->ctx, tok, fn)))
                return false;
        } else if (strcmp(tok, "model") == 0) {
            if (!rest_of_line(rr->in, line, REF_MAX_MODEL))
                return bad(rr, "model line too long or with a control byte");
            if (!(out->model = arena_strdup(rr->ctx, line, fn)))
                return false;
        } else if (strcmp(tok, "tensor") == 0) {
            if (!read_tensor(rr, fn))
                return false;
        } else {
            return bad(rr, "unknown keyword '%.40s'", tok);
        }
    }
    if (got < 0)
        return bad(rr, "%s", token_problem(got));
    if (rr->n == 0)
        return bad(rr, "no tensors");
    out->n = rr->n;
    out->tensors = rr->items;
    return true;
}

/* The common body of the file and memory readers; nothing is left in the
 * context on failure. */
static hess_status load_ref(hess_context *ctx,
                            src *in,
                            const char *name,
                            const char *param_prefix,
                            hess_ref_file *out,
                            const char *fn)
{
    const hess_mark mk = hess_context_mark(ctx);
    ref_reader rr;
    memset(&rr, 0, sizeof rr);
    rr.ctx = ctx;
    rr.in = in;
    rr.prefix = param_prefix && param_prefix[0] ? param_prefix : NULL;
    hess_ref_file res = {"", "", 0, NULL};
    if (read_ref(&rr, &res, fn) && !in->err) {
        *out = res;
        return HESS_OK;
    }
    report(ctx, in, fn, name, &rr.problem);
    hess_context_rewind(ctx, mk);
    return ctx->status;
}

/* Arguments common to both readers; clears *out. */
static hess_status
check_load_ref(hess_context *ctx, const void *where, hess_ref_file *out, const char *fn)
{
    if (!ctx)
        return HESS_ERR_ARG;
    if (out)
        memset(out, 0, sizeof *out);
    hess_status st = hess__enter(ctx, fn);
    if (st != HESS_OK)
        return st;
    if (!where || !out) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL %s", fn, out ? "path" : "out");
        return HESS_ERR_ARG;
    }
    return HESS_OK;
}

hess_status
hess_load_ref(hess_context *ctx, const char *path, const char *param_prefix, hess_ref_file *out)
{
    static const char fn[] = "hess_load_ref";
    hess_status st = check_load_ref(ctx, path, out, fn);
    if (st != HESS_OK)
        return st;
    src in;
    if ((st = src_open(ctx, path, &in, fn)) == HESS_OK)
        st = load_ref(ctx, &in, path, param_prefix, out, fn);
    src_close(&in);
    return st;
}

hess_status hess__ref_load_mem(hess_context *ctx,
                               const void *buf,
                               size_t len,
                               const char *name,
                               const char *param_prefix,
                               hess_ref_file *out)
{
    static const char fn[] = "hess_load_ref";
    hess_status st = check_load_ref(ctx, buf, out, fn);
    if (st != HESS_OK)
        return st;
    src in = src_mem(buf, len);
    return load_ref(ctx, &in, name ? name : "<memory>", param_prefix, out, fn);
}

hess_tensor *hess_ref_find(const hess_ref_file *file, const char *name)
{
    if (!file || !file->tensors || !name)
        return NULL;
    for (size_t i = 0; i < file->n; i++)
        if (file->tensors[i].name && strcmp(file->tensors[i].name, name) == 0)
            return file->tensors[i].tensor;
    return NULL;
}
