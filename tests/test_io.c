/*
 * test_io.c -- interchange and pictures: .npy and reference-format round trips
 * (rank 0 to HESS_MAX_DIMS, a 41 x 41 matrix, special values, bit for bit),
 * the exact .npy header layout against hand-made bytes, every malformed or
 * truncated input (HESS_ERR_IO with the file and the problem in the message,
 * nothing left in the context), reading tests/data/seed_ann.ref, and the SVG
 * heatmap and line chart (structure, escaping, axes, xmllint when it is
 * installed), every writer's atomic save; IDX files
 * (every element type and rank, plain and gzip-compressed, every malformed
 * header, truncated or corrupt stream), and with --fashion-mnist DIR the real
 * Fashion-MNIST files instead.
 *
 * Scratch files are written in the working directory (the build's tests
 * directory under ctest) with names starting "test_io_tmp_".
 */
#define _XOPEN_SOURCE   700 /* symlink, mkfifo, fork, setrlimit, mkdtemp, mknod */
#define _DEFAULT_SOURCE     /* syscall */
#include "alloc.h"
#include "check.h"
#include "ref.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static void write_bytes(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* The whole file, NUL-terminated, malloc'ed; *len its size. */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

/* Fails unless the context holds want and its message contains every one of
 * the given fragments; then clears the error. */
static void expect_error(hess_context *ctx, hess_status want, const char *frag1, const char *frag2)
{
    const char *msg = hess_context_errmsg(ctx);
    if (hess_context_status(ctx) != want || (frag1 && !strstr(msg, frag1)) ||
        (frag2 && !strstr(msg, frag2)))
        fail_msg("status %d (want %d), message \"%s\", expected \"%s\" and \"%s\"",
                 (int)hess_context_status(ctx), (int)want, msg, frag1 ? frag1 : "",
                 frag2 ? frag2 : "");
    hess_context_clear_error(ctx);
}

static bool same_mark(hess_mark a, hess_mark b)
{
    return a.block == b.block && a.used == b.used && a.nodes == b.nodes;
}

/* Bitwise equality of shape and data. */
static void assert_same_tensor(const hess_tensor *a, const hess_tensor *b)
{
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(hess_tensor_ndim(a), hess_tensor_ndim(b));
    if (hess_tensor_ndim(a) > 0)
        assert_memory_equal(hess_tensor_shape(a), hess_tensor_shape(b),
                            (size_t)hess_tensor_ndim(a) * sizeof(int64_t));
    assert_int_equal(hess_tensor_numel(a), hess_tensor_numel(b));
    assert_memory_equal(hess_tensor_data(a), hess_tensor_data(b),
                        (size_t)hess_tensor_numel(a) * sizeof(double));
}

/* A tensor of the given shape with awkward values: signed zero, subnormals,
 * extremes, infinities, NaN, and random numbers. */
static hess_tensor *awkward(hess_context *ctx, int ndim, const int64_t *shape, uint64_t seed)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    double *d = malloc((size_t)n * sizeof *d);
    assert_non_null(d);
    static const double special[] = {
        -0.0, 4.9406564584124654e-324, DBL_MIN, DBL_MAX, -DBL_MAX, 1.0 / 3.0, 0.1, -2.5e-300};
    for (int64_t i = 0; i < n; i++)
        d[i] = i < 8 ? special[i] : rnd_uniform(&seed, -1e3, 1e3);
    if (n > 10) {
        d[8] = INFINITY;
        d[9] = -INFINITY;
        d[10] = NAN;
    }
    hess_tensor *t = hess_tensor_new(ctx, ndim, shape, d);
    free(d);
    assert_non_null(t);
    return t;
}

/* ------------------------------------------------------------------------ */
/* .npy                                                                     */
/* ------------------------------------------------------------------------ */

static const int64_t SHAPES[][HESS_MAX_DIMS] = {
    {0}, {7}, {2, 3}, {41, 41}, {2, 1, 3}, {2, 1, 3, 1, 2, 2},
};
static const int RANKS[] = {0, 1, 2, 2, 3, 6};

static void test_npy_roundtrip(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    const char *path = "test_io_tmp_roundtrip.npy";
    for (size_t k = 0; k < sizeof RANKS / sizeof RANKS[0]; k++) {
        hess_tensor *t = awkward(ctx, RANKS[k], SHAPES[k], 11 + k);
        assert_ok(ctx, hess_save_npy(ctx, path, t));
        hess_tensor *u = hess_load_npy(ctx, path, 0);
        assert_ok(ctx, hess_context_status(ctx));
        assert_same_tensor(u, t);
        assert_int_equal(hess_tensor_is_param(u), 0);
        hess_tensor *p = hess_load_npy(ctx, path, 1);
        assert_same_tensor(p, t);
        assert_int_equal(hess_tensor_is_param(p), 1);
        /* the caller-buffer variant writes the same bytes */
        size_t l1, l2;
        char *b1 = read_all(path, &l1);
        assert_ok(ctx, hess_save_npy_array(ctx, path, RANKS[k], SHAPES[k], hess_tensor_data(t)));
        char *b2 = read_all(path, &l2);
        assert_int_equal(l1, l2);
        assert_memory_equal(b1, b2, l1);
        /* the data starts at a multiple of 64 */
        assert_int_equal((l1 - 8 * (size_t)hess_tensor_numel(t)) % 64, 0);
        free(b1);
        free(b2);
    }
    remove(path);
    hess_context_destroy(ctx);
}

/* The bytes NumPy writes for np.save(f, np.arange(1., 7.).reshape(2, 3)):
 * magic, version 1.0, header length 118 (LE), the dict padded with spaces to
 * 128 bytes in all, '\n', then six little-endian doubles. */
static const char NPY_2x3_HEADER[] = "\x93NUMPY\x01\x00\x76\x00"
                                     "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"
                                     "                                                          \n";
static const unsigned char NPY_2x3_DATA[48] = {
    0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0x00, 0x40, 0, 0, 0, 0, 0, 0, 0x08, 0x40,
    0, 0, 0, 0, 0, 0, 0x10, 0x40, 0, 0, 0, 0, 0, 0, 0x14, 0x40, 0, 0, 0, 0, 0, 0, 0x18, 0x40,
};

static void test_npy_exact_layout(void **state)
{
    hess_context *ctx = *state;
    assert_int_equal(sizeof NPY_2x3_HEADER - 1, 128);
    const char *path = "test_io_tmp_layout.npy";
    const double v[6] = {1, 2, 3, 4, 5, 6};
    const int64_t shape[2] = {2, 3};
    assert_ok(ctx, hess_save_npy_array(ctx, path, 2, shape, v));
    size_t len;
    char *got = read_all(path, &len);
    assert_int_equal(len, 128 + 48);
    assert_memory_equal(got, NPY_2x3_HEADER, 128);
    assert_memory_equal(got + 128, NPY_2x3_DATA, 48);
    free(got);

    /* and the hand-made bytes read back as the array */
    unsigned char buf[176];
    memcpy(buf, NPY_2x3_HEADER, 128);
    memcpy(buf + 128, NPY_2x3_DATA, 48);
    write_bytes(path, buf, sizeof buf);
    hess_tensor *t = hess_load_npy(ctx, path, 0);
    assert_non_null(t);
    assert_int_equal(hess_tensor_ndim(t), 2);
    assert_memory_equal(hess_tensor_shape(t), shape, sizeof shape);
    assert_memory_equal(hess_tensor_data(t), v, sizeof v);

    /* rank 0 and rank 1 headers as Python prints the tuples */
    const double x = 3.5;
    assert_ok(ctx, hess_save_npy_array(ctx, path, 0, NULL, &x));
    got = read_all(path, &len);
    assert_int_equal(len, 128 + 8);
    assert_non_null(strstr(got + 10, "'shape': (), }"));
    free(got);
    const int64_t five = 5;
    const double y[5] = {0};
    assert_ok(ctx, hess_save_npy_array(ctx, path, 1, &five, y));
    got = read_all(path, &len);
    assert_int_equal(len, 128 + 40);
    assert_non_null(strstr(got + 10, "'shape': (5,), }"));
    free(got);
    remove(path);
}

/* Other valid headers: version 2.0 and 3.0, double quotes, keys in another
 * order, no trailing comma, extra blanks, NumPy 1.24's growth padding. */
static void test_npy_read_variants(void **state)
{
    hess_context *ctx = *state;
    static const struct {
        int major;
        const char *dict;
        int ndim;
        int64_t d0, d1;
    } cases[] = {
        {1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 2, 2, 3},
        {2, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }", 1, 6, 0},
        {3, "{\"shape\": (3,2), \"descr\": \"<f8\", \"fortran_order\": False}", 2, 3, 2},
        {1, "  { 'shape' : ( 1 , 6 ) , 'fortran_order' : False , 'descr' : '<f8' }  ", 2, 1, 6},
        {1, "{'descr': '<f8', 'fortran_order': False, 'shape': (6L,), }", 1, 6, 0},
    };
    const char *path = "test_io_tmp_variant.npy";
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        unsigned char buf[512];
        const size_t pre = cases[k].major == 1 ? 10 : 12;
        size_t hl = strlen(cases[k].dict) + 30; /* some padding, not aligned */
        memcpy(buf, "\x93NUMPY", 6);
        buf[6] = (unsigned char)cases[k].major;
        buf[7] = 0;
        for (size_t i = 0; i < pre - 8; i++)
            buf[8 + i] = (unsigned char)(hl >> (8 * i));
        memset(buf + pre, ' ', hl);
        memcpy(buf + pre, cases[k].dict, strlen(cases[k].dict));
        buf[pre + hl - 1] = '\n';
        memcpy(buf + pre + hl, NPY_2x3_DATA, 48);
        write_bytes(path, buf, pre + hl + 48);
        hess_tensor *t = hess_load_npy(ctx, path, 0);
        if (!t)
            fail_msg("case %zu: %s", k, hess_context_errmsg(ctx));
        assert_int_equal(hess_tensor_ndim(t), cases[k].ndim);
        assert_int_equal(hess_tensor_shape(t)[0], cases[k].d0);
        if (cases[k].ndim == 2)
            assert_int_equal(hess_tensor_shape(t)[1], cases[k].d1);
        assert_close(hess_tensor_data(t)[5], 6.0, 0, 0);
    }
    remove(path);
}

/* One malformed file: its bytes and a fragment the message must contain. */
typedef struct bad_npy {
    const char *what;
    int version;      /* 1, 2, or the raw two version bytes when > 0xff */
    const char *dict; /* NULL: use raw bytes */
    size_t data;      /* data bytes after the header */
    const char *raw;  /* whole file when dict is NULL */
    size_t raw_len;
    const char *frag;
} bad_npy;

#define DICT(shape) "{'descr': '<f8', 'fortran_order': False, 'shape': " shape ", }"

static const bad_npy BAD_NPY[] = {
    {"empty file", 0, NULL, 0, "", 0, "bad magic"},
    {"bad magic", 0, NULL, 0, "\x93NUMPX\x01\x00\x10\x00{}", 12, "byte 0: bad magic"},
    {"text file", 0, NULL, 0, "hello world, this is not numpy", 30, "bad magic"},
    {"short preamble", 0, NULL, 0, "\x93NUMPY\x01", 7, "byte 7: truncated preamble"},
    {"short length", 0, NULL, 0, "\x93NUMPY\x01\x00\x10", 9, "byte 9: truncated preamble"},
    {"version 4.0", 0, NULL, 0, "\x93NUMPY\x04\x00\x10\x00{}", 12,
     "byte 6: unsupported format version 4.0"},
    {"version 0.0", 0, NULL, 0, "\x93NUMPY\x00\x00\x10\x00{}", 12, "version"},
    {"version 1.1", 0, NULL, 0, "\x93NUMPY\x01\x01\x10\x00{}", 12,
     "byte 6: unsupported format version 1.1"},
    {"version 2.1", 0, NULL, 0, "\x93NUMPY\x02\x01\x10\x00\x00\x00{}", 14, "version 2.1"},
    {"version 3.5", 0, NULL, 0, "\x93NUMPY\x03\x05\x10\x00\x00\x00{}", 14, "version 3.5"},
    {"version 255.0", 0, NULL, 0, "\x93NUMPY\xff\x00\x10\x00{}", 12, "version 255.0"},
    {"header too long", 0, NULL, 0, "\x93NUMPY\x02\x00\xa0\x86\x01\x00{}", 14,
     "byte 8: header too long"},
    {"header past end", 0, NULL, 0, "\x93NUMPY\x01\x00\xc8\x00{'descr'", 18,
     "byte 10: truncated header"},
    {"no dict", 1, "'descr': '<f8'", 0, NULL, 0, "not a dict"},
    {"unclosed dict", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)", 16, NULL, 0,
     "malformed"},
    {"missing shape", 1, "{'descr': '<f8', 'fortran_order': False, }", 8, NULL, 0, "lacks 'shape'"},
    {"missing descr", 1, "{'fortran_order': False, 'shape': (1,), }", 8, NULL, 0, "lacks 'descr'"},
    {"missing order", 1, "{'descr': '<f8', 'shape': (1,), }", 8, NULL, 0, "lacks 'fortran_order'"},
    {"fortran order", 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", 48, NULL, 0,
     "byte 44: fortran_order is True"},
    {"order not bool", 1, "{'descr': '<f8', 'fortran_order': 0, 'shape': (1,), }", 8, NULL, 0,
     "malformed 'fortran_order'"},
    {"float32", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, NULL, 0,
     "byte 20: dtype '<f4'"},
    {"big endian", 1, "{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }", 8, NULL, 0,
     "dtype '>f8'"},
    {"int64", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", 8, NULL, 0,
     "dtype '<i8'"},
    {"structured", 1, "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }", 8, NULL,
     0, "'descr'"},
    {"unknown key", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 1}", 8, NULL,
     0, "byte 66: unexpected or repeated key 'x'"},
    {"repeated key", 1, "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (1,)}",
     8, NULL, 0, "byte 27: unexpected or repeated key 'descr'"},
    {"junk after dict", 1, DICT("(1,)") " junk", 8, NULL, 0, "byte 68: junk"},
    {"negative dim", 1, DICT("(-3,)"), 8, NULL, 0, "byte 61: negative dimension"},
    {"zero dim", 1, DICT("(0, 3)"), 0, NULL, 0, "byte 61: zero dimension"},
    {"absurd dim", 1, DICT("(99999999999999999999999,)"), 8, NULL, 0, "absurd dimension"},
    {"huge shape", 1, DICT("(1000000000000, 1000000000000)"), 8, NULL, 0, "truncated data"},
    {"huge dim", 1, DICT("(4611686018427387904,)"), 8, NULL, 0, "truncated data"},
    {"rank 7", 1, DICT("(1, 1, 1, 1, 1, 1, 1)"), 8, NULL, 0, "byte 79: rank of 'shape' exceeds"},
    {"shape not tuple", 1, DICT("[2, 3]"), 48, NULL, 0, "not a tuple"},
    {"shape malformed", 1, DICT("(2; 3)"), 48, NULL, 0, "malformed 'shape'"},
    {"truncated data", 1, DICT("(2, 3)"), 40, NULL, 0, "byte 70: truncated data"},
    {"no data", 1, DICT("(2, 3)"), 0, NULL, 0, "truncated data"},
    {"trailing bytes", 1, DICT("(2, 3)"), 56, NULL, 0, "byte 118: trailing bytes"},
    {"escape in string", 1, "{'de\\scr': '<f8', 'fortran_order': False, 'shape': (1,), }", 8, NULL,
     0, "malformed header dict"},
    {"header length 0", 0, NULL, 0, "\x93NUMPY\x01\x00\x00\x00", 10,
     "byte 10: header is not a dict"},
    {"v2 short length", 0, NULL, 0, "\x93NUMPY\x02\x00\x10\x00", 10, "byte 10: truncated preamble"},
    {"key too long", 1, "{'descr_descr_descr_descr_descr_descr': '<f8'}", 8, NULL, 0,
     "malformed header dict"},
    {"key without colon", 1, "{'descr' '<f8'}", 8, NULL, 0, "malformed header dict"},
    {"no comma", 1, "{'descr': '<f8' 'fortran_order': False, 'shape': (1,)}", 8, NULL, 0,
     "malformed header dict"},
    {"unterminated descr", 1, "{'descr': '<f8", 8, NULL, 0,
     "byte 20: 'descr' is not a simple dtype"},
    {"order word too long", 1,
     "{'descr': '<f8', 'fortran_order': Falsehoodfalsehoodfalsehoodfalsehood, 'shape': (1,)}", 8,
     NULL, 0, "byte 44: malformed 'fortran_order'"},
    {"order Maybe", 1, "{'descr': '<f8', 'fortran_order': Maybe, 'shape': (1,)}", 8, NULL, 0,
     "byte 44: malformed 'fortran_order'"},
};

/* Headers that end inside a token: the dict's last byte is the header's, no
 * newline after it. */
static const bad_npy BAD_NPY_CUT[] = {
    {"ends after {", 1, "{", 8, NULL, 0, "byte 11: malformed header dict"},
    {"ends in a key", 1, "{'descr", 8, NULL, 0, "malformed header dict"},
    {"ends before descr", 1, "{'descr': ", 8, NULL, 0, "byte 20: 'descr' is not a simple dtype"},
    {"ends in a word", 1, "{'descr': '<f8', 'fortran_order': False", 8, NULL, 0,
     "byte 49: malformed header dict"},
    {"ends after (", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (", 8, NULL, 0,
     "byte 61: malformed 'shape'"},
    {"ends in a dim", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3", 8, NULL, 0,
     "byte 62: malformed 'shape'"},
    {"ends after L", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3L", 8, NULL, 0,
     "byte 63: malformed 'shape'"},
};

/* The file for one case: raw bytes, or a v1/v2 header around dict (and a
 * newline unless cut) plus data. */
static size_t make_bad(const bad_npy *c, bool cut, unsigned char *buf, size_t cap)
{
    if (!c->dict) {
        memcpy(buf, c->raw, c->raw_len);
        return c->raw_len;
    }
    const size_t pre = c->version == 1 ? 10 : 12;
    const size_t hl = strlen(c->dict) + !cut;
    assert_true(pre + hl + c->data <= cap);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)c->version;
    buf[7] = 0;
    for (size_t i = 0; i < pre - 8; i++)
        buf[8 + i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + pre, c->dict, strlen(c->dict));
    if (!cut)
        buf[pre + hl - 1] = '\n';
    memset(buf + pre + hl, 0, c->data);
    return pre + hl + c->data;
}

static void test_npy_malformed(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    const char *path = "test_io_tmp_bad.npy";
    const size_t n_whole = sizeof BAD_NPY / sizeof BAD_NPY[0];
    const size_t n_cut = sizeof BAD_NPY_CUT / sizeof BAD_NPY_CUT[0];
    for (size_t k = 0; k < n_whole + n_cut; k++) {
        const bool cut = k >= n_whole;
        const bad_npy *c = cut ? &BAD_NPY_CUT[k - n_whole] : &BAD_NPY[k];
        unsigned char buf[512];
        write_bytes(path, buf, make_bad(c, cut, buf, sizeof buf));
        const hess_mark before = hess_context_mark(ctx);
        const size_t bytes = hess_context_bytes(ctx);
        for (int as_param = 0; as_param < 2; as_param++) {
            if (hess_load_npy(ctx, path, as_param) != NULL)
                fail_msg("case '%s' was accepted", c->what);
            expect_error(ctx, HESS_ERR_IO, path, c->frag);
            assert_true(same_mark(before, hess_context_mark(ctx)));
        }
        assert_true(hess_context_bytes(ctx) <= bytes + 65536); /* at most a scratch block */
    }
    /* a missing file, and a directory */
    assert_null(hess_load_npy(ctx, "test_io_tmp_no_such_file.npy", 0));
    expect_error(ctx, HESS_ERR_IO, "test_io_tmp_no_such_file.npy", "cannot open");
    assert_null(hess_load_npy(ctx, ".", 0));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_IO);
    hess_context_clear_error(ctx);
    remove(path);
    hess_context_destroy(ctx);
}

static void test_npy_arguments(void **state)
{
    hess_context *ctx = *state;
    const double v[2] = {1, 2};
    const int64_t shape[2] = {2, 1}, bad[1] = {0};
    hess_tensor *t = hess_tensor_new(ctx, 2, shape, v);

    assert_null(hess_load_npy(NULL, "x.npy", 0));
    assert_int_equal(hess_save_npy(NULL, "x.npy", t), HESS_ERR_ARG);
    assert_null(hess_load_npy(ctx, NULL, 0));
    expect_error(ctx, HESS_ERR_ARG, "hess_load_npy", "NULL path");
    assert_int_equal(hess_save_npy(ctx, NULL, t), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_save_npy", "NULL path");
    assert_int_equal(hess_save_npy(ctx, "test_io_tmp_x.npy", NULL), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_save_npy", "NULL tensor");
    assert_int_equal(hess_save_npy_array(ctx, "test_io_tmp_x.npy", 1, bad, v), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_save_npy_array", "dimension 0 is 0");
    assert_int_equal(hess_save_npy_array(ctx, "test_io_tmp_x.npy", 7, shape, v), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_save_npy_array", "rank");
    assert_int_equal(hess_save_npy_array(ctx, "test_io_tmp_x.npy", 1, shape, NULL), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_save_npy_array", "NULL data");
    /* an unwritable path */
    assert_int_equal(hess_save_npy(ctx, "test_io_tmp_no_dir/x.npy", t), HESS_ERR_IO);
    expect_error(ctx, HESS_ERR_IO, "hess_save_npy: test_io_tmp_no_dir/x.npy", "cannot create");
    /* a tensor freed by a rewind */
    hess_mark mk = hess_context_mark(ctx);
    hess_tensor *gone = hess_scalar(ctx, 1.0);
    assert_ok(ctx, hess_context_rewind(ctx, mk));
    assert_int_equal(hess_save_npy(ctx, "test_io_tmp_x.npy", gone), HESS_ERR_STATE);
    hess_context_clear_error(ctx);
    /* a pending error: nothing is done */
    assert_null(hess_matmul(ctx, t, t));
    assert_int_equal(hess_save_npy(ctx, "test_io_tmp_x.npy", t), HESS_ERR_SHAPE);
    FILE *f = fopen("test_io_tmp_x.npy", "rb");
    assert_null(f);
    hess_context_clear_error(ctx);
}

/* ------------------------------------------------------------------------ */
/* Reference format                                                         */
/* ------------------------------------------------------------------------ */

static void test_ref_roundtrip(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    const char *path = "test_io_tmp_roundtrip.ref";
    static const char *names[] = {"param:s", "v", "m", "hessian", "t3", "t6"};
    hess_named_tensor nt[6];
    for (size_t k = 0; k < 6; k++) {
        nt[k].name = names[k];
        nt[k].tensor = awkward(ctx, RANKS[k], SHAPES[k], 5 + k);
    }
    const hess_ref_file in = {"round_trip", "six tensors,\trank 0 to 6; <&> \"quoted\"", 6, nt};
    assert_ok(ctx, hess_save_ref(ctx, path, &in));

    hess_ref_file out;
    assert_ok(ctx, hess_load_ref(ctx, path, "param:", &out));
    assert_string_equal(out.case_name, in.case_name);
    assert_string_equal(out.model, in.model);
    assert_int_equal(out.n, 6);
    for (size_t k = 0; k < 6; k++) {
        assert_string_equal(out.tensors[k].name, names[k]);
        assert_same_tensor(out.tensors[k].tensor, nt[k].tensor);
        assert_int_equal(hess_tensor_is_param(out.tensors[k].tensor), k == 0);
        assert_ptr_equal(hess_ref_find(&out, names[k]), out.tensors[k].tensor);
    }
    assert_null(hess_ref_find(&out, "nope"));
    assert_null(hess_ref_find(NULL, "v"));
    assert_null(hess_ref_find(&out, NULL));

    /* the tests' own reader agrees */
    ref_case rc;
    char err[256];
    if (ref_load(path, &rc, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(rc.n, 6);
    for (size_t k = 0; k < 6; k++)
        assert_memory_equal(rc.t[k].data, hess_tensor_data(nt[k].tensor),
                            (size_t)rc.t[k].numel * sizeof(double));
    ref_free(&rc);

    /* without case and model, and no prefix: all constants */
    const hess_ref_file bare = {NULL, "", 1, nt + 1};
    assert_ok(ctx, hess_save_ref(ctx, path, &bare));
    assert_ok(ctx, hess_load_ref(ctx, path, NULL, &out));
    assert_string_equal(out.case_name, "");
    assert_string_equal(out.model, "");
    assert_int_equal(out.n, 1);
    assert_int_equal(hess_tensor_is_param(out.tensors[0].tensor), 0);
    remove(path);
    hess_context_destroy(ctx);
}

static hess_tensor *need(const hess_ref_file *f, const char *name)
{
    hess_tensor *t = hess_ref_find(f, name);
    if (!t)
        fail_msg("no tensor '%s'", name);
    return t;
}

/* seed_ann.ref through hess_load_ref: the same values as the tests' reader,
 * and a model built from them reproduces the file's loss and Hessian. */
static void test_ref_seed_ann(void **state)
{
    hess_context *ctx = *state;
    hess_ref_file f;
    assert_ok(ctx, hess_load_ref(ctx, data_path("seed_ann.ref"), "param:", &f));
    assert_string_equal(f.case_name, "seed_ann");
    assert_non_null(strstr(f.model, "Linear(3,4) -> Linear(4,5)"));

    ref_case rc;
    char err[256];
    if (ref_load(data_path("seed_ann.ref"), &rc, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(f.n, rc.n);
    for (size_t k = 0; k < rc.n; k++) {
        assert_string_equal(f.tensors[k].name, rc.t[k].name);
        assert_int_equal(hess_tensor_ndim(f.tensors[k].tensor), rc.t[k].ndim);
        assert_int_equal(hess_tensor_numel(f.tensors[k].tensor), rc.t[k].numel);
        assert_memory_equal(hess_tensor_data(f.tensors[k].tensor), rc.t[k].data,
                            (size_t)rc.t[k].numel * sizeof(double));
        assert_int_equal(hess_tensor_is_param(f.tensors[k].tensor),
                         strncmp(rc.t[k].name, "param:", 6) == 0);
    }
    ref_free(&rc);

    hess_tensor *p[4] = {need(&f, "param:W1"), need(&f, "param:b1"), need(&f, "param:W2"),
                         need(&f, "param:b2")};
    hess_tensor *h = hess_linear(ctx, need(&f, "input:x"), p[0], p[1]);
    hess_tensor *loss = hess_mse_loss(ctx, hess_linear(ctx, h, p[2], p[3]), need(&f, "input:y"));
    assert_non_null(loss);
    assert_close(hess_tensor_data(loss)[0], hess_tensor_data(need(&f, "loss"))[0], 1e-12, 0);
    double H[41 * 41];
    assert_int_equal(hess_param_count(4, p), 41);
    assert_ok(ctx, hess_hessian(ctx, loss, 4, p, H));
    assert_close_array(H, hess_tensor_data(need(&f, "hessian")), 41 * 41, 1e-12, 1e-14);

    /* written back, the file reads as the same values */
    const char *path = "test_io_tmp_seed.ref";
    assert_ok(ctx, hess_save_ref(ctx, path, &f));
    hess_ref_file g;
    assert_ok(ctx, hess_load_ref(ctx, path, "param:", &g));
    assert_int_equal(g.n, f.n);
    for (size_t k = 0; k < f.n; k++)
        assert_same_tensor(g.tensors[k].tensor, f.tensors[k].tensor);
    remove(path);
}

/* 128 bytes of one word: one more than a case name may have */
#define C16  "cccccccccccccccc"
#define C128 C16 C16 C16 C16 C16 C16 C16 C16
/* 500 bytes: the longest model line */
#define M10  "mmmmmmmmmm"
#define M100 M10 M10 M10 M10 M10 M10 M10 M10 M10 M10
#define M500 M100 M100 M100 M100 M100

static const struct {
    const char *what, *text, *frag;
} BAD_REF[] = {
    {"empty", "", "byte 0 (line 1): bad header"},
    {"header v2", "# libhessian reference case v2\ntensor a 0\n1\n",
     "byte 29 (line 1): bad header"},
    {"header v10", "# libhessian reference case v10\ntensor a 0\n1\n",
     "byte 30 (line 1): bad header"},
    {"header v1.5", "# libhessian reference case v1.5\ntensor a 0\n1\n",
     "byte 30 (line 1): bad header"},
    {"header v1x", "# libhessian reference case v1x\ntensor a 0\n1\n",
     "byte 30 (line 1): bad header"},
    {"header and text", "# libhessian reference case v1 extra\ntensor a 0\n1\n",
     "byte 30 (line 1): bad header"},
    {"header, CR and text", "# libhessian reference case v1\rx\ntensor a 0\n1\n",
     "byte 31 (line 1): bad header"},
    {"header indented", " # libhessian reference case v1\ntensor a 0\n1\n",
     "byte 0 (line 1): bad header"},
    {"no tensors", "# libhessian reference case v1\ncase x\nmodel y\n",
     "byte 46 (line 4): no tensors"},
    {"unknown keyword", "# libhessian reference case v1\ntensor a 0\n1\nvalue 3\n",
     "byte 44 (line 4): unknown keyword 'value'"},
    {"rank 7", "# libhessian reference case v1\ntensor a 7 1 1 1 1 1 1 1\n1\n",
     "byte 40 (line 2): tensor 'a': rank must be 0..6"},
    {"rank -1", "# libhessian reference case v1\ntensor a -1\n1\n",
     "byte 40 (line 2): tensor 'a': rank"},
    {"rank text", "# libhessian reference case v1\ntensor a two 1 1\n1\n",
     "byte 40 (line 2): tensor 'a': rank"},
    {"no name", "# libhessian reference case v1\ntensor",
     "byte 37 (line 2): missing, too long or malformed tensor name"},
    {"dim 0", "# libhessian reference case v1\ntensor a 1 0\n",
     "byte 42 (line 2): tensor 'a': dimension 0 is not a positive integer"},
    {"dim negative", "# libhessian reference case v1\ntensor a 2 3 -4\n1\n",
     "byte 44 (line 2): tensor 'a': dimension 1"},
    {"dim text", "# libhessian reference case v1\ntensor a 1 3x\n1 2 3\n",
     "byte 42 (line 2): tensor 'a': dimension 0"},
    {"absurd dims", "# libhessian reference case v1\ntensor a 2 100000000000 100000000000\n1\n",
     "byte 68 (line 3): tensor 'a': the shape needs more values than the file"},
    {"huge dim", "# libhessian reference case v1\ntensor a 1 9223372036854775807\n1\n",
     "byte 62 (line 3): tensor 'a': the shape needs more values than the file"},
    {"too few bytes", "# libhessian reference case v1\ntensor a 1 3\n1 2",
     "byte 44 (line 3): tensor 'a': the shape needs more values than the file"},
    {"truncated", "# libhessian reference case v1\ntensor a 2 2 2\n1 2\n3\n",
     "byte 46 (line 3): tensor 'a': the shape needs more values than the file"},
    {"truncated, blanks", "# libhessian reference case v1\ntensor a 2 2 2\n1 2\n3   \n",
     "byte 55 (line 5): tensor 'a': file ends after 3 of 4 values"},
    {"bad value", "# libhessian reference case v1\ntensor a 1 3\n1 2.5.1 3\n",
     "byte 46 (line 3): tensor 'a': malformed value after 1 of 3"},
    {"keyword as value", "# libhessian reference case v1\ntensor a 1 2\n1\ntensor b 0\n1\n",
     "byte 46 (line 4): tensor 'a': malformed value after 1 of 2"},
    {"repeated name", "# libhessian reference case v1\ntensor a 0\n1\ntensor a 0\n2\n",
     "byte 51 (line 4): tensor 'a' appears twice"},
    {"long name",
     "# libhessian reference case v1\ntensor "
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 0\n1\n",
     "byte 38 (line 2): missing, too long or malformed tensor name"},
    {"long token",
     "# libhessian reference case v1\ntensor a 1 1\n"
     "1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111"
     "1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111\n",
     "byte 44 (line 3): tensor 'a': token too long after 0 of 1"},
    {"no case word", "# libhessian reference case v1\ncase", "byte 35 (line 2): bad case line"},
    {"control in value", "# libhessian reference case v1\ntensor a 1 2\n1 2\x01\n",
     "byte 47 (line 3): tensor 'a': control byte after 1 of 2"},
    {"control in model", "# libhessian reference case v1\nmodel a\x7f b\ntensor a 0\n1\n",
     "byte 38 (line 2): model line too long or with a control byte"},
    {"CR in model", "# libhessian reference case v1\nmodel a\rb\ntensor a 0\n1\n",
     "byte 38 (line 2): model line too long or with a control byte"},
    {"DEL as keyword", "# libhessian reference case v1\n\x7f\n", "byte 31 (line 2): control byte"},
    /* NaNs are spelled "nan", "-nan" or "nan:0x" and 16 hex digits of a NaN */
    {"NaN", "# libhessian reference case v1\ntensor a 1 1\nNaN\n",
     "byte 44 (line 3): tensor 'a': malformed value"},
    {"NAN", "# libhessian reference case v1\ntensor a 1 1\nNAN\n", "malformed value"},
    {"+nan", "# libhessian reference case v1\ntensor a 1 1\n+nan\n", "malformed value"},
    {"-NaN", "# libhessian reference case v1\ntensor a 1 1\n-NaN\n", "malformed value"},
    {"nan(123)", "# libhessian reference case v1\ntensor a 1 1\nnan(123)\n", "malformed value"},
    {"nan: not a NaN", "# libhessian reference case v1\ntensor a 1 1\nnan:0x3ff0000000000000\n",
     "malformed value"},
    {"nan: infinity", "# libhessian reference case v1\ntensor a 1 1\nnan:0x7ff0000000000000\n",
     "malformed value"},
    {"nan: 4 digits", "# libhessian reference case v1\ntensor a 1 1\nnan:0x7ff8\n",
     "malformed value"},
    {"nan: 17 digits", "# libhessian reference case v1\ntensor a 1 1\nnan:0x7ff80000000000001\n",
     "malformed value"},
    {"nan: no 0x", "# libhessian reference case v1\ntensor a 1 1\nnan:7ff8000000000001\n",
     "malformed value"},
    {"nan: 0X", "# libhessian reference case v1\ntensor a 1 1\nnan:0X7ff8000000000001\n",
     "malformed value"},
    {"nan: not hex", "# libhessian reference case v1\ntensor a 1 1\nnan:0x7ff800000000000g\n",
     "malformed value"},
    {"-nan: bits", "# libhessian reference case v1\ntensor a 1 1\n-nan:0x7ff8000000000001\n",
     "malformed value"},
    {"nan: slash", "# libhessian reference case v1\ntensor a 1 1\nnan:0x7ff800000000000/\n",
     "malformed value"},
    {"nan: at sign", "# libhessian reference case v1\ntensor a 1 1\nnan:0x7ff800000000000@\n",
     "malformed value"},
    {"nan: backquote", "# libhessian reference case v1\ntensor a 1 1\nnan:0x7ff800000000000`\n",
     "malformed value"},
    {"nan: G", "# libhessian reference case v1\ntensor a 1 1\nnan:0x7ff800000000000G\n",
     "malformed value"},
    {"header only", "# libhessian reference case v1", "byte 30 (line 1): no tensors"},
    {"no rank", "# libhessian reference case v1\ntensor a",
     "byte 39 (line 2): tensor 'a': rank must be 0..6"},
    {"no dimension", "# libhessian reference case v1\ntensor a 2 3",
     "byte 43 (line 2): tensor 'a': dimension 1 is not a positive integer"},
    {"absurd, then a dim",
     "# libhessian reference case v1\ntensor a 3 100000000000 100000000000 2\n1\n",
     "byte 70 (line 3): tensor 'a': the shape needs more values than the file"},
    {"beyond a seek", "# libhessian reference case v1\ntensor a 1 10000000000000\n1\n",
     "byte 57 (line 3): tensor 'a': the shape needs more values than the file"},
    {"case too long", "# libhessian reference case v1\ncase " C128 "\ntensor a 0\n1\n",
     "byte 36 (line 2): bad case line"},
    {"model too long",
     "# libhessian reference case v1\nmodel " C128 C128 C128 C128 "\ntensor a 0\n1\n",
     "byte 537 (line 2): model line too long"},
    {"CR after 500 bytes", "# libhessian reference case v1\nmodel " M500 "\rx\ntensor a 0\n1\n",
     "byte 537 (line 2): model line too long"},
};

/* Names with a NUL byte: the fuzzer's first find.  Kept apart from BAD_REF,
 * whose texts are C strings. */
static void test_ref_nul_bytes(void **state)
{
    hess_context *ctx = *state;
    static const char text[] = "# libhessian reference case v1\ntensor \0\0param:b 1 1\n0\n";
    const char *path = "test_io_tmp_nul.ref";
    write_bytes(path, text, sizeof text - 1);
    hess_ref_file out;
    assert_int_equal(hess_load_ref(ctx, path, NULL, &out), HESS_ERR_IO);
    expect_error(ctx, HESS_ERR_IO, path,
                 "byte 38 (line 2): missing, too long or malformed tensor name");
    remove(path);
}

static void test_ref_malformed(void **state)
{
    (void)state;
    hess_context *ctx = test_context();
    const char *path = "test_io_tmp_bad.ref";
    for (size_t k = 0; k < sizeof BAD_REF / sizeof BAD_REF[0]; k++) {
        write_bytes(path, BAD_REF[k].text, strlen(BAD_REF[k].text));
        const hess_mark before = hess_context_mark(ctx);
        hess_ref_file out = {"x", "y", 3, NULL};
        if (hess_load_ref(ctx, path, "a", &out) == HESS_OK)
            fail_msg("case '%s' was accepted", BAD_REF[k].what);
        expect_error(ctx, HESS_ERR_IO, path, BAD_REF[k].frag);
        assert_true(same_mark(before, hess_context_mark(ctx)));
        assert_null(out.tensors);
        assert_int_equal(out.n, 0);
    }
    /* the deliberately bad file of the examples */
    hess_ref_file out;
    assert_int_equal(hess_load_ref(ctx, data_path("bad/truncated.ref"), NULL, &out), HESS_ERR_IO);
    expect_error(ctx, HESS_ERR_IO, "truncated.ref", "tensor 'param:b1': file ends after 2 of 4");
    assert_int_equal(hess_load_ref(ctx, "test_io_tmp_missing.ref", NULL, &out), HESS_ERR_IO);
    expect_error(ctx, HESS_ERR_IO, "test_io_tmp_missing.ref", "cannot open");
    assert_int_equal(hess_load_ref(ctx, NULL, NULL, &out), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_load_ref", "NULL path");
    assert_int_equal(hess_load_ref(ctx, path, NULL, NULL), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_load_ref", "NULL out");
    remove(path);
    hess_context_destroy(ctx);
}

static void test_ref_save_arguments(void **state)
{
    hess_context *ctx = *state;
    const char *path = "test_io_tmp_args.ref";
    hess_tensor *a = hess_scalar(ctx, 1.0);
    hess_named_tensor nt[2] = {{"a", a}, {"b", a}};
    hess_ref_file f = {"c", "m", 2, nt};
    assert_ok(ctx, hess_save_ref(ctx, path, &f));
    static const struct {
        const char *n0, *n1, *case_name, *model, *frag;
    } bad[] = {
        {"a", "a", NULL, NULL, "name 'a' is repeated"},
        {"a b", "b", NULL, NULL, "tensors[0]: the name"},
        {"", "b", NULL, NULL, "tensors[0]: the name"},
        {"a", NULL, NULL, NULL, "tensors[1]: the name"},
        {"a", "b\n", NULL, NULL, "tensors[1]: the name"},
        {"a", "b", "two words", NULL, "case name"},
        {"a", "b", NULL, "two\nlines", "model text"},
        {"a", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL, NULL,
         "tensors[1]: the name"},
        {"a\x7f", "b", NULL, NULL, "tensors[0]: the name must be 1..63 bytes without blanks"},
        {"a", "b", "c\x7f", NULL, "case name has blanks"},
        {"a", "b", NULL, "del\x7f", "model text has a control character"},
        {"a", "b", NULL, "bell\a", "model text has a control character"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        hess_named_tensor t2[2] = {{bad[k].n0, a}, {bad[k].n1, a}};
        const hess_ref_file g = {bad[k].case_name, bad[k].model, 2, t2};
        assert_int_equal(hess_save_ref(ctx, path, &g), HESS_ERR_ARG);
        expect_error(ctx, HESS_ERR_ARG, "hess_save_ref", bad[k].frag);
    }
    nt[1].tensor = NULL;
    assert_int_equal(hess_save_ref(ctx, path, &f), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_save_ref", "NULL tensor");
    f.n = 0;
    assert_int_equal(hess_save_ref(ctx, path, &f), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_save_ref", "no tensors");
    assert_int_equal(hess_save_ref(ctx, path, NULL), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_save_ref", "NULL file");
    const hess_ref_file no_list = {NULL, NULL, 1, NULL};
    assert_int_equal(hess_save_ref(ctx, path, &no_list), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_save_ref: no tensors", NULL);
    nt[1].tensor = a;
    f.n = 2;
    /* a pending error: returned, nothing written, nothing read */
    char *kept = read_all(path, NULL);
    assert_null(hess_matmul(ctx, a, a));
    const hess_status pending = hess_context_status(ctx);
    assert_int_equal(hess_save_ref(ctx, path, &f), pending);
    hess_ref_file out = {"x", "y", 3, nt};
    assert_int_equal(hess_load_ref(ctx, path, NULL, &out), pending);
    assert_true(out.n == 0 && out.tensors == NULL && out.case_name == NULL);
    assert_null(strstr(hess_context_errmsg(ctx), "hess_save_ref"));
    hess_context_clear_error(ctx);
    char *now = read_all(path, NULL);
    assert_string_equal(now, kept);
    free(now);
    free(kept);
    assert_int_equal(hess_save_ref(ctx, "test_io_tmp_no_dir/x.ref", &f), HESS_ERR_IO);
    expect_error(ctx, HESS_ERR_IO, "test_io_tmp_no_dir/x.ref", "cannot create");
    remove(path);
}

/* ------------------------------------------------------------------------ */
/* SVG heatmap                                                              */
/* ------------------------------------------------------------------------ */

/* 1 if xmllint is installed, so that well-formedness can be checked. */
static int have_xmllint(void)
{
    return system("xmllint --version > /dev/null 2>&1") == 0;
}

static void xml_well_formed(const char *path)
{
    if (!have_xmllint())
        return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path);
    if (system(cmd) != 0)
        fail_msg("xmllint rejects %s", path);
}

/* The Hessian of the seed network (41 x 41, blocks W1 12, b1 4, W2 20, b2 5),
 * with a title that needs escaping.  Set HESS_TEST_KEEP_SVG to keep the file
 * (test_io_tmp_heatmap.svg) for looking at. */
static void test_svg_seed_hessian(void **state)
{
    hess_context *ctx = *state;
    hess_ref_file f;
    assert_ok(ctx, hess_load_ref(ctx, data_path("seed_ann.ref"), NULL, &f));
    const double *H = hess_tensor_data(need(&f, "hessian"));
    static const char *const names[] = {"W1", "b1", "W2", "b2"};
    static const size_t sizes[] = {12, 4, 20, 5};
    const char *path = "test_io_tmp_heatmap.svg";
    const hess_mark before = hess_context_mark(ctx);
    assert_ok(ctx, hess_write_svg_heatmap(ctx, path, 41, H, 4, names, sizes,
                                          "Hessian of seed_ann <MSE & \"Linear\">"));
    assert_true(same_mark(before, hess_context_mark(ctx)));
    char *svg = read_all(path, NULL);
    assert_non_null(strstr(svg, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    assert_non_null(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_non_null(strstr(svg, ">W1 (12)</text>"));
    assert_non_null(strstr(svg, ">b1 (4)</text>"));
    assert_non_null(strstr(svg, ">W2 (20)</text>"));
    assert_non_null(strstr(svg, ">b2 (5)</text>"));
    assert_non_null(strstr(svg, "<linearGradient id=\"scale\""));
    assert_non_null(strstr(svg, "&lt;MSE &amp; &quot;Linear&quot;&gt;"));
    assert_non_null(strstr(svg, "41 &#215; 41"));
    assert_null(strstr(svg, "<MSE"));
    assert_null(strstr(svg, "href")); /* nothing from elsewhere */
    assert_null(strstr(svg, "<script"));
    /* the legend's ends are +-max|H| */
    double vmax = 0;
    for (size_t i = 0; i < 41 * 41; i++)
        vmax = fabs(H[i]) > vmax ? fabs(H[i]) : vmax;
    char tick[64];
    snprintf(tick, sizeof tick, ">%.3g</text>", -vmax);
    assert_non_null(strstr(svg, tick));
    snprintf(tick, sizeof tick, ">%.3g</text>", vmax);
    assert_non_null(strstr(svg, tick));
    free(svg);
    xml_well_formed(path);
    if (!getenv("HESS_TEST_KEEP_SVG"))
        remove(path);
}

static void test_svg_edges(void **state)
{
    hess_context *ctx = *state;
    const char *path = "test_io_tmp_edges.svg";
    /* no blocks, no title, all zeros */
    double z[9] = {0};
    assert_ok(ctx, hess_write_svg_heatmap(ctx, path, 3, z, 0, NULL, NULL, NULL));
    xml_well_formed(path);
    /* hostile names: markup, control characters, invalid UTF-8; NULL names */
    const char *const names[] = {"<a&b>", "c\x01\x7f\"'", "\xff\xc3(\xed\xa0\x80", NULL};
    const size_t sizes[] = {1, 1, 1, 6};
    double m[81];
    for (int i = 0; i < 81; i++)
        m[i] = i % 7 - 3.0;
    m[40] = NAN;
    m[41] = INFINITY;
    assert_ok(ctx, hess_write_svg_heatmap(ctx, path, 9, m, 4, names, sizes, "t\xc3\xa9st \xf0"));
    char *svg = read_all(path, NULL);
    assert_non_null(strstr(svg, "&lt;a&amp;b&gt; (1)"));
    assert_non_null(strstr(svg, ">6</text>")); /* the unnamed block */
    assert_non_null(strstr(svg, ">NaN</text>"));
    assert_non_null(strstr(svg, "t\xc3\xa9st ?"));
    free(svg);
    xml_well_formed(path);
    /* all names NULL */
    assert_ok(ctx, hess_write_svg_heatmap(ctx, path, 9, m, 4, NULL, sizes, "no names"));
    xml_well_formed(path);
    /* a large matrix is downsampled */
    const size_t n = 401;
    double *big = malloc(n * n * sizeof *big);
    assert_non_null(big);
    for (size_t i = 0; i < n * n; i++)
        big[i] = (double)(i % n) - (double)(i / n);
    const size_t bs[] = {100, 1, 300};
    assert_ok(ctx, hess_write_svg_heatmap(ctx, path, n, big, 3, NULL, bs, "big"));
    free(big);
    svg = read_all(path, NULL);
    assert_non_null(strstr(svg, "shown as 300 &#215; 300 cells"));
    free(svg);
    xml_well_formed(path);

    /* arguments */
    assert_int_equal(hess_write_svg_heatmap(NULL, path, 3, z, 0, NULL, NULL, NULL), HESS_ERR_ARG);
    assert_int_equal(hess_write_svg_heatmap(ctx, NULL, 3, z, 0, NULL, NULL, NULL), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_write_svg_heatmap", "NULL path");
    assert_int_equal(hess_write_svg_heatmap(ctx, path, 0, z, 0, NULL, NULL, NULL), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_write_svg_heatmap", "n must be");
    assert_int_equal(hess_write_svg_heatmap(ctx, path, 3, NULL, 0, NULL, NULL, NULL), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_write_svg_heatmap", "NULL matrix");
    const size_t wrong[] = {1, 1};
    assert_int_equal(hess_write_svg_heatmap(ctx, path, 3, z, 2, NULL, wrong, NULL), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_write_svg_heatmap", "sum to 2, not n = 3");
    const size_t over[] = {2, 2};
    assert_int_equal(hess_write_svg_heatmap(ctx, path, 3, z, 2, NULL, over, NULL), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_write_svg_heatmap", "block sizes");
    const size_t zero[] = {3, 0};
    assert_int_equal(hess_write_svg_heatmap(ctx, path, 3, z, 2, NULL, zero, NULL), HESS_ERR_ARG);
    hess_context_clear_error(ctx);
    assert_int_equal(hess_write_svg_heatmap(ctx, path, 3, z, 2, NULL, NULL, NULL), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_write_svg_heatmap", "NULL sizes");
    assert_int_equal(
        hess_write_svg_heatmap(ctx, "test_io_tmp_no_dir/x.svg", 3, z, 0, NULL, NULL, NULL),
        HESS_ERR_IO);
    expect_error(ctx, HESS_ERR_IO, "test_io_tmp_no_dir/x.svg", "cannot create");
    remove(path);
}

/* ------------------------------------------------------------------------ */
/* SVG line chart                                                           */
/* ------------------------------------------------------------------------ */

/* How many times s holds what. */
static size_t count_of(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/* 1 if s holds "nan" or "inf" as a word of its own, as printf writes a
 * non-finite number ("dominant" does not count). */
static int has_nonfinite(const char *s)
{
    static const char *const words[2] = {"nan", "inf"};
    for (int w = 0; w < 2; w++)
        for (const char *p = s; (p = strstr(p, words[w])) != NULL; p++)
            if ((p == s || !isalpha((unsigned char)p[-1])) && !isalpha((unsigned char)p[3]))
                return 1;
    return 0;
}

/* The plot's frame in a chart: its rect (x, y, width, height). */
static void chart_frame(const char *svg, double box[4])
{
    const char *p = strstr(svg, "fill=\"none\" stroke=\"#222222\"/>");
    assert_non_null(p);
    while (p > svg && strncmp(p, "<rect ", 6) != 0)
        p--;
    assert_int_equal(sscanf(p, "<rect x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"", &box[0],
                            &box[1], &box[2], &box[3]),
                     4);
}

/* The points of the k-th polyline into xy (2 per point, at most cap
 * numbers); returns how many points; checks each lies inside the frame. */
static size_t polyline_points(const char *svg, size_t k, double *xy, size_t cap)
{
    double box[4];
    chart_frame(svg, box);
    const char *p = svg;
    for (size_t i = 0; i <= k; i++, p++) {
        p = strstr(p, "<polyline ");
        assert_non_null(p);
    }
    p = strstr(p, "points=\"") + strlen("points=\"");
    size_t n = 0;
    for (int used; *p != '"'; p += used) {
        double x, y;
        assert_int_equal(sscanf(p, " %lf,%lf%n", &x, &y, &used), 2);
        if (x < box[0] - 1e-9 || x > box[0] + box[2] + 1e-9 || y < box[1] - 1e-9 ||
            y > box[1] + box[3] + 1e-9)
            fail_msg("point (%g, %g) outside the plot [%g, %g] x [%g, %g]", x, y, box[0],
                     box[0] + box[2], box[1], box[1] + box[3]);
        assert_true(2 * n + 2 <= cap);
        xy[2 * n] = x, xy[2 * n + 1] = y;
        n++;
    }
    return n;
}

/* Curves with gaps: one polyline per run of finite points (a lone point a
 * dot, drawn twice), a colour per series, a legend entry per named series
 * with its text escaped (markup, invalid UTF-8), nothing from elsewhere, no
 * context memory kept, well-formed XML.  Set HESS_TEST_KEEP_SVG to keep the
 * file (test_io_tmp_lines.svg) for looking at. */
static void test_svg_lines_chart(void **state)
{
    hess_context *ctx = *state;
    const char *path = "test_io_tmp_lines.svg";
    double x[10], a[10], b[6] = {1, NAN, 2, NAN, 3, 4}, d[3] = {-1, 0.5, 2};
    for (int i = 0; i < 10; i++)
        x[i] = i * 0.5, a[i] = sin(x[i]);
    a[4] = NAN;
    x[7] = INFINITY; /* a non-finite x breaks the line as well */
    const hess_series s[4] = {
        {"<sin> & \"co\"", 10, x, a},     /* runs 0-3, 5-6, 8-9 */
        {"bad \xff utf8 \xc3(", 6, x, b}, /* runs 0, 2, 4-5 */
        {"empty", 0, NULL, NULL},         /* no line, in the legend */
        {NULL, 3, x, d},                  /* one run, not in the legend */
    };
    const hess_mark before = hess_context_mark(ctx);
    assert_ok(ctx, hess_write_svg_lines(ctx, path, "Curves <1> & 2", "x [s]", "y & z", 4, s));
    assert_true(same_mark(before, hess_context_mark(ctx)));
    char *svg = read_all(path, NULL);
    assert_non_null(strstr(svg, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg "));
    assert_non_null(strstr(svg, "<title>Curves &lt;1&gt; &amp; 2</title>"));
    assert_non_null(strstr(svg, ">Curves &lt;1&gt; &amp; 2</text>"));
    assert_non_null(strstr(svg, ">x [s]</text>"));
    assert_non_null(strstr(svg, ">y &amp; z</text>"));
    assert_int_equal(count_of(svg, "<polyline "), 7);
    assert_int_equal(count_of(svg, "<polyline stroke=\"#1f77b4\""), 3);
    assert_int_equal(count_of(svg, "<polyline stroke=\"#d62728\""), 3);
    assert_int_equal(count_of(svg, "<polyline stroke=\"#2ca02c\""), 0);
    assert_int_equal(count_of(svg, "<polyline stroke=\"#9467bd\""), 1);
    /* the legend: three named series, in order, escaped */
    assert_int_equal(count_of(svg, "stroke-width=\"3\"/>"), 3);
    const char *k1 = strstr(svg, ">&lt;sin&gt; &amp; &quot;co&quot;</text>");
    const char *k2 = strstr(svg, ">bad ? utf8 ?(</text>");
    const char *k3 = strstr(svg, ">empty</text>");
    assert_true(k1 && k2 && k3 && k1 < k2 && k2 < k3);
    assert_null(strstr(svg, "<sin"));
    assert_null(strstr(svg, "href"));
    assert_null(strstr(svg, "<script"));
    assert_false(has_nonfinite(svg));
    assert_non_null(strstr(svg, "<desc>line chart of 4 series, 19 points; x axis from 0 to 5, "
                                "y axis from -1 to 4</desc>"));
    /* runs of 4, 2, 2 points; the lone points of series 1 twice each */
    double xy[40];
    static const size_t run[7] = {4, 2, 2, 2, 2, 2, 3};
    for (size_t k = 0; k < 7; k++)
        assert_int_equal(polyline_points(svg, k, xy, 40), run[k]);
    for (size_t k = 3; k < 5; k++) {
        polyline_points(svg, k, xy, 40);
        assert_true(xy[0] == xy[2] && xy[1] == xy[3]);
    }
    /* series 3's first point is (0, -1): the frame's lower left corner */
    double box[4];
    chart_frame(svg, box);
    polyline_points(svg, 6, xy, 40);
    assert_close(xy[0], box[0], 0, 1e-9);
    assert_close(xy[1], box[1] + box[3], 0, 1e-9);
    free(svg);
    xml_well_formed(path);

    /* no names, no title, no labels: no legend, the picture as wide as the plot needs */
    const hess_series plain[2] = {{NULL, 3, x, d}, {NULL, 3, x, a}};
    assert_ok(ctx, hess_write_svg_lines(ctx, path, NULL, NULL, NULL, 2, plain));
    svg = read_all(path, NULL);
    assert_non_null(strstr(svg, "<title>line chart</title>"));
    assert_int_equal(count_of(svg, "stroke-width=\"3\"/>"), 0);
    assert_int_equal(count_of(svg, "<polyline "), 2);
    assert_int_equal(count_of(svg, "font-weight=\"bold\""), 0);
    assert_non_null(strstr(svg, "width=\"656.00\""));
    free(svg);
    xml_well_formed(path);

    /* nine series: the colours start again at the ninth */
    hess_series nine[9];
    for (int i = 0; i < 9; i++)
        nine[i] = (hess_series){"s", 3, x, d};
    assert_ok(ctx, hess_write_svg_lines(ctx, path, "nine", NULL, NULL, 9, nine));
    svg = read_all(path, NULL);
    assert_int_equal(count_of(svg, "<polyline stroke=\"#1f77b4\""), 2);
    assert_int_equal(count_of(svg, "<polyline stroke=\"#7f7f7f\""), 1);
    free(svg);
    xml_well_formed(path);
    if (!getenv("HESS_TEST_KEEP_SVG"))
        remove(path);
}

/* The y tick labels of a chart, in order, into labels[][32]; how many. */
static size_t y_ticks(const char *svg, char labels[][32], size_t cap)
{
    static const char key[] = "text-anchor=\"end\" dominant-baseline=\"central\">";
    size_t n = 0;
    for (const char *p = svg; (p = strstr(p, key)) != NULL; p += strlen(key)) {
        const char *q = p + strlen(key), *end = strchr(q, '<');
        assert_true(n < cap && end && end - q < 32);
        memcpy(labels[n], q, (size_t)(end - q));
        labels[n++][end - q] = '\0';
    }
    return n;
}

/* Axes: round ends from the finite points, [0, 1] without any, a single
 * value widened about itself, ranges up to +-DBL_MAX and down to subnormals
 * with finite coordinates, tick labels that tell neighbours apart, no "-0". */
static void test_svg_lines_axes(void **state)
{
    hess_context *ctx = *state;
    const char *path = "test_io_tmp_axes.svg";
    static const struct {
        double x[2], y[2];
        const char *desc; /* what the <desc> says of the axes, or NULL */
        size_t ticks;     /* y ticks, or 0 */
    } cases[] = {
        {{NAN, INFINITY}, {1, -INFINITY}, "x axis from 0 to 1, y axis from 0 to 1", 6},
        {{3, 3}, {0, 0}, "x axis from 2.7 to 3.3, y axis from -0.6 to 0.6", 7},
        {{-2, 1e3}, {0.31, 0.9}, "x axis from -200 to 1000, y axis from 0.3 to 0.9", 7},
        {{-DBL_MAX, DBL_MAX}, {DBL_MAX, -DBL_MAX}, NULL, 0},
        {{0, DBL_MAX}, {DBL_MAX, DBL_MAX}, NULL, 0},
        {{1e-310, 2e-310}, {4.9e-324, 4.9e-324}, NULL, 0},
        {{1, 1 + 1e-9}, {1, 1 + 4e-12}, NULL, 0},
        {{-1, 1}, {-1, 1}, "x axis from -1 to 1, y axis from -1 to 1", 5},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const hess_series s = {"s", 2, cases[k].x, cases[k].y};
        assert_ok(ctx, hess_write_svg_lines(ctx, path, "axes", "x", "y", 1, &s));
        char *svg = read_all(path, NULL);
        if (cases[k].desc && !strstr(svg, cases[k].desc))
            fail_msg("case %zu: no \"%s\" in\n%.400s", k, cases[k].desc, svg);
        if (has_nonfinite(svg))
            fail_msg("case %zu: a non-finite number in the picture", k);
        assert_null(strstr(svg, ">-0<"));
        char labels[24][32];
        const size_t n = y_ticks(svg, labels, 24);
        assert_true(n >= 3 && n <= 12);
        if (cases[k].ticks)
            assert_int_equal(n, cases[k].ticks);
        for (size_t i = 1; i < n; i++)
            if (strcmp(labels[i], labels[i - 1]) == 0)
                fail_msg("case %zu: two ticks read %s", k, labels[i]);
        double xy[8];
        if (k == 0) /* no finite point */
            assert_int_equal(count_of(svg, "<polyline "), 0);
        else /* both points, inside the frame */
            assert_int_equal(polyline_points(svg, 0, xy, 8), 2);
        free(svg);
        xml_well_formed(path);
    }
    remove(path);
}

/* Every bad argument: HESS_ERR_ARG with a message naming the function and
 * the value, no file made; series of no points are drawn; an error already
 * pending is returned and nothing written; an unwritable place is
 * HESS_ERR_IO. */
static void test_svg_lines_arguments(void **state)
{
    hess_context *ctx = *state;
    const char *path = "test_io_tmp_lines_arg.svg";
    const double x[3] = {0, 1, 2}, y[3] = {1, 0, 1};
    hess_series s[2] = {{"a", 3, x, y}, {"b", 3, x, y}};
    remove(path);
    assert_int_equal(hess_write_svg_lines(NULL, path, NULL, NULL, NULL, 2, s), HESS_ERR_ARG);
    assert_int_equal(hess_write_svg_lines(ctx, NULL, NULL, NULL, NULL, 2, s), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_write_svg_lines: NULL path", NULL);
    assert_int_equal(hess_write_svg_lines(ctx, path, NULL, NULL, NULL, 2, NULL), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_write_svg_lines: NULL series (n_series = 2)", NULL);
    assert_int_equal(hess_write_svg_lines(ctx, path, NULL, NULL, NULL, 0, s), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_write_svg_lines: no series to draw (n_series = 0)", NULL);
    assert_int_equal(hess_write_svg_lines(ctx, path, NULL, NULL, NULL, SIZE_MAX, s), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_write_svg_lines: more series than memory could hold",
                 NULL);
    s[1].x = NULL;
    assert_int_equal(hess_write_svg_lines(ctx, path, NULL, NULL, NULL, 2, s), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_write_svg_lines: series 1: NULL x (n = 3)", NULL);
    s[1].x = x, s[1].y = NULL;
    assert_int_equal(hess_write_svg_lines(ctx, path, NULL, NULL, NULL, 2, s), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_write_svg_lines: series 1: NULL y (n = 3)", NULL);
    s[1].y = y, s[0].n = SIZE_MAX;
    assert_int_equal(hess_write_svg_lines(ctx, path, NULL, NULL, NULL, 2, s), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_write_svg_lines: series 0: more points than memory",
                 NULL);
    s[0].n = 3;
    /* 17 series of 2^60 - 1 points (never read: refused first) overflow size_t */
    hess_series huge[17];
    for (int i = 0; i < 17; i++)
        huge[i] = (hess_series){NULL, PTRDIFF_MAX / sizeof(double), x, y};
    assert_int_equal(hess_write_svg_lines(ctx, path, NULL, NULL, NULL, 17, huge), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_write_svg_lines: series 16: the points of all series",
                 "overflow");
    assert_int_equal(access(path, F_OK), -1); /* nothing written */

    /* series of no points, x and y NULL: drawn (nothing), named in the legend */
    const hess_series none[2] = {{"nothing", 0, NULL, NULL}, {NULL, 0, NULL, NULL}};
    assert_ok(ctx, hess_write_svg_lines(ctx, path, "empty", NULL, NULL, 2, none));
    char *svg = read_all(path, NULL);
    assert_int_equal(count_of(svg, "<polyline "), 0);
    assert_non_null(strstr(svg, ">nothing</text>"));
    assert_non_null(strstr(svg, "x axis from 0 to 1, y axis from 0 to 1"));
    free(svg);
    xml_well_formed(path);

    /* an error pending: returned, the file untouched */
    size_t len0;
    char *old = read_all(path, &len0);
    assert_int_equal(hess_write_svg_heatmap(ctx, NULL, 3, x, 0, NULL, NULL, NULL), HESS_ERR_ARG);
    assert_int_equal(hess_write_svg_lines(ctx, path, "t", "x", "y", 2, s), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_write_svg_heatmap: NULL path", NULL);
    size_t len1;
    char *now = read_all(path, &len1);
    assert_int_equal(len1, len0);
    assert_memory_equal(now, old, len0);
    free(old);
    free(now);

    assert_int_equal(hess_write_svg_lines(ctx, "test_io_tmp_no_dir/x.svg", NULL, NULL, NULL, 2, s),
                     HESS_ERR_IO);
    expect_error(ctx, HESS_ERR_IO, "hess_write_svg_lines: test_io_tmp_no_dir/x.svg",
                 "cannot create");
    remove(path);
}

/* ------------------------------------------------------------------------ */
/* Saving: every writer replaces its file through a temporary file          */
/* ------------------------------------------------------------------------ */

enum { W_NPY, W_NPY_ARRAY, W_REF, W_SVG, W_SVG_LINES, W_COUNT };
static const char *const WRITER_FN[W_COUNT] = {"hess_save_npy", "hess_save_npy_array",
                                               "hess_save_ref", "hess_write_svg_heatmap",
                                               "hess_write_svg_lines"};
/* How each writer's file begins. */
static const char *const WRITER_MAGIC[W_COUNT] = {
    "\x93NUMPY", "\x93NUMPY", "# libhessian reference case v1\n", "<?xml", "<?xml"};

/* Saves a side x side matrix with writer w: side 2, or 48 when big (18 KiB
 * as .npy, more as text or SVG; the line chart draws its rows). */
static hess_status save_with(hess_context *ctx, int w, const char *path, bool big)
{
    const int64_t side = big ? 48 : 2;
    const int64_t shape[2] = {side, side};
    static double m[48 * 48];
    uint64_t seed = 99;
    for (int64_t i = 0; i < side * side; i++)
        m[i] = rnd_uniform(&seed, -1, 1);
    hess_named_tensor nt = {"m", NULL};
    const hess_ref_file f = {"c", NULL, 1, &nt};
    switch (w) {
    case W_NPY:
        return hess_save_npy(ctx, path, hess_tensor_new(ctx, 2, shape, m));
    case W_NPY_ARRAY:
        return hess_save_npy_array(ctx, path, 2, shape, m);
    case W_REF:
        nt.tensor = hess_tensor_new(ctx, 2, shape, m);
        return hess_save_ref(ctx, path, &f);
    case W_SVG:
        return hess_write_svg_heatmap(ctx, path, (size_t)side, m, 0, NULL, NULL, "t");
    default: { /* the matrix's rows as curves against their column index */
        static double col[48];
        hess_series rows[48];
        for (int64_t i = 0; i < side; i++) {
            col[i] = (double)i;
            rows[i] = (hess_series){"row", (size_t)side, col, m + i * side};
        }
        return hess_write_svg_lines(ctx, path, "t", "column", "value", (size_t)side, rows);
    }
    }
}

/* dir/name into buf. */
static const char *join(char buf[256], const char *dir, const char *name)
{
    const int n = snprintf(buf, 256, "%s/%s", dir, name);
    assert_true(n > 0 && n < 256);
    return buf;
}

/* A new empty directory for one test, in the working directory. */
static void make_scratch(char dir[32])
{
    snprintf(dir, 32, "test_io_tmp_XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void remove_scratch(const char *dir)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The names in dir, sorted, one per line (malloc'ed): a save must leave no
 * temporary file behind. */
static char *list_dir(const char *dir)
{
    static char names[32][256];
    size_t n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            assert_true(n < 32);
            snprintf(names[n++], sizeof names[0], "%s", e->d_name);
        }
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_name);
    char *out = calloc(n + 1, sizeof names[0] + 1);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        strcat(out, names[i]);
        strcat(out, "\n");
    }
    return out;
}

static void expect_same_listing(const char *dir, const char *before)
{
    char *now = list_dir(dir);
    if (strcmp(now, before) != 0)
        fail_msg("%s holds\n%sbut held\n%s", dir, now, before);
    free(now);
}

/* Fails unless path is a symbolic link to target. */
static void expect_link(const char *path, const char *target)
{
    char buf[256];
    const ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0)
        fail_msg("%s is no longer a symbolic link (%s)", path, strerror(errno));
    buf[n] = '\0';
    assert_string_equal(buf, target);
}

/* A bound Unix socket at path; returns its descriptor. */
static int make_socket(const char *path)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    const int len = snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    assert_true(len > 0 && (size_t)len < sizeof a.sun_path);
    const int s = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(s >= 0);
    assert_int_equal(bind(s, (const struct sockaddr *)&a, sizeof a), 0);
    return s;
}

/* Checks the message of a failed save: "<function>: <path>: ..." and frag. */
static void expect_save_error(hess_context *ctx, int w, const char *path, const char *frag)
{
    char head[300];
    snprintf(head, sizeof head, "%s: %s: ", WRITER_FN[w], path);
    expect_error(ctx, HESS_ERR_IO, head, frag);
}

/* A target that exists and is not a regular file (a directory, a device, a
 * FIFO, a socket, or a symbolic link to one) is refused by every writer with
 * HESS_ERR_IO, and left as it was: no device written to, no link removed. */
static void test_save_refuses_special_targets(void **state)
{
    hess_context *ctx = *state;
    char dir[32], p[256];
    make_scratch(dir);
    assert_int_equal(mkdir(join(p, dir, "subdir"), 0755), 0);
    assert_int_equal(symlink("/dev/null", join(p, dir, "to_null")), 0);
    assert_int_equal(symlink("/dev/full", join(p, dir, "to_full")), 0);
    assert_int_equal(symlink("subdir", join(p, dir, "to_dir")), 0);
    assert_int_equal(mkfifo(join(p, dir, "fifo"), 0644), 0);
    const int reader =
        open(p, O_RDONLY | O_NONBLOCK); /* so that opening it to write never blocks */
    assert_true(reader >= 0);
    const int sock = make_socket(join(p, dir, "sock"));
    struct stat null0, full0, st;
    assert_int_equal(stat("/dev/null", &null0), 0);
    assert_int_equal(stat("/dev/full", &full0), 0);
    char *before = list_dir(dir);
    static const char *const targets[] = {"subdir", "to_null", "to_full", "to_dir", "fifo", "sock"};
    static const char *const kinds[] = {"is a directory, not a regular file",
                                        "to a character device, not a regular file",
                                        "to a character device, not a regular file",
                                        "to a directory, not a regular file",
                                        "is a FIFO, not a regular file",
                                        "is a socket, not a regular file"};
    for (int w = 0; w < W_COUNT; w++)
        for (size_t k = 0; k < sizeof targets / sizeof targets[0]; k++) {
            join(p, dir, targets[k]);
            if (save_with(ctx, w, p, false) != HESS_ERR_IO)
                fail_msg("%s to %s: status %d (want HESS_ERR_IO), message \"%s\"", WRITER_FN[w], p,
                         (int)hess_context_status(ctx), hess_context_errmsg(ctx));
            expect_save_error(ctx, w, p, kinds[k]);
        }
    expect_same_listing(dir, before);
    free(before);
    expect_link(join(p, dir, "to_null"), "/dev/null");
    expect_link(join(p, dir, "to_full"), "/dev/full");
    expect_link(join(p, dir, "to_dir"), "subdir");
    assert_int_equal(stat("/dev/null", &st), 0);
    assert_true(S_ISCHR(st.st_mode) && st.st_rdev == null0.st_rdev);
    assert_int_equal(stat("/dev/full", &st), 0);
    assert_true(S_ISCHR(st.st_mode) && st.st_rdev == full0.st_rdev);
    assert_int_equal(lstat(join(p, dir, "fifo"), &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    char byte;
    assert_int_equal(read(reader, &byte, 1), 0); /* nothing was written into the FIFO */
    assert_int_equal(lstat(join(p, dir, "subdir"), &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    close(reader);
    close(sock);
    remove_scratch(dir);
}

/* A save that fails while writing (here the file size limit, which holds for
 * root too) leaves the old file byte for byte, with its permissions, and no
 * temporary file. */
static void test_save_failure_keeps_old_file(void **state)
{
    hess_context *ctx = *state;
    char dir[32], p[256];
    make_scratch(dir);
    join(p, dir, "old");
    static const char old[] = "the old contents\n";
    struct rlimit lim0, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &lim0), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN); /* EFBIG rather than the signal */
    for (int wb = 0; wb < 2 * W_COUNT; wb++) {
        /* big: the writer's own writes fail; small: the last flush does */
        const int w = wb % W_COUNT;
        const bool big = wb < W_COUNT;
        write_bytes(p, old, sizeof old - 1);
        assert_int_equal(chmod(p, 0640), 0);
        char *before = list_dir(dir);
        lim = lim0;
        lim.rlim_cur = big ? 4096 : 10;
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        const hess_status st = save_with(ctx, w, p, big);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim0), 0);
        if (st != HESS_ERR_IO)
            fail_msg("%s: status %d (want HESS_ERR_IO)", WRITER_FN[w], (int)st);
        expect_save_error(ctx, w, p, strerror(EFBIG));
        struct stat sb;
        if (stat(p, &sb) != 0)
            fail_msg("%s removed %s after a failed write", WRITER_FN[w], p);
        assert_int_equal(sb.st_mode & 07777, 0640);
        size_t len;
        char *now = read_all(p, &len);
        assert_int_equal(len, sizeof old - 1);
        assert_memory_equal(now, old, len);
        free(now);
        expect_same_listing(dir, before);
        free(before);
    }
    signal(SIGXFSZ, prev);
    remove_scratch(dir);
}

/* The new file replaces the old one in one step (rename): a reader that has
 * the old file open goes on reading the old bytes, never a half-written or
 * truncated file. */
static void test_save_replaces_in_one_step(void **state)
{
    hess_context *ctx = *state;
    char dir[32], p[256];
    make_scratch(dir);
    join(p, dir, "f");
    static const char old[] = "the old contents\n";
    for (int w = 0; w < W_COUNT; w++) {
        write_bytes(p, old, sizeof old - 1);
        char *before = list_dir(dir);
        const int fd = open(p, O_RDONLY);
        assert_true(fd >= 0);
        assert_ok(ctx, save_with(ctx, w, p, false));
        char buf[64];
        const ssize_t n = read(fd, buf, sizeof buf);
        close(fd);
        if (n != (ssize_t)(sizeof old - 1) || memcmp(buf, old, sizeof old - 1) != 0)
            fail_msg("%s: a reader of the old file saw it change", WRITER_FN[w]);
        char *now = read_all(p, NULL);
        assert_memory_equal(now, WRITER_MAGIC[w], strlen(WRITER_MAGIC[w]));
        free(now);
        expect_same_listing(dir, before);
        free(before);
    }
    remove_scratch(dir);
}

/* Through a symbolic link to a regular file, the file it points to is
 * replaced and the link kept; a replaced file keeps its permission bits; a
 * new file gets 0666 less the umask; a link to nothing is refused. */
static void test_save_links_and_modes(void **state)
{
    hess_context *ctx = *state;
    char dir[32], sub[256], p[256], q[256];
    make_scratch(dir);
    assert_int_equal(mkdir(join(sub, dir, "real"), 0755), 0);
    assert_int_equal(symlink("real/target", join(p, dir, "link")), 0);
    assert_int_equal(symlink("gone", join(p, dir, "dangling")), 0);
    const mode_t mask = umask(022);
    umask(mask);
    for (int w = 0; w < W_COUNT; w++) {
        write_bytes(join(q, sub, "target"), "old", 3);
        assert_int_equal(chmod(q, 0604), 0);
        write_bytes(join(q, dir, "plain"), "old", 3);
        assert_int_equal(chmod(q, 0600), 0);
        char *top = list_dir(dir), *inner = list_dir(sub);

        assert_ok(ctx, save_with(ctx, w, join(p, dir, "link"), false));
        expect_link(p, "real/target");
        char *now = read_all(join(q, sub, "target"), NULL);
        assert_memory_equal(now, WRITER_MAGIC[w], strlen(WRITER_MAGIC[w]));
        free(now);
        struct stat st;
        assert_int_equal(stat(q, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0604);

        assert_ok(ctx, save_with(ctx, w, join(p, dir, "plain"), false));
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        expect_same_listing(dir, top);
        expect_same_listing(sub, inner);
        free(top);
        free(inner);

        assert_ok(ctx, save_with(ctx, w, join(p, sub, "new"), false));
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0666 & ~mask);
        assert_int_equal(unlink(p), 0);

        assert_int_equal(save_with(ctx, w, join(p, dir, "dangling"), false), HESS_ERR_IO);
        expect_save_error(ctx, w, p, "a symbolic link to nothing");
        expect_link(p, "gone");
        assert_int_equal(access(join(q, dir, "gone"), F_OK), -1);

        /* an empty path names no file: refused before any temporary file */
        assert_int_equal(save_with(ctx, w, "", false), HESS_ERR_IO);
        expect_save_error(ctx, w, "", "cannot save there (No such file or directory)");
    }
    remove_scratch(dir);
}

/* ------------------------------------------------------------------------ */
/* Saving: the system calls after the writing fail                          */
/* ------------------------------------------------------------------------ */

/* This program's own open, fsync, fchmod and rename, which the library's
 * calls reach (it is linked into this program statically, and a program's
 * own definitions come before the C library's).  Each fails once when its
 * fault is armed, with the fault's errno (0 too: a failure that says not
 * why); open refuses the next eexist_opens exclusive creations with EEXIST,
 * as when the name exists.  Otherwise each makes the system call. */
typedef struct fault {
    int armed, err;
} fault;
static fault fail_fsync, fail_fchmod, fail_rename;
static int eexist_opens;

static bool fire(fault *f)
{
    if (!f->armed)
        return false;
    f->armed = 0;
    errno = f->err;
    return true;
}

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if ((flags & O_EXCL) && eexist_opens > 0) {
        eexist_opens--;
        errno = EEXIST;
        return -1;
    }
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

int fsync(int fd)
{
    return fire(&fail_fsync) ? -1 : (int)syscall(SYS_fsync, fd);
}

int fchmod(int fd, mode_t mode)
{
    return fire(&fail_fchmod) ? -1 : (int)syscall(SYS_fchmod, fd, mode);
}

int rename(const char *from, const char *to)
{
    return fire(&fail_rename) ? -1 : renameat(AT_FDCWD, from, AT_FDCWD, to);
}

/* A save whose data is written but whose fsync, permission bits or rename
 * fails: HESS_ERR_IO saying which step and why, the old file as it was (or
 * no file), no temporary file left. */
static void test_save_late_failures(void **state)
{
    hess_context *ctx = *state;
    char dir[32], p[256], q[256], frag[200];
    make_scratch(dir);
    join(p, dir, "old");
    join(q, dir, "new");
    static const struct {
        fault *fail;
        int err;
        bool replace; /* only when a file is replaced */
        const char *what;
    } steps[] = {
        {&fail_fsync, EIO, false, "cannot flush the file to disk"},
        {&fail_fsync, 0, false, "cannot flush the file to disk"},
        {&fail_fchmod, EPERM, true, "cannot give the new file the old one's permissions"},
        {&fail_rename, EBUSY, false, "cannot rename the temporary file over it"},
    };
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++)
        for (int w = 0; w < W_COUNT; w++)
            for (int replace = 0; replace < 2; replace++) {
                if (steps[k].replace && !replace)
                    continue;
                write_bytes(p, "old", 3);
                assert_int_equal(chmod(p, 0604), 0);
                char *before = list_dir(dir);
                const char *target = replace ? p : q;
                *steps[k].fail = (fault){1, steps[k].err};
                const hess_status st = save_with(ctx, w, target, false);
                const int left = steps[k].fail->armed;
                steps[k].fail->armed = 0;
                assert_int_equal(left, 0); /* the step was reached */
                assert_int_equal(st, HESS_ERR_IO);
                snprintf(frag, sizeof frag, "%s (%s); %s", steps[k].what,
                         steps[k].err ? strerror(steps[k].err) : "unknown error",
                         replace ? "the file is unchanged" : "no file made");
                expect_save_error(ctx, w, target, frag);
                expect_same_listing(dir, before);
                free(before);
                char *now = read_all(p, NULL);
                assert_string_equal(now, "old");
                free(now);
                struct stat sb;
                assert_int_equal(stat(p, &sb), 0);
                assert_int_equal(sb.st_mode & 07777, 0604);
            }
    /* temporary names that exist are skipped, 64 of them at most */
    for (int w = 0; w < W_COUNT; w++) {
        char *before = list_dir(dir);
        eexist_opens = 3;
        assert_ok(ctx, save_with(ctx, w, p, false));
        assert_int_equal(eexist_opens, 0);
        char *now = read_all(p, NULL);
        assert_memory_equal(now, WRITER_MAGIC[w], strlen(WRITER_MAGIC[w]));
        free(now);
        expect_same_listing(dir, before);
        write_bytes(p, "old", 3);
        eexist_opens = 65;
        assert_int_equal(save_with(ctx, w, p, false), HESS_ERR_IO);
        assert_int_equal(eexist_opens, 1); /* 64 names tried */
        eexist_opens = 0;
        snprintf(frag, sizeof frag,
                 "cannot create a temporary file beside it (%s); the file is unchanged",
                 strerror(EEXIST));
        expect_save_error(ctx, w, p, frag);
        expect_same_listing(dir, before);
        free(before);
        now = read_all(p, NULL);
        assert_string_equal(now, "old");
        free(now);
    }
    /* and with nothing failing, the same saves go through */
    for (int w = 0; w < W_COUNT; w++) {
        assert_ok(ctx, save_with(ctx, w, p, false));
        assert_ok(ctx, save_with(ctx, w, q, false));
    }
    remove_scratch(dir);
}

/* ------------------------------------------------------------------------ */
/* Readers: inputs whose size the system does not know, bits of NaNs        */
/* ------------------------------------------------------------------------ */

/* A context that may hold 64 MiB: a reader that trusted a shape over the
 * bytes present would run into the limit (HESS_ERR_NOMEM) instead of
 * reporting the file (HESS_ERR_IO). */
static hess_context *limited_context(void)
{
    hess_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_bytes = (size_t)64 << 20;
    hess_context *ctx = NULL;
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    return ctx;
}

/* A reference text whose only tensor claims 20000 x 20000 values (3.2 GB). */
static const char HUGE_REF[] = "# libhessian reference case v1\ntensor a 2 20000 20000\n1\n";

/* A /proc file reads as size 0: /proc/<pid>/cmdline of a child whose argv[0]
 * is HUGE_REF.  The reader must bound the shape by the bytes it can actually
 * read, not by the size the system reports. */
static void test_ref_proc_file(void **state)
{
    (void)state;
    hess_context *ctx = limited_context();
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sleep", HUGE_REF, "30", (char *)NULL);
        _exit(127);
    }
    char path[64], buf[64] = "";
    snprintf(path, sizeof path, "/proc/%ld/cmdline", (long)pid);
    for (int i = 0; i < 500 && strncmp(buf, "# libhessian", 12) != 0; i++) {
        nanosleep(&(struct timespec){0, 10000000}, NULL); /* until the child has run exec */
        FILE *f = fopen(path, "rb");
        const size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        buf[n] = '\0';
        if (f)
            fclose(f);
    }
    hess_ref_file out;
    const hess_status st = hess_load_ref(ctx, path, NULL, &out);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_string_equal(buf, "# libhessian reference case v1\ntensor a 2 20000 20000\n1\n");
    assert_int_equal(st, HESS_ERR_IO);
    expect_error(ctx, HESS_ERR_IO, "byte 54 (line 3): tensor 'a': the shape needs more values",
                 path);
    assert_true(hess_context_bytes(ctx) < (size_t)1 << 20);
    /* and a /proc file that is no reference file is just that */
    assert_int_equal(hess_load_ref(ctx, "/proc/self/status", NULL, &out), HESS_ERR_IO);
    expect_error(ctx, HESS_ERR_IO, "hess_load_ref: /proc/self/status: byte 0 (line 1): bad header",
                 NULL);
    assert_null(hess_load_npy(ctx, "/proc/self/status", 0));
    expect_error(ctx, HESS_ERR_IO, "hess_load_npy: /proc/self/status: byte 0: bad magic", NULL);
    hess_context_destroy(ctx);
}

/* Writes len bytes of buf into the FIFO path from a child process; returns
 * its pid. */
static pid_t fifo_writer(const char *path, const void *buf, size_t len)
{
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const int fd = open(path, O_WRONLY);
        const bool ok = fd >= 0 && write(fd, buf, len) == (ssize_t)len;
        _exit(ok && close(fd) == 0 ? 0 : 1);
    }
    return pid;
}

static void reap(pid_t pid)
{
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
}

/* A FIFO (a pipe) cannot seek and has no size: both readers read it, and a
 * shape that the bytes which came through cannot fill is refused. */
static void test_read_fifo(void **state)
{
    (void)state;
    hess_context *ctx = limited_context();
    char dir[32], p[256];
    make_scratch(dir);
    join(p, dir, "fifo");
    assert_int_equal(mkfifo(p, 0600), 0);

    static const char text[] = "# libhessian reference case v1\ncase c\ntensor param:w 1 3\n"
                               "1 -0 nan:0x7ff0000000000001\n";
    pid_t pid = fifo_writer(p, text, sizeof text - 1);
    hess_ref_file out;
    assert_ok(ctx, hess_load_ref(ctx, p, "param:", &out));
    reap(pid);
    assert_int_equal(out.n, 1);
    assert_string_equal(out.case_name, "c");
    const double *w = hess_tensor_data(out.tensors[0].tensor);
    uint64_t bits;
    memcpy(&bits, &w[2], sizeof bits);
    assert_true(w[0] == 1.0 && w[1] == 0.0 && signbit(w[1]) && bits == 0x7ff0000000000001u);

    pid = fifo_writer(p, HUGE_REF, sizeof HUGE_REF - 1);
    assert_int_equal(hess_load_ref(ctx, p, NULL, &out), HESS_ERR_IO);
    reap(pid);
    expect_error(ctx, HESS_ERR_IO, "byte 54 (line 3): tensor 'a': the shape needs more values", p);

    unsigned char npy[176];
    memcpy(npy, NPY_2x3_HEADER, 128);
    memcpy(npy + 128, NPY_2x3_DATA, 48);
    pid = fifo_writer(p, npy, sizeof npy);
    hess_tensor *t = hess_load_npy(ctx, p, 0);
    reap(pid);
    assert_non_null(t);
    assert_int_equal(hess_tensor_numel(t), 6);
    assert_close(hess_tensor_data(t)[5], 6.0, 0, 0);

    static const char huge[] =
        "{'descr': '<f8', 'fortran_order': False, 'shape': (20000, 20000), }";
    memcpy(npy + 10, huge, sizeof huge - 1);
    pid = fifo_writer(p, npy, sizeof npy);
    assert_null(hess_load_npy(ctx, p, 0));
    reap(pid);
    expect_error(ctx, HESS_ERR_IO, "byte 128: truncated data", p);
    assert_true(hess_context_bytes(ctx) < (size_t)1 << 20);
    remove_scratch(dir);
    hess_context_destroy(ctx);
}

/* Bit patterns a save and a load must keep: the quiet NaNs x86 and ARM make,
 * signalling NaNs, NaNs with payloads and either sign, signed zeros,
 * infinities, the extremes. */
static const uint64_t KEEP_BITS[] = {
    0x7ff8000000000000u, 0xfff8000000000000u, 0x7ff0000000000001u, 0xfff0000000000001u,
    0x7ff4000000000000u, 0x7ff8000000000001u, 0x7fffffffffffffffu, 0xffffffffffffffffu,
    0x0000000000000000u, 0x8000000000000000u, 0x7ff0000000000000u, 0xfff0000000000000u,
    0x0000000000000001u, 0x800fffffffffffffu, 0x7fefffffffffffffu, 0x3fb999999999999au,
};
#define N_KEEP (sizeof KEEP_BITS / sizeof KEEP_BITS[0])

static void test_special_values_keep_their_bits(void **state)
{
    hess_context *ctx = *state;
    double v[N_KEEP];
    memcpy(v, KEEP_BITS, sizeof v);
    const int64_t shape[1] = {(int64_t)N_KEEP};
    hess_tensor *t = hess_tensor_new(ctx, 1, shape, v);
    assert_non_null(t);
    assert_memory_equal(hess_tensor_data(t), KEEP_BITS, sizeof KEEP_BITS);

    const char *npy = "test_io_tmp_bits.npy", *ref = "test_io_tmp_bits.ref";
    assert_ok(ctx, hess_save_npy(ctx, npy, t));
    hess_tensor *u = hess_load_npy(ctx, npy, 0);
    assert_non_null(u);
    assert_memory_equal(hess_tensor_data(u), KEEP_BITS, sizeof KEEP_BITS);
    assert_ok(ctx, hess_save_npy_array(ctx, npy, 1, shape, v));
    u = hess_load_npy(ctx, npy, 0);
    assert_non_null(u);
    assert_memory_equal(hess_tensor_data(u), KEEP_BITS, sizeof KEEP_BITS);

    const hess_named_tensor nt = {"bits", t};
    const hess_ref_file f = {NULL, NULL, 1, &nt};
    assert_ok(ctx, hess_save_ref(ctx, ref, &f));
    char *text = read_all(ref, NULL);
    assert_non_null(strstr(text, "\nnan -nan nan:0x7ff0000000000001 nan:0xfff0000000000001 "
                                 "nan:0x7ff4000000000000 nan:0x7ff8000000000001 "
                                 "nan:0x7fffffffffffffff nan:0xffffffffffffffff 0 -0 inf -inf "));
    free(text);
    hess_ref_file g;
    assert_ok(ctx, hess_load_ref(ctx, ref, NULL, &g));
    assert_memory_equal(hess_tensor_data(g.tensors[0].tensor), KEEP_BITS, sizeof KEEP_BITS);
    remove(npy);
    remove(ref);
}

/* The files of tests/data read as the tests' own reader reads them, bit for
 * bit. */
static void test_ref_data_files_unchanged(void **state)
{
    hess_context *ctx = *state;
    static const char *const files[] = {"seed_ann.ref", "seed_ann_sigmoid.ref",
                                        "mlp_tanh_mse_batch.ref"};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        hess_ref_file f;
        assert_ok(ctx, hess_load_ref(ctx, data_path(files[k]), "param:", &f));
        ref_case rc;
        char err[256];
        if (ref_load(data_path(files[k]), &rc, err, sizeof err) != 0)
            fail_msg("%s", err);
        assert_int_equal(f.n, rc.n);
        for (size_t i = 0; i < rc.n; i++) {
            assert_string_equal(f.tensors[i].name, rc.t[i].name);
            assert_int_equal(hess_tensor_numel(f.tensors[i].tensor), rc.t[i].numel);
            assert_memory_equal(hess_tensor_data(f.tensors[i].tensor), rc.t[i].data,
                                (size_t)rc.t[i].numel * sizeof(double));
        }
        ref_free(&rc);
    }
}

/* ------------------------------------------------------------------------ */
/* IDX files (hess_load_idx)                                                */
/* ------------------------------------------------------------------------ */

/* The memory entry point of src/io/idx.c (internal, declared in io.h). */
hess_tensor *
hess__idx_load_mem(hess_context *ctx, const void *buf, size_t len, const char *name, int as_param);

/* An IDX image in buf: magic 00 00 type rank, the dimensions big-endian, then
 * `data` bytes as given (already big-endian).  Returns its length. */
static size_t idx_image(unsigned char *buf,
                        unsigned char type,
                        int ndim,
                        const uint32_t *dims,
                        const void *data,
                        size_t data_len)
{
    size_t n = 0;
    buf[n++] = 0;
    buf[n++] = 0;
    buf[n++] = type;
    buf[n++] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++)
        for (int b = 3; b >= 0; b--)
            buf[n++] = (unsigned char)(dims[i] >> (8 * b));
    if (data_len)
        memcpy(buf + n, data, data_len);
    return n + data_len;
}

/* v as n big-endian bytes at b. */
static void put_be(unsigned char *b, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        b[i] = (unsigned char)v;
}

/* CRC-32 (gzip's), bit by bit: the test writes gzip files without zlib too. */
static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
    }
    return c ^ 0xffffffffu;
}

/* A gzip member holding data (n < 65536) in one stored deflate block, made by
 * hand: header, block, CRC-32 and length.  Returns its length. */
static size_t gzip_stored(unsigned char *out, const unsigned char *data, size_t n)
{
    static const unsigned char head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    size_t k = 0;
    memcpy(out, head, sizeof head);
    k += sizeof head;
    out[k++] = 1; /* final block, stored */
    out[k++] = (unsigned char)n;
    out[k++] = (unsigned char)(n >> 8);
    out[k++] = (unsigned char)~n;
    out[k++] = (unsigned char)(~n >> 8);
    memcpy(out + k, data, n);
    k += n;
    const uint32_t crc = crc32_of(data, n);
    for (int i = 0; i < 4; i++)
        out[k++] = (unsigned char)(crc >> (8 * i));
    for (int i = 0; i < 4; i++)
        out[k++] = (unsigned char)(n >> (8 * i));
    return k;
}

#ifdef HESSIAN_HAVE_ZLIB
#include <zlib.h>
/* The file path compressed by zlib (deflate at level 9 in a gzip wrapper). */
static void write_gzip(const char *path, const void *buf, size_t len)
{
    gzFile g = gzopen(path, "wb9");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, buf, (unsigned)len), (int)len);
    assert_int_equal(gzclose(g), Z_OK);
}
#endif

/* One of each element type, read back exactly. */
static void test_idx_types(void **state)
{
    hess_context *ctx = *state;
    const char *path = "test_io_tmp_types.idx";
    unsigned char data[64], img[128];
    const uint32_t dims[2] = {2, 3};
    /* unsigned and signed bytes: 0, 1, 127, 128, 254, 255 */
    static const unsigned char bytes[6] = {0, 1, 127, 128, 254, 255};
    static const double u8[6] = {0, 1, 127, 128, 254, 255}, s8[6] = {0, 1, 127, -128, -2, -1};
    /* int16, int32, float32, float64 */
    static const int16_t i16[6] = {0, 1, -1, 32767, -32768, 1234};
    static const int32_t i32[6] = {0, 1, -1, 2147483647, -2147483647 - 1, 123456789};
    static const float f32[6] = {0.0f, -0.0f, 1.5f, -3.25e-3f, 3.0e38f, 1e-40f};
    static const double f64[6] = {0.0, -0.0, 0.1, -1e-310, DBL_MAX, -1.0 / 3.0};
    for (int type = 0; type < 6; type++) {
        unsigned char code = 0;
        size_t size = 0;
        double want[6];
        for (int i = 0; i < 6; i++) {
            uint32_t u32;
            uint64_t u64;
            switch (type) {
            case 0:
            case 1:
                code = type == 0 ? 0x08 : 0x09, size = 1;
                data[i] = bytes[i];
                want[i] = type == 0 ? u8[i] : s8[i];
                break;
            case 2:
                code = 0x0B, size = 2;
                put_be(data + 2 * i, (uint16_t)i16[i], 2);
                want[i] = i16[i];
                break;
            case 3:
                code = 0x0C, size = 4;
                put_be(data + 4 * i, (uint32_t)i32[i], 4);
                want[i] = i32[i];
                break;
            case 4:
                code = 0x0D, size = 4;
                memcpy(&u32, &f32[i], 4);
                put_be(data + 4 * i, u32, 4);
                want[i] = f32[i];
                break;
            default:
                code = 0x0E, size = 8;
                memcpy(&u64, &f64[i], 8);
                put_be(data + 8 * i, u64, 8);
                want[i] = f64[i];
                break;
            }
        }
        write_bytes(path, img, idx_image(img, code, 2, dims, data, 6 * size));
        for (int as_param = 0; as_param < 2; as_param++) {
            hess_tensor *t = hess_load_idx(ctx, path, as_param);
            assert_ok(ctx, hess_context_status(ctx));
            assert_int_equal(hess_tensor_ndim(t), 2);
            assert_int_equal(hess_tensor_shape(t)[0], 2);
            assert_int_equal(hess_tensor_shape(t)[1], 3);
            assert_int_equal(hess_tensor_is_param(t), as_param);
            assert_memory_equal(hess_tensor_data(t), want, sizeof want); /* -0.0 too */
        }
    }
    remove(path);
}

/* Ranks 1 to HESS_MAX_DIMS, plain and compressed (by hand, and by zlib when
 * the library has it), read from a file and from a pipe. */
static void test_idx_ranks_and_gzip(void **state)
{
    hess_context *ctx = *state;
    const char *path = "test_io_tmp_rank.idx", *gz = "test_io_tmp_rank.idx.gz";
    unsigned char data[720], img[800], zipped[1000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 11);
    static const uint32_t dims[HESS_MAX_DIMS] = {3, 2, 5, 1, 4, 6};
    for (int nd = 1; nd <= HESS_MAX_DIMS; nd++) {
        size_t numel = 1;
        for (int i = 0; i < nd; i++)
            numel *= dims[i];
        const size_t len = idx_image(img, 0x08, nd, dims, data, numel);
        write_bytes(path, img, len);
        write_bytes(gz, zipped, gzip_stored(zipped, img, len));
        for (int k = 0; k < 2; k++) {
            const char *file = k ? gz : path;
            hess_tensor *t = hess_load_idx(ctx, file, 0);
#ifndef HESSIAN_HAVE_ZLIB
            if (k) {
                assert_null(t);
                expect_error(ctx, HESS_ERR_IO, "hess_load_idx: test_io_tmp_rank.idx.gz: byte 0",
                             "built without zlib");
                continue;
            }
#endif
            assert_ok(ctx, hess_context_status(ctx));
            assert_int_equal(hess_tensor_ndim(t), nd);
            for (int i = 0; i < nd; i++)
                assert_int_equal(hess_tensor_shape(t)[i], dims[i]);
            for (size_t i = 0; i < numel; i++)
                assert_true(hess_tensor_data(t)[i] == data[i]);
        }
    }
#ifdef HESSIAN_HAVE_ZLIB
    /* compressed by zlib; two gzip members read as one stream; from a pipe */
    const uint32_t big[2] = {30, 24};
    const size_t len = idx_image(img, 0x08, 2, big, data, 720);
    write_gzip(gz, img, len);
    hess_tensor *t = hess_load_idx(ctx, gz, 1);
    assert_ok(ctx, hess_context_status(ctx));
    assert_int_equal(hess_tensor_numel(t), 720);
    assert_true(hess_tensor_is_param(t));
    for (size_t i = 0; i < 720; i++)
        assert_true(hess_tensor_data(t)[i] == data[i]);
    const size_t half = 300;
    size_t n1 = gzip_stored(zipped, img, half);
    n1 += gzip_stored(zipped + n1, img + half, len - half);
    write_bytes(gz, zipped, n1);
    t = hess_load_idx(ctx, gz, 0);
    assert_ok(ctx, hess_context_status(ctx));
    assert_int_equal(hess_tensor_numel(t), 720);
    assert_true(hess_tensor_data(t)[719] == data[719]);
    int fd[2]; /* a pipe, which cannot seek: read whole into memory first */
    assert_int_equal(pipe(fd), 0);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        const ssize_t w = write(fd[1], zipped, n1);
        _exit(w == (ssize_t)n1 ? 0 : 1);
    }
    close(fd[1]);
    char dev[64];
    snprintf(dev, sizeof dev, "/dev/fd/%d", fd[0]);
    t = hess_load_idx(ctx, dev, 0);
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_ok(ctx, hess_context_status(ctx));
    assert_int_equal(hess_tensor_numel(t), 720);
    assert_true(hess_tensor_data(t)[5] == data[5]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
#endif
    remove(path);
    remove(gz);
}

/* A malformed IDX image: what it is, its bytes, and what the message says. */
typedef struct bad_idx {
    const char *what;
    unsigned char bytes[40];
    size_t len;
    const char *frag; /* "byte N: problem" */
} bad_idx;

static const bad_idx BAD_IDX[] = {
    {"empty", {0}, 0, "byte 0: truncated header (0 of the 4 magic bytes)"},
    {"first byte", {1, 0, 8, 1, 0, 0, 0, 1, 7}, 9, "byte 0: bad magic"},
    {"second byte", {0, 2, 8, 1, 0, 0, 0, 1, 7}, 9, "byte 1: bad magic"},
    {"half gzip magic", {0x1f, 0, 8, 1, 0, 0, 0, 1, 7}, 9, "byte 0: bad magic"},
    {"short magic", {0, 0, 8}, 3, "byte 3: truncated header (3 of the 4"},
    {"unknown type", {0, 0, 0x0A, 1, 0, 0, 0, 1, 7}, 9, "byte 2: unknown element type 0x0a"},
    {"rank 0", {0, 0, 8, 0, 7}, 5, "byte 3: rank 0 is outside 1..6"},
    {"rank 7", {0, 0, 8, 7}, 4, "byte 3: rank 7 is outside 1..6"},
    {"missing dimension",
     {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1},
     12,
     "byte 12: truncated header (3 dimensions announced, 2 found)"},
    {"partial dimension",
     {0, 0, 8, 2, 0, 0, 0, 1, 0, 0},
     10,
     "byte 10: truncated header (2 dimensions announced, 1 found)"},
    {"zero dimension",
     {0, 0, 8, 2, 0, 0, 0, 1, 0, 0, 0, 0},
     12,
     "byte 8: dimension 1 is 0 (empty arrays"},
    {"absurd shape",
     {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
     16,
     "byte 4: the dimensions multiply to more elements than fit"},
    /* 4 G elements announced, 3 bytes present: refused before any allocation */
    {"hostile shape",
     {0, 0, 8, 1, 0xff, 0xff, 0xff, 0xff, 1, 2, 3},
     11,
     "byte 8: truncated data (the shape [4294967295] of unsigned byte needs 4294967295 bytes"},
    {"truncated data",
     {0, 0, 0x0B, 1, 0, 0, 0, 3, 0, 1, 0, 2, 0},
     13,
     "byte 8: truncated data (the shape [3] of short (int16) needs 6 bytes"},
    {"trailing byte",
     {0, 0, 8, 1, 0, 0, 0, 2, 5, 6, 7},
     11,
     "byte 10: trailing bytes after the data (the shape [2] of unsigned byte needs 2)"},
};

/* Every malformed image, plain and compressed: HESS_ERR_IO, the file, the
 * offset and the problem in the message, nothing left in a context whose
 * byte limit is far below what a hostile header announces. */
static void test_idx_malformed(void **state)
{
    (void)state;
    hess_config cfg = {0};
    cfg.max_bytes = 1 << 20;
    hess_context *ctx = NULL;
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    const char *path = "test_io_tmp_bad.idx", *gz = "test_io_tmp_bad.idx.gz";
    for (size_t k = 0; k < sizeof BAD_IDX / sizeof BAD_IDX[0]; k++) {
        const bad_idx *b = &BAD_IDX[k];
        unsigned char zipped[128];
        write_bytes(path, b->bytes, b->len);
        write_bytes(gz, zipped, gzip_stored(zipped, b->bytes, b->len));
        const size_t zlen = gzip_stored(zipped, b->bytes, b->len);
        /* z: plain, compressed; mem: the file, or its bytes from memory */
        for (int zm = 0; zm < 4; zm++) {
            const int z = zm & 1, mem = zm >> 1;
            const char *name = mem ? "memory-image" : z ? gz : path;
            const hess_mark before = hess_context_mark(ctx);
            const size_t bytes = hess_context_bytes(ctx);
            hess_tensor *t =
                mem ? hess__idx_load_mem(ctx, z ? zipped : b->bytes, z ? zlen : b->len, name, z)
                    : hess_load_idx(ctx, name, z);
            if (t != NULL)
                fail_msg("case '%s'%s was accepted", b->what, z ? " (gzip)" : "");
#ifdef HESSIAN_HAVE_ZLIB
            /* compressed, the offset is the decompressed data's, and said so */
            char frag[200];
            const char *colon = strchr(b->frag, ':');
            snprintf(frag, sizeof frag, "%.*s: %s%s", (int)(colon - b->frag), b->frag,
                     z ? "(decompressed) " : "", colon + 2);
            expect_error(ctx, HESS_ERR_IO, name, frag);
#else
            expect_error(ctx, HESS_ERR_IO, name, z ? "built without zlib" : b->frag);
#endif
            assert_true(same_mark(before, hess_context_mark(ctx)));
            assert_true(hess_context_bytes(ctx) == bytes);
        }
    }
    remove(path);
    remove(gz);
    hess_context_destroy(ctx);
}

/* What can go wrong in the gzip layer: a truncated stream, a corrupt block,
 * a wrong CRC or length, trailing bytes that are no gzip member. */
static void test_idx_gzip_corrupt(void **state)
{
    hess_context *ctx = *state;
    const char *gz = "test_io_tmp_corrupt.idx.gz";
    unsigned char img[64], zipped[128], bad[160];
    const uint32_t dims[1] = {20};
    unsigned char data[20];
    for (int i = 0; i < 20; i++)
        data[i] = (unsigned char)(3 * i);
    const size_t len = idx_image(img, 0x08, 1, dims, data, 20);
    const size_t n = gzip_stored(zipped, img, len); /* 10 + 5 + 28 + 8 bytes */
    struct {
        const char *what;
        size_t cut;   /* keep this many bytes (0: all) */
        size_t flip;  /* flip this byte (0: none) */
        size_t extra; /* append this many junk bytes */
        const char *frag;
    } cases[] = {
        {"truncated stream", 20, 0, 0, "byte 20: truncated gzip stream"},
        {"truncated trailer", n - 3, 0, 0, "truncated gzip stream"},
        {"block type", 0, 10, 0, "corrupt gzip stream (zlib: invalid block type)"},
        {"stored length", 0, 12, 0, "corrupt gzip stream (zlib: invalid stored block lengths)"},
        {"crc", 0, n - 6, 0, "corrupt gzip stream (zlib: incorrect data check)"},
        {"length", 0, n - 2, 0, "corrupt gzip stream (zlib: incorrect length check)"},
        {"junk after", 0, 0, 5, "trailing bytes after the gzip stream, not a gzip member"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t m = cases[k].cut ? cases[k].cut : n;
        memcpy(bad, zipped, m);
        if (cases[k].flip)
            bad[cases[k].flip] ^= cases[k].flip == 10 ? 0x06 : 0x40;
        for (size_t j = 0; j < cases[k].extra; j++)
            bad[m++] = (unsigned char)('a' + j);
        write_bytes(gz, bad, m);
        const hess_mark before = hess_context_mark(ctx);
        if (hess_load_idx(ctx, gz, 0) != NULL)
            fail_msg("case '%s' was accepted", cases[k].what);
#ifdef HESSIAN_HAVE_ZLIB
        expect_error(ctx, HESS_ERR_IO, "hess_load_idx: test_io_tmp_corrupt.idx.gz: byte ",
                     cases[k].frag);
#else
        expect_error(ctx, HESS_ERR_IO, gz, "built without zlib");
#endif
        assert_true(same_mark(before, hess_context_mark(ctx)));
    }
    remove(gz);
}

/* A pending error: the file is read (as hess_load_npy reads) and the first
 * error stays; a failure then does not replace it.  A byte limit
 * the tensor (or, compressed, the decompressor) does not fit in: NOMEM,
 * nothing left.  And a good image from memory. */
static void test_idx_pending_and_limits(void **state)
{
    (void)state;
    const char *path = "test_io_tmp_limit.idx", *gz = "test_io_tmp_limit.idx.gz";
    static unsigned char data[10000], img[10100];
    static unsigned char zipped[10200];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i % 251);
    const uint32_t dims[2] = {100, 100};
    const size_t len = idx_image(img, 0x08, 2, dims, data, sizeof data);
    const size_t zlen = gzip_stored(zipped, img, len);
    write_bytes(path, img, len);
    write_bytes(gz, zipped, zlen);

    hess_context *ctx = test_context();
    const int64_t two[1] = {2};
    hess_tensor *a = hess_tensor_new(ctx, 1, two, NULL);
    assert_null(hess_matmul(ctx, a, hess_tensor_new(ctx, 1, (const int64_t[]){3}, NULL)));
    const hess_status pending = hess_context_status(ctx);
    for (int z = 0; z < 2; z++) { /* as hess_load_npy: read, and the first error kept */
        hess_tensor *u = hess_load_idx(ctx, z ? gz : path, 0);
        assert_int_equal(hess_context_status(ctx), pending);
        assert_null(strstr(hess_context_errmsg(ctx), "hess_load_idx"));
        hess_tensor *v = hess_load_npy(ctx, "test_io_tmp_limit_none.npy", 0);
        assert_null(v);
        assert_int_equal(hess_context_status(ctx), pending);
#ifdef HESSIAN_HAVE_ZLIB
        assert_int_equal(hess_tensor_numel(u), 10000);
#else
        assert_true(z ? u == NULL : hess_tensor_numel(u) == 10000);
#endif
    }
    hess_context_clear_error(ctx);
#ifdef HESSIAN_HAVE_ZLIB
    hess_tensor *t = hess__idx_load_mem(ctx, zipped, zlen, "memory-image", 0);
    assert_ok(ctx, hess_context_status(ctx));
    assert_int_equal(hess_tensor_numel(t), 10000);
    assert_true(hess_tensor_data(t)[9999] == data[9999]);
#endif
    assert_null(hess__idx_load_mem(ctx, NULL, 1, "x", 0));
    expect_error(ctx, HESS_ERR_ARG, "hess_load_idx", "NULL buffer or name");
    assert_null(hess__idx_load_mem(ctx, img, len, NULL, 0));
    expect_error(ctx, HESS_ERR_ARG, "hess_load_idx", "NULL buffer or name");
    assert_null(hess__idx_load_mem(NULL, img, len, "x", 0));
    hess_context_destroy(ctx);

    hess_config cfg = {0};
    cfg.block_bytes = 4096;
    cfg.max_bytes = 1;
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_ERR_NOMEM);
    cfg.max_bytes = 40000; /* room for the context, not for 80 KB of doubles or zlib's 40 KiB */
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    for (int z = 0; z < 2; z++) {
        const hess_mark before = hess_context_mark(ctx);
        assert_null(hess_load_idx(ctx, z ? gz : path, 0));
#ifdef HESSIAN_HAVE_ZLIB
        expect_error(ctx, HESS_ERR_NOMEM, "hess_load_idx",
                     z ? "out of memory for the decompressor" : "out of memory");
#else /* a compressed file is refused before any allocation */
        expect_error(ctx, z ? HESS_ERR_IO : HESS_ERR_NOMEM, "hess_load_idx",
                     z ? "built without zlib" : "out of memory");
#endif
        assert_true(same_mark(before, hess_context_mark(ctx)));
    }
    hess_context_destroy(ctx);
#ifdef HESSIAN_HAVE_ZLIB
    /* a context at its byte limit exactly: no room for the decompressor */
    cfg.max_bytes = 0;
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    cfg.max_bytes = hess_context_bytes(ctx);
    hess_context_destroy(ctx);
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    assert_int_equal(hess_context_bytes(ctx), cfg.max_bytes);
    assert_null(hess_load_idx(ctx, gz, 0));
    expect_error(ctx, HESS_ERR_NOMEM, "hess_load_idx", "out of memory for the decompressor");
    hess_context_destroy(ctx);
#endif
    remove(path);
    remove(gz);
}

/* Two gzip members, the first ending exactly where a 16 KiB read of the input
 * ends: the reader must look for more input before taking it for the end. */
static void test_idx_gzip_member_at_boundary(void **state)
{
    hess_context *ctx = *state;
    static unsigned char img[20008], zipped[20100];
    const uint32_t dims[1] = {20000};
    static unsigned char data[20000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7 % 256);
    const size_t len = idx_image(img, 0x08, 1, dims, data, sizeof data);
    const size_t first = 16384 - 23; /* a stored member is its data plus 23 bytes */
    size_t n = gzip_stored(zipped, img, first);
    assert_int_equal(n, 16384);
    n += gzip_stored(zipped + n, img + first, len - first);
    const char *gz = "test_io_tmp_members.idx.gz";
    write_bytes(gz, zipped, n);
    for (int mem = 0; mem < 2; mem++) {
        hess_tensor *t =
            mem ? hess__idx_load_mem(ctx, zipped, n, "members", 0) : hess_load_idx(ctx, gz, 0);
#ifdef HESSIAN_HAVE_ZLIB
        assert_ok(ctx, hess_context_status(ctx));
        assert_int_equal(hess_tensor_numel(t), 20000);
        for (size_t i = 0; i < sizeof data; i++)
            assert_true(hess_tensor_data(t)[i] == data[i]);
#else
        assert_null(t);
        expect_error(ctx, HESS_ERR_IO, mem ? "members" : gz, "built without zlib");
#endif
    }
    remove(gz);
}

static void test_idx_arguments(void **state)
{
    hess_context *ctx = *state;
    assert_null(hess_load_idx(NULL, "x.idx", 0));
    assert_null(hess_load_idx(ctx, NULL, 0));
    expect_error(ctx, HESS_ERR_ARG, "hess_load_idx", "NULL path");
    assert_null(hess_load_idx(ctx, "test_io_tmp_no_such_file.idx", 0));
    expect_error(ctx, HESS_ERR_IO, "hess_load_idx: test_io_tmp_no_such_file.idx", "cannot open");
    assert_null(hess_load_idx(ctx, ".", 0));
    assert_int_equal(hess_context_status(ctx), HESS_ERR_IO);
    hess_context_clear_error(ctx);
}

/* The real Fashion-MNIST files (Debian's dataset-fashion-mnist), only when
 * run as "test_io --fashion-mnist DIR": ctest registers that entry when the
 * files exist at configure time (tests/CMakeLists.txt says so). */
static const char *fashion_dir;

static void test_idx_fashion_mnist(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        int64_t n;
        int ndim;
    } files[] = {{"train-labels-idx1-ubyte.gz", 60000, 1},
                 {"train-images-idx3-ubyte.gz", 60000, 3},
                 {"t10k-labels-idx1-ubyte.gz", 10000, 1},
                 {"t10k-images-idx3-ubyte.gz", 10000, 3}};
    for (size_t k = 0; k < 4; k++) {
        hess_context *ctx = NULL; /* the default allocator: 376 MB for the images */
        assert_int_equal(hess_context_create(NULL, &ctx), HESS_OK);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", fashion_dir, files[k].file);
        hess_tensor *t = hess_load_idx(ctx, path, 0);
        assert_ok(ctx, hess_context_status(ctx));
        assert_int_equal(hess_tensor_ndim(t), files[k].ndim);
        assert_int_equal(hess_tensor_shape(t)[0], files[k].n);
        const double *v = hess_tensor_data(t);
        if (files[k].ndim == 3) {
            assert_int_equal(hess_tensor_shape(t)[1], 28);
            assert_int_equal(hess_tensor_shape(t)[2], 28);
            double lo = 255, hi = 0;
            for (int64_t i = 0; i < hess_tensor_numel(t); i++)
                lo = v[i] < lo ? v[i] : lo, hi = v[i] > hi ? v[i] : hi;
            assert_true(lo == 0 && hi == 255);
        } else { /* balanced classes 0..9 */
            int64_t count[10] = {0};
            for (int64_t i = 0; i < files[k].n; i++) {
                assert_true(v[i] >= 0 && v[i] <= 9 && v[i] == (int)v[i]);
                count[(int)v[i]]++;
            }
            for (int c = 0; c < 10; c++)
                assert_int_equal(count[c], files[k].n / 10);
        }
        printf("%s: shape [%lld%s]\n", path, (long long)files[k].n,
               files[k].ndim == 3 ? ",28,28" : "");
        hess_context_destroy(ctx);
    }
}

/* ------------------------------------------------------------------------ */
/* Odd spellings, limits, read errors and the memory entry points          */
/* ------------------------------------------------------------------------ */

/* The memory entry points of src/io/ref.c and src/io/npy.c (internal,
 * declared in io.h). */
hess_status hess__ref_load_mem(hess_context *ctx,
                               const void *buf,
                               size_t len,
                               const char *name,
                               const char *param_prefix,
                               hess_ref_file *out);
hess_tensor *
hess__npy_load_mem(hess_context *ctx, const void *buf, size_t len, const char *name, int as_param);

/* Every blank the format allows (tab, vertical tab, form feed, CR LF), a
 * model line with tabs ended by a CR at the end of the input, a NaN payload
 * in upper-case hex, an empty parameter prefix: read alike from a file and
 * from memory. */
static void test_ref_odd_spellings(void **state)
{
    hess_context *ctx = *state;
    static const char text[] = "# libhessian reference case v1\r\n"
                               "case\tc1\r\n"
                               "tensor\va\f1 3\r\n"
                               "1\t-2.5e-3\v nan:0x7FF0000000000001\r\n"
                               "tensor b 0 4\n"
                               "model \t spaced\ttext \r";
    const char *path = "test_io_tmp_odd.ref";
    write_bytes(path, text, sizeof text - 1);
    for (int mem = 0; mem < 2; mem++) {
        hess_ref_file f;
        if (mem)
            assert_ok(ctx, hess__ref_load_mem(ctx, text, sizeof text - 1, NULL, "", &f));
        else
            assert_ok(ctx, hess_load_ref(ctx, path, "", &f));
        assert_string_equal(f.case_name, "c1");
        assert_string_equal(f.model, "spaced\ttext ");
        assert_int_equal(f.n, 2);
        assert_string_equal(f.tensors[0].name, "a");
        const double *a = hess_tensor_data(f.tensors[0].tensor);
        uint64_t bits;
        memcpy(&bits, &a[2], sizeof bits);
        assert_true(a[0] == 1 && a[1] == -2.5e-3 && bits == 0x7ff0000000000001u);
        assert_int_equal(hess_tensor_is_param(f.tensors[0].tensor), 0); /* "" marks nothing */
        assert_int_equal(hess_tensor_ndim(f.tensors[1].tensor), 0);
        assert_true(hess_tensor_data(f.tensors[1].tensor)[0] == 4);
    }
    /* a model line of 500 bytes ended by CR LF */
    static const char crlf[] = "# libhessian reference case v1\nmodel " M500 "\r\ntensor a 0\n1\n";
    hess_ref_file g;
    assert_ok(ctx, hess__ref_load_mem(ctx, crlf, sizeof crlf - 1, "crlf", NULL, &g));
    assert_string_equal(g.model, M500);
    /* "model" as the last word of the input: an empty model */
    static const char bare[] = "# libhessian reference case v1\ntensor a 0\n1\nmodel";
    hess_ref_file f;
    assert_ok(ctx, hess__ref_load_mem(ctx, bare, sizeof bare - 1, "bare", NULL, &f));
    assert_string_equal(f.model, "");
    assert_int_equal(f.n, 1);

    /* twenty tensors (the list grows past its first 16 entries), every other
     * one a parameter by its prefix */
    char many[2048];
    size_t len = (size_t)snprintf(many, sizeof many, "# libhessian reference case v1\n");
    for (int i = 0; i < 20; i++)
        len += (size_t)snprintf(many + len, sizeof many - len, "tensor %st%d 1 2\n%d -%d.5\n",
                                i % 2 ? "p:" : "", i, i, i);
    assert_ok(ctx, hess__ref_load_mem(ctx, many, len, "many", "p:", &f));
    assert_int_equal(f.n, 20);
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "%st%d", i % 2 ? "p:" : "", i);
        assert_string_equal(f.tensors[i].name, name);
        assert_ptr_equal(hess_ref_find(&f, name), f.tensors[i].tensor);
        assert_int_equal(hess_tensor_is_param(f.tensors[i].tensor), i % 2);
        const double *d = hess_tensor_data(f.tensors[i].tensor);
        assert_true(d[0] == i && d[1] == -i - 0.5);
    }
    /* hess_ref_find skips entries without a name, and a file without a list */
    hess_named_tensor nt[2] = {{NULL, f.tensors[0].tensor}, {"x", f.tensors[1].tensor}};
    const hess_ref_file named = {NULL, NULL, 2, nt}, empty = {NULL, NULL, 2, NULL};
    assert_ptr_equal(hess_ref_find(&named, "x"), f.tensors[1].tensor);
    assert_null(hess_ref_find(&empty, "x"));

    /* the memory entry point: its name in messages, "<memory>" by default */
    const hess_mark before = hess_context_mark(ctx);
    assert_int_equal(hess__ref_load_mem(ctx, "# nothing", 9, NULL, NULL, &f), HESS_ERR_IO);
    expect_error(ctx, HESS_ERR_IO, "hess_load_ref: <memory>: byte 2 (line 1): bad header", NULL);
    assert_true(same_mark(before, hess_context_mark(ctx)));
    assert_int_equal(hess__ref_load_mem(NULL, text, 4, NULL, NULL, &f), HESS_ERR_ARG);
    assert_int_equal(hess__ref_load_mem(ctx, NULL, 4, NULL, NULL, &f), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_load_ref", "NULL path");
    remove(path);
}

/* A case name of 127 bytes and a model of 500 are the longest written and
 * read back; one byte more is refused on both sides.  An empty case name
 * writes no case line. */
static void test_ref_limits(void **state)
{
    hess_context *ctx = *state;
    const char *path = "test_io_tmp_limits.ref";
    char case_name[129], model[502];
    memset(case_name, 'c', 128);
    case_name[127] = '\0';
    memset(model, 'm', 501);
    model[500] = '\0';
    model[7] = '\t';
    hess_named_tensor nt = {"x", hess_scalar(ctx, 2.5)};
    hess_ref_file f = {case_name, model, 1, &nt}, g;
    assert_ok(ctx, hess_save_ref(ctx, path, &f));
    assert_ok(ctx, hess_load_ref(ctx, path, NULL, &g));
    assert_string_equal(g.case_name, case_name);
    assert_string_equal(g.model, model);
    assert_true(hess_tensor_data(g.tensors[0].tensor)[0] == 2.5);
    char *before = read_all(path, NULL);
    case_name[127] = 'c';
    case_name[128] = '\0';
    assert_int_equal(hess_save_ref(ctx, path, &f), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_save_ref: case name has blanks or more than 127 bytes",
                 NULL);
    case_name[127] = '\0';
    model[500] = 'm';
    model[501] = '\0';
    assert_int_equal(hess_save_ref(ctx, path, &f), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG,
                 "hess_save_ref: model text has a control character or more than 500 bytes", NULL);
    char *after = read_all(path, NULL);
    assert_string_equal(after, before); /* refused before anything was written */
    free(before);
    free(after);
    /* no case line for an empty case name */
    f.case_name = "";
    f.model = "m";
    assert_ok(ctx, hess_save_ref(ctx, path, &f));
    after = read_all(path, NULL);
    assert_string_equal(after, "# libhessian reference case v1\nmodel m\ntensor x 0\n2.5\n");
    free(after);
    remove(path);
}

/* Reading a directory: a read error, in every reader's message. */
static void test_readers_read_error(void **state)
{
    hess_context *ctx = *state;
    char frag[128];
    snprintf(frag, sizeof frag, ".: byte 0: read error (%s)", strerror(EISDIR));
    const hess_mark before = hess_context_mark(ctx);
    hess_ref_file f;
    assert_int_equal(hess_load_ref(ctx, ".", NULL, &f), HESS_ERR_IO);
    expect_error(ctx, HESS_ERR_IO, "hess_load_ref: ", frag);
    assert_null(hess_load_npy(ctx, ".", 0));
    expect_error(ctx, HESS_ERR_IO, "hess_load_npy: ", frag);
    assert_null(hess_load_idx(ctx, ".", 0));
    expect_error(ctx, HESS_ERR_IO, "hess_load_idx: ", frag);
    assert_true(same_mark(before, hess_context_mark(ctx)));
}

/* hess__npy_load_mem reads what hess_load_npy reads; its arguments. */
static void test_npy_memory(void **state)
{
    hess_context *ctx = *state;
    unsigned char buf[176];
    memcpy(buf, NPY_2x3_HEADER, 128);
    memcpy(buf + 128, NPY_2x3_DATA, 48);
    hess_tensor *t = hess__npy_load_mem(ctx, buf, sizeof buf, "image", 1);
    assert_non_null(t);
    assert_int_equal(hess_tensor_is_param(t), 1);
    const double want[6] = {1, 2, 3, 4, 5, 6};
    assert_memory_equal(hess_tensor_data(t), want, sizeof want);
    assert_null(hess__npy_load_mem(ctx, buf, 100, "image", 0));
    expect_error(ctx, HESS_ERR_IO, "hess_load_npy: image: byte 10: truncated header", NULL);
    assert_null(hess__npy_load_mem(NULL, buf, sizeof buf, "image", 0));
    assert_null(hess__npy_load_mem(ctx, NULL, sizeof buf, "image", 0));
    expect_error(ctx, HESS_ERR_ARG, "hess_load_npy: NULL buffer or name", NULL);
    assert_null(hess__npy_load_mem(ctx, buf, sizeof buf, NULL, 0));
    expect_error(ctx, HESS_ERR_ARG, "hess_load_npy: NULL buffer or name", NULL);
    /* the array writer: a NULL shape for a rank above 0, a shape that overflows */
    const int64_t huge[2] = {(int64_t)1 << 59, 8};
    assert_int_equal(hess_save_npy_array(ctx, "test_io_tmp_x.npy", 2, NULL, want), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG,
                 "hess_save_npy_array: rank outside 0..HESS_MAX_DIMS or NULL shape", NULL);
    assert_int_equal(hess_save_npy_array(ctx, "test_io_tmp_x.npy", 2, huge, want), HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG,
                 "hess_save_npy_array: dimension 1 is 8 (must be >= 1, no overflow)", NULL);
    assert_int_equal(access("test_io_tmp_x.npy", F_OK), -1);
}

/* A result made before a leaf was written is brought up to date before it
 * is saved; under HESS_CHECK_FINITE a refresh that gives a NaN refuses the
 * save, and the file keeps the last values written. */
static void test_save_refreshes_stale(void **state)
{
    (void)state;
    hess_context *ctx = test_context_flags(HESS_CHECK_FINITE);
    const char *npy = "test_io_tmp_stale.npy", *ref = "test_io_tmp_stale.ref";
    hess_tensor *x = hess_tensor_new(ctx, 1, (const int64_t[]){2}, (const double[]){2, 4});
    hess_tensor *y = hess_log(ctx, x), *z = hess_log(ctx, x);
    assert_non_null(z);
    assert_ok(ctx, hess_tensor_set(ctx, x, (const double[]){1, 1}));
    hess_named_tensor nt = {"y", z};
    const hess_ref_file f = {NULL, NULL, 1, &nt};
    assert_ok(ctx, hess_save_npy(ctx, npy, y));
    assert_ok(ctx, hess_save_ref(ctx, ref, &f));
    hess_tensor *u = hess_load_npy(ctx, npy, 0);
    assert_non_null(u);
    assert_true(hess_tensor_data(u)[0] == 0 && hess_tensor_data(u)[1] == 0);
    size_t l0, l1;
    char *ref0 = read_all(ref, NULL), *npy0 = read_all(npy, &l0);
    assert_string_equal(ref0, "# libhessian reference case v1\ntensor y 1 2\n0 0\n");

    assert_ok(ctx, hess_tensor_set(ctx, x, (const double[]){-1, 1}));
    assert_int_equal(hess_save_npy(ctx, npy, y), HESS_ERR_NONFINITE);
    expect_error(ctx, HESS_ERR_NONFINITE, "hess_save_npy: non-finite value in the result of log",
                 NULL);
    assert_int_equal(hess_save_ref(ctx, ref, &f), HESS_ERR_NONFINITE);
    expect_error(ctx, HESS_ERR_NONFINITE, "hess_save_ref: non-finite value in the result of log",
                 NULL);
    char *ref1 = read_all(ref, NULL), *npy1 = read_all(npy, &l1);
    assert_string_equal(ref1, ref0);
    assert_int_equal(l1, l0);
    assert_memory_equal(npy1, npy0, l0);
    free(ref0);
    free(ref1);
    free(npy0);
    free(npy1);
    remove(npy);
    remove(ref);
    hess_context_destroy(ctx);
}

/* Text of a heatmap: tabs and newlines kept, C1 controls, overlong and
 * out-of-range sequences, surrogates, bad continuation bytes and U+FFFE /
 * U+FFFF as '?', valid 2-, 3- and 4-byte characters kept, a long title and
 * long names cut with an ellipsis. */
static void test_svg_text(void **state)
{
    hess_context *ctx = *state;
    const char *path = "test_io_tmp_text.svg";
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\tb\nc", "a\tb\nc"},
        {"x\xc2\x85y", "x??y"},                       /* C1 control U+0085 */
        {"x\xc2\xa0y", "x\xc2\xa0y"},                 /* U+00A0 */
        {"x\xe0\x80\xafy", "x???y"},                  /* overlong '/' */
        {"x\xe0\xa0\x80y", "x\xe0\xa0\x80y"},         /* U+0800 */
        {"x\xe2\x28\xa1y", "x?(?y"},                  /* bad second continuation byte */
        {"x\xef\xbf\xbey", "x???y"},                  /* U+FFFE */
        {"x\xef\xbf\xbfy", "x???y"},                  /* U+FFFF */
        {"x\xef\xbf\xbdy", "x\xef\xbf\xbdy"},         /* U+FFFD */
        {"x\xef\xbe\x80y", "x\xef\xbe\x80y"},         /* U+FF80 */
        {"x\xf0\x8f\xbf\xbfy", "x????y"},             /* overlong U+FFFF */
        {"x\xf0\x9f\x98\x80y", "x\xf0\x9f\x98\x80y"}, /* U+1F600 */
        {"x\xf0\x9f\x28\x80y", "x?"
                               "?(?y"}, /* bad third byte */
        {"x\xf0\x9f\x98\x28y", "x??"
                               "?(y"},                /* bad fourth byte */
        {"x\xf4\x8f\xbf\xbfy", "x\xf4\x8f\xbf\xbfy"}, /* U+10FFFF */
        {"x\xf4\x90\x80\x80y", "x????y"},             /* above U+10FFFF */
        {"x\xf5\x80y", "x??y"},
    };
    const double m[4] = {1, -2, -2, 3};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        assert_ok(ctx, hess_write_svg_heatmap(ctx, path, 2, m, 0, NULL, NULL, cases[k].in));
        char *svg = read_all(path, NULL), want[64];
        snprintf(want, sizeof want, "<title>%s</title>", cases[k].out);
        if (!strstr(svg, want))
            fail_msg("case %zu: no %s in the picture", k, want);
        free(svg);
        xml_well_formed(path);
    }
    /* 250 characters of title: 200 and an ellipsis; a name of 45: 40 and one */
    char title[251], name[46], want[300];
    memset(title, 't', 250);
    title[250] = '\0';
    memset(name, 'n', 45);
    name[45] = '\0';
    const char *const names[2] = {name, "b"};
    const size_t sizes[2] = {1, 1};
    assert_ok(ctx, hess_write_svg_heatmap(ctx, path, 2, m, 2, names, sizes, title));
    char *svg = read_all(path, NULL);
    snprintf(want, sizeof want, "<title>%.200s\xe2\x80\xa6</title>", title);
    assert_non_null(strstr(svg, want));
    snprintf(want, sizeof want, ">%.40s\xe2\x80\xa6 (1)</text>", name);
    assert_non_null(strstr(svg, want));
    free(svg);
    xml_well_formed(path);
    remove(path);
}

/* The y (left) or x (top) coordinates of the block labels, in order. */
static size_t label_positions(const char *svg, int top, double *pos, size_t cap)
{
    size_t n = 0;
    const char *key = top ? "\" transform=\"rotate(-45 " : "\" text-anchor=\"end\" dominant";
    for (const char *p = svg; (p = strstr(p, "<text x=\"")) != NULL; p++) {
        const char *end = strchr(p, '>');
        const char *k = strstr(p, key);
        if (!k || k > end)
            continue;
        double x, y;
        assert_int_equal(sscanf(p, "<text x=\"%lf\" y=\"%lf\"", &x, &y), 2);
        assert_true(n < cap);
        pos[n++] = top ? x : y;
    }
    return n;
}

/* Labels of blocks too small to hold them are spread at least 14 px apart,
 * within the side of the matrix while they fit, past its end when not; a
 * downsampled cell holding a NaN is grey; infinities of a matrix without a
 * finite nonzero take the ends of the scale. */
static void test_svg_layout(void **state)
{
    hess_context *ctx = *state;
    const char *path = "test_io_tmp_layout.svg";
    double pos[80];
    /* a big block and five of one row at the end: pushed back from the end */
    {
        enum { N = 100 };
        static double m[N * N];
        const size_t sizes[6] = {95, 1, 1, 1, 1, 1};
        assert_ok(ctx, hess_write_svg_heatmap(ctx, path, N, m, 6, NULL, sizes, NULL));
        char *svg = read_all(path, NULL);
        for (int top = 0; top < 2; top++) {
            assert_int_equal(label_positions(svg, top, pos, 80), 6);
            for (int i = 0; i + 1 < 6; i++)
                assert_true(pos[i + 1] - pos[i] >= 14 - 0.011);
        }
        /* on the left the five are pushed back from the end, 14 px apart, and
         * the big block's label stays at its middle */
        assert_int_equal(label_positions(svg, 0, pos, 80), 6);
        assert_close(pos[1] - pos[0], 577 - 304, 0, 0.011);
        free(svg);
    }
    /* sixty blocks of one row: more labels than fit, 14 px apart past the end */
    {
        enum { N = 60 };
        static double m[N * N];
        size_t sizes[N];
        for (int i = 0; i < N; i++)
            sizes[i] = 1, m[i * N + i] = i - 30.0;
        assert_ok(ctx, hess_write_svg_heatmap(ctx, path, N, m, N, NULL, sizes, "sixty"));
        char *svg = read_all(path, NULL);
        for (int top = 0; top < 2; top++) {
            assert_int_equal(label_positions(svg, top, pos, 80), N);
            for (int i = 0; i + 1 < N; i++)
                assert_close(pos[i + 1] - pos[i], 14, 0, 0.011);
        }
        free(svg);
        xml_well_formed(path);
    }
    /* 301 x 301 shown as 300 x 300: the cell holding the NaN is grey */
    {
        const size_t n = 301;
        double *big = calloc(n * n, sizeof *big);
        assert_non_null(big);
        big[150 * n + 150] = NAN;
        big[7] = 1;
        assert_ok(ctx, hess_write_svg_heatmap(ctx, path, n, big, 0, NULL, NULL, NULL));
        free(big);
        char *svg = read_all(path, NULL);
        assert_non_null(
            strstr(svg, "<rect x=\"150\" y=\"150\" width=\"1\" height=\"1\" fill=\"#9a9a9a\"/>"));
        assert_non_null(strstr(svg, ">NaN</text>"));
        free(svg);
    }
    /* no finite nonzero: +inf full red, -inf full blue, the scale's ends 0 */
    {
        const double m[4] = {INFINITY, 0, -INFINITY, 0};
        assert_ok(ctx, hess_write_svg_heatmap(ctx, path, 2, m, 0, NULL, NULL, NULL));
        char *svg = read_all(path, NULL);
        assert_non_null(
            strstr(svg, "<rect x=\"0\" y=\"0\" width=\"1\" height=\"1\" fill=\"#be1e2d\"/>"));
        assert_non_null(
            strstr(svg, "<rect x=\"0\" y=\"1\" width=\"1\" height=\"1\" fill=\"#2152aa\"/>"));
        assert_non_null(strstr(svg, "max |value| = 0</desc>"));
        free(svg);
    }
    /* n above 2^20 is refused before the matrix is read */
    assert_int_equal(
        hess_write_svg_heatmap(ctx, path, ((size_t)1 << 20) + 1, pos, 0, NULL, NULL, NULL),
        HESS_ERR_ARG);
    expect_error(ctx, HESS_ERR_ARG, "hess_write_svg_heatmap: n must be 1..2^20", NULL);
    remove(path);
}

/* ------------------------------------------------------------------------ */
/* Saving: paths that cannot be saved to                                    */
/* ------------------------------------------------------------------------ */

/* Paths no writer can save to, each refused with the reason and nothing
 * created: through a regular file (ENOTDIR), a loop of links (ELOOP), longer
 * than PATH_MAX, a new file whose temporary name would be longer than
 * PATH_MAX, an existing file whose resolved path is longer than PATH_MAX (a
 * new file there is made), a block device, /dev/full itself, and (unless
 * root, which may write anywhere) a read-only directory. */
static void test_save_unusable_paths(void **state)
{
    hess_context *ctx = *state;
    char dir[32], p[256], q[256];
    make_scratch(dir);
    write_bytes(join(p, dir, "plain"), "old", 3);
    assert_int_equal(symlink("loop", join(p, dir, "loop")), 0);
    char *listing = list_dir(dir);
    char frag[160];
    for (int w = 0; w < W_COUNT; w++) {
        snprintf(p, sizeof p, "%s/plain/x", dir);
        assert_int_equal(save_with(ctx, w, p, false), HESS_ERR_IO);
        snprintf(frag, sizeof frag, "cannot save there (%s)", strerror(ENOTDIR));
        expect_save_error(ctx, w, p, frag);
        assert_int_equal(save_with(ctx, w, join(p, dir, "loop"), false), HESS_ERR_IO);
        snprintf(frag, sizeof frag, "cannot save there (%s)", strerror(ELOOP));
        expect_save_error(ctx, w, p, frag);
        assert_int_equal(save_with(ctx, w, "/dev/full", false), HESS_ERR_IO);
        expect_save_error(ctx, w, "/dev/full", "is a character device, not a regular file");
    }
    expect_same_listing(dir, listing);
    free(listing);
    expect_link(join(p, dir, "loop"), "loop");

    /* 4100 bytes: longer than any path.  A long path shows in messages as
     * "..." and its last bytes, cut between UTF-8 characters (2050 "é"). */
    static char path[4200], want[400];
    for (int i = 0; i < 2050; i++)
        memcpy(path + 2 * i, "\xc3\xa9", 2);
    path[4100] = '\0';
    assert_int_equal(save_with(ctx, W_NPY, path, false), HESS_ERR_IO);
    int n = snprintf(want, sizeof want, "hess_save_npy: ...");
    for (int i = 0; i < 58; i++)
        n += snprintf(want + n, sizeof want - (size_t)n, "\xc3\xa9");
    snprintf(want + n, sizeof want - (size_t)n, ": cannot save there (%s)", strerror(ENAMETOOLONG));
    assert_string_equal(hess_context_errmsg(ctx), want);
    hess_context_clear_error(ctx);
    /* 4093 bytes in a directory that does not exist: a path, but the
     * temporary file's name beside it would be 4115 bytes */
    n = snprintf(path, sizeof path, "test_io_tmp_no_dir/");
    for (int i = 0; i < 16; i++) {
        memset(path + n, 'd', 253);
        path[n + 253] = '/';
        n += 254;
    }
    snprintf(path + n, sizeof path - (size_t)n, "abcdefghij");
    assert_int_equal(strlen(path), 4093);
    for (int w = 0; w < W_COUNT; w++) {
        assert_int_equal(save_with(ctx, w, path, false), HESS_ERR_IO);
        snprintf(want, sizeof want,
                 "%s: ...%s: cannot create a temporary file beside it (%s); no file made",
                 WRITER_FN[w], path + 4093 - 117, strerror(ENAMETOOLONG));
        assert_string_equal(hess_context_errmsg(ctx), want);
        hess_context_clear_error(ctx);
    }
    assert_null(hess_load_npy(ctx, path, 0));
    snprintf(want, sizeof want, "hess_load_npy: ...%s: cannot open file (%s)", path + 4093 - 117,
             strerror(ENOENT));
    assert_string_equal(hess_context_errmsg(ctx), want);
    hess_context_clear_error(ctx);

    /* dir/a links to 11 directories of 200 bytes, holding 11 more and a file:
     * the path is short enough, the file's resolved path is not */
    char comp[201];
    memset(comp, 'e', 200);
    comp[200] = '\0';
    n = snprintf(path, sizeof path, "%s", dir);
    for (int i = 0; i < 11; i++) {
        n += snprintf(path + n, sizeof path - (size_t)n, "/%s", comp);
        assert_int_equal(mkdir(path, 0755), 0);
    }
    assert_int_equal(symlink(path + strlen(dir) + 1, join(p, dir, "a")), 0);
    n = snprintf(path, sizeof path, "%s/a", dir);
    for (int i = 0; i < 11; i++) {
        n += snprintf(path + n, sizeof path - (size_t)n, "/%s", comp);
        assert_int_equal(mkdir(path, 0755), 0);
    }
    n += snprintf(path + n, sizeof path - (size_t)n, "/old");
    for (int w = 0; w < W_COUNT; w++) {
        write_bytes(path, "old", 3);
        assert_int_equal(save_with(ctx, w, path, false), HESS_ERR_IO);
        snprintf(want, sizeof want, "%s: ...%s: cannot resolve the path (%s)", WRITER_FN[w],
                 path + n - 117, strerror(ENAMETOOLONG));
        assert_string_equal(hess_context_errmsg(ctx), want);
        hess_context_clear_error(ctx);
        char *now = read_all(path, NULL);
        assert_string_equal(now, "old");
        free(now);
    }
    snprintf(path + n - 4, sizeof path - (size_t)n + 4, "/new");
    for (int w = 0; w < W_COUNT; w++) {
        assert_ok(ctx, save_with(ctx, w, path, false));
        char *now = read_all(path, NULL);
        assert_memory_equal(now, WRITER_MAGIC[w], strlen(WRITER_MAGIC[w]));
        free(now);
        assert_int_equal(unlink(path), 0);
    }

    /* a block device, when this process may make one */
    if (mknod(join(p, dir, "blk"), S_IFBLK | 0600, (dev_t)0) == 0) {
        for (int w = 0; w < W_COUNT; w++) {
            assert_int_equal(save_with(ctx, w, p, false), HESS_ERR_IO);
            expect_save_error(ctx, w, p, "is a block device, not a regular file; nothing written");
        }
        struct stat st;
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISBLK(st.st_mode));
    } else {
        printf("no block device made (%s): that case is not run\n", strerror(errno));
    }

    /* a read-only directory: a new file and a replaced one */
    join(q, dir, "ro");
    assert_int_equal(mkdir(q, 0755), 0);
    write_bytes(join(p, q, "old"), "old", 3);
    assert_int_equal(chmod(q, 0555), 0);
    for (int w = 0; w < W_COUNT; w++) {
        const hess_status st = save_with(ctx, w, join(p, q, "new"), false);
        if (geteuid() == 0) {
            assert_ok(ctx, st);
            assert_int_equal(unlink(p), 0);
        } else {
            assert_int_equal(st, HESS_ERR_IO);
            snprintf(frag, sizeof frag,
                     "cannot create a temporary file beside it (%s); no file made",
                     strerror(EACCES));
            expect_save_error(ctx, w, p, frag);
            assert_int_equal(save_with(ctx, w, join(p, q, "old"), false), HESS_ERR_IO);
            snprintf(frag, sizeof frag,
                     "cannot create a temporary file beside it (%s); the file is unchanged",
                     strerror(EACCES));
            expect_save_error(ctx, w, p, frag);
        }
    }
    assert_int_equal(chmod(q, 0755), 0);
    remove_scratch(dir);
}

/* A reference file of many small tensors saved with no room at all for its
 * bytes (RLIMIT_FSIZE 0): the write fails where the first buffer of bytes is
 * flushed, which, as the first tensor's length varies, falls on each part of
 * a tensor (its line, a dimension, a value, a separator, a line end).  Every
 * such save fails with EFBIG and leaves the old file. */
static void test_ref_write_fails_anywhere(void **state)
{
    hess_context *ctx = *state;
    char dir[32], p[256];
    make_scratch(dir);
    join(p, dir, "f.ref");
    enum { T = 200 };
    static double zeros[64];
    static char names[T][8];
    hess_named_tensor nt[T + 1];
    const int64_t shape6[6] = {1, 1, 1, 1, 1, 2};
    hess_tensor *small = hess_tensor_new(ctx, 6, shape6, zeros);
    for (int i = 0; i < T; i++) {
        snprintf(names[i], sizeof names[i], "t%d", i);
        nt[i + 1].name = names[i];
        nt[i + 1].tensor = small;
    }
    struct rlimit lim0, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &lim0), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    char frag[64];
    snprintf(frag, sizeof frag, "write failed (%s); the file is unchanged", strerror(EFBIG));
    for (int pad = 1; pad <= 40; pad++) {
        const int64_t len = pad;
        nt[0].name = "pad";
        nt[0].tensor = hess_tensor_new(ctx, 1, &len, zeros);
        const hess_ref_file f = {pad % 2 ? "c" : "cc", NULL, T + 1, nt};
        write_bytes(p, "old", 3);
        lim = lim0;
        lim.rlim_cur = 0;
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        const hess_status st = hess_save_ref(ctx, p, &f);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim0), 0);
        assert_int_equal(st, HESS_ERR_IO);
        expect_save_error(ctx, W_REF, p, frag);
        char *now = read_all(p, NULL);
        assert_string_equal(now, "old");
        free(now);
        if (pad == 40) { /* and without the limit, the same file is written */
            assert_ok(ctx, hess_save_ref(ctx, p, &f));
            hess_ref_file g;
            assert_ok(ctx, hess_load_ref(ctx, p, NULL, &g));
            assert_int_equal(g.n, T + 1);
            assert_int_equal(hess_tensor_numel(g.tensors[0].tensor), 40);
        }
    }
    signal(SIGXFSZ, prev);
    remove_scratch(dir);
}

/* ------------------------------------------------------------------------ */
/* Readers: pipes                                                           */
/* ------------------------------------------------------------------------ */

/* A pipe holding len bytes (below its 64 KiB) and no writer: its read end's
 * name, /dev/fd/N, in path; returns the descriptor to close after. */
static int pipe_with(const void *data, size_t len, char path[32])
{
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    assert_int_equal(write(fd[1], data, len), (ssize_t)len);
    close(fd[1]);
    snprintf(path, 32, "/dev/fd/%d", fd[0]);
    return fd[0];
}

/* A .npy of 70 x 70 doubles (39 KB) through a pipe: the buffer it is read
 * into grows twice; in a context at its byte limit there is no room for it. */
static void test_read_pipe_grows(void **state)
{
    (void)state;
    enum { S = 70 };
    static double v[S * S];
    uint64_t seed = 4;
    for (int i = 0; i < S * S; i++)
        v[i] = rnd_uniform(&seed, -1, 1);
    hess_context *ctx = test_context();
    const char *npy = "test_io_tmp_pipe.npy";
    assert_ok(ctx, hess_save_npy_array(ctx, npy, 2, (const int64_t[]){S, S}, v));
    size_t len;
    char *bytes = read_all(npy, &len);
    assert_int_equal(len, 128 + 8 * S * S);
    char path[32];
    int fd = pipe_with(bytes, len, path);
    hess_tensor *t = hess_load_npy(ctx, path, 0);
    close(fd);
    assert_non_null(t);
    assert_memory_equal(hess_tensor_data(t), v, sizeof v);
    hess_context_destroy(ctx);

    /* a context at its byte limit exactly: the pipe's buffer has no room */
    hess_config cfg = {0};
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    cfg.max_bytes = hess_context_bytes(ctx);
    hess_context_destroy(ctx);
    assert_int_equal(hess_context_create(&cfg, &ctx), HESS_OK);
    fd = pipe_with(bytes, len, path);
    assert_null(hess_load_npy(ctx, path, 0));
    close(fd);
    expect_error(ctx, HESS_ERR_NOMEM, "hess_load_npy: /dev/fd/",
                 "out of memory reading a pipe (0 bytes so far)");
    assert_int_equal(hess_context_bytes(ctx), cfg.max_bytes);
    hess_context_destroy(ctx);
    free(bytes);
    remove(npy);
}

/* ------------------------------------------------------------------------ */
/* Out of memory                                                            */
/* ------------------------------------------------------------------------ */

/* The allocator fails the k-th allocation: fail_mem (alloc.h). */

enum { IO_REF, IO_REF_MEM, IO_REF_PIPE, IO_NPY, IO_NPY_PIPE, IO_IDX, IO_IDX_GZ, IO_SVG, IO_CALLS };
static const char *const IO_FN[IO_CALLS] = {
    "hess_load_ref", "hess_load_ref", "hess_load_ref", "hess_load_npy",
    "hess_load_npy", "hess_load_idx", "hess_load_idx", "hess_write_svg_heatmap"};

/* The inputs of the calls, made once. */
typedef struct io_inputs {
    char ref_text[1024];
    size_t ref_len;
    char *npy_big;
    size_t npy_big_len;
} io_inputs;

/* What call c gives: its numbers in out (*n of them; a picture's length and
 * a checksum of its bytes). */
static hess_status io_call(hess_context *ctx, const io_inputs *in, int c, double *out, size_t *n)
{
    hess_status st = HESS_OK;
    hess_tensor *t = NULL;
    hess_ref_file f;
    char path[32];
    int fd = -1;
    *n = 0;
    if (c == IO_REF_PIPE)
        fd = pipe_with(in->ref_text, in->ref_len, path);
    if (c == IO_NPY_PIPE)
        fd = pipe_with(in->npy_big, in->npy_big_len, path);
    switch (c) {
    case IO_REF:
    case IO_REF_MEM:
    case IO_REF_PIPE:
        st = c == IO_REF       ? hess_load_ref(ctx, "test_io_tmp_oom.ref", "p", &f)
             : c == IO_REF_MEM ? hess__ref_load_mem(ctx, in->ref_text, in->ref_len, "m", "p", &f)
                               : hess_load_ref(ctx, path, "p", &f);
        if (st == HESS_OK) {
            assert_string_equal(f.case_name, "oom");
            assert_string_equal(f.model, "a model " M100 M100 M100);
            for (size_t i = 0; i < f.n; i++) {
                assert_int_equal(hess_tensor_is_param(f.tensors[i].tensor),
                                 f.tensors[i].name[0] == 'p');
                for (int64_t j = 0; j < hess_tensor_numel(f.tensors[i].tensor); j++)
                    out[(*n)++] = hess_tensor_data(f.tensors[i].tensor)[j];
            }
        }
        break;
    case IO_SVG: { /* 2 x 150 label positions: more than an arena block of 1 KiB */
        static double m[150 * 150];
        static size_t sizes[150];
        for (int i = 0; i < 150; i++)
            sizes[i] = 1, m[i * 151] = i - 75.0;
        m[1] = NAN;
        st = hess_write_svg_heatmap(ctx, "test_io_tmp_oom.svg", 150, m, 150, NULL, sizes, "oom");
        if (st == HESS_OK) {
            size_t len;
            char *svg = read_all("test_io_tmp_oom.svg", &len);
            out[(*n)++] = (double)len;
            out[(*n)++] = 0;
            for (size_t i = 0; i < len; i++)
                out[1] += (double)(i % 251) * (unsigned char)svg[i];
            free(svg);
        }
        break;
    }
    default:
        t = c == IO_NPY        ? hess_load_npy(ctx, "test_io_tmp_oom.npy", 0)
            : c == IO_NPY_PIPE ? hess_load_npy(ctx, path, 0)
            : c == IO_IDX      ? hess_load_idx(ctx, "test_io_tmp_oom.idx", 1)
                               : hess_load_idx(ctx, "test_io_tmp_oom.idx.gz", 1);
        st = t ? HESS_OK : hess_context_status(ctx);
        for (int64_t j = 0; t && j < hess_tensor_numel(t) && j < 64; j++)
            out[(*n)++] = hess_tensor_data(t)[j];
        break;
    }
    if (fd >= 0)
        close(fd);
    return st;
}

/* Every allocation of every reader and writer fails in turn (once, and from
 * then on): HESS_ERR_NOMEM with a message naming the function, nothing left
 * in the context, nothing leaked, and after hess_context_clear_error the same
 * context gives the reference result. */
static void test_io_out_of_memory(void **state)
{
    (void)state;
    io_inputs in;
    in.ref_len = (size_t)snprintf(in.ref_text, sizeof in.ref_text,
                                  "# libhessian reference case v1\ncase oom\nmodel a model %s\n",
                                  M100 M100 M100);
    for (int i = 0; i < 18; i++)
        in.ref_len += (size_t)snprintf(in.ref_text + in.ref_len, sizeof in.ref_text - in.ref_len,
                                       "tensor %c%d 1 2\n%d -0.5\n", i % 3 ? 'c' : 'p', i, i);
    write_bytes("test_io_tmp_oom.ref", in.ref_text, in.ref_len);
    /* 85 x 85 doubles (57 KB, below a pipe's 64 KiB): the pipe's buffer
     * outgrows the first block of its scratch context */
    static double big[85 * 85];
    for (int i = 0; i < 85 * 85; i++)
        big[i] = i * 0.25;
    hess_context *ctx = test_context();
    assert_ok(ctx,
              hess_save_npy_array(ctx, "test_io_tmp_oom.npy", 2, (const int64_t[]){85, 85}, big));
    in.npy_big = read_all("test_io_tmp_oom.npy", &in.npy_big_len);
    hess_context_destroy(ctx);
    unsigned char data[600], img[700];
    for (int i = 0; i < 600; i++)
        data[i] = (unsigned char)(i * 13);
    const size_t len = idx_image(img, 0x08, 2, (const uint32_t[]){20, 30}, data, 600);
    write_bytes("test_io_tmp_oom.idx", img, len);
#ifdef HESSIAN_HAVE_ZLIB
    write_gzip("test_io_tmp_oom.idx.gz", img, len);
    const int calls = IO_CALLS;
#else
    const int calls = IO_CALLS - 1; /* IO_IDX_GZ is the last but one: skipped below */
#endif
    for (int c = 0; c < IO_CALLS; c++) {
        if (calls < IO_CALLS && c == IO_IDX_GZ)
            continue;
        double want[64], got[64];
        size_t nwant = 0, ngot = 0;
        for (int sticky = 0; sticky < 2; sticky++)
            for (long k = 1;; k++) {
                fail_mem a = {0, 0, sticky};
                /* small blocks: the calls must grow the arena */
                ctx = fail_mem_context(&a, 1024);
                if (k == 1 && sticky == 0) { /* the reference, nothing failing */
                    assert_ok(ctx, io_call(ctx, &in, c, want, &nwant));
                    assert_true(nwant > 0);
                    hess_context_destroy(ctx);
                    ctx = fail_mem_context(&a, 1024);
                }
                a.fail_at = a.count + k;
                const hess_mark before = hess_context_mark(ctx);
                const hess_status st = io_call(ctx, &in, c, got, &ngot);
                const int reached = a.count >= a.fail_at;
                if (st == HESS_OK) { /* not reached, or the arena found room another way */
                    assert_int_equal(ngot, nwant);
                    assert_memory_equal(got, want, nwant * sizeof *got);
                } else {
                    if (st != HESS_ERR_NOMEM ||
                        strncmp(hess_context_errmsg(ctx), IO_FN[c], strlen(IO_FN[c])) != 0 ||
                        !strstr(hess_context_errmsg(ctx), "out of memory"))
                        fail_msg("call %d, allocation %ld%s: status %d, \"%s\"", c, k,
                                 sticky ? " on" : "", (int)st, hess_context_errmsg(ctx));
                    assert_true(same_mark(before, hess_context_mark(ctx)));
                    hess_context_clear_error(ctx);
                    a.fail_at = 0;
                    assert_ok(ctx, io_call(ctx, &in, c, got, &ngot));
                    assert_int_equal(ngot, nwant);
                    assert_memory_equal(got, want, nwant * sizeof *got);
                }
                hess_context_destroy(ctx);
                if (!reached) { /* the call no longer reaches the k-th allocation */
                    if (k == 1)
                        fail_msg("call %d makes no allocation", c);
                    break;
                }
            }
    }
    free(in.npy_big);
    static const char *const files[] = {"test_io_tmp_oom.ref", "test_io_tmp_oom.npy",
                                        "test_io_tmp_oom.idx", "test_io_tmp_oom.idx.gz",
                                        "test_io_tmp_oom.svg"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        remove(files[i]);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_roundtrip),
        cmocka_unit_test_setup_teardown(test_npy_exact_layout, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_npy_read_variants, setup_ctx, teardown_ctx),
        cmocka_unit_test(test_npy_malformed),
        cmocka_unit_test_setup_teardown(test_npy_arguments, setup_ctx, teardown_ctx),
        cmocka_unit_test(test_ref_roundtrip),
        cmocka_unit_test_setup_teardown(test_ref_seed_ann, setup_ctx, teardown_ctx),
        cmocka_unit_test(test_ref_malformed),
        cmocka_unit_test_setup_teardown(test_ref_nul_bytes, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_ref_save_arguments, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_svg_seed_hessian, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_svg_edges, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_svg_lines_chart, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_svg_lines_axes, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_svg_lines_arguments, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_save_refuses_special_targets, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_save_failure_keeps_old_file, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_save_replaces_in_one_step, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_save_links_and_modes, setup_ctx, teardown_ctx),
        cmocka_unit_test(test_ref_proc_file),
        cmocka_unit_test(test_read_fifo),
        cmocka_unit_test_setup_teardown(test_special_values_keep_their_bits, setup_ctx,
                                        teardown_ctx),
        cmocka_unit_test_setup_teardown(test_ref_data_files_unchanged, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_idx_types, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_idx_ranks_and_gzip, setup_ctx, teardown_ctx),
        cmocka_unit_test(test_idx_malformed),
        cmocka_unit_test_setup_teardown(test_idx_gzip_corrupt, setup_ctx, teardown_ctx),
        cmocka_unit_test(test_idx_pending_and_limits),
        cmocka_unit_test_setup_teardown(test_idx_gzip_member_at_boundary, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_idx_arguments, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_ref_odd_spellings, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_ref_limits, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_readers_read_error, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_npy_memory, setup_ctx, teardown_ctx),
        cmocka_unit_test(test_save_refreshes_stale),
        cmocka_unit_test_setup_teardown(test_svg_text, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_svg_layout, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_save_unusable_paths, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_save_late_failures, setup_ctx, teardown_ctx),
        cmocka_unit_test_setup_teardown(test_ref_write_fails_anywhere, setup_ctx, teardown_ctx),
        cmocka_unit_test(test_read_pipe_grows),
        cmocka_unit_test(test_io_out_of_memory),
    };
    /* test_io --fashion-mnist DIR: the real data set's files only */
    if (argc == 3 && strcmp(argv[1], "--fashion-mnist") == 0) {
        fashion_dir = argv[2];
        const struct CMUnitTest real[] = {cmocka_unit_test(test_idx_fashion_mnist)};
        return cmocka_run_group_tests(real, NULL, NULL);
    }
    if (argc != 1) {
        fprintf(stderr, "usage: test_io [--fashion-mnist DIR]\n");
        return 2;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
