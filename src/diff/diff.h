/*
 * diff.h -- differentiation: the reverse mode (reverse.c) that hess_grad,
 * hess_vjp and the second-order functions above it are built on.
 */
#ifndef HESS_DIFF_H
#define HESS_DIFF_H

#include "../ops/ops.h"

/* Flag of hess__backward: the caller has brought the outputs and seeds up to
 * date (hess__refresh) already. */
#define HESS__FRESH 0x100u

/* The backward pass behind hess_grad and hess_vjp: cotangents of wrt[] for
 * the outputs seeded with seeds[] (each shaped like its output, behind [k]
 * when k > 0, a batched pass whose cotangents carry k directions).  fn and
 * what name the caller and its wrt list in messages ("hess_hessian",
 * "params").  flags: HESS_CREATE_GRAPH, HESS_ALLOW_UNUSED, HESS__FRESH. */
HESS_INTERNAL hess_status hess__backward(hess_context *ctx,
                                         size_t n_out,
                                         hess_tensor *const outputs[],
                                         hess_tensor *const seeds[],
                                         size_t n,
                                         hess_tensor *const wrt[],
                                         hess_tensor *grads[],
                                         unsigned flags,
                                         int64_t k,
                                         const char *fn,
                                         const char *what);

#endif /* HESS_DIFF_H */
