/* fuzz.h: what the fuzz targets share.
 *
 * Each fuzz_<name>.c defines LLVMFuzzerTestOneInput. In the fuzz build
 * (MIXC_FUZZ, docs/reliability.md) libFuzzer drives it; in every other build
 * replay.c does, running the inputs saved under tests/fuzz-regressions/<name>/
 * once each, so that whatever the fuzzer once found stays a test. A target
 * aborts (a finding) when mixc breaks a promise: a crash, a sanitizer report,
 * an error without a message, or a round trip that does not round-trip. */
#ifndef MX_FUZZ_H
#define MX_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mixc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* data as a NUL-terminated string (the parsers take text); free it. */
static inline char *fuzz_text(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

/* Inputs that carry a spec and --set overrides (fuzz_spec.c, fuzz_codegen.c):
 * the spec is the text up to the first NUL, and every later NUL starts an
 * override. text is fuzz_text's copy; returns how many (at most cap). */
enum { FUZZ_MAX_OVERRIDES = 16 };

static inline int fuzz_overrides(const char *text, size_t size, const char **out, int cap) {
    int n = 0;
    for (const char *p = text + strlen(text); p < text + size && n < cap; p += strlen(p))
        out[n++] = ++p;
    return n;
}

/* Reports a broken promise and aborts, which libFuzzer saves as a crash. */
#define FUZZ_REQUIRE(cond, ...)                                                           \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "fuzz: %s:%d: %s: ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* Every failed call must say why. */
#define FUZZ_FAILED_WITH_MESSAGE(st, d) FUZZ_REQUIRE((st) == MX_OK || (d).msg[0], "status %d, empty message", (int)(st))

#endif
