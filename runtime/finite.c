/* finite.c: NaN and Inf counted and reported (finite.h). */
#include "finite.h"

#include <math.h>

#include "ir.h"

int64_t mx_count_nonfinite(const float *x, int64_t n, int64_t *first) {
    int64_t count = 0, at = -1;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            at = at < 0 ? i : at;
            count++;
        }
    if (first)
        *first = at;
    return count;
}

mx_status mx_check_finite(const char *role, const char *name, const float *x, int64_t n, mx_diag *d) {
    int64_t first;
    int64_t count = mx_count_nonfinite(x, n, &first);
    if (!count)
        return MX_OK;
    return mx_fail(d, MX_ERR_INVALID, "%s %%%s: %lld of its %lld numbers are NaN or Inf (the first, element %lld, is %g)",
                   role, name ? name : "?", (long long)count, (long long)n, (long long)first, (double)x[first]);
}
