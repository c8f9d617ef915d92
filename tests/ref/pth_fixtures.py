"""Reference fixtures and checks for pth-convert (run with Debian's python3 + torch 1.13).

  good DIR          torch.save fixtures + hand-built torch 2.x layout files -> DIR/*.pth
  bad DIR           the bad-input corpus -> DIR/*.pth and DIR/MANIFEST (file<TAB>expected message)
  (the checks take several files at once, to pay for the torch import once)
  same_st PTH ST    tensors of torch.load(PTH) == tensors of safetensors ST (names, dtype, shape, bits)
  load_pth ST PTH   torch.load(PTH, weights_only=True) == safetensors ST
  same_cast PTH ST T  ST == torch.load(PTH) with float tensors cast by torch to T (bf16/fp16/fp32)
  layout PTH        our writer's layout: record order, stored, 64-aligned, CRC-32, Zip64 end records
  big OUT / check_big ST PTH   a > 4 GiB torch.save file (Zip64), and checks of its conversions
  official OUT [C]  a random checkpoint shaped like the RWKV-7 0.1B release (bf16, no layer-0 v0/v1/v2)

The zip writer below is written from doc/pth-format.md (torch's inline_container.cc) independently of lib/zip.c,
so the C reader is checked against a second implementation of the layout.
"""
import collections, io, json, os, pickle, struct, sys, zipfile, zlib

import torch

MARKER = "pwned_marker"


# ---------------------------------------------------------------- zip writer (miniz layout)
def build_zip(records, align=64, descriptors=True, zip64_end=True, central_override=None,
              local_override=None):
    """records: list of (name, bytes).  Returns the archive bytes.
    central_override(i, dict) / local_override(i, dict) may edit header fields for bad files."""
    out = bytearray()
    cent = []
    for i, (name, data) in enumerate(records):
        nb = name.encode()
        lho = len(out)
        flags = 0x0808 if (descriptors and data) else 0x0800
        crc = zlib.crc32(data) & 0xffffffff
        start = lho + 30 + len(nb) + 4
        pad = (align - start % align) % align if align > 1 else 0
        extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad if align > 1 else b""
        h = dict(flags=flags, method=0, crc=crc, csize=len(data), usize=len(data), name=nb, extra=extra,
                 data=data, lho=lho)
        if local_override:
            local_override(i, h)
        lcrc, lcs, lus = (0, 0, 0) if h["flags"] & 8 else (h["crc"], h["csize"], h["usize"])
        out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 0, h["flags"], h["method"], 0, 0, lcrc, lcs, lus,
                           len(h["name"]), len(h["extra"]))
        out += h["name"] + h["extra"] + h["data"]
        if h["flags"] & 8:
            out += struct.pack("<IIII", 0x08074b50, h["crc"], h["csize"], h["usize"])
        cent.append(dict(flags=h["flags"], method=h["method"], crc=h["crc"], csize=h["csize"],
                         usize=h["usize"], name=h["name"], lho=lho))
    cd_off = len(out)
    for i, c in enumerate(cent):
        if central_override:
            central_override(i, c)
        out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 0, 0, c["flags"], c["method"], 0, 0, c["crc"],
                           c["csize"] & 0xffffffff, c["usize"] & 0xffffffff, len(c["name"]), 0, 0, 0, 0, 0,
                           c["lho"])
        out += c["name"]
    cd_size = len(out) - cd_off
    n = len(cent)
    if zip64_end:
        z64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 0x031e, 45, 0, 0, n, n, cd_size, cd_off)
        out += struct.pack("<IIQI", 0x07064b50, 0, z64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, n, n, cd_size, cd_off, 0)
    return bytes(out)


def torch_records(obj):
    """Save obj with torch 1.13 and return its records [(name without prefix, bytes)] and prefix."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    z = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    names = z.namelist()
    prefix = names[0].split("/")[0]
    return [(n[len(prefix) + 1:], z.read(n)) for n in names], prefix


def layout_2x(obj, prefix="archive"):
    """Records of obj in the torch 2.x order (newest torch.save, inline_container.cc writeEndOfFile): numeric data/ order, the extra records."""
    recs = dict(torch_records(obj)[0])
    keys = sorted((k for k in recs if k.startswith("data/")), key=lambda k: int(k[5:]))
    out = [("data.pkl", recs["data.pkl"]), (".format_version", b"1"), (".storage_alignment", b"64"),
           ("byteorder", b"little")]
    out += [(k, recs[k]) for k in keys]
    out += [("version", b"3\n"), (".data/serialization_id", b"%020d%020d" % (1234567890123, 987654321))]
    return [(prefix + "/" + n, d) for n, d in out]


# ---------------------------------------------------------------- fixtures
def gen(n, *shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed + n)
    return torch.randn(*shape, generator=g).to(dtype)


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4)
        self.lin = torch.nn.Linear(4, 3)
        self.ln = torch.nn.LayerNorm(3)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(3, 3, bias=False) for _ in range(2)])


def good(d):
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(0)
    # plain dict, fp32, including a 0-dim tensor, an empty tensor, int64 and bool tensors
    torch.save({"a": gen(1, 3, 5), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4),
                "ids": torch.arange(7), "mask": torch.tensor([True, False, True])}, f"{d}/plain_f32.pth")
    # OrderedDict, bf16, 3-D (1,1,C) and 4-D shapes
    torch.save(collections.OrderedDict([("emb.weight", gen(2, 8, 16, dtype=torch.bfloat16)),
                                        ("x_r", gen(3, 1, 1, 16, dtype=torch.bfloat16)),
                                        ("conv", gen(4, 2, 3, 2, 2, dtype=torch.bfloat16))]),
               f"{d}/ordered_bf16.pth")
    # a module's state_dict (OrderedDict + _metadata BUILD tail), fp16
    m = Tiny().half()
    torch.save(m.state_dict(), f"{d}/module_fp16.pth")
    # shared storages, views with offsets, non-contiguous views, a Parameter
    base = gen(5, 6, 8)
    tied = gen(6, 5, 4, dtype=torch.bfloat16)
    torch.save({"base": base, "row2": base[2], "tail": base[3:], "col": base[:, 5], "t": base.t(),
                "strided": base[::2, 1::3], "tied_a": tied, "tied_b": tied,
                "param": torch.nn.Parameter(gen(7, 4, 2)), "expand": torch.ones(3).expand(4, 3)},
               f"{d}/views.pth")
    # 1001 entries: SETITEMS batching and LONG_BINPUT memo indices
    torch.save({f"t{i}": torch.full((2,), float(i)) for i in range(1001)}, f"{d}/many.pth")
    # Lightning/DeepSpeed wrapper prefix
    torch.save({"_forward_module.emb.weight": gen(8, 4, 4), "_forward_module.head.weight": gen(9, 4, 4)},
               f"{d}/forward_prefix.pth")
    # torch 2.x layouts built from the spec
    obj2 = collections.OrderedDict((f"w{i}", gen(10 + i, 3, i + 1, dtype=torch.bfloat16)) for i in range(12))
    obj2["shared_view"] = obj2["w3"][1:]
    open(f"{d}/layout2x.pth", "wb").write(build_zip(layout_2x(obj2)))
    torch.save(obj2, f"{d}/layout2x_ref.pth")
    # simplest accepted layout: Python zipfile, stored, no alignment, no descriptors, no Zip64 end
    recs, _ = torch_records({"a": gen(20, 3, 3), "b": gen(21, 5, dtype=torch.float16)})
    with zipfile.ZipFile(f"{d}/pyzip.pth", "w", zipfile.ZIP_STORED) as z:
        for n, data in recs:
            z.writestr("pyzip/" + n, data)
    # saved from a GPU: storages located on 'cuda:0' (as RWKV-LM training checkpoints are)
    recs = layout_2x({"emb.weight": gen(23, 6, 4, dtype=torch.bfloat16), "x": gen(24, 4)})
    recs = [(n, v.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0") if n.endswith("data.pkl") else v)
            for n, v in recs]
    assert b"cuda:0" in recs[0][1]
    open(f"{d}/cuda_location.pth", "wb").write(build_zip(recs))
    # byteorder "little" written explicitly with CRC-less descriptors (hand layout, align 64)
    open(f"{d}/nozip64.pth", "wb").write(build_zip(layout_2x({"a": gen(22, 4, 4)}), zip64_end=False))
    zip64_fixtures(d)


class _Unseekable(io.RawIOBase):
    """A write-only stream zipfile cannot seek: it then writes data descriptors."""
    def __init__(self, f):
        self.f = f

    def writable(self):
        return True

    def write(self, b):
        return self.f.write(b)


def zip64_fixtures(d):
    """Small files whose records carry Zip64 extra fields, as > 4 GiB checkpoints do
    (t_pth_zip64 covers a real one, but needs 18 GB and is skipped in CI)."""
    recs, _ = torch_records({"a": gen(30, 3, 4), "b": gen(31, 7, dtype=torch.bfloat16)})
    # Python zipfile, force_zip64: local headers with 0xffffffff sizes and a Zip64 extra (seekable file)
    with zipfile.ZipFile(f"{d}/pyzip64.pth", "w", zipfile.ZIP_STORED) as z:
        for n, data in recs:
            with z.open(zipfile.ZipInfo("pyzip64/" + n), "w", force_zip64=True) as w:
                w.write(data)
    # the same through an unseekable stream: flag 0x08 and Zip64 data descriptors (8-byte sizes)
    with open(f"{d}/pyzip64_stream.pth", "wb") as f:
        with zipfile.ZipFile(_Unseekable(f), "w", zipfile.ZIP_STORED) as z:
            for n, data in recs:
                with z.open(zipfile.ZipInfo("pyzip64_stream/" + n), "w", force_zip64=True) as w:
                    w.write(data)
    # miniz past 4 GiB: sizes and offsets saturated in both headers, Zip64 extras beside the FB padding
    open(f"{d}/zip64_extras.pth", "wb").write(build_zip_z64(layout_2x({"w": gen(32, 5, 6, dtype=torch.bfloat16),
                                                                       "v": gen(33, 9)})))


def build_zip_z64(records, align=64):
    """Like build_zip, but every size and offset field is 0xffffffff with the value in a Zip64 extra
    field (local: sizes; central: sizes and offset), with Zip64 data descriptors (24 bytes)."""
    out = bytearray()
    cent = []
    for name, data in records:
        nb = name.encode()
        lho = len(out)
        crc = zlib.crc32(data) & 0xffffffff
        z64 = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        start = lho + 30 + len(nb) + len(z64) + 4
        pad = (align - start % align) % align
        extra = z64 + b"FB" + struct.pack("<H", pad) + b"Z" * pad
        out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 45, 0x0808, 0, 0, 0, 0, 0xffffffff, 0xffffffff,
                           len(nb), len(extra))
        out += nb + extra
        assert len(out) % align == 0
        out += data
        out += struct.pack("<IIQQ", 0x08074b50, crc, len(data), len(data))
        cent.append((nb, crc, len(data), lho))
    cd_off = len(out)
    for nb, crc, size, lho in cent:
        x = struct.pack("<HHQQQ", 1, 24, size, size, lho)
        out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 45, 45, 0x0808, 0, 0, 0, crc, 0xffffffff,
                           0xffffffff, len(nb), len(x), 0, 0, 0, 0, 0xffffffff)
        out += nb + x
    cd_size = len(out) - cd_off
    n = len(cent)
    z64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 45, 45, 0, 0, n, n, cd_size, cd_off)
    out += struct.pack("<IIQI", 0x07064b50, 0, z64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 0xffff, 0xffff, 0xffffffff, 0xffffffff, 0)
    return bytes(out)


# ---------------------------------------------------------------- safetensors parsing (no package needed)
ST_DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
         "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
         "BOOL": torch.bool}


def read_st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = collections.OrderedDict()
    base = 8 + n
    for k, v in h.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        raw = bytearray(b[base + s:base + e])
        dt = ST_DT[v["dtype"]]
        t = torch.frombuffer(raw, dtype=dt) if raw else torch.zeros(0, dtype=dt)
        out[k] = t.reshape(v["shape"])
    return out


def same(a, b, what):
    """Bit-exact equality of two name->tensor maps; returns a list of problems."""
    bad = []
    ka = [k.replace("_forward_module.", "", 1) if k.startswith("_forward_module.") else k for k in a]
    a = collections.OrderedDict(zip(ka, a.values()))
    if set(a) != set(b):
        bad.append(f"{what}: names differ: {sorted(set(a) ^ set(b))[:5]}")
    for k in a:
        if k not in b:
            continue
        x, y = a[k], b[k]
        if x.dtype != y.dtype or tuple(x.shape) != tuple(y.shape):
            bad.append(f"{what}: {k}: {x.dtype}{tuple(x.shape)} vs {y.dtype}{tuple(y.shape)}")
            continue
        xv = x.contiguous().view(-1)
        yv = y.contiguous().view(-1)
        if x.dtype == torch.bool:
            eq = torch.equal(xv, yv)
        else:
            eq = xv.numel() == 0 or torch.equal(xv.view(torch.uint8) if x.element_size() == 1 else
                                                xv.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[x.element_size()]),
                                                yv.view(torch.uint8) if y.element_size() == 1 else
                                                yv.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[y.element_size()]))
        if not eq:
            bad.append(f"{what}: {k}: values differ")
    return bad


def load_any_torch(path, **kw):
    obj = torch.load(path, map_location="cpu", **kw)
    return collections.OrderedDict((k, v.detach() if isinstance(v, torch.Tensor) else v) for k, v in obj.items())


def check_layout(path):
    """Our writer's layout (doc/pth-format.md): record order, stored, 64-aligned data, CRCs, Zip64 end records."""
    raw = open(path, "rb").read()
    z = zipfile.ZipFile(path)
    probs = []
    if z.testzip() is not None:
        probs.append("CRC check failed")
    names = [i.filename for i in z.infolist()]
    ndata = sum(1 for n in names if n.startswith("archive/data/"))
    want = ["archive/data.pkl", "archive/.format_version", "archive/.storage_alignment", "archive/byteorder"]
    want += [f"archive/data/{i}" for i in range(ndata)] + ["archive/version"]
    if names != want:
        probs.append(f"record order {names[:6]}...")
    for i in z.infolist():
        if i.compress_type != 0:
            probs.append(f"{i.filename} compressed")
        nlen, xlen = struct.unpack("<HH", raw[i.header_offset + 26:i.header_offset + 30])
        start = i.header_offset + 30 + nlen + xlen
        if start % 64:
            probs.append(f"{i.filename} data at {start}, not 64-aligned")
    if z.read("archive/byteorder") != b"little" or z.read("archive/version") != b"3\n":
        probs.append("byteorder/version records")
    if b"PK\x06\x06" not in raw[-200:] or b"PK\x06\x07" not in raw[-100:]:
        probs.append("no Zip64 end records")
    return probs


def same_cast(pth, st, dt):
    """safetensors ST == torch.load(PTH) with float tensors cast by torch to dt."""
    dt = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dt]
    a = load_any_torch(pth)
    a = collections.OrderedDict((k, v.to(dt) if v.is_floating_point() else v) for k, v in a.items())
    return same(a, read_st(st), st)


# ---------------------------------------------------------------- bad corpus
class Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def pkl_global(mod, name, arg):
    """Protocol-2 pickle: GLOBAL mod name, arg, TUPLE1, REDUCE, STOP."""
    a = arg.encode()
    return b"\x80\x02c" + mod.encode() + b"\n" + name.encode() + b"\nX" + struct.pack("<I", len(a)) + a + b"\x85R."


def bad(d):
    os.makedirs(d, exist_ok=True)
    man = []
    touch = f"touch {MARKER}"

    def put(name, data, want):
        open(f"{d}/{name}", "wb").write(data)
        man.append(f"{name}\t{want}")

    good_obj = collections.OrderedDict([("a", gen(1, 4, 4, dtype=torch.bfloat16)), ("b", gen(2, 8))])
    good_recs = layout_2x(good_obj)
    recd = dict(good_recs)
    pk = recd["archive/data.pkl"]

    def with_pkl(p, extra=()):
        return build_zip([(n, p if n.endswith("data.pkl") else v) for n, v in good_recs] + list(extra))

    # code execution attempts
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2), "x": Evil(os.system, touch)}, buf)
    put("evil_reduce_posix.pth", buf.getvalue(), "GLOBAL posix.system refused")
    put("evil_os_system.pth", with_pkl(pkl_global("os", "system", touch)), "GLOBAL os.system refused")
    put("evil_builtins_eval.pth", with_pkl(pkl_global("builtins", "eval", f"__import__('os').system('{touch}')")),
        "GLOBAL builtins.eval refused")
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2), "x": Evil(eval, f"__import__('os').system('{touch}')")}, buf)
    put("evil_reduce_eval.pth", buf.getvalue(), "GLOBAL __builtin__.eval refused")   # protocol 2 spelling
    a = touch.encode()
    put("evil_inst.pth", with_pkl(b"\x80\x02(X" + struct.pack("<I", len(a)) + a + b"ios\nsystem\n."),
        "opcode 0x69 (INST) refused")
    put("evil_protocol4.pth", with_pkl(pickle.dumps(Evil(os.system, touch), protocol=4)),
        "pickle protocol 4 is not supported")
    put("evil_stack_global.pth", with_pkl(b"\x80\x02X\x02\x00\x00\x00osX\x06\x00\x00\x00system\x93."),
        "opcode 0x93 (STACK_GLOBAL) refused")
    # REDUCE of an allowed global in a shape torch never writes
    put("reduce_odict_args.pth", with_pkl(b"\x80\x02ccollections\nOrderedDict\nK\x01\x85R."),
        "OrderedDict called with arguments refused")
    put("reduce_storage.pth", with_pkl(b"\x80\x02ctorch\nFloatStorage\n)R."), "REDUCE of a storage type refused")
    # container damage
    full = with_pkl(pk)
    put("truncated_half.pth", full[:len(full) // 2], "no zip end-of-central-directory record")
    put("truncated_tail.pth", full[:-1], "no zip end-of-central-directory record")
    put("empty.pth", b"", "neither a PyTorch .pth")
    put("trailing_junk.pth", full + b"JUNK", "no zip end-of-central-directory record")
    put("truncated_pickle.pth", with_pkl(pk[:len(pk) // 2]), "truncated")
    short = [(n, v[:len(v) // 2] if n.endswith("data/0") else v) for n, v in good_recs]
    put("short_storage.pth", build_zip(short), "truncated storage")
    long_ = [(n, v + b"\0" * 8 if n.endswith("data/1") else v) for n, v in good_recs]
    put("long_storage.pth", build_zip(long_), "holds 40 bytes, but the pickle declares")
    # zip bombs: a deflated record (torch_dos_create style), a huge declared size
    def deflate(i, h):
        if h["name"].endswith(b"data/0"):
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            h["data"] = c.compress(b"\0" * (1 << 20)) + c.flush()
            h["method"] = 8
            h["csize"] = len(h["data"])
            h["usize"] = 1 << 20
    put("bomb_deflate.pth", build_zip(good_recs, local_override=deflate), "compressed record (method 8) refused")
    def huge(i, c):
        if c["name"].endswith(b"data/0"):
            c["csize"] = c["usize"] = 0xfffffff0
    put("bomb_huge_size.pth", build_zip(good_recs, central_override=huge), "runs past the central directory")
    put("huge_numel.pth", with_pkl(pk.replace(b"K\x10t", b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x10t", 1)),
        "implausible")
    # names
    put("traversal_dotdot.pth", build_zip(good_recs + [("archive/../evil", b"x")]), "path tricks are refused")
    put("traversal_abs.pth", build_zip(good_recs + [("/etc/evil", b"x")]), "path tricks are refused")
    put("traversal_backslash.pth", build_zip(good_recs + [("archive\\..\\evil", b"x")]), "path tricks are refused")
    put("name_nul.pth", build_zip(good_recs + [("archive/a\0b", b"x")]), "path tricks are refused")
    put("outside_folder.pth", build_zip(good_recs + [("other/x", b"x")]), "outside the archive folder")
    put("no_folder.pth", build_zip([(n.split("/", 1)[1], v) for n, v in good_recs]), "is not in a folder")
    put("duplicate_name.pth", build_zip(good_recs + [("archive/data/0", recd["archive/data/0"])]), "duplicate entry")
    # overlapping entries: a second central entry whose local header hides inside data/0's bytes
    def overlap_local(i, h):
        if h["name"].endswith(b"data/0"):
            inner = struct.pack("<IHHHHHIIIHH", 0x04034b50, 0, 0, 0, 0, 0, zlib.crc32(b"hidden"), 6, 6, 13, 0)
            h["data"] = inner + b"archive/data9" + b"hidden"
            h["crc"] = zlib.crc32(h["data"])
            h["csize"] = h["usize"] = len(h["data"])
    raw = bytearray(build_zip(good_recs, local_override=overlap_local))
    put("overlap.pth", bytes(add_overlapping_entry(raw)), "overlaps the previous entry")
    # CRC and header disagreements
    flip = bytearray(full)
    off = full.index(recd["archive/data/0"][:16])
    flip[off + 3] ^= 0x40
    put("bad_crc.pth", bytes(flip), "CRC-32 mismatch")
    def wrong_crc(i, c):
        if c["name"].endswith(b"data/1"):
            c["crc"] ^= 1
    put("bad_crc_central.pth", build_zip(good_recs, central_override=wrong_crc), "data descriptor disagrees")
    # records torch needs / refuses
    put("no_version.pth", build_zip([(n, v) for n, v in good_recs if not n.endswith("/version")]), "no 'version' record")
    put("big_endian.pth", build_zip([(n, b"big" if n.endswith("byteorder") else v) for n, v in good_recs]),
        "big-endian")
    put("missing_storage.pth", build_zip([(n, v) for n, v in good_recs if not n.endswith("data/1")]),
        "storage record archive/data/1 is missing")
    put("torchscript.pth", build_zip(good_recs + [("archive/constants.pkl", b"\x80\x02).")]), "TorchScript")
    # pickle structure abuse
    put("view_out_of_bounds.pth", with_pkl(pk.replace(b"QK\x00", b"QK\x05", 1)), "lies outside its storage")
    put("deep_marks.pth", with_pkl(b"\x80\x02" + b"(" * 100000 + b"."), "MARKs nested too deeply")
    put("huge_string.pth", with_pkl(b"\x80\x02X\xff\xff\xff\x7f" + b"a" * 64 + b"."), "string of 2147483647 bytes refused")
    put("memo_huge.pth", with_pkl(b"\x80\x02}r\xff\xff\xff\xff."), "memo index 4294967295 too large")
    put("memo_dangling.pth", with_pkl(b"\x80\x02h\x07."), "memo index 7 was never stored")
    put("not_a_dict.pth", with_pkl(b"\x80\x02K\x01."), "not a single dict")
    put("dict_of_ints.pth", with_pkl(b"\x80\x02}X\x01\x00\x00\x00aK\x01s."), "is not a tensor")
    put("after_stop.pth", with_pkl(pk + b"junk"), "bytes after STOP")
    open(f"{d}/MANIFEST", "w").write("\n".join(man) + "\n")


def add_overlapping_entry(raw):
    """Append a central entry for the local header planted inside data/0 (overlap.pth)."""
    eocd = raw.rindex(b"PK\x05\x06")
    n = struct.unpack("<H", raw[eocd + 10:eocd + 12])[0]
    cd_size, cd_off = struct.unpack("<II", raw[eocd + 12:eocd + 20])
    inner = raw.index(b"archive/data9") - 30
    crc = zlib.crc32(b"hidden")
    entry = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 0, 0, 0, 0, 0, 0, crc, 6, 6, 13, 0, 0, 0, 0, 0, inner)
    entry += b"archive/data9"
    cd = raw[cd_off:cd_off + cd_size] + entry
    n += 1
    out = raw[:cd_off] + cd
    out += struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, n, n, len(cd), cd_off, 0)
    return out


# ---------------------------------------------------------------- official-shaped checkpoint
def official(out, C=768, L=12, V=65536):
    r = lambda x: max(32, round(x * C ** 0.5 / 32) * 32)
    Dw, Da, Dv, Dg = r(2.5), r(2.5), r(1.7), r(5.0)
    H = C // 64
    g = torch.Generator().manual_seed(7)
    rnd = lambda *s: (torch.randn(*s, generator=g) * 0.02).to(torch.bfloat16)
    sd = collections.OrderedDict()
    sd["emb.weight"] = rnd(V, C)
    for l in range(L):
        p = f"blocks.{l}."
        for n in ("ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"):
            sd[p + n] = rnd(C)
        if l == 0:
            sd[p + "ln0.weight"] = rnd(C)
            sd[p + "ln0.bias"] = rnd(C)
        for n in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g"):
            sd[p + "att." + n] = rnd(1, 1, C)
        sd[p + "att.w1"], sd[p + "att.w2"], sd[p + "att.w0"] = rnd(C, Dw), rnd(Dw, C), rnd(1, 1, C)
        sd[p + "att.a1"], sd[p + "att.a2"], sd[p + "att.a0"] = rnd(C, Da), rnd(Da, C), rnd(1, 1, C)
        if l > 0:   # official releases lack layer-0 v0/v1/v2
            sd[p + "att.v1"], sd[p + "att.v2"], sd[p + "att.v0"] = rnd(C, Dv), rnd(Dv, C), rnd(1, 1, C)
        sd[p + "att.g1"], sd[p + "att.g2"] = rnd(C, Dg), rnd(Dg, C)
        sd[p + "att.k_k"], sd[p + "att.k_a"], sd[p + "att.r_k"] = rnd(1, 1, C), rnd(1, 1, C), rnd(H, 64)
        for n in ("receptance", "key", "value", "output"):
            sd[p + f"att.{n}.weight"] = rnd(C, C)
        sd[p + "att.ln_x.weight"], sd[p + "att.ln_x.bias"] = rnd(C), rnd(C)
        sd[p + "ffn.x_k"], sd[p + "ffn.key.weight"], sd[p + "ffn.value.weight"] = rnd(1, 1, C), rnd(4 * C, C), rnd(C, 4 * C)
    sd["ln_out.weight"], sd["ln_out.bias"], sd["head.weight"] = rnd(C), rnd(C), rnd(V, C)
    torch.save(sd, out)
    print(sum(t.numel() for t in sd.values()))


# ---------------------------------------------------------------- Zip64 (> 4 GiB)
BIG = (1 << 32) + 4096 * 3 + 100   # a storage past 4 GiB, so the next record's header lies past 4 GiB too


def big_pattern():
    return torch.arange(256, dtype=torch.uint8).repeat(BIG // 256 + 1)[:BIG]


def big(out):
    torch.save(collections.OrderedDict([("big", big_pattern()), ("after", torch.arange(10.0))]), out)


def check_big(st, pth):
    """ST (our conversion of big()) and PTH (our writer) hold the pattern; PTH passes zipfile's CRC test."""
    import numpy as np
    probs = []
    b = np.memmap(st, dtype=np.uint8, mode="r")
    n = struct.unpack("<Q", bytes(b[:8]))[0]
    h = json.loads(bytes(b[8:8 + n]))
    s, e = h["big"]["data_offsets"]
    if e - s != BIG or h["big"]["dtype"] != "U8":
        probs.append(f"safetensors big: {h['big']}")
    else:
        v = b[8 + n + s:8 + n + e]
        step = 1 << 26
        pat = np.tile(np.arange(256, dtype=np.uint8), step // 256)
        for i in range(0, BIG, step):
            m = min(step, BIG - i)
            if not np.array_equal(v[i:i + m], pat[:m]):
                probs.append(f"safetensors big: bytes differ near {i}")
                break
    del b
    z = zipfile.ZipFile(pth)
    info = {i.filename: i for i in z.infolist()}
    if info["archive/data/0"].file_size != BIG or info["archive/data/1"].header_offset < (1 << 32):
        probs.append("zip64 sizes/offsets")
    if z.testzip() is not None:
        probs.append("zipfile CRC test failed")
    t = torch.load(pth, weights_only=True)
    if not torch.equal(t["after"], torch.arange(10.0)):
        probs.append("torch.load: 'after' differs")
    if t["big"].numel() != BIG or not torch.equal(t["big"], big_pattern()):
        probs.append("torch.load: 'big' differs")
    return probs


def mmap_modes():
    """torch >= 2.1 can mmap a .pth; newer ones can also compute storage offsets from the
    miniz layout (torch/serialization.py _load, calculate_storage_offsets) instead of reading local headers.  Torch 1.13 has neither."""
    import inspect
    if "mmap" not in inspect.signature(torch.load).parameters:
        return
    yield "mmap=True", dict(mmap=True)
    try:
        import torch.utils.serialization.config as cfg
        if hasattr(cfg.load, "calculate_storage_offsets"):
            cfg.load.calculate_storage_offsets = True
            yield "mmap=True, calculate_storage_offsets", dict(mmap=True)
            cfg.load.calculate_storage_offsets = False
    except ImportError:
        pass


def report(probs, label):
    print("\n".join(probs) or f"{label}: ok")
    return bool(probs)


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    failed = False
    if cmd == "good":
        good(a[0])
    elif cmd == "bad":
        bad(a[0])
    elif cmd == "same_st":          # PTH ST [PTH ST ...]
        for pth, st in zip(a[0::2], a[1::2]):
            failed |= report(same(load_any_torch(pth), read_st(st), pth), pth)
    elif cmd == "load_pth":         # ST PTH [ST PTH ...]
        for st, pth in zip(a[0::2], a[1::2]):
            ref = read_st(st)
            failed |= report(same(ref, load_any_torch(pth, weights_only=True), pth), pth)
            for mode, kw in mmap_modes():
                failed |= report(same(ref, load_any_torch(pth, weights_only=True, **kw), pth), f"{pth} ({mode})")
    elif cmd == "same_cast":        # T PTH ST [PTH ST ...]
        for pth, st in zip(a[1::2], a[2::2]):
            failed |= report(same_cast(pth, st, a[0]), st)
    elif cmd == "layout":           # PTH...
        for pth in a:
            failed |= report(check_layout(pth), pth)
    elif cmd == "big":
        big(a[0])
    elif cmd == "check_big":
        failed |= report(check_big(a[0], a[1]), a[1])
    elif cmd == "official":
        official(a[0], *(int(x) for x in a[1:]))
    else:
        sys.exit(f"unknown command {cmd}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
