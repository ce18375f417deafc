/*
 * second_order.h -- the layer of second derivatives: Hessian-vector products,
 * rows, blocks, the diagonal and the full Hessian (hessian.c), and the user's
 * derivative check (gradcheck.c), above the reverse mode.
 */
#ifndef HESS_SECOND_ORDER_H
#define HESS_SECOND_ORDER_H

#include "../diff/diff.h"

/* Calls opts->progress(done, total) with the context busy: HESS_OK to go
 * on; the error recorded inside the callback; or HESS_ERR_CANCELLED
 * (recorded, naming fn) when it asks to stop. */
HESS_INTERNAL hess_status hess__progress(
    hess_context *ctx, const hess_hessian_opts *opts, size_t done, size_t total, const char *fn);

#endif /* HESS_SECOND_ORDER_H */
