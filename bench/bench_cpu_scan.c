/* bench_cpu_scan.c: the fused selective scan alone on the CPU backend, with
 * its peers timed in the same run.
 *
 * For each (B, Ch, L, N) of the workloads and 1 and 2 threads, a
 * one-scan graph (dt bias + softplus, exp(dt A), D skip and silu(z) gate
 * fused) is compiled for the cpu target and timed with mx_time (warm-up
 * first, compile excluded). Peers on the same inputs: a plain C loop
 * (scan_loop.c) built -O3 -march=native, the same loop with -ffast-math,
 * channels split over the same threads, and PyTorch eager on the CPU
 * (bench/torch_ref.py --scan: mamba_ssm's selective_scan_ref, same threads)
 * when python3 can import torch. mixc's output is checked against the plain
 * loop's. Reported: median, min and max ms, ns per (b, c, l, n) state
 * update, and % of the floor max(exps / exp rate, bytes / bandwidth) with
 * the exp rate and copy bandwidth measured here. Results:
 * bench/results/bench_cpu_scan-<cpu>-<vector bits>bit.json. Without the CPU backend it says
 * so and exits 1 without writing anything.
 *
 * Options: --shape B,Ch,L,N (repeatable; default the four above), --threads
 * T (repeatable; default 1 and 2), --no-torch (leave PyTorch out). */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "mixc.h"
#include "scan_loop.h"

#define WARMUP 2
#define RUNS 10

typedef struct {
    int64_t B, Ch, L, N;
} shape;

static const shape default_shapes[] = {
    {1, 768, 196, 16},  /* ViM2-T stage 3, batch 1 */
    {1, 1536, 1024, 16}, /* a long sequence */
    {8, 512, 720, 16},  /* TSM2 long horizon */
    {1, 768, 3136, 16}, /* a 56 x 56 grid */
};

typedef struct {
    double median_ms, min_ms, max_ms;
} times;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static times summarise(double *ms, int n) {
    qsort(ms, (size_t)n, sizeof *ms, by_value);
    return (times){ms[n / 2], ms[0], ms[n - 1]};
}

/* ---- the C loop peers ------------------------------------------------------------------ */

typedef void (*scan_fn)(const scan_args *a, int64_t c0, int64_t c1);

typedef struct {
    scan_fn fn;
    const scan_args *a;
    int64_t c0, c1;
} share;

static void *run_share(void *arg) {
    share *s = arg;
    s->fn(s->a, s->c0, s->c1);
    return NULL;
}

/* fn over the channels, split into `threads` contiguous shares. */
static void run_loop(scan_fn fn, const scan_args *a, int threads) {
    pthread_t tid[64];
    share sh[64];
    for (int i = 0; i < threads; i++) {
        sh[i] = (share){fn, a, a->Ch * i / threads, a->Ch * (i + 1) / threads};
        if (i > 0)
            pthread_create(&tid[i], NULL, run_share, &sh[i]);
    }
    run_share(&sh[0]);
    for (int i = 1; i < threads; i++)
        pthread_join(tid[i], NULL);
}

static times time_loop(scan_fn fn, const scan_args *a, int threads) {
    double ms[RUNS];
    for (int i = 0; i < WARMUP; i++)
        run_loop(fn, a, threads);
    for (int i = 0; i < RUNS; i++) {
        double t0 = now_s();
        run_loop(fn, a, threads);
        ms[i] = (now_s() - t0) * 1e3;
    }
    return summarise(ms, RUNS);
}

/* ---- the floor: this host's exp rate and copy bandwidth ----------------------------------- */

/* exps per second on one thread: the fast-math loop's vector expf over an
 * array in L1, the best rate a compiler gets here. */
static double exp_rate(void) {
    enum { n = 4096 };
    static float x[n], y[n];
    for (int i = 0; i < n; i++)
        x[i] = -10.0f * i / n;
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        for (int k = 0; k < 2000; k++) {
            x[k % n] += y[(k * 7) % n] * 1e-30f; /* keeps the loop from being hoisted */
            scan_exp_fast(x, y, n);
        }
        double rate = 2000.0 * n / (now_s() - t0);
        best = rate > best ? rate : best;
    }
    return best;
}

/* Bytes per second of a 256 MB memcpy (read + write), all threads' worth. */
static double copy_bandwidth(void) {
    size_t bytes = (size_t)256 << 20;
    char *src = malloc(bytes), *dst = malloc(bytes);
    if (!src || !dst) {
        free(src), free(dst);
        return 0;
    }
    memset(src, 1, bytes);
    memset(dst, 2, bytes);
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_s();
        memcpy(dst, src, bytes);
        double bw = 2.0 * bytes / (now_s() - t0);
        best = bw > best ? bw : best;
    }
    free(src), free(dst);
    return best;
}

/* ---- mixc ------------------------------------------------------------------------------------ */

static mx_graph *scan_graph(const shape *s, mx_diag *d) {
    long long B = s->B, Ch = s->Ch, L = s->L, N = s->N;
    char text[2048];
    snprintf(text, sizeof text,
             "graph scan_%lld_%lld_%lld_%lld {\n"
             "  %%u = input() : f32[%lld,%lld,%lld]\n"
             "  %%dt = input() : f32[%lld,%lld,%lld]\n"
             "  %%A = param() : f32[%lld,%lld]\n"
             "  %%B = input() : f32[%lld,1,%lld,%lld]\n"
             "  %%C = input() : f32[%lld,1,%lld,%lld]\n"
             "  %%D = param() : f32[%lld]\n"
             "  %%z = input() : f32[%lld,%lld,%lld]\n"
             "  %%dt_bias = param() : f32[%lld]\n"
             "  %%y = selective_scan(%%u, %%dt, %%A, %%B, %%C, %%D, %%z, %%dt_bias) {softplus=1} : f32[%lld,%lld,%lld]\n"
             "  output %%y\n"
             "}\n",
             B, Ch, L, N, B, Ch, L, B, Ch, L, Ch, N, B, N, L, B, N, L, Ch, B, Ch, L, Ch, B, Ch, L);
    return mx_graph_parse(text, "bench_cpu_scan", d);
}

/* The inputs: A = -(1..N) per channel (S4D-real), dt_bias = -4 (so dt =
 * softplus(x - 4), around 0.02), the rest uniform in [-1, 1). */
typedef struct {
    float *u, *dt, *A, *Bm, *Cm, *D, *z, *dt_bias, *y_loop;
} data;

static float *uniform(int64_t n, uint64_t *state) {
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; x && i < n; i++) {
        *state ^= *state << 13, *state ^= *state >> 7, *state ^= *state << 17;
        x[i] = (float)((*state >> 40) * (2.0 / 16777216.0) - 1.0);
    }
    return x;
}

static bool make_data(const shape *s, data *dd) {
    uint64_t st = 0x243F6A8885A308D3ull;
    int64_t row = s->B * s->Ch * s->L, bc = s->B * s->N * s->L;
    *dd = (data){uniform(row, &st), uniform(row, &st), uniform(s->Ch * s->N, &st), uniform(bc, &st),
                 uniform(bc, &st), uniform(s->Ch, &st), uniform(row, &st), uniform(s->Ch, &st),
                 uniform(row, &st)};
    if (!dd->u || !dd->dt || !dd->A || !dd->Bm || !dd->Cm || !dd->D || !dd->z || !dd->dt_bias || !dd->y_loop)
        return false;
    for (int64_t i = 0; i < s->Ch * s->N; i++)
        dd->A[i] = -(float)(i % s->N + 1);
    for (int64_t i = 0; i < s->Ch; i++)
        dd->dt_bias[i] = -4.0f;
    return true;
}

static void free_data(data *dd) {
    free(dd->u), free(dd->dt), free(dd->A), free(dd->Bm), free(dd->Cm), free(dd->D), free(dd->z);
    free(dd->dt_bias), free(dd->y_loop);
}

/* Compiled for the cpu target with `threads` threads, the inputs given,
 * timed; *err: its output against the plain loop's (max relative, floor 1). */
static mx_status time_mixc(const shape *s, const data *dd, int threads, times *tm, double *err, mx_diag *d) {
    mx_graph *g = scan_graph(s, d);
    if (!g)
        return MX_ERR_INVALID;
    mx_target t;
    mx_status st = mx_target_detect(MX_DEVICE_CPU, &t, d);
    t.threads = threads;
    mx_compiled *c = st == MX_OK ? mx_compile(g, &t, NULL, d) : NULL;
    st = c ? MX_OK : MX_ERR_INVALID;
    const int64_t dims[4][4] = {{s->B, s->Ch, s->L}, {s->Ch, s->N}, {s->B, 1, s->N, s->L}, {s->Ch}};
    const struct {
        const char *name;
        const float *x;
        int rank;
        const int64_t *dims;
        bool param;
    } in[] = {{"u", dd->u, 3, dims[0], false},  {"dt", dd->dt, 3, dims[0], false},
              {"A", dd->A, 2, dims[1], true},   {"B", dd->Bm, 4, dims[2], false},
              {"C", dd->Cm, 4, dims[2], false}, {"D", dd->D, 1, dims[3], true},
              {"z", dd->z, 3, dims[0], false},  {"dt_bias", dd->dt_bias, 1, dims[3], true}};
    for (size_t i = 0; st == MX_OK && i < sizeof in / sizeof *in; i++)
        st = in[i].param ? mx_set_param(c, in[i].name, in[i].x, MX_F32, in[i].rank, in[i].dims, d)
                         : mx_set_input(c, in[i].name, in[i].x, MX_F32, in[i].rank, in[i].dims, d);
    mx_timing tmx;
    if (st == MX_OK)
        st = mx_time(c, WARMUP, RUNS, &tmx, d);
    if (st == MX_OK) {
        *tm = (times){tmx.median_ms, tmx.min_ms, tmx.max_ms};
        const float *y = mx_output(c, "y");
        *err = y ? 0 : INFINITY;
        for (int64_t i = 0; y && i < s->B * s->Ch * s->L; i++) {
            double w = dd->y_loop[i], e = fabs(y[i] - w) / (fabs(w) > 1 ? fabs(w) : 1);
            *err = e > *err || isnan(e) ? e : *err;
        }
    }
    mx_compiled_free(c);
    mx_graph_free(g);
    return st;
}

/* ---- PyTorch ----------------------------------------------------------------------------- */

/* bench/torch_ref.py --scan on the same shape and threads: false when python3
 * or torch is not there. */
static bool time_torch(const shape *s, int threads, times *tm) {
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "python3 %s/bench/torch_ref.py --device cpu --scan %lld,%lld,%lld,%lld --threads %d --runs %d 2>/dev/null",
             MIXC_SOURCE_DIR, (long long)s->B, (long long)s->Ch, (long long)s->L, (long long)s->N, threads,
             RUNS / 2);
    FILE *p = popen(cmd, "r");
    char line[256] = "";
    bool ok = p && fgets(line, sizeof line, p) &&
              sscanf(line, "%lf %lf %lf", &tm->median_ms, &tm->min_ms, &tm->max_ms) == 3;
    if (p)
        ok = pclose(p) == 0 && ok;
    return ok;
}

/* The 1-minute load average (the machine may be shared), -1 where unknown. */
static double load_average(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf", &l) != 1)
        l = -1;
    if (f)
        fclose(f);
    return l;
}

/* ---- the run ---------------------------------------------------------------------------------- */

static void json_times(FILE *f, const char *name, times t, double updates) {
    fprintf(f, ", \"%s\": {\"median_ms\": %.6g, \"min_ms\": %.6g, \"max_ms\": %.6g, \"ns_per_update\": %.4g}", name,
            t.median_ms, t.min_ms, t.max_ms, t.median_ms * 1e6 / updates);
}

static int usage(const char *why) {
    fprintf(stderr, "bench_cpu_scan: %s\nusage: bench_cpu_scan [--shape B,Ch,L,N]... [--threads T]... [--no-torch]\n", why);
    return 2;
}

int main(int argc, char **argv) {
    shape shapes[16];
    int n_shapes = 0, threads_list[8], n_threads = 0;
    bool torch_wanted = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-torch") == 0) {
            torch_wanted = false;
        } else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc) {
            shape *s = &shapes[n_shapes];
            char end;
            if (n_shapes == 16)
                return usage("at most 16 shapes");
            if (sscanf(argv[++i], "%lld,%lld,%lld,%lld%c", (long long *)&s->B, (long long *)&s->Ch,
                       (long long *)&s->L, (long long *)&s->N, &end) != 4 ||
                s->B < 1 || s->Ch < 1 || s->L < 1 || s->N < 1 || s->B * s->Ch * s->L > ((int64_t)1 << 31))
                return usage("--shape wants four positive sizes B,Ch,L,N (B Ch L below 2^31)");
            n_shapes++;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 64 || n_threads == 8)
                return usage("--threads wants 1 to 64 (at most 8 of them)");
            threads_list[n_threads++] = (int)v;
        } else {
            return usage("unknown option");
        }
    }
    if (!n_shapes)
        for (size_t i = 0; i < sizeof default_shapes / sizeof *default_shapes; i++)
            shapes[n_shapes++] = default_shapes[i];
    if (!n_threads)
        threads_list[n_threads++] = 1, threads_list[n_threads++] = 2;
    mx_target t;
    mx_diag d = {{0}};
    if (mx_target_detect(MX_DEVICE_CPU, &t, &d) != MX_OK) {
        fprintf(stderr, "bench_cpu_scan: no CPU backend (%s): nothing measured, no results written\n", d.msg);
        return 1;
    }
    char desc[256], cpu[128], host[256] = "unknown", commit[128], when[64], path[1024], tmp[1100];
    mx_target_describe(&t, desc, sizeof desc);
    bench_cpu_tag(&t, cpu, sizeof cpu);
    gethostname(host, sizeof host - 1);
    bench_git_commit(commit, sizeof commit);
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    snprintf(path, sizeof path, "%s/bench/results/bench_cpu_scan-%s.json", MIXC_SOURCE_DIR, cpu);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "bench_cpu_scan: cannot write %s\n", tmp);
        return 1;
    }
    double rate = exp_rate(), bw = copy_bandwidth();
    printf("%s\nfloor: %.3g exps/s per thread (vector expf, -ffast-math), %.3g GB/s copy\n", desc, rate, bw * 1e-9);
    fprintf(f,
            "{\n  \"benchmark\": \"bench_cpu_scan\",\n  \"machine\": \"%s\",\n  \"cpu\": \"%s\",\n"
            "  \"vector_bits\": %d,\n  \"cores\": %ld,\n  \"date\": \"%s\",\n  \"commit\": \"%s\",\n"
            "  \"exps_per_s_per_thread\": %.4g,\n  \"copy_bytes_per_s\": %.4g,\n"
            "  \"timing\": \"wall time of each forward pass after %d warm-up runs (mx_time; the C loops and PyTorch "
            "timed the same way), median, min and max of %d runs\",\n  \"results\": [",
            host, t.name, t.vector_bits, sysconf(_SC_NPROCESSORS_ONLN), when, commit, rate, bw, WARMUP, RUNS);
    int rc = 0, n_results = 0;
    for (int i = 0; i < n_shapes && rc == 0; i++) {
        const shape *s = &shapes[i];
        data dd;
        if (!make_data(s, &dd)) {
            fprintf(stderr, "bench_cpu_scan: out of memory\n");
            free_data(&dd);
            rc = 1;
            break;
        }
        scan_args a = {s->B, s->Ch, s->L, s->N, dd.u, dd.dt, dd.A, dd.Bm, dd.Cm, dd.D, dd.z, dd.dt_bias, dd.y_loop};
        run_loop(scan_loop_plain, &a, 1); /* the reference output */
        double updates = (double)s->B * s->Ch * s->L * s->N, steps = (double)s->B * s->Ch * s->L;
        double exps = updates + 3 * steps; /* exp(dt A) per update; softplus (exp, log1p) and silu per step */
        double bytes = 4.0 * (4 * steps + 2.0 * s->B * s->N * s->L + s->Ch * (s->N + 2));
        for (int ti = 0; ti < n_threads && rc == 0; ti++) {
            int threads = threads_list[ti];
            times mixc, plain = time_loop(scan_loop_plain, &a, threads), fast = time_loop(scan_loop_fast, &a, threads);
            times torch;
            double err;
            if (time_mixc(s, &dd, threads, &mixc, &err, &d) != MX_OK) {
                fprintf(stderr, "bench_cpu_scan: (%lld, %lld, %lld, %lld): %s\n", (long long)s->B, (long long)s->Ch,
                        (long long)s->L, (long long)s->N, d.msg);
                rc = 1;
                break;
            }
            bool have_torch = torch_wanted && time_torch(s, threads, &torch);
            double floor_ms = fmax(exps / (rate * threads), bytes / bw) * 1e3;
            printf("(%lld,%4lld,%4lld,%lld) %d thr: mixc %8.3f ms %6.3f ns/update (%4.1f%% of floor)  C loop %7.2fx  "
                   "fast-math %6.2fx",
                   (long long)s->B, (long long)s->Ch, (long long)s->L, (long long)s->N, threads, mixc.median_ms,
                   mixc.median_ms * 1e6 / updates, 100 * floor_ms / mixc.median_ms, plain.median_ms / mixc.median_ms,
                   fast.median_ms / mixc.median_ms);
            if (have_torch)
                printf("  torch %7.1fx", torch.median_ms / mixc.median_ms);
            printf("  err %.2g  load %.2f\n", err, load_average());
            fflush(stdout);
            fprintf(f, "%s\n    {\"B\": %lld, \"Ch\": %lld, \"L\": %lld, \"N\": %lld, \"threads\": %d, "
                       "\"exps\": %.6g, \"bytes\": %.6g, \"floor_ms\": %.6g, \"pct_of_floor\": %.4g, "
                       "\"max_rel_err_vs_c_loop\": %.3g, \"load_average\": %.2f",
                    n_results++ ? "," : "", (long long)s->B, (long long)s->Ch, (long long)s->L, (long long)s->N,
                    threads, exps, bytes, floor_ms, 100 * floor_ms / mixc.median_ms, err, load_average());
            json_times(f, "mixc", mixc, updates);
            json_times(f, "c_loop_O3_march_native", plain, updates);
            json_times(f, "c_loop_fast_math", fast, updates);
            if (have_torch)
                json_times(f, "torch_eager_cpu", torch, updates);
            fprintf(f, ", \"speedup_vs_c_loop\": %.4g, \"speedup_vs_fast_math\": %.4g}",
                    plain.median_ms / mixc.median_ms, fast.median_ms / mixc.median_ms);
            if (err > 1e-4) {
                fprintf(stderr, "bench_cpu_scan: mixc's scan differs from the C loop: max relative error %.3g\n", err);
                rc = 1;
            }
        }
        free_data(&dd);
    }
    fprintf(f, "\n  ]\n}\n");
    bool written = fclose(f) == 0 && rc == 0 && rename(tmp, path) == 0;
    if (!written)
        remove(tmp);
    else
        printf("wrote %s\n", path);
    return written ? rc : 1;
}
