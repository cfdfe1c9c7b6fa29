/* cmd_check.c: mixc check: every device this machine has against the
 * reference interpreter run on the source graph, on the same seeded inputs
 * and params. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"
#include "finite.h"

/* The worst |got - want| / max(1, |want|). Where either is NaN or Inf they
 * must be the same (both NaN, or the same Inf), else infinitely wrong: a
 * reference that overflows is then matched by the devices that overflow
 * alike, and the device that diverges is the one flagged. */
static double max_rel_error(const float *got, const float *want, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(got[i]) || !isfinite(want[i])) {
            if (!(isnan(got[i]) && isnan(want[i])) && got[i] != want[i])
                worst = INFINITY;
            continue;
        }
        worst = fmax(worst, fabs((double)got[i] - want[i]) / fmax(1.0, fabs((double)want[i])));
    }
    return worst;
}

static bool stores_half(const mx_graph *g) {
    for (int v = 0; v < mx_graph_value_count(g); v++)
        if (mx_graph_value_dtype(g, v) != MX_F32)
            return true;
    return false;
}

/* The oracle: the source graph on the reference, params and inputs as
 * cli_compile gives them (the same seeded streams). */
static mx_buffers *oracle(const cli_args *a, const cli_input *in, unsigned long long seed) {
    mx_buffers *b = mx_buffers_new(in->g);
    mx_diag d = {"out of memory"};
    mx_status st = b ? MX_OK : MX_ERR_NOMEM;
    const char *weights = cli_value(a, "--weights");
    if (st == MX_OK) {
        mx_buffers_fill_random(b, in->g, seed);
        if (in->model)
            mx_model_init_params(in->model, b, seed);
        if (weights)
            st = mx_weights_load(in->g, b, weights, &d);
    }
    if (st == MX_OK)
        st = mx_ref_run(in->g, b, &d);
    if (st != MX_OK) {
        cli_fail("reference: %s", d.msg);
        mx_buffers_free(b);
        return NULL;
    }
    return b;
}

/* Runs on device and compares; false on a failure or a mismatch, or when a
 * device named by --devices cannot run here (a check that checked nothing
 * must not pass). */
static bool check_device(const cli_args *a, const cli_input *in, mx_device device, bool named,
                         const mx_buffers *want, double tol) {
    mx_target t;
    mx_diag d;
    const char *name = mx_device_name(device), *skipped = named ? "FAILED (named by --devices)" : "skipped";
    if (!mx_backend_of(device)) {
        printf("%-5s %s: not in this build of mixc\n", name, skipped);
        return !named;
    }
    const char *target = cli_value(a, "--target");
    mx_status st = target && device == MX_DEVICE_EMU ? mx_target_named(target, device, &t, &d)
                                                      : mx_target_detect(device, &t, &d);
    if (st == MX_ERR_INVALID) { /* not a device this machine lacks: a setting that is wrong */
        printf("%-5s FAILED: %s\n", name, d.msg);
        return false;
    }
    if (st != MX_OK) {
        printf("%-5s %s: %s\n", name, skipped, d.msg);
        return !named;
    }
    mx_compile_options o;
    cli_compile_options(a, &o); /* checked by run */
    if (device == MX_DEVICE_REF) /* no generated code to prune */
        o.prune_scans = 0;
    mx_compiled *c = cli_compile(a, in, &t, &o);
    if (!c || mx_run(c, &d) != MX_OK) {
        printf("%-5s FAILED: %s\n", name, c ? d.msg : "see above");
        mx_compiled_free(c);
        return false;
    }
    if (o.prune_scans > 0)
        cli_print_pruned(c, o.prune_scans);
    bool ok = true;
    for (int i = 0; i < mx_graph_output_count(in->g); i++) {
        int v = mx_graph_output(in->g, i);
        const char *vn = mx_graph_value_name(in->g, v);
        double e = max_rel_error(mx_output(c, vn), want->data[v], mx_graph_value_numel(in->g, v));
        printf("%-5s %%%s  max rel error %.3g  %s\n", name, vn ? vn : "?", e, e <= tol ? "ok" : "MISMATCH");
        ok &= e <= tol;
    }
    mx_compiled_free(c);
    return ok;
}

/* The devices of --devices (a comma list), or every one. */
static bool devices_asked(const cli_args *a, bool asked[MX_DEVICE_COUNT], bool *named) {
    const char *list = cli_value(a, "--devices");
    *named = list != NULL;
    for (int k = 0; k < MX_DEVICE_COUNT; k++)
        asked[k] = !list;
    if (list && !*list) {
        fprintf(stderr, "mixc check: --devices: an empty list checks nothing: name ref, cpu, emu or cuda\n");
        return false;
    }
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ",");
        char word[32];
        snprintf(word, sizeof word, "%.*s", (int)(n < sizeof word ? n : sizeof word - 1), p);
        mx_device dev;
        mx_diag d;
        if (mx_device_parse(word, &dev, &d) != MX_OK) {
            fprintf(stderr, "mixc check: --devices %s: '%s' is not a device: name ref, cpu, emu or cuda\n", list,
                    word);
            return false;
        }
        asked[dev] = true;
        p += n + (p[n] == ',');
    }
    return true;
}

static int run(const cli_args *a) {
    unsigned long long seed;
    mx_compile_options o;
    bool asked[MX_DEVICE_COUNT], named;
    if (!cli_compile_options(a, &o) || !devices_asked(a, asked, &named))
        return CLI_USAGE;
    cli_input in;
    int rc = cli_load_seeded(a, &in, &seed);
    if (rc != CLI_OK)
        return rc;
    mx_buffers *want = oracle(a, &in, seed);
    bool ok = want != NULL;
    if (want) {
        double tol = stores_half(in.g) ? 2e-2 : 1e-4;
        printf("%s: seed %llu, tolerance %g (max relative error, floor 1)\n", in.path, seed, tol);
        for (int i = 0; i < mx_graph_output_count(in.g); i++) {
            int v = mx_graph_output(in.g, i);
            int64_t first, bad = mx_count_nonfinite(want->data[v], want->numel[v], &first);
            if (bad)
                printf("reference: %%%s has %lld NaN/Inf of %lld (the first at [%lld]): compared as values\n",
                       mx_graph_value_name(in.g, v), (long long)bad, (long long)want->numel[v], (long long)first);
        }
        static const mx_device devices[] = {MX_DEVICE_REF, MX_DEVICE_CPU, MX_DEVICE_EMU, MX_DEVICE_CUDA};
        for (size_t k = 0; k < sizeof devices / sizeof *devices; k++)
            if (asked[devices[k]])
                ok &= check_device(a, &in, devices[k], named, want, tol);
    }
    mx_buffers_free(want);
    cli_unload(&in);
    return ok ? CLI_OK : CLI_FAILED;
}

static const cli_option options[] = {
    {"--devices", CLI_VALUE, "LIST", "the devices to check, a comma list of ref, cpu, emu, cuda\n"
                                     "(default: every one this machine has); one named here that\n"
                                     "cannot run is a failure, not a skip"},
    {"--target", CLI_VALUE, "NAME", "the GPU profile emu generates code for (default h100)"},
    {NULL},
};

const cli_command cli_cmd_check = {
    "check",
    "FILE",
    1,
    1,
    "every device against the reference; exit 1 on a mismatch",
    "Runs FILE on every device this machine has (ref: the planned program;\n"
    "cpu; emu; cuda when a GPU is there) and compares each output with the\n"
    "reference interpreter run on the source graph, on the same seeded inputs\n"
    "and params. Prints the max relative error (floor 1) per output and device;\n"
    "tolerance 1e-4, 2e-2 when the model stores f16 / bf16. A device this\n"
    "machine lacks is skipped, said; one a setting makes unusable (an unknown\n"
    "name in MIXC_CPU_DISABLE) fails. With --prune-scans the devices that run\n"
    "generated code leave out the light scan orders, and the errors shown are\n"
    "what that costs against the exact reference (a mismatch beyond the\n"
    "tolerance fails as any other).\n",
    {cli_model_options, cli_weight_options, cli_prune_options, options, NULL},
    run,
};
