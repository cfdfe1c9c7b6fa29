/* cmd_import_weights.c: mixc import-weights: a PyTorch checkpoint (mamba_ssm
 * or transformers Mamba modules) renamed onto a model's params. */
#include "cli.h"
#include "import.h"

static int run(const cli_args *a) {
    const char *from = cli_value(a, "--from");
    mx_import_source source;
    mx_diag d;
    if (!from)
        return cli_usage_error(a, "--from: which checkpoint this is (mamba_ssm, transformers or mixc)");
    if (mx_import_source_parse(from, &source, &d) != MX_OK)
        return cli_usage_error(a, "--from: %s", d.msg);
    if (!cli_is_spec(a->pos[0]))
        return cli_usage_error(a, "%s: importing needs a model spec (.json)", a->pos[0]);
    cli_input in;
    if (!cli_load(a, &in))
        return CLI_FAILED;
    mx_status st = mx_import_weights(in.model, source, a->pos[1], a->pos[2], &d);
    if (st == MX_OK)
        printf("wrote %s\n", a->pos[2]);
    else
        cli_fail("%s", d.msg);
    cli_unload(&in);
    return st == MX_OK ? CLI_OK : CLI_FAILED;
}

static const cli_option options[] = {
    {"--from", CLI_VALUE, "KIND", "mamba_ssm, transformers or mixc: whose names the checkpoint has"},
    {NULL},
};

const cli_command cli_cmd_import_weights = {
    "import-weights", "SPEC STATE_DICT.safetensors OUT.safetensors", 3, 3,
    "rename a PyTorch checkpoint onto a model's params",
    "Reads a state_dict saved as safetensors by mamba_ssm (Mamba, Block,\n"
    "MambaLMHeadModel) or transformers (MambaModel, MambaForCausalLM), maps its\n"
    "names and layouts onto the params of SPEC (docs/weights.md) and writes them\n"
    "in the model's dtype to OUT (through a temp file and a rename). A tensor\n"
    "that is missing, left over or of another shape is an error naming both\n"
    "names. Then: mixc run SPEC --weights OUT.\n",
    {cli_model_options, options, NULL}, run,
};
