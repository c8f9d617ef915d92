#!/bin/sh
# lib/launch.c with real processes (tests/helpers/comm_check): rank 0's id over TCP and
# through a file, to ranks started here with torchrun-style variables (rank 1 started
# first, so it must retry until rank 0 listens); a missing rank named by rank 0's timeout;
# --devices N self-spawn; a child rank killed -> rank 0 fails at once naming it, and the
# innocent children are killed too.  The TCP communicator (lib/comm_tcp.c) over self-started
# ranks: every collective bit-equal to the rank-order sum; a stuck rank and a killed rank
# named by rank 0 within seconds; rank 0 killed takes its children with it; ranks that
# disagree about the calls, named.
. "$TOP/tests/lib.sh"
H=$BIN/../helpers/comm_check
export OMP_NUM_THREADS=1
same_id() {   # same_id FILE N: N lines, one id
    eq "$1: every rank has rank 0's id" "$(sed 's/^rank [0-9]* id //' "$1" | sort -u | wc -l) $(wc -l <"$1")" "1 $2"
}

# TCP: ranks 2 and 1 first, rank 0 half a second later.
port=$("$H" free-port)
export WORLD_SIZE=3 MASTER_ADDR=localhost MASTER_PORT=$port RWKV7C_TEST_TIMEOUT=20
RANK=2 "$H" rendezvous tcp >r2.txt 2>r2.err & p2=$!
RANK=1 "$H" rendezvous tcp >r1.txt 2>r1.err & p1=$!
sleep 0.5
RANK=0 "$H" rendezvous tcp >r0.txt 2>r0.err
eq "tcp: rank 0" $? 0
wait $p1; eq "tcp: rank 1" $? 0
wait $p2; eq "tcp: rank 2" $? 0
cat r0.txt r1.txt r2.txt >tcp.txt
same_id tcp.txt 3

# TCP: rank 2 never comes; rank 0 fails after its timeout naming rank 2; rank 1 (a longer
# timeout) fails as soon as rank 0 closes the connection.
port=$("$H" free-port)
export MASTER_PORT=$port RWKV7C_TEST_TIMEOUT=2
RANK=1 RWKV7C_TEST_TIMEOUT=6 "$H" rendezvous tcp >r1.txt 2>r1.err & p1=$!
start=$(date +%s)
RANK=0 "$H" rendezvous tcp >r0.txt 2>r0.err
eq "tcp, rank 2 missing: rank 0 fails" $? 1
check "... within seconds" test $(( $(date +%s) - start )) -lt 10
check "... naming rank 2" grep -q 'rank 2 did not connect within 2 s' r0.err
wait $p1; eq "... rank 1 fails too" $? 1
check "... saying rank 0 gave up" grep -q 'rank 0 at localhost:[0-9]* closed the connection' r1.err

# TCP: a rank with another world size is refused, by name.
port=$("$H" free-port)
export MASTER_PORT=$port RWKV7C_TEST_TIMEOUT=10
RANK=1 WORLD_SIZE=3 "$H" rendezvous tcp >r1.txt 2>r1.err & p1=$!
RANK=0 WORLD_SIZE=2 "$H" rendezvous tcp >r0.txt 2>r0.err
eq "tcp, world sizes differ: rank 0 fails" $? 1
check "... naming the rank and both sizes" grep -q 'rank 1 says the world has 3 ranks, rank 0 says 2' r0.err
wait $p1; eq "... rank 1 fails too" $? 1
check "... refused" grep -q 'rank 0 refused rank 1: it has another world size' r1.err

# File: readers first; the file is gone afterwards.
unset MASTER_ADDR MASTER_PORT
export WORLD_SIZE=3 RWKV7C_TEST_TIMEOUT=20
RANK=1 "$H" rendezvous file shared/id >r1.txt 2>r1.err & p1=$!
RANK=2 "$H" rendezvous file shared/id >r2.txt 2>r2.err & p2=$!
mkdir shared
sleep 0.3
RANK=0 "$H" rendezvous file shared/id >r0.txt 2>r0.err
eq "file: rank 0" $? 0
wait $p1; eq "file: rank 1" $? 0
wait $p2; eq "file: rank 2" $? 0
cat r0.txt r1.txt r2.txt >file.txt
same_id file.txt 3
eq "file: nothing left behind" "$(ls shared)" ""
unset RANK WORLD_SIZE

# --devices 3 without a launcher: this process is rank 0 and starts ranks 1 and 2.
"$H" spawn 3 >out.txt 2>err.txt
eq "spawn 3: exit 0" $? 0
grep ' id ' out.txt >ids.txt
same_id ids.txt 3
eq "... ranks 0, 1, 2" "$(sed -n 's/^rank \([0-9]*\) pid.*/\1/p' out.txt | sort | tr -d '\n')" 012

# Rank 1 kills itself after the rendezvous; rank 2 would sleep 120 s; rank 0 lingers 3 s
# after noticing, so that rank 2 must have been killed by the watcher, not at rank 0's exit.
start=$(date +%s)
RWKV7C_TEST_LINGER=3 "$H" spawn 3 1 >out.txt 2>err.txt & p0=$!
i=0
while [ $i -lt 100 ] && ! grep -q 'rank 1 was killed' err.txt; do sleep 0.1; i=$((i + 1)); done
check "spawn, rank 1 killed: rank 0 notices within seconds" test $(( $(date +%s) - start )) -lt 10
check "... naming rank 1 and the signal" grep -q 'rank 1 was killed by signal 9' err.txt
pid2=$(sed -n 's/^rank 2 pid //p' out.txt)
sleep 0.3
check "... rank 2 (pid $pid2) is killed while rank 0 still runs" test -n "$pid2" -a ! -d "/proc/$pid2" -a -d "/proc/$p0"
wait $p0
eq "... rank 0 exits 1" $? 1

# The TCP communicator on 2 and 3 self-started ranks.
for n in 2 3; do
    RWKV7C_TEST_DEVICES=$n "$H" collectives tcp >out.txt 2>err.txt
    eq "tcp comm, $n ranks: every collective" $? 0
    eq "... $n ranks reported no failure" "$(grep -c ' 0 failed' out.txt)" $n
done
check "... 3 ranks: the data makes the sum order matter" grep -q 'checks, 0 failed, [1-9][0-9]* sums depend' out.txt
# launch_open_comm (as the trainer will): TCP for self-started ranks, single for one rank,
# and torchrun-style variables without MASTER_* are an error that says what to set.
RWKV7C_TEST_DEVICES=2 "$H" collectives auto >out.txt 2>err.txt
eq "auto, --devices 2" $? 0
eq "... is the TCP backend on both ranks" "$(grep -c '(tcp): [0-9]* checks, 0 failed' out.txt)" 2
"$H" collectives auto >out.txt 2>err.txt
eq "auto, no launcher" $? 0
check "... is the single-rank backend" grep -q 'rank 0 of 1 (single)' out.txt
RANK=0 WORLD_SIZE=2 "$H" collectives auto >out.txt 2>err.txt
eq "auto, RANK/WORLD_SIZE without MASTER_*: fails" $? 1
check "... saying what to set" grep -q 'torchrun started 2 ranks: set MASTER_ADDR and MASTER_PORT' err.txt

start=$(date +%s)
RWKV7C_TEST_TIMEOUT=2 RWKV7C_TEST_DEVICES=3 "$H" stuck tcp 1 30 >out.txt 2>err.txt
eq "tcp comm, rank 1 stuck: rank 0 fails" $? 1
check "... within 10 s" test $(( $(date +%s) - start )) -lt 10
check "... naming the call, the timeout and rank 1" grep -q 'rank 0: comm: all_reduce #3 on rank 0 of 3 timed out after 2 s.*waiting for rank 1' err.txt
start=$(date +%s)
RWKV7C_TEST_DEVICES=3 "$H" die tcp 1 >out.txt 2>err.txt
eq "tcp comm, rank 1 killed: rank 0 fails" $? 1
check "... within 10 s" test $(( $(date +%s) - start )) -lt 10
check "... naming rank 1" grep -q 'rank 0: comm: all_reduce #3 on rank 0 of 3: rank 1 \(closed the connection\|was killed\)' err.txt
# Rank 0 (the parent) is SIGKILLed: its children die with it (PR_SET_PDEATHSIG).
# (spawn with a rank 9 that never comes: ranks 1 and 2 sleep outside any socket wait)
RWKV7C_TEST_TIMEOUT=60 "$H" spawn 3 9 >out.txt 2>err.txt & p0=$!
i=0
while [ $i -lt 100 ] && [ "$(grep -c ' id ' out.txt)" -lt 3 ]; do sleep 0.1; i=$((i + 1)); done
pids=$(sed -n 's/^rank [12] pid //p' out.txt | tr '\n' ' ')
kill -KILL $p0
wait $p0 2>/dev/null
sleep 0.5
alive=
# a killed child is left a zombie when PID 1 does not reap orphans (containers): state Z
for p in $pids; do [ -d /proc/$p ] && [ "$(sed 's/.*) //; s/ .*//' /proc/$p/stat 2>/dev/null)" != Z ] && alive="$alive $p"; done
check "rank 0 killed: ranks 1 and 2 ($pids) die with it" test -n "$pids" -a -z "$alive"

RWKV7C_TEST_DEVICES=3 "$H" mismatch tcp 2 >out.txt 2>err.txt
eq "tcp comm, rank 2 makes another call: rank 0 fails" $? 1
check "... naming both calls" grep -q 'rank 2 is in all_gather #2 of 16 bytes, rank 0 in all_reduce #2 of 256 bytes: the ranks disagree' err.txt
finish
