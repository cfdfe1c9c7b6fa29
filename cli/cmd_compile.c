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

static void list_kernels(const mx_module *m, const mx_target *t) {
    printf("kernels (%s, sm_%d, default tiles):\n", t->name, t->sm);
    for (int k = 0; k < m->n_kernels; k++) {
        const mx_kernel *kn = &m->kernels[k];
        printf("  %-22s group %-4d %-11s grid %u x %u, block %u, smem %zu, threads %d items %d%s, %.3g MB moved\n",
               kn->name, kn->group, mx_fusion_names[kn->kind], kn->grid[0], kn->grid[1], kn->block[0], kn->smem,
               kn->tiles.threads, kn->tiles.items,
               kn->kind == MX_FUSE_SCAN ? (kn->tiles.chunked ? " chunked" : " lanes") : "", kn->floor.bytes / 1e6);
    }
}

/* The cubin through the cuda device's own compile (NVRTC, kernel cache),
 * written through path.tmp and a rename; each kernel's resources printed. */
static int write_cubin(const mx_module *m, const mx_program *p, const mx_target *t, const char *path) {
    mx_cubin cubin;
    mx_diag d;
    if (mx_gpu_compile(m, p->g->name, t->sm, &cubin, &d) != MX_OK)
        return cli_fail("%s", d.msg);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fwrite(cubin.cubin, 1, cubin.cubin_len, f) == cubin.cubin_len;
    ok = f && fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        mx_cubin_free(&cubin);
        return cli_fail("%s: cannot write: %s", path, strerror(err));
    }
    printf("wrote %s: %zu bytes for sm_%d (%s, %.0f ms)\n", path, cubin.cubin_len, t->sm,
           cubin.from_cache ? "from the kernel cache" : "compiled", cubin.compile_ms);
    for (int k = 0; k < cubin.n_kernels; k++) {
        const mx_kernel_usage *u = &cubin.kernels[k];
        printf("  %-22s %3d registers, %d bytes spilled (stores) / %d (loads), %d bytes shared\n", u->name,
               u->registers, u->spill_stores, u->spill_loads, u->smem);
    }
    mx_cubin_free(&cubin);
    return CLI_OK;
}

static int run(const cli_args *a) {
    const char *target_name = cli_value(a, "--target");
    mx_target t;
    mx_diag d;
    if (mx_target_named(target_name ? target_name : "h100", MX_DEVICE_CUDA, &t, &d) != MX_OK)
        return cli_usage_error(a, "%s", d.msg);
    mx_compile_options o = cli_compile_options(a);
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
        mx_tiles *tiles = NULL; /* the tuning database's, as a compile for t takes them */
        mx_module m = {0};
        mx_status st = mx_tune_tiles(p, &t, &tiles, &d);
        mx_codegen_options co = {.target = &t, .tiles = tiles};
        if (st != MX_OK || mx_codegen(p, &co, &m, &d) != MX_OK) {
            status = cli_fail("%s", d.msg);
        } else {
            if (source)
                fputs(m.source.s, stdout);
            else if (cubin)
                status = write_cubin(&m, p, &t, cubin);
            else
                list_kernels(&m, &t);
            mx_module_free(&m);
        }
        free(tiles);
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
    {"--cubin", CLI_VALUE, "FILE", "compile the module with NVRTC for the target (the cuda\ndevice's own call, "
                                   "through the kernel cache) and write\nthe cubin; print each kernel's registers, "
                                   "spills and\nshared memory"},
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
    "compiles it ahead of time. Obeys MIXC_NO_FUSION, MIXC_NO_PLANNER,\n"
    "MIXC_DISABLE_PASSES, MIXC_PRINT_AFTER and MIXC_DEBUG>=5 (docs/passes.md).\n",
    {cli_model_options, options, NULL},
    run,
};
