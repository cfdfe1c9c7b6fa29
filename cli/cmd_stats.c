/* cmd_stats.c: mixc stats: params, FLOPs, bytes and peak memory per layer. */
#include "cli.h"

static int run(const cli_args *a) {
    if (!cli_is_spec(a->pos[0]))
        return cli_usage_error(a, "%s is not a model spec (.json)", a->pos[0]);
    cli_input in;
    if (!cli_load(a, &in))
        return CLI_FAILED;
    mx_stats *s = mx_model_stats(in.model);
    if (!s) {
        cli_unload(&in);
        return cli_fail("%s: out of memory", in.path);
    }
    if (cli_flag(a, "--json"))
        mx_stats_print_json(s, in.g, stdout);
    else
        mx_stats_print_table(s, in.g, stdout);
    mx_stats_free(s);
    cli_unload(&in);
    return CLI_OK;
}

static const cli_option options[] = {
    {"--json", CLI_FLAG, NULL, "JSON ({\"model\", \"layers\": [...], \"total\"}) instead of a table"},
    {NULL},
};

const cli_command cli_cmd_stats = {
    "stats",
    "SPEC",
    1,
    1,
    "params, FLOPs, bytes moved and peak activation memory per layer",
    "Prints, per layer of the model spec SPEC and in total: parameters, FLOPs\n"
    "of one forward pass at the spec's batch, bytes moved by the unfused ops,\n"
    "transcendental evaluations and the peak of live activations.\n",
    {cli_model_options, options, NULL},
    run,
};
