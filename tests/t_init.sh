#!/bin/sh
# rwkv-init: names, shapes and order (the state_dict order of RWKV-LM-V7
# src/model.py), every deterministic tensor against tests/ref/init_ref.py (torch,
# the constructors of src/model.py and src/trainer.py generate_init_weight: bf16
# bit-exact; fp32 exact float32 formula), orthogonality and gain, zeros, emb
# range/uniformity, parameter counts and LoRA ranks (RWKV_Tmix_x070.__init__),
# reproducibility, options and errors.
. "$TOP/tests/lib.sh"
need_torch
ref="$PYTHON $TOP/tests/ref/init_ref.py"

# parameter counts and the LoRA rank table (src/model.py), computed independently in Python
check "counts and LoRA ranks (python)" $ref counts

# fp32 and bf16, small model with V > C and V < C (head gain 0.5*sqrt(V/C) vs 0.5)
rwkv-init -L 3 -C 256 --vocab-size 1000 --seed 5 --dtype fp32 -o f32.st > f32.txt
eq "fp32 init exit" $? 0
check "fp32: formulas exact, orthogonal, zeros, emb" $ref check f32.st 3 256 1000
rwkv-init -q -L 3 -C 256 --vocab-size 1000 --seed 5 -o bf16.st
check "bf16 (default): formulas bit-exact vs torch .bfloat16()" $ref check bf16.st 3 256 1000
rwkv-init -q -L 2 -C 192 --vocab-size 128 --seed 9 --dtype fp32 -o small.st
check "V < C, C=192 (3 heads)" $ref check small.st 2 192 128
rwkv-init -q -L 2 -C 128 --vocab-size 300 --seed 9 --dtype fp16 -o f16.st
check "fp16" $ref check f16.st 2 128 300

# table and parameter count on stdout
want=$("$PYTHON" -c "
import sys; sys.path.insert(0, '$TOP/tests/ref'); import init_ref, math
print(sum(math.prod(s) for _, s in init_ref.state_dict_shapes(3, 256, 1000)))")
eq "model params line" "$(grep '^model params' f32.txt)" "model params $want"
eq "seed line" "$(head -n 1 f32.txt)" "seed 5"
eq "table rows = tensors" "$(grep -c -E '^(emb|blocks|ln_out|head)' f32.txt)" 105
eq "table: ffn.key row" "$(grep '^blocks.2.ffn.key.weight' f32.txt | tr -s ' ')" "blocks.2.ffn.key.weight 1024 x 256 orthogonal gain 1"
check "-q prints nothing" sh -c 'rwkv-init -q -L 2 -C 64 --vocab-size 64 -o q.st >q.txt && [ ! -s q.txt ]'

# LoRA overrides and --no-layer0-v
rwkv-init -q -L 2 -C 128 --vocab-size 200 --seed 1 --dtype fp32 --lora-decay 64 --lora-aaa 96 --lora-mv 32 --lora-gate 160 --no-layer0-v -o ov.st
check "rank overrides + --no-layer0-v" $ref check ov.st 2 128 200 --no-layer0-v --ranks 64,96,32,160

# reproducibility
rwkv-init -q -L 2 -C 128 --vocab-size 300 --seed 42 -o s42a.st
rwkv-init -q -L 2 -C 128 --vocab-size 300 --seed 42 -o s42b.st
rwkv-init -q -L 2 -C 128 --vocab-size 300 --seed 43 -o s43.st
check "same seed -> identical file" cmp -s s42a.st s42b.st
check "different seed -> different file" sh -c '! cmp -s s42a.st s43.st'
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 rwkv-init -q -L 2 -C 128 --vocab-size 300 --seed 42 -o s42c.st
check "same seed, one thread -> identical file" cmp -s s42a.st s42c.st
"$PYTHON" -c "
import sys; sys.path.insert(0, '$TOP/tests/ref'); import init_ref, torch
a = dict(init_ref.st_load('s42a.st')[0]); b = dict(init_ref.st_load('s43.st')[0])
diff = sorted(n for n in a if not torch.equal(a[n], b[n]))
kinds = {init_ref.kind_of(n, 128, 300, init_ref.lora_ranks(128))[0] for n in diff}
assert kinds == {'ortho', 'uniform'}, kinds
assert len(diff) == 1 + 2 * 8 + 1, diff     # emb, 8 orthogonal per layer, head
" 2>err.txt
eq "only the random tensors depend on the seed" $? 0
rwkv-init -L 2 -C 64 --vocab-size 64 -o auto.st > auto.txt
s=$(sed -n 's/^seed //p' auto.txt)
check "picked seed printed" test -n "$s"
"$PYTHON" -c "
import sys; sys.path.insert(0, '$TOP/tests/ref'); import init_ref
print(init_ref.st_load('auto.st')[1]['init_seed'])" > meta_seed.txt
eq "picked seed in metadata" "$(cat meta_seed.txt)" "$s"
rwkv-init -q -L 2 -C 64 --vocab-size 64 --seed "$s" -o auto2.st
check "picked seed reproduces the file" cmp -s auto.st auto2.st

# output handling
expect_fail "refuses to overwrite" "exists" rwkv-init -q -L 2 -C 64 --vocab-size 64 -o auto.st
check "-f overwrites" rwkv-init -q -f -L 2 -C 64 --vocab-size 64 --seed 1 -o auto.st
check "default output name" sh -c 'mkdir d && cd d && rwkv-init -q -L 2 -C 64 --vocab-size 64 && [ -s rwkv-init.safetensors ]'
expect_fail "unwritable directory" "cannot create" rwkv-init -q -L 2 -C 64 --vocab-size 64 -o /nonexistent/x.st
eq "no temporaries left" "$(ls | grep -c tmp)" 0

# usage
rwkv-init --help > help.txt; eq "--help exit 0" $? 0
check "--help on stdout" grep -q -- "--n-layer" help.txt
check "--version" sh -c 'rwkv-init --version | grep -q "^rwkv-init "'
eq "-V is --version, as in every tool" "$(rwkv-init -V)" "rwkv-init (rwkv7c) 0.1.0"
# -V used to be --vocab-size: an old command line must fail, not print the version and exit 0
expect_fail "old -V 16: usage error" "(-V is --version; the vocabulary size is --vocab-size)" \
    rwkv-init -q -L 2 -C 64 -V 16 -o x.st
expect_fail "bad dtype: the one phrasing" "rwkv-init: invalid value 'int8' for --dtype (want bf16, fp32 or fp16)" \
    rwkv-init -L 2 -C 64 --dtype int8 -o x.st
expect_fail "bad count: the one phrasing" "rwkv-init: invalid value '0' for --vocab-size (want a whole number" \
    rwkv-init -L 2 -C 64 --vocab-size 0 -o x.st
rwkv-init -C 64 2>/dev/null; eq "missing --n-layer: exit 2" $? 2
rwkv-init -L 1 -C 64 -o x.st 2>err.txt; eq "n_layer 1: exit 2" $? 2
check "n_layer 1: message" grep -q "n_layer must be >= 2" err.txt
rwkv-init -L 2 -C 100 -o x.st 2>/dev/null; eq "C=100: exit 2" $? 2
rwkv-init -L 2 -C 64 --head-size 32 -o x.st 2>/dev/null; eq "head size 32: exit 2" $? 2
rwkv-init -L 2 -C 64 --dtype int8 -o x.st 2>/dev/null; eq "bad dtype: exit 2" $? 2
rwkv-init -L x -C 64 -o x.st 2>/dev/null; eq "bad number: exit 2" $? 2
rwkv-init -L 2 -C 64 extra 2>/dev/null; eq "extra argument: exit 2" $? 2
check "no output after usage errors" test ! -e x.st
finish
