/* finite.h: NaN and Inf in what users give and what runs give back.
 *
 * A NaN weight or input spreads through every value it touches; reported
 * where it enters (the param or input, the element) it is a one-line fix,
 * reported as a min=inf max=-inf summary or as a "mismatch" of the reference
 * it is a riddle. */
#ifndef MX_FINITE_H
#define MX_FINITE_H

#include "mixc.h"

/* How many of x[0 .. n) are NaN or Inf; *first (when not NULL) the index of
 * the first, -1 when none. */
int64_t mx_count_nonfinite(const float *x, int64_t n, int64_t *first);

/* MX_ERR_INVALID naming role ("param", "input"), the value and the first bad
 * element when x holds a NaN or an Inf; else MX_OK. */
mx_status mx_check_finite(const char *role, const char *name, const float *x, int64_t n, mx_diag *d);

#endif
