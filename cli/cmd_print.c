/* cmd_print.c: mixc print: the graph in the text IR. */
#include <stdlib.h>

#include "cli.h"

static int run(const cli_args *a) {
    cli_input in;
    if (!cli_load(a, &in))
        return CLI_FAILED;
    char *text = mx_graph_print(in.g);
    if (text)
        fputs(text, stdout);
    free(text);
    cli_unload(&in);
    return text ? CLI_OK : cli_fail("out of memory printing the graph");
}

const cli_command cli_cmd_print = {
    "print", "FILE", 1, 1, "the graph in the text IR (a spec is built first)",
    "Prints FILE's graph in the text IR (docs/ir.md); a spec is built first.\n",
    {cli_model_options, NULL}, run,
};
