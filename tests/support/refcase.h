/*
 * refcase.h -- shared test support for the PyTorch reference cases of
 * tests/data/ops/ (made by tests/data/make_op_refs.py): the row type that
 * maps a case to a C builder of its model line, the runner that checks one
 * case against its file, and the check that every case file of a family of
 * ops has a row.  Used by test_refs_conv, test_refs_reduce and
 * test_refs_shape; test_refs_elementwise and test_refs_loss keep their own
 * (per-case tolerances, claims by the model's functions).
 */
#ifndef HESS_TEST_REFCASE_H
#define HESS_TEST_REFCASE_H

#include <stdbool.h>
#include <stddef.h>

#include "hessian.h"

#define REF_RTOL  1e-12 /* of the largest |element| of each reference tensor */
#define REF_MAXIN 8     /* inputs in0, in1, ... of a case at most */

typedef hess_tensor *(*ref_build)(hess_context *ctx, hess_tensor *const in[]);

typedef struct ref_row {
    const char *name;  /* the case: tests/data/ops/<name>.ref */
    const char *model; /* its model line, exactly */
    ref_build build;
} ref_row;

/* What ref_run_case checks beyond out, L, the gradient, the default
 * diagonal, the HVP and the Hessian (when the file has it). */
enum {
    REF_DIAG_ROWS = 1u,         /* the diagonal by HESS_DIAG_ROWS forced */
    REF_DIAG_BACKPROP_ALL = 2u, /* HESS_DIAG_BACKPROP covers every case (else where it does) */
    REF_HVP_FWD = 4u,           /* the HVP by hess_hvp_fwd (forward over reverse) too */
};

/* A family of ops: the case files whose stem equals one of exact[], or one
 * of prefixes[] alone or followed by '_' (the cases of the op and its
 * variants). */
typedef struct ref_family {
    const char *ops; /* in messages: "the shape and indexing ops" */
    const char *const *prefixes;
    size_t n_prefixes;
    const char *const *exact;
    size_t n_exact;
    unsigned checks; /* REF_* */
} ref_family;

/* An array and its length, for ref_family's lists. */
#define REF_LIST(a) (a), (sizeof(a) / sizeof((a)[0]))

/* Whether the case file of that stem belongs to the family. */
bool ref_family_has(const ref_family *fam, const char *stem);

/* One case against its file (each tensor within REF_RTOL of the reference
 * tensor's largest magnitude, exactly where that is all zeros): the model
 * line, out, L = sum(out * w), the gradient, the Hessian diagonal, the HVP
 * along the file's v and, when present, the full Hessian. */
void ref_run_case(const ref_family *fam, const ref_row *row);

/* Every case file of the family has a row, and every row is of the family
 * and has its file. */
void ref_check_claimed(const ref_family *fam, const ref_row *rows, size_t n_rows);

#endif
