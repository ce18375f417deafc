/*
 * svg.c -- pictures, as stand-alone SVG 1.1 files (no scripts, fonts or
 * images from elsewhere): a square matrix (typically a Hessian) as a heatmap
 * with a diverging colour scale centred on zero, parameter blocks outlined
 * and labelled along both axes, a colour legend and a title; and curves as a
 * line chart with round ticks, a grid and a legend.  Both share the text
 * (escaped UTF-8, numbers in C notation) and the head of the document.
 * Number files are in io.c.
 *
 * Heatmap layout (pixels): [left labels | matrix PLOT x PLOT | gap | legend],
 * with the title and the rotated top labels above the matrix and a caption
 * below it.  The matrix is drawn in cell units (one unit per row) inside a
 * scaled group, so a cell is a 1 x 1 rect; runs of equal colour in a row are
 * merged and white cells are not drawn (the matrix background is white).
 *
 * Line chart layout: [y ticks and label | plot CHART_W x CHART_H | legend],
 * the title above, the x ticks and label below.
 */
#include "io.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PLOT       640.0 /* matrix side */
#define MAX_CELLS  300   /* larger matrices are downsampled to this many rows */
#define FONT       12.0  /* label font size */
#define LABEL_STEP 14.0  /* least distance between neighbouring labels */
#define CHAR_W     6.8   /* estimated width of a label character */
#define TITLE_H    44.0
#define LEGEND_W   18.0
#define LEGEND_GAP 28.0

/* End colours of the scale; 0 is white, and colours are linear in between. */
static const double NEG_RGB[3] = {33.0, 82.0, 170.0}; /* blue  */
static const double POS_RGB[3] = {190.0, 30.0, 45.0}; /* red   */
static const char NAN_COLOUR[] = "#9a9a9a";           /* grey  */

static const char fn[] = "hess_write_svg_heatmap";
static const char fn_lines[] = "hess_write_svg_lines";

/* ------------------------------------------------------------------------ */
/* Text: numbers in C notation whatever the locale, escaped UTF-8           */
/* ------------------------------------------------------------------------ */

/* printf of one double with '.' as the decimal point. */
static const char *num(char buf[48], const char *format, double x)
{
    snprintf(buf, 48, format, x);
    char pt[16];
    snprintf(pt, sizeof pt, "%.1f", 0.5); /* "0<point>5" */
    const size_t pl = strlen(pt) - 2;
    if (pl == 1 && pt[1] == '.')
        return buf;
    pt[1 + pl] = '\0';
    char *p = strstr(buf, pt + 1);
    if (p) {
        *p = '.';
        memmove(p + 1, p + pl, strlen(p + pl) + 1);
    }
    return buf;
}

/* A coordinate, to 0.01 px. */
static const char *px(char buf[48], double x)
{
    return num(buf, "%.2f", x);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid; also
 * rejects code points XML 1.0 forbids (controls other than tab and newline,
 * U+FFFE, U+FFFF) and the controls DEL and U+0080..U+009F. */
static size_t utf8_len(const unsigned char *s)
{
    const unsigned c = s[0];
    if (c < 0x80)
        return (c >= 0x20 && c != 0x7f) || c == '\t' || c == '\n' ? 1 : 0;
    if (c == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f)
        return 0; /* C1 controls: legal XML, but drawn as boxes */
    size_t n = c >= 0xc2 && c <= 0xdf   ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (!n)
        return 0;
    const unsigned lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    const unsigned hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    if (n == 3 && c == 0xef && s[1] == 0xbf && s[2] >= 0xbe)
        return 0; /* U+FFFE, U+FFFF */
    return n;
}

/* Writes at most max characters of s, XML-escaped; invalid bytes become '?'. */
static void put_text(FILE *f, const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t chars = 0; *p && chars < max; chars++) {
        const size_t n = utf8_len(p);
        if (n == 0) {
            fputc('?', f);
            p++;
            continue;
        }
        switch (*p) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&apos;", f);
            break;
        default:
            fwrite(p, 1, n, f);
        }
        p += n;
    }
    if (*p)
        fputs("\xe2\x80\xa6", f); /* ... (U+2026) */
}

/* Characters put_text would write for s (for layout). */
static size_t text_chars(const char *s, size_t max)
{
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && chars < max; chars++) {
        const size_t n = utf8_len(p);
        p += n ? n : 1;
    }
    return chars;
}

/* The start of every picture: the XML declaration, the <svg> element of
 * width x height pixels, its <title> (title, or fallback when NULL), its
 * <desc> (desc: text that needs no escaping) and a white background. */
static void put_head(
    FILE *f, double width, double height, const char *title, const char *fallback, const char *desc)
{
    char a[48], b[48];
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%s\" "
            "height=\"%s\" viewBox=\"0 0 %s %s\">\n",
            px(a, width), px(b, height), a, b);
    fputs("<title>", f);
    put_text(f, title ? title : fallback, 200);
    fprintf(f, "</title>\n<desc>%s</desc>\n", desc);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n");
}

/* The title drawn above the picture, centred on x (nothing when NULL). */
static void put_title(FILE *f, double x, const char *title)
{
    if (!title)
        return;
    char a[48];
    fprintf(f,
            "<text x=\"%s\" y=\"28\" text-anchor=\"middle\" font-family=\"sans-serif\" "
            "font-size=\"17\" font-weight=\"bold\" fill=\"#111111\">",
            px(a, x));
    put_text(f, title, 200);
    fputs("</text>\n", f);
}

/* ------------------------------------------------------------------------ */
/* Colours                                                                  */
/* ------------------------------------------------------------------------ */

/* "#rrggbb" for v on the scale [-vmax, vmax]. */
static void colour(char out[8], double v, double vmax)
{
    if (isnan(v)) {
        memcpy(out, NAN_COLOUR, 8);
        return;
    }
    double t = vmax > 0 ? fabs(v) / vmax : (isinf(v) ? 1.0 : 0.0);
    t = t > 1.0 ? 1.0 : t;
    const double *end = v < 0 ? NEG_RGB : POS_RGB;
    int rgb[3];
    for (int i = 0; i < 3; i++)
        rgb[i] = (int)lround(255.0 + (end[i] - 255.0) * t);
    snprintf(out, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

/* ------------------------------------------------------------------------ */
/* Parts of the picture                                                     */
/* ------------------------------------------------------------------------ */

/* The geometry shared by the parts. */
typedef struct layout {
    double left, top; /* matrix origin */
    double width, height;
    size_t n, g; /* rows, and cells shown per row (g <= n) */
    double vmax; /* largest finite |value| */
    int has_nan;
} layout;

/* The shown value of cell (r, c): the entry itself, or when downsampled the
 * entry of largest magnitude in the bin (NaN wins, to stay visible). */
static double cell(const layout *L, const double *m, size_t r, size_t c)
{
    if (L->g == L->n)
        return m[r * L->n + c];
    const size_t r0 = r * L->n / L->g, r1 = (r + 1) * L->n / L->g;
    const size_t c0 = c * L->n / L->g, c1 = (c + 1) * L->n / L->g;
    double best = 0.0;
    for (size_t i = r0; i < r1; i++)
        for (size_t j = c0; j < c1; j++) {
            const double v = m[i * L->n + j];
            if (isnan(v))
                return v;
            if (fabs(v) > fabs(best))
                best = v;
        }
    return best;
}

static void put_cells(FILE *f, const layout *L, const double *m)
{
    char a[48], b[48];
    fprintf(f, "<g transform=\"translate(%s %s) ", px(a, L->left), px(b, L->top));
    fprintf(f, "scale(%s)\" shape-rendering=\"crispEdges\">\n",
            num(a, "%.6f", PLOT / (double)L->g));
    for (size_t r = 0; r < L->g; r++) {
        char run[8] = "", c8[8];
        size_t start = 0;
        for (size_t c = 0; c <= L->g; c++) {
            if (c < L->g)
                colour(c8, cell(L, m, r, c), L->vmax);
            if (c == L->g || strcmp(c8, run) != 0) {
                if (c > 0 && strcmp(run, "#ffffff") != 0)
                    fprintf(f,
                            "<rect x=\"%zu\" y=\"%zu\" width=\"%zu\" height=\"1\" fill=\"%s\"/>\n",
                            start, r, c - start, run);
                memcpy(run, c8, sizeof run);
                start = c;
            }
        }
    }
    fputs("</g>\n", f);
}

/* Spreads label positions pos[0..k) (ascending) at least LABEL_STEP apart
 * within [lo, hi], moving each as little as the greedy passes allow. */
static void spread(double *pos, size_t k, double lo, double hi)
{
    for (size_t i = 1; i < k; i++)
        if (pos[i] < pos[i - 1] + LABEL_STEP)
            pos[i] = pos[i - 1] + LABEL_STEP;
    for (size_t i = k; i-- > 0;) {
        const double cap = i + 1 < k ? pos[i + 1] - LABEL_STEP : hi;
        if (pos[i] > cap)
            pos[i] = cap;
    }
    for (size_t i = 0; i < k; i++)
        if (pos[i] < lo + (double)i * LABEL_STEP)
            pos[i] = lo + (double)i * LABEL_STEP; /* too many labels: they overflow at the end */
}

static void put_label_text(FILE *f, const char *const names[], const size_t sizes[], size_t i)
{
    if (names && names[i]) {
        put_text(f, names[i], 40);
        fprintf(f, " (%zu)", sizes[i]);
    } else {
        fprintf(f, "%zu", sizes[i]);
    }
}

/* Block boundaries across the matrix, and the labels on the left and on top,
 * each joined to the middle of its block by a leader line. */
static void put_blocks(FILE *f,
                       const layout *L,
                       size_t nb,
                       const char *const names[],
                       const size_t sizes[],
                       double *mid)
{
    char a[48], b[48], c[48], d[48];
    const double s = PLOT / (double)L->n;
    fputs("<g stroke=\"#222222\" stroke-width=\"1.2\" fill=\"none\">\n", f);
    size_t off = 0;
    for (size_t i = 0; i < nb; i++) {
        mid[i] = ((double)off + (double)sizes[i] / 2) * s;
        off += sizes[i];
        if (i + 1 == nb)
            break;
        const double e = (double)off * s;
        fprintf(f, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\"/>\n", px(a, L->left),
                px(b, L->top + e), px(c, L->left + PLOT), px(d, L->top + e));
        fprintf(f, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\"/>\n", px(a, L->left + e),
                px(b, L->top), px(c, L->left + e), px(d, L->top + PLOT));
    }
    fputs("</g>\n", f);

    /* Left labels, right-aligned, spread vertically. */
    double *pos = mid + nb;
    memcpy(pos, mid, nb * sizeof *pos);
    spread(pos, nb, LABEL_STEP / 2, PLOT - LABEL_STEP / 2);
    fprintf(f, "<g font-family=\"sans-serif\" font-size=\"%d\" fill=\"#111111\">\n", (int)FONT);
    for (size_t i = 0; i < nb; i++) {
        fprintf(f, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#777777\"/>\n",
                px(a, L->left - 14), px(b, L->top + pos[i]), px(c, L->left - 2),
                px(d, L->top + mid[i]));
        fprintf(f, "<text x=\"%s\" y=\"%s\" text-anchor=\"end\" dominant-baseline=\"central\">",
                px(a, L->left - 17), px(b, L->top + pos[i]));
        put_label_text(f, names, sizes, i);
        fputs("</text>\n", f);
    }
    /* Top labels, rotated by -45 degrees, spread horizontally. */
    memcpy(pos, mid, nb * sizeof *pos);
    spread(pos, nb, LABEL_STEP / 2, PLOT + 60);
    for (size_t i = 0; i < nb; i++) {
        const double x = L->left + pos[i], y = L->top - 16;
        fprintf(f, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#777777\"/>\n", px(a, x),
                px(b, L->top - 13), px(c, L->left + mid[i]), px(d, L->top - 2));
        fprintf(f, "<text x=\"%s\" y=\"%s\" transform=\"rotate(-45 %s %s)\">", px(a, x), px(b, y),
                px(c, x), px(d, y));
        put_label_text(f, names, sizes, i);
        fputs("</text>\n", f);
    }
    fputs("</g>\n", f);
}

/* The colour bar: red (+vmax) at the top, white (0) in the middle, blue at the
 * bottom, with five ticks. */
static void put_legend(FILE *f, const layout *L)
{
    char a[48], b[48], c[48], v[48];
    const double x = L->left + PLOT + LEGEND_GAP, y = L->top, h = PLOT;
    char top[8], bot[8];
    colour(top, 1.0, 1.0);
    colour(bot, -1.0, 1.0);
    fprintf(f,
            "<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\">"
            "<stop offset=\"0\" stop-color=\"%s\"/><stop offset=\"0.5\" stop-color=\"#ffffff\"/>"
            "<stop offset=\"1\" stop-color=\"%s\"/></linearGradient></defs>\n",
            top, bot);
    fprintf(f,
            "<rect x=\"%s\" y=\"%s\" width=\"%d\" height=\"%s\" fill=\"url(#scale)\" "
            "stroke=\"#222222\"/>\n",
            px(a, x), px(b, y), (int)LEGEND_W, px(c, h));
    fputs("<g font-family=\"sans-serif\" font-size=\"11\" fill=\"#111111\">\n", f);
    for (int k = 0; k <= 4; k++) {
        const double frac = k / 4.0, val = L->vmax * (1.0 - 2.0 * frac);
        const double ty = y + h * frac;
        fprintf(f, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#222222\"/>\n",
                px(a, x + LEGEND_W), px(b, ty), px(c, x + LEGEND_W + 4), px(v, ty));
        fprintf(f, "<text x=\"%s\" y=\"%s\" dominant-baseline=\"central\">%s</text>\n",
                px(a, x + LEGEND_W + 7), px(b, ty), num(v, "%.3g", val == 0 ? 0.0 : val));
    }
    if (L->has_nan)
        fprintf(f,
                "<rect x=\"%s\" y=\"%s\" width=\"%d\" height=\"12\" fill=\"%s\"/>"
                "<text x=\"%s\" y=\"%s\" dominant-baseline=\"central\">NaN</text>\n",
                px(a, x), px(b, y + h + 14), (int)LEGEND_W, NAN_COLOUR, px(c, x + LEGEND_W + 7),
                px(v, y + h + 20));
    fputs("</g>\n", f);
}

/* ------------------------------------------------------------------------ */
/* Public function                                                          */
/* ------------------------------------------------------------------------ */

static hess_status check_args(
    hess_context *ctx, const char *path, size_t n, const double *m, size_t nb, const size_t sizes[])
{
    if (!path || !m || n == 0 || n > 1u << 20) {
        hess__error(ctx, HESS_ERR_ARG, "%s: %s", fn,
                    !path ? "NULL path"
                    : !m  ? "NULL matrix"
                          : "n must be 1..2^20");
        return HESS_ERR_ARG;
    }
    if (nb && !sizes) {
        hess__error(ctx, HESS_ERR_ARG, "%s: NULL sizes for %zu blocks", fn, nb);
        return HESS_ERR_ARG;
    }
    size_t sum = 0;
    for (size_t i = 0; i < nb; i++) {
        if (sizes[i] == 0 || sizes[i] > n - sum) {
            hess__error(ctx, HESS_ERR_ARG, "%s: block sizes must be >= 1 and sum to n = %zu", fn,
                        n);
            return HESS_ERR_ARG;
        }
        sum += sizes[i];
    }
    if (nb && sum != n) {
        hess__error(ctx, HESS_ERR_ARG, "%s: block sizes sum to %zu, not n = %zu", fn, sum, n);
        return HESS_ERR_ARG;
    }
    return HESS_OK;
}

/* The layout from the sizes of the labels. */
static layout make_layout(size_t n,
                          const double *m,
                          size_t nb,
                          const char *const names[],
                          const size_t sizes[],
                          const char *title)
{
    layout L;
    memset(&L, 0, sizeof L);
    L.n = n;
    L.g = n > MAX_CELLS ? MAX_CELLS : n;
    for (size_t i = 0; i < n * n; i++) {
        if (isnan(m[i]))
            L.has_nan = 1;
        else if (isfinite(m[i]) && fabs(m[i]) > L.vmax)
            L.vmax = fabs(m[i]);
    }
    double label = 0.0; /* widest label, in characters */
    for (size_t i = 0; i < nb; i++) {
        char digits[32];
        double w = (double)snprintf(digits, sizeof digits, "%zu", sizes[i]);
        if (names && names[i])
            w += 3.0 + (double)text_chars(names[i], 40);
        label = w > label ? w : label;
    }
    const double lw = label * CHAR_W;
    L.left = 20.0 + (nb ? lw + 20.0 : 0.0);
    L.top = (title ? TITLE_H : 14.0) + (nb ? lw * 0.7071 + 22.0 : 0.0);
    L.width = L.left + PLOT + LEGEND_GAP + LEGEND_W + 70.0;
    if (nb && L.width < L.left + PLOT + 60 + lw * 0.7071 + 10)
        L.width = L.left + PLOT + 60 + lw * 0.7071 + 10; /* room for the last top label */
    L.height = L.top + PLOT + 50.0;
    return L;
}

/* What put_svg draws. */
typedef struct heatmap {
    const layout *L;
    size_t n;
    const double *m;
    size_t nblocks;
    const char *const *names;
    const size_t *sizes;
    const char *title;
    double *mid; /* 2 * nblocks label positions (scratch) */
} heatmap;

/* The whole SVG file of arg (a heatmap). */
static bool put_svg(FILE *f, const void *arg)
{
    const heatmap *h = arg;
    const layout *L = h->L;
    char a[48], b[48], desc[160];
    snprintf(desc, sizeof desc,
             "%zu x %zu matrix; colour scale symmetric about 0, max |value| = %s", h->n, h->n,
             num(a, "%.6g", L->vmax));
    put_head(f, L->width, L->height, h->title, "matrix heatmap", desc);
    put_title(f, L->left + PLOT / 2, h->title);
    put_cells(f, L, h->m);
    if (h->nblocks)
        put_blocks(f, L, h->nblocks, h->names, h->sizes, h->mid);
    fprintf(f,
            "<rect x=\"%s\" y=\"%s\" width=\"%d\" height=\"%d\" fill=\"none\" "
            "stroke=\"#222222\" stroke-width=\"1.2\"/>\n",
            px(a, L->left), px(b, L->top), (int)PLOT, (int)PLOT);
    put_legend(f, L);
    fprintf(f,
            "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\" font-family=\"sans-serif\" "
            "font-size=\"12\" fill=\"#444444\">%zu &#215; %zu",
            px(a, L->left + PLOT / 2), px(b, L->top + PLOT + 24), h->n, h->n);
    if (L->g < h->n)
        fprintf(f, ", shown as %zu &#215; %zu cells (largest |value| per cell)", L->g, L->g);
    fprintf(f, "; max |value| = %s</text>\n</svg>\n", num(a, "%.4g", L->vmax));
    return !ferror(f);
}

hess_status hess_write_svg_heatmap(hess_context *ctx,
                                   const char *path,
                                   size_t n,
                                   const double *m,
                                   size_t nblocks,
                                   const char *const names[],
                                   const size_t sizes[],
                                   const char *title)
{
    hess_status st = hess__enter(ctx, fn);
    if (st != HESS_OK || (st = check_args(ctx, path, n, m, nblocks, sizes)) != HESS_OK)
        return st;
    const layout L = make_layout(n, m, nblocks, names, sizes, title);
    /* Label positions: 2 per block, on the arena, given back at the end. */
    const hess_mark mk = hess__mark(ctx);
    double *mid = nblocks ? hess__alloc(ctx, 2 * nblocks * sizeof *mid, fn) : NULL;
    if (nblocks && !mid)
        return ctx->status;
    const heatmap h = {&L, n, m, nblocks, names, sizes, title, mid};
    st = hess__save_atomic(ctx, path, fn, put_svg, &h);
    hess__rewind(ctx, &mk);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Line chart                                                               */
/* ------------------------------------------------------------------------ */

#define CHART_W   560.0 /* plot area */
#define CHART_H   320.0
#define CHART_L   72.0 /* left of the plot: y tick labels and the y label */
#define CHART_B   56.0 /* below the plot: x tick labels and the x label */
#define CHART_R   24.0 /* right of the plot (and of the legend) */
#define KEY_GAP   20.0 /* between the plot and the legend */
#define KEY_ROW   20.0 /* one legend row per named series */
#define KEY_LINE  24.0 /* the stroke before a name */
#define NAME_MAX  40   /* characters of a name shown; longer ones are cut */
#define LABEL_MAX 100  /* characters of an axis label shown */

/* The colours of the series, in turn (matplotlib's first eight). */
static const char *const SERIES_RGB[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                         "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f"};

/* An axis from lo to hi, with ticks at the multiples of step in between. */
typedef struct axis {
    double lo, hi, step;
    double k0, k1; /* the ticks: k * step for k = k0..k1 (within [lo, hi]) */
    int digits;    /* significant digits of the tick labels */
} axis;

/* The axis over values in [mn, mx] (mn > mx: there are none): rounded out to
 * whole steps of 1, 2 or 5 times a power of ten, about five of them.  No
 * values give [0, 1]; one value, or a range too narrow for the digits of a
 * double, is widened about its middle by 10% of it (0.5 about 0).  Halves
 * are taken where a difference could overflow, and the ends are kept finite. */
static axis make_axis(double mn, double mx)
{
    if (mn > mx)
        mn = 0.0, mx = 1.0;
    double half = mx * 0.5 - mn * 0.5;
    if (!(half >= 0.5e-300 && half >= 0.5e-12 * fmax(fabs(mn), fabs(mx)))) {
        const double c = mn * 0.5 + mx * 0.5;
        const double d = c == 0 ? 0.5 : fmax(0.1 * fabs(c), 1e-300);
        mn = fmax(c - d, -DBL_MAX);
        mx = fmin(c + d, DBL_MAX);
        half = mx * 0.5 - mn * 0.5;
    }
    const double raw = half / 2.5, p = pow(10.0, floor(log10(raw))), m = raw / p;
    axis a;
    a.step = p * (m < 1.5 ? 1.0 : m < 3.5 ? 2.0 : m < 7.5 ? 5.0 : 10.0);
    a.k0 = floor(mn / a.step);
    a.k1 = ceil(mx / a.step);
    a.lo = fmax(a.k0 * a.step, -DBL_MAX);
    a.hi = fmin(a.k1 * a.step, DBL_MAX);
    /* enough digits to tell neighbouring ticks apart, at least %g's six */
    const int need = 1 + (int)ceil(log10(fmax(fabs(a.lo), fabs(a.hi)) / a.step));
    a.digits = need < 6 ? 6 : need > 17 ? 17 : need;
    return a;
}

/* Where v lies along a: 0 at lo, 1 at hi. */
static double along(const axis *a, double v)
{
    return (v * 0.5 - a->lo * 0.5) / (a->hi * 0.5 - a->lo * 0.5);
}

/* What put_chart draws, and where. */
typedef struct chart {
    const char *title, *xlabel, *ylabel;
    size_t n_series;
    const hess_series *series;
    size_t points; /* in all series */
    axis x, y;     /* over the finite points */
    double top;    /* of the plot; its left is CHART_L */
    double key_w;  /* width of the legend, 0 without one */
    double width, height;
} chart;

static double chart_x(const chart *c, double x)
{
    return CHART_L + along(&c->x, x) * CHART_W;
}

static double chart_y(const chart *c, double y)
{
    return c->top + (1.0 - along(&c->y, y)) * CHART_H;
}

static chart make_chart(const char *title,
                        const char *xlabel,
                        const char *ylabel,
                        size_t n_series,
                        const hess_series *series)
{
    chart c = {
        .title = title, .xlabel = xlabel, .ylabel = ylabel, .n_series = n_series, .series = series};
    double xmn = INFINITY, xmx = -INFINITY, ymn = INFINITY, ymx = -INFINITY;
    size_t named = 0, longest = 0;
    for (size_t s = 0; s < n_series; s++) {
        const hess_series *S = &series[s];
        c.points += S->n;
        for (size_t i = 0; i < S->n; i++)
            if (isfinite(S->x[i]) && isfinite(S->y[i])) {
                xmn = fmin(xmn, S->x[i]), xmx = fmax(xmx, S->x[i]);
                ymn = fmin(ymn, S->y[i]), ymx = fmax(ymx, S->y[i]);
            }
        if (S->name) {
            const size_t chars = text_chars(S->name, NAME_MAX) + 1; /* an ellipsis */
            longest = chars > longest ? chars : longest;
            named++;
        }
    }
    c.x = make_axis(xmn, xmx);
    c.y = make_axis(ymn, ymx);
    c.top = title ? TITLE_H : 20.0;
    c.key_w = named ? KEY_GAP + KEY_LINE + 6.0 + CHAR_W * (double)longest : 0.0;
    c.width = CHART_L + CHART_W + c.key_w + CHART_R;
    c.height = c.top + fmax(CHART_H, KEY_ROW * (double)named) + CHART_B;
    return c;
}

/* The grid, the frame, the ticks with their values and the axis labels. */
static void put_axes(FILE *f, const chart *c)
{
    char a[48], b[48], d[48], e[48], v[48], fmt[8];
    const double bottom = c->top + CHART_H, right = CHART_L + CHART_W;
    fputs("<g font-family=\"sans-serif\" font-size=\"12\" fill=\"#111111\">\n", f);
    for (int vertical = 0; vertical < 2; vertical++) {
        const axis *ax = vertical ? &c->x : &c->y;
        snprintf(fmt, sizeof fmt, "%%.%dg", ax->digits);
        for (double k = ax->k0; k <= ax->k1; k++) {
            const double t = k * ax->step + 0.0; /* + 0.0: no "-0" */
            if (!(t >= ax->lo && t <= ax->hi))
                continue; /* an end beyond DBL_MAX */
            num(v, fmt, t);
            if (vertical) /* a grid line at x, its value below the plot */
                fprintf(f,
                        "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#dddddd\"/>"
                        "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\">%s</text>\n",
                        px(a, chart_x(c, t)), px(b, c->top), a, px(d, bottom), a,
                        px(e, bottom + 18), v);
            else /* a grid line at y, its value left of the plot */
                fprintf(f,
                        "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#dddddd\"/>"
                        "<text x=\"%s\" y=\"%s\" text-anchor=\"end\" "
                        "dominant-baseline=\"central\">%s</text>\n",
                        px(a, CHART_L), px(b, chart_y(c, t)), px(d, right), b, px(e, CHART_L - 6),
                        b, v);
        }
    }
    fprintf(f,
            "<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"none\" "
            "stroke=\"#222222\"/>\n",
            px(a, CHART_L), px(b, c->top), px(d, CHART_W), px(e, CHART_H));
    if (c->xlabel) {
        fprintf(f, "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\">", px(a, CHART_L + CHART_W / 2),
                px(b, bottom + 44));
        put_text(f, c->xlabel, LABEL_MAX);
        fputs("</text>\n", f);
    }
    if (c->ylabel) {
        fprintf(f, "<text transform=\"translate(18 %s) rotate(-90)\" text-anchor=\"middle\">",
                px(a, c->top + CHART_H / 2));
        put_text(f, c->ylabel, LABEL_MAX);
        fputs("</text>\n", f);
    }
    fputs("</g>\n", f);
}

/* Series s: one polyline per run of finite points (a run of one point is a
 * dot: the point twice, with round caps). */
static void put_series(FILE *f, const chart *c, size_t s)
{
    const hess_series *S = &c->series[s];
    const char *rgb = SERIES_RGB[s % (sizeof SERIES_RGB / sizeof SERIES_RGB[0])];
    char a[48], b[48], first[100] = "";
    size_t run = 0;
    for (size_t i = 0; i <= S->n; i++) {
        const bool ok = i < S->n && isfinite(S->x[i]) && isfinite(S->y[i]);
        if (!ok) {
            if (run)
                fprintf(f, "%s\"/>\n", run == 1 ? first : "");
            run = 0;
            continue;
        }
        px(a, chart_x(c, S->x[i]));
        px(b, chart_y(c, S->y[i]));
        if (run++ == 0) {
            fprintf(f, "<polyline stroke=\"%s\" points=\"%s,%s", rgb, a, b);
            snprintf(first, sizeof first, " %s,%s", a, b);
        } else {
            fprintf(f, " %s,%s", a, b);
        }
    }
}

/* A row per named series: a stroke of its colour and its name. */
static void put_key(FILE *f, const chart *c)
{
    char a[48], b[48], d[48], e[48];
    const double x = CHART_L + CHART_W + KEY_GAP;
    double y = c->top + KEY_ROW / 2;
    fputs("<g font-family=\"sans-serif\" font-size=\"12\" fill=\"#111111\">\n", f);
    for (size_t s = 0; s < c->n_series; s++) {
        if (!c->series[s].name)
            continue;
        const char *rgb = SERIES_RGB[s % (sizeof SERIES_RGB / sizeof SERIES_RGB[0])];
        fprintf(f,
                "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\" "
                "stroke-width=\"3\"/><text x=\"%s\" y=\"%s\" dominant-baseline=\"central\">",
                px(a, x), px(b, y), px(d, x + KEY_LINE), b, rgb, px(e, x + KEY_LINE + 6), b);
        put_text(f, c->series[s].name, NAME_MAX);
        fputs("</text>\n", f);
        y += KEY_ROW;
    }
    fputs("</g>\n", f);
}

/* The whole SVG file of arg (a chart). */
static bool put_chart(FILE *f, const void *arg)
{
    const chart *c = arg;
    char a[48], b[48], d[48], e[48], desc[400];
    snprintf(desc, sizeof desc,
             "line chart of %zu series, %zu point%s; x axis from %s to %s, y axis from %s to %s",
             c->n_series, c->points, c->points == 1 ? "" : "s", num(a, "%.6g", c->x.lo),
             num(b, "%.6g", c->x.hi), num(d, "%.6g", c->y.lo), num(e, "%.6g", c->y.hi));
    put_head(f, c->width, c->height, c->title, "line chart", desc);
    put_title(f, CHART_L + CHART_W / 2, c->title);
    put_axes(f, c);
    fputs("<g fill=\"none\" stroke-width=\"1.8\" stroke-linejoin=\"round\" "
          "stroke-linecap=\"round\">\n",
          f);
    for (size_t s = 0; s < c->n_series; s++)
        put_series(f, c, s);
    fputs("</g>\n", f);
    if (c->key_w > 0)
        put_key(f, c);
    fputs("</svg>\n", f);
    return !ferror(f);
}

/* HESS_OK, or HESS_ERR_ARG recorded: series and their sizes. */
static hess_status check_series(hess_context *ctx, size_t n_series, const hess_series *series)
{
    if (!series || n_series == 0 || n_series > PTRDIFF_MAX / sizeof *series) {
        hess__error(ctx, HESS_ERR_ARG, "%s: %s (n_series = %zu)", fn_lines,
                    !series         ? "NULL series"
                    : n_series == 0 ? "no series to draw"
                                    : "more series than memory could hold",
                    n_series);
        return HESS_ERR_ARG;
    }
    size_t total = 0;
    for (size_t s = 0; s < n_series; s++) {
        const hess_series *S = &series[s];
        const char *bad = S->n > PTRDIFF_MAX / sizeof(double) ? "more points than memory could hold"
                          : S->n && !S->x                     ? "NULL x"
                          : S->n && !S->y                     ? "NULL y"
                          : S->n > SIZE_MAX - total ? "the points of all series overflow size_t"
                                                    : NULL;
        if (bad) {
            hess__error(ctx, HESS_ERR_ARG, "%s: series %zu: %s (n = %zu)", fn_lines, s, bad, S->n);
            return HESS_ERR_ARG;
        }
        total += S->n;
    }
    return HESS_OK;
}

hess_status hess_write_svg_lines(hess_context *ctx,
                                 const char *path,
                                 const char *title,
                                 const char *xlabel,
                                 const char *ylabel,
                                 size_t n_series,
                                 const hess_series *series)
{
    hess_status st = hess__save_begin(ctx, path, fn_lines);
    if (st != HESS_OK || (st = check_series(ctx, n_series, series)) != HESS_OK)
        return st;
    const chart c = make_chart(title, xlabel, ylabel, n_series, series);
    return hess__save_atomic(ctx, path, fn_lines, put_chart, &c);
}
