/* cpu_pool.c: the CPU backend's threads (cpu_pool.h), the pool of
 * runtime/emit/standalone_pool.h, which emitted CPU projects ship too, so
 * that the cpu device and an emitted model split and hand over work alike.
 * The device asks for every thread it was given: a thread the system
 * refuses is an error here, where a standalone project runs on those it got. */
#include <stdlib.h>

#include "cpu_pool.h"
#include "emit/standalone_pool.h"
#include "ir.h"

struct mx_cpu_pool {
    mxs_pool pool;
};

mx_status mx_cpu_pool_new(int threads, mx_cpu_pool **out, mx_diag *d) {
    *out = NULL;
    mx_cpu_pool *p = calloc(1, sizeof *p);
    if (!p || mxs_pool_start(&p->pool, threads) != 0) {
        mx_cpu_pool_free(p);
        return mx_fail(d, MX_ERR_NOMEM, "out of memory creating %d threads", threads);
    }
    if (p->pool.threads < threads) {
        int started = p->pool.threads;
        mx_cpu_pool_free(p);
        return mx_fail(d, MX_ERR_INVALID, "cannot start CPU thread %d of %d", started + 1, threads);
    }
    *out = p;
    return MX_OK;
}

int mx_cpu_pool_threads(const mx_cpu_pool *p) { return p->pool.threads; }

void mx_cpu_pool_run(mx_cpu_pool *p, int64_t n, int64_t grain, mx_cpu_task fn, void *ctx) {
    mxs_pool_run(&p->pool, n, grain, fn, ctx);
}

void mx_cpu_pool_rest(mx_cpu_pool *p) { mxs_pool_rest(&p->pool); }

void mx_cpu_pool_free(mx_cpu_pool *p) {
    if (!p)
        return;
    mxs_pool_stop(&p->pool);
    free(p);
}
