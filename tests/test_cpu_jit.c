/* test_cpu_jit.c: the CPU backend's objects and their cache key
 * (cpu_compile.h).
 *   - mx_cpu_object_key: the same description gives the same key; changing
 *     any one field of it (each in turn, every part of LLVM's version, a
 *     character moved across two fields' boundary) gives another.
 *   - Through the public API with a kernel cache of its own: a compile
 *     writes the model's objects; compiling again writes nothing (every
 *     object from the cache) and gives bit-identical outputs; a change that
 *     changes the kernels (a size, the storage type) writes new objects; a
 *     change that changes none (the thread count) writes nothing.
 *   - The inline exp (and the softplus and silu built on it) on the host's
 *     widest vectors and on 8 lanes, both exp2 builds on an AVX-512 host
 *     (vscalefps on 16 lanes, the exponent bits on 8): against libm in
 *     double over [-3000, 1000], at the clamps and where the results
 *     overflow or underflow (inputs are finite: the API refuses others).
 * Skipped (exit 77) when mixc was built without LLVM. */
#include <stdlib.h>

#include "backend.h"
#include "support.h"

#ifdef MIXC_HAVE_LLVM
#include "cpu_compile.h"
#include "tune.h"

static mx_cpu_object_desc base_desc(void) {
    return (mx_cpu_object_desc){.source = "__global__ void k(float *a) { a[0] = 1.0f; }",
                                .triple = "x86_64-pc-linux-gnu",
                                .cpu = "znver4",
                                .features = "+avx512f,+avx2",
                                .pipeline = "default<O3>",
                                .unroll_all = 0,
                                .codegen_level = 3,
                                .llvm_version = {19, 1, 7},
                                .mixc_version = "0.1.0",
                                .lowering = 2,
                                .smem = 49152,
                                .lanes = 16};
}

static bool same_key(mx_hash128 a, mx_hash128 b) { return a.lo == b.lo && a.hi == b.hi; }

static void check_key_fields(void) {
    mx_cpu_object_desc base = base_desc(), again = base_desc();
    mx_hash128 k0 = mx_cpu_object_key(&base);
    CHECK_MSG(same_key(k0, mx_cpu_object_key(&again)), "the same description gave two keys");
    /* each field changed in turn */
    mx_cpu_object_desc changed[15];
    const char *what[15];
    int n = 0;
    for (int i = 0; i < 15; i++)
        changed[i] = base_desc();
    changed[n].source = "__global__ void k(float *a) { a[0] = 2.0f; }", what[n++] = "source";
    changed[n].triple = "aarch64-unknown-linux-gnu", what[n++] = "triple";
    changed[n].cpu = "skylake-avx512", what[n++] = "cpu";
    changed[n].features = "+avx512f,-avx2", what[n++] = "features";
    changed[n].pipeline = "default<O2>", what[n++] = "pipeline";
    changed[n].unroll_all = 1, what[n++] = "unroll_all";
    changed[n].codegen_level = 2, what[n++] = "codegen_level";
    changed[n].llvm_version[0] = 20, what[n++] = "llvm major";
    changed[n].llvm_version[1] = 2, what[n++] = "llvm minor";
    changed[n].llvm_version[2] = 8, what[n++] = "llvm patch";
    changed[n].mixc_version = "0.1.1", what[n++] = "mixc_version";
    changed[n].lowering = 3, what[n++] = "lowering";
    changed[n].smem = 65536, what[n++] = "smem";
    changed[n].lanes = 8, what[n++] = "lanes";
    /* a character moved from the CPU's name to its features */
    changed[n].cpu = "znver", changed[n].features = "4+avx512f,+avx2", what[n++] = "cpu | features boundary";
    for (int i = 0; i < n; i++) {
        mx_hash128 k = mx_cpu_object_key(&changed[i]);
        CHECK_MSG(!same_key(k, k0), "changing %s left the object key unchanged", what[i]);
        for (int j = 0; j < i; j++)
            CHECK_MSG(!same_key(k, mx_cpu_object_key(&changed[j])), "changing %s and %s gave the same key", what[i],
                      what[j]);
    }
}

/* ---- the cache through the public API ------------------------------------------------- */

static char cache_dir[64];

/* The model compiled for t and run once on seeded params and inputs; its
 * first output copied into out (n floats at most); the cache entries that
 * compiling wrote in *written. */
static int64_t compile_and_run(const mx_model *m, const mx_target *t, float *out, int64_t n, int *written) {
    static char before[1 << 16], after[1 << 16];
    int n_before = support_cache_listing(cache_dir, before, sizeof before);
    mx_diag d = {{0}};
    mx_compiled *c = mx_compile_model(m, t, NULL, &d);
    CHECK_MSG(c != NULL, "compile: %s", d.msg);
    if (!c)
        return 0;
    int n_after = support_cache_listing(cache_dir, after, sizeof after);
    *written = strcmp(before, after) == 0 ? 0 : n_after - n_before > 0 ? n_after - n_before : 1;
    mx_status st = mx_init_weights(c, 5, &d);
    if (st == MX_OK)
        st = mx_set_random_inputs(c, 6, &d);
    if (st == MX_OK)
        st = mx_run(c, &d);
    CHECK_MSG(st == MX_OK, "run: %s", d.msg);
    mx_tensor_info info = {0};
    if (st == MX_OK)
        st = mx_tensor_info_of(c, MX_ROLE_OUTPUT, 0, &info, &d);
    int64_t got = st == MX_OK && info.numel <= n ? info.numel : 0;
    if (got > 0)
        memcpy(out, mx_output(c, NULL), (size_t)got * sizeof *out);
    mx_compiled_free(c);
    return got;
}

static void check_cache(void) {
    static const char path[] = MIXC_SOURCE_DIR "/models/mamba-block.json";
    mx_target t;
    mx_diag d = {{0}};
    CHECK_MSG(mx_target_detect(MX_DEVICE_CPU, &t, &d) == MX_OK, "%s", d.msg);
    enum { MAX_OUT = 1 << 16 };
    float *cold = malloc(MAX_OUT * sizeof *cold), *warm = malloc(MAX_OUT * sizeof *warm);
    mx_model *m = support_load_reduced(path, NULL);
    if (!m || !cold || !warm) {
        free(cold), free(warm), mx_model_free(m);
        return;
    }
    int written;
    int64_t n_cold = compile_and_run(m, &t, cold, MAX_OUT, &written);
    CHECK_MSG(written > 0, "the first compile wrote no object to the cache");
    for (int64_t i = 0; i < MAX_OUT; i++)
        warm[i] = NAN;
    int64_t n_warm = compile_and_run(m, &t, warm, MAX_OUT, &written);
    CHECK_MSG(written == 0, "compiling the same model again wrote %d cache entries", written);
    CHECK_MSG(n_cold > 0 && n_warm == n_cold && memcmp(cold, warm, (size_t)n_cold * sizeof *cold) == 0,
              "the objects from the cache gave other outputs than the compiled ones (%lld, %lld elements)",
              (long long)n_cold, (long long)n_warm);
    mx_target fewer = t;
    fewer.threads = t.threads > 1 ? 1 : 2; /* the pool's size is no part of an object */
    compile_and_run(m, &fewer, warm, MAX_OUT, &written);
    CHECK_MSG(written == 0, "another thread count wrote %d cache entries", written);
    mx_model_free(m);
    const char *changes[] = {"input.length=20", "dtype=bf16"};
    for (int i = 0; i < 2; i++) {
        m = support_load_reduced(path, changes[i]);
        if (!m)
            continue;
        compile_and_run(m, &t, warm, MAX_OUT, &written);
        CHECK_MSG(written > 0, "%s changes the kernels but wrote no new object", changes[i]);
        mx_model_free(m);
    }
    free(cold);
    free(warm);
}

/* A change to one kernel's tiles compiles that kernel alone (what a tuning
 * round relies on): the CPU's module has one program per distinct
 * function, each cached by its own text. */
static void check_one_kernel_recompiles(void) {
    mx_target t;
    mx_diag d = {{0}};
    mx_model *m = support_load_reduced(MIXC_SOURCE_DIR "/models/mamba-block.json", NULL);
    mx_compiled *c = m && mx_target_detect(MX_DEVICE_CPU, &t, &d) == MX_OK ? mx_compile_model(m, &t, NULL, &d) : NULL;
    CHECK_MSG(c != NULL, "compile: %s", d.msg);
    if (!c) {
        mx_model_free(m);
        return;
    }
    const mx_program *p = mx_compiled_program(c);
    mx_module base = {0}, changed = {0};
    CHECK(mx_compiled_module(c, &base, &d) == MX_OK);
    int functions = 0, scan = -1;
    for (int i = 0; i < base.n_kernels; i++) {
        bool first = true; /* kernels of one function share its name */
        for (int j = 0; j < i; j++)
            first = first && strcmp(base.kernels[i].name, base.kernels[j].name) != 0;
        functions += first;
    }
    CHECK_MSG(base.n_programs == functions && functions > 2, "%d programs for %d distinct functions",
              base.n_programs, functions);
    mx_tiles *tiles = calloc((size_t)p->n_groups + 1, sizeof *tiles);
    for (int g = 0; tiles && g < p->n_groups; g++) {
        tiles[g] = mx_tune_default_tiles(p, mx_compiled_target(c), g);
        scan = p->groups[g].kind == MX_FUSE_SCAN && scan < 0 ? g : scan;
    }
    CHECK(tiles && scan >= 0);
    if (tiles && scan >= 0) {
        tiles[scan].items = tiles[scan].items == 16 ? 32 : 16;
        mx_compiled_set_tiles(c, tiles);
        CHECK(mx_compiled_module(c, &changed, &d) == MX_OK);
        mx_compiled_set_tiles(c, NULL);
        static char before[1 << 16], after[1 << 16];
        int n_before = support_cache_listing(cache_dir, before, sizeof before);
        mx_bytes *objs = calloc((size_t)changed.n_programs + 1, sizeof *objs);
        CHECK_MSG(objs && mx_cpu_objects(mx_compiled_target(c), &changed, "changed", objs, &d) == MX_OK, "%s", d.msg);
        int n_after = support_cache_listing(cache_dir, after, sizeof after);
        CHECK_MSG(n_after == n_before + 1, "one kernel's tiles changed: %d objects compiled, not 1",
                  n_after - n_before);
        for (int q = 0; objs && q < changed.n_programs; q++)
            free(objs[q].bytes);
        free(objs);
    }
    free(tiles);
    mx_module_free(&base);
    mx_module_free(&changed);
    mx_compiled_free(c);
    mx_model_free(m);
}

/* ---- the inline math -------------------------------------------------------------------- */

static const char math_graph[] = "graph inline_math {\n"
                                 "  %x = input() : f32[64]\n"
                                 "  %e = exp(%x) : f32[64]\n"
                                 "  %s = silu(%x) : f32[64]\n"
                                 "  %p = softplus(%x) : f32[64]\n"
                                 "  %h = scale(%x) {value=1e18} : f32[64]\n"
                                 "  %q = scale(%h) {value=1e18} : f32[64]\n"
                                 "  %i = exp(%q) : f32[64]\n"
                                 "  output %e, %s, %p, %i\n"
                                 "}\n";

/* %i: exp of x * 1e18 * 1e18 in f32, mostly of +-inf (1 for x = 0, which
 * no input is), so that exp2's handling of an infinite argument is seen. */
static double want_math(int which, double x) {
    if (which == 0)
        return exp(x);
    if (which == 3)
        return exp((float)((float)(x * 1e18) * 1e18));
    if (which == 1)
        return x / (1.0 + exp(-x));
    return x > 20.0 ? x : log1p(exp(x));
}

/* Equal within rel relative error (or abs absolute, near zero), or the same
 * infinity. */
static bool math_close(float got, double want, double rel, double abs) {
    if (isinf(want))
        return isinf(got) && (got > 0) == (want > 0);
    return fabs(got - want) <= rel * fabs(want) + abs;
}

static void check_inline_math(int vector_bits) {
    static const float edges[] = {-3000.0f, -1000.0f, -151.0f, -126.5f, -104.0f, -87.5f, -20.0f, -1.0f,
                                  -1e-3f,    0.0f,     1e-3f,   0.5f,    1.0f,    20.0f,  20.5f, 87.0f,
                                  88.5f,     100.0f,   1000.0f};
    enum { N = 64, EDGES = sizeof edges / sizeof *edges };
    float x[N];
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < N; i++) { /* the edges, then random numbers in [-40, 40) */
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = i < EDGES ? edges[i] : (float)((double)(seed >> 11) / 9007199254740992.0 * 80.0 - 40.0);
    }
    mx_diag d = {{0}};
    mx_target t = {0};
    mx_graph *g = mx_graph_parse(math_graph, "inline_math", &d);
    CHECK_MSG(g != NULL, "parse: %s", d.msg);
    mx_status st = g ? mx_target_detect(MX_DEVICE_CPU, &t, &d) : MX_ERR_INVALID;
    if (st == MX_OK && vector_bits < t.vector_bits)
        t.vector_bits = vector_bits;
    mx_compiled *c = st == MX_OK ? mx_compile(g, &t, NULL, &d) : NULL;
    int64_t dims[1] = {N};
    st = c ? mx_set_input(c, "x", x, MX_F32, 1, dims, &d) : MX_ERR_INVALID;
    if (st == MX_OK)
        st = mx_run(c, &d);
    CHECK_MSG(st == MX_OK, "inline math, %d-bit vectors: %s", t.vector_bits, d.msg);
    static const char *const outputs[] = {"e", "s", "p", "i"};
    for (int o = 0; st == MX_OK && o < 4; o++) {
        const float *got = mx_output(c, outputs[o]);
        CHECK_MSG(got != NULL, "inline math: no output %%%s", outputs[o]);
        for (int i = 0; got && i < N; i++) {
            double want = (float)want_math(o, x[i]); /* inf where f32 overflows */
            /* exp(x) is 2^(x log2 e), x log2 e rounded to f32: a relative
             * error of |x| 2^-24 ln 2 more; under 2^-125.5 the result may stay
             * 2^-125.5 (llvm_math.c) */
            CHECK_MSG(math_close(got[i], want, 2e-6 + fabs(x[i]) * 6e-8, 2.1e-38),
                      "inline math, %d-bit vectors: %%%s at x = %g: got %.9g, want %.9g", t.vector_bits, outputs[o],
                      (double)x[i], (double)got[i], want);
        }
    }
    mx_compiled_free(c);
    mx_graph_free(g);
}
#endif

int main(void) {
#ifdef MIXC_HAVE_LLVM
    if (mx_have_cpu_backend()) {
        snprintf(cache_dir, sizeof cache_dir, "/tmp/mixc-test-cpu-jit-XXXXXX");
        if (!mkdtemp(cache_dir)) {
            fprintf(stderr, "cannot make a cache directory\n");
            return 1;
        }
        setenv("MIXC_CACHE_DIR", cache_dir, 1);
        unsetenv("MIXC_NO_CACHE");
        check_key_fields();
        check_cache();
        check_one_kernel_recompiles();
        check_inline_math(512); /* the host's widest, AVX-512's exp2 where it has it */
        check_inline_math(256); /* 8 lanes: the exponent-bits exp2 */
        char *paths[512];
        int n = support_list_files(cache_dir, "", paths, 512);
        for (int i = 0; i < n; i++)
            remove(paths[i]);
        support_free_files(paths, n);
        rmdir(cache_dir);
        return check_summary();
    }
#endif
    printf("skipped: built without the CPU backend (LLVM)\n");
    return 77;
}
