/* peer_scan.cu: mamba_ssm's forward selective scan timed at one shape, the
 * peer of bench_scan (bench/README.md, "The mamba_ssm peer").
 *
 *   peer_scan B Ch L N f32|bf16 [RUNS]
 *
 * The same problem bench_scan gives mixc: u, dt, z [B, Ch, L] and one group
 * of B, C [B, 1, N, L], all uniform in [-1, 1); A = -(1..N) per channel,
 * dt_bias = -4 with softplus, D uniform; the gated output. Each launch is
 * mamba_ssm's own launcher, selective_scan_fwd_cuda (its tile ladder on L
 * and its 16 specialisations) through peer.h, built from the package's
 * source distribution by build.sh. Each timed launch is preceded by an L2
 * flush (a memset of twice the L2) and timed alone with CUDA events, as
 * mx_time does for mixc. Rows spread over the output
 * are checked against a double-precision loop here. Prints one JSON object
 * on stdout; exit 1 on a CUDA error or a wrong result. */
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "c10_shim.h"
#include "peer.h"

#define CHECK(call)                                                                                              \
    do {                                                                                                         \
        cudaError_t e_ = (call);                                                                                 \
        if (e_ != cudaSuccess) {                                                                                 \
            fprintf(stderr, "peer_scan: %s: %s (line %d)\n", #call, cudaGetErrorString(e_), __LINE__);         \
            exit(1);                                                                                             \
        }                                                                                                        \
    } while (0)

enum { WARMUP = 10, CHECKED_ROWS = 64 };

static uint64_t next_random(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float uniform(uint64_t *s) { return (float)((next_random(s) >> 40) * (2.0 / 16777216.0) - 1.0); }

/* A tensor of n numbers in storage type T: the host's copy holds the values
 * as stored (rounded to T), which the check reads. */
template <typename T> struct tensor {
    std::vector<float> host;
    T *dev = nullptr;
    explicit tensor(size_t n) : host(n) {}
    void upload() {
        std::vector<T> stored(host.size());
        for (size_t i = 0; i < host.size(); i++) {
            stored[i] = T(host[i]);
            host[i] = float(stored[i]);
        }
        CHECK(cudaMalloc(&dev, stored.size() * sizeof(T)));
        CHECK(cudaMemcpy(dev, stored.data(), stored.size() * sizeof(T), cudaMemcpyHostToDevice));
    }
    void download() {
        std::vector<T> stored(host.size());
        CHECK(cudaMemcpy(stored.data(), dev, stored.size() * sizeof(T), cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < host.size(); i++)
            host[i] = float(stored[i]);
    }
    ~tensor() { cudaFree(dev); }
};

struct shape {
    int B, Ch, L, N;
};

template <typename T> static int run(shape s, int runs, const char *dtype) {
    size_t rows = (size_t)s.B * s.Ch, seq = rows * s.L, bc = (size_t)s.B * s.N * s.L;
    tensor<T> u(seq), dt(seq), z(seq), Bm(bc), Cm(bc), out(seq), out_z(seq);
    tensor<float> A((size_t)s.Ch * s.N), D(s.Ch), dt_bias(s.Ch);
    uint64_t seed = 42;
    for (auto *t : {&u, &dt, &z, &Bm, &Cm})
        for (float &v : t->host)
            v = uniform(&seed);
    for (size_t i = 0; i < A.host.size(); i++)
        A.host[i] = -(float)(i % s.N + 1);
    for (float &v : D.host)
        v = uniform(&seed);
    std::fill(dt_bias.host.begin(), dt_bias.host.end(), -4.0f);
    for (auto *t : {&u, &dt, &z, &Bm, &Cm, &out, &out_z})
        t->upload();
    for (auto *t : {&A, &D, &dt_bias})
        t->upload();
    float2 *x = nullptr;
    CHECK(cudaMalloc(&x, mx_peer_scan_states(s.B, s.Ch, s.L, s.N) * sizeof(float)));
    bool bf16 = sizeof(T) == 2;
    char why[256];
    auto launch = [&] {
        if (mx_peer_scan_fwd(bf16, s.B, s.Ch, s.L, s.N, u.dev, dt.dev, A.dev, Bm.dev, Cm.dev, D.dev, z.dev,
                             dt_bias.dev, out.dev, out_z.dev, x, nullptr, why, sizeof why)) {
            fprintf(stderr, "peer_scan: %s\n", why);
            exit(1);
        }
    };

    int device;
    cudaDeviceProp prop;
    CHECK(cudaGetDevice(&device));
    CHECK(cudaGetDeviceProperties(&prop, device));
    size_t flush_bytes = 2 * (size_t)prop.l2CacheSize;
    void *flush = nullptr;
    CHECK(cudaMalloc(&flush, flush_bytes));
    cudaEvent_t start, stop;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
    for (int i = 0; i < WARMUP; i++)
        launch();
    std::vector<float> ms(runs);
    for (int i = 0; i < runs; i++) {
        CHECK(cudaMemsetAsync(flush, i & 0xff, flush_bytes, 0));
        CHECK(cudaEventRecord(start, 0));
        launch();
        CHECK(cudaEventRecord(stop, 0));
        CHECK(cudaEventSynchronize(stop));
        CHECK(cudaEventElapsedTime(&ms[i], start, stop));
    }
    CHECK(cudaDeviceSynchronize());
    std::sort(ms.begin(), ms.end());

    /* Rows spread evenly over (b, c), each against a double loop on the
     * stored inputs; relative error with a floor of 1, as bench_scan's. */
    out_z.download();
    double err = 0;
    int checked = rows < CHECKED_ROWS ? (int)rows : CHECKED_ROWS;
    std::vector<double> h(s.N);
    for (int k = 0; k < checked; k++) {
        size_t r = checked > 1 ? k * (rows - 1) / (checked - 1) : 0; /* first to last, channels varied */
        size_t b = r / s.Ch, c = r % s.Ch;
        std::fill(h.begin(), h.end(), 0.0);
        for (int l = 0; l < s.L; l++) {
            size_t i = r * s.L + l;
            double d = dt.host[i] + (double)dt_bias.host[c];
            d = d <= 20 ? std::log1p(std::exp(d)) : d;
            double y = 0;
            for (int n = 0; n < s.N; n++) {
                size_t bn = (b * s.N + n) * s.L + l;
                h[n] = std::exp(d * A.host[c * s.N + n]) * h[n] + d * Bm.host[bn] * u.host[i];
                y += Cm.host[bn] * h[n];
            }
            y += D.host[c] * u.host[i];
            y *= z.host[i] / (1 + std::exp(-(double)z.host[i]));
            double e = std::fabs(out_z.host[i] - y) / std::max(1.0, std::fabs(y));
            err = std::isnan(e) ? INFINITY : std::max(err, e);
        }
    }
    double tol = sizeof(T) == 4 ? 1e-4 : 2e-2;
    printf("{\"impl\": \"mamba_ssm selective_scan_fwd\", \"gpu\": \"%s\", \"B\": %d, \"Ch\": %d, \"L\": %d, "
           "\"N\": %d, \"dtype\": \"%s\", \"runs\": %d, \"median_ms\": %.6g, \"min_ms\": %.6g, \"max_ms\": %.6g, "
           "\"rows_checked\": %d, \"max_rel_err\": %.3g}\n",
           prop.name, s.B, s.Ch, s.L, s.N, dtype, runs, ms[runs / 2], ms.front(), ms.back(), checked, err);
    cudaFree(x);
    cudaFree(flush);
    if (!(err <= tol)) {
        fprintf(stderr, "peer_scan: mamba_ssm's result is wrong: max relative error %.3g (tolerance %.g)\n", err, tol);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    shape s;
    int runs = argc > 6 ? atoi(argv[6]) : 100;
    if (argc < 6 || argc > 7 || (s.B = atoi(argv[1])) < 1 || (s.Ch = atoi(argv[2])) < 1 ||
        (s.L = atoi(argv[3])) < 1 || (s.N = atoi(argv[4])) < 1 || runs < 1 ||
        (strcmp(argv[5], "f32") && strcmp(argv[5], "bf16"))) {
        fprintf(stderr, "usage: peer_scan B Ch L N f32|bf16 [RUNS]  (bench/README.md)\n");
        return 2;
    }
    return strcmp(argv[5], "f32") ? run<__nv_bfloat16>(s, runs, "bf16") : run<float>(s, runs, "f32");
}
