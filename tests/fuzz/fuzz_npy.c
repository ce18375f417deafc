/*
 * fuzz_npy.c -- libFuzzer target for the readers of src/io.c: every input is
 * given to the .npy parser and to the reference-format parser, through the
 * memory entry points the file readers share their code with.  Beyond the
 * sanitizers it checks that a failed read leaves nothing in the context, that
 * a successful one never claims more data than the input holds and that what
 * was read can be written and read back bit for bit (through a scratch file in
 * /tmp), and that every failure is HESS_ERR_IO with a message naming the
 * reader and the input.
 *
 * Not built by CMake; .ci/fuzz.sh builds it and runs it for 20 s in CI
 * (FUZZ_NPY_TIME).  By hand, from the repository root, with clang:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *         -Iinclude -Isrc tests/fuzz/fuzz_npy.c src/[a-z]*.c -lm -o /tmp/fuzz_npy
 *   mkdir -p /tmp/npy_corpus && cp tests/data/[a-z]*.ref /tmp/npy_corpus/
 *   /tmp/fuzz_npy -max_len=4096 -max_total_time=300 /tmp/npy_corpus
 *
 * and add the seeds of tests/fuzz/corpus_npy (.npy files written by
 * hess_save_npy, and a reference file with every spelling of a value,
 * NaN payloads included) so that it starts from valid inputs.
 */
#include "hess_internal.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The memory entry points of src/io.c (internal, declared there). */
hess_tensor *
hess__npy_load_mem(hess_context *ctx, const void *buf, size_t len, const char *name, int as_param);
hess_status hess__ref_load_mem(hess_context *ctx,
                               const void *buf,
                               size_t len,
                               const char *name,
                               const char *param_prefix,
                               hess_ref_file *out);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static bool same_mark(hess_mark a, hess_mark b)
{
    return a.block == b.block && a.used == b.used && a.nodes == b.nodes;
}

/* A scratch file of this process. */
static const char *scratch(const char *ext)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_npy_%ld.%s", (long)getpid(), ext);
    return path;
}

static bool same_values(const hess_tensor *a, const hess_tensor *b)
{
    return a && b && hess_tensor_ndim(a) == hess_tensor_ndim(b) &&
           hess_tensor_numel(a) == hess_tensor_numel(b) &&
           memcmp(hess_tensor_shape(a), hess_tensor_shape(b),
                  (size_t)hess_tensor_ndim(a) * sizeof(int64_t)) == 0 &&
           memcmp(hess_tensor_data(a), hess_tensor_data(b),
                  (size_t)hess_tensor_numel(a) * sizeof(double)) == 0;
}

static void failed_as_io(hess_context *ctx, const char *reader)
{
    CHECK(hess_context_status(ctx) == HESS_ERR_IO);
    const char *msg = hess_context_errmsg(ctx);
    CHECK(strncmp(msg, reader, strlen(reader)) == 0 && strstr(msg, "fuzz-input") != NULL);
    hess_context_clear_error(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hess_config cfg = {0};
    cfg.max_bytes = (size_t)256 << 20; /* the readers allocate O(input size) at most */
    hess_context *ctx = NULL;
    if (hess_context_create(&cfg, &ctx) != HESS_OK)
        return 0;

    /* .npy: the input is the whole file */
    hess_mark mk = hess_context_mark(ctx);
    hess_tensor *t = hess__npy_load_mem(ctx, data, size, "fuzz-input", (int)(size & 1));
    if (t) {
        CHECK(hess_context_status(ctx) == HESS_OK);
        CHECK((size_t)hess_tensor_numel(t) <= size / 8);
        CHECK(hess_tensor_is_param(t) == (int)(size & 1));
        volatile double sink = 0;
        for (int64_t i = 0; i < hess_tensor_numel(t); i++)
            sink += hess_tensor_data(t)[i]; /* every value is readable */
        (void)sink;
        CHECK(hess_save_npy(ctx, scratch("npy"), t) == HESS_OK);
        CHECK(same_values(hess_load_npy(ctx, scratch("npy"), 0), t));
    } else {
        failed_as_io(ctx, "hess_load_npy: fuzz-input: ");
        CHECK(same_mark(mk, hess_context_mark(ctx)));
    }
    CHECK(hess_context_rewind(ctx, mk) == HESS_OK);

    /* reference format */
    hess_ref_file f;
    hess_status st = hess__ref_load_mem(ctx, data, size, "fuzz-input", "param:", &f);
    if (st == HESS_OK) {
        CHECK(f.n >= 1 && f.tensors && f.case_name && f.model);
        size_t total = 0;
        for (size_t i = 0; i < f.n; i++) {
            CHECK(f.tensors[i].name && f.tensors[i].name[0] && strlen(f.tensors[i].name) <= 63);
            CHECK(hess_ref_find(&f, f.tensors[i].name) == f.tensors[i].tensor);
            total += (size_t)hess_tensor_numel(f.tensors[i].tensor);
        }
        CHECK(total <= size); /* each value takes at least one byte */
        CHECK(hess_save_ref(ctx, scratch("ref"), &f) == HESS_OK);
        hess_ref_file g;
        CHECK(hess_load_ref(ctx, scratch("ref"), "param:", &g) == HESS_OK && g.n == f.n);
        CHECK(strcmp(g.case_name, f.case_name) == 0 && strcmp(g.model, f.model) == 0);
        for (size_t i = 0; i < f.n; i++)
            CHECK(strcmp(g.tensors[i].name, f.tensors[i].name) == 0 &&
                  same_values(g.tensors[i].tensor, f.tensors[i].tensor) &&
                  hess_tensor_is_param(g.tensors[i].tensor) ==
                      hess_tensor_is_param(f.tensors[i].tensor));
    } else {
        CHECK(st == HESS_ERR_IO && f.n == 0 && f.tensors == NULL);
        failed_as_io(ctx, "hess_load_ref: fuzz-input: ");
        CHECK(same_mark(mk, hess_context_mark(ctx)));
    }
    hess_context_destroy(ctx);
    return 0;
}
