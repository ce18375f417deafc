/*
 * timing.c -- the timing harness: the clock, warm-up calls, then repeats
 * until a time budget (or a fixed count), and the median and min of the
 * repeats; plan_for sets the budgets from the options.  What is timed is in
 * ops.c and replay.c.
 */
#include "bench.h"

#include <stdlib.h>
#include <time.h>

double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Times f(arg) by the plan p: warm-up calls, then timed repeats (at most
 * MAX_REPS); the median and the min of the repeats. */
stats time_call(void (*f)(void *), void *arg, plan p)
{
    static double ts[MAX_REPS];
    for (int i = 0; i < p.warmup; i++)
        f(arg);
    const int max = p.fixed > 0 ? (p.fixed < MAX_REPS ? p.fixed : MAX_REPS) : MAX_REPS;
    int n = 0;
    const double start = now();
    while (n < max) {
        const double t0 = now();
        f(arg);
        ts[n++] = now() - t0;
        if (p.fixed <= 0 && n >= p.min_reps && now() - start > p.budget)
            break;
    }
    qsort(ts, (size_t)n, sizeof ts[0], cmp_double);
    stats s = {n % 2 ? ts[n / 2] : 0.5 * (ts[n / 2 - 1] + ts[n / 2]), ts[0], n};
    return s;
}

typedef struct op_call {
    op_fn f;
    job *j;
} op_call;

static void run_op(void *arg)
{
    const op_call *c = arg;
    c->f(c->j);
}

/* time_call for an operation on a job. */
stats time_op(op_fn f, job *j, plan p)
{
    op_call c = {f, j};
    return time_call(run_op, &c, p);
}

/* The plan of an operation: slow ones (diag, hessian) get fewer warm-up calls
 * and repeats and a longer budget; --quick shortens it, --repeat fixes the
 * count. */
plan plan_for(const opts *o, bool slow)
{
    plan p = {slow ? 3.0 : 1.5, slow ? 3 : 5, slow ? 1 : 2, o->repeat};
    if (o->quick) {
        p.budget = slow ? 0.5 : 0.2;
        p.min_reps = slow ? 1 : 3;
        p.warmup = 1;
    }
    return p;
}
