/* cmd_verify.c: mixc verify: parse, build and verify. */
#include "cli.h"

static int run(const cli_args *a) {
    cli_input in;
    if (!cli_load(a, &in))
        return CLI_FAILED;
    printf("%s: ok (%d values, %d outputs)\n", in.path, mx_graph_value_count(in.g), mx_graph_output_count(in.g));
    cli_unload(&in);
    return CLI_OK;
}

const cli_command cli_cmd_verify = {
    "verify", "FILE", 1, 1, "parse, build and verify; exit 0 when valid",
    "Parses FILE (a spec is built), types and verifies the graph; exit status 0\n"
    "when it is valid, 1 with the error otherwise.\n",
    {cli_model_options, NULL}, run,
};
