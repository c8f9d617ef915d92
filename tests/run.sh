#!/bin/sh
# Runs every test: tests/t_*.sh scripts and the unit programs built from
# tests/unit/*.c.  A test passes with exit 0, is skipped with exit 77, fails
# otherwise.
# Usage: tests/run.sh [PATTERN]                 only tests whose name contains PATTERN
#        tests/run.sh --unit DIR [PATTERN]      only the unit programs, as built into DIR
#                                               (make check-asan: DIR = build/asan/tests)
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
unit_dir=build/tests scripts="tests/t_*.sh" label=
if [ "${1:-}" = "--unit" ]; then
    [ -n "${2:-}" ] || { echo "usage: tests/run.sh --unit DIR [PATTERN]" >&2; exit 2; }
    unit_dir=${2%/} scripts= label="${2%/}/"
    shift 2
fi
case "$unit_dir" in /*) ;; *) unit_dir="$top/$unit_dir" ;; esac
export TOP="$top" BIN="$top/build/bin" PATH="$top/build/bin:$PATH"
export PYTHON="${PYTHON:-/usr/bin/python3}"
export SHARED="${SHARED:-$top/../shared}"
[ -d "$top/build/pip/rwkv" ] && export RWKV_PIP_DIR="${RWKV_PIP_DIR:-$top/build/pip}"
pass=0 failn=0 skip=0 failed=""
work=$(mktemp -d "${TMPDIR:-/tmp}/rwkv7c-tests.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
# Unit programs are found from their sources, so a stale binary left in the
# build tree by a renamed or deleted test does not run, and one that was not
# built fails.
for t in $scripts tests/unit/*.c; do
    [ -f "$t" ] || continue
    case "$t" in
        *.sh) name=$(basename "$t" .sh) ;;
        *)    name=$(basename "$t" .c); t="$unit_dir/$name" ;;
    esac
    [ -n "${1:-}" ] && case "$name" in *"$1"*) ;; *) continue ;; esac
    dir="$work/$name"; mkdir -p "$dir"
    name="$label$name"
    start=$(date +%s)
    case "$t" in
        *.sh) (cd "$dir" && TEST_TMP="$dir" sh "$top/$t") >"$dir.log" 2>&1 ;;
        *)    if [ -x "$t" ]; then (cd "$dir" && TEST_TMP="$dir" "$t") >"$dir.log" 2>&1
              else echo "$t: not built (run make)" >"$dir.log"; false; fi ;;
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
