/* bench.c: the benchmarks' shared machinery (bench.h). */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gpu.h"
#include "ir.h"

mx_status bench_module_of(mx_compiled *c, bench_module *bm, mx_diag *d) {
    memset(bm, 0, sizeof *bm);
    MX_TRY(mx_compiled_module(c, &bm->m, d));
    mx_status st = mx_gpu_compile(&bm->m, mx_compiled_program(c)->g->name, mx_compiled_target(c)->sm, bm->cubins, d);
    if (st != MX_OK)
        mx_module_free(&bm->m);
    return st;
}

void bench_module_free(bench_module *bm) {
    for (int q = 0; q < bm->m.n_programs; q++)
        mx_cubin_free(&bm->cubins[q]);
    mx_module_free(&bm->m);
}

const mx_kernel_usage *bench_kernel_usage(const bench_module *bm, int k) {
    const mx_kernel *kn = &bm->m.kernels[k];
    return kn->program >= 0 && kn->program < bm->m.n_programs ? mx_cubin_kernel(&bm->cubins[kn->program], kn->name)
                                                               : NULL;
}

mx_status bench_save_tensors(const char *path, const bench_tensor *t, int n, const char *const *set, int n_set,
                             mx_diag *d) {
    /* The header: {"__metadata__": {"overrides": "a=1;b=2"}, "name": {"dtype": "F32", "shape": [...],
     * "data_offsets": [a, b]}, ...} */
    size_t cap = 256 + (size_t)n * 256, len = 0;
    for (int i = 0; i < n_set; i++)
        cap += strlen(set[i]) + 1;
    char *head = malloc(cap);
    if (!head)
        return mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", path);
    len += (size_t)snprintf(head + len, cap - len, "{\"__metadata__\":{\"overrides\":\"");
    for (int i = 0; i < n_set; i++) {
        if (strpbrk(set[i], "\"\\;")) {
            free(head);
            return mx_fail(d, MX_ERR_INVALID, "%s: override '%s' has a quote, backslash or ';'", path, set[i]);
        }
        len += (size_t)snprintf(head + len, cap - len, "%s%s", i ? ";" : "", set[i]);
    }
    len += (size_t)snprintf(head + len, cap - len, "\"}%s", n ? "," : "");
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        int64_t numel = 1;
        len += (size_t)snprintf(head + len, cap - len, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[", i ? "," : "",
                                t[i].name);
        for (int r = 0; r < t[i].rank; r++) {
            numel *= t[i].dims[r];
            len += (size_t)snprintf(head + len, cap - len, "%s%lld", r ? "," : "", (long long)t[i].dims[r]);
        }
        uint64_t end = offset + (uint64_t)numel * 4;
        len += (size_t)snprintf(head + len, cap - len, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                                (unsigned long long)end);
        offset = end;
    }
    len += (size_t)snprintf(head + len, cap - len, "}");
    while (len % 8) /* the format pads the header with spaces to 8 bytes */
        head[len++] = ' ';
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    uint64_t hlen = len;
    bool ok = f && fwrite(&hlen, 8, 1, f) == 1 && fwrite(head, 1, len, f) == len;
    for (int i = 0; ok && i < n; i++) {
        int64_t numel = 1;
        for (int r = 0; r < t[i].rank; r++)
            numel *= t[i].dims[r];
        ok = fwrite(t[i].data, 4, (size_t)numel, f) == (size_t)numel;
    }
    ok = f && fclose(f) == 0 && ok;
    free(head);
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return mx_fail(d, MX_ERR_IO, "%s: cannot write the tensors", path);
    }
    return MX_OK;
}

void bench_cpu_tag(const mx_target *t, char *buf, size_t size) {
    snprintf(buf, size, "%s-%dbit", t->name, t->vector_bits);
    for (char *c = buf; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-'))
            *c = '_';
}

/* The commit the binary's source tree is at, "-dirty" when it has changes. */
void bench_git_commit(char *buf, size_t size) {
    /* A copy of the tree without its .git (a lent GPU machine's) is told
     * the commit by whoever copied it. */
    const char *given = getenv("MIXC_BENCH_COMMIT");
    if (given && *given) {
        snprintf(buf, size, "%s", given);
        return;
    }
    snprintf(buf, size, "unknown");
    FILE *p = popen("git -C " MIXC_SOURCE_DIR " rev-parse HEAD 2>/dev/null", "r");
    if (p && fgets(buf, (int)size, p))
        buf[strcspn(buf, "\n")] = 0;
    if (p)
        pclose(p);
    p = popen("git -C " MIXC_SOURCE_DIR " status --porcelain --untracked-files=no 2>/dev/null", "r");
    char line[8];
    if (p && fgets(line, sizeof line, p) && strlen(buf) + 7 < size)
        strcat(buf, "-dirty");
    if (p)
        pclose(p);
}

static bool bench_json_open(bench *b, bench_json *j) {
    const mx_target *t = &b->t;
    char device[256];
    snprintf(device, sizeof device, "%s%s", b->smoke ? "emu-" : "", t->name);
    for (char *c = device; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-'))
            *c = '_';
    snprintf(j->path, sizeof j->path, "%s/%s%s-%s.json", b->results, b->prog, b->tune_s > 0 ? "_tune" : "", device);
    snprintf(j->tmp, sizeof j->tmp, "%s.tmp", j->path);
    j->n_results = 0;
    j->f = fopen(j->tmp, "w");
    if (!j->f) {
        fprintf(stderr, "%s: cannot write %s\n", b->prog, j->tmp);
        return false;
    }
    char host[256] = "unknown", commit[128], when[64];
    gethostname(host, sizeof host - 1);
    bench_git_commit(commit, sizeof commit);
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    int nv_major, nv_minor;
    mx_nvrtc_version(&nv_major, &nv_minor);
    mx_target cpu;
    mx_diag d;
    mx_target_detect(MX_DEVICE_REF, &cpu, &d);
    fprintf(j->f,
            "{\n  \"benchmark\": \"%s\",\n  \"smoke\": %s,\n  \"machine\": \"%s\",\n  \"cpu\": \"%s\",\n  \"date\": \"%s\",\n"
            "  \"commit\": \"%s\",\n"
            "  \"device\": {\"name\": \"%s\", \"sm\": %d, \"sms\": %d, \"l2_bytes\": %lld, \"memory_bytes\": %lld, "
            "\"nvrtc\": \"%d.%d\"},\n"
            "  \"peak\": {\"bytes_per_s\": %.4g, \"bandwidth_source\": \"%s\", \"exps_per_s\": %.4g},\n"
            "  \"timing\": \"mx_time: CUDA events around each forward pass, after warm-up, the L2 flushed (a "
            "write of 2x the L2) before each; median, min and max of the runs\",\n  \"results\": [",
            b->prog, b->smoke ? "true" : "false", host, cpu.name, when, commit, t->name, t->sm, t->sm_count, (long long)t->l2_bytes,
            (long long)t->memory_bytes, nv_major, nv_minor, t->bytes_per_s, t->rates_source, t->exps_per_s);
    return true;
}

void bench_json_next(bench_json *j) { fprintf(j->f, "%s\n    ", j->n_results++ ? "," : ""); }

static bool bench_json_close(bench_json *j) {
    fprintf(j->f, "\n  ]\n}\n");
    bool ok = fclose(j->f) == 0 && rename(j->tmp, j->path) == 0;
    if (!ok)
        remove(j->tmp);
    else
        printf("wrote %s\n", j->path);
    return ok;
}

int bench_start(bench *b, bench_json *j, const char *prog, int argc, char **argv) {
    *b = (bench){.prog = prog};
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--smoke") == 0) {
            b->smoke = true;
        } else if (strcmp(argv[i], "--tune") == 0 && i + 1 < argc &&
                   (b->tune_s = strtod(argv[i + 1], &end)) > 0 && b->tune_s <= 3600 && end && !*end) {
            i++;
        } else {
            bool help = strcmp(argv[i], "--help") == 0;
            if (!help && strcmp(argv[i], "--tune") == 0)
                fprintf(stderr, "%s: --tune takes the seconds of search per program, 0 < S <= 3600\n", prog);
            else if (!help)
                fprintf(stderr, "%s: unknown option '%s'\n", prog, argv[i]);
            fprintf(help ? stdout : stderr,
                    "usage: %s [--smoke] [--tune SECONDS]\n  times on GPU 0 and writes bench/results/%s-<GPU>.json "
                    "(bench/README.md)\n  --smoke  the same code on the host emulation at small sizes: checks the "
                    "benchmark, measures nothing\n  --tune S  tunes each program's kernels first (S seconds each), "
                    "then times default against tuned: %s_tune-<GPU>.json\n"
                    "  MIXC_BENCH_RESULTS=DIR  write the results there instead\n",
                    prog, prog, prog);
            return help ? 0 : 2;
        }
    }
    const char *dir = getenv("MIXC_BENCH_RESULTS");
    snprintf(b->results, sizeof b->results, "%s", dir && *dir ? dir : MIXC_SOURCE_DIR "/bench/results");
    mx_diag d = {{0}};
    mx_status st = b->smoke ? mx_target_named("h100", MX_DEVICE_EMU, &b->t, &d)
                            : mx_target_detect(MX_DEVICE_CUDA, &b->t, &d);
    if (st != MX_OK) {
        fprintf(stderr, "%s: no GPU (%s): nothing measured, no results written\n", prog, d.msg);
        return 1;
    }
    if (!bench_json_open(b, j))
        return 1;
    char desc[256];
    mx_target_describe(&b->t, desc, sizeof desc);
    printf("%s on %s%s\n", prog, desc, b->smoke ? " (smoke run: the times mean nothing)" : "");
    return -1;
}

int bench_finish(bench_json *j, int rc) {
    if (j->n_results == 0) { /* nothing measured: no file */
        fclose(j->f);
        remove(j->tmp);
        return rc ? rc : 1;
    }
    return bench_json_close(j) ? rc : 1;
}

void bench_json_failure(bench_json *j, const char *fields, const char *why) {
    bench_json_next(j);
    fprintf(j->f, "{%s, \"error\": \"", fields);
    for (const char *c = why; *c; c++)
        if (*c == '"' || *c == '\\')
            fprintf(j->f, "\\%c", *c);
        else if ((unsigned char)*c < 0x20)
            fprintf(j->f, "\\u%04x", (unsigned char)*c);
        else
            fputc(*c, j->f);
    fprintf(j->f, "\"}");
}

/* ---- --tune ---------------------------------------------------------------------------------- */

static mx_status compile_tiles(bench_compile_fn compile, void *ctx, bool tuned, bool no_load, mx_compiled **c,
                               mx_diag *d) {
    if (!tuned)
        setenv("MIXC_NO_TUNE", "1", 1);
    *c = compile(ctx, no_load, d);
    unsetenv("MIXC_NO_TUNE");
    return *c ? MX_OK : MX_ERR_INVALID;
}

static int by_ms(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static mx_timing timing_of(double *ms, int n) {
    qsort(ms, (size_t)n, sizeof *ms, by_ms);
    return (mx_timing){.runs = n, .median_ms = n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2,
                       .min_ms = ms[0], .max_ms = ms[n - 1]};
}

/* Every output of a against b: the largest difference and a's largest magnitude. */
static mx_status compare_outputs(const mx_compiled *a, const mx_compiled *b, double *diff, double *scale,
                                 mx_diag *d) {
    *diff = 0, *scale = 0;
    for (int i = 0; i < mx_tensor_count(a, MX_ROLE_OUTPUT); i++) {
        mx_tensor_info ti;
        MX_TRY(mx_tensor_info_of(a, MX_ROLE_OUTPUT, i, &ti, d));
        const float *x = mx_output(a, ti.name), *y = mx_output(b, ti.name);
        if (!x || !y)
            return mx_fail(d, MX_ERR_INVALID, "output %s: not there after a run", ti.name);
        for (int64_t k = 0; k < ti.numel; k++) {
            double e = fabs((double)x[k] - y[k]);
            *diff = e > *diff || isnan(e) ? (isnan(e) ? INFINITY : e) : *diff;
            *scale = fabs(x[k]) > *scale ? fabs(x[k]) : *scale;
        }
    }
    return MX_OK;
}

mx_status bench_default_vs_tuned(bench_compile_fn compile, void *ctx, int runs, int block, bench_tuned *out,
                                 mx_diag *d) {
    mx_compiled *c[2] = {NULL, NULL};
    mx_status st = compile_tiles(compile, ctx, false, false, &c[0], d);
    if (st == MX_OK)
        st = compile_tiles(compile, ctx, true, false, &c[1], d);
    double *ms[2] = {calloc((size_t)runs, sizeof(double)), calloc((size_t)runs, sizeof(double))};
    if (st == MX_OK && (!ms[0] || !ms[1]))
        st = mx_fail(d, MX_ERR_NOMEM, "out of memory");
    for (int i = 0; st == MX_OK && i < 2; i++) { /* warm-up, and the outputs compared */
        mx_timing w;
        st = mx_time(c[i], 2, 1, &w, d);
    }
    if (st == MX_OK)
        st = compare_outputs(c[0], c[1], &out->max_abs_diff, &out->scale, d);
    for (int done = 0; st == MX_OK && done < runs; done += block)
        for (int i = 0; st == MX_OK && i < 2; i++)
            for (int k = done; st == MX_OK && k < done + block && k < runs; k++) {
                mx_timing one;
                st = mx_time(c[i], 0, 1, &one, d);
                ms[i][k] = one.median_ms;
            }
    if (st == MX_OK)
        out->def = timing_of(ms[0], runs), out->tuned = timing_of(ms[1], runs);
    free(ms[0]), free(ms[1]);
    mx_compiled_free(c[0]), mx_compiled_free(c[1]);
    return st;
}

mx_status bench_tuned_run(const bench *b, bench_compile_fn compile, void *ctx, int runs, bench_tuned *out,
                          mx_diag *d) {
    memset(out, 0, sizeof *out);
    /* the search, on a default program of its own (its inputs become the tune's random ones) */
    mx_compiled *c;
    MX_TRY(compile_tiles(compile, ctx, false, b->smoke, &c, d));
    mx_tune_options o = {.budget_s = b->tune_s, .model_only = b->smoke, .seed = 1, .progress = stderr};
    mx_status st = mx_tune(c, &o, &out->tune, d);
    mx_compiled_free(c);
    enum { BLOCK = 5 };
    return st == MX_OK ? bench_default_vs_tuned(compile, ctx, (runs + BLOCK - 1) / BLOCK * BLOCK, BLOCK, out, d) : st;
}

void bench_tuned_print(bench_json *j, const char *what, const bench_tuned *t) {
    const mx_tune_summary *s = &t->tune;
    double speedup = t->def.median_ms / t->tuned.median_ms;
    printf("%s: tuned %d kernel%s in %.1f s (%d candidates, %d improved%s): default %.4f ms [%.4f, %.4f], "
           "tuned %.4f ms [%.4f, %.4f]: %.3fx; outputs differ by %.3g (scale %.3g)\n",
           what, s->kernels, s->kernels == 1 ? "" : "s", s->seconds, s->candidates, s->improved,
           s->forward_default_ms > 0 && !s->forward_kept ? ", the defaults kept" : "", t->def.median_ms,
           t->def.min_ms, t->def.max_ms, t->tuned.median_ms, t->tuned.min_ms, t->tuned.max_ms, speedup,
           t->max_abs_diff, t->scale);
    fprintf(j->f,
            ", \"tune\": {\"db\": \"%s\", \"kernels\": %d, \"products\": %d, \"improved\": %d, \"candidates\": %d, "
            "\"seconds\": %.2f, \"kernels_default_ms\": %.6g, \"kernels_tuned_ms\": %.6g, "
            "\"forward_kept\": %d, \"forward_wins\": %d, \"forward_pairs\": %d}, "
            "\"default\": {\"runs\": %d, \"median_ms\": %.6g, \"min_ms\": %.6g, \"max_ms\": %.6g}, "
            "\"tuned\": {\"runs\": %d, \"median_ms\": %.6g, \"min_ms\": %.6g, \"max_ms\": %.6g}, "
            "\"speedup\": %.4f, \"outputs_max_abs_diff\": %.3g, \"outputs_scale\": %.3g",
            s->db, s->kernels, s->products, s->improved, s->candidates, s->seconds, s->default_ms, s->tuned_ms,
            s->forward_kept, s->forward_wins, s->forward_pairs, t->def.runs, t->def.median_ms, t->def.min_ms,
            t->def.max_ms, t->tuned.runs, t->tuned.median_ms, t->tuned.min_ms, t->tuned.max_ms, speedup,
            t->max_abs_diff, t->scale);
}
