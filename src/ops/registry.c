/*
 * registry.c -- every op record, gathered from the lists the family files
 * keep.  The tests and the fuzzers take their list of ops from here, so an op
 * without a test row or fuzz coverage fails the tests.
 */
#include "ops.h"

#include <string.h>

static const hess__op_family *const families[] = {
    &hess__unary_family, &hess__logistic_family, &hess__elementwise_family, &hess__broadcast_family,
    &hess__shape_family, &hess__linalg_family,   &hess__nn_family,          &hess__index_family,
    &hess__loss_family,  &hess__reduce_family,   &hess__conv_family,
};
#define N_FAMILIES (sizeof families / sizeof families[0])

size_t hess__op_count(void)
{
    size_t n = 0;
    for (size_t f = 0; f < N_FAMILIES; f++)
        n += families[f]->n;
    return n;
}

const hess_op_def *hess__op_at(size_t i)
{
    for (size_t f = 0; f < N_FAMILIES; f++) {
        if (i < families[f]->n)
            return families[f]->ops[i];
        i -= families[f]->n;
    }
    return NULL;
}

const hess_op_def *hess__op_find(const char *name)
{
    for (size_t i = 0, n = hess__op_count(); i < n; i++)
        if (strcmp(hess__op_at(i)->name, name) == 0)
            return hess__op_at(i);
    return NULL;
}
