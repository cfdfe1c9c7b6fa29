/* bench.h: what the benchmark programs share: the GPU's target or a clear
 * refusal, the caller's tensors set through the public API, tensors saved
 * for bench/torch_ref.py, and the JSON header every result file starts with
 * (machine, CPU, GPU and its roofline rates, git commit). Every number is
 * compiled, run and timed through include/mixc.h (mx_compile, mx_time with
 * flush_l2: CUDA events, the L2 flushed before each pass). See
 * bench/README.md. */
#ifndef MX_BENCH_H
#define MX_BENCH_H

#include <stdio.h>

#include "backend.h"
#include "rtc.h"

typedef struct {
    const char *prog;   /* "bench_scan", for messages */
    mx_target t;        /* GPU 0; with --smoke the emulated h100 */
    bool smoke;         /* --smoke: the benchmark itself checked on the host emulation */
    double tune_s;      /* --tune SECONDS: tuned against default (bench_tuned), 0: not */
    char results[1024]; /* where files go: $MIXC_BENCH_RESULTS, else bench/results */
} bench;

/* The module c runs and its programs' cubins (a kernel-cache hit: the same
 * compile mx_compile made), for kernel listings; free both with
 * bench_module_free. */
typedef struct {
    mx_module m;
    mx_cubin cubins[MX_CODEGEN_MAX_PROGRAMS];
} bench_module;
mx_status bench_module_of(mx_compiled *c, bench_module *bm, mx_diag *d);
void bench_module_free(bench_module *bm);
/* Kernel k's resources as ptxas reported them; NULL when unknown. */
const mx_kernel_usage *bench_kernel_usage(const bench_module *bm, int k);

/* The commit the source tree is at, "-dirty" when it has changes;
 * MIXC_BENCH_COMMIT when set (a copy of the tree without .git). */
void bench_git_commit(char *buf, size_t size);
/* "AMD_EPYC-512bit": a CPU target's name as a file name's part, and its
 * vector width (one CPU name is sold with and without AVX-512), so that
 * result files of different machines do not overwrite one another. */
void bench_cpu_tag(const mx_target *t, char *buf, size_t size);

/* Writes f32 tensors as safetensors to path (through path.tmp and a rename),
 * the model's n_set overrides in the header's metadata ("overrides":
 * "batch=64;input.image_size=224"), where torch_ref.py reads them. */
typedef struct {
    const char *name;
    int rank;
    const int64_t *dims;
    const float *data;
} bench_tensor;
mx_status bench_save_tensors(const char *path, const bench_tensor *t, int n, const char *const *set, int n_set,
                             mx_diag *d);

/* A result file: bench/results/<prog>-<device>.json, written to a temporary
 * name and renamed into place by bench_finish. */
typedef struct {
    FILE *f;
    char path[1024], tmp[1100];
    int n_results;
} bench_json;
/* Starts the next element of "results" (the caller writes its fields). */
void bench_json_next(bench_json *j);

/* --tune SECONDS: a program's kernels tuned on the GPU (mx_tune, SECONDS of
 * budget, the database MIXC_TUNE_DB or the kernel cache's), then the
 * default program (MIXC_NO_TUNE=1) and the tuned one (the database's
 * winners, as any compile picks them) compiled afresh and timed in
 * alternating blocks of 5 single passes, so that both see the same GPU
 * state; their outputs compared. --smoke ranks by the roofline estimate
 * (the emulation times nothing). compile(ctx, no_load, d) gives a program
 * with its inputs and params set (no_load: compiled, not loaded). */
typedef mx_compiled *(*bench_compile_fn)(void *ctx, bool no_load, mx_diag *d);
typedef struct {
    mx_tune_summary tune;
    mx_timing def, tuned;
    double max_abs_diff, scale; /* the outputs, tuned against default; scale: the default's largest */
} bench_tuned;
mx_status bench_tuned_run(const bench *b, bench_compile_fn compile, void *ctx, int runs, bench_tuned *out,
                          mx_diag *d);
/* Its second half, with the database as it is (bench_tune): the default
 * and the tuned program compiled (no_load false), warmed up, their outputs
 * compared, then `runs` single passes of each timed in alternating blocks
 * of `block`; out->tune is left as it was. */
mx_status bench_default_vs_tuned(bench_compile_fn compile, void *ctx, int runs, int block, bench_tuned *out,
                                 mx_diag *d);
/* Its fields in the current result (", \"tune\": {...}") and a line on stdout. */
void bench_tuned_print(bench_json *j, const char *what, const bench_tuned *t);

/* A benchmark program's start: its command line (--help, --smoke, --tune
 * SECONDS: the file is then <prog>_tune-<device>.json), GPU 0's
 * target (without one prints "<prog>: no GPU (<why>): nothing measured, no
 * results written") and the result file (its header written, the "results"
 * array open), and says where it runs. --smoke runs the same code on the
 * host emulation of an H100 at small sizes (the programs give them): a
 * check of the benchmark itself, whose times mean nothing; its file is
 * <prog>-emu-h100.json. Returns -1 to go on, else the exit status. */
int bench_start(bench *b, bench_json *j, const char *prog, int argc, char **argv);
/* A case that failed, as a result of its own: its identifying fields (JSON
 * members, "\"B\": 8, ...") and why, so that one failure costs its own
 * numbers only. */
void bench_json_failure(bench_json *j, const char *fields, const char *why);
/* Its end: the result file renamed into place when it holds any result
 * (measured or failed: a program that fails a case goes on with the next
 * and returns 1), dropped when it holds none. Returns rc, the program's
 * exit status (1 when the file cannot be written). */
int bench_finish(bench_json *j, int rc);

#endif
