/* cli.h: what the commands of the mixc program share.
 *
 * Each command is a file cli/cmd_NAME.c defining one cli_command: its
 * synopsis, help text, the options it accepts (a table; an option not in it
 * is a usage error) and its entry. cli/commands.def lists them. The commands
 * are thin layers over include/mixc.h: they load a model or graph, choose a
 * target, compile, bind weights and inputs, run, and print.
 *
 * Exit codes (mixc --help says them): 0 success, 1 the work failed (a bad
 * file, a failed compile or run, a mismatch), 2 a usage error. */
#ifndef MX_CLI_H
#define MX_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "mixc.h"

enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

typedef enum {
    CLI_FLAG,  /* --dump */
    CLI_VALUE, /* --device cuda, --device=cuda; the last one given counts */
    CLI_LIST,  /* --set a=1 --set b=2: every one kept, in order */
} cli_kind;

typedef struct {
    const char *name; /* "--device", or "-d" */
    cli_kind kind;
    const char *arg;  /* the value's name in help: "D", "PATH=VALUE" */
    const char *help; /* one or more lines, without the option's name */
} cli_option;

/* Option groups several commands take (cli/common.c); a table ends with
 * {NULL}. */
extern const cli_option cli_model_options[];   /* --set */
extern const cli_option cli_target_options[];  /* --device, --target */
extern const cli_option cli_weight_options[];  /* --seed, --weights */
extern const cli_option cli_prune_options[];   /* --prune-scans */

enum { CLI_MAX_GROUPS = 6, CLI_MAX_ARGS = 256 };

typedef struct cli_command cli_command;

/* A parsed command line. */
typedef struct {
    const cli_command *cmd;
    const char *pos[CLI_MAX_ARGS]; /* positional arguments */
    int n_pos;
    const cli_option *opt[CLI_MAX_ARGS]; /* options in the order given */
    const char *val[CLI_MAX_ARGS];       /* their values (NULL for flags) */
    int n_opt;
} cli_args;

struct cli_command {
    const char *name;
    const char *synopsis; /* "FILE" or "FILE OUT.safetensors" */
    int min_pos, max_pos;
    const char *summary;  /* one line for mixc --help */
    const char *help;     /* what mixc NAME --help prints after the synopsis */
    const cli_option *const groups[CLI_MAX_GROUPS]; /* NULL-terminated */
    int (*run)(const cli_args *a);
};

/* The last value of option name, or NULL when not given. */
const char *cli_value(const cli_args *a, const char *name);
bool cli_flag(const cli_args *a, const char *name);
/* Every value of a list option, in order; returns how many. */
int cli_list(const cli_args *a, const char *name, const char **out, int cap);

/* "mixc: ...\n(see mixc NAME --help)" on stderr; returns CLI_USAGE. */
int cli_usage_error(const cli_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "mixc: ..." on stderr; returns CLI_FAILED. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- the pipeline, as the commands take it (cli/common.c) ------------------------ */

/* What a command works on: a model spec (.json, built with the --set
 * overrides) or a graph in the text IR. */
typedef struct {
    mx_model *model;
    mx_graph *graph;
    const mx_graph *g; /* the model's graph or graph */
    const char *path;
} cli_input;

bool cli_is_spec(const char *path);
/* Loads pos[0]; prints the error and returns false when it does not load. */
bool cli_load(const cli_args *a, cli_input *in);
void cli_unload(cli_input *in);
/* The target of --device (default auto) and --target; says on stderr when
 * auto falls back from the GPU. false (error printed) when none. */
bool cli_target(const cli_args *a, const char *default_device, mx_target *t);
/* The compile options of the command line (--disable-pass, --prune-scans,
 * ...); false (usage error printed) when one is malformed. */
bool cli_compile_options(const cli_args *a, mx_compile_options *o);
/* What --prune-scans EPS left out of c's kernels: per scan group, the
 * scans and their weight, the error bound (docs/scan.md). */
void cli_print_pruned(mx_compiled *c, double eps);
/* in compiled for t under o (cli_compile_options), with params from
 * --weights or the seeded initialisation (--seed) and seeded random inputs;
 * NULL (error printed) on failure. */
mx_compiled *cli_compile(const cli_args *a, const cli_input *in, const mx_target *t, const mx_compile_options *o);
/* The --seed value (default 1); false (usage error printed) when malformed. */
bool cli_seed(const cli_args *a, unsigned long long *seed);
/* --seed, then pos[0] loaded: CLI_OK, or the exit status (error printed). */
int cli_load_seeded(const cli_args *a, cli_input *in, unsigned long long *seed);

/* Per output: shape, checksum (sum of x[i] * (1 + i mod 7) in f64, so a
 * permutation changes it), min / max / mean; every element with dump.
 * Returns how many elements are NaN or Inf (said on the line too). */
int64_t cli_summarise(const mx_graph *g, int value, const float *x, bool dump);

#endif
