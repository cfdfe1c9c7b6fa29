/* mixc.c: the command-line program, a thin layer over include/mixc.h. */
#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen.h"
#include "driver.h"
#include "exec.h"
#include "gpu.h"
#include "mixc.h"
#include "program.h"

static const char usage[] =
    "usage: mixc <command> [options] FILE\n"
    "\n"
    "mixc compiles selective state-space mixer models (Mamba, MambaMixer, ViM2,\n"
    "TSM2, QSMixer) to fused kernels. FILE is a model spec (.json, docs/spec.md;\n"
    "the zoo is in models/) or a graph in the text IR (.mxir, docs/ir.md).\n"
    "\n"
    "commands:\n"
    "  run FILE      run (on the reference unless --device says otherwise) and\n"
    "                summarise each output\n"
    "  check FILE    run on every device there is against the reference, on\n"
    "                seeded random inputs; print the max relative error per\n"
    "                output and device; exit 1 on a mismatch (tolerance 1e-4,\n"
    "                2e-2 when the model stores f16 / bf16)\n"
    "  stats FILE    params, FLOPs, bytes moved and peak activation memory per layer\n"
    "  print FILE    the graph in the text IR (a spec is built first)\n"
    "  compile FILE  run the passes; print the final program (graph, views,\n"
    "                groups, memory plan) and a summary line\n"
    "  verify FILE   parse, build and verify; exit status 0 when valid\n"
    "  save-weights FILE OUT.safetensors   write the seeded initial params\n"
    "\n"
    "options:\n"
    "  --set PATH=VALUE  override a spec field, e.g. --set stages[2].depth=4 or\n"
    "                    --set input.image_size=64 (repeatable; specs only)\n"
    "  --device D        run: where to run: auto (default: cuda when a driver and a GPU\n"
    "                    are there, else the CPU, which it says), ref, the reference\n"
    "                    interpreter; emu, the generated CUDA under host emulation;\n"
    "                    cuda, the GPU\n"
    "  --seed N          seed of the random inputs and params (default 1)\n"
    "  --weights FILE    read params from a safetensors file (docs/weights.md)\n"
    "  --dump            run: also print every output element\n"
    "  --json            stats: JSON instead of a table\n"
    "  --print-after P,..   compile: print the program after these passes (or all)\n"
    "  --print-before P,..  compile: print the program before these passes\n"
    "  --disable-pass P,..  compile: skip these passes\n"
    "  -d LETTERS        compile: print after the passes of these debug letters:\n"
    "                    c canonicalize, d dce, e cse, f fold, l layout, u fuse,\n"
    "                    m plan (case-insensitive, so -d F is fold)\n"
    "  --time-passes     compile: the wall time of each pass\n"
    "  --source          compile: print the generated CUDA module instead of the kernel list\n"
    "  -h, --help        this text;  --version  the version\n"
    "\n"
    "run fills every input with seeded uniform numbers in [-1, 1), and every\n"
    "param with the seeded initialisation of docs/models.md (specs) or the same\n"
    "uniform numbers (IR files), unless --weights is given. Per output it prints\n"
    "the shape, a checksum (sum of x[i] * (1 + i mod 7) in f64, so a permutation\n"
    "changes it) and min / max / mean. Errors go to stderr; exit status 1.\n"
    "compile also obeys MIXC_NO_FUSION=1, MIXC_NO_PLANNER=1, MIXC_DISABLE_PASSES,\n"
    "MIXC_PRINT_AFTER and MIXC_DEBUG>=5 (docs/passes.md).\n";

enum { MAX_OVERRIDES = 64 };

typedef struct {
    const char *device;
    const char *weights;
    unsigned long long seed;
    bool dump, json, time_passes, source;
    const char *print_after, *print_before, *disable, *debug;
    const char *file, *out;
    const char *overrides[MAX_OVERRIDES];
    int n_overrides;
} options;

static int fail_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "mixc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see mixc --help)\n");
    return 2;
}

/* Options that take a value. */
static const char *const valued[] = {"--device",       "--seed",         "--weights", "--set",
                                     "--print-after",  "--print-before", "-d",        "--disable-pass",
                                     NULL};

static int set_option(options *o, const char *name, const char *value) {
    if (strcmp(name, "--device") == 0) {
        o->device = value;
    } else if (strcmp(name, "--weights") == 0) {
        o->weights = value;
    } else if (strcmp(name, "--print-after") == 0) {
        o->print_after = value;
    } else if (strcmp(name, "--print-before") == 0) {
        o->print_before = value;
    } else if (strcmp(name, "--disable-pass") == 0) {
        o->disable = value;
    } else if (strcmp(name, "-d") == 0) {
        o->debug = value;
    } else if (strcmp(name, "--set") == 0) {
        if (o->n_overrides == MAX_OVERRIDES)
            return fail_usage("too many --set options (at most %s)", "64");
        o->overrides[o->n_overrides++] = value;
    } else {
        char *end;
        errno = 0;
        o->seed = strtoull(value, &end, 10);
        if (errno || *end || !*value || *value == '-')
            return fail_usage("--seed: expected a non-negative integer, got '%s'", value);
    }
    return 0;
}

/* Parses argv[2..]; returns 0, or the exit status to stop with. */
static int parse_options(int argc, char **argv, int positional, options *o) {
    *o = (options){.device = "auto", .seed = 1};
    int n_pos = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool takes_value = false;
        for (int k = 0; valued[k]; k++)
            takes_value |= strcmp(a, valued[k]) == 0;
        if (takes_value) {
            if (i + 1 == argc)
                return fail_usage("option %s needs a value", a);
            int st = set_option(o, a, argv[++i]);
            if (st)
                return st;
        } else if (strcmp(a, "--dump") == 0) {
            o->dump = true;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--time-passes") == 0) {
            o->time_passes = true;
        } else if (strcmp(a, "--source") == 0) {
            o->source = true;
        } else if (a[0] == '-' && a[1]) {
            return fail_usage("unknown option '%s'", a);
        } else if (n_pos == positional) {
            return fail_usage("unexpected argument '%s'", a);
        } else {
            *(n_pos++ ? &o->out : &o->file) = a;
        }
    }
    if (n_pos < positional)
        return fail_usage(positional == 1 ? "%s: missing FILE" : "%s: missing FILE or OUT", argv[1]);
    if (strcmp(o->device, "auto") != 0 && strcmp(o->device, "ref") != 0 && strcmp(o->device, "emu") != 0 &&
        strcmp(o->device, "cuda") != 0)
        return fail_usage("unknown device '%s': use auto, ref, emu or cuda", o->device);
    return 0;
}

static bool is_spec(const char *path) {
    size_t n = strlen(path);
    return n >= 5 && strcmp(path + n - 5, ".json") == 0;
}

/* The graph of FILE: a spec is built (*model keeps it), an IR file parsed. */
static const mx_graph *load(const options *o, mx_model **model, mx_graph **graph) {
    mx_diag diag;
    *model = NULL;
    *graph = NULL;
    if (is_spec(o->file)) {
        *model = mx_model_load(o->file, o->overrides, o->n_overrides, &diag);
    } else if (o->n_overrides) {
        fprintf(stderr, "mixc: --set applies to specs (.json), not to %s\n", o->file);
        return NULL;
    } else {
        *graph = mx_graph_load(o->file, &diag);
    }
    if (!*model && !*graph) {
        fprintf(stderr, "%s\n", diag.msg);
        return NULL;
    }
    return *model ? mx_model_graph(*model) : *graph;
}

static void unload(mx_model *model, mx_graph *graph) {
    mx_model_free(model);
    mx_graph_free(graph);
}

static void print_value_name(const mx_graph *g, int v) {
    const char *name = mx_graph_value_name(g, v);
    if (name)
        printf("%%%s", name);
    else
        printf("%%%d", v);
}

static void summarise(const mx_graph *g, const mx_buffers *b, int v, bool dump) {
    const float *x = b->data[v];
    int64_t n = b->numel[v];
    double checksum = 0, sum = 0, lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        checksum += (double)x[i] * (double)(1 + i % 7);
        sum += x[i];
        lo = fmin(lo, x[i]);
        hi = fmax(hi, x[i]);
    }
    print_value_name(g, v);
    const int64_t *dims = mx_graph_value_dims(g, v);
    printf(" [");
    for (int i = 0; i < mx_graph_value_rank(g, v); i++)
        printf(i ? ",%lld" : "%lld", (long long)dims[i]);
    printf("]  checksum=%.9g  min=%.6g  max=%.6g  mean=%.6g\n", checksum, lo, hi,
           n ? sum / (double)n : 0);
    for (int64_t i = 0; dump && i < n; i++)
        printf("  [%lld] %.9g\n", (long long)i, x[i]);
}

/* Buffers with seeded inputs and params (or params from --weights). */
static mx_buffers *prepare(const options *o, const mx_model *model, const mx_graph *g) {
    mx_buffers *b = mx_buffers_new(g);
    mx_buffers_fill_random(b, g, o->seed);
    if (model)
        mx_model_init_params(model, b, o->seed);
    mx_diag diag;
    if (o->weights && mx_weights_load(g, b, o->weights, &diag) != MX_OK) {
        fprintf(stderr, "%s\n", diag.msg);
        mx_buffers_free(b);
        return NULL;
    }
    return b;
}

/* The program of g after the passes (the environment's pass options). */
static mx_program *compile_program(const mx_graph *g, mx_diag *d) {
    mx_program *p = mx_program_new(mx_graph_clone(g));
    if (!p) {
        mx_fail(d, MX_ERR_NOMEM, "out of memory");
        return NULL;
    }
    mx_pass_options po;
    mx_pass_options_from_env(&po);
    if (mx_program_run_passes(p, &po, d) != MX_OK) {
        mx_program_free(p);
        return NULL;
    }
    return p;
}

/* Whether a CUDA driver and a GPU are there; why not into d. */
static bool cuda_available(mx_diag *d) {
    mx_cuda *cu;
    if (mx_cuda_open(&cu, d) != MX_OK)
        return false;
    mx_cuda_close(cu);
    return true;
}

/* Runs g's program on device (ref: the planned program on the reference;
 * emu; cuda) with sb's inputs and params; outs[i] receives a copy of output
 * i (malloc'd). */
static mx_status run_device(const char *device, const mx_graph *g, const mx_buffers *sb,
                            float **outs, mx_diag *d) {
    if (strcmp(device, "cuda") == 0 && !cuda_available(d)) {
        char why[sizeof d->msg - 64];
        snprintf(why, sizeof why, "%s", d->msg);
        return mx_fail(d, MX_ERR_IO, "%s: use --device emu or ref", why);
    }
    mx_program *p = compile_program(g, d);
    if (!p)
        return MX_ERR_INVALID;
    mx_buffers *b = mx_buffers_new(p->g);
    mx_status st = MX_OK;
    for (int v = 0; v < p->g->n_values && st == MX_OK; v++) { /* inputs by name */
        int w = p->g->values[v].name ? mx_graph_value_find(g, p->g->values[v].name) : -1;
        if (p->g->nodes[p->g->values[v].node].op != MX_OP_INPUT || w < 0)
            continue;
        if (!(b->data[v] = malloc((size_t)(b->numel[v] + 1) * sizeof(float))))
            st = mx_fail(d, MX_ERR_NOMEM, "out of memory");
        else
            memcpy(b->data[v], sb->data[w], (size_t)b->numel[v] * sizeof(float));
    }
    if (st == MX_OK)
        st = mx_program_bind_init(p, g, sb, b, d);
    if (st == MX_OK && strcmp(device, "ref") == 0) {
        st = mx_program_ref_run_planned(p, b, d);
    } else if (st == MX_OK) {
        mx_module m;
        mx_codegen_options co = {.sm = 80};
        st = mx_codegen(p, &co, &m, d);
        if (st == MX_OK) {
            st = strcmp(device, "emu") == 0 ? mx_exec_emu(p, &m, b, d) : mx_exec_cuda(p, &m, b, NULL, d);
            mx_module_free(&m);
        }
    }
    for (int i = 0; st == MX_OK && i < g->n_outputs; i++) {
        int v = p->g->outputs[i];
        if (!(outs[i] = malloc((size_t)(b->numel[v] + 1) * sizeof(float))))
            st = mx_fail(d, MX_ERR_NOMEM, "out of memory");
        else
            memcpy(outs[i], b->data[v], (size_t)b->numel[v] * sizeof(float));
    }
    mx_buffers_free(b);
    mx_program_free(p);
    return st;
}

static const char *device_doc(const char *device) {
    if (strcmp(device, "emu") == 0)
        return "emu (generated CUDA under host emulation, f32 arithmetic)";
    if (strcmp(device, "cuda") == 0)
        return "cuda (generated CUDA and cuBLASLt on the GPU)";
    return "ref (reference interpreter, f32 storage, f64 sums)";
}

/* auto: the GPU when there is one, else the CPU, said out loud. */
static const char *resolve_device(const char *device) {
    if (strcmp(device, "auto") != 0)
        return device;
    mx_diag diag;
    if (cuda_available(&diag))
        return "cuda";
    fprintf(stderr, "mixc: %s: using the CPU (reference interpreter)\n", diag.msg);
    return "ref";
}

static int cmd_run(const options *opts) {
    options resolved = *opts;
    const options *o = &resolved;
    mx_model *model;
    mx_graph *graph;
    const mx_graph *g = load(o, &model, &graph);
    mx_buffers *b = g ? prepare(o, model, g) : NULL;
    if (b) /* only once there is something to run: a bad file is reported alone */
        resolved.device = resolve_device(opts->device);
    mx_diag diag;
    mx_status st = b ? MX_OK : MX_ERR_INVALID;
    if (b && strcmp(o->device, "ref") == 0) {
        st = mx_ref_run(g, b, &diag);
    } else if (b) {
        float **outs = calloc((size_t)g->n_outputs + 1, sizeof(float *));
        st = run_device(o->device, g, b, outs, &diag);
        for (int i = 0; i < g->n_outputs; i++) { /* the outputs in place of the source graph's */
            if (st == MX_OK) {
                free(b->data[g->outputs[i]]);
                b->data[g->outputs[i]] = outs[i];
            } else {
                free(outs[i]);
            }
        }
        free(outs);
    }
    if (st == MX_OK) {
        printf("device: %s\n", device_doc(o->device));
        for (int i = 0; i < mx_graph_output_count(g); i++)
            summarise(g, b, mx_graph_output(g, i), o->dump);
    } else if (b) {
        fprintf(stderr, "mixc: %s\n", diag.msg);
    }
    mx_buffers_free(b);
    unload(model, graph);
    return st == MX_OK ? 0 : 1;
}

/* The worst |got - want| / max(1, |want|); a NaN is infinitely wrong. */
static double max_rel_error(const float *got, const float *want, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / fmax(1.0, fabs((double)want[i]));
        worst = isnan(got[i]) != isnan(want[i]) || isnan(e) ? INFINITY : fmax(worst, e);
    }
    return worst;
}

static bool stores_half(const mx_graph *g) {
    for (int v = 0; v < g->n_values; v++)
        if (mx_value_type(g, v)->dtype != MX_F32)
            return true;
    return false;
}

static int cmd_check(const options *o) {
    mx_model *model;
    mx_graph *graph;
    const mx_graph *g = load(o, &model, &graph);
    mx_buffers *b = g ? prepare(o, model, g) : NULL;
    mx_diag diag;
    if (!b || mx_ref_run(g, b, &diag) != MX_OK) {
        if (b)
            fprintf(stderr, "mixc: reference: %s\n", diag.msg);
        mx_buffers_free(b);
        unload(model, graph);
        return 1;
    }
    double tol = stores_half(g) ? 2e-2 : 1e-4;
    bool gpu = cuda_available(&diag);
    printf("%s: seed %llu, tolerance %g (max relative error, floor 1)\n", o->file, o->seed, tol);
    if (!gpu)
        printf("cuda: skipped: %s\n", diag.msg);
    const char *devices[] = {"ref", "emu", "cuda"};
    bool ok = true;
    for (int k = 0; k < (gpu ? 3 : 2); k++) {
        float **outs = calloc((size_t)g->n_outputs + 1, sizeof(float *));
        if (run_device(devices[k], g, b, outs, &diag) != MX_OK) {
            printf("%-5s FAILED: %s\n", devices[k], diag.msg);
            ok = false;
        }
        for (int i = 0; i < g->n_outputs; i++) {
            int v = g->outputs[i];
            if (!outs[i])
                continue;
            double e = max_rel_error(outs[i], b->data[v], b->numel[v]);
            printf("%-5s ", devices[k]);
            print_value_name(g, v);
            printf("  max rel error %.3g  %s\n", e, e <= tol ? "ok" : "MISMATCH");
            ok &= e <= tol;
            free(outs[i]);
        }
        free(outs);
    }
    mx_buffers_free(b);
    unload(model, graph);
    return ok ? 0 : 1;
}

static int cmd_print(const options *o) {
    mx_model *model;
    mx_graph *graph;
    const mx_graph *g = load(o, &model, &graph);
    if (!g)
        return 1;
    char *text = mx_graph_print(g);
    fputs(text, stdout);
    free(text);
    unload(model, graph);
    return 0;
}

static int cmd_verify(const options *o) {
    mx_model *model;
    mx_graph *graph;
    const mx_graph *g = load(o, &model, &graph);
    if (!g)
        return 1;
    printf("%s: ok (%d values, %d outputs)\n", o->file, mx_graph_value_count(g),
           mx_graph_output_count(g));
    unload(model, graph);
    return 0;
}

static int cmd_save_weights(const options *o) {
    mx_model *model;
    mx_graph *graph;
    const mx_graph *g = load(o, &model, &graph);
    mx_buffers *b = g ? prepare(o, model, g) : NULL;
    mx_diag diag;
    mx_status st = b ? mx_weights_save(g, b, o->out, &diag) : MX_ERR_INVALID;
    if (b && st != MX_OK)
        fprintf(stderr, "%s\n", diag.msg);
    else if (b)
        printf("wrote %s\n", o->out);
    mx_buffers_free(b);
    unload(model, graph);
    return st == MX_OK ? 0 : 1;
}

static int cmd_stats(const options *o) {
    if (!is_spec(o->file))
        return fail_usage("stats: %s is not a model spec (.json)", o->file);
    mx_model *model;
    mx_graph *graph;
    if (!load(o, &model, &graph))
        return 1;
    mx_stats *s = mx_model_stats(model);
    if (o->json)
        mx_stats_print_json(s, mx_model_graph(model), stdout);
    else
        mx_stats_print_table(s, mx_model_graph(model), stdout);
    mx_stats_free(s);
    unload(model, graph);
    return 0;
}

/* The pass options of compile: the environment's, then the command line's. */
static int pass_options(const options *o, mx_pass_options *po) {
    mx_pass_options_from_env(po);
    po->out = stdout;
    po->time = o->time_passes;
    mx_diag diag;
    const char *lists[] = {o->print_after, o->print_before, o->disable};
    bool *flags[] = {po->print_after, po->print_before, po->disabled};
    for (int i = 0; i < 3; i++)
        if (lists[i] && mx_pass_options_set(flags[i], lists[i], &diag) != MX_OK)
            return fail_usage("%s", diag.msg);
    for (const char *c = o->debug; c && *c; c++) {
        char letter[2] = {(char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c), 0};
        if (mx_pass_options_set(po->print_after, letter, &diag) != MX_OK)
            return fail_usage("-d: %s", diag.msg);
    }
    return 0;
}

/* The kernels codegen makes of a planned program (sm_90), or its CUDA source. */
static mx_status print_kernels(const mx_program *p, const options *o) {
    mx_codegen_options co = {.sm = 90};
    mx_module m;
    mx_diag diag;
    mx_status st = mx_codegen(p, &co, &m, &diag);
    if (st != MX_OK) {
        fprintf(stderr, "%s\n", diag.msg);
        return st;
    }
    if (o->source) {
        fputs(m.source.s, stdout);
    } else {
        printf("kernels (sm_90, default tiles):\n");
        for (int k = 0; k < m.n_kernels; k++) {
            const mx_kernel *kn = &m.kernels[k];
            printf("  %-22s group %-4d %-11s grid %u x %u, block %u, smem %zu, threads %d items %d%s,"
                   " %.3g MB moved\n",
                   kn->name, kn->group, mx_fusion_names[kn->kind], kn->grid[0], kn->grid[1], kn->block[0],
                   kn->smem, kn->tiles.threads, kn->tiles.items,
                   kn->kind == MX_FUSE_SCAN ? (kn->tiles.chunked ? " chunked" : " lanes") : "",
                   kn->floor.bytes / 1e6);
        }
    }
    mx_module_free(&m);
    return MX_OK;
}

static int cmd_compile(const options *o) {
    mx_pass_options po;
    int status = pass_options(o, &po);
    if (status)
        return status;
    mx_model *model;
    mx_graph *graph;
    const mx_graph *g = load(o, &model, &graph);
    if (!g)
        return 1;
    mx_diag diag;
    /* The program owns its graph: an IR file's is handed over, a model's copied. */
    mx_graph *owned = model ? mx_graph_clone(g) : graph;
    mx_program *p = mx_program_new(owned);
    mx_status st = p ? mx_program_run_passes(p, &po, &diag) : MX_ERR_INVALID;
    if (st != MX_OK) {
        fprintf(stderr, "%s\n", diag.msg);
    } else {
        mx_program_print(p, stdout);
        if (p->n_groups)
            printf("%s: %d kernels, %d non-matmul", o->file, p->n_groups, mx_program_kernel_count(p));
        else
            printf("%s: fusion off, one kernel per node", o->file);
        if (p->planned)
            printf("; activations: planned %lld bytes, unplanned %lld bytes (%.1f%%)",
                   (long long)p->arena_bytes, (long long)p->unplanned_bytes,
                   p->unplanned_bytes ? 100.0 * (double)p->arena_bytes / (double)p->unplanned_bytes : 0.0);
        printf("\n");
        if (p->planned && p->n_groups)
            st = print_kernels(p, o);
    }
    if (p)
        mx_program_free(p);
    else
        mx_graph_free(owned);
    mx_model_free(model);
    return st == MX_OK ? 0 : 1;
}

static const struct {
    const char *name;
    int positional;
    int (*run)(const options *o);
} commands[] = {
    {"run", 1, cmd_run},
    {"check", 1, cmd_check},
    {"stats", 1, cmd_stats},
    {"print", 1, cmd_print},
    {"compile", 1, cmd_compile},
    {"verify", 1, cmd_verify},
    {"save-weights", 2, cmd_save_weights},
};

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("mixc %s\n", MIXC_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            options o;
            int status = parse_options(argc, argv, commands[i].positional, &o);
            return status ? status : commands[i].run(&o);
        }
    }
    return fail_usage("unknown command '%s'", argv[1]);
}
