/* cmd_profile.c: mixc profile: what each generated kernel does, counted by
 * the host emulation, against its minimum and the target's roofline
 * (docs/profile.md). No GPU is needed. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"
#include "profile.h"

static int run(const cli_args *a) {
    const char *device = cli_value(a, "--device");
    if (device && strcmp(device, "emu") != 0 && strcmp(device, "cuda") != 0)
        return cli_usage_error(a, "--device %s: a profile counts generated CUDA (emu, or cuda for the GPU's rates)",
                               device);
    cli_input in;
    if (!cli_load(a, &in))
        return CLI_FAILED;
    mx_target t;
    if (!cli_target(a, "emu", &t)) {
        cli_unload(&in);
        return CLI_FAILED;
    }
    mx_compile_options o;
    if (!cli_compile_options(a, &o)) {
        cli_unload(&in);
        return CLI_USAGE;
    }
    o.no_load = 1; /* the passes only: the profile runs the module under its own counting emulation */
    mx_diag d;
    mx_compiled *c = in.model ? mx_compile_model(in.model, &t, &o, &d) : mx_compile(in.g, &t, &o, &d);
    if (!c) {
        cli_unload(&in);
        return cli_fail("%s", d.msg);
    }
    const mx_program *p = mx_compiled_program(c);
    mx_module m = {0};
    mx_profile pr = {0};
    mx_status st = mx_compiled_module(c, &m, &d);
    if (st == MX_OK)
        st = mx_profile_run(p, &m, &t, NULL, stderr, &pr, &d);
    if (st == MX_OK && cli_flag(a, "--json"))
        mx_profile_print_json(&pr, stdout);
    else if (st == MX_OK)
        mx_profile_print(&pr, stdout);
    mx_profile_free(&pr);
    mx_module_free(&m);
    mx_compiled_free(c);
    cli_unload(&in);
    return st == MX_OK ? CLI_OK : cli_fail("%s", d.msg);
}

static const cli_option options[] = {
    {"--json", CLI_FLAG, NULL, "JSON ({\"graph\", \"target\", \"kernels\": [...], \"roofline_s\", \"floor_s\"})"},
    {NULL},
};

const cli_command cli_cmd_profile = {
    "profile",
    "FILE",
    1,
    1,
    "per kernel: exps, sector efficiency, bytes against the minimum, roofline time",
    "Runs one forward pass of the model spec or IR FILE under the host emulation\n"
    "with every generated kernel counting its warp-level global loads and stores,\n"
    "the 32-byte sectors they touch, the distinct bytes it moves, its exps,\n"
    "shuffles and barriers (inputs and params: seeded uniform numbers). Prints per\n"
    "kernel: exps per state update (scans) and against the minimum of its ops,\n"
    "load and store sector efficiency, bytes against the minimum (each argument\n"
    "once), and the roofline time on the target: max(bytes / bandwidth,\n"
    "exps / SFU rate). An estimate: no caches, scheduling or latency\n"
    "(docs/profile.md). Matmul groups (cuBLASLt) are not profiled.\n",
    {cli_model_options, cli_target_options, options, NULL},
    run,
};
