/* cpu_pool.c: a fork-join pool for the CPU backend's launches (cpu_pool.h).
 *
 * A generation counter the workers watch and a count of workers still on
 * the current generation, both atomic; every worker answers every launch
 * (one with no share at once), so the caller never writes the next task
 * while a worker may still read this one. A model's groups are launched
 * back to back, microseconds apart, so a worker that is done spins on the
 * generation for a while (SPIN_NS) before it sleeps on a condition
 * variable, and the caller spins as long on the count before it sleeps: a
 * launch that finds its workers awake makes no system call. Sleeping
 * between launches (a condition variable round trip each), a worker on the
 * shared 2-core VM took tens of microseconds to wake, and the caller, its
 * own share done first, slept as long (ViM2-T launches some 250 groups a
 * pass). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "cpu_pool.h"
#include "ir.h"

/* How long a worker watches for the next launch, and the caller for the
 * workers, before sleeping. */
enum { SPIN_NS = 50000 };

struct mx_cpu_pool {
    pthread_mutex_t lock;
    pthread_cond_t start, done;
    pthread_t *workers;
    int threads; /* the caller and threads - 1 workers */
    /* the task of the current generation: written while no worker reads it */
    mx_cpu_task fn;
    void *ctx;
    int64_t n;
    int shares;
    atomic_ulong generation;
    atomic_int pending; /* workers yet to finish the current generation */
    atomic_int stop;
    atomic_int resting; /* mx_cpu_pool_rest: sleep now, do not spin */
    struct worker_arg *args; /* each worker's start argument */
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

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Whether a worker's wait (the generation moved on from `seen`, or stop)
 * or the caller's (no worker pending) ended within SPIN_NS. */
static int spun(mx_cpu_pool *p, int worker, unsigned long seen) {
    int64_t until = 0;
    for (int i = 1;; i++) {
        if (worker ? atomic_load_explicit(&p->generation, memory_order_acquire) != seen || atomic_load(&p->stop)
                   : atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
            return 1;
        if (worker && atomic_load_explicit(&p->resting, memory_order_relaxed))
            return 0;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        if (i % 64 == 0) {
            int64_t t = now_ns();
            if (!until)
                until = t + SPIN_NS;
            else if (t > until)
                return 0;
        }
    }
}

static void *worker(void *arg) {
    worker_arg *w = arg;
    mx_cpu_pool *p = w->pool;
    unsigned long seen = 0;
    for (;;) {
        if (!spun(p, 1, seen)) {
            pthread_mutex_lock(&p->lock);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->start, &p->lock);
            pthread_mutex_unlock(&p->lock);
        }
        if (atomic_load(&p->stop))
            break;
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (w->id < p->shares)
            run_share(p->fn, p->ctx, p->n, p->shares, w->id);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->lock); /* the caller may be asleep on done */
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
    }
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
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->resting, 0);
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
    p->fn = fn, p->ctx = ctx, p->n = n, p->shares = shares;
    atomic_store_explicit(&p->resting, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, p->threads - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_mutex_lock(&p->lock); /* wakes the workers that went to sleep */
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->lock);
    run_share(fn, ctx, n, shares, 0);
    if (!spun(p, 0, 0)) {
        pthread_mutex_lock(&p->lock);
        while (atomic_load(&p->pending) > 0)
            pthread_cond_wait(&p->done, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
}

void mx_cpu_pool_rest(mx_cpu_pool *p) { atomic_store_explicit(&p->resting, 1, memory_order_relaxed); }

void mx_cpu_pool_free(mx_cpu_pool *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stop, 1);
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
