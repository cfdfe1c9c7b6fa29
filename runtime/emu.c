/* emu.c: compile generated CUDA for the host and run its kernels
 * (docs/emulation.md). The scheduling of blocks and fibers lives in the shim
 * (runtime/emu/cuda_shim.h), compiled into each module; this file drives the
 * compiler, loads the result and checks launch configurations. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "emu.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "embed.h"
#include "ir.h"

extern char **environ;


/* Kernels run inside this process: when it carries ASan (and with it UBSan,
 * the build's MIXC_SANITIZE pair), the kernels must too, and they gain its
 * out-of-bounds checks. */
#if defined(__SANITIZE_ADDRESS__)
#define EMU_SANITIZE 1
#else
#define EMU_SANITIZE 0
#endif

/* The default fiber stack; ASan's redzones make frames several times larger. */
#define EMU_STACK_KIB (EMU_SANITIZE ? 256 : 64)
#define EMU_LOG_LINES 40
#define EMU_MAX_ARGV 64

/* The temp dir goes as soon as the library is loaded, so that a killed
 * process leaves nothing behind; it stays while the module is loaded where
 * reports must name kernel lines (sanitizer builds, MIXC_EMU_KEEP), and a
 * later load sweeps away those of processes that died. */
struct mx_emu_module {
    void *so;
    bool profiling; /* built by mx_emu_load_profiling */
    char base[64];  /* file names in dir: base.cu, base.so, compile.log */
    char dir[1024]; /* empty once removed */
};

#define EMU_DIR_PREFIX "mixc-emu-" /* then the owner's pid, '-' and mkdtemp's letters */

/* Letters, digits, '_' and '-' only: the name becomes a file name. */
static void sanitize_name(const char *name, char *out, size_t size) {
    size_t i = 0;
    for (; name[i] && i + 1 < size; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-';
        out[i] = ok ? c : '_';
    }
    out[i] = '\0';
    if (i == 0)
        snprintf(out, size, "module");
}

static mx_status write_file(const char *path, const char *text, mx_diag *d) {
    FILE *f = fopen(path, "w");
    if (!f)
        return mx_fail(d, MX_ERR_IO, "%s: error: cannot create: %s", path, strerror(errno));
    size_t len = strlen(text);
    int ok = fwrite(text, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    return ok ? MX_OK : mx_fail(d, MX_ERR_IO, "%s: error: cannot write", path);
}

/* The embedded headers (embed.h) under dir, at their source-tree paths, so
 * that the shim's relative includes resolve: the emulation needs no source
 * tree. */
static mx_status write_headers(const char *dir, mx_diag *d) {
    for (const mx_embedded_file *f = mx_embedded_files; f->path; f++) {
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, f->path);
        for (char *s = path + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
            *s = 0;
            if (mkdir(path, 0700) != 0 && errno != EEXIST)
                return mx_fail(d, MX_ERR_IO, "%s: error: cannot create: %s", path, strerror(errno));
            *s = '/';
        }
        MX_TRY(write_file(path, f->text, d));
    }
    return MX_OK;
}

/* The first EMU_LOG_LINES lines of the compiler's output. */
static void read_log(const char *path, char *buf, size_t size) {
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t len = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *p = buf;
    for (int line = 0; line < EMU_LOG_LINES && (p = strchr(p, '\n')); line++)
        p++;
    if (p)
        *p = '\0';
}

/* Runs argv with stdout and stderr into log; its exit status (128 + the
 * signal that killed it), -1 if it could not be started. */
static int run_logged(char **argv, const char *log) {
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return -1;
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* MIXC_EMU_KEEP=1 keeps the temp dirs, for a debugger after the run. */
static bool keep_dirs(void) {
    const char *keep = getenv("MIXC_EMU_KEEP");
    return keep && *keep && strcmp(keep, "0") != 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* dir and everything in it (files and folders only, no links followed). */
static void remove_tree(const char *dir) { nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

static void remove_dir(mx_emu_module *m) {
    if (!m->dir[0])
        return;
    if (keep_dirs())
        fprintf(stderr, "mixc: emu: %s kept in %s\n", m->base, m->dir);
    else
        remove_tree(m->dir);
    m->dir[0] = '\0';
}

/* Temp dirs of processes that are gone (killed while compiling, or while a
 * sanitizer build kept its module's files). */
static void sweep_stale(const char *tmp) {
    DIR *dir = opendir(tmp);
    if (!dir)
        return;
    size_t n = strlen(EMU_DIR_PREFIX);
    for (struct dirent *e; (e = readdir(dir));) {
        if (strncmp(e->d_name, EMU_DIR_PREFIX, n) != 0)
            continue;
        char *end;
        long pid = strtol(e->d_name + n, &end, 10);
        bool alive = kill((pid_t)pid, 0) == 0 || errno == EPERM; /* EPERM: another user's */
        if (pid <= 0 || *end != '-' || alive)
            continue;
        char path[1300];
        snprintf(path, sizeof path, "%s/%s", tmp, e->d_name);
        remove_tree(path);
    }
    closedir(dir);
}

static mx_status load(const char *source, const char *name, bool profiling, mx_emu_module **out,
                      mx_diag *d) {
    *out = NULL;
    mx_emu_module *m = calloc(1, sizeof *m);
    if (!m)
        return mx_fail(d, MX_ERR_NOMEM, "emu: out of memory");
    m->profiling = profiling;
    sanitize_name(name ? name : "module", m->base, sizeof m->base);
    const char *tmp = getenv("TMPDIR");
    tmp = tmp && *tmp ? tmp : "/tmp";
    sweep_stale(tmp);
    snprintf(m->dir, sizeof m->dir, "%s/" EMU_DIR_PREFIX "%ld-XXXXXX", tmp, (long)getpid());
    if (!mkdtemp(m->dir)) {
        mx_status st = mx_fail(d, MX_ERR_IO, "%s: error: cannot create a temp dir: %s", m->dir,
                               strerror(errno));
        free(m);
        return st;
    }
    char src[1200], so[1200], log[1200], inc[1024], inc_root[1100];
    snprintf(src, sizeof src, "%s/%s.cu", m->dir, m->base);
    snprintf(so, sizeof so, "%s/%s.so", m->dir, m->base);
    snprintf(log, sizeof log, "%s/compile.log", m->dir);
    mx_status st = write_file(src, source, d);
    if (st == MX_OK)
        st = write_headers(m->dir, d);
    if (st != MX_OK)
        goto fail;

    /* $MIXC_EMU_CXX may be a command with options ("ccache g++"). */
    const char *cxx_env = getenv("MIXC_EMU_CXX");
    char cxx[512];
    snprintf(cxx, sizeof cxx, "%s", cxx_env && *cxx_env ? cxx_env : "c++");
    char *argv[EMU_MAX_ARGV];
    int argc = 0;
    for (char *save = NULL, *w = strtok_r(cxx, " \t", &save); w && argc < EMU_MAX_ARGV - 32;
         w = strtok_r(NULL, " \t", &save))
        argv[argc++] = w;
    snprintf(inc, sizeof inc, "%s/runtime/emu", m->dir);
    snprintf(inc_root, sizeof inc_root, "%s/include", m->dir); /* mixc.h, for ir/half.h */
    static char *const flags[] = {"-std=c++17", "-O1", "-g", "-fPIC", "-shared",
                                  "-fvisibility=hidden", "-include", "mixc_prelude.h"};
    static char *const sanitize[] = {"-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                                     "-fno-omit-frame-pointer", NULL};
    /* Counting (docs/profile.md): the kernel-address instrumentation calls the
     * shim's hooks on every access; aggregates are not split into scalars,
     * so that a vector load stays one access. */
    static char *const profile[] = {"-DMX_EMU_PROFILE",
                                    "-fsanitize=kernel-address",
                                    "--param=asan-instrumentation-with-call-threshold=0",
                                    "--param=asan-stack=0",
                                    "--param=asan-globals=0",
                                    "-fno-tree-sra",
                                    NULL};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        argv[argc++] = flags[i];
    for (char *const *f = profiling ? profile : EMU_SANITIZE ? sanitize : NULL; f && *f; f++)
        argv[argc++] = *f;
    argv[argc++] = "-I";
    argv[argc++] = inc;
    argv[argc++] = "-I";
    argv[argc++] = inc_root;
    argv[argc++] = "-o";
    argv[argc++] = so;
    argv[argc++] = "-x";
    argv[argc++] = "c++";
    argv[argc++] = src;
    argv[argc] = NULL;

    if (mx_debug_level() >= 4) {
        fprintf(stderr, "mixc: emulation compile:");
        for (int i = 0; i < argc; i++)
            fprintf(stderr, " %s", argv[i]);
        fprintf(stderr, "\n%s\n", source);
    }
    int rc = run_logged(argv, log);
    if (rc != 0) {
        char text[1800];
        read_log(log, text, sizeof text);
        st = rc < 0 ? mx_fail(d, MX_ERR_IO, "emu: %s: cannot run the compiler '%s'", m->base,
                              argv[0])
                    : mx_fail(d, MX_ERR_INVALID, "emu: %s: the host compile failed:\n%s", m->base,
                              text);
        goto fail;
    }
    m->so = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!m->so) {
        st = mx_fail(d, MX_ERR_INVALID, "emu: %s: cannot load: %s", m->base, dlerror());
        goto fail;
    }
    if (!EMU_SANITIZE && !keep_dirs())
        remove_dir(m); /* the loaded library needs no file */
    *out = m;
    return MX_OK;
fail:
    remove_dir(m);
    free(m);
    return st;
}

mx_status mx_emu_load(const char *source, const char *name, mx_emu_module **out, mx_diag *d) {
    return load(source, name, false, out, d);
}

mx_status mx_emu_load_profiling(const char *source, const char *name, mx_emu_module **out,
                                mx_diag *d) {
    return load(source, name, true, out, d);
}

static size_t emu_stack_size(void) {
    const char *env = getenv("MIXC_EMU_STACK_KIB");
    long kib = env ? strtol(env, NULL, 10) : 0;
    return (size_t)(kib >= 16 ? kib : EMU_STACK_KIB) * 1024;
}

static mx_status launch(mx_emu_module *m, const char *kernel, const unsigned grid[3],
                        const unsigned block[3], size_t smem, void **args,
                        const mx_emu_buffer *buffers, int n_buffers, mx_emu_counters *counters,
                        mx_diag *d) {
    static const unsigned max_block[3] = {1024, 1024, 64};
    static const unsigned max_grid[3] = {0x7FFFFFFFu, 65535, 65535};
    unsigned long long threads = 1;
    for (int i = 0; i < 3; i++) {
        if (block[i] == 0 || block[i] > max_block[i] || grid[i] == 0 || grid[i] > max_grid[i])
            return mx_fail(d, MX_ERR_INVALID,
                           "emu: kernel '%s': bad launch shape grid (%u,%u,%u) block (%u,%u,%u)",
                           kernel, grid[0], grid[1], grid[2], block[0], block[1], block[2]);
        threads *= block[i];
    }
    if (threads > 1024)
        return mx_fail(d, MX_ERR_INVALID, "emu: kernel '%s': %llu threads per block (at most 1024)",
                       kernel, threads);
    char sym[256];
    snprintf(sym, sizeof sym, MX_EMU_ENTRY_PREFIX "%s", kernel);
    mx_emu_entry_fn entry = (mx_emu_entry_fn)dlsym(m->so, sym);
    if (!entry)
        return mx_fail(d, MX_ERR_INVALID,
                       "emu: %s: no kernel '%s' (is it extern \"C\" with MX_EMU_ENTRY(%s)?)",
                       m->base, kernel, kernel);
    char err[1536] = "";
    mx_emu_launch_desc desc = {
        .grid = {grid[0], grid[1], grid[2]},
        .block = {block[0], block[1], block[2]},
        .smem = smem,
        .stack_size = emu_stack_size(),
        .args = args,
        .buffers = buffers,
        .n_buffers = n_buffers,
        .counters = counters,
        .err = err,
        .err_size = sizeof err,
    };
    if (entry(&desc) != 0)
        return mx_fail(d, MX_ERR_INVALID, "emu: %s", err);
    return MX_OK;
}

mx_status mx_emu_launch(mx_emu_module *m, const char *kernel, const unsigned grid[3],
                        const unsigned block[3], size_t smem, void **args, mx_diag *d) {
    return launch(m, kernel, grid, block, smem, args, NULL, 0, NULL, d);
}

mx_status mx_emu_launch_profiled(mx_emu_module *m, const char *kernel, const unsigned grid[3],
                                 const unsigned block[3], size_t smem, void **args,
                                 const mx_emu_buffer *buffers, int n_buffers,
                                 mx_emu_counters *out, mx_diag *d) {
    if (!m->profiling)
        return mx_fail(d, MX_ERR_INVALID,
                       "emu: %s: kernel '%s': a profiled launch needs a module from "
                       "mx_emu_load_profiling",
                       m->base, kernel);
    return launch(m, kernel, grid, block, smem, args, buffers, n_buffers, out, d);
}

void mx_emu_unload(mx_emu_module *m) {
    if (!m)
        return;
    dlclose(m->so);
    remove_dir(m);
    free(m);
}
