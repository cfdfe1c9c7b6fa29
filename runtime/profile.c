/* profile.c: one forward pass under the counting emulation, per kernel
 * against its minimum and a target's roofline (profile.h, docs/profile.md).
 *
 * The pass is the executor's walk (exec.h) over the emulation's device table,
 * with two entries replaced: the module is built to count, and each launch
 * watches its kernel's argument buffers, the only global memory a generated
 * kernel reaches. */
#include "profile.h"

#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "ir.h"
#include "progress.h"

/* The device's context. mod comes first: the emulation's own entries take
 * the context as a pointer to the loaded module. */
typedef struct {
    mx_emu_module *mod;
    const mx_program *p;
    mx_profile *pr;
    int *kernel_of_group; /* index into pr->kernels, -1 for matmul groups */
    mx_progress bar;      /* the kernels launched so far of pr->n_kernels */
    int launched;
} profile_ctx;

static double value_bytes(const mx_graph *g, int v) {
    const mx_type *t = mx_value_type(g, v);
    return (double)mx_type_numel(t) * (double)mx_dtype_size(t->dtype);
}

static mx_status profile_load(void *ctx, const mx_program *p, const mx_module *m, mx_diag *d) {
    return mx_emu_load_profiling(m->source.s, p->g->name, &((profile_ctx *)ctx)->mod, d);
}

/* Device buffers start on 256-byte boundaries, as cudaMalloc's do: sectors
 * are counted from the addresses, and a buffer that malloc put 16 bytes past
 * a sector boundary would make every aligned warp access touch one sector
 * more than on the GPU. */
static mx_status profile_alloc(void *ctx, size_t bytes, void **out, mx_diag *d) {
    (void)ctx;
    if (!(*out = aligned_alloc(256, (bytes + 255) / 256 * 256)))
        return mx_fail(d, MX_ERR_NOMEM, "profile: out of memory for %zu bytes", bytes);
    return MX_OK;
}

static mx_status profile_launch(void *ctx, int group, const mx_kernel *k, void **params, mx_diag *d) {
    profile_ctx *c = ctx;
    mx_emu_buffer *bufs = calloc((size_t)k->n_args + 1, sizeof *bufs);
    if (!bufs)
        return mx_fail(d, MX_ERR_NOMEM, "kernel %s: out of memory", k->name);
    for (int i = 0; i < k->n_args; i++) /* consts are literals in the kernel, never arguments */
        bufs[i] = (mx_emu_buffer){*(void **)params[i], (size_t)value_bytes(c->p->g, k->args[i].value),
                                  mx_graph_value_is_param(c->p->g, k->args[i].value)};
    mx_emu_counters n;
    mx_progress_step(&c->bar, c->launched++, k->name);
    mx_status st = mx_emu_launch_profiled(c->mod, k->name, k->grid, k->block, k->smem, params, bufs,
                                          k->n_args, &n, d);
    mx_progress_item_done(&c->bar);
    free(bufs);
    MX_TRY(st);
    mx_emu_counters *sum = &c->pr->kernels[c->kernel_of_group[group]].c;
    for (int i = 0; i < 2; i++) {
        sum->requests[i] += n.requests[i];
        sum->sectors[i] += n.sectors[i];
        sum->bytes[i] += n.bytes[i];
        sum->unique_bytes[i] += n.unique_bytes[i];
    }
    sum->exps += n.exps;
    sum->shuffles += n.shuffles;
    sum->barriers += n.barriers;
    return MX_OK;
}

/* What group k's kernel must do: its arguments once, its ops' exps. */
static void fill_minimum(const mx_program *p, const mx_kernel *k, mx_kernel_profile *kp) {
    const mx_graph *g = p->g;
    const mx_group *gr = &p->groups[k->group];
    for (int i = 0; i < k->n_args; i++)
        kp->min_bytes += value_bytes(g, k->args[i].value);
    for (int i = 0; i < gr->n_nodes; i++) {
        int n = gr->nodes[i];
        kp->min_exps += mx_node_cost(g, n).exps;
        if (g->nodes[n].op == MX_OP_SELECTIVE_SCAN)
            kp->state_updates += (double)mx_type_numel(mx_node_input_type(g, n, MX_SCAN_U)) *
                                 (double)mx_node_input_type(g, n, MX_SCAN_A)->dim[1];
    }
}

static double ratio(double num, double den) { return den > 0 ? num / den : num > 0 ? 0 : 1; }

static double roofline(const mx_target *t, double bytes, double exps) {
    double mem = bytes / t->bytes_per_s, sfu = exps / t->exps_per_s;
    return mem > sfu ? mem : sfu;
}

static void derive(const mx_target *t, mx_kernel_profile *kp) {
    const mx_emu_counters *c = &kp->c;
    kp->bytes = (double)(c->unique_bytes[MX_EMU_LOAD] + c->unique_bytes[MX_EMU_STORE]);
    kp->load_efficiency = c->sectors[MX_EMU_LOAD]
                              ? (double)c->bytes[MX_EMU_LOAD] / (32.0 * (double)c->sectors[MX_EMU_LOAD])
                              : 1;
    kp->store_efficiency = c->sectors[MX_EMU_STORE]
                               ? (double)c->bytes[MX_EMU_STORE] / (32.0 * (double)c->sectors[MX_EMU_STORE])
                               : 1;
    kp->exps_per_update = kp->state_updates > 0 ? (double)c->exps / kp->state_updates : 0;
    kp->exp_ratio = ratio((double)c->exps, kp->min_exps);
    kp->bytes_ratio = ratio(kp->bytes, kp->min_bytes);
    kp->roofline_s = roofline(t, kp->bytes, (double)c->exps);
    kp->floor_s = roofline(t, kp->min_bytes, kp->min_exps);
}

mx_status mx_profile_run(const mx_program *p, const mx_module *m, const mx_target *t,
                         const mx_buffers *b, FILE *progress, mx_profile *out, mx_diag *d) {
    memset(out, 0, sizeof *out);
    if ((t->device != MX_DEVICE_EMU && t->device != MX_DEVICE_CUDA) || t->bytes_per_s <= 0 || t->exps_per_s <= 0)
        return mx_fail(d, MX_ERR_INVALID, "profile: target %s (%s) is not a GPU with roofline rates: use a GPU profile (%s)",
                       t->name, mx_device_name(t->device), mx_target_names());
    out->target = *t;
    out->graph = p->g->name;
    profile_ctx ctx = {.p = p, .pr = out};
    ctx.kernel_of_group = calloc((size_t)p->n_groups + 1, sizeof *ctx.kernel_of_group);
    out->kernels = calloc((size_t)p->n_groups + 1, sizeof *out->kernels);
    if (!ctx.kernel_of_group || !out->kernels) {
        free(ctx.kernel_of_group);
        mx_profile_free(out);
        return mx_fail(d, MX_ERR_NOMEM, "profile: out of memory");
    }
    for (int k = 0; k < p->n_groups; k++) {
        const mx_kernel *kern = mx_module_kernel(m, k);
        ctx.kernel_of_group[k] = kern ? out->n_kernels : -1;
        out->n_matmuls += !kern;
        if (!kern)
            continue;
        mx_kernel_profile *kp = &out->kernels[out->n_kernels++];
        *kp = (mx_kernel_profile){.group = k, .kernel = kern->name, .kind = kern->kind};
        fill_minimum(p, kern, kp);
    }

    mx_buffers *own = NULL;
    mx_status st = MX_OK;
    if (!b) {
        if ((own = mx_buffers_new(p->g)))
            mx_buffers_fill_random(own, p->g, 1);
        else
            st = mx_fail(d, MX_ERR_NOMEM, "profile: out of memory");
    }
    mx_exec_device dev = mx_exec_emu_device(&ctx.mod);
    dev.ctx = &ctx;
    dev.load = profile_load;
    dev.launch = profile_launch;
    dev.alloc = profile_alloc; /* released with free, as the emulation's own */
    mx_exec *x = NULL;
    if (st == MX_OK)
        st = mx_exec_open(p, m, &dev, b ? b : own, &x, d);
    if (st == MX_OK) {
        mx_progress_start(&ctx.bar, progress, "kernel", out->n_kernels);
        st = mx_exec_forward(x, d);
        mx_progress_finish(&ctx.bar);
    }
    mx_exec_close(x);
    mx_buffers_free(own);
    free(ctx.kernel_of_group);
    if (st != MX_OK) {
        mx_profile_free(out);
        return st;
    }
    for (int i = 0; i < out->n_kernels; i++) {
        derive(t, &out->kernels[i]);
        out->roofline_s += out->kernels[i].roofline_s;
        out->floor_s += out->kernels[i].floor_s;
    }
    return MX_OK;
}

void mx_profile_free(mx_profile *pr) {
    free(pr->kernels);
    memset(pr, 0, sizeof *pr);
}

const mx_kernel_profile *mx_profile_kernel(const mx_profile *pr, int group) {
    for (int i = 0; i < pr->n_kernels; i++)
        if (pr->kernels[i].group == group)
            return &pr->kernels[i];
    return NULL;
}

/* ---- printing ------------------------------------------------------------------ */

static void describe(const mx_profile *pr, char *buf, size_t size) {
    snprintf(buf, size, "%s (%.2f TB/s, %s; %.2f Texp/s)", pr->target.name, pr->target.bytes_per_s * 1e-12,
             pr->target.rates_source, pr->target.exps_per_s * 1e-12);
}

void mx_profile_print(const mx_profile *pr, FILE *out) {
    char target[256];
    describe(pr, target, sizeof target);
    fprintf(out, "profile of %s under the host emulation, roofline on %s\n", pr->graph, target);
    fprintf(out, "%5s  %-22s %-11s %9s %6s %7s %7s %10s %6s %8s %6s %11s %11s\n", "group", "kernel", "kind",
            "exps/upd", "exp x", "ld eff", "st eff", "bytes", "x min", "shuffles", "bars", "roofline", "floor");
    for (int i = 0; i < pr->n_kernels; i++) {
        const mx_kernel_profile *k = &pr->kernels[i];
        char upd[16] = "-";
        if (k->state_updates > 0)
            snprintf(upd, sizeof upd, "%.3f", k->exps_per_update);
        fprintf(out, "%5d  %-22s %-11s %9s %6.3f %6.1f%% %6.1f%% %10.0f %6.2f %8llu %6llu %8.3f us %8.3f us\n",
                k->group, k->kernel, mx_fusion_names[k->kind], upd, k->exp_ratio, 100 * k->load_efficiency,
                100 * k->store_efficiency, k->bytes, k->bytes_ratio, (unsigned long long)k->c.shuffles,
                (unsigned long long)k->c.barriers, k->roofline_s * 1e6, k->floor_s * 1e6);
    }
    fprintf(out, "total: %d kernels, roofline %.3f us (floor %.3f us)", pr->n_kernels, pr->roofline_s * 1e6,
            pr->floor_s * 1e6);
    if (pr->n_matmuls)
        fprintf(out, "; %d matmul groups (cuBLASLt) not profiled", pr->n_matmuls);
    fprintf(out, "\n");
}

static void json_string(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++)
        if (*s == '"' || *s == '\\')
            fprintf(out, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(out, "\\u%04x", *s);
        else
            fputc(*s, out);
    fputc('"', out);
}

void mx_profile_print_json(const mx_profile *pr, FILE *out) {
    char target[256];
    describe(pr, target, sizeof target);
    fprintf(out, "{\"graph\": ");
    json_string(out, pr->graph);
    fprintf(out, ", \"target\": ");
    json_string(out, target);
    fprintf(out, ", \"bytes_per_s\": %.6g, \"exps_per_s\": %.6g, \"kernels\": [", pr->target.bytes_per_s,
            pr->target.exps_per_s);
    for (int i = 0; i < pr->n_kernels; i++) {
        const mx_kernel_profile *k = &pr->kernels[i];
        const mx_emu_counters *c = &k->c;
        fprintf(out, "%s\n  {\"group\": %d, \"kernel\": ", i ? "," : "", k->group);
        json_string(out, k->kernel);
        fprintf(out,
                ", \"kind\": \"%s\", \"load_requests\": %llu, \"load_sectors\": %llu, \"load_bytes\": %llu, "
                "\"unique_load_bytes\": %llu, \"store_requests\": %llu, \"store_sectors\": %llu, "
                "\"store_bytes\": %llu, \"unique_store_bytes\": %llu, \"exps\": %llu, \"shuffles\": %llu, "
                "\"barriers\": %llu, \"min_bytes\": %.0f, \"min_exps\": %.0f, \"state_updates\": %.0f, "
                "\"bytes\": %.0f, \"load_efficiency\": %.4f, \"store_efficiency\": %.4f, "
                "\"exps_per_update\": %.4f, \"exp_ratio\": %.4f, \"bytes_ratio\": %.4f, \"roofline_s\": %.6g, "
                "\"floor_s\": %.6g}",
                mx_fusion_names[k->kind], (unsigned long long)c->requests[MX_EMU_LOAD],
                (unsigned long long)c->sectors[MX_EMU_LOAD], (unsigned long long)c->bytes[MX_EMU_LOAD],
                (unsigned long long)c->unique_bytes[MX_EMU_LOAD], (unsigned long long)c->requests[MX_EMU_STORE],
                (unsigned long long)c->sectors[MX_EMU_STORE], (unsigned long long)c->bytes[MX_EMU_STORE],
                (unsigned long long)c->unique_bytes[MX_EMU_STORE], (unsigned long long)c->exps,
                (unsigned long long)c->shuffles, (unsigned long long)c->barriers, k->min_bytes, k->min_exps,
                k->state_updates, k->bytes, k->load_efficiency, k->store_efficiency, k->exps_per_update,
                k->exp_ratio, k->bytes_ratio, k->roofline_s, k->floor_s);
    }
    fprintf(out, "\n], \"matmul_groups\": %d, \"roofline_s\": %.6g, \"floor_s\": %.6g}\n", pr->n_matmuls,
            pr->roofline_s, pr->floor_s);
}
