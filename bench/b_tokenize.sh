#!/bin/sh
# rwkv-tokenize throughput, 1 and 2 threads, on ~30 MB of JSON lines
# (examples/demo.jsonl x40 + Python library sources as documents: prose, chat,
# CJK, code), as ratios against the Python reference tokenizer
# (tests/ref/trie_tokenizer.py, the TRIE_TOKENIZER algorithm) measured in the
# same run.  Python is timed on a 2 MB slice (encoding only, vocabulary load
# excluded) in CPU time, so other load on the machine does not favour us.
# rwkv-tokenize runs on the whole file, best of 3, everything included
# (vocabulary load, JSON parsing, writing the binary stream to /dev/null), in
# wall time and in CPU time (user + sys).
# Also the encoder alone (bench/tokenize_bench.c: no JSON, no I/O, thread CPU
# time) on the corpus's texts, split into its prose and code parts.
set -u
[ -x "$TOP/build/bench/tokenize_bench" ] || { echo "build first: make bench"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/b_tokenize.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cd "$work" || exit 1
vocab=$TOP/share/rwkv7c/rwkv_vocab_v20230424.txt
"$PYTHON" - "$TOP/examples/demo.jsonl" <<'EOF2'
import glob, json, sys
demo = open(sys.argv[1], encoding="utf-8").read()
size = 0
with open("corpus.jsonl", "w", encoding="utf-8") as out:
    for _ in range(40):
        out.write(demo)
        size += len(demo.encode())
    for f in sorted(glob.glob("/usr/lib/python3*/**/*.py", recursive=True)):
        try:
            t = open(f, encoding="utf-8").read()
        except (OSError, UnicodeError):
            continue
        if not t.strip():
            continue
        s = json.dumps({"text": t}, ensure_ascii=False) + "\n"
        out.write(s)
        size += len(s.encode())
        if size > 30e6:
            break
EOF2
"$PYTHON" - <<'EOF2'
import json
with open("corpus.jsonl", encoding="utf-8") as f, open("prose.txt", "w", encoding="utf-8") as p, \
        open("code.txt", "w", encoding="utf-8") as c:
    for i, line in enumerate(f):
        (p if i < 40 * 182 else c).write(json.loads(line)["text"])
EOF2
enc_prose=$("$TOP/build/bench/tokenize_bench" "$vocab" prose.txt)
enc_code=$("$TOP/build/bench/tokenize_bench" "$vocab" code.txt)
head -c 2000000 corpus.jsonl | sed '$d' > slice.jsonl
mb=$(awk -v b="$(wc -c < corpus.jsonl)" 'BEGIN { printf "%.1f", b / 1e6 }')
py=$("$PYTHON" - "$TOP/tests/ref" "$vocab" <<'EOF2'
import json, sys, time
sys.path.insert(0, sys.argv[1])
from trie_tokenizer import TRIE_TOKENIZER
tok = TRIE_TOKENIZER(sys.argv[2])
raw = open("slice.jsonl", "rb").read()
t0 = time.process_time()   # CPU time: robust to other load, as tokenize_bench
n = 0
for line in raw.decode("utf-8").split("\n"):
    if line.strip():
        n += len(tok.encode(json.loads(line)["text"])) + 1
t1 = time.process_time()
print("%.3f" % (len(raw) / 1e6 / (t1 - t0)))
EOF2
)
best() {   # "WALL CPU" seconds of the run with the least wall time of 3
    "$PYTHON" -c 'import resource, subprocess, sys, time
best = None
for r in range(3):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    with open(sys.argv[-1], "rb") as f, open("/dev/null", "wb") as o:
        if subprocess.run(sys.argv[1:-1], stdin=f, stdout=o).returncode: sys.exit(1)
    w = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    c = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if best is None or w < best[0]: best = (w, c)
print("%.4f %.4f" % best)' "$@" corpus.jsonl
}
t1=$(best rwkv-tokenize -j 1)
t2=$(best rwkv-tokenize -j 2)
# the vector walk (AVX-512 gathers, many texts at once) against the scalar one, same run
ts=$(best env RWKV7C_TOKENIZER_WALK=scalar rwkv-tokenize -j 1)
rwkv-tokenize --text slice.jsonl > c.ids
"$PYTHON" "$TOP/tests/ref/trie_tokenizer.py" "$vocab" jsonl < slice.jsonl > py.ids
cmp -s c.ids py.ids && same=identical || same=DIFFERENT
ratio() { awk -v r="${1%% MB/s*}" -v py="$py" 'BEGIN { printf "%.0fx python", r / py }'; }
echo "encoder only, demo.jsonl texts x40 (chat/prose, some CJK): $enc_prose = $(ratio "$enc_prose")"
echo "encoder only, Python sources: $enc_code = $(ratio "$enc_code")"
vendor=$(sed -n 's/^vendor_id[^:]*: //p' /proc/cpuinfo | head -n 1)
avx512=$(grep -q avx512f /proc/cpuinfo && echo yes || echo no)
awk -v load="$(cut -d' ' -f1 /proc/loadavg)" -v ncpu="$(nproc)" -v mb="$mb" -v py="$py" -v t1="$t1" -v t2="$t2" -v ts="$ts" \
    -v same="$same" -v vendor="$vendor" -v avx512="$avx512" 'BEGIN {
    printf "corpus %s MB of JSONL (demo.jsonl x40 + Python sources); load average %s on %s CPUs\n", mb, load, ncpu
    printf "python reference (trie_tokenizer.py, 2 MB slice): %.2f MB per CPU-second  (ids on the slice: %s)\n", py, same
    split(t1, a, " "); split(t2, b, " ")
    printf "rwkv-tokenize -j 1: %.0f MB/s = %.0fx python; %.0f MB per CPU-second = %.0fx python\n", mb / a[1], mb / a[1] / py, mb / a[2], mb / a[2] / py
    printf "rwkv-tokenize -j 2: %.0f MB/s = %.0fx python (%.2fx -j 1 wall)\n", mb / b[1], mb / b[1] / py, a[1] / b[1]
    split(ts, c, " ")
    printf "vector walk (default) vs RWKV7C_TOKENIZER_WALK=scalar, -j 1, %s, AVX-512 %s: %.2fx per CPU-second\n", vendor, avx512, c[2] / a[2]
}'
