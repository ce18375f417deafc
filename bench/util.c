/*
 * util.c -- small helpers every part of the bench uses: an allocation that
 * exits when memory runs out, the fixed random streams, the time and
 * "% peak" cells of the tables, and the errors the checks compare.  The clock
 * is in timing.c.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p) {
        fprintf(stderr, "hessian_bench: out of memory (%zu bytes)\n", size);
        exit(1);
    }
    return p;
}

/* splitmix64: a fixed stream per seed, so every run times the same numbers. */
uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double rng_uniform(uint64_t *s) /* in (0, 1) */
{
    return ((double)(rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double rng_normal(uint64_t *s) /* Box-Muller */
{
    const double u = rng_uniform(s), w = rng_uniform(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * w);
}

/* A time as the peers print it: two decimals in us below 10 us, one decimal
 * in us below 1 ms, then two decimals in ms below 1 s, then in s. */
const char *fmt_t(char *buf, size_t len, double s)
{
    if (s < 1e-5)
        snprintf(buf, len, "%.2f us", s * 1e6);
    else if (s < 1e-3)
        snprintf(buf, len, "%.1f us", s * 1e6);
    else if (s < 1)
        snprintf(buf, len, "%.2f ms", s * 1e3);
    else
        snprintf(buf, len, "%.2f s", s);
    return buf;
}

/* "% peak" of gflops against the peak pk; left as it is when there is no peak. */
void fmt_pct(char *buf, size_t len, double gflops, double pk)
{
    if (pk > 0)
        snprintf(buf, len, "%.1f %%", 100.0 * gflops / pk);
}

/* err = max |a - b| and scale = max |b|. */
void err_scale(const double *a, const double *b, size_t n, double *err, double *scale)
{
    double e = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs(a[i] - b[i]));
        s = fmax(s, fabs(b[i]));
    }
    *err = e;
    *scale = s;
}

/* max |a - b| / max |b|: the error relative to the reference's scale. */
double rel_err(const double *a, const double *b, size_t n)
{
    double e, s;
    err_scale(a, b, n, &e, &s);
    return s > 0.0 ? e / s : e;
}

/* Whether the comma-separated list csv has word as one of its items. */
bool list_has(const char *csv, const char *word)
{
    const size_t len = strlen(word);
    for (const char *s = csv;; s++) {
        const char *e = strchr(s, ',');
        const size_t l = e ? (size_t)(e - s) : strlen(s);
        if (l == len && strncmp(s, word, len) == 0)
            return true;
        if (!e)
            return false;
        s = e;
    }
}
