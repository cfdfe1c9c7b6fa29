/* cmd_explore.c: mixc explore: sweep architecture variants of a spec
 * (runtime/explore.h, docs/explore.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "explore.h"

/* A whole number >= lo from option name; false (usage error printed) otherwise. */
static bool int_option(const cli_args *a, const char *name, int lo, int *out) {
    const char *s = cli_value(a, name);
    if (!s)
        return true;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > 1000000) {
        cli_usage_error(a, "%s: expected a whole number >= %d, got '%s'", name, lo, s);
        return false;
    }
    *out = (int)v;
    return true;
}

/* --shard I/N */
static bool shard_option(const cli_args *a, int *shard, int *n_shards) {
    const char *s = cli_value(a, "--shard");
    if (!s)
        return true;
    char tail;
    if (sscanf(s, "%d/%d%c", shard, n_shards, &tail) != 2 || *n_shards < 1 || *shard < 1 || *shard > *n_shards) {
        cli_usage_error(a, "--shard: expected I/N with 1 <= I <= N, got '%s'", s);
        return false;
    }
    return true;
}

/* The results as --csv, --json or a table on stdout, and the plot. */
static int report(const cli_args *a, const mx_explore *e) {
    if (cli_flag(a, "--json"))
        mx_explore_print_json(e, stdout);
    else if (cli_flag(a, "--csv"))
        mx_explore_print_csv(e, stdout);
    else
        mx_explore_print_table(e, stdout);
    const char *svg = cli_value(a, "--svg");
    mx_diag d;
    mx_plot_y y = MX_PLOT_LATENCY;
    if (cli_value(a, "--y") && mx_plot_y_parse(cli_value(a, "--y"), &y, &d) != MX_OK)
        return cli_fail("%s", d.msg);
    if (svg && mx_explore_write_svg(e, y, svg, &d) != MX_OK)
        return cli_fail("%s", d.msg);
    int failed = mx_explore_failures(e);
    if (failed && failed == e->n_variants) /* nothing measured: a misspelt --vary path, say */
        return cli_fail("explore: every variant failed (%d of %d; their errors are in the results)", failed,
                        e->n_variants);
    if (failed)
        fprintf(stderr, "mixc explore: %d of %d variants failed and were skipped (their errors are in the results)\n",
                failed, e->n_variants);
    return CLI_OK;
}

static int merge(const cli_args *a) {
    mx_explore *parts[CLI_MAX_ARGS] = {0}, *e = NULL;
    mx_diag d;
    mx_status st = MX_OK;
    for (int i = 0; i < a->n_pos && st == MX_OK; i++)
        st = mx_explore_read_json(a->pos[i], &parts[i], &d);
    if (st == MX_OK)
        st = mx_explore_merge(parts, a->n_pos, &e, &d);
    int rc = st == MX_OK ? report(a, e) : cli_fail("%s", d.msg);
    for (int i = 0; i < a->n_pos; i++)
        mx_explore_free(parts[i]);
    mx_explore_free(e);
    return rc;
}

static int run(const cli_args *a) {
    if (cli_flag(a, "--merge"))
        return merge(a);
    if (a->n_pos != 1 || !cli_is_spec(a->pos[0]))
        return cli_usage_error(a, "explore takes one model spec (.json), or --merge and result files");
    const char *set[CLI_MAX_ARGS], *varied[CLI_MAX_ARGS];
    mx_vary vary[MX_EXPLORE_MAX_VARY];
    int n_set = cli_list(a, "--set", set, CLI_MAX_ARGS), n_vary = cli_list(a, "--vary", varied, CLI_MAX_ARGS);
    if (n_vary < 1 || n_vary > MX_EXPLORE_MAX_VARY)
        return cli_usage_error(a, "give 1 to %d --vary PATH=V1,V2,... options", MX_EXPLORE_MAX_VARY);
    unsigned long long seed = 1;
    mx_explore_options o = {.spec = a->pos[0], .overrides = set, .n_overrides = n_set, .vary = vary,
                            .estimate_target = cli_value(a, "--target") ? cli_value(a, "--target") : "h100",
                            .host_device = cli_value(a, "--device") ? cli_value(a, "--device") : "cpu",
                            .profile = cli_flag(a, "--profile"), .gpu = true, .warmup = 1, .runs = 5,
                            .progress = stderr};
    if (!cli_seed(a, &seed) || !int_option(a, "--sample", 1, &o.sample) || !int_option(a, "--runs", 1, &o.runs) ||
        !int_option(a, "--warmup", 0, &o.warmup) || !shard_option(a, &o.shard, &o.n_shards))
        return CLI_USAGE;
    o.seed = seed;
    if (strcmp(o.host_device, "none") == 0)
        o.host_device = NULL;
    mx_diag d;
    int rc = CLI_OK;
    for (; o.n_vary < n_vary && rc == CLI_OK; o.n_vary++)
        if (mx_vary_parse(varied[o.n_vary], &vary[o.n_vary], &d) != MX_OK)
            rc = cli_usage_error(a, "%s", d.msg);
    if (rc != CLI_OK)
        o.n_vary--; /* the one that failed freed itself */
    mx_explore *e = NULL;
    if (rc == CLI_OK)
        rc = mx_explore_run(&o, &e, &d) == MX_OK ? report(a, e) : cli_fail("%s", d.msg);
    mx_explore_free(e);
    for (int i = 0; i < o.n_vary; i++)
        mx_vary_free(&vary[i]);
    return rc;
}

static const cli_option options[] = {
    {"--vary", CLI_LIST, "PATH=V1,V2,...", "a spec field (as --set names it) and its values; repeat for a grid"},
    {"--sample", CLI_VALUE, "N", "N distinct random points of the grid instead of all (--seed)"},
    {"--seed", CLI_VALUE, "N", "seed of the sample, the weights and the inputs (default 1)"},
    {"--device", CLI_VALUE, "D", "where latency is measured: cpu (default; ref where mixc has no\nCPU backend), ref, "
                                 "emu, or none"},
    {"--target", CLI_VALUE, "NAME", "GPU profile of the roofline estimate (default h100)"},
    {"--profile", CLI_FLAG, NULL, "estimate kernels from what the host emulation counts them\nmoving (slower; sees uncoalesced traffic)"},
    {"--runs", CLI_VALUE, "N", "timed runs per measurement, the median kept (default 5)"},
    {"--warmup", CLI_VALUE, "N", "untimed runs before them (default 1)"},
    {"--shard", CLI_VALUE, "I/N", "measure every N-th point from the I-th (I = 1..N): one machine's share"},
    {"--merge", CLI_FLAG, NULL, "join --json results of shards (FILEs) into one"},
    {"--csv", CLI_FLAG, NULL, "CSV instead of a table"},
    {"--json", CLI_FLAG, NULL, "JSON instead of a table (what --merge reads)"},
    {"--svg", CLI_VALUE, "FILE", "also plot --y against parameters, the Pareto front marked"},
    {"--y", CLI_VALUE, "WHAT", "latency (default: the GPU's, else the host's, else the\nestimate), flops or memory"},
    {NULL},
};

const cli_command cli_cmd_explore = {
    "explore",
    "SPEC --vary PATH=V1,V2,... | --merge FILE.json...",
    1,
    CLI_MAX_ARGS,
    "sweep architecture variants: cost and latency of each, table and plot",
    "Builds every variant of the spec SPEC over the grid of the --vary values\n"
    "(or a --sample of it) and reports, per variant: parameters, FLOPs, bytes\n"
    "moved, planned peak activation memory, kernels and matmuls, the forward\n"
    "latency measured on the host (median of --runs), the roofline estimate on\n"
    "the --target GPU, and the latency measured on the GPU when there is one.\n"
    "Each latency column says whether it is measured or estimated. A variant\n"
    "that fails to build or run is reported with its error and skipped. A\n"
    "progress bar goes to stderr. docs/explore.md has examples.\n",
    {cli_model_options, options, NULL},
    run,
};
