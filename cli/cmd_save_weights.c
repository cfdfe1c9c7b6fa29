/* cmd_save_weights.c: mixc save-weights: the seeded initial params to a
 * safetensors file. */
#include "cli.h"

static int run(const cli_args *a) {
    unsigned long long seed;
    cli_input in;
    int rc = cli_load_seeded(a, &in, &seed);
    if (rc != CLI_OK)
        return rc;
    mx_target t;
    mx_diag d;
    mx_compile_options o = {.no_load = 1};
    mx_compiled *c = NULL;
    mx_status st = mx_target_detect(MX_DEVICE_REF, &t, &d);
    if (st == MX_OK)
        c = in.model ? mx_compile_model(in.model, &t, &o, &d) : mx_compile(in.graph, &t, &o, &d);
    st = c ? mx_init_weights(c, seed, &d) : MX_ERR_INVALID;
    if (st == MX_OK)
        st = mx_save_weights(c, a->pos[1], &d);
    if (st == MX_OK)
        printf("wrote %s\n", a->pos[1]);
    else
        cli_fail("%s", d.msg);
    mx_compiled_free(c);
    cli_unload(&in);
    return st == MX_OK ? CLI_OK : CLI_FAILED;
}

static const cli_option options[] = {
    {"--seed", CLI_VALUE, "N", "seed of the initialisation (default 1)"},
    {NULL},
};

const cli_command cli_cmd_save_weights = {
    "save-weights", "FILE OUT.safetensors", 2, 2, "write the seeded initial params",
    "Writes every param of FILE, initialised as docs/models.md says (uniform\n"
    "numbers for an IR file) from the seed, to a safetensors file (through a\n"
    "temp file and a rename).\n",
    {cli_model_options, options, NULL}, run,
};
