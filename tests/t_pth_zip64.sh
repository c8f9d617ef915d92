#!/bin/sh
# Zip64 past 4 GiB, both ways: a 4 GiB+ torch.save file is read (Zip64 extras,
# 24-byte data descriptors), and our writer's 4 GiB+ .pth passes Python's
# zipfile CRC test and torch.load.  Needs ~18 GB of disk and ~10 GB of memory,
# so it runs only with RWKV7C_BIG_TESTS=1.
. "$TOP/tests/lib.sh"
[ "${RWKV7C_BIG_TESTS:-0}" = 1 ] || { echo "set RWKV7C_BIG_TESTS=1 to run (writes ~18 GB)"; exit 77; }
need_torch
REF="$PYTHON $TOP/tests/ref/pth_fixtures.py"
check "torch.save writes a 4 GiB+ file" $REF big big.pth
check "read: 4 GiB+ .pth -> safetensors" pth-convert big.pth big.st
rm -f big.pth
check "write: safetensors -> 4 GiB+ .pth" pth-convert big.st ours.pth
check "safetensors and our .pth hold the data (zipfile CRC test, torch.load)" $REF check_big big.st ours.pth
check "our 4 GiB+ .pth converts back bit-exactly" sh -c 'pth-convert ours.pth back.st && cmp big.st back.st'
rm -f big.st ours.pth back.st
finish
