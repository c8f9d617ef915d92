#!/bin/sh
# Runs the tests: tests/t_*.sh scripts and the unit programs built from
# tests/unit/*.c.  A test passes with exit 0, is skipped with exit 77, fails
# otherwise.
# Usage: tests/run.sh [PATTERN...]               tests whose name contains a PATTERN (all without one)
#        tests/run.sh --build DIR [PATTERN...]   the same against another build tree: the tools in
#                                                DIR/bin, the unit programs in DIR/tests
# With --build (make check-asan: DIR = build/asan), sanitizer reports go to
# files (log_path) instead of the programs' stderr, so a report from a tool
# whose stderr a test swallows is still seen: any report fails the test.
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
build=build label= sanitized=
if [ "${1:-}" = "--build" ]; then
    [ -n "${2:-}" ] || { echo "usage: tests/run.sh --build DIR [PATTERN...]" >&2; exit 2; }
    build=${2%/} label="${2%/}/" sanitized=1
    shift 2
fi
case "${1:-}" in --*) echo "tests/run.sh: unknown option $1" >&2; exit 2 ;; esac
case "$build" in /*) ;; *) build="$top/$build" ;; esac
export TOP="$top" BIN="$build/bin" PATH="$build/bin:$PATH"
export PYTHON="${PYTHON:-/usr/bin/python3}"
export SHARED="${SHARED:-$top/../shared}"
[ -d "$top/build/pip/rwkv" ] && export RWKV_PIP_DIR="${RWKV_PIP_DIR:-$top/build/pip}"
asan_options=${ASAN_OPTIONS:-} ubsan_options=${UBSAN_OPTIONS:-}
pass=0 failn=0 skip=0 failed=""
work=$(mktemp -d "${TMPDIR:-/tmp}/rwkv7c-tests.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
selected() {   # NAME: does it match one of the patterns (or are there none)?
    [ $# -eq 1 ] && return 0
    n=$1; shift
    for p in "$@"; do case "$n" in *"$p"*) return 0 ;; esac; done
    return 1
}
# Unit programs are found from their sources, so a stale binary left in the
# build tree by a renamed or deleted test does not run, and one that was not
# built fails.
for t in tests/t_*.sh tests/unit/*.c; do
    [ -f "$t" ] || continue
    case "$t" in
        *.sh) name=$(basename "$t" .sh) ;;
        *)    name=$(basename "$t" .c); t="$build/tests/$name" ;;
    esac
    selected "$name" "$@" || continue
    dir="$work/$name"; mkdir -p "$dir"
    san="$work/$name.sanitizer"
    if [ -n "$sanitized" ]; then
        export ASAN_OPTIONS="$asan_options:log_path=$san" UBSAN_OPTIONS="$ubsan_options:log_path=$san"
    fi
    name="$label$name"
    start=$(date +%s)
    case "$t" in
        *.sh) (cd "$dir" && TEST_TMP="$dir" sh "$top/$t") >"$dir.log" 2>&1 ;;
        *)    if [ -x "$t" ]; then (cd "$dir" && TEST_TMP="$dir" "$t") >"$dir.log" 2>&1
              else echo "$t: not built (run make)" >"$dir.log"; false; fi ;;
    esac
    rc=$?
    secs=$(( $(date +%s) - start ))
    # A finding ends with a SUMMARY line; LeakSanitizer's "fatal error" when a
    # test kills or limits a tool mid-run has none and is no finding.
    reports=$(grep -l "^SUMMARY: " "$san".* 2>/dev/null)
    if [ -n "$reports" ]; then
        case $rc in 0|77) rc=1 ;; esac
        echo "$(echo "$reports" | wc -l) sanitizer report(s); the first:" >>"$dir.log"
        head -n 30 "$(echo "$reports" | head -n 1)" >>"$dir.log"
    fi
    if [ $rc -eq 0 ]; then pass=$((pass+1)); echo "PASS $name (${secs}s)"
    elif [ $rc -eq 77 ]; then skip=$((skip+1)); echo "SKIP $name: $(tail -n 1 "$dir.log")"
    else failn=$((failn+1)); failed="$failed $name"; echo "FAIL $name (exit $rc, ${secs}s)"; sed 's/^/    /' "$dir.log" | tail -n 40
    fi
done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $failn failed, $skip skipped"
[ $failn -eq 0 ]
