/* api.c: the public model API (include/mixc.h, "Models"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

mx_model *mx_model_parse(const char *json, const char *source, const char *const *overrides,
                         int n_overrides, mx_diag *diag) {
    mx_model *m = calloc(1, sizeof *m);
    if (!m) {
        mx_fail(diag, MX_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (mx_spec_parse(json, source, overrides, n_overrides, &m->spec, diag) != MX_OK ||
        mx_model_build(m, diag) != MX_OK) {
        mx_model_free(m);
        return NULL;
    }
    return m;
}

mx_model *mx_model_load(const char *path, const char *const *overrides, int n_overrides,
                        mx_diag *diag) {
    size_t len;
    char *json = mx_read_file(path, &len, diag);
    if (!json)
        return NULL;
    mx_model *m = mx_model_parse(json, path, overrides, n_overrides, diag);
    free(json);
    return m;
}

void mx_model_free(mx_model *m) {
    if (!m)
        return;
    mx_graph_free(m->g);
    free(m->init);
    free(m->layer);
    free(m->layer_names);
    free(m);
}

const mx_graph *mx_model_graph(const mx_model *m) { return m->g; }
