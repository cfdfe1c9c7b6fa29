/* test_cudalibs.c: NVRTC and cuBLASLt load when a command needs them.
 *
 * `mixc --version` and `mixc stats` run under ptrace, held as they exit, so
 * that their /proc/PID/maps can be read: neither library may be in it. In
 * this process both load on request, and all their entry points resolve. A
 * second copy of the loader, built for libraries no system has, shows what a
 * missing one says: an error at the call, not a failure to start. The CLI is
 * the binary in $MIXC (ctest sets it). */
#include <signal.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "cudalibs.h"

/* The loader again under other names, looking for a library that is nowhere
 * (NVRTC) and for one that is not a library (cuBLASLt: not found by name, so
 * tried in the "toolkit" folder, where it is a text file). */
#define MIXC_NVRTC_SONAME "libnvrtc.so.0-missing"
#define MIXC_CUBLASLT_SONAME "CMakeLists.txt"
#define MIXC_CUDA_LIB_DIR MIXC_SOURCE_DIR
#define mx_nvrtc_api_get missing_nvrtc_api_get
#define mx_cublaslt_api_get missing_cublaslt_api_get
#define mx_cuda_libs_loaded missing_cuda_libs_loaded
#include "cudalibs.c"
#undef mx_nvrtc_api_get
#undef mx_cublaslt_api_get
#undef mx_cuda_libs_loaded

/* Which of the libraries a process's maps name, and how many lines it has. */
typedef struct {
    int lines;
    bool libc, nvrtc, cublaslt;
} mapped;

static mapped read_maps(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    mapped m = {0};
    FILE *f = fopen(path, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        m.lines++;
        m.libc |= strstr(line, "/libc.so") != NULL;
        m.nvrtc |= strstr(line, "/libnvrtc") != NULL;
        m.cublaslt |= strstr(line, "/libcublasLt") != NULL;
    }
    if (f)
        fclose(f);
    return m;
}

/* Runs argv (output discarded) and reads its maps as it exits: the exit
 * event of PTRACE_O_TRACEEXIT holds it with its mappings still there. Returns
 * the exit status, -1 if it did not exit normally. */
static int run_traced(char *const argv[], mapped *m) {
    pid_t pid = fork();
    if (pid == 0) {
        /* LeakSanitizer cannot run in a traced process (it stops with a fatal
         * error at exit); other tests check the CLI for leaks */
        char asan[512];
        const char *was = getenv("ASAN_OPTIONS");
        snprintf(asan, sizeof asan, "%s%sdetect_leaks=0", was ? was : "", was && *was ? ":" : "");
        setenv("ASAN_OPTIONS", asan, 1);
        freopen("/dev/null", "w", stdout);
        ptrace(PTRACE_TRACEME, 0, NULL, NULL);
        execv(argv[0], argv);
        _exit(127);
    }
    int ws;
    if (pid < 0 || waitpid(pid, &ws, 0) != pid || !WIFSTOPPED(ws)) /* the stop at exec */
        return -1;
    ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)(long)(PTRACE_O_TRACEEXIT | PTRACE_O_EXITKILL));
    int deliver = 0;
    for (;;) {
        ptrace(PTRACE_CONT, pid, NULL, (void *)(long)deliver);
        if (waitpid(pid, &ws, 0) != pid)
            return -1;
        if (WIFEXITED(ws) || WIFSIGNALED(ws))
            return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
        deliver = 0;
        if (ws >> 8 == (SIGTRAP | PTRACE_EVENT_EXIT << 8))
            *m = read_maps(pid);
        else
            deliver = WSTOPSIG(ws); /* a signal of its own: pass it on */
    }
}

static void test_cli_loads_neither(void) {
    char *mixc = getenv("MIXC");
    CHECK_MSG(mixc && *mixc, "MIXC is not set (ctest sets it to the mixc binary)");
    if (!mixc || !*mixc)
        return;
    char version[] = "--version", stats[] = "stats", model[] = MIXC_SOURCE_DIR "/models/vim2-tiny.json";
    char *const runs[][4] = {{mixc, version, NULL}, {mixc, stats, model, NULL}};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        mapped m = {0};
        int rc = run_traced(runs[i], &m);
        CHECK_MSG(rc == 0, "mixc %s: exit %d", runs[i][1], rc);
        CHECK_MSG(m.lines > 0 && m.libc, "mixc %s: no maps read (%d lines)", runs[i][1], m.lines);
        CHECK_MSG(!m.nvrtc && !m.cublaslt, "mixc %s maps%s%s", runs[i][1],
                  m.nvrtc ? " libnvrtc" : "", m.cublaslt ? " libcublasLt" : "");
    }
}

static void test_loaded_on_request(void) {
    mapped m = read_maps(getpid());
    CHECK(!mx_cuda_libs_loaded() && !m.nvrtc && !m.cublaslt);
    mx_diag d = {{0}};
    const mx_nvrtc_api *nv = mx_nvrtc_api_get(&d);
    CHECK_MSG(nv, "%s", d.msg);
    int major = -1, minor = -1;
    CHECK(nv && nv->Version(&major, &minor) == NVRTC_SUCCESS && major >= 12);
    CHECK(mx_cuda_libs_loaded() && read_maps(getpid()).nvrtc);
    const mx_cublaslt_api *lt = mx_cublaslt_api_get(&d);
    CHECK_MSG(lt, "%s", d.msg);
    CHECK(read_maps(getpid()).cublaslt);
    CHECK(mx_nvrtc_api_get(&d) == nv && mx_cublaslt_api_get(&d) == lt); /* loaded once */
}

static void test_missing(void) {
    for (int twice = 0; twice < 2; twice++) { /* a failed load is not retried: same message */
        mx_diag d = {{0}};
        CHECK(missing_nvrtc_api_get(&d) == NULL);
        CHECK_MSG(strcmp(d.msg, "NVRTC (libnvrtc.so.0-missing) not found: install the CUDA "
                                "toolkit's NVRTC, or use --device cpu / ref") == 0,
                  "%s", d.msg);
        CHECK(missing_cublaslt_api_get(&d) == NULL);
        CHECK_MSG(strstr(d.msg, "cannot load cuBLASLt (" MIXC_SOURCE_DIR "/CMakeLists.txt): ") ==
                      d.msg,
                  "%s", d.msg);
    }
    CHECK(!missing_cuda_libs_loaded());
}

int main(void) {
    test_cli_loads_neither();
    test_loaded_on_request();
    test_missing();
    return check_summary();
}
