/* json.c: path-aware typed reads over cJSON, and --set overrides. */
#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "json.h"

mx_status js_error(js_ctx *ctx, const char *path, const char *key, const char *fmt, ...) {
    if (ctx->status != MX_OK)
        return ctx->status;
    char where[256];
    if (key)
        snprintf(where, sizeof where, "%s%s%s", path, *path ? "." : "", key);
    else
        snprintf(where, sizeof where, "%s", *path ? path : "(root)");
    char what[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    ctx->status = mx_fail(ctx->diag, MX_ERR_INVALID, "%s: %s", where, what);
    return ctx->status;
}

void js_open(js_ctx *ctx, js_obj *o, const cJSON *json, const char *path) {
    o->ctx = ctx;
    o->json = json;
    o->n_read = 0;
    snprintf(o->path, sizeof o->path, "%s", path);
    if (json && !cJSON_IsObject(json)) {
        char *got = cJSON_PrintUnformatted(json);
        js_error(ctx, path, NULL, "expected an object, got %s", got ? got : "?");
        free(got);
        o->json = NULL;
    }
}

/* Marks key as read and returns its item, NULL when absent. */
static const cJSON *field(js_obj *o, const char *key) {
    if (o->n_read < JS_MAX_FIELDS)
        o->read[o->n_read++] = key;
    if (!o->json || o->ctx->status != MX_OK)
        return NULL;
    return cJSON_GetObjectItemCaseSensitive(o->json, key);
}

void js_close(js_obj *o) {
    if (!o->json || o->ctx->status != MX_OK)
        return;
    for (const cJSON *item = o->json->child; item; item = item->next) {
        /* cJSON keeps both copies of a repeated field and reads the first, so
         * the second would be ignored without a word. */
        for (const cJSON *prev = o->json->child; prev != item; prev = prev->next)
            if (strcmp(prev->string, item->string) == 0) {
                js_error(o->ctx, o->path, item->string, "is given twice");
                return;
            }
        bool known = false;
        for (int i = 0; i < o->n_read && !known; i++)
            known = strcmp(o->read[i], item->string) == 0;
        if (known)
            continue;
        char list[1024] = "";
        size_t n = 0;
        for (int i = 0; i < o->n_read && n < sizeof list; i++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", o->read[i]);
        js_error(o->ctx, o->path, item->string, "unknown field (this object takes: %s)", list);
        return;
    }
}

/* "got ..." text of an item for messages. */
static void describe(const cJSON *item, char *buf, size_t size) {
    char *text = cJSON_PrintUnformatted(item);
    snprintf(buf, size, "%s", text ? text : "?");
    free(text);
}

bool js_has(js_obj *o, const char *key) {
    return o->json && cJSON_GetObjectItemCaseSensitive(o->json, key) != NULL;
}

static void range_text(char *buf, size_t size, double lo, double hi, const char *fmt_one) {
    char a[64], b[64];
    snprintf(a, sizeof a, fmt_one, lo);
    snprintf(b, sizeof b, fmt_one, hi);
    if (hi >= 1e9) /* no useful upper bound: say only the lower one */
        snprintf(buf, size, ">= %s", a);
    else
        snprintf(buf, size, "in [%s, %s]", a, b);
}

int64_t js_int(js_obj *o, const char *key, int64_t def, int64_t lo, int64_t hi) {
    const cJSON *item = field(o, key);
    if (!item)
        return def;
    double v = item->valuedouble;
    if (cJSON_IsNumber(item) && v == floor(v) && v >= (double)lo && v <= (double)hi)
        return (int64_t)v;
    char range[128], got[256];
    range_text(range, sizeof range, (double)lo, (double)hi, "%.0f");
    describe(item, got, sizeof got);
    js_error(o->ctx, o->path, key, "expected an integer %s, got %s", range, got);
    return def;
}

double js_number(js_obj *o, const char *key, double def, double lo, double hi) {
    const cJSON *item = field(o, key);
    if (!item)
        return def;
    if (cJSON_IsNumber(item) && item->valuedouble >= lo && item->valuedouble <= hi)
        return item->valuedouble;
    char range[128], got[256];
    range_text(range, sizeof range, lo, hi, "%g");
    describe(item, got, sizeof got);
    js_error(o->ctx, o->path, key, "expected a number %s, got %s", range, got);
    return def;
}

bool js_bool(js_obj *o, const char *key, bool def) {
    const cJSON *item = field(o, key);
    if (!item)
        return def;
    if (cJSON_IsBool(item))
        return cJSON_IsTrue(item);
    char got[256];
    describe(item, got, sizeof got);
    js_error(o->ctx, o->path, key, "expected true or false, got %s", got);
    return def;
}

const char *js_string(js_obj *o, const char *key, const char *def) {
    const cJSON *item = field(o, key);
    if (!item)
        return def;
    if (cJSON_IsString(item))
        return item->valuestring;
    char got[256];
    describe(item, got, sizeof got);
    js_error(o->ctx, o->path, key, "expected a string, got %s", got);
    return def;
}

static int keyword_index(const cJSON *item, const char *const *names) {
    if (!cJSON_IsString(item))
        return -1;
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], item->valuestring) == 0)
            return i;
    return -1;
}

static void keyword_error(js_obj *o, const char *key, const cJSON *item, const char *const *names) {
    char list[768] = "", got[256];
    size_t n = 0;
    for (int i = 0; names[i] && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s\"%s\"", i ? ", " : "", names[i]);
    describe(item, got, sizeof got);
    js_error(o->ctx, o->path, key, "expected one of %s, got %s", list, got);
}

int js_keyword(js_obj *o, const char *key, int def, const char *const *names) {
    const cJSON *item = field(o, key);
    if (!item)
        return def;
    int k = keyword_index(item, names);
    if (k < 0)
        keyword_error(o, key, item, names);
    return k < 0 ? def : k;
}

int js_keywords(js_obj *o, const char *key, const int *def, int n_def, int *out, int max,
                const char *const *names) {
    const cJSON *item = field(o, key);
    if (!item) {
        memcpy(out, def, (size_t)n_def * sizeof *def);
        return n_def;
    }
    int n = cJSON_GetArraySize(item);
    if (!cJSON_IsArray(item) || n < 1 || n > max) {
        char got[256];
        describe(item, got, sizeof got);
        js_error(o->ctx, o->path, key, "expected a list of 1 to %d keywords, got %s", max, got);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        const cJSON *elem = cJSON_GetArrayItem(item, i);
        out[i] = keyword_index(elem, names);
        if (out[i] < 0) {
            char at[96];
            snprintf(at, sizeof at, "%s[%d]", key, i);
            keyword_error(o, at, elem, names);
            return 0;
        }
    }
    return n;
}

void js_child(js_obj *o, const char *key, js_obj *child) {
    const cJSON *item = field(o, key);
    char path[sizeof o->path + 128];
    snprintf(path, sizeof path, "%s%s%s", o->path, *o->path ? "." : "", key);
    js_open(o->ctx, child, item, path);
}

int js_array_len(js_obj *o, const char *key, int lo, int hi) {
    const cJSON *item = field(o, key);
    int n = item ? cJSON_GetArraySize(item) : 0;
    if (item && cJSON_IsArray(item) && n >= lo && n <= hi)
        return n;
    if (!item && lo == 0)
        return 0;
    if (!item) {
        js_error(o->ctx, o->path, key, "missing (expected a list of %d to %d items)", lo, hi);
        return 0;
    }
    char got[256];
    describe(item, got, sizeof got);
    js_error(o->ctx, o->path, key, "expected a list of %d to %d items, got %s", lo, hi, got);
    return 0;
}

void js_array_obj(js_obj *o, const char *key, int i, js_obj *child) {
    const cJSON *arr = o->json ? cJSON_GetObjectItemCaseSensitive(o->json, key) : NULL;
    char path[sizeof o->path + 128];
    snprintf(path, sizeof path, "%s%s%s[%d]", o->path, *o->path ? "." : "", key, i);
    js_open(o->ctx, child, arr ? cJSON_GetArrayItem(arr, i) : NULL, path);
}

/* ---- overrides ------------------------------------------------------------ */

/* One step of an override path: a field name or an [index]. */
typedef struct {
    char key[96]; /* "" for an index step */
    long index;
} path_step;

static mx_status parse_path(const char *assignment, const char *eq, path_step *steps, int *n,
                            int max, mx_diag *diag) {
    const char *p = assignment;
    *n = 0;
    while (p < eq) {
        if (*n == max)
            return mx_fail(diag, MX_ERR_INVALID, "--set %s: path too deep", assignment);
        path_step *s = &steps[(*n)++];
        if (*p == '[') {
            char *end;
            s->key[0] = 0;
            s->index = strtol(p + 1, &end, 10);
            if (end == p + 1 || end >= eq || *end != ']')
                return mx_fail(diag, MX_ERR_INVALID, "--set %s: expected [index] at '%.*s'", assignment,
                               (int)(eq - p), p);
            p = end + 1;
        } else {
            const char *start = p;
            while (p < eq && (isalnum((unsigned char)*p) || *p == '_'))
                p++;
            if (p == start || p - start >= (long)sizeof s->key)
                return mx_fail(diag, MX_ERR_INVALID, "--set %s: expected a field name at '%.*s'",
                               assignment, (int)(eq - start), start);
            snprintf(s->key, sizeof s->key, "%.*s", (int)(p - start), start);
        }
        if (p < eq && *p == '.' && p + 1 == eq)
            return mx_fail(diag, MX_ERR_INVALID, "--set %s: expected a field name after the last '.'",
                           assignment);
        if (p < eq && *p == '.')
            p++;
        else if (p < eq && *p != '[')
            return mx_fail(diag, MX_ERR_INVALID, "--set %s: unexpected '%c' in the path", assignment, *p);
    }
    return MX_OK;
}

mx_status js_override(cJSON *root, const char *assignment, mx_diag *diag) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return mx_fail(diag, MX_ERR_INVALID, "--set %s: expected PATH=VALUE, e.g. stages[2].depth=4",
                       assignment);
    path_step steps[16];
    int n;
    mx_status st = parse_path(assignment, eq, steps, &n, 16, diag);
    if (st != MX_OK)
        return st;
    cJSON *node = root;
    for (int i = 0; i < n; i++) {
        const path_step *s = &steps[i];
        bool last = i == n - 1;
        cJSON *next;
        if (s->key[0]) {
            if (!cJSON_IsObject(node))
                return mx_fail(diag, MX_ERR_INVALID, "--set %s: '%s' follows something that is not an object",
                               assignment, s->key);
            next = cJSON_GetObjectItemCaseSensitive(node, s->key);
            if (!next && !last && steps[i + 1].key[0]) /* a missing section: create it */
                cJSON_AddItemToObject(node, s->key, next = cJSON_CreateObject());
            else if (!next && !last)
                return mx_fail(diag, MX_ERR_INVALID, "--set %s: the spec has no list '%s' there",
                               assignment, s->key);
        } else {
            int count = cJSON_IsArray(node) ? cJSON_GetArraySize(node) : -1;
            if (count < 0)
                return mx_fail(diag, MX_ERR_INVALID, "--set %s: [%ld] follows something that is not a list",
                               assignment, s->index);
            if (s->index < 0 || s->index >= count)
                return mx_fail(diag, MX_ERR_INVALID, "--set %s: index %ld is out of range (the list has %d items)",
                               assignment, s->index, count);
            next = cJSON_GetArrayItem(node, (int)s->index);
        }
        if (!last) {
            node = next;
            continue;
        }
        /* The whole value must be JSON: plain cJSON_Parse stops after a
         * prefix, which would turn `name=1st` into 1. */
        cJSON *value = cJSON_ParseWithOpts(eq + 1, NULL, 1);
        if (!value) /* not JSON: take the text as a string, so `order=row` works */
            value = cJSON_CreateString(eq + 1);
        if (!s->key[0])
            cJSON_ReplaceItemInArray(node, (int)s->index, value);
        else if (next)
            cJSON_ReplaceItemInObjectCaseSensitive(node, s->key, value);
        else
            cJSON_AddItemToObject(node, s->key, value);
    }
    return MX_OK;
}
