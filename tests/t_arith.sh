#!/bin/sh
# examples/arithmetic: arith-gen's documents are right by an independent check
# (tests/ref/arith_check.py parses every phrasing back, full-width digits too,
# and recomputes each answer), cover every variant, and are reproducible by
# seed; the held-out set shares no problem with the training documents; the
# small vocabulary tokenizes them; arith-eval runs a (tiny, untrained) model
# over held-out problems and prints its accuracy line; errors.
. "$TOP/tests/lib.sh"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
PATH="$TOP/build/examples:$PATH"
command -v arith-gen >/dev/null && command -v arith-eval >/dev/null || { echo "examples not built"; exit 77; }
checker="$TOP/tests/ref/arith_check.py"

# the documents: 1 to 3 digits, every phrasing and kind
check "arith-gen training documents" sh -c 'arith-gen -n 20000 -s 7 -d 3 >train.jsonl'
check "arith-gen --eval" sh -c 'arith-gen --eval -n 1000 -s 7 -d 3 >eval.jsonl'
check "independent check: answers right, every variant, eval disjoint from training" \
    "$PYTHON" "$checker" train.jsonl eval.jsonl --require-variants
# the held-out problems are a fixed part of the problem space: another seed's
# training documents (and the 2-digit demo's) never hold them either
arith-gen -n 20000 -s 8 -d 2 >train2.jsonl
arith-gen --eval -n 500 -s 1 -d 2 >eval2.jsonl
check "other seeds and digit counts: still disjoint" "$PYTHON" "$checker" train2.jsonl eval2.jsonl
check "... and across digit settings" "$PYTHON" "$checker" train.jsonl eval2.jsonl

# the checker is not vacuous: a wrong answer, and a held-out problem put into training, fail it
sed '5s/\([0-9]\)"}$/\1\1"}/' train.jsonl >wrong.jsonl
if "$PYTHON" "$checker" wrong.jsonl >check.txt; then bad "checker missed a wrong answer"
elif grep -q "wrong answer" check.txt; then ok "checker finds a wrong answer"
else bad "checker failed for another reason: $(grep FAIL check.txt | head -n 2)"; fi
{ cat train.jsonl; sed -n 3p eval.jsonl | sed 's/","prompt".*/"}/'; } >leak.jsonl
if "$PYTHON" "$checker" leak.jsonl eval.jsonl >check.txt; then bad "checker missed a shared problem"
elif grep -q "problems shared by the two: 1" check.txt; then ok "checker finds a shared problem"
else bad "checker failed for another reason: $(grep FAIL check.txt | head -n 2)"; fi

# reproducible by seed
arith-gen -n 300 -s 7 -d 3 >a.jsonl
head -n 300 train.jsonl >b.jsonl
check "same seed, same documents" cmp -s a.jsonl b.jsonl
arith-gen -n 300 -s 9 -d 3 >c.jsonl
check "another seed, other documents" sh -c '! cmp -s a.jsonl c.jsonl'

# the small vocabulary: every byte plus one token per non-ASCII character
arith-gen --vocab >vocab.txt
n_vocab=$(wc -l <vocab.txt)
V=$((n_vocab + 1))
check "vocabulary tokenizes the documents" sh -c 'rwkv-tokenize --vocab vocab.txt train.jsonl | binidx-write -q train'
max_id=$(binidx-info train 2>/dev/null | sed -n 's/^max_id: *//p')
check "token ids below the vocabulary size $V (max $max_id)" test "${max_id:-99999}" -lt "$V"
eq "a Chinese character is one token" "$(printf '{"text":"加"}\n' | rwkv-tokenize --vocab vocab.txt -t)" "$(grep -n "'加'" vocab.txt | cut -d' ' -f1 | cut -d: -f2) 0"

# the evaluator on an untrained model: it runs and prints the line
rwkv-init -L 2 -C 64 --vocab-size "$V" -s 1 -q -o tiny.safetensors || exit 1
head -n 60 eval.jsonl >e60.jsonl
check "arith-eval runs" sh -c 'arith-eval -m tiny.safetensors --vocab vocab.txt e60.jsonl >eval.txt 2>eval.err'
cat eval.txt
last=$(tail -n 1 eval.txt)
case "$last" in "exact-match accuracy: "[01].[0-9][0-9][0-9]" on 60 held-out problems") ok "accuracy line: $last" ;;
    *) bad "last line: '$last'" ;; esac
check "a row per kind" sh -c 'grep -q "^add " eval.txt && grep -q "^sub " eval.txt && grep -q "^solve " eval.txt'
check "prompts are token prefixes of their documents (no warning)" test ! -s eval.err
eq "from standard input too" "$(arith-eval -m tiny.safetensors --vocab vocab.txt <e60.jsonl | tail -n 1)" "$last"

# errors
expect_fail "the World vocabulary's ids do not fit the small model" "outside the model's vocabulary" \
    arith-eval -m tiny.safetensors e60.jsonl
printf '{"text":"1 + 1 = 2"}\n' >notevals.jsonl
expect_fail "a training record is not an eval record" "notevals.jsonl:1:" \
    arith-eval -m tiny.safetensors --vocab vocab.txt notevals.jsonl
expect_fail "no model" "a checkpoint is required" arith-eval e60.jsonl
expect_fail "bad --max-digits" "max-digits" arith-gen -d 0
expect_fail "bad --kinds" "kinds" arith-gen -k mul
arith-gen -d 1 -k add --eval -n 1000 >/dev/null 2>err.txt
eq "too many distinct 1-digit held-out problems: exit 1" "$?" 1
check "... saying why" grep -q "distinct held-out problems" err.txt
finish
