/*
 * per_fedavg.c -- personalised federated learning on Fashion-MNIST: FedAvg
 * and Per-FedAvg (Fallah, Mokhtari and Ozdaglar, "Personalized Federated
 * Learning with Theoretical Guarantees: A Model-Agnostic Meta-Learning
 * Approach", NeurIPS 2020), whose local step needs a Hessian-vector product:
 * dropped (FO), by a central difference of gradients (HF), or exact from
 * hess_hvp (HVP).
 *
 * The server keeps the model w.  Each round it picks a fraction r of the
 * clients; each picked client runs tau local steps from w on its own data
 * (per_fedavg_lib.h: pf_local_step, three independent minibatches per step)
 * and sends its model back; the server averages them, in client order.  Every
 * client's personalised test accuracy -- one gradient step with step alpha
 * from w on a minibatch of its own, then its test samples -- is averaged over
 * the clients after every round, for FedAvg too.
 *
 * Built with MPI (CMake found it) the program also runs under mpirun -np P:
 * rank 0 is the server, the clients are dealt to ranks 1..P-1 (client i to
 * rank 1 + i mod (P-1)), the model is broadcast and the clients' models are
 * gathered as flat vectors.  Every random choice is drawn from a stream keyed
 * by (seed, round, client) and the server sums in client order, so a run
 * gives the same numbers, bit for bit, on any number of ranks.
 *
 *   per_fedavg [--algo fedavg|fo|hf|hvp] [--compare] [--data DIR | --synthetic N]
 *              [--clients N] [--classes-per-client K] [--rounds R]
 *              [--local-steps TAU] [--fraction R] [--alpha A] [--beta B]
 *              [--delta D] [--batch B] [--seed S] [--csv FILE] [--svg FILE]
 *
 * Exit status: 0; 1 when a library call fails or a file cannot be written; 2
 * for bad arguments or a missing or malformed data file (one line on stderr).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "per_fedavg_lib.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef PER_FEDAVG_MPI
#include <mpi.h>
#endif

#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct options {
    const char *data;
    long synthetic; /* samples per class of a made-up set, 0 = read --data */
    int clients, k, rounds, tau, batch;
    double fraction;
    pf_hyper hp;
    uint64_t seed;
    pf_algo algo;
    bool compare;
    const char *csv, *svg;
} options;

static const char usage[] =
    "usage: per_fedavg [--algo fedavg|fo|hf|hvp] [--compare] [--data DIR | --synthetic N]\n"
    "                  [--clients N] [--classes-per-client K] [--rounds R] [--local-steps TAU]\n"
    "                  [--fraction R] [--alpha A] [--beta B] [--delta D] [--batch B]\n"
    "                  [--seed S] [--csv FILE] [--svg FILE]\n";

/* Parses a whole integer in [lo, hi] or a whole finite double in (lo, hi]. */
static bool int_arg(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool real_arg(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    const double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > lo && v <= hi))
        return false;
    *out = v;
    return true;
}

/* The options that take a value. */
static const char *const valued[] = {
    "--algo",   "--data",        "--synthetic", "--clients", "--classes-per-client",
    "--rounds", "--local-steps", "--batch",     "--seed",    "--fraction",
    "--alpha",  "--beta",        "--delta",     "--csv",     "--svg"};

/* 0, or -1 with the problem in err (one line). */
static int parse(int argc, char **argv, options *o, char *err, size_t errlen)
{
    *o = (options){.data = DEFAULT_DATA,
                   .clients = 20,
                   .k = 2,
                   .rounds = 100,
                   .tau = 10,
                   .batch = 40,
                   .fraction = 0.2,
                   .hp = {.alpha = 0.05, .beta = 0.05, .delta = 1e-3},
                   .seed = 1,
                   .algo = PF_HVP};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--compare") == 0) {
            o->compare = true;
            continue;
        }
        bool known = false;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
            known = known || strcmp(a, valued[k]) == 0;
        if (!known) {
            snprintf(err, errlen, "unknown argument '%s' (see --help)", a);
            return -1;
        }
        if (i + 1 == argc) {
            snprintf(err, errlen, "%s needs a value", a);
            return -1;
        }
        const char *v = argv[++i];
        long n = 0;
        bool ok = true;
        if (strcmp(a, "--algo") == 0) {
            const int al = pf_algo_parse(v);
            ok = al >= 0;
            o->algo = (pf_algo)(al >= 0 ? al : 0);
        } else if (strcmp(a, "--data") == 0) {
            o->data = v;
        } else if (strcmp(a, "--synthetic") == 0) {
            ok = int_arg(v, 8, 100000, &o->synthetic);
        } else if (strcmp(a, "--clients") == 0) {
            ok = int_arg(v, 1, 100000, &n), o->clients = (int)n;
        } else if (strcmp(a, "--classes-per-client") == 0) {
            ok = int_arg(v, 1, 10, &n), o->k = (int)n;
        } else if (strcmp(a, "--rounds") == 0) {
            ok = int_arg(v, 1, 1000000, &n), o->rounds = (int)n;
        } else if (strcmp(a, "--local-steps") == 0) {
            ok = int_arg(v, 1, 100000, &n), o->tau = (int)n;
        } else if (strcmp(a, "--batch") == 0) {
            ok = int_arg(v, 1, 100000, &n), o->batch = (int)n;
        } else if (strcmp(a, "--seed") == 0) {
            ok = int_arg(v, 0, 2147483647L, &n), o->seed = (uint64_t)n;
        } else if (strcmp(a, "--fraction") == 0) {
            ok = real_arg(v, 0, 1, &o->fraction);
        } else if (strcmp(a, "--alpha") == 0) {
            ok = real_arg(v, 0, 1e6, &o->hp.alpha);
        } else if (strcmp(a, "--beta") == 0) {
            ok = real_arg(v, 0, 1e6, &o->hp.beta);
        } else if (strcmp(a, "--delta") == 0) {
            ok = real_arg(v, 0, 1e6, &o->hp.delta);
        } else if (strcmp(a, "--csv") == 0) {
            o->csv = v;
        } else {
            o->svg = v;
        }
        if (!ok) {
            snprintf(err, errlen, "bad value '%s' for %s", v, a);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Processes: one, or the ranks of MPI_COMM_WORLD                           */
/* ------------------------------------------------------------------------ */

typedef struct procs {
    int rank, size;
} procs;

/* The rank that runs client i: rank 0 alone, else 1 + i mod (P-1). */
static int owner(const procs *p, int i)
{
    return p->size == 1 ? 0 : 1 + i % (p->size - 1);
}

/* Ends the run from any rank with status st (MPI: all ranks). */
static void die(const procs *p, int st)
{
#ifdef PER_FEDAVG_MPI
    if (p->size > 1)
        MPI_Abort(MPI_COMM_WORLD, st);
    MPI_Finalize();
#endif
    (void)p;
    exit(st);
}

/* Brings the rows of a table of `width` doubles per client, each filled by
 * the rank that owns its client (for the clients listed in ids[0..m), in
 * increasing order), to the server in client order: mine holds this rank's
 * rows in client order, all holds the m rows on rank 0.  Returns the bytes
 * this rank sent. */
static size_t gather_rows(const procs *p,
                          const int *ids,
                          int m,
                          size_t width,
                          const double *mine,
                          double *all,
                          double *scratch)
{
#ifdef PER_FEDAVG_MPI
    if (p->size > 1) {
        int cnt[4096], disp[4096];
        if (p->size > 4096)
            die(p, 1);
        int own = 0;
        for (int r = 0; r < p->size; r++)
            cnt[r] = 0;
        for (int q = 0; q < m; q++)
            cnt[owner(p, ids[q])] += (int)width;
        for (int r = 0, at = 0; r < p->size; r++)
            disp[r] = at, at += cnt[r];
        own = cnt[p->rank];
        MPI_Gatherv(mine, own, MPI_DOUBLE, scratch, cnt, disp, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        if (p->rank == 0) { /* rank-major to client order */
            int next[4096];
            memcpy(next, disp, (size_t)p->size * sizeof *next);
            for (int q = 0; q < m; q++) {
                const int r = owner(p, ids[q]);
                memcpy(all + (size_t)q * width, scratch + next[r], width * sizeof *all);
                next[r] += (int)width;
            }
        }
        return (size_t)own * sizeof(double);
    }
#endif
    (void)ids, (void)scratch;
    memcpy(all, mine, (size_t)m * width * sizeof *all);
    return 0;
}

/* w from the server to every rank; the bytes this rank sent. */
static size_t broadcast(const procs *p, double *w, size_t n)
{
#ifdef PER_FEDAVG_MPI
    if (p->size > 1) {
        MPI_Bcast(w, (int)n, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        /* counted as a flat broadcast: the payload to each of P - 1 ranks */
        return p->rank == 0 ? n * sizeof *w * (size_t)(p->size - 1) : 0;
    }
#endif
    (void)p, (void)w, (void)n;
    return 0;
}

/* The sum over ranks of v (the bytes each sent), on rank 0. */
static size_t total_bytes(const procs *p, size_t v)
{
#ifdef PER_FEDAVG_MPI
    if (p->size > 1) {
        unsigned long long mine = v, sum = 0;
        MPI_Reduce(&mine, &sum, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
        return (size_t)sum;
    }
#endif
    (void)p;
    return v;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* One run of an algorithm                                                  */
/* ------------------------------------------------------------------------ */

/* What a run gives, per round 0..rounds (round 0: the initial model). */
typedef struct curve {
    pf_algo algo;
    double *round, *loss, *acc, *secs;
} curve;

/* The federation as this rank sees it. */
typedef struct fed {
    const options *o;
    procs p;
    pf_arch arch;
    size_t N;
    pf_share *shares;
    pf_worker **wk;   /* [clients], NULL for clients of other ranks */
    const char *what; /* "Fashion-MNIST" or "synthetic data" */
} fed;

/* Buffers of a run, sized once. */
typedef struct bufs {
    double *w, *rows, *all, *scratch, *acc_mine, *acc_all;
    int *ids, *every;
    size_t *batches; /* three minibatches */
} bufs;

static void fail_client(const fed *f, int i, const char *what)
{
    fprintf(stderr, "per_fedavg: client %d: %s: %s\n", i, what, pf_worker_error(f->wk[i]));
    die(&f->p, 1);
}

/* The personalised accuracy of every client at w (all ranks hold w); the
 * mean, on rank 0, and the bytes this rank sent. */
static double evaluate(const fed *f, int round, bufs *b, size_t *sent)
{
    const options *o = f->o;
    int mine = 0;
    for (int i = 0; i < o->clients; i++) {
        if (owner(&f->p, i) != f->p.rank)
            continue;
        pf_rng r = pf_rng_key(o->seed, (uint64_t)round, (uint64_t)i, PF_STREAM_EVAL);
        pf_rng_sample(&r, f->shares[i].n_train, (size_t)o->batch, b->batches);
        if (pf_personal_accuracy(f->wk[i], b->w, o->hp.alpha, b->batches, &b->acc_mine[mine++]))
            fail_client(f, i, "personalised accuracy");
    }
    *sent += gather_rows(&f->p, b->every, o->clients, 1, b->acc_mine, b->acc_all, b->scratch);
    double sum = 0;
    for (int i = 0; i < o->clients; i++)
        sum += b->acc_all[i];
    return sum / o->clients;
}

/* One round of training from w (all ranks hold it): the picked clients'
 * models averaged into w on rank 0; the mean training loss, on rank 0. */
static double train(const fed *f, pf_algo algo, int round, int m, bufs *b, size_t *sent)
{
    const options *o = f->o;
    const size_t N = f->N, B = (size_t)o->batch, width = N + 1;
    /* the same pick on every rank, in client order */
    pf_rng sel = pf_rng_key(o->seed, (uint64_t)round, 0, PF_STREAM_SELECT);
    size_t pick[4096];
    pf_rng_sample(&sel, (size_t)o->clients, (size_t)m, pick);
    for (int q = 0; q < m; q++)
        b->ids[q] = (int)pick[q];
    for (int q = 1; q < m; q++) /* insertion sort: m is small */
        for (int j = q; j > 0 && b->ids[j - 1] > b->ids[j]; j--) {
            const int t = b->ids[j];
            b->ids[j] = b->ids[j - 1];
            b->ids[j - 1] = t;
        }
    int mine = 0;
    for (int q = 0; q < m; q++) {
        const int i = b->ids[q];
        if (owner(&f->p, i) != f->p.rank)
            continue;
        double *wi = b->rows + (size_t)mine++ * width;
        memcpy(wi, b->w, N * sizeof *wi);
        pf_rng r = pf_rng_key(o->seed, (uint64_t)round, (uint64_t)i, PF_STREAM_LOCAL);
        double loss_sum = 0;
        for (int t = 0; t < o->tau; t++) {
            for (int j = 0; j < 3; j++)
                pf_rng_sample(&r, f->shares[i].n_train, B, b->batches + (size_t)j * B);
            double loss = 0;
            if (pf_local_step(f->wk[i], algo, &o->hp, wi, b->batches, b->batches + B,
                              b->batches + 2 * B, &loss) != 0)
                fail_client(f, i, "local step");
            loss_sum += loss;
        }
        wi[N] = loss_sum / o->tau; /* travels with the model */
    }
    *sent += gather_rows(&f->p, b->ids, m, width, b->rows, b->all, b->scratch);
    double loss = 0;
    if (f->p.rank == 0) { /* the average, summed in client order */
        for (size_t j = 0; j < N; j++)
            b->w[j] = 0;
        for (int q = 0; q < m; q++) {
            const double *wi = b->all + (size_t)q * width;
            for (size_t j = 0; j < N; j++)
                b->w[j] += wi[j];
            loss += wi[N];
        }
        for (size_t j = 0; j < N; j++)
            b->w[j] /= m;
    }
    return loss / m;
}

static const char *human_bytes(size_t n, char buf[32])
{
    if (n < 10000)
        snprintf(buf, 32, "%zu B", n);
    else
        snprintf(buf, 32, "%.2f MB", (double)n / 1e6);
    return buf;
}

static void run(const fed *f, pf_algo algo, curve *cv)
{
    const options *o = f->o;
    const size_t N = f->N, width = N + 1;
    int m = (int)lround(o->fraction * o->clients);
    m = m < 1 ? 1 : m;
    if (m > 4096) {
        fprintf(stderr, "per_fedavg: at most 4096 clients per round\n");
        die(&f->p, 2);
    }
    bufs b;
    b.w = malloc(N * sizeof *b.w);
    b.rows = malloc((size_t)m * width * sizeof *b.rows);
    b.all = malloc((size_t)(m > o->clients ? m : o->clients) * width * sizeof *b.all);
    b.scratch = malloc((size_t)(m > o->clients ? m : o->clients) * width * sizeof *b.scratch);
    b.acc_mine = malloc((size_t)o->clients * sizeof *b.acc_mine);
    b.acc_all = malloc((size_t)o->clients * sizeof *b.acc_all);
    b.ids = malloc((size_t)m * sizeof *b.ids);
    b.every = malloc((size_t)o->clients * sizeof *b.every);
    b.batches = malloc(3 * (size_t)o->batch * sizeof *b.batches);
    if (!b.w || !b.rows || !b.all || !b.scratch || !b.acc_mine || !b.acc_all || !b.ids ||
        !b.every || !b.batches) {
        fprintf(stderr, "per_fedavg: out of memory\n");
        die(&f->p, 1);
    }
    for (int i = 0; i < o->clients; i++)
        b.every[i] = i;
    pf_init_params(&f->arch, o->seed, b.w); /* the same on every rank */
    cv->algo = algo;
    const bool say = f->p.rank == 0;
    for (int r = 0; r <= o->rounds; r++) {
        const double t0 = now();
        size_t sent = 0;
        double loss = NAN;
        if (r > 0) {
            loss = train(f, algo, r, m, &b, &sent);
            sent += broadcast(&f->p, b.w, N);
        }
        const double t1 = now();
        const double acc = evaluate(f, r, &b, &sent);
        const double eval_secs = now() - t1;
        sent = total_bytes(&f->p, sent);
        cv->round[r] = r;
        cv->loss[r] = loss;
        cv->acc[r] = acc;
        cv->secs[r] = now() - t0;
        if (!say)
            continue;
        char hb[32];
        char ls[32] = "         -";
        if (r > 0)
            snprintf(ls, sizeof ls, "%10.6f", loss);
        printf("%-6s round %4d  loss %s  personalized accuracy %.4f  %7.3f s (evaluation %.3f s)"
               "  sent %s\n",
               pf_algo_name(algo), r, ls, acc, cv->secs[r], eval_secs, human_bytes(sent, hb));
        fflush(stdout);
    }
    free(b.w), free(b.rows), free(b.all), free(b.scratch), free(b.acc_mine), free(b.acc_all);
    free(b.ids), free(b.every), free(b.batches);
}

/* ------------------------------------------------------------------------ */
/* Set-up: data, clients, graphs                                            */
/* ------------------------------------------------------------------------ */

/* Reads or makes the data and builds the graphs of this rank's clients;
 * returns 0, or 2 (a data file) or 1 (memory), with the message in err. */
static int setup(fed *f, pf_images *train, pf_images *test, char *err, size_t errlen)
{
    const options *o = f->o;
    if (o->synthetic) {
        const size_t per = (size_t)o->synthetic;
        if (pf_images_synthetic(per, 784, 10, 2020, 0, train) ||
            pf_images_synthetic(per / 3 + 1, 784, 10, 2020, 1, test)) {
            snprintf(err, errlen, "out of memory for the synthetic data");
            return 1;
        }
    } else {
        char xi[4096], yi[4096];
        snprintf(xi, sizeof xi, "%s/train-images-idx3-ubyte.gz", o->data);
        snprintf(yi, sizeof yi, "%s/train-labels-idx1-ubyte.gz", o->data);
        if (pf_images_load(xi, yi, 10, train, err, errlen) != 0)
            return 2;
        snprintf(xi, sizeof xi, "%s/t10k-images-idx3-ubyte.gz", o->data);
        snprintf(yi, sizeof yi, "%s/t10k-labels-idx1-ubyte.gz", o->data);
        if (pf_images_load(xi, yi, 10, test, err, errlen) != 0)
            return 2;
    }
    if (train->d != 784 || test->d != 784) {
        snprintf(err, errlen, "%s: images of %zu and %zu pixels, the model takes 784 (28 x 28)",
                 o->data, train->d, test->d);
        return 2;
    }
    f->shares = pf_split(train, test, o->clients, o->k, o->seed);
    if (!f->shares) {
        snprintf(err, errlen, "out of memory splitting the data");
        return 1;
    }
    f->wk = calloc((size_t)o->clients, sizeof *f->wk);
    if (!f->wk) {
        snprintf(err, errlen, "out of memory");
        return 1;
    }
    for (int i = 0; i < o->clients; i++) {
        if (owner(&f->p, i) != f->p.rank)
            continue;
        char why[400];
        f->wk[i] =
            pf_worker_new(&f->arch, o->batch, train, test, &f->shares[i], NULL, why, sizeof why);
        if (!f->wk[i]) {
            snprintf(err, errlen, "client %d: %s", i, why);
            return 2;
        }
    }
    return 0;
}

/* Whether every rank set up; the first failing rank's message is printed
 * (one line) by that rank.  Returns the status to exit with, 0 if none. */
static int agree(const procs *p, int st, const char *err)
{
#ifdef PER_FEDAVG_MPI
    if (p->size > 1) {
        const int me = st ? p->rank : p->size;
        int first = p->size, worst = 0;
        MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(&st, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (first == p->rank)
            fprintf(stderr, "per_fedavg: %s\n", err);
        return worst;
    }
#endif
    if (st)
        fprintf(stderr, "per_fedavg: %s\n", err);
    (void)p;
    return st;
}

/* ------------------------------------------------------------------------ */
/* Output files                                                             */
/* ------------------------------------------------------------------------ */

static int write_csv(const char *path, const curve *cv, int n, int rounds)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs("algorithm,round,train_loss,personalized_accuracy\n", f);
    for (int c = 0; c < n; c++)
        for (int r = 0; r <= rounds; r++)
            fprintf(f, "%s,%d,%.17g,%.17g\n", pf_algo_name(cv[c].algo), r, cv[c].loss[r],
                    cv[c].acc[r]);
    const int bad = ferror(f);
    return fclose(f) != 0 || bad ? -1 : 0;
}

static const char *const series_name[] = {"FedAvg (+ one step)", "Per-FedAvg (FO)",
                                          "Per-FedAvg (HF)", "Per-FedAvg (exact HVP)"};

/* The accuracy curves as an SVG line chart; on failure one line on stderr
 * (the library's message) and -1. */
static int write_svg(const char *path, const fed *f, const curve *cv, int n)
{
    const options *o = f->o;
    hess_series s[4];
    for (int c = 0; c < n; c++)
        s[c] =
            (hess_series){series_name[cv[c].algo], (size_t)o->rounds + 1, cv[c].round, cv[c].acc};
    char title[256];
    snprintf(title, sizeof title, "Personalized accuracy on %s: %d clients, %d classes each",
             f->what, o->clients, o->k);
    hess_context *ctx = NULL;
    hess_status st = hess_context_create(NULL, &ctx);
    if (st == HESS_OK)
        st = hess_write_svg_lines(ctx, path, title, "round",
                                  "personalized test accuracy (one local step)", (size_t)n, s);
    if (st != HESS_OK)
        fprintf(stderr, "per_fedavg: %s\n",
                ctx ? hess_context_errmsg(ctx) : "no memory for a context to draw the chart");
    hess_context_destroy(ctx);
    return st == HESS_OK ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

/* Frees what setup made (also after it failed half-way) and ends MPI. */
static void teardown(fed *f, pf_images *train, pf_images *test)
{
    for (int i = 0; f->wk && i < f->o->clients; i++)
        pf_worker_free(f->wk[i]);
    free(f->wk);
    pf_shares_free(f->shares, f->o->clients);
    pf_images_free(train);
    pf_images_free(test);
#ifdef PER_FEDAVG_MPI
    MPI_Finalize();
#endif
}

int main(int argc, char **argv)
{
    procs p = {0, 1};
#ifdef PER_FEDAVG_MPI
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &p.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &p.size);
#endif
    options o;
    char err[1024];
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            if (p.rank == 0)
                fputs(usage, stdout);
#ifdef PER_FEDAVG_MPI
            MPI_Finalize();
#endif
            return 0;
        }
    int st = parse(argc, argv, &o, err, sizeof err);
    if (st != 0) {
        if (p.rank == 0)
            fprintf(stderr, "per_fedavg: %s\n", err);
#ifdef PER_FEDAVG_MPI
        MPI_Finalize();
#endif
        return 2;
    }
    fed f = {.o = &o, .p = p, .arch = {784, 80, 60, 10, 1.0}};
    f.N = pf_param_count(&f.arch);
    f.what = o.synthetic ? "synthetic data" : "Fashion-MNIST";
    pf_images train = {0}, test = {0};
    /* the server of an MPI run needs no data */
    st = p.size > 1 && p.rank == 0 ? 0 : setup(&f, &train, &test, err, sizeof err);
    if ((st = agree(&p, st, err)) != 0) {
        teardown(&f, &train, &test);
        return st;
    }
    if (p.rank == 0)
        printf("per_fedavg: %s, %d clients with %d classes each, %d per round, model "
               "784-80-60-10 ELU (%zu parameters), %d rounds of %d local steps, batch %d, "
               "alpha %g, beta %g, delta %g, seed %llu, %d process%s\n",
               f.what, o.clients, o.k, (int)fmax(1, lround(o.fraction * o.clients)), f.N, o.rounds,
               o.tau, o.batch, o.hp.alpha, o.hp.beta, o.hp.delta, (unsigned long long)o.seed,
               p.size, p.size > 1 ? "es (MPI)" : "");
    const int n_runs = o.compare ? 4 : 1;
    curve cv[4];
    double *mem = malloc((size_t)n_runs * 4 * ((size_t)o.rounds + 1) * sizeof *mem);
    if (!mem) {
        fprintf(stderr, "per_fedavg: out of memory\n");
        die(&p, 1);
    }
    for (int c = 0; c < n_runs; c++) {
        double *base = mem + (size_t)c * 4 * ((size_t)o.rounds + 1);
        cv[c] = (curve){(pf_algo)c, base, base + o.rounds + 1, base + 2 * (o.rounds + 1),
                        base + 3 * (o.rounds + 1)};
        run(&f, o.compare ? (pf_algo)c : o.algo, &cv[c]);
    }
    st = 0;
    if (p.rank == 0) {
        if (o.compare) {
            printf("\nalgorithm  personalized accuracy after round %d  seconds per round\n",
                   o.rounds);
            for (int c = 0; c < n_runs; c++) {
                double secs = 0;
                for (int r = 1; r <= o.rounds; r++)
                    secs += cv[c].secs[r];
                printf("%-9s  %.4f  %33.3f\n", pf_algo_name(cv[c].algo), cv[c].acc[o.rounds],
                       secs / o.rounds);
            }
        }
        if (o.csv && write_csv(o.csv, cv, n_runs, o.rounds) != 0) {
            fprintf(stderr, "per_fedavg: %s: cannot write (%s)\n", o.csv, strerror(errno));
            st = 1;
        }
        if (o.svg && write_svg(o.svg, &f, cv, n_runs) != 0)
            st = 1;
        const curve *main_run = &cv[o.compare ? (int)o.algo : 0];
        printf("final personalized accuracy: %.4f\n", main_run->acc[o.rounds]);
    }
    free(mem);
    teardown(&f, &train, &test);
    return st;
}
