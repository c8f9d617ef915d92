"""Helpers for tests/t_train*.sh: write small binidx data sets (MMIDIDX v1, uint16)."""
import random
import struct
import sys


def write_binidx(prefix, docs):
    with open(prefix + ".bin", "wb") as f:
        for d in docs:
            f.write(struct.pack("<%dH" % len(d), *d))
    sizes, ptrs, off = [], [], 0
    for d in docs:
        sizes.append(len(d))
        ptrs.append(off)
        off += 2 * len(d)
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00" + struct.pack("<QB", 1, 8))
        f.write(struct.pack("<QQ", len(docs), len(docs) + 1))
        f.write(struct.pack("<%di" % len(sizes), *sizes))
        f.write(struct.pack("<%dq" % len(ptrs), *ptrs))
        f.write(struct.pack("<%dq" % (len(docs) + 1), *range(len(docs) + 1)))


def copy_docs(n, seed, lo=3, hi=6):
    """Digit-copy task: d1..dk = d1..dk EOD.  Tokens: 1..10 digits, 11 '=', 0 EOD."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        k = rng.randint(lo, hi)
        ds = [rng.randint(1, 10) for _ in range(k)]
        docs.append(ds + [11] + ds + [0])
    return docs


if __name__ == "__main__":
    kind, prefix = sys.argv[1], sys.argv[2]
    if kind == "copy":      # copy PREFIX NDOCS SEED
        write_binidx(prefix, copy_docs(int(sys.argv[3]), int(sys.argv[4])))
    elif kind == "random":  # random PREFIX NTOKENS VOCAB SEED (documents of 100)
        n, v, rng = int(sys.argv[3]), int(sys.argv[4]), random.Random(int(sys.argv[5]))
        toks = [rng.randrange(1, v) for _ in range(n)]
        write_binidx(prefix, [toks[i:i + 100] for i in range(0, n, 100)])
    else:
        sys.exit("usage: train_util.py copy PREFIX NDOCS SEED | random PREFIX NTOKENS VOCAB SEED")
