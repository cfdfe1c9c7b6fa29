/* test_api.c: the public pipeline (mixc.h, "targets" and "compiling and
 * running") as a user drives it: targets chosen first, a model compiled for
 * ref and emu, the caller's own inputs (f32 and bf16) and params, outputs
 * read back and compared with the reference interpreter run independently on
 * the same numbers; every misuse an error that says what and where. The
 * emulation compile runs from a fresh temporary working directory with no
 * options, so the embedded prelude is what it uses. */
#include <stdlib.h>
#include <unistd.h>

#include "backend.h"
#include "gpu.h"
#include "half.h"
#include "support.h"

/* Fresh inputs, not mixc's own random stream: a sine of the index. */
static float *own_input(int64_t n, double phase) {
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)sin(0.37 * (double)i + phase);
    return x;
}

static void test_targets(void) {
    mx_target t;
    mx_diag d = {{0}};
    CHECK(mx_target_named("sm_90", MX_DEVICE_CUDA, &t, &d) == MX_OK && t.sm == 90 && t.sm_count > 0);
    CHECK(mx_target_named("a100", MX_DEVICE_EMU, &t, &d) == MX_OK && t.sm == 80 && t.smem_per_block > 0);
    CHECK(mx_target_named("h100", MX_DEVICE_EMU, &t, &d) == MX_OK && t.bytes_per_s > 0 && t.exps_per_s > 0);
    CHECK(mx_target_named("tpu9", MX_DEVICE_EMU, &t, &d) != MX_OK && strstr(d.msg, "unknown target 'tpu9'"));
    CHECK(mx_target_named("h100", MX_DEVICE_CPU, &t, &d) != MX_OK && strstr(d.msg, "GPU profile"));
    CHECK(mx_target_choose("gpu9", NULL, &t, NULL, 0, &d) != MX_OK && strstr(d.msg, "unknown device 'gpu9'"));
    CHECK(mx_target_detect(MX_DEVICE_REF, &t, &d) == MX_OK && t.threads >= 1 && t.name[0]);
    char why[512];
    CHECK(mx_target_choose("auto", NULL, &t, why, sizeof why, &d) == MX_OK);
    CHECK_MSG(t.device == MX_DEVICE_CUDA || strstr(why, "using the CPU"), "auto without a GPU must say why: %s", why);
    CHECK(mx_target_choose("emu", "sm_80", &t, NULL, 0, &d) == MX_OK && t.device == MX_DEVICE_EMU && t.sm == 80);
}

/* The reference on the source graph, with the same params and input. */
static mx_buffers *oracle(const mx_model *m, const char *input, const float *x, uint64_t seed) {
    const mx_graph *g = mx_model_graph(m);
    mx_buffers *b = mx_buffers_new(g);
    mx_model_init_params(m, b, seed);
    int v = mx_graph_value_find(g, input);
    b->data[v] = malloc((size_t)b->numel[v] * sizeof(float));
    memcpy(b->data[v], x, (size_t)b->numel[v] * sizeof(float));
    mx_diag d = {{0}};
    CHECK_MSG(mx_ref_run(g, b, &d) == MX_OK, "%s", d.msg);
    return b;
}

static void check_against(const mx_compiled *c, const mx_graph *g, const mx_buffers *want, double tol,
                          const char *what) {
    int v = mx_graph_output(g, 0);
    int64_t n = mx_graph_value_numel(g, v);
    float *got = malloc((size_t)n * sizeof *got);
    for (int64_t i = 0; i < n; i++)
        got[i] = NAN; /* poisoned: an element not written shows */
    mx_diag d = {{0}};
    CHECK_MSG(mx_get_output(c, mx_graph_value_name(g, v), got, MX_F32, (size_t)n * 4, &d) == MX_OK, "%s", d.msg);
    double *w = malloc((size_t)n * sizeof *w);
    for (int64_t i = 0; i < n; i++)
        w[i] = want->data[v][i];
    CHECK_CLOSE(got, w, n, tol, what);
    const float *direct = mx_output(c, NULL);
    CHECK(direct && memcmp(direct, got, (size_t)n * 4) == 0);
    free(got);
    free(w);
}

static void test_device(mx_device device) {
    mx_model *m = support_load_reduced("models/mamba-block.json", NULL);
    if (!m)
        return;
    const mx_graph *g = mx_model_graph(m);
    mx_target t;
    mx_diag d = {{0}};
    CHECK_MSG(mx_target_detect(device, &t, &d) == MX_OK, "%s", d.msg);
    mx_compiled *c = mx_compile_model(m, &t, NULL, &d);
    CHECK_MSG(c != NULL, "compile for %s: %s", mx_device_name(device), d.msg);
    if (!c) {
        mx_model_free(m);
        return;
    }
    CHECK(mx_tensor_count(c, MX_ROLE_INPUT) == 1 && mx_tensor_count(c, MX_ROLE_OUTPUT) == 1);
    CHECK(mx_tensor_count(c, MX_ROLE_PARAM) > 4);
    mx_tensor_info in, p0;
    CHECK(mx_tensor_info_of(c, MX_ROLE_INPUT, 0, &in, &d) == MX_OK && in.dtype == MX_F32 && in.rank == 3);
    CHECK(mx_tensor_info_of(c, MX_ROLE_PARAM, 0, &p0, &d) == MX_OK && mx_graph_value_is_param(g, mx_graph_value_find(g, p0.name)));
    CHECK(mx_tensor_info_of(c, MX_ROLE_INPUT, 1, &in, &d) != MX_OK && strstr(d.msg, "has 1 inputs, no input 1"));
    mx_tensor_info_of(c, MX_ROLE_INPUT, 0, &in, &d);

    /* Misuse before anything is set. */
    CHECK(mx_run(c, &d) != MX_OK && strstr(d.msg, "not set"));
    CHECK(mx_output(c, NULL) == NULL);
    float one = 0;
    CHECK(mx_get_output(c, NULL, &one, MX_F32, 4, &d) != MX_OK && strstr(d.msg, "nothing has run yet"));
    float *x = own_input(in.numel, 0.5);
    int64_t short_dims[3] = {in.dims[0], in.dims[1], in.dims[2] - 1};
    CHECK(mx_set_input(c, in.name, x, MX_F32, 3, short_dims, &d) != MX_OK && strstr(d.msg, "expected f32 [") &&
          strstr(d.msg, "got f32 ["));
    CHECK(mx_set_input(c, in.name, x, MX_F16, in.rank, in.dims, &d) != MX_OK && strstr(d.msg, "got f16"));
    CHECK(mx_set_input(c, "nope", x, MX_F32, in.rank, in.dims, &d) != MX_OK && strstr(d.msg, "no input named %nope"));
    CHECK(mx_set_input(c, p0.name, x, MX_F32, in.rank, in.dims, &d) != MX_OK); /* a param is not an input */

    /* The caller's input, the seeded params. */
    CHECK_MSG(mx_set_input(c, in.name, x, MX_F32, in.rank, in.dims, &d) == MX_OK, "%s", d.msg);
    CHECK(mx_run(c, &d) != MX_OK && strstr(d.msg, "param %") && strstr(d.msg, "not set"));
    CHECK_MSG(mx_init_weights(c, 7, &d) == MX_OK, "%s", d.msg);
    CHECK_MSG(mx_run(c, &d) == MX_OK, "run on %s: %s", mx_device_name(device), d.msg);
    mx_buffers *want = oracle(m, in.name, x, 7);
    check_against(c, g, want, 1e-4, mx_device_name(device));
    int v = mx_graph_output(g, 0);
    CHECK(mx_get_output(c, NULL, &one, MX_F32, 4, &d) != MX_OK && strstr(d.msg, "needs"));

    /* New input, same program: only the input is uploaded again. */
    float *x2 = own_input(in.numel, 2.0);
    CHECK(mx_set_input(c, in.name, x2, MX_F32, in.rank, in.dims, &d) == MX_OK);
    CHECK_MSG(mx_run(c, &d) == MX_OK, "%s", d.msg);
    mx_buffers *want2 = oracle(m, in.name, x2, 7);
    check_against(c, g, want2, 1e-4, "second input");

    /* A bf16 input: rounded to bf16 on the way in, f32 arithmetic after. */
    uint16_t *xb = malloc((size_t)in.numel * 2);
    float *xr = malloc((size_t)in.numel * 4);
    for (int64_t i = 0; i < in.numel; i++) {
        xb[i] = mx_f32_to_bf16(x[i]);
        xr[i] = mx_bf16_to_f32(xb[i]);
    }
    CHECK(mx_set_input(c, in.name, xb, MX_BF16, in.rank, in.dims, &d) != MX_OK); /* the graph stores f32 */
    CHECK(mx_set_input(c, in.name, xr, MX_F32, in.rank, in.dims, &d) == MX_OK && mx_run(c, &d) == MX_OK);
    mx_buffers *want3 = oracle(m, in.name, xr, 7);
    check_against(c, g, want3, 1e-4, "bf16-rounded input");

    /* New weights, same program (the cpu reads f32 params where the
     * compiled model holds them: bound again in place). */
    CHECK_MSG(mx_init_weights(c, 8, &d) == MX_OK && mx_run(c, &d) == MX_OK, "%s", d.msg);
    mx_buffers *want4 = oracle(m, in.name, xr, 8);
    check_against(c, g, want4, 1e-4, "second weights");
    CHECK_MSG(mx_init_weights(c, 7, &d) == MX_OK, "%s", d.msg);

    /* Timing runs the same pass. */
    mx_timing tm;
    CHECK_MSG(mx_time(c, 1, 3, &tm, &d) == MX_OK && tm.runs == 3 && tm.min_ms <= tm.median_ms &&
                  tm.median_ms <= tm.max_ms, "%s", d.msg);
    check_against(c, g, want3, 1e-4, "after mx_time");
    CHECK(mx_time(c, 0, 0, &tm, &d) != MX_OK);
    (void)v;
    free(x), free(x2), free(xb), free(xr);
    mx_buffers_free(want), mx_buffers_free(want2), mx_buffers_free(want3), mx_buffers_free(want4);
    mx_compiled_free(c);
    mx_model_free(m);
}

/* Compiles through the production paths from a temporary working directory:
 * the emulation (host compiler) and NVRTC (the cuda device's call) find the
 * prelude in the library, not in the source tree. */
static void test_elsewhere(void) {
    mx_model *m = support_load_reduced("models/mamba-block.json", NULL);
    char cwd[4096], dir[] = "/tmp/mixc-api-XXXXXX";
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(mkdtemp(dir) != NULL);
    CHECK(chdir(dir) == 0);
    mx_target t;
    mx_diag d = {{0}};
    mx_target_named("sm_90", MX_DEVICE_CUDA, &t, &d);
    mx_compile_options o = {.no_load = 1};
    mx_compiled *c = m ? mx_compile_model(m, &t, &o, &d) : NULL;
    CHECK_MSG(c != NULL, "%s", d.msg);
    CHECK(c && mx_run(c, &d) != MX_OK && strstr(d.msg, "no_load"));
    mx_module mod;
    if (c && mx_compiled_module(c, &mod, &d) == MX_OK) {
        mx_cubin cubins[MX_CODEGEN_MAX_PROGRAMS];
        CHECK_MSG(mx_gpu_compile(&mod, "api-elsewhere", t.sm, cubins, &d) == MX_OK, "%s", d.msg);
        CHECK(mod.n_programs > 0);
        for (int q = 0; q < mod.n_programs; q++) {
            CHECK(cubins[q].cubin_len > 0 && cubins[q].n_kernels > 0);
            mx_cubin_free(&cubins[q]);
        }
        mx_module_free(&mod);
    } else {
        CHECK_MSG(0, "codegen: %s", d.msg);
    }
    mx_compiled_free(c);
    mx_target_detect(MX_DEVICE_EMU, &t, &d);
    c = m ? mx_compile_model(m, &t, NULL, &d) : NULL;
    CHECK_MSG(c != NULL, "emu from %s: %s", dir, d.msg);
    CHECK(c && mx_init_weights(c, 1, &d) == MX_OK && mx_set_random_inputs(c, 1, &d) == MX_OK &&
          mx_run(c, &d) == MX_OK);
    mx_compiled_free(c);
    CHECK(chdir(cwd) == 0);
    CHECK(rmdir(dir) == 0); /* nothing left behind in the working directory */
    mx_model_free(m);
}

int main(void) {
    test_targets();
    test_device(MX_DEVICE_REF);
    test_device(MX_DEVICE_EMU);
    if (mx_backend_of(MX_DEVICE_CPU))
        test_device(MX_DEVICE_CPU);
    test_elsewhere();
    return check_summary();
}
