#!/bin/sh
# check.sh [DIR]: checks the GPU bundle DIR (default: the folder of this script) on a machine
# without a GPU, as tests/t_gpu_bundle.sh does in CI:
#   - its size is at most BUNDLE_MAX_MIB (60) MiB;
#   - every program needs no shared library a bare GPU machine lacks: only glibc's (libc, libm,
#     libdl, libpthread, librt, ld-linux) and those run.sh finds at run time (libcublasLt,
#     libcublas, libnccl); the newest glibc symbol version they need is printed;
#   - every program starts: rwkv-train and rwkv-init -V and --help; the tests and gemm_rates
#     exit 77 (no device) or 0;
#   - run.sh exits 0 saying there is no GPU, with a table saying so; then, with RUN_WITHOUT_GPU=1
#     and a tiny model on the CPU, every part of it runs and lands in the table.
# Prints ok:/FAIL: lines; exit 0 when all pass, 1 otherwise.
set -u
dir=$(cd "${1:-$(dirname "$0")}" && pwd) || exit 1
max_mib=${BUNDLE_MAX_MIB:-60}
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bundle-check.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# Size: the bytes of every file (what the device tool carries).
bytes=$(find "$dir" -type f -exec cat {} + | wc -c)
if [ "$bytes" -le $((max_mib * 1048576)) ]; then ok "size $((bytes / 1048576)) MiB <= $max_mib MiB"
else bad "size $bytes bytes > $max_mib MiB"; fi

for f in bin/rwkv-train bin/rwkv-init bin/gemm_rates run.sh README.md BUILD-INFO data/demo.bin data/demo.idx; do
    [ -f "$dir/$f" ] || bad "$f missing"
done
ls "$dir"/tests/t_* >/dev/null 2>&1 || bad "no tests/t_* in the bundle"

# The toolkit's cuBLASLt for starting the programs here (run.sh finds it on the GPU machine).
for d in ${CUDA_HOME:-/usr/local/cuda}/lib64 /usr/local/cuda/lib64; do
    [ -e "$d/libcublasLt.so.13" ] && LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" && break
done
export LD_LIBRARY_PATH

# needed FILE: the shared libraries FILE names (DT_NEEDED), from readelf or objdump, else ldd.
needed() {
    if command -v readelf >/dev/null 2>&1; then
        readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
    elif command -v objdump >/dev/null 2>&1; then
        objdump -p "$1" | awk '$1 == "NEEDED" { print $2 }'
    else
        ldd "$1" | awk '/=>/ { print $1 } /^[[:space:]]*\/.*ld-linux/ { n = split($1, p, "/"); print p[n] }'
    fi
}
allowed='libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 ld-linux-x86-64.so.2 libcublasLt.so.13 libcublas.so.13 libnccl.so.2'
glibc_max=
for p in "$dir"/bin/* "$dir"/tests/*; do
    [ -f "$p" ] || continue
    n=${p#"$dir"/}
    extra=
    for l in $(needed "$p"); do
        case " $allowed " in *" $l "*) ;; *) extra="$extra $l" ;; esac
    done
    if [ -n "$extra" ]; then bad "$n needs$extra (not on a bare GPU machine)"; else ok "$n: libraries allowed"; fi
    # ldd: anything not found but the libraries run.sh looks for
    nf=$(ldd "$p" 2>/dev/null | awk '/not found/ { print $1 }' | grep -v -e '^libcublas' -e '^libnccl' | tr '\n' ' ')
    [ -z "$nf" ] || bad "$n: ldd finds no$nf"
    if command -v objdump >/dev/null 2>&1; then
        v=$(objdump -T "$p" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -u -t. -k1,1 -k2,2n -k3,3n | tail -n 1)
        glibc_max=$(printf '%s\n%s\n' "$glibc_max" "$v" | grep . | sort -t. -k1,1 -k2,2n -k3,3n | tail -n 1)
    fi
done
[ -n "$glibc_max" ] && echo "note: the newest glibc symbol version needed is $glibc_max"

# They start.
for t in rwkv-train rwkv-init; do
    if "$dir/bin/$t" -V >"$tmp/v.txt" 2>&1 && grep -q "^$t (rwkv7c)" "$tmp/v.txt"; then ok "$t -V"
    else bad "$t -V: $(head -c 200 "$tmp/v.txt")"; fi
    if "$dir/bin/$t" --help >"$tmp/h.txt" 2>&1 && grep -q '^Usage:' "$tmp/h.txt"; then ok "$t --help"
    else bad "$t --help: $(head -c 200 "$tmp/h.txt")"; fi
done
gpu=0
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU ' && gpu=1
if [ $gpu = 0 ]; then
    for p in "$dir"/bin/gemm_rates "$dir"/tests/*; do
        [ -f "$p" ] || continue
        "$p" >"$tmp/t.txt" 2>&1
        rc=$?
        case $rc in 0 | 77) ok "${p#"$dir"/} starts (exit $rc without a GPU)" ;;
            *) bad "${p#"$dir"/} exit $rc: $(tail -n 3 "$tmp/t.txt" | head -c 300)" ;; esac
    done

    # run.sh without a GPU: a clean exit saying so.
    if OUT="$tmp/out0" sh "$dir/run.sh" >"$tmp/run0.txt" 2>&1; then ok "run.sh without a GPU exits 0"
    else bad "run.sh without a GPU: exit $?: $(tail -n 5 "$tmp/run0.txt")"; fi
    grep -q 'no GPU' "$tmp/run0.txt" && ok "run.sh says there is no GPU" || bad "run.sh does not say 'no GPU'"
    grep -q '| a. GPU | no GPU |' "$tmp/out0/table.md" 2>/dev/null && ok "its table says so" ||
        bad "table.md lacks the no-GPU row: $(cat "$tmp/out0/table.md" 2>/dev/null | head -c 300)"
    [ "$(tail -n 1 "$tmp/run0.txt")" = "$(tail -n 1 "$tmp/out0/table.md" 2>/dev/null)" ] &&
        ok "the table is printed last" || bad "run.sh's last line is not the table's"
fi

# Every part of run.sh, on the CPU, tiny: the parsing and the table without a GPU.
if [ -z "${CHECK_SKIP_RUN:-}" ]; then
    out="$tmp/out1"
    RUN_WITHOUT_GPU=1 BUNDLE_ACCELERATOR=cpu TRAIN_LAYERS=2 TRAIN_EMBD=64 TRAIN_CTX=64 TRAIN_BSZ="1 2" TRAIN_STEPS=3 \
        SWEEP=1x1 SWEEP_T=16 GEMM_ARGS=--tiny RUN_BUDGET_S=240 OUT="$out" sh "$dir/run.sh" >"$tmp/run1.txt" 2>&1
    rc=$?
    [ $rc = 0 ] && ok "run.sh (RUN_WITHOUT_GPU, tiny CPU model) exits 0" || bad "run.sh (RUN_WITHOUT_GPU): exit $rc"
    tab="$out/table.md"
    for r in '| a. GPU, libraries |' '| b. kernel twin tests |' '| c. t_backend' '| d. WKV7 T=16 B=1 H=1 ' \
        '| f. rwkv-init L2-D64 | ok |' '| f. train L2-D64 ctx 64 micro_bsz 1 (cpu) | ok | 3 steps, ' \
        '| f. train L2-D64 ctx 64 micro_bsz 2 (cpu) | ok | 3 steps, ' \
        '| f. train L2-D64 ctx 64 micro_bsz 1 (cpu, tf32) | ok | 3 steps, '; do
        grep -qF -- "$r" "$tab" 2>/dev/null && ok "table row $r" || bad "table lacks $r"
    done
    grep -q '^| e\. ' "$tab" 2>/dev/null && ok "table has a GEMM row" || bad "table lacks a GEMM row"
    grep -F 'micro_bsz 1 (cpu) | ok' "$tab" 2>/dev/null | grep -qE ' [1-9][0-9]* tokens/s' &&
        ok "tokens/s parsed from metrics.jsonl" || bad "no tokens/s in the train row"
    n=$(find "$out" -type f | wc -l)
    [ -f "$out/log.txt" ] && [ -f "$out/parts.tar.gz" ] && [ "$n" -le 8 ] && ok "OUT holds $n files (the device tool returns 8)" ||
        bad "OUT: $(ls "$out" 2>/dev/null | tr '\n' ' ')"
    tar -tzf "$out/parts.tar.gz" 2>/dev/null | grep -q 'logs/f-metrics-b2.jsonl' && ok "parts.tar.gz holds the metrics" ||
        bad "parts.tar.gz lacks logs/f-metrics-b2.jsonl"
    [ $fails = 0 ] || { echo "--- run.sh output:"; tail -n 40 "$tmp/run1.txt"; }
fi
if [ $fails = 0 ]; then echo "all ok"; exit 0; fi
echo "$fails failure(s)"
exit 1
