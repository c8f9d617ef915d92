#!/bin/sh
# Command-line corners of the model tools: "-" for outputs, --chat --logits-out.
. "$TOP/tests/lib.sh"
m=tiny.safetensors
rwkv-init -q -L 2 -C 64 -s 5 -o $m || { echo "rwkv-init failed"; exit 1; }

# --logits-out -: refused (binary on stdout would mix with the text), no file named '-'
rwkv-generate -m $m --prompt x -n 0 --logits-out - >o.bin 2>e.txt
eq "--logits-out -: usage error" $? 2
check "--logits-out -: says why" grep -q "logits-out" e.txt
check "--logits-out -: no file named '-'" test ! -e ./-

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
expect_fail "rwkv-init --lora-decay 0 refused" "want 1 or more" rwkv-init -q -L 2 -C 64 --lora-decay 0 -o lora0.st
check "...nothing written" test ! -e lora0.st
finish
