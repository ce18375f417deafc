/*
 * file.c -- files, for every reader and writer: the atomic save (a temporary
 * file beside the target, flushed and renamed over it) and the input readers
 * parse, which never trusts the size the system reports.
 */
#if !defined(_WIN32) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700 /* POSIX.1-2008 with XSI: open, fsync, fchmod, realpath, lstat */
#endif
#include "io.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#endif

/* A path as messages show it: whole up to MSG_PATH bytes, else "..." and its
 * last bytes (the file's name is the telling part), cut between UTF-8
 * characters, so that what follows it in a message still fits in the
 * context's message buffer. */
#define MSG_PATH 120
static const char *msg_path(const char *path, char buf[MSG_PATH + 1])
{
    const size_t n = strlen(path);
    if (n <= MSG_PATH)
        return path;
    const char *tail = path + n - (MSG_PATH - 3);
    while (((unsigned char)*tail & 0xc0) == 0x80) /* a UTF-8 continuation byte */
        tail++;
    snprintf(buf, MSG_PATH + 1, "...%s", tail);
    return buf;
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
    char pb[MSG_PATH + 1];
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
                        fn, msg_path(path, pb));
        else
            hess__error(ctx, HESS_ERR_IO, "%s: %s: cannot save there (%s)", fn, msg_path(path, pb),
                        strerror(fresh ? ENAMETOOLONG : err));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        hess__error(ctx, HESS_ERR_IO, "%s: %s: is %s%s, not a regular file; nothing written", fn,
                    msg_path(path, pb), link ? "a symbolic link to " : "", file_kind(st.st_mode));
        return false;
    }
    if (!realpath(path, plan->target)) {
        const int err = errno;
        hess__error(ctx, HESS_ERR_IO, "%s: %s: cannot resolve the path (%s)", fn,
                    msg_path(path, pb), strerror(err));
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
    char pb[MSG_PATH + 1];
    hess__error(ctx, HESS_ERR_IO, "%s: %s: %s (%s); %s", fn, msg_path(path, pb), what,
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
    char pb[MSG_PATH + 1];
    FILE *f = fopen(path, "wb");
    if (!f) {
        hess__error(ctx, HESS_ERR_IO, "%s: %s: cannot create file (%s)", fn, msg_path(path, pb),
                    strerror(errno));
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
    hess__error(ctx, HESS_ERR_IO, "%s: %s: write failed (%s)", fn, msg_path(path, pb),
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
 * makes sure, with hess__src_has(), that they are there. */

hess__src hess__src_mem(const void *buf, size_t len)
{
    const hess__src r = {NULL, buf, len, 0, 1, false, 0, 0, 1, NULL};
    return r;
}

/* Reads a stream that cannot seek whole into memory of a scratch context
 * with the caller's allocator and what is left of its byte limit (freed by
 * src_close).  The buffer doubles when full, so it stays below twice the
 * bytes that came, and the copies it outgrew below as much again. */
static hess_status
src_stage(hess_context *ctx, FILE *f, hess__src *r, const char *path, const char *fn)
{
    hess_config cfg = ctx->cfg;
    cfg.block_bytes = 0;
    if (cfg.max_bytes)
        cfg.max_bytes = cfg.max_bytes > ctx->bytes ? cfg.max_bytes - ctx->bytes : 1;
    unsigned char *buf = NULL;
    size_t cap = 0, len = 0;
    bool ok = hess_context_create(&cfg, &r->stage) == HESS_OK;
    /* Each pass doubles the buffer and fills it, or stops short: fread reads
     * fewer bytes than asked only at the end of the stream or on a read
     * error.  cap is a size hess__alloc gave, at most SIZE_MAX / 4: doubling
     * it cannot overflow. */
    while (ok) {
        const size_t grown = cap ? 2 * cap : 16384;
        unsigned char *nb = hess__alloc(r->stage, grown, fn);
        if (!(ok = nb != NULL))
            break;
        if (len)
            memcpy(nb, buf, len);
        buf = nb;
        cap = grown;
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
    }
    char pb[MSG_PATH + 1];
    if (!ok) {
        hess__error(ctx, HESS_ERR_NOMEM, "%s: %s: out of memory reading a pipe (%zu bytes so far)",
                    fn, msg_path(path, pb), len);
        return HESS_ERR_NOMEM;
    }
    if (ferror(f)) {
        const int err = errno;
        hess__error(ctx, HESS_ERR_IO, "%s: %s: byte %zu: read error (%s)", fn, msg_path(path, pb),
                    len, strerror(err));
        return HESS_ERR_IO;
    }
    r->p = buf;
    r->size = len;
    return HESS_OK;
}

/* Opens path to read; HESS_ERR_IO or HESS_ERR_NOMEM recorded on failure.
 * hess__src_close() releases it in any case. */
hess_status hess__src_open(hess_context *ctx, const char *path, hess__src *r, const char *fn)
{
    *r = hess__src_mem(NULL, 0);
    FILE *f = fopen(path, "rb");
    if (!f) {
        const int err = errno;
        char pb[MSG_PATH + 1];
        hess__error(ctx, HESS_ERR_IO, "%s: %s: cannot open file (%s)", fn, msg_path(path, pb),
                    strerror(err));
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

void hess__src_close(hess__src *r)
{
    if (r->f)
        fclose(r->f);
    hess_context_destroy(r->stage);
    r->f = NULL;
    r->stage = NULL;
}

hess_tensor *hess__read_path(
    hess_context *ctx, const char *path, int as_param, hess__tensor_reader read, const char *fn)
{
    if (!ctx)
        return NULL;
    if (!path) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL path", fn);
        return NULL;
    }
    hess__src r;
    hess_tensor *t = NULL;
    if (hess__src_open(ctx, path, &r, fn) == HESS_OK)
        t = read(ctx, &r, path, as_param, fn);
    hess__src_close(&r);
    return t;
}

hess_tensor *hess__read_mem(hess_context *ctx,
                            const void *buf,
                            size_t len,
                            const char *name,
                            int as_param,
                            hess__tensor_reader read,
                            const char *fn)
{
    if (!ctx)
        return NULL;
    if (!buf || !name) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL buffer or name", fn);
        return NULL;
    }
    hess__src r = hess__src_mem(buf, len);
    return read(ctx, &r, name, as_param, fn);
}

int hess__src_getc(hess__src *r)
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
size_t hess__src_read(hess__src *r, void *buf, size_t n)
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
bool hess__src_has(hess__src *r, size_t n)
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

bool hess__vfault(hess__fault *p, size_t at, long line, const char *fmt, va_list ap)
{
    p->at = at;
    p->line = line;
    vsnprintf(p->why, sizeof p->why, fmt, ap);
    return false;
}

/* Sets the problem; returns false for use in return statements. */
bool hess__fault_at(hess__fault *p, size_t at, long line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hess__vfault(p, at, line, fmt, ap);
    va_end(ap);
    return false;
}

/* Records a reader's problem as HESS_ERR_IO in one line: the function, the
 * input, the byte offset (and line) and what is wrong; a failed read comes
 * first, as it causes what follows.  Nothing if an error is pending: a
 * failed allocation has said so. */
void hess__report(
    hess_context *ctx, const hess__src *r, const char *fn, const char *name, const hess__fault *p)
{
    if (ctx->status != HESS_OK)
        return;
    char pb[MSG_PATH + 1];
    name = msg_path(name, pb);
    if (r->err)
        hess__error(ctx, HESS_ERR_IO, "%s: %s: byte %zu: read error (%s)", fn, name, r->pos,
                    strerror(r->err));
    else if (p->line)
        hess__error(ctx, HESS_ERR_IO, "%s: %s: byte %zu (line %ld): %s", fn, name, p->at, p->line,
                    p->why);
    else
        hess__error(ctx, HESS_ERR_IO, "%s: %s: byte %zu: %s", fn, name, p->at, p->why);
}

hess_status hess__save_begin(hess_context *ctx, const char *path, const char *fn)
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
