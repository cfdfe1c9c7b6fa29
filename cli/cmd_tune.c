/* cmd_tune.c: mixc tune: search the tiles of a model's kernels, keep the
 * winners in the tuning database; show and merge databases (docs/tune.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const cli_option options[] = {
    {"--budget", CLI_VALUE, "SECONDS", "stop starting candidates after this much wall time (default: none)"},
    {"--db", CLI_VALUE, "FILE", "the tuning database (default: MIXC_TUNE_DB, else tune.jsonl in the\nkernel cache "
                                "directory)"},
    {"--jobs", CLI_VALUE, "N", "rounds compiled at once (default: cpu, one per core; cuda, 1)"},
    {"--kernels", CLI_VALUE, "PATTERN", "only kernels whose function name or kind matches this glob:\n'*scan*', 'norm', 'matmul' (cpu)"},
    {"--model-only", CLI_FLAG, NULL, "GPU targets: rank candidates by the roofline estimate of the host\nemulation's "
                                     "profile (no GPU needed; stored as modelled)"},
    {"--repeats", CLI_VALUE, "N", "timed runs per candidate after one warm-up (default 5)"},
    {"--seed", CLI_VALUE, "N", "seed of the random inputs of the checks (default: from the clock)"},
    {"--show", CLI_FLAG, NULL, "print the database as a table (no FILE needed)"},
    {"--merge", CLI_LIST, "FILE", "merge databases into -o FILE (repeatable; no FILE needed)"},
    {"-o", CLI_VALUE, "FILE", "where --merge writes"},
    {NULL},
};

static bool parse_number(const cli_args *a, const char *name, double lo, double hi, double *out) {
    const char *s = cli_value(a, name);
    if (!s)
        return true;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !*s || !(v >= lo && v <= hi)) {
        cli_usage_error(a, "%s: expected a number from %g to %g, got '%s'", name, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

/* The target: as --device and --target say; --model-only takes a named GPU
 * profile (default h100) with no GPU there. */
static bool tune_target(const cli_args *a, bool model_only, mx_target *t) {
    if (!model_only)
        return cli_target(a, "cpu", t);
    const char *device = cli_value(a, "--device"), *name = cli_value(a, "--target");
    mx_diag d;
    mx_device dev = MX_DEVICE_CUDA;
    if (device && mx_device_parse(device, &dev, &d) != MX_OK) {
        fprintf(stderr, "mixc: %s\n", d.msg);
        return false;
    }
    if (dev != MX_DEVICE_CUDA && dev != MX_DEVICE_EMU) {
        fprintf(stderr, "mixc: --model-only ranks GPU code: use --device cuda (or emu), not %s\n", device);
        return false;
    }
    if (mx_target_named(name ? name : "h100", dev, t, &d) != MX_OK) {
        fprintf(stderr, "mixc: %s\n", d.msg);
        return false;
    }
    return true;
}

static int tune(const cli_args *a) {
    double budget = 0, repeats = 0, jobs = 0, seed = (double)(time(NULL) & 0xffffff);
    if (!parse_number(a, "--budget", 0, 1e7, &budget) || !parse_number(a, "--repeats", 1, 64, &repeats) ||
        !parse_number(a, "--jobs", 1, 64, &jobs) ||
        !parse_number(a, "--seed", 0, 1e15, &seed))
        return CLI_USAGE;
    bool model_only = cli_flag(a, "--model-only");
    cli_input in;
    if (!cli_load(a, &in))
        return CLI_FAILED;
    mx_target t;
    if (!tune_target(a, model_only, &t)) {
        cli_unload(&in);
        return CLI_FAILED;
    }
    char desc[256];
    mx_target_describe(&t, desc, sizeof desc);
    fprintf(stderr, "mixc: tuning %s on %s%s (inputs: seed %.0f)\n", in.path, desc,
            model_only ? ", ranked by the roofline estimate" : "", seed);
    mx_compile_options co;
    if (!cli_compile_options(a, &co)) {
        cli_unload(&in);
        return CLI_USAGE;
    }
    co.no_load = model_only;
    mx_diag d;
    mx_compiled *c = in.model ? mx_compile_model(in.model, &t, &co, &d) : mx_compile(in.g, &t, &co, &d);
    mx_status st = c ? mx_init_weights(c, 1, &d) : MX_ERR_INVALID;
    mx_tune_options o = {.db = cli_value(a, "--db"), .budget_s = budget, .kernels = cli_value(a, "--kernels"),
                         .model_only = model_only, .seed = (uint64_t)seed, .repeats = (int)repeats,
                         .progress = stderr, .jobs = (int)jobs};
    mx_tune_summary s;
    if (st == MX_OK)
        st = mx_tune(c, &o, &s, &d);
    mx_compiled_free(c);
    cli_unload(&in);
    if (st != MX_OK)
        return cli_fail("%s", d.msg);
    char products[48] = "";
    if (s.products)
        snprintf(products, sizeof products, " and %d product%s", s.products, s.products == 1 ? "" : "s");
    printf("tuned %d kernel%s%s in %.1f s (%d candidates); %d improved\n", s.kernels - s.products,
           s.kernels - s.products == 1 ? "" : "s", products, s.seconds, s.candidates, s.improved);
    printf("%s time of the tuned kernels per forward pass: default %.4f ms, tuned %.4f ms (%.2fx)\n",
           model_only ? "estimated" : "measured", s.default_ms, s.tuned_ms,
           s.tuned_ms > 0 ? s.default_ms / s.tuned_ms : 1);
    if (s.forward_default_ms > 0)
        printf("whole forward pass, every winner together: default %.3f ms, tuned %.3f ms (%.2fx, the faster in "
               "%d of %d pairs): %s\n",
               s.forward_default_ms, s.forward_tuned_ms, s.forward_default_ms / s.forward_tuned_ms, s.forward_wins,
               s.forward_pairs,
               s.forward_kept ? "winners kept"
                              : "the defaults kept (winners must be 2% faster by the medians and the faster in "
                                "all pairs but one)");
    printf("records appended to %s (mixc tune --show --db %s)\n", s.db, s.db);
    return CLI_OK;
}

static int run(const cli_args *a) {
    const char *merge[CLI_MAX_ARGS];
    int n_merge = cli_list(a, "--merge", merge, CLI_MAX_ARGS);
    const char *out = cli_value(a, "-o");
    mx_diag d;
    if (n_merge || out) {
        if (!n_merge || !out || a->n_pos)
            return cli_usage_error(a, "merging takes --merge FILE (one or more) and -o FILE, and no model");
        return mx_tune_merge(merge, n_merge, out, &d) == MX_OK ? CLI_OK : cli_fail("%s", d.msg);
    }
    if (cli_flag(a, "--show")) {
        if (a->n_pos)
            return cli_usage_error(a, "--show prints the database (--db FILE): it takes no model");
        return mx_tune_show(cli_value(a, "--db"), stdout, &d) == MX_OK ? CLI_OK : cli_fail("%s", d.msg);
    }
    if (!a->n_pos)
        return cli_usage_error(a, "tune: a model spec or IR FILE is needed (or --show, --merge)");
    return tune(a);
}

const cli_command cli_cmd_tune = {
    "tune",
    "[FILE]",
    0,
    1,
    "search the tiles of each generated kernel; the winners go to the tuning database",
    "For each distinct generated kernel of the model spec or IR FILE, tries the\n"
    "tiles its emitter takes (GPU: threads, items, channels and lanes per block,\n"
    "decomposition, min blocks; CPU: the vector width, the scan's staged chunk,\n"
    "the threads a launch is split over, and a matmul's split over the pool\n"
    "against OpenBLAS's own threads): a small space whole, a large one by a\n"
    "seeded sample then beam steps, the programs of the next rounds compiled\n"
    "at once (one per core). Each candidate is timed after a warm-up, the median of\n"
    "repeats, side by side with the default; one 3x slower than the best is\n"
    "dropped; one can only win once the model's outputs with it matched the\n"
    "default's on fresh random inputs. The winners are then timed together on\n"
    "the whole forward pass against the defaults, and kept only if that is 2%\n"
    "faster. The records are appended to the tuning\n"
    "database, which every later compile on the same target and versions\n"
    "reads (MIXC_NO_TUNE=1: the defaults; MIXC_DEBUG=3: where each kernel's\n"
    "tiles came from). Without a GPU, --device cuda --model-only ranks GPU\n"
    "candidates by the roofline estimate. docs/tune.md.\n",
    {cli_model_options, cli_target_options, options, NULL},
    run,
};
