"""Read what the wandb SDK wrote to an offline run's .wandb file, with wandb's
own protobuf classes: the run id and the history rows it would sync.

The .wandb file is wandb's transaction log: a 7-byte header (":W&B", 0xBEE1,
version 0), then LevelDB-log records in 32 KiB blocks, each a 7-byte header
(CRC-32, uint16 length, type: 1 full, 2 first, 3 middle, 4 last) and a piece of
a serialized wandb_internal_pb2.Record.  (Newer wandb has no Python reader for
it any more: the Go core writes it.)

Usage: wandb_history.py RUN.wandb   prints JSON {"run_id": ..., "config": {...},
"rows": [{...}, ...]} (config: the run configuration's updates merged; rows in
file order, each with "_step" and the logged keys)."""
import json
import struct
import sys
import zlib

from wandb.proto import wandb_internal_pb2

BLOCK = 32768


def payloads(data):
    if data[:4] != b":W&B" or struct.unpack("<H", data[4:6])[0] != 0xBEE1:
        sys.exit("not a wandb transaction log")
    pos, frag = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:   # a block's tail too short for a header is padding
            pos += left
            continue
        crc, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and n == 0:   # zero padding (a block not yet full)
            break
        body = data[pos + 7:pos + 7 + n]
        if len(body) < n:
            break   # a torn last record
        if crc != zlib.crc32(bytes([kind]) + body) & 0xffffffff:
            sys.exit("CRC mismatch at byte %d" % pos)
        pos += 7 + n
        if kind == 1:
            yield body
        elif kind == 2:
            frag = body
        elif kind == 3:
            frag += body
        elif kind == 4:
            yield frag + body


def main():
    data = open(sys.argv[1], "rb").read()
    out = {"run_id": None, "config": {}, "rows": []}
    for p in payloads(data):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(p)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["run_id"] = rec.run.run_id
            for i in rec.run.config.update:
                out["config"][i.key] = json.loads(i.value_json)
        elif kind == "config":
            for i in rec.config.update:
                out["config"][i.key] = json.loads(i.value_json)
        elif kind == "history":
            out["rows"].append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
