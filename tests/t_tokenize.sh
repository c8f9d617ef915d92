#!/bin/sh
# rwkv-tokenize: golden demo figures (shared/golden/README.md), tokenizer vectors,
# equality with the Python reference (tests/ref/trie_tokenizer.py) on demo.jsonl and
# on random/adversarial text, -j 2 == -j 1, --text/--decode round trips, options.
. "$TOP/tests/lib.sh"
vocab=$TOP/share/rwkv7c/rwkv_vocab_v20230424.txt
demo=$TOP/examples/demo.jsonl
ref() { "$PYTHON" "$TOP/tests/ref/trie_tokenizer.py" "$vocab" jsonl; }

# --- demo.jsonl in file order ---
rwkv-tokenize --text "$demo" > demo.ids
check "--text exits 0" test $? -eq 0
eq "demo: documents" "$(wc -l < demo.ids | tr -d ' ')" 182
eq "demo: tokens with separators" "$(wc -w < demo.ids | tr -d ' ')" 66833
eq "demo: first 40 tokens" "$(tr ' ' '\n' < demo.ids | head -n 40 | tr '\n' ' ')" \
   "40812 59 21189 21286 4419 3609 59179 47 21189 32475 4435 38594 332 32202 47 21189 31475 56305 332 55975 21265 31323 45175 47 261 24281 59 37580 4419 50958 37810 4712 32234 269 66 22068 21800 30259 51169 32487 "
eq "demo: last 20 tokens" "$(tr ' ' '\n' < demo.ids | tail -n 20 | tr '\n' ' ')" \
   "41693 59 50712 29284 59 37358 7856 19617 28670 4811 22590 61327 45 21400 37071 50460 29904 4811 29864 0 "
ref < "$demo" > demo.ref
check "demo: identical to the Python reference" cmp -s demo.ids demo.ref

rwkv-tokenize "$demo" > demo.tok
check "binary stream exits 0" test $? -eq 0
eq "binary stream size (8 + 182*4 + 66833*4 + 28)" "$(wc -c < demo.tok | tr -d ' ')" $((8 + 182*4 + 66833*4 + 28))
if [ -x "$BIN/binidx-write" ]; then
    binidx-write demo < demo.tok 2>/dev/null
    eq "demo.bin sha256 (golden)" "$(sha256sum demo.bin | cut -d' ' -f1)" 2ee88ff54143f5fa5581988d265d407aac594997f29ab74b1e63bb3b2f86e796
    eq "demo.idx sha256 (golden)" "$(sha256sum demo.idx | cut -d' ' -f1)" 15d4d0632042887f98398f15ea7b2da85c87c5f21d65c15561fdd7d602fdcd62
fi
rwkv-tokenize -j 2 "$demo" > demo2.tok
check "-j 2 output identical to -j 1" cmp -s demo.tok demo2.tok
cat "$demo" "$demo" "$demo" > demo3.jsonl
rwkv-tokenize -j 1 demo3.jsonl > d3a.tok; rwkv-tokenize -j 2 demo3.jsonl > d3b.tok
check "-j 2 identical on 3 copies" cmp -s d3a.tok d3b.tok
rwkv-tokenize < "$demo" > demo_stdin.tok
check "stdin works (no FILE)" cmp -s demo.tok demo_stdin.tok
if command -v zstd >/dev/null; then
    zstd -q -c "$demo" > demo.jsonl.zst
    rwkv-tokenize - < demo.jsonl.zst > demo_zst.tok
    check "zstd input on stdin" cmp -s demo.tok demo_zst.tok
fi
eq "two FILEs make one stream" "$(rwkv-tokenize --text "$demo" - < "$demo" | wc -l | tr -d ' ')" 364

# --- decode ---
rwkv-tokenize --decode demo.tok > dec_bin.txt
rwkv-tokenize --decode demo.ids > dec_txt.txt
check "--decode of binary and of --text agree" cmp -s dec_bin.txt dec_txt.txt
"$PYTHON" -c '
import json, sys
docs = [json.loads(l)["text"] for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
sys.stdout.write("".join(d + "\n" for d in docs))' "$demo" > demo_texts.txt
check "--decode gives back the texts" cmp -s dec_bin.txt demo_texts.txt
eq "--decode IDs on the command line" "$(rwkv-tokenize --decode 33155 40213 45 33 10464 11685)" "Hello world, 你好"
expect_fail "--decode unknown id" "not in the vocabulary" rwkv-tokenize --decode 65530
printf '1 2 3\n4 x\n' > badids.txt
expect_fail "--decode bad text id: FILE:LINE" "badids.txt:2: not a token id" rwkv-tokenize --decode badids.txt

# --- vectors (JSON escapes included) ---
printf '%s\n' '{"text": "Hello world, 你好"}' '{"text": "The Eiffel tower is in the city of"}' \
    '{"text": "\n\n"}' '{"text": "aa"}' '{"x": 1, "text": "bb"}' '{"text": "\u00e9\ud83d\ude00"}' > vec.jsonl
rwkv-tokenize --text --no-eod vec.jsonl > vec.ids
eq "vector Hello world" "$(sed -n 1p vec.ids)" "33155 40213 45 33 10464 11685"
eq "vector Eiffel" "$(sed -n 2p vec.ids)" "6699 304 25740 109 39990 4600 4596 22590 30449 4706"
eq "vector \\n\\n" "$(sed -n 3p vec.ids)" "261"
eq "vector aa" "$(sed -n 4p vec.ids)" "1733"
eq "vector bb" "$(sed -n 5p vec.ids)" "1760"
eq "surrogate pair matches Python" "$(sed -n 6p vec.ids)" "$(sed -n 6p vec.jsonl | ref | sed 's/ 0$//')"
eq "--field" "$(printf '{"body": "aa", "text": "bb"}\n' | rwkv-tokenize --text --field body)" "1733 0"
eq "empty text is a document of just 0" "$(printf '{"text": ""}\n' | rwkv-tokenize --text)" "0"
printf '\n   \n{"text": "aa"}\n\t\n\302\240\n{"text": "bb"}\n' > blank.jsonl
eq "blank and whitespace-only lines skipped" "$(rwkv-tokenize --text blank.jsonl | tr '\n' '|')" "1733 0|1760 0|"

# --- random and adversarial text against the Python reference ---
"$PYTHON" - > adv.jsonl <<'PY'
import json, random
r = random.Random(1234)
def rand_cp():
    k = r.random()
    if k < 0.3: return chr(r.randint(0x20, 0x7e))
    if k < 0.45: return chr(r.randint(0xa0, 0x24f))
    if k < 0.65: return chr(r.randint(0x4e00, 0x9fff))
    if k < 0.75: return chr(r.randint(0x1f300, 0x1faff))
    if k < 0.8: return r.choice("\n\t\r \u3000\u00a0\u200b\ufeff")
    while True:
        c = r.randint(1, 0x10ffff)
        if not 0xd800 <= c <= 0xdfff: return chr(c)
docs = []
for i in range(150):
    docs.append("".join(rand_cp() for _ in range(r.randint(0, 300))))
for i in range(60):
    docs.append(bytes(r.randrange(256) for _ in range(r.randint(1, 400))).decode("utf-8", "replace"))
for c in ["a", " ", "\n", "0", "你", "😀", "ab", " the", "\u00e9", "=", "-"]:
    docs.append(c * r.choice([1, 2, 3, 127, 128, 129, 1000, 5000]))
docs.append(" ".join(str(r.randint(0, 10**6)) for _ in range(500)))
docs.append("\x00\x01\x7f" * 50)
for d in docs:
    print(json.dumps({"text": d}, ensure_ascii=r.random() < 0.5))
PY
ref < adv.jsonl > adv.ref
rwkv-tokenize --text adv.jsonl > adv.ids
check "random/adversarial: identical to the Python reference" cmp -s adv.ids adv.ref
eq "random/adversarial: all documents" "$(wc -l < adv.ids | tr -d ' ')" "$(wc -l < adv.ref | tr -d ' ')"
rwkv-tokenize -j 2 adv.jsonl > adv2.tok; rwkv-tokenize adv.jsonl > adv1.tok
check "random/adversarial: -j 2 == -j 1" cmp -s adv1.tok adv2.tok

# --- command line ---
rwkv-tokenize --help > help.txt; eq "--help exits 0" $? 0
check "--help on stdout" grep -q "Usage: rwkv-tokenize" help.txt
eq "--version" "$(rwkv-tokenize --version | cut -d' ' -f1)" rwkv-tokenize
rwkv-tokenize --bogus >/dev/null 2>&1; eq "unknown option exits 2" $? 2
rwkv-tokenize -j 0 "$demo" >/dev/null 2>&1; eq "-j 0 exits 2" $? 2
RWKV7C_DATA=/nonexistent rwkv-tokenize --vocab "$vocab" --text vec.jsonl > vv.ids
eq "--vocab FILE gives the same ids" "$(head -n 1 vv.ids)" "33155 40213 45 33 10464 11685 0"
# --decode of the text form stays linear after a long line (zstd hands over a whole buffer
# of short lines at once; moving the rest after every line was quadratic: minutes, not 1 s).
awk 'BEGIN { for (i = 0; i < 2000000; i++) printf "5 "; print "0"; for (i = 0; i < 2000000; i++) print "5" }' > lin.ids
if command -v zstd >/dev/null; then zstd -q -c lin.ids > lin.ids.zst; else cp lin.ids lin.ids.zst; fi
check "--decode text form after a long line: linear time" sh -c 'timeout 10 rwkv-tokenize --vocab "$1" --decode lin.ids.zst > lin.txt' sh "$vocab"
eq "...every line decoded" "$(wc -l < lin.txt | tr -d ' ')" 2000001

# RWKV7C_TOKENIZER_WALK=scalar (one text at a time) gives the same ids as the default walk, on
# short texts (the batch walk) and a long one (split into segments), and on -j 2
"$PYTHON" -c 'import json
print(json.dumps({"text": "The quick brown fox. " * 2000 + "\u4e2d\u6587 \U0001F600 end"}))
for i in range(300): print(json.dumps({"text": "line %d: " % i + "word " * (i % 37)}))' > walk.jsonl
rwkv-tokenize --text walk.jsonl > walk-default.ids
RWKV7C_TOKENIZER_WALK=scalar rwkv-tokenize --text walk.jsonl > walk-scalar.ids
RWKV7C_TOKENIZER_WALK=vector rwkv-tokenize -j 2 --text walk.jsonl > walk-vector.ids
check "the scalar walk gives the same ids" cmp walk-default.ids walk-scalar.ids
check "... and so does the vector walk on -j 2" cmp walk-default.ids walk-vector.ids

if command -v script >/dev/null 2>&1; then
    script -qec "$BIN/rwkv-tokenize vec.jsonl" /dev/null > tty.txt 2>&1 < /dev/null
    check "refuses to write binary to a terminal" grep -q "refusing to write a binary token stream to a terminal" tty.txt
fi
finish
