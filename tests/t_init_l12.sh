#!/bin/sh
# rwkv-init at L12-D768 (V small to keep it quick): bf16 values at chosen
# channels of layers 0 and 11 (worked out from RWKV-LM-V7 src/model.py's
# formulas) and the full tensor comparison with tests/ref/init_ref.py at real
# size; the printed count matches 191,084,544 less the smaller emb and head.
. "$TOP/tests/lib.sh"
need_torch
ref="$PYTHON $TOP/tests/ref/init_ref.py"
rwkv-init -L 12 -C 768 --vocab-size 1024 --seed 3 -o l12.st > l12.txt
eq "L12-D768 init" $? 0
check "sanity values at chosen channels (bf16)" $ref sanity l12.st
check "every tensor at L12-D768" $ref check l12.st 12 768 1024
# count for V=1024 = 191,084,544 - 2*(65536-1024)*768
eq "L12-D768-V1024 count" "$(sed -n 's/^model params //p' l12.txt)" \
   $((191084544 - 2 * (65536 - 1024) * 768))
finish
