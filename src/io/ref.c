/*
 * ref.c -- the plain-text reference format of tests/data/README.md: tensors
 * with names, numbers in the "C" notation whatever the locale, each value
 * read back bit for bit (NaN payloads and signed zeros included).
 */
#include "io.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
/* Reference format: writing                                                */
/* ------------------------------------------------------------------------ */

#define REF_HEADER    "# libhessian reference case v1"
#define REF_MAX_NAME  63  /* as tests/support/ref.c reads them */
#define REF_MAX_CASE  127 /* idem */
#define REF_MAX_MODEL 500
#define REF_MAX_TOKEN 128
_Static_assert(REF_MAX_TOKEN - 1 == REF_MAX_CASE, "a case name is any token");

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

/* The whole reference file of arg (a checked hess_ref_file).  A failed write
 * sets the stream's error flag, which is what tells; the tensors stop at the
 * first, the few first lines (at most 671 bytes) need no such care. */
static bool put_ref(FILE *f, const void *arg)
{
    const hess_ref_file *file = arg;
    fputs(REF_HEADER "\n", f);
    if (file->case_name && file->case_name[0])
        fprintf(f, "case %s\n", file->case_name);
    if (file->model && file->model[0])
        fprintf(f, "model %s\n", file->model);
    bool ok = true;
    for (size_t i = 0; i < file->n && ok; i++)
        ok = write_ref_tensor(f, file->tensors[i].name, file->tensors[i].tensor);
    return !ferror(f);
}

hess_status hess_save_ref(hess_context *ctx, const char *path, const hess_ref_file *file)
{
    static const char fn[] = "hess_save_ref";
    hess_status st = hess__save_begin(ctx, path, fn);
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
static int next_token(hess__src *r, char tok[REF_MAX_TOKEN])
{
    int c;
    while ((c = hess__src_getc(r)) != EOF && is_blank(c))
        ;
    r->tok_at = c == EOF ? r->pos : r->pos - 1;
    r->tok_line = c == EOF ? r->line + r->nl : r->line;
    if (c == EOF)
        return 0;
    size_t n = 0;
    for (; c != EOF && !is_blank(c); c = hess__src_getc(r)) {
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
static bool rest_of_line(hess__src *r, char *buf, size_t max)
{
    int c;
    while ((c = hess__src_getc(r)) == ' ' || c == '\t')
        ;
    const size_t start = c == EOF ? r->pos : r->pos - 1;
    r->tok_line = r->line;
    size_t n = 0;
    for (; c != EOF && c != '\n' && n <= max; c = hess__src_getc(r))
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
    hess__src *in;
    const char *prefix; /* param prefix or NULL */
    hess_named_tensor *items;
    size_t n, cap;
    hess__fault problem;
} ref_reader;

/* Sets the problem, found at the last token; returns false. */
HESS_PRINTF(2, 3) static bool bad(ref_reader *rr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hess__vfault(&rr->problem, rr->in->tok_at, rr->in->tok_line, fmt, ap);
    va_end(ap);
    return false;
}

/* The first line: exactly REF_HEADER, then "\n", "\r\n" or the end of the
 * input.  "v10", "v1.5", "v1x" or any text after "v1" is a format this reader
 * does not know. */
static bool ref_header(ref_reader *rr)
{
    hess__src *r = rr->in;
    size_t i = 0;
    int c = hess__src_getc(r);
    for (; i < sizeof REF_HEADER - 1 && c == (unsigned char)REF_HEADER[i]; i++)
        c = hess__src_getc(r);
    if (i == sizeof REF_HEADER - 1 && c == '\r')
        c = hess__src_getc(r);
    if (i == sizeof REF_HEADER - 1 && (c == '\n' || c == EOF))
        return true;
    return hess__fault_at(&rr->problem, c == EOF ? r->pos : r->pos - 1, 1,
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
    hess__src *r = rr->in;
    if (!fits || !hess__src_has(r, 2 * *numel - 1))
        return hess__fault_at(&rr->problem, r->pos, r->line + r->nl,
                              "tensor '%s': the shape needs more values than the file can hold",
                              name);
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
    int ndim = 0;
    int64_t shape[HESS_MAX_DIMS];
    size_t numel = 0;
    if (!read_shape_line(rr, name, &ndim, shape, &numel))
        return false;
    const bool param = rr->prefix && strncmp(name, rr->prefix, strlen(rr->prefix)) == 0;
    hess_tensor *t = hess__leaf(rr->ctx, ndim, shape, param ? HESS_T_PARAM : 0u, fn);
    if (!t)
        return false;
    for (size_t i = 0; i < numel; i++) {
        const int got = next_token(rr->in, tok);
        if (got != 1 || !parse_value(tok, &t->data[i]))
            return bad(rr, "tensor '%s': %s after %zu of %zu values", name,
                       got == 1 ? "malformed value" : token_problem(got), i, numel);
    }
    hess__leaf_scan(t);
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
            if (next_token(rr->in, tok) != 1) /* a token has at most REF_MAX_CASE bytes */
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
                            hess__src *in,
                            const char *name,
                            const char *param_prefix,
                            hess_ref_file *out,
                            const char *fn)
{
    const hess_mark mk = hess__mark(ctx);
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
    hess__report(ctx, in, fn, name, &rr.problem);
    hess__rewind(ctx, &mk);
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
    hess__src in;
    if ((st = hess__src_open(ctx, path, &in, fn)) == HESS_OK)
        st = load_ref(ctx, &in, path, param_prefix, out, fn);
    hess__src_close(&in);
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
    hess__src in = hess__src_mem(buf, len);
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
