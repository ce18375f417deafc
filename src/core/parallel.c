/*
 * parallel.c -- the library's own threads, for the sweeps of the Hessian
 * functions: a parallel loop, and replicas of a replay (clones of the nodes a
 * replay recomputes, each with its own values and workspace) so that several
 * threads can evaluate the same graph for different directions at once.
 * Everything a replica needs is allocated on the caller's thread before the
 * threads start; a thread running a replica calls kernels only (no arena, no
 * context state), so the context stays single-threaded to its caller, and a
 * block gives the same bits on any thread.
 */
#include "core.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

int hess__cores(void)
{
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > HESS_MAX_THREADS ? HESS_MAX_THREADS : (int)n;
}

typedef struct worker {
    void (*fn)(void *, int);
    void *arg;
    int t;
} worker;

static void *trampoline(void *p)
{
    const worker *w = p;
    w->fn(w->arg, w->t);
    return NULL;
}

int hess__parallel(int n, void (*fn)(void *arg, int t), void *arg)
{
    pthread_t th[HESS_MAX_THREADS];
    worker w[HESS_MAX_THREADS];
    bool started[HESS_MAX_THREADS] = {false};
    int ran = 1;
    for (int t = 1; t < n && t < HESS_MAX_THREADS; t++) {
        w[t] = (worker){fn, arg, t};
        started[t] = pthread_create(&th[t], NULL, trampoline, &w[t]) == 0;
        ran += started[t];
    }
    fn(arg, 0);
    for (int t = 1; t < n && t < HESS_MAX_THREADS; t++)
        if (started[t])
            pthread_join(th[t], NULL);
    return ran;
}

hess_status hess__replica_make(hess_context *ctx,
                               const hess__replay *plan,
                               size_t n_leaves,
                               hess_tensor *const leaves[],
                               hess__replica *r,
                               const char *fn)
{
    memset(r, 0, sizeof *r);
    int64_t first = ctx->n_nodes;
    for (size_t i = 0; i < n_leaves; i++)
        first = leaves[i]->id < first ? leaves[i]->id : first;
    const int64_t span = ctx->n_nodes - first;
    r->first = first;
    r->span = span;
    r->plan = plan;
    r->map = hess__calloc(ctx, (size_t)span * sizeof *r->map, fn);
    hess_tensor *c = hess__calloc(ctx, (n_leaves + (size_t)plan->n) * sizeof *c, fn);
    if (!r->map || !c)
        return ctx->status;
    r->nodes = c + n_leaves;
    for (size_t i = 0; i < n_leaves; i++) {
        c[i] = *leaves[i];
        c[i].data = hess__alloc(ctx, (size_t)c[i].numel * sizeof(double), fn);
        if (!c[i].data)
            return ctx->status;
        memcpy(c[i].data, leaves[i]->data, (size_t)c[i].numel * sizeof(double));
        r->map[leaves[i]->id - first] = &c[i];
    }
    for (int64_t j = 0; j < plan->n; j++) {
        const hess_tensor *t = ctx->nodes[plan->ids[j]];
        hess_tensor *x = &r->nodes[j];
        *x = *t;
        for (int k = 0; k < HESS_MAX_SRC; k++)
            x->src[k] = hess__replica_of(r, t->src[k]);
        if (t->src[0] && t->data == t->src[0]->data) { /* a view shares its source's values */
            x->data = x->src[0]->data;
        } else if (!(x->data = hess__alloc(ctx, (size_t)x->numel * sizeof(double), fn))) {
            return ctx->status;
        }
        x->scratch = NULL;
        if (t->def->prepare && !t->def->prepare(ctx, x, fn))
            return ctx->status;
        r->map[t->id - first] = x;
    }
    return HESS_OK;
}

hess_tensor *hess__replica_of(const hess__replica *r, hess_tensor *t)
{
    if (!t || t->id < r->first || t->id >= r->first + r->span || !r->map[t->id - r->first])
        return t;
    return r->map[t->id - r->first];
}

bool hess__replica_run(const hess__replica *r, bool check_finite)
{
    for (int64_t j = 0; j < r->plan->n; j++) {
        hess_tensor *x = &r->nodes[j];
        x->def->forward(x);
        if (check_finite)
            for (int64_t e = 0; e < x->numel; e++)
                if (!(x->data[e] - x->data[e] == 0.0))
                    return false;
    }
    return true;
}
