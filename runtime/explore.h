/* explore.h: sweeping architecture variants of a model spec (docs/explore.md).
 *
 * A sweep varies spec fields (paths as --set takes them) over the values
 * given for each: the whole grid, or a seeded sample of its points, or one
 * shard of either. Every variant is built, compiled and measured on its own:
 * parameters, FLOPs and bytes (mx_model_stats), the planned activation peak
 * and the kernel count (the program after the passes), the forward latency
 * measured on the host (mx_time's median), the roofline estimate for a named
 * GPU target from the generated kernels' floors and the decoded matmuls, and
 * the latency measured on the GPU when there is one. A variant that fails to
 * build or run keeps its error and the sweep goes on.
 *
 * Results print as a table, CSV or JSON; JSON results of shards merge back
 * into one, and a plot (SVG) shows a metric against parameters with its
 * Pareto front. */
#ifndef MX_EXPLORE_H
#define MX_EXPLORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mixc.h"

enum { MX_EXPLORE_MAX_VARY = 16, MX_EXPLORE_MAX_VALUES = 64 };

/* One varied field: "stages[0].token_mixer.d_state" and its values. */
typedef struct {
    char *path;
    char **values;
    int n_values;
} mx_vary;

/* Parses "PATH=V1,V2,..." (commas inside [] or {} belong to a value, so
 * "stages[0].depths=[2,2],[4,4]" has two values). */
mx_status mx_vary_parse(const char *arg, mx_vary *out, mx_diag *d);
void mx_vary_free(mx_vary *v);

typedef struct {
    const char *spec;                 /* the model spec's path */
    const char *const *overrides;     /* --set, applied to every variant first */
    int n_overrides;
    const mx_vary *vary;
    int n_vary;
    int sample;                       /* > 0: that many distinct random grid points */
    uint64_t seed;                    /* of the sample, the weights and the inputs */
    int shard, n_shards;              /* shard (1 .. n_shards) of the points; 0, 0: all */
    const char *host_device;          /* measured on the host: "cpu" (falls back to
                                         "ref" where mixc has no CPU backend), "ref",
                                         "emu"; NULL: not measured */
    const char *estimate_target;      /* named GPU profile of the roofline estimate */
    bool profile;                     /* estimate kernels from the bytes and exps the host
                                         emulation counts (profile.h: slower, sees
                                         uncoalesced and repeated traffic), not from
                                         their materialised buffers */
    bool gpu;                         /* measure on the GPU when one is there */
    int warmup, runs;                 /* of each measurement */
    FILE *progress;                   /* where the progress bar goes (NULL: none) */
} mx_explore_options;

/* What one variant costs. NAN: not measured (or failed). */
typedef struct {
    int64_t point;      /* its index in the grid (row-major over vary, last fastest) */
    char **values;      /* per varied path */
    char *error;        /* NULL, or why the variant was skipped */
    double params, flops, bytes, peak_bytes; /* peak: the planned activation arena */
    int kernels;        /* generated kernels (matmuls not counted) */
    int matmuls;        /* matmul groups */
    double host_ms;     /* measured on host_device */
    double estimate_ms; /* roofline floor on estimate_target */
    double gpu_ms;      /* measured on the GPU */
} mx_variant;

typedef struct {
    char *spec;
    char **paths;       /* the varied paths */
    int n_paths;
    int64_t grid_size;  /* points in the full grid */
    /* What each latency column is: a short name for column headers ("cpu",
     * "h100", "gpu"), "" when the column was not taken, and a description. */
    char host_name[32], estimate_name[32], gpu_name[32];
    char host_device[160], estimate_target[160], gpu_device[160];
    char estimate_method[48];  /* "buffer floor" or "emulation counters" */
    mx_variant *variants;
    int n_variants;
} mx_explore;

/* Runs the sweep. Errors are for the sweep as a whole (a bad option, a spec
 * that does not load at all, an unknown estimate target); a failing variant
 * is recorded in its error instead. */
mx_status mx_explore_run(const mx_explore_options *o, mx_explore **out, mx_diag *d);
void mx_explore_free(mx_explore *e);

/* The failed variants, each "values: error". */
int mx_explore_failures(const mx_explore *e);

void mx_explore_print_table(const mx_explore *e, FILE *out);
void mx_explore_print_csv(const mx_explore *e, FILE *out);
void mx_explore_print_json(const mx_explore *e, FILE *out);

/* A result written by mx_explore_print_json. */
mx_status mx_explore_read_json(const char *path, mx_explore **out, mx_diag *d);
/* Joins results of one sweep (same spec and paths; shards of it): variants
 * in grid order, a point given twice is an error. */
mx_status mx_explore_merge(mx_explore *const *parts, int n, mx_explore **out, mx_diag *d);

/* What the plot puts on its y axis against parameters. */
typedef enum { MX_PLOT_LATENCY, MX_PLOT_FLOPS, MX_PLOT_MEMORY, MX_PLOT_COUNT } mx_plot_y;
mx_status mx_plot_y_parse(const char *name, mx_plot_y *out, mx_diag *d);
/* The SVG: one point per variant that has the metric, the Pareto front
 * (fewer parameters and less of y) drawn and its points labelled with their
 * values. Latency is the GPU's measurement, else the host's, else the
 * estimate, as the axis says. Written through a temp file and a rename. */
mx_status mx_explore_write_svg(const mx_explore *e, mx_plot_y y, const char *path, mx_diag *d);

#endif
