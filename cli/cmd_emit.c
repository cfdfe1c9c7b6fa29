/* cmd_emit.c: mixc emit: a model as a standalone project (runtime/emit_project.h,
 * docs/emit.md). */
#include <string.h>

#include "cli.h"
#include "emit_project.h"

static int run(const cli_args *a) {
    const char *dir = cli_value(a, "-o");
    if (!dir)
        return cli_usage_error(a, "emit needs -o DIR, the folder to write");
    unsigned long long seed = 1;
    cli_input in;
    int rc = cli_load_seeded(a, &in, &seed);
    if (rc != CLI_OK)
        return rc;
    mx_emit_options o = {.target = cli_value(a, "--target") ? cli_value(a, "--target") : "sm_90",
                         .weights = cli_value(a, "--weights"), .seed = seed, .force = cli_flag(a, "--force")};
    bool cpu = strcmp(o.target, "cpu") == 0;
    mx_diag d;
    mx_status st = (cpu ? mx_emit_c : mx_emit_cuda)(in.g, in.model, dir, &o, &d);
    if (st == MX_OK)
        printf("wrote %s: %s for %s (make, then ./example)\n", dir, in.path, cpu ? "this CPU" : o.target);
    else
        cli_fail("%s", d.msg);
    cli_unload(&in);
    return st == MX_OK ? CLI_OK : CLI_FAILED;
}

static const cli_option options[] = {
    {"-o", CLI_VALUE, "DIR", "the folder to write (made whole, or not at all)"},
    {"--target", CLI_VALUE, "NAME", "the GPU to generate for: sm_80, sm_90 (default), a100, h100, h200;\n"
                                    "or cpu: a project for this CPU (an LLVM-emitted object)"},
    {"--force", CLI_FLAG, NULL, "replace DIR when it is not empty"},
    {NULL},
};

const cli_command cli_cmd_emit = {
    "emit",
    "FILE -o DIR",
    1,
    1,
    "a standalone CUDA (or C, for the CPU) project of the model, needing no mixc",
    "Writes a project that builds with the CUDA toolkit alone (nvcc, the CUDA\n"
    "runtime and cuBLASLt): kernels.cuh (the generated kernels), model.cu (the\n"
    "launch plan and the cuBLASLt products), standalone.cuh (its host side),\n"
    "model.h (a C API: create, load weights, set input, forward, get output,\n"
    "destroy), weights.safetensors (from --weights or the seeded\n"
    "initialisation), main.c (runs seeded inputs and prints the checksums\n"
    "`mixc run` prints for the same --seed), a Makefile and a CMakeLists.txt.\n"
    "With --target cpu the project is for this CPU instead: kernels.0.o, ...\n"
    "(the object files LLVM emitted for this CPU, one per program, the very\n"
    "bytes --device cpu runs),\n"
    "model.c (the launch plan), standalone_cpu.h (blocks over a pthread pool,\n"
    "MXS_THREADS; products in plain C or through a CBLAS), building lib<model>.a\n"
    "and the example with a C compiler, libc, libm and pthreads (this mixc needs\n"
    "LLVM for it). Both take the tiles the device would run: the tuning\n"
    "database's winners unless MIXC_NO_TUNE=1. docs/emit.md describes the files.\n",
    {cli_model_options, cli_weight_options, options, NULL},
    run,
};
