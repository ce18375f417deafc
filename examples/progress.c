/*
 * progress.c -- the examples' progress bar (see progress.h): drawn on stderr
 * by a hess_progress_fn, only when stderr is a terminal.
 */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */

#include "progress.h"

#include <stdio.h>

#ifdef _WIN32
#include <io.h>
#define isatty _isatty
#define fileno _fileno
#else
#include <unistd.h>
#endif

#define BAR_CELLS 20

/* hess_progress_fn: redraws "\r[#####.....] done/total rows" on stderr. */
static int draw_progress(size_t done, size_t total, void *user)
{
    (void)user;
    char cells[BAR_CELLS + 1];
    size_t filled = total ? done * BAR_CELLS / total : BAR_CELLS;
    for (size_t c = 0; c < BAR_CELLS; c++)
        cells[c] = c < filled ? '#' : '.';
    cells[BAR_CELLS] = '\0';
    fprintf(stderr, "\r[%s] %zu/%zu rows", cells, done, total);
    fflush(stderr);
    return 0; /* never cancel */
}

hess_hessian_opts progress_opts(void)
{
    hess_hessian_opts opts = {0};
    if (isatty(fileno(stderr)))
        opts.progress = draw_progress;
    return opts;
}

void progress_done(const hess_hessian_opts *opts)
{
    if (opts->progress)
        fprintf(stderr, "\r%*s\r", BAR_CELLS + 40, "");
}
