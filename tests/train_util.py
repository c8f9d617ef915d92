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


def scale_tensor(src, dst, name, factor):
    """Copy a bf16 safetensors file with one tensor multiplied by factor and the
    checksums dropped, so it passes every load check (review D3's start)."""
    import json
    import numpy as np
    b = open(src, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    h["__metadata__"] = {k: v for k, v in h.get("__metadata__", {}).items() if not k.startswith("xxh3:")}
    d = bytearray(b[8 + n:])
    o0, o1 = h[name]["data_offsets"]
    a = (np.frombuffer(bytes(d[o0:o1]), np.uint16).astype(np.uint32) << 16).view(np.float32) * np.float32(factor)
    d[o0:o1] = (a.view(np.uint32) >> 16).astype(np.uint16).tobytes()
    hb = json.dumps(h, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    open(dst, "wb").write(struct.pack("<Q", len(hb)) + hb + bytes(d))


def all_finite(path):
    """Exit 0 when every F32 tensor of a training state is finite."""
    import numpy as np
    _, t = read_safetensors(path)
    bad = {k: int((~np.isfinite(np.frombuffer(v, np.float32))).sum()) for k, v in t.items()}
    bad = {k: n for k, n in bad.items() if n}
    if bad:
        sys.exit("non-finite values: %s" % bad)


def flip_sweep(state, every, cmd, want):
    """Flip bit 0 of every EVERY-th byte of STATE's header (length prefix
    included); each time run CMD (a shell command that resumes for one step
    and writes OUT.safetensors) and classify the result against WANT, the
    state an undamaged resume writes: the run must either say it skipped the
    damaged state and resume from the older one, or give WANT's masters and
    moments.  Prints one line per bad case and a summary; exit 1 if any."""
    import glob
    import os
    import shutil
    import subprocess
    orig = open(state, "rb").read()
    n = 8 + struct.unpack("<Q", orig[:8])[0]
    want_t = read_safetensors(want)[1]
    proj = os.path.dirname(state) or "."
    saved = {f: open(f, "rb").read() for f in KEEP}
    counts = {"fallback": 0, "identical": 0}
    bad = 0
    for i in range(0, n, every):
        b = bytearray(orig)
        b[i] ^= 1
        open(state, "wb").write(b)
        r = subprocess.run(cmd, shell=True, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        err = r.stderr.decode(errors="replace")
        outs = sorted(glob.glob(os.path.join(proj, "train-state-*.safetensors")))
        newest = outs[-1] if outs else None
        if r.returncode != 0:
            print("byte %d: exit %d: %s" % (i, r.returncode, err.strip()[-300:]))
            bad += 1
        elif "skipping " + state in err:
            counts["fallback"] += 1
        elif newest and read_safetensors(newest)[1] == want_t:
            counts["identical"] += 1
        else:
            print("byte %d: silent divergence: %s" % (i, err.strip()[-300:]))
            bad += 1
        # back to the undamaged states for the next flip (--keep may have pruned one)
        for f in outs:
            os.unlink(f)
        for f, data in saved.items():
            open(f, "wb").write(data)
    print("header %d bytes, %d flips: %d fell back with a warning, %d identical, %d bad"
          % (n, len(range(0, n, every)), counts["fallback"], counts["identical"], bad))
    sys.exit(1 if bad else 0)


def run_closed_stderr(cmd):
    """Run cmd with stderr a pipe whose reader is already gone; print its exit status."""
    import os
    import subprocess
    r, w = os.pipe()
    os.close(r)
    p = subprocess.run(cmd, stderr=w)
    os.close(w)
    print(p.returncode)


def near_states(a, b, tol):
    """Exit 0 when two states have the same counters and masters, moments within tol:
    max |a - b| over the tensor <= tol * max |a| (summation order changes the last bits)."""
    import numpy as np
    ma, ta = read_safetensors(a)
    mb, tb = read_safetensors(b)
    bad = [k for k in ("step", "adam_step", "warm_step") if ma[k] != mb[k]]
    worst = {}
    for k in ("master", "adam_m", "adam_v"):
        x, y = np.frombuffer(ta[k], np.float32), np.frombuffer(tb[k], np.float32)
        if x.shape != y.shape:
            bad.append(k + " shape")
            continue
        worst[k] = float(np.abs(x - y).max() / max(np.abs(x).max(), 1e-30))
        if not worst[k] <= tol:
            bad.append("%s %.3g" % (k, worst[k]))
    if bad:
        sys.exit("differ: " + " ".join(bad))
    print("near: step", ma["step"], " ".join("%s %.3g" % kv for kv in worst.items()))


def near_losses(a, b, tol, n):
    """Exit 0 when metrics.jsonl files a and b have the first n steps with losses within tol."""
    import json
    la = [json.loads(l) for l in open(a)][:n]
    lb = [json.loads(l) for l in open(b)][:n]
    if len(la) != n or len(lb) != n:
        sys.exit("want %d records, have %d and %d" % (n, len(la), len(lb)))
    worst = max(abs(x["loss"] - y["loss"]) for x, y in zip(la, lb))
    if [x["step"] for x in la] != [y["step"] for y in lb] or not worst <= tol:
        sys.exit("losses differ by up to %.3g" % worst)
    print("losses within %.3g over %d steps" % (worst, n))


KEEP = []

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
    elif kind == "scale":  # scale SRC DST TENSOR FACTOR
        scale_tensor(prefix, sys.argv[3], sys.argv[4], float(sys.argv[5]))
    elif kind == "finite":  # finite STATE
        all_finite(prefix)
    elif kind == "flipsweep":  # flipsweep STATE EVERY WANT KEEP1,KEEP2 CMD
        KEEP[:] = sys.argv[5].split(",")
        flip_sweep(prefix, int(sys.argv[3]), sys.argv[6], sys.argv[4])
    elif kind == "nearstate":  # nearstate A B TOL
        near_states(prefix, sys.argv[3], float(sys.argv[4]))
    elif kind == "nearloss":  # nearloss METRICS_A METRICS_B TOL N
        near_losses(prefix, sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
    elif kind == "closedstderr":  # closedstderr CMD ARGS...
        run_closed_stderr(sys.argv[2:])
    else:
        sys.exit("usage: train_util.py copy PREFIX NDOCS SEED | random PREFIX NTOKENS VOCAB SEED")
