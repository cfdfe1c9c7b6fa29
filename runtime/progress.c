/* progress.c: the progress bar (progress.h). */
#include "progress.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

enum { BAR_WIDTH = 24, LABEL_WIDTH = 48 };

double mx_progress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void mx_progress_start(mx_progress *p, FILE *out, const char *what, int total) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->tty = out && isatty(fileno(out));
    snprintf(p->what, sizeof p->what, "%s", what);
    p->total = total;
    p->start = mx_progress_now();
}

/* "1h02m", "3m05s", "12s" */
static void format_seconds(double s, char *buf, size_t size) {
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, size, "%lds", t);
}

/* The time left, or "?" before any item has finished. */
static void time_left(const mx_progress *p, char *buf, size_t size) {
    if (p->done == 0) {
        snprintf(buf, size, "?");
        return;
    }
    double per_item = (mx_progress_now() - p->start) / p->done;
    format_seconds(per_item * (p->total - p->done), buf, size);
}

void mx_progress_step(mx_progress *p, int i, const char *label) {
    if (!p->out)
        return;
    char left[32];
    time_left(p, left, sizeof left);
    if (!p->tty) {
        fprintf(p->out, "%s %d of %d (%s left)%s%s\n", p->what, i + 1, p->total, left, label ? ": " : "",
                label ? label : "");
        fflush(p->out);
        return;
    }
    char bar[BAR_WIDTH + 1];
    int filled = p->total > 0 ? BAR_WIDTH * i / p->total : 0;
    for (int k = 0; k < BAR_WIDTH; k++)
        bar[k] = k < filled ? '#' : '.';
    bar[BAR_WIDTH] = 0;
    char line[256];
    int n = snprintf(line, sizeof line, "%s %d/%d [%s] %s left  %.*s", p->what, i + 1, p->total, bar, left,
                     LABEL_WIDTH, label ? label : "");
    if (n > (int)sizeof line - 1)
        n = (int)sizeof line - 1;
    /* pad over what the previous, longer line left on screen */
    fprintf(p->out, "\r%s%*s", line, p->drawn > n ? p->drawn - n : 0, "");
    fflush(p->out);
    p->drawn = n;
}

void mx_progress_item_done(mx_progress *p) { p->done++; }

void mx_progress_finish(mx_progress *p) {
    if (!p->out)
        return;
    char took[32];
    format_seconds(mx_progress_now() - p->start, took, sizeof took);
    if (p->tty)
        fprintf(p->out, "\r%*s\r", p->drawn, "");
    fprintf(p->out, "%d %ss in %s\n", p->done, p->what, took);
    fflush(p->out);
}
