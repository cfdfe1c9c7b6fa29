/* zoo_reduced.h: the zoo at a size the reference runs in seconds, for the
 * suites that compare a backend with it (through support.h): batch 1, a
 * 32x32 image and width 16 for vision models, 3 variates of 64 steps for
 * series, 12 tokens otherwise (language models: of 64 ids, two blocks). */
#ifndef MX_ZOO_REDUCED_H
#define MX_ZOO_REDUCED_H

#include <stdio.h>
#include <string.h>

/* Fills set (room for 16) with overrides for the spec at path; returns how many. */
static inline int zoo_reduced_overrides(const char *path, const char **set) {
    FILE *f = fopen(path, "rb");
    char text[8192] = "";
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = 0;
    int k = 0;
    set[k++] = "batch=1";
    if (strstr(text, "\"vision\"")) {
        static const char *const vision[] = {
            "input.image_size=32", "head.classes=10",    "stages[0].width=16", "stages[1].width=16",
            "stages[2].width=16",  "stages[3].width=16", "stages[0].depth=2",  "stages[1].depth=2",
            "stages[2].depth=2",   "stages[3].depth=2"};
        for (size_t i = 0; i < sizeof vision / sizeof *vision; i++)
            set[k++] = vision[i];
    } else if (strstr(text, "\"series\"")) {
        set[k++] = "input.variates=3";
        set[k++] = "input.lookback=64";
        set[k++] = "head.horizon=8";
        set[k++] = "stages[0].width=8";
    } else if (strstr(text, "\"language\"")) {
        set[k++] = "input.length=12";
        set[k++] = "input.vocab=64";
        set[k++] = "stages[0].width=8";
        set[k++] = "stages[0].depth=2";
    } else {
        set[k++] = "input.length=12";
        set[k++] = "stages[0].width=8";
    }
    return k;
}

#endif
