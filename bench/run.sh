#!/bin/sh
# Runs every benchmark script bench/b_*.sh; each prints its figures as ratios
# against a peer measured in the same run.
top=$(cd "$(dirname "$0")/.." && pwd)
export TOP="$top" BIN="$top/build/bin" PATH="$top/build/bin:$PATH" PYTHON="${PYTHON:-/usr/bin/python3}"
for b in "$top"/bench/b_*.sh; do
    [ -f "$b" ] || continue
    echo "== $(basename "$b" .sh)"
    sh "$b" || echo "(benchmark $(basename "$b") failed)"
done
