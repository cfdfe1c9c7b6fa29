/* init.c: seeded parameter initialisation (MODELS.md, "Initialisation").
 * Each param draws from its own stream, seeded by the seed and a hash of its
 * name, so two models that share a param name share its numbers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "model.h"

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *state) { return (double)(splitmix64(state) >> 11) * 0x1p-53; }

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* softplus^-1(y) = log(exp(y) - 1) = y + log(-expm1(-y)) */
static double softplus_inverse(double y) { return y + log(-expm1(-y)); }

static void init_param(const mx_param_init *init, const mx_type *t, float *x, uint64_t state) {
    int64_t n = mx_type_numel(t);
    int64_t last = t->rank ? t->dim[t->rank - 1] : 1;
    for (int64_t i = 0; i < n; i++) {
        double v = 0;
        switch (init->kind) {
        case MX_INIT_UNIFORM:
            v = (2 * uniform01(&state) - 1) * init->arg;
            break;
        case MX_INIT_CONST:
            v = init->arg;
            break;
        case MX_INIT_ONE_HOT:
            v = i == (int64_t)init->arg;
            break;
        case MX_INIT_A_LOG:
            v = log((double)(i % last + 1));
            break;
        case MX_INIT_DT_BIAS: {
            double lo = log(1e-3), hi = log(1e-1);
            v = softplus_inverse(exp(lo + (hi - lo) * uniform01(&state)));
            break;
        }
        }
        x[i] = mx_round_to(t->dtype, (float)v);
    }
}

mx_status mx_model_init_params(const mx_model *m, mx_buffers *b, uint64_t seed) {
    const mx_graph *g = m->g;
    mx_status st = MX_OK;
    for (int node = 0; node < g->n_nodes; node++) {
        if (g->nodes[node].op != MX_OP_PARAM)
            continue;
        int v = g->nodes[node].first_out;
        if (!b->data[v] && !(b->data[v] = malloc((size_t)b->numel[v] * sizeof(float) + 1))) {
            st = MX_ERR_NOMEM; /* the param stays without data: callers name it */
            continue;
        }
        init_param(&m->init[v], &g->values[v].type, b->data[v], seed ^ fnv1a(g->values[v].name));
    }
    return st;
}
