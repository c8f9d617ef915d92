#!/bin/sh
# Output paths that are not plain regular files (review D1/D8; doc/atomic-output.md): every
# tool that writes a file writes a device, a FIFO or a descriptor (/proc/self/fd/1) directly and
# leaves the node in place, follows a symlink to a regular file (the file is replaced, the link
# stays), and refuses a directory.  Devices are PRIVATE nodes made here (mknod), never /dev/*:
# as root, a bug here replaces the system's devices.  binidx-write refuses every such target.
. "$TOP/tests/lib.sh"
for t in jsonl-shuf rwkv-init rwkv-generate metrics-plot pth-convert binidx-write; do
    [ -x "$BIN/$t" ] || { echo "$t not built"; exit 77; }
done

printf '{"text":"a"}\n{"text":"b"}\n{"text":"c"}\n' > in.jsonl
cat > m.jsonl <<'J'
{"step":0,"loss":4.0,"lr":0.0001,"grad_norm":1.5,"tokens":128,"tokens_per_s":1000.0,"time":1.0}
{"step":1,"loss":3.0,"lr":0.0002,"grad_norm":1.2,"tokens":256,"tokens_per_s":1000.0,"time":2.0}
J
rwkv-init -L 2 -C 64 --vocab-size 16 -s 1 -q -o model.st || { echo "rwkv-init failed"; exit 1; }

# out TOOL PATH: TOOL writes its output to PATH (no -f: devices and FIFOs need none).
out() {
    case $1 in
    shuf)     jsonl-shuf -s 1 -o "$2" in.jsonl ;;
    init)     rwkv-init -L 2 -C 64 --vocab-size 16 -s 1 -q -o "$2" ;;
    generate) rwkv-generate -m model.st --prompt "" -n 0 --logits-out "$2" < /dev/null ;;
    plot)     metrics-plot -o "$2" m.jsonl ;;
    pth)      pth-convert model.st "$2" ;;
    esac
}
# outf TOOL PATH: the same, replacing an existing regular file (-f where the tool has it).
outf() {
    case $1 in
    init)     rwkv-init -L 2 -C 64 --vocab-size 16 -s 1 -q -f -o "$2" ;;
    generate) rwkv-generate -m model.st --prompt "" -n 0 -f --logits-out "$2" < /dev/null ;;
    plot)     metrics-plot -f -o "$2" m.jsonl ;;
    pth)      pth-convert -f model.st "$2" ;;
    *)        out "$1" "$2" ;;
    esac
}
tools="shuf init generate plot pth"
for t in $tools; do
    out $t ref.$t 2>ref.$t.err || bad "$t: writing a regular file failed: $(cat ref.$t.err)"
    [ -s ref.$t ] || bad "$t: empty reference output"
done

# Private device nodes (root, or CAP_MKNOD): null discards, full fails with ENOSPC.
if mknod -m 666 null c 1 3 2>/dev/null && mknod -m 666 full c 1 7 2>/dev/null; then
    for t in $tools; do
        if out $t null 2>err.txt; then ok "$t to a null device: exit 0"
        else bad "$t to a null device: $(cat err.txt)"; fi
        check "$t: the null device is still a character device" test -c null
        check "$t: ...and its temporaries were never named" sh -c '! ls -A | grep -q "^\.null\."'
        expect_fail "$t to a full device: exit 1" "No space left on device" out $t full
        check "$t: the full device is still a character device" test -c full
    done
    expect_fail "binidx-write: a device as PREFIX.bin is refused" "null.bin: not a regular file" \
        sh -c 'ln -s null null.bin && printf "" | binidx-write -f null'
    check "binidx-write: ...the link and device stay" sh -c 'test -L null.bin && test -c null'
    rm -f null.bin
else
    echo "note: mknod not permitted: device cases skipped"
fi

# A FIFO with a reader gets the bytes, and stays a FIFO.
for t in $tools; do
    rm -f fifo got; mkfifo fifo
    timeout 30 cat fifo > got & reader=$!
    if out $t fifo 2>err.txt; then ok "$t to a FIFO: exit 0"; else bad "$t to a FIFO: $(cat err.txt)"; fi
    wait $reader
    check "$t: the reader got the output" cmp -s got ref.$t
    check "$t: the FIFO is still a FIFO" test -p fifo
done
rm -f fifo; mkfifo fifo.bin
expect_fail "binidx-write: a FIFO as PREFIX.bin is refused at once" "fifo.bin: not a regular file" \
    sh -c 'printf "" | timeout 10 binidx-write -f fifo'
check "binidx-write: ...the FIFO stays" test -p fifo.bin

# A symlink to a regular file: the file is replaced atomically, the link stays.
for t in $tools; do
    rm -f real lnk; echo old > real; ln -s real lnk
    if outf $t lnk 2>err.txt; then ok "$t through a symlink: exit 0"; else bad "$t through a symlink: $(cat err.txt)"; fi
    check "$t: the link is still a link" test -L lnk
    check "$t: its target holds the output" cmp -s real ref.$t
done
# ...also when the link's target is in another directory, named relative to the link.
mkdir -p d1 d2; echo old > d2/real; ln -s ../d2/real d1/lnk
check "shuf through a relative symlink into another directory" jsonl-shuf -s 1 -o d1/lnk in.jsonl
check "...the link stays, its target is replaced" sh -c 'test -L d1/lnk && cmp -s d2/real ref.shuf'
printf '5 0\n' | "$TOP/build/tests/binidx_test" --stream > s.tok
echo old > realbin; ln -s realbin lnkds.bin
check "binidx-write through a symlinked PREFIX.bin" sh -c 'binidx-write -q -f lnkds < s.tok'
check "binidx-write: ...the link stays, its target is the .bin" sh -c 'test -L lnkds.bin && binidx-info -c lnkds'

# A symlink to /proc/self/fd/1: written to standard output, the link stays.
ln -s /proc/self/fd/1 so
for t in $tools; do
    if out $t so > got 2>err.txt; then ok "$t to a link to /proc/self/fd/1: exit 0"
    else bad "$t to a link to /proc/self/fd/1: $(cat err.txt)"; fi
    check "$t: standard output got the output" cmp -s got ref.$t
    check "$t: the link stays" test -L so
done
# ...and to a pipe (no file behind the descriptor).  /proc/self/fd/1 rather than the system's
# /dev/stdout, which a root process running an unfixed build can have replaced.
for t in $tools; do
    eq "$t to /proc/self/fd/1, a pipe: byte count" "$(out $t /proc/self/fd/1 2>/dev/null | wc -c)" "$(wc -c < ref.$t)"
done
ln -s /proc/self/fd/1 sods.bin
expect_fail "binidx-write: a descriptor as PREFIX.bin is refused" "sods.bin: not a regular file" \
    sh -c 'binidx-write -q -f sods < s.tok'

# A directory is refused, and stays.
mkdir adir
for t in $tools; do
    expect_fail "$t to a directory: refused" "adir: is a directory" outf $t adir
done
check "the directory stays" test -d adir

# An existing regular file needs -f where the tool has -f; a device or FIFO never does.
for t in init plot pth; do
    echo keep > kept
    expect_fail "$t over an existing file without -f: refused" "kept: exists" out $t kept
    eq "$t: ...the file is untouched" "$(cat kept)" keep
done

# D8: a named temporary left by a killed writer (".NAME.tmp.PID", PID dead) is removed by the
# next write of the same target; one whose PID is alive is not.
echo stale > .ref.shuf.tmp.999999999; echo live > .ref.shuf.tmp.$$
check "jsonl-shuf -o over a file with stale temporaries" jsonl-shuf -s 1 -o ref.shuf in.jsonl
check "...the dead writer's temporary is removed" test ! -e .ref.shuf.tmp.999999999
check "...a live PID's temporary is kept" test -e .ref.shuf.tmp.$$
rm -f .ref.shuf.tmp.$$

# --logits-out /dev/stdout as an ordinary user (the system's /dev/stdout, never replaced by a
# non-root process; the review saw "Permission denied" for its O_TMPFILE in /proc/self/fd).
runas=
stdout_link=/dev/stdout
[ -L /dev/stdout ] || { echo "note: the system's /dev/stdout is not a symlink (replaced by someone); using /dev/fd/1"; stdout_link=/dev/fd/1; }
if [ "$(id -u)" = 0 ]; then
    if command -v setpriv >/dev/null && setpriv --reuid=nobody --regid=nogroup --clear-groups true 2>/dev/null; then
        runas="setpriv --reuid=nobody --regid=nogroup --clear-groups"
    elif command -v runuser >/dev/null && runuser -u nobody -- true 2>/dev/null; then
        runas="runuser -u nobody --"
    fi
fi
if [ -n "$runas" ]; then
    pub=$(mktemp -d /tmp/rwkv7c-outtargets.XXXXXX); chmod 755 "$pub"; cp model.st "$pub/"; chmod 644 "$pub/model.st"
    n=$($runas "$BIN/rwkv-generate" -m "$pub/model.st" --prompt "" -n 0 --logits-out $stdout_link < /dev/null 2>err.txt | wc -c)
    eq "as nobody: rwkv-generate --logits-out $stdout_link | wc -c" "$n" "$(wc -c < ref.generate)"
    n=$($runas "$BIN/jsonl-shuf" -s 1 -o $stdout_link < in.jsonl 2>err.txt | wc -c)
    eq "as nobody: jsonl-shuf -o $stdout_link | wc -c" "$n" "$(wc -c < ref.shuf)"
    rm -rf "$pub"
else
    echo "note: not root, or no setpriv/runuser: the ordinary-user /dev/stdout case is skipped"
fi
# A 245-byte name can be replaced: the replacing temporary's hidden name is cut to fit NAME_MAX.
long=$(printf 'y%.0s' $(seq 245))
check "a 245-byte output name" metrics-plot -o "$long" m.jsonl
check "...replaced with -f" metrics-plot -f -o "$long" m.jsonl
eq "...and no temporary left" "$(ls -A | grep -c '\.tmp\.')" 0
# Directories made for an output that then fails are removed, also when mkdir failed part-way.
check "binidx-write into a too-long directory name fails" sh -c "! binidx-write -q made/sub/$(printf 'z%.0s' $(seq 300))/p < s.tok 2>/dev/null"
check "...and leaves none of the directories it made" test ! -e made
finish
