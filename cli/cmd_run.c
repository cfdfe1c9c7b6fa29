/* cmd_run.c: mixc run: compile for a device, run once (or time N runs),
 * summarise each output. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "tensorfile.h"

static const cli_option options[] = {
    {"--dump", CLI_FLAG, NULL, "also print every output element"},
    {"--time", CLI_VALUE, "N", "time N forward passes after 3 warm-up ones (compile and\ntransfers excluded): median, min, max"},
    {"--disable-pass", CLI_VALUE, "P,..", "skip these passes (docs/passes.md)"},
    {"--inputs", CLI_VALUE, "FILE", "the inputs from a safetensors or .npy file (docs/io.md)\ninstead of seeded numbers"},
    {"--outputs", CLI_VALUE, "FILE", "write the outputs to a safetensors or .npy file"},
    {NULL},
};

/* A spec that leaves its batch free takes it from the inputs: rebuilt
 * with one more override. */
static bool take_batch(const cli_args *a, cli_input *in, const mx_tensorfile *inputs) {
    int batch = in->model ? mx_tensorfile_batch(in->model, inputs) : 0;
    if (!batch)
        return true;
    const char *set[CLI_MAX_ARGS + 1];
    int n = cli_list(a, "--set", set, CLI_MAX_ARGS);
    char arg[32];
    snprintf(arg, sizeof arg, "batch=%d", batch);
    set[n++] = arg;
    mx_diag d;
    mx_model *m = mx_model_load(in->path, set, n, &d);
    if (!m) {
        fprintf(stderr, "%s\n", d.msg);
        return false;
    }
    mx_model_free(in->model);
    in->model = m;
    in->g = mx_model_graph(m);
    return true;
}

static int run(const cli_args *a) {
    const char *time_arg = cli_value(a, "--time");
    char *end = NULL;
    long runs = time_arg ? strtol(time_arg, &end, 10) : 0;
    if (time_arg && (*end || runs < 1 || runs > 100000))
        return cli_usage_error(a, "--time: expected a count from 1 to 100000, got '%s'", time_arg);
    unsigned long long seed;
    mx_compile_options o;
    if (!cli_seed(a, &seed) || !cli_compile_options(a, &o))
        return CLI_USAGE;
    const char *inputs_path = cli_value(a, "--inputs"), *outputs_path = cli_value(a, "--outputs");
    mx_tensorfile *inputs = NULL;
    mx_diag d;
    if (inputs_path && mx_tensorfile_read(inputs_path, &inputs, &d) != MX_OK)
        return cli_fail("%s", d.msg);
    cli_input in;
    if (!cli_load(a, &in) || (inputs && !take_batch(a, &in, inputs))) {
        mx_tensorfile_free(inputs);
        return CLI_FAILED;
    }
    mx_target t;
    mx_compiled *c = cli_target(a, "auto", &t) ? cli_compile(a, &in, &t, &o) : NULL;
    if (c && inputs && mx_tensorfile_set_inputs(c, inputs, &d) != MX_OK) {
        cli_fail("%s", d.msg);
        mx_compiled_free(c);
        c = NULL;
    }
    mx_tensorfile_free(inputs);
    mx_timing tm;
    int status = CLI_FAILED;
    if (c && (time_arg ? mx_time(c, 3, (int)runs, &tm, &d) : mx_run(c, &d)) != MX_OK) {
        cli_fail("%s", d.msg);
    } else if (c && outputs_path && mx_tensorfile_write_outputs(c, outputs_path, &d) != MX_OK) {
        cli_fail("%s", d.msg);
    } else if (c) {
        char desc[256];
        mx_target_describe(&t, desc, sizeof desc);
        printf("device: %s\n", desc);
        if (time_arg)
            printf("time: median %.3f ms, min %.3f ms, max %.3f ms over %d forward passes\n", tm.median_ms,
                   tm.min_ms, tm.max_ms, tm.runs);
        if (o.prune_scans > 0)
            cli_print_pruned(c, o.prune_scans);
        int64_t bad = 0;
        for (int i = 0; i < mx_graph_output_count(in.g); i++) {
            int v = mx_graph_output(in.g, i);
            bad += cli_summarise(in.g, v, mx_output(c, mx_graph_value_name(in.g, v)), cli_flag(a, "--dump"));
        }
        /* mx_run refuses non-finite inputs and params: these came from the model's arithmetic */
        if (bad)
            cli_fail("%lld output numbers are NaN or Inf although every input and weight is finite: the model "
                     "overflows (or divides by zero) on these numbers", (long long)bad);
        status = bad ? CLI_FAILED : CLI_OK;
    }
    mx_compiled_free(c);
    cli_unload(&in);
    return status;
}

const cli_command cli_cmd_run = {
    "run",
    "FILE",
    1,
    1,
    "compile for a device, run, summarise each output",
    "Compiles FILE for the device (--device, default auto) and runs one forward\n"
    "pass on seeded uniform inputs in [-1, 1) (token ids: whole numbers in\n"
    "[0, vocab)) or on --inputs, with params from --weights or the\n"
    "seeded initialisation of docs/models.md (uniform numbers for an IR file).\n"
    "Per output it prints the shape, a checksum (sum of x[i] * (1 + i mod 7) in\n"
    "f64, so a permutation changes it) and min / max / mean; --outputs writes\n"
    "them to a file. A spec without \"batch\" takes it from --inputs. Exit status\n"
    "1 when an output holds NaN or Inf (inputs and weights holding one are\n"
    "refused before the run).\n",
    {cli_model_options, cli_target_options, cli_weight_options, cli_prune_options, options, NULL},
    run,
};
