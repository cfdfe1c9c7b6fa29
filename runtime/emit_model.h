/* emit_model.h: what the CUDA and the C projects of mixc emit share
 * (emit_model.c): the program compiled as the target's backend compiles it,
 * its weights bound and held in a store that runs nothing, the buffers its
 * steps touch, and the files whose text is the same for both (the buffer,
 * product and tensor tables, model.h, main.c, weights.safetensors). */
#ifndef MX_EMIT_MODEL_H
#define MX_EMIT_MODEL_H

#include "codegen.h"
#include "emit_project.h"
#include "exec.h"
#include "gemm.h"

typedef struct {
    const mx_graph *src;   /* the graph as given */
    const mx_target *target; /* generated for (outlives the model) */
    mx_program *p;
    mx_module m;
    mx_gemm *gemms;        /* per group (matmul groups decoded) */
    mx_tiles *tiles;       /* per group, as compiled (a CPU product's tasks: its split) */
    int *buffer_of;        /* per value of p->g: its buffer, -1 */
    int *values;           /* per buffer: its value */
    int n_buffers;
    mx_exec *x;            /* the program loaded on the storing device */
    char prefix[64];       /* of the C API: the graph's name as an identifier */
    char tiles_from[1200]; /* where the kernels' tiles came from, for the projects' comments */
} mx_emit_model;

/* The passes, code for t with the tiles t's device would run (its defaults
 * and the tuning database: mx_tune_tiles, unless MIXC_NO_TUNE), the weights
 * bound (o->weights, or the seeded initialisation of model), the buffers
 * collected. On error pr is freed. */
mx_status mx_emit_model_build(mx_emit_model *pr, const mx_graph *g, const mx_model *model, const mx_target *t,
                              const mx_emit_options *o, mx_diag *d);
void mx_emit_model_free(mx_emit_model *pr);

/* The step of group's kernel k, whose buffer arguments start at first_arg
 * of the args table, as the host launcher takes it. */
typedef void (*mx_emit_host_step)(const mx_emit_model *pr, int group, const mx_kernel *k, int first_arg, mx_text *t);

/* The tables of standalone_tables.h (buffers[], steps[] and args[], gemms[],
 * inputs[], outputs[]) and the desc over them. A step is a launch on the GPU
 * (grid, block, shared memory; host_step NULL), else host_step's. A product
 * is {NULL, name, 0.., its gemm} either way. */
void mx_emit_tables_text(const mx_emit_model *pr, mx_emit_host_step host_step, mx_text *t);
/* The C API's functions over mxs_* (the wrappers of model.cu and model.c). */
void mx_emit_api_text(const mx_emit_model *pr, mx_text *t);

/* model.h: the C API; `where` says where the model lives ("on GPU 0"),
 * `forward` what a forward pass is. */
void mx_emit_model_h(const mx_emit_model *pr, const char *where, const char *forward, mx_text *t);
/* main.c: the example. */
void mx_emit_main_c(const mx_emit_model *pr, const mx_emit_options *o, mx_text *t);
/* weights.safetensors: every weight the program reads, in its storage dtype. */
mx_status mx_emit_weights(const mx_emit_model *pr, mx_emit_dir *dir, mx_diag *d);

/* The module with the text of embedded header `prelude` in place of its
 * #include "mixc_prelude.h". */
mx_status mx_emit_module_text(const mx_emit_model *pr, const char *prelude, mx_text *t, mx_diag *d);
/* Writes t as file name and frees it; an embedded file under its base name. */
mx_status mx_emit_write_text(mx_emit_dir *dir, const char *name, mx_text *t, mx_diag *d);
mx_status mx_emit_write_embedded(mx_emit_dir *dir, const char *path, mx_diag *d);

/* ---- a project -------------------------------------------------------------------------- */

/* What a kind of project brings: its target, the host headers it ships
 * (embedded paths, NULL-terminated), what model.h says, and the files of
 * its own (kernels, the model's tables, build files). */
typedef struct {
    mx_status (*target)(const mx_emit_options *o, mx_target *out, mx_diag *d);
    const char *const *headers;
    const char *where, *forward; /* model.h: where the model lives, what a forward pass is */
    mx_status (*write)(const mx_emit_model *pr, const mx_target *t, mx_emit_dir *dir, mx_diag *d);
} mx_emit_backend;

/* The whole project of b in dir, written atomically: model.h, main.c,
 * weights.safetensors and b's headers, then b's own files. */
mx_status mx_emit_project(const mx_graph *g, const mx_model *model, const char *dir, const mx_emit_options *o,
                          const mx_emit_backend *b, mx_diag *d);

#endif
