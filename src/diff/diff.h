/*
 * diff.h -- differentiation: the reverse mode (reverse.c) that hess_grad,
 * hess_vjp and the second-order functions above it are built on, the forward
 * mode (forward.c: hess_jvp, hess_jacobian), and what both ask first
 * (depend.c).
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

/* The forward pass behind hess_jvp: tangents touts[] of the outputs (each
 * shaped like its output, behind [k] when k > 0) for tangents[] of wrt[] (each
 * shaped like its wrt tensor, behind [k] likewise).  An output that depends
 * on no wrt tensor gets zeros.  flags: HESS_CREATE_GRAPH (the tangents can be
 * differentiated again), HESS__FRESH.  fn and what as hess__backward.  The
 * caller has checked the tensors (live, of ctx; wrt each once); a tangent of
 * the wrong shape is HESS_ERR_SHAPE. */
HESS_INTERNAL hess_status hess__forward(hess_context *ctx,
                                        size_t n_out,
                                        hess_tensor *const outputs[],
                                        size_t n,
                                        hess_tensor *const wrt[],
                                        hess_tensor *const tangents[],
                                        hess_tensor *touts[],
                                        unsigned flags,
                                        int64_t k,
                                        const char *fn,
                                        const char *what);

/* The reverse sweep over the window [lo, top] of the tape: each node marked
 * HESS__REQ in mask[id - lo] with a cotangent in cot[id - lo] adds its
 * sources' cotangents (by its rule, in the pass given) into cot[], so that on
 * return cot[] holds the cotangent of every node of the window that the
 * seeds reach. */
HESS_INTERNAL void hess__reverse_sweep(hess_context *ctx,
                                       hess_pass *pass,
                                       int64_t lo,
                                       int64_t top,
                                       const unsigned char *mask,
                                       hess_tensor **cot,
                                       const char *fn);

/* Leaves shaped like ts[0..n) (behind [k] when k > 0), holding the flat
 * vector x when it is not NULL (else unset); an arena array, NULL on failure
 * (recorded, naming fn). */
HESS_INTERNAL hess_tensor **hess__leaves_like(hess_context *ctx,
                                              size_t n,
                                              hess_tensor *const ts[],
                                              int64_t k,
                                              const double *x,
                                              const char *fn);

/* ------------------------------------------------------------------------ */
/* Dependence (depend.c)                                                    */
/* ------------------------------------------------------------------------ */

/* Marks of hess__depend_sweep: depends on some wrt tensor through recorded
 * nodes (REQ); through any nodes but hess_detach's (ANY); through a node made
 * by a pass without HESS_CREATE_GRAPH (CUT). */
#define HESS__REQ 1u
#define HESS__ANY 2u
#define HESS__CUT 4u

/* Whether t is shaped like `like`, behind [k] when k > 0 (a seed or a tangent). */
HESS_INTERNAL bool hess__fits(int64_t k, const hess_tensor *like, const hess_tensor *t);
/* Marks, in tape order over [lo, top], the nodes that depend on a node marked
 * HESS__REQ | HESS__ANY (mask[id - lo]). */
HESS_INTERNAL void
hess__depend_sweep(const hess_context *ctx, int64_t lo, int64_t top, unsigned char *mask);
/* The window of the tape a pass from wrt[] to outputs[] visits: [lo, top]
 * from the first wrt tensor to the last output (span = top - lo + 1 nodes, 0
 * when every output precedes every wrt tensor); mask[id - lo] the marks of
 * hess__depend_sweep from wrt[]; slot[id - lo] a tensor per node (NULL), for
 * the pass's tangents or cotangents.  Both arrays hold span + 1 entries, in
 * the arena.  HESS_OK; HESS_ERR_NODIFF when an output depends on a wrt tensor
 * only through a pass without HESS_CREATE_GRAPH (hess__cut_error);
 * HESS_ERR_NOMEM. */
typedef struct hess__window {
    int64_t lo, top, span;
    unsigned char *mask;
    hess_tensor **slot;
} hess__window;
HESS_INTERNAL hess_status hess__window_open(hess_context *ctx,
                                            size_t n_out,
                                            hess_tensor *const outputs[],
                                            size_t n,
                                            hess_tensor *const wrt[],
                                            const char *fn,
                                            const char *what,
                                            hess__window *w);
/* Records HESS_ERR_NODIFF naming fn and the first wrt tensor that out depends
 * on only through a pass without HESS_CREATE_GRAPH; mask is scratch of
 * top - lo + 1 bytes.  Returns the status. */
HESS_INTERNAL hess_status hess__cut_error(hess_context *ctx,
                                          const hess_tensor *out,
                                          size_t n,
                                          hess_tensor *const wrt[],
                                          int64_t lo,
                                          int64_t top,
                                          unsigned char *mask,
                                          const char *fn,
                                          const char *what);

#endif /* HESS_DIFF_H */
