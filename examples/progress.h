/*
 * progress.h -- the progress bar the examples draw on stderr during a long
 * computation (hess_hessian_ex), shared by every example that shows progress.
 *
 * The bar is drawn only when stderr is a terminal; otherwise the options carry
 * no callback and nothing at all reaches stderr (the examples' ctest checks
 * fail on any stderr output).
 *
 *     hess_hessian_opts opts = progress_opts();
 *     st = hess_hessian_ex(ctx, loss, n, params, &opts, H);
 *     progress_done(&opts);
 */
#ifndef HESSIAN_EXAMPLES_PROGRESS_H
#define HESSIAN_EXAMPLES_PROGRESS_H

#include "hessian.h"

/* Options for hess_hessian_ex: a callback redrawing "\r[#####.....] done/total
 * rows" on stderr when stderr is a terminal, else no callback (all else zero). */
hess_hessian_opts progress_opts(void);

/* Erases the bar's line, if one was drawn, so that it leaves nothing behind. */
void progress_done(const hess_hessian_opts *opts);

#endif
