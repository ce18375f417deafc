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
 *
 * Beyond the cases, tests with closed forms written out here: two quadratic
 * forms, one of selections (slice, gather, index_select, stack, cat of the
 * same tensor twice) and one of products (every transpose pair, the vector,
 * outer and batched forms), whose exact Hessians every second-order function
 * must give -- hess_hessian_ex in sweeps of 1 to N rows, hess_hvp_batch,
 * hess_jacobian and hess_jvp of the gradient, the diagonal by each method --
 * so that the adjoints (slice_scatter, index_add, scatter_add) and their own
 * rules run batched and in forward mode; the records' shape rules through
 * the generic builder (what the fuzzer and the rules call), each refusal by
 * its message; gather with a changed, computed or doubly used index leaf,
 * and an index's missing derivative in every mode; views, steps, negative
 * axes; and every builder and pass of these ops out of memory at each
 * allocation (a byte limit swept in steps of 8).
 */
#include "check.h"
#include "refcase.h"
#include "hess_internal.h" /* the op records through the generic builder */

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static const ref_family FAMILY = {"the shape and indexing ops", REF_LIST(FAMILIES), NULL, 0, 0};

/* ------------------------------------------------------------------------ */
/* The cases (ref_run_case, refcase.h), and every file of these ops has a   */
/* row                                                                      */
/* ------------------------------------------------------------------------ */

static void test_refs_shape_case(void **state)
{
    ref_run_case(&FAMILY, *state);
}

static void test_refs_shape_every_case_claimed(void **state)
{
    (void)state;
    ref_check_claimed(&FAMILY, ROWS, N_ROWS);
}

/* ------------------------------------------------------------------------ */
/* Beyond the reference cases: helpers                                      */
/* ------------------------------------------------------------------------ */

#define XTOL 1e-13

/* The context holds status st and a message that starts with fn and holds
 * each word given (NULL ends); the error is cleared afterwards. */
static void expect_error(hess_context *ctx, hess_status st, const char *fn, ...)
{
    const char *msg = hess_context_errmsg(ctx);
    if (hess_context_status(ctx) != st)
        fail_msg("status %s, expected %s (message \"%s\")",
                 hess_status_str(hess_context_status(ctx)), hess_status_str(st), msg);
    if (strncmp(msg, fn, strlen(fn)) != 0)
        fail_msg("message \"%s\" does not start with %s", msg, fn);
    va_list ap;
    va_start(ap, fn);
    for (const char *w; (w = va_arg(ap, const char *));)
        if (!strstr(msg, w))
            fail_msg("message \"%s\" lacks \"%s\"", msg, w);
    va_end(ap);
    hess_context_clear_error(ctx);
}

/* The same message exactly. */
static void expect_message(hess_context *ctx, hess_status st, const char *want)
{
    assert_int_equal(hess_context_status(ctx), st);
    assert_string_equal(hess_context_errmsg(ctx), want);
    hess_context_clear_error(ctx);
}

static void expect_values(const hess_tensor *t, int nd, const int64_t *shape, const double *want)
{
    assert_non_null(t);
    assert_int_equal(hess_tensor_ndim(t), nd);
    for (int i = 0; i < nd; i++)
        assert_int_equal(hess_tensor_shape(t)[i], shape[i]);
    assert_close_array(hess_tensor_data(t), want, (size_t)hess_tensor_numel(t), XTOL, XTOL);
}

static hess_tensor *leaf(hess_context *ctx, int nd, const int64_t *shape, const double *v)
{
    hess_tensor *t = hess_tensor_new(ctx, nd, shape, v);
    assert_non_null(t);
    return t;
}

static hess_tensor *param(hess_context *ctx, int nd, const int64_t *shape, const double *v)
{
    hess_tensor *t = hess_param_new(ctx, nd, shape, v);
    assert_non_null(t);
    return t;
}

/* L = sum(w * t) */
static hess_tensor *weighted(hess_context *ctx, hess_tensor *t, const double *w)
{
    hess_tensor *wt = hess_tensor_new(ctx, hess_tensor_ndim(t), hess_tensor_shape(t), w);
    return hess_sum(ctx, hess_mul(ctx, t, wt));
}

/* A record of the registry applied by the generic builder (what the fuzzer
 * and the rules use), with parameters par (NULL: zeros). */
static hess_tensor *
rec(hess_context *ctx, const char *name, hess_tensor *a, hess_tensor *b, const hess_op_params *par)
{
    const hess_op_def *def = hess__op_find(name);
    assert_non_null(def);
    assert_non_null(def->shape);
    hess_tensor *src[HESS_MAX_SRC] = {a, b, NULL};
    return hess__apply(ctx, def, src, par, "rec");
}

static hess_op_params take(int axis, int64_t len, int64_t start, int64_t step)
{
    hess_op_params p;
    memset(&p, 0, sizeof p);
    p.take.axis = axis;
    p.take.len = len;
    p.take.start = start;
    p.take.step = step;
    return p;
}

static hess_op_params take_idx(int axis, int64_t len, const int64_t *idx)
{
    hess_op_params p;
    memset(&p, 0, sizeof p);
    p.take.axis = axis;
    p.take.len = len;
    p.take.idx = idx;
    return p;
}

static hess_op_params on_axis(int axis)
{
    hess_op_params p;
    memset(&p, 0, sizeof p);
    p.axis.axis = axis;
    return p;
}

static hess_op_params perm_of(int rank, const int8_t *perm)
{
    hess_op_params p;
    memset(&p, 0, sizeof p);
    p.perm.rank = (uint8_t)rank;
    memcpy(p.perm.perm, perm, (size_t)rank);
    return p;
}

static const double R12[12] = {0.5, -1.25, 2.0, 0.75, -0.5, 1.5, 3.0, -2.0, 0.25, 1.0, -0.75, 2.5};

/* ------------------------------------------------------------------------ */
/* The records refuse parameters that do not fit, and take those that do   */
/* ------------------------------------------------------------------------ */

/* slice and slice_scatter built from their records: every way the positions
 * can miss the axis, and an identity slice, whose rules give the cotangent
 * and the tangent back as they are. */
static void test_refs_shape_slice_records(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *a = param(ctx, 2, I64(3, 4), R12);
    hess_op_params p;
    assert_null(rec(ctx, "slice", a, NULL, NULL)); /* zeros: step 0 */
    expect_message(ctx, HESS_ERR_ARG,
                   "rec: 0 positions from 0 by step 0 do not fit a length 3 (axis 0 of [3,4])");
    p = take(-1, 2, 0, 1);
    assert_null(rec(ctx, "slice", a, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG, "rec: axis -1 is out of range for [3,4]");
    p = take(2, 2, 0, 1);
    assert_null(rec(ctx, "slice", a, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG, "rec: axis 2 is out of range for [3,4]");
    p = take(1, 2, -1, 1);
    assert_null(rec(ctx, "slice", a, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG,
                   "rec: 2 positions from -1 by step 1 do not fit a length 4 (axis 1 of [3,4])");
    p = take(1, 1, 4, 1);
    assert_null(rec(ctx, "slice", a, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG,
                   "rec: 1 positions from 4 by step 1 do not fit a length 4 (axis 1 of [3,4])");
    p = take(1, 3, 1, 2); /* 1, 3, 5 */
    assert_null(rec(ctx, "slice", a, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG,
                   "rec: 3 positions from 1 by step 2 do not fit a length 4 (axis 1 of [3,4])");
    p = take(1, 0, 0, 1);
    assert_null(rec(ctx, "slice", a, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG,
                   "rec: 0 positions from 0 by step 1 do not fit a length 4 (axis 1 of [3,4])");
    p = take(1, 2, 1, -2);
    assert_null(rec(ctx, "slice", a, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG,
                   "rec: 2 positions from 1 by step -2 do not fit a length 4 (axis 1 of [3,4])");

    p = take(1, 2, 1, 2); /* columns 1 and 3 */
    expect_values(rec(ctx, "slice", a, NULL, &p), 2, I64(3, 2),
                  (const double[]){-1.25, 0.75, 1.5, -2.0, 1.0, 2.5});

    /* slice_scatter: its source fills len positions of a longer axis */
    hess_tensor *g = leaf(ctx, 2, I64(2, 3), R12);
    p = take(0, 5, 1, 2); /* rows 1 and 3 of 5 */
    expect_values(rec(ctx, "slice_scatter", g, NULL, &p), 2, I64(5, 3),
                  (const double[]){0, 0, 0, 0.5, -1.25, 2.0, 0, 0, 0, 0.75, -0.5, 1.5, 0, 0, 0});
    p = take(0, 3, 1, 2); /* rows 1 and 3 of 3 */
    assert_null(rec(ctx, "slice_scatter", g, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG,
                   "rec: 2 positions from 1 by step 2 do not fit a length 3 (axis 0 of [2,3])");
    assert_null(rec(ctx, "slice_scatter", g, NULL, NULL));
    expect_message(ctx, HESS_ERR_ARG,
                   "rec: 2 positions from 0 by step 0 do not fit a length 0 (axis 0 of [2,3])");

    /* an identity slice (hess_slice makes a view instead): its cotangent and
     * its tangent are those of a, unchanged */
    p = take(0, 3, 0, 1);
    hess_tensor *same = rec(ctx, "slice", a, NULL, &p);
    expect_values(same, 2, I64(3, 4), R12);
    const double w[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    hess_tensor *L = weighted(ctx, same, w), *da;
    assert_ok(ctx, hess_grad(ctx, L, 1, &a, &da, HESS_CREATE_GRAPH));
    expect_values(da, 2, I64(3, 4), w);
    double jv[12];
    assert_ok(ctx, hess_jvp(ctx, same, 1, &a, w, jv));
    assert_close_array(jv, w, 12, 0, 0);
    /* and the identity slice_scatter of the cotangent's rule: the same */
    p = take(1, 4, 0, 1);
    hess_tensor *same2 = rec(ctx, "slice_scatter", a, NULL, &p);
    assert_ok(ctx, hess_grad(ctx, weighted(ctx, same2, w), 1, &a, &da, 0));
    expect_values(da, 2, I64(3, 4), w);
    hess_context_destroy(ctx);
}

/* index_select and index_add from their records: missing, empty and
 * out-of-range indices; repeated indices add up in index_add. */
static void test_refs_shape_index_records(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *a = leaf(ctx, 2, I64(3, 4), R12);
    hess_op_params p;
    assert_null(rec(ctx, "index_select", a, NULL, NULL));
    expect_message(ctx, HESS_ERR_ARG, "rec: 0 indices into a length 3 (axis 0 of [3,4])");
    p = take_idx(5, 1, I64(0));
    assert_null(rec(ctx, "index_select", a, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG, "rec: axis 5 is out of range for [3,4]");
    p = take_idx(1, 2, NULL);
    assert_null(rec(ctx, "index_select", a, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG, "rec: 2 indices into a length 4 (axis 1 of [3,4])");
    p = take_idx(1, 2, I64(0, -1));
    assert_null(rec(ctx, "index_select", a, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG, "rec: index 1 is -1, outside [0,4)");
    p = take_idx(1, 2, I64(4, 0));
    assert_null(rec(ctx, "index_select", a, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG, "rec: index 0 is 4, outside [0,4)");
    p = take_idx(1, 3, I64(3, 3, 0));
    expect_values(rec(ctx, "index_select", a, NULL, &p), 2, I64(3, 3),
                  (const double[]){0.75, 0.75, 0.5, -2.0, -2.0, -0.5, 2.5, 2.5, 0.25});

    hess_tensor *g = leaf(ctx, 2, I64(2, 3), R12);
    assert_null(rec(ctx, "index_add", g, NULL, NULL));
    expect_message(ctx, HESS_ERR_ARG, "rec: 2 indices into a length 0 (axis 0 of [2,3])");
    p = take_idx(0, 3, I64(2, 3));
    assert_null(rec(ctx, "index_add", g, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG, "rec: index 1 is 3, outside [0,3)");
    p = take_idx(0, 3, I64(2, 2)); /* both rows into row 2 */
    expect_values(rec(ctx, "index_add", g, NULL, &p), 2, I64(3, 3),
                  (const double[]){0, 0, 0, 0, 0, 0, 1.25, -1.75, 3.5});
    hess_context_destroy(ctx);
}

/* gather, cat and permute from their records: ranks and axes that do not
 * fit; gather with an index of lower rank (the directions of a batched
 * pass in front of a); a permute of no dims. */
static void test_refs_shape_gather_cat_permute_records(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *a = leaf(ctx, 2, I64(2, 3), R12);
    hess_tensor *ix = leaf(ctx, 2, I64(2, 2), (const double[]){1, 0, 0, 1});
    hess_op_params p;
    /* zeros: axis 0 */
    expect_values(rec(ctx, "gather", a, ix, NULL), 2, I64(2, 2),
                  (const double[]){0.75, -1.25, 0.5, -0.5});
    hess_tensor *ix3 = leaf(ctx, 3, I64(1, 2, 2), (const double[]){0, 0, 0, 0});
    assert_null(rec(ctx, "gather", a, ix3, NULL));
    expect_message(ctx, HESS_ERR_SHAPE,
                   "rec: index [1,2,2] does not fit a [2,3] along axis 0 (the same rank, and no "
                   "larger in the other dims)");
    p = on_axis(2);
    assert_null(rec(ctx, "gather", a, ix, &p));
    expect_error(ctx, HESS_ERR_SHAPE, "rec", "does not fit a [2,3] along axis 2", NULL);
    hess_tensor *a3 = leaf(ctx, 3, I64(2, 2, 3), R12);
    p = on_axis(0); /* the axis falls among the directions in front */
    assert_null(rec(ctx, "gather", a3, ix, &p));
    expect_error(ctx, HESS_ERR_SHAPE, "rec", "index [2,2] does not fit a [2,2,3] along axis 0",
                 NULL);
    p = on_axis(2); /* out[b, i, j] = a3[b, i, ix[i, j]] */
    expect_values(rec(ctx, "gather", a3, ix, &p), 3, I64(2, 2, 2),
                  (const double[]){-1.25, 0.5, 0.75, -0.5, -2.0, 3.0, 1.0, -0.75});

    hess_tensor *b = leaf(ctx, 2, I64(2, 1), (const double[]){7, 8});
    assert_null(rec(ctx, "cat", a, b, NULL));
    expect_message(ctx, HESS_ERR_SHAPE, "rec: [2,3] and [2,1] do not join along axis 0");
    assert_null(rec(ctx, "cat", hess_scalar(ctx, 1.0), hess_scalar(ctx, 2.0), NULL));
    expect_message(ctx, HESS_ERR_ARG, "rec: axis 0 is out of range for []");
    p = on_axis(-1);
    assert_null(rec(ctx, "cat", a, b, &p));
    expect_message(ctx, HESS_ERR_ARG, "rec: axis -1 is out of range for [2,3]");
    p = on_axis(1);
    assert_null(rec(ctx, "cat", a, leaf(ctx, 1, I64(2), NULL), &p));
    expect_message(ctx, HESS_ERR_SHAPE, "rec: [2,3] and [2] do not join along axis 1");
    expect_values(rec(ctx, "cat", a, b, &p), 2, I64(2, 4),
                  (const double[]){0.5, -1.25, 2.0, 7, 0.75, -0.5, 1.5, 8});

    /* permute: zeros are a permutation of no dims (the identity), on a
     * matrix and on a scalar */
    expect_values(rec(ctx, "permute", a, NULL, NULL), 2, I64(2, 3), R12);
    expect_values(rec(ctx, "permute", hess_scalar(ctx, -3.5), NULL, NULL), 0, NULL,
                  (const double[]){-3.5});
    p = perm_of(3, (const int8_t[]){2, 0, 1});
    assert_null(rec(ctx, "permute", a, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG, "rec: not a permutation of the last 3 dims of [2,3]");
    p = perm_of(2, (const int8_t[]){1, 1});
    assert_null(rec(ctx, "permute", a, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG, "rec: not a permutation of the last 2 dims of [2,3]");
    p = perm_of(2, (const int8_t[]){2, 0});
    assert_null(rec(ctx, "permute", a, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG, "rec: not a permutation of the last 2 dims of [2,3]");
    p = perm_of(2, (const int8_t[]){-1, 0});
    assert_null(rec(ctx, "permute", a, NULL, &p));
    expect_message(ctx, HESS_ERR_ARG, "rec: not a permutation of the last 2 dims of [2,3]");
    /* the last 2 of 3 dims swapped: the first stays */
    p = perm_of(2, (const int8_t[]){1, 0});
    expect_values(
        rec(ctx, "permute", a3, NULL, &p), 3, I64(2, 3, 2),
        (const double[]){0.5, 0.75, -1.25, -0.5, 2.0, 1.5, 3.0, 1.0, -2.0, -0.75, 0.25, 2.5});
    /* an identity permute node: its rule hands the cotangent back as it is */
    hess_tensor *w = param(ctx, 2, I64(2, 3), R12);
    p = perm_of(2, (const int8_t[]){0, 1});
    hess_tensor *same = rec(ctx, "permute", w, NULL, &p), *dw;
    expect_values(same, 2, I64(2, 3), R12);
    const double c[6] = {1, -2, 3, -4, 5, -6};
    assert_ok(ctx, hess_grad(ctx, weighted(ctx, same, c), 1, &w, &dw, 0));
    expect_values(dw, 2, I64(2, 3), c);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* A quadratic form made of selections: second derivatives, every way      */
/* ------------------------------------------------------------------------ */

/* p [4,5] (N = 20) and three selections of it, each [4,2]:
 *   y1 = slice(p, 1, 1, 5, 2)                            p[r, 1 + 2c]
 *   y2 = gather(p, -1, ix)                               p[r, ix[r, c]]
 *   y3 = slice(index_select(p, 0, SEL_ROWS), -1, -2, ..) p[SEL_ROWS[r], 3 + c]
 * joined by stack, slice, cat (the same tensor twice, a negative axis) and
 * multiplied in pairs:
 *   L = sum(W * slice(z, 0, 0, 2) * slice(z, 0, -2, 3)),  z = stack(y1, y2, y3)
 *     + sum(V * cat(y1, y3, y2, y2) * cat(y2, y2, y3, y1))
 *     + sum(Q * y3 * y3)
 * a quadratic form L = p^T H p / 2 whose Hessian is written out below from
 * the positions each selection takes: every term w y_a y_b adds w at (a, b)
 * and at (b, a).  Its first derivative is made of the adjoints
 * (slice_scatter, index_add, scatter_add), its second of those again. */
#define SEL_N 20
static const int64_t SEL_ROWS[4] = {3, 0, 3, 1};

typedef struct sel {
    hess_tensor *p, *ix, *y[3], *z, *c, *L;
    double pv[SEL_N], ixv[8], W[16], V[32], Q[8];
} sel;

/* The element of p that selection k takes at [r, c]. */
static int sel_at(const sel *m, int k, int r, int c)
{
    if (k == 0)
        return 5 * r + 1 + 2 * c;
    if (k == 1)
        return 5 * r + (int)m->ixv[2 * r + c];
    return 5 * (int)SEL_ROWS[r] + 3 + c;
}

static void sel_pair(double *H, int a, int b, double w)
{
    H[a * SEL_N + b] += w;
    H[b * SEL_N + a] += w;
}

static void sel_hessian(const sel *m, double *H)
{
    memset(H, 0, SEL_N * SEL_N * sizeof *H);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 2; c++) {
            const int j = 2 * r + c, y1 = sel_at(m, 0, r, c), y2 = sel_at(m, 1, r, c),
                      y3 = sel_at(m, 2, r, c);
            sel_pair(H, y1, y2, m->W[j]);
            sel_pair(H, y2, y3, m->W[8 + j]);
            sel_pair(H, y1, y2, m->V[8 * r + c]);
            sel_pair(H, y3, y2, m->V[8 * r + 2 + c]);
            sel_pair(H, y2, y3, m->V[8 * r + 4 + c]);
            sel_pair(H, y2, y1, m->V[8 * r + 6 + c]);
            sel_pair(H, y3, y3, m->Q[j]);
        }
}

static void sel_build(hess_context *ctx, sel *m)
{
    uint64_t s = 0x5e1ec7;
    for (int i = 0; i < SEL_N; i++)
        m->pv[i] = rnd_uniform(&s, -1.0, 1.0);
    for (int i = 0; i < 16; i++)
        m->W[i] = rnd_uniform(&s, -1.0, 1.0);
    for (int i = 0; i < 32; i++)
        m->V[i] = rnd_uniform(&s, -1.0, 1.0);
    for (int i = 0; i < 8; i++)
        m->Q[i] = rnd_uniform(&s, -1.0, 1.0);
    const double ixv[8] = {4, 0, 2, 2, 0, 3, 1, 4};
    memcpy(m->ixv, ixv, sizeof ixv);
    m->p = param(ctx, 2, I64(4, 5), m->pv);
    m->ix = leaf(ctx, 2, I64(4, 2), m->ixv);
    m->y[0] = hess_slice(ctx, m->p, 1, 1, 5, 2);
    m->y[1] = hess_gather(ctx, m->p, -1, m->ix);
    m->y[2] = hess_slice(ctx, hess_index_select(ctx, m->p, 0, 4, SEL_ROWS), -1, -2, INT64_MAX, 1);
    m->z = hess_stack(ctx, 3, m->y, 0);
    hess_tensor *u = hess_slice(ctx, m->z, 0, 0, 2, 1), *v = hess_slice(ctx, m->z, 0, -2, 3, 1);
    hess_tensor *T1 = hess_sum(
        ctx, hess_mul(ctx, hess_mul(ctx, u, v), hess_tensor_new(ctx, 3, I64(2, 4, 2), m->W)));
    m->c = hess_cat(ctx, 4, TS(m->y[0], m->y[2], m->y[1], m->y[1]), 1);
    hess_tensor *d = hess_cat(ctx, 4, TS(m->y[1], m->y[1], m->y[2], m->y[0]), -1);
    hess_tensor *T2 = weighted(ctx, hess_mul(ctx, m->c, d), m->V);
    hess_tensor *T3 = weighted(ctx, hess_mul(ctx, m->y[2], m->y[2]), m->Q);
    m->L = hess_add(ctx, hess_add(ctx, T1, T2), T3);
    assert_ok(ctx, hess_context_status(ctx));
}

static void matvec(const double *H, const double *v, double *out)
{
    for (int i = 0; i < SEL_N; i++) {
        out[i] = 0;
        for (int j = 0; j < SEL_N; j++)
            out[i] += H[i * SEL_N + j] * v[j];
    }
}

/* Every function that gives second derivatives against the written-out H. */
static void sel_check_all(hess_context *ctx, sel *m)
{
    static double H[SEL_N * SEL_N], got[SEL_N * SEL_N], hv[SEL_N], want[SEL_N], d[SEL_N];
    sel_hessian(m, H);
    /* L = p^T H p / 2, its gradient H p */
    matvec(H, m->pv, want);
    double L = 0;
    for (int i = 0; i < SEL_N; i++)
        L += 0.5 * m->pv[i] * want[i];
    assert_ok(ctx, hess_recompute(ctx));
    assert_close(hess_tensor_data(m->L)[0], L, XTOL, XTOL);
    hess_tensor *g;
    assert_ok(ctx, hess_grad(ctx, m->L, 1, &m->p, &g, HESS_CREATE_GRAPH));
    assert_close_array(hess_tensor_data(g), want, SEL_N, XTOL, XTOL);

    /* the Hessian in sweeps of 1, 3, 7 and all 20 rows, and the default */
    const size_t rows[] = {1, 3, 7, SEL_N, 0};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        hess_hessian_opts o = {0};
        o.block_rows = rows[i];
        memset(got, 0, sizeof got);
        assert_ok(ctx, hess_hessian_ex(ctx, m->L, 1, &m->p, &o, got));
        assert_close_array(got, H, SEL_N * SEL_N, XTOL, XTOL);
    }
    /* the gradient's Jacobian (forward-mode columns of the adjoints) */
    memset(got, 0, sizeof got);
    assert_ok(ctx, hess_jacobian(ctx, g, 1, &m->p, got));
    assert_close_array(got, H, SEL_N * SEL_N, XTOL, XTOL);
    /* H v four ways */
    double v[SEL_N];
    for (int i = 0; i < SEL_N; i++)
        v[i] = 0.1 * (i % 7) - 0.25;
    matvec(H, v, want);
    assert_ok(ctx, hess_hvp(ctx, m->L, 1, &m->p, v, hv));
    assert_close_array(hv, want, SEL_N, XTOL, XTOL);
    assert_ok(ctx, hess_hvp_fwd(ctx, m->L, 1, &m->p, v, hv));
    assert_close_array(hv, want, SEL_N, XTOL, XTOL);
    assert_ok(ctx, hess_jvp(ctx, g, 1, &m->p, v, hv));
    assert_close_array(hv, want, SEL_N, XTOL, XTOL);
    /* three directions at once, in sweeps of two */
    double V3[3 * SEL_N], HV[3 * SEL_N];
    for (int i = 0; i < 3 * SEL_N; i++)
        V3[i] = cos(0.37 * i);
    hess_hessian_opts o2 = {0};
    o2.block_rows = 2;
    assert_ok(ctx, hess_hvp_batch(ctx, m->L, 1, &m->p, 3, V3, &o2, HV));
    for (int r = 0; r < 3; r++) {
        matvec(H, V3 + r * SEL_N, want);
        assert_close_array(HV + r * SEL_N, want, SEL_N, XTOL, XTOL);
    }
    /* the diagonal by each method: one row per element, the curvature
     * backpropagation, and as the library chooses */
    for (int i = 0; i < SEL_N; i++)
        want[i] = H[i * SEL_N + i];
    const int methods[] = {HESS_DIAG_ROWS, HESS_DIAG_BACKPROP, HESS_DIAG_AUTO};
    for (size_t k = 0; k < 3; k++) {
        int used = -1;
        hess_hessian_opts o = {0};
        o.method = methods[k];
        o.method_used = &used;
        memset(d, 0, sizeof d);
        assert_ok(ctx, hess_hessian_diag_ex(ctx, m->L, 1, &m->p, &o, d));
        if (methods[k] == HESS_DIAG_AUTO)
            assert_true(used == HESS_DIAG_ROWS || used == HESS_DIAG_BACKPROP);
        else
            assert_int_equal(used, methods[k]);
        assert_close_array(d, want, SEL_N, XTOL, XTOL);
    }
    assert_ok(ctx, hess_hessian_diag(ctx, m->L, 1, &m->p, d));
    assert_close_array(d, want, SEL_N, XTOL, XTOL);
}

static void test_refs_shape_selection_second_derivatives(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    static sel m;
    sel_build(ctx, &m);
    sel_check_all(ctx, &m);

    /* a new gather index: the same graph, the new positions; a bad one is
     * refused and changes nothing */
    const double ix2[8] = {1, 1, 4, 0, 3, 3, 0, 2};
    assert_int_equal(hess_tensor_set(ctx, m.ix, (const double[]){1, 1, 4, 0, 5, 3, 0, 2}),
                     HESS_ERR_ARG);
    expect_message(ctx, HESS_ERR_ARG,
                   "hess_tensor_set: index element 4 is 5; indices must be integers in [0,5)");
    assert_memory_equal(hess_tensor_data(m.ix), m.ixv, sizeof m.ixv);
    assert_ok(ctx, hess_tensor_set(ctx, m.ix, ix2));
    memcpy(m.ixv, ix2, sizeof ix2);
    sel_check_all(ctx, &m);
    /* and new parameter values: a quadratic form's Hessian stays */
    for (int i = 0; i < SEL_N; i++)
        m.pv[i] = 0.5 - 0.05 * i;
    assert_ok(ctx, hess_param_set(ctx, m.p, m.pv));
    sel_check_all(ctx, &m);
    hess_context_destroy(ctx);
}

/* The Jacobians of the selections themselves: 0/1 matrices, by columns
 * (forward mode: more outputs than inputs) and by rows (reverse mode). */
static void test_refs_shape_selection_jacobians(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    static sel m;
    sel_build(ctx, &m);
    static double J[32 * SEL_N], want[32 * SEL_N];
    /* z [3,4,2]: 24 rows, forward mode */
    memset(want, 0, sizeof want);
    for (int k = 0; k < 3; k++)
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 2; c++)
                want[((k * 4 + r) * 2 + c) * SEL_N + sel_at(&m, k, r, c)] = 1.0;
    assert_ok(ctx, hess_jacobian(ctx, m.z, 1, &m.p, J));
    assert_memory_equal(J, want, 24 * SEL_N * sizeof *J);
    /* c = cat(y1, y3, y2, y2) [4,8]: 32 rows */
    memset(want, 0, sizeof want);
    const int part[4] = {0, 2, 1, 1};
    for (int r = 0; r < 4; r++)
        for (int q = 0; q < 8; q++)
            want[(r * 8 + q) * SEL_N + sel_at(&m, part[q / 2], r, q % 2)] = 1.0;
    assert_ok(ctx, hess_jacobian(ctx, m.c, 1, &m.p, J));
    assert_memory_equal(J, want, 32 * SEL_N * sizeof *J);
    /* each selection alone: 8 rows, reverse mode */
    for (int k = 0; k < 3; k++) {
        memset(want, 0, sizeof want);
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 2; c++)
                want[(r * 2 + c) * SEL_N + sel_at(&m, k, r, c)] = 1.0;
        assert_ok(ctx, hess_jacobian(ctx, m.y[k], 1, &m.p, J));
        assert_memory_equal(J, want, 8 * SEL_N * sizeof *J);
    }
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* gather: computed and reused indices, an index has no derivative          */
/* ------------------------------------------------------------------------ */

/* An index computed from a parameter: the builder checks its values, but a
 * later parameter value that is not an index gives NaN where gather meets it
 * (and NaN everywhere in the scatter_add of its gradient), until the values
 * are indices again.  Under HESS_CHECK_FINITE, gathering with an index whose
 * re-evaluation fails is refused. */
static void test_refs_shape_gather_computed_index(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *a = param(ctx, 2, I64(2, 3), R12); /* {0.5, -1.25, 2}, {0.75, -0.5, 1.5} */
    hess_tensor *p = param(ctx, 2, I64(2, 2), (const double[]){2, 0, 1, 1});
    hess_tensor *ix = hess_add(ctx, p, hess_scalar(ctx, 0.0));
    hess_tensor *g = hess_gather(ctx, a, 1, ix);
    expect_values(g, 2, I64(2, 2), (const double[]){2.0, 0.5, -0.5, -0.5});
    hess_tensor *L = weighted(ctx, g, (const double[]){1, 2, 3, 4}), *da;
    assert_ok(ctx, hess_grad(ctx, L, 1, &a, &da, HESS_CREATE_GRAPH));
    expect_values(da, 2, I64(2, 3), (const double[]){2, 0, 1, 0, 7, 0});

    assert_ok(ctx, hess_param_set(ctx, p, (const double[]){2, 0.5, 1, 3}));
    assert_ok(ctx, hess_recompute(ctx));
    const double *gv = hess_tensor_data(g), *dv = hess_tensor_data(da);
    assert_true(gv[0] == 2.0 && isnan(gv[1]) && gv[2] == -0.5 && isnan(gv[3]));
    for (int i = 0; i < 6; i++)
        assert_true(isnan(dv[i]));
    /* the builder refuses the same values */
    assert_null(hess_gather(ctx, a, 1, ix));
    expect_message(ctx, HESS_ERR_ARG,
                   "hess_gather: index element 1 is 0.5; indices must be integers in [0,3)");
    assert_ok(ctx, hess_param_set(ctx, p, (const double[]){0, 0, 2, 1}));
    assert_ok(ctx, hess_recompute(ctx));
    expect_values(g, 2, I64(2, 2), (const double[]){0.5, 0.5, 1.5, -0.5});
    expect_values(da, 2, I64(2, 3), (const double[]){3, 0, 0, 0, 4, 3});
    hess_context_destroy(ctx);

    ctx = test_context_flags(HESS_CHECK_FINITE);
    a = leaf(ctx, 2, I64(2, 3), R12);
    p = param(ctx, 2, I64(2, 2), (const double[]){0, 1, 4, 1});
    ix = hess_sqrt(ctx, p);
    expect_values(hess_gather(ctx, a, 1, ix), 2, I64(2, 2),
                  (const double[]){0.5, -1.25, 1.5, -0.5});
    assert_ok(ctx, hess_param_set(ctx, p, (const double[]){0, -1, 4, 1}));
    assert_null(hess_gather(ctx, a, 1, ix));
    expect_error(ctx, HESS_ERR_NONFINITE, "hess_gather", NULL);
    hess_context_destroy(ctx);
}

/* The index of a gather has no derivative, in every mode: forward through
 * gather, and backward and forward through the scatter_add of its
 * gradient. */
static void test_refs_shape_gather_index_has_no_derivative(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *a = param(ctx, 2, I64(2, 3), R12);
    hess_tensor *p = param(ctx, 2, I64(2, 2), (const double[]){2, 0, 1, 1});
    hess_tensor *g = hess_gather(ctx, a, 1, p);
    double v[4] = {1, 1, 1, 1}, jv[6];
    assert_int_equal(hess_jvp(ctx, g, 1, &p, v, jv), HESS_ERR_NODIFF);
    expect_message(ctx, HESS_ERR_NODIFF, "hess_jvp: a gather index has no derivative");
    /* d g / d a with a seed of our own: scatter_add(seed, p) */
    hess_tensor *seed = leaf(ctx, 2, I64(2, 2), (const double[]){1, 2, 3, 4}), *da;
    assert_ok(ctx, hess_vjp(ctx, 1, &g, &seed, 1, &a, &da, HESS_CREATE_GRAPH));
    expect_values(da, 2, I64(2, 3), (const double[]){2, 0, 1, 0, 7, 0});
    hess_tensor *L2 = hess_sum(ctx, hess_mul(ctx, da, da)), *dp;
    assert_int_equal(hess_grad(ctx, L2, 1, &p, &dp, 0), HESS_ERR_NODIFF);
    expect_message(ctx, HESS_ERR_NODIFF, "hess_grad: a gather index has no derivative");
    assert_int_equal(hess_jvp(ctx, da, 1, &p, v, jv), HESS_ERR_NODIFF);
    expect_message(ctx, HESS_ERR_NODIFF, "hess_jvp: a gather index has no derivative");
    /* with respect to a alone all is well: L2 = sum(da^2) does not depend on a */
    assert_ok(ctx, hess_jvp(ctx, g, 1, &a, R12, jv));
    assert_close_array(jv, ((const double[]){2.0, 0.5, -0.5, -0.5}), 4, 0, 0);
    hess_context_destroy(ctx);
}

/* A leaf that is both a gather's source and its index, and an index leaf
 * that is also the seed of the gather's gradient (the scatter_add's source):
 * hess_tensor_set checks the values for every use, and the results follow. */
static void test_refs_shape_gather_leaf_in_two_roles(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *a = leaf(ctx, 2, I64(2, 2), (const double[]){1, 0, 1, 1});
    hess_tensor *g = hess_gather(ctx, a, 1, a); /* g[i, j] = a[i, a[i, j]] */
    expect_values(g, 2, I64(2, 2), (const double[]){0, 1, 1, 1});
    assert_int_equal(hess_tensor_set(ctx, a, (const double[]){0, 2, 0, 0}), HESS_ERR_ARG);
    expect_message(ctx, HESS_ERR_ARG,
                   "hess_tensor_set: index element 1 is 2; indices must be integers in [0,2)");
    assert_ok(ctx, hess_tensor_set(ctx, a, (const double[]){0, 1, 1, 0}));
    assert_ok(ctx, hess_recompute(ctx));
    expect_values(g, 2, I64(2, 2), (const double[]){0, 1, 0, 1});

    hess_tensor *b = param(ctx, 2, I64(2, 3), R12);
    hess_tensor *ix = leaf(ctx, 2, I64(2, 2), (const double[]){2, 0, 1, 1});
    hess_tensor *gb = hess_gather(ctx, b, 1, ix), *db;
    assert_ok(ctx, hess_vjp(ctx, 1, &gb, &ix, 1, &b, &db, HESS_CREATE_GRAPH));
    expect_values(db, 2, I64(2, 3), (const double[]){0, 0, 2, 0, 2, 0});
    assert_int_equal(hess_tensor_set(ctx, ix, (const double[]){0, 3, 0, 0}), HESS_ERR_ARG);
    expect_message(ctx, HESS_ERR_ARG,
                   "hess_tensor_set: index element 1 is 3; indices must be integers in [0,3)");
    assert_ok(ctx, hess_tensor_set(ctx, ix, (const double[]){0, 0, 2, 1}));
    assert_ok(ctx, hess_recompute(ctx));
    expect_values(gb, 2, I64(2, 2), (const double[]){0.5, 0.5, 1.5, -0.5});
    expect_values(db, 2, I64(2, 3), (const double[]){0, 0, 0, 0, 1, 2});
    hess_context_destroy(ctx);
}

/* The diagonal of a batched model through gather: along the features each
 * sample keeps its own row, and the curvature backpropagation covers it;
 * along the samples the rows mix, which it refuses by name, and the rows
 * method gives the same numbers as the Hessian. */
static void test_refs_shape_gather_diagonal_per_sample(void **state)
{
    (void)state;
    for (int axis = 0; axis < 2; axis++) {
        hess_context *ctx = test_context();
        hess_tensor *W = param(ctx, 2, I64(3, 2), (const double[]){0.3, -0.7, 0.9, 0.2, -0.4, 0.6});
        hess_tensor *b = param(ctx, 1, I64(3), (const double[]){0.1, -0.2, 0.05});
        hess_tensor *x = leaf(ctx, 2, I64(4, 2), (const double[]){1, -1, 0.5, 2, -1.5, 0.25, 2, 1});
        hess_tensor *y = leaf(ctx, 2, I64(4, 3), R12);
        hess_tensor *h = hess_tanh(ctx, hess_linear(ctx, x, W, b));
        const double ix1[12] = {2, 0, 1, 1, 1, 0, 0, 2, 2, 2, 0, 1};
        const double ix0[12] = {3, 0, 1, 1, 2, 0, 0, 3, 2, 2, 0, 1};
        hess_tensor *ix = leaf(ctx, 2, I64(4, 3), axis ? ix1 : ix0);
        hess_tensor *L = hess_mse_loss(ctx, hess_gather(ctx, h, axis, ix), y);
        hess_tensor *ps[2] = {W, b};
        double H[81], want[9], d[9];
        assert_ok(ctx, hess_hessian(ctx, L, 2, ps, H));
        for (int i = 0; i < 9; i++)
            want[i] = H[i * 9 + i];
        int used = -1;
        hess_hessian_opts o = {0};
        o.method_used = &used;
        o.method = HESS_DIAG_BACKPROP;
        assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 2, ps, &o, d));
        assert_int_equal(used, HESS_DIAG_BACKPROP);
        assert_close_array(d, want, 9, 1e-12, 1e-14);
        o.method = HESS_DIAG_AUTO;
        memset(d, 0, sizeof d);
        assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 2, ps, &o, d));
        assert_int_equal(used, axis ? HESS_DIAG_BACKPROP : HESS_DIAG_ROWS);
        assert_close_array(d, want, 9, 1e-12, 1e-14);
        hess_context_destroy(ctx);
    }
}

/* ------------------------------------------------------------------------ */
/* Views, steps, negative axes, many tensors                                */
/* ------------------------------------------------------------------------ */

/* What selects every position in order is a view (the same values, no
 * copy): index_select of 0..n-1, a one-tensor stack and cat; the gradient
 * passes through unchanged. */
static void test_refs_shape_views(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *a = param(ctx, 2, I64(2, 3), R12);
    const double *ad = hess_tensor_data(a);
    hess_tensor *s = hess_index_select(ctx, a, -1, 3, I64(0, 1, 2));
    expect_values(s, 2, I64(2, 3), R12);
    hess_tensor *st = hess_stack(ctx, 1, TS(a), -1);
    expect_values(st, 3, I64(2, 3, 1), R12);
    hess_tensor *ct = hess_cat(ctx, 1, TS(a), -2);
    expect_values(ct, 2, I64(2, 3), R12);
    hess_tensor *sl = hess_slice(ctx, a, 0, -5, 5, 1);
    expect_values(sl, 2, I64(2, 3), R12);
    /* a parameter's values change from outside: its "view" is a copy */
    assert_ptr_not_equal(hess_tensor_data(s), ad);
    hess_tensor *c = leaf(ctx, 2, I64(2, 3), R12);
    assert_ptr_equal(hess_tensor_data(hess_index_select(ctx, c, 1, 3, I64(0, 1, 2))),
                     hess_tensor_data(c));
    assert_ptr_equal(hess_tensor_data(hess_stack(ctx, 1, TS(c), 0)), hess_tensor_data(c));
    assert_ptr_equal(hess_tensor_data(hess_cat(ctx, 1, TS(c), 1)), hess_tensor_data(c));
    const double w[6] = {1, -1, 2, -2, 3, -3};
    hess_tensor *L = hess_add(ctx, weighted(ctx, s, w), weighted(ctx, hess_squeeze(ctx, st, 2), w));
    L = hess_add(ctx, L, hess_add(ctx, weighted(ctx, ct, w), weighted(ctx, sl, w)));
    hess_tensor *da;
    assert_ok(ctx, hess_grad(ctx, L, 1, &a, &da, 0));
    expect_values(da, 2, I64(2, 3), (const double[]){4, -4, 8, -8, 12, -12});
    hess_context_destroy(ctx);
}

/* Steps and negative axes with their gradients: slice by 3 on the last
 * axis, clipped bounds; index_select on a middle axis with repeats; cat of
 * five tensors (one of them three times) on a negative axis; stack on the
 * new last axis. */
static void test_refs_shape_steps_and_axes(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    double pv[24];
    for (int i = 0; i < 24; i++)
        pv[i] = i;
    hess_tensor *p = param(ctx, 3, I64(2, 3, 4), pv);
    /* slice(p, -1, -100, 100, 3): columns 0 and 3 */
    hess_tensor *s = hess_slice(ctx, p, -1, -100, 100, 3);
    expect_values(s, 3, I64(2, 3, 2), (const double[]){0, 3, 4, 7, 8, 11, 12, 15, 16, 19, 20, 23});
    /* index_select(p, -2, [2, 2, 0]) */
    hess_tensor *x = hess_index_select(ctx, p, -2, 3, I64(2, 2, 0));
    expect_values(x, 3, I64(2, 3, 4),
                  (const double[]){8,  9,  10, 11, 8,  9,  10, 11, 0,  1,  2,  3,
                                   20, 21, 22, 23, 20, 21, 22, 23, 12, 13, 14, 15});
    /* cat of five along -3 (axis 0): s-shaped pieces */
    hess_tensor *t = hess_slice(ctx, p, 2, 1, 3, 1); /* [2,3,2]: columns 1, 2 */
    hess_tensor *c = hess_cat(ctx, 5, TS(s, t, s, hess_neg(ctx, t), s), -3);
    assert_non_null(c);
    assert_int_equal(hess_tensor_shape(c)[0], 10);
    assert_int_equal(hess_tensor_numel(c), 60);
    const double *cd = hess_tensor_data(c);
    for (int piece = 0; piece < 5; piece++)
        for (int e = 0; e < 12; e++) {
            const hess_tensor *src = piece % 2 ? t : s;
            const double sign = piece == 3 ? -1.0 : 1.0;
            assert_true(cd[piece * 12 + e] == sign * hess_tensor_data(src)[e]);
        }
    /* stack on -1: [2,3,2,2] of (s, t) */
    hess_tensor *k = hess_stack(ctx, 2, TS(s, t), -1);
    expect_values(k, 4, I64(2, 3, 2, 2),
                  (const double[]){0,  1,  3,  2,  4,  5,  7,  6,  8,  9,  11, 10,
                                   12, 13, 15, 14, 16, 17, 19, 18, 20, 21, 23, 22});
    /* the gradient of sum(s) + 2 sum(x) + sum(c) + sum(k): counts of use */
    hess_tensor *L =
        hess_add(ctx, hess_sum(ctx, s), hess_mul(ctx, hess_scalar(ctx, 2.0), hess_sum(ctx, x)));
    L = hess_add(ctx, L, hess_add(ctx, hess_sum(ctx, c), hess_sum(ctx, k)));
    hess_tensor *dp;
    assert_ok(ctx, hess_grad(ctx, L, 1, &p, &dp, 0));
    double want[24];
    for (int b = 0; b < 2; b++)
        for (int r = 0; r < 3; r++)
            for (int q = 0; q < 4; q++) {
                const double in_s = q == 0 || q == 3, in_t = q == 1 || q == 2;
                const double rows = r == 2 ? 2 : r == 0 ? 1 : 0; /* [2, 2, 0] */
                want[(b * 3 + r) * 4 + q] = in_s * (1 + 3 + 1) + in_t * (1 - 1 + 1) + 2 * rows;
            }
    expect_values(dp, 3, I64(2, 3, 4), want);
    hess_context_destroy(ctx);
}

/* A reshape back to the shape of a reshape's source is that source, when
 * both are recorded alike: a gradient taken with HESS_CREATE_GRAPH and
 * reshaped back gives the seed itself; one taken without it is a constant
 * and stays one (its own view), with the same values. */
static void test_refs_shape_reshape_back_to_seed(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *p = param(ctx, 2, I64(2, 3), R12);
    hess_tensor *y = hess_reshape(ctx, p, 1, I64(6));
    hess_tensor *s = leaf(ctx, 1, I64(6), (const double[]){1, 2, 3, 4, 5, 6}), *gp;
    assert_ok(ctx, hess_vjp(ctx, 1, &y, &s, 1, &p, &gp, HESS_CREATE_GRAPH));
    expect_values(gp, 2, I64(2, 3), hess_tensor_data(s));
    assert_ptr_equal(hess_reshape(ctx, gp, 1, I64(-1)), s);
    assert_ok(ctx, hess_vjp(ctx, 1, &y, &s, 1, &p, &gp, 0));
    expect_values(gp, 2, I64(2, 3), hess_tensor_data(s));
    hess_tensor *back = hess_reshape(ctx, gp, 1, I64(6));
    assert_ptr_not_equal(back, s);
    expect_values(back, 1, I64(6), hess_tensor_data(s));
    /* the constant has no path to p: the gradient of its sum is refused */
    hess_tensor *dp;
    assert_int_equal(hess_grad(ctx, hess_sum(ctx, back), 1, &p, &dp, 0), HESS_ERR_NODIFF);
    expect_error(ctx, HESS_ERR_NODIFF, "hess_grad", NULL);
    hess_context_destroy(ctx);
}

/* cat in forward mode with one side constant: its tangent is zeros there. */
static void test_refs_shape_cat_tangent_one_side(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    hess_tensor *p = param(ctx, 1, I64(2), (const double[]){3, 4});
    hess_tensor *c = leaf(ctx, 1, I64(3), (const double[]){-1, -2, -3});
    const double v[2] = {0.5, -2};
    double jv[5];
    hess_tensor *cp = hess_cat(ctx, 2, TS(c, p), 0), *pc = hess_cat(ctx, 2, TS(p, c), -1);
    assert_ok(ctx, hess_jvp(ctx, cp, 1, &p, v, jv));
    assert_close_array(jv, ((const double[]){0, 0, 0, 0.5, -2}), 5, 0, 0);
    assert_ok(ctx, hess_jvp(ctx, pc, 1, &p, v, jv));
    assert_close_array(jv, ((const double[]){0.5, -2, 0, 0, 0}), 5, 0, 0);
    /* the Jacobian of both (forward mode, batched tangents) */
    double J[10];
    assert_ok(ctx, hess_jacobian(ctx, cp, 1, &p, J));
    assert_close_array(J, ((const double[]){0, 0, 0, 0, 0, 0, 1, 0, 0, 1}), 10, 0, 0);
    assert_ok(ctx, hess_jacobian(ctx, pc, 1, &p, J));
    assert_close_array(J, ((const double[]){1, 0, 0, 1, 0, 0, 0, 0, 0, 0}), 10, 0, 0);
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Out of memory at every allocation of a builder or a pass                 */
/* ------------------------------------------------------------------------ */

/* A run builds its inputs, then makes the calls under test and checks their
 * results.  It returns NULL when its inputs could not be made (the limit is
 * too low to start), "" when all went well, or the public function that
 * failed, after checking that the inputs are unchanged. */
typedef const char *(*oom_run)(hess_context *ctx);

static const double OOM_V[8] = {1.5, -2, 0.25, 3, -1, 0.5, 2, -0.75};

/* the inputs hold OOM_V still */
static void oom_inputs_kept(hess_tensor *const ts[], size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_memory_equal(hess_tensor_data(ts[i]), OOM_V,
                            (size_t)hess_tensor_numel(ts[i]) * sizeof(double));
}

static const char *oom_stack(hess_context *ctx)
{
    hess_tensor *t[3];
    for (int i = 0; i < 3; i++)
        if (!(t[i] = hess_tensor_new(ctx, 2, I64(2, 2), OOM_V)))
            return NULL;
    hess_tensor *s = hess_stack(ctx, 3, t, 1);
    if (!s) {
        oom_inputs_kept(t, 3);
        return "hess_stack";
    }
    const double *v = OOM_V;
    expect_values(
        s, 3, I64(2, 3, 2),
        (const double[]){v[0], v[1], v[0], v[1], v[0], v[1], v[2], v[3], v[2], v[3], v[2], v[3]});
    return "";
}

static const char *oom_cat(hess_context *ctx)
{
    hess_tensor *t[5];
    for (int i = 0; i < 5; i++)
        if (!(t[i] = hess_tensor_new(ctx, 1, I64(1 + i), OOM_V)))
            return NULL;
    hess_tensor *c = hess_cat(ctx, 5, t, 0);
    if (!c) {
        for (int i = 0; i < 5; i++)
            oom_inputs_kept(t + i, 1);
        return "hess_cat";
    }
    const double *v = OOM_V;
    expect_values(c, 1, I64(15),
                  (const double[]){v[0], v[0], v[1], v[0], v[1], v[2], v[0], v[1], v[2], v[3], v[0],
                                   v[1], v[2], v[3], v[4]});
    return "";
}

static const char *oom_index_select(hess_context *ctx)
{
    hess_tensor *a = hess_tensor_new(ctx, 2, I64(4, 2), OOM_V);
    if (!a)
        return NULL;
    hess_tensor *s = hess_index_select(ctx, a, 0, 3, I64(3, 0, 3));
    if (!s) {
        oom_inputs_kept(&a, 1);
        return "hess_index_select";
    }
    expect_values(s, 2, I64(3, 2), (const double[]){2, -0.75, 1.5, -2, 2, -0.75});
    return "";
}

/* gather, the gradient of its square (a scatter_add), and that gradient's
 * tangent */
static const char *oom_gather(hess_context *ctx)
{
    hess_tensor *a = hess_param_new(ctx, 2, I64(2, 4), OOM_V);
    hess_tensor *ix = a ? hess_tensor_new(ctx, 2, I64(2, 2), (const double[]){3, 0, 1, 1}) : NULL;
    if (!ix)
        return NULL;
    hess_tensor *g = hess_gather(ctx, a, 1, ix);
    if (!g) {
        oom_inputs_kept(&a, 1);
        return "hess_gather";
    }
    expect_values(g, 2, I64(2, 2), (const double[]){3, 1.5, 0.5, 0.5});
    hess_tensor *L = hess_sum(ctx, hess_mul(ctx, g, g)), *da;
    if (!L)
        return "hess_mul|hess_sum";
    if (hess_grad(ctx, L, 1, &a, &da, HESS_CREATE_GRAPH) != HESS_OK) {
        oom_inputs_kept(&a, 1);
        return "hess_grad|hess_tensor_new"; /* hess_grad's seed names hess_tensor_new */
    }
    expect_values(da, 2, I64(2, 4), (const double[]){3, 0, 0, 6, 0, 2, 0, 0});
    double jv[8];
    if (hess_jvp(ctx, da, 1, &a, OOM_V, jv) != HESS_OK)
        return "hess_jvp";
    /* d/dt of 2 scatter_add(g) = 2 scatter_add(gather(v)) */
    assert_close_array(jv, ((const double[]){3, 0, 0, 6, 0, 2, 0, 0}), 8, 0, 0);
    return "";
}

/* cat with one constant side in forward mode: zeros for that side */
static const char *oom_cat_tangent(hess_context *ctx)
{
    hess_tensor *p = hess_param_new(ctx, 1, I64(2), OOM_V);
    hess_tensor *c = p ? hess_tensor_new(ctx, 1, I64(3), OOM_V) : NULL;
    hess_tensor *y = c ? hess_cat(ctx, 2, TS(c, p), 0) : NULL;
    if (!y)
        return NULL;
    double jv[5];
    if (hess_jvp(ctx, y, 1, &p, (const double[]){1, 2}, jv) != HESS_OK)
        return "hess_jvp";
    assert_close_array(jv, ((const double[]){0, 0, 0, 1, 2}), 5, 0, 0);
    return "";
}

/* a vector times a batch of matrices (reshaped around one product), and its
 * Hessian in sweeps of 3 rows */
static const char *oom_matmul(hess_context *ctx)
{
    hess_tensor *v = hess_param_new(ctx, 1, I64(2), OOM_V);
    hess_tensor *A = v ? hess_param_new(ctx, 3, I64(2, 2, 2), OOM_V) : NULL;
    if (!A)
        return NULL;
    hess_tensor *y = hess_matmul(ctx, v, A); /* y[b, j] = sum_k v[k] A[b, k, j] */
    if (!y) {
        oom_inputs_kept(&v, 1);
        oom_inputs_kept(&A, 1);
        return "hess_matmul";
    }
    expect_values(y, 2, I64(2, 2), (const double[]){1.75, -9, -5.5, 2.25});
    hess_tensor *L = hess_sum(ctx, y), *ps[2] = {v, A};
    if (!L)
        return "hess_sum";
    double H[100];
    hess_hessian_opts o = {0};
    o.block_rows = 3;
    if (hess_hessian_ex(ctx, L, 2, ps, &o, H) != HESS_OK)
        return "hess_hessian"; /* the name hess_hessian_ex gives */
    /* d2L / dv_k dA_bkj = 1 */
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 10; j++) {
            const int lo = i < j ? i : j, hi = i < j ? j : i;
            const double want = lo < 2 && hi >= 2 && (hi - 2) % 4 / 2 == lo;
            assert_true(H[i * 10 + j] == want);
        }
    return "";
}

/* a matrix times a vector, M b: its gradient in M is the outer form w b^T,
 * which the Hessian's sweeps of 2 rows differentiate with 2 directions at
 * once */
static const char *oom_matvec(hess_context *ctx)
{
    hess_tensor *M = hess_param_new(ctx, 2, I64(3, 2), OOM_V);
    hess_tensor *b = M ? hess_param_new(ctx, 1, I64(2), OOM_V) : NULL;
    hess_tensor *w = b ? hess_tensor_new(ctx, 1, I64(3), OOM_V + 5) : NULL; /* 0.5, 2, -0.75 */
    if (!w)
        return NULL;
    hess_tensor *y = hess_matmul(ctx, M, b);
    if (!y)
        return "hess_matmul";
    expect_values(y, 1, I64(3), (const double[]){6.25, -5.625, -2.5});
    hess_tensor *wy = hess_mul(ctx, w, y);
    hess_tensor *L = wy ? hess_sum(ctx, wy) : NULL, *ps[2] = {M, b};
    if (!L)
        return "hess_mul|hess_sum";
    double H[64];
    hess_hessian_opts o = {0};
    o.block_rows = 2;
    if (hess_hessian_ex(ctx, L, 2, ps, &o, H) != HESS_OK)
        return "hess_hessian";
    for (int i = 0; i < 8; i++) /* d2L / dM_ij db_j = w_i */
        for (int j = 0; j < 8; j++) {
            const int lo = i < j ? i : j, hi = i < j ? j : i;
            const bool pair = lo < 6 && hi >= 6 && lo % 2 == hi - 6;
            assert_true(H[i * 8 + j] == (pair ? OOM_V[5 + lo / 2] : 0.0));
        }
    return "";
}

/* the Jacobian of a batch of matrices times a weight, A B, in B: tangents of
 * B behind the directions meet A's batch */
static const char *oom_matmul_tangent(hess_context *ctx)
{
    hess_tensor *A = hess_tensor_new(ctx, 3, I64(2, 2, 2), OOM_V);
    hess_tensor *B = A ? hess_param_new(ctx, 2, I64(2, 1), OOM_V) : NULL;
    hess_tensor *y = B ? hess_matmul(ctx, A, B) : NULL; /* [2,2,1] */
    if (!y)
        return NULL;
    double J[8];
    if (hess_jacobian(ctx, y, 1, &B, J) != HESS_OK)
        return "hess_jacobian";
    assert_memory_equal(J, OOM_V, sizeof J); /* dy[b,i] / dB[k] = A[b,i,k] */
    return "";
}

/* HESS_ERR_NOMEM, recorded by one of the functions named in fns ("a|b") */
static void oom_check(hess_context *ctx, const char *fns)
{
    const char *msg = hess_context_errmsg(ctx);
    assert_int_equal(hess_context_status(ctx), HESS_ERR_NOMEM);
    assert_non_null(strstr(msg, ": out of memory ("));
    bool named = false;
    for (const char *f = fns; *f && !named;) {
        const size_t n = strcspn(f, "|");
        named = strncmp(msg, f, n) == 0 && msg[n] == ':';
        f += n + (f[n] == '|');
    }
    if (!named)
        fail_msg("message \"%s\" names none of %s", msg, fns);
    hess_context_clear_error(ctx);
}

/* Runs `run` under every byte limit from 0 up to what it takes unlimited (in
 * steps of 8 bytes, first blocks of 64 bytes, so that each arena allocation
 * can be the one that fails): each run ends well, or with HESS_ERR_NOMEM
 * recorded by the function that failed; both happen. */
static void oom_sweep(oom_run run)
{
    hess_context *ctx;
    hess_config cfg = {0};
    cfg.block_bytes = 64;
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    assert_string_equal(run(ctx), "");
    const size_t top = hess_context_bytes(ctx) + 256;
    hess_context_destroy(ctx);
    int failed = 0, passed = 0;
    for (cfg.max_bytes = 8; cfg.max_bytes <= top; cfg.max_bytes += 8) {
        if (hess_context_create(&cfg, &ctx) != HESS_OK)
            continue;
        const char *fn = run(ctx);
        if (fn && *fn) {
            oom_check(ctx, fn);
            failed++;
        } else if (fn) {
            assert_ok(ctx, hess_context_status(ctx));
            passed++;
        }
        hess_context_destroy(ctx);
    }
    assert_true(failed > 0 && passed > 0);
}

static void test_refs_shape_out_of_memory(void **state)
{
    (void)state;
    const oom_run runs[] = {oom_stack,       oom_cat,    oom_index_select, oom_gather,
                            oom_cat_tangent, oom_matmul, oom_matvec,       oom_matmul_tangent};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++)
        oom_sweep(runs[i]);
}

/* ------------------------------------------------------------------------ */
/* Products: the vector, batched and transposed forms, second derivatives   */
/* ------------------------------------------------------------------------ */

/* L = sum of w * (a product of two parameters) over several products, each
 * bilinear: d2L / dx dy = w where the product multiplies x by y.  The
 * products: X^T Y, X Y2^T, X^T Y3^T (matrices), X^T b (a matrix with a
 * vector), a e^T (the outer form of two vectors), u A (a vector with a batch
 * of matrices), A v (a batch with a vector).  Parameters in that order:
 * X [3,2], Y [3,4], Y2 [4,2], Y3 [4,3], b [3], a [3], e [2], A [2,3,4],
 * v [4], u [3]; N = 6 + 12 + 8 + 12 + 3 + 3 + 2 + 24 + 4 + 3 = 77. */
enum { MM_NP = 10, MM_N = 77 };

typedef struct mmodel {
    hess_tensor *p[MM_NP], *L;
    int off[MM_NP];
    double w[7][16];
} mmodel;

static void mm_pair(double *H, const mmodel *m, int pi, int i, int pj, int j, double w)
{
    const int a = m->off[pi] + i, b = m->off[pj] + j;
    H[a * MM_N + b] += w;
    H[b * MM_N + a] += w;
}

static void mm_hessian(const mmodel *m, double *H)
{
    memset(H, 0, MM_N * MM_N * sizeof *H);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 3; k++) {
                mm_pair(H, m, 0, k * 2 + i, 1, k * 4 + j, m->w[0][i * 4 + j]); /* X^T Y */
                mm_pair(H, m, 0, k * 2 + i, 3, j * 3 + k, m->w[2][i * 4 + j]); /* X^T Y3^T */
            }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 2; k++)
                mm_pair(H, m, 0, i * 2 + k, 2, j * 2 + k, m->w[1][i * 4 + j]); /* X Y2^T */
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++)
            mm_pair(H, m, 0, k * 2 + i, 4, k, m->w[3][i]); /* X^T b */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++)
            mm_pair(H, m, 5, i, 6, j, m->w[4][i * 2 + j]); /* a e^T */
    for (int bb = 0; bb < 2; bb++)
        for (int k = 0; k < 3; k++)
            for (int j = 0; j < 4; j++) {
                const int ai = (bb * 3 + k) * 4 + j;
                mm_pair(H, m, 7, ai, 9, k, m->w[5][bb * 4 + j]); /* u A: [2,4] */
                mm_pair(H, m, 7, ai, 8, j, m->w[6][bb * 3 + k]); /* A v: [2,3] */
            }
}

static hess_tensor *mm_term(hess_context *ctx, hess_tensor *y, const double *w)
{
    return y ? weighted(ctx, y, w) : NULL;
}

static void mm_build(hess_context *ctx, mmodel *m)
{
    static const int nd[MM_NP] = {2, 2, 2, 2, 1, 1, 1, 3, 1, 1};
    static const int64_t shapes[MM_NP][3] = {{3, 2}, {3, 4}, {4, 2},    {4, 3}, {3},
                                             {3},    {2},    {2, 3, 4}, {4},    {3}};
    uint64_t s = 0x3a7b1c;
    double v[24];
    int off = 0;
    for (int i = 0; i < MM_NP; i++) {
        int64_t n = 1;
        for (int d = 0; d < nd[i]; d++)
            n *= shapes[i][d];
        for (int64_t e = 0; e < n; e++)
            v[e] = rnd_uniform(&s, -1.0, 1.0);
        m->p[i] = param(ctx, nd[i], shapes[i], v);
        m->off[i] = off;
        off += (int)n;
    }
    assert_int_equal(off, MM_N);
    for (int t = 0; t < 7; t++)
        for (int e = 0; e < 16; e++)
            m->w[t][e] = rnd_uniform(&s, -1.0, 1.0);
    hess_tensor **p = m->p;
    hess_tensor *terms[7] = {
        mm_term(ctx, hess__matmul_t(ctx, p[0], p[1], true, false, "t"), m->w[0]),
        mm_term(ctx, hess__matmul_t(ctx, p[0], p[2], false, true, "t"), m->w[1]),
        mm_term(ctx, hess__matmul_t(ctx, p[0], p[3], true, true, "t"), m->w[2]),
        mm_term(ctx, hess__matmul_t(ctx, p[0], p[4], true, false, "t"), m->w[3]),
        mm_term(ctx, hess__matmul_t(ctx, p[5], p[6], true, true, "t"), m->w[4]),
        mm_term(ctx, hess_matmul(ctx, p[9], p[7]), m->w[5]),
        mm_term(ctx, hess_matmul(ctx, p[7], p[8]), m->w[6])};
    m->L = terms[0];
    for (int t = 1; t < 7; t++)
        m->L = hess_add(ctx, m->L, terms[t]);
    assert_ok(ctx, hess_context_status(ctx));
}

/* The Hessian of the products in sweeps of 1, 4 and all rows (the batched
 * rules of each form, and the one-hot directions of the sweeps in the
 * products), the Jacobian of the gradient (their forward-mode rules, batched)
 * and H v by both modes. */
static void test_refs_shape_matmul_forms_second_derivatives(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    static mmodel m;
    static double H[MM_N * MM_N], got[MM_N * MM_N];
    mm_build(ctx, &m);
    mm_hessian(&m, H);
    const size_t rows[] = {1, 4, MM_N, 0};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        hess_hessian_opts o = {0};
        o.block_rows = rows[i];
        memset(got, 0, sizeof got);
        assert_ok(ctx, hess_hessian_ex(ctx, m.L, MM_NP, m.p, &o, got));
        assert_close_array(got, H, MM_N * MM_N, XTOL, XTOL);
    }
    hess_tensor *g[MM_NP];
    assert_ok(ctx, hess_grad(ctx, m.L, MM_NP, m.p, g, HESS_CREATE_GRAPH));
    hess_tensor *flat[MM_NP];
    for (int i = 0; i < MM_NP; i++)
        flat[i] = hess_reshape(ctx, g[i], 1, I64(-1));
    hess_tensor *gall = hess_cat(ctx, MM_NP, flat, 0);
    memset(got, 0, sizeof got);
    assert_ok(ctx, hess_jacobian(ctx, gall, MM_NP, m.p, got));
    assert_close_array(got, H, MM_N * MM_N, XTOL, XTOL);
    double v[MM_N], hv[MM_N], want[MM_N];
    for (int i = 0; i < MM_N; i++)
        v[i] = sin(0.7 * i + 0.2);
    for (int i = 0; i < MM_N; i++) {
        want[i] = 0;
        for (int j = 0; j < MM_N; j++)
            want[i] += H[i * MM_N + j] * v[j];
    }
    assert_ok(ctx, hess_hvp(ctx, m.L, MM_NP, m.p, v, hv));
    assert_close_array(hv, want, MM_N, XTOL, XTOL);
    assert_ok(ctx, hess_hvp_fwd(ctx, m.L, MM_NP, m.p, v, hv));
    assert_close_array(hv, want, MM_N, XTOL, XTOL);
    assert_ok(ctx, hess_jvp(ctx, gall, MM_NP, m.p, v, hv));
    assert_close_array(hv, want, MM_N, XTOL, XTOL);
    /* a bilinear form: no parameter meets itself */
    double d[MM_N];
    assert_ok(ctx, hess_hessian_diag(ctx, m.L, MM_NP, m.p, d));
    for (int i = 0; i < MM_N; i++)
        assert_true(d[i] == 0.0);
    hess_context_destroy(ctx);
}

int main(void)
{
    static const struct CMUnitTest more[] = {
        cmocka_unit_test(test_refs_shape_slice_records),
        cmocka_unit_test(test_refs_shape_index_records),
        cmocka_unit_test(test_refs_shape_gather_cat_permute_records),
        cmocka_unit_test(test_refs_shape_selection_second_derivatives),
        cmocka_unit_test(test_refs_shape_selection_jacobians),
        cmocka_unit_test(test_refs_shape_gather_computed_index),
        cmocka_unit_test(test_refs_shape_gather_index_has_no_derivative),
        cmocka_unit_test(test_refs_shape_gather_leaf_in_two_roles),
        cmocka_unit_test(test_refs_shape_gather_diagonal_per_sample),
        cmocka_unit_test(test_refs_shape_views),
        cmocka_unit_test(test_refs_shape_steps_and_axes),
        cmocka_unit_test(test_refs_shape_cat_tangent_one_side),
        cmocka_unit_test(test_refs_shape_reshape_back_to_seed),
        cmocka_unit_test(test_refs_shape_out_of_memory),
        cmocka_unit_test(test_refs_shape_matmul_forms_second_derivatives),
    };
    enum { N_MORE = sizeof more / sizeof more[0] };
    struct CMUnitTest tests[N_ROWS + 1 + N_MORE];
    tests[0] = (struct CMUnitTest)cmocka_unit_test(test_refs_shape_every_case_claimed);
    char names[N_ROWS][80];
    for (size_t i = 0; i < N_ROWS; i++) {
        snprintf(names[i], sizeof names[i], "test_refs_shape_%s", ROWS[i].name);
        tests[i + 1] = (struct CMUnitTest){names[i], test_refs_shape_case, NULL, NULL, &ROWS[i]};
    }
    for (size_t i = 0; i < N_MORE; i++)
        tests[N_ROWS + 1 + i] = more[i];
    return cmocka_run_group_tests(tests, NULL, NULL);
}
