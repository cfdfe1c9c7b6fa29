/* model.h: a model built from a spec: its graph, how each param is
 * initialised, and which layer each node belongs to (for stats). */
#ifndef MX_MODEL_H
#define MX_MODEL_H

#include "ir.h"
#include "spec.h"

/* Initialisation rules of MODELS.md ("seeded, reproducible"). */
typedef enum {
    MX_INIT_UNIFORM, /* uniform(-arg, arg); linear weights use arg = 1/sqrt(fan_in) */
    MX_INIT_CONST,   /* every element = arg */
    MX_INIT_ONE_HOT, /* 1 at index arg, 0 elsewhere (weighted averaging) */
    MX_INIT_A_LOG,   /* A_log[c, n] = log(n + 1) */
    MX_INIT_DT_BIAS, /* softplus^-1 of dt ~ logUniform[1e-3, 1e-1] */
} mx_init_kind;

typedef struct {
    mx_init_kind kind;
    double arg;
} mx_param_init;

struct mx_model {
    mx_spec spec;
    mx_graph *g;
    mx_param_init *init; /* per value id; meaningful for params */
    int *layer;          /* per node: index into layer_names */
    int cap_init, cap_layer; /* allocated lengths of init and layer */
    char **layer_names;  /* "stem", "stages.0.blocks.1.token_mixer", ... */
    int n_layers, cap_layers;
};

/* Builds m->g (and the tables) from m->spec. */
mx_status mx_model_build(struct mx_model *m, mx_diag *diag);

#endif
