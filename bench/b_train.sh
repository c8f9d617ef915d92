#!/bin/sh
# rwkv-train on the CPU: training tokens/s for small models, as a ratio to the
# peer measured in the same run — the model's own forward+backward time per
# step (lib/model.c) — so 1 - ratio is the host loop's share of the step:
# data sampling, the optimizer (norm, clip, Adam, bf16 copy), metrics and logging.
# Usage: bench/b_train.sh   (TRAIN_BENCH_STEPS=N steps per configuration, default 20)
top=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
bin="$top/build/bin"
py=${PYTHON:-/usr/bin/python3}
steps=${TRAIN_BENCH_STEPS:-20}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/b_train.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
[ -x "$bin/rwkv-train" ] || { echo "build first: make"; exit 1; }
echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), OMP_NUM_THREADS=${OMP_NUM_THREADS:-all}, $steps steps each"
run() {   # L C V ctx bsz grad_cp
    L=$1 C=$2 V=$3 T=$4 B=$5 cp=$6
    d="$tmp/L$L-C$C-V$V"
    [ -f "$tmp/data$V.bin" ] || "$py" "$top/tests/train_util.py" random "$tmp/data$V" 300000 "$V" 1 || return
    rm -rf "$d"; mkdir -p "$d"
    "$bin/rwkv-init" -L "$L" -C "$C" --vocab-size "$V" -s 1 -q -o "$d/rwkv-init.safetensors" || return
    "$bin/rwkv-train" --proj_dir "$d" --data_file "$tmp/data$V" --ctx_len "$T" --micro_bsz "$B" --grad_cp "$cp" \
        --exit_after_steps "$steps" --save_minutes 0 --timing 2>"$d/err" || { cat "$d/err"; return; }
    awk -v name="L$L-D$C V$V ctx$T bsz$B grad_cp$cp" '/timing:/ {
        for (i = 1; i <= NF; i++) {
            if ($i == "tokens/s;") tps = $(i-1)
            if ($i == "forward+backward") model = $(i+1)
            if ($i == "Adam,") opt = $(i+3)
            if ($i == "sampling") samp = $(i+1)
            if ($i == "metrics/progress") logp = $(i+1)
        }
        sub(/%,?/, "", model); sub(/%,?/, "", opt); sub(/%,?/, "", samp); sub(/%,?/, "", logp)
        printf "%-34s %9.0f tokens/s training = %.3fx the model forward+backward alone; host loop %.1f%% of step time (optimizer %.1f%%, sampling %.2f%%, metrics %.2f%%)\n",
            name, tps, model / 100, 100 - model, opt, samp, logp
    }' "$d/err"
}
run 2 128 65536 128 4 0
run 4 256 65536 256 4 0
run 4 256 65536 256 4 1
run 4 256 8192 256 8 0
