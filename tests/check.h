/* check.h: the test harness. CHECK records a failure and goes on; each test
 * program ends with check_summary(), which prints "N passed, N failed" and
 * returns the exit status. */
#ifndef MX_CHECK_H
#define MX_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (cond) {                                                            \
            check_passed++;                                                    \
        } else {                                                               \
            check_failed++;                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                      \
    } while (0)

#define CHECK_MSG(cond, ...)                                                   \
    do {                                                                       \
        if (cond) {                                                            \
            check_passed++;                                                    \
        } else {                                                               \
            check_failed++;                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
        }                                                                      \
    } while (0)

/* |got - want| <= tol * max(1, |want|), element by element. */
static inline int check_close_impl(const float *got, const double *want, int64_t n, double tol,
                                   const char *what, const char *file, int line) {
    double worst = 0;
    int64_t at = -1;
    for (int64_t i = 0; i < n; i++) {
        double scale = fabs(want[i]) > 1 ? fabs(want[i]) : 1;
        double err = fabs((double)got[i] - want[i]) / scale;
        if (!(err <= worst) || isnan(got[i])) {
            worst = isnan(got[i]) ? INFINITY : err;
            at = i;
        }
    }
    if (worst <= tol) {
        check_passed++;
        return 1;
    }
    check_failed++;
    fprintf(stderr, "%s:%d: %s: error %.3g > %.3g at [%lld]: got %.9g, want %.9g\n", file, line,
            what, worst, tol, (long long)at, (double)got[at], want[at]);
    return 0;
}
#define CHECK_CLOSE(got, want, n, tol, what)                                   \
    check_close_impl((got), (want), (n), (tol), (what), __FILE__, __LINE__)

/* A seeded generator for test data (splitmix64). */
static uint64_t check_rng_state = 0x9E3779B97F4A7C15ull;
static inline uint64_t check_rng_u64(void) {
    uint64_t z = (check_rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Uniform in [lo, hi). */
static inline float check_uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)((check_rng_u64() >> 40) * (1.0 / 16777216.0));
}
static inline void check_fill(float *x, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++)
        x[i] = check_uniform(lo, hi);
}

static inline int check_summary(void) {
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed == 0 && check_passed > 0 ? 0 : 1;
}

#endif
