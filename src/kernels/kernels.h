/*
 * kernels.h -- numbers only: the matrix product and its dispatch (portable C,
 * AVX2+FMA, CBLAS), and what the kernels of the ops share.  An op's own
 * kernel, when it needs a file, is a header of this folder that its op file
 * includes.  No tensors and no context: plain pointers and sizes (llm.c's
 * kernels), so the layer stands below everything else.
 */
#ifndef HESS_KERNELS_H
#define HESS_KERNELS_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#if defined(__GNUC__)
#define HESS_KINTERNAL __attribute__((visibility("hidden")))
#else
#define HESS_KINTERNAL
#endif

/* The AVX2+FMA kernels (simd_x86.c), compiled on x86-64 with GCC or Clang and
 * run only where hess__simd_available() says the CPU has AVX2 and FMA (not
 * compiled with -DHESSIAN_SIMD=OFF, which defines HESSIAN_NO_SIMD).  Not on
 * Windows: GCC there cannot align the stack to 32 bytes for spilled AVX
 * registers (GCC bug 54412). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32) &&        \
    !defined(HESSIAN_NO_SIMD)
#define HESS_SIMD_X86 1
/* C[m,n] = op(A) op(B), A(i,p) = a[i ai + p ap], op(B) from its stored rows
 * (leading dimension ldb, transposed when tb), C dense. */
HESS_KINTERNAL void hess__gemm_simd(int64_t m,
                                    int64_t n,
                                    int64_t k,
                                    const double *a,
                                    int64_t ai,
                                    int64_t ap,
                                    const double *b,
                                    int64_t ldb,
                                    bool tb,
                                    double *c);
/* An AVX2 copy of a portable loop: the same C, vectorised 4 wide.  Without
 * FMA, so that the copy rounds exactly as the original does. */
#define HESS_AVX2 __attribute__((target("avx2")))
#else
#define HESS_SIMD_X86 0
#endif
/* Whether this CPU has AVX2 and FMA (false where the kernels are not built). */
HESS_KINTERNAL bool hess__simd_available(void);

#endif /* HESS_KERNELS_H */
