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


def read_safetensors(path):
    import json
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    meta = head.pop("__metadata__", {})
    return meta, {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in head.items()}


def cmp_states(a, b):
    """Exit 0 when two training states hold bit-identical masters, moments and counters."""
    ma, ta = read_safetensors(a)
    mb, tb = read_safetensors(b)
    bad = [k for k in ("master", "adam_m", "adam_v") if ta[k] != tb[k]]
    bad += [k for k in ("step", "adam_step", "warm_step", "epoch_loss_sum", "epoch_loss_n") if ma[k] != mb[k]]
    if bad:
        sys.exit("differ: " + " ".join(bad))
    print("identical: step", ma["step"])


def cmp_pth(pth, st):
    """Exit 0 when a .pth loads with torch.load(weights_only=True) and holds the
    safetensors file's tensors: same names, shapes, bf16 dtype and bits."""
    import json
    import torch
    sd = torch.load(pth, map_location="cpu", weights_only=True)
    with open(st, "rb") as f:
        head = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    head.pop("__metadata__", None)
    data = read_safetensors(st)[1]
    if sorted(sd) != sorted(head):
        sys.exit("names differ: %s" % sorted(set(sd) ^ set(head)))
    for k, t in sd.items():
        if t.dtype != torch.bfloat16 or head[k]["dtype"] != "BF16" or list(t.shape) != head[k]["shape"]:
            sys.exit("%s: %s %s vs %s %s" % (k, t.dtype, list(t.shape), head[k]["dtype"], head[k]["shape"]))
        if t.contiguous().view(torch.int16).numpy().tobytes() != data[k]:
            sys.exit("%s: values differ" % k)
    print("equal: %d tensors" % len(sd))


if __name__ == "__main__":
    kind, prefix = sys.argv[1], sys.argv[2]
    if kind == "copy":      # copy PREFIX NDOCS SEED
        write_binidx(prefix, copy_docs(int(sys.argv[3]), int(sys.argv[4])))
    elif kind == "random":  # random PREFIX NTOKENS VOCAB SEED (documents of 100)
        n, v, rng = int(sys.argv[3]), int(sys.argv[4]), random.Random(int(sys.argv[5]))
        toks = [rng.randrange(1, v) for _ in range(n)]
        write_binidx(prefix, [toks[i:i + 100] for i in range(0, n, 100)])
    elif kind == "cmpstate":  # cmpstate A B
        cmp_states(prefix, sys.argv[3])
    elif kind == "cmpweights":  # cmpweights A B: masters and moments only
        ta, tb = read_safetensors(prefix)[1], read_safetensors(sys.argv[3])[1]
        bad = [k for k in ("master", "adam_m", "adam_v") if ta[k] != tb[k]]
        if bad:
            sys.exit("differ: " + " ".join(bad))
    elif kind == "cmppth":  # cmppth PTH SAFETENSORS
        cmp_pth(prefix, sys.argv[3])
    else:
        sys.exit("usage: train_util.py copy PREFIX NDOCS SEED | random PREFIX NTOKENS VOCAB SEED")
