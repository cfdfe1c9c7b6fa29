/* progress.h: a progress bar for long loops (sweeps, tuning, batches of
 * compiles).
 *
 * On a terminal one line is redrawn in place: what is being done, item i of n,
 * a bar, the time left (from the mean time per finished item) and the item's
 * label. Anywhere else (a pipe, a CI log) each step is one plain line, so logs
 * stay readable. Nothing is printed when out is NULL. */
#ifndef MX_PROGRESS_H
#define MX_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

typedef struct {
    FILE *out;        /* NULL: silent */
    bool tty;         /* redraw one line in place */
    char what[32];    /* "variant", "kernel" */
    int total;
    int done;         /* items finished */
    double start;     /* monotonic seconds when started */
    int drawn;        /* width of the line on screen (tty) */
} mx_progress;

/* Starts a bar over `total` items named `what` ("variant"). */
void mx_progress_start(mx_progress *p, FILE *out, const char *what, int total);
/* Item i (0-based) is starting; label says which (may be NULL). */
void mx_progress_step(mx_progress *p, int i, const char *label);
/* Item finished (for the time left). */
void mx_progress_item_done(mx_progress *p);
/* Clears the bar (tty) or prints the total time (plain). */
void mx_progress_finish(mx_progress *p);
/* Seconds on the monotonic clock. */
double mx_progress_now(void);

#endif
