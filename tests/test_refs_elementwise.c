/*
 * test_refs_elementwise.c -- the elementwise ops against PyTorch: the op
 * reference cases of tests/data/ops/ (tests/data/README.md, "Op reference
 * cases"; PyTorch 1.13, float64) whose model is an elementwise op.
 *
 * Each case is one row: the case name, its model line as the file spells it
 * (checked, so that a regenerated file with another call fails), and a C
 * builder of that call.  For every row the file is read with hess_load_ref
 * ("param:" inputs become parameters), the model is built, and libhessian's
 * results are compared with PyTorch's, each tensor at RTOL relative to its
 * largest element:
 *   out        the model's value;
 *   grad:inK   hess_grad of L = sum(out * w);
 *   hdiag:inK  hess_hessian_diag (the default method), and again forced to
 *              the curvature backpropagation (HESS_DIAG_BACKPROP), which must
 *              cover every case of these ops;
 *   hvp:inK    hess_hvp along the file's v (the v:inK concatenated);
 *   hess       hess_hessian, when the file has it.
 * test_refs_elementwise_cover_every_case fails when a case file whose model
 * calls these ops only has no row here, or a row is not such a case.
 */
#define _POSIX_C_SOURCE 200809L /* opendir, readdir */
#include "check.h"

#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RTOL  1e-12 /* relative to the largest element of each tensor */
#define MAXIN 4     /* inputs of a model */
#define MAXN  256   /* differentiated elements of a case */

/* ------------------------------------------------------------------------ */
/* The builders: one per model line                                         */
/* ------------------------------------------------------------------------ */

typedef hess_tensor *(*ref_build)(hess_context *ctx, hess_tensor *const in[]);

#define UNARY(fn)                                                                                  \
    static hess_tensor *b_##fn(hess_context *ctx, hess_tensor *const in[])                         \
    {                                                                                              \
        return hess_##fn(ctx, in[0]);                                                              \
    }
#define BINARY(fn)                                                                                 \
    static hess_tensor *b_##fn(hess_context *ctx, hess_tensor *const in[])                         \
    {                                                                                              \
        return hess_##fn(ctx, in[0], in[1]);                                                       \
    }
/* name: a builder of hess_fn(ctx, in0, args...) */
#define WITH(name, fn, ...)                                                                        \
    static hess_tensor *b_##name(hess_context *ctx, hess_tensor *const in[])                       \
    {                                                                                              \
        return hess_##fn(ctx, in[0], __VA_ARGS__);                                                 \
    }

BINARY(add)
BINARY(sub)
BINARY(mul)
BINARY(div)
BINARY(maximum)
BINARY(minimum)
BINARY(pow_t)
UNARY(neg)
UNARY(exp)
UNARY(log)
UNARY(sin)
UNARY(cos)
UNARY(sqrt)
UNARY(square)
UNARY(relu)
UNARY(sigmoid)
UNARY(softplus)
UNARY(tanh)
UNARY(abs)
UNARY(log1p)
UNARY(expm1)
UNARY(reciprocal)
UNARY(rsqrt)
UNARY(erf)
UNARY(silu)
UNARY(gelu)
UNARY(gelu_tanh)
WITH(mul_self, mul, in[0])
WITH(scale, scale, -1.5)
WITH(pow_2, pow, 2.0)
WITH(pow_3, pow, 3.0)
WITH(pow_half, pow, 0.5)
WITH(pow_neg_frac, pow, -1.5)
WITH(pow_neg_int, pow, -2.0)
WITH(pow_0, pow, 0.0)
WITH(clamp, clamp, -0.5, 0.5)
WITH(clamp_lo, clamp, -0.5, INFINITY)
WITH(clamp_hi, clamp, -INFINITY, 0.25)
WITH(elu_07, elu, 0.7)
WITH(elu_1, elu, 1.0)
WITH(elu_05, elu, 0.5)
WITH(leaky_01, leaky_relu, 0.1)
WITH(leaky_02, leaky_relu, 0.2)

static hess_tensor *b_where(hess_context *ctx, hess_tensor *const in[])
{
    return hess_where(ctx, in[0], in[1], in[2]);
}

/* hess_detach in elementwise models: a constant where it stands */
static hess_tensor *b_detach_cross(hess_context *ctx, hess_tensor *const in[])
{
    return hess_add(ctx, hess_square(ctx, in[0]), hess_mul(ctx, hess_detach(ctx, in[0]), in[1]));
}

static hess_tensor *b_detach_square(hess_context *ctx, hess_tensor *const in[])
{
    return hess_mul(ctx, hess_detach(ctx, hess_exp(ctx, in[0])), hess_exp(ctx, in[0]));
}

/* ------------------------------------------------------------------------ */
/* The cases                                                                */
/* ------------------------------------------------------------------------ */

typedef struct ref_row {
    const char *name;  /* the case: tests/data/ops/<name>.ref */
    const char *model; /* its model line, as the file has it */
    ref_build build;
} ref_row;

#define M_BIN(fn) "hess_" #fn "(ctx, in0, in1)"
#define M_UN(fn)  "hess_" #fn "(ctx, in0)"

static ref_row rows[] = {
    {"detach_cross",
     "hess_add(ctx, hess_square(ctx, in0), hess_mul(ctx, hess_detach(ctx, in0), in1))",
     b_detach_cross},
    {"detach_square", "hess_mul(ctx, hess_detach(ctx, hess_exp(ctx, in0)), hess_exp(ctx, in0))",
     b_detach_square},
    /* the ops of issue 16 */
    {"abs", M_UN(abs), b_abs},
    {"abs_kink", M_UN(abs), b_abs},
    {"clamp", "hess_clamp(ctx, in0, -0.5, 0.5)", b_clamp},
    {"clamp_kink", "hess_clamp(ctx, in0, -0.5, 0.5)", b_clamp},
    {"clamp_lo_only", "hess_clamp(ctx, in0, -0.5, inf)", b_clamp_lo},
    {"clamp_lo_only_kink", "hess_clamp(ctx, in0, -0.5, inf)", b_clamp_lo},
    {"clamp_hi_only", "hess_clamp(ctx, in0, -inf, 0.25)", b_clamp_hi},
    {"elu", "hess_elu(ctx, in0, 0.7)", b_elu_07},
    {"elu_alpha1", "hess_elu(ctx, in0, 1)", b_elu_1},
    {"elu_kink", "hess_elu(ctx, in0, 0.5)", b_elu_05},
    {"erf", M_UN(erf), b_erf},
    {"expm1", M_UN(expm1), b_expm1},
    {"expm1_small", M_UN(expm1), b_expm1},
    {"gelu", M_UN(gelu), b_gelu},
    {"gelu_tanh", M_UN(gelu_tanh), b_gelu_tanh},
    {"leaky_relu", "hess_leaky_relu(ctx, in0, 0.1)", b_leaky_01},
    {"leaky_relu_kink", "hess_leaky_relu(ctx, in0, 0.2)", b_leaky_02},
    {"log1p", M_UN(log1p), b_log1p},
    {"maximum", M_BIN(maximum), b_maximum},
    {"maximum_bcast", M_BIN(maximum), b_maximum},
    {"maximum_tie", M_BIN(maximum), b_maximum},
    {"maximum_tie_bcast", M_BIN(maximum), b_maximum},
    {"minimum", M_BIN(minimum), b_minimum},
    {"minimum_bcast", M_BIN(minimum), b_minimum},
    {"minimum_tie", M_BIN(minimum), b_minimum},
    {"pow_t", M_BIN(pow_t), b_pow_t},
    {"pow_t_bcast", M_BIN(pow_t), b_pow_t},
    {"pow_t_const_exp", M_BIN(pow_t), b_pow_t},
    {"pow_t_scalar_exp", M_BIN(pow_t), b_pow_t},
    {"reciprocal", M_UN(reciprocal), b_reciprocal},
    {"rsqrt", M_UN(rsqrt), b_rsqrt},
    {"silu", M_UN(silu), b_silu},
    {"where", "hess_where(ctx, in0, in1, in2)", b_where},
    {"where_bcast", "hess_where(ctx, in0, in1, in2)", b_where},
    {"where_bcast_cond", "hess_where(ctx, in0, in1, in2)", b_where},
    /* the elementwise ops before it */
    {"add", M_BIN(add), b_add},
    {"add_bcast_row", M_BIN(add), b_add},
    {"add_bcast_both", M_BIN(add), b_add},
    {"add_scalar", M_BIN(add), b_add},
    {"sub", M_BIN(sub), b_sub},
    {"sub_bcast_row", M_BIN(sub), b_sub},
    {"sub_bcast_both", M_BIN(sub), b_sub},
    {"sub_scalar", M_BIN(sub), b_sub},
    {"mul", M_BIN(mul), b_mul},
    {"mul_bcast_row", M_BIN(mul), b_mul},
    {"mul_bcast_both", M_BIN(mul), b_mul},
    {"mul_scalar", M_BIN(mul), b_mul},
    {"mul_self", "hess_mul(ctx, in0, in0)", b_mul_self},
    {"div", M_BIN(div), b_div},
    {"div_bcast_row", M_BIN(div), b_div},
    {"div_bcast_both", M_BIN(div), b_div},
    {"div_scalar", M_BIN(div), b_div},
    {"div_const_denominator", M_BIN(div), b_div},
    {"neg", M_UN(neg), b_neg},
    {"scale", "hess_scale(ctx, in0, -1.5)", b_scale},
    {"exp", M_UN(exp), b_exp},
    {"log", M_UN(log), b_log},
    {"sin", M_UN(sin), b_sin},
    {"cos", M_UN(cos), b_cos},
    {"sqrt", M_UN(sqrt), b_sqrt},
    {"square", M_UN(square), b_square},
    {"pow_2", "hess_pow(ctx, in0, 2)", b_pow_2},
    {"pow_2_at_zero", "hess_pow(ctx, in0, 2)", b_pow_2},
    {"pow_3", "hess_pow(ctx, in0, 3)", b_pow_3},
    {"pow_half", "hess_pow(ctx, in0, 0.5)", b_pow_half},
    {"pow_neg_frac", "hess_pow(ctx, in0, -1.5)", b_pow_neg_frac},
    {"pow_neg_int", "hess_pow(ctx, in0, -2)", b_pow_neg_int},
    {"pow_zero_exponent", "hess_pow(ctx, in0, 0)", b_pow_0},
    {"relu", M_UN(relu), b_relu},
    {"relu_kink", M_UN(relu), b_relu},
    {"sigmoid", M_UN(sigmoid), b_sigmoid},
    {"softplus", M_UN(softplus), b_softplus},
    {"tanh", M_UN(tanh), b_tanh},
};
#define N_ROWS (sizeof rows / sizeof rows[0])

/* The functions whose cases are this file's: a case file whose model calls
 * only them must have a row. */
static const char *const OPS[] = {
    "hess_abs",     "hess_clamp",     "hess_elu",        "hess_erf",   "hess_expm1",
    "hess_gelu",    "hess_gelu_tanh", "hess_leaky_relu", "hess_log1p", "hess_maximum",
    "hess_minimum", "hess_pow_t",     "hess_reciprocal", "hess_rsqrt", "hess_silu",
    "hess_where",   "hess_add",       "hess_sub",        "hess_mul",   "hess_div",
    "hess_neg",     "hess_scale",     "hess_exp",        "hess_log",   "hess_sin",
    "hess_cos",     "hess_sqrt",      "hess_square",     "hess_pow",   "hess_relu",
    "hess_sigmoid", "hess_softplus",  "hess_tanh",       "hess_detach"};
#define N_OPS (sizeof OPS / sizeof OPS[0])

/* ------------------------------------------------------------------------ */
/* Comparing                                                                */
/* ------------------------------------------------------------------------ */

/* Fails unless |got - want| <= RTOL * max|want| everywhere (RTOL absolute
 * for a tensor of zeros), naming the case and the tensor. */
static void
compare(const char *name, const char *what, const double *got, const double *want, int64_t n)
{
    double scale = 0.0;
    for (int64_t i = 0; i < n; i++)
        scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
    if (scale == 0.0)
        scale = 1.0;
    for (int64_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= RTOL * scale))
            fail_msg("%s: %s[%lld] = %.17g, PyTorch %.17g (error %.3g, largest %.3g)", name, what,
                     (long long)i, got[i], want[i], fabs(got[i] - want[i]), scale);
}

static const hess_tensor *need(const hess_ref_file *f, const char *name, const char *tname)
{
    const hess_tensor *t = hess_ref_find(f, tname);
    if (!t)
        fail_msg("%s: the file has no tensor %s", name, tname);
    return t;
}

static void compare_tensor(
    const char *name, const hess_ref_file *f, const char *tname, const double *got, int64_t n)
{
    const hess_tensor *want = need(f, name, tname);
    if (hess_tensor_numel(want) != n)
        fail_msg("%s: %s has %lld elements, expected %lld", name, tname,
                 (long long)hess_tensor_numel(want), (long long)n);
    compare(name, tname, got, hess_tensor_data(want), n);
}

/* ------------------------------------------------------------------------ */
/* One case                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct loaded {
    hess_tensor *in[MAXIN], *param[MAXIN];
    int n_in, np, pidx[MAXIN]; /* param[j] is in[pidx[j]] */
    size_t off[MAXIN + 1];     /* param j's elements at off[j] of the flattening */
} loaded;

/* The inputs in0, in1, ... in index order, as parameters or constants. */
static void inputs(const char *name, const hess_ref_file *f, loaded *L)
{
    memset(L, 0, sizeof *L);
    for (int k = 0; k < MAXIN; k++) {
        char pn[32], cn[32];
        snprintf(pn, sizeof pn, "param:in%d", k);
        snprintf(cn, sizeof cn, "input:in%d", k);
        hess_tensor *p = hess_ref_find(f, pn), *c = hess_ref_find(f, cn);
        if (!p && !c)
            break;
        L->in[L->n_in++] = p ? p : c;
        if (p) {
            assert_true(hess_tensor_is_param(p));
            L->pidx[L->np] = k;
            L->param[L->np] = p;
            L->off[L->np + 1] = L->off[L->np] + (size_t)hess_tensor_numel(p);
            L->np++;
        }
    }
    if (L->np == 0 || L->off[L->np] > MAXN)
        fail_msg("%s: %d parameters, %zu elements: not a case this test reads", name, L->np,
                 L->off[L->np]);
}

static void check_case(const ref_row *r)
{
    hess_context *ctx = test_context();
    char path[96];
    snprintf(path, sizeof path, "ops/%s.ref", r->name);
    hess_ref_file f;
    assert_ok(ctx, hess_load_ref(ctx, data_path(path), "param:", &f));
    if (strcmp(f.model, r->model) != 0)
        fail_msg("%s: the file's model is \"%s\", the row builds \"%s\"", r->name, f.model,
                 r->model);
    loaded L;
    inputs(r->name, &f, &L);
    const size_t N = L.off[L.np], np = (size_t)L.np;

    /* the value and L = sum(out * w) */
    hess_tensor *out = r->build(ctx, L.in);
    assert_ok(ctx, hess_context_status(ctx));
    compare_tensor(r->name, &f, "out", hess_tensor_data(out), hess_tensor_numel(out));
    need(&f, r->name, "w");
    hess_tensor *loss = hess_sum(ctx, hess_mul(ctx, out, hess_ref_find(&f, "w")));
    assert_ok(ctx, hess_context_status(ctx));

    /* the gradient, the diagonal both ways, the HVP */
    hess_tensor *g[MAXIN];
    assert_ok(ctx, hess_grad(ctx, loss, np, L.param, g, 0));
    static double d[MAXN], db[MAXN], v[MAXN], hv[MAXN], H[MAXN * MAXN];
    assert_ok(ctx, hess_hessian_diag(ctx, loss, np, L.param, d));
    hess_hessian_opts o = {0};
    int used = -1;
    o.method = HESS_DIAG_BACKPROP;
    o.method_used = &used;
    const hess_status st = hess_hessian_diag_ex(ctx, loss, np, L.param, &o, db);
    if (st != HESS_OK)
        fail_msg("%s: the curvature backpropagation refused: %s", r->name,
                 hess_context_errmsg(ctx));
    assert_int_equal(used, HESS_DIAG_BACKPROP);
    for (int j = 0; j < L.np; j++) {
        char tn[32];
        snprintf(tn, sizeof tn, "v:in%d", L.pidx[j]);
        const hess_tensor *vj = need(&f, r->name, tn);
        assert_int_equal(hess_tensor_numel(vj), (int64_t)(L.off[j + 1] - L.off[j]));
        memcpy(v + L.off[j], hess_tensor_data(vj), (L.off[j + 1] - L.off[j]) * sizeof *v);
    }
    assert_ok(ctx, hess_hvp(ctx, loss, np, L.param, v, hv));
    for (int j = 0; j < L.np; j++) {
        char tn[32];
        const int64_t n = (int64_t)(L.off[j + 1] - L.off[j]);
        snprintf(tn, sizeof tn, "grad:in%d", L.pidx[j]);
        compare_tensor(r->name, &f, tn, hess_tensor_data(g[j]), hess_tensor_numel(g[j]));
        snprintf(tn, sizeof tn, "hdiag:in%d", L.pidx[j]);
        compare_tensor(r->name, &f, tn, d + L.off[j], n);
        compare_tensor(r->name, &f, tn, db + L.off[j], n);
        snprintf(tn, sizeof tn, "hvp:in%d", L.pidx[j]);
        compare_tensor(r->name, &f, tn, hv + L.off[j], n);
    }

    /* the Hessian, when the file has it */
    if (hess_ref_find(&f, "hess")) {
        assert_ok(ctx, hess_hessian(ctx, loss, np, L.param, H));
        compare_tensor(r->name, &f, "hess", H, (int64_t)(N * N));
    }
    hess_context_destroy(ctx);
}

static void test_ref_case(void **state)
{
    check_case(*state);
}

/* ------------------------------------------------------------------------ */
/* Coverage: every case file of these ops has a row                         */
/* ------------------------------------------------------------------------ */

/* Whether a model line calls these ops only (at least one): the cases about
 * another op (hess_detach, the composite models) call that op too. */
static bool only_these_ops(const char *model)
{
    int calls = 0;
    for (const char *p = strstr(model, "hess_"); p; p = strstr(p + 1, "hess_")) {
        const size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz_0123456789");
        bool ours = false;
        for (size_t i = 0; i < N_OPS; i++)
            ours = ours || (strlen(OPS[i]) == n && strncmp(p, OPS[i], n) == 0);
        if (!ours)
            return false;
        calls++;
    }
    return calls > 0;
}

static void test_refs_elementwise_cover_every_case(void **state)
{
    (void)state;
    DIR *dir = opendir(data_path("ops"));
    if (!dir)
        fail_msg("cannot open %s", data_path("ops"));
    char missing[2048] = "";
    int files = 0, mine = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        const size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".ref") != 0)
            continue;
        files++;
        char path[300], name[256];
        snprintf(name, sizeof name, "%.*s", (int)(n - 4), e->d_name);
        snprintf(path, sizeof path, "ops/%s", e->d_name);
        hess_context *ctx = test_context();
        hess_ref_file f;
        assert_ok(ctx, hess_load_ref(ctx, data_path(path), NULL, &f));
        const bool ours = only_these_ops(f.model);
        bool claimed = false;
        for (size_t i = 0; i < N_ROWS; i++)
            claimed = claimed || strcmp(name, rows[i].name) == 0;
        if (ours && !claimed)
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " %s (%s)", name,
                     f.model);
        mine += ours;
        hess_context_destroy(ctx);
    }
    closedir(dir);
    if (missing[0])
        fail_msg("case files of the elementwise ops without a row:%s", missing);
    /* and every row is a case of these ops */
    assert_int_equal(mine, (int)N_ROWS);
    assert_true(files > (int)N_ROWS);
}

int main(void)
{
    struct CMUnitTest tests[N_ROWS + 1];
    char names[N_ROWS][80];
    tests[0] = (struct CMUnitTest)cmocka_unit_test(test_refs_elementwise_cover_every_case);
    for (size_t i = 0; i < N_ROWS; i++) {
        snprintf(names[i], sizeof names[i], "test_ref_%s", rows[i].name);
        tests[i + 1] = (struct CMUnitTest){names[i], test_ref_case, NULL, NULL, &rows[i]};
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
