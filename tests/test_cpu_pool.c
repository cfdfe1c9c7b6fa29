/* test_cpu_pool.c: the CPU backend's thread pool (cpu_pool.h).
 *   - every item of every launch runs exactly once, on 1 to 4 threads,
 *     over launches of 1 to 1000 items and grains 0 to 6 (one share, some,
 *     all threads), back to back (workers caught while they spin), after a
 *     task that outlasts the spin (workers woken from their sleep), and
 *     after mx_cpu_pool_rest (workers put to sleep by the caller);
 *   - each launch's items are all done when mx_cpu_pool_run returns;
 *   - a pool freed while its workers spin, or sleep, joins them. */
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "cpu_pool.h"

enum { ITEMS = 1000, LAUNCHES = 3000 };

typedef struct {
    atomic_int runs[ITEMS];
    int launch;
    int64_t slow_item; /* sleeps 200 us (past the pool's spin), or -1 */
} counts;

static void count(void *ctx, int64_t lo, int64_t hi) {
    counts *c = ctx;
    for (int64_t i = lo; i < hi; i++) {
        if (i == c->slow_item) {
            struct timespec t = {0, 200000};
            nanosleep(&t, NULL);
        }
        atomic_fetch_add(&c->runs[i], 1);
    }
}

static void check_threads(int threads) {
    mx_cpu_pool *p = NULL;
    mx_diag d = {{0}};
    CHECK_MSG(mx_cpu_pool_new(threads, &p, &d) == MX_OK, "%d threads: %s", threads, d.msg);
    if (!p)
        return;
    CHECK(mx_cpu_pool_threads(p) == threads);
    counts *c = calloc(1, sizeof *c);
    int bad = 0;
    for (int r = 0; c && r < LAUNCHES; r++) {
        int64_t n = 1 + (r * 7919) % ITEMS, grain = r % 7;
        for (int64_t i = 0; i < ITEMS; i++)
            atomic_store(&c->runs[i], 0);
        c->slow_item = r % 97 == 0 ? n - 1 : -1;
        if (r % 50 == 0)
            mx_cpu_pool_rest(p);
        mx_cpu_pool_run(p, n, grain, count, c);
        for (int64_t i = 0; i < ITEMS; i++)
            if (atomic_load(&c->runs[i]) != (i < n ? 1 : 0) && bad++ < 5)
                fprintf(stderr, "%d threads, launch %d (%lld items, grain %lld): item %lld ran %d times\n", threads,
                        r, (long long)n, (long long)grain, (long long)i, atomic_load(&c->runs[i]));
    }
    CHECK_MSG(bad == 0, "%d threads: %d items ran other than once", threads, bad);
    free(c);
    mx_cpu_pool_free(p); /* its workers spinning */
    CHECK_MSG(mx_cpu_pool_new(threads, &p, &d) == MX_OK, "%d threads: %s", threads, d.msg);
    struct timespec t = {0, 5000000};
    nanosleep(&t, NULL);
    mx_cpu_pool_free(p); /* asleep */
}

int main(void) {
    for (int threads = 1; threads <= 4; threads++)
        check_threads(threads);
    return check_summary();
}
