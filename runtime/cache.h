/* cache.h: the on-disk kernel cache, and compiling through it.
 *
 * A warm start must not pay NVRTC again (about 1 s per model-sized program),
 * so each compiled program is kept as one file, <key>.cubin, in the cache
 * directory: $MIXC_CACHE_DIR, else $XDG_CACHE_HOME/mixc, else ~/.cache/mixc.
 * The key hashes everything that decides the cubin: the source, the program
 * name, the architecture, every NVRTC option, NVRTC's version and mixc's. An
 * entry carries a header with a hash of its payload, so a truncated or damaged
 * file is noticed and rebuilt; entries are written to a temporary file and
 * renamed, so readers never see half a file. MIXC_NO_CACHE=1 turns it off.
 * docs/runtime.md has the details. */
#ifndef MX_CACHE_H
#define MX_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mixc.h"
#include "rtc.h"

/* A 128-bit non-cryptographic hash (MurmurHash3 x64-128): strong enough that
 * accidental collisions between cache keys never happen in practice; it is no
 * defence against someone who can write to the cache directory. */
typedef struct {
    uint64_t lo, hi;
} mx_hash128;

mx_hash128 mx_hash128_bytes(const void *data, size_t len, uint64_t seed);

/* The cache directory into buf (not created); false when the cache is off
 * (MIXC_NO_CACHE set to anything but 0) or no directory can be named. */
bool mx_cache_dir(char *buf, size_t size);

/* mkdir -p dir. */
mx_status mx_make_dirs(const char *dir, mx_diag *d);

/* The key of compiling source as mx_nvrtc_compile would. */
mx_hash128 mx_cache_key(const char *source, const char *name, int sm,
                        const char *const *extra_opts, int n_extra);

typedef enum {
    MX_CACHE_HIT,
    MX_CACHE_MISS,    /* no entry, or one of an older format */
    MX_CACHE_CORRUPT, /* an entry that fails its checks: treated as a miss */
    MX_CACHE_OFF,
} mx_cache_result;

/* The payload stored under key (malloc'd into *bytes) on MX_CACHE_HIT. */
mx_cache_result mx_cache_get(mx_hash128 key, unsigned char **bytes, size_t *len);
/* Stores len bytes under key, replacing any entry atomically; creates the
 * directory. MX_OK without writing when the cache is off. */
mx_status mx_cache_put(mx_hash128 key, const void *bytes, size_t len, mx_diag *d);

/* mx_nvrtc_compile through the cache: the cubin and its resource report come
 * from the cache when there (out->from_cache, no PTX), else are compiled and
 * stored. A failure to store is not an error (MIXC_DEBUG=1 reports it). */
mx_status mx_nvrtc_compile_cached(const char *source, const char *name, int sm,
                                  const char *const *extra_opts, int n_extra, mx_cubin *out,
                                  mx_diag *d);

/* One program of a batch. */
typedef struct {
    const char *source;
    const char *name;
    int sm;
    const char *const *extra_opts;
    int n_extra;
} mx_nvrtc_job;

/* Compiles n programs through the cache into out[0 .. n): hits are read
 * first, then the misses are compiled on min(misses, cores) threads. On the
 * first failure (in job order) nothing is kept: every out[i] is zeroed. */
mx_status mx_nvrtc_compile_many(const mx_nvrtc_job *jobs, int n, mx_cubin *out, mx_diag *d);

#endif
