#!/bin/sh
# cuda_fault.sh MODE MIXC FAKE_CUDA_DIR SPEC [--set ...]: `mixc run --device
# cuda` on a fake CUDA driver and cuBLASLt (tests/fake_cuda.c,
# tests/fake_cublaslt.c, loaded by soname from FAKE_CUDA_DIR: one H100,
# device memory in host memory, kernels checked and recorded but not run).
# MODE:
#   run     the whole path (codegen, NVRTC, module load, launches) reaches
#           every kernel of the module; since nothing computes, the outputs
#           stay the poisoned arena and run says so (exit 1), never printing
#           numbers as if they were results; one run is one pass of direct
#           launches, nothing captured. --time 4 (3 warm-up passes): the
#           first pass direct, the second captured once and replayed, then
#           2 warm-up and 4 timed replays; with MIXC_NO_GRAPHS=1 all 7 are
#           direct. A capture that fails (FAKE_CUDA_FAULT=capture-begin,
#           capture-end) warns once, naming the driver's error, and the
#           passes go on with direct launches: the same output as with the
#           graph. No call was refused for want of a current context.
#   oom     cuMemAlloc fails at the 1st, 2nd, 3rd allocation (cuBLASLt's
#           workspace, the arena, a node's buffer): the message names what
#           the memory was for, the bytes the fake was asked for, and the
#           GPU's total and free memory
#   launch  the 1st and 4th launches fail (the norm, the conv: the 2nd and
#           3rd are in_proj's two products): the message names the kernel the
#           fake saw fail, with its group, program, grid and block. Shared
#           memory: with 40000 bytes of static shared memory per function
#           (FAKE_CUDA_STATIC_SMEM) the scan's 9728 dynamic bytes make more
#           than 48 KiB, so mixc opts it (and it alone) in and every launch
#           passes; with 230000 static the scan needs more than the H100's
#           opt-in maximum and the load refuses it, naming both parts
#   async   the 4th launch (the conv) faults while running: the wait that
#           finds it says it may be any earlier kernel and points to
#           MIXC_SYNC=1; with
#           MIXC_SYNC=1 the message names the kernel that faulted
# Every fault exits 1 with nothing written to --outputs.
set -euf # no globbing: the options are split unquoted ($args)
mode=$1
mixc=$2
fake=$3
spec=$4
shift 4
. "$(dirname "$0")/faults.sh" # a work folder with the kernel cache in it
dir=$work
fail() {
    echo "$mode: $*"
    exit 1
}

# run_fake [ENV=VALUE ...]: mixc run on the fake device; $status, $dir/err,
# $dir/report (what the fake saw).
run_fake() {
    rm -f "$dir/report"
    status=0
    env LD_LIBRARY_PATH="$fake${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" FAKE_CUDA_REPORT="$dir/report" "$@" \
        "$mixc" run "$spec" $args --device cuda $outputs >"$dir/out" 2>"$dir/err" || status=$?
    cat "$dir/err"
    grep -q "^device NVIDIA H100" "$dir/report" || fail "the fake CUDA driver was not used"
}

# A fault: exit 1, nothing printed as a result, no output file or its temp.
expect_fault() {
    test "$status" -eq 1 || fail "exit status $status, expected 1"
    ! grep -q checksum "$dir/out" || fail "printed outputs"
    left=$(find "$dir" -maxdepth 1 -name 'outputs*' -print)
    test -z "$left" || fail "left $left"
}

args="$*"
outputs="--outputs $dir/outputs.npy"
case $mode in
run)
    outputs=
    run_fake
    test "$status" -eq 1 || fail "exit status $status, expected 1 (outputs the fake never computed)"
    grep -q "NaN/Inf: .* of .*, the first at" "$dir/out" || fail "the uncomputed outputs were not reported"
    # every kernel of the module launched once (captured) and ran once (replayed)
    "$mixc" compile "$spec" $args --source | grep -A1 '__global__' | grep -o '^mx_[A-Za-z0-9_]*' | sort >"$dir/want"
    test -s "$dir/want" || fail "the module has no kernels"
    grep '^launch mx_' "$dir/report" | cut -d' ' -f2 | sort >"$dir/launched"
    grep '^run mx_' "$dir/report" | cut -d' ' -f2 | sort >"$dir/ran"
    cmp -s "$dir/want" "$dir/launched" || fail "launched $(tr '\n' ' ' <"$dir/launched"), the module has $(tr '\n' ' ' <"$dir/want")"
    cmp -s "$dir/want" "$dir/ran" || fail "ran $(tr '\n' ' ' <"$dir/ran"), the module has $(tr '\n' ' ' <"$dir/want")"
    grep -q '^run cublasLtMatmul' "$dir/report" || fail "no product reached cuBLASLt"
    ! grep -q -- '-invalid\|unknown-attribute\|no-context' "$dir/report" ||
        fail "the fake refused: $(grep -- '-invalid\|unknown\|no-context' "$dir/report")"
    # one pass, the program's first: direct launches, no capture
    ! grep -q '^capture\|^graph-launch' "$dir/report" || fail "a single run captured its first pass"
    # timing: the 1st warm-up pass direct, the 2nd captured and replayed, then 2 warm-up and 4 timed replays
    per_pass=$(grep -c '^run' "$dir/report") products=$(grep -c '^run cublasLtMatmul' "$dir/report")
    args="$args --time 4"
    run_fake
    grep -q "^time: median .* over 4 forward passes" "$dir/out" || fail "--time 4 printed no time"
    cp "$dir/out" "$dir/out.graph"
    test "$(grep -c '^capture$' "$dir/report")" -eq 1 || fail "--time 4 captured $(grep -c '^capture$' "$dir/report") times, expected once"
    test "$(grep -c '^launch' "$dir/report")" -eq $((2 * per_pass)) ||
        fail "--time 4 launched $(grep -c '^launch' "$dir/report"), expected $per_pass direct and $per_pass captured"
    test "$(sed -n '/^capture$/q;/^run/p' "$dir/report" | wc -l)" -eq "$per_pass" ||
        fail "--time 4 did not run one whole direct pass before capturing"
    test "$(grep -c '^graph-launch' "$dir/report")" -eq 6 || fail "--time 4 replayed $(grep -c '^graph-launch' "$dir/report") times, expected 6"
    test "$(grep -c '^run' "$dir/report")" -eq $((7 * per_pass)) ||
        fail "--time 4 ran $(grep -c '^run' "$dir/report") kernels and products, expected 7 passes of $per_pass"
    ! grep -q 'warning' "$dir/err" || fail "a warning without a failed capture"
    # graphs off: 7 direct passes
    run_fake MIXC_NO_GRAPHS=1
    ! grep -q '^capture\|^graph-launch' "$dir/report" || fail "MIXC_NO_GRAPHS=1 captured"
    test "$(grep -c '^launch' "$dir/report")" -eq $((7 * per_pass)) || fail "MIXC_NO_GRAPHS=1: $(grep -c '^launch' "$dir/report") launches, expected 7 passes of $per_pass"
    # a capture that fails: one warning naming the error, then direct launches, the same output
    for fault in capture-begin capture-end; do
        run_fake FAKE_CUDA_FAULT=$fault
        test "$status" -eq 1 || fail "$fault: exit status $status, expected 1 (the uncomputed outputs)"
        cmp -s "$dir/out" "$dir/out.graph" || fail "$fault: the output differs from the graph's: $(diff "$dir/out.graph" "$dir/out")"
        grep -q "^capture-fault" "$dir/report" || fail "$fault: the capture did not fail"
        case $fault in
        capture-begin) error=CUDA_ERROR_NOT_SUPPORTED captured=0 ;;
        capture-end) error=CUDA_ERROR_STREAM_CAPTURE_INVALIDATED captured=$per_pass ;;
        esac
        test "$(grep -c 'warning' "$dir/err")" -eq 1 || fail "$fault: $(grep -c 'warning' "$dir/err") warnings, expected one"
        grep -q "warning: graph mamba_block: capturing its forward pass into a CUDA graph failed (.*$error.*); running it with direct launches instead" "$dir/err" ||
            fail "$fault: the warning does not name $error"
        ! grep -q '^graph-launch' "$dir/report" || fail "$fault: a graph was launched after the failed capture"
        test "$(grep -c '^launch' "$dir/report")" -eq $((7 * per_pass + captured)) ||
            fail "$fault: $(grep -c '^launch' "$dir/report") launches, expected 7 direct passes of $per_pass and $captured captured"
        test "$(grep -c '^run' "$dir/report")" -eq $((7 * per_pass)) || fail "$fault: not 7 passes run"
        ! grep -q -- '-invalid\|no-context' "$dir/report" || fail "$fault: the fake refused: $(grep -- '-invalid\|no-context' "$dir/report")"
    done
    echo "run: $(wc -l <"$dir/want") kernels and $products products launched and run directly by one run; --time 4: one direct pass, one capture, 6 replays; a failed capture (begin, end) warned once and ran 7 direct passes; the uncomputed outputs reported"
    ;;
oom)
    for at in 1 2 3; do
        run_fake FAKE_CUDA_FAULT=oom FAKE_CUDA_FAULT_AT=$at
        expect_fault
        bytes=$(sed -n 's/^oom //p' "$dir/report")
        test -n "$bytes" || fail "allocation $at did not fail"
        grep -q "out of GPU memory: cuMemAlloc of $bytes bytes" "$dir/err" || fail "the message does not name the $bytes bytes"
        grep -q "CUDA_ERROR_OUT_OF_MEMORY" "$dir/err" || fail "the driver's error is not in the message"
        grep -q "GPU 0 (NVIDIA H100 80GB HBM3) has 80.00 GiB, [0-9.]* GiB of it free" "$dir/err" ||
            fail "the message does not give the GPU's memory"
        case $at in
        1) want="for cuBLASLt's workspace" ;;
        2) want="cannot allocate the activation arena of graph" ;;
        3) want="cannot allocate the buffer of %" ;;
        esac
        grep -q "$want" "$dir/err" || fail "allocation $at: the message does not say '$want'"
        echo "oom at allocation $at ($bytes bytes): reported"
    done
    # a GPU too small for the plan: refused before any allocation, with the spec fields
    run_fake FAKE_CUDA_MEMORY=1000
    expect_fault
    grep -q "does not fit in memory: running it on cuda (NVIDIA H100 80GB HBM3)" "$dir/err" ||
        fail "a 1000-byte GPU was not refused by the planned size"
    grep -q "come from .*input.length=12" "$dir/err" || fail "the refusal names no spec field"
    ! grep -q "^alloc" "$dir/report" || fail "allocated before refusing: $(grep '^alloc' "$dir/report" | tr '\n' ' ')"
    echo "a 1000-byte GPU: refused before allocating"
    ;;
launch)
    for at in 1 4; do
        run_fake FAKE_CUDA_FAULT=launch FAKE_CUDA_FAULT_AT=$at
        expect_fault
        # "launch-fault NAME grid X,Y,Z block X,Y,Z smem S"
        set -- $(grep '^launch-fault' "$dir/report")
        test $# -eq 8 || fail "launch $at did not fail"
        name=$2 grid=$(echo "$4" | sed 's/,/ x /g') block=$(echo "$6" | sed 's/,/ x /g')
        grep -q "kernel $name (group [0-9]*, [a-z_]*, program [A-Za-z0-9_]*\.[0-9]*\.cu; grid $grid, block $block, $8 bytes of shared memory) did not launch" "$dir/err" ||
            fail "the message does not name $name, its grid $grid, block $block and $8 bytes of shared memory"
        grep -q "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES" "$dir/err" || fail "the driver's error is not in the message"
        echo "launch $at failing: $name named"
    done
    # static + dynamic shared memory over 48 KiB, the dynamic part under it: opted in
    outputs=
    run_fake FAKE_CUDA_STATIC_SMEM=40000
    test "$status" -eq 1 && grep -q "NaN/Inf: " "$dir/out" || fail "40000 static bytes: the run did not get through (exit $status)"
    ! grep -q -- '-invalid' "$dir/report" || fail "40000 static bytes: the fake refused $(grep -- '-invalid' "$dir/report")"
    test "$(grep '^smem-optin' "$dir/report")" = "smem-optin mx_g5_scan 9728" ||
        fail "40000 static bytes: opted in $(grep '^smem-optin' "$dir/report" | tr '\n' ' '), expected mx_g5_scan's 9728 dynamic bytes"
    echo "40000 static + 9728 dynamic bytes: mx_g5_scan opted in"
    # more than the opt-in maximum: refused at load, naming both parts
    outputs="--outputs $dir/outputs.npy"
    run_fake FAKE_CUDA_STATIC_SMEM=230000
    expect_fault
    grep -q "kernel mx_g5_scan (group [0-9]*) needs 239728 bytes of shared memory per block (230000 static + 9728 dynamic); GPU 0 (NVIDIA H100 80GB HBM3) allows at most 232448 per block" "$dir/err" ||
        fail "230000 static bytes: the refusal does not name the kernel, its static and dynamic bytes and the GPU's limit"
    ! grep -q '^launch' "$dir/report" || fail "230000 static bytes: launched before refusing"
    echo "230000 static + 9728 dynamic bytes: refused at load"
    ;;
async)
    run_fake FAKE_CUDA_FAULT=async FAKE_CUDA_FAULT_AT=4
    expect_fault
    grep -q '^async-fault' "$dir/report" || fail "no kernel faulted"
    grep -q "CUDA_ERROR_ILLEGAL_ADDRESS" "$dir/err" || fail "the driver's error is not in the message"
    grep -q "may come from any kernel or product enqueued before" "$dir/err" || fail "the message does not say the fault may be an earlier kernel's"
    grep -q "MIXC_SYNC=1" "$dir/err" || fail "the message does not point to MIXC_SYNC=1"
    run_fake FAKE_CUDA_FAULT=async FAKE_CUDA_FAULT_AT=4 MIXC_SYNC=1
    expect_fault
    name=$(sed -n 's/^async-fault //p' "$dir/report")
    test -n "$name" || fail "no kernel faulted with MIXC_SYNC=1"
    grep -q "kernel $name (group [0-9]*, .*) failed while running (MIXC_SYNC=1 waited after it)" "$dir/err" ||
        fail "MIXC_SYNC=1 did not name $name"
    test "$(grep -c '^launch' "$dir/report")" -eq 4 || fail "MIXC_SYNC=1 went on launching after the fault"
    echo "async fault in $name: pointed to MIXC_SYNC=1, which named it"
    ;;
*)
    fail "unknown mode (run, oom, launch or async)"
    ;;
esac
