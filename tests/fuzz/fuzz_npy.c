/*
 * fuzz_npy.c -- libFuzzer target for the readers of src/io/: every input is
 * given to the .npy parser, to the reference-format parser and to the IDX
 * parser (plain or gzip), through the memory entry points the file readers
 * share their code with.  Beyond the sanitizers it checks that a failed read
 * leaves nothing in the context, that a successful one never claims more data
 * than the input holds (for IDX, a plain input's) and that what was read can
 * be written and read back bit for bit (.npy and reference format, through a
 * scratch file in /tmp), and that every failure is HESS_ERR_IO (IDX: or
 * HESS_ERR_NOMEM, for a stream that inflates past the context's byte limit)
 * with a message naming the reader and the input.
 *
 * Declared in tests/fuzz/CMakeLists.txt: the fuzz preset builds it and
 * .ci/fuzz.sh runs it for 20 s in CI (FUZZ_NPY_TIME), from the seeds of
 * tests/fuzz/corpus_npy (.npy files written by hess_save_npy, small IDX
 * files plain and gzipped) and the reference files of tests/data/.
 */
#include "hess_internal.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
    CHECK(hess_context_rewind(ctx, mk) == HESS_OK);

    /* IDX: plain, or gzip when the input starts with its magic */
    t = hess__idx_load_mem(ctx, data, size, "fuzz-input", (int)(size & 1));
    if (t) {
        CHECK(hess_context_status(ctx) == HESS_OK);
        CHECK(hess_tensor_is_param(t) == (int)(size & 1));
        if (size < 2 || data[0] != 0x1f || data[1] != 0x8b)
            CHECK((size_t)hess_tensor_numel(t) <= size); /* an element takes a byte at least */
        volatile double sink = 0;
        for (int64_t i = 0; i < hess_tensor_numel(t); i++)
            sink += hess_tensor_data(t)[i];
        (void)sink;
    } else {
        const hess_status is = hess_context_status(ctx);
        CHECK(is == HESS_ERR_IO || is == HESS_ERR_NOMEM);
        CHECK(strncmp(hess_context_errmsg(ctx), "hess_load_idx: ", 15) == 0);
        if (is == HESS_ERR_IO)
            CHECK(strstr(hess_context_errmsg(ctx), "fuzz-input") != NULL);
        hess_context_clear_error(ctx);
        CHECK(same_mark(mk, hess_context_mark(ctx)));
    }
    hess_context_destroy(ctx);
    return 0;
}
