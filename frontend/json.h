/* json.h: typed reading of a cJSON tree that knows where it is.
 *
 * Every read names its JSON path, so a spec error reads like
 * `stages[2].token_mixer.d_state: expected an integer >= 1, got "16"`.
 * The first error sticks in the context and later reads return defaults, so a
 * reader is a straight list of calls with one status check at the end. An
 * object remembers which fields were read; js_close reports any other field as
 * unknown (a typo must not be ignored). */
#ifndef MX_JSON_H
#define MX_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "mixc.h"

#define JS_MAX_FIELDS 48

typedef struct {
    mx_diag *diag;
    mx_status status;
} js_ctx;

typedef struct {
    js_ctx *ctx;
    const cJSON *json; /* an object, or NULL when absent (every read defaults) */
    char path[192];    /* "" for the root */
    const char *read[JS_MAX_FIELDS];
    int n_read;
} js_obj;

/* Opens json (which must be an object) as path; NULL means absent. */
void js_open(js_ctx *ctx, js_obj *o, const cJSON *json, const char *path);
/* Reports fields that were never read. */
void js_close(js_obj *o);
mx_status js_error(js_ctx *ctx, const char *path, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

bool js_has(js_obj *o, const char *key);
int64_t js_int(js_obj *o, const char *key, int64_t def, int64_t lo, int64_t hi);
double js_number(js_obj *o, const char *key, double def, double lo, double hi);
bool js_bool(js_obj *o, const char *key, bool def);
/* A string field (owned by the cJSON tree), def when absent. */
const char *js_string(js_obj *o, const char *key, const char *def);
/* The index of the keyword in names (NULL-terminated), def when absent. */
int js_keyword(js_obj *o, const char *key, int def, const char *const *names);
/* A list of keywords into out[0..max); returns the count, or n_def copies of
 * def[] when absent. */
int js_keywords(js_obj *o, const char *key, const int *def, int n_def, int *out, int max,
                const char *const *names);
/* An object field as a child reader (absent: child.json is NULL). */
void js_child(js_obj *o, const char *key, js_obj *child);
/* Length of an array field (0 when absent), checked against [lo, hi]. */
int js_array_len(js_obj *o, const char *key, int lo, int hi);
/* Item i of an array of objects as a child reader, path "key[i]". */
void js_array_obj(js_obj *o, const char *key, int i, js_obj *child);

/* Applies one override "path=value" (value is JSON, or else a plain string) to
 * root, creating a missing last object field. */
mx_status js_override(cJSON *root, const char *assignment, mx_diag *diag);

#endif
