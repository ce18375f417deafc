/*
 * per_fedavg_lib.h -- what examples/per_fedavg.c is made of and another
 * federated program would write again: a keyed random number generator (the
 * randomness of every client depends on (seed, round, client) only), labelled
 * image sets read with hess_load_idx or made up, a non-IID split into
 * clients, the paper's MLP as a graph built once and re-run per minibatch,
 * the local steps of FedAvg and of Per-FedAvg (FO, HF, exact HVP) after
 * Fallah, Mokhtari and Ozdaglar (NeurIPS 2020).  (The chart of the curves is
 * the library's hess_write_svg_lines().)  Uses only include/hessian.h.
 *
 * Flat parameter vectors are laid out as torch.nn.utils.parameters_to_vector
 * lays out nn.Sequential(Linear, ELU, Linear, ELU, Linear): W1 [h1, in], b1,
 * W2 [h2, h1], b2, W3 [out, h2], b3, each row-major.
 */
#ifndef HESSIAN_EXAMPLES_PER_FEDAVG_LIB_H
#define HESSIAN_EXAMPLES_PER_FEDAVG_LIB_H

#include "hessian.h"

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* Keyed random numbers                                                     */
/* ------------------------------------------------------------------------ */

/* xoshiro256** seeded by splitmix64 from a key: streams with different keys
 * are independent, and a stream depends on nothing but its key. */
typedef struct pf_rng {
    uint64_t s[4];
} pf_rng;

/* What a stream is for (the last part of its key). */
enum {
    PF_STREAM_INIT = 1,
    PF_STREAM_SPLIT,
    PF_STREAM_SELECT,
    PF_STREAM_LOCAL,
    PF_STREAM_EVAL,
    PF_STREAM_DATA
};

/* The stream of key (seed, a, b, purpose), e.g. (seed, round, client, PF_STREAM_LOCAL). */
pf_rng pf_rng_key(uint64_t seed, uint64_t a, uint64_t b, int purpose);
uint64_t pf_rng_next(pf_rng *r);
/* Uniform in [0, 1) with 53 bits. */
double pf_rng_uniform(pf_rng *r);
/* Uniform in 0..n-1 (n >= 1), without modulo bias. */
uint64_t pf_rng_below(pf_rng *r, uint64_t n);
/* k distinct values of 0..n-1 (k <= n), in the order drawn (Floyd's method). */
void pf_rng_sample(pf_rng *r, size_t n, size_t k, size_t *out);

/* ------------------------------------------------------------------------ */
/* Labelled images                                                          */
/* ------------------------------------------------------------------------ */

/* n samples of d features, as bytes 0..255 (scaled by 1/255 when used), and
 * their labels 0..classes-1. */
typedef struct pf_images {
    size_t n, d;
    int classes;
    unsigned char *x; /* n x d */
    unsigned char *y; /* n */
} pf_images;

/* Reads an IDX image file ([n, rows, cols] or [n, d] of values 0..255) and
 * its IDX label file ([n] of 0..classes-1) with hess_load_idx, each in a
 * context of its own freed before returning, into out (malloc'ed).  Returns
 * 0, or -1 with one line naming the file in err. */
int pf_images_load(
    const char *images, const char *labels, int classes, pf_images *out, char *err, size_t errlen);
/* A made-up set like Fashion-MNIST's, for tests: per_class samples of each of
 * `classes` classes, d features: a random prototype per class (from the data
 * seed) plus noise of the sample's own.  Returns 0, or -1 (out of memory). */
int pf_images_synthetic(
    size_t per_class, size_t d, int classes, uint64_t seed, int part, pf_images *out);
void pf_images_free(pf_images *s);

/* ------------------------------------------------------------------------ */
/* Clients: a non-IID split                                                 */
/* ------------------------------------------------------------------------ */

/* One client's share: the indices of its training and test samples. */
typedef struct pf_share {
    int n_classes;
    int classes[16];
    size_t n_train, n_test;
    size_t *train; /* into the training set */
    size_t *test;  /* into the test set */
} pf_share;

/* Each of n clients holds the samples of k classes (k <= classes): client i
 * takes classes P[(i k + j) mod C], j < k, of a permutation P of the C classes
 * drawn from the seed, so that every class is held by about n k / C clients;
 * the samples of a class (training and test alike) are shuffled and dealt to
 * its holders in client order, in shares that differ by at most one.
 * Returns an array of n shares (pf_shares_free), or NULL (out of memory or
 * k out of 1..min(C, 16)). */
pf_share *pf_split(const pf_images *train, const pf_images *test, int n, int k, uint64_t seed);
void pf_shares_free(pf_share *s, int n);

/* ------------------------------------------------------------------------ */
/* The model and one client's graph                                         */
/* ------------------------------------------------------------------------ */

/* An MLP in -> h1 -> h2 -> out with ELU(alpha) between the layers, trained
 * with cross-entropy on logits. */
typedef struct pf_arch {
    int in, h1, h2, out;
    double elu_alpha;
} pf_arch;

/* The parameter count N. */
size_t pf_param_count(const pf_arch *a);
/* PyTorch's default initialisation of nn.Linear (weights and biases uniform
 * in +-1/sqrt(fan_in)), drawn from the seed, into w (N doubles). */
void pf_init_params(const pf_arch *a, uint64_t seed, double *w);

/* One client's graph: the loss of a minibatch of `batch` samples and its
 * gradient, built once and run again for every minibatch and parameter value
 * with hess_tensor_set; and the logits of the client's test samples for the
 * personalised accuracy.  All memory comes from the context (made with cfg,
 * NULL for defaults) and from one malloc'ed block made here. */
typedef struct pf_worker pf_worker;

/* Builds the graphs; the test samples are copied into the context.  NULL
 * with a message in err when something fails. */
pf_worker *pf_worker_new(const pf_arch *a,
                         int batch,
                         const pf_images *train,
                         const pf_images *test,
                         const pf_share *share,
                         const hess_config *cfg,
                         char *err,
                         size_t errlen);
void pf_worker_free(pf_worker *w);
hess_context *pf_worker_context(pf_worker *w);
/* The message of the worker's last failure. */
const char *pf_worker_error(const pf_worker *w);

/* The four algorithms. */
typedef enum pf_algo { PF_FEDAVG, PF_FO, PF_HF, PF_HVP } pf_algo;
/* "fedavg", "fo", "hf", "hvp"; and back (-1 if none). */
const char *pf_algo_name(pf_algo a);
int pf_algo_parse(const char *s);

/* Step sizes: alpha of the personalisation (inner) step, beta of the outer
 * one, delta of HF's central difference. */
typedef struct pf_hyper {
    double alpha, beta, delta;
} pf_hyper;

/* The loss of the minibatch (batch indices into the client's training
 * share) at w, and its gradient into g (N doubles; may be NULL).  0 or -1. */
int pf_grad(pf_worker *wk, const double *w, const size_t *batch, double *g, double *loss);
/* hv = H v, the Hessian of the minibatch's loss at w, with hess_hvp. */
int pf_hvp(pf_worker *wk, const double *w, const size_t *batch, const double *v, double *hv);

/* One local step of the algorithm on w (N doubles, updated in place) with
 * the three independent minibatches D, D1 (D') and D2 (D'') of the paper's
 * Algorithm 1 (FedAvg uses only D):
 *   FedAvg:  w -= beta grad f(w, D)
 *   Per-FedAvg: wt = w - alpha grad f(w, D),  g = grad f(wt, D'),
 *     FO:  w -= beta g
 *     HF:  w -= beta (g - alpha d),  d = (grad f(w + delta g, D'') -
 *                                        grad f(w - delta g, D'')) / (2 delta)
 *     HVP: w -= beta (g - alpha H(w, D'') g)       (H g exact, hess_hvp)
 * *loss gets f(w, D) at the step's start.  0 or -1. */
int pf_local_step(pf_worker *wk,
                  pf_algo algo,
                  const pf_hyper *hp,
                  double *w,
                  const size_t *D,
                  const size_t *D1,
                  const size_t *D2,
                  double *loss);

/* The personalised test accuracy at w: one gradient step with step alpha on
 * the minibatch (from w), then the share of the client's test samples whose
 * largest logit is the label's.  0 or -1. */
int pf_personal_accuracy(
    pf_worker *wk, const double *w, double alpha, const size_t *batch, double *accuracy);

#endif
