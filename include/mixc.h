/* mixc.h: the public C API of mixc.
 *
 * What exists today: load a graph written in the text IR (docs/ir.md), verify
 * it, print it, and run it on the reference interpreter with host buffers.
 * Every call that can fail on user input returns MX_OK or an error status and
 * fills an mx_diag with a message that says where and why. */
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

#ifdef __cplusplus
}
#endif
#endif
