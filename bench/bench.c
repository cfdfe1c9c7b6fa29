/* bench.c: the benchmarks' shared machinery (bench.h). */
#include "bench.h"

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

/* The commit the binary's source tree is at, "-dirty" when it has changes. */
void bench_git_commit(char *buf, size_t size) {
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
    snprintf(j->path, sizeof j->path, "%s/%s-%s.json", b->results, b->prog, device);
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
        if (strcmp(argv[i], "--smoke") == 0) {
            b->smoke = true;
        } else {
            bool help = strcmp(argv[i], "--help") == 0;
            if (!help)
                fprintf(stderr, "%s: unknown option '%s'\n", prog, argv[i]);
            fprintf(help ? stdout : stderr,
                    "usage: %s [--smoke]\n  times on GPU 0 and writes bench/results/%s-<GPU>.json "
                    "(bench/README.md)\n  --smoke  the same code on the host emulation at small sizes: checks the "
                    "benchmark, measures nothing\n  MIXC_BENCH_RESULTS=DIR  write the results there instead\n",
                    prog, prog);
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
    if (rc == 0 && !bench_json_close(j))
        rc = 1;
    else if (rc != 0) {
        fclose(j->f);
        remove(j->tmp);
    }
    return rc;
}
