/* text.c: a growing string for generated source. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen.h"

void mx_text_vprintf(mx_text *t, const char *fmt, va_list ap) {
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n > 0) {
        size_t need = t->len + (size_t)n + 1;
        if (need > t->cap) {
            size_t cap = t->cap ? 2 * t->cap : 1024;
            while (cap < need)
                cap *= 2;
            char *s = realloc(t->s, cap);
            if (!s) { /* out of memory: keep what there is; callers check t->oom */
                t->oom = true;
                va_end(again);
                return;
            }
            t->s = s;
            t->cap = cap;
        }
        vsnprintf(t->s + t->len, (size_t)n + 1, fmt, again);
        t->len += (size_t)n;
    }
    va_end(again);
}

void mx_text_printf(mx_text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    mx_text_vprintf(t, fmt, ap);
    va_end(ap);
}

void mx_text_append(mx_text *t, const mx_text *other) {
    if (other->len)
        mx_text_printf(t, "%.*s", (int)other->len, other->s);
}

void mx_text_free(mx_text *t) {
    free(t->s);
    memset(t, 0, sizeof *t);
}
