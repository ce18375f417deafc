/*
 * error.c -- the error state of a context (the first error and its message,
 * prefixed with the public function running), status strings, the version
 * and the build information.
 */
#include "core.h"

#include "../kernels/kernels.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Version, build and status strings                                        */
/* ------------------------------------------------------------------------ */

#define HESS_STR_(x) #x
#define HESS_STR(x)  HESS_STR_(x)

unsigned hess_version(void)
{
    return HESS_VERSION_NUMBER;
}

const char *hess_version_string(void)
{
    return HESS_STR(HESS_VERSION_MAJOR) "." HESS_STR(HESS_VERSION_MINOR) "." HESS_STR(
        HESS_VERSION_PATCH);
}

const char *hess_status_str(hess_status s)
{
    switch (s) {
#define HESS_X_(name, value, text)                                                                 \
    case name:                                                                                     \
        return text;
        HESS_STATUS_LIST(HESS_X_)
#undef HESS_X_
    }
    return "unknown status";
}

/* What the build chose, as compile definitions from CMakeLists.txt. */
#ifndef HESSIAN_BUILD_TYPE
#define HESSIAN_BUILD_TYPE "unknown"
#endif
#ifdef HESSIAN_HAVE_CBLAS
#define HESS_INFO_MATMUL "matmul: CBLAS (" HESSIAN_BLAS_NAME ") for large products"
#else
#define HESS_INFO_MATMUL "matmul: built-in kernels only"
#endif
#ifdef HESSIAN_SANITIZERS
#define HESS_INFO_SAN ", sanitizers " HESSIAN_SANITIZERS
#else
#define HESS_INFO_SAN ""
#endif
#if HESS_SIMD_X86
#define HESS_INFO_SIMD_ON  "simd: AVX2+FMA (this CPU)"
#define HESS_INFO_SIMD_OFF "simd: none (this CPU lacks AVX2+FMA)"
#else
#define HESS_INFO_SIMD_ON  "simd: not built"
#define HESS_INFO_SIMD_OFF "simd: not built"
#endif
#define HESS_INFO(simd)                                                                            \
    "libhessian " HESS_STR(HESS_VERSION_MAJOR) "." HESS_STR(HESS_VERSION_MINOR) "." HESS_STR(      \
        HESS_VERSION_PATCH) "; " HESS_INFO_MATMUL "; " simd                                        \
                            "; build: " HESSIAN_BUILD_TYPE HESS_INFO_SAN

/* One line, like zlibCompileFlags: a static string for each answer the CPU
 * can give, so nothing is formatted or kept at run time. */
const char *hess_build_info(void)
{
    return hess__simd_available() ? HESS_INFO(HESS_INFO_SIMD_ON) : HESS_INFO(HESS_INFO_SIMD_OFF);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

void hess__error(hess_context *ctx, hess_status s, const char *fmt, ...)
{
    if (!ctx || ctx->status != HESS_OK)
        return;
    ctx->status = s;
    /* Inside a composite (hess_mean, hess_softmax, the Hessians, ...) the
     * message is prefixed with the public function the caller called. */
    size_t off = 0;
    if (ctx->api && strncmp(fmt, "%s", 2) == 0) {
        off = (size_t)snprintf(ctx->errmsg, sizeof ctx->errmsg, "%s: ", ctx->api);
        if (off >= sizeof ctx->errmsg)
            off = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->errmsg + off, sizeof ctx->errmsg - off, fmt, ap);
    va_end(ap);
    /* "hess_mean: hess_mean: ..." when the composite itself failed */
    const size_t n = ctx->api ? strlen(ctx->api) : 0;
    if (off && strncmp(ctx->errmsg + off, ctx->api, n) == 0 && ctx->errmsg[off + n] == ':')
        memmove(ctx->errmsg, ctx->errmsg + off, strlen(ctx->errmsg + off) + 1);
}

hess_status hess_context_status(const hess_context *ctx)
{
    return ctx ? ctx->status : HESS_ERR_ARG;
}

const char *hess_context_errmsg(const hess_context *ctx)
{
    if (!ctx)
        return "hess_context_errmsg: NULL context";
    return ctx->status == HESS_OK ? "" : ctx->errmsg;
}

void hess_context_clear_error(hess_context *ctx)
{
    if (!ctx)
        return;
    ctx->status = HESS_OK;
    ctx->errmsg[0] = '\0';
}

const char *hess__shape_str(char *buf, int ndim, const int64_t *shape)
{
    size_t n = 0;
    buf[n++] = '[';
    buf[n] = '\0';
    for (int i = 0; i < ndim && n < 80; i++)
        n += (size_t)snprintf(buf + n, 96 - n, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (n < 95) {
        buf[n++] = ']';
        buf[n] = '\0';
    }
    return buf;
}

const char *hess__api_enter(hess_context *ctx, const char *fn)
{
    if (!ctx)
        return NULL;
    const char *saved = ctx->api;
    if (!saved)
        ctx->api = fn;
    return saved;
}

hess_tensor *hess__api_leave(hess_context *ctx, const char *saved, hess_tensor *result)
{
    if (ctx)
        ctx->api = saved;
    return result;
}

hess_status hess__enter(hess_context *ctx, const char *fn)
{
    if (!ctx)
        return HESS_ERR_ARG;
    if (ctx->status != HESS_OK)
        return ctx->status; /* an earlier error is pending: do nothing */
    if (ctx->busy)
        return hess__busy(ctx, fn);
    return HESS_OK;
}

hess_status hess__busy(hess_context *ctx, const char *fn)
{
    hess__error(ctx, HESS_ERR_STATE, "%s: called from inside %s %s; %s until the callback returns",
                fn, ctx->busy_what ? ctx->busy_what : "the progress callback of", ctx->busy,
                ctx->busy_ops ? "only ops may be built" : "the context is busy");
    return HESS_ERR_STATE;
}
