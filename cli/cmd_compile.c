/* cmd_compile.c: mixc compile: the passes' program, the kernels generated
 * for a GPU target, the CUDA source, or the cubin NVRTC makes of it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "cli.h"
#include "codegen.h"
#include "gpu.h"
#include "tune.h"

/* The kernels and their tiles: the tuning database's where they differ from
 * the target's defaults (mx_tune_tiles picked them), else the defaults. */
static void list_kernels(const mx_module *m, const mx_program *p, const mx_target *t) {
    int tuned = 0;
    for (int k = 0; k < m->n_kernels; k++) {
        mx_tiles defaults = mx_tune_default_tiles(p, t, m->kernels[k].group);
        tuned += memcmp(&defaults, &m->kernels[k].tiles, sizeof defaults) != 0;
    }
    if (tuned)
        printf("kernels (%s, sm_%d, tiles of the tuning database for %d of %d kernels, %d NVRTC programs):\n",
               t->name, t->sm, tuned, m->n_kernels, m->n_programs);
    else
        printf("kernels (%s, sm_%d, default tiles, %d NVRTC programs):\n", t->name, t->sm, m->n_programs);
    for (int k = 0; k < m->n_kernels; k++) {
        const mx_kernel *kn = &m->kernels[k];
        printf("  %-22s group %-4d %-11s program %-2d grid %u x %u, block %u, smem %zu, threads %d items %d%s, "
               "%.3g MB moved\n",
               kn->name, kn->group, mx_fusion_names[kn->kind], kn->program, kn->grid[0], kn->grid[1], kn->block[0],
               kn->smem, kn->tiles.threads, kn->tiles.items,
               kn->kind == MX_FUSE_SCAN ? (kn->tiles.chunked ? " chunked" : " lanes") : "", kn->floor.bytes / 1e6);
    }
}

/* "out.cubin" for the one program of a module, else "out.0.cubin",
 * "out.1.cubin", ...: the program's number before the extension. */
static void cubin_path(const char *path, int q, int n, char *buf, size_t size) {
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (n == 1)
        snprintf(buf, size, "%s", path);
    else if (dot && (!slash || dot > slash + 1))
        snprintf(buf, size, "%.*s.%d%s", (int)(dot - path), path, q, dot);
    else
        snprintf(buf, size, "%s.%d", path, q);
}

/* The module's programs through the cuda device's own compile (NVRTC in
 * parallel, kernel cache), one cubin per program, each written through
 * .tmp and renamed only once all are written; each kernel's resources
 * printed. */
static int write_cubins(const mx_module *m, const mx_program *p, const mx_target *t, const char *path) {
    int n = m->n_programs;
    mx_cubin cubins[MX_CODEGEN_MAX_PROGRAMS];
    mx_diag d;
    if (mx_gpu_compile(m, p->g->name, t->sm, cubins, &d) != MX_OK)
        return cli_fail("%s", d.msg);
    char paths[MX_CODEGEN_MAX_PROGRAMS][4200], tmp[4300];
    int written = 0, err = 0;
    for (; written < n; written++) {
        cubin_path(path, written, n, paths[written], sizeof paths[written]);
        snprintf(tmp, sizeof tmp, "%s.tmp", paths[written]);
        FILE *f = fopen(tmp, "wb");
        const mx_cubin *c = &cubins[written];
        bool ok = f && fwrite(c->cubin, 1, c->cubin_len, f) == c->cubin_len;
        ok = f && fclose(f) == 0 && ok;
        if (!ok) {
            err = errno;
            unlink(tmp);
            break;
        }
    }
    for (int q = 0; q < written; q++) {
        snprintf(tmp, sizeof tmp, "%s.tmp", paths[q]);
        if (written < n || rename(tmp, paths[q]) != 0) {
            err = err ? err : errno;
            unlink(tmp);
        }
    }
    int status = CLI_OK;
    if (err)
        status = cli_fail("%s: cannot write: %s", written < n ? paths[written] : path, strerror(err));
    for (int q = 0; q < n && status == CLI_OK; q++) {
        const mx_cubin *c = &cubins[q];
        printf("wrote %s: %zu bytes for sm_%d, program %d of %d (%s, %.0f ms)\n", paths[q], c->cubin_len, t->sm,
               q + 1, n, c->from_cache ? "from the kernel cache" : "compiled", c->compile_ms);
        for (int k = 0; k < c->n_kernels; k++) {
            const mx_kernel_usage *u = &c->kernels[k];
            printf("  %-22s %3d registers, %d bytes spilled (stores) / %d (loads), %d bytes shared\n", u->name,
                   u->registers, u->spill_stores, u->spill_loads, u->smem);
        }
    }
    for (int q = 0; q < n; q++)
        mx_cubin_free(&cubins[q]);
    return status;
}

/* The params pruning decides on: --weights, else the seeded initialisation. */
static mx_status bind_weights(const cli_args *a, mx_compiled *c, mx_diag *d) {
    unsigned long long seed;
    cli_seed(a, &seed); /* checked by run */
    const char *weights = cli_value(a, "--weights");
    return weights ? mx_load_weights(c, weights, d) : mx_init_weights(c, seed, d);
}

static int run(const cli_args *a) {
    const char *target_name = cli_value(a, "--target");
    mx_target t;
    mx_diag d;
    if (mx_target_named(target_name ? target_name : "h100", MX_DEVICE_CUDA, &t, &d) != MX_OK)
        return cli_usage_error(a, "%s", d.msg);
    mx_compile_options o;
    unsigned long long seed;
    if (!cli_compile_options(a, &o) || !cli_seed(a, &seed))
        return CLI_USAGE;
    if (o.prune_scans == 0 && (cli_value(a, "--weights") || cli_value(a, "--seed")))
        return cli_usage_error(a, "--weights and --seed apply with --prune-scans (pruning reads the weights)");
    o.no_load = 1;
    const char *letters = cli_value(a, "-d");
    char after[256] = "";
    if (letters) { /* debug letters, lower-cased, join --print-after's list */
        size_t n = (size_t)snprintf(after, sizeof after, "%s", o.print_after ? o.print_after : "");
        for (const char *c = letters; *c && n + 3 < sizeof after; c++)
            n += (size_t)snprintf(after + n, sizeof after - n, "%s%c", n ? "," : "",
                                  *c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
        o.print_after = after;
    }
    cli_input in;
    if (!cli_load(a, &in))
        return CLI_FAILED;
    mx_compiled *c = in.model ? mx_compile_model(in.model, &t, &o, &d) : mx_compile(in.graph, &t, &o, &d);
    int status = c ? CLI_OK : cli_fail("%s", d.msg);
    const mx_program *p = c ? mx_compiled_program(c) : NULL;
    bool source = cli_flag(a, "--source");
    const char *cubin = cli_value(a, "--cubin");
    if (p && !source && !cubin) {
        mx_program_print(p, stdout);
        if (p->n_groups)
            printf("%s: %d kernels, %d non-matmul", in.path, p->n_groups, mx_program_kernel_count(p));
        else
            printf("%s: fusion off, one kernel per node", in.path);
        if (p->planned)
            printf("; activations: planned %lld bytes, unplanned %lld bytes (%.1f%%)", (long long)p->arena_bytes,
                   (long long)p->unplanned_bytes,
                   p->unplanned_bytes ? 100.0 * (double)p->arena_bytes / (double)p->unplanned_bytes : 0.0);
        printf("\n");
    }
    if (p && p->planned && p->n_groups) {
        mx_module m;
        if ((o.prune_scans > 0 && bind_weights(a, c, &d) != MX_OK) || mx_compiled_module(c, &m, &d) != MX_OK) {
            status = cli_fail("%s", d.msg);
        } else {
            if (source)
                fputs(m.source.s, stdout);
            else if (cubin)
                status = write_cubins(&m, p, &t, cubin);
            else
                list_kernels(&m, p, &t);
            mx_module_free(&m);
            if (status == CLI_OK && o.prune_scans > 0 && !source)
                cli_print_pruned(c, o.prune_scans);
        }
    } else if (p && (source || cubin)) {
        status = cli_fail("%s: no kernels to generate: code generation needs the fuse and plan passes", in.path);
    }
    mx_compiled_free(c);
    cli_unload(&in);
    return status;
}

static const cli_option options[] = {
    {"--target", CLI_VALUE, "NAME", "the GPU to generate code for: sm_80, sm_90, a100, h100\n(default), h200"},
    {"--source", CLI_FLAG, NULL, "print the generated CUDA module instead of the program"},
    {"--cubin", CLI_VALUE, "FILE", "compile the module's programs with NVRTC for the target (the\ncuda device's "
                                   "own call, in parallel, through the kernel\ncache) and write one cubin per program: "
                                   "FILE when there is\none, else its number before FILE's extension (out.0.cubin,\n"
                                   "out.1.cubin, ...); print each kernel's registers, spills\nand shared memory"},
    {"--print-after", CLI_VALUE, "P,..", "print the program after these passes (or all)"},
    {"--print-before", CLI_VALUE, "P,..", "print the program before these passes"},
    {"--disable-pass", CLI_VALUE, "P,..", "skip these passes"},
    {"-d", CLI_VALUE, "LETTERS", "print after the passes of these debug letters: c canonicalize,\nd dce, e cse, f "
                                 "fold, l layout, u fuse, m plan"},
    {"--time-passes", CLI_FLAG, NULL, "the wall time of each pass"},
    {NULL},
};

const cli_command cli_cmd_compile = {
    "compile",
    "FILE",
    1,
    1,
    "run the passes; print the program and its kernels, the CUDA source or a cubin",
    "Runs the passes on FILE and prints the final program (graph, views,\n"
    "groups, memory plan), a summary line and the kernels generated for the\n"
    "target GPU; no GPU is needed. --source prints the CUDA module, --cubin\n"
    "compiles it ahead of time. --prune-scans generates the pruned kernels for\n"
    "the params of --weights or the seeded initialisation (--seed; these two\n"
    "apply only with --prune-scans). Obeys MIXC_NO_FUSION, MIXC_NO_PLANNER,\n"
    "MIXC_DISABLE_PASSES, MIXC_PRINT_AFTER and MIXC_DEBUG>=5 (docs/passes.md).\n",
    {cli_model_options, cli_prune_options, cli_weight_options, options, NULL},
    run,
};
