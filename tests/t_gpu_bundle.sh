#!/bin/sh
# `make gpu-bundle` (mk/gpu-bundle.mk) checked by the bundle's own check.sh (size, libraries, the
# programs start, run.sh without a GPU, every part of run.sh on a tiny CPU model); check.sh shown
# to catch a program that needs a library a bare GPU machine lacks and a bundle over 60 MiB;
# run.sh going on past a failing and a hanging part; and bench/gpu/gemm_rates on tiny shapes
# through the CUDA emulation.  The bundle needs nvcc and static libraries (skip without them);
# CI builds it before `make check` (.ci/run), so the make here only checks it is up to date.
. "$TOP/tests/lib.sh"
emu_rates="$TOP/build/cuda-emu/bench/gemm_rates"
if [ -x "$emu_rates" ]; then
    if "$emu_rates" --tiny >rates.txt 2>&1; then ok "gemm_rates --tiny under the emulation"
    else bad "gemm_rates --tiny: exit $?: $(tail -n 5 rates.txt)"; fi
    eq "gemm_rates: 2 T x 4 weights x 3 forms" "$(grep -c '^  [0-9]' rates.txt)" 24
    check "gemm_rates checked its results" grep -q '^gemm_rates: all results checked' rates.txt
    expect_fail "gemm_rates refuses a bad option" "usage: gemm_rates" "$emu_rates" --bogus
fi
nvcc=${NVCC:-${CUDA_HOME:-/usr/local/cuda}/bin/nvcc}
if [ ! -x "$nvcc" ]; then
    [ -x "$emu_rates" ] && finish
    echo "no nvcc ($nvcc): the GPU bundle cannot be built"
    exit 77
fi

bundle="$TOP/build/gpu-bundle"
if make -s -C "$TOP" gpu-bundle >make.log 2>&1; then ok "make gpu-bundle"
elif grep -q 'gpu-bundle: static libraries missing' make.log; then
    grep 'static libraries missing' make.log
    exit 77
else bad "make gpu-bundle: $(tail -n 10 make.log)"; finish; fi
if sh "$bundle/check.sh" >check.txt 2>&1; then ok "check.sh: $(grep -c '^ok:' check.txt) checks"
else bad "check.sh failed:"; grep -v '^ok:' check.txt | head -n 40; fi

# check.sh catches what it is for (CHECK_SKIP_RUN: the tiny training run once is enough).
cp -r "$bundle" dyn
cp "$TOP/build/bin/rwkv-init" dyn/bin/rwkv-init   # the normal build: shared zstd, OpenBLAS, libgomp
CHECK_SKIP_RUN=1 sh dyn/check.sh >dyn.txt 2>&1
eq "check.sh fails a program with shared libraries" $? 1
check "... naming it and a library" grep -q '^FAIL: bin/rwkv-init needs.*libopenblas' dyn.txt
cp -r "$bundle" big
dd if=/dev/zero of=big/data/pad bs=1048576 count=61 2>/dev/null
CHECK_SKIP_RUN=1 sh big/check.sh >big.txt 2>&1
eq "check.sh fails a bundle over 60 MiB" $? 1
check "... saying its size" grep -q '^FAIL: size' big.txt

# run.sh marks a failing and a hanging part and goes on to the rest.
rm -rf big/data/pad dyn
printf '#!/bin/sh\necho broken >&2\nexit 3\n' >big/tests/t_zfail
printf '#!/bin/sh\nexec sleep 600\n' >big/tests/t_zhang
chmod +x big/tests/t_zfail big/tests/t_zhang
start=$(date +%s)
RUN_WITHOUT_GPU=1 BUNDLE_ACCELERATOR=cpu TRAIN_LAYERS=2 TRAIN_EMBD=64 TRAIN_CTX=64 TRAIN_BSZ=1 TRAIN_STEPS=2 \
    SWEEP=1x1 SWEEP_T=16 GEMM_ARGS=--tiny TEST_LIMIT_S=2 OUT="$PWD/out" sh big/run.sh >run.txt 2>&1
eq "run.sh exits 0 with failed parts" $? 0
check "the hanging test is cut at its limit" [ $(($(date +%s) - start)) -lt 60 ]
check "the table marks the failure and the timeout" \
    grep -qF 'failed: t_zfail: FAIL (exit 3); t_zhang: TIMEOUT (2 s);' out/table.md
check "the parts after them ran" grep -qF '| f. train L2-D64 ctx 64 micro_bsz 1 (cpu) | ok | 2 steps' out/table.md
# A budget spent on a hang: the rest is marked, not run, and the call ends near the budget.
start=$(date +%s)
RUN_WITHOUT_GPU=1 BUNDLE_ACCELERATOR=cpu TRAIN_LAYERS=2 TRAIN_EMBD=64 TRAIN_CTX=64 TRAIN_BSZ=1 TRAIN_STEPS=2 \
    SWEEP=1x1 SWEEP_T=16 GEMM_ARGS=--tiny RUN_BUDGET_S=8 OUT="$PWD/out2" sh big/run.sh >run2.txt 2>&1
eq "run.sh exits 0 with its budget spent" $? 0
check "... within seconds of it" [ $(($(date +%s) - start)) -lt 30 ]
check "... the hang timed out" grep -qF 't_zhang: TIMEOUT' out2/table.md
check "... the training marked as not run" grep -qF '| f. rwkv-init L2-D64 | not run (budget spent) |' out2/table.md
finish
