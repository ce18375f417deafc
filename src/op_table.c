/*
 * op_table.c -- the op registry, generated from HESS_OP_LIST: each entry is
 * the hess_op_def that the op's family file defines.  Leaves have no kernel.
 */
#include "hess_internal.h"

#define HESS_X_(e, n, a) HESS_INTERNAL extern const hess_op_def hess__op_##n;
HESS_OP_LIST(HESS_X_)
#undef HESS_X_

const hess_op_def hess__op_leaf = {.name = "leaf", .arity = 0, .forward = NULL, .backward = NULL};

const hess_op_def *const hess__ops[HESS_OP_COUNT] = {
#define HESS_X_(e, n, a) [HESS_OP_##e] = &hess__op_##n,
    HESS_OP_LIST(HESS_X_)
#undef HESS_X_
};
