#!/bin/sh
# The CUDA tests (tests/cuda/*.cu) through the CPU emulation (cuda/emu.h): every test in three
# thread/block orders, then the ASan/UBSan build once; the nvcc builds where a GPU runs them;
# and cuda/ptxas-budget.sh on a canned ptxas report.  `make` builds the emulated tests when the
# CUDA toolkit's headers are there (make cuda-emu).
. "$TOP/tests/lib.sh"
emu="$TOP/build/cuda-emu"
[ -d "$emu/tests" ] || { echo "emulated CUDA tests not built (make cuda-emu needs the CUDA toolkit's headers)"; exit 77; }

# run_case DESCRIPTION COMMAND...: passes on exit 0; shows the output otherwise.
run_case() {
    d=$1; shift
    if "$@" >run.txt 2>&1; then ok "$d"; else bad "$d (exit $?)"; sed 's/^/    /' run.txt | tail -n 20; fi
}

for t in "$emu"/tests/*; do
    [ -x "$t" ] || continue
    for order in forward reverse shuffle:7; do
        run_case "$(basename "$t") in $order order" env CUDA_EMU_ORDER="$order" "$t"
    done
done
[ -d "$emu/asan" ] || echo "note: no ASan/UBSan build (clang++ missing?)"
# Under ASan the fibers' stack switches are annotated; leaks are not this test's business.
for t in "$emu"/asan/*; do
    [ -x "$t" ] || continue
    run_case "$(basename "$t") under ASan/UBSan" env ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
        CUDA_EMU_ORDER=reverse "$t"
done
[ -x "$emu/asan/t_faults" ] &&
    expect_fail "ASan stops a write past a SHARED array" "heap-buffer-overflow" \
        env ASAN_OPTIONS=detect_leaks=0 "$emu/asan/t_faults" shared-overflow
expect_fail "a fiber stack overflow is reported" "overflowed its 64 KiB fiber stack" \
    env CUDA_EMU_STACK_KIB=64 "$emu/tests/t_faults" stack-overflow
check "a bad CUDA_EMU_ORDER fails the launches" sh -c "! CUDA_EMU_ORDER=sideways '$emu/tests/t_kernels' >/dev/null 2>&1"

# nvcc builds run only where there is a device (they exit 77 without one).
for t in "$TOP"/build/cuda/tests/*; do
    [ -x "$t" ] || continue
    "$t" >run.txt 2>&1
    rc=$?
    if [ $rc -eq 77 ]; then ok "$(basename "$t") on a GPU: skipped, $(tail -n 1 run.txt)"
    elif [ $rc -eq 0 ]; then ok "$(basename "$t") on a GPU"
    else bad "$(basename "$t") on a GPU (exit $rc)"; sed 's/^/    /' run.txt | tail -n 20; fi
done

# The budget script on a report with a spill and one over the register budget.
cat >ptxas.log <<'LOG'
ptxas info    : Compiling entry function '_Z7wkv_fwdILi64EEviPKf' for 'sm_90'
ptxas info    : Function properties for _Z7wkv_fwdILi64EEviPKf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 143 registers, used 1 barriers, 1280 bytes smem
ptxas info    : Compiling entry function '_Z12wkv_backwardILi64EEviPKf' for 'sm_90'
ptxas info    : Function properties for _Z12wkv_backwardILi64EEviPKf
    128 bytes stack frame, 128 bytes spill stores, 64 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 2304 bytes smem
ptxas info    : Compiling entry function '_Z9layernormPf' for 'sm_90'
ptxas info    : Function properties for _Z9layernormPf
    0 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads
ptxas info    : Used 200 registers, used 0 barriers
LOG
printf 'wkv*_backward*  255  0\nwkv*  168  0\n' >budget.txt
expect_fail "a spilling WKV kernel fails the budget" "wkv_backward on sm_90 over budget.txt: 192 spill bytes (budget 0)" \
    sh "$TOP/cuda/ptxas-budget.sh" budget.txt ptxas.log
printf 'wkv*_backward*  255  192  64\nwkv*  142  0\n' >budget.txt
expect_fail "a WKV kernel over its register budget fails" "wkv_fwd on sm_90 over budget.txt: 143 registers (budget 142)" \
    sh "$TOP/cuda/ptxas-budget.sh" budget.txt ptxas.log
expect_fail "a WKV kernel over its stack frame budget fails" "wkv_backward on sm_90 over budget.txt: 128 bytes of stack frame (budget 64)" \
    sh "$TOP/cuda/ptxas-budget.sh" budget.txt ptxas.log
printf 'wkv*_backward*  255  192  128\nwkv*  143  0  0\n' >budget.txt
check "kernels within budget, and unlisted kernels, pass" sh "$TOP/cuda/ptxas-budget.sh" budget.txt ptxas.log
finish
