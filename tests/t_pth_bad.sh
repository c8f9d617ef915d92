#!/bin/sh
# The bad-input corpus: malicious pickles (never run: no marker file appears),
# truncation, short storages, zip bombs, path tricks, duplicates, overlaps,
# wrong CRCs ... each refused with exit 1, a clear message, and nothing written.
. "$TOP/tests/lib.sh"
need_torch
$PYTHON "$TOP/tests/ref/pth_fixtures.py" bad b >gen.log 2>&1 || { cat gen.log; bad "generate corpus"; finish; }
n=0
tab=$(printf '\t')
while IFS="$tab" read -r f want; do
    n=$((n + 1))
    rm -f out.st
    pth-convert "b/$f" out.st >out.txt 2>err.txt
    rc=$?
    if [ $rc -ne 1 ]; then bad "$f: exit $rc, want 1: $(head -c 300 err.txt)"
    elif ! grep -qF -- "$want" err.txt; then bad "$f: stderr lacks '$want': $(head -c 300 err.txt)"
    elif ! grep -q "^pth-convert: b/$f: " err.txt; then bad "$f: message does not name the file: $(head -c 300 err.txt)"
    elif [ -e out.st ] || ls -A | grep -q '\.tmp\.'; then bad "$f: output written"
    else ok "$f: $(cut -c1-150 err.txt)"
    fi
    pth-convert --info "b/$f" >/dev/null 2>&1; rc=$?
    [ $rc -eq 1 ] || bad "$f: --info exit $rc, want 1"
done < b/MANIFEST
[ "$n" -ge 40 ] && ok "$n bad files tried" || bad "only $n bad files"
[ -e pwned_marker ] && bad "a pickle payload RAN (marker file created)" || ok "no payload ran (no marker file)"
# The same payloads do run under plain pickle semantics: the marker test can fail.
# (weights_only=False: the default in torch 1.13, no longer in torch >= 2.6)
$PYTHON -c 'import torch; torch.load("b/evil_reduce_posix.pth", weights_only=False)' >/dev/null 2>&1
[ -e pwned_marker ] && ok "control: torch.load(weights_only=False) runs the payload" || bad "control payload did not run"
rm -f pwned_marker
# A damaged CRC is accepted only on request, and then converts.
check "--no-verify-crc accepts a CRC mismatch" pth-convert --no-verify-crc b/bad_crc.pth crc.st
finish
