/* api.c: the public model API (include/mixc.h, "Models"). */
#include <errno.h>
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

/* The whole file as a NUL-terminated string, or NULL with diag set. */
static char *read_file(const char *path, mx_diag *diag) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        mx_fail(diag, MX_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len + 4096 + 1 > cap) {
            cap = 2 * cap + 8192;
            char *grown = realloc(text, cap);
            if (!grown) {
                free(text);
                fclose(f);
                mx_fail(diag, MX_ERR_NOMEM, "%s: out of memory", path);
                return NULL;
            }
            text = grown;
        }
        got = fread(text + len, 1, 4096, f);
        len += got;
    } while (got == 4096);
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(text);
        mx_fail(diag, MX_ERR_IO, "%s: read error", path);
        return NULL;
    }
    text[len] = 0;
    return text;
}

mx_model *mx_model_load(const char *path, const char *const *overrides, int n_overrides,
                        mx_diag *diag) {
    char *json = read_file(path, diag);
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
