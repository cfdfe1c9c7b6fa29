/* mixc.h: the public C API of mixc.
 *
 * The pipeline every user of mixc takes (the CLI, the benchmarks, the tests
 * and the Python package included): load a model spec or a graph, choose a
 * target (mx_target), compile (mx_compile), bind weights, set inputs, run,
 * read outputs. Every call that can fail on user input returns MX_OK or an
 * error status and fills an mx_diag with a message that says where and why.
 * docs/api.md walks through it. */
#ifndef MIXC_H
#define MIXC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MIXC_VERSION "0.1.0"

typedef enum {
    MX_OK = 0,
    MX_ERR_PARSE,      /* malformed text */
    MX_ERR_INVALID,    /* a graph or argument that breaks a rule */
    MX_ERR_IO,         /* a file could not be read or written */
    MX_ERR_NOMEM,
} mx_status;

/* A diagnostic: the first error of a call, in one human-readable message
 * (location first: "file:line:col: ..." or "node %name (op): ..."). */
typedef struct {
    char msg[2048];
} mx_diag;

typedef enum { MX_F32, MX_F16, MX_BF16, MX_DTYPE_COUNT } mx_dtype;

typedef struct mx_graph mx_graph;

/* Text IR. The returned graph is parsed, typed and verified. */
mx_graph *mx_graph_parse(const char *text, const char *filename, mx_diag *diag);
mx_graph *mx_graph_load(const char *path, mx_diag *diag);
void mx_graph_free(mx_graph *g);
/* The canonical text of g; malloc'd, the caller frees it. */
char *mx_graph_print(const mx_graph *g);
mx_status mx_graph_verify(const mx_graph *g, mx_diag *diag);

/* Values are the graph's tensors, addressed by id (0 .. count-1). */
int mx_graph_value_count(const mx_graph *g);
int mx_graph_value_find(const mx_graph *g, const char *name); /* -1: none */
const char *mx_graph_value_name(const mx_graph *g, int value); /* NULL: unnamed */
int mx_graph_value_rank(const mx_graph *g, int value);
const int64_t *mx_graph_value_dims(const mx_graph *g, int value);
int64_t mx_graph_value_numel(const mx_graph *g, int value);
int mx_graph_output_count(const mx_graph *g);
int mx_graph_output(const mx_graph *g, int i); /* the value id of output i */
int mx_graph_input_count(const mx_graph *g);   /* input and param values */
int mx_graph_input(const mx_graph *g, int i);
/* Whether value v is a param (a weight) rather than a data input. */
int mx_graph_value_is_param(const mx_graph *g, int v);
mx_dtype mx_graph_value_dtype(const mx_graph *g, int v);

/* Host buffers for a graph: one f32 array per value, whatever its dtype
 * (values of dtype f16/bf16 hold numbers rounded to that type). */
typedef struct {
    int count;
    float **data;   /* data[value]; NULL until allocated */
    int64_t *numel; /* numel[value] */
} mx_buffers;

mx_buffers *mx_buffers_new(const mx_graph *g);
void mx_buffers_free(mx_buffers *b);
/* Fill every input and param with seeded uniform numbers in [-1, 1). */
void mx_buffers_fill_random(mx_buffers *b, const mx_graph *g, uint64_t seed);

/* Run g on the reference interpreter: reads input, param and const values
 * from b and writes every other value (allocating where needed). */
mx_status mx_ref_run(const mx_graph *g, mx_buffers *b, mx_diag *diag);

/* Weights (safetensors, docs/weights.md): every param value of g, matched by
 * name. Load validates the whole file against g before it touches b, converts
 * to f32 (rounded to each param's dtype) and allocates data[v] where NULL.
 * Save writes each param in its graph dtype through "path.tmp" and a rename. */
mx_status mx_weights_load(const mx_graph *g, mx_buffers *b, const char *path, mx_diag *diag);
mx_status mx_weights_save(const mx_graph *g, const mx_buffers *b, const char *path, mx_diag *diag);

/* Models: a JSON spec (docs/spec.md) built into a graph by the frontend.
 * overrides are "path=value" strings (`stages[2].depth=4`) applied to the
 * JSON first; errors name the JSON path. */
typedef struct mx_model mx_model;
mx_model *mx_model_load(const char *path, const char *const *overrides, int n_overrides,
                        mx_diag *diag);
mx_model *mx_model_parse(const char *json, const char *source, const char *const *overrides,
                         int n_overrides, mx_diag *diag);
void mx_model_free(mx_model *m);
const mx_graph *mx_model_graph(const mx_model *m);
/* Seeded initialisation of every param following MODELS.md; a param's numbers
 * depend only on the seed and its name. Allocates data[v] where NULL;
 * MX_ERR_NOMEM when that fails for a param, whose data then stays NULL. */
mx_status mx_model_init_params(const mx_model *m, mx_buffers *b, uint64_t seed);

/* Per-layer cost of a model (layers: stem, stages.S.blocks.B.token_mixer, ...). */
typedef struct {
    const char *name;
    double params;     /* parameter count */
    double flops;      /* of one forward pass at the spec's batch */
    double bytes;      /* moved by the unfused ops: inputs read + outputs written */
    double exps;       /* transcendental evaluations */
    double peak_bytes; /* live activations at the layer's worst point */
} mx_layer_stats;

typedef struct {
    int n_layers;
    mx_layer_stats *layers;
    mx_layer_stats total; /* sums; peak_bytes is the model's peak */
} mx_stats;

mx_stats *mx_model_stats(const mx_model *m);
void mx_stats_free(mx_stats *s);
/* A readable table, or JSON ({"model", "layers": [...], "total"}). */
void mx_stats_print_table(const mx_stats *s, const mx_graph *g, FILE *out);
void mx_stats_print_json(const mx_stats *s, const mx_graph *g, FILE *out);


/* ---- targets ------------------------------------------------------------------ */

/* Where a compiled model runs: the reference interpreter, generated CUDA under
 * host emulation, the GPU, or kernels JIT-compiled for the host CPU. */
typedef enum { MX_DEVICE_REF, MX_DEVICE_EMU, MX_DEVICE_CUDA, MX_DEVICE_CPU, MX_DEVICE_COUNT } mx_device;

/* What the matmul library fuses into a product (bits of matmul_epilogues). */
enum {
    MX_EPILOGUE_BIAS = 1,     /* + bias broadcast over rows */
    MX_EPILOGUE_RELU = 2,
    MX_EPILOGUE_GELU = 4,     /* tanh approximation */
    MX_EPILOGUE_RESIDUAL = 8, /* + an existing tensor (beta = 1) */
};

/* The target: chosen first and passed down to passes, code generators and the
 * runtime, which ask it instead of assuming a machine. A GPU target (emu and
 * cuda) describes the GPU the code is generated for: read off GPU 0 for cuda,
 * or a named profile (mx_target_named) for compiling, emulating and
 * estimating without one. Fields a device does not use are 0. */
typedef struct {
    mx_device device;
    char name[96];             /* "h100", "sm_90", the GPU's or the CPU's name */
    int detected;              /* 1: read off this machine; 0: a named profile */
    char profile[16];          /* GPU: the named profile it is ("h100" for sm_90, h100-sxm and an
                                  H100 SXM read off the driver), "" for none: what tuning records
                                  are keyed by, so that every name of one GPU shares them */
    /* GPU: code generation and limits */
    int sm;                    /* compute capability x 10 (90 for sm_90) */
    int sm_count;
    int max_threads_per_sm;
    int max_threads_per_block;
    int regs_per_sm;           /* 32-bit registers */
    int max_regs_per_thread;
    int smem_per_block;        /* bytes a block gets without opting in (48 KiB) */
    int smem_per_block_optin;  /* bytes a block may opt into */
    int smem_per_sm;
    int64_t l2_bytes;
    int64_t memory_bytes;      /* device (GPU) or host memory */
    /* GPU: the roofline */
    double bytes_per_s;        /* DRAM bandwidth */
    double exps_per_s;         /* SFU ex2 results per second */
    double flops_per_s;        /* f32 (FMA = 2) */
    char rates_source[96];     /* where bytes_per_s comes from */
    unsigned matmul_epilogues; /* MX_EPILOGUE_* the matmul library fuses */
    /* CPU */
    int vector_bits;           /* widest vectors: 512 (AVX-512F), 256 (AVX2), 128 */
    int threads;               /* worker threads: MIXC_THREADS, else the cores */
    char cpu_features[96];     /* "avx512f avx2 fma f16c" */
} mx_target;

const char *mx_device_name(mx_device d); /* "ref", "emu", "cuda", "cpu" */
/* "ref", "emu", "cuda", "cpu"; an unknown name is an error listing them. */
mx_status mx_device_parse(const char *name, mx_device *out, mx_diag *d);
/* A named GPU profile (sm_80, sm_90, a100, h100, h200; mx_target_names lists
 * them) for device emu or cuda. */
mx_status mx_target_named(const char *name, mx_device device, mx_target *out, mx_diag *d);
/* The target of a device on this machine: cuda from GPU 0 (an error, saying
 * why, without a usable driver and GPU), cpu from the host, emu the h100
 * profile, ref the host. */
mx_status mx_target_detect(mx_device device, mx_target *out, mx_diag *d);
/* What the CLI's --device and --target give: device "auto" is cuda when a GPU
 * is there, else cpu (or ref where mixc was built without LLVM), and *why
 * (when not NULL) says why a GPU was not used; name NULL detects. */
mx_status mx_target_choose(const char *device, const char *name, mx_target *out, char *why, size_t why_size,
                           mx_diag *d);
/* CPU: whether t->cpu_features names feature ("avx512f"). */
int mx_target_has_feature(const mx_target *t, const char *feature);
/* The named profiles, comma-separated. */
const char *mx_target_names(void);
/* One line: "cuda: NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 3.00 TB/s measured)". */
void mx_target_describe(const mx_target *t, char *buf, size_t size);

/* ---- compiling and running ---------------------------------------------------- */

typedef struct mx_compiled mx_compiled;

typedef struct {
    /* 1: ignore MIXC_NO_FUSION, MIXC_NO_PLANNER, MIXC_DISABLE_PASSES,
     * MIXC_PRINT_AFTER (docs/passes.md); 0 (the default): obey them. */
    int ignore_env;
    const char *disable_passes; /* "cse,fold": skipped on top of the environment's */
    const char *print_after;    /* passes (or debug letters, or "all") to print after */
    const char *print_before;
    int time_passes;            /* each pass's wall time to log */
    FILE *log;                  /* pass printing and timing; stderr when NULL */
    int no_load;                /* 1: passes only, nothing generated, loaded or allocated on the
                                 * device (inspection, ahead-of-time compiles); mx_run refuses */
    /* Switch of Scans pruning (emu, cuda, cpu; docs/scan.md): leave out the
     * scan orders whose softmax weight is below prune_scans (0: keep all;
     * the heaviest order always stays). Which orders go depends on the
     * weights, so the code is generated at the first mx_run or mx_time
     * after the params are set (and again when they change). The outputs
     * of a pruned scan group M then differ from the exact ones by at most
     * the pruned orders' weight x the largest |term| of the sum. */
    double prune_scans;
    /* mx_time on cuda: flush the L2 before each timed pass (a write of
     * twice the target's L2), so every pass starts cold, as benchmarks
     * measure; 0 (default): passes back to back, as a serving loop runs
     * them. Other devices have no L2 to flush and ignore it. */
    int flush_l2;
} mx_compile_options;

/* Compiles a copy of g (or of a model's graph) for t: passes, then code for the
 * target's device, compiled and loaded (NVRTC, the host compiler or LLVM),
 * memory allocated. o NULL: defaults. Params start unset: bind them with
 * mx_init_weights, mx_load_weights or mx_set_param before mx_run. A model
 * must outlive its compiled program. */
mx_compiled *mx_compile(const mx_graph *g, const mx_target *t, const mx_compile_options *o, mx_diag *d);
mx_compiled *mx_compile_model(const mx_model *m, const mx_target *t, const mx_compile_options *o, mx_diag *d);
void mx_compiled_free(mx_compiled *c);
const mx_target *mx_compiled_target(const mx_compiled *c);
/* The source graph (as given, before the passes). */
const mx_graph *mx_compiled_graph(const mx_compiled *c);

/* The tensors a compiled program takes and gives, by role. */
typedef enum { MX_ROLE_INPUT, MX_ROLE_PARAM, MX_ROLE_OUTPUT } mx_role;

typedef struct {
    const char *name;
    mx_dtype dtype;
    int rank;
    const int64_t *dims;
    int64_t numel;
} mx_tensor_info;

int mx_tensor_count(const mx_compiled *c, mx_role role);
/* Tensor i of role (0 .. count-1); MX_ERR_INVALID out of range. */
mx_status mx_tensor_info_of(const mx_compiled *c, mx_role role, int i, mx_tensor_info *out, mx_diag *d);

/* Params: the model's seeded initialisation (docs/models.md; uniform numbers
 * in [-1, 1) for a graph), a safetensors file (docs/weights.md), or one
 * tensor from caller memory. */
mx_status mx_init_weights(mx_compiled *c, uint64_t seed, mx_diag *d);
mx_status mx_load_weights(mx_compiled *c, const char *path, mx_diag *d);
mx_status mx_save_weights(const mx_compiled *c, const char *path, mx_diag *d);
/* Copies one input (or param) from caller memory: name, dtype, rank and dims
 * must be the graph's ("input %x: expected f32 [1,196,192], got f32 [1,196]"). */
mx_status mx_set_input(mx_compiled *c, const char *name, const void *data, mx_dtype dtype, int rank,
                       const int64_t *dims, mx_diag *d);
mx_status mx_set_param(mx_compiled *c, const char *name, const void *data, mx_dtype dtype, int rank,
                       const int64_t *dims, mx_diag *d);
/* Every input not set yet: seeded uniform numbers in [-1, 1). */
mx_status mx_set_random_inputs(mx_compiled *c, uint64_t seed, mx_diag *d);

/* One forward pass; waits for it, the outputs are then readable. Every input
 * and param must have been given. */
mx_status mx_run(mx_compiled *c, mx_diag *d);

/* Forward passes after `warmup` untimed ones: the time of each (cuda: CUDA
 * events around the pass alone, the L2 flushed before each with flush_l2;
 * others: wall clock), compile and transfers excluded; median, min, max in
 * ms. The outputs are then those of the last pass, as after mx_run.
 * Per-group times on cuda: MIXC_DEBUG=2 prints, at the first run, each
 * group's time, bandwidth and % of its roofline floor (docs/runtime.md). */
typedef struct {
    int runs;
    double median_ms, min_ms, max_ms;
} mx_timing;
mx_status mx_time(mx_compiled *c, int warmup, int runs, mx_timing *out, mx_diag *d);

/* The f32 data of output `name` (NULL: the first output) after mx_run; valid
 * until the next run or free. NULL when there is no such output or no run. */
const float *mx_output(const mx_compiled *c, const char *name);
/* Copies output name (NULL: the first) into caller memory as dtype; bytes is
 * the room at data ("output %logits: needs 4000 bytes, got 400"). */
mx_status mx_get_output(const mx_compiled *c, const char *name, void *data, mx_dtype dtype, size_t bytes,
                        mx_diag *d);

/* ---- tuning (docs/tune.md) --------------------------------------------------------- */

/* Searches the tiles of c's distinct generated kernels on c's target and
 * appends what it found to the tuning database, which later compiles on the
 * same target read (MIXC_NO_TUNE=1 ignores it). c must have its params bound
 * (mx_init_weights, ...); its inputs are replaced by fresh random numbers of
 * o->seed. cpu (and cuda) time every candidate after warm-up, the median of
 * repeats, each against the default side by side; model_only ranks GPU
 * candidates by the roofline estimate of the host emulation's profile, no
 * GPU needed (c compiled with no_load then). A candidate wins only when the
 * model's outputs with it matched the default's. */
typedef struct {
    const char *db;      /* the database file; NULL: MIXC_TUNE_DB, else tune.jsonl in the kernel cache */
    double budget_s;     /* wall time for the search, 0: none (every space searched to its end) */
    const char *kernels; /* only kernels whose function name or kind matches this glob ("*scan*"); NULL: all */
    int model_only;      /* rank by the roofline estimate (emu or cuda targets) */
    uint64_t seed;       /* of the random inputs */
    int repeats;         /* timed runs per candidate, 0: 5 */
    FILE *progress;      /* a bar on a terminal, else plain lines; NULL: silent */
    int jobs;            /* rounds compiled at once; 0: cpu, one per core; cuda, one (NVRTC is parallel) */
} mx_tune_options;

typedef struct {
    int kernels;       /* distinct kernels tuned (on the cpu, its distinct products too) */
    int products;      /* of those, the cpu's products (matmul groups, tuned by their split) */
    int improved;      /* of those, where a candidate beat the default */
    int candidates;    /* candidates timed or modelled */
    double seconds;    /* wall time of the search */
    double default_ms; /* sums over the kernels' groups, per forward pass: defaults */
    double tuned_ms;   /* the winners */
    char db[1024];     /* the database written */
    /* The whole forward pass with every winner against the defaults, timed
     * alternately (median of 7 each; 0 when no kernel improved or modelled).
     * Unless the tuned pass is 2% faster, and the faster in 6 of the 7
     * pairs, the defaults are kept (forward_kept 0, improved 0): tuning
     * never makes the model slower. */
    double forward_default_ms;
    double forward_tuned_ms;
    int forward_kept;
    int forward_wins;  /* of forward_pairs pairs, those the tuned pass was the faster in */
    int forward_pairs;
} mx_tune_summary;

mx_status mx_tune(mx_compiled *c, const mx_tune_options *o, mx_tune_summary *out, mx_diag *d);
/* The database as a table (path NULL: the default one); corrupt lines are
 * said on stderr with file:line and skipped. */
mx_status mx_tune_show(const char *path, FILE *out, mx_diag *d);
/* The valid records of n databases into out (written whole, then renamed;
 * a record in several inputs is kept once). */
mx_status mx_tune_merge(const char *const *in, int n, const char *out, mx_diag *d);

#ifdef __cplusplus
}
#endif
#endif
