/* svg.c: a sweep's plot (explore.h): a metric against parameters, the
 * Pareto front drawn as a step line through its points, which are labelled
 * with their varied values. Axes go logarithmic when the values span more
 * than a factor of 20, as sweeps of widths and depths do. Every point has a
 * <title>, which browsers show on hover. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "explore.h"
#include "ir.h"

enum { WIDTH = 880, HEIGHT = 560, LEFT = 90, RIGHT = 200, TOP = 50, BOTTOM = 70, TICKS = 5 };

static const char *const y_names[MX_PLOT_COUNT] = {"latency", "flops", "memory"};

mx_status mx_plot_y_parse(const char *name, mx_plot_y *out, mx_diag *d) {
    for (int i = 0; i < MX_PLOT_COUNT; i++)
        if (strcmp(name, y_names[i]) == 0) {
            *out = (mx_plot_y)i;
            return MX_OK;
        }
    return mx_fail(d, MX_ERR_INVALID, "--y %s: expected latency, flops or memory", name);
}

/* Which latency the plot shows: the GPU's, else the host's, else the estimate. */
typedef enum { LAT_GPU, LAT_HOST, LAT_ESTIMATE } latency_source;

static latency_source latency_of(const mx_explore *e) {
    bool gpu = false, host = false;
    for (int i = 0; i < e->n_variants; i++) {
        gpu |= !isnan(e->variants[i].gpu_ms);
        host |= !isnan(e->variants[i].host_ms);
    }
    return gpu ? LAT_GPU : host ? LAT_HOST : LAT_ESTIMATE;
}

static double y_value(const mx_variant *v, mx_plot_y y, latency_source lat) {
    switch (y) {
    case MX_PLOT_FLOPS: return v->flops;
    case MX_PLOT_MEMORY: return v->peak_bytes;
    default: return lat == LAT_GPU ? v->gpu_ms : lat == LAT_HOST ? v->host_ms : v->estimate_ms;
    }
}

/* A linear or logarithmic map of [lo, hi] onto pixels [a, b]. */
typedef struct {
    double lo, hi;
    bool log;
    double a, b;
} axis;

static axis axis_over(double lo, double hi, double a, double b) {
    axis x = {lo, hi, lo > 0 && hi / lo > 20, a, b};
    if (x.log) {
        x.lo = log10(lo);
        x.hi = log10(hi);
    }
    double pad = x.hi > x.lo ? 0.05 * (x.hi - x.lo) : fabs(x.lo) * 0.1 + 1e-9;
    x.lo -= pad;
    x.hi += pad;
    return x;
}

static double to_pixel(const axis *x, double v) {
    double t = x->log ? log10(v) : v;
    return x->a + (x->b - x->a) * (t - x->lo) / (x->hi - x->lo);
}

static double tick_value(const axis *x, int i) {
    double t = x->lo + (x->hi - x->lo) * i / (TICKS - 1);
    return x->log ? pow(10, t) : t;
}

/* 1.2k, 3.4M, 5.6G: tick labels */
static void si(double v, char *buf, size_t size) {
    static const char prefix[] = " kMGTP";
    int k = 0;
    while (fabs(v) >= 1000 && k < 5) {
        v /= 1000;
        k++;
    }
    snprintf(buf, size, k ? "%.3g%c" : "%.3g", v, prefix[k]);
}

static void xml_text(const char *s, FILE *f) {
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void values_text(const mx_explore *e, const mx_variant *v, FILE *f) {
    for (int k = 0; k < e->n_paths; k++) {
        const char *leaf = strrchr(e->paths[k], '.');
        fputs(k ? ", " : "", f);
        xml_text(leaf ? leaf + 1 : e->paths[k], f);
        fputc('=', f);
        xml_text(v->values[k], f);
    }
}

typedef struct {
    const mx_variant *v;
    double x, y;
} point;

static int by_x_then_y(const void *a, const void *b) {
    const point *p = a, *q = b;
    if (p->x != q->x)
        return p->x < q->x ? -1 : 1;
    return (p->y > q->y) - (p->y < q->y);
}

static void draw_axes(FILE *f, const axis *ax, const axis *ay, const char *x_title, const char *y_title) {
    fprintf(f, "<g class=\"axes\" stroke=\"#333\" fill=\"none\">\n"
               "  <line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n  <line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n</g>\n",
            LEFT, HEIGHT - BOTTOM, WIDTH - RIGHT, HEIGHT - BOTTOM, LEFT, TOP, LEFT, HEIGHT - BOTTOM);
    fprintf(f, "<g class=\"ticks\" font-size=\"11\" fill=\"#333\">\n");
    for (int i = 0; i < TICKS; i++) {
        char label[32];
        double vx = tick_value(ax, i), vy = tick_value(ay, i);
        si(vx, label, sizeof label);
        fprintf(f, "  <text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", to_pixel(ax, vx),
                HEIGHT - BOTTOM + 16, label);
        si(vy, label, sizeof label);
        fprintf(f, "  <text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", LEFT - 6, to_pixel(ay, vy) + 4,
                label);
    }
    fprintf(f, "</g>\n<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\">", (LEFT + WIDTH - RIGHT) / 2,
            HEIGHT - 24);
    xml_text(x_title, f);
    fprintf(f, "</text>\n<text transform=\"translate(22 %d) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">",
            (TOP + HEIGHT - BOTTOM) / 2);
    xml_text(y_title, f);
    fputs("</text>\n", f);
}

/* The plot of the n points (sorted by x), front[i] marking the Pareto front. */
static void draw(const mx_explore *e, const point *pts, const bool *front, int n, const char *y_title, FILE *f) {
    double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        x_lo = fmin(x_lo, pts[i].x), x_hi = fmax(x_hi, pts[i].x);
        y_lo = fmin(y_lo, pts[i].y), y_hi = fmax(y_hi, pts[i].y);
    }
    axis ax = axis_over(n ? x_lo : 0, n ? x_hi : 1, LEFT, WIDTH - RIGHT);
    axis ay = axis_over(n ? y_lo : 0, n ? y_hi : 1, HEIGHT - BOTTOM, TOP);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
               "<text x=\"%d\" y=\"28\" font-size=\"15\">",
            WIDTH, HEIGHT, WIDTH, HEIGHT, LEFT);
    xml_text(e->spec, f);
    fprintf(f, ": %d variants, Pareto front in red</text>\n", n);
    draw_axes(f, &ax, &ay, ax.log ? "parameters (log scale)" : "parameters", y_title);
    fputs("<polyline class=\"pareto\" fill=\"none\" stroke=\"#c0392b\" stroke-width=\"1.5\" points=\"", f);
    double last_y = NAN;
    for (int i = 0; i < n; i++) {
        if (!front[i])
            continue;
        double px = to_pixel(&ax, pts[i].x), py = to_pixel(&ay, pts[i].y);
        if (!isnan(last_y)) /* a step: the front holds its value until the next point */
            fprintf(f, "%.1f,%.1f ", px, last_y);
        fprintf(f, "%.1f,%.1f ", px, py);
        last_y = py;
    }
    fputs("\"/>\n", f);
    for (int i = 0; i < n; i++) {
        double px = to_pixel(&ax, pts[i].x), py = to_pixel(&ay, pts[i].y);
        fprintf(f, "<circle class=\"variant%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" fill=\"%s\"><title>", front[i] ? " front" : "",
                px, py, front[i] ? 5 : 4, front[i] ? "#c0392b" : "#2c7fb8");
        values_text(e, pts[i].v, f);
        fprintf(f, ": %.4g params, %.4g</title></circle>\n", pts[i].x, pts[i].y);
        if (front[i]) {
            fprintf(f, "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" font-size=\"11\">", px + 8, py - 6);
            values_text(e, pts[i].v, f);
            fputs("</text>\n", f);
        }
    }
    fputs("</svg>\n", f);
}

mx_status mx_explore_write_svg(const mx_explore *e, mx_plot_y y, const char *path, mx_diag *d) {
    latency_source lat = latency_of(e);
    char y_title[128];
    if (y == MX_PLOT_FLOPS)
        snprintf(y_title, sizeof y_title, "FLOPs per forward pass");
    else if (y == MX_PLOT_MEMORY)
        snprintf(y_title, sizeof y_title, "planned peak activation memory, bytes");
    else
        snprintf(y_title, sizeof y_title, "latency, ms (%s, %s)",
                 lat == LAT_GPU ? e->gpu_device : lat == LAT_HOST ? e->host_name : e->estimate_name,
                 lat == LAT_ESTIMATE ? "estimated" : "measured");
    point *pts = malloc(((size_t)e->n_variants + 1) * sizeof *pts);
    bool *front = calloc((size_t)e->n_variants + 1, sizeof *front);
    size_t len = strlen(path);
    char *tmp = malloc(len + sizeof ".tmp");
    if (!pts || !front || !tmp) {
        free(pts), free(front), free(tmp);
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    }
    int n = 0;
    for (int i = 0; i < e->n_variants; i++) {
        const mx_variant *v = &e->variants[i];
        double yv = y_value(v, y, lat);
        if (!v->error && !isnan(v->params) && !isnan(yv))
            pts[n++] = (point){v, v->params, yv};
    }
    qsort(pts, (size_t)n, sizeof *pts, by_x_then_y);
    double best = INFINITY; /* fewer params and strictly less y than every point to the left */
    for (int i = 0; i < n; i++)
        if (pts[i].y < best) {
            front[i] = true;
            best = pts[i].y;
        }
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp", sizeof ".tmp");
    mx_status st = MX_OK;
    FILE *f = fopen(tmp, "w");
    if (!f) {
        st = mx_fail(d, MX_ERR_IO, "%s: cannot create it: %s", tmp, strerror(errno));
    } else {
        draw(e, pts, front, n, y_title, f);
        bool written = !ferror(f);
        if (fclose(f) != 0 || !written)
            st = mx_fail(d, MX_ERR_IO, "%s: cannot write it: %s", tmp, strerror(errno));
        else if (rename(tmp, path) != 0)
            st = mx_fail(d, MX_ERR_IO, "%s: cannot rename it to %s: %s", tmp, path, strerror(errno));
        if (st != MX_OK)
            remove(tmp);
    }
    free(pts), free(front), free(tmp);
    return st;
}
