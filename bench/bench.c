/* bench.c: the benchmarks' shared machinery (bench.h). */
#include "bench.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ir.h"

static void bench_close(bench *b) {
    if (!b->gpu)
        return;
    const mx_cuda_api *api = &b->gpu->cu->api;
    if (b->start)
        api->EventDestroy(b->start);
    if (b->stop)
        api->EventDestroy(b->stop);
    if (b->flush)
        api->MemFree(b->flush);
    mx_gpu_close(b->gpu);
    b->gpu = NULL;
}

static bool bench_open(bench *b, const char *prog) {
    *b = (bench){.prog = prog};
    mx_diag d = {{0}};
    if (mx_gpu_open(&b->gpu, &d) != MX_OK) {
        fprintf(stderr, "%s: no GPU (%s): nothing measured, no results written\n", prog, d.msg);
        return false;
    }
    const mx_cuda *cu = b->gpu->cu;
    b->flush_bytes = 2 * (size_t)(cu->l2_bytes > 0 ? cu->l2_bytes : 64 << 20);
    mx_status st = mx_cuda_check(cu, cu->api.MemAlloc(&b->flush, b->flush_bytes), "cuMemAlloc (L2 flush buffer)", &d);
    if (st == MX_OK)
        st = mx_cuda_check(cu, cu->api.EventCreate(&b->start, CU_EVENT_DEFAULT), "cuEventCreate", &d);
    if (st == MX_OK)
        st = mx_cuda_check(cu, cu->api.EventCreate(&b->stop, CU_EVENT_DEFAULT), "cuEventCreate", &d);
    if (st != MX_OK) {
        fprintf(stderr, "%s: %s\n", prog, d.msg);
        bench_close(b);
        return false;
    }
    return true;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

mx_status bench_time(bench *b, mx_gpu_program *gp, bool graphs, int warmup, int runs, bench_times *t,
                     mx_diag *d) {
    const mx_cuda *cu = b->gpu->cu;
    CUstream s = b->gpu->stream;
    for (int i = 0; i < warmup; i++)
        MX_TRY(mx_gpu_forward(gp, graphs, d));
    MX_TRY(mx_gpu_sync(b->gpu, d));
    double *ms = malloc((size_t)runs * sizeof *ms);
    if (!ms)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory for %d timings", runs);
    mx_status st = MX_OK;
    for (int i = 0; i < runs && st == MX_OK; i++) {
        /* The memset runs on the legacy stream, which the (blocking) stream
         * waits for: the flush ends before the start event. */
        st = mx_cuda_check(cu, cu->api.MemsetD8(b->flush, (unsigned char)i, b->flush_bytes), "cuMemsetD8 (L2 flush)", d);
        if (st == MX_OK)
            st = mx_cuda_check(cu, cu->api.EventRecord(b->start, s), "cuEventRecord", d);
        if (st == MX_OK)
            st = mx_gpu_forward(gp, graphs, d);
        if (st == MX_OK)
            st = mx_cuda_check(cu, cu->api.EventRecord(b->stop, s), "cuEventRecord", d);
        if (st == MX_OK)
            st = mx_cuda_check(cu, cu->api.EventSynchronize(b->stop), "cuEventSynchronize (a timed run)", d);
        float e = 0;
        if (st == MX_OK)
            st = mx_cuda_check(cu, cu->api.EventElapsedTime(&e, b->start, b->stop), "cuEventElapsedTime", d);
        ms[i] = e;
    }
    if (st == MX_OK) {
        qsort(ms, (size_t)runs, sizeof *ms, cmp_double);
        *t = (bench_times){runs, ms[runs / 2], ms[0], ms[runs - 1], ms[runs / 10], ms[runs - 1 - runs / 10]};
    }
    free(ms);
    return st;
}

mx_status bench_compile(bench *b, mx_graph *g, mx_program **p, mx_module *m, mx_diag *d) {
    *m = (mx_module){0};
    *p = mx_program_new(g);
    mx_pass_options o;
    MX_TRY(mx_pass_options_from_env(&o, d));
    MX_TRY(mx_program_run_passes(*p, &o, d));
    mx_target t;
    MX_TRY(mx_target_detect(MX_DEVICE_CUDA, &t, d));
    mx_codegen_options co = {.target = &t};
    return mx_codegen(*p, &co, m, d);
}

mx_status bench_save_tensors(const char *path, const bench_tensor *t, int n, mx_diag *d) {
    /* The header: {"name": {"dtype": "F32", "shape": [...], "data_offsets": [a, b]}, ...} */
    size_t cap = 256 + (size_t)n * 256, len = 0;
    char *head = malloc(cap);
    if (!head)
        return mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", path);
    len += (size_t)snprintf(head + len, cap - len, "{");
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        int64_t numel = 1;
        len += (size_t)snprintf(head + len, cap - len, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[", i ? "," : "", t[i].name);
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
    const mx_cuda *cu = b->gpu->cu;
    char device[256];
    snprintf(device, sizeof device, "%s", cu->name);
    for (char *c = device; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-'))
            *c = '_';
    snprintf(j->path, sizeof j->path, "%s/bench/results/%s-%s.json", MIXC_SOURCE_DIR, b->prog, device);
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
    mx_gpu_peak pk = mx_gpu_peak_of(cu);
    fprintf(j->f,
            "{\n  \"benchmark\": \"%s\",\n  \"machine\": \"%s\",\n  \"date\": \"%s\",\n  \"commit\": \"%s\",\n"
            "  \"device\": {\"name\": \"%s\", \"sm\": %d, \"sms\": %d, \"sm_clock_mhz\": %.0f, "
            "\"mem_clock_mhz\": %.0f, \"bus_width_bits\": %d, \"l2_bytes\": %d, \"memory_bytes\": %zu, "
            "\"driver\": %d, \"nvrtc\": \"%d.%d\"},\n"
            "  \"peak\": {\"bytes_per_s\": %.4g, \"bandwidth_source\": \"%s\", \"exps_per_s\": %.4g},\n"
            "  \"timing\": \"CUDA events around the forward pass, after warm-up, L2 flushed (2x L2 memset) "
            "before every run; median of the runs\",\n  \"results\": [",
            b->prog, host, when, commit, cu->name, mx_gpu_sm(b->gpu), cu->sm_count, cu->clock_khz / 1e3,
            cu->mem_clock_khz / 1e3, cu->mem_bus_width, cu->l2_bytes, cu->total_mem, cu->driver_version, nv_major,
            nv_minor, pk.bytes_per_s, pk.bandwidth_source, pk.exps_per_s);
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

bool bench_start(bench *b, bench_json *j, const char *prog) {
    if (!bench_open(b, prog))
        return false;
    if (!bench_json_open(b, j)) {
        bench_close(b);
        return false;
    }
    printf("%s on %s\n", prog, b->gpu->cu->name);
    return true;
}

int bench_finish(bench *b, bench_json *j, int rc) {
    if (rc == 0 && !bench_json_close(j))
        rc = 1;
    else if (rc != 0) {
        fclose(j->f);
        remove(j->tmp);
    }
    bench_close(b);
    return rc;
}
