/* cpu_pool.c: a fork-join pool for the CPU backend's launches (cpu_pool.h).
 *
 * One mutex, a generation counter the workers wait on and a count of shares
 * still running. A launch costs two condition-variable round trips (some
 * microseconds), small against the groups of a model, which each touch
 * megabytes. */
#include <pthread.h>
#include <stdlib.h>

#include "cpu_pool.h"
#include "ir.h"

struct mx_cpu_pool {
    pthread_mutex_t lock;
    pthread_cond_t start, done;
    pthread_t *workers;
    int threads; /* the caller and threads - 1 workers */
    /* the task of the current generation */
    unsigned long generation;
    mx_cpu_task fn;
    void *ctx;
    int64_t n;
    int shares, pending;
    struct worker_arg *args; /* each worker's start argument */
    int stop;
};

typedef struct worker_arg {
    mx_cpu_pool *pool;
    int id; /* its share of a task */
} worker_arg;

static void run_share(mx_cpu_task fn, void *ctx, int64_t n, int shares, int i) {
    int64_t lo = n * i / shares, hi = n * (i + 1) / shares;
    if (lo < hi)
        fn(ctx, lo, hi);
}

static void *worker(void *arg) {
    worker_arg *w = arg;
    mx_cpu_pool *p = w->pool;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->generation == seen && !p->stop)
            pthread_cond_wait(&p->start, &p->lock);
        if (p->stop)
            break;
        seen = p->generation;
        if (w->id >= p->shares)
            continue;
        mx_cpu_task fn = p->fn;
        void *ctx = p->ctx;
        int64_t n = p->n;
        int shares = p->shares;
        pthread_mutex_unlock(&p->lock);
        run_share(fn, ctx, n, shares, w->id);
        pthread_mutex_lock(&p->lock);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

mx_status mx_cpu_pool_new(int threads, mx_cpu_pool **out, mx_diag *d) {
    *out = NULL;
    mx_cpu_pool *p = calloc(1, sizeof *p);
    worker_arg *args = threads > 1 ? calloc((size_t)threads, sizeof *args) : NULL;
    pthread_t *workers = threads > 1 ? calloc((size_t)threads, sizeof *workers) : NULL;
    if (!p || (threads > 1 && (!args || !workers))) {
        free(p), free(args), free(workers);
        return mx_fail(d, MX_ERR_NOMEM, "out of memory creating %d threads", threads);
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = 1;
    p->workers = workers;
    p->args = args;
    for (int i = 1; i < threads; i++) {
        args[i] = (worker_arg){p, i};
        if (pthread_create(&workers[i], NULL, worker, &args[i]) != 0) {
            mx_cpu_pool_free(p);
            return mx_fail(d, MX_ERR_INVALID, "cannot start CPU thread %d of %d", i + 1, threads);
        }
        p->threads = i + 1;
    }
    *out = p;
    return MX_OK;
}

int mx_cpu_pool_threads(const mx_cpu_pool *p) { return p->threads; }

void mx_cpu_pool_run(mx_cpu_pool *p, int64_t n, int64_t grain, mx_cpu_task fn, void *ctx) {
    if (n <= 0)
        return;
    int64_t want = grain > 0 ? n / grain : n;
    int shares = want < 1 ? 1 : want < p->threads ? (int)want : p->threads;
    if (shares == 1) {
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->fn = fn, p->ctx = ctx, p->n = n, p->shares = shares, p->pending = shares - 1;
    p->generation++;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->lock);
    run_share(fn, ctx, n, shares, 0);
    pthread_mutex_lock(&p->lock);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

void mx_cpu_pool_free(mx_cpu_pool *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->lock);
    for (int i = 1; i < p->threads; i++)
        pthread_join(p->workers[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
    free(p->workers);
    free(p->args);
    free(p);
}
