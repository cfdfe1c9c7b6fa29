/* cpu_pool.h: the CPU backend's threads.
 *
 * A fixed set of workers that run one task at a time over a range [0, n):
 * the range is cut into one contiguous share per thread (a kernel's blocks:
 * rows, channels or elements, neighbours sharing cache lines), the caller
 * takes the first share and returns when every share is done. */
#ifndef MX_CPU_POOL_H
#define MX_CPU_POOL_H

#include <stdint.h>

#include "mixc.h"

typedef struct mx_cpu_pool mx_cpu_pool;

/* Runs items [lo, hi) of a task. */
typedef void (*mx_cpu_task)(void *ctx, int64_t lo, int64_t hi);

/* A pool of `threads` threads in all (the caller is one of them). */
mx_status mx_cpu_pool_new(int threads, mx_cpu_pool **out, mx_diag *d);
/* Runs fn over [0, n) on min(threads, n / grain) threads (at least one). */
void mx_cpu_pool_run(mx_cpu_pool *p, int64_t n, int64_t grain, mx_cpu_task fn, void *ctx);
int mx_cpu_pool_threads(const mx_cpu_pool *p);
/* The workers, which watch for the next launch a while after each, sleep
 * now: a library call is about to run threads of its own on their cores.
 * The next launch wakes them. */
void mx_cpu_pool_rest(mx_cpu_pool *p);
void mx_cpu_pool_free(mx_cpu_pool *p);

#endif
