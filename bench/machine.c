/*
 * machine.c -- the machine the bench runs on: the CPU's name, which kernels
 * the library's contexts use, one thread, and the float64 matmul peak the
 * "% peak" columns are against.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HESS_BENCH_OPENBLAS
#include <cblas.h>
#endif

#ifndef HESS_BENCH_SIMD
#define HESS_BENCH_SIMD 0
#endif

/* ------------------------------------------------------------------------ */
/* The machine's description and one thread                                */
/* ------------------------------------------------------------------------ */

/* The "model name" of /proc/cpuinfo, or "unknown CPU". */
void cpu_name(char *buf, size_t len)
{
    snprintf(buf, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        const char *c = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && c) {
            snprintf(buf, len, "%s", c + 2);
            buf[strcspn(buf, "\n")] = '\0';
            break;
        }
    }
    fclose(f);
}

/* One thread.  OpenBLAS (the peak's, and libhessian's own when it links it)
 * starts its worker threads when it is loaded, and idle workers spin on
 * sched_yield beside the timed thread even after openblas_set_num_threads(1);
 * so unless OPENBLAS_NUM_THREADS=1 is already set, set it and re-execute. */
void one_thread(char **argv)
{
#ifdef __linux__
    const char *t = getenv("OPENBLAS_NUM_THREADS");
    if (!t || strcmp(t, "1") != 0) {
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        setenv("OMP_NUM_THREADS", "1", 1);
        execv("/proc/self/exe", argv);
        fprintf(stderr, "hessian_bench: could not re-execute with OPENBLAS_NUM_THREADS=1\n");
    }
#endif
#ifdef HESS_BENCH_OPENBLAS
    openblas_set_num_threads(1);
#endif
    (void)argv;
}

/* Which kernels the library's contexts use here (see HESS_NO_SIMD). */
const char *simd_state(const opts *o)
{
    if (o->ctx_flags & HESS_NO_SIMD)
        return "portable (--no-simd)";
#if HESS_BENCH_SIMD && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
               ? "AVX2+FMA (this CPU has them)"
               : "portable (this CPU lacks AVX2 or FMA)";
#else
    return "portable (built with HESSIAN_SIMD=OFF or not x86-64)";
#endif
}

/* ------------------------------------------------------------------------ */
/* Machine peak: float64 matmul, one thread                                 */
/* ------------------------------------------------------------------------ */

/* C[n,n] = A B, row-major, n a multiple of 8: panels of B (KC x 8) packed,
 * a 4 x 8 block of C held in locals.  Plain C, so it reaches what the
 * compiler makes of it with this build's flags (no -march unless asked). */
static void gemm_c(int n, const double *a, const double *b, double *c, double *pack)
{
    enum { KC = 256 };
    memset(c, 0, (size_t)n * (size_t)n * sizeof(double));
    for (int p0 = 0; p0 < n; p0 += KC) {
        const int kc = n - p0 < KC ? n - p0 : KC;
        for (int j0 = 0; j0 < n; j0 += 8) {
            for (int p = 0; p < kc; p++)
                memcpy(pack + p * 8, b + (size_t)(p0 + p) * (size_t)n + j0, 8 * sizeof(double));
            for (int i = 0; i + 4 <= n; i += 4) {
                double acc[4][8] = {{0}};
                const double *ar = a + (size_t)i * (size_t)n + p0;
                for (int p = 0; p < kc; p++)
                    for (int r = 0; r < 4; r++) {
                        const double av = ar[(size_t)r * (size_t)n + p];
                        for (int q = 0; q < 8; q++)
                            acc[r][q] += av * pack[p * 8 + q];
                    }
                for (int r = 0; r < 4; r++)
                    for (int q = 0; q < 8; q++)
                        c[(size_t)(i + r) * (size_t)n + j0 + q] += acc[r][q];
            }
        }
    }
}

/* GFLOP/s of reps n^3 products (two warm-up calls first): the median repeat
 * and the best; by OpenBLAS's dgemm when blas, else by gemm_c. */
static void peak_run(int n, int reps, bool blas, double *med, double *best)
{
    const size_t nn = (size_t)n * (size_t)n;
    double *a = xmalloc(nn * sizeof(double)), *b = xmalloc(nn * sizeof(double));
    double *c = xmalloc(nn * sizeof(double)), *pack = xmalloc(256 * 8 * sizeof(double));
    double ts[64];
    uint64_t s = 1;
    for (size_t i = 0; i < nn; i++) {
        a[i] = rng_normal(&s);
        b[i] = rng_normal(&s);
    }
    reps = reps > 60 ? 60 : reps;
    for (int r = -2; r < reps; r++) { /* two warm-up calls */
        const double t0 = now();
#ifdef HESS_BENCH_OPENBLAS
        if (blas)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a, n, b, n, 0.0, c,
                        n);
        else
#endif
            gemm_c(n, a, b, c, pack);
        if (r >= 0)
            ts[r] = now() - t0;
    }
    (void)blas;
    qsort(ts, (size_t)reps, sizeof ts[0], cmp_double);
    const double fl = 2.0 * (double)n * (double)n * (double)n;
    *med = fl / ts[reps / 2] / 1e9;
    *best = fl / ts[0] / 1e9;
    free(a);
    free(b);
    free(c);
    free(pack);
}

/* Both peaks, each printed as a header line. */
peak measure_peak(bool quick)
{
    peak pk = {0, 0, 0, 0};
#ifdef HESS_BENCH_OPENBLAS
    openblas_set_num_threads(1);
    peak_run(1024, quick ? 5 : 15, true, &pk.blas_med, &pk.blas_best);
    printf("# peak: OpenBLAS dgemm 1024^3, 1 thread: median %.1f GFLOP/s, best %.1f GFLOP/s\n",
           pk.blas_med, pk.blas_best);
#endif
    peak_run(512, quick ? 3 : 7, false, &pk.c_med, &pk.c_best);
    printf("# peak: plain C 4x8 kernel 512^3 (this build's flags): median %.1f GFLOP/s, best %.1f "
           "GFLOP/s\n",
           pk.c_med, pk.c_best);
    return pk;
}

/* The reference peak for "% peak": OpenBLAS's best repeat when built in, else
 * the C kernel's.  The best, not the median: on a shared machine noise only
 * ever slows a repeat down, and the peak is the machine's capability. */
double peak_ref(const peak *pk)
{
    return pk->blas_best > 0 ? pk->blas_best : pk->c_best;
}
