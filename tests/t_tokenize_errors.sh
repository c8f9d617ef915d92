#!/bin/sh
# rwkv-tokenize on malformed input: every kind of bad line stops the run with
# "rwkv-tokenize: FILE:LINE: reason", exit 1, and a stream WITHOUT its closing
# record (so binidx-write refuses it and leaves nothing); --skip-bad skips and
# counts; a corrupt vocabulary is reported with FILE:LINE.
. "$TOP/tests/lib.sh"
vocab=$TOP/share/rwkv7c/rwkv_vocab_v20230424.txt
good='{"text": "good line"}'

# bad_case NAME LINE2 EXPECTED-MESSAGE: line 2 of a 3-line file is bad
bad_case() {
    name=$1; line=$2; want=$3
    { printf '%s\n' "$good"; printf '%s\n' "$line"; printf '%s\n' "$good"; } > "$name.jsonl"
    rwkv-tokenize "$name.jsonl" > "$name.tok" 2> "$name.err"
    rc=$?
    eq "$name: exit status" $rc 1
    if grep -qF "rwkv-tokenize: $name.jsonl:2: $want" "$name.err"; then ok "$name: message"
    else bad "$name: message: $(cat "$name.err")"; fi
    if rwkv-tokenize --decode "$name.tok" >/dev/null 2>"$name.dec"; then bad "$name: stream has a closing record"
    else check "$name: stream lacks the closing record" grep -q "no closing record" "$name.dec"; fi
    if [ -x "$BIN/binidx-write" ]; then
        binidx-write "$name" < "$name.tok" 2>/dev/null
        check "$name: binidx-write refuses the stream" test $? -ne 0
        check "$name: no dataset left behind" test ! -e "$name.bin" -a ! -e "$name.idx"
    fi
    rwkv-tokenize --text "$name.jsonl" > "$name.txt" 2>/dev/null
    eq "$name: --text also exits 1" $? 1
}
bad_case syntax '{"text": "unterminated}' 'invalid JSON at column 24: unterminated string'
bad_case comma '{"text": "a",}' 'invalid JSON at column 14'
bad_case utf8 "$(printf '{"text": "bad \377 byte"}')" 'invalid UTF-8 at column 15'
bad_case overlong "$(printf '{"text": "\300\257"}')" 'invalid UTF-8 at column 11'
bad_case surrogate_utf8 "$(printf '{"text": "\355\240\200"}')" 'invalid UTF-8 at column 11'
bad_case lone_high '{"text": "a\ud83d b"}' 'lone surrogate escape at column 12'
bad_case lone_low '{"text": "\ude00"}' 'lone surrogate escape at column 11'
bad_case missing '{"title": "no text"}' 'no "text" field'
bad_case number '{"text": 42}' 'field "text" is a number, not a string'
bad_case array_field '{"text": ["a"]}' 'field "text" is an array, not a string'
bad_case null_field '{"text": null}' 'field "text" is null, not a string'
bad_case not_object '["text", "a"]' 'record is not a JSON object'
bad_case string_record '"just a string"' 'record is not a JSON object'
bad_case control "$(printf '{"text": "tab\there"}')" 'invalid JSON at column 14: control character 0x09'
bad_case escape '{"text": "\q"}' "invalid JSON at column 11: unknown escape"
bad_case nan '{"text": "a", "n": NaN}' 'invalid JSON at column 20: NaN and Infinity are not JSON'
bad_case trailing '{"text": "a"} {"text": "b"}' 'invalid JSON at column 15: text after the JSON value'

# The documents before the bad line were written; the stream is still refused.
eq "documents before the bad line are in the stream" "$(rwkv-tokenize --decode syntax.tok 2>/dev/null | head -n 1)" "good line"

# --skip-bad: skips and counts
cat syntax.jsonl utf8.jsonl lone_high.jsonl missing.jsonl number.jsonl not_object.jsonl > many.jsonl
rwkv-tokenize --skip-bad many.jsonl > many.tok 2> many.err
eq "--skip-bad exits 0" $? 0
check "--skip-bad prints the count" grep -q "skipped 6 bad lines" many.err
check "--skip-bad names each line (FILE:LINE)" grep -q "many.jsonl:5: invalid UTF-8" many.err
eq "--skip-bad keeps the good documents" "$(rwkv-tokenize --decode many.tok | grep -c 'good line')" 12
rwkv-tokenize --skip-bad -j 2 many.jsonl > many2.tok 2>/dev/null
check "--skip-bad -j 2 identical" cmp -s many.tok many2.tok
# A bad line deep in a big file (past the first chunks), with threads, and in a second FILE.
awk 'BEGIN { for (i = 1; i <= 40000; i++) print (i == 33333 ? "{\"text\": 1}" : "{\"text\": \"line " i "\"}") }' > big.jsonl
expect_fail "-j 2: bad line 33333 of a big file" "big.jsonl:33333: field \"text\" is a number" rwkv-tokenize -j 2 big.jsonl
expect_fail "-j 1: bad line 33333 of a big file" "big.jsonl:33333: field \"text\" is a number" rwkv-tokenize -j 1 big.jsonl
eq "-j 2: documents before it were written" "$(rwkv-tokenize -j 2 big.jsonl 2>/dev/null | rwkv-tokenize --decode 2>/dev/null | wc -l | tr -d ' ')" 33332
expect_fail "bad line in the second FILE is named by that file" "syntax.jsonl:2:" rwkv-tokenize -j 2 "$TOP/examples/demo.jsonl" syntax.jsonl
expect_fail "missing input file" "nonexistent.jsonl" rwkv-tokenize nonexistent.jsonl
# A missing input leaves zero bytes on stdout (it may be a pipe: nothing to
# remove later), whichever position it has and in every mode.
rwkv-tokenize "$TOP/examples/demo.jsonl" > demo.tok
for mode in "" "-j 2" "--text" "--decode"; do
    first=$TOP/examples/demo.jsonl
    [ "$mode" = --decode ] && first=demo.tok
    for args in "nonexistent.jsonl" "$first nonexistent.jsonl"; do
        # shellcheck disable=SC2086
        rwkv-tokenize $mode $args > miss.out 2> miss.err
        rc=$?
        eq "missing input (${mode:-encode}, $(echo $args | wc -w) files): exit 1" "$rc" 1
        eq "missing input (${mode:-encode}, $(echo $args | wc -w) files): no output" "$(wc -c < miss.out | tr -d ' ')" 0
        check "missing input (${mode:-encode}): named" grep -q "nonexistent.jsonl" miss.err
    done
done

# --- corrupt vocabularies: FILE:LINE ---
vocab_case() {
    name=$1; want=$2
    printf '{"text": "x"}\n' | rwkv-tokenize --vocab "$name.txt" --text > /dev/null 2> "$name.err"
    eq "vocab $name: exit status" $? 1
    if grep -qF "$want" "$name.err"; then ok "vocab $name: message"; else bad "vocab $name: $(cat "$name.err")"; fi
}
sed '100s/.*/100 '"'"'abc 3/' "$vocab" > unterminated.txt;  vocab_case unterminated "unterminated.txt:100: unterminated literal"
sed '2000s/ [0-9]*$/ 99/' "$vocab" > badlen.txt;              vocab_case badlen "badlen.txt:2000: literal has"
sed '300d' "$vocab" > gap.txt;                                 vocab_case gap "gap.txt:300: token id 301, expected 300"
sed '5s/.*/5 '"'"'\\x'"'"' 1/' "$vocab" > badesc.txt;         vocab_case badesc "badesc.txt:5: truncated \\xXX escape"
sed '40000s/^40000 /40000x /' "$vocab" > badid.txt;            vocab_case badid "badid.txt:40000: bad token id"
{ head -n 300 "$vocab"; sed -n '280s/^280 /301 /p' "$vocab"; } > dup.txt; vocab_case dup "dup.txt:301: token 301 repeats the bytes of token 280"
printf '' > empty.txt;                                         vocab_case empty "empty.txt: empty vocabulary"
sed '1,256d' "$vocab" | head -n 10 > nobytes.txt;              vocab_case nobytes "nobytes.txt:1: token id 257, expected 1"
vocab_case nonexistent "nonexistent.txt"

# A UTF-8 byte order mark at the start of a file is not part of line 1 (RFC 8259 8.1);
# anywhere else it is an error.
printf '\357\273\277{"text":"a"}\n{"text":"b"}\n' > bom.jsonl
eq "BOM at file start accepted" "$(rwkv-tokenize -t --vocab "$vocab" bom.jsonl 2>&1 | tr '\n' ' ')" "98 0 99 0 "
printf '{"text":"a"}\n\357\273\277{"text":"b"}\n' > bom2.jsonl
expect_fail "BOM on line 2 rejected" "bom2.jsonl:2: invalid JSON at column 1" rwkv-tokenize -t --vocab "$vocab" bom2.jsonl

# D6: zstd opening with a skippable frame (pzstd) is decompressed; O5: gzip gets a hint.
printf '{"text":"a"}\n{"text":"b"}\n' > ab.jsonl
{ printf '\120\052\115\030\000\000\000\000'; zstd -q -c ab.jsonl; } > ab.skip.zst
eq "skippable frame first: decompressed" "$(rwkv-tokenize -t --vocab "$vocab" ab.skip.zst 2>&1 | tr '\n' ' ')" "98 0 99 0 "
if command -v pzstd >/dev/null; then
    pzstd -q -f ab.jsonl -o ab.pz.zst
    eq "pzstd output: decompressed" "$(rwkv-tokenize -t --vocab "$vocab" ab.pz.zst 2>&1 | tr '\n' ' ')" "98 0 99 0 "
fi
gzip -c ab.jsonl > ab.jsonl.gz
expect_fail "gzip input refused with a hint" "rwkv-tokenize: ab.jsonl.gz: gzip input is not supported (decompress it first: zcat" \
    rwkv-tokenize -t --vocab "$vocab" ab.jsonl.gz
rwkv-tokenize -j 0 -t ab.jsonl >/dev/null 2>j0.err; eq "-j 0: usage error" "$?" 2
check "-j 0: the one phrasing" grep -qF "invalid value '0' for --threads" j0.err
finish
