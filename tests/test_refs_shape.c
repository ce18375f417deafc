/*
 * test_refs_shape.c -- the PyTorch reference cases (tests/data/ops/, made by
 * tests/data/make_op_refs.py in float64) of the shape and indexing ops and
 * the products: cat, stack, slice, index_select, gather, permute, reshape,
 * squeeze, unsqueeze, transpose, matmul, linear.
 *
 * Each row maps a case name to a C builder of its model line (and names the
 * line, which must match the file's).  For each case the test loads the file
 * with hess_load_ref ("param:" inputs become parameters), builds out, and
 * compares, each tensor to 1e-12 relative to its largest element:
 *   out; L = sum(out * w); grad:inK by hess_grad; hdiag:inK by
 *   hess_hessian_diag (and by the curvature backpropagation, forced, where
 *   it covers the graph); hvp:inK by hess_hvp with v:inK; hess by
 *   hess_hessian when the file has it.
 * test_refs_shape_every_case_claimed fails for a case file of these ops that
 * no row claims, and for a row whose file is missing.
 */
#define _POSIX_C_SOURCE 200809L /* opendir */
#include "check.h"

#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RTOL   1e-12
#define MAX_IN 8

typedef hess_tensor *(*ref_build)(hess_context *ctx, hess_tensor *const in[]);

typedef struct ref_row {
    const char *name;  /* the case, tests/data/ops/<name>.ref */
    const char *model; /* its model line, as the file has it */
    ref_build build;
} ref_row;

/* The ops whose cases this file covers: a case file <op>_*.ref or <op>.ref. */
static const char *const FAMILIES[] = {"cat",       "stack",     "slice",   "index_select",
                                       "gather",    "permute",   "reshape", "squeeze",
                                       "unsqueeze", "transpose", "matmul",  "linear"};

#define TS(...)   ((hess_tensor *const[]){__VA_ARGS__})
#define I64(...)  ((const int64_t[]){__VA_ARGS__})
#define INTS(...) ((const int[]){__VA_ARGS__})
#define B(name)   static hess_tensor *b_##name(hess_context *ctx, hess_tensor *const in[])
#define ROW(name, m)                                                                               \
    {                                                                                              \
#name, m, b_##name                                                                         \
    }

B(cat_axis0)
{
    return hess_cat(ctx, 2, TS(in[0], in[1]), 0);
}
B(cat_neg_axis)
{
    return hess_cat(ctx, 3, TS(in[0], in[1], in[2]), -1);
}
B(cat_one)
{
    return hess_cat(ctx, 1, TS(in[0]), 0);
}
B(cat_same_twice)
{
    return hess_cat(ctx, 2, TS(in[0], in[0]), 1);
}
B(stack_axis0)
{
    return hess_stack(ctx, 2, TS(in[0], in[1]), 0);
}
B(stack_axis1)
{
    return hess_stack(ctx, 3, TS(in[0], in[1], in[2]), 1);
}
B(stack_neg_axis)
{
    return hess_stack(ctx, 2, TS(in[0], in[1]), -1);
}
B(slice_basic)
{
    return hess_slice(ctx, in[0], 1, 1, 4, 1);
}
B(slice_negative)
{
    return hess_slice(ctx, in[0], -1, -4, -1, 1);
}
B(slice_out_of_range)
{
    return hess_slice(ctx, in[0], 1, -10, 100, 2);
}
B(slice_step)
{
    return hess_slice(ctx, in[0], 0, 0, 5, 2);
}
B(slice_step_past_end)
{
    return hess_slice(ctx, in[0], 0, 1, 7, 3);
}
B(index_select)
{
    return hess_index_select(ctx, in[0], 0, 3, I64(2, 0, 2));
}
B(index_select_neg_axis)
{
    return hess_index_select(ctx, in[0], -1, 4, I64(1, 1, 3, 0));
}
B(gather_axis0)
{
    return hess_gather(ctx, in[0], 0, in[1]);
}
B(gather_axis1)
{
    return hess_gather(ctx, in[0], 1, in[1]);
}
B(gather_smaller_index)
{
    return hess_gather(ctx, in[0], -1, in[1]);
}
B(permute)
{
    return hess_permute(ctx, in[0], INTS(2, 0, 1));
}
B(permute_4d)
{
    return hess_permute(ctx, in[0], INTS(3, 1, 0, 2));
}
B(reshape)
{
    return hess_reshape(ctx, in[0], 2, I64(3, 2));
}
B(reshape_rank)
{
    return hess_reshape(ctx, in[0], 3, I64(2, 1, 6));
}
B(reshape_infer_first)
{
    return hess_reshape(ctx, in[0], 2, I64(-1, 4));
}
B(reshape_infer_middle)
{
    return hess_reshape(ctx, in[0], 3, I64(2, -1, 3));
}
B(reshape_infer_flat)
{
    return hess_reshape(ctx, in[0], 1, I64(-1));
}
B(squeeze)
{
    return hess_squeeze(ctx, in[0], 1);
}
B(squeeze_neg)
{
    return hess_squeeze(ctx, in[0], -1);
}
B(unsqueeze_front)
{
    return hess_unsqueeze(ctx, in[0], 0);
}
B(unsqueeze_middle)
{
    return hess_unsqueeze(ctx, in[0], 1);
}
B(unsqueeze_neg)
{
    return hess_unsqueeze(ctx, in[0], -1);
}
B(transpose)
{
    return hess_transpose(ctx, in[0]);
}
B(matmul)
{
    return hess_matmul(ctx, in[0], in[1]);
}
B(linear)
{
    return hess_linear(ctx, in[0], in[1], in[2]);
}
B(linear_no_bias)
{
    return hess_linear(ctx, in[0], in[1], NULL);
}

#define MATMUL(name)                                                                               \
    {                                                                                              \
#name, "hess_matmul(ctx, in0, in1)", b_matmul                                              \
    }

static ref_row ROWS[] = {
    ROW(cat_axis0, "hess_cat(ctx, 2, [in0, in1], 0)"),
    ROW(cat_neg_axis, "hess_cat(ctx, 3, [in0, in1, in2], -1)"),
    ROW(cat_one, "hess_cat(ctx, 1, [in0], 0)"),
    ROW(cat_same_twice, "hess_cat(ctx, 2, [in0, in0], 1)"),
    ROW(stack_axis0, "hess_stack(ctx, 2, [in0, in1], 0)"),
    ROW(stack_axis1, "hess_stack(ctx, 3, [in0, in1, in2], 1)"),
    ROW(stack_neg_axis, "hess_stack(ctx, 2, [in0, in1], -1)"),
    ROW(slice_basic, "hess_slice(ctx, in0, 1, 1, 4, 1)"),
    ROW(slice_negative, "hess_slice(ctx, in0, -1, -4, -1, 1)"),
    ROW(slice_out_of_range, "hess_slice(ctx, in0, 1, -10, 100, 2)"),
    ROW(slice_step, "hess_slice(ctx, in0, 0, 0, 5, 2)"),
    ROW(slice_step_past_end, "hess_slice(ctx, in0, 0, 1, 7, 3)"),
    ROW(index_select, "hess_index_select(ctx, in0, 0, 3, [2, 0, 2])"),
    ROW(index_select_neg_axis, "hess_index_select(ctx, in0, -1, 4, [1, 1, 3, 0])"),
    ROW(gather_axis0, "hess_gather(ctx, in0, 0, in1)"),
    ROW(gather_axis1, "hess_gather(ctx, in0, 1, in1)"),
    ROW(gather_smaller_index, "hess_gather(ctx, in0, -1, in1)"),
    ROW(permute, "hess_permute(ctx, in0, [2, 0, 1])"),
    ROW(permute_4d, "hess_permute(ctx, in0, [3, 1, 0, 2])"),
    ROW(reshape, "hess_reshape(ctx, in0, 2, [3, 2])"),
    ROW(reshape_rank, "hess_reshape(ctx, in0, 3, [2, 1, 6])"),
    ROW(reshape_infer_first, "hess_reshape(ctx, in0, 2, [-1, 4])"),
    ROW(reshape_infer_middle, "hess_reshape(ctx, in0, 3, [2, -1, 3])"),
    ROW(reshape_infer_flat, "hess_reshape(ctx, in0, 1, [-1])"),
    ROW(squeeze, "hess_squeeze(ctx, in0, 1)"),
    ROW(squeeze_neg, "hess_squeeze(ctx, in0, -1)"),
    ROW(unsqueeze_front, "hess_unsqueeze(ctx, in0, 0)"),
    ROW(unsqueeze_middle, "hess_unsqueeze(ctx, in0, 1)"),
    ROW(unsqueeze_neg, "hess_unsqueeze(ctx, in0, -1)"),
    {"transpose", "hess_transpose(ctx, in0)", b_transpose},
    {"transpose_batched", "hess_transpose(ctx, in0)", b_transpose},
    MATMUL(matmul_mm),
    MATMUL(matmul_mv),
    MATMUL(matmul_vm),
    MATMUL(matmul_dot),
    MATMUL(matmul_batched),
    MATMUL(matmul_batched_mat),
    MATMUL(matmul_mat_batched),
    MATMUL(matmul_vec_batched),
    MATMUL(matmul_batched_vec),
    MATMUL(matmul_batched_bcast),
    MATMUL(matmul_const_left),
    {"linear", "hess_linear(ctx, in0, in1, in2)", b_linear},
    {"linear_all_params", "hess_linear(ctx, in0, in1, in2)", b_linear},
    {"linear_vec", "hess_linear(ctx, in0, in1, in2)", b_linear},
    ROW(linear_no_bias, "hess_linear(ctx, in0, in1, NULL)"),
};
#define N_ROWS (sizeof ROWS / sizeof ROWS[0])

/* ------------------------------------------------------------------------ */
/* Comparing                                                                */
/* ------------------------------------------------------------------------ */

static const char *case_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/ops/%s.ref", HESS_TEST_DATA_DIR, name);
    return buf;
}

static hess_tensor *find(const hess_ref_file *rf, const char *fmt, int k)
{
    char name[64];
    snprintf(name, sizeof name, fmt, k);
    return hess_ref_find(rf, name);
}

/* Fails unless got[0..n) matches want to RTOL of want's largest element
 * (exactly, where want is all zeros). */
static void
compare(const char *cs, const char *what, const double *got, const double *want, size_t n)
{
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
    for (size_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= RTOL * scale))
            fail_msg("%s: %s[%zu] = %.17g, PyTorch %.17g (scale %.3g)", cs, what, i, got[i],
                     want[i], scale);
}

static void
compare_tensor(const char *cs, const char *what, const hess_tensor *got, const hess_tensor *want)
{
    if (!want)
        fail_msg("%s: the file has no %s", cs, what);
    const int nd = hess_tensor_ndim(want);
    if (hess_tensor_ndim(got) != nd ||
        memcmp(hess_tensor_shape(got), hess_tensor_shape(want), (size_t)nd * sizeof(int64_t)))
        fail_msg("%s: %s has rank %d, PyTorch's rank %d (or another shape)", cs, what,
                 hess_tensor_ndim(got), nd);
    compare(cs, what, hess_tensor_data(got), hess_tensor_data(want),
            (size_t)hess_tensor_numel(want));
}

/* One case against its file. */
static void run_case(const ref_row *row)
{
    hess_context *ctx = test_context();
    hess_ref_file rf;
    const char *cs = row->name;
    assert_ok(ctx, hess_load_ref(ctx, case_path(cs), "param:", &rf));
    if (strcmp(rf.model, row->model) != 0)
        fail_msg("%s: the file's model is \"%s\", the row builds \"%s\"", cs, rf.model, row->model);

    hess_tensor *in[MAX_IN] = {NULL}, *params[MAX_IN];
    int ids[MAX_IN];
    size_t np = 0, N = 0;
    for (int k = 0; k < MAX_IN; k++) {
        hess_tensor *p = find(&rf, "param:in%d", k);
        in[k] = p ? p : find(&rf, "input:in%d", k);
        if (p) {
            ids[np] = k;
            params[np++] = p;
            N += (size_t)hess_tensor_numel(p);
        }
    }
    assert_true(np >= 1);

    hess_tensor *out = row->build(ctx, in);
    if (!out)
        fail_msg("%s: building failed: %s", cs, hess_context_errmsg(ctx));
    compare_tensor(cs, "out", out, hess_ref_find(&rf, "out"));
    hess_tensor *L = hess_sum(ctx, hess_mul(ctx, out, hess_ref_find(&rf, "w")));
    assert_ok(ctx, hess_context_status(ctx));
    compare_tensor(cs, "L", L, hess_ref_find(&rf, "L"));

    hess_tensor *g[MAX_IN];
    assert_ok(ctx, hess_grad(ctx, L, np, params, g, 0));
    double *d = test_malloc(N * sizeof *d), *v = test_malloc(N * sizeof *v);
    double *hv = test_malloc(N * sizeof *hv), *H = test_malloc(N * N * sizeof *H);
    char what[64];
    for (size_t i = 0; i < np; i++) {
        snprintf(what, sizeof what, "grad:in%d", ids[i]);
        compare_tensor(cs, what, g[i], find(&rf, "grad:in%d", ids[i]));
    }

    /* the diagonal, the H v and the Hessian, over the flattened parameters */
    int used = -1;
    hess_hessian_opts o = {0};
    o.method_used = &used;
    for (int method = 0; method < 2; method++) {
        o.method = method ? HESS_DIAG_BACKPROP : HESS_DIAG_AUTO;
        const hess_status st = hess_hessian_diag_ex(ctx, L, np, params, &o, d);
        if (method && st == HESS_ERR_ARG) { /* not covered: the rows took it under AUTO */
            hess_context_clear_error(ctx);
            continue;
        }
        assert_ok(ctx, st);
        for (size_t i = 0, off = 0; i < np; off += (size_t)hess_tensor_numel(params[i]), i++) {
            snprintf(what, sizeof what, "hdiag:in%d%s", ids[i], method ? " (backprop)" : "");
            const hess_tensor *w = find(&rf, "hdiag:in%d", ids[i]);
            assert_non_null(w);
            compare(cs, what, d + off, hess_tensor_data(w), (size_t)hess_tensor_numel(w));
        }
    }
    for (size_t i = 0, off = 0; i < np; off += (size_t)hess_tensor_numel(params[i]), i++) {
        const hess_tensor *vi = find(&rf, "v:in%d", ids[i]);
        assert_non_null(vi);
        assert_int_equal(hess_tensor_numel(vi), hess_tensor_numel(params[i]));
        memcpy(v + off, hess_tensor_data(vi), (size_t)hess_tensor_numel(vi) * sizeof *v);
    }
    assert_ok(ctx, hess_hvp(ctx, L, np, params, v, hv));
    for (size_t i = 0, off = 0; i < np; off += (size_t)hess_tensor_numel(params[i]), i++) {
        snprintf(what, sizeof what, "hvp:in%d", ids[i]);
        const hess_tensor *w = find(&rf, "hvp:in%d", ids[i]);
        assert_non_null(w);
        compare(cs, what, hv + off, hess_tensor_data(w), (size_t)hess_tensor_numel(w));
    }
    const hess_tensor *Hw = hess_ref_find(&rf, "hess");
    if (Hw) {
        assert_int_equal(hess_tensor_numel(Hw), (int64_t)(N * N));
        assert_ok(ctx, hess_hessian(ctx, L, np, params, H));
        compare(cs, "hess", H, hess_tensor_data(Hw), N * N);
    }
    test_free(d), test_free(v), test_free(hv), test_free(H);
    hess_context_destroy(ctx);
}

static void test_refs_shape_case(void **state)
{
    run_case(*state);
}

/* Whether the case file name (a stem) belongs to one of FAMILIES. */
static bool ours(const char *stem)
{
    for (size_t f = 0; f < sizeof FAMILIES / sizeof FAMILIES[0]; f++) {
        const size_t n = strlen(FAMILIES[f]);
        if (strncmp(stem, FAMILIES[f], n) == 0 && (stem[n] == '\0' || stem[n] == '_'))
            return true;
    }
    return false;
}

/* Every case file of these ops has a row, and every row a file. */
static void test_refs_shape_every_case_claimed(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ops", HESS_TEST_DATA_DIR);
    DIR *dp = opendir(dir);
    if (!dp)
        fail_msg("cannot open %s", dir);
    char missing[2048] = "";
    size_t seen = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        const size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".ref") != 0)
            continue;
        char stem[256];
        snprintf(stem, sizeof stem, "%.*s", (int)(len - 4), e->d_name);
        if (!ours(stem))
            continue;
        seen++;
        bool found = false;
        for (size_t i = 0; i < N_ROWS && !found; i++)
            found = strcmp(ROWS[i].name, stem) == 0;
        if (!found)
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " %s", stem);
    }
    closedir(dp);
    if (missing[0])
        fail_msg("case files of the shape and indexing ops that no row claims:%s", missing);
    for (size_t i = 0; i < N_ROWS; i++) {
        assert_true(ours(ROWS[i].name));
        FILE *fp = fopen(case_path(ROWS[i].name), "r");
        if (!fp)
            fail_msg("row %s has no file %s", ROWS[i].name, case_path(ROWS[i].name));
        fclose(fp);
    }
    assert_int_equal(seen, N_ROWS);
}

int main(void)
{
    struct CMUnitTest tests[N_ROWS + 1];
    tests[0] = (struct CMUnitTest)cmocka_unit_test(test_refs_shape_every_case_claimed);
    char names[N_ROWS][80];
    for (size_t i = 0; i < N_ROWS; i++) {
        snprintf(names[i], sizeof names[i], "test_refs_shape_%s", ROWS[i].name);
        tests[i + 1] = (struct CMUnitTest){names[i], test_refs_shape_case, NULL, NULL, &ROWS[i]};
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
