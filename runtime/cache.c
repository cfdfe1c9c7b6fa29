/* cache.c: the on-disk kernel cache and the compile calls that use it (see
 * cache.h). */
#include "cache.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ir.h"

/* An entry file: a header, then the payload.
 *   0  magic "mixcbin\0"     8  format (u32)       12 0 (u32)
 *   16 key lo, hi (u64 x 2)  32 payload length     40 payload hash lo, hi
 * All little-endian. The key repeats the file name so that a renamed file is
 * not taken for another entry. Bump ENTRY_FORMAT when the layout of the header
 * or of the cubin payload changes: old entries then read as misses. */
#define ENTRY_MAGIC "mixcbin"
#define ENTRY_FORMAT 1u
#define HEADER_BYTES 56
#define PATH_BYTES 4096
#define KEY_SEED 0x6d697863ull     /* "mixc" */
#define PAYLOAD_SEED 0x63756269ull /* another seed, so payload and key hashes differ */

/* ---- hashing ---------------------------------------------------------------- */

static uint64_t load64(const unsigned char *p) {
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--)
        x = x << 8 | p[i];
    return x;
}

static uint32_t load32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void store64(unsigned char *p, uint64_t x) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(x >> 8 * i);
}

static void store32(unsigned char *p, uint32_t x) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(x >> 8 * i);
}

static uint64_t rotl64(uint64_t x, int r) {
    return x << r | x >> (64 - r);
}

static uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    return k ^ k >> 33;
}

/* Austin Appleby's MurmurHash3_x64_128 (public domain), byte-order independent. */
mx_hash128 mx_hash128_bytes(const void *data, size_t len, uint64_t seed) {
    const uint64_t c1 = 0x87c37b91114253d5ull, c2 = 0x4cf5ad432745937full;
    const unsigned char *p = data;
    uint64_t h1 = seed, h2 = seed, k1, k2;
    size_t blocks = len / 16;
    for (size_t i = 0; i < blocks; i++, p += 16) {
        k1 = load64(p) * c1;
        h1 ^= rotl64(k1, 31) * c2;
        h1 = (rotl64(h1, 27) + h2) * 5 + 0x52dce729;
        k2 = load64(p + 8) * c2;
        h2 ^= rotl64(k2, 33) * c1;
        h2 = (rotl64(h2, 31) + h1) * 5 + 0x38495ab5;
    }
    size_t rest = len & 15;
    k1 = k2 = 0;
    for (size_t i = rest; i > 8; i--)
        k2 ^= (uint64_t)p[i - 1] << 8 * (i - 9);
    for (size_t i = rest < 8 ? rest : 8; i > 0; i--)
        k1 ^= (uint64_t)p[i - 1] << 8 * (i - 1);
    if (rest > 8)
        h2 ^= rotl64(k2 * c2, 33) * c1;
    if (rest > 0)
        h1 ^= rotl64(k1 * c1, 31) * c2;
    h1 ^= len;
    h2 ^= len;
    h1 += h2;
    h2 += h1;
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 += h2;
    h2 += h1;
    return (mx_hash128){h1, h2};
}

/* Folds one field into acc: hashing each field on its own and then the pair
 * (acc, field hash) keeps field boundaries unambiguous without a copy. */
static void key_mix(mx_hash128 *acc, const void *data, size_t len) {
    mx_hash128 f = mx_hash128_bytes(data, len, KEY_SEED);
    unsigned char b[32];
    store64(b, acc->lo);
    store64(b + 8, acc->hi);
    store64(b + 16, f.lo);
    store64(b + 24, f.hi);
    *acc = mx_hash128_bytes(b, sizeof b, KEY_SEED);
}

static void key_mix_str(mx_hash128 *acc, const char *s) {
    key_mix(acc, s, strlen(s));
}

mx_hash128 mx_cache_key(const char *source, const char *name, int sm,
                        const char *const *extra_opts, int n_extra) {
    char versions[96];
    int major, minor;
    mx_nvrtc_version(&major, &minor);
    snprintf(versions, sizeof versions, "mixc %s, entry format %u, NVRTC %d.%d, sm_%d, %d options",
             MIXC_VERSION, ENTRY_FORMAT, major, minor, sm, MX_NVRTC_N_FIXED_OPTS + n_extra);
    mx_hash128 acc = {0, 0};
    key_mix_str(&acc, versions);
    for (int i = 0; i < MX_NVRTC_N_FIXED_OPTS; i++)
        key_mix_str(&acc, mx_nvrtc_fixed_opts[i]);
    for (int i = 0; i < n_extra; i++)
        key_mix_str(&acc, extra_opts[i]);
    key_mix_str(&acc, name);
    key_mix_str(&acc, source);
    return acc;
}

/* ---- where entries live ------------------------------------------------------- */

static bool env_set(const char *name) {
    const char *s = getenv(name);
    return s && *s && strcmp(s, "0") != 0;
}

bool mx_cache_dir(char *buf, size_t size) {
    const char *s;
    int n;
    if (env_set("MIXC_NO_CACHE"))
        return false;
    if ((s = getenv("MIXC_CACHE_DIR")) && *s)
        n = snprintf(buf, size, "%s", s);
    else if ((s = getenv("XDG_CACHE_HOME")) && *s == '/') /* the spec ignores relative ones */
        n = snprintf(buf, size, "%s/mixc", s);
    else if ((s = getenv("HOME")) && *s)
        n = snprintf(buf, size, "%s/.cache/mixc", s);
    else
        return false;
    return n > 0 && (size_t)n < size;
}

/* dir/<key>.cubin; false when the cache is off. */
static bool entry_path(mx_hash128 key, char *path, size_t size) {
    char dir[PATH_BYTES];
    if (!mx_cache_dir(dir, sizeof dir))
        return false;
    int n = snprintf(path, size, "%s/%016llx%016llx.cubin", dir, (unsigned long long)key.hi,
                     (unsigned long long)key.lo);
    return n > 0 && (size_t)n < size;
}

mx_status mx_make_dirs(const char *dir, mx_diag *d) {
    char buf[PATH_BYTES];
    snprintf(buf, sizeof buf, "%s", dir);
    int err = 0;
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p)
            continue;
        char c = *p;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            err = errno;
        *p = c;
        if (!c)
            break;
    }
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return MX_OK;
    return mx_fail(d, MX_ERR_IO, "%s: error: cannot create the kernel cache directory: %s", dir,
                   strerror(err ? err : ENOTDIR));
}

/* ---- entries ------------------------------------------------------------------ */

/* Reads the entry open as f; on MX_CACHE_CORRUPT, *why says what is wrong. */
static mx_cache_result read_entry(FILE *f, mx_hash128 key, unsigned char **bytes, size_t *len, const char **why) {
    unsigned char h[HEADER_BYTES];
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        *why = "not a regular file";
        return MX_CACHE_CORRUPT;
    }
    if (fread(h, 1, sizeof h, f) != sizeof h) {
        *why = "shorter than its header";
        return MX_CACHE_CORRUPT;
    }
    if (memcmp(h, ENTRY_MAGIC, 8) != 0) {
        *why = "not a mixc cache entry (bad magic)";
        return MX_CACHE_CORRUPT;
    }
    if (load32(h + 8) != ENTRY_FORMAT)
        return MX_CACHE_MISS;
    uint64_t n = load64(h + 32);
    if (load64(h + 16) != key.lo || load64(h + 24) != key.hi) {
        *why = "holds another key";
        return MX_CACHE_CORRUPT;
    }
    if (n != (uint64_t)st.st_size - HEADER_BYTES) {
        *why = "truncated or extended (its length disagrees with its header)";
        return MX_CACHE_CORRUPT;
    }
    unsigned char *p = malloc(n ? (size_t)n : 1);
    if (!p)
        return MX_CACHE_MISS;
    mx_hash128 sum = {0, 0};
    if (fread(p, 1, (size_t)n, f) == n)
        sum = mx_hash128_bytes(p, (size_t)n, PAYLOAD_SEED);
    if (sum.lo != load64(h + 40) || sum.hi != load64(h + 48)) {
        free(p);
        *why = "damaged (its checksum disagrees)";
        return MX_CACHE_CORRUPT;
    }
    *bytes = p;
    *len = (size_t)n;
    return MX_CACHE_HIT;
}

/* mx_cache_get, saying why an entry is corrupt (path and why filled). O_NONBLOCK:
 * a FIFO or a device at an entry's path must not block the open; fstat then
 * refuses anything but a regular file. */
static mx_cache_result get_entry(mx_hash128 key, unsigned char **bytes, size_t *len, char *path, size_t size,
                                 const char **why) {
    *bytes = NULL;
    *len = 0;
    if (!entry_path(key, path, size))
        return MX_CACHE_OFF;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) /* no entry, or no directory yet */
            return MX_CACHE_MISS;
        *why = strerror(errno);
        return MX_CACHE_CORRUPT;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return MX_CACHE_MISS;
    }
    mx_cache_result r = read_entry(f, key, bytes, len, why);
    fclose(f);
    return r;
}

mx_cache_result mx_cache_get(mx_hash128 key, unsigned char **bytes, size_t *len) {
    char path[PATH_BYTES];
    const char *why;
    return get_entry(key, bytes, len, path, sizeof path, &why);
}

mx_status mx_cache_put(mx_hash128 key, const void *bytes, size_t len, mx_diag *d) {
    char dir[PATH_BYTES], path[PATH_BYTES], tmp[PATH_BYTES];
    if (!mx_cache_dir(dir, sizeof dir) || !entry_path(key, path, sizeof path))
        return MX_OK;
    MX_TRY(mx_make_dirs(dir, d));
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp); /* unique per writer: concurrent puts never share a file */
    if (fd < 0)
        return mx_fail(d, MX_ERR_IO, "%s: error: cannot create: %s", tmp, strerror(errno));
    unsigned char h[HEADER_BYTES] = ENTRY_MAGIC;
    mx_hash128 sum = mx_hash128_bytes(bytes, len, PAYLOAD_SEED);
    store32(h + 8, ENTRY_FORMAT);
    store64(h + 16, key.lo);
    store64(h + 24, key.hi);
    store64(h + 32, len);
    store64(h + 40, sum.lo);
    store64(h + 48, sum.hi);
    FILE *f = fdopen(fd, "wb");
    bool ok = f && fwrite(h, 1, sizeof h, f) == sizeof h && fwrite(bytes, 1, len, f) == len;
    int err = errno;
    if (f ? fclose(f) != 0 : close(fd) != 0)
        ok = false;
    /* rename is atomic: a reader sees the old entry or the whole new one. */
    if (ok && rename(tmp, path) == 0)
        return MX_OK;
    err = ok ? errno : err;
    unlink(tmp);
    return mx_fail(d, MX_ERR_IO, "%s: error: cannot write the kernel cache entry: %s", path,
                   strerror(err));
}

/* ---- a cubin as a payload ---------------------------------------------------------
 * u32 kernel count; per kernel u32 name length, the name, then six i32
 * (registers, spill stores, spill loads, stack frame, smem, barriers); u64 cubin
 * length and the cubin. */

#define USAGE_FIELDS 6

static void usage_fields(mx_kernel_usage *k, int *f[USAGE_FIELDS]) {
    f[0] = &k->registers;
    f[1] = &k->spill_stores;
    f[2] = &k->spill_loads;
    f[3] = &k->stack_frame;
    f[4] = &k->smem;
    f[5] = &k->barriers;
}

static unsigned char *encode_cubin(const mx_cubin *c, size_t *len) {
    size_t n = 4 + 8 + c->cubin_len;
    for (int i = 0; i < c->n_kernels; i++)
        n += 4 + strlen(c->kernels[i].name) + 4 * USAGE_FIELDS;
    unsigned char *buf = malloc(n), *p = buf;
    if (!buf)
        return NULL;
    store32(p, (uint32_t)c->n_kernels);
    p += 4;
    for (int i = 0; i < c->n_kernels; i++) {
        int *f[USAGE_FIELDS];
        usage_fields(&c->kernels[i], f);
        size_t name_len = strlen(c->kernels[i].name);
        store32(p, (uint32_t)name_len);
        memcpy(p + 4, c->kernels[i].name, name_len);
        p += 4 + name_len;
        for (int j = 0; j < USAGE_FIELDS; j++, p += 4)
            store32(p, (uint32_t)*f[j]);
    }
    store64(p, c->cubin_len);
    memcpy(p + 8, c->cubin, c->cubin_len);
    *len = n;
    return buf;
}

/* The next n bytes of [*p, end), or NULL when there are fewer. */
static const unsigned char *take(const unsigned char **p, const unsigned char *end, uint64_t n) {
    const unsigned char *at = *p;
    if ((uint64_t)(end - at) < n)
        return NULL;
    *p = at + n;
    return at;
}

/* The checksum makes a malformed payload unlikely, but it is still parsed
 * with every length checked. */
static bool decode_cubin(const unsigned char *buf, size_t len, mx_cubin *c) {
    const unsigned char *p = buf, *end = buf + len, *at;
    if (!(at = take(&p, end, 4)) || load32(at) > len / (4 + 4 * USAGE_FIELDS))
        return false;
    int n = (int)load32(at);
    /* Names stay NULL until read, so mx_cubin_free can undo a partial decode. */
    if (!(c->kernels = calloc(n ? (size_t)n : 1, sizeof *c->kernels)))
        return false;
    c->n_kernels = n;
    for (int i = 0; i < n; i++) {
        mx_kernel_usage *k = &c->kernels[i];
        const unsigned char *name;
        int *f[USAGE_FIELDS];
        if (!(at = take(&p, end, 4)))
            return false;
        uint32_t name_len = load32(at);
        if (!(name = take(&p, end, name_len)) || !(k->name = malloc(name_len + 1u)))
            return false;
        memcpy(k->name, name, name_len);
        k->name[name_len] = 0;
        usage_fields(k, f);
        for (int j = 0; j < USAGE_FIELDS; j++) {
            if (!(at = take(&p, end, 4)))
                return false;
            *f[j] = (int)load32(at);
        }
    }
    if (!(at = take(&p, end, 8)) || load64(at) != (uint64_t)(end - p) || p == end ||
        !(c->cubin = malloc((size_t)(end - p))))
        return false;
    c->cubin_len = (size_t)(end - p);
    memcpy(c->cubin, p, c->cubin_len);
    return true;
}

/* ---- compiling through the cache ------------------------------------------------ */

/* out from the cache; false (out zeroed) when it is not there. A corrupt
 * entry costs a compile, not correctness: it is rebuilt (the new entry
 * replaces it by rename) and reported when asked (MIXC_DEBUG=1). */
static bool lookup(mx_hash128 key, mx_cubin *out) {
    unsigned char *bytes;
    size_t len;
    char path[PATH_BYTES];
    const char *why = NULL;
    memset(out, 0, sizeof *out);
    mx_cache_result r = get_entry(key, &bytes, &len, path, sizeof path, &why);
    bool ok = r == MX_CACHE_HIT && decode_cubin(bytes, len, out);
    free(bytes);
    if (r == MX_CACHE_HIT && !ok) {
        mx_cubin_free(out);
        why = "its payload is not a compiled program";
    }
    if (why && mx_debug_level() >= 1)
        fprintf(stderr, "mixc: kernel cache: %s: %s; compiling again\n", path, why);
    out->from_cache = ok;
    return ok;
}

/* A cache that cannot be written costs time, not correctness: say so only
 * when asked (MIXC_DEBUG=1). */
static void store(mx_hash128 key, const mx_cubin *c) {
    size_t len;
    unsigned char *bytes = encode_cubin(c, &len);
    mx_diag d = {{0}};
    if (!bytes)
        mx_fail(&d, MX_ERR_NOMEM, "out of memory encoding a cache entry");
    else
        mx_cache_put(key, bytes, len, &d);
    free(bytes);
    if (d.msg[0] && mx_debug_level() >= 1)
        fprintf(stderr, "mixc: kernel cache: %s\n", d.msg);
}

mx_status mx_nvrtc_compile_cached(const char *source, const char *name, int sm,
                                  const char *const *extra_opts, int n_extra, mx_cubin *out,
                                  mx_diag *d) {
    mx_hash128 key = mx_cache_key(source, name, sm, extra_opts, n_extra);
    if (lookup(key, out))
        return MX_OK;
    MX_TRY(mx_nvrtc_compile(source, name, sm, extra_opts, n_extra, out, d));
    store(key, out);
    return MX_OK;
}

/* The misses of a batch, shared by the compiling threads. */
typedef struct {
    const mx_nvrtc_job *jobs;
    mx_cubin *out;
    const int *miss; /* job indices */
    int n_miss;
    atomic_int next;
    mx_status *status; /* per miss */
    mx_diag *diag;     /* per miss */
} batch;

static void *compile_worker(void *arg) {
    batch *b = arg;
    for (int m; (m = atomic_fetch_add(&b->next, 1)) < b->n_miss;) {
        const mx_nvrtc_job *j = &b->jobs[b->miss[m]];
        b->status[m] = mx_nvrtc_compile(j->source, j->name, j->sm, j->extra_opts, j->n_extra,
                                        &b->out[b->miss[m]], &b->diag[m]);
    }
    return NULL;
}

/* Runs compile_worker on up to n_threads threads, this one included. */
static void run_workers(batch *b, int n_threads) {
    pthread_t *t = malloc((size_t)n_threads * sizeof *t);
    int started = 0;
    while (t && started < n_threads - 1 && pthread_create(&t[started], NULL, compile_worker, b) == 0)
        started++;
    compile_worker(b);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    free(t);
}

mx_status mx_nvrtc_compile_many(const mx_nvrtc_job *jobs, int n, mx_cubin *out, mx_diag *d) {
    mx_hash128 *keys = malloc((n ? (size_t)n : 1) * sizeof *keys);
    int *miss = malloc((n ? (size_t)n : 1) * sizeof *miss);
    batch b = {.jobs = jobs, .out = out, .miss = miss};
    atomic_init(&b.next, 0);
    mx_status st = MX_OK;
    memset(out, 0, (size_t)n * sizeof *out);
    if (!keys || !miss) {
        st = mx_fail(d, MX_ERR_NOMEM, "out of memory compiling %d programs", n);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        keys[i] = mx_cache_key(jobs[i].source, jobs[i].name, jobs[i].sm, jobs[i].extra_opts,
                               jobs[i].n_extra);
        if (!lookup(keys[i], &out[i]))
            miss[b.n_miss++] = i;
    }
    b.status = calloc(b.n_miss ? (size_t)b.n_miss : 1, sizeof *b.status);
    b.diag = calloc(b.n_miss ? (size_t)b.n_miss : 1, sizeof *b.diag);
    if (!b.status || !b.diag) {
        st = mx_fail(d, MX_ERR_NOMEM, "out of memory compiling %d programs", n);
        goto done;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    run_workers(&b, (int)(cores < 1 ? 1 : cores < b.n_miss ? cores : b.n_miss));
    for (int m = 0; m < b.n_miss && st == MX_OK; m++)
        if ((st = b.status[m]) != MX_OK && d)
            *d = b.diag[m];
    for (int m = 0; m < b.n_miss && st == MX_OK; m++)
        store(keys[miss[m]], &out[miss[m]]);
done:
    if (st != MX_OK)
        for (int i = 0; i < n; i++)
            mx_cubin_free(&out[i]);
    free(b.status);
    free(b.diag);
    free(keys);
    free(miss);
    return st;
}
