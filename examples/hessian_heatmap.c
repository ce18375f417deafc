/*
 * hessian_heatmap.c -- train a small classifier, then draw its full Hessian
 * and save it for NumPy.
 *
 * The story, top to bottom:
 *
 *  1. Data.  24 samples of 4 features, uniform in [-1, 1], from a xorshift64
 *     generator with a fixed seed, so every run and every machine sees the
 *     same numbers.  Each sample's class (0, 1 or 2) is the largest of three
 *     fixed linear scores of its features: a problem the network can learn.
 *
 *  2. The network and its loss, with libhessian ops only (include/hessian.h):
 *
 *         Linear(4,6) -> tanh -> Linear(6,3),  cross-entropy over the batch,
 *
 *     i.e. hess_cross_entropy(hess_linear(hess_tanh(hess_linear(X, W1, b1)),
 *     W2, b2), labels), PyTorch's nn.Sequential(nn.Linear(4, 6), nn.Tanh(),
 *     nn.Linear(6, 3)) with nn.CrossEntropyLoss().  The weights start uniform
 *     in [-1/sqrt(fan_in), 1/sqrt(fan_in)], PyTorch's default bound for
 *     nn.Linear, from the same generator.  The parameters, flattened in the
 *     order W1 b1 W2 b2, are theta: 24 + 6 + 18 + 3 = 51 numbers.
 *
 *  3. Training.  A few steps of plain gradient descent, theta -= lr * g: each
 *     step builds the loss inside a hess_context_mark / hess_context_rewind
 *     scope, takes the gradient (hess_grad) and writes the new values into the
 *     parameters (hess_param_set).  The loss is printed at each step.
 *
 *  4. The Hessian at the trained parameters: all 51 x 51 second derivatives
 *     d2L / dtheta_i dtheta_j, by hess_hessian_ex (its progress callback draws
 *     a bar on stderr when stderr is a terminal and is left out otherwise).
 *
 *  5. Files.  The Hessian goes to an SVG heatmap (hess_write_svg_heatmap; the
 *     blocks W1 b1 W2 b2 outlined and labelled, a title naming the network)
 *     and to a NumPy .npy file (hess_save_npy_array), which np.load() reads.
 *     The .npy is then read back with hess_load_npy and compared bit for bit
 *     with the Hessian that was written.
 *
 *  6. A summary: N, the largest asymmetry max |H_ij - H_ji| (exact second
 *     derivatives are symmetric up to rounding) and the range of the diagonal.
 *
 * Usage: hessian_heatmap [SVG_FILE [NPY_FILE]]
 *   The files default to hessian.svg and hessian.npy in the current directory.
 *
 * Exit status: 0 success; 1 the loss did not go down, or the .npy file did not
 * read back, or not bit for bit; 2 bad arguments, or an output file that cannot be
 * written (the library's HESS_ERR_IO; its message, which names the file, goes
 * to stderr); 3 any other failure of a library call.
 */
#include "hessian.h"
#include "progress.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { HM_OK = 0, HM_FAILED = 1, HM_BAD_INPUT = 2, HM_LIBRARY_ERROR = 3 };

#define N_SAMPLES 24
#define N_IN      4
#define N_HIDDEN  6
#define N_CLASSES 3
#define SEED      UINT64_C(0x2545F4914F6CDD1D)

#define STEPS         12  /* gradient-descent steps */
#define LEARNING_RATE 0.5 /* theta -= LEARNING_RATE * g */

/* The scores that decide each sample's class: class = argmax_c (teacher[c] . x). */
static const double teacher[N_CLASSES][N_IN] = {
    {1.0, -1.0, 0.5, 0.0},
    {-0.5, 1.0, 1.0, -1.0},
    {0.0, 0.5, -1.0, 1.0},
};

/* The parameters, in the order the Hessian flattens them. */
static const char *const param_names[4] = {"W1", "b1", "W2", "b2"};

/* ------------------------------------------------------------------------ */
/* 1. The data, and the initial weights                                     */
/* ------------------------------------------------------------------------ */

/* xorshift64 (Marsaglia 2003): a deterministic stream of 64-bit numbers. */
static uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* Uniform in [lo, hi), from the top 53 bits. */
static double uniform(uint64_t *state, double lo, double hi)
{
    return lo + (hi - lo) * ((double)(xorshift64(state) >> 11) * 0x1.0p-53);
}

/* Fills X [N_SAMPLES, N_IN] and the labels; counts the samples of each class. */
static void make_data(uint64_t *state,
                      double X[N_SAMPLES * N_IN],
                      double labels[N_SAMPLES],
                      int count[N_CLASSES])
{
    for (int c = 0; c < N_CLASSES; c++)
        count[c] = 0;
    for (int i = 0; i < N_SAMPLES; i++) {
        double *x = X + i * N_IN;
        for (int j = 0; j < N_IN; j++)
            x[j] = uniform(state, -1.0, 1.0);
        int best = 0;
        double best_score = -INFINITY;
        for (int c = 0; c < N_CLASSES; c++) {
            double score = 0.0;
            for (int j = 0; j < N_IN; j++)
                score += teacher[c][j] * x[j];
            if (score > best_score) {
                best = c;
                best_score = score;
            }
        }
        labels[i] = best; /* class indices as integral doubles, as hess_cross_entropy wants */
        count[best]++;
    }
}

/* n values uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's bound for nn.Linear. */
static void init_uniform(uint64_t *state, double *v, int n, int fan_in)
{
    const double bound = 1.0 / sqrt((double)fan_in);
    for (int i = 0; i < n; i++)
        v[i] = uniform(state, -bound, bound);
}

/* ------------------------------------------------------------------------ */
/* 2. The network and its loss                                              */
/* ------------------------------------------------------------------------ */

/* Reports a failed library call with the context's message. */
static int library_error(const hess_context *ctx, const char *what, hess_status st)
{
    fprintf(stderr, "hessian_heatmap: %s failed: %s: %s\n", what, hess_status_str(st),
            hess_context_errmsg(ctx));
    return HM_LIBRARY_ERROR;
}

/* cross_entropy(Linear(6,3)(tanh(Linear(4,6)(X))), labels); NULL with the error in ctx. */
static hess_tensor *
build_loss(hess_context *ctx, hess_tensor *X, hess_tensor *labels, hess_tensor *const p[4])
{
    /* Builders pass a NULL operand on, so the caller checks the result once. */
    hess_tensor *hidden = hess_tanh(ctx, hess_linear(ctx, X, p[0], p[1])); /* [24, 6] */
    hess_tensor *logits = hess_linear(ctx, hidden, p[2], p[3]);            /* [24, 3] */
    return hess_cross_entropy(ctx, logits, labels);
}

/* ------------------------------------------------------------------------ */
/* 5. Files                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * A file the library could not write: for HESS_ERR_IO, the context's message
 * (it names the function, the file and the problem) and HM_BAD_INPUT; any
 * other status is a library error.
 */
static int write_error(const hess_context *ctx, const char *what, hess_status st)
{
    if (st != HESS_ERR_IO)
        return library_error(ctx, what, st);
    fprintf(stderr, "hessian_heatmap: %s\n", hess_context_errmsg(ctx));
    return HM_BAD_INPUT;
}

/* Writes H (n x n) as an SVG heatmap and as .npy. */
static int write_files(hess_context *ctx,
                       const char *svg_path,
                       const char *npy_path,
                       hess_tensor *const p[4],
                       const double *H,
                       size_t n)
{
    size_t sizes[4];
    for (int i = 0; i < 4; i++)
        sizes[i] = (size_t)hess_tensor_numel(p[i]);
    char title[160];
    snprintf(title, sizeof title,
             "Hessian of Linear(%d,%d) -> tanh -> Linear(%d,%d), cross-entropy, after %d steps",
             N_IN, N_HIDDEN, N_HIDDEN, N_CLASSES, STEPS);
    hess_status st = hess_write_svg_heatmap(ctx, svg_path, n, H, 4, param_names, sizes, title);
    if (st != HESS_OK)
        return write_error(ctx, "hess_write_svg_heatmap", st);
    printf("wrote %s: the heatmap, blocks W1 b1 W2 b2 outlined\n", svg_path);

    const int64_t shape[2] = {(int64_t)n, (int64_t)n};
    if ((st = hess_save_npy_array(ctx, npy_path, 2, shape, H)) != HESS_OK)
        return write_error(ctx, "hess_save_npy_array", st);
    printf("wrote %s: shape (%zu, %zu), float64; in Python, np.load(\"%s\")\n", npy_path, n, n,
           npy_path);
    return HM_OK;
}

/*
 * Reads npy_path back with hess_load_npy and compares it bit for bit with H
 * (n x n): HM_OK when equal, HM_FAILED when not or when the file cannot be
 * read back.  The tensor it loads is left in the context.
 */
static int check_npy(hess_context *ctx, const char *npy_path, const double *H, size_t n)
{
    hess_tensor *back = hess_load_npy(ctx, npy_path, 0);
    if (!back && hess_context_status(ctx) != HESS_ERR_IO)
        return library_error(ctx, "hess_load_npy", hess_context_status(ctx));
    if (!back) {
        printf("FAIL: the file just written does not read back: %s\n", hess_context_errmsg(ctx));
        return HM_FAILED;
    }
    const int64_t *shape = hess_tensor_shape(back);
    if (hess_tensor_ndim(back) != 2 || shape[0] != (int64_t)n || shape[1] != (int64_t)n) {
        printf("FAIL: %s read back with rank %d, not as a %zu x %zu matrix\n", npy_path,
               hess_tensor_ndim(back), n, n);
        return HM_FAILED;
    }
    /* Bit for bit: memcmp, not ==, which would let -0.0 pass for 0.0 (and fail NaN). */
    const double *data = hess_tensor_data(back);
    size_t differ = 0, first = 0;
    for (size_t k = 0; k < n * n; k++)
        if (memcmp(&data[k], &H[k], sizeof H[k]) != 0 && differ++ == 0)
            first = k;
    if (differ) {
        printf("FAIL: %s read back with %zu of %zu values changed, the first H[%zu][%zu]: "
               "%.17g written, %.17g read\n",
               npy_path, differ, n * n, first / n, first % n, H[first], data[first]);
        return HM_FAILED;
    }
    printf("read %s back with hess_load_npy: all %zu values equal bit for bit\n", npy_path, n * n);
    return HM_OK;
}

/* ------------------------------------------------------------------------ */
/* The run                                                                  */
/* ------------------------------------------------------------------------ */

static int run(hess_context *ctx, const char *svg_path, const char *npy_path)
{
    /* 1. Data and initial weights, from one generator. */
    uint64_t state = SEED;
    double X_data[N_SAMPLES * N_IN], label_data[N_SAMPLES];
    int count[N_CLASSES];
    make_data(&state, X_data, label_data, count);
    double W1[N_HIDDEN * N_IN], b1[N_HIDDEN], W2[N_CLASSES * N_HIDDEN], b2[N_CLASSES];
    init_uniform(&state, W1, N_HIDDEN * N_IN, N_IN);
    init_uniform(&state, b1, N_HIDDEN, N_IN);
    init_uniform(&state, W2, N_CLASSES * N_HIDDEN, N_HIDDEN);
    init_uniform(&state, b2, N_CLASSES, N_HIDDEN);
    double *const values[4] = {W1, b1, W2, b2};

    printf("libhessian %s: the Hessian of a small classifier, as a picture and as .npy\n",
           hess_version_string());
    printf("network: Linear(%d,%d) -> tanh -> Linear(%d,%d), cross-entropy\n", N_IN, N_HIDDEN,
           N_HIDDEN, N_CLASSES);
    printf("data: %d samples of %d features (xorshift64 seed 0x%016llX), classes 0/1/2: "
           "%d/%d/%d\n\n",
           N_SAMPLES, N_IN, (unsigned long long)SEED, count[0], count[1], count[2]);

    /* 2. The data and the parameters live for the whole run: made before the mark. */
    const int64_t X_shape[2] = {N_SAMPLES, N_IN}, labels_shape[1] = {N_SAMPLES};
    const int64_t W1_shape[2] = {N_HIDDEN, N_IN}, b1_shape[1] = {N_HIDDEN};
    const int64_t W2_shape[2] = {N_CLASSES, N_HIDDEN}, b2_shape[1] = {N_CLASSES};
    hess_tensor *X = hess_tensor_new(ctx, 2, X_shape, X_data);
    hess_tensor *labels = hess_tensor_new(ctx, 1, labels_shape, label_data);
    hess_tensor *const p[4] = {
        hess_param_new(ctx, 2, W1_shape, W1),
        hess_param_new(ctx, 1, b1_shape, b1),
        hess_param_new(ctx, 2, W2_shape, W2),
        hess_param_new(ctx, 1, b2_shape, b2),
    };
    if (!X || !labels || !p[0] || !p[1] || !p[2] || !p[3])
        return library_error(ctx, "making the tensors", hess_context_status(ctx));
    const size_t n = hess_param_count(4, p);
    printf("parameters: W1 [%d,%d], b1 [%d], W2 [%d,%d], b2 [%d]: N = %zu\n\n", N_HIDDEN, N_IN,
           N_HIDDEN, N_CLASSES, N_HIDDEN, N_CLASSES, n);

    /* 3. Gradient descent; everything a step builds is freed by the rewind at its end. */
    const hess_mark mark = hess_context_mark(ctx);
    double first_loss = 0.0, loss_value = 0.0;
    hess_status st = HESS_OK;
    printf("gradient descent, learning rate %g:\n%6s  %14s  %10s\n", LEARNING_RATE, "step", "loss",
           "||g||");
    for (int step = 0; step < STEPS; step++) {
        hess_tensor *loss = build_loss(ctx, X, labels, p);
        if (!loss)
            return library_error(ctx, "building the loss", hess_context_status(ctx));
        hess_tensor *grads[4];
        if ((st = hess_grad(ctx, loss, 4, p, grads, 0)) != HESS_OK)
            return library_error(ctx, "hess_grad", st);

        /* theta -= lr * g, in our copies of the values, before the rewind frees grads. */
        loss_value = hess_tensor_data(loss)[0];
        double g2 = 0.0;
        for (int i = 0; i < 4; i++) {
            const double *g = hess_tensor_data(grads[i]);
            for (int64_t k = 0; k < hess_tensor_numel(p[i]); k++) {
                g2 += g[k] * g[k];
                values[i][k] -= LEARNING_RATE * g[k];
            }
        }
        if ((st = hess_context_rewind(ctx, mark)) != HESS_OK)
            return library_error(ctx, "hess_context_rewind", st);
        for (int i = 0; i < 4; i++)
            if ((st = hess_param_set(ctx, p[i], values[i])) != HESS_OK)
                return library_error(ctx, "hess_param_set", st);
        if (step == 0)
            first_loss = loss_value;
        printf("%6d  %14.10f  %10.3e\n", step, loss_value, sqrt(g2));
    }

    /* 4. The loss at the trained parameters, and its full Hessian. */
    hess_tensor *loss = build_loss(ctx, X, labels, p);
    if (!loss)
        return library_error(ctx, "building the loss", hess_context_status(ctx));
    loss_value = hess_tensor_data(loss)[0];
    printf("%6s  %14.10f\n", "final", loss_value);
    if (!(loss_value < first_loss)) {
        printf("FAIL: the loss did not go down (%.10f, then %.10f)\n", first_loss, loss_value);
        return HM_FAILED;
    }

    double *H = malloc(n * n * sizeof *H);
    if (!H) {
        fprintf(stderr, "hessian_heatmap: out of memory for the %zu x %zu Hessian\n", n, n);
        return HM_LIBRARY_ERROR;
    }
    hess_hessian_opts opts = progress_opts();
    st = hess_hessian_ex(ctx, loss, 4, p, &opts, H);
    progress_done(&opts);
    if (st != HESS_OK) {
        free(H);
        return library_error(ctx, "hess_hessian_ex", st);
    }
    if ((st = hess_context_rewind(ctx, mark)) != HESS_OK) {
        free(H);
        return library_error(ctx, "hess_context_rewind", st);
    }

    /* 5. The picture and the .npy file, then the .npy read back. */
    printf("\n");
    int status = write_files(ctx, svg_path, npy_path, p, H, n);
    if (status == HM_OK)
        status = check_npy(ctx, npy_path, H, n);
    if (status != HM_OK) {
        free(H);
        return status;
    }

    /* 6. The summary. */
    double asym = 0.0, hmax = 0.0, dmin = INFINITY, dmax = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            asym = fmax(asym, fabs(H[i * n + j] - H[j * n + i]));
            hmax = fmax(hmax, fabs(H[i * n + j]));
        }
        dmin = fmin(dmin, H[i * n + i]);
        dmax = fmax(dmax, H[i * n + i]);
    }
    printf("\nHessian d2L/dtheta_i dtheta_j at the trained parameters:\n");
    printf("  N = %zu (W1 %lld, b1 %lld, W2 %lld, b2 %lld), %zu entries, max |H_ij| = %.6g\n", n,
           (long long)hess_tensor_numel(p[0]), (long long)hess_tensor_numel(p[1]),
           (long long)hess_tensor_numel(p[2]), (long long)hess_tensor_numel(p[3]), n * n, hmax);
    printf("  symmetry: max |H_ij - H_ji| = %.3e (%.3e of max |H_ij|)\n", asym,
           hmax > 0.0 ? asym / hmax : 0.0);
    printf("  diagonal: from %.6g to %.6g\n", dmin, dmax);
    free(H);
    printf("PASS\n");
    return HM_OK;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: hessian_heatmap [SVG_FILE [NPY_FILE]]\n"
                 "  trains Linear(4,6) -> tanh -> Linear(6,3) a few steps, then writes its\n"
                 "  Hessian as an SVG heatmap (default hessian.svg) and as a NumPy .npy file\n"
                 "  (default hessian.npy) and reads the .npy back\n"
                 "exit status: 0 ok; 1 the loss did not go down or the .npy did not read back\n"
                 "  bit for bit; 2 bad arguments or a file that cannot be written; 3 other\n"
                 "  library error\n");
}

int main(int argc, char **argv)
{
    const char *files[2] = {"hessian.svg", "hessian.npy"};
    int given = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return HM_OK;
        }
        if (argv[i][0] == '\0') {
            fprintf(stderr, "hessian_heatmap: an empty file name (try --help)\n");
            return HM_BAD_INPUT;
        }
        if (argv[i][0] == '-') {
            fprintf(stderr, "hessian_heatmap: unknown argument '%s' (try --help)\n", argv[i]);
            return HM_BAD_INPUT;
        }
        if (given == 2) {
            fprintf(stderr, "hessian_heatmap: at most two files, SVG and NPY (try --help)\n");
            return HM_BAD_INPUT;
        }
        files[given++] = argv[i];
    }

    hess_context *ctx = NULL;
    hess_status st = hess_context_create(NULL, &ctx);
    if (st != HESS_OK) { /* no context, so no message beyond the status */
        fprintf(stderr, "hessian_heatmap: hess_context_create failed: %s\n", hess_status_str(st));
        return HM_LIBRARY_ERROR;
    }
    int status = run(ctx, files[0], files[1]);
    hess_context_destroy(ctx);
    return status;
}
