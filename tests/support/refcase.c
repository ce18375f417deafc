/*
 * refcase.c -- the reference-case runner and the claims check of refcase.h.
 */
#define _POSIX_C_SOURCE 200809L /* opendir */
#include "refcase.h"
#include "check.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Comparing                                                                */
/* ------------------------------------------------------------------------ */

/* got[n] against the reference tensor want (shape given by the caller):
 * within REF_RTOL of want's largest magnitude (exactly where want is all
 * zeros). */
static void compare(const char *cs, const char *what, const double *got, const hess_tensor *want)
{
    const int64_t n = hess_tensor_numel(want);
    const double *w = hess_tensor_data(want);
    double scale = 0.0;
    for (int64_t i = 0; i < n; i++)
        scale = fabs(w[i]) > scale ? fabs(w[i]) : scale;
    for (int64_t i = 0; i < n; i++) {
        const double err = fabs(got[i] - w[i]);
        if (!(err <= REF_RTOL * scale) && !(got[i] == w[i]))
            fail_msg("%s: %s[%lld] = %.17g, PyTorch %.17g (error %.3g, largest %.3g)", cs, what,
                     (long long)i, got[i], w[i], err, scale);
    }
}

static void
compare_tensor(const char *cs, const char *what, const hess_tensor *got, const hess_tensor *want)
{
    if (!want)
        fail_msg("%s: the file has no tensor %s", cs, what);
    if (hess_tensor_ndim(got) != hess_tensor_ndim(want) ||
        memcmp(hess_tensor_shape(got), hess_tensor_shape(want),
               (size_t)hess_tensor_ndim(got) * sizeof(int64_t)) != 0)
        fail_msg("%s: %s has rank %d and %lld elements, PyTorch rank %d and %lld", cs, what,
                 hess_tensor_ndim(got), (long long)hess_tensor_numel(got), hess_tensor_ndim(want),
                 (long long)hess_tensor_numel(want));
    compare(cs, what, hess_tensor_data(got), want);
}

/* ------------------------------------------------------------------------ */
/* One case                                                                 */
/* ------------------------------------------------------------------------ */

static hess_tensor *named(const hess_ref_file *f, const char *prefix, int k)
{
    char nm[64];
    snprintf(nm, sizeof nm, "%s%d", prefix, k);
    return hess_ref_find(f, nm);
}

/* The per-parameter tensors "<what>:inK", each of its parameter's size. */
static const hess_tensor *
split_part(const char *cs, const hess_ref_file *f, const char *what, int k, const hess_tensor *p)
{
    char nm[64];
    snprintf(nm, sizeof nm, "%s:in%d", what, k);
    const hess_tensor *t = hess_ref_find(f, nm);
    if (!t)
        fail_msg("%s: the file has no tensor %s", cs, nm);
    if (hess_tensor_numel(t) != hess_tensor_numel(p))
        fail_msg("%s: %s has %lld elements, its parameter %lld", cs, nm,
                 (long long)hess_tensor_numel(t), (long long)hess_tensor_numel(p));
    return t;
}

/* flat[N] in parameter order against the tensors "<what>:inK"; how in
 * messages, after the tensor's name, when not NULL. */
static void compare_split(const char *cs,
                          const hess_ref_file *f,
                          const char *what,
                          const int *idx,
                          hess_tensor *const params[],
                          size_t np,
                          const double *flat,
                          const char *how)
{
    size_t off = 0;
    for (size_t i = 0; i < np; i++) {
        const hess_tensor *want = split_part(cs, f, what, idx[i], params[i]);
        char label[96];
        snprintf(label, sizeof label, "%s:in%d%s%s", what, idx[i], how ? " " : "", how ? how : "");
        compare(cs, label, flat + off, want);
        off += (size_t)hess_tensor_numel(want);
    }
}

/* The diagonal by the default method, by the rows when asked, and by the
 * curvature backpropagation (where it covers the graph, unless the family
 * says it covers every case). */
static void check_diag(const ref_family *fam,
                       const char *cs,
                       hess_context *ctx,
                       const hess_ref_file *f,
                       hess_tensor *L,
                       const int *idx,
                       hess_tensor *const params[],
                       size_t np,
                       double *d)
{
    assert_ok(ctx, hess_hessian_diag(ctx, L, np, params, d));
    compare_split(cs, f, "hdiag", idx, params, np, d, NULL);
    hess_hessian_opts o = {0};
    if (fam->checks & REF_DIAG_ROWS) {
        o.method = HESS_DIAG_ROWS;
        assert_ok(ctx, hess_hessian_diag_ex(ctx, L, np, params, &o, d));
        compare_split(cs, f, "hdiag", idx, params, np, d, "(rows)");
    }
    o.method = HESS_DIAG_BACKPROP;
    const hess_status st = hess_hessian_diag_ex(ctx, L, np, params, &o, d);
    if (st != HESS_OK && !(fam->checks & REF_DIAG_BACKPROP_ALL)) {
        assert_int_equal(st, HESS_ERR_ARG);
        assert_non_null(strstr(hess_context_errmsg(ctx), "does not cover"));
        print_message("%s: the curvature backpropagation does not cover it: %s\n", cs,
                      hess_context_errmsg(ctx));
        hess_context_clear_error(ctx);
        return;
    }
    assert_ok(ctx, st);
    compare_split(cs, f, "hdiag", idx, params, np, d, "(backprop)");
}

void ref_run_case(const ref_family *fam, const ref_row *row)
{
    const char *cs = row->name;
    hess_context *ctx = test_context();
    char file[300];
    snprintf(file, sizeof file, "ops/%s.ref", cs);
    hess_ref_file f;
    assert_ok(ctx, hess_load_ref(ctx, data_path(file), "param:", &f));
    if (strcmp(f.model, row->model) != 0)
        fail_msg("%s: the file's model is \"%s\", the row builds \"%s\"", cs, f.model, row->model);

    hess_tensor *in[REF_MAXIN] = {NULL}, *params[REF_MAXIN];
    int idx[REF_MAXIN];
    size_t np = 0, N = 0;
    for (int k = 0; k < REF_MAXIN; k++) {
        hess_tensor *p = named(&f, "param:in", k), *c = named(&f, "input:in", k);
        in[k] = p ? p : c;
        if (p) {
            idx[np] = k;
            params[np++] = p;
            N += (size_t)hess_tensor_numel(p);
        }
    }
    assert_true(np > 0);

    hess_tensor *out = row->build(ctx, in);
    if (!out)
        fail_msg("%s: the builder failed: %s", cs, hess_context_errmsg(ctx));
    compare_tensor(cs, "out", out, hess_ref_find(&f, "out"));
    hess_tensor *L = hess_sum(ctx, hess_mul(ctx, out, hess_ref_find(&f, "w")));
    assert_ok(ctx, hess_context_status(ctx));
    compare_tensor(cs, "L", L, hess_ref_find(&f, "L"));

    hess_tensor *g[REF_MAXIN];
    assert_ok(ctx, hess_grad(ctx, L, np, params, g, 0));
    for (size_t i = 0; i < np; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "grad:in%d", idx[i]);
        compare_tensor(cs, nm, g[i], hess_ref_find(&f, nm));
    }

    double *d = test_malloc(N * sizeof *d), *v = test_malloc(N * sizeof *v);
    double *hv = test_malloc(N * sizeof *hv);
    check_diag(fam, cs, ctx, &f, L, idx, params, np, d);

    size_t off = 0;
    for (size_t i = 0; i < np; i++) {
        const hess_tensor *vi = split_part(cs, &f, "v", idx[i], params[i]);
        memcpy(v + off, hess_tensor_data(vi), (size_t)hess_tensor_numel(vi) * sizeof *v);
        off += (size_t)hess_tensor_numel(vi);
    }
    assert_ok(ctx, hess_hvp(ctx, L, np, params, v, hv));
    compare_split(cs, &f, "hvp", idx, params, np, hv, NULL);
    if (fam->checks & REF_HVP_FWD) {
        assert_ok(ctx, hess_hvp_fwd(ctx, L, np, params, v, hv));
        compare_split(cs, &f, "hvp", idx, params, np, hv, "(forward over reverse)");
    }

    const hess_tensor *H = hess_ref_find(&f, "hess");
    if (H) {
        assert_int_equal(hess_tensor_numel(H), (int64_t)(N * N));
        double *h = test_malloc(N * N * sizeof *h);
        assert_ok(ctx, hess_hessian(ctx, L, np, params, h));
        compare(cs, "hess", h, H);
        test_free(h);
    }
    test_free(d), test_free(v), test_free(hv);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Every file of the family has a row                                       */
/* ------------------------------------------------------------------------ */

bool ref_family_has(const ref_family *fam, const char *stem)
{
    for (size_t i = 0; i < fam->n_exact; i++)
        if (strcmp(stem, fam->exact[i]) == 0)
            return true;
    for (size_t i = 0; i < fam->n_prefixes; i++) {
        const size_t n = strlen(fam->prefixes[i]);
        if (strncmp(stem, fam->prefixes[i], n) == 0 && (stem[n] == '\0' || stem[n] == '_'))
            return true;
    }
    return false;
}

void ref_check_claimed(const ref_family *fam, const ref_row *rows, size_t n_rows)
{
    char dirname[1024];
    snprintf(dirname, sizeof dirname, "%s", data_path("ops"));
    DIR *dir = opendir(dirname);
    if (!dir)
        fail_msg("cannot open %s", dirname);
    char missing[2048] = "";
    size_t found = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        const size_t n = strlen(e->d_name);
        if (n <= 4 || strcmp(e->d_name + n - 4, ".ref") != 0)
            continue;
        char stem[256];
        snprintf(stem, sizeof stem, "%.*s", (int)(n - 4), e->d_name);
        if (!ref_family_has(fam, stem))
            continue;
        found++;
        bool claimed = false;
        for (size_t i = 0; i < n_rows && !claimed; i++)
            claimed = strcmp(rows[i].name, stem) == 0;
        if (!claimed)
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " %s", stem);
    }
    closedir(dir);
    if (missing[0])
        fail_msg("case files of %s that no row claims:%s", fam->ops, missing);
    /* and every row is of the family and has its file (its own test would
     * fail to load it too) */
    for (size_t i = 0; i < n_rows; i++) {
        if (!ref_family_has(fam, rows[i].name))
            fail_msg("row %s is not a case of %s", rows[i].name, fam->ops);
        char file[300];
        snprintf(file, sizeof file, "ops/%s.ref", rows[i].name);
        FILE *fp = fopen(data_path(file), "r");
        if (!fp)
            fail_msg("row %s has no file %s", rows[i].name, data_path(file));
        fclose(fp);
    }
    assert_int_equal(found, n_rows);
}
