#!/usr/bin/env python3
"""Reference peer of RWKV-LM-V7 data/make_data.py (which writes the MMIDIDX files
src/binidx.py reads, and prints magic_prime).

Same data path, step for step: keep line.strip() of every non-blank line
(universal newlines), shuffle the list in place N_EPOCH times writing each
copy to a temp file, re-read it, json.loads(line)["text"], tokenize with
TRIE_TOKENIZER (tests/ref/trie_tokenizer.py), check decode(encode(x)) == x
(else print "ERROR"*100 and exit 0, as the reference does), append token 0,
write uint16 .bin and an MMIDIDX v1 .idx, then print the data size and
magic_prime.  numpy only; torch is not needed (the reference imports it just
for the Dataset base class).

Additions for tests, all off by default:
  --no-shuffle   keep file order (the golden figures are made this way)
  --seed S       random.seed(S) before shuffling: reproducible (CPython MT19937)
  --out PREFIX   output prefix (default: the input's base name, in the cwd)
  --vocab FILE   vocabulary (default: share/rwkv7c/ of this checkout)
  --quiet        no progress counters / previews

Usage: make_data.py [options] INPUT.jsonl N_EPOCH CTX_LEN
"""
import argparse
import fileinput
import json
import os
import random
import struct
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from trie_tokenizer import TRIE_TOKENIZER  # noqa: E402


class MMapIndexedDatasetBuilder:
    """src/binidx.py's builder + Index.writer, without torch."""

    def __init__(self, out_file, dtype=np.uint16):
        self._data_file = open(out_file, "wb")
        self._dtype = dtype
        self._sizes = []
        self._doc_idx = [0]

    def add_item(self, np_array):
        assert np_array.dtype == self._dtype
        self._data_file.write(np_array.tobytes(order="C"))
        self._sizes.append(np_array.size)

    def end_document(self):
        self._doc_idx.append(len(self._sizes))

    def finalize(self, index_file):
        self._data_file.close()
        itemsize = np.dtype(self._dtype).itemsize
        pointers, address = [], 0
        for size in self._sizes:
            pointers.append(address)
            address += size * itemsize
        with open(index_file, "wb") as f:
            f.write(b"MMIDIDX\x00\x00")
            f.write(struct.pack("<Q", 1))
            f.write(struct.pack("<B", 8))  # code(np.uint16)
            f.write(struct.pack("<Q", len(self._sizes)))
            f.write(struct.pack("<Q", len(self._doc_idx)))
            f.write(np.array(self._sizes, dtype=np.int32).tobytes(order="C"))
            f.write(np.array(pointers, dtype=np.int64).tobytes(order="C"))
            f.write(np.array(self._doc_idx, dtype=np.int64).tobytes(order="C"))


def is_prime(n):
    if n <= 1:
        return False
    if n <= 3:
        return True
    if n % 2 == 0 or n % 3 == 0:
        return False
    i = 5
    while i * i <= n:
        if n % i == 0 or n % (i + 2) == 0:
            return False
        i += 6
    return True


def main():
    ap = argparse.ArgumentParser(description="reference peer of make_data.py")
    ap.add_argument("input")
    ap.add_argument("n_epoch", type=int)
    ap.add_argument("ctx_len", type=int)
    ap.add_argument("--no-shuffle", action="store_true")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--out")
    ap.add_argument("--vocab", default=os.path.join(HERE, "..", "..", "share", "rwkv7c", "rwkv_vocab_v20230424.txt"))
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()

    tokenizer = TRIE_TOKENIZER(a.vocab)
    out_name = a.out if a.out else os.path.splitext(os.path.basename(a.input))[0]
    if a.seed is not None:
        random.seed(a.seed)
    print(f"### Convert {a.input} to {out_name}.bin/idx...")
    with open(a.input, "r", encoding="utf-8") as file:
        non_empty_lines = [line.strip() for line in file if line.strip()]
    print(f"### Found {len(non_empty_lines)} non-empty lines in {a.input}")

    tmpdir = tempfile.mkdtemp(prefix="make_data.")
    temp_file = os.path.join(tmpdir, "make_data_temp.jsonl")
    try:
        with open(temp_file, "w", encoding="utf-8") as file:
            for i in range(a.n_epoch):
                print(f"Shuffle: {i+1} out of {a.n_epoch}")
                if not a.no_shuffle:
                    random.shuffle(non_empty_lines)
                for entry in non_empty_lines:
                    file.write(entry + "\n")

        print("### Building binidx...")
        builder = MMapIndexedDatasetBuilder(f"{out_name}.bin")
        cnt = 0
        with fileinput.input(temp_file, encoding="utf-8") as ffff:
            for line in ffff:
                raw = json.loads(line)["text"]
                out = tokenizer.encode(raw)
                if tokenizer.decode(out) != raw:
                    print("ERROR" * 100)
                    sys.exit(0)  # sic: the reference reports success here
                out.append(0)
                builder.add_item(np.array(out, dtype=np.uint16))
                builder.end_document()
                if cnt % 500 == 0 and not a.quiet:
                    print(cnt, end=" ", flush=True)
                cnt += 1
        builder.finalize(f"{out_name}.idx")
        print("done")
    finally:
        try:
            os.unlink(temp_file)
        except OSError:
            pass
        os.rmdir(tmpdir)

    data_size = os.path.getsize(f"{out_name}.bin") // 2
    data_len = len(builder._sizes)
    tokens = np.fromfile(f"{out_name}.bin", dtype=np.uint16)
    assert data_len == 0 or tokens[-1] == 0
    print(f"{'-'*80}\n### Final {out_name}.bin/idx has {data_size} tokens, {data_len} items. Dtype <class 'numpy.uint16'>")
    if data_size >= a.ctx_len * 3:
        n_chunk = int(data_size // a.ctx_len) - 1
        for i in range(n_chunk, 0, -1):
            if i % 3 == 2 and is_prime(i):
                print(f"\n### magic_prime = {i} (for ctxlen {a.ctx_len})")
                print(f"\n--my_exit_tokens {data_size} --magic_prime {i} --ctx_len {a.ctx_len}\n")
                return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
