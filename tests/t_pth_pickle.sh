#!/bin/sh
# The data.pkl recogniser: memory stays bounded on a pickle that builds millions
# of nested tuples (D10: a 60 MB file used 2.4 GB), and tensor names must be
# strict UTF-8 as Python decodes them (no surrogates, overlongs or F5-F7 leads).
. "$TOP/tests/lib.sh"
# mkpth OUT.pth PICKLE-FILE [FROM.pth]: a stored zip holding data.pkl (and FROM's other records)
mkpth() {
    "$PYTHON" - "$@" <<'PY'
import sys, zipfile
out, pkl = sys.argv[1], open(sys.argv[2], "rb").read()
recs = [("archive/version", b"3\n")]
if len(sys.argv) > 3:
    with zipfile.ZipFile(sys.argv[3]) as z:
        recs = [(i.filename, z.read(i)) for i in z.infolist() if not i.filename.endswith("data.pkl")]
with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", pkl)
    for name, data in recs:
        z.writestr(name, data)
PY
}

# D10: PROTO 2, EMPTY_TUPLE, 6,000,000 x TUPLE1 (each wraps the previous tuple), STOP
"$PYTHON" -c 'import sys; sys.stdout.buffer.write(b"\x80\x02)" + b"\x85" * 6000000 + b".")' >tup.pkl
mkpth tup.pth tup.pkl || exit 1
(ulimit -v 200000; pth-convert --info tup.pth) >out.txt 2>err.txt; rc=$?
eq "nested tuples: exit 1" "$rc" 1
check "nested tuples: refused by the tuple cap, not by running out of memory" grep -qF "more than 1048576 tuples" err.txt
if [ -x /usr/bin/time ]; then
    /usr/bin/time -f %M -o rss.txt pth-convert --info tup.pth >/dev/null 2>&1
    rss=$(tail -n 1 rss.txt)
    check "nested tuples: peak RSS ${rss} KB < 64 MB (was ~240 MB for this 6 MB pickle)" test "$rss" -lt 65536
fi

# Tensor names: patch the 10-byte name "emb.weight" of a .pth we wrote.
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o small.st || exit 1
pth-convert small.st small.pth || exit 1
"$PYTHON" - <<'PY' || exit 1
import zipfile
pkl = zipfile.ZipFile("small.pth").read("archive/data.pkl")
assert pkl.count(b"emb.weight") == 1
for tag, name in [("surrogate", b"emb.\xed\xa0\x80ght"), ("overlong", b"emb.\xe0\x80\xaeght"),
                  ("f5lead", b"emb.\xf5\x80\x80\x80ht"), ("nul", b"emb.w\x00ight"), ("valid", b"emb.weig\xc3\xa9")]:
    assert len(name) == 10
    open(tag + ".pkl", "wb").write(pkl.replace(b"emb.weight", name))
PY
for tag in surrogate overlong f5lead nul; do
    mkpth $tag.pth $tag.pkl small.pth || exit 1
    expect_fail "tensor name with a $tag refused" "not valid UTF-8" pth-convert --info $tag.pth
done
mkpth valid.pth valid.pkl small.pth || exit 1
pth-convert -v --info valid.pth >valid.txt 2>&1; eq "a valid 2-byte UTF-8 name is accepted" "$?" 0
check "the name is kept" grep -qF "emb.weigé" valid.txt
finish
