/*
 * ann_mse.c -- exact first and second derivatives of a small network's loss.
 *
 * The PyTorch program this example reproduces (float64 throughout):
 *
 *     torch.set_default_dtype(torch.float64)
 *     model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 5))  # no activation
 *     x = torch.tensor([1., 2., 3.]);  y = torch.tensor([1., 1., 5., 7., 8.])
 *     loss = nn.MSELoss()(model(x), y)
 *     grads = torch.autograd.grad(loss, model.parameters(), create_graph=True)
 *     # and for each of the 41 parameter elements theta_i, d2L/dtheta_i^2,
 *     # differentiating grads again; collected shaped like W1, b1, W2, b2.
 *
 * With libhessian the loss is built from tensor ops, hess_grad() gives the
 * gradient and hess_hessian_diag_tensors() the second derivatives (it makes
 * the create_graph gradient itself and differentiates it once per element).
 *
 * Usage: ann_mse [--full] [--precision N] [--sigmoid | --tanh] [--case FILE]
 *                [--svg FILE] [--npy FILE] [--version]
 *   (no options)   the network above, with the weights of tests/data/seed_ann.ref
 *                  built in, so that no file is needed
 *   --full         also print the full N x N Hessian (hess_hessian_ex; while
 *                  it runs, a progress bar on stderr if that is a terminal)
 *   --precision N  digits after the point, 0 to 17 (default 4, as PyTorch)
 *   --sigmoid      put a sigmoid between the layers; --tanh a tanh
 *   --case FILE    take the weights, x and y from a reference file
 *                  (tests/data/README.md) of this two-layer shape:
 *                  param:W1 [H,I], param:b1 [H], param:W2 [O,H], param:b2 [O],
 *                  input:x [I] or [B,I], input:y [O] or [B,O].  Then compare
 *                  the expected values the file holds (loss, grad:*, hdiag:*,
 *                  hessian, hvp:v with hvp:Hv) with ours, and print for each
 *                  the largest absolute and relative deviation.  Values the
 *                  file lacks are skipped.  The activation is not read from
 *                  the file: give --sigmoid or --tanh to match its model line.
 *   --svg FILE     write the full Hessian as an SVG heatmap
 *                  (hess_write_svg_heatmap): blocks W1 b1 W2 b2 outlined and
 *                  labelled with their sizes, a title naming the network
 *   --npy FILE     write the full Hessian as a NumPy .npy file, shape (N, N),
 *                  float64 (hess_save_npy_array); np.load(FILE) reads it
 *   --svg and --npy combine with each other, with --full and with --case (the
 *   Hessian is computed once).  Everything is computed and the files are
 *   written before anything is printed, so a file that cannot be written ends
 *   the run with one line on stderr and nothing on stdout.
 *
 * Exit status: 0 success; 1 some relative deviation from the --case file is
 * above 1e-10; 2 bad arguments, a --case file that cannot be read, is
 * malformed or does not fit a two-layer network, or an --svg or --npy file
 * that cannot be written (the library's HESS_ERR_IO, whose message names the
 * file); 3 any other failure of a library call.
 *
 * Printing.  Tensors are printed as PyTorch's print() shows them with its
 * default options, values only (no grad_fn=, no dtype= since float64 is the
 * default dtype above).  One format serves a whole tensor, chosen from its
 * nonzero finite values: "%.0f." when all are integral, "%.4e" when
 * max/min > 1000 or max > 1e8 (or, if not all integral, min < 1e-4), else
 * "%.4f"; every element is right-aligned to the widest one and 1-D runs wrap
 * at 80 columns; --precision N replaces the 4.  Two differences: nothing is
 * elided with "..." (PyTorch does so above 1000 elements), and the --full
 * Hessian, to stay compact, is printed in fixed point with each row on one line
 * (PyTorch's set_printoptions(sci_mode=False, linewidth=inf)).
 *
 * Deviation.  For a computed value a and the file's value b, the absolute
 * deviation is |a-b|; the relative deviation |a-b| / max(|b|, 1e-300) is
 * counted only where |a-b| > 1e-14, so that values that should be zero and
 * come out as rounding noise do not divide by ~0.  NaN counts as a failure.
 */
#include "hessian.h"
#include "progress.h"
#include "ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exit statuses (documented above). */
enum { ANN_OK = 0, ANN_DEVIATION = 1, ANN_BAD_INPUT = 2, ANN_LIBRARY_ERROR = 3 };

#define REL_LIMIT 1e-10  /* largest relative deviation accepted by --case */
#define ABS_FLOOR 1e-14  /* smaller absolute deviations are not counted as relative */
#define REL_TINY  1e-300 /* denominator floor of the relative deviation */

/* ------------------------------------------------------------------------ */
/* The default network: the weights of tests/data/seed_ann.ref (PyTorch's   */
/* initialisation), written with %.17g so that they are exact.              */
/* ------------------------------------------------------------------------ */

static const double default_W1[4 * 3] = {
    0.54277045425281012,  0.23996970930833816,  -0.046900537438113156, 0.48583757737745076,
    0.16745942958373372,  0.33618862784858089,  -0.37111362252745972,  -0.17192610627289662,
    0.093924403894069822, -0.24452412935978926, -0.054422365571411259, -0.37319976109700048,
};
static const double default_b1[4] = {
    -0.16712355206697721,
    0.14076405628150718,
    -0.02095966138980555,
    -0.068357695625261145,
};
static const double default_W2[5 * 4] = {
    -0.092718425635558419, -0.29456140653841284, 0.16503817575014942,   0.28487390045511768,
    -0.28963352508161538,  0.17673912091767904,  -0.39026473976255388,  0.023752059402243449,
    -0.27397979706160941,  0.058243075380225766, 0.087528961836446859,  0.18194568568020839,
    0.24537616057758635,   -0.27234436340311868, 0.30989226643197271,   0.13059031339558499,
    -0.30411185429079207,  -0.34727376212207156, -0.018493497781274734, 0.41750581248992141,
};
static const double default_b2[5] = {
    0.072039710198109397, -0.019170576816092466, 0.29605860834048814,
    -0.13202979567051432, -0.22781628939463527,
};
static const double default_x[3] = {1, 2, 3};
static const double default_y[5] = {1, 1, 5, 7, 8};

/* What the network is made of: x -> Linear(I,H) -> activation -> Linear(H,O) -> MSE with y. */
typedef enum activation { ACT_NONE, ACT_SIGMOID, ACT_TANH } activation;

typedef struct net_spec {
    int64_t in, hidden, out; /* I, H, O */
    int64_t batch;           /* B; 0 for one unbatched sample x [I] */
    const double *W1, *b1, *W2, *b2, *x, *y;
} net_spec;

static const net_spec default_net = {3,          4,          5,          0,         default_W1,
                                     default_b1, default_W2, default_b2, default_x, default_y};

/* The names of the parameters, in PyTorch's parameters() order. */
static const char *const param_names[4] = {"W1", "b1", "W2", "b2"};

/* ------------------------------------------------------------------------ */
/* The model                                                                */
/* ------------------------------------------------------------------------ */

/* Builds the loss of *net; p[] receives W1 b1 W2 b2.  NULL with the error in ctx. */
static hess_tensor *
build_loss(hess_context *ctx, const net_spec *net, activation act, hess_tensor *p[4])
{
    const int64_t W1_shape[2] = {net->hidden, net->in}, b1_shape[1] = {net->hidden};
    const int64_t W2_shape[2] = {net->out, net->hidden}, b2_shape[1] = {net->out};
    p[0] = hess_param_new(ctx, 2, W1_shape, net->W1);
    p[1] = hess_param_new(ctx, 1, b1_shape, net->b1);
    p[2] = hess_param_new(ctx, 2, W2_shape, net->W2);
    p[3] = hess_param_new(ctx, 1, b2_shape, net->b2);

    /* one sample: x [I], y [O]; a batch: x [B,I], y [B,O] */
    const int64_t x_shape[2] = {net->batch, net->in}, y_shape[2] = {net->batch, net->out};
    const int rank = net->batch ? 2 : 1, first = net->batch ? 0 : 1;
    hess_tensor *x = hess_tensor_new(ctx, rank, x_shape + first, net->x);
    hess_tensor *y = hess_tensor_new(ctx, rank, y_shape + first, net->y);

    /* Builders pass a NULL operand on, so one check at the end catches any failure. */
    hess_tensor *h = hess_linear(ctx, x, p[0], p[1]); /* x W1^T + b1: [H] or [B,H] */
    if (act == ACT_SIGMOID)
        h = hess_sigmoid(ctx, h);
    else if (act == ACT_TANH)
        h = hess_tanh(ctx, h);
    hess_tensor *pred = hess_linear(ctx, h, p[2], p[3]); /* [O] or [B,O] */
    return hess_mse_loss(ctx, pred, y);                  /* mean of (pred - y)^2 */
}

/* Reports a failed library call with the context's message. */
static int library_error(const hess_context *ctx, const char *what, hess_status st)
{
    fprintf(stderr, "ann_mse: %s failed: %s: %s\n", what, hess_status_str(st),
            hess_context_errmsg(ctx));
    return ANN_LIBRARY_ERROR;
}

/* ------------------------------------------------------------------------ */
/* Printing tensors the way PyTorch does (see the top of the file)          */
/* ------------------------------------------------------------------------ */

/* Room for any double in any of the formats, "%.17f" of 1e308 included. */
#define FORMAT_MAX 400

typedef struct tensor_format {
    char style;    /* 'i' integral "%.0f.", 'f' fixed "%.*f", 'e' scientific "%.*e" */
    int precision; /* digits after the point */
    int width;     /* the widest element; narrower ones are padded on the left */
    int linewidth; /* wrap 1-D runs at this many columns; 0 = never */
} tensor_format;

static void format_value(char *buf, size_t len, const tensor_format *f, double v)
{
    if (isnan(v))
        snprintf(buf, len, "nan");
    else if (isinf(v))
        snprintf(buf, len, "%sinf", v < 0 ? "-" : "");
    else if (f->style == 'i')
        snprintf(buf, len, "%.0f.", v);
    else
        snprintf(buf, len, f->style == 'e' ? "%.*e" : "%.*f", f->precision, v);
}

/*
 * Chooses one format for all n values, as PyTorch's formatter does; compact
 * means PyTorch's set_printoptions(sci_mode=False, linewidth=inf): fixed point
 * always and no wrapping, for the --full Hessian.
 */
static tensor_format choose_format(const double *v, int64_t n, int precision, int compact)
{
    double lo = INFINITY, hi = 0.0;
    int integral = 1;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(v[i]) && v[i] != 0.0) {
            lo = fmin(lo, fabs(v[i]));
            hi = fmax(hi, fabs(v[i]));
            integral = integral && v[i] == floor(v[i]);
        }
    tensor_format f = {integral ? 'i' : 'f', precision, 0, compact ? 0 : 80};
    if (!compact && hi > 0.0 && (hi / lo > 1000.0 || hi > 1e8 || (!integral && lo < 1e-4)))
        f.style = 'e';
    for (int64_t i = 0; i < n; i++) {
        char buf[FORMAT_MAX];
        format_value(buf, sizeof buf, &f, v[i]);
        int len = (int)strlen(buf);
        f.width = len > f.width ? len : f.width;
    }
    return f;
}

/* Prints one (sub)tensor; indent is the column of its opening bracket. */
static void
print_nested(const double *v, int ndim, const int64_t *shape, int indent, const tensor_format *f)
{
    char buf[FORMAT_MAX];
    if (ndim == 0) {
        format_value(buf, sizeof buf, f, v[0]);
        printf("%s", buf);
        return;
    }
    int64_t inner = 1; /* elements per index of the first dimension */
    for (int d = 1; d < ndim; d++)
        inner *= shape[d];
    int64_t per_line = shape[0];
    if (ndim == 1 && f->linewidth > 0) {
        per_line = (f->linewidth - indent) / (f->width + 2); /* ", " after each element */
        per_line = per_line < 1 ? 1 : per_line;
    }
    putchar('[');
    for (int64_t i = 0; i < shape[0]; i++) {
        if (i > 0 && ndim == 1 && i % per_line != 0) {
            printf(", ");
        } else if (i > 0) {
            /* a new line; between blocks of rank 2 and more, a blank line per rank above 2 */
            putchar(',');
            for (int d = 0; d < (ndim > 1 ? ndim - 1 : 1); d++)
                putchar('\n');
            printf("%*s", indent + 1, "");
        }
        if (ndim == 1) {
            format_value(buf, sizeof buf, f, v[i]);
            printf("%*s", f->width, buf);
        } else {
            print_nested(v + i * inner, ndim - 1, shape + 1, indent + 1, f);
        }
    }
    putchar(']');
}

/* Prints "<label>tensor(...)"; rows are aligned under the first bracket. */
static void print_values(
    const char *label, int ndim, const int64_t *shape, const double *v, int precision, int compact)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    tensor_format f = choose_format(v, n, precision, compact);
    printf("%stensor(", label);
    print_nested(v, ndim, shape, (int)strlen(label) + 7, &f);
    printf(")\n");
}

static void print_tensor(const char *label, const hess_tensor *t, int precision)
{
    print_values(label, hess_tensor_ndim(t), hess_tensor_shape(t), hess_tensor_data(t), precision,
                 0);
}

/* Prints v with the fewest digits that read back as the same double, as Python's repr(). */
static void print_shortest(double v)
{
    char buf[40];
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    printf("%s", buf);
}

static void print_shape(int ndim, const int64_t *shape)
{
    putchar('[');
    for (int d = 0; d < ndim; d++)
        printf("%s%lld", d ? ", " : "", (long long)shape[d]);
    putchar(']');
}

/* ------------------------------------------------------------------------ */
/* Reading a --case file                                                    */
/* ------------------------------------------------------------------------ */

/* The expected values a --case file may hold; NULL where it has none. */
typedef struct expected {
    const ref_tensor *loss, *grad[4], *hdiag[4], *hessian, *v, *Hv;
} expected;

/* 1 if t has rank ndim and dimensions d0 (and d1 when ndim is 2). */
static int has_shape(const ref_tensor *t, int ndim, int64_t d0, int64_t d1)
{
    return t && t->ndim == ndim && (ndim < 1 || t->shape[0] == d0) &&
           (ndim < 2 || t->shape[1] == d1);
}

/* Fills *net from the file's parameters and inputs, checking that they fit together. */
static const char *net_from_case(const ref_case *rc, net_spec *net)
{
    const ref_tensor *W1 = ref_find(rc, "param:W1"), *b1 = ref_find(rc, "param:b1");
    const ref_tensor *W2 = ref_find(rc, "param:W2"), *b2 = ref_find(rc, "param:b2");
    const ref_tensor *x = ref_find(rc, "input:x"), *y = ref_find(rc, "input:y");
    if (!W1 || !b1 || !W2 || !b2 || !x || !y)
        return "needs param:W1, param:b1, param:W2, param:b2, input:x and input:y";
    if (W1->ndim != 2 || W2->ndim != 2)
        return "param:W1 and param:W2 must be matrices [out, in]";
    net->hidden = W1->shape[0];
    net->in = W1->shape[1];
    net->out = W2->shape[0];
    if (!has_shape(b1, 1, net->hidden, 0) || !has_shape(W2, 2, net->out, net->hidden) ||
        !has_shape(b2, 1, net->out, 0))
        return "parameter shapes do not fit Linear(I,H) -> Linear(H,O)";
    net->batch = x->ndim == 2 ? x->shape[0] : 0;
    if (!(has_shape(x, 1, net->in, 0) || has_shape(x, 2, net->batch, net->in)))
        return "input:x must be [I] or [B, I], I the width of param:W1";
    if (!(net->batch ? has_shape(y, 2, net->batch, net->out) : has_shape(y, 1, net->out, 0)))
        return "input:y must be shaped like the network output, [O] or [B, O]";
    net->W1 = W1->data;
    net->b1 = b1->data;
    net->W2 = W2->data;
    net->b2 = b2->data;
    net->x = x->data;
    net->y = y->data;
    return NULL;
}

/* Collects the expected values; a value present with the wrong shape is an error. */
static const char *expected_from_case(const ref_case *rc, expected *want)
{
    const ref_tensor *p[4] = {ref_find(rc, "param:W1"), ref_find(rc, "param:b1"),
                              ref_find(rc, "param:W2"), ref_find(rc, "param:b2")};
    int64_t n = 0;
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "grad:%s", param_names[i]);
        want->grad[i] = ref_find(rc, name);
        snprintf(name, sizeof name, "hdiag:%s", param_names[i]);
        want->hdiag[i] = ref_find(rc, name);
        int64_t d1 = p[i]->ndim == 2 ? p[i]->shape[1] : 0;
        if ((want->grad[i] && !has_shape(want->grad[i], p[i]->ndim, p[i]->shape[0], d1)) ||
            (want->hdiag[i] && !has_shape(want->hdiag[i], p[i]->ndim, p[i]->shape[0], d1)))
            return "a grad:* or hdiag:* tensor is not shaped like its parameter";
        n += p[i]->numel;
    }
    want->loss = ref_find(rc, "loss");
    want->hessian = ref_find(rc, "hessian");
    want->v = ref_find(rc, "hvp:v");
    want->Hv = ref_find(rc, "hvp:Hv");
    if ((want->loss && want->loss->ndim != 0) ||
        (want->hessian && !has_shape(want->hessian, 2, n, n)) ||
        (want->v && !has_shape(want->v, 1, n, 0)) || (want->Hv && !has_shape(want->Hv, 1, n, 0)))
        return "loss, hessian or hvp:v/hvp:Hv has the wrong shape";
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Comparing with the expected values                                       */
/* ------------------------------------------------------------------------ */

typedef struct deviation {
    int64_t count; /* values compared; 0 = nothing to compare */
    int64_t large; /* of which |a-b| > ABS_FLOOR */
    double abs;    /* largest |a-b| */
    double rel;    /* largest |a-b| / max(|b|, REL_TINY) where |a-b| > ABS_FLOOR */
} deviation;

/* Folds n computed values a against expected values b into *dev; NaN sticks. */
static void deviation_add(deviation *dev, const double *a, const double *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        double diff = fabs(a[i] - b[i]);
        if (isnan(diff) || diff > dev->abs)
            dev->abs = diff;
        if (!isnan(diff) && diff <= ABS_FLOOR)
            continue;
        double rel = diff / fmax(fabs(b[i]), REL_TINY);
        if (isnan(rel) || rel > dev->rel)
            dev->rel = rel;
        dev->large++;
    }
    dev->count += n;
}

/* Prints one line of the deviation table; returns 1 if it is above the limit. */
static int deviation_report(const char *what, const deviation *dev)
{
    if (dev->count == 0) {
        printf("  %-9s %6s   (not in the file)\n", what, "-");
        return 0;
    }
    int bad = !(dev->rel <= REL_LIMIT);
    printf("  %-9s %6lld   %9.3e   ", what, (long long)dev->count, dev->abs);
    if (dev->large == 0)
        printf("%9s\n", "-");
    else
        printf("%9.3e%s\n", dev->rel, bad ? "   <-- above the limit" : "");
    return bad;
}

/* ------------------------------------------------------------------------ */
/* The run                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct options {
    int full, help, precision;
    activation act;
    const char *case_file; /* NULL: the built-in network */
    const char *svg_file;  /* --svg FILE, or NULL */
    const char *npy_file;  /* --npy FILE, or NULL */
} options;

static const char *const act_names[3] = {"", " -> sigmoid", " -> tanh"};

static void print_intro(const options *opt, const net_spec *net, hess_tensor *const p[4])
{
    printf("libhessian %s: Linear(%lld,%lld)%s -> Linear(%lld,%lld), MSE loss, ",
           hess_version_string(), (long long)net->in, (long long)net->hidden, act_names[opt->act],
           (long long)net->hidden, (long long)net->out);
    if (net->batch)
        printf("batch of %lld\n", (long long)net->batch);
    else
        printf("one sample\n");
    printf("weights: %s\n", opt->case_file ? opt->case_file : "built in (tests/data/seed_ann.ref)");
    const int64_t x_shape[2] = {net->batch, net->in}, y_shape[2] = {net->batch, net->out};
    const int rank = net->batch ? 2 : 1, first = net->batch ? 0 : 1;
    print_values("x = ", rank, x_shape + first, net->x, opt->precision, 0);
    print_values("y = ", rank, y_shape + first, net->y, opt->precision, 0);

    printf("\nparameter shapes (%zu elements in all):\n", hess_param_count(4, p));
    for (int i = 0; i < 4; i++) {
        printf("  %s ", param_names[i]);
        print_shape(hess_tensor_ndim(p[i]), hess_tensor_shape(p[i]));
        putchar('\n');
    }
}

/* Prints four tensors shaped like the parameters under a heading. */
static void print_per_param(const char *heading, hess_tensor *const t[4], int precision)
{
    printf("\n%s\n", heading);
    for (int i = 0; i < 4; i++) {
        printf("%s:\n", param_names[i]);
        print_tensor("", t[i], precision);
    }
}

/* The --full Hessian: all N x N values, one row per line. */
static void print_hessian(const double *h, size_t n, hess_tensor *const p[4], int precision)
{
    printf("\nHessian d2L/dtheta_i dtheta_j, %zu x %zu, theta = W1 b1 W2 b2 flattened "
           "row-major (",
           n, n);
    int64_t off = 0;
    for (int i = 0; i < 4; i++) {
        int64_t len = hess_tensor_numel(p[i]);
        printf("%s%s %lld-%lld", i ? ", " : "", param_names[i], (long long)off,
               (long long)(off + len - 1));
        off += len;
    }
    printf("):\n");
    const int64_t shape[2] = {(int64_t)n, (int64_t)n};
    print_values("", 2, shape, h, precision, 1);
}

/* Compares everything the file holds; returns ANN_OK, ANN_DEVIATION or a library error. */
static int compare_with_case(hess_context *ctx,
                             const options *opt,
                             const expected *want,
                             hess_tensor *loss,
                             hess_tensor *const p[4],
                             hess_tensor *const grad[4],
                             hess_tensor *const diag[4],
                             const double *h)
{
    const size_t n = hess_param_count(4, p);
    deviation dev[5] = {{0}};
    if (want->loss)
        deviation_add(&dev[0], hess_tensor_data(loss), want->loss->data, 1);
    for (int i = 0; i < 4; i++) {
        if (want->grad[i])
            deviation_add(&dev[1], hess_tensor_data(grad[i]), want->grad[i]->data,
                          want->grad[i]->numel);
        if (want->hdiag[i])
            deviation_add(&dev[2], hess_tensor_data(diag[i]), want->hdiag[i]->data,
                          want->hdiag[i]->numel);
    }
    if (want->hessian)
        deviation_add(&dev[3], h, want->hessian->data, want->hessian->numel);
    if (want->v && want->Hv) {
        double *hv = malloc(n * sizeof *hv);
        if (!hv) {
            fprintf(stderr, "ann_mse: out of memory\n");
            return ANN_LIBRARY_ERROR;
        }
        hess_status st = hess_hvp(ctx, loss, 4, p, want->v->data, hv);
        if (st == HESS_OK)
            deviation_add(&dev[4], hv, want->Hv->data, (int64_t)n);
        free(hv);
        if (st != HESS_OK)
            return library_error(ctx, "hess_hvp", st);
    }

    printf("\ndeviation from %s\n", opt->case_file);
    printf("  (relative: |a-b| / max(|b|, 1e-300), counted where |a-b| > 1e-14; limit 1e-10)\n");
    printf("  %-9s %6s   %9s   %9s\n", "value", "count", "max abs", "max rel");
    static const char *const what[5] = {"loss", "gradient", "hdiag", "hessian", "hvp"};
    int bad = 0, all_small = 0;
    for (int k = 0; k < 5; k++) {
        bad |= deviation_report(what[k], &dev[k]);
        all_small |= dev[k].count > 0 && dev[k].large == 0;
    }
    if (all_small)
        printf("  ('-': no |a-b| above 1e-14, so no relative deviation to count)\n");
    int compared = 0;
    for (int k = 0; k < 5; k++)
        compared |= dev[k].count > 0;
    if (!compared) {
        printf("nothing to compare: the file holds no expected values\n");
        return ANN_OK;
    }
    printf(bad ? "FAIL: a relative deviation is above 1e-10\n"
               : "PASS: every relative deviation is within 1e-10\n");
    return bad ? ANN_DEVIATION : ANN_OK;
}

/*
 * A file the library could not write: for HESS_ERR_IO, the context's message
 * (it names the function, the file and the problem) as the one line on stderr
 * and ANN_BAD_INPUT, like a --case file that cannot be read; any other status
 * is a library error.
 */
static int write_error(const hess_context *ctx, const char *what, hess_status st)
{
    if (st != HESS_ERR_IO)
        return library_error(ctx, what, st);
    fprintf(stderr, "ann_mse: %s\n", hess_context_errmsg(ctx));
    return ANN_BAD_INPUT;
}

/* --svg and --npy: the n x n Hessian h as a heatmap and as a .npy file. */
static int write_files(hess_context *ctx,
                       const options *opt,
                       const net_spec *net,
                       hess_tensor *const p[4],
                       const double *h,
                       size_t n)
{
    if (opt->svg_file) {
        size_t sizes[4];
        for (int i = 0; i < 4; i++)
            sizes[i] = (size_t)hess_tensor_numel(p[i]);
        char samples[40] = "one sample";
        if (net->batch)
            snprintf(samples, sizeof samples, "batch of %lld", (long long)net->batch);
        char title[200];
        snprintf(title, sizeof title,
                 "Hessian of Linear(%lld,%lld)%s -> Linear(%lld,%lld), MSE, %s", (long long)net->in,
                 (long long)net->hidden, act_names[opt->act], (long long)net->hidden,
                 (long long)net->out, samples);
        hess_status st =
            hess_write_svg_heatmap(ctx, opt->svg_file, n, h, 4, param_names, sizes, title);
        if (st != HESS_OK)
            return write_error(ctx, "hess_write_svg_heatmap", st);
    }
    if (opt->npy_file) {
        const int64_t shape[2] = {(int64_t)n, (int64_t)n};
        hess_status st = hess_save_npy_array(ctx, opt->npy_file, 2, shape, h);
        if (st != HESS_OK)
            return write_error(ctx, "hess_save_npy_array", st);
    }
    return ANN_OK;
}

/*
 * Builds the network and computes its loss, gradient, Hessian diagonal and,
 * when asked for, the full Hessian; writes the --svg and --npy files; only
 * then prints, and compares with the case.
 */
static int run(hess_context *ctx, const options *opt, const net_spec *net, const expected *want)
{
    hess_tensor *p[4];
    hess_tensor *loss = build_loss(ctx, net, opt->act, p);
    if (!loss)
        return library_error(ctx, "building the model", hess_context_status(ctx));

    /* The gradient, one tensor per parameter, shaped like it.  No HESS_CREATE_GRAPH:
     * the Hessian functions below make their own differentiable gradient. */
    hess_tensor *grad[4];
    hess_status st = hess_grad(ctx, loss, 4, p, grad, 0);
    if (st != HESS_OK)
        return library_error(ctx, "hess_grad", st);

    /* The second derivatives d2L/dtheta_i^2, again one tensor per parameter. */
    hess_tensor *diag[4];
    st = hess_hessian_diag_tensors(ctx, loss, 4, p, diag);
    if (st != HESS_OK)
        return library_error(ctx, "hess_hessian_diag_tensors", st);

    /* The full Hessian only when it is printed, written or compared. */
    const size_t n = hess_param_count(4, p);
    double *h = NULL;
    if (opt->full || opt->svg_file || opt->npy_file || want->hessian) {
        if (!(h = malloc(n * n * sizeof *h))) {
            fprintf(stderr, "ann_mse: out of memory for the %zu x %zu Hessian\n", n, n);
            return ANN_LIBRARY_ERROR;
        }
        hess_hessian_opts opts = progress_opts();
        st = hess_hessian_ex(ctx, loss, 4, p, &opts, h);
        progress_done(&opts);
        if (st != HESS_OK) {
            free(h);
            return library_error(ctx, "hess_hessian_ex", st);
        }
        int status = write_files(ctx, opt, net, p, h, n);
        if (status != ANN_OK) {
            free(h);
            return status;
        }
    }

    print_intro(opt, net, p);
    printf("\nloss = ");
    print_tensor("", loss, opt->precision);
    printf("loss.item() = ");
    print_shortest(hess_tensor_data(loss)[0]);
    putchar('\n');
    print_per_param("gradient dL/dtheta:", grad, opt->precision);
    print_per_param("Hessian diagonal d2L/dtheta_i^2:", diag, opt->precision);
    if (opt->full)
        print_hessian(h, n, p, opt->precision);
    if (opt->svg_file || opt->npy_file)
        putchar('\n');
    if (opt->svg_file)
        printf("wrote the %zu x %zu Hessian as an SVG heatmap to %s\n", n, n, opt->svg_file);
    if (opt->npy_file)
        printf("wrote the %zu x %zu Hessian as .npy (float64) to %s\n", n, n, opt->npy_file);
    int status =
        opt->case_file ? compare_with_case(ctx, opt, want, loss, p, grad, diag, h) : ANN_OK;
    free(h);
    return status;
}

/* ------------------------------------------------------------------------ */
/* Arguments and main                                                       */
/* ------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out, "usage: ann_mse [--full] [--precision N] [--sigmoid | --tanh] [--case FILE]\n"
                 "               [--svg FILE] [--npy FILE] [--version]\n"
                 "  --full         also print the full Hessian\n"
                 "  --precision N  digits after the point, 0 to 17 (default 4)\n"
                 "  --sigmoid      sigmoid between the layers\n"
                 "  --tanh         tanh between the layers\n"
                 "  --case FILE    weights and data from a reference file; compare its values\n"
                 "  --svg FILE     write the full Hessian as an SVG heatmap\n"
                 "  --npy FILE     write the full Hessian as a NumPy .npy file\n"
                 "  --version      print how the library was built (hess_build_info) and exit\n"
                 "exit status: 0 ok; 1 deviation above 1e-10; 2 bad arguments, a --case file\n"
                 "  that cannot be read or does not fit, or an --svg/--npy file that cannot be\n"
                 "  written; 3 other library error\n");
}

/* Parses argv into *opt; on a bad argument prints one line and returns -1. */
static int parse_args(int argc, char **argv, options *opt)
{
    *opt = (options){0, 0, 4, ACT_NONE, NULL, NULL, NULL};
    const char *problem = NULL;
    for (int i = 1; i < argc && !problem; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--full") == 0) {
            opt->full = 1;
        } else if (strcmp(arg, "--sigmoid") == 0 || strcmp(arg, "--tanh") == 0) {
            activation act = arg[2] == 's' ? ACT_SIGMOID : ACT_TANH;
            if (opt->act != ACT_NONE && opt->act != act)
                problem = "--sigmoid and --tanh exclude each other";
            opt->act = act;
        } else if (strcmp(arg, "--case") == 0 || strcmp(arg, "--svg") == 0 ||
                   strcmp(arg, "--npy") == 0) {
            const char **file = arg[2] == 'c'   ? &opt->case_file
                                : arg[2] == 's' ? &opt->svg_file
                                                : &opt->npy_file;
            if (i + 1 < argc)
                *file = argv[++i];
            else
                problem = arg[2] == 'c'   ? "--case needs a FILE"
                          : arg[2] == 's' ? "--svg needs a FILE"
                                          : "--npy needs a FILE";
        } else if (strcmp(arg, "--precision") == 0) {
            char *end = NULL;
            long digits = i + 1 < argc ? strtol(argv[++i], &end, 10) : -1;
            if (!end || *end != '\0' || end == argv[i] || digits < 0 || digits > 17)
                problem = "--precision needs a whole number from 0 to 17";
            opt->precision = (int)digits;
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            opt->help = 1;
        } else if (strcmp(arg, "--version") == 0) {
            opt->help = 2;
        } else {
            fprintf(stderr, "ann_mse: unknown argument '%s' (try --help)\n", arg);
            return -1;
        }
    }
    if (problem) {
        fprintf(stderr, "ann_mse: %s (try --help)\n", problem);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_args(argc, argv, &opt) != 0)
        return ANN_BAD_INPUT;
    if (opt.help) {
        if (opt.help == 2)
            printf("%s\n", hess_build_info());
        else
            usage(stdout);
        return ANN_OK;
    }

    net_spec net = default_net;
    expected want = {0};
    ref_case rc = {0};
    if (opt.case_file) {
        char err[512];
        if (ref_load(opt.case_file, &rc, err, sizeof err) != 0) {
            fprintf(stderr, "ann_mse: %s\n", err);
            return ANN_BAD_INPUT;
        }
        const char *problem = net_from_case(&rc, &net);
        if (!problem)
            problem = expected_from_case(&rc, &want);
        if (problem) {
            fprintf(stderr, "ann_mse: %s: %s\n", opt.case_file, problem);
            ref_free(&rc);
            return ANN_BAD_INPUT;
        }
    }

    hess_context *ctx = NULL;
    hess_status st = hess_context_create(NULL, &ctx);
    int status = ANN_LIBRARY_ERROR;
    if (st == HESS_OK)
        status = run(ctx, &opt, &net, &want);
    else /* no context, so no message beyond the status */
        fprintf(stderr, "ann_mse: hess_context_create failed: %s\n", hess_status_str(st));
    hess_context_destroy(ctx);
    ref_free(&rc);
    return status;
}
