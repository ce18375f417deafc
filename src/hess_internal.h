/*
 * hess_internal.h -- every internal header at once, for the white-box tests
 * and the fuzzers.  The library's own files include only their layer's
 * header, which includes the layers below it:
 *
 *   kernels/kernels.h   numbers only: the matrix product and the ops' kernels
 *   core/core.h         context, arena, errors, tensors, the tape, op records
 *   ops/ops.h           the op records and their builders, the registry
 *   diff/diff.h         reverse and forward mode
 *   hessian/second_order.h   Hessian-vector products, Hessians, gradcheck
 *   io/io.h             files: .npy, the reference format, SVG
 */
#ifndef HESS_INTERNAL_H
#define HESS_INTERNAL_H

#include "hessian/second_order.h"
#include "io/io.h"

#endif /* HESS_INTERNAL_H */
