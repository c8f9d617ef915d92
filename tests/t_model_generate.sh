#!/bin/sh
# rwkv-generate: logits after a text prompt equal the independent PyTorch
# implementation (tests/ref/x070.py) for bf16 and fp32 checkpoints; greedy and
# seeded sampling are reproducible; --stop, --chat, -n 0; errors.
. "$TOP/tests/lib.sh"
need_torch
ref="$TOP/tests/ref/x070.py"
# "Hello world, 你好" -> these ids (the RWKV World tokenizer: RWKV-LM-V7
# data/tokenizer/rwkv_tokenizer.py TRIE_TOKENIZER, as tests/ref/trie_tokenizer.py)
ids="33155 40213 45 33 10464 11685"
prompt="Hello world, 你好"
cmp_logits() {  # FILE REFDIR -> prints the max relative error, fails above 1e-4
    "$PYTHON" - "$1" "$2" <<'PY'
import sys, numpy as np
a = np.fromfile(sys.argv[1], "<f4")
r = np.fromfile(sys.argv[2] + "/logits.f32", "<f4").reshape(-1, 65536)[-1]
err = np.abs(a - r).max() / np.abs(r).max() if a.shape == r.shape else float("inf")
print("max rel err %.2e" % err)
sys.exit(0 if err <= 1e-4 else 1)
PY
}
for dt in bf16 fp32; do
    flag=; [ $dt = bf16 ] && flag=--bf16
    check "reference model ($dt)" "$PYTHON" "$ref" ref_$dt --layers 2 --embd 64 --vocab 65536 --ranks 32,32,32,32 \
        --tokens "$ids" $flag --seed 11 --no-grad
    check "-n 0 --logits-out ($dt)" rwkv-generate -m ref_$dt/model.safetensors --prompt "$prompt" -n 0 --logits-out l_$dt.f32
    eq "-n 0 prints nothing ($dt)" "$(rwkv-generate -m ref_$dt/model.safetensors --prompt "$prompt" -n 0)" ""
    check "logits match PyTorch ($dt)" cmp_logits l_$dt.f32 ref_$dt
done
m=ref_bf16/model.safetensors
if command -v pth-convert >/dev/null; then
    pth-convert $m ref.pth >/dev/null
    rwkv-generate -m ref.pth --prompt "$prompt" -n 0 --logits-out l_pth.f32
    check ".pth checkpoint: same logits as safetensors" cmp l_pth.f32 l_bf16.f32
fi
g1=$(rwkv-generate -m $m --prompt "$prompt" -n 12 --temperature 0)
g2=$(rwkv-generate -m $m --prompt "$prompt" -n 6 --temperature 0)
case "$g1" in "$g2"*) ok "greedy -n 6 is a prefix of greedy -n 12" ;; *) bad "greedy prefixes differ: '$g2' vs '$g1'" ;; esac
[ -n "$g2" ] && ok "greedy output not empty" || bad "greedy output empty"
s1=$(rwkv-generate -m $m --prompt "$prompt" -n 20 --seed 3)
s2=$(rwkv-generate -m $m --prompt "$prompt" -n 20 --seed 3)
s3=$(rwkv-generate -m $m --prompt "$prompt" -n 20 --seed 4 --top-k 50 --top-p 0.9 --temperature 1.3)
eq "same seed, same output" "$s1" "$s2"
[ "$s1" != "$s3" ] && ok "another seed/settings, other output" || bad "seed ignored"
# --stop: a string taken from the greedy output ends generation right after it
stop=$(printf '%s' "$g1" | "$PYTHON" -c 'import sys; t=sys.stdin.buffer.read(); sys.stdout.buffer.write(t[len(t)//2:len(t)//2+2])')
g3=$(rwkv-generate -m $m --prompt "$prompt" -n 12 --temperature 0 --stop "$stop")
case "$g1" in "$g3"*) ok "--stop output is a prefix" ;; *) bad "--stop output '$g3' not a prefix of '$g1'" ;; esac
case "$g3" in *"$stop"*) ok "--stop output contains the stop string" ;; *) bad "--stop: '$stop' missing from '$g3'" ;; esac
[ ${#g3} -lt ${#g1} ] && ok "--stop shortened the output" || bad "--stop did not stop"
out=$(printf 'hi\nhow are you\n' | rwkv-generate -m $m --chat -n 5 --temperature 0)
check "--chat answers" test -n "$out"
# the first chat turn is exactly the prompt "User: hi\n\nAssistant:" (reply ends at a blank line;
# $(...) drops the trailing newlines chat mode adds after a reply cut by -n)
c1=$(printf 'hi\n' | rwkv-generate -m $m --chat -n 8 --temperature 0)
blank=$(printf '\n\nx'); blank=${blank%x}
c2=$(rwkv-generate -m $m --prompt "$(printf 'User: hi\n\nAssistant:')" -n 8 --temperature 0 --stop "$blank")
eq "chat turn = User/Assistant prompt" "$c1" "$c2"
eq "prompt from stdin = --prompt" "$(printf '%s' "$prompt" | rwkv-generate -m $m -n 6 --temperature 0)" "$g2"
# errors
expect_fail "no model" "rwkv-generate: a checkpoint is required: -m MODEL" rwkv-generate --prompt x
eq "usage exit 2" "$(rwkv-generate --prompt x >/dev/null 2>&1; echo $?)" 2
eq "bad --top-p exit 2" "$(rwkv-generate -m $m --top-p 0 >/dev/null 2>&1; echo $?)" 2
for bad in "--top-p 0" "--top-k -1" "--temperature nan" "-n 1e9" "--seed x" "--stop="; do
    expect_fail "$bad: one phrasing" "rwkv-generate: invalid value '${bad#*[ =]}' for --" rwkv-generate -m $m $bad
done
expect_fail "missing checkpoint" "nope.safetensors" rwkv-generate -m nope.safetensors --prompt x
head -c 100000 $m > trunc.safetensors
expect_fail "truncated checkpoint" "trunc.safetensors" rwkv-generate -m trunc.safetensors --prompt x
expect_fail "logits to a missing directory" "no/such" rwkv-generate -m $m --prompt x -n 0 --logits-out no/such/l.f32
# a write that fails says why (file size limit: EFBIG; SIGXFSZ ignored), and leaves nothing
sh -c 'trap "" XFSZ; ulimit -f 64; exec rwkv-generate -m "$1" --prompt x -n 0 --logits-out big.f32' sh $m >/dev/null 2>xfsz.err
eq "failed --logits-out write: exit 1" $? 1
check "failed write names the reason" grep -q "big.f32: write failed: File too large" xfsz.err
check "failed write leaves no file" test ! -e big.f32
eq "failed write leaves no temp file" "$(ls -a | grep -c 'big\.f32')" 0
"$PYTHON" "$ref" small --layers 2 --embd 64 --vocab 300 --ranks 32,32,32,32 --no-grad >/dev/null
# D18: the message names the checkpoint, the token and the vocabulary size
# (24281 is "User", the first token of a chat turn)
expect_fail "prompt token beyond a small vocabulary" \
    "rwkv-generate: small/model.safetensors: prompt token 33155 is outside the model's vocabulary (size 300)" \
    rwkv-generate -m small/model.safetensors --prompt "Hello world"
expect_fail "chat turn token beyond a small vocabulary" \
    "rwkv-generate: small/model.safetensors: token 24281 of chat line 2 is outside the model's vocabulary (size 300)" \
    sh -c 'printf "\nHello world\n" | rwkv-generate -m small/model.safetensors --chat -n 1' 
check "--help" sh -c 'rwkv-generate --help | grep -q Usage'
check "man page renders" sh -c "MANWIDTH=80 man -l '$TOP/man/rwkv-generate.1' >/dev/null 2>&1 || ! command -v man >/dev/null"
finish
