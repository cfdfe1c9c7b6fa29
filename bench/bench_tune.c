/* bench_tune.c: a model's forward pass on the CPU with the default tiles
 * against the tuned ones (mixc tune's database), in one run.
 *
 *   bench_tune MODEL.json DB.jsonl [RUNS]
 *
 * Both programs are compiled through mx_compile from the same spec, weights
 * and inputs (the default one with MIXC_NO_TUNE=1), then timed in
 * alternating blocks of 3 forward passes so that both see the same machine
 * load, their outputs compared (bench_default_vs_tuned, bench.h, which
 * --tune of the GPU benchmarks shares). Per tuned kernel, the database's default
 * and winner times are copied into the result (alone, and the winner's
 * ratio in the forward pass where it was judged there, 0 when not), with
 * the whole-forward ratio the tune measured when it checked its winners
 * together, and the machine's load (1-minute average) before and after.
 * Writes
 * bench/results/bench_tune-cpu-<model>-<cpu>-<vector bits>bit.json. */
#define _DEFAULT_SOURCE /* getloadavg */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "tune.h"

typedef struct {
    const mx_model *m;
    const mx_target *t;
} model_on;

/* The model compiled on the CPU (MIXC_NO_TUNE set or not by the caller),
 * seeded weights and inputs. */
static mx_compiled *compile(void *ctx, bool no_load, mx_diag *d) {
    (void)no_load; /* the comparison loads both */
    const model_on *x = ctx;
    mx_compiled *c = mx_compile_model(x->m, x->t, NULL, d);
    if (c && (mx_init_weights(c, 1, d) != MX_OK || mx_set_random_inputs(c, 1, d) != MX_OK)) {
        mx_compiled_free(c);
        return NULL;
    }
    return c;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tune MODEL.json DB.jsonl [RUNS]\n");
        return 2;
    }
    int runs = argc > 3 ? atoi(argv[3]) : 15;
    runs = runs < 3 ? 3 : runs > 300 ? 300 : runs;
    setenv("MIXC_TUNE_DB", argv[2], 1);
    mx_diag d;
    mx_target t;
    mx_model *m = mx_model_load(argv[1], NULL, 0, &d);
    if (!m || mx_target_detect(MX_DEVICE_CPU, &t, &d) != MX_OK) {
        fprintf(stderr, "bench_tune: %s\n", d.msg);
        return 1;
    }
    /* With no record for this target the tuned program is the default one,
     * and the comparison would time one program twice. */
    char sig[256];
    mx_tune_signature(&t, sig, sizeof sig);
    mx_tune_db db;
    if (mx_tune_db_read(argv[2], &db, stderr, &d) != MX_OK) {
        fprintf(stderr, "bench_tune: %s\n", d.msg);
        return 1;
    }
    int mine = 0;
    for (int i = 0; i < db.n; i++)
        mine += strcmp(db.records[i].target, sig) == 0;
    if (mine == 0) {
        fprintf(stderr,
                "bench_tune: %s holds no record for this machine's target (%s): run `mixc tune %s --device cpu "
                "--db %s` first\n",
                argv[2], sig, argv[1], argv[2]);
        mx_tune_db_free(&db);
        return 1;
    }
    double load[2][3] = {{-1, -1, -1}, {-1, -1, -1}};
    getloadavg(load[0], 3);
    bench_tuned timed;
    if (bench_default_vs_tuned(compile, &(model_on){m, &t}, runs, 3, &timed, &d) != MX_OK) {
        fprintf(stderr, "bench_tune: %s\n", d.msg);
        return 1;
    }
    getloadavg(load[1], 3);
    double med[2] = {timed.def.median_ms, timed.tuned.median_ms}, lo[2] = {timed.def.min_ms, timed.tuned.min_ms},
           hi[2] = {timed.def.max_ms, timed.tuned.max_ms}, worst = timed.max_abs_diff, scale = timed.scale;
    const char *name = strrchr(argv[1], '/') ? strrchr(argv[1], '/') + 1 : argv[1];
    char path[1024], tmp[1100], commit[128], host[256] = "unknown", when[32], desc[256], cpu[160];
    bench_cpu_tag(&t, cpu, sizeof cpu);
    snprintf(path, sizeof path, "%s/bench/results/bench_tune-cpu-%.*s-%s.json", MIXC_SOURCE_DIR,
             (int)(strlen(name) > 5 ? strlen(name) - 5 : strlen(name)), name, cpu);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    bench_git_commit(commit, sizeof commit);
    gethostname(host, sizeof host);
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    mx_target_describe(&t, desc, sizeof desc);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "bench_tune: cannot write %s\n", tmp);
        return 1;
    }
    fprintf(f, "{\n  \"benchmark\": \"bench_tune\",\n  \"machine\": \"%s\",\n  \"date\": \"%s\",\n  \"commit\": \"%s\",\n"
               "  \"device\": \"%s\",\n  \"cpu\": \"%s\",\n  \"model\": \"%s\",\n  \"runs\": %d,\n"
               "  \"note\": \"forward passes timed in alternating blocks of 3, default and tuned programs both open\",\n"
               "  \"default_ms\": {\"median\": %.4f, \"min\": %.4f, \"max\": %.4f},\n"
               "  \"tuned_ms\": {\"median\": %.4f, \"min\": %.4f, \"max\": %.4f},\n"
               "  \"speedup\": %.4f,\n  \"outputs_max_abs_diff\": %.3g,\n  \"outputs_scale\": %.3g,\n"
               "  \"load_1min\": {\"before\": %.2f, \"after\": %.2f},\n  \"kernels\": [",
            host, when, commit, desc, t.name, argv[1], runs, med[0], lo[0], hi[0], med[1], lo[1], hi[1],
            med[0] / med[1], worst, scale, load[0][0], load[1][0]);
    int k = 0;
    for (int i = 0; i < db.n; i++) {
        const mx_tune_record *r = &db.records[i];
        if (strcmp(r->target, sig) != 0)
            continue;
        char tiles[160];
        mx_tiles_describe(&r->candidates[r->winner].tiles, tiles, sizeof tiles);
        fprintf(f, "%s\n    {\"label\": \"%s\", \"candidates\": %d, \"default_ms\": %.5f, \"tuned_ms\": %.5f, "
                   "\"spread\": %.3f, \"ratio\": %.4f, \"pass_ratio\": %.4f, \"winner\": \"%s\", "
                   "\"tune_forward_ratio\": %.4f}",
                k++ ? "," : "", r->label, r->n_candidates, r->candidates[0].ms, r->candidates[r->winner].ms,
                r->candidates[r->winner].spread, r->candidates[r->winner].ratio,
                r->candidates[r->winner].pass_ratio, tiles, r->forward);
    }
    mx_tune_db_free(&db);
    fprintf(f, "\n  ]\n}\n");
    bool ok = fclose(f) == 0 && rename(tmp, path) == 0;
    printf("%s on %s: default %.2f ms [%.2f, %.2f], tuned %.2f ms [%.2f, %.2f]: %.3fx; outputs differ by %.3g "
           "(scale %.3g); load %.2f -> %.2f\n%s\n",
           name, desc, med[0], lo[0], hi[0], med[1], lo[1], hi[1], med[0] / med[1], worst, scale, load[0][0],
           load[1][0],
           ok ? path : "(not written)");
    mx_model_free(m);
    return ok ? 0 : 1;
}
