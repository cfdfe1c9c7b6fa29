/* emit_project.h: a model as a standalone project that builds without mixc
 * (docs/emit.md).
 *
 * mx_emit_cuda writes, into a folder: kernels.cuh (the generated module with
 * its prelude inlined, so the same text also runs under the host emulation),
 * standalone.cuh (the host side: buffers, launches, cuBLASLt products, CUDA
 * graph replay, the weights loader), model.cu (the model's tables: buffers,
 * steps in schedule order, the decoded products), model.h (its C API),
 * weights.safetensors (every weight in its storage dtype, derived weights
 * such as A = -exp(A_log) already computed), main.c (loads the weights, runs
 * seeded inputs -- the numbers `mixc run` draws -- and prints each output's
 * checksum as `mixc run` does), a Makefile and a CMakeLists.txt. It needs the
 * CUDA toolkit alone.
 *
 * The folder is written whole or not at all: into a temp folder beside it,
 * renamed into place at the end. An existing non-empty folder is refused
 * unless force is set (then it is replaced). */
#ifndef MX_EMIT_PROJECT_H
#define MX_EMIT_PROJECT_H

#include <stdbool.h>
#include <stdint.h>

#include "mixc.h"

typedef struct {
    const char *target;  /* named GPU profile (mx_target_names): "sm_90", "h100" */
    const char *weights; /* safetensors of the source graph's params; NULL: seeded init */
    uint64_t seed;       /* of the initial weights and of the example's inputs */
    bool force;          /* replace an existing non-empty folder */
} mx_emit_options;

/* The project of graph g (model: its spec when it has one, for the seeded
 * initialisation of docs/models.md; NULL: uniform weights) in dir. */
mx_status mx_emit_cuda(const mx_graph *g, const mx_model *model, const char *dir, const mx_emit_options *o,
                       mx_diag *d);
/* The same for the host CPU (o->target unused): kernels.*.o (the object files
 * the cpu device links for the program, which LLVM emitted for this CPU),
 * standalone_cpu.h and the shared host headers (blocks over a pthread pool,
 * products in plain C or CBLAS), model.c, model.h, main.c,
 * weights.safetensors, a Makefile and a CMakeLists.txt building lib<model>.a
 * and the example. It needs a C compiler, libc, libm and pthreads; this
 * mixc needs LLVM to write it (else MX_ERR_INVALID says so). Both kinds
 * take the tiles their device would run (the tuning database's winners,
 * unless MIXC_NO_TUNE), and model.cu / model.c say where they came from. */
mx_status mx_emit_c(const mx_graph *g, const mx_model *model, const char *dir, const mx_emit_options *o,
                    mx_diag *d);

/* ---- writing a folder atomically ------------------------------------------------------ */

typedef struct {
    char *dir; /* where the folder goes */
    char *tmp; /* the temp folder being filled */
} mx_emit_dir;

/* Checks dir (refused when non-empty, unless force) and makes the temp folder. */
mx_status mx_emit_dir_open(const char *dir, bool force, mx_emit_dir *out, mx_diag *d);
/* Writes file name (no slashes) of the folder. */
mx_status mx_emit_dir_write(mx_emit_dir *e, const char *name, const char *data, size_t size, mx_diag *d);
/* The path of file name inside the temp folder (malloc'd; NULL: no memory). */
char *mx_emit_dir_path(const mx_emit_dir *e, const char *name);
/* Renames the temp folder to dir (replacing what force allowed) and frees e. */
mx_status mx_emit_dir_commit(mx_emit_dir *e, mx_diag *d);
/* Removes the temp folder and frees e. */
void mx_emit_dir_abort(mx_emit_dir *e);

#endif
