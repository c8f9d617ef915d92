#!/bin/sh
# D15: rwkv-generate and metrics-plot free everything on their error exits too
# (and UBSan reports nothing new).
# Runs the error paths under AddressSanitizer/LeakSanitizer binaries, built by
#   make B=build-asan CC=clang CFLAGS='-fsanitize=address,undefined -fno-omit-frame-pointer -g -O1' \
#        LDFLAGS='-fsanitize=address,undefined' ARCHFLAGS= -j2
# (or in $ASAN_BIN, or build/asan/bin, where `make check-asan` may put them);
# skipped when there are none.
. "$TOP/tests/lib.sh"
A=${ASAN_BIN:-$TOP/build-asan/bin}
[ -x "$A/rwkv-generate" ] || [ -n "${ASAN_BIN:-}" ] || A=$TOP/build/asan/bin
[ -x "$A/rwkv-generate" ] && [ -x "$A/metrics-plot" ] || { echo "no ASan build in $A"; exit 77; }
export ASAN_OPTIONS=detect_leaks=1:exitcode=99 RWKV7C_DATA="$TOP/share/rwkv7c"
# clean RUN DESCRIPTION WANTED-STATUS COMMAND...: the status, and no sanitizer report
clean() {
    d=$1 want=$2; shift 2
    "$@" >/dev/null 2>san.err
    rc=$?
    # UBSan reports too (lib/input.c:131 is known, D14, fixed on another branch)
    grep "runtime error" san.err | grep -v "lib/input.c:131" >>ub.txt
    if grep -q "ERROR: \(Leak\|Address\)Sanitizer" san.err; then bad "$d: $(grep -m1 -A3 'ERROR:' san.err | tr '\n' ' ' | head -c 400)"
    elif [ $rc -ne "$want" ]; then bad "$d: exit $rc, want $want: $(head -c 300 san.err)"
    else ok "$d"; fi
}
G="$A/rwkv-generate" P="$A/metrics-plot"
rwkv-init -q -L 2 -C 64 -s 1 -o m.st || exit 1
rwkv-init -q -L 2 -C 64 --vocab-size 16 -s 1 -o v16.st || exit 1
head -c 5000 m.st >trunc.st
printf '1 garbage\n' >bad_vocab.txt

clean "generate: success" 0 "$G" -m m.st --prompt hi -n 3
clean "generate: bad vocabulary" 1 "$G" -m m.st --vocab bad_vocab.txt --prompt hi
clean "generate: missing checkpoint" 1 "$G" -m nope.st --prompt hi
clean "generate: truncated checkpoint" 1 "$G" -m trunc.st --prompt hi
clean "generate: prompt token outside the vocabulary" 1 "$G" -m v16.st --prompt hi
clean "generate: chat token outside the vocabulary" 1 sh -c 'printf "a\nb\n" | "$1" -m v16.st --chat' sh "$G"
clean "generate: chat, a reply" 0 sh -c 'printf "a\nb\n" | "$1" -m m.st --chat -n 3' sh "$G"
clean "generate: existing --logits-out" 1 sh -c ': >l.f32; "$1" -m m.st --prompt hi -n 0 --logits-out l.f32' sh "$G"
clean "generate: --logits-out past the file size limit" 1 \
    sh -c 'trap "" XFSZ; ulimit -f 64; exec "$1" -m m.st --prompt hi -n 0 --logits-out big.f32' sh "$G"
[ -w /dev/full ] && clean "generate: standard output on a full disk" 1 sh -c 'exec "$1" -m m.st --prompt hi -n 50 >/dev/full' sh "$G"
clean "generate: usage error" 2 "$G" -m m.st --top-p 2

printf '{"step":1,"loss":2,"lr":1}\n' >good.jsonl
printf '{"step":1,"loss":2,"lr":1}\n{"step":2,"loss":2,"lr":1\n' >torn.jsonl
clean "plot: success" 0 "$P" good.jsonl
clean "plot: a torn line" 1 "$P" torn.jsonl
clean "plot: no records" 1 "$P" /dev/null
clean "plot: output exists" 1 sh -c ': >o.svg; exec "$1" -o o.svg good.jsonl' sh "$P"
[ -w /dev/full ] && clean "plot: standard output on a full disk" 1 sh -c 'exec "$1" good.jsonl >/dev/full' sh "$P"
check "no undefined behaviour reported" test ! -s ub.txt
finish
