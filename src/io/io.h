/*
 * io.h -- the readers' and writers' layer: the atomic save every writer goes
 * through, and the input every reader parses (a seekable file where it lies,
 * anything else read whole into memory first), with the one-line message of
 * a reader's problem.  Above the core only.
 */
#ifndef HESS_IO_H
#define HESS_IO_H

#include "../core/core.h"

#include <stdio.h>

_Static_assert(sizeof(double) == 8, "the file formats store IEEE 754 binary64");

/* Writes a whole file through write(f, arg), which returns false when it
 * fails (a stream error counts too), and puts it in place of path only once
 * complete (file.c says how).  Every save function goes through it. */
HESS_INTERNAL hess_status hess__save_atomic(hess_context *ctx,
                                            const char *path,
                                            const char *fn,
                                            bool (*write)(FILE *f, const void *arg),
                                            const void *arg);
/* What every save checks first: the context (hess__enter) and a path. */
HESS_INTERNAL hess_status hess__save_begin(hess_context *ctx, const char *path, const char *fn);

/* The bytes a reader parses. */
typedef struct hess__src {
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
} hess__src;

/* Input from memory (the fuzzers' entry points), or from the file at path:
 * HESS_OK, or HESS_ERR_IO / HESS_ERR_NOMEM recorded.  Close every input. */
HESS_INTERNAL hess__src hess__src_mem(const void *buf, size_t len);
HESS_INTERNAL hess_status hess__src_open(hess_context *ctx,
                                         const char *path,
                                         hess__src *r,
                                         const char *fn);
HESS_INTERNAL void hess__src_close(hess__src *r);
/* The next byte (EOF at the end or on a read error, kept in r->err); up to n
 * bytes into buf; whether n more bytes are there (without consuming them). */
HESS_INTERNAL int hess__src_getc(hess__src *r);
HESS_INTERNAL size_t hess__src_read(hess__src *r, void *buf, size_t n);
HESS_INTERNAL bool hess__src_has(hess__src *r, size_t n);

/* Where a reader found a problem, and what it is. */
typedef struct hess__fault {
    size_t at;     /* byte offset in the input */
    long line;     /* its line in a text format, else 0 */
    char why[200]; /* what is wrong */
} hess__fault;
/* Sets the problem; returns false for use in return statements. */
HESS_INTERNAL bool hess__fault_at(hess__fault *p, size_t at, long line, const char *fmt, ...)
    HESS_PRINTF(4, 5);
HESS_INTERNAL bool hess__vfault(hess__fault *p, size_t at, long line, const char *fmt, va_list ap)
    HESS_PRINTF(4, 0);
/* Records a reader's problem as HESS_ERR_IO in one line: the function, the
 * input, the byte offset (and line) and what is wrong. */
HESS_INTERNAL void hess__report(
    hess_context *ctx, const hess__src *r, const char *fn, const char *name, const hess__fault *p);

/* A reader of one tensor: parses r (named name in messages) into a tensor,
 * or records the problem and leaves nothing in the context. */
typedef hess_tensor *(*hess__tensor_reader)(
    hess_context *ctx, hess__src *r, const char *name, int as_param, const char *fn);
/* The public entry points of such a reader, from a path or from memory: the
 * argument checks, the input opened and closed. */
HESS_INTERNAL hess_tensor *hess__read_path(
    hess_context *ctx, const char *path, int as_param, hess__tensor_reader read, const char *fn);
HESS_INTERNAL hess_tensor *hess__read_mem(hess_context *ctx,
                                          const void *buf,
                                          size_t len,
                                          const char *name,
                                          int as_param,
                                          hess__tensor_reader read,
                                          const char *fn);

/* Entry points for the fuzzers (tests/fuzz) and tests: parse a whole file
 * image held in memory; `name` stands for the path in messages.  Same results
 * and statuses as hess_load_npy(), hess_load_idx() and hess_load_ref(). */
HESS_INTERNAL hess_tensor *
hess__npy_load_mem(hess_context *ctx, const void *buf, size_t len, const char *name, int as_param);
HESS_INTERNAL hess_tensor *
hess__idx_load_mem(hess_context *ctx, const void *buf, size_t len, const char *name, int as_param);
HESS_INTERNAL hess_status hess__ref_load_mem(hess_context *ctx,
                                             const void *buf,
                                             size_t len,
                                             const char *name,
                                             const char *param_prefix,
                                             hess_ref_file *out);

#endif /* HESS_IO_H */
