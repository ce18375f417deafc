/*
 * ref.h -- reader for the plain-text reference format (tests/data/README.md):
 * named tensors of doubles.  Used by the tests and the examples; not part of
 * the library.
 */
#ifndef HESS_REF_H
#define HESS_REF_H

#include <stddef.h>
#include <stdint.h>

#define REF_MAX_DIMS 8

typedef struct ref_tensor {
    char name[64];
    int ndim;
    int64_t shape[REF_MAX_DIMS];
    int64_t numel;
    double *data;
} ref_tensor;

typedef struct ref_case {
    char name[128];
    char model[512];
    size_t n;
    ref_tensor *t;
} ref_case;

/* Reads a reference file.  Returns 0, or -1 with a one-line reason in err. */
int ref_load(const char *path, ref_case *rc, char *err, size_t errlen);
/* The tensor of that name, or NULL. */
const ref_tensor *ref_find(const ref_case *rc, const char *name);
/* Frees what ref_load allocated. */
void ref_free(ref_case *rc);

#endif
