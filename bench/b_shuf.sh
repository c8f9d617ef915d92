#!/bin/sh
# jsonl-shuf throughput on ~40 MB of JSON lines, 3 copies, as ratios against
# make_data.py's shuffle step (Python: strip, random.shuffle, write), GNU shuf and
# cat (no shuffle: the I/O ceiling), measured in the same run.  Also the external shuffle (-m 4M) against in memory.
set -u
work=$(mktemp -d "${TMPDIR:-/tmp}/b_shuf.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cd "$work" || exit 1
"$PYTHON" - <<'EOF'
import random
r = random.Random(1)
words = ["the", "model", "token", "shuffle", "data", "RWKV", "line", "json", "\u00e9t\u00e9"]
with open("in.jsonl", "w", encoding="utf-8") as f:
    size = 0
    while size < 40_000_000:
        s = '{"text": "%s"}\n' % " ".join(r.choice(words) for _ in range(r.randrange(5, 60)))
        f.write(s)
        size += len(s.encode())
EOF
cat >make_data_shuffle.py <<'EOF'
import random, sys
lines = [l.strip() for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
random.seed(1)
with open(sys.argv[2], "w", encoding="utf-8") as o:
    for _ in range(int(sys.argv[3])):
        random.shuffle(lines)
        for l in lines:
            o.write(l + "\n")
EOF
mb=$(awk -v b="$(wc -c <in.jsonl)" 'BEGIN { printf "%.1f", 3 * b / 1e6 }')
# wall seconds of a command whose stdout goes to file $1 (all peers write a plain file, no fsync)
secs() { o=$1; shift; s=$(date +%s.%N); "$@" >"$o" 2>/dev/null; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }'; }
t_c=$(secs out.c jsonl-shuf -n 3 --seed 1 in.jsonl)
t_ext=$(secs out.ext jsonl-shuf -n 3 --seed 1 -m 4M in.jsonl)
t_py=$(secs /dev/null "$PYTHON" make_data_shuffle.py in.jsonl out.py 3)
t_shuf=$(secs out.shuf sh -c 'for i in 1 2 3; do shuf --random-source=in.jsonl in.jsonl; done')
t_cat=$(secs out.cat cat in.jsonl in.jsonl in.jsonl)
cmp -s out.c out.py && same=yes || same=no
awk -v mb="$mb" -v c="$t_c" -v x="$t_ext" -v py="$t_py" -v sh="$t_shuf" -v cat="$t_cat" -v same="$same" 'BEGIN {
    printf "jsonl-shuf -n 3, %s MB out: in memory %.0f MB/s, external (-m 4M) %.0f MB/s\n", mb, mb / c, mb / x
    printf "  vs make_data.py shuffle step (Python, same seed, identical output: %s): %.1fx (Python %.1f MB/s)\n", same, py / c, mb / py
    printf "  vs GNU shuf (3 runs): %.1fx (shuf %.0f MB/s)\n", sh / c, mb / sh
    printf "  external / in-memory time: %.2f\n", x / c
    printf "  vs cat of the same bytes (the I/O ceiling): %.2fx (cat %.0f MB/s)\n", cat / c, mb / cat
}'
