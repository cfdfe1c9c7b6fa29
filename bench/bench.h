/* bench.h: what the benchmark programs share: the GPU or a clear refusal,
 * event timing with the L2 flushed before every run, tensors saved for
 * bench/torch_ref.py, and the JSON header every result file starts with
 * (machine, device, clocks, peaks, git commit). See bench/README.md. */
#ifndef MX_BENCH_H
#define MX_BENCH_H

#include <stdio.h>

#include "gpu.h"

typedef struct {
    const char *prog; /* "bench_scan", for messages */
    mx_gpu *gpu;
    CUdeviceptr flush; /* written before every timed run: twice the L2 */
    size_t flush_bytes;
    CUevent start, stop;
} bench;


typedef struct {
    int runs;
    double median_ms, min_ms, max_ms, p10_ms, p90_ms;
} bench_times;

/* warmup untimed forward passes, then runs timed ones, each after an L2
 * flush, timed with events around the forward pass alone. */
mx_status bench_time(bench *b, mx_gpu_program *gp, bool graphs, int warmup, int runs, bench_times *t,
                     mx_diag *d);

/* Builds, fuses, plans and generates code for g (taking ownership) for the
 * GPU's sm; mx_gpu_load then loads it with its inputs and params. */
mx_status bench_compile(bench *b, mx_graph *g, mx_program **p, mx_module *m, mx_diag *d);

/* The commit the source tree is at, "-dirty" when it has changes. */
void bench_git_commit(char *buf, size_t size);

/* Writes f32 tensors as safetensors to path (through path.tmp and a rename). */
typedef struct {
    const char *name;
    int rank;
    const int64_t *dims;
    const float *data;
} bench_tensor;
mx_status bench_save_tensors(const char *path, const bench_tensor *t, int n, mx_diag *d);

/* A result file: bench/results/<prog>-<device>.json, written to a temporary
 * name and renamed into place by bench_finish. */
typedef struct {
    FILE *f;
    char path[1024], tmp[1100];
    int n_results;
} bench_json;
/* Starts the next element of "results" (the caller writes its fields). */
void bench_json_next(bench_json *j);

/* A benchmark program's start: opens the GPU (without one prints "<prog>: no
 * GPU (<why>): nothing measured, no results written") and the result file
 * (its header written, the "results" array open), and says where it runs.
 * False, nothing held, when either cannot be had. */
bool bench_start(bench *b, bench_json *j, const char *prog);
/* Its end: the result file renamed into place when rc is 0 (rc becomes 1
 * when that fails), dropped otherwise; the GPU closed. Returns rc, the
 * program's exit status. */
int bench_finish(bench *b, bench_json *j, int rc);

#endif
