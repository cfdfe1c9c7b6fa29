/* fake_llvm.c: LLVM failing, for the fault test (tests/llvm_fault.sh).
 * Preloaded into mixc (LD_PRELOAD), it stands in front of three LLVM-C entry
 * points the cpu device goes through; $FAKE_LLVM_FAULT picks the one that
 * fails, the others pass through to the real LLVM:
 *   verify    LLVMVerifyModule reports a broken module,
 *   optimise  LLVMRunPasses returns an error,
 *   emit      LLVMTargetMachineEmitToMemoryBuffer fails as codegen would.
 * Each failure carries the text "injected LLVM fault", for the test to find
 * in what mixc says. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <stdlib.h>
#include <string.h>

#define FAULT_TEXT "injected LLVM fault"

static int faulted(const char *which) {
    const char *f = getenv("FAKE_LLVM_FAULT");
    return f && strcmp(f, which) == 0;
}

static void *real(const char *name) { return dlsym(RTLD_NEXT, name); }

LLVMBool LLVMVerifyModule(LLVMModuleRef m, LLVMVerifierFailureAction action, char **message) {
    if (!faulted("verify")) {
        LLVMBool (*f)(LLVMModuleRef, LLVMVerifierFailureAction, char **) = real("LLVMVerifyModule");
        return f(m, action, message);
    }
    if (message)
        *message = LLVMCreateMessage("Call parameter type does not match function signature! (" FAULT_TEXT ")");
    return 1;
}

LLVMErrorRef LLVMRunPasses(LLVMModuleRef m, const char *passes, LLVMTargetMachineRef tm, LLVMPassBuilderOptionsRef o) {
    if (!faulted("optimise")) {
        LLVMErrorRef (*f)(LLVMModuleRef, const char *, LLVMTargetMachineRef, LLVMPassBuilderOptionsRef) =
            real("LLVMRunPasses");
        return f(m, passes, tm, o);
    }
    return LLVMCreateStringError("unknown pass name in pipeline (" FAULT_TEXT ")");
}

LLVMBool LLVMTargetMachineEmitToMemoryBuffer(LLVMTargetMachineRef tm, LLVMModuleRef m, LLVMCodeGenFileType type,
                                             char **message, LLVMMemoryBufferRef *out) {
    if (!faulted("emit")) {
        LLVMBool (*f)(LLVMTargetMachineRef, LLVMModuleRef, LLVMCodeGenFileType, char **, LLVMMemoryBufferRef *) =
            real("LLVMTargetMachineEmitToMemoryBuffer");
        return f(tm, m, type, message, out);
    }
    *message = LLVMCreateMessage("Cannot select: intrinsic (" FAULT_TEXT ")");
    return 1;
}
