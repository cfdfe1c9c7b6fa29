/* test_reliability.c: faults and limits (docs/reliability.md): a spec too big
 * for memory is refused before anything is allocated, naming the fields that
 * size it; an allocation that fails is reported, not a crash; the kernel
 * cache survives a FIFO or garbage at an entry's path; the kill switches
 * MIXC_NO_FUSION and MIXC_NO_PLANNER still give a program that runs and
 * agrees with the reference. The command-line ends (SIGKILL, parallel
 * processes, every switch on every device) are tests/reliability_*.sh. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blas.h"
#include "cache.h"
#include "finite.h"
#include "memcheck.h"
#include "model.h"
#include "support.h"

#define MODELS MIXC_SOURCE_DIR "/models"
#define SEED 7u

/* Allocations of terabytes must fail the way they do without ASan: with NULL,
 * for mixc to report, not with ASan's abort. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

static mx_program *compile_model(const mx_model *m, const mx_pass_options *o) {
    return support_compile(mx_model_graph(m), mx_model_graph(m)->name, o);
}

static mx_target host_target(mx_device device, int64_t memory_bytes) {
    mx_target t = {.device = device, .memory_bytes = memory_bytes};
    snprintf(t.name, sizeof t.name, "a %lld-byte test machine", (long long)memory_bytes);
    return t;
}

/* ---- memory ------------------------------------------------------------------------ */

static void test_memory_check(void) {
    static const char *const huge_set[] = {"input.length=1000000", "stages[0].width=65536"};
    mx_pass_options o = {.verify = true};
    mx_model *huge = support_load_model(MODELS "/mamba-block.json", huge_set, 2);
    mx_program *p = huge ? compile_model(huge, &o) : NULL;
    if (p) {
        mx_diag d = {{0}};
        mx_target t = host_target(MX_DEVICE_REF, (int64_t)16 << 30);
        CHECK(mx_memory_check(p, &t, huge, &d) == MX_ERR_NOMEM);
        CHECK_MSG(strstr(d.msg, "does not fit in memory") && strstr(d.msg, "GB of host memory") &&
                      strstr(d.msg, "input.length=1000000") && strstr(d.msg, "stages[0].width=65536"),
                  "%s", d.msg);
        /* A GPU is checked against its own memory. */
        mx_target h100;
        CHECK(mx_target_named("h100", MX_DEVICE_CUDA, &h100, &d) == MX_OK);
        CHECK(mx_memory_check(p, &h100, huge, &d) == MX_ERR_NOMEM);
        CHECK_MSG(strstr(d.msg, "GB of GPU memory"), "%s", d.msg);
        /* Without a model the largest tensor is still named. */
        CHECK(mx_memory_check(p, &t, NULL, &d) == MX_ERR_NOMEM && strstr(d.msg, "the largest value: node %"));
        mx_program_free(p);
    }
    mx_model_free(huge);

    mx_model *small = support_load_reduced(MODELS "/mamba-block.json", NULL);
    p = small ? compile_model(small, &o) : NULL;
    if (p) {
        mx_diag d = {{0}};
        for (mx_device dev = MX_DEVICE_REF; dev <= MX_DEVICE_CPU; dev++) {
            mx_target t = host_target(dev, (int64_t)16 << 30);
            CHECK_MSG(mx_memory_check(p, &t, small, &d) == MX_OK, "%s: %s", mx_device_name(dev), d.msg);
        }
        /* The estimate: every value in f32 on the reference, less for the planned arena. */
        mx_target ref = host_target(MX_DEVICE_REF, 0), emu = host_target(MX_DEVICE_EMU, 0);
        mx_memory_need r = mx_memory_estimate(p, &ref), e = mx_memory_estimate(p, &emu);
        CHECK(r.activations > 0 && e.activations == (double)p->arena_bytes && r.largest >= 0);
        CHECK(r.weights > 0 && r.host_bytes > r.activations + r.weights / 2);
        /* On a GPU the arena, the params and cuBLASLt's workspace: one byte
         * less than that is refused before anything is allocated. */
        mx_target gpu = host_target(MX_DEVICE_CUDA, 0);
        mx_memory_need gn = mx_memory_estimate(p, &gpu);
        CHECK(gn.device_bytes >= (double)p->arena_bytes + MX_BLAS_WORKSPACE_BYTES);
        gpu.memory_bytes = (int64_t)gn.device_bytes;
        CHECK_MSG(mx_memory_check(p, &gpu, small, &d) == MX_OK, "%s", d.msg);
        gpu.memory_bytes = (int64_t)gn.device_bytes - 1;
        CHECK(mx_memory_check(p, &gpu, small, &d) == MX_ERR_NOMEM && strstr(d.msg, "GB of GPU memory"));
        mx_target tiny = host_target(MX_DEVICE_EMU, 4096);
        CHECK(mx_memory_check(p, &tiny, small, &d) == MX_ERR_NOMEM);
        mx_program_free(p);
    }
    mx_model_free(small);
}

/* d_state = 1e9: the crash. The params cannot be allocated; init says
 * so and leaves them empty instead of writing through NULL. */
static void test_init_out_of_memory(void) {
    static const char *const set[] = {"stages[0].token_mixer.d_state=1000000000"};
    mx_model *m = support_load_model(MODELS "/mamba-block.json", set, 1);
    if (!m)
        return;
    const mx_graph *g = mx_model_graph(m);
    mx_buffers *b = mx_buffers_new(g);
    CHECK(mx_model_init_params(m, b, SEED) == MX_ERR_NOMEM);
    int empty = 0;
    for (int v = 0; v < b->count; v++)
        empty += mx_graph_value_is_param(g, v) && !b->data[v];
    CHECK_MSG(empty >= 1, "%d params left empty", empty);
    mx_buffers_free(b);
    /* And the pipeline refuses it before allocating anything. */
    mx_diag d = {{0}};
    mx_target t = host_target(MX_DEVICE_REF, (int64_t)16 << 30);
    mx_compiled *c = mx_compile_model(m, &t, NULL, &d);
    CHECK_MSG(!c && strstr(d.msg, "does not fit in memory") && strstr(d.msg, "d_state=1000000000"), "%s",
              d.msg);
    mx_compiled_free(c);
    mx_model_free(m);
}

/* d_state = 1024: a scan whose state does not fit the shared memory of an
 * H100 block. Either a kernel variant handles it or the error names the
 * spec field, not only the kernel. */
static void test_codegen_limit_names_field(void) {
    static const char *const set[] = {"input.length=12", "stages[0].token_mixer.d_state=1024"};
    mx_model *m = support_load_model(MODELS "/mamba-block.json", set, 2);
    mx_diag d = {{0}};
    mx_target t;
    CHECK(mx_target_named("h100", MX_DEVICE_EMU, &t, &d) == MX_OK);
    mx_compiled *c = m ? mx_compile_model(m, &t, NULL, &d) : NULL;
    CHECK_MSG(c || strstr(d.msg, "stages[0].token_mixer.d_state=1024"), "%s", d.msg);
    mx_compiled_free(c);
    mx_model_free(m);
}

/* ---- NaN and Inf ------------------------------------------------------------------------ */

/* A NaN weight or input is refused where it enters, named, before any run. */
static void test_nonfinite(void) {
    mx_model *m = support_load_reduced(MODELS "/mamba-block.json", NULL);
    mx_diag d = {{0}};
    mx_target t = host_target(MX_DEVICE_REF, (int64_t)16 << 30);
    mx_compiled *c = m ? mx_compile_model(m, &t, NULL, &d) : NULL;
    CHECK_MSG(c != NULL, "%s", d.msg);
    if (c) {
        CHECK(mx_init_weights(c, SEED, &d) == MX_OK && mx_set_random_inputs(c, SEED, &d) == MX_OK);
        CHECK_MSG(mx_run(c, &d) == MX_OK, "%s", d.msg);
        mx_tensor_info in;
        CHECK(mx_tensor_info_of(c, MX_ROLE_INPUT, 0, &in, &d) == MX_OK);
        float *x = calloc((size_t)in.numel, sizeof *x);
        x[5] = INFINITY;
        CHECK(mx_set_input(c, in.name, x, MX_F32, in.rank, in.dims, &d) == MX_OK);
        CHECK(mx_run(c, &d) == MX_ERR_INVALID);
        CHECK_MSG(strstr(d.msg, "input %") && strstr(d.msg, "1 of its") && strstr(d.msg, "element 5, is inf"), "%s",
                  d.msg);
        free(x);
    }
    mx_compiled_free(c);
    mx_model_free(m);
    float v[4] = {1, NAN, 2, NAN};
    int64_t first;
    CHECK(mx_count_nonfinite(v, 4, &first) == 2 && first == 1);
}

/* ---- the kernel cache ---------------------------------------------------------------- */

static const char kernel_src[] = "extern \"C\" __global__ void k(float *x) { x[threadIdx.x] += 1.0f; }\n";

static void entry_path(mx_hash128 key, char *path, size_t size) {
    char dir[4096];
    CHECK(mx_cache_dir(dir, sizeof dir));
    snprintf(path, size, "%s/%016llx%016llx.cubin", dir, (unsigned long long)key.hi, (unsigned long long)key.lo);
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "test_reliability: the kernel cache blocked on a FIFO\n";
    if (write(2, msg, sizeof msg - 1) < 0)
        _exit(2);
    _exit(1);
}

/* A FIFO at an entry's path once made every cached compile block forever. */
static void test_cache_fifo(const char *dir) {
    char path[4200];
    mx_hash128 key = {11, 12};
    entry_path(key, path, sizeof path);
    mkdir(dir, 0755);
    CHECK(mkfifo(path, 0644) == 0);
    signal(SIGALRM, on_alarm);
    alarm(20);
    unsigned char *bytes;
    size_t len;
    CHECK(mx_cache_get(key, &bytes, &len) == MX_CACHE_CORRUPT && !bytes);
    mx_diag d = {{0}};
    CHECK_MSG(mx_cache_put(key, "hello", 5, &d) == MX_OK, "%s", d.msg); /* replaces the FIFO */
    CHECK(mx_cache_get(key, &bytes, &len) == MX_CACHE_HIT && len == 5);
    free(bytes);
    alarm(0);
    unlink(path);
}

/* A damaged entry is compiled again and, at MIXC_DEBUG=1, reported with its path. */
static void test_cache_corrupt_reported(void) {
    char path[4200], log[] = "/tmp/mixc-reliability-log-XXXXXX";
    mx_hash128 key = mx_cache_key(kernel_src, "k.cu", 80, NULL, 0);
    entry_path(key, path, sizeof path);
    FILE *f = fopen(path, "wb");
    CHECK(f && fputs("mixcbin\0 not an entry", f) >= 0);
    if (f)
        fclose(f);
    int fd = mkstemp(log), saved = dup(2);
    CHECK(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, 2);
    mx_cubin bin;
    mx_diag d = {{0}};
    mx_status st = mx_nvrtc_compile_cached(kernel_src, "k.cu", 80, NULL, 0, &bin, &d);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    CHECK_MSG(st == MX_OK && !bin.from_cache, "%s", d.msg);
    mx_cubin_free(&bin);
    char text[2048] = "";
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    text[n > 0 ? n : 0] = 0;
    close(fd);
    unlink(log);
    CHECK_MSG(strstr(text, path) && strstr(text, "compiling again"), "stderr: %s", text);
    /* The rebuilt entry is whole: the next compile is a hit. */
    st = mx_nvrtc_compile_cached(kernel_src, "k.cu", 80, NULL, 0, &bin, &d);
    CHECK_MSG(st == MX_OK && bin.from_cache, "%s", d.msg);
    mx_cubin_free(&bin);
    unlink(path);
}

/* ---- the kill switches ---------------------------------------------------------------- */

static void check_planned_run(const char *what, const mx_model *m, const mx_program *p) {
    const mx_graph *src = mx_model_graph(m);
    mx_buffers *sb = mx_buffers_new(src), *want = mx_buffers_new(src), *got = mx_buffers_new(p->g);
    mx_buffers_fill_random(sb, src, SEED);
    CHECK(mx_model_init_params(m, sb, SEED) == MX_OK);
    mx_buffers_fill_random(want, src, SEED);
    CHECK(mx_model_init_params(m, want, SEED) == MX_OK);
    mx_buffers_fill_random(got, p->g, SEED);
    mx_diag d = {{0}};
    CHECK_MSG(mx_ref_run(src, want, &d) == MX_OK, "%s: %s", what, d.msg);
    CHECK_MSG(mx_program_bind_init(p, src, sb, got, &d) == MX_OK, "%s: %s", what, d.msg);
    CHECK_MSG(mx_program_ref_run_planned(p, got, &d) == MX_OK, "%s: %s", what, d.msg);
    for (int i = 0; i < src->n_outputs; i++) {
        int w = src->outputs[i], v = p->g->outputs[i];
        double *ref = malloc((size_t)want->numel[w] * sizeof(double));
        for (int64_t k = 0; k < want->numel[w]; k++)
            ref[k] = want->data[w][k];
        if (got->data[v])
            CHECK_CLOSE(got->data[v], ref, want->numel[w], 1e-5, what);
        free(ref);
    }
    mx_buffers_free(sb), mx_buffers_free(want), mx_buffers_free(got);
}

/* MIXC_NO_FUSION: one group per node (a view stays with the node that realises
 * it); MIXC_NO_PLANNER: every value its own buffer. Both still run. */
static void test_switches(void) {
    mx_model *m = support_load_reduced(MODELS "/mambamixer-block.json", NULL);
    if (!m)
        return;
    mx_pass_options fused = {.verify = true}, no_merge = {.verify = true, .no_merge = true},
                    no_reuse = {.verify = true, .no_reuse = true};
    mx_program *pf = compile_model(m, &fused), *pm = compile_model(m, &no_merge), *pr = compile_model(m, &no_reuse);
    if (pf && pm && pr) {
        CHECK_MSG(pm->n_groups > pf->n_groups, "groups: %d unfused, %d fused", pm->n_groups, pf->n_groups);
        /* Members that are kernels of their own (not views folded into
         * loads); more than one only where a view stored by its producers
         * (the sum of K scan orders) binds them, as layout decided. */
        int multi = 0;
        for (int k = 0; k < pm->n_groups; k++) {
            int kernels = 0;
            bool bound = false;
            for (int i = 0; i < pm->groups[k].n_nodes; i++) {
                mx_view_mode mode = pm->view ? pm->view[pm->groups[k].nodes[i]] : MX_VIEW_COPY;
                kernels += mode == MX_VIEW_COPY;
                bound |= mode == MX_VIEW_PRODUCER;
            }
            multi += kernels > 1 && !bound;
        }
        CHECK_MSG(multi == 0, "%d groups merge nodes without fusion", multi);
        bool in_place = false, overlap = false;
        for (int v = 0; v < pr->g->n_values; v++) {
            const mx_slot *a = &pr->slots[v];
            in_place |= a->in_place_of >= 0;
            for (int w = v + 1; a->offset >= 0 && w < pr->g->n_values; w++) {
                const mx_slot *b = &pr->slots[w];
                overlap |= b->offset >= 0 && a->offset < b->offset + b->bytes && b->offset < a->offset + a->bytes;
            }
        }
        CHECK(!in_place && !overlap && pr->arena_bytes >= pf->arena_bytes);
        check_planned_run("no fusion", m, pm);
        check_planned_run("no planner", m, pr);
    }
    mx_program_free(pf), mx_program_free(pm), mx_program_free(pr);
    mx_model_free(m);
}

int main(void) {
    char dir[] = "/tmp/mixc-reliability-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    setenv("MIXC_CACHE_DIR", dir, 1);
    unsetenv("MIXC_NO_CACHE");
    setenv("MIXC_DEBUG", "1", 1); /* read once, on first use */
    test_memory_check();
    test_init_out_of_memory();
    test_nonfinite();
    test_codegen_limit_names_field();
    test_cache_fifo(dir);
    test_cache_corrupt_reported();
    test_switches();
    rmdir(dir);
    return check_summary();
}
