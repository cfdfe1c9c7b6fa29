/* codegen.h: fused groups into CUDA C.
 *
 * One kernel per non-matmul group of a planned program (passes/). The source of
 * a whole model is one module: the prelude (runtime/emu/mixc_prelude.h, which
 * is cuda_fp16/bf16 under NVRTC and the host shim under emulation), then each
 * kernel, each followed by its emulation entry (a thunk that unpacks the same
 * void **kernelParams array cuLaunchKernel takes). Matmul groups are not
 * generated: the runtime gives them to cuBLAS(Lt), or to a host GEMM under
 * emulation.
 *
 * Emitters are per kernel kind (scan, pointwise, norm/reduce, conv); they share
 * one routine that turns a value of the group, read at a logical index, into C
 * statements (mx_emit_value): views become index arithmetic, elementwise nodes
 * become expressions, materialised values become loads. */
#ifndef MX_CODEGEN_H
#define MX_CODEGEN_H

#include <stdarg.h>

#include "program.h"

/* ---- text ------------------------------------------------------------------- */

typedef struct {
    char *s;
    size_t len, cap;
    bool oom; /* an append ran out of memory (the text is cut there) */
} mx_text;

void mx_text_printf(mx_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mx_text_vprintf(mx_text *t, const char *fmt, va_list ap);
void mx_text_append(mx_text *t, const mx_text *other);
void mx_text_free(mx_text *t);

/* ---- kernels -------------------------------------------------------------------- */

/* Tile parameters: explicit inputs of every emitter (the tuner chooses them,
 * runtime/tune.h; mx_tiles_default gives the cost model's choice). Unused
 * fields are 0. */
typedef struct mx_tiles {
    int threads;           /* threads per block */
    int items;             /* items per thread (chunk length of a chunked scan) */
    int channels;          /* channels per block (scan) */
    int lanes_per_state;   /* scan: lanes that share one state row */
    int vector;            /* vector width of loads and stores (1, 2, 4) */
    int chunked;           /* scan: 0 one state per lane walking L, 1 chunked block scan */
    int min_blocks;        /* __launch_bounds__ min blocks per SM, 0: none */
    int tasks;             /* CPU: the pool's threads a launch is split over (a matmul group: the
                              shares its products are split into, 1 one OpenBLAS call), 0: the
                              backend's choice (the source does not depend on it) */
} mx_tiles;

typedef struct {
    int value;    /* the graph value whose buffer is passed (as float * / half *) */
    bool written; /* an output of the kernel */
} mx_kernel_arg;

#define MX_CODEGEN_MAX_PRUNED 16 /* a scan group's scans */

typedef struct {
    int group;
    char name[64];        /* "mx_g12_scan"; kernels of identical source share one
                             function, the first one's name */
    mx_fusion kind;
    mx_tiles tiles;
    unsigned grid[3], block[3];
    size_t smem;          /* dynamic shared memory bytes */
    mx_kernel_arg *args;  /* kernelParams order: one buffer pointer per arg (no scalars:
                             shapes are compiled in) */
    int n_args;
    /* What the tuning database keys the kernel by (runtime/tune.h): a hash
     * of the function as the tiles asked for generate it (parameter types,
     * launch bounds, body; shapes are compiled in), the key that makes
     * identical kernels share one function. */
    uint64_t identity;
    mx_cost floor;        /* bytes moved (materialised traffic only) and exps, for % of roofline */
    int program;          /* the program (mx_module.programs) that defines its function */
    /* Switch of Scans pruning (mx_codegen_options.prune_scans): the scans
     * left out, and the sum of their terms' weights, which bounds the error:
     * |M - M_exact| <= pruned_weight x the largest |term| of the sum. */
    int pruned[MX_CODEGEN_MAX_PRUNED]; /* selective_scan nodes */
    int n_pruned;
    double pruned_weight;
} mx_kernel;

typedef struct {
    mx_kernel *kernels;
    int n_kernels;
    int *kernel_of_group; /* per group; -1 for matmul groups (and skipped ones) */
    int n_skipped;        /* groups left out under options.skip_scan */
    mx_text source;       /* the whole module: every function once (emulation, --source) */
    /* The same functions cut into programs of about equal NVRTC cost, each
     * complete (prelude, helpers, its functions): compiled in parallel and
     * cached one by one, then loaded together; kernels[i].program names the
     * one to look its function up in. */
    mx_text *programs;
    int n_programs;
} mx_module;

#define MX_CODEGEN_PROGRAMS 8      /* programs when the options leave it 0 */
#define MX_CODEGEN_MAX_PROGRAMS 64
/* mx_codegen_options.programs: one program per distinct function, its text
 * decided by that function alone (the CPU: an object is cached per
 * function, so a change to one kernel recompiles that kernel only). */
#define MX_CODEGEN_PER_FUNCTION (-1)

/* Storage types come from the graph's values (f32, f16, bf16); arithmetic and
 * the scan state are f32 whatever the storage. */
typedef struct {
    const mx_target *target; /* the GPU to generate for (emu and cuda targets) */
    /* Per-group tiles (p->n_groups entries, threads 0: the default), NULL for
     * the defaults of the cost model (mx_tiles_default). */
    const mx_tiles *tiles;
    /* Leave scan groups out (kernel_of_group -1, counted in n_skipped): for
     * tests of the other kinds while no scan emitter is linked. */
    bool skip_scan;
    /* Programs to cut the module into (0: MX_CODEGEN_PROGRAMS; fewer when
     * there are fewer distinct functions; MX_CODEGEN_PER_FUNCTION: one per
     * function, as many as there are). */
    int programs;
    /* Switch of Scans: leave out the orders whose softmax weight is below
     * prune_scans (0: keep all); the weights are read from params (the bound
     * params of p->g, mx_program_bind_init), which it then needs. What was
     * left out is in each kernel's pruned fields. */
    double prune_scans;
    const mx_buffers *params;
} mx_codegen_options;

/* The cost model's tiles for a group (codegen/tiles.c, docs/codegen.md). */
mx_tiles mx_tiles_default(const mx_program *p, int group, const mx_target *t);
/* The module of a fused and planned program; on error (a group no emitter
 * handles, "group 5 (scan, anchor %32): ...") *out is zeroed. */
mx_status mx_codegen(const mx_program *p, const mx_codegen_options *o, mx_module *out, mx_diag *d);
void mx_module_free(mx_module *m);
/* The kernel that runs group k, NULL for a matmul group. */
const mx_kernel *mx_module_kernel(const mx_module *m, int group);

#endif
