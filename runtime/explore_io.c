/* explore_io.c: a sweep's results as a table, CSV and JSON; JSON read back
 * and shards merged (explore.h). The three printers show the same numbers:
 * the table rounds them to 4 significant digits in the units of its
 * headers, CSV and JSON give them whole. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "explore.h"
#include "ir.h"

/* The numeric columns: name in CSV and JSON, table header, table scale. */
typedef struct {
    const char *key;
    const char *header;
    double scale;
} column;

enum { COL_PARAMS, COL_FLOPS, COL_BYTES, COL_PEAK, COL_KERNELS, COL_MATMULS, COL_HOST, COL_ESTIMATE, COL_GPU,
       COL_COUNT };

static const column columns[COL_COUNT] = {
    {"params", "params_M", 1e-6},   {"flops", "GFLOP", 1e-9},       {"bytes", "moved_MB", 1e-6},
    {"peak_bytes", "peak_MB", 1e-6}, {"kernels", "kernels", 1},      {"matmuls", "matmuls", 1},
    {"host_ms", "host_ms", 1},      {"estimate_ms", "estimate_ms", 1}, {"gpu_ms", "gpu_ms", 1},
};

static double column_value(const mx_variant *v, int c) {
    switch (c) {
    case COL_PARAMS: return v->params;
    case COL_FLOPS: return v->flops;
    case COL_BYTES: return v->bytes;
    case COL_PEAK: return v->peak_bytes;
    case COL_KERNELS: return v->error ? NAN : v->kernels;
    case COL_MATMULS: return v->error ? NAN : v->matmuls;
    case COL_HOST: return v->host_ms;
    case COL_ESTIMATE: return v->estimate_ms;
    default: return v->gpu_ms;
    }
}

static void set_column(mx_variant *v, int c, double x) {
    switch (c) {
    case COL_PARAMS: v->params = x; break;
    case COL_FLOPS: v->flops = x; break;
    case COL_BYTES: v->bytes = x; break;
    case COL_PEAK: v->peak_bytes = x; break;
    case COL_KERNELS: v->kernels = isnan(x) ? 0 : (int)x; break;
    case COL_MATMULS: v->matmuls = isnan(x) ? 0 : (int)x; break;
    case COL_HOST: v->host_ms = x; break;
    case COL_ESTIMATE: v->estimate_ms = x; break;
    default: v->gpu_ms = x; break;
    }
}

/* A latency column's header: "cpu_ms(measured)", "h100_ms(estimated)". */
static const char *latency_header(const mx_explore *e, int c, char *buf, size_t size) {
    const char *name = c == COL_HOST ? e->host_name : c == COL_ESTIMATE ? e->estimate_name : e->gpu_name;
    if (c < COL_HOST)
        return columns[c].header;
    snprintf(buf, size, "%s_ms(%s)", *name ? name : c == COL_HOST ? "host" : "gpu",
             c == COL_ESTIMATE ? "estimated" : "measured");
    return buf;
}

static void describe(const mx_explore *e, FILE *out) {
    fprintf(out, "# %s: %d of %lld grid points\n", e->spec, e->n_variants, (long long)e->grid_size);
    fprintf(out, "# host (measured): %s\n", *e->host_device ? e->host_device : "not measured");
    fprintf(out, "# estimate (roofline, estimated from the %s): %s\n", e->estimate_method, e->estimate_target);
    fprintf(out, "# gpu (measured): %s\n", *e->gpu_device ? e->gpu_device : "no GPU");
}

void mx_explore_print_table(const mx_explore *e, FILE *out) {
    describe(e, out);
    int width[MX_EXPLORE_MAX_VARY];
    for (int k = 0; k < e->n_paths; k++) {
        width[k] = (int)strlen(e->paths[k]);
        for (int i = 0; i < e->n_variants; i++)
            if ((int)strlen(e->variants[i].values[k]) > width[k])
                width[k] = (int)strlen(e->variants[i].values[k]);
        fprintf(out, "%-*s  ", width[k], e->paths[k]);
    }
    char buf[64];
    for (int c = 0; c < COL_COUNT; c++)
        fprintf(out, "%*s%s", c < COL_HOST ? 9 : 18, latency_header(e, c, buf, sizeof buf), c + 1 < COL_COUNT ? "  " : "\n");
    for (int i = 0; i < e->n_variants; i++) {
        const mx_variant *v = &e->variants[i];
        for (int k = 0; k < e->n_paths; k++)
            fprintf(out, "%-*s  ", width[k], v->values[k]);
        if (v->error) {
            fprintf(out, "failed: %s\n", v->error);
            continue;
        }
        for (int c = 0; c < COL_COUNT; c++) {
            double x = column_value(v, c);
            int w = c < COL_HOST ? 9 : 18;
            if (isnan(x))
                fprintf(out, "%*s", w, "-");
            else
                fprintf(out, "%*.4g", w, x * columns[c].scale);
            fputs(c + 1 < COL_COUNT ? "  " : "\n", out);
        }
    }
}

/* A CSV field, quoted when it holds a comma, a quote or a line break. */
static void csv_field(const char *s, FILE *out) {
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

void mx_explore_print_csv(const mx_explore *e, FILE *out) {
    char buf[64];
    for (int k = 0; k < e->n_paths; k++) {
        csv_field(e->paths[k], out);
        fputc(',', out);
    }
    for (int c = 0; c < COL_COUNT; c++) {
        csv_field(latency_header(e, c, buf, sizeof buf), out);
        fputc(',', out);
    }
    fputs("error\n", out);
    for (int i = 0; i < e->n_variants; i++) {
        const mx_variant *v = &e->variants[i];
        for (int k = 0; k < e->n_paths; k++) {
            csv_field(v->values[k], out);
            fputc(',', out);
        }
        for (int c = 0; c < COL_COUNT; c++) {
            double x = column_value(v, c);
            if (!isnan(x))
                fprintf(out, "%.17g", x);
            fputc(',', out);
        }
        csv_field(v->error ? v->error : "", out);
        fputc('\n', out);
    }
}

/* ---- JSON ----------------------------------------------------------------------- */

static cJSON *to_json(const mx_explore *e) {
    cJSON *root = cJSON_CreateObject();
    cJSON *paths = cJSON_AddArrayToObject(root, "vary");
    cJSON *list = cJSON_AddArrayToObject(root, "variants");
    if (!root || !paths || !list || !cJSON_AddStringToObject(root, "spec", e->spec) ||
        !cJSON_AddNumberToObject(root, "grid_size", (double)e->grid_size)) {
        cJSON_Delete(root);
        return NULL;
    }
    const struct {
        const char *key;
        const char *value;
    } devices[] = {{"host_name", e->host_name},         {"host_device", e->host_device},
                   {"estimate_name", e->estimate_name}, {"estimate_target", e->estimate_target},
                   {"estimate_method", e->estimate_method},
                   {"gpu_name", e->gpu_name},           {"gpu_device", e->gpu_device}};
    bool ok = true;
    for (size_t i = 0; i < sizeof devices / sizeof *devices; i++)
        ok &= cJSON_AddStringToObject(root, devices[i].key, devices[i].value) != NULL;
    for (int k = 0; k < e->n_paths; k++)
        ok &= cJSON_AddItemToArray(paths, cJSON_CreateString(e->paths[k]));
    for (int i = 0; ok && i < e->n_variants; i++) {
        const mx_variant *v = &e->variants[i];
        cJSON *item = cJSON_CreateObject();
        cJSON *values = cJSON_AddObjectToObject(item, "values");
        ok &= item && values && cJSON_AddItemToArray(list, item);
        ok &= cJSON_AddNumberToObject(item, "point", (double)v->point) != NULL;
        for (int k = 0; ok && k < e->n_paths; k++)
            ok &= cJSON_AddStringToObject(values, e->paths[k], v->values[k]) != NULL;
        for (int c = 0; ok && c < COL_COUNT; c++) {
            double x = column_value(v, c);
            ok &= (isnan(x) ? cJSON_AddNullToObject(item, columns[c].key)
                            : cJSON_AddNumberToObject(item, columns[c].key, x)) != NULL;
        }
        ok &= (v->error ? cJSON_AddStringToObject(item, "error", v->error) : cJSON_AddNullToObject(item, "error")) !=
              NULL;
    }
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

void mx_explore_print_json(const mx_explore *e, FILE *out) {
    cJSON *root = to_json(e);
    char *text = root ? cJSON_Print(root) : NULL;
    if (text)
        fprintf(out, "%s\n", text);
    else
        fprintf(stderr, "mixc explore: out of memory writing JSON\n");
    cJSON_free(text);
    cJSON_Delete(root);
}

static char *copy_string(const char *s) {
    char *c = malloc(strlen(s) + 1);
    return c ? strcpy(c, s) : NULL;
}

static const char *string_at(const cJSON *o, const char *key) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(s) ? s->valuestring : NULL;
}

/* Fills e from root; an error names what is missing. */
static mx_status from_json(const cJSON *root, const char *path, mx_explore *e, mx_diag *d) {
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(root, "vary");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "variants");
    const cJSON *grid = cJSON_GetObjectItemCaseSensitive(root, "grid_size");
    const char *spec = string_at(root, "spec");
    if (!cJSON_IsArray(paths) || !cJSON_IsArray(list) || !cJSON_IsNumber(grid) || !spec ||
        cJSON_GetArraySize(paths) < 1 || cJSON_GetArraySize(paths) > MX_EXPLORE_MAX_VARY)
        return mx_fail(d, MX_ERR_PARSE, "%s: not a result of mixc explore --json (spec, vary, grid_size, variants)",
                       path);
    char *const fields[] = {e->host_name, e->host_device, e->estimate_name, e->estimate_target, e->estimate_method,
                            e->gpu_name,  e->gpu_device};
    const char *keys[] = {"host_name",       "host_device", "estimate_name", "estimate_target",
                          "estimate_method", "gpu_name",    "gpu_device"};
    const size_t sizes[] = {sizeof e->host_name,       sizeof e->host_device, sizeof e->estimate_name,
                            sizeof e->estimate_target, sizeof e->estimate_method, sizeof e->gpu_name,
                            sizeof e->gpu_device};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        snprintf(fields[i], sizes[i], "%s", string_at(root, keys[i]) ? string_at(root, keys[i]) : "");
    e->grid_size = (int64_t)grid->valuedouble;
    int n_paths = cJSON_GetArraySize(paths), n = cJSON_GetArraySize(list);
    e->spec = copy_string(spec);
    e->paths = calloc((size_t)n_paths, sizeof *e->paths);
    e->variants = calloc((size_t)n + 1, sizeof *e->variants);
    if (!e->spec || !e->paths || !e->variants)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    for (; e->n_paths < n_paths; e->n_paths++) {
        const cJSON *p = cJSON_GetArrayItem(paths, e->n_paths);
        if (!cJSON_IsString(p))
            return mx_fail(d, MX_ERR_PARSE, "%s: vary[%d]: expected a string", path, e->n_paths);
        if (!(e->paths[e->n_paths] = copy_string(p->valuestring)))
            return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    }
    for (const cJSON *item = list->child; item; item = item->next) {
        mx_variant *v = &e->variants[e->n_variants];
        int at = e->n_variants++;
        const cJSON *point = cJSON_GetObjectItemCaseSensitive(item, "point");
        const cJSON *values = cJSON_GetObjectItemCaseSensitive(item, "values");
        if (!(v->values = calloc((size_t)n_paths, sizeof *v->values)))
            return mx_fail(d, MX_ERR_NOMEM, "out of memory");
        if (!cJSON_IsNumber(point) || !cJSON_IsObject(values))
            return mx_fail(d, MX_ERR_PARSE, "%s: variants[%d]: expected a point and values", path, at);
        v->point = (int64_t)point->valuedouble;
        for (int k = 0; k < n_paths; k++) {
            const char *value = string_at(values, e->paths[k]);
            if (!value)
                return mx_fail(d, MX_ERR_PARSE, "%s: variants[%d].values: no string for %s", path, at, e->paths[k]);
            if (!(v->values[k] = copy_string(value)))
                return mx_fail(d, MX_ERR_NOMEM, "out of memory");
        }
        for (int c = 0; c < COL_COUNT; c++) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(item, columns[c].key);
            set_column(v, c, cJSON_IsNumber(x) ? x->valuedouble : NAN);
        }
        const char *error = string_at(item, "error");
        if (error && !(v->error = copy_string(error)))
            return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    }
    return MX_OK;
}

mx_status mx_explore_read_json(const char *path, mx_explore **out, mx_diag *d) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return mx_fail(d, MX_ERR_IO, "%s: cannot open it", path);
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            char *grown = realloc(text, cap = 2 * cap + 8192);
            if (!grown) {
                free(text);
                fclose(f);
                return mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", path);
            }
            text = grown;
        }
        size_t got = fread(text + len, 1, 4096, f);
        len += got;
        if (got < 4096)
            break;
    }
    bool read_error = ferror(f);
    fclose(f);
    text[len] = 0;
    cJSON *root = read_error ? NULL : cJSON_Parse(text);
    free(text);
    if (!root)
        return mx_fail(d, read_error ? MX_ERR_IO : MX_ERR_PARSE, "%s: %s", path,
                       read_error ? "cannot read it" : "not valid JSON");
    mx_explore *e = calloc(1, sizeof *e);
    mx_status st = e ? from_json(root, path, e, d) : mx_fail(d, MX_ERR_NOMEM, "out of memory");
    cJSON_Delete(root);
    if (st != MX_OK) {
        mx_explore_free(e);
        return st;
    }
    *out = e;
    return MX_OK;
}

/* ---- merging --------------------------------------------------------------------- */

static int by_point(const void *a, const void *b) {
    const mx_variant *x = *(const mx_variant *const *)a, *y = *(const mx_variant *const *)b;
    return (x->point > y->point) - (x->point < y->point);
}

static bool same_sweep(const mx_explore *a, const mx_explore *b) {
    if (strcmp(a->spec, b->spec) != 0 || a->n_paths != b->n_paths || a->grid_size != b->grid_size)
        return false;
    for (int k = 0; k < a->n_paths; k++)
        if (strcmp(a->paths[k], b->paths[k]) != 0)
            return false;
    return true;
}

/* A deep copy of v (n_paths values) into out. */
static bool copy_variant(const mx_variant *v, int n_paths, mx_variant *out) {
    *out = *v;
    out->error = v->error ? copy_string(v->error) : NULL;
    out->values = calloc((size_t)n_paths, sizeof *out->values);
    bool ok = out->values && (!v->error || out->error);
    for (int k = 0; ok && k < n_paths; k++)
        ok = (out->values[k] = copy_string(v->values[k])) != NULL;
    return ok;
}

mx_status mx_explore_merge(mx_explore *const *parts, int n, mx_explore **out, mx_diag *d) {
    *out = NULL;
    if (n < 1)
        return mx_fail(d, MX_ERR_INVALID, "explore --merge: no results to merge");
    int total = 0;
    for (int i = 0; i < n; i++) {
        if (!same_sweep(parts[0], parts[i]))
            return mx_fail(d, MX_ERR_INVALID,
                           "explore --merge: result %d is of another sweep (spec %s, %d varied paths, %lld points; "
                           "the first: spec %s, %d paths, %lld points)",
                           i + 1, parts[i]->spec, parts[i]->n_paths, (long long)parts[i]->grid_size, parts[0]->spec,
                           parts[0]->n_paths, (long long)parts[0]->grid_size);
        total += parts[i]->n_variants;
    }
    const mx_variant **all = malloc(((size_t)total + 1) * sizeof *all);
    if (!all)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    int k = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < parts[i]->n_variants; j++)
            all[k++] = &parts[i]->variants[j];
    qsort(all, (size_t)total, sizeof *all, by_point);
    mx_status st = MX_OK;
    for (int i = 1; i < total && st == MX_OK; i++)
        if (all[i]->point == all[i - 1]->point)
            st = mx_fail(d, MX_ERR_INVALID, "explore --merge: grid point %lld is in two results (shards overlap)",
                         (long long)all[i]->point);
    const mx_explore *first = parts[0];
    mx_explore *e = st == MX_OK ? calloc(1, sizeof *e) : NULL;
    if (st == MX_OK && e) {
        memcpy(e->host_name, first->host_name, sizeof e->host_name);
        memcpy(e->host_device, first->host_device, sizeof e->host_device);
        memcpy(e->estimate_name, first->estimate_name, sizeof e->estimate_name);
        memcpy(e->estimate_target, first->estimate_target, sizeof e->estimate_target);
        memcpy(e->estimate_method, first->estimate_method, sizeof e->estimate_method);
        memcpy(e->gpu_name, first->gpu_name, sizeof e->gpu_name);
        memcpy(e->gpu_device, first->gpu_device, sizeof e->gpu_device);
        e->grid_size = first->grid_size;
        e->spec = copy_string(first->spec);
        e->paths = calloc((size_t)first->n_paths, sizeof *e->paths);
        e->variants = calloc((size_t)total + 1, sizeof *e->variants);
        bool ok = e->spec && e->paths && e->variants;
        for (; ok && e->n_paths < first->n_paths; e->n_paths++)
            ok = (e->paths[e->n_paths] = copy_string(first->paths[e->n_paths])) != NULL;
        for (; ok && e->n_variants < total; e->n_variants++)
            ok = copy_variant(all[e->n_variants], first->n_paths, &e->variants[e->n_variants]);
        if (!ok) /* the loop counted the half-copied variant: it is freed too */
            st = mx_fail(d, MX_ERR_NOMEM, "out of memory");
    } else if (st == MX_OK) {
        st = mx_fail(d, MX_ERR_NOMEM, "out of memory");
    }
    free(all);
    if (st != MX_OK) {
        mx_explore_free(e);
        return st;
    }
    *out = e;
    return MX_OK;
}
