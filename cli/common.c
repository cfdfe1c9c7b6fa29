/* common.c: option tables and pipeline steps the commands share (cli.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"
#include "finite.h"
#include "ir.h"

const cli_option cli_model_options[] = {
    {"--set", CLI_LIST, "PATH=VALUE",
     "override a spec field: --set stages[2].depth=4, --set input.image_size=64\n(repeatable; specs only)"},
    {NULL},
};

const cli_option cli_target_options[] = {
    {"--device", CLI_VALUE, "D",
     "auto (default: cuda when a GPU is there, else cpu, said on stderr),\ncpu, cuda, emu (generated CUDA under host "
     "emulation), ref"},
    {"--target", CLI_VALUE, "NAME", "the GPU to generate code for: sm_80, sm_90, a100, h100, h200\n(emu: default h100; "
                                    "cuda: must match GPU 0)"},
    {NULL},
};

const cli_option cli_weight_options[] = {
    {"--seed", CLI_VALUE, "N", "seed of the random inputs and params (default 1)"},
    {"--weights", CLI_VALUE, "FILE", "params from a safetensors file (docs/weights.md)"},
    {NULL},
};

const cli_option cli_prune_options[] = {
    {"--prune-scans", CLI_VALUE, "EPS",
     "Switch of Scans: leave out the scan orders whose softmax weight\nis below EPS (0 <= EPS < 1; the heaviest "
     "stays); prints what\nwas left out and the error bound (docs/pruning.md)"},
    {NULL},
};

const char *cli_value(const cli_args *a, const char *name) {
    const char *v = NULL;
    for (int i = 0; i < a->n_opt; i++)
        if (strcmp(a->opt[i]->name, name) == 0)
            v = a->val[i];
    return v;
}

bool cli_flag(const cli_args *a, const char *name) {
    for (int i = 0; i < a->n_opt; i++)
        if (strcmp(a->opt[i]->name, name) == 0)
            return true;
    return false;
}

int cli_list(const cli_args *a, const char *name, const char **out, int cap) {
    int n = 0;
    for (int i = 0; i < a->n_opt && n < cap; i++)
        if (strcmp(a->opt[i]->name, name) == 0)
            out[n++] = a->val[i];
    return n;
}

int cli_usage_error(const cli_args *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mixc: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see mixc %s --help)\n", a->cmd ? a->cmd->name : "");
    return CLI_USAGE;
}

int cli_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mixc: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    return CLI_FAILED;
}

bool cli_is_spec(const char *path) {
    size_t n = strlen(path);
    return n >= 5 && strcmp(path + n - 5, ".json") == 0;
}

bool cli_load(const cli_args *a, cli_input *in) {
    *in = (cli_input){.path = a->pos[0]};
    const char *set[CLI_MAX_ARGS];
    int n_set = cli_list(a, "--set", set, CLI_MAX_ARGS);
    mx_diag d;
    if (cli_is_spec(in->path)) {
        in->model = mx_model_load(in->path, set, n_set, &d);
    } else if (n_set) {
        fprintf(stderr, "mixc: --set applies to specs (.json), not to %s\n", in->path);
        return false;
    } else {
        in->graph = mx_graph_load(in->path, &d);
    }
    if (!in->model && !in->graph) {
        fprintf(stderr, "%s\n", d.msg);
        return false;
    }
    in->g = in->model ? mx_model_graph(in->model) : in->graph;
    return true;
}

void cli_unload(cli_input *in) {
    mx_model_free(in->model);
    mx_graph_free(in->graph);
    *in = (cli_input){0};
}

bool cli_target(const cli_args *a, const char *default_device, mx_target *t) {
    const char *device = cli_value(a, "--device");
    char why[1024];
    mx_diag d;
    if (mx_target_choose(device ? device : default_device, cli_value(a, "--target"), t, why, sizeof why, &d) !=
        MX_OK) {
        fprintf(stderr, "mixc: %s\n", d.msg);
        return false;
    }
    if (why[0])
        fprintf(stderr, "mixc: %s\n", why);
    return true;
}

bool cli_compile_options(const cli_args *a, mx_compile_options *o) {
    *o = (mx_compile_options){.disable_passes = cli_value(a, "--disable-pass"),
                              .print_after = cli_value(a, "--print-after"),
                              .print_before = cli_value(a, "--print-before"),
                              .time_passes = cli_flag(a, "--time-passes"),
                              .log = stdout};
    const char *eps = cli_value(a, "--prune-scans");
    if (!eps)
        return true;
    char *end;
    errno = 0;
    o->prune_scans = strtod(eps, &end);
    if (errno || end == eps || *end || !(o->prune_scans >= 0 && o->prune_scans < 1)) {
        cli_usage_error(a, "--prune-scans: expected a softmax weight threshold 0 <= EPS < 1, got '%s'", eps);
        return false;
    }
    return true;
}

void cli_print_pruned(mx_compiled *c, double eps) {
    mx_module m;
    mx_diag d;
    if (mx_compiled_module(c, &m, &d) != MX_OK) {
        fprintf(stderr, "mixc: --prune-scans: %s\n", d.msg);
        return;
    }
    const mx_graph *g = mx_compiled_program(c)->g;
    int groups = 0;
    for (int k = 0; k < m.n_kernels; k++) {
        const mx_kernel *kn = &m.kernels[k];
        if (kn->n_pruned == 0)
            continue;
        groups++;
        printf("pruned (--prune-scans %g): group %d (%s): ", eps, kn->group, kn->name);
        for (int i = 0; i < kn->n_pruned; i++) {
            char label[200];
            printf("%s%s", i ? ", " : "", mx_node_label(g, kn->pruned[i], label, sizeof label));
        }
        printf("; their weight %.4g, so |M - M_exact| <= %.4g x max |term|\n", kn->pruned_weight,
               kn->pruned_weight);
    }
    if (groups == 0)
        printf("pruned (--prune-scans %g): nothing: no Switch of Scans order weighs less\n", eps);
    mx_module_free(&m);
}

bool cli_seed(const cli_args *a, unsigned long long *seed) {
    const char *s = cli_value(a, "--seed");
    *seed = 1;
    if (!s)
        return true;
    char *end;
    errno = 0;
    *seed = strtoull(s, &end, 10);
    if (errno || *end || !*s || *s == '-') {
        cli_usage_error(a, "--seed: expected a non-negative integer, got '%s'", s);
        return false;
    }
    return true;
}

int cli_load_seeded(const cli_args *a, cli_input *in, unsigned long long *seed) {
    if (!cli_seed(a, seed))
        return CLI_USAGE;
    return cli_load(a, in) ? CLI_OK : CLI_FAILED;
}

mx_compiled *cli_compile(const cli_args *a, const cli_input *in, const mx_target *t, const mx_compile_options *o) {
    unsigned long long seed;
    if (!cli_seed(a, &seed))
        return NULL;
    mx_diag d;
    mx_compiled *c = in->model ? mx_compile_model(in->model, t, o, &d) : mx_compile(in->graph, t, o, &d);
    const char *weights = cli_value(a, "--weights");
    mx_status st = c ? MX_OK : MX_ERR_INVALID;
    if (st == MX_OK)
        st = weights ? mx_load_weights(c, weights, &d) : mx_init_weights(c, seed, &d);
    if (st == MX_OK)
        st = mx_set_random_inputs(c, seed, &d);
    if (st != MX_OK) {
        fprintf(stderr, "mixc: %s\n", d.msg);
        mx_compiled_free(c);
        return NULL;
    }
    return c;
}

int64_t cli_summarise(const mx_graph *g, int v, const float *x, bool dump) {
    int64_t n = mx_graph_value_numel(g, v);
    double checksum = 0, sum = 0, lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        checksum += (double)x[i] * (double)(1 + i % 7);
        sum += x[i];
        lo = fmin(lo, x[i]);
        hi = fmax(hi, x[i]);
    }
    const char *name = mx_graph_value_name(g, v);
    if (name)
        printf("%%%s", name);
    else
        printf("%%%d", v);
    const int64_t *dims = mx_graph_value_dims(g, v);
    printf(" [");
    for (int i = 0; i < mx_graph_value_rank(g, v); i++)
        printf(i ? ",%lld" : "%lld", (long long)dims[i]);
    printf("]  checksum=%.9g  min=%.6g  max=%.6g  mean=%.6g", checksum, lo, hi, n ? sum / (double)n : 0);
    int64_t first, bad = mx_count_nonfinite(x, n, &first);
    if (bad) /* never a silent min=inf: the count and where it starts */
        printf("  NaN/Inf: %lld of %lld, the first at [%lld]", (long long)bad, (long long)n, (long long)first);
    printf("\n");
    for (int64_t i = 0; dump && i < n; i++)
        printf("  [%lld] %.9g\n", (long long)i, x[i]);
    return bad;
}
