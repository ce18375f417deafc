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
#include "alloc.h"
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

/* ------------------------------------------------------------------------ */
/* Beyond the reference cases: every broadcast form of the row kernels, on  */
/* the AVX2 and the portable kernels; the rules with one operand constant;  */
/* the batched passes; non-finite values                                    */
/* ------------------------------------------------------------------------ */

#define SH3 ((const int64_t[]){3})

typedef hess_tensor *(*bin_fn)(hess_context *ctx, hess_tensor *a, hess_tensor *b);

static double r_add(double x, double y)
{
    return x + y;
}
static double r_sub(double x, double y)
{
    return x - y;
}
static double r_mul(double x, double y)
{
    return x * y;
}
static double r_div(double x, double y)
{
    return x / y;
}
/* PyTorch's maximum and minimum: NaN if either is, else a at a tie (so
 * maximum(-0, 0) is -0) */
static double r_max(double x, double y)
{
    return isnan(x) || isnan(y) ? NAN : x < y ? y : x;
}
static double r_min(double x, double y)
{
    return isnan(x) || isnan(y) ? NAN : y < x ? y : x;
}
static double r_pow(double x, double y)
{
    return pow(x, y);
}
/* maximum's derivative in its first operand: 1 above, 1/2 at a tie, 0 below;
 * 1 with a NaN (PyTorch keeps the whole gradient then) */
static double r_mask(double x, double y)
{
    return x < y ? 0.0 : x == y ? 0.5 : 1.0;
}

static const struct {
    const char *name;
    bin_fn f;
    double (*ref)(double, double);
} BIN[] = {{"add", hess_add, r_add},         {"sub", hess_sub, r_sub},
           {"mul", hess_mul, r_mul},         {"div", hess_div, r_div},
           {"maximum", hess_maximum, r_max}, {"minimum", hess_minimum, r_min},
           {"pow_t", hess_pow_t, r_pow}};
#define N_BIN (sizeof BIN / sizeof BIN[0])

/* Operand shapes (rank <= 2, [] as rank 0) whose broadcasts give every row
 * form of the kernels: both operands walking the row, b repeated along it
 * (b [2,1], a scalar b), a repeated (the mirror images), and the outer
 * products, whose rows repeat one operand and walk the other. */
typedef struct bshape {
    int nd;
    int64_t s[2];
} bshape;
static const bshape PAIRS[][2] = {{{2, {2, 3}}, {2, {2, 3}}}, {{2, {2, 3}}, {2, {2, 1}}},
                                  {{2, {2, 1}}, {2, {2, 3}}}, {{2, {2, 3}}, {1, {3}}},
                                  {{1, {3}}, {2, {2, 3}}},    {{2, {2, 3}}, {0, {0}}},
                                  {{0, {0}}, {2, {2, 3}}},    {{2, {2, 1}}, {2, {1, 3}}},
                                  {{2, {1, 3}}, {2, {2, 1}}}, {{1, {1}}, {0, {0}}}};
#define N_PAIRS (sizeof PAIRS / sizeof PAIRS[0])

/* The element of an operand of shape t that the element (i, j) of a [2,3]
 * (or smaller) broadcast result reads: shapes align at the trailing end. */
static int64_t bidx(const bshape *t, int64_t i, int64_t j)
{
    if (t->nd == 0)
        return 0;
    if (t->nd == 1)
        return t->s[0] == 1 ? 0 : j;
    return (t->s[0] == 1 ? 0 : i) * t->s[1] + (t->s[1] == 1 ? 0 : j);
}

static int64_t bnumel(const bshape *t)
{
    return t->nd == 0 ? 1 : t->nd == 1 ? t->s[0] : t->s[0] * t->s[1];
}

/* The result's shape as [nrows, cols] (a rank-0 or rank-1 result has rows 1). */
static void bout(const bshape *a, const bshape *b, int64_t *nrows, int64_t *cols, int *nd)
{
    const int64_t ar = a->nd == 2 ? a->s[0] : 1, br = b->nd == 2 ? b->s[0] : 1;
    const int64_t ac = a->nd >= 1 ? a->s[a->nd - 1] : 1, bc = b->nd >= 1 ? b->s[b->nd - 1] : 1;
    *nrows = ar > br ? ar : br;
    *cols = ac > bc ? ac : bc;
    *nd = a->nd > b->nd ? a->nd : b->nd;
}

/* Fails unless got is want bit for bit (any NaN for a NaN). */
static void same_bits(const char *what, int64_t i, double got, double want)
{
    if (isnan(want) ? !isnan(got) : memcmp(&got, &want, sizeof got) != 0)
        fail_msg("%s[%lld] = %.17g, expected %.17g", what, (long long)i, got, want);
}

/* The values of every op over every broadcast pair, on the AVX2 kernels (if
 * the CPU has them) and on the portable ones (HESS_NO_SIMD): the scalar
 * formula bit for bit, with ties, signed zeros and a NaN among the values;
 * and the gradients of maximum and minimum (their mask kernel over the same
 * broadcasts), summed over the repeats. */
static void test_elementwise_broadcast_kernels(void **state)
{
    (void)state;
    static const double A[6] = {1.5, -2.0, 0.25, 3.0, -0.0, 2.0};
    static const double B[6] = {1.5, 0.5, 0.25, -4.0, 0.0, NAN};
    const unsigned flags[2] = {0u, HESS_NO_SIMD};
    for (int fl = 0; fl < 2; fl++) {
        hess_context *ctx = test_context_flags(flags[fl]);
        for (size_t p = 0; p < N_PAIRS; p++) {
            const bshape *sa = &PAIRS[p][0], *sb = &PAIRS[p][1];
            int64_t nr, cols;
            int nd;
            bout(sa, sb, &nr, &cols, &nd);
            /* b [2,3] holds the NaN: both masks are 1 there */
            hess_tensor *a = hess_param_new(ctx, sa->nd, sa->s, A);
            hess_tensor *b = hess_param_new(ctx, sb->nd, sb->s, B + (bnumel(sb) == 6 ? 0 : 1));
            const double *av = hess_tensor_data(a), *bv = hess_tensor_data(b);
            for (size_t k = 0; k < N_BIN; k++) {
                hess_tensor *out = BIN[k].f(ctx, a, b);
                assert_ok(ctx, hess_context_status(ctx));
                assert_int_equal(hess_tensor_ndim(out), nd);
                assert_int_equal(hess_tensor_numel(out), nr * cols);
                char what[64];
                snprintf(what, sizeof what, "%s (pair %zu, flags %u)", BIN[k].name, p, flags[fl]);
                for (int64_t i = 0; i < nr; i++)
                    for (int64_t j = 0; j < cols; j++)
                        same_bits(what, i * cols + j, hess_tensor_data(out)[i * cols + j],
                                  BIN[k].ref(av[bidx(sa, i, j)], bv[bidx(sb, i, j)]));
            }
            /* d sum(maximum(a, b)) = m(a, b) da + m(b, a) db, minimum's the mirror */
            for (int mn = 0; mn < 2; mn++) {
                hess_tensor *L =
                    hess_sum(ctx, mn ? hess_minimum(ctx, a, b) : hess_maximum(ctx, a, b));
                hess_tensor *wrt[2] = {a, b}, *g[2];
                assert_ok(ctx, hess_grad(ctx, L, 2, wrt, g, 0));
                double ga[6] = {0}, gb[6] = {0};
                for (int64_t i = 0; i < nr; i++)
                    for (int64_t j = 0; j < cols; j++) {
                        const double x = av[bidx(sa, i, j)], y = bv[bidx(sb, i, j)];
                        ga[bidx(sa, i, j)] += mn ? r_mask(y, x) : r_mask(x, y);
                        gb[bidx(sb, i, j)] += mn ? r_mask(x, y) : r_mask(y, x);
                    }
                for (int64_t i = 0; i < bnumel(sa); i++)
                    same_bits(mn ? "d minimum / da" : "d maximum / da", i,
                              hess_tensor_data(g[0])[i], ga[i]);
                for (int64_t i = 0; i < bnumel(sb); i++)
                    same_bits(mn ? "d minimum / db" : "d maximum / db", i,
                              hess_tensor_data(g[1])[i], gb[i]);
            }
        }
        hess_context_destroy(ctx);
    }
}

/* The Jacobian of out (n elements) with respect to p alone (n elements)
 * into J, by hess_jacobian (forward mode: n columns, a batched pass) and
 * checked against hess_jvp along each unit vector (one pass each). */
static void jac_both(hess_context *ctx, hess_tensor *out, hess_tensor *p, int64_t n, double *J)
{
    assert_ok(ctx, hess_jacobian(ctx, out, 1, &p, J));
    for (int64_t c = 0; c < n; c++) {
        double e[8] = {0}, col[8];
        e[c] = 1.0;
        assert_ok(ctx, hess_jvp(ctx, out, 1, &p, e, col));
        for (int64_t r = 0; r < n; r++)
            assert_close(col[r], J[r * n + c], 0.0, 0.0);
    }
}

/* The rules when only one operand is differentiated: the other is a
 * constant, so only one cotangent or one tangent exists.  Each op(c, p) and
 * op(p, c) against its derivative in p, a diagonal Jacobian, by reverse mode
 * (hess_grad of the sum) and forward mode (hess_jacobian, hess_jvp). */
static void test_elementwise_one_operand_constant(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    const double cv[3] = {1.0, 2.0, 3.0}, pv[3] = {0.5, 2.0, 4.0};
    hess_tensor *c = hess_tensor_new(ctx, 1, SH3, cv), *p = hess_param_new(ctx, 1, SH3, pv);
    for (size_t k = 0; k < N_BIN; k++)
        for (int side = 0; side < 2; side++) {
            hess_tensor *out = side ? BIN[k].f(ctx, p, c) : BIN[k].f(ctx, c, p);
            double want[3];
            for (int i = 0; i < 3; i++) {
                const double x = side ? pv[i] : cv[i], y = side ? cv[i] : pv[i];
                /* d op(x, y) / dx (side 1) or / dy (side 0) */
                switch (k) {
                case 0:
                    want[i] = 1.0;
                    break;
                case 1:
                    want[i] = side ? 1.0 : -1.0;
                    break;
                case 2:
                    want[i] = side ? y : x;
                    break;
                case 3:
                    want[i] = side ? 1.0 / y : -x / (y * y);
                    break;
                case 4:
                    want[i] = side ? r_mask(x, y) : r_mask(y, x);
                    break;
                case 5:
                    want[i] = side ? r_mask(y, x) : r_mask(x, y);
                    break;
                default:
                    want[i] = side ? y * pow(x, y - 1.0) : pow(x, y) * log(x);
                    break;
                }
            }
            hess_tensor *g;
            assert_ok(ctx, hess_grad(ctx, hess_sum(ctx, out), 1, &p, &g, 0));
            double J[9];
            jac_both(ctx, out, p, 3, J);
            for (int i = 0; i < 3; i++) {
                assert_close(hess_tensor_data(g)[i], want[i], 1e-15, 0.0);
                for (int j = 0; j < 3; j++)
                    assert_close(J[i * 3 + j], i == j ? want[i] : 0.0, 1e-15, 0.0);
            }
        }
    /* where: d where(c, a, p) / dp = [c == 0]; and the condition is never
     * differentiated, so where(p, a, b) has a zero Jacobian in p (forward
     * mode: zeros; reverse mode: the loss does not depend on p) */
    hess_tensor *cond = hess_tensor_new(ctx, 1, SH3, (const double[]){1, 0, -1});
    double J[9];
    jac_both(ctx, hess_where(ctx, cond, c, p), p, 3, J);
    for (int i = 0; i < 9; i++)
        assert_true(J[i] == (i == 4 ? 1.0 : 0.0));
    jac_both(ctx, hess_where(ctx, cond, p, c), p, 3, J);
    for (int i = 0; i < 9; i++)
        assert_true(J[i] == (i == 0 || i == 8 ? 1.0 : 0.0));
    hess_tensor *wp = hess_where(ctx, p, c, hess_neg(ctx, c));
    jac_both(ctx, wp, p, 3, J);
    for (int i = 0; i < 9; i++)
        assert_true(J[i] == 0.0);
    hess_tensor *g;
    assert_int_equal(hess_grad(ctx, hess_sum(ctx, wp), 1, &p, &g, 0), HESS_ERR_NODIFF);
    assert_non_null(
        strstr(hess_context_errmsg(ctx), "hess_grad: the output does not depend on wrt[0]"));
    hess_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Batched passes                                                           */
/* ------------------------------------------------------------------------ */

#define NA 6 /* a [2,3] */
#define NB 3 /* b [3], broadcast over a's rows */
#define NP (NA + NB)

/* out = op(a, b) (or where(cond, a, b)), b broadcast over a's rows. */
static hess_tensor *bin_model(hess_context *ctx, size_t k, hess_tensor *a, hess_tensor *b)
{
    if (k < N_BIN)
        return BIN[k].f(ctx, a, b);
    hess_tensor *cond =
        hess_tensor_new(ctx, 2, ((const int64_t[]){2, 3}), (const double[]){1, 0, 1, 0, 0, 1});
    return hess_where(ctx, cond, a, b);
}

/* L = sum(w out^2): curved in every op, also the linear ones. */
static hess_tensor *bin_loss(hess_context *ctx, hess_tensor *out)
{
    hess_tensor *w = hess_tensor_new(ctx, 2, ((const int64_t[]){2, 3}),
                                     (const double[]){0.5, -1.0, 1.5, 2.0, 0.75, -0.25});
    return hess_sum(ctx, hess_mul(ctx, w, hess_square(ctx, out)));
}

/* The gradient of the loss of op k at x (a then b), on a fresh graph. */
static void bin_grad(size_t k, const double *x, double *g)
{
    hess_context *ctx = test_context();
    hess_tensor *p[2] = {hess_param_new(ctx, 2, ((const int64_t[]){2, 3}), x),
                         hess_param_new(ctx, 1, SH3, x + NA)};
    hess_tensor *gt[2];
    assert_ok(ctx, hess_grad(ctx, bin_loss(ctx, bin_model(ctx, k, p[0], p[1])), 2, p, gt, 0));
    memcpy(g, hess_tensor_data(gt[0]), NA * sizeof *g);
    memcpy(g + NA, hess_tensor_data(gt[1]), NB * sizeof *g);
    hess_context_destroy(ctx);
}

/* Every elementwise rule in the passes that carry k directions at once: the
 * Hessian of L = sum(w op(a, b)^2) by sweeps of 1, 2 and 4 rows against the
 * default one and central differences of the gradient; its diagonal by
 * rows and by the curvature backpropagation; hess_hvp_batch in blocks of 2;
 * hess_hvp_fwd (forward over reverse); and the Jacobian of out by rows
 * (reverse mode, N = 9 > 6 outputs) and by columns (forward mode, b alone)
 * against central differences of out. */
static void test_elementwise_batched_passes(void **state)
{
    (void)state;
    /* positive, and no ties: every op is smooth here */
    const double x0[NP] = {0.7, 1.3, 2.1, 1.6, 0.4, 2.8, 1.1, 0.9, 2.5};
    const double V[3 * NP] = {1, 0, 0, 0.5, 0,    0,   0,    -1, 0,    0,  0,   1,     0, 0,
                              2, 0, 0, 1,   0.25, 0.5, -0.5, 1,  0.75, -1, 0.5, 0.125, 1};
    for (size_t k = 0; k <= N_BIN; k++) {
        hess_context *ctx = test_context();
        hess_tensor *p[2] = {hess_param_new(ctx, 2, ((const int64_t[]){2, 3}), x0),
                             hess_param_new(ctx, 1, SH3, x0 + NA)};
        hess_tensor *out = bin_model(ctx, k, p[0], p[1]), *L = bin_loss(ctx, out);
        assert_ok(ctx, hess_context_status(ctx));
        static double H[NP * NP], Hb[NP * NP], d[NP], HV[3 * NP], hv[NP];
        assert_ok(ctx, hess_hessian(ctx, L, 2, p, H));
        /* central differences of the gradient */
        for (int j = 0; j < NP; j++) {
            double xp[NP], xm[NP], gp[NP], gm[NP];
            memcpy(xp, x0, sizeof xp);
            memcpy(xm, x0, sizeof xm);
            xp[j] += 1e-6;
            xm[j] -= 1e-6;
            bin_grad(k, xp, gp);
            bin_grad(k, xm, gm);
            for (int i = 0; i < NP; i++)
                assert_close(H[i * NP + j], (gp[i] - gm[i]) / 2e-6, 1e-6, 1e-6);
        }
        const size_t blocks[3] = {1, 2, 4};
        for (int b = 0; b < 3; b++) {
            hess_hessian_opts o = {0};
            o.block_rows = blocks[b];
            assert_ok(ctx, hess_hessian_ex(ctx, L, 2, p, &o, Hb));
            assert_close_array(Hb, H, NP * NP, 1e-13, 1e-13);
        }
        for (int m = HESS_DIAG_BACKPROP; m <= HESS_DIAG_ROWS; m++) {
            hess_hessian_opts o = {0};
            int used = -1;
            o.method = m;
            o.method_used = &used;
            assert_ok(ctx, hess_hessian_diag_ex(ctx, L, 2, p, &o, d));
            assert_int_equal(used, m);
            for (int i = 0; i < NP; i++)
                assert_close(d[i], H[i * NP + i], 1e-13, 1e-13);
        }
        hess_hessian_opts o = {0};
        o.block_rows = 2;
        assert_ok(ctx, hess_hvp_batch(ctx, L, 2, p, 3, V, &o, HV));
        for (int r = 0; r < 3; r++) {
            assert_ok(ctx, hess_hvp_fwd(ctx, L, 2, p, V + r * NP, hv));
            for (int i = 0; i < NP; i++) {
                double s = 0.0;
                for (int j = 0; j < NP; j++)
                    s += H[i * NP + j] * V[r * NP + j];
                assert_close(HV[r * NP + i], s, 1e-12, 1e-12);
                assert_close(hv[i], s, 1e-12, 1e-12);
            }
        }
        /* the Jacobian of out [2,3]: all 9 columns (rows of reverse mode),
         * then b's 3 (forward mode) */
        static double J[NA * NP], Jb[NA * NB];
        assert_ok(ctx, hess_jacobian(ctx, out, 2, p, J));
        assert_ok(ctx, hess_jacobian(ctx, out, 1, &p[1], Jb));
        for (int j = 0; j < NP; j++) {
            double xp[NP], xm[NP];
            memcpy(xp, x0, sizeof xp);
            memcpy(xm, x0, sizeof xm);
            xp[j] += 1e-6;
            xm[j] -= 1e-6;
            hess_tensor *op =
                bin_model(ctx, k, hess_tensor_new(ctx, 2, ((const int64_t[]){2, 3}), xp),
                          hess_tensor_new(ctx, 1, SH3, xp + NA));
            hess_tensor *om =
                bin_model(ctx, k, hess_tensor_new(ctx, 2, ((const int64_t[]){2, 3}), xm),
                          hess_tensor_new(ctx, 1, SH3, xm + NA));
            assert_ok(ctx, hess_context_status(ctx));
            for (int i = 0; i < NA; i++) {
                const double fd = (hess_tensor_data(op)[i] - hess_tensor_data(om)[i]) / 2e-6;
                assert_close(J[i * NP + j], fd, 1e-6, 1e-7);
                if (j >= NA)
                    assert_close(Jb[i * NB + (j - NA)], J[i * NP + j], 1e-14, 0.0);
            }
        }
        hess_context_destroy(ctx);
    }
}

/* ------------------------------------------------------------------------ */
/* Non-finite values                                                        */
/* ------------------------------------------------------------------------ */

/* Fails unless the last builder refused with HESS_ERR_NONFINITE and a
 * message naming the function, the op and its operands' shapes; then
 * clears it. */
static void refused_nonfinite(hess_context *ctx, const hess_tensor *t, const char *msg)
{
    assert_null(t);
    assert_int_equal(hess_context_status(ctx), HESS_ERR_NONFINITE);
    if (strcmp(hess_context_errmsg(ctx), msg) != 0)
        fail_msg("message \"%s\", expected \"%s\"", hess_context_errmsg(ctx), msg);
    hess_context_clear_error(ctx);
}

/* Division by zero, a negative base to a fractional power and a NaN operand
 * give Inf and NaN as IEEE (and PyTorch) do; under HESS_CHECK_FINITE the
 * same calls are refused with HESS_ERR_NONFINITE, the operands stay as they
 * were, and the context builds again after clearing the error. */
static void test_elementwise_nonfinite(void **state)
{
    (void)state;
    const double av[3] = {1.0, -1.0, 0.0}, zv[3] = {0.0, 0.0, 0.0}, hv[3] = {0.5, 0.5, 0.5};
    const double nv[3] = {NAN, 1.0, 2.0};
    for (int check = 0; check < 2; check++) {
        hess_context *ctx = test_context_flags(check ? HESS_CHECK_FINITE : 0u);
        hess_tensor *a = hess_tensor_new(ctx, 1, SH3, av), *z = hess_tensor_new(ctx, 1, SH3, zv);
        hess_tensor *h = hess_tensor_new(ctx, 1, SH3, hv), *n = hess_tensor_new(ctx, 1, SH3, nv);
        assert_ok(ctx, hess_context_status(ctx));
        hess_tensor *s = hess_scalar(ctx, NAN); /* a leaf: only results are checked */
        assert_ok(ctx, hess_context_status(ctx));
        if (check) {
            refused_nonfinite(ctx, hess_div(ctx, a, z),
                              "hess_div: non-finite value in the result of div([3], [3])");
            refused_nonfinite(ctx, hess_pow_t(ctx, a, h),
                              "hess_pow_t: non-finite value in the result of pow_t([3], [3])");
            refused_nonfinite(ctx, hess_maximum(ctx, n, a),
                              "hess_maximum: non-finite value in the result of maximum([3], [3])");
            refused_nonfinite(ctx, hess_minimum(ctx, a, s),
                              "hess_minimum: non-finite value in the result of minimum([3], [])");
            assert_memory_equal(hess_tensor_data(a), av, sizeof av);
            assert_memory_equal(hess_tensor_data(z), zv, sizeof zv);
            hess_tensor *sum = hess_add(ctx, a, h);
            assert_ok(ctx, hess_context_status(ctx));
            assert_true(hess_tensor_data(sum)[1] == -0.5);
        } else {
            hess_tensor *q = hess_div(ctx, a, z), *r = hess_pow_t(ctx, a, h);
            hess_tensor *mx = hess_maximum(ctx, n, a), *mn = hess_minimum(ctx, a, s);
            assert_ok(ctx, hess_context_status(ctx));
            const double *qd = hess_tensor_data(q), *rd = hess_tensor_data(r);
            assert_true(qd[0] == INFINITY && qd[1] == -INFINITY && isnan(qd[2]));
            assert_true(rd[0] == 1.0 && isnan(rd[1]) && rd[2] == 0.0);
            assert_true(isnan(hess_tensor_data(mx)[0]));
            assert_true(hess_tensor_data(mx)[1] == 1.0 && hess_tensor_data(mx)[2] == 2.0);
            for (int i = 0; i < 3; i++)
                assert_true(isnan(hess_tensor_data(mn)[i]));
        }
        hess_context_destroy(ctx);
    }
}

/* ------------------------------------------------------------------------ */
/* Out of memory in the rules                                               */
/* ------------------------------------------------------------------------ */

#define OOM_PER (18 + NP * NP + NP)
#define OOM_OUT ((N_BIN + 1) * OOM_PER)

/* For every op of a [2,3] and b [3] (b repeated over a's rows): the
 * Jacobian in b (forward mode, b's tangent repeated before each rule takes
 * it), the Hessian of sum(out^2) by sweeps of 2 rows (the rules on batched
 * cotangents), and its diagonal by curvature backpropagation. */
static hess_status oom_flow(hess_context *ctx, double *out)
{
    hess_status st = HESS_OK;
    for (size_t k = 0; k <= N_BIN && st == HESS_OK; k++) {
        hess_tensor *p[2] = {hess_param_new(ctx, 2, ((const int64_t[]){2, 3}),
                                            (const double[]){0.7, 1.3, 2.1, 1.6, 0.4, 2.8}),
                             hess_param_new(ctx, 1, SH3, (const double[]){1.1, 0.9, 2.5})};
        hess_tensor *o = bin_model(ctx, k, p[0], p[1]);
        hess_tensor *L = hess_sum(ctx, hess_square(ctx, o));
        double *r = out + k * OOM_PER;
        hess_hessian_opts ho = {0};
        ho.block_rows = 2;
        hess_hessian_opts dopt = {0};
        dopt.method = HESS_DIAG_BACKPROP;
        st = hess_context_status(ctx);
        if (st == HESS_OK)
            st = hess_jacobian(ctx, o, 1, &p[1], r);
        if (st == HESS_OK)
            st = hess_hessian_ex(ctx, L, 2, p, &ho, r + 18);
        if (st == HESS_OK)
            st = hess_hessian_diag_ex(ctx, L, 2, p, &dopt, r + 18 + NP * NP);
    }
    return st;
}

/* The unary ops (unary.c, logistic.c) with their parameters, as the
 * reference cases build them. */
static const ref_build UNARY_OPS[] = {
    b_neg,        b_exp,      b_log,      b_sin,         b_cos,   b_sqrt,         b_square,
    b_relu,       b_sigmoid,  b_softplus, b_tanh,        b_abs,   b_log1p,        b_expm1,
    b_reciprocal, b_rsqrt,    b_erf,      b_silu,        b_gelu,  b_gelu_tanh,    b_clamp,
    b_elu_07,     b_leaky_01, b_pow_half, b_pow_neg_int, b_scale, b_detach_square};
#define N_UNARY  (sizeof UNARY_OPS / sizeof UNARY_OPS[0])
#define UOOM_PER (1 + 36 + 6 + 36)
#define UOOM_OUT (N_UNARY * UOOM_PER)

/* For every unary op of x [2,3]: the tangent of sum(y^2) along v, its
 * Hessian by sweeps of 2 rows, its diagonal, and the Jacobian of y (forward
 * mode: 6 columns for 6 outputs). */
static hess_status unary_oom_flow(hess_context *ctx, double *out)
{
    static const double x0[6] = {0.3, 0.7, 1.2, 0.45, 0.9, 1.6}, v[6] = {1, -1, 0.5, 2, 0, -0.25};
    hess_status st = HESS_OK;
    for (size_t k = 0; k < N_UNARY && st == HESS_OK; k++) {
        hess_tensor *x = hess_param_new(ctx, 2, ((const int64_t[]){2, 3}), x0);
        hess_tensor *in[MAXIN] = {x};
        hess_tensor *y = UNARY_OPS[k](ctx, in), *L = hess_sum(ctx, hess_square(ctx, y));
        double *r = out + k * UOOM_PER;
        hess_hessian_opts o = {0};
        o.block_rows = 2;
        st = hess_context_status(ctx);
        if (st == HESS_OK)
            st = hess_jvp(ctx, L, 1, &x, v, r);
        if (st == HESS_OK)
            st = hess_hessian_ex(ctx, L, 1, &x, &o, r + 1);
        if (st == HESS_OK)
            st = hess_hessian_diag(ctx, L, 1, &x, r + 37);
        if (st == HESS_OK)
            st = hess_jacobian(ctx, y, 1, &x, r + 43);
    }
    return st;
}

static void test_elementwise_out_of_memory(void **state)
{
    (void)state;
    byte_limit_sweep(oom_flow, OOM_OUT);
    byte_limit_sweep(unary_oom_flow, UOOM_OUT);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_refs_elementwise_cover_every_case),
        cmocka_unit_test(test_elementwise_broadcast_kernels),
        cmocka_unit_test(test_elementwise_one_operand_constant),
        cmocka_unit_test(test_elementwise_batched_passes),
        cmocka_unit_test(test_elementwise_nonfinite),
        cmocka_unit_test(test_elementwise_out_of_memory),
    };
    const size_t nf = sizeof fixed / sizeof fixed[0];
    struct CMUnitTest tests[N_ROWS + sizeof fixed / sizeof fixed[0]];
    char names[N_ROWS][80];
    memcpy(tests, fixed, sizeof fixed);
    for (size_t i = 0; i < N_ROWS; i++) {
        snprintf(names[i], sizeof names[i], "test_ref_%s", rows[i].name);
        tests[nf + i] = (struct CMUnitTest){names[i], test_ref_case, NULL, NULL, &rows[i]};
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
