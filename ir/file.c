/* file.c: reading a whole text file, for the IR parser and the spec reader. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* 1 GiB keeps every line and column number of the text in an int. */
#define MAX_FILE ((size_t)1 << 30)

char *mx_read_file(const char *path, size_t *len, mx_diag *d) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        mx_fail(d, MX_ERR_IO, "%s: error: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 1 >= cap) {
            cap = cap ? 2 * cap : 65536;
            char *grown = cap <= MAX_FILE ? realloc(text, cap) : NULL;
            if (!grown) {
                mx_fail(d, MX_ERR_IO, "%s: error: file too large (the limit is 1 GiB)", path);
                break;
            }
            text = grown;
        }
        size_t want = cap - 1 - n, got = fread(text + n, 1, want, f);
        n += got;
        if (got < want)
            break;
    }
    bool ok = n + 1 < cap && !ferror(f);
    if (n + 1 < cap && ferror(f))
        mx_fail(d, MX_ERR_IO, "%s: error: cannot read: %s", path, strerror(errno));
    fclose(f);
    if (!ok) {
        free(text);
        return NULL;
    }
    text[n] = 0;
    *len = n;
    return text;
}
