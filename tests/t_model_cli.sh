#!/bin/sh
# Command-line corners of the model tools: "-" and existing files for outputs,
# --chat --logits-out, non-finite logits, the CLI voice.
. "$TOP/tests/lib.sh"
m=tiny.safetensors
rwkv-init -q -L 2 -C 64 -s 5 -o $m || { echo "rwkv-init failed"; exit 1; }

# --logits-out -: refused (binary on stdout would mix with the text), no file named '-'
rwkv-generate -m $m --prompt x -n 0 --logits-out - >o.bin 2>e.txt
eq "--logits-out -: usage error" $? 2
check "--logits-out -: says why" grep -q "invalid value '-' for --logits-out" e.txt
check "--logits-out -: no file named '-'" test ! -e ./-

# O3: an existing --logits-out file needs -f, as every other output does
rwkv-generate -m $m --prompt x -n 0 --logits-out once.f32
cp once.f32 keep.f32
expect_fail "--logits-out onto an existing file: refused" "once.f32: exists (use -f to overwrite)" \
    rwkv-generate -m $m --prompt y -n 0 --logits-out once.f32
check "...and left alone" cmp once.f32 keep.f32
check "-f overwrites it" rwkv-generate -m $m --prompt y -n 0 -f --logits-out once.f32
check "...with the new logits" sh -c '! cmp -s once.f32 keep.f32'
# --logits-out /dev/stdout: the logits alone on standard output with -n 0 (this
# needs AtomicFile to write non-regular targets directly: the writers' change)
eq "--logits-out /dev/stdout -n 0: vocab_size floats on stdout" \
    "$(rwkv-generate -m $m --prompt x -n 0 --logits-out /dev/stdout | wc -c)" $((65536 * 4))

# O2: weights that overflow in fp32 give non-finite logits: an error naming the
# checkpoint and the step, exit 1, nothing printed or written
"$PYTHON" - $m huge.st <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); data = bytearray(b[8 + n:])
# no checksums: the file is exactly what a trainer that overflowed might have saved
h["__metadata__"] = {k: v for k, v in h["__metadata__"].items() if not k.startswith("xxh3:")}
t = h["head.weight"]; lo, hi = t["data_offsets"]
big = struct.pack("<f", 3.0e38)
big = {"F32": big, "BF16": big[2:]}[t["dtype"]]
data[lo:hi] = big * ((hi - lo) // len(big))
hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + bytes(data))
PY
for mode in "--temperature 0" "--top-k 3" ""; do
    expect_fail "overflowing weights ($mode): error" \
        "rwkv-generate: huge.st: the logits after the prompt are not finite" \
        rwkv-generate -m huge.st --prompt "" -n 5 $mode
    check "...nothing printed ($mode)" test ! -s out.txt
done
expect_fail "overflowing weights, chat: names the line" "huge.st: the logits after chat line 1 are not finite" \
    sh -c 'echo hi | rwkv-generate -m huge.st --chat -n 5' 
expect_fail "overflowing weights, --logits-out: error" "not finite" \
    rwkv-generate -m huge.st --prompt "" -n 0 --logits-out huge.f32
check "...no logits file" test ! -e huge.f32

# --chat without --prompt: the first turn is the prompt of --logits-out
printf 'hi\n' | rwkv-generate -m $m --chat -n 1 --temperature 0 --logits-out chat.f32 >/dev/null
check "--chat --logits-out writes the file" test -s chat.f32
rwkv-generate -m $m --prompt "$(printf 'User: hi\n\nAssistant:')" -n 0 --logits-out plain.f32
check "--chat logits = logits of the first turn as a prompt" cmp chat.f32 plain.f32

# a checkpoint through a pipe: the format sniffing must not eat it and then call it "not a checkpoint"
expect_fail "-m a pipe: not a regular file" "not a regular file" sh -c "cat $m | rwkv-generate -m /dev/stdin --prompt x -n 0"
expect_fail "-m a directory: not a regular file" "not a regular file" rwkv-generate -m . --prompt x -n 0

# stdout on a full disk: stops at the first failed write, with the real reason
if [ -w /dev/full ]; then
    rwkv-generate -m $m --prompt x -n 300 >/dev/full 2>full.err
    eq "rwkv-generate >/dev/full: exit 1" $? 1
    check "rwkv-generate >/dev/full: says 'No space left'" grep -q "No space left on device" full.err
fi

# metrics-plot -o -: standard output, as without -o
printf '{"step":1,"loss":2,"lr":0.1}\n{"step":2,"loss":1.5,"lr":0.1}\n' >m.jsonl
metrics-plot -o - m.jsonl >a.svg
metrics-plot m.jsonl >b.svg
check "metrics-plot -o - writes stdout" cmp a.svg b.svg
check "metrics-plot -o -: no file named '-'" test ! -e ./-
# a title (default: the file name) with control characters or non-UTF-8 bytes still gives well-formed XML
metrics-plot -t "$(printf 'run\001 \377<1>')" m.jsonl >t.svg
check "metrics-plot: odd title bytes, SVG parses" "$PYTHON" -c '
import sys, xml.dom.minidom as m
t = m.parse(sys.argv[1]).getElementsByTagName("text")[0].firstChild.data
assert t.startswith("run\ufffd \ufffd<1>"), repr(t)' t.svg
# a run that ends on skipped steps ("loss":null): the title shows the last loss there is, not nan
printf '{"step":1,"loss":2,"lr":0.1}\n{"step":2,"loss":null,"lr":0.1}\n' | metrics-plot -s 1 >n.svg
check "metrics-plot: last finite loss in the title" grep -q "2 steps, last loss 2.0000" n.svg
printf '{"step":1,"loss":null,"lr":0.1}\n' | metrics-plot >n1.svg
check "metrics-plot: no finite loss at all" grep -q "1 steps, no finite loss" n1.svg
# --chat -n 0 reads the turns and generates nothing (as -n 0 without --chat)
printf 'hi\n' | rwkv-generate -m $m --chat -n 0 >chat0.txt 2>/dev/null
check "--chat -n 0 generates no reply" sh -c '! grep -q "[^[:space:]]" chat0.txt'
# a LoRA rank of 0 is an error, not "use the formula"
expect_fail "rwkv-init --lora-decay 0 refused" "invalid value '0' for --lora-decay (want a whole number from 1" rwkv-init -q -L 2 -C 64 --lora-decay 0 -o lora0.st
check "...nothing written" test ! -e lora0.st
# one CLI voice
for t in rwkv-generate rwkv-init metrics-plot; do
    eq "$t -V" "$($t -V)" "$t (rwkv7c) 0.1.0"
    check "$t --help starts with Usage:" sh -c "$t --help | head -n 1 | grep -q '^Usage: $t '"
done
finish
