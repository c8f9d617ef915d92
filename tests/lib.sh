# Shared helpers for tests/t_*.sh (sourced).  Run from a fresh temp directory.
set -u
fails=0
ok()   { echo "ok: $*"; }
bad()  { echo "FAIL: $*"; fails=$((fails+1)); }
# check DESCRIPTION COMMAND... : passes when the command succeeds
check() { d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
# expect_fail DESCRIPTION EXPECTED_STDERR_SUBSTRING COMMAND... : non-zero exit and message
expect_fail() {
    d=$1; want=$2; shift 2
    if "$@" >out.txt 2>err.txt; then bad "$d: exited 0"; return; fi
    if grep -qF -- "$want" err.txt; then ok "$d"; else bad "$d: stderr lacks '$want': $(head -c 300 err.txt)"; fi
}
eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', want '$3'"; fi; }
need_torch() { "$PYTHON" -c 'import torch' 2>/dev/null || { echo "python3-torch missing under $PYTHON"; exit 77; }; }
need_shared() { [ -d "$SHARED" ] || { echo "no shared/ beside the checkout"; exit 77; }; }
finish() { if [ $fails -eq 0 ]; then echo "all ok"; exit 0; else echo "$fails failure(s)"; exit 1; fi; }
