#!/bin/sh
# run.sh: rwkv7c's GPU check in one call (README.md beside this file).  On a machine with an
# NVIDIA GPU, the driver and the CUDA 13 runtime libraries:
#   a. nvidia-smi, the libraries found (cuBLASLt, NCCL, the driver's libcuda), ldd of every program
#   b. the kernel twin tests (tests/t_*) on the device
#   c. t_backend: the whole CUDA backend against the CPU backend (bf16 against its bf16 mode,
#      fp32 and tf32 against its fp32 mode)
#   d. the WKV7 forward+backward timing sweep at T = 4096 over B*H in {12, 32, 96, 256, 512}
#   e. gemm_rates: cuBLASLt's TFLOP/s at L12-D768's matrix products
#   f. rwkv-init L12-D768, then 20 steps of rwkv-train --accelerator gpu at ctx 4096, micro_bsz 1
#      and 8 in bf16, and micro_bsz 1 in tf32 (TRAIN_TF32_BSZ): tokens/s, the device memory
#      high-water mark (the trainer's, nvidia-smi's peak)
#   g. the single-GPU NCCL smoke test, when the bundle has one
# Every part has its own time limit, all within RUN_BUDGET_S; a part that fails or times out is
# marked and the rest go on.  Results: $OUT (else ./out): table.md (also printed last), log.txt
# (every part's output), parts.tar.gz (each part's log, metrics, nvidia-smi samples).
#
# Without a GPU it says so, writes a table saying so and exits 0.  RUN_WITHOUT_GPU=1 runs every
# part anyway (check.sh does, with a tiny model on the CPU: BUNDLE_ACCELERATOR=cpu TRAIN_*).
set -u
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$PWD/out}
BUDGET=${RUN_BUDGET_S:-450}
ACCEL=${BUNDLE_ACCELERATOR:-gpu}
TRAIN_LAYERS=${TRAIN_LAYERS:-12}
TRAIN_EMBD=${TRAIN_EMBD:-768}
TRAIN_CTX=${TRAIN_CTX:-4096}
TRAIN_BSZ=${TRAIN_BSZ:-1 8}
TRAIN_TF32_BSZ=${TRAIN_TF32_BSZ-1}   # the same runs with --precision tf32 (empty: none)
TRAIN_STEPS=${TRAIN_STEPS:-20}
SWEEP=${SWEEP:-1x12 1x32 8x12 8x32 8x64}   # B x H; H 12 is L12-D768's, 32 the 1.5B's
SWEEP_T=${SWEEP_T:-4096}
GEMM_ARGS=${GEMM_ARGS:-}
TEST_LIMIT_S=${TEST_LIMIT_S:-60}   # each kernel twin test

mkdir -p "$OUT" || exit 1
work=$(mktemp -d "${TMPDIR:-/tmp}/rwkv7c-gpu.XXXXXX") || exit 1
smi_pid=
trap 'rm -rf "$work"' EXIT
trap '[ -n "$smi_pid" ] && kill $smi_pid 2>/dev/null; rm -rf "$work"; exit 130' INT TERM
mkdir "$work/logs"
rows="$work/rows"
: >"$rows"
: >"$OUT/log.txt"
start=$(date +%s)
deadline=$((start + BUDGET))
when=$(date -u '+%Y-%m-%d %H:%M:%S UTC')

say() { echo "$*"; echo "$*" >>"$OUT/log.txt"; }
row() { printf '| %s | %s | %s |\n' "$1" "$2" "$3" >>"$rows"; }
have() { command -v "$1" >/dev/null 2>&1; }

# limit SECONDS RESERVE: SECONDS, or less so that RESERVE seconds are left for the parts after;
# when earlier parts took that too, at most 5 s of what is left; 0 when the budget is spent.
limit() {
    left=$((deadline - $(date +%s)))
    spare=$((left - $2))
    if [ $spare -ge $1 ]; then echo $1
    elif [ $spare -ge 5 ]; then echo $spare
    elif [ $left -ge 5 ]; then echo 5
    else echo 0; fi
}

# part NAME SECONDS COMMAND...: runs it with its output in logs/NAME.log (and log.txt), killed
# after SECONDS; sets rc (124: timed out) and secs.
part() {
    name=$1 t=$2
    shift 2
    log="$work/logs/$name.log"
    echo "\$ $*" >"$log"
    t0=$(date +%s)
    if [ "$t" -le 0 ]; then
        rc=125 secs=0
        echo "not run: the time budget ($BUDGET s) is spent" >"$log"
        echo "=== $name: not run, the time budget ($BUDGET s) is spent" | tee -a "$OUT/log.txt"
        return
    fi
    if have timeout; then timeout -k 10 "$t" "$@" >>"$log" 2>&1; else "$@" >>"$log" 2>&1; fi
    rc=$?
    secs=$(($(date +%s) - t0))
    { echo "=== $name: exit $rc, $secs s (limit $t s)"; cat "$log"; echo; } >>"$OUT/log.txt"
    echo "== $name: exit $rc, $secs s"
}

# status [EXPECT_77_TEXT]: the table's word for rc.
status() {
    case $rc in
        0) echo ok ;;
        77) echo "skipped (${1:-no device})" ;;
        124 | 137) echo "TIMEOUT (${t} s)" ;;
        125) echo "not run (budget spent)" ;;
        *) echo "FAIL (exit $rc)" ;;
    esac
}

finish() {
    total=$(($(date +%s) - start))
    {
        echo "# rwkv7c GPU check, $when"
        echo
        echo "bundle: $(tr '\n' ';' <"$here/BUILD-INFO" 2>/dev/null | sed 's/;$//; s/;/; /g')"
        echo "machine: $gpu_line"
        echo
        echo "| part | status | result |"
        echo "|---|---|---|"
        cat "$rows"
        echo
        echo "wall $total s (budget $BUDGET s); logs: log.txt, parts.tar.gz"
    } >"$OUT/table.md"
    tar -czf "$OUT/parts.tar.gz" -C "$work" logs 2>/dev/null
    echo
    cat "$OUT/table.md"
    exit 0
}

# --- a. the GPU, the libraries ------------------------------------------------------------------
gpu_line="no GPU"
gpu=0
if have nvidia-smi && nvidia-smi -L >"$work/logs/gpus.txt" 2>&1 && grep -q '^GPU ' "$work/logs/gpus.txt"; then
    gpu=1
    gpu_line=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
fi
gpu_line="$gpu_line; $(uname -m), $(nproc 2>/dev/null || echo '?') CPUs, $(ldd --version 2>/dev/null | head -n 1 | sed 's/.* //;s/^/glibc /')"
say "rwkv7c GPU check, $when: $gpu_line"
if [ $gpu = 0 ] && [ -z "${RUN_WITHOUT_GPU:-}" ]; then
    say "no GPU here (nvidia-smi: $(head -n 1 "$work/logs/gpus.txt" 2>/dev/null || echo 'not found')): nothing to run"
    row "a. GPU" "no GPU" "nvidia-smi found none: no part was run"
    finish
fi

# A library's directory: LD_LIBRARY_PATH, the toolkit, Python's nvidia-* wheels (PyTorch's), the
# driver's folder, then ld.so's cache.
site_dirs() {
    have python3 && python3 -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null
    ls -d /opt/*/.venv/lib/python3*/site-packages /usr/local/lib/python3*/dist-packages /usr/lib/python3/dist-packages 2>/dev/null
}
find_lib() {
    for d in $(echo "${LD_LIBRARY_PATH:-}" | tr ':' ' ') /usr/local/cuda/lib64 /usr/local/cuda/targets/*/lib \
        /usr/local/cuda-*/lib64 /usr/local/cuda-*/targets/*/lib /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
        [ -e "$d/$1" ] && { echo "$d"; return 0; }
    done
    for s in $(site_dirs); do
        f=$(find "$s/nvidia" -maxdepth 4 -name "$1" 2>/dev/null | head -n 1)
        [ -n "$f" ] && { dirname "$f"; return 0; }
    done
    f=$(ldconfig -p 2>/dev/null | awk -v n="$1" '$1 == n { print $NF; exit }')
    [ -n "$f" ] && { dirname "$f"; return 0; }
    return 1
}
found=
for lib in libcublasLt.so.13 libnccl.so.2 libcuda.so.1; do
    if d=$(find_lib $lib); then
        found="$found $lib: $d;"
        case ":${LD_LIBRARY_PATH:-}:" in *":$d:"*) ;; *) LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac
    else
        found="$found $lib: not found;"
    fi
done
export LD_LIBRARY_PATH
found=${found%;}
{
    have nvidia-smi && nvidia-smi 2>&1
    echo "libraries:$found"
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    for p in "$here"/bin/* "$here"/tests/*; do echo "ldd $p:"; ldd "$p" 2>&1; done
} >"$work/logs/a-env.log"
cat "$work/logs/a-env.log" >>"$OUT/log.txt"
missing=$(grep -B0 'not found' "$work/logs/a-env.log" | grep '=>' | sed 's/ *=>.*//; s/^[[:space:]]*//' | sort -u | tr '\n' ' ')
if [ -n "$missing" ]; then
    row "a. GPU, libraries" "FAIL" "${found# } missing for some programs: $missing"
else
    row "a. GPU, libraries" "ok" "${found# }"
fi
say "libraries:$found"

# --- b. kernel twin tests; c. t_backend; g. NCCL (each a program in tests/) -----------------------
b_ok=0 b_skip=0 b_bad=
for p in "$here"/tests/t_*; do
    n=${p##*/}
    case $n in t_backend | *nccl* | *comm*) continue ;; esac
    part "b-$n" "$(limit "$TEST_LIMIT_S" 300)" "$p"
    case $(status) in
        ok) b_ok=$((b_ok + 1)) ;;
        skipped*) b_skip=$((b_skip + 1)) ;;
        *) b_bad="$b_bad $n: $(status);" ;;
    esac
done
if [ -n "$b_bad" ]; then st=FAIL; elif [ $b_ok = 0 ]; then st="skipped"; else st=ok; fi
row "b. kernel twin tests" "$st" "$b_ok ok, $b_skip skipped (no device)${b_bad:+; failed:$b_bad}"

if [ -x "$here/tests/t_backend" ]; then
    part c-t_backend "$(limit 120 260)" "$here/tests/t_backend"
    row "c. t_backend (CUDA vs CPU backend)" "$(status)" "$(tail -n 1 "$log" | cut -c1-160)"
else
    row "c. t_backend (CUDA vs CPU backend)" "absent" "not in this bundle"
fi

# --- d. WKV7 sweep ------------------------------------------------------------------------------
for s in $SWEEP; do
    B=${s%x*} H=${s#*x}
    part "d-wkv-B$B-H$H" "$(limit 60 200)" "$here/tests/t_wkv7" --time "$B" "$H" "$SWEEP_T"
    r=$(sed -n 's/.*: \(fwd [0-9.]* ms, bwd [0-9.]* ms\).*/\1/p' "$log" | tail -n 1)
    row "d. WKV7 T=$SWEEP_T B=$B H=$H (B*H $((B * H)))" "$(status)" "${r:-$(tail -n 1 "$log" | cut -c1-120)}"
done

# --- e. GEMM rates ------------------------------------------------------------------------------
part e-gemm_rates "$(limit 120 170)" "$here/bin/gemm_rates" $GEMM_ARGS
st=$(status)
if [ "$st" = ok ] || grep -q '^  *[0-9]' "$log"; then
    awk '$1 ~ /^[0-9]+$/ && NF >= 8 {
             k = $1 " " $2; if (!(k in seen)) { seen[k] = 1; order[++n] = k }
             r[k] = r[k] (r[k] == "" ? "" : ", ") $3 " " $8 }
         END { for (i = 1; i <= n; i++) { split(order[i], a, " ");
                   printf "| e. GEMM T=%s %s | ok | %s TFLOP/s |\n", a[1], a[2], r[order[i]] } }' "$log" >>"$rows"
    sed -n 's/^# T \([0-9]*\): .* take about \([0-9.]*\) ms: at most \([0-9]*\) tokens.*/| e. GEMM step estimate T=\1 | - | \2 ms of large GEMMs per step: at most \3 tokens\/s |/p' "$log" >>"$rows"
fi
[ "$st" = ok ] || row "e. gemm_rates" "$st" "$(tail -n 1 "$log" | cut -c1-160)"

# --- f. rwkv-init, 20 steps of training -----------------------------------------------------------
model="$work/init.safetensors"
part f-init "$(limit 120 140)" "$here/bin/rwkv-init" -L "$TRAIN_LAYERS" -C "$TRAIN_EMBD" -s 1 -q -o "$model"
row "f. rwkv-init L$TRAIN_LAYERS-D$TRAIN_EMBD" "$(status)" "$secs s"

# The median of the per-step tokens/s after the first step (which pays for cuBLASLt's
# heuristics and first-touch allocations); the first and last loss.
metrics_summary() {
    sed -n 's/.*"step":\([0-9]*\),"loss":\([^,]*\),.*"tokens_per_s":\([^,]*\),.*/\1 \2 \3/p' "$1" | awk '
        NR == 1 { l0 = $2 } { l1 = $2; n++ } $1 > 0 { t[++m] = $3 }
        END {
            if (!n) { print "no steps logged"; exit }
            for (i = 2; i <= m; i++) { v = t[i]; j = i - 1; while (j > 0 && t[j] > v) { t[j + 1] = t[j]; j-- } t[j + 1] = v }
            med = m ? (m % 2 ? t[(m + 1) / 2] : (t[m / 2] + t[m / 2 + 1]) / 2) : 0
            printf "%d steps, %.0f tokens/s (median after step 0), loss %s -> %s", n, med, l0, l1
        }'
}

ran_train=0
runs=
for mb in $TRAIN_BSZ; do runs="$runs $mb:bf16"; done
for mb in $TRAIN_TF32_BSZ; do runs="$runs $mb:tf32"; done
left_runs=$(echo $runs | wc -w)   # each later run keeps 75 s of the budget
for run in $runs; do
    mb=${run%:*} prec=${run#*:}
    tag=b$mb
    [ "$prec" = bf16 ] || tag="b$mb-$prec"
    proj="$work/train-$tag"
    tokens=$((TRAIN_STEPS * TRAIN_CTX * mb))
    set -- "$here/bin/rwkv-train" --accelerator "$ACCEL" --proj_dir "$proj" --data_file "$here/data/demo" \
        --load_model "$model" --ctx_len "$TRAIN_CTX" --micro_bsz "$mb" --my_exit_tokens "$tokens" --allow_repeat \
        --save_minutes 0 --timing --precision "$prec"
    label="f. train L$TRAIN_LAYERS-D$TRAIN_EMBD ctx $TRAIN_CTX micro_bsz $mb ($ACCEL)"
    [ "$prec" = bf16 ] || label="f. train L$TRAIN_LAYERS-D$TRAIN_EMBD ctx $TRAIN_CTX micro_bsz $mb ($ACCEL, $prec)"
    if [ ! -f "$model" ]; then
        row "$label" "not run" "no initial model (rwkv-init failed or did not run)"
        continue
    fi
    part "f-plan-$tag" "$(limit 30 100)" "$@" --dry-run
    plan=$(sed -n 's/^ *total *\([0-9.]*\) MiB.*/\1 MiB/p' "$log" | head -n 1)
    [ -n "$plan" ] || plan=$(sed -n 's/^memory *about \(.*\) per device.*/\1/p' "$log" | head -n 1)
    smi="$work/logs/f-smi-$tag.txt"
    base=
    if [ $gpu = 1 ]; then
        base=$(nvidia-smi -i 0 --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -n 1)
        nvidia-smi -i 0 --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$smi" 2>&1 &
        smi_pid=$!
    fi
    left_runs=$((left_runs - 1))
    part "f-train-$tag" "$(limit 150 $((left_runs > 0 ? 75 * left_runs : 10)))" "$@"
    st=$(status)
    [ -n "$smi_pid" ] && { kill $smi_pid 2>/dev/null; wait $smi_pid 2>/dev/null; smi_pid=; }
    cp "$proj/metrics.jsonl" "$work/logs/f-metrics-$tag.jsonl" 2>/dev/null
    hw=$(sed -n 's/.*device memory high-water \([0-9]*\) MiB.*/\1/p' "$log" | tail -n 1)
    peak=
    [ -s "$smi" ] && peak=$(awk -v b="${base:-0}" '$1 ~ /^[0-9]+$/ && $1 > m { m = $1 } END { if (m) printf "%d MiB (%d over the %d before)", m, m - b, b }' "$smi")
    summary=$(metrics_summary "$proj/metrics.jsonl" 2>/dev/null)
    tps=$(echo "$summary" | sed -n 's/.*, \([0-9]*\) tokens\/s.*/\1/p')
    mfu=
    peak_tf=989.4   # H100/H200 SXM dense tensor-core TFLOP/s: bf16, and tf32 half of it
    [ "$prec" = tf32 ] && peak_tf=494.7
    [ -n "$tps" ] && [ "$TRAIN_LAYERS-$TRAIN_EMBD" = 12-768 ] &&
        mfu=$(awk -v t="$tps" -v p="$peak_tf" 'BEGIN { printf ", MFU %.1f%% (0.862 GFLOP/token, %s TFLOP/s)", 100 * t * 0.862e9 / (p * 1e12), p }')
    why=
    [ "$st" = ok ] || why="$(grep -v '^\$ ' "$log" | tail -n 1 | cut -c1-160); "
    row "$label" "$st" "$why${summary:-no metrics}$mfu; high-water ${hw:+$hw MiB}${hw:-not reported}, plan ${plan:-?}, nvidia-smi peak ${peak:--}; $secs s"
    rm -rf "$proj"
    ran_train=1
done

# --- h. decode on the GPU (rwkv-generate --accelerator gpu), L12-D768 -----------------------------
# Tokens/s of the decode alone: two runs after the same prompt, 1 and 257 tokens greedy; their
# difference is 256 decode steps (model loading, cuBLASLt's set-up and the prefill cancel out).
if [ -x "$here/bin/rwkv-generate" ] && [ -f "$model" ]; then
    prompt="The quick brown fox jumps over the lazy dog. $(printf 'word%d ' $(seq 1 60))"
    part h-decode-1 "$(limit 60 20)" "$here/bin/rwkv-generate" -m "$model" --accelerator "$ACCEL" --prompt "$prompt" \
        -n 1 --temperature 0 --vocab "$here/share/rwkv7c/rwkv_vocab_v20230424.txt"
    s1=$secs st1=$(status)
    t0n=$(date +%s%N)
    "$here/bin/rwkv-generate" -m "$model" --accelerator "$ACCEL" --prompt "$prompt" -n 1 --temperature 0 \
        --vocab "$here/share/rwkv7c/rwkv_vocab_v20230424.txt" >/dev/null 2>&1
    t1n=$(date +%s%N)
    part h-decode-257 "$(limit 120 20)" "$here/bin/rwkv-generate" -m "$model" --accelerator "$ACCEL" --prompt "$prompt" \
        -n 257 --temperature 0 --vocab "$here/share/rwkv7c/rwkv_vocab_v20230424.txt"
    st2=$(status)
    t2n=$(date +%s%N)
    "$here/bin/rwkv-generate" -m "$model" --accelerator "$ACCEL" --prompt "$prompt" -n 257 --temperature 0 \
        --vocab "$here/share/rwkv7c/rwkv_vocab_v20230424.txt" >/dev/null 2>&1
    t3n=$(date +%s%N)
    if [ "$st1" = ok ] && [ "$st2" = ok ]; then
        row "h. decode L$TRAIN_LAYERS-D$TRAIN_EMBD ($ACCEL)" ok "$(awk -v a=$t0n -v b=$t1n -v c=$t2n -v d=$t3n \
            'BEGIN { dt = ((d - c) - (b - a)) / 1e9; if (dt > 0) printf "%.0f tokens/s (256 tokens in %.3f s, greedy)", 256 / dt, dt; else print "too fast to time" }')"
    else
        row "h. decode L$TRAIN_LAYERS-D$TRAIN_EMBD ($ACCEL)" "$st1/$st2" "$(grep -v '^\$ ' "$log" | tail -n 1 | cut -c1-160)"
    fi
fi

# --- g. NCCL smoke test, when the bundle has one --------------------------------------------------
for p in "$here"/tests/t_*nccl* "$here"/tests/t_*comm*; do
    [ -x "$p" ] || continue
    part "g-${p##*/}" "$(limit 60 0)" "$p"
    row "g. ${p##*/} (NCCL, one GPU)" "$(status)" "$(tail -n 1 "$log" | cut -c1-160)"
done
finish
