/*
 * second_order.h -- the layer of second derivatives: Hessian-vector products,
 * rows, blocks, the diagonal and the full Hessian (hessian.c), and the user's
 * derivative check (gradcheck.c), above the reverse mode.
 */
#ifndef HESS_SECOND_ORDER_H
#define HESS_SECOND_ORDER_H

#include "../diff/diff.h"

/* What every function of a loss and its parameters checks first: the pending
 * error and a busy context (hess__enter), the loss (a live tensor of ctx with
 * one element), params (live tensors of ctx, each once).  HESS_OK or the
 * status, recorded naming fn. */
HESS_INTERNAL hess_status hess__check_loss(
    hess_context *ctx, hess_tensor *loss, size_t n, hess_tensor *const params[], const char *fn);
/* Calls opts->progress(done, total) with the context busy: HESS_OK to go
 * on; the error recorded inside the callback; or HESS_ERR_CANCELLED
 * (recorded, naming fn) when it asks to stop. */
HESS_INTERNAL hess_status hess__progress(
    hess_context *ctx, const hess_hessian_opts *opts, size_t done, size_t total, const char *fn);

/* The Hessian as an operator kept open: the gradient graph and a batched
 * double-backward graph of up to k directions (fewer when opts->max_bytes or
 * opts->block_rows says so; k <= 1: one direction, unbatched) built once in
 * the arena; each apply writes m directions (rows of X, m x N)
 * k at a time and replays, rows of Y = H x.  open checks the arguments as the
 * Hessian functions do (naming fn) and brings the loss up to date; close goes
 * back to where open began, so the caller's arena scratch is made after open
 * and given back before close. */
typedef struct hess__hvp_op hess__hvp_op;
HESS_INTERNAL hess_status hess__hvp_open(hess_context *ctx,
                                         hess_tensor *loss,
                                         size_t n,
                                         hess_tensor *const params[],
                                         size_t k,
                                         const hess_hessian_opts *opts,
                                         const char *fn,
                                         hess__hvp_op **out);
HESS_INTERNAL hess_status hess__hvp_apply(hess__hvp_op *op, size_t m, const double *X, double *Y);
HESS_INTERNAL void hess__hvp_close(hess__hvp_op *op);

/* The exact diagonal (output NULL) or the generalized Gauss-Newton diagonal
 * for output by backpropagating curvature (diag.c), into diag (N doubles).
 * flags: HESS_ALLOW_UNUSED.  max_columns > 0: give up when the columns
 * exceed it.  HESS_OK with why[0] != 0 (HESS_DIAG_WHY bytes): the rules do
 * not cover the graph, and why says where; diag is then unset.  Leaves its
 * scratch in the arena (the caller rewinds). */
#define HESS_DIAG_WHY 320
HESS_INTERNAL hess_status hess__diag_backprop(hess_context *ctx,
                                              hess_tensor *loss,
                                              hess_tensor *output,
                                              size_t n,
                                              hess_tensor *const params[],
                                              unsigned flags,
                                              size_t max_columns,
                                              double *diag,
                                              char *why,
                                              const char *fn);

#endif /* HESS_SECOND_ORDER_H */
