/* backend.h: what a device gives the public API (runtime/api.c).
 *
 * mx_compile runs the passes once, whatever the device, then hands the
 * planned program to the target's backend, which generates and loads its code
 * and places its memory (open). Buffers cross this line as mx_buffers over
 * the program's graph p->g, in f32: inputs and params (derived params already
 * bound by mx_program_bind_init) go in through upload, graph outputs come
 * back through download. One backend per device kind; mx_backend_of picks it.
 */
#ifndef MX_BACKEND_H
#define MX_BACKEND_H

#include "codegen.h"
#include "mixc.h"

/* What the compile options (mixc.h) ask of a backend beyond the target. */
typedef struct {
    double prune_scans;       /* mx_compile_options.prune_scans */
    const mx_buffers *params; /* the bound params of p->g: pruning reads the weights */
    bool flush_l2;            /* mx_compile_options.flush_l2 */
} mx_backend_options;

typedef struct {
    mx_device device;
    /* Generates and loads code for p on t, allocates its memory; *state is
     * the backend's. p, t and o outlive the state. */
    mx_status (*open)(const mx_target *t, const mx_program *p, const mx_backend_options *o, void **state,
                      mx_diag *d);
    /* Copies b's inputs and params of p->g to the device. */
    mx_status (*upload)(void *state, const mx_buffers *b, mx_diag *d);
    /* Enqueues one forward pass. */
    mx_status (*forward)(void *state, mx_diag *d);
    /* Waits for the forward passes enqueued so far. */
    mx_status (*sync)(void *state, mx_diag *d);
    /* The graph outputs of p->g into b as f32 (allocating where NULL). */
    mx_status (*download)(void *state, mx_buffers *b, mx_diag *d);
    /* Optional (NULL: wall clock around forward + sync): the time of `runs`
     * forward passes each, in ms, into ms[] (cuda: events, the L2 flushed
     * before each pass when o->flush_l2). */
    mx_status (*time)(void *state, int runs, double *ms, mx_diag *d);
    void (*close)(void *state);
    /* Optional (tuning, runtime/tune.h; NULL: not tunable by measurement):
     * group's kernel run alone `runs` times on the buffers as a forward pass
     * left them, each run's time in ms[] (GPU: events, the L2 flushed
     * between runs). */
    mx_status (*time_group)(void *state, int group, int runs, double *ms, mx_diag *d);
    /* Optional (tuning; NULL: candidates are judged by time_group alone):
     * one forward pass, each group's time in it in ms[] (p->n_groups
     * entries), so that a kernel is timed in the context it runs in. */
    mx_status (*time_pass)(void *state, double *ms, mx_diag *d);
    /* Optional: the device's default tiles for group (NULL: the cost
     * model's, mx_tiles_default). Open takes its tiles from mx_tune_tiles,
     * which starts from these. */
    mx_tiles (*tiles)(const mx_target *t, const mx_program *p, int group);
} mx_backend;

/* The backend of a device; NULL when this build has none (cpu without LLVM). */
const mx_backend *mx_backend_of(mx_device device);
bool mx_have_cpu_backend(void);

extern const mx_backend mx_backend_ref, mx_backend_emu, mx_backend_cuda;

/* The codegen options every device that generates code (emu, cuda, cpu)
 * compiles p with: the tiles of mx_tune_tiles (from the backend's defaults
 * and the tuning database; *tiles, free it after) and o's pruning. */
mx_status mx_backend_codegen_options(const mx_target *t, const mx_program *p, const mx_backend_options *o,
                                     mx_codegen_options *co, mx_tiles **tiles, mx_diag *d);

/* For inspection (mixc compile's listings, profiles, tools, tests): the
 * program a compiled model runs and its backend's state. */
const mx_program *mx_compiled_program(const mx_compiled *c);
void *mx_compiled_backend_state(const mx_compiled *c);
/* For the tuner: the program's buffers (inputs and params bound as for a
 * run, without loading anything: works after a no_load compile), and the
 * tiles the program is opened with (mx_program.tiles; NULL: the defaults
 * and the database). */
mx_status mx_compiled_bind(mx_compiled *c, mx_buffers **out, mx_diag *d);
/* Every input replaced by mx_set_random_inputs' numbers of seed (token ids
 * whole numbers in [0, V)), given before or not: a tuner's fresh inputs. */
mx_status mx_compiled_fresh_inputs(mx_compiled *c, uint64_t seed, mx_diag *d);
void mx_compiled_set_tiles(mx_compiled *c, const mx_tiles *tiles);
/* The module c's device runs, generated as its backend's open does (also
 * after no_load), into *out (mx_module_free it). With prune_scans the
 * params are bound first, so they must be set. MX_ERR_INVALID for ref,
 * which runs none. */
mx_status mx_compiled_module(mx_compiled *c, mx_module *out, mx_diag *d);
/* Every input and param of c's source graph from b (buffers over that
 * graph, f32, rounded to each value's dtype), as mx_set_input and
 * mx_set_param would take them: for tests and benchmarks that hold the
 * numbers they also give the reference. */
mx_status mx_compiled_set_buffers(mx_compiled *c, const mx_buffers *b, mx_diag *d);
#ifdef MIXC_HAVE_LLVM
extern const mx_backend mx_backend_cpu;
/* The most activation memory a cpu backend state has held: the planned
 * arena and, at most at once, its f32 copies of f16 / bf16 matmul operands. */
size_t mx_cpu_activation_peak(const void *state);
/* The object files the cpu device links for module m on t (the host), one
 * per program (objs: m->n_programs entries, each malloc'd): from the kernel
 * cache, else compiled on t's threads (cpu_compile.h) and cached. A failure
 * to compile names the model. mixc emit --target cpu ships these very
 * bytes. */
typedef struct {
    unsigned char *bytes;
    size_t len;
} mx_bytes;
mx_status mx_cpu_objects(const mx_target *t, const mx_module *m, const char *model, mx_bytes *objs, mx_diag *d);
/* MIXC_CPU_DISABLE (docs/cpu.md): the host features the CPU backend leaves
 * out, as if the host lacked them (and those that need them), as LLVM's
 * feature edits (",-avx512f,-avx512bw") to append to the host's; "" when
 * none. An unknown name is an error (target.c). */
mx_status mx_cpu_disabled_features(char *llvm, size_t size, mx_diag *d);
/* The blocks a launch of group's kernel k runs on the cpu device, and the
 * fewest worth a thread of their own. */
void mx_cpu_kernel_blocks(const mx_target *t, const mx_program *p, int group, const mx_kernel *k, int64_t *blocks,
                          int64_t *grain);
#endif

#endif
