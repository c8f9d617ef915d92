#!/bin/sh
# lib/comm_mpi.c across processes under mpirun (tests/helpers/comm_check): every collective
# on 2 and 3 ranks, bit-equal to the rank-order sum and across ranks (3 ranks also with a
# 1000-byte segment, so that every call crosses segment boundaries); rank 0's id by MPI
# broadcast; launch_open_comm choosing MPI under mpirun, and refusing a world of the wrong
# size; a stuck rank named by the others' timeout; a killed rank ending the job in
# seconds.  Skips without mpirun or when built without MPI.
. "$TOP/tests/lib.sh"
H=$BIN/../helpers/comm_check
need_mpirun
"$H" mpi-built || { echo "built without MPI (mpicc missing at build time)"; exit 77; }
export OMP_NUM_THREADS=1

for np in 2 3; do
    $MPIRUN -np $np "$H" collectives mpi >out.txt 2>err.txt
    eq "-np $np: every collective, every rank" "$?" 0
    eq "... $np ranks reported no failure" "$(grep -c ' 0 failed' out.txt)" $np
done
check "... 3 ranks: the data makes the sum order matter" grep -q 'checks, 0 failed, [1-9][0-9]* sums depend' out.txt
RWKV7C_COMM_SEG_BYTES=1000 $MPIRUN -np 3 -x RWKV7C_COMM_SEG_BYTES "$H" collectives mpi >out.txt 2>err.txt
eq "-np 3, 1000-byte segments" "$?" 0
eq "... 3 ranks reported no failure" "$(grep -c ' 0 failed' out.txt)" 3

# launch_open_comm (as the trainer will) picks MPI under mpirun ...
$MPIRUN -np 2 "$H" collectives auto >out.txt 2>err.txt
eq "auto under mpirun" "$?" 0
eq "... is the MPI backend on both ranks" "$(grep -c '(mpi): [0-9]* checks, 0 failed' out.txt)" 2
# ... and refuses an MPI world that is not the launcher's (here: OpenMPI's variables, no mpirun)
OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2 timeout 60 "$H" collectives auto >out.txt 2>err.txt
eq "MPI world of 1, launcher says 2: fails" "$?" 1
check "... saying so" grep -q 'MPI says rank 0 of 1, the launcher (OpenMPI) rank 0 of 2' err.txt

$MPIRUN -np 3 "$H" rendezvous mpi >out.txt 2>err.txt
eq "id by MPI broadcast" "$?" 0
eq "... every rank has rank 0's id" "$(sed 's/^rank [0-9]* //' out.txt | sort -u | wc -l) $(wc -l <out.txt)" "1 3"

# Rank 1 sleeps 30 s before the 3rd all_reduce; the others give up after 2 s and say why.
start=$(date +%s)
RWKV7C_TEST_TIMEOUT=2 $MPIRUN -np 3 -x RWKV7C_TEST_TIMEOUT "$H" stuck mpi 1 30 >out.txt 2>err.txt
rc=$?
secs=$(( $(date +%s) - start ))
check "stuck rank: the job fails (exit $rc)" test $rc -ne 0
check "... within 15 s, not after the 30 s sleep (took $secs s)" test $secs -lt 15
check "... a waiting rank names the call and the timeout" grep -q 'all_reduce #3 on rank [02] of 3 timed out after 2 s' err.txt
check "... and the stuck rank" grep -q 'rank 1 has not reached it' err.txt

# Rank 1 is SIGKILLed: mpirun stops the others at once and names it.
start=$(date +%s)
$MPIRUN -np 3 "$H" die mpi 1 >out.txt 2>err.txt
rc=$?
secs=$(( $(date +%s) - start ))
check "killed rank: the job fails (exit $rc)" test $rc -ne 0
check "... within 15 s (took $secs s)" test $secs -lt 15
check "... the killed rank is named" grep -q 'rank 1 .*signal 9\|rank 1 .*dead' err.txt
finish
