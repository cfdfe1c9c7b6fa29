/* import.c: PyTorch state_dicts onto mixc's param names (import.h).
 *
 * mamba_ssm and transformers name a Mamba language model alike:
 *
 *   [backbone.]embedding.weight            (transformers: embeddings.weight)
 *   [backbone.]layers.I.norm.weight        the block's pre-norm (.bias for LayerNorm)
 *   [backbone.]layers.I.mixer.NAME         the Mamba layer
 *   [backbone.]norm_f.weight               the final norm
 *   lm_head.weight                         absent or equal to the embedding when tied
 *
 * A single Block is the same without "layers.I." and a bare Mamba layer the
 * same without "mixer." either; both land on the model's first block. Layer I
 * is the I-th token mixer of the model, counting across stages. Inside the
 * layer the per-scan tensors go to scans.0 and the conv loses its middle
 * axis: the rename table below. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"
#include "model.h"
#include "tensorfile.h"

const char *const mx_import_source_names[MX_IMPORT_COUNT + 1] = {"mamba_ssm", "transformers", "mixc", NULL};

mx_status mx_import_source_parse(const char *name, mx_import_source *out, mx_diag *d) {
    for (int i = 0; i < MX_IMPORT_COUNT; i++)
        if (strcmp(name, mx_import_source_names[i]) == 0) {
            *out = (mx_import_source)i;
            return MX_OK;
        }
    return mx_fail(d, MX_ERR_INVALID, "unknown checkpoint kind '%s': use mamba_ssm, transformers or mixc", name);
}

/* A Mamba layer's tensors, PyTorch name -> mixc name under the token mixer. */
static const struct {
    const char *torch, *mixc;
} mixer_names[] = {
    {"in_proj.weight", "in_proj.weight"},   {"in_proj.bias", "in_proj.bias"},
    {"conv1d.weight", "conv.weight"},       {"conv1d.bias", "conv.bias"},
    {"x_proj.weight", "scans.0.x_proj.weight"}, {"dt_proj.weight", "scans.0.dt_proj.weight"},
    {"dt_proj.bias", "scans.0.dt_bias"},    {"A_log", "scans.0.A_log"},
    {"D", "scans.0.D"},                     {"out_proj.weight", "out_proj.weight"},
    {"out_proj.bias", "out_proj.bias"},
};

/* What the import knows of one source tensor. */
typedef enum { MAP_PARAM, MAP_TIED_HEAD, MAP_UNKNOWN } map_kind;

static bool starts(const char *s, const char *prefix, const char **rest) {
    size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) != 0)
        return false;
    *rest = s + n;
    return true;
}

/* "stages.S.blocks.B.token_mixer" of the model's I-th token mixer; false
 * when the model has fewer. */
static bool layer_prefix(const mx_spec *s, long layer, char *out, size_t size) {
    for (int si = 0; si < s->n_stages; si++) {
        if (layer < s->stages[si].depth) {
            snprintf(out, size, "stages.%d.blocks.%ld.token_mixer", si, layer);
            return true;
        }
        layer -= s->stages[si].depth;
    }
    return false;
}

/* The mixc name of a block's tensor (norm.*, mixer.NAME or a bare NAME). */
static bool map_block(const char *prefix, const char *rest, char *out, size_t size) {
    const char *name = rest;
    if (strcmp(rest, "norm.weight") == 0 || strcmp(rest, "norm.bias") == 0) {
        snprintf(out, size, "%s.%s", prefix, rest);
        return true;
    }
    starts(rest, "mixer.", &name);
    for (size_t i = 0; i < sizeof mixer_names / sizeof *mixer_names; i++)
        if (strcmp(name, mixer_names[i].torch) == 0) {
            snprintf(out, size, "%s.%s", prefix, mixer_names[i].mixc);
            return true;
        }
    return false;
}

static map_kind map_name(const mx_spec *s, mx_import_source from, const char *torch, char *out, size_t size) {
    if (from == MX_IMPORT_MIXC) {
        snprintf(out, size, "%s", torch);
        return MAP_PARAM;
    }
    const char *rest = torch, *embedding = from == MX_IMPORT_TRANSFORMERS ? "embeddings.weight" : "embedding.weight";
    if (strcmp(torch, "lm_head.weight") == 0) {
        snprintf(out, size, "head.lm_head.weight");
        return s->lm_head == MX_LM_HEAD_TIED ? MAP_TIED_HEAD : MAP_PARAM;
    }
    starts(torch, "backbone.", &rest);
    if (strcmp(rest, embedding) == 0) {
        snprintf(out, size, "embedding.weight");
        return MAP_PARAM;
    }
    if (strcmp(rest, "norm_f.weight") == 0 || strcmp(rest, "norm_f.bias") == 0) {
        snprintf(out, size, "head.norm.%s", rest + strlen("norm_f."));
        return MAP_PARAM;
    }
    char prefix[128];
    const char *after;
    if (starts(rest, "layers.", &after)) {
        char *end;
        long layer = strtol(after, &end, 10);
        if (end == after || *end != '.' || layer < 0 || !layer_prefix(s, layer, prefix, sizeof prefix))
            return MAP_UNKNOWN;
        return map_block(prefix, end + 1, out, size) ? MAP_PARAM : MAP_UNKNOWN;
    }
    layer_prefix(s, 0, prefix, sizeof prefix);
    return map_block(prefix, rest, out, size) ? MAP_PARAM : MAP_UNKNOWN;
}

/* The param value of g named name, or -1. */
static int find_param(const mx_graph *g, const char *name) {
    int v = mx_graph_value_find(g, name);
    return v >= 0 && mx_graph_value_is_param(g, v) ? v : -1;
}

/* A conv weight [E, 1, K] fits the param [E, K]; every other tensor must
 * have the param's shape exactly. */
static bool fits(const mx_tf_tensor *t, const mx_graph *g, int v) {
    int rank = mx_graph_value_rank(g, v);
    const int64_t *dims = mx_graph_value_dims(g, v);
    if (t->rank == 3 && rank == 2 && t->dim[1] == 1)
        return t->dim[0] == dims[0] && t->dim[2] == dims[1];
    if (t->rank != rank)
        return false;
    for (int k = 0; k < rank; k++)
        if (t->dim[k] != dims[k])
            return false;
    return true;
}

static const char *dims_str(const mx_graph *g, int v, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int k = 0; k < mx_graph_value_rank(g, v) && n < size; k++)
        n += (size_t)snprintf(buf + n, size - n, k ? ",%lld" : "%lld", (long long)mx_graph_value_dims(g, v)[k]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
    return buf;
}

/* A hint for a param a Mamba checkpoint cannot have. */
static const char *missing_hint(const char *name) {
    size_t n = strlen(name);
    if (n > 4 && strcmp(name + n - 4, ".avg") == 0)
        return " (Mamba has no weighted averaging: set stages[S].weighted_average false)";
    if (n > 9 && strcmp(name + n - 9, "norm.bias") == 0)
        return " (a LayerNorm's bias: Mamba's RMSNorm has none, set the norm to \"rmsnorm\")";
    return "";
}

/* Source tensor t checked and copied into param v (f32, converted later to
 * the param's dtype by the writer). */
static mx_status take(const mx_tensorfile *f, const mx_tf_tensor *t, const mx_graph *g, int v, mx_buffers *b,
                      mx_diag *d) {
    char want[96], got[96];
    if (b->data[v])
        return mx_fail(d, MX_ERR_INVALID, "%s: tensor '%s' maps onto param '%s', which another tensor already "
                       "gave", f->source, t->name, mx_graph_value_name(g, v));
    if (!fits(t, g, v))
        return mx_fail(d, MX_ERR_INVALID, "%s: tensor '%s' has shape %s, but param '%s' is %s", f->source, t->name,
                       mx_tf_type_str(t->dtype, t->rank, t->dim, got, sizeof got), mx_graph_value_name(g, v),
                       dims_str(g, v, want, sizeof want));
    if (t->dtype == MX_TF_I32 || t->dtype == MX_TF_I64)
        return mx_fail(d, MX_ERR_INVALID, "%s: tensor '%s': dtype %s, but weights are floating point", f->source,
                       t->name, mx_tf_dtype_names[t->dtype]);
    b->data[v] = malloc((size_t)t->numel * sizeof(float) + 1);
    if (!b->data[v])
        return mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", f->source);
    for (int64_t i = 0; i < t->numel; i++)
        b->data[v][i] = (float)mx_tf_element(t, i);
    return MX_OK;
}

/* A tied head's lm_head.weight must be the embedding itself. */
static mx_status check_tied(const mx_tensorfile *f, const mx_tf_tensor *head, mx_import_source from,
                            mx_diag *d) {
    const char *names[] = {from == MX_IMPORT_TRANSFORMERS ? "backbone.embeddings.weight" : "backbone.embedding.weight",
                           from == MX_IMPORT_TRANSFORMERS ? "embeddings.weight" : "embedding.weight"};
    const mx_tf_tensor *emb = mx_tensorfile_find(f, names[0]);
    emb = emb ? emb : mx_tensorfile_find(f, names[1]);
    bool same = emb && emb->numel == head->numel;
    for (int64_t i = 0; same && i < head->numel; i++)
        same = mx_tf_element(emb, i) == mx_tf_element(head, i);
    if (same)
        return MX_OK;
    return mx_fail(d, MX_ERR_INVALID, "%s: tensor 'lm_head.weight' differs from the embedding, but the model ties "
                   "them (head.lm_head \"tied\"): set head.lm_head to \"untied\"", f->source);
}

static mx_status map_all(const mx_model *m, mx_import_source from, const mx_tensorfile *f, mx_buffers *b,
                         mx_diag *d) {
    const mx_graph *g = m->g;
    for (int i = 0; i < f->count; i++) {
        const mx_tf_tensor *t = &f->tensors[i];
        char name[256];
        map_kind kind = map_name(&m->spec, from, t->name, name, sizeof name);
        int v = kind == MAP_PARAM ? find_param(g, name) : -1;
        if (kind == MAP_TIED_HEAD) {
            MX_TRY(check_tied(f, t, from, d));
        } else if (v < 0 && kind == MAP_PARAM) {
            return mx_fail(d, MX_ERR_INVALID, "%s: tensor '%s' would be param '%s', which model '%s' does not have",
                           f->source, t->name, name, m->spec.name);
        } else if (v < 0) {
            return mx_fail(d, MX_ERR_INVALID, "%s: tensor '%s' is not part of a %s Mamba model (or the layer is "
                           "beyond the model's %s)", f->source, t->name, mx_import_source_names[from],
                           m->spec.name);
        } else {
            MX_TRY(take(f, t, g, v, b, d));
        }
    }
    for (int i = 0; i < mx_graph_input_count(g); i++) {
        int v = mx_graph_input(g, i);
        if (mx_graph_value_is_param(g, v) && !b->data[v])
            return mx_fail(d, MX_ERR_INVALID, "%s: no tensor for param '%s' of model '%s'%s", f->source,
                           mx_graph_value_name(g, v), m->spec.name, missing_hint(mx_graph_value_name(g, v)));
    }
    return MX_OK;
}

mx_status mx_import_weights(const mx_model *m, mx_import_source from, const char *state_dict, const char *out,
                            mx_diag *d) {
    mx_tensorfile *f;
    MX_TRY(mx_tensorfile_read(state_dict, &f, d));
    mx_buffers *b = mx_buffers_new(m->g);
    mx_status st = !b ? mx_fail(d, MX_ERR_NOMEM, "out of memory")
                   : f->npy ? mx_fail(d, MX_ERR_INVALID, "%s: a state_dict is a safetensors file, not .npy", state_dict)
                            : map_all(m, from, f, b, d);
    if (st == MX_OK)
        st = mx_weights_save(m->g, b, out, d);
    mx_buffers_free(b);
    mx_tensorfile_free(f);
    return st;
}
