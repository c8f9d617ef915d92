#!/bin/sh
# jsonl-shuf: permutations per copy, seeds, Python-compatible order, zstd, stdin,
# blank lines, CRLF, long lines, errors.
. "$TOP/tests/lib.sh"
demo="$SHARED/data/demo.jsonl"; [ -f "$demo" ] || demo="$TOP/examples/demo.jsonl"

# ---- usage ----
check "--help exits 0 on stdout" sh -c 'jsonl-shuf --help | grep -q Usage'
check "--version" sh -c 'jsonl-shuf --version | grep -q jsonl-shuf'
jsonl-shuf --bogus </dev/null >/dev/null 2>&1; eq "unknown option exits 2" "$?" 2
jsonl-shuf -n x </dev/null >/dev/null 2>&1; eq "bad -n exits 2" "$?" 2
jsonl-shuf -m 0 </dev/null >/dev/null 2>&1; eq "bad -m exits 2" "$?" 2
jsonl-shuf -m 12Q </dev/null >/dev/null 2>&1; eq "bad -m suffix exits 2" "$?" 2
jsonl-shuf --seed 1x </dev/null >/dev/null 2>&1; eq "bad --seed exits 2" "$?" 2
expect_fail "missing file" "jsonl-shuf: nope.jsonl: No such file" jsonl-shuf --seed 1 -o out.jsonl nope.jsonl
check "no output left for a missing file" test ! -e out.jsonl

# ---- each copy is a permutation of the non-blank lines ----
grep -v '^[[:space:]]*$' "$demo" | sort >want.sorted
lines=$(wc -l <want.sorted)
jsonl-shuf -n 5 --seed 11 "$demo" >five.jsonl
eq "5 copies: line count" "$(wc -l <five.jsonl)" $((5 * lines))
perm_ok=1; i=0
while [ $i -lt 5 ]; do
    head -n $(((i + 1) * lines)) five.jsonl | tail -n "$lines" >copy$i
    sort copy$i | cmp -s - want.sorted || perm_ok=0
    i=$((i + 1))
done
eq "every copy is a permutation" $perm_ok 1
check "copies differ (0,1)" sh -c '! cmp -s copy0 copy1'
check "copies differ (3,4)" sh -c '! cmp -s copy3 copy4'
check "copies differ from the input order" sh -c "! grep -v '^[[:space:]]*\$' '$demo' | cmp -s - copy0"

# ---- seeds ----
jsonl-shuf -n 5 --seed 11 "$demo" >again.jsonl
check "same seed, same bytes" cmp -s five.jsonl again.jsonl
jsonl-shuf -n 5 --seed 12 "$demo" >other.jsonl
check "different seed, different bytes" sh -c '! cmp -s five.jsonl other.jsonl'
jsonl-shuf -n 2 "$demo" >noseed.jsonl 2>noseed.err
seed=$(sed -n 's/^jsonl-shuf: seed \([0-9][0-9]*\)$/\1/p' noseed.err)
check "without --seed the seed is printed" test -n "$seed"
jsonl-shuf -n 2 --seed "${seed:-0}" "$demo" >reseed.jsonl 2>reseed.err
check "the printed seed repeats the run" cmp -s noseed.jsonl reseed.jsonl
check "with --seed nothing is printed" test ! -s reseed.err
jsonl-shuf -n 0 --seed 1 "$demo" >zero.jsonl; rc=$?
eq "-n 0 exits 0 (D12: the man page says it writes nothing)" "$rc" 0
eq "-n 0 writes nothing" "$(wc -c <zero.jsonl)" 0
jsonl-shuf -n 0 --seed 1 -o zero_o.jsonl "$demo"
eq "-n 0 -o FILE: an empty FILE" "$(wc -c <zero_o.jsonl 2>/dev/null)" 0
expect_fail "-n 0 still reads the input" "nope.jsonl" jsonl-shuf -n 0 --seed 1 nope.jsonl
: >empty.txt
jsonl-shuf --seed 1 empty.txt >empty.out
eq "empty input, empty output" "$(wc -c <empty.out)" 0

# ---- inputs: zstd, stdin, several files, -o ----
zstd -q -c "$demo" >demo.jsonl.zst
jsonl-shuf -n 3 --seed 5 "$demo" >plain.out
jsonl-shuf -n 3 --seed 5 demo.jsonl.zst >zst.out
check "zstd input (detected by magic)" cmp -s plain.out zst.out
jsonl-shuf -n 3 --seed 5 <demo.jsonl.zst >zstdin.out
check "zstd on stdin" cmp -s plain.out zstdin.out
jsonl-shuf -n 3 --seed 5 - <"$demo" >dash.out
check "'-' reads stdin" cmp -s plain.out dash.out
head -c 1000 demo.jsonl.zst >cut.zst
expect_fail "truncated zstd" "jsonl-shuf: cut.zst:" jsonl-shuf --seed 1 -o cut.out cut.zst
check "no output left for truncated zstd" test ! -e cut.out
head -n 50 "$demo" >part1; tail -n +51 "$demo" >part2
jsonl-shuf -n 2 --seed 9 part1 part2 >parts.out
jsonl-shuf -n 2 --seed 9 "$demo" >whole.out
check "several files read as one" cmp -s parts.out whole.out
jsonl-shuf -n 2 --seed 9 -o file.out "$demo"
check "-o FILE writes the same bytes" cmp -s file.out whole.out
cp "$demo" inplace.jsonl
jsonl-shuf --seed 9 -o inplace.jsonl inplace.jsonl
check "-o may name the input" sh -c "sort inplace.jsonl | cmp -s - want.sorted"
expect_fail "-o into a missing directory" "jsonl-shuf: nodir/x.jsonl: cannot create" jsonl-shuf --seed 1 -o nodir/x.jsonl "$demo"

# ---- line handling: blank lines (ASCII and Unicode spaces), CRLF, no final newline ----
printf 'one\n\n  \t \ntwo\r\n\342\200\203\302\240\r\nthree\n\343\200\200\n\302\205\nfour' >mixed.txt
jsonl-shuf -n 4 --seed 3 mixed.txt >mixed.out
eq "blank lines dropped, CRLF and a last line without newline kept" \
   "$(sort mixed.out | uniq -c | tr -s ' ' | tr '\n' ,)" " 4 four, 4 one, 4 three, 4 two,"
check "output has no CR" sh -c '! grep -q "$(printf "\r")" mixed.out'
printf 'a b\n\nc\td\n' >notjson.txt
eq "any line-oriented text" "$(jsonl-shuf --seed 2 notjson.txt | sort | tr '\n' ,)" "a b,c	d,"

# ---- long lines (longer than the reader's buffers) ----
"$PYTHON" -c "
import sys
with open('long.txt', 'w') as f:
    for i in range(6): f.write(str(i) * (3_000_000 + i) + '\n')
"
jsonl-shuf -n 2 --seed 4 long.txt >long.out
check "long lines kept whole" sh -c 'sort long.txt >l1; head -n 6 long.out | sort >l2; tail -n 6 long.out | sort >l3; cmp -s l1 l2 && cmp -s l1 l3'

# ---- Python-compatible order: random.seed(S); N x random.shuffle(lines) ----
# Inputs of several sizes, with blank lines, CRLF and Unicode spaces mixed in;
# the reference reads lines as the tool does (split on \n, drop one \r before it,
# drop lines that are empty or str.isspace()).
"$PYTHON" - <<'EOF'
import random
r = random.Random(2024)
seeds = ["0", "1", "42", "4294967295", "4294967296", "18446744073709551621", "-7",
         "123456789012345678901234567890"]
cases = []
for size in (0, 1, 2, 3, 10, 1000, 5000):
    rows = []
    for i in range(size):
        rows.append('{"text": "doc %d %s"}' % (i, "\u00e9" * r.randrange(5)) + ("\r" if i % 7 == 3 else ""))
        if i % 11 == 5:
            rows.append(r.choice(["", "  ", "\t", "\u3000", "\r"]))
    data = "\n".join(rows) + ("\n" if size % 2 else "")
    open("py_in_%d.txt" % size, "w", encoding="utf-8", newline="").write(data)
    for s in seeds:
        for n in (1, 3):
            if size >= 1000 and s not in ("0", "4294967296", "-7"):
                continue
            pieces = data.encode().split(b"\n")
            if pieces and pieces[-1] == b"":
                pieces.pop()
            lines = []
            for p in pieces:
                if p.endswith(b"\r"):
                    p = p[:-1]
                t = p.decode()
                if t and not t.isspace():
                    lines.append(p)
            random.seed(int(s))
            out = []
            for _ in range(n):
                random.shuffle(lines)
                out += [l + b"\n" for l in lines]
            name = "py_want_%d_%s_%d" % (size, s, n)
            open(name, "wb").write(b"".join(out))
            cases.append("%d %s %d" % (size, s, n))
open("py_cases", "w").write("\n".join(cases) + "\n")
EOF
py_fail=0; py_n=0
while read -r size s n; do
    py_n=$((py_n + 1))
    jsonl-shuf -n "$n" --seed "$s" "py_in_$size.txt" >py_got || py_fail=$((py_fail + 1))
    cmp -s py_got "py_want_${size}_${s}_${n}" || { py_fail=$((py_fail + 1)); echo "differs: size $size seed $s n $n"; }
done <py_cases
check "Python cases generated" test "$py_n" -ge 60
eq "matches Python random.seed+shuffle in all $py_n cases" $py_fail 0

# ---- --strip: the temporary file of make_data.py, byte for byte (with a seed) ----
"$PYTHON" - <<'EOF'
import random
r = random.Random(99)
spaces = [" ", "\t", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u1680", "\u2000",
          "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000"]
def ws():
    return "".join(r.choice(spaces) for _ in range(r.randrange(3)))
with open("strip_in.jsonl", "w", encoding="utf-8", newline="") as f:
    for i in range(400):
        f.write(ws() + '{"text": "a%s b %d"}' % (ws(), i) + ws() + ("\r\n" if i % 5 == 0 else "\n"))
        if i % 9 == 0:
            f.write(ws() + "\n")
# make_data.py, steps 1 and 2, with random.seed(77) added
lines = []
with open("strip_in.jsonl", "r", encoding="utf-8") as file:
    for line in file:
        if line.strip():
            lines.append(line.strip())
random.seed(77)
with open("strip_want.jsonl", "w", encoding="utf-8") as f:
    for i in range(3):
        random.shuffle(lines)
        for entry in lines:
            f.write(entry + "\n")
EOF
jsonl-shuf --strip -n 3 --seed 77 strip_in.jsonl >strip_got.jsonl
check "--strip gives make_data.py's shuffled file byte for byte" cmp -s strip_got.jsonl strip_want.jsonl
jsonl-shuf -n 1 --seed 77 strip_in.jsonl >nostrip.jsonl
check "without --strip lines keep their spaces" sh -c '! cmp -s nostrip.jsonl strip_want.jsonl && grep -q "^ " nostrip.jsonl'

# A huge -n on an empty input ends at once (nothing to write).
jsonl-shuf -n -1 strip_in.jsonl >/dev/null 2>err0.txt; rc=$?
eq "-n -1 is a usage error" "$rc" 2
check "bad -n in the one phrasing" grep -qF "invalid value '-1' for --copies" err0.txt
printf '' > empty.txt
check "-n 2^64-1 on an empty input finishes" timeout 10 jsonl-shuf -n 18446744073709551615 --seed 1 empty.txt

# A byte order mark opening the file is dropped, not shuffled into the middle of the output.
printf '\357\273\277{"a":1}\n{"a":2}\n{"a":3}\n' > bom.jsonl
jsonl-shuf --seed 1 bom.jsonl > bom_out.jsonl
check "BOM not carried into the output" sh -c '! grep -q "$(printf "\357\273\277")" bom_out.jsonl'
eq "BOM file: all lines kept" "$(sort bom_out.jsonl | tr '\n' ' ')" '{"a":1} {"a":2} {"a":3} '
check "-m accepts the largest 64-bit size" sh -c 'jsonl-shuf -m 18446744073709551615 -s 1 strip_in.jsonl >/dev/null'
check "-m refuses one more" sh -c '! jsonl-shuf -m 18446744073709551616 -s 1 strip_in.jsonl >/dev/null 2>&1'

# D6: zstd that opens with a skippable frame (RFC 8878; pzstd writes one before every frame).
python3 -c 'for i in range(20000): print("{\"text\":\"line %d\"}" % i)' >many.jsonl
jsonl-shuf -s 1 many.jsonl >many.plain
if command -v pzstd >/dev/null; then pzstd -q -f many.jsonl -o many.pz.zst; else zstd -q -c many.jsonl >many.pz.zst; fi
# and one built by hand: skippable frame 0x184D2A5F with 3 bytes of payload, then an ordinary frame
{ printf '\137\052\115\030\003\000\000\000abc'; zstd -q -c many.jsonl; } >many.skip.zst
for f in many.pz.zst many.skip.zst; do
    jsonl-shuf -s 1 $f >$f.out 2>$f.err; rc=$?
    eq "$f: exit 0" "$rc" 0
    check "$f: decompressed, same shuffle as the plain input" cmp -s many.plain $f.out
done

# O5: gzip input is refused with a hint, nothing written.
gzip -c many.jsonl >many.jsonl.gz
expect_fail "gzip input refused" "many.jsonl.gz: gzip input is not supported (decompress it first: zcat" \
    jsonl-shuf -s 1 -o gz.out many.jsonl.gz
check "gzip refusal leaves no output" test ! -e gz.out
jsonl-shuf -s 1 <many.jsonl.gz >/dev/null 2>&1; eq "gzip on stdin exits 1" "$?" 1

finish
