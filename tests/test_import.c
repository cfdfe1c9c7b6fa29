/* test_import.c: PyTorch checkpoints into mixc, against the real peers.
 *
 * tests/golden/ holds small random Mamba models that PyTorch ran
 * (tools/make_golden.py): transformers' MambaModel and MambaForCausalLM and
 * a mamba_ssm Block. Each state_dict is imported with its own names, mixc
 * runs the spec on the same inputs on the reference interpreter, and the
 * outputs must match PyTorch's within 1e-4. Then the importer's refusals
 * (missing, extra, mis-shaped, untied tensors), and the mamba-130m spec's
 * parameter count against Mamba's arithmetic (the embedding op itself:
 * test_embedding.c). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "import.h"
#include "model.h"
#include "support.h"
#include "tensorfile.h"

#define GOLDEN MIXC_SOURCE_DIR "/tests/golden/"

static const char *tmp_path(const char *name) { return support_tmp_path("import", name); }

/* Max over elements of |got - want|, over max(1, max |want|). */
static double rel_error(const float *got, const mx_tf_tensor *want) {
    double worst = 0, scale = 1;
    for (int64_t i = 0; i < want->numel; i++)
        scale = fmax(scale, fabs(mx_tf_element(want, i)));
    for (int64_t i = 0; i < want->numel; i++) {
        double e = fabs((double)got[i] - mx_tf_element(want, i));
        worst = isnan(got[i]) ? INFINITY : fmax(worst, e);
    }
    return worst / scale;
}

static mx_compiled *compile_ref(const mx_model *m) {
    mx_target t;
    mx_diag d;
    mx_compiled *c = mx_target_detect(MX_DEVICE_REF, &t, &d) == MX_OK ? mx_compile_model(m, &t, NULL, &d) : NULL;
    CHECK_MSG(c != NULL, "%s", d.msg);
    return c;
}

/* Imports CASE.state, runs CASE.inputs, compares with CASE.outputs. */
static void check_golden(const char *name, mx_import_source from) {
    char path[512];
    mx_diag d = {{0}};
    snprintf(path, sizeof path, GOLDEN "%s.json", name);
    mx_model *m = support_load_model(path, NULL, 0);
    mx_compiled *c = m ? compile_ref(m) : NULL;
    if (!c) {
        mx_model_free(m);
        return;
    }
    snprintf(path, sizeof path, GOLDEN "%s.state.safetensors", name);
    const char *weights = tmp_path("imported.safetensors");
    mx_status st = mx_import_weights(m, from, path, weights, &d);
    CHECK_MSG(st == MX_OK, "%s: %s", name, d.msg);
    if (st == MX_OK)
        st = mx_load_weights(c, weights, &d);
    mx_tensorfile *in = NULL, *out = NULL;
    snprintf(path, sizeof path, GOLDEN "%s.inputs.safetensors", name);
    if (st == MX_OK && (st = mx_tensorfile_read(path, &in, &d)) == MX_OK)
        st = mx_tensorfile_set_inputs(c, in, &d);
    if (st == MX_OK)
        st = mx_run(c, &d);
    snprintf(path, sizeof path, GOLDEN "%s.outputs.safetensors", name);
    if (st == MX_OK)
        st = mx_tensorfile_read(path, &out, &d);
    CHECK_MSG(st == MX_OK, "%s: %s", name, d.msg);
    for (int i = 0; out && i < out->count; i++) {
        const float *got = mx_output(c, out->tensors[i].name);
        CHECK_MSG(got != NULL, "%s: no output '%s'", name, out->tensors[i].name);
        double err = got ? rel_error(got, &out->tensors[i]) : INFINITY;
        CHECK_MSG(err <= 1e-4, "%s: output '%s' differs from PyTorch's by %.3g", name, out->tensors[i].name, err);
    }
    mx_tensorfile_free(in);
    mx_tensorfile_free(out);
    mx_compiled_free(c);
    mx_model_free(m);
}

/* ---- refusals ------------------------------------------------------------------------- */

/* The golden Block's state_dict, edited by edit(), must be refused with a
 * message containing want. */
typedef void (*edit_fn)(mx_tf_out *t, int *n);

/* f's tensors as aligned f32 copies (freed by the caller) described by t;
 * the copy of `scaled` (when not NULL) doubled. Returns how many. */
static int copy_tensors(const mx_tensorfile *f, mx_tf_out *t, float **copies, int cap, const char *scaled) {
    int n = 0;
    for (; n < f->count && n < cap; n++) {
        const mx_tf_tensor *src = &f->tensors[n];
        double k = scaled && strcmp(src->name, scaled) == 0 ? 2 : 1;
        copies[n] = malloc((size_t)src->numel * sizeof(float) + 1);
        for (int64_t i = 0; copies[n] && i < src->numel; i++)
            copies[n][i] = (float)(k * mx_tf_element(src, i));
        t[n] = (mx_tf_out){src->name, MX_F32, src->rank, src->dim, copies[n]};
    }
    return n;
}

static void drop_d(mx_tf_out *t, int *n) {
    for (int i = 0; i < *n; i++)
        if (strcmp(t[i].name, "mixer.D") == 0)
            t[i] = t[--*n];
}

static void add_extra(mx_tf_out *t, int *n) {
    t[*n] = t[0];
    t[(*n)++].name = "mixer.dt_proj.bais";
}

static void reshape_in_proj(mx_tf_out *t, int *n) {
    static const int64_t wrong[2] = {32, 32}; /* [64,16] elements, another shape */
    for (int i = 0; i < *n; i++)
        if (strcmp(t[i].name, "mixer.in_proj.weight") == 0)
            t[i].dim = wrong;
}

static void check_refusal(const char *what, edit_fn edit, const char *want) {
    mx_diag d = {{0}};
    mx_tensorfile *f = NULL;
    mx_model *m = support_load_model(GOLDEN "mamba_ssm_block.json", NULL, 0);
    if (!m || mx_tensorfile_read(GOLDEN "mamba_ssm_block.state.safetensors", &f, &d) != MX_OK) {
        CHECK_MSG(0, "%s: %s", what, d.msg);
        mx_model_free(m);
        return;
    }
    mx_tf_out t[32];
    float *copies[32] = {0};
    int n = copy_tensors(f, t, copies, 31, NULL); /* room for one more */
    edit(t, &n);
    const char *state = tmp_path("edited.safetensors");
    CHECK_MSG(mx_tensorfile_write(state, t, n, &d) == MX_OK, "%s", d.msg);
    mx_status st = mx_import_weights(m, MX_IMPORT_MAMBA_SSM, state, tmp_path("out.safetensors"), &d);
    CHECK_MSG(st != MX_OK && strstr(d.msg, want), "%s: got \"%s\", want \"%s\"", what, st ? d.msg : "success", want);
    CHECK_MSG(access(tmp_path("out.safetensors"), F_OK) != 0, "%s: a refused import left a file", what);
    for (int i = 0; i < 32; i++)
        free(copies[i]);
    mx_tensorfile_free(f);
    mx_model_free(m);
}

static void check_untied_head_refused(void) {
    mx_diag d = {{0}};
    mx_tensorfile *f = NULL;
    mx_model *m = support_load_model(GOLDEN "hf_mamba_causal_lm.json", NULL, 0);
    if (!m || mx_tensorfile_read(GOLDEN "hf_mamba_causal_lm.state.safetensors", &f, &d) != MX_OK) {
        CHECK_MSG(0, "%s", d.msg);
        mx_model_free(m);
        return;
    }
    mx_tf_out t[40];
    float *copies[40] = {0};
    int n = copy_tensors(f, t, copies, 40, "lm_head.weight");
    const char *state = tmp_path("untied.safetensors");
    CHECK_MSG(mx_tensorfile_write(state, t, n, &d) == MX_OK, "%s", d.msg);
    mx_status st = mx_import_weights(m, MX_IMPORT_TRANSFORMERS, state, tmp_path("out.safetensors"), &d);
    CHECK_MSG(st != MX_OK && strstr(d.msg, "differs from the embedding"), "untied head: %s", st ? d.msg : "success");
    /* the transformers spelling is not mamba_ssm's: the embedding is then unknown */
    st = mx_import_weights(m, MX_IMPORT_MAMBA_SSM, GOLDEN "hf_mamba_causal_lm.state.safetensors",
                           tmp_path("out.safetensors"), &d);
    CHECK_MSG(st != MX_OK && strstr(d.msg, "'backbone.embeddings.weight' is not part of a mamba_ssm"), "%s",
              st ? d.msg : "success");
    for (int i = 0; i < 40; i++)
        free(copies[i]);
    mx_tensorfile_free(f);
    mx_model_free(m);
}

static void check_source_names(void) {
    mx_import_source s;
    mx_diag d;
    CHECK(mx_import_source_parse("transformers", &s, &d) == MX_OK && s == MX_IMPORT_TRANSFORMERS);
    CHECK(mx_import_source_parse("keras", &s, &d) != MX_OK && strstr(d.msg, "mamba_ssm, transformers or mixc"));
}

/* ---- the mamba-130m spec ---------------------------------------------------------------- */

/* Mamba's parameter arithmetic for d_model D, E = 2D, N = 16, R = D/16,
 * conv 4, vocabulary V, n layers, tied head: */
static double mamba_params(double D, double V, double n) {
    double E = 2 * D, N = 16, R = ceil(D / 16), K = 4;
    double layer = D * 2 * E      /* in_proj */
                   + E * K + E    /* conv1d */
                   + (R + 2 * N) * E /* x_proj */
                   + R * E + E    /* dt_proj and its bias */
                   + E * N + E    /* A_log, D */
                   + E * D        /* out_proj */
                   + D;           /* the block's RMSNorm */
    return V * D + n * layer + D; /* embedding, layers, norm_f */
}

static void check_mamba_130m(void) {
    mx_model *m = support_load_model(MIXC_SOURCE_DIR "/models/lm/mamba-130m.json", NULL, 0);
    if (!m)
        return;
    mx_stats *s = mx_model_stats(m);
    double want = mamba_params(768, 50280, 24);
    CHECK_MSG(s && s->total.params == want, "mamba-130m: %.0f params, Mamba's arithmetic gives %.0f",
              s ? s->total.params : 0, want);
    const mx_graph *g = mx_model_graph(m);
    int out = mx_graph_output(g, 0);
    CHECK(strcmp(mx_graph_value_name(g, out), "logits") == 0 && mx_graph_value_dims(g, out)[2] == 50280);
    mx_stats_free(s);
    mx_model_free(m);
}

int main(void) {
    check_golden("hf_mamba_model", MX_IMPORT_TRANSFORMERS);
    check_golden("hf_mamba_causal_lm", MX_IMPORT_TRANSFORMERS);
    check_golden("mamba_ssm_block", MX_IMPORT_MAMBA_SSM);
    check_refusal("missing D", drop_d, "no tensor for param 'stages.0.blocks.0.token_mixer.scans.0.D'");
    check_refusal("extra tensor", add_extra, "tensor 'mixer.dt_proj.bais' is not part of a mamba_ssm Mamba model");
    check_refusal("mis-shaped", reshape_in_proj,
                  "tensor 'mixer.in_proj.weight' has shape F32[32,32], but param "
                  "'stages.0.blocks.0.token_mixer.in_proj.weight' is [64,16]");
    check_untied_head_refused();
    check_source_names();
    check_mamba_130m();
    const char *names[] = {"imported.safetensors", "edited.safetensors", "untied.safetensors", "out.safetensors"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        remove(tmp_path(names[i]));
    support_tmp_remove();
    return check_summary();
}
