/* standalone_pool.h: the fork-join thread pool that runs a kernel's blocks
 * on the CPU, in C11 with pthreads. One copy serves two users: mixc's cpu
 * device (runtime/cpu_pool.c wraps it) and the projects `mixc emit
 * --target cpu` writes (standalone_cpu.h includes it, and the file is
 * shipped beside it), so that an emitted model runs as `mixc run` does.
 *
 * A task runs over a range [0, n) cut into one contiguous share per thread
 * (a kernel's blocks: rows, channels or elements, neighbours sharing cache
 * lines); the caller takes share 0 and returns when every share is done.
 * A generation counter the workers watch and a count of workers still on
 * the current generation, both atomic; every worker answers every task
 * (one with no share at once), so the caller never writes the next task
 * while a worker may still read this one. A model's kernels run back to
 * back, microseconds apart, so a worker that is done spins on the
 * generation for a while (MXS_SPIN_NS) before it sleeps on a condition
 * variable, and the caller spins as long on the count before it sleeps: a
 * task that finds its workers awake makes no system call. Sleeping between
 * tasks (a condition variable round trip each), a worker on a shared
 * 2-core VM took tens of microseconds to wake, and the caller, its own
 * share done first, slept as long (ViM2-T runs some 250 kernels a pass). */
#ifndef MXS_STANDALONE_POOL_H
#define MXS_STANDALONE_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* How long a worker watches for the next task, and the caller for the
 * workers, before sleeping. */
enum { MXS_SPIN_NS = 50000 };

/* Runs items [lo, hi) of a task. */
typedef void (*mxs_pool_task)(void *ctx, int64_t lo, int64_t hi);

typedef struct mxs_pool {
    pthread_mutex_t lock;
    pthread_cond_t start, done;
    pthread_t *workers; /* [1 .. threads-1] */
    struct mxs_pool_worker {
        struct mxs_pool *pool;
        int id; /* its share of a task */
    } *args;            /* each worker's start argument */
    int ready;          /* the lock and conditions are initialised */
    int threads;        /* the caller and the workers started */
    /* the task of the current generation: written while no worker reads it */
    mxs_pool_task fn;
    void *ctx;
    int64_t n;
    int shares;
    atomic_ulong generation;
    atomic_int pending; /* workers yet to finish the current generation */
    atomic_int stop;
    atomic_int resting; /* mxs_pool_rest: sleep now, do not spin */
} mxs_pool;

static void mxs_pool_share(mxs_pool_task fn, void *ctx, int64_t n, int shares, int i) {
    int64_t lo = n * i / shares, hi = n * (i + 1) / shares;
    if (lo < hi)
        fn(ctx, lo, hi);
}

static int64_t mxs_pool_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Whether a worker's wait (a generation after `seen`, or stop) or the
 * caller's (no worker pending) ended within MXS_SPIN_NS. */
static int mxs_pool_spun(mxs_pool *p, int worker, unsigned long seen) {
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
            int64_t t = mxs_pool_now_ns();
            if (!until)
                until = t + MXS_SPIN_NS;
            else if (t > until)
                return 0;
        }
    }
}

static void *mxs_pool_worker(void *arg) {
    const struct mxs_pool_worker *w = (const struct mxs_pool_worker *)arg;
    mxs_pool *p = w->pool;
    unsigned long seen = 0;
    for (;;) {
        if (!mxs_pool_spun(p, 1, seen)) {
            pthread_mutex_lock(&p->lock);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->start, &p->lock);
            pthread_mutex_unlock(&p->lock);
        }
        if (atomic_load(&p->stop))
            break;
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (w->id < p->shares)
            mxs_pool_share(p->fn, p->ctx, p->n, p->shares, w->id);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->lock); /* the caller may be asleep on done */
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
    }
    return NULL;
}

/* Starts up to threads - 1 workers into a zeroed *p; p->threads says how
 * many threads it has (the caller included): fewer when the system refused
 * one, and the caller decides whether that is enough. 1 when out of
 * memory (nothing started; mxs_pool_stop still frees). */
static int mxs_pool_start(mxs_pool *p, int threads) {
    p->threads = 1;
    if (threads < 2)
        return 0;
    p->workers = (pthread_t *)calloc((size_t)threads, sizeof *p->workers);
    p->args = (struct mxs_pool_worker *)calloc((size_t)threads, sizeof *p->args);
    if (!p->workers || !p->args)
        return 1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->resting, 0);
    p->ready = 1;
    for (int i = 1; i < threads; i++) {
        p->args[i].pool = p, p->args[i].id = i;
        if (pthread_create(&p->workers[i], NULL, mxs_pool_worker, &p->args[i]) != 0)
            break;
        p->threads = i + 1;
    }
    return 0;
}

/* Runs fn over [0, n) on min(threads, n / grain) threads (at least one). */
static void mxs_pool_run(mxs_pool *p, int64_t n, int64_t grain, mxs_pool_task fn, void *ctx) {
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
    mxs_pool_share(fn, ctx, n, shares, 0);
    if (!mxs_pool_spun(p, 0, 0)) {
        pthread_mutex_lock(&p->lock);
        while (atomic_load(&p->pending) > 0)
            pthread_cond_wait(&p->done, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
}

/* The workers, which watch for the next task a while after each, sleep
 * now: a library call is about to run threads of its own on their cores
 * (or the caller a product alone). The next task wakes them. */
static void mxs_pool_rest(mxs_pool *p) {
    if (p->ready)
        atomic_store_explicit(&p->resting, 1, memory_order_relaxed);
}

/* Joins the workers and frees what start allocated. */
static void mxs_pool_stop(mxs_pool *p) {
    if (p->ready) {
        pthread_mutex_lock(&p->lock);
        atomic_store(&p->stop, 1);
        pthread_cond_broadcast(&p->start);
        pthread_mutex_unlock(&p->lock);
        for (int i = 1; i < p->threads; i++)
            pthread_join(p->workers[i], NULL);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->start);
        pthread_cond_destroy(&p->done);
    }
    free(p->workers), free(p->args);
    p->workers = NULL, p->args = NULL, p->ready = 0, p->threads = 1;
}

#endif
