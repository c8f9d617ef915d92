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
# need_mpirun: skip without mpirun; sets MPIRUN (OpenMPI: as root in CI containers, more ranks
# than cores, no CMA: ptrace is often denied in containers)
need_mpirun() {
    command -v mpirun >/dev/null || { echo "mpirun missing (apt-get install openmpi-bin libopenmpi-dev)"; exit 77; }
    MPIRUN=mpirun
    if mpirun --version 2>/dev/null | grep -q 'Open MPI'; then
        export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
        MPIRUN="mpirun --oversubscribe"
    fi
}
