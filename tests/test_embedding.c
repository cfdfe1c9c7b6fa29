/* test_embedding.c: the embedding op (a gather of table rows by token ids)
 * on every device that runs generated code, against the reference.
 *
 * The op alone through the public API: a table in f32 and bf16, ids that
 * pick rows (fresh random ones) and ids outside the table or not whole
 * (a row of NaN, never a read outside it); shape and dtype refusals; then
 * the language-model spec (models/lm/, mamba-130m's shape at reduced size:
 * embedding, pre-norm residual blocks, RMSNorm, tied head) on emu and cpu
 * against the reference within 1e-4 (f32) and 2e-2 (bf16 storage). */
#include <stdlib.h>

#include "backend.h"
#include "half.h"
#include "support.h"

enum { V = 37, C = 5, B = 2, L = 7 };

static const char *const graph_text = "graph emb {\n"
                                      "  %%table = param() : %s[37,5]\n"
                                      "  %%ids = input() : f32[2,7]\n"
                                      "  %%y = embedding(%%table, %%ids) : %s[2,7,5]\n"
                                      "  output %%y\n"
                                      "}\n";

static bool device_available(mx_device device, mx_target *t) {
    mx_diag d = {{0}};
    if (device == MX_DEVICE_CPU && !mx_have_cpu_backend())
        return false;
    mx_status st = mx_target_detect(device, t, &d);
    CHECK_MSG(st == MX_OK, "%s: %s", mx_device_name(device), d.msg);
    return st == MX_OK;
}

/* The graph on device with the given table and ids; y as f32 into out. */
static bool run_graph(const mx_graph *g, mx_device device, mx_dtype dtype, const float *table, const float *ids,
                      float *out) {
    mx_target t;
    if (!device_available(device, &t))
        return false;
    mx_diag d = {{0}};
    mx_compiled *c = mx_compile(g, &t, NULL, &d);
    const int64_t table_dims[] = {V, C}, ids_dims[] = {B, L};
    mx_status st = c ? MX_OK : MX_ERR_INVALID;
    if (st == MX_OK)
        st = mx_set_param(c, "table", table, dtype, 2, table_dims, &d);
    if (st == MX_OK)
        st = mx_set_input(c, "ids", ids, MX_F32, 2, ids_dims, &d);
    for (int i = 0; i < B * L * C; i++)
        out[i] = 12345.0f; /* poison */
    if (st == MX_OK)
        st = mx_run(c, &d);
    if (st == MX_OK)
        st = mx_get_output(c, "y", out, MX_F32, (size_t)B * L * C * sizeof(float), &d);
    CHECK_MSG(st == MX_OK, "embedding on %s: %s", mx_device_name(device), d.msg);
    mx_compiled_free(c);
    return st == MX_OK;
}

static void check_op(const char *dtype) {
    char text[512];
    snprintf(text, sizeof text, graph_text, dtype, dtype);
    mx_diag d = {{0}};
    mx_graph *g = mx_graph_parse(text, "emb.mxir", &d);
    CHECK_MSG(g != NULL, "%s", d.msg);
    if (!g)
        return;
    bool bf16 = strcmp(dtype, "bf16") == 0;
    float table[V * C], ids[B * L], want[B * L * C], got[B * L * C];
    uint16_t table_bf16[V * C];
    check_fill(table, V * C, -2, 2);
    for (int i = 0; i < V * C; i++) /* the table as the model stores it */
        table_bf16[i] = mx_f32_to_bf16(table[i]), table[i] = bf16 ? mx_bf16_to_f32(table_bf16[i]) : table[i];
    const void *given = bf16 ? (const void *)table_bf16 : table;
    mx_dtype dt = bf16 ? MX_BF16 : MX_F32;
    for (int i = 0; i < B * L; i++)
        ids[i] = (float)(check_rng_u64() % V);
    /* outside the table, negative, not whole, huge: rows of NaN */
    const float bad[] = {V, -1, 2.5f, -0.5f, 1e30f};
    for (int i = 0; i < (int)(sizeof bad / sizeof *bad); i++)
        ids[3 * i + 1] = bad[i];
    static const mx_device devices[] = {MX_DEVICE_REF, MX_DEVICE_EMU, MX_DEVICE_CPU};
    if (!run_graph(g, MX_DEVICE_REF, dt, given, ids, want)) {
        mx_graph_free(g);
        return;
    }
    int wrong = 0; /* the reference against a gather written here */
    for (int i = 0; i < B * L; i++) {
        bool valid = ids[i] >= 0 && ids[i] < V && ids[i] == floorf(ids[i]);
        for (int c = 0; c < C; c++)
            wrong += valid ? want[i * C + c] != table[(int)ids[i] * C + c] : !isnan(want[i * C + c]);
    }
    CHECK_MSG(wrong == 0, "%s on ref: %d of %d elements are not the gather", dtype, wrong, B * L * C);
    for (size_t k = 1; k < sizeof devices / sizeof *devices; k++) {
        if (!run_graph(g, devices[k], dt, given, ids, got))
            continue;
        wrong = 0;
        for (int i = 0; i < B * L * C; i++)
            wrong += isnan(want[i]) ? !isnan(got[i]) : got[i] != want[i];
        CHECK_MSG(wrong == 0, "%s on %s: %d of %d elements differ from the reference", dtype,
                  mx_device_name(devices[k]), wrong, B * L * C);
    }
    mx_graph_free(g);
}

static void check_refusals(void) {
    static const char *bad[][2] = {
        {"  %table = param() : f32[5]\n  %ids = input() : f32[2]\n  %y = embedding(%table, %ids) : f32[2,5]\n",
         "input 1 (table) has shape f32[5]: expected [V, C]"},
        {"  %table = param() : f16[5,3]\n  %ids = input() : f16[2]\n  %y = embedding(%table, %ids) : f16[2,3]\n",
         "input 2 (ids) has dtype f16: expected f32"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char src[512];
        mx_diag d = {{0}};
        snprintf(src, sizeof src, "graph bad {\n%s  output %%y\n}\n", bad[i][0]);
        mx_graph *bg = mx_graph_parse(src, "bad.mxir", &d);
        CHECK_MSG(!bg && strstr(d.msg, bad[i][1]), "got \"%s\", want \"%s\"", bg ? "success" : d.msg, bad[i][1]);
        mx_graph_free(bg);
    }
}

/* mixc's seeded inputs for ids are rows of the table. */
static void check_random_ids(void) {
    char text[512];
    snprintf(text, sizeof text, graph_text, "f32", "f32");
    mx_diag d = {{0}};
    mx_graph *g = mx_graph_parse(text, "emb.mxir", &d);
    mx_buffers *b = g ? mx_buffers_new(g) : NULL;
    CHECK(b != NULL);
    if (b) {
        mx_buffers_fill_random(b, g, 3);
        const float *ids = b->data[mx_graph_value_find(g, "ids")];
        bool rows = true, several = false;
        for (int i = 0; i < B * L; i++) {
            rows = rows && ids[i] >= 0 && ids[i] < V && ids[i] == floorf(ids[i]);
            several |= ids[i] != ids[0];
        }
        CHECK_MSG(rows && several, "random ids are not varied rows of the table");
    }
    mx_buffers_free(b);
    mx_graph_free(g);
}

/* The language model at reduced size on device against the reference. */
static void check_language_model(const char *path, mx_device device, const char *extra, double tol) {
    mx_target t, rt;
    if (!device_available(device, &t) || !device_available(MX_DEVICE_REF, &rt))
        return;
    mx_model *m = support_load_reduced(path, extra);
    if (!m)
        return;
    mx_diag d = {{0}};
    mx_compiled *c[2] = {mx_compile_model(m, &rt, NULL, &d), NULL};
    CHECK_MSG(c[0] != NULL, "%s on ref: %s", path, d.msg);
    c[1] = c[0] ? mx_compile_model(m, &t, NULL, &d) : NULL;
    CHECK_MSG(!c[0] || c[1] != NULL, "%s on %s: %s", path, mx_device_name(device), d.msg);
    for (int k = 0; k < 2 && c[1]; k++) {
        mx_status st = mx_init_weights(c[k], 5, &d);
        if (st == MX_OK)
            st = mx_set_random_inputs(c[k], 6, &d);
        if (st == MX_OK)
            st = mx_run(c[k], &d);
        CHECK_MSG(st == MX_OK, "%s: %s", path, d.msg);
    }
    const float *want = c[1] ? mx_output(c[0], "logits") : NULL, *got = c[1] ? mx_output(c[1], "logits") : NULL;
    int64_t n = want ? mx_graph_value_numel(mx_model_graph(m), mx_graph_value_find(mx_model_graph(m), "logits")) : 0;
    double *w = n ? malloc((size_t)n * sizeof *w) : NULL;
    if (w && got) {
        bool varied = false;
        for (int64_t i = 0; i < n; i++)
            w[i] = want[i], varied |= want[i] != want[0];
        char what[160];
        snprintf(what, sizeof what, "%s %s%s: logits", mx_device_name(device), support_base(path), extra ? extra : "");
        CHECK_MSG(varied, "%s: constant logits", what);
        CHECK_CLOSE(got, w, n, tol, what);
    }
    CHECK_MSG(w && got, "%s: no logits", path);
    free(w);
    mx_compiled_free(c[0]), mx_compiled_free(c[1]);
    mx_model_free(m);
}

int main(void) {
    check_op("f32");
    check_op("bf16");
    check_refusals();
    check_random_ids();
    const char *lm = MIXC_SOURCE_DIR "/models/lm/mamba-130m.json";
    check_language_model(lm, MX_DEVICE_EMU, NULL, 1e-4);
    check_language_model(lm, MX_DEVICE_CPU, NULL, 1e-4);
    check_language_model(lm, MX_DEVICE_EMU, "dtype=bf16", 2e-2);
    check_language_model(lm, MX_DEVICE_CPU, "dtype=bf16", 2e-2);
    return check_summary();
}
