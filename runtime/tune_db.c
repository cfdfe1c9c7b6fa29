/* tune_db.c: the tuning database, a file of JSON lines (tune.h, docs/tune.md).
 *
 * Append-only: a tuning adds one line per kernel, written with one write()
 * on a descriptor opened O_APPEND, so concurrent tunings interleave whole
 * lines and a crash leaves at most one truncated last line, which the next
 * read skips with a warning. Later lines supersede earlier ones. */
#include "tune.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef MIXC_HAVE_LLVM
#include <llvm-c/Core.h>
#endif

#include "cache.h"
#include "driver.h"
#include "rtc.h"

const char *const mx_cand_status_names[MX_CAND_STATUS_COUNT] = {"ok", "dropped", "mismatch", "invalid"};

/* ---- the signature ------------------------------------------------------------------------ */

void mx_tune_signature(const mx_target *t, char *buf, size_t size) {
    if (t->device == MX_DEVICE_CPU) {
        unsigned major = 0, minor = 0, patch = 0;
#ifdef MIXC_HAVE_LLVM
        LLVMGetVersion(&major, &minor, &patch);
#endif
        snprintf(buf, size, "cpu|%s|%s|%d threads|llvm %u.%u.%u|mixc %s", t->name, t->cpu_features, t->threads,
                 major, minor, patch, MIXC_VERSION);
        return;
    }
    /* emu and cuda share GPU records: the emulation runs the code the GPU
     * gets. A GPU goes by its profile where it has one, so that --target
     * sm_90, h100 and the H100 read off the driver share them (mixc emit
     * --target sm_90 on an H100 takes what was measured there). */
    int major, minor, driver = mx_cuda_driver_version();
    mx_nvrtc_version(&major, &minor);
    char drv[32] = "driver none";
    if (driver > 0)
        snprintf(drv, sizeof drv, "driver %d.%d", driver / 1000, driver % 1000 / 10);
    snprintf(buf, size, "gpu|%s|sm_%d|%d SMs|%s|nvrtc %d.%d|mixc %s", t->profile[0] ? t->profile : t->name, t->sm,
             t->sm_count, drv, major, minor, MIXC_VERSION);
}

bool mx_tune_db_path(char *buf, size_t size) {
    const char *s = getenv("MIXC_TUNE_DB");
    if (s && *s)
        return snprintf(buf, size, "%s", s) < (int)size;
    char dir[900];
    if (!mx_cache_dir(dir, sizeof dir))
        return false;
    return snprintf(buf, size, "%s/tune.jsonl", dir) < (int)size;
}

/* ---- tiles as text -------------------------------------------------------------------------- */

/* The fields of mx_tiles, one table for JSON and descriptions. */
static const struct {
    const char *name;
    size_t offset;
} tile_fields[] = {
    {"threads", offsetof(mx_tiles, threads)},       {"items", offsetof(mx_tiles, items)},
    {"channels", offsetof(mx_tiles, channels)},     {"lanes", offsetof(mx_tiles, lanes_per_state)},
    {"vector", offsetof(mx_tiles, vector)},         {"chunked", offsetof(mx_tiles, chunked)},
    {"min_blocks", offsetof(mx_tiles, min_blocks)}, {"tasks", offsetof(mx_tiles, tasks)},
};
enum { N_TILE_FIELDS = sizeof tile_fields / sizeof *tile_fields };

static int *tile_field(mx_tiles *t, int i) { return (int *)((char *)t + tile_fields[i].offset); }

void mx_tiles_describe(const mx_tiles *t, char *buf, size_t size) {
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < N_TILE_FIELDS && n < size; i++) {
        int v = *tile_field((mx_tiles *)t, i);
        if (v)
            n += (size_t)snprintf(buf + n, size - n, "%s%s %d", n ? " " : "", tile_fields[i].name, v);
    }
    if (!n) /* a CPU product's default: the backend's split */
        snprintf(buf, size, "tasks 0");
}

/* ---- records as JSON ------------------------------------------------------------------------ */

char *mx_tune_record_json(const mx_tune_record *r) {
    cJSON *o = cJSON_CreateObject(), *cands = cJSON_CreateArray();
    char hex[24];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)r->kernel);
    cJSON_AddStringToObject(o, "kernel", hex);
    cJSON_AddStringToObject(o, "label", r->label);
    cJSON_AddStringToObject(o, "target", r->target);
    cJSON_AddStringToObject(o, "when", r->when);
    cJSON_AddBoolToObject(o, "measured", r->measured);
    cJSON_AddNumberToObject(o, "winner", r->winner);
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)r->winner_source);
    cJSON_AddStringToObject(o, "winner_source", hex);
    if (r->forward > 0)
        cJSON_AddNumberToObject(o, "forward", r->forward);
    for (int i = 0; i < r->n_candidates; i++) {
        const mx_tune_candidate *c = &r->candidates[i];
        cJSON *j = cJSON_CreateObject();
        for (int f = 0; f < N_TILE_FIELDS; f++)
            cJSON_AddNumberToObject(j, tile_fields[f].name, *tile_field((mx_tiles *)&c->tiles, f));
        cJSON_AddStringToObject(j, "status", mx_cand_status_names[c->status]);
        cJSON_AddNumberToObject(j, "ms", c->ms);
        cJSON_AddNumberToObject(j, "spread", c->spread);
        cJSON_AddNumberToObject(j, "ratio", c->ratio);
        if (c->pass_ratio > 0) {
            cJSON_AddNumberToObject(j, "pass_ms", c->pass_ms);
            cJSON_AddNumberToObject(j, "pass_ratio", c->pass_ratio);
        }
        cJSON_AddItemToArray(cands, j);
    }
    cJSON_AddItemToObject(o, "candidates", cands);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static bool get_hex(const cJSON *o, const char *key, uint64_t *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    char *end;
    if (!cJSON_IsString(j) || strlen(j->valuestring) != 16)
        return false;
    *out = strtoull(j->valuestring, &end, 16);
    return *end == 0;
}

static bool get_string(const cJSON *o, const char *key, char *buf, size_t size) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(j) && snprintf(buf, size, "%s", j->valuestring) < (int)size;
}

static bool get_number(const cJSON *o, const char *key, double *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(j))
        return false;
    *out = j->valuedouble;
    return true;
}

static bool parse_candidate(const cJSON *j, mx_tune_candidate *c, const char **bad) {
    double v;
    char status[16];
    for (int f = 0; f < N_TILE_FIELDS; f++) {
        if (!get_number(j, tile_fields[f].name, &v) || v < 0 || v > 1 << 20 || v != (int)v)
            return *bad = tile_fields[f].name, false;
        *tile_field(&c->tiles, f) = (int)v;
    }
    if (!get_string(j, "status", status, sizeof status))
        return *bad = "status", false;
    c->status = MX_CAND_STATUS_COUNT;
    for (int s = 0; s < MX_CAND_STATUS_COUNT; s++)
        if (strcmp(status, mx_cand_status_names[s]) == 0)
            c->status = (mx_cand_status)s;
    if (c->status == MX_CAND_STATUS_COUNT)
        return *bad = "status", false;
    if (!get_number(j, "ms", &c->ms) || !get_number(j, "spread", &c->spread) || !get_number(j, "ratio", &c->ratio))
        return *bad = "ms, spread or ratio", false;
    bool in_pass = cJSON_GetObjectItemCaseSensitive(j, "pass_ratio") != NULL; /* optional: only those timed so */
    if (in_pass && (!get_number(j, "pass_ms", &c->pass_ms) || !get_number(j, "pass_ratio", &c->pass_ratio)))
        return *bad = "pass_ms or pass_ratio", false;
    return true;
}

mx_status mx_tune_record_parse(const char *line, mx_tune_record *r, mx_diag *d) {
    memset(r, 0, sizeof *r);
    cJSON *o = cJSON_Parse(line);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return mx_fail(d, MX_ERR_PARSE, "not a JSON object (truncated or damaged line)");
    }
    const char *bad = NULL;
    double winner;
    const cJSON *measured = cJSON_GetObjectItemCaseSensitive(o, "measured");
    const cJSON *cands = cJSON_GetObjectItemCaseSensitive(o, "candidates");
    if (!get_hex(o, "kernel", &r->kernel))
        bad = "kernel";
    else if (!get_hex(o, "winner_source", &r->winner_source))
        bad = "winner_source";
    else if (!get_string(o, "label", r->label, sizeof r->label))
        bad = "label";
    else if (!get_string(o, "target", r->target, sizeof r->target))
        bad = "target";
    else if (!get_string(o, "when", r->when, sizeof r->when))
        bad = "when";
    else if (!cJSON_IsBool(measured))
        bad = "measured";
    else if (!cJSON_IsArray(cands) || cJSON_GetArraySize(cands) < 1 ||
             cJSON_GetArraySize(cands) > MX_TUNE_MAX_CANDIDATES)
        bad = "candidates";
    else if (!get_number(o, "winner", &winner) || winner != (int)winner || winner < 0 ||
             winner >= cJSON_GetArraySize(cands))
        bad = "winner";
    else if (cJSON_GetObjectItemCaseSensitive(o, "forward") &&
             (!get_number(o, "forward", &r->forward) || r->forward < 0))
        bad = "forward"; /* optional: records before the whole-forward check have none */
    if (!bad) {
        r->measured = cJSON_IsTrue(measured);
        r->winner = (int)winner;
        const cJSON *c;
        cJSON_ArrayForEach(c, cands) {
            const char *field = NULL;
            if (!parse_candidate(c, &r->candidates[r->n_candidates], &field)) {
                cJSON_Delete(o);
                return mx_fail(d, MX_ERR_PARSE, "candidate %d: field \"%s\" missing or malformed", r->n_candidates,
                               field);
            }
            r->n_candidates++;
        }
    }
    cJSON_Delete(o);
    if (bad)
        return mx_fail(d, MX_ERR_PARSE, "field \"%s\" missing or malformed", bad);
    if (r->candidates[r->winner].status != MX_CAND_OK)
        return mx_fail(d, MX_ERR_PARSE, "the winner (candidate %d) is %s, not ok", r->winner,
                       mx_cand_status_names[r->candidates[r->winner].status]);
    return MX_OK;
}

/* ---- the file ------------------------------------------------------------------------------- */

static mx_status db_add(mx_tune_db *db, const mx_tune_record *r, mx_diag *d) {
    if (db->n == db->cap) {
        int cap = db->cap ? 2 * db->cap : 16;
        mx_tune_record *grown = realloc(db->records, (size_t)cap * sizeof *grown);
        if (!grown)
            return mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", db->path);
        db->records = grown, db->cap = cap;
    }
    db->records[db->n++] = *r;
    return MX_OK;
}

mx_status mx_tune_db_read(const char *path, mx_tune_db *db, FILE *warn, mx_diag *d) {
    memset(db, 0, sizeof *db);
    snprintf(db->path, sizeof db->path, "%s", path);
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? MX_OK : mx_fail(d, MX_ERR_IO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    mx_status st = MX_OK;
    mx_tune_record *r = malloc(sizeof *r);
    if (!r)
        st = mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", path);
    for (int no = 1; st == MX_OK && (len = getline(&line, &cap, f)) >= 0; no++) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0)
            continue;
        mx_diag why;
        if (mx_tune_record_parse(line, r, &why) != MX_OK) {
            if (warn)
                fprintf(warn, "mixc: %s:%d: skipped: %s\n", path, no, why.msg);
            continue;
        }
        r->line = no;
        st = db_add(db, r, d);
    }
    if (st == MX_OK && ferror(f))
        st = mx_fail(d, MX_ERR_IO, "%s: %s", path, strerror(errno));
    free(r);
    free(line);
    fclose(f);
    if (st != MX_OK)
        mx_tune_db_free(db);
    return st;
}

void mx_tune_db_free(mx_tune_db *db) {
    free(db->records);
    db->records = NULL;
    db->n = db->cap = 0;
}

static mx_status open_append(const char *path, int *fd, mx_diag *d) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    mx_diag why;
    if (slash && slash != dir) {
        *slash = 0;
        if (mx_make_dirs(dir, &why) != MX_OK)
            return mx_fail(d, MX_ERR_IO, "tuning database %s: cannot write: %s", path, why.msg);
    }
    *fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644); /* read: see ends_cut_short */
    return *fd >= 0 ? MX_OK : mx_fail(d, MX_ERR_IO, "tuning database %s: cannot write: %s", path, strerror(errno));
}

mx_status mx_tune_db_writable(const char *path, mx_diag *d) {
    int fd;
    MX_TRY(open_append(path, &fd, d));
    close(fd);
    return MX_OK;
}

/* Whether the file's last line has no newline: a writer killed mid-line. */
static bool ends_cut_short(int fd) {
    struct stat st;
    char last;
    return fstat(fd, &st) == 0 && st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n';
}

mx_status mx_tune_db_append(const char *path, const mx_tune_record *r, mx_diag *d) {
    char *record = mx_tune_record_json(r);
    size_t n = record ? strlen(record) : 0;
    char *line = record ? malloc(n + 2) : NULL;
    if (!line) {
        free(record);
        return mx_fail(d, MX_ERR_NOMEM, "tuning database %s: out of memory", path);
    }
    int fd;
    mx_status st = open_append(path, &fd, d);
    if (st == MX_OK) {
        /* A line cut short is closed first so that it costs only itself (the
         * reader skips it) and this record stays whole; the line goes out in
         * one write. */
        size_t len = 0;
        if (ends_cut_short(fd))
            line[len++] = '\n';
        memcpy(line + len, record, n);
        len += n;
        line[len++] = '\n';
        ssize_t w = write(fd, line, len);
        if (w != (ssize_t)len)
            st = mx_fail(d, MX_ERR_IO, "tuning database %s: writing a record: %s", path,
                         w < 0 ? strerror(errno) : "short write");
        if (close(fd) != 0 && st == MX_OK)
            st = mx_fail(d, MX_ERR_IO, "tuning database %s: %s", path, strerror(errno));
    }
    free(line);
    free(record);
    return st;
}

const mx_tune_record *mx_tune_db_find(const mx_tune_db *db, uint64_t kernel, const char *signature,
                                      bool measured_only) {
    const mx_tune_record *measured = NULL, *modelled = NULL;
    for (int i = 0; i < db->n; i++) {
        const mx_tune_record *r = &db->records[i];
        if (r->kernel != kernel || strcmp(r->target, signature) != 0 || (measured_only && !r->measured))
            continue;
        *(r->measured ? &measured : &modelled) = r;
    }
    return measured ? measured : modelled;
}
