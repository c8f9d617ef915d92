#!/bin/sh
# Runs every test: tests/t_*.sh scripts and build/tests/* unit programs.
# A test passes with exit 0, is skipped with exit 77, fails otherwise.
# Usage: tests/run.sh [PATTERN]   (only tests whose name contains PATTERN)
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
export TOP="$top" BIN="$top/build/bin" PATH="$top/build/bin:$PATH"
export PYTHON="${PYTHON:-/usr/bin/python3}"
export SHARED="${SHARED:-$top/../shared}"
[ -d "$top/build/pip/rwkv" ] && export RWKV_PIP_DIR="${RWKV_PIP_DIR:-$top/build/pip}"
pass=0 failn=0 skip=0 failed=""
work=$(mktemp -d "${TMPDIR:-/tmp}/rwkv7c-tests.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
for t in tests/t_*.sh build/tests/*; do
    [ -f "$t" ] || continue
    name=$(basename "$t" .sh)
    case "$name" in *.d|*.o) continue ;; esac
    [ -n "$1" ] && case "$name" in *"$1"*) ;; *) continue ;; esac
    dir="$work/$name"; mkdir -p "$dir"
    start=$(date +%s)
    case "$t" in
        *.sh) (cd "$dir" && TEST_TMP="$dir" sh "$top/$t") >"$dir.log" 2>&1 ;;
        *)    (cd "$dir" && TEST_TMP="$dir" "$top/$t") >"$dir.log" 2>&1 ;;
    esac
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ $rc -eq 0 ]; then pass=$((pass+1)); echo "PASS $name (${secs}s)"
    elif [ $rc -eq 77 ]; then skip=$((skip+1)); echo "SKIP $name: $(tail -n 1 "$dir.log")"
    else failn=$((failn+1)); failed="$failed $name"; echo "FAIL $name (exit $rc)"; sed 's/^/    /' "$dir.log" | tail -n 40
    fi
done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $failn failed, $skip skipped"
[ $failn -eq 0 ]
