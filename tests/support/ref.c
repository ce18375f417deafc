/*
 * ref.c -- the reference-format reader: header line, then `case`, `model` and
 * `tensor <name> <ndim> <dims...>` lines each followed by its values.
 */
#include "ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t len, const char *path, const char *what)
{
    if (err && len)
        snprintf(err, len, "%s: %s", path, what);
    return -1;
}

int ref_load(const char *path, ref_case *rc, char *err, size_t errlen)
{
    memset(rc, 0, sizeof *rc);
    FILE *f = fopen(path, "r");
    if (!f)
        return fail(err, errlen, path, "cannot open file");
    char line[512];
    if (!fgets(line, sizeof line, f) || strncmp(line, "# libhessian reference case v1", 30) != 0) {
        fclose(f);
        return fail(err, errlen, path, "not a libhessian reference file (bad header)");
    }
    size_t cap = 0;
    char kw[64];
    int rcode = 0;
    while (fscanf(f, "%63s", kw) == 1) {
        if (strcmp(kw, "case") == 0) {
            if (fscanf(f, "%127s", rc->name) != 1) {
                rcode = fail(err, errlen, path, "bad case line");
                break;
            }
        } else if (strcmp(kw, "model") == 0) {
            if (!fgets(rc->model, sizeof rc->model, f)) {
                rcode = fail(err, errlen, path, "bad model line");
                break;
            }
            rc->model[strcspn(rc->model, "\n")] = '\0';
        } else if (strcmp(kw, "tensor") == 0) {
            if (rc->n == cap) {
                cap = cap ? 2 * cap : 16;
                ref_tensor *nt = realloc(rc->t, cap * sizeof *nt);
                if (!nt) {
                    rcode = fail(err, errlen, path, "out of memory");
                    break;
                }
                rc->t = nt;
            }
            ref_tensor *t = &rc->t[rc->n];
            memset(t, 0, sizeof *t);
            if (fscanf(f, "%63s %d", t->name, &t->ndim) != 2 || t->ndim < 0 ||
                t->ndim > REF_MAX_DIMS) {
                rcode = fail(err, errlen, path, "bad tensor line");
                break;
            }
            t->numel = 1;
            int ok = 1;
            for (int i = 0; i < t->ndim && ok; i++) {
                long long d;
                ok = fscanf(f, "%lld", &d) == 1 && d >= 1 && d <= 100000000 &&
                     t->numel <= 100000000 / d;
                t->shape[i] = d;
                t->numel *= ok ? d : 1;
            }
            if (!ok) {
                rcode = fail(err, errlen, path, "bad tensor dimensions");
                break;
            }
            t->data = malloc((size_t)t->numel * sizeof(double));
            if (!t->data) {
                rcode = fail(err, errlen, path, "out of memory");
                break;
            }
            rc->n++;
            for (int64_t i = 0; i < t->numel && ok; i++)
                ok = fscanf(f, "%lf", &t->data[i]) == 1;
            if (!ok) {
                rcode = fail(err, errlen, path, "truncated or malformed values");
                break;
            }
        } else {
            rcode = fail(err, errlen, path, "unknown keyword");
            break;
        }
    }
    if (rcode == 0 && !feof(f))
        rcode = fail(err, errlen, path, "read error");
    if (rcode == 0 && rc->n == 0)
        rcode = fail(err, errlen, path, "no tensors");
    fclose(f);
    if (rcode)
        ref_free(rc);
    return rcode;
}

const ref_tensor *ref_find(const ref_case *rc, const char *name)
{
    for (size_t i = 0; i < rc->n; i++)
        if (strcmp(rc->t[i].name, name) == 0)
            return &rc->t[i];
    return NULL;
}

void ref_free(ref_case *rc)
{
    for (size_t i = 0; i < rc->n; i++)
        free(rc->t[i].data);
    free(rc->t);
    memset(rc, 0, sizeof *rc);
}
