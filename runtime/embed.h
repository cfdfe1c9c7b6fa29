/* embed.h: source files that travel inside the library.
 *
 * Generated code includes mixc_prelude.h, and under the host emulation the
 * shim and the headers it includes. Their text is compiled into the library
 * (cmake/embed.cmake), so that NVRTC gets the prelude as an in-memory header
 * and the emulation writes the same text beside the source it compiles: an
 * installed mixc works from any directory, with the source tree gone. */
#ifndef MX_EMBED_H
#define MX_EMBED_H

typedef struct {
    const char *path; /* relative to the source root: "runtime/emu/mixc_prelude.h" */
    const char *text;
} mx_embedded_file;

/* Ends with {NULL, NULL}. */
extern const mx_embedded_file mx_embedded_files[];

/* The text of path, or NULL when it is not embedded. */
const char *mx_embedded_text(const char *path);

#endif
