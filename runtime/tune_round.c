/* tune_round.c: the programs of several tuning rounds opened at once
 * (tune.h). Opening a round is compiling the whole model with its tiles
 * (LLVM O3 on the CPU, seconds for ViM2-T) while running it is a fraction
 * of that, so the search compiles the next rounds together, one thread per
 * core, then runs and times them one after the other on a quiet machine.
 * Each round opens its own copy of the program (the tiles are the
 * program's), so the opens share nothing they write. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tune.h"

typedef struct {
    const mx_backend *be;
    const mx_target *t;
    mx_tune_build **builds;
    int n, next;
    pthread_mutex_t lock;
} open_queue;

static void open_one(const open_queue *q, mx_tune_build *b) {
    static const mx_backend_options plain = {0}; /* candidates run unpruned */
    b->state = NULL;
    b->st = q->be->open(q->t, &b->program, &plain, &b->state, &b->why);
    b->opened = true;
    if (b->st != MX_OK)
        b->state = NULL;
}

static void *open_worker(void *arg) {
    open_queue *q = arg;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        int i = q->next < q->n ? q->next++ : -1;
        pthread_mutex_unlock(&q->lock);
        if (i < 0)
            return NULL;
        open_one(q, q->builds[i]);
    }
}

mx_tune_build *mx_tune_build_new(const mx_program *p, const mx_tiles *tiles) {
    mx_tune_build *b = calloc(1, sizeof *b);
    mx_tiles *copy = malloc(((size_t)p->n_groups + 1) * sizeof *copy);
    if (!b || !copy) {
        free(b), free(copy);
        return NULL;
    }
    memcpy(copy, tiles, (size_t)p->n_groups * sizeof *copy);
    *b = (mx_tune_build){.program = *p, .tiles = copy};
    b->program.tiles = copy;
    return b;
}

void mx_tune_build_free(const mx_backend *be, mx_tune_build *b) {
    if (!b)
        return;
    if (b->state)
        be->close(b->state);
    free(b->tiles);
    free(b);
}

void mx_tune_open_all(const mx_backend *be, const mx_target *t, mx_tune_build **builds, int n, int jobs) {
    open_queue q = {.be = be, .t = t, .builds = builds, .n = n};
    pthread_mutex_init(&q.lock, NULL);
    pthread_t threads[MX_TUNE_MAX_JOBS];
    int started = 0;
    jobs = jobs < n ? jobs : n;
    jobs = jobs < MX_TUNE_MAX_JOBS ? jobs : MX_TUNE_MAX_JOBS;
    for (int j = 1; j < jobs; j++) /* this thread is one of them */
        if (pthread_create(&threads[started], NULL, open_worker, &q) == 0)
            started++;
    open_worker(&q);
    for (int j = 0; j < started; j++)
        pthread_join(threads[j], NULL);
    pthread_mutex_destroy(&q.lock);
}
