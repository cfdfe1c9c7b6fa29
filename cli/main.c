/* main.c: the mixc program: finds the command, parses its options against
 * the command's table, prints help, and runs it (cli.h). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define X(id) extern const cli_command cli_cmd_##id;
#include "commands.def"
#undef X

static const cli_command *const commands[] = {
#define X(id) &cli_cmd_##id,
#include "commands.def"
#undef X
};
enum { N_COMMANDS = sizeof commands / sizeof *commands };

static const char intro[] =
    "usage: mixc COMMAND [options] FILE ...\n"
    "\n"
    "mixc compiles selective state-space mixer models (Mamba, MambaMixer, ViM2,\n"
    "TSM2, QSMixer) to fused kernels and runs them. FILE is a model spec (.json,\n"
    "docs/spec.md; the zoo is in models/) or a graph in the text IR (.mxir,\n"
    "docs/ir.md).\n"
    "\n"
    "commands:\n";

static const char outro[] =
    "\n"
    "mixc COMMAND --help says what a command does and which options it takes;\n"
    "--opt=value and --opt value both work. Devices: auto (the GPU when there\n"
    "is one, else the CPU), cpu, cuda, emu (generated CUDA under host\n"
    "emulation), ref (the reference interpreter). Targets: a GPU profile to\n"
    "generate code for without that GPU (sm_80, sm_90, a100, h100, h200).\n"
    "The environment: MIXC_DEBUG=1..5, MIXC_THREADS, MIXC_CPU_DISABLE,\n"
    "MIXC_CACHE_DIR, MIXC_NO_CACHE, MIXC_NO_FUSION, MIXC_NO_PLANNER, MIXC_NO_GRAPHS,\n"
    "MIXC_NO_TUNE, MIXC_SYNC (wait after each GPU kernel to name a faulting\n"
    "one), MIXC_DISABLE_PASSES, MIXC_PRINT_AFTER (README, docs/passes.md).\n"
    "\n"
    "exit status: 0 success; 1 the work failed (bad file, compile or run\n"
    "error, mismatch); 2 a usage error. Errors go to stderr.\n";

static void print_help(FILE *out) {
    fputs(intro, out);
    for (int i = 0; i < N_COMMANDS; i++) {
        char head[96];
        snprintf(head, sizeof head, "%s %s", commands[i]->name, commands[i]->synopsis);
        fprintf(out, "  %-34s %s\n", head, commands[i]->summary);
    }
    fputs(outro, out);
}

static void print_command_help(const cli_command *c) {
    printf("usage: mixc %s [options] %s\n\n%s", c->name, c->synopsis, c->help);
    bool any = false;
    for (int g = 0; c->groups[g]; g++)
        for (const cli_option *o = c->groups[g]; o->name; o++) {
            if (!any)
                printf("\noptions:\n");
            any = true;
            char head[64];
            snprintf(head, sizeof head, "%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
            printf("  %-22s ", head);
            for (const char *line = o->help; *line;) { /* continuation lines under the first */
                const char *end = strchr(line, '\n');
                int len = end ? (int)(end - line) : (int)strlen(line);
                printf("%.*s\n", len, line);
                line += len + (end != NULL);
                if (*line)
                    printf("  %-22s ", "");
            }
        }
    printf("  %-22s this text\n", "-h, --help");
}

static const cli_option *find_option(const cli_command *c, const char *name, size_t len) {
    for (int g = 0; c->groups[g]; g++)
        for (const cli_option *o = c->groups[g]; o->name; o++)
            if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
                return o;
    return NULL;
}

/* Whether any command takes an option of this name: to tell "does not
 * apply to this command" from "unknown". */
static bool known_anywhere(const char *name, size_t len) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (find_option(commands[i], name, len))
            return true;
    return false;
}

/* Parses argv[2..] into a; returns CLI_OK, or the exit status to stop with
 * (help printed: -1). */
static int parse(const cli_command *c, int argc, char **argv, cli_args *a) {
    *a = (cli_args){.cmd = c};
    bool only_positional = false;
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        if (only_positional || arg[0] != '-' || arg[1] == 0) {
            if (a->n_pos == c->max_pos)
                return cli_usage_error(a, "unexpected argument '%s'", arg);
            a->pos[a->n_pos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_positional = true;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            print_command_help(c);
            return -1;
        }
        const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const cli_option *o = find_option(c, arg, len);
        if (!o)
            return cli_usage_error(a, known_anywhere(arg, len) ? "option %.*s does not apply to %s"
                                                               : "unknown option '%.*s' for %s",
                                   (int)len, arg, c->name);
        if (a->n_opt == CLI_MAX_ARGS)
            return cli_usage_error(a, "too many options (at most %d)", CLI_MAX_ARGS);
        const char *value = NULL;
        if (o->kind != CLI_FLAG) {
            if (eq)
                value = eq + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            else
                return cli_usage_error(a, "option %s needs a value (%s)", o->name, o->arg);
        } else if (eq) {
            return cli_usage_error(a, "option %s takes no value", o->name);
        }
        a->opt[a->n_opt] = o;
        a->val[a->n_opt++] = value;
    }
    if (a->n_pos < c->min_pos)
        return cli_usage_error(a, "missing %s", c->synopsis);
    return CLI_OK;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        print_help(stdout);
        return CLI_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("mixc %s\n", MIXC_VERSION);
        return CLI_OK;
    }
    for (int i = 0; i < N_COMMANDS; i++) {
        if (strcmp(name, commands[i]->name) != 0)
            continue;
        static cli_args a;
        int status = parse(commands[i], argc, argv, &a);
        if (status == -1)
            return CLI_OK;
        return status ? status : commands[i]->run(&a);
    }
    fprintf(stderr, "mixc: unknown command '%s'\n(see mixc --help)\n", name);
    return CLI_USAGE;
}
