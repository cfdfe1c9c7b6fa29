/* embed.c: lookup in the table cmake/embed.cmake generates (embed.h). */
#include <string.h>

#include "embed.h"

const char *mx_embedded_text(const char *path) {
    for (const mx_embedded_file *f = mx_embedded_files; f->path; f++)
        if (strcmp(f->path, path) == 0)
            return f->text;
    return NULL;
}
