/* debug.c: the MIXC_DEBUG level, read once. */
#include <stdlib.h>

#include "ir.h"

int mx_debug_level(void) {
    static int level = -1;
    if (level < 0) {
        const char *s = getenv("MIXC_DEBUG");
        level = s ? atoi(s) : 0;
        if (level < 0)
            level = 0;
    }
    return level;
}
