/* tune.h: autotuning of the generated kernels' tiles, and the tuning
 * database that keeps what it learns (docs/tune.md).
 *
 * A kernel is known by its identity (mx_kernel.identity): the hash of its
 * function as the device's default tiles generate it, in which the shapes
 * are compiled; a CPU product (a matmul group, tuned by its split over the
 * pool) by mx_gemm_identity. The database is a file of JSON lines,
 * appended to, one record per tuning of one kernel on one target: the
 * target's signature
 * (device kind, name, SM or CPU features, thread count, compiler and mixc
 * versions), every candidate's tiles with its time and spread, whether the
 * times were measured or modelled, and the winner. A compile asks it
 * (mx_tune_tiles): the latest record of the kernel on the same signature,
 * measured before modelled, gives the tiles; a record of another target or
 * version is never used. */
#ifndef MX_TUNE_H
#define MX_TUNE_H

#include <stdio.h>

#include "backend.h"
#include "codegen.h"

/* ---- the database ------------------------------------------------------------------- */

typedef enum {
    MX_CAND_OK,       /* timed (or modelled), output matched the default's */
    MX_CAND_DROPPED,  /* 3x slower than the best after its first runs */
    MX_CAND_MISMATCH, /* its output differed from the default's */
    MX_CAND_INVALID,  /* the emitter or the compiler refused it (limits, resources) */
    MX_CAND_STATUS_COUNT
} mx_cand_status;

extern const char *const mx_cand_status_names[MX_CAND_STATUS_COUNT];

typedef struct {
    mx_tiles tiles;
    mx_cand_status status;
    double ms;     /* median time (measured), or the roofline estimate (modelled) */
    double spread; /* (max - min) / median of its timed runs; 0 when modelled */
    double ratio;  /* its time over the default's, timed side by side; 1 for the default */
    /* Timed in whole forward passes (a kernel's best few, where the device
     * times groups in the pass): the time per pass of its groups and of the
     * groups right after them (ms), and that over the default's in the same
     * round, timed alternately; 0: not timed so. Where set, this decides
     * the winner. The default's (ratio 1) is from the last round that
     * judged the kernel. */
    double pass_ratio, pass_ms;
} mx_tune_candidate;

#define MX_TUNE_MAX_CANDIDATES 96

typedef struct {
    uint64_t kernel;          /* identity under the default tiles */
    uint64_t winner_source;   /* identity of the winner's function: a codegen change shows */
    char label[128];          /* "scan f32[1,384,196] (mx_g12_scan)" */
    char target[256];         /* mx_tune_signature */
    char when[32];            /* UTC, ISO 8601 */
    bool measured;            /* false: ranked by the roofline estimate */
    int winner;               /* index into candidates; candidate 0 is the default */
    double forward;           /* the whole forward pass with every kernel's winner over the defaults'
                               * (a winner stands only when that was 0.98 or less); 0: not timed */
    mx_tune_candidate candidates[MX_TUNE_MAX_CANDIDATES];
    int n_candidates;
    int line;                 /* where it was read (1-based), 0 for a new record */
} mx_tune_record;

typedef struct {
    mx_tune_record *records;
    int n, cap;
    char path[1024];
} mx_tune_db;

/* The signature records are matched by: everything that decides what a
 * kernel's time is besides its source. */
void mx_tune_signature(const mx_target *t, char *buf, size_t size);
/* MIXC_TUNE_DB, else tune.jsonl in the kernel cache directory; false when
 * neither can be named (MIXC_NO_CACHE without MIXC_TUNE_DB). */
bool mx_tune_db_path(char *buf, size_t size);
/* Reads path (a missing file is an empty database). A line that does not
 * parse as a record is skipped, said on warn (NULL: silent) as
 * "path:line: ...". Errors only when the file exists but cannot be read. */
mx_status mx_tune_db_read(const char *path, mx_tune_db *db, FILE *warn, mx_diag *d);
void mx_tune_db_free(mx_tune_db *db);
/* Checks that path can be appended to (creating its directory and the file),
 * before any work is done. */
mx_status mx_tune_db_writable(const char *path, mx_diag *d);
/* Appends r as one line, in one write. */
mx_status mx_tune_db_append(const char *path, const mx_tune_record *r, mx_diag *d);
/* The record a compile uses for kernel on signature: the latest measured
 * one, else (unless measured_only) the latest modelled one; NULL when none. */
const mx_tune_record *mx_tune_db_find(const mx_tune_db *db, uint64_t kernel, const char *signature,
                                      bool measured_only);
/* One line of JSON for r (malloc'd, no newline), and the record of a line. */
char *mx_tune_record_json(const mx_tune_record *r);
mx_status mx_tune_record_parse(const char *line, mx_tune_record *r, mx_diag *d);
/* "threads 1 items 64 tasks 2" and the like: the fields that are set. */
void mx_tiles_describe(const mx_tiles *t, char *buf, size_t size);

/* ---- the search ----------------------------------------------------------------------- */

/* What of a group is tuned: its generated kernel (identity and name the
 * function's), or on the CPU a matmul group's product, whose split over
 * the pool's threads is a knob (identity mx_gemm_identity, name
 * "mx_g<group>_matmul"). */
typedef struct {
    uint64_t identity;
    char name[64];
    mx_fusion kind;
} mx_tune_unit;

/* Whether group g has tiles a tune sets: a kernel's, or a CPU product's
 * split (a GPU's products are cuBLASLt's, with no knob here). */
bool mx_tune_has_knobs(const mx_program *p, const mx_target *t, int g);
/* Group g's unit, its kernel as m holds it; false: nothing of it is tuned. */
bool mx_tune_unit_of(const mx_program *p, const mx_target *t, const mx_module *m, int g, mx_tune_unit *u);

#define MX_TUNE_SPACE_MAX 512

/* The candidates of one kernel (tune_space.c): tiles[0] is the default. */
typedef struct {
    mx_tiles tiles[MX_TUNE_SPACE_MAX];
    int n;
} mx_tune_space;

void mx_tune_space_fill(const mx_program *p, int group, const mx_target *t, const mx_tiles *base, mx_tune_space *s);
/* Indices of the candidates one knob step away from `of` (up to cap). */
int mx_tune_space_neighbours(const mx_tune_space *s, const mx_tiles *of, int *out, int cap);

/* Tests' hooks into mx_tune: candidates added to each kernel's space, a
 * time that replaces the measured one (deterministic searches; a group in
 * the pass takes it too unless `in_pass` says, and the forward pass the sum
 * of its groups' unless `forward` says), and the
 * outputs of each round's forward pass before they are compared with the
 * default's (a wrong kernel, made so, for the gate). */
typedef struct {
    void (*extend)(void *ctx, const mx_program *p, int group, mx_tune_space *s);
    double (*time)(void *ctx, const mx_tiles *t);
    double (*forward)(void *ctx, const mx_tiles *tiles); /* a whole forward pass with tiles (per group) */
    /* group's time inside a forward pass with tiles (per group), any group, matmuls too; NULL: `time`
     * of its tiles for the tuned groups, 0 for the others */
    double (*in_pass)(void *ctx, const mx_tiles *tiles, int group);
    void (*outputs)(void *ctx, const mx_program *p, const mx_tiles *tiles, mx_buffers *out);
    void *ctx;
} mx_tune_hooks;

mx_status mx_tune_hooked(mx_compiled *c, const mx_tune_options *o, const mx_tune_hooks *h, mx_tune_summary *out,
                         mx_diag *d);

/* ---- rounds opened at once (tune_round.c) -------------------------------------------- */

#define MX_TUNE_MAX_JOBS 64

/* One round's program: a copy of the model's with the round's tiles (its
 * own), and the backend's state once opened. It outlives the state. */
typedef struct {
    mx_program program;
    mx_tiles *tiles; /* program.tiles */
    void *state;     /* open when st is MX_OK */
    bool opened;     /* the open was tried: st says how it went */
    mx_status st;
    mx_diag why;     /* why the open failed */
} mx_tune_build;

/* A build of p with a copy of tiles (p->n_groups entries); NULL: out of memory. */
mx_tune_build *mx_tune_build_new(const mx_program *p, const mx_tiles *tiles);
/* Closes b's state (on be) and frees b. */
void mx_tune_build_free(const mx_backend *be, mx_tune_build *b);
/* Opens builds[0 .. n) on be for t, up to jobs at once (threads), each
 * unpruned; each build's st and why say how its open went. */
void mx_tune_open_all(const mx_backend *be, const mx_target *t, mx_tune_build **builds, int n, int jobs);

/* ---- choosing tiles at compile time --------------------------------------------------- */

/* The tiles of every group of p on t (*out: p->n_groups entries, malloc'd):
 * p->tiles when the caller fixed them; else the device's defaults
 * (mx_backend.tiles, or mx_tiles_default), replaced by the database's
 * winner where it has one for the kernel on t's signature, unless
 * MIXC_NO_TUNE is set. MIXC_DEBUG=3 says per group where its tiles came
 * from. A database that cannot be read is said at MIXC_DEBUG=1 and
 * ignored: it never stops a compile. */
mx_status mx_tune_tiles(const mx_program *p, const mx_target *t, mx_tiles **out, mx_diag *d);
/* The device's default tiles for group (mx_backend.tiles, else the cost
 * model's). */
mx_tiles mx_tune_default_tiles(const mx_program *p, const mx_target *t, int group);

#endif
